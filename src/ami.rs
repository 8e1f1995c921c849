//! AMI actions: DeviceUserLogin, DeviceUserLogout, DeviceUserBindings, DeviceUserDevices,
//! DeviceUserUsers (class `agent`). Events are sent from the commit path (runtime).
use deviceuser_core::{LoginMode, Reason};

use crate::host::ami::Action;
use crate::runtime::{self, user_state};

/// Action names by the id the C shim's table uses.
pub fn name(id: i32) -> &'static str {
    match id {
        0 => "DeviceUserLogin",
        1 => "DeviceUserLogout",
        2 => "DeviceUserBindings",
        3 => "DeviceUserDevices",
        4 => "DeviceUserUsers",
        _ => "DeviceUserDND",
    }
}

pub fn handle(id: i32, a: &Action) {
    let rt = runtime::current();
    let Some(rt) = rt.as_ref() else {
        a.error("res_deviceuser is not loaded");
        return;
    };
    let now = runtime::now();
    let snap = rt.table.snapshot();
    match id {
        0 => {
            let (user, device) = (a.header("User"), a.header("Device"));
            if user.is_empty() || device.is_empty() {
                return a.error("Both User and Device are required");
            }
            match rt
                .table
                .login(&user, &device, LoginMode::Admin, now, runtime::commit)
            {
                Ok(_) => a.ack(&format!("User {user} logged in on device {device}")),
                Err(e) => {
                    runtime::login_failed(&device, Some(&user), &e.to_string());
                    a.error(&format!("Cannot log {user} in on {device}: {e}"))
                }
            }
        }
        1 => {
            let (user, device) = (a.header("User"), a.header("Device"));
            let result = match (user.is_empty(), device.is_empty()) {
                (true, false) => rt.table.logout_device(&device, Reason::Admin, now, runtime::commit),
                (false, true) => rt.table.logout_user(&user, Reason::Admin, now, runtime::commit),
                _ => return a.error("Give either Device (log that device out) or User (log that user out everywhere)"),
            };
            match result {
                Ok(c) => a.ack(&format!("{} binding(s) removed", c.removed.len())),
                Err(e) => a.error(&format!("Cannot log out {}{}: {e}", user, device)),
            }
        }
        2 => {
            let (user, device) = (a.header("User"), a.header("Device"));
            if !user.is_empty() && snap.config().user(&user).is_none() {
                return a.error(&format!("No such user '{user}'"));
            }
            if !device.is_empty() && snap.config().device(&device).is_none() {
                return a.error(&format!("No such device '{device}'"));
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
        3 => {
            let items: Vec<_> = snap
                .config()
                .devices
                .values()
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
        5 => {
            let user = a.header("User");
            if user.is_empty() {
                return a.error("User is required");
            }
            let value = a.header("DND");
            if value.is_empty() {
                return match snap.config().user(&user) {
                    Some(_) => a.ack(&format!(
                        "DND {}",
                        if snap.dnd(&user) { "on" } else { "off" }
                    )),
                    None => a.error(&format!("No such user '{user}'")),
                };
            }
            let Some(on) = runtime::parse_on_off(&value) else {
                return a.error(&format!("DND must be on or off, not '{value}'"));
            };
            match runtime::set_dnd(rt, &user, on) {
                Ok(_) => a.ack(&format!("DND {}", if on { "on" } else { "off" })),
                Err(e) => a.error(&format!("Cannot set DND for {user}: {e}")),
            }
        }
        _ => {
            let items: Vec<_> = snap
                .config()
                .users
                .values()
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
                        ("State", user_state(&snap, &u.id, None).name()),
                        (
                            "DND",
                            if snap.dnd(&u.id) { "on" } else { "off" }.to_string(),
                        ),
                    ]
                })
                .collect();
            a.list("Users", "DeviceUserUser", "DeviceUserUsersComplete", &items);
        }
    }
}
