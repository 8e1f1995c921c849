//! The order Asterisk keeps a context's extensions in, so that the module adds and removes
//! its hints in the order that costs Asterisk least.
//!
//! Asterisk (`main/pbx.c`, `ast_add_extension2_lockopt`) keeps each context's extensions in
//! a list sorted by `ext_cmp` and finds the place of a new one by walking that list from the
//! head; removing one walks it from the head too. Adding N hints in ascending order walks
//! N²/2 list nodes (10,000 hints: about 2 s at `module load`). Adding them in descending
//! order puts each at the head (N steps), and removing them in ascending order finds each
//! at the head. The order only changes the cost, never the resulting dialplan.
//!
//! Which hints the module keeps in its `hint_context` is planned here too ([`plan_hints`]).
use std::cmp::Ordering;
use std::collections::HashSet;

/// Asterisk's `ext_cmp` for the names of two extensions: plain names (no leading `_`) come
/// before patterns, and compare byte by byte as C `char`s (signed on x86-64, unsigned on
/// aarch64), skipping the `-` separators, up to and including the terminating NUL (so on
/// x86-64 a name sorts after a longer one that continues with a byte above 0x7f). Patterns
/// are ordered among themselves by their text; Asterisk orders them by what they match,
/// which only moves where each pattern's walk ends. Names here never hold spaces (ids
/// cannot), which Asterisk strips from extension names.
pub fn ext_cmp(left: &str, right: &str) -> Ordering {
    match (left.starts_with('_'), right.starts_with('_')) {
        (false, true) => Ordering::Less,
        (true, false) => Ordering::Greater,
        (true, true) => left.cmp(right),
        (false, false) => {
            let key = |s: &str| {
                (s.bytes().filter(|&b| b != b'-'))
                    .chain([0])
                    .map(|b| b as std::ffi::c_char)
                    .collect::<Vec<_>>()
            };
            key(left).cmp(&key(right))
        }
    }
}

/// Sorts extension names in the order that makes adding them one by one cheapest: descending.
pub fn sort_for_adding<S: AsRef<str>>(names: &mut [S]) {
    names.sort_by(|a, b| ext_cmp(b.as_ref(), a.as_ref()));
}

/// Sorts extension names in the order that makes removing them one by one cheapest:
/// ascending.
pub fn sort_for_removing<S: AsRef<str>>(names: &mut [S]) {
    names.sort_by(|a, b| ext_cmp(a.as_ref(), b.as_ref()));
}

/// The device list of the pattern hints: Asterisk puts the extension a phone subscribed to in
/// place of `${EXTEN}` when it makes the user's own hint from the pattern.
pub const PATTERN_HINT_DEVICE: &str = "DeviceUser:${EXTEN}";

/// Whether every character of `id` is a decimal digit (so a pattern of `X`s matches it).
fn all_digits(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())
}

/// The pattern hints of a `hint_context`: `_XXXX` for each length of the all-digit user ids
/// (`4101` gives `_XXXX`), in ascending order. Asterisk turns a pattern hint into the hint of
/// one user when a phone subscribes to that user (or AMI `ExtensionState` asks for it), so
/// every user can be watched without a hint of their own in advance.
pub fn hint_patterns<'a>(users: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut lengths: Vec<usize> = users
        .into_iter()
        .filter(|u| all_digits(u))
        .map(str::len)
        .collect();
    lengths.sort_unstable();
    lengths.dedup();
    lengths
        .into_iter()
        .map(|n| format!("_{}", "X".repeat(n)))
        .collect()
}

/// What brings the module's hints in a `hint_context` in line with the configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HintPlan {
    /// Extensions to remove, in the order that costs Asterisk least.
    pub remove: Vec<String>,
    /// `(extension, device list)` to add (or replace, keeping watchers), in the order that
    /// costs Asterisk least.
    pub add: Vec<(String, String)>,
    /// The users that have a hint of their own once the plan is carried out.
    pub users_hinted: Vec<String>,
}

/// Plans the module's hints in a context from those it has there (`present`: extension and
/// device list). Wanted are the [`hint_patterns`] of the configured users, and a hint of their
/// own for each user in `active` (logged in somewhere or in DND, so `core show hint <user>`
/// and AMI `ExtensionStateList` show them) and for each user whose id is not all digits (no
/// pattern covers it). A configured user's own hint that is already there stays, whatever
/// made it (an earlier login, or a phone that subscribed through a pattern): it may have
/// watchers. Removed are hints of users no longer configured (among them those a pattern
/// made for a number that is no user) and patterns no longer wanted.
///
/// Asterisk scans all its hints each time it adds or removes one (`ast_add_hint`,
/// `ast_remove_hint` in `main/pbx.c` up to 22.10), so registering N hints costs N²: this plan
/// keeps N to the users that are active or watched, not every configured user.
pub fn plan_hints<'a>(
    present: &[(String, String)],
    users: &[&'a str],
    configured: impl Fn(&str) -> bool,
    active: impl IntoIterator<Item = &'a str>,
) -> HintPlan {
    let own = |u: &str| format!("{}{u}", crate::config::USER_STATE_PREFIX);
    let patterns = hint_patterns(users.iter().copied());
    let mut plan = HintPlan::default();
    let mut kept: HashSet<&str> = HashSet::new();
    for (exten, devices) in present {
        let wanted = if exten.starts_with('_') {
            patterns.contains(exten)
        } else {
            configured(exten)
        };
        if !wanted {
            plan.remove.push(exten.clone());
        } else if exten.starts_with('_') && devices == PATTERN_HINT_DEVICE
            || !exten.starts_with('_') && *devices == own(exten)
        {
            kept.insert(exten);
        }
    }
    for p in &patterns {
        if !kept.contains(p.as_str()) {
            plan.add.push((p.clone(), PATTERN_HINT_DEVICE.to_string()));
        }
    }
    let mut hinted: HashSet<&str> = present
        .iter()
        .map(|(e, _)| e.as_str())
        .filter(|e| !e.starts_with('_') && kept.contains(e))
        .collect();
    let needs_own = users.iter().copied().filter(|u| !all_digits(u));
    for user in active.into_iter().chain(needs_own) {
        if configured(user) && hinted.insert(user) {
            plan.add.push((user.to_string(), own(user)));
        }
    }
    // A present hint whose device list is not the user's own is replaced (kept watchers).
    for (exten, _) in present {
        if !exten.starts_with('_') && configured(exten) && hinted.insert(exten) {
            plan.add.push((exten.clone(), own(exten)));
        }
    }
    sort_for_removing(&mut plan.remove);
    plan.add.sort_by(|a, b| ext_cmp(&b.0, &a.0));
    plan.users_hinted = hinted.into_iter().map(str::to_string).collect();
    plan.users_hinted.sort_unstable();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn patterns_cover_each_length_of_numeric_ids() {
        assert_eq!(
            hint_patterns(["4101", "4110", "2010", "100001", "alice", "7", "12-3"]),
            ["_X", "_XXXX", "_XXXXXX"]
        );
        assert!(hint_patterns(["alice", "bob"]).is_empty());
    }

    #[test]
    fn a_fresh_context_gets_patterns_and_the_active_users_hints() {
        let users = ["4101", "4102", "4103", "alice"];
        let plan = plan_hints(&[], &users, |u| users.contains(&u), ["4102"]);
        assert!(plan.remove.is_empty());
        assert_eq!(
            plan.add,
            pairs(&[
                ("_XXXX", PATTERN_HINT_DEVICE),
                ("alice", "DeviceUser:alice"),
                ("4102", "DeviceUser:4102"),
            ])
        );
        assert_eq!(plan.users_hinted, ["4102", "alice"]);
    }

    #[test]
    fn hints_of_configured_users_stay_and_others_go() {
        let users = ["4101", "4102", "100001"];
        let present = pairs(&[
            ("_XXXX", PATTERN_HINT_DEVICE),
            ("_XXX", PATTERN_HINT_DEVICE),
            ("4101", "DeviceUser:4101"),
            // Made from the pattern for a number that is no user.
            ("9999", "DeviceUser:9999"),
            // A user's hint with another device list is put right.
            ("4102", "PJSIP/4102"),
        ]);
        let plan = plan_hints(&present, &users, |u| users.contains(&u), []);
        assert_eq!(plan.remove, ["9999", "_XXX"]);
        assert_eq!(
            plan.add,
            pairs(&[
                ("_XXXXXX", PATTERN_HINT_DEVICE),
                ("4102", "DeviceUser:4102"),
            ])
        );
        assert_eq!(plan.users_hinted, ["4101", "4102"]);
    }

    #[test]
    fn an_unchanged_context_needs_nothing() {
        let users = ["4101", "4102"];
        let present = pairs(&[("_XXXX", PATTERN_HINT_DEVICE), ("4101", "DeviceUser:4101")]);
        let plan = plan_hints(&present, &users, |u| users.contains(&u), ["4101"]);
        assert!(plan.remove.is_empty() && plan.add.is_empty(), "{plan:?}");
        assert_eq!(plan.users_hinted, ["4101"]);
    }

    #[test]
    fn plain_names_compare_as_signed_bytes_without_dashes() {
        assert_eq!(ext_cmp("100", "100"), Ordering::Equal);
        assert_eq!(ext_cmp("100", "1000"), Ordering::Less);
        assert_eq!(ext_cmp("2", "10"), Ordering::Greater);
        assert_eq!(ext_cmp("555-1234", "5551234"), Ordering::Equal);
        assert_eq!(ext_cmp("5-55", "554"), Ordering::Greater);
        assert_eq!(ext_cmp("A", "a"), Ordering::Less);
        assert_eq!(ext_cmp("a", "ab"), Ordering::Less);
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn bytes_above_0x7f_are_negative_chars_on_x86_64() {
        // A negative C char sorts before ASCII, and before the end of a shorter name.
        assert_eq!(ext_cmp("é", "a"), Ordering::Less);
        assert_eq!(ext_cmp("a", "aé"), Ordering::Greater);
    }

    #[test]
    fn patterns_come_after_plain_names() {
        assert_eq!(ext_cmp("_X.", "9999"), Ordering::Greater);
        assert_eq!(ext_cmp("9999", "_X."), Ordering::Less);
        assert_eq!(ext_cmp("_1X", "_1X"), Ordering::Equal);
    }

    #[test]
    fn adding_order_is_descending_and_removing_order_ascending() {
        let mut v = vec!["4101", "_4X", "2010", "4110", "1-000"];
        sort_for_adding(&mut v);
        assert_eq!(v, ["_4X", "4110", "4101", "2010", "1-000"]);
        sort_for_removing(&mut v);
        assert_eq!(v, ["1-000", "2010", "4101", "4110", "_4X"]);
    }
}
