//! `ctx::scope`: structured task groups, through the public API only.
//!
//! One test per promise of the `ctx::scope` section of the API contract and of
//! issue 4. Ordering is made with channels and semaphores, never with sleeps;
//! the only waits on time are generous upper bounds for things that must
//! happen promptly.

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ctx::{Cause, Context, Error, Scope};
use futures::FutureExt;
use tokio::sync::{oneshot, Semaphore};

/// An application error type, as users write them: not `Clone`, wraps `ctx::Error`.
#[derive(Debug, PartialEq)]
enum AppError {
    Ctx(Error),
    Failed(&'static str),
}

impl From<Error> for AppError {
    fn from(err: Error) -> Self {
        AppError::Ctx(err)
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppError::Ctx(err) => write!(f, "{err}"),
            AppError::Failed(what) => write!(f, "{what} failed"),
        }
    }
}

impl std::error::Error for AppError {}

/// Far longer than anything here should take; only an upper bound.
const PATIENCE: Duration = Duration::from_secs(10);

/// Counts live task bodies: up on creation, down on drop (also when aborted).
struct Live(Arc<AtomicUsize>);

impl Live {
    fn new(count: &Arc<AtomicUsize>) -> Live {
        count.fetch_add(1, SeqCst);
        Live(count.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

/// The text of a panic payload (`panic!` gives `&str` or `String`).
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    match payload.downcast_ref::<&str>() {
        Some(text) => text.to_string(),
        None => payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default(),
    }
}

/// Waits (yielding, with an upper bound) until `cond` holds.
async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < PATIENCE, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A task that ignores its context and counts forever: only an abort stops it.
async fn spin(progress: Arc<AtomicUsize>) -> Result<(), AppError> {
    loop {
        progress.fetch_add(1, SeqCst);
        tokio::task::yield_now().await;
    }
}

/// A task that runs until its group is canceled, then returns `Ok`.
async fn until_canceled(ctx: Context) -> Result<(), AppError> {
    ctx.done().await;
    Ok(())
}

// ---------------------------------------------------------------- outcomes

#[tokio::test]
async fn returns_the_body_value_when_every_task_succeeds() {
    let out = ctx::scope(&Context::background(), |s| async move {
        let a = s.spawn(|_ctx| async { Ok(20) });
        let b = s.spawn(|_ctx| async { Ok(22) });
        s.spawn(|_ctx| async { Ok("ignored") });
        Ok::<_, AppError>(a.await? + b.await?)
    })
    .await;
    assert_eq!(out, Ok(42));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_task_error_cancels_the_group_and_records_it_as_the_cause() {
    let seen = Arc::new(Mutex::new(None));
    let seen_by_sibling = seen.clone();
    let out = ctx::scope(&Context::background(), |s| async move {
        s.spawn(move |ctx| async move {
            let err = ctx.done().await;
            *seen_by_sibling.lock().unwrap() = Some((err, ctx.cause().unwrap().to_string()));
            Ok(())
        });
        s.spawn(|_ctx| async { Err::<(), _>(AppError::Failed("identity lookup")) });
        Ok(())
    })
    .await;
    assert_eq!(out, Err(AppError::Failed("identity lookup")));
    assert_eq!(
        seen.lock().unwrap().take(),
        Some((Error::Canceled, "identity lookup failed".to_string())),
        "the sibling saw the group canceled, with the failing task's error as cause"
    );
}

#[tokio::test]
async fn an_error_from_the_body_cancels_the_running_tasks() {
    let stopped = Arc::new(AtomicBool::new(false));
    let flag = stopped.clone();
    let out = ctx::scope(&Context::background(), |s| async move {
        s.spawn(move |ctx| async move {
            until_canceled(ctx).await?;
            flag.store(true, SeqCst);
            Ok(())
        });
        Err::<(), _>(AppError::Failed("body"))
    })
    .await;
    assert_eq!(out, Err(AppError::Failed("body")));
    assert!(
        stopped.load(SeqCst),
        "the task ran until the body's error canceled it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_errors_are_dropped_and_the_first_is_returned() {
    let out = ctx::scope(&Context::background(), |s| async move {
        for _ in 0..8 {
            // each of these fails only after the group is canceled: always later
            s.spawn(|ctx| async move {
                ctx.done().await;
                Err::<(), _>(AppError::Failed("late"))
            });
        }
        s.spawn(|_ctx| async { Err::<(), _>(AppError::Failed("first")) });
        Ok(())
    })
    .await;
    assert_eq!(out, Err(AppError::Failed("first")));
}

#[tokio::test]
async fn body_error_after_a_task_error_is_dropped() {
    let out = ctx::scope(&Context::background(), |s| async move {
        let failing = s.spawn(|_ctx| async { Err::<u32, _>(AppError::Failed("task")) });
        // the handle of a failed task reports the group's error...
        let err = failing.await.unwrap_err();
        assert_eq!(err, AppError::Ctx(Error::Canceled));
        // ...and the body's own error, coming later, is dropped
        Err::<(), _>(err)
    })
    .await;
    assert_eq!(out, Err(AppError::Failed("task")));
}

#[tokio::test]
async fn the_group_context_is_canceled_once_the_scope_finishes() {
    let parent = Context::background();
    let kept = ctx::scope(&parent, |s| async move {
        assert!(!s.context().is_done());
        Ok::<_, AppError>(s.context().clone())
    })
    .await
    .unwrap();
    assert_eq!(kept.err(), Some(Error::Canceled));
    assert!(!parent.is_done());
}

#[tokio::test]
async fn tasks_see_the_values_of_the_parent() {
    #[derive(Debug, PartialEq)]
    struct RequestId(u64);
    let parent = Context::background().with_value(RequestId(99));
    let id = ctx::scope(&parent, |s| async move {
        let id = s.spawn(|ctx| async move { Ok(ctx.value::<RequestId>().map(|id| id.0)) });
        let blocking = s.spawn_blocking(|ctx| Ok(ctx.value::<RequestId>().map(|id| id.0)));
        Ok::<_, AppError>((id.await?, blocking.await?))
    })
    .await;
    assert_eq!(id, Ok((Some(99), Some(99))));
}

// ------------------------------------------------------------ causes and E

#[tokio::test]
async fn with_cause_as_the_error_type_the_group_cause_is_the_original_error() {
    #[derive(Debug)]
    struct TokenExpired;
    impl fmt::Display for TokenExpired {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("token expired")
        }
    }
    impl std::error::Error for TokenExpired {}

    let (tx, rx) = oneshot::channel();
    let out = ctx::scope(&Context::background(), |s: Scope<Cause>| async move {
        s.spawn(move |ctx| async move {
            ctx.done().await;
            let cause = ctx.cause().unwrap();
            let _ = tx.send(cause.downcast_ref::<TokenExpired>().is_some());
            Ok(())
        });
        s.spawn(|_ctx| async { Err::<(), Cause>(TokenExpired.into()) });
        Ok(())
    })
    .await;
    assert!(out.unwrap_err().downcast_ref::<TokenExpired>().is_some());
    assert!(rx.await.unwrap(), "the sibling could downcast the cause");
}

#[tokio::test]
async fn io_errors_and_boxed_errors_work_and_their_message_is_the_cause() {
    let (tx, rx) = oneshot::channel();
    let out = ctx::scope(&Context::background(), |s| async move {
        s.spawn(move |ctx| async move {
            ctx.done().await;
            let _ = tx.send(ctx.cause().unwrap().to_string());
            Ok(())
        });
        s.spawn(|_ctx| async { Err::<(), _>(std::io::Error::other("connection reset")) });
        Ok(())
    })
    .await;
    assert_eq!(out.unwrap_err().to_string(), "connection reset");
    assert_eq!(rx.await.unwrap(), "connection reset");

    type BoxError = Box<dyn std::error::Error + Send + Sync>;
    let out = ctx::scope(&Context::background(), |s| async move {
        s.spawn(|_ctx| async { Err::<(), BoxError>("bad token".into()) });
        let kept = s.context().clone();
        Ok::<_, BoxError>(kept)
    })
    .await;
    assert_eq!(out.unwrap_err().to_string(), "bad token");
}

#[tokio::test]
async fn ctx_error_as_the_error_type_keeps_the_plain_error_as_cause() {
    let (tx, rx) = oneshot::channel();
    let out = ctx::scope(&Context::background(), |s| async move {
        s.spawn(move |ctx| async move {
            ctx.done().await;
            let _ = tx.send(ctx.cause().unwrap().is(Error::DeadlineExceeded));
            Ok(())
        });
        // e.g. a task that hit its own timeout
        s.spawn(|_ctx| async { Err::<(), _>(Error::DeadlineExceeded) });
        Ok(())
    })
    .await;
    assert_eq!(out, Err(Error::DeadlineExceeded));
    assert!(rx.await.unwrap());
}

// ------------------------------------------------------- no task outlives it

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scope_waits_for_every_task_including_tasks_spawned_by_tasks() {
    fn spread(s: Scope<AppError>, depth: u32, done: Arc<AtomicUsize>) {
        let inner = s.clone();
        s.spawn(move |_ctx| async move {
            tokio::task::yield_now().await;
            if depth > 0 {
                spread(inner.clone(), depth - 1, done.clone());
                spread(inner, depth - 1, done.clone());
            }
            tokio::task::yield_now().await;
            done.fetch_add(1, SeqCst);
            Ok(())
        });
    }
    let done = Arc::new(AtomicUsize::new(0));
    let counter = done.clone();
    ctx::scope(&Context::background(), |s| async move {
        spread(s, 6, counter);
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(
        done.load(SeqCst),
        (1 << 7) - 1,
        "every task of the tree finished first"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_scope_future_cancels_the_group_and_aborts_its_tasks() {
    const TASKS: usize = 4;
    let live = Arc::new(AtomicUsize::new(0));
    let progress = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(Semaphore::new(0));
    let blocking_stopped = Arc::new(AtomicBool::new(false));
    let group = Arc::new(Mutex::new(None));

    let scope = {
        let (live, progress, started) = (live.clone(), progress.clone(), started.clone());
        let (blocking_stopped, group) = (blocking_stopped.clone(), group.clone());
        ctx::scope(&Context::background(), move |s| async move {
            *group.lock().unwrap() = Some(s.context().clone());
            for _ in 0..TASKS {
                let (live, progress, started) = (live.clone(), progress.clone(), started.clone());
                let nested = s.clone();
                s.spawn(move |_ctx| async move {
                    let _alive = Live::new(&live);
                    // a task spawned by a task is aborted too
                    let (l, p) = (live.clone(), progress.clone());
                    nested.spawn(move |_ctx| async move {
                        let _alive = Live::new(&l);
                        spin(p).await
                    });
                    started.add_permits(1);
                    spin(progress).await
                });
            }
            let started_b = started.clone();
            s.spawn_blocking(move |ctx| {
                started_b.add_permits(1);
                // a blocking task cannot be aborted; it watches its context
                ctx.wait_blocking();
                blocking_stopped.store(true, SeqCst);
                Ok(())
            });
            std::future::pending::<Result<(), AppError>>().await
        })
    };
    tokio::select! {
        _ = scope => unreachable!("the body never returns"),
        permits = started.acquire_many(TASKS as u32 + 1) => permits.unwrap().forget(),
    }
    // the scope future is gone
    let group = group.lock().unwrap().take().unwrap();
    assert_eq!(
        group.err(),
        Some(Error::Canceled),
        "the group context is canceled at once"
    );
    eventually("every aborted task is dropped", || live.load(SeqCst) == 0).await;
    eventually("the blocking task saw its context canceled", || {
        blocking_stopped.load(SeqCst)
    })
    .await;
    let before = progress.load(SeqCst);
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        progress.load(SeqCst),
        before,
        "no task of the dropped scope still runs"
    );
}

#[tokio::test]
async fn dropping_the_scope_future_on_current_thread_aborts_its_tasks() {
    let live = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = oneshot::channel::<()>();
    let l = live.clone();
    let scope = ctx::scope(&Context::background(), move |s| async move {
        for _ in 0..3 {
            let l = l.clone();
            s.spawn(move |_ctx| async move {
                let _alive = Live::new(&l);
                std::future::pending::<()>().await;
                Ok(())
            });
        }
        let _ = rx.await;
        Ok::<_, AppError>(())
    });
    tokio::select! {
        _ = scope => unreachable!("the body waits for a message that never comes"),
        () = eventually("the tasks run", || live.load(SeqCst) == 3) => {}
    }
    eventually("every aborted task is dropped", || live.load(SeqCst) == 0).await;
    drop(tx);
}

#[tokio::test]
async fn spawning_on_a_finished_scope_panics_with_a_clear_message() {
    let kept = ctx::scope(&Context::background(), |s| async move {
        Ok::<_, AppError>(s.clone())
    })
    .await
    .unwrap();
    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    let panic = std::panic::catch_unwind(AssertUnwindSafe(|| {
        kept.spawn(move |_ctx| async move {
            flag.store(true, SeqCst);
            Ok(())
        })
    }))
    .unwrap_err();
    let message = panic_text(&*panic);
    assert!(
        message.contains("scope has already finished"),
        "unexpected panic message: {message:?}"
    );
    let try_panic =
        std::panic::catch_unwind(AssertUnwindSafe(|| kept.try_spawn(|_ctx| async { Ok(()) })));
    assert!(try_panic.is_err(), "try_spawn refuses the same way");
    tokio::task::yield_now().await;
    assert!(!ran.load(SeqCst), "the refused task never ran");
    assert_eq!(kept.ready().await, Err(Error::Canceled));
}

#[tokio::test]
async fn a_task_spawned_after_the_group_failed_never_starts() {
    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    let out = ctx::scope(&Context::background(), |s| async move {
        let failed = s.spawn(|_ctx| async { Err::<(), _>(AppError::Failed("first")) });
        let _ = failed.await;
        assert!(s.context().is_done());
        let late = s.spawn(move |_ctx| async move {
            flag.store(true, SeqCst);
            Ok(1)
        });
        assert_eq!(late.await, Err(AppError::Ctx(Error::Canceled)));
        assert!(!s.try_spawn(|_ctx| async { Ok(()) }));
        Ok(())
    })
    .await;
    assert_eq!(out, Err(AppError::Failed("first")));
    assert!(!ran.load(SeqCst));
}

// ------------------------------------------------------------------ panics

#[derive(Debug, PartialEq)]
struct Payload(u32);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_task_cancels_siblings_and_is_resumed_with_its_payload_after_them() {
    let sibling_done = Arc::new(AtomicBool::new(false));
    let cause = Arc::new(Mutex::new(String::new()));
    let (flag, seen) = (sibling_done.clone(), cause.clone());
    let scope = ctx::scope(&Context::background(), move |s| async move {
        s.spawn(move |ctx| async move {
            ctx.done().await;
            *seen.lock().unwrap() = ctx.cause().unwrap().to_string();
            tokio::task::yield_now().await;
            flag.store(true, SeqCst);
            Ok(())
        });
        s.spawn(|_ctx| async { std::panic::panic_any(Payload(7)) as Result<(), AppError> });
        Ok(())
    });
    // Send + 'static: it can itself be a task; the panic surfaces in its JoinError
    let err = tokio::spawn(scope).await.unwrap_err();
    assert!(err.is_panic());
    let payload = err.into_panic().downcast::<Payload>().unwrap();
    assert_eq!(*payload, Payload(7));
    assert!(
        sibling_done.load(SeqCst),
        "the sibling finished before the panic resumed"
    );
    assert_eq!(
        cause.lock().unwrap().as_str(),
        "a task in the scope panicked"
    );
}

#[tokio::test]
async fn a_panic_outranks_an_earlier_error_and_its_message_is_the_cause() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let scope = ctx::scope(&Context::background(), move |s| async move {
        s.spawn(|_ctx| async { Err::<(), _>(AppError::Failed("first")) });
        s.spawn(move |ctx| async move {
            ctx.done().await;
            log.lock().unwrap().push(ctx.cause().unwrap().to_string());
            panic!("task exploded") as Result<(), AppError>
        });
        Ok::<_, AppError>(())
    });
    let panic = AssertUnwindSafe(scope).catch_unwind().await.unwrap_err();
    assert_eq!(panic.downcast_ref::<&str>(), Some(&"task exploded"));
    assert_eq!(*seen.lock().unwrap(), ["first failed"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_body_waits_for_its_tasks_then_resumes() {
    let task_done = Arc::new(AtomicBool::new(false));
    let cause = Arc::new(Mutex::new(String::new()));
    let (flag, seen) = (task_done.clone(), cause.clone());
    let scope = ctx::scope(
        &Context::background(),
        move |s: Scope<AppError>| async move {
            s.spawn(move |ctx| async move {
                ctx.done().await;
                *seen.lock().unwrap() = ctx.cause().unwrap().to_string();
                flag.store(true, SeqCst);
                Ok(())
            });
            tokio::task::yield_now().await;
            if s.context().is_done() {
                return Ok(());
            }
            panic!("body exploded")
        },
    );
    let panic: Box<dyn std::any::Any + Send> =
        AssertUnwindSafe(scope).catch_unwind().await.unwrap_err();
    assert_eq!(panic.downcast_ref::<&str>(), Some(&"body exploded"));
    assert!(task_done.load(SeqCst));
    assert_eq!(
        cause.lock().unwrap().as_str(),
        "the body of the scope panicked: body exploded"
    );
}

#[tokio::test]
async fn a_panicking_blocking_task_is_resumed_too() {
    let scope = ctx::scope(&Context::background(), |s| async move {
        s.spawn_blocking(|_ctx| -> Result<(), AppError> { std::panic::panic_any(Payload(3)) });
        s.spawn(until_canceled);
        Ok::<_, AppError>(())
    });
    let panic = AssertUnwindSafe(scope).catch_unwind().await.unwrap_err();
    assert_eq!(panic.downcast_ref::<Payload>(), Some(&Payload(3)));
}

// ------------------------------------------------------------------ parent

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parent_cancellation_reaches_every_task_and_wins_over_their_ok() {
    let (parent, cancel_parent) = Context::background().with_cancel();
    let running = Arc::new(Semaphore::new(0));
    let causes = Arc::new(Mutex::new(Vec::new()));
    let (r, c) = (running.clone(), causes.clone());
    let scope = tokio::spawn(ctx::scope(&parent, move |s| async move {
        for _ in 0..3 {
            let (r, c) = (r.clone(), c.clone());
            s.spawn(move |ctx| async move {
                r.add_permits(1);
                ctx.done().await;
                c.lock().unwrap().push(ctx.cause().unwrap().to_string());
                Ok(())
            });
        }
        let (r, c) = (r.clone(), c.clone());
        s.spawn_blocking(move |ctx| {
            r.add_permits(1);
            ctx.wait_blocking();
            c.lock().unwrap().push(ctx.cause().unwrap().to_string());
            Ok(())
        });
        Ok::<_, AppError>("body value")
    }));
    running.acquire_many(4).await.unwrap().forget();
    cancel_parent.cancel_with_cause(std::io::Error::other("client went away"));
    let out = scope.await.unwrap();
    assert_eq!(
        out,
        Err(AppError::Ctx(Error::Canceled)),
        "the parent's error, not the body's Ok"
    );
    assert_eq!(*causes.lock().unwrap(), ["client went away"; 4]);
}

#[tokio::test]
async fn a_parent_deadline_is_reported_as_deadline_exceeded() {
    let (parent, _cancel) = Context::background().with_timeout(Duration::from_millis(20));
    let out = ctx::scope(&parent, |s| async move {
        s.spawn(until_canceled);
        s.spawn(until_canceled);
        Ok(())
    })
    .await;
    assert_eq!(out, Err(AppError::Ctx(Error::DeadlineExceeded)));
}

#[tokio::test]
async fn under_an_already_canceled_parent_neither_body_nor_task_runs() {
    let (parent, cancel) = Context::background().with_cancel();
    cancel.cancel();
    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    let out = ctx::scope(&parent, move |s| {
        flag.store(true, SeqCst);
        async move {
            s.spawn(|_ctx| async { Ok(()) });
            Ok(())
        }
    })
    .await;
    assert_eq!(out, Err(AppError::Ctx(Error::Canceled)));
    assert!(!ran.load(SeqCst));
}

#[tokio::test]
async fn an_error_recorded_before_the_parent_is_canceled_is_kept() {
    let (parent, cancel_parent) = Context::background().with_cancel();
    let cancel_parent = Mutex::new(Some(cancel_parent));
    let out = ctx::scope(&parent, |s| async move {
        let failed = s.spawn(|_ctx| async { Err::<(), _>(AppError::Failed("first")) });
        let _ = failed.await;
        // now the parent ends too, before the scope finishes
        cancel_parent.lock().unwrap().take().unwrap().cancel();
        Ok(())
    })
    .await;
    assert_eq!(out, Err(AppError::Failed("first")));
}

#[tokio::test]
async fn an_error_after_the_parent_was_canceled_gives_way_to_the_parents_error() {
    let (parent, cancel_parent) = Context::background().with_timeout(Duration::from_millis(1));
    let out = ctx::scope(&parent, |s| async move {
        s.spawn(|ctx| async move {
            ctx.done().await;
            Err::<(), _>(AppError::Failed("noticed late"))
        });
        Ok(())
    })
    .await;
    assert_eq!(out, Err(AppError::Ctx(Error::DeadlineExceeded)));
    drop(cancel_parent);
}

// ------------------------------------------------------------------- limit

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_limit_caps_the_tasks_running_at_once_and_runs_them_all() {
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let (r, p, f) = (running.clone(), peak.clone(), finished.clone());
    ctx::scope(&Context::background(), |s| async move {
        s.set_limit(3);
        for _ in 0..50 {
            let (r, p, f) = (r.clone(), p.clone(), f.clone());
            s.spawn(move |_ctx| async move {
                let now = r.fetch_add(1, SeqCst) + 1;
                p.fetch_max(now, SeqCst);
                for _ in 0..3 {
                    tokio::task::yield_now().await;
                }
                r.fetch_sub(1, SeqCst);
                f.fetch_add(1, SeqCst);
                Ok::<_, AppError>(())
            });
        }
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(finished.load(SeqCst), 50);
    let peak = peak.load(SeqCst);
    assert!(
        (1..=3).contains(&peak),
        "peak concurrency {peak} exceeds the limit"
    );
}

#[tokio::test]
async fn queued_tasks_start_in_spawn_order_when_slots_free() {
    let order = Arc::new(Mutex::new(Vec::new()));
    let log = order.clone();
    ctx::scope(&Context::background(), |s| async move {
        s.set_limit(1);
        let mut handles = Vec::new();
        for i in 0..5 {
            let log = log.clone();
            handles.push(s.spawn(move |_ctx| async move {
                log.lock().unwrap().push(i);
                tokio::task::yield_now().await;
                Ok::<_, AppError>(i * 10)
            }));
        }
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(
                h.await?,
                i * 10,
                "a queued task's handle delivers its value"
            );
        }
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3, 4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_task_never_starts_once_the_group_is_canceled() {
    let started = Arc::new(AtomicUsize::new(0));
    let st = started.clone();
    let out = ctx::scope(&Context::background(), |s| async move {
        s.set_limit(2);
        let (release_tx, release_rx) = oneshot::channel::<()>();
        let st1 = st.clone();
        // holds a slot until told, then fails
        s.spawn(move |_ctx| async move {
            st1.fetch_add(1, SeqCst);
            let _ = release_rx.await;
            Err::<(), _>(AppError::Failed("holder"))
        });
        let st2 = st.clone();
        s.spawn(move |ctx| async move {
            st2.fetch_add(1, SeqCst);
            until_canceled(ctx).await
        });
        let mut queued = Vec::new();
        for _ in 0..10 {
            let st = st.clone();
            queued.push(s.spawn(move |_ctx| async move {
                st.fetch_add(1, SeqCst);
                Ok(())
            }));
        }
        let _ = release_tx.send(());
        for h in queued {
            assert_eq!(h.await, Err(AppError::Ctx(Error::Canceled)));
        }
        Ok(())
    })
    .await;
    assert_eq!(out, Err(AppError::Failed("holder")));
    assert_eq!(
        started.load(SeqCst),
        2,
        "only the two tasks holding slots ever ran"
    );
}

#[tokio::test]
async fn a_queued_task_never_starts_when_the_parent_is_canceled() {
    let (parent, cancel_parent) = Context::background().with_cancel();
    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    let out = ctx::scope(&parent, |s| async move {
        s.set_limit(1);
        s.spawn(until_canceled);
        let queued = s.spawn(move |_ctx| async move {
            flag.store(true, SeqCst);
            Ok(())
        });
        cancel_parent.cancel();
        assert_eq!(queued.await, Err(AppError::Ctx(Error::Canceled)));
        Ok(())
    })
    .await;
    assert_eq!(out, Err(AppError::Ctx(Error::Canceled)));
    assert!(!ran.load(SeqCst));
}

#[tokio::test]
async fn try_spawn_starts_only_when_a_slot_is_free_now() {
    ctx::scope(&Context::background(), |s| async move {
        s.set_limit(2);
        let (tx, rx) = oneshot::channel::<()>();
        assert!(s.try_spawn(move |_ctx| async move {
            let _ = rx.await;
            Ok::<_, AppError>(())
        }));
        assert!(s.try_spawn(until_canceled));
        assert!(!s.try_spawn(|_ctx| async { Ok(()) }), "both slots taken");
        let _ = tx.send(());
        s.ready().await?; // the first task finished: a slot is free again
        assert!(s.try_spawn(|_ctx| async { Ok(()) }));
        Err::<(), _>(AppError::Failed("done here"))
    })
    .await
    .unwrap_err();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_gives_backpressure_so_the_queue_never_grows() {
    let queued_seen = Arc::new(AtomicUsize::new(0));
    let q = queued_seen.clone();
    ctx::scope(&Context::background(), |s| async move {
        s.set_limit(3);
        for _ in 0..100 {
            s.ready().await?;
            let h = s.spawn(|_ctx| async {
                tokio::task::yield_now().await;
                Ok::<_, AppError>(())
            });
            if format!("{h:?}").contains("queued") {
                q.fetch_add(1, SeqCst);
            }
        }
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(
        queued_seen.load(SeqCst),
        0,
        "a single producer using ready() never queues"
    );
}

#[tokio::test]
async fn ready_returns_the_group_error_once_the_group_is_canceled() {
    let waiter = Arc::new(Mutex::new(None));
    let slot = waiter.clone();
    let out = ctx::scope(&Context::background(), |s| async move {
        s.set_limit(1);
        s.spawn(until_canceled); // holds the only slot until the group ends
        let w = {
            let s = s.clone();
            tokio::spawn(async move { s.ready().await })
        };
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!w.is_finished(), "no slot is free: ready() waits");
        *slot.lock().unwrap() = Some(w);
        Err::<(), _>(AppError::Failed("boom"))
    })
    .await;
    assert_eq!(out, Err(AppError::Failed("boom")));
    let w = waiter.lock().unwrap().take().unwrap();
    assert_eq!(w.await.unwrap(), Err(Error::Canceled));
}

#[tokio::test]
async fn raising_the_limit_starts_queued_tasks() {
    ctx::scope(&Context::background(), |s| async move {
        s.set_limit(1);
        s.spawn(until_canceled); // holds the only slot
        let queued = s.spawn(|_ctx| async { Ok(5) });
        assert!(format!("{queued:?}").contains("queued"));
        s.set_limit(2);
        assert_eq!(queued.await?, 5);
        Err::<(), _>(AppError::Failed("stop the holder"))
    })
    .await
    .unwrap_err();
}

#[tokio::test]
async fn under_a_limit_of_zero_try_spawn_refuses_and_spawn_queues_until_the_limit_is_raised() {
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    ctx::scope(&Context::background(), |s| async move {
        s.set_limit(0);
        assert!(
            !s.try_spawn(|_ctx| async { Ok::<_, AppError>(()) }),
            "Go's TryGo under SetLimit(0)"
        );
        let (r1, r2) = (r.clone(), r.clone());
        let task = s.spawn(move |_ctx| async move {
            r1.fetch_add(1, SeqCst);
            Ok(1)
        });
        let blocking = s.spawn_blocking(move |_ctx| {
            r2.fetch_add(1, SeqCst);
            Ok(2)
        });
        assert!(format!("{task:?}").contains("queued"));
        assert!(format!("{blocking:?}").contains("queued"));
        assert!(format!("{s:?}").contains("limit: 0"), "{s:?}");
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(r.load(SeqCst), 0, "nothing starts under a limit of 0");
        s.set_limit(1);
        assert_eq!(task.await?, 1);
        assert_eq!(blocking.await?, 2);
        Ok::<_, AppError>(())
    })
    .await
    .unwrap();
    assert_eq!(ran.load(SeqCst), 2);
}

#[tokio::test]
async fn under_a_limit_of_zero_ready_waits_until_the_limit_is_raised() {
    ctx::scope(&Context::background(), |s| async move {
        s.set_limit(0);
        let waiter = {
            let s = s.clone();
            tokio::spawn(async move { s.ready().await })
        };
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!waiter.is_finished(), "no slot under a limit of 0");
        s.set_limit(2);
        assert_eq!(waiter.await.unwrap(), Ok(()));
        Ok::<_, AppError>(())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn under_a_limit_of_zero_ready_waits_until_the_group_ends() {
    let (parent, cancel_parent) = Context::background().with_cancel();
    let out = ctx::scope(&parent, |s| async move {
        s.set_limit(0);
        let waiter = {
            let s = s.clone();
            tokio::spawn(async move { s.ready().await })
        };
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!waiter.is_finished(), "no slot under a limit of 0");
        cancel_parent.cancel();
        assert_eq!(waiter.await.unwrap(), Err(Error::Canceled));
        Ok::<_, AppError>(())
    })
    .await;
    assert_eq!(out, Err(AppError::Ctx(Error::Canceled)));
}

#[tokio::test]
async fn tasks_queued_under_a_limit_of_zero_are_dropped_unstarted_once_the_body_returns() {
    let ran = Arc::new(AtomicBool::new(false));
    let alive = Arc::new(AtomicUsize::new(0));
    let (flag, live) = (ran.clone(), alive.clone());
    let scope = ctx::scope(&Context::background(), |s| async move {
        s.set_limit(0);
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let (flag, held) = (flag.clone(), Live::new(&live));
                s.spawn(move |_ctx| async move {
                    let _held = held;
                    flag.store(true, SeqCst);
                    Ok::<_, AppError>(())
                })
            })
            .collect();
        let blocking = s.spawn_blocking({
            let flag = flag.clone();
            move |_ctx| {
                flag.store(true, SeqCst);
                Ok(())
            }
        });
        Ok((handles, blocking))
    });
    let (handles, blocking) = tokio::time::timeout(PATIENCE, scope)
        .await
        .expect("the scope finishes once the body returned and no task runs")
        .expect("the scope returns the body's result");
    assert!(!ran.load(SeqCst), "no queued task ever started");
    assert_eq!(alive.load(SeqCst), 0, "the queued closures were dropped");
    for h in handles {
        assert_eq!(h.await, Err(AppError::Ctx(Error::Canceled)));
    }
    assert_eq!(blocking.await, Err(AppError::Ctx(Error::Canceled)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_lowered_to_zero_lets_running_tasks_finish_then_drops_the_queue() {
    let finished = Arc::new(AtomicBool::new(false));
    let ran = Arc::new(AtomicBool::new(false));
    let (fin, flag) = (finished.clone(), ran.clone());
    let scope = ctx::scope(&Context::background(), |s| async move {
        s.set_limit(1);
        let (release_tx, release_rx) = oneshot::channel::<()>();
        s.spawn(move |_ctx| async move {
            let _ = release_rx.await;
            fin.store(true, SeqCst);
            Ok::<_, AppError>(())
        });
        let queued = s.spawn(move |_ctx| async move {
            flag.store(true, SeqCst);
            Ok(())
        });
        s.set_limit(0);
        // The holder finishes only after the body returned.
        let _ = release_tx.send(());
        Ok(queued)
    });
    let queued = tokio::time::timeout(PATIENCE, scope)
        .await
        .expect("the scope finishes once its last running task ended")
        .expect("the scope returns the body's result");
    assert!(
        finished.load(SeqCst),
        "the scope waited for the running task"
    );
    assert!(!ran.load(SeqCst));
    assert_eq!(queued.await, Err(AppError::Ctx(Error::Canceled)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_task_may_raise_a_limit_of_zero_after_the_body_returned() {
    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    let queued = ctx::scope(&Context::background(), |s| async move {
        s.set_limit(1);
        let (release_tx, release_rx) = oneshot::channel::<()>();
        let s2 = s.clone();
        s.spawn(move |_ctx| async move {
            let _ = release_rx.await;
            s2.set_limit(1); // before this task ends, so the queue is not stranded
            Ok::<_, AppError>(())
        });
        let queued = s.spawn(move |_ctx| async move {
            flag.store(true, SeqCst);
            Ok(7)
        });
        s.set_limit(0);
        let _ = release_tx.send(());
        Ok(queued)
    })
    .await
    .unwrap();
    assert!(ran.load(SeqCst), "the raised limit started the queued task");
    assert_eq!(queued.await, Ok(7));
}

// --------------------------------------------------------------- blocking

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_blocking_runs_off_the_async_workers_and_stops_when_canceled() {
    let steps = Arc::new(AtomicUsize::new(0));
    let s2 = steps.clone();
    let out = ctx::scope(&Context::background(), |s| async move {
        let crunch = s.spawn_blocking(move |ctx| {
            // a blocking pool thread, not an async worker: block_in_place-free sleeping is fine
            while !ctx.is_done() {
                s2.fetch_add(1, SeqCst);
                std::thread::sleep(Duration::from_millis(1));
            }
            Err::<u64, _>(AppError::from(ctx.err().unwrap()))
        });
        let s3 = steps.clone();
        s.spawn(move |_ctx| async move {
            eventually("the blocking task made progress", || s3.load(SeqCst) > 2).await;
            Err::<(), _>(AppError::Failed("sibling"))
        });
        assert_eq!(crunch.await, Err(AppError::Ctx(Error::Canceled)));
        Ok(())
    })
    .await;
    assert_eq!(out, Err(AppError::Failed("sibling")));
}

// ---------------------------------------------------------------- runtimes

fn fan_out_on(rt: tokio::runtime::Runtime) {
    rt.block_on(async {
        let out = ctx::scope(&Context::background(), |s| async move {
            let handles: Vec<_> = (0..32u64)
                .map(|i| {
                    let nested = s.clone();
                    s.spawn(move |_ctx| async move {
                        let inner = nested.spawn_blocking(move |_ctx| Ok(i));
                        tokio::task::yield_now().await;
                        inner.await
                    })
                })
                .collect();
            let mut sum = 0;
            for h in handles {
                sum += h.await?;
            }
            Ok::<_, AppError>(sum)
        })
        .await;
        assert_eq!(out, Ok((0..32).sum()));

        let peak = Arc::new(AtomicUsize::new(0));
        let (p, running) = (peak.clone(), Arc::new(AtomicUsize::new(0)));
        ctx::scope(&Context::background(), |s| async move {
            s.set_limit(3);
            for _ in 0..32 {
                let (p, running) = (p.clone(), running.clone());
                s.spawn_blocking(move |_ctx| {
                    p.fetch_max(running.fetch_add(1, SeqCst) + 1, SeqCst);
                    running.fetch_sub(1, SeqCst);
                    Ok::<_, AppError>(())
                });
            }
            Ok(())
        })
        .await
        .unwrap();
        assert!(peak.load(SeqCst) <= 3);

        let out = ctx::scope(&Context::background(), |s| async move {
            s.spawn(until_canceled);
            s.spawn(|_ctx| async { Err::<(), _>(AppError::Failed("x")) });
            Ok(())
        })
        .await;
        assert_eq!(out, Err(AppError::Failed("x")));
    });
}

#[test]
fn works_on_a_current_thread_runtime() {
    fan_out_on(
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
    );
}

#[test]
fn works_on_a_multi_thread_runtime() {
    fan_out_on(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
    );
}

#[test]
fn a_scope_can_spawn_from_a_plain_thread_while_it_runs() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let out = rt.block_on(ctx::scope(&Context::background(), |s| async move {
        let s2 = s.clone();
        // a plain OS thread holding a clone spawns onto the scope's runtime
        let handle = std::thread::spawn(move || s2.spawn(|_ctx| async { Ok(11) }))
            .join()
            .unwrap();
        Ok::<_, AppError>(handle.await? + 1)
    }));
    assert_eq!(out, Ok(12));
}

#[test]
fn the_scope_future_and_its_handles_are_send_and_static() {
    fn assert_send_static<T: Send + 'static>(_: &T) {}
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    let parent = Context::background();
    let fut = ctx::scope(&parent, |s: Scope<AppError>| async move {
        let h = s.spawn(|_ctx| async { Ok(1) });
        assert_send_static(&h);
        h.await
    });
    drop(parent); // the future does not borrow the parent
    assert_send_static(&fut);
    assert_send_sync::<Scope<AppError>>();
    drop(fut);
}

#[tokio::test]
async fn an_error_whose_display_panics_is_still_returned_and_the_cause_says_so() {
    #[derive(Debug)]
    struct Grumpy;
    impl From<Error> for Grumpy {
        fn from(_: Error) -> Self {
            Grumpy
        }
    }
    impl fmt::Display for Grumpy {
        fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
            panic!("no display today")
        }
    }
    let cause = Arc::new(Mutex::new(None));
    let seen = cause.clone();
    let out = ctx::scope(&Context::background(), |s| async move {
        s.spawn(|_ctx| async { Err::<(), _>(Grumpy) });
        s.spawn(move |ctx| async move {
            ctx.done().await;
            *seen.lock().unwrap() = ctx.cause().map(|c| c.to_string());
            Ok(())
        });
        Ok(())
    })
    .await;
    // the panic from formatting the cause is contained: the error is returned
    assert!(matches!(out, Err(Grumpy)));
    let cause = cause
        .lock()
        .unwrap()
        .take()
        .expect("the sibling saw a cause");
    assert!(cause.ends_with("Grumpy whose Display panicked"), "{cause}");
}

#[tokio::test]
async fn spawning_on_a_dropped_scope_starts_nothing_and_reports_canceled() {
    let kept = Arc::new(Mutex::new(None));
    let slot = kept.clone();
    let scope = ctx::scope(
        &Context::background(),
        move |s: Scope<AppError>| async move {
            *slot.lock().unwrap() = Some(s.clone());
            std::future::pending::<Result<(), AppError>>().await
        },
    );
    tokio::select! {
        _ = scope => unreachable!("the body never returns"),
        () = eventually("the body ran", || kept.lock().unwrap().is_some()) => {}
    }
    let s = kept.lock().unwrap().take().unwrap();
    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    // e.g. a blocking task of the dropped scope, still running, spawning more
    let late = s.spawn(move |_ctx| async move {
        flag.store(true, SeqCst);
        Ok(1)
    });
    assert_eq!(late.await, Err(AppError::Ctx(Error::Canceled)));
    assert!(!s.try_spawn(|_ctx| async { Ok(()) }));
    assert_eq!(s.ready().await, Err(Error::Canceled));
    tokio::task::yield_now().await;
    assert!(!ran.load(SeqCst));
}
