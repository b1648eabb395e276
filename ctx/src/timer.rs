//! The one shared deadline timer: a sorted map of entries and one thread.
//!
//! Deadlines must fire with no async runtime at all and inside any runtime,
//! never early, and cost nothing per context beyond an entry: no thread and
//! no task per context. One lazily started thread (`ctx-timer`) sleeps until
//! the earliest entry is due, cancels every due node, and sleeps again.
//! Registration and removal are O(log n) under the timer lock. The lock is
//! never held while a node lock is (the thread collects due entries, unlocks,
//! then cancels), and canceled contexts remove their entry eagerly, so a
//! million timeouts created and dropped leave nothing behind.

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use crate::error::{Cause, Error};
use crate::loom::Arc;
use crate::tree::{self, Node};

/// Identifies an entry: its deadline and a tie-breaking sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TimerKey {
    deadline: Instant,
    seq: u64,
}

struct Entry {
    node: Arc<Node>,
    cause: Option<Cause>,
}

struct Timer {
    state: Mutex<State>,
    /// Signaled when an entry earlier than every other one arrives.
    wake: Condvar,
}

#[derive(Default)]
struct State {
    entries: BTreeMap<TimerKey, Entry>,
    next_seq: u64,
}

fn timer() -> &'static Timer {
    static TIMER: OnceLock<Timer> = OnceLock::new();
    static THREAD: OnceLock<()> = OnceLock::new();
    let timer = TIMER.get_or_init(|| Timer {
        state: Mutex::new(State::default()),
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

fn lock(timer: &Timer) -> MutexGuard<'_, State> {
    // Nothing panics while holding this lock; ignore poison regardless.
    timer.state.lock().unwrap_or_else(|e| e.into_inner())
}

/// Arms a deadline for `node`; cancels it with `DeadlineExceeded` and
/// `cause` at `deadline` unless [`remove`]d first.
pub(crate) fn insert(node: Arc<Node>, deadline: Instant, cause: Option<Cause>) -> TimerKey {
    let timer = timer();
    let mut state = lock(timer);
    let key = TimerKey {
        deadline,
        seq: state.next_seq,
    };
    state.next_seq += 1;
    let earliest = state.entries.first_key_value().map(|(k, _)| k.deadline);
    state.entries.insert(key, Entry { node, cause });
    drop(state);
    if earliest.is_none_or(|earliest| deadline < earliest) {
        timer.wake.notify_one();
    }
    key
}

/// Disarms an entry; does nothing if it already fired.
pub(crate) fn remove(key: TimerKey) {
    let removed = lock(timer()).entries.remove(&key);
    // The node (maybe its last reference) drops outside the timer lock.
    drop(removed);
}

fn run(timer: &'static Timer) {
    let mut state = lock(timer);
    loop {
        let now = Instant::now();
        let mut due = Vec::new();
        while let Some(entry) = state.entries.first_entry() {
            // Never early: only entries whose instant has been reached.
            if entry.key().deadline > now {
                break;
            }
            due.push(entry.remove());
        }
        if !due.is_empty() {
            drop(state);
            for entry in due {
                tree::cancel(&entry.node, Error::DeadlineExceeded, entry.cause);
            }
            state = lock(timer);
            continue;
        }
        state = match state.entries.first_key_value() {
            Some((key, _)) => {
                let wait = key.deadline.saturating_duration_since(now);
                timer
                    .wake
                    .wait_timeout(state, wait)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
            None => timer.wake.wait(state).unwrap_or_else(|e| e.into_inner()),
        };
    }
}

/// Live entries (for tests and the leak checks).
#[cfg(test)]
pub(crate) fn len() -> usize {
    lock(timer()).entries.len()
}
