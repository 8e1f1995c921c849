//! The module's heap: the system allocator (Asterisk's `malloc`), counting the bytes the
//! module's own Rust code holds, so an administrator can tell the module's memory apart from
//! Asterisk's (`deviceuser show stats`). The count is striped like the snapshot cell's
//! reader slots (by stack address, no thread-local state), so threads allocating at the same
//! time do not contend on one cache line.
//!
//! Blocks of [`LARGE`] bytes or more (config arrays, hash tables, a large CLI output) are
//! mapped straight from the kernel and unmapped when freed, never passed to `malloc`. glibc
//! raises its mmap and trim thresholds for the whole process to the size of any mmapped
//! block it frees (up to 32 and 64 MB): after the module had freed one 14 MB array, Asterisk's
//! heaps no longer gave freed memory back to the system (its AMI event queue of a burst, 13 MB,
//! stayed resident after Asterisk purged it). Mapping them ourselves leaves glibc's
//! thresholds where Asterisk had them.
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

/// Requests of this many bytes or more are mapped directly (glibc's default mmap threshold).
pub const LARGE: usize = 128 * 1024;
const PAGE: usize = 4096;

fn large(layout: Layout) -> bool {
    layout.size() >= LARGE && layout.align() <= PAGE
}

fn pages(size: usize) -> usize {
    size.div_ceil(PAGE) * PAGE
}

/// Fresh zeroed pages, or null.
fn map(size: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping at an address of the kernel's choosing touches no
    // existing memory; the result is checked against MAP_FAILED.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            pages(size),
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        std::ptr::null_mut()
    } else {
        p.cast()
    }
}

/// # Safety
/// `ptr` came from [`map`] (or `mremap`) with `size`, and nothing uses it afterwards.
unsafe fn unmap(ptr: *mut u8, size: usize) {
    // SAFETY: per the caller, `ptr..ptr + pages(size)` is exactly one of our mappings.
    unsafe { libc::munmap(ptr.cast(), pages(size)) };
}

pub struct Counting;

// SAFETY: small blocks go to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract holds for them as it does for `System`. Large blocks (see
// [`large`]: alignment at most a page) are whole anonymous mappings, page-aligned, zeroed,
// at least `size` bytes, and freed only by `munmap` of the same length; whether a block is
// large is decided from its layout's size alone, which the caller passes back unchanged
// to `dealloc` and `realloc`, so each block returns to the allocator that made it. The
// counting touches only atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = if large(layout) {
            map(layout.size())
        } else {
            // SAFETY: the caller's contract for `alloc` is passed through.
            unsafe { System.alloc(layout) }
        };
        if !p.is_null() {
            slot().fetch_add(layout.size() as isize, Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = if large(layout) {
            map(layout.size())
        } else {
            // SAFETY: as in `alloc`.
            unsafe { System.alloc_zeroed(layout) }
        };
        if !p.is_null() {
            slot().fetch_add(layout.size() as isize, Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if large(layout) {
            // SAFETY: a large layout's block was mapped by `map`/`realloc` with this size.
            unsafe { unmap(ptr, layout.size()) };
        } else {
            // SAFETY: `ptr` was allocated by `System` with `layout`.
            unsafe { System.dealloc(ptr, layout) };
        }
        slot().fetch_sub(layout.size() as isize, Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `layout.align()` is valid and `new_size` does not overflow it when rounded
        // up (the caller's contract for `realloc`).
        let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let p = match (large(layout), large(new)) {
            (false, false) => {
                // SAFETY: as in `dealloc`; `new_size` is valid per the caller's contract.
                unsafe { System.realloc(ptr, layout, new_size) }
            }
            (true, true) => {
                // SAFETY: `ptr` is one whole mapping of `pages(layout.size())` bytes; the
                // kernel moves or grows it, keeping its contents, or fails and leaves it.
                let q = unsafe {
                    libc::mremap(
                        ptr.cast(),
                        pages(layout.size()),
                        pages(new_size),
                        libc::MREMAP_MAYMOVE,
                    )
                };
                if q == libc::MAP_FAILED {
                    std::ptr::null_mut()
                } else {
                    q.cast()
                }
            }
            _ => {
                // Crossing the threshold: a new block from the other side, the contents
                // copied, the old block freed.
                // SAFETY: `new` has a non-zero size (it is large, or `layout` was).
                let q = unsafe { self.alloc(new) };
                if !q.is_null() {
                    // SAFETY: both blocks are valid for the smaller size and distinct.
                    unsafe {
                        std::ptr::copy_nonoverlapping(ptr, q, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                    // `alloc` and `dealloc` have done the counting.
                    return q;
                }
                q
            }
        };
        if !p.is_null() {
            slot().fetch_add(new_size as isize - layout.size() as isize, Relaxed);
        }
        p
    }
}
