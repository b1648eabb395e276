//! The one shared deadline timer: sharded ordered maps and one thread.
//!
//! Deadlines must fire with no async runtime at all and inside any runtime,
//! never early, and cost nothing per context beyond an entry: no thread and
//! no task per context. One lazily started thread (`ctx-timer`) sleeps until
//! the earliest entry is due, cancels every due node, and sleeps again.
//!
//! Entries live in [`SHARDS`] ordered maps; each thread inserts into its own
//! shard, so threads that create timeouts in parallel do not contend on one
//! lock. Registration and removal are O(log n). Canceled contexts remove
//! their entry eagerly, so a million timeouts created and dropped leave
//! nothing behind.
//!
//! # Waking the thread
//!
//! The thread publishes in `next_wake` the instant it will sleep until
//! (`SCANNING` while it looks at the shards, `IDLE` when there is nothing).
//! An insert whose deadline is earlier than that, or that sees `SCANNING`,
//! notifies the condition variable under `sleep`. Both sides use `SeqCst`:
//! if the thread's scan missed an entry, the scan of that shard happened
//! before the insert, so the inserter's later load sees `SCANNING` or the
//! freshly published instant, and notifies if needed. The thread holds
//! `sleep` from publishing until it waits, so a notification cannot fall in
//! between.
//!
//! Lock order: `sleep` before a shard. No timer lock is ever held together
//! with a node lock (the thread collects due entries, unlocks, then cancels).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::error::{Cause, Error};
use crate::loom::Arc;
use crate::tree::{self, CancelNode};

const SHARDS: usize = 16;
const IDLE: u64 = u64::MAX;
const SCANNING: u64 = 0;

/// Identifies an entry: its deadline, a tie-breaking sequence number, and
/// the shard it lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TimerKey {
    deadline: Instant,
    seq: u64,
    shard: u8,
}

struct Entry {
    node: Arc<CancelNode>,
    cause: Option<Cause>,
}

#[derive(Default)]
struct Shard {
    entries: BTreeMap<TimerKey, Entry>,
    next_seq: u64,
}

struct Timer {
    shards: [Mutex<Shard>; SHARDS],
    /// Nanoseconds after `epoch` the thread sleeps until, or `IDLE`/`SCANNING`.
    next_wake: AtomicU64,
    epoch: Instant,
    sleep: Mutex<()>,
    wake: Condvar,
}

fn timer() -> &'static Timer {
    static TIMER: OnceLock<Timer> = OnceLock::new();
    static THREAD: OnceLock<()> = OnceLock::new();
    let timer = TIMER.get_or_init(|| Timer {
        shards: std::array::from_fn(|_| Mutex::new(Shard::default())),
        next_wake: AtomicU64::new(IDLE),
        epoch: Instant::now(),
        sleep: Mutex::new(()),
        wake: Condvar::new(),
    });
    THREAD.get_or_init(|| {
        std::thread::Builder::new()
            .name("ctx-timer".into())
            .spawn(move || run(timer))
            .expect("ctx: internal error: cannot start the deadline timer thread");
    });
    timer
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks; ignore poison regardless.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// This thread's shard: threads are spread round-robin on first use.
fn my_shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    SHARD.with(|shard| {
        if shard.get() == usize::MAX {
            shard.set(NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS);
        }
        shard.get()
    })
}

impl Timer {
    fn nanos(&self, at: Instant) -> u64 {
        // Deadlines before the epoch are due at once; clamp so they never
        // read as SCANNING.
        let nanos = at.saturating_duration_since(self.epoch).as_nanos();
        u64::try_from(nanos).unwrap_or(IDLE - 1).max(1)
    }
}

/// Arms a deadline for `node`: cancels it with `DeadlineExceeded` and `cause`
/// at `deadline`, unless [`remove`]d first.
pub(crate) fn insert(node: Arc<CancelNode>, deadline: Instant, cause: Option<Cause>) -> TimerKey {
    let timer = timer();
    let index = my_shard();
    let key = {
        let mut shard = lock(&timer.shards[index]);
        let key = TimerKey {
            deadline,
            seq: shard.next_seq,
            shard: index as u8,
        };
        shard.next_seq += 1;
        shard.entries.insert(key, Entry { node, cause });
        key
    };
    let next = timer.next_wake.load(Ordering::SeqCst);
    if next == SCANNING || timer.nanos(deadline) < next {
        let _sleep = lock(&timer.sleep);
        timer.wake.notify_one();
    }
    key
}

/// Disarms an entry; does nothing if it already fired.
pub(crate) fn remove(key: TimerKey) {
    let removed = lock(&timer().shards[usize::from(key.shard)])
        .entries
        .remove(&key);
    // The node (maybe its last reference) drops outside the timer lock.
    drop(removed);
}

fn run(timer: &'static Timer) {
    let mut sleep = lock(&timer.sleep);
    let mut due = Vec::new();
    loop {
        timer.next_wake.store(SCANNING, Ordering::SeqCst);
        let now = Instant::now();
        let mut earliest: Option<Instant> = None;
        for shard in &timer.shards {
            let mut shard = lock(shard);
            while let Some(entry) = shard.entries.first_entry() {
                // Never early: only entries whose instant has been reached.
                if entry.key().deadline > now {
                    let at = entry.key().deadline;
                    earliest = Some(earliest.map_or(at, |e| e.min(at)));
                    break;
                }
                due.push(entry.remove());
            }
        }
        if !due.is_empty() {
            drop(sleep);
            for entry in due.drain(..) {
                tree::cancel(&entry.node, Error::DeadlineExceeded, entry.cause);
            }
            sleep = lock(&timer.sleep);
            continue;
        }
        match earliest {
            Some(at) => {
                timer.next_wake.store(timer.nanos(at), Ordering::SeqCst);
                let wait = at
                    .saturating_duration_since(now)
                    .max(Duration::from_micros(1));
                sleep = timer
                    .wake
                    .wait_timeout(sleep, wait)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            None => {
                timer.next_wake.store(IDLE, Ordering::SeqCst);
                sleep = timer.wake.wait(sleep).unwrap_or_else(|e| e.into_inner());
            }
        }
    }
}
