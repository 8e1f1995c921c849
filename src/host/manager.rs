//! Running other modules' AMI actions from inside Asterisk (app_queue's `QueueAdd`,
//! `QueueRemove`, `QueuePause`, `QueuePenalty`, `QueueStatus`), through a manager hook: no
//! socket and no login; the action runs on the calling thread and its response comes back as
//! text. The hook is never registered in Asterisk's list of hooks (which would hand it every
//! manager event of the PBX): `ast_hook_send_action` only needs it to deliver the response.
use std::os::raw::{c_char, c_int};
use std::sync::Mutex;

use super::{cstring, guard::guard};
use crate::sys;

/// The hook `ast_hook_send_action` answers through. Asterisk reads its fields and never
/// writes them (it is not put on the hook list).
struct Hook(sys::manager_custom_hook);

// SAFETY: the hook is immutable: a pointer to a static string and a function pointer.
unsafe impl Sync for Hook {}

static HOOK: Hook = Hook(sys::manager_custom_hook {
    file: c"res_deviceuser".as_ptr().cast_mut(),
    helper: Some(on_response),
    list: sys::manager_custom_hook__bindgen_ty_1 {
        next: std::ptr::null_mut(),
    },
});

/// The response text of the action being sent; `None` while none is.
static RESPONSE: Mutex<Option<Vec<u8>>> = Mutex::new(None);
/// One action at a time: the response buffer is shared.
static SENDING: Mutex<()> = Mutex::new(());

/// Called by Asterisk on the sending thread, during `ast_hook_send_action`, with each piece
/// of the response.
unsafe extern "C" fn on_response(
    _category: c_int,
    _event: *const c_char,
    body: *mut c_char,
) -> c_int {
    guard("manager hook response", 0, || {
        if body.is_null() {
            return 0;
        }
        // SAFETY: Asterisk passes a NUL-terminated string valid for this call.
        let bytes = unsafe { std::ffi::CStr::from_ptr(body) }.to_bytes();
        if let Some(buf) = RESPONSE.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            buf.extend_from_slice(bytes);
        }
        0
    })
}

/// Keeps a header value on one line (it cannot add headers) and without NULs.
fn one_line(v: &str) -> String {
    v.chars()
        .filter(|&c| c != '\0')
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect()
}

/// Runs the AMI action `fields` (the first is `Action`) and returns its response text, or
/// `None` when no module has registered the action (nothing answered). Blocks while the
/// action runs; call it from a thread of the module's own, holding no lock of the module's
/// that Asterisk's threads may wait for.
pub fn send_action<S: AsRef<str>>(fields: &[(&str, S)]) -> Option<String> {
    let mut text = String::with_capacity(256);
    for (k, v) in fields {
        text.push_str(k);
        text.push_str(": ");
        text.push_str(&one_line(v.as_ref()));
        text.push_str("\r\n");
    }
    text.push_str("\r\n");
    let msg = cstring(&text);
    let _one = SENDING.lock().unwrap_or_else(|e| e.into_inner());
    *RESPONSE.lock().unwrap_or_else(|e| e.into_inner()) = Some(Vec::new());
    // SAFETY: the hook is a valid static that Asterisk only reads; msg is a valid C string
    // that Asterisk copies. The response arrives through `on_response` during this call.
    unsafe { sys::ast_hook_send_action(std::ptr::addr_of!(HOOK.0).cast_mut(), msg.as_ptr()) };
    let out = RESPONSE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .unwrap_or_default();
    (!out.is_empty()).then(|| String::from_utf8_lossy(&out).into_owned())
}

/// Whether Asterisk has finished booting (every module loaded, `core waitfullybooted`).
pub fn fully_booted() -> bool {
    // SAFETY: a global of flags Asterisk sets during startup; a torn read is impossible for
    // an aligned u64 on the supported targets, and a stale one only delays the caller.
    let flags = unsafe { std::ptr::read_volatile(std::ptr::addr_of!(sys::ast_options.flags)) };
    flags & (sys::ast_option_flags_AST_OPT_FLAG_FULLY_BOOTED as u64) != 0
}
