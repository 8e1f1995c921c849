//! Dialplan applications `UserLogin([user[,password]])` and `UserLogout([user])`.
use std::sync::atomic::{AtomicUsize, Ordering};

use deviceuser_core::args::{parse_digits, split_args};
use deviceuser_core::config::shown;
use deviceuser_core::{Changes, DeviceMode, LoginError, LoginMode, LogoutError, Reason};

use crate::host::channel::{Channel, Input};
use crate::host::log;
use crate::runtime::{self, Runtime};

/// Login prompts running on channels; unload is refused while any is.
static RUNNING: AtomicUsize = AtomicUsize::new(0);

pub fn running() -> usize {
    RUNNING.load(Ordering::SeqCst)
}

struct Running;
impl Running {
    fn enter() -> Running {
        RUNNING.fetch_add(1, Ordering::SeqCst);
        Running
    }
}
impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::SeqCst);
    }
}

const MAX_DIGITS: usize = 32;
const DIGIT_TIMEOUT_MS: i32 = 5000;
const LOGIN_STATUS: &str = "USERLOGINSTATUS";
const LOGOUT_STATUS: &str = "USERLOGOUTSTATUS";
/// Asks for the user number again after a failed attempt: "Login incorrect. Please enter
/// your agent number followed by the pound key."
const RETRY_USER_PROMPT: &str = "agent-incorrect";
/// Asks for the PIN again when the user was given by the dialplan: "Password incorrect.
/// Please enter your password followed by the pound key."
const RETRY_PASSWORD_PROMPT: &str = "auth-incorrect";
/// Played when the last attempt failed: "I'm sorry." "Goodbye."
const GIVE_UP_PROMPTS: [&str; 2] = ["im-sorry", "vm-goodbye"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LoginStatus {
    Success,
    Failed,
    Fixed,
    NoUser,
    NoPassword,
    Denied,
    Locked,
    Hangup,
}

impl LoginStatus {
    fn as_str(self) -> &'static str {
        match self {
            LoginStatus::Success => "SUCCESS",
            LoginStatus::Failed => "FAILED",
            LoginStatus::Fixed => "FIXED",
            LoginStatus::NoUser => "NOUSER",
            LoginStatus::NoPassword => "NOPASSWORD",
            LoginStatus::Denied => "DENIED",
            LoginStatus::Locked => "LOCKED",
            LoginStatus::Hangup => "HANGUP",
        }
    }
}

/// What one entry (from an argument or from the keypad) gave.
enum Entry {
    Value(String),
    Bad(String),
    Hangup,
}

fn ask(chan: &Channel, prompt: &str) -> Entry {
    match chan.collect(prompt, MAX_DIGITS, DIGIT_TIMEOUT_MS) {
        Input::Hangup => Entry::Hangup,
        Input::Nothing => Entry::Bad("empty input".into()),
        Input::Digits(d) => match parse_digits(&d, MAX_DIGITS) {
            Ok(d) => Entry::Value(d),
            Err(e) => Entry::Bad(e),
        },
    }
}

/// `UserLogin([user[,password]])`. Returns -1 only when the caller hung up.
pub fn login(chan: &Channel, data: &str) -> i32 {
    let _running = Running::enter();
    let status = runtime::with(|rt| login_on(rt, chan, data)).unwrap_or(LoginStatus::Failed);
    chan.set_var(LOGIN_STATUS, status.as_str());
    if status == LoginStatus::Hangup {
        -1
    } else {
        0
    }
}

fn login_on(rt: &Runtime, chan: &Channel, data: &str) -> LoginStatus {
    let name = chan.name();
    let args = split_args(data);
    if args.len() > 2 {
        log::warning(&format!(
            "UserLogin on {name}: too many arguments ({} given, expected [user[,password]])",
            args.len()
        ));
        return LoginStatus::Failed;
    }
    let snap = rt.table.snapshot();
    let general = snap.config().general.clone();
    let Some(device) = snap.config().device_for_channel(&name).cloned() else {
        log::warning(&format!(
            "UserLogin: channel {name} is not a configured device (no device has this dial string)"
        ));
        return LoginStatus::Failed;
    };
    if chan.answer().is_err() {
        return LoginStatus::Hangup;
    }
    if device.mode == DeviceMode::Fixed {
        log::notice(&format!(
            "UserLogin on {name}: device {} is fixed; login refused",
            device.id
        ));
        let _ = chan
            .play("vm-isunavail")
            .and_then(|_| chan.play("vm-goodbye"));
        return LoginStatus::Fixed;
    }
    let given_user = args.first().filter(|s| !s.is_empty()).cloned();
    let given_pin = args.get(1).filter(|s| !s.is_empty()).cloned();
    let mut last = LoginStatus::Failed;
    // After a failed attempt the "incorrect" prompt asks for the next entry itself, so the
    // caller is never told to enter something that is not asked next, nor invited to try
    // again when no attempt is left.
    let mut user_prompt = general.user_prompt.clone();
    let mut password_prompt = general.password_prompt.clone();
    for attempt in 1..=general.max_attempts {
        let more = attempt < general.max_attempts;
        let user_id = match &given_user {
            Some(u) => Entry::Value(u.clone()),
            None => ask(chan, &user_prompt),
        };
        let user_id = match user_id {
            Entry::Hangup => return LoginStatus::Hangup,
            Entry::Bad(why) => {
                log::notice(&format!(
                    "UserLogin on device {}: bad user entry: {why}",
                    device.id
                ));
                last = LoginStatus::NoUser;
                if !more {
                    break;
                }
                user_prompt = RETRY_USER_PROMPT.to_string();
                continue;
            }
            Entry::Value(u) => u,
        };
        let user = snap.config().user(&user_id).cloned();
        if let Some(u) = &user {
            if u.password.is_none() {
                runtime::login_failed(&device.id, Some(&user_id), "no password");
                log::warning(&format!(
                    "UserLogin on device {}: user {user_id} has no password and cannot log in",
                    device.id
                ));
                let _ = chan.play("agent-incorrect");
                return LoginStatus::NoPassword;
            }
            let locked = rt
                .lockout
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .check(&u.id, runtime::now());
            if let Err(left) = locked {
                runtime::login_failed(&device.id, Some(&user_id), "locked out");
                log::warning(&format!(
                    "UserLogin on device {}: user {user_id} is locked out for {left} more seconds after repeated wrong PINs",
                    device.id
                ));
                let _ = chan.play("agent-incorrect");
                return LoginStatus::Locked;
            }
        }
        let pin = match &given_pin {
            Some(p) => Entry::Value(p.clone()),
            None => ask(chan, &password_prompt),
        };
        let pin = match pin {
            Entry::Hangup => return LoginStatus::Hangup,
            Entry::Bad(_) => String::new(),
            Entry::Value(p) => p,
        };
        let ok = user.as_ref().is_some_and(|u| u.password_matches(&pin));
        let now = runtime::now();
        if let Some(u) = &user {
            // Checked again after the PIN: attempts running in parallel all passed the first
            // check, and none may get in (or count as a plain failure) once one has locked.
            let mut lockout = rt.lockout.lock().unwrap_or_else(|e| e.into_inner());
            let locked_before = lockout.check(&u.id, now).is_err();
            let locked_now = !locked_before && !ok && lockout.failure(&u.id, now, &general);
            drop(lockout);
            if locked_before {
                runtime::login_failed(&device.id, Some(&u.id), "locked out");
                log::warning(&format!(
                    "UserLogin on device {}: user {} is locked out after repeated wrong PINs",
                    device.id, u.id
                ));
            } else if !ok {
                runtime::login_failed(&device.id, Some(&u.id), "wrong password");
                log::warning(&format!(
                    "UserLogin on device {}: failed login as user {} (wrong password)",
                    device.id, u.id
                ));
            }
            if locked_now {
                log::warning(&format!(
                    "UserLogin: user {} locked out for {} seconds after {} wrong PINs within {} seconds (last try on device {})",
                    u.id, general.lockout_time, general.max_login_failures, general.lockout_window, device.id
                ));
            }
            if locked_before || locked_now {
                let _ = chan.play("agent-incorrect");
                return LoginStatus::Locked;
            }
        }
        if !ok {
            last = if user.is_none() {
                LoginStatus::NoUser
            } else {
                LoginStatus::Failed
            };
            if user.is_none() {
                let shown = shown(&user_id);
                runtime::login_failed(&device.id, Some(&shown), "no such user");
                log::warning(&format!(
                    "UserLogin on device {}: failed login as user {shown} (no such user)",
                    device.id
                ));
            }
            if given_pin.is_some() {
                // A PIN from the dialplan is not asked again.
                let _ = chan.play("agent-incorrect");
                return last;
            }
            if !more {
                break;
            }
            if given_user.is_some() {
                password_prompt = RETRY_PASSWORD_PROMPT.to_string();
            } else {
                user_prompt = RETRY_USER_PROMPT.to_string();
            }
            continue;
        }
        let user = user.expect("checked above");
        let result = rt.table.login(
            &user.id,
            &device.id,
            LoginMode::Interactive,
            runtime::now(),
            |changes| {
                runtime::commit(changes);
                record_cel(chan, changes);
            },
        );
        return match result {
            Ok(_) => {
                rt.lockout
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .success(&user.id);
                if let Some(lang) = user.language.as_deref().filter(|l| !l.is_empty()) {
                    chan.set_language(lang);
                }
                // The login stands even if the caller hangs up during the confirmation.
                let _ = chan.play("agent-loginok");
                LoginStatus::Success
            }
            Err(e) => {
                runtime::login_failed(&device.id, Some(&user.id), &e.to_string());
                log::warning(&format!(
                    "UserLogin of {} on device {}: {e}",
                    user.id, device.id
                ));
                let _ = chan.play("agent-incorrect");
                match e {
                    LoginError::Denied => LoginStatus::Denied,
                    LoginError::FixedDevice => LoginStatus::Fixed,
                    LoginError::NoPassword => LoginStatus::NoPassword,
                    LoginError::NoSuchUser => LoginStatus::NoUser,
                    LoginError::NoSuchDevice => LoginStatus::Failed,
                }
            }
        };
    }
    log::warning(&format!(
        "UserLogin on device {}: giving up after {} attempts",
        device.id, general.max_attempts
    ));
    for prompt in GIVE_UP_PROMPTS {
        if chan.play(prompt).is_err() {
            break;
        }
    }
    last
}

/// `UserLogout([user])`: with no argument, logs out of the calling device; with a user,
/// logs that user out everywhere.
pub fn logout(chan: &Channel, data: &str) -> i32 {
    let _running = Running::enter();
    let status = runtime::with(|rt| logout_on(rt, chan, data)).unwrap_or("FAILED");
    chan.set_var(LOGOUT_STATUS, status);
    0
}

fn logout_on(rt: &Runtime, chan: &Channel, data: &str) -> &'static str {
    let name = chan.name();
    let args = split_args(data);
    if args.len() > 1 {
        log::warning(&format!(
            "UserLogout on {name}: too many arguments '{}' (expected [user])",
            shown(data)
        ));
        return "FAILED";
    }
    let now = runtime::now();
    let result = match args.first().filter(|s| !s.is_empty()) {
        Some(user) => rt.table.logout_user(user, Reason::Manual, now, |c| {
            runtime::commit(c);
            record_cel(chan, c);
        }),
        None => {
            let device = rt.table.with_snapshot(|s| {
                s.config()
                    .device_for_channel(&name)
                    .map(|d| d.id.to_string())
            });
            let Some(device) = device else {
                log::warning(&format!(
                    "UserLogout: channel {name} is not a configured device"
                ));
                return "FAILED";
            };
            let r = rt.table.logout_device(&device, Reason::Manual, now, |c| {
                runtime::commit(c);
                record_cel(chan, c);
            });
            // Answered either way: "agent logged off" is also true of a device nobody was on.
            if chan.answer().is_ok() {
                let _ = chan.play("agent-loggedoff");
            }
            r
        }
    };
    match result {
        Ok(_) => "SUCCESS",
        Err(e) => {
            log::notice(&format!("UserLogout on {name}: {e}"));
            match e {
                LogoutError::NotLoggedIn => "NOTLOGGEDIN",
                LogoutError::FixedDevice => "FIXED",
                LogoutError::NoSuchUser => "NOUSER",
                LogoutError::NoSuchDevice => "FAILED",
            }
        }
    }
}

/// Login statistics as CEL user events on the channel that made the change, so they land in
/// whatever CEL backend the administrator uses (`USER_DEFINED`, eventtype
/// `DEVICEUSER_LOGIN` / `DEVICEUSER_LOGOUT`).
fn record_cel(chan: &Channel, changes: &Changes) {
    let now = runtime::now();
    for (b, reason) in &changes.removed {
        chan.cel_user_event(
            "DEVICEUSER_LOGOUT",
            &format!(
                "user={},device={},start={},end={now},duration={},reason={reason}",
                b.user,
                b.device,
                b.since,
                now.saturating_sub(b.since)
            ),
        );
    }
    for (b, reason) in &changes.added {
        chan.cel_user_event(
            "DEVICEUSER_LOGIN",
            &format!(
                "user={},device={},start={},reason={reason}",
                b.user, b.device, b.since
            ),
        );
    }
}
