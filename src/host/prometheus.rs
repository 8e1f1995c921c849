//! Metrics for Prometheus through `res_prometheus`'s callback API: on every scrape of
//! Asterisk's `/metrics`, res_prometheus calls the module's callback, which appends its text.
//!
//! res_prometheus is optional and loads after this module, so its functions are looked up
//! when needed (`dlsym`; it exports them globally) rather than linked: the module loads and
//! runs without it, and registers once it is there.
use std::ffi::CStr;
use std::os::raw::{c_char, c_int, c_void};
use std::sync::Arc;

use super::guard::guard;
use crate::sys;

/// A scrape callback (`void cb(struct ast_str **output)`).
pub type ScrapeCallback = unsafe extern "C" fn(*mut *mut sys::ast_str);

/// `metrics_source!(root, handler)`: a scrape callback; `handler` is `fn(&I) -> String`,
/// the text to append.
macro_rules! metrics_source {
    ($root:path, $handler:path) => {{
        unsafe extern "C" fn scrape(output: *mut *mut $crate::sys::ast_str) {
            // SAFETY: res_prometheus passes its response buffer for the call.
            unsafe { $crate::host::prometheus::run(output, $root, $handler) }
        }
        scrape as $crate::host::prometheus::ScrapeCallback
    }};
}
pub(crate) use metrics_source;

/// Runs the handler and appends its text to the response.
///
/// # Safety
/// `output` is res_prometheus' response buffer, valid for the call.
pub unsafe fn run<I>(
    output: *mut *mut sys::ast_str,
    root: fn() -> Option<Arc<I>>,
    handler: fn(&I) -> String,
) {
    guard("metrics scrape", (), || {
        let Some(module) = root() else { return };
        let text = handler(&module);
        if output.is_null() || text.is_empty() {
            return;
        }
        // SAFETY: output is the caller's buffer (contract); the text is copied, with its
        // length given, and the buffer grows as needed (max_len 0).
        unsafe {
            sys::__ast_str_helper2(output, 0, text.as_ptr().cast::<c_char>(), text.len(), 1, 0)
        };
    })
}

/// A function of res_prometheus, if it is loaded.
fn lookup(name: &CStr) -> Option<*mut c_void> {
    // SAFETY: RTLD_DEFAULT searches the global scope, where res_prometheus' symbols are
    // (it is loaded with global symbols); the name is NUL-terminated.
    let f = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!f.is_null()).then_some(f)
}

type RegisterFn = unsafe extern "C" fn(*mut sys::prometheus_callback) -> c_int;
type UnregisterFn = unsafe extern "C" fn(*mut sys::prometheus_callback);

/// The module's callback, registered with res_prometheus; dropping it unregisters it (and
/// waits for a scrape in progress, which holds the same lock).
pub struct Registration {
    callback: Box<sys::prometheus_callback>,
}

// SAFETY: the callback struct is only handed to res_prometheus, which reads it under its
// own lock; it holds a static name and a function pointer.
unsafe impl Send for Registration {}

impl Registration {
    /// Registers `callback` as `name`; `None` if res_prometheus is not loaded (or refused).
    pub fn register(name: &'static CStr, callback: ScrapeCallback) -> Option<Registration> {
        let f = lookup(c"prometheus_callback_register")?;
        // SAFETY: the symbol is res_prometheus' `int prometheus_callback_register(struct
        // prometheus_callback *)`.
        let register: RegisterFn = unsafe { std::mem::transmute::<*mut c_void, RegisterFn>(f) };
        let mut callback = Box::new(sys::prometheus_callback {
            name: name.as_ptr(),
            callback_fn: Some(callback),
        });
        // SAFETY: the struct lives in its box until `drop` unregisters it.
        let rc = unsafe { register(&mut *callback) };
        (rc == 0).then_some(Registration { callback })
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // If res_prometheus was unloaded meanwhile, its list of callbacks went with it.
        let Some(f) = lookup(c"prometheus_callback_unregister") else {
            return;
        };
        // SAFETY: the symbol is res_prometheus' `void prometheus_callback_unregister(struct
        // prometheus_callback *)`; the struct is the one registered.
        let unregister: UnregisterFn =
            unsafe { std::mem::transmute::<*mut c_void, UnregisterFn>(f) };
        // SAFETY: as above.
        unsafe { unregister(&mut *self.callback) };
    }
}
