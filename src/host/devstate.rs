//! Device state: our provider, queries of other devices, Asterisk's aggregation rules,
//! publishing, and a subscription to the state changes of bound devices.
use std::os::raw::{c_char, c_void};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Mutex;

use rustc_hash::FxHashMap;

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

/// Publishes a computed state for `device` (never UNKNOWN, so the device-state thread need
/// not call back into our provider), so watchers of hints naming it are told at once.
///
/// Published as not cachable, as Asterisk does for states it can always recompute (Local
/// channels): the state is already known to the provider, which answers from memory, and a
/// cachable state would cost Asterisk a cache entry, a device topic and forwarder per user,
/// plus a cache check, a cache update and a second topic lookup on every publication.
/// Asterisk republishes it as the aggregate (eid NULL) that hints and AMI act on.
pub fn publish(device: &str, state: DeviceState) {
    let d = cstring(device);
    // SAFETY: valid C string; Asterisk copies it.
    unsafe {
        sys::ast_devstate_changed_literal(
            state.0,
            sys::ast_devstate_cache_AST_DEVSTATE_NOT_CACHABLE,
            d.as_ptr(),
        )
    };
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

unsafe extern "C" fn on_message(
    _data: *mut c_void,
    _sub: *mut sys::stasis_subscription,
    msg: *mut sys::stasis_message,
) {
    super::guard::guard("device state subscription", (), || {
        // SAFETY: msg is a live message for the duration of the callback.
        if unsafe { sys::stasis_message_type(msg) }
            != unsafe { sys::ast_device_state_message_type() }
        {
            return;
        }
        // SAFETY: messages of this type carry an ast_device_state_message.
        let data = unsafe { sys::stasis_message_data(msg) } as *const sys::ast_device_state_message;
        if data.is_null() {
            return;
        }
        // SAFETY: data is valid while msg is; the device name is NUL-terminated.
        let (eid, device, state) = unsafe { ((*data).eid, (*data).device, (*data).state) };
        // Each change arrives per server and as the aggregate (eid NULL): act on the aggregate.
        if !eid.is_null() || device.is_null() {
            return;
        }
        // SAFETY: device is a NUL-terminated string owned by the message.
        let bytes = unsafe { std::ffi::CStr::from_ptr(device) }.to_bytes();
        let Ok(device) = std::str::from_utf8(bytes) else {
            return;
        };
        let handler = HANDLER.load(Ordering::Acquire);
        if handler.is_null() {
            return;
        }
        // SAFETY: HANDLER only ever holds a ChangeHandler stored by subscribe.
        let handler: ChangeHandler =
            unsafe { std::mem::transmute::<*mut (), ChangeHandler>(handler) };
        handler(&Change {
            device,
            state: DeviceState(state),
        });
    })
}

/// The module's own topic. The state topics of bound devices forward into it ([`watch`]) and
/// the subscription listens to it alone, so a state change of a device nobody is logged in on
/// never reaches the module: no message, no wake-up of its thread.
static OWN_TOPIC: AtomicPtr<sys::stasis_topic> = AtomicPtr::new(std::ptr::null_mut());

/// A forward from a device's state topic into ours, owned by [`FORWARDS`].
struct Forward(*mut sys::stasis_forward);

// SAFETY: a stasis forward is a reference-counted Asterisk object, usable from any thread.
unsafe impl Send for Forward {}

/// Forwards by device name, lowercased (device names are case-insensitive in Asterisk's topic
/// pool). Emptied by [`unsubscribe`]: statics are not dropped at `dlclose`.
static FORWARDS: Mutex<Option<FxHashMap<String, Forward>>> = Mutex::new(None);

/// The queue depth at which the subscription's taskprocessor is in alert: CDR's level.
pub const SUBSCRIPTION_QUEUE_ALERT: u32 = 10 * sys::AST_TASKPROCESSOR_HIGH_WATER_LEVEL;

/// Subscribes `handler` to state changes of the devices given to [`watch`]. The handler runs on
/// the subscription's own serialized thread and must be fast.
pub fn subscribe(handler: ChangeHandler) -> Result<(), String> {
    HANDLER.store(handler as *mut (), Ordering::Release);
    // SAFETY: valid C string; we own the returned reference until `unsubscribe`.
    let topic = unsafe { sys::stasis_topic_create(c"res_deviceuser:devicestate".as_ptr()) };
    if topic.is_null() {
        return Err("cannot create the module's device state topic".into());
    }
    // SAFETY: topic is live (we hold a reference); the callback is a guarded extern "C"
    // function; file/func are static strings.
    let sub = unsafe {
        sys::__stasis_subscribe(
            topic,
            Some(on_message),
            std::ptr::null_mut(),
            c"res_deviceuser".as_ptr(),
            0,
            c"subscribe".as_ptr(),
        )
    };
    if sub.is_null() {
        // SAFETY: our reference, released once.
        unsafe { sys::__ao2_cleanup(topic.cast()) };
        return Err("cannot subscribe to device state changes".into());
    }
    // SAFETY: sub is our live subscription. Filtering makes stasis skip other message types
    // before they reach our queue.
    unsafe {
        sys::stasis_subscription_accept_message_type(sub, sys::ast_device_state_message_type());
        sys::stasis_subscription_set_filter(
            sub,
            sys::stasis_subscription_message_filter_STASIS_SUBSCRIPTION_FILTER_SELECTIVE,
        );
        // A burst of thousands of device changes (a shift starting, a reload of a phone
        // farm) may queue more than the default 500 messages here for a moment. A queue past
        // its alert level puts every taskprocessor in alert, and res_pjsip then ignores new
        // SIP requests; so this subscription declares the level Asterisk's own bulk stasis
        // consumers (CDR, CEL, manager) declare for theirs.
        sys::stasis_subscription_set_congestion_limits(sub, -1, SUBSCRIPTION_QUEUE_ALERT.into());
    }
    SUBSCRIPTION.store(sub, Ordering::Release);
    OWN_TOPIC.store(topic, Ordering::Release);
    Ok(())
}

fn forwards() -> std::sync::MutexGuard<'static, Option<FxHashMap<String, Forward>>> {
    FORWARDS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts receiving state changes of `device` ("PJSIP/1000", "Custom:x"); idempotent.
pub fn watch(device: &str) {
    let own = OWN_TOPIC.load(Ordering::Acquire);
    if own.is_null() || device.is_empty() {
        return;
    }
    let mut guard = forwards();
    let map = guard.get_or_insert_with(FxHashMap::default);
    let key = device.to_ascii_lowercase();
    if map.contains_key(&key) {
        return;
    }
    let d = cstring(device);
    // SAFETY: valid C string. The topic is borrowed from Asterisk's pool, which keeps it for
    // the life of the process; the forward takes its own references to both topics.
    let fwd = unsafe {
        let topic = sys::ast_device_state_topic(d.as_ptr());
        if topic.is_null() {
            return;
        }
        sys::stasis_forward_all(topic, own)
    };
    if !fwd.is_null() {
        map.insert(key, Forward(fwd));
    }
}

/// Stops receiving state changes of `device`.
pub fn unwatch(device: &str) {
    let fwd = forwards()
        .as_mut()
        .and_then(|m| m.remove(&device.to_ascii_lowercase()));
    if let Some(Forward(fwd)) = fwd {
        // SAFETY: our forward, cancelled once (cancel also releases our reference).
        unsafe { sys::stasis_forward_cancel(fwd) };
    }
}

/// Watches exactly `devices`: forwards for others are cancelled, missing ones added.
pub fn watch_only(devices: &[&str]) {
    let want: std::collections::HashSet<String> =
        devices.iter().map(|d| d.to_ascii_lowercase()).collect();
    let stale: Vec<Forward> = {
        let mut guard = forwards();
        let map = guard.get_or_insert_with(FxHashMap::default);
        let gone: Vec<String> = map.keys().filter(|k| !want.contains(*k)).cloned().collect();
        gone.iter().filter_map(|k| map.remove(k)).collect()
    };
    for Forward(fwd) in stale {
        // SAFETY: as in `unwatch`.
        unsafe { sys::stasis_forward_cancel(fwd) };
    }
    for d in devices {
        watch(d);
    }
}

/// How many devices are watched.
pub fn watched() -> usize {
    forwards().as_ref().map_or(0, |m| m.len())
}

/// Cancels every forward, unsubscribes, waits until the callback can no longer run, and
/// releases the module's topic.
pub fn unsubscribe() {
    let all = forwards().take().unwrap_or_default();
    for (_, Forward(fwd)) in all {
        // SAFETY: as in `unwatch`.
        unsafe { sys::stasis_forward_cancel(fwd) };
    }
    let sub = SUBSCRIPTION.swap(std::ptr::null_mut(), Ordering::AcqRel);
    if !sub.is_null() {
        // SAFETY: sub is our subscription, unsubscribed once; the join waits for the final message.
        unsafe { sys::stasis_unsubscribe_and_join(sub) };
    }
    let topic = OWN_TOPIC.swap(std::ptr::null_mut(), Ordering::AcqRel);
    if !topic.is_null() {
        // SAFETY: the reference taken in `subscribe`, released once, after every forward
        // into it is gone and the subscription has ended.
        unsafe { sys::__ao2_cleanup(topic.cast()) };
    }
    HANDLER.store(std::ptr::null_mut(), Ordering::Release);
}
