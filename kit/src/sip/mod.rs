//! SIP peers, each a child process with its own folder, killed when dropped:
//! - [`Sipp`]: sipp running a scenario of `tests/sipp/` (register, calls, a presence
//!   subscriber) against an [`Asterisk`], with its message trace;
//! - [`Watcher`]: a sipp presence subscriber that timestamps every NOTIFY it receives, for
//!   latency measurements;
//! - [`Baresip`]: a baresip softphone driven over `ctrl_tcp` (calls with audio, DTMF).

mod baresip;
mod sipp;
mod watcher;

pub use baresip::Baresip;
pub use sipp::Sipp;
pub use watcher::{basic, latency, Notify, Watcher};

use std::fs;
use std::path::PathBuf;

use crate::{repo, Asterisk};

/// Password of a sample endpoint (`samples/pjsip.conf`): `secret<id>`.
pub fn secret(endpoint: &str) -> String {
    format!("secret{endpoint}")
}

/// Path of a scenario of `tests/sipp/`.
pub fn scenario(name: &str) -> PathBuf {
    let p = repo().join("tests/sipp").join(name);
    assert!(p.exists(), "no sipp scenario {}", p.display());
    p
}

/// A fresh folder for a peer, under the instance's run folder.
fn peer_dir(ast: &Asterisk, kind: &str) -> PathBuf {
    let dir = ast
        .run
        .join("peers")
        .join(format!("{kind}-{}", crate::next_number()));
    fs::create_dir_all(&dir).unwrap();
    dir
}
