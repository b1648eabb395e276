//! Each thread's one lock-free waiter slot, in front of its shard.
//!
//! A `select!` turn on a contended (`SHARDED`) context registers its waker
//! and, a moment later, removes it. In the thread's shard that is two lock
//! round trips (four read-modify-writes) and a map lookup each way, about
//! 300 instructions: it took 20 ns a turn on two cores, where Go's
//! non-blocking `select` on `ctx.Done()` takes 4 to 6 (BENCHMARKS.md,
//! `ContextCancelDone`). So each thread also owns one slot, which a
//! registration takes with one read-modify-write and the thread's own
//! removal frees with one (9 ns a turn); the shard serves what the slot
//! cannot (a second waiter on the same thread, a thread without a slot).
//!
//! Why not a crate: what is needed is a slot a cancel on another core can
//! find and empty, in the tree's own protocol with the node's state word;
//! the lock-free queues of crossbeam or tokio's `Notify` solve other
//! problems (and tokio's takes a lock).
//!
//! # Protocol
//!
//! A slot's `state` is `EMPTY`, `DRAINED` (empty, as a cancel left it), a
//! node's address (a waker for that node is in `waker`), or `TAKING`
//! (someone has the waker cell to themselves).
//!
//! - Only the thread that owns the slot moves it out of `EMPTY` or
//!   `DRAINED`: it clones the waker, sees the slot empty (acquire: whoever
//!   emptied it is done with the cell), writes the cell and publishes the
//!   address with a swap, then loads the node's state. If the node is done
//!   by then, it takes its registration back and answers ready; if the
//!   cancel took it (`DRAINED`), it answers pending and the cancel's wake
//!   follows.
//! - Anyone else (the cancel, a removal, a re-poll, on any thread) gets the
//!   cell by a compare-exchange from the address to `TAKING`, moves the
//!   waker out or looks at it, and ends the hold with a swap: `EMPTY`,
//!   `DRAINED` (the cancel) or the address again. The owner removing its
//!   own registration (a `select!` turn dropping its `done()`) goes
//!   straight from the address to `EMPTY` with one compare-exchange: from
//!   `EMPTY` only the owner itself can take the cell.
//! - The cancel sets the node's error bits with a read-modify-write, then
//!   reads every claimed slot with a read-modify-write too (`fetch_add(0)`),
//!   not a load. Two read-modify-writes of one slot are ordered: if the
//!   cancel's comes first, the registration's swap reads from it and so
//!   sees the error bits in its load that follows (the registration gives
//!   up); otherwise the cancel sees the address and takes the waker. The
//!   same goes for the count of claimed slots, which a thread raises
//!   (`fetch_max`) before its first registration and the cancel reads with
//!   a read-modify-write before it scans.
//! - No user code (a waker's `clone` or `drop`) runs while a slot is
//!   `TAKING`, and no lock is taken, so a hold lasts a few instructions. A
//!   cancel that finds a slot `TAKING` skips it. That is sound because the
//!   hold ends with a swap, which reads from the cancel's read-modify-write:
//!   the holder, and the owner whose next swap reads from the holder's, see
//!   the node done and do not stay registered.
//! - A slot is found by (slot number, node address), so a future whose
//!   registration the cancel took keeps a key that matches the next
//!   registration of the same node in that slot, and its drop or re-poll
//!   can take that one. Only a registration of a done node can be taken
//!   so, and it is taken during its own re-check: that re-check waits out
//!   a `TAKING` and, on the owner's thread, tells `DRAINED` (the cancel
//!   has the waker, which it wakes: answer pending) from anything else (a
//!   stale key took it: answer ready). A re-check off the owner's thread
//!   (a re-poll) answers ready on `DRAINED` too: the owner may have
//!   registered another node since, whose cancel left it; at worst the
//!   future is woken once after it answered.
//!   Keys are cleared before a waker is dropped, so a panicking drop
//!   leaves no stale key on a live context.
//!
//! `loom_tree::sharded_waiters_are_not_lost`,
//! `hot_slot_repoll_and_removal_race_the_cancel` and
//! `a_forgotten_waiter_is_dropped_with_its_live_context`, and this module's
//! `loom_models`, explore it.

use std::task::{Poll, Waker};

use super::{decode, shards::address, CancelNode};
use crate::error::Error;
use crate::loom::{AtomicBool, AtomicUsize, Ordering, UnsafeCell};

/// Slots in the table: threads beyond this many (alive at once) use their
/// shard only.
#[cfg(not(loom))]
const SLOTS: usize = 64;
#[cfg(loom)]
const SLOTS: usize = 4;

const _: () = assert!(SLOTS.is_power_of_two());

const EMPTY: usize = 0;
/// `EMPTY`, as left by the cancel's drain: to the owner it is `EMPTY`; to
/// a registration re-checking (`check_done`) it says that the cancel, not
/// a future whose key that cancel left stale, took its waker.
const DRAINED: usize = 2;

/// Whether the owner may write the cell (the slot is `EMPTY` or `DRAINED`).
fn free(state: usize) -> bool {
    state == EMPTY || state == DRAINED
}
/// Node addresses are 64-byte aligned and never 1.
const TAKING: usize = 1;

/// The low bits of a `done()` future's key that mark it as a slot's (the
/// slot number sits above them): `0b?1` is a shard's, `0b00` a node list's.
const HOT_TAG: usize = 0b10;

/// One thread's slot, alone on its cache lines.
#[repr(align(128))]
struct Slot {
    /// `EMPTY`, a node's address, or `TAKING` (see the protocol above).
    state: AtomicUsize,
    /// Whether a live thread owns the slot.
    owned: AtomicBool,
    /// The registered waker while `state` is an address; `None` otherwise.
    waker: UnsafeCell<Option<Waker>>,
}

// SAFETY: `waker` is only touched by whoever the protocol above gives the
// cell to: the owning thread while `state` is `EMPTY`, or the one that
// moved `state` from an address to `TAKING`. `Waker` is `Send + Sync`.
unsafe impl Sync for Slot {}

/// A fresh slot (a macro: a `const fn` for std's static table, but loom's
/// atomics are made at run time).
macro_rules! slot {
    () => {
        Slot {
            state: AtomicUsize::new(EMPTY),
            owned: AtomicBool::new(false),
            waker: UnsafeCell::new(None),
        }
    };
}

impl Slot {
    /// Puts `waker` in the cell. The caller is the owner and saw `EMPTY`.
    fn put(&self, waker: Waker) {
        // SAFETY: the owner alone moves a slot out of `EMPTY`, and its
        // acquire load of `EMPTY` ordered the last holder's use of the cell
        // before this write; nobody else touches the cell until the swap
        // that publishes it.
        self.waker.with_mut(|cell| unsafe { *cell = Some(waker) });
    }

    /// Takes the waker out. The caller moved `state` to `TAKING`, or owns
    /// the slot and moved it to `EMPTY`.
    fn take(&self) -> Option<Waker> {
        // SAFETY: the compare-exchange to `TAKING` (acquire) gave the cell
        // to the caller alone, after the publishing swap (release). Or the
        // caller is the owner, which alone moves the slot out of `EMPTY`
        // and wrote the cell itself: nobody else can reach the cell again
        // before the owner's next registration.
        self.waker.with_mut(|cell| unsafe { (*cell).take() })
    }

    /// [`take_if`](Slot::take_if) by the slot's owner (`index` is this
    /// thread's slot): one read-modify-write, straight to `EMPTY`, with no
    /// `TAKING` hold (see [`take`](Slot::take)).
    fn take_own(&self, at: usize) -> Option<Waker> {
        self.state
            .compare_exchange(at, EMPTY, Ordering::AcqRel, Ordering::Relaxed)
            .ok()?;
        self.take()
    }

    /// Whether the waker in the cell wakes the same task as `waker`. The
    /// caller moved `state` to `TAKING`.
    fn holds(&self, waker: &Waker) -> bool {
        // SAFETY: as for `take`.
        self.waker
            .with_mut(|cell| unsafe { (*cell).as_ref().is_some_and(|held| held.will_wake(waker)) })
    }

    /// Takes the registration for the node at `at` out of the slot, if it
    /// is still there; the caller drops the waker (unlocked).
    fn take_if(&self, at: usize) -> Option<Waker> {
        self.take_from(at, EMPTY).ok().flatten()
    }

    /// [`take_if`](Slot::take_if), leaving `to` (`EMPTY`, or `DRAINED` for
    /// the cancel); `Err` with the state found when the registration is
    /// not there.
    fn take_from(&self, at: usize, to: usize) -> Result<Option<Waker>, usize> {
        self.state
            .compare_exchange(at, TAKING, Ordering::Acquire, Ordering::Relaxed)?;
        let waker = self.take();
        self.release(to);
        Ok(waker)
    }

    /// Ends a `TAKING` hold with `state`: a read-modify-write, so that it
    /// reads from a cancel's read-modify-write made during the hold, and
    /// whoever reads it next (the owner's swap) sees that cancel.
    fn release(&self, state: usize) {
        self.state.swap(state, Ordering::AcqRel);
    }
}

#[cfg(not(loom))]
fn table() -> &'static [Slot; SLOTS] {
    static TABLE: [Slot; SLOTS] = [const { slot!() }; SLOTS];
    &TABLE
}

#[cfg(loom)]
fn table() -> &'static [Slot; SLOTS] {
    loom::lazy_static! {
        static ref TABLE: [Slot; SLOTS] = std::array::from_fn(|_| slot!());
    }
    &TABLE
}

#[cfg(not(loom))]
fn claimed() -> &'static AtomicUsize {
    static CLAIMED: AtomicUsize = AtomicUsize::new(0);
    &CLAIMED
}

#[cfg(loom)]
fn claimed() -> &'static AtomicUsize {
    loom::lazy_static! {
        static ref CLAIMED: AtomicUsize = AtomicUsize::new(0);
    }
    &CLAIMED
}

/// This thread's slot: `UNCLAIMED` until its first registration, then the
/// slot number, or `NO_SLOT` (the table was full, or the thread is ending).
/// A `const` thread-local without a destructor, so reading it is one load.
const UNCLAIMED: usize = usize::MAX;
const NO_SLOT: usize = usize::MAX - 1;

#[cfg(not(loom))]
std::thread_local! {
    static MINE: std::cell::Cell<usize> = const { std::cell::Cell::new(UNCLAIMED) };
    static CLAIM: Claim = const { Claim };
}

#[cfg(loom)]
loom::thread_local! {
    static MINE: std::cell::Cell<usize> = std::cell::Cell::new(UNCLAIMED);
}

/// Gives this thread's slot back when the thread ends (a registration
/// still in it stays until its future or its node removes it).
#[cfg(not(loom))]
struct Claim;

// Not under loom: its thread-locals are dropped after the model's
// execution ends, when the table's atomics are gone (and each execution
// starts with a fresh table anyway).
#[cfg(not(loom))]
impl Drop for Claim {
    fn drop(&mut self) {
        let index = MINE.replace(NO_SLOT);
        if index < SLOTS {
            table()[index].owned.store(false, Ordering::Release);
        }
    }
}

/// Claims a slot for this thread: rather one left empty (a slot an ended
/// thread left a registration in, its future moved to another thread,
/// serves nobody until that future is dropped).
#[cold]
fn claim() -> usize {
    // The guard first: a thread already ending cannot have one, and gets
    // no slot.
    #[cfg(not(loom))]
    if CLAIM.try_with(|_| ()).is_err() {
        return NO_SLOT;
    }
    let take = |slot: &Slot| {
        slot.owned
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    };
    let index = (table().iter())
        .position(|slot| free(slot.state.load(Ordering::Relaxed)) && take(slot))
        .or_else(|| table().iter().position(take));
    match index {
        Some(index) => {
            // Before the first registration (see the protocol).
            claimed().fetch_max(index + 1, Ordering::AcqRel);
            index
        }
        None => NO_SLOT,
    }
}

/// This thread's slot number, if it has one.
#[inline]
fn mine() -> Option<usize> {
    let index = MINE.try_with(|mine| {
        if mine.get() == UNCLAIMED {
            mine.set(claim());
        }
        mine.get()
    });
    index.ok().filter(|&index| index < SLOTS)
}

/// Whether `key` (of a `done()` future) is a slot's.
#[inline]
pub(super) fn is_key(key: usize) -> bool {
    key & 0b11 == HOT_TAG
}

fn key_of(index: usize) -> usize {
    (index << 2) | HOT_TAG
}

/// Registers `waker` for the `SHARDED` `node` in this thread's slot.
/// `None` when the slot is taken or the thread has none: use the shard.
#[inline]
pub(super) fn register(
    node: &CancelNode,
    key: &mut Option<usize>,
    waker: &Waker,
) -> Option<Poll<Error>> {
    let index = mine()?;
    let slot = &table()[index];
    if !free(slot.state.load(Ordering::Relaxed)) {
        return None;
    }
    // User code, so before the slot is ours to write; it could even have
    // polled a `done()` of its own on this thread, which the check below
    // would see.
    let fresh = waker.clone();
    if !free(slot.state.load(Ordering::Acquire)) {
        drop(fresh);
        return None;
    }
    slot.put(fresh);
    let at = address(node);
    // The registration's read-modify-write (see the protocol).
    slot.state.swap(at, Ordering::AcqRel);
    Some(check(node, index, at, key, true))
}

/// The registration's half of the protocol, once the swap that published
/// the waker for the node at `at` in slot `index` is done.
#[inline]
fn check(
    node: &CancelNode,
    index: usize,
    at: usize,
    key: &mut Option<usize>,
    owner: bool,
) -> Poll<Error> {
    match decode(node.state.load(Ordering::Acquire)) {
        None => {
            *key = Some(key_of(index));
            Poll::Pending
        }
        Some(err) => check_done(err, index, at, key, owner),
    }
}

/// [`check`] once the node is done.
#[cold]
fn check_done(
    err: Error,
    index: usize,
    at: usize,
    key: &mut Option<usize>,
    owner: bool,
) -> Poll<Error> {
    let slot = &table()[index];
    #[cfg(not(loom))]
    let mut waits = 0u32;
    loop {
        match slot.take_from(at, EMPTY) {
            // Done meanwhile: taken back, so nobody wakes it.
            Ok(waker) => {
                *key = None;
                drop(waker);
                return Poll::Ready(err);
            }
            // Held for a few instructions (the cancel, or a stale key's
            // future that may put it back): wait, then look again.
            Err(TAKING) => {
                #[cfg(loom)]
                loom::thread::yield_now();
                // A holder preempted on this core, at a lower real-time
                // priority than ours, gets the core back only if we sleep.
                #[cfg(not(loom))]
                {
                    waits += 1;
                    if waits < 64 {
                        std::thread::yield_now();
                    } else {
                        std::thread::sleep(std::time::Duration::from_micros(50));
                    }
                }
            }
            // The cancel has the waker and wakes it: wait for that rather
            // than answer now (a first poll that answered ready is not
            // woken afterwards).
            // Only for the owner, which cannot register anything else in
            // between: a re-poll (any thread) may see a `DRAINED` left by
            // the cancel of another node that the owner registered since.
            // A re-poll is not a first poll: ready, and at worst one
            // spurious wake.
            Err(DRAINED) if owner => {
                *key = Some(key_of(index));
                return Poll::Pending;
            }
            // A future whose key the cancel left stale (the same node, the
            // same slot) took it, and dropped it: nobody wakes it, answer.
            Err(_) => {
                *key = None;
                return Poll::Ready(err);
            }
        }
    }
}

/// A poll of a live `node` whose future is registered in the slot `key`
/// names: keeps the registration if it is for the same task, else moves it
/// out (the caller registers afresh). `None` once it is gone (`key` is
/// cleared).
pub(super) fn repoll(
    node: &CancelNode,
    key: &mut Option<usize>,
    waker: &Waker,
) -> Option<Poll<Error>> {
    let index =
        (key.expect("ctx: internal error: re-polling an unregistered waiter") >> 2) & (SLOTS - 1);
    let slot = &table()[index];
    let at = address(node);
    if slot
        .state
        .compare_exchange(at, TAKING, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        // Only the cancel that made the node done takes a registration
        // from under its future.
        *key = None;
        return None;
    }
    if slot.holds(waker) {
        // Give it back, and re-check as a registration does: a cancel that
        // found the slot `TAKING` skipped it.
        slot.release(at);
        return Some(check(node, index, at, key, false));
    }
    // A different task: out of the slot, then registered like a new waiter.
    let old = slot.take();
    slot.release(EMPTY);
    // Cleared before the drop (user code, which may panic).
    *key = None;
    drop(old);
    None
}

/// Forgets a waiter registered by [`register`].
#[inline]
pub(super) fn remove(node: &CancelNode, key: usize) {
    let index = (key >> 2) & (SLOTS - 1);
    let slot = &table()[index];
    let at = address(node);
    // Dropped on the thread that registered it (a `select!` turn): the
    // owner's way out, one read-modify-write.
    let waker = if MINE.try_with(std::cell::Cell::get).ok() == Some(index) {
        slot.take_own(at)
    } else {
        slot.take_if(at)
    };
    drop(waker);
}

/// Takes every registration for the node at `at` out of the slots: on the
/// cancel that made it done (after its read-modify-write of the node's
/// state), and when it drops live.
pub(super) fn drain_at(at: usize, wakers: &mut impl Extend<Waker>) {
    // Read-modify-writes, not loads (see the protocol).
    let claimed = claimed().fetch_add(0, Ordering::AcqRel);
    for slot in &table()[..claimed] {
        if slot.state.fetch_add(0, Ordering::AcqRel) == at {
            wakers.extend(slot.take_from(at, DRAINED).ok().flatten());
        }
    }
}

/// Registrations for the node at `at` (for the census, feature `debug`).
#[cfg(any(test, feature = "debug"))]
pub(super) fn count(at: usize) -> usize {
    let claimed = claimed().load(Ordering::Acquire);
    table()[..claimed]
        .iter()
        .filter(|slot| slot.state.load(Ordering::Acquire) == at)
        .count()
}

/// A live node marked `SHARDED`, as a contended poll leaves it.
#[cfg(test)]
fn sharded_node() -> crate::loom::Arc<CancelNode> {
    let node = CancelNode::new(&super::Repr::Background, None, 0);
    assert!(super::shards::mark(&node).is_none());
    node
}

/// Loom models of the stale keys (see the protocol): a `done()` future's
/// key names a slot, not a registration, so a key left stale by the
/// cancel's drain matches the next registration for the same node in that
/// slot. Run by `.ci/run` (`--lib tree::hot::loom_models`).
#[cfg(all(test, loom))]
mod loom_models {
    use std::sync::atomic::{AtomicUsize, Ordering as StdOrdering};
    use std::task::{Wake, Waker};

    use loom::thread;

    use super::is_key;
    use crate::error::Error;
    use crate::tree::{cancel, poll_done, remove_waiter, CancelNode};

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, StdOrdering::SeqCst);
        }
    }

    fn waker() -> (std::sync::Arc<Count>, Waker) {
        let count = std::sync::Arc::new(Count(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(3);
        builder.check(f);
    }

    /// F1 registered in this thread's slot and moved to another thread,
    /// where `stale` gets its key, while the context is canceled and this
    /// thread polls a fresh F2 of another task: if F2 answers pending, it
    /// is woken.
    fn stale_key_model(stale: fn(crate::loom::Arc<CancelNode>, usize)) {
        model(move || {
            let node = super::sharded_node();
            let (_one, w1) = waker();
            let mut k1 = None;
            assert!(poll_done(&node, &mut k1, &w1).is_pending());
            let k1 = k1.unwrap();
            assert!(is_key(k1));
            let elsewhere = thread::spawn({
                let node = node.clone();
                move || stale(node, k1)
            });
            let canceler = thread::spawn({
                let node = node.clone();
                move || {
                    cancel(&node, Error::Canceled, None);
                }
            });
            let (two, w2) = waker();
            let mut k2 = None;
            let first = poll_done(&node, &mut k2, &w2);
            elsewhere.join().unwrap();
            canceler.join().unwrap();
            if first.is_pending() {
                assert_eq!(two.0.load(StdOrdering::SeqCst), 1, "lost wake-up");
            }
        });
    }

    /// F1 dropped on the other thread (`Done::drop`), not re-polled.
    #[test]
    fn a_stale_key_dropped_elsewhere_loses_no_wake_up() {
        stale_key_model(|node, k1| remove_waiter(&node, k1));
    }

    /// F1 re-polled on the other thread by another task, then dropped.
    #[test]
    fn a_stale_key_re_polled_elsewhere_loses_no_wake_up() {
        stale_key_model(|node, k1| {
            let (_three, w3) = waker();
            let mut k1 = Some(k1);
            let _ = poll_done(&node, &mut k1, &w3);
            if let Some(k1) = k1 {
                remove_waiter(&node, k1);
            }
        });
    }

    /// A re-poll on another thread whose waker `will_wake` the
    /// registration in the slot (here one waker shared by two pollers)
    /// runs `check_done` as a non-owner. The owner can take its own
    /// registration back, register another node M and have M's cancel
    /// leave `DRAINED` before the non-owner's compare-exchange: it reads
    /// that `DRAINED` as "the cancel of N has my waker" and answers pending
    /// on a done N, woken by nobody.
    #[test]
    fn a_re_poll_on_another_thread_after_another_nodes_cancel_loses_no_wake_up() {
        model(|| {
            let (n, m) = (super::sharded_node(), super::sharded_node());
            // F0, registered here with its first task's waker.
            let (_zero, w0) = waker();
            let mut k0 = None;
            assert!(poll_done(&n, &mut k0, &w0).is_pending());
            assert!(is_key(k0.unwrap()));
            // W: the waker shared by the two pollers.
            let (shared, w) = waker();
            let canceler = thread::spawn({
                let n = n.clone();
                move || {
                    cancel(&n, Error::Canceled, None);
                }
            });
            // F0 moved to another thread, re-polled there with W.
            let repoller = thread::spawn({
                let (n, w) = (n.clone(), w.clone());
                move || {
                    let mut k0 = k0;
                    let poll = poll_done(&n, &mut k0, &w);
                    (poll, k0)
                }
            });
            // F2 here, with W; then another task's F3 on M, and M's cancel.
            let mut k2 = None;
            let _ = poll_done(&n, &mut k2, &w);
            let (_b, wb) = waker();
            let mut k3 = None;
            let _ = poll_done(&m, &mut k3, &wb);
            cancel(&m, Error::Canceled, None);
            let (poll, k0) = repoller.join().unwrap();
            canceler.join().unwrap();
            if poll.is_pending() {
                assert!(
                    shared.0.load(StdOrdering::SeqCst) > 0,
                    "lost wake-up: F0 pending on a done node, W never woken"
                );
            }
            for (node, key) in [(&n, k0), (&n, k2), (&m, k3)] {
                if let Some(key) = key {
                    remove_waiter(node, key);
                }
            }
        });
    }
}

/// Real threads: re-entrant wakers, slots of ended threads, address reuse,
/// panicking waker drops.
#[cfg(all(test, not(loom)))]
pub(super) mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering as StdOrdering};
    use std::sync::Arc;
    use std::task::{Wake, Waker};

    use super::is_key;
    use crate::error::Error;
    use crate::tree::{cancel, poll_done, remove_waiter, shards, CancelNode, Repr};

    #[derive(Default)]
    struct Count {
        woken: AtomicUsize,
        panic_on_drop: AtomicBool,
    }

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.woken.fetch_add(1, StdOrdering::SeqCst);
        }
    }

    impl Drop for Count {
        fn drop(&mut self) {
            if self.panic_on_drop.load(StdOrdering::SeqCst) {
                panic!("test: a waker's drop panics");
            }
        }
    }

    fn waker() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count::default());
        (count.clone(), Waker::from(count))
    }

    /// A waker whose first `clone` polls another `done()` of the same
    /// context on the same thread (it takes the slot in between the
    /// registration's two loads): both are registered, both woken, and no
    /// clone is left once both are removed.
    #[test]
    fn a_waker_whose_clone_polls_done_lets_it_take_the_slot_and_both_are_woken() {
        let _slots = a_slot_free();
        use std::sync::Mutex;
        use std::task::{RawWaker, RawWakerVTable};
        struct Reentrant {
            node: crate::loom::Arc<CancelNode>,
            inner_key: Mutex<Option<usize>>,
            inner: Waker,
            clones: AtomicUsize,
            wakes: AtomicUsize,
        }
        static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake_by_ref, drop_raw);
        unsafe fn clone(data: *const ()) -> RawWaker {
            let this = unsafe { &*(data as *const Reentrant) };
            unsafe { Arc::increment_strong_count(data as *const Reentrant) };
            if this.clones.fetch_add(1, StdOrdering::SeqCst) == 0 {
                let mut key = this.inner_key.lock().unwrap();
                assert!(poll_done(&this.node, &mut key, &this.inner).is_pending());
                assert!(is_key(key.unwrap()), "the inner poll took the slot");
            }
            RawWaker::new(data, &VTABLE)
        }
        unsafe fn wake(data: *const ()) {
            unsafe { wake_by_ref(data) };
            unsafe { drop_raw(data) };
        }
        unsafe fn wake_by_ref(data: *const ()) {
            let this = unsafe { &*(data as *const Reentrant) };
            this.wakes.fetch_add(1, StdOrdering::SeqCst);
        }
        unsafe fn drop_raw(data: *const ()) {
            unsafe { Arc::decrement_strong_count(data as *const Reentrant) };
        }

        let node = super::sharded_node();
        let (inner_count, inner) = waker();
        let this = Arc::new(Reentrant {
            node: node.clone(),
            inner_key: Mutex::new(None),
            inner,
            clones: AtomicUsize::new(0),
            wakes: AtomicUsize::new(0),
        });
        let outer = unsafe {
            Waker::from_raw(RawWaker::new(
                Arc::into_raw(this.clone()) as *const (),
                &VTABLE,
            ))
        };
        let mut key = None;
        assert!(poll_done(&node, &mut key, &outer).is_pending());
        assert!(
            shards::is_shard_key(key.unwrap()),
            "the outer went to the shard"
        );
        assert!(cancel(&node, Error::Canceled, None));
        assert_eq!(this.wakes.load(StdOrdering::SeqCst), 1);
        assert_eq!(inner_count.woken.load(StdOrdering::SeqCst), 1);
        remove_waiter(&node, key.unwrap());
        let inner_key = this.inner_key.lock().unwrap().take();
        remove_waiter(&node, inner_key.unwrap());
        drop(outer);
        assert_eq!(
            Arc::strong_count(&this),
            1,
            "a clone of the outer waker was kept"
        );
    }

    /// A thread ends with a registration in its slot (its future moved to
    /// another thread); once every other slot is owned, a new thread claims
    /// that slot, drops the moved future there (the owner's way out), then
    /// registers in it; the cancel wakes it and no clone is kept.
    #[test]
    fn a_slot_left_registered_by_an_ended_thread_is_claimed_and_reused() {
        let _table = every_slot();
        let node = super::sharded_node();
        let (first_count, first) = waker();
        let (index, moved) = std::thread::scope(|s| {
            s.spawn(|| {
                let mut key = None;
                assert!(poll_done(&node, &mut key, &first).is_pending());
                (super::MINE.with(|mine| mine.get()), key.unwrap())
            })
            .join()
            .unwrap()
        });
        assert!(index < super::SLOTS && is_key(moved));
        // Owners for every other slot (some may be owned by other tests).
        let hold = std::sync::Barrier::new(super::SLOTS + 1);
        let (count, waker_n) = waker();
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..super::SLOTS)
                .map(|_| {
                    let (node, hold, waker_n) = (&node, &hold, &waker_n);
                    s.spawn(move || {
                        let mine = super::mine();
                        let mut key = None;
                        if mine == Some(index) {
                            // The claimer: the moved future's drop, here.
                            remove_waiter(node, moved);
                            assert!(poll_done(node, &mut key, waker_n).is_pending());
                            assert_eq!(key.map(|k| (k >> 2) & (super::SLOTS - 1)), Some(index));
                        }
                        hold.wait();
                        hold.wait();
                        if let Some(key) = key {
                            remove_waiter(node, key);
                        }
                        mine == Some(index)
                    })
                })
                .collect();
            hold.wait();
            assert!(cancel(&node, Error::Canceled, None));
            hold.wait();
            let claimed: usize = handles
                .into_iter()
                .map(|h| h.join().unwrap() as usize)
                .sum();
            assert_eq!(claimed, 1, "one thread claimed the ended thread's slot");
        });
        assert_eq!(count.woken.load(StdOrdering::SeqCst), 1, "lost wake-up");
        assert_eq!(first_count.woken.load(StdOrdering::SeqCst), 0);
        drop((first, waker_n));
        assert_eq!(Arc::strong_count(&first_count), 1, "a waker was kept");
        assert_eq!(Arc::strong_count(&count), 1, "a waker was kept");
    }

    /// Emulates an allocator handing a just-freed block to the next
    /// allocation (what a thread cache does), and pauses the freeing thread
    /// right after the free: disarmed, it passes everything to `System`.
    mod reuse {
        use std::alloc::{GlobalAlloc, Layout, System};
        use std::cell::Cell;
        use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

        pub(super) static WATCH: AtomicUsize = AtomicUsize::new(0);
        pub(super) static FREED: AtomicBool = AtomicBool::new(false);
        pub(super) static GO: AtomicBool = AtomicBool::new(false);
        static STASHED: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
        static STASHED_SIZE: AtomicUsize = AtomicUsize::new(0);
        std::thread_local! {
            pub(super) static TAKER: Cell<bool> = const { Cell::new(false) };
        }

        pub(super) struct Hook;

        unsafe impl GlobalAlloc for Hook {
            unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
                if STASHED_SIZE.load(Ordering::Acquire) == layout.size()
                    && TAKER.try_with(Cell::get).unwrap_or(false)
                {
                    let ptr = STASHED.swap(std::ptr::null_mut(), Ordering::AcqRel);
                    if !ptr.is_null() {
                        STASHED_SIZE.store(0, Ordering::Release);
                        return ptr;
                    }
                }
                unsafe { System.alloc(layout) }
            }

            unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
                let at = WATCH.load(Ordering::Acquire);
                let start = ptr as usize;
                if at != 0 && start <= at && at < start + layout.size() {
                    WATCH.store(0, Ordering::Release);
                    // Freed: the block goes to the next allocation of its size.
                    STASHED.store(ptr, Ordering::Release);
                    STASHED_SIZE.store(layout.size(), Ordering::Release);
                    FREED.store(true, Ordering::Release);
                    while !GO.load(Ordering::Acquire) {
                        std::thread::yield_now();
                    }
                    return;
                }
                unsafe { System.dealloc(ptr, layout) }
            }
        }

        #[global_allocator]
        static HOOK: Hook = Hook;
    }

    /// ABA on a node's address: `drop_chain` frees a live `SHARDED` parent
    /// (`Arc::try_unwrap`) before `leave(at)` forgets what is keyed by its
    /// old address. A node allocated in between at that address, and
    /// registered in a slot, loses its waiter to the old node's `forget`.
    #[test]
    fn a_parent_freed_by_drop_chain_leaves_a_new_node_at_its_address_its_waiter() {
        let _slots = a_slot_free();
        use std::sync::atomic::{AtomicBool as B, Ordering as O};
        let x = super::sharded_node();
        let at = shards::address(&x);
        let child = CancelNode::new(&Repr::Cancel(x.clone()), None, 0);
        // The child's guard: unlinked from its parent, which stays live.
        crate::tree::release(child.clone());
        drop(x);
        let _: &B = &reuse::GO;
        reuse::WATCH.store(at, O::Release);
        // The child's last handle: `drop_chain` frees the parent.
        let dropper = std::thread::spawn(move || drop(child));
        while !reuse::FREED.load(O::Acquire) {
            std::thread::yield_now();
        }
        reuse::TAKER.with(|taker| taker.set(true));
        let y = CancelNode::new(&Repr::Background, None, 0);
        reuse::TAKER.with(|taker| taker.set(false));
        assert_eq!(shards::address(&y), at, "the freed parent's block");
        assert!(shards::mark(&y).is_none());
        let (woken, w) = waker();
        let mut key = None;
        assert!(poll_done(&y, &mut key, &w).is_pending());
        assert!(is_key(key.unwrap()));
        reuse::GO.store(true, O::Release);
        dropper.join().unwrap();
        assert!(cancel(&y, Error::Canceled, None));
        assert_eq!(woken.woken.load(StdOrdering::SeqCst), 1, "lost wake-up");
    }

    /// A re-poll by another task whose old waker's drop panics leaves the
    /// future's key naming the slot it no longer holds; the next waiter on
    /// that thread takes the slot, the stale future's drop on another
    /// thread takes that waiter's registration, and the cancel never wakes
    /// it. The context is live throughout: no race with the cancel needed.
    #[test]
    fn a_panicking_waker_drop_in_a_re_poll_leaves_no_stale_key() {
        let _slots = a_slot_free();
        let node = super::sharded_node();
        let (bomb, first) = waker();
        let mut stale = None;
        assert!(poll_done(&node, &mut stale, &first).is_pending());
        assert!(is_key(stale.unwrap()));
        bomb.panic_on_drop.store(true, StdOrdering::SeqCst);
        drop((bomb, first)); // the slot's clone is the last handle
        let (_other, second) = waker();
        let repoll = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            poll_done(&node, &mut stale, &second)
        }));
        assert!(repoll.is_err(), "the old waker's drop panicked");
        // The next waiter on this thread (another task) takes the slot.
        let (woken, third) = waker();
        let mut key = None;
        assert!(poll_done(&node, &mut key, &third).is_pending());
        assert!(is_key(key.unwrap()));
        // The stale future is dropped on another thread (`Done::drop`).
        if let Some(stale) = stale {
            std::thread::scope(|s| {
                s.spawn(|| remove_waiter(&node, stale));
            });
        }
        assert!(cancel(&node, Error::Canceled, None));
        assert_eq!(woken.woken.load(StdOrdering::SeqCst), 1, "lost wake-up");
        remove_waiter(&node, key.unwrap());
    }

    /// Tests that need a free slot read-lock this, tests that claim every
    /// slot of the table write-lock it: they run in parallel in one binary.
    static TABLE: std::sync::RwLock<()> = std::sync::RwLock::new(());

    /// For a test that needs this thread's (or a fresh thread's) slot.
    pub(in crate::tree) fn a_slot_free() -> std::sync::RwLockReadGuard<'static, ()> {
        TABLE.read().unwrap_or_else(|e| e.into_inner())
    }

    /// For a test that claims every slot.
    fn every_slot() -> std::sync::RwLockWriteGuard<'static, ()> {
        TABLE.write().unwrap_or_else(|e| e.into_inner())
    }

    /// More threads than slots, alive at once;
    /// registrations left by ending threads and removed elsewhere (a moved
    /// future), re-polled by another task on another thread, made and
    /// removed from thread-local destructors before and after the `Claim`
    /// guard's, all racing the cancel. Whatever was pending at the cancel
    /// is woken, and no clone of any waker is kept.
    #[test]
    fn slots_across_thread_exit_and_thread_local_destruction_stress() {
        let _table = every_slot();
        use std::cell::RefCell;
        use std::sync::mpsc;
        type Node = crate::loom::Arc<CancelNode>;
        /// A registration that a thread-local's destructor re-polls (with
        /// another waker: `repoll`'s non-owner take), then removes; or
        /// makes first (`register` while the thread ends).
        struct Late {
            node: Node,
            key: Option<usize>,
            first: bool,
            waker: Waker,
            failed: Arc<AtomicBool>,
        }
        impl Drop for Late {
            fn drop(&mut self) {
                let poll = poll_done(&self.node, &mut self.key, &self.waker);
                if self.first && poll.is_pending() && self.key.is_none() {
                    self.failed.store(true, StdOrdering::SeqCst);
                }
                if let Some(key) = self.key.take() {
                    remove_waiter(&self.node, key);
                }
            }
        }
        std::thread_local! {
            static EARLY: RefCell<Option<Late>> = const { RefCell::new(None) };
            static LATE: RefCell<Option<Late>> = const { RefCell::new(None) };
        }
        const THREADS: usize = super::SLOTS + 16;
        for round in 0..30 {
            let node = super::sharded_node();
            let failed = Arc::new(AtomicBool::new(false));
            let canceled = Arc::new(AtomicBool::new(false));
            let (moved_tx, moved_rx) = mpsc::channel::<(Option<usize>, Waker)>();
            let start = Arc::new(std::sync::Barrier::new(THREADS + 1));
            let mut counts = Vec::new();
            let threads: Vec<_> = (0..THREADS)
                .map(|i| {
                    let (count, w) = waker();
                    let (other, w_other) = waker();
                    counts.push(count.clone());
                    counts.push(other);
                    let (node, failed, canceled, moved_tx, start) = (
                        node.clone(),
                        failed.clone(),
                        canceled.clone(),
                        moved_tx.clone(),
                        start.clone(),
                    );
                    std::thread::spawn(move || {
                        let mode = (i + round) % 5;
                        if mode == 3 {
                            // Made before this thread's `Claim`: destroyed after it.
                            EARLY.with(|_| ());
                        }
                        let mut key = None;
                        let first = poll_done(&node, &mut key, &w);
                        start.wait();
                        match mode {
                            // Kept until after the cancel: must be woken.
                            0 => {
                                while !canceled.load(StdOrdering::SeqCst) {
                                    std::thread::yield_now();
                                }
                                if first.is_pending() && count.woken.load(StdOrdering::SeqCst) != 1
                                {
                                    failed.store(true, StdOrdering::SeqCst);
                                }
                                if let Some(key) = key {
                                    remove_waiter(&node, key);
                                }
                            }
                            // Moved: dropped (or re-polled) on another thread.
                            1 => moved_tx.send((key, w_other.clone())).unwrap(),
                            // Re-polled by another task, then removed here.
                            2 => {
                                let _ = poll_done(&node, &mut key, &w_other);
                                if let Some(key) = key {
                                    remove_waiter(&node, key);
                                }
                            }
                            // Re-polled and removed by a thread-local's
                            // destructor, after `Claim`'s.
                            3 => EARLY.with(|late| {
                                *late.borrow_mut() = Some(Late {
                                    node: node.clone(),
                                    key,
                                    first: false,
                                    waker: w_other.clone(),
                                    failed: failed.clone(),
                                })
                            }),
                            // A first registration in a destructor before
                            // `Claim`'s, and this one removed now.
                            _ => {
                                if let Some(key) = key {
                                    remove_waiter(&node, key);
                                }
                                LATE.with(|late| {
                                    *late.borrow_mut() = Some(Late {
                                        node: node.clone(),
                                        key: None,
                                        first: true,
                                        waker: w_other.clone(),
                                        failed: failed.clone(),
                                    })
                                })
                            }
                        }
                    })
                })
                .collect();
            drop(moved_tx);
            let dropper = {
                let node = node.clone();
                std::thread::spawn(move || {
                    for (n, (mut key, other)) in moved_rx.into_iter().enumerate() {
                        if n % 2 == 0 {
                            let _ = poll_done(&node, &mut key, &other);
                        }
                        if let Some(key) = key {
                            remove_waiter(&node, key);
                        }
                    }
                })
            };
            start.wait();
            for _ in 0..(round % 10) * 200 {
                std::hint::spin_loop();
            }
            assert!(cancel(&node, Error::Canceled, None));
            canceled.store(true, StdOrdering::SeqCst);
            for thread in threads {
                thread.join().unwrap();
            }
            dropper.join().unwrap();
            assert!(
                !failed.load(StdOrdering::SeqCst),
                "round {round}: lost wake-up"
            );
            assert_eq!(super::count(shards::address(&node)), 0);
            for count in &counts {
                assert_eq!(
                    Arc::strong_count(count),
                    1,
                    "round {round}: a waker was kept"
                );
            }
        }
    }
}
