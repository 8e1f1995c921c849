//! Console edits of devices and users, written to `res_deviceuser.conf` through Asterisk's
//! config writer and applied as `module reload` applies a changed file.
//!
//! One edit at a time: the file is loaded (with its comments) and must be valid as it is —
//! an error someone left in it is reported, and nothing is written; the edit's `If-Match`
//! must name the device's or user's current ETag (another administrator's change in the
//! meantime is refused, never overwritten); the edit is applied and the whole file is
//! validated exactly as at load; only then is the previous file kept as `.bak`, the new one
//! written and the module reloaded, which keeps every login the new file allows.
use deviceuser_core::config::{shown, Config, ConfigError, Device, User};
use deviceuser_core::console::auth::Session;
use deviceuser_core::console::edit::{self as core_edit, Kind};
use deviceuser_core::console::render;
use deviceuser_core::hash_password;
use deviceuser_core::logtext::{quoted, value};
use deviceuser_core::Snapshot;
use serde_json::{json, Value};

use super::reply::{base, body, device_state_token, error, field_errors, json_response};
use crate::config_file::CONFIG_FILE;
use crate::host::config_edit::Editable;
use crate::host::http::{Request, Response};
use crate::host::log;
use crate::instance::Instance;
use crate::state::{user_state, SeenStates};

pub fn device_json(snap: &Snapshot, d: &Device, key: &[u8]) -> Value {
    let tag = core_edit::etag(key, &core_edit::device_canonical(d));
    render::device(snap, d, device_state_token(&d.dial), &tag)
}

pub fn user_json(snap: &Snapshot, u: &User, key: &[u8], seen: &SeenStates) -> Value {
    let tag = core_edit::etag(key, &core_edit::user_canonical(u));
    let state = render::state_token(&user_state(snap, &u.id, seen).name(), snap.dnd(&u.id));
    render::user(snap, u, state, &tag)
}

/// The current ETag of a device or user in `c`.
fn etag_in(c: &Config, kind: Kind, id: &str, key: &[u8]) -> Option<String> {
    match kind {
        Kind::Device => c
            .device(id)
            .map(|d| core_edit::etag(key, &core_edit::device_canonical(d))),
        Kind::User => c
            .user(id)
            .map(|u| core_edit::etag(key, &core_edit::user_canonical(u))),
    }
}

fn file_errors(errors: &[ConfigError]) -> Vec<String> {
    errors.iter().map(ToString::to_string).collect()
}

/// Creates (`id` None), updates or deletes a device or user.
pub fn write(
    inst: &Instance,
    req: &Request,
    session: &Session,
    kind: Kind,
    id: Option<&str>,
    delete: bool,
) -> Response {
    let what = kind.section_type();
    let input = if delete {
        None
    } else {
        match body(req) {
            Ok(v) => Some(v),
            Err(r) => return r,
        }
    };
    let _one_at_a_time = inst.access().edit_lock();
    let key = &inst.access().etag_key;
    let mut file = match Editable::load(CONFIG_FILE) {
        Ok(f) => f,
        Err(e) => return error(409, &format!("{e}: nothing was written")),
    };
    let current = match Config::from_raw(&file.raw()) {
        Ok(parsed) => parsed.config,
        Err(errors) => {
            let list = file_errors(&errors);
            log::warning(&format!(
                "console: {}'s change of {what} refused: {CONFIG_FILE} has errors ({})",
                value(&session.user),
                list.join("; ")
            ));
            return json_response(
                409,
                &json!({
                    "error": format!("{CONFIG_FILE} has errors: fix the file first; nothing was written"),
                    "file_errors": list,
                }),
            );
        }
    };
    if let Some(id) = id {
        let Some(tag) = etag_in(&current, kind, id, key) else {
            return error(404, &format!("no such {what} {}", quoted(&shown(id))));
        };
        match req.header("If-Match") {
            None => {
                return error(
                    428,
                    &format!("an If-Match header with the {what}'s ETag is required"),
                )
                .header("ETag", tag)
            }
            Some(m) if !core_edit::if_match(m, &tag) => {
                return json_response(
                    412,
                    &json!({
                        "error": format!("the {what} {} was changed by someone else since you loaded it; load it again", quoted(&shown(id))),
                        "etag": tag,
                    }),
                )
                .header("ETag", tag)
            }
            Some(_) => {}
        }
    }
    let target_id = match (&input, id) {
        (Some(v), _) => {
            let edit = match core_edit::section_edit(kind, id, v, hash_password) {
                Ok(e) => e,
                Err(fields) => return field_errors(422, &format!("invalid {what}"), &fields),
            };
            if id.is_none() && etag_in(&current, kind, &edit.id, key).is_some() {
                return field_errors(
                    409,
                    &format!("{what} {} already exists", quoted(&shown(&edit.id))),
                    &[core_edit::FieldError::new("id", "already exists")],
                );
            }
            if let Err(e) = file.apply(&edit) {
                return error(500, &format!("cannot change the {what}: {e}"));
            }
            edit.id
        }
        (None, Some(id)) => {
            file.delete(kind, id);
            id.to_string()
        }
        (None, None) => return error(400, "nothing to do"),
    };
    // Validated exactly as a load or reload would read the written file.
    let next = match Config::from_raw(&file.raw()) {
        Ok(parsed) => parsed.config,
        Err(errors) => {
            let (fields, others) = core_edit::split_errors(&errors, kind, &target_id);
            let error = if delete {
                format!("the {what} cannot be deleted: {CONFIG_FILE} would not load without it; nothing was written")
            } else {
                format!(
                    "the {what} cannot be saved: {CONFIG_FILE} would not load; nothing was written"
                )
            };
            return json_response(
                422,
                &json!({
                    "error": error,
                    "fields": fields.iter().map(|f| json!({"field": f.field, "message": f.message})).collect::<Vec<_>>(),
                    "file_errors": others,
                }),
            );
        }
    };
    if let Err(e) = file.save(&format!("res_deviceuser console ({})", session.user)) {
        log::error(&format!("console: {e}"));
        return error(500, &e);
    }
    let verb = match (delete, id) {
        (true, _) => "deleted",
        (false, Some(_)) => "changed",
        (false, None) => "added",
    };
    log::notice(&format!(
        "console: {} {verb} {what} {} in {CONFIG_FILE}",
        value(&session.user),
        value(&target_id)
    ));
    if let Err(e) = inst.reload() {
        return error(
            500,
            &format!("{CONFIG_FILE} was written but the reload failed: {e}"),
        );
    }
    if delete {
        return json_response(200, &json!({"deleted": target_id}));
    }
    let snap = inst.snapshot();
    let v = match kind {
        Kind::Device => snap
            .config()
            .device(&target_id)
            .map(|d| device_json(&snap, d, key)),
        Kind::User => snap
            .config()
            .user(&target_id)
            .map(|u| user_json(&snap, u, key, &inst.state().seen)),
    };
    // The running config is the file just written, unless it changed again meanwhile.
    let v = v.unwrap_or_else(|| {
        let tag = etag_in(&next, kind, &target_id, key).unwrap_or_default();
        json!({"id": target_id, "etag": tag})
    });
    let tag = v["etag"].as_str().unwrap_or_default().to_string();
    let r = json_response(if id.is_none() { 201 } else { 200 }, &v).header("ETag", tag);
    if id.is_none() {
        let plural = match kind {
            Kind::Device => "devices",
            Kind::User => "users",
        };
        r.header("Location", format!("{}api/{plural}/{target_id}", base()))
    } else {
        r
    }
}
