//! A cell holding the current `Arc<T>` snapshot, read wait-free from any thread.
//!
//! Why not `arc-swap` or an epoch crate: they keep per-thread state in thread-local storage
//! with destructors. In a module loaded into a host process (Asterisk), touching such a value
//! on a host thread makes glibc pin the shared object, so `dlclose` after `module unload`
//! silently leaves the old image mapped. This cell uses no thread-local storage at all.
//!
//! Readers announce themselves in a reader slot for the few instructions it takes to load
//! the pointer and take a reference (or, with [`SnapshotCell::with`], for the duration of a
//! short closure). A writer swaps the pointer, then waits until every slot has been seen
//! free before it releases its reference to the old value. Readers never wait; writers wait
//! only for readers inside that window.
//!
//! The slots are cache-line-sized and a reader starts at one picked from its stack address
//! (thread stacks are disjoint), so readers on different threads do not bounce one line. A
//! reader claims a free slot with one compare-and-swap and frees it with a plain store (the
//! slot's generation moves on, so a writer waits only for the readers inside at its swap); if
//! every slot is taken (more readers inside at once than slots), it counts itself in a shared
//! overflow counter instead, so entering stays a bounded number of steps.
//!
//! Why not a reader-writer lock around an `Arc`: `parking_lot::RwLock` parks a thread that
//! finds it contended using per-thread data in a `thread_local!` with a destructor
//! (`parking_lot_core` 0.9, `parking_lot.rs` and `word_lock.rs`): the same pinning as above,
//! as soon as a lock is contended. `std::sync::RwLock` (a futex) keeps no per-thread state,
//! but its readers wait while a writer holds the lock or waits for it (it prefers writers),
//! so a call's lookup could wait behind a login that waits for a preempted reader; here
//! readers never wait. Measured side by side (`bench/src/bin/infrastructure.rs`, figures and
//! method in `docs/benchmarks-infrastructure.md`; 2 shared cores, CPU time per read, median
//! of 21 interleaved rounds, the snapshot of a table with 100,000 bindings):
//!
//! | Read | `SnapshotCell` | `std::sync::RwLock<Arc<_>>` | `parking_lot::RwLock<Arc<_>>` |
//! |---|---|---|---|
//! | `with`, one field, 1 thread | 7.3 ns | 6.6 ns | 7.1 ns |
//! | `with`, `dial(user)`, 1 thread | 434 ns | 428 ns | 440 ns |
//! | `with`, `dial(user)`, 2 threads, a writer committing back to back | 556 ns | 566 ns | 633 ns |
//! | `load` (an `Arc` clone), 1 thread | 18.1 ns | 12.3 ns | 12.2 ns |
//!
//! The locks read no faster where it matters (`with`), and `load` is not on a call's path.
//! The machine was busy: two readers were rarely on the two cores at once, so these runs
//! show little of the cache line a lock's reader count bounces between cores. A writer waits
//! for the readers inside: against readers that spend most of their time in `with`, back to
//! back commits ran at 9,501/s here against 1.76 M/s with `std`'s lock (commits are logins,
//! logouts and reloads, not a call's path). Waiting, the writer sleeps rather than yields:
//! with `yield_now` a preempted reader kept it off the cores for milliseconds (43 to 389
//! commits/s paced at one per 100 µs, against 764 to 2,138/s with the sleep, in alternated
//! runs).
#![deny(clippy::undocumented_unsafe_blocks)]

use std::sync::atomic::{
    AtomicPtr, AtomicUsize,
    Ordering::{Relaxed, Release, SeqCst},
};
use std::sync::{Arc, Mutex};

const SLOTS: usize = 16;

#[repr(align(128))]
struct Slot(AtomicUsize);

#[allow(clippy::declare_interior_mutable_const)]
const FREE_SLOT: Slot = Slot(AtomicUsize::new(0));

pub struct SnapshotCell<T> {
    current: AtomicPtr<T>,
    /// Each even (free) or odd (one reader inside); every exit moves to the next even value,
    /// so a writer can tell that the reader it saw inside has left.
    readers: [Slot; SLOTS],
    /// Readers that found every slot taken, counted.
    overflow: Slot,
    writer: Mutex<()>,
}

/// Spins, then sleeps, while `busy` holds. A reader leaves its slot within nanoseconds unless
/// it was preempted inside it; then it needs a core again before it can leave, so the writer
/// gives its own up. Sleeping does that and brings the writer back as soon as its timer fires
/// (tens of microseconds); `yield_now` would put it behind every runnable thread of the host,
/// which on a busy machine took milliseconds per commit.
fn wait_while(busy: impl Fn() -> bool) {
    let mut spins = 0u32;
    while busy() {
        spins += 1;
        if spins < 64 {
            std::hint::spin_loop();
        } else {
            std::thread::sleep(std::time::Duration::from_micros(20));
        }
    }
}

/// Holds a reader's place for as long as it lives (also through a panic in `with`).
enum Reading<'a> {
    /// A claimed slot and the (odd) value it holds while we are inside.
    Slot(&'a AtomicUsize, usize),
    Overflow(&'a AtomicUsize),
}

impl<'a> Reading<'a> {
    fn enter(readers: &'a [Slot; SLOTS], overflow: &'a Slot) -> Self {
        let marker = 0u8;
        let addr = std::ptr::addr_of!(marker) as usize;
        // Fibonacci hashing of the stack page: threads land in different slots.
        let start = ((addr >> 12).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60) % SLOTS;
        for k in 0..SLOTS {
            let slot = &readers[(start + k) % SLOTS].0;
            let free = slot.load(Relaxed);
            if free & 1 == 0 {
                let inside = free.wrapping_add(1);
                if slot.compare_exchange(free, inside, SeqCst, Relaxed).is_ok() {
                    return Reading::Slot(slot, inside);
                }
            }
        }
        overflow.0.fetch_add(1, SeqCst);
        Reading::Overflow(&overflow.0)
    }
}

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        match self {
            // The slot is ours alone: a plain release store frees it, with a new generation.
            Reading::Slot(slot, inside) => slot.store(inside.wrapping_add(1), Release),
            Reading::Overflow(count) => {
                count.fetch_sub(1, Release);
            }
        }
    }
}

// SAFETY: the cell hands out `Arc<T>` clones across threads, which needs `T: Send + Sync`,
// exactly as `Arc<T>` itself does.
unsafe impl<T: Send + Sync> Send for SnapshotCell<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Sync for SnapshotCell<T> {}

impl<T> SnapshotCell<T> {
    pub fn new(value: Arc<T>) -> Self {
        SnapshotCell {
            current: AtomicPtr::new(Arc::into_raw(value).cast_mut()),
            readers: [FREE_SLOT; SLOTS],
            overflow: FREE_SLOT,
            writer: Mutex::new(()),
        }
    }

    /// A cell holding nothing yet, usable in a `static` (no allocation: a module's statics are
    /// never dropped, so whatever they own on the heap after unload would leak).
    pub const fn empty() -> Self {
        SnapshotCell {
            current: AtomicPtr::new(std::ptr::null_mut()),
            readers: [FREE_SLOT; SLOTS],
            overflow: FREE_SLOT,
            writer: Mutex::new(()),
        }
    }

    /// The current value, if any (see [`empty`](Self::empty) and [`set`](Self::set)).
    pub fn get(&self) -> Option<Arc<T>> {
        let reading = Reading::enter(&self.readers, &self.overflow);
        let ptr = self.current.load(SeqCst);
        if ptr.is_null() {
            return None;
        }
        // SAFETY: as in `load`.
        unsafe { Arc::increment_strong_count(ptr) };
        drop(reading);
        // SAFETY: we own the strong reference taken just above.
        Some(unsafe { Arc::from_raw(ptr) })
    }

    /// Publishes `value` (or nothing) and returns the previous value, if any.
    pub fn set(&self, value: Option<Arc<T>>) -> Option<Arc<T>> {
        let _serialized = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let new = value.map_or(std::ptr::null_mut(), |v| Arc::into_raw(v).cast_mut());
        let old = self.swap_ptr(new);
        // SAFETY: a non-null `old` came from `Arc::into_raw` and the cell's reference to it is
        // handed to the caller; `swap_ptr` waited for readers that may have loaded it.
        (!old.is_null()).then(|| unsafe { Arc::from_raw(old) })
    }

    /// The current snapshot. Wait-free: a slot claim, a load, a reference-count increment and
    /// a store.
    /// The cell must hold a value (it does unless made with [`empty`](Self::empty)).
    pub fn load(&self) -> Arc<T> {
        let reading = Reading::enter(&self.readers, &self.overflow);
        let ptr = self.current.load(SeqCst);
        assert!(!ptr.is_null(), "SnapshotCell::load on an empty cell");
        // SAFETY: `ptr` came from `Arc::into_raw` and the cell owns one strong reference to it.
        // A writer that swapped it out does not drop that reference until every reader slot
        // has been seen at zero after the swap, and we are counted until after the increment.
        unsafe { Arc::increment_strong_count(ptr) };
        drop(reading);
        // SAFETY: we own the strong reference taken just above.
        unsafe { Arc::from_raw(ptr) }
    }

    /// Runs `f` on the current snapshot without touching its reference count (no shared
    /// cache line but the reader's own slot). Writers wait for `f` to return before they
    /// free the value it sees, so `f` must be short and must not write to this cell.
    pub fn with<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        let _reading = Reading::enter(&self.readers, &self.overflow);
        let ptr = self.current.load(SeqCst);
        assert!(!ptr.is_null(), "SnapshotCell::with on an empty cell");
        // SAFETY: as in `load`: the value stays alive while we are counted as a reader.
        f(unsafe { &*ptr })
    }

    /// Publishes `value` and returns the previous snapshot.
    pub fn store(&self, value: Arc<T>) -> Arc<T> {
        let _serialized = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        self.swap_locked(value)
    }

    fn swap_locked(&self, value: Arc<T>) -> Arc<T> {
        let old = self.swap_ptr(Arc::into_raw(value).cast_mut());
        assert!(
            !old.is_null(),
            "SnapshotCell::store on an empty cell: use set"
        );
        // SAFETY: `old` came from `Arc::into_raw`; the cell's reference to it is handed to the
        // caller, and no reader can still be between loading it and taking its own reference.
        unsafe { Arc::from_raw(old) }
    }

    /// Swaps the pointer and waits until no reader can still be using the old one.
    fn swap_ptr(&self, new: *mut T) -> *mut T {
        let old = self.current.swap(new, SeqCst);
        // A reader that loaded `old` holds its slot until it is done with it. Readers arriving
        // now see the new pointer: for a slot, waiting until its value changes (the reader
        // inside at the swap has left) is enough, however busy the slot stays after; the
        // shared overflow count must drain to zero.
        for slot in &self.readers {
            let inside = slot.0.load(SeqCst);
            if inside & 1 == 1 {
                wait_while(|| slot.0.load(SeqCst) == inside);
            }
        }
        wait_while(|| self.overflow.0.load(SeqCst) != 0);
        old
    }
}

impl<T> Drop for SnapshotCell<T> {
    fn drop(&mut self) {
        let ptr = *self.current.get_mut();
        if !ptr.is_null() {
            // SAFETY: `&mut self` means no reader or writer is active; we own the cell's reference.
            drop(unsafe { Arc::from_raw(ptr) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::thread;

    #[test]
    fn an_empty_cell_holds_nothing_and_gives_back_what_it_held() {
        static CELL: SnapshotCell<String> = SnapshotCell::empty();
        assert!(CELL.get().is_none());
        let v = Arc::new(String::from("x"));
        assert!(CELL.set(Some(v.clone())).is_none());
        assert_eq!(CELL.get().as_deref().map(String::as_str), Some("x"));
        let back = CELL.set(None).expect("the value");
        assert!(Arc::ptr_eq(&back, &v));
        drop(back);
        assert_eq!(Arc::strong_count(&v), 1, "the cell kept no reference");
        assert!(CELL.get().is_none());
    }

    #[test]
    fn with_reads_without_cloning() {
        let v = Arc::new(5);
        let cell = SnapshotCell::new(v.clone());
        assert_eq!(cell.with(|x| *x + 1), 6);
        assert_eq!(Arc::strong_count(&v), 2, "with() took no reference");
        let r =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cell.with(|_| panic!("x"))));
        assert!(r.is_err());
        // The panicking reader left its slot: a writer does not hang.
        cell.store(Arc::new(6));
        assert_eq!(cell.with(|x| *x), 6);
    }

    #[test]
    fn writers_wait_for_readers_in_slots_and_in_the_overflow() {
        const READERS: usize = SLOTS + 4;
        let cell = Arc::new(SnapshotCell::new(Arc::new(0u32)));
        let inside = Arc::new(std::sync::Barrier::new(READERS + 1));
        let left = Arc::new(AtomicUsize::new(0));
        let readers: Vec<_> = (0..READERS)
            .map(|_| {
                let (cell, inside, left) = (cell.clone(), inside.clone(), left.clone());
                thread::spawn(move || {
                    cell.with(|v| {
                        inside.wait();
                        thread::sleep(std::time::Duration::from_millis(50));
                        left.fetch_add(1, SeqCst);
                        *v
                    })
                })
            })
            .collect();
        // Every reader is inside: SLOTS of them in slots, the others in the overflow count.
        inside.wait();
        assert_eq!(cell.overflow.0.load(SeqCst), READERS - SLOTS);
        let old = cell.store(Arc::new(1));
        assert_eq!(
            left.load(SeqCst),
            READERS,
            "the writer waited for every reader"
        );
        assert_eq!(*old, 0);
        for r in readers {
            assert_eq!(r.join().unwrap(), 0);
        }
        assert_eq!(cell.overflow.0.load(SeqCst), 0);
        assert!(cell.readers.iter().all(|s| s.0.load(SeqCst) & 1 == 0));
        assert_eq!(cell.with(|v| *v), 1);
    }

    #[test]
    fn load_sees_latest_store() {
        let cell = SnapshotCell::new(Arc::new(1));
        assert_eq!(*cell.load(), 1);
        assert_eq!(*cell.store(Arc::new(2)), 1);
        assert_eq!(*cell.load(), 2);
    }

    #[test]
    fn replaced_values_are_freed_once_unreferenced() {
        let first = Arc::new(String::from("a"));
        let cell = SnapshotCell::new(first.clone());
        let held = cell.load();
        cell.store(Arc::new(String::from("b")));
        assert_eq!(Arc::strong_count(&first), 2, "ours and the reader's copy");
        drop(held);
        assert_eq!(Arc::strong_count(&first), 1);
        drop(cell);
    }

    #[test]
    fn concurrent_increments_are_not_lost_and_readers_see_monotonic_values() {
        let cell = Arc::new(SnapshotCell::new(Arc::new(0u64)));
        let stop = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (cell, stop) = (cell.clone(), stop.clone());
                thread::spawn(move || {
                    let mut last = 0;
                    while !stop.load(SeqCst) {
                        let v = *cell.load();
                        assert!(v >= last, "snapshot went backwards: {v} < {last}");
                        last = v;
                    }
                })
            })
            .collect();
        let lock = Arc::new(Mutex::new(()));
        let writers: Vec<_> = (0..3)
            .map(|_| {
                let (cell, lock) = (cell.clone(), lock.clone());
                thread::spawn(move || {
                    for _ in 0..2000 {
                        let _serialized = lock.lock().unwrap();
                        cell.store(Arc::new(*cell.load() + 1));
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        stop.store(true, SeqCst);
        for r in readers {
            r.join().unwrap();
        }
        assert_eq!(*cell.load(), 6000);
    }
}
