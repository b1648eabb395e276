//! What the scope future, every [`Scope`] clone and every task share: one
//! [`Shared`] behind an `Arc`, and the [`State`] under its one mutex.
//!
//! This file defines the state and its invariants; the code that changes it
//! lives in `admit.rs` (spawns, the queue, slots) and `finish.rs` (failures,
//! the end of the group), and each of their lock sites cites the invariants
//! it relies on or restores.
//!
//! # Invariants
//!
//! Each is true at every unlock of [`Shared::lock`]:
//!
//! 1. `active` counts the tasks that have started and not finished; each holds
//!    one concurrency slot, so `active` may exceed `limit` only after the limit
//!    was lowered.
//! 2. Every started task has a [`Key`] in `tasks`, whose abort handle is filled
//!    in right after the spawn (between the two, the entry is empty; the spawner
//!    re-checks the phase when it fills it in, see `Shared::register`).
//! 3. `queue` holds spawns waiting for a slot. It is non-empty only while
//!    `active >= limit`, so with `active == 0` it is empty unless the limit
//!    is 0. The group is idle (`State::is_idle`) once no task runs and none
//!    can start: `active == 0` and the queue is empty or the limit is 0.
//!    Queued spawns left under limit 0 once the body has returned and the
//!    group is idle are dropped unstarted by the scope's finish.
//! 4. A task releases its slot (`run.rs`'s `Release`) after its future or
//!    closure has been dropped, and after its error or panic has been
//!    recorded, so when the scope sees `active == 0`, all user code of every
//!    task is over and every failure is in `first`/`panic`.
//! 5. `phase` only moves forward: `Running`, then `Finished` (set under the lock
//!    in the same critical section that saw the group idle, so no task can slip
//!    in after the last one ended) or `Dropped`.
//! 6. Nothing but bookkeeping runs under the lock: no user code and no other
//!    lock of ctx. Closures and futures (queued spawns included) are dropped,
//!    wakers woken, contexts read or canceled and tasks spawned after it is
//!    released. Spawning in particular must stay outside it, because tokio
//!    drops the future of a task spawned onto a runtime that is shutting down
//!    inside `spawn` itself, which runs `Release`, which takes the lock.
//!
//! # Locks
//!
//! The only other locks of a scope are the small slot through which a queued
//! task's handle learns it started (`handle.rs`) and the first error's
//! (`first.rs`). By invariant 6 neither is ever taken while the state lock is
//! held, so there is no lock order to keep.

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;

use tokio::runtime::Handle;
use tokio::sync::Notify;

use super::first::FirstFailure;
use super::tasks::{Key, Tasks};
#[cfg(doc)]
use super::Scope;
use crate::unwind::drop_payload;
use crate::{CancelHandle, Context, Error};

/// A panic payload, as `catch_unwind` returns it.
pub(super) type Panic = Box<dyn Any + Send + 'static>;

/// A queued spawn: starts the task under the given key when called; dropping
/// it uncalled means the task never starts.
pub(super) type Starter<E> = Box<dyn FnOnce(&Arc<Shared<E>>, Key) + Send>;

/// What the scope future, every [`Scope`] clone and every task share.
///
/// Everything but `state` is set once by `scope` when the group starts;
/// the notes say who acts on it afterwards.
pub(super) struct Shared<E> {
    /// The group context, handed to every task. Canceled through `cancel` by
    /// the first failure, and by the scope future's guard when it finishes or
    /// is dropped.
    pub(super) ctx: Context,
    /// Cancels `ctx` on a failure (`finish.rs`); the scope future holds the
    /// guard itself.
    pub(super) cancel: CancelHandle,
    /// The scope's parent: a failure after it is done is dropped, and a scope
    /// whose parent is done returns the parent's error.
    pub(super) parent: Context,
    /// The runtime that polled the scope first; tasks go there, whichever
    /// thread spawns them.
    pub(super) rt: Handle,
    /// The first failure: claimed by the first error or panic, holding the
    /// error (see `first.rs`); taken by the scope's finish.
    pub(super) first: FirstFailure<E>,
    /// Set once, by the scope future dropped unfinished (`finish.rs`); read
    /// without the lock by tasks about to start and by a slot's release.
    pub(super) dropped: AtomicBool,
    /// Notified when a slot frees under a limit or the limit changes
    /// (`admit.rs`), for [`Scope::ready`].
    pub(super) ready_waiters: Notify,
    state: Mutex<State<E>>,
}

/// The part of [`Shared`] under its lock; see the invariants above.
pub(super) struct State<E> {
    /// `Running` from the start; `Finished` set by `poll_idle`, `Dropped` by
    /// the scope future's drop (invariant 5).
    pub(super) phase: Phase,
    /// Started tasks that have not finished (invariant 1): taken by an
    /// admitted spawn or a dequeued one, given back by its release.
    pub(super) active: usize,
    /// Set by [`Scope::set_limit`]; `usize::MAX` (no limit) until then, 0
    /// when no new task may start.
    pub(super) limit: usize,
    /// One entry per started task (invariant 2): inserted with its slot,
    /// filled by `register`, removed by its release, drained (handles only)
    /// by the scope future's drop.
    pub(super) tasks: Tasks,
    /// Spawns waiting for a slot (invariant 3): pushed by a queueing spawn,
    /// popped (by `pop_queued`, which gives back room) when a slot frees;
    /// emptied, to be dropped unlocked, once the group is canceled or the
    /// scope dropped.
    pub(super) queue: VecDeque<Starter<E>>,
    /// The scope future, waiting for the group to be idle: set by
    /// `poll_idle`, taken and woken by the release that makes the group idle.
    pub(super) idle: Option<Waker>,
    /// The first panic (the first error is in `Shared::first`): set by the
    /// first `panicked`, taken by the scope's finish, which resumes it, or
    /// dropped with the state if the scope future was dropped.
    pub(super) panic: Option<Panic>,
}

/// Whether storage that grows with a burst (the queue, the task table)
/// should give back room: less than a quarter of it is in use, and it is
/// larger than the few entries always worth keeping. Otherwise a scope that
/// lives long would hold a burst's peak until it ends.
pub(super) fn mostly_empty(len: usize, capacity: usize) -> bool {
    /// Room for this many entries is kept whatever the use: small, and
    /// spares the churn of shrinking and growing around a handful of tasks.
    const KEPT: usize = 32;
    capacity > KEPT && len < capacity / 4
}

impl<E> Drop for State<E> {
    fn drop(&mut self) {
        // A panic recorded but never resumed, because the scope future was
        // dropped unfinished: the scope contains it, and its payload's drop
        // (user code) may panic again.
        if let Some(panic) = self.panic.take() {
            drop_payload(panic);
        }
    }
}

impl<E> State<E> {
    /// The next queued spawn, giving back the queue's room once it is mostly
    /// empty.
    pub(super) fn pop_queued(&mut self) -> Option<Starter<E>> {
        let next = self.queue.pop_front();
        if mostly_empty(self.queue.len(), self.queue.capacity()) {
            // Half stays free: see `Tasks::remove` for why that amortizes.
            self.queue.shrink_to(self.queue.len() * 2);
        }
        next
    }

    /// No task runs and none can start (invariant 3): the scope may finish
    /// once its body has returned.
    pub(super) fn is_idle(&self) -> bool {
        self.active == 0 && (self.queue.is_empty() || self.limit == 0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Running,
    Finished,
    Dropped,
}

/// What `Debug for Scope` shows of the state, copied out of the lock so that
/// no formatting runs under it (invariant 6).
pub(super) struct Snapshot {
    pub(super) phase: Phase,
    pub(super) active: usize,
    pub(super) queued: usize,
    pub(super) limit: Limit,
}

/// Prints `usize::MAX` as "none".
pub(super) struct Limit(usize);

impl fmt::Debug for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == usize::MAX {
            f.write_str("none")
        } else {
            fmt::Debug::fmt(&self.0, f)
        }
    }
}

impl<E> Shared<E> {
    pub(super) fn new(ctx: Context, cancel: CancelHandle, parent: Context, rt: Handle) -> Self {
        Shared {
            ctx,
            cancel,
            parent,
            rt,
            first: FirstFailure::new(),
            dropped: AtomicBool::new(false),
            ready_waiters: Notify::new(),
            state: Mutex::new(State {
                phase: Phase::Running,
                active: 0,
                limit: usize::MAX,
                tasks: Tasks::default(),
                queue: VecDeque::new(),
                idle: None,
                panic: None,
            }),
        }
    }

    /// Locks the state. Callers cite the invariants they rely on.
    pub(super) fn lock(&self) -> MutexGuard<'_, State<E>> {
        // No user code runs under this lock (invariant 6), so poison can only
        // come from a bug here; the state is consistent at every unlock point
        // regardless.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The state as `Debug for Scope` shows it.
    pub(super) fn snapshot(&self) -> Snapshot {
        // Invariant 6: copy the numbers out, format after the unlock.
        let st = self.lock();
        Snapshot {
            phase: st.phase,
            active: st.active,
            queued: st.queue.len(),
            limit: Limit(st.limit),
        }
    }

    /// The error a task that produced no value reports through its handle.
    pub(super) fn group_err(&self) -> Error {
        self.ctx.err().unwrap_or(Error::Canceled)
    }
}
