//! `module unload` while a login prompt runs on a channel is refused, the module keeps
//! running, and the login completes; once the call is over the module unloads and
//! loads again with the binding restored.
mod common;

use std::time::Duration;

use common::sip::Baresip;
use common::{wait_until, Asterisk};

const LONG: Duration = Duration::from_secs(30);

/// full.log with verbose messages up to level 4 (prompts played, dialplan NoOps).
const LOGGER_CONF: &str = "\
[general]
dateformat = %F %T.%3q
[logfiles]
full.log => notice,warning,error,debug,verbose(4),security
console => notice,warning,error
";

/// The `NoOp(UserLogin: <status>)` the sample dialplan logs for `endpoint`.
fn login_status(ast: &Asterisk, mark: usize, endpoint: &str) -> Option<String> {
    let chan = format!("\"PJSIP/{endpoint}-");
    let needle = "\"UserLogin: ";
    common::poll(LONG, || {
        ast.log_since(mark).lines().find_map(|l| {
            if !l.contains("NoOp(") || !l.contains(&chan) {
                return None;
            }
            let rest = &l[l.find(needle)? + needle.len()..];
            Some(rest[..rest.find('"')?].to_string())
        })
    })
}

fn module_running(ast: &Asterisk) -> bool {
    ast.cli("module show like res_deviceuser")
        .lines()
        .any(|l| l.contains("res_deviceuser.so") && l.contains("Running"))
}

fn user_on(ast: &Asterisk, device: &str) -> String {
    let mut ami = ast.ami();
    ami.getvar(&format!("DEVICEUSER_USER({device})"), None)
        .unwrap_or_default()
}

#[test]
fn unload_is_refused_while_a_login_prompt_runs_and_the_login_completes() {
    let ast = Asterisk::builder("unload-during-login")
        .conf("logger.conf", LOGGER_CONF)
        .start();
    let mut phone = Baresip::start(&ast, "1000", false);

    let mark = ast.log_mark();
    phone.dial_answered(&ast, "*11", LONG);
    assert!(
        wait_until(LONG, || ast.prompts_played(mark, "1000", "agent-user") >= 1),
        "the user prompt never played:\n{}",
        ast.log_since(mark)
    );

    // UserLogin() is waiting for the user number: unload must be refused.
    let out = ast.cli("module unload res_deviceuser.so");
    assert!(
        !out.contains("Unloaded res_deviceuser.so"),
        "unload succeeded during a login prompt: {out}"
    );
    assert!(
        module_running(&ast),
        "module not running after a refused unload:\n{}",
        ast.cli("module show like res_deviceuser")
    );
    assert!(ast.maps_lines("res_deviceuser.so") > 0);
    assert!(ast.is_running());

    // The caller finishes the login.
    phone.send_dtmf("4101#");
    assert!(
        wait_until(LONG, || ast.prompts_played(mark, "1000", "agent-pass") >= 1),
        "the PIN prompt never played:\n{}",
        ast.log_since(mark)
    );
    phone.send_dtmf("1234#");
    let status = login_status(&ast, mark, "1000");
    assert_eq!(
        status.as_deref(),
        Some("SUCCESS"),
        "{}",
        ast.log_since(mark)
    );
    assert_eq!(user_on(&ast, "1000"), "4101");
    phone.wait_event("CALL_CLOSED", LONG);

    // No channel in the module any more: unload works, and load restores the binding.
    let unloaded = wait_until(Duration::from_secs(10), || {
        ast.cli("module unload res_deviceuser.so")
            .contains("Unloaded res_deviceuser.so")
    });
    assert!(unloaded, "unload still refused after the call ended");
    assert_eq!(ast.maps_lines("res_deviceuser.so"), 0);
    let out = ast.cli("module load res_deviceuser.so");
    assert!(out.contains("Loaded res_deviceuser.so"), "{out}");
    assert!(module_running(&ast));
    assert_eq!(user_on(&ast, "1000"), "4101");
}
