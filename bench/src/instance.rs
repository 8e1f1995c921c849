//! Asterisk instances for the benchmarks: run folders made by `scripts/asterisk.sh` under
//! `bench/tmp/`, private ports, and what the benchmarks read from `/proc` (CPU time, RSS).
use std::collections::HashMap;
use std::fs;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ has a parent")
        .to_path_buf()
}

/// `res_deviceuser.so` to install: `DEVICEUSER_MODULE`, else the release build.
pub fn module_file() -> PathBuf {
    match std::env::var_os("DEVICEUSER_MODULE") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => repo().join("target/release/libres_deviceuser.so"),
    }
}

/// A port free on 127.0.0.1 for both UDP and TCP right now.
pub fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind an UDP port");
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
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

/// utime + stime of a process (all its threads), in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the command name: field 3 (state) is index 0, so utime (14) and stime (15) are 11, 12.
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) as f64 / clock_ticks()
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

pub struct Instance {
    pub name: String,
    pub run: PathBuf,
    pub sip_port: u16,
    pub ami_port: u16,
    pub pid: u32,
}

/// How to make an instance.
pub struct Spec<'a> {
    pub name: &'a str,
    /// Files of `etc/` written over the samples (`127.0.0.1:5060` becomes the instance's SIP
    /// address, as in the samples).
    pub confs: Vec<(&'a str, String)>,
    /// Boot without `res_deviceuser.so` (it stays in the module dir for `module load`).
    pub module_noload: bool,
}

fn script(args: &[&str]) -> Result<String, String> {
    let out = Command::new("bash")
        .arg(repo().join("scripts/asterisk.sh"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run scripts/asterisk.sh: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "asterisk.sh {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Instance {
    /// Makes a fresh run folder `bench/tmp/<name>` and boots Asterisk in it.
    pub fn start(spec: Spec<'_>) -> Result<Instance, String> {
        let run = repo().join("bench/tmp").join(spec.name);
        let _ = fs::remove_dir_all(&run);
        fs::create_dir_all(&run).map_err(|e| e.to_string())?;
        let module = module_file();
        if !module.exists() {
            return Err(format!(
                "{} does not exist: run cargo build --release",
                module.display()
            ));
        }
        let (sip_port, ami_port) = (free_port(), free_port());
        let run_s = run.to_string_lossy().into_owned();
        script(&[
            "mkrun",
            &run_s,
            "--sip-port",
            &sip_port.to_string(),
            "--ami-port",
            &ami_port.to_string(),
            "--module",
            &module.to_string_lossy(),
        ])?;
        for (file, content) in &spec.confs {
            let content = content.replace("127.0.0.1:5060", &format!("127.0.0.1:{sip_port}"));
            fs::write(run.join("etc").join(file), content).map_err(|e| e.to_string())?;
        }
        if spec.module_noload {
            let path = run.join("etc/modules.conf");
            let mut modules = fs::read_to_string(&path).map_err(|e| e.to_string())?;
            modules.push_str("noload = res_deviceuser.so\n");
            fs::write(&path, modules).map_err(|e| e.to_string())?;
        }
        let out = script(&["start", &run_s])?;
        let pid = out
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| format!("asterisk.sh start printed no pid: {out:?}"))?;
        Ok(Instance {
            name: spec.name.to_string(),
            run,
            sip_port,
            ami_port,
            pid,
        })
    }

    pub fn log_path(&self) -> PathBuf {
        self.run.join("log/full.log")
    }

    /// Current length of `full.log`, to read only what comes after.
    pub fn log_mark(&self) -> u64 {
        fs::metadata(self.log_path()).map_or(0, |m| m.len())
    }

    pub fn log_since(&self, mark: u64) -> String {
        let bytes = fs::read(self.log_path()).unwrap_or_default();
        String::from_utf8_lossy(bytes.get(mark as usize..).unwrap_or(&[])).into_owned()
    }

    pub fn cpu(&self) -> f64 {
        cpu_seconds(self.pid)
    }

    pub fn rss(&self) -> u64 {
        rss_bytes(self.pid)
    }

    pub fn switches(&self) -> u64 {
        switches(self.pid)
    }

    pub fn thread_cpu_ns(&self) -> HashMap<u32, u64> {
        thread_cpu_ns(self.pid)
    }

    pub fn threads_named(&self, name: &str) -> Vec<u32> {
        threads_named(self.pid, name)
    }

    /// Waits for Asterisk to have nothing left to do (see [`wait_idle`]).
    pub fn settle(&self) -> Duration {
        wait_idle(
            self.pid,
            Duration::from_millis(300),
            Duration::from_secs(120),
        )
    }

    pub fn stop(&mut self) {
        if self.pid != 0 {
            let _ = script(&["stop", &self.run.to_string_lossy()]);
            self.pid = 0;
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.stop();
    }
}
