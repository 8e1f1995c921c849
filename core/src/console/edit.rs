//! Console edits of devices and users: a JSON body becomes an edit of one section of
//! `res_deviceuser.conf`. Each field is checked here for what would break the file itself
//! (types, control characters, backslashes, characters a section name cannot hold);
//! everything else — modes, dial strings, default users, durations, times — is left to
//! the same validation as at load ([`crate::config::Config::from_raw`]) of the whole file
//! with the edit applied, whose errors are mapped back to field names by [`split_errors`].
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::config::{id_problem, ConfigError, Device, User};
use crate::logtext::quoted;

/// Which kind of section an edit is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Device,
    User,
}

impl Kind {
    /// The section's `type`.
    pub fn section_type(self) -> &'static str {
        match self {
            Kind::Device => "device",
            Kind::User => "user",
        }
    }

    /// The options of the section the console manages, in the order it writes them.
    /// Options it does not list are kept as they are.
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            Kind::Device => &[
                "description",
                "mode",
                "dial",
                "default_user",
                "logout_on_unregister",
            ],
            Kind::User => &[
                "fullname",
                "password",
                "language",
                "cid_number",
                "max_login_time",
                "shift_end",
            ],
        }
    }

    /// Fields that may be given as JSON numbers (seconds).
    fn numeric(self, field: &str) -> bool {
        matches!(field, "logout_on_unregister" | "max_login_time")
    }
}

/// A problem with one field of a request (`field` empty: the body as a whole).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        FieldError {
            field: field.to_string(),
            message: message.into(),
        }
    }
}

/// An edit of one section: the options to set (`Some`) or remove (`None`). Options not
/// listed stay as they are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SectionEdit {
    pub kind: Kind,
    pub id: String,
    pub options: Vec<(&'static str, Option<String>)>,
}

/// Longest value the console writes.
pub const MAX_VALUE_LEN: usize = 256;

/// Why `v` cannot be written as an option's value, if it cannot.
fn value_problem(v: &str) -> Option<String> {
    if v.chars().count() > MAX_VALUE_LEN {
        Some(format!("longer than {MAX_VALUE_LEN} characters"))
    } else if v.chars().any(|c| c.is_control()) {
        Some("control characters (line breaks, tabs) are not allowed".into())
    } else if v.contains('\\') {
        // Asterisk's writer escapes ';' as "\;" and its reader undoes it: a backslash of the
        // value's own would not read back the same.
        Some("'\\' is not allowed".into())
    } else {
        None
    }
}

/// Why `id` cannot name a new device or user, if it cannot: the rules of the config file,
/// plus what a section name cannot hold.
pub fn new_id_problem(id: &str) -> Option<String> {
    id_problem(id).or_else(|| {
        id.chars()
            .find(|c| matches!(c, '[' | ']' | ';' | '=' | '"' | '\'' | '\\' | '#'))
            .map(|c| format!("id contains forbidden character {c:?}"))
    })
}

/// Reads a JSON object from a request body.
pub fn object(body: &Value) -> Result<&Map<String, Value>, Vec<FieldError>> {
    body.as_object()
        .ok_or_else(|| vec![FieldError::new("", "the body must be a JSON object")])
}

/// A text field: `Ok(None)` when absent or null, trimmed otherwise.
fn text(obj: &Map<String, Value>, field: &str, numeric: bool) -> Result<Option<String>, String> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(Value::Number(n)) if numeric => Ok(Some(n.to_string())),
        Some(_) if numeric => Err("expected a string or a number".into()),
        Some(_) => Err("expected a string".into()),
    }
}

/// The edit a create (`path_id` None: the id comes from the body) or an update (`PUT` on
/// `path_id`: the body's `id`, if any, must be the same) of a device or user asks for.
/// Every option the console manages is set or removed, except `password`, which is changed
/// only when given: `hash` turns the new PIN into what is written (an empty PIN removes it).
pub fn section_edit(
    kind: Kind,
    path_id: Option<&str>,
    body: &Value,
    hash: impl Fn(&str) -> String,
) -> Result<SectionEdit, Vec<FieldError>> {
    let obj = object(body)?;
    let mut errors = Vec::new();
    for key in obj.keys() {
        if key != "id" && !kind.fields().contains(&key.as_str()) {
            errors.push(FieldError::new(key, "unknown field"));
        }
    }
    let body_id = match text(obj, "id", false) {
        Ok(v) => v,
        Err(e) => {
            errors.push(FieldError::new("id", e));
            None
        }
    };
    let id = match (path_id, body_id) {
        (Some(p), Some(b)) if p != b => {
            errors.push(FieldError::new(
                "id",
                format!(
                    "the id cannot change ({} given for {})",
                    quoted(&b),
                    quoted(p)
                ),
            ));
            p.to_string()
        }
        (Some(p), _) => p.to_string(),
        (None, Some(b)) => {
            if let Some(problem) = new_id_problem(&b) {
                errors.push(FieldError::new("id", problem));
            }
            b
        }
        (None, None) => {
            errors.push(FieldError::new("id", "required"));
            String::new()
        }
    };
    let mut options = Vec::new();
    for &field in kind.fields() {
        let value = match text(obj, field, kind.numeric(field)) {
            Ok(v) => v,
            Err(e) => {
                errors.push(FieldError::new(field, e));
                continue;
            }
        };
        if field == "password" {
            match value {
                None => {}
                Some(pin) if pin.is_empty() => options.push((field, None)),
                Some(pin) => {
                    if pin.len() > 32 || !pin.bytes().all(|b| b.is_ascii_digit()) {
                        errors.push(FieldError::new(
                            field,
                            "a PIN is 1 to 32 digits (it is typed on a phone's keypad)",
                        ));
                    } else {
                        options.push((field, Some(hash(&pin))));
                    }
                }
            }
            continue;
        }
        match value {
            Some(v) if !v.is_empty() => match value_problem(&v) {
                Some(p) => errors.push(FieldError::new(field, p)),
                None => options.push((field, Some(v))),
            },
            _ => options.push((field, None)),
        }
    }
    if errors.is_empty() {
        Ok(SectionEdit { kind, id, options })
    } else {
        Err(errors)
    }
}

/// Splits the errors of validating the file with an edit applied into those of the edited
/// section (by field: the option's key) and the others (as the file reports them).
pub fn split_errors(
    errors: &[ConfigError],
    kind: Kind,
    id: &str,
) -> (Vec<FieldError>, Vec<String>) {
    let mut fields = Vec::new();
    let mut others = Vec::new();
    for e in errors {
        // A device and a user may share an id: an option of the other kind is not ours.
        let ours = match e.key.as_deref() {
            None | Some("type") => true,
            Some(k) => kind.fields().contains(&k),
        };
        if e.section.as_deref() == Some(id) && ours {
            fields.push(FieldError::new(
                e.key.as_deref().unwrap_or("id"),
                e.message.clone(),
            ));
        } else {
            others.push(e.to_string());
        }
    }
    (fields, others)
}

/// An entity tag: a keyed SHA-256 of `canonical` (the key is random per module load, so a
/// tag tells nothing about a PIN), quoted as HTTP wants.
pub fn etag(key: &[u8], canonical: &str) -> String {
    let mut h = Sha256::new();
    h.update(key);
    h.update(canonical.as_bytes());
    let digest = h.finalize();
    format!("\"{}\"", super::auth::hex(&digest[..16]))
}

/// Everything a device's settings are, as tagged by [`etag`].
pub fn device_canonical(d: &Device) -> String {
    format!("{d:?}")
}

/// Everything a user's settings are, PIN included, as tagged by [`etag`].
pub fn user_canonical(u: &User) -> String {
    format!("{u:?}")
}

/// Whether an `If-Match` header value matches `tag` (a list of tags, or `*`).
pub fn if_match(header: &str, tag: &str) -> bool {
    header
        .split(',')
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == tag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::raw;
    use crate::config::Config;
    use serde_json::json;

    fn plain(pin: &str) -> String {
        format!("hashed:{pin}")
    }

    #[test]
    fn a_device_body_becomes_an_edit_of_every_managed_option() {
        let body = json!({"id": "3000", "description": "  Desk 3 ", "mode": "adhoc",
                          "logout_on_unregister": 60});
        let e = section_edit(Kind::Device, None, &body, plain).unwrap();
        assert_eq!(e.id, "3000");
        assert_eq!(
            e.options,
            vec![
                ("description", Some("Desk 3".into())),
                ("mode", Some("adhoc".into())),
                ("dial", None),
                ("default_user", None),
                ("logout_on_unregister", Some("60".into())),
            ]
        );
    }

    #[test]
    fn a_pin_is_hashed_kept_when_absent_and_removed_when_empty() {
        let e = section_edit(
            Kind::User,
            Some("4101"),
            &json!({"password": "1234"}),
            plain,
        )
        .unwrap();
        assert!(e
            .options
            .contains(&("password", Some("hashed:1234".into()))));
        let e = section_edit(Kind::User, Some("4101"), &json!({"fullname": "A"}), plain).unwrap();
        assert!(e.options.iter().all(|(k, _)| *k != "password"));
        let e = section_edit(Kind::User, Some("4101"), &json!({"password": ""}), plain).unwrap();
        assert!(e.options.contains(&("password", None)));
        let err = section_edit(
            Kind::User,
            Some("4101"),
            &json!({"password": "12a4"}),
            plain,
        )
        .unwrap_err();
        assert_eq!(err[0].field, "password");
        assert!(!err[0].message.contains("12a4"));
    }

    #[test]
    fn bad_fields_are_named() {
        let body = json!({"id": "x]y", "description": "a\nb", "mode": 3, "colour": "red",
                          "dial": "PJSIP/x\\y"});
        let err = section_edit(Kind::Device, None, &body, plain).unwrap_err();
        let fields: Vec<_> = err.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["colour", "id", "description", "mode", "dial"]);
        let err = section_edit(Kind::Device, None, &json!([1]), plain).unwrap_err();
        assert_eq!(err[0].field, "");
        let err = section_edit(Kind::Device, None, &json!({}), plain).unwrap_err();
        assert_eq!(
            (err[0].field.as_str(), err[0].message.as_str()),
            ("id", "required")
        );
        let err =
            section_edit(Kind::Device, Some("1000"), &json!({"id": "1001"}), plain).unwrap_err();
        assert_eq!(err[0].field, "id");
    }

    #[test]
    fn markup_is_an_ordinary_value() {
        let body = json!({"id": "3000", "description": "<img src=x onerror=alert(1)>"});
        let e = section_edit(Kind::Device, None, &body, plain).unwrap();
        assert_eq!(
            e.options[0],
            ("description", Some("<img src=x onerror=alert(1)>".into()))
        );
    }

    #[test]
    fn file_errors_map_to_fields_of_the_edited_section() {
        let errors = Config::from_raw(&raw(&[
            ("3000", &[("type", "device"), ("mode", "fixed")]),
            ("9", &[("type", "device"), ("default_user", "nobody")]),
        ]))
        .unwrap_err();
        let (fields, others) = split_errors(&errors, Kind::Device, "3000");
        assert_eq!(fields.len(), 1);
        assert_eq!(fields[0].field, "default_user");
        assert!(fields[0]
            .message
            .contains("fixed device needs a default_user"));
        assert_eq!(others.len(), 1);
        assert!(
            others[0].contains("\"nobody\" is not a configured user"),
            "{others:?}"
        );
        // The user 3000's edit does not own the device 3000's options.
        let (fields, others) = split_errors(&errors, Kind::User, "3000");
        assert!(fields.is_empty());
        assert_eq!(others.len(), 2);
    }

    #[test]
    fn etags_follow_every_setting_and_hide_the_pin() {
        let c = Config::from_raw(&raw(&[
            ("4101", &[("type", "user"), ("password", "1234")]),
            ("4102", &[("type", "user"), ("password", "1235")]),
        ]))
        .unwrap()
        .config;
        let key = b"k";
        let a = etag(key, &user_canonical(c.user("4101").unwrap()));
        let b = etag(key, &user_canonical(c.user("4102").unwrap()));
        assert_ne!(a, b);
        assert_ne!(
            a,
            etag(b"other key", &user_canonical(c.user("4101").unwrap()))
        );
        assert!(a.starts_with('"') && a.ends_with('"') && a.len() == 34);
        assert!(if_match(&a, &a));
        assert!(if_match("*", &a));
        assert!(if_match(&format!("\"x\", W/{a}"), &a));
        assert!(!if_match(&b, &a));
    }
}
