//! A tiny slab: O(1) insert and remove by key, storage given back when it
//! is less than a quarter full.
//!
//! Used for the waker list and the after_func list of a node. Both are guarded
//! by the node's lock, so the slab itself needs no synchronization.
//!
//! Why not the `slab` crate: a node must give memory back after a burst of
//! waiters without moving the keys its `done()` futures hold, and do so in
//! amortized O(1) per removal. `slab::Slab::shrink_to_fit` rebuilds its free
//! list in O(capacity) on every call, and nothing else in the crate is
//! needed; this is about a hundred lines with its tests.

use std::task::Waker;

/// Entries an emptied or sparse slab keeps for reuse, so that a `select!`
/// loop making a fresh `done()` each turn does not allocate each turn.
const KEEP: usize = 8;

pub(crate) struct Slab<T> {
    entries: Vec<Entry<T>>,
    /// Head of the free list (an index into `entries`), or `entries.len()`.
    next_free: usize,
    len: usize,
    /// Compaction is tried again only once `len` is below this: survivors
    /// at high keys can keep a compaction from shrinking, and retrying on
    /// every removal would cost O(capacity) each time.
    retry_below: usize,
}

enum Entry<T> {
    Vacant(usize),
    Occupied(T),
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab::new()
    }
}

impl<T> Slab<T> {
    pub(crate) const fn new() -> Self {
        Slab {
            entries: Vec::new(),
            next_free: 0,
            len: 0,
            retry_below: usize::MAX,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The number of values held (for the census, feature `debug`, and tests).
    #[cfg(any(test, feature = "debug"))]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn insert(&mut self, value: T) -> usize {
        let key = self.next_free;
        if key == self.entries.len() {
            self.entries.push(Entry::Occupied(value));
            self.next_free = self.entries.len();
        } else {
            match std::mem::replace(&mut self.entries[key], Entry::Occupied(value)) {
                Entry::Vacant(next) => self.next_free = next,
                Entry::Occupied(_) => {
                    unreachable!("ctx: internal error: slab free list points at an occupied entry")
                }
            }
        }
        self.len += 1;
        key
    }

    pub(crate) fn get_mut(&mut self, key: usize) -> Option<&mut T> {
        match self.entries.get_mut(key) {
            Some(Entry::Occupied(value)) => Some(value),
            _ => None,
        }
    }

    pub(crate) fn remove(&mut self, key: usize) -> Option<T> {
        let entry = self.entries.get_mut(key)?;
        if matches!(entry, Entry::Vacant(_)) {
            return None;
        }
        let Entry::Occupied(value) = std::mem::replace(entry, Entry::Vacant(self.next_free)) else {
            unreachable!("ctx: internal error: a slab entry changed under its owner")
        };
        self.next_free = key;
        self.len -= 1;
        if self.len == 0 {
            // Start over, keeping a little storage for the next insert;
            // callers that want all of it back call `release`.
            self.entries.clear();
            self.next_free = 0;
            self.retry_below = usize::MAX;
            if self.entries.capacity() > KEEP {
                self.entries = Vec::new();
            }
        } else if self.entries.capacity() > KEEP
            && self.len * 4 < self.entries.capacity()
            && self.len < self.retry_below
        {
            self.compact();
        }
        Some(value)
    }

    /// Drops the vacant tail, rebuilds the free list over what is left and
    /// gives the spare capacity back.
    fn compact(&mut self) {
        while matches!(self.entries.last(), Some(Entry::Vacant(_))) {
            self.entries.pop();
        }
        self.next_free = self.entries.len();
        for (key, entry) in self.entries.iter_mut().enumerate().rev() {
            if let Entry::Vacant(next) = entry {
                *next = self.next_free;
                self.next_free = key;
            }
        }
        self.entries.shrink_to(self.len * 2);
        self.retry_below = if self.len * 4 < self.entries.capacity() {
            self.len / 2
        } else {
            usize::MAX
        };
    }

    /// Whether storage is allocated (even with nothing in it).
    pub(crate) fn has_storage(&self) -> bool {
        self.entries.capacity() > 0
    }

    /// Frees the storage of an empty slab.
    pub(crate) fn release(&mut self) {
        debug_assert!(
            self.is_empty(),
            "ctx: internal error: releasing a slab in use"
        );
        *self = Slab::new();
    }

    /// Takes every occupied value out, leaving the slab empty and unallocated.
    pub(crate) fn take_all(&mut self) -> impl Iterator<Item = T> {
        let entries = std::mem::take(&mut self.entries);
        *self = Slab::new();
        entries.into_iter().filter_map(|entry| match entry {
            Entry::Occupied(value) => Some(value),
            Entry::Vacant(_) => None,
        })
    }
}

/// What one pass of a waker registration did (see [`Slab::register`]).
pub(crate) enum Step {
    /// Registered: drop this waker (a spare clone, or the replaced one)
    /// once the caller's lock is released.
    Kept(Option<Waker>),
    /// Inserted `fresh` at this key.
    Inserted(usize),
    /// `fresh` is needed and was not made: clone it unlocked, then retry.
    NeedClone,
}

impl Step {
    /// What the registering poll does with this step once its lock is
    /// released: `true` when registered (`key` updated through `encode`
    /// for an insert), `false` when it must retry with a clone in `fresh`.
    pub(crate) fn finish(
        self,
        key: &mut Option<usize>,
        encode: impl FnOnce(usize) -> usize,
        fresh: &mut Option<Waker>,
        waker: &Waker,
    ) -> bool {
        match self {
            Step::Kept(unneeded) => drop(unneeded),
            Step::Inserted(inserted) => *key = Some(encode(inserted)),
            // A different waker, or our slot is gone: clone unlocked, retry.
            Step::NeedClone => {
                *fresh = Some(waker.clone());
                return false;
            }
        }
        true
    }
}

impl Slab<Waker> {
    /// One pass of a registration of `waker` (a context's waiter list or a
    /// shard's, locked by the caller): keeps the waker stored at `key` if it
    /// will wake the same task, else replaces it with or inserts `fresh`.
    /// Never clones or drops a waker itself (those are user code, run by the
    /// caller once unlocked).
    #[inline]
    pub(crate) fn register(
        &mut self,
        key: Option<usize>,
        fresh: &mut Option<Waker>,
        waker: &Waker,
    ) -> Step {
        let stored = key.and_then(|k| self.get_mut(k));
        match (stored, fresh.take()) {
            (Some(stored), unneeded) if stored.will_wake(waker) => Step::Kept(unneeded),
            (Some(stored), Some(new)) => Step::Kept(Some(std::mem::replace(stored, new))),
            (None, Some(new)) => Step::Inserted(self.insert(new)),
            (_, None) => Step::NeedClone,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Slab;

    #[test]
    fn keys_are_reused_and_storage_is_kept_until_released() {
        let mut slab = Slab::new();
        let a = slab.insert("a");
        let b = slab.insert("b");
        assert_eq!(slab.remove(a), Some("a"));
        assert_eq!(slab.remove(a), None, "a removed key stays removed");
        let c = slab.insert("c");
        assert_eq!(c, a, "the freed key is reused");
        assert_eq!(slab.get_mut(b).copied(), Some("b"));
        assert_eq!(slab.remove(b), Some("b"));
        assert_eq!(slab.remove(c), Some("c"));
        assert!(slab.is_empty());
        assert!(
            slab.has_storage(),
            "an emptied slab keeps its storage for reuse"
        );
        assert_eq!(slab.insert("d"), 0, "and starts over at key 0");
        slab.remove(0);
        slab.release();
        assert!(!slab.has_storage(), "a released slab holds no memory");
    }

    #[test]
    fn a_slab_gives_memory_back_once_less_than_a_quarter_full() {
        let mut slab = Slab::new();
        let keys: Vec<_> = (0..10_000).map(|i| slab.insert(i)).collect();
        // Keep a few low keys; remove from the top down.
        for &key in keys[4..].iter().rev() {
            assert_eq!(slab.remove(key), Some(key));
        }
        assert!(slab.entries.capacity() < 64, "{}", slab.entries.capacity());
        for &key in &keys[..4] {
            assert_eq!(slab.get_mut(key).copied(), Some(key), "keys stay valid");
        }
        // Survivors at high keys keep the storage, then free it when they go.
        let mut slab = Slab::new();
        let keys: Vec<_> = (0..10_000).map(|i| slab.insert(i)).collect();
        for &key in &keys[..9_990] {
            slab.remove(key);
        }
        assert_eq!(slab.get_mut(9_995).copied(), Some(9_995));
        let reused = slab.insert(1);
        assert!(reused < 9_990, "a freed key is reused");
        slab.remove(reused);
        for &key in &keys[9_990..] {
            slab.remove(key);
        }
        assert!(
            !slab.has_storage(),
            "an emptied large slab frees its storage"
        );
    }

    #[test]
    fn take_all_returns_only_occupied_values() {
        let mut slab = Slab::new();
        let keys: Vec<_> = (0..5).map(|i| slab.insert(i)).collect();
        slab.remove(keys[1]);
        slab.remove(keys[3]);
        let mut rest: Vec<_> = slab.take_all().collect();
        rest.sort();
        assert_eq!(rest, vec![0, 2, 4]);
        assert!(slab.is_empty());
        assert_eq!(slab.insert(9), 0, "a drained slab starts over");
    }
}
