//! The module's hints in `[general] hint_context`, kept in line with the configuration and the
//! binding table.
//!
//! The context holds a pattern hint per length of the numeric user ids
//! (`exten => _XXXX,hint,DeviceUser:${EXTEN}`), from which Asterisk makes a user's own hint
//! when a phone subscribes to that user, and an own hint for every user who is logged in or in
//! DND (so `core show hint <user>` and AMI `ExtensionStateList` show them), or whose id is not
//! all digits. Asterisk scans all its hints each time it adds or removes one (N² for N hints,
//! see [`plan_hints`]), so the module does not register one per configured user: 100,000
//! users load in seconds, not minutes. A user's own hint stays once made (it may have
//! watchers) until the user leaves the configuration.
//!
//! Load and reload read the context once ([`hints::owned`]) and carry out the plan; a commit's
//! deferred work gives each user it logged in (or put in DND) their own hint if they have none
//! yet ([`HintSync::ensure`]), before publishing their state.
use std::sync::Mutex;

use deviceuser_core::config::USER_STATE_PREFIX;
use deviceuser_core::dialplan::{plan_hints, sort_for_removing};
use deviceuser_core::logtext::value;
use deviceuser_core::{CompactString, Snapshot};
use rustc_hash::FxHashSet;

use crate::host::{hints, log};

/// The module's hints: which context they are in and which users have their own hint there.
pub struct HintSync {
    state: Mutex<State>,
}

struct State {
    /// The `hint_context` the hints are in (as of the last [`HintSync::sync`]).
    context: Option<String>,
    /// Users known to have their own hint in `context`. A hint Asterisk made from a pattern
    /// is not in it until the user logs in (adding it again then only replaces it).
    hinted: Option<FxHashSet<CompactString>>,
}

impl Default for HintSync {
    fn default() -> Self {
        Self::new()
    }
}

impl HintSync {
    pub const fn new() -> Self {
        HintSync {
            state: Mutex::new(State {
                context: None,
                hinted: None,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// At load and reload: brings the hints in line with `snap` (its config and who is
    /// active in it). A context no longer used loses every hint of the module.
    pub fn sync(&self, snap: &Snapshot) {
        let mut state = self.state();
        let config = snap.config();
        let ctx = config.general.hint_context.as_deref();
        if let Some(old_ctx) = state.context.take().filter(|o| Some(o.as_str()) != ctx) {
            clear_context(&old_ctx);
        }
        state.context = ctx.map(str::to_string);
        state.hinted = None;
        let Some(ctx) = ctx else { return };
        let present = hints::owned(ctx);
        let users: Vec<&str> = config.users.keys().collect();
        let mut active: Vec<&str> = snap
            .bindings()
            .into_iter()
            .map(|b| b.user.as_str())
            .collect();
        active.extend(snap.dnd_users());
        active.sort_unstable();
        active.dedup();
        let plan = plan_hints(&present, &users, |u| config.user(u).is_some(), active);
        for exten in &plan.remove {
            hints::remove(ctx, exten);
        }
        let mut failed = 0;
        for (exten, devices) in &plan.add {
            if let Err(e) = hints::add(ctx, exten, devices) {
                failed += 1;
                log::warning(&e);
            }
        }
        log::verbose(
            3,
            &format!(
                "hint_context {}: {} users with a hint of their own, {} hints added or replaced, {} removed{}",
                value(ctx),
                plan.users_hinted.len(),
                plan.add.len() - failed,
                plan.remove.len(),
                if failed > 0 {
                    format!(", {failed} failed")
                } else {
                    String::new()
                }
            ),
        );
        state.hinted = Some(plan.users_hinted.iter().map(CompactString::from).collect());
    }

    /// Gives each of `users` that is logged in somewhere or in DND in `snap` their own hint
    /// if they have none yet. Deferred work of commits, before their states are published.
    pub fn ensure<S: AsRef<str>>(&self, snap: &Snapshot, users: impl Iterator<Item = S>) {
        let mut state = self.state();
        let State { context, hinted } = &mut *state;
        let (Some(ctx), Some(hinted)) = (context.as_deref(), hinted.as_mut()) else {
            return;
        };
        for user in users {
            let user = user.as_ref();
            if hinted.contains(user) || snap.config().user(user).is_none() {
                continue;
            }
            if snap.dial(user).is_empty() && !snap.dnd(user) {
                continue;
            }
            match hints::add(ctx, user, &format!("{USER_STATE_PREFIX}{user}")) {
                Ok(()) => {
                    hinted.insert(CompactString::from(user));
                }
                Err(e) => log::warning(&e),
            }
        }
    }

    /// At unload: removes every hint of the module.
    pub fn clear(&self) {
        let mut state = self.state();
        if let Some(ctx) = state.context.take() {
            clear_context(&ctx);
        }
        state.hinted = None;
        hints::forget_registrar();
    }
}

/// Removes every hint the module has in `ctx`: the patterns first, so that no phone's
/// subscription makes a new hint from one meanwhile, then the rest.
fn clear_context(ctx: &str) {
    let (patterns, own): (Vec<String>, Vec<String>) = hints::owned(ctx)
        .into_iter()
        .map(|(exten, _)| exten)
        .partition(|e| e.starts_with('_'));
    for p in &patterns {
        hints::remove(ctx, p);
    }
    let mut own: Vec<String> = if patterns.is_empty() {
        own
    } else {
        hints::owned(ctx).into_iter().map(|(e, _)| e).collect()
    };
    sort_for_removing(&mut own);
    for exten in &own {
        hints::remove(ctx, exten);
    }
}

/// Tells when users' states must be computed again because what they depend on changed
/// without any device publishing a change: once Asterisk is fully booted (the module loads
/// before the dialplan, so a `Local/<exten>@<context>` device reads as invalid until then),
/// and each time the dialplan is replaced (`dialplan reload`, which sends no event). Polled
/// by the module's timer thread once a second.
#[derive(Debug, Default)]
pub struct DialplanWatch {
    seen: Option<(usize, usize)>,
}

impl DialplanWatch {
    /// True the first time it is asked after Asterisk is fully booted, and after every
    /// replacement of the dialplan since it last said so.
    pub fn changed(&mut self) -> bool {
        if !hints::fully_booted() {
            return false;
        }
        let now = hints::dialplan_generation();
        self.seen.replace(now) != Some(now)
    }
}
