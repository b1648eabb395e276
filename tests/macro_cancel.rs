//! `#[ctx]` on functions returning `Result`: the entry check, the race
//! against the context, `cooperative`, and where the parameter goes.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ctx::{ctx, Context, Error};
use tokio::sync::oneshot;

/// Far longer than any test may take: a body that sleeps this long and
/// still lets its test pass was interrupted.
const FOREVER: Duration = Duration::from_secs(30);
/// Generous bound on "returns promptly".
const PROMPT: Duration = Duration::from_secs(1);

fn canceled() -> Context {
    let (ctx, cancel) = Context::background().with_cancel();
    cancel.cancel();
    ctx
}

#[derive(Debug, PartialEq)]
enum AppError {
    Ctx(Error),
    Other,
}

impl From<Error> for AppError {
    fn from(err: Error) -> Self {
        AppError::Ctx(err)
    }
}

static RAN: AtomicUsize = AtomicUsize::new(0);

#[ctx]
async fn counts_runs_async() -> Result<(), AppError> {
    RAN.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[ctx]
fn counts_runs_sync(ran: &AtomicBool) -> Result<u32, AppError> {
    ran.store(true, Ordering::SeqCst);
    Ok(1)
}

#[tokio::test]
async fn already_canceled_context_returns_err_without_running_the_body() {
    let before = RAN.load(Ordering::SeqCst);
    assert_eq!(
        counts_runs_async(&canceled()).await,
        Err(AppError::Ctx(Error::Canceled))
    );
    assert_eq!(RAN.load(Ordering::SeqCst), before);

    assert_eq!(counts_runs_async(&Context::background()).await, Ok(()));
    assert_eq!(RAN.load(Ordering::SeqCst), before + 1);
}

#[test]
fn already_canceled_context_returns_err_without_running_a_sync_body() {
    let ran = AtomicBool::new(false);
    assert_eq!(
        counts_runs_sync(&canceled(), &ran),
        Err(AppError::Ctx(Error::Canceled))
    );
    assert!(!ran.load(Ordering::SeqCst));

    assert_eq!(counts_runs_sync(&Context::background(), &ran), Ok(1));
    assert!(ran.load(Ordering::SeqCst));
}

#[test]
fn expired_context_returns_deadline_exceeded_at_entry() {
    let (ctx, _cancel) = Context::background().with_timeout(Duration::ZERO);
    let ran = AtomicBool::new(false);
    assert_eq!(
        counts_runs_sync(&ctx, &ran),
        Err(AppError::Ctx(Error::DeadlineExceeded))
    );
    assert!(!ran.load(Ordering::SeqCst));
}

/// Sets its flag when dropped: shows that the body's future was dropped.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[ctx]
async fn sleeps_forever(
    started: oneshot::Sender<()>,
    dropped: Arc<AtomicBool>,
) -> Result<&'static str, AppError> {
    let _dropped = SetOnDrop(dropped);
    let _ = started.send(());
    tokio::time::sleep(FOREVER).await;
    Ok("finished the wasted work")
}

#[tokio::test]
async fn canceled_mid_way_returns_promptly_and_drops_the_body() {
    let (ctx, cancel) = Context::background().with_cancel();
    let (started, body_started) = oneshot::channel();
    let dropped = Arc::new(AtomicBool::new(false));
    let call = tokio::spawn({
        let dropped = Arc::clone(&dropped);
        async move { sleeps_forever(&ctx, started, dropped).await }
    });
    body_started.await.unwrap();

    let at = Instant::now();
    cancel.cancel();
    let out = call.await.unwrap();
    assert!(at.elapsed() < PROMPT, "took {:?}", at.elapsed());
    assert_eq!(out, Err(AppError::Ctx(Error::Canceled)));
    assert!(dropped.load(Ordering::SeqCst));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canceled_from_another_task_returns_promptly_on_many_threads() {
    let (ctx, cancel) = Context::background().with_cancel();
    let (started, body_started) = oneshot::channel();
    let dropped = Arc::new(AtomicBool::new(false));
    let canceler = tokio::spawn(async move {
        body_started.await.unwrap();
        cancel.cancel();
        Instant::now()
    });
    let out = sleeps_forever(&ctx, started, Arc::clone(&dropped)).await;
    let canceled_at = canceler.await.unwrap();
    assert!(canceled_at.elapsed() < PROMPT);
    assert_eq!(out, Err(AppError::Ctx(Error::Canceled)));
    assert!(dropped.load(Ordering::SeqCst));
}

#[ctx(cooperative)]
async fn cleans_up_after_cancel(started: oneshot::Sender<()>) -> Result<&'static str, AppError> {
    let _ = started.send(());
    // Watches the context itself, then finishes its cleanup.
    let _why = ctx.done().await;
    tokio::task::yield_now().await;
    Ok("cleaned up")
}

#[tokio::test]
async fn cooperative_body_runs_to_its_end_after_cancel() {
    let (ctx, cancel) = Context::background().with_cancel();
    let (started, body_started) = oneshot::channel();
    let call = tokio::spawn(async move { cleans_up_after_cancel(&ctx, started).await });
    body_started.await.unwrap();
    cancel.cancel();
    assert_eq!(call.await.unwrap(), Ok("cleaned up"));
}

#[tokio::test]
async fn cooperative_keeps_the_entry_check() {
    let (started, body_started) = oneshot::channel();
    assert_eq!(
        cleans_up_after_cancel(&canceled(), started).await,
        Err(AppError::Ctx(Error::Canceled))
    );
    assert!(body_started.await.is_err(), "the body ran");
}

#[ctx]
async fn fails_on_its_own() -> Result<(), AppError> {
    tokio::task::yield_now().await;
    Err(AppError::Other)?;
    Ok(())
}

#[tokio::test]
async fn body_errors_and_question_mark_pass_through() {
    assert_eq!(
        fails_on_its_own(&Context::background()).await,
        Err(AppError::Other)
    );
}

#[ctx]
async fn early_return(flag: bool) -> Result<u8, AppError> {
    if flag {
        return Ok(1);
    }
    Ok(2)
}

#[tokio::test]
async fn return_in_the_body_returns_from_the_function() {
    let root = Context::background();
    assert_eq!(early_return(&root, true).await, Ok(1));
    assert_eq!(early_return(&root, false).await, Ok(2));
}

#[ctx]
fn reads_ctx(expected_done: bool) -> u32 {
    assert_eq!(ctx.is_done(), expected_done);
    7
}

#[ctx]
async fn reads_ctx_async() -> u32 {
    tokio::task::yield_now().await;
    u32::from(ctx.is_done())
}

#[tokio::test]
async fn non_result_function_only_gets_the_parameter() {
    // A canceled context does not stop a body that has no `Err` to give.
    assert_eq!(reads_ctx(&canceled(), true), 7);
    assert_eq!(reads_ctx(&Context::background(), false), 7);
    assert_eq!(reads_ctx_async(&canceled()).await, 1);
}

#[ctx]
async fn io_error_result() -> std::io::Result<()> {
    Ok(())
}

#[tokio::test]
async fn io_result_gets_the_io_error_conversion() {
    let err = io_error_result(&canceled()).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::Interrupted);
}

#[ctx::ctx]
async fn through_the_full_path() -> Result<(), Error> {
    ctx.check()
}

#[tokio::test]
async fn full_path_attribute_works_like_the_import() {
    assert_eq!(through_the_full_path(&Context::background()).await, Ok(()));
    assert_eq!(
        through_the_full_path(&canceled()).await,
        Err(Error::Canceled)
    );
}

/// The body's `ctx` is the caller's context: values and deadlines flow in.
#[ctx]
fn sees_callers_values() -> Option<u32> {
    ctx.value::<u32>().copied()
}

#[test]
fn ctx_in_the_body_is_the_callers_context() {
    let with = Context::background().with_value(42u32);
    assert_eq!(sees_callers_values(&with), Some(42));
    assert_eq!(sees_callers_values(&Context::background()), None);
}
