//! Security properties on a real Asterisk: the calling device is the channel's endpoint even
//! when caller ID says otherwise, hashed PINs work, and PINs never reach the log.
mod common;
mod hotdesk_common;

use hotdesk_common as hd;

/// SHA-512 crypt of "1234" (as `mkpasswd -m sha-512 1234` makes).
const HASHED_1234: &str =
    "$6$OPEOzl99EjVmS6Qk$R2.K.V907OpHzuxoSN/8pTe8ADQo2PqD3tT60wWBBGrv0VWrab2lv8.hnlqAOIsZGC6N82hOHpeOHHIcYoOFT1";

/// `**9<user><pin>`: logs in after setting CALLERID(num) to device 1000's number.
const SPOOF_DIALPLAN: &str = "
[from-devices]
exten => _**9XXXX.,1,Set(CALLERID(num)=1000)
 same => n,Set(CALLERID(name)=ARM 1)
 same => n,UserLogin(${EXTEN:3:4},${EXTEN:7})
 same => n,NoOp(UserLogin: ${USERLOGINSTATUS})
 same => n,Hangup()
";

#[test]
fn a_spoofed_caller_id_logs_in_on_the_real_device() {
    let ast = hd::builder("sec-callerid")
        .conf(
            "extensions.conf",
            &format!("{}\n{SPOOF_DIALPLAN}", hd::test_dialplan()),
        )
        .start();
    let status = hd::call_for_status(&ast, "1001", "**941011234", "UserLogin");
    assert_eq!(status, "SUCCESS");
    assert_eq!(
        hd::user_on(&ast, "1001").as_deref(),
        Some("4101"),
        "bound to the calling endpoint"
    );
    assert_eq!(
        hd::user_on(&ast, "1000"),
        None,
        "caller ID 1000 did not move the login"
    );
    // A wrong PIN under a spoofed caller ID changes nothing either.
    let status = hd::call_for_status(&ast, "1002", "**941021234", "UserLogin");
    assert_eq!(status, "FAILED", "wrong PIN for 4102");
    assert_eq!(hd::user_on(&ast, "1000"), None);
}

#[test]
fn hashed_pins_log_in_and_never_appear_in_the_log() {
    let conf = hd::sample_deviceuser_conf().replacen(
        "password = 1234\n",
        &format!("password = {HASHED_1234}\n"),
        1,
    );
    assert!(
        conf.contains(HASHED_1234),
        "the sample's 4101 PIN line changed"
    );
    let ast = hd::builder("sec-hash")
        .conf("res_deviceuser.conf", &conf)
        .start();
    assert_eq!(hd::login(&ast, "1000", "4101", "9999"), "FAILED");
    hd::login_ok(&ast, "1000", "4101", "1234");
    let log = ast.log();
    assert!(!log.contains(HASHED_1234), "the hash is in the log");
    assert!(!log.contains("OPEOzl99EjVmS6Qk"), "the salt is in the log");
}

#[test]
fn a_malformed_hash_is_a_config_error_that_does_not_show_it() {
    let conf =
        hd::sample_deviceuser_conf().replacen("password = 1234\n", "password = $6$broken\n", 1);
    let ast = hd::builder("sec-badhash")
        .conf("res_deviceuser.conf", &conf)
        .start();
    let log = ast.log();
    assert!(
        log.lines()
            .any(|l| l.contains("ERROR") && l.contains("[4101] password")),
        "no error naming [4101] password"
    );
    assert!(!log.contains("$6$broken"), "the hash is echoed in the log");
}

/// A PIN of ten digits that no number of a log (ports, ids, RTP sequence numbers and
/// timestamps, times) is likely to contain by chance.
const LONG_PIN: &str = "7304918265";

#[test]
fn a_pin_typed_at_the_prompt_is_in_no_log_at_verbose_and_debug_10() {
    let conf = hd::sample_deviceuser_conf().replacen(
        "password = 1234\n",
        &format!("password = {LONG_PIN}\n"),
        1,
    );
    assert!(
        conf.contains(LONG_PIN),
        "the sample's 4101 PIN line changed"
    );
    let ast = hd::builder("sec-pin-debug")
        .conf("res_deviceuser.conf", &conf)
        .conf(
            "logger.conf",
            "[general]\ndateformat = %F %T.%3q\n[logfiles]\n\
             full.log => notice,warning,error,debug,verbose(10),security\n",
        )
        .start();
    assert!(ast.cli("core set debug 10").contains("10"));
    ast.cli("core set verbose 10");
    let mut phone = common::sip::Baresip::start(&ast, "1000", false);
    let mark = ast.log_mark();
    phone.dial_answered(&ast, "*11", hd::LONG);
    for (prompt, digits) in [
        ("agent-user", "4101#"),
        ("agent-pass", &format!("{LONG_PIN}#")),
    ] {
        assert!(
            hd::wait(|| ast.prompts_played(mark, "1000", prompt) >= 1),
            "{prompt} never played:\n{}",
            ast.log_since(mark)
        );
        phone.send_dtmf(digits);
    }
    let status = hd::wait_status(&ast, mark, "1000", "UserLogin");
    assert_eq!(
        status.as_deref(),
        Some("SUCCESS"),
        "{}",
        ast.log_since(mark)
    );
    phone.wait_event("CALL_CLOSED", hd::LONG);
    let log = ast.log();
    // The log is as full as it gets: debug and high verbose levels of Asterisk and of the
    // module.
    assert!(log.contains(" DEBUG["), "no debug lines");
    assert!(
        log.lines()
            .any(|l| l.contains(" res_deviceuser: ") && l.contains("4101 logged in on device 1000")),
        "no verbose login line of the module"
    );
    // Asterisk's RTP stack logs each digit on its own line at debug level (what the README
    // warns about); the module logs none, and nothing logs the PIN whole.
    let digits = log
        .lines()
        .filter(|l| l.contains("RTP creating END DTMF Frame"))
        .count();
    assert!(
        digits >= LONG_PIN.len(),
        "{digits} DTMF digits logged by RTP"
    );
    assert!(
        !log.lines()
            .any(|l| l.contains(" res_deviceuser: ") && l.to_ascii_lowercase().contains("dtmf")),
        "the module logs DTMF"
    );
    let leaks: Vec<&str> = log.lines().filter(|l| l.contains(LONG_PIN)).collect();
    assert!(leaks.is_empty(), "the PIN is in the log: {leaks:#?}");
    let console = ast.stdout_log();
    assert!(!console.contains(LONG_PIN), "the PIN is on the console");
}

/// A PIN that is not only digits cannot be typed at the prompts: a warning at load names the
/// user and says so, and that `;` starts a comment (`abc;def` is read as `abc`), without
/// showing the PIN. A user given with the PIN by the dialplan can still log in with it.
#[test]
fn a_pin_that_is_not_digits_is_warned_about_at_load_without_showing_it() {
    let conf =
        hd::sample_deviceuser_conf().replacen("password = 1234\n", "password = pa55;word\n", 1);
    assert!(conf.contains("pa55;word"));
    let ast = hd::builder("sec-pin-digits")
        .conf("res_deviceuser.conf", &conf)
        .start();
    let warning = hd::wait_log_line(&ast, 0, "WARNING", &["[4101] password:"])
        .expect("a warning naming [4101] password");
    assert!(
        warning.contains("not only digits") && warning.contains("';' starts a comment"),
        "{warning}"
    );
    assert!(
        hd::log_lines(&ast, 0, "WARNING", &["[4102] password:"]).is_empty(),
        "a PIN of digits is not warned about"
    );
    let log = ast.log();
    assert!(!log.contains("pa55"), "the PIN is in the log");
    // The file's `pa55;word` is the PIN `pa55`, which only the dialplan can give.
    let status = hd::call_for_status(&ast, "1000", "**4101pa55;word", "UserLogin");
    assert_eq!(status, "FAILED");
    let status = hd::call_for_status(&ast, "1000", "**4101pa55", "UserLogin");
    assert_eq!(status, "SUCCESS");
    hd::assert_alive(&ast);
}
