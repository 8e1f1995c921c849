//! Time-based logout policies and PIN lockout, as pure functions and small trackers.
//!
//! The host runs a timer (once a second) that calls [`due_logouts`] and
//! [`Unregistered::due`] on the current snapshot and logs the returned devices out with the
//! returned reason; [`any_time_policy`] lets it skip that work when nothing is configured.
//! Only bindings a login made are ever due: a fixed device's permanent binding and an adhoc
//! device's binding to its own `default_user` are kept, since logging them out would leave
//! a shared phone with nobody, or give it straight back to the same user.

use std::collections::{HashMap, VecDeque};

use crate::config::{Config, DeviceMode, General, TimeOfDay};
use crate::table::{Binding, Reason, Snapshot};

const DAY: i64 = 86_400;

/// Whether `b` may be logged out by a policy (see the module docs).
fn policy_applies(c: &Config, b: &Binding) -> bool {
    // A device of another node: that node applies the policies to it.
    c.device(&b.device).is_some_and(|d| {
        d.mode == DeviceMode::Adhoc
            && !d.remote
            && d.default_user.as_deref() != Some(b.user.as_str())
    })
}

/// The most recent instant (unix seconds, possibly before 1970 near the epoch) at which
/// the local clock showed `t`, at or before `now`. `utc_offset_secs` is local minus UTC
/// (e.g. +3600 for CET), as `tm_gmtoff` gives. The current offset is used for the previous
/// day too: across a daylight-saving change, yesterday's instant is off by the change.
pub fn last_time_of_day(t: TimeOfDay, now: u64, utc_offset_secs: i64) -> i64 {
    let now = i64::try_from(now).unwrap_or(i64::MAX - 2 * DAY);
    let local_now = now.saturating_add(utc_offset_secs);
    let midnight = local_now - local_now.rem_euclid(DAY);
    let mut at = midnight + i64::from(t.seconds_since_midnight());
    if at > local_now {
        at -= DAY;
    }
    at - utc_offset_secs
}

/// Bindings due for a time-based logout at `now`, sorted by device:
/// - [`Reason::Timeout`] once the user's effective `max_login_time` has elapsed since the
///   login (`since + max_login_time <= now`);
/// - [`Reason::ShiftEnd`] when the login happened before the most recent effective
///   `shift_end` instant at or before `now` (a login at or after that instant is kept until
///   the next one).
///
/// When both apply, the reason is the one whose instant came first (a tie is a timeout).
/// Only adhoc devices' non-default bindings are considered (see the module docs).
pub fn due_logouts(s: &Snapshot, now: u64, utc_offset_secs: i64) -> Vec<(String, Reason)> {
    let c = s.config();
    let mut due: Vec<(String, Reason)> = s
        .bindings()
        .into_iter()
        .filter(|b| policy_applies(c, b))
        .filter_map(|b| {
            let timeout = c
                .max_login_time_of(&b.user)
                .map(|max| b.since.saturating_add(max))
                .filter(|at| *at <= now)
                .map(|at| i64::try_from(at).unwrap_or(i64::MAX));
            let since = i64::try_from(b.since).unwrap_or(i64::MAX);
            let shift = c
                .shift_end_of(&b.user)
                .map(|t| last_time_of_day(t, now, utc_offset_secs))
                .filter(|at| since < *at);
            let reason = match (timeout, shift) {
                (Some(t), Some(s)) if s < t => Reason::ShiftEnd,
                (Some(_), _) => Reason::Timeout,
                (None, Some(_)) => Reason::ShiftEnd,
                (None, None) => return None,
            };
            Some((b.device.to_string(), reason))
        })
        .collect();
    due.sort_by(|a, b| a.0.cmp(&b.0));
    due
}

/// Whether any time-based policy (`max_login_time`, `shift_end`, `logout_on_unregister`)
/// is on anywhere in the config, in `[general]` or for any user or device.
pub fn any_time_policy(c: &Config) -> bool {
    c.has_time_policy()
}

/// Whether `logout_on_unregister` is on for any device, so the host knows whether to feed
/// [`Unregistered`] at all. O(1): called for every device state change.
pub fn any_unregister_policy(c: &Config) -> bool {
    c.has_unregister_policy()
}

/// Most devices [`Unregistered`] and most users [`Lockout`] track at once.
pub const MAX_TRACKED: usize = 100_000;

/// Remembers since when each device has been unavailable (unregistered).
#[derive(Clone, Debug, Default)]
pub struct Unregistered {
    since: HashMap<String, u64>,
}

impl Unregistered {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a device's state: unavailable starts the clock (if not already running),
    /// available stops it. At most [`MAX_TRACKED`] devices are tracked; beyond that, new
    /// unavailable devices are not (the host should only report configured devices).
    pub fn seen(&mut self, device: &str, unavailable: bool, now: u64) {
        if !unavailable {
            self.since.remove(device);
        } else if !self.since.contains_key(device) && self.since.len() < MAX_TRACKED {
            self.since.insert(device.to_string(), now);
        }
    }

    /// Since when the device has been unavailable, if it is.
    pub fn unavailable_since(&self, device: &str) -> Option<u64> {
        self.since.get(device).copied()
    }

    /// Forgets devices that are no longer configured (call after a reload).
    pub fn retain_configured(&mut self, c: &Config) {
        self.since.retain(|d, _| c.device(d).is_some());
    }

    pub fn len(&self) -> usize {
        self.since.len()
    }

    pub fn is_empty(&self) -> bool {
        self.since.is_empty()
    }

    /// Bound devices whose effective `logout_on_unregister` has elapsed, sorted. The time
    /// counts from the later of "became unavailable" and the login, so a login on a device
    /// that is already unregistered gets the full grace period. Fixed devices and default
    /// bindings are never due.
    pub fn due(&self, s: &Snapshot, now: u64) -> Vec<String> {
        let c = s.config();
        let mut due: Vec<String> = self
            .since
            .iter()
            .filter_map(|(device, &t)| {
                let b = s.user_on(device)?;
                let limit = c.logout_on_unregister_of(device)?;
                (policy_applies(c, b) && now.saturating_sub(t.max(b.since)) >= limit)
                    .then(|| device.clone())
            })
            .collect();
        due.sort();
        due
    }
}

#[derive(Clone, Debug)]
struct Failures {
    /// Times of recent failures, oldest first; never more than `max_login_failures`.
    times: VecDeque<u64>,
    locked_until: u64,
    /// After this instant the entry holds nothing useful (window and lock both over).
    expires: u64,
}

/// Counts wrong PINs per user and locks a user out after too many.
///
/// `max_login_failures` failures within `lockout_window` seconds lock the user for
/// `lockout_time` seconds; a success clears the count. Entries are forgotten once their
/// window and lock are over (pruned as the table grows, amortised O(1) per call), and at
/// most [`MAX_TRACKED`] users are tracked: when that many have recent failures, failures
/// of further users are not counted (they are still refused by the PIN check itself).
#[derive(Clone, Debug, Default)]
pub struct Lockout {
    users: HashMap<String, Failures>,
    /// Size at which the next prune happens.
    prune_at: usize,
    /// Lockouts since the value was made (the metrics' counter).
    lockouts: u64,
}

const MIN_PRUNE_AT: usize = 1024;

impl Lockout {
    pub fn new() -> Self {
        Self::default()
    }

    /// `Ok` if the user may try a PIN now, else the seconds left in their lockout.
    pub fn check(&self, user: &str, now: u64) -> Result<(), u64> {
        match self.users.get(user) {
            Some(f) if f.locked_until > now => Err(f.locked_until - now),
            _ => Ok(()),
        }
    }

    /// Records a wrong PIN. Returns true if this failure locked the user. Does nothing
    /// (false) when `max_login_failures` is 0 or the user is already locked.
    pub fn failure(&mut self, user: &str, now: u64, g: &General) -> bool {
        if g.max_login_failures == 0 {
            return false;
        }
        if self.users.len() >= self.prune_at.max(MIN_PRUNE_AT) {
            self.prune(now);
        }
        if !self.users.contains_key(user) && self.users.len() >= MAX_TRACKED {
            return false;
        }
        let f = self.users.entry(user.to_string()).or_insert(Failures {
            times: VecDeque::new(),
            locked_until: 0,
            expires: 0,
        });
        if f.locked_until > now {
            return false;
        }
        while f
            .times
            .front()
            .is_some_and(|t| t.saturating_add(g.lockout_window) <= now)
        {
            f.times.pop_front();
        }
        f.times.push_back(now);
        let max = g.max_login_failures as usize;
        while f.times.len() > max {
            f.times.pop_front();
        }
        let locked = f.times.len() >= max;
        if locked {
            f.times.clear();
            f.locked_until = now.saturating_add(g.lockout_time);
        }
        f.expires = f.locked_until.max(now.saturating_add(g.lockout_window));
        if locked {
            self.lockouts += 1;
        }
        locked
    }

    /// How many times a user was locked out since the value was made.
    pub fn lockouts(&self) -> u64 {
        self.lockouts
    }

    /// How many users are locked out at `now`.
    pub fn locked_count(&self, now: u64) -> usize {
        self.users.values().filter(|f| f.locked_until > now).count()
    }

    /// Records a correct PIN: the user's failures are forgotten.
    pub fn success(&mut self, user: &str) {
        self.users.remove(user);
    }

    /// Seconds left in the user's lockout, if they are locked out at `now`.
    pub fn locked_for(&self, user: &str, now: u64) -> Option<u64> {
        self.check(user, now).err()
    }

    /// The users locked out at `now`, with the seconds left, by user id.
    pub fn locked(&self, now: u64) -> Vec<(&str, u64)> {
        let mut v: Vec<(&str, u64)> = self
            .users
            .iter()
            .filter(|(_, f)| f.locked_until > now)
            .map(|(u, f)| (u.as_str(), f.locked_until - now))
            .collect();
        v.sort_unstable();
        v
    }

    /// An administrator lifts a user's lockout (`deviceuser unlock user`): the lock and the
    /// failures counted towards the next one are forgotten. Returns the seconds the lockout
    /// still had, or `None` if the user was not locked out.
    pub fn unlock(&mut self, user: &str, now: u64) -> Option<u64> {
        let left = self.locked_for(user, now);
        self.users.remove(user);
        left
    }

    /// Forgets every user whose failure window and lockout are over.
    pub fn prune(&mut self, now: u64) {
        self.users.retain(|_, f| f.expires > now);
        self.prune_at = (self.users.len() * 2).max(MIN_PRUNE_AT);
    }

    /// Users currently tracked (with recent failures or a lock).
    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::raw;
    use crate::config::Override;
    use crate::table::{BindingTable, LoginMode};

    fn nop(_: &crate::table::Changes) {}

    /// 2024-01-15 00:00:00 UTC.
    const DAY0: u64 = 1_705_276_800;

    fn config(general: &[(&str, &str)], users: &[(&str, &[(&str, &str)])]) -> Config {
        let mut secs: Vec<(&str, Vec<(&str, &str)>)> = vec![
            ("general", general.to_vec()),
            ("d1", vec![("type", "device")]),
            ("d2", vec![("type", "device")]),
            ("lobby", vec![("type", "device"), ("default_user", "u1")]),
            (
                "fixed",
                vec![
                    ("type", "device"),
                    ("mode", "fixed"),
                    ("default_user", "u2"),
                ],
            ),
        ];
        for (u, vars) in users {
            let mut v = vec![("type", "user")];
            v.extend_from_slice(vars);
            secs.push((u, v));
        }
        let secs: Vec<(&str, &[(&str, &str)])> =
            secs.iter().map(|(n, v)| (*n, v.as_slice())).collect();
        Config::from_raw(&raw(&secs)).unwrap().config
    }

    fn users3() -> Vec<(&'static str, &'static [(&'static str, &'static str)])> {
        vec![("u1", &[]), ("u2", &[]), ("u3", &[])]
    }

    #[test]
    fn last_time_of_day_across_midnight() {
        let t = |h, m| TimeOfDay::new(h, m).unwrap();
        // UTC: 18:00 today once it is past, else yesterday.
        assert_eq!(
            last_time_of_day(t(18, 0), DAY0 + 19 * 3600, 0),
            (DAY0 + 18 * 3600) as i64
        );
        assert_eq!(
            last_time_of_day(t(18, 0), DAY0 + 17 * 3600, 0),
            (DAY0 + 18 * 3600) as i64 - DAY
        );
        // Exactly at the instant: that instant.
        assert_eq!(
            last_time_of_day(t(18, 0), DAY0 + 18 * 3600, 0),
            (DAY0 + 18 * 3600) as i64
        );
        // UTC+2 at 23:30 UTC is 01:30 local next day; 00:30 local was 22:30 UTC.
        assert_eq!(
            last_time_of_day(t(0, 30), DAY0 + 23 * 3600 + 1800, 7200),
            (DAY0 + 22 * 3600 + 1800) as i64
        );
        // UTC-5 at 03:00 UTC is 22:00 local the previous day; 18:00 local was 23:00 UTC.
        assert_eq!(
            last_time_of_day(t(18, 0), DAY0 + 3 * 3600, -5 * 3600),
            (DAY0 - 3600) as i64
        );
        // UTC-5, 23:00 local shift end at 04:30 UTC (23:30 local): 04:00 UTC.
        assert_eq!(
            last_time_of_day(t(23, 0), DAY0 + 4 * 3600 + 1800, -5 * 3600),
            (DAY0 + 4 * 3600) as i64
        );
        // Near the epoch the result may be negative rather than wrapping.
        assert!(last_time_of_day(t(23, 0), 0, 0) < 0);
    }

    #[test]
    fn policies_leave_devices_of_other_nodes_to_them() {
        let r = raw(&[
            (
                "general",
                &[
                    ("storage", "realtime"),
                    ("node", "a"),
                    ("max_login_time", "60"),
                    ("logout_on_unregister", "30"),
                ],
            ),
            ("d1", &[("type", "device")]),
            ("d2", &[("type", "device"), ("node", "b")]),
            ("u1", &[("type", "user")]),
            ("u2", &[("type", "user")]),
        ]);
        let t = BindingTable::new(Config::from_raw(&r).unwrap().config, 0);
        t.login("u1", "d1", LoginMode::Admin, 0, nop).unwrap();
        t.login("u2", "d2", LoginMode::Admin, 0, nop).unwrap();
        let s = t.snapshot();
        assert_eq!(
            due_logouts(&s, 1000, 0),
            vec![("d1".to_string(), Reason::Timeout)]
        );
        let mut u = Unregistered::new();
        u.seen("d1", true, 0);
        u.seen("d2", true, 0);
        assert_eq!(u.due(&s, 1000), vec!["d1"]);
    }

    #[test]
    fn timeout_respects_overrides_and_exemptions() {
        let c = config(
            &[("max_login_time", "3600")],
            &[
                ("u1", &[]),
                ("u2", &[("max_login_time", "60")]),
                ("u3", &[("max_login_time", "0")]),
            ],
        );
        assert!(any_time_policy(&c));
        assert_eq!(c.max_login_time_of("u1"), Some(3600));
        assert_eq!(c.max_login_time_of("u2"), Some(60));
        assert_eq!(c.max_login_time_of("u3"), None);
        let t = BindingTable::new(c, 0);
        t.login("u1", "d1", LoginMode::Admin, 1000, nop).unwrap();
        t.login("u2", "d2", LoginMode::Admin, 1000, nop).unwrap();
        t.login("u3", "lobby", LoginMode::Admin, 1000, nop).unwrap();
        let s = t.snapshot();
        assert_eq!(due_logouts(&s, 1059, 0), vec![]);
        assert_eq!(
            due_logouts(&s, 1060, 0),
            vec![("d2".to_string(), Reason::Timeout)]
        );
        assert_eq!(
            due_logouts(&s, 1000 + 3600, 0),
            vec![
                ("d1".to_string(), Reason::Timeout),
                ("d2".to_string(), Reason::Timeout)
            ]
        );
        // u3 (max_login_time = 0) is never due; u2 on its fixed device and u1 on lobby
        // (its default) neither.
        t.logout_device("lobby", Reason::Admin, 2000, nop).unwrap();
        let s = t.snapshot();
        assert_eq!(s.user_on("lobby").unwrap().user, "u1");
        assert!(due_logouts(&s, 1_000_000, 0)
            .iter()
            .all(|(d, _)| d != "lobby" && d != "fixed"));
    }

    #[test]
    fn shift_end_logs_out_earlier_logins_only() {
        let c = config(
            &[("shift_end", "18:00")],
            &[
                ("u1", &[]),
                ("u2", &[("shift_end", "none")]),
                ("u3", &[("shift_end", "22:30")]),
            ],
        );
        assert_eq!(c.shift_end_of("u2"), None);
        assert_eq!(c.shift_end_of("u3"), TimeOfDay::new(22, 30));
        let off = 3600; // UTC+1: 18:00 local = 17:00 UTC.
        let t = BindingTable::new(c, 0);
        let at = |h: u64, m: u64| DAY0 + h * 3600 + m * 60;
        t.login("u1", "d1", LoginMode::Admin, at(8, 0), nop)
            .unwrap();
        t.login("u2", "d2", LoginMode::Admin, at(8, 0), nop)
            .unwrap();
        let s = t.snapshot();
        assert_eq!(due_logouts(&s, at(16, 59), off), vec![]);
        assert_eq!(
            due_logouts(&s, at(17, 0), off),
            vec![("d1".to_string(), Reason::ShiftEnd)]
        );
        // A login after the shift end stays until the next day's.
        t.logout_device("d1", Reason::Admin, at(17, 0), nop)
            .unwrap();
        t.login("u1", "d1", LoginMode::Admin, at(17, 0), nop)
            .unwrap();
        let s = t.snapshot();
        assert_eq!(due_logouts(&s, at(23, 0), off), vec![]);
        assert_eq!(due_logouts(&s, at(24 + 16, 59), off), vec![]);
        assert_eq!(
            due_logouts(&s, at(24 + 17, 0), off),
            vec![("d1".to_string(), Reason::ShiftEnd)]
        );
        // u3's own shift end, 22:30 local = 21:30 UTC; logged in at 21:00 UTC (22:00 local).
        t.login("u3", "d2", LoginMode::Admin, at(21, 0), nop)
            .unwrap();
        let s = t.snapshot();
        assert!(due_logouts(&s, at(21, 29), off).is_empty());
        assert_eq!(
            due_logouts(&s, at(21, 30), off),
            vec![("d2".to_string(), Reason::ShiftEnd)]
        );
        // Past midnight (local and UTC) it is still due: the instant was yesterday's.
        assert_eq!(
            due_logouts(&s, at(24 + 3, 0), off),
            vec![("d2".to_string(), Reason::ShiftEnd)]
        );
    }

    #[test]
    fn earlier_event_decides_the_reason() {
        let c = config(
            &[("shift_end", "12:00"), ("max_login_time", "7200")],
            &users3(),
        );
        let t = BindingTable::new(c, 0);
        let at = |h: u64| DAY0 + h * 3600;
        t.login("u2", "d1", LoginMode::Admin, at(11), nop).unwrap();
        t.login("u3", "d2", LoginMode::Admin, at(9), nop).unwrap();
        let s = t.snapshot();
        assert_eq!(
            due_logouts(&s, at(14), 0),
            vec![
                ("d1".to_string(), Reason::ShiftEnd),
                ("d2".to_string(), Reason::Timeout)
            ]
        );
    }

    #[test]
    fn nothing_configured_means_no_policy() {
        let c = config(&[], &users3());
        assert!(!any_time_policy(&c));
        assert!(!any_unregister_policy(&c));
        let t = BindingTable::new(c, 0);
        t.login("u3", "d1", LoginMode::Admin, 0, nop).unwrap();
        assert!(due_logouts(&t.snapshot(), u64::MAX, 0).is_empty());
        // One user's own setting is enough.
        let c = config(&[], &[("u1", &[("shift_end", "7:05")]), ("u2", &[])]);
        assert!(any_time_policy(&c));
        let c = config(&[], &[("u1", &[("max_login_time", "0")]), ("u2", &[])]);
        assert!(!any_time_policy(&c));
    }

    #[test]
    fn unregistered_devices() {
        let mut c = config(&[("logout_on_unregister", "60")], &users3());
        c.devices.get_mut("d2").unwrap().logout_on_unregister = Override::Set(10);
        c.devices.get_mut("lobby").unwrap().logout_on_unregister = Override::Set(5);
        assert!(any_unregister_policy(&c) && any_time_policy(&c));
        let t = BindingTable::new(c, 0);
        t.login("u3", "d1", LoginMode::Admin, 100, nop).unwrap();
        t.login("u2", "d2", LoginMode::Admin, 100, nop).unwrap();
        let mut u = Unregistered::new();
        for d in ["d1", "d2", "lobby", "fixed"] {
            u.seen(d, true, 200);
        }
        u.seen("d1", true, 250); // still the first time
        assert_eq!(u.unavailable_since("d1"), Some(200));
        let s = t.snapshot();
        assert!(u.due(&s, 209).is_empty());
        assert_eq!(u.due(&s, 210), vec!["d2"]);
        assert_eq!(u.due(&s, 260), vec!["d1", "d2"]);
        // Back online: no longer due.
        u.seen("d2", false, 261);
        assert_eq!(u.due(&s, 1000), vec!["d1"]);
        // Login on a device already unregistered: counted from the login.
        t.login("u3", "d2", LoginMode::Admin, 2000, nop).unwrap();
        u.seen("d2", true, 500);
        assert!(!u.due(&t.snapshot(), 2009).contains(&"d2".to_string()));
        assert!(u.due(&t.snapshot(), 2010).contains(&"d2".to_string()));
        // Unbound devices are never due.
        t.logout_device("d1", Reason::Admin, 2000, nop).unwrap();
        assert!(!u.due(&t.snapshot(), 5000).contains(&"d1".to_string()));
        // Off for one device.
        let mut c = t.snapshot().config().clone();
        c.devices.get_mut("d2").unwrap().logout_on_unregister = Override::Off;
        t.reconfigure(c, 3000, nop);
        assert!(u.due(&t.snapshot(), 9000).is_empty());
        u.seen("gone", true, 1);
        u.retain_configured(t.snapshot().config());
        assert_eq!(u.unavailable_since("gone"), None);
        assert_eq!(u.len(), 4);
    }

    fn general(max: u32, window: u64, time: u64) -> General {
        General {
            max_login_failures: max,
            lockout_window: window,
            lockout_time: time,
            ..General::default()
        }
    }

    #[test]
    fn lockout_counts_within_window() {
        let g = general(3, 60, 300);
        let mut l = Lockout::new();
        assert_eq!(l.check("u", 0), Ok(()));
        assert!(!l.failure("u", 0, &g));
        assert!(!l.failure("u", 30, &g));
        // The first failure has left the window.
        assert!(!l.failure("u", 61, &g));
        assert_eq!(l.check("u", 61), Ok(()));
        assert!(l.failure("u", 62, &g));
        assert_eq!(l.check("u", 62), Err(300));
        assert_eq!(l.check("u", 361), Err(1));
        assert_eq!(l.check("other", 100), Ok(()));
        // Failures while locked neither count nor extend the lock.
        assert!(!l.failure("u", 100, &g));
        assert_eq!(l.check("u", 361), Err(1));
        assert_eq!(l.check("u", 362), Ok(()));
        // After the lock, counting starts afresh.
        assert!(!l.failure("u", 362, &g));
        assert!(!l.failure("u", 363, &g));
        l.success("u");
        assert!(!l.failure("u", 364, &g));
        assert!(!l.failure("u", 365, &g));
        assert!(l.failure("u", 366, &g));
        assert_eq!(l.lockouts(), 2, "each lock is counted once");
        assert_eq!(l.locked_count(366), 1);
        assert_eq!(l.locked_count(366 + 300), 0);
    }

    #[test]
    fn an_administrator_unlocks_a_user() {
        let g = general(2, 60, 300);
        let mut l = Lockout::new();
        assert!(!l.failure("b", 0, &g));
        assert!(l.failure("b", 1, &g));
        assert!(!l.failure("a", 5, &g));
        assert!(l.failure("a", 6, &g));
        assert!(!l.failure("c", 7, &g));
        assert_eq!(l.locked(10), [("a", 296), ("b", 291)]);
        assert_eq!(l.locked_for("a", 10), Some(296));
        assert_eq!(l.locked_for("c", 10), None);

        assert_eq!(l.unlock("a", 10), Some(296));
        assert_eq!(l.check("a", 10), Ok(()));
        assert_eq!(l.locked(10), [("b", 291)]);
        // Unlocking someone who is not locked out says so, and forgets their failures:
        // one more wrong PIN does not lock "c".
        assert_eq!(l.unlock("c", 10), None);
        assert!(!l.failure("c", 11, &g));
        assert_eq!(l.unlock("nobody", 10), None);
        // A lock that ran out is not listed.
        assert!(l.locked(301).is_empty());
        assert_eq!(l.unlock("b", 301), None);
    }

    #[test]
    fn lockout_off_and_defaults() {
        let mut l = Lockout::new();
        let g = general(0, 60, 300);
        for t in 0..100 {
            assert!(!l.failure("u", t, &g));
        }
        assert!(l.is_empty());
        let g = General::default();
        assert_eq!(
            (g.max_login_failures, g.lockout_window, g.lockout_time),
            (5, 300, 300)
        );
        for t in 0..4 {
            assert!(!l.failure("u", t, &g));
        }
        assert!(l.failure("u", 4, &g));
        assert_eq!(l.check("u", 4), Err(300));
    }

    #[test]
    fn lockout_memory_is_bounded() {
        let g = general(5, 10, 20);
        let mut l = Lockout::new();
        for i in 0..5000u64 {
            l.failure(&format!("u{i}"), i, &g);
        }
        // Old entries have been pruned as the table grew.
        assert!(l.len() < 2 * MIN_PRUNE_AT, "{}", l.len());
        l.prune(5000 + 10);
        assert!(l.is_empty());
        // Locked users survive pruning until the lock is over.
        let g = general(1, 10, 1000);
        assert!(l.failure("x", 0, &g));
        l.prune(500);
        assert_eq!(l.check("x", 500), Err(500));
        l.prune(1000);
        assert_eq!(l.check("x", 1000), Ok(()));
        assert!(l.is_empty());
    }

    #[test]
    fn lockout_caps_tracked_users() {
        let g = general(2, 1_000_000, 1_000_000);
        let mut l = Lockout::new();
        for i in 0..MAX_TRACKED {
            l.failure(&i.to_string(), 0, &g);
        }
        assert_eq!(l.len(), MAX_TRACKED);
        assert!(!l.failure("new", 1, &g));
        assert!(!l.failure("new", 1, &g));
        assert_eq!(l.len(), MAX_TRACKED);
        // Tracked users still lock.
        assert!(l.failure("7", 2, &g));
    }
}
