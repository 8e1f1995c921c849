//! Hints the module owns (`[general] hint_context`): `exten => <user>,hint,DeviceUser:<user>`.
//! They are registered under the module's registrar, so `dialplan reload` keeps them, and
//! replacing a hint keeps its watchers.
use super::cstring;
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
            -1,
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
    // SAFETY: valid C strings; -1 is the hint priority.
    unsafe { sys::ast_context_remove_extension(c.as_ptr(), e.as_ptr(), -1, REGISTRAR.as_ptr()) };
}
