//! AMI (manager) plumbing: reading action headers, responses (including list responses),
//! and events.
use std::ffi::{CStr, CString};
use std::os::raw::c_int;

use super::{cstring, from_c};
use crate::sys;

/// One AMI action being handled: the session and its message, valid for the handler call.
pub struct Action {
    s: *mut sys::mansession,
    m: *const sys::message,
}

/// Appends `v` kept on one line (CR and LF become spaces), so it cannot inject headers into a
/// response or event, and without NULs (never valid in Asterisk strings).
fn push_one_line(out: &mut Vec<u8>, v: &str) {
    out.extend(v.bytes().filter(|&b| b != 0).map(|b| match b {
        b'\r' | b'\n' => b' ',
        b => b,
    }));
}

/// Appends a `key: value` header line, the value on one line.
fn push_field(out: &mut Vec<u8>, key: &str, value: &str) {
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b": ");
    push_one_line(out, value);
    out.extend_from_slice(b"\r\n");
}

/// Text built by [`push_one_line`] and [`push_field`] as a C string (it holds no NUL).
fn c_text(bytes: Vec<u8>) -> CString {
    CString::new(bytes).unwrap_or_default()
}

/// `v` on one line, as a C string.
fn c_one_line(v: &str) -> CString {
    let mut out = Vec::with_capacity(v.len() + 1);
    push_one_line(&mut out, v);
    c_text(out)
}

impl Action {
    /// # Safety
    /// `s` and `m` are the session and message of a running AMI action handler, and the
    /// value is used only during that call.
    pub unsafe fn new(s: *mut sys::mansession, m: *const sys::message) -> Action {
        Action { s, m }
    }

    /// A header of the action, trimmed; empty if absent.
    pub fn header(&self, name: &str) -> String {
        let n = cstring(name);
        // SAFETY: live message; astman_get_header returns a string owned by the message
        // ("" when absent) and does not modify the name.
        let v = unsafe { from_c(sys::astman_get_header(self.m, n.as_ptr().cast_mut())) }
            .unwrap_or_default();
        match v.trim() {
            t if t.len() == v.len() => v,
            t => t.to_string(),
        }
    }

    pub fn ack(&self, msg: &str) {
        let t = c_one_line(msg);
        // SAFETY: live session and message; Asterisk copies the text into the response.
        unsafe { sys::astman_send_ack(self.s, self.m, t.as_ptr().cast_mut()) };
    }

    pub fn error(&self, msg: &str) {
        let t = c_one_line(msg);
        // SAFETY: as above.
        unsafe { sys::astman_send_error(self.s, self.m, t.as_ptr().cast_mut()) };
    }

    /// A list response: "Response: Success / EventList: start", one event per item (each
    /// carrying the action's ActionID), then the `<event>Complete` event with ListItems.
    pub fn list(&self, what: &str, event: &str, complete: &str, items: &[Vec<(&str, String)>]) {
        let msg = cstring(&format!("{what} will follow"));
        // SAFETY: live session and message; constant strings.
        unsafe {
            sys::astman_send_listack(
                self.s,
                self.m,
                msg.as_ptr().cast_mut(),
                c"start".as_ptr().cast_mut(),
            )
        };
        let id = self.header("ActionID");
        for item in items {
            let mut text = Vec::with_capacity(256);
            push_field(&mut text, "Event", event);
            if !id.is_empty() {
                push_field(&mut text, "ActionID", &id);
            }
            for (k, v) in item {
                push_field(&mut text, k, v);
            }
            text.extend_from_slice(b"\r\n");
            self.append(&c_text(text));
        }
        let c = cstring(complete);
        // SAFETY: live session and message; the count fits an int for any real list.
        unsafe {
            sys::astman_send_list_complete_start(
                self.s,
                self.m,
                c.as_ptr(),
                items.len().min(c_int::MAX as usize) as c_int,
            );
            sys::astman_send_list_complete_end(self.s);
        }
    }

    fn append(&self, text: &CStr) {
        // SAFETY: live session; constant "%s" format with one C string.
        unsafe { sys::astman_append(self.s, c"%s".as_ptr(), text.as_ptr()) };
    }
}

/// Sends a manager event of class `agent` to every AMI session allowed to read it.
pub fn event(name: &str, fields: &[(&str, String)]) {
    let mut body = Vec::with_capacity(128);
    for (k, v) in fields {
        push_field(&mut body, k, v);
    }
    let (n, b) = (cstring(name), c_text(body));
    // SAFETY: variadic with the constant format "%s" and one C string; no channels.
    unsafe {
        sys::__ast_manager_event_multichan(
            sys::EVENT_FLAG_AGENT as c_int,
            n.as_ptr(),
            0,
            std::ptr::null_mut(),
            c"res_deviceuser".as_ptr(),
            0,
            c"event".as_ptr(),
            c"%s".as_ptr(),
            b.as_ptr(),
        )
    };
}
