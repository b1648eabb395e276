//! A deadline timer: sharded ordered maps of entries and one thread that
//! expires them when they fall due.
//!
//! The timer knows nothing of contexts, as Go's runtime timers know nothing
//! of `context` (`time.AfterFunc(d, func() { c.cancel(...) })`): it holds
//! entries of any type `E: Expire` and calls [`Expire::expire`] on each one
//! when its instant has been reached. The tree instantiates it once, above
//! this file, with an entry that cancels a node (`tree/deadline.rs`). The
//! entry type is a generic parameter, not a trait object, so expiring costs
//! a direct call.
//!
//! Deadlines must fire with no async runtime at all and inside any runtime,
//! never early, and cost nothing per deadline beyond an entry: no thread and
//! no task per entry. One lazily started thread per timer sleeps until the
//! earliest entry is due, takes every due entry out, expires them, and sleeps
//! again.
//!
//! Entries live in [`SHARDS`] ordered maps; each thread inserts into its own
//! shard, so threads that create deadlines in parallel do not contend on one
//! lock. Insertion and removal are O(log n). Owners remove their entry
//! eagerly when it is no longer needed, so a million deadlines created and
//! dropped leave nothing behind.
//!
//! The design leaves room for what is planned: another clock (the entry's
//! instant is the timer's only notion of time, read through [`Timer::now`]),
//! expiring entries elsewhere than on the timer thread (that is the entry
//! type's choice in `expire`), restarting the thread, and a wheel in place of
//! the maps (callers only see `insert` and `remove` by [`TimerKey`]).
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
//! # Lock order
//!
//! `sleep` before a shard. No timer lock is held while an entry expires or
//! drops: the thread collects due entries, unlocks, then expires them, and
//! [`Timer::remove`] hands the entry back to its caller to drop.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::unwind;

const SHARDS: usize = 16;
/// Due entries whose storage the thread keeps between bursts.
const KEEP_DUE: usize = 64;
const IDLE: u64 = u64::MAX;
const SCANNING: u64 = 0;

/// What the timer does with an entry once its instant is reached.
pub(crate) trait Expire: Send + 'static {
    /// Called on the timer thread with no timer lock held.
    fn expire(self);
}

/// Names an inserted entry, for [`Timer::remove`]. Unique per timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TimerKey {
    deadline: Instant,
    seq: u64,
    shard: u8,
}

struct Shard<E> {
    entries: BTreeMap<TimerKey, E>,
    /// Makes keys with equal deadlines distinct; only grows.
    next_seq: u64,
}

/// One timer: its entries and the thread that expires them.
pub(crate) struct Timer<E> {
    /// The thread's name.
    name: &'static str,
    shards: [Mutex<Shard<E>>; SHARDS],
    /// Written only by the timer thread: the instant it sleeps until, as
    /// nanoseconds since `epoch`, or `SCANNING` / `IDLE`.
    next_wake: AtomicU64,
    epoch: Instant,
    /// Held by the timer thread except while it expires entries or waits.
    sleep: Mutex<()>,
    wake: Condvar,
    /// Set once, by the first insert, when the thread is started.
    thread: OnceLock<()>,
    /// How many times a dead thread was replaced (see `Restart`).
    restarts: AtomicUsize,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // No user code runs under these locks; ignore poison regardless.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The shard of the calling thread: threads are spread round-robin.
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

impl<E: Expire> Timer<E> {
    /// An empty timer; its thread (named `name`) starts on the first insert.
    pub(crate) fn new(name: &'static str) -> Timer<E> {
        Timer {
            name,
            shards: std::array::from_fn(|_| {
                Mutex::new(Shard {
                    entries: BTreeMap::new(),
                    next_seq: 0,
                })
            }),
            next_wake: AtomicU64::new(IDLE),
            epoch: Instant::now(),
            sleep: Mutex::new(()),
            wake: Condvar::new(),
            thread: OnceLock::new(),
            restarts: AtomicUsize::new(0),
        }
    }

    /// The timer's clock.
    pub(crate) fn now(&self) -> Instant {
        Instant::now()
    }

    fn nanos(&self, at: Instant) -> u64 {
        // Deadlines before the epoch are due at once; clamp so they never
        // read as SCANNING.
        let nanos = at.saturating_duration_since(self.epoch).as_nanos();
        u64::try_from(nanos).unwrap_or(IDLE - 1).max(1)
    }

    /// Starts the timer's thread.
    fn spawn(&'static self) -> std::io::Result<()> {
        std::thread::Builder::new()
            .name(self.name.into())
            .spawn(move || self.run())
            .map(drop)
    }

    /// Arms `entry` to expire once `deadline` is reached, never before.
    pub(crate) fn insert(&'static self, deadline: Instant, entry: E) -> TimerKey {
        self.thread.get_or_init(|| {
            self.spawn()
                .expect("ctx: cannot start the deadline timer thread");
        });
        let index = my_shard();
        let key = {
            let mut shard = lock(&self.shards[index]);
            let key = TimerKey {
                deadline,
                seq: shard.next_seq,
                shard: index as u8,
            };
            shard.next_seq += 1;
            shard.entries.insert(key, entry);
            key
        };
        let next = self.next_wake.load(Ordering::SeqCst);
        if next == SCANNING || self.nanos(deadline) < next {
            let _sleep = lock(&self.sleep);
            self.wake.notify_one();
        }
        key
    }

    /// Disarms the entry of `key` and hands it back, or `None` if it has
    /// expired (or is expiring) already. The caller drops it, outside every
    /// timer lock.
    pub(crate) fn remove(&self, key: TimerKey) -> Option<E> {
        lock(&self.shards[usize::from(key.shard)])
            .entries
            .remove(&key)
    }

    fn run(&'static self) {
        // Declared before the lock guard, so it drops after it: a thread
        // that dies hands its due entries to a new one (see `Restart`).
        let mut due = Restart {
            timer: self,
            entries: Vec::new(),
        };
        let mut sleep = lock(&self.sleep);
        loop {
            self.next_wake.store(SCANNING, Ordering::SeqCst);
            let now = self.now();
            let mut earliest: Option<Instant> = None;
            for shard in &self.shards {
                let mut shard = lock(shard);
                while let Some(entry) = shard.entries.first_entry() {
                    // Never early: only entries whose instant has been reached.
                    if entry.key().deadline > now {
                        let at = entry.key().deadline;
                        earliest = Some(earliest.map_or(at, |e| e.min(at)));
                        break;
                    }
                    due.entries.push(entry.remove_entry());
                }
            }
            #[cfg(test)]
            tests::maybe_die(&due.entries);
            if !due.entries.is_empty() {
                drop(sleep);
                // Oldest last, so that `pop` expires in deadline order and a
                // dying thread hands on exactly the entries not yet expired.
                due.entries.reverse();
                while let Some((_, entry)) = due.entries.pop() {
                    // The entry runs user code (a cancel walk, callbacks, the
                    // drop of user values): nothing it does may end this
                    // thread, on which every deadline of the process depends.
                    unwind::contain(|| entry.expire());
                }
                // Storage kept for the next burst, but not the peak of a
                // burst of a million: process memory returns to baseline.
                if due.entries.capacity() > KEEP_DUE {
                    due.entries = Vec::new();
                }
                sleep = lock(&self.sleep);
                continue;
            }
            match earliest {
                Some(at) => {
                    self.next_wake.store(self.nanos(at), Ordering::SeqCst);
                    let wait = at
                        .saturating_duration_since(now)
                        .max(Duration::from_micros(1));
                    sleep = self
                        .wake
                        .wait_timeout(sleep, wait)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                None => {
                    self.next_wake.store(IDLE, Ordering::SeqCst);
                    sleep = self.wake.wait(sleep).unwrap_or_else(|e| e.into_inner());
                }
            }
        }
    }
}

/// The due entries of a running timer thread. If the thread ever dies (a
/// bug in ctx: user code is contained), its `Drop` puts the entries not yet
/// expired back and starts a new thread, so every armed deadline still
/// fires; if no thread can be started, the process aborts with a message
/// rather than go on with deadlines that never fire.
struct Restart<E: Expire> {
    timer: &'static Timer<E>,
    entries: Vec<(TimerKey, E)>,
}

impl<E: Expire> Drop for Restart<E> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for (key, entry) in self.entries.drain(..) {
            lock(&self.timer.shards[usize::from(key.shard)])
                .entries
                .insert(key, entry);
        }
        self.timer.restarts.fetch_add(1, Ordering::Relaxed);
        if let Err(err) = self.timer.spawn() {
            eprintln!("ctx: the deadline timer thread died and cannot be restarted ({err}); aborting, since no deadline would fire");
            std::process::abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc;
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    use super::{Expire, Timer};

    struct Report(mpsc::Sender<u32>, u32);

    impl Expire for Report {
        fn expire(self) {
            let _ = self.0.send(self.1);
        }
    }

    fn timer() -> &'static Timer<Report> {
        static TIMER: OnceLock<Timer<Report>> = OnceLock::new();
        TIMER.get_or_init(|| Timer::new("ctx-timer-test"))
    }

    #[test]
    fn entries_expire_in_deadline_order_and_never_early() {
        let (tx, rx) = mpsc::channel();
        let start = Instant::now();
        let late = start + Duration::from_millis(40);
        let early = start + Duration::from_millis(20);
        timer().insert(late, Report(tx.clone(), 2));
        timer().insert(early, Report(tx, 1));
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(1));
        assert!(Instant::now() >= early, "expired before its instant");
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(2));
        assert!(Instant::now() >= late, "expired before its instant");
    }

    /// The planted fault for the restart test: the thread of the timer
    /// named `ctx-timer-dies` panics once, holding due entries.
    static DIE: AtomicBool = AtomicBool::new(false);

    pub(super) fn maybe_die<T>(due: &[T]) {
        let dying = std::thread::current().name() == Some("ctx-timer-dies");
        if dying && !due.is_empty() && DIE.swap(false, Ordering::SeqCst) {
            panic!("planted: the timer thread dies");
        }
    }

    /// Reports, then panics with a payload whose drop panics too.
    struct Panics(mpsc::Sender<u32>, u32);

    impl Expire for Panics {
        fn expire(self) {
            let _ = self.0.send(self.1);
            std::panic::panic_any(crate::unwind::tests::Bomb);
        }
    }

    #[test]
    fn an_entry_whose_panic_payload_panics_on_drop_does_not_stop_the_timer() {
        static TIMER: OnceLock<Timer<Panics>> = OnceLock::new();
        let timer = TIMER.get_or_init(|| Timer::new("ctx-timer-panics"));
        let (tx, rx) = mpsc::channel();
        timer.insert(Instant::now(), Panics(tx.clone(), 1));
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(1));
        // Armed after the double panic: the same thread must still be there.
        timer.insert(Instant::now() + Duration::from_millis(10), Panics(tx, 2));
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(2));
        assert_eq!(
            timer.restarts.load(Ordering::Relaxed),
            0,
            "contained, not restarted"
        );
    }

    #[test]
    fn a_timer_thread_that_dies_is_restarted_and_its_due_entries_still_fire() {
        static TIMER: OnceLock<Timer<Report>> = OnceLock::new();
        let timer = TIMER.get_or_init(|| Timer::new("ctx-timer-dies"));
        let (tx, rx) = mpsc::channel();
        DIE.store(true, Ordering::SeqCst);
        let now = Instant::now();
        for i in 0..3 {
            timer.insert(now, Report(tx.clone(), i));
        }
        timer.insert(now + Duration::from_millis(50), Report(tx, 3));
        let mut got: Vec<u32> = (0..4)
            .map(|_| {
                rx.recv_timeout(Duration::from_secs(10))
                    .expect("every entry fires")
            })
            .collect();
        got.sort();
        assert_eq!(got, [0, 1, 2, 3]);
        assert!(!DIE.load(Ordering::SeqCst), "the planted panic happened");
        assert_eq!(timer.restarts.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_removed_entry_is_handed_back_and_never_expires() {
        let (tx, rx) = mpsc::channel();
        let key = timer().insert(
            Instant::now() + Duration::from_millis(30),
            Report(tx.clone(), 7),
        );
        let removed = timer().remove(key).expect("the entry was armed");
        assert_eq!(removed.1, 7);
        assert!(timer().remove(key).is_none(), "removed once only");
        timer().insert(Instant::now() + Duration::from_millis(60), Report(tx, 8));
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(10)),
            Ok(8),
            "7 never fires"
        );
    }
}
