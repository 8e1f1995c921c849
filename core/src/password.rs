//! PIN storage: a user's `password` is either a plain PIN or a password hash.
//!
//! Hashes are recognised by a leading `$`:
//! - PHC strings of Argon2 (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`, also `argon2i` and
//!   `argon2d`), verified with RustCrypto's `argon2` crate;
//! - SHA-crypt in the modular crypt format (`$5$...` for SHA-256, `$6$...` for SHA-512, as
//!   written by `mkpasswd -m sha-512`), verified with RustCrypto's `sha-crypt` crate.
//!
//! Both crates are maintained by the RustCrypto project, are pure Rust, and keep no
//! thread-local state. A hash is checked for well-formedness when the config is loaded
//! ([`check_hash`]), so a typo is reported then rather than silently refusing every login.
//! Messages never contain the hash or the PIN.

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Argon2, PasswordHash};
use sha_crypt::ShaCrypt;

/// Largest accepted Argon2 memory cost, in KiB (1 GiB). Verification runs on the caller's
/// (PBX) thread and allocates this much; a larger value is almost certainly a mistake.
pub const MAX_ARGON2_M_COST: u32 = 1024 * 1024;

/// Largest accepted Argon2 time cost (passes).
pub const MAX_ARGON2_T_COST: u32 = 64;

/// Largest accepted SHA-crypt round count. The format allows 999,999,999, which would take
/// minutes per login attempt.
pub const MAX_SHA_CRYPT_ROUNDS: u32 = 10_000_000;

/// The kinds of stored password.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Plain,
    Argon2,
    ShaCrypt,
    Unknown,
}

fn kind(stored: &str) -> Kind {
    if !stored.starts_with('$') {
        Kind::Plain
    } else if stored.starts_with("$argon2") {
        Kind::Argon2
    } else if stored.starts_with("$5$") || stored.starts_with("$6$") {
        Kind::ShaCrypt
    } else {
        Kind::Unknown
    }
}

/// Whether `stored` is meant as a hash (starts with `$`) rather than a plain PIN.
pub fn is_hash(stored: &str) -> bool {
    kind(stored) != Kind::Plain
}

/// Checks that a hash parses and has sane costs, without computing it. `Ok` for plain
/// PINs. The error text never includes the hash.
pub fn check_hash(stored: &str) -> Result<(), String> {
    match kind(stored) {
        Kind::Plain => Ok(()),
        Kind::Argon2 => check_argon2(stored),
        Kind::ShaCrypt => check_sha_crypt(stored),
        Kind::Unknown => Err(
            "unsupported password hash (expected $argon2id$..., $argon2i$..., $argon2d$..., \
             $5$... or $6$...)"
                .into(),
        ),
    }
}

fn check_argon2(stored: &str) -> Result<(), String> {
    let bad = |what: &str| Err(format!("malformed argon2 password hash ({what})"));
    let Ok(h) = PasswordHash::new(stored) else {
        return bad("not a PHC string");
    };
    if h.algorithm.as_str().parse::<argon2::Algorithm>().is_err() {
        return bad("unknown algorithm");
    }
    if let Some(v) = h.version {
        if argon2::Version::try_from(v).is_err() {
            return bad("unknown version");
        }
    }
    let Ok(params) = argon2::Params::try_from(&h) else {
        return bad("bad parameters");
    };
    if h.salt.is_none() || h.hash.is_none() {
        return bad("missing salt or hash");
    }
    if params.m_cost() > MAX_ARGON2_M_COST || params.t_cost() > MAX_ARGON2_T_COST {
        return Err(format!(
            "argon2 password hash costs too much to verify (at most m={MAX_ARGON2_M_COST}, \
             t={MAX_ARGON2_T_COST})"
        ));
    }
    Ok(())
}

/// Mirrors what `sha-crypt` does when verifying: `$<id>$[rounds=N$]<salt>$<hash>`, the hash
/// being 43 (SHA-256) or 86 (SHA-512) characters of the crypt base64 alphabet.
fn check_sha_crypt(stored: &str) -> Result<(), String> {
    let bad = |what: &str| Err(format!("malformed SHA-crypt password hash ({what})"));
    let Ok(h) = sha_crypt::PasswordHashRef::new(stored) else {
        return bad("not a modular crypt string");
    };
    let hash_len = match h.id() {
        "5" => 43,
        "6" => 86,
        _ => return bad("unknown algorithm"),
    };
    let fields: Vec<&str> = h.fields().map(|f| f.as_str()).collect();
    let (params, salt, hash) = match fields.as_slice() {
        [p, s, h] if p.starts_with("rounds=") => (Some(*p), *s, *h),
        [s, h] => (None, *s, *h),
        _ => return bad("wrong number of fields"),
    };
    if let Some(p) = params {
        match p.parse::<sha_crypt::Params>() {
            Ok(_) => {
                let rounds: u32 = p["rounds=".len()..].parse().unwrap_or(u32::MAX);
                if rounds > MAX_SHA_CRYPT_ROUNDS {
                    return Err(format!(
                        "SHA-crypt password hash costs too much to verify (at most \
                         rounds={MAX_SHA_CRYPT_ROUNDS})"
                    ));
                }
            }
            Err(_) => return bad("bad rounds"),
        }
    }
    if salt.is_empty() {
        return bad("empty salt");
    }
    let crypt_b64 = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '/';
    if hash.len() != hash_len || !hash.chars().all(crypt_b64) {
        return bad("bad hash length or characters");
    }
    Ok(())
}

/// Compares a plain PIN in constant time with respect to its content, so response timing
/// does not reveal how many leading digits were right. The loop always runs over the whole
/// input, and a length mismatch is folded into the result instead of returning early.
fn plain_matches(want: &str, got: &str) -> bool {
    let (want, got) = (want.as_bytes(), got.as_bytes());
    if want.is_empty() {
        return false;
    }
    let mut diff = u8::from(want.len() != got.len());
    for (i, &b) in got.iter().enumerate() {
        diff |= b ^ want[i % want.len()];
    }
    std::hint::black_box(diff) == 0
}

/// Whether `given` matches `stored` (a plain PIN or a supported hash). An empty `given`
/// never matches; neither does a malformed or unsupported hash. Hash comparisons are
/// constant-time inside the crates.
pub fn verify(stored: &str, given: &str) -> bool {
    match kind(stored) {
        Kind::Plain => plain_matches(stored, given),
        _ if given.is_empty() => false,
        // Parameters come from the hash itself, not from the `Argon2` instance.
        Kind::Argon2 => {
            check_argon2(stored).is_ok()
                && PasswordHash::new(stored).is_ok_and(|h| {
                    Argon2::default()
                        .verify_password(given.as_bytes(), &h)
                        .is_ok()
                })
        }
        Kind::ShaCrypt => {
            check_sha_crypt(stored).is_ok()
                && ShaCrypt::default()
                    .verify_password(given.as_bytes(), stored)
                    .is_ok()
        }
        Kind::Unknown => false,
    }
}

/// Hashes a PIN for `res_deviceuser.conf`: Argon2id with the crate's default parameters
/// (19 MiB, 2 passes, 1 lane) and a random 16-byte salt from the OS (`getrandom`). The result
/// is a PHC string such as `$argon2id$v=19$m=19456,t=2,p=1$...$...`.
///
/// # Panics
/// If the operating system cannot provide random bytes, which on supported platforms means
/// the system is unusable anyway.
pub fn hash_password(pin: &str) -> String {
    Argon2::default()
        .hash_password(pin.as_bytes())
        .expect("argon2 hashing with OS randomness")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    // SHA-crypt specification test vectors, password "Hello world!" (the SHA-256 one as
    // written by `openssl passwd -5 -salt saltstring`).
    const SHA512_VECTOR: &str = "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1";
    const SHA256_VECTOR: &str = "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5";
    const SHA512_ROUNDS_VECTOR: &str = "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.";

    #[test]
    fn glibc_vectors_verify() {
        assert!(check_hash(SHA512_VECTOR).is_ok());
        assert!(check_hash(SHA256_VECTOR).is_ok());
        assert!(check_hash(SHA512_ROUNDS_VECTOR).is_ok());
        assert!(verify(SHA512_VECTOR, "Hello world!"));
        assert!(verify(SHA256_VECTOR, "Hello world!"));
        assert!(verify(SHA512_ROUNDS_VECTOR, "Hello world!"));
        assert!(!verify(SHA512_VECTOR, "Hello world"));
        assert!(!verify(SHA256_VECTOR, ""));
    }

    #[test]
    fn hash_password_round_trip() {
        let h = hash_password("4711");
        assert!(h.starts_with("$argon2id$v=19$"), "{h}");
        assert!(check_hash(&h).is_ok());
        assert!(verify(&h, "4711"));
        assert!(!verify(&h, "4712"));
        assert!(!verify(&h, ""));
        // Random salt: two hashes of one PIN differ.
        assert_ne!(h, hash_password("4711"));
    }

    #[test]
    fn malformed_hashes_are_rejected_without_echo() {
        for bad in [
            "$",
            "$argon2id$",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ",
            "$argon2xx$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA",
            "$argon2id$v=19$m=4294967295,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
            "$6$saltstring",
            "$6$saltstring$tooshort",
            "$6$rounds=abc$salt$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
            "$6$rounds=999999999$salt$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
            "$5$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
            "$1$md5salt$abcdefghijklmnopqrstuv",
            "$2b$10$abcdefghijklmnopqrstuv",
        ] {
            let e = check_hash(bad).expect_err(bad);
            assert!(
                !e.contains("saltstring") && !e.contains("c2FsdHNhbHQ") && !e.contains("abcdefgh"),
                "{e}"
            );
            assert!(!verify(bad, "Hello world!"), "{bad}");
        }
    }

    #[test]
    fn plain_pins() {
        assert!(!is_hash("1234"));
        assert!(is_hash("$6$x$y"));
        assert!(check_hash("1234").is_ok());
        assert!(verify("1234", "1234"));
        for wrong in ["", "123", "12345", "1235", "12341234"] {
            assert!(!verify("1234", wrong), "{wrong}");
        }
        assert!(!verify("", ""));
    }
}
