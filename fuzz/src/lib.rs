//! Bodies of the fuzz targets, shared by `fuzz_targets/*.rs` (libFuzzer, `cargo fuzz`) and
//! by `core/tests/fuzz_corpus.rs` (which includes this file and replays the committed corpus
//! plus pseudo-random inputs under plain `cargo test`).
//!
//! Every body takes arbitrary bytes, must never panic on its own, and panics (an assert)
//! when a property of the code under test does not hold.

use std::collections::{BTreeMap, BTreeSet};

use deviceuser_core::args::{parse_digits, split_args};
use deviceuser_core::astdb::{
    binding_key, binding_value, decode_binding, decode_dnd_key, dnd_key, FAMILY,
};
use deviceuser_core::config::{id_problem, RawConfig, MAX_LOGIN_FAILURES, MAX_SECONDS};
use deviceuser_core::render::{self, BindingFilter};
use deviceuser_core::{
    freepbx, password, text, Binding, BindingTable, Changes, CompactString, Config, DeviceMode,
    LoginError, LoginMode, LogoutError, MultipleLogins, Reason, Snapshot,
};

/// Longest error message a bounded-size input may produce from `args`: messages name the
/// offending character, never echo the whole input.
const MAX_ARGS_ERROR: usize = 80;

/// The fuzzer's config file name, as it appears in messages.
pub const FILE: &str = "fuzz.conf";

// ---------------------------------------------------------------------------------------
// config: raw text -> text::parse -> Config::from_raw
// ---------------------------------------------------------------------------------------

/// Text through the parser and the validator: errors are well-formed, accepted configs
/// satisfy the model's invariants and load into a consistent binding table.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let lines = text.split('\n').count() as u32;
    let raw = match text::parse(FILE, &text) {
        Ok(raw) => raw,
        Err(e) => {
            assert!(e.line >= 1 && e.line <= lines, "line {} of {lines}", e.line);
            assert!(!e.message.is_empty());
            assert!(e
                .to_string()
                .starts_with(&format!("{FILE} line {}: ", e.line)));
            return;
        }
    };
    for s in &raw.sections {
        assert!(s.line >= 1 && s.line <= lines);
        for v in &s.vars {
            assert!(v.line >= 1 && v.line <= lines);
            assert!(!v.key.is_empty());
            assert_eq!(v.key.trim_matches(|c: char| c.is_ascii_whitespace()), v.key);
        }
    }
    // What the parser read, written back, reads the same.
    let again = text::parse(FILE, &text::render(&raw))
        .unwrap_or_else(|e| panic!("rendered config does not parse: {e}"));
    assert_eq!(again.shape(), raw.shape());
    check_raw_config(&raw);
}

/// [`Config::from_raw`] on any raw model: never panics, errors are located and never echo a
/// password, accepted configs hold the model's invariants.
pub fn check_raw_config(raw: &RawConfig) {
    match Config::from_raw(raw) {
        Err(errors) => {
            assert!(!errors.is_empty(), "Err without errors");
            for e in &errors {
                assert!(e.to_string().starts_with(&raw.file));
                if e.key.as_deref() == Some("password") {
                    // The message about a password never contains it.
                    for v in password_values(raw) {
                        assert!(!e.message.contains(&v), "{e} shows a password");
                    }
                }
            }
        }
        Ok(parsed) => {
            for w in &parsed.warnings {
                assert!(w.to_string().starts_with(&raw.file));
            }
            check_config(&parsed.config);
            let t = BindingTable::new(parsed.config.clone(), 1_700_000_000);
            let s = t.snapshot();
            check_snapshot(&s);
            // Every device with a default user starts bound to it.
            for d in s.config().devices.values() {
                assert_eq!(
                    s.user_on(&d.id).map(|b| &b.user),
                    d.default_user.as_ref(),
                    "device {} at start",
                    d.id
                );
            }
            let _ = render::devices(&s);
            let _ = render::users(&s);
            let _ = render::bindings(&s, 1_700_000_100, BindingFilter::All);
        }
    }
}

/// Values of `password` keys that cannot occur in message text by chance: long, and with
/// a character that no message about a password uses (a value that is itself a message,
/// as the fuzzer tries, would otherwise be "shown").
fn password_values(raw: &RawConfig) -> Vec<String> {
    let in_messages = |c: char| c.is_ascii_alphanumeric() || " $.,()=-".contains(c);
    raw.sections
        .iter()
        .flat_map(|s| &s.vars)
        .filter(|v| v.key.trim().eq_ignore_ascii_case("password"))
        .map(|v| v.value.trim().to_string())
        .filter(|v| v.len() >= 12 && !v.chars().all(in_messages))
        .collect()
}

/// Invariants of a validated config.
pub fn check_config(c: &Config) {
    let g = &c.general;
    assert!((1..=10).contains(&g.max_attempts));
    assert!(g.max_login_failures <= MAX_LOGIN_FAILURES);
    assert!(g.lockout_window >= 1 && g.lockout_window <= MAX_SECONDS);
    assert!(g.lockout_time >= 1 && g.lockout_time <= MAX_SECONDS);
    assert!(g.max_login_time <= MAX_SECONDS && g.logout_on_unregister <= MAX_SECONDS);
    for p in deviceuser_core::apps::PROMPTS {
        assert!(deviceuser_core::apps::prompt_problem(g.prompt(&p)).is_none());
    }
    for n in &g.allowed_numbers {
        assert!(!n.is_empty() && n.chars().all(|c| c.is_ascii_digit() || "*#+".contains(c)));
    }
    let mut dials = BTreeSet::new();
    for (id, d) in &c.devices {
        assert_eq!(*id, d.id);
        assert_eq!(id_problem(id), None, "device id {id:?}");
        if d.mode == DeviceMode::Fixed {
            assert!(
                d.default_user.is_some(),
                "fixed device {id} without default_user"
            );
        }
        if let Some(du) = &d.default_user {
            assert!(
                c.user(du).is_some(),
                "device {id}: default_user {du} missing"
            );
        }
        assert!(
            (d.dial.contains('/') || d.dial.contains(':')) && !d.dial.contains('&'),
            "dial {:?}",
            d.dial
        );
        // A user's state must not be one of its devices (it would loop).
        assert!(!d.dial.to_ascii_lowercase().starts_with("deviceuser:"));
        assert!(
            dials.insert(d.dial.to_ascii_lowercase()),
            "dial {} twice",
            d.dial
        );
        assert_eq!(c.device_for_dial(&d.dial).map(|x| x.id.as_str()), Some(id));
        assert_eq!(
            c.device_for_dial(&d.dial.to_ascii_uppercase())
                .map(|x| x.id.as_str()),
            Some(id)
        );
    }
    for (id, u) in &c.users {
        assert_eq!(*id, u.id);
        assert_eq!(id_problem(id), None, "user id {id:?}");
        assert!(!u.fullname.is_empty() && !u.cid_number.is_empty());
        if let Some(p) = &u.password {
            assert!(!p.is_empty());
            assert!(password::check_hash(p).is_ok());
        }
    }
}

// ---------------------------------------------------------------------------------------
// astdb_codec: stored keys and values
// ---------------------------------------------------------------------------------------

/// Splits at the first byte `sep`: (before, after).
fn split2(data: &[u8], sep: u8) -> (String, String) {
    match data.iter().position(|&b| b == sep) {
        Some(i) => (
            String::from_utf8_lossy(&data[..i]).into_owned(),
            String::from_utf8_lossy(&data[i + 1..]).into_owned(),
        ),
        None => (String::from_utf8_lossy(data).into_owned(), String::new()),
    }
}

/// Decoding arbitrary AstDB keys and values, and encoding arbitrary bindings. Input: key,
/// NUL, value. Also reads the bytes as FreePBX AstDB entries (one `key=value` a line).
pub fn astdb_codec(data: &[u8]) {
    let (key, value) = split2(data, 0);
    if let Ok(b) = decode_binding(&key, &value) {
        assert!(!b.device.is_empty() && !b.device.contains('/'));
        assert!(!b.user.is_empty());
        let (k, v) = (binding_key(&b.device), binding_value(&b));
        assert_eq!(decode_binding(&k, &v).as_ref(), Ok(&b));
        assert_eq!(
            decode_binding(&format!("/{FAMILY}/{k}"), &v).as_ref(),
            Ok(&b)
        );
        let _ = render::format_utc(b.since);
        let _ = render::format_duration(b.since);
    }
    if let Some(u) = decode_dnd_key(&key) {
        assert!(!u.is_empty() && !u.contains('/'));
        assert_eq!(decode_dnd_key(&dnd_key(&u)).as_deref(), Some(u.as_str()));
        // A key is a DND key or a binding key, never both.
        assert!(decode_binding(&key, &value).is_err());
    }
    // Any binding whose device is a valid key component round-trips.
    let since = data
        .iter()
        .take(8)
        .fold(0u64, |acc, &b| acc.rotate_left(8) ^ u64::from(b));
    let b = Binding::new(value.clone(), key.clone(), since);
    let encodable = !key.is_empty() && !key.contains('/') && !value.is_empty();
    let decoded = decode_binding(&binding_key(&b.device), &binding_value(&b));
    if encodable {
        assert_eq!(decoded, Ok(b));
    }
    if !key.is_empty() && !key.contains('/') {
        assert_eq!(decode_dnd_key(&dnd_key(&key)), Some(key.clone()));
    }
    freepbx_import(data);
}

/// FreePBX import of arbitrary entries: never panics; imported ids are valid; the printed
/// output loads as it is (every non-config line a comment) and holds exactly the imported
/// devices and users with their values.
fn freepbx_import(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let entries: Vec<(String, String)> = text
        .split('\n')
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let i = freepbx::import(&entries);
    for d in &i.devices {
        assert_eq!(id_problem(&d.id), None);
    }
    for u in &i.users {
        assert_eq!(id_problem(&u.id), None);
    }
    let conf = freepbx::render_output(&i, &[], false);
    let raw = text::parse("freepbx.conf", &conf)
        .unwrap_or_else(|e| panic!("printed FreePBX config: {e}\n{conf}"));
    let sections: Vec<&str> = raw.sections.iter().map(|s| s.name.as_str()).collect();
    let want: Vec<&str> = std::iter::once("general")
        .chain(i.devices.iter().map(|d| d.id.as_str()))
        .chain(i.users.iter().map(|u| u.id.as_str()))
        .collect();
    assert_eq!(sections, want);
    let config = Config::from_raw(&raw)
        .unwrap_or_else(|e| panic!("printed FreePBX config refused: {e:?}\n{conf}"))
        .config;
    for d in &i.devices {
        let got = config.device(&d.id).expect("imported device");
        assert_eq!(got.dial, d.dial);
        assert_eq!(got.default_user.as_deref(), d.default_user.as_deref());
        assert_eq!(got.mode, d.mode);
    }
    for u in &i.users {
        let got = config.user(&u.id).expect("imported user");
        assert_eq!(got.password.as_deref(), u.password.as_deref());
        assert_eq!(got.fullname, u.fullname.as_deref().unwrap_or(&u.id));
    }
    check_raw_config(&raw);
}

// ---------------------------------------------------------------------------------------
// args and dtmf
// ---------------------------------------------------------------------------------------

/// Dialplan argument splitting and digit parsing on arbitrary text.
pub fn args(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    let parts = split_args(&s);
    if s.trim().is_empty() {
        assert!(parts.is_empty());
    } else {
        assert_eq!(parts.len(), s.matches(',').count() + 1);
        for p in &parts {
            assert_eq!(p.trim(), p);
            assert!(!p.contains(','));
        }
    }
    let max = data.first().map_or(0, |&b| usize::from(b));
    for input in [&*s, s.get(1..).unwrap_or("")] {
        check_digits(input, max);
        check_digits(input, 32);
    }
    for p in &parts {
        check_digits(p, 32);
    }
}

/// `parse_digits` against its specification.
fn check_digits(input: &str, max: usize) {
    let t = input.trim();
    let want_ok = !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) && t.len() <= max;
    match parse_digits(input, max) {
        Ok(d) => {
            assert!(want_ok, "{input:?} (max {max}) accepted");
            assert_eq!(d, t);
            assert!(!d.is_empty() && d.len() <= max);
            assert!(d.bytes().all(|b| b.is_ascii_digit()));
        }
        Err(e) => {
            assert!(!want_ok, "{input:?} (max {max}) refused: {e}");
            assert!(!e.is_empty());
            assert!(e.len() <= MAX_ARGS_ERROR, "error echoes input: {e:?}");
        }
    }
}

/// What a caller can type, plus a few bytes the channel layer should never hand over.
const KEYPAD: &[u8] = b"0123456789*#ABCD \t";

/// The DTMF path of `UserLogin`: keypad input of any length checked with the max lengths
/// used (user ids and PINs) and then compared with a plain PIN.
pub fn dtmf(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let max = usize::from(first % 40);
    // Mostly keypad keys; a byte with the high bit set stays a raw (possibly invalid) byte.
    let bytes: Vec<u8> = rest
        .iter()
        .map(|&b| {
            if b & 0x80 == 0 {
                KEYPAD[usize::from(b) % KEYPAD.len()]
            } else {
                b
            }
        })
        .collect();
    let input = String::from_utf8_lossy(&bytes);
    check_digits(&input, max);
    check_digits(&input, 32);
    // Split in two at '#' (as collected: user id, then PIN), each checked like the app does.
    let (user, pin) = input.split_once('#').unwrap_or((&input, ""));
    for part in [user, pin] {
        check_digits(part, 32);
    }
    // A plain stored PIN matches exactly itself, never an empty entry.
    let stored = user.trim();
    if !password::is_hash(stored) {
        for given in [pin, user, stored, ""] {
            let want = !stored.is_empty() && stored == given;
            assert_eq!(
                password::verify(stored, given),
                want,
                "{stored:?} vs {given:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// table_ops: operation sequences on the binding table
// ---------------------------------------------------------------------------------------

/// Configs to switch between. Devices d0-d4 and users u0-u4 come and go, modes and default
/// users change; d5 and u5 never exist.
pub const TABLE_CONFIGS: [&str; 3] = [
    "[general]\nmultiple_logins = yes\n\
     [d0]\ntype = device\n\
     [d1]\ntype = device\ndefault_user = u1\n\
     [d2]\ntype = device\nmode = fixed\ndefault_user = u2\n\
     [d3]\ntype = device\n\
     [d4]\ntype = device\ndefault_user = u0\n\
     [u0]\ntype = user\npassword = 0\n\
     [u1]\ntype = user\npassword = 1\n\
     [u2]\ntype = user\npassword = 2\n\
     [u3]\ntype = user\n\
     [u4]\ntype = user\npassword = 4\n",
    "[general]\nmultiple_logins = no\n\
     [d0]\ntype = device\nmode = fixed\ndefault_user = u1\n\
     [d1]\ntype = device\ndefault_user = u2\n\
     [d2]\ntype = device\n\
     [d4]\ntype = device\nmode = fixed\ndefault_user = u4\n\
     [u0]\ntype = user\npassword = 0\n\
     [u1]\ntype = user\npassword = 1\n\
     [u2]\ntype = user\n\
     [u4]\ntype = user\npassword = 4\n",
    "[general]\nmultiple_logins = replace\n\
     [d0]\ntype = device\n\
     [d1]\ntype = device\ndefault_user = u0\n\
     [d2]\ntype = device\nmode = fixed\ndefault_user = u0\n\
     [d3]\ntype = device\nmode = fixed\ndefault_user = u3\n\
     [d4]\ntype = device\n\
     [u0]\ntype = user\npassword = 0\n\
     [u1]\ntype = user\npassword = 1\n\
     [u3]\ntype = user\npassword = 3\n",
];

/// The configs of [`TABLE_CONFIGS`], parsed from text.
pub fn table_configs() -> Vec<Config> {
    TABLE_CONFIGS
        .iter()
        .map(|t| {
            let raw = text::parse("table.conf", t).expect("table config parses");
            Config::from_raw(&raw)
                .expect("table config is valid")
                .config
        })
        .collect()
}

/// One decoded operation.
#[derive(Clone, Debug)]
pub enum Op {
    Login(String, String, LoginMode),
    LogoutDevice(String),
    LogoutUser(String),
    Dnd(String, bool),
    Reconfigure(usize),
    /// Switch `multiple_logins` of the running config.
    Policy(MultipleLogins),
    /// Restore bindings as if read back from AstDB.
    Restore(Vec<(String, String)>),
}

/// Decodes two bytes into an operation.
pub fn decode_op(a: u8, b: u8) -> Op {
    let user = format!("u{}", (b & 0x0f) % 6);
    let device = format!("d{}", (b >> 4) % 6);
    match a % 9 {
        0 | 1 => Op::Login(user, device, LoginMode::Interactive),
        2 => Op::Login(user, device, LoginMode::Admin),
        3 => Op::LogoutDevice(device),
        4 => Op::LogoutUser(user),
        5 => Op::Dnd(user, b & 0x80 != 0),
        6 => Op::Reconfigure(usize::from(b) % TABLE_CONFIGS.len()),
        7 => Op::Policy(match b % 3 {
            0 => MultipleLogins::Yes,
            1 => MultipleLogins::No,
            _ => MultipleLogins::Replace,
        }),
        _ => Op::Restore(vec![(user, device), (format!("u{}", b % 5), "d1".into())]),
    }
}

fn pairs(s: &Snapshot) -> BTreeMap<CompactString, CompactString> {
    s.bindings()
        .into_iter()
        .map(|b| (b.device.clone(), b.user.clone()))
        .collect()
}

fn permanent(s: &Snapshot, device: &str, user: &str) -> bool {
    s.config()
        .device(device)
        .is_some_and(|d| d.mode == DeviceMode::Fixed && d.default_user.as_deref() == Some(user))
}

/// The table's invariants, through its public API only.
pub fn check_snapshot(s: &Snapshot) {
    let c = s.config();
    let bindings = s.bindings();
    let mut devices = BTreeSet::new();
    for b in &bindings {
        // One user per device.
        assert!(
            devices.insert(b.device.clone()),
            "device {} twice",
            b.device
        );
        assert_eq!(s.user_on(&b.device), Some(*b));
        assert!(s.devices_of(&b.user).contains(&b.device.as_str()));
        assert!(c.device(&b.device).is_some(), "unknown device {}", b.device);
        assert!(c.user(&b.user).is_some(), "unknown user {}", b.user);
    }
    assert_eq!(bindings.len(), s.binding_count());
    // user -> devices mirrors device -> user.
    let mut mirrored = 0;
    for u in c.users.keys() {
        let devs = s.devices_of(u);
        for d in &devs {
            assert_eq!(s.user_on(d).map(|b| b.user.as_str()), Some(u), "{u} -> {d}");
        }
        let dials: Vec<&str> = devs
            .iter()
            .map(|d| c.device(d).map_or("", |d| d.dial.as_str()))
            .collect();
        assert_eq!(s.dial_of(u), dials.join("&"));
        mirrored += devs.len();
    }
    assert_eq!(mirrored, bindings.len());
    for d in c.devices.values() {
        if d.mode == DeviceMode::Fixed {
            assert_eq!(
                s.user_on(&d.id).map(|b| &b.user),
                d.default_user.as_ref(),
                "fixed device {} not bound to its default user",
                d.id
            );
        }
    }
    for u in s.dnd_users() {
        assert!(c.user(u).is_some(), "DND of unknown user {u}");
    }
}

/// Applies `changes` the way the module writes them through to AstDB.
fn write_through(db: &mut BTreeMap<String, String>, changes: &Changes) {
    for (b, _) in &changes.removed {
        if !changes.added.iter().any(|(a, _)| a.device == b.device) {
            db.remove(&binding_key(&b.device));
        }
    }
    for (b, _) in &changes.added {
        db.insert(binding_key(&b.device), binding_value(b));
    }
}

fn db_of(s: &Snapshot) -> BTreeMap<String, String> {
    s.bindings()
        .into_iter()
        .map(|b| (binding_key(&b.device), binding_value(b)))
        .collect()
}

/// Decodes every stored binding; panics on one that does not decode.
fn decode_db(db: &BTreeMap<String, String>) -> Vec<Binding> {
    db.iter()
        .map(|(k, v)| decode_binding(&format!("/{FAMILY}/{k}"), v).expect("stored binding decodes"))
        .collect()
}

/// Random operation sequences: after each, the table's invariants hold, the reported
/// changes explain the new state and the AstDB write-through equals the table; after each
/// reconfigure and restore and at the end, a restart from that AstDB gives the same bindings.
pub fn table_ops(data: &[u8]) {
    let cfgs = table_configs();
    let start = usize::from(data.first().copied().unwrap_or(0)) % cfgs.len();
    let t = BindingTable::new(cfgs[start].clone(), 1);
    let mut db = db_of(&t.snapshot());
    check_snapshot(&t.snapshot());
    for (n, chunk) in data
        .get(1..)
        .unwrap_or(&[])
        .chunks_exact(2)
        .take(64)
        .enumerate()
    {
        let now = n as u64 + 2;
        let op = decode_op(chunk[0], chunk[1]);
        let before = t.snapshot();
        let mut seen: Option<Changes> = None;
        let commit = |c: &Changes| {
            assert!(!c.is_empty(), "on_commit without changes");
            seen = Some(c.clone());
        };
        let changes = match &op {
            Op::Login(u, d, mode) => {
                let r = t.login(u, d, *mode, now, commit);
                check_login(&before, &t.snapshot(), u, d, *mode, &r);
                r.unwrap_or_default()
            }
            Op::LogoutDevice(d) => {
                let r = t.logout_device(d, Reason::Manual, now, commit);
                check_logout_device(&before, &t.snapshot(), d, &r);
                r.unwrap_or_default()
            }
            Op::LogoutUser(u) => {
                let r = t.logout_user(u, Reason::Admin, now, commit);
                let after = t.snapshot();
                match &r {
                    Ok(_) => assert!(after.devices_of(u).iter().all(|d| permanent(&after, d, u))),
                    Err(LogoutError::NoSuchUser) => assert!(before.config().user(u).is_none()),
                    Err(LogoutError::NotLoggedIn) => assert!(before
                        .devices_of(u)
                        .iter()
                        .all(|d| permanent(&before, d, u))),
                    Err(e) => panic!("logout_user({u}): {e}"),
                }
                r.unwrap_or_default()
            }
            Op::Dnd(u, on) => {
                let r = t.set_dnd(u, *on);
                if before.config().user(u).is_some() {
                    assert_eq!(r, Ok(before.dnd(u) != *on));
                    assert_eq!(t.snapshot().dnd(u), *on);
                } else {
                    assert_eq!(r, Err(LoginError::NoSuchUser));
                }
                assert_eq!(before.bindings(), t.snapshot().bindings());
                Changes::default()
            }
            Op::Reconfigure(i) => t.reconfigure(cfgs[*i].clone(), now, commit),
            Op::Policy(p) => {
                let mut c = before.config().clone();
                c.general.multiple_logins = *p;
                let changes = t.reconfigure(c, now, commit);
                assert!(
                    changes.is_empty(),
                    "a policy change moved bindings: {changes:?}"
                );
                changes
            }
            Op::Restore(v) => {
                let saved = v.iter().map(|(u, d)| Binding::new(u, d, now)).collect();
                t.restore(saved, now, commit).0
            }
        };
        let after = t.snapshot();
        check_snapshot(&after);
        assert_eq!(
            seen.unwrap_or_default(),
            changes,
            "on_commit saw other changes"
        );
        // The changes explain the new state.
        let mut m = pairs(&before);
        for (b, _) in &changes.removed {
            assert_eq!(m.remove(&b.device).as_ref(), Some(&b.user), "removed {b:?}");
        }
        for (b, _) in &changes.added {
            assert!(
                m.insert(b.device.clone(), b.user.clone()).is_none(),
                "added {b:?}"
            );
        }
        assert_eq!(m, pairs(&after), "after {op:?}");
        // AstDB as the module keeps it (a restore is followed by a full resync at load).
        if matches!(op, Op::Restore(_)) {
            db = db_of(&after);
        } else {
            write_through(&mut db, &changes);
        }
        assert_eq!(db, db_of(&after), "AstDB differs after {op:?}");
        if matches!(op, Op::Reconfigure(_) | Op::Restore(_)) {
            check_restart(&after, &db, now);
        }
    }
    let last = t.snapshot();
    check_restart(&last, &db, 1_000);
}

/// A restart from `db` with the config of `s`: defaults first, then what AstDB holds, must
/// give the bindings of `s` back.
fn check_restart(s: &Snapshot, db: &BTreeMap<String, String>, now: u64) {
    let restarted = BindingTable::new(s.config().clone(), now + 1);
    let (_, dropped) = restarted.restore(decode_db(db), now + 1, |_| {});
    assert!(dropped.is_empty(), "restart dropped {dropped:?}");
    let r = restarted.snapshot();
    check_snapshot(&r);
    for b in s.bindings() {
        assert_eq!(r.user_on(&b.device), Some(b), "restart lost {b:?}");
    }
    for b in r.bindings() {
        if s.user_on(&b.device).is_none() {
            // Only an adhoc device emptied by its default user's logout comes back to it.
            let d = s.config().device(&b.device).expect("configured");
            assert_eq!(
                d.default_user.as_ref(),
                Some(&b.user),
                "restart added {b:?}"
            );
        }
    }
}

fn check_login(
    before: &Snapshot,
    after: &Snapshot,
    u: &str,
    d: &str,
    mode: LoginMode,
    r: &Result<Changes, LoginError>,
) {
    let c = before.config();
    match r {
        Ok(changes) => {
            assert_eq!(after.user_on(d).map(|b| b.user.as_str()), Some(u));
            if changes.is_empty() {
                assert_eq!(before.user_on(d).map(|b| b.user.as_str()), Some(u));
            }
            let movable_before: Vec<&str> = (before.devices_of(u).into_iter())
                .filter(|x| *x != d && !permanent(before, x, u))
                .collect();
            match c.general.multiple_logins {
                MultipleLogins::No if !changes.is_empty() => {
                    assert!(
                        movable_before.is_empty(),
                        "no: {u} was on {movable_before:?}"
                    )
                }
                MultipleLogins::Replace if !changes.is_empty() => {
                    let movable: Vec<&str> = (after.devices_of(u).into_iter())
                        .filter(|x| !permanent(after, x, u))
                        .collect();
                    assert_eq!(movable, vec![d], "replace");
                }
                _ => {}
            }
        }
        Err(e) => {
            assert_eq!(pairs(before), pairs(after), "failed login changed bindings");
            let want = match () {
                _ if c.user(u).is_none() => LoginError::NoSuchUser,
                _ if c.device(d).is_none() => LoginError::NoSuchDevice,
                _ if c.device(d).is_some_and(|x| x.mode == DeviceMode::Fixed) => {
                    LoginError::FixedDevice
                }
                _ if mode == LoginMode::Interactive
                    && c.user(u).is_some_and(|x| x.password.is_none()) =>
                {
                    LoginError::NoPassword
                }
                _ => LoginError::Denied,
            };
            assert_eq!(*e, want);
            if want == LoginError::Denied {
                assert_eq!(c.general.multiple_logins, MultipleLogins::No);
            }
        }
    }
}

fn check_logout_device(
    before: &Snapshot,
    after: &Snapshot,
    d: &str,
    r: &Result<Changes, LogoutError>,
) {
    let dev = before.config().device(d);
    match r {
        Ok(_) => {
            let dev = dev.expect("logged out of a configured device");
            let old = before.user_on(d).expect("someone was there").user.clone();
            let now_on = after.user_on(d).map(|b| b.user.clone());
            match &dev.default_user {
                Some(du) if *du != old => assert_eq!(now_on.as_ref(), Some(du)),
                _ => assert_eq!(now_on, None),
            }
        }
        Err(LogoutError::NoSuchDevice) => assert!(dev.is_none()),
        Err(LogoutError::NotLoggedIn) => assert!(before.user_on(d).is_none()),
        Err(LogoutError::FixedDevice) => {
            assert!(dev.is_some_and(|x| x.mode == DeviceMode::Fixed))
        }
        Err(e) => panic!("logout_device({d}): {e}"),
    }
}
