//! A background thread of the module's own, started with `pthread_create` directly.
//!
//! `std::thread::spawn` registers a thread-local destructor (for the thread's handle) in the
//! module; glibc then never unmaps the module after `dlclose`, so `module unload` would leave
//! the old code mapped. A bare pthread running a plain function registers nothing.
use std::ffi::CStr;
use std::os::raw::c_void;

pub struct Thread(libc::pthread_t);

extern "C" fn trampoline(arg: *mut c_void) -> *mut c_void {
    // SAFETY: `arg` is the `fn()` pointer passed by `spawn`, cast through a data pointer.
    let body: fn() = unsafe { std::mem::transmute::<*mut c_void, fn()>(arg) };
    super::guard::guard("module thread", (), body);
    std::ptr::null_mut()
}

/// Starts `body` on a new thread named `name` (at most 15 bytes: what `top -H`, `ps -L` and
/// `/proc/<pid>/task/<tid>/comm` show). `body` must not touch thread-local values with
/// destructors (no `std::thread::current()`, no `thread_local!` with a `Drop` type).
pub fn spawn(name: &'static CStr, body: fn()) -> Result<Thread, String> {
    // SAFETY: an all-zero pthread_t is a valid placeholder that pthread_create overwrites.
    let mut t: libc::pthread_t = unsafe { std::mem::zeroed() };
    // SAFETY: default attributes; the trampoline has the C signature pthread expects, and its
    // argument is a function pointer, valid for the program's life while the module is loaded
    // (the thread is joined before unload completes).
    let rc =
        unsafe { libc::pthread_create(&mut t, std::ptr::null(), trampoline, body as *mut c_void) };
    if rc != 0 {
        return Err(format!("pthread_create failed ({rc})"));
    }
    // SAFETY: `t` is the thread just created; the name is NUL-terminated and the kernel copies
    // it. A name that is too long is refused (ERANGE) and the thread keeps the process's name.
    unsafe { libc::pthread_setname_np(t, name.as_ptr()) };
    Ok(Thread(t))
}

impl Thread {
    /// Waits for the thread to end.
    pub fn join(self) {
        // SAFETY: the thread was created joinable and is joined once (self is consumed).
        unsafe { libc::pthread_join(self.0, std::ptr::null_mut()) };
    }
}
