//! Background threads of the module's own, started with `pthread_create` directly.
//!
//! `std::thread::spawn` registers a thread-local destructor (for the thread's handle) in the
//! module; glibc then never unmaps the module after `dlclose`, so `module unload` would leave
//! the old code mapped. A bare pthread running a plain closure registers nothing.
use std::ffi::CStr;
use std::os::raw::c_void;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

type Body = Box<dyn FnOnce() + Send>;

pub struct Thread(libc::pthread_t);

extern "C" fn trampoline(arg: *mut c_void) -> *mut c_void {
    // SAFETY: `arg` is the `Box<Body>` leaked by `spawn` for this thread alone.
    let body: Box<Body> = unsafe { Box::from_raw(arg.cast::<Body>()) };
    super::guard::guard("module thread", (), body);
    std::ptr::null_mut()
}

/// Starts `body` on a new thread named `name` (at most 15 bytes: what `top -H`, `ps -L` and
/// `/proc/<pid>/task/<tid>/comm` show). `body` must not touch thread-local values with
/// destructors (no `std::thread::current()`, no `thread_local!` with a `Drop` type).
pub fn spawn(name: &'static CStr, body: impl FnOnce() + Send + 'static) -> Result<Thread, String> {
    let arg = Box::into_raw(Box::new(Box::new(body) as Body));
    // SAFETY: an all-zero pthread_t is a valid placeholder that pthread_create overwrites.
    let mut t: libc::pthread_t = unsafe { std::mem::zeroed() };
    // SAFETY: default attributes; the trampoline has the C signature pthread expects and
    // takes ownership of `arg` (the thread is joined before the module's code is unmapped).
    let rc = unsafe { libc::pthread_create(&mut t, std::ptr::null(), trampoline, arg.cast()) };
    if rc != 0 {
        // SAFETY: no thread took `arg`; it is freed once, here.
        drop(unsafe { Box::from_raw(arg) });
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

/// A stop request a thread waits on between rounds of work.
#[derive(Default)]
pub struct StopSignal {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl StopSignal {
    /// Waits up to `d`; true once a stop was requested.
    pub fn wait(&self, d: Duration) -> bool {
        let stopped = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        let (stopped, _) = self
            .wake
            .wait_timeout_while(stopped, d, |s| !*s)
            .unwrap_or_else(|e| e.into_inner());
        *stopped
    }

    pub fn stop(&self) {
        *self.stopped.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.wake.notify_all();
    }
}

/// A thread that runs until it is dropped: dropping it asks it to stop and joins it.
pub struct Worker {
    signal: Arc<StopSignal>,
    thread: Option<Thread>,
}

impl Worker {
    /// Starts `body`, which should return soon after its [`StopSignal`] says stop.
    pub fn start(
        name: &'static CStr,
        body: impl FnOnce(Arc<StopSignal>) + Send + 'static,
    ) -> Result<Worker, String> {
        let signal = Arc::new(StopSignal::default());
        let s = Arc::clone(&signal);
        let thread = spawn(name, move || body(s))?;
        Ok(Worker {
            signal,
            thread: Some(thread),
        })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.signal.stop();
        if let Some(t) = self.thread.take() {
            t.join();
        }
    }
}
