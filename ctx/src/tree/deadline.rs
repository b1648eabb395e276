//! Deadlines: the derivation rules, and the one process-wide timer whose
//! entries cancel nodes.
//!
//! The timer (`timer.rs`) knows nothing of contexts; this file instantiates
//! it with [`Deadline`], an entry that cancels its node with
//! `DeadlineExceeded` when it expires (Go: `time.AfterFunc(d, func() {
//! c.cancel(true, DeadlineExceeded, cause) })`).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::{cancel, cancel_with, Callbacks, CancelNode, Repr, ERR_MASK, FROM_DEADLINE};
use crate::error::{Cause, Error};
use crate::loom::{Arc, Ordering};
use crate::pool;
use crate::timer::{Expire, Timer, TimerKey};

/// A timer entry: the node to cancel and the cause to record.
struct Deadline {
    node: Arc<CancelNode>,
    cause: Option<Cause>,
}

impl Expire for Deadline {
    /// Runs on the timer thread: the cancel walk happens here, but the
    /// `after_func` callbacks it fires go to the callback pool, and so does
    /// the drop of a cause that another cancel made unneeded (maybe the
    /// last handle to a user value), so that no user code can hold back
    /// the deadlines behind this one.
    fn expire(self) {
        let Deadline { node, cause } = self;
        if let Err(Some(cause)) =
            cancel_with(&node, Error::DeadlineExceeded, cause, Callbacks::Pool)
        {
            pool::execute(move || drop(cause));
        }
    }
}

/// The process-wide deadline timer; its thread is `ctx-timer`.
fn timer() -> &'static Timer<Deadline> {
    static TIMER: OnceLock<Timer<Deadline>> = OnceLock::new();
    TIMER.get_or_init(|| Timer::new("ctx-timer"))
}

/// A cancelable child of `parent` that ends with `DeadlineExceeded` at
/// `deadline` (recording `cause`), armed on the timer.
///
/// A deadline later than the parent's arms nothing: the parent's fires first
/// and reaches the child anyway, and `deadline()` reports the parent's (Go
/// does the same). A deadline already passed gives a child that is done at
/// once.
///
/// Go: `WithDeadlineCause`.
pub(crate) fn with_deadline(
    parent: &Repr,
    deadline: Instant,
    cause: Option<Cause>,
) -> Arc<CancelNode> {
    let inherited = parent
        .signal()
        .and_then(|signal| signal.deadline())
        .is_some_and(|earlier| earlier < deadline);
    if inherited {
        return CancelNode::new(parent, None, FROM_DEADLINE);
    }
    let node = CancelNode::new(parent, Some(deadline), FROM_DEADLINE);
    if node.err().is_none() {
        if deadline <= timer().now() {
            cancel(&node, Error::DeadlineExceeded, cause);
        } else {
            arm(&node, deadline, cause);
        }
    }
    node
}

/// `with_deadline(now + timeout)`; a timeout too large for an `Instant`
/// means no deadline of its own.
pub(crate) fn with_timeout(
    parent: &Repr,
    timeout: Duration,
    cause: Option<Cause>,
) -> Arc<CancelNode> {
    match timer().now().checked_add(timeout) {
        Some(deadline) => with_deadline(parent, deadline, cause),
        None => CancelNode::new(parent, None, FROM_DEADLINE),
    }
}

/// Inserts the timer entry and hands its key to the node, which disarms it
/// when canceled first.
fn arm(node: &Arc<CancelNode>, deadline: Instant, cause: Option<Cause>) {
    let key = timer().insert(
        deadline,
        Deadline {
            node: node.clone(),
            cause,
        },
    );
    // Invariant 1: a node that is not done under its lock still owns its
    // timer slot; a done one gave it up, so the entry must go.
    let mut inner = node.lock();
    if node.state.load(Ordering::Relaxed) & ERR_MASK == 0 {
        inner.extra().timer = Some(key);
        return;
    }
    drop(inner);
    // Canceled in between (maybe by the timer itself, if the entry expired).
    disarm(key);
}

/// Removes an entry; its node and cause (maybe the last reference to a user
/// value) drop here, with no lock held.
pub(crate) fn disarm(key: TimerKey) {
    drop(timer().remove(key));
}
