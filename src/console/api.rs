//! The console's HTTP handler: the page, its files and the JSON API (see
//! `docs/console-openapi.json`). Every API request but the login needs a session; what it
//! may do depends on the console user's role; requests that change anything must come from
//! the console's own page (see [`deviceuser_core::console::auth`]).
use deviceuser_core::config::shown;
use deviceuser_core::console::auth::{self, Provenance, Session, COOKIE, CSRF_HEADER};
use deviceuser_core::console::edit::{FieldError, Kind};
use deviceuser_core::console::render;
use deviceuser_core::console::routes::{self, Method, Op, Target};
use deviceuser_core::failure::LoginFailure;
use deviceuser_core::logtext::{quoted, value};
use deviceuser_core::{LoginError, LoginMode, LogoutError, Reason};
use serde_json::{json, Value};

use super::reply::{base, body, error, field_errors, json_response, JSON};
use super::{assets, edit};
use crate::access::random;
use crate::host::http::{Answer, Request, Response};
use crate::host::log;
use crate::instance::Instance;
use crate::pipeline::Origin;
use crate::security::login_failed;
use crate::state::{now, user_state};

const TEXT: &str = "text/plain; charset=utf-8";

/// The OpenAPI description of the API, served at `api/openapi.json`.
const OPENAPI: &str = include_str!("../../docs/console-openapi.json");

/// The URI handler of `/deviceuser/`.
pub fn serve(inst: &Instance, req: &Request) -> Answer {
    Answer::Respond(hardened(respond(inst, req)))
}

/// Headers every answer carries: no sniffing, no framing, no referrer, and a policy that
/// lets the page run only its own script and talk only to its own server.
fn hardened(r: Response) -> Response {
    r.header("X-Content-Type-Options", "nosniff")
        .header("X-Frame-Options", "DENY")
        .header("Referrer-Policy", "no-referrer")
        .header(
            "Content-Security-Policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'self'",
        )
}

fn not_found() -> Response {
    Response::new(404, TEXT, "Not found\n".into())
}

fn respond(inst: &Instance, req: &Request) -> Response {
    if inst.snapshot().config().console_users.is_empty() {
        return Response::new(
            404,
            TEXT,
            "The res_deviceuser console is off: no console_user is configured in \
             res_deviceuser.conf\n"
                .into(),
        );
    }
    match routes::target(&req.path) {
        Target::Page | Target::Asset(_) if !matches!(req.method, Method::Get | Method::Head) => {
            Response::new(405, TEXT, "Method not allowed\n".into()).header("Allow", "GET, HEAD")
        }
        Target::Page => Response::new(200, "text/html; charset=utf-8", assets::page(&base())),
        Target::Asset(name) => match assets::get(&name) {
            Some(a) => Response::new(200, a.content_type, a.body.to_string()),
            None => not_found(),
        },
        Target::NotFound => not_found(),
        Target::Api { pattern, id } => api(inst, req, pattern, id.as_deref().unwrap_or("")),
    }
}

fn provenance(req: &Request) -> Provenance<'_> {
    Provenance {
        host: req.header("Host"),
        origin: req.header("Origin"),
        fetch_site: req.header("Sec-Fetch-Site"),
    }
}

/// The session a `Cookie` header names, marked as used.
pub(super) fn session_of(inst: &Instance, cookie: Option<&str>) -> Option<(String, Session)> {
    let token = auth::cookie(cookie?, COOKIE)?.to_string();
    let session = inst.access().sessions().touch(&token, now())?;
    Some((token, session))
}

fn api(inst: &Instance, req: &Request, pattern: &str, id: &str) -> Response {
    let op = match routes::operation(req.method, pattern) {
        Ok(op) => op,
        Err(allowed) => {
            let allow: Vec<&str> = allowed.iter().map(|m| m.as_str()).collect();
            return error(405, "method not allowed").header("Allow", allow.join(", "));
        }
    };
    let prov = provenance(req);
    let Some(permission) = op.permission else {
        if let Err(e) = auth::same_origin(&prov) {
            return error(403, e.message());
        }
        return login(inst, req);
    };
    let Some((token, session)) = session_of(inst, req.header("Cookie")) else {
        return error(401, "not logged in");
    };
    if !session.role.may(permission) {
        return error(
            403,
            &format!("a {} may not {}", session.role, permission.as_str()),
        );
    }
    if req.method.changes_state() {
        if let Err(e) = auth::state_change_allowed(&prov, req.header(CSRF_HEADER), &session) {
            log::warning(&format!(
                "console: {} request by {} from {} refused: {}",
                req.method.as_str(),
                value(&session.user),
                value(&req.remote()),
                e.message()
            ));
            return error(403, e.message());
        }
    }
    let snap = inst.snapshot();
    let key = &inst.access().etag_key;
    match op.op {
        Op::SessionLogin => login(inst, req),
        Op::SessionGet => json_response(
            200,
            &json!({"user": session.user.as_str(), "role": session.role.as_str(), "csrf": session.csrf}),
        ),
        Op::SessionLogout => {
            inst.access().sessions().close(&token);
            json_response(200, &json!({})).header("Set-Cookie", cookie(req, "", 0))
        }
        Op::DevicesList => {
            let devices: Vec<Value> = (snap.config().devices.values())
                .map(|d| edit::device_json(&snap, d, key))
                .collect();
            json_response(200, &json!({ "devices": devices }))
        }
        Op::DeviceGet => match snap.config().device(id) {
            Some(d) => {
                let v = edit::device_json(&snap, d, key);
                let tag = v["etag"].as_str().unwrap_or_default().to_string();
                json_response(200, &v).header("ETag", tag)
            }
            None => error(404, &format!("no such device {}", quoted(&shown(id)))),
        },
        Op::UsersList => {
            let users: Vec<Value> = (snap.config().users.values())
                .map(|u| edit::user_json(&snap, u, key, &inst.state().seen))
                .collect();
            json_response(200, &json!({ "users": users }))
        }
        Op::UserGet => match snap.config().user(id) {
            Some(u) => {
                let v = edit::user_json(&snap, u, key, &inst.state().seen);
                let tag = v["etag"].as_str().unwrap_or_default().to_string();
                json_response(200, &v).header("ETag", tag)
            }
            None => error(404, &format!("no such user {}", quoted(&shown(id)))),
        },
        Op::DeviceCreate => edit::write(inst, req, &session, Kind::Device, None, false),
        Op::DeviceUpdate => edit::write(inst, req, &session, Kind::Device, Some(id), false),
        Op::DeviceDelete => edit::write(inst, req, &session, Kind::Device, Some(id), true),
        Op::UserCreate => edit::write(inst, req, &session, Kind::User, None, false),
        Op::UserUpdate => edit::write(inst, req, &session, Kind::User, Some(id), false),
        Op::UserDelete => edit::write(inst, req, &session, Kind::User, Some(id), true),
        Op::UserDnd => dnd(inst, req, &session, id),
        Op::BindingsList => {
            let now = now();
            let bindings: Vec<Value> = (snap.bindings().into_iter())
                .map(|b| render::binding(b, now))
                .collect();
            json_response(200, &json!({"now": now, "bindings": bindings}))
        }
        Op::BindingCreate => login_user(inst, req, &session),
        Op::DeviceLogout => logout(inst, &session, Kind::Device, id),
        Op::UserLogout => logout(inst, &session, Kind::User, id),
        Op::Board => Response::new(
            200,
            JSON,
            render::board(&snap, now(), |u| {
                render::state_token(
                    &user_state(&snap, u, &inst.state().seen).name(),
                    snap.dnd(u),
                )
            }),
        ),
        Op::Stats => {
            let users = render::stats(&snap, &inst.state().stats(), now());
            json_response(
                200,
                &json!({
                    "users": users,
                    "summary": {
                        "devices": snap.config().devices.len(),
                        "users": snap.config().users.len(),
                        "bindings": snap.binding_count(),
                        "states_published": inst.state().publisher.count(),
                        "commit_work_queued": inst.executor().pending(),
                        "feed_subscribers": inst.state().feed().subscribers(),
                    }
                }),
            )
        }
        Op::OpenApi => Response::new(200, JSON, OPENAPI.to_string()),
    }
}

/// The `Set-Cookie` value of a session token (`max_age` 0: delete the cookie).
fn cookie(req: &Request, token: &str, max_age: u64) -> String {
    format!(
        "{COOKIE}={token}; Path={}; Max-Age={max_age}; HttpOnly; SameSite=Strict{}",
        base(),
        if req.tls { "; Secure" } else { "" }
    )
}

fn text_field<'a>(v: &'a Value, field: &str) -> Result<&'a str, Response> {
    match v.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim()),
        Some(Value::String(_)) | None | Some(Value::Null) => Err(field_errors(
            400,
            "invalid request",
            &[FieldError::new(field, "required")],
        )),
        Some(_) => Err(field_errors(
            400,
            "invalid request",
            &[FieldError::new(field, "expected a string")],
        )),
    }
}

/// `POST api/session`: checks a console user's password; too many failures lock the name
/// out for `lockout_time`, as wrong PINs do.
fn login(inst: &Instance, req: &Request) -> Response {
    let v = match body(req) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let (user, password) = match (text_field(&v, "user"), v.get("password")) {
        (Ok(u), Some(Value::String(p))) => (u.to_string(), p.clone()),
        (Err(r), _) => return r,
        _ => {
            return field_errors(
                400,
                "invalid request",
                &[FieldError::new("password", "required")],
            )
        }
    };
    let snap = inst.snapshot();
    let now = now();
    if let Err(left) = inst.access().failures().check(&user, now) {
        return error(
            429,
            &format!("too many failed logins: try again in {left} s"),
        )
        .header("Retry-After", left.to_string());
    }
    let account = snap.config().console_users.get(&user);
    // Unknown names cost a verification too, so timing does not tell which names exist.
    let ok = match account {
        Some(a) => a.password_matches(&password),
        None => {
            let _ = deviceuser_core::password::verify(inst.access().decoy(), &password);
            false
        }
    };
    let Some(account) = account.filter(|_| ok) else {
        let locked = inst
            .access()
            .failures()
            .failure(&user, now, &snap.config().general);
        log::warning(&format!(
            "SecurityEvent=\"FailedLogin\" Service=\"res_deviceuser console\" User={} RemoteAddress={}{}",
            quoted(&shown(&user)),
            quoted(&req.remote()),
            if locked { " Locked=\"yes\"" } else { "" }
        ));
        return error(401, "wrong user or password");
    };
    inst.access().failures().success(&user);
    let mut bytes = [0u8; 48];
    if let Err(e) = random(&mut bytes) {
        log::error(&format!("console: {e}"));
        return error(500, "cannot open a session");
    }
    let (token, csrf) = (auth::hex(&bytes[..32]), auth::hex(&bytes[32..]));
    inst.access()
        .sessions()
        .open(token.clone(), csrf.clone(), &user, account.role, now);
    log::verbose(
        2,
        &format!(
            "console: {} ({}) logged in from {}",
            value(&account.id),
            account.role,
            value(&req.remote())
        ),
    );
    json_response(
        200,
        &json!({"user": account.id.as_str(), "role": account.role.as_str(), "csrf": csrf}),
    )
    .header("Set-Cookie", cookie(req, &token, auth::MAX_AGE))
}

/// `PUT api/users/{id}/dnd`: `{"on": true|false}`.
fn dnd(inst: &Instance, req: &Request, session: &Session, user: &str) -> Response {
    let v = match body(req) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(on) = v.get("on").and_then(Value::as_bool) else {
        return field_errors(
            400,
            "invalid request",
            &[FieldError::new("on", "expected true or false")],
        );
    };
    if inst.snapshot().config().user(user).is_none() {
        return error(404, &format!("no such user {}", quoted(&shown(user))));
    }
    match inst.set_dnd(Origin::Console, None, user, on) {
        Ok(_) => {
            log::verbose(
                3,
                &format!(
                    "console: {} turned DND {} for user {}",
                    value(&session.user),
                    if on { "on" } else { "off" },
                    value(user)
                ),
            );
            json_response(200, &json!({"user": user, "dnd": on}))
        }
        Err(e) => error(409, &format!("cannot set DND for {user}: {e}")),
    }
}

/// `POST api/bindings`: `{"user", "device"}`, an administrator's login (no PIN).
fn login_user(inst: &Instance, req: &Request, session: &Session) -> Response {
    let v = match body(req) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let (user, device) = match (text_field(&v, "user"), text_field(&v, "device")) {
        (Ok(u), Ok(d)) => (u.to_string(), d.to_string()),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    match inst.login(Origin::Console, None, &user, &device, LoginMode::Admin) {
        Ok(changes) => {
            log::verbose(
                3,
                &format!(
                    "console: {} logged user {} in on device {}",
                    value(&session.user),
                    value(&user),
                    value(&device)
                ),
            );
            let now = now();
            json_response(
                201,
                &json!({"events": render::binding_events(&changes, now)}),
            )
        }
        Err(e) => {
            if let Some(failure) = LoginFailure::of(&e) {
                login_failed(inst.state(), None, &device, Some(&user), failure);
            }
            let message = format!(
                "cannot log {} in on {}: {e}",
                quoted(&shown(&user)),
                quoted(&shown(&device))
            );
            let (status, field) = match e {
                LoginError::NoSuchUser => (404, "user"),
                LoginError::NoSuchDevice => (404, "device"),
                LoginError::FixedDevice => (409, "device"),
                LoginError::NoPassword | LoginError::Denied => (409, "user"),
                // The shared database refused the change (storage = realtime): no field is
                // wrong, and nothing changed.
                LoginError::Store(_) => return error(503, &message),
            };
            field_errors(status, &message, &[FieldError::new(field, e.to_string())])
        }
    }
}

/// `DELETE api/bindings/device/{id}` and `DELETE api/bindings/user/{id}`.
fn logout(inst: &Instance, session: &Session, kind: Kind, id: &str) -> Response {
    let result = match kind {
        Kind::Device => inst.logout_device(Origin::Console, None, id, Reason::Admin),
        Kind::User => inst.logout_user(Origin::Console, None, id, Reason::Admin),
    };
    match result {
        Ok(changes) => {
            log::verbose(
                3,
                &format!(
                    "console: {} logged out {} {}",
                    value(&session.user),
                    kind.section_type(),
                    value(id)
                ),
            );
            json_response(
                200,
                &json!({"events": render::binding_events(&changes, now())}),
            )
        }
        Err(e) => {
            let status = match e {
                LogoutError::NoSuchUser | LogoutError::NoSuchDevice => 404,
                LogoutError::NotLoggedIn | LogoutError::FixedDevice => 409,
                LogoutError::Store(_) => 503,
            };
            error(
                status,
                &format!("cannot log out {}: {e}", quoted(&shown(id))),
            )
        }
    }
}
