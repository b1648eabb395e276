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

#[derive(Default)]
struct CountingWaker(AtomicUsize);
impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
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
