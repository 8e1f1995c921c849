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
pub use crate::raw::{shown, RawConfig, RawSection, RawShape, RawVar};

use crate::apps::{self, Prompt};
use crate::logtext::{quoted, value};
use crate::password;
use crate::queues::{parse_queue_list, QueueLogout, QueueSpec, DEFAULT_QUEUE_CONTEXT};

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
    /// Every prompt of the applications, [`apps::PROMPTS`] with the `[general]` options
    /// applied: read with [`General::prompt`].
    pub prompts: Prompts,
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
    /// `queues`: the queues of users who set none themselves (see [`crate::queues`]).
    pub queues: Vec<QueueSpec>,
    /// `queue_logout`: what a logout does to the user's queue members.
    pub queue_logout: QueueLogout,
    /// `queue_context`: the dialplan context of the member interface
    /// (`Local/<user>@<queue_context>`), which rings the user's devices.
    pub queue_context: String,
    /// `queue_check`: seconds between checks that `app_queue`'s members match the bindings
    /// (a queue reloaded away and back, `app_queue` loaded late); 0 = only at start and
    /// reload. Default 30.
    pub queue_check: u64,
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
            prompts: Prompts::default(),
            max_login_time: 0,
            shift_end: None,
            logout_on_unregister: 0,
            max_login_failures: 5,
            lockout_window: 300,
            lockout_time: 300,
            commit_log: false,
            queues: Vec::new(),
            queue_logout: QueueLogout::Remove,
            queue_context: DEFAULT_QUEUE_CONTEXT.into(),
            queue_check: 30,
            storage: Storage::Astdb,
            node: None,
            remote_dial: DEFAULT_REMOTE_DIAL.into(),
            node_timeout: 10,
            realtime_refresh: 2,
        }
    }
}

/// The sound files the applications play, one value per entry of [`apps::PROMPTS`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prompts {
    values: [CompactString; apps::PROMPTS.len()],
}

impl Default for Prompts {
    fn default() -> Self {
        Prompts {
            values: apps::PROMPTS.map(|p| CompactString::from(p.default)),
        }
    }
}

impl Prompts {
    fn index(p: &Prompt) -> usize {
        apps::PROMPTS
            .iter()
            .position(|q| q.option == p.option)
            .expect("a prompt of apps::PROMPTS")
    }

    /// The value of `p`: its option's, or Asterisk's stock file.
    pub fn get(&self, p: &Prompt) -> &str {
        &self.values[Self::index(p)]
    }

    fn set(&mut self, p: &Prompt, value: &str) {
        self.values[Self::index(p)] = CompactString::from(value);
    }
}

impl General {
    /// The sound file(s) to play for `p`, `&`-separated (see [`apps::files`]).
    pub fn prompt(&self, p: &Prompt) -> &str {
        self.prompts.get(p)
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
    /// `emergency_callerid`: the caller ID of this device's calls to `allowed_numbers`
    /// (`"Name" <number>` or a number), whoever is logged in; `None` = the call's own.
    pub emergency_callerid: Option<CompactString>,
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
    /// `queues` of this user; `None` = the `[general]` list, `Some(empty)` = none.
    pub queues: Option<Vec<QueueSpec>>,
    /// `mailbox`: the user's voicemail box (`box@context`), shown on the devices the user is
    /// logged in on.
    pub mailbox: Option<CompactString>,
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
    /// Users of the administration console (`type = console_user`); none = no console.
    pub console_users: IdMap<crate::console_users::ConsoleUser>,
    /// Dial strings (compared without regard to ASCII case) -> positions in `devices`, to
    /// recognise the device behind a channel or a device state quickly: it is consulted for
    /// every device state change of a bound device. Found without allocating.
    dial_index: DialIndex,
    /// Whether any `logout_on_unregister` / time policy is on: decided once per config, since
    /// the device state path asks for every change.
    unregister_policy: bool,
    time_policy: bool,
    /// Whether any queue or mailbox is configured: asked by every commit, so also decided
    /// once per config rather than by a walk of the users.
    queues: bool,
    mailboxes: bool,
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
        // Names come from the file: each stays one value in the log line.
        if let Some(s) = &self.section {
            write!(f, "[{}] ", value(s))?;
        }
        if let Some(k) = &self.key {
            write!(f, "{}: ", value(k))?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// The warning about a user without a password.
pub const NO_PASSWORD: &str =
    "user without a password: cannot log in from a phone (UserLogin sets NOPASSWORD); \
     CLI and AMI logins still work";

/// Users named one by one in the warnings about users without a password; the others are
/// counted in one more line, so that a large site's log stays readable.
pub const MAX_NO_PASSWORD_WARNINGS: usize = 20;

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
                    "id {} contains forbidden character {c:?}",
                    quoted(&shown(id))
                )
            })
    }
}

/// Why `dial` cannot be the dial string of device `id`, if it cannot. A dial string is also
/// the device's state name: `Tech/resource` (PJSIP/1000), or a state-only device such as
/// `Custom:name` (func_devstate) for testing and benchmarks. (Whether another device uses it
/// too is checked across the whole file.)
pub fn dial_problem(id: &str, dial: &str) -> Option<String> {
    let shown_dial = shown(dial);
    if !dial.contains('/') && !dial.contains(':') {
        Some(format!(
            "dial string {} has no technology (expected e.g. PJSIP/{})",
            quoted(&shown_dial),
            value(id)
        ))
    } else if is_user_state(dial) {
        // The provider asks the state of every device of a user: a user as a device loops.
        Some(format!(
            "dial string {} names a DeviceUser: state, which would loop",
            quoted(&shown_dial)
        ))
    } else if dial.contains('&') {
        Some(format!(
            "dial string {} must name a single device (no '&')",
            quoted(&shown_dial)
        ))
    } else if dial.contains(char::is_whitespace) {
        // Channel names never hold a space: such a device would never be recognised, and
        // Dial() would take the rest as another argument.
        Some(format!(
            "dial string {} contains a space (expected Tech/resource, e.g. PJSIP/{})",
            quoted(&shown_dial),
            value(id)
        ))
    } else {
        None
    }
}

pub use crate::names::{is_user_state, USER_STATE_PREFIX};

/// Parses a caller ID value: `"Name" <number>`, `Name <number>` or a number; empty = none.
/// The number is digits with an optional leading `+`; the name holds none of the characters
/// that would split or expand a dialplan argument (`, ( ) $ { } [ ] ? | \ ;`).
pub fn parse_callerid(v: &str) -> Result<Option<CompactString>, String> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    let bad = || {
        format!(
            "bad caller ID {} (expected \"Name\" <number> or a number)",
            quoted(&shown(v))
        )
    };
    if v.chars()
        .any(|c| c.is_control() || ",()${}[]?|\\;".contains(c))
    {
        return Err(bad());
    }
    let number = match v.rsplit_once('<') {
        Some((name, rest)) => {
            let n = rest.strip_suffix('>').ok_or_else(bad)?;
            if name.contains(['<', '>']) || name.trim().trim_matches('"').contains('"') {
                return Err(bad());
            }
            n
        }
        None => v,
    };
    let digits = number.strip_prefix('+').unwrap_or(number);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    Ok(Some(CompactString::from(v)))
}

/// The context of a mailbox given without one, as in voicemail.conf.
pub const DEFAULT_MAILBOX_CONTEXT: &str = "default";

/// Parses a `mailbox` value: `box@context` (`box` alone means `box@default`); empty = none.
pub fn parse_mailbox(v: &str) -> Result<Option<CompactString>, String> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    let (mailbox, context) = v.split_once('@').unwrap_or((v, DEFAULT_MAILBOX_CONTEXT));
    let bad = |s: &str| {
        s.is_empty()
            || s.chars().any(|c| {
                matches!(c, ',' | '&' | '@' | '/' | '|' | ':')
                    || c.is_whitespace()
                    || c.is_control()
            })
    };
    if bad(mailbox) || bad(context) {
        return Err(format!(
            "bad mailbox {} (expected box@context, e.g. 4101@default)",
            quoted(&shown(v))
        ));
    }
    Ok(Some(compact_str::format_compact!("{mailbox}@{context}")))
}

/// Why `value` cannot be a user's `language`, if it cannot. Asterisk looks prompts up in
/// `sounds/<language>/`, so a language is a tag: letters, then parts of letters or digits
/// joined by `_` or `-` (`en`, `ru`, `pt_BR`, `en-US`, `es_419`). Empty means none.
pub fn language_problem(value: &str) -> Option<String> {
    let v = value.trim();
    if v.is_empty() {
        return None;
    }
    let mut parts = v.split(['_', '-']);
    let first = parts.next().unwrap_or("");
    let ok = (2..=8).contains(&first.len())
        && first.chars().all(|c| c.is_ascii_alphabetic())
        && parts
            .all(|p| (1..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()));
    (!ok).then(|| {
        format!(
            "{} is not a language tag (such as en, ru, pt_BR or en-US)",
            quoted(&shown(v))
        )
    })
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
    format!(
        "bad value {} (expected a number of seconds from {min} to {MAX_SECONDS})",
        quoted(v)
    )
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
    format!(
        "bad value {} (expected HH:MM from 00:00 to 23:59, or none)",
        quoted(v)
    )
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
                    format!("bad value {} (expected yes, no or replace)", quoted(v)),
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
                    format!("bad value {} (expected yes or no)", quoted(v)),
                ),
            },
            "allowed_numbers" => {
                g.allowed_numbers.clear();
                for n in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    if n.chars().all(|c| c.is_ascii_digit() || "*#+".contains(c)) {
                        g.allowed_numbers.push(n.to_string());
                    } else {
                        r.error(&sec.name, Some(&key), line, format!("bad number {}", quoted(n)));
                    }
                }
            }
            "max_attempts" => match v.parse::<u32>() {
                Ok(n) if (1..=10).contains(&n) => g.max_attempts = n,
                _ => r.error(
                    &sec.name,
                    Some(&key),
                    line,
                    format!("bad value {} (expected a number from 1 to 10)", quoted(v)),
                ),
            },
            k if apps::PROMPTS.iter().any(|p| p.option == k) => {
                let p = apps::PROMPTS
                    .iter()
                    .find(|p| p.option == k)
                    .expect("just found");
                if v.is_empty() {
                    g.prompts.set(p, p.default);
                } else if let Some(why) = apps::prompt_problem(v) {
                    r.error(
                        &sec.name,
                        Some(&key),
                        line,
                        format!("bad prompt {}: {why}", quoted(&shown(v))),
                    );
                } else {
                    g.prompts.set(p, v);
                }
            }
            "max_login_time" | "logout_on_unregister" | "lockout_window" | "lockout_time"
            | "queue_check" => {
                let min = u64::from(key.starts_with("lockout"));
                match parse_seconds(v).filter(|n| *n >= min) {
                    Some(n) => match key.as_str() {
                        "max_login_time" => g.max_login_time = n,
                        "logout_on_unregister" => g.logout_on_unregister = n,
                        "lockout_window" => g.lockout_window = n,
                        "queue_check" => g.queue_check = n,
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
            "queues" => match parse_queue_list(v) {
                Ok(q) => g.queues = q,
                Err(es) => {
                    for e in es {
                        r.error(&sec.name, Some(&key), line, e);
                    }
                }
            },
            "queue_logout" => match QueueLogout::parse(v) {
                Some(m) => g.queue_logout = m,
                None => r.error(
                    &sec.name,
                    Some(&key),
                    line,
                    format!("bad value {} (expected remove or pause)", quoted(v)),
                ),
            },
            "queue_context" => {
                if v.is_empty() {
                    g.queue_context = DEFAULT_QUEUE_CONTEXT.into();
                } else if let Some(c) = v
                    .chars()
                    .find(|c| matches!(c, ',' | '@' | '/' | '&') || c.is_whitespace())
                {
                    r.error(
                        &sec.name,
                        Some(&key),
                        line,
                        format!("bad context {} (contains {c:?})", quoted(v)),
                    );
                } else {
                    g.queue_context = v.to_string();
                }
            }
            "storage" => match v.to_ascii_lowercase().as_str() {
                "astdb" => g.storage = Storage::Astdb,
                "realtime" => g.storage = Storage::Realtime,
                _ => r.error(
                    &sec.name,
                    Some(&key),
                    line,
                    format!("bad value {} (expected astdb or realtime)", quoted(v)),
                ),
            },
            "node" => g.node = non_empty(v),
            "remote_dial" => match non_empty::<CompactString>(v) {
                Some(p) if p.contains("${DEVICE}") => g.remote_dial = p,
                _ => r.error(
                    &sec.name,
                    Some(&key),
                    line,
                    format!(
                        "bad value {} (expected a dial string with ${{DEVICE}}, e.g. {DEFAULT_REMOTE_DIAL})",
                        quoted(v)
                    ),
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
                            "bad value {} (expected a number of seconds from 1 to {MAX_CLUSTER_SECONDS})",
                            quoted(v)
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
                        "bad value {} (expected a number from 0 to {MAX_LOGIN_FAILURES}, 0 = no lockout)",
                        quoted(v)
                    ),
                ),
            },
            _ => r.warn(
                &sec.name,
                Some(&key),
                line,
                format!("unknown option {}", quoted(&key)),
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
            emergency_callerid: None,
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
                    format!("unknown mode {} (expected adhoc or fixed)", quoted(v)),
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
            "emergency_callerid" => match parse_callerid(v) {
                Ok(c) => d.device.emergency_callerid = c,
                Err(e) => r.error(&id, Some(&key), line, e),
            },
            _ => r.warn(
                &id,
                Some(&key),
                line,
                format!("unknown option {}", quoted(&key)),
            ),
        }
    }
    if let Some(problem) = dial_problem(&id, &d.device.dial) {
        r.error(&id, Some("dial"), d.dial_line, problem);
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

/// The warning for a plain PIN that is not all digits (the value is never shown).
const NOT_DIGITS: &str = "the PIN is not only digits 0-9, so it cannot be typed at the \
     UserLogin() prompts (only UserLogin(user,pin) from the dialplan can use it); note that ';' \
     starts a comment in the file, so 'abc;def' is read as 'abc'";

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
        queues: None,
        mailbox: None,
    };
    for var in &sec.vars {
        let key = var.key.trim().to_ascii_lowercase();
        let v = var.value.trim();
        match key.as_str() {
            "type" => {}
            "password" => {
                u.password = non_empty(v);
                // The messages name the key, never the value: it may be a secret.
                if let Some(Err(msg)) = u.password.as_deref().map(password::check_hash) {
                    r.error(&id, Some(&key), var.line, msg);
                }
                if let Some(p) = u.password.as_deref().filter(|p| !password::is_hash(p)) {
                    if !p.bytes().all(|b| b.is_ascii_digit()) {
                        r.warn(&id, Some(&key), var.line, NOT_DIGITS.into());
                    }
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
            "queues" => match parse_queue_list(v) {
                Ok(q) => u.queues = Some(q),
                Err(es) => {
                    for e in es {
                        r.error(&id, Some(&key), var.line, e);
                    }
                }
            },
            "mailbox" => match parse_mailbox(v) {
                Ok(m) => u.mailbox = m,
                Err(e) => r.error(&id, Some(&key), var.line, e),
            },
            "fullname" => u.fullname = non_empty(v).unwrap_or_else(|| id.clone()),
            "language" => match language_problem(v) {
                None => u.language = non_empty(v),
                Some(why) => r.error(&id, Some(&key), var.line, why),
            },
            "cid_number" => u.cid_number = non_empty(v).unwrap_or_else(|| id.clone()),
            _ => r.warn(
                &id,
                Some(&key),
                var.line,
                format!("unknown option {}", quoted(&key)),
            ),
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

/// Why a reload of `new` must not replace `running`, if it must not: a file with no device
/// and no user (emptied or truncated by mistake) would log everyone out, and putting the file
/// back would not bring the logins back. A running configuration that is empty too loses
/// nothing, so reloading it is not refused. `storage` and this node's name cannot change
/// while loaded (where the bindings live and whose devices are whose): that takes an unload
/// and a load.
pub fn reload_refusal(running: &Config, new: &Config) -> Option<String> {
    let (was, is) = (&running.general, &new.general);
    if (was.storage, &was.node) != (is.storage, &is.node) {
        let node = |n: &Option<CompactString>| {
            n.as_deref()
                .map_or_else(|| "-".to_string(), |n| quoted(n).to_string())
        };
        return Some(format!(
            "storage and node cannot change on reload (storage {} node {} -> storage {} node {}): unload and load the module",
            was.storage,
            node(&was.node),
            is.storage,
            node(&is.node),
        ));
    }
    let empty = |c: &Config| c.devices.is_empty() && c.users.is_empty();
    (empty(new) && !empty(running)).then(|| {
        format!(
            "{} has no devices and no users (emptied or truncated?): reloading it would remove {} devices, {} users and every login",
            new.file,
            running.devices.len(),
            running.users.len()
        )
    })
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
        let mut console_users: BTreeMap<String, (crate::console_users::ConsoleUser, u32)> =
            BTreeMap::new();

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
                        "option {} is not text (corrupt or binary file?)",
                        quoted(&shown(&v.key))
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
                        "missing type (expected device, user or console_user)".into(),
                    );
                    continue;
                }
            };
            let console_user = ty_value == crate::console_users::SECTION_TYPE;
            if ty_value != "device" && ty_value != "user" && !console_user {
                r.error(
                    &sec.name,
                    Some("type"),
                    ty_line,
                    format!(
                        "unknown type {} (expected device, user or console_user)",
                        quoted(&ty_value)
                    ),
                );
                continue;
            }
            if let Some(p) = id_problem(&sec.name) {
                r.error(&sec.name, None, sec.line, p);
                continue;
            }
            if console_user {
                let (u, findings) = crate::console_users::parse(sec);
                for f in findings {
                    match f.error {
                        true => r.error(&sec.name, f.key.as_deref(), f.line, f.message),
                        false => r.warn(&sec.name, f.key.as_deref(), f.line, f.message),
                    }
                }
                if let Some((_, first)) = console_users.get(&sec.name) {
                    let msg = format!("duplicate console user (first defined at line {first})");
                    r.error(&sec.name, None, sec.line, msg);
                } else if let Some(u) = u {
                    console_users.insert(sec.name.clone(), (u, sec.line));
                }
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
                        format!("default_user {} is not a configured user", quoted(du)),
                    );
                }
            }
            let key = d.device.dial.as_str().to_ascii_lowercase();
            if let Some(other) = dial_index.get(&key) {
                let msg = format!(
                    "dial string {} is already used by device {}",
                    quoted(&d.device.dial),
                    value(other)
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
        let mut no_password = users.values().filter(|(u, _)| u.password.is_none());
        for (u, line) in no_password.by_ref().take(MAX_NO_PASSWORD_WARNINGS) {
            r.warnings.push(ConfigError {
                file: raw.file.clone(),
                section: Some(u.id.to_string()),
                key: None,
                line: *line,
                message: NO_PASSWORD.into(),
            });
        }
        let more = no_password.count();
        if more > 0 {
            r.warnings.push(ConfigError {
                file: raw.file.clone(),
                section: None,
                key: None,
                line: 0,
                message: format!(
                    "{more} more users without a password (deviceuser show user <id> tells each)"
                ),
            });
        }
        let mut config = Config {
            file: raw.file.clone(),
            general,
            devices: IdMap::new(devices.into_values().map(|d| d.device).collect()),
            users: IdMap::new(users.into_values().map(|(u, _)| u).collect()),
            console_users: IdMap::new(console_users.into_values().map(|(u, _)| u).collect()),
            dial_index: DialIndex::default(),
            unregister_policy: false,
            time_policy: false,
            queues: false,
            mailboxes: false,
        };
        config.reindex();
        config.unregister_policy = scan_unregister_policy(&config);
        config.time_policy = scan_time_policy(&config);
        config.queues = !config.general.queues.is_empty()
            || config
                .users
                .values()
                .any(|u| u.queues.as_ref().is_some_and(|q| !q.is_empty()));
        config.mailboxes = config.users.values().any(|u| u.mailbox.is_some());
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

    /// The queues `user` joins while logged in: their own `queues`, else `[general]`'s.
    pub fn queues_of(&self, user: &str) -> &[QueueSpec] {
        match self.user(user).and_then(|u| u.queues.as_deref()) {
            Some(q) => q,
            None if self.user(user).is_some() => &self.general.queues,
            None => &[],
        }
    }

    /// Whether any user has queues.
    pub fn has_queues(&self) -> bool {
        self.queues
    }

    /// Whether any user has a mailbox (decided when the config was read).
    pub fn has_mailboxes(&self) -> bool {
        self.mailboxes
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

    #[test]
    fn a_reload_without_devices_and_users_is_refused_unless_nothing_runs() {
        let running = sample();
        let empty = Config::from_raw(&raw(&[("general", &[("multiple_logins", "yes")])]))
            .unwrap()
            .config;
        let why = reload_refusal(&running, &empty).expect("refused");
        assert!(
            why.starts_with("res_deviceuser.conf has no devices and no users")
                && why.contains(&format!("{} devices", running.devices.len())),
            "{why}"
        );
        assert_eq!(reload_refusal(&empty, &empty), None);
        assert_eq!(reload_refusal(&running, &running), None);
        let users_only = Config::from_raw(&raw(&[("4101", &[("type", "user")])]))
            .unwrap()
            .config;
        assert_eq!(reload_refusal(&running, &users_only), None);
    }

    #[test]
    fn a_reload_that_changes_storage_or_node_is_refused() {
        let running = sample();
        let mut other = running.clone();
        other.general.storage = Storage::Realtime;
        other.general.node = Some("b".into());
        let why = reload_refusal(&running, &other).expect("refused");
        assert!(
            why.contains("storage astdb node - -> storage realtime node \"b\""),
            "{why}"
        );
        let mut renamed = other.clone();
        renamed.general.node = Some("a".into());
        assert!(reload_refusal(&other, &renamed).is_some());
        assert_eq!(reload_refusal(&other, &other), None);
    }

    #[test]
    fn a_pin_that_is_not_digits_is_warned_about_without_showing_it() {
        let hashed = crate::hash_password("1234");
        let parsed = Config::from_raw(&raw(&[
            ("100", &[("type", "user"), ("password", "12ab")]),
            ("101", &[("type", "user"), ("password", "1234")]),
            ("102", &[("type", "user"), ("password", "12*4")]),
            ("103", &[("type", "user"), ("password", &hashed)]),
        ]))
        .unwrap();
        let warnings: Vec<String> = parsed.warnings.iter().map(|w| w.to_string()).collect();
        let not_digits: Vec<&String> = warnings
            .iter()
            .filter(|w| w.contains("not only digits"))
            .collect();
        assert_eq!(not_digits.len(), 2, "{warnings:?}");
        assert!(not_digits[0].contains("[100] password:"), "{not_digits:?}");
        assert!(not_digits[1].contains("[102] password:"), "{not_digits:?}");
        assert!(not_digits[0].contains("';' starts a comment"));
        assert!(warnings
            .iter()
            .all(|w| !w.contains("12ab") && !w.contains("12*4")));
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
        assert_eq!(c.general.prompt(&apps::USER), apps::USER.default);
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
            (g.prompt(&apps::USER), g.prompt(&apps::PASSWORD)),
            ("who", "pin")
        );
        assert_eq!(p.warnings.len(), 1);
        assert_eq!(p.warnings[0].key.as_deref(), Some("colour"));
    }

    #[test]
    fn every_prompt_has_an_option_and_bad_ones_are_errors() {
        let p = Config::from_raw(&raw(&[(
            "general",
            &[
                ("retry_user_prompt", "custom/user-again"),
                ("give_up_prompt", "custom/sorry&custom/goodbye"),
                ("logout_prompt", ""),
            ],
        )]))
        .unwrap();
        let g = &p.config.general;
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        assert_eq!(g.prompt(&apps::RETRY_USER), "custom/user-again");
        assert_eq!(g.prompt(&apps::GIVE_UP), "custom/sorry&custom/goodbye");
        assert_eq!(g.prompt(&apps::LOGGED_OFF), apps::LOGGED_OFF.default);
        for q in apps::PROMPTS {
            if q != apps::RETRY_USER && q != apps::GIVE_UP {
                assert_eq!(g.prompt(&q), q.default, "{}", q.option);
            }
        }

        let e = errors(raw(&[("general", &[("login_ok_prompt", "logged in")])]));
        assert_eq!(e.len(), 1);
        assert_eq!(
            (e[0].key.as_deref(), e[0].line),
            (Some("login_ok_prompt"), 2)
        );
        assert!(e[0].message.contains("\"logged in\""), "{}", e[0]);
    }

    #[test]
    fn language_must_be_a_language_tag() {
        for ok in ["en", "ru", "pt_BR", "en-US", "es_419", "zh_Hans_CN", "EN"] {
            let c = Config::from_raw(&raw(&[(
                "1",
                &[("type", "user"), ("password", "1"), ("language", ok)],
            )]))
            .unwrap_or_else(|e| panic!("{ok}: {e:?}"))
            .config;
            assert_eq!(c.user("1").unwrap().language.as_deref(), Some(ok));
        }
        for bad in [
            "xx yy",
            "e",
            "en_",
            "-en",
            "en__US",
            "../en",
            "en;ru",
            "toolonglanguage",
            "12",
        ] {
            let e = errors(raw(&[
                ("general", &[]),
                ("4101", &[("type", "user"), ("language", bad)]),
            ]));
            assert_eq!(e.len(), 1, "{bad}: {e:?}");
            let text = e[0].to_string();
            assert_eq!(e[0].line, 4, "{text}");
            assert!(
                text.starts_with("res_deviceuser.conf line 4: [4101] language: "),
                "{text}"
            );
            assert!(
                text.contains(&crate::logtext::quoted(bad).to_string()),
                "{text}"
            );
        }
        // Empty means none.
        let c = Config::from_raw(&raw(&[(
            "1",
            &[("type", "user"), ("password", "1"), ("language", "")],
        )]))
        .unwrap()
        .config;
        assert_eq!(c.user("1").unwrap().language, None);
    }

    #[test]
    fn users_without_a_password_are_warned_about_once_each() {
        let p = Config::from_raw(&raw(&[
            ("a", &[("type", "user")]),
            ("b", &[("type", "user"), ("password", "1234")]),
            ("c", &[("type", "user"), ("password", "")]),
        ]))
        .unwrap();
        let named: Vec<(&str, u32)> = p
            .warnings
            .iter()
            .map(|w| (w.section.as_deref().unwrap(), w.line))
            .collect();
        assert_eq!(named, [("a", 1), ("c", 6)]);
        assert_eq!(
            p.warnings[0].to_string(),
            format!("res_deviceuser.conf line 1: [a] {NO_PASSWORD}")
        );

        // Many: the first ones by name, the rest counted in one line.
        let names: Vec<String> = (0..MAX_NO_PASSWORD_WARNINGS + 5)
            .map(|n| format!("u{n:03}"))
            .collect();
        let sections: Vec<(&str, &[(&str, &str)])> = names
            .iter()
            .map(|n| (n.as_str(), &[("type", "user")][..]))
            .collect();
        let p = Config::from_raw(&raw(&sections)).unwrap();
        assert_eq!(p.warnings.len(), MAX_NO_PASSWORD_WARNINGS + 1);
        let last = p.warnings.last().unwrap().to_string();
        assert!(last.contains("5 more users without a password"), "{last}");
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
            ("2018", &[("type", "device"), ("dial", "PJSIP/10 07")]),
        ]));
        let msgs: Vec<String> = e.iter().map(|e| e.to_string()).collect();
        let has = |s: &str| msgs.iter().any(|m| m.contains(s));
        assert!(
            has("[general] multiple_logins: bad value \"maybe\""),
            "{msgs:#?}"
        );
        assert!(has("[general] max_attempts: bad value \"11\""));
        assert!(has("[nosuch] type: missing type"));
        assert!(has("[weird] type: unknown type \"phone\""));
        assert!(has(
            "[2010] default_user: a fixed device needs a default_user"
        ));
        assert!(has(
            "[2011] mode: unknown mode \"sometimes\" (expected adhoc or fixed)"
        ));
        assert!(has(
            "[2012] default_user: default_user \"ghost\" is not a configured user"
        ));
        assert!(has(r#"["a b"] id "a b" contains forbidden character"#));
        assert!(has("[x/y] id \"x/y\" contains forbidden character '/'"));
        assert!(has("[2013] dial: dial string \"nodial\" has no technology"));
        assert!(has(
            "[2016] dial: dial string \"deviceuser:4101\" names a DeviceUser: state"
        ));
        assert!(
            !has("[2017]"),
            "a Custom: state device is a valid dial: {msgs:#?}"
        );
        assert!(has(
            "[2014] dial: dial string \"PJSIP/a&PJSIP/b\" must name a single device"
        ));
        assert!(has(
            "[2015] dial: dial string \"pjsip/2012\" is already used by device 2012"
        ));
        // File, line and value.
        assert!(
            has(
                r#"res_deviceuser.conf line 38: [2018] dial: dial string "PJSIP/10 07" contains a space"#
            ),
            "{msgs:#?}"
        );
        assert_eq!(e.len(), 14);
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
            has("line 2: [general] max_login_time: bad value \"-1\" (expected a number of seconds from 0"),
            "{msgs:#?}"
        );
        assert!(has(
            "[general] shift_end: bad value \"24:00\" (expected HH:MM from 00:00 to 23:59, or none)"
        ));
        assert!(has("[general] logout_on_unregister: bad value \"10m\""));
        assert!(has(
            "[general] max_login_failures: bad value \"101\" (expected a number from 0 to 100"
        ));
        assert!(has(
            "[general] lockout_window: bad value \"0\" (expected a number of seconds from 1"
        ));
        assert!(has("[general] lockout_time: bad value \"x\""));
        assert!(has("[d1] logout_on_unregister: bad value \"1.5\""));
        assert!(has("[u1] max_login_time: bad value \"999999999999\""));
        assert!(has("[u1] shift_end: bad value \"18:3\""));
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
    fn emergency_callerid_parses() {
        for ok in [
            "112",
            "+4930123456",
            "\"Reception\" <+4930123456>",
            "Desk 1 <5550100>",
        ] {
            assert_eq!(parse_callerid(ok).unwrap().as_deref(), Some(ok), "{ok}");
        }
        assert_eq!(parse_callerid(" ").unwrap(), None);
        for bad in [
            "abc",
            "\"x\" <12a>",
            "<>",
            "a <1",
            "x\n<1>",
            "\"a\"b\" <1>",
            "\"a, b\" <1>",
            "\"${x}\" <1>",
        ] {
            assert!(parse_callerid(bad).is_err(), "{bad:?}");
        }
        let c = Config::from_raw(&raw(&[
            (
                "1000",
                &[
                    ("type", "device"),
                    ("emergency_callerid", "\"Desk\" <5550100>"),
                ],
            ),
            ("1001", &[("type", "device")]),
        ]))
        .unwrap()
        .config;
        assert_eq!(
            c.device("1000").unwrap().emergency_callerid.as_deref(),
            Some("\"Desk\" <5550100>")
        );
        assert_eq!(c.device("1001").unwrap().emergency_callerid, None);
        let e = errors(raw(&[(
            "1000",
            &[("type", "device"), ("emergency_callerid", "help")],
        )]));
        assert!(
            e[0].to_string()
                .contains("[1000] emergency_callerid: bad caller ID \"help\""),
            "{e:?}"
        );
    }

    #[test]
    fn queues_and_mailboxes_parse() {
        let c = Config::from_raw(&raw(&[
            (
                "general",
                &[
                    ("queues", "sales,support:2"),
                    ("queue_logout", "pause"),
                    ("queue_context", "operators"),
                ],
            ),
            ("100", &[("type", "user"), ("mailbox", "100")]),
            (
                "101",
                &[
                    ("type", "user"),
                    ("queues", "vip:1"),
                    ("mailbox", "7101@staff"),
                ],
            ),
            ("102", &[("type", "user"), ("queues", "none")]),
        ]))
        .unwrap()
        .config;
        let names = |u: &str| {
            c.queues_of(u)
                .iter()
                .map(|q| q.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(names("100"), ["sales", "support:2"]);
        assert_eq!(names("101"), ["vip:1"]);
        assert!(names("102").is_empty());
        assert!(names("nobody").is_empty());
        assert!(c.has_queues() && c.has_mailboxes());
        assert_eq!(c.general.queue_logout, QueueLogout::Pause);
        assert_eq!(c.general.queue_context, "operators");
        assert_eq!(
            c.user("100").unwrap().mailbox.as_deref(),
            Some("100@default")
        );
        assert_eq!(
            c.user("101").unwrap().mailbox.as_deref(),
            Some("7101@staff")
        );
        assert_eq!(c.user("102").unwrap().mailbox, None);
        assert!(!sample().has_queues() && !sample().has_mailboxes());
        assert_eq!(sample().general.queue_context, "deviceuser-queue");

        let e = errors(raw(&[
            (
                "general",
                &[
                    ("queues", "sa les"),
                    ("queue_logout", "drop"),
                    ("queue_context", "a@b"),
                ],
            ),
            (
                "100",
                &[("type", "user"), ("queues", "x:y"), ("mailbox", "1@2@3")],
            ),
        ]));
        let text: Vec<String> = e.iter().map(|e| e.to_string()).collect();
        assert_eq!(e.len(), 5, "{text:#?}");
        assert!(
            text[0].contains("[general] queues: queue name 'sa les'"),
            "{text:#?}"
        );
        assert!(
            text[1].contains("queue_logout: bad value \"drop\""),
            "{text:#?}"
        );
        assert!(
            text[2].contains("queue_context: bad context \"a@b\""),
            "{text:#?}"
        );
        assert!(
            text[3].contains("[100] queues: bad penalty 'y'"),
            "{text:#?}"
        );
        assert!(
            text[4].contains("[100] mailbox: bad mailbox \"1@2@3\""),
            "{text:#?}"
        );
    }

    #[test]
    fn display_of_modes() {
        assert_eq!(DeviceMode::Adhoc.to_string(), "adhoc");
        assert_eq!(DeviceMode::Fixed.to_string(), "fixed");
        assert_eq!(MultipleLogins::Replace.to_string(), "replace");
    }
}
