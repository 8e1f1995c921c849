//! Refused logins, reported where administrators and tools look: a security-style log line
//! (fail2ban-style `Key="value"` fields, each value escaped so that no caller can end a field
//! or the line: see [`logtext`](deviceuser_core::logtext)) and an AMI event. Never carries a
//! PIN.
use deviceuser_core::logtext::quoted;

use crate::host::{ami, log};

pub fn login_failed(device: &str, user: Option<&str>, reason: &str) {
    log::warning(&format!(
        "SecurityEvent=\"FailedLogin\" Service=\"res_deviceuser\" Device={} User={} Reason={}",
        quoted(device),
        quoted(user.unwrap_or("")),
        quoted(reason)
    ));
    let mut fields = vec![("Device", device.to_string())];
    if let Some(u) = user {
        fields.push(("User", u.to_string()));
    }
    fields.push(("Reason", reason.to_string()));
    ami::event("DeviceUserLoginFailed", &fields);
}
