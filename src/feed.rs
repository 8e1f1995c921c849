//! The live feed: every commit (logins, logouts with their reason, DND, configuration
//! changes) and every change of a user's `DeviceUser:` state, as JSON events for whoever
//! subscribed (the console's open boards, over WebSockets). Commits reach it through its
//! sink (`sinks::FeedSink`), published user states through the publisher (`state`).
//!
//! Events are made only while someone subscribes, serialized once, and queued per
//! subscriber; the subscriber's own thread sends them. A commit never waits for a client: a
//! subscriber that falls [`MAX_QUEUED`] events behind is closed (its board reconnects and
//! reloads), and it is woken only when its queue goes from empty to not empty.
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;

/// Events a subscriber may have waiting before it is dropped.
pub const MAX_QUEUED: usize = 50_000;

pub type Wake = Box<dyn Fn() + Send + Sync>;

#[derive(Default)]
pub struct Feed {
    subscribers: Mutex<Vec<Arc<Subscriber>>>,
    count: AtomicUsize,
    /// Closed for good (unload): new subscriptions start closed.
    closed: AtomicBool,
}

pub struct Subscriber {
    queue: Mutex<Queue>,
    wake: Wake,
}

#[derive(Default)]
struct Queue {
    events: Vec<Arc<str>>,
    closed: bool,
}

/// What a subscriber takes from its queue.
pub struct Taken {
    pub events: Vec<Arc<str>>,
    /// The feed closed the subscription (unload, or the subscriber fell too far behind).
    pub closed: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Feed {
    /// Subscribes; `wake` is called (from the thread of a commit) when events arrive in an
    /// empty queue or the subscription is closed.
    pub fn subscribe(&self, wake: Wake) -> Arc<Subscriber> {
        let s = Arc::new(Subscriber {
            queue: Mutex::new(Queue::default()),
            wake,
        });
        let mut subs = lock(&self.subscribers);
        if self.closed.load(Ordering::SeqCst) {
            lock(&s.queue).closed = true;
        }
        subs.push(Arc::clone(&s));
        self.count.store(subs.len(), Ordering::SeqCst);
        s
    }

    pub fn unsubscribe(&self, s: &Arc<Subscriber>) {
        let mut subs = lock(&self.subscribers);
        subs.retain(|x| !Arc::ptr_eq(x, s));
        self.count.store(subs.len(), Ordering::SeqCst);
    }

    /// Subscribers now.
    pub fn subscribers(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Sends the events `make` builds, if anyone is subscribed.
    pub fn send(&self, make: impl FnOnce() -> Vec<Value>) {
        if self.subscribers() == 0 {
            return;
        }
        let events: Vec<Arc<str>> = make()
            .into_iter()
            .map(|e| Arc::from(e.to_string()))
            .collect();
        if events.is_empty() {
            return;
        }
        for s in lock(&self.subscribers).iter() {
            let wake = {
                let mut q = lock(&s.queue);
                if q.closed {
                    continue;
                }
                let was_empty = q.events.is_empty();
                if q.events.len() + events.len() > MAX_QUEUED {
                    q.events.clear();
                    q.closed = true;
                    true
                } else {
                    q.events.extend(events.iter().cloned());
                    was_empty
                }
            };
            if wake {
                (s.wake)();
            }
        }
    }

    /// Closes every subscription, and those made from now on (unload).
    pub fn close_all(&self) {
        let subs = lock(&self.subscribers);
        self.closed.store(true, Ordering::SeqCst);
        for s in subs.iter() {
            s.close();
        }
    }
}

impl Subscriber {
    pub fn take(&self) -> Taken {
        let mut q = lock(&self.queue);
        Taken {
            events: std::mem::take(&mut q.events),
            closed: q.closed,
        }
    }

    pub fn close(&self) {
        lock(&self.queue).closed = true;
        (self.wake)();
    }
}
