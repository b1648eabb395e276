//! The private context tree: nodes, registration, the cancel walk, unlinking.
//!
//! This is the only file that takes the node locks. A [`Context`] is a handle
//! to a [`Node`]; a node points at its parent (for values and the `Debug`
//! chain), never the other way round, except that a *cancel node* lists its
//! live cancelable descendants (through value and without-cancel nodes, the
//! nearest cancel node below it) in `children`, so that cancellation can reach
//! them.
//!
//! # State
//!
//! A cancel node's `state` word holds the error bits (`CANCELED`,
//! `DEADLINE`), `SETTLED`, and constant flags. `err()` is one `Acquire` load
//! of that word, with no lock.
//!
//! # Invariants
//!
//! 1. The error bits go from zero to non-zero once, only while holding the
//!    node's lock, in the same critical section that records the cause and
//!    takes `children`, `waiters`, `after_funcs` and `timer` out of the node.
//!    Hence: under the lock, a node that is not done still owns all four, and
//!    a node that is done has given them up for good.
//! 2. A node is registered in its parent's `children` iff, under the parent's
//!    lock, the parent is not done and the node has not unlinked itself. While
//!    registered, `children[index] == node`; `index` is read and written only
//!    under the parent's lock.
//! 3. `SETTLED` is set on a done node only after every node in its subtree is
//!    done. A `cancel` that finds its node already done waits for `SETTLED`
//!    before it returns, so *every* return from `cancel` leaves the whole
//!    subtree done, as Go's does (Go holds the lock during its recursion).
//! 4. No user code runs under a node lock: wakers, `after_func` callbacks and
//!    drops of user values happen after the lock is released.
//!
//! # Lock order
//!
//! There is none to get wrong: no code path holds two node locks at once.
//! Registration locks the parent only (the child is not yet shared);
//! the cancel walk locks one node at a time; unlinking locks the parent after
//! the child's lock is released. The timer's lock is never held together with
//! a node lock either.
//!
//! # Why waiting for `SETTLED` cannot deadlock
//!
//! A thread owns the nodes it moved to done. It waits only for a node that is
//! its cancel target or a child of a node it owns, owned by another thread.
//! That other thread reached the node through its own walk, which cannot pass
//! through a node owned by the first thread; so waits point strictly down the
//! tree and form no cycle. Nothing waits while holding a lock, and callbacks
//! and wakers (which could cancel anything) run only after settling.

use std::any::{Any, TypeId};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::task::{Poll, Waker};
use std::time::Instant;

use crate::after_func::Shared as AfterFuncShared;
use crate::context::{Context, Repr};
use crate::error::{Cause, Error};
use crate::loom::{lock, yield_now, Arc, AtomicU8, AtomicUsize, Mutex, Ordering};
use crate::slab::Slab;
use crate::timer::TimerKey;

const CANCELED: u8 = 0b0001;
const DEADLINE: u8 = 0b0010;
const ERR_MASK: u8 = CANCELED | DEADLINE;
const SETTLED: u8 = 0b0100;
/// Constant: the node was made by `with_deadline`/`with_timeout` (for `Debug`).
pub(crate) const FROM_DEADLINE: u8 = 0b1000;

fn err_bits(err: Error) -> u8 {
    match err {
        Error::Canceled => CANCELED,
        Error::DeadlineExceeded => DEADLINE,
    }
}

fn decode(state: u8) -> Option<Error> {
    match state & ERR_MASK {
        0 => None,
        CANCELED => Some(Error::Canceled),
        _ => Some(Error::DeadlineExceeded),
    }
}

/// One node of the tree. Immutable after construction except for the
/// cancel state, which is atomic or behind the node's lock.
pub(crate) struct Node {
    /// The context this node was derived from.
    pub(crate) parent: Context,
    pub(crate) kind: Kind,
}

pub(crate) enum Kind {
    Cancel(CancelNode),
    Value(ValueNode),
    WithoutCancel,
}

pub(crate) struct ValueNode {
    pub(crate) type_id: TypeId,
    pub(crate) type_name: &'static str,
    pub(crate) value: Box<dyn Any + Send + Sync>,
    /// The nearest cancel node above, cached so `err()` is one hop.
    pub(crate) signal: Option<Arc<Node>>,
}

pub(crate) struct CancelNode {
    state: AtomicU8,
    /// The effective deadline: the earlier of our own and the parent's.
    pub(crate) deadline: Option<Instant>,
    /// Our slot in the parent's `children` (invariant 2).
    index: AtomicUsize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    children: Vec<Arc<Node>>,
    waiters: Slab<Waker>,
    after_funcs: Slab<Arc<AfterFuncShared>>,
    /// The recorded cause when it is not simply the error itself.
    cause: Option<Cause>,
    timer: Option<TimerKey>,
}

impl Node {
    /// The cancel state of a node known to be a cancel node.
    pub(crate) fn cancel_node(&self) -> &CancelNode {
        match &self.kind {
            Kind::Cancel(node) => node,
            _ => unreachable!("ctx: internal error: signal points at a node that cannot be canceled"),
        }
    }

    /// A new cancelable child of `parent`, registered with the nearest cancel
    /// node above it (or born canceled if that one is done already).
    pub(crate) fn new_cancel(parent: &Context, deadline: Option<Instant>, flags: u8) -> Arc<Node> {
        let node = Arc::new(Node {
            parent: parent.clone(),
            kind: Kind::Cancel(CancelNode {
                state: AtomicU8::new(flags),
                deadline,
                index: AtomicUsize::new(0),
                inner: Mutex::new(Inner::default()),
            }),
        });
        if let Some(signal) = parent.signal() {
            propagate_cancel(signal, &node);
        }
        node
    }

    /// The chain element this node contributes to `Debug`.
    pub(crate) fn describe(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::Cancel(node) if node.state.load(Ordering::Relaxed) & FROM_DEADLINE != 0 => {
                match node.deadline.map(|d| d.checked_duration_since(Instant::now())) {
                    Some(Some(left)) => write!(f, "with_deadline(in {left:?})"),
                    Some(None) => f.write_str("with_deadline(passed)"),
                    None => f.write_str("with_deadline(never)"),
                }
            }
            Kind::Cancel(_) => f.write_str("with_cancel"),
            Kind::Value(value) => write!(f, "with_value({})", value.type_name),
            Kind::WithoutCancel => f.write_str("without_cancel"),
        }
    }
}

impl Drop for Node {
    /// Drops the parent chain iteratively: a million-deep chain whose last
    /// handle goes away must not overflow the stack.
    fn drop(&mut self) {
        let mut parent = std::mem::replace(&mut self.parent, Context::background());
        while let Repr::Node(node) = parent.repr {
            match Arc::try_unwrap(node) {
                Ok(mut node) => {
                    parent = std::mem::replace(&mut node.parent, Context::background());
                    // `node` drops here with a background parent: no recursion.
                }
                Err(_) => break,
            }
        }
    }
}

impl CancelNode {
    /// One lock-free load.
    #[inline]
    pub(crate) fn err(&self) -> Option<Error> {
        decode(self.state.load(Ordering::Acquire))
    }

    pub(crate) fn cause(&self) -> Option<Cause> {
        let err = self.err()?;
        // Invariant 1: the cause was written under the lock before the bits.
        let inner = lock(&self.inner);
        Some(inner.cause.clone().unwrap_or_else(|| err.into()))
    }

    fn wait_settled(&self) {
        while self.state.load(Ordering::Acquire) & SETTLED == 0 {
            yield_now();
        }
    }
}

/// Registers `child` (not yet shared with anyone) under `parent`.
///
/// Go: `propagateCancel`.
fn propagate_cancel(parent: &Arc<Node>, child: &Arc<Node>) {
    let p = parent.cancel_node();
    let mut inner = lock(&p.inner);
    if let Some(err) = decode(p.state.load(Ordering::Acquire)) {
        // Invariant 1: the parent gave up its lists; the child is born done
        // with the parent's error and cause.
        let cause = inner.cause.clone();
        drop(inner);
        let c = child.cancel_node();
        lock(&c.inner).cause = cause;
        c.state.fetch_or(err_bits(err) | SETTLED, Ordering::Release);
        return;
    }
    // Invariant 2: we hold the parent's lock, so `index` is ours to write.
    child.cancel_node().index.store(inner.children.len(), Ordering::Relaxed);
    inner.children.push(child.clone());
}

/// What a cancel walk must do once no lock is held (invariant 4).
#[derive(Default)]
struct Aftermath {
    settle: Vec<Arc<Node>>,
    wakers: Vec<Waker>,
    after_funcs: Vec<Arc<AfterFuncShared>>,
    timers: Vec<TimerKey>,
}

impl Aftermath {
    /// Moves everything out of a node that just became done (invariant 1).
    fn take_from(&mut self, inner: &mut Inner, stack: &mut Vec<Arc<Node>>) {
        stack.append(&mut inner.children);
        inner.children = Vec::new();
        self.wakers.extend(inner.waiters.take_all());
        self.after_funcs.extend(inner.after_funcs.take_all());
        self.timers.extend(inner.timer.take());
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
pub(crate) fn cancel(node: &Arc<Node>, err: Error, cause: Option<Cause>) -> bool {
    // A cause equal to the plain error is stored as "none": no allocation kept.
    let cause = cause.filter(|cause| cause.as_ctx_error() != Some(err));
    let c = node.cancel_node();
    let mut inner = lock(&c.inner);
    if c.state.load(Ordering::Relaxed) & ERR_MASK != 0 {
        drop(inner);
        c.wait_settled();
        return false;
    }
    inner.cause = cause.clone();
    c.state.fetch_or(err_bits(err), Ordering::Release);
    let mut aftermath = Aftermath::default();
    let mut stack = Vec::new();
    aftermath.take_from(&mut inner, &mut stack);
    drop(inner);
    aftermath.settle.push(node.clone());

    // Iterative, so that a million-deep chain cannot overflow the stack.
    while let Some(child) = stack.pop() {
        let cc = child.cancel_node();
        let mut inner = lock(&cc.inner);
        if cc.state.load(Ordering::Relaxed) & ERR_MASK != 0 {
            // Canceled by another thread since we took it from its parent;
            // that thread finishes its subtree (invariant 3).
            drop(inner);
            cc.wait_settled();
            continue;
        }
        inner.cause = cause.clone();
        cc.state.fetch_or(err_bits(err), Ordering::Release);
        aftermath.take_from(&mut inner, &mut stack);
        drop(inner);
        aftermath.settle.push(child);
    }

    for done in &aftermath.settle {
        done.cancel_node().state.fetch_or(SETTLED, Ordering::Release);
    }
    for key in aftermath.timers {
        crate::timer::remove(key);
    }
    for waker in aftermath.wakers {
        // A panicking waker must not stop the others from being woken.
        let _ = catch_unwind(AssertUnwindSafe(|| waker.wake()));
    }
    for after in aftermath.after_funcs {
        after.fire();
    }
    remove_child(node);
    true
}

/// Unlinks a node that just became done from its parent's `children`.
///
/// Go: `removeChild`.
fn remove_child(node: &Arc<Node>) {
    let Some(parent) = node.parent.signal() else {
        return;
    };
    let p = parent.cancel_node();
    let mut inner = lock(&p.inner);
    if p.state.load(Ordering::Relaxed) & ERR_MASK != 0 {
        // Invariant 1: the parent's cancel already took its children.
        return;
    }
    // Invariant 2: registered, at `index`, readable under the parent's lock.
    let index = node.cancel_node().index.load(Ordering::Relaxed);
    let registered = inner.children.get(index).is_some_and(|c| Arc::ptr_eq(c, node));
    assert!(registered, "ctx: internal error: a live parent lost track of its child");
    let removed = inner.children.swap_remove(index);
    if let Some(moved) = inner.children.get(index) {
        moved.cancel_node().index.store(index, Ordering::Relaxed);
    }
    let (len, cap) = (inner.children.len(), inner.children.capacity());
    if len == 0 {
        // A parent that had a million children come and go holds no more
        // memory than one that had none.
        inner.children = Vec::new();
    } else if cap > 16 && len * 4 <= cap {
        inner.children.shrink_to(len * 2);
    }
    drop(inner);
    drop(removed);
}

/// Polls for done on a cancel node, registering the waker if not done yet.
///
/// `key` is the waiter slot of the polling future; it is cleared once done.
pub(crate) fn poll_done(node: &Arc<Node>, key: &mut Option<usize>, waker: &Waker) -> Poll<Error> {
    let c = node.cancel_node();
    if let Some(err) = c.err() {
        *key = None;
        return Poll::Ready(err);
    }
    let mut inner = lock(&c.inner);
    // Re-check under the lock: a cancel between the load above and the lock
    // has taken the waiter list already (invariant 1), so registering now
    // would be a lost wake-up.
    if let Some(err) = decode(c.state.load(Ordering::Acquire)) {
        *key = None;
        return Poll::Ready(err);
    }
    match key.and_then(|k| inner.waiters.get_mut(k)) {
        Some(stored) => {
            if !stored.will_wake(waker) {
                stored.clone_from(waker);
            }
        }
        None => *key = Some(inner.waiters.insert(waker.clone())),
    }
    Poll::Pending
}

/// Forgets a waiter registered by [`poll_done`].
pub(crate) fn remove_waiter(node: &Arc<Node>, key: usize) {
    let c = node.cancel_node();
    let mut inner = lock(&c.inner);
    if c.state.load(Ordering::Relaxed) & ERR_MASK == 0 {
        let waker = inner.waiters.remove(key);
        drop(inner);
        drop(waker);
    }
}

/// Registers an after-func; `None` if the node is already done (the caller
/// runs it at once).
pub(crate) fn add_after_func(node: &Arc<Node>, after: Arc<AfterFuncShared>) -> Option<usize> {
    let c = node.cancel_node();
    let mut inner = lock(&c.inner);
    if c.state.load(Ordering::Relaxed) & ERR_MASK != 0 {
        return None;
    }
    Some(inner.after_funcs.insert(after))
}

/// Forgets an after-func registered by [`add_after_func`].
pub(crate) fn remove_after_func(node: &Arc<Node>, key: usize) {
    let c = node.cancel_node();
    let mut inner = lock(&c.inner);
    if c.state.load(Ordering::Relaxed) & ERR_MASK == 0 {
        let after = inner.after_funcs.remove(key);
        drop(inner);
        drop(after);
    }
}

/// Hands the node its timer entry; false (and nothing stored) if the node is
/// done already, in which case the caller removes the entry.
pub(crate) fn set_timer(node: &Arc<Node>, key: TimerKey) -> bool {
    let c = node.cancel_node();
    let mut inner = lock(&c.inner);
    if c.state.load(Ordering::Relaxed) & ERR_MASK != 0 {
        return false;
    }
    inner.timer = Some(key);
    true
}

/// How many children are registered under a cancel node (for tests).
#[cfg(test)]
pub(crate) fn child_count(node: &Arc<Node>) -> usize {
    lock(&node.cancel_node().inner).children.len()
}
