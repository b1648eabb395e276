//! Bytes per live cancelable child, measured with a counting allocator:
//! 1,000,000 children of one parent, for ctx and for tokio-util's
//! `CancellationToken`. Prints `MemoryPerChild/<impl> <bytes>` lines that
//! `bench/compare.sh` reads (Go's twin reads `runtime.MemStats`).
//!
//! Counted: every byte the library allocates for a child (the node, its
//! slot in the parent's list, with the list's growth slack). Not counted: the
//! caller's own handles (the `Vec` holding them here), as Go's `HeapAlloc`
//! difference would count the slice of contexts and cancel funcs too; the
//! Go twin subtracts its slices likewise.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use ctx::Context;
use tokio_util::sync::CancellationToken;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call unchanged to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same layout, forwarded.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same pointer and layout, forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const N: usize = 1_000_000;

fn measure<H>(make: impl Fn() -> H) -> f64 {
    let mut handles: Vec<H> = Vec::with_capacity(N);
    let before = LIVE.load(Ordering::SeqCst);
    for _ in 0..N {
        handles.push(make());
    }
    let after = LIVE.load(Ordering::SeqCst);
    drop(handles);
    (after - before) as f64 / N as f64
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let (parent, _guard) = Context::background().with_cancel();
    let ctx_bytes = measure(|| parent.with_cancel());
    let token = CancellationToken::new();
    let token_bytes = measure(|| token.child_token());
    println!("MemoryPerChild/ctx {ctx_bytes:.1}");
    println!("MemoryPerChild/tokio_util {token_bytes:.1}");
}
