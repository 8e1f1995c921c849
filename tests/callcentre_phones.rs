//! A logged-out phone that behaves, on the real Asterisk with real SIP: what it may dial
//! follows `allowed_numbers` (reloaded), its emergency calls carry the desk's
//! `emergency_callerid`, and the prompts say what happened.
mod common;
mod hotdesk_common;

use common::sip::{Baresip, Sipp};
use common::Asterisk;
use hotdesk_common::{self as hd, LONG};

/// The sample dialplan whose emergency context rings the lobby phone 1099 (a sipp UAS)
/// instead of playing an announcement.
fn emergency_dialplan() -> String {
    let plan = hd::test_dialplan();
    let out = plan.replacen(
        " same => n,Answer()\n same => n,Playback(ss-noservice)\n same => n,Hangup()\n\n; ---",
        " same => n,Dial(PJSIP/1099,20)\n same => n,Hangup()\n\n; ---",
        1,
    );
    assert_ne!(out, plan, "the sample's emergency context changed");
    out
}

fn with_allowed(conf: &str, numbers: &str) -> String {
    let out = conf.replacen(
        "allowed_numbers = 112,911\n",
        &format!("allowed_numbers = {numbers}\n"),
        1,
    );
    assert_ne!(out, conf, "no allowed_numbers line in the sample");
    out
}

/// The INVITEs a sipp UAS received.
fn invites(uas: &Sipp) -> Vec<String> {
    uas.sip_messages()
        .into_iter()
        .filter(|m| m.starts_with("INVITE "))
        .collect()
}

/// Calls `number` from a logged-out `endpoint`: Some(INVITE at the lobby phone) if it got
/// through, None if the dialplan refused it.
fn call(ast: &Asterisk, uas: &Sipp, endpoint: &str, number: &str) -> Option<String> {
    let before = invites(uas).len();
    let mark = ast.log_mark();
    let mut caller = Sipp::call(ast, endpoint, number);
    let refused = format!("Refused call from {endpoint} to {number}");
    let outcome = hd::poll(|| {
        if let Some(i) = invites(uas).get(before) {
            return Some(Some(i.clone()));
        }
        ast.log_since(mark).contains(&refused).then_some(None)
    });
    let _ = ast.ami().action(&[
        ("Action", "Hangup"),
        ("Channel", &format!("/^PJSIP\\/{endpoint}-/")),
    ]);
    caller.kill();
    outcome.unwrap_or_else(|| {
        panic!(
            "the call {endpoint} -> {number} neither rang nor was refused:\n{}",
            ast.log_since(mark)
        )
    })
}

#[test]
fn allowed_numbers_follow_a_reload_and_emergency_calls_show_the_desk() {
    let conf = hd::sample_deviceuser_conf();
    let ast = hd::builder("ph-allowed")
        .conf("extensions.conf", &emergency_dialplan())
        .conf("res_deviceuser.conf", &conf)
        .start();
    let uas = Sipp::uas(&ast, "1099");
    let help = ast.cli("core show function DEVICEUSER_ALLOWED");
    assert!(
        help.contains("allowed_numbers"),
        "no documentation:\n{help}"
    );
    assert_eq!(hd::getvar(&ast, "DEVICEUSER_ALLOWED(112)"), "1");
    assert_eq!(hd::getvar(&ast, "DEVICEUSER_ALLOWED(113)"), "0");

    // 1000 has nobody on it: 112 gets through with the desk's caller ID, 113 does not.
    let invite = call(&ast, &uas, "1000", "112").expect("112 is allowed");
    assert!(
        invite.contains("+15550101000") && invite.contains("ARM 1 Hall A"),
        "the emergency call does not carry the desk's caller ID:\n{invite}"
    );
    assert_eq!(call(&ast, &uas, "1000", "113"), None);
    // A desk without emergency_callerid keeps its own caller ID.
    let invite = call(&ast, &uas, "1001", "911").expect("911 is allowed");
    assert!(
        !invite.contains("+15550101000") && invite.contains("1001"),
        "{invite}"
    );

    // allowed_numbers = 113 and a reload: now 113 gets through and 112 does not.
    ast.write_conf("res_deviceuser.conf", &with_allowed(&conf, "113"));
    let out = ast.cli("module reload res_deviceuser.so");
    assert!(!out.contains("rror"), "{out}");
    assert!(hd::wait(
        || hd::getvar(&ast, "DEVICEUSER_ALLOWED(113)") == "1"
    ));
    assert!(
        call(&ast, &uas, "1000", "113").is_some(),
        "113 after the reload"
    );
    assert_eq!(
        call(&ast, &uas, "1000", "112"),
        None,
        "112 after the reload"
    );

    // A logged-in user may dial them all; the emergency number keeps the desk's caller ID.
    hd::login_ok(&ast, "1000", "4101", "1234");
    let invite = call(&ast, &uas, "1000", "113").expect("113 with a user");
    assert!(invite.contains("+15550101000"), "{invite}");
    hd::assert_alive(&ast);
}

/// The sample configuration with extra `[general]` lines, and user 4103 without a password.
fn prompts_conf(general: &str) -> String {
    let conf = hd::deviceuser_conf_with_general(general);
    let out = conf.replacen(
        "[4103]\ntype = user\npassword = 3456\n",
        "[4103]\ntype = user\n",
        1,
    );
    assert_ne!(out, conf, "the sample's 4103 changed");
    out
}

/// Whether `file` started playing on a channel of `endpoint` after `mark`, in `language`.
fn played_in(ast: &Asterisk, mark: usize, endpoint: &str, file: &str, language: &str) -> bool {
    let chan = format!("<PJSIP/{endpoint}-");
    let what = format!("Playing '{file}.");
    let lang = format!("(language '{language}')");
    ast.log_since(mark)
        .lines()
        .any(|l| l.contains(&chan) && l.contains(&what) && l.contains(&lang))
}

#[test]
fn each_refusal_says_what_happened() {
    let ast = hd::builder("ph-prompts")
        .conf(
            "res_deviceuser.conf",
            &prompts_conf("max_login_failures = 2\nmultiple_logins = no"),
        )
        .start();
    let says = |mark: usize, endpoint: &str, file: &str| {
        assert!(
            hd::wait(|| ast.prompts_played(mark, endpoint, file) >= 1),
            "{file} was not played on {endpoint}:\n{}",
            ast.log_since(mark)
        );
    };

    // A user without a password.
    let mark = ast.log_mark();
    assert_eq!(hd::login(&ast, "1000", "4103", "1111"), "NOPASSWORD");
    says(mark, "1000", "feature-not-avail-line");
    assert_eq!(ast.prompts_played(mark, "1000", "vm-incorrect"), 0);

    // Locked out by the second wrong PIN, and while locked.
    assert_eq!(hd::login(&ast, "1000", "4104", "0000"), "FAILED");
    let mark = ast.log_mark();
    assert_eq!(hd::login(&ast, "1000", "4104", "0001"), "LOCKED");
    says(mark, "1000", "disabled");
    let mark = ast.log_mark();
    assert_eq!(hd::login(&ast, "1000", "4104", "4567"), "LOCKED");
    says(mark, "1000", "disabled");

    // Logged in elsewhere (multiple_logins = no), user given by the dialplan.
    hd::login_ok(&ast, "1000", "4101", "1234");
    let mark = ast.log_mark();
    assert_eq!(hd::login(&ast, "1001", "4101", "1234"), "DENIED");
    says(mark, "1001", "vm-incorrect");

    // A fixed phone: *11 and *12 both say the feature is not there; *12 changes nothing.
    let mark = ast.log_mark();
    assert_eq!(
        hd::call_for_status(&ast, "2010", "*11", "UserLogin"),
        "FIXED"
    );
    says(mark, "2010", "feature-not-avail-line");
    let mark = ast.log_mark();
    assert_eq!(hd::logout(&ast, "2010"), "FIXED");
    says(mark, "2010", "feature-not-avail-line");
    assert_eq!(ast.prompts_played(mark, "2010", "agent-loggedoff"), 0);
    assert_eq!(hd::user_on(&ast, "2010").as_deref(), Some("2010"));
}

#[test]
fn a_user_logged_in_elsewhere_is_told_and_another_user_may_log_in() {
    let ast = hd::start_with_general("ph-denied", "multiple_logins = no");
    ast.ami().login_ok("4101", "1000");
    let mut phone = Baresip::start(&ast, "1001", false);
    let mark = ast.log_mark();
    phone.dial_answered(&ast, "*11", LONG);
    // The n-th time each prompt plays, and what the caller types then.
    for (prompt, n, digits) in [
        ("agent-user", 1, "4101#"),
        ("agent-pass", 1, "1234#"),
        ("agent-alreadyon", 1, "4102#"),
        ("agent-pass", 2, "2345#"),
    ] {
        assert!(
            hd::wait(|| ast.prompts_played(mark, "1001", prompt) >= n),
            "{prompt} #{n} never played:\n{}",
            ast.log_since(mark)
        );
        phone.send_dtmf(digits);
    }
    assert_eq!(
        hd::wait_status(&ast, mark, "1001", "UserLogin").as_deref(),
        Some("SUCCESS"),
        "{}",
        ast.log_since(mark)
    );
    assert_eq!(hd::user_on(&ast, "1001").as_deref(), Some("4102"));
    assert_eq!(hd::user_on(&ast, "1000").as_deref(), Some("4101"));
}

#[test]
fn the_pin_prompt_and_the_logout_confirmation_speak_the_users_language() {
    // 4110 speaks Russian; the phones' channels are English.
    let ast = hd::start("ph-language");
    let mark = ast.log_mark();
    let mut call = Sipp::call(&ast, "1000", "*114110");
    assert!(
        hd::wait(|| played_in(&ast, mark, "1000", "agent-pass", "ru")),
        "the PIN prompt was not in Russian:\n{}",
        ast.log_since(mark)
    );
    let _ = ast
        .ami()
        .action(&[("Action", "Hangup"), ("Channel", "/^PJSIP\\/1000-/")]);
    call.kill();
    // An unknown user is asked in the channel's language.
    let mark = ast.log_mark();
    let mut call = Sipp::call(&ast, "1001", "*114999");
    assert!(
        hd::wait(|| played_in(&ast, mark, "1001", "agent-pass", "en")),
        "{}",
        ast.log_since(mark)
    );
    let _ = ast
        .ami()
        .action(&[("Action", "Hangup"), ("Channel", "/^PJSIP\\/1001-/")]);
    call.kill();

    // *12 confirms in the language of the user who logged out.
    ast.ami().login_ok("4110", "1002");
    let mark = ast.log_mark();
    assert_eq!(hd::logout(&ast, "1002"), "SUCCESS");
    assert!(
        played_in(&ast, mark, "1002", "agent-loggedoff", "ru"),
        "{}",
        ast.log_since(mark)
    );
    ast.ami().login_ok("4101", "1002");
    let mark = ast.log_mark();
    assert_eq!(hd::logout(&ast, "1002"), "SUCCESS");
    assert!(played_in(&ast, mark, "1002", "agent-loggedoff", "en"));
}
