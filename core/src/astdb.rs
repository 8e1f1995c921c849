//! How bindings are persisted in Asterisk's AstDB, so they survive a restart.
//!
//! Do-not-disturb is one key per user who has it on, `/deviceuser/dnd/<user>` = `1`
//! ([`dnd_key`], [`DND_VALUE`]); turning it off deletes the key.
//!
//! Each binding is one key, `/deviceuser/binding/<device>` = `<user>;<since>`. Keying by
//! device matches the table's rule of one user per device: saving a binding overwrites
//! whatever the device had, and a logout is a single delete.
//!
//! AstDB's tree queries (`database show deviceuser`, `ast_db_gettree`) match keys with SQL
//! `LIKE`, where `_` and `%` are wildcards. Device ids containing them are stored and read
//! back correctly, but a prefix query for one device may also return similar ids; always
//! read a single binding with its exact key, and filter tree results by exact key.

use crate::logtext::quoted;
use crate::table::Binding;

/// AstDB family (the first path component of every key).
pub const FAMILY: &str = "deviceuser";

const BINDING_PREFIX: &str = "binding/";

const DND_PREFIX: &str = "dnd/";

/// Value stored under a [`dnd_key`].
pub const DND_VALUE: &str = "1";

/// Key of a user's do-not-disturb flag within [`FAMILY`].
pub fn dnd_key(user: &str) -> String {
    format!("{DND_PREFIX}{user}")
}

/// The user of a do-not-disturb key, with or without the `/deviceuser/` family prefix;
/// `None` if the key is not one.
pub fn decode_dnd_key(key: &str) -> Option<String> {
    let user = strip_family(key).strip_prefix(DND_PREFIX)?;
    (!user.is_empty() && !user.contains('/')).then(|| user.to_string())
}

/// `key` without a leading `/deviceuser/` (or `deviceuser/`), if present.
fn strip_family(key: &str) -> &str {
    let k = key.trim_start_matches('/');
    k.strip_prefix(FAMILY)
        .and_then(|k| k.strip_prefix('/'))
        .unwrap_or(k)
}

/// Key of a device's binding within [`FAMILY`].
pub fn binding_key(device: &str) -> String {
    format!("{BINDING_PREFIX}{device}")
}

/// Stored value: `<user>;<since>`. `;` cannot occur in an id (it starts a comment in
/// Asterisk config files), and the decoder splits at the last one anyway.
pub fn binding_value(b: &Binding) -> String {
    format!("{};{}", b.user, b.since)
}

/// Decodes one stored binding. The key is accepted with or without the `/deviceuser/`
/// family prefix, since `ast_db_gettree` returns full paths while other callers do not.
pub fn decode_binding(key_without_family: &str, value: &str) -> Result<Binding, String> {
    let key = strip_family(key_without_family);
    let device = key
        .strip_prefix(BINDING_PREFIX)
        .ok_or_else(|| format!("key {} is not a binding", quoted(key_without_family)))?;
    if device.is_empty() || device.contains('/') {
        return Err(format!("bad device in key {}", quoted(key_without_family)));
    }
    let (user, since) = value
        .rsplit_once(';')
        .ok_or_else(|| format!("value {} is not <user>;<since>", quoted(value)))?;
    if user.is_empty() {
        return Err(format!("empty user in value {}", quoted(value)));
    }
    let since = since
        .parse()
        .map_err(|_| format!("bad timestamp in value {}", quoted(value)))?;
    Ok(Binding::new(user, device, since))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for b in [
            Binding::new("1000", "2010", 0),
            Binding::new("front_desk%", "lobby-1", u64::MAX),
            Binding::new("a;b", "x", 1_700_000_000),
        ] {
            let key = binding_key(&b.device);
            let value = binding_value(&b);
            assert_eq!(decode_binding(&key, &value), Ok(b.clone()));
            let full = format!("/{FAMILY}/{key}");
            assert_eq!(decode_binding(&full, &value), Ok(b));
        }
    }

    #[test]
    fn formats() {
        let b = Binding::new("100", "1000", 42);
        assert_eq!(binding_key("1000"), "binding/1000");
        assert_eq!(binding_value(&b), "100;42");
        assert_eq!(decode_binding("/deviceuser/binding/1000", "100;42"), Ok(b));
    }

    #[test]
    fn dnd_keys() {
        assert_eq!(dnd_key("100"), "dnd/100");
        assert_eq!(DND_VALUE, "1");
        for user in ["100", "front_desk%", "a;b"] {
            let k = dnd_key(user);
            assert_eq!(decode_dnd_key(&k).as_deref(), Some(user));
            assert_eq!(
                decode_dnd_key(&format!("/{FAMILY}/{k}")).as_deref(),
                Some(user)
            );
        }
        for bad in [
            "dnd/",
            "dnd/a/b",
            "binding/100",
            "/otherfamily/dnd/100",
            "/deviceuser/dnd/",
            "dnd",
        ] {
            assert_eq!(decode_dnd_key(bad), None, "{bad}");
        }
        // A binding key is not a DND key and vice versa.
        assert!(decode_binding("dnd/100", "100;1").is_err());
    }

    #[test]
    fn rejects_garbage() {
        for (k, v) in [
            ("binding/", "100;1"),
            ("binding/a/b", "100;1"),
            ("other/1000", "100;1"),
            ("/otherfamily/binding/1000", "100;1"),
            ("binding/1000", "100"),
            ("binding/1000", ";1"),
            ("binding/1000", "100;x"),
            ("binding/1000", "100;-1"),
        ] {
            assert!(decode_binding(k, v).is_err(), "{k} = {v}");
        }
    }
}
