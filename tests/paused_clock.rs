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
