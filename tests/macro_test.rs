//! `#[ctx::test]`: a tokio test with `ctx` in scope, failing when it
//! outlives its timeout.

use std::time::Duration;

use ctx::Error;

#[ctx::test]
async fn ctx_is_in_scope_and_live() {
    assert!(!ctx.is_done());
    assert_eq!(ctx.deadline(), None);
    tokio::task::yield_now().await;
}

#[ctx::test(timeout = Duration::from_secs(10))]
async fn timeout_sets_the_deadline_of_ctx() {
    let remaining = ctx.remaining().unwrap();
    assert!(remaining <= Duration::from_secs(10));
    assert!(remaining > Duration::from_secs(5));
}

#[ctx::test]
async fn a_test_may_return_result() -> Result<(), Error> {
    ctx.check()?;
    Ok(())
}

#[ctx::test(timeout = Duration::from_millis(50))]
#[should_panic(
    expected = "test ran past its timeout of 50ms (`timeout = Duration :: from_millis(50)`)"
)]
async fn a_test_that_ignores_ctx_and_outlives_its_timeout_fails() {
    // Ignores ctx: the test still ends, with the timeout named.
    tokio::time::sleep(Duration::from_secs(30)).await;
}

#[ctx::test(timeout = Duration::from_millis(50))]
#[should_panic(expected = "timeout")]
async fn a_test_that_stops_when_ctx_ends_still_fails() {
    // Noticing the cancellation does not make the test pass: it ran out of
    // time.
    let why = ctx.done().await;
    assert_eq!(why, Error::DeadlineExceeded);
}

#[ctx::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_thread_flavor() {
    let handle = tokio::runtime::Handle::current();
    assert_eq!(
        handle.runtime_flavor(),
        tokio::runtime::RuntimeFlavor::MultiThread
    );
    let child = ctx.clone();
    tokio::spawn(async move { assert!(!child.is_done()) })
        .await
        .unwrap();
}

#[ctx::test]
async fn current_thread_is_the_default() {
    let handle = tokio::runtime::Handle::current();
    assert_eq!(
        handle.runtime_flavor(),
        tokio::runtime::RuntimeFlavor::CurrentThread
    );
}

/// `#[ctx]` functions take the test's `ctx` as any other.
#[ctx::ctx]
async fn helper() -> Result<u32, Error> {
    Ok(3)
}

#[ctx::test(timeout = Duration::from_secs(10))]
async fn passes_ctx_on() {
    assert_eq!(helper(ctx).await, Ok(3));
}
