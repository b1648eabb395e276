//! Go's `src/context/benchmark_test.go`, shape for shape, with the same
//! names, so `bench/compare.sh` can put the numbers side by side.
//!
//! Where Go uses `b.RunParallel`, these run one OS thread per available core
//! (GOMAXPROCS threads in Go), each doing its share of the iterations, and
//! report wall time per operation, as Go does. Where Go starts a goroutine
//! (`DeepValueNewGoRoutine`), this starts a tokio task on a current-thread
//! runtime and awaits it. `tokio_util/...` rows run the same shape with
//! tokio-util's `CancellationToken` where it can express it (it has no values
//! and no deadlines).

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::{Arc, Barrier};
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ctx::Context;
use tokio_util::sync::CancellationToken;

fn threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Go's `b.RunParallel`: `per_thread` runs on every thread with its share of
/// `iters`; returns the wall time for all of them.
fn run_parallel<S: Send + 'static>(
    iters: u64,
    setup: impl Fn() -> S,
    per_thread: impl Fn(S, u64) + Send + Sync + 'static,
) -> Duration {
    let n = threads() as u64;
    let per_thread = Arc::new(per_thread);
    let barrier = Arc::new(Barrier::new(n as usize + 1));
    let workers: Vec<_> = (0..n)
        .map(|i| {
            let share = iters / n + u64::from(i < iters % n);
            let state = setup();
            let per_thread = per_thread.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                per_thread(state, share);
                barrier.wait();
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    barrier.wait();
    let elapsed = start.elapsed();
    for w in workers {
        w.join().unwrap();
    }
    elapsed
}

/// Go's spin between derive and cancel: `for i := 0; i < 100; i++ { x /= x + 1 }`.
///
/// Go's compiler deletes that division, since `x` is never read afterwards
/// (`go test -gcflags=-S` shows an empty 100-step counting loop), so what
/// Go's benchmark runs is two empty loops: 118 ns for both on the machine of
/// BENCHMARKS.md. A literal Rust division, which LLVM keeps, costs 600 ns and
/// would swamp the context work being measured. This spin keeps a value
/// alive through every step instead, which costs the same as Go's loops
/// (115 ns for both, same machine): the same shape, not an easier one.
fn spin(x: &mut u64) {
    for _ in 0..100 {
        *x = black_box(x.wrapping_add(1));
    }
}

struct Key(&'static str);

/// One operation of Go's CommonParentCancel: derive, look the value up,
/// spin, cancel, spin.
fn common_parent_op(shared: &Context, x: &mut u64) {
    let (ctx, cancel) = shared.with_cancel();
    assert_eq!(ctx.value::<Key>().map(|k| k.0), Some("value"));
    spin(x);
    cancel.cancel();
    spin(x);
}

/// The same with a token (which has no values to look up).
fn common_parent_token_op(shared: &CancellationToken, x: &mut u64) {
    let token = shared.child_token();
    spin(x);
    token.cancel();
    spin(x);
}

fn common_parent_cancel(c: &mut Criterion) {
    let root = Context::background().with_value(Key("value"));
    let (shared, _guard) = root.with_cancel();
    c.bench_function("CommonParentCancel", |b| {
        b.iter_custom(|iters| {
            run_parallel(
                iters,
                || shared.clone(),
                |shared, n| {
                    let mut x = 0;
                    (0..n).for_each(|_| common_parent_op(&shared, &mut x));
                },
            )
        })
    });
    // Diagnostic (not in Go's file): the spin alone, which both shapes contain.
    c.bench_function("CommonParentCancel/spin-only", |b| {
        let mut x = 0;
        b.iter(|| {
            spin(&mut x);
            spin(&mut x);
        })
    });
    // Diagnostic twins (not in Go's file): the same operation on one thread,
    // to separate its cost from the cost of two cores contending for the
    // shared parent.
    c.bench_function("CommonParentCancel/serial", |b| {
        let mut x = 0;
        b.iter(|| common_parent_op(&shared, &mut x))
    });
    let shared = CancellationToken::new();
    c.bench_function("tokio_util/CommonParentCancel/serial", |b| {
        let mut x = 0;
        b.iter(|| common_parent_token_op(&shared, &mut x))
    });
    c.bench_function("tokio_util/CommonParentCancel", |b| {
        b.iter_custom(|iters| {
            run_parallel(
                iters,
                || shared.clone(),
                |shared, n| {
                    let mut x = 0;
                    (0..n).for_each(|_| common_parent_token_op(&shared, &mut x));
                },
            )
        })
    });
}

fn with_timeout(c: &mut Criterion) {
    let mut group = c.benchmark_group("WithTimeout");
    for concurrency in [40usize, 4000, 400_000] {
        group.bench_with_input(
            BenchmarkId::from_parameter(format!("concurrency={concurrency}")),
            &concurrency,
            |b, &concurrency| {
                let root = Context::background();
                let per_thread = concurrency / threads();
                // The live timeouts, made on every thread as in Go.
                let held: Vec<_> = (0..threads())
                    .map(|_| {
                        let root = root.clone();
                        std::thread::spawn(move || {
                            (0..per_thread)
                                .map(|_| root.with_timeout(Duration::from_secs(3600)).1)
                                .collect::<Vec<_>>()
                        })
                    })
                    .flat_map(|t| t.join().unwrap())
                    .collect();
                b.iter_custom(|iters| {
                    run_parallel(
                        iters,
                        || root.clone(),
                        |root, n| {
                            let mut guards = Vec::with_capacity(10);
                            for _ in 0..n {
                                for _ in 0..10 {
                                    guards.push(root.with_timeout(Duration::from_secs(3600)).1);
                                }
                                for guard in guards.drain(..) {
                                    guard.cancel();
                                }
                            }
                        },
                    )
                });
                drop(held);
            },
        );
    }
    group.finish();
}

/// Go's `buildContextTree`: a chain of `depth` cancelable contexts. Go drops
/// the cancel functions (the garbage collector reclaims the chain later);
/// here the guards are kept until the chain is done with and then dropped,
/// which cancels and frees it: strictly more work than Go's shape.
fn build_context_tree(root: &Context, depth: usize, guards: &mut Vec<ctx::CancelGuard>) {
    let mut ctx = root.clone();
    for _ in 0..depth {
        let (child, guard) = ctx.with_cancel();
        guards.push(guard);
        ctx = child;
    }
}

fn build_token_tree(root: &CancellationToken, depth: usize, tokens: &mut Vec<CancellationToken>) {
    let mut token = root.clone();
    for _ in 0..depth {
        token = token.child_token();
        tokens.push(token.clone());
    }
}

fn cancel_tree(c: &mut Criterion) {
    let mut group = c.benchmark_group("CancelTree");
    for depth in [1usize, 10, 100, 1000] {
        let mut guards = Vec::with_capacity(depth);
        group.bench_function(format!("depth={depth}/Root=Background"), |b| {
            b.iter(|| {
                build_context_tree(&Context::background(), depth, &mut guards);
                guards.clear();
            })
        });
        group.bench_function(format!("depth={depth}/Root=OpenCanceler"), |b| {
            b.iter(|| {
                let (ctx, cancel) = Context::background().with_cancel();
                build_context_tree(&ctx, depth, &mut guards);
                cancel.cancel();
                guards.clear();
            })
        });
        group.bench_function(format!("depth={depth}/Root=ClosedCanceler"), |b| {
            b.iter(|| {
                let (ctx, cancel) = Context::background().with_cancel();
                cancel.cancel();
                build_context_tree(&ctx, depth, &mut guards);
                guards.clear();
            })
        });
        let mut tokens = Vec::with_capacity(depth);
        group.bench_function(format!("tokio_util/depth={depth}/Root=OpenCanceler"), |b| {
            b.iter(|| {
                let root = CancellationToken::new();
                build_token_tree(&root, depth, &mut tokens);
                root.cancel();
                tokens.clear();
            })
        });
        group.bench_function(
            format!("tokio_util/depth={depth}/Root=ClosedCanceler"),
            |b| {
                b.iter(|| {
                    let root = CancellationToken::new();
                    root.cancel();
                    build_token_tree(&root, depth, &mut tokens);
                    tokens.clear();
                })
            },
        );
    }
    group.finish();
}

/// Go's `select { case <-ctx.Done(): default: }`: one non-blocking poll.
fn poll_once<F: Future>(fut: F) -> bool {
    let mut cx = TaskContext::from_waker(Waker::noop());
    matches!(pin!(fut).poll(&mut cx), Poll::Ready(_))
}

fn check_canceled(c: &mut Criterion) {
    let (ctx, cancel) = Context::background().with_cancel();
    cancel.cancel();
    c.bench_function("CheckCanceled/Err", |b| b.iter(|| black_box(&ctx).err()));
    c.bench_function("CheckCanceled/Done", |b| {
        b.iter(|| poll_once(black_box(&ctx).done()))
    });
    let token = CancellationToken::new();
    token.cancel();
    c.bench_function("tokio_util/CheckCanceled/Err", |b| {
        b.iter(|| black_box(&token).is_cancelled())
    });
    c.bench_function("tokio_util/CheckCanceled/Done", |b| {
        b.iter(|| poll_once(black_box(&token).cancelled()))
    });
}

fn context_cancel_done(c: &mut Criterion) {
    let (ctx, _cancel) = Context::background().with_cancel();
    c.bench_function("ContextCancelDone", |b| {
        b.iter_custom(|iters| {
            run_parallel(
                iters,
                || ctx.clone(),
                |ctx, n| {
                    for _ in 0..n {
                        black_box(poll_once(black_box(&ctx).done()));
                    }
                },
            )
        })
    });
    // Diagnostic twin (not in Go's file): one thread, no contention.
    c.bench_function("ContextCancelDone/serial", |b| {
        b.iter(|| black_box(poll_once(black_box(&ctx).done())))
    });
    let token = CancellationToken::new();
    c.bench_function("tokio_util/ContextCancelDone/serial", |b| {
        b.iter(|| black_box(poll_once(black_box(&token).cancelled())))
    });
    c.bench_function("tokio_util/ContextCancelDone", |b| {
        b.iter_custom(|iters| {
            run_parallel(
                iters,
                || token.clone(),
                |token, n| {
                    for _ in 0..n {
                        black_box(poll_once(black_box(&token).cancelled()));
                    }
                },
            )
        })
    });
}

/// A task's waker: it owns something (as tokio's owns a task reference),
/// so cloning and dropping it are real work.
struct TaskWaker;

impl std::task::Wake for TaskWaker {
    fn wake(self: Arc<Self>) {}
}

/// Not in Go's file: one turn of a `select!` loop (make `done()`, poll it
/// once with the task's waker on a live context, drop it), on every core
/// at once, all on one context. Issue 15's target: at most 30 ns.
fn select_turn(c: &mut Criterion) {
    let (ctx, _cancel) = Context::background().with_cancel();
    c.bench_function("SelectTurn", |b| {
        b.iter_custom(|iters| {
            run_parallel(
                iters,
                || (ctx.clone(), Waker::from(Arc::new(TaskWaker))),
                |(ctx, waker), n| {
                    let mut cx = TaskContext::from_waker(&waker);
                    for _ in 0..n {
                        let done = pin!(black_box(&ctx).done());
                        black_box(done.poll(&mut cx).is_pending());
                    }
                },
            )
        })
    });
    let token = CancellationToken::new();
    c.bench_function("tokio_util/SelectTurn", |b| {
        b.iter_custom(|iters| {
            run_parallel(
                iters,
                || (token.clone(), Waker::from(Arc::new(TaskWaker))),
                |(token, waker), n| {
                    let mut cx = TaskContext::from_waker(&waker);
                    for _ in 0..n {
                        let cancelled = pin!(black_box(&token).cancelled());
                        black_box(cancelled.poll(&mut cx).is_pending());
                    }
                },
            )
        })
    });
}

/// A key type no context in these chains carries: Go looks up `-1`.
struct Missing;

fn value_chain(depth: usize) -> Context {
    (0..depth).fold(Context::background(), |ctx, i| ctx.with_value(i))
}

fn deep_value(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("DeepValueNewGoRoutine");
    for depth in [10usize, 20, 30, 50, 100] {
        let ctx = value_chain(depth);
        group.bench_function(format!("depth={depth}"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let ctx = ctx.clone();
                        let task = tokio::spawn(async move { ctx.value::<Missing>().is_some() });
                        black_box(task.await.unwrap());
                    }
                    start.elapsed()
                })
            })
        });
    }
    // Diagnostic (not in Go's file): the task alone, no lookup, to separate
    // the runtime's spawn cost from the context's.
    group.bench_function("spawn-only", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(tokio::spawn(async { black_box(1) }).await.unwrap());
                }
                start.elapsed()
            })
        })
    });
    // Diagnostic (not in Go's file): the task owning a clone of a plain
    // `Arc`, read once: what any owned, counted handle costs a task here,
    // for the context rows to be read against.
    let arc = Arc::new(0usize);
    group.bench_function("spawn-arc", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let arc = arc.clone();
                    black_box(tokio::spawn(async move { *arc == 1 }).await.unwrap());
                }
                start.elapsed()
            })
        })
    });
    group.finish();
    let mut group = c.benchmark_group("DeepValueSameGoRoutine");
    for depth in [10usize, 20, 30, 50, 100] {
        let ctx = value_chain(depth);
        group.bench_function(format!("depth={depth}"), |b| {
            b.iter(|| black_box(&ctx).value::<Missing>().is_some())
        });
    }
    group.finish();
    value_hits(c);
}

/// The value at the root of a chain: a request's values, looked up from
/// under many others (not in Go's file; twins in `bench/go`).
struct RootValue(&'static str);

fn value_hits(c: &mut Criterion) {
    c.bench_function("WithValue", |b| {
        let parent = Context::background();
        b.iter(|| black_box(parent.with_value(RootValue("value"))))
    });
    let mut group = c.benchmark_group("DeepValueHit");
    // Under 99 values of another type, as Go's chain of int keys.
    let ctx = (0..99usize).fold(
        Context::background().with_value(RootValue("value")),
        |ctx, i| ctx.with_value(i),
    );
    group.bench_function("depth=100", |b| {
        b.iter(|| black_box(&ctx).value::<RootValue>().map(|v| v.0))
    });
    // Under 100 cancelable contexts.
    let mut ctx = Context::background().with_value(RootValue("value"));
    let mut guards = Vec::new();
    for _ in 0..100 {
        let (child, guard) = ctx.with_cancel();
        guards.push(guard);
        ctx = child;
    }
    group.bench_function("cancel-chain=100", |b| {
        b.iter(|| black_box(&ctx).value::<RootValue>().map(|v| v.0))
    });
    group.finish();
}

fn err(c: &mut Criterion) {
    let (live, _guard) = Context::background().with_cancel();
    c.bench_function("ErrOK", |b| {
        b.iter(|| assert!(black_box(&live).err().is_none()))
    });
    let (canceled, cancel) = Context::background().with_cancel();
    cancel.cancel();
    c.bench_function("ErrCanceled", |b| {
        b.iter(|| assert!(black_box(&canceled).err().is_some()))
    });
    let live = CancellationToken::new();
    c.bench_function("tokio_util/ErrOK", |b| {
        b.iter(|| assert!(!black_box(&live).is_cancelled()))
    });
    let canceled = CancellationToken::new();
    canceled.cancel();
    c.bench_function("tokio_util/ErrCanceled", |b| {
        b.iter(|| assert!(black_box(&canceled).is_cancelled()))
    });
}

criterion_group!(
    benches,
    common_parent_cancel,
    with_timeout,
    cancel_tree,
    check_canceled,
    context_cancel_done,
    select_turn,
    deep_value,
    err
);
criterion_main!(benches);
