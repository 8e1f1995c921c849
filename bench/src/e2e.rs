//! The fan-out end to end, as a user sees it: one Asterisk instance holds both paths, an AMI
//! session with every event and no filter is connected (as a wallboard or CRM would be), and
//! each change is awaited as the `ExtensionStatus` of the hint that shows it and as a SIP
//! NOTIFY at a subscribed `sipp` watcher.
//!
//! Paths, each a burst of pipelined `Setvar DEVICE_STATE(Custom:<x><n>)` for n in 1..=N:
//! - **module** (`M`): users logged in on devices `Custom:m<n>`, their hints
//!   `exten => <user>,hint,DeviceUser:<user>` (the hints `hint_context` makes, written in
//!   `extensions.conf` so that the floor users below have none: adding tens of thousands of
//!   hints and removing some costs Asterisk minutes, as it scans every hint it has on each);
//! - **Asterisk** (`A`): hints `exten => <user>,hint,Custom:d<n>` in a context of their own,
//!   with the same extension names (so Asterisk's walk of either context is equally long);
//! - **floor, with the module** (`F1`): users logged in on `Custom:f<n>` who have no hint,
//!   so each change costs Asterisk's state change of a device no hint watches plus
//!   what the module adds beyond any hint: its subscription callback and one publication of
//!   `DeviceUser:<user>` that no hint watches, with its AMI event;
//! - **floor, without** (`F0`): `Custom:g<n>`, bound to no one and watched by no hint.
//!
//! `F1 − F0` is the floor: what the design must add to a change whatever it does. `M − A` is
//! what the module adds to Asterisk's hint path. Both are measured in the same instance, in
//! rounds that alternate, so drift falls on all paths alike.
//!
//! The first change after login (devices that never published a state; the module follows
//! them through a subscription to all device state traffic until then) is measured once per
//! instance, module path first (so that subscription, ended a moment after the last of those
//! devices changed, does not see Asterisk's own path's traffic); steady state in the cycles
//! after. Each repetition boots a fresh instance.
//!
//! Also in the same instance: login+logout pairs against `Setvar DEVICE_STATE` pairs of hinted
//! devices, pipelined the same way, with the unfiltered session connected.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crate::ms;
use crate::start_instance;
use deviceuser_kit::ami::{act, stem, Ami, Burst};
use deviceuser_kit::sip::{self, Watcher};
use deviceuser_kit::Asterisk;

type Res<T> = Result<T, String>;

/// Users logged in (module path) and hinted devices (Asterisk's path); devices per floor path.
pub const N: usize = 10_000;
/// Configured users that stay logged out (their hints exist all the same).
pub const IDLE: usize = 2_000;
/// Login/logout pairs per burst, and as many Setvar pairs.
pub const PAIRS: usize = 2_000;
/// Devices per floor path. Fewer than N: every device that ever published a state holds an
/// entry in Asterisk's device topic pool, whose lookups (57 buckets) get slower with each.
pub const FLOOR: usize = 2_000;
pub const MODULE_CONTEXT: &str = "bench-users";
pub const OWN_CONTEXT: &str = "bench-own";

/// The extension (and user id) of user or hint `n`.
pub fn exten(n: usize) -> String {
    (100_000 + n).to_string()
}

/// A path of the fan-out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Path {
    Module,
    Asterisk,
    FloorModule,
    FloorBare,
}

impl Path {
    pub const ALL: [Path; 4] = [
        Path::Module,
        Path::Asterisk,
        Path::FloorModule,
        Path::FloorBare,
    ];

    /// The Custom device stem this path's burst changes.
    fn custom(self) -> &'static str {
        match self {
            Path::Module => "Custom:m",
            Path::Asterisk => "Custom:d",
            Path::FloorModule => "Custom:f",
            Path::FloorBare => "Custom:g",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Path::Module => "module: `Custom:m<n>` → `DeviceUser:<user>` → hint",
            Path::Asterisk => "Asterisk: `Custom:d<n>` → hint",
            Path::FloorModule => "floor, module: `Custom:f<n>` bound, hint removed",
            Path::FloorBare => "floor, bare: `Custom:g<n>`, no hint, unbound",
        }
    }

    pub fn short(self) -> &'static str {
        match self {
            Path::Module => "M",
            Path::Asterisk => "A",
            Path::FloorModule => "F1",
            Path::FloorBare => "F0",
        }
    }
}

/// `StatusText` of the `ExtensionStatus` a device state leads to.
fn ext_status(state: &str) -> &'static str {
    match state {
        "INUSE" => "InUse",
        _ => "Idle",
    }
}

// ---------------------------------------------------------------------------
// The unfiltered AMI session
// ---------------------------------------------------------------------------

/// An event the unfiltered session counts: (class, id, state).
type Counted = (String, String, String);

#[derive(Default)]
struct Seen {
    /// (class, state) → ids that reached it since the last reset, and when the last did.
    reached: HashMap<(String, String), (HashSet<String>, Option<Instant>)>,
    /// Events by name since the last reset.
    events: BTreeMap<String, u64>,
    bytes: u64,
    closed: Option<String>,
}

/// An AMI session logged in with `Events: on` and no filter, read on a thread of its own that
/// parses every event. `ExtensionStatus` is counted by `ext@<Context>` and `StatusText`,
/// `DeviceStateChange` by the device name without its trailing number and `State`.
pub struct Unfiltered {
    seen: Arc<Mutex<Seen>>,
    stream: TcpStream,
}

impl Unfiltered {
    pub fn connect(port: u16) -> Res<Unfiltered> {
        let mut stream = TcpStream::connect(("127.0.0.1", port))
            .map_err(|e| format!("connect to AMI port {port}: {e}"))?;
        stream.set_nodelay(true).ok();
        stream
            .write_all(
                b"Action: Login\r\nUsername: deviceuser\r\nSecret: deviceuser\r\nEvents: on\r\nActionID: login\r\n\r\n",
            )
            .map_err(|e| e.to_string())?;
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (shared, mut reader) = (
            Arc::clone(&seen),
            stream.try_clone().map_err(|e| e.to_string())?,
        );
        let (tx, rx) = std::sync::mpsc::channel::<Res<()>>();
        thread::spawn(move || {
            let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
            let mut chunk = vec![0u8; 1 << 16];
            let mut logged_in = false;
            let mut tx = Some(tx);
            loop {
                let n = match reader.read(&mut chunk) {
                    Ok(0) | Err(_) => {
                        shared.lock().unwrap().closed =
                            Some("unfiltered AMI session closed".into());
                        return;
                    }
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                let now = Instant::now();
                let mut start = 0;
                let mut found = Vec::new();
                while let Some(p) = buf[start..].windows(4).position(|w| w == b"\r\n\r\n") {
                    found.push((start, start + p));
                    start += p + 4;
                }
                // (event name, (class, id, state) when counted).
                let mut local: Vec<(String, Option<Counted>)> = Vec::new();
                for (s, e) in found {
                    let text = String::from_utf8_lossy(&buf[s..e]);
                    let mut event = None;
                    let (mut device, mut state, mut exten, mut context, mut status) =
                        (None, None, None, None, None);
                    for line in text.split("\r\n") {
                        let Some((k, v)) = line.split_once(": ") else {
                            continue;
                        };
                        match k {
                            "Event" => event = Some(v.to_string()),
                            "Device" => device = Some(v.to_string()),
                            "State" => state = Some(v.to_string()),
                            "Exten" => exten = Some(v.to_string()),
                            "Context" => context = Some(v.to_string()),
                            "StatusText" => status = Some(v.to_string()),
                            "Response" if !logged_in => {
                                logged_in = true;
                                if let Some(tx) = tx.take() {
                                    let _ = tx.send(if v == "Success" {
                                        Ok(())
                                    } else {
                                        Err(format!("AMI login refused: {text}"))
                                    });
                                }
                            }
                            _ => {}
                        }
                    }
                    let Some(event) = event else { continue };
                    let key = match event.as_str() {
                        "ExtensionStatus" => match (context, exten, status) {
                            (Some(c), Some(x), Some(s)) => Some((format!("ext@{c}"), x, s)),
                            _ => None,
                        },
                        "DeviceStateChange" => match (device, state) {
                            (Some(d), Some(s)) => Some((stem(&d).to_string(), d, s)),
                            _ => None,
                        },
                        _ => None,
                    };
                    local.push((event, key));
                }
                let consumed = start;
                buf.drain(..consumed);
                if local.is_empty() {
                    continue;
                }
                let mut seen = shared.lock().unwrap();
                seen.bytes += consumed as u64;
                for (event, key) in local {
                    *seen.events.entry(event).or_insert(0) += 1;
                    if let Some((class, id, state)) = key {
                        let e = seen.reached.entry((class, state)).or_default();
                        if e.0.insert(id) {
                            e.1 = Some(now);
                        }
                    }
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(15))
            .map_err(|_| "no response to the unfiltered session's login".to_string())??;
        Ok(Unfiltered { seen, stream })
    }

    pub fn reset(&self) {
        let mut s = self.seen.lock().unwrap();
        s.reached.clear();
        s.events.clear();
        s.bytes = 0;
    }

    fn count(&self, class: &str, state: &str) -> (usize, Option<Instant>) {
        let s = self.seen.lock().unwrap();
        s.reached
            .get(&(class.to_string(), state.to_string()))
            .map_or((0, None), |(ids, at)| (ids.len(), *at))
    }

    /// Events by name, and bytes, since the last reset.
    fn events(&self) -> (BTreeMap<String, u64>, u64) {
        let s = self.seen.lock().unwrap();
        (s.events.clone(), s.bytes)
    }

    /// Waits until `want` ids of `class` reached `state`, or nothing new came for `quiet`.
    fn wait_for(
        &self,
        class: &str,
        state: &str,
        want: usize,
        quiet: Duration,
    ) -> Res<(usize, Option<Instant>)> {
        deviceuser_kit::wait_progress(want, quiet, || {
            if let Some(e) = &self.seen.lock().unwrap().closed {
                return Err(e.clone());
            }
            Ok(self.count(class, state))
        })
    }
}

impl Drop for Unfiltered {
    fn drop(&mut self) {
        let _ = self.stream.write_all(b"Action: Logoff\r\n\r\n");
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

/// `res_deviceuser.conf`: users `exten(1..=N+IDLE)` (devices `d<n>` dialled `Custom:m<n>` for
/// the first N; `e<n>` = `Custom:e<n>` for the login bursts), floor users `f<n>` on devices
/// `fd<n>` = `Custom:f<n>`.
fn deviceuser_conf() -> String {
    let mut s = String::with_capacity((N + FLOOR + IDLE) * 100);
    s.push_str("[general]\nmultiple_logins = yes\n");
    for n in 1..=N + IDLE {
        let _ = write!(
            s,
            "\n[{}]\ntype = user\npassword = 1234\nfullname = Operator {n}\n",
            exten(n)
        );
    }
    for n in 1..=N {
        let _ = write!(s, "\n[d{n}]\ntype = device\ndial = Custom:m{n}\n");
    }
    for n in 1..=FLOOR {
        let _ = write!(
            s,
            "\n[f{n}]\ntype = user\npassword = 1234\n\n[fd{n}]\ntype = device\ndial = Custom:f{n}\n"
        );
    }
    for n in 1..=PAIRS {
        let _ = write!(s, "\n[e{n}]\ntype = device\ndial = Custom:e{n}\n");
    }
    s
}

/// `extensions.conf`: the users' hints `exten => <user>,hint,DeviceUser:<user>` in
/// [`MODULE_CONTEXT`] (the ones `hint_context` would make; written here so that the floor
/// users have none, see the module documentation) and Asterisk's own hints on `Custom:d<n>`
/// in [`OWN_CONTEXT`].
///
/// The trie matcher is on while the instance boots, and the rounds run with the default
/// matcher (set at run time), as in the instance the issue measured.
fn extensions_conf() -> String {
    let mut s = format!(
        "[general]\nstatic = yes\nwriteprotect = yes\nextenpatternmatchnew = yes\n\n[{MODULE_CONTEXT}]\n"
    );
    for n in 1..=N + IDLE {
        let _ = writeln!(s, "exten => {0},hint,DeviceUser:{0}", exten(n));
    }
    let _ = write!(s, "\n[{OWN_CONTEXT}]\n");
    for n in 1..=N + IDLE {
        let _ = writeln!(s, "exten => {},hint,Custom:d{n}", exten(n));
    }
    s
}

/// Two endpoints for the watchers: `watcher` subscribes in the module's hint context,
/// `watcher-own` in Asterisk's.
fn pjsip_conf() -> String {
    format!(
        "[transport-udp]\ntype = transport\nprotocol = udp\nbind = 127.0.0.1:5060\n\n\
         [watcher]\ntype = endpoint\ncontext = {MODULE_CONTEXT}\ndisallow = all\nallow = ulaw\n\n\
         [watcher-own]\ntype = endpoint\ncontext = {OWN_CONTEXT}\ndisallow = all\nallow = ulaw\n"
    )
}

fn setvar(dev: &str, state: &str) -> Vec<(String, String)> {
    act(&[
        ("Action", "Setvar"),
        ("Variable", &format!("DEVICE_STATE({dev})")),
        ("Value", state),
    ])
}

fn check(b: &Burst, what: &str) -> Res<()> {
    if b.failed > 0 {
        return Err(format!(
            "{what}: {} of {} actions failed (first: {:?})",
            b.failed, b.actions, b.first_failure
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Rounds
// ---------------------------------------------------------------------------

/// One burst of one path.
#[derive(Clone)]
pub struct Round {
    pub path: Path,
    pub state: &'static str,
    pub first: bool,
    pub changes: usize,
    /// Changes that reached what the path awaits (its hint's `ExtensionStatus`; for the floor
    /// paths, the `DeviceStateChange` of the last device state published).
    pub arrived: usize,
    /// First Setvar → the last awaited event.
    pub wall: Duration,
    /// First Setvar → the last `DeviceStateChange` of `DeviceUser:` (module path) or of the
    /// changed device (the others): what `--only fanout` awaits.
    pub wall_state: Duration,
    /// First Setvar → the NOTIFY of the last device's hint at the watcher.
    pub notify: Option<Duration>,
    /// Asterisk's CPU from before the burst until idle (per-thread schedstat, ns precision).
    pub cpu: Duration,
    /// Of which the AMI session threads (the driver's and the unfiltered one's).
    pub cpu_sessions: Duration,
    /// Of which the module's threads named `devuser-*`.
    pub cpu_module_threads: Duration,
    /// AMI events by name that reached the unfiltered session.
    pub events: BTreeMap<String, u64>,
    /// Device state messages that reached the module (`deviceuser show stats`).
    pub module_msgs: u64,
    pub published: u64,
    /// Questions Asterisk put to the module's provider (builds that count them).
    pub provider_queries: Option<u64>,
}

impl Round {
    pub fn cpu_per_change(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.changes as f64
    }
}

pub struct Repetition {
    pub rounds: Vec<Round>,
    /// Login+logout bursts and Setvar bursts, alternating: (login, setvar) per round.
    pub pairs: Vec<(PairRun, PairRun)>,
    /// The same after the unfiltered session is gone (only the driver's, events off).
    pub pairs_quiet: Vec<(PairRun, PairRun)>,
    /// `module load` with every user and hint.
    pub load: Duration,
}

#[derive(Clone)]
pub struct PairRun {
    pub elapsed: Duration,
    pub cpu: Duration,
    pub session_cpu: Duration,
}

struct Ctx<'a> {
    inst: &'a Asterisk,
    driver: &'a mut Ami,
    events: &'a Unfiltered,
    watch_module: Option<&'a Watcher>,
    watch_own: Option<&'a Watcher>,
    session_tids: Vec<u32>,
}

/// The provider's counter in `deviceuser show stats summary`.
const PROVIDER_QUERIES: &str = "Provider queries (DeviceUser: states Asterisk asked for)";

fn stats_counter(ami: &mut Ami, name: &str) -> Res<u64> {
    let out = ami.try_command("deviceuser show stats summary")?;
    out.lines()
        .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("no `{name}` count in `deviceuser show stats summary`: {out}"))
}

fn cpu_total(
    before: &HashMap<u32, u64>,
    after: &HashMap<u32, u64>,
    only: Option<&[u32]>,
) -> Duration {
    after
        .iter()
        .filter(|(tid, _)| only.is_none_or(|o| o.contains(tid)))
        .map(|(tid, ns)| {
            Duration::from_nanos(ns.saturating_sub(before.get(tid).copied().unwrap_or(0)))
        })
        .sum()
}

impl Ctx<'_> {
    fn round(&mut self, path: Path, state: &'static str, first: bool) -> Res<Round> {
        let n = if matches!(path, Path::FloorModule | Path::FloorBare) {
            FLOOR
        } else {
            N
        };
        self.round_profiled(path, state, first, 1..=n, None)
    }

    /// A round; with `perf`, `perf record` samples Asterisk's threads (with call graphs) from
    /// just before the burst until Asterisk is idle, into that file.
    fn round_profiled(
        &mut self,
        path: Path,
        state: &'static str,
        first: bool,
        devices: std::ops::RangeInclusive<usize>,
        perf: Option<&std::path::Path>,
    ) -> Res<Round> {
        let actions: Vec<_> = devices
            .clone()
            .map(|n| setvar(&format!("{}{n}", path.custom()), state))
            .collect();
        let count = actions.len();
        let watcher = match path {
            Path::Module if devices.contains(&N) => self.watch_module,
            Path::Asterisk if devices.contains(&N) => self.watch_own,
            _ => None,
        };
        let (msgs0, pub0) = (
            stats_counter(self.driver, "Device state messages received")?,
            stats_counter(self.driver, "User states published")?,
        );
        let asked0 = stats_counter(self.driver, PROVIDER_QUERIES).ok();
        self.inst.settle();
        self.events.reset();
        if let Some(w) = watcher {
            w.drain();
        }
        let module_tids = module_threads(self.inst);
        let mut recorder = match perf {
            Some(file) => Some(perf_record(self.inst.pid, file)?),
            None => None,
        };
        let threads0 = self.inst.thread_cpu_ns();
        let sent = SystemTime::now();
        let t0 = Instant::now();
        let burst = self.driver.pipeline(&actions)?;
        check(&burst, "Setvar DEVICE_STATE")?;
        let (class, want) = match path {
            Path::Module => (format!("ext@{MODULE_CONTEXT}"), ext_status(state)),
            Path::Asterisk => (format!("ext@{OWN_CONTEXT}"), ext_status(state)),
            Path::FloorModule => ("DeviceUser:f".to_string(), state),
            Path::FloorBare => ("Custom:g".to_string(), state),
        };
        let (arrived, last) = self
            .events
            .wait_for(&class, want, count, Duration::from_secs(5))?;
        let state_class = match path {
            Path::Module => "DeviceUser:",
            Path::FloorModule => "DeviceUser:f",
            p => p.custom(),
        };
        let notify = watcher.and_then(|w| {
            w.next(Duration::from_secs(5))
                .map(|n| sip::latency(sent, &n))
        });
        self.inst.settle();
        let threads1 = self.inst.thread_cpu_ns();
        if let Some(r) = recorder.as_mut() {
            perf_stop(r);
        }
        let (_, last_state) = self.events.count(state_class, state);
        let since =
            |t: Option<Instant>| t.map_or(Duration::ZERO, |t| t.saturating_duration_since(t0));
        let (events, _) = self.events.events();
        let (msgs1, pub1) = (
            stats_counter(self.driver, "Device state messages received")?,
            stats_counter(self.driver, "User states published")?,
        );
        let asked1 = stats_counter(self.driver, PROVIDER_QUERIES).ok();
        let r = Round {
            path,
            state,
            first,
            changes: count,
            arrived,
            wall: since(last),
            wall_state: since(last_state),
            notify,
            cpu: cpu_total(&threads0, &threads1, None),
            cpu_sessions: cpu_total(&threads0, &threads1, Some(&self.session_tids)),
            cpu_module_threads: cpu_total(&threads0, &threads1, Some(&module_tids)),
            events,
            module_msgs: msgs1 - msgs0,
            published: pub1 - pub0,
            provider_queries: asked0.zip(asked1).map(|(a, b)| b - a),
        };
        eprintln!(
            "[bench]   e2e {}{} → {state}: {}/{} in {:?} (state {:?}, NOTIFY {:?}), cpu {:.1} µs/change, module msgs {}, published {}",
            path.short(),
            if first { " (first change)" } else { "" },
            r.arrived,
            r.changes,
            r.wall,
            r.wall_state,
            r.notify,
            r.cpu_per_change(),
            r.module_msgs,
            r.published
        );
        Ok(r)
    }
}

/// Login+logout of the idle users on devices `e<n>`, then the Setvar pairs of Asterisk's
/// hinted devices `Custom:d<N+n>` (→ INUSE, → NOT_INUSE), each
/// measured from an idle Asterisk until idle.
fn pairs_round(inst: &Asterisk, driver: &mut Ami, session_tid: u32) -> Res<(PairRun, PairRun)> {
    let logins: Vec<_> = (1..=PAIRS)
        .map(|n| {
            act(&[
                ("Action", "DeviceUserLogin"),
                ("User", &exten(N + n)),
                ("Device", &format!("e{n}")),
            ])
        })
        .chain((1..=PAIRS).map(|n| act(&[("Action", "DeviceUserLogout"), ("User", &exten(N + n))])))
        .collect();
    let setvars: Vec<_> = ["INUSE", "NOT_INUSE"]
        .iter()
        .flat_map(|s| (1..=PAIRS).map(move |n| setvar(&format!("Custom:d{}", N + n), s)))
        .collect();
    let mut out = Vec::new();
    for (what, actions) in [("login/logout", &logins), ("Setvar pairs", &setvars)] {
        inst.settle();
        let t0 = inst.thread_cpu_ns();
        let s0 = t0.get(&session_tid).copied().unwrap_or(0);
        let b = driver.pipeline(actions)?;
        check(&b, what)?;
        let s1 = inst.thread_cpu_ns().get(&session_tid).copied().unwrap_or(0);
        inst.settle();
        let cpu = cpu_total(&t0, &inst.thread_cpu_ns(), None);
        eprintln!(
            "[bench]   e2e {what}: {} actions in {:?}, cpu {:.1} µs/pair",
            b.actions,
            b.elapsed,
            cpu.as_secs_f64() * 1e6 / PAIRS as f64
        );
        out.push(PairRun {
            elapsed: b.elapsed,
            cpu,
            session_cpu: Duration::from_nanos(s1.saturating_sub(s0)),
        });
    }
    Ok((out[0].clone(), out[1].clone()))
}

/// Starts `perf record` on every thread of `pid`: CPU-clock samples (hardware counters are
/// not available on every virtual machine) with DWARF call graphs (Debian's Asterisk is built
/// without frame pointers).
fn perf_record(pid: u32, file: &std::path::Path) -> Res<std::process::Child> {
    let child = std::process::Command::new("perf")
        .args([
            "record",
            "-q",
            "-e",
            "cpu-clock",
            "-F",
            "1999",
            "--call-graph",
            "dwarf,16384",
        ])
        .arg("-p")
        .arg(pid.to_string())
        .arg("-o")
        .arg(file)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start perf (apt-get install linux-perf): {e}"))?;
    // perf needs a moment to attach to every thread.
    thread::sleep(Duration::from_millis(500));
    Ok(child)
}

fn perf_stop(child: &mut std::process::Child) {
    // SIGINT makes perf write its file and leave.
    let _ = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// Asterisk's extension matcher: the trie (`true`) or the default walk (`false`).
fn set_matcher(ami: &mut Ami, trie: bool) -> Res<()> {
    let out = ami.try_command(&format!("dialplan set extenpatternmatchnew {trie}"))?;
    let want = if trie {
        "NEW pattern match"
    } else {
        "OLD pattern match"
    };
    if !out.contains(want) {
        return Err(format!("dialplan set extenpatternmatchnew {trie}: {out}"));
    }
    Ok(())
}

fn module_threads(inst: &Asterisk) -> Vec<u32> {
    ["devuser-commit", "devuser-policy"]
        .iter()
        .flat_map(|n| inst.threads_named(n))
        .collect()
}

/// The thread serving a session: the busiest one in a burst of Pings on it.
fn session_thread(inst: &Asterisk, ami: &mut Ami) -> Res<u32> {
    let pings: Vec<_> = (0..2000).map(|_| act(&[("Action", "Ping")])).collect();
    inst.settle();
    let before = inst.thread_cpu_ns();
    ami.pipeline(&pings)?;
    let after = inst.thread_cpu_ns();
    after
        .iter()
        .max_by_key(|(tid, ns)| *ns - before.get(tid).copied().unwrap_or(0))
        .map(|(tid, _)| *tid)
        .ok_or_else(|| "no thread of Asterisk found".into())
}

/// The thread serving the unfiltered session: the busiest one while it receives a burst of
/// `UserEvent`s sent on the driver's session, other than the driver's.
fn events_thread(inst: &Asterisk, ami: &mut Ami, driver_tid: u32) -> Res<u32> {
    let events: Vec<_> = (0..2000)
        .map(|n| {
            act(&[
                ("Action", "UserEvent"),
                ("UserEvent", "bench"),
                ("N", &n.to_string()),
            ])
        })
        .collect();
    inst.settle();
    let before = inst.thread_cpu_ns();
    ami.pipeline(&events)?;
    inst.settle();
    let after = inst.thread_cpu_ns();
    after
        .iter()
        .filter(|(tid, _)| **tid != driver_tid)
        .max_by_key(|(tid, ns)| *ns - before.get(tid).copied().unwrap_or(0))
        .map(|(tid, _)| *tid)
        .ok_or_else(|| "no thread of Asterisk found".into())
}

/// Steady-state cycles per instance by default (each: every path → NOT_INUSE, then → INUSE).
pub const CYCLES: usize = 3;
/// Login/Setvar pair bursts per instance.
pub const PAIR_ROUNDS: usize = 3;

/// One instance: setup, the first change, steady cycles, login pairs.
pub fn repetition(rep: usize, cycles: usize) -> Res<Repetition> {
    eprintln!(
        "[bench] e2e instance {rep} ({}): {N} users on Custom:m<n> + {IDLE} idle (hints in {MODULE_CONTEXT}), {N} hints on Custom:d<n> in {OWN_CONTEXT}, {FLOOR} floor users",
        crate::module_file().display()
    );
    // Asterisk scans every hint it has each time it adds one: the boot with these hints takes
    // tens of seconds on a busy machine.
    std::env::set_var("DEVICEUSER_BOOT_TIMEOUT", "600");
    let mut inst = start_instance(
        "e2e",
        vec![
            ("res_deviceuser.conf", deviceuser_conf()),
            ("extensions.conf", extensions_conf()),
            ("pjsip.conf", pjsip_conf()),
        ],
        true,
    )?;
    let mut driver = crate::driver_session(inst.ami_port)?;
    inst.settle();
    let t = Instant::now();
    let r = driver.try_action(&[
        ("Action", "ModuleLoad"),
        ("Module", "res_deviceuser.so"),
        ("LoadType", "load"),
    ])?;
    if !r.is_success() {
        return Err(format!("module load: {:?}", r.get("Message")));
    }
    let load = t.elapsed();
    eprintln!("[bench]   module load in {load:?}");
    inst.settle();
    set_matcher(&mut driver, false)?;
    // Devices of the floor and of the login bursts have published once (they are followed
    // through their own topics from the start); Custom:m<n> and Custom:d<n> never have.
    let presets: Vec<_> = (1..=FLOOR)
        .flat_map(|n| {
            [
                setvar(&format!("Custom:f{n}"), "NOT_INUSE"),
                setvar(&format!("Custom:g{n}"), "NOT_INUSE"),
            ]
        })
        .chain((1..=PAIRS).map(|n| setvar(&format!("Custom:e{n}"), "NOT_INUSE")))
        .chain((N + 1..=N + PAIRS).map(|n| setvar(&format!("Custom:d{n}"), "NOT_INUSE")))
        .collect();
    check(&driver.pipeline(&presets)?, "preset Setvar")?;
    inst.settle();
    let logins: Vec<_> = (1..=N)
        .map(|n| {
            act(&[
                ("Action", "DeviceUserLogin"),
                ("User", &exten(n)),
                ("Device", &format!("d{n}")),
            ])
        })
        .chain((1..=FLOOR).map(|n| {
            act(&[
                ("Action", "DeviceUserLogin"),
                ("User", &format!("f{n}")),
                ("Device", &format!("fd{n}")),
            ])
        }))
        .collect();
    check(&driver.pipeline(&logins)?, "DeviceUserLogin")?;
    inst.settle();
    let driver_tid = session_thread(&inst, &mut driver)?;
    let events = Unfiltered::connect(inst.ami_port)?;
    let events_tid = events_thread(&inst, &mut driver, driver_tid)?;
    let dir = inst.run.join("watchers");
    let watch_module = Watcher::subscribe(&dir.join("module"), inst.sip_port, "watcher", &exten(N))
        .map_err(|e| eprintln!("[bench]   e2e: no NOTIFY measure on the module path: {e}"))
        .ok();
    let watch_own = Watcher::subscribe(&dir.join("own"), inst.sip_port, "watcher-own", &exten(N))
        .map_err(|e| eprintln!("[bench]   e2e: no NOTIFY measure on Asterisk's path: {e}"))
        .ok();
    let mut ctx = Ctx {
        inst: &inst,
        driver: &mut driver,
        events: &events,
        watch_module: watch_module.as_ref(),
        watch_own: watch_own.as_ref(),
        session_tids: vec![driver_tid, events_tid],
    };
    let mut rounds = Vec::new();
    // The first change, in two halves with the paths in either order: Asterisk's device
    // topic pool keeps its entries in the order they were made, the first state a device
    // publishes makes its entry, and every later lookup of a device's topic walks its bucket
    // from the oldest entry. Made M1 A1 A2 M2, the module's and Asterisk's devices lie
    // equally deep on average, so the steady rounds after compare like with like.
    let half = N / 2;
    // DEVICEUSER_BENCH_PERF_FIRST=<dir>: these rounds are recorded with `perf` too (their
    // figures then count the sampling's cost).
    let perf_first = std::env::var_os("DEVICEUSER_BENCH_PERF_FIRST").map(std::path::PathBuf::from);
    for (k, (path, range)) in [
        (Path::Module, 1..=half),
        (Path::Asterisk, 1..=half),
        (Path::Asterisk, half + 1..=N),
        (Path::Module, half + 1..=N),
    ]
    .into_iter()
    .enumerate()
    {
        let file = perf_first.as_ref().map(|d| {
            let _ = std::fs::create_dir_all(d);
            d.join(format!("{rep}-first{k}-{}.data", path.short()))
        });
        rounds.push(ctx.round_profiled(path, "INUSE", true, range, file.as_deref())?);
    }
    for path in [Path::FloorModule, Path::FloorBare] {
        rounds.push(ctx.round(path, "INUSE", false)?);
    }
    let mut pairs = Vec::new();
    for c in 0..cycles {
        for state in ["NOT_INUSE", "INUSE"] {
            // The order of the paths rotates from cycle to cycle.
            for k in 0..4 {
                let path = Path::ALL[(k + c) % 4];
                rounds.push(ctx.round(path, state, false)?);
            }
        }
        if c < PAIR_ROUNDS {
            pairs.push(pairs_round(ctx.inst, ctx.driver, driver_tid)?);
        }
    }
    // Profiled rounds (not counted): DEVICEUSER_BENCH_PERF=<dir> records one steady round per
    // path and state with `perf`, into <dir>/<instance>-<path>-<state>.data.
    if let Some(dir) = std::env::var_os("DEVICEUSER_BENCH_PERF") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        for state in ["NOT_INUSE", "INUSE"] {
            for path in Path::ALL {
                let file = dir.join(format!("{rep}-{}-{state}.data", path.short()));
                let n = if matches!(path, Path::FloorModule | Path::FloorBare) {
                    FLOOR
                } else {
                    N
                };
                ctx.round_profiled(path, state, false, 1..=n, Some(&file))?;
            }
        }
    }
    drop(ctx);
    drop(watch_module);
    drop(watch_own);
    // The same pairs with no session but the driver's (events off), as `--only login`
    // measures them: what the unfiltered session costs each side.
    drop(events);
    let mut pairs_quiet = Vec::new();
    for _ in 0..pairs.len() {
        pairs_quiet.push(pairs_round(&inst, &mut driver, driver_tid)?);
    }
    drop(driver);
    inst.stop();
    Ok(Repetition {
        rounds,
        pairs,
        pairs_quiet,
        load,
    })
}

// ---------------------------------------------------------------------------
// Figures
// ---------------------------------------------------------------------------

/// Median of `v` (the mean of the two middle values for an even count); 0 for none.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn spread(v: &[f64]) -> (f64, f64, f64) {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (median(v.to_vec()), lo, hi)
}

/// One line of the summary: what, module, baseline, ratio, target, met.
pub struct Line {
    pub what: String,
    pub module: String,
    pub baseline: String,
    pub ratio: String,
    pub target: String,
    pub met: Option<bool>,
}

/// The first-change rounds of a path (its halves) as one round: CPU, changes and walls
/// summed; the NOTIFY is the walls of the halves before the one that holds the watched device
/// plus that half's NOTIFY.
fn merged(rounds: &[&Round]) -> Option<Round> {
    let first = rounds.first()?;
    let mut m = (*first).clone();
    m.changes = 0;
    m.arrived = 0;
    m.wall = Duration::ZERO;
    m.wall_state = Duration::ZERO;
    m.notify = None;
    m.cpu = Duration::ZERO;
    m.cpu_sessions = Duration::ZERO;
    m.cpu_module_threads = Duration::ZERO;
    m.module_msgs = 0;
    m.published = 0;
    m.provider_queries = None;
    m.events.clear();
    let mut before = Duration::ZERO;
    for r in rounds {
        m.changes += r.changes;
        m.arrived += r.arrived;
        m.wall += r.wall;
        m.wall_state += r.wall_state;
        m.cpu += r.cpu;
        m.cpu_sessions += r.cpu_sessions;
        m.cpu_module_threads += r.cpu_module_threads;
        m.module_msgs += r.module_msgs;
        m.published += r.published;
        if let Some(q) = r.provider_queries {
            m.provider_queries = Some(m.provider_queries.unwrap_or(0) + q);
        }
        for (k, v) in &r.events {
            *m.events.entry(k.clone()).or_insert(0) += v;
        }
        match r.notify {
            Some(n) if m.notify.is_none() => m.notify = Some(before + n),
            _ => before += r.wall,
        }
    }
    Some(m)
}

/// Per repetition, the value of `f` for each path (M, A, F1, F0): for the first change, of its
/// merged halves; for steady state, the median over the path's rounds.
fn pair_values(
    reps: &[Repetition],
    first: bool,
    f: impl Fn(&Round) -> f64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let (mut m, mut a, mut f1, mut f0) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for r in reps {
        let of = |p: Path| {
            let rounds: Vec<&Round> = r
                .rounds
                .iter()
                .filter(|x| x.path == p && x.first == first)
                .collect();
            if first {
                merged(&rounds).map_or(f64::NAN, |x| f(&x))
            } else {
                median(rounds.into_iter().map(&f).collect())
            }
        };
        m.push(of(Path::Module));
        a.push(of(Path::Asterisk));
        f1.push(of(Path::FloorModule));
        f0.push(of(Path::FloorBare));
    }
    (m, a, f1, f0)
}

fn fmt_spread(v: &[f64], unit: &str) -> String {
    let (med, lo, hi) = spread(v);
    if v.len() > 1 {
        format!("{med:.2}{unit} ({lo:.2}–{hi:.2})")
    } else {
        format!("{med:.2}{unit}")
    }
}

/// The summary lines of one group of repetitions (one module build).
fn lines_of(label: &str, reps: &[Repetition]) -> Vec<Line> {
    let mut lines = Vec::new();
    let tag = if label.is_empty() {
        String::new()
    } else {
        format!("[{label}] ")
    };
    let cpu = |r: &Round| r.cpu_per_change();
    let wall = |r: &Round| r.wall.as_secs_f64() * 1e3;
    let notify = |r: &Round| r.notify.map_or(f64::NAN, |n| n.as_secs_f64() * 1e3);
    let ratios =
        |m: &[f64], a: &[f64]| -> Vec<f64> { m.iter().zip(a).map(|(m, a)| m / a).collect() };
    let missed: usize = reps
        .iter()
        .flat_map(|r| &r.rounds)
        .map(|r| r.changes - r.arrived)
        .sum();
    for (first, when) in [(false, "steady state"), (true, "first change after login")] {
        let (cm, ca, _, _) = pair_values(reps, first, cpu);
        let (wm, wa, _, _) = pair_values(reps, first, wall);
        let (nm, na, _, _) = pair_values(reps, first, notify);
        let (rc, rw, rn) = (ratios(&cm, &ca), ratios(&wm, &wa), ratios(&nm, &na));
        lines.push(Line {
            what: format!(
                "1e. {tag}fan-out end to end, {when}: Asterisk CPU per change, module path vs Asterisk's own hint path ({N} `Setvar DEVICE_STATE` → the hint's `ExtensionStatus` on an unfiltered AMI session; one instance; median (min–max) of {} instances)",
                reps.len()
            ),
            module: fmt_spread(&cm, " µs"),
            baseline: fmt_spread(&ca, " µs"),
            ratio: fmt_spread(&rc, "×"),
            target: "≤ 1.3× (or the floor)".into(),
            met: Some(median(rc.clone()) <= 1.3),
        });
        lines.push(Line {
            what: format!(
                "1e. {tag}the same, wall: first Setvar → the last `ExtensionStatus` ({when})"
            ),
            module: fmt_spread(&wm, " ms"),
            baseline: fmt_spread(&wa, " ms"),
            ratio: fmt_spread(&rw, "×"),
            target: "≤ 1.2×".into(),
            met: Some(median(rw.clone()) <= 1.2),
        });
        if nm.iter().chain(&na).all(|x| x.is_finite()) {
            lines.push(Line {
                what: format!(
                    "1e. {tag}the same, wall: first Setvar → the NOTIFY of the last device's hint at a `sipp` watcher ({when})"
                ),
                module: fmt_spread(&nm, " ms"),
                baseline: fmt_spread(&na, " ms"),
                ratio: fmt_spread(&rn, "×"),
                target: "(report)".into(),
                met: None,
            });
        }
    }
    let (cm, ca, cf1, cf0) = pair_values(reps, false, cpu);
    let extra: Vec<f64> = cm.iter().zip(&ca).map(|(m, a)| m - a).collect();
    let floor: Vec<f64> = cf1.iter().zip(&cf0).map(|(a, b)| a - b).collect();
    let rf = ratios(&extra, &floor);
    let reachable: Vec<f64> = ca.iter().zip(&floor).map(|(a, f)| (a + f) / a).collect();
    lines.push(Line {
        what: format!(
            "1e. {tag}the floor: what any change through the module must add (F1 − F0: its callback, one `DeviceUser:` publication no hint watches, that publication's AMI event), and the lowest module/Asterisk ratio it allows ((A + floor) / A: {})",
            fmt_spread(&reachable, "×")
        ),
        module: fmt_spread(&floor, " µs"),
        baseline: "–".into(),
        ratio: "–".into(),
        target: "(report)".into(),
        met: None,
    });
    lines.push(Line {
        what: format!(
            "1e. {tag}what the module adds to Asterisk's hint path per change (M − A) vs the floor (F1 − F0), steady state, Asterisk CPU"
        ),
        module: fmt_spread(&extra, " µs"),
        baseline: fmt_spread(&floor, " µs"),
        ratio: fmt_spread(&rf, "×"),
        target: "≤ 1.1× where the floor exceeds 1.3×".into(),
        met: Some(median(rf.clone()) <= 1.1),
    });
    let (fm, fa, _, _) = pair_values(reps, true, cpu);
    let extra1: Vec<f64> = fm.iter().zip(&fa).map(|(m, a)| m - a).collect();
    let rf1 = ratios(&extra1, &floor);
    lines.push(Line {
        what: format!(
            "1e. {tag}the same for the first change after login (M − A of the first change) vs the floor"
        ),
        module: fmt_spread(&extra1, " µs"),
        baseline: fmt_spread(&floor, " µs"),
        ratio: fmt_spread(&rf1, "×"),
        target: "≤ 1.1× where the floor exceeds 1.3×".into(),
        met: Some(median(rf1.clone()) <= 1.1),
    });
    lines.push(Line {
        what: format!("1e. {tag}changes missed (every round of every path)"),
        module: missed.to_string(),
        baseline: "–".into(),
        ratio: "–".into(),
        target: "0".into(),
        met: Some(missed == 0),
    });
    let per_pair = |d: Duration| d.as_secs_f64() * 1e6 / PAIRS as f64;
    let lp: Vec<f64> = reps
        .iter()
        .map(|r| median(r.pairs.iter().map(|p| per_pair(p.0.elapsed)).collect()))
        .collect();
    let sp: Vec<f64> = reps
        .iter()
        .map(|r| median(r.pairs.iter().map(|p| per_pair(p.1.elapsed)).collect()))
        .collect();
    let pr = ratios(&lp, &sp);
    let lq: Vec<f64> = reps
        .iter()
        .map(|r| {
            median(
                r.pairs_quiet
                    .iter()
                    .map(|p| per_pair(p.0.elapsed))
                    .collect(),
            )
        })
        .collect();
    let sq: Vec<f64> = reps
        .iter()
        .map(|r| {
            median(
                r.pairs_quiet
                    .iter()
                    .map(|p| per_pair(p.1.elapsed))
                    .collect(),
            )
        })
        .collect();
    let prq = ratios(&lq, &sq);
    lines.push(Line {
        what: format!(
            "3e. {tag}the same with no AMI session but the driver's (events off), as `--only login` measures"
        ),
        module: fmt_spread(&lq, " µs"),
        baseline: fmt_spread(&sq, " µs"),
        ratio: fmt_spread(&prq, "×"),
        target: "(report)".into(),
        met: None,
    });
    lines.push(Line {
        what: format!(
            "3e. {tag}login+logout pair vs `Setvar DEVICE_STATE` pair of hinted devices ({PAIRS} pairs each, pipelined AMI, same instance, unfiltered AMI session connected; wall per pair, median per instance, median (min–max) over instances)"
        ),
        module: fmt_spread(&lp, " µs"),
        baseline: fmt_spread(&sp, " µs"),
        ratio: fmt_spread(&pr, "×"),
        target: "≤ 0.5×".into(),
        met: Some(median(pr.clone()) <= 0.5),
    });
    lines
}

/// Summary lines and the details section for groups of repetitions, one group per module
/// build (label, repetitions); with two groups, the second is compared with the first.
pub fn report(groups: &[(String, Vec<Repetition>)]) -> (Vec<Line>, String) {
    let mut lines = Vec::new();
    let mut d = String::new();
    let groups: Vec<&(String, Vec<Repetition>)> =
        groups.iter().filter(|g| !g.1.is_empty()).collect();
    if groups.is_empty() {
        return (lines, d);
    }
    let single = groups.len() == 1;
    for (label, reps) in &groups {
        lines.extend(lines_of(if single { "" } else { label }, reps));
    }
    if let [(l0, r0), (l1, r1)] = groups.as_slice() {
        let cpu = |r: &Round| r.cpu_per_change();
        for (first, when) in [(false, "steady state"), (true, "first change")] {
            let (m0, a0, _, _) = pair_values(r0, first, cpu);
            let (m1, a1, _, _) = pair_values(r1, first, cpu);
            let x0: Vec<f64> = m0.iter().zip(&a0).map(|(m, a)| m - a).collect();
            let x1: Vec<f64> = m1.iter().zip(&a1).map(|(m, a)| m - a).collect();
            lines.push(Line {
                what: format!(
                    "1e. [{l1}] vs [{l0}], same run: what the module adds to Asterisk's hint path per change (M − A), {when}"
                ),
                module: fmt_spread(&x1, " µs"),
                baseline: fmt_spread(&x0, " µs"),
                ratio: format!("{:.2}×", median(x1.clone()) / median(x0.clone())),
                target: "(report)".into(),
                met: None,
            });
        }
    }

    let reps0 = &groups[0].1;
    let steady = reps0[0].rounds.iter().filter(|r| !r.first).count() / 2 / Path::ALL.len();
    let _ = writeln!(
        d,
        "One Asterisk instance per repetition, booted fresh, holds every path. \
         `res_deviceuser.conf`: {} users, {N} of them logged in on adhoc devices `Custom:m<n>`; \
         {FLOOR} floor users `f<n>` logged in on `Custom:f<n>`. `extensions.conf`: a hint \
         `<user>,hint,DeviceUser:<user>` for each of the {} users in `{MODULE_CONTEXT}` (what \
         `hint_context` makes; written there so the floor users have none) and as many hints \
         `<user>,hint,Custom:d<n>` in `{OWN_CONTEXT}`, with the same extension names (Asterisk's \
         default matcher walks either context to the same depth); the fan-out changes the first \
         {N} of each. AMI: the driver's session \
         (events off) pipelines the `Setvar DEVICE_STATE(...)` of a round; a second session, \
         logged in with `Events: on` and no filter, reads and parses every event and is what the \
         rounds wait on. Two `sipp` watchers subscribe (presence, pidf) to extension {} in each \
         context; that device changes last in each burst, so its NOTIFY shows when the burst \
         reached the phones.\n",
        N + IDLE,
        N + IDLE,
        exten(N)
    );
    let _ = writeln!(
        d,
        "Paths: **M** = module (`Custom:m<n>` → `DeviceUser:<user>` → the user's hint), **A** = \
         Asterisk's own hint path (`Custom:d<n>` → hint), **F1** = a change of a device bound to a \
         user who has no hint (Asterisk's change of an unwatched device + the module's callback \
         + one `DeviceUser:` publication no hint watches + its AMI event), **F0** = a change of an \
         unbound device no hint watches ({FLOOR} devices each). Floor = F1 − F0. First change: the \
         first state the `Custom:m<n>`/`Custom:d<n>` devices ever publish, right after the \
         logins, in halves ordered M A A M (each device's first state makes its entry in \
         Asterisk's device topic pool, whose lookups walk a bucket from its oldest entry: so \
         ordered, neither path's devices lie deeper); the module follows devices that never \
         published through a subscription to all device state traffic until their first change. \
         Steady state: {steady} cycles per instance, each path → NOT_INUSE then → INUSE, the \
         order of the paths rotating. CPU: the sum over Asterisk's threads (schedstat) from an \
         idle Asterisk before the burst until idle after it. Per instance, a path's steady rounds \
         give their median and its first-change halves their sum; the summary gives the median \
         (min–max) of those over the instances.\n"
    );
    let _ = writeln!(
        d,
        "What this leaves out: SIP phones' own traffic (one watcher per path, subscribed to one \
         hint), calls, and registered phones (a PJSIP device's state goes the way a Custom one \
         does once published). The driver, the event reader and `sipp` run on the same 2 cores \
         as Asterisk.\n"
    );
    for (label, reps) in &groups {
        if !single {
            let _ = writeln!(d, "**{label}**\n");
        }
        let _ = writeln!(
            d,
            "| # | path | round | changes | wall to `ExtensionStatus` | wall to `DeviceStateChange` | NOTIFY | CPU per change | of it the AMI sessions' threads | module threads | AMI events per change | module messages per change | provider queries per change |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        );
        for (i, r) in reps.iter().enumerate() {
            for x in &r.rounds {
                let ev: u64 = x.events.values().sum();
                let per = |t: Duration| t.as_secs_f64() * 1e6 / x.changes as f64;
                let _ = writeln!(
                    d,
                    "| {} | {} | {}{} | {} | {} | {} | {} | {:.1} µs | {:.1} µs | {:.1} µs | {:.2} | {:.2} | {} |",
                    i + 1,
                    x.path.short(),
                    x.state,
                    if x.first { " (first)" } else { "" },
                    x.changes,
                    if matches!(x.path, Path::Module | Path::Asterisk) {
                        ms(x.wall)
                    } else {
                        "–".into()
                    },
                    ms(x.wall_state),
                    x.notify.map_or("–".into(), ms),
                    x.cpu_per_change(),
                    per(x.cpu_sessions),
                    per(x.cpu_module_threads),
                    ev as f64 / x.changes as f64,
                    x.module_msgs as f64 / x.changes as f64,
                    x.provider_queries.map_or("–".into(), |q| format!(
                        "{:.2}",
                        q as f64 / x.changes as f64
                    )),
                );
            }
        }
        let _ = writeln!(
            d,
            "\nAMI events per change by name (instance 1, the first steady round of each path):\n\n| path | events |\n|---|---|"
        );
        for p in Path::ALL {
            if let Some(x) = reps[0].rounds.iter().find(|x| x.path == p && !x.first) {
                let s: Vec<String> = x
                    .events
                    .iter()
                    .map(|(k, v)| format!("{k} {:.2}", *v as f64 / x.changes as f64))
                    .collect();
                let _ = writeln!(d, "| {} | {} |", p.short(), s.join(", "));
            }
        }
        let _ = writeln!(
            d,
            "\nLogin pairs vs Setvar pairs, same instance ({PAIRS} pairs each, pipelined on the \
             driver's session; the {IDLE} idle users log in on devices `Custom:e<n>` then out; the \
             Setvar pairs set {PAIRS} of Asterisk's hinted devices, `Custom:d<n>` for n above {N}, → INUSE then \
             back → NOT_INUSE: their hints, like the idle users', come last in their context, so \
             Asterisk's walk to them for `ExtensionStatus` is as long on either side). \
             Wall: first action → last response; CPU: Asterisk's, until idle.\n\n\
             | # | login+logout wall/pair | CPU/pair | session thread/pair | Setvar pair wall/pair | CPU/pair | session thread/pair | wall ratio |\n|---|---|---|---|---|---|---|---|"
        );
        for (i, r) in reps.iter().enumerate() {
            let quiet = r.pairs_quiet.iter().map(|p| (p, " (no event session)"));
            for ((l, s), how) in r.pairs.iter().map(|p| (p, "")).chain(quiet) {
                let per = |x: Duration| x.as_secs_f64() * 1e6 / PAIRS as f64;
                let _ = writeln!(
                    d,
                    "| {}{how} | {:.1} µs | {:.1} µs | {:.1} µs | {:.1} µs | {:.1} µs | {:.1} µs | {:.2}× |",
                    i + 1,
                    per(l.elapsed),
                    per(l.cpu),
                    per(l.session_cpu),
                    per(s.elapsed),
                    per(s.cpu),
                    per(s.session_cpu),
                    l.elapsed.as_secs_f64() / s.elapsed.as_secs_f64()
                );
            }
        }
        let loads: Vec<String> = reps.iter().map(|r| ms(r.load)).collect();
        let _ = writeln!(
            d,
            "\n`module load` ({} users, {} devices): {}.\n",
            N + FLOOR + IDLE,
            N + FLOOR + PAIRS,
            loads.join(", ")
        );
    }
    (lines, d)
}
