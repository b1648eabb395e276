//! Structured task groups: [`scope`], [`Scope`] and [`TaskHandle`].
//!
//! A scope is Go's `errgroup.WithContext` plus `Wait`, made into one future
//! that cannot be forgotten: the tasks it starts run in parallel on tokio, and
//! the future resolves only once every one of them has finished.
//!
//! # How tasks are tracked
//!
//! Everything a scope knows lives in one [`Shared`] behind an `Arc`, which
//! every [`Scope`] clone, every running task and the scope future hold. Its
//! [`State`] sits under one mutex. (The only other locks are the small slot
//! through which a queued task's handle learns it started, in `handle.rs`, and
//! the first error's, in `first.rs`; neither is ever taken while the state
//! lock is held.) Invariants of the state, each
//! true at every unlock:
//!
//! 1. `active` counts the tasks that have started and not finished; each holds
//!    one concurrency slot, so `active` may exceed `limit` only after the limit
//!    was lowered.
//! 2. Every started task has a [`Key`] in `tasks`, whose abort handle is filled
//!    in right after the spawn (between the two, the entry is empty; the spawner
//!    re-checks the phase when it fills it in, see [`Shared::register`]).
//! 3. `queue` holds spawns waiting for a slot. It is non-empty only while
//!    `active >= limit`, so `active == 0` means the group is idle.
//! 4. A task releases its slot ([`Release`]) after its future or closure has
//!    been dropped, and after its error or panic has been recorded, so when the
//!    scope sees `active == 0`, all user code of every task is over and every
//!    failure is in `first`/`panic`.
//! 5. `phase` only moves forward: `Running`, then `Finished` (set under the lock
//!    in the same critical section that saw the group idle, so no task can slip
//!    in after the last one ended) or `Dropped`.
//!
//! No user code runs under the lock: closures and futures are dropped, wakers
//! woken, contexts canceled and tasks spawned after it is released. Spawning in
//! particular must stay outside it, because tokio drops the future of a task
//! spawned onto a runtime that is shutting down inside `spawn` itself, which
//! runs [`Release`], which takes the lock.
//!
//! Submodules: `handle.rs` ([`TaskHandle`]), `cause.rs` (what the group
//! context's cause says after a failure), `first.rs` (which failure is the
//! first, loom-modelled), `tasks.rs` (the slab of abort handles).

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::future::{poll_fn, Future};
use std::mem;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{ready, Context as TaskContext, Poll, Waker};

use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio::task::{AbortHandle, JoinHandle};

use crate::cancel::{CancelGuard, CancelHandle};
use crate::context::Context;
use crate::error::Error;

mod cause;
mod first;
mod handle;
mod tasks;

use cause::{cause_of, panic_message, Origin, Panicked};
use first::FirstFailure;
pub use handle::TaskHandle;
use handle::{HandleState, Pending, PendingSender};
use tasks::{Key, Tasks};

/// A panic payload, as `catch_unwind` returns it.
type Panic = Box<dyn Any + Send + 'static>;

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
///   with its original payload (later panics are dropped). A panic outranks
///   any error.
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
///
/// A panic records a cause that displays as `a task in the scope panicked:
/// <message>` (or `the body of the scope panicked: <message>`).
///
/// # Cancel safety
///
/// Not cancel-safe, by design: dropping the scope future before it completes
/// cancels the group context and aborts its tasks, and their results are lost.
/// "Aborted" means exactly what tokio's [`AbortHandle::abort`] gives:
///
/// - an async task is dropped the next time it would be polled: at once if it
///   is waiting, or as soon as its current poll returns if it is running on
///   another worker thread. The drop of the scope future does not wait for that.
/// - a task still waiting for a slot (see [`Scope::set_limit`]), or spawned but
///   not yet polled, never runs.
/// - a blocking task ([`Scope::spawn_blocking`]) cannot be interrupted: it sees
///   its context canceled and runs until its closure returns; its result is
///   discarded. One that had not started yet does not start.
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
pub fn scope<T, E, F, Fut>(parent: &Context, body: F) -> impl Future<Output = Result<T, E>>
where
    F: FnOnce(Scope<E>) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: From<Error> + fmt::Display + Send + 'static,
{
    let parent = parent.clone();
    async move {
        if let Some(err) = parent.err() {
            return Err(E::from(err));
        }
        let rt = Handle::try_current().unwrap_or_else(|_| {
            panic!(
                "ctx::scope must be polled inside a tokio runtime (none is running on this thread)"
            )
        });
        let (group, guard) = parent.with_cancel();
        let shared = Arc::new(Shared::new(group, guard.handle(), parent, rt));
        // Declared before the body future, so it is dropped after it: a dropped
        // scope future first drops the body, then aborts the tasks.
        let mut running = Running {
            shared: Arc::clone(&shared),
            guard: Some(guard),
        };

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
        let st = self.shared.lock();
        f.debug_struct("Scope")
            .field("context", &self.shared.ctx)
            .field("phase", &st.phase)
            .field("active", &st.active)
            .field("queued", &st.queue.len())
            .field("limit", &Limit(st.limit))
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
    /// - If the group has a limit ([`Scope::set_limit`]) and every slot is
    ///   taken, the task is queued and starts, in spawn order, when a slot
    ///   frees; use [`Scope::ready`] first to keep the queue short.
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
        self.submit(Admit::Queue, move |rt: &Handle, release: Release<E>| {
            rt.spawn(run_task(release, f))
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
    /// (use [`Scope::spawn`] to get a handle).
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
        let handle = self.submit(Admit::NowOnly, move |rt: &Handle, release: Release<E>| {
            rt.spawn(run_task(release, f))
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
    /// Everything [`Scope::spawn`] says holds, including slots, queueing and
    /// the panic on a finished scope. A blocking task cannot be interrupted:
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
        self.submit(Admit::Queue, move |rt: &Handle, release: Release<E>| {
            rt.spawn_blocking(move || run_blocking(release, f))
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
    /// # Deadlock
    ///
    /// A running task holds its slot while it waits, so a task must not wait
    /// for a slot to free: neither through [`Scope::ready`] nor by awaiting the
    /// [`TaskHandle`] of a task it spawned, which may be queued behind it. If
    /// every running task waits like that, no slot ever frees (Go's `SetLimit`
    /// has the same trap). Spawning from a task is safe (it queues and returns
    /// at once); wait for `ready` and for handles in the body.
    ///
    /// # Panics
    ///
    /// If `n` is 0: no task could ever start.
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
        assert!(
            n > 0,
            "ctx::Scope::set_limit: the limit must be at least 1 (use usize::MAX for no limit)"
        );
        let group_done = self.shared.ctx.is_done();
        let (start, dropped) = {
            let mut st = self.shared.lock();
            st.limit = n;
            self.shared.take_startable(&mut st, group_done)
        };
        drop(dropped);
        for (key, start) in start {
            start(&self.shared, key);
        }
        self.shared.ready.notify_waiters();
    }

    /// Waits until a task spawned now would start at once, for backpressure.
    ///
    /// Resolves `Ok(())` when fewer tasks run than the limit allows (at once
    /// without a limit), and `Err` with the group's error once the group
    /// context is done, since spawning would then start nothing. A producer
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
        let shared = &*self.shared;
        let mut done = shared.ctx.done();
        loop {
            // Register before checking, so a slot freed in between still wakes us.
            let mut notified = pin!(shared.ready.notified());
            notified.as_mut().enable();
            if let Some(err) = shared.ctx.err() {
                return Err(err);
            }
            {
                let st = shared.lock();
                if st.phase != Phase::Running {
                    return Err(Error::Canceled);
                }
                if st.active < st.limit {
                    return Ok(());
                }
            }
            tokio::select! {
                biased;
                err = &mut done => return Err(err),
                () = notified => {}
            }
        }
    }

    /// Admits one task: starts it now if a slot is free, queues it (for
    /// `Admit::Queue`) or refuses it otherwise. `None` only for a refused
    /// `Admit::NowOnly`.
    fn submit<T, L>(&self, admit: Admit, launch: L) -> Option<TaskHandle<T, E>>
    where
        L: FnOnce(&Handle, Release<E>) -> JoinHandle<Output<T>> + Send + 'static,
        T: Send + 'static,
    {
        // Read before locking: the tree has its own locks, and a cancel racing
        // this check only means the task starts and sees its context done.
        let group_err = self.shared.ctx.err();
        let mut st = self.shared.lock();
        match st.phase {
            Phase::Running => {}
            Phase::Finished => {
                drop(st);
                panic!(
                    "ctx::Scope: cannot spawn a task: its scope has already finished \
                     (spawn from the body of ctx::scope or from one of its tasks)"
                );
            }
            Phase::Dropped => {
                drop(st);
                drop(launch);
                return admit.refused(Error::Canceled);
            }
        }
        if let Some(err) = group_err {
            drop(st);
            drop(launch);
            return admit.refused(err);
        }
        if st.active < st.limit {
            st.active += 1;
            let key = st.tasks.insert();
            drop(st);
            let join = self.shared.launch(key, launch);
            return Some(TaskHandle::new(HandleState::Started(join)));
        }
        match admit {
            Admit::NowOnly => {
                drop(st);
                drop(launch);
                None
            }
            Admit::Queue => {
                let slot = Arc::new(Mutex::new(Pending::Waiting(None)));
                let mut sender = PendingSender {
                    slot: Arc::clone(&slot),
                    group: self.shared.ctx.clone(),
                };
                st.queue
                    .push_back(Box::new(move |shared: &Arc<Shared<E>>, key: Key| {
                        let join = shared.launch(key, launch);
                        sender.started(join);
                    }));
                drop(st);
                Some(TaskHandle::new(HandleState::Queued(slot)))
            }
        }
    }
}

/// Whether a spawn beyond the limit queues ([`Scope::spawn`]) or is refused
/// ([`Scope::try_spawn`]).
#[derive(Clone, Copy)]
enum Admit {
    Queue,
    NowOnly,
}

impl Admit {
    fn refused<T, E>(self, err: Error) -> Option<TaskHandle<T, E>> {
        match self {
            Admit::Queue => Some(TaskHandle::new(HandleState::Refused(err))),
            Admit::NowOnly => None,
        }
    }
}

/// A queued spawn: starts the task under the given key when called; dropping
/// it uncalled means the task never starts.
type Starter<E> = Box<dyn FnOnce(&Arc<Shared<E>>, Key) + Send>;

/// Queued spawns that just took a slot, each with its new key.
type Admitted<E> = Vec<(Key, Starter<E>)>;

/// What the scope future, every [`Scope`] clone and every task share.
struct Shared<E> {
    /// The group context, handed to every task.
    ctx: Context,
    /// Cancels `ctx`; the scope future holds the guard itself.
    cancel: CancelHandle,
    parent: Context,
    /// The runtime that polled the scope first; tasks go there, whichever
    /// thread spawns them.
    rt: Handle,
    /// The first failure: claimed by the first error or panic, holding the
    /// error (see `first.rs`).
    first: FirstFailure<E>,
    /// Set once the scope future was dropped unfinished; read by tasks about to
    /// start, without the lock.
    dropped: AtomicBool,
    /// Notified when a slot frees or the limit changes, for [`Scope::ready`].
    ready: Notify,
    state: Mutex<State<E>>,
}

struct State<E> {
    phase: Phase,
    /// Started tasks that have not finished (invariant 1).
    active: usize,
    limit: usize,
    tasks: Tasks,
    queue: VecDeque<Starter<E>>,
    /// The scope future, waiting for the group to be idle.
    idle: Option<Waker>,
    /// The first panic (the first error is in `Shared::first`).
    panic: Option<Panic>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    Finished,
    Dropped,
}

/// Prints `usize::MAX` as "none".
struct Limit(usize);

impl fmt::Debug for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == usize::MAX {
            f.write_str("none")
        } else {
            fmt::Debug::fmt(&self.0, f)
        }
    }
}

impl<E> Shared<E> {
    fn new(ctx: Context, cancel: CancelHandle, parent: Context, rt: Handle) -> Self {
        Shared {
            ctx,
            cancel,
            parent,
            rt,
            first: FirstFailure::new(),
            dropped: AtomicBool::new(false),
            ready: Notify::new(),
            state: Mutex::new(State {
                phase: Phase::Running,
                active: 0,
                limit: usize::MAX,
                tasks: Tasks::default(),
                queue: VecDeque::new(),
                idle: None,
                panic: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<E>> {
        // No user code runs under this lock, so poison can only come from a
        // bug here; the state is consistent at every unlock point regardless.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The error a task that produced no value reports through its handle.
    fn group_err(&self) -> Error {
        self.ctx.err().unwrap_or(Error::Canceled)
    }
}

impl<E: GroupError> Shared<E> {
    /// Spawns a task whose slot (`active`, `key`) is already taken.
    fn launch<T, L>(self: &Arc<Self>, key: Key, launch: L) -> JoinHandle<Output<T>>
    where
        L: FnOnce(&Handle, Release<E>) -> JoinHandle<Output<T>>,
    {
        let join = launch(
            &self.rt,
            Release {
                shared: Arc::clone(self),
                key,
                completed: false,
            },
        );
        self.register(key, join.abort_handle());
        join
    }

    /// Files the abort handle of a task spawned under `key` (invariant 2).
    fn register(&self, key: Key, abort: AbortHandle) {
        let mut st = self.lock();
        if st.phase == Phase::Dropped {
            // The scope was dropped while we spawned: its drain missed us.
            drop(st);
            abort.abort();
            return;
        }
        // A stale key means the task already finished: nothing to file.
        let stale = st.tasks.fill(key, abort);
        drop(st);
        drop(stale);
    }

    /// Pops the queued spawns that fit under the limit now, taking their slots,
    /// or takes the whole queue to be dropped if the group is canceled.
    fn take_startable(
        &self,
        st: &mut State<E>,
        group_done: bool,
    ) -> (Admitted<E>, VecDeque<Starter<E>>) {
        if group_done || st.phase != Phase::Running {
            return (Vec::new(), mem::take(&mut st.queue));
        }
        let mut start = Vec::new();
        while st.active < st.limit {
            let Some(starter) = st.queue.pop_front() else {
                break;
            };
            st.active += 1;
            start.push((st.tasks.insert(), starter));
        }
        (start, VecDeque::new())
    }

    /// A task under `key` is over (invariant 4): frees its slot, hands it to
    /// the next queued task, and wakes whoever waits for a slot or for idle.
    fn release(self: &Arc<Self>, key: Key, completed: bool) {
        if !completed && !self.dropped.load(Ordering::Acquire) {
            // Dropped without finishing while the scope still runs: only a
            // runtime shutting down does that. Never report it as success.
            self.fail(E::from(Error::Canceled));
        }
        let group_done = self.ctx.is_done();
        let (next, dropped, idle, slot_free, limited) = {
            let mut st = self.lock();
            let abort = st.tasks.remove(key);
            st.active -= 1;
            let mut next = None;
            let mut dropped = VecDeque::new();
            if !st.queue.is_empty() {
                if group_done || st.phase != Phase::Running || !completed {
                    // Canceled (or going away): queued tasks never start.
                    dropped = mem::take(&mut st.queue);
                } else if st.active < st.limit {
                    let starter = st.queue.pop_front().expect("queue checked non-empty");
                    st.active += 1;
                    next = Some((st.tasks.insert(), starter));
                }
            }
            let idle = if st.active == 0 && st.queue.is_empty() {
                st.idle.take()
            } else {
                None
            };
            let slot_free = st.active < st.limit;
            let limited = st.limit != usize::MAX;
            drop(st);
            drop(abort);
            (next, dropped, idle, slot_free, limited)
        };
        drop(dropped);
        if let Some((key, start)) = next {
            start(self, key);
        }
        if let Some(waker) = idle {
            waker.wake();
        }
        if slot_free && limited {
            self.ready.notify_waiters();
        }
    }

    /// Records a failure: the first one (if the parent was not done before it)
    /// becomes the scope's error and the group's cause; any other is dropped.
    fn fail(&self, err: E) {
        if !self.first.claim(&self.parent) {
            // The parent's error, or an earlier failure, is what scope returns.
            return;
        }
        // `E`'s Display is user code: a panic there must not lose the error.
        let cause = catch_unwind(AssertUnwindSafe(|| cause_of(&err)));
        self.first.record(err);
        let queue = mem::take(&mut self.lock().queue);
        match cause {
            Ok(cause) => self.cancel.cancel_with_cause(cause),
            Err(panic) => self.panicked(panic, Origin::Task),
        }
        drop(queue);
    }

    /// Records a panic of a task or the body: the first one is resumed by the
    /// scope once every task has finished.
    fn panicked(&self, panic: Panic, origin: Origin) {
        self.first.mark_panicked();
        let cause = Panicked {
            origin,
            message: panic_message(&*panic),
        };
        let (later, queue) = {
            let mut st = self.lock();
            let later = if st.panic.is_none() {
                st.panic = Some(panic);
                None
            } else {
                Some(panic)
            };
            (later, mem::take(&mut st.queue))
        };
        self.cancel.cancel_with_cause(cause);
        drop(queue);
        drop(later);
    }

    /// Ready once no task runs or waits (invariants 3 and 5); then the scope is
    /// finished and refuses new tasks.
    fn poll_idle(&self, cx: &mut TaskContext<'_>) -> Poll<()> {
        let mut st = self.lock();
        if st.active == 0 && st.queue.is_empty() {
            st.phase = Phase::Finished;
            return Poll::Ready(());
        }
        match &mut st.idle {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

/// The scope future's own state: cancels the group and aborts the tasks if
/// the future is dropped before it finishes.
struct Running<E> {
    shared: Arc<Shared<E>>,
    /// `None` once the scope finished.
    guard: Option<CancelGuard>,
}

impl<E> Running<E>
where
    E: From<Error>,
{
    /// The group is idle and finished: cancel its context and report.
    fn finish(&mut self) -> Result<(), E> {
        let error = self.shared.first.take();
        let panic = self.shared.lock().panic.take();
        if let Some(guard) = self.guard.take() {
            guard.cancel();
        }
        if let Some(panic) = panic {
            drop(error);
            resume_unwind(panic);
        }
        if let Some(err) = error {
            return Err(err);
        }
        if let Some(err) = self.shared.parent.err() {
            return Err(E::from(err));
        }
        Ok(())
    }
}

impl<E> Drop for Running<E> {
    fn drop(&mut self) {
        let Some(guard) = self.guard.take() else {
            return;
        };
        self.shared.dropped.store(true, Ordering::Release);
        let (aborts, queue) = {
            let mut st = self.shared.lock();
            st.phase = Phase::Dropped;
            (st.tasks.drain(), mem::take(&mut st.queue))
        };
        // Cancel first, so blocking tasks (which cannot be aborted) see it.
        guard.cancel();
        for abort in &aborts {
            abort.abort();
        }
        drop(aborts);
        drop(queue);
    }
}

/// Held by every started task, dropped after its user code is over; see
/// [`Shared::release`].
struct Release<E: GroupError> {
    shared: Arc<Shared<E>>,
    key: Key,
    /// Set once the task ran to its end; still false if tokio dropped it.
    completed: bool,
}

impl<E: GroupError> Drop for Release<E> {
    fn drop(&mut self) {
        self.shared.release(self.key, self.completed);
    }
}

/// The body of every async task.
async fn run_task<E, F, Fut, T>(mut release: Release<E>, f: F) -> Output<T>
where
    E: GroupError,
    F: FnOnce(Context) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    if release.shared.dropped.load(Ordering::Acquire) {
        // Spawned before the scope was dropped, polled after: never starts.
        release.completed = true;
        return Err(Error::Canceled);
    }
    let ctx = release.shared.ctx.clone();
    let outcome = match catch_unwind(AssertUnwindSafe(|| f(ctx))) {
        Ok(fut) => catch(fut).await,
        Err(panic) => Err(panic),
    };
    release.completed = true;
    settle(&release.shared, outcome, Origin::Task)
}

/// The body of every blocking task.
fn run_blocking<E, F, T>(mut release: Release<E>, f: F) -> Output<T>
where
    E: GroupError,
    F: FnOnce(Context) -> Result<T, E>,
{
    if release.shared.dropped.load(Ordering::Acquire) {
        release.completed = true;
        return Err(Error::Canceled);
    }
    let ctx = release.shared.ctx.clone();
    let outcome = catch_unwind(AssertUnwindSafe(|| f(ctx)));
    release.completed = true;
    settle(&release.shared, outcome, Origin::Task)
}

/// Turns a task's outcome into what its handle gets, recording failures.
fn settle<E: GroupError, T>(
    shared: &Shared<E>,
    outcome: Result<Result<T, E>, Panic>,
    origin: Origin,
) -> Output<T> {
    match outcome {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => {
            shared.fail(err);
            Err(shared.group_err())
        }
        Err(panic) => {
            shared.panicked(panic, origin);
            Err(shared.group_err())
        }
    }
}

/// Polls `fut` to completion, catching a panic from its `poll` or from its
/// drop (the future is dropped as soon as it completes, inside the catch).
async fn catch<F: Future>(fut: F) -> Result<F::Output, Panic> {
    let mut slot = pin!(Some(fut));
    poll_fn(|cx| {
        let polled = catch_unwind(AssertUnwindSafe(|| {
            let fut = slot
                .as_mut()
                .as_pin_mut()
                .expect("ctx: internal error: task future polled after completion");
            let out = ready!(fut.poll(cx));
            slot.set(None);
            Poll::Ready(out)
        }));
        match polled {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(out)) => Poll::Ready(Ok(out)),
            Err(panic) => {
                // Drop what is left of the future here too; a second panic
                // from its drop is dropped in favour of the first.
                let _ = catch_unwind(AssertUnwindSafe(|| slot.set(None)));
                Poll::Ready(Err(panic))
            }
        }
    })
    .await
}
