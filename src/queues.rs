//! Queue membership that follows the user: the module's members of `app_queue`'s queues are
//! kept where the bindings say (see `deviceuser_core::queues` for the rules), through
//! app_queue's own AMI actions run inside Asterisk. Runs on the follow-up thread alone
//! ([`crate::followups`]), in commit order.
//!
//! What the module believes app_queue holds is kept here, so a login costs only the actions
//! it needs. It is replaced by app_queue's own answer (`QueueStatus`) at start, after a
//! reload, and every `queue_check` seconds, which also heals what happened behind the
//! module's back (a queue reloaded away and back, a member removed by hand, app_queue loaded
//! late, a `kill -9` between a commit and its queue action).
use std::collections::{BTreeMap, BTreeSet};

use deviceuser_core::logtext::{quoted, value};
use deviceuser_core::queues::{
    ami_fields, applied, member_interface, members_in_status, outcome, parse_ami_messages, plan,
    Action, Member, Outcome, Wanted,
};
use deviceuser_core::Snapshot;

use crate::host::log;
use crate::host::manager::send_action;

/// The module's members by user, then by queue (lowercased).
type Members = BTreeMap<String, BTreeMap<String, Member>>;

#[derive(Default)]
pub struct QueueMembers {
    members: Members,
    /// app_queue answered the last action (false: not loaded).
    loaded: Option<bool>,
    /// (user, queue) whose last action failed: told once, retried at the next check.
    failed: BTreeSet<(String, String)>,
    /// Queues app_queue reported at the last check (lowercased).
    known_queues: BTreeSet<String>,
}

impl QueueMembers {
    /// Brings one user's members where `snap` says.
    pub fn sync_user(&mut self, snap: &Snapshot, user: &str) {
        if self.loaded == Some(false) {
            // Nothing answers until app_queue is loaded: the next check applies it all.
            return;
        }
        let previous = self.failed.clone();
        self.sync_with(snap, user, &previous);
    }

    /// [`sync_user`](Self::sync_user), telling only of failures not in `previous` (those
    /// were told already).
    fn sync_with(&mut self, snap: &Snapshot, user: &str, previous: &BTreeSet<(String, String)>) {
        if self.loaded == Some(false) {
            return;
        }
        let mut current = self.members.remove(user).unwrap_or_default();
        self.apply(snap, user, &mut current, previous);
        if !current.is_empty() {
            self.members.insert(user.to_string(), current);
        }
    }

    /// Reads app_queue's members (`QueueStatus`) and brings every user's where `snap` says:
    /// configured users by their bindings, members of users no longer configured removed.
    pub fn check(&mut self, snap: &Snapshot) {
        let Some(text) = send_action(&[("Action", "QueueStatus")]) else {
            if self.loaded != Some(false) {
                let waiting = snap
                    .config()
                    .users
                    .values()
                    .filter(|u| !snap.config().queues_of(&u.id).is_empty())
                    .count();
                if waiting > 0 {
                    log::warning(&format!(
                        "app_queue is not loaded: the queue membership of {waiting} user(s) is applied once it is"
                    ));
                }
            }
            self.loaded = Some(false);
            return;
        };
        if self.loaded == Some(false) {
            log::notice("app_queue answers: applying queue membership");
        }
        self.loaded = Some(true);
        let (members, queues) = members_in_status(&parse_ami_messages(&text));
        self.members = members;
        self.known_queues = queues.into_iter().collect();
        let mut users: BTreeSet<String> = self.members.keys().cloned().collect();
        users.extend(
            (snap.config().users.values())
                .filter(|u| !snap.config().queues_of(&u.id).is_empty())
                .map(|u| u.id.to_string()),
        );
        // Failures are found again (and told only if new), successes tell they are over.
        let previous = std::mem::take(&mut self.failed);
        for user in users {
            self.sync_with(snap, &user, &previous);
        }
        for (user, queue) in previous.difference(&self.failed) {
            log::notice(&format!(
                "queue {}: user {}'s membership is as the bindings say now",
                value(queue),
                value(user)
            ));
        }
    }

    fn apply(
        &mut self,
        snap: &Snapshot,
        user: &str,
        current: &mut BTreeMap<String, Member>,
        previous: &BTreeSet<(String, String)>,
    ) {
        let config = snap.config();
        let interface = member_interface(user, &config.general.queue_context);
        let wanted = Wanted {
            queues: config.queues_of(user),
            logged_in: !snap.devices_of(user).is_empty(),
            logout: config.general.queue_logout,
            interface: &interface,
        };
        let name = config
            .user(user)
            .map_or(user.to_string(), |u| u.fullname.to_string());
        for action in plan(current, &wanted) {
            let fields = ami_fields(&action, user, &name);
            let Some(text) = send_action(&fields) else {
                log::warning(&format!(
                    "app_queue is not loaded: the queue membership of user {} is applied once it is",
                    value(user)
                ));
                self.loaded = Some(false);
                return;
            };
            let key = (user.to_string(), action.queue().to_ascii_lowercase());
            let response = parse_ami_messages(&text)
                .into_iter()
                .next()
                .unwrap_or_default();
            match outcome(&action, &response) {
                Outcome::Done | Outcome::AlreadySo => {
                    applied(current, &action);
                    self.failed.remove(&key);
                    log::verbose_with(3, || describe(&action, user));
                }
                Outcome::NoSuchQueue => {
                    if let Action::Remove { .. } | Action::Pause { .. } | Action::Penalty { .. } =
                        action
                    {
                        // The queue is gone, and its members with it.
                        current.remove(&key.1);
                        continue;
                    }
                    self.failed.insert(key.clone());
                    if !previous.contains(&key) {
                        log::warning(&format!(
                            "queue {}: no such queue in app_queue (queues.conf): user {} joins it once it exists",
                            value(action.queue()),
                            value(user)
                        ));
                    }
                }
                Outcome::Failed(msg) => {
                    self.failed.insert(key.clone());
                    if !previous.contains(&key) {
                        log::warning(&format!(
                            "queue {}: app_queue refused {} for user {}: {}",
                            quoted(action.queue()),
                            quoted(&fields[0].1),
                            quoted(user),
                            quoted(&msg)
                        ));
                    }
                }
            }
        }
    }
}

fn describe(action: &Action, user: &str) -> String {
    match action {
        Action::Add {
            queue,
            interface,
            penalty,
            paused,
        } => format!(
            "queue {}: user {} added as {} (penalty {penalty}{})",
            value(queue),
            value(user),
            value(interface),
            if *paused { ", paused" } else { "" }
        ),
        Action::Remove { queue, interface } => format!(
            "queue {}: user {} removed ({})",
            value(queue),
            value(user),
            value(interface)
        ),
        Action::Pause { queue, paused, .. } => format!(
            "queue {}: user {} {}",
            value(queue),
            value(user),
            if *paused { "paused" } else { "unpaused" }
        ),
        Action::Penalty { queue, penalty, .. } => format!(
            "queue {}: user {}'s penalty set to {penalty}",
            value(queue),
            value(user)
        ),
    }
}
