//! The hand-written infrastructure against the crates that could replace it, side by side in
//! one run:
//!
//! - the snapshot cell (`snapcell::SnapshotCell`) against `parking_lot::RwLock<Arc<_>>` and
//!   `std::sync::RwLock<Arc<_>>`, each holding the binding table's snapshot (100,000
//!   bindings): `load` (an `Arc` clone, what `BindingTable::snapshot` does), `with` reading
//!   one field (the cell's own cost) and `with` reading `dial(user)` (what a call's
//!   `DEVICEUSER_DIAL` does through `BindingTable::with_snapshot`);
//! - the persistent map (`deviceuser_core::pmap::PMap`) against `imbl::HashMap` with the same
//!   hasher (FxHash), 100,000 bindings device → `Binding`: `get` of a present key, and a
//!   commit (clone, insert, remove).
//!
//! Each read is measured on 1 thread with no writer, and on 2 threads while a third commits:
//! paced (one commit, then 100 µs of sleep: the same write load for every contender) or busy
//! (back to back). The machine has 2 cores and is shared, so rounds interleave the
//! contenders (the order rotates each round) and every figure is the median over the rounds
//! with the lowest and the highest round beside it. Memory at 100,000 bindings is measured
//! by `table-memory` (it counts the allocator's bytes; a counting allocator here would slow
//! the writers).
//!
//! `infrastructure [ROUNDS] [MS_PER_RUN] [cells|maps]` (default 15 rounds of 200 ms per run,
//! both parts).
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use deviceuser_bench::conf::{device, user};
use deviceuser_bench::contention::raw_config;
use deviceuser_core::config::Config;
use deviceuser_core::pmap::PMap;
use deviceuser_core::{Binding, BindingTable, CompactString, LoginMode, Snapshot};
use rustc_hash::FxBuildHasher;
use snapcell::SnapshotCell;

/// Bindings in the snapshot and in the maps.
const N: usize = 100_000;

// ---------------------------------------------------------------------------
// Contenders
// ---------------------------------------------------------------------------

/// A cell holding the current `Arc<T>`.
trait Cell<T>: Send + Sync + 'static {
    const NAME: &'static str;
    fn new(v: Arc<T>) -> Self;
    fn load(&self) -> Arc<T>;
    fn with<R>(&self, f: impl FnOnce(&T) -> R) -> R;
    fn store(&self, v: Arc<T>) -> Arc<T>;
}

impl<T: Send + Sync + 'static> Cell<T> for SnapshotCell<T> {
    const NAME: &'static str = "snapcell::SnapshotCell";
    fn new(v: Arc<T>) -> Self {
        SnapshotCell::new(v)
    }
    fn load(&self) -> Arc<T> {
        SnapshotCell::load(self)
    }
    fn with<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        SnapshotCell::with(self, f)
    }
    fn store(&self, v: Arc<T>) -> Arc<T> {
        SnapshotCell::store(self, v)
    }
}

struct ParkingLot<T>(parking_lot::RwLock<Arc<T>>);

impl<T: Send + Sync + 'static> Cell<T> for ParkingLot<T> {
    const NAME: &'static str = "parking_lot::RwLock<Arc<_>>";
    fn new(v: Arc<T>) -> Self {
        ParkingLot(parking_lot::RwLock::new(v))
    }
    fn load(&self) -> Arc<T> {
        Arc::clone(&self.0.read())
    }
    fn with<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        f(&self.0.read())
    }
    fn store(&self, v: Arc<T>) -> Arc<T> {
        std::mem::replace(&mut *self.0.write(), v)
    }
}

struct StdRwLock<T>(std::sync::RwLock<Arc<T>>);

impl<T: Send + Sync + 'static> Cell<T> for StdRwLock<T> {
    const NAME: &'static str = "std::sync::RwLock<Arc<_>>";
    fn new(v: Arc<T>) -> Self {
        StdRwLock(std::sync::RwLock::new(v))
    }
    fn load(&self) -> Arc<T> {
        Arc::clone(&self.0.read().unwrap())
    }
    fn with<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        f(&self.0.read().unwrap())
    }
    fn store(&self, v: Arc<T>) -> Arc<T> {
        std::mem::replace(&mut *self.0.write().unwrap(), v)
    }
}

/// A persistent map device → binding.
trait Map: Clone + Send + Sync + 'static {
    const NAME: &'static str;
    fn empty() -> Self;
    fn get(&self, k: &str) -> Option<&Binding>;
    fn insert(&mut self, k: CompactString, v: Binding);
    fn remove(&mut self, k: &str);
}

impl Map for PMap<CompactString, Binding> {
    const NAME: &'static str = "pmap::PMap";
    fn empty() -> Self {
        PMap::default()
    }
    fn get(&self, k: &str) -> Option<&Binding> {
        PMap::get(self, k)
    }
    fn insert(&mut self, k: CompactString, v: Binding) {
        PMap::insert(self, k, v);
    }
    fn remove(&mut self, k: &str) {
        PMap::remove(self, k);
    }
}

type Imbl =
    imbl::GenericHashMap<CompactString, Binding, FxBuildHasher, imbl::shared_ptr::DefaultSharedPtr>;

impl Map for Imbl {
    const NAME: &'static str = "imbl::HashMap (FxHash)";
    fn empty() -> Self {
        imbl::GenericHashMap::with_hasher(FxBuildHasher)
    }
    fn get(&self, k: &str) -> Option<&Binding> {
        imbl::GenericHashMap::get(self, k)
    }
    fn insert(&mut self, k: CompactString, v: Binding) {
        imbl::GenericHashMap::insert(self, k, v);
    }
    fn remove(&mut self, k: &str) {
        imbl::GenericHashMap::remove(self, k);
    }
}

// ---------------------------------------------------------------------------
// Runs
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Writer {
    None,
    Paced,
    Busy,
}

impl Writer {
    fn name(self) -> &'static str {
        match self {
            Writer::None => "1 reader, no writer",
            Writer::Paced => "2 readers, paced writer",
            Writer::Busy => "2 readers, busy writer",
        }
    }
    fn readers(self) -> usize {
        if self == Writer::None {
            1
        } else {
            2
        }
    }
}

/// One run's result: wall-clock and CPU nanoseconds per read (averaged over the reader
/// threads), and commits per second.
#[derive(Clone, Copy, Default)]
struct Run {
    ns_per_read: f64,
    cpu_ns_per_read: f64,
    /// The share of the wall time the readers were on a core.
    on_core: f64,
    commits_per_s: f64,
}

/// CPU time of the calling thread so far, in nanoseconds (`/proc/thread-self/schedstat`):
/// unlike the wall clock, it leaves out the time the thread waited for a core, which on a
/// shared machine is most of the difference between runs.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Runs `read(thread, i)` on `writer.readers()` threads and `commit()` on a writer thread for
/// `dur`; `read` returns something to keep the optimizer honest.
fn run<R, C>(dur: Duration, writer: Writer, read: R, commit: C) -> Run
where
    R: Fn(usize, usize) -> usize + Send + Sync + 'static,
    C: Fn() + Send + Sync + 'static,
{
    let readers = writer.readers();
    let stop = Arc::new(AtomicBool::new(false));
    let barrier = Arc::new(Barrier::new(readers + 2));
    let commits = Arc::new(AtomicU64::new(0));
    let read = Arc::new(read);
    let w = {
        let (stop, barrier, commits) = (stop.clone(), barrier.clone(), commits.clone());
        thread::spawn(move || {
            barrier.wait();
            if writer == Writer::None {
                return;
            }
            while !stop.load(Ordering::Relaxed) {
                commit();
                commits.fetch_add(1, Ordering::Relaxed);
                if writer == Writer::Paced {
                    thread::sleep(Duration::from_micros(100));
                }
            }
        })
    };
    let handles: Vec<_> = (0..readers)
        .map(|t| {
            let (stop, barrier, read) = (stop.clone(), barrier.clone(), read.clone());
            thread::spawn(move || {
                barrier.wait();
                let start = Instant::now();
                let cpu0 = thread_cpu_ns();
                let (mut reads, mut sink) = (0usize, 0usize);
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..64 {
                        sink = sink.wrapping_add(read(t, reads));
                        reads += 1;
                    }
                }
                std::hint::black_box(sink);
                (reads, start.elapsed(), thread_cpu_ns() - cpu0)
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    thread::sleep(dur);
    stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed();
    let per_read: Vec<(f64, f64)> = handles
        .into_iter()
        .map(|h| {
            let (reads, took, cpu) = h.join().unwrap();
            let reads = reads.max(1) as f64;
            (took.as_nanos() as f64 / reads, cpu as f64 / reads)
        })
        .collect();
    w.join().unwrap();
    let threads = per_read.len() as f64;
    Run {
        ns_per_read: per_read.iter().map(|p| p.0).sum::<f64>() / threads,
        cpu_ns_per_read: per_read.iter().map(|p| p.1).sum::<f64>() / threads,
        on_core: per_read.iter().map(|p| p.1 / p.0).sum::<f64>() / threads,
        commits_per_s: commits.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64(),
    }
}

/// Median, lowest and highest of samples.
fn spread(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

/// Interleaves `contenders` (each one closure per run) over `rounds`, rotating the order each
/// round; the runs of each contender, in round order.
fn rounds(rounds: usize, contenders: &[&dyn Fn() -> Run]) -> Vec<Vec<Run>> {
    let mut out = vec![Vec::with_capacity(rounds); contenders.len()];
    for r in 0..rounds {
        for k in 0..contenders.len() {
            let i = (r + k) % contenders.len();
            out[i].push(contenders[i]());
        }
    }
    out
}

fn print_table(title: &str, names: &[&str], runs: &[Vec<Run>], with_commits: bool) {
    println!("\n{title}\n");
    print!("| Contender | wall ns per read: median (lowest – highest round) | CPU ns per read: median (lowest – highest) | readers on a core (median) |");
    if with_commits {
        println!(" commits/s: median (lowest – highest) |\n|---|---|---|---|---|");
    } else {
        println!("\n|---|---|---|---|");
    }
    for (name, rs) in names.iter().zip(runs) {
        let (m, lo, hi) = spread(rs.iter().map(|r| r.ns_per_read).collect());
        let (cm, clo, chi) = spread(rs.iter().map(|r| r.cpu_ns_per_read).collect());
        let (share, _, _) = spread(rs.iter().map(|r| r.on_core).collect());
        print!(
            "| {name} | {m:.1} ({lo:.1} – {hi:.1}) | {cm:.1} ({clo:.1} – {chi:.1}) | {:.0} % |",
            share * 100.0
        );
        if with_commits {
            let (c, clo, chi) = spread(rs.iter().map(|r| r.commits_per_s).collect());
            println!(" {c:.0} ({clo:.0} – {chi:.0}) |");
        } else {
            println!();
        }
    }
}

/// Keys `1..=n` visited in a scattered order (a prime stride, coprime with `n`), so that
/// consecutive reads do not share cache lines the way neighbouring ids would.
fn scattered(i: usize, n: usize) -> usize {
    (i.wrapping_mul(7919) % n) + 1
}

// ---------------------------------------------------------------------------
// Cells
// ---------------------------------------------------------------------------

fn snapshot_of_100k() -> Arc<Snapshot> {
    let config: Config = Config::from_raw(&raw_config(N))
        .expect("valid bench config")
        .config;
    let table = BindingTable::new(config, 0);
    for n in 1..=N {
        table
            .login(&user(n), &device(n), LoginMode::Admin, 0, |_| {})
            .expect("login");
    }
    table.snapshot()
}

#[derive(Clone, Copy)]
enum CellRead {
    /// `load()`, then drop the `Arc`.
    Load,
    /// `with(|s| s.binding_count())`: the cell's own cost, next to nothing inside.
    WithCount,
    /// `with(|s| s.dial(user).len())`.
    With,
}

fn cell_run<C: Cell<Snapshot>>(
    cell: &Arc<C>,
    base: &Arc<Snapshot>,
    users: &Arc<Vec<String>>,
    how: CellRead,
    writer: Writer,
    dur: Duration,
) -> Run {
    let (c, u) = (cell.clone(), users.clone());
    let read = move |t: usize, i: usize| -> usize {
        match how {
            CellRead::Load => Arc::strong_count(&c.load()),
            CellRead::WithCount => c.with(|s| s.binding_count()),
            CellRead::With => {
                let user = &u[(t * 50_000 + i) % u.len()];
                c.with(|s| s.dial(user).len())
            }
        }
    };
    let (c, b) = (cell.clone(), base.clone());
    let commit = move || {
        drop(c.store(Arc::new((*b).clone())));
    };
    run(dur, writer, read, commit)
}

fn cells(rounds_n: usize, dur: Duration) {
    eprintln!("[infrastructure] building a snapshot with {N} bindings");
    let base = snapshot_of_100k();
    let users: Arc<Vec<String>> = Arc::new((0..N).map(|i| user(scattered(i, N))).collect());
    let snap = Arc::new(SnapshotCell::new(base.clone()));
    let pl = Arc::new(ParkingLot::new(base.clone()));
    let std_rw = Arc::new(StdRwLock::new(base.clone()));
    let names = [
        <SnapshotCell<Snapshot> as Cell<Snapshot>>::NAME,
        <ParkingLot<Snapshot> as Cell<Snapshot>>::NAME,
        <StdRwLock<Snapshot> as Cell<Snapshot>>::NAME,
    ];
    println!(
        "\nSizes: SnapshotCell {} bytes, parking_lot::RwLock<Arc<_>> {} bytes, std::sync::RwLock<Arc<_>> {} bytes.",
        std::mem::size_of::<SnapshotCell<Snapshot>>(),
        std::mem::size_of::<parking_lot::RwLock<Arc<Snapshot>>>(),
        std::mem::size_of::<std::sync::RwLock<Arc<Snapshot>>>()
    );
    for (how, what) in [
        (
            CellRead::Load,
            "`load()`: an `Arc` clone of the snapshot, dropped",
        ),
        (
            CellRead::WithCount,
            "`with(|s| s.binding_count())`: a borrowed read of one field",
        ),
        (
            CellRead::With,
            "`with(|s| s.dial(user))`: a borrowed read of the snapshot",
        ),
    ] {
        for writer in [Writer::None, Writer::Paced, Writer::Busy] {
            eprintln!("[infrastructure] cells: {what}, {}", writer.name());
            let runs = rounds(
                rounds_n,
                &[
                    &|| cell_run(&snap, &base, &users, how, writer, dur),
                    &|| cell_run(&pl, &base, &users, how, writer, dur),
                    &|| cell_run(&std_rw, &base, &users, how, writer, dur),
                ],
            );
            print_table(
                &format!("Cell, {what}; {}:", writer.name()),
                &names,
                &runs,
                writer != Writer::None,
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Maps
// ---------------------------------------------------------------------------

fn map_of<M: Map>(n: usize) -> M {
    let mut m = M::empty();
    for i in 1..=n {
        m.insert(device(i).into(), Binding::new(user(i), device(i), 0));
    }
    m
}

/// Keys the writer toggles: beyond the bound ones.
fn spare(i: u64) -> CompactString {
    device(10_000_000 + (i as usize % 1000)).into()
}

fn map_run<M: Map>(
    cell: &Arc<SnapshotCell<M>>,
    keys: &Arc<Vec<CompactString>>,
    writer: Writer,
    dur: Duration,
) -> Run {
    let (c, k) = (cell.clone(), keys.clone());
    let read = move |t: usize, i: usize| -> usize {
        let key = &k[(t * 50_000 + i) % k.len()];
        c.with(|m| m.get(key).map_or(0, |b| b.since as usize + 1))
    };
    let c = cell.clone();
    let n = AtomicU64::new(0);
    let commit = move || {
        let i = n.fetch_add(1, Ordering::Relaxed);
        let key = spare(i);
        let mut next = (*c.load()).clone();
        if next.get(&key).is_some() {
            next.remove(&key);
        } else {
            next.insert(key.clone(), Binding::new("u", key, 0));
        }
        drop(c.store(Arc::new(next)));
    };
    run(dur, writer, read, commit)
}

/// Single-thread commits (clone the map, insert or remove one binding) for `dur`.
fn map_commit_run<M: Map>(base: &M, dur: Duration) -> Run {
    let mut cur = base.clone();
    let end = Instant::now() + dur;
    let start = Instant::now();
    let mut commits = 0u64;
    let cpu0 = thread_cpu_ns();
    while Instant::now() < end {
        for _ in 0..16 {
            let key = spare(commits);
            let mut next = cur.clone();
            if next.get(&key).is_some() {
                next.remove(&key);
            } else {
                next.insert(key.clone(), Binding::new("u", key, 0));
            }
            cur = next;
            commits += 1;
        }
    }
    let took = start.elapsed();
    Run {
        ns_per_read: took.as_nanos() as f64 / commits as f64,
        cpu_ns_per_read: (thread_cpu_ns() - cpu0) as f64 / commits as f64,
        on_core: 0.0,
        commits_per_s: commits as f64 / took.as_secs_f64(),
    }
}

fn maps(rounds_n: usize, dur: Duration, n: usize) {
    eprintln!("[infrastructure] building the maps with {n} bindings");
    let pm: PMap<CompactString, Binding> = map_of(n);
    let im: Imbl = map_of(n);
    check_same(&pm, &im, n);
    let keys: Arc<Vec<CompactString>> =
        Arc::new((0..n).map(|i| device(scattered(i, n)).into()).collect());
    let pm_cell = Arc::new(SnapshotCell::new(Arc::new(pm.clone())));
    let im_cell = Arc::new(SnapshotCell::new(Arc::new(im.clone())));
    let names = [
        <PMap<CompactString, Binding> as Map>::NAME,
        <Imbl as Map>::NAME,
    ];
    for writer in [Writer::None, Writer::Paced, Writer::Busy] {
        eprintln!("[infrastructure] maps: get, {}", writer.name());
        let runs = rounds(
            rounds_n,
            &[&|| map_run(&pm_cell, &keys, writer, dur), &|| {
                map_run(&im_cell, &keys, writer, dur)
            }],
        );
        print_table(
            &format!(
                "Map of {n} bindings in a SnapshotCell, `get` of a present device (scattered order); {}:",
                writer.name()
            ),
            &names,
            &runs,
            writer != Writer::None,
        );
    }
    eprintln!("[infrastructure] maps: commits");
    let runs = rounds(
        rounds_n,
        &[&|| map_commit_run(&pm, dur), &|| map_commit_run(&im, dur)],
    );
    println!(
        "\nMap of {n} bindings, one commit on 1 thread (clone the map, insert or remove one binding; the old version dropped):\n"
    );
    println!("| Contender | wall ns per commit: median (lowest – highest round) | CPU ns per commit: median (lowest – highest) |");
    println!("|---|---|---|");
    for (name, rs) in names.iter().zip(&runs) {
        let (m, lo, hi) = spread(rs.iter().map(|r| r.ns_per_read).collect());
        let (cm, clo, chi) = spread(rs.iter().map(|r| r.cpu_ns_per_read).collect());
        println!("| {name} | {m:.0} ({lo:.0} – {hi:.0}) | {cm:.0} ({clo:.0} – {chi:.0}) |");
    }
}

/// Both maps hold the same bindings (the comparison is of equal work).
fn check_same<A: Map, B: Map>(a: &A, b: &B, n: usize) {
    for i in 1..=n + 10 {
        let k = device(i);
        assert_eq!(a.get(&k), b.get(&k), "maps differ at {k}");
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds_n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(15);
    let ms: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let dur = Duration::from_millis(ms);
    let only = args.next();
    let part = |p: &str| only.as_deref().is_none_or(|o| o == p);
    println!(
        "# Hand-written infrastructure against crates\n\n{rounds_n} rounds of {ms} ms per run, contenders interleaved; {} cores.",
        thread::available_parallelism().map_or(0, |n| n.get())
    );
    if part("cells") {
        cells(rounds_n, dur);
    }
    if part("maps") {
        maps(rounds_n, dur, N);
        maps(rounds_n, dur, 10_000);
    }
}
