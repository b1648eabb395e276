//! `Context`: the handle to one node of the tree, and everything that reads it.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::hash::{Hash, Hasher};
use std::panic::{RefUnwindSafe, UnwindSafe};
use std::pin::{pin, Pin};
use std::task::Poll;
use std::time::{Duration, Instant};

use crate::after_func::AfterFunc;
use crate::cancel::CancelGuard;
use crate::done::{Done, DoneOwned};
use crate::error::{Cause, Error};
use crate::loom::Arc;
use crate::tree::{self, CancelNode, Repr};

/// A handle to one node of the context tree: a cancellation signal, maybe a
/// deadline, and request-scoped values.
///
/// A `Context` is cheap to clone (a reference count, or nothing for the
/// roots), `Send + Sync + 'static`, and never changes what it reports except
/// once: from not done to done. Pass it down every call that may block, as
/// `ctx: &Context`, first parameter (the `#[ctx]` attribute does that for you).
///
/// Roots are [`Context::background`] and [`Context::todo`]. Every other
/// context is derived from a parent with one of the `with_*` methods and
/// becomes done when its parent does, when its deadline passes, or when its
/// [`CancelGuard`] is canceled or dropped, whichever happens first.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use ctx::{Context, Error};
///
/// let root = Context::background();
/// let (request, _cancel) = root.with_timeout(Duration::from_secs(30));
/// let (step, cancel_step) = request.with_cancel();
///
/// cancel_step.cancel();
/// assert_eq!(step.err(), Some(Error::Canceled)); // the step is over...
/// assert_eq!(request.err(), None); // ...its parent is not
/// assert!(request.deadline().is_some());
/// ```
///
/// Go: `context.Context`.
#[derive(Clone)]
pub struct Context {
    /// The root or node this handle points at; the tree owns its layout.
    pub(crate) repr: Repr,
}

impl Context {
    /// The root context: never done, no deadline, no values.
    ///
    /// Use it in `main`, at the top of a request, in tests and at the start of
    /// background work that no caller waits for. Costs nothing: no allocation.
    ///
    /// ```
    /// let root = ctx::Context::background();
    /// assert_eq!(root.err(), None);
    /// assert_eq!(root.deadline(), None);
    /// assert_eq!(format!("{root:?}"), "background");
    /// ```
    ///
    /// Go: `context.Background()`.
    pub fn background() -> Context {
        Context {
            repr: Repr::Background,
        }
    }

    /// Same as [`background`](Context::background), but marks code that has
    /// not been given a real context yet: grep for it.
    ///
    /// ```
    /// let ctx = ctx::Context::todo();
    /// assert!(!ctx.is_done());
    /// assert_eq!(format!("{ctx:?}"), "todo");
    /// ```
    ///
    /// Go: `context.TODO()`.
    pub fn todo() -> Context {
        Context { repr: Repr::Todo }
    }

    /// The nearest cancel node at or above this context: where its done
    /// state lives. `None` for contexts that can never be done.
    #[inline]
    /// [`CancelNode::deadline_passed`] of this context's node.
    #[cfg(feature = "tower")]
    pub(crate) fn deadline_passed(&self) -> bool {
        self.signal().is_some_and(|node| node.deadline_passed())
    }

    fn signal(&self) -> Option<&Arc<CancelNode>> {
        self.repr.signal()
    }

    /// The earliest deadline on the path to the root, if any.
    ///
    /// A context with a deadline becomes done with
    /// [`Error::DeadlineExceeded`] at that instant, never before it.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let root = ctx::Context::background();
    /// let soon = Instant::now() + Duration::from_secs(5);
    /// let (parent, _c1) = root.with_deadline(soon);
    /// // A later deadline below an earlier one changes nothing.
    /// let (child, _c2) = parent.with_deadline(soon + Duration::from_secs(60));
    /// assert_eq!(child.deadline(), Some(soon));
    /// assert_eq!(root.deadline(), None);
    /// ```
    ///
    /// Go: `Context.Deadline`.
    pub fn deadline(&self) -> Option<Instant> {
        self.signal().and_then(|node| node.deadline())
    }

    /// Time left until the deadline: `None` without a deadline, zero once it
    /// has passed.
    ///
    /// ```
    /// use std::time::Duration;
    /// let (ctx, _cancel) = ctx::Context::background().with_timeout(Duration::from_secs(60));
    /// let left = ctx.remaining().unwrap();
    /// assert!(left > Duration::from_secs(50) && left <= Duration::from_secs(60));
    /// ```
    pub fn remaining(&self) -> Option<Duration> {
        self.signal().and_then(|node| node.remaining())
    }

    /// `None` while the context is live; once it is done, why, for good.
    ///
    /// One atomic load: cheap enough to call in every iteration of a hot loop.
    /// After `err()` returns `Some`, [`done`](Context::done) is ready.
    ///
    /// ```
    /// let (ctx, cancel) = ctx::Context::background().with_cancel();
    /// assert_eq!(ctx.err(), None);
    /// drop(cancel); // dropping the guard cancels
    /// assert_eq!(ctx.err(), Some(ctx::Error::Canceled));
    /// ```
    ///
    /// Go: `Context.Err`.
    #[inline]
    pub fn err(&self) -> Option<Error> {
        match self.signal() {
            Some(node) => node.err(),
            None => None,
        }
    }

    /// True once the context is done; the same as `err().is_some()`.
    ///
    /// ```
    /// let (ctx, cancel) = ctx::Context::background().with_cancel();
    /// assert!(!ctx.is_done());
    /// cancel.cancel();
    /// assert!(ctx.is_done());
    /// ```
    #[inline]
    pub fn is_done(&self) -> bool {
        self.err().is_some()
    }

    /// `Ok(())` while live, `Err(error)` once done: for `ctx.check()?;` at the
    /// top of each loop iteration.
    ///
    /// ```
    /// fn work(ctx: &ctx::Context, items: &[u32]) -> Result<u32, ctx::Error> {
    ///     let mut sum = 0;
    ///     for item in items {
    ///         ctx.check()?;
    ///         sum += item;
    ///     }
    ///     Ok(sum)
    /// }
    /// let (ctx, cancel) = ctx::Context::background().with_cancel();
    /// assert_eq!(work(&ctx, &[1, 2, 3]), Ok(6));
    /// cancel.cancel();
    /// assert_eq!(work(&ctx, &[1, 2, 3]), Err(ctx::Error::Canceled));
    /// ```
    #[inline]
    pub fn check(&self) -> Result<(), Error> {
        match self.err() {
            None => Ok(()),
            Some(err) => Err(err),
        }
    }

    /// Why the context ended: `None` while live; then the cause recorded by
    /// the first cancellation of this context or of an ancestor, or the
    /// [`Error`] itself when none was given.
    ///
    /// A child canceled because its parent was reports the parent's cause. A
    /// deadline made with [`with_deadline_cause`](Context::with_deadline_cause)
    /// reports its cause only if the deadline is what ended the context.
    ///
    /// ```
    /// let (parent, cancel) = ctx::Context::background().with_cancel();
    /// let (child, _c) = parent.with_cancel();
    /// cancel.cancel_with_cause(std::io::Error::other("client went away"));
    /// assert_eq!(child.err(), Some(ctx::Error::Canceled));
    /// assert_eq!(child.cause().unwrap().to_string(), "client went away");
    /// ```
    ///
    /// Go: `context.Cause`.
    pub fn cause(&self) -> Option<Cause> {
        self.signal().and_then(|node| node.cause())
    }

    /// A future that resolves to the [`Error`] once the context is done.
    ///
    /// It is `Send` and `Unpin`, works on any executor, and is ready
    /// immediately once [`err`](Context::err) is `Some`. For
    /// [`background`](Context::background) it never resolves. It borrows the
    /// context, so making one costs nothing until it has to wait; to wait in
    /// a spawned task, move a clone of the context into the task.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping it (say, when another `select!` branch wins)
    /// loses nothing and unregisters its waker; a fresh `done()` later sees
    /// the same state.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::time::Duration;
    /// let (ctx, _cancel) = ctx::Context::background().with_timeout(Duration::from_millis(10));
    /// tokio::select! {
    ///     err = ctx.done() => assert_eq!(err, ctx::Error::DeadlineExceeded),
    ///     _ = tokio::time::sleep(Duration::from_secs(60)) => unreachable!("the deadline fires first"),
    /// }
    /// # }
    /// ```
    ///
    /// Go: `Context.Done`.
    #[inline]
    pub fn done(&self) -> Done<'_> {
        Done::new(self.signal())
    }

    /// [`done`](Context::done) without the borrow: a future that resolves
    /// to the [`Error`] once the context is done, `Send + Unpin + 'static`,
    /// for `tokio::spawn(ctx.done_owned())`, struct fields and streams.
    ///
    /// Costs one reference count more than `done()`; prefer `done()` in a
    /// `select!` on a context you hold.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`done`](Context::done).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::time::Duration;
    /// let (ctx, _cancel) = ctx::Context::background().with_timeout(Duration::from_millis(10));
    /// let watcher = tokio::spawn(ctx.done_owned());
    /// drop(ctx); // the future keeps what it needs
    /// assert_eq!(watcher.await.unwrap(), ctx::Error::DeadlineExceeded);
    /// # }
    /// ```
    ///
    /// Go: `Context.Done`.
    pub fn done_owned(&self) -> DoneOwned {
        DoneOwned::new(self.signal().cloned())
    }

    /// Runs `fut` until it finishes or the context is done, whichever comes
    /// first.
    ///
    /// Returns `Err` at once, without polling `fut`, if the context is done
    /// already; otherwise `Ok` with the output, or `Err` as soon as the
    /// context ends, in which case `fut` is dropped unfinished.
    ///
    /// Tie-break: each poll checks the context before `fut`, so a context
    /// that has ended wins over a future that would be ready in the same
    /// poll: the answer is `Err`, and `fut`'s output, if it had one, is
    /// never produced.
    ///
    /// # Cancel safety
    ///
    /// As cancel-safe as `fut` itself: dropping `run` drops `fut`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::time::Duration;
    /// let (ctx, _cancel) = ctx::Context::background().with_timeout(Duration::from_millis(20));
    /// let slow = tokio::time::sleep(Duration::from_secs(60));
    /// assert_eq!(ctx.run(slow).await, Err(ctx::Error::DeadlineExceeded));
    /// assert_eq!(ctx::Context::background().run(async { 7 }).await, Ok(7));
    /// # }
    /// ```
    pub async fn run<F: IntoFuture>(&self, fut: F) -> Result<F::Output, Error> {
        if let Some(err) = self.err() {
            return Err(err);
        }
        let mut done = self.done();
        let mut fut = pin!(fut.into_future());
        std::future::poll_fn(|cx| {
            // Done first: a context that ended stops the work even if the
            // work happens to be ready in the same instant.
            if let Poll::Ready(err) = Pin::new(&mut done).poll(cx) {
                return Poll::Ready(Err(err));
            }
            fut.as_mut().poll(cx).map(Ok)
        })
        .await
    }

    /// Blocks the calling thread until the context is done; returns why.
    ///
    /// For plain threads with no async runtime. Blocks forever on a context
    /// that can never be done (background, `without_cancel`). Do not call it
    /// on an async executor thread: use [`done`](Context::done) there.
    ///
    /// ```
    /// use std::time::Duration;
    /// let (ctx, _cancel) = ctx::Context::background().with_timeout(Duration::from_millis(10));
    /// let worker = std::thread::spawn(move || ctx.wait_blocking());
    /// assert_eq!(worker.join().unwrap(), ctx::Error::DeadlineExceeded);
    /// ```
    pub fn wait_blocking(&self) -> Error {
        loop {
            if let Some(err) = crate::done::wait(self.signal(), None) {
                return err;
            }
        }
    }

    /// Blocks up to `timeout` for the context to be done: `Some(error)` if it
    /// is (or already was), `None` if the time ran out first.
    ///
    /// ```
    /// use std::time::Duration;
    /// let (ctx, cancel) = ctx::Context::background().with_cancel();
    /// assert_eq!(ctx.wait_timeout(Duration::from_millis(5)), None);
    /// cancel.cancel();
    /// assert_eq!(ctx.wait_timeout(Duration::from_secs(5)), Some(ctx::Error::Canceled));
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Option<Error> {
        crate::done::wait(self.signal(), Some(timeout))
    }

    /// A cancelable child, and the guard that cancels it.
    ///
    /// The child is done when the guard is canceled or dropped, or when this
    /// context is done, whichever comes first. A child of a context that is
    /// already done is born done, with the parent's error and cause.
    ///
    /// ```
    /// let root = ctx::Context::background();
    /// let (ctx, cancel) = root.with_cancel();
    /// let worker = std::thread::spawn({
    ///     let ctx = ctx.clone();
    ///     move || ctx.wait_blocking()
    /// });
    /// cancel.cancel();
    /// assert_eq!(worker.join().unwrap(), ctx::Error::Canceled);
    /// ```
    ///
    /// Go: `context.WithCancel`.
    #[must_use = "the guard cancels the context when dropped; bind it (`let (ctx, _cancel) = ...`) and keep it until the work ends"]
    #[cfg_attr(feature = "debug", track_caller)]
    pub fn with_cancel(&self) -> (Context, CancelGuard) {
        paired(CancelNode::new(&self.repr, None, 0))
    }

    /// A cancelable child that also ends with [`Error::DeadlineExceeded`]
    /// when `deadline` passes.
    ///
    /// If this context's deadline is earlier, the child simply inherits it
    /// (no timer is armed). A deadline that has already passed gives a child
    /// that is done at once. The deadline fires never early, with or without
    /// an async runtime, from one shared timer thread.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let past = Instant::now() - Duration::from_millis(1);
    /// let (ctx, _cancel) = ctx::Context::background().with_deadline(past);
    /// assert_eq!(ctx.err(), Some(ctx::Error::DeadlineExceeded));
    /// ```
    ///
    /// Go: `context.WithDeadline`.
    #[must_use = "the guard cancels the context when dropped; bind it (`let (ctx, _cancel) = ...`) and keep it until the work ends"]
    #[cfg_attr(feature = "debug", track_caller)]
    pub fn with_deadline(&self, deadline: Instant) -> (Context, CancelGuard) {
        paired(tree::with_deadline(&self.repr, deadline, None))
    }

    /// Like [`with_deadline`](Context::with_deadline), and
    /// [`cause`](Context::cause) reports `cause` if the deadline is what ends
    /// the context.
    ///
    /// ```
    /// # #[derive(Debug)] struct SlowBackend;
    /// # impl std::fmt::Display for SlowBackend {
    /// #     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("backend too slow") }
    /// # }
    /// # impl std::error::Error for SlowBackend {}
    /// use std::time::{Duration, Instant};
    /// let at = Instant::now() + Duration::from_millis(5);
    /// let (ctx, _cancel) = ctx::Context::background().with_deadline_cause(at, SlowBackend);
    /// assert_eq!(ctx.wait_blocking(), ctx::Error::DeadlineExceeded);
    /// assert_eq!(ctx.cause().unwrap().to_string(), "backend too slow");
    /// ```
    ///
    /// Go: `context.WithDeadlineCause`.
    #[must_use = "the guard cancels the context when dropped; bind it (`let (ctx, _cancel) = ...`) and keep it until the work ends"]
    #[cfg_attr(feature = "debug", track_caller)]
    pub fn with_deadline_cause(
        &self,
        deadline: Instant,
        cause: impl Into<Cause>,
    ) -> (Context, CancelGuard) {
        paired(tree::with_deadline(
            &self.repr,
            deadline,
            Some(cause.into()),
        ))
    }

    /// `with_deadline(now + timeout)`. A timeout too large to represent means
    /// no deadline of its own.
    ///
    /// ```
    /// use std::time::Duration;
    /// let (ctx, _cancel) = ctx::Context::background().with_timeout(Duration::from_millis(5));
    /// assert_eq!(ctx.wait_blocking(), ctx::Error::DeadlineExceeded);
    /// ```
    ///
    /// Go: `context.WithTimeout`.
    #[must_use = "the guard cancels the context when dropped; bind it (`let (ctx, _cancel) = ...`) and keep it until the work ends"]
    #[cfg_attr(feature = "debug", track_caller)]
    pub fn with_timeout(&self, timeout: Duration) -> (Context, CancelGuard) {
        paired(tree::with_timeout(&self.repr, timeout, None))
    }

    /// `with_deadline_cause(now + timeout, cause)`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let (ctx, _cancel) = ctx::Context::background()
    ///     .with_timeout_cause(Duration::from_millis(5), std::io::Error::other("budget spent"));
    /// ctx.wait_blocking();
    /// assert_eq!(ctx.cause().unwrap().to_string(), "budget spent");
    /// ```
    ///
    /// Go: `context.WithTimeoutCause`.
    #[must_use = "the guard cancels the context when dropped; bind it (`let (ctx, _cancel) = ...`) and keep it until the work ends"]
    #[cfg_attr(feature = "debug", track_caller)]
    pub fn with_timeout_cause(
        &self,
        timeout: Duration,
        cause: impl Into<Cause>,
    ) -> (Context, CancelGuard) {
        paired(tree::with_timeout(&self.repr, timeout, Some(cause.into())))
    }

    /// A child that keeps this context's values but is never done and has no
    /// deadline: for work that must outlive the request that started it
    /// (an audit log write, a cache fill).
    ///
    /// ```
    /// let (request, cancel) = ctx::Context::background().with_cancel();
    /// let detached = request.with_value(7u32).without_cancel();
    /// cancel.cancel();
    /// assert!(!detached.is_done());
    /// assert_eq!(detached.value::<u32>(), Some(&7));
    /// ```
    ///
    /// Go: `context.WithoutCancel`.
    #[must_use = "deriving a context has no effect unless the new context is used"]
    pub fn without_cancel(&self) -> Context {
        Context {
            repr: self.repr.without_cancel(),
        }
    }

    /// Arranges for `f` to run once, after this context is done. It never
    /// runs for a context that cannot be done.
    ///
    /// # Where `f` runs
    ///
    /// - Canceled by a guard or handle (`cancel()`, a dropped guard, a
    ///   parent's cancel): on that thread, after every internal lock is
    ///   released, before `cancel` returns.
    /// - Ended by a deadline: on a `ctx-callback` thread of ctx's callback
    ///   pool, never on the timer thread, so a slow `f` delays neither other
    ///   deadlines nor other callbacks. Up to 64 callbacks may block at once;
    ///   more wait for a free thread. Pool threads start on demand and end
    ///   after 10 s idle.
    /// - Already done when `after_func` is called: at once, on this thread.
    ///
    /// Prefer short callbacks all the same (spawn work from them if needed):
    /// a blocking one holds up the `cancel` that fired it. A panic in `f` is
    /// caught (the panic hook still reports it) and disturbs neither the tree
    /// nor other callbacks.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    /// let ran = Arc::new(AtomicBool::new(false));
    /// let (ctx, cancel) = ctx::Context::background().with_cancel();
    /// let _after = ctx.after_func({
    ///     let ran = ran.clone();
    ///     move || ran.store(true, Ordering::SeqCst)
    /// });
    /// assert!(!ran.load(Ordering::SeqCst));
    /// cancel.cancel();
    /// assert!(ran.load(Ordering::SeqCst));
    /// ```
    ///
    /// Go: `context.AfterFunc` (which runs `f` in a new goroutine).
    pub fn after_func<F: FnOnce() + Send + 'static>(&self, f: F) -> AfterFunc {
        AfterFunc::register(self.signal(), Box::new(f))
    }
}

/// The public pair for a new cancel node: the context and the guard that
/// cancels it. Every cancelable derivation ends here.
fn paired(node: Arc<CancelNode>) -> (Context, CancelGuard) {
    let guard = CancelGuard::new(node.clone());
    (
        Context {
            repr: Repr::Cancel(node),
        },
        guard,
    )
}

/// Identity: a clone equals its original, two derivations never do (even
/// of the same parent with the same arguments), and each root equals itself
/// only: `background() == background()`, `todo() == todo()`,
/// `background() != todo()`.
///
/// ```
/// use ctx::Context;
/// let root = Context::background();
/// let (a, _ga) = root.with_cancel();
/// let (b, _gb) = root.with_cancel();
/// assert_eq!(a, a.clone());
/// assert_ne!(a, b);
/// assert_eq!(Context::default(), Context::background());
/// assert_ne!(Context::background(), Context::todo());
/// ```
impl PartialEq for Context {
    fn eq(&self, other: &Context) -> bool {
        self.repr.identity() == other.repr.identity()
    }
}

impl Eq for Context {}

/// Consistent with `Eq`: by identity.
impl Hash for Context {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.repr.identity().hash(state);
    }
}

// A context stays consistent across a panic anywhere: its state changes
// once, under locks that ignore poison, and no user code runs while a lock
// is held; values are never changed after `with_value`. What the compiler
// cannot see through is the type-erased value cell (`tree/value_node.rs`),
// hence the manual impls (as tokio-util's `CancellationToken` has).
impl UnwindSafe for Context {}
impl RefUnwindSafe for Context {}

impl Default for Context {
    /// [`Context::background`].
    fn default() -> Self {
        Context::background()
    }
}

impl fmt::Debug for Context {
    /// The chain from the root, e.g. `background.with_cancel.with_value(app::RequestId)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut chain = vec![&self.repr];
        while let Some(parent) = chain[chain.len() - 1].parent() {
            chain.push(parent);
        }
        // The time left of the nearest deadline so far, read once at each
        // node that holds one: a node below that inherits it reports it
        // without a walk of its own (linear in the chain, not quadratic).
        let mut left: Option<Duration> = None;
        for (i, repr) in chain.iter().rev().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            match repr {
                Repr::Background => f.write_str("background")?,
                Repr::Todo => f.write_str("todo")?,
                Repr::Cancel(node) => {
                    if node.holds_deadline() {
                        left = node.remaining();
                    }
                    match (node.made_by_deadline(), left) {
                        (false, _) => f.write_str("with_cancel")?,
                        (true, Some(left)) if !left.is_zero() => {
                            write!(f, "with_deadline(in {left:?})")?
                        }
                        (true, Some(_)) => f.write_str("with_deadline(passed)")?,
                        (true, None) => f.write_str("with_deadline(never)")?,
                    }
                }
                Repr::Value(node) => write!(f, "with_value({})", node.type_name())?,
                Repr::WithoutCancel(_) => {
                    left = None;
                    f.write_str("without_cancel")?;
                }
            }
        }
        Ok(())
    }
}
