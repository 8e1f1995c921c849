//! What the kit reads from `/proc` about a process (liveness, CPU time per process, per
//! process tree and per thread, context switches, RSS) and the signals it sends.
use std::collections::HashMap;
use std::fs;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

/// Whether the process is alive; a zombie (exited, not yet reaped) counts as dead.
pub fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => match stat.rfind(')') {
            Some(i) => !matches!(
                stat[i + 1..].trim_start().chars().next(),
                Some('Z') | Some('X')
            ),
            None => true,
        },
        Err(_) => false,
    }
}

/// Sends signal `sig` (`TERM`, `KILL`, ...) to the process; errors are ignored.
pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Clock ticks per second of `/proc/<pid>/stat` times.
pub fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// The fields of `/proc/<pid>/stat` after the command name: field 3 (state) is index 0.
fn stat_fields(pid: u32) -> Vec<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    rest.split_whitespace()
        .map(|v| v.parse::<u64>().unwrap_or(0))
        .collect()
}

/// Field `n` of `/proc/<pid>/stat` (numbered from 1, as in proc(5)), 0 when missing.
fn stat_field(f: &[u64], n: usize) -> u64 {
    f.get(n - 3).copied().unwrap_or(0)
}

/// utime + stime of a process (all its threads), in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let f = stat_fields(pid);
    (stat_field(&f, 14) + stat_field(&f, 15)) as f64 / clock_ticks()
}

/// Time each thread of a process has run on a CPU, in nanoseconds, by thread id (the
/// scheduler's own count, `/proc/<pid>/task/<tid>/schedstat`: exact, where `stat`'s times
/// are in clock ticks).
pub fn thread_run_ns(pid: u32) -> std::collections::HashMap<u32, u64> {
    let mut out = std::collections::HashMap::new();
    for t in fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let Some(tid) = t.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let ns = fs::read_to_string(t.path().join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok());
        if let Some(ns) = ns {
            out.insert(tid, ns);
        }
    }
    out
}

/// CPU time of a process and its children, in seconds: its own, that of its children that
/// exited and were waited for (cutime + cstime), and that of its living children (a server
/// that forks a process per connection, as PostgreSQL does, is measured whole).
pub fn tree_cpu_seconds(pid: u32) -> f64 {
    let f = stat_fields(pid);
    let own = stat_field(&f, 14) + stat_field(&f, 15) + stat_field(&f, 16) + stat_field(&f, 17);
    let children: u64 = (fs::read_dir("/proc").into_iter().flatten().flatten())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .map(stat_fields)
        .filter(|c| stat_field(c, 4) == u64::from(pid))
        .map(|c| stat_field(&c, 14) + stat_field(&c, 15))
        .sum();
    (own + children) as f64 / clock_ticks()
}

/// `(tid, content)` of the file `name` of each of the process's threads.
fn task_files(pid: u32, name: &str) -> impl Iterator<Item = (u32, String)> + '_ {
    fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(move |t| {
            let tid = t.file_name().to_str()?.parse().ok()?;
            Some((tid, fs::read_to_string(t.path().join(name)).ok()?))
        })
}

/// CPU time of each of the process's threads so far, in nanoseconds, by thread id
/// (`/proc/<pid>/task/<tid>/schedstat`: finer than the clock ticks of `stat`).
pub fn thread_cpu_ns(pid: u32) -> HashMap<u32, u64> {
    task_files(pid, "schedstat")
        .filter_map(|(tid, s)| Some((tid, s.split_whitespace().next()?.parse().ok()?)))
        .collect()
}

/// The ids of the process's threads named `name` (`/proc/<pid>/task/<tid>/comm`).
pub fn threads_named(pid: u32, name: &str) -> Vec<u32> {
    task_files(pid, "comm")
        .filter(|(_, comm)| comm.trim_end() == name)
        .map(|(tid, _)| tid)
        .collect()
}

/// Context switches of all the process's threads so far (voluntary + involuntary): how often
/// its threads went to sleep and were woken, or were preempted.
pub fn switches(pid: u32) -> u64 {
    task_files(pid, "status")
        .map(|(_, status)| {
            status
                .lines()
                .filter_map(|l| {
                    l.strip_prefix("voluntary_ctxt_switches:")
                        .or_else(|| l.strip_prefix("nonvoluntary_ctxt_switches:"))
                })
                .filter_map(|v| v.trim().parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum()
}

/// VmRSS of a process, in bytes.
pub fn rss_bytes(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Waits until the process used at most one clock tick of CPU over the last `window` (queues
/// drained, nothing left to do), up to `max`. Returns how long it took.
pub fn wait_idle(pid: u32, window: Duration, max: Duration) -> Duration {
    let start = Instant::now();
    let tick = 1.0 / clock_ticks();
    let mut last = cpu_seconds(pid);
    loop {
        thread::sleep(window);
        let now = cpu_seconds(pid);
        if now - last <= tick + 1e-9 || start.elapsed() > max {
            return start.elapsed();
        }
        last = now;
    }
}
