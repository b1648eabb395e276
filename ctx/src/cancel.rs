//! Cancel guards (cancel on drop) and handles (cancel by reference).

use std::fmt;

use crate::error::{Cause, Error};
use crate::loom::Arc;
use crate::tree::{self, CancelNode};

/// Cancels its context when dropped, or earlier with [`cancel`](CancelGuard::cancel).
///
/// Returned by every cancelable derivation ([`Context::with_cancel`](crate::Context::with_cancel),
/// `with_deadline`, `with_timeout` and their `_cause` variants). Because
/// dropping it cancels, every control-flow path out of the scope that owns it
/// (early `return`, `?`, a panic) cancels the context, as `defer cancel()`
/// does in Go, and a forgotten cancel is impossible: what `go vet`'s
/// `lostcancel` check warns about is a type error here. The flip side: a
/// guard discarded with `let _ = ...` cancels at once; `#[must_use]` warns,
/// and inside `#[ctx]` functions it is a compile error.
///
/// When `cancel` (or the drop) returns, the context and every context derived
/// from it report `err()` and their `done()` futures are ready. Their
/// `after_func` callbacks have run too, unless another thread (another
/// canceler, or the deadline timer) was already canceling an ancestor and
/// reached them first: that thread runs them, right after it has marked the
/// whole subtree done. Canceling releases the context's resources: its timer,
/// and its entry in the parent.
///
/// # Examples
///
/// ```
/// fn handle(parent: &ctx::Context) -> Result<(), ctx::Error> {
///     let (ctx, _cancel) = parent.with_cancel(); // canceled on every way out
///     ctx.check()?;
///     Ok(())
/// }
/// assert_eq!(handle(&ctx::Context::background()), Ok(()));
/// ```
///
/// Go: `context.CancelFunc` used with `defer`.
#[must_use = "dropping a CancelGuard cancels its context at once; bind it (`let (ctx, _cancel) = ...`) and keep it until the work ends"]
pub struct CancelGuard {
    node: Option<Arc<CancelNode>>,
}

impl CancelGuard {
    pub(crate) fn new(node: Arc<CancelNode>) -> CancelGuard {
        CancelGuard { node: Some(node) }
    }

    /// Cancels now with [`Error::Canceled`] (consumes the guard). Does
    /// nothing if the context is done already.
    ///
    /// ```
    /// let (ctx, cancel) = ctx::Context::background().with_cancel();
    /// cancel.cancel();
    /// assert_eq!(ctx.err(), Some(ctx::Error::Canceled));
    /// ```
    pub fn cancel(self) {
        drop(self);
    }

    /// Cancels now, recording `cause` as what [`Context::cause`](crate::Context::cause)
    /// reports for this context and its descendants. If the context is done
    /// already, nothing changes (the first cancellation wins).
    ///
    /// ```
    /// let (ctx, cancel) = ctx::Context::background().with_cancel();
    /// cancel.cancel_with_cause(std::io::Error::other("user pressed stop"));
    /// assert_eq!(ctx.err(), Some(ctx::Error::Canceled));
    /// assert_eq!(ctx.cause().unwrap().to_string(), "user pressed stop");
    /// ```
    ///
    /// Go: the `CancelCauseFunc` of `WithCancelCause`.
    pub fn cancel_with_cause(mut self, cause: impl Into<Cause>) {
        if let Some(node) = self.node.take() {
            tree::cancel(&node, Error::Canceled, Some(cause.into()));
        }
    }

    /// Ends the context with [`Error::DeadlineExceeded`], for a caller that
    /// knows its deadline has passed before the timer got to it.
    #[cfg(feature = "tower")]
    pub(crate) fn expire(mut self) {
        if let Some(node) = self.node.take() {
            tree::cancel(&node, Error::DeadlineExceeded, None);
        }
    }

    /// A handle that can cancel the same context from elsewhere (another
    /// task, a callback). Dropping a handle cancels nothing.
    ///
    /// ```
    /// let (ctx, cancel) = ctx::Context::background().with_cancel();
    /// let handle = cancel.handle();
    /// std::thread::spawn(move || handle.cancel()).join().unwrap();
    /// assert!(ctx.is_done());
    /// ```
    pub fn handle(&self) -> CancelHandle {
        CancelHandle {
            node: self
                .node
                .clone()
                .expect("ctx: internal error: a live guard always has its node"),
        }
    }
}

// As for `Context`: the node it cancels stays consistent across a panic.
impl std::panic::UnwindSafe for CancelGuard {}
impl std::panic::RefUnwindSafe for CancelGuard {}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if let Some(node) = self.node.take() {
            tree::release(node);
        }
    }
}

impl fmt::Debug for CancelGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelGuard").finish_non_exhaustive()
    }
}

/// Cancels a context by reference; cloneable, `Send + Sync`.
///
/// Made by [`CancelGuard::handle`]. Only the first cancellation of a context
/// has an effect: every later call, through any handle or the guard, does
/// nothing. Dropping a handle cancels nothing; the guard still cancels when
/// it is dropped.
///
/// ```
/// let (ctx, cancel) = ctx::Context::background().with_cancel();
/// let handle = cancel.handle();
/// handle.cancel_with_cause(std::io::Error::other("first"));
/// handle.cancel_with_cause(std::io::Error::other("second")); // no effect
/// assert_eq!(ctx.cause().unwrap().to_string(), "first");
/// # drop(cancel);
/// ```
#[derive(Clone)]
pub struct CancelHandle {
    node: Arc<CancelNode>,
}

impl CancelHandle {
    /// Cancels with [`Error::Canceled`]; does nothing if already done.
    ///
    /// ```
    /// let (ctx, guard) = ctx::Context::background().with_cancel();
    /// guard.handle().cancel();
    /// assert!(ctx.is_done());
    /// ```
    pub fn cancel(&self) {
        tree::cancel(&self.node, Error::Canceled, None);
    }

    /// Cancels recording `cause`; does nothing if already done.
    ///
    /// ```
    /// let (ctx, guard) = ctx::Context::background().with_cancel();
    /// guard.handle().cancel_with_cause(std::fmt::Error);
    /// assert!(ctx.cause().unwrap().downcast_ref::<std::fmt::Error>().is_some());
    /// ```
    pub fn cancel_with_cause(&self, cause: impl Into<Cause>) {
        tree::cancel(&self.node, Error::Canceled, Some(cause.into()));
    }
}

impl fmt::Debug for CancelHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelHandle").finish_non_exhaustive()
    }
}
