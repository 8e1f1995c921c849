//! AMI actions and events, and the admin CLI, over a real AMI TCP session.
mod common;

use std::time::Duration;

use common::Asterisk;

const T: Duration = Duration::from_secs(10);

#[test]
fn login_logout_actions_emit_events_and_change_bindings() {
    let ast = Asterisk::start("ami-login");
    let mut ami = ast.ami_events();

    let r = ami.action(&[
        ("Action", "DeviceUserLogin"),
        ("User", "4101"),
        ("Device", "1000"),
    ]);
    assert!(r.is_success(), "{r}");
    let ev = ami
        .wait_event("DeviceUserLogin", |m| m.get("User") == Some("4101"), T)
        .expect("DeviceUserLogin event");
    assert_eq!(ev.get("Device"), Some("1000"));
    assert_eq!(ev.get("Reason"), Some("admin"));
    assert_eq!(
        ami.getvar("DEVICEUSER_DIAL(4101)", None).as_deref(),
        Some("PJSIP/1000")
    );

    // Another user on the occupied device replaces the first.
    let r = ami.action(&[
        ("Action", "DeviceUserLogin"),
        ("User", "4102"),
        ("Device", "1000"),
    ]);
    assert!(r.is_success(), "{r}");
    let ev = ami
        .wait_event("DeviceUserLogout", |m| m.get("User") == Some("4101"), T)
        .expect("4101 replaced");
    assert_eq!(ev.get("Reason"), Some("replaced"));
    assert!(
        ev.get("Duration").is_some_and(|d| d.parse::<u64>().is_ok()),
        "{ev}"
    );

    let r = ami.action(&[("Action", "DeviceUserLogout"), ("Device", "1000")]);
    assert!(r.is_success(), "{r}");
    let ev = ami
        .wait_event("DeviceUserLogout", |m| m.get("User") == Some("4102"), T)
        .expect("4102 logged out");
    assert_eq!(ev.get("Reason"), Some("admin"));
    assert_eq!(
        ami.getvar("DEVICEUSER_DIAL(4102)", None).as_deref(),
        Some("")
    );

    // Logout of a user everywhere.
    for d in ["1000", "1001"] {
        ami.action(&[
            ("Action", "DeviceUserLogin"),
            ("User", "4103"),
            ("Device", d),
        ]);
    }
    assert_eq!(
        ami.getvar("DEVICEUSER_DIAL(4103)", None).as_deref(),
        Some("PJSIP/1000&PJSIP/1001")
    );
    let r = ami.action(&[("Action", "DeviceUserLogout"), ("User", "4103")]);
    assert!(r.is_success(), "{r}");
    assert!(r.val("Message").contains("2 binding"), "{r}");
    assert_eq!(
        ami.getvar("DEVICEUSER_DIAL(4103)", None).as_deref(),
        Some("")
    );
}

#[test]
fn bad_parameters_get_clear_errors() {
    let ast = Asterisk::start("ami-errors");
    let mut ami = ast.ami();
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("Action", "DeviceUserLogin"), ("User", "4101")],
            "required",
        ),
        (
            &[
                ("Action", "DeviceUserLogin"),
                ("User", "9999"),
                ("Device", "1000"),
            ],
            "no such user",
        ),
        (
            &[
                ("Action", "DeviceUserLogin"),
                ("User", "4101"),
                ("Device", "9"),
            ],
            "no such device",
        ),
        (
            &[
                ("Action", "DeviceUserLogin"),
                ("User", "4101"),
                ("Device", "2010"),
            ],
            "fixed",
        ),
        (&[("Action", "DeviceUserLogout")], "either Device"),
        (
            &[
                ("Action", "DeviceUserLogout"),
                ("User", "4101"),
                ("Device", "1000"),
            ],
            "either Device",
        ),
        (
            &[("Action", "DeviceUserLogout"), ("Device", "1000")],
            "not logged in",
        ),
        (
            &[("Action", "DeviceUserBindings"), ("User", "nobody")],
            "No such user",
        ),
        (
            &[("Action", "DeviceUserBindings"), ("Device", "nowhere")],
            "No such device",
        ),
    ];
    for (fields, needle) in cases {
        let r = ami.action(fields);
        assert_eq!(r.response(), Some("Error"), "{fields:?}: {r}");
        assert!(
            r.val("Message")
                .to_lowercase()
                .contains(&needle.to_lowercase()),
            "{fields:?}: message {:?} lacks {needle:?}",
            r.val("Message")
        );
    }
    assert!(ast.is_running());
}

#[test]
fn list_actions_report_bindings_devices_and_users() {
    let ast = Asterisk::start("ami-lists");
    let mut ami = ast.ami();
    ami.action(&[
        ("Action", "DeviceUserLogin"),
        ("User", "4105"),
        ("Device", "1002"),
    ]);

    let (r, items) = ami.list_action(&[("Action", "DeviceUserBindings")]);
    assert!(r.is_success(), "{r}");
    let pairs: Vec<(&str, &str)> = items
        .iter()
        .map(|m| (m.val("User"), m.val("Device")))
        .collect();
    assert_eq!(pairs, [("2010", "2010"), ("4105", "1002")]);
    assert!(items.iter().all(|m| m.event() == Some("DeviceUserBinding")));

    let (_, items) = ami.list_action(&[("Action", "DeviceUserBindings"), ("User", "4105")]);
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].val("Device"), "1002");
    let (_, items) = ami.list_action(&[("Action", "DeviceUserBindings"), ("Device", "1000")]);
    assert!(items.is_empty());

    let (r, devices) = ami.list_action(&[("Action", "DeviceUserDevices")]);
    assert!(r.is_success(), "{r}");
    assert_eq!(devices.len(), 4);
    let d = devices.iter().find(|m| m.val("Device") == "1002").unwrap();
    assert_eq!(
        (d.val("Mode"), d.val("User"), d.val("Dial")),
        ("adhoc", "4105", "PJSIP/1002")
    );
    let f = devices.iter().find(|m| m.val("Device") == "2010").unwrap();
    assert_eq!((f.val("Mode"), f.val("DefaultUser")), ("fixed", "2010"));

    let (r, users) = ami.list_action(&[("Action", "DeviceUserUsers")]);
    assert!(r.is_success(), "{r}");
    assert_eq!(users.len(), 11);
    let u = users.iter().find(|m| m.val("User") == "4105").unwrap();
    assert_eq!(u.val("Devices"), "1002");
    // Device 1002 is not registered: the user's aggregate state is unavailable.
    assert_eq!(u.val("State"), "UNAVAILABLE");
    let u = users.iter().find(|m| m.val("User") == "4110").unwrap();
    assert_eq!(u.val("Language"), "ru");
}

#[test]
fn actions_need_the_agent_class() {
    let ast = Asterisk::start("ami-perm");
    let mut ro = ast.ami_as("readonly", "readonly").expect("readonly login");
    let r = ro.action(&[
        ("Action", "DeviceUserLogin"),
        ("User", "4101"),
        ("Device", "1000"),
    ]);
    assert_eq!(r.response(), Some("Error"), "{r}");
    assert!(r.val("Message").contains("Permission denied"), "{r}");
    let (r, _) = ro.list_action(&[("Action", "DeviceUserBindings")]);
    assert_eq!(r.response(), Some("Error"), "{r}");
    let out = ast.cli("deviceuser show bindings");
    assert_eq!(
        out.lines().last(),
        Some("1 binding found"),
        "nothing changed: {out}"
    );
}

#[test]
fn cli_login_and_logout_commands() {
    let ast = Asterisk::start("cli-admin");
    let out = ast.cli("deviceuser login 4101 1000");
    assert!(out.contains("User 4101 logged in on device 1000"), "{out}");
    let out = ast.cli("deviceuser login 4101 1000");
    assert!(out.contains("already logged in"), "{out}");
    let out = ast.cli("deviceuser login 4101 2010");
    assert!(out.contains("fixed"), "{out}");
    let out = ast.cli("deviceuser login nobody 1000");
    assert!(out.contains("no such user"), "{out}");
    ast.cli("deviceuser login 4102 1001");
    let out = ast.cli("deviceuser show bindings user 4102");
    assert!(out.contains("1 binding found"), "{out}");

    let out = ast.cli("deviceuser logout device 1000");
    assert!(out.contains("1 binding(s) removed"), "{out}");
    let out = ast.cli("deviceuser logout user 4101");
    assert!(out.contains("not logged in"), "{out}");
    let out = ast.cli("deviceuser logout all");
    assert!(out.contains("1 binding(s) removed"), "{out}");
    let out = ast.cli("deviceuser show bindings");
    assert_eq!(
        out.lines().last(),
        Some("1 binding found"),
        "only the fixed binding: {out}"
    );
    let out = ast.cli("deviceuser logout sideways 1");
    assert!(out.contains("Usage: deviceuser logout"), "{out}");
    let out = ast.cli("_command matchesarray \"deviceuser logout \" \"\"");
    assert!(
        out.contains("device") && out.contains("user") && out.contains("all"),
        "{out}"
    );
    let out = ast.cli("_command matchesarray \"deviceuser login 4101 10\" \"10\"");
    assert!(out.contains("1000") && out.contains("1002"), "{out}");
}
