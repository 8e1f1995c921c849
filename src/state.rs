//! The loaded module's state that commits, readers and the module's threads share: the
//! binding table (which holds the config), statistics, lockout, the unregistered-devices
//! tracker, the journal and the last published user states; and how a user's
//! `DeviceUser:<user>` state is computed and published.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use deviceuser_core::config::USER_STATE_PREFIX;
use deviceuser_core::metrics::Counters;
use deviceuser_core::{BindingTable, CompactString, Lockout, Snapshot, Stats, Unregistered};
use rustc_hash::FxHashMap;

use crate::feed::Feed;
use crate::hint_sync::HintSync;
use crate::host::devstate::{self, Aggregate, DeviceState};
use crate::journal::Journal;

pub struct State {
    /// Written only through `Instance`'s operations, which run the commit pipeline.
    pub(crate) table: BindingTable,
    /// Login statistics since load (not on the device state path).
    pub stats: Mutex<Stats>,
    /// PIN failures and locked users.
    pub lockout: Mutex<Lockout>,
    /// Since when bound devices have been unregistered (for `logout_on_unregister`).
    pub unregistered: Mutex<Unregistered>,
    pub journal: Journal,
    pub publisher: Publisher,
    /// The last state of each followed device, from its change messages.
    pub seen: SeenStates,
    /// The module's hints in `hint_context`.
    pub hints: HintSync,
    /// Logins, logouts and refused logins counted since load (metrics).
    pub counters: Mutex<Counters>,
}

impl State {
    pub fn new(table: BindingTable) -> Arc<State> {
        Arc::new(State {
            table,
            stats: Mutex::new(Stats::new()),
            lockout: Mutex::new(Lockout::new()),
            unregistered: Mutex::new(Unregistered::new()),
            journal: Journal::default(),
            publisher: Publisher::default(),
            seen: SeenStates::default(),
            hints: HintSync::new(),
            counters: Mutex::new(Counters::default()),
        })
    }

    /// The current snapshot: lock-free, never waits for a writer.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.table.snapshot()
    }

    pub fn stats(&self) -> MutexGuard<'_, Stats> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn lockout(&self) -> MutexGuard<'_, Lockout> {
        self.lockout.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn counters(&self) -> MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn unregistered(&self) -> MutexGuard<'_, Unregistered> {
        self.unregistered.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes the current state of each of `users`; with `always`, even when it equals
    /// the last one published (see [`Publisher`]).
    pub fn publish_users<S: AsRef<str>>(&self, users: impl Iterator<Item = S>, always: bool) {
        let mut published = self.publisher.lock();
        let snap = self.snapshot();
        for user in users {
            let user = user.as_ref();
            published.publish(user, user_state(&snap, user, &self.seen), always);
        }
    }

    /// Publishes the state of each of `users` again even though Asterisk's cache holds it
    /// (Asterisk publishes a cachable state only when it changes): this node's cached states
    /// are cleared first, so the new publications go out to the other nodes, which may
    /// have replaced them while they took this node for down.
    pub fn republish_users(&self, users: Vec<String>) {
        for user in &users {
            devstate::clear_own_cached(&device_name(user));
        }
        // The clearing goes through Asterisk's caching topic: give it time.
        std::thread::sleep(std::time::Duration::from_millis(200));
        self.publish_users(users.iter(), true);
    }

    /// Publishes `state` for each of `users` (unload: UNAVAILABLE).
    pub fn publish_users_state(&self, users: impl Iterator<Item = String>, state: DeviceState) {
        let mut published = self.publisher.lock();
        for user in users {
            published.publish(&user, state, false);
        }
    }

    /// The live feed of commits and user states.
    pub fn feed(&self) -> &Feed {
        &self.publisher.feed
    }

    /// Users no longer configured: any whose state was published shows UNAVAILABLE rather
    /// than a stale state, and every one is forgotten. Users never published cost nothing
    /// (publishing each would make Asterisk a device-state topic per name).
    pub fn forget_users(&self, users: impl Iterator<Item = String>) {
        let mut published = self.publisher.lock();
        for user in users {
            published.forget(&user);
        }
    }

    /// The text of the whole current state, for the journal.
    pub fn full_state(&self) -> String {
        full_state(&self.snapshot())
    }
}

/// The whole state of `s` as journal text.
pub fn full_state(s: &Snapshot) -> String {
    deviceuser_core::journal::full_state(s.bindings(), &s.dnd_users())
}

/// Unix time now, in seconds.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `DeviceUser:<user>`, the name hints use.
pub fn device_name(user: &str) -> String {
    format!("{USER_STATE_PREFIX}{user}")
}

/// The state of `DeviceUser:<user>` on this node: Asterisk's aggregate of the user's devices
/// attached here, UNAVAILABLE on none, BUSY in DND, INVALID for an unknown user. A device's
/// state is the one its last change message brought the module (`seen`), else Asterisk's
/// (`ast_device_state`).
pub fn user_state(snap: &Snapshot, user: &str, seen: &SeenStates) -> DeviceState {
    if snap.config().user(user).is_none() {
        return DeviceState::INVALID;
    }
    if snap.dnd(user) {
        return DeviceState::BUSY;
    }
    let mut agg = Aggregate::new();
    let mut local = 0;
    for id in snap.devices_of(user) {
        // A device of another node: that node publishes its state.
        let Some(dev) = snap.config().device(id).filter(|d| !d.remote) else {
            continue;
        };
        local += 1;
        agg.add(
            seen.get(id)
                .unwrap_or_else(|| devstate::device_state(&dev.dial)),
        );
    }
    if local == 0 {
        return DeviceState::UNAVAILABLE;
    }
    agg.result()
}

/// The state each followed device's last change message carried, by device id: what the
/// user's state is computed from when the module publishes it, and what the provider answers
/// from when the hint engine asks right after, so neither asks Asterisk's device state cache
/// again (each lookup there walks a hash bucket of every device that ever published a
/// state). A device has an entry from its first change message after it was bound until it
/// is released (or a reload), so a state Asterisk changed while the module did not follow
/// the device is never used; without one, Asterisk is asked. It trails Asterisk's own cache
/// by the module's subscription queue, as hints do. The lock is held only to read or write
/// one entry.
#[derive(Default)]
pub struct SeenStates(RwLock<FxHashMap<CompactString, DeviceState>>);

impl SeenStates {
    pub fn get(&self, device: &str) -> Option<DeviceState> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(device)
            .copied()
    }

    pub fn set(&self, device: &str, state: DeviceState) {
        let mut m = self.0.write().unwrap_or_else(|e| e.into_inner());
        match m.get_mut(device) {
            Some(s) => *s = state,
            None => {
                m.insert(CompactString::from(device), state);
            }
        }
    }

    /// The device is no longer followed (or may not be): ask Asterisk until its next change.
    pub fn forget(&self, device: &str) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(device);
    }

    pub fn clear(&self) {
        self.0.write().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// Users whose `DeviceUser:` state is not simply UNAVAILABLE: bound or in DND; sorted.
pub fn active_users(snap: &Snapshot) -> Vec<String> {
    let mut users: Vec<String> = snap
        .bindings()
        .into_iter()
        .map(|b| b.user.to_string())
        .collect();
    users.extend(snap.dnd_users().into_iter().map(str::to_string));
    users.sort();
    users.dedup();
    users
}

/// The last `DeviceUser:` state published for each user. Asterisk does not cache these
/// states (see [`devstate::publish`]), so this is what keeps a device change that leaves its
/// user's state as it was from publishing anything. The lock also serializes publishing, so
/// a state computed from an older snapshot is never published after one computed from a
/// newer snapshot. Held only around computing and publishing (never by the provider).
#[derive(Default)]
pub struct Publisher {
    last: Mutex<FxHashMap<CompactString, DeviceState>>,
    count: AtomicU64,
    /// Told every state published.
    feed: Feed,
    /// With `storage = realtime`: states are published as this server's (its EID, cachable),
    /// so Asterisk aggregates them with other nodes' and distributes them.
    cluster: std::sync::atomic::AtomicBool,
}

/// The publisher, locked.
pub struct Publishing<'a> {
    last: MutexGuard<'a, FxHashMap<CompactString, DeviceState>>,
    count: &'a AtomicU64,
    feed: &'a Feed,
    cluster: bool,
}

impl Publisher {
    pub fn lock(&self) -> Publishing<'_> {
        Publishing {
            last: self.last.lock().unwrap_or_else(|e| e.into_inner()),
            count: &self.count,
            feed: &self.feed,
            cluster: self.cluster.load(Ordering::Relaxed),
        }
    }

    /// Publishes as one node of several from now on (see [`Publisher`]).
    pub fn set_cluster(&self, on: bool) {
        self.cluster.store(on, Ordering::Relaxed);
    }

    /// `DeviceUser:` states published since load.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

impl Publishing<'_> {
    /// Forgets `user`'s last published state, publishing UNAVAILABLE first unless that was it.
    pub fn forget(&mut self, user: &str) {
        if let Some(last) = self.last.remove(user) {
            if last != DeviceState::UNAVAILABLE {
                self.send(user, DeviceState::UNAVAILABLE);
            }
        }
    }

    /// Publishes `state` for `user` unless it is the last state published for them (with
    /// `always`, even then).
    pub fn publish(&mut self, user: &str, state: DeviceState, always: bool) {
        if !always && self.last.get(user) == Some(&state) {
            return;
        }
        self.send(user, state);
        self.last.insert(CompactString::from(user), state);
    }

    /// Publishes `state` as `user`'s (under this node's EID with several nodes), counts it and
    /// puts it on the console's live feed.
    fn send(&self, user: &str, state: DeviceState) {
        if self.cluster {
            devstate::publish_as(&device_name(user), state, &devstate::Eid::own());
        } else {
            devstate::publish(&device_name(user), state);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.feed.send(|| {
            vec![deviceuser_core::console::render::state_event(
                user,
                &state.name(),
            )]
        });
    }
}
