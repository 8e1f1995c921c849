//! CLI commands: `deviceuser show devices|users|bindings`.
use std::ffi::CStr;

use deviceuser_core::render::{self, BindingFilter};

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
        _ => Outcome::Usage,
    }
}

/// Tab-completion candidates for word `a.pos`.
pub fn candidates(id: i32, a: &Args) -> Vec<String> {
    if id != 2 {
        return Vec::new();
    }
    match a.pos {
        3 => vec!["user".into(), "device".into()],
        4 => runtime::with(|rt| {
            let snap = rt.table.snapshot();
            match a.argv.get(3).map(|s| s.to_ascii_lowercase()).as_deref() {
                Some("user") => snap.config().users.keys().cloned().collect(),
                Some("device") => snap.config().devices.keys().cloned().collect(),
                _ => Vec::new(),
            }
        })
        .unwrap_or_default(),
        _ => Vec::new(),
    }
}
