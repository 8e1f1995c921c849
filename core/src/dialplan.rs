//! The order Asterisk keeps a context's extensions in, so that the module adds and removes
//! its hints in the order that costs Asterisk least.
//!
//! Asterisk (`main/pbx.c`, `ast_add_extension2_lockopt`) keeps each context's extensions in
//! a list sorted by `ext_cmp` and finds the place of a new one by walking that list from the
//! head; removing one walks it from the head too. Adding N hints in ascending order walks
//! N²/2 list nodes (10,000 hints: about 2 s at `module load`). Adding them in descending
//! order puts each at the head (N steps), and removing them in ascending order finds each
//! at the head. The order only changes the cost, never the resulting dialplan.
use std::cmp::Ordering;

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

#[cfg(test)]
mod tests {
    use super::*;

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
