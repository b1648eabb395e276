//! `#[ctx(timeout = EXPR)]`: the body runs under a child context with that
//! timeout.

use std::time::{Duration, Instant};

use ctx::{ctx, Context, Error};

const FOREVER: Duration = Duration::from_secs(30);
const PROMPT: Duration = Duration::from_secs(1);

#[derive(Debug, PartialEq)]
struct AppError(Error);

impl From<Error> for AppError {
    fn from(err: Error) -> Self {
        AppError(err)
    }
}

#[ctx(timeout = Duration::from_millis(20))]
async fn overruns() -> Result<(), AppError> {
    tokio::time::sleep(FOREVER).await;
    Ok(())
}

#[tokio::test]
async fn a_body_that_overruns_returns_deadline_exceeded_promptly() {
    let at = Instant::now();
    assert_eq!(
        overruns(&Context::background()).await,
        Err(AppError(Error::DeadlineExceeded))
    );
    assert!(at.elapsed() < PROMPT, "took {:?}", at.elapsed());
}

#[ctx(timeout = Duration::from_secs(5))]
async fn fast() -> Result<u32, AppError> {
    tokio::task::yield_now().await;
    Ok(1)
}

#[tokio::test]
async fn a_body_that_finishes_in_time_returns_its_value() {
    assert_eq!(fast(&Context::background()).await, Ok(1));
}

#[ctx(timeout = Duration::from_secs(5))]
fn deadline_seen_inside() -> Option<Duration> {
    ctx.remaining()
}

#[test]
fn ctx_inside_is_the_child_with_the_timeout() {
    let remaining = deadline_seen_inside(&Context::background()).unwrap();
    assert!(remaining <= Duration::from_secs(5));
    assert!(remaining > Duration::from_secs(4));
}

#[test]
fn an_earlier_parent_deadline_still_wins() {
    let (parent, _cancel) = Context::background().with_timeout(Duration::from_secs(1));
    let remaining = deadline_seen_inside(&parent).unwrap();
    assert!(remaining <= Duration::from_secs(1));
}

#[ctx(timeout = Duration::from_millis(limit_ms))]
async fn timeout_from_a_parameter(limit_ms: u64) -> Result<(), AppError> {
    tokio::time::sleep(FOREVER).await;
    Ok(())
}

#[tokio::test]
async fn the_timeout_expression_may_use_the_parameters() {
    let at = Instant::now();
    assert_eq!(
        timeout_from_a_parameter(&Context::background(), 10).await,
        Err(AppError(Error::DeadlineExceeded))
    );
    assert!(at.elapsed() < PROMPT);
}

#[tokio::test]
async fn a_canceled_parent_reports_canceled_not_deadline_exceeded() {
    let (parent, cancel) = Context::background().with_cancel();
    cancel.cancel();
    assert_eq!(overruns(&parent).await, Err(AppError(Error::Canceled)));
}

#[ctx(timeout = Duration::from_millis(10))]
fn sync_checks_itself() -> Result<u32, Error> {
    let mut rounds = 0;
    loop {
        ctx.check()?;
        rounds += 1;
        std::thread::sleep(Duration::from_millis(1));
        if rounds > 10_000 {
            return Ok(rounds);
        }
    }
}

#[test]
fn a_sync_body_sees_the_deadline_through_ctx() {
    assert_eq!(
        sync_checks_itself(&Context::background()),
        Err(Error::DeadlineExceeded)
    );
}

#[ctx(timeout = Duration::from_millis(20), cooperative)]
async fn cooperative_with_timeout() -> Result<&'static str, Error> {
    let why = ctx.done().await;
    assert_eq!(why, Error::DeadlineExceeded);
    Ok("noticed")
}

#[tokio::test]
async fn cooperative_with_timeout_lets_the_body_answer() {
    assert_eq!(
        cooperative_with_timeout(&Context::background()).await,
        Ok("noticed")
    );
}

#[ctx(timeout = Duration::from_secs(5))]
async fn child_is_canceled_on_return() -> Result<Context, Error> {
    Ok(ctx.clone())
}

#[tokio::test]
async fn the_child_context_ends_when_the_function_returns() {
    let child = child_is_canceled_on_return(&Context::background())
        .await
        .unwrap();
    assert_eq!(child.err(), Some(Error::Canceled));
}
