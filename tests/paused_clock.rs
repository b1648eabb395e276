//! Deadlines on tokio's paused clock (`ctx::test_util::use_tokio_clock`).

use std::time::{Duration, Instant};

use ctx::{Context, Error};

#[tokio::test(start_paused = true)]
async fn without_the_tokio_clock_a_deadline_keeps_the_real_clock() {
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_secs(10));
    tokio::time::advance(Duration::from_secs(11)).await;
    assert_eq!(ctx.err(), None, "the real clock has not reached 10 s");
}

#[tokio::test(start_paused = true)]
async fn sleeping_past_a_deadline_ends_the_context_by_the_time_the_sleep_returns() {
    let _clock = ctx::test_util::use_tokio_clock();
    let real = Instant::now();
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_secs(10));
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(ctx.err(), Some(Error::DeadlineExceeded));
    assert!(real.elapsed() < Duration::from_secs(5), "took real time");
}

#[tokio::test(start_paused = true)]
async fn advancing_past_a_deadline_ends_the_context() {
    let _clock = ctx::test_util::use_tokio_clock();
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_secs(10));
    tokio::time::advance(Duration::from_secs(9)).await;
    assert_eq!(ctx.err(), None, "never early");
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(ctx.err(), Some(Error::DeadlineExceeded));
    assert!(ctx.cause().unwrap().is(Error::DeadlineExceeded));
}

#[tokio::test(start_paused = true)]
async fn advancing_past_a_parents_deadline_ends_a_child_and_a_value_below_it() {
    let _clock = ctx::test_util::use_tokio_clock();
    let (parent, _p) = Context::background()
        .with_timeout_cause(Duration::from_secs(10), std::io::Error::other("budget"));
    let (child, _c) = parent.with_cancel();
    let below = child.with_value(7u8);
    tokio::time::advance(Duration::from_secs(11)).await;
    assert_eq!(below.err(), Some(Error::DeadlineExceeded));
    assert_eq!(parent.err(), Some(Error::DeadlineExceeded));
    assert_eq!(child.cause().unwrap().to_string(), "budget");
}

#[tokio::test(start_paused = true)]
async fn auto_advance_ends_a_run_under_a_long_timeout_at_once() {
    let _clock = ctx::test_util::use_tokio_clock();
    let real = Instant::now();
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_secs(10));
    let out = ctx.run(std::future::pending::<()>()).await;
    assert_eq!(out, Err(Error::DeadlineExceeded));
    assert!(real.elapsed() < Duration::from_secs(5), "took real time");
}

#[tokio::test(start_paused = true)]
async fn deadline_and_remaining_read_tokios_clock() {
    let _clock = ctx::test_util::use_tokio_clock();
    let start = tokio::time::Instant::now();
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_secs(10));
    assert_eq!(
        ctx.deadline(),
        Some((start + Duration::from_secs(10)).into_std())
    );
    tokio::time::advance(Duration::from_secs(4)).await;
    assert_eq!(ctx.remaining(), Some(Duration::from_secs(6)));
    // A child with a later deadline inherits the earlier one.
    let (child, _c) = ctx.with_timeout(Duration::from_secs(60));
    assert_eq!(child.deadline(), ctx.deadline());
}

#[tokio::test(start_paused = true)]
async fn a_canceled_context_disarms_its_tokio_deadline() {
    let _clock = ctx::test_util::use_tokio_clock();
    let (ctx, cancel) = Context::background().with_timeout(Duration::from_secs(10));
    cancel.cancel();
    tokio::time::advance(Duration::from_secs(11)).await;
    assert_eq!(ctx.err(), Some(Error::Canceled), "the deadline never fired");
    assert!(ctx.cause().unwrap().is(Error::Canceled));
}

#[tokio::test(start_paused = true)]
async fn after_the_guard_deadlines_keep_the_real_clock_again() {
    {
        let _clock = ctx::test_util::use_tokio_clock();
    }
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_secs(10));
    tokio::time::advance(Duration::from_secs(11)).await;
    assert_eq!(ctx.err(), None);
}

/// A context with `timeout` on the paused clock of a runtime that is then
/// shut down.
fn with_timeout_on_a_gone_runtime(timeout: Duration) -> (Context, ctx::CancelGuard) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let _clock = ctx::test_util::use_tokio_clock();
    rt.block_on(async { Context::background().with_timeout(timeout) })
}

/// A context kept past its test's runtime keeps its deadline: the task
/// that would fire it on tokio's clock goes with the runtime, and the
/// process-wide timer takes the deadline over, at the same instant.
#[test]
fn a_deadline_outlives_the_runtime_whose_clock_it_was_on() {
    let (ctx, _cancel) = with_timeout_on_a_gone_runtime(Duration::from_millis(10));
    assert_eq!(
        ctx.wait_timeout(Duration::from_secs(10)),
        Some(Error::DeadlineExceeded),
        "the deadline was lost with the runtime"
    );
    // And one far away is still pending, not fired early by the move.
    let (far, _cancel) = with_timeout_on_a_gone_runtime(Duration::from_secs(3600));
    assert_eq!(far.wait_timeout(Duration::from_millis(50)), None);
}

/// A parent's deadline on the real clock and a child's on tokio's cannot be
/// compared (tokio's clock ran ahead): the child keeps its own, reports it,
/// and ends when tokio's clock passes it.
#[tokio::test(start_paused = true)]
async fn a_child_on_tokios_clock_keeps_its_deadline_under_a_real_clock_parent() {
    // Derived before the guard: the real clock, an hour.
    let (parent, _p) = Context::background().with_timeout(Duration::from_secs(3600));
    let _clock = ctx::test_util::use_tokio_clock();
    tokio::time::advance(Duration::from_secs(7200)).await;
    let (child, _c) = parent.with_timeout(Duration::from_secs(1));
    let remaining = child.remaining().unwrap();
    assert!(
        remaining > Duration::from_millis(500) && remaining <= Duration::from_secs(1),
        "the child's own deadline, on tokio's clock: {remaining:?}"
    );
    assert_eq!(child.err(), None);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(child.err(), Some(Error::DeadlineExceeded));
    assert_eq!(parent.err(), None, "the parent's hour is real time");
    // Read on this thread (tokio's clock, two hours ahead), the parent's
    // time left is still measured on its own clock: not zero while live.
    let left = parent.remaining().unwrap();
    assert!(left > Duration::from_secs(3000), "{left:?}");
    assert!(
        format!("{parent:?}").contains("with_deadline(in "),
        "{parent:?}"
    );
}

/// The other way round: a child on the real clock under a parent on
/// tokio's keeps its own deadline, and still ends with the parent's when
/// tokio's clock passes that (read by `err()` on the test's thread).
#[tokio::test(start_paused = true)]
async fn a_child_on_the_real_clock_under_a_tokio_clock_parent_ends_with_the_parent() {
    let clock = ctx::test_util::use_tokio_clock();
    let (parent, _p) = Context::background().with_timeout(Duration::from_secs(10));
    drop(clock);
    let (child, _c) = parent.with_timeout(Duration::from_secs(3600));
    assert!(
        child.remaining().unwrap() > Duration::from_secs(3000),
        "its own, real"
    );
    let _clock = ctx::test_util::use_tokio_clock();
    tokio::time::advance(Duration::from_secs(5)).await;
    let left = child.remaining().unwrap();
    assert!(
        left > Duration::from_secs(3000),
        "real time left, read on tokio's thread: {left:?}"
    );
    let left = parent.remaining().unwrap();
    assert!(
        left <= Duration::from_secs(5),
        "tokio's time left: {left:?}"
    );
    tokio::time::advance(Duration::from_secs(6)).await;
    assert_eq!(child.err(), Some(Error::DeadlineExceeded));
}
