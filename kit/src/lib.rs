//! The kit the integration tests (`tests/`) and the benchmark driver (`bench/`) share: real
//! Asterisk instances ([`Asterisk`], provisioned by `scripts/provision.sh`, run folders made
//! and booted by `scripts/asterisk.sh`), an AMI client ([`Ami`]) and SIP peers ([`sip`]:
//! sipp scenarios, a presence watcher, baresip softphones); for several nodes sharing a
//! database, a PostgreSQL of the test's own and the nodes' configuration ([`cluster`]); the
//! administration console's web clients ([`web`]: HTTP, WebSocket, and WebDriver driving
//! headless Chromium).
//!
//! Every instance gets its own run folder and its own ports, so instances run in parallel.
//! A test's folder (under `target/it-runs/`) is removed when the test passes and kept (with
//! its logs) when it fails, or always when `DEVICEUSER_KEEP_RUNS` is set; a benchmark names
//! its own folder ([`Builder::run_dir`]) and keeps it.
//!
//! Where things are found:
//! - the repository: the parent of this crate's folder ([`repo`]);
//! - the provisioned Asterisk: `DEVICEUSER_ASTERISK_DIR`, else `.asterisk` ([`asterisk_dir`]);
//! - the module: `DEVICEUSER_MODULE`, else the debug build for tests ([`module_source`]) and
//!   the release build for benchmarks ([`module_built`]).
//!
//! With `DEVICEUSER_VALGRIND=<dir>` every instance runs under valgrind memcheck
//! (`scripts/asterisk.sh` starts it, one `<dir>/vg-<pid>.log` per process) and every wait of
//! the kit is [`scaled`] by [`slowdown`].

pub mod ami;
pub mod asterisk;
pub mod cluster;
pub mod process;
pub mod sip;
pub mod web;

pub use ami::{Ami, Message};
pub use asterisk::{module_lines_file, Asterisk, Builder};

use std::collections::HashSet;
use std::fs;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// Default timeout of the kit's waits (before [`scaled`]).
pub const TIMEOUT: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------
// Valgrind
// ---------------------------------------------------------------------------

/// The folder of the memcheck logs when the instances run under valgrind
/// (`DEVICEUSER_VALGRIND`).
pub fn valgrind_dir() -> Option<PathBuf> {
    std::env::var_os("DEVICEUSER_VALGRIND")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
}

/// How many times slower than natively the instances answer: 1, or under valgrind
/// `DEVICEUSER_VALGRIND_SCALE` (default 10).
pub fn slowdown() -> u32 {
    static SLOWDOWN: OnceLock<u32> = OnceLock::new();
    *SLOWDOWN.get_or_init(|| {
        if valgrind_dir().is_none() {
            return 1;
        }
        match std::env::var("DEVICEUSER_VALGRIND_SCALE") {
            Ok(v) => v
                .trim()
                .parse()
                .ok()
                .filter(|&n| n >= 1)
                .unwrap_or_else(|| panic!("DEVICEUSER_VALGRIND_SCALE={v:?}: not a factor >= 1")),
            Err(_) => 10,
        }
    })
}

/// A timeout of the kit or of a test, scaled by [`slowdown`]. Every wait of the kit
/// ([`poll`], [`wait_until`], AMI and SIP peer waits) applies it itself.
pub fn scaled(d: Duration) -> Duration {
    d * slowdown()
}

// ---------------------------------------------------------------------------
// Paths
// ---------------------------------------------------------------------------

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("kit/ has a parent")
        .to_path_buf()
}

/// Folder holding the provisioned Asterisk (`.asterisk`, or `DEVICEUSER_ASTERISK_DIR`).
pub fn asterisk_dir() -> PathBuf {
    std::env::var_os("DEVICEUSER_ASTERISK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".asterisk"))
}

/// `res_deviceuser.so` to install: `DEVICEUSER_MODULE`, else the build of `profile`
/// (`target/<profile>/libres_deviceuser.so`).
pub fn module_built(profile: &str) -> PathBuf {
    match std::env::var_os("DEVICEUSER_MODULE") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => repo()
            .join("target")
            .join(profile)
            .join("libres_deviceuser.so"),
    }
}

/// The module under test: `DEVICEUSER_MODULE`, else `target/debug/libres_deviceuser.so`.
pub fn module_source() -> PathBuf {
    module_built("debug")
}

/// Where the tests' run folders go.
pub fn runs_dir() -> PathBuf {
    repo().join("target/it-runs")
}

static RUN_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A number not handed out before in this process (run folders, peer folders).
pub(crate) fn next_number() -> usize {
    RUN_COUNTER.fetch_add(1, Ordering::SeqCst)
}

/// A fresh folder `target/it-runs/<name>-<pid>-<n>`.
pub fn fresh_dir(name: &str) -> PathBuf {
    let dir = runs_dir().join(format!("{}-{}-{}", name, std::process::id(), next_number()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

// ---------------------------------------------------------------------------
// Ports
// ---------------------------------------------------------------------------

fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(|| Mutex::new(HashSet::new()))
}

/// The ports [`free_port`] chooses from: below the machine's ephemeral range
/// (`net.ipv4.ip_local_port_range`), or above it when too little room is left below.
///
/// A server's port must never be one the kernel may give a client as its own: while a server
/// is down (a database stopped, an Asterisk killed), a client reconnecting to its port may be
/// given that very port as its local one, and a TCP connection to oneself then holds the
/// port, so the server cannot listen when it starts again.
fn server_ports() -> std::ops::Range<u32> {
    let (low, high) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut it = text.split_whitespace().map(|n| n.parse::<u32>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999));
    if low >= 12000 {
        10000..low
    } else {
        (high + 1).max(10000)..65536
    }
}

/// A port that is free on 127.0.0.1 for both UDP and TCP right now, outside the ephemeral
/// range ([`server_ports`]), and that this process has not handed out before. Processes
/// start at different random places in the range, so test binaries running side by side
/// rarely try the same port (and when they do, one of them finds it taken).
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let range = server_ports();
    let span = range.end - range.start;
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    let start = (hasher.finish() % u64::from(span)) as u32;
    for step in 0..span {
        let port = (range.start + (start + step * 7919) % span) as u16;
        if handed_out().lock().unwrap().contains(&port) {
            continue;
        }
        let free = UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && TcpListener::bind(("127.0.0.1", port)).is_ok();
        if free && handed_out().lock().unwrap().insert(port) {
            return port;
        }
    }
    panic!("cannot find a free port on 127.0.0.1 in {range:?}");
}

// ---------------------------------------------------------------------------
// Polling and text
// ---------------------------------------------------------------------------

/// Polls `f` every 20 ms until it returns `Some`, or `None` after `timeout` ([`scaled`]).
pub fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + scaled(timeout);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `f` until it is true; false after `timeout`.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    poll(timeout, || f().then_some(())).is_some()
}

/// Polls `count` (how many of something arrived, and what goes with that count) until it
/// reaches `want`, or stays the same for `quiet`; returns its last answer. An error from
/// `count` ends the wait.
pub fn wait_progress<T>(
    want: usize,
    quiet: Duration,
    mut count: impl FnMut() -> Result<(usize, T), String>,
) -> Result<(usize, T), String> {
    let mut last_progress = Instant::now();
    let mut last_count = 0;
    loop {
        let (n, at) = count()?;
        if n >= want {
            return Ok((n, at));
        }
        if n != last_count {
            last_count = n;
            last_progress = Instant::now();
        } else if last_progress.elapsed() > quiet {
            return Ok((n, at));
        }
        thread::sleep(Duration::from_millis(2));
    }
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let v: Vec<&str> = text.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// A file's contents as text (lossy UTF-8), or "" if it cannot be read.
pub fn read_lossy(p: &Path) -> String {
    fs::read(p)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_ports_are_never_ephemeral_and_never_handed_out_twice() {
        let text = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
        let bounds: Vec<u32> = text
            .split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect();
        let ephemeral = bounds[0]..=bounds[1];
        let mut seen = HashSet::new();
        for _ in 0..50 {
            let port = free_port();
            assert!(!ephemeral.contains(&u32::from(port)), "{port} is ephemeral");
            assert!(seen.insert(port), "{port} handed out twice");
        }
    }
}
