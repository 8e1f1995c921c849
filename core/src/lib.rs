#![forbid(unsafe_code)]
//! Domain core of res_deviceuser, the hot-desking ("Device & User" mode) module for Asterisk.
//!
//! Everything here is plain Rust with no Asterisk dependency, so the rules that decide who is
//! logged in where can be unit- and property-tested without a running PBX. The cdylib in the
//! workspace root only translates between Asterisk's C APIs and these types.
//!
//! - [`config`]: validated model of `res_deviceuser.conf`.
//! - [`table`]: the binding table (device ↔ user), lock-free for readers.
//! - [`astdb`]: how bindings are persisted in AstDB.
//! - [`render`]: CLI text output.
//! - [`args`]: dialplan argument and DTMF input parsing.

pub mod args;
pub mod astdb;
pub mod config;
pub mod render;
pub mod table;

pub use config::{Config, ConfigError, Device, DeviceMode, General, MultipleLogins, Parsed, User};
pub use table::{
    Binding, BindingTable, Changes, LoginError, LoginMode, LogoutError, Reason, Snapshot,
};
