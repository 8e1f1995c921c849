//! The harness against a real Asterisk, without res_deviceuser: boot, CLI, AMI,
//! a SIP registration and a BLF subscription.

mod common;

use common::sip::Sipp;
use common::{Asterisk, TIMEOUT};

/// The sample dialplan plus a hint on a Custom: device where the phones subscribe.
fn dialplan_with_custom_hint() -> String {
    let sample = std::fs::read_to_string(common::repo().join("samples/extensions.conf")).unwrap();
    format!("{sample}\n[deviceuser-hints]\nexten => 9000,hint,Custom:x\n")
}

#[test]
fn boots_cli_and_ami() {
    let ast = Asterisk::builder("selftest-boot")
        .with_module(false)
        .start();
    assert!(ast.pid > 0);
    let version = ast.cli("core show version");
    assert!(
        version.contains("Asterisk 22"),
        "core show version: {version}"
    );
    assert_eq!(ast.maps_lines("res_deviceuser.so"), 0);

    let mut ami = ast.ami();
    assert!(
        ami.banner.starts_with("Asterisk Call Manager/"),
        "banner {:?}",
        ami.banner
    );
    let pong = ami.action(&[("Action", "Ping")]);
    assert_eq!(pong.response(), Some("Success"), "{pong}");
    assert_eq!(pong.get("Ping"), Some("Pong"), "{pong}");

    // Command output through AMI, and a list action.
    let out = ami.command("core show version");
    assert!(out.contains("Asterisk 22"), "{out}");
    let (resp, items) = ami.list_action(&[("Action", "PJSIPShowEndpoints")]);
    assert!(resp.is_success(), "{resp}");
    let names: Vec<&str> = items.iter().map(|m| m.val("ObjectName")).collect();
    for ep in ["1000", "1001", "1002", "2010", "1099"] {
        assert!(names.contains(&ep), "endpoint {ep} missing from {names:?}");
    }

    // The readonly manager user exists; a wrong secret is refused.
    assert!(ast.ami_as("readonly", "readonly").is_ok());
    assert!(ast.ami_as("deviceuser", "wrong").is_err());
}

#[test]
fn sipp_registers() {
    let ast = Asterisk::builder("selftest-register")
        .with_module(false)
        .start();
    Sipp::register(&ast, "1000").expect("REGISTER as 1000");
    let contacts = ast.cli("pjsip show contacts");
    assert!(
        contacts.contains("1000/sip:1000@127.0.0.1"),
        "pjsip show contacts:\n{contacts}"
    );
    // A wrong password is refused.
    assert!(common::sip::Sipp::register_with(&ast, "1001", "nope", 60).is_err());
}

#[test]
fn blf_watcher_sees_custom_state_changes() {
    let ast = Asterisk::builder("selftest-blf")
        .with_module(false)
        .conf("extensions.conf", &dialplan_with_custom_hint())
        .start();
    let mut ami = ast.ami();
    ami.setvar_ok("DEVICE_STATE(Custom:x)", "NOT_INUSE");

    let watcher = Sipp::watcher(&ast, "1000", "9000");
    let first = watcher
        .wait_notify(0, "<basic>open</basic>", TIMEOUT)
        .unwrap_or_else(|| panic!("no initial NOTIFY with an open pidf:\n{}", watcher.report()));
    assert!(first.contains("pidf"), "{first}");
    assert!(!first.contains("On the phone"), "{first}");
    let seen = watcher.notify_bodies().len();

    let out = ast.cli("devstate change Custom:x INUSE");
    assert!(!out.contains("Usage"), "{out}");
    let busy = watcher
        .wait_notify(seen, "On the phone", TIMEOUT)
        .unwrap_or_else(|| panic!("no NOTIFY for INUSE:\n{}", watcher.report()));
    assert!(busy.contains("on-the-phone"), "{busy}");
    assert!(ast.cli("core show hint 9000").contains("InUse"));

    let seen = watcher.notify_bodies().len();
    ast.cli("devstate change Custom:x UNAVAILABLE");
    watcher
        .wait_notify(seen, "<basic>closed</basic>", TIMEOUT)
        .unwrap_or_else(|| panic!("no NOTIFY for UNAVAILABLE:\n{}", watcher.report()));
}
