//! The module's live state: the binding table (which holds the config), and the operations
//! every adapter shares: load/reload of the config, commits (AstDB write-through, state
//! publishing, log lines), and computing a user's device state.
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use deviceuser_core::astdb::{
    binding_key, binding_value, decode_binding, decode_dnd_key, dnd_key, DND_VALUE, FAMILY,
};
use deviceuser_core::config::{Config, USER_STATE_PREFIX};
use deviceuser_core::dialplan;
use deviceuser_core::policy::any_unregister_policy;
use deviceuser_core::{
    BindingTable, Changes, CompactString, Lockout, Snapshot, Stats, Unregistered,
};
use rustc_hash::FxHashMap;
use snapcell::SnapshotCell;

use crate::host::devstate::{self, Aggregate, DeviceState};
use crate::host::{ami, astdb, config, hints, log};
use crate::{deferred, journal};

pub const CONFIG_FILE: &str = "res_deviceuser.conf";
/// Device state provider label: hints name `DeviceUser:<user>` (`USER_STATE_PREFIX`).
pub const PROVIDER_LABEL: &std::ffi::CStr = c"DeviceUser";

pub struct Runtime {
    pub table: BindingTable,
    /// Login statistics since load (not on the device state path).
    pub stats: Mutex<Stats>,
    /// PIN failures and locked users.
    pub lockout: Mutex<Lockout>,
    /// Since when bound devices have been unregistered (for `logout_on_unregister`).
    pub unregistered: Mutex<Unregistered>,
}

/// Empty while the module is not loaded. Read lock-free on the device state path. A static
/// that owns nothing on the heap once emptied: statics are not dropped at `dlclose`.
static RUNTIME: SnapshotCell<Runtime> = SnapshotCell::empty();

/// The last `DeviceUser:` state published for each user. Asterisk does not cache these states
/// (see [`devstate::publish`]), so this is what keeps a device change that leaves its user's
/// state as it was from publishing anything. The lock also serializes publishing, so a state
/// computed from an older snapshot is never published after one computed from a newer
/// snapshot. Held only around computing and publishing (never by the device state provider
/// itself). Emptied at unload: statics are not dropped at `dlclose`.
static PUBLISHED: Mutex<Option<FxHashMap<CompactString, DeviceState>>> = Mutex::new(None);

/// By user id, inline (no allocation per user).
type Published = Option<FxHashMap<CompactString, DeviceState>>;

fn published() -> std::sync::MutexGuard<'static, Published> {
    PUBLISHED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Publishes `state` for `user` unless it is the last state published for them (with
/// `always`, even then).
fn publish_user(published: &mut Published, user: &str, state: DeviceState, always: bool) {
    let map = published.get_or_insert_with(FxHashMap::default);
    if !always && map.get(user) == Some(&state) {
        return;
    }
    devstate::publish(&device_name(user), state);
    map.insert(CompactString::from(user), state);
    PUBLISH_COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// `DeviceUser:` states published since the process started (for `deviceuser show stats`).
static PUBLISH_COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub fn publish_count() -> u64 {
    PUBLISH_COUNT.load(std::sync::atomic::Ordering::Relaxed)
}

pub fn current() -> Option<Arc<Runtime>> {
    RUNTIME.get()
}

/// Runs `f` with the loaded runtime, or returns `None` if the module is not loaded.
pub fn with<R>(f: impl FnOnce(&Runtime) -> R) -> Option<R> {
    current().as_deref().map(f)
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// From this many devices and users, reading the config leaves enough freed memory behind
/// (Asterisk's config structures, the raw model) to hand it back to the system at once.
const LARGE_CONFIG: usize = 10_000;

/// Reads and validates the config file; logs every error and warning.
pub fn read_config() -> Result<Config, String> {
    let config = read_config_file()?;
    if config.devices.len() + config.users.len() >= LARGE_CONFIG {
        crate::host::alloc::trim();
    }
    Ok(config)
}

fn read_config_file() -> Result<Config, String> {
    let raw = match config::load(CONFIG_FILE) {
        config::Loaded::Missing => return Err(format!("{CONFIG_FILE} is missing")),
        config::Loaded::Invalid => return Err(format!("{CONFIG_FILE} cannot be parsed")),
        config::Loaded::Config(raw) => raw,
    };
    match Config::from_raw(&raw) {
        Ok(parsed) => {
            for w in &parsed.warnings {
                log::warning(&w.to_string());
            }
            Ok(parsed.config)
        }
        Err(errors) => {
            for e in &errors {
                log::error(&e.to_string());
            }
            Err(format!("{CONFIG_FILE} has {} error(s)", errors.len()))
        }
    }
}

/// Loads: reads the config, restores bindings from AstDB, and installs the runtime.
pub fn start() -> Result<(), String> {
    let config = read_config()?;
    let now = now();
    let table = BindingTable::new(config, now);
    let mut saved_values = std::collections::HashMap::new();
    let mut saved = std::collections::BTreeMap::new();
    for (key, value) in astdb::tree(FAMILY, "binding") {
        match decode_binding(&key, &value) {
            Ok(b) => {
                saved_values.insert(b.device.to_string(), value);
                saved.insert(b.device.to_string(), b);
            }
            Err(e) => {
                log::warning(&format!("ignoring AstDB entry /{FAMILY}/{key}: {e}"));
                astdb::del(FAMILY, &key);
            }
        }
    }
    let saved_dnd: std::collections::BTreeSet<String> = astdb::tree(FAMILY, "dnd")
        .into_iter()
        .filter_map(|(key, _)| decode_dnd_key(&key))
        .collect();
    // What AstDB had not committed yet when the process last died is in the journal.
    let mut dnd = saved_dnd.clone();
    let journal_text = journal::read();
    for problem in deviceuser_core::journal::replay(&journal_text, &mut saved, &mut dnd) {
        log::warning(&format!("journal: {problem}"));
    }
    let count = saved.len();
    // Nobody reads the table yet; AstDB is brought in line with the result below, in one pass.
    let (_, dropped) = table.restore(saved.into_values().collect(), now, |_| {});
    for (b, why) in &dropped {
        log::notice(&format!(
            "dropping saved login of user {} on device {}: {why}",
            b.user, b.device
        ));
    }
    table.with_snapshot(|s| {
        for b in s.bindings() {
            let value = binding_value(b);
            if saved_values.remove(b.device.as_str()).as_deref() != Some(value.as_str()) {
                if let Err(e) = astdb::put(FAMILY, &binding_key(&b.device), &value) {
                    log::warning(&e);
                }
            }
        }
    });
    for device in saved_values.keys() {
        astdb::del(FAMILY, &binding_key(device));
    }
    for user in table.restore_dnd(dnd.into_iter().collect()) {
        log::notice(&format!("dropping saved DND of unknown user {user}"));
    }
    table.with_snapshot(|s| {
        let now_on: std::collections::BTreeSet<&str> = s.dnd_users().into_iter().collect();
        for user in &now_on {
            if !saved_dnd.contains(*user) {
                if let Err(e) = astdb::put(FAMILY, &dnd_key(user), DND_VALUE) {
                    log::warning(&e);
                }
            }
        }
        for user in saved_dnd.iter().filter(|u| !now_on.contains(u.as_str())) {
            astdb::del(FAMILY, &dnd_key(user));
        }
    });
    if let Err(e) = journal::open(&table.with_snapshot(full_state)) {
        log::error(&format!(
            "{e}: a kill -9 may lose the last second of changes"
        ));
    }
    log::verbose(
        2,
        &format!(
            "{} devices, {} users, {} bindings ({count} restored from AstDB)",
            table.with_snapshot(|s| s.config().devices.len()),
            table.with_snapshot(|s| s.config().users.len()),
            table.with_snapshot(|s| s.binding_count()),
        ),
    );
    let stats = Mutex::new(Stats::new());
    // From here on, commits leave their AstDB writes and publishing to the commit thread (the
    // restore above wrote at once).
    if let Err(e) = deferred::start() {
        log::warning(&format!("{e}: commits write AstDB and publish themselves"));
    }
    RUNTIME.set(Some(Arc::new(Runtime {
        table,
        stats,
        lockout: Mutex::new(Lockout::new()),
        unregistered: Mutex::new(Unregistered::new()),
    })));
    Ok(())
}

/// After registration: hints (if configured) and every user's current state.
///
/// Only users on a device or in DND are published: a user without either reads UNAVAILABLE
/// from the provider, and publishing creates a device state topic per name in Asterisk,
/// which costs memory and time for every configured user (100,000 in large sites). The
/// publishing runs on the module's own thread, so `module load` returns at once; until a
/// state is published, hints ask the provider, which reads the same table.
pub fn announce() {
    with(|rt| sync_hints(None, rt.table.snapshot().config()));
}

/// Follows the state of the devices a commit bound, and leaves releasing those it freed to
/// its deferred work. A device bound while already unregistered is told to the unregister
/// tracker, since no change may ever come for it. Runs in the commit, before it is
/// acknowledged: every change of a bound device after that reaches the module.
fn follow_changes(rt: &Runtime, changes: &Changes, now: u64, work: &mut deferred::Work) {
    let snap = rt.table.snapshot();
    let dial = |device: &str| snap.config().device(device).map(|d| d.dial.as_str());
    work.release(changes.removed.iter().filter_map(|(b, _)| dial(&b.device)));
    let unregister_policy = any_unregister_policy(snap.config());
    for (b, _) in &changes.added {
        let Some(d) = dial(&b.device) else { continue };
        devstate::watch(d);
        if unregister_policy {
            let unavailable = devstate::device_state(d) == DeviceState::UNAVAILABLE;
            let mut tracker = rt.unregistered.lock().unwrap_or_else(|e| e.into_inner());
            tracker.seen(&b.device, unavailable, now);
        }
    }
}

/// Stops following the states `dials` name (devices commits freed) unless a device dialled
/// so is bound again. Deferred work: the table decides, read under the followed-devices
/// lock, so a device bound again meanwhile (its login follows it under that lock after
/// committing), or another device given the dial by a reload, keeps the forward.
pub fn release_dials(dials: &[CompactString]) {
    let Some(rt) = current() else { return };
    for dial in dials {
        devstate::unwatch_unless(dial, || dial_bound(&rt.table.snapshot(), dial));
    }
}

/// Whether a device dialled as `dial` is bound in `snap`.
fn dial_bound(snap: &Snapshot, dial: &str) -> bool {
    snap.config()
        .device_for_dial(dial)
        .is_some_and(|d| snap.user_on(&d.id).is_some())
}

/// The dial strings of the bound devices in `snap`.
fn bound_dials(snap: &Snapshot) -> Vec<String> {
    snap.bindings()
        .into_iter()
        .filter_map(|b| snap.config().device(&b.device).map(|d| d.dial.to_string()))
        .collect()
}

/// Follows the state of exactly the bound devices (after load and reload). The set is read
/// under the followed-devices lock, so a login committed meanwhile (which follows its device
/// under that lock) is in it or follows its device after.
pub fn watch_bound_devices() {
    let Some(rt) = current() else { return };
    devstate::watch_only(|| bound_dials(&rt.table.snapshot()));
}

/// Publishes the state of every user that is on a device or in DND (see [`announce`]).
pub fn publish_active_users() {
    if let Some(snap) = with(|rt| rt.table.snapshot()) {
        publish_users(active_users(&snap).into_iter());
    }
}

/// Users whose `DeviceUser:` state is not simply UNAVAILABLE.
fn active_users(snap: &Snapshot) -> Vec<String> {
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

/// Unload: forget the runtime, remove owned hints, and leave no stale cached states.
pub fn stop() {
    let old = RUNTIME.set(None);
    deferred::stop();
    journal::close();
    if let Some(rt) = old.as_deref() {
        let snap = rt.table.snapshot();
        if let Some(ctx) = &snap.config().general.hint_context {
            clear_hints(ctx);
        }
        publish_users_state(active_users(&snap).into_iter(), DeviceState::UNAVAILABLE);
    }
    *published() = None;
}

/// `module reload`: a bad file keeps the running config.
pub fn reload() -> Result<(), String> {
    let current = current();
    let Some(rt) = current.as_ref() else {
        return Err("not loaded".into());
    };
    let config = read_config().map_err(|e| {
        log::error(&format!("{e}; keeping the running configuration"));
        e
    })?;
    let old = rt.table.snapshot();
    let changes = rt.table.reconfigure(config, now(), commit);
    for (b, reason) in &changes.removed {
        log::notice(&format!(
            "reload: user {} logged out of device {} ({reason})",
            b.user, b.device
        ));
    }
    let new = rt.table.snapshot();
    rt.stats
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain_configured(new.config());
    rt.unregistered
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain_configured(new.config());
    sync_hints(Some(old.config()), new.config());
    watch_bound_devices();
    // Users whose bindings changed, and everyone still active (a device's dial string may
    // have changed under an unchanged binding).
    let mut users = active_users(&new);
    users.extend(changes.affected_users());
    users.sort();
    users.dedup();
    publish_users(users.into_iter());
    // Users that disappeared show as unavailable rather than keeping a stale cached state.
    publish_users_state(
        old.config()
            .users
            .keys()
            .filter(|u| new.config().user(u).is_none())
            .map(str::to_string),
        DeviceState::UNAVAILABLE,
    );
    log::verbose(2, &format!("reloaded {CONFIG_FILE}"));
    Ok(())
}

/// Brings the module's hints in line with `new`: one walk of each context involved finds the
/// hints the module has there; those of users no longer configured (all of them in a context
/// no longer used) are removed, and only the missing ones are added. So a `module reload`
/// touches only the users added or removed. Hints are added and removed in the order that
/// costs Asterisk least (see [`dialplan`](deviceuser_core::dialplan)).
fn sync_hints(old: Option<&Config>, new: &Config) {
    let ctx = new.general.hint_context.as_deref();
    if let Some(old_ctx) = old.and_then(|c| c.general.hint_context.as_deref()) {
        if ctx != Some(old_ctx) {
            clear_hints(old_ctx);
        }
    }
    let Some(ctx) = ctx else { return };
    let present: FxHashMap<String, String> = hints::owned(ctx).into_iter().collect();
    remove_hints(
        ctx,
        (present.keys()).filter(|u| new.user(u).is_none()).cloned(),
    );
    let mut missing: Vec<&str> = (new.users.keys())
        .filter(|u| {
            present
                .get(*u)
                .and_then(|d| d.strip_prefix(USER_STATE_PREFIX))
                != Some(*u)
        })
        .collect();
    dialplan::sort_for_adding(&mut missing);
    for user in missing {
        if let Err(e) = hints::add(ctx, user, &device_name(user)) {
            log::warning(&e);
        }
    }
}

/// Removes every hint the module has in `ctx`.
fn clear_hints(ctx: &str) {
    remove_hints(ctx, hints::owned(ctx).into_iter().map(|(u, _)| u));
}

/// Removes the module's hints of `users` from `ctx`, in ascending order.
fn remove_hints(ctx: &str, users: impl Iterator<Item = String>) {
    let mut users: Vec<String> = users.collect();
    dialplan::sort_for_removing(&mut users);
    for user in &users {
        hints::remove(ctx, user);
    }
}

/// `DeviceUser:<user>`, the name hints use.
pub fn device_name(user: &str) -> String {
    format!("{USER_STATE_PREFIX}{user}")
}

/// AstDB writes of one commit: removals first, then additions.
fn write_through(changes: &Changes, work: &mut deferred::Work) {
    for (b, _) in &changes.removed {
        if !changes.added.iter().any(|(a, _)| a.device == b.device) {
            work.del(&binding_key(&b.device));
        }
    }
    for (b, _) in &changes.added {
        work.put(&binding_key(&b.device), &binding_value(b), "the login");
    }
}

/// The whole state as journal text.
fn full_state(s: &Snapshot) -> String {
    deviceuser_core::journal::full_state(s.bindings(), &s.dnd_users())
}

/// The current state as journal text (for compaction, under the writer lock).
fn current_state() -> String {
    with(|rt| full_state(&rt.table.snapshot())).unwrap_or_default()
}

/// Runs under the table's writer lock after each commit: persist, publish, count, log.
pub fn commit(changes: &Changes) {
    journal::append(
        &deviceuser_core::journal::entries_for(changes),
        current_state,
    );
    let mut work = deferred::Work::default();
    write_through(changes, &mut work);
    let now = now();
    with(|rt| follow_changes(rt, changes, now, &mut work));
    with(|rt| {
        rt.stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .apply(changes, now)
    });
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
                b.user, b.device
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
                b.user, b.device
            )
        });
    }
    work.publish(changes.affected_users().into_iter());
    deferred::submit(work);
}

/// A refused login: a security-style warning and an AMI event. Never carries the password.
pub fn login_failed(device: &str, user: Option<&str>, reason: &str) {
    log::warning(&format!(
        "SecurityEvent=\"FailedLogin\" Service=\"res_deviceuser\" Device=\"{device}\" User=\"{}\" Reason=\"{reason}\"",
        user.unwrap_or("")
    ));
    let mut fields = vec![("Device", device.to_string())];
    if let Some(u) = user {
        fields.push(("User", u.to_string()));
    }
    fields.push(("Reason", reason.to_string()));
    ami::event("DeviceUserLoginFailed", &fields);
}

/// The state of `DeviceUser:<user>`: Asterisk's aggregate of the user's devices, UNAVAILABLE
/// on none, INVALID for an unknown user. `changed` overrides one device's state with the one
/// a change message carries (the cache may not have it yet).
pub fn user_state(
    snap: &Snapshot,
    user: &str,
    changed: Option<(&str, DeviceState)>,
) -> DeviceState {
    if snap.config().user(user).is_none() {
        return DeviceState::INVALID;
    }
    if snap.dnd(user) {
        return DeviceState::BUSY;
    }
    let devices = snap.devices_of(user);
    if devices.is_empty() {
        return DeviceState::UNAVAILABLE;
    }
    let mut agg = Aggregate::new();
    for id in devices {
        let Some(dev) = snap.config().device(id) else {
            continue;
        };
        let state = match changed {
            Some((dial, st)) if dial.eq_ignore_ascii_case(&dev.dial) => st,
            _ => devstate::device_state(&dev.dial),
        };
        agg.add(state);
    }
    agg.result()
}

pub fn publish_users<S: AsRef<str>>(users: impl Iterator<Item = S>) {
    publish_users_if(users, false);
}

/// Publishes the states of users that commits changed, each even when it equals the last
/// state published. Asterisk's hint engine asks the provider (the live table) whenever it
/// handles a message for the user's device, so while the commits of one batch were made it
/// may have shown a state that was never published (a login and a logout taken together,
/// say, with the device ringing in between); publishing again makes it ask once more, after
/// the last of them.
pub fn publish_committed<S: AsRef<str>>(users: impl Iterator<Item = S>) {
    publish_users_if(users, true);
}

fn publish_users_if<S: AsRef<str>>(users: impl Iterator<Item = S>, always: bool) {
    let mut published = published();
    let Some(snap) = with(|rt| rt.table.snapshot()) else {
        return;
    };
    for user in users {
        let user = user.as_ref();
        publish_user(&mut published, user, user_state(&snap, user, None), always);
    }
}

fn publish_users_state(users: impl Iterator<Item = String>, state: DeviceState) {
    let mut published = published();
    for user in users {
        publish_user(&mut published, &user, state, false);
    }
}

/// A followed (bound) device's state changed: publish its user's state again. One snapshot,
/// taken under the publish lock, so the state published is never older than the last one.
pub fn device_changed(dial: &str, state: DeviceState) {
    let rt = current();
    let Some(rt) = rt.as_ref() else { return };
    let mut published = published();
    let snap = rt.table.snapshot();
    let Some(dev) = snap.config().device_for_dial(dial) else {
        return;
    };
    if any_unregister_policy(snap.config()) {
        let mut tracker = rt.unregistered.lock().unwrap_or_else(|e| e.into_inner());
        tracker.seen(&dev.id, state == DeviceState::UNAVAILABLE, now());
    }
    let Some(b) = snap.user_on(&dev.id) else {
        return;
    };
    let state = user_state(&snap, &b.user, Some((dial, state)));
    publish_user(&mut published, &b.user, state, false);
}

/// Turns a user's do-not-disturb on or off: persisted, published (BUSY while on), announced.
pub fn set_dnd(rt: &Runtime, user: &str, on: bool) -> Result<bool, String> {
    rt.table
        .set_dnd_with(user, on, |user, on| {
            journal::append(
                &[deviceuser_core::journal::Entry::Dnd(user.to_string(), on)],
                current_state,
            );
            let mut work = deferred::Work::default();
            if on {
                work.put(&dnd_key(user), DND_VALUE, "DND");
            } else {
                work.del(&dnd_key(user));
            }
            ami::event(
                "DeviceUserDND",
                &[
                    ("User", user.to_string()),
                    ("DND", if on { "on" } else { "off" }.to_string()),
                ],
            );
            log::verbose_with(3, || {
                format!(
                    "user {user}: do not disturb {}",
                    if on { "on" } else { "off" }
                )
            });
            work.publish(std::iter::once(user.to_string()));
            deferred::submit(work);
        })
        .map_err(|e| e.to_string())
}

/// Parses a DND value given by an administrator or the dialplan.
pub fn parse_on_off(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "on" | "yes" | "true" => Some(true),
        "0" | "off" | "no" | "false" => Some(false),
        _ => None,
    }
}
