//! The part of a commit that can run behind it: the AstDB writes, no longer following the state
//! of the devices it freed, and publishing the affected users' device states.
//!
//! The commit pipeline's last stage hands each commit's deferred work (AstDB writes, devices
//! to release, users to publish) here as one batch of items. The executor knows nothing of
//! what the items mean: it runs the function it was built with on each batch, and never
//! calls back up into the module.
//!
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
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::host::log;
use crate::host::thread::{self, Thread};

/// What the executor runs on each batch.
pub type Apply<T> = Box<dyn Fn(Vec<T>) + Send + Sync>;

struct Queue<T> {
    items: VecDeque<T>,
    /// The thread is running (items are queued, not applied by the caller).
    running: bool,
    /// Items the thread took from the queue and has not applied yet.
    applying: usize,
    stop: bool,
    /// The thread is pausing between the batches of a burst (see [`GATHER`]).
    gathering: bool,
    /// Submissions whose items are in `items`.
    submissions: usize,
    /// When the last submission was handed over.
    last_submit: Option<Instant>,
    /// When the last item was applied.
    last_done: Option<Instant>,
}

struct Inner<T> {
    queue: Mutex<Queue<T>>,
    /// The thread waits here for work (or stop).
    work: Condvar,
    apply: Apply<T>,
    trims: AtomicUsize,
}

/// Runs batches of deferred work, at once for an isolated submission or on a thread of its
/// own for a burst (see the module documentation).
pub struct Executor<T: Send + 'static> {
    inner: Arc<Inner<T>>,
    thread: Mutex<Option<Thread>>,
}

impl<T: Send + 'static> Inner<T> {
    fn queue(&self) -> std::sync::MutexGuard<'_, Queue<T>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<T: Send + 'static> Executor<T> {
    /// An executor applying batches with `apply`, and its thread (`name`). Without the thread
    /// (it could not start) every submission is applied at once.
    pub fn start(name: &'static std::ffi::CStr, apply: Apply<T>) -> Executor<T> {
        let inner = Arc::new(Inner {
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                running: true,
                applying: 0,
                stop: false,
                gathering: false,
                submissions: 0,
                last_submit: None,
                last_done: None,
            }),
            work: Condvar::new(),
            apply,
            trims: AtomicUsize::new(0),
        });
        let for_thread = Arc::clone(&inner);
        let thread = match thread::spawn(name, move || run(&for_thread)) {
            Ok(t) => Some(t),
            Err(e) => {
                inner.queue().running = false;
                log::warning(&format!(
                    "cannot start the commit thread ({e}): commits write AstDB and publish themselves"
                ));
                None
            }
        };
        Executor {
            inner,
            thread: Mutex::new(thread),
        }
    }

    /// Applies `items` now if the submission is isolated, or queues them for the thread.
    /// Called under the table's writer lock, so items are queued in commit order.
    pub fn submit(&self, items: Vec<T>) {
        if items.is_empty() {
            return;
        }
        let mut q = self.inner.queue();
        let now = Instant::now();
        let burst = q.last_submit.is_some_and(|t| now.duration_since(t) < BURST);
        q.last_submit = Some(now);
        if !q.running || (!burst && q.items.is_empty() && q.applying == 0) {
            // Nothing earlier is pending, and nothing later can be queued before this returns
            // (commits hold the writer lock): doing it here keeps the order.
            drop(q);
            (self.inner.apply)(items);
            self.inner.queue().last_done = Some(Instant::now());
            return;
        }
        let was_idle = q.items.is_empty() && q.applying == 0 && !q.gathering;
        q.items.extend(items);
        q.submissions += 1;
        drop(q);
        // A thread that is busy or gathering takes this in its next batch without being woken.
        if was_idle {
            self.inner.work.notify_one();
        }
    }

    /// Items not applied yet (queued, or being applied).
    pub fn pending(&self) -> usize {
        let q = self.inner.queue();
        q.items.len() + q.applying
    }

    /// Nothing queued, and the last item was applied more than `d` ago (or never).
    pub fn quiet_for(&self, d: Duration) -> bool {
        let q = self.inner.queue();
        q.items.is_empty() && q.applying == 0 && q.last_done.is_none_or(|t| t.elapsed() > d)
    }

    /// How many times the heap was trimmed after a burst.
    pub fn trims(&self) -> usize {
        self.inner.trims.load(Relaxed)
    }

    /// Applies what is queued, then stops and joins the thread; later submissions are
    /// applied at once. Idempotent.
    pub fn stop(&self) {
        self.inner.queue().stop = true;
        self.inner.work.notify_all();
        if let Some(h) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            h.join();
        }
        // The thread leaves only with an empty queue; if it ended by a panic (caught by the
        // guard), what it left is applied here.
        let rest: Vec<T> = {
            let mut q = self.inner.queue();
            q.running = false;
            q.applying = 0;
            q.submissions = 0;
            q.items.drain(..).collect()
        };
        if !rest.is_empty() {
            (self.inner.apply)(rest);
        }
    }
}

impl<T: Send + 'static> Drop for Executor<T> {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A submission less than this after the previous one is part of a burst: it queues its
/// work rather than doing it on its own thread.
const BURST: Duration = Duration::from_millis(1);
/// After a batch that held the work of several submissions, or with more already waiting,
/// the thread pauses this long before taking the next batch, so that commits arriving back
/// to back queue their work without waking it each time.
const GATHER: Duration = Duration::from_micros(250);
/// A burst of this many submissions through the thread leaves memory behind in Asterisk's
/// heaps: its AMI events (held until the AMI server's purge, every 5 s), the device state
/// messages queued to every subscriber, sqlite's pages. Once freed, glibc keeps most of it
/// resident, pinned by a live block above it. After such a burst and [`TRIM_QUIET`] without
/// work, the thread hands the heap's free pages back to the system, as Asterisk's
/// `malloc trim` does.
const TRIM_AFTER: usize = 1000;
const TRIM_QUIET: Duration = Duration::from_secs(6);
/// A drained queue keeps at most this many slots of the burst that grew it.
const KEEP_SLOTS: usize = 1024;

fn run<T: Send + 'static>(inner: &Inner<T>) {
    let mut gather = false;
    // Submissions applied by the thread since the heap was last trimmed.
    let mut untrimmed = 0usize;
    loop {
        if gather {
            inner.queue().gathering = true;
            std::thread::sleep(GATHER);
            inner.queue().gathering = false;
        }
        let (batch, submissions): (Vec<T>, usize) = {
            let mut q = inner.queue();
            q.applying = 0;
            while q.items.is_empty() && !q.stop {
                if untrimmed < TRIM_AFTER {
                    q = inner
                        .work
                        .wait_while(q, |q| q.items.is_empty() && !q.stop)
                        .unwrap_or_else(|e| e.into_inner());
                    continue;
                }
                let (g, waited) = inner
                    .work
                    .wait_timeout_while(q, TRIM_QUIET, |q| q.items.is_empty() && !q.stop)
                    .unwrap_or_else(|e| e.into_inner());
                q = g;
                if waited.timed_out() {
                    drop(q);
                    let t = Instant::now();
                    crate::host::alloc::trim();
                    inner.trims.fetch_add(1, Relaxed);
                    log::verbose_with(3, || {
                        format!(
                            "heap trimmed after a burst of {untrimmed} commits ({:.1} ms)",
                            t.elapsed().as_secs_f64() * 1000.0
                        )
                    });
                    untrimmed = 0;
                    q = inner.queue();
                }
            }
            if q.items.is_empty() && q.stop {
                q.running = false;
                return;
            }
            q.applying = q.items.len();
            let batch = q.items.drain(..).collect();
            q.items.shrink_to(KEEP_SLOTS);
            (batch, std::mem::take(&mut q.submissions))
        };
        untrimmed = untrimmed.saturating_add(submissions);
        (inner.apply)(batch);
        let mut q = inner.queue();
        q.last_done = Some(Instant::now());
        gather = submissions > 1 || !q.items.is_empty();
    }
}
