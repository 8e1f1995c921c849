//! Dialplan functions: `DEVICEUSER_DIAL(user)`, `DEVICEUSER_USER([device])`,
//! `DEVICEUSER(user,field)`.
use deviceuser_core::args::split_args;

use crate::host::channel::Channel;
use crate::runtime::{self, user_state};

/// Ids shared with the C shim (FN_DIAL, FN_USER, FN_FIELD).
pub const DIAL: i32 = 0;
pub const USER: i32 = 1;

pub fn name(which: i32) -> &'static str {
    match which {
        DIAL => "DEVICEUSER_DIAL",
        USER => "DEVICEUSER_USER",
        _ => "DEVICEUSER",
    }
}

const FIELDS: &str = "fullname, cid_number, language, devices, dial, state, dnd";

pub fn read(which: i32, chan: Option<&Channel>, data: &str) -> Result<String, String> {
    let rt = runtime::current();
    let Some(rt) = rt.as_ref() else {
        return Err("module not loaded".into());
    };
    let snap = rt.table.snapshot();
    let args = split_args(data);
    match which {
        DIAL => {
            let [user] = args.as_slice() else {
                return Err("expected exactly one argument: the user".into());
            };
            if snap.config().user(user).is_none() {
                return Err(format!("no such user '{user}'"));
            }
            Ok(snap.dial_of(user))
        }
        USER => {
            let device = match args.as_slice() {
                [] => {
                    let chan = chan.ok_or("no argument and no channel: name the device")?;
                    let name = chan.name();
                    let dev = snap.config().device_for_channel(&name);
                    dev.ok_or(format!("channel {name} is not a configured device"))?
                        .id
                        .to_string()
                }
                [device] if snap.config().device(device).is_some() => device.clone(),
                [device] => return Err(format!("no such device '{device}'")),
                _ => return Err("expected at most one argument: the device".into()),
            };
            Ok(snap
                .user_on(&device)
                .map(|b| b.user.to_string())
                .unwrap_or_default())
        }
        _ => {
            let [user, field] = args.as_slice() else {
                return Err(format!(
                    "expected two arguments: user,field (field is one of {FIELDS})"
                ));
            };
            let Some(u) = snap.config().user(user) else {
                return Err(format!("no such user '{user}'"));
            };
            Ok(match field.to_ascii_lowercase().as_str() {
                "fullname" => u.fullname.to_string(),
                "cid_number" => u.cid_number.to_string(),
                "language" => u.language.as_deref().unwrap_or_default().to_string(),
                "devices" => snap.devices_of(user).join(","),
                "dial" => snap.dial_of(user),
                "state" => user_state(&snap, user, None).name(),
                "dnd" => if snap.dnd(user) { "1" } else { "0" }.to_string(),
                other => return Err(format!("unknown field '{other}' (one of {FIELDS})")),
            })
        }
    }
}

/// `Set(DEVICEUSER(user,dnd)=1)`: the only writable field.
pub fn write(_which: i32, data: &str, value: &str) -> Result<(), String> {
    let rt = runtime::current();
    let Some(rt) = rt.as_ref() else {
        return Err("module not loaded".into());
    };
    let args = split_args(data);
    let [user, field] = args.as_slice() else {
        return Err("expected two arguments: user,dnd".into());
    };
    if !field.eq_ignore_ascii_case("dnd") {
        return Err(format!(
            "field '{field}' is read-only (only dnd is writable)"
        ));
    }
    let on = runtime::parse_on_off(value)
        .ok_or_else(|| format!("dnd must be 1/0, on/off or yes/no, not '{value}'"))?;
    runtime::set_dnd(rt, user, on).map(|_| ())
}
