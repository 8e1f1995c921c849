//! Metrics for Prometheus (`res_prometheus`): what the module counts (a sink of the commit
//! pipeline counts bindings made and ended; refused logins are counted where they are
//! reported, in [`crate::security`]) and the text of a scrape, read from the live state.
use std::sync::Arc;

use deviceuser_core::metrics::{render, Scrape};

use crate::instance::Instance;
use crate::pipeline::{Change, Commit, Sink, Stage, Work};
use crate::state::{now, State};

/// Counts each commit's bindings made and ended, by reason.
pub struct MetricsSink(pub Arc<State>);

impl Sink for MetricsSink {
    fn stage(&self) -> Stage {
        Stage::Announce
    }

    fn commit(&self, c: &Commit<'_>, _: &mut Work) {
        if let Change::Bindings(changes) = c.change {
            self.0.counters().apply(changes);
        }
    }
}

/// The text of one scrape of `/metrics`.
pub fn scrape(inst: &Instance) -> String {
    let snap = inst.snapshot();
    let bindings = snap.bindings();
    let mut users: Vec<&str> = bindings.iter().map(|b| b.user.as_str()).collect();
    users.dedup();
    let (lockouts, users_locked) = {
        let l = inst.state().lockout();
        (l.lockouts(), l.locked_count(now()))
    };
    let counters = inst.state().counters().clone();
    render(&Scrape {
        counters: Some(&counters),
        users_logged_in: users.len(),
        devices_bound: bindings.len(),
        users_dnd: snap.dnd_users().len(),
        lockouts,
        users_locked,
        commit_queue: inst.executor().pending(),
        follow_up_queue: inst.follow_ups().pending(),
    })
}
