//! Migration from FreePBX: its AstDB keys are read from the running Asterisk, printed as
//! res_deviceuser.conf sections and logins, and applied only when asked.
mod common;

use common::Asterisk;

#[test]
fn freepbx_keys_are_shown_then_applied_on_request() {
    let ast = Asterisk::start("import-freepbx");
    let mut ami = ast.ami();
    for (family, key, val) in [
        ("AMPUSER", "4101/password", "1234"),
        ("AMPUSER", "4101/cidname", "Operator 4101"),
        ("AMPUSER", "4101/device", "1000"),
        ("AMPUSER", "4102/password", "2345"),
        ("AMPUSER", "4102/device", "1009"),
        ("DEVICE", "1000/type", "adhoc"),
        ("DEVICE", "1000/dial", "PJSIP/1000"),
        ("DEVICE", "1000/user", "4101"),
        ("DEVICE", "1009/type", "adhoc"),
        ("DEVICE", "1009/dial", "PJSIP/1009"),
        ("DEVICE", "1009/user", "4102"),
        ("DEVICE", "2010/type", "fixed"),
        ("DEVICE", "2010/default_user", "2010"),
    ] {
        let r = ami.action(&[
            ("Action", "DBPut"),
            ("Family", family),
            ("Key", key),
            ("Val", val),
        ]);
        assert!(r.is_success(), "{r}");
    }
    let out = ast.cli("deviceuser import freepbx");
    assert!(
        out.contains("[1000]\ntype = device\nmode = adhoc\ndial = PJSIP/1000"),
        "{out}"
    );
    assert!(out.contains("[2010]\ntype = device\nmode = fixed"), "{out}");
    assert!(
        out.contains("[4101]\ntype = user\npassword = 1234\nfullname = Operator 4101"),
        "{out}"
    );
    assert!(out.contains(";   4101 -> 1000"), "{out}");
    assert!(out.contains("nothing written"), "{out}");
    assert!(out.contains("3 devices, 2 users, 2 logins found"), "{out}");
    let bindings = ast.cli("deviceuser show bindings");
    assert_eq!(
        bindings.lines().last(),
        Some("1 binding found"),
        "no change without apply"
    );

    let out = ast.cli("deviceuser import freepbx apply");
    assert!(out.contains("applied: 4101 logged in on 1000"), "{out}");
    assert!(
        out.contains("skipped: 4102 on 1009: no such device"),
        "{out}"
    );
    let bindings = ast.cli("deviceuser show bindings user 4101");
    assert!(bindings.contains("1 binding found"), "{bindings}");
    let out = ast.cli("deviceuser import freepbx sideways");
    assert!(out.contains("Usage: deviceuser import freepbx"), "{out}");
}
