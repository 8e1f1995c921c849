//! The dialplan functions `DEVICEUSER_DIAL`, `DEVICEUSER_USER` and `DEVICEUSER`,
//! read through AMI `Getvar` after real SIP logins, their errors, and the user's
//! language on the login channel.
mod common;
mod hotdesk_common;

use common::sip::Sipp;
use hotdesk_common as hd;

#[test]
fn functions_follow_the_logins() {
    let ast = hd::start("hd-fn");
    Sipp::register(&ast, "1000").expect("REGISTER 1000");
    Sipp::register(&ast, "1001").expect("REGISTER 1001");

    // Nobody logged in.
    let mut ami = ast.ami();
    let mut get = |expr: &str| {
        ami.getvar(expr, None)
            .unwrap_or_else(|| panic!("Getvar {expr} failed"))
    };
    assert_eq!(get("DEVICEUSER_DIAL(4101)"), "");
    assert_eq!(get("DEVICEUSER_USER(1000)"), "");
    assert_eq!(get("DEVICEUSER_USER(2010)"), "2010");
    assert_eq!(get("DEVICEUSER(4101,devices)"), "");
    assert_eq!(get("DEVICEUSER(4101,state)"), "UNAVAILABLE");
    assert_eq!(get("DEVICEUSER(4101,fullname)"), "Operator 4101");
    assert_eq!(get("DEVICEUSER(4101,cid_number)"), "4101");
    assert_eq!(get("DEVICEUSER(4101,language)"), "en");
    assert_eq!(get("DEVICEUSER(4110,language)"), "ru");
    assert_eq!(get("DEVICEUSER(2010,fullname)"), "Reception");

    hd::login_ok(&ast, "1000", "4101", "1234");
    hd::login_ok(&ast, "1001", "4101", "1234");
    hd::wait_hint(&ast, "4101", "Idle");
    let mut ami = ast.ami();
    let mut get = |expr: &str| {
        ami.getvar(expr, None)
            .unwrap_or_else(|| panic!("Getvar {expr} failed"))
    };
    assert_eq!(get("DEVICEUSER_DIAL(4101)"), "PJSIP/1000&PJSIP/1001");
    assert_eq!(get("DEVICEUSER(4101,dial)"), "PJSIP/1000&PJSIP/1001");
    assert_eq!(get("DEVICEUSER(4101,devices)"), "1000,1001");
    assert_eq!(get("DEVICEUSER_USER(1000)"), "4101");
    assert_eq!(get("DEVICEUSER_USER(1001)"), "4101");
    assert_eq!(get("DEVICEUSER_USER(1002)"), "");
    assert_eq!(get("DEVICEUSER(4101,state)"), "NOT_INUSE");
    assert_eq!(get("DEVICEUSER_DIAL(4102)"), "");

    assert_eq!(hd::logout(&ast, "1000"), "SUCCESS");
    assert_eq!(hd::getvar(&ast, "DEVICEUSER_DIAL(4101)"), "PJSIP/1001");
    assert_eq!(hd::getvar(&ast, "DEVICEUSER(4101,devices)"), "1001");
    assert_eq!(hd::getvar(&ast, "DEVICEUSER_USER(1000)"), "");
}

#[test]
fn unknown_users_devices_and_fields_are_errors_in_the_log() {
    let ast = hd::start("hd-fn-errors");
    let mut ami = ast.ami();
    let cases = [
        (
            "DEVICEUSER_DIAL(9999)",
            "DEVICEUSER_DIAL",
            "no such user \"9999\"",
        ),
        (
            "DEVICEUSER_DIAL()",
            "DEVICEUSER_DIAL",
            "expected exactly one argument",
        ),
        (
            "DEVICEUSER_USER(9999)",
            "DEVICEUSER_USER",
            "no such device \"9999\"",
        ),
        // AMI's dummy channel has no name: there is no channel to find a device from.
        (
            "DEVICEUSER_USER()",
            "DEVICEUSER_USER",
            "called without a channel",
        ),
        (
            "DEVICEUSER(9999,fullname)",
            "DEVICEUSER",
            "no such user \"9999\"",
        ),
        (
            "DEVICEUSER(4101,shoesize)",
            "DEVICEUSER",
            "unknown field \"shoesize\"",
        ),
        ("DEVICEUSER(4101)", "DEVICEUSER", "expected two arguments"),
    ];
    for (expr, func, why) in cases {
        let mark = ast.log_mark();
        let value = ami.getvar(expr, None).unwrap_or_default();
        assert_eq!(value, "", "{expr} gave a value");
        let line = hd::wait_log_line(&ast, mark, "WARNING", &[&format!("{func}: "), why]);
        assert!(
            line.is_some(),
            "no warning for {expr}:\n{}",
            ast.log_since(mark)
        );
    }
    // Writing is refused.
    let mark = ast.log_mark();
    ami.action(&[
        ("Action", "Setvar"),
        ("Variable", "DEVICEUSER(4101,fullname)"),
        ("Value", "Somebody Else"),
    ]);
    assert!(
        hd::wait_log_line(&ast, mark, "WARNING", &["read-only"]).is_some(),
        "{}",
        ast.log_since(mark)
    );
    assert_eq!(
        ami.getvar("DEVICEUSER(4101,fullname)", None).as_deref(),
        Some("Operator 4101")
    );
    hd::assert_alive(&ast);
}

#[test]
fn the_login_channel_takes_the_users_language() {
    let ast = hd::start("hd-fn-language");
    let mark = ast.log_mark();
    hd::login_ok(&ast, "1000", "4110", "0123");
    let log = ast.log_since(mark);
    assert!(
        log.lines().any(|l| l.contains("<PJSIP/1000-")
            && l.contains("Playing 'agent-loginok.")
            && l.contains("(language 'ru')")),
        "the confirmation is not in Russian:\n{log}"
    );
}
