//! A channel passed to a dialplan application or function, for the duration of that call.
use std::os::raw::c_int;

use super::{cstring, from_c};
use crate::sys;

pub struct Channel {
    ptr: *mut sys::ast_channel,
}

/// What collecting digits ended with.
pub enum Input {
    Digits(String),
    /// Timeout or an empty entry.
    Nothing,
    Hangup,
}

impl Channel {
    /// # Safety
    /// `ptr` is NULL or a channel Asterisk keeps alive (and lets this thread use) for the
    /// whole time the returned value exists: true for the `chan` of an application or
    /// function callback, used only within that callback.
    pub unsafe fn from_ptr(ptr: *mut sys::ast_channel) -> Option<Channel> {
        (!ptr.is_null()).then_some(Channel { ptr })
    }

    pub fn name(&self) -> String {
        // SAFETY: live channel (from_ptr contract); the name is NUL-terminated.
        unsafe { from_c(sys::ast_channel_name(self.ptr)) }.unwrap_or_default()
    }

    /// The channel's language (`CHANNEL(language)`).
    pub fn language(&self) -> String {
        // SAFETY: live channel; the language is a NUL-terminated string field of it.
        unsafe { from_c(sys::ast_channel_language(self.ptr)) }.unwrap_or_default()
    }

    pub fn set_language(&self, language: &str) {
        let l = cstring(language);
        // SAFETY: live channel; Asterisk copies the string. The language is a channel string
        // field that setters update under the channel's own handling of stringfields.
        unsafe { sys::ast_channel_language_set(self.ptr, l.as_ptr()) };
    }

    /// Sets a channel variable, as `Set()` does.
    pub fn set_var(&self, name: &str, value: &str) {
        let (n, v) = (cstring(name), cstring(value));
        // SAFETY: live channel and valid C strings; the helper locks the channel itself.
        unsafe { sys::pbx_builtin_setvar_helper(self.ptr, n.as_ptr(), v.as_ptr()) };
    }

    pub fn is_up(&self) -> bool {
        // SAFETY: live channel.
        unsafe { sys::ast_channel_state(self.ptr) == sys::ast_channel_state_AST_STATE_UP }
    }

    /// Answers if not answered yet. Err means the channel hung up.
    pub fn answer(&self) -> Result<(), ()> {
        if self.is_up() {
            return Ok(());
        }
        // SAFETY: live channel, used from its own thread.
        match unsafe { sys::ast_answer(self.ptr) } {
            0 => Ok(()),
            _ => Err(()),
        }
    }

    /// Publishes a CEL user-defined event on this channel (`CELGenUserEvent` does the same).
    pub fn cel_user_event(&self, event: &str, extra: &str) {
        let (e, x) = (cstring(event), cstring(extra));
        // SAFETY: live channel; Asterisk copies both strings into the event.
        unsafe { sys::ast_cel_publish_user_event(self.ptr, e.as_ptr(), x.as_ptr()) };
    }

    /// Plays a sound file in the channel's language and waits for it to end.
    /// Err means the channel hung up. A missing file is logged by Asterisk and skipped.
    pub fn play(&self, file: &str) -> Result<(), ()> {
        let f = cstring(file);
        // SAFETY: live channel used from its own thread; valid C strings.
        unsafe {
            let lang = sys::ast_channel_language(self.ptr);
            if sys::ast_streamfile(self.ptr, f.as_ptr(), lang) != 0 {
                return Ok(());
            }
            let res = sys::ast_waitstream(self.ptr, c"".as_ptr());
            sys::ast_stopstream(self.ptr);
            if res < 0 {
                return Err(());
            }
        }
        Ok(())
    }

    /// Plays `prompt` and collects up to `max` digits ended by `#` or a timeout
    /// (`ast_app_getdata`, the function behind `Read()`).
    pub fn collect(&self, prompt: &str, max: usize, timeout_ms: i32) -> Input {
        let p = cstring(prompt);
        let mut buf = vec![0u8; max + 1];
        // SAFETY: live channel used from its own thread; buf holds max+1 bytes and
        // ast_app_getdata writes at most max digits plus the NUL.
        let res = unsafe {
            sys::ast_app_getdata(
                self.ptr,
                p.as_ptr(),
                buf.as_mut_ptr().cast(),
                max as c_int,
                timeout_ms,
            )
        };
        if res == sys::ast_getdata_result_AST_GETDATA_FAILED {
            return Input::Hangup;
        }
        let len = buf.iter().position(|&b| b == 0).unwrap_or(max);
        let digits = String::from_utf8_lossy(&buf[..len]).into_owned();
        if digits.is_empty() {
            Input::Nothing
        } else {
            Input::Digits(digits)
        }
    }
}

impl Channel {
    /// The value of a dialplan function on this channel (`CHANNEL(pjsip,remote_addr)`), as
    /// `${...}` would give it; `None` if the function failed.
    pub fn function(&self, expr: &str) -> Option<String> {
        let e = cstring(expr);
        let mut buf = [0 as std::os::raw::c_char; 256];
        // SAFETY: live channel used from its own thread; the buffer is ours and its length
        // given, and ast_func_read NUL-terminates within it.
        let rc = unsafe { sys::ast_func_read(self.ptr, e.as_ptr(), buf.as_mut_ptr(), buf.len()) };
        // SAFETY: NUL-terminated by ast_func_read (the buffer starts zeroed).
        (rc == 0).then(|| unsafe { from_c(buf.as_ptr()) }.unwrap_or_default())
    }
}
