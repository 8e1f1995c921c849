//! Login policies through real SIP logins: `multiple_logins` yes/no/replace, a
//! login on an occupied device, an adhoc device that goes back to its
//! `default_user`, and `UserLogout(user)`.
mod common;
mod hotdesk_common;

use hotdesk_common as hd;

#[test]
fn multiple_logins_yes_keeps_both() {
    let ast = hd::start_with_general("hd-pol-yes", "multiple_logins = yes");
    hd::login_ok(&ast, "1000", "4101", "1234");
    hd::login_ok(&ast, "1001", "4101", "1234");
    assert_eq!(hd::devices_of(&ast, "4101"), ["1000", "1001"]);
    assert_eq!(
        hd::getvar(&ast, "DEVICEUSER_DIAL(4101)"),
        "PJSIP/1000&PJSIP/1001"
    );
}

#[test]
fn multiple_logins_no_denies_the_second_device() {
    let ast = hd::start_with_general("hd-pol-no", "multiple_logins = no");
    hd::login_ok(&ast, "1000", "4101", "1234");
    let mark = ast.log_mark();
    assert_eq!(hd::login(&ast, "1001", "4101", "1234"), "DENIED");
    let warning = hd::wait_log_line(&ast, mark, "WARNING", &["4101", "device 1001"]);
    assert!(warning.is_some(), "{}", ast.log_since(mark));
    assert_eq!(hd::devices_of(&ast, "4101"), ["1000"]);
    assert_eq!(hd::user_on(&ast, "1001"), None);
    // Logging in again on the same device is not a second login.
    assert_eq!(hd::login(&ast, "1000", "4101", "1234"), "SUCCESS");
    assert_eq!(hd::devices_of(&ast, "4101"), ["1000"]);
    // Once logged out, the other device is fine.
    assert_eq!(hd::logout(&ast, "1000"), "SUCCESS");
    hd::login_ok(&ast, "1001", "4101", "1234");
    assert_eq!(hd::devices_of(&ast, "4101"), ["1001"]);
}

#[test]
fn multiple_logins_replace_frees_the_first_device() {
    let ast = hd::start_with_general("hd-pol-replace", "multiple_logins = replace");
    hd::login_ok(&ast, "1000", "4101", "1234");
    let mark = ast.log_mark();
    hd::login_ok(&ast, "1001", "4101", "1234");
    assert_eq!(hd::devices_of(&ast, "4101"), ["1001"]);
    assert_eq!(hd::user_on(&ast, "1000"), None);
    assert_eq!(hd::getvar(&ast, "DEVICEUSER_DIAL(4101)"), "PJSIP/1001");
    assert!(
        ast.log_since(mark)
            .contains("user 4101 logged out of device 1000"),
        "{}",
        ast.log_since(mark)
    );
}

#[test]
fn a_login_on_an_occupied_device_logs_the_previous_user_off() {
    let ast = hd::start("hd-pol-occupied");
    hd::login_ok(&ast, "1000", "4101", "1234");
    hd::login_ok(&ast, "1001", "4101", "1234");
    let mark = ast.log_mark();
    hd::login_ok(&ast, "1000", "4102", "2345");
    assert_eq!(hd::user_on(&ast, "1000").as_deref(), Some("4102"));
    // 4101 keeps his other device.
    assert_eq!(hd::devices_of(&ast, "4101"), ["1001"]);
    assert!(ast
        .log_since(mark)
        .contains("user 4101 logged out of device 1000"));
    assert_eq!(hd::getvar(&ast, "DEVICEUSER_USER(1000)"), "4102");
    assert_eq!(hd::getvar(&ast, "DEVICEUSER_DIAL(4101)"), "PJSIP/1001");
}

#[test]
fn logout_goes_back_to_the_default_user_of_an_adhoc_device() {
    let conf = hd::sample_deviceuser_conf().replace(
        "dial = PJSIP/1002\ndescription = ARM 3\n",
        "dial = PJSIP/1002\ndescription = ARM 3\ndefault_user = 4103\n",
    );
    assert!(conf.contains("default_user = 4103"));
    let ast = hd::builder("hd-pol-default")
        .conf("res_deviceuser.conf", &conf)
        .start();
    assert_eq!(hd::user_on(&ast, "1002").as_deref(), Some("4103"));

    hd::login_ok(&ast, "1002", "4101", "1234");
    assert_eq!(hd::user_on(&ast, "1002").as_deref(), Some("4101"));
    assert!(hd::devices_of(&ast, "4103").is_empty());

    assert_eq!(hd::logout(&ast, "1002"), "SUCCESS");
    assert_eq!(hd::user_on(&ast, "1002").as_deref(), Some("4103"));
    assert!(hd::devices_of(&ast, "4101").is_empty());
    assert_eq!(hd::getvar(&ast, "DEVICEUSER_USER(1002)"), "4103");
}

#[test]
fn userlogout_with_a_user_logs_him_out_everywhere() {
    let ast = hd::start("hd-pol-logout-user");
    hd::login_ok(&ast, "1000", "4101", "1234");
    hd::login_ok(&ast, "1001", "4101", "1234");
    hd::login_ok(&ast, "1002", "4102", "2345");
    // From another phone, without prompts.
    let status = hd::call_for_status(&ast, "2010", "**04101", "UserLogout");
    assert_eq!(status, "SUCCESS");
    assert!(hd::devices_of(&ast, "4101").is_empty());
    assert_eq!(hd::devices_of(&ast, "4102"), ["1002"]);
    hd::wait_hint(&ast, "4101", "Unavailable");
    // Again: nobody to log out; an unknown user.
    let status = hd::call_for_status(&ast, "2010", "**04101", "UserLogout");
    assert_eq!(status, "NOTLOGGEDIN");
    let status = hd::call_for_status(&ast, "2010", "**09999", "UserLogout");
    assert_eq!(status, "NOUSER");
    // The fixed device's own user stays.
    let status = hd::call_for_status(&ast, "2010", "*12", "UserLogout");
    assert_eq!(status, "FIXED");
    assert_eq!(hd::user_on(&ast, "2010").as_deref(), Some("2010"));
}

#[test]
fn logins_with_wrong_arguments_fail_with_a_clear_status() {
    let ast = hd::start("hd-pol-badargs");
    let mark = ast.log_mark();
    // Unknown user, PIN given by the dialplan: no retry.
    assert_eq!(hd::login(&ast, "1000", "9999", "1234"), "NOUSER");
    // Wrong PIN given by the dialplan.
    assert_eq!(hd::login(&ast, "1000", "4101", "4321"), "FAILED");
    assert!(!hd::log_lines(&ast, mark, "WARNING", &["device 1000", "9999"]).is_empty());
    assert!(!hd::log_lines(&ast, mark, "WARNING", &["device 1000", "4101"]).is_empty());
    // (The dialplan itself shows the extension dialled; the module must not.)
    let leaks: Vec<String> = ast
        .log()
        .lines()
        .filter(|l| l.contains(" res_deviceuser: ") && l.contains("4321"))
        .map(str::to_string)
        .collect();
    assert!(leaks.is_empty(), "the module logs the PIN: {leaks:?}");
    assert!(hd::bindings(&ast).iter().all(|(_, d)| d != "1000"));
    hd::assert_alive(&ast);
}
