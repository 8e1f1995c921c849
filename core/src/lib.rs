#![forbid(unsafe_code)]
//! Domain core of res_deviceuser, the hot-desking ("Device & User" mode) module for Asterisk.
//!
//! Everything here is plain Rust with no Asterisk dependency, so the rules that decide who is
//! logged in where can be unit- and property-tested without a running PBX. The cdylib in the
//! workspace root only translates between Asterisk's C APIs and these types.
//!
//! - [`config`]: validated model of `res_deviceuser.conf`.
//! - [`dialplan`]: the order Asterisk keeps a context's extensions in.
//! - [`table`]: the binding table (device ↔ user), lock-free for readers.
//! - [`pmap`]: the persistent hash map the table's snapshots are made of.
//! - [`astdb`]: how bindings are persisted in AstDB.
//! - [`render`]: CLI text output.
//! - [`args`]: dialplan argument and DTMF input parsing.
//! - [`password`]: plain and hashed PINs.
//! - [`policy`]: time-based logouts (max login time, shift end, unregistered devices) and
//!   PIN lockout.
//! - [`stats`]: per-user login statistics.
//! - [`realtime`]: bindings shared by several nodes in a database, and which nodes are up.

pub mod args;
pub mod astdb;
pub mod config;
pub mod dialplan;
pub mod freepbx;
pub mod idmap;
pub mod journal;
pub mod password;
pub mod pmap;
pub mod policy;
pub mod realtime;
pub mod render;
pub mod stats;
pub mod table;
pub mod text;

/// The inline string type of ids in the config and in bindings.
pub use compact_str::CompactString;
pub use config::{
    Config, ConfigError, Device, DeviceMode, General, MultipleLogins, Override, Parsed, Storage,
    TimeOfDay, User,
};
pub use password::hash_password;
pub use policy::{Lockout, Unregistered};
pub use stats::Stats;
pub use table::{
    Binding, BindingTable, Changes, LoginError, LoginMode, LogoutError, Reason, Snapshot,
    StoreError,
};
