#![no_main]
//! See `deviceuser_fuzz::args` for what this target checks.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| deviceuser_fuzz::args(data));
