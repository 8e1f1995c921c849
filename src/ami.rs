//! AMI actions (class `agent`): DeviceUserLogin, DeviceUserLogout, DeviceUserBindings,
//! DeviceUserDevices, DeviceUserUsers, DeviceUserDND, DeviceUserUnlock. Events come from the commit pipeline.
use deviceuser_core::args::parse_on_off;
use deviceuser_core::failure::LoginFailure;
use deviceuser_core::logtext::quoted;
use deviceuser_core::render;
use deviceuser_core::{LoginMode, Reason};

use crate::host::ami::Action;
use crate::instance::Instance;
use crate::pipeline::Origin;
use crate::security::login_failed;
use crate::state::{now, user_state};

pub fn login(inst: &Instance, a: &Action) {
    let (user, device) = (a.header("User"), a.header("Device"));
    if user.is_empty() || device.is_empty() {
        return a.error("Both User and Device are required");
    }
    match inst.login(Origin::Ami, None, &user, &device, LoginMode::Admin) {
        Ok(_) => a.ack(&format!("User {user} logged in on device {device}")),
        Err(e) => {
            if let Some(failure) = LoginFailure::of(&e) {
                login_failed(inst.state(), None, &device, Some(&user), failure);
            }
            a.error(&format!(
                "Cannot log {} in on {}: {e}",
                quoted(&user),
                quoted(&device)
            ))
        }
    }
}

pub fn logout(inst: &Instance, a: &Action) {
    let (user, device) = (a.header("User"), a.header("Device"));
    let result =
        match (user.is_empty(), device.is_empty()) {
            (true, false) => inst.logout_device(Origin::Ami, None, &device, Reason::Admin),
            (false, true) => inst.logout_user(Origin::Ami, None, &user, Reason::Admin),
            _ => return a.error(
                "Give either Device (log that device out) or User (log that user out everywhere)",
            ),
        };
    match result {
        Ok(c) => a.ack(&format!("{} binding(s) removed", c.removed.len())),
        Err(e) => a.error(&format!(
            "Cannot log out {}: {e}",
            quoted(&format!("{user}{device}"))
        )),
    }
}

pub fn bindings(inst: &Instance, a: &Action) {
    let snap = inst.snapshot();
    let now = now();
    let (user, device) = (a.header("User"), a.header("Device"));
    if !user.is_empty() && snap.config().user(&user).is_none() {
        return a.error(&format!("No such user {}", quoted(&user)));
    }
    if !device.is_empty() && snap.config().device(&device).is_none() {
        return a.error(&format!("No such device {}", quoted(&device)));
    }
    let items: Vec<_> = snap
        .bindings()
        .into_iter()
        .filter(|b| {
            (user.is_empty() || b.user == user) && (device.is_empty() || b.device == device)
        })
        .map(|b| {
            vec![
                ("User", b.user.to_string()),
                ("Device", b.device.to_string()),
                ("LoginTime", b.since.to_string()),
                ("Duration", now.saturating_sub(b.since).to_string()),
            ]
        })
        .collect();
    a.list(
        "Bindings",
        "DeviceUserBinding",
        "DeviceUserBindingsComplete",
        &items,
    );
}

pub fn devices(inst: &Instance, a: &Action) {
    let snap = inst.snapshot();
    let items: Vec<_> = (snap.config().devices.values())
        .map(|d| {
            vec![
                ("Device", d.id.to_string()),
                ("Description", d.description.to_string()),
                ("Mode", d.mode.to_string()),
                (
                    "DefaultUser",
                    d.default_user.as_deref().unwrap_or_default().to_string(),
                ),
                (
                    "User",
                    snap.user_on(&d.id)
                        .map(|b| b.user.to_string())
                        .unwrap_or_default(),
                ),
                ("Dial", d.dial.to_string()),
            ]
        })
        .collect();
    a.list(
        "Devices",
        "DeviceUserDevice",
        "DeviceUserDevicesComplete",
        &items,
    );
}

pub fn users(inst: &Instance, a: &Action) {
    let snap = inst.snapshot();
    let items: Vec<_> = (snap.config().users.values())
        .map(|u| {
            vec![
                ("User", u.id.to_string()),
                ("FullName", u.fullname.to_string()),
                (
                    "Language",
                    u.language.as_deref().unwrap_or_default().to_string(),
                ),
                ("CallerIDNum", u.cid_number.to_string()),
                ("Devices", snap.devices_of(&u.id).join(",")),
                ("State", user_state(&snap, &u.id, &inst.state().seen).name()),
                (
                    "DND",
                    if snap.dnd(&u.id) { "on" } else { "off" }.to_string(),
                ),
            ]
        })
        .collect();
    a.list("Users", "DeviceUserUser", "DeviceUserUsersComplete", &items);
}

pub fn unlock(inst: &Instance, a: &Action) {
    let user = a.header("User");
    if user.is_empty() {
        return a.error("User is required");
    }
    match inst.unlock(Origin::Ami, &user) {
        Ok(left) => a.ack(&render::unlocked(&user, left)),
        Err(e) => a.error(&format!("Cannot unlock {}: {e}", quoted(&user))),
    }
}

pub fn dnd(inst: &Instance, a: &Action) {
    let user = a.header("User");
    if user.is_empty() {
        return a.error("User is required");
    }
    let value = a.header("DND");
    let snap = inst.snapshot();
    if value.is_empty() {
        return match snap.config().user(&user) {
            Some(_) => a.ack(&format!(
                "DND {}",
                if snap.dnd(&user) { "on" } else { "off" }
            )),
            None => a.error(&format!("No such user {}", quoted(&user))),
        };
    }
    let Some(on) = parse_on_off(&value) else {
        return a.error(&format!("DND must be on or off, not {}", quoted(&value)));
    };
    match inst.set_dnd(Origin::Ami, None, &user, on) {
        Ok(_) => a.ack(&format!("DND {}", if on { "on" } else { "off" })),
        Err(e) => a.error(&format!("Cannot set DND for {}: {e}", quoted(&user))),
    }
}
