//! Metrics for Prometheus (`res_prometheus`): the text of a scrape, read from the live state.
//! What the module counts comes from a sink of the commit pipeline
//! ([`MetricsSink`](crate::sinks::MetricsSink): bindings made and ended) and from where
//! refused logins are reported ([`crate::security`]).
use deviceuser_core::metrics::{render, Scrape};

use crate::instance::Instance;
use crate::state::now;

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
