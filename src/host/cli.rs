//! CLI handler plumbing: argument access, output, and tab-completion results.
use std::os::raw::{c_char, c_int};

use super::{cstring, from_c};
use crate::sys;

/// Asterisk's CLI handler results (`CLI_SUCCESS`, `CLI_SHOWUSAGE`, `CLI_FAILURE` are the
/// pointer values 0, 1 and 2).
pub const CLI_SUCCESS: *mut c_char = std::ptr::null_mut();
#[allow(clippy::manual_dangling_ptr)]
pub const CLI_SHOWUSAGE: *mut c_char = 1 as *mut c_char;
pub const CLI_FAILURE: *mut c_char = 2 as *mut c_char;

/// What a CLI command's handler ended with.
pub enum Outcome {
    /// Success, with the text to print.
    Done(String),
    /// Wrong arguments: Asterisk prints the usage.
    Usage,
    /// Failure, with the text to print.
    Failed(String),
}

/// Prints the outcome's text and returns Asterisk's result for it.
pub fn finish(fd: c_int, outcome: Outcome) -> *mut c_char {
    match outcome {
        Outcome::Done(text) => {
            print(fd, &text);
            CLI_SUCCESS
        }
        Outcome::Usage => CLI_SHOWUSAGE,
        Outcome::Failed(text) => {
            print(fd, &text);
            CLI_FAILURE
        }
    }
}

pub enum Call {
    /// Fill in the command and usage text.
    Init,
    /// Tab completion of word `pos`, the `n`-th candidate.
    Generate,
    Run,
}

pub struct Args {
    pub fd: c_int,
    pub argv: Vec<String>,
    pub word: String,
    pub pos: usize,
    pub n: usize,
}

pub fn call_kind(cmd: c_int) -> Call {
    match cmd {
        x if x == sys::ast_cli_command_CLI_INIT => Call::Init,
        x if x == sys::ast_cli_command_CLI_GENERATE => Call::Generate,
        _ => Call::Run,
    }
}

/// # Safety
/// `a` points to the `ast_cli_args` of the running CLI call, with `argc` valid `argv` strings.
pub unsafe fn args(a: *const sys::ast_cli_args) -> Args {
    // SAFETY: per contract.
    let a = unsafe { &*a };
    let argv = (0..a.argc.max(0) as usize)
        // SAFETY: argv holds argc valid C strings.
        .map(|i| unsafe { from_c(*a.argv.add(i)) }.unwrap_or_default())
        .collect();
    Args {
        fd: a.fd,
        argv,
        // SAFETY: word is NULL or a valid C string.
        word: unsafe { from_c(a.word) }.unwrap_or_default(),
        pos: a.pos.max(0) as usize,
        n: a.n.max(0) as usize,
    }
}

/// # Safety
/// `e` is the entry being initialized (CLI_INIT); `command` and `usage` are static.
pub unsafe fn init_entry(
    e: *mut sys::ast_cli_entry,
    command: &'static std::ffi::CStr,
    usage: &'static std::ffi::CStr,
) {
    // SAFETY: per contract; Asterisk only reads these strings and never frees them.
    unsafe {
        (*e).command = command.as_ptr().cast_mut();
        (*e).usage = usage.as_ptr();
    }
}

/// Writes text to the CLI session.
pub fn print(fd: c_int, text: &str) {
    let t = cstring(text);
    // SAFETY: variadic with the constant format "%s" and one valid C string.
    unsafe { sys::ast_cli(fd, c"%s".as_ptr(), t.as_ptr()) };
}

/// The `n`-th candidate starting with `word`, as a string Asterisk frees, or NULL.
pub fn complete<'a>(
    word: &str,
    n: usize,
    candidates: impl IntoIterator<Item = &'a str>,
) -> *mut c_char {
    let hit = candidates
        .into_iter()
        .filter(|c| c.to_lowercase().starts_with(&word.to_lowercase()))
        .nth(n);
    match hit {
        Some(c) => {
            let s = cstring(c);
            // SAFETY: valid C string; the copy comes from Asterisk's allocator, which the CLI frees.
            unsafe {
                sys::__ast_strdup(
                    s.as_ptr(),
                    c"res_deviceuser".as_ptr(),
                    0,
                    c"complete".as_ptr(),
                )
            }
        }
        None => std::ptr::null_mut(),
    }
}
