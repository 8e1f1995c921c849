//! CLI commands: `deviceuser show devices|users|bindings`, `deviceuser login`,
//! `deviceuser logout`.
use std::ffi::CStr;

use deviceuser_core::freepbx;
use deviceuser_core::render::{self, BindingFilter};
use deviceuser_core::{LoginMode, LogoutError, Reason};

use crate::host::astdb;
use crate::host::cli::Args;
use crate::runtime;

pub enum Outcome {
    Done(String),
    Usage,
    Failed(String),
}

/// Command words and usage text, by the id the C shim's table uses.
pub fn entry(id: i32) -> Option<(&'static CStr, &'static CStr)> {
    Some(match id {
        0 => (
            c"deviceuser show devices",
            c"Usage: deviceuser show devices\n       Lists the configured devices: id, description, mode (adhoc or fixed),\n       default user, the user logged in now, and dial string.\n",
        ),
        1 => (
            c"deviceuser show users",
            c"Usage: deviceuser show users\n       Lists the configured users: id, name, language and the devices they are\n       logged in on.\n",
        ),
        2 => (
            c"deviceuser show bindings",
            c"Usage: deviceuser show bindings [user <id>|device <id>]\n       Lists who is logged in where, one row per user and device, with the\n       login time (UTC) and how long ago it was.\n",
        ),
        3 => (
            c"deviceuser login",
            c"Usage: deviceuser login <user> <device>\n       Logs a user in on a device as an administrator (no PIN needed).\n       The rules of logins from phones apply: a fixed device refuses, a user\n       on the device is logged off, multiple_logins decides a second device.\n",
        ),
        4 => (
            c"deviceuser logout",
            c"Usage: deviceuser logout {device <id>|user <id>|all}\n       Logs out the user of a device, a user from every device, or everyone.\n       A device with a default user goes back to it; a fixed device keeps it.\n",
        ),
        5 => (
            c"deviceuser dnd",
            c"Usage: deviceuser dnd <user> {on|off}\n       Turns a user's do-not-disturb on or off. While it is on, the user's\n       DeviceUser:<user> state is BUSY (BLF keys show it) and the sample dialplan\n       sends callers to the busy/voicemail path instead of ringing.\n",
        ),
        6 => (
            c"deviceuser show stats",
            c"Usage: deviceuser show stats [user <id>|summary]\n       Logins per user since the module was loaded: number of logins, time\n       logged in (finished and current sessions) and the current session.\n       Without a user: the users who logged in since the load or are logged\n       in now, then the module's counters: the heap memory it holds, how\n       many devices' states it follows (the bound ones), its queued commit\n       work, the states it published. 'summary' prints the counters alone.\n",
        ),
        7 => (
            c"deviceuser import freepbx",
            c"Usage: deviceuser import freepbx [apply]\n       Reads FreePBX's Device & User keys from AstDB (AMPUSER/<user>/...,\n       DEVICE/<device>/type|user|default_user|dial) and prints the equivalent\n       res_deviceuser.conf sections and the current logins. Nothing is written\n       unless 'apply' is given: then the current FreePBX logins are applied to\n       devices and users that exist in res_deviceuser.conf.\n",
        ),
        _ => return None,
    })
}

pub fn run(id: i32, a: &Args) -> Outcome {
    let rt = runtime::current();
    let Some(rt) = rt.as_ref() else {
        return Outcome::Failed("res_deviceuser is not loaded\n".into());
    };
    let snap = rt.table.snapshot();
    match (id, a.argv.len()) {
        (0, 3) => Outcome::Done(render::devices(&snap)),
        (1, 3) => Outcome::Done(render::users(&snap)),
        (2, 3) => Outcome::Done(render::bindings(&snap, runtime::now(), BindingFilter::All)),
        (2, 5) => {
            let id = a.argv[4].clone();
            match a.argv[3].to_ascii_lowercase().as_str() {
                "user" if snap.config().user(&id).is_some() => Outcome::Done(render::bindings(
                    &snap,
                    runtime::now(),
                    BindingFilter::User(id),
                )),
                "user" => Outcome::Failed(format!("No such user '{id}'\n")),
                "device" if snap.config().device(&id).is_some() => Outcome::Done(render::bindings(
                    &snap,
                    runtime::now(),
                    BindingFilter::Device(id),
                )),
                "device" => Outcome::Failed(format!("No such device '{id}'\n")),
                _ => Outcome::Usage,
            }
        }
        (3, 4) => {
            let (user, device) = (&a.argv[2], &a.argv[3]);
            match rt.table.login(
                user,
                device,
                LoginMode::Admin,
                runtime::now(),
                runtime::commit,
            ) {
                Ok(c) if c.is_empty() => Outcome::Done(format!(
                    "User {user} is already logged in on device {device}\n"
                )),
                Ok(_) => Outcome::Done(format!("User {user} logged in on device {device}\n")),
                Err(e) => Outcome::Failed(format!("Cannot log {user} in on {device}: {e}\n")),
            }
        }
        (4, 3) if a.argv[2].eq_ignore_ascii_case("all") => {
            let now = runtime::now();
            let mut removed = 0;
            for device in snap.bindings().into_iter().map(|b| b.device.to_string()) {
                match rt
                    .table
                    .logout_device(&device, Reason::Admin, now, runtime::commit)
                {
                    Ok(c) => removed += c.removed.len(),
                    Err(LogoutError::FixedDevice | LogoutError::NotLoggedIn) => {}
                    Err(e) => {
                        return Outcome::Failed(format!("Cannot log out device {device}: {e}\n"))
                    }
                }
            }
            Outcome::Done(format!("{removed} binding(s) removed\n"))
        }
        (4, 4) => {
            let id = &a.argv[3];
            let now = runtime::now();
            let result = match a.argv[2].to_ascii_lowercase().as_str() {
                "device" => rt
                    .table
                    .logout_device(id, Reason::Admin, now, runtime::commit),
                "user" => rt
                    .table
                    .logout_user(id, Reason::Admin, now, runtime::commit),
                _ => return Outcome::Usage,
            };
            match result {
                Ok(c) => Outcome::Done(format!("{} binding(s) removed\n", c.removed.len())),
                Err(e) => Outcome::Failed(format!("Cannot log out {} {id}: {e}\n", a.argv[2])),
            }
        }
        (5, 4) => {
            let (user, value) = (&a.argv[2], &a.argv[3]);
            let Some(on) = runtime::parse_on_off(value) else {
                return Outcome::Usage;
            };
            match runtime::set_dnd(rt, user, on) {
                Ok(_) => Outcome::Done(format!(
                    "Do not disturb for {user}: {}\n",
                    if on { "on" } else { "off" }
                )),
                Err(e) => Outcome::Failed(format!("Cannot set do not disturb for {user}: {e}\n")),
            }
        }
        (6, 3) | (6, 4) | (6, 5) => {
            let word = a.argv.get(3).map(|w| w.to_ascii_lowercase());
            let (user, table) = match (word.as_deref(), a.argv.len()) {
                (None, _) => (None, true),
                (Some("user"), 5) => (Some(a.argv[4].as_str()), true),
                (Some("summary"), 4) => (None, false),
                _ => return Outcome::Usage,
            };
            if let Some(u) = user.filter(|u| snap.config().user(u).is_none()) {
                return Outcome::Failed(format!("No such user '{u}'\n"));
            }
            let mut out = if table {
                let stats = rt.stats.lock().unwrap_or_else(|e| e.into_inner());
                render::stats(&stats, &snap, runtime::now(), user)
            } else {
                String::new()
            };
            if user.is_none() {
                let bytes = crate::host::alloc::live_bytes();
                let (forwarded, pending) = crate::host::devstate::watched();
                out.push_str(&format!(
                    "Module heap in use: {:.1} MB ({bytes} bytes)\n\
                     Device states followed: {} ({pending} of them not published yet)\n\
                     Device state messages received: {}\n\
                     Commit work queued (AstDB writes, devices to release, states to publish): {}\n\
                     User states published: {}\n\
                     Heap trimmed after bursts of commits: {}\n",
                    bytes as f64 / (1024.0 * 1024.0),
                    forwarded + pending,
                    crate::host::devstate::received(),
                    crate::deferred::pending(),
                    runtime::publish_count(),
                    crate::deferred::trims()
                ));
            }
            Outcome::Done(out)
        }
        (7, 3) => Outcome::Done(import_freepbx(rt, false)),
        (7, 4) if a.argv[3].eq_ignore_ascii_case("apply") => {
            Outcome::Done(import_freepbx(rt, true))
        }
        _ => Outcome::Usage,
    }
}

fn import_freepbx(rt: &runtime::Runtime, apply: bool) -> String {
    let mut entries = Vec::new();
    for family in ["AMPUSER", "DEVICE"] {
        for (key, value) in astdb::tree(family, "") {
            entries.push((format!("{family}/{key}"), value));
        }
    }
    let import = freepbx::import(&entries);
    let mut out = freepbx::render_conf(&import);
    out += "\n; Current logins (user -> device):\n";
    for (user, device) in &import.bindings {
        out += &format!(";   {user} -> {device}\n");
    }
    for w in &import.warnings {
        out += &format!("; warning: {w}\n");
    }
    if apply {
        let now = runtime::now();
        for (user, device) in &import.bindings {
            match rt
                .table
                .login(user, device, LoginMode::Admin, now, runtime::commit)
            {
                Ok(_) => out += &format!("applied: {user} logged in on {device}\n"),
                Err(e) => out += &format!("skipped: {user} on {device}: {e}\n"),
            }
        }
    } else {
        out += "; nothing written: add 'apply' to log these users in\n";
    }
    out += &format!(
        "{} devices, {} users, {} logins found\n",
        import.devices.len(),
        import.users.len(),
        import.bindings.len()
    );
    out
}

/// Tab-completion candidates for word `a.pos`.
pub fn candidates(id: i32, a: &Args) -> Vec<String> {
    let ids = |kind: Option<&str>| -> Vec<String> {
        runtime::with(|rt| {
            let snap = rt.table.snapshot();
            match kind.map(|s| s.to_ascii_lowercase()).as_deref() {
                Some("user") => snap.config().users.keys().map(str::to_string).collect(),
                Some("device") => snap.config().devices.keys().map(str::to_string).collect(),
                _ => Vec::new(),
            }
        })
        .unwrap_or_default()
    };
    let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect();
    match (id, a.pos) {
        (2, 3) => words(&["user", "device"]),
        (2, 4) => ids(a.argv.get(3).map(String::as_str)),
        (3, 2) => ids(Some("user")),
        (3, 3) => ids(Some("device")),
        (4, 2) => words(&["device", "user", "all"]),
        (4, 3) => ids(a.argv.get(2).map(String::as_str)),
        (5, 2) => ids(Some("user")),
        (5, 3) => words(&["on", "off"]),
        (6, 3) => words(&["user"]),
        (6, 4) => ids(Some("user")),
        (7, 3) => words(&["apply"]),
        _ => Vec::new(),
    }
}
