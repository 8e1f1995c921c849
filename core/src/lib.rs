#![forbid(unsafe_code)]
//! Domain core of res_deviceuser, the hot-desking ("Device & User" mode) module for Asterisk.
//!
//! Everything here is plain Rust with no Asterisk dependency, so the rules that decide who is
//! logged in where can be unit- and property-tested without a running PBX. The cdylib in the
//! workspace root only translates between Asterisk's C APIs and these types.
//!
//! - [`apps`]: the prompts and result values of the dialplan applications.
//! - [`config`]: validated model of `res_deviceuser.conf`.
//! - [`console`]: the administration console's API decisions (users, sessions, routes, edits).
//! - [`dialplan`]: the order Asterisk keeps a context's extensions in.
//! - [`failure`]: why a login was refused, as a fixed token and in words.
//! - [`table`]: the binding table (device ↔ user), lock-free for readers.
//! - [`pmap`]: the persistent hash map the table's snapshots are made of.
//! - [`astdb`]: how bindings are persisted in AstDB.
//! - [`render`]: CLI text output.
//! - [`args`]: dialplan argument and DTMF input parsing.
//! - [`logtext`]: values in log lines (escaping, and reading a line back).
//! - [`ari`]: the module's ARI events and who subscribed to them.
//! - [`password`]: plain and hashed PINs.
//! - [`policy`]: time-based logouts (max login time, shift end, unregistered devices) and
//!   PIN lockout.
//! - [`stats`]: per-user login statistics.
//! - [`metrics`]: login counters and their Prometheus text.
//! - [`queues`]: queue membership that follows the user (`app_queue`).
//! - [`realtime`]: bindings shared by several nodes in a database, and which nodes are up.

pub mod apps;
pub mod args;
pub mod ari;
pub mod astdb;
pub mod config;
pub mod console;
pub mod console_users;
pub mod dialplan;
pub mod failure;
pub mod freepbx;
pub mod idmap;
pub mod journal;
pub mod logtext;
pub mod metrics;
pub mod names;
pub mod password;
pub mod pmap;
pub mod policy;
pub mod queues;
pub mod raw;
pub mod realtime;
pub mod render;
pub mod stats;
pub mod table;
/// Config text: the escaping every value the FreePBX importer writes goes through, and a
/// parser for tests, the fuzzer and offline tools (the module reads its config through
/// Asterisk's own engine).
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
    StoreError, StoreRefusal,
};
