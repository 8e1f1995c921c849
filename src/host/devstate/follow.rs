//! Following the state changes of bound devices.
//!
//! The [`Follower`] owns a topic of the module's own (`res_deviceuser:devicestate`). The
//! state topics of bound devices forward into it ([`Follower::watch`]) and its subscription
//! listens to it alone, so a state change of a device nobody is logged in on never reaches
//! the module: no message, no wake-up of its thread. A bound device that has never published
//! a state has no topic yet: [`Follower::watch`] has Asterisk's topic pool make it (the topic
//! its first publication would make), so its first change comes through a forward like any
//! other. Only if Asterisk cannot make the topic is the device followed through a
//! subscription to all device state traffic, until its first change.
//!
//! The subscriptions' callbacks get the follower as their data pointer; [`Follower::close`]
//! (also run on drop) ends them and waits for their last message before the follower goes.
use std::os::raw::c_void;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use deviceuser_core::CompactString;
use rustc_hash::{FxHashMap, FxHashSet};

use super::{device_topic, DeviceState};
use crate::host::cstring;
use crate::host::guard::guard;
use crate::sys;

/// What a device state change message says.
pub struct Change<'a> {
    pub device: &'a str,
    pub state: DeviceState,
}

/// What the follower calls for each change of a followed device, on the subscription's own
/// serialized thread. It must be fast.
pub type ChangeHandler = Box<dyn Fn(&Change<'_>) + Send + Sync>;

/// The queue depth at which a subscription's taskprocessor is in alert: CDR's level.
pub const SUBSCRIPTION_QUEUE_ALERT: u32 = 10 * sys::AST_TASKPROCESSOR_HIGH_WATER_LEVEL;

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
    pending: FxHashSet<CompactString>,
}

/// The key of a device in [`Watches`]: its name lowercased, inline when short.
fn watch_key(device: &str) -> CompactString {
    let mut key = CompactString::from(device);
    key.make_ascii_lowercase();
    key
}

pub struct Follower {
    topic: AtomicPtr<sys::stasis_topic>,
    subscription: AtomicPtr<sys::stasis_subscription>,
    /// The subscription to all device state traffic, while devices are pending.
    all: AtomicPtr<sys::stasis_subscription>,
    /// `None` once closed.
    watches: Mutex<Option<Watches>>,
    handler: ChangeHandler,
    received: AtomicU64,
}

// SAFETY: the raw pointers are Asterisk reference-counted objects (topics, subscriptions)
// usable from any thread; they are swapped atomically and released once.
unsafe impl Send for Follower {}
// SAFETY: as above; the rest is behind a mutex or atomic.
unsafe impl Sync for Follower {}

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

/// The follower a subscription's data pointer names.
///
/// # Safety
/// `data` is the pointer given at subscription: a follower that [`Follower::close`] keeps
/// alive until the subscription's last message.
unsafe fn follower<'a>(data: *mut c_void) -> &'a Follower {
    // SAFETY: per contract.
    unsafe { &*data.cast::<Follower>() }
}

unsafe extern "C" fn on_message(
    data: *mut c_void,
    _sub: *mut sys::stasis_subscription,
    msg: *mut sys::stasis_message,
) {
    guard("device state subscription", (), || {
        // SAFETY: data is our follower (see `subscribe_to`), alive until the final message.
        let f = unsafe { follower(data) };
        f.received.fetch_add(1, Ordering::Relaxed);
        // SAFETY: msg is a live message for the duration of the callback.
        if let Some(change) = unsafe { aggregate_change(msg) } {
            (f.handler)(&change);
        }
    })
}

/// The first change of a pending device: forward its topic from now on, and pass the change on.
unsafe extern "C" fn on_any_message(
    data: *mut c_void,
    _sub: *mut sys::stasis_subscription,
    msg: *mut sys::stasis_message,
) {
    guard("device state subscription (pending devices)", (), || {
        // SAFETY: as in `on_message`.
        let f = unsafe { follower(data) };
        f.received.fetch_add(1, Ordering::Relaxed);
        // SAFETY: msg is a live message for the duration of the callback.
        let Some(change) = (unsafe { aggregate_change(msg) }) else {
            return;
        };
        {
            let mut guard = f.lock();
            let Some(w) = guard.as_mut() else { return };
            let key = watch_key(change.device);
            if !w.pending.remove(&key) {
                return;
            }
            // The device's topic exists now (this message came through it).
            if let Some(fwd) = f.forward(change.device, true) {
                w.forwards.insert(key, fwd);
            }
        }
        (f.handler)(&change);
    })
}

impl Follower {
    /// Creates the module's topic and subscribes to it. The subscriptions point to the
    /// follower inside the returned `Arc`, which [`close`](Self::close) (or the last drop)
    /// ends before the allocation goes.
    pub fn start(handler: ChangeHandler) -> Result<Arc<Follower>, String> {
        // SAFETY: valid C string; we own the returned reference until `close`.
        let topic = unsafe { sys::stasis_topic_create(c"res_deviceuser:devicestate".as_ptr()) };
        if topic.is_null() {
            return Err("cannot create the module's device state topic".into());
        }
        let f = Arc::new(Follower {
            topic: AtomicPtr::new(topic),
            subscription: AtomicPtr::new(std::ptr::null_mut()),
            all: AtomicPtr::new(std::ptr::null_mut()),
            watches: Mutex::new(Some(Watches::default())),
            handler,
            received: AtomicU64::new(0),
        });
        // SAFETY: topic is live (we hold a reference); the Arc's allocation outlives the
        // subscription (closed before it is freed).
        let sub = unsafe { f.subscribe_to(topic, on_message) };
        if sub.is_null() {
            return Err("cannot subscribe to device state changes".into());
        }
        f.subscription.store(sub, Ordering::Release);
        Ok(f)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Watches>> {
        self.watches.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Subscribes `on` to `topic` with this follower as data, accepting device state
    /// messages only.
    ///
    /// # Safety
    /// `topic` is live; `self` stays at its address until the subscription has ended.
    unsafe fn subscribe_to(
        &self,
        topic: *mut sys::stasis_topic,
        on: unsafe extern "C" fn(
            *mut c_void,
            *mut sys::stasis_subscription,
            *mut sys::stasis_message,
        ),
    ) -> *mut sys::stasis_subscription {
        let data = (self as *const Follower).cast_mut().cast::<c_void>();
        // SAFETY: topic is live (caller's contract); the callback is a guarded extern "C"
        // function valid until `close` joins the subscription; file/func are static.
        let sub = unsafe {
            sys::__stasis_subscribe(
                topic,
                Some(on),
                data,
                c"res_deviceuser".as_ptr(),
                0,
                c"subscribe".as_ptr(),
            )
        };
        if sub.is_null() {
            return sub;
        }
        // SAFETY: sub is our live subscription. Filtering makes stasis skip other message
        // types before they reach our queue. A burst of thousands of device changes may queue
        // more than the default 500 messages for a moment, and a queue past its alert level
        // puts Asterisk in overload (res_pjsip then ignores new SIP requests): the
        // subscription declares the level Asterisk's own bulk consumers (CDR, CEL) declare.
        unsafe {
            sys::stasis_subscription_accept_message_type(sub, sys::ast_device_state_message_type());
            sys::stasis_subscription_set_filter(
                sub,
                sys::stasis_subscription_message_filter_STASIS_SUBSCRIPTION_FILTER_SELECTIVE,
            );
            sys::stasis_subscription_set_congestion_limits(
                sub,
                -1,
                SUBSCRIPTION_QUEUE_ALERT.into(),
            );
        }
        sub
    }

    /// A forward from `device`'s state topic into ours. The topic is looked up in stasis'
    /// registry of topics (997 buckets, without touching the topic pool); with `create`, if
    /// the registry has no topic under that exact name (it compares names with their case,
    /// the pool without), it is taken from Asterisk's device topic pool, made if missing. The
    /// pool keeps its entries in a hash of 57 buckets, one entry per device that ever
    /// published: a lookup there, of a topic made a moment ago (the last of its bucket), cost
    /// more than all else of a device's first change through the module (`scripts/bench.sh
    /// --only e2e`).
    fn forward(&self, device: &str, create: bool) -> Option<Forward> {
        let own = self.topic.load(Ordering::Acquire);
        if own.is_null() {
            return None;
        }
        let topic = device_topic(device);
        let fwd = if !topic.is_null() {
            // SAFETY: topic is live (we hold the reference device_topic took), released after
            // the forward took its own.
            unsafe {
                let fwd = sys::stasis_forward_all(topic, own);
                sys::__ao2_cleanup(topic.cast());
                fwd
            }
        } else if create {
            let d = cstring(device);
            // SAFETY: valid C string. The topic is borrowed from Asterisk's pool, which keeps
            // it for the life of the process; the forward takes its own references to both.
            unsafe {
                let topic = sys::ast_device_state_topic(d.as_ptr());
                if topic.is_null() {
                    return None;
                }
                sys::stasis_forward_all(topic, own)
            }
        } else {
            return None;
        };
        (!fwd.is_null()).then_some(Forward(fwd))
    }

    /// Starts following the state of `device` ("PJSIP/1000", "Custom:x"); idempotent.
    pub fn watch(&self, device: &str) {
        if let Some(w) = self.lock().as_mut() {
            self.watch_locked(w, device);
        }
    }

    fn watch_locked(&self, w: &mut Watches, device: &str) {
        if device.is_empty() {
            return;
        }
        let key = watch_key(device);
        if w.forwards.contains_key(&key) || w.pending.contains(&key) {
            return;
        }
        // Made now rather than at the device's first change: the first change of a device
        // then costs what any change costs, and no subscription to all device state traffic
        // (which sees every other device's changes too) is needed meanwhile.
        match self.forward(device, true) {
            Some(f) => {
                w.forwards.insert(key, f);
            }
            None => {
                w.pending.insert(key);
                if self.all.load(Ordering::Acquire).is_null() {
                    // SAFETY: the all-devices topic is a global that lives as long as Asterisk;
                    // self outlives the subscription (closed in `close`).
                    let sub = unsafe {
                        self.subscribe_to(sys::ast_device_state_topic_all(), on_any_message)
                    };
                    self.all.store(sub, Ordering::Release);
                }
            }
        }
    }

    /// Stops following the state of `device` unless `needed` (asked under the lock
    /// [`watch`](Self::watch) takes) says it is still wanted.
    pub fn unwatch_unless(&self, device: &str, needed: impl FnOnce() -> bool) {
        let key = watch_key(device);
        let f = {
            let mut guard = self.lock();
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

    /// Follows exactly the devices `devices` lists, asked under the lock: others are
    /// dropped, missing ones added, before the lock is released.
    pub fn watch_only(&self, devices: impl FnOnce() -> Vec<String>) {
        let stale = {
            let mut guard = self.lock();
            let Some(w) = guard.as_mut() else { return };
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
                self.watch_locked(w, d);
            }
            stale
        };
        for f in stale {
            f.cancel();
        }
    }

    /// Ends the subscription to all device state traffic once no device is pending. Called
    /// from a thread of the module's own (it waits for the subscription's last message).
    pub fn tend(&self) {
        let sub = {
            let guard = self.lock();
            match guard.as_ref() {
                Some(w) if w.pending.is_empty() => {
                    self.all.swap(std::ptr::null_mut(), Ordering::AcqRel)
                }
                _ => std::ptr::null_mut(),
            }
        };
        if !sub.is_null() {
            // SAFETY: our subscription, swapped out under the lock so no one else ends it.
            unsafe { sys::stasis_unsubscribe_and_join(sub) };
        }
    }

    /// How many devices are followed: (through a forward, still pending).
    pub fn watched(&self) -> (usize, usize) {
        self.lock()
            .as_ref()
            .map_or((0, 0), |w| (w.forwards.len(), w.pending.len()))
    }

    /// Whether the subscription to all device state traffic exists (devices are pending, or
    /// were until the policy thread's last [`tend`](Self::tend)).
    pub fn follows_all(&self) -> bool {
        !self.all.load(Ordering::Acquire).is_null()
    }

    /// Device state messages delivered to the subscriptions since they were made.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Cancels every forward, unsubscribes, waits until the callbacks can no longer run, and
    /// releases the module's topic. Idempotent.
    pub fn close(&self) {
        let all = self.lock().take().unwrap_or_default();
        for (_, f) in all.forwards {
            f.cancel();
        }
        for sub in [&self.all, &self.subscription] {
            let sub = sub.swap(std::ptr::null_mut(), Ordering::AcqRel);
            if !sub.is_null() {
                // SAFETY: our subscription, unsubscribed once; the join waits for the final
                // message, after which no callback uses this follower.
                unsafe { sys::stasis_unsubscribe_and_join(sub) };
            }
        }
        let topic = self.topic.swap(std::ptr::null_mut(), Ordering::AcqRel);
        if !topic.is_null() {
            // SAFETY: the reference taken in `start`, released once, after every forward
            // into it is gone and the subscriptions have ended.
            unsafe { sys::__ao2_cleanup(topic.cast()) };
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.close();
    }
}
