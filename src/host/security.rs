//! Asterisk security events (`ast_security_event_report`): what the `security` log channel,
//! `res_security_log` and intrusion detection such as fail2ban read.
use std::os::raw::c_int;

use super::cstring;
use crate::sys;

/// Which security event a refused login is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `InvalidAccountID`: no such account.
    InvalidAccount,
    /// `InvalidPassword`: a wrong secret.
    InvalidPassword,
    /// `RequestNotAllowed`: refused for another reason (`request` and `params` say which).
    NotAllowed,
}

/// A refused login from a remote party.
pub struct Report<'a> {
    pub kind: Kind,
    /// The service reporting (`DeviceUser`).
    pub service: &'a str,
    /// The account tried (the user number entered).
    pub account: &'a str,
    /// The session (the channel's unique id).
    pub session: &'a str,
    /// `host:port` the request came in on, and came from.
    pub local: &'a str,
    pub remote: &'a str,
    /// Only for [`Kind::NotAllowed`].
    pub request: &'a str,
    pub params: &'a str,
}

/// Parses `host:port` (IPv4 or `[IPv6]:port`).
fn sockaddr(s: &str) -> Option<sys::ast_sockaddr> {
    let c = cstring(s);
    let mut a = sys::ast_sockaddr::default();
    // SAFETY: valid C string; the result is written into our local.
    (unsafe { sys::ast_sockaddr_parse(&mut a, c.as_ptr(), 0) } == 1).then_some(a)
}

/// Reports the event; false if an address could not be parsed (nothing is reported: the
/// events require both).
pub fn report(r: &Report<'_>) -> bool {
    let (Some(local), Some(remote)) = (sockaddr(r.local), sockaddr(r.remote)) else {
        return false;
    };
    let (service, account, session) = (cstring(r.service), cstring(r.account), cstring(r.session));
    let (request, params) = (cstring(r.request), cstring(r.params));
    let mut common = sys::ast_security_event_common {
        service: service.as_ptr(),
        module: c"res_deviceuser".as_ptr(),
        account_id: account.as_ptr(),
        session_id: session.as_ptr(),
        local_addr: sys::ast_security_event_ip_addr {
            addr: &local,
            transport: sys::ast_transport_AST_TRANSPORT_UDP,
        },
        remote_addr: sys::ast_security_event_ip_addr {
            addr: &remote,
            transport: sys::ast_transport_AST_TRANSPORT_UDP,
        },
        ..Default::default()
    };
    let rc: c_int = match r.kind {
        Kind::InvalidAccount => {
            common.event_type = sys::ast_security_event_type_AST_SECURITY_EVENT_INVAL_ACCT_ID;
            common.version = sys::AST_SECURITY_EVENT_INVAL_ACCT_ID_VERSION;
            let ev = sys::ast_security_event_inval_acct_id { common };
            // SAFETY: a complete event whose strings and addresses outlive the call; Asterisk
            // copies what it keeps.
            unsafe { sys::ast_security_event_report(&ev.common) }
        }
        Kind::InvalidPassword => {
            common.event_type = sys::ast_security_event_type_AST_SECURITY_EVENT_INVAL_PASSWORD;
            common.version = sys::AST_SECURITY_EVENT_INVAL_PASSWORD_VERSION;
            let ev = sys::ast_security_event_inval_password {
                common,
                ..Default::default()
            };
            // SAFETY: as above; the challenge fields are optional and left NULL.
            unsafe { sys::ast_security_event_report(&ev.common) }
        }
        Kind::NotAllowed => {
            common.event_type = sys::ast_security_event_type_AST_SECURITY_EVENT_REQ_NOT_ALLOWED;
            common.version = sys::AST_SECURITY_EVENT_REQ_NOT_ALLOWED_VERSION;
            let ev = sys::ast_security_event_req_not_allowed {
                common,
                request_type: request.as_ptr(),
                request_params: params.as_ptr(),
            };
            // SAFETY: as above.
            unsafe { sys::ast_security_event_report(&ev.common) }
        }
    };
    rc == 0
}
