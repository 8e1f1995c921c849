//! The module's device state provider (`DeviceUser:<user>`).
//!
//! Asterisk calls a provider with no user data, so the callback is a trampoline the entry
//! layer declares with [`state_provider!`], reaching the loaded module through its root.
//! It runs on Asterisk's device state thread, from `ast_device_state()` callers and during
//! hint creation with the dialplan locks held: the handler must not block.
use std::ffi::CStr;
use std::os::raw::c_char;
use std::sync::Arc;

use super::DeviceState;
use crate::host::from_c;
use crate::host::guard::guard;
use crate::sys;

/// A provider callback (`enum ast_device_state cb(const char *data)`).
pub type ProviderCallback = unsafe extern "C" fn(*const c_char) -> sys::ast_device_state;

/// `state_provider!(root, handler)`: a provider callback; `handler` is
/// `fn(&I, &str) -> DeviceState`, given the part of the device name after `Label:`.
macro_rules! state_provider {
    ($root:path, $handler:path) => {{
        unsafe extern "C" fn provide(
            data: *const ::std::os::raw::c_char,
        ) -> $crate::sys::ast_device_state {
            // SAFETY: Asterisk passes the NUL-terminated part of the name after "Label:".
            unsafe { $crate::host::devstate::provider::run(data, $root, $handler) }
        }
        provide as $crate::host::devstate::provider::ProviderCallback
    }};
}
pub(crate) use state_provider;

/// Runs the provider's handler.
///
/// # Safety
/// `data` is NULL or a NUL-terminated string valid for the call.
pub unsafe fn run<I>(
    data: *const c_char,
    root: fn() -> Option<Arc<I>>,
    handler: fn(&I, &str) -> DeviceState,
) -> sys::ast_device_state {
    guard("device state provider", DeviceState::UNKNOWN.0, || {
        // SAFETY: per contract.
        let Some(data) = (unsafe { from_c(data) }) else {
            return DeviceState::INVALID.0;
        };
        match root() {
            Some(module) => handler(&module, &data).0,
            None => DeviceState::UNKNOWN.0,
        }
    })
}

/// The registered provider of `label:...` devices; dropping it removes it.
pub struct Provider {
    label: &'static CStr,
}

impl Provider {
    /// Registers `callback` for devices named `label:...`.
    pub fn add(label: &'static CStr, callback: ProviderCallback) -> Result<Provider, String> {
        // SAFETY: label is static; the callback is a guarded extern "C" function that stays
        // valid until the provider is removed (in drop, before the code is unmapped).
        match unsafe { sys::ast_devstate_prov_add(label.as_ptr(), Some(callback)) } {
            0 => Ok(Provider { label }),
            _ => Err(format!("cannot add device state provider {label:?}")),
        }
    }
}

impl Drop for Provider {
    /// Asterisk waits for calls in flight (it takes the provider list's write lock).
    fn drop(&mut self) {
        // SAFETY: the label this provider was added with.
        unsafe { sys::ast_devstate_prov_del(self.label.as_ptr()) };
    }
}
