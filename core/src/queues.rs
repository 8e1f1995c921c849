//! Queue membership that follows the user (`app_queue`).
//!
//! A user with `queues = sales,support:2` is a dynamic member of those queues while logged in
//! on at least one device. The member rings the user through the dialplan
//! (`Local/<user>@<queue_context>`, which dials `DEVICEUSER_DIAL(<user>)`), and its state is
//! the user's (`DeviceUser:<user>`), so the queue sees a logged-out user as unavailable and a
//! user on a call as in use. A logout removes the member, or pauses it with
//! `queue_logout = pause`.
//!
//! The module's members are told apart from any other by their state interface: a dynamic
//! member whose state interface is `DeviceUser:<user>` is the module's. This module holds what
//! is pure about it: the option syntax, the member's names, reading `QueueStatus` output and
//! planning the actions that bring a user's membership where the bindings say it should be.
use std::collections::BTreeMap;
use std::fmt;

use compact_str::CompactString;

use crate::names::{is_user_state, USER_STATE_PREFIX};

/// One queue of a `queues` list: `name[:penalty]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueSpec {
    pub name: CompactString,
    pub penalty: u32,
}

impl fmt::Display for QueueSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.penalty == 0 {
            f.write_str(&self.name)
        } else {
            write!(f, "{}:{}", self.name, self.penalty)
        }
    }
}

/// What a logout does to the user's members.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum QueueLogout {
    /// The member is removed (`QueueRemove`).
    #[default]
    Remove,
    /// The member stays, paused (`QueuePause`); the next login unpauses it.
    Pause,
}

impl fmt::Display for QueueLogout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            QueueLogout::Remove => "remove",
            QueueLogout::Pause => "pause",
        })
    }
}

impl QueueLogout {
    pub fn parse(v: &str) -> Option<QueueLogout> {
        match v.trim().to_ascii_lowercase().as_str() {
            "remove" => Some(QueueLogout::Remove),
            "pause" => Some(QueueLogout::Pause),
            _ => None,
        }
    }
}

/// Largest penalty accepted in a `queues` list.
pub const MAX_PENALTY: u32 = 1_000_000;

/// The default `queue_context`.
pub const DEFAULT_QUEUE_CONTEXT: &str = "deviceuser-queue";

/// The reason given to `app_queue` when a logout pauses a member.
pub const PAUSE_REASON: &str = "logged out";

/// Why `name` cannot be a queue name, if it cannot: the characters that would break the
/// list syntax, an AMI header or a CLI line.
fn queue_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("empty queue name".into());
    }
    if name.chars().count() > 80 {
        return Some(format!("queue name '{name}' is longer than 80 characters"));
    }
    name.chars()
        .find(|c| matches!(c, ',' | ':' | '|' | '[' | ']') || c.is_whitespace() || c.is_control())
        .map(|c| format!("queue name '{}' contains {c:?}", name.escape_debug()))
}

/// Parses a `queues` value: `sales,support:2` (comma-separated queue names, each with an
/// optional `:penalty`). `none` (or empty) is the empty list. Every problem is reported.
pub fn parse_queue_list(v: &str) -> Result<Vec<QueueSpec>, Vec<String>> {
    let v = v.trim();
    if v.is_empty() || v.eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    let mut out: Vec<QueueSpec> = Vec::new();
    let mut errors = Vec::new();
    for item in v.split(',').map(str::trim) {
        let (name, penalty) = match item.split_once(':') {
            Some((n, p)) => (n.trim(), Some(p.trim())),
            None => (item, None),
        };
        if let Some(p) = queue_name_problem(name) {
            errors.push(p);
            continue;
        }
        let penalty = match penalty {
            None => 0,
            Some(p) => match p.parse::<u32>() {
                Ok(n) if n <= MAX_PENALTY && p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => {
                    errors.push(format!(
                        "bad penalty '{p}' for queue {name} (expected a number from 0 to {MAX_PENALTY})"
                    ));
                    continue;
                }
            },
        };
        if out.iter().any(|q| q.name.eq_ignore_ascii_case(name)) {
            errors.push(format!("queue {name} is listed twice"));
            continue;
        }
        out.push(QueueSpec {
            name: name.into(),
            penalty,
        });
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// The member interface that rings `user`: `Local/<user>@<context>`.
pub fn member_interface(user: &str, context: &str) -> String {
    format!("Local/{user}@{context}")
}

/// The member's state interface: `DeviceUser:<user>`.
pub fn state_interface(user: &str) -> String {
    format!("{USER_STATE_PREFIX}{user}")
}

/// The user a state interface names, if it is one of the module's (`DeviceUser:<user>`).
pub fn user_of_state_interface(s: &str) -> Option<&str> {
    is_user_state(s)
        .then(|| &s[USER_STATE_PREFIX.len()..])
        .filter(|u| !u.is_empty())
}

/// One AMI message as `key: value` pairs, in order.
pub type AmiMessage = Vec<(String, String)>;

/// Splits the text of AMI responses and events (`Key: value` lines, messages separated by an
/// empty line) into messages.
pub fn parse_ami_messages(text: &str) -> Vec<AmiMessage> {
    let mut out = Vec::new();
    let mut cur: AmiMessage = Vec::new();
    for line in text.split('\n') {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        match line.split_once(':') {
            Some((k, v)) => cur.push((k.trim().to_string(), v.trim().to_string())),
            None => cur.push((line.trim().to_string(), String::new())),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// A header of a message (first match, case-insensitive name).
pub fn header<'a>(m: &'a AmiMessage, name: &str) -> Option<&'a str> {
    m.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A member of a queue as `app_queue` reports it, when it is one of the module's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub interface: String,
    pub penalty: u32,
    pub paused: bool,
}

/// The module's members (dynamic, state interface `DeviceUser:<user>`) in `QueueStatus`
/// output, by user then queue (lowercased: `app_queue` finds queues case-insensitively).
/// Also the names of every queue reported (lowercased).
pub fn members_in_status(
    messages: &[AmiMessage],
) -> (BTreeMap<String, BTreeMap<String, Member>>, Vec<String>) {
    let mut members: BTreeMap<String, BTreeMap<String, Member>> = BTreeMap::new();
    let mut queues = Vec::new();
    for m in messages {
        match header(m, "Event") {
            Some(e) if e.eq_ignore_ascii_case("QueueParams") => {
                if let Some(q) = header(m, "Queue") {
                    queues.push(q.to_ascii_lowercase());
                }
            }
            Some(e) if e.eq_ignore_ascii_case("QueueMember") => {
                let dynamic = header(m, "Membership").is_some_and(|v| v == "dynamic");
                let user = header(m, "StateInterface").and_then(user_of_state_interface);
                let (Some(user), Some(queue), Some(interface), true) =
                    (user, header(m, "Queue"), header(m, "Location"), dynamic)
                else {
                    continue;
                };
                let member = Member {
                    interface: interface.to_string(),
                    penalty: header(m, "Penalty")
                        .and_then(|p| p.parse().ok())
                        .unwrap_or(0),
                    paused: header(m, "Paused").is_some_and(|p| p != "0"),
                };
                members
                    .entry(user.to_string())
                    .or_default()
                    .insert(queue.to_ascii_lowercase(), member);
            }
            _ => {}
        }
    }
    (members, queues)
}

/// One change to `app_queue`'s members of a user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Add {
        queue: String,
        interface: String,
        penalty: u32,
        paused: bool,
    },
    Remove {
        queue: String,
        interface: String,
    },
    Pause {
        queue: String,
        interface: String,
        paused: bool,
    },
    Penalty {
        queue: String,
        interface: String,
        penalty: u32,
    },
}

impl Action {
    pub fn queue(&self) -> &str {
        match self {
            Action::Add { queue, .. }
            | Action::Remove { queue, .. }
            | Action::Pause { queue, .. }
            | Action::Penalty { queue, .. } => queue,
        }
    }
}

/// What a user's membership should be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wanted<'a> {
    /// The user's `queues`.
    pub queues: &'a [QueueSpec],
    /// Logged in on at least one device.
    pub logged_in: bool,
    pub logout: QueueLogout,
    /// The interface that rings the user now.
    pub interface: &'a str,
}

/// The actions that take a user's members from `current` (by lowercased queue name) to
/// `wanted`, in order: removals first, then additions and changes, each in queue order.
///
/// Logged in: a member in each of the user's queues, unpaused, with its penalty. Logged out:
/// no member (`remove`), or the members in the user's queues paused (`pause`; a user who was
/// never a member is not added). A member with another interface (the `queue_context`
/// changed) is replaced; members of queues no longer listed are removed.
pub fn plan(current: &BTreeMap<String, Member>, wanted: &Wanted<'_>) -> Vec<Action> {
    let mut removals = Vec::new();
    let mut others = Vec::new();
    let listed = |q: &str| {
        wanted
            .queues
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(q))
    };
    for (queue, m) in current {
        let keep = listed(queue).is_some()
            && (wanted.logged_in || wanted.logout == QueueLogout::Pause)
            && m.interface == wanted.interface;
        if !keep {
            removals.push(Action::Remove {
                queue: queue.clone(),
                interface: m.interface.clone(),
            });
        }
    }
    for spec in wanted.queues {
        let key = spec.name.as_str().to_ascii_lowercase();
        let present = current
            .get(&key)
            .filter(|m| m.interface == wanted.interface);
        match present {
            None if wanted.logged_in => others.push(Action::Add {
                queue: spec.name.to_string(),
                interface: wanted.interface.to_string(),
                penalty: spec.penalty,
                paused: false,
            }),
            None => {
                // Logged out in pause mode: a member replaced for its interface stays a
                // member, paused.
                if wanted.logout == QueueLogout::Pause && current.contains_key(&key) {
                    others.push(Action::Add {
                        queue: spec.name.to_string(),
                        interface: wanted.interface.to_string(),
                        penalty: spec.penalty,
                        paused: true,
                    });
                }
            }
            Some(m) => {
                if !wanted.logged_in && wanted.logout == QueueLogout::Remove {
                    continue;
                }
                let paused = !wanted.logged_in;
                if m.paused != paused {
                    others.push(Action::Pause {
                        queue: spec.name.to_string(),
                        interface: m.interface.clone(),
                        paused,
                    });
                }
                if m.penalty != spec.penalty {
                    others.push(Action::Penalty {
                        queue: spec.name.to_string(),
                        interface: m.interface.clone(),
                        penalty: spec.penalty,
                    });
                }
            }
        }
    }
    removals.extend(others);
    removals
}

/// `current` after `action` succeeded.
pub fn applied(current: &mut BTreeMap<String, Member>, action: &Action) {
    match action {
        Action::Add {
            queue,
            interface,
            penalty,
            paused,
        } => {
            current.insert(
                queue.to_ascii_lowercase(),
                Member {
                    interface: interface.clone(),
                    penalty: *penalty,
                    paused: *paused,
                },
            );
        }
        Action::Remove { queue, .. } => {
            current.remove(&queue.to_ascii_lowercase());
        }
        Action::Pause { queue, paused, .. } => {
            if let Some(m) = current.get_mut(&queue.to_ascii_lowercase()) {
                m.paused = *paused;
            }
        }
        Action::Penalty { queue, penalty, .. } => {
            if let Some(m) = current.get_mut(&queue.to_ascii_lowercase()) {
                m.penalty = *penalty;
            }
        }
    }
}

/// The AMI action that makes `action`, as header pairs.
pub fn ami_fields(action: &Action, user: &str, member_name: &str) -> Vec<(&'static str, String)> {
    match action {
        Action::Add {
            queue,
            interface,
            penalty,
            paused,
        } => {
            let mut f = vec![
                ("Action", "QueueAdd".to_string()),
                ("Queue", queue.clone()),
                ("Interface", interface.clone()),
                ("Penalty", penalty.to_string()),
                ("Paused", if *paused { "true" } else { "false" }.to_string()),
                ("MemberName", member_name.to_string()),
                ("StateInterface", state_interface(user)),
            ];
            if *paused {
                f.push(("Reason", PAUSE_REASON.to_string()));
            }
            f
        }
        Action::Remove { queue, interface } => vec![
            ("Action", "QueueRemove".to_string()),
            ("Queue", queue.clone()),
            ("Interface", interface.clone()),
        ],
        Action::Pause {
            queue,
            interface,
            paused,
        } => {
            let mut f = vec![
                ("Action", "QueuePause".to_string()),
                ("Queue", queue.clone()),
                ("Interface", interface.clone()),
                ("Paused", if *paused { "true" } else { "false" }.to_string()),
            ];
            if *paused {
                f.push(("Reason", PAUSE_REASON.to_string()));
            }
            f
        }
        Action::Penalty {
            queue,
            interface,
            penalty,
        } => vec![
            ("Action", "QueuePenalty".to_string()),
            ("Queue", queue.clone()),
            ("Interface", interface.clone()),
            ("Penalty", penalty.to_string()),
        ],
    }
}

/// How `app_queue` answered an action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// The member is already there (an add) or already gone (a removal): the goal holds.
    AlreadySo,
    /// `app_queue` has no such queue.
    NoSuchQueue,
    /// Any other error, with `app_queue`'s message.
    Failed(String),
}

/// Reads `app_queue`'s response to `action`.
pub fn outcome(action: &Action, response: &AmiMessage) -> Outcome {
    let ok = header(response, "Response").is_some_and(|r| r.eq_ignore_ascii_case("Success"));
    if ok {
        return Outcome::Done;
    }
    let msg = header(response, "Message").unwrap_or("").to_string();
    let lower = msg.to_ascii_lowercase();
    if lower.contains("no such queue") {
        return Outcome::NoSuchQueue;
    }
    match action {
        Action::Add { .. } if lower.contains("already there") => Outcome::AlreadySo,
        Action::Remove { .. } if lower.contains("not there") => Outcome::AlreadySo,
        _ => Outcome::Failed(msg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, penalty: u32) -> QueueSpec {
        QueueSpec {
            name: name.into(),
            penalty,
        }
    }

    fn member(interface: &str, penalty: u32, paused: bool) -> Member {
        Member {
            interface: interface.into(),
            penalty,
            paused,
        }
    }

    const IFACE: &str = "Local/4101@deviceuser-queue";

    #[test]
    fn queue_lists_parse() {
        assert_eq!(
            parse_queue_list("sales, support:2").unwrap(),
            vec![spec("sales", 0), spec("support", 2)]
        );
        assert_eq!(parse_queue_list("").unwrap(), vec![]);
        assert_eq!(parse_queue_list("None").unwrap(), vec![]);
        let e = parse_queue_list("sa les,x:y,ok,OK,,q:-1").unwrap_err();
        assert_eq!(e.len(), 5, "{e:?}");
        assert!(e[0].contains("' '"), "{e:?}");
        assert!(e[1].contains("bad penalty 'y'"), "{e:?}");
        assert!(e[2].contains("listed twice"), "{e:?}");
        assert!(e[3].contains("empty queue name"), "{e:?}");
        assert!(e[4].contains("bad penalty '-1'"), "{e:?}");
        assert_eq!(spec("support", 2).to_string(), "support:2");
        assert_eq!(spec("sales", 0).to_string(), "sales");
    }

    #[test]
    fn names() {
        assert_eq!(member_interface("4101", "ctx"), "Local/4101@ctx");
        assert_eq!(state_interface("4101"), "DeviceUser:4101");
        assert_eq!(user_of_state_interface("deviceuser:4101"), Some("4101"));
        assert_eq!(user_of_state_interface("DeviceUser:"), None);
        assert_eq!(user_of_state_interface("PJSIP/1000"), None);
        assert_eq!(QueueLogout::parse(" Pause "), Some(QueueLogout::Pause));
        assert_eq!(QueueLogout::parse("drop"), None);
    }

    #[test]
    fn status_output_is_read() {
        let text = "Response: Success\r\nEventList: start\r\nMessage: Queue status will follow\r\n\r\n\
            Event: QueueParams\r\nQueue: Sales\r\nMax: 0\r\n\r\n\
            Event: QueueMember\r\nQueue: Sales\r\nName: Operator 4101\r\nLocation: Local/4101@deviceuser-queue\r\nStateInterface: DeviceUser:4101\r\nMembership: dynamic\r\nPenalty: 2\r\nPaused: 1\r\n\r\n\
            Event: QueueMember\r\nQueue: Sales\r\nName: static\r\nLocation: PJSIP/1099\r\nStateInterface: PJSIP/1099\r\nMembership: static\r\nPenalty: 0\r\nPaused: 0\r\n\r\n\
            Event: QueueMember\r\nQueue: Sales\r\nName: by hand\r\nLocation: Local/4102@x\r\nStateInterface: DeviceUser:4102\r\nMembership: static\r\nPenalty: 0\r\nPaused: 0\r\n\r\n\
            Event: QueueParams\r\nQueue: support\r\n\r\n\
            Event: QueueStatusComplete\r\nListItems: 5\r\n\r\n";
        let (members, queues) = members_in_status(&parse_ami_messages(text));
        assert_eq!(queues, vec!["sales", "support"]);
        assert_eq!(members.len(), 1);
        assert_eq!(
            members["4101"]["sales"],
            member("Local/4101@deviceuser-queue", 2, true)
        );
    }

    #[test]
    fn login_adds_logout_removes() {
        let queues = [spec("sales", 0), spec("support", 2)];
        let mut current = BTreeMap::new();
        let w = Wanted {
            queues: &queues,
            logged_in: true,
            logout: QueueLogout::Remove,
            interface: IFACE,
        };
        let actions = plan(&current, &w);
        assert_eq!(actions.len(), 2);
        assert!(
            matches!(&actions[1], Action::Add { queue, penalty: 2, paused: false, .. } if queue == "support")
        );
        for a in &actions {
            applied(&mut current, a);
        }
        assert!(plan(&current, &w).is_empty(), "nothing left to do");
        let out = Wanted {
            logged_in: false,
            ..w
        };
        let actions = plan(&current, &out);
        assert_eq!(actions.len(), 2);
        assert!(actions.iter().all(|a| matches!(a, Action::Remove { .. })));
        for a in &actions {
            applied(&mut current, a);
        }
        assert!(current.is_empty());
        assert!(plan(&current, &out).is_empty());
    }

    #[test]
    fn pause_mode_pauses_and_unpauses() {
        let queues = [spec("sales", 0)];
        let mut current = BTreeMap::new();
        let out = Wanted {
            queues: &queues,
            logged_in: false,
            logout: QueueLogout::Pause,
            interface: IFACE,
        };
        assert!(plan(&current, &out).is_empty(), "never a member: not added");
        current.insert("sales".into(), member(IFACE, 0, false));
        assert_eq!(
            plan(&current, &out),
            vec![Action::Pause {
                queue: "sales".into(),
                interface: IFACE.into(),
                paused: true
            }]
        );
        current.get_mut("sales").unwrap().paused = true;
        assert!(plan(&current, &out).is_empty());
        let back = Wanted {
            logged_in: true,
            ..out
        };
        assert_eq!(
            plan(&current, &back),
            vec![Action::Pause {
                queue: "sales".into(),
                interface: IFACE.into(),
                paused: false
            }]
        );
    }

    #[test]
    fn changes_of_config_are_followed() {
        let mut current = BTreeMap::new();
        current.insert("sales".to_string(), member(IFACE, 0, false));
        current.insert("old".to_string(), member(IFACE, 0, false));
        current.insert(
            "support".to_string(),
            member("Local/4101@old-ctx", 1, false),
        );
        let queues = [spec("Sales", 5), spec("support", 1)];
        let w = Wanted {
            queues: &queues,
            logged_in: true,
            logout: QueueLogout::Remove,
            interface: IFACE,
        };
        let actions = plan(&current, &w);
        assert_eq!(
            actions,
            vec![
                Action::Remove {
                    queue: "old".into(),
                    interface: IFACE.into()
                },
                Action::Remove {
                    queue: "support".into(),
                    interface: "Local/4101@old-ctx".into()
                },
                Action::Penalty {
                    queue: "Sales".into(),
                    interface: IFACE.into(),
                    penalty: 5
                },
                Action::Add {
                    queue: "support".into(),
                    interface: IFACE.into(),
                    penalty: 1,
                    paused: false
                },
            ]
        );
        for a in &actions {
            applied(&mut current, a);
        }
        assert!(plan(&current, &w).is_empty());
    }

    #[test]
    fn responses_are_read() {
        let add = Action::Add {
            queue: "sales".into(),
            interface: IFACE.into(),
            penalty: 0,
            paused: false,
        };
        let remove = Action::Remove {
            queue: "sales".into(),
            interface: IFACE.into(),
        };
        let msg = |r: &str, m: &str| {
            parse_ami_messages(&format!("Response: {r}\r\nMessage: {m}\r\n\r\n")).remove(0)
        };
        assert_eq!(outcome(&add, &msg("Success", "Added")), Outcome::Done);
        assert_eq!(
            outcome(
                &add,
                &msg("Error", "Unable to add interface: Already there")
            ),
            Outcome::AlreadySo
        );
        assert_eq!(
            outcome(
                &remove,
                &msg("Error", "Unable to remove interface: Not there")
            ),
            Outcome::AlreadySo
        );
        assert_eq!(
            outcome(
                &add,
                &msg("Error", "Unable to add interface to queue: No such queue")
            ),
            Outcome::NoSuchQueue
        );
        assert_eq!(
            outcome(&remove, &msg("Error", "Member not dynamic")),
            Outcome::Failed("Member not dynamic".into())
        );
        let f = ami_fields(&add, "4101", "Operator 4101");
        assert!(f.contains(&("StateInterface", "DeviceUser:4101".to_string())));
        assert!(f.contains(&("MemberName", "Operator 4101".to_string())));
    }
}
