//! Reads a configuration file through Asterisk's config engine (`ast_config_load2`), so
//! `#include`, templates and realtime static mappings work, into the core's raw model.
use deviceuser_core::config::{RawConfig, RawSection, RawVar};

use super::{cstring, from_c};
use crate::sys;

pub enum Loaded {
    Missing,
    Invalid,
    Config(RawConfig),
}

pub fn load(file: &str) -> Loaded {
    let name = cstring(file);
    let flags = sys::ast_flags { flags: 0 };
    // SAFETY: valid C strings; the result is NULL, one of the status sentinels, or a config
    // we own until ast_config_destroy.
    let cfg = unsafe { sys::ast_config_load2(name.as_ptr(), c"res_deviceuser".as_ptr(), flags) };
    match cfg as isize {
        0 => return Loaded::Missing,
        -1 | -2 => return Loaded::Invalid,
        _ => {}
    }
    // SAFETY: cfg is a live config, destroyed just after.
    let sections = unsafe { sections_of(cfg) };
    // SAFETY: cfg came from ast_config_load2 and is destroyed once.
    unsafe { sys::ast_config_destroy(cfg) };
    Loaded::Config(RawConfig {
        file: file.to_string(),
        sections,
    })
}

/// The categories of a config, in order, with their variables.
///
/// # Safety
/// `cfg` is a live config that no other thread changes during the call.
pub(super) unsafe fn sections_of(cfg: *mut sys::ast_config) -> Vec<RawSection> {
    let mut sections = Vec::new();
    let mut cat: *mut sys::ast_category = std::ptr::null_mut();
    loop {
        // SAFETY: cfg is a live config; browsing with the previous category (or NULL) is the
        // documented iteration and returns each category once, duplicates included.
        cat = unsafe {
            sys::ast_category_browse_filtered(cfg, std::ptr::null(), cat, std::ptr::null())
        };
        if cat.is_null() {
            break;
        }
        // SAFETY: cat is a live category of cfg.
        let name = unsafe { from_c(sys::ast_category_get_name(cat)) }.unwrap_or_default();
        let mut vars = Vec::new();
        // SAFETY: as above; the variable list belongs to cat.
        let mut var = unsafe { sys::ast_category_first(cat) };
        while !var.is_null() {
            // SAFETY: var is a live element of the list.
            let (key, value, line, next) = unsafe {
                (
                    from_c((*var).name),
                    from_c((*var).value),
                    (*var).lineno,
                    (*var).next,
                )
            };
            vars.push(RawVar {
                key: key.unwrap_or_default(),
                value: value.unwrap_or_default(),
                line: line.max(0) as u32,
            });
            var = next;
        }
        let line = vars.first().map(|v| v.line.saturating_sub(1)).unwrap_or(0);
        sections.push(RawSection { name, line, vars });
    }
    sections
}
