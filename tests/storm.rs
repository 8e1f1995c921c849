//! Reliability runs against a real Asterisk, too long for the normal `cargo test`
//! (every test here is `#[ignore]`d). Run them with `scripts/storm.sh`:
//!
//! - `storm`: 8 AMI sessions log users in and out and toggle DND while Custom device
//!   states churn, SIP phones register and unregister, and the module is reloaded,
//!   unloaded and loaded. In quiet moments (writers paused) the bindings, AstDB,
//!   AMI events, `DEVICEUSER_DIAL`, `DEVICE_STATE(DeviceUser:..)`, `DeviceUserUsers`
//!   and the hints must agree with the driver's model. `core show uptime` latency,
//!   RSS and the subscription's taskprocessor are recorded throughout.
//! - `crash`: the same load, with `kill -9` at random points; after each restart the
//!   bindings must equal the acknowledged state, minus what AstDB had not committed.
//! - `valgrind_flows`: the key flows once, against an Asterisk started elsewhere
//!   (by `scripts/valgrind.sh`, under memcheck).
//!
//! Settings (environment): `STORM_SECONDS` (default 300), `STORM_KILLS` (default 10),
//! `STORM_SEED`, `STORM_OUT` (summary file), `STORM_OP_DELAY_MS` (pause between the
//! operations of one session, default 0).
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Ami, Asterisk, Message};

const SESSIONS: usize = 8;
const USERS: u32 = 200;
const FIRST_USER: u32 = 5000;
const CUSTOM_DEVICES: u32 = 50;
const SIP_DEVICES: [&str; 3] = ["1000", "1001", "1002"];
const HINT_CONTEXT: &str = "storm-hints";
const CUSTOM_STATES: [&str; 5] = ["NOT_INUSE", "INUSE", "RINGING", "ONHOLD", "BUSY"];

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

/// xorshift64*: enough randomness for choosing operations, no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
    fn range_ms(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next() % (hi - lo + 1))
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn seed() -> u64 {
    env_u64(
        "STORM_SEED",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    )
}

fn out_file(default_name: &str) -> PathBuf {
    std::env::var_os("STORM_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::repo().join("target/storm").join(default_name))
}

fn write_summary(path: &Path, text: &str) {
    if let Some(p) = path.parent() {
        let _ = fs::create_dir_all(p);
    }
    fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    eprintln!("summary written to {}", path.display());
}

fn user_id(n: u32) -> String {
    (FIRST_USER + n).to_string()
}

fn custom_device(n: u32) -> String {
    format!("d{n}")
}

/// Dial string of a configured device.
fn dial_of(device: &str) -> String {
    match device.strip_prefix('d') {
        Some(n) => format!("Custom:dev/{n}"),
        None => format!("PJSIP/{device}"),
    }
}

fn vm_rss_kb(pid: u32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn threads_of(pid: u32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("Threads:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rfind(')')
                .and_then(|i| s[i + 1..].trim_start().chars().next())
                .is_some_and(|c| c != 'Z' && c != 'X')
        })
        .unwrap_or(false)
}

fn maps_lines(pid: u32, needle: &str) -> usize {
    fs::read_to_string(format!("/proc/{pid}/maps"))
        .map(|m| m.lines().filter(|l| l.contains(needle)).count())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------
// Configuration of the instance
// ---------------------------------------------------------------------------

fn deviceuser_conf() -> String {
    let mut c = String::from(
        "[general]\nmultiple_logins = yes\nhint_context = storm-hints\nallowed_numbers = 112,911\n\n",
    );
    for d in SIP_DEVICES {
        let _ = writeln!(
            c,
            "[{d}]\ntype = device\nmode = adhoc\ndial = PJSIP/{d}\ndescription = SIP {d}\n"
        );
    }
    c.push_str(
        "[2010]\ntype = device\nmode = fixed\ndial = PJSIP/2010\ndescription = Fixed\ndefault_user = 2010\n\n",
    );
    for n in 1..=CUSTOM_DEVICES {
        let _ = writeln!(
            c,
            "[{}]\ntype = device\nmode = adhoc\ndial = Custom:dev/{n}\ndescription = Storm {n}\n",
            custom_device(n)
        );
    }
    c.push_str("[2010]\ntype = user\npassword = 2468\nfullname = Reception\n\n");
    for n in 0..USERS {
        let u = user_id(n);
        let _ = writeln!(
            c,
            "[{u}]\ntype = user\npassword = 1234\nfullname = Storm {u}\nlanguage = en\n"
        );
    }
    c
}

/// Every configured user and device (for the orphan check).
fn configured() -> (BTreeSet<String>, BTreeSet<String>) {
    let mut users: BTreeSet<String> = (0..USERS).map(user_id).collect();
    users.insert("2010".into());
    let mut devices: BTreeSet<String> = (1..=CUSTOM_DEVICES).map(custom_device).collect();
    devices.extend(SIP_DEVICES.iter().map(|s| s.to_string()));
    devices.insert("2010".into());
    (users, devices)
}

fn start_instance(name: &str) -> Asterisk {
    Asterisk::builder(name)
        .conf("res_deviceuser.conf", &deviceuser_conf())
        .start()
}

// ---------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq, Default)]
struct State {
    /// device -> user
    bind: BTreeMap<String, String>,
    dnd: BTreeSet<String>,
}

#[derive(Clone, Debug)]
enum Op {
    Login(String, String),
    LogoutDevice(String),
    LogoutUser(String),
    Dnd(String, bool),
    /// Login on the fixed device: always refused.
    LoginFixed(String),
}

impl Op {
    fn fields(&self) -> Vec<(&'static str, String)> {
        match self {
            Op::Login(u, d) => vec![
                ("Action", "DeviceUserLogin".into()),
                ("User", u.clone()),
                ("Device", d.clone()),
            ],
            Op::LoginFixed(u) => vec![
                ("Action", "DeviceUserLogin".into()),
                ("User", u.clone()),
                ("Device", "2010".into()),
            ],
            Op::LogoutDevice(d) => {
                vec![("Action", "DeviceUserLogout".into()), ("Device", d.clone())]
            }
            Op::LogoutUser(u) => vec![("Action", "DeviceUserLogout".into()), ("User", u.clone())],
            Op::Dnd(u, on) => vec![
                ("Action", "DeviceUserDND".into()),
                ("User", u.clone()),
                ("DND", if *on { "on" } else { "off" }.into()),
            ],
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Op::Login(..) => "login",
            Op::LogoutDevice(_) => "logout-device",
            Op::LogoutUser(_) => "logout-user",
            Op::Dnd(..) => "dnd",
            Op::LoginFixed(_) => "login-fixed",
        }
    }

    /// Applies the op as the module does (multiple_logins = yes, adhoc devices
    /// without default users).
    fn apply(&self, s: &mut State) {
        match self {
            Op::Login(u, d) => {
                s.bind.insert(d.clone(), u.clone());
            }
            Op::LogoutDevice(d) => {
                s.bind.remove(d);
            }
            Op::LogoutUser(u) => s.bind.retain(|_, v| v != u),
            Op::Dnd(u, on) => {
                if *on {
                    s.dnd.insert(u.clone());
                } else {
                    s.dnd.remove(u);
                }
            }
            Op::LoginFixed(_) => {}
        }
    }

    /// Whether a refusal of this op is what the module must answer in state `s`.
    fn refusal_expected(&self, s: &State, message: &str) -> bool {
        match self {
            Op::LoginFixed(_) => message.contains("fixed"),
            Op::LogoutDevice(d) => !s.bind.contains_key(d) && message.contains("not logged in"),
            Op::LogoutUser(u) => {
                !s.bind.values().any(|v| v == u) && message.contains("not logged in")
            }
            _ => false,
        }
    }
}

struct Acked {
    op: Op,
    sent: Instant,
    acked: Instant,
}

/// What one session owns: its devices and users, its state, its acknowledged ops
/// since `base`.
struct Part {
    devices: Vec<String>,
    users: Vec<String>,
    base: State,
    state: State,
    acked: Vec<Acked>,
    inflight: Option<(Op, Instant)>,
}

impl Part {
    fn restrict(&self, s: &State) -> State {
        State {
            bind: s
                .bind
                .iter()
                .filter(|(d, _)| self.devices.contains(d))
                .map(|(d, u)| (d.clone(), u.clone()))
                .collect(),
            dnd: s
                .dnd
                .iter()
                .filter(|u| self.users.contains(u))
                .cloned()
                .collect(),
        }
    }
}

fn partitions() -> Vec<Part> {
    let mut parts: Vec<Part> = (0..SESSIONS)
        .map(|_| Part {
            devices: Vec::new(),
            users: Vec::new(),
            base: State::default(),
            state: State::default(),
            acked: Vec::new(),
            inflight: None,
        })
        .collect();
    for n in 1..=CUSTOM_DEVICES {
        parts[(n as usize - 1) % SESSIONS]
            .devices
            .push(custom_device(n));
    }
    for (i, d) in SIP_DEVICES.iter().enumerate() {
        parts[i].devices.push(d.to_string());
    }
    for n in 0..USERS {
        parts[n as usize % SESSIONS].users.push(user_id(n));
    }
    parts
}

// ---------------------------------------------------------------------------
// Shared run state
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Stats {
    ops: BTreeMap<&'static str, u64>,
    acked: u64,
    refused_expected: u64,
    refused_unloaded: u64,
    errors: BTreeMap<String, u64>,
    conn_errors: u64,
    closed_in_transition: u64,
    devstate_sets: u64,
    sip_registers: u64,
    sip_unregisters: u64,
    sip_failures: u64,
    latency_ami_ms: Vec<f64>,
    latency_rx_ms: Vec<f64>,
    latency_over_1s: Vec<String>,
    rss: Vec<(f64, u64, u64)>,
    admin: Vec<String>,
    admin_counts: BTreeMap<String, u64>,
    tp_max_depth: BTreeMap<String, u64>,
    anomalies: Vec<String>,
    checks: Vec<String>,
}

struct Shared {
    ami_port: u16,
    sip_port: u16,
    run: PathBuf,
    pid: AtomicU32,
    /// Incremented after every restart (crash mode): sessions reconnect.
    generation: AtomicU64,
    /// Set between a kill and the end of the evaluation after the restart.
    crashing: AtomicBool,
    stop: AtomicBool,
    /// Set by the admin thread from before an unload until shortly after the load.
    module_transition: AtomicBool,
    /// Writers hold a read guard per operation; quiet checks take the write guard.
    pause: RwLock<()>,
    parts: Mutex<Vec<Part>>,
    parked: AtomicU32,
    stats: Mutex<Stats>,
    /// Our subscription's taskprocessor names (change at every load).
    our_tps: Mutex<BTreeSet<String>>,
    /// Events model (device -> user, dnd) fed by a listener session; None = unknown.
    events_model: Mutex<Option<State>>,
    started: Instant,
    seed: u64,
}

impl Shared {
    fn anomaly(&self, what: String) {
        eprintln!("ANOMALY: {what}");
        self.stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .anomalies
            .push(what);
    }
    fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
    fn pid(&self) -> u32 {
        self.pid.load(Ordering::SeqCst)
    }
}

fn connect(sh: &Shared) -> Option<Ami> {
    for _ in 0..300 {
        if sh.stop.load(Ordering::SeqCst) {
            return None;
        }
        if let Ok(mut a) = Ami::connect(sh.ami_port, "deviceuser", "deviceuser") {
            a.timeout = Duration::from_secs(10);
            // A session that does not read its events is disconnected by Asterisk
            // once its socket buffer is full (manager writetimeout).
            if a.try_action(&[("Action", "Events"), ("EventMask", "off")])
                .is_ok()
            {
                return Some(a);
            }
        }
        thread::sleep(Duration::from_millis(100));
    }
    None
}

/// Waits until the generation differs from `gen` (or stop); returns the new one.
fn wait_generation(sh: &Shared, gen: u64) -> Option<u64> {
    loop {
        if sh.stop.load(Ordering::SeqCst) {
            return None;
        }
        let g = sh.generation.load(Ordering::SeqCst);
        if g != gen {
            return Some(g);
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn fields_ref<'a>(f: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    f.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

// ---------------------------------------------------------------------------
// Threads
// ---------------------------------------------------------------------------

fn random_op(rng: &mut Rng, part: &Part) -> Op {
    let u = rng.pick(&part.users).clone();
    let d = rng.pick(&part.devices).clone();
    match rng.below(100) {
        0..=44 => Op::Login(u, d),
        45..=61 => Op::LogoutDevice(d),
        62..=69 => Op::LogoutUser(u),
        70..=84 => Op::Dnd(u, rng.below(3) == 0),
        85..=94 => Op::Login(u, d),
        _ => Op::LoginFixed(u),
    }
}

fn writer(sh: Arc<Shared>, idx: usize) {
    let mut rng = Rng::new(sh.seed ^ (idx as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let delay = Duration::from_millis(env_u64("STORM_OP_DELAY_MS", 0));
    let mut gen = sh.generation.load(Ordering::SeqCst);
    let Some(mut ami) = connect(&sh) else { return };
    while !sh.stop.load(Ordering::SeqCst) {
        let guard = sh.pause.read().unwrap_or_else(|e| e.into_inner());
        let op = {
            let mut parts = sh.parts.lock().unwrap_or_else(|e| e.into_inner());
            let op = random_op(&mut rng, &parts[idx]);
            parts[idx].inflight = Some((op.clone(), Instant::now()));
            op
        };
        let f = op.fields();
        let sent = Instant::now();
        let r = ami.try_action(&fields_ref(&f));
        let acked = Instant::now();
        match r {
            Ok(m) if m.is_success() => {
                let mut parts = sh.parts.lock().unwrap_or_else(|e| e.into_inner());
                let p = &mut parts[idx];
                op.apply(&mut p.state);
                p.acked.push(Acked {
                    op: op.clone(),
                    sent,
                    acked,
                });
                p.inflight = None;
                drop(parts);
                let mut st = sh.stats.lock().unwrap_or_else(|e| e.into_inner());
                *st.ops.entry(op.kind()).or_default() += 1;
                st.acked += 1;
                if matches!(op, Op::LoginFixed(_)) {
                    drop(st);
                    sh.anomaly(format!("login on the fixed device was accepted: {op:?}"));
                }
            }
            Ok(m) => {
                let msg = m.val("Message").to_string();
                let mut parts = sh.parts.lock().unwrap_or_else(|e| e.into_inner());
                let p = &mut parts[idx];
                p.inflight = None;
                let expected = op.refusal_expected(&p.state, &msg);
                drop(parts);
                let mut st = sh.stats.lock().unwrap_or_else(|e| e.into_inner());
                *st.ops.entry(op.kind()).or_default() += 1;
                if expected {
                    st.refused_expected += 1;
                } else if msg.contains("Invalid/unknown command")
                    || msg.contains("not loaded")
                    || (msg.contains("Permission denied")
                        && sh.module_transition.load(Ordering::SeqCst))
                {
                    // Unloaded, or unloading: Asterisk answers "Permission denied" to an
                    // action whose module is not running, and closes the session.
                    st.refused_unloaded += 1;
                } else {
                    *st.errors
                        .entry(format!("{}: {msg}", op.kind()))
                        .or_default() += 1;
                    drop(st);
                    sh.anomaly(format!("unexpected refusal of {op:?}: {msg}"));
                }
            }
            Err(e) => {
                drop(guard);
                sh.stats
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .conn_errors += 1;
                // The op stays in flight (its outcome is unknown).
                if sh.crashing.load(Ordering::SeqCst) || !alive(sh.pid()) {
                    sh.parked.fetch_add(1, Ordering::SeqCst);
                    let Some(g) = wait_generation(&sh, gen) else {
                        return;
                    };
                    gen = g;
                    sh.parked.fetch_sub(1, Ordering::SeqCst);
                } else if sh.module_transition.load(Ordering::SeqCst) {
                    sh.stats
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .closed_in_transition += 1;
                    sh.parts.lock().unwrap_or_else(|e| e.into_inner())[idx].inflight = None;
                } else {
                    sh.anomaly(format!(
                        "session {idx}: AMI error with Asterisk alive ({op:?}): {e}"
                    ));
                    sh.parts.lock().unwrap_or_else(|e| e.into_inner())[idx].inflight = None;
                }
                let Some(a) = connect(&sh) else { return };
                ami = a;
                continue;
            }
        }
        drop(guard);
        if !delay.is_zero() {
            thread::sleep(delay);
        }
    }
}

/// Churns the Custom device states over one AMI session.
fn devstate_churn(sh: Arc<Shared>) {
    let mut rng = Rng::new(sh.seed ^ 0xD5);
    let Some(mut ami) = connect(&sh) else { return };
    let mut gen = sh.generation.load(Ordering::SeqCst);
    while !sh.stop.load(Ordering::SeqCst) {
        let guard = sh.pause.read().unwrap_or_else(|e| e.into_inner());
        let n = 1 + rng.below(CUSTOM_DEVICES as usize);
        let var = format!("DEVICE_STATE(Custom:dev/{n})");
        let state = *rng.pick(&CUSTOM_STATES);
        let r = ami.try_action(&[("Action", "Setvar"), ("Variable", &var), ("Value", state)]);
        drop(guard);
        match r {
            Ok(_) => {
                sh.stats
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .devstate_sets += 1
            }
            Err(_) => {
                if sh.crashing.load(Ordering::SeqCst) || !alive(sh.pid()) {
                    let Some(g) = wait_generation(&sh, gen) else {
                        return;
                    };
                    gen = g;
                }
                let Some(a) = connect(&sh) else { return };
                ami = a;
            }
        }
        thread::sleep(Duration::from_millis(2));
    }
}

/// One sipp run (`-m 1`), true on success. A trimmed copy of the harness's spawner
/// that needs only the port and a folder.
fn sipp_once(
    run: &Path,
    sip_port: u16,
    scenario: &str,
    endpoint: &str,
    service: &str,
    extra: &[&str],
) -> bool {
    let dir = run.join("peers").join(format!("storm-{endpoint}"));
    let _ = fs::create_dir_all(&dir);
    let port = common::free_port();
    let pw = format!("secret{endpoint}");
    let status = Command::new("sipp")
        .arg(format!("127.0.0.1:{sip_port}"))
        .arg("-sf")
        .arg(common::repo().join("tests/sipp").join(scenario))
        .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-t", "u1"])
        .args(["-nostdin", "-s", service, "-au", endpoint, "-ap", &pw])
        .args(["-m", "1", "-timeout_error"])
        .args(["-trace_err", "-error_file"])
        .arg(dir.join("errors.log"))
        .args(extra)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    status.map(|s| s.success()).unwrap_or(false)
}

/// Registers and unregisters the SIP devices in a loop.
fn sip_churn(sh: Arc<Shared>) {
    let mut rng = Rng::new(sh.seed ^ 0x51F);
    while !sh.stop.load(Ordering::SeqCst) {
        let ep = *rng.pick(&SIP_DEVICES);
        let register = rng.below(2) == 0;
        let guard = sh.pause.read().unwrap_or_else(|e| e.into_inner());
        let ok = if register {
            sipp_once(
                &sh.run,
                sh.sip_port,
                "register.xml",
                ep,
                ep,
                &["-key", "expires", "600", "-timeout", "5"],
            )
        } else {
            sipp_once(
                &sh.run,
                sh.sip_port,
                "unregister-all.xml",
                ep,
                ep,
                &["-timeout", "5"],
            )
        };
        drop(guard);
        {
            let mut st = sh.stats.lock().unwrap_or_else(|e| e.into_inner());
            match (ok, register) {
                (false, _) => st.sip_failures += 1,
                (true, true) => st.sip_registers += 1,
                (true, false) => st.sip_unregisters += 1,
            }
        }
        if !ok && (sh.crashing.load(Ordering::SeqCst) || !alive(sh.pid())) {
            thread::sleep(Duration::from_millis(300));
        }
        thread::sleep(rng.range_ms(50, 400));
    }
}

/// Applies DeviceUser* events to the events model.
fn events_listener(sh: Arc<Shared>) {
    let Some(mut ami) = connect(&sh) else { return };
    let _ = ami.try_action(&[("Action", "Events"), ("EventMask", "agent")]);
    while !sh.stop.load(Ordering::SeqCst) {
        let evs = ami.drain_events();
        if evs.is_empty() {
            continue;
        }
        let mut m = sh.events_model.lock().unwrap_or_else(|e| e.into_inner());
        let Some(model) = m.as_mut() else { continue };
        for e in evs {
            let user = e.val("User").to_string();
            match e.event().unwrap_or("") {
                "DeviceUserLogin" => {
                    model.bind.insert(e.val("Device").to_string(), user);
                }
                "DeviceUserLogout" => {
                    let d = e.val("Device");
                    if model.bind.get(d) == Some(&user) {
                        model.bind.remove(d);
                    }
                }
                "DeviceUserDND" => {
                    if e.val("DND") == "on" {
                        model.dnd.insert(user);
                    } else {
                        model.dnd.remove(&user);
                    }
                }
                _ => {}
            }
        }
    }
}

fn ast_rx(sh: &Shared, cmd: &str) -> String {
    ast_rx_at(&sh.run, cmd)
}

/// `asterisk -rx` against the instance of a run folder, through the tree's loader.
fn ast_rx_at(run: &Path, cmd: &str) -> String {
    let tree = common::asterisk_dir().join("tree");
    let lib = tree.join("usr/lib/x86_64-linux-gnu");
    let out = Command::new(lib.join("ld-linux-x86-64.so.2"))
        .arg("--library-path")
        .arg(&lib)
        .arg(tree.join("usr/sbin/asterisk"))
        .arg("-C")
        .arg(run.join("etc/asterisk.conf"))
        .args(["-rx", cmd])
        .stdin(Stdio::null())
        .output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Lines of `core show taskprocessors`: name -> (in queue, max depth).
fn taskprocessors(ami: &mut Ami) -> BTreeMap<String, (u64, u64)> {
    let out = match ami.try_action(&[
        ("Action", "Command"),
        ("Command", "core show taskprocessors"),
    ]) {
        Ok(m) => m.output(),
        Err(_) => return BTreeMap::new(),
    };
    out.lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            if w.len() >= 4 && w[1].parse::<u64>().is_ok() {
                Some((
                    w[0].to_string(),
                    (w[2].parse().unwrap_or(0), w[3].parse().unwrap_or(0)),
                ))
            } else {
                None
            }
        })
        .collect()
}

/// `core show uptime` latency (AMI Command every 250 ms, asterisk -rx every 2 s),
/// RSS every 2 s, our taskprocessor's depth every 5 s.
fn monitor(sh: Arc<Shared>) {
    let Some(mut ami) = connect(&sh) else { return };
    let mut last_rx = Instant::now();
    let mut last_rss = Instant::now() - Duration::from_secs(10);
    let mut last_tp = Instant::now();
    while !sh.stop.load(Ordering::SeqCst) {
        let t = Instant::now();
        let r = ami.try_action(&[("Action", "Command"), ("Command", "core show uptime")]);
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        match r {
            Ok(m) if m.output().contains("System uptime") => {
                let mut st = sh.stats.lock().unwrap_or_else(|e| e.into_inner());
                st.latency_ami_ms.push(ms);
                if ms > 1000.0 {
                    let at = sh.elapsed();
                    st.latency_over_1s
                        .push(format!("AMI {ms:.0} ms at {at:.1} s"));
                }
            }
            Ok(m) => sh.anomaly(format!("core show uptime: unexpected output {m}")),
            Err(e) => {
                if !sh.crashing.load(Ordering::SeqCst) && alive(sh.pid()) {
                    sh.anomaly(format!("core show uptime over AMI failed: {e}"));
                }
                thread::sleep(Duration::from_millis(200));
                match connect(&sh) {
                    Some(a) => ami = a,
                    None => return,
                }
            }
        }
        if last_rx.elapsed() >= Duration::from_secs(2) {
            last_rx = Instant::now();
            let t = Instant::now();
            let out = ast_rx(&sh, "core show uptime");
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            let mut st = sh.stats.lock().unwrap_or_else(|e| e.into_inner());
            if out.contains("System uptime") {
                st.latency_rx_ms.push(ms);
                if ms > 1000.0 {
                    let at = sh.elapsed();
                    st.latency_over_1s
                        .push(format!("rx {ms:.0} ms at {at:.1} s"));
                }
            }
        }
        if last_rss.elapsed() >= Duration::from_secs(2) {
            last_rss = Instant::now();
            let pid = sh.pid();
            if let (Some(rss), Some(thr)) = (vm_rss_kb(pid), threads_of(pid)) {
                let at = sh.elapsed();
                sh.stats
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .rss
                    .push((at, rss, thr));
            }
        }
        if last_tp.elapsed() >= Duration::from_secs(5) {
            last_tp = Instant::now();
            let tps = taskprocessors(&mut ami);
            let ours = sh.our_tps.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let mut st = sh.stats.lock().unwrap_or_else(|e| e.into_inner());
            for (name, (_q, max)) in tps {
                if ours.contains(&name) {
                    let e = st.tp_max_depth.entry(name).or_default();
                    *e = (*e).max(max);
                }
            }
        }
        thread::sleep(Duration::from_millis(250));
    }
}

/// Our subscription's taskprocessors: those that appear when the module loads.
fn load_module(sh: &Shared, ami: &mut Ami) -> String {
    let before: BTreeSet<String> = taskprocessors(ami).into_keys().collect();
    // AMI's Command refuses `module load`/`unload`: use the CLI (asterisk -rx).
    let out = ast_rx(sh, "module load res_deviceuser.so");
    let after: BTreeSet<String> = taskprocessors(ami).into_keys().collect();
    let new: Vec<String> = after.difference(&before).cloned().collect();
    sh.our_tps
        .lock()
        .unwrap()
        .extend(new.into_iter().filter(|n| n.starts_with("stasis/")));
    out
}

/// Reloads, unloads and loads the module now and then (storm mode).
fn admin(sh: Arc<Shared>) {
    let mut rng = Rng::new(sh.seed ^ 0xAD);
    let Some(mut ami) = connect(&sh) else { return };
    let mut round = 0u32;
    while !sh.stop.load(Ordering::SeqCst) {
        let wait = rng.range_ms(6000, 14000);
        let until = Instant::now() + wait;
        while Instant::now() < until && !sh.stop.load(Ordering::SeqCst) {
            thread::sleep(Duration::from_millis(100));
        }
        if sh.stop.load(Ordering::SeqCst) {
            break;
        }
        round += 1;
        let guard = sh.pause.read().unwrap_or_else(|e| e.into_inner());
        let at = sh.elapsed();
        let mut cmd = |c: &str| -> String {
            ami.try_action(&[("Action", "Command"), ("Command", c)])
                .map(|m| m.output())
                .unwrap_or_else(|e| format!("AMI error: {e}"))
        };
        if round % 2 == 1 {
            let out = cmd("module reload res_deviceuser.so");
            let ok = out.contains("reloaded successfully") || out.contains("Reloaded");
            let key = if ok { "reload ok" } else { "reload other" };
            let mut st = sh.stats.lock().unwrap_or_else(|e| e.into_inner());
            *st.admin_counts.entry(key.into()).or_default() += 1;
            st.admin.push(format!(
                "{at:.1}s reload: {}",
                out.trim().replace('\n', " | ")
            ));
            drop(st);
            if !ok {
                sh.anomaly(format!("module reload: {out}"));
            }
        } else {
            sh.module_transition.store(true, Ordering::SeqCst);
            // Refused while an AMI action of the module is running: retry a while.
            let mut refused = 0;
            let mut out = String::new();
            for _ in 0..40 {
                out = ast_rx(&sh, "module unload res_deviceuser.so");
                if out.contains("Unloaded res_deviceuser.so") {
                    break;
                }
                refused += 1;
                thread::sleep(Duration::from_millis(25));
            }
            sh.stats
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .admin_counts
                .entry("unload attempts refused (in use)".into())
                .and_modify(|c| *c += refused)
                .or_insert(refused);
            let unloaded = out.contains("Unloaded res_deviceuser.so");
            let mapped = if unloaded {
                maps_lines(sh.pid(), "res_deviceuser.so")
            } else {
                0
            };
            {
                let mut st = sh.stats.lock().unwrap_or_else(|e| e.into_inner());
                let key = if unloaded {
                    "unload ok"
                } else {
                    "unload refused"
                };
                *st.admin_counts.entry(key.into()).or_default() += 1;
                st.admin.push(format!(
                    "{at:.1}s unload: {} (mapped after: {mapped})",
                    out.trim().replace('\n', " | ")
                ));
            }
            if unloaded && mapped > 0 {
                sh.anomaly(format!(
                    "res_deviceuser.so still mapped ({mapped} lines) after unload"
                ));
            }
            if unloaded {
                thread::sleep(rng.range_ms(300, 1500));
                let mut loaded = false;
                for attempt in 0..5 {
                    let out = load_module(&sh, &mut ami);
                    let ok = out.contains("Loaded res_deviceuser.so");
                    let mut st = sh.stats.lock().unwrap_or_else(|e| e.into_inner());
                    *st.admin_counts
                        .entry(if ok { "load ok" } else { "load failed" }.into())
                        .or_default() += 1;
                    st.admin.push(format!(
                        "{:.1}s load (attempt {attempt}): {}",
                        sh.elapsed(),
                        out.trim().replace('\n', " | ")
                    ));
                    drop(st);
                    if ok {
                        loaded = true;
                        break;
                    }
                    thread::sleep(Duration::from_millis(500));
                }
                if !loaded {
                    sh.anomaly("module load failed 5 times".into());
                }
                // Events of the unload/load are not modelled: re-seed at the next check.
                *sh.events_model.lock().unwrap_or_else(|e| e.into_inner()) = None;
            }
            thread::sleep(Duration::from_millis(300));
            sh.module_transition.store(false, Ordering::SeqCst);
        }
        drop(guard);
    }
}

// ---------------------------------------------------------------------------
// Reading the module's state
// ---------------------------------------------------------------------------

fn try_list(ami: &mut Ami, fields: &[(&str, &str)]) -> Result<Vec<Message>, String> {
    // list_action panics on a broken connection; keep it for a live instance only.
    let (resp, items) = ami.list_action(fields);
    if resp.is_success() {
        Ok(items)
    } else {
        Err(format!("{fields:?}: {resp}"))
    }
}

fn bindings(ami: &mut Ami) -> Result<BTreeMap<String, String>, String> {
    let items = try_list(ami, &[("Action", "DeviceUserBindings")])?;
    let mut m = BTreeMap::new();
    for i in items {
        if let Some(prev) = m.insert(i.val("Device").to_string(), i.val("User").to_string()) {
            return Err(format!("device {} listed twice ({prev})", i.val("Device")));
        }
    }
    Ok(m)
}

/// `database show deviceuser`: (bindings device -> user, dnd users, other keys).
type AstDb = (BTreeMap<String, String>, BTreeSet<String>, Vec<String>);

fn astdb(ami: &mut Ami) -> Result<AstDb, String> {
    let r = ami.try_action(&[
        ("Action", "Command"),
        ("Command", "database show deviceuser"),
    ])?;
    let out = r.output();
    let mut bind = BTreeMap::new();
    let mut dnd = BTreeSet::new();
    let mut other = Vec::new();
    for l in out.lines() {
        let Some((k, v)) = l.split_once(" : ") else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if let Some(d) = k.strip_prefix("/deviceuser/binding/") {
            let user = v.rsplit_once(';').map(|(u, _)| u).unwrap_or(v);
            bind.insert(d.to_string(), user.to_string());
        } else if let Some(u) = k.strip_prefix("/deviceuser/dnd/") {
            dnd.insert(u.to_string());
        } else if k.starts_with("/deviceuser/") {
            other.push(format!("{k} = {v}"));
        }
    }
    Ok((bind, dnd, other))
}

/// DeviceUserUsers: user -> (devices, dnd, state).
/// user -> (devices, dnd, state name).
type UsersList = BTreeMap<String, (BTreeSet<String>, bool, String)>;

fn users_list(ami: &mut Ami) -> Result<UsersList, String> {
    let items = try_list(ami, &[("Action", "DeviceUserUsers")])?;
    Ok(items
        .into_iter()
        .map(|i| {
            let devs = i
                .val("Devices")
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            (
                i.val("User").to_string(),
                (devs, i.val("DND") == "on", i.val("State").to_string()),
            )
        })
        .collect())
}

/// `core show hints`: user -> state text, for the module's hint context.
fn hints(ami: &mut Ami) -> Result<BTreeMap<String, String>, String> {
    let r = ami.try_action(&[("Action", "Command"), ("Command", "core show hints")])?;
    let mut m = BTreeMap::new();
    for l in r.output().lines() {
        let Some((ext, rest)) = l.trim().split_once('@') else {
            continue;
        };
        if !rest.starts_with(HINT_CONTEXT) {
            continue;
        }
        if let Some(i) = rest.find("State:") {
            let st = rest[i + 6..].split_whitespace().next().unwrap_or("");
            m.insert(ext.trim().to_string(), st.to_string());
        }
    }
    Ok(m)
}

/// ast_devstate_aggregate, for states by name.
fn aggregate(states: &[String]) -> String {
    fn order(s: &str) -> u8 {
        match s {
            "UNKNOWN" => 1,
            "NOT_INUSE" => 3,
            "INUSE" => 6,
            "BUSY" => 7,
            "INVALID" => 0,
            "UNAVAILABLE" => 2,
            "RINGING" => 5,
            "RINGINUSE" => 8,
            "ONHOLD" => 4,
            _ => 0,
        }
    }
    let (mut ringing, mut inuse) = (false, false);
    let mut agg = "INVALID".to_string();
    for s in states {
        if s == "RINGING" {
            ringing = true;
        } else if s == "INUSE" || s == "ONHOLD" || s == "BUSY" {
            inuse = true;
        }
        if ringing && inuse {
            agg = "RINGINUSE".into();
        } else if order(s) > order(&agg) {
            agg = s.clone();
        }
    }
    agg
}

/// The hint text (`core show hints`) of a device state.
fn hint_text(devstate: &str) -> &'static str {
    match devstate {
        "NOT_INUSE" | "UNKNOWN" => "Idle",
        "INUSE" => "InUse",
        "BUSY" => "Busy",
        "RINGING" => "Ringing",
        "RINGINUSE" => "InUse&Ringing",
        "ONHOLD" => "Hold",
        _ => "Unavailable",
    }
}

fn diff_maps<V: std::fmt::Debug + PartialEq>(
    a_name: &str,
    a: &BTreeMap<String, V>,
    b_name: &str,
    b: &BTreeMap<String, V>,
) -> String {
    let mut out = Vec::new();
    for (k, v) in a {
        match b.get(k) {
            Some(w) if w == v => {}
            w => out.push(format!("{k}: {a_name}={v:?} {b_name}={w:?}")),
        }
    }
    for (k, w) in b {
        if !a.contains_key(k) {
            out.push(format!("{k}: {a_name}=None {b_name}={w:?}"));
        }
    }
    out.truncate(12);
    out.join("; ")
}

/// The model's full state: every part plus the fixed device's binding.
fn model_state(parts: &[Part]) -> State {
    let mut s = State::default();
    for p in parts {
        s.bind
            .extend(p.state.bind.iter().map(|(d, u)| (d.clone(), u.clone())));
        s.dnd.extend(p.state.dnd.iter().cloned());
    }
    s.bind.insert("2010".into(), "2010".into());
    s
}

/// One consistency check; returns the list of mismatches (empty = consistent).
fn check_once(sh: &Shared, ami: &mut Ami, rng: &mut Rng) -> Result<Vec<String>, String> {
    let model = model_state(&sh.parts.lock().unwrap_or_else(|e| e.into_inner()));
    let mut bad = Vec::new();
    let b = bindings(ami)?;
    if b != model.bind {
        bad.push(format!(
            "bindings != model: {}",
            diff_maps("ami", &b, "model", &model.bind)
        ));
    }
    let (db_bind, db_dnd, other) = astdb(ami)?;
    if db_bind != b {
        bad.push(format!(
            "AstDB != bindings: {}",
            diff_maps("astdb", &db_bind, "ami", &b)
        ));
    }
    if db_dnd != model.dnd {
        bad.push(format!(
            "AstDB dnd != model: astdb-only {:?}, model-only {:?}",
            db_dnd.difference(&model.dnd).collect::<Vec<_>>(),
            model.dnd.difference(&db_dnd).collect::<Vec<_>>()
        ));
    }
    if !other.is_empty() {
        bad.push(format!("unexpected AstDB keys: {other:?}"));
    }
    if let Some(ev) = sh
        .events_model
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
    {
        if ev.bind != b || ev.dnd != model.dnd {
            bad.push(format!(
                "events model != bindings: {}; dnd events-only {:?} model-only {:?}",
                diff_maps("events", &ev.bind, "ami", &b),
                ev.dnd.difference(&model.dnd).collect::<Vec<_>>(),
                model.dnd.difference(&ev.dnd).collect::<Vec<_>>()
            ));
        }
    }
    // Device states of every configured device, as Asterisk sees them.
    let (users, devices) = configured();
    let mut ds = BTreeMap::new();
    for d in &devices {
        let v = ami
            .try_action(&[
                ("Action", "Getvar"),
                ("Variable", &format!("DEVICE_STATE({})", dial_of(d))),
            ])?
            .val("Value")
            .to_string();
        ds.insert(d.clone(), v);
    }
    let mut devices_of: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (d, u) in &model.bind {
        devices_of.entry(u.clone()).or_default().insert(d.clone());
    }
    let expected = |u: &str| -> String {
        if model.dnd.contains(u) {
            return "BUSY".into();
        }
        match devices_of.get(u) {
            None => "UNAVAILABLE".into(),
            Some(devs) => aggregate(&devs.iter().map(|d| ds[d].clone()).collect::<Vec<_>>()),
        }
    };
    let ul = users_list(ami)?;
    let hs = hints(ami)?;
    let mut state_bad = Vec::new();
    for u in &users {
        let exp = expected(u);
        let empty = BTreeSet::new();
        let want_devs = devices_of.get(u).unwrap_or(&empty);
        match ul.get(u) {
            None => state_bad.push(format!("{u}: missing from DeviceUserUsers")),
            Some((devs, dnd, st)) => {
                if devs != want_devs || *dnd != model.dnd.contains(u) || *st != exp {
                    state_bad.push(format!(
                        "{u}: DeviceUserUsers devices={devs:?} dnd={dnd} state={st}, want {want_devs:?} {} {exp}",
                        model.dnd.contains(u)
                    ));
                }
            }
        }
        let want_hint = hint_text(&exp);
        match hs.get(u) {
            Some(h) if h == want_hint => {}
            // A user who was never logged in (nor watched) has no hint of their own: the
            // module's pattern hint serves them.
            None if exp == "UNAVAILABLE" => {}
            h => state_bad.push(format!(
                "{u}: hint {h:?}, want {want_hint} (devices {:?} states {:?})",
                want_devs,
                want_devs.iter().map(|d| ds[d].as_str()).collect::<Vec<_>>()
            )),
        }
    }
    // DEVICEUSER_DIAL and the cached DeviceUser: state of sampled users (and all bound ones).
    let user_vec: Vec<String> = users.iter().cloned().collect();
    let mut sample: BTreeSet<String> = devices_of.keys().cloned().collect();
    for _ in 0..20 {
        sample.insert(rng.pick(&user_vec).clone());
    }
    for u in &sample {
        let dial = ami
            .try_action(&[
                ("Action", "Getvar"),
                ("Variable", &format!("DEVICEUSER_DIAL({u})")),
            ])?
            .val("Value")
            .to_string();
        let got: BTreeSet<String> = dial
            .split('&')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        let want: BTreeSet<String> = devices_of
            .get(u)
            .map(|ds| ds.iter().map(|d| dial_of(d)).collect())
            .unwrap_or_default();
        if got != want {
            state_bad.push(format!("{u}: DEVICEUSER_DIAL {dial:?}, want {want:?}"));
        }
        let cached = ami
            .try_action(&[
                ("Action", "Getvar"),
                ("Variable", &format!("DEVICE_STATE(DeviceUser:{u})")),
            ])?
            .val("Value")
            .to_string();
        let exp = expected(u);
        if cached != exp {
            state_bad.push(format!(
                "{u}: DEVICE_STATE(DeviceUser:{u}) {cached}, want {exp}"
            ));
        }
    }
    if !state_bad.is_empty() {
        let n = state_bad.len();
        state_bad.truncate(10);
        bad.push(format!("{n} state mismatches: {}", state_bad.join("; ")));
    }
    Ok(bad)
}

/// A quiet moment: pause every writer, let Asterisk settle, check (retrying for up
/// to 5 s while stasis catches up), record the outcome, re-seed the events model.
fn quiet_check(sh: &Shared, ami: &mut Ami, rng: &mut Rng, n: usize) {
    let t0 = Instant::now();
    let guard = sh.pause.write().unwrap_or_else(|e| e.into_inner());
    let paused = t0.elapsed();
    thread::sleep(Duration::from_millis(300));
    let mut attempt = 0;
    let result = loop {
        attempt += 1;
        let r = check_once(sh, ami, rng);
        match &r {
            Ok(bad) if bad.is_empty() => break r,
            _ if attempt >= 6 => break r,
            _ => thread::sleep(Duration::from_millis(800)),
        }
    };
    let (bindings_n, dnd_n) = {
        let m = model_state(&sh.parts.lock().unwrap_or_else(|e| e.into_inner()));
        (m.bind.len(), m.dnd.len())
    };
    let at = sh.elapsed();
    let line = match result {
        Ok(bad) if bad.is_empty() => format!(
            "check {n} at {at:.1}s: OK after {attempt} attempt(s) ({bindings_n} bindings, {dnd_n} DND; writers paused in {} ms, check took {} ms)",
            paused.as_millis(),
            t0.elapsed().as_millis()
        ),
        Ok(bad) => {
            let l = format!("check {n} at {at:.1}s: MISMATCH after {attempt} attempts: {}", bad.join(" || "));
            sh.anomaly(l.clone());
            l
        }
        Err(e) => {
            let l = format!("check {n} at {at:.1}s: ERROR {e}");
            sh.anomaly(l.clone());
            l
        }
    };
    eprintln!("{line}");
    sh.stats
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .checks
        .push(line);
    if let Ok(b) = bindings(ami) {
        let dnd = model_state(&sh.parts.lock().unwrap_or_else(|e| e.into_inner())).dnd;
        *sh.events_model.lock().unwrap_or_else(|e| e.into_inner()) = Some(State { bind: b, dnd });
    }
    drop(guard);
}

// ---------------------------------------------------------------------------
// Setup shared by the modes
// ---------------------------------------------------------------------------

fn setup(ast: &Asterisk) -> Arc<Shared> {
    let sh = Arc::new(Shared {
        ami_port: ast.ami_port,
        sip_port: ast.sip_port,
        run: ast.run.clone(),
        pid: AtomicU32::new(ast.pid),
        generation: AtomicU64::new(0),
        crashing: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        module_transition: AtomicBool::new(false),
        pause: RwLock::new(()),
        parts: Mutex::new(partitions()),
        parked: AtomicU32::new(0),
        stats: Mutex::new(Stats::default()),
        our_tps: Mutex::new(BTreeSet::new()),
        events_model: Mutex::new(None),
        started: Instant::now(),
        seed: seed(),
    });
    let mut ami = ast.ami();
    // Custom states persist in AstDB: start from a known state.
    for n in 1..=CUSTOM_DEVICES {
        let var = format!("DEVICE_STATE(Custom:dev/{n})");
        ami.action(&[
            ("Action", "Setvar"),
            ("Variable", &var),
            ("Value", "NOT_INUSE"),
        ]);
    }
    // Find the subscription's taskprocessor: unload, then load and diff.
    let out = ast_rx(&sh, "module unload res_deviceuser.so");
    assert!(out.contains("Unloaded"), "initial unload: {out}");
    let out = load_module(&sh, &mut ami);
    assert!(out.contains("Loaded"), "initial load: {out}");
    eprintln!(
        "seed {}; our taskprocessor(s): {:?}",
        sh.seed,
        sh.our_tps.lock().unwrap_or_else(|e| e.into_inner())
    );
    sh
}

fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    s[((s.len() - 1) as f64 * p).round() as usize]
}

/// Warnings and errors of the log worth reporting: taskprocessor overloads (ours
/// flagged), and every WARNING/ERROR line of the module, counted by message.
fn log_findings(ast: &Asterisk, ours: &BTreeSet<String>) -> (Vec<String>, BTreeMap<String, u64>) {
    let log = ast.log();
    let mut tp = Vec::new();
    let mut module: BTreeMap<String, u64> = BTreeMap::new();
    for l in log.lines() {
        if l.to_lowercase().contains("taskprocessor") || l.contains("task processor") {
            let mine = ours.iter().any(|n| l.contains(n.as_str()));
            tp.push(format!("{}{l}", if mine { "[OURS] " } else { "" }));
        }
        if (l.contains("WARNING[") || l.contains("ERROR[")) && l.contains("res_deviceuser") {
            // Strip the time stamp and thread id.
            let msg = l.find("] ").map_or(l, |i| &l[i + 2..]);
            let msg: String = msg.chars().filter(|c| !c.is_ascii_digit()).collect();
            *module.entry(msg).or_default() += 1;
        }
    }
    (tp, module)
}

// ---------------------------------------------------------------------------
// storm
// ---------------------------------------------------------------------------

#[test]
#[ignore = "long: run by scripts/storm.sh"]
fn storm() {
    let seconds = env_u64("STORM_SECONDS", 300);
    let mut ast = start_instance("storm");
    ast.keep_run();
    let sh = setup(&ast);
    let mut handles = Vec::new();
    for i in 0..SESSIONS {
        let s = Arc::clone(&sh);
        handles.push(thread::spawn(move || writer(s, i)));
    }
    for f in [devstate_churn, sip_churn, events_listener, monitor, admin] {
        let s = Arc::clone(&sh);
        handles.push(thread::spawn(move || f(s)));
    }
    let mut checker = connect(&sh).expect("checker session");
    checker.timeout = Duration::from_secs(20);
    let mut rng = Rng::new(sh.seed ^ 0xC4EC);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut n = 0;
    let mut crashed = false;
    while Instant::now() < deadline {
        thread::sleep(Duration::from_secs(1));
        if !ast.is_running() {
            crashed = true;
            sh.anomaly("Asterisk is not running any more (crash)".into());
            break;
        }
        if sh.elapsed() as usize / 10 > n {
            n += 1;
            quiet_check(&sh, &mut checker, &mut rng, n);
        }
    }
    if !crashed {
        n += 1;
        quiet_check(&sh, &mut checker, &mut rng, n);
    }
    sh.stop.store(true, Ordering::SeqCst);
    for h in handles {
        let _ = h.join();
    }
    let duration = sh.elapsed();
    // What RSS holds at the end, and how much of it is freed heap that glibc had kept:
    // Asterisk's `malloc trim` hands that back to the system.
    let mut trimmed = String::new();
    if !crashed {
        let pid = sh.pid();
        thread::sleep(Duration::from_secs(6));
        let before = vm_rss_kb(pid);
        let out = ast.cli("malloc trim");
        let after = vm_rss_kb(pid);
        trimmed = match (before, after) {
            (Some(b), Some(a)) => format!(
                "RSS at the end (writers stopped 6 s before): {b} kB; after Asterisk's `malloc trim`: {a} kB ({:+} kB; {})",
                a as i64 - b as i64,
                out.trim()
            ),
            _ => "RSS at the end: unreadable".into(),
        };
    }
    // A graceful stop, then the bindings after a restart.
    let mut after_restart = String::new();
    if !crashed {
        let before = bindings(&mut checker).unwrap_or_default();
        drop(checker);
        ast.restart();
        let mut a = ast.ami();
        let after = bindings(&mut a).unwrap_or_default();
        after_restart = if before == after {
            format!(
                "bindings after a graceful restart: equal ({} bindings)",
                after.len()
            )
        } else {
            let d = diff_maps("before", &before, "after", &after);
            sh.anomaly(format!("bindings changed across a graceful restart: {d}"));
            format!("bindings after a graceful restart: DIFFERENT: {d}")
        };
    }
    let ours = sh.our_tps.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let (tp_lines, module_lines) = log_findings(&ast, &ours);
    let st = sh.stats.lock().unwrap_or_else(|e| e.into_inner());
    let mut s = String::new();
    let _ = writeln!(s, "# storm summary\n");
    let _ = writeln!(s, "- seed {}, run folder {}", sh.seed, ast.run.display());
    let _ = writeln!(s, "- duration {duration:.1} s (asked {seconds} s), {SESSIONS} AMI writer sessions, {USERS} users, {CUSTOM_DEVICES} Custom devices + {} SIP devices + 1 fixed", SIP_DEVICES.len());
    let total: u64 = st.ops.values().sum();
    let _ = writeln!(
        s,
        "- operations: {total} ({:.0}/s): {:?}",
        total as f64 / duration,
        st.ops
    );
    let _ = writeln!(s, "- acknowledged (Success): {}, refused as expected: {}, refused while unloaded: {}, connection errors: {} (closed by Asterisk around an unload: {})", st.acked, st.refused_expected, st.refused_unloaded, st.conn_errors, st.closed_in_transition);
    let _ = writeln!(s, "- unexpected refusals: {:?}", st.errors);
    let _ = writeln!(
        s,
        "- device state sets: {}, SIP registers: {}, unregisters: {}, sipp failures: {}",
        st.devstate_sets, st.sip_registers, st.sip_unregisters, st.sip_failures
    );
    let _ = writeln!(
        s,
        "- core show uptime over AMI: {} samples, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        st.latency_ami_ms.len(),
        percentile(&st.latency_ami_ms, 0.5),
        percentile(&st.latency_ami_ms, 0.99),
        percentile(&st.latency_ami_ms, 1.0)
    );
    let _ = writeln!(s, "- core show uptime by asterisk -rx (includes process start): {} samples, p50 {:.1} ms, max {:.1} ms", st.latency_rx_ms.len(), percentile(&st.latency_rx_ms, 0.5), percentile(&st.latency_rx_ms, 1.0));
    let _ = writeln!(s, "- answers over 1 s: {:?}", st.latency_over_1s);
    let _ = writeln!(s, "- admin: {:?}", st.admin_counts);
    let _ = writeln!(
        s,
        "- our taskprocessors and max depth: {:?}",
        st.tp_max_depth
    );
    let _ = writeln!(s, "- {after_restart}");
    let _ = writeln!(s, "\n## RSS (time s, VmRSS kB, threads), every ~10 s\n");
    let mut last = -100.0;
    for (t, rss, thr) in &st.rss {
        if *t - last >= 9.5 {
            let _ = writeln!(s, "- {t:.0} s: {rss} kB, {thr} threads");
            last = *t;
        }
    }
    let warm: Vec<&(f64, u64, u64)> = st.rss.iter().filter(|r| r.0 >= 30.0).collect();
    if let (Some(first), Some(lastr)) = (warm.first(), warm.last()) {
        let max = warm.iter().map(|r| r.1).max().unwrap_or(0);
        let min = warm.iter().map(|r| r.1).min().unwrap_or(0);
        let _ = writeln!(s, "\nAfter warm-up (t >= 30 s): first {} kB at {:.0} s, last {} kB at {:.0} s, growth {} kB ({:.1} kB/min), min {min}, max {max}", first.1, first.0, lastr.1, lastr.0, lastr.1 as i64 - first.1 as i64, (lastr.1 as f64 - first.1 as f64) / ((lastr.0 - first.0) / 60.0).max(0.01));
    }
    let late: Vec<&(f64, u64, u64)> = st.rss.iter().filter(|r| r.0 >= duration / 2.0).collect();
    if let (Some(first), Some(lastr)) = (late.first(), late.last()) {
        let _ = writeln!(
            s,
            "Second half (t >= {:.0} s): {} kB -> {} kB ({:+} kB)",
            duration / 2.0,
            first.1,
            lastr.1,
            lastr.1 as i64 - first.1 as i64
        );
    }
    if !trimmed.is_empty() {
        let _ = writeln!(s, "{trimmed}");
    }
    let _ = writeln!(s, "\n## Consistency checks\n");
    for c in &st.checks {
        let _ = writeln!(s, "- {c}");
    }
    let _ = writeln!(s, "\n## Admin operations\n");
    for a in &st.admin {
        let _ = writeln!(s, "- {a}");
    }
    let _ = writeln!(s, "\n## Log: taskprocessor lines ({})\n", tp_lines.len());
    for l in tp_lines.iter().take(40) {
        let _ = writeln!(s, "    {l}");
    }
    let _ = writeln!(
        s,
        "\n## Log: module warnings/errors (digits removed, counted)\n"
    );
    for (m, c) in &module_lines {
        let _ = writeln!(s, "- {c} x {m}");
    }
    let _ = writeln!(s, "\n## Anomalies ({})\n", st.anomalies.len());
    for a in st.anomalies.iter().take(50) {
        let _ = writeln!(s, "- {a}");
    }
    write_summary(&out_file("storm-summary.md"), &s);
    eprintln!("{s}");
    let ours_overloaded = tp_lines.iter().any(|l| l.starts_with("[OURS]"));
    let failed = !st.anomalies.is_empty() || crashed || ours_overloaded;
    drop(st);
    if failed {
        ast.dump_logs();
        panic!("storm found problems: see the summary above");
    }
}

// ---------------------------------------------------------------------------
// crash
// ---------------------------------------------------------------------------

/// How a session's persisted state relates to its acknowledged history.
struct CutResult {
    /// Index k: the state equals base + first k acked ops; None = no prefix matches.
    kept: Option<usize>,
    inflight_committed: bool,
    /// State-changing acknowledged ops after the cut.
    lost_changes: usize,
    /// Age at the kill of the oldest lost acknowledgement.
    oldest_lost_age: Option<Duration>,
    first_lost_acked: Option<Instant>,
    last_kept_sent: Option<Instant>,
    /// Every cut consistent with the persisted state: (send time of the last kept
    /// change, ack time of the first lost change); None = unbounded.
    windows: Vec<(Option<Instant>, Option<Instant>)>,
}

fn evaluate_part(p: &Part, actual: &State, kill: Instant) -> CutResult {
    let actual = p.restrict(actual);
    let mut states = vec![p.base.clone()];
    for a in &p.acked {
        let mut s = states.last().unwrap().clone();
        a.op.apply(&mut s);
        states.push(s);
    }
    let n = p.acked.len();
    let effective = |i: usize| states[i + 1] != states[i];
    let mut res = CutResult {
        kept: None,
        inflight_committed: false,
        lost_changes: 0,
        oldest_lost_age: None,
        first_lost_acked: None,
        last_kept_sent: None,
        windows: Vec::new(),
    };
    for k in (0..=n).filter(|&k| states[k] == actual) {
        let lo = (0..k)
            .rev()
            .find(|&i| effective(i))
            .map(|i| p.acked[i].sent);
        let hi = (k..n).find(|&i| effective(i)).map(|i| p.acked[i].acked);
        res.windows.push((lo, hi));
    }
    if let Some((op, _)) = &p.inflight {
        let mut s = states[n].clone();
        op.apply(&mut s);
        if s != states[n] && s == actual {
            res.kept = Some(n);
            res.inflight_committed = true;
            res.windows.push((p.inflight.as_ref().map(|x| x.1), None));
            return res;
        }
    }
    let Some(k) = (0..=n).rev().find(|&k| states[k] == actual) else {
        return res;
    };
    res.kept = Some(k);
    let lost: Vec<usize> = (k..n).filter(|&i| effective(i)).collect();
    res.lost_changes = lost.len();
    if let Some(&i) = lost.first() {
        res.first_lost_acked = Some(p.acked[i].acked);
        res.oldest_lost_age = Some(kill.saturating_duration_since(p.acked[i].acked));
    }
    res.last_kept_sent = (0..k)
        .rev()
        .find(|&i| effective(i))
        .map(|i| p.acked[i].sent);
    res
}

fn actual_state(ami: &mut Ami) -> Result<(State, Vec<String>), String> {
    let b = bindings(ami)?;
    let (db_bind, db_dnd, other) = astdb(ami)?;
    let users = users_list(ami)?;
    let dnd: BTreeSet<String> = users
        .iter()
        .filter(|(_, v)| v.1)
        .map(|(u, _)| u.clone())
        .collect();
    let mut problems = Vec::new();
    if db_bind != b {
        problems.push(format!(
            "AstDB bindings != module bindings: {}",
            diff_maps("astdb", &db_bind, "ami", &b)
        ));
    }
    if db_dnd != dnd {
        problems.push(format!("AstDB dnd {db_dnd:?} != module dnd {dnd:?}"));
    }
    let (cu, cd) = configured();
    for (d, u) in &db_bind {
        if !cd.contains(d) || !cu.contains(u) {
            problems.push(format!("orphaned AstDB binding {d} = {u}"));
        }
    }
    for u in &db_dnd {
        if !cu.contains(u) {
            problems.push(format!("orphaned AstDB dnd key for {u}"));
        }
    }
    for o in other {
        problems.push(format!("unexpected AstDB key {o}"));
    }
    if b.get("2010").map(String::as_str) != Some("2010") {
        problems.push(format!("fixed device 2010 binding is {:?}", b.get("2010")));
    }
    Ok((State { bind: b, dnd }, problems))
}

#[test]
#[ignore = "long: run by scripts/storm.sh --crash"]
fn crash() {
    let kills = env_u64("STORM_KILLS", 10) as usize;
    let mut ast = start_instance("crash");
    ast.keep_run();
    let sh = setup(&ast);
    let mut handles = Vec::new();
    for i in 0..SESSIONS {
        let s = Arc::clone(&sh);
        handles.push(thread::spawn(move || writer(s, i)));
    }
    for f in [devstate_churn, sip_churn] {
        let s = Arc::clone(&sh);
        handles.push(thread::spawn(move || f(s)));
    }
    let mut rng = Rng::new(sh.seed ^ 0xC7A5);
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    let mut total_acked = 0usize;
    let mut total_lost = 0usize;
    let mut max_age = Duration::ZERO;
    for k in 1..=kills {
        let wait = rng.range_ms(3000, 12000);
        thread::sleep(wait);
        let acked_before: usize = sh
            .parts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|p| p.acked.len())
            .sum();
        // kill -9 while the writers run.
        let pid = ast.pid;
        let kill_at = Instant::now();
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        sh.crashing.store(true, Ordering::SeqCst);
        let dead = common::wait_until(Duration::from_secs(10), || !alive(pid));
        assert!(dead, "pid {pid} survived SIGKILL");
        let parked = common::wait_until(Duration::from_secs(30), || {
            sh.parked.load(Ordering::SeqCst) as usize == SESSIONS
        });
        if !parked {
            failures.push(format!(
                "kill {k}: only {} of {SESSIONS} writers noticed the crash",
                sh.parked.load(Ordering::SeqCst)
            ));
        }
        let _ = fs::remove_file(ast.run.join("rundir/asterisk.pid"));
        ast.pid = 0;
        let t = Instant::now();
        if let Err(e) = ast.start_again() {
            panic!("kill {k}: restart failed: {e}");
        }
        let boot_ms = t.elapsed().as_millis();
        sh.pid.store(ast.pid, Ordering::SeqCst);
        let mut ami = connect(&sh).expect("AMI after restart");
        let (actual, problems) = match actual_state(&mut ami) {
            Ok(x) => x,
            Err(e) => panic!("kill {k}: reading the state after restart: {e}"),
        };
        let mut parts = sh.parts.lock().unwrap_or_else(|e| e.into_inner());
        let mut lost = 0;
        let mut inflight_committed = 0;
        let mut inflight_n = 0;
        let mut oldest: Option<Duration> = None;
        let mut first_lost_min: Option<Instant> = None;
        let mut last_kept_max: Option<Instant> = None;
        let mut row_problems = problems.clone();
        let mut acked = 0;
        let mut all_windows: Vec<Vec<(Option<Instant>, Option<Instant>)>> = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            acked += p.acked.len();
            if p.inflight.is_some() {
                inflight_n += 1;
            }
            let r = evaluate_part(p, &actual, kill_at);
            all_windows.push(r.windows.clone());
            match r.kept {
                None => row_problems.push(format!(
                    "session {i}: persisted state matches no prefix of the acknowledged history: persisted {:?}, last acknowledged {:?}, in flight {:?}",
                    p.restrict(&actual), p.state, p.inflight.as_ref().map(|x| &x.0)
                )),
                Some(_) => {
                    lost += r.lost_changes;
                    if r.inflight_committed {
                        inflight_committed += 1;
                    }
                    if let Some(a) = r.oldest_lost_age {
                        oldest = Some(oldest.map_or(a, |o: Duration| o.max(a)));
                    }
                    if let Some(f) = r.first_lost_acked {
                        first_lost_min = Some(first_lost_min.map_or(f, |m: Instant| m.min(f)));
                    }
                    if let Some(s) = r.last_kept_sent {
                        last_kept_max = Some(last_kept_max.map_or(s, |m: Instant| m.max(s)));
                    }
                }
            }
        }
        // One commit order (AstDB): some cut time C must fall, for every session, between
        // the send of a kept change and the ack of the first lost one.
        let candidates: Vec<Option<Instant>> = std::iter::once(None)
            .chain(all_windows.iter().flatten().filter_map(|w| w.0).map(Some))
            .collect();
        let consistent = candidates.iter().any(|c| {
            all_windows.iter().all(|ws| {
                ws.iter().any(|(lo, hi)| {
                    let after_lo = match (lo, c) {
                        (None, _) => true,
                        (Some(_), None) => false,
                        (Some(l), Some(c)) => l <= c,
                    };
                    let before_hi = match (hi, c) {
                        (None, _) => true,
                        (Some(_), None) => true,
                        (Some(h), Some(c)) => c < h,
                    };
                    after_lo && before_hi
                })
            })
        });
        if let (false, Some(f), Some(l)) = (consistent, first_lost_min, last_kept_max) {
            if l > f {
                row_problems.push(format!(
                    "not a prefix of one commit order: an op sent {} ms after a lost op was acknowledged was kept",
                    (l - f).as_millis()
                ));
            }
        }
        if let Some(a) = oldest {
            if a > Duration::from_millis(2000) {
                row_problems.push(format!(
                    "lost an acknowledged change {} ms old at the kill (more than AstDB's ~1 s)",
                    a.as_millis()
                ));
            }
            max_age = max_age.max(a);
        }
        total_acked += acked;
        total_lost += lost;
        let row = format!(
            "| {k} | {:.1} | {acked} | {lost} | {} | {inflight_n}/{inflight_committed} | {} | {boot_ms} | {} |",
            wait.as_secs_f64(),
            oldest.map_or("-".to_string(), |d| d.as_millis().to_string()),
            actual.bind.len(),
            if row_problems.is_empty() { "ok".to_string() } else { row_problems.join("; ") }
        );
        eprintln!("{row}");
        rows.push(row);
        for p in &row_problems {
            failures.push(format!("kill {k}: {p}"));
        }
        let _ = acked_before;
        // Continue from what survived.
        for p in parts.iter_mut() {
            let s = p.restrict(&actual);
            p.base = s.clone();
            p.state = s;
            p.acked.clear();
            p.inflight = None;
        }
        drop(parts);
        sh.crashing.store(false, Ordering::SeqCst);
        sh.generation.fetch_add(1, Ordering::SeqCst);
    }
    sh.stop.store(true, Ordering::SeqCst);
    for h in handles {
        let _ = h.join();
    }
    let ops: u64 = sh
        .stats
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .ops
        .values()
        .sum();
    let mut s = String::new();
    let _ = writeln!(s, "# crash summary\n");
    let _ = writeln!(s, "- seed {}, run folder {}", sh.seed, ast.run.display());
    let _ = writeln!(s, "- {kills} kills, {ops} operations sent, {total_acked} acknowledged in the windows before the kills, {total_lost} acknowledged state changes lost in all, oldest lost acknowledgement {} ms before its kill", max_age.as_millis());
    let _ = writeln!(s, "\n| kill | ran (s) | acked since restart | acked changes lost | oldest lost ack age (ms) | in flight / committed | bindings after | boot (ms) | result |");
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let _ = writeln!(s, "{r}");
    }
    let _ = writeln!(s, "\n## Failures ({})\n", failures.len());
    for f in &failures {
        let _ = writeln!(s, "- {f}");
    }
    write_summary(&out_file("crash-summary.md"), &s);
    eprintln!("{s}");
    if !failures.is_empty() {
        ast.dump_logs();
        panic!("crash consistency failures: see the summary above");
    }
}

// ---------------------------------------------------------------------------
// valgrind flows
// ---------------------------------------------------------------------------

/// The key flows, once, against an Asterisk that `scripts/valgrind.sh` started under
/// memcheck (`VALGRIND_AMI_PORT`, `VALGRIND_SIP_PORT`, `VALGRIND_RUN`). Slow but
/// functional checks only: memcheck's report is the point.
#[test]
#[ignore = "run by scripts/valgrind.sh"]
fn valgrind_flows() {
    let port: u16 = env_u64("VALGRIND_AMI_PORT", 0) as u16;
    assert!(
        port != 0,
        "VALGRIND_AMI_PORT is not set: run scripts/valgrind.sh"
    );
    let sip_port = env_u64("VALGRIND_SIP_PORT", 0) as u16;
    let run = PathBuf::from(std::env::var("VALGRIND_RUN").expect("VALGRIND_RUN"));
    let mut ami = Ami::connect(port, "deviceuser", "deviceuser").expect("AMI login");
    ami.timeout = Duration::from_secs(120);
    ami.action(&[("Action", "Events"), ("EventMask", "off")]);
    let mut log = Vec::new();
    let mut step = |what: &str, ok: bool, detail: String| {
        let l = format!(
            "{} {what}{}",
            if ok { "ok  " } else { "FAIL" },
            if ok {
                String::new()
            } else {
                format!(": {detail}")
            }
        );
        eprintln!("{l}");
        log.push((ok, l));
    };
    let act = |ami: &mut Ami, f: &[(&str, &str)]| ami.action(f);
    let cmd = |ami: &mut Ami, c: &str| ami.command(c);
    let rx = |c: &str| ast_rx_at(&run, c);

    // Logins, replace, multiple devices, logouts.
    for (u, d) in [
        ("4101", "1000"),
        ("4102", "1001"),
        ("4101", "1002"),
        ("4103", "1000"),
    ] {
        let r = act(
            &mut ami,
            &[("Action", "DeviceUserLogin"), ("User", u), ("Device", d)],
        );
        step(&format!("login {u} on {d}"), r.is_success(), r.to_string());
    }
    let r = act(
        &mut ami,
        &[
            ("Action", "DeviceUserLogin"),
            ("User", "4104"),
            ("Device", "2010"),
        ],
    );
    step("login on fixed refused", !r.is_success(), r.to_string());
    let r = act(
        &mut ami,
        &[
            ("Action", "DeviceUserLogin"),
            ("User", "nobody"),
            ("Device", "1000"),
        ],
    );
    step("unknown user refused", !r.is_success(), r.to_string());
    let dial = ami
        .getvar("DEVICEUSER_DIAL(4101)", None)
        .unwrap_or_default();
    step("DEVICEUSER_DIAL(4101)", dial == "PJSIP/1002", dial);
    let user = ami
        .getvar("DEVICEUSER_USER(1000)", None)
        .unwrap_or_default();
    step("DEVICEUSER_USER(1000)", user == "4103", user);
    let st = ami
        .getvar("DEVICEUSER(4102,state)", None)
        .unwrap_or_default();
    step("DEVICEUSER(4102,state)", !st.is_empty(), st);
    let (_, items) = ami.list_action(&[("Action", "DeviceUserBindings")]);
    step(
        "DeviceUserBindings",
        items.len() == 4,
        format!("{} items", items.len()),
    );
    let (_, items) = ami.list_action(&[("Action", "DeviceUserUsers")]);
    step("DeviceUserUsers", !items.is_empty(), String::new());
    let (_, items) = ami.list_action(&[("Action", "DeviceUserDevices")]);
    step("DeviceUserDevices", !items.is_empty(), String::new());
    for on in ["on", "off", "on"] {
        let r = act(
            &mut ami,
            &[("Action", "DeviceUserDND"), ("User", "4102"), ("DND", on)],
        );
        step(&format!("DND {on}"), r.is_success(), r.to_string());
    }
    let r = act(&mut ami, &[("Action", "DeviceUserDND"), ("User", "4102")]);
    step("DND query", r.val("Message").contains("on"), r.to_string());
    for c in [
        "deviceuser show devices",
        "deviceuser show users",
        "deviceuser show bindings",
        "deviceuser show bindings user 4101",
        "deviceuser show bindings device 1000",
        "core show hints",
        "deviceuser login 4105 1001",
        "deviceuser dnd 4105 on",
        "deviceuser logout device 1001",
        "_command matchesarray \"deviceuser show bindings user 410\" \"410\"",
    ] {
        let out = cmd(&mut ami, c);
        step(&format!("CLI {c}"), !out.contains("No such command"), out);
    }
    // Device state churn of a bound device goes through the subscription.
    let r = act(
        &mut ami,
        &[
            ("Action", "DeviceUserLogin"),
            ("User", "4107"),
            ("Device", "vg"),
        ],
    );
    step(
        "login 4107 on vg (Custom:vg/1)",
        r.is_success(),
        r.to_string(),
    );
    for st in ["INUSE", "NOT_INUSE"] {
        let r = act(
            &mut ami,
            &[
                ("Action", "Setvar"),
                ("Variable", "DEVICE_STATE(Custom:vg/1)"),
                ("Value", st),
            ],
        );
        step("Setvar DEVICE_STATE", r.is_success(), r.to_string());
    }
    // A real SIP registration and a call that runs UserLogin(4106,6789) on device 1000.
    if sip_port != 0 {
        let ok = sipp_once(
            &run,
            sip_port,
            "register.xml",
            "1000",
            "1000",
            &["-key", "expires", "600", "-timeout", "60"],
        );
        step("sipp REGISTER 1000", ok, String::new());
        let ok = sipp_once(
            &run,
            sip_port,
            "uac-call.xml",
            "1000",
            "**41066789",
            &["-key", "from_user", "1000", "-timeout", "90"],
        );
        let _ = ok; // the dialplan hangs up: sipp may count the call as failed
        let u = ami
            .getvar("DEVICEUSER_USER(1000)", None)
            .unwrap_or_default();
        step("UserLogin by a SIP call", u == "4106", u);
        let ok = sipp_once(
            &run,
            sip_port,
            "unregister-all.xml",
            "1000",
            "1000",
            &["-timeout", "60"],
        );
        step("sipp unregister 1000", ok, String::new());
    }
    // Reload, a broken config refused, unload, load.
    let out = cmd(&mut ami, "module reload res_deviceuser.so");
    step(
        "reload",
        out.contains("reloaded") || out.contains("Reloaded"),
        out,
    );
    let conf = run.join("etc/res_deviceuser.conf");
    let good = fs::read_to_string(&conf).unwrap();
    fs::write(
        &conf,
        format!("{good}\n[broken]\ntype = device\nmode = sideways\n"),
    )
    .unwrap();
    let out = cmd(&mut ami, "module reload res_deviceuser.so");
    step("reload of a broken config", true, out);
    fs::write(&conf, good).unwrap();
    for round in 0..2 {
        let out = rx("module unload res_deviceuser.so");
        step(&format!("unload {round}"), out.contains("Unloaded"), out);
        let out = rx("module load res_deviceuser.so");
        step(&format!("load {round}"), out.contains("Loaded"), out);
    }
    let (_, items) = ami.list_action(&[("Action", "DeviceUserBindings")]);
    step(
        "bindings restored after load",
        items.len() >= 3,
        format!("{} items", items.len()),
    );
    let r = act(
        &mut ami,
        &[("Action", "DeviceUserLogout"), ("User", "4101")],
    );
    step("logout user 4101", r.is_success(), r.to_string());
    let r = act(
        &mut ami,
        &[("Action", "DeviceUserLogout"), ("Device", "1000")],
    );
    step("logout device 1000", r.is_success(), r.to_string());
    let out = cmd(&mut ami, "deviceuser logout all");
    step("logout all", true, out);
    let failed: Vec<String> = log
        .iter()
        .filter(|(ok, _)| !ok)
        .map(|(_, l)| l.clone())
        .collect();
    let text: String = log.iter().map(|(_, l)| format!("{l}\n")).collect();
    write_summary(&out_file("valgrind-flows.txt"), &text);
    assert!(
        failed.is_empty(),
        "flows failed under valgrind: {failed:#?}"
    );
}
