//! `done()`, `run()`, and the blocking waits, on every kind of executor.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Duration;

use ctx::{Context, Error};

mod support;
use support::CountingWaker;

const LONG: Duration = Duration::from_secs(10);

async fn wait_then_report(ctx: Context) -> Error {
    ctx.done().await
}

#[test]
fn done_resolves_on_tokio_current_thread() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (ctx, cancel) = Context::background().with_cancel();
        let waiter = tokio::spawn(wait_then_report(ctx));
        tokio::task::yield_now().await;
        cancel.cancel();
        assert_eq!(waiter.await.unwrap(), Error::Canceled);
    });
}

#[test]
fn done_resolves_on_tokio_multi_thread_for_many_waiters() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (ctx, cancel) = Context::background().with_timeout(Duration::from_millis(20));
        let waiters: Vec<_> = (0..1000)
            .map(|i| {
                // Half wait on the context, half on a child of it.
                let ctx = if i % 2 == 0 {
                    ctx.clone()
                } else {
                    ctx.with_value(i)
                };
                tokio::spawn(wait_then_report(ctx))
            })
            .collect();
        for w in waiters {
            assert_eq!(w.await.unwrap(), Error::DeadlineExceeded);
        }
        drop(cancel);
    });
}

#[test]
fn done_resolves_on_futures_block_on_from_another_thread() {
    let (ctx, cancel) = Context::background().with_cancel();
    let waiter = std::thread::spawn(move || futures::executor::block_on(ctx.done()));
    std::thread::sleep(Duration::from_millis(5)); // not synchronization: either order is fine
    cancel.cancel();
    assert_eq!(waiter.join().unwrap(), Error::Canceled);
}

#[test]
fn wait_blocking_works_on_plain_threads_with_no_runtime() {
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(10));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let ctx = ctx.clone();
            std::thread::spawn(move || ctx.wait_blocking())
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), Error::DeadlineExceeded);
    }
}

#[test]
fn wait_timeout_returns_none_when_time_runs_out_first() {
    let (ctx, cancel) = Context::background().with_cancel();
    assert_eq!(ctx.wait_timeout(Duration::from_millis(10)), None);
    assert_eq!(
        Context::background().wait_timeout(Duration::from_millis(1)),
        None
    );
    cancel.cancel();
    assert_eq!(ctx.wait_timeout(Duration::ZERO), Some(Error::Canceled));
}

#[test]
fn cancel_is_synchronous_done_is_ready_when_cancel_returns() {
    let (root, cancel) = Context::background().with_cancel();
    let mut leaves = Vec::new();
    let mut guards = Vec::new();
    for _ in 0..50 {
        let (c, g) = root.with_value(1u8).with_cancel();
        let (leaf, g2) = c.with_timeout(Duration::from_secs(3600));
        leaves.push(leaf);
        guards.push((g, g2));
    }
    let counter = Arc::new(CountingWaker::default());
    let waker = Waker::from(counter.clone());
    let mut cx = TaskContext::from_waker(&waker);
    let mut futures: Vec<_> = leaves.iter().map(|l| l.done()).collect();
    for f in &mut futures {
        assert!(pin!(f).poll(&mut cx).is_pending());
    }
    cancel.cancel();
    // No waiting, no yielding: everything is done right now.
    assert_eq!(
        counter.0.load(Ordering::SeqCst),
        50,
        "every waiter was woken"
    );
    for (leaf, f) in leaves.iter().zip(&mut futures) {
        assert_eq!(leaf.err(), Some(Error::Canceled));
        assert_eq!(pin!(f).poll(&mut cx), Poll::Ready(Error::Canceled));
    }
}

#[test]
fn a_dropped_done_future_is_never_woken_and_leaves_nothing_behind() {
    let (ctx, cancel) = Context::background().with_cancel();
    let counter = Arc::new(CountingWaker::default());
    let waker = Waker::from(counter.clone());
    let mut cx = TaskContext::from_waker(&waker);
    for _ in 0..10_000 {
        let mut done = ctx.done();
        assert!(pin!(&mut done).poll(&mut cx).is_pending());
    }
    // The waker is referenced only by us: the node kept no copy.
    assert_eq!(
        Arc::strong_count(&counter),
        2,
        "only `counter` and `waker` hold it"
    );
    cancel.cancel();
    assert_eq!(counter.0.load(Ordering::SeqCst), 0);
}

#[test]
fn done_repolled_with_a_new_waker_wakes_the_new_one() {
    let (ctx, cancel) = Context::background().with_cancel();
    let first = Arc::new(CountingWaker::default());
    let second = Arc::new(CountingWaker::default());
    let mut done = ctx.done();
    let w1 = Waker::from(first.clone());
    let w2 = Waker::from(second.clone());
    assert!(pin!(&mut done)
        .poll(&mut TaskContext::from_waker(&w1))
        .is_pending());
    assert!(pin!(&mut done)
        .poll(&mut TaskContext::from_waker(&w2))
        .is_pending());
    cancel.cancel();
    assert_eq!(first.0.load(Ordering::SeqCst), 0);
    assert_eq!(second.0.load(Ordering::SeqCst), 1);
}

#[test]
fn background_done_never_resolves() {
    let counter = Arc::new(CountingWaker::default());
    let waker = Waker::from(counter);
    let mut cx = TaskContext::from_waker(&waker);
    let background = Context::background();
    let mut done = background.done();
    assert!(pin!(&mut done).poll(&mut cx).is_pending());
    let detached = background.without_cancel();
    let mut done = detached.done();
    assert!(pin!(&mut done).poll(&mut cx).is_pending());
}

#[tokio::test(flavor = "current_thread")]
async fn run_returns_the_output_when_the_work_finishes_first() {
    let (ctx, _cancel) = Context::background().with_timeout(LONG);
    assert_eq!(ctx.run(async { 42 }).await, Ok(42));
}

#[tokio::test]
async fn run_drops_the_work_when_the_context_ends_first() {
    struct Flag(Arc<AtomicUsize>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let dropped = Arc::new(AtomicUsize::new(0));
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(10));
    let flag = Flag(dropped.clone());
    let slow = async move {
        let _flag = flag;
        tokio::time::sleep(LONG).await;
        "finished"
    };
    assert_eq!(ctx.run(slow).await, Err(Error::DeadlineExceeded));
    assert_eq!(dropped.load(Ordering::SeqCst), 1, "the work was dropped");
}

#[tokio::test]
async fn run_on_a_done_context_never_polls_the_work() {
    let (ctx, cancel) = Context::background().with_cancel();
    cancel.cancel();
    let polled = Arc::new(AtomicUsize::new(0));
    let work = {
        let polled = polled.clone();
        async move {
            polled.fetch_add(1, Ordering::SeqCst);
        }
    };
    assert_eq!(ctx.run(work).await, Err(Error::Canceled));
    assert_eq!(polled.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn done_works_in_select_loops() {
    let (ctx, cancel) = Context::background().with_cancel();
    let handle = cancel.handle();
    let mut ticks = 0;
    loop {
        tokio::select! {
            err = ctx.done() => {
                assert_eq!(err, Error::Canceled);
                break;
            }
            _ = tokio::task::yield_now() => {
                ticks += 1;
                if ticks == 100 {
                    handle.cancel();
                }
            }
        }
    }
    assert_eq!(ticks, 100);
    drop(cancel);
}

fn assert_send_sync_static<T: Send + Sync + 'static>() {}
fn assert_send_unpin<T: Send + Unpin>() {}

#[test]
fn handles_are_send_sync_static_and_done_is_send_unpin() {
    assert_send_sync_static::<Context>();
    assert_send_sync_static::<ctx::CancelGuard>();
    assert_send_sync_static::<ctx::CancelHandle>();
    assert_send_sync_static::<ctx::AfterFunc>();
    assert_send_sync_static::<ctx::Cause>();
    assert_send_unpin::<ctx::Done<'static>>();
}

#[test]
fn debug_shows_the_chain_from_the_root() {
    mod app {
        pub struct RequestId(#[allow(dead_code)] pub u64);
    }
    let (c, _g) = Context::background().with_cancel();
    let v = c.with_value(app::RequestId(1));
    let chain = format!("{v:?}");
    assert!(
        chain.starts_with("background.with_cancel.with_value("),
        "{chain}"
    );
    assert!(chain.ends_with("app::RequestId)"), "{chain}");
    let (d, _g) = Context::todo().with_timeout(Duration::from_secs(60));
    assert!(
        format!("{d:?}").starts_with("todo.with_deadline(in "),
        "{d:?}"
    );
}

/// Each link of the chain says the time left of the deadline it is under:
/// its own, the nearest above it, none below `without_cancel`, never for a
/// timeout too large to have an instant.
#[test]
fn debug_gives_each_link_the_deadline_it_is_under() {
    let (a, _a) = Context::background().with_timeout(Duration::from_secs(100));
    let (b, _b) = a.with_timeout(Duration::from_secs(1000)); // a's is earlier
    let c = b.with_value(7u8).without_cancel();
    let (d, _d) = c.with_timeout(Duration::from_secs(5000));
    let (e, _e) = d.with_timeout(Duration::MAX); // no instant: d's
    let (f, _f) = c.with_timeout(Duration::MAX); // no deadline at all
    let chain = format!("{e:?}");
    // Split at the dots between links, not those in "99.9s".
    let mut links: Vec<String> = Vec::new();
    for piece in chain.split('.') {
        match links.last_mut() {
            Some(last) if piece.starts_with(|c: char| c.is_ascii_digit()) => {
                last.push('.');
                last.push_str(piece);
            }
            _ => links.push(piece.to_owned()),
        }
    }
    let left = |link: &str| -> u64 {
        let secs = link
            .strip_prefix("with_deadline(in ")
            .and_then(|rest| rest.split_once('s'))
            .unwrap_or_else(|| panic!("{link}"))
            .0;
        secs.parse::<f64>().unwrap() as u64
    };
    assert_eq!(links[0], "background");
    assert!((90..=100).contains(&left(&links[1])), "{links:?}");
    assert!((90..=100).contains(&left(&links[2])), "{links:?}");
    assert_eq!(links[3], "with_value(u8)");
    assert_eq!(links[4], "without_cancel");
    assert!((4990..=5000).contains(&left(&links[5])), "{links:?}");
    assert!((4990..=5000).contains(&left(&links[6])), "{links:?}");
    assert_eq!(links.len(), 7, "{links:?}");
    assert!(
        format!("{f:?}").ends_with(".without_cancel.with_deadline(never)"),
        "{f:?}"
    );
}

#[test]
fn deadlines_share_one_timer_thread() {
    fn threads() -> usize {
        std::fs::read_dir("/proc/self/task")
            .map(|d| d.count())
            .unwrap_or(0)
    }
    // Start the timer thread if it is not running yet.
    drop(Context::background().with_timeout(Duration::from_secs(1)));
    let before = threads();
    let guards: Vec<_> = (0..10_000)
        .map(|i| Context::background().with_timeout(Duration::from_secs(60 + i)))
        .collect();
    let after = threads();
    drop(guards);
    if before > 0 {
        // Other tests of this binary may start threads concurrently; 10,000
        // contexts with a thread each would be far beyond this bound.
        assert!(
            after < before + 16,
            "{before} threads before, {after} after 10,000 timeouts"
        );
    }
}

/// Many threads polling one context: the context's lock is contended, so
/// its waiters move to the per-thread shards (`ctx/src/tree/shards.rs`)
/// partway through. Every future still registered at the cancel is woken,
/// whichever list holds it, and none that was dropped is.
#[test]
fn waiters_of_a_context_polled_from_many_threads_are_all_woken() {
    const THREADS: usize = 8;
    for round in 0..50 {
        let (ctx, cancel) = Context::background().with_cancel();
        let ready = Arc::new(std::sync::Barrier::new(THREADS + 1));
        let go = Arc::new(std::sync::Barrier::new(THREADS + 1));
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let (ctx, ready, go) = (ctx.clone(), ready.clone(), go.clone());
                std::thread::spawn(move || {
                    let dropped = Arc::new(CountingWaker(AtomicUsize::new(0)));
                    let kept = Arc::new(CountingWaker(AtomicUsize::new(0)));
                    // Turns of a select loop: made, polled, dropped.
                    for _ in 0..200 {
                        let waker = Waker::from(dropped.clone());
                        let done = pin!(ctx.done());
                        assert!(done.poll(&mut TaskContext::from_waker(&waker)).is_pending());
                    }
                    let waker = Waker::from(kept.clone());
                    let mut done = ctx.done_owned();
                    let first = pin!(&mut done).poll(&mut TaskContext::from_waker(&waker));
                    assert!(first.is_pending());
                    ready.wait();
                    go.wait();
                    (done, dropped, kept)
                })
            })
            .collect();
        ready.wait();
        cancel.cancel();
        go.wait();
        for thread in threads {
            let (done, dropped, kept) = thread.join().unwrap();
            assert_eq!(
                kept.0.load(Ordering::SeqCst),
                1,
                "round {round}: lost wake-up"
            );
            assert_eq!(dropped.0.load(Ordering::SeqCst), 0, "round {round}");
            drop(done);
        }
    }
}

/// `select!` turns on every core racing the cancel of their shared
/// context, with futures kept, re-polled by another task, and dropped on
/// another thread than the one they registered on (the thread slots of
/// `ctx/src/tree/hot.rs`, and the shards behind them): every future pending
/// at the cancel is woken, and once all are dropped no waker clone is left.
#[test]
fn select_turns_racing_the_cancel_on_every_core_lose_no_wake_up_and_keep_no_waker() {
    const THREADS: usize = 4;
    type Kept = Vec<(ctx::DoneOwned, Arc<CountingWaker>)>;
    for round in 0..100 {
        let (ctx, cancel) = Context::background().with_cancel();
        let (moved_tx, moved_rx) = std::sync::mpsc::channel::<ctx::DoneOwned>();
        let start = Arc::new(std::sync::Barrier::new(THREADS + 1));
        let threads: Vec<_> = (0..THREADS)
            .map(|i| {
                let (ctx, start, moved_tx) = (ctx.clone(), start.clone(), moved_tx.clone());
                std::thread::spawn(move || {
                    let turns = Arc::new(CountingWaker(AtomicUsize::new(0)));
                    let other = Arc::new(CountingWaker(AtomicUsize::new(0)));
                    let poll = |done: &mut ctx::DoneOwned, waker: &Arc<CountingWaker>| {
                        let waker = Waker::from(waker.clone());
                        pin!(done).poll(&mut TaskContext::from_waker(&waker))
                    };
                    // Enough turns on every core that the context's lock is
                    // found contended and its waiters move out of the node.
                    for _ in 0..500 {
                        assert!(poll(&mut ctx.done_owned(), &turns).is_pending());
                    }
                    start.wait();
                    let mut kept: Kept = Vec::new();
                    for n in i.. {
                        let mut done = ctx.done_owned();
                        if poll(&mut done, &turns).is_ready() {
                            break;
                        }
                        match n % 8 {
                            // Re-polled by another task: only that one stays.
                            0 => {
                                let _ = poll(&mut done, &other);
                            }
                            // Dropped on another thread.
                            1 => moved_tx.send(done).unwrap(),
                            // Kept, with a waker of its own, until the end.
                            2 if kept.len() < 64 => {
                                let own = Arc::new(CountingWaker(AtomicUsize::new(0)));
                                if poll(&mut done, &own).is_pending() {
                                    kept.push((done, own));
                                }
                            }
                            _ => drop(done),
                        }
                    }
                    (kept, turns, other)
                })
            })
            .collect();
        drop(moved_tx);
        let dropper = std::thread::spawn(move || moved_rx.into_iter().count());
        start.wait();
        // Let the turns run a little (the rounds spread the moment).
        for _ in 0..round * 50 {
            std::hint::spin_loop();
        }
        cancel.cancel();
        let mut wakers = Vec::new();
        for thread in threads {
            let (kept, turns, other) = thread.join().unwrap();
            for (done, own) in kept {
                assert_eq!(
                    own.0.load(Ordering::SeqCst),
                    1,
                    "round {round}: lost wake-up"
                );
                drop(done);
                wakers.push(own);
            }
            wakers.extend([turns, other]);
        }
        dropper.join().unwrap();
        // Every future is gone: woken and dropped by the cancel, or removed
        // by its drop, wherever it was registered. No clone is left.
        for waker in &wakers {
            assert_eq!(
                Arc::strong_count(waker),
                1,
                "round {round}: a waker was kept"
            );
        }
    }
}
