//! Login policies on a real Asterisk: max_login_time, shift_end, logout_on_unregister (with a
//! real SIP registration going away), DND, statistics, and timers surviving a restart.
mod common;
mod hotdesk_common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::sip::Sipp;
use common::Asterisk;
use hotdesk_common::deviceuser_conf_with_general;

const T: Duration = Duration::from_secs(15);

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn bound(ast: &Asterisk, user: &str, device: &str) -> bool {
    ast.cli(&format!("deviceuser show bindings device {device}"))
        .lines()
        .any(|l| l.split_whitespace().take(2).eq([user, device]))
}

#[test]
fn max_login_time_logs_out_with_reason_timeout() {
    let ast = Asterisk::builder("pol-timeout")
        .conf(
            "res_deviceuser.conf",
            &deviceuser_conf_with_general("max_login_time = 2"),
        )
        .start();
    let mut ami = ast.ami_events();
    ami.action(&[
        ("Action", "DeviceUserLogin"),
        ("User", "4101"),
        ("Device", "1000"),
    ]);
    assert!(bound(&ast, "4101", "1000"));
    let ev = ami
        .wait_event("DeviceUserLogout", |m| m.get("User") == Some("4101"), T)
        .expect("automatic logout");
    assert_eq!(ev.get("Reason"), Some("timeout"), "{ev}");
    let d: u64 = ev.val("Duration").parse().unwrap();
    assert!((2..=4).contains(&d), "session lasted {d}s");
    assert!(!bound(&ast, "4101", "1000"));
    // The fixed device's owner is never logged out by a policy.
    assert!(bound(&ast, "2010", "2010"));
}

#[test]
fn per_user_override_disables_max_login_time() {
    let conf = deviceuser_conf_with_general("max_login_time = 1").replace(
        "fullname = Operator 4102\n",
        "fullname = Operator 4102\nmax_login_time = 0\n",
    );
    let ast = Asterisk::builder("pol-override")
        .conf("res_deviceuser.conf", &conf)
        .start();
    let mut ami = ast.ami_events();
    ami.action(&[
        ("Action", "DeviceUserLogin"),
        ("User", "4101"),
        ("Device", "1000"),
    ]);
    ami.action(&[
        ("Action", "DeviceUserLogin"),
        ("User", "4102"),
        ("Device", "1001"),
    ]);
    ami.wait_event("DeviceUserLogout", |m| m.get("User") == Some("4101"), T)
        .expect("4101 times out");
    std::thread::sleep(Duration::from_secs(2));
    assert!(bound(&ast, "4102", "1001"), "4102 has max_login_time = 0");
}

#[test]
fn restored_login_keeps_its_time_and_shift_end_applies() {
    // A login made an hour ago, as AstDB holds it after a restart.
    let ast = Asterisk::start("pol-shift");
    let mut ami = ast.ami();
    let since = now() - 3600;
    let r = ami.action(&[
        ("Action", "DBPut"),
        ("Family", "deviceuser"),
        ("Key", "binding/1001"),
        ("Val", &format!("4103;{since}")),
    ]);
    assert!(r.is_success(), "{r}");
    drop(ami);
    // Shift end half an hour ago, local time.
    let out = ast.cli("core show sysinfo");
    drop(out);
    let half_hour_ago = local_hh_mm(now() - 1800);
    let mut ast = ast;
    ast.write_conf(
        "res_deviceuser.conf",
        &deviceuser_conf_with_general(&format!("shift_end = {half_hour_ago}")),
    );
    let mark = ast.unload_and_load();
    assert!(
        ast.wait_log_since(
            mark,
            "device 1001: user logged out automatically (shift-end)",
            T
        ),
        "{}",
        ast.log_since(mark)
    );
    assert!(!bound(&ast, "4103", "1001"));
    // A login made now lasts until tomorrow's shift end.
    ast.cli("deviceuser login 4104 1002");
    std::thread::sleep(Duration::from_millis(2500));
    assert!(bound(&ast, "4104", "1002"));
    ast.restart();
    let out = ast.cli("deviceuser show bindings user 4104");
    assert!(out.contains("1 binding found"), "{out}");
}

#[test]
fn restored_login_keeps_its_time_for_max_login_time() {
    let ast = Asterisk::builder("pol-restore-timeout")
        .conf(
            "res_deviceuser.conf",
            &deviceuser_conf_with_general("max_login_time = 600"),
        )
        .start();
    let mut ami = ast.ami();
    let r = ami.action(&[
        ("Action", "DBPut"),
        ("Family", "deviceuser"),
        ("Key", "binding/1000"),
        ("Val", &format!("4105;{}", now() - 700)),
    ]);
    assert!(r.is_success());
    drop(ami);
    let mark = ast.unload_and_load();
    assert!(
        ast.wait_log_since(
            mark,
            "device 1000: user logged out automatically (timeout)",
            T
        ),
        "{}",
        ast.log_since(mark)
    );
}

#[test]
fn logout_on_unregister_follows_the_real_registration() {
    let ast = Asterisk::builder("pol-unreg")
        .conf(
            "res_deviceuser.conf",
            &deviceuser_conf_with_general("logout_on_unregister = 2"),
        )
        .start();
    Sipp::register(&ast, "1001").expect("register 1001");
    let mut ami = ast.ami_events();
    ami.action(&[
        ("Action", "DeviceUserLogin"),
        ("User", "4106"),
        ("Device", "1001"),
    ]);
    // Registered: the login stays.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        bound(&ast, "4106", "1001"),
        "a registered device keeps its user"
    );
    assert!(ast.cli("core show hint 4106").contains("State:Idle"));
    // The phone unregisters: after 2 s the user is logged out.
    unregister_all(&ast, "1001");
    let ev = ami
        .wait_event("DeviceUserLogout", |m| m.get("User") == Some("4106"), T)
        .expect("logout after unregistration");
    assert_eq!(ev.get("Reason"), Some("unregistered"), "{ev}");
    assert!(ast.cli("core show hint 4106").contains("State:Unavailable"));
}

#[test]
fn dnd_shows_busy_persists_and_is_reported() {
    let mut ast = Asterisk::start("pol-dnd");
    let mut ami = ast.ami_events();
    assert!(ast.cli("core show hint 4107").contains("State:Unavailable"));
    let r = ami.action(&[("Action", "DeviceUserDND"), ("User", "4107"), ("DND", "on")]);
    assert!(r.is_success(), "{r}");
    let ev = ami
        .wait_event("DeviceUserDND", |m| m.get("User") == Some("4107"), T)
        .unwrap();
    assert_eq!(ev.get("DND"), Some("on"));
    assert!(ast.cli("core show hint 4107").contains("State:Busy"));
    let r = ami.action(&[("Action", "DeviceUserDND"), ("User", "4107")]);
    assert_eq!(r.val("Message"), "DND on");
    let r = ami.action(&[
        ("Action", "DeviceUserDND"),
        ("User", "4107"),
        ("DND", "maybe"),
    ]);
    assert_eq!(r.response(), Some("Error"), "{r}");
    let r = ami.action(&[
        ("Action", "DeviceUserDND"),
        ("User", "nobody"),
        ("DND", "on"),
    ]);
    assert_eq!(r.response(), Some("Error"), "{r}");
    drop(ami);
    std::thread::sleep(common::scaled(Duration::from_millis(1500)));
    ast.kill9_and_restart();
    assert!(
        ast.cli("core show hint 4107").contains("State:Busy"),
        "DND survives kill -9"
    );
    let out = ast.cli("deviceuser dnd 4107 off");
    assert!(out.contains("off"), "{out}");
    assert!(ast.cli("core show hint 4107").contains("State:Unavailable"));
    let out = ast.cli("deviceuser dnd 4107 sideways");
    assert!(out.contains("Usage: deviceuser dnd"), "{out}");
}

#[test]
fn stats_count_logins_and_time() {
    let ast = Asterisk::start("pol-stats");
    ast.cli("deviceuser login 4108 1000");
    std::thread::sleep(Duration::from_millis(1100));
    ast.cli("deviceuser logout device 1000");
    ast.cli("deviceuser login 4108 1001");
    let out = ast.cli("deviceuser show stats user 4108");
    let row: Vec<&str> = out
        .lines()
        .find(|l| l.starts_with("4108"))
        .unwrap_or_else(|| panic!("{out}"))
        .split_whitespace()
        .collect();
    assert_eq!(row[1], "2", "two logins: {out}");
    assert_eq!(row[2], "0", "none restored: {out}");
    assert_ne!(
        row[3], "0s",
        "time logged in counts the finished session: {out}"
    );
    assert_ne!(row[4], "-", "a current session: {out}");
    assert_eq!(row[5], "-", "not locked out: {out}");
    assert!(out.contains("1 user found"), "{out}");
    let out = ast.cli("deviceuser show stats user nobody");
    assert!(out.contains("No such user"), "{out}");
    // Without a user, the module's own heap: the sample config and a few bindings take some
    // kilobytes, far from a megabyte-scale leak.
    let heap = ast.module_heap_bytes();
    assert!(heap > 1000 && heap < 16 << 20, "module heap {heap} bytes");
}

/// HH:MM of a unix time in the local zone of this machine (which Asterisk shares).
fn local_hh_mm(unix: u64) -> String {
    let out = std::process::Command::new("date")
        .args(["-d", &format!("@{unix}"), "+%H:%M"])
        .output()
        .expect("date");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Removes every contact of `endpoint` (REGISTER with `Contact: *`, `Expires: 0`).
fn unregister_all(ast: &Asterisk, endpoint: &str) {
    let secret = common::sip::secret(endpoint);
    let mut s = Sipp::spawn(
        ast,
        "unregister-all.xml",
        &[
            "-s",
            endpoint,
            "-au",
            endpoint,
            "-ap",
            &secret,
            "-m",
            "1",
            "-timeout",
            "20",
            "-timeout_error",
        ],
    );
    s.finish(Duration::from_secs(30)).expect("unregister");
    assert!(
        common::wait_until(T, || !ast
            .cli("pjsip show contacts")
            .contains(&format!("{endpoint}/sip:"))),
        "the contact of {endpoint} is gone"
    );
}
