//! Automatic logouts: `max_login_time`, `shift_end` and `logout_on_unregister`. A thread of
//! the module's own (`devuser-policy`) checks once a second and logs out through the same
//! commit pipeline as every other logout. It also does the module's housekeeping: ending
//! the subscription to all device state traffic once no bound device is pending, and
//! emptying the journal once AstDB has committed it; with `storage = realtime`, the
//! heartbeat, the look at the other nodes and the periodic read of the bindings table.
use std::sync::{Arc, Weak};
use std::time::Duration;

use deviceuser_core::logtext::value;
use deviceuser_core::policy::due_logouts;
use deviceuser_core::Reason;

use crate::hint_sync::DialplanWatch;
use crate::host::clock::utc_offset;
use crate::host::devstate::{device_state, DeviceState};
use crate::host::log;
use crate::host::thread::{StopSignal, Worker};
use crate::instance::Instance;
use crate::journal::COMMITTED_AFTER;
use crate::pipeline::Origin;
use crate::state::now;

/// Starts the thread. It holds the instance weakly: unload stops and joins it first.
pub fn start(inst: &Arc<Instance>) -> Result<Worker, String> {
    let weak = Arc::downgrade(inst);
    Worker::start(c"devuser-policy", move |stop| run(&weak, &stop))
        .map_err(|e| format!("cannot start the policy thread: {e}"))
}

fn run(weak: &Weak<Instance>, stop: &StopSignal) {
    if let Some(inst) = weak.upgrade() {
        inst.watch_bound_devices();
        inst.publish_active_users();
    }
    let mut seeded = false;
    let mut dialplan = DialplanWatch::default();
    while !stop.wait(Duration::from_secs(1)) {
        let Some(inst) = weak.upgrade() else { return };
        inst.follower().tend();
        // States that depend on the dialplan (Local devices) are right only from here on.
        if dialplan.changed() {
            inst.publish_active_users();
        }
        inst.tend_registrations();
        if !seeded {
            seed_unregistered(&inst);
            seeded = true;
        }
        inst.cluster_tick();
        tick(&inst, now());
        let idle = inst.executor().quiet_for(COMMITTED_AFTER);
        inst.state().journal.truncate_if_idle(idle);
    }
}

/// Devices that were already unregistered when the module loaded never send a change.
fn seed_unregistered(inst: &Instance) {
    let snap = inst.snapshot();
    if !snap.config().has_unregister_policy() {
        return;
    }
    let now = now();
    let mut tracker = inst.state().unregistered();
    for b in snap.bindings() {
        if let Some(dev) = snap.config().device(&b.device).filter(|d| !d.remote) {
            let unavailable = device_state(&dev.dial) == DeviceState::UNAVAILABLE;
            tracker.seen(&dev.id, unavailable, now);
        }
    }
}

fn tick(inst: &Instance, now: u64) {
    let snap = inst.snapshot();
    let mut due: Vec<(String, Reason)> = Vec::new();
    if snap.config().has_time_policy() {
        due = due_logouts(&snap, now, utc_offset(now));
    }
    if snap.config().has_unregister_policy() {
        let tracker = inst.state().unregistered();
        due.extend(
            tracker
                .due(&snap, now)
                .into_iter()
                .map(|d| (d, Reason::Unregistered)),
        );
    }
    for (device, reason) in due {
        match inst.logout_device(Origin::Policy, None, &device, reason) {
            Err(e) => log::debug(&format!(
                "automatic logout of device {} ({reason}): {e}",
                value(&device)
            )),
            Ok(_) => log::notice(&format!(
                "device {}: user logged out automatically ({reason})",
                value(&device)
            )),
        }
    }
    inst.state().lockout().prune(now);
}
