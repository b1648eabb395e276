//! Fault tests for `ctx::scope`: tasks that panic in every way a task can,
//! among healthy scopes under the same parent. Each failing scope resumes its
//! own panic; the parent, the sibling scopes and the tree stay unaffected.

use std::io;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ctx::{Context, Error};
use futures::FutureExt;

/// Silences the panics these tests cause on purpose (each scope's, each
/// callback's); any other panic, an assertion above all, still prints.
fn quiet_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = panic_text(info.payload());
        let planted = ["scope", "round ", "after_func of scope"]
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
