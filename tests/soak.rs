//! Soak and leak tests at scale: many millions of cycles, with live memory
//! checked to the byte, and 100 threads hammering one subtree.
//!
//! `.ci/run` runs this target in release mode (`cargo test --release --test
//! soak`), at full scale: 10,000,000 derive/cancel cycles under one
//! long-lived parent, 1,000,000 timeouts created and dropped, 100 threads for
//! 2.5 s. A debug build (`cargo test` of the workspace) runs the same code at
//! 1/50 of the counts and 0.5 s. `CTX_SOAK_SECS` sets the hammer's duration.
//!
//! # Counting memory across threads
//!
//! A counting global allocator tags every allocation with the *group* of the
//! thread that made it (in a small header), and counts its bytes against that
//! group until it is freed, on whatever thread: a node made by a hammer thread
//! and freed by the timer thread, or by the main thread, is still accounted
//! for. Threads outside a test (the harness, the timer thread) are group 0,
//! which is not counted. The tests run one at a time (a lock), so no other
//! test allocates while one measures, and they share one group (see
//! [`Group`]).

// Counted to the byte, which the census of the `debug` feature (a
// registry entry per context, shards that keep their peak size) would
// upset: skipped under it. `.ci/run` runs this target without it.
#![cfg(not(feature = "debug"))]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use ctx::{AfterFunc, CancelGuard, Context, Error};

mod support;
use support::Rng;

const GROUPS: usize = 2;
/// Room in front of each allocation for its group; keeps 16-byte alignment.
const HEADER: usize = 16;

static LIVE: [AtomicIsize; GROUPS] = [const { AtomicIsize::new(0) }; GROUPS];
static PEAK: [AtomicIsize; GROUPS] = [const { AtomicIsize::new(0) }; GROUPS];

thread_local! {
    static GROUP: Cell<usize> = const { Cell::new(0) };
}

struct Tagged;

fn full_layout(layout: Layout) -> Option<(Layout, usize)> {
    let offset = layout.align().max(HEADER);
    let full = Layout::from_size_align(layout.size().checked_add(offset)?, offset).ok()?;
    Some((full, offset))
}

unsafe impl GlobalAlloc for Tagged {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some((full, offset)) = full_layout(layout) else {
            return std::ptr::null_mut();
        };
        // SAFETY: `full` has a non-zero size (it includes the header).
        let base = unsafe { System.alloc(full) };
        if base.is_null() {
            return base;
        }
        // try_with: allocations during thread teardown count as group 0.
        let group = GROUP.try_with(Cell::get).unwrap_or(0);
        // SAFETY: `offset` >= 16 bytes lie in front of the returned pointer,
        // inside the block; the group word sits right before it, aligned.
        unsafe {
            let ptr = base.add(offset);
            ptr.cast::<usize>().sub(1).write(group);
            if group != 0 {
                let size = layout.size() as isize;
                let live = LIVE[group].fetch_add(size, Ordering::Relaxed) + size;
                PEAK[group].fetch_max(live, Ordering::Relaxed);
            }
            ptr
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let (full, offset) = full_layout(layout).expect("this layout was allocated");
        // SAFETY: `ptr` came from `alloc` above with this layout: the group
        // word is right before it and the block starts `offset` before it.
        unsafe {
            let group = ptr.cast::<usize>().sub(1).read();
            if group != 0 {
                LIVE[group].fetch_sub(layout.size() as isize, Ordering::Relaxed);
            }
            System.dealloc(ptr.sub(offset), full);
        }
    }
}

#[global_allocator]
static ALLOC: Tagged = Tagged;

/// The counting group of the soak tests: every thread that joins it has its
/// allocations counted against it, until freed, wherever that happens.
///
/// One group for all the tests (they run one at a time, see [`serial`]), not
/// one each: the timer shards' B-tree leaves outlive a test, and when a map
/// shrinks back to one leaf, which leaf survives depends on the order of
/// removals. Were a leaf allocated under an earlier test's group replaced by
/// one allocated here, this test would count a leaf it does not hold. With
/// one group, such a swap nets to zero.
#[derive(Clone, Copy)]
struct Group(usize);

impl Group {
    fn soak() -> Group {
        Group(1)
    }

    fn join(self) {
        GROUP.with(|g| g.set(self.0));
    }

    fn live(self) -> isize {
        LIVE[self.0].load(Ordering::SeqCst)
    }

    /// Restarts the peak at the current live count.
    fn reset_peak(self) {
        PEAK[self.0].store(self.live(), Ordering::SeqCst);
    }

    fn peak(self) -> isize {
        PEAK[self.0].load(Ordering::SeqCst)
    }
}

/// Prints to stderr uncounted: output capture and stderr keep buffers that
/// would otherwise look like growth.
macro_rules! report {
    ($($arg:tt)*) => {{
        let group = GROUP.with(|g| g.replace(0));
        eprintln!($($arg)*);
        GROUP.with(|g| g.set(group));
    }};
}

/// One soak test at a time (see the module doc).
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Spawns a thread that counts its allocations against `group`, without
/// counting std's own bookkeeping for the thread (its handle, its result
/// slot, the boxed closure): std frees those on its own schedule around the
/// thread's exit, which is not what these tests measure.
fn spawn_in<T: Send + 'static>(
    group: Group,
    f: impl FnOnce() -> T + Send + 'static,
) -> thread::JoinHandle<T> {
    let outer = GROUP.with(|g| g.replace(0));
    let handle = thread::spawn(move || {
        group.join();
        f()
    });
    GROUP.with(|g| g.set(outer));
    handle
}

/// Runs one soak test: alone (see [`serial`]), on a thread of its own that
/// has exited, with everything it kept for itself, before the next test
/// takes its baseline.
fn measured(body: fn(Group)) {
    let _serial = serial();
    let group = Group::soak();
    if let Err(panic) = spawn_in(group, move || body(group)).join() {
        std::panic::resume_unwind(panic);
    }
}

/// Full scale in release, 1/50 in debug builds.
const fn scaled(n: u64) -> u64 {
    if cfg!(debug_assertions) {
        n / 50
    } else {
        n
    }
}

const LONG: Duration = Duration::from_secs(30);

/// Starts the timer thread and gives every timer shard its one lasting
/// B-tree leaf, allocated by this group: an emptied map keeps one leaf, and
/// which leaf survives depends on the order of removals, so the group's
/// count is stable only if the leaf it replaces was counted against it too.
/// Threads take shards round-robin, so 16 threads in a row cover all 16.
fn warm_up_timer_shards(group: Group) {
    for _ in 0..16 {
        spawn_in(group, || {
            drop(Context::background().with_timeout(Duration::from_secs(3600)));
        })
        .join()
        .unwrap();
    }
    drop(Context::background().with_timeout(Duration::from_secs(3600)));
    // The first timeout of the process starts the timer thread, from a
    // thread counted here; the new thread frees part of what its spawn
    // allocated only once it runs. A fired deadline shows it has.
    drain_timer();
}

/// Returns once the timer thread has finished with every entry that was due
/// before this call: it fires one short deadline, then another armed only
/// after the first fired, which must then come from a later scan, started
/// after the earlier scan had dropped all its entries.
///
/// The sentinels themselves are not counted: our wait returns as soon as the
/// last one's error is set, while the timer thread may still be finishing
/// its cancel, holding the node and about to wake (and drop) our waker.
fn drain_timer() {
    let group = GROUP.with(|g| g.replace(0));
    for _ in 0..2 {
        let (sentinel, _guard) = Context::background().with_timeout(Duration::from_millis(1));
        assert_eq!(sentinel.wait_timeout(LONG), Some(Error::DeadlineExceeded));
    }
    GROUP.with(|g| g.set(group));
}

/// One derive/cancel cycle under `parent`; `i` picks its kind.
fn cycle(parent: &Context, waker: &std::task::Waker, i: u64) {
    let (child, guard) = parent.with_cancel();
    match i % 8 {
        0 => guard.cancel_with_cause(std::fmt::Error),
        1 => {
            // A grandchild, canceled by the child's walk.
            let (grandchild, _g) = child.with_cancel();
            guard.cancel();
            assert!(grandchild.is_done());
        }
        2 => {
            // A registered waiter, taken and woken by the cancel.
            let mut done = child.done();
            let polled = futures::FutureExt::poll_unpin(
                &mut done,
                &mut std::task::Context::from_waker(waker),
            );
            assert!(polled.is_pending());
            guard.cancel();
            drop(done);
        }
        3 => {
            let _after = child.with_value(i).after_func(|| {});
            drop(guard);
        }
        4 => {
            // A waiter on the long-lived parent, registered and
            // dropped: its slot must be given back.
            let mut done = parent.done();
            let polled = futures::FutureExt::poll_unpin(
                &mut done,
                &mut std::task::Context::from_waker(waker),
            );
            assert!(polled.is_pending());
            drop(done);
            drop(guard);
        }
        _ => drop(guard),
    }
    assert!(child.is_done());
}

#[test]
fn ten_million_derive_cancel_cycles_under_one_parent_leave_memory_at_baseline() {
    measured(derive_cancel_cycles);
}

fn derive_cancel_cycles(group: Group) {
    warm_up_timer_shards(group);
    let (parent, _parent_guard) = Context::background().with_cancel();
    // Long-lived siblings: every unlink below moves one of them in the
    // parent's list (swap_remove), so their slots are exercised too.
    let siblings: Vec<_> = (0..64).map(|_| parent.with_cancel()).collect();
    let (waker_ctx, _waker_guard) = parent.with_cancel();
    // A real waker (not the no-op one, which done() does not register).
    let waker = std::task::Waker::from(Arc::new(Wakeup));
    // Warm up: one cycle of each kind first, so the parent's child list and
    // waiter slab have the capacity they keep (amortized growth is not a
    // leak; growth after this is).
    for i in 0..8 {
        cycle(&parent, &waker, i);
    }
    let mut peaks = Vec::with_capacity(10);
    let baseline = group.live();
    const MILLION: u64 = scaled(1_000_000);
    let millions = 10;
    let started = Instant::now();
    for m in 0..millions {
        group.reset_peak();
        for i in 0..MILLION {
            cycle(&parent, &waker, i);
        }
        let live = group.live() - baseline;
        let peak = group.peak() - baseline;
        report!(
            "million {}: live {live} B above baseline, peak {peak} B, {:?} so far",
            m + 1,
            started.elapsed()
        );
        assert_eq!(live, 0, "bytes held after million {}", m + 1);
        peaks.push(peak);
    }
    let (first, last) = (peaks[0], peaks[millions - 1]);
    assert!(
        last <= first,
        "peak grew from {first} B in the first million to {last} B in the last"
    );
    // The waiter on a long-lived sibling still works after all that.
    let (wc, wg) = waker_ctx.with_cancel();
    wg.cancel();
    assert_eq!(wc.err(), Some(Error::Canceled));
    assert!(siblings.iter().all(|(c, _)| !c.is_done()));
    report!(
        "{} derive/cancel cycles in {:?}",
        MILLION * millions as u64,
        started.elapsed()
    );
}

#[test]
fn a_million_timeouts_created_and_dropped_leave_memory_at_baseline() {
    measured(timeouts_created_and_dropped);
}

fn timeouts_created_and_dropped(group: Group) {
    warm_up_timer_shards(group);
    let (parent, _parent_guard) = Context::background().with_cancel();
    let mut peaks = Vec::with_capacity(10);
    let baseline = group.live();
    const TENTH: u64 = scaled(100_000);
    let started = Instant::now();
    for tenth in 0..10u64 {
        group.reset_peak();
        for i in 0..TENTH {
            let n = tenth * TENTH + i;
            match n % 8 {
                // Already passed: canceled synchronously, no timer entry.
                0 => {
                    let past = Instant::now() - Duration::from_millis(1 + n % 100);
                    let (c, _g) = parent.with_deadline_cause(past, std::fmt::Error);
                    assert_eq!(c.err(), Some(Error::DeadlineExceeded));
                }
                // A deadline later than the parent's: no timer of its own.
                1 => {
                    let (p, _pg) = parent.with_timeout(Duration::from_secs(3600));
                    let (c, _cg) = p.with_timeout(Duration::from_secs(7200));
                    assert!(!c.is_done());
                }
                // Canceled explicitly before firing, with a cause.
                2 => {
                    let (c, g) = parent.with_timeout(Duration::from_secs(3600 + n % 7));
                    g.cancel_with_cause(std::fmt::Error);
                    assert_eq!(c.err(), Some(Error::Canceled));
                }
                // Dropped: the guard's cancel removes the timer entry.
                _ => {
                    let (c, _g) = parent.with_timeout(Duration::from_secs(3600 + n % 7));
                    assert!(!c.is_done());
                }
            }
        }
        let live = group.live() - baseline;
        let peak = group.peak() - baseline;
        report!(
            "timeouts {}: live {live} B, peak {peak} B",
            (tenth + 1) * TENTH
        );
        assert_eq!(live, 0, "bytes held after {} timeouts", (tenth + 1) * TENTH);
        peaks.push(peak);
    }
    assert!(
        peaks[9] <= peaks[0],
        "peak grew from {} B in the first tenth to {} B in the last",
        peaks[0],
        peaks[9]
    );
    report!("{} timeouts in {:?}", 10 * TENTH, started.elapsed());
}

struct Wakeup;

impl std::task::Wake for Wakeup {
    fn wake(self: Arc<Self>) {}
}

/// The subtree every hammer thread shares: a root, a long deadline, a value,
/// and slots whose contexts threads derive from and now and then replace
/// (canceling the old one under everyone's feet).
struct Subtree {
    root: Context,
    value: Context,
    slots: Vec<Mutex<(Context, CancelGuard)>>,
}

impl Subtree {
    fn slot(&self, i: usize) -> Context {
        self.slots[i].lock().unwrap().0.clone()
    }

    /// Cancels slot `i` and puts a fresh context there.
    fn recycle(&self, i: usize) {
        let fresh = self.value.with_cancel();
        let old = std::mem::replace(&mut *self.slots[i].lock().unwrap(), fresh);
        // Cancel outside the slot lock; dropping the guard does it.
        drop(old);
    }
}

/// A node a hammer thread made, with what is needed to check it afterwards.
struct Record {
    ctx: Context,
    /// What it was derived from (kept alive for the check).
    parent: Context,
    guard: Option<CancelGuard>,
    /// Whether this thread canceled it.
    canceled: bool,
}

struct Callback {
    after: AfterFunc,
    ctx: Context,
    calls: Arc<AtomicUsize>,
    stopped: bool,
}

fn hammer_time() -> Duration {
    let default = if cfg!(debug_assertions) { 0.5 } else { 2.5 };
    let secs = std::env::var("CTX_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    Duration::from_secs_f64(secs)
}

fn hammer(subtree: &Subtree, seed: u64, stop: &AtomicBool) -> (Vec<Record>, Vec<Callback>, u64) {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(1));
    let mut records: Vec<Record> = Vec::new();
    let mut callbacks = Vec::new();
    let mut ops = 0u64;
    while !stop.load(Ordering::Relaxed) {
        ops += 1;
        let pick_base = |rng: &mut Rng, records: &Vec<Record>| -> Context {
            if records.is_empty() || rng.below(3) == 0 {
                subtree.slot(rng.below(subtree.slots.len()))
            } else {
                records[rng.below(records.len())].ctx.clone()
            }
        };
        match rng.below(16) {
            0..=3 => {
                let parent = pick_base(&mut rng, &records);
                let base = if rng.below(2) == 0 {
                    parent.clone()
                } else {
                    parent.with_value(ops)
                };
                let (ctx, guard) = base.with_cancel();
                records.push(Record {
                    ctx,
                    parent: base,
                    guard: Some(guard),
                    canceled: false,
                });
            }
            4 | 5 => {
                let parent = pick_base(&mut rng, &records);
                let timeout = if rng.below(2) == 0 {
                    Duration::from_micros(rng.next() % 500)
                } else {
                    Duration::from_secs(3600)
                };
                let (ctx, guard) = parent.with_timeout(timeout);
                records.push(Record {
                    ctx,
                    parent,
                    guard: Some(guard),
                    canceled: false,
                });
            }
            6 | 7 if !records.is_empty() => {
                let r = rng.below(records.len());
                let record = &mut records[r];
                if let Some(guard) = record.guard.take() {
                    if rng.below(2) == 0 {
                        guard.cancel();
                    } else {
                        guard.cancel_with_cause(std::fmt::Error);
                    }
                    record.canceled = true;
                }
                assert!(record.ctx.is_done(), "done once its cancel returned");
            }
            8 if !records.is_empty() => {
                records.swap_remove(rng.below(records.len()));
            }
            9 | 10 => {
                let ctx = pick_base(&mut rng, &records);
                futures::executor::block_on(futures::future::select(
                    ctx.done(),
                    std::future::ready(()),
                ));
            }
            11 => {
                let ctx = pick_base(&mut rng, &records);
                if let Some(err) = ctx.wait_timeout(Duration::from_micros(50)) {
                    assert_eq!(ctx.err(), Some(err), "sticky");
                }
            }
            12 => {
                let ctx = pick_base(&mut rng, &records);
                let calls = Arc::new(AtomicUsize::new(0));
                let after = ctx.after_func({
                    let calls = calls.clone();
                    move || {
                        calls.fetch_add(1, Ordering::SeqCst);
                    }
                });
                let stopped = rng.below(4) == 0 && after.stop();
                callbacks.push(Callback {
                    after,
                    ctx,
                    calls,
                    stopped,
                });
                if callbacks.len() > 64 {
                    callbacks.swap_remove(0);
                }
            }
            13 if rng.below(64) == 0 => subtree.recycle(rng.below(subtree.slots.len())),
            _ => {
                if records.len() > 256 {
                    records.drain(..128);
                }
            }
        }
    }
    (records, callbacks, ops)
}

#[test]
fn a_hundred_threads_hammer_one_subtree_then_every_node_is_checked() {
    measured(hammer_one_subtree);
}

fn hammer_one_subtree(group: Group) {
    warm_up_timer_shards(group);
    let baseline = group.live();
    let (root, root_guard) = Context::background().with_cancel();
    let (deadline, deadline_guard) = root.with_timeout(Duration::from_secs(3600));
    let value = deadline.with_value("shared");
    let slots = (0..8).map(|_| Mutex::new(value.with_cancel())).collect();
    let subtree = Arc::new(Subtree {
        root: root.clone(),
        value,
        slots,
    });
    const THREADS: usize = 100;
    let run = hammer_time();
    // Everything made only to run the threads is gone before memory is checked.
    let (records, callbacks, ops) = {
        let stop = Arc::new(AtomicBool::new(false));
        let barrier = Arc::new(Barrier::new(THREADS + 1));
        // Counts stopped threads (a Condvar: unlike a channel's receiver it
        // keeps no per-thread state alive after use).
        let stopped = Arc::new((Mutex::new(0usize), Condvar::new()));
        let workers: Vec<_> = (0..THREADS as u64)
            .map(|t| {
                let subtree = subtree.clone();
                let stop = stop.clone();
                let barrier = barrier.clone();
                let stopped = stopped.clone();
                spawn_in(group, move || {
                    barrier.wait();
                    let out = hammer(&subtree, t, &stop);
                    *stopped.0.lock().unwrap() += 1;
                    stopped.1.notify_all();
                    out
                })
            })
            .collect();
        barrier.wait();
        // The clock is what bounds this test: it runs for a fixed time.
        thread::sleep(run);
        stop.store(true, Ordering::Relaxed);
        // No deadlock: every thread stops promptly once told to.
        let (count, timeout) = stopped
            .1
            .wait_timeout_while(stopped.0.lock().unwrap(), LONG, |n| *n < THREADS)
            .unwrap();
        assert!(
            !timeout.timed_out(),
            "{} of {THREADS} hammer threads did not stop: deadlock?",
            THREADS - *count
        );
        drop(count);
        let mut records = Vec::new();
        let mut callbacks = Vec::new();
        let mut ops = 0;
        for w in workers {
            let (r, c, n) = w.join().unwrap();
            records.extend(r);
            callbacks.extend(c);
            ops += n;
        }
        (records, callbacks, ops)
    };
    report!(
        "{THREADS} threads, {run:?}: {ops} operations, {} nodes and {} callbacks left to check",
        records.len(),
        callbacks.len()
    );

    // Quiescent now, but for deadlines still firing: wait those out first.
    let now = Instant::now();
    for r in &records {
        if r.ctx.deadline().is_some_and(|d| d <= now) {
            assert!(
                r.ctx.wait_timeout(LONG).is_some(),
                "{:?}: deadline lost",
                r.ctx
            );
        }
    }
    drain_timer();
    assert_eq!(subtree.root.err(), None, "nobody canceled the root");
    let now = Instant::now();
    for r in &records {
        let (ctx, parent) = (&r.ctx, &r.parent);
        let err = ctx.err();
        let polled = futures::FutureExt::now_or_never(ctx.done());
        assert_eq!(polled, err, "{ctx:?}: done() disagrees with err()");
        if parent.is_done() {
            assert!(err.is_some(), "{ctx:?}: its parent is done, it is not");
        }
        match err {
            Some(Error::DeadlineExceeded) => {
                let deadline = ctx.deadline().expect("a deadline error without a deadline");
                assert!(deadline <= now, "{ctx:?}: done before its deadline");
            }
            Some(Error::Canceled) => assert!(
                r.canceled || parent.is_done(),
                "{ctx:?}: canceled, but neither by its guard nor by its parent"
            ),
            None => {
                assert!(!r.canceled, "{ctx:?}: live after its cancel returned");
                assert!(
                    ctx.deadline().is_none_or(|d| d > now),
                    "{ctx:?}: deadline passed, live"
                );
            }
        }
    }
    for c in &callbacks {
        let calls = c.calls.load(Ordering::SeqCst);
        let expected = usize::from(!c.stopped && c.ctx.is_done());
        assert_eq!(calls, expected, "{:?}: callback ran {calls} times", c.ctx);
    }

    // The root's cancel reaches everything, synchronously.
    root_guard.cancel();
    for r in &records {
        assert!(r.ctx.is_done(), "{:?} missed the root's cancel", r.ctx);
    }
    for c in &callbacks {
        assert_eq!(c.calls.load(Ordering::SeqCst), usize::from(!c.stopped));
        assert!(!c.after.stop(), "ran or stopped already");
    }

    // And everything comes back: nodes made on 100 threads, freed here.
    drop((records, callbacks, subtree, root, deadline, deadline_guard));
    drain_timer();
    assert_eq!(group.live(), baseline, "bytes still held after the hammer");
}
