//! Tracing spans follow scope tasks (feature `tracing`): a task started with
//! `spawn`, `try_spawn` or `spawn_blocking` runs inside the span that was
//! current at the spawn, also when it waited in the queue and was started
//! later from somewhere else.
//!
//! A small subscriber records, for every event, the span current on the
//! thread that emitted it; tasks run on other threads than their spawner.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use ctx::{Context, Error};
use tokio::sync::oneshot;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};
use tracing_core::span::Current;

/// Records the name of the span current at each event, by the event's `task`
/// field.
#[derive(Default)]
struct Recorder {
    next_id: AtomicU64,
    spans: Mutex<HashMap<u64, &'static Metadata<'static>>>,
    events: Mutex<Vec<(String, Option<&'static str>)>>,
}

thread_local! {
    /// The spans entered on this thread, innermost last.
    static ENTERED: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

struct TaskField(Option<String>);

impl Visit for TaskField {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "task" {
            self.0 = Some(value.to_owned());
        }
    }
    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

impl Recorder {
    fn innermost(&self) -> Option<(u64, &'static Metadata<'static>)> {
        let id = ENTERED.with(|entered| entered.borrow().last().copied())?;
        let meta = self.spans.lock().unwrap().get(&id).copied()?;
        Some((id, meta))
    }

    /// The span the event tagged `task` was emitted in; exactly one such.
    fn span_of(&self, task: &str) -> Option<&'static str> {
        let events = self.events.lock().unwrap();
        let mut found = events.iter().filter(|(t, _)| t == task);
        let (_, span) = found.next().unwrap_or_else(|| panic!("no event {task:?}"));
        assert!(found.next().is_none(), "two events {task:?}");
        *span
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst) + 1;
        self.spans.lock().unwrap().insert(id, span.metadata());
        Id::from_u64(id)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut task = TaskField(None);
        event.record(&mut task);
        if let Some(task) = task.0 {
            let span = self.innermost().map(|(_, meta)| meta.name());
            self.events.lock().unwrap().push((task, span));
        }
    }
    fn enter(&self, span: &Id) {
        ENTERED.with(|entered| entered.borrow_mut().push(span.into_u64()));
    }
    fn exit(&self, span: &Id) {
        ENTERED.with(|entered| {
            let mut entered = entered.borrow_mut();
            if let Some(at) = entered.iter().rposition(|id| *id == span.into_u64()) {
                entered.remove(at);
            }
        });
    }
    fn current_span(&self) -> Current {
        match self.innermost() {
            Some((id, meta)) => Current::new(Id::from_u64(id), meta),
            None => Current::none(),
        }
    }
}

/// The process-wide recorder, installed once as the global default so that
/// tokio's worker and blocking threads report to it too.
fn recorder() -> &'static Recorder {
    static RECORDER: OnceLock<&'static Recorder> = OnceLock::new();
    RECORDER.get_or_init(|| {
        let recorder: &'static Recorder = Box::leak(Box::default());
        tracing::subscriber::set_global_default(Forward(recorder))
            .expect("no other global subscriber in this test binary");
        recorder
    })
}

/// Hands a `&'static Recorder` to `set_global_default`, which takes its
/// subscriber by value.
struct Forward(&'static Recorder);

impl Subscriber for Forward {
    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        self.0.enabled(meta)
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        self.0.new_span(span)
    }
    fn record(&self, span: &Id, values: &Record<'_>) {
        self.0.record(span, values)
    }
    fn record_follows_from(&self, span: &Id, follows: &Id) {
        self.0.record_follows_from(span, follows)
    }
    fn event(&self, event: &Event<'_>) {
        self.0.event(event)
    }
    fn enter(&self, span: &Id) {
        self.0.enter(span)
    }
    fn exit(&self, span: &Id) {
        self.0.exit(span)
    }
    fn current_span(&self) -> Current {
        self.0.current_span()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawned_task_runs_in_the_span_current_at_the_spawn() {
    let rec = recorder();
    ctx::scope(&Context::background(), |s| async move {
        let inside = {
            let _in = tracing::info_span!("spawn_parent").entered();
            s.spawn(|_ctx| {
                tracing::info!(task = "spawn: closure");
                async {
                    tokio::task::yield_now().await;
                    tracing::info!(task = "spawn: future");
                    Ok::<_, Error>(())
                }
            })
        };
        let outside = s.spawn(|_ctx| async {
            tracing::info!(task = "spawn: outside any span");
            Ok(())
        });
        inside.await?;
        outside.await
    })
    .await
    .unwrap();
    assert_eq!(rec.span_of("spawn: closure"), Some("spawn_parent"));
    assert_eq!(rec.span_of("spawn: future"), Some("spawn_parent"));
    assert_eq!(rec.span_of("spawn: outside any span"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_started_by_try_spawn_runs_in_the_span_current_at_the_spawn() {
    let rec = recorder();
    let (done_tx, done_rx) = oneshot::channel();
    ctx::scope(&Context::background(), |s| async move {
        let _in = tracing::info_span!("try_spawn_parent").entered();
        let started = s.try_spawn(move |_ctx| async move {
            tokio::task::yield_now().await;
            tracing::info!(task = "try_spawn: future");
            let _ = done_tx.send(());
            Ok::<_, Error>(())
        });
        assert!(started);
        Ok(())
    })
    .await
    .unwrap();
    done_rx.await.unwrap();
    assert_eq!(rec.span_of("try_spawn: future"), Some("try_spawn_parent"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_task_runs_in_the_span_current_at_the_spawn() {
    let rec = recorder();
    ctx::scope(&Context::background(), |s| async move {
        let task = {
            let _in = tracing::info_span!("blocking_parent").entered();
            s.spawn_blocking(|_ctx| {
                tracing::info!(task = "spawn_blocking: closure");
                Ok::<_, Error>(())
            })
        };
        task.await
    })
    .await
    .unwrap();
    assert_eq!(
        rec.span_of("spawn_blocking: closure"),
        Some("blocking_parent")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_task_runs_in_its_spawners_span_not_where_its_slot_frees() {
    let rec = recorder();
    ctx::scope(&Context::background(), |s| async move {
        s.set_limit(1);
        let (release_holder, holder_released) = oneshot::channel::<()>();
        let (release_first, first_released) = oneshot::channel::<()>();
        let holder = {
            let _in = tracing::info_span!("holder_parent").entered();
            s.spawn(|_ctx| async move {
                let _ = holder_released.await;
                tracing::info!(task = "queued: the holder");
                Ok::<_, Error>(())
            })
        };
        // Two tasks queue behind the holder, each spawned in its own span.
        let (first, second) = {
            let _in = tracing::info_span!("queued_parent").entered();
            let first = s.spawn(|_ctx| {
                tracing::info!(task = "queued: started by a release, closure");
                async {
                    let _ = first_released.await; // keeps the second queued
                    tracing::info!(task = "queued: started by a release, future");
                    Ok(())
                }
            });
            let _inner = tracing::info_span!("queued_inner").entered();
            let second = s.spawn_blocking(|_ctx| {
                tracing::info!(task = "queued: started by a raised limit");
                Ok(())
            });
            (first, second)
        };
        // The holder's release, in the holder's task, starts the first ...
        let _ = release_holder.send(());
        holder.await?;
        // ... and raising the limit, in yet another span, the second.
        {
            let _in = tracing::info_span!("raiser").entered();
            s.set_limit(2);
        }
        second.await?;
        let _ = release_first.send(());
        first.await
    })
    .await
    .unwrap();
    assert_eq!(rec.span_of("queued: the holder"), Some("holder_parent"));
    assert_eq!(
        rec.span_of("queued: started by a release, closure"),
        Some("queued_parent")
    );
    assert_eq!(
        rec.span_of("queued: started by a release, future"),
        Some("queued_parent")
    );
    assert_eq!(
        rec.span_of("queued: started by a raised limit"),
        Some("queued_inner")
    );
}
