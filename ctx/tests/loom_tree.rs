//! Loom models of the context tree: one race each, every interleaving.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p ctx-tree --test loom_tree --release`.
//! Under `--cfg loom` the tree's Arc, Mutex and atomics are loom's (see
//! `ctx/src/loom.rs`), so these models explore the real code.
#![cfg(loom)]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context as TaskContext, Poll, Wake, Waker};

use ctx::{Context, Error};
use loom::thread;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(f);
}

#[test]
fn cancel_races_child_derivation() {
    model(|| {
        let (parent, cancel) = Context::background().with_cancel();
        let deriver = thread::spawn({
            let parent = parent.clone();
            move || parent.with_cancel()
        });
        cancel.cancel();
        let (child, _guard) = deriver.join().unwrap();
        // Born canceled or canceled by propagation: never missed.
        assert_eq!(child.err(), Some(Error::Canceled));
    });
}

#[test]
fn parent_and_child_canceled_at_the_same_moment() {
    model(|| {
        let (parent, cancel_parent) = Context::background().with_cancel();
        let (child, cancel_child) = parent.with_cancel();
        let (grandchild, _g) = child.with_cancel();
        let t = thread::spawn(move || {
            cancel_child.cancel();
            // Invariant 3: when cancel returns, the subtree is done even if
            // the parent's walk did the work.
            grandchild.err()
        });
        cancel_parent.cancel();
        assert_eq!(child.err(), Some(Error::Canceled));
        assert_eq!(t.join().unwrap(), Some(Error::Canceled));
        assert_eq!(parent.err(), Some(Error::Canceled));
    });
}

#[test]
fn guard_drop_races_parent_cancel() {
    model(|| {
        let (parent, cancel_parent) = Context::background().with_cancel();
        let (a, guard_a) = parent.with_cancel();
        let (b, _guard_b) = parent.with_cancel();
        // Dropping a's guard unlinks it (swap_remove moves b) while the
        // parent's cancel takes the child list.
        let t = thread::spawn(move || drop(guard_a));
        cancel_parent.cancel();
        t.join().unwrap();
        assert_eq!(a.err(), Some(Error::Canceled));
        assert_eq!(b.err(), Some(Error::Canceled));
    });
}

#[test]
fn sibling_unlinks_race_each_other() {
    model(|| {
        let (parent, _cancel_parent) = Context::background().with_cancel();
        let (_a, guard_a) = parent.with_cancel();
        let (_b, guard_b) = parent.with_cancel();
        let (c, _guard_c) = parent.with_cancel();
        let t = thread::spawn(move || drop(guard_a));
        drop(guard_b);
        t.join().unwrap();
        // The survivor's index was kept right through both swap_removes:
        // unlinking it later still finds it (an internal assert checks).
        drop(_guard_c);
        assert_eq!(c.err(), Some(Error::Canceled));
        assert_eq!(parent.err(), None);
    });
}

struct Flag(AtomicBool);
impl Wake for Flag {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn done_registration_races_cancel_without_losing_the_wake_up() {
    model(|| {
        let (ctx, cancel) = Context::background().with_cancel();
        let t = thread::spawn(move || cancel.cancel());
        let flag = std::sync::Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(flag.clone());
        let mut done = ctx.done();
        let first = Pin::new(&mut done).poll(&mut TaskContext::from_waker(&waker));
        t.join().unwrap();
        match first {
            Poll::Ready(err) => assert_eq!(err, Error::Canceled),
            // Pending means we registered before the cancel: we must be woken.
            Poll::Pending => assert!(flag.0.load(Ordering::SeqCst), "lost wake-up"),
        }
    });
}

/// Two pollers of one context and its cancel: a poll that finds the
/// node's lock taken by the other moves the node's waiters to the shards
/// (`tree/shards.rs`); whichever list a waker ended up in, it is woken.
#[test]
fn sharded_waiters_are_not_lost() {
    model(|| {
        let (ctx, cancel) = Context::background().with_cancel();
        let poller = |ctx: Context| {
            move || {
                let flag = std::sync::Arc::new(Flag(AtomicBool::new(false)));
                let waker = Waker::from(flag.clone());
                // Owned, so that it stays registered until the cancel.
                let mut done = ctx.done_owned();
                let first = Pin::new(&mut done).poll(&mut TaskContext::from_waker(&waker));
                (first, flag, done)
            }
        };
        let a = thread::spawn(poller(ctx.clone()));
        let b = thread::spawn(poller(ctx.clone()));
        cancel.cancel();
        for t in [a, b] {
            let (first, flag, _done) = t.join().unwrap();
            match first {
                Poll::Ready(err) => assert_eq!(err, Error::Canceled),
                Poll::Pending => assert!(flag.0.load(Ordering::SeqCst), "lost wake-up"),
            }
        }
    });
}

/// A poller of a contended context (its waiters in thread slots and
/// shards) re-polls with another task's waker and drops its future, while
/// a second poller waits and the context is canceled: whatever was pending
/// is woken, and every stored waker is dropped once its future or the
/// cancel is done with it (`tree/hot.rs`).
#[test]
fn hot_slot_repoll_and_removal_race_the_cancel() {
    model(|| {
        let (ctx, cancel) = Context::background().with_cancel();
        let switcher = thread::spawn({
            let ctx = ctx.clone();
            move || {
                let first = std::sync::Arc::new(Flag(AtomicBool::new(false)));
                let second = std::sync::Arc::new(Flag(AtomicBool::new(false)));
                let (one, two) = (Waker::from(first.clone()), Waker::from(second.clone()));
                let mut done = ctx.done_owned();
                let _ = Pin::new(&mut done).poll(&mut TaskContext::from_waker(&one));
                let again = Pin::new(&mut done).poll(&mut TaskContext::from_waker(&two));
                drop(done);
                drop((one, two));
                (again, first, second)
            }
        });
        let waiter = thread::spawn({
            let ctx = ctx.clone();
            move || {
                let flag = std::sync::Arc::new(Flag(AtomicBool::new(false)));
                let waker = Waker::from(flag.clone());
                let mut done = ctx.done_owned();
                let first = Pin::new(&mut done).poll(&mut TaskContext::from_waker(&waker));
                (first, flag, done)
            }
        });
        cancel.cancel();
        let (again, first, second) = switcher.join().unwrap();
        if let Poll::Ready(err) = again {
            assert_eq!(err, Error::Canceled);
        }
        // The dropped future left no clone of either waker anywhere.
        assert_eq!(std::sync::Arc::strong_count(&first), 1, "a waker was kept");
        assert_eq!(std::sync::Arc::strong_count(&second), 1, "a waker was kept");
        let (first, flag, done) = waiter.join().unwrap();
        match first {
            Poll::Ready(err) => assert_eq!(err, Error::Canceled),
            Poll::Pending => assert!(flag.0.load(Ordering::SeqCst), "lost wake-up"),
        }
        drop(done);
        assert_eq!(std::sync::Arc::strong_count(&flag), 1, "a waker was kept");
    });
}

/// A `done()` registered on a contended context and forgotten: when the
/// context is dropped live (never canceled), its waker is dropped with it,
/// wherever it was registered.
#[test]
fn a_forgotten_waiter_is_dropped_with_its_live_context() {
    model(|| {
        let (ctx, guard) = Context::background().with_cancel();
        let flags: Vec<_> = (0..2)
            .map(|_| std::sync::Arc::new(Flag(AtomicBool::new(false))))
            .collect();
        let pollers: Vec<_> = flags
            .iter()
            .map(|flag| {
                let ctx = ctx.clone();
                let waker = Waker::from(flag.clone());
                thread::spawn(move || {
                    let mut done = ctx.done();
                    assert!(Pin::new(&mut done)
                        .poll(&mut TaskContext::from_waker(&waker))
                        .is_pending());
                    std::mem::forget(done);
                })
            })
            .collect();
        for poller in pollers {
            poller.join().unwrap();
        }
        drop(ctx);
        drop(guard);
        for flag in &flags {
            assert!(!flag.0.load(Ordering::SeqCst));
            assert_eq!(
                std::sync::Arc::strong_count(flag),
                1,
                "a waker outlived its context"
            );
        }
    });
}

#[test]
fn after_func_stop_races_cancel() {
    model(|| {
        let ran = std::sync::Arc::new(AtomicUsize::new(0));
        let (ctx, cancel) = Context::background().with_cancel();
        let after = ctx.after_func({
            let ran = ran.clone();
            move || {
                ran.fetch_add(1, Ordering::SeqCst);
            }
        });
        let t = thread::spawn(move || cancel.cancel());
        let stopped = after.stop();
        t.join().unwrap();
        let ran = ran.load(Ordering::SeqCst);
        // Exactly once or never, and stop() tells which.
        assert_eq!(ran, if stopped { 0 } else { 1 });
    });
}

#[test]
fn concurrent_cancels_with_causes_agree_on_one() {
    model(|| {
        let (ctx, guard) = Context::background().with_cancel();
        let handle = guard.handle();
        let t = thread::spawn(move || handle.cancel_with_cause(std::fmt::Error));
        guard.cancel();
        t.join().unwrap();
        let cause = ctx.cause().unwrap();
        // Whoever was first, the answer is settled and consistent.
        assert!(cause.is(Error::Canceled) || cause.downcast_ref::<std::fmt::Error>().is_some());
        assert_eq!(ctx.err(), Some(Error::Canceled));
    });
}

/// A value checked by loom: reads and the drop go through a loom
/// `UnsafeCell`, so a drop that does not happen after every read on another
/// thread is reported as a data race.
struct Tracked(loom::cell::UnsafeCell<u32>);

// SAFETY: every access goes through the loom cell, whose checks are the
// point of the model (a race would fail it, not go unseen).
unsafe impl Sync for Tracked {}

impl Tracked {
    fn read(&self) -> u32 {
        // SAFETY: shared read; loom checks it against the drop's write.
        self.0.with(|v| unsafe { *v })
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        // SAFETY: exclusive write at the drop; loom checks it against reads.
        self.0.with_mut(|v| unsafe { *v = 0 });
    }
}

/// The value cell's own count (`tree/value_node.rs`, one of the crate's
/// two `unsafe` parts): a value read on one thread while the last handles go on
/// either; the cell (and the chain it keeps, through parents and jumps) is
/// freed once, after every read.
#[test]
fn value_cells_are_freed_after_every_read_on_any_thread() {
    model(|| {
        let root = Context::background().with_value(Tracked(loom::cell::UnsafeCell::new(7)));
        // Two more values: the leaf's jump and parent both keep cells alive.
        let leaf = root.with_value(1u8).with_value(2u16);
        let reader = thread::spawn({
            let leaf = leaf.clone();
            move || {
                assert_eq!(leaf.value::<Tracked>().map(Tracked::read), Some(7));
                assert_eq!(leaf.value::<u8>(), Some(&1));
            }
        });
        drop(root);
        assert_eq!(leaf.value::<Tracked>().map(Tracked::read), Some(7));
        drop(leaf);
        reader.join().unwrap();
    });
}
