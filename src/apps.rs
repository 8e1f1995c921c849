//! Dialplan applications `UserLogin([user[,password]])` and `UserLogout([user])`.
use deviceuser_core::args::{parse_digits, split_args};
use deviceuser_core::config::{shown, Device, General, User};
use deviceuser_core::{DeviceMode, LoginError, LoginMode, LogoutError, Reason, Snapshot};

use crate::host::channel::{Channel, Input};
use crate::host::log;
use crate::instance::Instance;
use crate::pipeline::Origin;
use crate::security::login_failed;
use crate::state::now;

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
/// Played when a login is refused for good.
const REFUSED_PROMPT: &str = "agent-incorrect";
/// Played when the last attempt failed: "I'm sorry." "Goodbye."
const GIVE_UP_PROMPTS: [&str; 2] = ["im-sorry", "vm-goodbye"];
/// Played on a fixed device: "... is unavailable." "Goodbye."
const FIXED_PROMPTS: [&str; 2] = ["vm-isunavail", "vm-goodbye"];
/// Played when the login or logout could not be saved (the shared database does not
/// answer): "I'm sorry." "Please try again." Nothing changed.
const NOT_SAVED_PROMPTS: [&str; 2] = ["im-sorry", "please-try-again"];
const LOGGED_IN_PROMPT: &str = "agent-loginok";
const LOGGED_OUT_PROMPT: &str = "agent-loggedoff";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LoginStatus {
    Success,
    Failed,
    Fixed,
    NoUser,
    NoPassword,
    Denied,
    Locked,
    /// Not saved: the shared database refused or did not answer; nothing changed.
    Unavailable,
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
            LoginStatus::Unavailable => "UNAVAILABLE",
            LoginStatus::Hangup => "HANGUP",
        }
    }

    fn of(e: &LoginError) -> LoginStatus {
        match e {
            LoginError::Denied => LoginStatus::Denied,
            LoginError::FixedDevice => LoginStatus::Fixed,
            LoginError::NoPassword => LoginStatus::NoPassword,
            LoginError::NoSuchUser => LoginStatus::NoUser,
            LoginError::NoSuchDevice => LoginStatus::Failed,
            LoginError::Store(_) => LoginStatus::Unavailable,
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

/// Plays `prompts` in turn, stopping at a hangup.
fn play_all(chan: &Channel, prompts: &[&str]) {
    for p in prompts {
        if chan.play(p).is_err() {
            break;
        }
    }
}

/// `UserLogin([user[,password]])`. Returns -1 only when the caller hung up.
pub fn login(inst: &Instance, chan: &Channel, data: &str) -> i32 {
    let _prompt = inst.prompt();
    let status = LoginCall::start(inst, chan, data).map_or_else(|s| s, |call| call.run());
    chan.set_var(LOGIN_STATUS, status.as_str());
    if status == LoginStatus::Hangup {
        -1
    } else {
        0
    }
}

/// One run of `UserLogin` on a device.
struct LoginCall<'a> {
    inst: &'a Instance,
    chan: &'a Channel,
    snap: std::sync::Arc<Snapshot>,
    general: General,
    device: Device,
    given_user: Option<String>,
    given_pin: Option<String>,
}

/// How one attempt ended.
enum Attempt {
    /// The call is over with this status.
    Done(LoginStatus),
    /// Try again (if attempts are left) with this status as the last one, asking again for
    /// the user or only for the PIN.
    Retry(LoginStatus, Retry),
}

enum Retry {
    User,
    Pin,
}

impl<'a> LoginCall<'a> {
    /// Checks the arguments and the device, and answers.
    fn start(inst: &'a Instance, chan: &'a Channel, data: &str) -> Result<Self, LoginStatus> {
        let name = chan.name();
        let args = split_args(data);
        if args.len() > 2 {
            log::warning(&format!(
                "UserLogin on {name}: too many arguments ({} given, expected [user[,password]])",
                args.len()
            ));
            return Err(LoginStatus::Failed);
        }
        let snap = inst.snapshot();
        let Some(device) = snap.config().device_for_channel(&name).cloned() else {
            log::warning(&format!(
                "UserLogin: channel {name} is not a configured device (no device has this dial string)"
            ));
            return Err(LoginStatus::Failed);
        };
        if chan.answer().is_err() {
            return Err(LoginStatus::Hangup);
        }
        if device.mode == DeviceMode::Fixed {
            log::notice(&format!(
                "UserLogin on {name}: device {} is fixed; login refused",
                device.id
            ));
            play_all(chan, &FIXED_PROMPTS);
            return Err(LoginStatus::Fixed);
        }
        let general = snap.config().general.clone();
        Ok(LoginCall {
            inst,
            chan,
            general,
            device,
            given_user: args.first().filter(|s| !s.is_empty()).cloned(),
            given_pin: args.get(1).filter(|s| !s.is_empty()).cloned(),
            snap,
        })
    }

    /// Up to `max_attempts` attempts. After a failed one the "incorrect" prompt asks for the
    /// next entry itself, so the caller is never told to enter something that is not asked
    /// next, nor invited to try again when no attempt is left.
    fn run(self) -> LoginStatus {
        let mut user_prompt = self.general.user_prompt.clone();
        let mut password_prompt = self.general.password_prompt.clone();
        let mut last = LoginStatus::Failed;
        for attempt in 1..=self.general.max_attempts {
            match self.attempt(&user_prompt, &password_prompt) {
                Attempt::Done(status) => return status,
                Attempt::Retry(status, retry) => {
                    last = status;
                    if attempt == self.general.max_attempts {
                        break;
                    }
                    match retry {
                        Retry::User => user_prompt = RETRY_USER_PROMPT.to_string(),
                        Retry::Pin => password_prompt = RETRY_PASSWORD_PROMPT.to_string(),
                    }
                }
            }
        }
        log::warning(&format!(
            "UserLogin on device {}: giving up after {} attempts",
            self.device.id, self.general.max_attempts
        ));
        play_all(self.chan, &GIVE_UP_PROMPTS);
        last
    }

    fn attempt(&self, user_prompt: &str, password_prompt: &str) -> Attempt {
        let user_id = match self
            .given_user
            .clone()
            .map_or_else(|| ask(self.chan, user_prompt), Entry::Value)
        {
            Entry::Hangup => return Attempt::Done(LoginStatus::Hangup),
            Entry::Bad(why) => {
                log::notice(&format!(
                    "UserLogin on device {}: bad user entry: {why}",
                    self.device.id
                ));
                return Attempt::Retry(LoginStatus::NoUser, Retry::User);
            }
            Entry::Value(u) => u,
        };
        let user = self.snap.config().user(&user_id).cloned();
        if let Some(u) = &user {
            if let Some(status) = self.refused_before_pin(u) {
                return Attempt::Done(status);
            }
        }
        let pin = match self
            .given_pin
            .clone()
            .map_or_else(|| ask(self.chan, password_prompt), Entry::Value)
        {
            Entry::Hangup => return Attempt::Done(LoginStatus::Hangup),
            Entry::Bad(_) => String::new(),
            Entry::Value(p) => p,
        };
        let Some(user) = user else {
            let shown = shown(&user_id);
            login_failed(&self.device.id, Some(&shown), "no such user");
            log::warning(&format!(
                "UserLogin on device {}: failed login as user {shown} (no such user)",
                self.device.id
            ));
            return self.retry_or_refuse(LoginStatus::NoUser);
        };
        let ok = user.password_matches(&pin);
        if let Some(status) = self.count_pin(&user, ok) {
            return Attempt::Done(status);
        }
        if !ok {
            return self.retry_or_refuse(LoginStatus::Failed);
        }
        Attempt::Done(self.commit(&user))
    }

    /// A user who cannot log in whatever the PIN: no password, or locked out.
    fn refused_before_pin(&self, u: &User) -> Option<LoginStatus> {
        let device = &self.device.id;
        if u.password.is_none() {
            login_failed(device, Some(&u.id), "no password");
            log::warning(&format!(
                "UserLogin on device {device}: user {} has no password and cannot log in",
                u.id
            ));
            let _ = self.chan.play(REFUSED_PROMPT);
            return Some(LoginStatus::NoPassword);
        }
        let now = now();
        let shared =
            (self.inst.cluster()).map_or(Ok(()), |c| c.lockout_check(&u.id, now, &self.general));
        if let Err(left) = self.inst.state().lockout().check(&u.id, now).and(shared) {
            login_failed(device, Some(&u.id), "locked out");
            log::warning(&format!(
                "UserLogin on device {device}: user {} is locked out for {left} more seconds after repeated wrong PINs",
                u.id
            ));
            let _ = self.chan.play(REFUSED_PROMPT);
            return Some(LoginStatus::Locked);
        }
        None
    }

    /// Counts a PIN entry for lockout; `Some(Locked)` if the user is (or just got) locked.
    /// Checked again after the PIN: attempts running in parallel all passed the first
    /// check, and none may get in (or count as a plain failure) once one has locked.
    fn count_pin(&self, u: &User, ok: bool) -> Option<LoginStatus> {
        let now = now();
        let device = &self.device.id;
        let mut lockout = self.inst.state().lockout();
        let locked_before = lockout.check(&u.id, now).is_err();
        let locked_now = !locked_before && !ok && lockout.failure(&u.id, now, &self.general);
        drop(lockout);
        // With several nodes, the wrong PINs of every node count too.
        let (locked_before, locked_now) = match self.inst.cluster() {
            Some(c) => {
                let shared_before = c.lockout_check(&u.id, now, &self.general).is_err();
                let shared_now = !locked_before
                    && !shared_before
                    && !ok
                    && c.pin_failure(&u.id, now, &self.general);
                (locked_before || shared_before, locked_now || shared_now)
            }
            None => (locked_before, locked_now),
        };
        if locked_before {
            login_failed(device, Some(&u.id), "locked out");
            log::warning(&format!(
                "UserLogin on device {device}: user {} is locked out after repeated wrong PINs",
                u.id
            ));
        } else if !ok {
            login_failed(device, Some(&u.id), "wrong password");
            log::warning(&format!(
                "UserLogin on device {device}: failed login as user {} (wrong password)",
                u.id
            ));
        }
        if locked_now {
            let g = &self.general;
            log::warning(&format!(
                "UserLogin: user {} locked out for {} seconds after {} wrong PINs within {} seconds (last try on device {device})",
                u.id, g.lockout_time, g.max_login_failures, g.lockout_window
            ));
        }
        if locked_before || locked_now {
            let _ = self.chan.play(REFUSED_PROMPT);
            return Some(LoginStatus::Locked);
        }
        None
    }

    /// A wrong user or PIN: a PIN from the dialplan is not asked again; otherwise ask again
    /// for the user, or for the PIN alone when the dialplan gave the user.
    fn retry_or_refuse(&self, status: LoginStatus) -> Attempt {
        if self.given_pin.is_some() {
            let _ = self.chan.play(REFUSED_PROMPT);
            return Attempt::Done(status);
        }
        let retry = if self.given_user.is_some() {
            Retry::Pin
        } else {
            Retry::User
        };
        Attempt::Retry(status, retry)
    }

    fn commit(&self, user: &User) -> LoginStatus {
        let device = &self.device.id;
        let result = self.inst.login(
            Origin::Phone,
            Some(self.chan),
            &user.id,
            device,
            LoginMode::Interactive,
        );
        match result {
            Ok(_) => {
                self.inst.state().lockout().success(&user.id);
                if let Some(c) = self.inst.cluster() {
                    c.pin_success(&user.id);
                }
                if let Some(lang) = user.language.as_deref().filter(|l| !l.is_empty()) {
                    self.chan.set_language(lang);
                }
                // The login stands even if the caller hangs up during the confirmation.
                let _ = self.chan.play(LOGGED_IN_PROMPT);
                LoginStatus::Success
            }
            Err(e @ LoginError::Store(_)) => {
                log::warning(&format!("UserLogin of {} on device {device}: {e}", user.id));
                play_all(self.chan, &NOT_SAVED_PROMPTS);
                LoginStatus::of(&e)
            }
            Err(e) => {
                login_failed(device, Some(&user.id), &e.to_string());
                log::warning(&format!("UserLogin of {} on device {device}: {e}", user.id));
                let _ = self.chan.play(REFUSED_PROMPT);
                LoginStatus::of(&e)
            }
        }
    }
}

/// `UserLogout([user])`: with no argument, logs out of the calling device; with a user,
/// logs that user out everywhere.
pub fn logout(inst: &Instance, chan: &Channel, data: &str) -> i32 {
    let _prompt = inst.prompt();
    let status = logout_on(inst, chan, data);
    chan.set_var(LOGOUT_STATUS, status);
    0
}

fn logout_on(inst: &Instance, chan: &Channel, data: &str) -> &'static str {
    let name = chan.name();
    let args = split_args(data);
    if args.len() > 1 {
        log::warning(&format!(
            "UserLogout on {name}: too many arguments '{}' (expected [user])",
            shown(data)
        ));
        return "FAILED";
    }
    let result = match args.first().filter(|s| !s.is_empty()) {
        Some(user) => inst.logout_user(Origin::Phone, Some(chan), user, Reason::Manual),
        None => {
            let snap = inst.snapshot();
            let Some(device) = snap.config().device_for_channel(&name) else {
                log::warning(&format!(
                    "UserLogout: channel {name} is not a configured device"
                ));
                return "FAILED";
            };
            let r = inst.logout_device(Origin::Phone, Some(chan), &device.id, Reason::Manual);
            // Answered either way: "logged off" is also true of a device nobody was on;
            // not of one whose logout was not saved.
            if chan.answer().is_ok() {
                if let Err(LogoutError::Store(_)) = r {
                    play_all(chan, &NOT_SAVED_PROMPTS);
                } else {
                    let _ = chan.play(LOGGED_OUT_PROMPT);
                }
            }
            r
        }
    };
    match result {
        Ok(_) => "SUCCESS",
        Err(e) => {
            if matches!(e, LogoutError::Store(_)) {
                log::warning(&format!("UserLogout on {name}: {e}"));
            } else {
                log::notice(&format!("UserLogout on {name}: {e}"));
            }
            match e {
                LogoutError::NotLoggedIn => "NOTLOGGEDIN",
                LogoutError::FixedDevice => "FIXED",
                LogoutError::NoSuchUser => "NOUSER",
                LogoutError::NoSuchDevice => "FAILED",
                LogoutError::Store(_) => "UNAVAILABLE",
            }
        }
    }
}
