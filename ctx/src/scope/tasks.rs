//! The abort handles of a scope's running tasks: a slab with generations.

use tokio::task::AbortHandle;

/// Names one started task's entry in [`Tasks`]; the generation tells a reused
/// index from the task that held it before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Key {
    index: usize,
    generation: u64,
}

/// The abort handles of started, unfinished tasks: a slab with generations.
#[derive(Default)]
pub(super) struct Tasks {
    slots: Vec<Slot>,
    free: Vec<usize>,
    next_generation: u64,
}

#[derive(Default)]
struct Slot {
    /// 0 while vacant; generations start at 1.
    generation: u64,
    abort: Option<AbortHandle>,
}

impl Tasks {
    pub(super) fn insert(&mut self) -> Key {
        self.next_generation += 1;
        let generation = self.next_generation;
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.slots.push(Slot::default());
                self.slots.len() - 1
            }
        };
        self.slots[index] = Slot {
            generation,
            abort: None,
        };
        Key { index, generation }
    }

    /// Files `abort` under `key`; gives it back if `key` is stale.
    pub(super) fn fill(&mut self, key: Key, abort: AbortHandle) -> Option<AbortHandle> {
        match self.slots.get_mut(key.index) {
            Some(slot) if slot.generation == key.generation => {
                slot.abort = Some(abort);
                None
            }
            _ => Some(abort),
        }
    }

    /// Frees `key`'s entry, returning its abort handle (to be dropped outside
    /// the lock).
    pub(super) fn remove(&mut self, key: Key) -> Option<AbortHandle> {
        match self.slots.get_mut(key.index) {
            Some(slot) if slot.generation == key.generation => {
                let abort = slot.abort.take();
                slot.generation = 0;
                self.free.push(key.index);
                abort
            }
            _ => None,
        }
    }

    /// Takes every filed abort handle, leaving the entries in place (their
    /// tasks still release them).
    pub(super) fn drain(&mut self) -> Vec<AbortHandle> {
        self.slots
            .iter_mut()
            .filter_map(|slot| slot.abort.take())
            .collect()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.len() - self.free.len()
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
    fn tasks_slab_reuses_indices_and_rejects_stale_keys() {
        let rt = runtime();
        rt.block_on(async {
            let mut tasks = Tasks::default();
            let a = tasks.insert();
            let b = tasks.insert();
            assert_eq!(tasks.len(), 2);
            assert!(tasks.remove(a).is_none());
            let c = tasks.insert();
            assert_eq!(c.index, a.index, "a freed index is reused");
            assert_ne!(c.generation, a.generation);
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
}
