//! AstDB (Asterisk's persistent key/value store): put, delete and tree reads.
use super::{cstring, from_c};
use crate::sys;

pub fn put(family: &str, key: &str, value: &str) -> Result<(), String> {
    let (f, k, v) = (cstring(family), cstring(key), cstring(value));
    // SAFETY: three valid C strings; ast_db_put copies them.
    match unsafe { sys::ast_db_put(f.as_ptr(), k.as_ptr(), v.as_ptr()) } {
        0 => Ok(()),
        _ => Err(format!("AstDB put /{family}/{key} failed")),
    }
}

/// Deletes a key; a key that is not there is not an error.
pub fn del(family: &str, key: &str) {
    let (f, k) = (cstring(family), cstring(key));
    // SAFETY: two valid C strings.
    unsafe { sys::ast_db_del(f.as_ptr(), k.as_ptr()) };
}

/// Every key under `/family/prefix`, as (key without the leading "/family/", value).
pub fn tree(family: &str, prefix: &str) -> Vec<(String, String)> {
    let f = cstring(family);
    let p = cstring(prefix);
    let mut out = Vec::new();
    // SAFETY: valid C strings; the returned list is ours until ast_db_freetree.
    let head = unsafe {
        sys::ast_db_gettree(
            f.as_ptr(),
            if prefix.is_empty() {
                std::ptr::null()
            } else {
                p.as_ptr()
            },
        )
    };
    let strip = format!("/{family}/");
    let mut entry = head;
    while !entry.is_null() {
        // SAFETY: entry is a live element of the list; key and data are NUL-terminated.
        let (key, value, next) = unsafe {
            (
                from_c((*entry).key).unwrap_or_default(),
                from_c((*entry).data.as_ptr()).unwrap_or_default(),
                (*entry).next,
            )
        };
        out.push((key.strip_prefix(&strip).unwrap_or(&key).to_string(), value));
        entry = next;
    }
    if !head.is_null() {
        // SAFETY: head came from ast_db_gettree and is freed once.
        unsafe { sys::ast_db_freetree(head) };
    }
    out
}
