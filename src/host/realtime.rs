//! Asterisk's realtime API (`ast_*_realtime_fields`): the families an administrator maps to
//! database tables in `extconfig.conf` (`res_config_pgsql`, `res_config_odbc`, ...). Every
//! call may block on the database; none is made on a device state or dialplan lock.
use std::os::raw::c_int;

use super::{cstring, from_c};
use crate::sys;

/// A list of `name = value` pairs in Asterisk's form (`struct ast_variable`), freed on drop.
struct Fields(*mut sys::ast_variable);

impl Fields {
    fn new(pairs: &[(&str, &str)]) -> Result<Fields, String> {
        let mut fields = Fields(std::ptr::null_mut());
        let mut tail: *mut sys::ast_variable = std::ptr::null_mut();
        for (name, value) in pairs {
            let (n, v) = (cstring(name), cstring(value));
            // SAFETY: valid C strings: name, value and filename are copied into the new
            // variable; the source file and function names are 'static literals. The
            // variable is ours until ast_variables_destroy.
            let var = unsafe {
                sys::_ast_variable_new(
                    n.as_ptr(),
                    v.as_ptr(),
                    c"".as_ptr(),
                    c"realtime.rs".as_ptr(),
                    c"Fields::new".as_ptr(),
                    0,
                )
            };
            if var.is_null() {
                return Err("out of memory".into());
            }
            if tail.is_null() {
                fields.0 = var;
            } else {
                // SAFETY: tail is the last live element of our list; var is a fresh element.
                unsafe { (*tail).next = var };
            }
            tail = var;
        }
        Ok(fields)
    }
}

impl Drop for Fields {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: a list we built with _ast_variable_new, destroyed once.
            unsafe { sys::ast_variables_destroy(self.0) };
        }
    }
}

/// Why a realtime call failed, as far as Asterisk tells: it returns -1 for an unreachable
/// database and for a rejected statement (a unique key violated) alike.
pub type Failed = String;

fn rows(res: c_int, what: &str, family: &str) -> Result<usize, Failed> {
    usize::try_from(res).map_err(|_| format!("{what} on realtime family {family} failed"))
}

/// Whether `extconfig.conf` maps `family` to a realtime engine.
pub fn is_mapped(family: &str) -> bool {
    let f = cstring(family);
    // SAFETY: valid C string.
    unsafe { sys::ast_realtime_is_mapping_defined(f.as_ptr()) != 0 }
}

/// `UPDATE family SET update... WHERE lookup...`: the number of rows changed.
pub fn update(
    family: &str,
    lookup: &[(&str, &str)],
    update: &[(&str, &str)],
) -> Result<usize, Failed> {
    let (lookup, update_fields, f) = (Fields::new(lookup)?, Fields::new(update)?, cstring(family));
    // SAFETY: valid C string and two valid lists, which Asterisk only reads.
    let res = unsafe { sys::ast_update2_realtime_fields(f.as_ptr(), lookup.0, update_fields.0) };
    rows(res, "update", family)
}

/// `INSERT INTO family (...) VALUES (...)`: the number of rows stored.
pub fn store(family: &str, fields: &[(&str, &str)]) -> Result<usize, Failed> {
    let (fields, f) = (Fields::new(fields)?, cstring(family));
    // SAFETY: valid C string and list, which Asterisk only reads.
    let res = unsafe { sys::ast_store_realtime_fields(f.as_ptr(), fields.0) };
    rows(res, "store", family)
}

/// `DELETE FROM family WHERE key = lookup AND extra...`: the number of rows deleted.
pub fn destroy(
    family: &str,
    key: &str,
    lookup: &str,
    extra: &[(&str, &str)],
) -> Result<usize, Failed> {
    let (extra, f, k, l) = (
        Fields::new(extra)?,
        cstring(family),
        cstring(key),
        cstring(lookup),
    );
    // SAFETY: valid C strings and list, which Asterisk only reads.
    let res =
        unsafe { sys::ast_destroy_realtime_fields(f.as_ptr(), k.as_ptr(), l.as_ptr(), extra.0) };
    rows(res, "destroy", family)
}

/// The rows of `family` matching every `(field, value)` of `lookup` (a field may carry an
/// operator: `("device LIKE", "%")`), each as its `(column, value)` pairs; empty values are
/// left out by the engines. `None` when nothing came back: no rows and a failed query look
/// the same through this API.
pub fn load(family: &str, lookup: &[(&str, &str)]) -> Option<Vec<Vec<(String, String)>>> {
    let fields = Fields::new(lookup).ok()?;
    let f = cstring(family);
    // SAFETY: valid C string and list; the result is NULL or a config we own.
    let cfg = unsafe { sys::ast_load_realtime_multientry_fields(f.as_ptr(), fields.0) };
    if cfg.is_null() {
        return None;
    }
    // SAFETY: a live config, destroyed just after.
    let sections = unsafe { super::config::sections_of(cfg) };
    // SAFETY: cfg came from the realtime engine and is destroyed once.
    unsafe { sys::ast_config_destroy(cfg) };
    Some(
        sections
            .into_iter()
            .map(|s| s.vars.into_iter().map(|v| (v.key, v.value)).collect())
            .collect(),
    )
}

/// Asterisk's `systemname` (asterisk.conf), if set.
pub fn system_name() -> Option<String> {
    // SAFETY: a global Asterisk sets from asterisk.conf before loading modules.
    unsafe { from_c(sys::ast_config_AST_SYSTEM_NAME) }.filter(|s| !s.is_empty())
}
