//! Hints the module owns (`[general] hint_context`): `exten => <user>,hint,DeviceUser:<user>`.
//! They are registered under the module's registrar, so `dialplan reload` keeps them, and
//! replacing a hint keeps its watchers.
use super::{cstring, from_c};
use crate::sys;

/// Stored by pointer in every extension: must be static.
static REGISTRAR: &std::ffi::CStr = c"res_deviceuser";

pub fn add(context: &str, exten: &str, devices: &str) -> Result<(), String> {
    let (c, e, d) = (cstring(context), cstring(exten), cstring(devices));
    // SAFETY: valid C strings; a NULL context list means the global dialplan, which takes
    // and releases its own locks. REGISTRAR is static.
    unsafe {
        if sys::ast_context_find_or_create(
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            c.as_ptr(),
            REGISTRAR.as_ptr(),
        )
        .is_null()
        {
            return Err(format!("cannot create context {context}"));
        }
        // A hint's "application" is its device list; its data is an empty string that Asterisk
        // frees with its own allocator (so nothing points into this module after unload).
        let data = sys::__ast_strdup(c"".as_ptr(), REGISTRAR.as_ptr(), 0, REGISTRAR.as_ptr());
        let res = sys::ast_add_extension(
            c.as_ptr(),
            1,
            e.as_ptr(),
            HINT_PRIORITY,
            std::ptr::null(),
            std::ptr::null(),
            d.as_ptr(),
            data.cast(),
            Some(sys::ast_free_ptr),
            REGISTRAR.as_ptr(),
        );
        if res != 0 {
            return Err(format!("cannot add hint {exten}@{context}"));
        }
    }
    Ok(())
}

pub fn remove(context: &str, exten: &str) {
    let (c, e) = (cstring(context), cstring(exten));
    // SAFETY: valid C strings.
    unsafe {
        sys::ast_context_remove_extension(c.as_ptr(), e.as_ptr(), HINT_PRIORITY, REGISTRAR.as_ptr())
    };
}

/// The hints the module registered in `context`: (extension, device list) pairs, read in one
/// walk of the context. The walk holds Asterisk's global contexts lock (a mutex in Asterisk
/// 22, so dialplan lookups wait for it; about a millisecond for 10,000 extensions) and the
/// context's read lock, taken in that order as Asterisk's own `dialplan show` does
/// (`show_dialplan_helper` in `main/pbx.c`). Only the hints found are copied.
pub fn owned(context: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let registrar = REGISTRAR.to_bytes();
    // SAFETY: the contexts lock keeps the list of contexts and every context alive while we
    // walk; the context's own read lock keeps its extensions and their strings alive until
    // ast_unlock_context. Names are compared in place (non-NULL, NUL-terminated strings
    // Asterisk owns) and only matching entries are copied, before the locks are released.
    // Nothing else of Asterisk is called while they are held.
    unsafe {
        let is = |p: *const std::os::raw::c_char, want: &[u8]| {
            !p.is_null() && std::ffi::CStr::from_ptr(p).to_bytes() == want
        };
        sys::ast_rdlock_contexts();
        let mut con = sys::ast_walk_contexts(std::ptr::null_mut());
        while !con.is_null() && !is(sys::ast_get_context_name(con), context.as_bytes()) {
            con = sys::ast_walk_contexts(con);
        }
        if !con.is_null() {
            sys::ast_rdlock_context(con);
            let mut e = sys::ast_walk_context_extensions(con, std::ptr::null_mut());
            while !e.is_null() {
                let mut p = sys::ast_walk_extension_priorities(e, std::ptr::null_mut());
                while !p.is_null() {
                    if sys::ast_get_extension_priority(p) == HINT_PRIORITY
                        && is(sys::ast_get_extension_registrar(p), registrar)
                    {
                        if let (Some(name), Some(app)) = (
                            from_c(sys::ast_get_extension_name(p)),
                            from_c(sys::ast_get_extension_app(p)),
                        ) {
                            found.push((name, app));
                        }
                    }
                    p = sys::ast_walk_extension_priorities(e, p);
                }
                e = sys::ast_walk_context_extensions(con, e);
            }
            sys::ast_unlock_context(con);
        }
        sys::ast_unlock_contexts();
    }
    found
}

/// The priority of a hint (`PRIORITY_HINT` in pbx.h).
const HINT_PRIORITY: i32 = -1;
