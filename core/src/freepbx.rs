//! Migration from FreePBX's Device & User mode: its AstDB keys (`AMPUSER/<user>/...`,
//! `DEVICE/<device>/...`) turned into `res_deviceuser.conf` sections and current bindings.
//!
//! FreePBX keeps a user's devices as an `&`-list in `AMPUSER/<u>/device` and each device's
//! user in `DEVICE/<d>/user`; the device's key is authoritative here (a device holds one
//! user), and the user lists are only used to warn about disagreement.

use std::collections::BTreeMap;

use crate::config::id_problem;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportedDevice {
    pub id: String,
    pub fixed: bool,
    pub dial: Option<String>,
    pub default_user: Option<String>,
    pub description: Option<String>,
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
    pub devices: Vec<ImportedDevice>,
    pub users: Vec<ImportedUser>,
    /// (user, device) logged in now, from `DEVICE/<d>/user`.
    pub bindings: Vec<(String, String)>,
    pub warnings: Vec<String>,
}

/// Reads AstDB entries given as (key, value) with keys like `/AMPUSER/4101/password` or
/// `AMPUSER/4101/password`.
pub fn import(entries: &[(String, String)]) -> Import {
    let mut devices: BTreeMap<String, ImportedDevice> = BTreeMap::new();
    let mut users: BTreeMap<String, ImportedUser> = BTreeMap::new();
    let mut user_lists: BTreeMap<String, String> = BTreeMap::new();
    let mut current: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Import::default();
    for (key, value) in entries {
        let parts: Vec<&str> = key.trim_start_matches('/').split('/').collect();
        let [family, id, field] = parts.as_slice() else {
            continue;
        };
        if let Some(problem) = id_problem(id) {
            out.warnings.push(format!("skipping {key}: {problem}"));
            continue;
        }
        let value = value.trim().to_string();
        let some = |v: &str| (!v.is_empty()).then(|| v.to_string());
        match *family {
            "DEVICE" => {
                let d = devices
                    .entry(id.to_string())
                    .or_insert_with(|| ImportedDevice {
                        id: id.to_string(),
                        ..Default::default()
                    });
                match *field {
                    "type" => d.fixed = value.eq_ignore_ascii_case("fixed"),
                    "dial" => d.dial = some(&value),
                    "default_user" => d.default_user = some(&value).filter(|v| v != "none"),
                    "description" => d.description = some(&value),
                    "user" if !value.is_empty() && value != "none" => {
                        current.insert(id.to_string(), value);
                    }
                    _ => {}
                }
            }
            "AMPUSER" => {
                let u = users.entry(id.to_string()).or_insert_with(|| ImportedUser {
                    id: id.to_string(),
                    ..Default::default()
                });
                match *field {
                    "password" => u.password = some(&value),
                    "cidname" => u.fullname = some(&value),
                    "cidnum" => u.cid_number = some(&value),
                    "language" => u.language = some(&value),
                    "device" => {
                        user_lists.insert(id.to_string(), value);
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    for (device, user) in &current {
        if !users.contains_key(user) {
            out.warnings.push(format!(
                "device {device} is bound to unknown user {user}; skipped"
            ));
            continue;
        }
        let listed = user_lists
            .get(user)
            .is_some_and(|l| l.split('&').any(|d| d == device));
        if !listed {
            out.warnings.push(format!(
                "AMPUSER/{user}/device does not list device {device} (DEVICE/{device}/user says {user}); using the device's key"
            ));
        }
        out.bindings.push((user.clone(), device.clone()));
    }
    for d in devices.values() {
        if d.fixed && d.default_user.is_none() {
            out.warnings.push(format!(
                "fixed device {} has no default_user; imported as adhoc",
                d.id
            ));
        }
    }
    out.devices = devices.into_values().collect();
    out.users = users.into_values().collect();
    out
}

/// A value as config text: `;` would start a comment, a line break a new line.
fn value(v: &str) -> String {
    v.replace(['\r', '\n'], " ").replace(';', "\\;")
}

/// The equivalent `res_deviceuser.conf` text. Passwords are written as FreePBX stored them.
pub fn render_conf(i: &Import) -> String {
    let mut s = String::from("; Imported from FreePBX (AMPUSER/ and DEVICE/ in AstDB)\n");
    for d in &i.devices {
        s += &format!("\n[{}]\ntype = device\n", d.id);
        let fixed = d.fixed && d.default_user.is_some();
        s += &format!("mode = {}\n", if fixed { "fixed" } else { "adhoc" });
        if let Some(v) = &d.dial {
            s += &format!("dial = {}\n", value(v));
        }
        if let Some(v) = &d.description {
            s += &format!("description = {}\n", value(v));
        }
        if let Some(v) = &d.default_user {
            s += &format!("default_user = {v}\n");
        }
    }
    for u in &i.users {
        s += &format!("\n[{}]\ntype = user\n", u.id);
        for (k, v) in [
            ("password", &u.password),
            ("fullname", &u.fullname),
            ("cid_number", &u.cid_number),
            ("language", &u.language),
        ] {
            if let Some(v) = v {
                s += &format!("{k} = {}\n", value(v));
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    fn sample() -> Vec<(String, String)> {
        vec![
            e("/AMPUSER/4101/password", "1234"),
            e("/AMPUSER/4101/cidname", "Operator 4101"),
            e("/AMPUSER/4101/cidnum", "4101"),
            e("/AMPUSER/4101/device", "1000&1001"),
            e("/AMPUSER/2010/password", "2468"),
            e("/AMPUSER/2010/cidname", "Reception"),
            e("/AMPUSER/2010/device", "2010"),
            e("/DEVICE/1000/type", "adhoc"),
            e("/DEVICE/1000/dial", "PJSIP/1000"),
            e("/DEVICE/1000/user", "4101"),
            e("/DEVICE/1001/type", "adhoc"),
            e("/DEVICE/1001/dial", "PJSIP/1001"),
            e("/DEVICE/1001/user", "none"),
            e("/DEVICE/2010/type", "fixed"),
            e("/DEVICE/2010/dial", "PJSIP/2010"),
            e("/DEVICE/2010/default_user", "2010"),
            e("/DEVICE/2010/user", "2010"),
            e("/CF/4101", "5551234"),
        ]
    }

    #[test]
    fn devices_users_and_bindings_come_across() {
        let i = import(&sample());
        assert_eq!(i.devices.len(), 3);
        let fixed = i.devices.iter().find(|d| d.id == "2010").unwrap();
        assert!(fixed.fixed);
        assert_eq!(fixed.default_user.as_deref(), Some("2010"));
        assert_eq!(i.users.len(), 2);
        assert_eq!(
            i.bindings,
            vec![
                ("4101".to_string(), "1000".to_string()),
                ("2010".to_string(), "2010".to_string())
            ]
        );
        assert!(i.warnings.is_empty(), "{:?}", i.warnings);
    }

    #[test]
    fn rendered_config_parses_back() {
        use crate::config::{Config, RawConfig, RawSection, RawVar};
        let text = render_conf(&import(&sample()));
        // A minimal reader of the rendered text into the raw model the host would build.
        let mut sections: Vec<RawSection> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.starts_with('[') {
                sections.push(RawSection {
                    name: line.trim_matches(['[', ']']).to_string(),
                    line: n as u32 + 1,
                    vars: vec![],
                });
            } else if let Some((k, v)) = line.split_once('=') {
                sections.last_mut().unwrap().vars.push(RawVar {
                    key: k.trim().into(),
                    value: v.trim().into(),
                    line: n as u32 + 1,
                });
            }
        }
        let parsed = Config::from_raw(&RawConfig {
            file: "x".into(),
            sections,
        })
        .expect("valid config");
        assert_eq!(parsed.config.devices.len(), 3);
        assert_eq!(parsed.config.users.len(), 2);
        assert!(parsed.config.user("4101").unwrap().password_matches("1234"));
    }

    #[test]
    fn bad_and_dangling_entries_are_warned_about() {
        let i = import(&[
            e("/DEVICE/1000/user", "9999"),
            e("/DEVICE/bad id/type", "adhoc"),
            e("/DEVICE/3000/type", "fixed"),
        ]);
        assert!(i.bindings.is_empty());
        assert!(
            i.warnings.iter().any(|w| w.contains("unknown user 9999")),
            "{:?}",
            i.warnings
        );
        assert!(
            i.warnings.iter().any(|w| w.contains("bad id")),
            "{:?}",
            i.warnings
        );
        assert!(
            i.warnings.iter().any(|w| w.contains("fixed device 3000")),
            "{:?}",
            i.warnings
        );
        assert!(render_conf(&i).contains("[3000]\ntype = device\nmode = adhoc"));
    }
}
