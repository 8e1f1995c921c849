//! ARI events: applications subscribe to `deviceUser:<user>` (or `deviceUser:` for every
//! user) and receive `DeviceUserLogin`, `DeviceUserLogout` (with the session's duration) and
//! `DeviceUserDND` on their websocket. A sink of the commit pipeline addresses each commit's
//! events to the applications subscribed at that moment; the follow-up thread sends them, in
//! commit order, off the writer lock.
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use deviceuser_core::ari::{binding_events, dnd_event, timestamp, to_json, Subscriptions};

use crate::followups::FollowUps;
use crate::host::ari::Feed;
use crate::pipeline::{Change, Commit, Sink, Stage, Work};
use crate::state::State;

/// The subscriptions of ARI applications to the module's event source.
pub struct AriFeed {
    state: Arc<State>,
    subscriptions: Mutex<Subscriptions>,
}

impl AriFeed {
    pub fn new(state: Arc<State>) -> AriFeed {
        AriFeed {
            state,
            subscriptions: Mutex::new(Subscriptions::default()),
        }
    }

    fn subs(&self) -> MutexGuard<'_, Subscriptions> {
        self.subscriptions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Feed for AriFeed {
    fn exists(&self, id: &str) -> bool {
        self.state.snapshot().config().user(id).is_some()
    }

    fn subscribe(&self, app: &str, id: &str) {
        self.subs().subscribe(app, id);
    }

    fn unsubscribe(&self, app: &str, id: &str) {
        self.subs().unsubscribe(app, id);
    }

    fn is_subscribed(&self, app: &str, id: &str) -> bool {
        self.subs().is_subscribed(app, id)
    }

    fn ids(&self, app: &str) -> Vec<String> {
        self.subs().of(app)
    }
}

/// Addresses each commit's events to the applications that follow its users.
pub struct AriSink {
    pub feed: Arc<AriFeed>,
    pub follow_ups: Arc<FollowUps>,
}

impl Sink for AriSink {
    fn stage(&self) -> Stage {
        Stage::Announce
    }

    fn commit(&self, c: &Commit<'_>, _: &mut Work) {
        let subs = self.feed.subs();
        if subs.is_empty() {
            return;
        }
        let events = match c.change {
            Change::Bindings(changes) => binding_events(changes, c.now),
            Change::Dnd { user, on } => vec![dnd_event(user, on)],
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let ts = timestamp(now.as_secs(), now.subsec_millis());
        let mut out = Vec::new();
        for e in &events {
            for app in subs.apps_for(&e.user) {
                out.push((app.to_string(), to_json(e, app, &ts)));
            }
        }
        drop(subs);
        if !out.is_empty() {
            self.follow_ups.send_ari(out);
        }
    }
}
