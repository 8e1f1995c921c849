//! The sinks every loaded module registers on its commit pipeline, in stage order.
use std::sync::Arc;

use deviceuser_core::astdb::{binding_key, binding_value, dnd_key, DND_VALUE};
use deviceuser_core::console::render;
use deviceuser_core::journal::{entries_for, Entry};
use deviceuser_core::logtext::value;
use deviceuser_core::Changes;

use crate::cluster::Cluster;
use crate::effects::Op;
use crate::host::devstate::follow::Follower;
use crate::host::devstate::{self, DeviceState};
use crate::host::{ami, log};
use crate::pipeline::{Change, Commit, Origin, Sink, Stage, Work};
use crate::state::State;

/// With `storage = realtime`: writes each change of bindings to the shared database before
/// it is published (what another node committed, read from the database, is not written
/// back). DND stays in this node's AstDB.
pub struct RealtimeSink {
    pub state: Arc<State>,
    pub cluster: Arc<Cluster>,
}

impl Sink for RealtimeSink {
    fn stage(&self) -> Stage {
        Stage::Durable
    }

    fn prepare(&self, c: &Commit<'_>) -> Result<(), deviceuser_core::StoreError> {
        let Change::Bindings(changes) = c.change else {
            return Ok(());
        };
        if c.origin == Origin::Sync {
            return Ok(());
        }
        let policy = self.state.snapshot().config().general.multiple_logins;
        let r = self.cluster.store.write(changes, policy);
        match &r {
            Err(deviceuser_core::StoreError::Unavailable(e)) => self.cluster.failed(e),
            _ => self.cluster.answered(),
        }
        r
    }

    fn commit(&self, _: &Commit<'_>, _: &mut Work) {}
}

/// Appends each change to the journal before it is acknowledged.
pub struct JournalSink(pub Arc<State>);

impl Sink for JournalSink {
    fn stage(&self) -> Stage {
        Stage::Journal
    }

    fn commit(&self, c: &Commit<'_>, _: &mut Work) {
        let entries = match c.change {
            Change::Bindings(changes) => entries_for(changes),
            Change::Dnd { user, on } => vec![Entry::Dnd(user.to_string(), on)],
        };
        self.0.journal.append(&entries, || self.0.full_state());
    }
}

/// AMI events, the verbose log lines and the statistics of each change.
pub struct AnnounceSink(pub Arc<State>);

impl Sink for AnnounceSink {
    fn stage(&self) -> Stage {
        Stage::Announce
    }

    fn commit(&self, c: &Commit<'_>, _: &mut Work) {
        match c.change {
            Change::Bindings(changes) => {
                if c.origin != Origin::Sync {
                    self.0.stats().apply(changes, c.now);
                }
                announce_bindings(changes, c.now);
            }
            Change::Dnd { user, on } => {
                let on = if on { "on" } else { "off" };
                ami::event(
                    "DeviceUserDND",
                    &[("User", user.to_string()), ("DND", on.to_string())],
                );
                log::verbose_with(3, || format!("user {}: do not disturb {on}", value(user)));
            }
        }
    }
}

fn announce_bindings(changes: &Changes, now: u64) {
    for (b, reason) in &changes.removed {
        ami::event(
            "DeviceUserLogout",
            &[
                ("User", b.user.to_string()),
                ("Device", b.device.to_string()),
                ("Reason", reason.to_string()),
                ("Duration", now.saturating_sub(b.since).to_string()),
            ],
        );
        log::verbose_with(3, || {
            format!(
                "user {} logged out of device {} ({reason})",
                value(&b.user),
                value(&b.device)
            )
        });
    }
    for (b, reason) in &changes.added {
        ami::event(
            "DeviceUserLogin",
            &[
                ("User", b.user.to_string()),
                ("Device", b.device.to_string()),
                ("Reason", reason.to_string()),
            ],
        );
        log::verbose_with(3, || {
            format!(
                "user {} logged in on device {} ({reason})",
                value(&b.user),
                value(&b.device)
            )
        });
    }
}

/// Login statistics as CEL user events on the channel that made the change, so they land in
/// whatever CEL backend the administrator uses (`USER_DEFINED`, eventtype
/// `DEVICEUSER_LOGIN` / `DEVICEUSER_LOGOUT`).
pub struct CelSink;

impl Sink for CelSink {
    fn stage(&self) -> Stage {
        Stage::Announce
    }

    fn commit(&self, c: &Commit<'_>, _: &mut Work) {
        let (Some(chan), Change::Bindings(changes)) = (c.channel, &c.change) else {
            return;
        };
        let now = c.now;
        for (b, reason) in &changes.removed {
            chan.cel_user_event(
                "DEVICEUSER_LOGOUT",
                &format!(
                    "user={},device={},start={},end={now},duration={},reason={reason}",
                    b.user,
                    b.device,
                    b.since,
                    now.saturating_sub(b.since)
                ),
            );
        }
        for (b, reason) in &changes.added {
            chan.cel_user_event(
                "DEVICEUSER_LOGIN",
                &format!(
                    "user={},device={},start={},reason={reason}",
                    b.user, b.device, b.since
                ),
            );
        }
    }
}

/// With `[general] commit_log = yes`: one NOTICE line per commit, with its sequence number
/// and origin — an audit trail of who changed what.
pub struct CommitLogSink {
    pub state: Arc<State>,
    pub seq: std::sync::atomic::AtomicU64,
}

impl Sink for CommitLogSink {
    fn stage(&self) -> Stage {
        Stage::Announce
    }

    fn commit(&self, c: &Commit<'_>, _: &mut Work) {
        if !self.state.snapshot().config().general.commit_log {
            return;
        }
        let seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let origin = c.origin.as_str();
        match c.change {
            Change::Bindings(changes) => {
                for (b, reason) in &changes.removed {
                    log::notice(&format!(
                        "commit {seq} origin={origin} logout user={} device={} reason={reason}",
                        value(&b.user),
                        value(&b.device)
                    ));
                }
                for (b, reason) in &changes.added {
                    log::notice(&format!(
                        "commit {seq} origin={origin} login user={} device={} reason={reason}",
                        value(&b.user),
                        value(&b.device)
                    ));
                }
            }
            Change::Dnd { user, on } => log::notice(&format!(
                "commit {seq} origin={origin} dnd user={} dnd={}",
                value(user),
                if on { "on" } else { "off" }
            )),
        }
    }
}

/// Follows the state of the devices a commit bound (at once, before it is acknowledged:
/// every later change of a bound device reaches the module), and leaves releasing those it
/// freed to its deferred work. A device bound while already unregistered is told to the
/// unregister tracker, since no change may ever come for it.
pub struct FollowSink {
    pub state: Arc<State>,
    pub follower: Arc<Follower>,
}

impl Sink for FollowSink {
    fn stage(&self) -> Stage {
        Stage::Effects
    }

    fn commit(&self, c: &Commit<'_>, work: &mut Work) {
        let Change::Bindings(changes) = c.change else {
            return;
        };
        let snap = self.state.snapshot();
        // A device of another node is followed there, not here.
        let dial = |device: &str| {
            (snap.config().device(device))
                .filter(|d| !d.remote)
                .map(|d| d.dial.as_str())
        };
        work.extend(
            (changes.removed.iter())
                .filter_map(|(b, _)| dial(&b.device))
                .map(|d| Op::Release(d.into())),
        );
        let unregister_policy = snap.config().has_unregister_policy();
        for (b, _) in &changes.added {
            let Some(d) = dial(&b.device) else { continue };
            self.follower.watch(d);
            if unregister_policy {
                let unavailable = devstate::device_state(d) == DeviceState::UNAVAILABLE;
                self.state
                    .unregistered()
                    .seen(&b.device, unavailable, c.now);
            }
        }
    }
}

/// Writes each change through to AstDB (deferred): removals first, then additions. With
/// `storage = realtime` (`dnd_only`) bindings live in the database: only DND goes to AstDB.
pub struct PersistSink {
    pub dnd_only: bool,
}

impl Sink for PersistSink {
    fn stage(&self) -> Stage {
        Stage::Effects
    }

    fn commit(&self, c: &Commit<'_>, work: &mut Work) {
        match c.change {
            Change::Bindings(_) if self.dnd_only => {}
            Change::Bindings(changes) => {
                for (b, _) in &changes.removed {
                    if !changes.added.iter().any(|(a, _)| a.device == b.device) {
                        work.push(Op::Del(binding_key(&b.device).into()));
                    }
                }
                for (b, _) in &changes.added {
                    work.push(Op::Put {
                        key: binding_key(&b.device).into(),
                        value: binding_value(b).into(),
                        what: "the login",
                    });
                }
            }
            Change::Dnd { user, on: true } => work.push(Op::Put {
                key: dnd_key(user).into(),
                value: DND_VALUE.into(),
                what: "DND",
            }),
            Change::Dnd { user, on: false } => work.push(Op::Del(dnd_key(user).into())),
        }
    }
}

/// Publishes the state of every user a change affected (deferred).
pub struct PublishSink;

impl Sink for PublishSink {
    fn stage(&self) -> Stage {
        Stage::Effects
    }

    fn commit(&self, c: &Commit<'_>, work: &mut Work) {
        match c.change {
            Change::Bindings(changes) => work.extend(
                changes
                    .affected_users()
                    .into_iter()
                    .map(|u| Op::Publish(u.into())),
            ),
            Change::Dnd { user, .. } => work.push(Op::Publish(user.into())),
        }
    }
}

/// Counts each commit's bindings made and ended, by reason.
pub struct MetricsSink(pub Arc<State>);

impl Sink for MetricsSink {
    fn stage(&self) -> Stage {
        Stage::Announce
    }

    fn commit(&self, c: &Commit<'_>, _: &mut Work) {
        // What another node committed is counted there.
        if let Change::Bindings(changes) = c.change {
            if c.origin != Origin::Sync {
                self.0.counters().apply(changes);
            }
        }
    }
}

/// Puts every commit on the live feed.
pub struct FeedSink(pub Arc<State>);

impl Sink for FeedSink {
    fn stage(&self) -> Stage {
        Stage::Announce
    }

    fn commit(&self, c: &Commit<'_>, _: &mut Work) {
        let feed = self.0.feed();
        match c.change {
            Change::Bindings(changes) => feed.send(|| render::binding_events(changes, c.now)),
            Change::Dnd { user, on } => feed.send(|| vec![render::dnd_event(user, on)]),
        }
    }
}
