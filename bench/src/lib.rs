//! Performance benchmarks of res_deviceuser. The driver (`deviceuser-bench`) boots real
//! Asterisk instances (through `deviceuser-kit`, the kit the integration tests use too) and
//! measures the module against baselines in the same run; the criterion benchmark
//! (`benches/binding_table.rs`) measures the binding table's read path; `infrastructure` and
//! `table-memory` measure the snapshot cell and the persistent map against the crates that
//! could replace them (`docs/benchmarks-infrastructure.md`).
//! Nothing here asserts a time: figures and ratios are reported side by side.

pub mod conf;
pub mod console;
pub mod contention;

use std::time::Duration;

/// The value at quantile `q` (0..=1) of sorted samples.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Milliseconds with 2 decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}
