//! Queue membership follows the user (app_queue, samples/queues.conf): a login adds the user
//! to his queues as a member that rings his phones, every kind of logout removes it (or
//! pauses it), and after a restart, a crash or a storm of logins `queue show` matches the
//! bindings. Real Asterisk, real SIP (sipp phones).
mod common;
mod hotdesk_common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::sip::Sipp;
use common::Asterisk;
use hotdesk_common::{self as hd, LONG};

/// The members `queue show <queue>` lists: (interface, paused), sorted.
fn queue_members(ast: &Asterisk, queue: &str) -> Vec<(String, bool)> {
    let out = ast.cli(&format!("queue show {queue}"));
    assert!(
        out.starts_with(&format!("{queue} has ")),
        "queue show {queue}:\n{out}"
    );
    let mut v: Vec<(String, bool)> = out
        .lines()
        .filter_map(|l| {
            // "      Operator 4101 (Local/4101@deviceuser-queue from DeviceUser:4101) ... (paused:...)"
            let start = l.find("(Local/")? + 1;
            let rest = &l[start..];
            let end = rest.find([' ', ')'])?;
            Some((rest[..end].to_string(), l.contains("(paused")))
        })
        .collect();
    v.sort();
    v
}

/// The users `queue show <queue>` lists as the module's members, with whether paused.
fn queue_users(ast: &Asterisk, queue: &str) -> Vec<(String, bool)> {
    queue_members(ast, queue)
        .into_iter()
        .map(|(i, p)| {
            let user = i
                .strip_prefix("Local/")
                .and_then(|r| r.strip_suffix("@deviceuser-queue"))
                .unwrap_or_else(|| panic!("unexpected member interface {i}"));
            (user.to_string(), p)
        })
        .collect()
}

/// Waits until the module's members of `queue` are exactly `users` (none paused).
fn wait_queue(ast: &Asterisk, queue: &str, users: &[&str]) {
    let want: Vec<(String, bool)> = users.iter().map(|u| (u.to_string(), false)).collect();
    let ok = hd::wait(|| queue_users(ast, queue) == want);
    assert!(
        ok,
        "queue {queue} never had exactly {users:?}:\n{}\n{}",
        ast.cli(&format!("queue show {queue}")),
        ast.cli("deviceuser show bindings")
    );
}

/// Hangs up every channel of `endpoint` through AMI (a killed sipp sends no BYE).
fn hang_up(ast: &Asterisk, endpoint: &str) {
    let r = ast.ami().action(&[
        ("Action", "Hangup"),
        ("Channel", &format!("/^PJSIP\\/{endpoint}-/")),
    ]);
    assert!(r.is_success(), "AMI Hangup of {endpoint}: {r}");
}

/// INVITEs a sipp UAS received.
fn invites(uas: &Sipp) -> usize {
    uas.sip_messages()
        .iter()
        .filter(|m| m.starts_with("INVITE "))
        .count()
}

/// The sample res_deviceuser.conf with extra `[general]` lines; the reception user 2010
/// (always on the fixed phone 2010) joins no queue.
fn conf(general: &str) -> String {
    let conf = hd::deviceuser_conf_with_general(general);
    let out = conf.replace(
        "[2010]\ntype = user\n",
        "[2010]\ntype = user\nqueues = none\n",
    );
    assert_ne!(out, conf, "no user 2010 in the sample");
    out
}

/// [`conf`] and the test dialplan.
fn start(name: &str, general: &str) -> Asterisk {
    hd::builder(name)
        .conf("res_deviceuser.conf", &conf(general))
        .load_module("app_queue.so")
        .start()
}

#[test]
fn a_call_into_the_queue_rings_the_logged_in_user_and_not_after_logout() {
    let ast = start("cc-queue-ring", "queues = sales");
    let uas = Sipp::uas(&ast, "1000");
    assert!(queue_users(&ast, "sales").is_empty());

    hd::login_ok(&ast, "1000", "4101", "1234");
    wait_queue(&ast, "sales", &["4101"]);
    let line = ast.cli("queue show sales");
    assert!(
        line.contains("Operator 4101 (Local/4101@deviceuser-queue from DeviceUser:4101)"),
        "member name and state interface:\n{line}"
    );
    assert!(
        queue_users(&ast, "support").is_empty(),
        "only the user's queues"
    );

    // A caller into sales (7001) rings the phone 4101 is logged in on.
    let mut caller = Sipp::call(&ast, "1099", "7001");
    assert!(
        uas.wait_message("INVITE sip:1000@", LONG),
        "device 1000 did not ring for the queue:\n{}\n{}",
        uas.report(),
        ast.cli("queue show sales")
    );
    hd::wait_hint(&ast, "4101", "InUse");
    hang_up(&ast, "1099");
    caller.kill();
    assert!(hd::wait(|| !ast
        .cli("core show channels")
        .contains("PJSIP/1000-")));

    // *12 on the phone: the member goes; a caller waits and the phone stays quiet.
    assert_eq!(hd::logout(&ast, "1000"), "SUCCESS");
    wait_queue(&ast, "sales", &[]);
    let before = invites(&uas);
    let mut caller = Sipp::call(&ast, "1099", "7001");
    assert!(
        hd::wait(|| ast.cli("queue show sales").contains("PJSIP/1099-")),
        "the caller is not waiting in sales:\n{}",
        ast.cli("queue show sales")
    );
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        invites(&uas),
        before,
        "device 1000 rang after the logout:\n{}",
        uas.report()
    );
    hang_up(&ast, "1099");
    caller.kill();
}

#[test]
fn every_kind_of_logout_removes_the_member() {
    let ast = start(
        "cc-queue-origins",
        "queues = sales,support:2\nmultiple_logins = yes",
    );
    let mut ami = ast.ami();

    // AMI login and logout; penalties as configured.
    ami.login_ok("4101", "1000");
    wait_queue(&ast, "sales", &["4101"]);
    wait_queue(&ast, "support", &["4101"]);
    let (_, members) = ami.list_action(&[("Action", "QueueStatus"), ("Queue", "support")]);
    let m = members
        .iter()
        .find(|m| m.get("Location") == Some("Local/4101@deviceuser-queue"))
        .expect("4101 in support");
    assert_eq!(m.get("Penalty"), Some("2"), "{m}");
    assert_eq!(m.get("StateInterface"), Some("DeviceUser:4101"), "{m}");
    ami.logout_ok("4101");
    wait_queue(&ast, "sales", &[]);
    wait_queue(&ast, "support", &[]);

    // Two devices: one member; leaving one device keeps it, leaving both removes it.
    ami.login_ok("4101", "1000");
    ami.login_ok("4101", "1001");
    wait_queue(&ast, "sales", &["4101"]);
    ast.cli("deviceuser logout device 1000");
    std::thread::sleep(Duration::from_millis(500));
    wait_queue(&ast, "sales", &["4101"]);
    // CLI.
    ast.cli("deviceuser logout device 1001");
    wait_queue(&ast, "sales", &[]);

    // Replaced: another user takes the phone.
    ami.login_ok("4101", "1000");
    wait_queue(&ast, "sales", &["4101"]);
    ami.login_ok("4102", "1000");
    wait_queue(&ast, "sales", &["4102"]);

    // Reload: 4102 no longer exists.
    ami.login_ok("4103", "1001");
    wait_queue(&ast, "sales", &["4102", "4103"]);
    let changed =
        conf("queues = sales,support:2").replace("[4102]\ntype = user", "[9102]\ntype = user");
    assert!(changed.contains("[9102]"));
    ast.write_conf("res_deviceuser.conf", &changed);
    let out = ast.cli("module reload res_deviceuser.so");
    assert!(!out.contains("rror"), "{out}");
    wait_queue(&ast, "sales", &["4103"]);

    // Phone: UserLogout(user) from the dialplan.
    assert_eq!(
        hd::call_for_status(&ast, "1002", "**04103", "UserLogout"),
        "SUCCESS"
    );
    wait_queue(&ast, "sales", &[]);
    hd::assert_alive(&ast);
}

#[test]
fn a_policy_logout_removes_the_member() {
    let ast = start("cc-queue-policy", "queues = sales\nmax_login_time = 2");
    let mut ami = ast.ami();
    ami.login_ok("4101", "1000");
    wait_queue(&ast, "sales", &["4101"]);
    assert!(hd::wait(|| hd::user_on(&ast, "1000").is_none()));
    wait_queue(&ast, "sales", &[]);
}

#[test]
fn queue_logout_pause_pauses_and_the_next_login_unpauses() {
    let ast = start("cc-queue-pause", "queues = sales\nqueue_logout = pause");
    let uas = Sipp::uas(&ast, "1000");
    hd::login_ok(&ast, "1000", "4101", "1234");
    wait_queue(&ast, "sales", &["4101"]);

    assert_eq!(hd::logout(&ast, "1000"), "SUCCESS");
    let paused = vec![("4101".to_string(), true)];
    assert!(
        hd::wait(|| queue_users(&ast, "sales") == paused),
        "not paused:\n{}",
        ast.cli("queue show sales")
    );
    assert!(
        ast.cli("queue show sales").contains("paused:logged out"),
        "pause reason:\n{}",
        ast.cli("queue show sales")
    );
    // A caller waits; the paused member's phone does not ring.
    let before = invites(&uas);
    let mut caller = Sipp::call(&ast, "1099", "7001");
    assert!(hd::wait(|| ast
        .cli("queue show sales")
        .contains("PJSIP/1099-")));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(invites(&uas), before, "a paused member rang");

    // Logging in again unpauses: the waiting caller now rings the phone.
    hd::login_ok(&ast, "1000", "4101", "1234");
    wait_queue(&ast, "sales", &["4101"]);
    assert!(
        uas.wait_message("INVITE sip:1000@", LONG),
        "the unpaused member was not rung:\n{}",
        uas.report()
    );
    hang_up(&ast, "1099");
    caller.kill();
}

#[test]
fn after_a_crash_the_queues_match_the_bindings() {
    let mut ast = start("cc-queue-crash", "queues = sales");
    let mut ami = ast.ami();
    ami.login_ok("4101", "1000");
    ami.login_ok("4102", "1001");
    wait_queue(&ast, "sales", &["4101", "4102"]);
    drop(ami);

    // Behind the module's back (it is unloaded): a stray member of a logged-out user is
    // added, a logged-in user's member removed. app_queue keeps both in AstDB.
    ast.cli("module unload res_deviceuser.so");
    let mut ami = ast.ami();
    ami.action_ok(
        &[
            ("Action", "QueueAdd"),
            ("Queue", "sales"),
            ("Interface", "Local/4109@deviceuser-queue"),
            ("StateInterface", "DeviceUser:4109"),
            ("MemberName", "Operator 4109"),
        ],
        "stray member",
    );
    ami.action_ok(
        &[
            ("Action", "QueueRemove"),
            ("Queue", "sales"),
            ("Interface", "Local/4102@deviceuser-queue"),
        ],
        "member removed by hand",
    );
    // A member that is not the module's stays as it is.
    ami.action_ok(
        &[
            ("Action", "QueueAdd"),
            ("Queue", "sales"),
            ("Interface", "PJSIP/1099"),
        ],
        "someone else's member",
    );
    drop(ami);
    assert_eq!(
        queue_members(&ast, "sales")
            .into_iter()
            .map(|(i, _)| i)
            .collect::<Vec<_>>(),
        vec!["Local/4101@deviceuser-queue", "Local/4109@deviceuser-queue"]
    );

    // AstDB commits once a second: let app_queue's own writes reach the disk.
    std::thread::sleep(Duration::from_secs(2));
    ast.kill9_and_restart();
    wait_queue(&ast, "sales", &["4101", "4102"]);
    assert!(
        ast.cli("queue show sales").contains("PJSIP/1099"),
        "a member that is not the module's was touched:\n{}",
        ast.cli("queue show sales")
    );
}

#[test]
fn after_a_storm_of_logins_queue_show_matches_the_bindings() {
    let ast = start("cc-queue-storm", "queues = sales\nmultiple_logins = yes");
    let users: Vec<String> = (4101..=4110).map(|u| u.to_string()).collect();
    let devices = ["1000", "1001", "1002"];
    // Several AMI sessions at once, each a deterministic walk of logins and logouts.
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let port = ast.ami_port;
            let users = users.clone();
            std::thread::spawn(move || {
                let mut ami = common::Ami::connect(port, "deviceuser", "deviceuser").unwrap();
                let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ t;
                for _ in 0..150 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let user = &users[(x % users.len() as u64) as usize];
                    let device = devices[((x >> 8) % 3) as usize];
                    // Refusals (a user already elsewhere, nobody to log out) are part of it.
                    if (x >> 16).is_multiple_of(3) {
                        ami.action(&[("Action", "DeviceUserLogout"), ("User", user)]);
                    } else {
                        ami.action(&[
                            ("Action", "DeviceUserLogin"),
                            ("User", user),
                            ("Device", device),
                        ]);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // 2010 (the fixed phone's user) joins no queue.
    let bound: BTreeSet<String> = hd::bindings(&ast)
        .into_iter()
        .map(|(u, _)| u)
        .filter(|u| u != "2010")
        .collect();
    let want: Vec<&str> = bound.iter().map(String::as_str).collect();
    assert!(!want.is_empty(), "the storm left nobody logged in");
    wait_queue(&ast, "sales", &want);
    assert_eq!(ast.stats_count("Queue and MWI work queued"), 0);
    hd::assert_alive(&ast);
}

#[test]
fn bad_queues_get_a_clear_log_line_and_lose_nothing() {
    let ast = start(
        "cc-queue-bad",
        "queues = sales,nosuchqueue\nqueue_check = 2",
    );
    let mut ami = ast.ami();
    let mark = ast.log_mark();
    ami.login_ok("4101", "1000");
    wait_queue(&ast, "sales", &["4101"]);
    let line = hd::wait_log_line(
        &ast,
        mark,
        "WARNING",
        &["queue nosuchqueue", "no such queue"],
    )
    .unwrap_or_else(|| panic!("no warning for the unknown queue:\n{}", ast.log_since(mark)));
    assert!(line.contains("user 4101"), "{line}");
    assert_eq!(
        hd::user_on(&ast, "1000").as_deref(),
        Some("4101"),
        "login kept"
    );

    // The queue appears (queues.conf + queue reload): the user joins it at the next check.
    let queues = format!(
        "{}\n[nosuchqueue](queue-template)\nstrategy = ringall\n",
        hd::sample("queues.conf")
    );
    ast.write_conf("queues.conf", &queues);
    ast.cli("queue reload all");
    wait_queue(&ast, "nosuchqueue", &["4101"]);

    // A queue removed while users are in it, and added back: they are members again.
    ast.write_conf("queues.conf", &hd::sample("queues.conf"));
    ast.cli("queue reload all");
    assert!(hd::wait(|| ast
        .cli("queue show nosuchqueue")
        .contains("No such queue")));
    ast.write_conf("queues.conf", &queues);
    ast.cli("queue reload all");
    wait_queue(&ast, "nosuchqueue", &["4101"]);
    wait_queue(&ast, "sales", &["4101"]);

    // Without app_queue: a clear line, the login stands; loaded again, membership follows.
    ast.cli("module unload app_queue.so");
    let mark = ast.log_mark();
    ami.login_ok("4102", "1001");
    assert!(
        hd::wait_log_line(&ast, mark, "WARNING", &["app_queue is not loaded"]).is_some(),
        "no warning without app_queue:\n{}",
        ast.log_since(mark)
    );
    assert_eq!(hd::user_on(&ast, "1001").as_deref(), Some("4102"));
    ast.cli("module load app_queue.so");
    wait_queue(&ast, "sales", &["4101", "4102"]);
    hd::assert_alive(&ast);
}

#[test]
fn a_reload_moves_members_to_the_queues_the_file_names_now() {
    let ast = start("cc-queue-reload", "queues = sales");
    let mut ami = ast.ami();
    ami.login_ok("4101", "1000");
    ami.login_ok("4102", "1001");
    wait_queue(&ast, "sales", &["4101", "4102"]);

    // [general] now says support; 4102 keeps sales with a penalty of his own. Bindings stay.
    let changed = conf("queues = support").replace(
        "[4102]\ntype = user\n",
        "[4102]\ntype = user\nqueues = sales:3\n",
    );
    ast.write_conf("res_deviceuser.conf", &changed);
    let out = ast.cli("module reload res_deviceuser.so");
    assert!(!out.contains("rror"), "{out}");
    wait_queue(&ast, "support", &["4101"]);
    wait_queue(&ast, "sales", &["4102"]);
    assert!(
        ast.cli("queue show sales").contains("with penalty 3"),
        "{}",
        ast.cli("queue show sales")
    );
    assert_eq!(hd::devices_of(&ast, "4101"), ["1000"]);
}
