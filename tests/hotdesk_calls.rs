//! Calls through the sample dialplan with real SIP: a call to a user rings the
//! device(s) the user is logged in on (sipp UASes registered as those devices), a
//! logged-out user is unavailable, a logged-out adhoc phone may only call emergency
//! numbers, a fixed phone cannot log in, and the CDR of a call counts the user.
mod common;
mod hotdesk_common;

use common::sip::Sipp;
use common::Asterisk;
use hotdesk_common::{self as hd, LONG};

/// Hangs up every channel of `endpoint` through AMI.
fn hangup_calls_of(ast: &Asterisk, endpoint: &str) {
    let r = ast.ami().action(&[
        ("Action", "Hangup"),
        ("Channel", &format!("/^PJSIP\\/{endpoint}-/")),
    ]);
    assert!(r.is_success(), "AMI Hangup of {endpoint}: {r}");
}

/// INVITEs a sipp UAS received (request lines).
fn invites(uas: &Sipp) -> usize {
    uas.sip_messages()
        .iter()
        .filter(|m| m.starts_with("INVITE "))
        .count()
}

/// The `Dial(...)` data the dialplan used on a channel of `endpoint` after `mark`.
fn dial_data(ast: &Asterisk, mark: usize, endpoint: &str) -> Option<String> {
    let needle = format!("Dial(\"PJSIP/{endpoint}-");
    ast.log_since(mark).lines().find_map(|l| {
        let i = l.find(&needle)?;
        let rest = &l[i + needle.len()..];
        let start = rest.find(", \"")? + 3;
        let end = rest[start..].find('"')?;
        Some(rest[start..start + end].to_string())
    })
}

#[test]
fn a_call_to_the_user_rings_the_device_he_is_logged_in_on() {
    let ast = hd::start("hd-calls-ring");
    let uas = Sipp::uas(&ast, "1000");
    hd::login_ok(&ast, "1000", "4101", "1234");

    let mark = ast.log_mark();
    let mut caller = Sipp::call(&ast, "1099", "4101");
    assert!(
        uas.wait_message("INVITE sip:1000@", LONG),
        "device 1000 did not ring:\n{}\n{}",
        uas.report(),
        ast.log_since(mark)
    );
    assert!(
        caller.wait_message("SIP/2.0 200 OK", LONG),
        "the caller was not connected:\n{}",
        caller.report()
    );
    assert_eq!(
        dial_data(&ast, mark, "1099").as_deref(),
        Some("PJSIP/1000,30")
    );
    // Caller ID of the incoming call is the lobby phone's.
    let invite = uas
        .sip_messages()
        .into_iter()
        .find(|m| m.starts_with("INVITE "))
        .unwrap();
    assert!(invite.contains("1099"), "{invite}");
    hd::wait_hint(&ast, "4101", "InUse");

    hangup_calls_of(&ast, "1099");
    caller.finish(LONG).expect("the caller gets a BYE");
    hd::wait_hint(&ast, "4101", "Idle");
}

#[test]
fn with_two_logins_both_devices_ring() {
    let ast = hd::start("hd-calls-two");
    let uas0 = Sipp::uas_noanswer(&ast, "1000");
    let uas1 = Sipp::uas_noanswer(&ast, "1001");
    hd::login_ok(&ast, "1000", "4101", "1234");
    hd::login_ok(&ast, "1001", "4101", "1234");
    assert_eq!(hd::devices_of(&ast, "4101"), ["1000", "1001"]);

    let mark = ast.log_mark();
    let _caller = Sipp::call(&ast, "2010", "4101");
    for (dev, uas) in [("1000", &uas0), ("1001", &uas1)] {
        assert!(
            uas.wait_message(&format!("INVITE sip:{dev}@"), LONG),
            "device {dev} did not ring:\n{}\n{}",
            uas.report(),
            ast.log_since(mark)
        );
    }
    assert_eq!(
        dial_data(&ast, mark, "2010").as_deref(),
        Some("PJSIP/1000&PJSIP/1001,30")
    );
    hd::wait_hint(&ast, "4101", "Ringing");
    // The caller gives up: both phones stop ringing.
    hangup_calls_of(&ast, "2010");
    for uas in [&uas0, &uas1] {
        assert!(
            uas.wait_message("CANCEL sip:", LONG),
            "no CANCEL:\n{}",
            uas.report()
        );
        assert_eq!(invites(uas), 1);
    }
    hd::wait_hint(&ast, "4101", "Idle");
}

#[test]
fn a_logged_out_user_is_unavailable_and_his_old_phone_does_not_ring() {
    let ast = hd::start("hd-calls-unavail");
    let uas = Sipp::uas(&ast, "1000");
    hd::login_ok(&ast, "1000", "4101", "1234");
    assert_eq!(hd::logout(&ast, "1000"), "SUCCESS");

    let mark = ast.log_mark();
    let mut caller = Sipp::call(&ast, "1099", "4101");
    // The announcement is played to the caller, then the dialplan hangs up.
    caller
        .finish(LONG)
        .expect("the caller hears the announcement and gets a BYE");
    let log = ast.log_since(mark);
    assert!(
        log.contains("<PJSIP/1099-") && log.contains("Playing 'vm-isunavail."),
        "no unavailable announcement:\n{log}"
    );
    assert!(
        dial_data(&ast, mark, "1099").is_none(),
        "Dial was attempted:\n{log}"
    );
    assert_eq!(invites(&uas), 0, "the logged-out phone rang");
}

#[test]
fn a_logged_out_adhoc_phone_is_refused_except_emergency_numbers() {
    let ast = hd::start("hd-calls-refused");
    let uas = Sipp::uas(&ast, "1001");
    hd::login_ok(&ast, "1001", "4102", "2345");

    // 1000 has nobody logged in: a call to a logged-in colleague is refused.
    let mark = ast.log_mark();
    Sipp::call(&ast, "1000", "4102")
        .finish(LONG)
        .expect("the refusal is announced");
    let notice = hd::wait_log_line(
        &ast,
        mark,
        "NOTICE",
        &["Refused call from 1000 to 4102: nobody is logged in"],
    );
    assert!(notice.is_some(), "{}", ast.log_since(mark));
    assert!(dial_data(&ast, mark, "1000").is_none());
    assert_eq!(invites(&uas), 0, "4102's phone rang for a refused call");

    // 112 is allowed.
    let mark = ast.log_mark();
    Sipp::call(&ast, "1000", "112")
        .finish(LONG)
        .expect("the emergency call is answered");
    let notice = hd::wait_log_line(
        &ast,
        mark,
        "NOTICE",
        &[
            "Emergency call to 112 from 1000 (user '',",
            "caller ID \"ARM 1 Hall A\" <+15550101000>",
        ],
    );
    assert!(notice.is_some(), "{}", ast.log_since(mark));
    assert!(hd::log_lines(&ast, mark, "NOTICE", &["Refused call"]).is_empty());
}

#[test]
fn a_fixed_phone_cannot_log_in() {
    let ast = hd::start("hd-calls-fixed");
    let mark = ast.log_mark();
    let status = hd::call_for_status(&ast, "2010", "*11", "UserLogin");
    assert_eq!(status, "FIXED");
    let line = hd::wait_log_line(&ast, mark, "NOTICE", &["device 2010 is fixed"]);
    assert!(line.is_some(), "{}", ast.log_since(mark));
    let log = ast.log_since(mark);
    assert!(
        !log.contains("Playing 'agent-user."),
        "a fixed phone was asked for a user:\n{log}"
    );
    assert!(log.contains("Playing 'feature-not-avail-line."), "{log}");
    assert_eq!(hd::user_on(&ast, "2010").as_deref(), Some("2010"));
}

/// Splits a CSV line of cdr_csv (every field quoted).
fn csv_fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

#[test]
fn the_cdr_of_a_call_counts_the_user_not_the_phone() {
    let ast = hd::start("hd-calls-cdr");
    let _callee = Sipp::uas(&ast, "2010");
    hd::login_ok(&ast, "1000", "4101", "1234");

    let mut call = Sipp::call(&ast, "1000", "2010");
    assert!(
        call.wait_message("SIP/2.0 200 OK", LONG),
        "not connected:\n{}",
        call.report()
    );
    hangup_calls_of(&ast, "1000");
    call.finish(LONG).expect("the call ends with a BYE");

    // accountcode, src, dst, dcontext, clid, channel, dstchannel, ...
    let row = hd::poll(|| {
        ast.cdr_csv()
            .lines()
            .map(csv_fields)
            .find(|f| f.len() > 6 && f[6].starts_with("PJSIP/2010-"))
    })
    .unwrap_or_else(|| panic!("no CDR of the call:\n{}", ast.cdr_csv()));
    assert_eq!(row[0], "4101", "accountcode: {row:?}");
    assert_eq!(row[1], "4101", "src: {row:?}");
    assert_eq!(row[2], "2010", "dst: {row:?}");
    assert!(row[4].contains("Operator 4101"), "clid: {row:?}");
    assert!(row[5].starts_with("PJSIP/1000-"), "channel: {row:?}");
    assert!(row.contains(&"ANSWERED".to_string()), "{row:?}");
}
