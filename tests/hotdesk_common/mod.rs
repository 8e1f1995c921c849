//! Shared helpers of the `hotdesk_*` tests: an Asterisk with verbose logging and
//! a test-only login extension, logins and logouts placed as real SIP calls, and
//! readers for the CLI tables and the dialplan's log lines.
#![allow(dead_code)]

use std::time::Duration;

use crate::common::sip::Sipp;
use crate::common::{self, Asterisk, Builder};

/// Generous timeout for anything that involves prompts or a call.
pub const LONG: Duration = Duration::from_secs(30);

/// logger.conf of the instances: full.log gets verbose messages up to level 4
/// ("Executing [...]" lines of the dialplan, the module's login lines, prompts
/// played), independent of any console.
pub const LOGGER_CONF: &str = "\
[general]
dateformat = %F %T.%3q
[logfiles]
full.log => notice,warning,error,debug,verbose(4),security
console => notice,warning,error
";

/// A file of `samples/`.
pub fn sample(file: &str) -> String {
    std::fs::read_to_string(common::repo().join("samples").join(file))
        .unwrap_or_else(|e| panic!("cannot read samples/{file}: {e}"))
}

/// `res_deviceuser.conf.sample`.
pub fn sample_deviceuser_conf() -> String {
    std::fs::read_to_string(common::repo().join("res_deviceuser.conf.sample")).unwrap()
}

/// The sample res_deviceuser.conf with extra `[general]` lines.
pub fn deviceuser_conf_with_general(lines: &str) -> String {
    let conf = sample_deviceuser_conf();
    let out = conf.replacen("[general]\n", &format!("[general]\n{lines}\n"), 1);
    assert_ne!(out, conf, "the sample has no [general] section");
    out
}

/// Test-only additions to the sample dialplan:
/// - `**<user><pin>` (4-digit user) logs in without prompts;
/// - `**0<user>` logs a user out of every device (`UserLogout(user)`);
/// - the `h` extension logs the login status when the caller hung up (`After hangup`);
/// - `[a-test-context]` runs `UserLogin` on a channel that is not a device.
pub const TEST_DIALPLAN: &str = r#"
[from-devices]
exten => _**0XXXX,1,UserLogout(${EXTEN:3})
 same => n,NoOp(UserLogout: ${USERLOGOUTSTATUS})
 same => n,Hangup()
exten => _**XXXX.,1,UserLogin(${EXTEN:2:4},${EXTEN:6})
 same => n,NoOp(UserLogin: ${USERLOGINSTATUS})
 same => n,Hangup()
exten => h,1,NoOp(After hangup: ${USERLOGINSTATUS})

[a-test-context]
exten => login,1,UserLogin(4101,1234)
 same => n,NoOp(UserLogin: ${USERLOGINSTATUS})
 same => n,Hangup()
"#;

/// The sample dialplan with [`TEST_DIALPLAN`] appended.
pub fn test_dialplan() -> String {
    format!("{}\n{TEST_DIALPLAN}", sample("extensions.conf"))
}

/// An instance with the sample configuration, verbose logging and the test dialplan.
pub fn builder(name: &str) -> Builder {
    Asterisk::builder(name)
        .conf("logger.conf", LOGGER_CONF)
        .conf("extensions.conf", &test_dialplan())
}

pub fn start(name: &str) -> Asterisk {
    builder(name).start()
}

/// [`start`] with extra `[general]` lines in the sample res_deviceuser.conf.
pub fn start_with_general(name: &str, general: &str) -> Asterisk {
    builder(name)
        .conf(
            "res_deviceuser.conf",
            &deviceuser_conf_with_general(general),
        )
        .start()
}

/// The `NoOp(<label>: <value>)` status logged by the dialplan on a channel of
/// `endpoint` after `mark`, once it appears.
pub fn wait_status(ast: &Asterisk, mark: usize, endpoint: &str, label: &str) -> Option<String> {
    let chan = format!("\"PJSIP/{endpoint}-");
    let needle = format!("\"{label}: ");
    poll(|| {
        ast.log_since(mark).lines().find_map(|l| {
            if !l.contains("NoOp(") || !l.contains(&chan) {
                return None;
            }
            let i = l.find(&needle)?;
            let rest = &l[i + needle.len()..];
            Some(rest[..rest.find('"')?].to_string())
        })
    })
}

/// Places a call from `endpoint` (a sipp UAC) to `number` and waits for the
/// dialplan to end it; returns the status `label` the dialplan logged.
pub fn call_for_status(ast: &Asterisk, endpoint: &str, number: &str, label: &str) -> String {
    let mark = ast.log_mark();
    let mut call = Sipp::call(ast, endpoint, number);
    let status = wait_status(ast, mark, endpoint, label).unwrap_or_else(|| {
        panic!(
            "no '{label}' logged for a call from {endpoint} to {number}:\n{}\n{}",
            ast.log_since(mark),
            call.report()
        )
    });
    // The dialplan hangs up after logging the status (an unanswered call is
    // declined, which sipp counts as a failed call: only its end matters here).
    assert!(
        wait(|| !call.running()),
        "the call {endpoint} -> {number} did not end:\n{}",
        call.report()
    );
    status
}

/// Logs `user` in on `endpoint` without prompts (test extension `**<user><pin>`).
pub fn login(ast: &Asterisk, endpoint: &str, user: &str, pin: &str) -> String {
    call_for_status(ast, endpoint, &format!("**{user}{pin}"), "UserLogin")
}

/// Like [`login`], and asserts SUCCESS.
pub fn login_ok(ast: &Asterisk, endpoint: &str, user: &str, pin: &str) {
    let status = login(ast, endpoint, user, pin);
    assert_eq!(status, "SUCCESS", "login of {user} on {endpoint}: {status}");
}

/// Logs out of `endpoint` by dialling `*12` from it; returns USERLOGOUTSTATUS.
pub fn logout(ast: &Asterisk, endpoint: &str) -> String {
    call_for_status(ast, endpoint, "*12", "UserLogout")
}

/// `deviceuser show bindings` as (user, device) pairs.
pub fn bindings(ast: &Asterisk) -> Vec<(String, String)> {
    let out = ast.cli("deviceuser show bindings");
    assert!(
        out.lines().next().is_some_and(|l| l.starts_with("User")),
        "deviceuser show bindings:\n{out}"
    );
    out.lines()
        .skip(1)
        .filter(|l| !l.contains("found"))
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_string(), w.next()?.to_string()))
        })
        .collect()
}

/// The user bound to `device`, if any.
pub fn user_on(ast: &Asterisk, device: &str) -> Option<String> {
    bindings(ast)
        .into_iter()
        .find(|(_, d)| d == device)
        .map(|(u, _)| u)
}

/// The devices `user` is bound to, sorted.
pub fn devices_of(ast: &Asterisk, user: &str) -> Vec<String> {
    let mut v: Vec<String> = bindings(ast)
        .into_iter()
        .filter(|(u, _)| u == user)
        .map(|(_, d)| d)
        .collect();
    v.sort();
    v
}

/// The `State:` of `core show hint <exten>` (the hint in `context` when given).
pub fn hint_state_in(ast: &Asterisk, exten: &str, context: &str) -> Option<String> {
    let out = ast.cli(&format!("core show hint {exten}"));
    let prefix = format!("{exten}@{context}");
    out.lines()
        .find(|l| l.trim_start().starts_with(&prefix))
        .and_then(|l| l.split_whitespace().find(|w| w.starts_with("State:")))
        .map(|w| w.trim_start_matches("State:").to_string())
}

/// The state of the sample hint `<exten>@deviceuser-hints`.
pub fn hint_state(ast: &Asterisk, exten: &str) -> Option<String> {
    hint_state_in(ast, exten, "deviceuser-hints")
}

/// Waits until the hint `<exten>@<context>` shows `state`; panics otherwise.
pub fn wait_hint_in(ast: &Asterisk, exten: &str, context: &str, state: &str) {
    let ok = common::wait_until(LONG, || {
        hint_state_in(ast, exten, context).as_deref() == Some(state)
    });
    assert!(
        ok,
        "hint {exten}@{context} never became {state}:\n{}",
        ast.cli(&format!("core show hint {exten}"))
    );
}

/// Waits until the sample hint of `exten` shows `state`.
pub fn wait_hint(ast: &Asterisk, exten: &str, state: &str) {
    wait_hint_in(ast, exten, "deviceuser-hints", state)
}

/// Asterisk still answers the CLI (no crash, no deadlock).
pub fn assert_alive(ast: &Asterisk) {
    assert!(ast.is_running(), "Asterisk is not running");
    let up = ast.cli("core show uptime");
    assert!(up.contains("System uptime"), "core show uptime: {up}");
}

/// Log lines after `mark` of a given level ("WARNING", "NOTICE", ...) that contain
/// every one of `needles`.
pub fn log_lines(ast: &Asterisk, mark: usize, level: &str, needles: &[&str]) -> Vec<String> {
    let tag = format!("] {level}[");
    ast.log_since(mark)
        .lines()
        .filter(|l| l.contains(&tag) && needles.iter().all(|n| l.contains(n)))
        .map(str::to_string)
        .collect()
}

/// Waits for a log line of `level` after `mark` containing every one of `needles`.
pub fn wait_log_line(ast: &Asterisk, mark: usize, level: &str, needles: &[&str]) -> Option<String> {
    poll(|| log_lines(ast, mark, level, needles).into_iter().next())
}

/// AMI `Getvar` of a dialplan function without a channel; "" when it failed.
pub fn getvar(ast: &Asterisk, expr: &str) -> String {
    ast.ami().getvar(expr, None).unwrap_or_default()
}

/// Polls `f` until true, for up to [`LONG`].
pub fn wait(f: impl FnMut() -> bool) -> bool {
    common::wait_until(LONG, f)
}

/// Polls `f` until `Some`, for up to [`LONG`].
pub fn poll<T>(f: impl FnMut() -> Option<T>) -> Option<T> {
    common::poll(LONG, f)
}
