//! Refused logins, reported where administrators and tools look: a security-style log line
//! (fail2ban-style `Key="value"` fields, each value escaped so that no caller can end a field
//! or the line: see [`logtext`](deviceuser_core::logtext)), the `DeviceUserLoginFailed` AMI
//! event, an Asterisk security event for logins from phones (the `security` log channel,
//! `res_security_log`, fail2ban's asterisk filter), and the failed-logins metric. The reason
//! is a fixed token ([`LoginFailure`]) with the human text beside it. Never carries a PIN.
use deviceuser_core::failure::LoginFailure;
use deviceuser_core::logtext::{quoted, value};

use crate::host::channel::Channel;
use crate::host::security::{self, Kind, Report};
use crate::host::{ami, log};
use crate::state::State;

/// The `Service` of the module's security events.
const SERVICE: &str = "DeviceUser";

/// Reports a refused login on `device` of `user` (as entered), from `chan` when a phone
/// tried it.
pub fn login_failed(
    state: &State,
    chan: Option<&Channel>,
    device: &str,
    user: Option<&str>,
    failure: LoginFailure,
) {
    state.counters().failed(failure);
    log::warning(&format!(
        "SecurityEvent=\"FailedLogin\" Service=\"res_deviceuser\" Device={} User={} Reason={} ReasonText={}",
        quoted(device),
        quoted(user.unwrap_or("")),
        quoted(failure.token()),
        quoted(failure.text())
    ));
    let mut fields = vec![("Device", device.to_string())];
    if let Some(u) = user {
        fields.push(("User", u.to_string()));
    }
    fields.push(("Reason", failure.token().to_string()));
    fields.push(("ReasonText", failure.text().to_string()));
    ami::event("DeviceUserLoginFailed", &fields);
    if let Some(chan) = chan {
        security_event(chan, user.unwrap_or(""), failure);
    }
}

/// The security event of a login refused on a phone: the account tried, the channel as the
/// session, and the phone's SIP addresses (a channel of another technology has none to give,
/// and gets no event).
fn security_event(chan: &Channel, account: &str, failure: LoginFailure) {
    let (Some(local), Some(remote)) = (
        chan.function("CHANNEL(pjsip,local_addr)"),
        chan.function("CHANNEL(pjsip,remote_addr)"),
    ) else {
        return;
    };
    let kind = match failure {
        LoginFailure::NoSuchUser => Kind::InvalidAccount,
        LoginFailure::WrongPassword => Kind::InvalidPassword,
        _ => Kind::NotAllowed,
    };
    let session = chan.name();
    let reported = security::report(&Report {
        kind,
        service: SERVICE,
        account,
        session: &session,
        local: &local,
        remote: &remote,
        request: "UserLogin",
        params: failure.token(),
    });
    if !reported {
        log::debug(&format!(
            "no security event for {}: addresses {} and {} not understood",
            value(&session),
            quoted(&local),
            quoted(&remote)
        ));
    }
}
