//! Device state: our provider, queries of other devices, Asterisk's aggregation rules,
//! publishing, and a subscription to the state changes of bound devices.
use std::os::raw::{c_char, c_void};
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::Mutex;

use deviceuser_core::CompactString;
use rustc_hash::{FxHashMap, FxHashSet};

use super::{cstring, from_c};
use crate::sys;

/// Asterisk's device states (`enum ast_device_state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceState(pub sys::ast_device_state);

impl DeviceState {
    pub const UNKNOWN: DeviceState = DeviceState(sys::ast_device_state_AST_DEVICE_UNKNOWN);
    pub const BUSY: DeviceState = DeviceState(sys::ast_device_state_AST_DEVICE_BUSY);
    pub const INVALID: DeviceState = DeviceState(sys::ast_device_state_AST_DEVICE_INVALID);
    pub const UNAVAILABLE: DeviceState = DeviceState(sys::ast_device_state_AST_DEVICE_UNAVAILABLE);

    /// Asterisk's own name for the state ("NOT_INUSE", "INUSE", ...).
    pub fn name(self) -> String {
        // SAFETY: ast_devstate_str returns a static string for every value.
        unsafe { from_c(sys::ast_devstate_str(self.0)) }.unwrap_or_default()
    }
}

/// The state of any device ("PJSIP/1000", "Custom:x"), from the cache or its provider.
pub fn device_state(device: &str) -> DeviceState {
    let d = cstring(device);
    // SAFETY: valid C string.
    DeviceState(unsafe { sys::ast_device_state(d.as_ptr()) })
}

/// Combines states with Asterisk's own rules (`ast_devstate_aggregate_*`), as hints do.
pub struct Aggregate(sys::ast_devstate_aggregate);

impl Aggregate {
    pub fn new() -> Self {
        let mut agg = sys::ast_devstate_aggregate::default();
        // SAFETY: agg is a valid, exclusively borrowed aggregate.
        unsafe { sys::ast_devstate_aggregate_init(&mut agg) };
        Aggregate(agg)
    }

    pub fn add(&mut self, state: DeviceState) {
        // SAFETY: as above.
        unsafe { sys::ast_devstate_aggregate_add(&mut self.0, state.0) };
    }

    pub fn result(mut self) -> DeviceState {
        // SAFETY: as above.
        DeviceState(unsafe { sys::ast_devstate_aggregate_result(&mut self.0) })
    }
}

/// Publishes a computed state for `device`, as the aggregate (the form hints and AMI act on),
/// so watchers of hints naming it are told at once.
///
/// Not cachable, as Asterisk publishes states it can always recompute (Local channels): the
/// provider answers from memory, and a cachable state would cost Asterisk a cache entry, a
/// device topic and forwarder per user, plus a cache check, a cache update and topic-pool
/// lookups on every publication. `ast_devstate_changed_literal` would publish a per-server
/// copy that Asterisk's device state subscription then republishes as the aggregate: two
/// messages through every device state subscriber of the PBX and two walks of the topic pool
/// per change. This builds the aggregate message itself, exactly as Asterisk's own
/// `device_state_alloc` lays it out, and publishes it once. UNKNOWN is left to Asterisk's
/// device-state thread, which asks the provider.
pub fn publish(device: &str, state: DeviceState) {
    let d = cstring(device);
    if state == DeviceState::UNKNOWN || d.as_bytes().is_empty() {
        // SAFETY: valid C string; Asterisk copies it.
        unsafe {
            sys::ast_devstate_changed_literal(
                state.0,
                sys::ast_devstate_cache_AST_DEVSTATE_NOT_CACHABLE,
                d.as_ptr(),
            )
        };
        return;
    }
    let name = d.as_bytes_with_nul();
    let head = std::mem::size_of::<sys::ast_device_state_message>();
    // SAFETY: the object is an ao2 allocation of the header plus the name, with no destructor
    // (nothing of the module is referenced once published). The name is copied right after
    // the header, where `device_state_alloc` puts it for an aggregate (no EID). The message
    // and the data each hold a reference we release after publishing.
    unsafe {
        let data = sys::__ao2_alloc(
            head + name.len(),
            None,
            sys::ao2_alloc_opts_AO2_ALLOC_OPT_LOCK_NOLOCK,
            c"".as_ptr(),
            c"res_deviceuser".as_ptr(),
            0,
            c"publish".as_ptr(),
        ) as *mut sys::ast_device_state_message;
        if data.is_null() {
            return;
        }
        let pos = data.cast::<u8>().add(head);
        std::ptr::copy_nonoverlapping(name.as_ptr(), pos, name.len());
        (*data).device = pos.cast::<c_char>();
        (*data).eid = std::ptr::null();
        (*data).state = state.0;
        (*data).cachable = sys::ast_devstate_cache_AST_DEVSTATE_NOT_CACHABLE;
        let msg = sys::stasis_message_create_full(
            sys::ast_device_state_message_type(),
            data.cast(),
            std::ptr::null(),
        );
        sys::__ao2_cleanup(data.cast());
        if msg.is_null() {
            return;
        }
        // Subscribers of this device's own topic (ARI, say) get it there, as Asterisk would
        // publish it; the pool forwards that topic to the all-devices one.
        let own = device_topic(device);
        sys::stasis_publish(
            if own.is_null() {
                sys::ast_device_state_topic_all()
            } else {
                own
            },
            msg,
        );
        if !own.is_null() {
            sys::__ao2_cleanup(own.cast());
        }
        sys::__ao2_cleanup(msg.cast());
    }
}

/// The existing state topic of `device`, with a reference the caller releases; NULL if no one
/// ever created it. Found in stasis' registry of topics, without touching the topic pool.
fn device_topic(device: &str) -> *mut sys::stasis_topic {
    // SAFETY: the all-devices topic is a global; stasis_topic_name returns its name.
    let Some(pool) = (unsafe { from_c(sys::stasis_topic_name(sys::ast_device_state_topic_all())) })
    else {
        return std::ptr::null_mut();
    };
    let name = cstring(&format!("{pool}/{device}"));
    // SAFETY: valid C string; a found topic comes with a reference (the caller's contract).
    unsafe { sys::stasis_topic_get(name.as_ptr()) }
}

type StateQuery = fn(&str) -> DeviceState;

static PROVIDER: AtomicPtr<()> = AtomicPtr::new(std::ptr::null_mut());

unsafe extern "C" fn provider_callback(data: *const c_char) -> sys::ast_device_state {
    super::guard::guard("device state provider", DeviceState::UNKNOWN.0, || {
        // SAFETY: Asterisk passes the part of the device name after "Label:", NUL-terminated.
        let Some(data) = (unsafe { from_c(data) }) else {
            return DeviceState::INVALID.0;
        };
        let f = PROVIDER.load(Ordering::Acquire);
        if f.is_null() {
            return DeviceState::UNKNOWN.0;
        }
        // SAFETY: PROVIDER only ever holds a StateQuery stored by provider_add.
        let f: StateQuery = unsafe { std::mem::transmute::<*mut (), StateQuery>(f) };
        f(&data).0
    })
}

/// Registers the provider of `label:...` devices; `query` gets the part after the colon.
/// It runs on Asterisk's device state thread and under dialplan locks: it must not block.
pub fn provider_add(label: &'static std::ffi::CStr, query: StateQuery) -> Result<(), String> {
    PROVIDER.store(query as *mut (), Ordering::Release);
    // SAFETY: label is static; the callback is a guarded extern "C" function that stays valid
    // until provider_del, which unload calls before the code is unmapped.
    match unsafe { sys::ast_devstate_prov_add(label.as_ptr(), Some(provider_callback)) } {
        0 => Ok(()),
        _ => Err(format!("cannot add device state provider {label:?}")),
    }
}

/// Removes the provider; Asterisk waits for calls in flight (it takes the provider list lock).
pub fn provider_del(label: &'static std::ffi::CStr) {
    // SAFETY: label is a valid C string.
    unsafe { sys::ast_devstate_prov_del(label.as_ptr()) };
    PROVIDER.store(std::ptr::null_mut(), Ordering::Release);
}

/// What a device state change message says.
pub struct Change<'a> {
    pub device: &'a str,
    pub state: DeviceState,
}

type ChangeHandler = fn(&Change<'_>);

static SUBSCRIPTION: AtomicPtr<sys::stasis_subscription> = AtomicPtr::new(std::ptr::null_mut());
static HANDLER: AtomicPtr<()> = AtomicPtr::new(std::ptr::null_mut());

/// The aggregate device state change a message carries (per-server copies and other types
/// give `None`).
///
/// # Safety
/// `msg` is a live stasis message.
unsafe fn aggregate_change<'a>(msg: *mut sys::stasis_message) -> Option<Change<'a>> {
    // SAFETY: msg is live (caller's contract).
    if unsafe { sys::stasis_message_type(msg) } != unsafe { sys::ast_device_state_message_type() } {
        return None;
    }
    // SAFETY: messages of this type carry an ast_device_state_message.
    let data = unsafe { sys::stasis_message_data(msg) } as *const sys::ast_device_state_message;
    if data.is_null() {
        return None;
    }
    // SAFETY: data is valid while msg is, which outlives the callback using the result.
    let (eid, device, state) = unsafe { ((*data).eid, (*data).device, (*data).state) };
    // Each change arrives per server and as the aggregate (eid NULL): act on the aggregate.
    if !eid.is_null() || device.is_null() {
        return None;
    }
    // SAFETY: device is a NUL-terminated string owned by the message.
    let bytes = unsafe { std::ffi::CStr::from_ptr(device) }.to_bytes();
    let device = std::str::from_utf8(bytes).ok()?;
    Some(Change {
        device,
        state: DeviceState(state),
    })
}

fn dispatch(change: &Change<'_>) {
    let handler = HANDLER.load(Ordering::Acquire);
    if handler.is_null() {
        return;
    }
    // SAFETY: HANDLER only ever holds a ChangeHandler stored by subscribe.
    let handler: ChangeHandler = unsafe { std::mem::transmute::<*mut (), ChangeHandler>(handler) };
    handler(change);
}

/// Device-state messages delivered to the module's subscriptions since they were made.
static RECEIVED: AtomicU64 = AtomicU64::new(0);

/// How many device-state messages reached the module since load (every message either
/// subscription delivered, whatever it said).
pub fn received() -> u64 {
    RECEIVED.load(Ordering::Relaxed)
}

unsafe extern "C" fn on_message(
    _data: *mut c_void,
    _sub: *mut sys::stasis_subscription,
    msg: *mut sys::stasis_message,
) {
    RECEIVED.fetch_add(1, Ordering::Relaxed);
    super::guard::guard("device state subscription", (), || {
        // SAFETY: msg is a live message for the duration of the callback.
        if let Some(change) = unsafe { aggregate_change(msg) } {
            dispatch(&change);
        }
    })
}

/// The module's own topic. The state topics of bound devices forward into it ([`watch`]) and
/// the subscription listens to it alone, so a state change of a device nobody is logged in on
/// never reaches the module: no message, no wake-up of its thread.
static OWN_TOPIC: AtomicPtr<sys::stasis_topic> = AtomicPtr::new(std::ptr::null_mut());

/// A forward from a device's state topic into ours, owned by [`Watches`].
struct Forward(*mut sys::stasis_forward);

// SAFETY: a stasis forward is a reference-counted Asterisk object, usable from any thread.
unsafe impl Send for Forward {}

impl Forward {
    fn cancel(self) {
        // SAFETY: our forward, cancelled once (self is consumed); cancel releases our reference.
        unsafe { sys::stasis_forward_cancel(self.0) };
    }
}

/// The bound devices followed, by device name lowercased (the names are case-insensitive in
/// Asterisk's topic pool).
#[derive(Default)]
struct Watches {
    forwards: FxHashMap<CompactString, Forward>,
    /// Bound devices that have never published a state, so have no topic to forward yet.
    /// Until their first change they are followed through [`ALL_SUB`], a subscription to all
    /// device state traffic that exists only while this set is not empty.
    pending: FxHashSet<CompactString>,
}

/// The key of a device in [`Watches`]: its name lowercased, inline when short (no
/// allocation per followed device).
fn watch_key(device: &str) -> CompactString {
    let mut key = CompactString::from(device);
    key.make_ascii_lowercase();
    key
}

/// Emptied by [`unsubscribe`]: statics are not dropped at `dlclose`.
static WATCHES: Mutex<Option<Watches>> = Mutex::new(None);
static ALL_SUB: AtomicPtr<sys::stasis_subscription> = AtomicPtr::new(std::ptr::null_mut());

fn watches() -> std::sync::MutexGuard<'static, Option<Watches>> {
    WATCHES.lock().unwrap_or_else(|e| e.into_inner())
}

/// The queue depth at which a subscription's taskprocessor is in alert: CDR's level.
pub const SUBSCRIPTION_QUEUE_ALERT: u32 = 10 * sys::AST_TASKPROCESSOR_HIGH_WATER_LEVEL;

/// Subscribes `on` to `topic`, accepting device state messages only.
///
/// # Safety
/// `topic` is a live topic.
unsafe fn subscribe_to(
    topic: *mut sys::stasis_topic,
    on: unsafe extern "C" fn(*mut c_void, *mut sys::stasis_subscription, *mut sys::stasis_message),
) -> *mut sys::stasis_subscription {
    // SAFETY: topic is live (caller's contract); the callback is a guarded extern "C"
    // function that stays valid until unload joins the subscription; file/func are static.
    let sub = unsafe {
        sys::__stasis_subscribe(
            topic,
            Some(on),
            std::ptr::null_mut(),
            c"res_deviceuser".as_ptr(),
            0,
            c"subscribe".as_ptr(),
        )
    };
    if sub.is_null() {
        return sub;
    }
    // SAFETY: sub is our live subscription. Filtering makes stasis skip other message types
    // before they reach our queue.
    unsafe {
        sys::stasis_subscription_accept_message_type(sub, sys::ast_device_state_message_type());
        sys::stasis_subscription_set_filter(
            sub,
            sys::stasis_subscription_message_filter_STASIS_SUBSCRIPTION_FILTER_SELECTIVE,
        );
        // A burst of thousands of device changes (a shift starting, a reload of a phone farm)
        // may queue more than the default 500 messages for a moment. A queue past its alert
        // level puts Asterisk in overload, and res_pjsip then ignores new SIP requests; so
        // the subscription declares the level Asterisk's own bulk stasis consumers (CDR, CEL,
        // manager) declare for theirs.
        sys::stasis_subscription_set_congestion_limits(sub, -1, SUBSCRIPTION_QUEUE_ALERT.into());
    }
    sub
}

/// Subscribes `handler` to state changes of the devices given to [`watch`]. The handler runs on
/// the subscription's own serialized thread and must be fast.
pub fn subscribe(handler: ChangeHandler) -> Result<(), String> {
    HANDLER.store(handler as *mut (), Ordering::Release);
    RECEIVED.store(0, Ordering::Relaxed);
    // SAFETY: valid C string; we own the returned reference until `unsubscribe`.
    let topic = unsafe { sys::stasis_topic_create(c"res_deviceuser:devicestate".as_ptr()) };
    if topic.is_null() {
        return Err("cannot create the module's device state topic".into());
    }
    // SAFETY: topic is live (we hold a reference).
    let sub = unsafe { subscribe_to(topic, on_message) };
    if sub.is_null() {
        // SAFETY: our reference, released once.
        unsafe { sys::__ao2_cleanup(topic.cast()) };
        return Err("cannot subscribe to device state changes".into());
    }
    *watches() = Some(Watches::default());
    SUBSCRIPTION.store(sub, Ordering::Release);
    OWN_TOPIC.store(topic, Ordering::Release);
    Ok(())
}

/// The first change of a pending device: forward its topic from now on, and pass the change on.
unsafe extern "C" fn on_any_message(
    _data: *mut c_void,
    _sub: *mut sys::stasis_subscription,
    msg: *mut sys::stasis_message,
) {
    RECEIVED.fetch_add(1, Ordering::Relaxed);
    super::guard::guard("device state subscription (pending devices)", (), || {
        // SAFETY: msg is a live message for the duration of the callback.
        let Some(change) = (unsafe { aggregate_change(msg) }) else {
            return;
        };
        {
            let mut guard = watches();
            let Some(w) = guard.as_mut() else { return };
            let key = watch_key(change.device);
            if !w.pending.remove(&key) {
                return;
            }
            // The device's topic exists now (this message came through it).
            if let Some(f) = forward(change.device, true) {
                w.forwards.insert(key, f);
            }
        }
        dispatch(&change);
    })
}

/// A forward from `device`'s state topic into ours. Without `create`, only if the topic
/// exists already (found in stasis' registry of topics, without touching the topic pool).
fn forward(device: &str, create: bool) -> Option<Forward> {
    let own = OWN_TOPIC.load(Ordering::Acquire);
    if own.is_null() {
        return None;
    }
    let d = cstring(device);
    let fwd = if create {
        // SAFETY: valid C string. The topic is borrowed from Asterisk's pool, which keeps it
        // for the life of the process; the forward takes its own references to both topics.
        unsafe {
            let topic = sys::ast_device_state_topic(d.as_ptr());
            if topic.is_null() {
                return None;
            }
            sys::stasis_forward_all(topic, own)
        }
    } else {
        let topic = device_topic(device);
        if topic.is_null() {
            return None;
        }
        // SAFETY: topic is live (we hold the reference device_topic took), released after
        // the forward took its own.
        unsafe {
            let fwd = sys::stasis_forward_all(topic, own);
            sys::__ao2_cleanup(topic.cast());
            fwd
        }
    };
    (!fwd.is_null()).then_some(Forward(fwd))
}

/// Starts following the state of `device` ("PJSIP/1000", "Custom:x"); idempotent.
pub fn watch(device: &str) {
    if let Some(w) = watches().as_mut() {
        watch_locked(w, device);
    }
}

/// [`watch`], with the followed-devices lock held.
fn watch_locked(w: &mut Watches, device: &str) {
    if device.is_empty() {
        return;
    }
    let key = watch_key(device);
    if w.forwards.contains_key(&key) || w.pending.contains(&key) {
        return;
    }
    match forward(device, false) {
        Some(f) => {
            w.forwards.insert(key, f);
        }
        None => {
            w.pending.insert(key);
            if ALL_SUB.load(Ordering::Acquire).is_null() {
                // SAFETY: the all-devices topic is a global that lives as long as Asterisk.
                let sub =
                    unsafe { subscribe_to(sys::ast_device_state_topic_all(), on_any_message) };
                ALL_SUB.store(sub, Ordering::Release);
            }
        }
    }
}

/// Stops following the state of `device` unless `needed` (asked under the lock [`watch`]
/// takes) says it is still wanted.
pub fn unwatch_unless(device: &str, needed: impl FnOnce() -> bool) {
    let key = watch_key(device);
    let f = {
        let mut guard = watches();
        let Some(w) = guard.as_mut() else { return };
        if needed() {
            return;
        }
        w.pending.remove(&key);
        w.forwards.remove(&key)
    };
    if let Some(f) = f {
        f.cancel();
    }
}

/// Follows exactly the devices `devices` lists, asked under the followed-devices lock: others
/// are dropped, missing ones added, before the lock is released.
pub fn watch_only(devices: impl FnOnce() -> Vec<String>) {
    let stale = {
        let mut guard = watches();
        let Some(w) = guard.as_mut() else { return };
        // Asked under the lock [`watch`] takes (see `runtime::watch_bound_devices`).
        let devices = devices();
        let want: FxHashSet<CompactString> = devices.iter().map(|d| watch_key(d)).collect();
        w.pending.retain(|k| want.contains(k));
        let gone: Vec<CompactString> = (w.forwards.keys())
            .filter(|k| !want.contains(*k))
            .cloned()
            .collect();
        let stale: Vec<Forward> = gone.iter().filter_map(|k| w.forwards.remove(k)).collect();
        // Still under the lock: a logout's release (which decides under it) comes after.
        for d in &devices {
            watch_locked(w, d);
        }
        stale
    };
    for f in stale {
        f.cancel();
    }
}

/// Ends the subscription to all device state traffic once no device is pending. Called from
/// the module's own thread (it waits for the subscription's last message).
pub fn tend() {
    let sub = {
        let guard = watches();
        match guard.as_ref() {
            Some(w) if w.pending.is_empty() => ALL_SUB.swap(std::ptr::null_mut(), Ordering::AcqRel),
            _ => std::ptr::null_mut(),
        }
    };
    if !sub.is_null() {
        // SAFETY: our subscription, swapped out under the lock so no one else ends it.
        unsafe { sys::stasis_unsubscribe_and_join(sub) };
    }
}

/// How many devices are followed: (through a forward, still pending).
pub fn watched() -> (usize, usize) {
    watches()
        .as_ref()
        .map_or((0, 0), |w| (w.forwards.len(), w.pending.len()))
}

/// Cancels every forward, unsubscribes, waits until the callbacks can no longer run, and
/// releases the module's topic.
pub fn unsubscribe() {
    let all = watches().take().unwrap_or_default();
    for (_, f) in all.forwards {
        f.cancel();
    }
    for sub in [&ALL_SUB, &SUBSCRIPTION] {
        let sub = sub.swap(std::ptr::null_mut(), Ordering::AcqRel);
        if !sub.is_null() {
            // SAFETY: our subscription, unsubscribed once; the join waits for the final message.
            unsafe { sys::stasis_unsubscribe_and_join(sub) };
        }
    }
    let topic = OWN_TOPIC.swap(std::ptr::null_mut(), Ordering::AcqRel);
    if !topic.is_null() {
        // SAFETY: the reference taken in `subscribe`, released once, after every forward
        // into it is gone and the subscription has ended.
        unsafe { sys::__ao2_cleanup(topic.cast()) };
    }
    HANDLER.store(std::ptr::null_mut(), Ordering::Release);
}
