//! res_deviceuser: hot-desking ("Device & User" mode) for Asterisk.
//!
//! Layers: `sys` (generated bindings), `host` (every `unsafe`: safe wrappers over Asterisk
//! and the entry points the C shim calls), feature adapters (`apps`, `functions`, `cli`),
//! `runtime` (the live state and commit path), and the pure `deviceuser_core` crate.
#![deny(unsafe_op_in_unsafe_fn)]

mod ami;
mod apps;
mod cli;
mod deferred;
mod functions;
mod host;
mod journal;
mod policy;
mod runtime;
mod sys;

/// Counts the module's heap for `deviceuser show stats`; allocation itself is Asterisk's malloc.
#[global_allocator]
static ALLOCATOR: host::alloc::Counting = host::alloc::Counting;
