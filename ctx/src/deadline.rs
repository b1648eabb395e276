//! Deadlines: derivation rules; the firing lives in `timer.rs`.

use std::time::{Duration, Instant};

use crate::cancel::CancelGuard;
use crate::context::Context;
use crate::error::{Cause, Error};
use crate::tree::{self, CancelNode, FROM_DEADLINE};

pub(crate) fn with_timeout(
    parent: &Context,
    timeout: Duration,
    cause: Option<Cause>,
) -> (Context, CancelGuard) {
    match Instant::now().checked_add(timeout) {
        Some(deadline) => with_deadline(parent, deadline, cause),
        // Beyond what an Instant can hold: no deadline of its own.
        None => {
            let node = CancelNode::new(parent, None, FROM_DEADLINE);
            (Context::from_cancel(node.clone()), CancelGuard::new(node))
        }
    }
}

/// Go: `WithDeadlineCause`.
pub(crate) fn with_deadline(
    parent: &Context,
    deadline: Instant,
    cause: Option<Cause>,
) -> (Context, CancelGuard) {
    if parent.deadline().is_some_and(|earlier| earlier < deadline) {
        // The parent's deadline fires first and reaches us anyway: no timer,
        // and `deadline()` reports the parent's.
        let node = CancelNode::new(parent, None, FROM_DEADLINE);
        return (Context::from_cancel(node.clone()), CancelGuard::new(node));
    }
    let node = CancelNode::new(parent, Some(deadline), FROM_DEADLINE);
    let guard = CancelGuard::new(node.clone());
    if node.err().is_none() {
        if deadline <= Instant::now() {
            tree::cancel(&node, Error::DeadlineExceeded, cause);
        } else {
            let key = crate::timer::insert(node.clone(), deadline, cause);
            if !tree::set_timer(&node, key) {
                // Canceled in between (maybe by the timer itself).
                crate::timer::remove(key);
            }
        }
    }
    (Context::from_cancel(node), guard)
}
