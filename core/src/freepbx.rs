//! Migration from FreePBX's Device & User mode: its AstDB keys (`AMPUSER/<user>/...`,
//! `DEVICE/<device>/...`) turned into a `res_deviceuser.conf` and the logins to restore.
//!
//! What FreePBX writes (its `core` module: `addDevice`, `addUser`, `delUser`; the login AGI
//! `user_login_out.agi`; the `languages` module), and so what [`import`] expects:
//! - `DEVICE/<d>/type` is `fixed` or `adhoc`; anything else allows logins, as adhoc does.
//!   `dial` is `TECH/<d>` (`PJSIP/`, `SIP/`, `IAX2/`, ...). `user` is the user logged in now
//!   or `none`; `default_user` is a user or `none`, for adhoc devices too (a logout logs the
//!   default user back in, as here). `emergency_cid` may be there (it becomes
//!   `emergency_callerid`); a description never is (it lives in FreePBX's SQL database).
//! - `AMPUSER/<u>/password` (empty: the user cannot log in), `cidname`, `cidnum`,
//!   `language`, `device` (an `&`-list; `addUser` sets it to the user's own number even when
//!   no such device exists), and many keys of other features, some deeper
//!   (`AMPUSER/<u>/recording/in/external`); other families (`CW/<u>`, `CF/<u>`) too.
//! - `delUser` removes `AMPUSER/<u>` only: other devices' `user` and `default_user` keep
//!   naming the deleted user. Such dangling references are normal and are dropped with a
//!   warning, so that the printed file loads.
//!
//! A device's own `user` key is authoritative for who is logged in where (a device holds one
//! user); the users' `device` lists are only used to warn about disagreement.
//!
//! Everything written into the configuration goes through [`text::escape`]; a value it
//! refuses is not written, with a warning. Every line of the output that is not
//! configuration is a comment, so the whole output can be installed as it is.

use std::collections::{BTreeMap, HashMap};

use crate::config::{
    dial_problem, id_problem, language_problem, parse_callerid, DeviceMode, MultipleLogins,
};
use crate::table::Snapshot;
use crate::text::{self, Place};

/// The context the printed configuration gives `hint_context`.
pub const HINT_CONTEXT: &str = "deviceuser-hints";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedDevice {
    pub id: String,
    pub mode: DeviceMode,
    /// Always set: FreePBX's, or `PJSIP/<id>` when it had none that can be used.
    pub dial: String,
    pub default_user: Option<String>,
    pub description: Option<String>,
    /// FreePBX's `emergency_cid`, as `emergency_callerid`.
    pub emergency_callerid: Option<String>,
    /// `PJSIP/<id>`, offered in a comment for a `SIP/` or `IAX2/` device.
    pub pjsip_offer: Option<String>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportedUser {
    pub id: String,
    pub fullname: Option<String>,
    pub password: Option<String>,
    pub cid_number: Option<String>,
    pub language: Option<String>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Import {
    /// Sorted by id.
    pub devices: Vec<ImportedDevice>,
    /// Sorted by id.
    pub users: Vec<ImportedUser>,
    /// FreePBX's current logins as (user, device), from `DEVICE/<d>/user`, between imported
    /// users and devices; sorted by device.
    pub logins: Vec<(String, String)>,
    /// What was dropped or changed, and why; each is one line of text.
    pub warnings: Vec<String>,
}

/// A value for a warning: quoted, escaped ([`logtext`](crate::logtext)), cut to a sane length.
fn quoted(v: &str) -> String {
    crate::logtext::quoted(&crate::config::shown(v)).to_string()
}

/// Why `id` cannot be imported as a device or user id, if it cannot.
fn id_refusal(id: &str) -> Option<String> {
    if let Some(p) = id_problem(id) {
        return Some(p);
    }
    text::escape(id, Place::SectionName)
        .err()
        .map(|e| format!("id {} {e}", quoted(id)))
}

/// Reads AstDB entries given as (key, value) with keys like `/AMPUSER/4101/password` or
/// `AMPUSER/4101/password`.
pub fn import(entries: &[(String, String)]) -> Import {
    // family -> id -> field -> value (trimmed, as FreePBX's own code trims what it reads).
    let mut raw_devices: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
    let mut raw_users: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
    for (key, value) in entries {
        let parts: Vec<&str> = key.trim_start_matches('/').split('/').collect();
        // Deeper keys (`AMPUSER/<u>/recording/in/external`) belong to other features.
        let [family, id, field] = parts.as_slice() else {
            continue;
        };
        let family = match *family {
            "DEVICE" => &mut raw_devices,
            "AMPUSER" => &mut raw_users,
            _ => continue,
        };
        family.entry(id).or_default().insert(field, value.trim());
    }
    let mut out = Import::default();
    let w = &mut out.warnings;

    for (&id, fields) in &raw_users {
        if let Some(p) = id_refusal(id) {
            w.push(format!("AMPUSER/{}: user not imported: {p}", quoted(id)));
            continue;
        }
        let mut u = ImportedUser {
            id: id.to_string(),
            ..Default::default()
        };
        let value = |field: &str, w: &mut Vec<String>| -> Option<String> {
            let v = fields.get(field).copied().filter(|v| !v.is_empty())?;
            match text::escape(v, Place::Value) {
                Ok(_) => Some(v.to_string()),
                Err(e) => {
                    w.push(format!(
                        "user {id}: {field} {} not carried over: it {e}",
                        quoted(v)
                    ));
                    None
                }
            }
        };
        u.fullname = value("cidname", w);
        u.cid_number = value("cidnum", w);
        u.language = value("language", w);
        if let Some(why) = u.language.as_deref().and_then(language_problem) {
            w.push(format!("user {id}: language not carried over: {why}"));
            u.language = None;
        }
        // A PIN is never repeated in a warning.
        let pin = fields.get("password").copied().unwrap_or("");
        let refusal = if pin.is_empty() {
            Some(format!("user {id} has no password in FreePBX"))
        } else if pin.starts_with('$') {
            Some(format!(
                "user {id}: password not carried over: it starts with '$', which res_deviceuser \
                 reads as a password hash"
            ))
        } else {
            text::escape(pin, Place::Value)
                .err()
                .map(|e| format!("user {id}: password not carried over: it {e} (value not shown)"))
        };
        match refusal {
            Some(why) => w.push(format!(
                "{why}: cannot log in from a phone until a PIN is set (admin logins and apply \
                 still work)"
            )),
            None => u.password = Some(pin.to_string()),
        }
        out.users.push(u);
    }
    let user_ids: HashMap<&str, &ImportedUser> =
        out.users.iter().map(|u| (u.id.as_str(), u)).collect();

    // Dial strings: FreePBX's where usable (first by device id when two are alike), then
    // PJSIP/<id> for the rest, unless another device already has that one too.
    let mut devices: Vec<(&str, &BTreeMap<&str, &str>, Option<String>)> = Vec::new();
    let mut taken: HashMap<String, &str> = HashMap::new();
    for (&id, fields) in &raw_devices {
        if let Some(p) = id_refusal(id) {
            w.push(format!("DEVICE/{}: device not imported: {p}", quoted(id)));
            continue;
        }
        let given = fields.get("dial").copied().unwrap_or("");
        let dial = if given.is_empty() {
            w.push(format!(
                "device {id} has no dial string in FreePBX; using PJSIP/{id}"
            ));
            None
        } else if let Err(e) = text::escape(given, Place::Value) {
            w.push(format!(
                "device {id}: dial {} {e}; using PJSIP/{id}",
                quoted(given)
            ));
            None
        } else if let Some(p) = dial_problem(id, given) {
            w.push(format!("device {id}: {p}; using PJSIP/{id}"));
            None
        } else if let Some(other) = taken.get(&given.to_ascii_lowercase()) {
            w.push(format!(
                "device {id}: dial string {} is also device {other}'s; using PJSIP/{id}",
                quoted(given)
            ));
            None
        } else {
            taken.insert(given.to_ascii_lowercase(), id);
            Some(given.to_string())
        };
        devices.push((id, fields, dial));
    }
    let mut device_users: Vec<(&str, &str)> = Vec::new();
    for (id, fields, dial) in devices {
        let dial = match dial {
            Some(d) => d,
            None => {
                let fallback = format!("PJSIP/{id}");
                if let Some(other) = taken.get(&fallback.to_ascii_lowercase()) {
                    w.push(format!(
                        "device {id} not imported: it needs dial string {fallback}, which is \
                         device {other}'s"
                    ));
                    continue;
                }
                taken.insert(fallback.to_ascii_lowercase(), id);
                fallback
            }
        };
        let tech = dial.split('/').next().unwrap_or("");
        let pjsip_offer = if tech.eq_ignore_ascii_case("SIP") {
            w.push(format!(
                "device {id}: dial {dial} needs chan_sip, which Asterisk 22 does not have; \
                 PJSIP/{id} is offered in a comment for when the phone is on PJSIP"
            ));
            Some(format!("PJSIP/{id}"))
        } else if tech.eq_ignore_ascii_case("IAX2") {
            w.push(format!(
                "device {id}: dial {dial} needs chan_iax2, which may not be loaded \
                 ('module show like iax2'); PJSIP/{id} is offered in a comment"
            ));
            Some(format!("PJSIP/{id}"))
        } else {
            None
        };
        let mut mode = match fields.get("type").copied() {
            Some(t) if t.eq_ignore_ascii_case("fixed") => DeviceMode::Fixed,
            Some(t) if t.eq_ignore_ascii_case("adhoc") => DeviceMode::Adhoc,
            Some("") | None => {
                w.push(format!(
                    "device {id} has no type in FreePBX; imported as adhoc (FreePBX allows \
                     logins on it)"
                ));
                DeviceMode::Adhoc
            }
            Some(t) => {
                w.push(format!(
                    "device {id}: type {} is neither fixed nor adhoc; imported as adhoc \
                     (FreePBX allows logins on it)",
                    quoted(t)
                ));
                DeviceMode::Adhoc
            }
        };
        let default_user = match fields.get("default_user").copied() {
            None | Some("") | Some("none") => None,
            Some(u) if user_ids.contains_key(u) => Some(u.to_string()),
            Some(u) => {
                w.push(format!(
                    "device {id}: default_user {} is not a user (left behind when a user is \
                     deleted in FreePBX); dropped",
                    quoted(u)
                ));
                None
            }
        };
        if mode == DeviceMode::Fixed && default_user.is_none() {
            w.push(format!(
                "device {id} is fixed in FreePBX but has no valid default user; imported as adhoc"
            ));
            mode = DeviceMode::Adhoc;
        }
        let description = match fields.get("description").copied() {
            None | Some("") => None,
            Some(v) => match text::escape(v, Place::Value) {
                Ok(_) => Some(v.to_string()),
                Err(e) => {
                    w.push(format!(
                        "device {id}: description {} not carried over: it {e}",
                        quoted(v)
                    ));
                    None
                }
            },
        };
        let emergency_callerid = match fields.get("emergency_cid").copied() {
            None | Some("") => None,
            Some(v) => match (parse_callerid(v), text::escape(v, Place::Value)) {
                (Ok(_), Ok(_)) => Some(v.trim().to_string()),
                (Err(e), _) => {
                    w.push(format!(
                        "device {id}: emergency_cid {} not carried over: {e}",
                        quoted(v)
                    ));
                    None
                }
                (_, Err(e)) => {
                    w.push(format!(
                        "device {id}: emergency_cid {} not carried over: it {e}",
                        quoted(v)
                    ));
                    None
                }
            },
        };
        let user = fields.get("user").copied().unwrap_or("");
        if !user.is_empty() && user != "none" {
            device_users.push((id, user));
        }
        out.devices.push(ImportedDevice {
            id: id.to_string(),
            mode,
            dial,
            default_user,
            description,
            emergency_callerid,
            pjsip_offer,
        });
    }

    let fixed_to: HashMap<&str, &str> = out
        .devices
        .iter()
        .filter(|d| d.mode == DeviceMode::Fixed)
        .filter_map(|d| Some((d.id.as_str(), d.default_user.as_deref()?)))
        .collect();
    for (device, user) in device_users {
        if !user_ids.contains_key(user) {
            w.push(format!(
                "device {device}: DEVICE/{device}/user names {}, who is not a user (deleted in \
                 FreePBX?); that login is not carried over",
                quoted(user)
            ));
            continue;
        }
        if let Some(owner) = fixed_to.get(device).filter(|o| **o != user) {
            w.push(format!(
                "device {device} is fixed to user {owner}, but FreePBX has {user} on it; the \
                 device keeps {owner}"
            ));
            continue;
        }
        let listed = raw_users
            .get(user)
            .and_then(|f| f.get("device"))
            .is_some_and(|l| l.split('&').any(|d| d.trim() == device));
        if !listed {
            w.push(format!(
                "AMPUSER/{user}/device does not list device {device} (DEVICE/{device}/user says \
                 {user}); using the device's key"
            ));
        }
        out.logins.push((user.to_string(), device.to_string()));
    }
    out
}

/// What becomes of one of FreePBX's logins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginStep {
    /// The user is on the device already: a fixed device's default user, an adhoc device's
    /// default user, or logged in before.
    InPlace,
    /// `apply` would log the user in.
    ToApply,
    /// Logged in by `apply`.
    Applied,
    /// Not applied, and why.
    Skipped(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedLogin {
    pub user: String,
    pub device: String,
    pub step: LoginStep,
}

/// For each of FreePBX's logins, whether it is in place in `now` (the running configuration
/// and bindings), to apply, or to skip and why. With `multiple_logins` `no` or `replace`, a
/// user FreePBX had on several adhoc devices keeps one (the one in place, else the first):
/// logging in on the next would fail, or undo the one before.
pub fn plan_logins(import: &Import, now: &Snapshot) -> Vec<PlannedLogin> {
    let config = now.config();
    let mut plan: Vec<PlannedLogin> = import
        .logins
        .iter()
        .map(|(user, device)| {
            let step = match (config.user(user), config.device(device)) {
                (None, _) => LoginStep::Skipped("no such user in res_deviceuser.conf".into()),
                (_, None) => LoginStep::Skipped("no such device in res_deviceuser.conf".into()),
                _ if now.user_on(device).is_some_and(|b| b.user == user.as_str()) => {
                    LoginStep::InPlace
                }
                (_, Some(d)) if d.mode == DeviceMode::Fixed => LoginStep::Skipped(format!(
                    "device is fixed to its default user {}",
                    d.default_user.as_deref().unwrap_or("-")
                )),
                _ => LoginStep::ToApply,
            };
            PlannedLogin {
                user: user.clone(),
                device: device.clone(),
                step,
            }
        })
        .collect();
    let single = config.general.multiple_logins;
    if single != MultipleLogins::Yes {
        let adhoc = |p: &PlannedLogin| {
            config
                .device(&p.device)
                .is_some_and(|d| d.mode == DeviceMode::Adhoc)
        };
        let mut keep: HashMap<String, String> = HashMap::new();
        for p in plan
            .iter()
            .filter(|p| adhoc(p) && p.step == LoginStep::InPlace)
        {
            keep.entry(p.user.clone())
                .or_insert_with(|| p.device.clone());
        }
        for p in plan.iter_mut() {
            if p.step != LoginStep::ToApply || !adhoc(p) {
                continue;
            }
            match keep.get(&p.user) {
                Some(kept) => {
                    p.step = LoginStep::Skipped(format!(
                        "multiple_logins = {single} keeps {} on one device ({kept})",
                        p.user
                    ))
                }
                None => {
                    keep.insert(p.user.clone(), p.device.clone());
                }
            }
        }
    }
    plan
}

/// Carries out the planned logins with `login(user, device)`, which answers whether it
/// changed anything, or the error.
pub fn apply_logins(
    plan: &mut [PlannedLogin],
    mut login: impl FnMut(&str, &str) -> Result<bool, String>,
) {
    for p in plan.iter_mut().filter(|p| p.step == LoginStep::ToApply) {
        p.step = match login(&p.user, &p.device) {
            Ok(true) => LoginStep::Applied,
            Ok(false) => LoginStep::InPlace,
            Err(e) => LoginStep::Skipped(e),
        };
    }
}

/// Builds the output text: configuration lines, and comments that cannot break out of
/// their line.
struct Out(String);

impl Out {
    fn comment(&mut self, text: &str) {
        // Warnings quote foreign text already; this keeps anything that slipped through on
        // the comment's line.
        self.0 += "; ";
        for c in text.chars() {
            if c.is_control() {
                self.0.extend(c.escape_debug());
            } else {
                self.0.push(c);
            }
        }
        self.0.push('\n');
    }

    fn blank(&mut self) {
        self.0.push('\n');
    }

    /// A `[name]` header; false (and a comment) when the name cannot be written, so that the
    /// section's keys are left out too rather than added to the previous section.
    fn section(&mut self, name: &str) -> bool {
        match text::escape(name, Place::SectionName) {
            Ok(n) => {
                self.0 += &format!("[{n}]\n");
                true
            }
            Err(e) => {
                self.comment(&format!("section {} left out: its name {e}", quoted(name)));
                false
            }
        }
    }

    fn set(&mut self, key: &str, value: &str) {
        match text::escape(value, Place::Value) {
            Ok(v) => self.0 += &format!("{key} = {v}\n"),
            Err(e) => self.comment(&format!("{key} left out: its value {e}")),
        }
    }
}

/// The whole output of `deviceuser import freepbx [apply]`: the configuration, FreePBX's
/// logins with what `plan` (after [`apply_logins`] when `applied`) says of each, the
/// warnings, and the counts. Every line that is not configuration is a comment.
pub fn render_output(import: &Import, plan: &[PlannedLogin], applied: bool) -> String {
    let mut o = Out(String::new());
    o.comment(
        "res_deviceuser.conf from FreePBX's Device & User data in AstDB (AMPUSER/, DEVICE/).",
    );
    o.comment("Passwords are written as FreePBX stored them. Warnings are at the end.");
    o.blank();
    o.section("general");
    o.comment("FreePBX users expect a hint (BLF) for every user: the module keeps");
    o.comment("exten => <user>,hint,DeviceUser:<user> for each user in this context. Let the");
    o.comment(&format!(
        "phones subscribe there (include => {HINT_CONTEXT} in their context), or name theirs."
    ));
    o.set("hint_context", HINT_CONTEXT);
    o.comment("FreePBX lets a user be logged in on several devices at once.");
    o.set("multiple_logins", "yes");
    for d in &import.devices {
        o.blank();
        if !o.section(&d.id) {
            continue;
        }
        o.set("type", "device");
        o.set("mode", &d.mode.to_string());
        o.set("dial", &d.dial);
        if let Some(offer) = &d.pjsip_offer {
            o.comment(&format!("once the phone is on PJSIP: dial = {offer}"));
        }
        if let Some(v) = &d.description {
            o.set("description", v);
        }
        if let Some(v) = &d.default_user {
            o.set("default_user", v);
        }
        if let Some(v) = &d.emergency_callerid {
            o.set("emergency_callerid", v);
        }
    }
    for u in &import.users {
        o.blank();
        if !o.section(&u.id) {
            continue;
        }
        o.set("type", "user");
        for (key, value) in [
            ("password", &u.password),
            ("fullname", &u.fullname),
            ("cid_number", &u.cid_number),
            ("language", &u.language),
        ] {
            if let Some(v) = value {
                o.set(key, v);
            }
        }
    }
    o.blank();
    o.comment("FreePBX's current logins, against the running res_deviceuser.conf:");
    for p in plan {
        let (user, device) = (&p.user, &p.device);
        o.comment(&match &p.step {
            LoginStep::InPlace => format!("already in place: {user} on {device}"),
            LoginStep::ToApply => format!("to apply: {user} on {device}"),
            LoginStep::Applied => format!("applied: {user} logged in on {device}"),
            LoginStep::Skipped(why) => format!("skipped: {user} on {device}: {why}"),
        });
    }
    if !import.warnings.is_empty() {
        o.blank();
        o.comment(&format!("{} warning(s):", import.warnings.len()));
        for w in &import.warnings {
            o.comment(&format!("warning: {w}"));
        }
    }
    o.blank();
    if !applied {
        o.comment(
            "nothing written: install the configuration above, reload, then add 'apply' to \
             log these users in",
        );
    }
    o.comment(&format!(
        "{} devices, {} users, {} logins found",
        import.devices.len(),
        import.users.len(),
        import.logins.len()
    ));
    o.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::table::{BindingTable, LoginMode};
    use proptest::prelude::*;

    fn e(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    /// An AstDB as FreePBX's own code leaves it: users added with `addUser` (every key it
    /// writes, deeper ones included), devices with `addDevice`, logins by the login AGI,
    /// user 2001 deleted with `delUser` (its `AMPUSER/2001` tree gone, other devices still
    /// naming it), and keys of other families.
    fn freepbx_layout() -> Vec<(String, String)> {
        let mut v = Vec::new();
        for (u, pin, name, devices) in [
            ("4101", "1234", "Operator 4101", "1000"),
            ("4102", "2345", "Иван Петров", "1001&2010"),
            ("2010", "2468", "Reception", "2010"),
            ("4105", "", "Nobody", "4105"),
        ] {
            v.push(e(&format!("/AMPUSER/{u}/password"), pin));
            v.push(e(&format!("/AMPUSER/{u}/cidname"), name));
            v.push(e(&format!("/AMPUSER/{u}/cidnum"), u));
            v.push(e(&format!("/AMPUSER/{u}/device"), devices));
            v.push(e(&format!("/AMPUSER/{u}/ringtimer"), "0"));
            v.push(e(&format!("/AMPUSER/{u}/voicemail"), "default"));
            v.push(e(
                &format!("/AMPUSER/{u}/recording/in/external"),
                "dontcare",
            ));
            v.push(e(&format!("/AMPUSER/{u}/followme/grplist"), u));
            v.push(e(&format!("/CW/{u}"), "ENABLED"));
        }
        v.push(e("/AMPUSER/4102/language", "ru"));
        v.push(e("/CF/4101", "5551234"));
        for (d, ty, user, default) in [
            ("1000", "adhoc", "4101", "none"),
            ("1001", "adhoc", "4102", "2001"),
            ("1002", "adhoc", "none", "none"),
            ("2010", "fixed", "2010", "2010"),
            ("2011", "fixed", "2001", "2001"),
        ] {
            v.push(e(&format!("/DEVICE/{d}/type"), ty));
            v.push(e(&format!("/DEVICE/{d}/dial"), &format!("PJSIP/{d}")));
            v.push(e(&format!("/DEVICE/{d}/user"), user));
            v.push(e(&format!("/DEVICE/{d}/default_user"), default));
        }
        v.push(e("/DEVICE/1000/emergency_cid", "\"Main office\" <5550100>"));
        v
    }

    /// The output as Asterisk's config engine reads it, validated as the module does.
    fn load(text: &str) -> Config {
        let raw = text::parse("res_deviceuser.conf", text)
            .unwrap_or_else(|e| panic!("output does not parse: {e}\n{text}"));
        Config::from_raw(&raw)
            .unwrap_or_else(|e| panic!("output is refused: {e:?}\n{text}"))
            .config
    }

    fn output(i: &Import) -> String {
        render_output(i, &[], false)
    }

    fn warned(i: &Import, needle: &str) -> bool {
        i.warnings.iter().any(|w| w.contains(needle))
    }

    #[test]
    fn a_language_the_config_would_refuse_is_left_out_with_a_warning() {
        let i = import(&[
            e("AMPUSER/4101/password", "1234"),
            e("AMPUSER/4101/language", "pt_BR"),
            e("AMPUSER/4102/password", "2345"),
            e("AMPUSER/4102/language", "xx yy"),
        ]);
        let c = load(&output(&i));
        assert_eq!(c.user("4101").unwrap().language.as_deref(), Some("pt_BR"));
        assert_eq!(c.user("4102").unwrap().language, None);
        assert!(
            warned(
                &i,
                r#"user 4102: language not carried over: "xx yy" is not a language tag"#
            ),
            "{:#?}",
            i.warnings
        );
    }

    #[test]
    fn freepbx_layout_comes_across() {
        let i = import(&freepbx_layout());
        let ids: Vec<&str> = i.devices.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["1000", "1001", "1002", "2010", "2011"]);
        let ids: Vec<&str> = i.users.iter().map(|u| u.id.as_str()).collect();
        assert_eq!(
            ids,
            ["2010", "4101", "4102", "4105"],
            "deeper keys make no user"
        );
        let c = load(&output(&i));
        assert_eq!(c.device("2010").unwrap().mode, DeviceMode::Fixed);
        assert_eq!(
            c.device("2010").unwrap().default_user.as_deref(),
            Some("2010")
        );
        let ivan = c.user("4102").unwrap();
        assert_eq!(ivan.fullname, "Иван Петров");
        assert_eq!(ivan.language.as_deref(), Some("ru"));
        assert!(c.user("4101").unwrap().password_matches("1234"));
        assert_eq!(c.user("4105").unwrap().password, None);
        assert_eq!(c.general.hint_context.as_deref(), Some(HINT_CONTEXT));
        assert_eq!(
            i.logins,
            [
                ("4101".to_string(), "1000".to_string()),
                ("4102".to_string(), "1001".to_string()),
                ("2010".to_string(), "2010".to_string()),
            ]
        );
        for needle in [
            "device 1001: default_user \"2001\" is not a user",
            "device 2011: default_user \"2001\" is not a user",
            "device 2011 is fixed in FreePBX but has no valid default user; imported as adhoc",
            "device 2011: DEVICE/2011/user names \"2001\", who is not a user",
            "user 4105 has no password in FreePBX: cannot log in from a phone",
        ] {
            assert!(
                warned(&i, needle),
                "no warning {needle:?} in {:#?}",
                i.warnings
            );
        }
        assert_eq!(i.warnings.len(), 5, "{:#?}", i.warnings);
        assert_eq!(
            c.device("1000").unwrap().emergency_callerid.as_deref(),
            Some("\"Main office\" <5550100>"),
            "emergency_cid carried over"
        );
        assert_eq!(c.device("2011").unwrap().mode, DeviceMode::Adhoc);
        assert_eq!(c.device("1001").unwrap().default_user, None);
    }

    #[test]
    fn default_user_none_and_empty_mean_no_default_user() {
        let i = import(&[
            e("DEVICE/1000/type", "adhoc"),
            e("DEVICE/1000/default_user", "none"),
            e("DEVICE/1001/type", "adhoc"),
            e("DEVICE/1001/default_user", ""),
            e("DEVICE/1000/dial", "PJSIP/1000"),
            e("DEVICE/1001/dial", "PJSIP/1001"),
        ]);
        assert!(i.devices.iter().all(|d| d.default_user.is_none()));
        assert!(i.warnings.is_empty(), "{:#?}", i.warnings);
    }

    /// Text carrying each character the issue of escaping is about, at the start, inside
    /// and at the end of a value.
    const HOSTILE: [&str; 5] = ["\n", ";", "[", "=", "\0"];

    /// Every field the importer writes, fed each hostile character: the value either reads
    /// back exactly (through the engine's rules and the config check), or is refused with a
    /// warning naming its field; the output always loads, with no section or key of its own
    /// making.
    #[test]
    fn every_written_field_round_trips_or_is_refused() {
        // (field key in AstDB, where it lands) for devices and users.
        let device_fields = ["dial", "description", "default_user", "emergency_cid"];
        let user_fields = ["password", "cidname", "cidnum", "language"];
        for bad in HOSTILE {
            for shape in ["{}x", "x{}y", "x{}"] {
                let v = shape.replace("{}", bad);
                for field in device_fields {
                    let given = match field {
                        "dial" => format!("PJSIP/{v}"),
                        _ => v.clone(),
                    };
                    let mut entries = vec![
                        e("DEVICE/1000/type", "adhoc"),
                        e(&format!("DEVICE/1000/{field}"), &given),
                        e("AMPUSER/4101/password", "1234"),
                    ];
                    if field == "default_user" {
                        // A user with that very id, if it can be one.
                        entries.push(e(&format!("AMPUSER/{v}/password"), "1"));
                    }
                    let i = import(&entries);
                    let c = load(&output(&i));
                    let got = c.device("1000").map(|d| match field {
                        "dial" => d.dial.to_string(),
                        "description" => d.description.to_string(),
                        "emergency_cid" => {
                            d.emergency_callerid.as_deref().unwrap_or("").to_string()
                        }
                        _ => d.default_user.as_deref().unwrap_or("").to_string(),
                    });
                    let kept = got.as_deref() == Some(given.trim());
                    assert!(
                        kept || i.warnings.iter().any(|w| w.contains(field)),
                        "device {field} = {given:?}: neither kept nor warned: {:#?}",
                        i.warnings
                    );
                    assert!(c.devices.len() == 1 && c.users.len() <= 2, "{c:?}");
                }
                for field in user_fields {
                    let i = import(&[
                        e("AMPUSER/4101/password", "1234"),
                        e(&format!("AMPUSER/4101/{field}"), &v),
                    ]);
                    let c = load(&output(&i));
                    let u = c.user("4101").expect("user 4101 is imported");
                    let kept = match field {
                        "password" => u.password_matches(v.trim()),
                        "cidname" => u.fullname == v.trim(),
                        "cidnum" => u.cid_number == v.trim(),
                        _ => u.language.as_deref() == Some(v.trim()),
                    };
                    assert!(
                        kept || i.warnings.iter().any(|w| w.contains(field)),
                        "user {field} = {v:?}: neither kept nor warned: {:#?}",
                        i.warnings
                    );
                    assert!(c.users.len() == 1 && c.devices.is_empty(), "{c:?}");
                }
                // Ids: a section of exactly that name, or none and a warning.
                for family in ["DEVICE", "AMPUSER"] {
                    let i = import(&[e(&format!("{family}/{v}/type"), "adhoc")]);
                    let c = load(&output(&i));
                    let n = c.devices.len() + c.users.len();
                    let exact = c.device(&v).is_some() || c.user(&v).is_some();
                    assert!(
                        (n == 1 && exact) || (n == 0 && !i.warnings.is_empty()),
                        "{family} id {v:?}: {c:?} {:#?}",
                        i.warnings
                    );
                }
            }
        }
    }

    const INJECTION: &str = "2001\n[6666]\ntype = user\npassword = 0000";

    /// A value that tries to add a user with a known PIN, in every field the importer reads.
    #[test]
    fn injection_creates_no_user() {
        let mut entries = vec![
            e("DEVICE/1000/type", "fixed"),
            e("AMPUSER/2001/password", "2468"),
        ];
        for field in [
            "dial",
            "description",
            "default_user",
            "user",
            "emergency_cid",
            "type",
        ] {
            entries.push(e(&format!("DEVICE/1000/{field}"), INJECTION));
        }
        for field in ["password", "cidname", "cidnum", "language", "device"] {
            entries.push(e(&format!("AMPUSER/4101/{field}"), INJECTION));
        }
        let i = import(&entries);
        let text = output(&i);
        let c = load(&text);
        assert!(c.user("6666").is_none(), "{text}");
        assert!(
            c.users.values().all(|u| !u.password_matches("0000")),
            "{text}"
        );
        assert!(!text.lines().any(|l| l.trim() == "[6666]"), "{text}");
        assert!(
            warned(&i, "device 1000: default_user \"2001\\n[6666]"),
            "{:#?}",
            i.warnings
        );
        assert!(warned(
            &i,
            "user 4101: password not carried over: it contains a line break (value not shown)"
        ));
        assert!(!i
            .warnings
            .iter()
            .any(|w| w.contains("0000") && w.contains("password:")));
        assert_eq!(c.device("1000").unwrap().mode, DeviceMode::Adhoc);
    }

    #[test]
    fn dial_strings_that_cannot_work_are_replaced() {
        let i = import(&[
            e("DEVICE/1007/type", "adhoc"),
            e("DEVICE/1007/dial", "PJSIP/10 07"),
            e("DEVICE/1008/type", "adhoc"),
            e("DEVICE/1008/dial", ""),
            e("DEVICE/1009/type", "adhoc"),
            e("DEVICE/1009/dial", "pjsip/1007"),
            e("DEVICE/1010/type", "adhoc"),
            e("DEVICE/1010/dial", "PJSIP/1007"),
            e("DEVICE/1011/type", "adhoc"),
            e("DEVICE/1011/dial", "PJSIP/a&PJSIP/b"),
        ]);
        assert!(
            warned(
                &i,
                r#"device 1007: dial string "PJSIP/10 07" contains a space (expected Tech/resource, e.g. PJSIP/1007); using PJSIP/1007"#
            ),
            "{:#?}",
            i.warnings
        );
        assert!(warned(
            &i,
            "device 1008 has no dial string in FreePBX; using PJSIP/1008"
        ));
        assert!(warned(
            &i,
            r#"device 1011: dial string "PJSIP/a&PJSIP/b" must name a single device"#
        ));
        // 1009 took PJSIP/1007 (ASCII case aside) first: 1007 has no dial left; 1010's is 1009's.
        assert!(warned(
            &i,
            "device 1007 not imported: it needs dial string PJSIP/1007, which is device 1009's"
        ));
        assert!(warned(
            &i,
            r#"device 1010: dial string "PJSIP/1007" is also device 1009's; using PJSIP/1010"#
        ));
        let c = load(&output(&i));
        assert_eq!(c.device("1008").unwrap().dial, "PJSIP/1008");
        assert_eq!(c.device("1010").unwrap().dial, "PJSIP/1010");
        assert_eq!(c.device("1011").unwrap().dial, "PJSIP/1011");
        assert!(c.device("1007").is_none());
    }

    #[test]
    fn sip_and_iax2_devices_are_warned_and_offered_pjsip() {
        let i = import(&[
            e("DEVICE/1003/type", "adhoc"),
            e("DEVICE/1003/dial", "SIP/1003"),
            e("DEVICE/1004/type", "adhoc"),
            e("DEVICE/1004/dial", "IAX2/1004"),
        ]);
        assert!(warned(
            &i,
            "device 1003: dial SIP/1003 needs chan_sip, which Asterisk 22 does not have"
        ));
        assert!(warned(
            &i,
            "device 1004: dial IAX2/1004 needs chan_iax2, which may not be loaded"
        ));
        let text = output(&i);
        assert!(
            text.contains("dial = SIP/1003\n; once the phone is on PJSIP: dial = PJSIP/1003\n"),
            "{text}"
        );
        assert!(
            text.contains("dial = IAX2/1004\n; once the phone is on PJSIP: dial = PJSIP/1004\n")
        );
        assert_eq!(load(&text).device("1003").unwrap().dial, "SIP/1003");
    }

    #[test]
    fn empty_or_unknown_types_become_adhoc_with_a_note() {
        let i = import(&[
            e("DEVICE/1000/type", ""),
            e("DEVICE/1001/type", "phone"),
            e("DEVICE/1002/dial", "PJSIP/1002"),
            e("DEVICE/1003/type", "FIXED"),
            e("DEVICE/1003/default_user", "4101"),
            e("AMPUSER/4101/password", "1"),
        ]);
        assert!(warned(
            &i,
            "device 1000 has no type in FreePBX; imported as adhoc"
        ));
        assert!(warned(
            &i,
            "device 1001: type \"phone\" is neither fixed nor adhoc; imported as adhoc"
        ));
        assert!(warned(
            &i,
            "device 1002 has no type in FreePBX; imported as adhoc"
        ));
        let c = load(&output(&i));
        assert_eq!(c.device("1001").unwrap().mode, DeviceMode::Adhoc);
        assert_eq!(c.device("1003").unwrap().mode, DeviceMode::Fixed);
    }

    #[test]
    fn passwords_that_would_read_as_hashes_are_refused_unseen() {
        let i = import(&[e("AMPUSER/4101/password", "$1$secret")]);
        assert!(warned(
            &i,
            "user 4101: password not carried over: it starts with '$'"
        ));
        assert!(!i.warnings.iter().any(|w| w.contains("secret")));
        assert_eq!(load(&output(&i)).user("4101").unwrap().password, None);
    }

    #[test]
    fn every_line_is_configuration_or_a_comment() {
        let i = import(&freepbx_layout());
        let c = load(&output(&i));
        let table = BindingTable::new(c, 0);
        let mut plan = plan_logins(&i, &table.snapshot());
        for applied in [false, true] {
            if applied {
                apply_logins(&mut plan, |_, _| Err("refused\n[6666]".into()));
            }
            let text = render_output(&i, &plan, applied);
            text::parse("f", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            for line in text.lines() {
                let ok = line.is_empty()
                    || (line.starts_with("; ") && !line.starts_with(";--"))
                    || (line.starts_with('[') && line.ends_with(']'))
                    || line.split_once(" = ").is_some_and(|(k, _)| {
                        k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                    });
                assert!(ok, "line {line:?} of\n{text}");
            }
            assert!(
                text.ends_with("; 5 devices, 4 users, 3 logins found\n"),
                "{text}"
            );
        }
    }

    #[test]
    fn hint_context_is_set_and_explained() {
        let text = output(&import(&[]));
        let at = text.find("hint_context = deviceuser-hints\n").expect(&text);
        assert!(text[..at].contains("; FreePBX users expect a hint (BLF) for every user"));
    }

    fn planned(plan: &[PlannedLogin]) -> Vec<(&str, &str, LoginStep)> {
        plan.iter()
            .map(|p| (p.user.as_str(), p.device.as_str(), p.step.clone()))
            .collect()
    }

    /// The printed configuration installed, then `apply`: every login FreePBX had is there,
    /// the fixed device's default user "already in place"; a second `apply` changes nothing.
    #[test]
    fn apply_restores_every_login_freepbx_had() {
        let i = import(&freepbx_layout());
        let table = BindingTable::new(load(&output(&i)), 0);
        let mut plan = plan_logins(&i, &table.snapshot());
        assert_eq!(
            planned(&plan),
            [
                ("4101", "1000", LoginStep::ToApply),
                ("4102", "1001", LoginStep::ToApply),
                ("2010", "2010", LoginStep::InPlace),
            ]
        );
        let login = |u: &str, d: &str| {
            table
                .login(u, d, LoginMode::Admin, 1, |_| {})
                .map(|c| !c.is_empty())
                .map_err(|e| e.to_string())
        };
        apply_logins(&mut plan, login);
        assert_eq!(
            planned(&plan),
            [
                ("4101", "1000", LoginStep::Applied),
                ("4102", "1001", LoginStep::Applied),
                ("2010", "2010", LoginStep::InPlace),
            ]
        );
        let text = render_output(&i, &plan, true);
        assert!(
            text.contains("; applied: 4101 logged in on 1000\n"),
            "{text}"
        );
        assert!(
            text.contains("; already in place: 2010 on 2010\n"),
            "{text}"
        );
        assert!(!text.contains("nothing written"));
        let snap = table.snapshot();
        let mut now: Vec<(String, String)> = snap
            .bindings()
            .iter()
            .map(|b| (b.user.to_string(), b.device.to_string()))
            .collect();
        let mut had = i.logins.clone();
        now.sort();
        had.sort();
        assert_eq!(now, had);
        let again = plan_logins(&i, &snap);
        assert!(
            again.iter().all(|p| p.step == LoginStep::InPlace),
            "{again:?}"
        );
    }

    #[test]
    fn logins_the_configuration_cannot_take_are_skipped_with_the_reason() {
        let i = import(&freepbx_layout());
        // An older configuration: no device 1001, device 1000 fixed to 2010, one login each.
        let conf = "[general]\nmultiple_logins = no\n\
                    [1000]\ntype = device\nmode = fixed\ndefault_user = 2010\n\
                    [1002]\ntype = device\n[2010]\ntype = device\nmode = fixed\ndefault_user = 2010\n\
                    [2010]\ntype = user\n[4101]\ntype = user\n";
        let table = BindingTable::new(load(conf), 0);
        let plan = plan_logins(&i, &table.snapshot());
        assert_eq!(
            planned(&plan),
            [
                (
                    "4101",
                    "1000",
                    LoginStep::Skipped("device is fixed to its default user 2010".into())
                ),
                (
                    "4102",
                    "1001",
                    LoginStep::Skipped("no such user in res_deviceuser.conf".into())
                ),
                ("2010", "2010", LoginStep::InPlace),
            ]
        );
        let text = render_output(&i, &plan, false);
        assert!(
            text.contains("; skipped: 4101 on 1000: device is fixed to its default user 2010\n")
        );
        assert!(text.contains("; nothing written: install the configuration above"));
    }

    #[test]
    fn one_device_per_user_when_multiple_logins_is_not_yes() {
        let i = import(&[
            e("AMPUSER/4101/password", "1"),
            e("AMPUSER/4101/device", "1000&1001&1002"),
            e("DEVICE/1000/user", "4101"),
            e("DEVICE/1001/user", "4101"),
            e("DEVICE/1002/user", "4101"),
        ]);
        let conf = |m: &str| {
            format!(
                "[general]\nmultiple_logins = {m}\n[1000]\ntype = device\n[1001]\ntype = device\n\
                 [1002]\ntype = device\n[4101]\ntype = user\n"
            )
        };
        let table = BindingTable::new(load(&conf("yes")), 0);
        let plan = plan_logins(&i, &table.snapshot());
        assert!(plan.iter().all(|p| p.step == LoginStep::ToApply));
        for m in ["no", "replace"] {
            let table = BindingTable::new(load(&conf(m)), 0);
            table
                .login("4101", "1001", LoginMode::Admin, 0, |_| {})
                .unwrap();
            let plan = plan_logins(&i, &table.snapshot());
            let skip = LoginStep::Skipped(format!(
                "multiple_logins = {m} keeps 4101 on one device (1001)"
            ));
            assert_eq!(
                planned(&plan),
                [
                    ("4101", "1000", skip.clone()),
                    ("4101", "1001", LoginStep::InPlace),
                    ("4101", "1002", skip),
                ]
            );
        }
    }

    #[test]
    fn output_of_a_small_import() {
        let i = import(&[
            e("AMPUSER/4101/password", "12;34"),
            e("AMPUSER/4101/cidname", "Smith; Reception"),
            e("AMPUSER/4101/device", "1000"),
            e("DEVICE/1000/type", "adhoc"),
            e("DEVICE/1000/dial", "SIP/1000"),
            e("DEVICE/1000/user", "4101"),
        ]);
        let plan = plan_logins(&i, &BindingTable::new(load(&output(&i)), 0).snapshot());
        let text = render_output(&i, &plan, false);
        assert_eq!(
            text,
            "\
; res_deviceuser.conf from FreePBX's Device & User data in AstDB (AMPUSER/, DEVICE/).
; Passwords are written as FreePBX stored them. Warnings are at the end.

[general]
; FreePBX users expect a hint (BLF) for every user: the module keeps
; exten => <user>,hint,DeviceUser:<user> for each user in this context. Let the
; phones subscribe there (include => deviceuser-hints in their context), or name theirs.
hint_context = deviceuser-hints
; FreePBX lets a user be logged in on several devices at once.
multiple_logins = yes

[1000]
type = device
mode = adhoc
dial = SIP/1000
; once the phone is on PJSIP: dial = PJSIP/1000

[4101]
type = user
password = 12\\;34
fullname = Smith\\; Reception

; FreePBX's current logins, against the running res_deviceuser.conf:
; to apply: 4101 on 1000

; 1 warning(s):
; warning: device 1000: dial SIP/1000 needs chan_sip, which Asterisk 22 does not have; PJSIP/1000 is offered in a comment for when the phone is on PJSIP

; nothing written: install the configuration above, reload, then add 'apply' to log these users in
; 1 devices, 1 users, 1 logins found
"
        );
        let c = load(&text);
        assert!(c.user("4101").unwrap().password_matches("12;34"));
        assert_eq!(c.user("4101").unwrap().fullname, "Smith; Reception");
    }

    fn entry() -> impl Strategy<Value = (String, String)> {
        let id = prop_oneof![
            Just("1000".to_string()),
            Just("4101".to_string()),
            Just("2001".to_string()),
            "[0-9a-z;\\[\\]=/ \n\u{0}é]{0,4}",
        ];
        let field = prop_oneof![
            Just("type"),
            Just("dial"),
            Just("user"),
            Just("default_user"),
            Just("description"),
            Just("emergency_cid"),
            Just("password"),
            Just("cidname"),
            Just("cidnum"),
            Just("language"),
            Just("device"),
        ];
        let value = prop_oneof![
            Just("fixed".to_string()),
            Just("adhoc".to_string()),
            Just("none".to_string()),
            Just("1000".to_string()),
            Just("4101".to_string()),
            Just("PJSIP/1000".to_string()),
            Just(INJECTION.to_string()),
            ".{0,12}",
        ];
        (
            prop_oneof![Just("DEVICE"), Just("AMPUSER")],
            id,
            field,
            value,
        )
            .prop_map(|(f, id, field, v)| (format!("/{f}/{id}/{field}"), v))
    }

    proptest! {
        /// Whatever AstDB holds, the output loads (all of it, as printed), holds exactly the
        /// imported devices and users with their values, and plans only imported logins.
        #[test]
        fn any_astdb_gives_a_loadable_output(entries in proptest::collection::vec(entry(), 0..24)) {
            let i = import(&entries);
            let c = load(&output(&i));
            prop_assert_eq!(c.devices.len(), i.devices.len());
            prop_assert_eq!(c.users.len(), i.users.len());
            for d in &i.devices {
                let got = c.device(&d.id).expect("imported device");
                prop_assert_eq!(got.mode, d.mode);
                prop_assert_eq!(got.dial.as_str(), d.dial.as_str());
                prop_assert_eq!(got.default_user.as_deref(), d.default_user.as_deref());
            }
            for u in &i.users {
                let got = c.user(&u.id).expect("imported user");
                prop_assert_eq!(got.password.as_deref(), u.password.as_deref());
                prop_assert_eq!(got.fullname.as_str(), u.fullname.as_deref().unwrap_or(&u.id));
                prop_assert_eq!(got.language.as_deref(), u.language.as_deref());
            }
            prop_assert!(c.user("6666").is_none());
            let table = BindingTable::new(c, 0);
            let plan = plan_logins(&i, &table.snapshot());
            prop_assert!(plan.iter().all(|p| matches!(p.step, LoginStep::ToApply | LoginStep::InPlace)));
            text::parse("f", &render_output(&i, &plan, false)).expect("parses");
        }
    }
}
