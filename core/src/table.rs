//! The binding table: which user is on which device.
//!
//! Every incoming call looks up a user's devices, so reads must never wait: the current state
//! is an immutable [`Snapshot`] in a [`SnapshotCell`], and readers just load it (wait-free, and
//! with no thread-local state: this code runs on the host's threads inside a loadable module). Writers
//! (logins, logouts, reloads) are rare; they serialize on a mutex, copy the snapshot (cheap:
//! its maps are persistent ([`PMap`]), so a change copies only the path to the entry it
//! changes, a few KB even with 100,000 bindings), change the copy and publish it atomically. The host is told what changed through `on_commit`,
//! called under the writer lock, so its AstDB writes happen in the same order as the commits.
//!
//! Two maps are kept, device → binding and user → devices, and every change goes through
//! [`Tx::bind`] and [`Tx::unbind`], which update both, so they always mirror each other.

use std::fmt;
use std::sync::Arc;

use compact_str::CompactString;

use snapcell::SnapshotCell;
use std::sync::Mutex;

use crate::config::{Config, DeviceMode, MultipleLogins};
use crate::pmap::PMap;

/// A user logged in on a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// Ids are inline (up to 24 bytes): a binding is one allocation.
    pub user: CompactString,
    pub device: CompactString,
    /// When the binding was made, in unix seconds.
    pub since: u64,
}

impl Binding {
    pub fn new(
        user: impl Into<CompactString>,
        device: impl Into<CompactString>,
        since: u64,
    ) -> Self {
        Binding {
            user: user.into(),
            device: device.into(),
            since,
        }
    }
}

/// Why a binding was made or removed; shown in logs, events and the CLI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The user logged in or out themselves.
    Manual,
    /// Someone else took the device, or the user logged in elsewhere with `multiple_logins=replace`.
    Replaced,
    Timeout,
    /// The device's registration went away.
    Unregistered,
    /// An administrator (CLI, AMI) did it.
    Admin,
    /// A config reload or a restore from AstDB did it.
    Config,
    ShiftEnd,
    /// The device was given back to its default user (or is a fixed device's permanent binding).
    Default,
    /// Another node made the change (read from the shared database).
    Remote,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reason::Manual => "manual",
            Reason::Replaced => "replaced",
            Reason::Timeout => "timeout",
            Reason::Unregistered => "unregistered",
            Reason::Admin => "admin",
            Reason::Config => "config",
            Reason::ShiftEnd => "shift-end",
            Reason::Default => "default",
            Reason::Remote => "remote",
        })
    }
}

/// Why reloading `new` over `old` drops the login `b` (a binding [`BindingTable::reconfigure`]
/// removes), for the warning each such login gets.
pub fn reload_drop_reason(old: &Config, new: &Config, b: &Binding) -> String {
    let Some(device) = new.device(&b.device) else {
        return "device removed from the configuration".into();
    };
    if new.user(&b.user).is_none() {
        return "user removed from the configuration".into();
    }
    match (device.mode, device.default_user.as_deref()) {
        (DeviceMode::Fixed, Some(du)) if du != b.user => {
            format!("device is now fixed to user {du}")
        }
        _ => {
            let old_default = old
                .device(&b.device)
                .and_then(|d| d.default_user.as_deref());
            match device.default_user.as_deref() {
                Some(du) if old_default == Some(b.user.as_str()) => {
                    format!("device's default user is now {du}")
                }
                _ if old_default == Some(b.user.as_str()) => {
                    "no longer the device's default user".into()
                }
                _ => "configuration changed".into(),
            }
        }
    }
}

/// Map keys: device and user ids, stored inline when short (up to 24 bytes, which ids
/// nearly always are), so comparing a key during a lookup reads the map's own leaf rather
/// than another heap allocation. Keys are only ever inserted from the validated config, so
/// the map's fast non-keyed hash cannot be flooded from outside.
type Key = CompactString;

/// The devices a user is on, and what to dial to ring them all. Copied whenever a write
/// rebuilds the map leaf it is in; with one device (nearly always) it is all inline.
#[derive(Clone, Debug)]
struct UserDevices {
    devices: Devices,
    /// The devices' dial strings joined by `&`, in device order; rebuilt by every write of
    /// `devices`, so a call reads it without building anything.
    dial: CompactString,
}

/// A user's devices, sorted.
#[derive(Clone, Debug)]
enum Devices {
    One(Key),
    Many(Arc<[Key]>),
}

impl Devices {
    fn as_slice(&self) -> &[Key] {
        match self {
            Devices::One(d) => std::slice::from_ref(d),
            Devices::Many(ds) => ds,
        }
    }
}

impl UserDevices {
    fn new(mut devices: Vec<Key>, config: &Config) -> Self {
        let mut dial = CompactString::default();
        for d in devices.iter().filter_map(|d| config.device(d)) {
            if !dial.is_empty() {
                dial.push('&');
            }
            dial.push_str(&d.dial);
        }
        let devices = match devices.len() {
            1 => Devices::One(devices.remove(0)),
            _ => Devices::Many(devices.into()),
        };
        UserDevices { devices, dial }
    }

    fn devices(&self) -> &[Key] {
        self.devices.as_slice()
    }
}

/// An immutable view of the configuration and all bindings at one instant.
#[derive(Clone, Debug)]
pub struct Snapshot {
    config: Arc<Config>,
    /// Bindings inline (ids are inline too): a binding costs no allocation of its own.
    by_device: PMap<Key, Binding>,
    /// A call's `dial` read goes from the map's leaf straight to the string.
    by_user: PMap<Key, UserDevices>,
    /// Users with do-not-disturb on; always configured users.
    dnd: PMap<Key, ()>,
}

impl Snapshot {
    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn config_arc(&self) -> Arc<Config> {
        Arc::clone(&self.config)
    }

    pub fn user_on(&self, device: &str) -> Option<&Binding> {
        self.by_device.get(device)
    }

    /// Devices the user is on, sorted by id.
    pub fn devices_of(&self, user: &str) -> Vec<&str> {
        self.by_user
            .get(user)
            .map(|u| u.devices().iter().map(Key::as_str).collect())
            .unwrap_or_default()
    }

    /// What to put in `Dial()` to ring the user everywhere they are: the dial strings of their
    /// devices joined by `&`, sorted by device id; empty when the user is nowhere. Borrowed
    /// from the snapshot: nothing is built or allocated.
    pub fn dial(&self, user: &str) -> &str {
        self.by_user.get(user).map_or("", |u| &u.dial)
    }

    /// [`dial`](Self::dial), owned.
    pub fn dial_of(&self, user: &str) -> String {
        self.dial(user).to_string()
    }

    /// [`dial`](Self::dial) of the user's devices for which `keep` holds (e.g. devices of
    /// nodes that are up).
    pub fn dial_where(&self, user: &str, keep: impl Fn(&crate::config::Device) -> bool) -> String {
        let mut dial = String::new();
        for d in self.devices_of(user) {
            let Some(dev) = self.config.device(d).filter(|d| keep(d)) else {
                continue;
            };
            if !dial.is_empty() {
                dial.push('&');
            }
            dial.push_str(&dev.dial);
        }
        dial
    }

    /// All bindings, sorted by user then device.
    pub fn bindings(&self) -> Vec<&Binding> {
        let mut users: Vec<(&Key, &UserDevices)> = self.by_user.iter().collect();
        users.sort_unstable_by(|a, b| a.0.cmp(b.0));
        users
            .into_iter()
            .flat_map(|(_, u)| u.devices().iter().filter_map(|d| self.user_on(d)))
            .collect()
    }

    pub fn binding_count(&self) -> usize {
        self.by_device.len()
    }

    /// Whether the user has do-not-disturb on (false for unknown users).
    pub fn dnd(&self, user: &str) -> bool {
        self.dnd.contains_key(user)
    }

    /// Users with do-not-disturb on, sorted.
    pub fn dnd_users(&self) -> Vec<&str> {
        let mut users: Vec<&str> = self.dnd.iter().map(|(u, _)| u.as_str()).collect();
        users.sort_unstable();
        users
    }

    /// A fixed device's binding to its default user, which no login or logout may remove.
    fn is_permanent(&self, device: &str, user: &str) -> bool {
        self.config
            .device(device)
            .is_some_and(|d| d.mode == DeviceMode::Fixed && d.default_user.as_deref() == Some(user))
    }
}

/// How a login was requested; decides which rules apply and the reason recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginMode {
    /// From the phone: the user must have a PIN (checked by the caller).
    Interactive,
    /// From the CLI or AMI: no PIN needed.
    Admin,
}

/// What a write did, in order: removals, then additions.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    pub removed: Vec<(Binding, Reason)>,
    pub added: Vec<(Binding, Reason)>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.removed.is_empty() && self.added.is_empty()
    }

    /// Users whose devices changed (their hints and dial strings need refreshing); sorted.
    pub fn affected_users(&self) -> Vec<String> {
        self.collect(|b| &b.user)
    }

    /// Devices whose user changed; sorted.
    pub fn affected_devices(&self) -> Vec<String> {
        self.collect(|b| &b.device)
    }

    fn collect(&self, field: impl Fn(&Binding) -> &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .removed
            .iter()
            .chain(&self.added)
            .map(|(b, _)| field(b).to_string())
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

/// Why a durable store (the shared database of `storage = realtime`) refused to write a
/// commit; nothing of it is published then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The store holds something else than this node's table for a row the commit changes
    /// (another node changed it): read it again and decide again.
    Conflict(String),
    /// The store cannot be written now.
    Unavailable(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Conflict(m) => write!(f, "changed on another node meanwhile ({m})"),
            StoreError::Unavailable(m) => write!(f, "the database is unavailable ({m})"),
        }
    }
}

impl std::error::Error for StoreError {}

/// A refusal that may come from the durable store.
pub trait StoreRefusal {
    /// The store's error, if the store refused the change.
    fn store_error(&self) -> Option<&StoreError>;

    /// Whether another node changed a row meanwhile (reading the store again may help).
    fn is_conflict(&self) -> bool {
        matches!(self.store_error(), Some(StoreError::Conflict(_)))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginError {
    NoSuchUser,
    NoSuchDevice,
    FixedDevice,
    /// The user has no PIN, so cannot log in from a phone.
    NoPassword,
    /// `multiple_logins = no` and the user is already on another device.
    Denied,
    /// The durable store refused the change: nothing changed.
    Store(StoreError),
}

/// A refusal as text: the store's, or the fixed `text` of the others.
fn refusal(f: &mut fmt::Formatter<'_>, text: Result<&str, &StoreError>) -> fmt::Result {
    match text {
        Ok(t) => f.write_str(t),
        Err(e) => write!(f, "not saved, nothing changed: {e}"),
    }
}

impl fmt::Display for LoginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        refusal(
            f,
            match self {
                LoginError::NoSuchUser => Ok("no such user"),
                LoginError::NoSuchDevice => Ok("no such device"),
                LoginError::FixedDevice => Ok("device is fixed to its default user"),
                LoginError::NoPassword => Ok("user has no password"),
                LoginError::Denied => Ok("user is already logged in on another device"),
                LoginError::Store(e) => Err(e),
            },
        )
    }
}

impl std::error::Error for LoginError {}

impl StoreRefusal for LoginError {
    fn store_error(&self) -> Option<&StoreError> {
        match self {
            LoginError::Store(e) => Some(e),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogoutError {
    NoSuchUser,
    NoSuchDevice,
    NotLoggedIn,
    /// The default user of a fixed device cannot be logged out.
    FixedDevice,
    /// The durable store refused the change: nothing changed.
    Store(StoreError),
}

impl fmt::Display for LogoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        refusal(
            f,
            match self {
                LogoutError::NoSuchUser => Ok("no such user"),
                LogoutError::NoSuchDevice => Ok("no such device"),
                LogoutError::NotLoggedIn => Ok("not logged in"),
                LogoutError::FixedDevice => Ok("device is fixed to its default user"),
                LogoutError::Store(e) => Err(e),
            },
        )
    }
}

impl std::error::Error for LogoutError {}

impl StoreRefusal for LogoutError {
    fn store_error(&self) -> Option<&StoreError> {
        match self {
            LogoutError::Store(e) => Some(e),
            _ => None,
        }
    }
}

/// A writer's working copy; all changes to the maps go through `bind` and `unbind`.
struct Tx {
    next: Snapshot,
    changes: Changes,
    /// Something must be published even if `changes` is empty (new config, new `since`).
    dirty: bool,
}

impl Tx {
    fn bind(&mut self, b: Binding, reason: Reason) {
        debug_assert!(!self.next.by_device.contains_key(b.device.as_str()));
        let next = &mut self.next;
        let mut devices: Vec<Key> = next
            .by_user
            .get(b.user.as_str())
            .map(|u| u.devices().to_vec())
            .unwrap_or_default();
        if let Err(at) = devices.binary_search_by(|d| d.as_str().cmp(&b.device)) {
            devices.insert(at, b.device.clone());
        }
        let entry = UserDevices::new(devices, &next.config);
        next.by_user.insert(b.user.clone(), entry);
        self.next.by_device.insert(b.device.clone(), b.clone());
        self.changes.added.push((b, reason));
        self.dirty = true;
    }

    fn unbind(&mut self, device: &str, reason: Reason) -> Option<Binding> {
        let b = self.next.by_device.remove(device)?;
        if let Some(entry) = self.next.by_user.get(b.user.as_str()) {
            let devices: Vec<Key> = entry
                .devices()
                .iter()
                .filter(|d| d.as_str() != device)
                .cloned()
                .collect();
            if devices.is_empty() {
                self.next.by_user.remove(b.user.as_str());
            } else {
                let entry = UserDevices::new(devices, &self.next.config);
                self.next.by_user.insert(b.user.clone(), entry);
            }
        }
        self.changes.removed.push((b.clone(), reason));
        self.dirty = true;
        Some(b)
    }

    /// Removes the device's user and gives the device back to its default user, unless the
    /// user leaving is that default user (then the device stays empty).
    fn release(&mut self, device: &str, reason: Reason, now: u64) {
        let Some(old) = self.unbind(device, reason) else {
            return;
        };
        let default = self
            .next
            .config
            .device(device)
            .and_then(|d| d.default_user.clone());
        if let Some(du) = default.filter(|du| *du != old.user) {
            self.bind(Binding::new(du, device, now), Reason::Default);
        }
    }

    /// The user's devices other than `except` that a login or logout may take away.
    fn movable_devices_of(&self, user: &str, except: &str) -> Vec<String> {
        self.next
            .devices_of(user)
            .into_iter()
            .filter(|d| *d != except && !self.next.is_permanent(d, user))
            .map(str::to_string)
            .collect()
    }
}

/// The live binding table shared by all Asterisk threads.
pub struct BindingTable {
    current: SnapshotCell<Snapshot>,
    writer: Mutex<()>,
}

impl BindingTable {
    /// Starts with every device that has a `default_user` (fixed or adhoc) bound to it.
    pub fn new(config: Config, now: u64) -> Self {
        let mut tx = Tx {
            next: Snapshot {
                config: Arc::new(config),
                by_device: PMap::default(),
                by_user: PMap::default(),
                dnd: PMap::default(),
            },
            changes: Changes::default(),
            dirty: false,
        };
        let defaults: Vec<(String, String)> = tx
            .next
            .config
            .devices
            .values()
            .filter_map(|d| Some((d.id.to_string(), d.default_user.as_deref()?.to_string())))
            .collect();
        for (device, user) in defaults {
            tx.bind(Binding::new(user, device, now), Reason::Default);
        }
        BindingTable {
            current: SnapshotCell::new(Arc::new(tx.next)),
            writer: Mutex::new(()),
        }
    }

    /// The current state, to keep (lock-free).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load()
    }

    /// Runs `f` on the current state without even cloning the `Arc`; for short reads on the
    /// call path. Do not block inside `f`.
    pub fn with_snapshot<R>(&self, f: impl FnOnce(&Snapshot) -> R) -> R {
        self.current.with(f)
    }

    /// Runs one write: copy, change, publish, then `on_commit` (only if bindings changed),
    /// all under the writer lock. Nothing is published when `f` fails.
    fn transact<R, E>(
        &self,
        on_commit: impl FnOnce(&Changes),
        f: impl FnOnce(&mut Tx) -> Result<R, E>,
    ) -> Result<(Changes, R), E> {
        self.transact_durable(|_, _| Ok(()), on_commit, f)
    }

    /// [`transact`](Self::transact) with a durable store: once `f` has decided, and before
    /// anything is published, `durable` gets the next state and the changes; if it fails,
    /// nothing is published and its error is returned.
    fn transact_durable<R, E>(
        &self,
        durable: impl FnOnce(&Snapshot, &Changes) -> Result<(), E>,
        on_commit: impl FnOnce(&Changes),
        f: impl FnOnce(&mut Tx) -> Result<R, E>,
    ) -> Result<(Changes, R), E> {
        let _guard = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut tx = Tx {
            next: Snapshot::clone(&self.current.load()),
            changes: Changes::default(),
            dirty: false,
        };
        let r = f(&mut tx)?;
        if !tx.changes.is_empty() {
            durable(&tx.next, &tx.changes)?;
        }
        if tx.dirty {
            self.current.store(Arc::new(tx.next));
        }
        if !tx.changes.is_empty() {
            on_commit(&tx.changes);
        }
        Ok((tx.changes, r))
    }

    /// Logs `user` in on `device`. The PIN is checked by the caller before this; here only the
    /// policy applies. Logging in where one already is succeeds with no changes.
    /// `multiple_logins` only counts bindings a user can lose: a fixed device's permanent
    /// binding never blocks a login elsewhere and is never replaced.
    pub fn login(
        &self,
        user: &str,
        device: &str,
        mode: LoginMode,
        now: u64,
        on_commit: impl FnOnce(&Changes),
    ) -> Result<Changes, LoginError> {
        self.login_durable(user, device, mode, now, |_, _| Ok(()), on_commit)
    }

    /// [`login`](Self::login) written to a durable store before it is published (see
    /// [`StoreError`]).
    pub fn login_durable(
        &self,
        user: &str,
        device: &str,
        mode: LoginMode,
        now: u64,
        durable: impl FnOnce(&Snapshot, &Changes) -> Result<(), StoreError>,
        on_commit: impl FnOnce(&Changes),
    ) -> Result<Changes, LoginError> {
        let durable = |s: &Snapshot, c: &Changes| durable(s, c).map_err(LoginError::Store);
        self.transact_durable(durable, on_commit, |tx| {
            let cfg = Arc::clone(&tx.next.config);
            let u = cfg.user(user).ok_or(LoginError::NoSuchUser)?;
            let d = cfg.device(device).ok_or(LoginError::NoSuchDevice)?;
            if d.mode == DeviceMode::Fixed {
                return Err(LoginError::FixedDevice);
            }
            if mode == LoginMode::Interactive && u.password.is_none() {
                return Err(LoginError::NoPassword);
            }
            if tx.next.user_on(device).is_some_and(|b| b.user == user) {
                return Ok(());
            }
            let others = tx.movable_devices_of(user, device);
            match cfg.general.multiple_logins {
                MultipleLogins::No if !others.is_empty() => return Err(LoginError::Denied),
                MultipleLogins::Replace => {
                    for other in &others {
                        tx.release(other, Reason::Replaced, now);
                    }
                }
                _ => {}
            }
            tx.unbind(device, Reason::Replaced);
            let reason = match mode {
                LoginMode::Interactive => Reason::Manual,
                LoginMode::Admin => Reason::Admin,
            };
            tx.bind(Binding::new(user, device, now), reason);
            Ok(())
        })
        .map(|(c, ())| c)
    }

    /// Logs whoever is on `device` off; the device goes back to its default user, if any.
    pub fn logout_device(
        &self,
        device: &str,
        reason: Reason,
        now: u64,
        on_commit: impl FnOnce(&Changes),
    ) -> Result<Changes, LogoutError> {
        self.logout_device_durable(device, reason, now, |_, _| Ok(()), on_commit)
    }

    /// [`logout_device`](Self::logout_device) written to a durable store first.
    pub fn logout_device_durable(
        &self,
        device: &str,
        reason: Reason,
        now: u64,
        durable: impl FnOnce(&Snapshot, &Changes) -> Result<(), StoreError>,
        on_commit: impl FnOnce(&Changes),
    ) -> Result<Changes, LogoutError> {
        let durable = |s: &Snapshot, c: &Changes| durable(s, c).map_err(LogoutError::Store);
        self.transact_durable(durable, on_commit, |tx| {
            let d = tx
                .next
                .config
                .device(device)
                .ok_or(LogoutError::NoSuchDevice)?;
            let fixed = d.mode == DeviceMode::Fixed;
            if tx.next.user_on(device).is_none() {
                return Err(LogoutError::NotLoggedIn);
            }
            if fixed {
                return Err(LogoutError::FixedDevice);
            }
            tx.release(device, reason, now);
            Ok(())
        })
        .map(|(c, ())| c)
    }

    /// Logs `user` off every device they can be logged off (not their fixed devices).
    pub fn logout_user(
        &self,
        user: &str,
        reason: Reason,
        now: u64,
        on_commit: impl FnOnce(&Changes),
    ) -> Result<Changes, LogoutError> {
        self.logout_user_durable(user, reason, now, |_, _| Ok(()), on_commit)
    }

    /// [`logout_user`](Self::logout_user) written to a durable store first.
    pub fn logout_user_durable(
        &self,
        user: &str,
        reason: Reason,
        now: u64,
        durable: impl FnOnce(&Snapshot, &Changes) -> Result<(), StoreError>,
        on_commit: impl FnOnce(&Changes),
    ) -> Result<Changes, LogoutError> {
        let durable = |s: &Snapshot, c: &Changes| durable(s, c).map_err(LogoutError::Store);
        self.transact_durable(durable, on_commit, |tx| {
            if tx.next.config.user(user).is_none() {
                return Err(LogoutError::NoSuchUser);
            }
            let devices = tx.movable_devices_of(user, "");
            if devices.is_empty() {
                return Err(LogoutError::NotLoggedIn);
            }
            for d in &devices {
                tx.release(d, reason, now);
            }
            Ok(())
        })
        .map(|(c, ())| c)
    }

    /// Ends every login on an adhoc device, default users' included, and gives no device
    /// back to its default user: afterwards only fixed devices have a user. Err(NotLoggedIn)
    /// when there was none to end.
    pub fn logout_all(
        &self,
        reason: Reason,
        on_commit: impl FnOnce(&Changes),
    ) -> Result<Changes, LogoutError> {
        self.transact(on_commit, |tx| {
            let mut devices: Vec<String> = (tx.next.by_device.values())
                .filter(|b| {
                    (tx.next.config.device(&b.device)).is_some_and(|d| d.mode == DeviceMode::Adhoc)
                })
                .map(|b| b.device.to_string())
                .collect();
            if devices.is_empty() {
                return Err(LogoutError::NotLoggedIn);
            }
            devices.sort_unstable();
            for d in &devices {
                tx.unbind(d, reason);
            }
            Ok(())
        })
        .map(|(c, ())| c)
    }

    /// Turns do-not-disturb on or off for `user`. Returns whether it changed. Bindings are
    /// never touched. See [`BindingTable::set_dnd_with`] to persist the change in order.
    pub fn set_dnd(&self, user: &str, on: bool) -> Result<bool, LoginError> {
        self.set_dnd_with(user, on, |_, _| {})
    }

    /// [`BindingTable::set_dnd`], calling `on_change(user, on)` under the writer lock when the
    /// state changed, so that AstDB writes happen in the same order as the changes.
    pub fn set_dnd_with(
        &self,
        user: &str,
        on: bool,
        on_change: impl FnOnce(&str, bool),
    ) -> Result<bool, LoginError> {
        let _guard = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let cur = self.current.load();
        if cur.config.user(user).is_none() {
            return Err(LoginError::NoSuchUser);
        }
        if cur.dnd(user) == on {
            return Ok(false);
        }
        let mut next = Snapshot::clone(&cur);
        if on {
            next.dnd.insert(user.into(), ());
        } else {
            next.dnd.remove(user);
        }
        self.current.store(Arc::new(next));
        on_change(user, on);
        Ok(true)
    }

    /// Turns do-not-disturb on for users saved in AstDB at the last shutdown (others keep
    /// their state). Users that are not configured are ignored and returned.
    pub fn restore_dnd(&self, users: Vec<String>) -> Vec<String> {
        let r = self.transact(
            |_| {},
            |tx| {
                let mut dropped = Vec::new();
                for u in users {
                    if tx.next.config.user(&u).is_none() {
                        dropped.push(u);
                    } else if tx.next.dnd.insert(u.into(), ()).is_none() {
                        tx.dirty = true;
                    }
                }
                Ok::<_, std::convert::Infallible>(dropped)
            },
        );
        match r {
            Ok((_, dropped)) => dropped,
            Err(never) => match never {},
        }
    }

    /// Puts back bindings saved in AstDB at the last shutdown. Those still valid keep their
    /// original `since` and replace whatever `new` put on the device (its default user);
    /// changes carry [`Reason::Config`]. An adhoc device whose default user had logged out is
    /// not in AstDB, so it stays with its default user. A `since` in the future becomes `now`.
    pub fn restore(
        &self,
        saved: Vec<Binding>,
        now: u64,
        on_commit: impl FnOnce(&Changes),
    ) -> (Changes, Vec<(Binding, String)>) {
        let r = self.transact(on_commit, |tx| {
            let cfg = Arc::clone(&tx.next.config);
            let mut seen = std::collections::BTreeSet::new();
            let mut dropped = Vec::new();
            for mut b in saved {
                // A clock that went backwards must not give a binding a negative age.
                b.since = b.since.min(now);
                let problem = if cfg.user(&b.user).is_none() {
                    Some(format!("user {} is not configured", b.user))
                } else if let Some(d) = cfg.device(&b.device) {
                    match &d.default_user {
                        Some(du) if d.mode == DeviceMode::Fixed && *du != b.user => {
                            Some(format!("device {} is fixed to user {du}", b.device))
                        }
                        _ => None,
                    }
                } else {
                    Some(format!("device {} is not configured", b.device))
                };
                let problem = problem.or_else(|| {
                    (!seen.insert(b.device.clone()))
                        .then(|| format!("duplicate binding for device {}", b.device))
                });
                if let Some(p) = problem {
                    dropped.push((b, p));
                    continue;
                }
                match tx.next.user_on(&b.device) {
                    Some(cur) if cur.user == b.user => {
                        if cur.since != b.since {
                            tx.next.by_device.insert(b.device.clone(), b);
                            tx.dirty = true;
                        }
                    }
                    cur => {
                        if cur.is_some() {
                            tx.unbind(&b.device, Reason::Config);
                        }
                        tx.bind(b, Reason::Config);
                    }
                }
            }
            Ok::<_, std::convert::Infallible>(dropped)
        });
        match r {
            Ok(r) => r,
            Err(never) => match never {},
        }
    }

    /// Makes the table what a shared store holds: every device that is not fixed gets the
    /// binding of its row in `rows`, or none if it has no row. `read` runs under the writer
    /// lock, so no commit of this node falls between reading the store and applying what
    /// was read. Changes carry [`Reason::Remote`]. Rows naming an unknown user or device, a
    /// fixed device, or a device twice are returned with why, and not applied.
    pub fn sync<E>(
        &self,
        read: impl FnOnce(&Snapshot) -> Result<Vec<Binding>, E>,
        on_commit: impl FnOnce(&Changes),
    ) -> Result<(Changes, Vec<(Binding, String)>), E> {
        self.transact(on_commit, |tx| {
            let rows = read(&tx.next)?;
            let cfg = Arc::clone(&tx.next.config);
            let mut want: std::collections::BTreeMap<Key, Binding> = Default::default();
            let mut dropped = Vec::new();
            for b in rows {
                let problem = if cfg.user(&b.user).is_none() {
                    Some(format!("user {} is not configured", b.user))
                } else {
                    match cfg.device(&b.device) {
                        None => Some(format!("device {} is not configured", b.device)),
                        Some(d) if d.mode == DeviceMode::Fixed => {
                            Some(format!("device {} is fixed", b.device))
                        }
                        Some(_) if want.contains_key(b.device.as_str()) => {
                            Some(format!("duplicate row for device {}", b.device))
                        }
                        Some(_) => None,
                    }
                };
                match problem {
                    Some(p) => dropped.push((b, p)),
                    None => {
                        want.insert(b.device.clone(), b);
                    }
                }
            }
            let adhoc: Vec<Key> = (cfg.devices.values())
                .filter(|d| d.mode == DeviceMode::Adhoc)
                .map(|d| d.id.clone())
                .collect();
            let mut bind = Vec::new();
            for device in adhoc {
                let want = want.remove(device.as_str());
                match (tx.next.user_on(&device).cloned(), want) {
                    (None, None) => {}
                    (Some(cur), Some(w)) if cur.user == w.user => {
                        if cur.since != w.since {
                            tx.next.by_device.insert(device.clone(), w);
                            tx.dirty = true;
                        }
                    }
                    (cur, w) => {
                        if cur.is_some() {
                            tx.unbind(&device, Reason::Remote);
                        }
                        bind.extend(w);
                    }
                }
            }
            for b in bind {
                tx.bind(b, Reason::Remote);
            }
            Ok(dropped)
        })
    }

    /// Switches to a reloaded config. Bindings whose user or device is gone, or whose device
    /// became fixed to someone else, are dropped ([`Reason::Config`]). Fixed devices are bound
    /// to their (possibly new) default user. An adhoc device gets its default user if it is
    /// empty and the default is new to it; if its default user changed while the old one
    /// was on it, the new default user takes over. An adhoc device left empty on purpose
    /// (default user logged out) stays empty. Do-not-disturb is kept for users that still
    /// exist.
    pub fn reconfigure(
        &self,
        config: Config,
        now: u64,
        on_commit: impl FnOnce(&Changes),
    ) -> Changes {
        let r = self.transact(on_commit, |tx| {
            let old = std::mem::replace(&mut tx.next.config, Arc::new(config));
            let cfg = Arc::clone(&tx.next.config);
            tx.dirty = true;
            let gone: Vec<Key> = (tx.next.dnd.iter())
                .map(|(u, _)| u)
                .filter(|u| cfg.user(u).is_none())
                .cloned()
                .collect();
            for u in gone {
                tx.next.dnd.remove(u.as_str());
            }
            let mut current: Vec<Binding> = (tx.next.by_device.values()).cloned().collect();
            current.sort_by(|a, b| a.device.cmp(&b.device));
            for b in current {
                let old_default = old
                    .device(&b.device)
                    .and_then(|d| d.default_user.as_deref());
                let keep = match cfg.device(&b.device) {
                    None => false,
                    Some(_) if cfg.user(&b.user).is_none() => false,
                    Some(d) => match d.mode {
                        DeviceMode::Fixed => d.default_user.as_deref() == Some(&b.user),
                        DeviceMode::Adhoc => {
                            old_default != Some(&b.user) || d.default_user.as_deref() == old_default
                        }
                    },
                };
                if !keep {
                    tx.unbind(&b.device, Reason::Config);
                }
            }
            for d in cfg.devices.values() {
                let Some(du) = &d.default_user else { continue };
                if tx.next.user_on(&d.id).is_some() {
                    continue;
                }
                let old_default = old.device(&d.id).map(|o| o.default_user.as_ref());
                if d.mode == DeviceMode::Fixed || old_default != Some(Some(du)) {
                    tx.bind(Binding::new(du.clone(), d.id.clone(), now), Reason::Default);
                }
            }
            // Devices that stayed may dial differently now.
            let users: Vec<(Key, UserDevices)> = tx
                .next
                .by_user
                .iter()
                .map(|(u, e)| (u.clone(), UserDevices::new(e.devices().to_vec(), &cfg)))
                .collect();
            for (u, entry) in users {
                tx.next.by_user.insert(u, entry);
            }
            Ok::<_, std::convert::Infallible>(())
        });
        match r {
            Ok((c, ())) => c,
            Err(never) => match never {},
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{raw, sample};
    use crate::config::{RawConfig, RawSection, RawVar};
    use proptest::prelude::*;

    fn nop(_: &Changes) {}

    fn pairs(s: &Snapshot) -> Vec<(String, String)> {
        s.bindings()
            .into_iter()
            .map(|b| (b.user.to_string(), b.device.to_string()))
            .collect()
    }

    fn with_policy(policy: &str) -> Config {
        let mut c = sample();
        c.general.multiple_logins = match policy {
            "no" => MultipleLogins::No,
            "replace" => MultipleLogins::Replace,
            _ => MultipleLogins::Yes,
        };
        c
    }

    fn b(user: &str, device: &str, since: u64) -> Binding {
        Binding::new(user, device, since)
    }

    #[test]
    fn new_binds_defaults() {
        let t = BindingTable::new(sample(), 5);
        let s = t.snapshot();
        assert_eq!(s.user_on("2010"), Some(&b("2010", "2010", 5)));
        assert_eq!(s.user_on("lobby"), Some(&b("100", "lobby", 5)));
        assert_eq!(s.user_on("1000"), None);
        assert_eq!(s.binding_count(), 2);
    }

    #[test]
    fn login_and_logout() {
        let t = BindingTable::new(sample(), 0);
        let mut committed = None;
        let c = t
            .login("101", "1000", LoginMode::Interactive, 10, |c| {
                committed = Some(c.clone())
            })
            .unwrap();
        assert_eq!(c.added, vec![(b("101", "1000", 10), Reason::Manual)]);
        assert!(c.removed.is_empty());
        assert_eq!(committed, Some(c));
        assert_eq!(t.with_snapshot(|s| s.dial_of("101")), "PJSIP/1000");

        // Same login again: success, nothing changes, on_commit not called.
        let c = t
            .login("101", "1000", LoginMode::Interactive, 11, |_| {
                panic!("no commit")
            })
            .unwrap();
        assert!(c.is_empty());

        t.login("101", "1001", LoginMode::Admin, 12, nop).unwrap();
        let s = t.snapshot();
        assert_eq!(s.devices_of("101"), vec!["1000", "1001"]);
        assert_eq!(s.dial_of("101"), "PJSIP/1000&SIP/phone1001");
        assert_eq!(s.user_on("1001").unwrap().since, 12);

        let c = t.logout_device("1000", Reason::Manual, 13, nop).unwrap();
        assert_eq!(c.removed, vec![(b("101", "1000", 10), Reason::Manual)]);
        assert_eq!(
            t.logout_device("1000", Reason::Manual, 13, nop),
            Err(LogoutError::NotLoggedIn)
        );
        assert_eq!(t.snapshot().dial_of("101"), "SIP/phone1001");
        assert_eq!(s.dial_of("nobody"), "");
    }

    #[test]
    fn login_errors() {
        let t = BindingTable::new(sample(), 0);
        let l = |u, d, m| t.login(u, d, m, 1, nop);
        assert_eq!(
            l("x", "1000", LoginMode::Admin),
            Err(LoginError::NoSuchUser)
        );
        assert_eq!(
            l("100", "x", LoginMode::Admin),
            Err(LoginError::NoSuchDevice)
        );
        assert_eq!(
            l("100", "2010", LoginMode::Admin),
            Err(LoginError::FixedDevice)
        );
        assert_eq!(
            l("2010", "2010", LoginMode::Admin),
            Err(LoginError::FixedDevice)
        );
        assert_eq!(
            l("2010", "1000", LoginMode::Interactive),
            Err(LoginError::NoPassword)
        );
        assert!(l("2010", "1000", LoginMode::Admin).is_ok());
        assert_eq!(
            LoginError::Denied.to_string(),
            "user is already logged in on another device"
        );
    }

    #[test]
    fn login_takes_occupied_device() {
        let t = BindingTable::new(sample(), 0);
        t.login("100", "1000", LoginMode::Admin, 1, nop).unwrap();
        let c = t.login("101", "1000", LoginMode::Admin, 2, nop).unwrap();
        assert_eq!(c.removed, vec![(b("100", "1000", 1), Reason::Replaced)]);
        assert_eq!(c.added, vec![(b("101", "1000", 2), Reason::Admin)]);
        assert_eq!(c.affected_users(), vec!["100", "101"]);
        assert_eq!(c.affected_devices(), vec!["1000"]);
        // The default user of an adhoc device can be pushed out too.
        let c = t.login("101", "lobby", LoginMode::Admin, 3, nop).unwrap();
        assert_eq!(c.removed, vec![(b("100", "lobby", 0), Reason::Replaced)]);
    }

    #[test]
    fn multiple_logins_no() {
        let t = BindingTable::new(with_policy("no"), 0);
        t.login("101", "1000", LoginMode::Admin, 1, nop).unwrap();
        assert_eq!(
            t.login("101", "1001", LoginMode::Admin, 2, nop),
            Err(LoginError::Denied)
        );
        // 100 is on lobby (adhoc default): that counts.
        assert_eq!(
            t.login("100", "1001", LoginMode::Admin, 2, nop),
            Err(LoginError::Denied)
        );
        // 2010 is only on its fixed device: that does not count.
        assert!(t.login("2010", "1001", LoginMode::Admin, 2, nop).is_ok());
    }

    #[test]
    fn multiple_logins_replace() {
        let t = BindingTable::new(with_policy("replace"), 0);
        t.login("101", "lobby", LoginMode::Admin, 1, nop).unwrap();
        let c = t.login("101", "1000", LoginMode::Admin, 2, nop).unwrap();
        // lobby goes back to its default user 100.
        assert_eq!(c.removed, vec![(b("101", "lobby", 1), Reason::Replaced)]);
        assert_eq!(
            c.added,
            vec![
                (b("100", "lobby", 2), Reason::Default),
                (b("101", "1000", 2), Reason::Admin)
            ]
        );
        // 100 leaves lobby (its own default): lobby stays empty.
        let c = t.login("100", "1001", LoginMode::Admin, 3, nop).unwrap();
        assert_eq!(c.removed, vec![(b("100", "lobby", 2), Reason::Replaced)]);
        assert_eq!(t.snapshot().user_on("lobby"), None);
        // A fixed binding is kept.
        t.login("2010", "1001", LoginMode::Admin, 4, nop).unwrap();
        assert_eq!(t.snapshot().devices_of("2010"), vec!["1001", "2010"]);
    }

    #[test]
    fn logout_gives_device_back_to_default() {
        let t = BindingTable::new(sample(), 0);
        t.login("101", "lobby", LoginMode::Admin, 1, nop).unwrap();
        let c = t.logout_device("lobby", Reason::Timeout, 2, nop).unwrap();
        assert_eq!(c.removed, vec![(b("101", "lobby", 1), Reason::Timeout)]);
        assert_eq!(c.added, vec![(b("100", "lobby", 2), Reason::Default)]);
        // The default user itself may leave an adhoc device.
        let c = t.logout_device("lobby", Reason::Manual, 3, nop).unwrap();
        assert!(c.added.is_empty());
        assert_eq!(t.snapshot().user_on("lobby"), None);
        assert_eq!(
            t.logout_device("2010", Reason::Admin, 3, nop),
            Err(LogoutError::FixedDevice)
        );
        assert_eq!(
            t.logout_device("zz", Reason::Admin, 3, nop),
            Err(LogoutError::NoSuchDevice)
        );
    }

    #[test]
    fn logout_user_everywhere() {
        let t = BindingTable::new(sample(), 0);
        assert_eq!(
            t.logout_user("2010", Reason::Admin, 1, nop),
            Err(LogoutError::NotLoggedIn)
        );
        assert_eq!(
            t.logout_user("x", Reason::Admin, 1, nop),
            Err(LogoutError::NoSuchUser)
        );
        t.login("2010", "1000", LoginMode::Admin, 1, nop).unwrap();
        t.login("2010", "lobby", LoginMode::Admin, 1, nop).unwrap();
        let c = t.logout_user("2010", Reason::ShiftEnd, 2, nop).unwrap();
        assert_eq!(c.affected_devices(), vec!["1000", "lobby"]);
        let s = t.snapshot();
        assert_eq!(s.devices_of("2010"), vec!["2010"]);
        assert_eq!(s.user_on("lobby").unwrap().user, "100");
    }

    #[test]
    fn restore_keeps_valid_bindings() {
        let t = BindingTable::new(sample(), 100);
        let (c, dropped) = t.restore(
            vec![
                b("101", "1000", 7),
                b("101", "1000", 8),
                b("101", "lobby", 9),
                b("2010", "2010", 3),
                b("100", "2010", 4),
                b("ghost", "1001", 5),
                b("100", "nowhere", 6),
            ],
            100,
            nop,
        );
        let reasons: Vec<&str> = dropped.iter().map(|(_, r)| r.as_str()).collect();
        assert_eq!(
            reasons,
            vec![
                "duplicate binding for device 1000",
                "device 2010 is fixed to user 2010",
                "user ghost is not configured",
                "device nowhere is not configured"
            ]
        );
        assert_eq!(c.removed, vec![(b("100", "lobby", 100), Reason::Config)]);
        assert_eq!(
            c.added,
            vec![
                (b("101", "1000", 7), Reason::Config),
                (b("101", "lobby", 9), Reason::Config)
            ]
        );
        let s = t.snapshot();
        assert_eq!(s.user_on("2010").unwrap().since, 3);
        assert_eq!(s.binding_count(), 3);
        let (c, dropped) = t.restore(vec![b("100", "1001", 500)], 200, nop);
        assert!(dropped.is_empty());
        assert_eq!(c.added, vec![(b("100", "1001", 200), Reason::Config)]);
    }

    #[test]
    fn logout_gives_the_device_back_to_its_default_user_unless_it_is_that_user() {
        let t = BindingTable::new(sample(), 0);
        assert_eq!(t.snapshot().user_on("lobby").unwrap().user, "100");
        t.login("101", "lobby", LoginMode::Admin, 1, nop).unwrap();
        // A guest's logout: the device goes back to its default user.
        let c = t.logout_device("lobby", Reason::Manual, 2, nop).unwrap();
        assert_eq!(c.removed, vec![(b("101", "lobby", 1), Reason::Manual)]);
        assert_eq!(c.added, vec![(b("100", "lobby", 2), Reason::Default)]);
        // The default user's own logout: the device stays empty.
        let c = t.logout_device("lobby", Reason::Manual, 3, nop).unwrap();
        assert_eq!(c.removed, vec![(b("100", "lobby", 2), Reason::Manual)]);
        assert!(c.added.is_empty());
        assert_eq!(t.snapshot().user_on("lobby"), None);
        // The same by user.
        t.login("100", "lobby", LoginMode::Admin, 4, nop).unwrap();
        let c = t.logout_user("100", Reason::Manual, 5, nop).unwrap();
        assert!(c.added.is_empty());
        assert_eq!(t.snapshot().user_on("lobby"), None);
    }

    #[test]
    fn logout_all_leaves_only_fixed_devices_bound() {
        let t = BindingTable::new(sample(), 0);
        t.login("101", "lobby", LoginMode::Admin, 1, nop).unwrap();
        t.login("100", "1000", LoginMode::Admin, 1, nop).unwrap();
        let c = t.logout_all(Reason::Admin, nop).unwrap();
        assert_eq!(
            c.removed,
            vec![
                (b("100", "1000", 1), Reason::Admin),
                (b("101", "lobby", 1), Reason::Admin),
            ]
        );
        assert!(
            c.added.is_empty(),
            "no device goes back to its default user"
        );
        assert_eq!(pairs(&t.snapshot()), vec![("2010".into(), "2010".into())]);
        assert_eq!(
            t.logout_all(Reason::Admin, |_| panic!("nothing changes")),
            Err(LogoutError::NotLoggedIn)
        );
    }

    #[test]
    fn reconfigure_drops_and_rebinds() {
        let t = BindingTable::new(sample(), 0);
        t.login("101", "1000", LoginMode::Admin, 1, nop).unwrap();
        t.login("100", "1001", LoginMode::Admin, 1, nop).unwrap();
        t.logout_device("lobby", Reason::Manual, 1, nop).unwrap();
        let new = Config::from_raw(&raw(&[
            (
                "1000",
                &[
                    ("type", "device"),
                    ("mode", "fixed"),
                    ("default_user", "100"),
                ],
            ),
            (
                "2010",
                &[
                    ("type", "device"),
                    ("mode", "fixed"),
                    ("default_user", "100"),
                ],
            ),
            ("lobby", &[("type", "device"), ("default_user", "100")]),
            ("new", &[("type", "device"), ("default_user", "100")]),
            ("100", &[("type", "user")]),
            ("101", &[("type", "user")]),
        ]))
        .unwrap()
        .config;
        let old = t.snapshot();
        let c = t.reconfigure(new, 2, nop);
        let why: Vec<String> = (c.removed.iter())
            .map(|(b, _)| reload_drop_reason(old.config(), t.snapshot().config(), b))
            .collect();
        assert_eq!(
            why,
            [
                "device is now fixed to user 100",
                "device removed from the configuration",
                "user removed from the configuration"
            ]
        );
        assert_eq!(
            c.removed,
            vec![
                (b("101", "1000", 1), Reason::Config),
                (b("100", "1001", 1), Reason::Config),
                (b("2010", "2010", 0), Reason::Config),
            ]
        );
        assert_eq!(
            c.added,
            vec![
                (b("100", "1000", 2), Reason::Default),
                (b("100", "2010", 2), Reason::Default),
                (b("100", "new", 2), Reason::Default),
            ]
        );
        // lobby was emptied on purpose and its default did not change.
        assert_eq!(t.snapshot().user_on("lobby"), None);
        assert!(t.snapshot().config().device("1001").is_none());
    }

    #[test]
    fn reconfigure_moves_adhoc_default() {
        let t = BindingTable::new(sample(), 0);
        let mut new = sample();
        new.devices.get_mut("lobby").unwrap().default_user = Some("101".into());
        let old = t.snapshot();
        let c = t.reconfigure(new, 5, nop);
        assert_eq!(c.removed, vec![(b("100", "lobby", 0), Reason::Config)]);
        assert_eq!(
            reload_drop_reason(old.config(), t.snapshot().config(), &c.removed[0].0),
            "device's default user is now 101"
        );
        assert_eq!(c.added, vec![(b("101", "lobby", 5), Reason::Default)]);
        // Unchanged config: nothing changes.
        assert!(t
            .reconfigure(t.snapshot().config().clone(), 6, |_| panic!())
            .is_empty());
    }

    #[test]
    fn dnd_set_restore_and_reconfigure() {
        let t = BindingTable::new(sample(), 0);
        let before = t.snapshot();
        assert!(!before.dnd("100"));
        assert_eq!(t.set_dnd("100", true), Ok(true));
        assert_eq!(t.set_dnd("100", true), Ok(false));
        assert_eq!(t.set_dnd("ghost", true), Err(LoginError::NoSuchUser));
        assert!(t.snapshot().dnd("100"));
        assert!(!before.dnd("100"), "old snapshots keep their state");
        assert!(!t.snapshot().dnd("ghost"));
        assert_eq!(pairs(&before), pairs(&t.snapshot()));

        let mut seen = Vec::new();
        assert_eq!(
            t.set_dnd_with("100", false, |u, on| seen.push((u.to_string(), on))),
            Ok(true)
        );
        assert_eq!(
            t.set_dnd_with("100", false, |_, _| panic!("unchanged")),
            Ok(false)
        );
        assert_eq!(seen, vec![("100".to_string(), false)]);

        let dropped = t.restore_dnd(vec!["101".into(), "nobody".into(), "2010".into()]);
        assert_eq!(dropped, vec!["nobody"]);
        assert_eq!(t.snapshot().dnd_users(), vec!["101", "2010"]);

        // Survives a reload for users that still exist.
        let mut new = sample();
        new.users.remove("2010");
        new.remove_device("2010");
        t.reconfigure(new, 1, nop);
        assert_eq!(t.snapshot().dnd_users(), vec!["101"]);
    }

    #[test]
    fn a_refused_durable_write_changes_nothing() {
        let t = BindingTable::new(sample(), 0);
        let before = t.snapshot();
        let e = t.login_durable(
            "101",
            "1000",
            LoginMode::Admin,
            1,
            |next, c| {
                // The store sees the decision before anyone else.
                assert_eq!(next.user_on("1000").unwrap().user, "101");
                assert_eq!(c.added.len(), 1);
                Err(StoreError::Unavailable("down".into()))
            },
            |_| panic!("a refused commit is not committed"),
        );
        assert_eq!(
            e,
            Err(LoginError::Store(StoreError::Unavailable("down".into())))
        );
        assert!(e
            .unwrap_err()
            .to_string()
            .starts_with("not saved, nothing changed"));
        assert_eq!(pairs(&t.snapshot()), pairs(&before));

        t.login("101", "1000", LoginMode::Admin, 1, nop).unwrap();
        let e = t.logout_device_durable(
            "1000",
            Reason::Admin,
            2,
            |_, _| Err(StoreError::Conflict("row".into())),
            |_| panic!("refused"),
        );
        assert_eq!(
            e,
            Err(LogoutError::Store(StoreError::Conflict("row".into())))
        );
        let e = t.logout_user_durable(
            "101",
            Reason::Admin,
            2,
            |_, _| Err(StoreError::Unavailable("x".into())),
            |_| panic!("refused"),
        );
        assert!(matches!(e, Err(LogoutError::Store(_))));
        assert_eq!(t.snapshot().devices_of("101"), vec!["1000"]);
        // Nothing to write: the store is not asked.
        t.login_durable(
            "101",
            "1000",
            LoginMode::Admin,
            3,
            |_, _| panic!("no changes"),
            nop,
        )
        .unwrap();
    }

    #[test]
    fn sync_makes_the_table_what_the_store_holds() {
        let t = BindingTable::new(sample(), 0);
        t.login("101", "1000", LoginMode::Admin, 1, nop).unwrap();
        let mut committed = None;
        let (c, dropped) = t
            .sync(
                |_| {
                    Ok::<_, ()>(vec![
                        b("100", "1001", 7),
                        b("nobody", "1002", 7),
                        b("101", "2010", 7),
                        b("101", "nowhere", 7),
                        b("101", "1001", 8),
                    ])
                },
                |c| committed = Some(c.clone()),
            )
            .unwrap();
        assert_eq!(committed.as_ref(), Some(&c));
        // 1000 has no row: empty; lobby has no row: its default user is gone too; the fixed
        // device keeps its user whatever the store says.
        assert_eq!(
            c.removed,
            vec![
                (b("101", "1000", 1), Reason::Remote),
                (b("100", "lobby", 0), Reason::Remote)
            ]
        );
        assert_eq!(c.added, vec![(b("100", "1001", 7), Reason::Remote)]);
        let why: Vec<&str> = dropped.iter().map(|(_, w)| w.as_str()).collect();
        assert_eq!(
            why,
            vec![
                "user nobody is not configured",
                "device 2010 is fixed",
                "device nowhere is not configured",
                "duplicate row for device 1001"
            ]
        );
        let s = t.snapshot();
        assert_eq!(
            pairs(&s),
            vec![
                ("100".into(), "1001".into()),
                ("2010".into(), "2010".into())
            ]
        );
        check_invariants(&s).unwrap();
        // The same rows again: nothing changes; a new `since` alone is taken silently.
        let (c, _) = t
            .sync(
                |_| Ok::<_, ()>(vec![b("100", "1001", 9)]),
                |_| panic!("no change"),
            )
            .unwrap();
        assert!(c.is_empty());
        assert_eq!(t.snapshot().user_on("1001").unwrap().since, 9);
        // A failed read changes nothing.
        assert_eq!(
            t.sync(|_| Err::<Vec<Binding>, _>("down"), |_| panic!()),
            Err("down")
        );
        assert_eq!(pairs(&t.snapshot()), pairs(&s));
    }

    #[test]
    fn dial_where_leaves_devices_out() {
        let t = BindingTable::new(sample(), 0);
        t.login("101", "1000", LoginMode::Admin, 1, nop).unwrap();
        t.login("101", "1001", LoginMode::Admin, 1, nop).unwrap();
        let s = t.snapshot();
        assert_eq!(s.dial_where("101", |_| true), s.dial("101"));
        assert_eq!(s.dial_where("101", |d| d.id != "1000"), "SIP/phone1001");
        assert_eq!(s.dial_where("nobody", |_| true), "");
    }

    #[test]
    fn readers_keep_their_snapshot() {
        let t = BindingTable::new(sample(), 0);
        let before = t.snapshot();
        t.login("101", "1000", LoginMode::Admin, 1, nop).unwrap();
        assert!(before.user_on("1000").is_none());
        assert!(t.snapshot().user_on("1000").is_some());
    }

    #[test]
    fn concurrent_writers_and_readers() {
        let t = Arc::new(BindingTable::new(sample(), 0));
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let t = Arc::clone(&t);
                std::thread::spawn(move || {
                    for n in 0..200u64 {
                        let (u, d) = if i % 2 == 0 {
                            ("100", "1000")
                        } else {
                            ("101", "1000")
                        };
                        let _ = t.login(u, d, LoginMode::Admin, n, nop);
                        let _ = t.logout_device("1001", Reason::Admin, n, nop);
                        t.with_snapshot(|s| assert!(s.binding_count() <= 4));
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        check_invariants(&t.snapshot()).unwrap();
    }

    #[test]
    fn large_table() {
        let mut r = RawConfig::default();
        for i in 0..20_000 {
            for ty in ["device", "user"] {
                r.sections.push(RawSection {
                    name: i.to_string(),
                    line: 0,
                    vars: vec![RawVar {
                        key: "type".into(),
                        value: ty.into(),
                        line: 0,
                    }],
                });
            }
        }
        let c = Config::from_raw(&r).unwrap().config;
        let t = BindingTable::new(c, 0);
        for i in 0..20_000 {
            let id = i.to_string();
            t.login(&id, &id, LoginMode::Admin, 1, nop).unwrap();
        }
        assert_eq!(t.snapshot().binding_count(), 20_000);
        assert_eq!(t.snapshot().devices_of("777"), vec!["777"]);
    }

    fn check_invariants(s: &Snapshot) -> Result<(), String> {
        for (dev, b) in s.by_device.iter() {
            if *dev != b.device {
                return Err(format!("key {dev} holds binding for {}", b.device));
            }
            if !s
                .by_user
                .get(b.user.as_str())
                .is_some_and(|u| u.devices().iter().any(|d| d == dev))
            {
                return Err(format!("{dev} -> {} not mirrored", b.user));
            }
            if s.config.device(dev).is_none() || s.config.user(&b.user).is_none() {
                return Err(format!("binding {b:?} not in config"));
            }
        }
        for (user, entry) in s.by_user.iter() {
            let set = entry.devices();
            if set.is_empty() {
                return Err(format!("empty device set for {user}"));
            }
            for d in set.iter() {
                if s.by_device.get(d.as_str()).map(|b| b.user.as_str()) != Some(user.as_str()) {
                    return Err(format!("{user} -> {d} not mirrored"));
                }
            }
            let want: Vec<&str> = set
                .iter()
                .map(|d| s.config.device(d).unwrap().dial.as_str())
                .collect();
            if s.dial_of(user) != want.join("&") {
                return Err(format!("dial_of({user}) inconsistent"));
            }
        }
        if let Some((u, _)) = s.dnd.iter().find(|(u, _)| s.config.user(u).is_none()) {
            return Err(format!("dnd for unconfigured user {u}"));
        }
        for d in s.config.devices.values() {
            if d.mode == DeviceMode::Fixed
                && s.user_on(&d.id).map(|b| b.user.as_str()) != d.default_user.as_deref()
            {
                return Err(format!("fixed device {} not bound to its default", d.id));
            }
        }
        Ok(())
    }

    /// Three configs to switch between: devices and users come and go, modes and defaults
    /// change, and the policy varies.
    fn configs() -> Vec<Config> {
        let a = Config::from_raw(&raw(&[
            ("d0", &[("type", "device")]),
            ("d1", &[("type", "device"), ("default_user", "u1")]),
            (
                "d2",
                &[
                    ("type", "device"),
                    ("mode", "fixed"),
                    ("default_user", "u2"),
                ],
            ),
            ("d3", &[("type", "device")]),
            ("u0", &[("type", "user"), ("password", "0")]),
            ("u1", &[("type", "user"), ("password", "1")]),
            ("u2", &[("type", "user"), ("password", "2")]),
            ("u3", &[("type", "user")]),
        ]));
        let b = Config::from_raw(&raw(&[
            ("general", &[("multiple_logins", "no")]),
            (
                "d0",
                &[
                    ("type", "device"),
                    ("mode", "fixed"),
                    ("default_user", "u1"),
                ],
            ),
            ("d1", &[("type", "device"), ("default_user", "u2")]),
            ("d2", &[("type", "device")]),
            ("u0", &[("type", "user"), ("password", "0")]),
            ("u1", &[("type", "user"), ("password", "1")]),
            ("u2", &[("type", "user")]),
        ]));
        // Devices kept across a switch to `c` dial differently there.
        let c = Config::from_raw(&raw(&[
            ("general", &[("multiple_logins", "replace")]),
            ("d0", &[("type", "device"), ("dial", "SIP/d0")]),
            (
                "d1",
                &[
                    ("type", "device"),
                    ("dial", "Custom:d1"),
                    ("default_user", "u0"),
                ],
            ),
            (
                "d2",
                &[
                    ("type", "device"),
                    ("mode", "fixed"),
                    ("default_user", "u0"),
                ],
            ),
            (
                "d3",
                &[
                    ("type", "device"),
                    ("mode", "fixed"),
                    ("default_user", "u3"),
                ],
            ),
            ("u0", &[("type", "user"), ("password", "0")]),
            ("u1", &[("type", "user"), ("password", "1")]),
            ("u3", &[("type", "user"), ("password", "3")]),
        ]));
        [a, b, c].into_iter().map(|p| p.unwrap().config).collect()
    }

    #[derive(Clone, Debug)]
    enum Op {
        Login(u8, u8, bool),
        LogoutDevice(u8),
        LogoutUser(u8),
        Reconfigure(u8),
        Restore(Vec<(u8, u8)>),
        Dnd(u8, bool),
        RestoreDnd(Vec<u8>),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..5u8, 0..5u8, any::<bool>()).prop_map(|(u, d, a)| Op::Login(u, d, a)),
            2 => (0..5u8).prop_map(Op::LogoutDevice),
            1 => (0..5u8).prop_map(Op::LogoutUser),
            1 => (0..3u8).prop_map(Op::Reconfigure),
            1 => proptest::collection::vec((0..5u8, 0..5u8), 0..4).prop_map(Op::Restore),
            2 => (0..5u8, any::<bool>()).prop_map(|(u, on)| Op::Dnd(u, on)),
            1 => proptest::collection::vec(0..5u8, 0..4).prop_map(Op::RestoreDnd),
        ]
    }

    /// Applies `c` to the pairs of `before`; must give the pairs of `after`.
    fn replay(before: &Snapshot, c: &Changes, after: &Snapshot) -> Result<(), String> {
        let mut m: std::collections::BTreeMap<CompactString, CompactString> = before
            .by_device
            .values()
            .map(|b| (b.device.clone(), b.user.clone()))
            .collect();
        for (b, _) in &c.removed {
            if m.remove(&b.device).as_ref() != Some(&b.user) {
                return Err(format!("removed {b:?} was not there"));
            }
        }
        for (b, _) in &c.added {
            if m.insert(b.device.clone(), b.user.clone()).is_some() {
                return Err(format!("added {b:?} over another binding"));
            }
        }
        let got: std::collections::BTreeMap<CompactString, CompactString> = after
            .by_device
            .values()
            .map(|b| (b.device.clone(), b.user.clone()))
            .collect();
        if m != got {
            return Err(format!("changes {c:?} do not explain {m:?} -> {got:?}"));
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn invariants_hold(ops in proptest::collection::vec(op(), 1..40)) {
            let cfgs = configs();
            let t = BindingTable::new(cfgs[0].clone(), 0);
            check_invariants(&t.snapshot()).map_err(TestCaseError::fail)?;
            for (now, op) in ops.into_iter().enumerate() {
                let now = now as u64 + 1;
                let before = t.snapshot();
                let mut seen = None;
                let commit = |c: &Changes| seen = Some(c.clone());
                let changes = match &op {
                    Op::Login(u, d, admin) => {
                        let mode = if *admin { LoginMode::Admin } else { LoginMode::Interactive };
                        t.login(&format!("u{u}"), &format!("d{d}"), mode, now, commit).unwrap_or_default()
                    }
                    Op::LogoutDevice(d) => t.logout_device(&format!("d{d}"), Reason::Manual, now, commit).unwrap_or_default(),
                    Op::LogoutUser(u) => t.logout_user(&format!("u{u}"), Reason::Admin, now, commit).unwrap_or_default(),
                    Op::Reconfigure(i) => t.reconfigure(cfgs[*i as usize].clone(), now, commit),
                    Op::Restore(v) => {
                        let saved = v.iter().map(|(u, d)| b(&format!("u{u}"), &format!("d{d}"), now)).collect();
                        t.restore(saved, now, commit).0
                    }
                    Op::Dnd(u, on) => {
                        let user = format!("u{u}");
                        let known = before.config().user(&user).is_some();
                        let r = t.set_dnd(&user, *on);
                        if known {
                            prop_assert_eq!(r, Ok(before.dnd(&user) != *on));
                            prop_assert_eq!(t.snapshot().dnd(&user), *on);
                        } else {
                            prop_assert_eq!(r, Err(LoginError::NoSuchUser));
                            prop_assert!(!t.snapshot().dnd(&user));
                        }
                        Changes::default()
                    }
                    Op::RestoreDnd(v) => {
                        let users: Vec<String> = v.iter().map(|u| format!("u{u}")).collect();
                        let dropped = t.restore_dnd(users.clone());
                        let want: Vec<String> = users
                            .iter()
                            .filter(|u| before.config().user(u).is_none())
                            .cloned()
                            .collect();
                        prop_assert_eq!(dropped, want);
                        Changes::default()
                    }
                };
                let after = t.snapshot();
                check_invariants(&after).map_err(|e| TestCaseError::fail(format!("after {op:?}: {e}")))?;
                replay(&before, &changes, &after).map_err(TestCaseError::fail)?;
                prop_assert_eq!(seen.unwrap_or_default(), changes.clone());
                if let Op::Login(u, d, _) = op {
                    if t.snapshot().config().general.multiple_logins == MultipleLogins::Replace
                        && !changes.is_empty()
                    {
                        let user = format!("u{u}");
                        let movable: Vec<_> = after.devices_of(&user).into_iter()
                            .filter(|x| !after.is_permanent(x, &user)).collect();
                        prop_assert_eq!(movable, vec![format!("d{d}")]);
                    }
                }
                if pairs(&before) == pairs(&after) && !matches!(op, Op::Restore(_)) {
                    prop_assert!(changes.is_empty());
                }
                if matches!(op, Op::Dnd(..) | Op::RestoreDnd(_)) {
                    // DND never touches bindings, not even their `since`.
                    prop_assert_eq!(before.bindings(), after.bindings());
                } else if !matches!(op, Op::Reconfigure(_)) {
                    // Nothing but DND operations changes DND.
                    prop_assert_eq!(before.dnd_users(), after.dnd_users());
                } else {
                    let kept: Vec<&str> = before
                        .dnd_users()
                        .into_iter()
                        .filter(|u| after.config().user(u).is_some())
                        .collect();
                    prop_assert_eq!(kept, after.dnd_users());
                }
            }
        }
    }
}
