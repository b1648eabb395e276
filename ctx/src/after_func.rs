//! `after_func`: run a callback once a context is done.

use std::fmt;

use crate::loom::Arc;
use crate::tree::{self, Callback, CallbackState, CancelNode};

/// The handle of a callback registered with [`Context::after_func`](crate::Context::after_func).
///
/// The callback runs exactly once after the context is done, unless
/// [`stop`](AfterFunc::stop) returned `true` first. Dropping the handle does
/// not stop it.
///
/// ```
/// let (ctx, cancel) = ctx::Context::background().with_cancel();
/// let after = ctx.after_func(|| println!("request over"));
/// assert!(after.stop()); // it will never run now
/// assert!(!after.stop()); // already stopped
/// cancel.cancel();
/// ```
///
/// Go: the `stop` function returned by `context.AfterFunc`.
pub struct AfterFunc {
    /// The run-once cell, shared with the node's callback list.
    callback: Arc<Callback>,
    /// Where it is registered, to unregister on `stop`.
    registration: Option<(Arc<CancelNode>, usize)>,
}

impl AfterFunc {
    /// Registers `f` on `node`, the context's signal (`None`: never done).
    pub(crate) fn register(
        node: Option<&Arc<CancelNode>>,
        f: Box<dyn FnOnce() + Send + 'static>,
    ) -> AfterFunc {
        let callback = Arc::new(Callback::new(f));
        let registration = match node {
            // Never done: the callback never runs (unless stopped, it just
            // sits in the handle).
            None => None,
            Some(node) => match tree::add_after_func(node, callback.clone()) {
                Some(key) => Some((node.clone(), key)),
                None => {
                    callback.fire();
                    None
                }
            },
        };
        AfterFunc {
            callback,
            registration,
        }
    }

    /// Keeps the callback from running. Returns `true` if this call stopped
    /// it; `false` if it had already started (or finished) or was already
    /// stopped. After `true`, the callback is dropped without running.
    ///
    /// ```
    /// let (ctx, cancel) = ctx::Context::background().with_cancel();
    /// let after = ctx.after_func(|| {});
    /// cancel.cancel(); // the callback runs here
    /// assert!(!after.stop(), "too late: it already ran");
    /// ```
    ///
    /// Go: `stop()`.
    pub fn stop(&self) -> bool {
        if !self.callback.stop() {
            return false;
        }
        if let Some((node, key)) = &self.registration {
            tree::remove_after_func(node, *key);
        }
        true
    }
}

impl fmt::Debug for AfterFunc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.callback.state() {
            CallbackState::Pending => "pending",
            CallbackState::Started => "started",
            CallbackState::Stopped => "stopped",
        };
        f.debug_struct("AfterFunc").field("state", &state).finish()
    }
}
