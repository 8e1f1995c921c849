//! What the administration console keeps while the module is loaded: console users'
//! sessions, their login failures (locked out as wrong PINs are), the lock that makes
//! config edits one at a time, and the key of the ETags it hands out.
use std::sync::{Mutex, MutexGuard, OnceLock};

use deviceuser_core::console::auth::Sessions;
use deviceuser_core::Lockout;

pub struct Access {
    pub sessions: Mutex<Sessions>,
    pub failures: Mutex<Lockout>,
    /// Held for the whole of a config edit (load, validate, write, reload).
    pub edits: Mutex<()>,
    /// The key of the console's ETags (random per load).
    pub etag_key: [u8; 32],
    /// A hash checked against the passwords given for unknown console users.
    decoy: OnceLock<String>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Access {
    pub fn new() -> Result<Access, String> {
        let mut etag_key = [0u8; 32];
        random(&mut etag_key)?;
        Ok(Access {
            sessions: Mutex::new(Sessions::new()),
            failures: Mutex::new(Lockout::new()),
            edits: Mutex::new(()),
            etag_key,
            decoy: OnceLock::new(),
        })
    }

    pub fn sessions(&self) -> MutexGuard<'_, Sessions> {
        lock(&self.sessions)
    }

    pub fn failures(&self) -> MutexGuard<'_, Lockout> {
        lock(&self.failures)
    }

    /// A password hash no password matches by chance, made when first needed.
    pub fn decoy(&self) -> &str {
        self.decoy.get_or_init(|| {
            let mut b = [0u8; 16];
            let _ = random(&mut b);
            deviceuser_core::hash_password(&deviceuser_core::console::auth::hex(&b))
        })
    }

    pub fn edit_lock(&self) -> MutexGuard<'_, ()> {
        lock(&self.edits)
    }
}

/// Fills `buf` from the kernel's random source.
pub fn random(buf: &mut [u8]) -> Result<(), String> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))
}
