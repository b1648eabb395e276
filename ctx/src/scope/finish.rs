//! How a group ends: recording a failure (the first error or panic cancels
//! the group), waiting until no task runs or waits, and then finishing the
//! scope future with the right outcome, or, if it is dropped unfinished,
//! canceling the group and aborting its tasks.

use std::mem;
use std::panic::resume_unwind;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use super::cause::{cause_of, panic_message, Origin, Panicked};
use super::state::{Panic, Phase, Shared};
use super::GroupError;
use crate::unwind::drop_payload;
use crate::{CancelGuard, Error};

impl<E: GroupError> Shared<E> {
    /// Records a failure: the first one (if the parent was not done before it)
    /// becomes the scope's error and the group's cause; any other is dropped.
    pub(super) fn fail(&self, err: E) {
        if !self.first.claim(&self.parent) {
            // The parent's error, or an earlier failure, is what scope returns.
            return;
        }
        // `E`'s Display is user code; `cause_of` contains a panic in it, so
        // the error is still recorded and returned.
        let cause = cause_of(&err);
        self.first.record(err);
        // Invariants 3 and 6: a failed group starts no queued spawn; they are
        // dropped after the unlock, telling their handles.
        let queue = mem::take(&mut self.lock().queue);
        self.cancel.cancel_with_cause(cause);
        drop(queue);
    }

    /// Records a panic of a task or the body: the first one is resumed by the
    /// scope once every task has finished.
    pub(super) fn panicked(&self, panic: Panic, origin: Origin) {
        self.first.mark_panicked();
        let cause = Panicked {
            origin,
            message: panic_message(&*panic),
        };
        let (later, queue) = {
            // Invariants 3 and 6: keep the first panic, empty the queue, and
            // drop a later payload and the queued spawns after the unlock.
            let mut st = self.lock();
            let later = if st.panic.is_none() {
                st.panic = Some(panic);
                None
            } else {
                Some(panic)
            };
            (later, mem::take(&mut st.queue))
        };
        self.cancel.cancel_with_cause(cause);
        drop(queue);
        // A later panic is contained here, never resumed: its payload is
        // user code too, and its drop may panic again.
        if let Some(later) = later {
            drop_payload(later);
        }
    }
}

impl<E> Shared<E> {
    /// Ready once no task runs and none can start (invariants 3 and 5); then
    /// the scope is finished and refuses new tasks. Called only after the
    /// body has returned, so spawns still queued under limit 0 never start:
    /// they are dropped here, and their handles report `Canceled`.
    pub(super) fn poll_idle(&self, cx: &mut TaskContext<'_>) -> Poll<()> {
        // Invariants 3 and 5: idle and finished in one critical section, so
        // no spawn slips in between; invariant 4 makes idle mean every task's
        // user code is over.
        let mut st = self.lock();
        if st.is_idle() {
            st.phase = Phase::Finished;
            let stranded = mem::take(&mut st.queue);
            // Invariant 6: the spawns left under limit 0 are dropped unlocked.
            drop(st);
            drop(stranded);
            return Poll::Ready(());
        }
        let replaced = match &mut st.idle {
            Some(waker) if waker.will_wake(cx.waker()) => None,
            slot => slot.replace(cx.waker().clone()),
        };
        // Invariant 6: an old waker is dropped after the unlock.
        drop(st);
        drop(replaced);
        Poll::Pending
    }
}

/// The scope future's own state: cancels the group and aborts the tasks if
/// the future is dropped before it finishes.
pub(super) struct Running<E> {
    shared: Arc<Shared<E>>,
    /// The group context's guard: `Some` from the start, taken (and canceled)
    /// by `finish` or by the drop, whichever comes first.
    guard: Option<CancelGuard>,
}

impl<E> Running<E> {
    pub(super) fn new(shared: Arc<Shared<E>>, guard: CancelGuard) -> Self {
        Running {
            shared,
            guard: Some(guard),
        }
    }
}

impl<E> Running<E>
where
    E: From<Error>,
{
    /// The group is idle and finished: cancel its context and report.
    pub(super) fn finish(&mut self) -> Result<(), E> {
        let error = self.shared.first.take();
        // Invariant 4: the group is idle, so every panic is recorded by now.
        let panic = self.shared.lock().panic.take();
        if let Some(guard) = self.guard.take() {
            guard.cancel();
        }
        if let Some(panic) = panic {
            drop(error);
            resume_unwind(panic);
        }
        if let Some(err) = error {
            return Err(err);
        }
        if let Some(err) = self.shared.parent.err() {
            return Err(E::from(err));
        }
        Ok(())
    }
}

impl<E> Drop for Running<E> {
    fn drop(&mut self) {
        let Some(guard) = self.guard.take() else {
            return;
        };
        self.shared.dropped.store(true, Ordering::Release);
        let (aborts, queue) = {
            // Invariants 2, 5 and 6: mark the scope dropped (a spawn filing
            // its handle after this aborts itself), take every filed handle
            // and the queue, and abort and drop them after the unlock.
            let mut st = self.shared.lock();
            st.phase = Phase::Dropped;
            (st.tasks.drain(), mem::take(&mut st.queue))
        };
        // Cancel first, so blocking tasks (which cannot be aborted) see it.
        guard.cancel();
        for abort in &aborts {
            abort.abort();
        }
        drop(aborts);
        drop(queue);
    }
}
