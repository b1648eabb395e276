//! Waiters: the wakers of pending `done()` futures, kept in the node.

use std::task::{Poll, Waker};

use super::{decode, hot, release_if_empty, shards, CancelNode, ERR_MASK, SHARDED};
use crate::error::Error;
use crate::loom::{try_lock, Ordering};

/// Polls for done on a cancel node, registering the waker if not done yet.
///
/// `key` is the waiter slot of the polling future; it is cleared once done.
/// A waker's `clone` and `drop` are user code (invariant 4): they run with no
/// lock held, so a waker that reaches back into this context cannot deadlock.
#[inline]
pub(crate) fn poll_done(node: &CancelNode, key: &mut Option<usize>, waker: &Waker) -> Poll<Error> {
    if let Some(err) = node.err() {
        *key = None;
        return Poll::Ready(err);
    }
    // The `select!` turn on a contended context: this thread's slot. The
    // rest is out of line, so that this path stays a few instructions.
    if key.is_none() && node.state.load(Ordering::Relaxed) & SHARDED != 0 {
        if let Some(poll) = hot::register(node, key, waker) {
            return poll;
        }
    }
    register(node, key, waker)
}

/// [`poll_done`] past the done check and this thread's slot.
#[inline(never)]
fn register(node: &CancelNode, key: &mut Option<usize>, waker: &Waker) -> Poll<Error> {
    match *key {
        Some(k) if hot::is_key(k) => {
            // Kept, or moved out (`key` cleared) for a fresh registration:
            // the node is `SHARDED`, so that goes to the shards' side too.
            return match hot::repoll(node, key, waker) {
                Some(poll) => poll,
                None => register_sharded(node, key, waker),
            };
        }
        Some(k) if shards::is_shard_key(k) => return shards::poll(node, key, waker),
        Some(_) => {}
        // (`poll_done` tried this thread's slot already.)
        None if node.state.load(Ordering::Relaxed) & SHARDED != 0 => {
            return shards::poll(node, key, waker);
        }
        None => {}
    }
    // The clone to store, made before locking: up front when registering for
    // the first time, and on the second pass when a different waker
    // replaces the stored one.
    let mut fresh = key.is_none().then(|| waker.clone());
    loop {
        let mut inner = match (key.is_none(), try_lock(&node.inner)) {
            (_, Some(inner)) => inner,
            (true, None) => {
                // Contended: from now on this node's waiters go to the
                // shards (`shards.rs`), this one first.
                drop(fresh);
                if let Some(err) = shards::mark(node) {
                    *key = None;
                    return Poll::Ready(err);
                }
                return register_sharded(node, key, waker);
            }
            (false, None) => node.lock(),
        };
        // Re-check under the lock: a cancel between the load above and the
        // lock has taken the waiter list already (invariant 1), so
        // registering now would be a lost wake-up.
        if let Some(err) = decode(node.state.load(Ordering::Acquire)) {
            drop(inner);
            *key = None;
            drop(fresh);
            return Poll::Ready(err);
        }
        let waiters = &mut inner.extra().waiters;
        let step = waiters.register(key.map(shards::list_slab_key), &mut fresh, waker);
        drop(inner);
        if step.finish(key, shards::list_key, &mut fresh, waker) {
            return Poll::Pending;
        }
    }
}

/// A first registration on a `SHARDED` node: this thread's slot, or when
/// that is taken, its shard.
fn register_sharded(node: &CancelNode, key: &mut Option<usize>, waker: &Waker) -> Poll<Error> {
    match hot::register(node, key, waker) {
        Some(poll) => poll,
        None => shards::poll(node, key, waker),
    }
}

/// Forgets a waiter registered by [`poll_done`].
#[inline]
pub(crate) fn remove_waiter(node: &CancelNode, key: usize) {
    if hot::is_key(key) {
        return hot::remove(node, key);
    }
    remove_listed(node, key);
}

/// [`remove_waiter`] for a waiter in the node's list or a shard.
#[inline(never)]
fn remove_listed(node: &CancelNode, key: usize) {
    if shards::is_shard_key(key) {
        return shards::remove(node, key);
    }
    let key = shards::list_slab_key(key);
    // Invariant 1: a done node gave its waiters up; only a live one has ours.
    let mut inner = node.lock();
    if node.state.load(Ordering::Relaxed) & ERR_MASK == 0 {
        let mut freed = false;
        // A few slots of waiter storage stay while the node is live, so a
        // `select!` loop that makes a fresh `done()` every turn does not
        // allocate every turn; after a burst of waiters the slab gives the
        // rest back once it is less than a quarter full, and the whole of
        // `Extra` goes once nothing else is in it.
        let waker = inner.extra.as_deref_mut().and_then(|extra| {
            let waker = extra.waiters.remove(key);
            // Only a slab that gave its storage back can leave `Extra` empty.
            freed = !extra.waiters.has_storage();
            waker
        });
        if freed {
            release_if_empty(&mut inner.extra);
        }
        drop(inner);
        drop(waker);
    }
}
