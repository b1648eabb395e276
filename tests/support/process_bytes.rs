//! A process-wide counting allocator: live bytes across every thread, ctx's
//! own threads and tokio's workers included. For tests that check memory
//! returns to a baseline (`tests/memory_process.rs`, `tests/memory_scope.rs`);
//! each such test binary has one test function, so nothing else allocates
//! meanwhile.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// What may stay above a baseline: small bookkeeping, not a burst's peak
/// (100,000 entries of anything are megabytes).
pub const SLACK: isize = 64 * 1024;

/// Bytes allocated and not yet freed, by every thread of the process.
pub fn live() -> isize {
    LIVE.load(Ordering::SeqCst)
}
