//! The hints the module owns in `[general] hint_context`
//! (`exten => <user>,hint,DeviceUser:<user>`), kept in line with the configured users.
use deviceuser_core::config::{Config, USER_STATE_PREFIX};
use deviceuser_core::dialplan;
use rustc_hash::FxHashMap;

use crate::host::{hints, log};
use crate::state::device_name;

/// Brings the module's hints in line with `new`: one walk of each context involved finds the
/// hints the module has there; those of users no longer configured (all of them in a context
/// no longer used) are removed, and only the missing ones are added. So a `module reload`
/// touches only the users added or removed. Hints are added and removed in the order that
/// costs Asterisk least (see [`dialplan`](deviceuser_core::dialplan)).
pub fn sync_hints(old: Option<&Config>, new: &Config) {
    let ctx = new.general.hint_context.as_deref();
    if let Some(old_ctx) = old.and_then(|c| c.general.hint_context.as_deref()) {
        if ctx != Some(old_ctx) {
            clear_hints(old_ctx);
        }
    }
    let Some(ctx) = ctx else { return };
    let present: FxHashMap<String, String> = hints::owned(ctx).into_iter().collect();
    remove_hints(
        ctx,
        (present.keys()).filter(|u| new.user(u).is_none()).cloned(),
    );
    let mut missing: Vec<&str> = (new.users.keys())
        .filter(|u| {
            present
                .get(*u)
                .and_then(|d| d.strip_prefix(USER_STATE_PREFIX))
                != Some(*u)
        })
        .collect();
    dialplan::sort_for_adding(&mut missing);
    for user in missing {
        if let Err(e) = hints::add(ctx, user, &device_name(user)) {
            log::warning(&e);
        }
    }
}

/// Removes every hint the module has in `ctx`.
pub fn clear_hints(ctx: &str) {
    remove_hints(ctx, hints::owned(ctx).into_iter().map(|(u, _)| u));
}

/// Removes the module's hints of `users` from `ctx`, in ascending order.
fn remove_hints(ctx: &str, users: impl Iterator<Item = String>) {
    let mut users: Vec<String> = users.collect();
    dialplan::sort_for_removing(&mut users);
    for user in &users {
        hints::remove(ctx, user);
    }
}
