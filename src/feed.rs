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
//!
//! A subscriber may ask for its events compressed ([`Feed::take`] with `whole_chunks`): each
//! full chunk is then compressed once ([`Chunk::packed`], raw DEFLATE ending in a sync flush,
//! so that chunks compressed apart can follow each other in one stream) and the compressed
//! bytes are shared by every such subscriber, who reads whole chunks while a burst fills them.
use std::collections::VecDeque;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use miniz_oxide::deflate::core::{
    compress_to_output, create_comp_flags_from_zip_params, CompressorOxide, TDEFLFlush, TDEFLStatus,
};
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
    /// The compressor chunks are compressed with, one at a time (its tables are large).
    packer: Mutex<Option<Box<CompressorOxide>>>,
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
    /// `text` compressed, once the chunk is full and a subscriber asks for it.
    packed: OnceLock<Vec<u8>>,
}

impl Chunk {
    fn end(&self) -> u64 {
        self.first + self.starts.len() as u64
    }

    /// The chunk's text as raw DEFLATE (RFC 1951) blocks ending in a sync flush (an empty
    /// stored block): a stream of its own data only, which may be followed by another
    /// chunk's. Made by the first subscriber that needs it.
    fn packed(&self, packer: &Mutex<Option<Box<CompressorOxide>>>) -> &[u8] {
        self.packed.get_or_init(|| {
            let mut slot = lock(packer);
            let c = slot.get_or_insert_with(|| {
                // Level 1: most of what there is to gain on text this repetitive, at the
                // least CPU; negative window bits: no zlib header.
                Box::new(CompressorOxide::new(create_comp_flags_from_zip_params(
                    1, -15, 0,
                )))
            });
            c.reset();
            let mut out = Vec::with_capacity(self.text.len() / 8 + 64);
            let (status, _) = compress_to_output(c, self.text.as_bytes(), TDEFLFlush::Sync, |b| {
                out.extend_from_slice(b);
                true
            });
            debug_assert_eq!(status, TDEFLStatus::Okay);
            out
        })
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

    /// The whole chunk, if this piece is one.
    fn whole(&self) -> Option<&Chunk> {
        match self {
            Piece::Shared(c, from) if *from == c.first => Some(c),
            _ => None,
        }
    }
}

/// A frame to send: a JSON array of events, or compressed events ([`Taken::frames`]).
pub enum Out {
    Text(String),
    Packed(Vec<u8>),
}

/// The final empty block that ends a raw DEFLATE stream of sync-flushed chunks.
const DEFLATE_END: [u8; 2] = [0x03, 0x00];

/// What a subscriber takes from the log.
pub struct Taken {
    pieces: Vec<Piece>,
    /// The events taken.
    pub count: usize,
    /// The feed closed the subscription (unload, or the subscriber fell too far behind).
    pub closed: bool,
}

impl Taken {
    /// The events in order as frames of at most about `max` bytes (a chunk of the log, larger
    /// than that only if `max` is less than [`CHUNK_BYTES`] or one event is, goes alone): JSON
    /// arrays, except that with `compress` whole chunks of the log go compressed (each such
    /// frame a raw DEFLATE stream of the chunks' events, each event followed by a comma).
    pub fn frames(&self, max: usize, compress: Option<&Feed>) -> Vec<Out> {
        let mut out = Vec::new();
        // The JSON array and the compressed stream being built.
        let mut text = String::new();
        let mut packed: Vec<u8> = Vec::new();
        for p in &self.pieces {
            if let (Some(feed), Some(chunk)) = (compress, p.whole()) {
                end_text(&mut out, &mut text);
                let bytes = chunk.packed(&feed.packer);
                if !packed.is_empty() && packed.len() + bytes.len() > max {
                    end_packed(&mut out, &mut packed);
                }
                packed.extend_from_slice(bytes);
                continue;
            }
            end_packed(&mut out, &mut packed);
            let events = p.text();
            if events.is_empty() {
                continue;
            }
            if text.len() > 1 && text.len() + events.len() > max {
                end_text(&mut out, &mut text);
            }
            if text.is_empty() {
                text.reserve(max.min(events.len() + 1));
                text.push('[');
            }
            text.push_str(events);
        }
        end_packed(&mut out, &mut packed);
        end_text(&mut out, &mut text);
        out
    }
}

/// Ends the JSON array being built, if any, into a frame (its last event's comma becomes the
/// closing bracket).
fn end_text(out: &mut Vec<Out>, text: &mut String) {
    if text.len() > 1 {
        text.pop();
        text.push(']');
        out.push(Out::Text(std::mem::take(text)));
    }
}

/// Ends the compressed stream being built, if any, into a frame (with the final empty block).
fn end_packed(out: &mut Vec<Out>, packed: &mut Vec<u8>) {
    if !packed.is_empty() {
        packed.extend_from_slice(&DEFLATE_END);
        out.push(Out::Packed(std::mem::take(packed)));
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

    /// The events `s` has not read yet. With `whole_chunks`, if full chunks of the log are
    /// among them, the open chunk's part is left for a later take, by when it may be full
    /// (and shared compressed) too.
    pub fn take(&self, s: &Subscriber, whole_chunks: bool) -> Taken {
        let mut log = lock(&self.log);
        let next = s.next.load(Ordering::SeqCst);
        if log.closed || next < log.first() {
            return Taken {
                pieces: Vec::new(),
                count: 0,
                closed: true,
            };
        }
        let mut end = log.end();
        let mut pieces = Vec::new();
        for c in log.full.iter().filter(|c| c.end() > next) {
            pieces.push(Piece::Shared(Arc::clone(c), next.max(c.first)));
        }
        if whole_chunks && !pieces.is_empty() {
            end = log.open.first;
        } else {
            let rest = log.open.from(next);
            if !rest.is_empty() {
                pieces.push(Piece::Copied(rest.to_owned()));
            }
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
