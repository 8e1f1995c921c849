//! Per-user login statistics, kept in memory by the host and fed from every commit's
//! [`Changes`]. They start from zero at each module load.

use compact_str::CompactString;
use rustc_hash::FxHashMap;

use crate::config::Config;
use crate::table::{Changes, Reason};

/// One user's numbers. Open sessions are not kept here: they are the user's current
/// bindings, each carrying its start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserStats {
    /// Logins (manual, admin, replacing someone); not default or restored bindings.
    pub logins: u64,
    /// Logins restored from AstDB at load: sessions that began before it.
    pub restored: u64,
    /// Seconds of sessions that have ended, summed over devices.
    pub total_secs: u64,
}

/// Statistics of the users whose bindings changed since the module was loaded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// By user id, inline (no allocation per user); one table, not a tree of nodes.
    users: FxHashMap<CompactString, UserStats>,
}

impl Stats {
    pub fn new() -> Self {
        Self::default()
    }

    fn entry(&mut self, user: &str) -> &mut UserStats {
        if !self.users.contains_key(user) {
            self.users
                .insert(CompactString::from(user), UserStats::default());
        }
        self.users.get_mut(user).expect("just inserted")
    }

    /// Applies one commit. Each removed binding ends a session and adds `now - since` to its
    /// user's total; each added binding counts as a login unless its reason is
    /// [`Reason::Default`] or [`Reason::Config`].
    pub fn apply(&mut self, changes: &Changes, now: u64) {
        for (b, _) in &changes.removed {
            let u = self.entry(&b.user);
            u.total_secs = u.total_secs.saturating_add(now.saturating_sub(b.since));
        }
        for (b, reason) in &changes.added {
            if !matches!(reason, Reason::Default | Reason::Config) {
                self.entry(&b.user).logins += 1;
            }
        }
    }

    /// Counts the bindings a restore from AstDB put back at load (the changes of
    /// [`BindingTable::restore`](crate::BindingTable::restore)) as restored logins of their
    /// users, apart from the logins made since: `show stats` then accounts for every binding
    /// of `show bindings` that is not a device's default.
    pub fn restored(&mut self, changes: &Changes) {
        for (b, _) in &changes.added {
            self.entry(&b.user).restored += 1;
        }
    }

    /// Logins restored at load, over all users.
    pub fn restored_total(&self) -> u64 {
        self.users.values().map(|u| u.restored).sum()
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
        let mut st = Stats::new();
        assert!(st.user("100").is_none());

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
        assert_eq!((u101.logins, u101.total_secs), (2, 0));
        assert_eq!(st.user("100").unwrap().total_secs, 20);

        // Logout of lobby gives it back to 100: not a login.
        let c = t
            .logout_device("lobby", Reason::Manual, 50, |_| {})
            .unwrap();
        st.apply(&c, 50);
        assert_eq!(st.user("101").unwrap().total_secs, 30);
        assert_eq!(st.user("100").unwrap().logins, 0);

        // Restored bindings are not logins either, but restored ones; the session 100 had
        // since 50 on lobby ends when it logs out at 80.
        let (c, _) = t.restore(
            vec![crate::table::Binding::new("100", "1001", 40)],
            60,
            |_| {},
        );
        st.apply(&c, 60);
        st.restored(&c);
        assert_eq!(st.user("100").unwrap().logins, 0);
        assert_eq!(st.user("100").unwrap().restored, 1);
        assert_eq!(st.restored_total(), 1);
        let c = t.logout_user("100", Reason::Admin, 80, |_| {}).unwrap();
        st.apply(&c, 80);
        assert_eq!(st.user("100").unwrap().total_secs, 20 + 30 + 40);

        let mut c = sample();
        c.users.remove("101");
        st.retain_configured(&c);
        assert!(st.user("101").is_none() && st.user("100").is_some());
    }
}
