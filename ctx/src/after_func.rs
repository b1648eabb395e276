//! `after_func`: run a callback once a context is done.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::context::Context;
use crate::loom::{lock, Arc, AtomicU8, Mutex, Ordering};
use crate::tree::{self, CancelNode};

const PENDING: u8 = 0;
const STARTED: u8 = 1;
const STOPPED: u8 = 2;

type Callback = Box<dyn FnOnce() + Send + 'static>;

/// The handle of a callback registered with [`Context::after_func`].
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
    shared: Arc<Shared>,
    /// Where it is registered, to unregister on `stop`.
    registration: Option<(Arc<CancelNode>, usize)>,
}

/// The part the context's node holds on to.
pub(crate) struct Shared {
    state: AtomicU8,
    callback: Mutex<Option<Callback>>,
}

impl Shared {
    /// Runs the callback unless it was stopped or already started. Must be
    /// called with no lock held: it runs user code.
    pub(crate) fn fire(&self) {
        if self
            .state
            .compare_exchange(PENDING, STARTED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            let callback = lock(&self.callback).take();
            if let Some(callback) = callback {
                // A panicking callback must not unwind through the cancel walk
                // (which may be a guard's Drop or the timer thread): the panic
                // hook has already reported it; carry on with the others.
                let _ = catch_unwind(AssertUnwindSafe(callback));
            }
        }
    }
}

impl AfterFunc {
    pub(crate) fn register(ctx: &Context, callback: Callback) -> AfterFunc {
        let shared = Arc::new(Shared {
            state: AtomicU8::new(PENDING),
            callback: Mutex::new(Some(callback)),
        });
        let registration = match ctx.signal() {
            // Never done: the callback never runs (unless stopped, it just
            // sits in the handle).
            None => None,
            Some(node) => match tree::add_after_func(node, shared.clone()) {
                Some(key) => Some((node.clone(), key)),
                None => {
                    shared.fire();
                    None
                }
            },
        };
        AfterFunc {
            shared,
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
        if self
            .shared
            .state
            .compare_exchange(PENDING, STOPPED, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        let callback = lock(&self.shared.callback).take();
        drop(callback);
        if let Some((node, key)) = &self.registration {
            tree::remove_after_func(node, *key);
        }
        true
    }
}

impl fmt::Debug for AfterFunc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.shared.state.load(Ordering::Acquire) {
            PENDING => "pending",
            STARTED => "started",
            _ => "stopped",
        };
        f.debug_struct("AfterFunc").field("state", &state).finish()
    }
}
