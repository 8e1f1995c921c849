//! Logging through Asterisk's logger (`ast_log`, `__ast_verbose`).
use std::os::raw::c_int;

use super::cstring;
use crate::sys;

fn ast_log(level: u32, msg: &str) {
    let text = cstring(msg);
    // SAFETY: ast_log is variadic; the format is the constant "%s\n" and the single argument
    // a valid NUL-terminated string that outlives the call. File and function are static.
    unsafe {
        sys::ast_log(
            level as c_int,
            c"res_deviceuser".as_ptr(),
            0,
            c"res_deviceuser".as_ptr(),
            c"%s\n".as_ptr(),
            text.as_ptr(),
        )
    }
}

pub fn error(msg: &str) {
    ast_log(sys::__LOG_ERROR, msg);
}

pub fn warning(msg: &str) {
    ast_log(sys::__LOG_WARNING, msg);
}

pub fn notice(msg: &str) {
    ast_log(sys::__LOG_NOTICE, msg);
}

/// A verbose message at `level` (shown from `core set verbose <level>` on), like `ast_verb`.
pub fn verbose(level: i32, msg: &str) {
    if verbose_shown(level) {
        emit_verbose(level, msg);
    }
}

/// [`verbose`], with the message built only if something shows it (the commit path logs
/// every login at level 3, which is usually off).
pub fn verbose_with(level: i32, msg: impl FnOnce() -> String) {
    if verbose_shown(level) {
        emit_verbose(level, &msg());
    }
}

fn verbose_shown(level: i32) -> bool {
    // SAFETY: ast_verb_sys_level is a plain int global the logger keeps current.
    unsafe { sys::ast_verb_sys_level >= level }
}

fn emit_verbose(level: i32, msg: &str) {
    let text = cstring(msg);
    // SAFETY: variadic with the constant format "%s\n" and one valid C string argument.
    unsafe {
        sys::__ast_verbose(
            c"res_deviceuser".as_ptr(),
            0,
            c"res_deviceuser".as_ptr(),
            level,
            c"%s\n".as_ptr(),
            text.as_ptr(),
        )
    }
}

/// A debug message (shown with `core set debug` on).
pub fn debug(msg: &str) {
    ast_log(sys::__LOG_DEBUG, msg);
}
