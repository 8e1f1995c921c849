//! The one guard every `extern "C"` entry point goes through: a panic is caught, logged
//! through Asterisk's logger, and turned into the host's failure value. A panic crossing
//! into C would abort the whole PBX.
use std::panic::{self, AssertUnwindSafe};

use super::log;

/// Runs `f`; if it panics, logs `what` and returns `failure` instead.
pub fn guard<R>(what: &str, failure: R, f: impl FnOnce() -> R) -> R {
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => {
            log::error(&format!(
                "internal error in {what}; the operation was abandoned"
            ));
            failure
        }
    }
}

/// Routes panic messages to Asterisk's logger instead of the process's stderr.
/// The hook avoids `std::thread::current()`: that would create a thread-local value with a
/// destructor on an Asterisk thread and pin the module in memory.
pub fn install_panic_hook() {
    panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        log::error(&format!("panic{at}: {msg}"));
    }));
}

/// Gives the process's panic hook back before the module's code is unmapped.
pub fn remove_panic_hook() {
    drop(panic::take_hook());
}
