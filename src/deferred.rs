//! The part of a commit that can run behind it: the AstDB writes, no longer following the state
//! of the devices it freed, and publishing the affected users' device states.
//!
//! A commit first appends its change to the journal (a `write` to a file the module owns: in
//! the page cache before the change is acknowledged, so a `kill -9` loses nothing), then
//! hands the rest here as one [`Work`]:
//! - an isolated commit (nothing queued, none in the last [`BURST`]) does it at once, on its
//!   own thread: a single login's lamp changes with no hand-over between threads;
//! - commits that arrive back to back (a burst of logins, a storm, a shift change) queue it
//!   for a thread of the module's own, so the thread that runs each login (AMI, CLI, the
//!   dialplan) waits neither for sqlite nor for waking every device state subscriber. The
//!   thread takes what has gathered as one batch: its AstDB writes in commit order, then the
//!   forwards of the freed devices cancelled (unless bound again), then each affected user's
//!   state once, computed from the table as it is then. While commits keep
//!   coming it pauses briefly between batches ([`GATHER`]) instead of being woken by each.
//!
//! AstDB and hints then trail the table by the queue (`deviceuser show stats` prints its
//! length); the table, the dialplan functions and the device state provider never do. If
//! Asterisk dies with work queued, the next load replays the journal and brings AstDB in
//! line. Unload applies what is queued before the journal closes. Without the thread (before
//! load completes, after unload) all work is done at once.
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::host::thread::{self, Thread};
use crate::host::{astdb, log};
use crate::runtime;
use deviceuser_core::astdb::FAMILY;
use deviceuser_core::CompactString;

/// One piece of deferred work, on the module's AstDB family. Strings are inline (keys, values
/// and ids are short), so a burst of queued work is one growing buffer, not a heap
/// allocation per piece.
enum Op {
    Put {
        key: CompactString,
        value: CompactString,
        /// What is not persisted if the put fails ("the login", "DND").
        what: &'static str,
    },
    Del(CompactString),
    /// Stop following the state this dial string names unless a device dialled so is bound.
    Release(CompactString),
    /// Publish the user's device state.
    Publish(CompactString),
}

/// Applies a batch: AstDB writes in order, then each freed device released once, then each
/// affected user's state once.
fn apply_batch(ops: Vec<Op>) {
    let (mut dials, mut users) = (Vec::new(), Vec::new());
    for op in ops {
        match op {
            Op::Put { key, value, what } => {
                if let Err(e) = astdb::put(FAMILY, &key, &value) {
                    log::error(&format!("{e}: {what} ({value}) is not persisted"));
                }
            }
            Op::Del(key) => astdb::del(FAMILY, &key),
            Op::Release(dial) => dials.push(dial),
            Op::Publish(user) => users.push(user),
        }
    }
    if !dials.is_empty() {
        dials.sort_unstable();
        dials.dedup();
        runtime::release_dials(&dials);
    }
    users.sort_unstable();
    users.dedup();
    runtime::publish_committed(users.into_iter());
}

struct Queue {
    ops: VecDeque<Op>,
    /// The thread is running (ops are queued, not applied by the caller).
    running: bool,
    /// Ops the thread took from the queue and has not applied yet.
    applying: usize,
    stop: bool,
    /// The thread is pausing between the batches of a burst (see [`GATHER`]).
    gathering: bool,
    /// Commits whose work is in `ops`.
    commits: usize,
    /// When the last commit handed its work over.
    last_submit: Option<Instant>,
    /// When the last op was applied.
    last_done: Option<Instant>,
}

static QUEUE: Mutex<Queue> = Mutex::new(Queue {
    ops: VecDeque::new(),
    running: false,
    applying: 0,
    stop: false,
    gathering: false,
    commits: 0,
    last_submit: None,
    last_done: None,
});
/// The thread waits here for work (or stop).
static WORK: Condvar = Condvar::new();
static THREAD: Mutex<Option<Thread>> = Mutex::new(None);

fn queue() -> std::sync::MutexGuard<'static, Queue> {
    QUEUE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts the thread (at load, after the restore's own AstDB writes).
pub fn start() -> Result<(), String> {
    TRIMS.store(0, Relaxed);
    {
        let mut q = queue();
        q.stop = false;
        q.running = true;
    }
    match thread::spawn(c"devuser-commit", run) {
        Ok(h) => {
            *THREAD.lock().unwrap_or_else(|e| e.into_inner()) = Some(h);
            Ok(())
        }
        Err(e) => {
            queue().running = false;
            Err(format!("cannot start the commit thread: {e}"))
        }
    }
}

/// Applies what is queued, then stops and joins the thread; later work is done at once.
pub fn stop() {
    queue().stop = true;
    WORK.notify_all();
    if let Some(h) = THREAD.lock().unwrap_or_else(|e| e.into_inner()).take() {
        h.join();
    }
    // The thread leaves only with an empty queue; if it ended by a panic (caught by the
    // guard), what it left is applied here.
    let rest: Vec<Op> = {
        let mut q = queue();
        q.running = false;
        q.applying = 0;
        q.commits = 0;
        q.ops.drain(..).collect()
    };
    apply_batch(rest);
}

/// What one commit leaves to do, in order.
#[derive(Default)]
pub struct Work(Vec<Op>);

impl Work {
    /// `AstDB put /deviceuser/<key> <value>`; `what` names the change in the error if it fails.
    pub fn put(&mut self, key: &str, value: &str, what: &'static str) {
        self.0.push(Op::Put {
            key: key.into(),
            value: value.into(),
            what,
        });
    }

    /// `AstDB del /deviceuser/<key>`.
    pub fn del(&mut self, key: &str) {
        self.0.push(Op::Del(key.into()));
    }

    /// Stop following the states of the devices the commit freed (by dial string), unless
    /// they are bound again by then.
    pub fn release<'a>(&mut self, dials: impl Iterator<Item = &'a str>) {
        self.0.extend(dials.map(|d| Op::Release(d.into())));
    }

    /// Publish the users' device states.
    pub fn publish(&mut self, users: impl Iterator<Item = String>) {
        self.0.extend(users.map(|u| Op::Publish(u.into())));
    }
}

/// Does `work` now if the commit is isolated, or queues it for the thread (see the module
/// documentation). Called under the table's writer lock, so work is queued in commit order.
pub fn submit(work: Work) {
    if work.0.is_empty() {
        return;
    }
    let mut q = queue();
    let now = Instant::now();
    let burst = q.last_submit.is_some_and(|t| now.duration_since(t) < BURST);
    q.last_submit = Some(now);
    if !q.running || (!burst && q.ops.is_empty() && q.applying == 0) {
        // Nothing earlier is pending, and nothing later can be queued before this returns
        // (commits hold the writer lock): doing it here keeps the order.
        drop(q);
        apply_batch(work.0);
        queue().last_done = Some(Instant::now());
        return;
    }
    let was_idle = q.ops.is_empty() && q.applying == 0 && !q.gathering;
    q.ops.extend(work.0);
    q.commits += 1;
    drop(q);
    // A thread that is busy or gathering takes this in its next batch without being woken.
    if was_idle {
        WORK.notify_one();
    }
}

/// Work not done yet (queued, or being applied).
pub fn pending() -> usize {
    let q = queue();
    q.ops.len() + q.applying
}

/// Nothing queued, and the last write was applied more than `d` ago (or never).
pub fn quiet_for(d: Duration) -> bool {
    let q = queue();
    q.ops.is_empty() && q.applying == 0 && q.last_done.is_none_or(|t| t.elapsed() > d)
}

/// A commit less than this after the previous one is part of a burst: it queues its work
/// rather than doing it on its own thread.
const BURST: Duration = Duration::from_millis(1);
/// After a batch that held the work of several commits, or with more work already waiting,
/// the thread pauses this long before taking the next batch, so that commits arriving back to
/// back queue their work without waking it each time.
const GATHER: Duration = Duration::from_micros(250);
/// A burst of this many commits through the thread leaves memory behind in Asterisk's heaps:
/// its AMI events (held until the AMI server's purge, every 5 s), the device state messages
/// queued to every subscriber, sqlite's pages. Once freed, glibc keeps most of it resident,
/// pinned by a live block above it. After such a burst and [`TRIM_QUIET`] without work, the
/// thread hands the heap's free pages back to the system, as Asterisk's `malloc trim` does.
const TRIM_AFTER: usize = 1000;
const TRIM_QUIET: Duration = Duration::from_secs(6);
static TRIMS: AtomicUsize = AtomicUsize::new(0);

/// How many times the heap was trimmed after a burst since the module was loaded (the
/// thread started).
pub fn trims() -> usize {
    TRIMS.load(Relaxed)
}

/// A drained queue keeps at most this many slots of the burst that grew it.
const KEEP_SLOTS: usize = 1024;

fn run() {
    let mut gather = false;
    // Commits applied by the thread since the heap was last trimmed.
    let mut untrimmed = 0usize;
    loop {
        if gather {
            queue().gathering = true;
            std::thread::sleep(GATHER);
            queue().gathering = false;
        }
        let (batch, commits): (Vec<Op>, usize) = {
            let mut q = queue();
            q.applying = 0;
            while q.ops.is_empty() && !q.stop {
                if untrimmed < TRIM_AFTER {
                    q = WORK
                        .wait_while(q, |q| q.ops.is_empty() && !q.stop)
                        .unwrap_or_else(|e| e.into_inner());
                    continue;
                }
                let (g, waited) = WORK
                    .wait_timeout_while(q, TRIM_QUIET, |q| q.ops.is_empty() && !q.stop)
                    .unwrap_or_else(|e| e.into_inner());
                q = g;
                if waited.timed_out() {
                    drop(q);
                    let t = Instant::now();
                    crate::host::alloc::trim();
                    TRIMS.fetch_add(1, Relaxed);
                    log::verbose_with(3, || {
                        format!(
                            "heap trimmed after a burst of {untrimmed} commits ({:.1} ms)",
                            t.elapsed().as_secs_f64() * 1000.0
                        )
                    });
                    untrimmed = 0;
                    q = queue();
                }
            }
            if q.ops.is_empty() && q.stop {
                q.running = false;
                return;
            }
            q.applying = q.ops.len();
            let batch = q.ops.drain(..).collect();
            q.ops.shrink_to(KEEP_SLOTS);
            (batch, std::mem::take(&mut q.commits))
        };
        untrimmed = untrimmed.saturating_add(commits);
        apply_batch(batch);
        let mut q = queue();
        q.last_done = Some(Instant::now());
        gather = commits > 1 || !q.ops.is_empty();
    }
}
