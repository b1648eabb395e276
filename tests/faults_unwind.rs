//! Panics that escape their catch: user code that ctx runs and contains
//! (callbacks, wakers, drops of user values on ctx's threads) panics with a
//! payload whose own `Drop` panics. Nothing may escape, no process-wide
//! thread may die, and deadlines keep firing afterwards.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Wake, Waker};
use std::time::Duration;

use ctx::{Context, Error};

/// A panic payload whose drop panics again.
struct Bomb;

impl Drop for Bomb {
    fn drop(&mut self) {
        panic!("the payload's drop panics too");
    }
}

fn quiet_panics() {
    std::panic::set_hook(Box::new(|_| {}));
}

/// Later deadlines still fire, so the timer thread is alive.
fn assert_deadlines_fire() {
    let (later, _g) = Context::background().with_timeout(Duration::from_millis(5));
    assert_eq!(
        later.wait_timeout(Duration::from_secs(10)),
        Some(Error::DeadlineExceeded),
        "the deadline timer stopped"
    );
}

#[test]
fn an_after_func_on_a_deadline_panicking_with_a_panicking_payload_leaves_the_timer_running() {
    quiet_panics();
    let (ctx, _g) = Context::background().with_timeout(Duration::from_millis(1));
    let _boom = ctx.after_func(|| std::panic::panic_any(Bomb));
    assert_eq!(
        ctx.wait_timeout(Duration::from_secs(10)),
        Some(Error::DeadlineExceeded)
    );
    for _ in 0..3 {
        assert_deadlines_fire();
    }
}

#[test]
fn an_after_func_fired_by_cancel_with_a_panicking_payload_lets_cancel_return() {
    quiet_panics();
    let ran = Arc::new(AtomicUsize::new(0));
    let (ctx, cancel) = Context::background().with_cancel();
    let _boom = ctx.after_func(|| std::panic::panic_any(Bomb));
    let _ok = ctx.after_func({
        let ran = ran.clone();
        move || {
            ran.fetch_add(1, Ordering::SeqCst);
        }
    });
    cancel.cancel();
    assert_eq!(ran.load(Ordering::SeqCst), 1, "the other callback ran");
    assert_deadlines_fire();
}

#[test]
fn an_after_func_run_at_registration_with_a_panicking_payload_returns() {
    quiet_panics();
    let (ctx, cancel) = Context::background().with_cancel();
    cancel.cancel();
    let after = ctx.after_func(|| std::panic::panic_any(Bomb));
    assert!(!after.stop(), "it ran at registration");
}

struct BombWaker;

impl Wake for BombWaker {
    fn wake(self: Arc<Self>) {
        std::panic::panic_any(Bomb);
    }
}

#[derive(Default)]
struct Counting(AtomicUsize);

impl Wake for Counting {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Registers a waker that panics with a `Bomb` and a counting one.
fn register_wakers(ctx: &Context) -> Arc<Counting> {
    let bad = Waker::from(Arc::new(BombWaker));
    let counting = Arc::new(Counting::default());
    let good = Waker::from(counting.clone());
    // Leaked on purpose: the registrations must outlive this function, as
    // those of a task that is still waiting do.
    let first = Box::leak(Box::new(ctx.clone()));
    let mut a = Box::pin(first.done());
    let mut b = Box::pin(first.done());
    assert!(a
        .as_mut()
        .poll(&mut TaskContext::from_waker(&bad))
        .is_pending());
    assert!(b
        .as_mut()
        .poll(&mut TaskContext::from_waker(&good))
        .is_pending());
    std::mem::forget(a);
    std::mem::forget(b);
    counting
}

#[test]
fn a_waker_panicking_with_a_panicking_payload_on_cancel_wakes_the_others() {
    quiet_panics();
    let (ctx, cancel) = Context::background().with_cancel();
    let counting = register_wakers(&ctx);
    cancel.cancel();
    assert_eq!(counting.0.load(Ordering::SeqCst), 1);
    assert_deadlines_fire();
}

#[test]
fn a_waker_panicking_with_a_panicking_payload_on_a_deadline_leaves_the_timer_running() {
    quiet_panics();
    let (ctx, _g) = Context::background().with_timeout(Duration::from_millis(2));
    let counting = register_wakers(&ctx);
    assert_eq!(
        ctx.wait_timeout(Duration::from_secs(10)),
        Some(Error::DeadlineExceeded)
    );
    let mut left = 1000;
    while counting.0.load(Ordering::SeqCst) == 0 && left > 0 {
        std::thread::sleep(Duration::from_millis(10));
        left -= 1;
    }
    assert_eq!(counting.0.load(Ordering::SeqCst), 1);
    assert_deadlines_fire();
}

/// Set when a `PanicsOnDrop` is dropped, just before it panics.
static DROPPED: AtomicUsize = AtomicUsize::new(0);

/// A request value whose drop panics.
struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, Ordering::SeqCst);
        std::panic::panic_any(Bomb);
    }
}

#[test]
fn a_value_whose_drop_panics_on_the_signal_thread_leaves_it_watching() {
    quiet_panics();
    let parent = Context::background().with_value(PanicsOnDrop);
    let (ctx, stop) = ctx::signal::notify(&parent).unwrap();
    drop(parent);
    stop.cancel();
    drop(ctx);
    // The watcher now holds the last handle; the next registration makes it
    // forget the done one, dropping the value there.
    let (_next, _stop) = ctx::signal::notify(&Context::background()).unwrap();
    for _ in 0..1000 {
        if DROPPED.load(Ordering::SeqCst) > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(DROPPED.load(Ordering::SeqCst), 1, "dropped on the watcher");
    // A watcher that died drops its end of the channel as it unwinds; give
    // it ample time, then register again: that panics if it is gone.
    std::thread::sleep(Duration::from_millis(200));
    for _ in 0..3 {
        let (ctx, _stop) = ctx::signal::notify(&Context::background())
            .expect("the signal thread is still watching");
        assert!(!ctx.is_done());
    }
}

/// Drops of the value set above the one whose drop panics.
static ABOVE: AtomicUsize = AtomicUsize::new(0);

struct Above;

impl Drop for Above {
    fn drop(&mut self) {
        ABOVE.fetch_add(1, Ordering::SeqCst);
    }
}

/// A value, or a cause, whose drop panics (an ordinary payload).
#[derive(Debug)]
struct PanicsOnDropToo;

impl Drop for PanicsOnDropToo {
    fn drop(&mut self) {
        panic!("a user value's drop panics");
    }
}

impl std::fmt::Display for PanicsOnDropToo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("panics on drop")
    }
}

impl std::error::Error for PanicsOnDropToo {}

fn drop_panics(ctx: Context) {
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(ctx)));
    assert!(dropped.is_err(), "the user's drop panic goes on");
}

/// A chain is freed link by link (`drop_chain`); a user's drop that panics
/// in the middle (a value's, or a cause's with its node) must not lose the
/// links above it.
#[test]
fn a_drop_that_panics_mid_chain_still_frees_the_chain_above() {
    quiet_panics();
    let leaf = Context::background()
        .with_value(Above)
        .with_value(PanicsOnDropToo)
        .with_value(1u8);
    drop_panics(leaf);
    assert_eq!(ABOVE.load(Ordering::SeqCst), 1, "the root value was leaked");

    let top = Context::background().with_value(Above);
    let (middle, cancel) = top.with_cancel();
    drop(top);
    cancel.cancel_with_cause(PanicsOnDropToo);
    let (leaf, leaf_guard) = middle.with_cancel();
    drop(middle);
    drop(leaf_guard);
    // The leaf's link is the last handle on the middle node and its cause.
    drop_panics(leaf);
    assert_eq!(ABOVE.load(Ordering::SeqCst), 2, "the root value was leaked");
}
