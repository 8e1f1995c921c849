//! Generated configurations: many users and devices, hints, and a SIP endpoint for the
//! presence watcher.
use std::fmt::Write;

/// The id of user `n` (numeric, so it is also a dialable extension).
pub fn user(n: usize) -> String {
    (100_000 + n).to_string()
}

/// The id of device `n`.
pub fn device(n: usize) -> String {
    format!("d{n}")
}

/// `res_deviceuser.conf` with users and devices `1..=count`; device `n` dials `dial(n)`.
pub fn deviceuser_conf(
    count: usize,
    dial: impl Fn(usize) -> String,
    hint_context: Option<&str>,
) -> String {
    let mut s = String::with_capacity(count * 90);
    s.push_str("[general]\nmultiple_logins = yes\n");
    if let Some(ctx) = hint_context {
        let _ = writeln!(s, "hint_context = {ctx}");
    }
    for n in 1..=count {
        let _ = write!(
            s,
            "\n[{}]\ntype = device\ndial = {}\n\n[{}]\ntype = user\npassword = 1234\nfullname = Operator {n}\n",
            device(n),
            dial(n),
            user(n)
        );
    }
    s
}

/// `extensions.conf` with `exten => <user n>,hint,<device(n)>` in `context` for `1..=count`.
pub fn hints_conf(context: &str, count: usize, device: impl Fn(usize) -> String) -> String {
    let mut s = format!("[general]\nstatic = yes\nwriteprotect = yes\n\n[{context}]\n");
    for n in 1..=count {
        let _ = writeln!(s, "exten => {},hint,{}", user(n), device(n));
    }
    s
}

/// `pjsip.conf`: a UDP transport and an endpoint `watcher` without authentication whose
/// subscriptions resolve in `context` (the kit sets the port per instance).
pub fn pjsip_conf(context: &str) -> String {
    format!(
        "[transport-udp]\ntype = transport\nprotocol = udp\nbind = 127.0.0.1:5060\n\n\
         [watcher]\ntype = endpoint\ncontext = {context}\ndisallow = all\nallow = ulaw\n"
    )
}
