//! The module's heap: the system allocator (Asterisk's `malloc`), counting the bytes the
//! module's own Rust code holds, so an administrator can tell the module's memory apart from
//! Asterisk's (`deviceuser show stats`). The count is striped like the snapshot cell's
//! reader slots (by stack address, no thread-local state), so threads allocating at the same
//! time do not contend on one cache line.
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};

const SLOTS: usize = 16;

#[repr(align(128))]
struct Slot(AtomicIsize);

#[allow(clippy::declare_interior_mutable_const)]
const ZERO: Slot = Slot(AtomicIsize::new(0));

static LIVE: [Slot; SLOTS] = [ZERO; SLOTS];

fn slot() -> &'static AtomicIsize {
    let marker = 0u8;
    let addr = std::ptr::addr_of!(marker) as usize;
    &LIVE[((addr >> 12).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60) % SLOTS].0
}

/// Bytes currently allocated by the module (requested sizes, without malloc's overhead).
pub fn live_bytes() -> usize {
    LIVE.iter().map(|s| s.0.load(Relaxed)).sum::<isize>().max(0) as usize
}

/// Hands the heap's free pages back to the system (glibc's `malloc_trim`, what Asterisk's
/// `malloc trim` command does). Reading a large config goes through Asterisk's config engine,
/// the raw text model and the validated model at once; once the first two are freed, their
/// pages would otherwise stay in the process, unused, until something happens to reuse them.
/// The commit thread calls it too, once a burst of commits is over (see `deferred`).
pub fn trim() {
    // SAFETY: malloc_trim takes no pointers; it only releases pages malloc has no live chunk
    // in, under malloc's own locks, and is safe to call from any thread at any time.
    unsafe { libc::malloc_trim(0) };
}

pub struct Counting;

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract holds as it does for `System`; the counting touches only atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is passed through.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            slot().fetch_add(layout.size() as isize, Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            slot().fetch_add(layout.size() as isize, Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator (hence `System`) with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        slot().fetch_sub(layout.size() as isize, Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as in `dealloc`; `new_size` is valid per the caller's contract.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            slot().fetch_add(new_size as isize - layout.size() as isize, Relaxed);
        }
        p
    }
}
