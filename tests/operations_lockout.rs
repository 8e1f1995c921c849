//! PIN lockout through real DTMF logins and parallel attempts from several devices,
//! login-failure events, DND through the dialplan function, and CEL login records.
mod common;
mod hotdesk_common;

use std::time::Duration;

use common::sip::Baresip;
use hotdesk_common::{self as hd, LONG};

const LOCKOUT: &str = "max_login_failures = 3\nlockout_window = 60\nlockout_time = 10";

#[test]
fn wrong_pins_by_dtmf_lock_the_user_out_then_the_lock_expires() {
    let ast = hd::start_with_general("lock-dtmf", LOCKOUT);
    let mut ami = ast.ami_events();
    let mut phone = Baresip::start(&ast, "1000", false);
    let mark = ast.log_mark();
    phone.dial_answered(&ast, "*114101", LONG);
    for (n, prompt) in [
        (1, "agent-pass"),
        (1, "auth-incorrect"),
        (2, "auth-incorrect"),
    ] {
        assert!(
            hd::wait(|| ast.prompts_played(mark, "1000", prompt) >= n),
            "{prompt} #{n} never played:\n{}",
            ast.log_since(mark)
        );
        phone.send_dtmf("8642#");
    }
    let status = hd::wait_status(&ast, mark, "1000", "UserLogin");
    assert_eq!(status.as_deref(), Some("LOCKED"), "{}", ast.log_since(mark));
    for _ in 0..3 {
        let ev = ami
            .wait_event(
                "DeviceUserLoginFailed",
                |m| m.get("User") == Some("4101"),
                LONG,
            )
            .expect("a DeviceUserLoginFailed event per wrong PIN");
        assert_eq!(ev.get("Device"), Some("1000"));
        assert_eq!(ev.get("Reason"), Some("WrongPassword"));
        assert_eq!(ev.get("ReasonText"), Some("wrong password"));
        assert!(
            !ev.to_string().contains("8642"),
            "the PIN is in the event: {ev}"
        );
    }
    let locked = hd::log_lines(&ast, mark, "WARNING", &["4101", "locked out"]);
    assert!(!locked.is_empty(), "{}", ast.log_since(mark));

    // While locked, even the right PIN is refused, and the event says why.
    assert_eq!(hd::login(&ast, "1001", "4101", "1234"), "LOCKED");
    let ev = ami
        .wait_event(
            "DeviceUserLoginFailed",
            |m| m.get("Reason") == Some("Locked"),
            LONG,
        )
        .expect("locked-out event");
    assert_eq!(ev.get("Device"), Some("1001"));
    assert_eq!(hd::user_on(&ast, "1001"), None);
    // Other users are not affected.
    hd::login_ok(&ast, "1002", "4102", "2345");
    // After lockout_time the right PIN works again.
    let locked_at = locked[0].get(..23).unwrap_or_default().to_string();
    assert!(
        hd::wait(|| {
            std::thread::sleep(Duration::from_millis(500));
            hd::login(&ast, "1001", "4101", "1234") == "SUCCESS"
        }),
        "the lock from {locked_at} never expired"
    );
    assert!(
        !ast.log().contains("8642"),
        "a PIN typed appears in the log"
    );
}

#[test]
fn lockout_holds_under_parallel_attempts_from_several_devices() {
    // A lock long enough to outlast the prompts of six calls on a loaded machine, so the
    // last check still falls inside it.
    let ast = hd::start_with_general(
        "lock-parallel",
        "max_login_failures = 3\nlockout_window = 60\nlockout_time = 120",
    );
    // Six wrong PINs at once: two calls from each of three devices, all running together.
    let mark = ast.log_mark();
    let calls: Vec<_> = ["1000", "1001", "1002"]
        .into_iter()
        .flat_map(|dev| [(dev, "1111"), (dev, "2222")])
        .map(|(dev, pin)| common::sip::Sipp::call(&ast, dev, &format!("**4103{pin}")))
        .collect();
    let statuses = || -> Vec<String> {
        ast.log_since(mark)
            .lines()
            .filter_map(|l| l.split("\"UserLogin: ").nth(1))
            .filter_map(|r| r.split('"').next().map(str::to_string))
            .collect()
    };
    assert!(
        hd::wait(|| statuses().len() >= 6),
        "not every attempt finished:\n{}",
        ast.log_since(mark)
    );
    let statuses = statuses();
    let failed = statuses.iter().filter(|s| *s == "FAILED").count();
    let locked = statuses.iter().filter(|s| *s == "LOCKED").count();
    assert_eq!(failed + locked, 6, "{statuses:?}");
    assert!(
        failed <= 2,
        "at most max_login_failures - 1 attempts fail before the lock: {statuses:?}"
    );
    drop(calls);
    // The right PIN from yet another attempt is refused while the lock holds.
    assert_eq!(hd::login(&ast, "1002", "4103", "3456"), "LOCKED");
}

#[test]
fn dnd_through_the_dialplan_function() {
    let ast = hd::start("dnd-func");
    let mut ami = ast.ami();
    ami.setvar_ok("DEVICEUSER(4104,dnd)", "on");
    assert_eq!(
        ami.getvar("DEVICEUSER(4104,dnd)", None).as_deref(),
        Some("1")
    );
    assert_eq!(
        ami.getvar("DEVICEUSER(4104,state)", None).as_deref(),
        Some("BUSY")
    );
    hd::wait_hint(&ast, "4104", "Busy");
    let mark = ast.log_mark();
    ami.action(&[
        ("Action", "Setvar"),
        ("Variable", "DEVICEUSER(4104,dnd)"),
        ("Value", "perhaps"),
    ]);
    assert!(hd::wait_log_line(&ast, mark, "WARNING", &["dnd must be"]).is_some());
    assert_eq!(
        ami.getvar("DEVICEUSER(4104,dnd)", None).as_deref(),
        Some("1")
    );
    ami.action(&[
        ("Action", "Setvar"),
        ("Variable", "DEVICEUSER(4104,dnd)"),
        ("Value", "0"),
    ]);
    hd::wait_hint(&ast, "4104", "Unavailable");
}

#[test]
fn phone_logins_and_logouts_are_recorded_in_cel() {
    let ast = hd::builder("cel")
        .conf(
            "cel.conf",
            "[general]\nenable = yes\nevents = USER_DEFINED\n\n[manager]\nenabled = yes\n",
        )
        .start();
    let mut ami = ast.ami();
    assert!(ami
        .action(&[("Action", "Events"), ("EventMask", "call")])
        .is_success());
    hd::login_ok(&ast, "1000", "4105", "5678");
    let ev = ami
        .wait_event("CEL", |m| m.to_string().contains("DEVICEUSER_LOGIN"), LONG)
        .unwrap_or_else(|| panic!("no CEL login record:\n{}", ast.log()));
    let text = ev.to_string();
    assert!(
        text.contains("user=4105") && text.contains("device=1000"),
        "{text}"
    );
    assert!(text.contains("reason=manual"), "{text}");
    assert_eq!(hd::logout(&ast, "1000"), "SUCCESS");
    let ev = ami
        .wait_event("CEL", |m| m.to_string().contains("DEVICEUSER_LOGOUT"), LONG)
        .expect("CEL logout record");
    let text = ev.to_string();
    assert!(
        text.contains("user=4105") && text.contains("duration="),
        "{text}"
    );
}

#[test]
fn calls_to_a_user_in_dnd_get_busy_without_ringing() {
    let ast = hd::start("dnd-call");
    let uas = common::sip::Sipp::uas(&ast, "1000");
    assert!(ast.cli("deviceuser login 4106 1000").contains("logged in"));
    assert!(ast.cli("deviceuser dnd 4106 on").contains("on"));
    let mark = ast.log_mark();
    let _caller = common::sip::Sipp::call(&ast, "1099", "4106");
    assert!(
        hd::wait_log_line(&ast, mark, "NOTICE", &["User 4106 is in do-not-disturb"]).is_some(),
        "{}",
        ast.log_since(mark)
    );
    assert!(
        !uas.messages().contains("INVITE sip:1000@"),
        "the device of a user in DND rang"
    );
    // DND off: the same call rings the device.
    ast.cli("deviceuser dnd 4106 off");
    let _caller = common::sip::Sipp::call(&ast, "1099", "4106");
    assert!(
        uas.wait_message("INVITE sip:1000@", LONG),
        "{}",
        ast.log_since(mark)
    );
}

#[test]
fn an_administrator_unlocks_a_locked_user_by_cli_and_ami() {
    let ast = hd::start_with_general(
        "lock-unlock",
        "max_login_failures = 2\nlockout_window = 600\nlockout_time = 600",
    );
    let lock = |user: &str, pin: &str| {
        assert_eq!(hd::login(&ast, "1000", user, pin), "FAILED");
        assert_eq!(hd::login(&ast, "1000", user, pin), "LOCKED");
        assert_eq!(hd::login(&ast, "1000", user, pin), "LOCKED");
    };
    lock("4101", "9753");

    // The lockout and its time left are shown.
    let stats = ast.cli("deviceuser show stats");
    let row = stats
        .lines()
        .find(|l| l.starts_with("4101 "))
        .unwrap_or_else(|| panic!("a locked user is listed:\n{stats}"));
    assert!(row.ends_with(" left"), "{row}");
    assert!(
        stats.contains("Users locked out after wrong PINs: 1\n"),
        "{stats}"
    );
    let user = ast.cli("deviceuser show user 4101");
    assert!(
        user.contains("Locked out:       yes, ")
            && user.contains(" left (deviceuser unlock user 4101)"),
        "{user}"
    );
    assert!(!user.contains("9753") && !user.contains("1234"), "{user}");

    // The CLI lifts it; the right PIN works at once.
    let mark = ast.log_mark();
    let out = ast.cli("deviceuser unlock user 4101");
    assert!(
        out.starts_with("User 4101 unlocked (") && out.contains("of the lockout were left"),
        "{out}"
    );
    assert!(
        hd::wait_log_line(
            &ast,
            mark,
            "NOTICE",
            &["user 4101 unlocked by an administrator (cli)"]
        )
        .is_some(),
        "{}",
        ast.log_since(mark)
    );
    assert!(ast
        .cli("deviceuser show user 4101")
        .contains("Locked out:       no\n"));
    assert_eq!(hd::login(&ast, "1000", "4101", "1234"), "SUCCESS");
    assert_eq!(
        ast.cli("deviceuser unlock user 4101"),
        "User 4101 was not locked out\n"
    );
    assert!(ast
        .cli("deviceuser unlock user nobody")
        .contains(r#"Cannot unlock "nobody": no such user "nobody""#));
    assert!(ast
        .cli("deviceuser unlock user")
        .contains("Usage: deviceuser unlock user"));

    // AMI does the same.
    lock("4102", "9753");
    let mut ami = ast.ami();
    let r = ami.action(&[("Action", "DeviceUserUnlock"), ("User", "4102")]);
    assert!(r.is_success(), "{r}");
    assert!(
        r.get("Message")
            .unwrap_or_default()
            .starts_with("User 4102 unlocked ("),
        "{r}"
    );
    assert_eq!(hd::login(&ast, "1001", "4102", "2345"), "SUCCESS");
    let r = ami.action(&[("Action", "DeviceUserUnlock"), ("User", "4102")]);
    assert_eq!(
        r.get("Message"),
        Some("User 4102 was not locked out"),
        "{r}"
    );
    let r = ami.action(&[("Action", "DeviceUserUnlock"), ("User", "nobody")]);
    assert!(!r.is_success(), "{r}");
    let r = ami.action(&[("Action", "DeviceUserUnlock")]);
    assert!(
        !r.is_success() && r.to_string().contains("User is required"),
        "{r}"
    );
    let r = ast
        .ami_as("readonly", "readonly")
        .unwrap()
        .action(&[("Action", "DeviceUserUnlock"), ("User", "4102")]);
    assert!(!r.is_success(), "without the agent class: {r}");
    assert_eq!(ast.stats_counter("Users locked out after wrong PINs"), "0");
}
