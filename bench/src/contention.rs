//! Read path of the binding table under a concurrent writer, against `Mutex<HashMap>` and
//! `RwLock<HashMap>` doing the same reads. Shared by the criterion benchmark (throughput)
//! and the driver (worst-case read latency).
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use deviceuser_core::config::{RawConfig, RawSection, RawVar};
use deviceuser_core::{BindingTable, Config, LoginMode, Reason};

use crate::conf::{device, user};

/// Users and devices in the table.
pub const SIZE: usize = 10_000;
/// Users bound at the start (the writer toggles the others).
pub const BOUND: usize = SIZE / 2;

/// A table that answers "what do I dial for this user" and takes logins and logouts.
pub trait Table: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// Copies the dial string of a user's devices (`&`-joined, empty when logged out) into
    /// `out`, a buffer the reader reuses, as `DEVICEUSER_DIAL()` fills Asterisk's buffer.
    fn dial_into(&self, user: &str, out: &mut String);
    /// Whether someone is on the device.
    fn occupied(&self, device: &str) -> bool;
    fn login(&self, user: &str, device: &str);
    fn logout(&self, device: &str);
}

pub fn var(key: &str, value: &str) -> RawVar {
    RawVar {
        key: key.into(),
        value: value.into(),
        line: 0,
    }
}

/// The raw model of a config of `count` users and devices (`PJSIP/d<n>`), as read from a
/// file.
pub fn raw_config(count: usize) -> RawConfig {
    let mut sections = Vec::with_capacity(2 * count);
    for n in 1..=count {
        sections.push(RawSection {
            name: device(n),
            line: 0,
            vars: vec![
                var("type", "device"),
                var("dial", &format!("PJSIP/{}", device(n))),
            ],
        });
        sections.push(RawSection {
            name: user(n),
            line: 0,
            vars: vec![
                var("type", "user"),
                var("password", "1234"),
                var("fullname", &format!("Operator {n}")),
            ],
        });
    }
    RawConfig {
        file: "res_deviceuser.conf".into(),
        sections,
    }
}

/// A validated config of `SIZE` users and devices (`PJSIP/d<n>`).
pub fn config() -> Config {
    Config::from_raw(&raw_config(SIZE))
        .unwrap_or_else(|e| panic!("bench config is invalid: {e:?}"))
        .config
}

pub struct Snapshots(BindingTable);

impl Snapshots {
    pub fn new() -> Self {
        let t = BindingTable::new(config(), 0);
        for n in 1..=BOUND {
            t.login(&user(n), &device(n), LoginMode::Admin, 0, |_| {})
                .expect("login");
        }
        Snapshots(t)
    }
}

impl Default for Snapshots {
    fn default() -> Self {
        Self::new()
    }
}

impl Table for Snapshots {
    fn name(&self) -> &'static str {
        "BindingTable (snapshot)"
    }
    fn dial_into(&self, user: &str, out: &mut String) {
        self.0.with_snapshot(|s| out.push_str(s.dial(user)))
    }
    fn occupied(&self, device: &str) -> bool {
        self.0.with_snapshot(|s| s.user_on(device).is_some())
    }
    fn login(&self, user: &str, device: &str) {
        let _ = self.0.login(user, device, LoginMode::Admin, 0, |_| {});
    }
    fn logout(&self, device: &str) {
        let _ = self.0.logout_device(device, Reason::Admin, 0, |_| {});
    }
}

/// The same data a lock-based module would keep: device → user, user → devices, and the
/// dial strings.
#[derive(Default)]
pub struct Maps {
    by_device: HashMap<String, String>,
    by_user: HashMap<String, Vec<String>>,
    dial: HashMap<String, String>,
}

impl Maps {
    fn new() -> Self {
        let mut m = Maps::default();
        for n in 1..=SIZE {
            m.dial.insert(device(n), format!("PJSIP/{}", device(n)));
        }
        for n in 1..=BOUND {
            m.bind(&user(n), &device(n));
        }
        m
    }

    fn bind(&mut self, user: &str, device: &str) {
        self.unbind(device);
        self.by_device.insert(device.into(), user.into());
        let ds = self.by_user.entry(user.into()).or_default();
        ds.push(device.into());
        ds.sort();
    }

    fn unbind(&mut self, device: &str) {
        if let Some(u) = self.by_device.remove(device) {
            if let Some(ds) = self.by_user.get_mut(&u) {
                ds.retain(|d| d != device);
                if ds.is_empty() {
                    self.by_user.remove(&u);
                }
            }
        }
    }

    fn dial_into(&self, user: &str, out: &mut String) {
        let Some(ds) = self.by_user.get(user) else {
            return;
        };
        for dial in ds.iter().filter_map(|d| self.dial.get(d)) {
            if !out.is_empty() {
                out.push('&');
            }
            out.push_str(dial);
        }
    }
}

pub struct Locked(Mutex<Maps>);

impl Locked {
    pub fn new() -> Self {
        Locked(Mutex::new(Maps::new()))
    }
}

impl Default for Locked {
    fn default() -> Self {
        Self::new()
    }
}

impl Table for Locked {
    fn name(&self) -> &'static str {
        "Mutex<HashMap>"
    }
    fn dial_into(&self, user: &str, out: &mut String) {
        self.0.lock().unwrap().dial_into(user, out)
    }
    fn occupied(&self, device: &str) -> bool {
        self.0.lock().unwrap().by_device.contains_key(device)
    }
    fn login(&self, user: &str, device: &str) {
        self.0.lock().unwrap().bind(user, device);
    }
    fn logout(&self, device: &str) {
        self.0.lock().unwrap().unbind(device);
    }
}

pub struct ReadWrite(RwLock<Maps>);

impl ReadWrite {
    pub fn new() -> Self {
        ReadWrite(RwLock::new(Maps::new()))
    }
}

impl Default for ReadWrite {
    fn default() -> Self {
        Self::new()
    }
}

impl Table for ReadWrite {
    fn name(&self) -> &'static str {
        "RwLock<HashMap>"
    }
    fn dial_into(&self, user: &str, out: &mut String) {
        self.0.read().unwrap().dial_into(user, out)
    }
    fn occupied(&self, device: &str) -> bool {
        self.0.read().unwrap().by_device.contains_key(device)
    }
    fn login(&self, user: &str, device: &str) {
        self.0.write().unwrap().bind(user, device);
    }
    fn logout(&self, device: &str) {
        self.0.write().unwrap().unbind(device);
    }
}

/// Which read the readers do.
#[derive(Clone, Copy, Debug)]
pub enum Read {
    /// `dial_of(user)`: what an incoming call needs.
    DialOf,
    /// `user_on(device)`: what the device-state path needs.
    UserOn,
}

/// The writer thread next to the readers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writer {
    /// No writer.
    None,
    /// Logins and logouts back to back: every table gets as many writes as it can take.
    Busy,
    /// One login and one logout, then a 100 µs sleep: the same write load for every table
    /// (at most 20,000 writes/s), without taking a core from the readers.
    Paced,
}

impl Writer {
    pub fn name(self) -> &'static str {
        match self {
            Writer::None => "no-writer",
            Writer::Busy => "busy-writer",
            Writer::Paced => "paced-writer",
        }
    }
}

/// The writer: logs users `BOUND+1..` in and out, one change after the other, until `stop`.
pub fn spawn_writer<T: Table>(
    table: Arc<T>,
    stop: Arc<AtomicBool>,
    paced: bool,
) -> thread::JoinHandle<u64> {
    thread::spawn(move || {
        let mut writes = 0u64;
        let mut n = BOUND + 1;
        while !stop.load(Ordering::Relaxed) {
            table.login(&user(n), &device(n));
            table.logout(&device(n));
            writes += 2;
            if paced {
                thread::sleep(Duration::from_micros(100));
            }
            n = if n == SIZE { BOUND + 1 } else { n + 1 };
        }
        writes
    })
}

/// Keys the readers cycle through (half bound, half not).
pub fn keys(read: Read) -> Vec<String> {
    (1..=SIZE)
        .step_by(7)
        .map(|n| match read {
            Read::DialOf => user(n),
            Read::UserOn => device(n),
        })
        .collect()
}

fn do_read<T: Table>(table: &T, read: Read, key: &str, buf: &mut String) -> usize {
    match read {
        Read::DialOf => {
            buf.clear();
            table.dial_into(key, buf);
            buf.len()
        }
        Read::UserOn => table.occupied(key) as usize,
    }
}

/// `readers` threads each do `iters` reads while the writer runs; returns the wall time from
/// the common start until the last reader finished.
pub fn timed_reads<T: Table>(
    table: &Arc<T>,
    read: Read,
    readers: usize,
    iters: u64,
    writer: Writer,
) -> Duration {
    let stop = Arc::new(AtomicBool::new(false));
    let w = (writer != Writer::None).then(|| {
        spawn_writer(
            Arc::clone(table),
            Arc::clone(&stop),
            writer == Writer::Paced,
        )
    });
    let barrier = Arc::new(Barrier::new(readers + 1));
    let handles: Vec<_> = (0..readers)
        .map(|r| {
            let (table, barrier) = (Arc::clone(table), Arc::clone(&barrier));
            let keys = keys(read);
            thread::spawn(move || {
                barrier.wait();
                let mut sink = 0usize;
                let mut buf = String::with_capacity(256);
                for i in (r * 13..).take(iters as usize) {
                    sink =
                        sink.wrapping_add(do_read(&*table, read, &keys[i % keys.len()], &mut buf));
                }
                std::hint::black_box(sink);
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for h in handles {
        h.join().unwrap();
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    if let Some(w) = w {
        w.join().unwrap();
    }
    elapsed
}

/// Latency of single reads from `readers` threads reading for `dur` while a writer runs
/// (busy unless `writer` is `Paced`).
pub struct Latency {
    pub reads: u64,
    pub per_second: f64,
    pub writes_per_second: f64,
    pub p50: Duration,
    pub p999: Duration,
    pub max: Duration,
}

pub fn read_latency<T: Table>(
    table: Arc<T>,
    read: Read,
    readers: usize,
    dur: Duration,
    writer: Writer,
) -> Latency {
    let stop = Arc::new(AtomicBool::new(false));
    let w = spawn_writer(
        Arc::clone(&table),
        Arc::clone(&stop),
        writer == Writer::Paced,
    );
    let start = Instant::now();
    let handles: Vec<_> = (0..readers)
        .map(|r| {
            let table = Arc::clone(&table);
            let keys = keys(read);
            thread::spawn(move || {
                let mut samples = Vec::with_capacity(1 << 20);
                let mut i = r * 13;
                let end = Instant::now() + dur;
                let mut sink = 0usize;
                let mut buf = String::with_capacity(256);
                loop {
                    let t0 = Instant::now();
                    if t0 >= end {
                        break;
                    }
                    sink =
                        sink.wrapping_add(do_read(&*table, read, &keys[i % keys.len()], &mut buf));
                    samples.push(t0.elapsed());
                    i += 1;
                }
                std::hint::black_box(sink);
                samples
            })
        })
        .collect();
    let mut all: Vec<Duration> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let writes = w.join().unwrap();
    all.sort_unstable();
    let pick = |q: f64| all[((all.len() - 1) as f64 * q) as usize];
    Latency {
        reads: all.len() as u64,
        per_second: all.len() as f64 / elapsed.as_secs_f64(),
        writes_per_second: writes as f64 / elapsed.as_secs_f64(),
        p50: pick(0.5),
        p999: pick(0.999),
        max: *all.last().unwrap(),
    }
}
