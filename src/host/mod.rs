//! Every `unsafe` call into Asterisk lives under this module, behind safe wrappers.
//! Feature code (src/*.rs outside host/) uses only these wrappers.
//!
//! Rule for the whole module: no thread-local value with a destructor may be touched on an
//! Asterisk thread (it would pin the shared object after `module unload`; see SAFETY.md).

pub mod alloc;
pub mod ami;
pub mod ari;
pub mod astdb;
pub mod channel;
pub mod cli;
pub mod clock;
pub mod config;
pub mod config_edit;
pub mod devstate;
pub mod doorbell;
pub mod guard;
pub mod hints;
pub mod http;
pub mod log;
pub mod manager;
pub mod mwi;
pub mod prometheus;
pub mod realtime;
pub mod register;
pub mod security;
pub mod thread;
pub mod websocket;

use std::ffi::{CStr, CString};
use std::os::raw::c_char;

/// A C string for Asterisk, with interior NULs (never valid in Asterisk strings) dropped.
pub fn cstring(s: &str) -> CString {
    let mut bytes = Vec::with_capacity(s.len() + 1);
    bytes.extend(s.bytes().filter(|&b| b != 0));
    CString::new(bytes).unwrap_or_default()
}

/// Reads a C string owned by Asterisk into a Rust string (lossy for non-UTF-8 bytes).
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string valid for the duration of the call.
pub unsafe fn from_c(ptr: *const c_char) -> Option<String> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: non-NULL and NUL-terminated per this function's contract.
    Some(
        unsafe { CStr::from_ptr(ptr) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// Path of Asterisk's AstDB file, without the `.sqlite3` suffix (`astdbdir/astdb`).
pub fn astdb_path() -> String {
    // SAFETY: a global that Asterisk sets from asterisk.conf before loading modules and
    // never changes while they run.
    unsafe { from_c(crate::sys::ast_config_AST_DB) }.unwrap_or_default()
}
