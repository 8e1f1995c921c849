//! Console users: sections of `res_deviceuser.conf` with `type = console_user`, read with the
//! rest of the configuration (the console itself is in [`crate::console`]).
//!
//! ```text
//! [alice]
//! type = console_user
//! role = admin                  ; or supervisor
//! password = $argon2id$v=19$... ; a hash, never a plain password
//! ```
//!
//! A `supervisor` sees everything, logs users out and turns DND on and off; an `admin` may
//! also log users in and add, change and delete devices and users. The console is served
//! only while at least one console user is configured.
use std::fmt;

use compact_str::CompactString;

use crate::idmap::Identified;
use crate::password;
use crate::raw::RawSection;

/// The section type of console users.
pub const SECTION_TYPE: &str = "console_user";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Supervisor,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s.trim().to_ascii_lowercase().as_str() {
            "supervisor" => Some(Role::Supervisor),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        }
    }

    /// Whether the role may do `what`.
    pub fn may(self, what: Permission) -> bool {
        match what {
            Permission::View | Permission::Logout | Permission::Dnd => true,
            Permission::Login | Permission::Edit => self == Role::Admin,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a request asks to do, as far as roles are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    /// Read devices, users, bindings, statistics; the live feed.
    View,
    /// Log a device or a user out.
    Logout,
    /// Turn a user's do-not-disturb on or off.
    Dnd,
    /// Log a user in on a device.
    Login,
    /// Add, change or delete devices and users (writes the config file).
    Edit,
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::View => "view",
            Permission::Logout => "log users out",
            Permission::Dnd => "change do-not-disturb",
            Permission::Login => "log users in",
            Permission::Edit => "edit devices and users",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsoleUser {
    pub id: CompactString,
    pub role: Role,
    /// A password hash ([`password::check_hash`] accepted it).
    pub password: CompactString,
}

impl Identified for ConsoleUser {
    fn id(&self) -> &str {
        &self.id
    }
}

impl ConsoleUser {
    pub fn password_matches(&self, given: &str) -> bool {
        password::verify(&self.password, given)
    }
}

/// A finding about one option of a console user's section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub key: Option<String>,
    pub line: u32,
    pub message: String,
    /// An error (the file is refused) rather than a warning.
    pub error: bool,
}

/// Reads a `type = console_user` section. `None` with at least one error finding when the
/// section cannot make a console user.
pub fn parse(sec: &RawSection) -> (Option<ConsoleUser>, Vec<Finding>) {
    let mut findings = Vec::new();
    let mut role = None;
    let mut password = None;
    let mut role_line = sec.line;
    let mut password_line = sec.line;
    for var in &sec.vars {
        let key = var.key.trim().to_ascii_lowercase();
        let v = var.value.trim();
        match key.as_str() {
            "type" => {}
            "role" => {
                role_line = var.line;
                role = Role::parse(v);
                if role.is_none() {
                    findings.push(Finding {
                        key: Some(key),
                        line: var.line,
                        message: format!(
                            "bad role {} (expected supervisor or admin)",
                            crate::logtext::quoted(&crate::raw::shown(v))
                        ),
                        error: true,
                    });
                }
            }
            "password" => {
                password_line = var.line;
                password = None;
                if v.is_empty() {
                    continue;
                }
                // Messages name the key, never the value.
                if !password::is_hash(v) {
                    findings.push(Finding {
                        key: Some(key),
                        line: var.line,
                        message: "a console user's password must be a hash ($argon2id$... or \
                                  $6$..., e.g. from mkpasswd -m sha-512), not plain text"
                            .into(),
                        error: true,
                    });
                } else if let Err(msg) = password::check_hash(v) {
                    findings.push(Finding {
                        key: Some(key),
                        line: var.line,
                        message: msg,
                        error: true,
                    });
                } else {
                    password = Some(CompactString::from(v));
                }
            }
            _ => findings.push(Finding {
                line: var.line,
                message: format!("unknown option {}", crate::logtext::quoted(&key)),
                key: Some(key),
                error: false,
            }),
        }
    }
    let errors_before = findings.iter().any(|f| f.error);
    if role.is_none() && !errors_before {
        findings.push(Finding {
            key: Some("role".into()),
            line: role_line,
            message: "missing role (expected supervisor or admin)".into(),
            error: true,
        });
    }
    if password.is_none()
        && !findings
            .iter()
            .any(|f| f.error && f.key.as_deref() == Some("password"))
    {
        findings.push(Finding {
            key: Some("password".into()),
            line: password_line,
            message: "missing password (a hash)".into(),
            error: true,
        });
    }
    match (role, password) {
        (Some(role), Some(password)) if !findings.iter().any(|f| f.error) => (
            Some(ConsoleUser {
                id: CompactString::from(sec.name.as_str()),
                role,
                password,
            }),
            findings,
        ),
        _ => (None, findings),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raw::RawVar;

    fn section(vars: &[(&str, &str)]) -> RawSection {
        RawSection {
            name: "alice".into(),
            line: 1,
            vars: vars
                .iter()
                .enumerate()
                .map(|(i, (k, v))| RawVar {
                    key: k.to_string(),
                    value: v.to_string(),
                    line: i as u32 + 2,
                })
                .collect(),
        }
    }

    #[test]
    fn a_hashed_admin_is_read() {
        let hash = password::hash_password("s3cret");
        let (u, findings) = parse(&section(&[
            ("type", "console_user"),
            ("role", "Admin"),
            ("password", &hash),
        ]));
        assert!(findings.is_empty(), "{findings:?}");
        let u = u.unwrap();
        assert_eq!((u.id.as_str(), u.role), ("alice", Role::Admin));
        assert!(u.password_matches("s3cret"));
        assert!(!u.password_matches("s3cre"));
    }

    #[test]
    fn plain_passwords_and_bad_roles_are_errors_that_do_not_show_the_value() {
        let (u, findings) = parse(&section(&[("role", "boss"), ("password", "hunter2")]));
        assert!(u.is_none());
        let msgs: Vec<_> = findings.iter().map(|f| f.message.as_str()).collect();
        assert!(
            msgs.iter().any(|m| m.contains("bad role \"boss\"")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter().any(|m| m.contains("must be a hash")),
            "{msgs:?}"
        );
        assert!(msgs.iter().all(|m| !m.contains("hunter2")), "{msgs:?}");
        assert!(findings.iter().all(|f| f.error));
    }

    #[test]
    fn role_and_password_are_required() {
        let (u, findings) = parse(&section(&[("type", "console_user")]));
        assert!(u.is_none());
        let keys: Vec<_> = findings.iter().filter_map(|f| f.key.as_deref()).collect();
        assert_eq!(keys, ["role", "password"]);
    }

    #[test]
    fn unknown_options_are_warnings() {
        let hash = password::hash_password("x");
        let (u, findings) = parse(&section(&[
            ("role", "supervisor"),
            ("password", &hash),
            ("colour", "blue"),
        ]));
        assert_eq!(u.unwrap().role, Role::Supervisor);
        assert_eq!(findings.len(), 1);
        assert!(!findings[0].error);
    }

    #[test]
    fn supervisors_view_log_out_and_change_dnd_only() {
        use Permission::*;
        for p in [View, Logout, Dnd] {
            assert!(Role::Supervisor.may(p) && Role::Admin.may(p));
        }
        for p in [Login, Edit] {
            assert!(!Role::Supervisor.may(p) && Role::Admin.may(p));
        }
    }
}

#[cfg(test)]
mod config_tests {
    use crate::config::tests::raw;
    use crate::config::Config;
    use crate::password;

    #[test]
    fn console_users_live_beside_devices_and_users() {
        let hash = password::hash_password("pw");
        let parsed = Config::from_raw(&raw(&[
            ("1000", &[("type", "device")]),
            (
                "alice",
                &[
                    ("type", "console_user"),
                    ("role", "admin"),
                    ("password", &hash),
                ],
            ),
        ]))
        .unwrap();
        let c = parsed.config;
        assert_eq!(c.console_users.len(), 1);
        assert_eq!(
            c.console_users.get("alice").unwrap().role,
            super::Role::Admin
        );
        assert!(c.user("alice").is_none() && c.device("alice").is_none());

        let errors = Config::from_raw(&raw(&[
            (
                "bob",
                &[
                    ("type", "console_user"),
                    ("role", "admin"),
                    ("password", "hunter2"),
                ],
            ),
            (
                "eve",
                &[
                    ("type", "Console_User"),
                    ("role", "admin"),
                    ("password", &hash),
                ],
            ),
            (
                "eve",
                &[
                    ("type", "console_user"),
                    ("role", "admin"),
                    ("password", &hash),
                ],
            ),
        ]))
        .unwrap_err();
        let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert!(
            text.iter().any(|e| e.contains("[bob] password")),
            "{text:?}"
        );
        assert!(
            text.iter().any(|e| e.contains("duplicate console user")),
            "{text:?}"
        );
        assert!(text.iter().all(|e| !e.contains("hunter2")), "{text:?}");
    }
}
