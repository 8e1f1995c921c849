//! Config files as text: the shipped sample through `text::parse` and `Config::from_raw`,
//! the error classes of the README with their line numbers, and the FreePBX import's output
//! read back as a config file.

use deviceuser_core::config::RawConfig;
use deviceuser_core::{freepbx, text, Config, DeviceMode, MultipleLogins};

fn load(text: &str) -> Result<Config, Vec<String>> {
    let raw = text::parse("res_deviceuser.conf", text).map_err(|e| vec![e.to_string()])?;
    Config::from_raw(&raw)
        .map(|p| p.config)
        .map_err(|errors| errors.iter().map(|e| e.to_string()).collect())
}

#[test]
fn the_sample_config_is_valid() {
    let sample = include_str!("../../res_deviceuser.conf.sample");
    let c = load(sample).expect("sample config");
    let devices: Vec<&str> = c.devices.keys().collect();
    assert_eq!(devices, ["1000", "1001", "1002", "2010"]);
    assert_eq!(c.users.len(), 11);
    assert_eq!(c.device("2010").unwrap().mode, DeviceMode::Fixed);
    assert_eq!(
        c.device("2010").unwrap().default_user.as_deref(),
        Some("2010")
    );
    assert_eq!(c.device("1000").unwrap().description, "ARM 1");
    assert_eq!(c.general.multiple_logins, MultipleLogins::Yes);
    assert_eq!(c.general.allowed_numbers, ["112", "911"]);
    // The PIN table in the sample's comments matches its users.
    for (user, pin) in [
        ("4101", "1234"),
        ("4105", "5678"),
        ("4110", "0123"),
        ("2010", "2468"),
    ] {
        assert!(c.user(user).unwrap().password_matches(pin), "{user}");
    }
    assert_eq!(c.user("4110").unwrap().language.as_deref(), Some("ru"));
}

#[test]
fn every_error_is_reported_with_its_line() {
    let text = "\
[general]
multiple_logins = maybe
[1000]
type = device
mode = sometimes
[2010]
type = device
mode = fixed
[3000]
type = device
default_user = ghost
[a&b]
type = user
[1001]
type = device
dial = pjsip/1000
[1007]
type = device
dial = PJSIP/10 07
";
    let errors = load(text).unwrap_err();
    for want in [
        r#"res_deviceuser.conf line 2: [general] multiple_logins: bad value "maybe""#,
        r#"res_deviceuser.conf line 5: [1000] mode: unknown mode "sometimes""#,
        "res_deviceuser.conf line 6: [2010] default_user: a fixed device needs a default_user",
        r#"res_deviceuser.conf line 11: [3000] default_user: default_user "ghost" is not a configured user"#,
        r#"res_deviceuser.conf line 12: [a&b] id "a&b" contains forbidden character '&'"#,
        r#"res_deviceuser.conf line 16: [1001] dial: dial string "pjsip/1000" is already used by device 1000"#,
        r#"res_deviceuser.conf line 19: [1007] dial: dial string "PJSIP/10 07" contains a space"#,
    ] {
        assert!(
            errors.iter().any(|e| e.starts_with(want)),
            "{want:?} not in {errors:#?}"
        );
    }
    assert_eq!(errors.len(), 7, "{errors:#?}");
}

#[test]
fn syntax_errors_stop_at_the_first_bad_line() {
    for (text, want) in [
        (
            "type = device\n",
            "res_deviceuser.conf line 1: type: key outside a section",
        ),
        (
            "[1000]\ntype = device\nmode\n",
            "res_deviceuser.conf line 3: [1000] malformed line: expected key = value",
        ),
        (
            "[1000]\ntype = device\n[1001\n",
            "res_deviceuser.conf line 3: section header without closing ']'",
        ),
    ] {
        let e = load(text).unwrap_err();
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with(want), "{:?} is not {want:?}", e[0]);
    }
}

#[test]
fn long_lines_are_values_and_control_characters_are_refused() {
    let long = "x".repeat(100_000);
    let text = format!("[1000]\ntype = device\ndescription = {long}\n");
    let c = load(&text).expect("valid");
    assert_eq!(c.device("1000").unwrap().description.len(), 100_000);
    // Escape sequences would reach the administrator's terminal through the CLI.
    let text = "[4101]\ntype = user\nfullname = a\u{1b}[31mb\u{7}\n";
    let e = load(text).unwrap_err();
    assert!(
        e[0].contains("[4101]") && e[0].contains("not text"),
        "{e:?}"
    );
    // An id that long is refused; the message names the section once, not more.
    let text = format!("[{long}]\ntype = device\n");
    let e = load(&text).unwrap_err();
    assert!(
        e[0].contains("id longer than 64 characters"),
        "{}",
        &e[0][..200]
    );
    assert!(e[0].len() < 100_000 + 200);
}

#[test]
fn binary_garbage_is_an_error_not_a_panic() {
    let mut x: u32 = 12345;
    let bytes: Vec<u8> = (0..10_000)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (x >> 16) as u8
        })
        .collect();
    let text = String::from_utf8_lossy(&bytes);
    let e = load(&text).unwrap_err();
    assert!(!e.is_empty());
    assert!(e[0].starts_with("res_deviceuser.conf line "), "{}", e[0]);
}

fn entries(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn freepbx_import_renders_a_valid_config() {
    let i = freepbx::import(&entries(&[
        ("/AMPUSER/4101/password", "1234"),
        ("/AMPUSER/4101/cidname", "Operator 4101"),
        ("/DEVICE/1000/type", "adhoc"),
        ("/DEVICE/1000/dial", "PJSIP/1000"),
        ("/DEVICE/2010/type", "fixed"),
        ("/DEVICE/2010/default_user", "4101"),
    ]));
    let c = load(&freepbx::render_output(&i, &[], false)).expect("printed config is valid");
    assert_eq!(c.devices.len(), 2);
    assert_eq!(c.user("4101").unwrap().fullname, "Operator 4101");
    assert_eq!(c.device("2010").unwrap().mode, DeviceMode::Fixed);
}

/// A `;` in a FreePBX value is escaped, so it does not start a comment.
#[test]
fn freepbx_values_with_semicolons_survive_rendering() {
    let i = freepbx::import(&entries(&[
        ("/AMPUSER/4101/password", "12;34"),
        ("/AMPUSER/4101/cidname", "Smith; Reception"),
        ("/DEVICE/1000/type", "adhoc"),
        ("/DEVICE/1000/description", "Desk 1; window"),
    ]));
    let c = load(&freepbx::render_output(&i, &[], false)).expect("printed config is valid");
    assert_eq!(c.user("4101").unwrap().fullname, "Smith; Reception");
    assert!(c.user("4101").unwrap().password_matches("12;34"));
    assert_eq!(c.device("1000").unwrap().description, "Desk 1; window");
}

#[test]
fn rendered_raw_config_parses_back() {
    let raw = text::parse(
        "f",
        "[a\\;b](!)\nk = v\\;w\n[c](a\\;b)\nx => y\n[c](+)\nx += z\n",
    )
    .unwrap();
    assert_eq!(raw.sections.len(), 1);
    let again: RawConfig = text::parse("f", &text::render(&raw)).unwrap();
    let kv = |r: &RawConfig| -> Vec<(String, String)> {
        r.sections[0]
            .vars
            .iter()
            .map(|v| (v.key.clone(), v.value.clone()))
            .collect()
    };
    assert_eq!(
        kv(&raw),
        [("k".into(), "v;w".into()), ("x".into(), "yz".into())]
    );
    assert_eq!(kv(&again), kv(&raw));
}
