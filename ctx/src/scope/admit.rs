//! Admission and the queue: whether a spawn starts now, waits for a slot or
//! is refused; the limit and [`Scope::ready`]; and the release of a finished
//! task's slot, which hands it to the next queued spawn.
//!
//! Every lock site here cites the invariants of `state.rs` it relies on or
//! restores.

use std::collections::VecDeque;
use std::mem;
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use tokio::runtime::Handle;
use tokio::task::{AbortHandle, JoinHandle};

use super::handle::{HandleState, Pending, PendingSender};
use super::run::Release;
use super::state::{Phase, Shared, Starter, State};
use super::tasks::Key;
#[cfg(doc)]
use super::Scope;
use super::{GroupError, Output, TaskHandle};
use crate::unwind::contain;
use crate::Error;

/// Whether a spawn beyond the limit queues ([`Scope::spawn`]) or is refused
/// ([`Scope::try_spawn`]).
#[derive(Clone, Copy)]
pub(super) enum Admit {
    Queue,
    NowOnly,
}

impl Admit {
    fn refused<T, E>(self, err: Error) -> Option<TaskHandle<T, E>> {
        match self {
            Admit::Queue => Some(TaskHandle::new(HandleState::Refused(err))),
            Admit::NowOnly => None,
        }
    }
}

/// Queued spawns that just took a slot, each with its new key.
type Admitted<E> = Vec<(Key, Starter<E>)>;

impl<E: GroupError> Shared<E> {
    /// Admits one task: starts it now if a slot is free, queues it (for
    /// `Admit::Queue`) or refuses it otherwise. `None` only for a refused
    /// `Admit::NowOnly`.
    pub(super) fn submit<T, L>(
        self: &Arc<Self>,
        admit: Admit,
        launch: L,
    ) -> Option<TaskHandle<T, E>>
    where
        L: FnOnce(&Handle, Release<E>) -> JoinHandle<Output<T>> + Send + 'static,
        T: Send + 'static,
    {
        // Read before locking (invariant 6): the tree has its own locks, and a
        // cancel racing this check only means the task starts and sees its
        // context done.
        let group_err = self.ctx.err();
        // Invariant 5: a finished or dropped scope takes no task.
        let mut st = self.lock();
        match st.phase {
            Phase::Running => {}
            Phase::Finished => {
                drop(st);
                panic!(
                    "ctx::Scope: cannot spawn a task: its scope has already finished \
                     (spawn from the body of ctx::scope or from one of its tasks)"
                );
            }
            Phase::Dropped => {
                drop(st);
                drop(launch);
                return admit.refused(Error::Canceled);
            }
        }
        if let Some(err) = group_err {
            drop(st);
            drop(launch);
            return admit.refused(err);
        }
        if st.active < st.limit {
            // Invariants 1 and 2: take the slot and the key together; the
            // spawn itself waits for the unlock (invariant 6).
            st.active += 1;
            let key = st.tasks.insert();
            drop(st);
            let join = self.launch(key, launch);
            return Some(TaskHandle::new(HandleState::Started(join)));
        }
        match admit {
            Admit::NowOnly => {
                drop(st);
                drop(launch);
                None
            }
            Admit::Queue => {
                // Invariant 3: every slot is taken, so the spawn waits.
                let slot = Arc::new(Mutex::new(Pending::Waiting(None)));
                let mut sender = PendingSender {
                    slot: Arc::clone(&slot),
                    group: self.ctx.clone(),
                };
                st.queue
                    .push_back(Box::new(move |shared: &Arc<Shared<E>>, key: Key| {
                        let join = shared.launch(key, launch);
                        sender.started(join);
                    }));
                drop(st);
                Some(TaskHandle::new(HandleState::Queued(slot)))
            }
        }
    }

    /// Spawns a task whose slot (`active`, `key`) is already taken.
    fn launch<T, L>(self: &Arc<Self>, key: Key, launch: L) -> JoinHandle<Output<T>>
    where
        L: FnOnce(&Handle, Release<E>) -> JoinHandle<Output<T>>,
    {
        let join = launch(&self.rt, Release::new(Arc::clone(self), key));
        self.register(key, join.abort_handle());
        join
    }

    /// Files the abort handle of a task spawned under `key` (invariant 2).
    fn register(&self, key: Key, abort: AbortHandle) {
        // Invariants 2 and 5: the phase is re-checked here, since a drop of
        // the scope between the spawn and this lock drained `tasks` without us.
        let mut st = self.lock();
        if st.phase == Phase::Dropped {
            drop(st);
            abort.abort();
            return;
        }
        // A stale key means the task already finished: nothing to file.
        let stale = st.tasks.fill(key, abort);
        drop(st);
        drop(stale);
    }

    /// Sets the limit ([`Scope::set_limit`]) and starts the queued spawns
    /// that fit under it now (none under 0).
    pub(super) fn set_limit(self: &Arc<Self>, n: usize) {
        let group_done = self.ctx.is_done();
        let (start, dropped) = {
            // Invariants 1 and 3: a raised limit dequeues at once.
            let mut st = self.lock();
            st.limit = n;
            self.take_startable(&mut st, group_done)
        };
        // Invariant 6: dropped spawns and new tasks only after the unlock.
        drop(dropped);
        for (key, start) in start {
            start(self, key);
        }
        self.ready_waiters.notify_waiters();
    }

    /// Pops the queued spawns that fit under the limit now, taking their slots,
    /// or takes the whole queue to be dropped if the group is canceled.
    /// Called under the lock, which the caller releases before starting or
    /// dropping what this returns (invariant 6).
    fn take_startable(
        &self,
        st: &mut State<E>,
        group_done: bool,
    ) -> (Admitted<E>, VecDeque<Starter<E>>) {
        if group_done || st.phase != Phase::Running {
            return (Vec::new(), mem::take(&mut st.queue));
        }
        let mut start = Vec::new();
        // Invariants 1, 2 and 3: each dequeued spawn takes a slot and a key.
        while st.active < st.limit {
            let Some(starter) = st.pop_queued() else {
                break;
            };
            st.active += 1;
            start.push((st.tasks.insert(), starter));
        }
        (start, VecDeque::new())
    }

    /// Waits until a spawn would start at once ([`Scope::ready`]).
    pub(super) async fn ready(&self) -> Result<(), Error> {
        let mut done = self.ctx.done();
        loop {
            // Register before checking, so a slot freed in between still wakes us.
            let mut notified = pin!(self.ready_waiters.notified());
            notified.as_mut().enable();
            if let Some(err) = self.ctx.err() {
                return Err(err);
            }
            {
                // Invariants 1 and 5: a free slot in a running scope.
                let st = self.lock();
                if st.phase != Phase::Running {
                    return Err(Error::Canceled);
                }
                if st.active < st.limit {
                    return Ok(());
                }
            }
            tokio::select! {
                biased;
                err = &mut done => return Err(err),
                () = notified => {}
            }
        }
    }

    /// A task under `key` is over (invariant 4): frees its slot, hands it to
    /// the next queued task, and wakes whoever waits for a slot or for idle.
    pub(super) fn release(self: &Arc<Self>, key: Key, completed: bool) {
        if !completed && !self.dropped.load(Ordering::Acquire) {
            // Dropped without finishing while the scope still runs: only a
            // runtime shutting down does that. Never report it as success.
            self.fail(E::from(Error::Canceled));
        }
        let group_done = self.ctx.is_done();
        let (next, dropped, idle, slot_free, limited) = {
            // Invariants 1 to 4: the slot and the key go together; the slot
            // passes straight to the next queued spawn, or the queue is
            // emptied if the group is over; whoever sees the group idle wakes
            // the scope future.
            let mut st = self.lock();
            let abort = st.tasks.remove(key);
            st.active -= 1;
            let mut next = None;
            let mut dropped = VecDeque::new();
            if !st.queue.is_empty() {
                if group_done || st.phase != Phase::Running || !completed {
                    // Canceled (or going away): queued tasks never start.
                    dropped = mem::take(&mut st.queue);
                } else if st.active < st.limit {
                    let starter = st
                        .pop_queued()
                        .expect("ctx: internal error: the queue was checked non-empty");
                    st.active += 1;
                    next = Some((st.tasks.insert(), starter));
                }
            }
            let idle = if st.is_idle() { st.idle.take() } else { None };
            let slot_free = st.active < st.limit;
            let limited = st.limit != usize::MAX;
            drop(st);
            drop(abort);
            (next, dropped, idle, slot_free, limited)
        };
        // Invariant 6: everything that may run code, after the unlock.
        drop(dropped);
        if let Some((key, start)) = next {
            start(self, key);
        }
        if let Some(waker) = idle {
            // The scope future's waker is its executor's: contained, so a
            // panic in it cannot skip the `ready` notification below.
            contain(|| waker.wake());
        }
        if slot_free && limited {
            self.ready_waiters.notify_waiters();
        }
    }
}
