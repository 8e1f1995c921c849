//! The journal file next to AstDB (see `deviceuser_core::journal` for why and what): appended
//! by the commit pipeline's first sink before a change is acknowledged, replayed at load,
//! compacted when it grows, and emptied once AstDB has surely committed what it holds.
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use deviceuser_core::journal::{encode, Entry};

use crate::host::{astdb_path, log};

/// AstDB commits about a second after a write: entries older than this are in AstDB.
pub const COMMITTED_AFTER: Duration = Duration::from_secs(3);
/// Past this size the journal is rewritten as the current state.
const COMPACT_AT: u64 = 4 << 20;

struct Open {
    file: File,
    len: u64,
    last_append: Instant,
    failed: bool,
}

/// The journal; closed until [`Journal::open`] and after [`Journal::close`].
#[derive(Default)]
pub struct Journal {
    file: Mutex<Option<Open>>,
}

fn path() -> String {
    format!("{}.res_deviceuser.journal", astdb_path())
}

/// What the journal file holds (empty if there is none).
pub fn read() -> String {
    match fs::read(path()) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => String::new(),
    }
}

impl Journal {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Open>> {
        self.file.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a new journal holding `state` (the whole current state), replacing the old one
    /// atomically (write to a temporary file, then rename).
    pub fn open(&self, state: &str) -> Result<(), String> {
        let p = path();
        let tmp = format!("{p}.new");
        fs::write(&tmp, state)
            .and_then(|()| fs::rename(&tmp, &p))
            .map_err(|e| format!("cannot write the journal {p}: {e}"))?;
        let file = OpenOptions::new()
            .append(true)
            .open(&p)
            .map_err(|e| format!("cannot open the journal {p}: {e}"))?;
        *self.lock() = Some(Open {
            file,
            len: state.len() as u64,
            last_append: Instant::now(),
            failed: false,
        });
        Ok(())
    }

    /// Appends entries; `state` gives the whole current state if the journal must be
    /// compacted. Called under the table's writer lock, so entries are in commit order.
    pub fn append(&self, entries: &[Entry], state: impl FnOnce() -> String) {
        if entries.is_empty() {
            return;
        }
        let mut guard = self.lock();
        let Some(j) = guard.as_mut() else { return };
        let text: String = entries.iter().map(encode).collect();
        // One write call: a kill leaves at most a torn last line, which replay skips.
        match j.file.write_all(text.as_bytes()) {
            Ok(()) => {
                j.len += text.len() as u64;
                j.last_append = Instant::now();
                j.failed = false;
            }
            Err(e) if !j.failed => {
                j.failed = true;
                log::error(&format!(
                    "journal write failed ({e}): changes rely on AstDB alone"
                ));
            }
            Err(_) => {}
        }
        if j.len > COMPACT_AT {
            drop(guard);
            if let Err(e) = self.open(&state()) {
                log::error(&e);
            }
        }
    }

    /// Empties the journal once nothing was appended for a while and `astdb_idle` says
    /// nothing was written to AstDB for as long (AstDB has committed it all by then).
    pub fn truncate_if_idle(&self, astdb_idle: bool) {
        let mut guard = self.lock();
        let Some(j) = guard.as_mut() else { return };
        if j.len > 0 && j.last_append.elapsed() > COMMITTED_AFTER && astdb_idle {
            match j.file.set_len(0) {
                Ok(()) => j.len = 0,
                Err(e) => log::warning(&format!("cannot empty the journal: {e}")),
            }
        }
    }

    /// Closes the file (its content stays for the next load).
    pub fn close(&self) {
        self.lock().take();
    }
}
