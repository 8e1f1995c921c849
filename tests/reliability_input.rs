//! Hostile input in every input class, on a real Asterisk: over-long values, control
//! characters and bytes that are not UTF-8 in AMI parameters, CLI arguments, dialplan
//! function arguments, UserLogin/UserLogout arguments and the config file. Each gets a clear
//! error (response, CLI text, status variable or log line), nothing changes, Asterisk stays
//! up, and no configured PIN ever shows up in the log.
mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::ami::Wire;
use common::Asterisk;

const T: Duration = Duration::from_secs(10);

/// PINs of res_deviceuser.conf.sample (users 4101-4110 and 2010).
const PINS: [&str; 11] = [
    "1234", "2345", "3456", "4567", "5678", "6789", "7890", "8901", "9012", "0123", "2468",
];

/// Digit strings used as hostile input never contain a PIN ("7" repeated).
fn digits(n: usize) -> String {
    "7".repeat(n)
}

/// Longest value that fits on one AMI line (Asterisk's manager reads at most 1024 bytes a
/// line and refuses the whole message otherwise), with room for the header name.
const AMI_MAX: usize = 900;

/// Control characters (bell, backspace, escape sequence, DEL) around a user id.
const CONTROL: &str = "41\u{7}\u{8}\u{1b}[31m01\u{7f}";

/// Bytes that are not UTF-8.
const NOT_UTF8: &[u8] = b"\xff\xfe41\xc3\x2801";

fn assert_alive(ast: &Asterisk) {
    assert!(ast.is_running(), "Asterisk died");
    let out = ast.cli("core show uptime");
    assert!(out.contains("System uptime"), "core show uptime: {out}");
}

fn module_running(ast: &Asterisk) -> bool {
    ast.cli("module show like res_deviceuser").lines().any(|l| {
        l.starts_with("res_deviceuser.so") && l.contains(" Running") && !l.contains("Not Running")
    })
}

/// Whether `pin` occurs in `log` as a number of its own (not inside a longer number, and
/// not as a `[thread id]`).
fn pin_in(log: &str, pin: &str) -> bool {
    let b = log.as_bytes();
    log.match_indices(pin).any(|(i, _)| {
        let before = i.checked_sub(1).map(|j| b[j]);
        let after = b.get(i + pin.len()).copied();
        let digit = |c: Option<u8>| c.is_some_and(|c| c.is_ascii_digit());
        let thread_id = before == Some(b'[') && after == Some(b']');
        !(digit(before) || digit(after) || thread_id)
    })
}

fn assert_no_pin_in_log(ast: &Asterisk) {
    let log = ast.log();
    for pin in PINS {
        let line = log.lines().find(|l| pin_in(l, pin));
        assert!(line.is_none(), "PIN {pin} in the log: {line:?}");
    }
}

/// Bindings as `deviceuser show bindings` lists them: (user, device).
fn bindings(ast: &Asterisk) -> Vec<(String, String)> {
    ast.cli("deviceuser show bindings")
        .lines()
        .skip(1)
        .filter(|l| !l.ends_with("found"))
        .filter_map(|l| {
            let mut cells = l.split_whitespace();
            Some((cells.next()?.to_string(), cells.next()?.to_string()))
        })
        .collect()
}

/// The fixed device's binding is the only one of the sample config at start.
fn start_bindings() -> Vec<(String, String)> {
    vec![("2010".to_string(), "2010".to_string())]
}

// ---------------------------------------------------------------------------------------
// AMI over a raw socket (header values as bytes, so they need not be UTF-8)
// ---------------------------------------------------------------------------------------

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
            ("Action", b"Login"),
            ("Username", b"deviceuser"),
            ("Secret", b"deviceuser"),
            ("Events", b"off"),
        ]);
        assert!(r.contains("Response: Success"), "AMI login: {r}");
        ami
    }

    /// Sends an action and returns its response (lossy text), found by its ActionID.
    fn action(&mut self, headers: &[(&str, &[u8])]) -> String {
        self.next += 1;
        let id = format!("raw-{}", self.next);
        let mut msg = Vec::new();
        for (k, v) in headers {
            msg.extend_from_slice(k.as_bytes());
            msg.extend_from_slice(b": ");
            msg.extend_from_slice(v);
            msg.extend_from_slice(b"\r\n");
        }
        msg.extend_from_slice(format!("ActionID: {id}\r\n\r\n").as_bytes());
        self.wire.send(&msg).expect("AMI write");
        self.response(&id)
            .unwrap_or_else(|| panic!("no AMI response to {}", String::from_utf8_lossy(&msg)))
    }

    /// The next message carrying `id`, or the next response without an ActionID (Asterisk
    /// answers a message it could not parse without one). None after a timeout.
    fn response(&mut self, id: &str) -> Option<String> {
        let deadline = Instant::now() + common::scaled(T);
        while let Ok(Some(text)) = self.wire.read_text(deadline) {
            let ours = text.contains(&format!("ActionID: {id}"));
            let anonymous = text.starts_with("Response:") && !text.contains("ActionID:");
            if ours || anonymous {
                return Some(text);
            }
        }
        None
    }
}

fn message(r: &str) -> &str {
    r.lines()
        .find_map(|l| l.strip_prefix("Message: "))
        .unwrap_or("")
}

/// One AMI action with a hostile value must be an error whose message contains `needle`.
fn ami_refuses(ami: &mut RawAmi, headers: &[(&str, &[u8])], needle: &str) {
    let r = ami.action(headers);
    assert!(r.contains("Response: Error"), "{headers:?}: {r}");
    assert!(
        message(&r).to_lowercase().contains(&needle.to_lowercase()),
        "{needle:?} not in {r}"
    );
    // One line: a value cannot inject headers into the response.
    assert!(!message(&r).contains('\r') && !message(&r).contains('\n'));
}

#[test]
fn ami_parameters_with_hostile_values_get_clear_errors() {
    let ast = Asterisk::start("rel-ami");
    let mut ami = RawAmi::connect(&ast);
    let long = digits(AMI_MAX);
    let values: [&[u8]; 3] = [long.as_bytes(), CONTROL.as_bytes(), NOT_UTF8];
    for v in values {
        ami_refuses(
            &mut ami,
            &[
                ("Action", b"DeviceUserLogin"),
                ("User", v),
                ("Device", b"1000"),
            ],
            "no such user",
        );
        ami_refuses(
            &mut ami,
            &[
                ("Action", b"DeviceUserLogin"),
                ("User", b"4101"),
                ("Device", v),
            ],
            "no such device",
        );
        ami_refuses(
            &mut ami,
            &[("Action", b"DeviceUserLogout"), ("Device", v)],
            "no such device",
        );
        ami_refuses(
            &mut ami,
            &[("Action", b"DeviceUserLogout"), ("User", v)],
            "no such user",
        );
        ami_refuses(
            &mut ami,
            &[("Action", b"DeviceUserBindings"), ("User", v)],
            "no such user",
        );
        ami_refuses(
            &mut ami,
            &[("Action", b"DeviceUserBindings"), ("Device", v)],
            "no such device",
        );
        ami_refuses(
            &mut ami,
            &[("Action", b"DeviceUserDND"), ("User", b"4101"), ("DND", v)],
            "DND must be on or off",
        );
        ami_refuses(
            &mut ami,
            &[("Action", b"DeviceUserDND"), ("User", v), ("DND", b"on")],
            "no such user",
        );
        ami_refuses(
            &mut ami,
            &[("Action", b"DeviceUserDND"), ("User", v)],
            "no such user",
        );
    }
    // Longer than an AMI line: Asterisk's manager refuses the message itself; the session
    // and the module go on.
    let huge = digits(10_000);
    let r = ami.action(&[
        ("Action", b"DeviceUserLogin"),
        ("User", huge.as_bytes()),
        ("Device", b"1000"),
    ]);
    assert!(r.contains("Response: Error"), "{r}");
    assert_eq!(message(&r), "Failed to parse message: line too long", "{r}");
    let r = ami.action(&[("Action", b"Ping")]);
    assert!(r.contains("Response: Success"), "{r}");
    // Nothing changed, and a valid action still works on the same session.
    assert_eq!(bindings(&ast), start_bindings());
    let r = ami.action(&[
        ("Action", b"DeviceUserLogin"),
        ("User", b"4101"),
        ("Device", b"1000"),
    ]);
    assert!(r.contains("Response: Success"), "{r}");
    assert_eq!(bindings(&ast).len(), 2);
    assert!(module_running(&ast));
    assert_alive(&ast);
    assert_no_pin_in_log(&ast);
}

// ---------------------------------------------------------------------------------------
// CLI
// ---------------------------------------------------------------------------------------

/// Runs a CLI command given as bytes (`asterisk -rx`), for arguments that are not UTF-8.
fn cli_bytes(ast: &Asterisk, cmd: &[u8]) -> String {
    let out = Command::new("bash")
        .arg(common::repo().join("scripts/asterisk.sh"))
        .arg("cli")
        .arg(&ast.run)
        .arg(OsStr::from_bytes(cmd))
        .stdin(Stdio::null())
        .output()
        .expect("asterisk.sh cli");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text += &String::from_utf8_lossy(&out.stderr);
    text
}

#[test]
fn cli_arguments_with_hostile_values_get_clear_errors() {
    let ast = Asterisk::start("rel-cli");
    let long = digits(400);
    let mut ids: Vec<Vec<u8>> = vec![long.into_bytes(), CONTROL.into(), NOT_UTF8.into()];
    ids.push(b"x".repeat(3000));
    for id in &ids {
        // (command start, argument, command end, expected text)
        type Case<'a> = (&'a [u8], &'a [u8], &'a [u8], &'a str);
        let cases: [Case; 5] = [
            (b"deviceuser login ", id, b" 1000", "no such user"),
            (b"deviceuser login 4101 ", id, b"", "no such device"),
            (b"deviceuser show bindings user ", id, b"", "no such user"),
            (
                b"deviceuser show bindings device ",
                id,
                b"",
                "no such device",
            ),
            (b"deviceuser logout user ", id, b"", "no such user"),
        ];
        for (head, arg, tail, needle) in cases {
            let cmd = [head, arg, tail].concat();
            let out = cli_bytes(&ast, &cmd);
            let shown = String::from_utf8_lossy(&cmd[..cmd.len().min(60)]).into_owned();
            if arg.len() < 500 {
                assert!(
                    out.to_lowercase().contains(needle),
                    "{shown}...: {needle:?} not in {out}"
                );
            } else {
                // Longer than the remote console (`asterisk -rx`) takes: Asterisk drops the
                // command without output; nobody is logged in and nothing crashes.
                assert!(!out.contains("logged in on"), "{shown}...: {out}");
            }
        }
        let out = cli_bytes(&ast, &[b"deviceuser dnd ".as_slice(), id, b" on"].concat());
        assert!(!out.contains("DND on"), "{out}");
        let out = cli_bytes(&ast, &[b"deviceuser dnd 4101 ".as_slice(), id].concat());
        assert!(!out.contains("DND on") && !out.contains("DND off"), "{out}");
    }
    assert_eq!(bindings(&ast), start_bindings());
    assert!(module_running(&ast));
    assert_alive(&ast);
    assert_no_pin_in_log(&ast);
}

// ---------------------------------------------------------------------------------------
// Dialplan functions
// ---------------------------------------------------------------------------------------

#[test]
fn dialplan_function_arguments_with_hostile_values_get_clear_errors() {
    let ast = Asterisk::start("rel-func");
    let mut ami = RawAmi::connect(&ast);
    let long = digits(AMI_MAX - 40);
    let values: [&[u8]; 3] = [long.as_bytes(), CONTROL.as_bytes(), NOT_UTF8];
    let getvar = |ami: &mut RawAmi, var: &[u8]| {
        let r = ami.action(&[("Action", b"Getvar"), ("Variable", var)]);
        r.lines()
            .find_map(|l| l.strip_prefix("Value: ").map(str::to_string))
            .unwrap_or_default()
    };
    for v in values {
        let cases: [(&[u8], &[u8], &str); 5] = [
            (b"DEVICEUSER_DIAL(", b")", "DEVICEUSER_DIAL: no such user"),
            (b"DEVICEUSER_USER(", b")", "DEVICEUSER_USER: no such device"),
            (b"DEVICEUSER(", b",fullname)", "DEVICEUSER: no such user"),
            (b"DEVICEUSER(4101,", b")", "DEVICEUSER: unknown field"),
            (
                b"DEVICEUSER(4101,state,",
                b")",
                "DEVICEUSER: expected two arguments",
            ),
        ];
        for (head, tail, needle) in cases {
            let var = [head, v, tail].concat();
            let mark = ast.log_mark();
            assert_eq!(
                getvar(&mut ami, &var),
                "",
                "{}",
                String::from_utf8_lossy(&var)
            );
            assert!(
                ast.wait_log_since(mark, needle, T),
                "no {needle:?} in the log:\n{}",
                ast.log_since(mark)
            );
        }
    }
    // The functions still answer.
    assert_eq!(getvar(&mut ami, b"DEVICEUSER_USER(2010)"), "2010");
    assert_eq!(
        getvar(&mut ami, b"DEVICEUSER(4101,fullname)"),
        "Operator 4101"
    );
    assert!(module_running(&ast));
    assert_alive(&ast);
    assert_no_pin_in_log(&ast);
}

// ---------------------------------------------------------------------------------------
// UserLogin / UserLogout arguments
// ---------------------------------------------------------------------------------------

/// Devices whose "phone" is a Local channel into the test context, so UserLogin runs on a
/// configured device without SIP.
fn login_devices() -> String {
    let mut conf = std::fs::read_to_string(common::repo().join("res_deviceuser.conf.sample"))
        .expect("sample config");
    for (id, exten) in CASES.iter().enumerate().map(|(i, c)| (9000 + i, c.0)) {
        conf += &format!("\n[{id}]\ntype = device\ndial = Local/{exten}@reliability\n");
    }
    conf
}

/// (extension, application call, expected status variable, status, log line naming the
/// problem). The wrong PINs are never configured ones.
const CASES: [(&str, &str, &str, &str, &str); 7] = [
    (
        "longuser",
        "UserLogin(@LONG@,1111)",
        "USERLOGINSTATUS",
        "NOUSER",
        "(no such user)",
    ),
    (
        "ctrluser",
        "UserLogin(41\u{7}\u{1b}[31m01,1111)",
        "USERLOGINSTATUS",
        "NOUSER",
        "(no such user)",
    ),
    (
        "binuser",
        "UserLogin(@BIN@,1111)",
        "USERLOGINSTATUS",
        "NOUSER",
        "(no such user)",
    ),
    (
        "longpin",
        "UserLogin(4101,@LONG@)",
        "USERLOGINSTATUS",
        "FAILED",
        "failed login as user 4101 (wrong password)",
    ),
    (
        "ctrlpin",
        "UserLogin(4101,11\u{1b}[0m\u{7}11)",
        "USERLOGINSTATUS",
        "FAILED",
        "failed login as user 4101 (wrong password)",
    ),
    (
        "manyargs",
        "UserLogin(4101,1111,@LONG@)",
        "USERLOGINSTATUS",
        "FAILED",
        "too many arguments",
    ),
    (
        "longlogout",
        "UserLogout(@LONG@)",
        "USERLOGOUTSTATUS",
        "NOUSER",
        "no such user",
    ),
];

/// Length of the over-long arguments: what fits in one extensions.conf line (Asterisk
/// skips longer lines) and in the dialplan's argument buffer.
const LONG_ARG: usize = 7_000;

fn login_dialplan() -> Vec<u8> {
    let mut conf =
        std::fs::read(common::repo().join("samples/extensions.conf")).expect("sample dialplan");
    conf.extend_from_slice(b"\n[reliability]\n");
    for (exten, app, var, _, _) in CASES {
        let line = format!(
            "exten => {exten},1,{app}\n same => n,Log(NOTICE,RELIABILITY {exten} {var}=${{{var}}})\n same => n,Hangup()\n"
        );
        let line = line.replace("@LONG@", &digits(LONG_ARG));
        let mut bytes = line.into_bytes();
        if let Some(i) = bytes.windows(5).position(|w| w == b"@BIN@") {
            bytes.splice(i..i + 5, NOT_UTF8.iter().copied());
        }
        conf.extend_from_slice(&bytes);
    }
    conf
}

#[test]
fn userlogin_and_userlogout_arguments_with_hostile_values_fail_cleanly() {
    let ast = Asterisk::builder("rel-app")
        .conf("res_deviceuser.conf", &login_devices())
        .start();
    std::fs::write(ast.etc().join("extensions.conf"), login_dialplan()).unwrap();
    let out = ast.cli("dialplan reload");
    assert!(!out.contains("rror"), "{out}");
    assert!(module_running(&ast));
    let mut ami = ast.ami();
    for (exten, _, var, status, problem) in CASES {
        let mark = ast.log_mark();
        let channel = format!("Local/{exten}@reliability");
        let r = ami.action(&[
            ("Action", "Originate"),
            ("Channel", &channel),
            ("Application", "Wait"),
            ("Data", "30"),
            ("Async", "true"),
        ]);
        assert!(r.is_success(), "{r}");
        let done = format!("RELIABILITY {exten} {var}=");
        assert!(
            ast.wait_log_since(mark, &done, T),
            "{exten}: no status line:\n{}",
            ast.log_since(mark)
        );
        let log = ast.log_since(mark);
        let line = log.lines().find(|l| l.contains(&done)).unwrap_or_default();
        assert!(
            line.ends_with(&format!("{done}{status}")),
            "{exten}: want {status}: {line}"
        );
        let warned = log
            .lines()
            .any(|l| (l.contains("WARNING") || l.contains("NOTICE")) && l.contains(problem));
        assert!(warned, "{exten}: no log line with {problem:?}:\n{log}");
        assert!(!log.contains("panic"), "{log}");
    }
    assert_eq!(bindings(&ast), start_bindings());
    assert!(module_running(&ast));
    assert_alive(&ast);
    assert_no_pin_in_log(&ast);
}

// ---------------------------------------------------------------------------------------
// The config file
// ---------------------------------------------------------------------------------------

/// Deterministic pseudo-random bytes (xorshift), NULs and all.
fn garbage(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Runs a CLI command and waits until the log shows `needle`; returns what was logged
/// meanwhile.
fn cli_until_logged(ast: &Asterisk, command: &str, needle: &str) -> String {
    let mark = ast.log_mark();
    ast.cli(command);
    assert!(
        ast.wait_log_since(mark, needle, T),
        "{}",
        ast.log_since(mark)
    );
    ast.log_since(mark)
}

/// Reloads the module, which must refuse the file and keep the running configuration;
/// returns what was logged meanwhile.
fn reload_refused(ast: &Asterisk) -> String {
    cli_until_logged(
        ast,
        "module reload res_deviceuser.so",
        "keeping the running configuration",
    )
}

#[test]
fn config_file_of_binary_garbage_is_declined() {
    let ast = Asterisk::builder("rel-conf-garbage").start();
    // Binary garbage from the first byte: no section header, NULs and all.
    let mut conf = b"\x01\x02garbage\n".to_vec();
    conf.extend(garbage(4096));
    std::fs::write(ast.etc().join("res_deviceuser.conf"), &conf).unwrap();
    // At reload: refused, the running configuration stays.
    assert!(reload_refused(&ast).contains("res_deviceuser.conf cannot be parsed"));
    assert!(module_running(&ast));
    assert!(ast
        .cli("deviceuser show devices")
        .contains("4 devices found"));
    assert_eq!(bindings(&ast), start_bindings());
    // At load: declined with the reason.
    ast.cli("module unload res_deviceuser.so");
    let log = cli_until_logged(&ast, "module load res_deviceuser.so", "not loading");
    assert!(
        log.lines().any(|l| l.contains("ERROR")
            && l.contains("not loading")
            && l.contains("res_deviceuser.conf cannot be parsed")),
        "no error naming the file:\n{log}"
    );
    assert!(!module_running(&ast));
    assert_alive(&ast);
    assert_no_pin_in_log(&ast);
}

/// Asterisk's config engine reads binary garbage after a valid `[general]` header as
/// `[general]` options (lines without `=` are skipped with a warning). Keys or section names
/// with control characters or bytes that are not UTF-8 make the file invalid, so the reload
/// is refused instead of applying a config with no devices and no users.
#[test]
fn config_file_with_garbage_after_a_valid_header_is_refused() {
    let ast = Asterisk::builder("rel-conf-garbage2").start();
    let mut conf = b"[general]\nmultiple_logins = yes\n".to_vec();
    conf.extend(garbage(4096));
    std::fs::write(ast.etc().join("res_deviceuser.conf"), &conf).unwrap();
    reload_refused(&ast);
    assert!(ast
        .cli("deviceuser show devices")
        .contains("4 devices found"));
    assert_eq!(bindings(&ast), start_bindings());
    assert_alive(&ast);
}

#[test]
fn config_file_with_a_100kb_line_is_handled() {
    let sample = std::fs::read_to_string(common::repo().join("res_deviceuser.conf.sample"))
        .expect("sample config");
    // A 100 KB description inside device 1000's section.
    let long = format!("description = {}", "x".repeat(100_000));
    let conf = sample.replacen("description = ARM 1", &long, 1);
    assert_ne!(conf, sample);
    let ast = Asterisk::builder("rel-conf-long")
        .conf("res_deviceuser.conf", &conf)
        .start();
    // Asterisk's config engine skips a line that long with a warning; the rest of the file
    // is the valid sample, so the module runs without that line.
    let log = ast.log();
    assert!(
        log.lines()
            .any(|l| l.contains("WARNING") && l.contains("too long")),
        "no warning about the long line"
    );
    assert!(module_running(&ast));
    let devices = ast.cli("deviceuser show devices");
    assert!(devices.contains("4 devices found"), "{devices}");
    assert!(!devices.contains("xxxxxxxxxx"), "{devices}");
    // The same line as a section name and as a fixed device's default_user.
    let conf = format!(
        "{sample}\n[{}]\ntype = device\n\n[3000]\ntype = device\nmode = fixed\ndefault_user = {}\n",
        "y".repeat(100_000),
        "z".repeat(100_000)
    );
    ast.write_conf("res_deviceuser.conf", &conf);
    // The fixed device lost its default_user line: a clear error, and the running
    // configuration stays.
    let log = reload_refused(&ast);
    assert!(
        log.contains("[3000] default_user: a fixed device needs a default_user"),
        "{log}"
    );
    assert!(module_running(&ast));
    assert!(ast
        .cli("deviceuser show devices")
        .contains("4 devices found"));
    assert_alive(&ast);
    assert_no_pin_in_log(&ast);
}

/// A file emptied or truncated to nothing (no device, no user) is refused at reload with an
/// error naming why: the running configuration and every login stay, so putting the file back
/// loses nothing. A reload that does drop logins warns once for each, naming the user, the
/// device and why.
#[test]
fn config_file_emptied_is_refused_and_dropped_logins_are_warned_about() {
    let ast = Asterisk::builder("rel-conf-empty").start();
    let sample = std::fs::read_to_string(common::repo().join("res_deviceuser.conf.sample"))
        .expect("sample config");
    let mut ami = ast.ami();
    ami.login_ok("4101", "1000");
    ami.login_ok("4102", "1001");
    let before = bindings(&ast);
    assert_eq!(before.len(), 3, "{before:?}");
    for content in ["", "; emptied\n", "[general]\nmultiple_logins = yes\n"] {
        ast.write_conf("res_deviceuser.conf", content);
        let log = reload_refused(&ast);
        assert!(
            log.lines().any(|l| l.contains("ERROR")
                && l.contains("res_deviceuser.conf has no devices and no users")
                && l.contains("keeping the running configuration")),
            "{content:?}: no error naming why:\n{log}"
        );
        assert_eq!(bindings(&ast), before, "{content:?}");
    }
    ast.write_conf("res_deviceuser.conf", &sample);
    let out = ast.cli("module reload res_deviceuser.so");
    assert!(out.contains("reloaded successfully"), "{out}");
    assert_eq!(bindings(&ast), before);

    // Device 1001 and user 4101 leave the file: both logins on them end, each with a warning.
    let without = sample
        .replacen(
            "[1001]\ntype = device\nmode = adhoc\ndial = PJSIP/1001\ndescription = ARM 2\n",
            "",
            1,
        )
        .replacen(
            "[4101]\ntype = user\npassword = 1234\nfullname = Operator 4101\nlanguage = en\n",
            "",
            1,
        );
    assert_eq!(
        without.matches('[').count() + 2,
        sample.matches('[').count()
    );
    ast.write_conf("res_deviceuser.conf", &without);
    let log = cli_until_logged(
        &ast,
        "module reload res_deviceuser.so",
        "logged out of device 1001",
    );
    let warned: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARNING") && l.contains("reload: user "))
        .map(|l| &l[l.find("reload: user ").unwrap()..])
        .collect();
    assert_eq!(
        warned,
        [
            "reload: user 4101 logged out of device 1000 (user removed from the configuration)",
            "reload: user 4102 logged out of device 1001 (device removed from the configuration)",
        ],
        "{log}"
    );
    assert_eq!(bindings(&ast), start_bindings());
    assert_alive(&ast);
}
