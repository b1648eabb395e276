//! The `done()` future and the blocking waits built on it.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context as TaskContext, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::loom::Arc;
use crate::tree::{self, CancelNode};

/// Resolves to the [`Error`] once its context is done. Made by
/// [`Context::done`](crate::Context::done).
///
/// `Send`, `Unpin`, executor-agnostic: it registers the task's waker with
/// the context and is woken by whatever cancels it (a guard, a parent, the
/// deadline timer thread). It borrows the context: making one and polling it
/// when the context is done costs one atomic load and touches no reference
/// count; it can be polled again after it is ready and gives the same answer.
///
/// # Cost
///
/// Polling a live context registers the waker (and dropping the future
/// removes it) under the context's lock. Once that lock is found contended
/// (many tasks on many cores polling one shared context), the context's
/// waiters move out of the context: each thread registers in a slot of its
/// own, taken and freed with one read-modify-write each, or in its shard
/// behind that slot. A `select!` turn on such a context then takes no lock
/// and writes no memory that other cores write (about 10 ns a turn on two
/// cores in BENCHMARKS.md's `SelectTurn`, where tokio-util's token takes
/// 141).
///
/// # Cancel safety
///
/// Cancel-safe. Dropping it unregisters its waker, so a `select!` loop that
/// makes a fresh `done()` every iteration does not accumulate anything.
///
/// # Examples
///
/// ```
/// let (ctx, cancel) = ctx::Context::background().with_cancel();
/// let waiter = std::thread::spawn(move || futures::executor::block_on(ctx.done()));
/// // (the thread owns `ctx`; `done()` borrows it for as long as it waits)
/// cancel.cancel();
/// assert_eq!(waiter.join().unwrap(), ctx::Error::Canceled);
/// ```
///
/// Go: the channel returned by `Context.Done`.
#[must_use = "futures do nothing unless awaited"]
pub struct Done<'a> {
    /// The cancel node whose state we watch; `None` for contexts that are
    /// never done.
    node: Option<&'a Arc<CancelNode>>,
    /// Our slot in the node's waiter list, while registered.
    key: Option<usize>,
}

impl<'a> Done<'a> {
    #[inline]
    pub(crate) fn new(node: Option<&'a Arc<CancelNode>>) -> Done<'a> {
        Done { node, key: None }
    }
}

impl Future for Done<'_> {
    type Output = Error;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Error> {
        let this = self.get_mut();
        match this.node {
            Some(node) => tree::poll_done(node, &mut this.key, cx.waker()),
            // Never done: nothing will ever wake us, so nothing to register.
            None => Poll::Pending,
        }
    }
}

impl Drop for Done<'_> {
    fn drop(&mut self) {
        if let (Some(node), Some(key)) = (self.node, self.key) {
            tree::remove_waiter(node, key);
        }
    }
}

impl std::fmt::Debug for Done<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Done")
            .field("registered", &self.key.is_some())
            .finish_non_exhaustive()
    }
}

/// Wakes a parked thread.
/// [`Done`] without the borrow: resolves to the [`Error`] once its context
/// is done. Made by [`Context::done_owned`](crate::Context::done_owned).
///
/// `Send + Sync + Unpin + 'static`, so it can be spawned
/// (`tokio::spawn(ctx.done_owned())`), kept in a struct field or a stream.
/// It holds a reference count on the context's node; otherwise it behaves
/// exactly as [`Done`].
///
/// # Cancel safety
///
/// Cancel-safe. Dropping it unregisters its waker.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let (ctx, cancel) = ctx::Context::background().with_cancel();
/// let watcher = tokio::spawn(ctx.done_owned());
/// cancel.cancel();
/// assert_eq!(watcher.await.unwrap(), ctx::Error::Canceled);
/// # }
/// ```
///
/// Go: the channel returned by `Context.Done`, which outlives any borrow.
#[must_use = "futures do nothing unless awaited"]
pub struct DoneOwned {
    /// As in [`Done`], owned.
    node: Option<Arc<CancelNode>>,
    /// Our slot in the node's waiter list, while registered.
    key: Option<usize>,
}

impl DoneOwned {
    pub(crate) fn new(node: Option<Arc<CancelNode>>) -> DoneOwned {
        DoneOwned { node, key: None }
    }

    /// [`CancelNode::deadline_passed`] of the context's node.
    #[cfg(feature = "tower")]
    pub(crate) fn deadline_passed(&self) -> bool {
        self.node
            .as_ref()
            .is_some_and(|node| node.deadline_passed())
    }
}

impl Future for DoneOwned {
    type Output = Error;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Error> {
        let this = self.get_mut();
        match &this.node {
            Some(node) => tree::poll_done(node, &mut this.key, cx.waker()),
            // Never done: nothing will ever wake us, so nothing to register.
            None => Poll::Pending,
        }
    }
}

impl Drop for DoneOwned {
    fn drop(&mut self) {
        if let (Some(node), Some(key)) = (&self.node, self.key) {
            tree::remove_waiter(node, key);
        }
    }
}

impl std::fmt::Debug for DoneOwned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DoneOwned")
            .field("registered", &self.key.is_some())
            .finish_non_exhaustive()
    }
}

struct ThreadWaker {
    thread: Thread,
    woken: AtomicBool,
}

impl Wake for ThreadWaker {
    fn wake(self: std::sync::Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

/// Parks the current thread until `node` (a context's signal; `None`: never
/// done) is done or `timeout` passes.
pub(crate) fn wait(node: Option<&Arc<CancelNode>>, timeout: Option<Duration>) -> Option<Error> {
    if let Some(err) = node.and_then(|node| node.err()) {
        return Some(err);
    }
    let until = timeout.and_then(|t| Instant::now().checked_add(t));
    let thread_waker = std::sync::Arc::new(ThreadWaker {
        thread: std::thread::current(),
        woken: AtomicBool::new(false),
    });
    let waker = Waker::from(thread_waker.clone());
    let mut cx = TaskContext::from_waker(&waker);
    let mut done = Done::new(node);
    loop {
        if let Poll::Ready(err) = Pin::new(&mut done).poll(&mut cx) {
            return Some(err);
        }
        // Park until woken; spurious wake-ups just poll again.
        while !thread_waker.woken.swap(false, Ordering::Acquire) {
            match until {
                None => std::thread::park(),
                Some(until) => {
                    let now = Instant::now();
                    if now >= until {
                        return node.and_then(|node| node.err());
                    }
                    std::thread::park_timeout(until - now);
                }
            }
        }
    }
}
