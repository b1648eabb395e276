//! Waiting for a subtree to settle (invariant 3) without spinning.
//!
//! A `cancel` that finds its node already done by another thread must not
//! return before that thread has finished the node's subtree, which can take
//! as long as a walk through a million nodes. It parks on a condition
//! variable instead of spinning. The node stays 64 bytes: the wait uses one
//! more bit of the state byte (`PARKED`) and a small process-wide table of
//! buckets shared by all nodes, chosen by the node's address, as a parking
//! lot does (no new dependency: a table of std's `Mutex` and `Condvar`).
//!
//! # Protocol
//!
//! The waiter locks its bucket, sets `PARKED` with a read-modify-write and,
//! unless that returned `SETTLED`, waits on the bucket's condition variable
//! (which releases the lock atomically). The settler sets `SETTLED` with a
//! read-modify-write; if that returned `PARKED`, it locks the bucket and
//! notifies everyone waiting there. Both read-modify-writes are on the same
//! byte, so one comes first: if the settler's did, the waiter sees `SETTLED`
//! and does not wait; if the waiter's did, the settler sees `PARKED` and
//! cannot take the bucket lock before the waiter is waiting, so the
//! notification is not lost. Nodes sharing a bucket wake each other
//! spuriously; each waiter re-checks its own node.
//!
//! A leaf needs no settling of its own: the read-modify-write that makes it
//! done sets `SETTLED` too (`Aftermath::transition`), so nobody ever sees
//! it done and unsettled, and nobody parks on it.

use super::{CancelNode, PARKED, SETTLED};
use crate::loom::{lock, Condvar, Mutex, Ordering};

const BUCKETS: usize = 64;

struct Bucket {
    mutex: Mutex<()>,
    parked: Condvar,
}

#[cfg(not(loom))]
fn bucket(node: &CancelNode) -> &'static Bucket {
    static TABLE: [Bucket; BUCKETS] = [const {
        Bucket {
            mutex: Mutex::new(()),
            parked: Condvar::new(),
        }
    }; BUCKETS];
    &TABLE[index(node)]
}

#[cfg(loom)]
fn bucket(node: &CancelNode) -> &'static Bucket {
    loom::lazy_static! {
        static ref TABLE: Vec<Bucket> = (0..BUCKETS)
            .map(|_| Bucket { mutex: Mutex::new(()), parked: Condvar::new() })
            .collect();
    }
    &TABLE[index(node)]
}

fn index(node: &CancelNode) -> usize {
    // Nodes are 64-byte allocations: the low bits carry nothing.
    (node as *const CancelNode as usize >> 6) % BUCKETS
}

impl CancelNode {
    /// Returns once `SETTLED` is set (invariant 3), parked meanwhile.
    pub(super) fn wait_settled(&self) {
        if self.state.load(Ordering::Acquire) & SETTLED != 0 {
            return;
        }
        let bucket = bucket(self);
        let mut parked = lock(&bucket.mutex);
        let mut state = self.state.fetch_or(PARKED, Ordering::AcqRel);
        while state & SETTLED == 0 {
            parked = match bucket.parked.wait(parked) {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            state = self.state.load(Ordering::Acquire);
        }
    }

    /// Sets `SETTLED`, waking the cancelers parked on this node.
    pub(super) fn settle(&self) {
        let before = self.state.fetch_or(SETTLED, Ordering::AcqRel);
        if before & PARKED != 0 {
            // Taking the lock orders us after the waiter's `wait` began.
            let _parked = lock(&bucket(self).mutex);
            bucket(self).parked.notify_all();
        }
    }
}
