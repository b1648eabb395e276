//! Deadlines never wait for user callbacks: `after_func` callbacks that a
//! deadline fires run on the callback pool, not on the timer thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use ctx::{Context, Error};

/// How late a deadline may fire here: generous for a noisy 2-core machine,
/// far below the 1.5 s a blocked callback would add.
const LATE: Duration = Duration::from_millis(700);

/// A 10 ms timeout whose callback blocks for 1.5 s.
fn blocked_callback() -> (Context, ctx::CancelGuard, ctx::AfterFunc) {
    let (ctx, guard) = Context::background().with_timeout(Duration::from_millis(10));
    let after = ctx.after_func(|| std::thread::sleep(Duration::from_millis(1500)));
    (ctx, guard, after)
}

#[test]
fn a_blocked_deadline_callback_does_not_delay_another_deadline_through_wait_blocking() {
    let (blocker, _g, _a) = blocked_callback();
    let start = Instant::now();
    let (ctx, _guard) = Context::background().with_timeout(Duration::from_millis(50));
    assert_eq!(ctx.wait_blocking(), Error::DeadlineExceeded);
    let took = start.elapsed();
    assert!(
        took < Duration::from_millis(50) + LATE,
        "a 50 ms deadline fired after {took:?}"
    );
    assert_eq!(blocker.err(), Some(Error::DeadlineExceeded));
}

#[tokio::test]
async fn a_blocked_deadline_callback_does_not_delay_another_deadline_through_done() {
    let (_blocker, _g, _a) = blocked_callback();
    let start = Instant::now();
    let (ctx, _guard) = Context::background().with_timeout(Duration::from_millis(50));
    assert_eq!(ctx.done().await, Error::DeadlineExceeded);
    let took = start.elapsed();
    assert!(
        took < Duration::from_millis(50) + LATE,
        "a 50 ms deadline fired after {took:?}"
    );
}

#[test]
fn a_blocked_deadline_callback_does_not_delay_other_callbacks() {
    let (_blocker, _g, _a) = blocked_callback();
    let (tx, rx) = mpsc::channel();
    let start = Instant::now();
    let (ctx, _guard) = Context::background().with_timeout(Duration::from_millis(20));
    let _after = ctx.after_func(move || {
        let _ = tx.send(Instant::now());
    });
    let ran = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the callback ran");
    let took = ran - start;
    assert!(
        took < Duration::from_millis(20) + LATE,
        "the second callback ran after {took:?}"
    );
}

#[test]
fn deadline_callbacks_run_on_the_callback_pool_and_cancel_callbacks_before_cancel_returns() {
    let (tx, rx) = mpsc::channel();
    let (ctx, _guard) = Context::background().with_timeout(Duration::from_millis(5));
    let _after = ctx.after_func(move || {
        let _ = tx.send(std::thread::current().name().map(str::to_owned));
    });
    let name = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(name.as_deref(), Some("ctx-callback"));

    let ran = Arc::new(AtomicBool::new(false));
    let (ctx, cancel) = Context::background().with_cancel();
    let _after = ctx.after_func({
        let ran = ran.clone();
        move || ran.store(true, Ordering::SeqCst)
    });
    cancel.cancel();
    assert!(ran.load(Ordering::SeqCst), "ran before cancel returned");
}

#[test]
fn many_blocked_deadline_callbacks_do_not_delay_deadlines() {
    // Many blocked at once (fewer than the pool's 64 threads, together with
    // the other tests of this file running in parallel).
    let blockers: Vec<_> = (0..32).map(|_| blocked_callback()).collect();
    let start = Instant::now();
    let (ctx, _guard) = Context::background().with_timeout(Duration::from_millis(50));
    assert_eq!(ctx.wait_blocking(), Error::DeadlineExceeded);
    let took = start.elapsed();
    assert!(
        took < Duration::from_millis(50) + LATE,
        "a 50 ms deadline fired after {took:?}"
    );
    drop(blockers);
}
