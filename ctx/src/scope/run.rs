//! The wrapper around every task's user code: runs it with the group
//! context, catches its panic, records its failure, and releases its slot
//! once all of it is over (invariant 4 of `state.rs`).

use std::future::{poll_fn, Future};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{ready, Poll};

use super::cause::Origin;
use super::span::SpawnSpan;
use super::state::{Panic, Shared};
use super::tasks::Key;
use super::{GroupError, Output};
use crate::unwind::contain;
use crate::{Context, Error};

/// Held by every started task, dropped after its user code is over; see
/// `Shared::release` in `admit.rs`.
pub(super) struct Release<E: GroupError> {
    shared: Arc<Shared<E>>,
    key: Key,
    /// Set by the task once it ran to its end; still false if tokio dropped
    /// it.
    completed: bool,
}

impl<E: GroupError> Release<E> {
    /// The release of the task spawned under `key`, whose slot is taken.
    pub(super) fn new(shared: Arc<Shared<E>>, key: Key) -> Self {
        Release {
            shared,
            key,
            completed: false,
        }
    }
}

impl<E: GroupError> Drop for Release<E> {
    fn drop(&mut self) {
        self.shared.release(self.key, self.completed);
    }
}

/// The body of every async task; `f` and its future run inside `span`.
pub(super) async fn run_task<E, F, Fut, T>(
    mut release: Release<E>,
    span: SpawnSpan,
    f: F,
) -> Output<T>
where
    E: GroupError,
    F: FnOnce(Context) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    if release.shared.dropped.load(Ordering::Acquire) {
        // Spawned before the scope was dropped, polled after: never starts.
        release.completed = true;
        return Err(Error::Canceled);
    }
    let ctx = release.shared.ctx.clone();
    let outcome = match catch_unwind(AssertUnwindSafe(|| span.in_scope(|| f(ctx)))) {
        Ok(fut) => catch(span.instrument(fut)).await,
        Err(panic) => Err(panic),
    };
    release.completed = true;
    settle(&release.shared, outcome, Origin::Task)
}

/// The body of every blocking task; `f` runs inside `span`.
pub(super) fn run_blocking<E, F, T>(mut release: Release<E>, span: SpawnSpan, f: F) -> Output<T>
where
    E: GroupError,
    F: FnOnce(Context) -> Result<T, E>,
{
    if release.shared.dropped.load(Ordering::Acquire) {
        release.completed = true;
        return Err(Error::Canceled);
    }
    let ctx = release.shared.ctx.clone();
    let outcome = catch_unwind(AssertUnwindSafe(|| span.in_scope(|| f(ctx))));
    release.completed = true;
    settle(&release.shared, outcome, Origin::Task)
}

/// Turns a task's outcome into what its handle gets, recording failures.
fn settle<E: GroupError, T>(
    shared: &Shared<E>,
    outcome: Result<Result<T, E>, Panic>,
    origin: Origin,
) -> Output<T> {
    match outcome {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => {
            shared.fail(err);
            Err(shared.group_err())
        }
        Err(panic) => {
            shared.panicked(panic, origin);
            Err(shared.group_err())
        }
    }
}

/// Polls `fut` to completion, catching a panic from its `poll` or from its
/// drop (the future is dropped as soon as it completes, inside the catch).
/// Used for the body of the scope too.
pub(super) async fn catch<F: Future>(fut: F) -> Result<F::Output, Panic> {
    let mut slot = pin!(Some(fut));
    poll_fn(|cx| {
        let polled = catch_unwind(AssertUnwindSafe(|| {
            let fut = slot
                .as_mut()
                .as_pin_mut()
                .expect("ctx: internal error: task future polled after completion");
            let out = ready!(fut.poll(cx));
            slot.set(None);
            Poll::Ready(out)
        }));
        match polled {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(out)) => Poll::Ready(Ok(out)),
            Err(panic) => {
                // Drop what is left of the future here too; a second panic
                // from its drop is contained in favour of the first, its
                // payload dropped inside a further catch.
                contain(|| slot.set(None));
                Poll::Ready(Err(panic))
            }
        }
    })
    .await
}
