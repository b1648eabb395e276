//! Multi-thread stress: many threads derive, cancel and wait on one shared
//! subtree at once. Bounded by count, so the run time follows the machine.
//! Checked afterwards: nothing deadlocked (the test finished), and every
//! node is done exactly when it should be.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use ctx::{Context, Error};

mod support;
use support::Rng;

#[test]
fn derive_and_cancel_race_with_the_parent_cancel_and_never_lose_a_child() {
    for round in 0..200u64 {
        let (parent, cancel) = Context::background().with_cancel();
        let barrier = Arc::new(Barrier::new(3));
        let derivers: Vec<_> = (0..2)
            .map(|t| {
                let parent = parent.clone();
                let barrier = barrier.clone();
                thread::spawn(move || {
                    let mut rng = Rng(round * 7 + t + 1);
                    barrier.wait();
                    let mut kept = Vec::new();
                    for _ in 0..200 {
                        let (child, guard) = parent.with_cancel();
                        match rng.next() % 3 {
                            0 => drop(guard),
                            1 => guard.cancel(),
                            _ => kept.push((child, guard)),
                        }
                    }
                    kept
                })
            })
            .collect();
        barrier.wait();
        cancel.cancel();
        for d in derivers {
            for (child, guard) in d.join().unwrap() {
                // Derived before or after the cancel: done either way.
                assert_eq!(child.err(), Some(Error::Canceled));
                drop(guard);
            }
        }
    }
}

#[test]
fn many_threads_hammer_one_subtree_then_every_node_is_checked() {
    let (root, root_guard) = Context::background().with_cancel();
    let (shared, _shared_guard) = root.with_timeout(Duration::from_secs(3600));
    let threads = 8;
    let barrier = Arc::new(Barrier::new(threads));
    let workers: Vec<_> = (0..threads as u64)
        .map(|t| {
            let shared = shared.clone();
            let barrier = barrier.clone();
            thread::spawn(move || {
                let mut rng = Rng(t * 31 + 5);
                let mut live = Vec::new();
                barrier.wait();
                for i in 0..20_000u64 {
                    match rng.next() % 6 {
                        0 | 1 => {
                            let base = if live.is_empty() || rng.next().is_multiple_of(2) {
                                shared.clone()
                            } else {
                                let (c, _): &(Context, _) =
                                    &live[(rng.next() as usize) % live.len()];
                                c.with_value(i)
                            };
                            live.push(base.with_cancel());
                        }
                        2 => {
                            let (c, g) =
                                shared.with_timeout(Duration::from_micros(rng.next() % 200));
                            live.push((c, g));
                        }
                        3 if !live.is_empty() => {
                            let (c, g) = live.swap_remove((rng.next() as usize) % live.len());
                            g.cancel();
                            assert!(c.is_done());
                        }
                        4 if !live.is_empty() => {
                            let (c, _) = &live[(rng.next() as usize) % live.len()];
                            // Sticky: once waiting reports an error, err() agrees.
                            if let Some(err) = c.wait_timeout(Duration::ZERO) {
                                assert_eq!(c.err(), Some(err));
                            }
                            futures::executor::block_on(async {
                                futures::future::select(c.done(), futures::future::ready(())).await;
                            });
                        }
                        _ => {
                            if live.len() > 64 {
                                live.drain(..32);
                            }
                        }
                    }
                }
                live
            })
        })
        .collect();
    let survivors: Vec<_> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert_eq!(shared.err(), None, "nobody canceled the shared node");
    root_guard.cancel();
    for (c, _g) in &survivors {
        assert!(c.is_done(), "{c:?} missed the root's cancel");
    }
    assert_eq!(shared.err(), Some(Error::Canceled));
}

#[test]
fn one_cancel_wakes_every_thread_blocked_on_a_deep_descendant() {
    let (root, guard) = Context::background().with_cancel();
    let mut leaf = root.clone();
    let mut guards = Vec::new();
    for i in 0..1000u32 {
        let (c, g) = leaf.with_value(i).with_cancel();
        guards.push(g);
        leaf = c;
    }
    let waiters: Vec<_> = (0..16)
        .map(|_| {
            let leaf = leaf.clone();
            thread::spawn(move || leaf.wait_blocking())
        })
        .collect();
    guard.cancel();
    for w in waiters {
        assert_eq!(w.join().unwrap(), Error::Canceled);
    }
}

/// Value cells (`tree/value_node.rs`, counted by hand) shared by many
/// threads: every thread derives from a shared chain, looks values up,
/// hands contexts to other threads and drops them there; at the end each
/// value has been dropped exactly once and every lookup saw its value.
#[test]
fn value_contexts_cloned_and_dropped_across_threads_drop_each_value_once() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;

    static DROPS: AtomicUsize = AtomicUsize::new(0);
    struct Counted(usize);
    impl Drop for Counted {
        fn drop(&mut self) {
            DROPS.fetch_add(1, Ordering::SeqCst);
        }
    }

    const THREADS: usize = 4;
    const ROUNDS: usize = 2_000;
    let shared = (0..40u64).fold(Context::background().with_value(Counted(7)), |c, i| {
        if i % 10 == 0 {
            c.with_cancel().0
        } else {
            c.with_value(i)
        }
    });
    let barrier = Arc::new(Barrier::new(THREADS));
    let (senders, receivers): (Vec<_>, Vec<_>) =
        (0..THREADS).map(|_| mpsc::channel::<Context>()).unzip();
    let handles: Vec<_> = receivers
        .into_iter()
        .enumerate()
        .map(|(me, inbox)| {
            let shared = shared.clone();
            let next = senders[(me + 1) % THREADS].clone();
            let barrier = barrier.clone();
            thread::spawn(move || {
                barrier.wait();
                for round in 0..ROUNDS {
                    let mine = shared.with_value(Counted(me * ROUNDS + round));
                    assert_eq!(
                        mine.value::<Counted>().map(|c| c.0),
                        Some(me * ROUNDS + round)
                    );
                    // Pass it on; drop what the neighbour passed (its last
                    // handle, so its value is freed on this thread).
                    next.send(mine.with_value(round as u32)).unwrap();
                    if let Ok(theirs) = inbox.recv() {
                        assert!(theirs.value::<u32>().is_some());
                        assert!(theirs.value::<Counted>().is_some());
                        drop(theirs);
                    }
                }
                drop(next);
                // Whatever is still in flight.
                inbox.into_iter().for_each(drop);
            })
        })
        .collect();
    drop(senders);
    for handle in handles {
        handle.join().unwrap();
    }
    assert_eq!(
        DROPS.load(Ordering::SeqCst),
        THREADS * ROUNDS,
        "each value once"
    );
    assert_eq!(shared.value::<Counted>().map(|c| c.0), Some(7));
    drop(shared);
    assert_eq!(DROPS.load(Ordering::SeqCst), THREADS * ROUNDS + 1);
}
