//! The census registry (feature `debug`): one entry per cancel node that has
//! not been freed, made when the node is and removed when it drops.
//!
//! Like the timer, this file sits below the tree and knows nothing of
//! contexts: an entry holds a `Weak` to something that can [`Observe`]
//! itself, where it was made ([`Origin`]), when, and its parent's id. The
//! tree gives each cancel node a [`Registration`] field, whose drop removes
//! the entry, and implements `Observe`; `debug.rs`, above the tree, reads
//! the entries through [`snapshot`].
//!
//! # Why a `Weak`, and why the field
//!
//! The census must not keep a node alive (a leak it reported would then be
//! its own), so an entry holds a `Weak`; a node being freed fails to
//! upgrade, and is skipped. The entry is removed by the node's
//! [`Registration`] when it drops, wherever that happens: in place, or after
//! `drop_chain` has moved the node out of its `Arc` (so the node's address
//! cannot be the key). The registration is made before the node (it is one
//! of its fields) and attached to it right after: two short critical
//! sections, where `Arc::new_cyclic` would need one, but the node is then
//! built the same way with and without the feature.
//!
//! # Locks
//!
//! Entries live in [`SHARDS`] shards, each behind its own mutex, so that
//! threads deriving at once rarely meet: a thread registers in its own shard
//! (chosen round-robin the first time), and a node dropped elsewhere removes
//! itself from the shard it was registered in. A shard lock is a leaf: nothing
//! else is locked, no node is dropped and no user code runs while it is held
//! (`snapshot` upgrades under it, and returns the strong references for the
//! caller to read and drop after it is released). It may be taken while a
//! node lock is held (a node dropping there), never the other way round.

use std::cell::{Cell, RefCell};
use std::panic::Location;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Instant;

use crate::error::Error;

/// How many shards: enough that a few threads deriving at once rarely take
/// the same lock.
const SHARDS: usize = 16;

/// The longest label kept (a request's method and path), in bytes; longer
/// ones are cut, so a client's long path costs the census no more.
#[cfg(any(test, feature = "tower"))]
const MAX_LABEL: usize = 128;

/// What a registered node reports of itself, read by the census.
pub(crate) trait Observe: Send + Sync {
    /// The node's state now, without looking above it.
    fn observe(&self) -> Observed;

    /// The earliest deadline at or above the node: a walk up the tree, for
    /// a node whose parent's entry the census did not see (a node with a
    /// parent in the census takes its deadline from there).
    fn deadline(&self) -> Option<Instant>;
}

/// A node's state as the census reports it.
pub(crate) struct Observed {
    /// `None` while the node is not done.
    pub(crate) err: Option<Error>,
    /// The node's own deadline, if it has one: then it is the earliest at
    /// or above the node. `None`: its deadline is its parent's (and `None`
    /// at a root). Never changes.
    pub(crate) own_deadline: Option<Instant>,
    /// Pending `done()` futures and blocking waits.
    pub(crate) waiters: usize,
}

/// Where a context was derived: the user's call, and for a request context
/// the request's method and path.
#[derive(Clone)]
pub(crate) struct Origin {
    pub(crate) location: &'static Location<'static>,
    pub(crate) label: Option<Box<str>>,
}

impl Origin {
    /// The caller's location (`#[track_caller]`: the first caller up the
    /// chain that is not itself `#[track_caller]`).
    #[track_caller]
    pub(crate) fn caller() -> Origin {
        Origin {
            location: Location::caller(),
            label: None,
        }
    }

    /// The caller's location and a label, cut to [`MAX_LABEL`] bytes: for
    /// the server layer (feature `tower`), the request's method and path.
    #[cfg(any(test, feature = "tower"))]
    #[track_caller]
    pub(crate) fn labeled(label: impl std::fmt::Display) -> Origin {
        let mut label = label.to_string();
        if label.len() > MAX_LABEL {
            let mut cut = MAX_LABEL;
            while !label.is_char_boundary(cut) {
                cut -= 1;
            }
            label.truncate(cut);
            label.push('…');
        }
        Origin {
            location: Location::caller(),
            label: Some(label.into_boxed_str()),
        }
    }

    /// Makes this the origin of the next node registered on this thread
    /// while the returned guard lives: for a derivation whose own caller is
    /// not the user's (inside an async body, where `#[track_caller]` cannot
    /// reach).
    pub(crate) fn enter(self) -> Entered {
        PENDING.with(|pending| *pending.borrow_mut() = Some(self));
        Entered(())
    }
}

/// Clears an unused [`Origin::enter`] when dropped.
pub(crate) struct Entered(());

impl Drop for Entered {
    fn drop(&mut self) {
        // `try_with`: a guard dropped during thread teardown has nothing to
        // clear.
        let _ = PENDING.try_with(|pending| pending.borrow_mut().take());
    }
}

thread_local! {
    /// Set by `Origin::enter`, taken by the next `register` on this thread.
    static PENDING: RefCell<Option<Origin>> = const { RefCell::new(None) };
    /// This thread's shard; `usize::MAX` until first used.
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// A node's entry, held by the node: removes the entry when dropped.
pub(crate) struct Registration {
    /// Unique for the life of the process; its low bits name the shard.
    id: u64,
    /// The entry's slot in its shard.
    slot: u32,
    /// Copied into the entries of children, as their parent's location.
    location: &'static Location<'static>,
}

impl Registration {
    fn shard(&self) -> usize {
        (self.id % SHARDS as u64) as usize
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut shard = lock(&REGISTRY[self.shard()]);
        let entry = shard.remove(self.slot as usize);
        drop(shard);
        // The entry's `Weak` is the last thing keeping the node's allocation;
        // dropped after the lock, as everything is.
        drop(entry);
    }
}

/// Records a new node: where it was made (the pending origin of this thread
/// if there is one, else `caller`) and its parent's registration. The
/// census skips the entry until [`Registration::attach`] gives it the node.
pub(crate) fn register(
    parent: Option<&Registration>,
    caller: &'static Location<'static>,
) -> Registration {
    let origin = PENDING
        .try_with(|pending| pending.borrow_mut().take())
        .ok()
        .flatten()
        .unwrap_or(Origin {
            location: caller,
            label: None,
        });
    let location = origin.location;
    let entry = Entry {
        node: Weak::<Unattached>::new(),
        origin,
        // Real time, whatever clock this thread's deadlines follow: the age
        // of a leak is how long it has been there.
        created: Instant::now(),
        parent: parent.map(|parent| (parent.id, parent.location)),
    };
    let shard_index = this_threads_shard();
    let mut shard = lock(&REGISTRY[shard_index]);
    shard.next_id += 1;
    let id = shard.next_id * SHARDS as u64 + shard_index as u64;
    let slot = shard.insert(id, entry);
    drop(shard);
    Registration { id, slot, location }
}

impl Registration {
    /// Gives the entry its node, once the node exists (it holds this
    /// registration, so it is made after it).
    pub(crate) fn attach<T: Observe + 'static>(&self, node: Weak<T>) {
        let mut shard = lock(&REGISTRY[self.shard()]);
        match shard.slots.get_mut(self.slot as usize) {
            Some(Slot::Occupied(_, entry)) => entry.node = node,
            _ => unreachable!(
                "ctx: internal error: a census entry vanished before its node was made"
            ),
        }
    }
}

/// What an entry points at before [`Registration::attach`]: nothing (a
/// `Weak` that never upgrades).
struct Unattached;

impl Observe for Unattached {
    fn observe(&self) -> Observed {
        unreachable!("ctx: internal error: an unattached census entry was read")
    }

    fn deadline(&self) -> Option<Instant> {
        unreachable!("ctx: internal error: an unattached census entry was read")
    }
}

fn this_threads_shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    SHARD
        .try_with(|shard| {
            if shard.get() == usize::MAX {
                shard.set(NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS);
            }
            shard.get()
        })
        .unwrap_or(0)
}

/// One live node, as [`snapshot`] found it.
pub(crate) struct Seen {
    pub(crate) id: u64,
    /// A strong reference, so the node can be read once the shard lock is
    /// released; the caller drops it.
    pub(crate) node: Arc<dyn Observe>,
    pub(crate) origin: Origin,
    pub(crate) created: Instant,
    /// The parent's id and location.
    pub(crate) parent: Option<(u64, &'static Location<'static>)>,
}

/// Every node registered and not yet freed, one shard at a time (so a node
/// made meanwhile may or may not be in it).
pub(crate) fn snapshot() -> Vec<Seen> {
    let mut seen = Vec::new();
    for shard in &REGISTRY {
        let shard = lock(shard);
        for (id, entry) in shard.entries() {
            // A node whose last reference is gone, being freed right now,
            // fails to upgrade: it is not live.
            if let Some(node) = entry.node.upgrade() {
                seen.push(Seen {
                    id,
                    node,
                    origin: entry.origin.clone(),
                    created: entry.created,
                    parent: entry.parent,
                });
            }
        }
    }
    seen
}

static REGISTRY: [Mutex<Shard>; SHARDS] = [const { Mutex::new(Shard::new()) }; SHARDS];

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // Nothing that can panic runs under the lock but allocation; the data
    // is consistent at every unlock.
    shard.lock().unwrap_or_else(|e| e.into_inner())
}

struct Entry {
    node: Weak<dyn Observe>,
    origin: Origin,
    created: Instant,
    parent: Option<(u64, &'static Location<'static>)>,
}

enum Slot {
    /// The next free slot (`slots.len()` at the end of the list).
    Vacant(usize),
    Occupied(u64, Entry),
}

/// One shard: a slab of entries with a free list, so that registering and
/// removing are O(1). It keeps its peak size (the feature is for finding
/// leaks, not for production memory budgets).
struct Shard {
    slots: Vec<Slot>,
    next_free: usize,
    /// The last id handed out in this shard.
    next_id: u64,
}

impl Shard {
    const fn new() -> Shard {
        Shard {
            slots: Vec::new(),
            next_free: 0,
            next_id: 0,
        }
    }

    fn insert(&mut self, id: u64, entry: Entry) -> u32 {
        let slot = self.next_free;
        if slot == self.slots.len() {
            self.slots.push(Slot::Occupied(id, entry));
            self.next_free = self.slots.len();
        } else {
            match std::mem::replace(&mut self.slots[slot], Slot::Occupied(id, entry)) {
                Slot::Vacant(next) => self.next_free = next,
                Slot::Occupied(..) => {
                    unreachable!("ctx: internal error: census free list points at a used slot")
                }
            }
        }
        u32::try_from(slot).expect("ctx: more than 4 billion live contexts in one census shard")
    }

    fn remove(&mut self, slot: usize) -> Entry {
        let vacant = Slot::Vacant(self.next_free);
        match self
            .slots
            .get_mut(slot)
            .map(|s| std::mem::replace(s, vacant))
        {
            Some(Slot::Occupied(_, entry)) => {
                self.next_free = slot;
                entry
            }
            _ => unreachable!("ctx: internal error: a census entry removed twice"),
        }
    }

    fn entries(&self) -> impl Iterator<Item = (u64, &Entry)> {
        self.slots.iter().filter_map(|slot| match slot {
            Slot::Occupied(id, entry) => Some((*id, entry)),
            Slot::Vacant(_) => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;

    impl Observe for Fixed {
        fn observe(&self) -> Observed {
            Observed {
                err: None,
                own_deadline: None,
                waiters: 7,
            }
        }

        fn deadline(&self) -> Option<Instant> {
            None
        }
    }

    #[track_caller]
    fn registered(node: &Arc<Fixed>, parent: Option<&Registration>) -> Registration {
        let registration = register(parent, Location::caller());
        registration.attach(Arc::downgrade(node));
        registration
    }

    fn find(id: u64) -> Option<Seen> {
        snapshot().into_iter().find(|seen| seen.id == id)
    }

    #[test]
    fn an_entry_lives_as_long_as_its_registration() {
        let node = Arc::new(Fixed);
        let registration = registered(&node, None);
        let line = line!() - 1;
        let seen = find(registration.id).expect("registered");
        assert_eq!(seen.origin.location.line(), line);
        assert!(seen.origin.location.file().ends_with("registry.rs"));
        assert_eq!(seen.node.observe().waiters, 7);
        drop(seen);
        let id = registration.id;
        drop(registration);
        // Ids are never reused: a removed entry is simply absent.
        assert!(find(id).is_none());
    }

    #[test]
    fn a_freed_node_is_not_live_even_before_its_entry_goes() {
        let node = Arc::new(Fixed);
        let registration = registered(&node, None);
        drop(node);
        assert!(find(registration.id).is_none());
    }

    #[test]
    fn children_record_their_parents_id_and_location() {
        let parent_node = Arc::new(Fixed);
        let parent = registered(&parent_node, None);
        let child_node = Arc::new(Fixed);
        let child = registered(&child_node, Some(&parent));
        let seen = find(child.id).expect("registered");
        assert_eq!(seen.parent, Some((parent.id, parent.location)));
    }

    #[test]
    fn an_entered_origin_names_the_next_registration_only() {
        let node = Arc::new(Fixed);
        let entered = Origin::labeled("GET /users/7").enter();
        let line = line!() - 1;
        let first = registered(&node, None);
        let second = registered(&node, None);
        drop(entered);
        let first = find(first.id).expect("registered");
        assert_eq!(first.origin.location.line(), line);
        assert_eq!(first.origin.label.as_deref(), Some("GET /users/7"));
        let second = find(second.id).expect("registered");
        assert_ne!(second.origin.location.line(), line);
        assert_eq!(second.origin.label, None);
    }

    #[test]
    fn long_labels_are_cut_on_a_character_boundary() {
        let origin = Origin::labeled("é".repeat(MAX_LABEL));
        let label = origin.label.unwrap();
        assert!(label.len() <= MAX_LABEL + '…'.len_utf8());
        assert!(label.ends_with('…'));
    }
}
