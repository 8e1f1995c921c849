//! Login and logout by voice prompts, from a real softphone (baresip) that sends the
//! user number and PIN as RFC 4733 DTMF: `*11`, `*11<user>`, `*12`, and what happens
//! with wrong, unknown or missing input, a hangup during the prompts, and a channel
//! that is not a device.
mod common;
mod hotdesk_common;

use common::sip::Baresip;
use common::Asterisk;
use hotdesk_common::{self as hd, LONG};

/// Waits until `prompt` played `n` times since `mark`, then types `digits`.
fn answer_prompt(
    phone: &mut Baresip,
    ast: &Asterisk,
    mark: usize,
    prompt: &str,
    n: usize,
    digits: &str,
) {
    let ep = phone.endpoint.clone();
    assert!(
        hd::wait(|| ast.prompts_played(mark, &ep, prompt) >= n),
        "prompt {prompt} (#{n}) never played on {ep}:\n{}",
        ast.log_since(mark)
    );
    phone.send_dtmf(digits);
}

/// No line of the module or of the dialplan shows `pin`. (Asterisk logs the DTMF
/// events one digit at a time; other lines carry ports and ids that may contain
/// any digits.)
fn assert_pin_not_logged(ast: &Asterisk, pin: &str) {
    let leaks: Vec<String> = ast
        .log()
        .lines()
        .filter(|l| l.contains(" res_deviceuser: ") || l.contains(" pbx.c: "))
        .filter(|l| {
            // The message, without the time stamp, level and thread id.
            let after_level = l.find("] ").map_or(*l, |i| &l[i + 2..]);
            let message = after_level.find(": ").map_or("", |i| &after_level[i..]);
            message.contains(pin)
        })
        .map(str::to_string)
        .collect();
    assert!(
        leaks.is_empty(),
        "the PIN {pin} appears in the log: {leaks:#?}"
    );
}

#[test]
fn login_by_prompts_then_logout_with_star12() {
    let ast = hd::start("hd-login-prompts");
    let mut phone = Baresip::start(&ast, "1000", false);
    hd::wait_hint(&ast, "4101", "Unavailable");

    let mark = ast.log_mark();
    phone.dial_answered(&ast, "*11", LONG);
    answer_prompt(&mut phone, &ast, mark, "agent-user", 1, "4101#");
    answer_prompt(&mut phone, &ast, mark, "agent-pass", 1, "1234#");
    let status = hd::wait_status(&ast, mark, "1000", "UserLogin");
    assert_eq!(
        status.as_deref(),
        Some("SUCCESS"),
        "{}",
        ast.log_since(mark)
    );
    phone.wait_event("CALL_CLOSED", LONG);

    assert_eq!(hd::user_on(&ast, "1000").as_deref(), Some("4101"));
    assert_eq!(hd::devices_of(&ast, "4101"), ["1000"]);
    let log = ast.log_since(mark);
    assert!(
        log.contains("user 4101 logged in on device 1000"),
        "no verbose login line:\n{log}"
    );
    assert!(
        log.contains("Playing 'agent-loginok."),
        "no confirmation prompt"
    );
    assert_pin_not_logged(&ast, "1234");
    // Registered, logged in, not in a call.
    hd::wait_hint(&ast, "4101", "Idle");

    let mark = ast.log_mark();
    phone.dial_answered(&ast, "*12", LONG);
    let status = hd::wait_status(&ast, mark, "1000", "UserLogout");
    assert_eq!(
        status.as_deref(),
        Some("SUCCESS"),
        "{}",
        ast.log_since(mark)
    );
    phone.wait_event("CALL_CLOSED", LONG);
    assert_eq!(hd::user_on(&ast, "1000"), None);
    assert!(hd::devices_of(&ast, "4101").is_empty());
    hd::wait_hint(&ast, "4101", "Unavailable");
    assert!(ast
        .log_since(mark)
        .contains("user 4101 logged out of device 1000"));

    // Logging out again: nobody is there (and the call is not even answered).
    let mark = ast.log_mark();
    phone.dial(&ast, "*12");
    let status = hd::wait_status(&ast, mark, "1000", "UserLogout");
    assert_eq!(status.as_deref(), Some("NOTLOGGEDIN"));
    hd::assert_alive(&ast);
}

#[test]
fn star11_with_user_asks_only_for_the_pin_and_allows_a_retry() {
    let ast = hd::start("hd-login-ext");
    let mut phone = Baresip::start(&ast, "1001", false);
    let mark = ast.log_mark();
    phone.dial_answered(&ast, "*114102", LONG);
    answer_prompt(&mut phone, &ast, mark, "agent-pass", 1, "1111#");
    // "Password incorrect. Please enter your password followed by the pound key."
    answer_prompt(&mut phone, &ast, mark, "auth-incorrect", 1, "2345#");
    let status = hd::wait_status(&ast, mark, "1001", "UserLogin");
    assert_eq!(
        status.as_deref(),
        Some("SUCCESS"),
        "{}",
        ast.log_since(mark)
    );
    assert_eq!(
        ast.prompts_played(mark, "1001", "agent-user"),
        0,
        "the user number was asked although it was dialled"
    );
    assert_eq!(
        ast.prompts_played(mark, "1001", "agent-incorrect"),
        0,
        "the caller was told to enter his agent number, but only the PIN is asked"
    );
    assert_eq!(
        hd::log_lines(&ast, mark, "WARNING", &["device 1001", "4102"]).len(),
        1,
        "one failed attempt"
    );
    assert_eq!(hd::user_on(&ast, "1001").as_deref(), Some("4102"));
    hd::wait_hint(&ast, "4102", "Idle");
}

#[test]
fn wrong_pin_three_times_fails_without_logging_the_pin() {
    let ast = hd::start("hd-login-wrong");
    let mut phone = Baresip::start(&ast, "1000", false);
    let mark = ast.log_mark();
    phone.dial_answered(&ast, "*114101", LONG);
    answer_prompt(&mut phone, &ast, mark, "agent-pass", 1, "975318#");
    for n in 1..=2 {
        answer_prompt(&mut phone, &ast, mark, "auth-incorrect", n, "975318#");
    }
    let status = hd::wait_status(&ast, mark, "1000", "UserLogin");
    assert_eq!(status.as_deref(), Some("FAILED"), "{}", ast.log_since(mark));
    assert_eq!(ast.prompts_played(mark, "1000", "agent-pass"), 1);
    // No invitation to try again after the last attempt: "I'm sorry. Goodbye."
    assert_eq!(ast.prompts_played(mark, "1000", "auth-incorrect"), 2);
    assert_eq!(ast.prompts_played(mark, "1000", "vm-goodbye"), 1);

    let warnings = hd::log_lines(&ast, mark, "WARNING", &["device 1000", "4101"]);
    assert!(
        warnings.len() >= 3,
        "expected a warning per failed attempt naming device and user:\n{}",
        ast.log_since(mark)
    );
    assert_pin_not_logged(&ast, "975318");
    assert_eq!(hd::user_on(&ast, "1000"), None);
    hd::wait_hint(&ast, "4101", "Unavailable");
    hd::assert_alive(&ast);
}

#[test]
fn unknown_user_by_prompts_is_nouser() {
    let ast = hd::start_with_general("hd-login-nouser", "max_attempts = 2");
    let mut phone = Baresip::start(&ast, "1002", false);
    let mark = ast.log_mark();
    phone.dial_answered(&ast, "*11", LONG);
    answer_prompt(&mut phone, &ast, mark, "agent-user", 1, "9999#");
    // The PIN is still asked, so a caller cannot probe which users exist.
    answer_prompt(&mut phone, &ast, mark, "agent-pass", 1, "1234#");
    // "Login incorrect. Please enter your agent number followed by the pound key."
    answer_prompt(&mut phone, &ast, mark, "agent-incorrect", 1, "9998#");
    answer_prompt(&mut phone, &ast, mark, "agent-pass", 2, "1234#");
    let status = hd::wait_status(&ast, mark, "1002", "UserLogin");
    assert_eq!(status.as_deref(), Some("NOUSER"), "{}", ast.log_since(mark));
    for user in ["9999", "9998"] {
        assert_eq!(
            hd::log_lines(&ast, mark, "WARNING", &["device 1002", user]).len(),
            1,
            "no warning naming device 1002 and user {user}:\n{}",
            ast.log_since(mark)
        );
    }
    assert_eq!(ast.prompts_played(mark, "1002", "agent-user"), 1);
    assert_eq!(ast.prompts_played(mark, "1002", "agent-incorrect"), 1);
    assert!(hd::bindings(&ast).iter().all(|(_, d)| d != "1002"));
}

#[test]
fn no_input_times_out_and_fails() {
    let ast = hd::start_with_general("hd-login-empty", "max_attempts = 1");
    let mut phone = Baresip::start(&ast, "1000", false);
    let mark = ast.log_mark();
    phone.dial_answered(&ast, "*11", LONG);
    // Nothing typed: the 5 s digit timeout ends the only attempt.
    let status = hd::wait_status(&ast, mark, "1000", "UserLogin");
    assert_eq!(status.as_deref(), Some("NOUSER"), "{}", ast.log_since(mark));
    let log = ast.log_since(mark);
    assert!(
        log.contains("device 1000") && log.contains("empty input"),
        "no log line explaining the empty entry:\n{log}"
    );
    assert!(log.contains("giving up after 1 attempts"), "{log}");
    assert_eq!(ast.prompts_played(mark, "1000", "agent-incorrect"), 0);
    assert_eq!(ast.prompts_played(mark, "1000", "vm-goodbye"), 1);
    assert_eq!(hd::user_on(&ast, "1000"), None);
}

#[test]
fn hangup_during_the_prompt_is_hangup_and_harmless() {
    let ast = hd::start("hd-login-hangup");
    let mut phone = Baresip::start(&ast, "1000", false);
    let mark = ast.log_mark();
    phone.dial_answered(&ast, "*11", LONG);
    answer_prompt(&mut phone, &ast, mark, "agent-user", 1, "4101#");
    assert!(hd::wait(
        || ast.prompts_played(mark, "1000", "agent-pass") >= 1
    ));
    phone.hangup();
    let status = hd::wait_status(&ast, mark, "1000", "After hangup");
    assert_eq!(status.as_deref(), Some("HANGUP"), "{}", ast.log_since(mark));
    assert_eq!(hd::user_on(&ast, "1000"), None);
    hd::assert_alive(&ast);
    assert!(!ast.log().contains("panic"));
    // The module still works: the same phone logs in.
    hd::login_ok(&ast, "1000", "4101", "1234");
    assert_eq!(hd::user_on(&ast, "1000").as_deref(), Some("4101"));
}

#[test]
fn userlogin_on_a_channel_that_is_not_a_device_fails() {
    let ast = hd::start("hd-login-nodevice");
    let mut ami = ast.ami();
    let mark = ast.log_mark();
    let r = ami.action(&[
        ("Action", "Originate"),
        ("Channel", "Local/login@a-test-context"),
        ("Application", "Wait"),
        ("Data", "1"),
        ("Async", "true"),
    ]);
    assert!(r.is_success(), "{r}");
    let status = hd::poll(|| {
        ast.log_since(mark)
            .lines()
            .find(|l| l.contains("NoOp(\"Local/login@a-test-context") && l.contains("UserLogin: "))
            .map(str::to_string)
    });
    let line = status.unwrap_or_else(|| panic!("no status:\n{}", ast.log_since(mark)));
    assert!(line.contains("UserLogin: FAILED"), "{line}");
    let warning = hd::wait_log_line(&ast, mark, "WARNING", &["is not a configured device"]);
    let warning = warning.unwrap_or_else(|| panic!("no warning:\n{}", ast.log_since(mark)));
    assert!(warning.contains("Local/login@a-test-context"), "{warning}");
    assert!(hd::devices_of(&ast, "4101").is_empty());
    hd::assert_alive(&ast);
}

/// An adhoc device with a `default_user`: a guest's `*12` gives it back to the default user;
/// the default user's own `*12` leaves it empty (the login ends, as the caller is told);
/// `deviceuser logout all` leaves every adhoc device empty, none goes back to its default
/// user.
#[test]
fn logout_gives_the_device_back_to_its_default_user_unless_it_is_that_user() {
    let conf = hd::sample_deviceuser_conf().replacen(
        "description = ARM 1\n",
        "description = ARM 1\ndefault_user = 4101\n",
        1,
    );
    let ast = hd::builder("hd-default-user")
        .conf("res_deviceuser.conf", &conf)
        .start();
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(u, d)| (u.to_string(), d.to_string()))
            .collect()
    };
    assert_eq!(
        hd::bindings(&ast),
        pairs(&[("2010", "2010"), ("4101", "1000")])
    );

    // A guest on 4101's desk logs out: the desk is 4101's again.
    hd::login_ok(&ast, "1000", "4102", "2345");
    assert_eq!(hd::user_on(&ast, "1000").as_deref(), Some("4102"));
    assert_eq!(hd::logout(&ast, "1000"), "SUCCESS");
    assert_eq!(hd::user_on(&ast, "1000").as_deref(), Some("4101"));

    // 4101 logs out: the desk stays empty, and calls to 4101 find no phone.
    assert_eq!(hd::logout(&ast, "1000"), "SUCCESS");
    assert_eq!(hd::user_on(&ast, "1000"), None);
    assert_eq!(hd::getvar(&ast, "DEVICEUSER_DIAL(4101)"), "");
    assert_eq!(hd::logout(&ast, "1000"), "NOTLOGGEDIN");

    // logout all: the guest on 1000 and the user on 1001 end; 1000 does not go back to 4101.
    hd::login_ok(&ast, "1000", "4102", "2345");
    ast.ami().login_ok("4103", "1001");
    let out = ast.cli("deviceuser logout all");
    assert!(out.contains("2 binding(s) removed"), "{out}");
    assert_eq!(hd::bindings(&ast), pairs(&[("2010", "2010")]));
    let out = ast.cli("deviceuser logout all");
    assert!(out.contains("0 binding(s) removed"), "{out}");
    hd::assert_alive(&ast);
}
