//! Automatic logouts: `max_login_time`, `shift_end` and `logout_on_unregister`. A thread of
//! the module's own checks once a second (only when a policy is configured) and logs out
//! through the same commit path as every other logout. It is joined at unload.
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use deviceuser_core::policy::{any_time_policy, any_unregister_policy, due_logouts};
use deviceuser_core::Reason;

use crate::host::clock::utc_offset;
use crate::host::devstate::{device_state, DeviceState};
use crate::host::log;
use crate::host::thread::{self, Thread};
use crate::runtime::{self, Runtime};

struct Timer {
    stop: Mutex<bool>,
    wake: Condvar,
}

static TIMER: Timer = Timer {
    stop: Mutex::new(false),
    wake: Condvar::new(),
};
static THREAD: Mutex<Option<Thread>> = Mutex::new(None);

pub fn start() -> Result<(), String> {
    *TIMER.stop.lock().unwrap_or_else(|e| e.into_inner()) = false;
    let handle = thread::spawn(c"devuser-policy", run)
        .map_err(|e| format!("cannot start the policy thread: {e}"))?;
    *THREAD.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
    Ok(())
}

/// Stops and joins the thread (before the module's code is unmapped).
pub fn stop() {
    *TIMER.stop.lock().unwrap_or_else(|e| e.into_inner()) = true;
    TIMER.wake.notify_all();
    if let Some(h) = THREAD.lock().unwrap_or_else(|e| e.into_inner()).take() {
        h.join();
    }
}

fn run() {
    runtime::watch_bound_devices();
    runtime::publish_active_users();
    let mut seeded = false;
    loop {
        {
            let stop = TIMER.stop.lock().unwrap_or_else(|e| e.into_inner());
            let (stop, _) = TIMER
                .wake
                .wait_timeout_while(stop, Duration::from_secs(1), |s| !*s)
                .unwrap_or_else(|e| e.into_inner());
            if *stop {
                return;
            }
        }
        crate::host::devstate::tend();
        runtime::with(|rt| {
            if !seeded {
                seed_unregistered(rt);
                seeded = true;
            }
            tick(rt, runtime::now());
        });
        crate::journal::truncate_if_idle();
    }
}

/// Devices that were already unregistered when the module loaded never send a change.
fn seed_unregistered(rt: &Runtime) {
    let snap = rt.table.snapshot();
    if !any_unregister_policy(snap.config()) {
        return;
    }
    let now = runtime::now();
    let mut tracker = rt.unregistered.lock().unwrap_or_else(|e| e.into_inner());
    for b in snap.bindings() {
        if let Some(dev) = snap.config().device(&b.device) {
            tracker.seen(
                &dev.id,
                device_state(&dev.dial) == DeviceState::UNAVAILABLE,
                now,
            );
        }
    }
}

fn tick(rt: &Runtime, now: u64) {
    let snap = rt.table.snapshot();
    let mut due: Vec<(String, Reason)> = Vec::new();
    if any_time_policy(snap.config()) {
        due = due_logouts(&snap, now, utc_offset(now));
    }
    if any_unregister_policy(snap.config()) {
        let tracker = rt.unregistered.lock().unwrap_or_else(|e| e.into_inner());
        due.extend(
            tracker
                .due(&snap, now)
                .into_iter()
                .map(|d| (d, Reason::Unregistered)),
        );
    }
    for (device, reason) in due {
        if let Err(e) = rt
            .table
            .logout_device(&device, reason, now, runtime::commit)
        {
            log::debug(&format!(
                "automatic logout of device {device} ({reason}): {e}"
            ));
        } else {
            log::notice(&format!(
                "device {device}: user logged out automatically ({reason})"
            ));
        }
    }
    rt.lockout
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .prune(now);
}
