//! Per-user login statistics, kept in memory by the host and fed from every commit's
//! [`Changes`]. They start from zero at each module load.

use std::collections::BTreeMap;

use crate::config::Config;
use crate::table::{Changes, Reason, Snapshot};

/// One user's numbers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserStats {
    /// Logins (manual, admin, replacing someone); not default or restored bindings.
    pub logins: u64,
    /// Seconds of sessions that have ended, summed over devices.
    pub total_secs: u64,
    /// Open sessions: device → start (unix seconds).
    pub sessions: BTreeMap<String, u64>,
}

/// Statistics of all users seen in bindings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    users: BTreeMap<String, UserStats>,
}

impl Stats {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts with the sessions open in `s` (e.g. right after load and restore), counted as
    /// sessions but not as logins.
    pub fn from_snapshot(s: &Snapshot) -> Self {
        let mut st = Stats::new();
        for b in s.bindings() {
            st.entry(&b.user).sessions.insert(b.device.clone(), b.since);
        }
        st
    }

    fn entry(&mut self, user: &str) -> &mut UserStats {
        self.users.entry(user.to_string()).or_default()
    }

    /// Applies one commit. Each removed binding ends a session and adds `now - since` to its
    /// user's total; each added binding opens one and counts as a login unless its reason
    /// is [`Reason::Default`] or [`Reason::Config`].
    pub fn apply(&mut self, changes: &Changes, now: u64) {
        for (b, _) in &changes.removed {
            let u = self.entry(&b.user);
            u.sessions.remove(&b.device);
            u.total_secs = u.total_secs.saturating_add(now.saturating_sub(b.since));
        }
        for (b, reason) in &changes.added {
            let u = self.entry(&b.user);
            u.sessions.insert(b.device.clone(), b.since);
            if !matches!(reason, Reason::Default | Reason::Config) {
                u.logins += 1;
            }
        }
    }

    pub fn user(&self, user: &str) -> Option<&UserStats> {
        self.users.get(user)
    }

    /// Forgets users that are no longer configured (call after a reload).
    pub fn retain_configured(&mut self, c: &Config) {
        self.users.retain(|u, _| c.user(u).is_some());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::sample;
    use crate::table::{BindingTable, LoginMode};

    #[test]
    fn counts_logins_and_time() {
        let t = BindingTable::new(sample(), 0);
        let mut st = Stats::from_snapshot(&t.snapshot());
        assert_eq!(st.user("100").unwrap().logins, 0);
        assert_eq!(st.user("100").unwrap().sessions.get("lobby"), Some(&0));

        let c = t
            .login("101", "1000", LoginMode::Admin, 10, |_| {})
            .unwrap();
        st.apply(&c, 10);
        // 101 replaces 100 on lobby; 100 had been there since 0.
        let c = t
            .login("101", "lobby", LoginMode::Admin, 20, |_| {})
            .unwrap();
        st.apply(&c, 20);
        let u101 = st.user("101").unwrap();
        assert_eq!(u101.logins, 2);
        assert_eq!(u101.sessions.len(), 2);
        assert_eq!(st.user("100").unwrap().total_secs, 20);
        assert!(st.user("100").unwrap().sessions.is_empty());

        // Logout of lobby gives it back to 100: a session for 100, but not a login.
        let c = t
            .logout_device("lobby", Reason::Manual, 50, |_| {})
            .unwrap();
        st.apply(&c, 50);
        assert_eq!(st.user("101").unwrap().total_secs, 30);
        assert_eq!(st.user("100").unwrap().logins, 0);
        assert_eq!(st.user("100").unwrap().sessions.get("lobby"), Some(&50));

        // Restored bindings are not logins either.
        let (c, _) = t.restore(vec![crate::Binding::new("100", "1001", 40)], 60, |_| {});
        st.apply(&c, 60);
        assert_eq!(st.user("100").unwrap().logins, 0);
        assert_eq!(st.user("100").unwrap().sessions.get("1001"), Some(&40));

        let mut c = sample();
        c.users.remove("101");
        st.retain_configured(&c);
        assert!(st.user("101").is_none() && st.user("100").is_some());
    }
}
