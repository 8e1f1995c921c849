//! Voicemail follows the user: a phone's AOR lists `<device>@deviceuser` once
//! (samples/pjsip.conf), and a sipp MWI subscriber on the phone sees the message-waiting
//! state of the mailbox of whoever is logged in on it (samples/voicemail.conf), with
//! messages left by `VoiceMail()`; no messages when nobody is. Real Asterisk, real SIP.
mod common;
mod hotdesk_common;

use std::time::Duration;

use common::sip::Sipp;
use common::Asterisk;
use hotdesk_common::{self as hd, LONG};

/// Leaves messages with `VoiceMail()` on a Local channel: `Local/<mailbox>@vm-test`.
const VM_DIALPLAN: &str = "
[vm-test]
exten => _X.,1,VoiceMail(${EXTEN}@default,s)
 same => n,Hangup()
";

fn start(name: &str, users: &[(&str, &str)]) -> Asterisk {
    let mut conf = hd::sample_deviceuser_conf();
    for (user, mailbox) in users {
        let section = format!("[{user}]\ntype = user\n");
        assert!(conf.contains(&section), "no user {user} in the sample");
        conf = conf.replacen(&section, &format!("{section}mailbox = {mailbox}\n"), 1);
    }
    hd::builder(name)
        .conf("res_deviceuser.conf", &conf)
        .conf(
            "extensions.conf",
            &format!("{}\n{VM_DIALPLAN}", hd::test_dialplan()),
        )
        .start()
}

/// An MWI subscriber as `endpoint` (message-summary on its AOR).
fn subscriber(ast: &Asterisk, endpoint: &str) -> Sipp {
    Sipp::subscriber(ast, "subscribe-mwi.xml", endpoint, endpoint)
}

/// Leaves one message in `mailbox` (of context default) and waits until it is counted.
fn leave_message(ast: &Asterisk, mailbox: &str) {
    let mut ami = ast.ami();
    let count = |ami: &mut common::Ami| {
        ami.getvar(&format!("VM_INFO({mailbox}@default,count)"), None)
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    };
    let before = count(&mut ami);
    ami.action_ok(
        &[
            ("Action", "Originate"),
            ("Channel", &format!("Local/{mailbox}@vm-test")),
            ("Application", "Playback"),
            ("Data", "tt-monkeys"),
            ("Async", "true"),
        ],
        "originate a voicemail",
    );
    let ok = common::wait_until(Duration::from_secs(40), || count(&mut ami) > before);
    assert!(ok, "no message was left in {mailbox}:\n{}", ast.log());
}

/// The last NOTIFY body after the first `skip` that says `waiting` (yes/no), once one does.
fn wait_mwi(sub: &Sipp, skip: usize, waiting: &str, counts: Option<&str>) -> String {
    let needle = format!("Messages-Waiting: {waiting}");
    let body = hd::poll(|| {
        let bodies = sub.notify_bodies();
        let last = bodies.last()?.clone();
        (bodies.len() > skip
            && last.contains(&needle)
            && counts.is_none_or(|c| last.contains(&format!("Voice-Message: {c}"))))
        .then_some(last)
    });
    body.unwrap_or_else(|| {
        panic!(
            "no NOTIFY with {needle} {counts:?} after {skip}:\n{:#?}\n{}",
            sub.notify_bodies(),
            sub.report()
        )
    })
}

#[test]
fn the_phone_shows_the_mailbox_of_the_user_logged_in_on_it() {
    let ast = start("cc-mwi", &[("4101", "4101@default"), ("4102", "4102")]);
    let sub = subscriber(&ast, "1000");
    assert!(
        sub.wait_message("NOTIFY ", LONG),
        "no first NOTIFY:\n{}",
        sub.report()
    );
    wait_mwi(&sub, 0, "no", None);

    // A message for 4101 while nobody is on the phone: the light stays off.
    leave_message(&ast, "4101");
    std::thread::sleep(Duration::from_secs(1));
    let n = sub.notify_bodies().len();
    assert!(
        sub.notify_bodies()
            .last()
            .unwrap()
            .contains("Messages-Waiting: no"),
        "{:#?}",
        sub.notify_bodies()
    );

    // 4101 logs in on the phone: his message shows.
    hd::login_ok(&ast, "1000", "4101", "1234");
    wait_mwi(&sub, n, "yes", Some("1/0"));

    // Another message while he is logged in: the count follows.
    let n = sub.notify_bodies().len();
    leave_message(&ast, "4101");
    wait_mwi(&sub, n, "yes", Some("2/0"));

    // Another user takes the phone: his empty mailbox shows.
    let n = sub.notify_bodies().len();
    let mut ami = ast.ami();
    ami.login_ok("4102", "1000");
    wait_mwi(&sub, n, "no", Some("0/0"));

    // 4101 again, then *12: off.
    let n = sub.notify_bodies().len();
    ami.login_ok("4101", "1000");
    wait_mwi(&sub, n, "yes", Some("2/0"));
    let n = sub.notify_bodies().len();
    assert_eq!(hd::logout(&ast, "1000"), "SUCCESS");
    wait_mwi(&sub, n, "no", None);
}

#[test]
fn after_a_restart_the_phone_shows_the_mailbox_again() {
    let mut ast = start("cc-mwi-restart", &[("4101", "4101@default")]);
    leave_message(&ast, "4101");
    ast.ami().login_ok("4101", "1001");
    ast.kill9_and_restart();
    let sub = subscriber(&ast, "1001");
    wait_mwi(&sub, 0, "yes", Some("1/0"));
}

#[test]
fn an_unknown_mailbox_gets_a_clear_log_line_and_the_login_stands() {
    let ast = start("cc-mwi-bad", &[("4103", "4999@default")]);
    let mark = ast.log_mark();
    ast.ami().login_ok("4103", "1002");
    let line = hd::wait_log_line(&ast, mark, "WARNING", &["mailbox 4999@default"])
        .unwrap_or_else(|| panic!("no warning:\n{}", ast.log_since(mark)));
    assert!(line.contains("not in voicemail.conf"), "{line}");
    assert_eq!(hd::user_on(&ast, "1002").as_deref(), Some("4103"));
    let sub = subscriber(&ast, "1002");
    wait_mwi(&sub, 0, "no", None);

    // A bad value in the file is refused with its line; the running config stays.
    let conf = ast
        .read_conf("res_deviceuser.conf")
        .replace("mailbox = 4999@default", "mailbox = 49 99");
    ast.write_conf("res_deviceuser.conf", &conf);
    let mark = ast.log_mark();
    ast.cli("module reload res_deviceuser.so");
    assert!(
        hd::wait_log_line(
            &ast,
            mark,
            "ERROR",
            &["[4103] mailbox: bad mailbox \"49 99\""]
        )
        .is_some(),
        "{}",
        ast.log_since(mark)
    );
    assert_eq!(hd::user_on(&ast, "1002").as_deref(), Some("4103"));
    hd::assert_alive(&ast);
}
