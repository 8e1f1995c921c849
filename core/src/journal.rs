//! The write-ahead journal that closes AstDB's commit window.
//!
//! Asterisk commits AstDB writes about a second after they are made, so a `kill -9` loses
//! the last second of acknowledged logins. The host therefore also appends every change to a
//! journal file (a plain `write`, which survives the death of the process) before the change
//! is acknowledged, and replays the journal over AstDB at load. One line per entry:
//!
//! ```text
//! B <device> <user> <since>     user bound to device since <since>
//! U <device>                    device has no user
//! D <user> 1|0                  user's DND on/off
//! ```
//! Ids never contain whitespace (config validation), so the format needs no quoting.

use std::collections::{BTreeMap, BTreeSet};

use crate::logtext::quoted;
use crate::table::{Binding, Changes};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    Bind(Binding),
    Unbind(String),
    Dnd(String, bool),
}

pub fn encode(e: &Entry) -> String {
    match e {
        Entry::Bind(b) => format!("B {} {} {}\n", b.device, b.user, b.since),
        Entry::Unbind(d) => format!("U {d}\n"),
        Entry::Dnd(u, on) => format!("D {u} {}\n", u8::from(*on)),
    }
}

pub fn decode(line: &str) -> Result<Entry, String> {
    let f: Vec<&str> = line.split_whitespace().collect();
    match f.as_slice() {
        ["B", device, user, since] => Ok(Entry::Bind(Binding::new(
            *user,
            *device,
            since
                .parse()
                .map_err(|_| format!("bad time {}", quoted(since)))?,
        ))),
        ["U", device] => Ok(Entry::Unbind(device.to_string())),
        ["D", user, "1"] => Ok(Entry::Dnd(user.to_string(), true)),
        ["D", user, "0"] => Ok(Entry::Dnd(user.to_string(), false)),
        _ => Err(format!(
            "unreadable journal line {}",
            quoted(&crate::config::shown(line))
        )),
    }
}

/// The journal lines of one commit, in order: devices left empty, then new bindings.
pub fn entries_for(changes: &Changes) -> Vec<Entry> {
    let mut out: Vec<Entry> = changes
        .removed
        .iter()
        .filter(|(b, _)| !changes.added.iter().any(|(a, _)| a.device == b.device))
        .map(|(b, _)| Entry::Unbind(b.device.to_string()))
        .collect();
    out.extend(changes.added.iter().map(|(b, _)| Entry::Bind(b.clone())));
    out
}

/// Applies journal text over a state read from AstDB. A torn last line (the process died in
/// the middle of a write) and unreadable lines are skipped and reported.
pub fn replay(
    text: &str,
    bindings: &mut BTreeMap<String, Binding>,
    dnd: &mut BTreeSet<String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for line in text.split_inclusive('\n') {
        if !line.ends_with('\n') {
            problems.push("incomplete last journal line ignored".to_string());
            break;
        }
        if line.trim().is_empty() {
            continue;
        }
        match decode(line) {
            Ok(Entry::Bind(b)) => {
                bindings.insert(b.device.to_string(), b);
            }
            Ok(Entry::Unbind(d)) => {
                bindings.remove(&d);
            }
            Ok(Entry::Dnd(u, true)) => {
                dnd.insert(u);
            }
            Ok(Entry::Dnd(u, false)) => {
                dnd.remove(&u);
            }
            Err(e) => problems.push(e),
        }
    }
    problems
}

/// The whole state as journal text (what a compacted journal holds).
pub fn full_state<'a>(bindings: impl IntoIterator<Item = &'a Binding>, dnd: &[&str]) -> String {
    let mut s: String = bindings
        .into_iter()
        .map(|b| encode(&Entry::Bind(b.clone())))
        .collect();
    for u in dnd {
        s += &encode(&Entry::Dnd(u.to_string(), true));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Reason;

    #[test]
    fn entries_round_trip() {
        for e in [
            Entry::Bind(Binding::new("4101", "1000", 1_700_000_000)),
            Entry::Unbind("1000".into()),
            Entry::Dnd("4101".into(), true),
            Entry::Dnd("4101".into(), false),
        ] {
            assert_eq!(decode(&encode(&e)).unwrap(), e);
        }
        assert!(decode("X 1").is_err());
        assert!(decode("B 1000 4101 soon").is_err());
    }

    #[test]
    fn replay_applies_in_order_and_skips_a_torn_tail() {
        let mut b = BTreeMap::new();
        b.insert("1000".to_string(), Binding::new("4101", "1000", 1));
        let mut dnd = BTreeSet::new();
        let text = "U 1000\nB 1001 4102 5\nD 4102 1\nB 1000 4103 6\nD 4102 0\nD 4103 1\nB 1002 41";
        let problems = replay(text, &mut b, &mut dnd);
        assert_eq!(problems, ["incomplete last journal line ignored"]);
        assert_eq!(b.get("1000").unwrap().user, "4103");
        assert_eq!(b.get("1001").unwrap().user, "4102");
        assert!(!b.contains_key("1002"));
        assert_eq!(dnd.into_iter().collect::<Vec<_>>(), ["4103"]);
    }

    #[test]
    fn a_replaced_device_is_rebound_not_emptied() {
        let changes = Changes {
            removed: vec![
                (Binding::new("4101", "1000", 1), Reason::Replaced),
                (Binding::new("4101", "1001", 1), Reason::Replaced),
            ],
            added: vec![(Binding::new("4102", "1000", 2), Reason::Manual)],
        };
        let e = entries_for(&changes);
        assert_eq!(
            e,
            [
                Entry::Unbind("1001".into()),
                Entry::Bind(Binding::new("4102", "1000", 2))
            ]
        );
        let text: String = e.iter().map(encode).collect();
        let mut b = BTreeMap::new();
        b.insert("1000".into(), Binding::new("4101", "1000", 1));
        b.insert("1001".into(), Binding::new("4101", "1001", 1));
        assert!(replay(&text, &mut b, &mut BTreeSet::new()).is_empty());
        assert_eq!(b.len(), 1);
        assert_eq!(b["1000"].user, "4102");
    }
}
