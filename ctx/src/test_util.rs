//! Testing on tokio's paused clock (cargo feature `test-util`).
//!
//! Deadlines run on the real clock and fire from ctx's timer thread, which
//! cannot see tokio's clock. A test that pauses tokio's clock wants the
//! deadlines it derives measured on tokio's clock instead, so that
//! `tokio::time::sleep`, `advance` or tokio's auto-advance past a deadline
//! ends the context in milliseconds of real time. `#[ctx::test(start_paused
//! = true)]` does that for you; [`use_tokio_clock`] is the same for a test
//! written with `#[tokio::test(start_paused = true)]` or a runtime built by
//! hand.
//!
//! Enable it in your dev-dependencies only:
//!
//! ```toml
//! [dev-dependencies]
//! ctx-tree = { version = "0.1", features = ["test-util"] }
//! ```

pub use crate::clock::TokioClock;

/// Makes the contexts derived on this thread, while the returned guard
/// lives, measure their deadlines on tokio's clock: `deadline()`,
/// `remaining()` and an outgoing `grpc-timeout` read tokio's clock, and the
/// deadline fires when tokio's clock passes it (a task on the current
/// runtime sleeps until then).
///
/// Call it at the top of a test that runs on a current-thread runtime with
/// a paused clock (`#[tokio::test(start_paused = true)]`, the default
/// flavor): the test and its tasks run on this thread. Outside a runtime,
/// deadlines keep the real clock. Deadlines derived on other threads keep
/// the real clock. The guard is not `Send`: the choice is this thread's.
///
/// Mixing the clocks: a deadline on one clock is never compared with one on
/// the other (tokio's paused clock runs ahead of the real one by whatever
/// the test advanced), so a child derived on tokio's clock under a parent
/// with a real-clock deadline (a server root made outside the test's
/// runtime) keeps and reports its own deadline, and ends at whichever of
/// the two fires first, each on its own clock; `remaining()` (and so an
/// outgoing `grpc-timeout`) measures a deadline on its own clock, whichever
/// thread asks. A context that outlives the
/// runtime whose clock its deadline was on (kept in a static, or by another
/// thread) keeps its deadline: the process-wide timer takes it over when
/// the runtime shuts down, at the same instant on the real clock.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// use std::time::Duration;
/// let _clock = ctx::test_util::use_tokio_clock();
/// let (ctx, _cancel) = ctx::Context::background().with_timeout(Duration::from_secs(10));
/// tokio::time::advance(Duration::from_secs(11)).await;
/// tokio::task::yield_now().await; // let the deadline's task run
/// assert_eq!(ctx.err(), Some(ctx::Error::DeadlineExceeded));
/// # }
/// ```
///
/// Peer: tokio's `time::pause`, which pauses the clock this follows.
pub fn use_tokio_clock() -> TokioClock {
    crate::clock::use_tokio_clock()
}
