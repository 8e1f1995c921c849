//! Two Asterisk nodes sharing one PostgreSQL (`storage = realtime`): a user logged in on
//! node A shows on node B's hints and BLF watchers and rings from B; logouts, a killed node,
//! a restart, races and a storm with the database stopped and started again.
//!
//! Devices 1000 and 1001 (and the fixed 2010) are node a's, 1002 is node b's; every node
//! runs the sample dialplan and users. The node's name comes from `systemname`.
mod common;
mod hotdesk_common;

use std::time::Duration;

use common::cluster::{peer_pjsip, realtime_confs, start_node, NodeSpec, Postgres};
use common::sip::{Baresip, Sipp};
use common::Asterisk;
use hotdesk_common::{self as hd, LONG};

/// `[general]` lines every node gets.
const CLUSTER_GENERAL: &str = "storage = realtime\nnode_timeout = 4\nrealtime_refresh = 1";

/// Calls from the other node arrive here: dial the local device named in the request.
const FROM_NODES: &str = "
[from-nodes]
exten => _X.,1,Dial(PJSIP/${EXTEN},30)
 same => n,Hangup()
";

/// The sample res_deviceuser.conf with the devices placed on nodes and `general` added.
fn deviceuser_conf(general: &str) -> String {
    let mut conf = hd::deviceuser_conf_with_general(&format!("{CLUSTER_GENERAL}\n{general}"));
    for (device, node) in [("1000", "a"), ("1001", "a"), ("1002", "b"), ("2010", "a")] {
        let header = format!("[{device}]\ntype = device\n");
        let placed = format!("[{device}]\ntype = device\nnode = {node}\n");
        assert!(conf.contains(&header), "no device {device} in the sample");
        conf = conf.replacen(&header, &placed, 1);
    }
    conf
}

struct Cluster {
    // Declared first: dropped last, after both nodes stopped.
    a: Asterisk,
    b: Asterisk,
    pg: Postgres,
}

impl Cluster {
    fn start(name: &str) -> Cluster {
        Self::start_with(name, "")
    }

    /// Both nodes with extra `[general]` lines.
    fn start_with(name: &str, general: &str) -> Cluster {
        Self::start_full(name, general, "")
    }

    /// Both nodes with extra `[general]` lines and extra sections of res_deviceuser.conf.
    fn start_full(name: &str, general: &str, sections: &str) -> Cluster {
        Self::start_opts(name, general, sections, "")
    }

    /// [`Cluster::start_full`] with extra lines in both nodes' pjsip.conf.
    fn start_opts(name: &str, general: &str, sections: &str, pjsip: &str) -> Cluster {
        let pg = Postgres::start(name);
        let specs = [NodeSpec::new("a", 0x0a), NodeSpec::new("b", 0x0b)];
        let node = |i: usize| {
            let (me, peer) = (&specs[i], &specs[1 - i]);
            let mut b = hd::builder(&format!("{name}-{}", me.name))
                .conf(
                    "res_deviceuser.conf",
                    &format!("{}\n{sections}", deviceuser_conf(general)),
                )
                .conf(
                    "pjsip.conf",
                    &format!(
                        "{}\n{}\n{pjsip}",
                        hd::sample("pjsip.conf"),
                        peer_pjsip(me, peer)
                    ),
                )
                .conf(
                    "extensions.conf",
                    &format!("{}\n{FROM_NODES}", hd::test_dialplan()),
                );
            for (file, content) in realtime_confs(&pg) {
                b = b.conf(&file, &content);
            }
            start_node(b, me)
        };
        let a = node(0);
        let b = node(1);
        Cluster { a, b, pg }
    }
}

/// Waits until `prompt` played since `mark`, then types `digits`.
fn answer_prompt(phone: &mut Baresip, ast: &Asterisk, mark: usize, prompt: &str, digits: &str) {
    let ep = phone.endpoint.clone();
    assert!(
        hd::wait(|| ast.prompts_played(mark, &ep, prompt) >= 1),
        "prompt {prompt} never played on {ep}:\n{}",
        ast.log_since(mark)
    );
    phone.send_dtmf(digits);
}

/// The hint of `user` on `ast` reaches `state` (`core show hint`).
fn wait_hint(ast: &Asterisk, user: &str, state: &str) {
    hd::wait_hint(ast, user, state);
}

/// The node's cache shows exactly `want` as (user, device) pairs for `users`.
fn wait_bindings(ast: &Asterisk, users: &[&str], want: &[(&str, &str)]) {
    let ok = hd::wait(|| {
        let got: Vec<(String, String)> = hd::bindings(ast)
            .into_iter()
            .filter(|(u, _)| users.contains(&u.as_str()))
            .collect();
        got.iter()
            .map(|(u, d)| (u.as_str(), d.as_str()))
            .eq(want.iter().copied())
    });
    assert!(
        ok,
        "bindings of {users:?}: want {want:?}, got {:?}",
        hd::bindings(ast)
    );
}

#[test]
fn login_on_a_shows_and_rings_on_b() {
    let c = Cluster::start("cl-basic");
    let (a, b) = (&c.a, &c.b);
    // Phones of node a, registered there, answering calls.
    let phone_1000 = Sipp::uas(a, "1000");
    let mut phone_1001 = Baresip::start(a, "1001", false);
    // A BLF watcher on node b, subscribed to user 4101 as phone 1002.
    let watcher = Sipp::watcher(b, "1002", "4101");
    wait_hint(b, "4101", "Unavailable");
    assert!(
        watcher
            .wait_notify(0, "<basic>closed</basic>", LONG)
            .is_some(),
        "{}",
        watcher.report()
    );

    // AMI login on node a.
    a.ami().login_ok("4101", "1000");
    wait_hint(a, "4101", "Idle");
    wait_hint(b, "4101", "Idle");
    assert!(
        watcher
            .wait_notify(0, "<basic>open</basic>", LONG)
            .is_some(),
        "the watcher on b never saw 4101 open:\n{}",
        watcher.report()
    );
    assert_eq!(c.pg.bindings(), [("4101".into(), "1000".into())]);

    // Phone login on node a: *11, then user and PIN typed (RFC 4733) at the prompts.
    let mark = a.log_mark();
    phone_1001.dial_answered(a, "*11", LONG);
    answer_prompt(&mut phone_1001, a, mark, "agent-user", "4102#");
    answer_prompt(&mut phone_1001, a, mark, "agent-pass", "2345#");
    assert_eq!(
        hd::wait_status(a, mark, "1001", "UserLogin").as_deref(),
        Some("SUCCESS"),
        "{}",
        a.log_since(mark)
    );
    phone_1001.wait_event("CALL_CLOSED", LONG);
    wait_hint(b, "4102", "Idle");

    // Node b's cache learns the binding and dials the device through the trunk to a.
    wait_bindings(b, &["4101", "4102"], &[("4101", "1000"), ("4102", "1001")]);
    let mut ami_b = b.ami();
    // The caller on b must be logged in (the sample dialplan refuses calls from an empty
    // adhoc phone): a login on b, written to the same database.
    ami_b.login_ok("4103", "1002");
    wait_bindings(a, &["4103"], &[("4103", "1002")]);
    assert_eq!(
        ami_b.getvar("DEVICEUSER_DIAL(4101)", None).as_deref(),
        Some("PJSIP/1000@a")
    );
    let calls_before = phone_1000
        .sip_messages()
        .iter()
        .filter(|m| m.starts_with("INVITE"))
        .count();
    let mut call = Sipp::call(b, "1002", "4101");
    assert!(
        hd::wait(|| phone_1000
            .sip_messages()
            .iter()
            .filter(|m| m.starts_with("INVITE"))
            .count()
            > calls_before),
        "phone 1000 on a never rang for a call from b:\n{}\n{}",
        call.report(),
        a.log()
    );
    wait_hint(b, "4101", "InUse");
    b.cli("channel request hangup all");
    wait_hint(b, "4101", "Idle");
    call.kill();

    // Logout on node a: unavailable on b.
    assert_eq!(hd::logout(a, "1000"), "SUCCESS");
    wait_hint(b, "4101", "Unavailable");
    assert!(
        watcher
            .wait_notify(1, "<basic>closed</basic>", LONG)
            .is_some(),
        "{}",
        watcher.report()
    );
    wait_bindings(b, &["4101"], &[]);
    assert_eq!(
        c.pg.bindings(),
        [
            ("4102".into(), "1001".into()),
            ("4103".into(), "1002".into())
        ]
    );
}

#[test]
fn a_killed_node_shows_unavailable_on_the_other_and_resumes_from_the_database() {
    let mut c = Cluster::start("cl-kill");
    let _phone_1000 = Sipp::uas(&c.a, "1000");
    c.a.ami().login_ok("4101", "1000");
    c.a.ami().login_ok("4102", "1001");
    wait_hint(&c.b, "4101", "Idle");
    wait_bindings(
        &c.b,
        &["4101", "4102"],
        &[("4101", "1000"), ("4102", "1001")],
    );
    let mut ami_b = c.b.ami();
    assert_eq!(
        ami_b.getvar("DEVICEUSER_DIAL(4101)", None).as_deref(),
        Some("PJSIP/1000@a")
    );

    // kill -9 node a: its last states stay in b's cache until b sees no heartbeat for
    // node_timeout (4 s), checked once a second.
    let killed = std::time::Instant::now();
    c.a.kill9();
    wait_hint(&c.b, "4101", "Unavailable");
    let took = killed.elapsed();
    assert!(
        took <= Duration::from_secs(4 + 3),
        "b showed 4101 unavailable {took:?} after a died (node_timeout 4 s)"
    );
    assert!(
        c.b.wait_log("node a is down", LONG),
        "no 'node a is down' line on b"
    );
    assert_eq!(c.b.stats_counter("Nodes down"), "a");
    // b no longer dials a's devices; the bindings themselves stay (a may come back).
    assert_eq!(
        ami_b.getvar("DEVICEUSER_DIAL(4101)", None).as_deref(),
        Some("")
    );
    wait_bindings(
        &c.b,
        &["4101", "4102"],
        &[("4101", "1000"), ("4102", "1001")],
    );

    // a comes back: it reads its bindings from the database and shows them again.
    c.a.start_again().expect("restart of a");
    wait_bindings(
        &c.a,
        &["4101", "4102"],
        &[("4101", "1000"), ("4102", "1001")],
    );
    wait_hint(&c.a, "4101", "Idle");
    wait_hint(&c.b, "4101", "Idle");
    assert!(hd::wait(|| ami_b
        .getvar("DEVICEUSER_DIAL(4101)", None)
        .as_deref()
        == Some("PJSIP/1000@a")));
    assert!(c.b.wait_log("node a is up again", LONG));
    assert_eq!(
        c.pg.bindings(),
        [
            ("4101".into(), "1000".into()),
            ("4102".into(), "1001".into())
        ]
    );
}

#[test]
fn two_nodes_racing_to_log_the_same_user_in_exactly_one_wins() {
    let c = Cluster::start_with("cl-race", "multiple_logins = no");
    let (mut ami_a, mut ami_b) = (c.a.ami(), c.b.ami());
    for round in 0..10 {
        let user = "4105";
        let barrier = std::sync::Barrier::new(2);
        let (ra, rb) = std::thread::scope(|s| {
            let ha = s.spawn(|| {
                barrier.wait();
                ami_a.action(&[
                    ("Action", "DeviceUserLogin"),
                    ("User", user),
                    ("Device", "1001"),
                ])
            });
            let hb = s.spawn(|| {
                barrier.wait();
                ami_b.action(&[
                    ("Action", "DeviceUserLogin"),
                    ("User", user),
                    ("Device", "1002"),
                ])
            });
            (ha.join().unwrap(), hb.join().unwrap())
        });
        let wins = [&ra, &rb].iter().filter(|r| r.is_success()).count();
        assert_eq!(wins, 1, "round {round}: a said {ra}, b said {rb}");
        let loser = if ra.is_success() { &rb } else { &ra };
        assert!(
            loser
                .val("Message")
                .contains("already logged in on another device"),
            "round {round}: the loser's error: {loser}"
        );
        let rows: Vec<_> =
            c.pg.bindings()
                .into_iter()
                .filter(|(u, _)| u == user)
                .collect();
        assert_eq!(rows.len(), 1, "round {round}: {rows:?}");
        let winner_device = if ra.is_success() { "1001" } else { "1002" };
        assert_eq!(rows[0].1, winner_device);
        wait_bindings(&c.a, &[user], &[(user, winner_device)]);
        wait_bindings(&c.b, &[user], &[(user, winner_device)]);
        // Log out from the node that did not log in: a write against its cache.
        let other = if ra.is_success() {
            &mut ami_b
        } else {
            &mut ami_a
        };
        other.logout_ok(user);
        assert!(c.pg.bindings().iter().all(|(u, _)| u != user));
        wait_bindings(&c.a, &[user], &[]);
        wait_bindings(&c.b, &[user], &[]);
    }
}

#[test]
fn with_the_database_down_logins_are_refused_and_reads_keep_serving() {
    let mut c = Cluster::start("cl-dbdown");
    let _phone_1000 = Sipp::uas(&c.a, "1000");
    let _phone_1001 = Sipp::uas(&c.a, "1001");
    c.a.ami().login_ok("4101", "1000");
    wait_hint(&c.b, "4101", "Idle");
    wait_bindings(&c.b, &["4101"], &[("4101", "1000")]);

    c.pg.stop();
    assert!(
        hd::wait(|| c.a.stats_counter("Node").contains("does not answer")),
        "{}",
        c.a.cli("deviceuser show stats summary")
    );
    let mut ami_a = c.a.ami();
    // AMI: an error that says why; nothing changed.
    let r = ami_a.action(&[
        ("Action", "DeviceUserLogin"),
        ("User", "4102"),
        ("Device", "1001"),
    ]);
    assert!(
        !r.is_success(),
        "login acknowledged with the database down: {r}"
    );
    assert!(r.val("Message").contains("database is unavailable"), "{r}");
    let r = ami_a.action(&[("Action", "DeviceUserLogout"), ("User", "4101")]);
    assert!(
        !r.is_success(),
        "logout acknowledged with the database down: {r}"
    );
    // Phone: the caller hears "I'm sorry. Please try again."; the status says it.
    let mark = c.a.log_mark();
    assert_eq!(hd::login(&c.a, "1001", "4102", "2345"), "UNAVAILABLE");
    assert_eq!(c.a.prompts_played(mark, "1001", "please-try-again"), 1);
    // Reads keep serving from the cache, on both nodes.
    wait_bindings(&c.a, &["4101", "4102"], &[("4101", "1000")]);
    wait_bindings(&c.b, &["4101", "4102"], &[("4101", "1000")]);
    assert_eq!(
        c.b.ami().getvar("DEVICEUSER_DIAL(4101)", None).as_deref(),
        Some("PJSIP/1000@a")
    );
    wait_hint(&c.b, "4101", "Idle");
    assert!(c.a.log().contains("realtime storage unavailable"));

    // The database is back: logins go through again.
    c.pg.start_again();
    let ok = hd::wait(|| {
        ami_a
            .action(&[
                ("Action", "DeviceUserLogin"),
                ("User", "4102"),
                ("Device", "1001"),
            ])
            .is_success()
    });
    assert!(ok, "no login went through after the database came back");
    wait_hint(&c.b, "4102", "Idle");
    assert_eq!(
        c.pg.bindings(),
        [
            ("4101".into(), "1000".into()),
            ("4102".into(), "1001".into())
        ]
    );
}

/// Storm devices per node: `s<node><n>`, dialled as Custom states (set idle on their node).
const STORM_DEVICES: usize = 6;
const STORM_USERS: [&str; 10] = [
    "4101", "4102", "4103", "4104", "4105", "4106", "4107", "4108", "4109", "4110",
];

fn storm_devices(node: &str) -> Vec<String> {
    (0..STORM_DEVICES).map(|n| format!("s{node}{n}")).collect()
}

fn storm_sections() -> String {
    let mut s = String::new();
    for node in ["a", "b"] {
        for d in storm_devices(node) {
            s.push_str(&format!(
                "[{d}]\ntype = device\nnode = {node}\ndial = Custom:storm/{d}\n\n"
            ));
        }
    }
    s
}

/// What one node's storm did to one of its devices.
#[derive(Default, Clone, Debug)]
struct DeviceHistory {
    /// The user after the last acknowledged operation (an error that is not about storage,
    /// such as logging out an empty device, acknowledges the device's state too).
    acked: Option<String>,
    /// Outcomes of operations refused by the storage after it (each may or may not have
    /// reached the database before the connection broke).
    maybe: Vec<Option<String>>,
}

struct StormReport {
    devices: std::collections::BTreeMap<String, DeviceHistory>,
    acked: usize,
    /// Acknowledged operations that changed a binding (written to the database).
    changed: usize,
    refused: usize,
}

/// Random logins and logouts of `node`'s own devices over one AMI session until `stop`.
fn storm_node(
    ast: &Asterisk,
    node: &str,
    seed: u64,
    stop: &std::sync::atomic::AtomicBool,
) -> StormReport {
    let devices = storm_devices(node);
    let mut report = StormReport {
        devices: devices
            .iter()
            .map(|d| (d.clone(), DeviceHistory::default()))
            .collect(),
        acked: 0,
        changed: 0,
        refused: 0,
    };
    let mut ami = ast.ami();
    let mut x = seed | 1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let device = &devices[(next() % devices.len() as u64) as usize];
        let (r, outcome) = if next() % 10 < 6 {
            let user = STORM_USERS[(next() % STORM_USERS.len() as u64) as usize];
            let r = ami.try_action(&[
                ("Action", "DeviceUserLogin"),
                ("User", user),
                ("Device", device),
            ]);
            (r, Some(user.to_string()))
        } else {
            let r = ami.try_action(&[("Action", "DeviceUserLogout"), ("Device", device)]);
            (r, None)
        };
        let r = r.unwrap_or_else(|e| panic!("AMI on node {node}: {e}"));
        let h = report.devices.get_mut(device).unwrap();
        let message = r.val("Message").to_string();
        if r.is_success() || message.contains("not logged in") {
            h.acked = outcome;
            h.maybe.clear();
            report.acked += 1;
            report.changed += usize::from(r.is_success());
        } else if message.contains("database is unavailable") || message.contains("another node") {
            h.maybe.push(outcome);
            report.refused += 1;
        } else {
            panic!("node {node}: unexpected answer {r}");
        }
    }
    report
}

/// `(user, device)` pairs of a node's cache, storm devices only.
fn storm_bindings(ast: &Asterisk) -> Vec<(String, String)> {
    hd::bindings(ast)
        .into_iter()
        .filter(|(_, d)| d.starts_with('s'))
        .collect()
}

/// Sets its flag when dropped, on a panic as well.
struct SetOnDrop<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

#[test]
fn storm_on_both_nodes_with_the_database_stopped_and_started_again() {
    let seconds: u64 = std::env::var("DEVICEUSER_CLUSTER_STORM_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120);
    let mut c = Cluster::start_full("cl-storm", "", &storm_sections());
    for (ast, node) in [(&c.a, "a"), (&c.b, "b")] {
        for d in storm_devices(node) {
            ast.cli(&format!("devstate change Custom:storm/{d} NOT_INUSE"));
        }
    }
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (ra, rb) = std::thread::scope(|s| {
        let ha = s.spawn(|| storm_node(&c.a, "a", 0x9e37_79b9_7f4a_7c15, &stop));
        let hb = s.spawn(|| storm_node(&c.b, "b", 0xd1b5_4a32_d192_ed03, &stop));
        // A failure below ends the storms too, so the scope can end and report it.
        let _end_storms = SetOnDrop(&stop);
        // The database goes away for 3 s a third of the way through, and comes back.
        std::thread::sleep(Duration::from_secs(seconds / 3));
        c.pg.stop();
        std::thread::sleep(Duration::from_secs(3));
        c.pg.start_again();
        std::thread::sleep(Duration::from_secs(seconds.saturating_sub(seconds / 3)));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (ha.join().unwrap(), hb.join().unwrap())
    });
    eprintln!(
        "storm of {seconds} s: node a {} acknowledged ({} changed a binding), {} refused; node b {} acknowledged ({} changed a binding), {} refused",
        ra.acked, ra.changed, ra.refused, rb.acked, rb.changed, rb.refused
    );
    assert!(
        ra.changed > 50 && rb.changed > 50,
        "too few operations went through the database"
    );
    assert!(
        ra.refused + rb.refused > 0,
        "no operation met the stopped database"
    );

    // No acknowledged operation is lost: each device holds what its last acknowledged
    // operation left, or what a later refused one would have.
    let db = c.pg.bindings();
    let held = |device: &str| db.iter().find(|(_, d)| d == device).map(|(u, _)| u.clone());
    for (device, h) in ra.devices.iter().chain(&rb.devices) {
        let now = held(device);
        assert!(
            now == h.acked || h.maybe.contains(&now),
            "device {device}: the database holds {now:?}, the last acknowledged operation left {:?} (refused after it: {:?})",
            h.acked,
            h.maybe
        );
    }
    // Both caches come to what the database holds.
    let want: Vec<(String, String)> = db
        .iter()
        .filter(|(_, d)| d.starts_with('s'))
        .cloned()
        .collect();
    for ast in [&c.a, &c.b] {
        let ok = hd::wait(|| storm_bindings(ast) == want);
        assert!(ok, "cache {:?} != database {want:?}", storm_bindings(ast));
    }
    // AstDB holds no bindings with realtime storage.
    for ast in [&c.a, &c.b] {
        let out = ast.cli("database show deviceuser/binding");
        assert!(out.contains("0 results found"), "{out}");
    }
    // Both nodes' hints agree: Idle for a user bound somewhere, Unavailable otherwise.
    for user in STORM_USERS {
        let bound = db.iter().any(|(u, _)| u == user);
        let state = if bound { "Idle" } else { "Unavailable" };
        wait_hint(&c.a, user, state);
        wait_hint(&c.b, user, state);
    }
}

/// SQL inserting a res_deviceuser.conf text into the static realtime table, sections in
/// file order (Asterisk reads them by descending `cat_metric`).
fn config_rows_sql(conf: &str) -> String {
    let mut sql = String::new();
    let (mut section, mut cat, mut var) = (String::new(), 10_000, 0);
    for line in conf.lines() {
        let line = line.split(';').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
            cat -= 1;
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        var += 1;
        let q = |s: &str| s.trim().trim_start_matches('>').trim().replace('\'', "''");
        sql.push_str(&format!(
            "INSERT INTO deviceuser_config (cat_metric, var_metric, category, var_name, var_val) VALUES ({cat}, {var}, '{}', '{}', '{}');\n",
            q(&section),
            q(k),
            q(v)
        ));
    }
    sql
}

#[test]
fn users_and_devices_from_the_database_with_the_same_validation() {
    let pg = Postgres::start("cl-static");
    // The whole res_deviceuser.conf in the database, with a user the file does not have.
    let conf = format!(
        "{}\n[4199]\ntype = user\npassword = 9999\n",
        deviceuser_conf("")
    );
    pg.psql(&config_rows_sql(&conf));
    let spec = NodeSpec::new("a", 0x0a);
    let mut b = hd::builder("cl-static-a").conf("res_deviceuser.conf", &deviceuser_conf(""));
    for (file, content) in realtime_confs(&pg) {
        let content = if file == "extconfig.conf" {
            format!("{content}res_deviceuser.conf => pgsql,general,deviceuser_config\n")
        } else {
            content
        };
        b = b.conf(&file, &content);
    }
    let a = start_node(b, &spec);
    let users = a.cli("deviceuser show users");
    assert!(
        users.contains("4199"),
        "user 4199 from the database is missing:\n{users}"
    );

    // A bad row: the same error as from the file (section, key, what is wrong), and the
    // running configuration stays.
    pg.psql(
        "INSERT INTO deviceuser_config (cat_metric, var_metric, category, var_name, var_val) VALUES (1, 1, '4198', 'type', 'user'), (1, 2, '4198', 'max_login_time', 'soon');",
    );
    let mark = a.log_mark();
    a.cli("module reload res_deviceuser.so");
    assert!(
        a.wait_log_since(mark, "[4198] max_login_time: bad value \"soon\"", LONG),
        "{}",
        a.log_since(mark)
    );
    assert!(a
        .log_since(mark)
        .contains("keeping the running configuration"));
    assert!(a.cli("deviceuser show users").contains("4199"));

    // Fixed in the database: picked up by the next reload.
    pg.psql("UPDATE deviceuser_config SET var_val = '3600' WHERE category = '4198' AND var_name = 'max_login_time';");
    let mark = a.log_mark();
    a.cli("module reload res_deviceuser.so");
    assert!(
        a.wait_log_since(mark, "reloaded res_deviceuser.conf", LONG),
        "{}",
        a.log_since(mark)
    );
    assert!(a.cli("deviceuser show users").contains("4198"));
    // Logins work on the configuration read from the database.
    a.ami().login_ok("4199", "1000");
    assert_eq!(pg.bindings(), [("4199".into(), "1000".into())]);
}

#[test]
fn a_lockout_holds_on_every_node() {
    let c = Cluster::start_with("cl-lockout", "max_login_failures = 3\nlockout_window = 300");
    // Two wrong PINs on node a, one on node b: locked everywhere.
    assert_eq!(hd::login(&c.a, "1000", "4104", "0000"), "FAILED");
    assert_eq!(hd::login(&c.a, "1001", "4104", "0000"), "FAILED");
    assert_eq!(hd::login(&c.b, "1002", "4104", "0000"), "LOCKED");
    assert!(c.b.log().contains("user 4104 locked out"));
    // The right PIN is refused on node a too, whose own count (2) is below the limit.
    assert_eq!(hd::login(&c.a, "1000", "4104", "4567"), "LOCKED");
    assert!(c.pg.bindings().is_empty());
    // Another user is not concerned; a right PIN clears that user's count everywhere.
    assert_eq!(hd::login(&c.b, "1002", "4105", "0000"), "FAILED");
    assert_eq!(hd::login(&c.a, "1000", "4105", "5678"), "SUCCESS");
    assert_eq!(
        c.pg.psql("SELECT count(*) FROM deviceuser_pin_failures WHERE userid = '4105'")
            .trim(),
        "0"
    );
}

/// Devices of the benchmark, all on node a, dialled as Custom states set idle.
const BENCH_DEVICES: usize = 64;

fn bench_sections(node: Option<&str>) -> String {
    (0..BENCH_DEVICES)
        .map(|n| {
            let node = node.map(|x| format!("node = {x}\n")).unwrap_or_default();
            format!("[ba{n}]\ntype = device\n{node}dial = Custom:bench/ba{n}\n\n")
        })
        .collect()
}

fn quantiles(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    v.sort();
    let q = |p: f64| v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1];
    (q(0.5), q(0.99), *v.last().unwrap())
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Login+logout pairs over `sessions` AMI sessions at once, each pipelining its pairs on its
/// own devices; pairs per second.
fn pairs_per_second(ast: &Asterisk, sessions: usize, pairs_each: usize) -> f64 {
    use common::ami::act;
    let started = std::time::Instant::now();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..sessions)
            .map(|k| {
                s.spawn(move || {
                    let mut ami = common::Ami::connect_with_events(
                        ast.ami_port,
                        "deviceuser",
                        "deviceuser",
                        "off",
                    )
                    .expect("AMI");
                    let mut actions = Vec::new();
                    for i in 0..pairs_each {
                        let device =
                            format!("ba{}", k + sessions * (i % (BENCH_DEVICES / sessions)));
                        let user = STORM_USERS[i % STORM_USERS.len()];
                        actions.push(act(&[
                            ("Action", "DeviceUserLogin"),
                            ("User", user),
                            ("Device", &device),
                        ]));
                        actions.push(act(&[("Action", "DeviceUserLogout"), ("Device", &device)]));
                    }
                    let b = ami.pipeline(&actions).expect("pipeline");
                    assert_eq!(b.failed, 0, "{:?}", b.first_failure);
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
    (sessions * pairs_each) as f64 / started.elapsed().as_secs_f64()
}

/// One throughput run: pairs per second, the CPU time each process spent per pair (µs) and
/// the load average after it; as a median of runs, with the lowest and highest rates.
struct Run {
    rate: f64,
    low: f64,
    high: f64,
    /// Per pair, by the processes given to [`Run::measure`].
    cpu: Vec<f64>,
    /// Per pair, by PostgreSQL (the server and its connections' processes).
    pg: f64,
    load: String,
}

impl Run {
    /// Runs `f`, which makes `pairs` pairs; `pg` is PostgreSQL's PID (0: none).
    fn measure(pairs: usize, pids: &[u32], pg: u32, f: impl FnOnce()) -> Run {
        use common::process::{cpu_seconds, tree_cpu_seconds};
        let pg_cpu = || if pg == 0 { 0.0 } else { tree_cpu_seconds(pg) };
        let before: Vec<f64> = pids.iter().map(|p| cpu_seconds(*p)).collect();
        let pg_before = pg_cpu();
        let t = std::time::Instant::now();
        f();
        let rate = pairs as f64 / t.elapsed().as_secs_f64();
        let per_pair = |s: f64| s * 1e6 / pairs as f64;
        let cpu = (pids.iter().zip(&before))
            .map(|(p, b)| per_pair(cpu_seconds(*p) - b))
            .collect();
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        Run {
            rate,
            low: rate,
            high: rate,
            cpu,
            pg: per_pair(pg_cpu() - pg_before),
            load: load.split_whitespace().next().unwrap_or("?").to_string(),
        }
    }

    /// The run of median rate, with the range of all.
    fn median(mut runs: Vec<Run>) -> Run {
        runs.sort_by(|x, y| x.rate.total_cmp(&y.rate));
        let (low, high) = (runs[0].rate, runs[runs.len() - 1].rate);
        let mut m = runs.swap_remove(runs.len() / 2);
        (m.low, m.high) = (low, high);
        m
    }
}

/// What node a sends PostgreSQL for `sessions × pairs_each` pairs, as PostgreSQL logged it:
/// the statements per pair by kind, and their median duration in the server.
fn statements_per_pair(c: &Cluster, sessions: usize, pairs_each: usize) -> String {
    let set = |v: &str| {
        c.pg.psql(&format!(
            "ALTER SYSTEM SET log_min_duration_statement = {v}"
        ));
        c.pg.psql("SELECT pg_reload_conf()");
        std::thread::sleep(Duration::from_millis(300));
    };
    set("0");
    let mark = c.pg.log().len();
    pairs_per_second(&c.a, sessions, pairs_each);
    set("-1");
    let log = c.pg.log();
    let (mut kinds, mut durations) = (std::collections::BTreeMap::new(), Vec::new());
    for line in log[mark..].lines() {
        let Some((head, stmt)) = line.split_once(" ms  statement: ") else {
            continue;
        };
        if stmt.contains("log_min_duration_statement") || stmt.contains("pg_reload_conf") {
            continue;
        }
        let kind = stmt.split(" WHERE").next().unwrap_or(stmt);
        let kind = kind
            .split(" (")
            .next()
            .unwrap_or(kind)
            .split(" SET")
            .next()
            .unwrap_or(kind);
        *kinds.entry(kind.to_string()).or_insert(0usize) += 1;
        if let Some(d) = head
            .rsplit("duration: ")
            .next()
            .and_then(|d| d.parse::<f64>().ok())
        {
            durations.push(d);
        }
    }
    durations.sort_by(f64::total_cmp);
    let pairs = (sessions * pairs_each) as f64;
    let kinds: Vec<String> = kinds
        .iter()
        .map(|(k, n)| format!("`{k}` {:.2}", *n as f64 / pairs))
        .collect();
    format!(
        "per pair {}; median duration in the server {:.3} ms",
        kinds.join(", "),
        durations.get(durations.len() / 2).copied().unwrap_or(0.0)
    )
}

/// The benchmark of several nodes: `scripts/bench.sh` runs it (`--only cluster`); it writes
/// `docs/cluster-benchmark.md`. Nothing is asserted about times.
#[test]
#[ignore]
fn cluster_benchmark() {
    use common::sip::{basic, latency, Watcher};
    let watcher_endpoint = "[watcher](phone)\naors=watcher\n[watcher](phone-aor)\n";
    let c = Cluster::start_opts("cl-bench", "", &bench_sections(Some("a")), watcher_endpoint);
    for n in 0..BENCH_DEVICES {
        c.a.cli(&format!("devstate change Custom:bench/ba{n} NOT_INUSE"));
    }
    let mut report = String::new();

    // 1. Login on a -> NOTIFY at a watcher subscribed on b.
    let dir = c.b.run.join("bench-watcher");
    let watcher = Watcher::subscribe(&dir, c.b.sip_port, "watcher", "4101").expect("watcher");
    let mut ami_a = c.a.ami();
    let (mut logins, mut logouts) = (Vec::new(), Vec::new());
    let wait_basic = |want: &str| loop {
        let n = watcher
            .next(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("no NOTIFY {want}"));
        if basic(&n.body) == want {
            return n;
        }
    };
    for _ in 0..200 {
        let sent = std::time::SystemTime::now();
        ami_a.login_ok("4101", "ba0");
        logins.push(latency(sent, &wait_basic("open")));
        let sent = std::time::SystemTime::now();
        ami_a.logout_ok("4101");
        logouts.push(latency(sent, &wait_basic("closed")));
    }
    let (l50, l99, lmax) = quantiles(logins);
    let (o50, o99, omax) = quantiles(logouts);
    report.push_str(&format!(
        "| Login on a → NOTIFY at a watcher on b (200 logins) | {} | {} | {} |\n\
         | Logout on a → NOTIFY on b (200 logouts) | {} | {} | {} |\n",
        ms(l50),
        ms(l99),
        ms(lmax),
        ms(o50),
        ms(o99),
        ms(omax)
    ));

    // 2. DEVICEUSER_DIAL on b of a user bound on a (AMI Getvar round trips), against the
    // round trip of a Getvar of a global variable.
    ami_a.login_ok("4102", "ba1");
    wait_bindings(&c.b, &["4102"], &[("4102", "ba1")]);
    let mut ami_b = c.b.ami();
    ami_b.setvar_ok("BENCHVAR", "x");
    let mut time_getvar = |var: &str, want: &str| {
        let mut v = Vec::new();
        for _ in 0..2000 {
            let t = std::time::Instant::now();
            let got = ami_b.getvar(var, None);
            v.push(t.elapsed());
            assert_eq!(got.as_deref(), Some(want));
        }
        quantiles(v)
    };
    let (d50, d99, dmax) = time_getvar("DEVICEUSER_DIAL(4102)", "PJSIP/ba1@a");
    let (g50, g99, gmax) = time_getvar("BENCHVAR", "x");
    report.push_str(&format!(
        "| `DEVICEUSER_DIAL` on b of a user on a: AMI Getvar round trip (2,000) | {} | {} | {} |\n\
         | Baseline: AMI Getvar of a global variable (2,000) | {} | {} | {} |\n",
        ms(d50),
        ms(d99),
        ms(dmax),
        ms(g50),
        ms(g99),
        ms(gmax)
    ));
    ami_a.logout_ok("4102");

    // 3. Login+logout throughput, each figure the median of three runs with the CPU each
    // process spent per pair (the machine is shared: runs of different kinds alternate).
    let pg_pid = c.pg.pid().expect("PostgreSQL runs");
    let pg_version = c.pg.psql("SHOW server_version").trim().to_string();
    // What PostgreSQL receives per pair: every statement logged for 400 pairs.
    let statements = statements_per_pair(&c, 4, 100);
    // The ceiling of one connection: the same statements from psql, one after the other.
    let sql: String = (0..2000)
        .map(|i| {
            let d = format!("psql{}", i % BENCH_DEVICES);
            format!(
                "INSERT INTO deviceuser_bindings (device, userid, since, exclusive, node) VALUES ('{d}', '4101', '1', '0', 'a');\n\
                 DELETE FROM deviceuser_bindings WHERE device = '{d}' AND userid = '4101';\n"
            )
        })
        .collect();
    let file = c.pg.dir.join("pairs.sql");
    std::fs::write(&file, sql).unwrap();
    let psql_run = || Run::measure(2000, &[], pg_pid, || c.pg.psql_file(&file));
    let realtime_run = || {
        Run::measure(4 * 500, &[c.a.pid, c.b.pid], pg_pid, || {
            pairs_per_second(&c.a, 4, 500);
        })
    };
    let (mut distributed, mut alone, mut psql) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        distributed.push(realtime_run());
        psql.push(psql_run());
    }
    // The database path alone: no node distributes its states.
    for node in [&c.a, &c.b] {
        node.cli("module unload res_pjsip_publish_asterisk.so");
        let left = node.cli("module show like res_pjsip_publish_asterisk");
        assert!(left.contains("0 modules loaded"), "{left}");
    }
    for _ in 0..3 {
        alone.push(realtime_run());
        psql.push(psql_run());
    }
    drop((c, watcher));
    let astdb_conf = format!("{}\n{}", hd::sample_deviceuser_conf(), bench_sections(None));
    let astdb = hd::builder("cl-bench-astdb")
        .conf("res_deviceuser.conf", &astdb_conf)
        .start();
    // Pipelined, and one pair at a time (each action waits for its answer): commits that
    // come one by one, as they do when each waits for the database, cost each their own
    // batch of deferred work (publishing the user's state).
    let (mut astdb_runs, mut one_by_one) = (Vec::new(), Vec::new());
    let mut ami = astdb.ami();
    for _ in 0..3 {
        astdb_runs.push(Run::measure(4 * 500, &[astdb.pid], 0, || {
            pairs_per_second(&astdb, 4, 500);
        }));
        one_by_one.push(Run::measure(1000, &[astdb.pid], 0, || {
            for i in 0..1000 {
                let user = STORM_USERS[i % STORM_USERS.len()];
                ami.login_ok(user, &format!("ba{}", i % BENCH_DEVICES));
                ami.logout_ok(user);
            }
        }));
    }
    let (distributed, alone) = (Run::median(distributed), Run::median(alone));
    let (psql, astdb_run) = (Run::median(psql), Run::median(astdb_runs));
    let one_by_one = Run::median(one_by_one);
    let na = "–".to_string();
    let us = |v: Option<f64>| v.map_or(na.clone(), |v| format!("{v:.0} µs"));
    let row = |what: &str, r: &Run, a: Option<f64>, b: Option<f64>, pg: Option<f64>| {
        format!(
            "| {what} | {:.0} ({:.0}–{:.0}) | {} | {} | {} | {} |\n",
            r.rate,
            r.low,
            r.high,
            us(a),
            us(b),
            us(pg),
            r.load
        )
    };
    let throughput = [
        row(
            "`storage = realtime` on node a, its user states distributed to b (the cluster as \
             configured)",
            &distributed,
            Some(distributed.cpu[0]),
            Some(distributed.cpu[1]),
            Some(distributed.pg),
        ),
        row(
            "`storage = realtime` on node a, `res_pjsip_publish_asterisk` unloaded on both \
             nodes: the database path alone",
            &alone,
            Some(alone.cpu[0]),
            Some(alone.cpu[1]),
            Some(alone.pg),
        ),
        row(
            "`storage = astdb`, a lone node (nothing distributed), same run",
            &astdb_run,
            Some(astdb_run.cpu[0]),
            None,
            None,
        ),
        row(
            "`storage = astdb`, the same lone node, one pair at a time over one AMI session \
             (each action waits for its answer; 1,000 pairs)",
            &one_by_one,
            Some(one_by_one.cpu[0]),
            None,
            None,
        ),
        row(
            "For scale: the same INSERT and DELETE sent by `psql` over one connection, one \
             after the other (2,000 pairs; 6 runs)",
            &psql,
            None,
            None,
            Some(psql.pg),
        ),
    ]
    .concat();
    report.push_str(&format!(
        "\n| Throughput of login+logout pairs (4 AMI sessions × 500 pipelined pairs; median of 3 \
         runs, lowest–highest) | pairs/s | CPU per pair: node a | node b | PostgreSQL | load \
         average (1 min) after the median run |\n|---|---|---|---|---|---|\n{throughput}\n\
         What PostgreSQL received from node a for 400 pairs (every statement logged, \
         `log_min_duration_statement = 0`): {statements}.\n"
    ));

    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let text = format!(
        "# Several nodes: measured figures\n\n\
         Written by `tests/cluster.rs::cluster_benchmark` (run by `scripts/bench.sh --only cluster`). \
         Two Asterisk nodes and PostgreSQL {pg} (the tests' server: `fsync=off`, \
         `full_page_writes=off`, local TCP) on one machine of {cores} cores, load average at the \
         end `{load}`. Debug or release module as `DEVICEUSER_MODULE` says: `{module}`.\n\n\
         | Measure | p50 | p99 | max |\n|---|---|---|---|\n{report}",
        pg = pg_version,
        load = load.trim(),
        module = common::module_source().display(),
    );
    eprintln!("{text}");
    // The reading of the figures is written by hand under its heading, and kept.
    let path = common::repo().join("docs/cluster-benchmark.md");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let reading = old
        .find(READING_HEADING)
        .map_or(String::new(), |at| format!("\n{}", &old[at..]));
    std::fs::create_dir_all(common::repo().join("docs")).unwrap();
    std::fs::write(path, format!("{text}{reading}")).unwrap();
}

/// The heading of docs/cluster-benchmark.md under which the figures are read (by hand).
const READING_HEADING: &str = "## Reading the figures";

#[test]
fn a_node_cut_off_from_the_database_shows_again_when_it_returns() {
    let c = Cluster::start("cl-cutoff");
    let _phone_1000 = Sipp::uas(&c.a, "1000");
    c.a.ami().login_ok("4101", "1000");
    wait_hint(&c.b, "4101", "Idle");
    // Node a loses the database (its connection goes to a closed port); b still has it.
    let good = c.a.read_conf("res_pgsql.conf");
    let closed_port = common::free_port();
    c.a.write_conf(
        "res_pgsql.conf",
        &good.replace(
            &format!("dbport = {}", c.pg.port),
            &format!("dbport = {closed_port}"),
        ),
    );
    c.a.cli("module reload res_config_pgsql.so");
    // b takes a for down: a's users show unavailable on b.
    wait_hint(&c.b, "4101", "Unavailable");
    assert!(c.b.wait_log("node a is down", LONG));
    // a is back: its states are published again, b shows them again.
    let mark = c.a.log_mark();
    c.a.write_conf("res_pgsql.conf", &good);
    c.a.cli("module reload res_config_pgsql.so");
    assert!(
        c.a.wait_log_since(mark, "publishing every user's state again", LONG),
        "{}",
        c.a.log_since(mark)
    );
    wait_hint(&c.b, "4101", "Idle");
    assert!(c.b.wait_log("node a is up again", LONG));
    // Nothing was lost meanwhile.
    assert_eq!(c.pg.bindings(), [("4101".into(), "1000".into())]);
}
