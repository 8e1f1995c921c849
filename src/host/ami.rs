//! AMI (manager) plumbing: reading action headers, responses (including list responses),
//! and events.
use std::os::raw::c_int;

use super::{cstring, from_c};
use crate::sys;

/// One AMI action being handled: the session and its message, valid for the handler call.
pub struct Action {
    s: *mut sys::mansession,
    m: *const sys::message,
}

/// Keeps a header value on one line, so it cannot inject headers into a response or event.
fn one_line(v: &str) -> String {
    v.replace(['\r', '\n'], " ")
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
        unsafe { from_c(sys::astman_get_header(self.m, n.as_ptr().cast_mut())) }
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    pub fn ack(&self, msg: &str) {
        let t = cstring(&one_line(msg));
        // SAFETY: live session and message; Asterisk copies the text into the response.
        unsafe { sys::astman_send_ack(self.s, self.m, t.as_ptr().cast_mut()) };
    }

    pub fn error(&self, msg: &str) {
        let t = cstring(&one_line(msg));
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
        let id_line = if id.is_empty() {
            String::new()
        } else {
            format!("ActionID: {}\r\n", one_line(&id))
        };
        for item in items {
            let mut text = format!("Event: {event}\r\n{id_line}");
            for (k, v) in item {
                text += &format!("{k}: {}\r\n", one_line(v));
            }
            text += "\r\n";
            self.append(&text);
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

    fn append(&self, text: &str) {
        let t = cstring(text);
        // SAFETY: live session; constant "%s" format with one C string.
        unsafe { sys::astman_append(self.s, c"%s".as_ptr(), t.as_ptr()) };
    }
}

/// Sends a manager event of class `agent` to every AMI session allowed to read it.
pub fn event(name: &str, fields: &[(&str, String)]) {
    let mut body = String::new();
    for (k, v) in fields {
        body += &format!("{k}: {}\r\n", one_line(v));
    }
    let (n, b) = (cstring(name), cstring(&body));
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
