//! `after_func` callbacks: the run-once cell the node holds, and its
//! registration.

use super::{release_if_empty, CancelNode, ERR_MASK};
use crate::loom::{lock, Arc, AtomicU8, Mutex, Ordering};
use crate::unwind;

const PENDING: u8 = 0;
const STARTED: u8 = 1;
const STOPPED: u8 = 2;

type Boxed = Box<dyn FnOnce() + Send + 'static>;

/// A callback that runs at most once: fired by the cancel walk, or stopped
/// by its `AfterFunc` handle, whichever comes first.
pub(crate) struct Callback {
    /// `PENDING` until the first of `fire` (to `STARTED`) or `stop` (to
    /// `STOPPED`) wins the compare-exchange; never changes after.
    state: AtomicU8,
    /// Taken by whichever of `fire` or `stop` moved `state` off `PENDING`.
    f: Mutex<Option<Boxed>>,
}

/// What a callback's state reads as, for `Debug`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CallbackState {
    Pending,
    Started,
    Stopped,
}

impl Callback {
    pub(crate) fn new(f: Boxed) -> Callback {
        Callback {
            state: AtomicU8::new(PENDING),
            f: Mutex::new(Some(f)),
        }
    }

    /// Runs the callback unless it was stopped or already started. Must be
    /// called with no lock held: it runs user code (invariant 4).
    pub(crate) fn fire(&self) {
        if self
            .state
            .compare_exchange(PENDING, STARTED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            // Only the winner of the exchange above takes `f`: the lock is
            // never contended, it only makes the cell `Sync`.
            let f = lock(&self.f).take();
            if let Some(f) = f {
                // A panicking callback must not unwind through the cancel walk
                // (which may be a guard's Drop or the timer thread): the panic
                // hook has already reported it; carry on with the others.
                unwind::contain(f);
            }
        }
    }

    /// Keeps the callback from running; true if this call did (the callback
    /// is dropped here, unrun).
    pub(crate) fn stop(&self) -> bool {
        if self
            .state
            .compare_exchange(PENDING, STOPPED, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        // As in `fire`: only the winner of the exchange takes `f`, and it
        // drops (user code) after the lock is released.
        let f = lock(&self.f).take();
        drop(f);
        true
    }

    pub(crate) fn state(&self) -> CallbackState {
        match self.state.load(Ordering::Acquire) {
            PENDING => CallbackState::Pending,
            STARTED => CallbackState::Started,
            _ => CallbackState::Stopped,
        }
    }
}

/// Registers an after-func; `None` if the node is already done (the caller
/// runs it at once).
pub(crate) fn add_after_func(node: &CancelNode, after: Arc<Callback>) -> Option<usize> {
    // Invariant 1: registering and the transition to done are ordered by the
    // lock, so a callback is either taken by the cancel walk or refused here.
    let mut inner = node.lock();
    if node.state.load(Ordering::Relaxed) & ERR_MASK != 0 {
        return None;
    }
    Some(inner.extra().after_funcs.insert(after))
}

/// Forgets an after-func registered by [`add_after_func`].
pub(crate) fn remove_after_func(node: &CancelNode, key: usize) {
    // Invariant 1: a done node gave its callbacks up; only a live one has ours.
    let mut inner = node.lock();
    if node.state.load(Ordering::Relaxed) & ERR_MASK == 0 {
        let after = inner.extra.as_deref_mut().and_then(|extra| {
            let after = extra.after_funcs.remove(key);
            if extra.after_funcs.is_empty() {
                extra.after_funcs.release();
            }
            after
        });
        release_if_empty(&mut inner.extra);
        drop(inner);
        drop(after);
    }
}
