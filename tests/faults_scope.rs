//! Fault tests for `ctx::scope`: tasks that panic in every way a task can,
//! among healthy scopes under the same parent. Each failing scope resumes its
//! own panic; the parent, the sibling scopes and the tree stay unaffected.
//!
//! Then every place where the scope contains a panic of user code instead of
//! resuming it, each hit by a panic whose payload panics again when dropped:
//! nothing escapes, and the runtime and later scopes keep working.

use std::future::Future;
use std::io;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll, Wake, Waker};
use std::time::Duration;

use ctx::{Context, Error, Scope};
use futures::FutureExt;

/// Silences the panics these tests cause on purpose (each scope's, each
/// callback's); any other panic, an assertion above all, still prints.
fn quiet_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = panic_text(info.payload());
        let planted = info.payload().is::<Bomb>()
            || [
                "scope",
                "round ",
                "after_func of scope",
                "the payload's drop",
            ]
            .iter()
            .any(|p| text.starts_with(p));
        if !planted {
            default(info);
        }
    }));
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// How the failing task of a scope fails.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// The closure panics before it returns a future.
    InClosure,
    /// The future panics in a poll, after it has been suspended once.
    InPoll,
    /// The future returns, then panics while it is dropped.
    InDrop,
    /// A blocking task panics.
    Blocking,
}

/// Panics with `message`; typed as an error so a task can return it.
fn explode<E>(message: String) -> E {
    panic!("{message}")
}

struct PanicOnDrop(&'static str);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("{}", self.0);
    }
}

/// One scope under `parent`: four tasks, one of which fails with `fault`
/// (if any); a panicking after_func sits on the group context.
async fn one_scope(
    parent: Context,
    id: usize,
    fault: Option<Fault>,
    after_ran: Arc<AtomicUsize>,
) -> (Context, Result<usize, io::Error>) {
    let group = Arc::new(std::sync::Mutex::new(None));
    let result = ctx::scope(&parent, {
        let group = group.clone();
        move |s| async move {
            *group.lock().unwrap() = Some(s.context().clone());
            // A callback that panics when the group ends must disturb nothing.
            let _after = s.context().after_func(move || {
                after_ran.fetch_add(1, Ordering::SeqCst);
                panic!("after_func of scope {id}");
            });
            for j in 0..4 {
                let failing = j == 2 && fault.is_some();
                match (failing, fault) {
                    (true, Some(Fault::InClosure)) => {
                        s.spawn(move |_ctx| -> std::future::Ready<Result<(), io::Error>> {
                            panic!("scope {id}: closure")
                        });
                    }
                    (true, Some(Fault::InPoll)) => {
                        s.spawn(move |_ctx| async move {
                            tokio::task::yield_now().await;
                            Err::<(), io::Error>(explode(format!("scope {id}: poll")))
                        });
                    }
                    (true, Some(Fault::InDrop)) => {
                        s.spawn(move |_ctx| async move {
                            let _bomb = PanicOnDrop(if id.is_multiple_of(2) {
                                "scope: drop"
                            } else {
                                "scope: drop!"
                            });
                            tokio::task::yield_now().await;
                            Ok::<(), io::Error>(())
                        });
                    }
                    (true, Some(Fault::Blocking)) => {
                        s.spawn_blocking(move |_ctx| -> Result<(), io::Error> {
                            panic!("scope {id}: blocking")
                        });
                    }
                    _ => {
                        // Healthy: a little work, cut short if the group ends.
                        s.spawn(move |ctx| async move {
                            match ctx.run(tokio::time::sleep(Duration::from_millis(2))).await {
                                Ok(()) => Ok(()),
                                Err(err) => Err(io::Error::from(err)),
                            }
                        });
                    }
                }
            }
            Ok::<_, io::Error>(id)
        }
    });
    let outcome = AssertUnwindSafe(result).catch_unwind().await;
    let group = group.lock().unwrap().take().expect("the body ran");
    match outcome {
        Ok(result) => (group, result),
        Err(payload) => std::panic::resume_unwind(payload),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn panicking_tasks_leave_the_parent_and_sibling_scopes_unaffected() {
    quiet_panics();
    let (parent, cancel_parent) = Context::background().with_cancel();
    let after_ran = Arc::new(AtomicUsize::new(0));
    let faults = [
        None,
        Some(Fault::InClosure),
        None,
        Some(Fault::InPoll),
        None,
        Some(Fault::InDrop),
        None,
        Some(Fault::Blocking),
    ];
    let scopes = 64;
    let runs: Vec<_> = (0..scopes)
        .map(|id| {
            let fault = faults[id % faults.len()];
            let task = tokio::spawn(one_scope(parent.clone(), id, fault, after_ran.clone()));
            (id, fault, task)
        })
        .collect();
    for (id, fault, task) in runs {
        let joined = task.await;
        match fault {
            None => {
                let (group, result) = joined.expect("a healthy scope does not panic");
                assert_eq!(result.unwrap(), id, "a healthy sibling finishes normally");
                // Finished scopes cancel their group, plainly.
                assert_eq!(group.err(), Some(Error::Canceled));
            }
            Some(fault) => {
                let panic = joined
                    .expect_err("the failing scope resumes the panic")
                    .into_panic();
                let text = panic_text(&*panic);
                let expected = match fault {
                    Fault::InClosure => format!("scope {id}: closure"),
                    Fault::InPoll => format!("scope {id}: poll"),
                    Fault::InDrop => (if id.is_multiple_of(2) {
                        "scope: drop"
                    } else {
                        "scope: drop!"
                    })
                    .to_string(),
                    Fault::Blocking => format!("scope {id}: blocking"),
                };
                assert_eq!(
                    text, expected,
                    "{fault:?}: the task's own payload is resumed"
                );
            }
        }
    }
    // Every group's panicking after_func ran once, and was contained.
    assert_eq!(after_ran.load(Ordering::SeqCst), scopes);
    // The parent never noticed, and still works: a new scope runs under it,
    // and the parent's cancel still reaches it.
    assert_eq!(parent.err(), None);
    let late = tokio::spawn({
        let parent = parent.clone();
        async move {
            ctx::scope(&parent, |s| async move {
                s.spawn(|ctx| async move { Err::<(), Error>(ctx.done().await) });
                Ok::<_, Error>(())
            })
            .await
        }
    });
    tokio::task::yield_now().await;
    cancel_parent.cancel();
    assert_eq!(late.await.unwrap(), Err(Error::Canceled));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_task_panicking_while_the_parent_is_canceled_still_resumes_its_panic() {
    quiet_panics();
    for round in 0..50u64 {
        let (parent, cancel_parent) = Context::background().with_cancel();
        let scope = tokio::spawn({
            let parent = parent.clone();
            async move {
                AssertUnwindSafe(ctx::scope(&parent, move |s| async move {
                    s.spawn(move |ctx| async move {
                        // Race the parent's cancel to the panic.
                        if round % 2 == 0 {
                            tokio::task::yield_now().await;
                        }
                        let _ = ctx.err();
                        Err::<(), Error>(explode(format!("round {round}")))
                    });
                    Ok::<_, Error>(())
                }))
                .catch_unwind()
                .await
            }
        });
        cancel_parent.cancel();
        // A panic outranks the parent's error, whichever came first.
        let outcome = scope.await.unwrap();
        match outcome {
            Err(panic) => assert_eq!(panic_text(&*panic), format!("round {round}")),
            // The parent may end the scope before its task ever started:
            // then nothing panicked and the parent's error is returned.
            Ok(result) => assert_eq!(result, Err(Error::Canceled)),
        }
        assert_eq!(parent.err(), Some(Error::Canceled));
    }
}

// ------------------------------------------- payloads whose drop panics

/// A panic payload whose own drop panics again.
struct Bomb;

impl Drop for Bomb {
    fn drop(&mut self) {
        panic!("the payload's drop panics too");
    }
}

/// Far longer than any scope here takes; only an upper bound.
const PATIENCE: Duration = Duration::from_secs(10);

/// Panics with a [`Bomb`]; typed as anything, so a task can return it.
fn detonate<T>() -> T {
    std::panic::panic_any(Bomb)
}

/// A value whose drop panics with a [`Bomb`].
#[derive(Debug)]
struct BombOnDrop;

impl Drop for BombOnDrop {
    fn drop(&mut self) {
        detonate()
    }
}

/// Awaits `fut`, failing the test if a panic escapes it. The escaped payload
/// is forgotten, not dropped: it may be a `Bomb`.
async fn no_panic<F: Future>(what: &str, fut: F) -> F::Output {
    let caught = tokio::time::timeout(PATIENCE, AssertUnwindSafe(fut).catch_unwind()).await;
    match caught.unwrap_or_else(|_| panic!("{what}: the scope never finished")) {
        Ok(out) => out,
        Err(payload) => {
            let text = panic_text(&*payload);
            std::mem::forget(payload);
            panic!("{what}: a panic escaped the scope: {text:?}");
        }
    }
}

/// The runtime, the tree and new scopes still work.
async fn assert_still_healthy() {
    let out = ctx::scope(&Context::background(), |s| async move {
        let a = s.spawn(|_ctx| async { Ok::<_, Error>(1) });
        let b = s.spawn_blocking(|_ctx| Ok(2));
        Ok(a.await? + b.await?)
    })
    .await;
    assert_eq!(out, Ok(3), "a new scope runs");
    let (ctx, _guard) = Context::background().with_timeout(Duration::from_millis(5));
    let fired = tokio::time::timeout(Duration::from_secs(10), ctx.done()).await;
    assert_eq!(fired, Ok(Error::DeadlineExceeded), "deadlines still fire");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_whose_display_panics_with_a_panicking_payload_is_still_returned() {
    quiet_panics();
    #[derive(Debug)]
    struct Grumpy;
    impl From<Error> for Grumpy {
        fn from(_: Error) -> Self {
            Grumpy
        }
    }
    impl std::fmt::Display for Grumpy {
        fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            detonate()
        }
    }
    let out = no_panic(
        "Display of the first error",
        ctx::scope(&Context::background(), |s| async move {
            s.spawn(|_ctx| async { Err::<(), _>(Grumpy) });
            s.spawn(|ctx| async move {
                ctx.done().await;
                Ok(())
            });
            Ok(())
        }),
    )
    .await;
    assert!(matches!(out, Err(Grumpy)), "the error is returned");
    assert_still_healthy().await;
}

/// Panics when polled; dropping it then panics again, with a [`Bomb`]. (An
/// `async` block would drop its locals while the poll's panic unwinds, and a
/// second panic there aborts the process whatever ctx does.)
struct PanicsThenBombs(#[allow(dead_code)] BombOnDrop);

impl Future for PanicsThenBombs {
    type Output = Result<(), io::Error>;

    fn poll(self: Pin<&mut Self>, _: &mut TaskContext<'_>) -> Poll<Self::Output> {
        panic!("scope: a poll panicked")
    }
}

/// The text of the panic `scope` resumed; the payload is forgotten, not
/// dropped, in case it is a `Bomb`.
async fn resumed<F: Future>(what: &str, scope: F) -> String
where
    F::Output: std::fmt::Debug,
{
    let caught = tokio::time::timeout(PATIENCE, AssertUnwindSafe(scope).catch_unwind()).await;
    match caught.unwrap_or_else(|_| panic!("{what}: the scope never finished")) {
        Ok(result) => panic!("{what}: no panic resumed, but {result:?}"),
        Err(payload) => {
            let text = panic_text(&*payload);
            std::mem::forget(payload);
            text
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_future_that_panics_then_drops_a_panicking_payload_has_its_first_panic_resumed() {
    quiet_panics();
    let task = resumed(
        "a task",
        ctx::scope(&Context::background(), |s| async move {
            s.spawn(|_ctx| PanicsThenBombs(BombOnDrop));
            Ok::<(), io::Error>(())
        }),
    )
    .await;
    assert_eq!(task, "scope: a poll panicked", "the task's first panic");
    // The body is the future itself: an `async` block around it would drop
    // it while the panic unwinds.
    let body = resumed(
        "the body",
        ctx::scope(&Context::background(), |_s| PanicsThenBombs(BombOnDrop)),
    )
    .await;
    assert_eq!(body, "scope: a poll panicked", "the body's first panic");
    assert_still_healthy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_panics_with_panicking_payloads_are_dropped_and_the_first_is_resumed() {
    quiet_panics();
    let text = resumed(
        "later panics",
        ctx::scope(&Context::background(), |s| async move {
            // A task and then the body panic after the group failed, with bombs.
            s.spawn(|ctx| async move {
                ctx.done().await;
                Err::<(), io::Error>(detonate())
            });
            s.spawn(|_ctx| async {
                Err::<(), io::Error>(explode("scope: the first panic".into()))
            });
            s.context().done().await;
            detonate::<Result<(), io::Error>>()
        }),
    )
    .await;
    assert_eq!(text, "scope: the first panic");
    assert_still_healthy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_scope_drops_its_unresumed_panic_inside_a_catch() {
    quiet_panics();
    type Kept = (Scope<io::Error>, ctx::TaskHandle<(), io::Error>);
    let kept: Arc<Mutex<Option<Kept>>> = Arc::new(Mutex::new(None));
    let slot = kept.clone();
    let mut scope = Box::pin(ctx::scope(&Context::background(), move |s| async move {
        let panicking = s.spawn(|_ctx| async { Err::<(), io::Error>(detonate()) });
        *slot.lock().unwrap() = Some((s.clone(), panicking));
        // A body that ignores the cancel: the scope cannot finish.
        std::future::pending::<Result<(), io::Error>>().await
    }));
    let s = tokio::select! {
        _ = &mut scope => unreachable!("the body never returns"),
        s = async {
            loop {
                let taken = kept.lock().unwrap().take();
                if let Some((s, panicking)) = taken {
                    // Resolved once the task, and its hold on the scope, are gone.
                    assert!(panicking.await.is_err());
                    break s;
                }
                tokio::task::yield_now().await;
            }
        } => s,
    };
    assert!(s.context().is_done(), "the panic was recorded");
    // The scope future and the last handle hold the recorded, never resumed panic.
    let dropped = std::panic::catch_unwind(AssertUnwindSafe(move || {
        drop(scope);
        drop(s);
    }));
    if let Err(payload) = dropped {
        let text = panic_text(&*payload);
        std::mem::forget(payload);
        panic!("dropping the scope let a panic escape: {text:?}");
    }
    assert_still_healthy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handle_whose_task_panicked_past_its_catch_with_a_panicking_payload_resolves_canceled() {
    quiet_panics();
    #[derive(Debug)]
    enum Faulty {
        Ctx(Error),
        First,
        /// Dropped by the scope as a later error; its drop panics.
        Later(#[allow(dead_code)] BombOnDrop),
    }
    impl From<Error> for Faulty {
        fn from(err: Error) -> Self {
            Faulty::Ctx(err)
        }
    }
    impl std::fmt::Display for Faulty {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{self:?}")
        }
    }
    let out = no_panic(
        "a later error's drop",
        ctx::scope(&Context::background(), |s| async move {
            s.spawn(|_ctx| async { Err::<(), _>(Faulty::First) });
            let later = s.spawn(|ctx| async move {
                ctx.done().await;
                Err::<(), _>(Faulty::Later(BombOnDrop))
            });
            let later = later.await;
            assert!(
                matches!(later, Err(Faulty::Ctx(Error::Canceled))),
                "{later:?}"
            );
            Ok(())
        }),
    )
    .await;
    assert!(matches!(out, Err(Faulty::First)), "{out:?}");
    assert_still_healthy().await;
}

struct BombWaker;

impl Wake for BombWaker {
    fn wake(self: Arc<Self>) {
        detonate()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_handles_whose_wakers_panic_with_panicking_payloads_are_all_told() {
    quiet_panics();
    let out = no_panic(
        "the wakers of queued handles",
        ctx::scope(&Context::background(), |s| async move {
            s.set_limit(1);
            s.spawn(|ctx| async move {
                ctx.done().await; // holds the only slot until the group fails
                Ok::<(), io::Error>(())
            });
            let waker = Waker::from(Arc::new(BombWaker));
            let mut queued: Vec<_> = (0..3).map(|_| s.spawn(|_ctx| async { Ok(()) })).collect();
            for handle in &mut queued {
                let polled = Pin::new(handle).poll(&mut TaskContext::from_waker(&waker));
                assert!(polled.is_pending(), "queued behind the holder");
            }
            // Failing drops the queue, which wakes each handle's waker.
            Err::<(), _>(io::Error::other("scope: failed with a queue"))
        }),
    )
    .await;
    assert_eq!(out.unwrap_err().to_string(), "scope: failed with a queue");
    assert_still_healthy().await;
}
