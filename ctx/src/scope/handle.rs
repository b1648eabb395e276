//! [`TaskHandle`]: how the body, or anyone, awaits one task's value.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::mem;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context as TaskContext, Poll, Waker};

use tokio::task::JoinHandle;

use super::Output;
#[cfg(doc)]
use super::{scope, Scope};
use crate::unwind::{contain, drop_payload};
use crate::{Context, Error};

/// Awaits the `Ok` value of one task of a [`scope`].
///
/// Returned by [`Scope::spawn`] and [`Scope::spawn_blocking`]. Resolves to
/// `Ok(value)` when the task succeeded, and otherwise to `Err(E::from(e))`,
/// where `e` is the group context's [`Error`] (usually
/// [`Error::Canceled`]): a task that failed or panicked, that never started
/// because the group was canceled first, or that was aborted. The task's own
/// error (or panic) is not here but goes to [`scope`], which returns it; so in
/// the body, `handle.await?` simply stops the body once the group has failed,
/// and the scope still reports the first error.
///
/// A handle may be awaited inside or after the scope; after the scope it
/// resolves at once. Dropping it neither stops nor detaches the task: the
/// scope still waits for it.
///
/// # Cancel safety
///
/// Cancel-safe: dropping the handle (e.g. in a `select!` branch that lost)
/// does not affect the task.
///
/// # Panics
///
/// When polled again after it resolved.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let (a, b) = ctx::scope(&ctx::Context::background(), |s| async move {
///     let a = s.spawn(|_ctx| async { Ok(1) });
///     let b = s.spawn_blocking(|_ctx| Ok(2));
///     Ok::<_, ctx::Error>((a, b)) // handles may leave the scope...
/// })
/// .await
/// .unwrap();
/// assert_eq!(a.await, Ok(1)); // ...and resolve at once afterwards
/// assert_eq!(b.await, Ok(2));
/// # }
/// ```
///
/// ## Results in completion order
///
/// Handles are ordinary futures, so `futures`' `FuturesUnordered` yields
/// them as their tasks finish, the first finished first (tokio's `JoinSet`
/// order), with no extra API:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use futures::stream::{FuturesUnordered, StreamExt};
/// use tokio::sync::oneshot;
///
/// let order = ctx::scope(&ctx::Context::background(), |s| async move {
///     let (mut release, mut handles) = (Vec::new(), FuturesUnordered::new());
///     for name in ["a", "b", "c"] {
///         let (go, wait) = oneshot::channel::<()>();
///         release.push(Some(go));
///         handles.push(s.spawn(move |_ctx| async move {
///             let _ = wait.await;
///             Ok(name)
///         }));
///     }
///     let mut finished = Vec::new();
///     for i in [2, 0, 1] {
///         let _ = release[i].take().unwrap().send(());
///         finished.push(handles.next().await.unwrap()?);
///     }
///     Ok::<_, ctx::Error>(finished)
/// })
/// .await
/// .unwrap();
/// assert_eq!(order, ["c", "a", "b"]); // as they finished, not as spawned
/// # }
/// ```
///
/// Go: no counterpart; errgroup tasks return only an error.
pub struct TaskHandle<T, E> {
    pub(super) state: HandleState<T>,
    error: PhantomData<fn() -> E>,
}

pub(super) enum HandleState<T> {
    Started(JoinHandle<Output<T>>),
    Queued(Arc<Mutex<Pending<T>>>),
    Refused(Error),
    Taken,
}

impl<T, E> TaskHandle<T, E> {
    pub(super) fn new(state: HandleState<T>) -> Self {
        TaskHandle {
            state,
            error: PhantomData,
        }
    }
}

impl<T, E: From<Error>> Future for TaskHandle<T, E> {
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Result<T, E>> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                HandleState::Started(join) => {
                    let out = ready!(Pin::new(join).poll(cx));
                    this.state = HandleState::Taken;
                    return Poll::Ready(match out {
                        Ok(Ok(value)) => Ok(value),
                        Ok(Err(err)) => Err(E::from(err)),
                        // Aborted with its dropped scope, or a panic that
                        // escaped the task's wrapper (e.g. from the drop of a
                        // later error): contained here, and its payload
                        // dropped inside a further catch.
                        Err(join_err) => {
                            if let Ok(payload) = join_err.try_into_panic() {
                                drop_payload(payload);
                            }
                            Err(E::from(Error::Canceled))
                        }
                    });
                }
                HandleState::Queued(slot) => {
                    let mut pending = slot.lock().unwrap_or_else(PoisonError::into_inner);
                    match mem::replace(&mut *pending, Pending::Waiting(None)) {
                        Pending::Waiting(_) => {
                            *pending = Pending::Waiting(Some(cx.waker().clone()));
                            return Poll::Pending;
                        }
                        Pending::Started(join) => {
                            drop(pending);
                            this.state = HandleState::Started(join);
                        }
                        Pending::NeverStarted(err) => {
                            drop(pending);
                            this.state = HandleState::Taken;
                            return Poll::Ready(Err(E::from(err)));
                        }
                    }
                }
                HandleState::Refused(err) => {
                    let err = *err;
                    this.state = HandleState::Taken;
                    return Poll::Ready(Err(E::from(err)));
                }
                HandleState::Taken => panic!("ctx::TaskHandle polled after it resolved"),
            }
        }
    }
}

impl<T, E> fmt::Debug for TaskHandle<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            HandleState::Started(_) => "started",
            HandleState::Queued(_) => "queued",
            HandleState::Refused(_) => "refused",
            HandleState::Taken => "resolved",
        };
        f.debug_struct("TaskHandle").field("state", &state).finish()
    }
}

/// Where a queued task's handle learns that it started (or never will).
pub(super) enum Pending<T> {
    /// Still queued; the waker of the handle's last poll.
    Waiting(Option<Waker>),
    Started(JoinHandle<Output<T>>),
    NeverStarted(Error),
}

/// The queue's end of a [`Pending`] slot. Dropping it unstarted (the queue was
/// drained because the group was canceled or the scope dropped) tells the
/// handle the task never started.
pub(super) struct PendingSender<T> {
    pub(super) slot: Arc<Mutex<Pending<T>>>,
    pub(super) group: Context,
}

impl<T> PendingSender<T> {
    pub(super) fn started(&mut self, join: JoinHandle<Output<T>>) {
        self.resolve(Pending::Started(join));
    }

    fn resolve(&mut self, outcome: Pending<T>) {
        let waker = {
            let mut pending = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
            match &mut *pending {
                Pending::Waiting(waker) => {
                    let waker = waker.take();
                    *pending = outcome;
                    waker
                }
                _ => None,
            }
        };
        if let Some(waker) = waker {
            // The handle's waker is user code (any executor may poll a
            // handle): a panic in it must not stop the release of a slot or
            // the drop of the rest of a canceled queue.
            contain(|| waker.wake());
        }
    }
}

impl<T> Drop for PendingSender<T> {
    fn drop(&mut self) {
        let err = self.group.err().unwrap_or(Error::Canceled);
        self.resolve(Pending::NeverStarted(err));
    }
}
