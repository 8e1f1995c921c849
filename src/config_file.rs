//! Reading `res_deviceuser.conf` through Asterisk's config engine into the core's validated
//! model, logging every error and warning (file, line, section, key).
use deviceuser_core::config::Config;

use crate::host::{config, log};

pub const CONFIG_FILE: &str = "res_deviceuser.conf";

/// From this many devices and users, reading the config leaves enough freed memory behind
/// (Asterisk's config structures, the raw model) to hand it back to the system at once.
const LARGE_CONFIG: usize = 10_000;

/// Reads and validates the config file.
pub fn read() -> Result<Config, String> {
    let config = read_file()?;
    if config.devices.len() + config.users.len() >= LARGE_CONFIG {
        crate::host::alloc::trim();
    }
    Ok(config)
}

fn read_file() -> Result<Config, String> {
    let raw = match config::load(CONFIG_FILE) {
        config::Loaded::Missing => return Err(format!("{CONFIG_FILE} is missing")),
        config::Loaded::Invalid => return Err(format!("{CONFIG_FILE} cannot be parsed")),
        config::Loaded::Config(raw) => raw,
    };
    let node = crate::host::realtime::system_name();
    match Config::from_raw_on(&raw, node.as_deref()) {
        Ok(parsed) => {
            for w in &parsed.warnings {
                log::warning(&w.to_string());
            }
            Ok(parsed.config)
        }
        Err(errors) => {
            for e in &errors {
                log::error(&e.to_string());
            }
            Err(format!("{CONFIG_FILE} has {} error(s)", errors.len()))
        }
    }
}
