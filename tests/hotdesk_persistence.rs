//! Logins survive a restart of Asterisk, graceful or SIGKILL: the binding, the hint
//! state and `DEVICEUSER_DIAL()` are the same afterwards, and a logout survives too.
mod common;
mod hotdesk_common;

use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

use common::sip::Sipp;
use common::Asterisk;
use hotdesk_common as hd;

/// SIGKILL, then boot again on the same run folder (AstDB included).
///
/// `Asterisk::kill9_and_restart` can boot the new instance while the killed one
/// still holds its control socket (its main thread is a zombie, the other threads
/// are still exiting), and the new one then exits with "Asterisk already running".
/// Here the restart waits until the control socket refuses connections.
fn kill9_and_restart(ast: &mut Asterisk) {
    let pid = ast.pid;
    assert!(ast.is_running());
    let st = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "kill -9 {pid}");
    let ctl = ast.run.join("rundir/asterisk.ctl");
    assert!(
        hd::wait(|| !ast.is_running() && UnixStream::connect(&ctl).is_err()),
        "Asterisk {pid} survived SIGKILL"
    );
    let _ = std::fs::remove_file(ast.run.join("rundir/asterisk.pid"));
    ast.start_again()
        .unwrap_or_else(|e| panic!("restart after SIGKILL: {e}"));
}

/// What must hold while 4101 is logged in on 1000 (registered, not in a call).
fn assert_4101_on_1000(ast: &Asterisk) {
    assert_eq!(hd::user_on(ast, "1000").as_deref(), Some("4101"));
    assert_eq!(hd::devices_of(ast, "4101"), ["1000"]);
    hd::wait_hint(ast, "4101", "Idle");
    assert_eq!(hd::getvar(ast, "DEVICEUSER_DIAL(4101)"), "PJSIP/1000");
    assert_eq!(hd::getvar(ast, "DEVICEUSER_USER(1000)"), "4101");
    assert_eq!(hd::getvar(ast, "DEVICEUSER(4101,state)"), "NOT_INUSE");
}

fn assert_nobody_on_1000(ast: &Asterisk) {
    assert_eq!(hd::user_on(ast, "1000"), None);
    hd::wait_hint(ast, "4101", "Unavailable");
    assert_eq!(hd::getvar(ast, "DEVICEUSER_DIAL(4101)"), "");
    assert_eq!(hd::getvar(ast, "DEVICEUSER(4101,state)"), "UNAVAILABLE");
}

#[test]
fn login_and_logout_survive_a_graceful_restart() {
    let mut ast = hd::start("hd-persist-restart");
    Sipp::register(&ast, "1000").expect("REGISTER 1000");
    hd::login_ok(&ast, "1000", "4101", "1234");
    hd::login_ok(&ast, "1001", "4102", "2345");
    assert_4101_on_1000(&ast);

    ast.restart();
    assert_4101_on_1000(&ast);
    // 1001 never registered: logged in, but the phone is unreachable.
    assert_eq!(hd::user_on(&ast, "1001").as_deref(), Some("4102"));
    hd::wait_hint(&ast, "4102", "Unavailable");
    assert_eq!(hd::getvar(&ast, "DEVICEUSER_DIAL(4102)"), "PJSIP/1001");
    let restored = ast
        .log()
        .lines()
        .rfind(|l| l.contains("restored from AstDB"))
        .map(str::to_string)
        .unwrap_or_default();
    assert!(
        !restored.is_empty() && !restored.contains("(0 restored"),
        "the restore is not logged: {restored:?}"
    );

    assert_eq!(hd::logout(&ast, "1000"), "SUCCESS");
    assert_nobody_on_1000(&ast);
    ast.restart();
    assert_nobody_on_1000(&ast);
    assert_eq!(hd::user_on(&ast, "1001").as_deref(), Some("4102"));
    // The fixed device is bound as always.
    assert_eq!(hd::user_on(&ast, "2010").as_deref(), Some("2010"));
}

#[test]
fn login_survives_kill_9() {
    let mut ast = hd::start("hd-persist-kill9");
    Sipp::register(&ast, "1000").expect("REGISTER 1000");
    hd::login_ok(&ast, "1000", "4101", "1234");
    assert_4101_on_1000(&ast);
    // AstDB commits its writes within about a second (slower under valgrind).
    std::thread::sleep(common::scaled(Duration::from_millis(1500)));

    kill9_and_restart(&mut ast);
    assert_4101_on_1000(&ast);

    // And a logout, then a crash.
    assert_eq!(hd::logout(&ast, "1000"), "SUCCESS");
    std::thread::sleep(common::scaled(Duration::from_millis(1500)));
    kill9_and_restart(&mut ast);
    assert_nobody_on_1000(&ast);
}

/// The row of `user` in `deviceuser show stats`, split into its columns.
fn stats_row(ast: &Asterisk, user: &str) -> Vec<String> {
    let out = ast.cli("deviceuser show stats");
    out.lines()
        .find(|l| l.split_whitespace().next() == Some(user))
        .unwrap_or_else(|| panic!("no stats row for {user}:\n{out}"))
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[test]
fn restored_logins_count_in_the_statistics_as_restored() {
    let mut ast = Asterisk::start("hd-persist-stats");
    for (user, device) in [("4101", "1000"), ("4102", "1001")] {
        assert!(ast
            .cli(&format!("deviceuser login {user} {device}"))
            .contains("logged in"));
    }
    assert_eq!(
        stats_row(&ast, "4101")[1..3],
        ["1", "0"],
        "logins, restored"
    );
    ast.restart();
    // Restored logins: not new logins, but counted, so every binding of `show bindings`
    // that is not a device's default user is accounted for.
    for user in ["4101", "4102"] {
        assert_eq!(
            stats_row(&ast, user)[1..3],
            ["0", "1"],
            "{user}: logins, restored"
        );
    }
    assert_eq!(ast.stats_counter("Logins restored from AstDB at load"), "2");
    let bindings = ast.cli("deviceuser show bindings");
    assert!(bindings.ends_with("3 bindings found\n"), "{bindings}");
    assert!(
        bindings.contains("\n2010  2010 "),
        "the third is the fixed device's default user:\n{bindings}"
    );
    assert!(ast
        .cli("deviceuser show user 4101")
        .contains("Logins:           0 since the module was loaded, 1 restored at load\n"));
    // A login after the restart is a login.
    assert!(ast.cli("deviceuser login 4103 1002").contains("logged in"));
    assert_eq!(stats_row(&ast, "4103")[1..3], ["1", "0"]);
}
