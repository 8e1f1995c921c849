//! Device state: queries of other devices, Asterisk's aggregation rules and publishing.
//! The module's provider is in [`provider`], following bound devices' changes in [`follow`].
pub mod follow;
pub mod provider;

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

/// Publishes a computed state for `device` as the aggregate (no EID: the form hints and AMI
/// act on), so watchers of hints naming it are told at once.
///
/// Not cachable, as Asterisk publishes states it can always recompute (Local channels): the
/// provider answers from memory, and a cachable state would cost Asterisk a cache entry, a
/// device topic and forwarder per user, plus a cache update on every publication. The message
/// is the one `ast_publish_device_state_full(device, state, NOT_CACHABLE, NULL)` publishes,
/// laid out as Asterisk's `device_state_alloc` lays out an aggregate, and goes where that
/// call sends it: to the device's own topic if one exists (ARI subscribers of that device get
/// it there), else to the all-devices topic; one message through each device state
/// subscriber, where `ast_devstate_changed_literal` would send two.
///
/// Built here rather than by that call because of how it finds the device's topic: Asterisk
/// looks the name up in its device topic pool (`stasis_topic_pool_topic_exists`), a hash of
/// 57 buckets holding one entry per device that ever published a state, so with 10,000
/// phones a miss (the usual case: no one subscribes to `DeviceUser:` topics) compares the
/// name with some 175 entries, and it was the largest part of what a device change through
/// the module cost Asterisk beyond its own hint path (`scripts/bench.sh --only e2e`,
/// docs/benchmarks-fanout.md). Here the topic is looked up in stasis' registry of topics
/// (997 buckets) by the name the pool gives it; the registry compares names with their case
/// (the pool without), so a topic someone made for `deviceuser:4101` is not found for
/// `DeviceUser:4101`, and its subscribers miss the state (the all-devices topic's get it).
/// UNKNOWN is left to Asterisk's device-state thread, which asks the provider.
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
    // SAFETY: an ao2 allocation of the header plus the name, without a destructor (nothing of
    // the module is referenced once published; ao2 copies nothing of the tag, file and
    // function strings past the call). The name is copied where `device_state_alloc` puts an
    // aggregate's (`stuff`, right after the header: no EID before it). The message takes its
    // own reference to the data, ours is released; the message's is released after
    // publishing, the topic's (from `device_topic`) once used.
    unsafe {
        let data = sys::__ao2_alloc(
            head + name.len(),
            None,
            sys::ao2_alloc_opts_AO2_ALLOC_OPT_LOCK_NOLOCK,
            c"".as_ptr(),
            c"res_deviceuser".as_ptr(),
            0,
            c"publish".as_ptr(),
        )
        .cast::<sys::ast_device_state_message>();
        if data.is_null() {
            return;
        }
        let pos = data.cast::<u8>().add(head);
        std::ptr::copy_nonoverlapping(name.as_ptr(), pos, name.len());
        (*data).device = pos.cast::<std::os::raw::c_char>();
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
        let own = device_topic(device);
        if own.is_null() {
            sys::stasis_publish(sys::ast_device_state_topic_all(), msg);
        } else {
            sys::stasis_publish(own, msg);
            sys::__ao2_cleanup(own.cast());
        }
        sys::__ao2_cleanup(msg.cast());
    }
}

/// An Asterisk entity id (EID): which server a per-server device state comes from.
#[derive(Clone, Copy)]
pub struct Eid(sys::ast_eid);

impl PartialEq for Eid {
    fn eq(&self, other: &Eid) -> bool {
        self.0.eid == other.0.eid
    }
}

impl Eid {
    /// This server's (`entityid` in asterisk.conf, else from a network interface).
    pub fn own() -> Eid {
        // SAFETY: a global Asterisk sets before loading modules and never changes after.
        Eid(unsafe { sys::ast_eid_default })
    }

    /// Parses `00:11:22:33:44:55`.
    pub fn parse(text: &str) -> Option<Eid> {
        let t = cstring(text);
        let mut eid = sys::ast_eid::default();
        // SAFETY: valid C string and an exclusively borrowed eid; 0 means parsed.
        (unsafe { sys::ast_str_to_eid(&mut eid, t.as_ptr()) } == 0).then_some(Eid(eid))
    }
}

impl std::fmt::Display for Eid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut buf = [0 as std::os::raw::c_char; 32];
        let mut eid = self.0;
        // SAFETY: buf is writable for its length; the result is NUL-terminated in it.
        let s = unsafe {
            from_c(sys::ast_eid_to_str(
                buf.as_mut_ptr(),
                buf.len() as i32,
                &mut eid,
            ))
        };
        f.write_str(&s.unwrap_or_default())
    }
}

/// Publishes `state` for `device` as the state of one server (`eid`), cachable: Asterisk's
/// cache keeps one state per server and aggregates them (hints show the aggregate), and
/// `res_pjsip_publish_asterisk` sends this server's states to the other nodes. Unchanged
/// states are not published again (Asterisk checks its cache).
pub fn publish_as(device: &str, state: DeviceState, eid: &Eid) {
    let d = cstring(device);
    if d.as_bytes().is_empty() {
        return;
    }
    let mut eid = eid.0;
    // SAFETY: valid, non-empty C string and EID, both copied into the message.
    unsafe {
        sys::ast_publish_device_state_full(
            d.as_ptr(),
            state.0,
            sys::ast_devstate_cache_AST_DEVSTATE_CACHABLE,
            &mut eid,
        )
    };
}

/// Removes this server's cached state of `device` (the other servers' stay).
pub fn clear_own_cached(device: &str) {
    let d = cstring(device);
    // SAFETY: valid C string; Asterisk copies what it keeps.
    unsafe { sys::ast_device_state_clear_cache(d.as_ptr()) };
}

/// The devices whose names start with `prefix` that have a cached state published under
/// `eid` (by that server, or received from it).
pub fn cached_devices_of(eid: &Eid, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    // SAFETY: the cache and the type are Asterisk globals; the container comes with a
    // reference we release below.
    let all = unsafe {
        sys::stasis_cache_dump_by_eid(
            sys::ast_device_state_cache(),
            sys::ast_device_state_message_type(),
            &eid.0,
        )
    };
    if all.is_null() {
        return out;
    }
    // SAFETY: a live container; the iterator holds its own reference until destroyed.
    let mut it = unsafe { sys::ao2_iterator_init(all, 0) };
    loop {
        // SAFETY: a live iterator; each object comes with a reference we release.
        let msg = unsafe {
            sys::__ao2_iterator_next(
                &mut it,
                std::ptr::null(),
                c"devstate/mod.rs".as_ptr(),
                0,
                c"cached_devices_of".as_ptr(),
            )
        };
        if msg.is_null() {
            break;
        }
        // SAFETY: the container holds device state messages, whose data is an
        // ast_device_state_message with a NUL-terminated device name.
        let device = unsafe {
            let data = sys::stasis_message_data(msg.cast()) as *const sys::ast_device_state_message;
            if data.is_null() {
                None
            } else {
                from_c((*data).device)
            }
        };
        if let Some(d) = device.filter(|d| d.starts_with(prefix)) {
            out.push(d);
        }
        // SAFETY: releases the reference the iterator gave us.
        unsafe { sys::__ao2_cleanup(msg) };
    }
    // SAFETY: our iterator and container reference, released once.
    unsafe {
        sys::ao2_iterator_destroy(&mut it);
        sys::__ao2_cleanup(all.cast());
    }
    out
}

/// The existing state topic of `device`, with a reference the caller releases; NULL if no one
/// ever created it. Found in stasis' registry of topics, without touching the topic pool.
/// Asked for every `DeviceUser:` publication: the name is built in one allocation, from the
/// pool's name as Asterisk holds it.
pub(super) fn device_topic(device: &str) -> *mut sys::stasis_topic {
    // SAFETY: the all-devices topic is a global; stasis_topic_name returns its name, which
    // lives as long as that topic.
    let pool = unsafe { sys::stasis_topic_name(sys::ast_device_state_topic_all()) };
    if pool.is_null() {
        return std::ptr::null_mut();
    }
    // SAFETY: non-NULL and NUL-terminated (above).
    let pool = unsafe { std::ffi::CStr::from_ptr(pool) }.to_bytes();
    let mut name = Vec::with_capacity(pool.len() + device.len() + 2);
    name.extend_from_slice(pool);
    name.push(b'/');
    name.extend(device.bytes().filter(|&b| b != 0));
    name.push(0);
    // SAFETY: a NUL-terminated byte string without interior NULs; a found topic comes with a
    // reference (the caller's contract).
    unsafe { sys::stasis_topic_get(name.as_ptr().cast()) }
}
