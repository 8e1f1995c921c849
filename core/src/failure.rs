//! Why a login was refused, as integrators see it: a fixed token (the `Reason` of the
//! `DeviceUserLoginFailed` AMI event, the label of the failed-logins metric, the
//! `RequestParams` of Asterisk's security event) and a human text beside it.
use std::fmt;

use crate::table::LoginError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LoginFailure {
    /// The user number entered is no configured user.
    NoSuchUser,
    /// The PIN did not match.
    WrongPassword,
    /// The user is locked out after repeated wrong PINs.
    Locked,
    /// `multiple_logins = no` and the user is on another device.
    Denied,
    /// The user has no password, so cannot log in from a phone.
    NoPassword,
    /// The device is fixed to its default user.
    Fixed,
    /// The device is no configured device (AMI).
    NoSuchDevice,
}

impl LoginFailure {
    pub const ALL: [LoginFailure; 7] = [
        LoginFailure::NoSuchUser,
        LoginFailure::WrongPassword,
        LoginFailure::Locked,
        LoginFailure::Denied,
        LoginFailure::NoPassword,
        LoginFailure::Fixed,
        LoginFailure::NoSuchDevice,
    ];

    /// The fixed token: `NoSuchUser`, `WrongPassword`, `Locked`, `Denied`, `NoPassword`,
    /// `Fixed`, `NoSuchDevice`.
    pub fn token(self) -> &'static str {
        match self {
            LoginFailure::NoSuchUser => "NoSuchUser",
            LoginFailure::WrongPassword => "WrongPassword",
            LoginFailure::Locked => "Locked",
            LoginFailure::Denied => "Denied",
            LoginFailure::NoPassword => "NoPassword",
            LoginFailure::Fixed => "Fixed",
            LoginFailure::NoSuchDevice => "NoSuchDevice",
        }
    }

    /// What happened, in words.
    pub fn text(self) -> &'static str {
        match self {
            LoginFailure::NoSuchUser => "no such user",
            LoginFailure::WrongPassword => "wrong password",
            LoginFailure::Locked => "locked out after repeated wrong PINs",
            LoginFailure::Denied => "user is already logged in on another device",
            LoginFailure::NoPassword => "user has no password",
            LoginFailure::Fixed => "device is fixed to its default user",
            LoginFailure::NoSuchDevice => "no such device",
        }
    }

    /// Whether a wrong credential caused it (what intrusion detection counts).
    pub fn is_bad_credential(self) -> bool {
        matches!(self, LoginFailure::NoSuchUser | LoginFailure::WrongPassword)
    }

    /// The failure a refused commit stands for; `None` for a login the shared database
    /// could not save (`storage = realtime`): the login was allowed, so it is no failed
    /// login (no security event, not counted), and the caller is told to try again.
    pub fn of(e: &LoginError) -> Option<LoginFailure> {
        Some(match e {
            LoginError::NoSuchUser => LoginFailure::NoSuchUser,
            LoginError::NoSuchDevice => LoginFailure::NoSuchDevice,
            LoginError::FixedDevice => LoginFailure::Fixed,
            LoginError::NoPassword => LoginFailure::NoPassword,
            LoginError::Denied => LoginFailure::Denied,
            LoginError::Store(_) => return None,
        })
    }
}

impl fmt::Display for LoginFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.token())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_fixed_words_and_texts_differ() {
        let tokens: Vec<&str> = LoginFailure::ALL.iter().map(|f| f.token()).collect();
        assert_eq!(
            tokens,
            [
                "NoSuchUser",
                "WrongPassword",
                "Locked",
                "Denied",
                "NoPassword",
                "Fixed",
                "NoSuchDevice"
            ]
        );
        for f in LoginFailure::ALL {
            assert!(f.token().bytes().all(|b| b.is_ascii_alphabetic()));
            assert_ne!(f.text(), f.token());
            assert_eq!(f.to_string(), f.token());
        }
        assert_eq!(
            LoginFailure::of(&LoginError::Denied),
            Some(LoginFailure::Denied)
        );
        assert_eq!(
            LoginFailure::of(&LoginError::FixedDevice),
            Some(LoginFailure::Fixed)
        );
        let down = crate::table::StoreError::Unavailable("no connection".into());
        assert_eq!(LoginFailure::of(&LoginError::Store(down)), None);
        assert!(LoginFailure::WrongPassword.is_bad_credential());
        assert!(!LoginFailure::Locked.is_bad_credential());
    }
}
