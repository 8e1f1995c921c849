//! Values in the module's log lines: `"`, `\`, CR and LF sent through every surface (AMI
//! actions and Getvar, dialplan applications and functions, the CLI, config values and ids)
//! never end a field or a line. Every line the module logs is read back with the module's own
//! reader (`deviceuser_core::logtext`) into the fields and words it should have, and no line of
//! the log starts with text a caller sent.
mod common;
mod hotdesk_common;

use common::sip::Sipp;
use common::Asterisk;
use deviceuser_core::logtext::{fields, tokens};
use deviceuser_kit::ami::Wire;
use hotdesk_common as hd;
use std::time::{Duration, Instant};

/// What a caller sends: ends a quoted field, adds a field of its own, escapes, and starts a
/// line that looks like an AMI event.
const HOSTILE: &str = "x\" Reason=\"ok\\q \r\nEvent: Fake";
/// The same over AMI, where a line feed ends the header (a bare CR does not).
const HOSTILE_AMI: &str = "x\" Reason=\"ok\\q \rEvent: Fake";
/// A config value (one line of the file).
const HOSTILE_CONF: &str = "x\" Reason=\"ok\\q";
/// A user id the config accepts (no space, no control character).
const ODD_USER: &str = "q\"u\\o";

/// Only levels up to 2 of verbose messages: Asterisk's own `Executing [...]` lines (level 3)
/// print application data raw, line feeds included; the module's lines are NOTICE or higher
/// here (with `commit_log`), or verbose level 2.
const LOGGER_CONF: &str = "\
[general]
dateformat = %F %T.%3q
[logfiles]
full.log => notice,warning,error,verbose(2)
console => error
";

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Calls from phone 1000: each extension hands [`HOSTILE`] (decoded at run time, so the
/// dialplan file holds no control character) to one application or function.
fn dialplan() -> String {
    let h = format!("Set(H=${{BASE64_DECODE({})}})", base64(HOSTILE.as_bytes()));
    format!(
        "{}
[from-devices]
exten => 7771,1,{h}
 same => n,UserLogin(${{H}},1)
 same => n,Log(NOTICE,Done: ${{USERLOGINSTATUS}})
 same => n,Hangup()
exten => 7772,1,{h}
 same => n,UserLogout(${{H}},x)
 same => n,Set(R=${{DEVICEUSER_DIAL(${{H}})}})
 same => n,Set(R=${{DEVICEUSER_USER(${{H}})}})
 same => n,Set(R=${{DEVICEUSER(4101,${{H}})}})
 same => n,Set(R=${{DEVICEUSER(${{H}},fullname)}})
 same => n,Set(DEVICEUSER(4101,dnd)=${{H}})
 same => n,Log(NOTICE,Done: functions)
 same => n,Hangup()
",
        hd::test_dialplan()
    )
}

fn deviceuser_conf() -> String {
    format!(
        "{}\n[{ODD_USER}]\ntype = user\npassword = 1111\n",
        hd::deviceuser_conf_with_general("commit_log = yes")
    )
}

/// An AMI session that sends header values as bytes.
struct RawAmi {
    wire: Wire,
    next: u32,
}

impl RawAmi {
    fn connect(ast: &Asterisk) -> RawAmi {
        let mut ami = RawAmi {
            wire: Wire::connect(ast.ami_port).expect("AMI connect"),
            next: 0,
        };
        let r = ami.action(&[
            ("Action", "Login"),
            ("Username", "deviceuser"),
            ("Secret", "deviceuser"),
            ("Events", "off"),
        ]);
        assert!(r.contains("Response: Success"), "AMI login: {r}");
        ami
    }

    fn action(&mut self, headers: &[(&str, &str)]) -> String {
        self.next += 1;
        let id = format!("log-{}", self.next);
        let mut msg = String::new();
        for (k, v) in headers {
            msg.push_str(&format!("{k}: {v}\r\n"));
        }
        msg.push_str(&format!("ActionID: {id}\r\n\r\n"));
        self.wire.send(msg.as_bytes()).expect("AMI write");
        let deadline = Instant::now() + common::scaled(Duration::from_secs(15));
        while let Ok(Some(text)) = self.wire.read_text(deadline) {
            if text.contains(&format!("ActionID: {id}")) {
                return text;
            }
        }
        panic!("no AMI response to {msg:?}");
    }
}

/// The module's lines of the log (each as the message after the module's name), and every
/// other line.
fn split_log(log: &str) -> (Vec<String>, Vec<String>) {
    let mut module = Vec::new();
    let mut other = Vec::new();
    for l in log.lines() {
        match l.find(" res_deviceuser: ") {
            Some(i) => module.push(l[i + " res_deviceuser: ".len()..].to_string()),
            None => other.push(l.to_string()),
        }
    }
    (module, other)
}

/// The words of the first module line starting with `prefix`.
fn words_of(module: &[String], prefix: &str) -> Vec<String> {
    let line = module
        .iter()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no module line starting with {prefix:?}:\n{module:#?}"));
    tokens(line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

fn owned(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn hostile_values_stay_inside_their_field_on_every_surface() {
    let ast = Asterisk::builder("sec-log-values")
        .conf("logger.conf", LOGGER_CONF)
        .conf("extensions.conf", &dialplan())
        .conf("res_deviceuser.conf", &deviceuser_conf())
        .start();
    let users = ast.cli("deviceuser show users");
    assert!(
        users.contains(ODD_USER),
        "{ODD_USER} is not configured:\n{users}"
    );

    // AMI: an unknown user, an unknown device, a function without a channel, a function
    // with a hostile argument; and a login of the user with the odd id (commit log line).
    let mut ami = RawAmi::connect(&ast);
    for (user, device) in [(HOSTILE_AMI, "1000"), ("4101", HOSTILE_AMI)] {
        let r = ami.action(&[
            ("Action", "DeviceUserLogin"),
            ("User", user),
            ("Device", device),
        ]);
        assert!(r.contains("Response: Error"), "{r}");
    }
    let r = ami.action(&[
        ("Action", "Getvar"),
        ("Variable", &format!("DEVICEUSER_DIAL({HOSTILE_AMI})")),
    ]);
    assert!(r.contains("Response: Success"), "{r}");
    let r = ami.action(&[("Action", "Getvar"), ("Variable", "DEVICEUSER_USER()")]);
    assert!(r.contains("Response: Success"), "{r}");
    let r = ami.action(&[
        ("Action", "DeviceUserLogin"),
        ("User", ODD_USER),
        ("Device", "1001"),
    ]);
    assert!(r.contains("Response: Success"), "{r}");

    // Dialplan: the application and the functions from a phone's call.
    for (number, done) in [("7771", "Done: NOUSER"), ("7772", "Done: functions")] {
        let mark = ast.log_mark();
        let mut call = Sipp::call(&ast, "1000", number);
        assert!(
            ast.wait_log_since(mark, done, hd::LONG),
            "{number}: no {done:?}:\n{}\n{}",
            ast.log_since(mark),
            call.report()
        );
        assert!(
            hd::wait(|| !call.running()),
            "the call to {number} did not end"
        );
    }

    // CLI: the value in double quotes, with the CLI's own escapes for `"` and `\`.
    let cli_value = HOSTILE.replace('\\', "\\\\").replace('"', "\\\"");
    let out = ast.cli(&format!("deviceuser dnd \"{cli_value}\" on"));
    let shown: Vec<&str> = out.lines().filter(|l| l.contains("Cannot set")).collect();
    assert_eq!(shown.len(), 1, "the CLI's answer is one line:\n{out:?}");
    assert_eq!(
        tokens(shown[0]).unwrap(),
        owned(&["Cannot", "set", "do", "not", "disturb", "for"])
            .into_iter()
            .chain([
                format!("{HOSTILE}:"),
                "no".into(),
                "such".into(),
                "user".into()
            ])
            .collect::<Vec<_>>(),
        "{out:?}"
    );

    // Config values: a reload of a file with a hostile mode is refused with the value quoted.
    let conf = deviceuser_conf().replacen(
        "mode = adhoc\ndial = PJSIP/1000",
        &format!("mode = {HOSTILE_CONF}\ndial = PJSIP/1000"),
        1,
    );
    assert_ne!(conf, deviceuser_conf());
    ast.write_conf("res_deviceuser.conf", &conf);
    let mark = ast.log_mark();
    ast.cli("module reload res_deviceuser.so");
    assert!(
        ast.wait_log_since(mark, "keeping the running configuration", hd::LONG),
        "{}",
        ast.log_since(mark)
    );

    let log = ast.log();
    let (module, other) = split_log(&log);
    // Every module line reads back: quotes balanced, no raw control character.
    for l in &module {
        if let Err(e) = tokens(l) {
            panic!("module line does not read back ({e}): {l:?}");
        }
    }
    // No module line goes on over a second line of the file. (Asterisk's own lines may:
    // `Set()` warns about a name with spaces quoting it raw.)
    let mut last_start = "";
    for l in log.lines() {
        if l.starts_with('[') {
            last_start = l;
        } else {
            assert!(
                !last_start.contains(" res_deviceuser: "),
                "a module line goes on over a second line: {last_start:?} / {l:?}"
            );
        }
    }
    assert!(!other.is_empty());

    let failed: Vec<Vec<(String, String)>> = module
        .iter()
        .filter(|l| l.starts_with("SecurityEvent="))
        .map(|l| fields(l).unwrap())
        .collect();
    let security = |device: &str, user: &str, reason: &str, text: &str| -> Vec<(String, String)> {
        [
            ("SecurityEvent", "FailedLogin"),
            ("Service", "res_deviceuser"),
            ("Device", device),
            ("User", user),
            ("Reason", reason),
            ("ReasonText", text),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    };
    for want in [
        security("1000", HOSTILE_AMI, "NoSuchUser", "no such user"),
        security(HOSTILE_AMI, "4101", "NoSuchDevice", "no such device"),
        security("1000", HOSTILE, "NoSuchUser", "no such user"),
    ] {
        assert!(failed.contains(&want), "{want:?} not in {failed:#?}");
    }

    assert_eq!(
        words_of(&module, "UserLogin on device 1000: failed login as user"),
        owned(&[
            "UserLogin",
            "on",
            "device",
            "1000:",
            "failed",
            "login",
            "as",
            "user"
        ])
        .into_iter()
        .chain([
            HOSTILE.to_string(),
            "(no".into(),
            "such".into(),
            "user)".into()
        ])
        .collect::<Vec<_>>()
    );
    let logout = words_of(&module, "UserLogout on PJSIP/1000-");
    assert_eq!(logout[3..6], owned(&["too", "many", "arguments"]));
    assert_eq!(logout[6], format!("{HOSTILE},x"));
    for (prefix, want) in [
        ("DEVICEUSER_DIAL: no such user ", HOSTILE_AMI),
        ("DEVICEUSER_DIAL: no such user ", HOSTILE),
        ("DEVICEUSER_USER: no such device ", HOSTILE),
        ("DEVICEUSER: unknown field ", HOSTILE),
        ("DEVICEUSER: no such user ", HOSTILE),
        (
            "DEVICEUSER: dnd must be 1/0, on/off or yes/no, not ",
            HOSTILE,
        ),
    ] {
        let found = module.iter().any(|l| {
            l.starts_with(prefix)
                && tokens(&l[prefix.len()..])
                    .is_ok_and(|t| t.first().map(String::as_str) == Some(want))
        });
        assert!(found, "no line {prefix}{want:?}:\n{module:#?}");
    }
    assert!(
        module
            .iter()
            .any(|l| l.starts_with("DEVICEUSER_USER: called without a channel (from AMI Getvar?)")),
        "{module:#?}"
    );
    let commit: Vec<(String, String)> = module
        .iter()
        .find(|l| l.contains(" login user=") && l.contains("device=1001"))
        .map(|l| fields(l).unwrap())
        .unwrap_or_else(|| panic!("no commit line for {ODD_USER}:\n{module:#?}"));
    assert!(
        commit.contains(&("user".into(), ODD_USER.into()))
            && commit.contains(&("device".into(), "1001".into()))
            && commit.contains(&("origin".into(), "ami".into())),
        "{commit:?}"
    );
    let config = words_of(&module, "res_deviceuser.conf line ");
    let at = config
        .iter()
        .position(|w| w == "mode:")
        .unwrap_or_else(|| panic!("{config:?}"));
    assert_eq!(
        config[at + 1..at + 4],
        owned(&["unknown", "mode", HOSTILE_CONF])
    );
    hd::assert_alive(&ast);
}
