//! CLI commands: `deviceuser show devices|users|user|bindings|stats`, `deviceuser login`,
//! `deviceuser logout`, `deviceuser dnd`, `deviceuser unlock user`,
//! `deviceuser import freepbx`. Each has a run
//! handler and a completion handler; the command words and usage are in the entry table.
use deviceuser_core::args::parse_on_off;
use deviceuser_core::freepbx;
use deviceuser_core::logtext::{quoted, value};
use deviceuser_core::render::{self, BindingFilter};
use deviceuser_core::{LoginMode, LogoutError, Reason};

use crate::host::astdb;
use crate::host::cli::{Args, Outcome};
use crate::instance::Instance;
use crate::pipeline::Origin;
use crate::state::now;

fn words(w: &[&str]) -> Vec<String> {
    w.iter().map(|s| s.to_string()).collect()
}

/// Configured ids of `kind` ("user" or "device", any case).
fn ids(inst: &Instance, kind: Option<&str>) -> Vec<String> {
    let snap = inst.snapshot();
    match kind.map(str::to_ascii_lowercase).as_deref() {
        Some("user") => snap.config().users.keys().map(str::to_string).collect(),
        Some("device") => snap.config().devices.keys().map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

pub fn no_completion(_: &Instance, _: &Args) -> Vec<String> {
    Vec::new()
}

pub fn show_devices(inst: &Instance, a: &Args) -> Outcome {
    match a.argv.len() {
        3 => Outcome::Done(render::devices(&inst.snapshot())),
        _ => Outcome::Usage,
    }
}

pub fn show_users(inst: &Instance, a: &Args) -> Outcome {
    match a.argv.len() {
        3 => Outcome::Done(render::users(&inst.snapshot())),
        _ => Outcome::Usage,
    }
}

pub fn show_bindings(inst: &Instance, a: &Args) -> Outcome {
    let snap = inst.snapshot();
    let filter = match a.argv.len() {
        3 => BindingFilter::All,
        5 => {
            let id = a.argv[4].clone();
            match a.argv[3].to_ascii_lowercase().as_str() {
                "user" if snap.config().user(&id).is_some() => BindingFilter::User(id),
                "user" => return Outcome::Failed(format!("No such user {}\n", quoted(&id))),
                "device" if snap.config().device(&id).is_some() => BindingFilter::Device(id),
                "device" => return Outcome::Failed(format!("No such device {}\n", quoted(&id))),
                _ => return Outcome::Usage,
            }
        }
        _ => return Outcome::Usage,
    };
    Outcome::Done(render::bindings(&snap, now(), filter))
}

pub fn complete_show_bindings(inst: &Instance, a: &Args) -> Vec<String> {
    match a.pos {
        3 => words(&["user", "device"]),
        4 => ids(inst, a.argv.get(3).map(String::as_str)),
        _ => Vec::new(),
    }
}

pub fn login(inst: &Instance, a: &Args) -> Outcome {
    let [_, _, user, device] = a.argv.as_slice() else {
        return Outcome::Usage;
    };
    match inst.login(Origin::Cli, None, user, device, LoginMode::Admin) {
        Ok(c) if c.is_empty() => Outcome::Done(format!(
            "User {user} is already logged in on device {device}\n"
        )),
        Ok(_) => Outcome::Done(format!("User {user} logged in on device {device}\n")),
        Err(e) => Outcome::Failed(format!(
            "Cannot log {} in on {}: {e}\n",
            quoted(user),
            quoted(device)
        )),
    }
}

pub fn complete_login(inst: &Instance, a: &Args) -> Vec<String> {
    match a.pos {
        2 => ids(inst, Some("user")),
        3 => ids(inst, Some("device")),
        _ => Vec::new(),
    }
}

pub fn logout(inst: &Instance, a: &Args) -> Outcome {
    match a.argv.len() {
        3 if a.argv[2].eq_ignore_ascii_case("all") => logout_all(inst),
        4 => {
            let id = &a.argv[3];
            let result = match a.argv[2].to_ascii_lowercase().as_str() {
                "device" => inst.logout_device(Origin::Cli, None, id, Reason::Admin),
                "user" => inst.logout_user(Origin::Cli, None, id, Reason::Admin),
                _ => return Outcome::Usage,
            };
            match result {
                Ok(c) => Outcome::Done(format!("{} binding(s) removed\n", c.removed.len())),
                Err(e) => Outcome::Failed(format!(
                    "Cannot log out {} {}: {e}\n",
                    a.argv[2],
                    quoted(id)
                )),
            }
        }
        _ => Outcome::Usage,
    }
}

fn logout_all(inst: &Instance) -> Outcome {
    let removed = match inst.logout_all(Origin::Cli, Reason::Admin) {
        Ok(c) => c.removed.len(),
        Err(LogoutError::NotLoggedIn) => 0,
        Err(e) => return Outcome::Failed(format!("Cannot log everyone out: {e}\n")),
    };
    Outcome::Done(format!("{removed} binding(s) removed\n"))
}

pub fn complete_logout(inst: &Instance, a: &Args) -> Vec<String> {
    match a.pos {
        2 => words(&["device", "user", "all"]),
        3 => ids(inst, a.argv.get(2).map(String::as_str)),
        _ => Vec::new(),
    }
}

pub fn dnd(inst: &Instance, a: &Args) -> Outcome {
    let [_, _, user, value] = a.argv.as_slice() else {
        return Outcome::Usage;
    };
    let Some(on) = parse_on_off(value) else {
        return Outcome::Usage;
    };
    match inst.set_dnd(Origin::Cli, None, user, on) {
        Ok(_) => Outcome::Done(format!(
            "Do not disturb for {user}: {}\n",
            if on { "on" } else { "off" }
        )),
        Err(e) => Outcome::Failed(format!(
            "Cannot set do not disturb for {}: {e}\n",
            quoted(user)
        )),
    }
}

pub fn complete_dnd(inst: &Instance, a: &Args) -> Vec<String> {
    match a.pos {
        2 => ids(inst, Some("user")),
        3 => words(&["on", "off"]),
        _ => Vec::new(),
    }
}

pub fn show_user(inst: &Instance, a: &Args) -> Outcome {
    let [_, _, _, id] = a.argv.as_slice() else {
        return Outcome::Usage;
    };
    let snap = inst.snapshot();
    let state = inst.state();
    let text = render::user(&snap, &state.stats(), &state.lockout(), now(), id);
    match text {
        Some(text) => Outcome::Done(text),
        None => Outcome::Failed(format!("No such user {}\n", quoted(id))),
    }
}

pub fn complete_show_user(inst: &Instance, a: &Args) -> Vec<String> {
    match a.pos {
        3 => ids(inst, Some("user")),
        _ => Vec::new(),
    }
}

pub fn unlock(inst: &Instance, a: &Args) -> Outcome {
    let [_, _, kind, user] = a.argv.as_slice() else {
        return Outcome::Usage;
    };
    if !kind.eq_ignore_ascii_case("user") {
        return Outcome::Usage;
    }
    match inst.unlock(Origin::Cli, user) {
        Ok(left) => Outcome::Done(format!("{}\n", render::unlocked(user, left))),
        Err(e) => Outcome::Failed(format!("Cannot unlock {}: {e}\n", quoted(user))),
    }
}

pub fn complete_unlock(inst: &Instance, a: &Args) -> Vec<String> {
    match a.pos {
        2 => words(&["user"]),
        3 => {
            let lockout = inst.state().lockout();
            let locked = lockout.locked(now()).into_iter();
            locked.map(|(u, _)| u.to_string()).collect()
        }
        _ => Vec::new(),
    }
}

pub fn show_stats(inst: &Instance, a: &Args) -> Outcome {
    let snap = inst.snapshot();
    let word = a.argv.get(3).map(|w| w.to_ascii_lowercase());
    let (user, table) = match (word.as_deref(), a.argv.len()) {
        (None, 3) => (None, true),
        (Some("user"), 5) => (Some(a.argv[4].as_str()), true),
        (Some("summary"), 4) => (None, false),
        _ => return Outcome::Usage,
    };
    if let Some(u) = user.filter(|u| snap.config().user(u).is_none()) {
        return Outcome::Failed(format!("No such user {}\n", quoted(u)));
    }
    let now = now();
    let state = inst.state();
    let mut out = if table {
        render::stats_with_lockout(&state.stats(), &snap, &state.lockout(), now, user)
    } else {
        String::new()
    };
    if user.is_none() {
        let bytes = crate::host::alloc::live_bytes();
        let (forwarded, pending) = inst.follower().watched();
        out.push_str(&format!(
            "Logins restored from {} at load: {}\n\
             Users locked out after wrong PINs: {}\n",
            if inst.cluster().is_some() {
                "the database"
            } else {
                "AstDB"
            },
            state.stats().restored_total(),
            state.lockout().locked(now).len()
        ));
        out.push_str(&format!(
            "Module heap in use: {:.1} MB ({bytes} bytes)\n\
             Device states followed: {} ({pending} of them not published yet)\n\
             All device state traffic followed (for devices not published yet): {}\n\
             Device state messages received: {}\n\
             Commit work queued (AstDB writes, devices to release, states to publish): {}\n\
             User states published: {}\n\
             Provider queries (DeviceUser: states Asterisk asked for): {}\n\
             Heap trimmed after bursts of commits: {}\n\
             Queue and MWI work queued: {}\n",
            bytes as f64 / (1024.0 * 1024.0),
            forwarded + pending,
            if inst.follower().follows_all() {
                "yes"
            } else {
                "no"
            },
            inst.follower().received(),
            inst.executor().pending(),
            inst.state().publisher.count(),
            inst.provided(),
            inst.executor().trims(),
            inst.follow_ups().pending()
        ));
        if let Some(c) = inst.cluster() {
            let down = c.down_nodes();
            out.push_str(&format!(
                "Node: {} (storage realtime: the database {})\n\
                 Nodes down: {}\n",
                value(c.store.node()),
                if c.is_failing() {
                    "does not answer"
                } else {
                    "answers"
                },
                if down.is_empty() {
                    "none".to_string()
                } else {
                    (down.iter().map(|n| value(n).to_string()))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ));
        }
    }
    Outcome::Done(out)
}

pub fn complete_show_stats(inst: &Instance, a: &Args) -> Vec<String> {
    match a.pos {
        3 => words(&["user", "summary"]),
        4 => ids(inst, Some("user")),
        _ => Vec::new(),
    }
}

pub fn import_freepbx(inst: &Instance, a: &Args) -> Outcome {
    let apply = match a.argv.len() {
        3 => false,
        4 if a.argv[3].eq_ignore_ascii_case("apply") => true,
        _ => return Outcome::Usage,
    };
    let mut entries = Vec::new();
    for family in ["AMPUSER", "DEVICE"] {
        for (key, value) in astdb::tree(family, "") {
            entries.push((format!("{family}/{key}"), value));
        }
    }
    let import = freepbx::import(&entries);
    let mut plan = freepbx::plan_logins(&import, &inst.snapshot());
    if apply {
        freepbx::apply_logins(&mut plan, |user, device| {
            inst.login(Origin::Cli, None, user, device, LoginMode::Admin)
                .map(|changes| !changes.is_empty())
                .map_err(|e| e.to_string())
        });
    }
    Outcome::Done(freepbx::render_output(&import, &plan, apply))
}

pub fn complete_import(_: &Instance, a: &Args) -> Vec<String> {
    match a.pos {
        3 => words(&["apply"]),
        _ => Vec::new(),
    }
}
