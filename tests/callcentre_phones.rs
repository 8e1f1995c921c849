//! A logged-out phone that behaves, on the real Asterisk with real SIP: what it may dial
//! follows `allowed_numbers` (reloaded), its emergency calls carry the desk's
//! `emergency_callerid`, and the prompts say what happened.
mod common;
mod hotdesk_common;

use common::sip::Sipp;
use common::Asterisk;
use hotdesk_common as hd;

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
