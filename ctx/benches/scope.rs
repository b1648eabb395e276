//! What `ctx::scope` costs next to what it replaces.
//!
//! - `scope/*`: an empty scope against its body alone, and against the one
//!   thing every scope must do, deriving a cancelable child context.
//! - `spawn/*` (errgroup's `BenchmarkGo`): one spawn, awaited, in batches of
//!   100, against `tokio::spawn` + `JoinHandle` and against a `JoinSet`.
//! - `tasks_10000/*`: a group of 10,000 short tasks, first error cancels the
//!   rest, waited for, against the hand-written tokio equivalent: a `JoinSet`
//!   plus a tokio-util `CancellationToken` child token.
//!
//! Each row runs inside one `block_on` (`iter_custom`), so runtime entry is not
//! part of the time. Rows exist for tokio's current-thread runtime and for a
//! 2-worker multi-thread runtime.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use ctx::{Context, Error};
use tokio::runtime::{Builder, Runtime};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

const BATCH: u64 = 100;
const TASKS: usize = 10_000;

fn current_thread() -> Runtime {
    Builder::new_current_thread().enable_all().build().unwrap()
}

fn multi_thread() -> Runtime {
    Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn runtimes() -> [(&'static str, Runtime); 2] {
    [
        ("current_thread", current_thread()),
        ("multi_thread", multi_thread()),
    ]
}

/// A request context, as scopes usually have for a parent: cancelable, so
/// the group's context links into it.
fn request() -> (Context, ctx::CancelGuard) {
    Context::background().with_cancel()
}

fn empty_scope(c: &mut Criterion) {
    let rt = current_thread();
    let (parent, _cancel) = request();
    let mut group = c.benchmark_group("scope");
    group.bench_function("empty", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let out =
                        ctx::scope(&parent, |_s| async { Ok::<_, Error>(black_box(1)) }).await;
                    black_box(out).unwrap();
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("body_alone", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let out = async { Ok::<_, Error>(black_box(1)) }.await;
                    black_box(out).unwrap();
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("with_cancel_alone", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let (child, cancel) = parent.with_cancel();
                    black_box(&child);
                    cancel.cancel();
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

/// `iters` spawns of a trivial task, awaited in batches of `BATCH`.
async fn spawn_in_scope(parent: &Context, iters: u64) -> Duration {
    let start = Instant::now();
    ctx::scope(parent, |s| async move {
        let mut left = iters;
        let mut handles = Vec::with_capacity(BATCH as usize);
        while left > 0 {
            for _ in 0..left.min(BATCH) {
                handles.push(s.spawn(|_ctx| async { Ok(black_box(1u64)) }));
            }
            left -= left.min(BATCH);
            for h in handles.drain(..) {
                black_box(h.await?);
            }
        }
        Ok::<_, Error>(())
    })
    .await
    .unwrap();
    start.elapsed()
}

async fn spawn_on_tokio(iters: u64) -> Duration {
    let start = Instant::now();
    let mut left = iters;
    let mut handles = Vec::with_capacity(BATCH as usize);
    while left > 0 {
        for _ in 0..left.min(BATCH) {
            handles.push(tokio::spawn(async { Ok::<_, Error>(black_box(1u64)) }));
        }
        left -= left.min(BATCH);
        for h in handles.drain(..) {
            black_box(h.await.unwrap().unwrap());
        }
    }
    start.elapsed()
}

async fn spawn_on_joinset(iters: u64) -> Duration {
    let start = Instant::now();
    let mut set = JoinSet::new();
    let mut left = iters;
    while left > 0 {
        for _ in 0..left.min(BATCH) {
            set.spawn(async { Ok::<_, Error>(black_box(1u64)) });
        }
        left -= left.min(BATCH);
        while let Some(joined) = set.join_next().await {
            black_box(joined.unwrap().unwrap());
        }
    }
    start.elapsed()
}

fn spawn(c: &mut Criterion) {
    let (parent, _cancel) = request();
    let mut group = c.benchmark_group("spawn");
    for (flavor, rt) in runtimes() {
        group.bench_function(format!("{flavor}/scope"), |b| {
            b.iter_custom(|iters| rt.block_on(spawn_in_scope(&parent, iters)))
        });
        group.bench_function(format!("{flavor}/tokio_spawn"), |b| {
            b.iter_custom(|iters| rt.block_on(spawn_on_tokio(iters)))
        });
        group.bench_function(format!("{flavor}/joinset"), |b| {
            b.iter_custom(|iters| rt.block_on(spawn_on_joinset(iters)))
        });
    }
    group.finish();
}

/// A short task that looks at its cancellation signal, as real ones do.
async fn short_task_ctx(ctx: Context) -> Result<(), Error> {
    ctx.check()?;
    black_box(());
    Ok(())
}

async fn short_task_token(token: CancellationToken) -> Result<(), Error> {
    if token.is_cancelled() {
        return Err(Error::Canceled);
    }
    black_box(());
    Ok(())
}

async fn group_with_scope(parent: &Context) {
    ctx::scope(parent, |s| async move {
        for _ in 0..TASKS {
            s.spawn(short_task_ctx);
        }
        Ok::<_, Error>(())
    })
    .await
    .unwrap();
}

/// What `scope` does, written by hand with `JoinSet` and a child token: the
/// first error cancels the group and is returned once all tasks ended, a
/// panic is resumed after the others ended, and the token is canceled at the
/// end. (It has no limit, no nested spawns and no cause.)
async fn group_with_joinset(parent: &CancellationToken) {
    let token = parent.child_token();
    let mut set = JoinSet::new();
    for _ in 0..TASKS {
        set.spawn(short_task_token(token.clone()));
    }
    let mut first_error = None;
    let mut panic = None;
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                if first_error.is_none() {
                    first_error = Some(err);
                    token.cancel();
                }
            }
            Err(err) => {
                token.cancel();
                if err.is_panic() && panic.is_none() {
                    panic = Some(err.into_panic());
                }
            }
        }
    }
    token.cancel();
    if let Some(panic) = panic {
        std::panic::resume_unwind(panic);
    }
    if let Some(err) = first_error {
        panic!("unexpected task error: {err}");
    }
}

fn tasks_10000(c: &mut Criterion) {
    let (parent, _cancel) = request();
    let parent_token = CancellationToken::new();
    let mut group = c.benchmark_group("tasks_10000");
    group.sample_size(20);
    for (flavor, rt) in runtimes() {
        group.bench_function(format!("{flavor}/scope"), |b| {
            b.iter(|| rt.block_on(group_with_scope(&parent)))
        });
        group.bench_function(format!("{flavor}/joinset_token"), |b| {
            b.iter(|| rt.block_on(group_with_joinset(&parent_token)))
        });
    }
    group.finish();
}

criterion_group!(benches, empty_scope, spawn, tasks_10000);
criterion_main!(benches);
