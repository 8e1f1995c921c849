//! Console sessions and the checks every request passes.
//!
//! A console user logs in with `POST api/session` (user and password); the answer sets an
//! `HttpOnly`, `SameSite=Strict` session cookie and carries a CSRF token that the page sends
//! back in the `X-CSRF-Token` header of every state-changing request. A request that changes
//! anything is refused when the token is missing or wrong, when the browser says it comes
//! from another site (`Sec-Fetch-Site: cross-site`), or when its `Origin` is not the server
//! the request was sent to. The browser does not let another site set a custom header or
//! read the token, so these together refuse cross-site requests.
//!
//! Wrong passwords count like wrong PINs ([`crate::policy::Lockout`], with the `[general]`
//! `max_login_failures`, `lockout_window` and `lockout_time`).
use std::collections::HashMap;

use compact_str::CompactString;

use crate::console_users::Role;

/// Name of the session cookie.
pub const COOKIE: &str = "deviceuser_session";
/// Header carrying the CSRF token.
pub const CSRF_HEADER: &str = "X-CSRF-Token";
/// A session unused this long (seconds) ends.
pub const IDLE_TIMEOUT: u64 = 8 * 3600;
/// A session ends this long (seconds) after its login, used or not.
pub const MAX_AGE: u64 = 24 * 3600;
/// Sessions kept at most; the oldest is dropped to make room.
pub const MAX_SESSIONS: usize = 1000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub user: CompactString,
    pub role: Role,
    pub csrf: String,
    pub created: u64,
    pub last_seen: u64,
}

/// The open sessions, by token.
#[derive(Debug, Default)]
pub struct Sessions {
    by_token: HashMap<String, Session>,
}

impl Sessions {
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens a session under `token` (random, from the caller).
    pub fn open(&mut self, token: String, csrf: String, user: &str, role: Role, now: u64) {
        self.expire(now);
        while self.by_token.len() >= MAX_SESSIONS {
            let oldest = self
                .by_token
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(t, _)| t.clone());
            match oldest {
                Some(t) => self.by_token.remove(&t),
                None => break,
            };
        }
        self.by_token.insert(
            token,
            Session {
                user: CompactString::from(user),
                role,
                csrf,
                created: now,
                last_seen: now,
            },
        );
    }

    /// The live session of `token`, marked as used now.
    pub fn touch(&mut self, token: &str, now: u64) -> Option<Session> {
        let live = self.by_token.get(token).is_some_and(|s| alive(s, now));
        if !live {
            self.by_token.remove(token);
            return None;
        }
        let s = self.by_token.get_mut(token)?;
        s.last_seen = now;
        Some(s.clone())
    }

    /// The live session of `token`, without marking it used.
    pub fn peek(&self, token: &str, now: u64) -> Option<&Session> {
        self.by_token.get(token).filter(|s| alive(s, now))
    }

    pub fn close(&mut self, token: &str) -> bool {
        self.by_token.remove(token).is_some()
    }

    /// After a reload: sessions of console users that are gone end; a changed role applies
    /// at once. `role_of` gives the configured role of a user.
    pub fn reconfigure(&mut self, role_of: impl Fn(&str) -> Option<Role>) {
        self.by_token.retain(|_, s| match role_of(&s.user) {
            Some(role) => {
                s.role = role;
                true
            }
            None => false,
        });
    }

    fn expire(&mut self, now: u64) {
        self.by_token.retain(|_, s| alive(s, now));
    }

    pub fn len(&self) -> usize {
        self.by_token.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_token.is_empty()
    }
}

fn alive(s: &Session, now: u64) -> bool {
    now < s.last_seen.saturating_add(IDLE_TIMEOUT) && now < s.created.saturating_add(MAX_AGE)
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k.trim() == name).then(|| v.trim().trim_matches('"'))
    })
}

/// Compares two strings in time that depends on their lengths only.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The request headers that tell where a request comes from.
#[derive(Clone, Debug, Default)]
pub struct Provenance<'a> {
    /// `Host`.
    pub host: Option<&'a str>,
    /// `Origin`.
    pub origin: Option<&'a str>,
    /// `Sec-Fetch-Site`.
    pub fetch_site: Option<&'a str>,
}

/// Why a request was refused as cross-site.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrossSite {
    /// The browser says so (`Sec-Fetch-Site: cross-site` or `same-site`).
    FetchSite,
    /// `Origin` names another server than `Host`.
    Origin,
    /// No or a wrong CSRF token.
    Token,
}

impl CrossSite {
    pub fn message(self) -> &'static str {
        match self {
            CrossSite::FetchSite => "cross-site request refused",
            CrossSite::Origin => "request from another origin refused",
            CrossSite::Token => "missing or wrong X-CSRF-Token header",
        }
    }
}

/// Checks that a request was made by a page of this server: no cross-site fetch, and an
/// `Origin`, when the browser sends one, naming the `Host` the request was sent to (`null`,
/// as sandboxed frames and some redirects send it, never matches).
pub fn same_origin(p: &Provenance<'_>) -> Result<(), CrossSite> {
    if let Some(site) = p.fetch_site {
        let site = site.trim().to_ascii_lowercase();
        if site != "same-origin" && site != "none" {
            return Err(CrossSite::FetchSite);
        }
    }
    if let Some(origin) = p.origin {
        let origin = origin.trim();
        let authority = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        match (authority, p.host) {
            (Some(a), Some(h)) if a.eq_ignore_ascii_case(h.trim()) => {}
            _ => return Err(CrossSite::Origin),
        }
    }
    Ok(())
}

/// The checks of a state-changing request of a session: same origin, and the session's CSRF
/// token in [`CSRF_HEADER`].
pub fn state_change_allowed(
    p: &Provenance<'_>,
    token: Option<&str>,
    session: &Session,
) -> Result<(), CrossSite> {
    same_origin(p)?;
    match token {
        Some(t) if same_secret(t.trim(), &session.csrf) => Ok(()),
        _ => Err(CrossSite::Token),
    }
}

/// Lowercase hex of `bytes` (session tokens from random bytes).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_when_idle_or_old() {
        let mut s = Sessions::new();
        s.open("t".into(), "c".into(), "alice", Role::Admin, 1000);
        assert_eq!(s.touch("t", 1000 + IDLE_TIMEOUT - 1).unwrap().user, "alice");
        // Used just now: alive until idle again.
        assert!(s.touch("t", 1000 + 2 * IDLE_TIMEOUT - 2).is_some());
        assert!(s.touch("t", 1000 + MAX_AGE).is_none());
        assert!(s.is_empty());
        s.open("u".into(), "c".into(), "bob", Role::Supervisor, 0);
        assert!(s.touch("u", IDLE_TIMEOUT).is_none());
        assert!(s.touch("nope", 0).is_none());
    }

    #[test]
    fn reconfigure_ends_sessions_of_removed_users_and_applies_roles() {
        let mut s = Sessions::new();
        s.open("a".into(), "c".into(), "alice", Role::Admin, 0);
        s.open("b".into(), "c".into(), "bob", Role::Admin, 0);
        s.reconfigure(|u| (u == "alice").then_some(Role::Supervisor));
        assert_eq!(s.peek("a", 1).unwrap().role, Role::Supervisor);
        assert!(s.peek("b", 1).is_none());
    }

    #[test]
    fn the_number_of_sessions_is_bounded() {
        let mut s = Sessions::new();
        for i in 0..MAX_SESSIONS + 5 {
            s.open(format!("t{i}"), "c".into(), "u", Role::Admin, i as u64);
        }
        assert_eq!(s.len(), MAX_SESSIONS);
        assert!(s.peek("t0", 10).is_none());
        assert!(s.peek(&format!("t{}", MAX_SESSIONS + 4), 10).is_some());
    }

    #[test]
    fn cookies_are_found_by_name() {
        let h = "a=1; deviceuser_session=abc ; other=\"x\"";
        assert_eq!(cookie(h, COOKIE), Some("abc"));
        assert_eq!(cookie(h, "other"), Some("x"));
        assert_eq!(cookie(h, "deviceuser"), None);
    }

    fn p<'a>(host: &'a str, origin: Option<&'a str>, site: Option<&'a str>) -> Provenance<'a> {
        Provenance {
            host: Some(host),
            origin,
            fetch_site: site,
        }
    }

    #[test]
    fn cross_site_requests_are_refused() {
        let h = "127.0.0.1:8088";
        assert_eq!(same_origin(&p(h, None, None)), Ok(()));
        assert_eq!(
            same_origin(&p(h, Some("http://127.0.0.1:8088"), Some("same-origin"))),
            Ok(())
        );
        assert_eq!(
            same_origin(&p(h, Some("https://127.0.0.1:8088"), None)),
            Ok(())
        );
        assert_eq!(
            same_origin(&p(h, Some("http://evil.example"), None)),
            Err(CrossSite::Origin)
        );
        assert_eq!(
            same_origin(&p(h, Some("http://127.0.0.1:8089"), None)),
            Err(CrossSite::Origin)
        );
        assert_eq!(
            same_origin(&p(h, Some("null"), None)),
            Err(CrossSite::Origin)
        );
        assert_eq!(
            same_origin(&p(h, None, Some("cross-site"))),
            Err(CrossSite::FetchSite)
        );
        assert_eq!(
            same_origin(&p(h, None, Some("same-site"))),
            Err(CrossSite::FetchSite)
        );
        let no_host = Provenance {
            host: None,
            origin: Some("http://127.0.0.1:8088"),
            fetch_site: None,
        };
        assert_eq!(same_origin(&no_host), Err(CrossSite::Origin));
    }

    #[test]
    fn state_changes_need_the_sessions_token() {
        let s = Session {
            user: "alice".into(),
            role: Role::Admin,
            csrf: "tok".into(),
            created: 0,
            last_seen: 0,
        };
        let ok = p("h", Some("http://h"), None);
        assert_eq!(state_change_allowed(&ok, Some("tok"), &s), Ok(()));
        assert_eq!(
            state_change_allowed(&ok, Some("tox"), &s),
            Err(CrossSite::Token)
        );
        assert_eq!(state_change_allowed(&ok, None, &s), Err(CrossSite::Token));
        let evil = p("h", Some("http://evil"), None);
        assert_eq!(
            state_change_allowed(&evil, Some("tok"), &s),
            Err(CrossSite::Origin)
        );
    }

    #[test]
    fn secrets_compare_exactly() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
        assert_eq!(hex(&[0, 15, 255]), "000fff");
    }
}
