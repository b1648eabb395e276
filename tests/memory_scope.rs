//! A long-lived scope gives back the memory a burst took: after 100,000
//! tasks queued behind a limit, 100,000 tasks running at once, and 100,000
//! waiters in `ready()`, process-wide live bytes return to their baseline
//! while the scope still runs. The allocator counts every thread (tokio's workers included), as
//! `tests/memory_process.rs` does.
//!
//! One test function, so that nothing else in this process allocates
//! meanwhile.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ctx::{Context, Error, Scope};
use tokio::sync::Semaphore;

#[path = "support/process_bytes.rs"]
mod process_bytes;
use process_bytes::{live, SLACK};

/// The burst.
const TASKS: usize = 100_000;

/// Waits (up to 10 s) until `done` tasks have finished and the scope holds
/// none, running or queued.
async fn drained(s: &Scope<Error>, finished: &AtomicUsize, done: usize) {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let idle = format!("{s:?}").contains("active: 0, queued: 0");
        if idle && finished.load(Ordering::SeqCst) == done {
            return;
        }
        assert!(Instant::now() < until, "the burst never drained: {s:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Waits (up to 10 s: tokio frees finished tasks asynchronously) for live
/// bytes to come back within `SLACK` of `baseline`.
async fn assert_back_to(baseline: isize, what: &str) {
    let until = Instant::now() + Duration::from_secs(10);
    while live() > baseline + SLACK && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let over = live() - baseline;
    println!("{what}: {over} bytes above the baseline");
    assert!(
        over <= SLACK,
        "{what}: {over} bytes above the baseline after the burst"
    );
}

/// `n` tasks spawned at once behind a limit of 4: nearly all of them queue.
async fn queued_burst(s: &Scope<Error>, n: usize) {
    s.set_limit(4);
    let finished = Arc::new(AtomicUsize::new(0));
    for _ in 0..n {
        let finished = finished.clone();
        s.spawn(move |_ctx| async move {
            finished.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
    }
    drained(s, &finished, n).await;
}

/// `n` tasks running at once without a limit, then let go together.
async fn running_burst(s: &Scope<Error>, n: usize) {
    s.set_limit(usize::MAX);
    let finished = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(0));
    for _ in 0..n {
        let (finished, gate) = (finished.clone(), gate.clone());
        s.spawn(move |_ctx| async move {
            let _pass = gate.acquire().await;
            finished.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
    }
    gate.add_permits(n);
    drained(s, &finished, n).await;
}

/// `n` tokio tasks waiting in `ready()` under a limit of 0, then let go by
/// raising the limit.
async fn ready_burst(s: &Scope<Error>, n: usize) {
    s.set_limit(0);
    let waiting = Arc::new(AtomicUsize::new(0));
    let waiters: Vec<_> = (0..n)
        .map(|_| {
            let (s, waiting) = (s.clone(), waiting.clone());
            tokio::spawn(async move {
                waiting.fetch_add(1, Ordering::SeqCst);
                s.ready().await // registers in the same poll
            })
        })
        .collect();
    let until = Instant::now() + Duration::from_secs(10);
    while waiting.load(Ordering::SeqCst) < n {
        assert!(Instant::now() < until, "the waiters never started");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    s.set_limit(usize::MAX);
    for waiter in waiters {
        assert_eq!(waiter.await.unwrap(), Ok(()));
    }
}

#[test]
fn a_long_lived_scope_returns_to_its_baseline_after_bursts() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        ctx::scope(&Context::background(), |s| async move {
            // Warm-up: the runtime's workers, timers and queues exist.
            queued_burst(&s, 1_000).await;
            running_burst(&s, 1_000).await;
            ready_burst(&s, 1_000).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            let baseline = live();

            queued_burst(&s, TASKS).await;
            assert_back_to(baseline, "100,000 tasks queued behind a limit").await;

            running_burst(&s, TASKS).await;
            assert_back_to(baseline, "100,000 tasks running at once").await;

            ready_burst(&s, TASKS).await;
            assert_back_to(baseline, "100,000 waiters in ready()").await;
            Ok(())
        })
        .await
        .unwrap();
    });
}
