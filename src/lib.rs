//! res_deviceuser: hot-desking ("Device & User" mode) for Asterisk.
//!
//! Layers, bottom up (see ARCHITECTURE.md): `sys` (generated bindings); `host` (every
//! `unsafe`: safe wrappers over Asterisk, registration trampolines); the loaded state and
//! its commit pipeline (`state`, `journal`, `deferred`, `effects`, `pipeline`, `sinks`,
//! `config_file`, `restore`, `hint_sync`, `security`, `instance`); what commits cause in other
//! modules, behind them (`followups`: `queues`, `mwi`); `metrics` and `ari` events; feature
//! adapters
//! (`apps`, `functions`, `cli`, `ami`, `policy`); and `entry`, the tables of what the module
//! registers and the functions the C shim calls. The administration console (`console`) is
//! a feature served over Asterisk's HTTP server; its live feed (`feed`) is a sink of the
//! pipeline, and its sessions are kept in `access`. The domain rules are in the pure
//! `deviceuser_core` crate.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![deny(clippy::disallowed_methods, clippy::disallowed_macros)]

mod access;
mod ami;
mod apps;
mod ari;
mod cli;
mod cluster;
mod config_file;
mod console;
mod deferred;
mod effects;
mod entry;
mod feed;
mod followups;
mod functions;
mod hint_sync;
mod host;
mod instance;
mod journal;
mod metrics;
mod mwi;
mod pipeline;
mod policy;
mod queues;
mod restore;
mod security;
mod sinks;
mod state;
mod sys;

/// Counts the module's heap for `deviceuser show stats`; allocation itself is Asterisk's
/// malloc. The one static besides the entry layer's root: a global allocator must be one.
#[global_allocator]
static ALLOCATOR: host::alloc::Counting = host::alloc::Counting;
