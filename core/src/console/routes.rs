//! Which operation a request names. The paths are those under the console's URI
//! (`/deviceuser/`), as Asterisk hands them to the module: without the leading `/`, not yet
//! percent-decoded (each segment is decoded here, so an encoded `/` cannot make a segment).
//!
//! [`OPERATIONS`] is the one list of API operations: the router finds requests in it, the
//! module dispatches on its [`Op`]s, and a test checks `docs/console-openapi.json` against it.
use crate::console_users::Permission;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Options,
    Other,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Other => "OTHER",
        }
    }

    /// Whether the method may change state (and so needs the CSRF checks).
    pub fn changes_state(self) -> bool {
        !matches!(self, Method::Get | Method::Head)
    }
}

/// An API operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    SessionGet,
    SessionLogin,
    SessionLogout,
    DevicesList,
    DeviceCreate,
    DeviceGet,
    DeviceUpdate,
    DeviceDelete,
    UsersList,
    UserCreate,
    UserGet,
    UserUpdate,
    UserDelete,
    UserDnd,
    BindingsList,
    BindingCreate,
    DeviceLogout,
    UserLogout,
    Board,
    Stats,
    OpenApi,
}

#[derive(Debug)]
pub struct Operation {
    pub op: Op,
    pub method: Method,
    /// The path under `/deviceuser/api`, OpenAPI style (`/devices/{id}`).
    pub path: &'static str,
    /// What the console user must be allowed; `None`: no session needed (logging in).
    pub permission: Option<Permission>,
}

const fn op(
    op: Op,
    method: Method,
    path: &'static str,
    permission: Option<Permission>,
) -> Operation {
    Operation {
        op,
        method,
        path,
        permission,
    }
}

use Method::{Delete, Get, Post, Put};
use Permission::{Dnd, Edit, Login, Logout, View};

pub const OPERATIONS: &[Operation] = &[
    op(Op::SessionGet, Get, "/session", Some(View)),
    op(Op::SessionLogin, Post, "/session", None),
    op(Op::SessionLogout, Delete, "/session", Some(View)),
    op(Op::DevicesList, Get, "/devices", Some(View)),
    op(Op::DeviceCreate, Post, "/devices", Some(Edit)),
    op(Op::DeviceGet, Get, "/devices/{id}", Some(View)),
    op(Op::DeviceUpdate, Put, "/devices/{id}", Some(Edit)),
    op(Op::DeviceDelete, Delete, "/devices/{id}", Some(Edit)),
    op(Op::UsersList, Get, "/users", Some(View)),
    op(Op::UserCreate, Post, "/users", Some(Edit)),
    op(Op::UserGet, Get, "/users/{id}", Some(View)),
    op(Op::UserUpdate, Put, "/users/{id}", Some(Edit)),
    op(Op::UserDelete, Delete, "/users/{id}", Some(Edit)),
    op(Op::UserDnd, Put, "/users/{id}/dnd", Some(Dnd)),
    op(Op::BindingsList, Get, "/bindings", Some(View)),
    op(Op::BindingCreate, Post, "/bindings", Some(Login)),
    op(
        Op::DeviceLogout,
        Delete,
        "/bindings/device/{id}",
        Some(Logout),
    ),
    op(Op::UserLogout, Delete, "/bindings/user/{id}", Some(Logout)),
    op(Op::Board, Get, "/board", Some(View)),
    op(Op::Stats, Get, "/stats", Some(View)),
    op(Op::OpenApi, Get, "/openapi.json", Some(View)),
];

/// What a request path names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The page (`""`, `index.html`).
    Page,
    /// A file of the page (`app.js`): the module serves it if it has one by that name.
    Asset(String),
    /// An API path: its OpenAPI pattern and the `{id}` in it, if any.
    Api {
        pattern: &'static str,
        id: Option<String>,
    },
    NotFound,
}

/// Percent-decodes one path segment; `None` if it is malformed, not UTF-8, or decodes to
/// something a segment cannot hold (`/`, NUL, control characters).
pub fn decode_segment(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    let text = String::from_utf8(out).ok()?;
    (!text.chars().any(|c| c == '/' || c.is_control())).then_some(text)
}

/// Finds what `path` names.
pub fn target(path: &str) -> Target {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    if path.is_empty() || path == "index.html" {
        return Target::Page;
    }
    let raw: Vec<&str> = path.split('/').collect();
    let Some(segments) = raw
        .iter()
        .map(|s| decode_segment(s))
        .collect::<Option<Vec<String>>>()
    else {
        return Target::NotFound;
    };
    // No empty, `.` or `..` segments anywhere: nothing is resolved relative to anything.
    if segments
        .iter()
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Target::NotFound;
    }
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();
    let api = |pattern: &'static str, id: Option<&str>| Target::Api {
        pattern,
        id: id.map(str::to_string),
    };
    match s.as_slice() {
        [name] => Target::Asset(name.to_string()),
        ["api", "session"] => api("/session", None),
        ["api", "devices"] => api("/devices", None),
        ["api", "devices", id] => api("/devices/{id}", Some(id)),
        ["api", "users"] => api("/users", None),
        ["api", "users", id] => api("/users/{id}", Some(id)),
        ["api", "users", id, "dnd"] => api("/users/{id}/dnd", Some(id)),
        ["api", "bindings"] => api("/bindings", None),
        ["api", "bindings", "device", id] => api("/bindings/device/{id}", Some(id)),
        ["api", "bindings", "user", id] => api("/bindings/user/{id}", Some(id)),
        ["api", "board"] => api("/board", None),
        ["api", "stats"] => api("/stats", None),
        ["api", "openapi.json"] => api("/openapi.json", None),
        _ => Target::NotFound,
    }
}

/// The operation of `method` on an API path pattern: `Err` lists the methods it allows
/// (for `405` and its `Allow` header); empty if the pattern is unknown.
pub fn operation(method: Method, pattern: &str) -> Result<&'static Operation, Vec<Method>> {
    let mut allowed = Vec::new();
    for o in OPERATIONS.iter().filter(|o| o.path == pattern) {
        if o.method == method || (method == Method::Head && o.method == Method::Get) {
            return Ok(o);
        }
        allowed.push(o.method);
    }
    Err(allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_is_reached_by_its_path() {
        for o in OPERATIONS {
            let path = format!("api{}", o.path.replace("{id}", "4101"));
            let Target::Api { pattern, id } = target(&path) else {
                panic!("{path} is not an API path");
            };
            assert_eq!(pattern, o.path);
            assert_eq!(id.is_some(), o.path.contains("{id}"));
            let found = operation(o.method, pattern).unwrap();
            assert_eq!(found.op, o.op, "{} {}", o.method.as_str(), o.path);
        }
    }

    #[test]
    fn operations_are_distinct() {
        for (i, a) in OPERATIONS.iter().enumerate() {
            for b in &OPERATIONS[i + 1..] {
                assert!(a.op != b.op && (a.method, a.path) != (b.method, b.path));
            }
        }
    }

    #[test]
    fn unknown_methods_list_the_allowed_ones() {
        assert_eq!(
            operation(Method::Put, "/devices").err().unwrap(),
            vec![Method::Get, Method::Post]
        );
        assert!(operation(Method::Get, "/nothing").unwrap_err().is_empty());
        assert_eq!(operation(Method::Head, "/board").unwrap().op, Op::Board);
    }

    #[test]
    fn traversal_and_malformed_paths_name_nothing() {
        for p in [
            "../etc/passwd",
            "..%2Fetc%2Fpasswd",
            "%2e%2e/res_deviceuser.conf",
            "static/../app.js",
            "./app.js",
            "api//devices",
            "app.js/",
            "a%2Fb",
            "%zz",
            "%c3",
            "x%00.js",
            "api/devices/a%2F..%2Fb",
        ] {
            assert!(
                matches!(target(p), Target::NotFound),
                "{p} -> {:?}",
                target(p)
            );
        }
        assert_eq!(target("app.js"), Target::Asset("app.js".into()));
        assert_eq!(target(""), Target::Page);
        assert_eq!(target("index.html"), Target::Page);
        assert_eq!(
            target("api/devices/ab%20c"),
            Target::Api {
                pattern: "/devices/{id}",
                id: Some("ab c".into())
            }
        );
    }

    /// The OpenAPI description kept in the repository lists exactly the operations the
    /// module dispatches, with their security and headers.
    #[test]
    fn the_openapi_file_describes_every_operation() {
        let text = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/console-openapi.json"
        ));
        let spec: serde_json::Value = serde_json::from_str(text).expect("valid JSON");
        let paths = spec["paths"].as_object().expect("paths");
        let mut documented = Vec::new();
        for (path, item) in paths {
            for (method, o) in item.as_object().unwrap() {
                documented.push((method.to_ascii_uppercase(), path.clone(), o.clone()));
            }
        }
        assert_eq!(documented.len(), OPERATIONS.len(), "{documented:?}");
        for o in OPERATIONS {
            let (_, _, doc) = documented
                .iter()
                .find(|(m, p, _)| m == o.method.as_str() && p == o.path)
                .unwrap_or_else(|| {
                    panic!(
                        "{} {} is not in the OpenAPI file",
                        o.method.as_str(),
                        o.path
                    )
                });
            let params: Vec<String> = doc["parameters"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|p| p["$ref"].as_str().unwrap_or("").to_string())
                        .collect()
                })
                .unwrap_or_default();
            let has = |name: &str| params.iter().any(|p| p.ends_with(name));
            let public = doc["security"].as_array().is_some_and(|s| s.is_empty());
            assert_eq!(public, o.permission.is_none(), "{}: security", o.path);
            assert_eq!(
                has("/Id"),
                o.path.contains("{id}"),
                "{} {}: id",
                o.method.as_str(),
                o.path
            );
            if o.method.changes_state() && o.permission.is_some() {
                assert!(
                    has("/Csrf"),
                    "{} {}: X-CSRF-Token",
                    o.method.as_str(),
                    o.path
                );
            }
            let edits_entity = matches!(
                o.op,
                Op::DeviceUpdate | Op::DeviceDelete | Op::UserUpdate | Op::UserDelete
            );
            assert_eq!(
                has("/IfMatch"),
                edits_entity,
                "{} {}: If-Match",
                o.method.as_str(),
                o.path
            );
            let codes = doc["responses"].as_object().unwrap();
            if o.permission.is_some() {
                assert!(
                    codes.contains_key("401") && codes.contains_key("403"),
                    "{}",
                    o.path
                );
            }
        }
    }
}
