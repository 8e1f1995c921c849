//! The deferred work commits leave behind, and how a batch of it is applied (the function
//! the executor in [`crate::deferred`] is built with).
use std::sync::Arc;

use deviceuser_core::astdb::FAMILY;
use deviceuser_core::logtext;
use deviceuser_core::{CompactString, Snapshot};

use crate::host::devstate::follow::Follower;
use crate::host::{astdb, log};
use crate::state::State;

/// One piece of deferred work, on the module's AstDB family. Strings are inline (keys,
/// values and ids are short), so a burst of queued work is one growing buffer, not a heap
/// allocation per piece.
pub enum Op {
    Put {
        key: CompactString,
        value: CompactString,
        /// What is not persisted if the put fails ("the login", "DND").
        what: &'static str,
    },
    Del(CompactString),
    /// Stop following the state this dial string names unless a device dialled so is bound.
    Release(CompactString),
    /// Publish the user's device state.
    Publish(CompactString),
}

/// Applies batches of [`Op`]s for the loaded state.
pub struct Effects {
    pub state: Arc<State>,
    pub follower: Arc<Follower>,
}

impl Effects {
    /// AstDB writes in order, then each freed device released once, then each affected
    /// user's state published once (even when it equals the last one published: the hint
    /// engine asks the provider, the live table, whenever it handles a message for the user,
    /// so between the commits of a batch it may have shown a state never published; this
    /// makes it ask again after the last).
    pub fn apply(&self, ops: Vec<Op>) {
        let (mut dials, mut users) = (Vec::new(), Vec::new());
        for op in ops {
            match op {
                Op::Put { key, value, what } => {
                    if let Err(e) = astdb::put(FAMILY, &key, &value) {
                        log::error(&format!(
                            "{e}: {what} ({}) is not persisted",
                            logtext::value(&value)
                        ));
                    }
                }
                Op::Del(key) => astdb::del(FAMILY, &key),
                Op::Release(dial) => dials.push(dial),
                Op::Publish(user) => users.push(user),
            }
        }
        if !dials.is_empty() {
            dials.sort_unstable();
            dials.dedup();
            for dial in &dials {
                self.follower
                    .unwatch_unless(dial, || dial_bound(&self.state.snapshot(), dial));
                // Followed or not from now on, its next state comes from a change message.
                // Under the publish lock, as a change is handled: one taken before the logout
                // was committed can no longer record the device's state after this.
                let _publishing = self.state.publisher.lock();
                if let Some(d) = self.state.snapshot().config().device_for_dial(dial) {
                    self.state.seen.forget(&d.id);
                }
            }
        }
        users.sort_unstable();
        users.dedup();
        // A user logged in (or put in DND) gets a hint of their own before the state is
        // published.
        self.state
            .hints
            .ensure(&self.state.snapshot(), users.iter());
        self.state.publish_users(users.iter(), true);
    }
}

/// Whether a device dialled as `dial` is bound in `snap`.
fn dial_bound(snap: &Snapshot, dial: &str) -> bool {
    snap.config()
        .device_for_dial(dial)
        .is_some_and(|d| snap.user_on(&d.id).is_some())
}

/// The dial strings of the bound devices in `snap`.
pub fn bound_dials(snap: &Snapshot) -> Vec<String> {
    snap.bindings()
        .into_iter()
        .filter_map(|b| snap.config().device(&b.device).map(|d| d.dial.to_string()))
        .collect()
}
