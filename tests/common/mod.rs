//! Harness for the integration tests: real Asterisk instances (provisioned by
//! `scripts/provision.sh`, driven by `scripts/asterisk.sh`), an AMI client and
//! SIP peers (see [`sip`]).
//!
//! Every instance gets its own run folder under `target/it-runs/` and its own
//! ports, so tests run in parallel. The folder is removed when the test
//! passes and kept (with its logs) when it fails, or always when
//! `DEVICEUSER_KEEP_RUNS` is set.
//!
//! With `DEVICEUSER_VALGRIND=<dir>` every instance runs under valgrind memcheck
//! (`scripts/asterisk.sh` starts it, one `<dir>/vg-<pid>.log` per process) and every
//! wait of the harness is [`scaled`] by [`slowdown`].
#![allow(dead_code)]

pub mod cluster;
pub mod sip;

use std::collections::{HashSet, VecDeque};
use std::fs;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// Default timeout of harness waits (before [`scaled`]).
pub const TIMEOUT: Duration = Duration::from_secs(15);

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

/// A timeout of the harness or of a test, scaled by [`slowdown`]. Every wait of the
/// harness ([`poll`], [`wait_until`], AMI and SIP peer waits) applies it itself.
pub fn scaled(d: Duration) -> Duration {
    d * slowdown()
}

// ---------------------------------------------------------------------------
// Paths
// ---------------------------------------------------------------------------

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn script() -> PathBuf {
    repo().join("scripts/asterisk.sh")
}

/// Folder holding the provisioned Asterisk (`.asterisk`, or `DEVICEUSER_ASTERISK_DIR`).
pub fn asterisk_dir() -> PathBuf {
    std::env::var_os("DEVICEUSER_ASTERISK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".asterisk"))
}

/// The module under test: `DEVICEUSER_MODULE`, else `target/debug/libres_deviceuser.so`.
pub fn module_source() -> PathBuf {
    match std::env::var_os("DEVICEUSER_MODULE") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => repo().join("target/debug/libres_deviceuser.so"),
    }
}

fn check_provisioned() {
    let ast = asterisk_dir().join("tree/usr/sbin/asterisk");
    if !ast.exists() {
        panic!(
            "no provisioned Asterisk at {}: run scripts/test.sh (it provisions Asterisk and \
             builds the module before running the tests)",
            ast.display()
        );
    }
}

/// Where run folders go.
pub fn runs_dir() -> PathBuf {
    repo().join("target/it-runs")
}

static RUN_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh folder `target/it-runs/<name>-<pid>-<n>`.
pub fn fresh_dir(name: &str) -> PathBuf {
    let n = RUN_COUNTER.fetch_add(1, Ordering::SeqCst);
    let dir = runs_dir().join(format!("{}-{}-{}", name, std::process::id(), n));
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

/// A port that is free on 127.0.0.1 for both UDP and TCP right now, and that this
/// process has not handed out before.
pub fn free_port() -> u16 {
    for _ in 0..200 {
        let udp = match UdpSocket::bind("127.0.0.1:0") {
            Ok(s) => s,
            Err(_) => continue,
        };
        let port = udp.local_addr().unwrap().port();
        let tcp_ok = TcpListener::bind(("127.0.0.1", port)).is_ok();
        drop(udp);
        if !tcp_ok {
            continue;
        }
        if handed_out().lock().unwrap().insert(port) {
            return port;
        }
    }
    panic!("cannot find a free port on 127.0.0.1");
}

// ---------------------------------------------------------------------------
// Polling
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

fn tail(text: &str, lines: usize) -> String {
    let v: Vec<&str> = text.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

fn read_lossy(p: &Path) -> String {
    fs::read(p)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

fn process_alive(pid: u32) -> bool {
    // A zombie (exited, not yet reaped) counts as dead.
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

fn kill(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

// ---------------------------------------------------------------------------
// Asterisk
// ---------------------------------------------------------------------------

/// How to build an instance: see [`Asterisk::builder`].
pub struct Builder {
    name: String,
    confs: Vec<(String, String)>,
    with_module: bool,
    module: Option<PathBuf>,
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

    /// Boots the instance; panics (with the Asterisk log) if it does not boot.
    pub fn start(self) -> Asterisk {
        match self.start_result() {
            Ok(a) => a,
            Err(e) => panic!("{e}"),
        }
    }

    /// Boots the instance; `Err` (with the end of the log) if Asterisk does not boot,
    /// e.g. because the module failed to load.
    pub fn start_result(self) -> Result<Asterisk, String> {
        check_provisioned();
        let module = if self.with_module {
            let m = self.module.clone().unwrap_or_else(module_source);
            if !m.exists() {
                panic!(
                    "module {} does not exist: run scripts/test.sh (it builds the module), \
                     or set DEVICEUSER_MODULE",
                    m.display()
                );
            }
            Some(m)
        } else {
            None
        };
        let run = fresh_dir(&self.name);
        let mut last_err = String::new();
        // Ports are free when picked, but another process may grab them before
        // Asterisk binds: retry with new ones.
        for _attempt in 0..4 {
            let sip_port = free_port();
            let ami_port = free_port();
            let mut ast = Asterisk {
                run: run.clone(),
                sip_port,
                ami_port,
                pid: 0,
                name: self.name.clone(),
                keep: false,
            };
            ast.mkrun(module.as_deref(), &self.confs);
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
                    return Err(e);
                }
            }
        }
        Err(format!("Asterisk could not bind its ports: {last_err}"))
    }
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
}

impl Asterisk {
    /// `name` names the run folder: `target/it-runs/<name>-<pid>-<n>`.
    pub fn builder(name: &str) -> Builder {
        Builder {
            name: name.to_string(),
            confs: Vec::new(),
            with_module: true,
            module: None,
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

    fn mkrun(&self, module: Option<&Path>, confs: &[(String, String)]) {
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
        assert!(ok, "asterisk.sh mkrun failed:\n{out}\n{err}");
        for (file, content) in confs {
            self.write_conf(file, content);
        }
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
            self.pid != 0 && process_alive(self.pid),
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
        self.pid != 0 && process_alive(self.pid)
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
                kill(pid, "TERM");
            }
            Duration::from_secs(600)
        } else {
            kill(pid, "TERM");
            Duration::from_secs(10)
        };
        let deadline = Instant::now() + grace;
        while process_alive(pid) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        if process_alive(pid) {
            if valgrind_dir().is_some() {
                eprintln!("Asterisk {pid} under valgrind did not exit within {grace:?}: SIGKILL");
            }
            kill(pid, "KILL");
            wait_until(Duration::from_secs(5), || !process_alive(pid));
        }
        let _ = fs::remove_file(self.run.join("asterisk.pid"));
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
        let pid = self.pid;
        assert!(pid != 0, "kill9_and_restart: not running");
        kill(pid, "KILL");
        assert!(
            wait_until(Duration::from_secs(10), || !process_alive(pid)),
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
        let _ = fs::remove_file(self.run.join("asterisk.pid"));
        self.pid = 0;
        if let Err(e) = self.boot() {
            panic!("restart after SIGKILL: {e}");
        }
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
    fn collect_module_lines(&self) {
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
        self.collect_module_lines();
        if panicking {
            self.dump_logs();
        } else if !self.keep && std::env::var_os("DEVICEUSER_KEEP_RUNS").is_none() {
            let _ = fs::remove_dir_all(&self.run);
        }
    }
}

// ---------------------------------------------------------------------------
// AMI
// ---------------------------------------------------------------------------

pub use deviceuser_bench::ami::Message;
use deviceuser_bench::ami::{render, Wire};

/// A plain-socket AMI client (the wire side is the benchmark driver's [`Wire`]). Events that
/// arrive while waiting for something else are buffered for [`Ami::wait_event`].
pub struct Ami {
    wire: Wire,
    events: VecDeque<Message>,
    next_id: u64,
    /// The greeting line ("Asterisk Call Manager/x.y.z").
    pub banner: String,
    /// How long `action` waits for its response (default 15 s, [`scaled`]).
    pub timeout: Duration,
}

impl Ami {
    /// Connects and logs in.
    pub fn connect(port: u16, user: &str, secret: &str) -> Result<Ami, String> {
        let wire = Wire::connect(port)?;
        let mut ami = Ami {
            banner: wire.banner.clone(),
            wire,
            events: VecDeque::new(),
            next_id: 1,
            timeout: TIMEOUT,
        };
        let r = ami.try_action(&[("Action", "Login"), ("Username", user), ("Secret", secret)])?;
        if !r.is_success() {
            return Err(format!("login as {user} refused: {}", r.val("Message")));
        }
        Ok(ami)
    }

    /// The next complete message from the socket, or None at the deadline.
    fn read_message(&mut self, deadline: Instant) -> Result<Option<Message>, String> {
        self.wire.read_message(deadline)
    }

    fn send(&mut self, fields: &[(&str, &str)], id: &str) -> Result<(), String> {
        self.wire.send(render(fields, id).as_bytes())
    }

    fn new_id(&mut self) -> String {
        let id = format!("it-{}-{}", std::process::id(), self.next_id);
        self.next_id += 1;
        id
    }

    fn wait_response(&mut self, id: &str, deadline: Instant) -> Result<Message, String> {
        loop {
            match self.read_message(deadline)? {
                None => return Err(format!("no response to ActionID {id}")),
                Some(m) if m.response().is_some() && m.get("ActionID") == Some(id) => return Ok(m),
                Some(m) if m.event().is_some() => self.events.push_back(m),
                Some(_) => {}
            }
        }
    }

    /// Sends an action and returns its response; Err on timeout or a closed connection.
    pub fn try_action(&mut self, fields: &[(&str, &str)]) -> Result<Message, String> {
        let id = self.new_id();
        self.send(fields, &id)?;
        let deadline = Instant::now() + scaled(self.timeout);
        self.wait_response(&id, deadline)
    }

    /// Sends an action (`[("Action","Ping")]`) and returns its response.
    pub fn action(&mut self, fields: &[(&str, &str)]) -> Message {
        self.try_action(fields)
            .unwrap_or_else(|e| panic!("AMI action {fields:?}: {e}"))
    }

    /// Sends an action that must succeed; `what` names it in the failure.
    pub fn action_ok(&mut self, fields: &[(&str, &str)], what: &str) -> Message {
        let r = self.action(fields);
        assert!(r.is_success(), "{what}: {r}");
        r
    }

    /// `DeviceUserLogin` of `user` on `device`, which must succeed.
    pub fn login_ok(&mut self, user: &str, device: &str) {
        self.action_ok(
            &[
                ("Action", "DeviceUserLogin"),
                ("User", user),
                ("Device", device),
            ],
            &format!("login of {user} on {device}"),
        );
    }

    /// `DeviceUserLogout` of `user` everywhere, which must succeed.
    pub fn logout_ok(&mut self, user: &str) {
        self.action_ok(
            &[("Action", "DeviceUserLogout"), ("User", user)],
            &format!("logout of {user}"),
        );
    }

    /// A list action (e.g. `CoreShowChannels`): the response and the events carrying
    /// its ActionID, up to the one whose name ends with "Complete" (not included).
    pub fn list_action(&mut self, fields: &[(&str, &str)]) -> (Message, Vec<Message>) {
        let id = self.new_id();
        self.send(fields, &id)
            .unwrap_or_else(|e| panic!("AMI action {fields:?}: {e}"));
        let deadline = Instant::now() + scaled(self.timeout);
        let resp = self
            .wait_response(&id, deadline)
            .unwrap_or_else(|e| panic!("AMI action {fields:?}: {e}"));
        let mut items = Vec::new();
        if !resp.is_success() {
            return (resp, items);
        }
        // Events of this list may already be buffered (they never are before the
        // response in practice, but be safe).
        let mut i = 0;
        while i < self.events.len() {
            if self.events[i].get("ActionID") == Some(id.as_str()) {
                let m = self.events.remove(i).unwrap();
                if m.event().is_some_and(|e| e.ends_with("Complete")) {
                    return (resp, items);
                }
                items.push(m);
            } else {
                i += 1;
            }
        }
        loop {
            match self
                .read_message(deadline)
                .unwrap_or_else(|e| panic!("AMI list {fields:?}: {e}"))
            {
                None => panic!(
                    "AMI list {fields:?}: no *Complete event; got {} items",
                    items.len()
                ),
                Some(m) if m.get("ActionID") == Some(id.as_str()) => {
                    if m.event().is_some_and(|e| e.ends_with("Complete")) {
                        return (resp, items);
                    }
                    items.push(m);
                }
                Some(m) if m.event().is_some() => self.events.push_back(m),
                Some(_) => {}
            }
        }
    }

    /// Runs a CLI command through the `Command` action and returns its output.
    pub fn command(&mut self, cmd: &str) -> String {
        let r = self.action(&[("Action", "Command"), ("Command", cmd)]);
        r.output()
    }

    /// Waits for an event named `name` (case-insensitive) for which `pred` holds;
    /// earlier buffered events are searched first. Other events stay buffered.
    /// `timeout` is [`scaled`].
    pub fn wait_event(
        &mut self,
        name: &str,
        pred: impl Fn(&Message) -> bool,
        timeout: Duration,
    ) -> Option<Message> {
        let matches =
            |m: &Message| m.event().is_some_and(|e| e.eq_ignore_ascii_case(name)) && pred(m);
        if let Some(i) = self.events.iter().position(&matches) {
            return self.events.remove(i);
        }
        let deadline = Instant::now() + scaled(timeout);
        loop {
            match self.read_message(deadline) {
                Ok(Some(m)) if m.event().is_some() => {
                    if matches(&m) {
                        return Some(m);
                    }
                    self.events.push_back(m);
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// Reads whatever arrived and returns all buffered events, emptying the buffer.
    pub fn drain_events(&mut self) -> Vec<Message> {
        let deadline = Instant::now() + Duration::from_millis(50);
        while let Ok(Some(m)) = self.read_message(deadline) {
            if m.event().is_some() {
                self.events.push_back(m);
            }
        }
        self.events.drain(..).collect()
    }

    /// Forgets buffered events.
    pub fn clear_events(&mut self) {
        self.drain_events();
    }

    /// `Getvar` of a variable or function, globally or on a channel.
    pub fn getvar(&mut self, variable: &str, channel: Option<&str>) -> Option<String> {
        let mut f = vec![("Action", "Getvar"), ("Variable", variable)];
        if let Some(c) = channel {
            f.push(("Channel", c));
        }
        let r = self.action(&f);
        if r.is_success() {
            Some(r.val("Value").to_string())
        } else {
            None
        }
    }

    /// Global `Setvar` of a variable or function, which must succeed.
    pub fn setvar_ok(&mut self, variable: &str, value: &str) {
        self.action_ok(
            &[
                ("Action", "Setvar"),
                ("Variable", variable),
                ("Value", value),
            ],
            &format!("Setvar {variable} = {value}"),
        );
    }
}

impl Drop for Ami {
    fn drop(&mut self) {
        let _ = self.wire.send(b"Action: Logoff\r\n\r\n");
    }
}
