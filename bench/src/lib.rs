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
pub mod e2e;
pub mod reload;

use std::time::Duration;

use deviceuser_kit::{module_built, repo, Ami, Asterisk};

/// `res_deviceuser.so` the instances get: `DEVICEUSER_MODULE`, else the release build.
pub fn module_file() -> std::path::PathBuf {
    module_built("release")
}

/// An instance in `bench/tmp/<name>` (kept after the run) with these files of `etc/` over the
/// samples; with `module_noload` the module is installed but not loaded, so its load can be
/// timed.
pub fn start_instance(
    name: &str,
    confs: Vec<(&str, String)>,
    module_noload: bool,
) -> Result<Asterisk, String> {
    let module = module_file();
    if !module.exists() {
        return Err(format!(
            "{} does not exist: run cargo build --release",
            module.display()
        ));
    }
    let mut b = Asterisk::builder(name)
        .run_dir(repo().join("bench/tmp").join(name))
        .module_file(module)
        .module_noload(module_noload)
        .collect_module_lines(false);
    for (file, content) in &confs {
        b = b.conf(file, content);
    }
    b.start_or_err()
}

/// The driver's AMI session: the `deviceuser` manager user, no events, and up to 120 s for a
/// response (a reload of 100,000 users answers late).
pub fn driver_session(port: u16) -> Result<Ami, String> {
    let mut ami = Ami::connect_with_events(port, "deviceuser", "deviceuser", "off")?;
    ami.timeout = Duration::from_secs(120);
    Ok(ami)
}

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
