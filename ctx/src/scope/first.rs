//! The first failure of a group: the error `scope` returns, and the one whose
//! cause the group context records.
//!
//! Rules (see [`scope`](crate::scope())): the first error, from the body or any
//! task, wins and later ones are dropped; an error that comes after the
//! parent is done is dropped in favour of the parent's error; a panic
//! outranks every error. This is the part of a scope whose correctness is
//! about interleavings only, so it goes through `crate::loom` and the models
//! below check it against racing errors, a panic, a task's success and the
//! parent's cancel (`RUSTFLAGS="--cfg loom" cargo test -p ctx-tree --release --lib
//! scope::first`).

use crate::loom::{lock, AtomicU8, Mutex, Ordering};
use crate::Context;

const OPEN: u8 = 0;
const CLAIMED: u8 = 1;

pub(super) struct FirstFailure<E> {
    /// Set by the first failure (error or panic), so later errors are
    /// dropped without being formatted or locked for.
    claimed: AtomicU8,
    /// The error that won the claim.
    error: Mutex<Option<E>>,
}

impl<E> FirstFailure<E> {
    pub(super) fn new() -> Self {
        FirstFailure {
            claimed: AtomicU8::new(OPEN),
            error: Mutex::new(None),
        }
    }

    /// Claims the group's first failure for an error. False if the parent
    /// is done already (its error is what the scope returns) or another
    /// failure came first: the caller drops the error. After `true`, the
    /// caller [`record`](Self::record)s it and cancels the group with its
    /// cause.
    pub(super) fn claim(&self, parent: &Context) -> bool {
        !parent.is_done() && self.claimed.swap(CLAIMED, Ordering::AcqRel) == OPEN
    }

    /// A panic failed the group: it outranks every error, and errors after
    /// it are dropped.
    pub(super) fn mark_panicked(&self) {
        self.claimed.store(CLAIMED, Ordering::Release);
    }

    /// Stores the error that won [`claim`](Self::claim).
    pub(super) fn record(&self, err: E) {
        let previous = lock(&self.error).replace(err);
        debug_assert!(previous.is_none(), "ctx: internal error: two first errors");
    }

    /// The recorded error, once the group is idle.
    pub(super) fn take(&self) -> Option<E> {
        lock(&self.error).take()
    }
}

#[cfg(all(test, loom))]
mod loom_models {
    //! One race each; the failing side follows `Shared::fail`'s order:
    //! claim, record, cancel the group with the error's cause.

    use std::fmt;

    use loom::sync::Arc;
    use loom::thread;

    use super::FirstFailure;
    use crate::{CancelGuard, CancelHandle, Cause, Context, Error};

    #[derive(Debug, Clone, Copy, PartialEq)]
    struct Failed(u8);

    impl fmt::Display for Failed {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "task {} failed", self.0)
        }
    }

    impl std::error::Error for Failed {}

    struct Group {
        parent: Context,
        parent_guard: CancelGuard,
        ctx: Context,
        _guard: CancelGuard,
        cancel: CancelHandle,
        first: FirstFailure<Failed>,
    }

    impl Group {
        fn new() -> Arc<Group> {
            let (parent, parent_guard) = Context::background().with_cancel();
            let (ctx, guard) = parent.with_cancel();
            Arc::new(Group {
                parent,
                parent_guard,
                cancel: guard.handle(),
                ctx,
                _guard: guard,
                first: FirstFailure::new(),
            })
        }

        /// `Shared::fail`, minus the queue.
        fn fail(&self, err: Failed) -> bool {
            if !self.first.claim(&self.parent) {
                return false;
            }
            self.first.record(err);
            self.cancel.cancel_with_cause(err);
            true
        }

        fn cause(&self) -> Option<Failed> {
            self.ctx
                .cause()
                .and_then(|c| c.downcast_ref::<Failed>().copied())
        }
    }

    fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(3);
        builder.check(f);
    }

    #[test]
    fn two_errors_race_and_exactly_one_is_returned_and_is_the_cause() {
        model(|| {
            let group = Group::new();
            let t = thread::spawn({
                let group = group.clone();
                move || group.fail(Failed(1))
            });
            let mine = group.fail(Failed(2));
            let theirs = t.join().unwrap();
            assert!(mine ^ theirs, "exactly one error wins");
            let returned = group.first.take();
            assert_eq!(returned, Some(if mine { Failed(2) } else { Failed(1) }));
            assert_eq!(group.cause(), returned, "the returned error is the cause");
            assert_eq!(group.ctx.err(), Some(Error::Canceled));
        });
    }

    #[test]
    fn the_first_error_races_a_tasks_success() {
        model(|| {
            let group = Group::new();
            // A task that succeeds: derives from the group context, checks
            // it, finishes (its guard unlinks its child) and reports a value.
            let t = thread::spawn({
                let group = group.clone();
                move || {
                    let (step, _done_with_it) = group.ctx.with_cancel();
                    step.check().map(|()| 42)
                }
            });
            assert!(group.fail(Failed(1)), "nothing else can claim first");
            let success = t.join().unwrap();
            // The success may have seen the group live or canceled; either
            // way the error is what the scope returns, and the cause.
            assert!(matches!(success, Ok(42) | Err(Error::Canceled)));
            assert_eq!(group.first.take(), Some(Failed(1)));
            assert_eq!(group.cause(), Some(Failed(1)));
        });
    }

    #[test]
    fn the_first_error_races_the_parents_cancel() {
        model(|| {
            let group = Group::new();
            let t = thread::spawn({
                let group = group.clone();
                move || group.fail(Failed(1))
            });
            // Cancel the parent through a handle; the guard stays in the group.
            group.parent_guard.handle().cancel_with_cause(Failed(9));
            let claimed = t.join().unwrap();
            let returned = group.first.take();
            // The scope never reports success: the error, or else the parent's.
            assert_eq!(returned.is_some(), claimed);
            assert!(returned.is_some() || group.parent.is_done());
            // The cause is whichever cancel reached the group first.
            let cause = group.cause();
            assert!(cause == Some(Failed(9)) || (claimed && cause == Some(Failed(1))));
            assert_eq!(group.ctx.err(), Some(Error::Canceled));
        });
    }

    #[test]
    fn a_panic_races_an_error_and_an_error_after_it_is_dropped() {
        model(|| {
            let group = Group::new();
            let t = thread::spawn({
                let group = group.clone();
                move || group.fail(Failed(1))
            });
            // `Shared::panicked`: mark, then cancel with the panic's cause.
            group.first.mark_panicked();
            group.cancel.cancel_with_cause(Cause::from(std::fmt::Error));
            let claimed = t.join().unwrap();
            assert_eq!(group.first.take().is_some(), claimed);
            if claimed {
                // The error came first: it may be the cause, and is kept
                // (the panic still outranks it when the scope finishes).
                assert!(group.ctx.cause().is_some());
            } else {
                assert_eq!(
                    group.cause(),
                    None,
                    "an error after a panic is not the cause"
                );
            }
        });
    }
}
