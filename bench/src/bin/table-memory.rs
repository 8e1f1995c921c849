//! Heap used by the core's data for a large site, step by step: the raw config as read, the
//! validated config, the binding table, and bindings; then the persistent map the table's
//! snapshots are made of (`pmap::PMap`) against `imbl::HashMap` with the same hasher, holding
//! the same bindings. Counts bytes requested from the allocator (live), so the figures are
//! exact and independent of the machine.
//!
//! `table-memory [USERS]` (default 100,000 users and as many devices).
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

use deviceuser_bench::conf::{device, user};
use deviceuser_bench::contention::raw_config;
use deviceuser_core::config::Config;
use deviceuser_core::pmap::PMap;
use deviceuser_core::{Binding, BindingTable, CompactString, LoginMode};
use rustc_hash::FxBuildHasher;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static BLOCKS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        BLOCKS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        BLOCKS.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: p was allocated by System with l.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        // SAFETY: p was allocated by System with l.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn live() -> (isize, usize) {
    (LIVE.load(Ordering::Relaxed), BLOCKS.load(Ordering::Relaxed))
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let report = |what: &str, before: (isize, usize)| {
        let (b, k) = live();
        println!(
            "{what:<40} {:>8.1} MB in {:>9} blocks ({:.0} bytes per user)",
            (b - before.0) as f64 / 1048576.0,
            k as isize - before.1 as isize,
            (b - before.0) as f64 / n as f64
        );
        (b, k)
    };
    // What a write allocates beyond the version it was cloned from.
    let copied = |what: &str, before: (isize, usize)| {
        let (b, k) = live();
        println!(
            "{what:<40} {:>8} bytes in {:>3} blocks",
            b - before.0,
            k as isize - before.1 as isize
        );
    };
    let start = live();
    let raw = raw_config(n);
    let after_raw = report("raw config (as read)", start);
    let config = Config::from_raw(&raw).expect("valid").config;
    let after_config = report("validated config", after_raw);
    drop(raw);
    let mark = live();
    let table = BindingTable::new(config, 0);
    let after_table = report("table, no bindings (config moved in)", mark);
    for i in 1..=n {
        table
            .login(&user(i), &device(i), LoginMode::Admin, 0, |_| {})
            .expect("login");
    }
    report(&format!("{n} bindings"), after_table);
    let _ = after_config;
    report("total live after raw config freed", start);
    drop(table);

    println!("\nDevice → binding map with {n} bindings (ids inline, FxHash):");
    let mark = live();
    let mut pm: PMap<CompactString, Binding> = PMap::default();
    for i in 1..=n {
        pm.insert(device(i).into(), Binding::new(user(i), device(i), 0));
    }
    let after_pm = report("pmap::PMap", mark);
    let mut pm2 = pm.clone();
    pm2.insert(
        device(n + 1).into(),
        Binding::new(user(n + 1), device(n + 1), 0),
    );
    copied("  one insert into a clone (path copied)", after_pm);
    drop((pm, pm2));
    let mark = live();
    let mut im: imbl::GenericHashMap<
        CompactString,
        Binding,
        FxBuildHasher,
        imbl::shared_ptr::DefaultSharedPtr,
    > = imbl::GenericHashMap::with_hasher(FxBuildHasher);
    for i in 1..=n {
        im.insert(device(i).into(), Binding::new(user(i), device(i), 0));
    }
    let after_im = report("imbl::HashMap", mark);
    let mut im2 = im.clone();
    im2.insert(
        device(n + 1).into(),
        Binding::new(user(n + 1), device(n + 1), 0),
    );
    copied("  one insert into a clone (path copied)", after_im);
}
