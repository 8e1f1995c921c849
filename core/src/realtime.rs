//! Bindings shared by several nodes in a database (`storage = realtime`): how rows are read
//! and written, and which nodes are up.
//!
//! One row per bound device in the family [`BINDINGS`] (`device` is the unique key), plus
//! the marker row [`MARKER_DEVICE`]. A commit is written row by row as compare-and-set
//! operations against what this node's table held ([`plan_writes`]): a row removed is deleted
//! only if it still holds the user this node saw, a row changed is updated only under the
//! same condition, a row added is inserted (the unique key refuses it if the row exists).
//! When a write changes no row, or is refused, another node changed the row: the node reads
//! the table again and decides again. With `multiple_logins` other than `yes`, a login's row
//! is `exclusive`, and the schema's partial unique index on `(userid) WHERE exclusive = 1`
//! lets a user hold one such row: of two nodes logging the same user in at once, one write
//! is refused.
//!
//! Each node also keeps a row in [`NODES`]: its name, its EID and a heartbeat counter that
//! changes every second. [`Liveness`] tells from those rows which nodes stopped beating.
use std::collections::{BTreeMap, BTreeSet};

use crate::config::MultipleLogins;
use crate::logtext::{quoted, value};
use crate::table::{Binding, Changes, Reason};

/// The realtime family of the bindings (map it in `extconfig.conf`).
pub const BINDINGS: &str = "deviceuser_bindings";
/// The realtime family of the nodes' heartbeats.
pub const NODES: &str = "deviceuser_nodes";
/// The realtime family of wrong PINs (optional): one row per wrong PIN (`userid`,
/// `failed_at` unix seconds, `node`), so that a lockout holds on every node.
pub const PIN_FAILURES: &str = "deviceuser_pin_failures";

/// Seconds of wrong PINs that can still matter for a lockout now: a lock ends
/// `lockout_time` after the failure that set it, which counted failures of the
/// `lockout_window` before it.
pub fn pin_failures_horizon(g: &crate::General) -> u64 {
    g.lockout_window.saturating_add(g.lockout_time)
}

/// Whether a user whose wrong PINs (on every node) were at `times` is locked out at `now`:
/// the same rules as one node's [`Lockout`](crate::Lockout), replayed over the shared
/// failures. `Err` holds the seconds left.
pub fn lockout_from_failures(mut times: Vec<u64>, now: u64, g: &crate::General) -> Result<(), u64> {
    times.sort_unstable();
    let mut l = crate::Lockout::new();
    for t in times {
        l.failure("u", t, g);
    }
    l.check("u", now)
}

/// The `device` of the row that is always in the bindings table. Asterisk's realtime API
/// answers "no rows" and "query failed" alike; with this row present, an empty answer is a
/// failure. `/` is never in a device id.
pub const MARKER_DEVICE: &str = "/";

/// One row of the bindings table as read: `None` for the marker row or a device nobody is
/// on. A row without a device or with a bad `since` is an error.
pub fn decode_binding_row(fields: &[(String, String)]) -> Result<Option<Binding>, String> {
    let get = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    };
    let device = get("device")
        .filter(|d| !d.is_empty())
        .ok_or("row without device")?;
    if device == MARKER_DEVICE {
        return Ok(None);
    }
    let Some(user) = get("userid").filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    let since = match get("since") {
        None | Some("") => 0,
        Some(s) => s
            .parse()
            .map_err(|_| format!("device {}: bad since {}", value(device), quoted(s)))?,
    };
    Ok(Some(Binding::new(user, device, since)))
}

/// One compare-and-set write of a commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RowWrite {
    /// Delete the device's row if it still holds `user`.
    Delete { device: String, user: String },
    /// Give the device's row to `new` if it still holds `user`.
    Update {
        user: String,
        new: Binding,
        exclusive: bool,
    },
    /// Insert a row for a device this node saw empty.
    Insert { new: Binding, exclusive: bool },
}

impl RowWrite {
    pub fn device(&self) -> &str {
        match self {
            RowWrite::Delete { device, .. } => device,
            RowWrite::Update { new, .. } | RowWrite::Insert { new, .. } => &new.device,
        }
    }
}

/// Whether a binding made for `reason` counts as the user's one login (`exclusive`) under
/// `multiple_logins`. A device given back to its default user does not: the config, not a
/// login, puts the user there.
pub fn exclusive(policy: MultipleLogins, reason: Reason) -> bool {
    policy != MultipleLogins::Yes && reason != Reason::Default
}

/// The writes of one commit: deletions first, then updates, then inserts, so that a user's
/// old exclusive row is gone before the new one is written.
pub fn plan_writes(changes: &Changes, policy: MultipleLogins) -> Vec<RowWrite> {
    let mut old: BTreeMap<&str, &Binding> = BTreeMap::new();
    for (b, _) in &changes.removed {
        old.entry(b.device.as_str()).or_insert(b);
    }
    let mut new: BTreeMap<&str, (&Binding, Reason)> = BTreeMap::new();
    for (b, reason) in &changes.added {
        new.insert(b.device.as_str(), (b, *reason));
    }
    let (mut deletes, mut updates, mut inserts) = (Vec::new(), Vec::new(), Vec::new());
    for (device, o) in &old {
        match new.remove(device) {
            None => deletes.push(RowWrite::Delete {
                device: device.to_string(),
                user: o.user.to_string(),
            }),
            Some((n, reason)) => updates.push(RowWrite::Update {
                user: o.user.to_string(),
                new: n.clone(),
                exclusive: exclusive(policy, reason),
            }),
        }
    }
    for (n, reason) in new.into_values() {
        inserts.push(RowWrite::Insert {
            new: n.clone(),
            exclusive: exclusive(policy, reason),
        });
    }
    deletes.into_iter().chain(updates).chain(inserts).collect()
}

/// A node's heartbeat row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRow {
    pub node: String,
    pub eid: String,
    pub beat: u64,
}

/// One row of the nodes table; `None` if it has no node name or no number as beat.
pub fn decode_node_row(fields: &[(String, String)]) -> Option<NodeRow> {
    let get = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
    };
    Some(NodeRow {
        node: get("node").filter(|n| !n.is_empty())?,
        eid: get("eid").unwrap_or_default(),
        beat: get("beat")?.parse().ok()?,
    })
}

/// Which other nodes are up, judged by this node's own clock: a node is down once its
/// heartbeat has not changed for the timeout (clocks of different nodes are never
/// compared). A node this node has never seen beat counts as up until then too.
#[derive(Debug, Default)]
pub struct Liveness {
    /// Per node: last beat seen, when (this node's milliseconds) it last changed, its EID.
    seen: BTreeMap<String, (u64, u64, String)>,
    down: BTreeSet<String>,
}

/// What one look at the nodes table changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Transitions {
    /// Nodes that just went down, with their EID.
    pub down: Vec<(String, String)>,
    /// Nodes that beat again.
    pub up: Vec<String>,
}

impl Liveness {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the rows read at `now_ms`; `me` is this node (never judged).
    pub fn observe(
        &mut self,
        me: &str,
        rows: &[NodeRow],
        now_ms: u64,
        timeout_ms: u64,
    ) -> Transitions {
        let mut t = Transitions::default();
        for r in rows.iter().filter(|r| r.node != me) {
            let changed = match self.seen.get(&r.node) {
                Some((beat, _, _)) => *beat != r.beat,
                None => true,
            };
            let entry = self
                .seen
                .entry(r.node.clone())
                .or_insert_with(|| (r.beat, now_ms, r.eid.clone()));
            if changed {
                *entry = (r.beat, now_ms, r.eid.clone());
                if self.down.remove(&r.node) {
                    t.up.push(r.node.clone());
                }
            }
        }
        for (node, (_, since, eid)) in &self.seen {
            if now_ms.saturating_sub(*since) >= timeout_ms && self.down.insert(node.clone()) {
                t.down.push((node.clone(), eid.clone()));
            }
        }
        t
    }

    /// Starts every node's timeout again from `now_ms` (after this node could not read the
    /// table for a while: the others' beats it missed say nothing about them).
    pub fn restart_timers(&mut self, now_ms: u64) {
        for (_, since, _) in self.seen.values_mut() {
            *since = now_ms;
        }
    }

    /// The nodes down now, sorted.
    pub fn down(&self) -> Vec<String> {
        self.down.iter().cloned().collect()
    }

    pub fn is_down(&self, node: &str) -> bool {
        self.down.contains(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn rows_decode() {
        assert_eq!(
            decode_binding_row(&f(&[
                ("device", "1000"),
                ("userid", "4101"),
                ("since", "7")
            ])),
            Ok(Some(Binding::new("4101", "1000", 7)))
        );
        assert_eq!(decode_binding_row(&f(&[("device", "/")])), Ok(None));
        assert_eq!(decode_binding_row(&f(&[("device", "1000")])), Ok(None));
        assert!(decode_binding_row(&f(&[("userid", "1")])).is_err());
        assert!(
            decode_binding_row(&f(&[("device", "1"), ("userid", "1"), ("since", "x")])).is_err()
        );
        assert_eq!(
            decode_node_row(&f(&[
                ("node", "a"),
                ("eid", "02:00:00:00:00:0a"),
                ("beat", "5")
            ])),
            Some(NodeRow {
                node: "a".into(),
                eid: "02:00:00:00:00:0a".into(),
                beat: 5
            })
        );
        assert_eq!(decode_node_row(&f(&[("node", "a"), ("beat", "x")])), None);
    }

    #[test]
    fn writes_are_planned_deletes_updates_inserts() {
        let b = |u: &str, d: &str| Binding::new(u, d, 1);
        let changes = Changes {
            removed: vec![
                (b("101", "lobby"), Reason::Replaced),
                (b("102", "1000"), Reason::Replaced),
                (b("103", "1002"), Reason::Manual),
            ],
            added: vec![
                (b("100", "lobby"), Reason::Default),
                (b("101", "1000"), Reason::Manual),
                (b("101", "1001"), Reason::Admin),
            ],
        };
        let w = plan_writes(&changes, MultipleLogins::Replace);
        assert_eq!(
            w,
            vec![
                RowWrite::Delete {
                    device: "1002".into(),
                    user: "103".into()
                },
                RowWrite::Update {
                    user: "102".into(),
                    new: b("101", "1000"),
                    exclusive: true
                },
                RowWrite::Update {
                    user: "101".into(),
                    new: b("100", "lobby"),
                    exclusive: false
                },
                RowWrite::Insert {
                    new: b("101", "1001"),
                    exclusive: true
                },
            ]
        );
        assert!(plan_writes(&changes, MultipleLogins::Yes)
            .iter()
            .all(|w| match w {
                RowWrite::Update { exclusive, .. } | RowWrite::Insert { exclusive, .. } =>
                    !exclusive,
                RowWrite::Delete { .. } => true,
            }));
        assert_eq!(w[3].device(), "1001");
    }

    #[test]
    fn lockout_replays_the_failures_of_every_node() {
        let g = crate::General {
            max_login_failures: 3,
            lockout_window: 60,
            lockout_time: 300,
            ..Default::default()
        };
        assert_eq!(lockout_from_failures(vec![], 10, &g), Ok(()));
        // Two on one node, one on another, within the window: locked 300 s from the third.
        assert_eq!(lockout_from_failures(vec![20, 10, 30], 31, &g), Err(299));
        assert_eq!(lockout_from_failures(vec![10, 20, 30], 330, &g), Ok(()));
        // Spread wider than the window: no lock.
        assert_eq!(lockout_from_failures(vec![10, 80, 150], 151, &g), Ok(()));
        assert_eq!(pin_failures_horizon(&g), 360);
    }

    #[test]
    fn a_node_is_down_after_the_timeout_without_a_beat() {
        let row = |n: &str, beat| NodeRow {
            node: n.into(),
            eid: format!("eid-{n}"),
            beat,
        };
        let mut l = Liveness::new();
        let t = l.observe("a", &[row("a", 1), row("b", 1)], 0, 10_000);
        assert_eq!(t, Transitions::default());
        // b beats: never down, however long.
        for s in 1..30 {
            let t = l.observe("a", &[row("a", 1), row("b", s)], s * 1000, 10_000);
            assert_eq!(t, Transitions::default());
        }
        // b stops at beat 29 (seen at 29 s): down at 39 s, once.
        assert_eq!(
            l.observe("a", &[row("b", 29)], 38_999, 10_000),
            Transitions::default()
        );
        let t = l.observe("a", &[row("b", 29)], 39_000, 10_000);
        assert_eq!(t.down, vec![("b".to_string(), "eid-b".to_string())]);
        assert!(l.is_down("b"));
        assert_eq!(
            l.observe("a", &[row("b", 29)], 45_000, 10_000),
            Transitions::default()
        );
        assert_eq!(l.down(), vec!["b"]);
        // It beats again (a restart): up.
        let t = l.observe("a", &[row("b", 1_000)], 46_000, 10_000);
        assert_eq!(t.up, vec!["b"]);
        assert!(l.down().is_empty());
        // After this node's own outage, timeouts start again.
        l.observe("a", &[row("c", 1)], 50_000, 10_000);
        l.restart_timers(59_000);
        assert_eq!(l.observe("a", &[row("c", 1)], 60_000, 10_000).down, vec![]);
        // Then c (still not beating) and b (whose row vanished) go down; never this node.
        let t = l.observe("a", &[row("a", 9), row("c", 1)], 69_000, 10_000);
        let down: Vec<&str> = t.down.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(down, vec!["b", "c"]);
        assert!(!l.is_down("a"));
    }
}
