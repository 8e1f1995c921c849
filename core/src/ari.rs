//! The module's ARI events (`DeviceUserLogin`, `DeviceUserLogout`, `DeviceUserDND`), as the
//! JSON an ARI application receives on its websocket, and which subscriptions want them.
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use crate::table::Changes;

/// The scheme of the module's ARI event source: `deviceUser:<user>`, or `deviceUser:` for
/// every user.
pub const SCHEME: &str = "deviceUser:";

/// One event, before it is addressed to an application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub user: String,
    /// `"type"` and the fields after `application` and `timestamp`, as JSON members.
    pub kind: &'static str,
    pub members: Vec<(&'static str, Value)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Text(String),
    Number(u64),
    Bool(bool),
}

/// The events of a commit of bindings: logouts first, then logins, as the commit made them.
pub fn binding_events(changes: &Changes, now: u64) -> Vec<Event> {
    let mut out = Vec::new();
    for (b, reason) in &changes.removed {
        out.push(Event {
            user: b.user.to_string(),
            kind: "DeviceUserLogout",
            members: vec![
                ("user", Value::Text(b.user.to_string())),
                ("device", Value::Text(b.device.to_string())),
                ("reason", Value::Text(reason.to_string())),
                ("duration", Value::Number(now.saturating_sub(b.since))),
            ],
        });
    }
    for (b, reason) in &changes.added {
        out.push(Event {
            user: b.user.to_string(),
            kind: "DeviceUserLogin",
            members: vec![
                ("user", Value::Text(b.user.to_string())),
                ("device", Value::Text(b.device.to_string())),
                ("reason", Value::Text(reason.to_string())),
            ],
        });
    }
    out
}

/// The event of a DND change.
pub fn dnd_event(user: &str, on: bool) -> Event {
    Event {
        user: user.to_string(),
        kind: "DeviceUserDND",
        members: vec![
            ("user", Value::Text(user.to_string())),
            ("dnd", Value::Bool(on)),
        ],
    }
}

/// A JSON string literal.
pub fn json_string(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// Unix time as ARI writes timestamps: `2024-05-01T12:00:00.000+0000`.
pub fn timestamp(secs: u64, millis: u32) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}+0000",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The event as the JSON an application receives.
pub fn to_json(e: &Event, application: &str, timestamp: &str) -> String {
    let mut o = format!(
        "{{\"type\":{},\"application\":{},\"timestamp\":{}",
        json_string(e.kind),
        json_string(application),
        json_string(timestamp)
    );
    for (k, v) in &e.members {
        let _ = write!(o, ",{}:", json_string(k));
        match v {
            Value::Text(s) => o.push_str(&json_string(s)),
            Value::Number(n) => {
                let _ = write!(o, "{n}");
            }
            Value::Bool(b) => o.push_str(if *b { "true" } else { "false" }),
        }
    }
    o.push('}');
    o
}

/// Which applications follow which users (`""`: every user).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subscriptions {
    by_app: BTreeMap<String, BTreeSet<String>>,
}

impl Subscriptions {
    pub fn subscribe(&mut self, app: &str, user: &str) {
        self.by_app
            .entry(app.to_string())
            .or_default()
            .insert(user.to_string());
    }

    /// Ends a subscription (`""`: the one to every user).
    pub fn unsubscribe(&mut self, app: &str, user: &str) {
        if let Some(s) = self.by_app.get_mut(app) {
            s.remove(user);
            if s.is_empty() {
                self.by_app.remove(app);
            }
        }
    }

    /// Whether `app` gets the events of `user` (`""`: subscribed to every user).
    pub fn is_subscribed(&self, app: &str, user: &str) -> bool {
        self.by_app
            .get(app)
            .is_some_and(|s| s.contains("") || s.contains(user))
    }

    /// What `app` subscribed to, as ARI lists event sources (`""` for every user).
    pub fn of(&self, app: &str) -> Vec<String> {
        self.by_app
            .get(app)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.by_app.is_empty()
    }

    /// The applications that get an event of `user`.
    pub fn apps_for(&self, user: &str) -> Vec<&str> {
        self.by_app
            .iter()
            .filter(|(_, s)| s.contains("") || s.contains(user))
            .map(|(a, _)| a.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{Binding, Reason};

    #[test]
    fn events_as_json() {
        let c = Changes {
            removed: vec![(Binding::new("4101", "1000", 100), Reason::Replaced)],
            added: vec![(Binding::new("4102", "1000", 130), Reason::Manual)],
        };
        let ev = binding_events(&c, 130);
        assert_eq!(ev.len(), 2);
        assert_eq!(
            to_json(&ev[0], "wall\"board", "T"),
            r#"{"type":"DeviceUserLogout","application":"wall\"board","timestamp":"T","user":"4101","device":"1000","reason":"replaced","duration":30}"#
        );
        assert_eq!(
            to_json(&ev[1], "a", "T"),
            r#"{"type":"DeviceUserLogin","application":"a","timestamp":"T","user":"4102","device":"1000","reason":"manual"}"#
        );
        assert_eq!(
            to_json(&dnd_event("4101", true), "a", "T"),
            r#"{"type":"DeviceUserDND","application":"a","timestamp":"T","user":"4101","dnd":true}"#
        );
        assert_eq!(json_string("a\u{1}\n"), "\"a\\u0001\\n\"");
    }

    #[test]
    fn timestamps() {
        assert_eq!(timestamp(0, 0), "1970-01-01T00:00:00.000+0000");
        assert_eq!(timestamp(951_782_400, 5), "2000-02-29T00:00:00.005+0000");
        assert_eq!(
            timestamp(1_714_564_800, 123),
            "2024-05-01T12:00:00.123+0000"
        );
    }

    #[test]
    fn who_gets_what() {
        let mut s = Subscriptions::default();
        assert!(s.is_empty());
        s.subscribe("wall", "4101");
        s.subscribe("audit", "");
        assert_eq!(s.apps_for("4101"), ["audit", "wall"]);
        assert_eq!(s.apps_for("4102"), ["audit"]);
        assert!(s.is_subscribed("audit", "4102"));
        assert!(!s.is_subscribed("wall", "4102"));
        assert_eq!(s.of("audit"), [""]);
        s.unsubscribe("wall", "4101");
        assert_eq!(s.apps_for("4101"), ["audit"]);
        s.unsubscribe("audit", "");
        assert!(s.is_empty());
    }
}
