//! What the dialplan applications `UserLogin` and `UserLogout` play and the values they set:
//! one list, read by the applications, by the config (each prompt has a `[general]` option
//! that replaces it), and by the tests that hold the documentation to them.

use std::fmt;

/// A prompt of the applications.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prompt {
    /// The `[general]` option that replaces it.
    pub option: &'static str,
    /// Asterisk's stock sound file(s) played by default, `&`-separated as for `Playback()`.
    pub default: &'static str,
    /// When it is played.
    pub when: &'static str,
    /// What the stock recording says (Asterisk's core sounds, English). Several say
    /// "agent": they were recorded for `app_agent_pool`, which is why each can be replaced.
    pub says: &'static str,
}

/// Asks for the user number.
pub const USER: Prompt = Prompt {
    option: "user_prompt",
    default: "agent-user",
    when: "asks for the user number",
    says: "Agent login. Please enter your agent number followed by the pound key.",
};
/// Asks for the PIN.
pub const PASSWORD: Prompt = Prompt {
    option: "password_prompt",
    default: "agent-pass",
    when: "asks for the PIN",
    says: "Please enter your password followed by the pound key.",
};
/// Asks for the user number again after a failed attempt.
pub const RETRY_USER: Prompt = Prompt {
    option: "retry_user_prompt",
    default: "agent-incorrect",
    when: "after a failed attempt, asks for the user number again",
    says: "Login incorrect. Please enter your agent number followed by the pound key.",
};
/// Asks for the PIN again after a wrong one, when the dialplan gave the user.
pub const RETRY_PASSWORD: Prompt = Prompt {
    option: "retry_password_prompt",
    default: "auth-incorrect",
    when: "after a wrong PIN for a user given by the dialplan, asks for the PIN again",
    says: "Password incorrect. Please enter your password followed by the pound key.",
};
/// A login refused with nothing more to ask: a wrong PIN or user given by the dialplan, or
/// a user logged in elsewhere given by the dialplan.
pub const REFUSED: Prompt = Prompt {
    option: "login_refused_prompt",
    default: "vm-incorrect",
    when: "the login is refused and nothing more is asked (a wrong PIN given by the \
           dialplan; multiple_logins = no for a user given by the dialplan)",
    says: "Login incorrect.",
};
/// The user is locked out after repeated wrong PINs.
pub const LOCKED: Prompt = Prompt {
    option: "locked_prompt",
    default: "im-sorry&disabled&vm-goodbye",
    when: "the user is locked out after repeated wrong PINs (max_login_failures)",
    says: "I'm sorry. Disabled. Goodbye.",
};
/// The user is logged in on another device and `multiple_logins = no`.
pub const DENIED: Prompt = Prompt {
    option: "denied_prompt",
    default: "agent-alreadyon",
    when: "the user is logged in on another device (multiple_logins = no); asks for \
           another user number",
    says: "That agent is already logged on. Please enter your agent number followed by the \
           pound key.",
};
/// The user has no password, so cannot log in from a phone.
pub const NO_PASSWORD: Prompt = Prompt {
    option: "no_password_prompt",
    default: "feature-not-avail-line&vm-goodbye",
    when: "the user has no password (logins from phones are off for them)",
    says: "This feature is not available on this line. Goodbye.",
};
/// The last attempt failed.
pub const GIVE_UP: Prompt = Prompt {
    option: "give_up_prompt",
    default: "im-sorry&vm-goodbye",
    when: "the last of max_attempts failed",
    says: "I'm sorry. Goodbye.",
};
/// Logged in.
pub const LOGGED_IN: Prompt = Prompt {
    option: "login_ok_prompt",
    default: "agent-loginok",
    when: "the user is logged in",
    says: "Agent logged in.",
};
/// A fixed device refuses logins.
pub const FIXED_DEVICE: Prompt = Prompt {
    option: "fixed_device_prompt",
    default: "feature-not-avail-line&vm-goodbye",
    when: "UserLogin on a fixed device",
    says: "This feature is not available on this line. Goodbye.",
};
/// `UserLogout()` on a device.
pub const LOGGED_OFF: Prompt = Prompt {
    option: "logout_prompt",
    default: "agent-loggedoff",
    when: "UserLogout() without a user, on the calling device",
    says: "Agent logged off.",
};

/// `UserLogout()` on a fixed device: nothing changed.
pub const FIXED_LOGOUT: Prompt = Prompt {
    option: "fixed_logout_prompt",
    default: "feature-not-avail-line&vm-goodbye",
    when: "UserLogout() on a fixed device (its user stays)",
    says: "This feature is not available on this line. Goodbye.",
};

/// With `storage = realtime`: the login or logout could not be saved in the shared
/// database; nothing changed.
pub const NOT_SAVED: Prompt = Prompt {
    option: "not_saved_prompt",
    default: "im-sorry&please-try-again",
    when: "with storage = realtime, the login or logout could not be saved (the database \
           does not answer); nothing changed",
    says: "I'm sorry. Please try again.",
};

/// Every prompt, in the order a caller meets them.
pub const PROMPTS: [Prompt; 14] = [
    USER,
    PASSWORD,
    RETRY_USER,
    RETRY_PASSWORD,
    REFUSED,
    LOCKED,
    DENIED,
    NO_PASSWORD,
    GIVE_UP,
    LOGGED_IN,
    FIXED_DEVICE,
    NOT_SAVED,
    LOGGED_OFF,
    FIXED_LOGOUT,
];

/// Whether `UserLogout()` plays the prompt (the others are `UserLogin()`'s).
pub fn played_by_logout(p: &Prompt) -> bool {
    *p == LOGGED_OFF || *p == FIXED_LOGOUT
}

/// The sound files of a prompt value (`im-sorry&vm-goodbye`), in order.
pub fn files(value: &str) -> impl Iterator<Item = &str> {
    value.split('&').map(str::trim).filter(|f| !f.is_empty())
}

/// Why `value` cannot be a prompt, if it cannot: sound file names (with folders, as
/// `custom/user-number`) joined by `&`, without spaces, quotes or other punctuation.
pub fn prompt_problem(value: &str) -> Option<String> {
    if files(value).next().is_none() {
        return Some("empty prompt".into());
    }
    let bad = value
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | '&')));
    bad.map(|c| format!("{c:?} cannot be part of a sound file name (names joined by &)"))
}

/// The channel variable `UserLogin` sets.
pub const LOGIN_STATUS_VARIABLE: &str = "USERLOGINSTATUS";
/// The channel variable `UserLogout` sets.
pub const LOGOUT_STATUS_VARIABLE: &str = "USERLOGOUTSTATUS";

/// The values of `USERLOGINSTATUS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginStatus {
    Success,
    Failed,
    Fixed,
    NoUser,
    NoPassword,
    Denied,
    Locked,
    /// Not saved: the shared database (`storage = realtime`) refused or did not answer;
    /// nothing changed.
    Unavailable,
    Hangup,
}

impl LoginStatus {
    pub const ALL: [LoginStatus; 9] = [
        LoginStatus::Success,
        LoginStatus::Failed,
        LoginStatus::Fixed,
        LoginStatus::NoUser,
        LoginStatus::NoPassword,
        LoginStatus::Denied,
        LoginStatus::Locked,
        LoginStatus::Unavailable,
        LoginStatus::Hangup,
    ];

    pub fn as_str(self) -> &'static str {
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
}

impl fmt::Display for LoginStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The values of `USERLOGOUTSTATUS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogoutStatus {
    Success,
    NotLoggedIn,
    Fixed,
    NoUser,
    Failed,
    /// Not saved: the shared database (`storage = realtime`) refused or did not answer;
    /// nothing changed.
    Unavailable,
}

impl LogoutStatus {
    pub const ALL: [LogoutStatus; 6] = [
        LogoutStatus::Success,
        LogoutStatus::NotLoggedIn,
        LogoutStatus::Fixed,
        LogoutStatus::NoUser,
        LogoutStatus::Failed,
        LogoutStatus::Unavailable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LogoutStatus::Success => "SUCCESS",
            LogoutStatus::NotLoggedIn => "NOTLOGGEDIN",
            LogoutStatus::Fixed => "FIXED",
            LogoutStatus::NoUser => "NOUSER",
            LogoutStatus::Failed => "FAILED",
            LogoutStatus::Unavailable => "UNAVAILABLE",
        }
    }
}

impl fmt::Display for LogoutStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_is_a_valid_prompt_and_options_are_distinct() {
        let mut options: Vec<&str> = PROMPTS.iter().map(|p| p.option).collect();
        options.sort_unstable();
        options.dedup();
        assert_eq!(options.len(), PROMPTS.len());
        for p in PROMPTS {
            assert_eq!(prompt_problem(p.default), None, "{}", p.option);
            assert!(p.option.ends_with("_prompt"), "{}", p.option);
        }
    }

    #[test]
    fn prompt_values() {
        assert_eq!(
            files("im-sorry & vm-goodbye").collect::<Vec<_>>(),
            ["im-sorry", "vm-goodbye"]
        );
        assert_eq!(prompt_problem("custom/user-number"), None);
        assert_eq!(prompt_problem("a&b"), None);
        assert!(prompt_problem("").is_some());
        assert!(prompt_problem("&").is_some());
        assert!(prompt_problem("agent user").unwrap().contains("' '"));
        assert!(prompt_problem("x,y").is_some());
        assert!(prompt_problem("a\"b").is_some());
    }

    #[test]
    fn statuses_are_distinct_upper_case_words() {
        let login: Vec<&str> = LoginStatus::ALL.iter().map(|s| s.as_str()).collect();
        let logout: Vec<&str> = LogoutStatus::ALL.iter().map(|s| s.as_str()).collect();
        for list in [&login, &logout] {
            let mut sorted = list.to_vec();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), list.len());
            assert!(list
                .iter()
                .all(|s| s.chars().all(|c| c.is_ascii_uppercase())));
        }
        assert!(login.contains(&"LOCKED"));
        assert_eq!(LoginStatus::Locked.to_string(), "LOCKED");
        assert_eq!(LogoutStatus::NotLoggedIn.to_string(), "NOTLOGGEDIN");
    }
}
