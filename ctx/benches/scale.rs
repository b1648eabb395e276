//! Scale benchmarks Go's file lacks: one cancel waking 100,000 waiting
//! tasks, and one cancel reaching a tree of a million contexts. Each has a
//! tokio-util `CancellationToken` twin; `bench/compare.sh` runs the Go twins.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use ctx::Context;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const WAITERS: usize = 100_000;

/// Counts a future's first `Pending`, so the benchmark knows every task is
/// registered before it cancels.
struct Registered<'a, F> {
    fut: F,
    counted: bool,
    registered: &'a AtomicUsize,
}

impl<F: Future + Unpin> Future for Registered<'_, F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let poll = Pin::new(&mut self.fut).poll(cx);
        if poll.is_pending() && !self.counted {
            self.counted = true;
            self.registered.fetch_add(1, Ordering::SeqCst);
        }
        poll
    }
}

struct Counters {
    registered: AtomicUsize,
    woken: AtomicUsize,
    all_woken: Notify,
}

/// Times one cancel waking `WAITERS` tasks, `iters` times: each round
/// `setup` makes a canceler and a factory for the future a task waits on;
/// every task registers (its first `Pending`), then the clock runs from
/// `cancel` until the last task has woken. Both libraries' futures are boxed
/// alike, outside the timed part.
fn fan_out<C, W, F>(
    rt: &tokio::runtime::Runtime,
    iters: u64,
    setup: impl Fn() -> (C, W),
    cancel: impl Fn(&C),
) -> Duration
where
    W: Fn() -> F,
    F: Future<Output = ()> + Send + 'static,
{
    (0..iters)
        .map(|_| {
            let (canceler, wait) = setup();
            let counters = Arc::new(Counters {
                registered: AtomicUsize::new(0),
                woken: AtomicUsize::new(0),
                all_woken: Notify::new(),
            });
            rt.block_on(async {
                let tasks: Vec<_> = (0..WAITERS)
                    .map(|_| {
                        let counters = counters.clone();
                        let fut = Box::pin(wait());
                        tokio::spawn(async move {
                            let registered = &counters.registered;
                            Registered {
                                fut,
                                counted: false,
                                registered,
                            }
                            .await;
                            woke(&counters);
                        })
                    })
                    .collect();
                while counters.registered.load(Ordering::SeqCst) < WAITERS {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                let all = counters.all_woken.notified();
                let start = Instant::now();
                cancel(&canceler);
                all.await;
                let elapsed = start.elapsed();
                for t in tasks {
                    t.await.unwrap();
                }
                elapsed
            })
        })
        .sum()
}

fn woke(counters: &Counters) {
    if counters.woken.fetch_add(1, Ordering::SeqCst) + 1 == WAITERS {
        counters.all_woken.notify_one();
    }
}

fn fan_out_wake(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("Scale");
    group.sample_size(10);
    group.bench_function("FanOutWake/waiters=100000", |b| {
        b.iter_custom(|iters| {
            let setup = || {
                let (ctx, guard) = Context::background().with_cancel();
                let wait = move || {
                    let ctx = ctx.clone();
                    async move {
                        ctx.done().await;
                    }
                };
                // The guard lives until after the measured cancel.
                (guard, wait)
            };
            fan_out(&rt, iters, setup, |guard| guard.handle().cancel())
        })
    });
    group.bench_function("tokio_util/FanOutWake/waiters=100000", |b| {
        b.iter_custom(|iters| {
            let setup = || {
                let token = CancellationToken::new();
                let waiter = token.clone();
                let wait = move || {
                    let token = waiter.clone();
                    async move { token.cancelled().await }
                };
                (token, wait)
            };
            fan_out(&rt, iters, setup, CancellationToken::cancel)
        })
    });
    group.finish();
}

/// 1 + 1,000 + 1,000,000 contexts: a root, a thousand children, a thousand
/// grandchildren each.
const FANOUT: usize = 1000;

fn cancel_million(c: &mut Criterion) {
    let mut group = c.benchmark_group("Scale");
    group.sample_size(10);
    group.bench_function("CancelTree/nodes=1001001", |b| {
        b.iter_batched(
            || {
                let (root, guard) = Context::background().with_cancel();
                let mut guards = Vec::with_capacity(FANOUT * (FANOUT + 1));
                let mut leaves = Vec::with_capacity(FANOUT * FANOUT);
                for _ in 0..FANOUT {
                    let (mid, g) = root.with_cancel();
                    for _ in 0..FANOUT {
                        let (leaf, g) = mid.with_cancel();
                        guards.push(g);
                        leaves.push(leaf);
                    }
                    guards.push(g);
                }
                (guard, guards, leaves)
            },
            |(guard, guards, leaves)| {
                guard.cancel();
                assert!(leaves[leaves.len() - 1].is_done());
                (guards, leaves) // dropped outside the measurement
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("tokio_util/CancelTree/nodes=1001001", |b| {
        b.iter_batched(
            || {
                let root = CancellationToken::new();
                let mut tokens = Vec::with_capacity(FANOUT * (FANOUT + 1));
                for _ in 0..FANOUT {
                    let mid = root.child_token();
                    for _ in 0..FANOUT {
                        tokens.push(mid.child_token());
                    }
                    tokens.push(mid);
                }
                (root, tokens)
            },
            |(root, tokens)| {
                root.cancel();
                assert!(tokens[0].is_cancelled());
                tokens
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, fan_out_wake, cancel_million);
criterion_main!(benches);
