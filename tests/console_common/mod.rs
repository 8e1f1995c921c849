//! Shared parts of the console tests: an Asterisk with its HTTP server on and console users
//! configured. The HTTP, WebSocket and WebDriver clients are the kit's
//! (`deviceuser_kit::web`), which the benchmark driver uses too.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

#[allow(unused_imports)]
pub use crate::common::web::{request, Browser, Client, Driver, Resp, Ws};

use crate::common::{self, Asterisk, Builder};
use crate::hotdesk_common as hd;

pub const ADMIN: (&str, &str) = ("admin", "admin-Pa55");
pub const SUPERVISOR: (&str, &str) = ("super", "super-Pa55");

/// `http.conf` serving on `port` of 127.0.0.1.
pub fn http_conf(port: u16) -> String {
    format!("[general]\nenabled = yes\nbindaddr = 127.0.0.1\nbindport = {port}\n")
}

/// The sample `res_deviceuser.conf` with an admin and a supervisor console user (hashed
/// passwords) and extra `[general]` lines.
pub fn console_conf(general: &str) -> String {
    let hash = |p: &str| deviceuser_core::hash_password(p);
    format!(
        "{}\n; Console users\n[{}]\ntype = console_user\nrole = admin\npassword = {}\n\n[{}]\ntype = console_user\nrole = supervisor\npassword = {}\n",
        hd::deviceuser_conf_with_general(general),
        ADMIN.0,
        hash(ADMIN.1),
        SUPERVISOR.0,
        hash(SUPERVISOR.1)
    )
}

/// An instance with the test dialplan, the HTTP server on a free port and the console on.
pub fn builder(name: &str, general: &str) -> (Builder, u16) {
    let port = common::free_port();
    let b = hd::builder(name)
        .conf("http.conf", &http_conf(port))
        .conf("res_deviceuser.conf", &console_conf(general));
    (b, port)
}

/// Milliseconds since the epoch.
pub fn epoch_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

/// Where the console tests keep their screenshots.
pub fn screenshots_dir() -> PathBuf {
    common::repo().join("target/console-screenshots")
}

/// The instance's `res_deviceuser.conf`.
pub fn conf_text(ast: &Asterisk) -> String {
    ast.read_conf("res_deviceuser.conf")
}
