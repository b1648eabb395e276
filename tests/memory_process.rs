//! Process-wide live bytes return to their baseline after bursts, for every
//! long-lived part of ctx: the timer thread, the signal thread, node side
//! storage. The allocator counts every thread, ctx's own included (the
//! per-thread counts of `tests/memory.rs` cannot see a buffer the timer
//! thread keeps).
//!
//! One test function runs the phases in turn, so that nothing else in this
//! process allocates meanwhile.

// Counted to the byte, which the census of the `debug` feature (a
// registry entry per context, shards that keep their peak size) would
// upset: skipped under it. `.ci/run` runs this target without it.
#![cfg(not(feature = "debug"))]

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Waker};
use std::time::{Duration, Instant};

use ctx::Context;

#[path = "support/process_bytes.rs"]
mod process_bytes;
use process_bytes::{live, SLACK};

/// Waits (up to 10 s: ctx's threads finish their work asynchronously) for
/// live bytes to come back within `SLACK` of `baseline`.
fn assert_back_to(baseline: isize, what: &str) {
    let until = Instant::now() + Duration::from_secs(10);
    while live() > baseline + SLACK && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    let over = live() - baseline;
    assert!(
        over <= SLACK,
        "{what}: {over} bytes above the baseline after the burst"
    );
}

/// `n` deadlines falling due together, all waited for, then all dropped.
fn deadline_burst(n: usize) {
    let at = Instant::now() + Duration::from_millis(50);
    let contexts: Vec<_> = (0..n)
        .map(|_| Context::background().with_deadline(at))
        .collect();
    for (ctx, _guard) in &contexts {
        assert_eq!(ctx.wait_blocking(), ctx::Error::DeadlineExceeded);
    }
}

fn timer_thread_returns_to_baseline() {
    deadline_burst(1_000); // warm-up: the timer thread and its storage exist
    std::thread::sleep(Duration::from_millis(100));
    let baseline = live();
    deadline_burst(100_000);
    assert_back_to(baseline, "100,000 deadlines due together");
}

fn node_waiters_return_to_baseline() {
    let (ctx, _guard) = Context::background().with_cancel();
    let waker = Waker::noop();
    let mut warm = ctx.done();
    let _ = Pin::new(&mut warm).poll(&mut TaskContext::from_waker(waker));
    drop(warm);
    let baseline = live();
    let mut futures: Vec<_> = (0..100_000).map(|_| ctx.done()).collect();
    for done in &mut futures {
        assert!(Pin::new(done)
            .poll(&mut TaskContext::from_waker(waker))
            .is_pending());
    }
    drop(futures);
    assert_back_to(baseline, "100,000 waiters on a live context");
}

fn signal_thread_returns_to_baseline() {
    // Warm-up: the watcher thread, its runtime and one registration.
    drop(ctx::signal::notify(&Context::background()).unwrap());
    let (_keep, _keep_guard) = ctx::signal::notify(&Context::background()).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let baseline = live();
    let held: Vec<_> = (0..20_000)
        .map(|_| ctx::signal::notify(&Context::background()).unwrap())
        .collect();
    // Let the watcher take them all in while they are live.
    std::thread::sleep(Duration::from_millis(200));
    drop(held);
    // The watcher forgets the done ones as later registrations arrive.
    for _ in 0..3 {
        drop(ctx::signal::notify(&Context::background()).unwrap());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_back_to(baseline, "20,000 registrations with the signal thread");
}

#[test]
fn process_wide_live_bytes_return_to_baseline_after_bursts() {
    timer_thread_returns_to_baseline();
    node_waiters_return_to_baseline();
    signal_thread_returns_to_baseline();
}
