#![no_main]
//! See `deviceuser_fuzz::table_ops` for what this target checks.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| deviceuser_fuzz::table_ops(data));
