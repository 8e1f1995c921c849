//! Validated model of `res_deviceuser.conf`.
//!
//! The host reads the file with Asterisk's config engine and hands it over as a [`RawConfig`]
//! (sections and variables in file order, with line numbers). [`Config::from_raw`] checks the
//! whole file and reports every problem at once, so an administrator fixes a broken file in one
//! pass instead of one error per reload.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::Hasher;

use compact_str::CompactString;
use hashbrown::HashTable;
use rustc_hash::FxHasher;

pub use crate::idmap::{IdMap, Identified};

use crate::password;

/// One `key = value` line as read by the config engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawVar {
    pub key: String,
    pub value: String,
    /// Line in the file; 0 when the config engine did not know it.
    pub line: u32,
}

/// One `[name]` section with its variables in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawSection {
    pub name: String,
    /// Line of the section header; 0 when unknown.
    pub line: u32,
    pub vars: Vec<RawVar>,
}

/// A whole file as read by the config engine, before any validation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawConfig {
    /// File name used in messages, e.g. `res_deviceuser.conf`.
    pub file: String,
    pub sections: Vec<RawSection>,
}

/// Sections with their keys and values, in order, without line numbers: what two readings
/// of the same config have in common.
pub type RawShape = Vec<(String, Vec<(String, String)>)>;

impl RawConfig {
    pub fn shape(&self) -> RawShape {
        self.sections
            .iter()
            .map(|s| {
                let vars = s
                    .vars
                    .iter()
                    .map(|v| (v.key.clone(), v.value.clone()))
                    .collect();
                (s.name.clone(), vars)
            })
            .collect()
    }
}

/// What happens when a user who is already logged in somewhere logs in on another device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MultipleLogins {
    /// The user may be on several devices at once; calls ring all of them.
    #[default]
    Yes,
    /// The second login is refused.
    No,
    /// The new login logs the user off the other devices.
    Replace,
}

/// Whether a device is shared (hot desk) or permanently owned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceMode {
    /// Nobody is bound until someone logs in (or its `default_user`, if set).
    #[default]
    Adhoc,
    /// Permanently bound to its `default_user`; logins are refused.
    Fixed,
}

impl fmt::Display for DeviceMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceMode::Adhoc => "adhoc",
            DeviceMode::Fixed => "fixed",
        })
    }
}

impl fmt::Display for MultipleLogins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MultipleLogins::Yes => "yes",
            MultipleLogins::No => "no",
            MultipleLogins::Replace => "replace",
        })
    }
}

/// Where bindings are kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Storage {
    /// In this node's AstDB (and journal): one node, nothing else to run.
    #[default]
    Astdb,
    /// In a database table shared by every node, through Asterisk's realtime
    /// (`deviceuser_bindings` and `deviceuser_nodes` mapped in `extconfig.conf`).
    Realtime,
}

impl fmt::Display for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Storage::Astdb => "astdb",
            Storage::Realtime => "realtime",
        })
    }
}

/// The default `remote_dial`: the trunk to a node is a PJSIP endpoint named after it.
pub const DEFAULT_REMOTE_DIAL: &str = "PJSIP/${DEVICE}@${NODE}";

/// Longest accepted `node_timeout` and `realtime_refresh`, in seconds.
pub const MAX_CLUSTER_SECONDS: u64 = 3600;

/// A time of day (`HH:MM`, 24-hour clock), in the PBX's local time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeOfDay {
    minutes: u16,
}

impl TimeOfDay {
    /// `None` unless `hour < 24` and `minute < 60`.
    pub fn new(hour: u8, minute: u8) -> Option<Self> {
        (hour < 24 && minute < 60).then(|| TimeOfDay {
            minutes: u16::from(hour) * 60 + u16::from(minute),
        })
    }

    /// Parses `H:MM` or `HH:MM` (`00:00` to `23:59`).
    pub fn parse(s: &str) -> Option<Self> {
        let (h, m) = s.trim().split_once(':')?;
        let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
        if !digits(h) || h.len() > 2 || !digits(m) || m.len() != 2 {
            return None;
        }
        TimeOfDay::new(h.parse().ok()?, m.parse().ok()?)
    }

    pub fn hour(self) -> u8 {
        (self.minutes / 60) as u8
    }

    pub fn minute(self) -> u8 {
        (self.minutes % 60) as u8
    }

    pub fn seconds_since_midnight(self) -> u32 {
        u32::from(self.minutes) * 60
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.hour(), self.minute())
    }
}

/// A user's or device's own value for an option that `[general]` also sets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Override<T> {
    /// Not set here: the `[general]` value applies.
    #[default]
    Inherit,
    /// Explicitly disabled here, whatever `[general]` says.
    Off,
    /// This value, whatever `[general]` says.
    Set(T),
}

impl<T: Copy> Override<T> {
    /// The effective value, given the `[general]` one (`None` = off).
    pub fn resolve(self, general: Option<T>) -> Option<T> {
        match self {
            Override::Inherit => general,
            Override::Off => None,
            Override::Set(v) => Some(v),
        }
    }
}

/// Largest accepted duration option, in seconds (ten years); guards against typos that
/// would otherwise silently mean "never".
pub const MAX_SECONDS: u64 = 10 * 366 * 86_400;

/// Largest accepted `max_login_failures`.
pub const MAX_LOGIN_FAILURES: u32 = 100;

/// Options of the `[general]` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct General {
    pub multiple_logins: MultipleLogins,
    /// Context in which the host publishes `hint` extensions for users, if any.
    pub hint_context: Option<String>,
    /// Numbers a logged-out adhoc device may still call (emergency numbers).
    pub allowed_numbers: Vec<String>,
    /// Login attempts before the dialplan application gives up (1..=10).
    pub max_attempts: u32,
    /// Sound file asking for the user id.
    pub user_prompt: String,
    /// Sound file asking for the PIN.
    pub password_prompt: String,
    /// `max_login_time`: seconds after which a login is undone ([`Reason::Timeout`]);
    /// 0 (the default) = no limit. Users may override it.
    ///
    /// [`Reason::Timeout`]: crate::Reason::Timeout
    pub max_login_time: u64,
    /// `shift_end`: local time of day (`HH:MM`) at which everyone logged in on an adhoc
    /// device before it is logged out; empty or `none` (the default) = off. Users may
    /// override it.
    pub shift_end: Option<TimeOfDay>,
    /// `logout_on_unregister`: seconds a device may stay unavailable (unregistered) before
    /// its user is logged out; 0 (the default) = never. Devices may override it.
    pub logout_on_unregister: u64,
    /// `max_login_failures`: wrong PINs within `lockout_window` that lock a user out;
    /// default 5, 0 = no lockout, at most [`MAX_LOGIN_FAILURES`].
    pub max_login_failures: u32,
    /// `lockout_window`: seconds over which failures are counted; default 300, at least 1.
    pub lockout_window: u64,
    /// `lockout_time`: seconds a locked-out user must wait; default 300, at least 1.
    pub lockout_time: u64,
    /// `commit_log`: one NOTICE line per commit (origin, what changed) — an audit trail of
    /// every login, logout and DND change, whoever made it. Default off.
    pub commit_log: bool,
    /// `storage`: `astdb` (default) or `realtime` (a database shared by several nodes).
    pub storage: Storage,
    /// This node's name: `node`, else Asterisk's `systemname`. Devices whose `node` is
    /// another name are reached through [`General::remote_dial`].
    pub node: Option<CompactString>,
    /// `remote_dial`: how to dial a device of another node, with `${DEVICE}` (the device
    /// id) and `${NODE}` (its node); default [`DEFAULT_REMOTE_DIAL`].
    pub remote_dial: CompactString,
    /// `node_timeout`: seconds without a heartbeat after which another node counts as
    /// down (its users show unavailable here, its devices are not dialled); default 10.
    pub node_timeout: u64,
    /// `realtime_refresh`: seconds between two reads of the whole bindings table, which
    /// bring in what other nodes changed; default 2.
    pub realtime_refresh: u64,
}

impl Default for General {
    fn default() -> Self {
        General {
            multiple_logins: MultipleLogins::Yes,
            hint_context: None,
            allowed_numbers: Vec::new(),
            max_attempts: 3,
            user_prompt: "agent-user".into(),
            password_prompt: "agent-pass".into(),
            max_login_time: 0,
            shift_end: None,
            logout_on_unregister: 0,
            max_login_failures: 5,
            lockout_window: 300,
            lockout_time: 300,
            commit_log: false,
            storage: Storage::Astdb,
            node: None,
            remote_dial: DEFAULT_REMOTE_DIAL.into(),
            node_timeout: 10,
            realtime_refresh: 2,
        }
    }
}

/// A phone, identified by its section name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    pub id: CompactString,
    pub description: CompactString,
    pub mode: DeviceMode,
    /// Dial string reaching this phone, e.g. `PJSIP/1000`; also how its channels are recognised.
    pub dial: CompactString,
    /// User bound to the device when nobody else is (always, for a fixed device).
    pub default_user: Option<CompactString>,
    /// `logout_on_unregister` of this device: seconds, `0` = [`Override::Off`], unset =
    /// [`Override::Inherit`] (`[general]`).
    pub logout_on_unregister: Override<u64>,
    /// The node the phone is attached to (`node`); `None` = this node.
    pub node: Option<CompactString>,
    /// Attached to another node (with `storage = realtime`): its `dial` is then the
    /// rendered `remote_dial`, its state comes from that node, and this node neither
    /// follows nor publishes it.
    pub remote: bool,
}

/// A person who can log in, identified by their extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: CompactString,
    pub fullname: CompactString,
    /// PIN or password hash (see [`password`]); `None` means interactive login is
    /// impossible (admin login still works).
    pub password: Option<CompactString>,
    pub language: Option<CompactString>,
    pub cid_number: CompactString,
    /// `max_login_time` of this user: seconds, `0` = [`Override::Off`], unset =
    /// [`Override::Inherit`].
    pub max_login_time: Override<u64>,
    /// `shift_end` of this user: `HH:MM`, `none` = [`Override::Off`], unset =
    /// [`Override::Inherit`].
    pub shift_end: Override<TimeOfDay>,
}

impl User {
    /// Checks a PIN. A plain PIN is compared in constant time with respect to its content
    /// (response timing does not reveal how many leading digits were right); a hashed one
    /// (`$argon2id$...`, `$6$...`, `$5$...`) is verified with its algorithm. An empty PIN
    /// never matches. A hash verification takes tens of milliseconds by design.
    pub fn password_matches(&self, given: &str) -> bool {
        self.password
            .as_deref()
            .is_some_and(|pw| password::verify(pw, given))
    }
}

/// The validated configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    pub file: String,
    pub general: General,
    pub devices: IdMap<Device>,
    pub users: IdMap<User>,
    /// Dial strings (compared without regard to ASCII case) -> positions in `devices`, to
    /// recognise the device behind a channel or a device state quickly: it is consulted for
    /// every device state change of a bound device. Found without allocating.
    dial_index: DialIndex,
    /// Whether any `logout_on_unregister` / time policy is on: decided once per config, since
    /// the device state path asks for every change.
    unregister_policy: bool,
    time_policy: bool,
}

/// Positions in `Config::devices` by dial string, ASCII case ignored (see
/// [`Config::device_for_dial`]). Derived from the devices, so it takes no part in comparing
/// configs.
#[derive(Clone, Debug, Default)]
struct DialIndex(HashTable<u32>);

impl PartialEq for DialIndex {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for DialIndex {}

/// FxHash of the ASCII-lowercased bytes, computed without building the lowercased string.
fn dial_hash(dial: &str) -> u64 {
    let mut h = FxHasher::default();
    for b in dial.bytes() {
        h.write_u8(b.to_ascii_lowercase());
    }
    h.finish()
}

impl Identified for Device {
    fn id(&self) -> &str {
        &self.id
    }
}

impl Identified for User {
    fn id(&self) -> &str {
        &self.id
    }
}

/// Result of a successful parse: the config plus non-fatal findings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    pub config: Config,
    pub warnings: Vec<ConfigError>,
}

/// A problem in the file, located as precisely as the config engine allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub section: Option<String>,
    pub key: Option<String>,
    /// 0 when unknown.
    pub line: u32,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if self.line > 0 {
            write!(f, " line {}", self.line)?;
        }
        f.write_str(": ")?;
        if let Some(s) = &self.section {
            write!(f, "[{s}] ")?;
        }
        if let Some(k) = &self.key {
            write!(f, "{k}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Longest accepted device or user id; keeps AstDB keys and CLI columns sane.
pub const MAX_ID_LEN: usize = 64;

/// Why `id` cannot be a device or user id, if it cannot. `/` would break AstDB keys and
/// `&`/`,` would break dial strings and dialplan arguments.
pub fn id_problem(id: &str) -> Option<String> {
    if id.is_empty() {
        Some("empty id".into())
    } else if id.chars().count() > MAX_ID_LEN {
        Some(format!("id longer than {MAX_ID_LEN} characters"))
    } else {
        // Control characters would reach terminals through the CLI; U+FFFD marks bytes that
        // were not UTF-8.
        id.chars()
            .find(|c| {
                matches!(c, '/' | '&' | ',' | '\u{FFFD}') || c.is_whitespace() || c.is_control()
            })
            .map(|c| {
                format!(
                    "id '{}' contains forbidden character {c:?}",
                    shown(id).escape_debug()
                )
            })
    }
}

/// How the module's device states are named in hints: `DeviceUser:<user>`.
pub const USER_STATE_PREFIX: &str = "DeviceUser:";

/// Whether a device state name is one of the module's own (`DeviceUser:...`, any case).
pub fn is_user_state(name: &str) -> bool {
    name.get(..USER_STATE_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(USER_STATE_PREFIX))
}

/// `text` cut to a length fit for a log line (hostile input is not repeated in full).
pub fn shown(text: &str) -> String {
    const MAX: usize = 64;
    if text.chars().count() <= MAX {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(MAX).collect::<String>())
    }
}

/// Whether a key or section name is made of text: control characters or U+FFFD (bytes that
/// were not UTF-8) mean a corrupt or binary file, which must not be half-applied.
fn garbled(name: &str) -> bool {
    name.chars()
        .any(|c| c == '\u{FFFD}' || (c.is_control() && c != '\t'))
}

/// Collects findings with the file name filled in.
struct Report<'a> {
    file: &'a str,
    errors: Vec<ConfigError>,
    warnings: Vec<ConfigError>,
}

impl Report<'_> {
    fn make(&self, section: &str, key: Option<&str>, line: u32, msg: String) -> ConfigError {
        ConfigError {
            file: self.file.to_string(),
            section: Some(section.to_string()),
            key: key.map(str::to_string),
            line,
            message: msg,
        }
    }
    fn error(&mut self, section: &str, key: Option<&str>, line: u32, msg: String) {
        let e = self.make(section, key, line, msg);
        self.errors.push(e);
    }
    fn warn(&mut self, section: &str, key: Option<&str>, line: u32, msg: String) {
        let e = self.make(section, key, line, msg);
        self.warnings.push(e);
    }
}

fn non_empty<S: for<'a> From<&'a str>>(v: &str) -> Option<S> {
    let v = v.trim();
    (!v.is_empty()).then(|| S::from(v))
}

/// Accepts the spellings of Asterisk's `ast_true`/`ast_false` plus `replace`.
fn parse_multiple_logins(v: &str) -> Option<MultipleLogins> {
    match v.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "y" | "t" | "1" | "on" => Some(MultipleLogins::Yes),
        "no" | "false" | "n" | "f" | "0" | "off" => Some(MultipleLogins::No),
        "replace" => Some(MultipleLogins::Replace),
        _ => None,
    }
}

/// A duration option: whole seconds, `0..=MAX_SECONDS`.
fn parse_seconds(v: &str) -> Option<u64> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok().filter(|n| *n <= MAX_SECONDS)
}

fn is_none_word(v: &str) -> bool {
    matches!(
        v.to_ascii_lowercase().as_str(),
        "none" | "off" | "no" | "false"
    )
}

fn seconds_error(v: &str, min: u64) -> String {
    format!("bad value '{v}' (expected a number of seconds from {min} to {MAX_SECONDS})")
}

/// A per-user or per-device duration: empty = inherit, `0` = off.
fn parse_seconds_override(
    sec: &str,
    key: &str,
    v: &str,
    line: u32,
    r: &mut Report,
) -> Override<u64> {
    if v.is_empty() {
        return Override::Inherit;
    }
    match parse_seconds(v) {
        Some(0) => Override::Off,
        Some(n) => Override::Set(n),
        None => {
            r.error(sec, Some(key), line, seconds_error(v, 0));
            Override::Inherit
        }
    }
}

fn time_of_day_error(v: &str) -> String {
    format!("bad value '{v}' (expected HH:MM from 00:00 to 23:59, or none)")
}

fn parse_general(sec: &RawSection, g: &mut General, r: &mut Report) {
    for var in &sec.vars {
        let key = var.key.trim().to_ascii_lowercase();
        let (v, line) = (var.value.trim(), var.line);
        match key.as_str() {
            "multiple_logins" => match parse_multiple_logins(v) {
                Some(m) => g.multiple_logins = m,
                None => r.error(
                    &sec.name,
                    Some(&key),
                    line,
                    format!("bad value '{v}' (expected yes, no or replace)"),
                ),
            },
            "hint_context" => g.hint_context = non_empty(v),
            "commit_log" => match parse_multiple_logins(v) {
                Some(MultipleLogins::Yes) => g.commit_log = true,
                Some(MultipleLogins::No) => g.commit_log = false,
                _ => r.error(
                    &sec.name,
                    Some(&key),
                    line,
                    format!("bad value '{v}' (expected yes or no)"),
                ),
            },
            "allowed_numbers" => {
                g.allowed_numbers.clear();
                for n in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    if n.chars().all(|c| c.is_ascii_digit() || "*#+".contains(c)) {
                        g.allowed_numbers.push(n.to_string());
                    } else {
                        r.error(&sec.name, Some(&key), line, format!("bad number '{n}'"));
                    }
                }
            }
            "max_attempts" => match v.parse::<u32>() {
                Ok(n) if (1..=10).contains(&n) => g.max_attempts = n,
                _ => r.error(
                    &sec.name,
                    Some(&key),
                    line,
                    format!("bad value '{v}' (expected a number from 1 to 10)"),
                ),
            },
            "user_prompt" => g.user_prompt = non_empty(v).unwrap_or_else(|| "agent-user".into()),
            "password_prompt" => {
                g.password_prompt = non_empty(v).unwrap_or_else(|| "agent-pass".into())
            }
            "max_login_time" | "logout_on_unregister" | "lockout_window" | "lockout_time" => {
                let min = u64::from(key.starts_with("lockout"));
                match parse_seconds(v).filter(|n| *n >= min) {
                    Some(n) => match key.as_str() {
                        "max_login_time" => g.max_login_time = n,
                        "logout_on_unregister" => g.logout_on_unregister = n,
                        "lockout_window" => g.lockout_window = n,
                        _ => g.lockout_time = n,
                    },
                    None => r.error(&sec.name, Some(&key), line, seconds_error(v, min)),
                }
            }
            "shift_end" => {
                if v.is_empty() || is_none_word(v) {
                    g.shift_end = None;
                } else if let Some(t) = TimeOfDay::parse(v) {
                    g.shift_end = Some(t);
                } else {
                    r.error(&sec.name, Some(&key), line, time_of_day_error(v));
                }
            }
            "storage" => match v.to_ascii_lowercase().as_str() {
                "astdb" => g.storage = Storage::Astdb,
                "realtime" => g.storage = Storage::Realtime,
                _ => r.error(
                    &sec.name,
                    Some(&key),
                    line,
                    format!("bad value '{v}' (expected astdb or realtime)"),
                ),
            },
            "node" => g.node = non_empty(v),
            "remote_dial" => match non_empty::<CompactString>(v) {
                Some(p) if p.contains("${DEVICE}") => g.remote_dial = p,
                _ => r.error(
                    &sec.name,
                    Some(&key),
                    line,
                    format!("bad value '{v}' (expected a dial string with ${{DEVICE}}, e.g. {DEFAULT_REMOTE_DIAL})"),
                ),
            },
            "node_timeout" | "realtime_refresh" => {
                match parse_seconds(v).filter(|n| (1..=MAX_CLUSTER_SECONDS).contains(n)) {
                    Some(n) if key == "node_timeout" => g.node_timeout = n,
                    Some(n) => g.realtime_refresh = n,
                    None => r.error(
                        &sec.name,
                        Some(&key),
                        line,
                        format!(
                            "bad value '{v}' (expected a number of seconds from 1 to {MAX_CLUSTER_SECONDS})"
                        ),
                    ),
                }
            }
            "max_login_failures" => match v.parse::<u32>() {
                Ok(n) if n <= MAX_LOGIN_FAILURES => g.max_login_failures = n,
                _ => r.error(
                    &sec.name,
                    Some(&key),
                    line,
                    format!(
                        "bad value '{v}' (expected a number from 0 to {MAX_LOGIN_FAILURES}, 0 = no lockout)"
                    ),
                ),
            },
            _ => r.warn(
                &sec.name,
                Some(&key),
                line,
                format!("unknown option '{key}'"),
            ),
        }
    }
}

/// A device section, with the line of each option kept for later cross-checks.
struct DeviceDraft {
    device: Device,
    line: u32,
    dial_line: u32,
    default_user_line: u32,
    node_line: u32,
}

fn parse_device(sec: &RawSection, r: &mut Report) -> DeviceDraft {
    let id = CompactString::from(&sec.name);
    let mut d = DeviceDraft {
        device: Device {
            id: id.clone(),
            description: id.clone(),
            mode: DeviceMode::Adhoc,
            dial: compact_str::format_compact!("PJSIP/{id}"),
            default_user: None,
            logout_on_unregister: Override::Inherit,
            node: None,
            remote: false,
        },
        line: sec.line,
        dial_line: sec.line,
        default_user_line: sec.line,
        node_line: sec.line,
    };
    for var in &sec.vars {
        let key = var.key.trim().to_ascii_lowercase();
        let (v, line) = (var.value.trim(), var.line);
        match key.as_str() {
            "type" => {}
            "mode" => match v.to_ascii_lowercase().as_str() {
                "adhoc" => d.device.mode = DeviceMode::Adhoc,
                "fixed" => d.device.mode = DeviceMode::Fixed,
                _ => r.error(
                    &id,
                    Some(&key),
                    line,
                    format!("unknown mode '{v}' (expected adhoc or fixed)"),
                ),
            },
            "dial" => {
                if let Some(dial) = non_empty(v) {
                    d.device.dial = dial;
                }
                d.dial_line = line;
            }
            "description" => d.device.description = non_empty(v).unwrap_or_else(|| id.clone()),
            "default_user" => {
                d.device.default_user = non_empty(v);
                d.default_user_line = line;
            }
            "logout_on_unregister" => {
                d.device.logout_on_unregister = parse_seconds_override(&id, &key, v, line, r)
            }
            "node" => {
                d.device.node = non_empty(v);
                d.node_line = line;
            }
            _ => r.warn(&id, Some(&key), line, format!("unknown option '{key}'")),
        }
    }
    let dial = &d.device.dial;
    // A dial string is also the device's state name: `Tech/resource` (PJSIP/1000), or a
    // state-only device such as `Custom:name` (func_devstate) for testing and benchmarks.
    if !dial.contains('/') && !dial.contains(':') {
        r.error(
            &id,
            Some("dial"),
            d.dial_line,
            format!("dial string '{dial}' has no technology (expected e.g. PJSIP/{id})"),
        );
    } else if is_user_state(dial) {
        // The provider asks the state of every device of a user: a user as a device loops.
        r.error(
            &id,
            Some("dial"),
            d.dial_line,
            format!("dial string '{dial}' names a DeviceUser: state, which would loop"),
        );
    } else if dial.contains('&') {
        r.error(
            &id,
            Some("dial"),
            d.dial_line,
            format!("dial string '{dial}' must name a single device (no '&')"),
        );
    }
    if d.device.mode == DeviceMode::Fixed && d.device.default_user.is_none() {
        r.error(
            &id,
            Some("default_user"),
            d.default_user_line,
            "a fixed device needs a default_user".into(),
        );
    }
    d
}

fn parse_user(sec: &RawSection, r: &mut Report) -> User {
    let id = CompactString::from(&sec.name);
    let mut u = User {
        id: id.clone(),
        fullname: id.clone(),
        password: None,
        language: None,
        cid_number: id.clone(),
        max_login_time: Override::Inherit,
        shift_end: Override::Inherit,
    };
    for var in &sec.vars {
        let key = var.key.trim().to_ascii_lowercase();
        let v = var.value.trim();
        match key.as_str() {
            "type" => {}
            "password" => {
                u.password = non_empty(v);
                // The message names the key, never the value: it may be a secret.
                if let Some(Err(msg)) = u.password.as_deref().map(password::check_hash) {
                    r.error(&id, Some(&key), var.line, msg);
                }
            }
            "max_login_time" => {
                u.max_login_time = parse_seconds_override(&id, &key, v, var.line, r)
            }
            "shift_end" => {
                u.shift_end = if v.is_empty() {
                    Override::Inherit
                } else if is_none_word(v) {
                    Override::Off
                } else if let Some(t) = TimeOfDay::parse(v) {
                    Override::Set(t)
                } else {
                    r.error(&id, Some(&key), var.line, time_of_day_error(v));
                    Override::Inherit
                }
            }
            "fullname" => u.fullname = non_empty(v).unwrap_or_else(|| id.clone()),
            "language" => u.language = non_empty(v),
            "cid_number" => u.cid_number = non_empty(v).unwrap_or_else(|| id.clone()),
            _ => r.warn(&id, Some(&key), var.line, format!("unknown option '{key}'")),
        }
    }
    u
}

/// Which node each device is attached to. With `storage = realtime`: this node's name must
/// be known, ids must not hold `;` (realtime drivers split values there), and a device of
/// another node dials through `remote_dial`. With `astdb` every device is this node's.
fn place_devices(
    g: &mut General,
    devices: &mut BTreeMap<String, DeviceDraft>,
    users: &BTreeMap<String, (User, u32)>,
    host_node: Option<&str>,
    r: &mut Report,
) {
    if g.node.is_none() {
        g.node = host_node.and_then(non_empty);
    }
    if g.storage == Storage::Astdb {
        for (id, d) in devices.iter().filter(|(_, d)| d.device.node.is_some()) {
            r.warn(
                id,
                Some("node"),
                d.node_line,
                "ignored with storage = astdb: every device is this node's".into(),
            );
        }
        return;
    }
    let Some(me) = g.node.clone() else {
        r.error(
            "general",
            Some("node"),
            0,
            "storage = realtime needs this node's name: set node here or systemname in asterisk.conf".into(),
        );
        return;
    };
    for (id, line) in (devices.iter().map(|(id, d)| (id, d.line)))
        .chain(users.iter().map(|(id, (_, line))| (id, *line)))
        .filter(|(id, _)| id.contains(';'))
    {
        r.error(
            id,
            None,
            line,
            "id contains ';', which realtime storage cannot hold".into(),
        );
    }
    for (id, d) in devices.iter_mut() {
        let Some(node) = d.device.node.clone().filter(|n| *n != me) else {
            continue;
        };
        d.device.remote = true;
        d.device.dial = render_remote_dial(&g.remote_dial, id, &node);
    }
}

/// `remote_dial` for one device: `${DEVICE}` and `${NODE}` replaced.
pub fn render_remote_dial(pattern: &str, device: &str, node: &str) -> CompactString {
    CompactString::from(
        pattern
            .replace("${DEVICE}", device)
            .replace("${NODE}", node),
    )
}

impl Config {
    /// Validates a whole file. On failure every error found is returned, not just the first.
    pub fn from_raw(raw: &RawConfig) -> Result<Parsed, Vec<ConfigError>> {
        Self::from_raw_on(raw, None)
    }

    /// [`Config::from_raw`] on a node whose name, unless `[general]` sets `node`, is
    /// `host_node` (Asterisk's `systemname`): the config may be shared by every node (static
    /// realtime), the node's name is its own.
    pub fn from_raw_on(
        raw: &RawConfig,
        host_node: Option<&str>,
    ) -> Result<Parsed, Vec<ConfigError>> {
        let mut r = Report {
            file: &raw.file,
            errors: Vec::new(),
            warnings: Vec::new(),
        };
        let mut general = General::default();
        let mut devices: BTreeMap<String, DeviceDraft> = BTreeMap::new();
        let mut users: BTreeMap<String, (User, u32)> = BTreeMap::new();

        for sec in &raw.sections {
            if garbled(&sec.name) {
                r.error(
                    &shown(&sec.name),
                    None,
                    sec.line,
                    "section name is not text (corrupt or binary file?)".into(),
                );
                continue;
            }
            if let Some(v) = sec
                .vars
                .iter()
                .find(|v| garbled(&v.key) || garbled(&v.value))
            {
                r.error(
                    &sec.name,
                    None,
                    v.line,
                    format!(
                        "option {:?} is not text (corrupt or binary file?)",
                        shown(&v.key)
                    ),
                );
                continue;
            }
            if sec.name.trim().eq_ignore_ascii_case("general") {
                parse_general(sec, &mut general, &mut r);
                continue;
            }
            // The last `type` wins, as with any repeated option.
            let ty = sec
                .vars
                .iter()
                .rev()
                .find(|v| v.key.trim().eq_ignore_ascii_case("type"));
            let (ty_value, ty_line) = match ty {
                Some(v) => (v.value.trim().to_ascii_lowercase(), v.line),
                None => {
                    r.error(
                        &sec.name,
                        Some("type"),
                        sec.line,
                        "missing type (expected device or user)".into(),
                    );
                    continue;
                }
            };
            if ty_value != "device" && ty_value != "user" {
                r.error(
                    &sec.name,
                    Some("type"),
                    ty_line,
                    format!("unknown type '{ty_value}' (expected device or user)"),
                );
                continue;
            }
            if let Some(p) = id_problem(&sec.name) {
                r.error(&sec.name, None, sec.line, p);
                continue;
            }
            if ty_value == "device" {
                let d = parse_device(sec, &mut r);
                if let Some(first) = devices.get(&sec.name) {
                    let msg = format!("duplicate device (first defined at line {})", first.line);
                    r.error(&sec.name, None, sec.line, msg);
                } else {
                    devices.insert(sec.name.clone(), d);
                }
            } else {
                let u = parse_user(sec, &mut r);
                if let Some((_, first)) = users.get(&sec.name) {
                    let msg = format!("duplicate user (first defined at line {first})");
                    r.error(&sec.name, None, sec.line, msg);
                } else {
                    users.insert(sec.name.clone(), (u, sec.line));
                }
            }
        }

        place_devices(&mut general, &mut devices, &users, host_node, &mut r);

        let mut dial_index: HashMap<String, &str> = HashMap::new();
        for (id, d) in &devices {
            if let Some(du) = &d.device.default_user {
                if !users.contains_key(du.as_str()) {
                    r.error(
                        id,
                        Some("default_user"),
                        d.default_user_line,
                        format!("default_user '{du}' is not a configured user"),
                    );
                }
            }
            let key = d.device.dial.as_str().to_ascii_lowercase();
            if let Some(other) = dial_index.get(&key) {
                let msg = format!(
                    "dial string '{}' is already used by device {other}",
                    d.device.dial
                );
                r.error(id, Some("dial"), d.dial_line, msg);
            } else {
                dial_index.insert(key, id);
            }
        }

        if !r.errors.is_empty() {
            return Err(r.errors);
        }
        drop(dial_index);
        let mut config = Config {
            file: raw.file.clone(),
            general,
            devices: IdMap::new(devices.into_values().map(|d| d.device).collect()),
            users: IdMap::new(users.into_values().map(|(u, _)| u).collect()),
            dial_index: DialIndex::default(),
            unregister_policy: false,
            time_policy: false,
        };
        config.reindex();
        config.unregister_policy = scan_unregister_policy(&config);
        config.time_policy = scan_time_policy(&config);
        Ok(Parsed {
            config,
            warnings: r.warnings,
        })
    }

    pub fn device(&self, id: &str) -> Option<&Device> {
        self.devices.get(id)
    }

    pub fn user(&self, id: &str) -> Option<&User> {
        self.users.get(id)
    }

    /// The user's effective `max_login_time` in seconds; `None` = no limit. An unknown user
    /// gets the `[general]` value.
    pub fn max_login_time_of(&self, user: &str) -> Option<u64> {
        let general = Some(self.general.max_login_time).filter(|n| *n > 0);
        match self.user(user) {
            Some(u) => u.max_login_time.resolve(general),
            None => general,
        }
    }

    /// The user's effective `shift_end`; `None` = off. An unknown user gets the `[general]`
    /// value.
    pub fn shift_end_of(&self, user: &str) -> Option<TimeOfDay> {
        match self.user(user) {
            Some(u) => u.shift_end.resolve(self.general.shift_end),
            None => self.general.shift_end,
        }
    }

    /// The device's effective `logout_on_unregister` in seconds; `None` = never. An unknown
    /// device gets the `[general]` value.
    pub fn logout_on_unregister_of(&self, device: &str) -> Option<u64> {
        let general = Some(self.general.logout_on_unregister).filter(|n| *n > 0);
        match self.device(device) {
            Some(d) => d.logout_on_unregister.resolve(general),
            None => general,
        }
    }

    /// Finds the device a channel belongs to, from the channel name (`PJSIP/1000-00000007`).
    /// The channel name is set by the channel driver, unlike CALLERID, which the phone
    /// controls; so this is the only safe way to tell which device is calling. A name equal to
    /// a dial string (no unique suffix) is accepted too, for callers that pass a device name.
    pub fn device_for_channel(&self, channel_name: &str) -> Option<&Device> {
        self.device_for_dial(channel_name).or_else(|| {
            let (base, _suffix) = channel_name.rsplit_once('-')?;
            // The suffix must follow the resource, never cut into the technology.
            base.contains('/').then(|| self.device_for_dial(base))?
        })
    }

    /// Device with exactly this dial string; the technology (and the rest) compare
    /// case-insensitively, as Asterisk matches channel technologies.
    pub fn device_for_dial(&self, dial: &str) -> Option<&Device> {
        self.dial_index
            .0
            .find(dial_hash(dial), |&p| {
                self.devices
                    .at(p as usize)
                    .is_some_and(|d| d.dial.eq_ignore_ascii_case(dial))
            })
            .and_then(|&p| self.devices.at(p as usize))
    }

    /// Removes a device and rebuilds what is derived from the devices (edits under test).
    #[cfg(test)]
    pub(crate) fn remove_device(&mut self, id: &str) -> Option<Device> {
        let d = self.devices.remove(id);
        self.reindex();
        d
    }

    /// Rebuilds what is derived from the devices.
    fn reindex(&mut self) {
        let mut index = HashTable::with_capacity(self.devices.len());
        let devices = &self.devices;
        for (p, d) in devices.values().enumerate() {
            index.insert_unique(dial_hash(&d.dial), p as u32, |&q| {
                devices.at(q as usize).map_or(0, |d| dial_hash(&d.dial))
            });
        }
        self.dial_index = DialIndex(index);
    }

    /// Whether `logout_on_unregister` is on for any device (decided when the config was read).
    pub fn has_unregister_policy(&self) -> bool {
        self.unregister_policy
    }

    /// Whether any time policy is on for anyone (decided when the config was read).
    pub fn has_time_policy(&self) -> bool {
        self.time_policy
    }
}

/// Whether any time policy is configured (read once, when the config is built).
fn scan_time_policy(c: &Config) -> bool {
    c.general.max_login_time > 0
        || c.general.shift_end.is_some()
        || scan_unregister_policy(c)
        || c.users.values().any(|u| {
            u.max_login_time.resolve(None).is_some() || u.shift_end.resolve(None).is_some()
        })
}

/// Whether `logout_on_unregister` is on for any device (read once, when the config is built).
fn scan_unregister_policy(c: &Config) -> bool {
    c.general.logout_on_unregister > 0
        || c.devices
            .values()
            .any(|d| c.logout_on_unregister_of(&d.id).is_some())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a RawConfig from `(section, [(key, value)])`, numbering lines like a real file.
    pub(crate) fn raw(sections: &[(&str, &[(&str, &str)])]) -> RawConfig {
        let mut line = 1;
        let sections = sections
            .iter()
            .map(|(name, vars)| {
                let sec_line = line;
                line += 1;
                let vars = vars
                    .iter()
                    .map(|(k, v)| {
                        line += 1;
                        RawVar {
                            key: k.to_string(),
                            value: v.to_string(),
                            line: line - 1,
                        }
                    })
                    .collect();
                RawSection {
                    name: name.to_string(),
                    line: sec_line,
                    vars,
                }
            })
            .collect();
        RawConfig {
            file: "res_deviceuser.conf".into(),
            sections,
        }
    }

    pub(crate) fn sample() -> Config {
        Config::from_raw(&raw(&[
            ("general", &[("multiple_logins", "yes")]),
            ("1000", &[("type", "device")]),
            ("1001", &[("type", "device"), ("dial", "SIP/phone1001")]),
            (
                "2010",
                &[
                    ("type", "device"),
                    ("mode", "fixed"),
                    ("default_user", "2010"),
                ],
            ),
            ("lobby", &[("type", "device"), ("default_user", "100")]),
            ("100", &[("type", "user"), ("password", "1234")]),
            ("101", &[("type", "user"), ("password", "4321")]),
            ("2010", &[("type", "user")]),
        ]))
        .unwrap()
        .config
    }

    fn errors(r: RawConfig) -> Vec<ConfigError> {
        Config::from_raw(&r).unwrap_err()
    }

    #[test]
    fn defaults_are_filled_in() {
        let c = sample();
        let d = c.device("1000").unwrap();
        assert_eq!(d.description, "1000");
        assert_eq!(d.mode, DeviceMode::Adhoc);
        assert_eq!(d.dial, "PJSIP/1000");
        assert_eq!(d.default_user, None);
        let u = c.user("2010").unwrap();
        assert_eq!(
            (u.fullname.as_str(), u.cid_number.as_str()),
            ("2010", "2010")
        );
        assert_eq!(u.password, None);
        assert_eq!(c.general, General::default());
        assert_eq!(c.general.max_attempts, 3);
        assert_eq!(c.general.user_prompt, "agent-user");
    }

    #[test]
    fn realtime_places_devices_on_nodes() {
        let r = raw(&[
            (
                "general",
                &[
                    ("storage", "realtime"),
                    ("remote_dial", "PJSIP/${DEVICE}@trunk-${NODE}"),
                    ("node_timeout", "5"),
                    ("realtime_refresh", "1"),
                ],
            ),
            ("1000", &[("type", "device"), ("node", "a")]),
            ("2000", &[("type", "device"), ("node", "b")]),
            ("3000", &[("type", "device")]),
            ("101", &[("type", "user")]),
        ]);
        // No node name: an error naming both ways to give it.
        let e = Config::from_raw(&r).unwrap_err();
        assert_eq!(e.len(), 1);
        assert!(e[0].message.contains("systemname"), "{}", e[0]);
        let c = Config::from_raw_on(&r, Some("a")).unwrap().config;
        let g = &c.general;
        assert_eq!(g.storage, Storage::Realtime);
        assert_eq!(g.node.as_deref(), Some("a"));
        assert_eq!((g.node_timeout, g.realtime_refresh), (5, 1));
        let a = c.device("1000").unwrap();
        assert_eq!((a.dial.as_str(), a.remote), ("PJSIP/1000", false));
        let b = c.device("2000").unwrap();
        assert_eq!((b.dial.as_str(), b.remote), ("PJSIP/2000@trunk-b", true));
        assert!(!c.device("3000").unwrap().remote);
        assert_eq!(c.device_for_dial("pjsip/2000@TRUNK-b").unwrap().id, "2000");
        // [general] node wins over the host's name.
        let mut r2 = r.clone();
        r2.sections[0].vars.push(RawVar {
            key: "node".into(),
            value: "b".into(),
            line: 9,
        });
        let c = Config::from_raw_on(&r2, Some("a")).unwrap().config;
        assert!(c.device("1000").unwrap().remote);
        assert!(!c.device("2000").unwrap().remote);
    }

    #[test]
    fn realtime_options_are_checked() {
        let e = errors(raw(&[(
            "general",
            &[
                ("storage", "sql"),
                ("remote_dial", "PJSIP/x"),
                ("node_timeout", "0"),
                ("realtime_refresh", "soon"),
            ],
        )]));
        let keys: Vec<_> = e.iter().map(|e| e.key.as_deref().unwrap()).collect();
        assert_eq!(
            keys,
            vec!["storage", "remote_dial", "node_timeout", "realtime_refresh"]
        );
        let e = errors(raw(&[
            ("general", &[("storage", "realtime"), ("node", "a")]),
            ("a;b", &[("type", "device")]),
            ("u;1", &[("type", "user")]),
        ]));
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e.iter().all(|e| e.message.contains("';'")));
        // With AstDB a node is ignored, with a warning.
        let p = Config::from_raw(&raw(&[("1000", &[("type", "device"), ("node", "b")])])).unwrap();
        assert_eq!(p.warnings.len(), 1);
        assert!(!p.config.device("1000").unwrap().remote);
        assert_eq!(p.config.general.storage, Storage::Astdb);
    }

    #[test]
    fn general_options_parse() {
        let p = Config::from_raw(&raw(&[(
            "general",
            &[
                ("multiple_logins", "Replace"),
                ("hint_context", "hints"),
                ("allowed_numbers", "112, 911,,"),
                ("max_attempts", "5"),
                ("user_prompt", "who"),
                ("password_prompt", "pin"),
                ("colour", "blue"),
            ],
        )]))
        .unwrap();
        let g = &p.config.general;
        assert_eq!(g.multiple_logins, MultipleLogins::Replace);
        assert_eq!(g.hint_context.as_deref(), Some("hints"));
        assert_eq!(g.allowed_numbers, vec!["112", "911"]);
        assert_eq!(g.max_attempts, 5);
        assert_eq!(
            (g.user_prompt.as_str(), g.password_prompt.as_str()),
            ("who", "pin")
        );
        assert_eq!(p.warnings.len(), 1);
        assert_eq!(p.warnings[0].key.as_deref(), Some("colour"));
    }

    #[test]
    fn all_errors_are_collected() {
        let e = errors(raw(&[
            (
                "general",
                &[("multiple_logins", "maybe"), ("max_attempts", "11")],
            ),
            ("nosuch", &[("fullname", "x")]),
            ("weird", &[("type", "phone")]),
            ("2010", &[("type", "device"), ("mode", "fixed")]),
            ("2011", &[("type", "device"), ("mode", "sometimes")]),
            ("2012", &[("type", "device"), ("default_user", "ghost")]),
            ("a b", &[("type", "user")]),
            ("x/y", &[("type", "device")]),
            ("2013", &[("type", "device"), ("dial", "nodial")]),
            ("2014", &[("type", "device"), ("dial", "PJSIP/a&PJSIP/b")]),
            ("2015", &[("type", "device"), ("dial", "pjsip/2012")]),
            ("2016", &[("type", "device"), ("dial", "deviceuser:4101")]),
            ("2017", &[("type", "device"), ("dial", "Custom:desk17")]),
        ]));
        let msgs: Vec<String> = e.iter().map(|e| e.to_string()).collect();
        let has = |s: &str| msgs.iter().any(|m| m.contains(s));
        assert!(
            has("[general] multiple_logins: bad value 'maybe'"),
            "{msgs:#?}"
        );
        assert!(has("[general] max_attempts: bad value '11'"));
        assert!(has("[nosuch] type: missing type"));
        assert!(has("[weird] type: unknown type 'phone'"));
        assert!(has(
            "[2010] default_user: a fixed device needs a default_user"
        ));
        assert!(has(
            "[2011] mode: unknown mode 'sometimes' (expected adhoc or fixed)"
        ));
        assert!(has(
            "[2012] default_user: default_user 'ghost' is not a configured user"
        ));
        assert!(has("[a b] id 'a b' contains forbidden character"));
        assert!(has("[x/y] id 'x/y' contains forbidden character '/'"));
        assert!(has("[2013] dial: dial string 'nodial' has no technology"));
        assert!(has(
            "[2016] dial: dial string 'deviceuser:4101' names a DeviceUser: state"
        ));
        assert!(
            !has("[2017]"),
            "a Custom: state device is a valid dial: {msgs:#?}"
        );
        assert!(has(
            "[2014] dial: dial string 'PJSIP/a&PJSIP/b' must name a single device"
        ));
        assert!(has(
            "[2015] dial: dial string 'pjsip/2012' is already used by device 2012"
        ));
        assert_eq!(e.len(), 13);
    }

    #[test]
    fn duplicates_and_shared_ids() {
        let e = errors(raw(&[
            ("1000", &[("type", "device")]),
            ("1000", &[("type", "device")]),
            ("100", &[("type", "user")]),
            ("100", &[("type", "user")]),
        ]));
        assert_eq!(e.len(), 2);
        assert_eq!(
            e[0].to_string(),
            "res_deviceuser.conf line 3: [1000] duplicate device (first defined at line 1)"
        );
        assert!(e[1].message.contains("duplicate user"));
        // A device and a user may share an id.
        let c = sample();
        assert!(c.device("2010").is_some() && c.user("2010").is_some());
    }

    #[test]
    fn id_rules() {
        assert!(id_problem("").is_some());
        assert!(id_problem(&"x".repeat(65)).is_some());
        assert!(id_problem(&"x".repeat(64)).is_none());
        for bad in ["a,b", "a&b", "a/b", "a\tb"] {
            assert!(id_problem(bad).is_some(), "{bad}");
        }
        assert!(id_problem("front_desk%1").is_none());
    }

    #[test]
    fn error_display_omits_missing_parts() {
        let e = ConfigError {
            file: "f.conf".into(),
            section: None,
            key: None,
            line: 0,
            message: "boom".into(),
        };
        assert_eq!(e.to_string(), "f.conf: boom");
    }

    #[test]
    fn channel_lookup() {
        let c = sample();
        assert_eq!(
            c.device_for_channel("PJSIP/1000-00000007").unwrap().id,
            "1000"
        );
        assert_eq!(
            c.device_for_channel("pjsip/1000-0000000a").unwrap().id,
            "1000"
        );
        assert_eq!(c.device_for_channel("PJSIP/1000").unwrap().id, "1000");
        assert_eq!(c.device_for_channel("SIP/phone1001-1").unwrap().id, "1001");
        assert!(c.device_for_channel("PJSIP/10000-00000001").is_none());
        assert!(c.device_for_channel("PJSIP/100").is_none());
        assert!(c.device_for_channel("Local/1000@x-0001;1").is_none());
        assert!(c.device_for_channel("-").is_none());
        assert_eq!(c.device_for_dial("PJSIP/lobby").unwrap().id, "lobby");
    }

    #[test]
    fn channel_lookup_with_dash_in_resource() {
        let c = Config::from_raw(&raw(&[
            ("desk", &[("type", "device"), ("dial", "PJSIP/front-desk")]),
            ("front", &[("type", "device"), ("dial", "PJSIP/front")]),
        ]))
        .unwrap()
        .config;
        assert_eq!(
            c.device_for_channel("PJSIP/front-desk-0000002").unwrap().id,
            "desk"
        );
        assert_eq!(
            c.device_for_channel("PJSIP/front-0000002").unwrap().id,
            "front"
        );
        assert_eq!(c.device_for_channel("PJSIP/front-desk").unwrap().id, "desk");
    }

    #[test]
    fn password_compare() {
        let mut u = sample().user("100").unwrap().clone();
        assert!(u.password_matches("1234"));
        for wrong in ["", "123", "12345", "1235", "4321", "12341234"] {
            assert!(!u.password_matches(wrong), "{wrong}");
        }
        u.password = None;
        assert!(!u.password_matches(""));
        u.password = Some(CompactString::default());
        assert!(!u.password_matches(""));
    }

    #[test]
    fn empty_values_mean_defaults() {
        let c = Config::from_raw(&raw(&[
            (
                "1000",
                &[("type", "device"), ("dial", " "), ("description", "")],
            ),
            ("u", &[("type", "user"), ("password", ""), ("fullname", "")]),
        ]))
        .unwrap()
        .config;
        assert_eq!(c.device("1000").unwrap().dial, "PJSIP/1000");
        assert_eq!(c.device("1000").unwrap().description, "1000");
        assert_eq!(c.user("u").unwrap().password, None);
        assert_eq!(c.user("u").unwrap().fullname, "u");
    }

    #[test]
    fn policy_defaults() {
        let g = General::default();
        assert_eq!(g.max_login_time, 0);
        assert_eq!(g.shift_end, None);
        assert_eq!(g.logout_on_unregister, 0);
        assert_eq!(
            (g.max_login_failures, g.lockout_window, g.lockout_time),
            (5, 300, 300)
        );
        let c = sample();
        assert_eq!(c.max_login_time_of("100"), None);
        assert_eq!(c.shift_end_of("100"), None);
        assert_eq!(c.logout_on_unregister_of("1000"), None);
        assert_eq!(c.user("100").unwrap().max_login_time, Override::Inherit);
        assert_eq!(
            c.device("1000").unwrap().logout_on_unregister,
            Override::Inherit
        );
    }

    #[test]
    fn policy_options_parse() {
        let c = Config::from_raw(&raw(&[
            (
                "general",
                &[
                    ("max_login_time", "28800"),
                    ("shift_end", "18:30"),
                    ("logout_on_unregister", "600"),
                    ("max_login_failures", "0"),
                    ("lockout_window", "60"),
                    ("lockout_time", "900"),
                ],
            ),
            ("d1", &[("type", "device"), ("logout_on_unregister", "0")]),
            ("d2", &[("type", "device"), ("logout_on_unregister", "30")]),
            ("d3", &[("type", "device"), ("logout_on_unregister", "")]),
            (
                "u1",
                &[
                    ("type", "user"),
                    ("max_login_time", "0"),
                    ("shift_end", "none"),
                ],
            ),
            (
                "u2",
                &[
                    ("type", "user"),
                    ("max_login_time", "60"),
                    ("shift_end", "7:05"),
                ],
            ),
            ("u3", &[("type", "user"), ("shift_end", "")]),
        ]))
        .unwrap()
        .config;
        let g = &c.general;
        assert_eq!(g.max_login_time, 28800);
        assert_eq!(g.shift_end, TimeOfDay::new(18, 30));
        assert_eq!(g.logout_on_unregister, 600);
        assert_eq!(
            (g.max_login_failures, g.lockout_window, g.lockout_time),
            (0, 60, 900)
        );
        assert_eq!(c.max_login_time_of("u1"), None);
        assert_eq!(c.shift_end_of("u1"), None);
        assert_eq!(c.max_login_time_of("u2"), Some(60));
        assert_eq!(c.shift_end_of("u2"), TimeOfDay::new(7, 5));
        assert_eq!(c.max_login_time_of("u3"), Some(28800));
        assert_eq!(c.shift_end_of("u3"), TimeOfDay::new(18, 30));
        assert_eq!(c.max_login_time_of("nobody"), Some(28800));
        assert_eq!(c.logout_on_unregister_of("d1"), None);
        assert_eq!(c.logout_on_unregister_of("d2"), Some(30));
        assert_eq!(c.logout_on_unregister_of("d3"), Some(600));
        // General shift_end may be switched off explicitly too.
        let c = Config::from_raw(&raw(&[("general", &[("shift_end", "")])]))
            .unwrap()
            .config;
        assert_eq!(c.general.shift_end, None);
    }

    #[test]
    fn policy_option_errors() {
        let e = errors(raw(&[
            (
                "general",
                &[
                    ("max_login_time", "-1"),
                    ("shift_end", "24:00"),
                    ("logout_on_unregister", "10m"),
                    ("max_login_failures", "101"),
                    ("lockout_window", "0"),
                    ("lockout_time", "x"),
                ],
            ),
            ("d1", &[("type", "device"), ("logout_on_unregister", "1.5")]),
            (
                "u1",
                &[
                    ("type", "user"),
                    ("max_login_time", "999999999999"),
                    ("shift_end", "18:3"),
                ],
            ),
        ]));
        let msgs: Vec<String> = e.iter().map(|e| e.to_string()).collect();
        let has = |s: &str| msgs.iter().any(|m| m.contains(s));
        assert!(
            has("line 2: [general] max_login_time: bad value '-1' (expected a number of seconds from 0"),
            "{msgs:#?}"
        );
        assert!(has(
            "[general] shift_end: bad value '24:00' (expected HH:MM from 00:00 to 23:59, or none)"
        ));
        assert!(has("[general] logout_on_unregister: bad value '10m'"));
        assert!(has(
            "[general] max_login_failures: bad value '101' (expected a number from 0 to 100"
        ));
        assert!(has(
            "[general] lockout_window: bad value '0' (expected a number of seconds from 1"
        ));
        assert!(has("[general] lockout_time: bad value 'x'"));
        assert!(has("[d1] logout_on_unregister: bad value '1.5'"));
        assert!(has("[u1] max_login_time: bad value '999999999999'"));
        assert!(has("[u1] shift_end: bad value '18:3'"));
        assert_eq!(e.len(), 9);
    }

    #[test]
    fn time_of_day() {
        let t = TimeOfDay::parse("07:05").unwrap();
        assert_eq!((t.hour(), t.minute()), (7, 5));
        assert_eq!(t.seconds_since_midnight(), 7 * 3600 + 5 * 60);
        assert_eq!(t.to_string(), "07:05");
        assert_eq!(TimeOfDay::parse(" 0:00 "), TimeOfDay::new(0, 0));
        assert_eq!(TimeOfDay::parse("23:59"), TimeOfDay::new(23, 59));
        for bad in [
            "", "24:00", "12:60", "12", "12:5", "012:00", "+1:00", "1:2:3", "aa:bb",
        ] {
            assert_eq!(TimeOfDay::parse(bad), None, "{bad}");
        }
        assert_eq!(TimeOfDay::new(24, 0), None);
    }

    #[test]
    fn hashed_passwords() {
        let argon = crate::password::hash_password("2468");
        let sha512 = "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1";
        let c = Config::from_raw(&raw(&[
            ("a", &[("type", "user"), ("password", &argon)]),
            ("s", &[("type", "user"), ("password", sha512)]),
        ]))
        .unwrap()
        .config;
        let a = c.user("a").unwrap();
        assert!(a.password_matches("2468"));
        assert!(!a.password_matches("2469") && !a.password_matches(""));
        let s = c.user("s").unwrap();
        assert!(s.password_matches("Hello world!"));
        assert!(!s.password_matches(sha512));

        let broken = "$6$saltstring$svn8UoSVapNtMuq1uk";
        let e = errors(raw(&[
            ("b", &[("type", "user"), ("password", broken)]),
            (
                "c",
                &[("type", "user"), ("password", "$argon2id$v=19$secret")],
            ),
            ("d", &[("type", "user"), ("password", "$md5$secret")]),
        ]));
        assert_eq!(e.len(), 3);
        for (err, sec) in e.iter().zip(["b", "c", "d"]) {
            assert_eq!(
                (err.section.as_deref(), err.key.as_deref()),
                (Some(sec), Some("password"))
            );
            let text = err.to_string();
            assert!(
                !text.contains("svn8") && !text.contains("secret") && !text.contains("saltstring"),
                "{text}"
            );
        }
        assert!(e[0]
            .to_string()
            .contains("[b] password: malformed SHA-crypt password hash"));
        assert!(e[1]
            .to_string()
            .contains("[c] password: malformed argon2 password hash"));
        assert!(e[2]
            .to_string()
            .contains("[d] password: unsupported password hash"));
    }

    #[test]
    fn display_of_modes() {
        assert_eq!(DeviceMode::Adhoc.to_string(), "adhoc");
        assert_eq!(DeviceMode::Fixed.to_string(), "fixed");
        assert_eq!(MultipleLogins::Replace.to_string(), "replace");
    }
}
