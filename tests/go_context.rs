//! Ports of Go's `src/context/context_test.go` and `x_test.go`, case by case.
//! Each test names the Go test it ports. Go cases that have no Rust
//! counterpart (nil parents, custom Context implementations, untyped keys)
//! are listed in the closing note of the core issue instead.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use ctx::{Context, Error};

/// Generous: CI is a noisy 2-core machine.
const LONG: Duration = Duration::from_secs(10);

fn assert_done(ctx: &Context, err: Error) {
    assert_eq!(ctx.err(), Some(err), "{ctx:?} should be done with {err}");
    assert_eq!(
        futures::executor::block_on(ctx.done()),
        err,
        "done() ready after err()"
    );
}

fn assert_live(ctx: &Context) {
    assert_eq!(ctx.err(), None, "{ctx:?} should be live");
    assert_eq!(ctx.wait_timeout(Duration::ZERO), None);
}

// TestBackground, TestTODO
#[test]
fn roots_are_never_done_and_have_no_deadline_or_values() {
    for root in [Context::background(), Context::todo()] {
        assert_live(&root);
        assert_eq!(root.deadline(), None);
        assert_eq!(root.remaining(), None);
        assert_eq!(root.cause().map(|c| c.to_string()), None);
        assert_eq!(root.value::<u32>(), None);
    }
    assert_eq!(format!("{:?}", Context::background()), "background");
    assert_eq!(format!("{:?}", Context::todo()), "todo");
}

// TestWithCancel
#[test]
fn cancel_reaches_every_descendant_but_not_the_parent() {
    let root = Context::background();
    let (c1, cancel1) = root.with_cancel();
    let (c2, _cancel2) = c1.with_cancel();
    let (c3, _cancel3) = c2.with_cancel();
    for c in [&c1, &c2, &c3] {
        assert_live(c);
    }
    cancel1.cancel();
    for c in [&c1, &c2, &c3] {
        assert_done(c, Error::Canceled);
    }
    assert_live(&root);
}

// TestParentFinishesChild
#[test]
fn parent_cancel_finishes_children_of_every_kind_and_unlinks_them() {
    let (parent, cancel) = Context::background().with_cancel();
    let (cancel_child, _c1) = parent.with_cancel();
    let (timer_child, _c2) = parent.with_timeout(Duration::from_secs(3600));
    let value_child = parent.with_value(1u8);
    let (grandchild, _c3) = value_child.with_cancel();
    cancel.cancel();
    for c in [
        &parent,
        &cancel_child,
        &timer_child,
        &value_child,
        &grandchild,
    ] {
        assert_done(c, Error::Canceled);
    }
}

// TestChildFinishesFirst
#[test]
fn a_child_that_finishes_first_leaves_its_parent_live() {
    for parent_cancelable in [false, true] {
        let (parent, parent_guard) = if parent_cancelable {
            let (c, g) = Context::background().with_cancel();
            (c, Some(g))
        } else {
            (Context::background(), None)
        };
        let (child, cancel) = parent.with_cancel();
        cancel.cancel();
        assert_done(&child, Error::Canceled);
        assert_live(&parent);
        if let Some(guard) = parent_guard {
            guard.cancel();
            assert_done(&child, Error::Canceled); // sticky: still Canceled
        }
    }
}

// TestDeadline
#[test]
fn deadlines_fire_with_deadline_exceeded_and_not_early() {
    let start = Instant::now();
    let at = start + Duration::from_millis(50);
    let (c, _cancel) = Context::background().with_deadline(at);
    assert_eq!(c.deadline(), Some(at));
    assert_eq!(c.wait_timeout(LONG), Some(Error::DeadlineExceeded));
    assert!(Instant::now() >= at, "never early");

    // A later deadline below an earlier one inherits the earlier one.
    let (c, _c1) = Context::background().with_deadline(start + Duration::from_millis(50));
    let (o, _c2) = c.with_deadline(start + Duration::from_secs(3600));
    assert_eq!(o.deadline(), c.deadline());
    assert_eq!(o.wait_timeout(LONG), Some(Error::DeadlineExceeded));

    // An earlier deadline below a later one is its own.
    let (c, _c1) = Context::background().with_deadline(start + Duration::from_secs(3600));
    let (o, _c2) = c.with_deadline(Instant::now() + Duration::from_millis(20));
    assert_eq!(o.wait_timeout(LONG), Some(Error::DeadlineExceeded));
    assert_live(&c);

    // A deadline in the past: done at once.
    let (c, _cancel) = Context::background().with_deadline(start - Duration::from_secs(1));
    assert_done(&c, Error::DeadlineExceeded);
}

// TestTimeout
#[test]
fn timeouts_fire_and_remaining_counts_down_to_zero() {
    let (c, _cancel) = Context::background().with_timeout(Duration::from_millis(30));
    let left = c.remaining().expect("a timeout has a deadline");
    assert!(left <= Duration::from_millis(30));
    assert_eq!(c.wait_timeout(LONG), Some(Error::DeadlineExceeded));
    assert_eq!(c.remaining(), Some(Duration::ZERO));
    // A timeout too large for an Instant means no deadline of its own.
    let (c, _cancel) = Context::background().with_timeout(Duration::MAX);
    assert_eq!(c.deadline(), None);
    assert_live(&c);
}

// TestCanceledTimeout
#[test]
fn canceling_a_timeout_context_reports_canceled() {
    let (c, cancel) = Context::background().with_timeout(Duration::from_secs(3600));
    let (o, _c) = c.with_value(3u8).with_cancel();
    cancel.cancel();
    assert_done(&o, Error::Canceled);
    assert_done(&c, Error::Canceled);
}

// TestValues
#[test]
fn values_are_found_by_type_nearest_first() {
    #[derive(Debug, PartialEq)]
    struct K1(&'static str);
    #[derive(Debug, PartialEq)]
    struct K2(&'static str);
    let c0 = Context::background();
    let c1 = c0.with_value(K1("c1k1"));
    let c2 = c1.with_value(K2("c2k2"));
    let c3 = c2.with_value(K1("c3k1"));
    let (c4, _cancel) = c3.with_cancel();
    let c5 = c4.without_cancel();
    assert_eq!(c0.value::<K1>(), None);
    assert_eq!(c1.value::<K1>(), Some(&K1("c1k1")));
    assert_eq!(c1.value::<K2>(), None);
    assert_eq!(c2.value::<K2>(), Some(&K2("c2k2")));
    assert_eq!(c3.value::<K1>(), Some(&K1("c3k1")));
    assert_eq!(c4.value::<K1>(), Some(&K1("c3k1")));
    assert_eq!(c5.value::<K2>(), Some(&K2("c2k2")));
    assert_eq!(c5.value::<String>(), None);
}

// TestSimultaneousCancels
#[test]
fn simultaneous_cancels_of_a_tree_finish_every_node() {
    let root = Context::background();
    let mut nodes = Vec::new();
    let mut guards = Vec::new();
    let (top, top_guard) = root.with_cancel();
    nodes.push(top.clone());
    // A three-level tree, 1 + 10 + 100 nodes.
    for _ in 0..10 {
        let (mid, g) = top.with_cancel();
        for _ in 0..10 {
            let (leaf, g) = mid.with_cancel();
            nodes.push(leaf);
            guards.push(g);
        }
        nodes.push(mid);
        guards.push(g);
    }
    let barrier = Arc::new(Barrier::new(guards.len() + 1));
    let mut threads = Vec::new();
    for guard in guards {
        let barrier = barrier.clone();
        threads.push(thread::spawn(move || {
            barrier.wait();
            guard.cancel();
        }));
    }
    barrier.wait();
    top_guard.cancel();
    for t in threads {
        t.join().unwrap();
    }
    for n in &nodes {
        assert_done(n, Error::Canceled);
    }
}

// TestInterlockedCancels
#[test]
fn a_cancel_from_an_after_func_of_another_context_completes() {
    let (parent, cancel_parent) = Context::background().with_cancel();
    let (child, cancel_child) = Context::background().with_cancel();
    let handle = cancel_child.handle();
    let _after = parent.after_func(move || handle.cancel());
    cancel_parent.cancel();
    assert_eq!(child.wait_timeout(LONG), Some(Error::Canceled));
    drop(cancel_child);
}

// TestLayersCancel, TestLayersTimeout
#[test]
fn layers_of_values_and_cancels_all_end_with_the_top() {
    for timeout in [false, true] {
        let mut c = Context::background();
        let mut guards = Vec::new();
        let mut all = Vec::new();
        let (top, top_guard) = if timeout {
            c.with_timeout(Duration::from_millis(20))
        } else {
            c.with_cancel()
        };
        c = top;
        for i in 0..30u32 {
            c = match i % 3 {
                0 => c.with_value(i),
                1 => {
                    let (n, g) = c.with_cancel();
                    guards.push(g);
                    n
                }
                _ => {
                    let (n, g) = c.with_timeout(Duration::from_secs(3600));
                    guards.push(g);
                    n
                }
            };
            all.push(c.clone());
        }
        if !timeout {
            top_guard.cancel();
        } else {
            assert_eq!(c.wait_timeout(LONG), Some(Error::DeadlineExceeded));
            drop(top_guard);
        }
        let expected = if timeout {
            Error::DeadlineExceeded
        } else {
            Error::Canceled
        };
        for n in &all {
            assert_done(n, expected);
        }
    }
}

// TestWithCancelCanceledParent
#[test]
fn a_child_of_a_canceled_parent_is_born_canceled_with_its_cause() {
    let (parent, cancel) = Context::background().with_cancel();
    cancel.cancel_with_cause(std::io::Error::other("parent cause"));
    let (child, _c) = parent.with_cancel();
    assert_done(&child, Error::Canceled);
    assert_eq!(child.cause().unwrap().to_string(), "parent cause");
    let (timed, _c) = parent.with_timeout(Duration::from_secs(1));
    assert_done(&timed, Error::Canceled);
    assert_eq!(timed.cause().unwrap().to_string(), "parent cause");
}

// TestDeadlineExceededSupportsTimeout
#[test]
fn deadline_exceeded_is_a_timeout_and_converts_to_io() {
    assert!(Error::DeadlineExceeded.is_timeout());
    assert!(!Error::Canceled.is_timeout());
    let io: std::io::Error = Error::DeadlineExceeded.into();
    assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
    let io: std::io::Error = Error::Canceled.into();
    assert_eq!(io.kind(), std::io::ErrorKind::Interrupted);
    assert_eq!(Error::Canceled.to_string(), "context canceled");
    assert_eq!(
        Error::DeadlineExceeded.to_string(),
        "context deadline exceeded"
    );
}

#[derive(Debug, Clone, PartialEq)]
struct Why(&'static str);
impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}
impl std::error::Error for Why {}

fn cause_of(ctx: &Context) -> Option<String> {
    ctx.cause().map(|c| c.to_string())
}

// TestCause: every row of Go's table that Rust can express.
#[test]
fn cause_rules_follow_go() {
    let bg = Context::background();
    let long = Duration::from_secs(3600);

    // WithCancel, plain cancel: the cause is the error.
    let (c, g) = bg.with_cancel();
    g.cancel();
    assert!(c.cause().unwrap().is(Error::Canceled));

    // WithCancelCause.
    let (c, g) = bg.with_cancel();
    g.cancel_with_cause(Why("because"));
    assert_eq!(
        c.cause().unwrap().downcast_ref::<Why>(),
        Some(&Why("because"))
    );

    // Parent canceled with cause; the child reports the parent's cause.
    let (p, g) = bg.with_cancel();
    let (c, _cg) = p.with_cancel();
    g.cancel_with_cause(Why("parent"));
    assert_eq!(cause_of(&c).as_deref(), Some("parent"));

    // Parent canceled with cause, then child canceled with another: parent's wins.
    let (p, g) = bg.with_cancel();
    let (c, cg) = p.with_cancel();
    g.cancel_with_cause(Why("first"));
    cg.cancel_with_cause(Why("second"));
    assert_eq!(cause_of(&c).as_deref(), Some("first"));

    // Child canceled first keeps its own cause; the parent's comes later.
    let (p, g) = bg.with_cancel();
    let (c, cg) = p.with_cancel();
    cg.cancel_with_cause(Why("child"));
    g.cancel_with_cause(Why("parent"));
    assert_eq!(cause_of(&c).as_deref(), Some("child"));
    assert_eq!(cause_of(&p).as_deref(), Some("parent"));

    // WithTimeoutCause, deadline fires: its cause.
    let (c, _g) = bg.with_timeout_cause(Duration::from_millis(1), Why("too slow"));
    assert_eq!(c.wait_timeout(LONG), Some(Error::DeadlineExceeded));
    assert_eq!(cause_of(&c).as_deref(), Some("too slow"));

    // WithTimeoutCause, canceled first: the cancel's error, not the deadline cause.
    let (c, g) = bg.with_timeout_cause(long, Why("unused"));
    g.cancel();
    assert!(c.cause().unwrap().is(Error::Canceled));

    // WithTimeout below a canceled-with-cause parent: parent's cause.
    let (p, g) = bg.with_cancel();
    let (c, _cg) = p.with_timeout(long);
    g.cancel_with_cause(Why("parent"));
    assert_eq!(cause_of(&c).as_deref(), Some("parent"));

    // A deadline of the parent reaches the child with the parent's cause.
    let (p, _g) = bg.with_timeout_cause(Duration::from_millis(1), Why("parent deadline"));
    let (c, _cg) = p.with_cancel();
    assert_eq!(c.wait_timeout(LONG), Some(Error::DeadlineExceeded));
    assert_eq!(cause_of(&c).as_deref(), Some("parent deadline"));

    // Plain timeout: the cause is DeadlineExceeded itself.
    let (c, _g) = bg.with_timeout(Duration::from_millis(1));
    c.wait_blocking();
    assert!(c.cause().unwrap().is(Error::DeadlineExceeded));

    // Live contexts have no cause; values pass the cause through.
    let (c, g) = bg.with_cancel();
    let v = c.with_value(1u64);
    assert!(v.cause().is_none());
    g.cancel_with_cause(Why("v"));
    assert_eq!(cause_of(&v).as_deref(), Some("v"));
}

// TestCauseRace
#[test]
fn concurrent_cancels_with_causes_keep_exactly_one() {
    for _ in 0..200 {
        let (c, g) = Context::background().with_cancel();
        let handles: Vec<_> = (0..4).map(|_| g.handle()).collect();
        let barrier = Arc::new(Barrier::new(handles.len()));
        let threads: Vec<_> = handles
            .into_iter()
            .enumerate()
            .map(|(i, h)| {
                let barrier = barrier.clone();
                let why = ["a", "b", "c", "d"][i];
                thread::spawn(move || {
                    barrier.wait();
                    h.cancel_with_cause(Why(why));
                })
            })
            .collect();
        // Readers during the race see either nothing or a settled answer.
        while c.err().is_none() {
            thread::yield_now();
        }
        let first = cause_of(&c).unwrap();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(
            cause_of(&c).unwrap(),
            first,
            "the first cancel wins for good"
        );
        drop(g);
    }
}

// TestWithoutCancel
#[test]
fn without_cancel_keeps_values_and_drops_cancellation_and_deadline() {
    struct Key(u8);
    let (p, g) = Context::background()
        .with_value(Key(9))
        .with_timeout(Duration::from_millis(1));
    let w = p.without_cancel();
    assert_eq!(w.deadline(), None);
    g.cancel();
    assert_live(&w);
    assert_eq!(w.value::<Key>().map(|k| k.0), Some(9));
    // A context derived below it is cancelable on its own again.
    let (c, g) = w.with_cancel();
    g.cancel();
    assert_done(&c, Error::Canceled);
    let chain = format!("{w:?}");
    assert!(chain.starts_with("background.with_value("), "{chain}");
    assert!(chain.contains("::Key).with_deadline("), "{chain}");
    assert!(chain.ends_with(").without_cancel"), "{chain}");
}

/// Registers an after_func that counts its runs; returns the handle and the count.
fn count_calls(ctx: &Context) -> (ctx::AfterFunc, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let after = ctx.after_func(move || {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    (after, calls)
}

// TestAfterFuncCalledAfterCancel
#[test]
fn after_func_runs_once_after_cancel() {
    let (c, g) = Context::background().with_cancel();
    let (after, calls) = count_calls(&c);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    g.cancel();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(!after.stop(), "stop after the callback started is false");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

// TestAfterFuncCalledAfterTimeout
#[test]
fn after_func_runs_after_a_deadline_on_a_callback_thread() {
    let (c, _g) = Context::background().with_timeout(Duration::from_millis(5));
    let (tx, rx) = std::sync::mpsc::channel();
    let _after = c.after_func(move || tx.send(thread::current().name().map(String::from)).unwrap());
    let name = rx.recv_timeout(LONG).expect("the callback ran");
    // Never on the timer thread: a slow callback must not delay deadlines.
    assert_eq!(name.as_deref(), Some("ctx-callback"));
}

// TestAfterFuncCalledImmediately
#[test]
fn after_func_on_a_done_context_runs_at_once() {
    let (c, g) = Context::background().with_cancel();
    g.cancel();
    let (after, calls) = count_calls(&c);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(!after.stop());
}

// TestAfterFuncNotCalledAfterStop
#[test]
fn after_func_stopped_first_never_runs() {
    let (c, g) = Context::background().with_cancel();
    let (after, calls) = count_calls(&c);
    assert!(after.stop());
    assert!(!after.stop(), "second stop is false");
    g.cancel();
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

// TestAfterFuncCalledAsynchronously has no counterpart: ours runs on the
// canceling thread. On a context that is never done, it never runs:
#[test]
fn after_func_on_background_never_runs_and_stop_says_so() {
    let (after, calls) = count_calls(&Context::background());
    assert!(after.stop());
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

// ExampleAfterFunc_cond-like: a callback may derive and cancel contexts.
#[test]
fn after_func_callbacks_may_derive_and_cancel_contexts() {
    let (parent, g) = Context::background().with_cancel();
    let (tx, rx) = std::sync::mpsc::channel();
    let watched = parent.clone();
    let _after = parent.after_func(move || {
        // Deriving from the (done) context and canceling inside the callback
        // must not deadlock: no lock is held while callbacks run.
        let (child, cg) = watched.with_cancel();
        cg.cancel();
        tx.send(child.err()).unwrap();
    });
    g.cancel();
    assert_eq!(rx.recv_timeout(LONG).unwrap(), Some(Error::Canceled));
}
