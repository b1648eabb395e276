//! Which clock deadlines are measured on: the real one, or tokio's (paused)
//! test clock on a thread that asked for it.
//!
//! Deadlines run on the real clock (`std::time::Instant`) and fire from the
//! process-wide timer thread. A test that pauses tokio's clock
//! (`#[ctx::test(start_paused = true)]`, or [`use_tokio_clock`] by hand)
//! wants the deadlines it derives to follow tokio's clock instead: sleeping
//! or advancing past one must end the context, in milliseconds of real time.
//! The timer thread cannot see tokio's clock, so such deadlines are armed
//! as a task on the test's runtime that sleeps until the deadline on tokio's
//! clock. The choice is per thread: the current-thread runtime of a test
//! runs the test and its tasks on the thread that made the choice.
//!
//! Without the `test-util` feature, there is only the real clock and this
//! module costs nothing.

use std::time::Instant;

#[cfg(feature = "test-util")]
thread_local! {
    /// Set while a `TokioClock` guard of this thread lives.
    static TOKIO: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Now, on the clock deadlines derived on this thread are measured on.
#[inline]
pub(crate) fn now() -> Instant {
    #[cfg(feature = "test-util")]
    if tokio_runtime().is_some() {
        return tokio::time::Instant::now().into_std();
    }
    Instant::now()
}

/// A deadline armed on tokio's clock: the task that will fire it.
#[cfg(feature = "test-util")]
pub(crate) type TokioTimer = tokio::task::AbortHandle;

/// The runtime whose clock deadlines derived on this thread follow, if
/// this thread chose tokio's clock and runs inside a runtime.
#[cfg(feature = "test-util")]
pub(crate) fn tokio_runtime() -> Option<tokio::runtime::Handle> {
    if TOKIO.with(std::cell::Cell::get) {
        tokio::runtime::Handle::try_current().ok()
    } else {
        None
    }
}

/// How the task of [`spawn_at`] ended.
#[cfg(feature = "test-util")]
pub(crate) enum Fired {
    /// Tokio's clock reached the deadline.
    Due,
    /// The task was dropped first: aborted, or its runtime shut down (a
    /// context that outlives its test's runtime).
    Dropped,
}

/// Runs `fire` at `deadline` on `runtime`'s clock, in a task; or, if the
/// task is dropped before that, runs it then with [`Fired::Dropped`].
#[cfg(feature = "test-util")]
pub(crate) fn spawn_at<F>(
    runtime: &tokio::runtime::Handle,
    deadline: Instant,
    fire: F,
) -> TokioTimer
where
    F: FnOnce(Fired) + Send + 'static,
{
    /// Calls its function with `Dropped` unless taken first.
    struct OnDrop<F: FnOnce(Fired)>(Option<F>);
    impl<F: FnOnce(Fired)> Drop for OnDrop<F> {
        fn drop(&mut self) {
            if let Some(fire) = self.0.take() {
                fire(Fired::Dropped);
            }
        }
    }
    let at = tokio::time::Instant::from_std(deadline);
    let mut fire = OnDrop(Some(fire));
    runtime
        .spawn(async move {
            tokio::time::sleep_until(at).await;
            if let Some(fire) = fire.0.take() {
                fire(Fired::Due);
            }
        })
        .abort_handle()
}

/// Makes the deadlines derived on this thread follow tokio's clock while
/// the returned guard lives; see [`crate::test_util::use_tokio_clock`].
#[cfg(feature = "test-util")]
pub(crate) fn use_tokio_clock() -> TokioClock {
    let previous = TOKIO.with(|tokio| tokio.replace(true));
    TokioClock {
        previous,
        _not_send: std::marker::PhantomData,
    }
}

/// Restores the thread's previous clock when dropped.
#[cfg(feature = "test-util")]
#[must_use = "deadlines follow tokio's clock only while the guard lives"]
#[derive(Debug)]
pub struct TokioClock {
    previous: bool,
    /// The choice belongs to this thread.
    _not_send: std::marker::PhantomData<*const ()>,
}

#[cfg(feature = "test-util")]
impl Drop for TokioClock {
    fn drop(&mut self) {
        TOKIO.with(|tokio| tokio.set(self.previous));
    }
}
