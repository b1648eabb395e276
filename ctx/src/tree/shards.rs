//! Waiters of a contended context, in per-thread shards.
//!
//! A `done()` poll registers its waker in its node's list, under the node's
//! lock. When many cores poll one context (a `select!` loop over a shared
//! server context in every task), that lock is the one thing they all
//! write, and each turn of each loop takes it twice. So the first poll that
//! finds the lock taken marks the node `SHARDED`, and from then on its
//! waiters go to a process-wide table of shards instead: each thread
//! registers in its own shard, keyed by the node's address, so pollers on
//! different cores share no lock and no written cache line. The node stays
//! 64 bytes (one more state bit, `SHARDED`); the table is fixed, as the
//! settle buckets' are (`settle.rs`). In front of its shard each thread
//! has one lock-free slot (`hot.rs`), which a registration tries first: a
//! `select!` turn then takes no lock at all.
//!
//! # Protocol
//!
//! A registration locks its shard and re-checks the node's error bits
//! under that lock before inserting. The cancel that makes the node done
//! sets the error bits with a read-modify-write and, if that returned
//! `SHARDED`, drains the node's entry from every shard, each under its
//! lock. Both sides' read-modify-writes are on the node's state word, so
//! one comes first: a marking after the error bits sees them and answers
//! ready; a marking before them is seen by the cancel, whose drain then
//! either finds the waker (registered before the drain locked that shard)
//! or is ordered before the registration by the shard lock, which then sees
//! the error bits. `loom_tree::sharded_waiters_are_not_lost` explores it.
//!
//! An entry lives while its node is live: emptied slabs keep a few slots,
//! and the node's drain (on cancel, or on drop for a node dropped live)
//! removes its entries from every shard.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::task::{Poll, Waker};

use super::{decode, hot, CancelNode, ERR_MASK, SHARDED};
use crate::error::Error;
use crate::loom::{lock, Mutex, Ordering};
use crate::slab::Slab;

/// Shards in the table: threads beyond this many share shards (and a lock).
const SHARDS: usize = 32;

/// The key bit that marks a waiter key as a shard's; the shard number sits
/// above it, the slab key above that.
const SHARD_KEY: usize = 1;
const SHARD_BITS: u32 = 5;
const _: () = assert!(SHARDS == 1 << SHARD_BITS);

/// A node's address: its entry's key.
pub(super) fn address(node: &CancelNode) -> usize {
    node as *const CancelNode as usize
}

/// Node addresses are 64-byte allocations, well spread above the low bits:
/// no hashing needed beyond dropping those.
#[derive(Default)]
struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }
    fn write_usize(&mut self, n: usize) {
        // Spread with a multiply (Fibonacci hashing): the table's buckets
        // are chosen by the high bits of the hash.
        self.0 = (n as u64 >> 6).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type Entries = HashMap<usize, Slab<Waker>, BuildHasherDefault<AddressHasher>>;

/// One shard, alone on its cache lines.
#[repr(align(128))]
struct Shard {
    waiters: Mutex<Entries>,
}

#[cfg(not(loom))]
fn shard(index: usize) -> &'static Shard {
    static TABLE: [Shard; SHARDS] = [const {
        Shard {
            waiters: Mutex::new(HashMap::with_hasher(BuildHasherDefault::new())),
        }
    }; SHARDS];
    &TABLE[index]
}

#[cfg(loom)]
fn shard(index: usize) -> &'static Shard {
    loom::lazy_static! {
        static ref TABLE: Vec<Shard> = (0..SHARDS)
            .map(|_| Shard { waiters: Mutex::new(HashMap::default()) })
            .collect();
    }
    &TABLE[index]
}

/// This thread's shard: threads take shards in turn as they first poll.
fn mine() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static MINE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    MINE.try_with(|mine| *mine).unwrap_or(0)
}

/// Whether `key` (of a `done()` future) is a shard's.
pub(super) fn is_shard_key(key: usize) -> bool {
    key & SHARD_KEY != 0
}

/// `key` for a node list's slab key: shard keys are odd, and a thread
/// slot's (`hot.rs`) end in `0b10`.
pub(super) fn list_key(slab_key: usize) -> usize {
    slab_key << 2
}

/// The slab key of a node-list `key`.
pub(super) fn list_slab_key(key: usize) -> usize {
    key >> 2
}

fn shard_key(shard: usize, slab_key: usize) -> usize {
    (slab_key << (SHARD_BITS + 1)) | (shard << 1) | SHARD_KEY
}

fn split(key: usize) -> (usize, usize) {
    ((key >> 1) & (SHARDS - 1), key >> (SHARD_BITS + 1))
}

/// Marks `node` as `SHARDED`; returns its error if it is done already.
pub(super) fn mark(node: &CancelNode) -> Option<Error> {
    decode(node.state.fetch_or(SHARDED, Ordering::AcqRel))
}

/// [`poll_done`](super::poll_done) for a `SHARDED` node: registers `waker`
/// in this thread's shard (or replaces it in the shard `key` names). The
/// thread's slot (`hot.rs`), in front of the shard, is the caller's to try.
pub(super) fn poll(node: &CancelNode, key: &mut Option<usize>, waker: &Waker) -> Poll<Error> {
    let (index, slab_key) = match *key {
        Some(key) => {
            let (index, slab_key) = split(key);
            (index, Some(slab_key))
        }
        None => (mine(), None),
    };
    let shard = shard(index);
    // Clone before locking (invariant 4), as the node list does.
    let mut fresh = slab_key.is_none().then(|| waker.clone());
    loop {
        let mut entries = lock(&shard.waiters);
        // The re-check that makes the protocol above work.
        if let Some(err) = decode(node.state.load(Ordering::Acquire)) {
            drop(entries);
            *key = None;
            drop(fresh);
            return Poll::Ready(err);
        }
        let slab = entries.entry(address(node)).or_default();
        let step = slab.register(slab_key, &mut fresh, waker);
        drop(entries);
        if step.finish(
            key,
            |inserted| shard_key(index, inserted),
            &mut fresh,
            waker,
        ) {
            return Poll::Pending;
        }
    }
}

/// Forgets a waiter registered by [`poll`].
pub(super) fn remove(node: &CancelNode, key: usize) {
    let (index, slab_key) = split(key);
    let mut entries = lock(&shard(index).waiters);
    let waker = entries
        .get_mut(&address(node))
        .and_then(|slab| slab.remove(slab_key));
    drop(entries);
    drop(waker);
}

/// Removes the entries of a node dropped live (the node was at `at`),
/// dropping their wakers.
#[cold]
#[inline(never)]
pub(super) fn forget(at: usize) {
    let mut wakers = Vec::new();
    drain_at(at, &mut wakers);
    drop(wakers);
}

/// Takes every waiter of `node` out of every shard and removes its entries:
/// on the cancel that made it done, and when it drops live.
#[cold]
#[inline(never)]
pub(super) fn drain(node: &CancelNode, wakers: &mut impl Extend<Waker>) {
    debug_assert!(
        node.state.load(Ordering::Relaxed) & (ERR_MASK | SHARDED) != 0,
        "ctx: internal error: draining a node that was never sharded"
    );
    drain_at(address(node), wakers);
}

/// [`drain`] by the address the entries are keyed by (a node moved out of
/// its allocation is no longer at it: `CancelNode::leave`).
fn drain_at(at: usize, wakers: &mut impl Extend<Waker>) {
    hot::drain_at(at, wakers);
    for index in 0..SHARDS {
        let mut entries = lock(&shard(index).waiters);
        let slab = entries.remove(&at);
        // Give memory back after a burst of sharded contexts: all of it
        // once no sharded context is left in this shard (the process is
        // back to its baseline), or the spare part once the table is less
        // than a quarter full (amortized).
        let (len, capacity) = (entries.len(), entries.capacity());
        if len == 0 || (capacity > 64 && len * 4 < capacity) {
            entries.shrink_to(len * 2);
        }
        drop(entries);
        if let Some(mut slab) = slab {
            wakers.extend(slab.take_all());
        }
    }
}

/// Waiters of `node` in the shards (for the census, feature `debug`).
#[cfg(any(test, feature = "debug"))]
pub(super) fn count(node: &CancelNode) -> usize {
    let at = address(node);
    entries(at).iter().map(|&(_, len)| len).sum::<usize>() + hot::count(at)
}

/// The shards holding an entry for the node at `address`, with its waiter
/// count in each.
#[cfg(any(test, feature = "debug"))]
fn entries(address: usize) -> Vec<(usize, usize)> {
    (0..SHARDS)
        .filter_map(|index| {
            let entries = lock(&shard(index).waiters);
            entries.get(&address).map(|slab| (index, slab.len()))
        })
        .collect()
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Poll, Wake, Waker};

    use super::{address, count, entries, is_shard_key};
    use crate::error::Error;
    use crate::tree::hot;
    use crate::tree::{cancel, poll_done, remove_waiter, CancelNode, Repr};

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn waker() -> (std::sync::Arc<Count>, Waker) {
        let count = std::sync::Arc::new(Count(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    /// Polls `node` from another thread while this one holds its lock: the
    /// poll finds it contended and goes to the shards.
    fn poll_contended(node: &std::sync::Arc<CancelNode>, waker: &Waker) -> Option<usize> {
        let held = node.lock();
        let key = std::thread::scope(|s| {
            s.spawn(|| {
                let mut key = None;
                assert!(poll_done(node, &mut key, waker).is_pending());
                key
            })
            .join()
            .unwrap()
        });
        drop(held);
        key
    }

    #[test]
    fn a_contended_poll_registers_in_a_slot_then_a_shard_and_the_cancel_wakes_them() {
        let _slots = hot::tests::a_slot_free();
        let node = CancelNode::new(&Repr::Background, None, 0);
        let (woken, first) = waker();
        // The polling thread's slot (`hot.rs`): it was empty.
        let key = poll_contended(&node, &first).unwrap();
        assert!(hot::is_key(key));
        assert_eq!(count(&node), 1);
        // Uncontended now, but the node stays sharded: a waiter on this
        // thread takes this thread's slot, and a second one its shard.
        let (woken_too, second) = waker();
        let mut other = None;
        assert!(poll_done(&node, &mut other, &second).is_pending());
        assert!(hot::is_key(other.unwrap()));
        let (woken_three, third) = waker();
        let mut sharded = None;
        assert!(poll_done(&node, &mut sharded, &third).is_pending());
        assert!(is_shard_key(sharded.unwrap()));
        assert_eq!(count(&node), 3);
        // Polling again with the same waker changes nothing, here or there.
        let mut again = Some(key);
        assert!(poll_done(&node, &mut again, &first).is_pending());
        assert_eq!((again, count(&node)), (Some(key), 3));
        let mut again = sharded;
        assert!(poll_done(&node, &mut again, &third).is_pending());
        assert_eq!((again, count(&node)), (sharded, 3));

        assert!(cancel(&node, Error::Canceled, None));
        for woken in [&woken, &woken_too, &woken_three] {
            assert_eq!(woken.0.load(Ordering::SeqCst), 1);
        }
        // The cancel emptied the slots and removed the node's entries from
        // every shard.
        assert!(entries(address(&node)).is_empty());
        assert_eq!(count(&node), 0);
        let mut key = Some(key);
        assert_eq!(
            poll_done(&node, &mut key, &first),
            Poll::Ready(Error::Canceled)
        );
        assert_eq!(key, None);
        remove_waiter(&node, other.unwrap());
        remove_waiter(&node, sharded.unwrap());
    }

    #[test]
    fn a_slot_re_polled_with_another_waker_wakes_only_that_one() {
        let _slots = hot::tests::a_slot_free();
        let node = CancelNode::new(&Repr::Background, None, 0);
        let (woken, first) = waker();
        let mut key = poll_contended(&node, &first);
        assert!(hot::is_key(key.unwrap()));
        // Polled again (on this thread) by another task: the first task's
        // waker goes, the second's is registered.
        let (woken_too, second) = waker();
        assert!(poll_done(&node, &mut key, &second).is_pending());
        assert_eq!(count(&node), 1);
        assert!(cancel(&node, Error::Canceled, None));
        assert_eq!(woken.0.load(Ordering::SeqCst), 0);
        assert_eq!(woken_too.0.load(Ordering::SeqCst), 1);
        assert_eq!(count(&node), 0);
    }

    #[test]
    fn a_removed_waiter_frees_its_slot_for_the_next() {
        let _slots = hot::tests::a_slot_free();
        let node = CancelNode::new(&Repr::Background, None, 0);
        let (woken, first) = waker();
        let _ = poll_contended(&node, &first);
        for _ in 0..3 {
            let mut key = None;
            assert!(poll_done(&node, &mut key, &first).is_pending());
            assert!(hot::is_key(key.unwrap()), "the slot was given back");
            remove_waiter(&node, key.unwrap());
        }
        // Its clones were dropped: left are the count's own handle, `first`
        // and the other thread's registered clone.
        assert_eq!(std::sync::Arc::strong_count(&woken), 3);
        assert_eq!(count(&node), 1);
    }

    #[test]
    fn a_dropped_done_leaves_its_shard_and_a_dropped_node_its_entries() {
        let node = CancelNode::new(&Repr::Background, None, 0);
        let (woken, first) = waker();
        let key = poll_contended(&node, &first).unwrap();
        remove_waiter(&node, key);
        assert_eq!(count(&node), 0);
        // A waiter whose future is forgotten stays until the node goes.
        let mut forgotten = None;
        assert!(poll_done(&node, &mut forgotten, &first).is_pending());
        assert_eq!(count(&node), 1);
        let at = address(&node);
        drop(node);
        assert!(entries(at).is_empty(), "no entry outlives its node");
        assert_eq!(woken.0.load(Ordering::SeqCst), 0);
    }

    /// As above, with the node freed by its child's drop (the iterative
    /// `drop_chain`): the node must be dropped where it lives, or its
    /// entries are looked for at the wrong address and stay.
    #[test]
    fn a_node_freed_as_a_parent_leaves_no_entries() {
        let node = CancelNode::new(&Repr::Background, None, 0);
        let (woken, first) = waker();
        // Registered, and the key forgotten (a `Done` forgotten).
        let _ = poll_contended(&node, &first).unwrap();
        let at = address(&node);
        let child = CancelNode::new(&Repr::Cancel(node.clone()), None, 0);
        // Its guard's drop: unlinked from the parent, which stays live.
        crate::tree::release(child.clone());
        drop(node);
        // The child's parent link is the last handle on the node.
        drop(child);
        assert!(entries(at).is_empty(), "no entry outlives its node");
        assert_eq!(woken.0.load(Ordering::SeqCst), 0);
    }
}
