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
/// device topic and forwarder per user, plus a cache update on every publication. Published
/// with Asterisk's public call (`ast_publish_device_state_full` with no EID), which goes to
/// the device's own topic if one exists (ARI subscribers of that device get it there), else
/// to the all-devices topic: one message through each device state subscriber, where
/// `ast_devstate_changed_literal` would send two (a per-server copy, then Asterisk's
/// republished aggregate). UNKNOWN is left to Asterisk's device-state thread, which asks the
/// provider.
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
    // SAFETY: valid, non-empty C string that Asterisk copies into the message; a NULL EID
    // makes the message the aggregate.
    unsafe {
        sys::ast_publish_device_state_full(
            d.as_ptr(),
            state.0,
            sys::ast_devstate_cache_AST_DEVSTATE_NOT_CACHABLE,
            std::ptr::null_mut(),
        )
    };
}

/// The existing state topic of `device`, with a reference the caller releases; NULL if no one
/// ever created it. Found in stasis' registry of topics, without touching the topic pool.
pub(super) fn device_topic(device: &str) -> *mut sys::stasis_topic {
    // SAFETY: the all-devices topic is a global; stasis_topic_name returns its name.
    let Some(pool) = (unsafe { from_c(sys::stasis_topic_name(sys::ast_device_state_topic_all())) })
    else {
        return std::ptr::null_mut();
    };
    let name = cstring(&format!("{pool}/{device}"));
    // SAFETY: valid C string; a found topic comes with a reference (the caller's contract).
    unsafe { sys::stasis_topic_get(name.as_ptr()) }
}
