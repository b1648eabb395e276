//! Fault tests: panicking callbacks and wakers, timers racing drops. The
//! tree stays consistent and other contexts are unaffected.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Wake, Waker};
use std::time::Duration;

use ctx::{Context, Error};

fn quiet_panics() {
    // The default hook would print each expected panic; keep the output readable.
    std::panic::set_hook(Box::new(|_| {}));
}

#[test]
fn a_panicking_after_func_does_not_poison_the_tree_or_stop_other_callbacks() {
    quiet_panics();
    let (ctx, cancel) = Context::background().with_cancel();
    let (child, _g) = ctx.with_cancel();
    let ran = Arc::new(AtomicUsize::new(0));
    let _boom = ctx.after_func(|| panic!("callback failure"));
    let _ok = child.after_func({
        let ran = ran.clone();
        move || {
            ran.fetch_add(1, Ordering::SeqCst);
        }
    });
    cancel.cancel();
    assert_eq!(
        ran.load(Ordering::SeqCst),
        1,
        "the other callback still ran"
    );
    assert_eq!(child.err(), Some(Error::Canceled));
    // The tree still works: derive, cancel, wait.
    let (again, g) = Context::background().with_cancel();
    let (below, _g2) = again.with_cancel();
    g.cancel();
    assert_eq!(below.err(), Some(Error::Canceled));
}

#[test]
fn a_panicking_after_func_on_a_deadline_does_not_kill_the_timer() {
    quiet_panics();
    let (ctx, _g) = Context::background().with_timeout(Duration::from_millis(1));
    let _boom = ctx.after_func(|| panic!("timer callback failure"));
    assert_eq!(
        ctx.wait_timeout(Duration::from_secs(10)),
        Some(Error::DeadlineExceeded)
    );
    // Later deadlines still fire.
    let (later, _g) = Context::background().with_timeout(Duration::from_millis(5));
    assert_eq!(
        later.wait_timeout(Duration::from_secs(10)),
        Some(Error::DeadlineExceeded)
    );
}

struct PanickingWaker;
impl Wake for PanickingWaker {
    fn wake(self: Arc<Self>) {
        panic!("waker failure");
    }
}

#[test]
fn a_panicking_waker_does_not_keep_other_waiters_asleep() {
    quiet_panics();
    let (ctx, cancel) = Context::background().with_cancel();
    let bad = Waker::from(Arc::new(PanickingWaker));
    let counter = Arc::new(CountingWaker::default());
    let good = Waker::from(counter.clone());
    let mut first = ctx.done();
    let mut second = ctx.done();
    assert!(pin!(&mut first)
        .poll(&mut TaskContext::from_waker(&bad))
        .is_pending());
    assert!(pin!(&mut second)
        .poll(&mut TaskContext::from_waker(&good))
        .is_pending());
    cancel.cancel();
    assert_eq!(counter.0.load(Ordering::SeqCst), 1);
    assert_eq!(ctx.err(), Some(Error::Canceled));
}

#[test]
fn timers_firing_while_their_subtrees_are_dropped_stay_consistent() {
    for i in 0..2000u64 {
        let (parent, pg) = Context::background().with_timeout(Duration::from_micros(i % 50));
        let (child, cg) = parent.with_cancel();
        let (grandchild, _gg) = child.with_timeout(Duration::from_micros(i % 30));
        if i % 2 == 0 {
            drop(cg);
            drop(pg);
        } else {
            drop(pg);
            drop(cg);
        }
        assert!(grandchild.is_done());
        assert!(child.is_done());
    }
    // The timer is still alive and on time.
    let (c, _g) = Context::background().with_timeout(Duration::from_millis(2));
    assert_eq!(
        c.wait_timeout(Duration::from_secs(10)),
        Some(Error::DeadlineExceeded)
    );
}

// --- Wakers that misbehave ---------------------------------------------------

use std::sync::mpsc;
use std::task::{Poll, RawWaker, RawWakerVTable};

mod support;
use support::CountingWaker;

/// A raw waker whose `clone` runs a hook: the one piece of waker code a
/// `done()` future runs while registering.
struct HookedWaker {
    on_clone: Box<dyn Fn() + Send + Sync>,
}

static HOOKED: RawWakerVTable = RawWakerVTable::new(
    |data| {
        // SAFETY: `data` is the `HookedWaker` leaked in `hooked_waker`.
        let hook = unsafe { &*(data as *const HookedWaker) };
        (hook.on_clone)();
        RawWaker::new(data, &HOOKED)
    },
    |_| {},
    |_| {},
    |_| {},
);

/// Leaks one small box per call: fine for a handful of tests.
fn hooked_waker(on_clone: impl Fn() + Send + Sync + 'static) -> Waker {
    let data = Box::into_raw(Box::new(HookedWaker {
        on_clone: Box::new(on_clone),
    }));
    // SAFETY: the vtable's functions accept this pointer for as long as the
    // box lives, which is forever.
    unsafe { Waker::from_raw(RawWaker::new(data as *const (), &HOOKED)) }
}

/// Runs `f` on its own thread and fails (instead of hanging the suite) if it
/// has not finished in time: the thread, and whatever it holds, is leaked.
fn within(limit: Duration, what: &str, f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    match rx.recv_timeout(limit) {
        Ok(()) => {}
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: still blocked after {limit:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what}: panicked"),
    }
}

// Regression: poll_done cloned the waker while holding the node lock (user
// code under a lock, against invariant 4 of tree.rs), so a waker whose clone
// touched the same context deadlocked on the first poll.
#[test]
fn a_waker_whose_clone_uses_the_same_context_does_not_deadlock() {
    within(
        Duration::from_secs(10),
        "polling done() with a reentrant waker",
        || {
            let (ctx, cancel) = Context::background().with_timeout(Duration::from_secs(3600));
            let seen = ctx.clone();
            let waker = hooked_waker(move || {
                // Each of these takes the node's lock.
                let _ = seen.deadline();
                let (child, _g) = seen.with_cancel();
                drop(child.after_func(|| {}));
            });
            let mut done = ctx.done();
            let mut cx = TaskContext::from_waker(&waker);
            assert!(pin!(&mut done).poll(&mut cx).is_pending());
            // Polled again with a different waker: replaced, old one dropped.
            let other = Waker::from(Arc::new(CountingWaker::default()));
            assert!(pin!(&mut done)
                .poll(&mut TaskContext::from_waker(&other))
                .is_pending());
            assert!(pin!(&mut done).poll(&mut cx).is_pending());
            drop(done);
            cancel.cancel();
            assert_eq!(ctx.err(), Some(Error::Canceled));
        },
    );
}

#[test]
fn a_waker_whose_clone_panics_leaves_the_context_usable() {
    quiet_panics();
    let (ctx, cancel) = Context::background().with_cancel();
    let bad = hooked_waker(|| panic!("waker clone failure"));
    let counter = Arc::new(CountingWaker::default());
    let good = Waker::from(counter.clone());
    let mut first = ctx.done();
    let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pin!(&mut first).poll(&mut TaskContext::from_waker(&bad))
    }));
    assert!(polled.is_err(), "the poller sees its own waker's panic");
    drop(first);
    // The node is neither poisoned nor half-registered: it still derives,
    // registers, cancels and wakes.
    let (child, _g) = ctx.with_cancel();
    let mut second = ctx.done();
    assert!(pin!(&mut second)
        .poll(&mut TaskContext::from_waker(&good))
        .is_pending());
    cancel.cancel();
    assert_eq!(counter.0.load(Ordering::SeqCst), 1);
    assert_eq!(child.err(), Some(Error::Canceled));
    assert_eq!(
        pin!(&mut second).poll(&mut TaskContext::from_waker(&good)),
        Poll::Ready(Error::Canceled)
    );
}

#[test]
fn a_waker_dropped_without_being_woken_is_released_and_never_called() {
    let (ctx, cancel) = Context::background().with_cancel();
    let counter = Arc::new(CountingWaker::default());
    let waker = Waker::from(counter.clone());
    {
        let mut done = ctx.done();
        assert!(pin!(&mut done)
            .poll(&mut TaskContext::from_waker(&waker))
            .is_pending());
        assert_eq!(
            Arc::strong_count(&counter),
            3,
            "registered: the node holds a clone"
        );
        // The task gives up: its future (and the registered clone) goes away.
    }
    assert_eq!(
        Arc::strong_count(&counter),
        2,
        "unregistered when the future dropped"
    );
    drop(waker);
    cancel.cancel();
    assert_eq!(
        counter.0.load(Ordering::SeqCst),
        0,
        "a dropped waiter is never woken"
    );
    assert_eq!(Arc::strong_count(&counter), 1);
}

#[test]
fn a_forgotten_done_future_holds_its_waker_only_until_the_cancel() {
    let (ctx, cancel) = Context::background().with_cancel();
    let counter = Arc::new(CountingWaker::default());
    let mut done = Box::new(ctx.done());
    let waker = Waker::from(counter.clone());
    assert!(pin!(&mut *done)
        .poll(&mut TaskContext::from_waker(&waker))
        .is_pending());
    drop(waker);
    // Its Drop never runs: the registration stays until the context ends.
    std::mem::forget(done);
    assert_eq!(Arc::strong_count(&counter), 2);
    cancel.cancel();
    assert_eq!(
        counter.0.load(Ordering::SeqCst),
        1,
        "woken once by the cancel"
    );
    assert_eq!(Arc::strong_count(&counter), 1, "and released by it");
}

// --- The timer racing drops, across threads ----------------------------------

#[test]
fn timers_firing_while_subtrees_are_dropped_on_many_threads_leave_bystanders_on_time() {
    // A bystander with its own deadlines, checked while the others churn.
    let bystander = std::thread::spawn(|| {
        for i in 0..20u64 {
            let timeout = Duration::from_millis(2 + i % 5);
            let start = std::time::Instant::now();
            let (c, _g) = Context::background().with_timeout(timeout);
            assert_eq!(
                c.wait_timeout(Duration::from_secs(30)),
                Some(Error::DeadlineExceeded)
            );
            assert!(start.elapsed() >= timeout, "a bystander fired early");
        }
    });
    let churners: Vec<_> = (0..4u64)
        .map(|t| {
            std::thread::spawn(move || {
                let ran = Arc::new(AtomicUsize::new(0));
                let mut registered = 0;
                for i in 0..2000u64 {
                    let (parent, pg) =
                        Context::background().with_timeout(Duration::from_micros((i * 7 + t) % 60));
                    let valued = parent.with_value(i);
                    let (child, cg) = valued.with_timeout(Duration::from_micros(i % 40));
                    let (leaf, lg) = child.with_cancel();
                    let _after = leaf.after_func({
                        let ran = ran.clone();
                        move || {
                            ran.fetch_add(1, Ordering::SeqCst);
                        }
                    });
                    registered += 1;
                    let mut done = leaf.done();
                    let waker = Waker::from(Arc::new(CountingWaker::default()));
                    let _ = pin!(&mut done).poll(&mut TaskContext::from_waker(&waker));
                    // Drop in a different order each time, racing the timer.
                    match i % 3 {
                        0 => drop((done, lg, cg, pg)),
                        1 => drop((pg, done, cg, lg)),
                        _ => drop((cg, lg, pg, done)),
                    }
                    assert!(leaf.is_done() && child.is_done() && parent.is_done());
                }
                // Every callback ran exactly once, whoever canceled first
                // (the timer's walk may still be finishing the last ones).
                let deadline = std::time::Instant::now() + Duration::from_secs(30);
                while ran.load(Ordering::SeqCst) < registered
                    && std::time::Instant::now() < deadline
                {
                    std::thread::yield_now();
                }
                assert_eq!(ran.load(Ordering::SeqCst), registered);
            })
        })
        .collect();
    for c in churners {
        c.join().unwrap();
    }
    bystander.join().unwrap();
}
