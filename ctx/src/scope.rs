//! Structured task groups: [`scope`], [`Scope`] and [`TaskHandle`].
//!
//! A scope is Go's `errgroup.WithContext` plus `Wait`, made into one future
//! that cannot be forgotten: the tasks it starts run in parallel on tokio, and
//! the future resolves only once every one of them has finished.
//!
//! This file is the public face: [`scope`] and the [`Scope`] handle, whose
//! methods are thin and forward to the files below, plus the few names they
//! all share. It takes no lock itself.
//!
//! # Layout
//!
//! - `state.rs`: what the scope future, every [`Scope`] clone and every task
//!   share (`Shared`, and the `State` under its one lock); its module doc
//!   numbers the invariants that every other file cites where it takes the
//!   lock.
//! - `admit.rs`: admission and the queue: starting, queueing or refusing a
//!   spawn, the limit, `ready`, and handing a freed slot to the next queued
//!   task.
//! - `run.rs`: the wrapper around every task's user code, which records its
//!   failure and releases its slot.
//! - `finish.rs`: how a group ends: recording failures, waiting until it is
//!   idle, and finishing or dropping the scope future.
//! - `handle.rs` ([`TaskHandle`]), `cause.rs` (what the group context's cause
//!   says after a failure), `first.rs` (which failure is the first,
//!   loom-modelled), `tasks.rs` (the table of abort handles), `span.rs` (the
//!   tracing span a task inherits from its spawner, feature `tracing`).
//!
//! Dependencies: only the crate root's re-exports (`crate::{Context, ...}`),
//! `crate::loom` and `crate::unwind` (which contains the panics the scope
//! does not resume), so the core's files can move freely; the submodules
//! reach each other through `super::`.

use std::fmt;
use std::future::{poll_fn, Future};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use tokio::runtime::Handle;

use crate::{Context, Error};

mod admit;
mod cause;
mod finish;
mod first;
mod handle;
mod run;
mod span;
mod state;
mod tasks;

use admit::Admit;
use cause::Origin;
use finish::Running;
use handle::HandleState;
pub use handle::TaskHandle;
use run::{catch, run_blocking, run_task, Release};
use span::SpawnSpan;
use state::Shared;

/// The bounds every scope puts on its error type `E` (see [`scope`]).
trait GroupError: From<Error> + fmt::Display + Send + 'static {}

impl<E: From<Error> + fmt::Display + Send + 'static> GroupError for E {}

/// What a started task hands to its [`TaskHandle`]: the value, or the group's
/// error if the task produced no value.
type Output<T> = Result<T, Error>;

/// Runs `body` with a task group whose tasks all finish before this returns.
///
/// `body` gets a [`Scope`]: a cloneable handle to start tasks with
/// ([`Scope::spawn`], [`Scope::spawn_blocking`], [`Scope::try_spawn`]) and to
/// read the group context ([`Scope::context`]), a child of `parent` that every
/// task receives by value. Tasks run in parallel on the tokio runtime that
/// polls the scope; the body runs inside the scope future itself, so it may
/// borrow from the caller.
///
/// # Outcome
///
/// - The first `Err`, from the body or from any task, cancels the group
///   context at once, with that error recorded as its
///   [`cause`](Context::cause), and is what `scope` returns once every task
///   has finished. Later errors are dropped.
/// - If the body and every task succeed, `scope` returns the body's `Ok`.
/// - If `parent` is done before the scope finishes, `scope` returns
///   `E::from(parent's error)` once every task has stopped, even if the tasks
///   returned `Ok` (they were cut short), unless a task or the body had failed
///   before that: the first event wins.
/// - If `parent` is done already, `scope` returns `E::from(parent's error)` at
///   once: `body` is not called and no task starts.
/// - If the body or a task panics, the group context is canceled, the scope
///   waits for every other task, then resumes the first panic in the caller
///   with its original payload (later panics are dropped, and so are their
///   payloads, inside a catch of their own in case their `Drop` panics). A
///   panic outranks any error.
/// - When `scope` returns (or panics), its group context has been canceled, as
///   errgroup's `Wait` does, so a `Context` kept from it reports the group is
///   over.
///
/// The body, like every task, is cooperative: when the group is canceled it is
/// not dropped but keeps running until it returns, and is expected to watch
/// [`Scope::context`] (e.g. through `ctx.run(..)` or `#[ctx]` functions).
///
/// # Causes and the bounds on `E`
///
/// `E` needs `From<ctx::Error>` (for the parent's error and for handles of
/// tasks that produced no value), `Display`, `Send` and `'static`. It need not
/// be `Clone` or `std::error::Error`, so `std::io::Error`, `anyhow::Error`,
/// `Box<dyn Error + Send + Sync>` and ordinary error enums all work. Because
/// the error itself is returned by `scope`, the group context's cause records
/// it as follows:
///
/// - `E = ctx::Cause` or `E = ctx::Error`: the cause is the error value itself
///   (a `Cause` is cheaply cloned), so `downcast_ref` sees the original type.
/// - any other `E`: the cause is a snapshot that displays exactly as the error
///   (`format!("{:#}", err)`, which for `anyhow::Error` includes the chain of
///   contexts) and whose `Debug` names the error type. It cannot be downcast to
///   `E`; use `E = ctx::Cause` where siblings must inspect the original error.
///   If that `Display` panics, the panic is contained (the panic hook still
///   reports it): the cause then says that an error of type `E` failed the
///   group and its `Display` panicked, and `scope` still returns the error.
///
/// A panic records a cause that displays as `a task in the scope panicked:
/// <message>` (or `the body of the scope panicked: <message>`).
///
/// # Cancel safety
///
/// Not cancel-safe, by design: dropping the scope future before it completes
/// cancels the group context and aborts its tasks, and their results are lost.
/// "Aborted" means exactly what tokio's
/// [`AbortHandle::abort`](tokio::task::AbortHandle::abort) gives:
///
/// - an async task is dropped the next time it would be polled: at once if it
///   is waiting, or as soon as its current poll returns if it is running on
///   another worker thread. The drop of the scope future does not wait for that.
/// - a task still waiting for a slot (see [`Scope::set_limit`]), or spawned but
///   not yet polled, never runs.
/// - a blocking task ([`Scope::spawn_blocking`]) cannot be interrupted: it sees
///   its context canceled and runs until its closure returns; its result is
///   discarded. One that had not started yet does not start.
/// - a panic of a task or of the body is never resumed: it is dropped, like
///   a later panic above.
///
/// Spawning on a dropped scope is refused: the task does not start, and its
/// handle reports the group's error.
///
/// # Panics
///
/// When first polled outside a tokio runtime. See also the resumed panics
/// above.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use ctx::Context;
///
/// async fn fetch_user(ctx: &Context, id: u64) -> Result<String, std::io::Error> {
///     ctx.check()?;
///     Ok(format!("user {id}"))
/// }
/// async fn fetch_orders(ctx: &Context, id: u64) -> Result<Vec<u32>, std::io::Error> {
///     ctx.check()?;
///     Ok(vec![id as u32, 7])
/// }
///
/// let parent = Context::background();
/// let (user, orders) = ctx::scope(&parent, |s| async move {
///     let user = s.spawn(|ctx| async move { fetch_user(&ctx, 42).await });
///     let orders = s.spawn(|ctx| async move { fetch_orders(&ctx, 42).await });
///     Ok::<_, std::io::Error>((user.await?, orders.await?))
/// })
/// .await
/// .unwrap();
/// assert_eq!(user, "user 42");
/// assert_eq!(orders, [42, 7]);
/// # }
/// ```
///
/// The first error wins and stops the others:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::io;
///
/// let result = ctx::scope(&ctx::Context::background(), |s| async move {
///     s.spawn(|_ctx| async { Err::<(), _>(io::Error::other("database down")) });
///     s.spawn(|ctx| async move {
///         ctx.done().await; // a sibling that runs until the group is canceled
///         Err::<(), io::Error>(ctx.err().unwrap().into())
///     });
///     Ok(())
/// })
/// .await;
/// assert_eq!(result.unwrap_err().to_string(), "database down");
/// # }
/// ```
///
/// Go: `errgroup.WithContext` followed by `Group.Wait`.
#[cfg_attr(feature = "debug", track_caller)]
pub fn scope<T, E, F, Fut>(parent: &Context, body: F) -> impl Future<Output = Result<T, E>>
where
    F: FnOnce(Scope<E>) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: From<Error> + fmt::Display + Send + 'static,
{
    let parent = parent.clone();
    // The census names this call as the group context's origin: the
    // derivation below runs in the future, out of `#[track_caller]`'s reach.
    #[cfg(feature = "debug")]
    let origin = crate::debug::registry::Origin::caller();
    async move {
        if let Some(err) = parent.err() {
            return Err(E::from(err));
        }
        let rt = Handle::try_current().unwrap_or_else(|_| {
            panic!(
                "ctx::scope must be polled inside a tokio runtime (none is running on this thread)"
            )
        });
        let (group, guard) = {
            #[cfg(feature = "debug")]
            let _origin = origin.enter();
            parent.with_cancel()
        };
        let shared = Arc::new(Shared::new(group, guard.handle(), parent, rt));
        // Declared before the body future, so it is dropped after it: a dropped
        // scope future first drops the body, then aborts the tasks.
        let mut running = Running::new(Arc::clone(&shared), guard);

        let scope = Scope {
            shared: Arc::clone(&shared),
        };
        let value = match catch_unwind(AssertUnwindSafe(|| body(scope))) {
            Ok(fut) => match catch(fut).await {
                Ok(Ok(value)) => Some(value),
                Ok(Err(err)) => {
                    shared.fail(err);
                    None
                }
                Err(panic) => {
                    shared.panicked(panic, Origin::Body);
                    None
                }
            },
            Err(panic) => {
                shared.panicked(panic, Origin::Body);
                None
            }
        };

        poll_fn(|cx| shared.poll_idle(cx)).await;
        running.finish()?;
        match value {
            Some(value) => Ok(value),
            None => {
                unreachable!("ctx: internal error: a scope without a value recorded no failure")
            }
        }
    }
}

/// A handle to a running task group, passed to the body of [`scope`].
///
/// Cheap to clone; `Send + Sync + 'static`, so a task may take a clone and
/// spawn more tasks, which the scope waits for as well. All clones refer to the
/// same group.
///
/// Use it only while the scope runs: spawning after [`scope`] has returned
/// panics (see [`Scope::spawn`]).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let sum = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
/// let total = sum.clone();
/// ctx::scope(&ctx::Context::background(), |s| async move {
///     for n in 1..=3u64 {
///         let sum = sum.clone();
///         let s2 = s.clone();
///         s.spawn(move |_ctx| async move {
///             // a task that spawns a task of the same group
///             s2.spawn(move |_ctx| async move {
///                 sum.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
///                 Ok(())
///             });
///             Ok(())
///         });
///     }
///     Ok::<_, ctx::Error>(())
/// })
/// .await
/// .unwrap();
/// // every task, including the nested ones, finished before scope returned
/// assert_eq!(total.load(std::sync::atomic::Ordering::Relaxed), 6);
/// # }
/// ```
///
/// Go: `errgroup.Group`.
pub struct Scope<E> {
    shared: Arc<Shared<E>>,
}

impl<E> Clone for Scope<E> {
    fn clone(&self) -> Self {
        Scope {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<E> fmt::Debug for Scope<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let now = self.shared.snapshot();
        f.debug_struct("Scope")
            .field("context", &self.shared.ctx)
            .field("phase", &now.phase)
            .field("active", &now.active)
            .field("queued", &now.queued)
            .field("limit", &now.limit)
            .finish()
    }
}

impl<E> Scope<E>
where
    E: From<Error> + fmt::Display + Send + 'static,
{
    /// The group context: a child of the scope's parent, canceled by the first
    /// failure, by the parent, and when the scope finishes. Every task gets a
    /// clone of it; the body can use it to watch for cancellation.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # #[derive(Debug, PartialEq)] struct RequestId(u32);
    /// let parent = ctx::Context::background().with_value(RequestId(7));
    /// let kept = ctx::scope(&parent, |s| async move {
    ///     // values of the parent are visible through the group context
    ///     assert_eq!(s.context().value::<RequestId>(), Some(&RequestId(7)));
    ///     Ok::<_, ctx::Error>(s.context().clone())
    /// })
    /// .await
    /// .unwrap();
    /// assert!(kept.is_done()); // the group is over once scope returned
    /// assert!(!parent.is_done());
    /// # }
    /// ```
    ///
    /// Go: the context returned by `errgroup.WithContext`.
    pub fn context(&self) -> &Context {
        &self.shared.ctx
    }

    /// Starts a task running `f(group context)` on tokio; never blocks.
    ///
    /// The task's `Err` counts as a failure of the whole group (see [`scope`]);
    /// its `Ok` value is delivered through the returned [`TaskHandle`], which
    /// may be awaited or simply dropped (the scope waits for the task either
    /// way). `f` runs inside the new task, not in the caller.
    ///
    /// With the cargo feature `tracing`, `f` and its future run inside the
    /// span that is current at this call (captured now, entered on every
    /// poll, also when the task waited in the queue and starts later from
    /// elsewhere), as `tracing::Instrument::in_current_span` does. Without
    /// the feature nothing is captured.
    ///
    /// - If the group has a limit ([`Scope::set_limit`]) and every slot is
    ///   taken, the task is queued and starts, in spawn order, when a slot
    ///   frees; use [`Scope::ready`] first to keep the queue short. Under a
    ///   limit of 0 it stays queued until the limit is raised, and never
    ///   starts if the body returns first with no task running.
    /// - If the group context is done (a task failed, the parent is done), the
    ///   task does not start: `f` is dropped and the handle resolves to the
    ///   group's error. The same happens to a queued task when the group is
    ///   canceled before its slot frees, and to a spawn on a dropped scope.
    ///
    /// # Panics
    ///
    /// If the scope has finished, i.e. [`scope`] has returned: a `Scope` kept
    /// past its scope cannot start tasks, since nobody would wait for them.
    /// Tasks spawned by the body or by running tasks never hit this, because
    /// the scope cannot finish while they run.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let len = ctx::scope(&ctx::Context::background(), |s| async move {
    ///     let page = s.spawn(|ctx| async move {
    ///         ctx.check()?; // stop early if the group is canceled
    ///         Ok::<_, ctx::Error>(String::from("<html></html>"))
    ///     });
    ///     Ok(page.await?.len())
    /// })
    /// .await;
    /// assert_eq!(len, Ok(13));
    /// # }
    /// ```
    ///
    /// Go: `Group.Go`, except that it never blocks (Go's blocks while the
    /// group is at its limit; here, await [`Scope::ready`] for that).
    pub fn spawn<F, Fut, T>(&self, f: F) -> TaskHandle<T, E>
    where
        F: FnOnce(Context) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
    {
        let span = SpawnSpan::current();
        self.shared
            .submit(Admit::Queue, move |rt: &Handle, release: Release<E>| {
                rt.spawn(run_task(release, span, f))
            })
            .expect("ctx: internal error: a queueing spawn is always admitted")
    }

    /// Starts `f(group context)` only if a slot is free now; returns whether
    /// it did.
    ///
    /// Returns `false`, dropping `f`, when the group is at its limit (see
    /// [`Scope::set_limit`]), when the group context is done, or when the
    /// scope was dropped. A started task is tracked like any other: its error
    /// fails the group, and the scope waits for it; its `Ok` value is dropped
    /// (use [`Scope::spawn`] to get a handle). With the feature `tracing`, it
    /// runs inside the span current at this call, as [`Scope::spawn`]'s do.
    ///
    /// # Panics
    ///
    /// If the scope has finished, as [`Scope::spawn`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// ctx::scope(&ctx::Context::background(), |s| async move {
    ///     s.set_limit(1);
    ///     let started = s.try_spawn(|ctx| async move {
    ///         ctx.done().await; // holds the only slot until the group ends
    ///         Ok(())
    ///     });
    ///     assert!(started);
    ///     assert!(!s.try_spawn(|_ctx| async { Ok(()) })); // no slot free
    ///     Err::<(), _>(ctx::Error::Canceled) // ends the group, so the first task returns
    /// })
    /// .await
    /// .unwrap_err();
    /// # }
    /// ```
    ///
    /// Go: `Group.TryGo`.
    pub fn try_spawn<F, Fut, T>(&self, f: F) -> bool
    where
        F: FnOnce(Context) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
    {
        let span = SpawnSpan::current();
        let handle = self
            .shared
            .submit(Admit::NowOnly, move |rt: &Handle, release: Release<E>| {
                rt.spawn(run_task(release, span, f))
            });
        matches!(
            handle,
            Some(TaskHandle {
                state: HandleState::Started(_),
                ..
            })
        )
    }

    /// Starts `f(group context)`, a synchronous closure, on tokio's blocking
    /// thread pool; never blocks.
    ///
    /// Everything [`Scope::spawn`] says holds, including slots, queueing, the
    /// span `f` runs in (feature `tracing`) and the panic on a finished
    /// scope. A blocking task cannot be interrupted:
    /// `f` should check `ctx.is_done()` (or [`Context::check`]) between steps,
    /// and the scope waits for it to return. If the scope future is dropped,
    /// a running `f` keeps running with its context canceled, and its result
    /// is discarded.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let sum = ctx::scope(&ctx::Context::background(), |s| async move {
    ///     let sum = s.spawn_blocking(|ctx| {
    ///         let mut sum = 0u64;
    ///         for chunk in 0..100u64 {
    ///             ctx.check()?; // stop between chunks once the group is canceled
    ///             sum += chunk;
    ///         }
    ///         Ok::<_, ctx::Error>(sum)
    ///     });
    ///     sum.await
    /// })
    /// .await;
    /// assert_eq!(sum, Ok(4950));
    /// # }
    /// ```
    ///
    /// Go: `Group.Go` with a function that does not block on channels.
    pub fn spawn_blocking<F, T>(&self, f: F) -> TaskHandle<T, E>
    where
        F: FnOnce(Context) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
    {
        let span = SpawnSpan::current();
        self.shared
            .submit(Admit::Queue, move |rt: &Handle, release: Release<E>| {
                rt.spawn_blocking(move || run_blocking(release, span, f))
            })
            .expect("ctx: internal error: a queueing spawn is always admitted")
    }

    /// Limits the group to at most `n` tasks running at once.
    ///
    /// A task spawned while `n` tasks run waits in a queue and starts, in spawn
    /// order, when one of them finishes; a queued task never starts if the
    /// group is canceled first. The limit may be changed at any time: raising
    /// it starts queued tasks at once; lowering it lets running tasks finish
    /// and starts nothing new until fewer than `n` run. `usize::MAX` means no
    /// limit, the default. The body of the scope does not count.
    ///
    /// # A limit of 0
    ///
    /// `n == 0` means no new task may start, as Go's `SetLimit(0)`:
    /// [`Scope::try_spawn`] returns `false`, [`Scope::spawn`] and
    /// [`Scope::spawn_blocking`] queue, and [`Scope::ready`] waits until the
    /// limit is raised or the group context ends. Running tasks go on. Once
    /// the body has returned and no task runs, nothing could raise the limit
    /// for the scope any more: the tasks still queued are dropped unstarted,
    /// their handles resolve to `Err(E::from(Error::Canceled))`, and
    /// [`scope`] returns what it would have without them (the body's result,
    /// unless a task failed or the parent is done).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let queued = ctx::scope(&ctx::Context::background(), |s| async move {
    ///     s.set_limit(0); // no task may start
    ///     assert!(!s.try_spawn(|_ctx| async { Ok(()) }));
    ///     let queued = s.spawn(|_ctx| async { Ok(1) }); // waits for a slot
    ///     Ok::<_, ctx::Error>(queued) // the body returns, the task still queued
    /// })
    /// .await
    /// .expect("the body's result");
    /// assert_eq!(queued.await, Err(ctx::Error::Canceled)); // it never started
    /// # }
    /// ```
    ///
    /// # Deadlock
    ///
    /// A running task holds its slot while it waits, so a task must not wait
    /// for a slot to free: neither through [`Scope::ready`] nor by awaiting the
    /// [`TaskHandle`] of a task it spawned, which may be queued behind it. If
    /// every running task waits like that, no slot ever frees (Go's `SetLimit`
    /// has the same trap). Spawning from a task is safe (it queues and returns
    /// at once); wait for `ready` and for handles in the body. Under a limit
    /// of 0, the same holds for the body: waiting there for a queued task or
    /// for `ready` lasts until someone raises the limit or the group ends.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    /// use std::sync::Arc;
    ///
    /// let running = Arc::new(AtomicUsize::new(0));
    /// let peak = Arc::new(AtomicUsize::new(0));
    /// let (r, p) = (running.clone(), peak.clone());
    /// ctx::scope(&ctx::Context::background(), |s| async move {
    ///     s.set_limit(2);
    ///     for _ in 0..10 {
    ///         let (running, peak) = (r.clone(), p.clone());
    ///         s.spawn(move |_ctx| async move {
    ///             let now = running.fetch_add(1, SeqCst) + 1;
    ///             peak.fetch_max(now, SeqCst);
    ///             tokio::task::yield_now().await;
    ///             running.fetch_sub(1, SeqCst);
    ///             Ok(())
    ///         });
    ///     }
    ///     Ok::<_, ctx::Error>(())
    /// })
    /// .await
    /// .unwrap();
    /// assert!(peak.load(SeqCst) <= 2);
    /// # }
    /// ```
    ///
    /// Go: `Group.SetLimit`, which unlike this may not be called while
    /// goroutines of the group are running.
    pub fn set_limit(&self, n: usize) {
        self.shared.set_limit(n);
    }

    /// Waits until a task spawned now would start at once, for backpressure.
    ///
    /// Resolves `Ok(())` when fewer tasks run than the limit allows (at once
    /// without a limit; under a limit of 0, once the limit is raised), and
    /// `Err` with the group's error once the group context is done, since
    /// spawning would then start nothing. A producer
    /// loop that awaits `ready` before each [`Scope::spawn`] therefore never
    /// queues work beyond the limit, as Go's blocking `Go` does; with several
    /// producers, a spawn may still queue behind another producer's.
    ///
    /// Do not await it from a task of the same group while every slot could be
    /// held by such waiters (see [`Scope::set_limit`]).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it reserves nothing, so dropping it loses nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// let squares = ctx::scope(&ctx::Context::background(), |s| async move {
    ///     s.set_limit(4);
    ///     let mut handles = Vec::new();
    ///     for n in 0..20u64 {
    ///         s.ready().await?; // wait for a free slot: nothing piles up
    ///         handles.push(s.spawn(move |_ctx| async move { Ok(n * n) }));
    ///     }
    ///     let mut squares = Vec::new();
    ///     for h in handles {
    ///         squares.push(h.await?);
    ///     }
    ///     Ok::<_, ctx::Error>(squares)
    /// })
    /// .await
    /// .unwrap();
    /// assert_eq!(squares[19], 361);
    /// # }
    /// ```
    ///
    /// Go: the wait inside `Group.Go` when the group is at its limit.
    pub async fn ready(&self) -> Result<(), Error> {
        self.shared.ready().await
    }
}
