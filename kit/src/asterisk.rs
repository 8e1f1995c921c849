//! Asterisk instances: a run folder made by `scripts/asterisk.sh mkrun` (configuration,
//! module, private ports), Asterisk booted in it, and what tests and benchmarks do with a
//! running instance (CLI, AMI sessions, logs, stop, restart, kill, CPU and memory).
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::ami::Ami;
use crate::process;
use crate::{
    asterisk_dir, free_port, fresh_dir, module_source, read_lossy, repo, runs_dir, tail,
    valgrind_dir, wait_until,
};

fn script() -> PathBuf {
    repo().join("scripts/asterisk.sh")
}

/// Whether the provisioned Asterisk is there; the error says how to get it.
fn check_provisioned() -> Result<(), String> {
    let ast = asterisk_dir().join("tree/usr/sbin/asterisk");
    if ast.exists() {
        Ok(())
    } else {
        Err(format!(
            "no provisioned Asterisk at {}: run scripts/test.sh (it provisions Asterisk and \
             builds the module before running the tests)",
            ast.display()
        ))
    }
}

/// How to build an instance: see [`Asterisk::builder`].
pub struct Builder {
    name: String,
    confs: Vec<(String, String)>,
    with_module: bool,
    module: Option<PathBuf>,
    module_noload: bool,
    run_dir: Option<PathBuf>,
    collect_module_lines: bool,
    /// Modules the generated modules.conf keeps from loading, loaded all the same.
    load: Vec<String>,
    /// SIP and AMI ports given by the caller (else free ones are picked).
    ports: Option<(u16, u16)>,
}

impl Builder {
    /// Adds or replaces a file of the instance's `etc/` (written after the samples;
    /// `127.0.0.1:5060` is replaced by the instance's SIP port as in the samples).
    pub fn conf(mut self, file: &str, content: &str) -> Self {
        self.confs.retain(|(f, _)| f != file);
        self.confs.push((file.to_string(), content.to_string()));
        self
    }

    /// Whether `res_deviceuser.so` is installed in the module dir (default: true).
    pub fn with_module(mut self, yes: bool) -> Self {
        self.with_module = yes;
        self
    }

    /// Installs this file as `res_deviceuser.so` instead of [`module_source`].
    pub fn module_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.module = Some(path.into());
        self
    }

    /// Installs the module but boots without it (`noload` in `modules.conf`), so that a
    /// `module load` later can be timed (default: false).
    pub fn module_noload(mut self, yes: bool) -> Self {
        self.module_noload = yes;
        self
    }

    /// Loads `module` (`res_prometheus.so`) although the generated modules.conf keeps it
    /// from loading (its `noload` line is dropped).
    pub fn load_module(mut self, module: &str) -> Self {
        self.load.push(module.to_string());
        self
    }

    /// Boots in this folder (emptied first) instead of a fresh one under `target/it-runs/`,
    /// and keeps it after the instance stops.
    pub fn run_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.run_dir = Some(dir.into());
        self
    }

    /// Boots on these SIP and AMI ports instead of free ones picked by the kit, e.g. when
    /// another instance's configuration names them (several nodes); no retry with other
    /// ports on a clash.
    pub fn ports(mut self, sip: u16, ami: u16) -> Self {
        self.ports = Some((sip, ami));
        self
    }

    /// Whether the module's log lines go to [`module_lines_file`] when the instance is
    /// dropped (default: true; `scripts/test.sh` checks them for PINs after the suite).
    pub fn collect_module_lines(mut self, yes: bool) -> Self {
        self.collect_module_lines = yes;
        self
    }

    /// Boots the instance; panics (with the Asterisk log) if it does not boot.
    pub fn start(self) -> Asterisk {
        match self.start_result() {
            Ok(a) => a,
            Err(e) => panic!("{e}"),
        }
    }

    /// Boots the instance; `Err` (with the end of the log) if Asterisk does not boot,
    /// e.g. because the module failed to load. Panics if the kit cannot make the run folder
    /// at all (no provisioned Asterisk, no module file).
    pub fn start_result(self) -> Result<Asterisk, String> {
        match self.try_start() {
            Ok(a) => Ok(a),
            Err(Failure::Boot(e)) => Err(e),
            Err(Failure::Setup(e)) => panic!("{e}"),
        }
    }

    /// Boots the instance; every failure is an `Err`, also a missing provisioned Asterisk or
    /// module file, for drivers that go on with other work.
    pub fn start_or_err(self) -> Result<Asterisk, String> {
        self.try_start().map_err(|f| match f {
            Failure::Boot(e) | Failure::Setup(e) => e,
        })
    }

    fn try_start(self) -> Result<Asterisk, Failure> {
        check_provisioned().map_err(Failure::Setup)?;
        let module = if self.with_module {
            let m = self.module.clone().unwrap_or_else(module_source);
            if !m.exists() {
                return Err(Failure::Setup(format!(
                    "module {} does not exist: run scripts/test.sh (it builds the module), \
                     or set DEVICEUSER_MODULE",
                    m.display()
                )));
            }
            Some(m)
        } else {
            None
        };
        let run = match &self.run_dir {
            Some(dir) => {
                let _ = fs::remove_dir_all(dir);
                fs::create_dir_all(dir)
                    .map_err(|e| Failure::Setup(format!("cannot create {}: {e}", dir.display())))?;
                dir.clone()
            }
            None => fresh_dir(&self.name),
        };
        let mut last_err = String::new();
        // Ports are free when picked, but another process may grab them before
        // Asterisk binds: retry with new ones (not with ports the caller gave).
        let attempts = if self.ports.is_some() { 1 } else { 4 };
        for _attempt in 0..attempts {
            let (sip_port, ami_port) = self.ports.unwrap_or_else(|| (free_port(), free_port()));
            let mut ast = Asterisk {
                run: run.clone(),
                sip_port,
                ami_port,
                pid: 0,
                name: self.name.clone(),
                keep: self.run_dir.is_some(),
                collect_module_lines: self.collect_module_lines,
            };
            if let Err(e) = ast.mkrun(module.as_deref(), &self.confs, self.module_noload) {
                ast.keep = true;
                return Err(Failure::Setup(e));
            }
            if !self.load.is_empty() {
                let conf = ast.read_conf("modules.conf");
                let kept: String = conf
                    .lines()
                    .filter(|l| {
                        !self.load.iter().any(|m| {
                            l.trim()
                                .strip_prefix("noload")
                                .is_some_and(|r| r.trim_start().trim_start_matches('=').trim() == m)
                        })
                    })
                    .map(|l| format!("{l}\n"))
                    .collect();
                ast.write_conf("modules.conf", &kept);
            }
            match ast.boot() {
                Ok(()) => {
                    if ast.bind_failed() {
                        last_err = format!("port clash (sip {sip_port}, ami {ami_port})");
                        ast.stop();
                        continue;
                    }
                    return Ok(ast);
                }
                Err(e) => {
                    let clash = ast.bind_failed();
                    // Nothing is running: do not let Drop report a second time.
                    ast.keep = true;
                    ast.pid = 0;
                    if clash {
                        last_err = e;
                        continue;
                    }
                    return Err(Failure::Boot(e));
                }
            }
        }
        Err(Failure::Boot(format!(
            "Asterisk could not bind its ports: {last_err}"
        )))
    }
}

/// Why an instance did not start.
enum Failure {
    /// The kit could not make the run folder (provisioning, module file, `mkrun`).
    Setup(String),
    /// Asterisk did not boot in it.
    Boot(String),
}

/// A running Asterisk instance. Dropping it stops it.
pub struct Asterisk {
    /// The run folder (etc/, log/, modules/, ...).
    pub run: PathBuf,
    pub sip_port: u16,
    pub ami_port: u16,
    /// PID of the running Asterisk (0 when stopped).
    pub pid: u32,
    name: String,
    keep: bool,
    collect_module_lines: bool,
}

impl Asterisk {
    /// `name` names the run folder: `target/it-runs/<name>-<pid>-<n>` (unless
    /// [`Builder::run_dir`] names one).
    pub fn builder(name: &str) -> Builder {
        Builder {
            name: name.to_string(),
            confs: Vec::new(),
            with_module: true,
            module: None,
            module_noload: false,
            run_dir: None,
            collect_module_lines: true,
            load: Vec::new(),
            ports: None,
        }
    }

    /// An instance with the module and the sample configuration.
    pub fn start(name: &str) -> Asterisk {
        Self::builder(name).start()
    }

    fn script(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new("bash")
            .arg(script())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script().display()));
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn mkrun(
        &self,
        module: Option<&Path>,
        confs: &[(String, String)],
        module_noload: bool,
    ) -> Result<(), String> {
        let run = self.run.to_str().unwrap().to_string();
        let sip = self.sip_port.to_string();
        let ami = self.ami_port.to_string();
        let mut args = vec![
            "mkrun",
            run.as_str(),
            "--sip-port",
            sip.as_str(),
            "--ami-port",
            ami.as_str(),
        ];
        let m;
        if let Some(module) = module {
            m = module.to_str().unwrap().to_string();
            args.push("--module");
            args.push(&m);
        }
        let (ok, out, err) = self.script(&args);
        if !ok {
            return Err(format!("asterisk.sh mkrun failed:\n{out}\n{err}"));
        }
        for (file, content) in confs {
            self.write_conf(file, content);
        }
        if module_noload {
            let path = self.etc().join("modules.conf");
            let mut modules = read_lossy(&path);
            modules.push_str("noload = res_deviceuser.so\n");
            fs::write(&path, modules).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(())
    }

    /// Writes a file of `etc/` now (for a later reload or restart), with the same
    /// SIP port substitution as the samples.
    pub fn write_conf(&self, file: &str, content: &str) {
        let content = content.replace("127.0.0.1:5060", &format!("127.0.0.1:{}", self.sip_port));
        let path = self.etc().join(file);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(&path, content)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }

    /// Contents of a file of `etc/`.
    pub fn read_conf(&self, file: &str) -> String {
        read_lossy(&self.etc().join(file))
    }

    pub fn etc(&self) -> PathBuf {
        self.run.join("etc")
    }

    fn boot(&mut self) -> Result<(), String> {
        let run = self.run.to_str().unwrap().to_string();
        let (ok, out, err) = self.script(&["start", &run]);
        if !ok {
            return Err(format!(
                "Asterisk did not boot in {}:\n{err}\n--- full.log (end) ---\n{}\n--- stdout.log (end) ---\n{}",
                self.run.display(),
                tail(&self.log(), 60),
                tail(&self.stdout_log(), 60)
            ));
        }
        self.pid = out
            .trim()
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| format!("asterisk.sh start printed no pid: {out:?}"))?;
        Ok(())
    }

    /// True if the log says a listener could not bind (port taken by someone else).
    fn bind_failed(&self) -> bool {
        let log = format!("{}\n{}", self.log(), self.stdout_log());
        log.lines().any(|l| {
            l.contains("Address already in use")
                && (l.contains(&self.sip_port.to_string())
                    || l.contains(&self.ami_port.to_string())
                    || l.contains("transport")
                    || l.contains("manager")
                    || l.contains("bind"))
        })
    }

    /// Runs a CLI command (`asterisk -rx`) and returns its output. Beware: a failing
    /// command still "succeeds"; check the text.
    pub fn cli(&self, cmd: &str) -> String {
        assert!(
            self.pid != 0 && process::alive(self.pid),
            "cli({cmd:?}): Asterisk is not running"
        );
        let run = self.run.to_str().unwrap().to_string();
        let (_ok, out, err) = self.script(&["cli", &run, cmd]);
        if out.is_empty() {
            err
        } else {
            out
        }
    }

    /// The value of a `<name>: <value>` counter line of `deviceuser show stats summary`.
    pub fn stats_counter(&self, name: &str) -> String {
        let out = self.cli("deviceuser show stats summary");
        out.lines()
            .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(": "))
            .unwrap_or_else(|| panic!("no `{name}` line: {out}"))
            .to_string()
    }

    /// A counter of `deviceuser show stats summary` that is a plain count.
    pub fn stats_count(&self, name: &str) -> u64 {
        let v = self.stats_counter(name);
        v.parse()
            .unwrap_or_else(|_| panic!("`{name}` is not a count: {v}"))
    }

    /// Waits until the module's commit thread has applied all queued work; false on timeout.
    pub fn commit_work_applied(&self, timeout: Duration) -> bool {
        wait_until(timeout, || {
            self.stats_count(
                "Commit work queued (AstDB writes, devices to release, states to publish)",
            ) == 0
        })
    }

    /// The module's own heap in bytes (`Module heap in use: 1.2 MB (1234567 bytes)`).
    pub fn module_heap_bytes(&self) -> u64 {
        let v = self.stats_counter("Module heap in use");
        v.split_once(" MB (")
            .and_then(|(_, b)| b.strip_suffix(" bytes)")?.parse().ok())
            .unwrap_or_else(|| panic!("heap line: {v}"))
    }

    /// A logged-in AMI session as `deviceuser` (all permissions).
    pub fn ami(&self) -> Ami {
        self.ami_as("deviceuser", "deviceuser")
            .unwrap_or_else(|e| panic!("AMI login: {e}"))
    }

    /// A logged-in AMI session that receives the module's events (class `agent`).
    pub fn ami_events(&self) -> Ami {
        let mut ami = self.ami();
        let r = ami.action(&[("Action", "Events"), ("EventMask", "agent")]);
        assert!(r.is_success(), "Events: {r}");
        ami
    }

    /// `module unload` then `module load` of res_deviceuser; returns the log mark taken
    /// between the two, so a test can wait for what the new load logged.
    pub fn unload_and_load(&self) -> usize {
        self.cli("module unload res_deviceuser.so");
        let mark = self.log_mark();
        self.cli("module load res_deviceuser.so");
        mark
    }

    /// How many times `prompt` started playing on a channel of `endpoint` after `mark`
    /// (needs verbose messages in full.log).
    pub fn prompts_played(&self, mark: usize, endpoint: &str, prompt: &str) -> usize {
        let chan = format!("<PJSIP/{endpoint}-");
        let what = format!("Playing '{prompt}.");
        self.log_since(mark)
            .lines()
            .filter(|l| l.contains(&chan) && l.contains(&what))
            .count()
    }

    /// An AMI session as another manager user (`readonly`/`readonly` exists).
    pub fn ami_as(&self, user: &str, secret: &str) -> Result<Ami, String> {
        Ami::connect(self.ami_port, user, secret)
    }

    pub fn log_path(&self) -> PathBuf {
        self.run.join("log/full.log")
    }

    /// The whole `log/full.log`.
    pub fn log(&self) -> String {
        read_lossy(&self.log_path())
    }

    /// Current length of the log, to look only at what comes later
    /// ([`Asterisk::log_since`], [`Asterisk::wait_log_since`]).
    pub fn log_mark(&self) -> usize {
        fs::metadata(self.log_path())
            .map(|m| m.len() as usize)
            .unwrap_or(0)
    }

    /// The log written after `mark`.
    pub fn log_since(&self, mark: usize) -> String {
        let bytes = fs::read(self.log_path()).unwrap_or_default();
        String::from_utf8_lossy(bytes.get(mark..).unwrap_or(&[])).into_owned()
    }

    /// Waits until the log contains `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        self.wait_log_since(0, needle, timeout)
    }

    /// Waits until the log written after `mark` contains `needle`.
    pub fn wait_log_since(&self, mark: usize, needle: &str, timeout: Duration) -> bool {
        wait_until(timeout, || self.log_since(mark).contains(needle))
    }

    /// Asterisk's stdout/stderr (`log/stdout.log`).
    pub fn stdout_log(&self) -> String {
        read_lossy(&self.run.join("log/stdout.log"))
    }

    /// The CSV CDRs (`log/cdr-csv/Master.csv`).
    pub fn cdr_csv(&self) -> String {
        read_lossy(&self.run.join("log/cdr-csv/Master.csv"))
    }

    /// `res_deviceuser.so` as installed in this instance's module dir.
    pub fn module_path(&self) -> PathBuf {
        self.run.join("modules/res_deviceuser.so")
    }

    /// Number of lines of `/proc/<pid>/maps` containing `needle`
    /// (e.g. "res_deviceuser.so": 0 once the module is unloaded).
    pub fn maps_lines(&self, needle: &str) -> usize {
        fs::read_to_string(format!("/proc/{}/maps", self.pid))
            .unwrap_or_else(|e| panic!("cannot read maps of {}: {e}", self.pid))
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Whether the Asterisk process is alive.
    pub fn is_running(&self) -> bool {
        self.pid != 0 && process::alive(self.pid)
    }

    /// Stops Asterisk (SIGTERM, then SIGKILL). Same run folder: `start_again` or
    /// `restart` boot it again with its AstDB. Under valgrind: `core stop now` (SIGTERM
    /// if the CLI does not answer), then up to 600 s for memcheck's leak check.
    pub fn stop(&mut self) {
        if self.pid == 0 {
            return;
        }
        let pid = self.pid;
        let grace = if valgrind_dir().is_some() {
            let run = self.run.to_str().unwrap().to_string();
            let (ok, _, _) = self.script(&["cli", &run, "core stop now"]);
            if !ok {
                process::signal(pid, "TERM");
            }
            Duration::from_secs(600)
        } else {
            process::signal(pid, "TERM");
            Duration::from_secs(10)
        };
        let deadline = Instant::now() + grace;
        while process::alive(pid) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        if process::alive(pid) {
            if valgrind_dir().is_some() {
                eprintln!("Asterisk {pid} under valgrind did not exit within {grace:?}: SIGKILL");
            }
            process::signal(pid, "KILL");
            wait_until(Duration::from_secs(5), || !process::alive(pid));
        }
        let _ = fs::remove_file(self.run.join("rundir/asterisk.pid"));
        self.pid = 0;
    }

    /// Boots a stopped instance again (same run folder, ports and configuration).
    pub fn start_again(&mut self) -> Result<(), String> {
        assert!(!self.is_running(), "start_again: still running");
        self.boot()
    }

    /// Stop and start (graceful).
    pub fn restart(&mut self) {
        self.stop();
        if let Err(e) = self.boot() {
            panic!("restart: {e}");
        }
    }

    /// SIGKILL (no shutdown at all, like a crash), then start.
    pub fn kill9_and_restart(&mut self) {
        self.kill9();
        if let Err(e) = self.boot() {
            panic!("restart after SIGKILL: {e}");
        }
    }

    /// SIGKILL (no shutdown at all, like a crash); the instance stays stopped
    /// ([`start_again`](Asterisk::start_again) boots it).
    pub fn kill9(&mut self) {
        let pid = self.pid;
        assert!(pid != 0, "kill9: not running");
        process::signal(pid, "KILL");
        assert!(
            wait_until(Duration::from_secs(10), || !process::alive(pid)),
            "pid {pid} survived SIGKILL"
        );
        // The main thread may be a zombie while other threads still hold the control
        // socket: a new Asterisk would then refuse to start ("already running").
        let ctl = self.run.join("rundir/asterisk.ctl");
        assert!(
            wait_until(Duration::from_secs(10), || {
                std::os::unix::net::UnixStream::connect(&ctl).is_err()
            }),
            "the killed Asterisk still answers on {}",
            ctl.display()
        );
        let _ = fs::remove_file(self.run.join("rundir/asterisk.pid"));
        self.pid = 0;
    }

    /// CPU time Asterisk used so far (all threads), in seconds.
    pub fn cpu(&self) -> f64 {
        process::cpu_seconds(self.pid)
    }

    /// Asterisk's resident memory (VmRSS), in bytes.
    pub fn rss(&self) -> u64 {
        process::rss_bytes(self.pid)
    }

    /// Context switches of all of Asterisk's threads so far.
    pub fn switches(&self) -> u64 {
        process::switches(self.pid)
    }

    /// CPU time of each of Asterisk's threads so far, in nanoseconds, by thread id.
    pub fn thread_cpu_ns(&self) -> std::collections::HashMap<u32, u64> {
        process::thread_cpu_ns(self.pid)
    }

    /// The ids of Asterisk's threads named `name`.
    pub fn threads_named(&self, name: &str) -> Vec<u32> {
        process::threads_named(self.pid, name)
    }

    /// Waits for Asterisk to have nothing left to do: at most one clock tick of CPU over
    /// 300 ms, up to 120 s ([`process::wait_idle`]). Returns how long it took.
    pub fn settle(&self) -> Duration {
        process::wait_idle(
            self.pid,
            Duration::from_millis(300),
            Duration::from_secs(120),
        )
    }

    /// Keep the run folder after the test (it is kept anyway when the test fails).
    pub fn keep_run(&mut self) {
        self.keep = true;
    }

    /// Prints the ends of the logs to stderr.
    pub fn dump_logs(&self) {
        eprintln!(
            "===== Asterisk {} ({}) full.log, last 150 lines =====\n{}\n===== stdout.log, last 40 lines =====\n{}\n=====",
            self.name,
            self.run.display(),
            tail(&self.log(), 150),
            tail(&self.stdout_log(), 40)
        );
    }
}

/// Every line the module logged in any instance of the test run, collected for
/// `scripts/test.sh`, which checks after the whole suite that no configured PIN is in them.
pub fn module_lines_file() -> PathBuf {
    runs_dir().join("module-log-lines.txt")
}

impl Asterisk {
    fn append_module_lines(&self) {
        if !self.collect_module_lines {
            return;
        }
        let lines: String = self
            .log()
            .lines()
            .filter(|l| l.contains(" res_deviceuser: "))
            .map(|l| format!("{l}\n"))
            .collect();
        if let Ok(mut f) = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(module_lines_file())
        {
            let _ = std::io::Write::write_all(&mut f, lines.as_bytes());
        }
    }
}

impl Drop for Asterisk {
    fn drop(&mut self) {
        let panicking = thread::panicking();
        self.stop();
        self.append_module_lines();
        if panicking {
            self.dump_logs();
        } else if !self.keep && std::env::var_os("DEVICEUSER_KEEP_RUNS").is_none() {
            let _ = fs::remove_dir_all(&self.run);
        }
    }
}
