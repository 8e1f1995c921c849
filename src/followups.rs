//! What commits cause in other modules — queue membership in `app_queue` ([`crate::queues`])
//! and message waiting on the devices ([`crate::mwi`]) — done on a thread of the module's own
//! (`devuser-follow`), never under the table's writer lock: an action of app_queue's may
//! take its queue locks and write its AstDB.
//!
//! The [`FollowUpSink`] hands each commit's affected users and devices to the thread in
//! commit order; the thread works them in that order, each from the table as it is then, so
//! the last word is always the table's. It starts once Asterisk has fully booted (app_queue
//! and app_voicemail load after this module), checks app_queue's members against the
//! bindings then, after each reload and every `queue_check` seconds, and shows every bound
//! device's mailbox.
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use deviceuser_core::CompactString;

use crate::host::log;
use crate::host::manager::fully_booted;
use crate::host::mwi::{Counts, Watch};
use crate::host::thread::{self, Thread};
use crate::mwi::{is_device_mailbox, DeviceMwi};
use crate::pipeline::{Change, Commit, Sink, Stage, Work};
use crate::queues::QueueMembers;
use crate::state::State;

enum Job {
    /// Bring the user's queue members where the table says.
    Queues(CompactString),
    /// Show on the device its user's mailbox.
    Mwi(CompactString),
    /// A mailbox's state changed.
    Mailbox(String, Counts),
    /// Check every member against app_queue and show every device's mailbox (reload).
    CheckAll,
    /// ARI events, each with the application it goes to.
    Ari(Vec<(String, String)>),
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    stop: bool,
    /// A job is being worked.
    busy: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, jobs: impl IntoIterator<Item = Job>) {
        let mut q = self.lock();
        if q.stop {
            return;
        }
        let before = q.jobs.len();
        q.jobs.extend(jobs);
        let added = q.jobs.len() > before;
        drop(q);
        if added {
            self.wake.notify_one();
        }
    }
}

/// The follow-up thread and its queue of jobs.
pub struct FollowUps {
    shared: Arc<Shared>,
    thread: Mutex<Option<Thread>>,
    watch: Mutex<Option<Box<Watch>>>,
}

impl FollowUps {
    /// Starts the thread and the subscription to mailbox states.
    pub fn start(state: Arc<State>) -> Result<Arc<FollowUps>, String> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
        });
        let for_thread = Arc::clone(&shared);
        let for_watch = Arc::clone(&shared);
        let watch_state = Arc::clone(&state);
        let thread = thread::spawn(c"devuser-follow", move || run(&for_thread, &state))
            .map_err(|e| format!("cannot start the follow-up thread: {e}"))?;
        let f = Arc::new(FollowUps {
            shared,
            thread: Mutex::new(Some(thread)),
            watch: Mutex::new(None),
        });
        match Watch::start(Box::new(move |id: &str, counts: Counts| {
            if is_device_mailbox(id) || !watch_state.snapshot().config().has_mailboxes() {
                return;
            }
            for_watch.push([Job::Mailbox(id.to_string(), counts)]);
        })) {
            Ok(w) => *f.watch.lock().unwrap_or_else(|e| e.into_inner()) = Some(w),
            Err(e) => log::warning(&format!("{e}: devices do not follow mailbox changes")),
        }
        Ok(f)
    }

    /// ARI events to send, each with its application, in commit order.
    pub fn send_ari(&self, events: Vec<(String, String)>) {
        self.shared.push([Job::Ari(events)]);
    }

    /// After a reload: check every member and every device's mailbox.
    pub fn check_all(&self) {
        self.shared.push([Job::CheckAll]);
    }

    /// Jobs queued or being worked.
    pub fn pending(&self) -> usize {
        let q = self.shared.lock();
        q.jobs.len() + usize::from(q.busy)
    }

    /// Ends the subscription, then the thread (the job it works is finished; the rest is
    /// left to the next load's check). Idempotent.
    pub fn stop(&self) {
        if let Some(w) = self.watch.lock().unwrap_or_else(|e| e.into_inner()).take() {
            w.close();
        }
        self.shared.lock().stop = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            t.join();
        }
    }
}

impl Drop for FollowUps {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Hands each commit's users (queue membership) and devices (message waiting) to the
/// follow-up thread, when any user has queues or a mailbox. A user whose device set did
/// not change (a second device) costs nothing there: membership is computed, not counted.
pub struct FollowUpSink {
    pub state: Arc<State>,
    pub follow_ups: Arc<FollowUps>,
}

impl Sink for FollowUpSink {
    fn stage(&self) -> Stage {
        Stage::Effects
    }

    fn commit(&self, c: &Commit<'_>, _: &mut Work) {
        let Change::Bindings(changes) = c.change else {
            return;
        };
        let snap = self.state.snapshot();
        let config = snap.config();
        let mut jobs = Vec::new();
        if config.has_queues() {
            jobs.extend(
                changes
                    .affected_users()
                    .into_iter()
                    .map(|u| Job::Queues(u.into())),
            );
        }
        if config.has_mailboxes() {
            jobs.extend(
                changes
                    .affected_devices()
                    .into_iter()
                    .map(|d| Job::Mwi(d.into())),
            );
        }
        if !jobs.is_empty() {
            self.follow_ups.shared.push(jobs);
        }
    }
}

/// How often the thread looks whether Asterisk has booted.
const BOOT_POLL: Duration = Duration::from_millis(100);

fn run(shared: &Shared, state: &State) {
    // app_queue and app_voicemail load after this module: nothing answers before the boot.
    while !fully_booted() {
        let q = shared.lock();
        if q.stop {
            return;
        }
        let _ = shared.wake.wait_timeout(q, BOOT_POLL);
    }
    let mut queues = QueueMembers::default();
    let mut mwi = DeviceMwi::default();
    let mut next_check = check_all(state, &mut queues, &mut mwi);
    loop {
        let batch: Vec<Job> = {
            let mut q = shared.lock();
            q.busy = false;
            loop {
                if q.stop {
                    return;
                }
                if !q.jobs.is_empty() {
                    break;
                }
                match next_check {
                    Some(at) => {
                        let now = Instant::now();
                        if now >= at {
                            break;
                        }
                        q = shared
                            .wake
                            .wait_timeout(q, at - now)
                            .unwrap_or_else(|e| e.into_inner())
                            .0;
                    }
                    None => q = shared.wake.wait(q).unwrap_or_else(|e| e.into_inner()),
                }
            }
            q.busy = true;
            q.jobs.drain(..).collect()
        };
        if batch.is_empty() || batch.iter().any(|j| matches!(j, Job::CheckAll)) {
            // The periodic check, or a reload: the table as it is now covers every job but
            // the events, which are sent first.
            let events: Vec<Job> = batch
                .into_iter()
                .filter(|j| matches!(j, Job::Ari(_)))
                .collect();
            work(state, &mut queues, &mut mwi, events);
            next_check = check_all(state, &mut queues, &mut mwi);
            continue;
        }
        work(state, &mut queues, &mut mwi, batch);
    }
}

/// Checks every member and shows every bound device's mailbox; returns when to check again.
fn check_all(state: &State, queues: &mut QueueMembers, mwi: &mut DeviceMwi) -> Option<Instant> {
    let snap = state.snapshot();
    queues.check(&snap);
    if snap.config().has_mailboxes() {
        mwi.sync_all(&snap);
    }
    let every = snap.config().general.queue_check;
    (every > 0).then(|| Instant::now() + Duration::from_secs(every))
}

/// Works a batch in order; a user or device named several times is worked once, at its
/// first place (each is worked from the table as it is now, the last word).
fn work(state: &State, queues: &mut QueueMembers, mwi: &mut DeviceMwi, batch: Vec<Job>) {
    let snap = state.snapshot();
    let mut seen_users = std::collections::HashSet::new();
    let mut seen_devices = std::collections::HashSet::new();
    for job in batch {
        match job {
            Job::Queues(user) => {
                if seen_users.insert(user.clone()) {
                    queues.sync_user(&snap, &user);
                }
            }
            Job::Mwi(device) => {
                if seen_devices.insert(device.clone()) {
                    mwi.sync_device(&snap, &device);
                }
            }
            Job::Mailbox(id, counts) => mwi.mailbox_changed(&snap, &id, counts),
            Job::Ari(events) => {
                for (app, json) in events {
                    if !crate::host::ari::send(&app, &json) {
                        log::debug(&format!(
                            "ARI event not delivered to application {}",
                            deviceuser_core::logtext::value(&app)
                        ));
                    }
                }
            }
            Job::CheckAll => {}
        }
    }
}
