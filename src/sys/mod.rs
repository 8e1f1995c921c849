//! Generated bindings to the Asterisk headers listed in `asterisk-headers/wrapper.h`.
//! Nothing but generated code lives here; see `src/host/` for the safe wrappers.
#![allow(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    dead_code,
    clippy::all,
    clippy::undocumented_unsafe_blocks,
    unsafe_op_in_unsafe_fn,
    improper_ctypes
)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
