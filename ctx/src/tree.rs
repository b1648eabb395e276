//! The private context tree: nodes, registration, the cancel walk, unlinking.
//!
//! # Layering
//!
//! The tree stands on the timer (`timer.rs`, which knows nothing of
//! contexts), the slab and the loom shim, and knows nothing of the public
//! handles above it: `Context` wraps a [`Repr`], `CancelGuard` and
//! `CancelHandle` hold a cancel node and call [`cancel`], `Done` calls
//! [`poll_done`], `AfterFunc` holds a [`Callback`]. This module and its
//! children (`wait.rs`: waiters; `shards.rs`: waiters of contended nodes;
//! `callbacks.rs`: `after_func` callbacks; `deadline.rs`: the timer's
//! entries; `values.rs`: value lookups) are the only code that takes the
//! node locks.
//!
//! # Nodes
//!
//! A [`Repr`] is one of the two roots or one of three node kinds, each
//! pointing at its parent (for values and the `Debug` chain): [`CancelNode`]
//! (made by `with_cancel`, `with_deadline`, `with_timeout`), [`ValueNode`]
//! and [`WithoutCancelNode`]. Only cancel nodes have state; a value node
//! caches the nearest cancel node above it (its *signal*). A cancel node
//! lists the cancel nodes whose signal parent it is (its `children`), so that
//! cancellation can reach them.
//!
//! # Memory
//!
//! A cancel node is 64 bytes including the `Arc` header: parent, state word,
//! slot index, and a lock around its first child (inline, so a chain of
//! contexts needs nothing more) and an optional [`Extra`]. Everything else a
//! node may never need (more children, waiters, callbacks, a cause, a timer,
//! a deadline) lives in `Extra`, allocated on first use and freed when it
//! empties again, so a leaf that nobody waits on costs one allocation.
//! Lists keep a few slots (8 children, 8 waiters) once emptied, so a parent
//! whose children or waiters come and go a few at a time does not allocate
//! on every one; a parent that had a million holds no more than that.
//!
//! # State
//!
//! A cancel node's `state` word (16 bits, in what was padding) holds the
//! error bits (`CANCELED`, `DEADLINE`), `SETTLED`, `PARKED` (a canceler
//! waits for `SETTLED`: `settle.rs`), `BORN_DONE` (set with the error bits
//! of a child of a done parent, whose cause is the parent's), `SHARDED`
//! (its waiters are in the shards: `shards.rs`), and constant flags set at
//! creation (`HAS_DEADLINE`, `FROM_DEADLINE`, and `TOKIO_CLOCK` under the
//! `test-util` feature). `err()` is one `Acquire` load of that word, with
//! no lock.
//!
//! # Invariants
//!
//! 1. The error bits go from zero to non-zero once, only while holding the
//!    node's lock, in the same critical section that records the cause and
//!    takes children, waiters, callbacks and the timer out of the node
//!    (waiters in the shards, which registrations reach without the node's
//!    lock, are drained right after the bits: `shards.rs` has their
//!    protocol).
//!    Hence: under the lock, a node that is not done still owns all four, and
//!    a node that is done has given them up for good.
//! 2. A node is registered in its signal parent's `children` iff, under the
//!    parent's lock, the parent is not done and the node has not unlinked
//!    itself. While registered, `children[index] == node`; `index` is read and
//!    written only under the parent's lock.
//! 3. `SETTLED` is set on a done node only after every node in its subtree is
//!    done. A `cancel` that finds its node already done waits (parked, see
//!    `settle.rs`) for `SETTLED` before it returns, so *every* return from
//!    `cancel` leaves the whole subtree done, as Go's does (Go holds the lock
//!    during its recursion).
//! 4. No user code runs under a node lock: wakers, `after_func` callbacks and
//!    drops of user values happen after the lock is released.
//!
//! # Lock order
//!
//! There is none to get wrong: no code path holds two node locks at once.
//! Registration locks the parent only (the child is not yet shared);
//! the cancel walk locks one node at a time; unlinking locks the parent after
//! the child's lock is released. The timer's locks and the settle buckets'
//! are never held together with a node lock either. The waiter shards'
//! locks (`shards.rs`) are taken under a node lock by the cancel's drain
//! only, and no code takes a node lock under a shard lock.
//!
//! # Why waiting for `SETTLED` cannot deadlock
//!
//! A thread owns the nodes it moved to done. It waits only for a node that is
//! its cancel target or a child of a node it owns, owned by another thread.
//! That other thread reached the node through its own walk, which cannot pass
//! through a node owned by the first thread; so waits point strictly down the
//! tree and form no cycle. Nothing waits while holding a lock, and callbacks
//! and wakers (which could cancel anything) run only after settling.

use std::task::Waker;
use std::time::Instant;

use crate::error::{Cause, Error};
use crate::loom::{lock, Arc, AtomicU16, AtomicU32, Mutex, MutexGuard, Ordering};
use crate::pool;
use crate::slab::Slab;
use crate::unwind;
use few::Few;
use smallvec::SmallVec;

mod callbacks;
mod deadline;
mod few;
mod hot;
mod settle;
mod shards;
mod value_node;
mod values;
mod wait;

pub(crate) use callbacks::{add_after_func, remove_after_func, Callback, CallbackState};
pub(crate) use deadline::{with_deadline, with_timeout};
pub(crate) use value_node::{ValueNode, ValueRef};
pub(crate) use wait::{poll_done, remove_waiter};

/// What a `Context` points at: a root, or a node of the tree.
///
/// Two words: a tag and one `Arc`. Cloning it clones the `Arc` (nothing for
/// the roots).
#[derive(Clone, Default)]
pub(crate) enum Repr {
    #[default]
    Background,
    Todo,
    Cancel(Arc<CancelNode>),
    Value(ValueRef),
    WithoutCancel(Arc<WithoutCancelNode>),
}

impl Repr {
    /// The nearest cancel node at or above this one: where its done state
    /// lives. `None` for contexts that can never be done.
    #[inline]
    pub(crate) fn signal(&self) -> Option<&Arc<CancelNode>> {
        match self {
            Repr::Cancel(node) => Some(node),
            Repr::Value(node) => node.signal.as_ref(),
            Repr::Background | Repr::Todo | Repr::WithoutCancel(_) => None,
        }
    }

    /// The node this one was derived from; `None` for the roots.
    pub(crate) fn parent(&self) -> Option<&Repr> {
        match self {
            Repr::Cancel(node) => Some(&node.parent),
            Repr::Value(node) => Some(&node.parent),
            Repr::WithoutCancel(node) => Some(&node.parent),
            Repr::Background | Repr::Todo => None,
        }
    }

    /// What makes this handle the same context as another: the root, or
    /// the node's address (`Eq` and `Hash` of `Context` use it).
    pub(crate) fn identity(&self) -> (u8, usize) {
        match self {
            Repr::Background => (0, 0),
            Repr::Todo => (1, 0),
            Repr::Cancel(node) => (2, &**node as *const CancelNode as usize),
            Repr::Value(node) => (3, &**node as *const ValueNode as usize),
            Repr::WithoutCancel(node) => (4, &**node as *const WithoutCancelNode as usize),
        }
    }

    /// A child that keeps the values only.
    pub(crate) fn without_cancel(&self) -> Repr {
        Repr::WithoutCancel(Arc::new(WithoutCancelNode {
            parent: self.clone(),
        }))
    }
}

const CANCELED: u16 = 0b0000_0001;
const DEADLINE: u16 = 0b0000_0010;
const ERR_MASK: u16 = CANCELED | DEADLINE;
const SETTLED: u16 = 0b0000_0100;
/// Set by a canceler that parks until `SETTLED` (see `settle.rs`).
const PARKED: u16 = 0b0010_0000;
/// Set with the error bits of a child made under a parent that was done
/// already: it records no cause of its own and reports its parent's.
const BORN_DONE: u16 = 0b1000_0000;
/// Constant (feature `test-util`): this node or one above it has a deadline
/// on tokio's paused clock, which no thread watches; `err()` checks it.
#[cfg(feature = "test-util")]
const TOKIO_CLOCK: u16 = 0b0100_0000;
/// Constant: this node's `Extra` holds a deadline (its own, earlier than any
/// above it).
const HAS_DEADLINE: u16 = 0b0000_1000;
/// Constant: made by `with_deadline`/`with_timeout` (for `Debug`).
pub(crate) const FROM_DEADLINE: u16 = 0b0001_0000;
/// Set once, by a `done()` poll that found the node's lock taken: its
/// waiters go to the process-wide shards from then on (`shards.rs`).
const SHARDED: u16 = 0b1_0000_0000;

fn err_bits(err: Error) -> u16 {
    match err {
        Error::Canceled => CANCELED,
        Error::DeadlineExceeded => DEADLINE,
    }
}

fn decode(state: u16) -> Option<Error> {
    match state & ERR_MASK {
        0 => None,
        CANCELED => Some(Error::Canceled),
        _ => Some(Error::DeadlineExceeded),
    }
}

/// A context that can be done. Go: `cancelCtx` (and `timerCtx`).
pub(crate) struct CancelNode {
    /// The node this one was derived from. Set at creation, never changed;
    /// released iteratively when the node drops (`drop_chain`).
    pub(crate) parent: Repr,
    /// Error bits: set once, by the first [`cancel`] under the lock
    /// (invariant 1), or at birth for a child of a parent done already
    /// (`CancelNode::new`, [`propagate_cancel`]). `SETTLED`: set by
    /// the thread that made the node done, once its subtree is done
    /// (invariant 3). `HAS_DEADLINE`, `FROM_DEADLINE`: set at creation.
    state: AtomicU16,
    /// Our slot in the signal parent's `children`: written under the
    /// parent's lock by [`propagate_cancel`] and by the parent's
    /// `swap_remove_child` when we move into a freed slot (invariant 2).
    index: AtomicU32,
    inner: Mutex<Inner>,
    /// This node's census entry (feature `debug`), removed when it drops.
    #[cfg(feature = "debug")]
    census: crate::debug::registry::Registration,
}

/// What a cancel node's lock guards.
#[derive(Default)]
struct Inner {
    /// The child at position 0 of the child list; `None` only when the list
    /// is empty. Set by `push_child` (a child registering), cleared by
    /// `swap_remove_child` (a child unlinking) and by `take_children` (the
    /// cancel walk).
    first: Option<Arc<CancelNode>>,
    /// `None` until something needs storing (see [`Extra`]); made by
    /// `Inner::extra`, freed by `release_if_empty` after every removal.
    extra: Option<Box<Extra>>,
}

/// What only some cancel nodes need; allocated on first use, freed when empty.
#[derive(Default)]
struct Extra {
    /// Positions 1.. of the child list (position 0 is `Inner::first`); same
    /// writers as `first`.
    children: Vec<Arc<CancelNode>>,
    /// Wakers of pending `done()` futures: added and replaced by
    /// [`poll_done`], removed by [`remove_waiter`] (the future's drop), taken
    /// by the cancel walk. A few slots stay while the node is live (see
    /// `slab.rs`).
    waiters: Slab<Waker>,
    /// Added by [`add_after_func`], removed by [`remove_after_func`]
    /// (`AfterFunc::stop`), taken by the cancel walk.
    after_funcs: Slab<Arc<Callback>>,
    /// The recorded cause when it is not simply the error itself: written
    /// once, by the transition to done (invariant 1), never cleared.
    cause: Option<Cause>,
    /// The armed timer entry: set by `deadline::arm` after creation, taken by
    /// the cancel walk (which disarms it).
    timer: Option<deadline::Armed>,
    /// Set once at creation on `HAS_DEADLINE` nodes, never cleared.
    deadline: Option<Instant>,
}

impl Extra {
    fn is_empty(&self) -> bool {
        // A few child and waiter slots are kept for reuse (see
        // `shrink_children` and `slab.rs`).
        self.children.capacity() == 0
            && !self.waiters.has_storage()
            && self.after_funcs.is_empty()
            && self.cause.is_none()
            && self.timer.is_none()
            && self.deadline.is_none()
    }
}

/// Child slots (positions 1..) an emptied list keeps while its node is
/// live: 64 bytes, as the waiter slab's `KEEP`.
const KEEP_CHILDREN: usize = 8;

/// Frees `Extra` once nothing is left in it: a node that had a million
/// children or waiters come and go holds no more than one that had none.
fn release_if_empty(inner: &mut Option<Box<Extra>>) {
    if inner.as_ref().is_some_and(|extra| extra.is_empty()) {
        *inner = None;
    }
}

/// A context that keeps its parent's values only. Go: `withoutCancelCtx`.
pub(crate) struct WithoutCancelNode {
    /// Set at creation, never changed.
    parent: Repr,
}

/// Drops a parent chain iteratively: a million-deep chain whose last handle
/// goes away must not overflow the stack.
fn drop_chain(mut parent: Repr) {
    loop {
        // The next link goes into `parent` before the node is freed (at the
        // end of its arm): if a value's or a cause's drop panics there,
        // unwinding still releases the rest of the chain.
        match std::mem::take(&mut parent) {
            // A parent still shared (its context lives on: the common case)
            // is only released; a failed `try_unwrap` would cost one more
            // read-modify-write.
            Repr::Cancel(node) if Arc::strong_count(&node) != 1 => return,
            Repr::WithoutCancel(node) if Arc::strong_count(&node) != 1 => return,
            Repr::Cancel(node) => {
                // `strong_count` is a relaxed load: the other holders'
                // releases (their `SHARDED`, set before their last handle
                // went) are ours only after an acquire, which `try_unwrap`
                // makes too late for `leave`.
                crate::loom::fence(Ordering::Acquire);
                // Forgotten while its allocation is still ours: once freed,
                // a new node can be made at the same address (and keyed by
                // it) before a `leave` by the old address.
                node.leave(shards::address(&node));
                match Arc::try_unwrap(node) {
                    Ok(mut node) => parent = std::mem::take(&mut node.parent),
                    Err(_) => return,
                }
            }
            Repr::Value(mut node) => match node.get_mut() {
                Some(node) => parent = std::mem::take(&mut node.parent),
                None => return,
            },
            Repr::WithoutCancel(node) => match Arc::try_unwrap(node) {
                Ok(mut node) => parent = std::mem::take(&mut node.parent),
                Err(_) => return,
            },
            Repr::Background | Repr::Todo => return,
        }
    }
}

impl CancelNode {
    /// What is keyed by the node's address `at` (shard entries and thread
    /// slots left by forgotten `done()` futures) goes now. `drop_chain`
    /// calls it before it unwraps the node out of its allocation (to free a
    /// chain without recursion): once that allocation is freed, a new node
    /// can be made at the same address and keyed by it. Then the node's
    /// `Drop` has nothing left to do there.
    fn leave(&self, at: usize) {
        if self.state.load(Ordering::Relaxed) & (SHARDED | ERR_MASK) == SHARDED {
            shards::forget(at);
            self.state.fetch_and(!SHARDED, Ordering::Relaxed);
        }
    }
}

impl Drop for CancelNode {
    fn drop(&mut self) {
        // Dropped live with shard entries (left by forgotten `done()`
        // futures): no entry may outlive the address it is keyed by.
        self.leave(shards::address(self));
        drop_chain(std::mem::take(&mut self.parent));
    }
}

impl Drop for ValueNode {
    fn drop(&mut self) {
        // `jump` points at an ancestor, which `parent` still holds: this
        // only decrements a count, it never frees (so never recurses).
        drop(self.jump.take());
        drop_chain(std::mem::take(&mut self.parent));
    }
}

impl Drop for WithoutCancelNode {
    fn drop(&mut self) {
        drop_chain(std::mem::take(&mut self.parent));
    }
}

impl Inner {
    fn extra(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Box::default)
    }

    fn child_count(&self) -> usize {
        usize::from(self.first.is_some()) + self.extra.as_ref().map_or(0, |e| e.children.len())
    }

    /// Appends `child`; returns its position.
    fn push_child(&mut self, child: Arc<CancelNode>) -> usize {
        if self.first.is_none() {
            self.first = Some(child);
            return 0;
        }
        let rest = &mut self.extra().children;
        rest.push(child);
        rest.len()
    }

    fn child(&self, position: usize) -> Option<&Arc<CancelNode>> {
        match position {
            0 => self.first.as_ref(),
            _ => self.extra.as_ref()?.children.get(position - 1),
        }
    }

    /// Removes the child at `position` by moving the last child into its
    /// place (whose index it updates); returns the removed child.
    fn swap_remove_child(&mut self, position: usize) -> Arc<CancelNode> {
        let last = match self.extra.as_mut().and_then(|e| e.children.pop()) {
            Some(last) => last,
            None => self
                .first
                .take()
                .expect("ctx: internal error: removing from an empty child list"),
        };
        // After the pop, the count is the position `last` had.
        if self.child_count() == position {
            return last;
        }
        last.set_index(position);
        let slot = match position {
            0 => self.first.as_mut(),
            _ => self
                .extra
                .as_mut()
                .and_then(|e| e.children.get_mut(position - 1)),
        };
        let slot = slot.expect("ctx: internal error: child position out of range");
        std::mem::replace(slot, last)
    }

    /// Moves every child onto `stack`.
    fn take_children(&mut self, stack: &mut Nodes) {
        if let Some(first) = self.first.take() {
            stack.push(first);
            if let Some(extra) = self.extra.as_deref_mut() {
                stack.extend(std::mem::take(&mut extra.children));
            }
        }
    }

    /// Gives memory back once the list is empty or mostly empty, keeping up
    /// to [`KEEP_CHILDREN`] slots: a parent whose children come and go two
    /// or three at a time (requests under one server context) must not
    /// allocate and free its list under its lock on every derivation.
    fn shrink_children(&mut self) {
        if let Some(extra) = self.extra.as_deref_mut() {
            let (len, cap) = (extra.children.len(), extra.children.capacity());
            if len == 0 && cap > KEEP_CHILDREN {
                extra.children = Vec::new();
            } else if cap > 16 && len * 4 <= cap {
                extra.children.shrink_to(len * 2);
            }
        }
        release_if_empty(&mut self.extra);
    }
}

impl CancelNode {
    /// A new cancelable child of `parent`, registered with the nearest cancel
    /// node above it (or born canceled if that one is done already). With a
    /// `deadline`, the node reports it (the caller arms the timer).
    #[cfg_attr(feature = "debug", track_caller)]
    pub(crate) fn new(parent: &Repr, deadline: Option<Instant>, flags: u16) -> Arc<CancelNode> {
        let above = parent
            .signal()
            .map(|signal| signal.state.load(Ordering::Acquire));
        #[cfg(feature = "test-util")]
        let flags = flags | above.map_or(0, |state| state & TOKIO_CLOCK);
        // A parent done already never changes again (invariant 1): the
        // child is born done, before anyone else can see it, with no lock
        // taken and no read-modify-write. Nobody waits on it yet;
        // `BORN_DONE` makes its `cause()` read the parent's.
        let born_done = above
            .and_then(decode)
            .map(|err| err_bits(err) | SETTLED | BORN_DONE);
        let flags = flags | born_done.unwrap_or(0);
        let (flags, extra) = match deadline {
            Some(deadline) => (
                flags | HAS_DEADLINE,
                Some(Box::new(Extra {
                    deadline: Some(deadline),
                    ..Extra::default()
                })),
            ),
            None => (flags, None),
        };
        let node = Arc::new(CancelNode {
            parent: parent.clone(),
            state: AtomicU16::new(flags),
            index: AtomicU32::new(0),
            inner: Mutex::new(Inner { first: None, extra }),
            // Every derivation down to here is `#[track_caller]` under the
            // feature: `caller()` is the user's call.
            #[cfg(feature = "debug")]
            census: crate::debug::registry::register(
                parent.signal().map(|signal| &signal.census),
                std::panic::Location::caller(),
            ),
        });
        #[cfg(feature = "debug")]
        node.census.attach(Arc::downgrade(&node));
        if let (Some(signal), None) = (parent.signal(), born_done) {
            propagate_cancel(signal, &node);
        }
        node
    }

    /// One lock-free load.
    #[inline]
    pub(crate) fn err(&self) -> Option<Error> {
        let state = self.state.load(Ordering::Acquire);
        #[cfg(feature = "test-util")]
        if state & (ERR_MASK | TOKIO_CLOCK) == TOKIO_CLOCK {
            return deadline::check_tokio_clock(self);
        }
        decode(state)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    /// The cause: `None` while live.
    pub(crate) fn cause(&self) -> Option<Cause> {
        let err = self.err()?;
        // A child born done has its parent's cause: walk up (a loop, for
        // long chains of such children) to the node that recorded it.
        let mut node = self;
        while node.state.load(Ordering::Relaxed) & BORN_DONE != 0 {
            match node.parent.signal() {
                Some(parent) => node = parent,
                None => break,
            }
        }
        // Invariant 1: the cause was written under the lock before the bits.
        let cause = node
            .lock()
            .extra
            .as_ref()
            .and_then(|extra| extra.cause.clone());
        Some(cause.unwrap_or_else(|| err.into()))
    }

    /// The node holding the earliest deadline at or above this one: the
    /// nearest with one of its own, which is only set when earlier than
    /// every one above (on the same clock: `deadline::same_clock`).
    fn deadline_holder(&self) -> Option<&CancelNode> {
        let mut node = self;
        while !node.holds_deadline() {
            node = node.parent.signal()?.as_ref();
        }
        Some(node)
    }

    /// The earliest deadline at or above this node.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        // The lock only makes the read of `extra` sound: the deadline
        // itself is written once, before the node is shared.
        self.deadline_holder()?
            .lock()
            .extra
            .as_ref()
            .and_then(|extra| extra.deadline)
    }

    /// Whether this node holds a deadline of its own (earlier than every
    /// one above it): its [`remaining`](Self::remaining) walks no further.
    pub(crate) fn holds_deadline(&self) -> bool {
        self.state.load(Ordering::Relaxed) & HAS_DEADLINE != 0
    }

    pub(crate) fn made_by_deadline(&self) -> bool {
        self.state.load(Ordering::Relaxed) & FROM_DEADLINE != 0
    }

    /// The node's slot index, as stored in a `u32` to keep nodes small.
    fn set_index(&self, index: usize) {
        let index = u32::try_from(index)
            .expect("ctx: more than 4 billion live children under one context (a capacity limit)");
        self.index.store(index, Ordering::Relaxed);
    }
}

/// What the census reads of a node (feature `debug`).
#[cfg(feature = "debug")]
impl crate::debug::registry::Observe for CancelNode {
    fn observe(&self) -> crate::debug::registry::Observed {
        // Waiters are added and taken under the lock (invariant 1); a count
        // read under it is exact at that instant. The deadline is this
        // node's own (set at creation on `HAS_DEADLINE` nodes only), not a
        // walk up the tree: the census takes an inherited one from the
        // parent's entry.
        let (waiters, own_deadline) = {
            let inner = self.lock();
            let extra = inner.extra.as_deref();
            (
                extra.map_or(0, |extra| extra.waiters.len()),
                extra.and_then(|extra| extra.deadline),
            )
        };
        crate::debug::registry::Observed {
            err: self.err(),
            own_deadline,
            waiters: waiters + shards::count(self),
        }
    }

    fn deadline(&self) -> Option<Instant> {
        CancelNode::deadline(self)
    }
}

/// Registers `child` (not yet shared with anyone) under `parent`.
///
/// Go: `propagateCancel`.
fn propagate_cancel(parent: &Arc<CancelNode>, child: &Arc<CancelNode>) {
    // Invariants 1 and 2: registering and the parent's transition to done
    // are ordered by the parent's lock. (A parent found done before the
    // child was made gave a child born done: `CancelNode::new`.)
    let mut inner = parent.lock();
    if let Some(err) = decode(parent.state.load(Ordering::Acquire)) {
        // Invariant 1: the parent was done meanwhile and gave up its lists:
        // the child is born done after all (it is still not shared).
        drop(inner);
        child
            .state
            .fetch_or(err_bits(err) | SETTLED | BORN_DONE, Ordering::Release);
        return;
    }
    // Invariant 2: we hold the parent's lock, so `index` is ours to write.
    let position = inner.push_child(child.clone());
    child.set_index(position);
}

/// Nodes a cancel walk holds: a subtree of up to four nodes (a leaf, a
/// parent with a child or two) is walked without allocating. Why
/// `smallvec` rather than a list of our own: it is the standard small
/// vector, and this is all it is used for.
type Nodes = SmallVec<[Arc<CancelNode>; 4]>;

/// What a cancel walk must do once no lock is held (invariant 4).
#[derive(Default)]
struct Aftermath {
    wakers: Few<Waker>,
    after_funcs: Few<Arc<Callback>>,
    timers: Few<deadline::Armed>,
}

impl Aftermath {
    /// Marks `node` (locked as `inner`) done and moves everything out of it
    /// (invariant 1); its children go onto `stack`. Returns whether it was
    /// a leaf, which the same read-modify-write settles: nothing below to
    /// wait for (invariant 3), and nobody can have parked on it (that takes
    /// seeing it done and unsettled), so `settle` has nothing to do.
    fn transition(
        &mut self,
        node: &CancelNode,
        inner: &mut Inner,
        err: Error,
        cause: &Option<Cause>,
        stack: &mut Nodes,
    ) -> bool {
        let above = stack.len();
        inner.take_children(stack);
        let leaf = stack.len() == above;
        if let Some(extra) = inner.extra.as_deref_mut() {
            self.wakers.extend(extra.waiters.take_all());
            self.after_funcs.extend(extra.after_funcs.take_all());
            self.timers.extend(extra.timer.take());
        }
        if cause.is_some() {
            inner.extra().cause = cause.clone();
        }
        release_if_empty(&mut inner.extra);
        let settled = if leaf { SETTLED } else { 0 };
        let before = node
            .state
            .fetch_or(err_bits(err) | settled, Ordering::AcqRel);
        if before & SHARDED != 0 {
            // The read-modify-write above is the cancel's half of the
            // shards' protocol (`shards.rs`).
            shards::drain(node, &mut self.wakers);
        }
        leaf
    }
}

/// Cancels `node` and its whole subtree with `err` and `cause`.
///
/// When this returns, every node of the subtree reports `err()` and its
/// `done()` futures are ready, whichever thread did the work (invariant 3).
/// Only the first cancellation of a node has an effect. Returns whether this
/// call was that first one.
///
/// Go: `(*cancelCtx).cancel(true, err, cause)`.
pub(crate) fn cancel(node: &Arc<CancelNode>, err: Error, cause: Option<Cause>) -> bool {
    cancel_with(node, err, cause, Callbacks::Here).is_ok()
}

/// What a guard's drop does: [`cancel`], unless the guard holds the only
/// reference to the node and the node holds no `after_func` callback. Then
/// nothing can ever observe the node (a context, child, waiter, timer entry
/// or parent list would each hold a reference; a callback whose `AfterFunc`
/// handle was dropped does not, so it is checked for), and the node is
/// freed without the walk.
pub(crate) fn release(node: Arc<CancelNode>) {
    // Under `debug` the census holds a `Weak` and may look at the node.
    #[cfg(not(feature = "debug"))]
    if Arc::strong_count(&node) == 1 {
        // Invariant 1: a live node still holds its callbacks; nobody else
        // can reach the node to add one while we are its only owner.
        let callbacks = node
            .lock()
            .extra
            .as_ref()
            .is_some_and(|extra| !extra.after_funcs.is_empty());
        if !callbacks {
            return;
        }
    }
    cancel(&node, Error::Canceled, None);
}

/// Where a cancel runs the `after_func` callbacks it fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Callbacks {
    /// On the canceling thread, before `cancel` returns: a user's cancel.
    Here,
    /// On the callback pool (`pool.rs`), one job each: ctx's own threads,
    /// which must not wait for user code.
    Pool,
}

/// [`cancel`], with the callbacks run as `callbacks` says. `Err` when
/// another cancel came first, with the `cause` this call did not record
/// (the caller decides where it drops).
pub(crate) fn cancel_with(
    node: &Arc<CancelNode>,
    err: Error,
    cause: Option<Cause>,
    callbacks: Callbacks,
) -> Result<(), Option<Cause>> {
    // Invariant 3: a settled node's whole subtree is done already; nothing
    // to do and nothing to wait for (a born-done child, the later guards of
    // a chain whose top was canceled), so no lock either.
    if node.state.load(Ordering::Acquire) & SETTLED != 0 {
        return Err(cause);
    }
    // A cause equal to the plain error is stored as "none": nothing kept.
    let cause = cause.filter(|cause| cause.as_ctx_error() != Some(err));
    let mut inner = node.lock();
    // Invariant 1: under the lock, done bits mean another cancel took the
    // lists already; invariant 3: wait until it has finished the subtree.
    if node.state.load(Ordering::Relaxed) & ERR_MASK != 0 {
        drop(inner);
        node.wait_settled();
        return Err(cause);
    }
    let mut aftermath = Aftermath::default();
    let mut stack = Nodes::new();
    let leaf = aftermath.transition(node, &mut inner, err, &cause, &mut stack);
    drop(inner);
    // The common case, a leaf, is settled by its transition.
    if !leaf {
        let mut settle = Nodes::new();
        settle.push(node.clone());
        // Iterative, so that a million-deep chain cannot overflow the stack.
        while let Some(child) = stack.pop() {
            // Invariant 1, as for the target above; no other lock is held.
            let mut inner = child.lock();
            if child.state.load(Ordering::Relaxed) & ERR_MASK != 0 {
                // Canceled by another thread since we took it from its
                // parent; that thread finishes its subtree (invariant 3).
                drop(inner);
                child.wait_settled();
                continue;
            }
            let leaf = aftermath.transition(&child, &mut inner, err, &cause, &mut stack);
            drop(inner);
            if !leaf {
                settle.push(child);
            }
        }
        // Children first, so that nobody sees a settled node above an
        // unsettled one.
        for done in settle.into_iter().rev() {
            done.settle();
        }
    }

    aftermath.timers.each(deadline::disarm);
    aftermath.wakers.each(|waker| {
        // A panicking waker must not stop the others from being woken.
        unwind::contain(|| waker.wake());
    });
    aftermath.after_funcs.each(|after| match callbacks {
        Callbacks::Here => after.fire(),
        Callbacks::Pool => pool::execute(move || after.fire()),
    });
    remove_child(node);
    Ok(())
}

/// Unlinks a node that just became done from its parent's `children`.
///
/// Go: `removeChild`.
fn remove_child(node: &Arc<CancelNode>) {
    let Some(parent) = node.parent.signal() else {
        return;
    };
    // Invariant 2: `index` is only read under the parent's lock; no other
    // lock is held (the node's own was released by the walk).
    let mut inner = parent.lock();
    if parent.state.load(Ordering::Relaxed) & ERR_MASK != 0 {
        // Invariant 1: the parent's cancel already took its children.
        return;
    }
    // Invariant 2: registered, at `index`, readable under the parent's lock.
    let index = node.index.load(Ordering::Relaxed) as usize;
    let registered = inner.child(index).is_some_and(|c| Arc::ptr_eq(c, node));
    assert!(
        registered,
        "ctx: internal error: a live parent lost track of its child"
    );
    let removed = inner.swap_remove_child(index);
    inner.shrink_children();
    drop(inner);
    drop(removed);
}
