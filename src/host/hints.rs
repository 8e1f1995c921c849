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
/// walk of the context under Asterisk's dialplan read locks (taken in Asterisk's own order:
/// all contexts, then the context), with nothing else called while they are held.
pub fn owned(context: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    // SAFETY: the contexts lock keeps the list of contexts and every context alive while we
    // walk; the context's own read lock keeps its extensions and their strings alive until
    // ast_unlock_context. Strings are copied before the locks are released. The walk is the
    // one `dialplan show` does (pbx_config.c).
    unsafe {
        sys::ast_rdlock_contexts();
        let mut con = sys::ast_walk_contexts(std::ptr::null_mut());
        while !con.is_null() {
            if from_c(sys::ast_get_context_name(con)).as_deref() == Some(context) {
                break;
            }
            con = sys::ast_walk_contexts(con);
        }
        if !con.is_null() {
            sys::ast_rdlock_context(con);
            let mut e = sys::ast_walk_context_extensions(con, std::ptr::null_mut());
            while !e.is_null() {
                let mut p = sys::ast_walk_extension_priorities(e, std::ptr::null_mut());
                while !p.is_null() {
                    if sys::ast_get_extension_priority(p) == HINT_PRIORITY
                        && from_c(sys::ast_get_extension_registrar(p)).as_deref()
                            == REGISTRAR.to_str().ok()
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
