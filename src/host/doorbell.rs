//! A doorbell: a descriptor that becomes readable when it is rung and stays so (an
//! `eventfd` that is never read). Any number of threads can wait for it in `poll` beside
//! their own descriptors; ringing it once wakes them all. A rung doorbell is done with: the
//! next wait uses a new one.
use std::os::raw::c_int;

pub struct Doorbell {
    fd: c_int,
}

impl Doorbell {
    pub fn new() -> Result<Doorbell, String> {
        // SAFETY: no pointer arguments; returns a new descriptor or -1.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(format!(
                "eventfd failed: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(Doorbell { fd })
    }

    /// Rings: the descriptor is readable from now on.
    pub fn ring(&self) {
        let one = 1u64;
        // SAFETY: our open descriptor and an 8-byte value, as eventfd requires; non-blocking,
        // a failed write (the counter full) leaves it readable anyway.
        unsafe { libc::write(self.fd, (&one as *const u64).cast(), 8) };
    }

    /// The descriptor to poll for reading (valid while the doorbell lives).
    pub fn fd(&self) -> c_int {
        self.fd
    }
}

impl Drop for Doorbell {
    fn drop(&mut self) {
        // SAFETY: our descriptor, closed once.
        unsafe { libc::close(self.fd) };
    }
}
