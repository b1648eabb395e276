//! Deadlines: the derivation rules, and the one process-wide timer whose
//! entries cancel nodes.
//!
//! The timer (`timer.rs`) knows nothing of contexts; this file instantiates
//! it with [`Deadline`], an entry that cancels its node with
//! `DeadlineExceeded` when it expires (Go: `time.AfterFunc(d, func() {
//! c.cancel(true, DeadlineExceeded, cause) })`).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

#[cfg(feature = "test-util")]
use super::decode;
use super::Extra;
use super::{cancel, cancel_with, Callbacks, CancelNode, Repr, ERR_MASK, FROM_DEADLINE};
use crate::clock;
use crate::error::{Cause, Error};
use crate::loom::{Arc, Ordering};
use crate::pool;
use crate::timer::{Expire, Timer, TimerKey};

/// A timer entry: the node to cancel and the cause to record.
pub(super) struct Deadline {
    node: Arc<CancelNode>,
    cause: Option<Cause>,
}

impl Expire for Deadline {
    /// Runs on the timer thread (or, on tokio's test clock, in a task of the
    /// test's runtime): the cancel walk happens here, but the `after_func`
    /// callbacks it fires go to the callback pool, and so does the drop of
    /// a cause that another cancel made unneeded (maybe the last handle to a
    /// user value), so that no user code can hold back the deadlines behind
    /// this one.
    fn expire(self) {
        let Deadline { node, cause } = self;
        if let Err(Some(cause)) =
            cancel_with(&node, Error::DeadlineExceeded, cause, Callbacks::Pool)
        {
            pool::execute(move || drop(cause));
        }
        // A guard dropped while this entry expired leaves the entry the last
        // owner: the node's parents and values (user code) drop on the pool.
        #[cfg(not(loom))]
        if let Some(node) = Arc::into_inner(node) {
            pool::execute(move || drop(node));
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
/// does the same), unless the two are on different clocks (`same_clock`,
/// feature `test-util`). A deadline already passed gives a child that is
/// done at once.
///
/// Go: `WithDeadlineCause`.
#[cfg_attr(feature = "debug", track_caller)]
pub(crate) fn with_deadline(
    parent: &Repr,
    deadline: Instant,
    cause: Option<Cause>,
) -> Arc<CancelNode> {
    let inherited = parent
        .signal()
        .and_then(|signal| signal.deadline_holder())
        .is_some_and(|holder| {
            let inner = holder.lock();
            inner.extra.as_deref().is_some_and(|extra| {
                extra.deadline.is_some_and(|earlier| earlier < deadline) && same_clock(extra)
            })
        });
    if inherited {
        return CancelNode::new(parent, None, FROM_DEADLINE);
    }
    #[cfg(feature = "test-util")]
    let flags = match clock::tokio_runtime() {
        Some(_) => FROM_DEADLINE | super::TOKIO_CLOCK,
        None => FROM_DEADLINE,
    };
    #[cfg(not(feature = "test-util"))]
    let flags = FROM_DEADLINE;
    let node = CancelNode::new(parent, Some(deadline), flags);
    if node.err().is_none() {
        if deadline <= clock::now() {
            cancel(&node, Error::DeadlineExceeded, cause);
        } else {
            arm(&node, deadline, cause);
        }
    }
    node
}

/// Whether the deadline in `extra` is measured on tokio's clock, known
/// while it is armed: `None` once it fired or was disarmed (the node is
/// done), or when it was never armed (it had passed at creation).
fn armed_on_tokio(extra: &Extra) -> Option<bool> {
    match extra.timer {
        Some(Armed::Timer(_)) => Some(false),
        #[cfg(feature = "test-util")]
        Some(Armed::Tokio(..)) => Some(true),
        None => None,
    }
}

/// Whether the deadline in `extra` is on the clock of this thread's new
/// deadlines, or is over (its node is done, so a child is born done and
/// inherits it, as Go's does). Always, without `test-util`. With it, a
/// deadline on the real clock and one on tokio's paused clock cannot be
/// compared (tokio's runs ahead by whatever the test advanced it), so a
/// child on the other clock keeps and arms its own deadline, and reports
/// it: each fires on its own clock, the first to fire ends the child.
fn same_clock(extra: &Extra) -> bool {
    #[cfg(feature = "test-util")]
    let here = clock::tokio_runtime().is_some();
    #[cfg(not(feature = "test-util"))]
    let here = false;
    armed_on_tokio(extra).is_none_or(|tokio| tokio == here)
}

impl CancelNode {
    /// Time left until [`deadline`](Self::deadline), measured on that
    /// deadline's own clock: the real one for a deadline on the
    /// process-wide timer, whatever thread asks (a test's thread reads
    /// tokio's clock otherwise).
    pub(crate) fn remaining(&self) -> Option<Duration> {
        let holder = self.deadline_holder()?;
        let inner = holder.lock();
        let extra = inner.extra.as_deref()?;
        // A deadline on the process-wide timer is the real clock's; one
        // on tokio's, or one over, is read on this thread's clock.
        let now = match armed_on_tokio(extra) {
            Some(false) => Instant::now(),
            _ => clock::now(),
        };
        Some(extra.deadline?.saturating_duration_since(now))
    }

    /// Whether the deadline has passed, fired yet or not: a failure seen at
    /// that point is the deadline's (Go's clients report `ctx.Err()` over
    /// the transport's error once the context is done).
    #[cfg(feature = "tower")]
    pub(crate) fn deadline_passed(&self) -> bool {
        self.remaining() == Some(Duration::ZERO)
    }
}

/// `with_deadline(now + timeout)`; a timeout too large for an `Instant`
/// means no deadline of its own.
#[cfg_attr(feature = "debug", track_caller)]
pub(crate) fn with_timeout(
    parent: &Repr,
    timeout: Duration,
    cause: Option<Cause>,
) -> Arc<CancelNode> {
    match clock::now().checked_add(timeout) {
        Some(deadline) => with_deadline(parent, deadline, cause),
        None => CancelNode::new(parent, None, FROM_DEADLINE),
    }
}

/// A node's armed deadline, kept in the node so a cancel can disarm it.
pub(super) enum Armed {
    /// An entry of the process-wide timer.
    Timer(TimerKey),
    /// A task on a test runtime whose clock is tokio's (see `clock.rs`),
    /// and the entry it fires, which `err()` may fire first (tokio's
    /// `advance` moves the clock without waiting for the task to run).
    #[cfg(feature = "test-util")]
    Tokio(clock::TokioTimer, Pending),
}

/// A deadline on tokio's clock, taken by whichever fires it first: its task
/// or a reader that sees the clock past it. If the task is dropped with its
/// runtime (a context kept past its test), the entry moves to the
/// process-wide timer, at the same instant: a deadline is never lost.
#[cfg(feature = "test-util")]
type Pending = std::sync::Arc<std::sync::Mutex<Slot>>;

#[cfg(feature = "test-util")]
pub(super) enum Slot {
    /// On tokio's clock, not fired yet.
    Waiting(Deadline),
    /// Moved to the process-wide timer when the runtime went away.
    OnTimer(TimerKey),
    /// Fired, or disarmed.
    Gone,
}

#[cfg(feature = "test-util")]
fn lock_slot(pending: &Pending) -> std::sync::MutexGuard<'_, Slot> {
    pending.lock().unwrap_or_else(|e| e.into_inner())
}

/// The entry of a slot still waiting (which is then `Gone`).
#[cfg(feature = "test-util")]
fn take_waiting(slot: &mut Slot) -> Option<Deadline> {
    match std::mem::replace(slot, Slot::Gone) {
        Slot::Waiting(entry) => Some(entry),
        other => {
            *slot = other;
            None
        }
    }
}

/// Tokio's clock reached the deadline: fires it, unless already fired.
#[cfg(feature = "test-util")]
fn fire_pending(pending: &Pending) {
    let entry = take_waiting(&mut lock_slot(pending));
    if let Some(entry) = entry {
        entry.expire();
    }
}

/// The task of a deadline on tokio's clock was dropped before it fired: if
/// the deadline is still pending (the runtime shut down, rather than
/// `disarm` aborting it), the process-wide timer takes it over. (The timer
/// never expires an entry inside `insert`, so holding the slot's lock
/// there cannot deadlock with an expiry that disarms.)
#[cfg(feature = "test-util")]
fn orphaned(pending: &Pending, deadline: Instant) {
    let mut slot = lock_slot(pending);
    if let Some(entry) = take_waiting(&mut slot) {
        *slot = Slot::OnTimer(timer().insert(deadline, entry));
    }
}

/// `err()` of a node under a deadline on tokio's clock: fires that deadline
/// first if tokio's clock (as this thread sees it) has passed it.
#[cfg(feature = "test-util")]
pub(super) fn check_tokio_clock(node: &CancelNode) -> Option<Error> {
    if clock::tokio_runtime().is_some() {
        let now = clock::now();
        let mut current = node;
        loop {
            let state = current.state.load(Ordering::Acquire);
            if state & ERR_MASK != 0 || state & super::TOKIO_CLOCK == 0 {
                break;
            }
            if state & super::HAS_DEADLINE != 0 {
                // The nearest own deadline on tokio's clock is the earliest
                // on the path (`CancelNode::deadline`): if it has not
                // passed, none has. One on the real clock (`same_clock`)
                // is the timer thread's: look on above it.
                // Invariant 1: the armed entry is read under the lock.
                let on_tokio = {
                    let inner = current.lock();
                    match inner.extra.as_deref() {
                        Some(Extra {
                            deadline: Some(at),
                            timer: Some(Armed::Tokio(_, pending)),
                            ..
                        }) => Some((*at <= now, pending.clone())),
                        _ => None,
                    }
                };
                if let Some((due, pending)) = on_tokio {
                    if due {
                        fire_pending(&pending);
                    }
                    break;
                }
            }
            match current.parent.signal() {
                Some(parent) => current = parent,
                None => break,
            }
        }
    }
    decode(node.state.load(Ordering::Acquire))
}

/// Arms the deadline, on the process-wide timer or on tokio's test clock,
/// and hands the node what disarms it when canceled first.
fn arm(node: &Arc<CancelNode>, deadline: Instant, cause: Option<Cause>) {
    let entry = Deadline {
        node: node.clone(),
        cause,
    };
    #[cfg(feature = "test-util")]
    let armed = match clock::tokio_runtime() {
        Some(runtime) => {
            let pending: Pending = std::sync::Arc::new(std::sync::Mutex::new(Slot::Waiting(entry)));
            let fires = pending.clone();
            let task = clock::spawn_at(&runtime, deadline, move |fired| match fired {
                clock::Fired::Due => fire_pending(&fires),
                clock::Fired::Dropped => orphaned(&fires, deadline),
            });
            Armed::Tokio(task, pending)
        }
        None => Armed::Timer(timer().insert(deadline, entry)),
    };
    #[cfg(not(feature = "test-util"))]
    let armed = Armed::Timer(timer().insert(deadline, entry));
    // Invariant 1: a node that is not done under its lock still owns its
    // timer slot; a done one gave it up, so the entry must go.
    let mut inner = node.lock();
    if node.state.load(Ordering::Relaxed) & ERR_MASK == 0 {
        inner.extra().timer = Some(armed);
        return;
    }
    drop(inner);
    // Canceled in between (maybe by the timer itself, if the entry expired).
    disarm(armed);
}

/// Disarms a deadline; a timer entry's node and cause (maybe the last
/// reference to a user value) drop here, with no lock held.
pub(crate) fn disarm(armed: Armed) {
    match armed {
        Armed::Timer(key) => drop(timer().remove(key)),
        #[cfg(feature = "test-util")]
        Armed::Tokio(task, pending) => {
            // The entry first (it holds the node: taking it breaks the
            // cycle), so the aborted task finds nothing to move to the timer.
            let slot = std::mem::replace(&mut *lock_slot(&pending), Slot::Gone);
            match slot {
                Slot::OnTimer(key) => drop(timer().remove(key)),
                Slot::Waiting(entry) => drop(entry),
                Slot::Gone => {}
            }
            task.abort();
        }
    }
}
