//! The JSON the console's API answers with and its live feed sends. Values are built as
//! `serde_json` values, so every string is escaped as JSON; the page puts them into the
//! document as text, never as markup.
use serde_json::{json, Map, Value};

use crate::config::{Device, Override, User};
use crate::stats::Stats;
use crate::table::{Binding, Changes, Snapshot};

use super::edit::FieldError;

/// The board's name for a `DeviceUser:` or device state, from Asterisk's name of it
/// (`NOT_INUSE`, `INUSE`, ...): `idle`, `ringing`, `inuse`, `busy`, `onhold`, `unavailable`,
/// `invalid`, `unknown`; `dnd` whenever the user is in do-not-disturb.
pub fn state_token(asterisk_name: &str, dnd: bool) -> &'static str {
    if dnd {
        return "dnd";
    }
    match asterisk_name {
        "NOT_INUSE" => "idle",
        "INUSE" => "inuse",
        "BUSY" => "busy",
        "RINGING" | "RINGINUSE" => "ringing",
        "ONHOLD" => "onhold",
        "UNAVAILABLE" => "unavailable",
        "INVALID" => "invalid",
        _ => "unknown",
    }
}

fn seconds(o: Override<u64>) -> Value {
    match o {
        Override::Inherit => Value::Null,
        Override::Off => json!("0"),
        Override::Set(n) => json!(n.to_string()),
    }
}

fn opt(s: Option<&str>) -> Value {
    s.map_or(Value::Null, |s| json!(s))
}

/// A device with who is on it now. `state` is the device's state token.
pub fn device(s: &Snapshot, d: &Device, state: &str, etag: &str) -> Value {
    let b = s.user_on(&d.id);
    json!({
        "id": d.id.as_str(),
        "description": d.description.as_str(),
        "mode": d.mode.to_string(),
        "dial": d.dial.as_str(),
        "default_user": opt(d.default_user.as_deref()),
        "logout_on_unregister": seconds(d.logout_on_unregister),
        "user": opt(b.map(|b| b.user.as_str())),
        "since": b.map_or(Value::Null, |b| json!(b.since)),
        "state": state,
        "etag": etag,
    })
}

/// A user; the PIN is never shown, only whether there is one. `state` is the user's state
/// token.
pub fn user(s: &Snapshot, u: &User, state: &str, etag: &str) -> Value {
    json!({
        "id": u.id.as_str(),
        "fullname": u.fullname.as_str(),
        "language": opt(u.language.as_deref()),
        "cid_number": u.cid_number.as_str(),
        "has_password": u.password.is_some(),
        "max_login_time": seconds(u.max_login_time),
        "shift_end": match u.shift_end {
            Override::Inherit => Value::Null,
            Override::Off => json!("none"),
            Override::Set(t) => json!(t.to_string()),
        },
        "devices": s.devices_of(&u.id),
        "dnd": s.dnd(&u.id),
        "state": state,
        "etag": etag,
    })
}

pub fn binding(b: &Binding, now: u64) -> Value {
    json!({
        "user": b.user.as_str(),
        "device": b.device.as_str(),
        "since": b.since,
        "duration": now.saturating_sub(b.since),
    })
}

/// Appends `s` as a JSON string.
fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The board as JSON text: every user with their devices and state, and every device (to
/// choose one to log a user in on). `user_state` gives a user's state token. Written
/// straight into one string (the board of 10,000 users is megabytes).
pub fn board(s: &Snapshot, now: u64, user_state: impl Fn(&str) -> &'static str) -> String {
    use std::fmt::Write;
    let c = s.config();
    let mut out = String::with_capacity(64 + c.users.len() * 110 + c.devices.len() * 70);
    let _ = write!(out, "{{\"now\":{now},\"users\":[");
    for (i, u) in c.users.values().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"id\":");
        push_str(&mut out, &u.id);
        out.push_str(",\"fullname\":");
        push_str(&mut out, &u.fullname);
        out.push_str(",\"devices\":[");
        for (j, d) in s.devices_of(&u.id).into_iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push_str("{\"id\":");
            push_str(&mut out, d);
            out.push_str(",\"description\":");
            push_str(&mut out, c.device(d).map_or(d, |x| x.description.as_str()));
            let since = s.user_on(d).map_or(0, |b| b.since);
            let _ = write!(out, ",\"since\":{since}}}");
        }
        let _ = write!(
            out,
            "],\"dnd\":{},\"state\":\"{}\"}}",
            s.dnd(&u.id),
            user_state(&u.id)
        );
    }
    out.push_str("],\"devices\":[");
    for (i, d) in c.devices.values().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"id\":");
        push_str(&mut out, &d.id);
        out.push_str(",\"description\":");
        push_str(&mut out, &d.description);
        let _ = write!(out, ",\"mode\":\"{}\",\"user\":", d.mode);
        match s.user_on(&d.id) {
            Some(b) => push_str(&mut out, &b.user),
            None => out.push_str("null"),
        }
        out.push('}');
    }
    out.push_str("]}");
    out
}

/// Login statistics since load, per user that logged in or is logged in now.
pub fn stats(s: &Snapshot, st: &Stats, now: u64) -> Vec<Value> {
    s.config()
        .users
        .values()
        .filter_map(|u| {
            let current: u64 = s
                .devices_of(&u.id)
                .iter()
                .filter_map(|d| s.user_on(d))
                .map(|b| now.saturating_sub(b.since))
                .sum();
            let recorded = st.user(&u.id);
            if recorded.is_none() && s.devices_of(&u.id).is_empty() {
                return None;
            }
            let (logins, total) = recorded.map_or((0, 0), |r| (r.logins, r.total_secs));
            Some(json!({
                "user": u.id.as_str(),
                "logins": logins,
                "total_secs": total.saturating_add(current),
                "current_secs": current,
            }))
        })
        .collect()
}

/// The live-feed events of a commit of bindings: logouts (with their reason and duration),
/// then logins.
pub fn binding_events(changes: &Changes, now: u64) -> Vec<Value> {
    let mut v = Vec::with_capacity(changes.removed.len() + changes.added.len());
    for (b, reason) in &changes.removed {
        v.push(json!({
            "type": "logout",
            "user": b.user.as_str(),
            "device": b.device.as_str(),
            "reason": reason.to_string(),
            "duration": now.saturating_sub(b.since),
        }));
    }
    for (b, reason) in &changes.added {
        v.push(json!({
            "type": "login",
            "user": b.user.as_str(),
            "device": b.device.as_str(),
            "reason": reason.to_string(),
            "since": b.since,
        }));
    }
    v
}

pub fn dnd_event(user: &str, on: bool) -> Value {
    json!({"type": "dnd", "user": user, "on": on})
}

/// A user's `DeviceUser:` state changed (`state` is Asterisk's name of it).
pub fn state_event(user: &str, asterisk_state: &str) -> Value {
    json!({"type": "state", "user": user, "state": state_token(asterisk_state, false)})
}

/// The configuration changed (a reload or a console edit): boards fetch it again.
pub fn config_event() -> Value {
    json!({"type": "config"})
}

/// An error answer: `{"error": message, "fields": [{"field", "message"}...]}`.
pub fn error(message: &str, fields: &[FieldError]) -> Value {
    let mut m = Map::new();
    m.insert("error".into(), json!(message));
    if !fields.is_empty() {
        m.insert(
            "fields".into(),
            Value::Array(
                fields
                    .iter()
                    .map(|f| json!({"field": f.field, "message": f.message}))
                    .collect(),
            ),
        );
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::sample;
    use crate::table::{BindingTable, LoginMode};

    #[test]
    fn states_have_board_names() {
        assert_eq!(state_token("NOT_INUSE", false), "idle");
        assert_eq!(state_token("RINGINUSE", false), "ringing");
        assert_eq!(state_token("INUSE", true), "dnd");
        assert_eq!(state_token("whatever", false), "unknown");
    }

    #[test]
    fn the_board_shows_who_is_where() {
        let t = BindingTable::new(sample(), 0);
        t.login("101", "1000", LoginMode::Admin, 10, |_| {})
            .unwrap();
        let text = board(&t.snapshot(), 20, |u| {
            if u == "101" {
                "idle"
            } else {
                "unavailable"
            }
        });
        let b: Value = serde_json::from_str(&text).expect("valid JSON");
        let users = b["users"].as_array().unwrap();
        let u101 = users.iter().find(|u| u["id"] == "101").unwrap();
        assert_eq!(u101["devices"][0]["id"], "1000");
        assert_eq!(u101["devices"][0]["since"], 10);
        assert_eq!(u101["state"], "idle");
        let d = b["devices"].as_array().unwrap();
        assert!(d.iter().any(|d| d["id"] == "1000" && d["user"] == "101"));
        assert_eq!(b["now"], 20);
    }

    #[test]
    fn board_strings_are_escaped_as_json() {
        let c = crate::config::Config::from_raw(&crate::config::tests::raw(&[
            (
                "d1",
                &[("type", "device"), ("description", "a \"quoted\" \\ <b>")],
            ),
            ("u1", &[("type", "user"), ("fullname", "Ω \"x\"")]),
        ]))
        .unwrap()
        .config;
        let t = BindingTable::new(c, 0);
        t.login("u1", "d1", LoginMode::Admin, 5, |_| {}).unwrap();
        let text = board(&t.snapshot(), 9, |_| "idle");
        let b: Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(b["users"][0]["fullname"], "Ω \"x\"");
        assert_eq!(b["devices"][0]["description"], "a \"quoted\" \\ <b>");
        assert_eq!(
            b["users"][0]["devices"][0]["description"],
            "a \"quoted\" \\ <b>"
        );
        assert_eq!(b["devices"][0]["user"], "u1");
        assert_eq!(b["users"][0]["dnd"], false);
    }

    #[test]
    fn users_never_show_their_pin() {
        let t = BindingTable::new(sample(), 0);
        let s = t.snapshot();
        let u = user(&s, s.config().user("100").unwrap(), "unavailable", "\"e\"");
        let text = u.to_string();
        assert!(!text.contains("1234"), "{text}");
        assert_eq!(u["has_password"], true);
    }

    #[test]
    fn commits_become_events() {
        let t = BindingTable::new(sample(), 0);
        let c = t
            .login("101", "1000", LoginMode::Admin, 10, |_| {})
            .unwrap();
        let e = binding_events(&c, 10);
        assert_eq!(e[0]["type"], "login");
        let c = t
            .logout_user("101", crate::Reason::Admin, 70, |_| {})
            .unwrap();
        let e = binding_events(&c, 70);
        assert_eq!(
            (
                e[0]["type"].as_str(),
                e[0]["reason"].as_str(),
                e[0]["duration"].as_u64()
            ),
            (Some("logout"), Some("admin"), Some(60))
        );
        let err = error("bad", &[FieldError::new("mode", "unknown mode")]);
        assert_eq!(err["fields"][0]["field"], "mode");
    }
}
