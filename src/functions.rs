//! Dialplan functions: `DEVICEUSER_DIAL(user)`, `DEVICEUSER_USER([device])`,
//! `DEVICEUSER(user,field)` (the `dnd` field is writable), `DEVICEUSER_ALLOWED(number)` and
//! `DEVICEUSER_EMERGENCY_CID([device])`.
use deviceuser_core::args::{parse_on_off, split_args};
use deviceuser_core::logtext::{quoted, value};

use crate::host::channel::Channel;
use crate::host::devstate::device_state;
use crate::instance::Instance;
use crate::pipeline::Origin;
use crate::state::{device_name, user_state};
use deviceuser_core::Snapshot;

const FIELDS: &str = "fullname, cid_number, language, devices, dial, state, dnd, queues, mailbox";

/// `DEVICEUSER_DIAL(user)`: the dial string of the user's devices (`&`-joined), empty when
/// logged out.
pub fn dial(inst: &Instance, _chan: Option<&Channel>, data: &str) -> Result<String, String> {
    let snap = inst.snapshot();
    let args = split_args(data);
    let [user] = args.as_slice() else {
        return Err("expected exactly one argument: the user".into());
    };
    if snap.config().user(user).is_none() {
        return Err(format!("no such user {}", quoted(user)));
    }
    Ok(dial_of(inst, &snap, user))
}

/// The user's dial string, without the devices of nodes that are down.
fn dial_of(inst: &Instance, snap: &Snapshot, user: &str) -> String {
    match inst.cluster().map(|c| c.down_nodes()) {
        Some(down) if !down.is_empty() => snap.dial_where(user, |d| {
            !d.remote || !d.node.as_ref().is_some_and(|n| down.iter().any(|x| x == n))
        }),
        _ => snap.dial_of(user),
    }
}

/// `DEVICEUSER_USER([device])`: the user on the device (default: the calling channel's).
pub fn user(inst: &Instance, chan: Option<&Channel>, data: &str) -> Result<String, String> {
    let snap = inst.snapshot();
    let args = split_args(data);
    let device = match args.as_slice() {
        [] => {
            // AMI's Getvar runs functions on a dummy channel without a name.
            let name = chan.map(Channel::name).filter(|n| !n.is_empty());
            let name = name.ok_or("called without a channel (from AMI Getvar?) and without an argument: name the device")?;
            let dev = snap.config().device_for_channel(&name);
            dev.ok_or(format!(
                "channel {} is not a configured device",
                value(&name)
            ))?
            .id
            .to_string()
        }
        [device] if snap.config().device(device).is_some() => device.clone(),
        [device] => return Err(format!("no such device {}", quoted(device))),
        _ => return Err("expected at most one argument: the device".into()),
    };
    Ok(snap
        .user_on(&device)
        .map(|b| b.user.to_string())
        .unwrap_or_default())
}

/// `DEVICEUSER(user,field)`.
pub fn field(inst: &Instance, _chan: Option<&Channel>, data: &str) -> Result<String, String> {
    let snap = inst.snapshot();
    let args = split_args(data);
    let [user, field] = args.as_slice() else {
        return Err(format!(
            "expected two arguments: user,field (field is one of {FIELDS})"
        ));
    };
    let Some(u) = snap.config().user(user) else {
        return Err(format!("no such user {}", quoted(user)));
    };
    Ok(match field.to_ascii_lowercase().as_str() {
        "fullname" => u.fullname.to_string(),
        "cid_number" => u.cid_number.to_string(),
        "language" => u.language.as_deref().unwrap_or_default().to_string(),
        "devices" => snap.devices_of(user).join(","),
        "dial" => dial_of(inst, &snap, user),
        // With several nodes: Asterisk's aggregate of every node's state.
        "state" if inst.cluster().is_some() => device_state(&device_name(user)).name(),
        "state" => user_state(&snap, user, &inst.state().seen).name(),
        "dnd" => if snap.dnd(user) { "1" } else { "0" }.to_string(),
        "queues" => (snap.config().queues_of(user).iter())
            .map(|q| q.to_string())
            .collect::<Vec<_>>()
            .join(","),
        "mailbox" => u.mailbox.as_deref().unwrap_or_default().to_string(),
        _ => return Err(format!("unknown field {} (one of {FIELDS})", quoted(field))),
    })
}

/// `Set(DEVICEUSER(user,dnd)=1)`: the only writable field.
pub fn set_field(inst: &Instance, data: &str, value: &str) -> Result<(), String> {
    let args = split_args(data);
    let [user, field] = args.as_slice() else {
        return Err("expected two arguments: user,dnd".into());
    };
    if !field.eq_ignore_ascii_case("dnd") {
        return Err(format!(
            "field {} is read-only (only dnd is writable)",
            quoted(field)
        ));
    }
    let on = parse_on_off(value)
        .ok_or_else(|| format!("dnd must be 1/0, on/off or yes/no, not {}", quoted(value)))?;
    inst.set_dnd(Origin::Dialplan, None, user, on).map(|_| ())
}

/// The device a function names, or the calling channel's.
fn device_arg(
    snap: &deviceuser_core::Snapshot,
    chan: Option<&Channel>,
    arg: Option<&String>,
) -> Result<String, String> {
    match arg.filter(|a| !a.is_empty()) {
        Some(device) if snap.config().device(device).is_some() => Ok(device.clone()),
        Some(device) => Err(format!("no such device {}", quoted(device))),
        None => {
            let chan = chan.ok_or("no device given and no channel: name the device")?;
            let name = chan.name();
            let dev = snap.config().device_for_channel(&name);
            Ok(dev
                .ok_or(format!("channel {name} is not a configured device"))?
                .id
                .to_string())
        }
    }
}

/// `DEVICEUSER_ALLOWED(number)`: `1` if `number` is one of `allowed_numbers` (what a
/// phone with nobody logged in may still call), else `0`. Read from the running
/// configuration, so a reload changes the answer.
pub fn allowed(inst: &Instance, _chan: Option<&Channel>, data: &str) -> Result<String, String> {
    let args = split_args(data);
    let [number] = args.as_slice() else {
        return Err("expected exactly one argument: the number dialled".into());
    };
    let snap = inst.snapshot();
    let yes = snap
        .config()
        .general
        .allowed_numbers
        .iter()
        .any(|n| n == number);
    Ok(if yes { "1" } else { "0" }.to_string())
}

/// `DEVICEUSER_EMERGENCY_CID([device])`: the device's `emergency_callerid` (default: the
/// calling channel's device), empty when it has none, or when the calling channel is no
/// device (an ordinary phone's emergency call goes through the same dialplan).
pub fn emergency_cid(
    inst: &Instance,
    chan: Option<&Channel>,
    data: &str,
) -> Result<String, String> {
    let snap = inst.snapshot();
    let args = split_args(data);
    if args.len() > 1 {
        return Err("expected at most one argument: the device".into());
    }
    if args.first().is_none_or(|a| a.is_empty()) {
        let name = chan
            .ok_or("no device given and no channel: name the device")?
            .name();
        if snap.config().device_for_channel(&name).is_none() {
            return Ok(String::new());
        }
    }
    let device = device_arg(&snap, chan, args.first())?;
    Ok(snap
        .config()
        .device(&device)
        .and_then(|d| d.emergency_callerid.as_deref())
        .unwrap_or_default()
        .to_string())
}
