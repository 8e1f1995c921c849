//! An ARI event source (`res_stasis`), as `res_stasis_device_state` registers one: ARI
//! applications subscribe to `<scheme><id>` (`POST /ari/applications/{app}/subscription`)
//! and the module sends them JSON events.
//!
//! res_stasis is optional, so its functions are looked up when needed (`dlsym`; it exports
//! them globally) rather than linked: the module loads and runs without it.
use std::ffi::CStr;
use std::os::raw::{c_char, c_int, c_void};
use std::sync::Arc;

use super::guard::guard;
use super::{cstring, from_c};
use crate::sys;

/// What the event source's callbacks ask of the module.
pub trait Feed {
    /// Whether `id` names something to subscribe to.
    fn exists(&self, id: &str) -> bool;
    /// `app` subscribes to `id` (`""`: to everything).
    fn subscribe(&self, app: &str, id: &str);
    fn unsubscribe(&self, app: &str, id: &str);
    fn is_subscribed(&self, app: &str, id: &str) -> bool;
    /// What `app` subscribed to.
    fn ids(&self, app: &str) -> Vec<String>;
}

/// The callbacks of an event source, made by [`event_source!`].
#[derive(Clone, Copy)]
pub struct Callbacks {
    pub find: unsafe extern "C" fn(*const sys::stasis_app, *const c_char) -> *mut c_void,
    pub subscribe: unsafe extern "C" fn(*mut sys::stasis_app, *mut c_void) -> c_int,
    pub unsubscribe: unsafe extern "C" fn(*mut sys::stasis_app, *const c_char) -> c_int,
    pub is_subscribed: unsafe extern "C" fn(*mut sys::stasis_app, *const c_char) -> c_int,
    pub to_json: unsafe extern "C" fn(*const sys::stasis_app, *mut sys::ast_json),
}

/// `event_source!(root, feed)`: the callbacks of an event source whose subscriptions the
/// loaded module keeps; `feed` is `fn(&I) -> &F` with `F:` [`Feed`].
macro_rules! event_source {
    ($root:path, $feed:path) => {{
        use ::std::os::raw::{c_char, c_int, c_void};
        use $crate::host::ari;
        unsafe extern "C" fn find(
            app: *const $crate::sys::stasis_app,
            id: *const c_char,
        ) -> *mut c_void {
            // SAFETY: res_stasis passes a live app and a NUL-terminated id.
            unsafe { ari::find(app, id, $root, $feed) }
        }
        unsafe extern "C" fn subscribe(
            app: *mut $crate::sys::stasis_app,
            obj: *mut c_void,
        ) -> c_int {
            // SAFETY: a live app, and NULL or an object `find` made.
            unsafe { ari::subscribe(app, obj, $root, $feed) }
        }
        unsafe extern "C" fn unsubscribe(
            app: *mut $crate::sys::stasis_app,
            id: *const c_char,
        ) -> c_int {
            // SAFETY: a live app; NULL or a NUL-terminated id.
            unsafe { ari::unsubscribe(app, id, $root, $feed) }
        }
        unsafe extern "C" fn is_subscribed(
            app: *mut $crate::sys::stasis_app,
            id: *const c_char,
        ) -> c_int {
            // SAFETY: as above.
            unsafe { ari::is_subscribed(app, id, $root, $feed) }
        }
        unsafe extern "C" fn to_json(
            app: *const $crate::sys::stasis_app,
            json: *mut $crate::sys::ast_json,
        ) {
            // SAFETY: a live app and the app's JSON object.
            unsafe { ari::to_json(app, json, $root, $feed) }
        }
        ari::Callbacks {
            find,
            subscribe,
            unsubscribe,
            is_subscribed,
            to_json,
        }
    }};
}
pub(crate) use event_source;

/// A function of res_stasis, if it is loaded.
fn lookup(name: &CStr) -> Option<*mut c_void> {
    // SAFETY: RTLD_DEFAULT searches the global scope, where res_stasis' symbols are (it is
    // loaded with global symbols); the name is NUL-terminated.
    let f = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!f.is_null()).then_some(f)
}

/// The name of an application.
///
/// # Safety
/// `app` is a live application.
unsafe fn app_name(app: *const sys::stasis_app) -> Option<String> {
    type NameFn = unsafe extern "C" fn(*const sys::stasis_app) -> *const c_char;
    let f = lookup(c"stasis_app_name")?;
    // SAFETY: the symbol is res_stasis' `const char *stasis_app_name(const struct stasis_app *)`.
    let name: NameFn = unsafe { std::mem::transmute::<*mut c_void, NameFn>(f) };
    // SAFETY: live app (contract); the name lives as long as the app.
    unsafe { from_c(name(app)) }
}

/// `find`: an object naming `id` (an ao2 object holding the id; res_stasis releases it after
/// subscribing), or NULL if the module knows no such id.
///
/// # Safety
/// `id` is NULL or NUL-terminated.
pub unsafe fn find<I, F: Feed>(
    _app: *const sys::stasis_app,
    id: *const c_char,
    root: fn() -> Option<Arc<I>>,
    feed: fn(&I) -> &F,
) -> *mut c_void {
    guard("ARI event source", std::ptr::null_mut(), || {
        // SAFETY: per contract.
        let id = unsafe { from_c(id) }.unwrap_or_default();
        let Some(module) = root() else {
            return std::ptr::null_mut();
        };
        if !feed(&module).exists(&id) {
            return std::ptr::null_mut();
        }
        let c = cstring(&id);
        let bytes = c.as_bytes_with_nul();
        // SAFETY: a plain ao2 allocation without lock or destructor, released by res_stasis.
        let obj = unsafe {
            sys::__ao2_alloc(
                bytes.len(),
                None,
                sys::ao2_alloc_opts_AO2_ALLOC_OPT_LOCK_NOLOCK,
                c"res_deviceuser".as_ptr(),
                c"res_deviceuser".as_ptr(),
                0,
                c"find".as_ptr(),
            )
        };
        if !obj.is_null() {
            // SAFETY: obj holds bytes.len() bytes.
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), obj.cast::<u8>(), bytes.len()) };
        }
        obj
    })
}

/// # Safety
/// `app` is live; `obj` is NULL (everything) or made by [`find`].
pub unsafe fn subscribe<I, F: Feed>(
    app: *mut sys::stasis_app,
    obj: *mut c_void,
    root: fn() -> Option<Arc<I>>,
    feed: fn(&I) -> &F,
) -> c_int {
    guard("ARI event source", -1, || {
        // SAFETY: per contract: the object holds a NUL-terminated id.
        let id = unsafe { from_c(obj.cast::<c_char>()) }.unwrap_or_default();
        // SAFETY: live app.
        let (Some(module), Some(app)) = (root(), unsafe { app_name(app) }) else {
            return -1;
        };
        feed(&module).subscribe(&app, &id);
        0
    })
}

/// # Safety
/// `app` is live; `id` NULL or NUL-terminated.
pub unsafe fn unsubscribe<I, F: Feed>(
    app: *mut sys::stasis_app,
    id: *const c_char,
    root: fn() -> Option<Arc<I>>,
    feed: fn(&I) -> &F,
) -> c_int {
    guard("ARI event source", -1, || {
        // SAFETY: per contract.
        let id = unsafe { from_c(id) }.unwrap_or_default();
        // SAFETY: live app.
        let (Some(module), Some(app)) = (root(), unsafe { app_name(app) }) else {
            return -1;
        };
        feed(&module).unsubscribe(&app, &id);
        0
    })
}

/// # Safety
/// As [`unsubscribe`].
pub unsafe fn is_subscribed<I, F: Feed>(
    app: *mut sys::stasis_app,
    id: *const c_char,
    root: fn() -> Option<Arc<I>>,
    feed: fn(&I) -> &F,
) -> c_int {
    guard("ARI event source", 0, || {
        // SAFETY: per contract.
        let id = unsafe { from_c(id) }.unwrap_or_default();
        // SAFETY: live app.
        let (Some(module), Some(app)) = (root(), unsafe { app_name(app) }) else {
            return 0;
        };
        c_int::from(feed(&module).is_subscribed(&app, &id))
    })
}

/// Adds `"device_user_ids": [...]` (what the app subscribed to) to the app's JSON.
///
/// # Safety
/// `app` is live; `json` is the app's JSON object.
pub unsafe fn to_json<I, F: Feed>(
    app: *const sys::stasis_app,
    json: *mut sys::ast_json,
    root: fn() -> Option<Arc<I>>,
    feed: fn(&I) -> &F,
) {
    guard("ARI event source", (), || {
        // SAFETY: live app.
        let (Some(module), Some(app)) = (root(), unsafe { app_name(app) }) else {
            return;
        };
        let ids = feed(&module).ids(&app);
        let list: Vec<String> = ids
            .iter()
            .map(|i| deviceuser_core::ari::json_string(i))
            .collect();
        let text = cstring(&format!("[{}]", list.join(",")));
        // SAFETY: valid JSON text; the new array's reference is handed to the object.
        unsafe {
            let array = sys::ast_json_load_string(text.as_ptr(), std::ptr::null_mut());
            if !array.is_null() {
                sys::ast_json_object_set(json, c"device_user_ids".as_ptr(), array);
            }
        }
    })
}

/// Sends `json` (an event object) to the application `app`; false if res_stasis is not
/// loaded, the text is not JSON or the application is gone.
pub fn send(app: &str, json: &str) -> bool {
    type SendFn = unsafe extern "C" fn(*const c_char, *mut sys::ast_json) -> c_int;
    let Some(f) = lookup(c"stasis_app_send") else {
        return false;
    };
    // SAFETY: the symbol is res_stasis' `int stasis_app_send(const char *, struct ast_json *)`.
    let send: SendFn = unsafe { std::mem::transmute::<*mut c_void, SendFn>(f) };
    let (a, j) = (cstring(app), cstring(json));
    // SAFETY: valid C strings; stasis_app_send takes its own reference to the message, ours
    // is released after.
    unsafe {
        let msg = sys::ast_json_load_string(j.as_ptr(), std::ptr::null_mut());
        if msg.is_null() {
            return false;
        }
        let rc = send(a.as_ptr(), msg);
        sys::ast_json_unref(msg);
        rc == 0
    }
}

/// The registered event source; dropping it unregisters it.
pub struct EventSource {
    source: Box<sys::stasis_app_event_source>,
}

// SAFETY: the struct is only handed to res_stasis, which reads it under its own lock; it holds
// a static scheme and function pointers.
unsafe impl Send for EventSource {}

impl EventSource {
    /// Registers the callbacks for `scheme` (`deviceUser:`); `None` if res_stasis is not
    /// loaded.
    pub fn register(scheme: &'static CStr, cb: Callbacks) -> Option<EventSource> {
        type RegisterFn = unsafe extern "C" fn(*mut sys::stasis_app_event_source);
        let f = lookup(c"stasis_app_register_event_source")?;
        // SAFETY: the symbol is res_stasis' `void stasis_app_register_event_source(struct
        // stasis_app_event_source *)`.
        let register: RegisterFn = unsafe { std::mem::transmute::<*mut c_void, RegisterFn>(f) };
        let mut source = Box::new(sys::stasis_app_event_source {
            scheme: scheme.as_ptr(),
            find: Some(cb.find),
            subscribe: Some(cb.subscribe),
            unsubscribe: Some(cb.unsubscribe),
            is_subscribed: Some(cb.is_subscribed),
            to_json: Some(cb.to_json),
            next: sys::stasis_app_event_source__bindgen_ty_1 {
                next: std::ptr::null_mut(),
            },
        });
        // SAFETY: the struct stays in its box until `drop` unregisters it.
        unsafe { register(&mut *source) };
        Some(EventSource { source })
    }
}

impl Drop for EventSource {
    fn drop(&mut self) {
        type UnregisterFn = unsafe extern "C" fn(*mut sys::stasis_app_event_source);
        // If res_stasis was unloaded meanwhile, its list went with it.
        let Some(f) = lookup(c"stasis_app_unregister_event_source") else {
            return;
        };
        // SAFETY: the symbol is res_stasis' unregister function; the struct is the one
        // registered.
        let unregister: UnregisterFn =
            unsafe { std::mem::transmute::<*mut c_void, UnregisterFn>(f) };
        // SAFETY: as above.
        unsafe { unregister(&mut *self.source) };
    }
}
