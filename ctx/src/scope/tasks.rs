//! The abort handles of a scope's running tasks, by task id.

use std::collections::HashMap;

use tokio::task::AbortHandle;

use super::state::mostly_empty;

/// Names one started task's entry in [`Tasks`]. Ids are never reused, so the
/// key of a task that has ended stays stale for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Key(u64);

/// The abort handles of started, unfinished tasks.
///
/// A map rather than a slab: a slab cannot give back the room a burst of
/// tasks took while a few of them, at high indices, still run; the map is
/// shrunk once less than a quarter full (see `state::mostly_empty`).
#[derive(Default)]
pub(super) struct Tasks {
    /// `None` between the insert and the fill (invariant 2 of `state.rs`),
    /// and after a drain.
    entries: HashMap<Key, Option<AbortHandle>>,
    next_id: u64,
}

impl Tasks {
    pub(super) fn insert(&mut self) -> Key {
        self.next_id += 1;
        let key = Key(self.next_id);
        self.entries.insert(key, None);
        key
    }

    /// Files `abort` under `key`; gives it back if `key` is stale.
    pub(super) fn fill(&mut self, key: Key, abort: AbortHandle) -> Option<AbortHandle> {
        match self.entries.get_mut(&key) {
            Some(slot) => {
                *slot = Some(abort);
                None
            }
            None => Some(abort),
        }
    }

    /// Frees `key`'s entry, returning its abort handle (to be dropped outside
    /// the lock), and gives back room once the map is mostly empty.
    pub(super) fn remove(&mut self, key: Key) -> Option<AbortHandle> {
        let abort = self.entries.remove(&key).flatten();
        if mostly_empty(self.entries.len(), self.entries.capacity()) {
            // Half of the room stays free, so the next few inserts do not
            // grow it straight back (amortized: a shrink to `2n` needs about
            // `n / 2` removals or `n` inserts before the next resize).
            self.entries.shrink_to(self.entries.len() * 2);
        }
        abort
    }

    /// Takes every filed abort handle, leaving the entries in place (their
    /// tasks still release them).
    pub(super) fn drain(&mut self) -> Vec<AbortHandle> {
        self.entries
            .values_mut()
            .filter_map(|slot| slot.take())
            .collect()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    #[test]
    fn tasks_never_reuse_a_key_and_reject_stale_ones() {
        let rt = runtime();
        rt.block_on(async {
            let mut tasks = Tasks::default();
            let a = tasks.insert();
            let b = tasks.insert();
            assert_eq!(tasks.len(), 2);
            assert!(tasks.remove(a).is_none());
            let c = tasks.insert();
            assert_ne!(c, a, "a key is never reused");
            // a's key is stale now: filling and removing it must not touch c
            let join = tokio::spawn(async {});
            let back = tasks.fill(a, join.abort_handle());
            assert!(back.is_some(), "a stale key gives the handle back");
            assert!(tasks.fill(c, join.abort_handle()).is_none());
            assert!(tasks.remove(a).is_none());
            assert_eq!(tasks.len(), 2);
            assert_eq!(tasks.drain().len(), 1);
            assert!(tasks.remove(c).is_none(), "drained handles are gone");
            assert!(tasks.remove(b).is_none());
            assert_eq!(tasks.len(), 0);
            join.await.unwrap();
        });
    }

    #[test]
    fn tasks_give_back_room_once_less_than_a_quarter_full() {
        let mut tasks = Tasks::default();
        let keys: Vec<_> = (0..10_000).map(|_| tasks.insert()).collect();
        let peak = tasks.entries.capacity();
        assert!(peak >= 10_000);
        // Keep the newest few, as when a burst ends while some tasks run.
        for key in &keys[..9_990] {
            tasks.remove(*key);
        }
        assert_eq!(tasks.len(), 10);
        assert!(
            tasks.entries.capacity() <= 64,
            "{} entries of room kept for 10 tasks",
            tasks.entries.capacity()
        );
    }
}
