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
//! A slot's `state` is `EMPTY`, a node's address (a waker for that node is
//! in `waker`), or `TAKING` (someone has the waker cell to themselves).
//!
//! - Only the thread that owns the slot moves it out of `EMPTY`: it clones
//!   the waker, sees `EMPTY` (acquire: whoever emptied it is done with the
//!   cell), writes the cell and publishes the address with a swap, then
//!   loads the node's state. If the node is done by then, it takes its
//!   registration back (unless the cancel took it) and answers ready.
//! - Anyone else (the cancel, a removal, a re-poll, on any thread) gets the
//!   cell by a compare-exchange from the address to `TAKING`, moves the
//!   waker out or looks at it, and swaps in `EMPTY` or the address again.
//!   The owner removing its own registration (a `select!` turn dropping
//!   its `done()`) goes straight from the address to `EMPTY` with one
//!   compare-exchange: from `EMPTY` only the owner itself can take the cell.
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
//!   `TAKING`, and no lock is taken, so it is held for a few instructions.
//!   A cancel that finds a slot `TAKING` waits for it and reads it again
//!   (it cannot skip it: the holder releases it with a plain store, which
//!   the owner's next swap reads from instead of the cancel's
//!   read-modify-write, so that swap would not see the cancel).
//!
//! `loom_tree::sharded_waiters_are_not_lost`,
//! `hot_slot_repoll_and_removal_race_the_cancel` and
//! `a_hot_slot_forgotten_is_emptied_when_its_node_drops` explore it.

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
        self.state
            .compare_exchange(at, TAKING, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        let waker = self.take();
        self.release(EMPTY);
        waker
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
        .position(|slot| slot.state.load(Ordering::Relaxed) == EMPTY && take(slot))
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
    if slot.state.load(Ordering::Relaxed) != EMPTY {
        return None;
    }
    // User code, so before the slot is ours to write; it could even have
    // polled a `done()` of its own on this thread, which the check below
    // would see.
    let fresh = waker.clone();
    if slot.state.load(Ordering::Acquire) != EMPTY {
        drop(fresh);
        return None;
    }
    slot.put(fresh);
    let at = address(node);
    // The registration's read-modify-write (see the protocol).
    slot.state.swap(at, Ordering::AcqRel);
    Some(check(node, index, at, key))
}

/// The registration's half of the protocol, once the swap that published
/// the waker for the node at `at` in slot `index` is done.
#[inline]
fn check(node: &CancelNode, index: usize, at: usize, key: &mut Option<usize>) -> Poll<Error> {
    match decode(node.state.load(Ordering::Acquire)) {
        None => {
            *key = Some(key_of(index));
            Poll::Pending
        }
        Some(err) => check_done(err, index, at, key),
    }
}

/// [`check`] once the node is done.
#[cold]
fn check_done(err: Error, index: usize, at: usize, key: &mut Option<usize>) -> Poll<Error> {
    match table()[index].take_if(at) {
        // Done meanwhile: taken back, so nobody wakes it.
        Some(waker) => {
            drop(waker);
            *key = None;
            Poll::Ready(err)
        }
        // The cancel has the waker and wakes it: wait for that rather than
        // answer now, so that no future that answered is woken afterwards.
        None => {
            *key = Some(key_of(index));
            Poll::Pending
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
        return Some(check(node, index, at, key));
    }
    // A different task: out of the slot, then registered like a new waiter.
    let old = slot.take();
    slot.release(EMPTY);
    drop(old);
    *key = None;
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
            wakers.extend(slot.take_if(at));
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
