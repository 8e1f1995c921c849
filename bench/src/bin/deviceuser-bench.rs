//! The benchmark driver: boots real Asterisk instances (run folders under `bench/tmp/`),
//! measures res_deviceuser against baselines in the same run, and writes `bench/results.md`.
//!
//! `deviceuser-bench [--only fanout,e2e,overhead,login,reload,scale,hints-scale,table,console] [--e2e-reps N] [--e2e-cycles N] [--e2e-module LABEL=PATH]... [--out FILE]`
//! (`fanout` runs the end-to-end fan-out `e2e` too, so both show in one report.)
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::fs;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use deviceuser_bench::conf::{self, device, user};
use deviceuser_bench::contention::{self, Locked, Read, ReadWrite, Snapshots, Writer};
use deviceuser_bench::{driver_session, module_file, ms, quantile, start_instance};
use deviceuser_bench::{e2e, reload};
use deviceuser_kit::ami::{self, act, Ami, Burst, Message, StateWatch};
use deviceuser_kit::sip::{self, Watcher};
use deviceuser_kit::{asterisk_dir, repo, Asterisk};

type Res<T> = Result<T, String>;

/// Devices churned in the fan-out and overhead scenarios.
const FANOUT: usize = 10_000;
/// Login+logout pairs of the throughput scenario.
const PAIRS: usize = 2_000;
/// Sequential login/logout pairs of the latency scenario.
const LATENCY_PAIRS: usize = 200;
/// Users and devices of the scale scenario.
const SCALE: usize = 100_000;
const HINTS: &str = "bench-hints";

/// One line of the summary table.
struct Row {
    what: String,
    module: String,
    baseline: String,
    ratio: String,
    target: String,
    met: Option<bool>,
}

#[derive(Default)]
struct Report {
    rows: Vec<Row>,
    details: Vec<String>,
}

impl Report {
    fn row(
        &mut self,
        what: &str,
        module: String,
        baseline: String,
        ratio: String,
        target: &str,
        met: Option<bool>,
    ) {
        self.rows.push(Row {
            what: what.into(),
            module,
            baseline,
            ratio,
            target: target.into(),
            met,
        });
    }

    fn detail(&mut self, title: &str, body: String) {
        self.details.push(format!("### {title}\n\n{body}\n"));
    }
}

fn fields(v: &[(&str, &str)]) -> Vec<(String, String)> {
    act(v)
}

/// `DeviceUserLogin` of user n on device n, for n in 1..=count.
fn login_actions(count: usize) -> Vec<Vec<(String, String)>> {
    (1..=count)
        .map(|n| {
            fields(&[
                ("Action", "DeviceUserLogin"),
                ("User", &user(n)),
                ("Device", &device(n)),
            ])
        })
        .collect()
}

fn setvar_device_state(dev: &str, state: &str) -> Vec<(String, String)> {
    fields(&[
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

/// `module load|unload|reload <module>` through the `ModuleLoad` action (the CLI's
/// `module load` is refused over `Action: Command`).
fn module_op(ami: &mut Ami, op: &str, module: &str) -> Res<()> {
    let r = ami.try_action(&[
        ("Action", "ModuleLoad"),
        ("Module", module),
        ("LoadType", op),
    ])?;
    if !r.is_success() {
        return Err(format!("{op} {module}: {:?}", r.get("Message")));
    }
    Ok(())
}

/// Switches Asterisk's extension matcher at run time (`dialplan set extenpatternmatchnew`):
/// the trie (`true`) or the default walk of a context's extensions (`false`).
fn set_trie_matcher(ami: &mut Ami, on: bool) -> Res<()> {
    let out = ami.try_command(&format!("dialplan set extenpatternmatchnew {on}"))?;
    let want = if on {
        "NEW pattern match"
    } else {
        "OLD pattern match"
    };
    if !out.contains(want) {
        return Err(format!("dialplan set extenpatternmatchnew {on}: {out}"));
    }
    Ok(())
}

/// Times `dialplan reload` (synchronous: the CLI returns once the new dialplan is in place).
fn dialplan_reload(ami: &mut Ami) -> Res<Duration> {
    // Every hint costs Asterisk a scan of all its hints when the new dialplan takes it over:
    // with 10,000 (a hint per logged-in user) that takes minutes on a busy 2-core machine.
    let timeout = std::mem::replace(&mut ami.timeout, Duration::from_secs(600));
    let t = Instant::now();
    let out = ami.try_command("dialplan reload");
    let d = t.elapsed();
    ami.timeout = timeout;
    let out = out?;
    if !out.contains("Dialplan reloaded") {
        return Err(format!("dialplan reload: {out}"));
    }
    Ok(d)
}

/// Names of taskprocessors, from `core show taskprocessors`.
fn taskprocessors(ami: &mut Ami) -> Res<BTreeMap<String, (u64, u64, u64)>> {
    // Columns: name, processed, in queue, max depth, low water, high water (alert level).
    let out = ami.try_command("core show taskprocessors")?;
    let mut m = BTreeMap::new();
    for line in out.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 6 && f[1].parse::<u64>().is_ok() {
            let processed = f[1].parse().unwrap_or(0);
            let max_depth = f[3].parse().unwrap_or(0);
            let high_water = f[5].parse().unwrap_or(0);
            m.insert(f[0].to_string(), (processed, max_depth, high_water));
        }
    }
    Ok(m)
}

/// Taskprocessor overload warnings in a log excerpt, by taskprocessor name.
fn overload_warnings(log: &str) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for line in log
        .lines()
        // "Taskprocessor '<name>' queue reached 500 scheduled tasks (high water mark: 500)".
        .filter(|l| l.contains("queue reached") && l.contains("scheduled tasks"))
    {
        let name = line.split('\'').nth(1).unwrap_or("(unnamed)").to_string();
        *m.entry(name).or_insert(0) += 1;
    }
    m
}

fn fmt_warnings(w: &BTreeMap<String, usize>) -> String {
    if w.is_empty() {
        return "none".into();
    }
    w.iter()
        .map(|(k, v)| format!("`{k}` ×{v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Result of one churn round.
struct Round {
    changes: usize,
    arrived: usize,
    wall: Duration,
    cpu: f64,
    warnings: BTreeMap<String, usize>,
}

/// Sets `DEVICE_STATE(Custom:<stem><n>)` to `state` for n in 1..=count (pipelined), and waits
/// until every `<watch_stem><id(n)>` reached `watch_state`. Wall time runs from the first
/// action to the last awaited event; CPU time is Asterisk's, until it is idle again.
#[allow(clippy::too_many_arguments)]
fn churn(
    inst: &Asterisk,
    driver: &mut Ami,
    watch: &StateWatch,
    custom_stem: &str,
    count: usize,
    state: &str,
    watch_stem: &str,
    watch_state: &str,
) -> Res<Round> {
    inst.settle();
    watch.reset();
    let mark = inst.log_mark();
    let actions: Vec<_> = (1..=count)
        .map(|n| setvar_device_state(&format!("Custom:{custom_stem}{n}"), state))
        .collect();
    let cpu0 = inst.cpu();
    let t0 = Instant::now();
    let burst = driver.pipeline(&actions)?;
    check(&burst, "Setvar DEVICE_STATE")?;
    let (arrived, last) = watch.wait_for(watch_stem, watch_state, count, Duration::from_secs(5))?;
    let wall = last.map_or(Duration::ZERO, |l| l.saturating_duration_since(t0));
    inst.settle();
    let cpu = inst.cpu() - cpu0;
    Ok(Round {
        changes: count,
        arrived,
        wall,
        cpu,
        warnings: overload_warnings(&inst.log_since(mark)),
    })
}

fn secs(s: f64) -> String {
    format!("{s:.2} s")
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}×", a / b)
    } else {
        "n/a".into()
    }
}

fn rate(n: f64, d: Duration) -> String {
    format!("{:.0}/s", n / d.as_secs_f64())
}

// ---------------------------------------------------------------------------
// 1 + 3: the module instance (fan-out, login throughput and latency)
// ---------------------------------------------------------------------------

#[derive(Default)]
struct FanoutSide {
    rounds: Vec<Round>,
}

impl FanoutSide {
    /// Each cycle's (INUSE round, NOT_INUSE round) pair.
    fn cycles(&self) -> impl Iterator<Item = &[Round]> {
        self.rounds.chunks(2)
    }
    /// The median cycle's value of `f` summed over its two rounds.
    fn median_cycle(&self, f: impl Fn(&Round) -> f64) -> f64 {
        let mut v: Vec<f64> = self.cycles().map(|c| c.iter().map(&f).sum()).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    }
    /// Wall time of the median cycle.
    fn wall(&self) -> Duration {
        Duration::from_secs_f64(self.median_cycle(|r| r.wall.as_secs_f64()))
    }
    /// Asterisk CPU of the median cycle (by CPU).
    fn cpu(&self) -> f64 {
        self.median_cycle(|r| r.cpu)
    }
    /// Over all cycles.
    fn missed(&self) -> usize {
        self.rounds.iter().map(|r| r.changes - r.arrived).sum()
    }
    /// Changes in one cycle.
    fn changes(&self) -> usize {
        self.cycles()
            .next()
            .map_or(0, |c| c.iter().map(|r| r.changes).sum())
    }
    fn warnings(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for r in &self.rounds {
            for (k, v) in &r.warnings {
                *m.entry(k.clone()).or_insert(0) += v;
            }
        }
        m
    }
}

struct ModuleRun {
    /// Overload warnings over the instance's whole life (load, logins, fan-out).
    whole_run: BTreeMap<String, usize>,
    load_10k: Duration,
    /// `module reload` with the configuration unchanged (every user keeps their hint).
    reload_10k: Duration,
    /// `dialplan reload` with the module's hints in place.
    dialplan_reload: Duration,
    our_tps: Vec<String>,
    fanout: FanoutSide,
    /// The same fan-out with Asterisk's trie matcher.
    fanout_trie: FanoutSide,
    tps_after: BTreeMap<String, (u64, u64, u64)>,
    login: LoginResults,
    latency: Option<(Vec<Duration>, Vec<Duration>)>,
}

/// A pipelined burst, with what it cost Asterisk until it was idle again.
struct Run {
    burst: Burst,
    /// Asterisk's CPU time (utime + stime).
    cpu: f64,
    /// Context switches of Asterisk's threads.
    switches: u64,
    /// `DeviceUser:` states the module published (`deviceuser show stats`).
    published: u64,
    /// CPU time of the AMI session's thread from the first action to the last response.
    session_cpu: Duration,
    /// Asterisk's CPU from before the burst until it was idle again, by thread.
    split: CpuSplit,
}

/// Where a burst's CPU went: the AMI session's thread, the module's commit thread
/// (`devuser-commit`), and every other thread of Asterisk (the hint engine, stasis, the AMI
/// event router, the device-state thread, AstDB's).
#[derive(Default)]
struct CpuSplit {
    session: Duration,
    commit: Duration,
    other: Duration,
}

/// Splits the CPU time between two readings of every thread (see [`CpuSplit`]). A thread that
/// ended in between is not counted (its time can no longer be read); Asterisk starts and ends
/// none during these bursts.
fn split_cpu(
    before: &HashMap<u32, u64>,
    after: &HashMap<u32, u64>,
    session_tid: u32,
    commit_tids: &[u32],
) -> CpuSplit {
    let mut split = CpuSplit::default();
    for (tid, ns) in after {
        let d = Duration::from_nanos(ns.saturating_sub(before.get(tid).copied().unwrap_or(0)));
        if *tid == session_tid {
            split.session += d;
        } else if commit_tids.contains(tid) {
            split.commit += d;
        } else {
            split.other += d;
        }
    }
    split
}

/// The value of a `<name>: <value>` line of `deviceuser show stats summary`.
fn stats_line(ami: &mut Ami, name: &str) -> Res<String> {
    let out = ami.try_command("deviceuser show stats summary")?;
    out.lines()
        .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
        .ok_or_else(|| format!("no `{name}` line in `deviceuser show stats summary`: {out}"))
}

/// A counter line of `deviceuser show stats summary` ("<name>: <n>").
fn stats_counter(ami: &mut Ami, name: &str) -> Res<u64> {
    let v = stats_line(ami, name)?;
    v.parse()
        .map_err(|_| format!("`{name}` is not a count: {v}"))
}

impl std::ops::Deref for Run {
    type Target = Burst;
    fn deref(&self) -> &Self::Target {
        &self.burst
    }
}

struct LoginResults {
    module_ami: Run,
    module_cli: Run,
    freepbx_ami: Run,
    ping: Run,
    /// Pings carrying the headers of the logins and logouts (`User`, `Device`): the transport's
    /// limit for actions of the same size.
    sized_ping: Run,
}

/// Fan-out cycles per side; each side reports its median cycle, so one round disturbed by the
/// machine (or by Asterisk's own queues passing their alert level) does not decide a ratio.
const FANOUT_CYCLES: usize = 3;

/// [`FANOUT_CYCLES`] cycles of two fan-out rounds (every `Custom:dev/N` to INUSE, then back
/// to NOT_INUSE) with Asterisk's default extension matcher, each followed by the same cycle
/// with its trie matcher (so drift over the instance's life falls on both alike); each round
/// is timed until the watched devices (`watched` + N) reached the new state. Returns the
/// default rounds and the trie rounds; the default matcher is back on at the end.
fn fanout_rounds(
    inst: &Asterisk,
    driver: &mut Ami,
    watch: &StateWatch,
    watched: &str,
    label: &str,
) -> Res<(FanoutSide, FanoutSide)> {
    let mut sides = <(FanoutSide, FanoutSide)>::default();
    for _ in 0..FANOUT_CYCLES {
        for trie in [false, true] {
            set_trie_matcher(driver, trie)?;
            for state in ["INUSE", "NOT_INUSE"] {
                let r = churn(inst, driver, watch, "dev/", FANOUT, state, watched, state)?;
                eprintln!(
                    "[bench]   {label}{} {state}: {}/{} in {:?}, cpu {:.2}s",
                    if trie { ", trie matcher" } else { "" },
                    r.arrived,
                    r.changes,
                    r.wall,
                    r.cpu
                );
                if trie { &mut sides.1 } else { &mut sides.0 }
                    .rounds
                    .push(r);
            }
        }
    }
    set_trie_matcher(driver, false)?;
    Ok(sides)
}

fn module_instance(rep: &mut Report, do_fanout: bool, do_login: bool) -> Res<ModuleRun> {
    eprintln!(
        "[bench] module instance: {FANOUT} users and devices (Custom:dev/N), hints in {HINTS}"
    );
    let mut inst = start_instance(
        "module",
        vec![
            (
                "res_deviceuser.conf",
                conf::deviceuser_conf(FANOUT, |n| format!("Custom:dev/{n}"), Some(HINTS)),
            ),
            ("extensions.conf", "[general]\nstatic = yes\n".to_string()),
            ("pjsip.conf", conf::pjsip_conf(HINTS)),
        ],
        true,
    )?;
    let mut driver = driver_session(inst.ami_port)?;
    inst.settle();
    let tps_before = taskprocessors(&mut driver)?;
    let t = Instant::now();
    module_op(&mut driver, "load", "res_deviceuser.so")?;
    let load_10k = t.elapsed();
    inst.settle();
    let our_tps: Vec<String> = taskprocessors(&mut driver)?
        .into_keys()
        .filter(|k| !tps_before.contains_key(k))
        .collect();
    eprintln!("[bench]   loaded in {load_10k:?}; new taskprocessors: {our_tps:?}");

    // Every Custom device starts NOT_INUSE.
    let reset: Vec<_> = (1..=FANOUT)
        .map(|n| setvar_device_state(&format!("Custom:dev/{n}"), "NOT_INUSE"))
        .collect();
    check(&driver.pipeline(&reset)?, "reset")?;
    inst.settle();

    let login = if do_login {
        login_throughput(&inst, &mut driver)?
    } else {
        return Err("login scenario is needed by the module instance".into());
    };
    let latency = if do_login {
        match notify_latency(&inst, &mut driver) {
            Ok(l) => Some(l),
            Err(e) => {
                rep.detail("Login → NOTIFY latency", format!("not measured: {e}"));
                None
            }
        }
    } else {
        None
    };

    let (mut fanout, mut fanout_trie) = <(FanoutSide, FanoutSide)>::default();
    let mut tps_after = BTreeMap::new();
    if do_fanout {
        eprintln!("[bench]   logging in {FANOUT} users");
        let b = driver.pipeline(&login_actions(FANOUT))?;
        check(&b, "DeviceUserLogin")?;
        eprintln!("[bench]   {FANOUT} logins in {:?}", b.elapsed);
        inst.settle();
        let watch = StateWatch::start(inst.ami_port, "DeviceUser:")?;
        (fanout, fanout_trie) =
            fanout_rounds(&inst, &mut driver, &watch, "DeviceUser:", "fan-out")?;
        tps_after = taskprocessors(&mut driver)?;
    }
    // Last, as a dialplan reload rebuilds the hint context (its extensions then lie elsewhere
    // in memory, which moves the cost of Asterisk's own walks of it).
    inst.settle();
    let t = Instant::now();
    module_op(&mut driver, "reload", "res_deviceuser.so")?;
    let reload_10k = t.elapsed();
    let dialplan_reload = dialplan_reload(&mut driver)?;
    eprintln!("[bench]   module reload in {reload_10k:?}; dialplan reload in {dialplan_reload:?}");
    let whole_run = overload_warnings(&inst.log_since(0));
    drop(driver);
    inst.stop();
    Ok(ModuleRun {
        whole_run,
        load_10k,
        reload_10k,
        dialplan_reload,
        our_tps,
        fanout,
        fanout_trie,
        tps_after,
        login,
        latency,
    })
}

/// As many AMI Pings as a login burst has actions (one per login or logout).
fn pings() -> Vec<Vec<(String, String)>> {
    (0..2 * PAIRS)
        .map(|_| fields(&[("Action", "Ping")]))
        .collect()
}

/// The thread of Asterisk serving `driver`'s AMI session: the busiest one in a burst of Pings.
fn session_thread(inst: &Asterisk, driver: &mut Ami, pings: &[Vec<(String, String)>]) -> Res<u32> {
    inst.settle();
    let before = inst.thread_cpu_ns();
    driver.pipeline(pings)?;
    let after = inst.thread_cpu_ns();
    after
        .iter()
        .max_by_key(|(tid, ns)| *ns - before.get(tid).copied().unwrap_or(0))
        .map(|(tid, _)| *tid)
        .ok_or_else(|| "no thread of Asterisk found".into())
}

/// One pipelined burst, measured from an idle Asterisk until it is idle again. `module`: the
/// module is loaded, and the states it published during the burst are counted.
fn measured_burst(
    inst: &Asterisk,
    driver: &mut Ami,
    session_tid: u32,
    name: &str,
    actions: &[Vec<(String, String)>],
    module: bool,
) -> Res<Run> {
    let published0 = if module {
        stats_counter(driver, "User states published")?
    } else {
        0
    };
    inst.settle();
    let commit_tids = inst.threads_named("devuser-commit");
    if module && commit_tids.is_empty() {
        return Err("no thread named devuser-commit in the module instance".into());
    }
    let (cpu0, sw0) = (inst.cpu(), inst.switches());
    let threads0 = inst.thread_cpu_ns();
    let session0 = threads0.get(&session_tid).copied().unwrap_or(0);
    let burst = driver.pipeline(actions)?;
    let session1 = inst.thread_cpu_ns().get(&session_tid).copied().unwrap_or(0);
    let session_cpu = Duration::from_nanos(session1.saturating_sub(session0));
    inst.settle();
    let (cpu, switches) = (inst.cpu() - cpu0, inst.switches() - sw0);
    let split = split_cpu(&threads0, &inst.thread_cpu_ns(), session_tid, &commit_tids);
    let published = if module {
        stats_counter(driver, "User states published")? - published0
    } else {
        0
    };
    eprintln!(
        "[bench]     {name}: {} actions in {:?}; Asterisk {cpu:.2} s CPU, {switches} thread switches, {published} user states published",
        burst.actions, burst.elapsed
    );
    Ok(Run {
        burst,
        cpu,
        switches,
        published,
        session_cpu,
        split,
    })
}

/// The median of `runs` by wall time.
fn median_run(mut runs: Vec<Run>) -> Run {
    runs.sort_by_key(|b| b.elapsed);
    runs.swap_remove(runs.len() / 2)
}

/// Alternating rounds of Pings and of logins/logouts (the median round of each is kept).
const LOGIN_ROUNDS: usize = 9;

fn login_throughput(inst: &Asterisk, driver: &mut Ami) -> Res<LoginResults> {
    eprintln!("[bench]   login/logout throughput: {PAIRS} pairs each way");
    let pairs = |f: &dyn Fn(usize) -> Vec<Vec<(String, String)>>| -> Vec<Vec<(String, String)>> {
        (1..=PAIRS).flat_map(f).collect()
    };
    // Every user logs in, then every user logs out: each action changes a user's state (a
    // login right after the same user's logout could be coalesced into no state change).
    let module_ami: Vec<_> = (1..=PAIRS)
        .map(|n| {
            fields(&[
                ("Action", "DeviceUserLogin"),
                ("User", &user(n)),
                ("Device", &device(n)),
            ])
        })
        .chain((1..=PAIRS).map(|n| fields(&[("Action", "DeviceUserLogout"), ("User", &user(n))])))
        .collect();
    let module_cli: Vec<_> = (1..=PAIRS)
        .map(|n| {
            fields(&[
                ("Action", "Command"),
                (
                    "Command",
                    &format!("deviceuser login {} {}", user(n), device(n)),
                ),
            ])
        })
        .chain((1..=PAIRS).map(|n| {
            fields(&[
                ("Action", "Command"),
                ("Command", &format!("deviceuser logout user {}", user(n))),
            ])
        }))
        .collect();
    // FreePBX's login writes two AstDB keys and rewrites the user's hint; logout undoes it.
    let freepbx = pairs(&|n| {
        let (u, d) = (user(n), device(n));
        vec![
            fields(&[
                ("Action", "DBPut"),
                ("Family", "DEVICE"),
                ("Key", &format!("{d}/user")),
                ("Val", &u),
            ]),
            fields(&[
                ("Action", "DBPut"),
                ("Family", "AMPUSER"),
                ("Key", &format!("{u}/device")),
                ("Val", &d),
            ]),
            fields(&[
                ("Action", "Command"),
                (
                    "Command",
                    &format!("dialplan add extension {u},hint,PJSIP/{d} into ext-local replace"),
                ),
            ]),
            fields(&[
                ("Action", "DBPut"),
                ("Family", "DEVICE"),
                ("Key", &format!("{d}/user")),
                ("Val", "none"),
            ]),
            fields(&[
                ("Action", "DBPut"),
                ("Family", "AMPUSER"),
                ("Key", &format!("{u}/device")),
                ("Val", ""),
            ]),
            fields(&[
                ("Action", "Command"),
                (
                    "Command",
                    &format!("dialplan remove extension {u}@ext-local hint"),
                ),
            ]),
        ]
    });
    let pings = pings();
    // The same actions as the logins and logouts, as Pings: Asterisk reads and parses the same
    // bytes and answers each, and does nothing else.
    let sized_pings: Vec<_> = module_ami
        .iter()
        .map(|a| {
            a.iter()
                .map(|(k, v)| {
                    let v = if k == "Action" { "Ping" } else { v.as_str() };
                    (k.clone(), v.to_string())
                })
                .collect()
        })
        .collect();
    let session_tid = session_thread(inst, driver, &pings)?;
    let mut run = |name: &str, actions: &[Vec<(String, String)>]| {
        measured_burst(inst, driver, session_tid, name, actions, true)
    };
    // Pings and logins alternate over several rounds; each side keeps its median round, so a
    // moment of noise on the machine does not decide the ratio.
    let (mut pings_runs, mut sized_runs, mut login_runs) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..LOGIN_ROUNDS {
        pings_runs.push(run("Ping", &pings)?);
        sized_runs.push(run("Ping with the logins' headers", &sized_pings)?);
        let b = run("DeviceUserLogin/Logout", &module_ami)?;
        check(&b, "DeviceUserLogin/Logout")?;
        login_runs.push(b);
    }
    let ping = median_run(pings_runs);
    let sized_ping = median_run(sized_runs);
    let module_ami = median_run(login_runs);
    let module_cli = run("CLI deviceuser login/logout", &module_cli)?;
    check(&module_cli, "CLI deviceuser login/logout")?;
    let freepbx_ami = run("FreePBX AMI path", &freepbx)?;
    check(&freepbx_ami, "FreePBX AMI path")?;
    Ok(LoginResults {
        module_ami,
        module_cli,
        freepbx_ami,
        ping,
        sized_ping,
    })
}

/// Sends one action and waits for the NOTIFY it causes at `w` (NOTIFYs before it are
/// dropped), then for the action's response: the NOTIFY, the time from sending to its
/// arrival, and the response.
fn action_to_notify(
    driver: &mut Ami,
    w: &Watcher,
    fields: &[(&str, &str)],
) -> Res<(sip::Notify, Duration, Message)> {
    w.drain();
    let id = driver.reserve_id();
    let text = ami::render(fields, id);
    let t0 = SystemTime::now();
    driver.send_raw(text.as_bytes())?;
    let n = w
        .next(Duration::from_secs(5))
        .ok_or_else(|| format!("no NOTIFY after {:?}", fields.first()))?;
    let latency = sip::latency(t0, &n);
    let r = driver.wait_response(id, Instant::now() + Duration::from_secs(5))?;
    Ok((n, latency, r))
}

/// Login → NOTIFY and logout → NOTIFY of one user watched by a presence subscriber.
fn notify_latency(inst: &Asterisk, driver: &mut Ami) -> Res<(Vec<Duration>, Vec<Duration>)> {
    let (u, d) = (user(FANOUT), device(FANOUT));
    eprintln!("[bench]   login → NOTIFY latency: {LATENCY_PAIRS} pairs, user {u}");
    let w = Watcher::subscribe(&inst.run.join("watcher"), inst.sip_port, "watcher", &u)?;
    let (mut login, mut logout) = (Vec::new(), Vec::new());
    for _ in 0..LATENCY_PAIRS {
        for (action, out, want) in [
            ("DeviceUserLogin", &mut login, "open"),
            ("DeviceUserLogout", &mut logout, "closed"),
        ] {
            let mut f = vec![("Action", action), ("User", u.as_str())];
            if action == "DeviceUserLogin" {
                f.push(("Device", d.as_str()));
            }
            let (n, latency, r) = action_to_notify(driver, &w, &f)?;
            if sip::basic(&n.body) != want {
                return Err(format!(
                    "NOTIFY after {action} says {:?}, expected {want}",
                    sip::basic(&n.body)
                ));
            }
            out.push(latency);
            if !r.is_success() {
                return Err(format!("{action} failed: {:?}", r.get("Message")));
            }
        }
    }
    Ok((login, logout))
}

// ---------------------------------------------------------------------------
// 1 (baseline) + 2: the baseline instance (hints on Custom devices; module loaded/unloaded)
// ---------------------------------------------------------------------------

struct BaselineRun {
    fanout: FanoutSide,
    /// The same fan-out with Asterisk's trie matcher.
    fanout_trie: FanoutSide,
    /// `dialplan reload` with the hints of extensions.conf.
    dialplan_reload: Duration,
    tps_after: BTreeMap<String, (u64, u64, u64)>,
    /// (module loaded, round)
    overhead: Vec<(bool, Round)>,
    /// Device-state messages that reached the module during the loaded churn rounds
    /// (`Device state messages received` of `deviceuser show stats summary`).
    overhead_module_msgs: u64,
    setvar_notify: Option<Vec<Duration>>,
    /// Asterisk's own state changes over AMI (`Setvar DEVICE_STATE` of hinted devices): the
    /// median round.
    own_change: Option<Run>,
}

/// Rounds of unrelated churn, alternating module unloaded and loaded (ABBA), half each. A
/// round's Asterisk CPU varies by about ±8 % on this machine (and is read in 10 ms ticks), so
/// a difference of a few percent needs the mean of many.
const OVERHEAD_ROUNDS: usize = 32;

fn baseline_instance(do_fanout: bool, do_overhead: bool, do_login: bool) -> Res<BaselineRun> {
    eprintln!(
        "[bench] baseline instance: {FANOUT} hints on Custom:dev/N; {FANOUT} configured, unbound devices Custom:free/N"
    );
    let mut inst = start_instance(
        "baseline",
        vec![
            (
                "res_deviceuser.conf",
                conf::deviceuser_conf(FANOUT, |n| format!("Custom:free/{n}"), None),
            ),
            (
                "extensions.conf",
                conf::hints_conf(HINTS, FANOUT, |n| format!("Custom:dev/{n}")),
            ),
            ("pjsip.conf", conf::pjsip_conf(HINTS)),
        ],
        true,
    )?;
    let mut driver = driver_session(inst.ami_port)?;
    let reset: Vec<_> = (1..=FANOUT)
        .flat_map(|n| {
            [
                setvar_device_state(&format!("Custom:dev/{n}"), "NOT_INUSE"),
                setvar_device_state(&format!("Custom:free/{n}"), "NOT_INUSE"),
            ]
        })
        .collect();
    check(&driver.pipeline(&reset)?, "reset")?;
    inst.settle();

    // Reference: Asterisk's own state → NOTIFY latency (Setvar of a hinted Custom device).
    let setvar_notify = (|| -> Res<Vec<Duration>> {
        let w = Watcher::subscribe(
            &inst.run.join("watcher"),
            inst.sip_port,
            "watcher",
            &user(FANOUT),
        )?;
        let mut v = Vec::new();
        for i in 0..LATENCY_PAIRS * 2 {
            let state = if i % 2 == 0 { "INUSE" } else { "NOT_INUSE" };
            let f = setvar_device_state(&format!("Custom:dev/{FANOUT}"), state);
            let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            v.push(action_to_notify(&mut driver, &w, &f)?.1);
        }
        Ok(v)
    })()
    .map_err(|e| eprintln!("[bench]   Setvar → NOTIFY not measured: {e}"))
    .ok();

    // Reference for the login burst: Asterisk's own device-state change over AMI, of hinted
    // devices (func_devstate's AstDB write, the state's publication, the hint's new state).
    let own_change = if do_login {
        eprintln!("[bench]   Asterisk's own state changes over AMI: {PAIRS} pairs");
        let session_tid = session_thread(&inst, &mut driver, &pings())?;
        let setvars: Vec<_> = ["INUSE", "NOT_INUSE"]
            .iter()
            .flat_map(|state| {
                (1..=PAIRS).map(move |n| setvar_device_state(&format!("Custom:dev/{n}"), state))
            })
            .collect();
        let mut runs = Vec::new();
        for _ in 0..LOGIN_ROUNDS {
            let r = measured_burst(
                &inst,
                &mut driver,
                session_tid,
                "Setvar DEVICE_STATE",
                &setvars,
                false,
            )?;
            check(&r, "Setvar DEVICE_STATE")?;
            runs.push(r);
        }
        Some(median_run(runs))
    } else {
        None
    };

    let watch = StateWatch::start(inst.ami_port, "Custom:")?;
    let (mut fanout, mut fanout_trie) = <(FanoutSide, FanoutSide)>::default();
    let mut tps_after = BTreeMap::new();
    if do_fanout {
        (fanout, fanout_trie) = fanout_rounds(
            &inst,
            &mut driver,
            &watch,
            "Custom:dev/",
            "baseline fan-out",
        )?;
        tps_after = taskprocessors(&mut driver)?;
    }
    let mut overhead = Vec::new();
    let mut overhead_module_msgs = 0;
    if do_overhead {
        let mut loaded = false;
        // One round first, not counted: the first churn after the instance started runs
        // slower on both sides (caches, AstDB pages).
        let warm = churn(
            &inst,
            &mut driver,
            &watch,
            "free/",
            FANOUT,
            "INUSE",
            "Custom:free/",
            "INUSE",
        )?;
        eprintln!(
            "[bench]   unrelated churn, warm-up (not counted): {}/{} in {:?}, cpu {:.2}s",
            warm.arrived, warm.changes, warm.wall, warm.cpu
        );
        let mut state = "INUSE";
        for i in 0..OVERHEAD_ROUNDS {
            // Alternate (ABBA) so drift (AstDB growth, caches) spreads over both sides: half
            // the rounds each.
            let want_loaded = matches!(i % 4, 1 | 2);
            if want_loaded != loaded {
                let op = if want_loaded { "load" } else { "unload" };
                module_op(&mut driver, op, "res_deviceuser.so")?;
                loaded = want_loaded;
            }
            state = if state == "INUSE" {
                "NOT_INUSE"
            } else {
                "INUSE"
            };
            let ours_before = if loaded {
                stats_counter(&mut driver, "Device state messages received")?
            } else {
                0
            };
            let r = churn(
                &inst,
                &mut driver,
                &watch,
                "free/",
                FANOUT,
                state,
                "Custom:free/",
                state,
            )?;
            if loaded {
                overhead_module_msgs +=
                    stats_counter(&mut driver, "Device state messages received")?
                        .saturating_sub(ours_before);
            }
            eprintln!(
                "[bench]   unrelated churn, module {}: {}/{} in {:?}, cpu {:.2}s",
                if loaded { "loaded" } else { "unloaded" },
                r.arrived,
                r.changes,
                r.wall,
                r.cpu
            );
            overhead.push((loaded, r));
        }
    }
    // Last, as on the module instance.
    inst.settle();
    let dialplan_reload = dialplan_reload(&mut driver)?;
    eprintln!("[bench]   dialplan reload in {dialplan_reload:?}");
    drop(watch);
    drop(driver);
    inst.stop();
    Ok(BaselineRun {
        fanout,
        fanout_trie,
        dialplan_reload,
        tps_after,
        overhead,
        overhead_module_msgs,
        setvar_notify,
        own_change,
    })
}

// ---------------------------------------------------------------------------
// 4: scale
// ---------------------------------------------------------------------------

/// The module's own heap, as `deviceuser show stats summary` reports it ("12.3 MB").
fn module_heap(ami: &mut Ami) -> Res<String> {
    let v = stats_line(ami, "Module heap in use")?;
    Ok(v.split(" (").next().unwrap_or(&v).to_string())
}

/// User counts of the hint scale scenario (`DEVICEUSER_BENCH_HINT_SCALE=10000,20000` for
/// others, e.g. to time a module that registers a hint per user, where 100,000 takes hours).
const HINT_SCALE: [usize; 4] = [10_000, 20_000, 50_000, 100_000];

fn hint_scale_sizes() -> Vec<usize> {
    std::env::var("DEVICEUSER_BENCH_HINT_SCALE")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| HINT_SCALE.to_vec())
}
/// Users bound at load in the hint scale scenario (each on a fixed device): they have hints of
/// their own from the start.
const HINT_SCALE_BOUND: usize = 1_000;
const SCALE_HINTS: &str = "scale-hints";

/// `res_deviceuser.conf` for the hint scale scenario: `hint_context`, [`HINT_SCALE_BOUND`]
/// fixed devices each owned by one of the first users, and `users` users in all.
fn hint_scale_conf(users: usize) -> String {
    let mut s = format!("[general]\nhint_context = {SCALE_HINTS}\n");
    for n in 1..=HINT_SCALE_BOUND {
        let _ = write!(
            s,
            "\n[{}]\ntype = device\nmode = fixed\ndial = Custom:fix/{n}\ndefault_user = {}\n",
            device(n),
            user(n)
        );
    }
    for n in 1..=users.max(HINT_SCALE_BOUND) {
        let _ = write!(s, "\n[{}]\ntype = user\npassword = 1234\n", user(n));
    }
    s
}

/// Runs `op` while another AMI session asks `core show hints` every 100 ms; returns how long
/// `op` took and the longest wait for an answer meanwhile.
fn with_cli_probe(port: u16, op: impl FnOnce() -> Res<()>) -> Res<(Duration, Duration)> {
    let mut probe = driver_session(port)?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_probe = Arc::clone(&stop);
    let handle = std::thread::spawn(move || -> Res<Duration> {
        let mut longest = Duration::ZERO;
        while !stop_probe.load(std::sync::atomic::Ordering::Relaxed) {
            let t = Instant::now();
            probe.try_command("core show hints")?;
            longest = longest.max(t.elapsed());
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(longest)
    });
    let t = Instant::now();
    let r = op();
    let took = t.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let longest = handle.join().map_err(|_| "the CLI probe panicked")??;
    r.map(|()| (took, longest))
}

/// The number `core show hints` ends with ("- N hints registered").
fn hints_registered(ami: &mut Ami) -> Res<usize> {
    let out = ami.try_command("core show hints")?;
    out.lines()
        .rev()
        .find_map(|l| {
            l.trim()
                .strip_prefix("- ")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .ok_or_else(|| format!("no hint count in {out:?}"))
}

/// `hint_context` with many users: `module reload` adding them (the case that took minutes
/// when the module registered a hint per configured user: Asterisk scans all its hints for
/// each one it adds), an unchanged reload, `dialplan reload`, the reload that removes them
/// again, and `module load` of the largest file, while a second AMI session runs
/// `core show hints` every 100 ms.
fn hints_scale(rep: &mut Report) -> Res<()> {
    let sizes = hint_scale_sizes();
    let largest = sizes.iter().copied().max().unwrap_or(0);
    eprintln!("[bench] hint scale instance: up to {largest} users in hint_context");
    let base = hint_scale_conf(0);
    let mut inst = start_instance(
        "hints-scale",
        vec![("res_deviceuser.conf", base.clone())],
        true,
    )?;
    let conf_path = inst.etc().join("res_deviceuser.conf");
    let mut ami = driver_session(inst.ami_port)?;
    inst.settle();
    module_op(&mut ami, "load", "res_deviceuser.so")?;
    inst.settle();
    let mut d = String::from(
        "| Users | `module reload` adding them | Asterisk CPU | longest `core show hints` meanwhile | unchanged `module reload` | `dialplan reload` | `module reload` removing them | hints registered |\n|---|---|---|---|---|---|---|---|\n",
    );
    let mut worst_cli = Duration::ZERO;
    for &n in &sizes {
        fs::write(&conf_path, hint_scale_conf(n)).map_err(|e| e.to_string())?;
        let cpu0 = inst.cpu();
        let port = inst.ami_port;
        let (add, cli) =
            with_cli_probe(port, || module_op(&mut ami, "reload", "res_deviceuser.so"))?;
        inst.settle();
        let add_cpu = inst.cpu() - cpu0;
        let registered = hints_registered(&mut ami)?;
        let t = Instant::now();
        module_op(&mut ami, "reload", "res_deviceuser.so")?;
        let unchanged = t.elapsed();
        inst.settle();
        let t = Instant::now();
        ami.try_command("dialplan reload")?;
        let dialplan = t.elapsed();
        inst.settle();
        fs::write(&conf_path, &base).map_err(|e| e.to_string())?;
        let t = Instant::now();
        module_op(&mut ami, "reload", "res_deviceuser.so")?;
        let remove = t.elapsed();
        inst.settle();
        eprintln!(
            "[bench]   {n}: reload adding {add:?} (CLI ≤ {cli:?}), unchanged {unchanged:?}, dialplan {dialplan:?}, removing {remove:?}; {registered} hints"
        );
        let _ = writeln!(
            d,
            "| {n} | {} | {add_cpu:.2} s | {} | {} | {} | {} | {registered} |",
            ms(add),
            ms(cli),
            ms(unchanged),
            ms(dialplan),
            ms(remove)
        );
        rep.row(
            &format!("4. `module reload` adding {n} users with `hint_context` ({HINT_SCALE_BOUND} of them bound)"),
            ms(add),
            "–".into(),
            "–".into(),
            "≤ 10 s",
            Some(add <= Duration::from_secs(10)),
        );
        worst_cli = worst_cli.max(cli);
    }
    fs::write(&conf_path, hint_scale_conf(largest)).map_err(|e| e.to_string())?;
    module_op(&mut ami, "unload", "res_deviceuser.so")?;
    inst.settle();
    let port = inst.ami_port;
    let (load, load_cli) =
        with_cli_probe(port, || module_op(&mut ami, "load", "res_deviceuser.so"))?;
    inst.settle();
    let t = Instant::now();
    module_op(&mut ami, "unload", "res_deviceuser.so")?;
    let unload = t.elapsed();
    drop(ami);
    inst.stop();
    rep.row(
        &format!("4. `module load` with {largest} users in `hint_context`"),
        ms(load),
        "–".into(),
        "–".into(),
        "≤ 10 s",
        Some(load <= Duration::from_secs(10)),
    );
    let cli = worst_cli.max(load_cli);
    rep.row(
        "4. longest `core show hints` answer during those loads and reloads (every 100 ms)",
        ms(cli),
        "–".into(),
        "–".into(),
        "< 1 s",
        Some(cli < Duration::from_secs(1)),
    );
    let _ = writeln!(
        d,
        "\n`module load` with {largest} users: {} (longest `core show hints` meanwhile {}); `module unload`: {}.\n\n\
         The module registers a pattern hint per length of the numeric user ids \
         (`_XXXXXX,hint,DeviceUser:${{EXTEN}}`) and a hint of their own for the users that are logged in \
         (here the {HINT_SCALE_BOUND} on fixed devices) or watched: Asterisk (up to 22.10) scans every hint it has \
         each time it adds or removes one (`ast_add_hint`/`ast_remove_hint`, `main/pbx.c`), so a hint per \
         configured user cost time in proportion to N².",
        ms(load),
        ms(load_cli),
        ms(unload)
    );
    rep.detail("4. Hints at scale (`hint_context`)", d);
    Ok(())
}

fn scale(rep: &mut Report) -> Res<()> {
    eprintln!("[bench] scale instance: {SCALE} users and devices");
    let mut inst = start_instance(
        "scale",
        vec![(
            "res_deviceuser.conf",
            conf::deviceuser_conf(SCALE, |n| format!("PJSIP/{}", device(n)), None),
        )],
        true,
    )?;
    let mut ami = driver_session(inst.ami_port)?;
    inst.settle();
    ami.try_command("malloc trim")?;
    let rss0 = inst.rss();
    let cpu0 = inst.cpu();
    let t = Instant::now();
    module_op(&mut ami, "load", "res_deviceuser.so")?;
    let load = t.elapsed();
    let settle_load = inst.settle();
    let load_cpu = inst.cpu() - cpu0;
    let rss1 = inst.rss();
    let heap1 = module_heap(&mut ami)?;
    eprintln!("[bench]   load {load:?}, rss +{} MB", (rss1 - rss0) >> 20);

    let b = ami.pipeline(&login_actions(SCALE))?;
    check(&b, "DeviceUserLogin")?;
    eprintln!("[bench]   {SCALE} logins in {:?}", b.elapsed);
    inst.settle();
    let rss2 = inst.rss();
    // What the burst leaves behind in Asterisk's heaps (its AMI events until the AMI server's
    // purge, every 5 s; the state messages queued to every subscriber) is freed within
    // seconds, and the module's commit thread trims the heap 6 s after a burst: the growth
    // that stays is read after both.
    std::thread::sleep(Duration::from_secs(9));
    let rss2_steady = inst.rss();
    let trims = stats_counter(&mut ami, "Heap trimmed after bursts of commits")?;
    // Asterisk's own `malloc trim` hands freed heap back to the system: what stays is live
    // memory, the rest was fragmentation left by transient allocations.
    ami.try_command("malloc trim")?;
    let rss2_live = inst.rss();
    let heap = module_heap(&mut ami)?;
    eprintln!(
        "[bench]   rss after logins {} MB, 9 s later {} MB ({trims} trims), {} MB after malloc trim; module heap {heap}",
        rss2 >> 20,
        rss2_steady >> 20,
        rss2_live >> 20
    );

    let t = Instant::now();
    let shown = ami.try_command("deviceuser show bindings")?;
    let show = t.elapsed();
    let shown_last = shown.lines().last().unwrap_or("").to_string();

    let t = Instant::now();
    module_op(&mut ami, "unload", "res_deviceuser.so")?;
    let unload = t.elapsed();
    inst.settle();
    let rss3 = inst.rss();
    let cpu1 = inst.cpu();
    let t = Instant::now();
    module_op(&mut ami, "load", "res_deviceuser.so")?;
    let reload = t.elapsed();
    let settle_reload = inst.settle();
    let reload_cpu = inst.cpu() - cpu1;
    let rss4 = inst.rss();
    let restored = ami
        .try_command("deviceuser show bindings")?
        .lines()
        .last()
        .unwrap_or("")
        .to_string();
    eprintln!("[bench]   restore load {reload:?}; {restored}");
    // Every user logs out. These devices have never published a state (no endpoint), so the
    // module waits for their first one instead of forwarding their topics: each logout takes
    // its device out of that set.
    let logouts: Vec<_> = (1..=SCALE)
        .map(|n| fields(&[("Action", "DeviceUserLogout"), ("User", &user(n))]))
        .collect();
    let cpu2 = inst.cpu();
    let lb = ami.pipeline(&logouts)?;
    check(&lb, "DeviceUserLogout")?;
    let settle_logout = inst.settle();
    let logout_cpu = inst.cpu() - cpu2;
    let left = ami
        .try_command("deviceuser show bindings")?
        .lines()
        .last()
        .unwrap_or("")
        .to_string();
    eprintln!(
        "[bench]   {SCALE} logouts in {:?}, idle {settle_logout:?} later, {logout_cpu:.2} s CPU; {left}",
        lb.elapsed
    );
    drop(ami);
    inst.stop();

    let mb = |b: u64, a: u64| (b as f64 - a as f64) / (1024.0 * 1024.0);
    rep.row(
        &format!("4. `module load`, {SCALE} users + devices, empty AstDB"),
        ms(load),
        "–".into(),
        "–".into(),
        "< 1 s",
        Some(load < Duration::from_secs(1)),
    );
    rep.row(
        &format!("4. `module load` restoring {SCALE} bindings from AstDB"),
        ms(reload),
        "–".into(),
        "–".into(),
        "< 2 s",
        Some(reload < Duration::from_secs(2)),
    );
    rep.row(
        &format!(
            "4. RSS growth: load + {SCALE} bindings, 9 s after the logins ({:.1} MB right after them; {:.1} MB after Asterisk's `malloc trim`)",
            mb(rss2, rss0),
            mb(rss2_live, rss0)
        ),
        format!("{:.1} MB", mb(rss2_steady, rss0)),
        "–".into(),
        "–".into(),
        "< 100 MB",
        Some(mb(rss2_steady, rss0) < 100.0),
    );
    rep.row(
        &format!("4. `deviceuser show bindings` with {SCALE} bindings"),
        ms(show),
        "–".into(),
        "–".into(),
        "(report)",
        None,
    );
    let mut d = String::new();
    let _ = writeln!(d, "| Step | Wall | Asterisk CPU | VmRSS after | Note |");
    let _ = writeln!(d, "|---|---|---|---|---|");
    let _ = writeln!(
        d,
        "| boot without the module | – | – | {:.1} MB | |",
        mb(rss0, 0)
    );
    let _ = writeln!(
        d,
        "| `module load` (command) | {} | {:.2} s until idle | {:.1} MB | idle {:.2} s after the command returned; module heap {heap1} |",
        ms(load),
        load_cpu,
        mb(rss1, 0),
        settle_load.as_secs_f64()
    );
    let _ = writeln!(
        d,
        "| {SCALE} `DeviceUserLogin` pipelined | {} ({}) | – | {:.1} MB | until idle; module heap {heap} |",
        ms(b.elapsed),
        rate(SCALE as f64, b.elapsed),
        mb(rss2, 0),
    );
    let _ = writeln!(
        d,
        "| 9 s later | – | – | {:.1} MB | heap trimmed by the module after the burst: {trims} time(s); then {:.1} MB after Asterisk's `malloc trim` |",
        mb(rss2_steady, 0),
        mb(rss2_live, 0)
    );
    let _ = writeln!(
        d,
        "| `deviceuser show bindings` over AMI | {} | – | – | last line: `{shown_last}` |",
        ms(show)
    );
    let _ = writeln!(
        d,
        "| `module unload` | {} | – | {:.1} MB | |",
        ms(unload),
        mb(rss3, 0)
    );
    let _ = writeln!(
        d,
        "| `module load` with {SCALE} bindings in AstDB | {} | {:.2} s until idle | {:.1} MB | idle {:.2} s after; then: `{restored}` |",
        ms(reload),
        reload_cpu,
        mb(rss4, 0),
        settle_reload.as_secs_f64()
    );
    let _ = writeln!(
        d,
        "| {SCALE} `DeviceUserLogout` pipelined | {} ({}) | {:.2} s until idle | – | idle {:.2} s after the last response; then: `{left}` |",
        ms(lb.elapsed),
        rate(SCALE as f64, lb.elapsed),
        logout_cpu,
        settle_logout.as_secs_f64()
    );
    rep.detail(
        &format!("4. Scale: {SCALE} users and {SCALE} devices (`PJSIP/d<n>`)"),
        d,
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// 5: the binding table
// ---------------------------------------------------------------------------

/// Median ns per iteration of a criterion benchmark: the lower of the two runs
/// `scripts/bench.sh` makes (`target/criterion-run1`, `target/criterion`), or the one found.
fn criterion_median(group: &str, id: &str) -> Option<f64> {
    let read = |dir: &str| -> Option<f64> {
        let path = repo()
            .join(dir)
            .join(group)
            .join(id)
            .join("new/estimates.json");
        let text = fs::read_to_string(path).ok()?;
        let rest = &text[text.find("\"median\"")?..];
        let rest = &rest[rest.find("\"point_estimate\":")? + "\"point_estimate\":".len()..];
        let end = rest.find([',', '}'])?;
        rest[..end].trim().parse().ok()
    };
    match (read("target/criterion-run1"), read("target/criterion")) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn table(rep: &mut Report) {
    eprintln!("[bench] binding table: criterion results and read latency under a writer");
    let mut d = String::from(
        "Criterion (`bench/benches/binding_table.rs`): 2 reader threads, one iteration = one read on each, \
         10,000 users and devices, half bound. Writer (a third thread, logging users in and out): \
         `paced-writer` = one login + one logout then 100 µs sleep (the same write load for every table), \
         `busy-writer` = back to back (each table takes as many writes as it can), `no-writer`. \
         Median of criterion's samples; `scripts/bench.sh` runs criterion twice and each table keeps \
         its better run (the same rule for every table), so a moment of interference on the machine \
         does not decide a ratio.\n\n\
         | Read | Writer | snapshot (BindingTable) | Mutex<HashMap> | RwLock<HashMap> | snapshot ÷ mutex | snapshot ÷ rwlock |\n\
         |---|---|---|---|---|---|---|\n",
    );
    let mut found = false;
    for read in ["dial_of", "user_on"] {
        for writer in [Writer::Paced, Writer::Busy, Writer::None] {
            let group = format!("{read}_{}", writer.name());
            let get = |id: &str| criterion_median(&group, id).map(|ns| 2.0 / (ns * 1e-9));
            let (s, m, r) = (get("snapshot"), get("mutex"), get("rwlock"));
            let f =
                |v: Option<f64>| v.map_or("n/a".into(), |v| format!("{:.2} M reads/s", v / 1e6));
            let q = |a: Option<f64>, b: Option<f64>| match (a, b) {
                (Some(a), Some(b)) => ratio(a, b),
                _ => "n/a".into(),
            };
            let _ = writeln!(
                d,
                "| `{read}` | {} | {} | {} | {} | {} | {} |",
                writer.name(),
                f(s),
                f(m),
                f(r),
                q(s, m),
                q(s, r)
            );
            if let (Some(s), Some(m), Some(r)) = (s, m, r) {
                found = true;
                if writer != Writer::None {
                    rep.row(
                        &format!(
                            "5. `{read}` read throughput, 2 readers + {} (vs Mutex<HashMap>; vs RwLock {})",
                            writer.name(),
                            ratio(s, r)
                        ),
                        format!("{:.2} M/s", s / 1e6),
                        format!("{:.2} M/s", m / 1e6),
                        ratio(s, m),
                        "≥ 5× mutex",
                        Some(s / m >= 5.0),
                    );
                }
            }
        }
    }
    if !found {
        d.push_str("\n(criterion results missing: run `cargo bench -p deviceuser-bench` first)\n");
    }
    let dur = Duration::from_secs(1);
    let mut worst = Vec::new();
    for writer in [Writer::Paced, Writer::Busy] {
        let _ = writeln!(
            d,
            "\nSingle-read latency, `dial_of`, 2 readers for 1 s, {}, each read timed:\n\n\
             | Table | reads/s | writes/s | p50 | p99.9 | max |\n|---|---|---|---|---|---|",
            writer.name()
        );
        let lats = [
            (
                "BindingTable (snapshot)",
                contention::read_latency(Arc::new(Snapshots::new()), Read::DialOf, 2, dur, writer),
            ),
            (
                "Mutex<HashMap>",
                contention::read_latency(Arc::new(Locked::new()), Read::DialOf, 2, dur, writer),
            ),
            (
                "RwLock<HashMap>",
                contention::read_latency(Arc::new(ReadWrite::new()), Read::DialOf, 2, dur, writer),
            ),
        ];
        let us = |x: Duration| format!("{:.1} µs", x.as_secs_f64() * 1e6);
        for (name, l) in &lats {
            let _ = writeln!(
                d,
                "| {name} | {:.2} M | {:.0} | {} | {} | {} |",
                l.per_second / 1e6,
                l.writes_per_second,
                us(l.p50),
                us(l.p999),
                us(l.max)
            );
        }
        if writer == Writer::Paced {
            worst.push((lats[0].1.p999, lats[1].1.p999));
        }
    }
    if let Some((snap, mutex)) = worst.first() {
        rep.row(
            "5. p99.9 of single `dial_of` reads under the paced writer (max in details)",
            format!("{:.1} µs", snap.as_secs_f64() * 1e6),
            format!("{:.1} µs", mutex.as_secs_f64() * 1e6),
            ratio(snap.as_secs_f64(), mutex.as_secs_f64()),
            "reads never block on a writer",
            None,
        );
    }
    rep.detail("5. Binding table read path under a writer", d);
}

// ---------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------

fn sh(cmd: &str) -> String {
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn php_start() -> Option<Duration> {
    let mut v = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let ok = Command::new("php")
            .args(["-r", "echo 1;"])
            .output()
            .ok()?
            .status
            .success();
        if !ok {
            return None;
        }
        v.push(t.elapsed());
    }
    v.sort();
    Some(quantile(&v, 0.5))
}

fn fanout_rows(rep: &mut Report, m: &ModuleRun, b: &BaselineRun) {
    let (mf, bf) = (&m.fanout, &b.fanout);
    if mf.rounds.is_empty() || bf.rounds.is_empty() {
        return;
    }
    let (mw, bw) = (mf.wall().as_secs_f64(), bf.wall().as_secs_f64());
    rep.row(
        &format!(
            "1. fan-out wall time, {} Custom device changes → `DeviceUser:` published (median of {FANOUT_CYCLES} cycles)",
            mf.changes()
        ),
        secs(mw),
        secs(bw),
        ratio(mw, bw),
        "≤ 1.2×",
        Some(mw / bw <= 1.2),
    );
    rep.row(
        "1. fan-out Asterisk CPU (utime+stime, until idle; median of the cycles)",
        secs(mf.cpu()),
        secs(bf.cpu()),
        ratio(mf.cpu(), bf.cpu()),
        "≤ 1.5×",
        Some(mf.cpu() / bf.cpu() <= 1.5),
    );
    rep.row(
        "1. fan-out missed updates",
        mf.missed().to_string(),
        bf.missed().to_string(),
        "–".into(),
        "0",
        Some(mf.missed() == 0),
    );
    let (mt, bt) = (&m.fanout_trie, &b.fanout_trie);
    if !mt.rounds.is_empty() && !bt.rounds.is_empty() {
        rep.row(
            "1. the same fan-out with Asterisk's trie matcher on both instances (`dialplan set extenpatternmatchnew true`): Asterisk CPU (median of the cycles; wall and the change from the default in details)",
            secs(mt.cpu()),
            secs(bt.cpu()),
            ratio(mt.cpu(), bt.cpu()),
            "(report)",
            None,
        );
    }
    let mw_ = mf.warnings();
    let ours: usize = mw_
        .iter()
        .filter(|(k, _)| m.our_tps.contains(k))
        .map(|(_, v)| v)
        .sum();
    let others: usize = mw_.values().sum::<usize>() - ours;
    let base: usize = bf.warnings().values().sum();
    let (our_depth, our_alert) = m
        .our_tps
        .iter()
        .filter_map(|n| m.tps_after.get(n))
        .fold((0, 0), |(d, a), v| (d.max(v.1), a.max(v.2)));
    rep.row(
        &format!(
            "1. taskprocessor overload warnings naming our subscription (its deepest queue {our_depth}, alert level {our_alert})"
        ),
        format!("{ours} (others: {others})"),
        format!("{base}"),
        "–".into(),
        "0 from ours",
        Some(ours == 0),
    );
    let mut d = String::new();
    let _ = writeln!(
        d,
        "Module instance: {FANOUT} users, each logged in on its device `Custom:dev/<n>`, hints \
         `DeviceUser:<user>` owned by the module (`hint_context`). Baseline instance: the module \
         not loaded, {FANOUT} hints straight on `Custom:dev/<n>`. Both: `Setvar DEVICE_STATE(Custom:dev/<n>)` \
         for every device, pipelined on one AMI session; a second session (events only, class `call`, \
         filtered in Asterisk to the `DeviceStateChange` events of the awaited devices: `Device: DeviceUser:` on the module instance, `Device: Custom:` on the baseline) counts distinct devices reaching the new state. Wall: first \
         Setvar → last awaited event. CPU: Asterisk's utime+stime from before the burst until it is idle. \
         Each side runs {FANOUT_CYCLES} cycles (→ INUSE, → NOT_INUSE); the summary compares the median cycles.\n"
    );
    let _ = writeln!(
        d,
        "| Cycle | Round | Side | changes | arrived | wall | CPU | overload warnings |"
    );
    let _ = writeln!(d, "|---|---|---|---|---|---|---|---|");
    for (side, f) in [("module (`DeviceUser:`)", mf), ("baseline (`Custom:`)", bf)] {
        for (i, r) in f.rounds.iter().enumerate() {
            let _ = writeln!(
                d,
                "| {} | {} | {side} | {} | {} | {} | {:.2} s | {} |",
                i / 2 + 1,
                if i % 2 == 0 {
                    "→ INUSE"
                } else {
                    "→ NOT_INUSE"
                },
                r.changes,
                r.arrived,
                ms(r.wall),
                r.cpu,
                fmt_warnings(&r.warnings)
            );
        }
    }
    if !mt.rounds.is_empty() && !bt.rounds.is_empty() {
        let change = |a: f64, b: f64| format!("{:+.0} %", (b / a - 1.0) * 100.0);
        let _ = writeln!(
            d,
            "\n**Asterisk's extension matcher.** Every hint state change runs the AMI `ExtensionStatus` \
             callback (`manager_state_cb` in `main/manager.c`), which looks the hint up with \
             `ast_get_hint`. With Asterisk's default matcher that lookup walks the hint context's \
             extensions one by one (`pbx_find_extension` in `main/pbx.c`), so each change costs in \
             proportion to the number of hints in the context ({FANOUT} on both instances). The trie \
             matcher (`extenpatternmatchnew = yes` in `extensions.conf`, or `dialplan set \
             extenpatternmatchnew true`) finds it directly. Each cycle above was followed by the same \
             cycle with the trie matcher switched on at run time ({FANOUT_CYCLES} per side; median \
             cycle; the overload warnings and queue depths here cover both):\n"
        );
        let _ = writeln!(
            d,
            "| Side | CPU, default | CPU, trie | change | wall, default | wall, trie | change | missed (trie) |\n|---|---|---|---|---|---|---|---|"
        );
        for (side, f, t) in [("module", mf, mt), ("baseline", bf, bt)] {
            let (fw, tw) = (f.wall().as_secs_f64(), t.wall().as_secs_f64());
            let _ = writeln!(
                d,
                "| {side} | {} | {} | {} | {} | {} | {} | {} |",
                secs(f.cpu()),
                secs(t.cpu()),
                change(f.cpu(), t.cpu()),
                secs(fw),
                secs(tw),
                change(fw, tw),
                t.missed()
            );
        }
    }
    let _ = writeln!(
        d,
        "\nOur subscription's taskprocessor (new at `module load`): {}; module load with {FANOUT} users/devices and hints: {}.\n",
        m.our_tps
            .iter()
            .map(|t| format!("`{t}`"))
            .collect::<Vec<_>>()
            .join(", "),
        ms(m.load_10k)
    );
    let _ = writeln!(
        d,
        "Overload warnings over the module instance's whole life (module load with hints, \
         {FANOUT} logins, fan-out): {}.\n",
        fmt_warnings(&m.whole_run)
    );
    let _ = writeln!(
        d,
        "Deepest taskprocessor queues after the fan-out (max depth):\n"
    );
    let _ = writeln!(
        d,
        "| Taskprocessor | module instance | baseline instance |\n|---|---|---|"
    );
    let mut names: Vec<&String> = m.tps_after.keys().chain(b.tps_after.keys()).collect();
    names.sort();
    names.dedup();
    let depth = |t: &BTreeMap<String, (u64, u64, u64)>, n: &str| t.get(n).map_or(0, |v| v.1);
    names.retain(|n| depth(&m.tps_after, n).max(depth(&b.tps_after, n)) >= 50);
    names.sort_by_key(|n| std::cmp::Reverse(depth(&m.tps_after, n).max(depth(&b.tps_after, n))));
    for n in names {
        let mark = if m.our_tps.contains(n) { " (ours)" } else { "" };
        let _ = writeln!(
            d,
            "| `{n}`{mark} | {} | {} |",
            m.tps_after.get(n).map_or("–".into(), |v| v.1.to_string()),
            b.tps_after.get(n).map_or("–".into(), |v| v.1.to_string())
        );
    }
    rep.detail("1. Device-state fan-out", d);
}

/// `module load`/`module reload` with the module's hints, and `dialplan reload` with them
/// against the same number of hints in extensions.conf.
fn hint_rows(rep: &mut Report, m: &ModuleRun, b: Option<&BaselineRun>) {
    rep.row(
        &format!("4. `module load`, {FANOUT} users + devices and their hints (`hint_context`)"),
        ms(m.load_10k),
        "–".into(),
        "–".into(),
        "(report)",
        None,
    );
    rep.row(
        &format!("4. `module reload`, {FANOUT} users with their hints, configuration unchanged"),
        ms(m.reload_10k),
        "–".into(),
        "–".into(),
        "(report)",
        None,
    );
    if let Some(b) = b {
        rep.row(
            &format!(
                "4. `dialplan reload` with {FANOUT} hints: the module's (`hint_context`) vs as many in extensions.conf (Asterisk copies or re-reads each, in both cases)"
            ),
            ms(m.dialplan_reload),
            ms(b.dialplan_reload),
            ratio(
                m.dialplan_reload.as_secs_f64(),
                b.dialplan_reload.as_secs_f64(),
            ),
            "(report)",
            None,
        );
    }
}

fn overhead_rows(rep: &mut Report, b: &BaselineRun) {
    if b.overhead.is_empty() {
        return;
    }
    // Mean per side: the rounds alternate ABBA, which cancels a steady drift of the machine
    // in the means (not in the medians, which the details show too).
    struct Side {
        wall: f64,
        cpu: f64,
        /// Squared standard errors of the means (sample variance / rounds).
        wall_se2: f64,
        cpu_se2: f64,
        median_wall: f64,
        median_cpu: f64,
        rounds: usize,
        missed: usize,
    }
    let side = |loaded: bool| -> Side {
        let rounds: Vec<&Round> = b
            .overhead
            .iter()
            .filter(|(l, _)| *l == loaded)
            .map(|(_, r)| r)
            .collect();
        let n = rounds.len().max(1) as f64;
        let median = |f: &dyn Fn(&Round) -> f64| {
            let mut v: Vec<f64> = rounds.iter().map(|r| f(r)).collect();
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied().unwrap_or(0.0)
        };
        let se2 = |f: &dyn Fn(&Round) -> f64| {
            let mean = rounds.iter().map(|r| f(r)).sum::<f64>() / n;
            let var =
                rounds.iter().map(|r| (f(r) - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
            var / n
        };
        Side {
            wall: rounds.iter().map(|r| r.wall.as_secs_f64()).sum::<f64>() / n,
            cpu: rounds.iter().map(|r| r.cpu).sum::<f64>() / n,
            wall_se2: se2(&|r| r.wall.as_secs_f64()),
            cpu_se2: se2(&|r| r.cpu),
            median_wall: median(&|r| r.wall.as_secs_f64()),
            median_cpu: median(&|r| r.cpu),
            rounds: rounds.len(),
            missed: rounds.iter().map(|r| r.changes - r.arrived).sum(),
        }
    };
    let (l, u) = (side(true), side(false));
    let (lw, lc, ln, lm) = (l.wall, l.cpu, l.rounds, l.missed);
    let (uw, uc, un, um) = (u.wall, u.cpu, u.rounds, u.missed);
    let pct = |a: f64, b: f64| format!("{:+.1}%", (a / b - 1.0) * 100.0);
    // The difference of the means with its 95 % interval (normal approximation), relative to
    // the unloaded mean: how far round-to-round noise alone moves the figure.
    let interval = |a: f64, b: f64, se2: f64| {
        format!("{} (±{:.1}%)", pct(a, b), 1.96 * se2.sqrt() / b * 100.0)
    };
    rep.row(
        &format!("2. unrelated churn ({FANOUT} unbound devices): Asterisk CPU per round, loaded vs unloaded (means of {} ABBA rounds each; ± the 95% interval of the difference from round-to-round noise)", OVERHEAD_ROUNDS / 2),
        secs(lc),
        secs(uc),
        interval(lc, uc, l.cpu_se2 + u.cpu_se2),
        "≤ +3%",
        Some(lc / uc <= 1.03),
    );
    rep.row(
        "2. unrelated churn: wall per round, loaded vs unloaded (means, ± as above)",
        secs(lw),
        secs(uw),
        interval(lw, uw, l.wall_se2 + u.wall_se2),
        "≤ +3%",
        Some(lw / uw <= 1.03),
    );
    rep.row(
        &format!(
            "2. unrelated churn: device-state messages that reached the module during the loaded rounds ({} changes; `deviceuser show stats summary`)",
            ln * FANOUT
        ),
        b.overhead_module_msgs.to_string(),
        "–".into(),
        "–".into(),
        "(report)",
        None,
    );
    let mut d = format!(
        "Baseline instance, `Setvar DEVICE_STATE(Custom:free/<n>)` for {FANOUT} devices that are configured \
         in res_deviceuser.conf but bound to nobody, rounds alternating module unloaded/loaded \
         (`module unload`/`module load res_deviceuser.so`) after one uncounted warm-up round. The \
         summary's ± is the 95% interval of the difference of the means (normal approximation, \
         from the rounds' spread): a difference inside it is not told apart from noise. Mean per round: loaded {} wall / {:.2} s CPU \
         ({ln} rounds, {lm} missed), unloaded {} wall / {:.2} s CPU ({un} rounds, {um} missed). \
         Medians: loaded {} / {:.2} s CPU, unloaded {} / {:.2} s CPU ({} CPU).\n\n\
         | # | module | wall | CPU |\n|---|---|---|---|\n",
        secs(lw),
        lc,
        secs(uw),
        uc,
        secs(l.median_wall),
        l.median_cpu,
        secs(u.median_wall),
        u.median_cpu,
        pct(l.median_cpu, u.median_cpu)
    );
    for (i, (l, r)) in b.overhead.iter().enumerate() {
        let _ = writeln!(
            d,
            "| {} | {} | {} | {:.2} s |",
            i + 1,
            if *l { "loaded" } else { "unloaded" },
            ms(r.wall),
            r.cpu
        );
    }
    rep.detail("2. Overhead on unrelated device-state traffic", d);
}

fn login_rows(rep: &mut Report, m: &ModuleRun, b: Option<&BaselineRun>, php: Option<Duration>) {
    let l = &m.login;
    let per_pair = |x: &Burst| x.elapsed.as_secs_f64() / PAIRS as f64;
    let (ma, mc, fa) = (
        per_pair(&l.module_ami),
        per_pair(&l.module_cli),
        per_pair(&l.freepbx_ami),
    );
    // The Ping burst has as many actions as the module's burst (one per login or logout).
    let ping = per_pair(&l.ping);
    let pps = |p: f64| format!("{:.0} pairs/s", 1.0 / p);
    rep.row(
        &format!("3. login+logout throughput, AMI DeviceUserLogin/Logout ({PAIRS} pairs, pipelined; median of {LOGIN_ROUNDS} rounds) vs FreePBX AMI path"),
        pps(ma),
        pps(fa),
        ratio(fa, ma),
        "≥ 5×",
        Some(fa / ma >= 5.0),
    );
    let per_action = |r: &Run| r.session_cpu.as_secs_f64() * 1e6 / r.actions as f64;
    rep.row(
        &format!(
            "3. the same vs the transport's limit (as many AMI Pings; median of {LOGIN_ROUNDS} rounds alternating with the logins; AMI session thread CPU per action {:.1} µs vs {:.1} µs for a Ping)",
            per_action(&l.module_ami),
            per_action(&l.ping)
        ),
        pps(ma),
        format!("{:.0} pairs/s", 1.0 / ping),
        ratio(ma, ping),
        "≤ 1.5× Ping time",
        Some(ma / ping <= 1.5),
    );
    let sized = per_pair(&l.sized_ping);
    rep.row(
        &format!(
            "3. the same vs as many Pings carrying the logins' and logouts' headers (`User`, `Device`: the same bytes to read and parse; AMI session thread CPU per action {:.1} µs)",
            per_action(&l.sized_ping)
        ),
        pps(ma),
        pps(sized),
        ratio(ma, sized),
        "(report)",
        None,
    );
    let own = b.and_then(|b| b.own_change.as_ref());
    if let Some(own) = own {
        let o = per_pair(own);
        rep.row(
            &format!(
                "3. the same vs Asterisk's own device-state change over AMI (`Setvar DEVICE_STATE(Custom:…)` of hinted devices, 2 per pair, pipelined the same way on the baseline instance; median of {LOGIN_ROUNDS} rounds; AMI session thread CPU per action {:.1} µs)",
                per_action(own)
            ),
            pps(ma),
            pps(o),
            ratio(ma, o),
            "(report)",
            None,
        );
        rep.row(
            "3. Asterisk alone, for scale: its own device-state change over AMI (the `Setvar DEVICE_STATE` burst above) vs the Ping burst (the transport's limit above)",
            pps(o),
            format!("{:.0} pairs/s", 1.0 / ping),
            ratio(o, ping),
            "(report)",
            None,
        );
    }
    rep.row(
        "3. login+logout throughput via CLI (`Action: Command`) vs FreePBX AMI path",
        pps(mc),
        pps(fa),
        ratio(fa, mc),
        "(report)",
        None,
    );
    if let Some(php) = php {
        let real = fa + 2.0 * php.as_secs_f64();
        rep.row(
            "3. AMI login+logout vs real FreePBX path (AMI path + one `php` start per login and per logout)",
            pps(ma),
            pps(real),
            ratio(real, ma),
            "≥ 100×",
            Some(real / ma >= 100.0),
        );
    }
    if let Some((login, logout)) = &m.latency {
        let mut all: Vec<Duration> = login.iter().chain(logout.iter()).copied().collect();
        all.sort();
        let (mut li, mut lo) = (login.clone(), logout.clone());
        li.sort();
        lo.sort();
        let reference = b.and_then(|b| b.setvar_notify.clone()).map(|mut v| {
            v.sort();
            v
        });
        rep.row(
            &format!(
                "3. AMI login/logout → NOTIFY at a sipp presence watcher, p99 ({} samples; p50 {})",
                all.len(),
                ms(quantile(&all, 0.5))
            ),
            ms(quantile(&all, 0.99)),
            reference.as_ref().map_or("n/a".into(), |r| {
                format!("{} (Setvar → NOTIFY)", ms(quantile(r, 0.99)))
            }),
            reference.as_ref().map_or("–".into(), |r| {
                ratio(
                    quantile(&all, 0.99).as_secs_f64(),
                    quantile(r, 0.99).as_secs_f64(),
                )
            }),
            "p99 < 10 ms",
            Some(quantile(&all, 0.99) < Duration::from_millis(10)),
        );
        let mut d = format!(
            "{LATENCY_PAIRS} sequential pairs on the module instance: `DeviceUserLogin` then `DeviceUserLogout` \
             of user {} on device {} (`Custom:dev/{FANOUT}`, NOT_INUSE), watched by `sipp` (sip-tester) \
             subscribed (presence, pidf) to the user's module-owned hint, answering each NOTIFY. Latency = \
             the wall clock when the AMI action was written → the time sipp logged the NOTIFY as received \
             (its message trace, in µs; one machine clock).\n\n| | p50 | p90 | p99 | max |\n|---|---|---|---|---|\n",
            user(FANOUT),
            device(FANOUT)
        );
        for (name, v) in [
            ("login → NOTIFY (open)", &li),
            ("logout → NOTIFY (closed)", &lo),
        ] {
            let _ = writeln!(
                d,
                "| {name} | {} | {} | {} | {} |",
                ms(quantile(v, 0.5)),
                ms(quantile(v, 0.9)),
                ms(quantile(v, 0.99)),
                ms(*v.last().unwrap_or(&Duration::ZERO))
            );
        }
        if let Some(r) = &reference {
            let _ = writeln!(
                d,
                "| reference: `Setvar DEVICE_STATE(Custom:…)` → NOTIFY of a plain hint (baseline instance) | {} | {} | {} | {} |",
                ms(quantile(r, 0.5)),
                ms(quantile(r, 0.9)),
                ms(quantile(r, 0.99)),
                ms(*r.last().unwrap_or(&Duration::ZERO))
            );
        }
        rep.detail("3b. Login → NOTIFY latency", d);
    }
    let mut d = format!(
        "Module instance ({FANOUT} users and devices). Each burst is pipelined on one AMI session \
         (a writer thread sends everything, the reader counts responses); per pair = one login and one logout.\n\n\
         Asterisk's CPU time and its threads' context switches are counted from the first action until it is idle again.\n\n\
         AMI and CLI bursts: all users log in, then all log out, so every action changes a user's state; \
         `DeviceUser:` states published counts the states the module published during the burst.\n\n\
         The AMI session thread's CPU is that of the thread serving the driver's session (the busiest \
         one in a burst of Pings), from the first action to the last response: the work each action \
         does before it is answered, whatever the other threads do.\n\n\
         | Path | actions | wall | per pair | pairs/s | Asterisk CPU per pair | AMI session thread CPU per action | thread switches per pair | `DeviceUser:` states published |\n|---|---|---|---|---|---|---|---|---|\n"
    );
    for (name, x) in [
        ("AMI `DeviceUserLogin` + `DeviceUserLogout`", &l.module_ami),
        ("CLI `deviceuser login` / `logout user` via `Action: Command`", &l.module_cli),
        ("FreePBX AMI path: 2× `DBPut` + `dialplan add extension …,hint,… into ext-local replace`; logout: 2× `DBPut` + `dialplan remove extension …@ext-local hint`", &l.freepbx_ami),
        ("transport limit: AMI `Ping` (2 per pair)", &l.ping),
        ("the same with the headers of the logins and logouts (`Action: Ping`, `User`, `Device`)", &l.sized_ping),
    ]
    .into_iter()
    .chain(own.map(|own| {
        ("reference, baseline instance: Asterisk's own state change, `Setvar DEVICE_STATE(Custom:dev/<n>)` of a hinted device (→ INUSE for all, then → NOT_INUSE; median of the rounds)", own)
    })) {
        let _ = writeln!(
            d,
            "| {name} | {} | {} | {:.1} µs | {:.0} | {:.1} µs | {:.1} µs | {:.1} | {} |",
            x.actions,
            ms(x.elapsed),
            x.elapsed.as_secs_f64() * 1e6 / PAIRS as f64,
            PAIRS as f64 / x.elapsed.as_secs_f64(),
            x.cpu * 1e6 / PAIRS as f64,
            x.session_cpu.as_secs_f64() * 1e6 / x.actions as f64,
            x.switches as f64 / PAIRS as f64,
            x.published
        );
    }
    let _ = writeln!(
        d,
        "\nWhere Asterisk's CPU went, per pair, from before each burst until Asterisk was idle \
         again (`/proc/<pid>/task/<tid>/schedstat`): the AMI session's thread, the module's commit \
         thread (`devuser-commit`: AstDB writes and state publishing of back-to-back commits), and \
         every other thread (Asterisk's reaction: the hint engine, stasis dispatch, the AMI event \
         router, AstDB).\n\n\
         | Path | AMI session thread | module commit thread | Asterisk's other threads | total |\n|---|---|---|---|---|"
    );
    for (name, x) in [
        ("AMI `DeviceUserLogin` + `DeviceUserLogout`", &l.module_ami),
        ("AMI `Ping` (2 per pair)", &l.ping),
        ("`Ping` with the logins' headers", &l.sized_ping),
    ]
    .into_iter()
    .chain(own.map(|own| {
        (
            "`Setvar DEVICE_STATE` of a hinted device (baseline instance)",
            own,
        )
    })) {
        let per = |t: Duration| t.as_secs_f64() * 1e6 / PAIRS as f64;
        let s = &x.split;
        let _ = writeln!(
            d,
            "| {name} | {:.1} µs | {:.1} µs | {:.1} µs | {:.1} µs |",
            per(s.session),
            per(s.commit),
            per(s.other),
            per(s.session + s.commit + s.other)
        );
    }
    match php {
        Some(p) => {
            let real = fa + 2.0 * p.as_secs_f64();
            let _ = writeln!(
                d,
                "\n`php -r 'echo 1;'` process start, median of 50: {}. Real FreePBX path per pair \
                 (AMI path + 2 php starts, one per AGI login and one per AGI logout): {:.2} ms → {:.0} pairs/s.",
                ms(p),
                real * 1e3,
                1.0 / real
            );
        }
        None => d.push_str("\n`php` is not installed: the real FreePBX path was not estimated.\n"),
    }
    rep.detail("3a. Login/logout throughput", d);
}

/// `dialplan reload` with the module's users against the same PBX without the module (see
/// `deviceuser_bench::reload`).
fn reload_rows(rep: &mut Report, failures: &mut Vec<String>) {
    let mut done = Vec::new();
    for h in reload::variants() {
        match reload::variant(h) {
            Ok(v) => done.push(v),
            Err(e) => failures.push(format!("dialplan reload, {}: {e}", h.name())),
        }
    }
    let Some(base) = done.iter().find(|v| v.hints == reload::Hints::None) else {
        return;
    };
    let b = base.median().as_secs_f64();
    for v in &done {
        if v.hints == reload::Hints::None {
            continue;
        }
        let r = v.median().as_secs_f64() / b;
        // The target is for configured users: logged-in users' hints cost what as many of the
        // PBX's own do (the rows after).
        let target = matches!(
            v.hints,
            reload::Hints::HintContext(0) | reload::Hints::Pattern(_)
        );
        rep.row(
            &format!(
                "4r. `dialplan reload`, {} ({} hints before, {} after), vs the same PBX without the module and without hints (median of {})",
                v.hints.name(),
                v.hints_before,
                v.hints_after,
                v.reloads.len()
            ),
            ms(v.median()),
            ms(base.median()),
            ratio(v.median().as_secs_f64(), b),
            if target { "≤ 1.5×" } else { "(report)" },
            target.then_some(r <= 1.5),
        );
    }
    // Asterisk's own cost of holding a hint at all, whoever owns it: the same PBX without the
    // module but with one hint of its own.
    if let Some(one) = (done.iter()).find(|v| v.hints == reload::Hints::StaticPhones(1)) {
        for v in (done.iter()).filter(|v| {
            matches!(
                v.hints,
                reload::Hints::HintContext(0) | reload::Hints::Pattern(0)
            )
        }) {
            rep.row(
                &format!(
                    "4r. `dialplan reload`, {} ({} hint), vs the same PBX without the module with one hint of its own",
                    v.hints.name(),
                    v.hints_before
                ),
                ms(v.median()),
                ms(one.median()),
                ratio(v.median().as_secs_f64(), one.median().as_secs_f64()),
                "(report)",
                None,
            );
        }
    }
    for v in &done {
        let reload::Hints::HintContext(n) = v.hints else {
            continue;
        };
        if let Some(st) = done
            .iter()
            .find(|x| n > 0 && x.hints == reload::Hints::StaticPhones(n))
        {
            rep.row(
                &format!(
                    "4r. `dialplan reload`: the module with {n} users logged in (`hint_context`) vs {n} hints in extensions.conf without the module"
                ),
                ms(v.median()),
                ms(st.median()),
                ratio(v.median().as_secs_f64(), st.median().as_secs_f64()),
                "(report)",
                None,
            );
        }
    }
    let mut d = format!(
        "One instance per variant, the same `extensions.conf` (a small dialplan: internal calls \
         by pattern, logins, voicemail, features) and, with the module, {} users on devices \
         `PJSIP/d<n>`; `dialplan reload` timed {} times per instance ({} for the variants with \
         {} hints; the CLI returns once the new dialplan is in place; the dialplan is locked \
         meanwhile).\n\n\
         | Variant | hints before / after | reloads | min | median | max |\n|---|---|---|---|---|---|\n",
        reload::USERS,
        reload::RELOADS,
        reload::RELOADS_LONG,
        reload::USERS
    );
    for v in &done {
        let _ = writeln!(
            d,
            "| {} | {} / {} | {} | {} | {} | {} |",
            v.hints.name(),
            v.hints_before,
            v.hints_after,
            v.reloads.len(),
            ms(v.reloads.iter().copied().min().unwrap_or_default()),
            ms(v.median()),
            ms(v.reloads.iter().copied().max().unwrap_or_default())
        );
    }
    rep.detail("4r. `dialplan reload` with the module's users", d);
}

/// Users (all logged in) for the console's board.
const CONSOLE_USERS: usize = 10_000;
/// Boards open during the console's login bursts.
const BOARDS: usize = 50;
const CONSOLE_ROUNDS: usize = 25;
const FEED_LATENCY_PAIRS: usize = 300;

fn console(rep: &mut Report) -> Res<()> {
    eprintln!("[bench] console: {CONSOLE_USERS} users logged in, {BOARDS} boards, {PAIRS} pairs");
    let params = deviceuser_bench::console::Params {
        users: CONSOLE_USERS,
        pairs: PAIRS,
        boards: BOARDS,
        latency_pairs: FEED_LATENCY_PAIRS,
        rounds: CONSOLE_ROUNDS,
    };
    let module = module_file();
    if !module.exists() {
        return Err(format!(
            "{} does not exist: run cargo build --release",
            module.display()
        ));
    }
    let builder = Asterisk::builder("console")
        .run_dir(repo().join("bench/tmp/console"))
        .module_file(module)
        .collect_module_lines(false);
    let r = deviceuser_bench::console::run(&params, builder)?;
    let api = quantile(&r.board_api, 0.5);
    rep.row(
        &format!(
            "console: `GET api/board` with {CONSOLE_USERS} users and {CONSOLE_USERS} bindings ({:.1} MB of JSON; median of {})",
            r.board_bytes as f64 / 1e6,
            r.board_api.len()
        ),
        ms(api),
        "–".into(),
        "–".into(),
        "< 1 s",
        Some(api < Duration::from_secs(1)),
    );
    match &r.first_paint {
        Ok(samples) => {
            let mid = samples[samples.len() / 2];
            rep.row(
                &format!(
                    "console: the board's first paint in headless Chromium, from navigation start ({CONSOLE_USERS} users; median of {} loads; the first screen's {} rows in the document after {})",
                    samples.len(),
                    mid.rows,
                    ms(mid.rendered)
                ),
                ms(mid.painted),
                "–".into(),
                "–".into(),
                "< 1 s",
                Some(mid.painted < Duration::from_secs(1)),
            );
        }
        Err(e) => rep.detail("Console first paint", format!("not measured: {e}")),
    }
    let (p50, p99) = (
        quantile(&r.feed_latency, 0.5),
        quantile(&r.feed_latency, 0.99),
    );
    rep.row(
        &format!(
            "console: AMI `DeviceUserLogin`/`Logout` sent → event at a live-feed WebSocket client, p50 / p99 ({} actions, one at a time)",
            r.feed_latency.len()
        ),
        format!("{} / {}", ms(p50), ms(p99)),
        "–".into(),
        "–".into(),
        "p99 < 50 ms",
        Some(p99 < Duration::from_millis(50)),
    );
    let per_pair = |b: &(Burst, f64, f64)| b.0.elapsed.as_secs_f64() / PAIRS as f64;
    let cpu_pair = |b: &(Burst, f64, f64)| b.1 * 1e6 / PAIRS as f64;
    let driver_pair = |b: &(Burst, f64, f64)| b.2 * 1e6 / PAIRS as f64;
    // Per pair, µs: the median and the largest of the bursts' time in the threads serving
    // the boards.
    let board_threads = |b: &deviceuser_bench::console::Boards| {
        let mut t = b.board_threads.clone();
        t.sort_by(f64::total_cmp);
        let per_pair = |s: f64| s * 1e6 / PAIRS as f64;
        (
            per_pair(t.get(t.len() / 2).copied().unwrap_or(0.0)),
            per_pair(t.last().copied().unwrap_or(0.0)),
        )
    };
    let mid_without = &r.without_boards[r.without_boards.len() / 2];
    let without = per_pair(mid_without);
    let mut delivered_all = true;
    for (boards, kind, target) in [
        (
            &r.compressed,
            "compressed boards (`?compress=deflate`, as the page opens the feed)",
            "within 5 %",
        ),
        (&r.plain, "plain boards (JSON text frames only)", "–"),
    ] {
        let mid_with = &boards.bursts[boards.bursts.len() / 2];
        let with = per_pair(mid_with);
        let delivered = boards
            .events_per_board
            .iter()
            .all(|&n| n == r.events_expected);
        delivered_all &= delivered;
        rep.row(
            &format!(
                "console: login+logout throughput with {BOARDS} {kind} open vs none ({PAIRS} pairs pipelined; median of {CONSOLE_ROUNDS} bursts each, the three kinds taking turns in a rotating order; Asterisk CPU per pair {:.0} µs vs {:.0} µs; the threads of Asterisk serving the boards {:.1} µs per pair, median of the bursts; every board received {})",
                cpu_pair(mid_with),
                cpu_pair(mid_without),
                board_threads(boards).0,
                if delivered {
                    format!("all {} events", r.events_expected)
                } else {
                    format!(
                        "{:?} of {} events",
                        boards.events_per_board.iter().min(),
                        r.events_expected
                    )
                }
            ),
            format!("{:.0} pairs/s", 1.0 / with),
            format!("{:.0} pairs/s", 1.0 / without),
            ratio(with, without),
            target,
            (target != "–").then_some(delivered && with <= without * 1.05),
        );
    }
    if !delivered_all {
        rep.detail(
            "Console feed",
            "some boards missed events: see the rows above".into(),
        );
    }
    let list = |v: &[(Burst, f64, f64)]| {
        v.iter()
            .map(|b| {
                format!(
                    "{:.0} ({:.0} µs CPU; driver {:.0} µs)",
                    1.0 / per_pair(b),
                    cpu_pair(b),
                    driver_pair(b)
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let traffic = |b: &deviceuser_bench::console::Boards| {
        let frames: usize = b.frames_per_board.iter().sum();
        let events: usize = b.events_per_board.iter().sum();
        let bytes: usize = b.bytes_per_board.iter().sum();
        let (median_threads, max_threads) = board_threads(b);
        format!(
            "with {BOARDS} such boards {}; Asterisk's threads serving the {BOARDS} boards ran {:.2} µs per pair in all (median burst; max {:.2} µs), measured by the scheduler's own count per thread; each board received its {} login and logout events (state events beside them) in {:.0} frames on average ({:.0} login/logout events a frame), {:.2} MB per board in all: {:.2} MB of WebSocket payload for the {BOARDS} boards per burst",
            list(&b.bursts),
            median_threads,
            max_threads,
            r.events_expected,
            frames as f64 / b.frames_per_board.len().max(1) as f64,
            events as f64 / frames.max(1) as f64,
            bytes as f64 / b.bytes_per_board.len().max(1) as f64 / 1e6,
            bytes as f64 / CONSOLE_ROUNDS as f64 / 1e6
        )
    };
    let paints = match &r.first_paint {
        Ok(s) => s
            .iter()
            .map(|p| {
                format!(
                    "{} / {} / {} / {} / {}",
                    ms(p.script),
                    ms(p.board_sent),
                    ms(p.board_received),
                    ms(p.rendered),
                    ms(p.painted)
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
        Err(e) => e.clone(),
    };
    let lines = [
        format!("An instance with {CONSOLE_USERS} users and devices (`Custom:dev/N`, each with a cached state), every user logged in, the HTTP server on, one admin console user.\n"),
        format!(
            "- `GET api/board` (cookie session, one connection per request): median {} (min {}, max {}); Asterisk's CPU time per request {}.",
            ms(api),
            ms(r.board_api[0]),
            ms(*r.board_api.last().unwrap()),
            ms(r.board_cpu)
        ),
        format!("- First paint: a fresh load of the page in headless Chromium with the session cookie set; the page keeps only the rows in and near the window in the document, marks `board-rendered` when they are there and `board-painted` two animation frames later; the loads follow one another at once. Times from navigation start (the page's script run / `GET api/board` sent / its answer received / rendered / painted): {paints}."),
        format!(
            "- Feed latency: a WebSocket client on its own thread timestamps each frame as it arrives; the AMI session sends one logout or login at a time and waits for it. p50 {}, p90 {}, p99 {}, max {}.",
            ms(p50),
            ms(quantile(&r.feed_latency, 0.9)),
            ms(p99),
            ms(*r.feed_latency.last().unwrap_or(&Duration::ZERO))
        ),
        format!(
            "- Bursts ({PAIRS} logouts then {PAIRS} logins, pipelined on one AMI session), pairs/s per round, sorted, with Asterisk's CPU time per pair until idle and the driver's own (its AMI session, and with boards their {BOARDS} clients' threads, which read every frame; compressed frames are inflated after the burst, outside these figures): without boards {}. Compressed boards: {}. Plain boards: {}. The boards' clients run on the same cores as Asterisk.",
            list(&r.without_boards),
            traffic(&r.compressed),
            traffic(&r.plain),
        ),
    ];
    rep.detail("Console", lines.join("\n") + "\n");
    Ok(())
}

fn render(rep: &Report) -> String {
    let mut s = String::from("# res_deviceuser benchmark results\n\n");
    let _ = writeln!(
        s,
        "Generated by `scripts/bench.sh` on {}.\n",
        sh("date -u '+%Y-%m-%d %H:%M:%S UTC'")
    );
    let _ = writeln!(
        s,
        "| | |\n|---|---|\n| Asterisk | {} |\n| CPU | {} |\n| cores (nproc) | {} |\n| memory | {} |\n| kernel | {} |\n| module | `{}` (release build) |\n",
        fs::read_to_string(asterisk_dir().join("tree/.version"))
            .unwrap_or_default()
            .trim(),
        sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'"),
        sh("nproc"),
        sh("free -h | awk '/^Mem:/{print $2}'"),
        sh("uname -r"),
        module_file()
            .strip_prefix(repo())
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| module_file().display().to_string())
    );
    s.push_str(
        "Figures are measured, not asserted. Ratios compare res_deviceuser with a baseline measured \
         in the same run on the same machine; the driver runs on the same cores as Asterisk.\n\n\
         ## Summary\n\n| Measure | res_deviceuser | Baseline | Ratio | Target | Met |\n|---|---|---|---|---|---|\n",
    );
    for r in &rep.rows {
        let met = match r.met {
            Some(true) => "met",
            Some(false) => "**missed**",
            None => "–",
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {met} |",
            r.what, r.module, r.baseline, r.ratio, r.target
        );
    }
    s.push_str("\n## Details\n\n");
    for d in &rep.details {
        s.push_str(d);
        s.push('\n');
    }
    s
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut only: Option<Vec<String>> = None;
    let mut out = repo().join("bench/results.md");
    let mut e2e_reps = 3usize;
    let mut e2e_cycles = e2e::CYCLES;
    let mut e2e_modules: Vec<(String, std::path::PathBuf)> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--only" => {
                only = args
                    .get(i + 1)
                    .map(|v| v.split(',').map(str::to_string).collect());
                i += 2;
            }
            "--out" => {
                out = args.get(i + 1).map(Into::into).unwrap_or(out);
                i += 2;
            }
            "--e2e-reps" => {
                e2e_reps = args
                    .get(i + 1)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(e2e_reps);
                i += 2;
            }
            "--e2e-module" => {
                // LABEL=PATH: repetitions alternate between the builds named (before/after).
                if let Some((l, p)) = args.get(i + 1).and_then(|v| v.split_once('=')) {
                    e2e_modules.push((l.to_string(), std::path::PathBuf::from(p)));
                }
                i += 2;
            }
            "--e2e-cycles" => {
                e2e_cycles = args
                    .get(i + 1)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(e2e_cycles);
                i += 2;
            }
            other => {
                eprintln!("usage: deviceuser-bench [--only fanout,e2e,overhead,login,reload,scale,hints-scale,table,console] [--e2e-reps N] [--e2e-cycles N] [--e2e-module LABEL=PATH]... [--out FILE] (got {other})");
                std::process::exit(2);
            }
        }
    }
    let want = |s: &str| only.as_ref().is_none_or(|o| o.iter().any(|x| x == s));
    let mut rep = Report::default();
    let started = Instant::now();
    let mut failures = Vec::new();

    if want("e2e") || want("fanout") {
        // The other scenarios install the module DEVICEUSER_MODULE names (or the release
        // build): put it back after the end-to-end instances.
        let module_env = std::env::var_os("DEVICEUSER_MODULE");
        if e2e_modules.is_empty() {
            e2e_modules.push((String::new(), module_file()));
        }
        let mut groups: Vec<(String, Vec<e2e::Repetition>)> = e2e_modules
            .iter()
            .map(|(l, _)| (l.clone(), Vec::new()))
            .collect();
        for r in 1..=e2e_reps {
            for (k, (label, path)) in e2e_modules.iter().enumerate() {
                // Instances read the module to install from DEVICEUSER_MODULE.
                std::env::set_var("DEVICEUSER_MODULE", path);
                match e2e::repetition(r, e2e_cycles) {
                    Ok(x) => groups[k].1.push(x),
                    Err(e) => {
                        failures.push(format!("end-to-end fan-out {label}, instance {r}: {e}"))
                    }
                }
            }
        }
        match &module_env {
            Some(m) => std::env::set_var("DEVICEUSER_MODULE", m),
            None => std::env::remove_var("DEVICEUSER_MODULE"),
        }
        let (lines, detail) = e2e::report(&groups);
        for l in lines {
            rep.row(&l.what, l.module, l.baseline, l.ratio, &l.target, l.met);
        }
        if groups.iter().any(|g| !g.1.is_empty()) {
            rep.detail(
                "1e. Device-state fan-out end to end (one instance, unfiltered AMI)",
                detail,
            );
        }
    }
    let php = if want("fanout") || want("login") {
        php_start()
    } else {
        None
    };
    let module = if want("fanout") || want("login") {
        match module_instance(&mut rep, want("fanout"), true) {
            Ok(m) => Some(m),
            Err(e) => {
                failures.push(format!("module instance: {e}"));
                None
            }
        }
    } else {
        None
    };
    let baseline = if want("fanout") || want("overhead") || want("login") {
        match baseline_instance(want("fanout"), want("overhead"), want("login")) {
            Ok(b) => Some(b),
            Err(e) => {
                failures.push(format!("baseline instance: {e}"));
                None
            }
        }
    } else {
        None
    };
    if let (Some(m), Some(b)) = (&module, &baseline) {
        fanout_rows(&mut rep, m, b);
    }
    if let Some(b) = &baseline {
        overhead_rows(&mut rep, b);
    }
    if let Some(m) = &module {
        login_rows(&mut rep, m, baseline.as_ref(), php);
        hint_rows(&mut rep, m, baseline.as_ref());
    }
    if want("reload") {
        reload_rows(&mut rep, &mut failures);
    }
    if want("scale") {
        if let Err(e) = scale(&mut rep) {
            failures.push(format!("scale: {e}"));
        }
    }
    if want("hints-scale") {
        if let Err(e) = hints_scale(&mut rep) {
            failures.push(format!("hints-scale: {e}"));
        }
    }
    if want("table") {
        table(&mut rep);
    }
    if want("console") {
        if let Err(e) = console(&mut rep) {
            failures.push(format!("console: {e}"));
        }
    }
    if !failures.is_empty() {
        rep.detail(
            "Scenarios that could not run",
            failures.iter().map(|f| format!("- {f}\n")).collect(),
        );
    }
    let _ = writeln!(
        rep.details.last_mut().unwrap_or(&mut String::new()),
        "\nDriver run time: {:.0} s.",
        started.elapsed().as_secs_f64()
    );
    let text = render(&rep);
    if let Err(e) = fs::write(&out, &text) {
        eprintln!("cannot write {}: {e}", out.display());
        std::process::exit(1);
    }
    print!("{text}");
    for f in &failures {
        eprintln!("[bench] FAILED: {f}");
    }
    if !failures.is_empty() {
        std::process::exit(1);
    }
}
