//! The live feed: every commit (logins, logouts with their reason, DND, configuration
//! changes) and every change of a user's `DeviceUser:` state, as JSON events for whoever
//! subscribed (the console's open boards, over WebSockets). Commits reach it through its
//! sink (`sinks::FeedSink`), published user states through the publisher (`state`).
//!
//! Events are made only while someone subscribes and serialized once, into one log that
//! every subscriber reads from its own position; each subscriber's thread sends what it
//! read. What a commit does does not grow with the number of subscribers: it appends the
//! events' text to the log and, if subscribers have read everything and wait, rings the one
//! doorbell they all wait on. The log is text in chunks of about [`CHUNK_BYTES`]: readers
//! share the full chunks (no copy per event and subscriber) and copy only the part of a
//! chunk they start or end in. A commit never waits for a client: the log keeps at most
//! [`MAX_QUEUED`] events, and a subscriber that falls further behind is closed (its board
//! reconnects and reloads).
use std::collections::VecDeque;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;

use crate::host::doorbell::Doorbell;

/// Events a subscriber may have left to read before it is dropped.
pub const MAX_QUEUED: usize = 50_000;
/// A chunk of the log is full from this size on.
const CHUNK_BYTES: usize = 16 * 1024;
/// Once the log holds this many full chunks, a subscriber that reads drops those every
/// subscriber has read.
const TRIM_AT: usize = 16;

#[derive(Default)]
pub struct Feed {
    log: Mutex<Log>,
    /// For the count and for trimming; a commit never goes through them.
    subscribers: Mutex<Vec<Arc<Subscriber>>>,
    count: AtomicUsize,
}

/// Events in order, each followed by a comma.
#[derive(Default)]
struct Chunk {
    /// The sequence number of the first event.
    first: u64,
    text: String,
    /// Where each event starts in `text`.
    starts: Vec<u32>,
}

impl Chunk {
    fn end(&self) -> u64 {
        self.first + self.starts.len() as u64
    }

    /// The text of the events from sequence number `from` on.
    fn from(&self, from: u64) -> &str {
        match usize::try_from(from.saturating_sub(self.first))
            .ok()
            .and_then(|i| self.starts.get(i))
        {
            Some(&at) => &self.text[at as usize..],
            None => "",
        }
    }
}

#[derive(Default)]
struct Log {
    /// Full chunks, oldest first.
    full: VecDeque<Arc<Chunk>>,
    /// The chunk being written (starting where the last full one ends).
    open: Chunk,
    /// What subscribers that have read everything wait on; rung (and forgotten) by the next
    /// append.
    doorbell: Option<Arc<Doorbell>>,
    /// Closed for good (unload): every subscription ends, and those made from now on.
    closed: bool,
}

impl Log {
    fn first(&self) -> u64 {
        self.full.front().map_or(self.open.first, |c| c.first)
    }

    fn end(&self) -> u64 {
        self.open.end()
    }

    fn ring(&mut self) {
        if let Some(bell) = self.doorbell.take() {
            bell.ring();
        }
    }

    /// Drops the full chunks that end at or before `read`.
    fn drop_before(&mut self, read: u64) {
        while self.full.front().is_some_and(|c| c.end() <= read) {
            self.full.pop_front();
        }
    }
}

pub struct Subscriber {
    /// The sequence number of the next event this subscriber reads.
    next: AtomicU64,
}

/// Text of events a subscriber read: full chunks of the log (shared) or a copied part.
enum Piece {
    Shared(Arc<Chunk>, u64),
    Copied(String),
}

impl Piece {
    fn text(&self) -> &str {
        match self {
            Piece::Shared(c, from) => c.from(*from),
            Piece::Copied(s) => s,
        }
    }
}

/// What a subscriber takes from the log.
pub struct Taken {
    pieces: Vec<Piece>,
    /// The events taken.
    pub count: usize,
    /// The feed closed the subscription (unload, or the subscriber fell too far behind).
    pub closed: bool,
}

impl Taken {
    /// The events as JSON arrays of at most about `max` bytes (a chunk of the log, larger
    /// than that only if `max` is less than [`CHUNK_BYTES`] or one event is, goes alone).
    pub fn frames(&self, max: usize) -> Vec<String> {
        let mut frames = Vec::new();
        let mut frame = String::new();
        for p in &self.pieces {
            // Each event is followed by a comma: the last one's becomes the closing bracket.
            let text = p.text();
            if text.is_empty() {
                continue;
            }
            if frame.len() > 1 && frame.len() + text.len() > max {
                frame.pop();
                frame.push(']');
                frames.push(std::mem::take(&mut frame));
            }
            if frame.is_empty() {
                frame.reserve(max.min(text.len() + 1));
                frame.push('[');
            }
            frame.push_str(text);
        }
        if frame.len() > 1 {
            frame.pop();
            frame.push(']');
            frames.push(frame);
        }
        frames
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Feed {
    /// Subscribes: the subscriber reads the events sent from now on.
    pub fn subscribe(&self) -> Arc<Subscriber> {
        // Lock order: the log, then the subscribers.
        let log = lock(&self.log);
        let s = Arc::new(Subscriber {
            next: AtomicU64::new(log.end()),
        });
        let mut subs = lock(&self.subscribers);
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
        let events = make();
        if events.is_empty() {
            return;
        }
        let mut log = lock(&self.log);
        if log.closed {
            return;
        }
        for e in events {
            let open = &mut log.open;
            open.starts.push(open.text.len() as u32);
            let _ = write!(open.text, "{e},");
            if open.text.len() >= CHUNK_BYTES {
                let end = open.end();
                let full = std::mem::replace(
                    open,
                    Chunk {
                        first: end,
                        ..Chunk::default()
                    },
                );
                log.full.push_back(Arc::new(full));
            }
        }
        // A subscriber left this far behind is closed when it next reads.
        let end = log.end();
        log.drop_before(end.saturating_sub(MAX_QUEUED as u64));
        log.ring();
    }

    /// What `s` waits on when it has read everything: `None` if there is something to read
    /// (or the subscription is closed) now.
    pub fn doorbell(&self, s: &Subscriber) -> Result<Option<Arc<Doorbell>>, String> {
        let mut log = lock(&self.log);
        if log.closed || s.next.load(Ordering::SeqCst) != log.end() {
            return Ok(None);
        }
        if log.doorbell.is_none() {
            log.doorbell = Some(Arc::new(Doorbell::new()?));
        }
        Ok(log.doorbell.clone())
    }

    /// The events `s` has not read yet.
    pub fn take(&self, s: &Subscriber) -> Taken {
        let mut log = lock(&self.log);
        let next = s.next.load(Ordering::SeqCst);
        if log.closed || next < log.first() {
            return Taken {
                pieces: Vec::new(),
                count: 0,
                closed: true,
            };
        }
        let end = log.end();
        let mut pieces = Vec::new();
        for c in log.full.iter().filter(|c| c.end() > next) {
            pieces.push(Piece::Shared(Arc::clone(c), next.max(c.first)));
        }
        let rest = log.open.from(next);
        if !rest.is_empty() {
            pieces.push(Piece::Copied(rest.to_owned()));
        }
        s.next.store(end, Ordering::SeqCst);
        if log.full.len() >= TRIM_AT {
            let read = lock(&self.subscribers)
                .iter()
                .map(|x| x.next.load(Ordering::SeqCst))
                .min()
                .unwrap_or(end);
            log.drop_before(read);
        }
        Taken {
            pieces,
            count: (end - next) as usize,
            closed: false,
        }
    }

    /// Closes every subscription, and those made from now on (unload).
    pub fn close_all(&self) {
        let mut log = lock(&self.log);
        log.closed = true;
        log.full.clear();
        log.ring();
    }
}
