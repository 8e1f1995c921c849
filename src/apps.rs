//! Dialplan applications `UserLogin([user[,password]])` and `UserLogout([user])`.
use deviceuser_core::apps::{
    self as prompts, LoginStatus, LogoutStatus, Prompt, LOGIN_STATUS_VARIABLE,
    LOGOUT_STATUS_VARIABLE,
};
use deviceuser_core::args::{parse_digits, split_args};
use deviceuser_core::config::{shown, Device, General, User};
use deviceuser_core::failure::LoginFailure;
use deviceuser_core::logtext::{quoted, value};
use deviceuser_core::{DeviceMode, LoginError, LoginMode, LogoutError, Reason, Snapshot};

use crate::host::channel::{Channel, Input};
use crate::host::log;
use crate::instance::Instance;
use crate::pipeline::Origin;
use crate::security::login_failed;
use crate::state::now;

const MAX_DIGITS: usize = 32;
const DIGIT_TIMEOUT_MS: i32 = 5000;

/// The USERLOGINSTATUS of a login the table refused.
fn status_of(e: &LoginError) -> LoginStatus {
    match e {
        LoginError::Denied => LoginStatus::Denied,
        LoginError::FixedDevice => LoginStatus::Fixed,
        LoginError::NoPassword => LoginStatus::NoPassword,
        LoginError::NoSuchUser => LoginStatus::NoUser,
        LoginError::NoSuchDevice => LoginStatus::Failed,
        LoginError::Store(_) => LoginStatus::Unavailable,
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

/// Plays the file(s) of prompt `p` as configured, stopping at a hangup.
fn play(chan: &Channel, general: &General, p: &Prompt) {
    for file in prompts::files(general.prompt(p)) {
        if chan.play(file).is_err() {
            break;
        }
    }
}

/// `UserLogin([user[,password]])`. Returns -1 only when the caller hung up.
pub fn login(inst: &Instance, chan: &Channel, data: &str) -> i32 {
    let _prompt = inst.prompt();
    let status = LoginCall::start(inst, chan, data).map_or_else(|s| s, |call| call.run());
    chan.set_var(LOGIN_STATUS_VARIABLE, status.as_str());
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
    /// The user is logged in elsewhere: ask for another user.
    OtherUser,
}

impl<'a> LoginCall<'a> {
    /// Checks the arguments and the device, and answers.
    fn start(inst: &'a Instance, chan: &'a Channel, data: &str) -> Result<Self, LoginStatus> {
        let name = chan.name();
        let args = split_args(data);
        if args.len() > 2 {
            log::warning(&format!(
                "UserLogin on {}: too many arguments ({} given, expected [user[,password]])",
                value(&name),
                args.len()
            ));
            return Err(LoginStatus::Failed);
        }
        let snap = inst.snapshot();
        let Some(device) = snap.config().device_for_channel(&name).cloned() else {
            log::warning(&format!(
                "UserLogin: channel {} is not a configured device (no device has this dial string)",
                value(&name)
            ));
            return Err(LoginStatus::Failed);
        };
        if chan.answer().is_err() {
            return Err(LoginStatus::Hangup);
        }
        if device.mode == DeviceMode::Fixed {
            log::notice(&format!(
                "UserLogin on {}: device {} is fixed; login refused",
                value(&name),
                value(&device.id)
            ));
            login_failed(
                inst.state(),
                Some(chan),
                &device.id,
                None,
                LoginFailure::Fixed,
            );
            play(chan, &snap.config().general, &prompts::FIXED_DEVICE);
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
        let mut user_prompt = self.general.prompt(&prompts::USER).to_string();
        let mut password_prompt = self.general.prompt(&prompts::PASSWORD).to_string();
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
                        Retry::User => {
                            user_prompt = self.general.prompt(&prompts::RETRY_USER).to_string()
                        }
                        Retry::Pin => {
                            password_prompt =
                                self.general.prompt(&prompts::RETRY_PASSWORD).to_string()
                        }
                        Retry::OtherUser => {
                            user_prompt = self.general.prompt(&prompts::DENIED).to_string()
                        }
                    }
                }
            }
        }
        log::warning(&format!(
            "UserLogin on device {}: giving up after {} attempts",
            value(&self.device.id),
            self.general.max_attempts
        ));
        play(self.chan, &self.general, &prompts::GIVE_UP);
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
                    value(&self.device.id)
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
        // The PIN is asked in the user's language; a failed attempt goes back to the
        // channel's.
        let language = LanguageFor::user(self.chan, user.as_ref());
        let attempt = self.after_user(&user_id, user, password_prompt);
        if !matches!(attempt, Attempt::Done(LoginStatus::Success)) {
            language.restore();
        }
        attempt
    }

    /// The rest of an attempt, once the user number is known.
    fn after_user(&self, user_id: &str, user: Option<User>, password_prompt: &str) -> Attempt {
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
            let shown = shown(user_id);
            login_failed(
                self.inst.state(),
                Some(self.chan),
                &self.device.id,
                Some(&shown),
                LoginFailure::NoSuchUser,
            );
            log::warning(&format!(
                "UserLogin on device {}: failed login as user {} (no such user)",
                value(&self.device.id),
                quoted(&shown)
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
        match self.commit(&user) {
            // Another user may log in here; unless the dialplan gave the user.
            LoginStatus::Denied if self.given_user.is_none() => {
                Attempt::Retry(LoginStatus::Denied, Retry::OtherUser)
            }
            LoginStatus::Denied => {
                play(self.chan, &self.general, &prompts::REFUSED);
                Attempt::Done(LoginStatus::Denied)
            }
            status => Attempt::Done(status),
        }
    }

    /// A user who cannot log in whatever the PIN: no password, or locked out.
    fn refused_before_pin(&self, u: &User) -> Option<LoginStatus> {
        let (shown_device, shown_user) = (value(&self.device.id), value(&u.id));
        // With several nodes, the wrong PINs of every node count too.
        let locked = || {
            let now = now();
            let shared = (self.inst.cluster())
                .map_or(Ok(()), |c| c.lockout_check(&u.id, now, &self.general));
            self.inst.state().lockout().check(&u.id, now).and(shared)
        };
        let (failure, why, prompt, status) = if u.password.is_none() {
            (
                LoginFailure::NoPassword,
                "has no password and cannot log in".to_owned(),
                &prompts::NO_PASSWORD,
                LoginStatus::NoPassword,
            )
        } else if let Err(left) = locked() {
            (
                LoginFailure::Locked,
                format!("is locked out for {left} more seconds after repeated wrong PINs"),
                &prompts::LOCKED,
                LoginStatus::Locked,
            )
        } else {
            return None;
        };
        login_failed(
            self.inst.state(),
            Some(self.chan),
            &self.device.id,
            Some(&u.id),
            failure,
        );
        log::warning(&format!(
            "UserLogin on device {shown_device}: user {shown_user} {why}"
        ));
        play(self.chan, &self.general, prompt);
        Some(status)
    }

    /// Counts a PIN entry for lockout; `Some(Locked)` if the user is (or just got) locked.
    /// Checked again after the PIN: attempts running in parallel all passed the first
    /// check, and none may get in (or count as a plain failure) once one has locked.
    fn count_pin(&self, u: &User, ok: bool) -> Option<LoginStatus> {
        let now = now();
        let device = &self.device.id;
        let (shown_device, shown_user) = (value(device), value(&u.id));
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
            login_failed(
                self.inst.state(),
                Some(self.chan),
                device,
                Some(&u.id),
                LoginFailure::Locked,
            );
            log::warning(&format!(
                "UserLogin on device {shown_device}: user {shown_user} is locked out after repeated wrong PINs"
            ));
        } else if !ok {
            login_failed(
                self.inst.state(),
                Some(self.chan),
                device,
                Some(&u.id),
                LoginFailure::WrongPassword,
            );
            log::warning(&format!(
                "UserLogin on device {shown_device}: failed login as user {shown_user} (wrong password)"
            ));
        }
        if locked_now {
            let g = &self.general;
            log::warning(&format!(
                "UserLogin: user {shown_user} locked out for {} seconds after {} wrong PINs within {} seconds (last try on device {shown_device})",
                g.lockout_time, g.max_login_failures, g.lockout_window
            ));
        }
        if locked_before || locked_now {
            play(self.chan, &self.general, &prompts::LOCKED);
            return Some(LoginStatus::Locked);
        }
        None
    }

    /// A wrong user or PIN: a PIN from the dialplan is not asked again; otherwise ask again
    /// for the user, or for the PIN alone when the dialplan gave the user.
    fn retry_or_refuse(&self, status: LoginStatus) -> Attempt {
        if self.given_pin.is_some() {
            play(self.chan, &self.general, &prompts::REFUSED);
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
                play(self.chan, &self.general, &prompts::LOGGED_IN);
                LoginStatus::Success
            }
            Err(e @ LoginError::Store(_)) => {
                log::warning(&format!(
                    "UserLogin of {} on device {}: {e}",
                    value(&user.id),
                    value(device)
                ));
                play(self.chan, &self.general, &prompts::NOT_SAVED);
                status_of(&e)
            }
            Err(e) => {
                if let Some(failure) = LoginFailure::of(&e) {
                    login_failed(
                        self.inst.state(),
                        Some(self.chan),
                        device,
                        Some(&user.id),
                        failure,
                    );
                }
                log::warning(&format!(
                    "UserLogin of {} on device {}: {e}",
                    value(&user.id),
                    value(device)
                ));
                // A denied login's prompt is chosen by the attempt (ask again or not).
                if !matches!(e, LoginError::Denied) {
                    play(self.chan, &self.general, &prompts::REFUSED);
                }
                status_of(&e)
            }
        }
    }
}

/// `UserLogout([user])`: with no argument, logs out of the calling device; with a user,
/// logs that user out everywhere.
pub fn logout(inst: &Instance, chan: &Channel, data: &str) -> i32 {
    let _prompt = inst.prompt();
    let status = logout_on(inst, chan, data);
    chan.set_var(LOGOUT_STATUS_VARIABLE, status.as_str());
    0
}

fn logout_on(inst: &Instance, chan: &Channel, data: &str) -> LogoutStatus {
    let name = chan.name();
    let args = split_args(data);
    if args.len() > 1 {
        log::warning(&format!(
            "UserLogout on {}: too many arguments {} (expected [user])",
            value(&name),
            quoted(&shown(data))
        ));
        return LogoutStatus::Failed;
    }
    let result = match args.first().filter(|s| !s.is_empty()) {
        Some(user) => inst.logout_user(Origin::Phone, Some(chan), user, Reason::Manual),
        None => {
            let snap = inst.snapshot();
            let Some(device) = snap.config().device_for_channel(&name) else {
                log::warning(&format!(
                    "UserLogout: channel {} is not a configured device",
                    value(&name)
                ));
                return LogoutStatus::Failed;
            };
            let r = inst.logout_device(Origin::Phone, Some(chan), &device.id, Reason::Manual);
            // Answered either way: "logged off" is also true of a device nobody was on; a
            // fixed device says nothing changed, and a logout the database did not save
            // says to try again. The confirmation is in the language of the user who
            // logged out.
            if chan.answer().is_ok() {
                let general = &snap.config().general;
                match &r {
                    Err(LogoutError::FixedDevice) => play(chan, general, &prompts::FIXED_LOGOUT),
                    Err(LogoutError::Store(_)) => play(chan, general, &prompts::NOT_SAVED),
                    Ok(c) => {
                        let gone = c
                            .removed
                            .first()
                            .and_then(|(b, _)| snap.config().user(&b.user));
                        let _language = LanguageFor::user(chan, gone);
                        play(chan, general, &prompts::LOGGED_OFF);
                    }
                    Err(_) => play(chan, general, &prompts::LOGGED_OFF),
                }
            }
            r
        }
    };
    match result {
        Ok(_) => LogoutStatus::Success,
        Err(e) => {
            // Not saved is worth a warning: the caller was told to try again.
            if matches!(e, LogoutError::Store(_)) {
                log::warning(&format!("UserLogout on {}: {e}", value(&name)));
            } else {
                log::notice(&format!("UserLogout on {}: {e}", value(&name)));
            }
            match e {
                LogoutError::NotLoggedIn => LogoutStatus::NotLoggedIn,
                LogoutError::FixedDevice => LogoutStatus::Fixed,
                LogoutError::NoSuchUser => LogoutStatus::NoUser,
                LogoutError::NoSuchDevice => LogoutStatus::Failed,
                LogoutError::Store(_) => LogoutStatus::Unavailable,
            }
        }
    }
}

/// The channel's language set to a user's while prompts for them play; [`restore`] (or
/// nothing, when the call goes on in the user's language) after.
///
/// [`restore`]: LanguageFor::restore
struct LanguageFor<'a> {
    chan: &'a Channel,
    /// The channel's language before, if it was changed.
    before: Option<String>,
}

impl<'a> LanguageFor<'a> {
    fn user(chan: &'a Channel, user: Option<&User>) -> LanguageFor<'a> {
        let lang = user
            .and_then(|u| u.language.as_deref())
            .filter(|l| !l.is_empty());
        let before = lang.and_then(|l| {
            let before = chan.language();
            (before != l).then(|| {
                chan.set_language(l);
                before
            })
        });
        LanguageFor { chan, before }
    }

    fn restore(self) {
        if let Some(l) = &self.before {
            self.chan.set_language(l);
        }
    }
}
