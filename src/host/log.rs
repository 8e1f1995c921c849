//! Logging through Asterisk's logger (`ast_log`, `__ast_verbose`).
//!
//! Asterisk writes a message's "file" in every log (`full.log`: `WARNING[..] res_deviceuser:
//! ...`) and, on consoles, its line and "function" too, as C modules show
//! `res_foo.c:123 load_module:`. The file is the module's name, so that every line says who
//! wrote it; the function is the Rust source line that logged (`src/apps.rs:120`), which only
//! consoles show. (The module's name in both made consoles print it twice.)
use std::ffi::CString;
use std::os::raw::c_int;
use std::panic::Location;

use deviceuser_core::logtext::one_line;

use super::cstring;
use crate::sys;

const MODULE: &std::ffi::CStr = c"res_deviceuser";

/// `src/apps.rs:120`: where the message was logged.
fn origin(at: &Location<'_>) -> CString {
    cstring(&format!("{}:{}", at.file(), at.line()))
}

#[track_caller]
fn ast_log(level: u32, msg: &str) {
    // Values are escaped where each message is built (`logtext::quoted`/`value`); this
    // keeps any that was not from ending the line.
    let text = cstring(&one_line(msg));
    let origin = origin(Location::caller());
    // SAFETY: ast_log is variadic; the format is the constant "%s\n" and the single argument
    // a valid NUL-terminated string that outlives the call. File and function are valid C
    // strings that outlive the call (Asterisk copies what it keeps).
    unsafe {
        sys::ast_log(
            level as c_int,
            MODULE.as_ptr(),
            0,
            origin.as_ptr(),
            c"%s\n".as_ptr(),
            text.as_ptr(),
        )
    }
}

#[track_caller]
pub fn error(msg: &str) {
    ast_log(sys::__LOG_ERROR, msg);
}

#[track_caller]
pub fn warning(msg: &str) {
    ast_log(sys::__LOG_WARNING, msg);
}

#[track_caller]
pub fn notice(msg: &str) {
    ast_log(sys::__LOG_NOTICE, msg);
}

/// A verbose message at `level` (shown from `core set verbose <level>` on), like `ast_verb`.
#[track_caller]
pub fn verbose(level: i32, msg: &str) {
    if verbose_shown(level) {
        emit_verbose(level, msg);
    }
}

/// [`verbose`], with the message built only if something shows it (the commit path logs
/// every login at level 3, which is usually off).
#[track_caller]
pub fn verbose_with(level: i32, msg: impl FnOnce() -> String) {
    if verbose_shown(level) {
        emit_verbose(level, &msg());
    }
}

fn verbose_shown(level: i32) -> bool {
    // SAFETY: ast_verb_sys_level is a plain int global the logger keeps current.
    unsafe { sys::ast_verb_sys_level >= level }
}

#[track_caller]
fn emit_verbose(level: i32, msg: &str) {
    let text = cstring(&one_line(msg));
    let origin = origin(Location::caller());
    // SAFETY: variadic with the constant format "%s\n" and one valid C string argument; file
    // and function are valid C strings that outlive the call.
    unsafe {
        sys::__ast_verbose(
            MODULE.as_ptr(),
            0,
            origin.as_ptr(),
            level,
            c"%s\n".as_ptr(),
            text.as_ptr(),
        )
    }
}

/// A debug message (shown with `core set debug` on).
#[track_caller]
pub fn debug(msg: &str) {
    ast_log(sys::__LOG_DEBUG, msg);
}
