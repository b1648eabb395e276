//! A canceler that loses the race for a node waits for the winner's walk to
//! settle the subtree (so that every `cancel` returns with the subtree done)
//! parked, not spinning: through a million-node walk it uses next to no CPU.

#![cfg(target_os = "linux")]

use std::sync::{Arc, Barrier};
use std::time::Duration;

use ctx::{Context, Error};

/// CPU time this thread has used so far (Linux: the first field of
/// `/proc/thread-self/schedstat`, in nanoseconds).
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").expect("schedstat");
    let nanos = stat.split_whitespace().next().unwrap().parse().unwrap();
    Duration::from_nanos(nanos)
}

#[test]
fn a_losing_canceler_parks_until_the_walk_settles() {
    const DEPTH: usize = 1_000_000;
    let (root, guard) = Context::background().with_cancel();
    let mut chain = Vec::with_capacity(DEPTH);
    let mut last = root.clone();
    for _ in 0..DEPTH {
        let (next, g) = last.with_cancel();
        chain.push(g);
        last = next;
    }
    let handle = guard.handle();
    let start = Arc::new(Barrier::new(2));
    let cancelers: Vec<_> = (0..2)
        .map(|_| {
            let handle = handle.clone();
            let start = start.clone();
            let last = last.clone();
            std::thread::spawn(move || {
                start.wait();
                let before = thread_cpu();
                handle.cancel();
                // Whoever returns, returns with the whole subtree done.
                assert_eq!(last.err(), Some(Error::Canceled));
                thread_cpu() - before
            })
        })
        .collect();
    let mut cpu: Vec<Duration> = cancelers.into_iter().map(|t| t.join().unwrap()).collect();
    cpu.sort();
    let (loser, winner) = (cpu[0], cpu[1]);
    assert!(
        winner > Duration::from_millis(5),
        "the walk was too short to measure: {winner:?}"
    );
    assert!(
        loser * 4 < winner,
        "the losing canceler used {loser:?} of CPU while the walk took {winner:?}: it spins"
    );
    drop(chain);
    drop(guard);
}
