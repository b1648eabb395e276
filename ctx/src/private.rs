//! What macro expansions call. Not API: may change in any release.
//!
//! Expansions reach these through absolute paths (`::ctx::__private::...`,
//! or the path given by `crate = ...`), so users need no dependency of their
//! own on tokio and no import. Each helper exists for one reason: to put a
//! type rule where rustc can explain it in the user's terms
//! (`#[diagnostic::on_unimplemented]`), or to keep the expansion short.

use std::future::Future;
use std::time::Duration;

use crate::{CancelGuard, Context, Error};

/// `#[ctx::main]` and `#[ctx::test]` build their runtime through this, so the
/// user needs no tokio dependency of their own.
pub use tokio;

/// The error type of a `#[ctx]` function's `Result`: it must be able to hold
/// a [`ctx::Error`](Error), which is what the function returns when its
/// context is done.
///
/// Expansions call `FromCtxError::from_ctx_error(e)` with `Self` inferred
/// from the declared return type, not through a bounded helper, so the
/// error rustc reports is this trait's message on the user's error type,
/// with no note about a bound inside ctx.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot hold a `ctx::Error`, so a `#[ctx]` function cannot return it as its error",
    label = "`{Self}` does not implement `From<ctx::Error>`",
    note = "a `#[ctx]` function returning `Result` returns `Err` when its context is done: implement `From<ctx::Error> for {Self}` (e.g. a variant wrapping `ctx::Error`), or return a type that has it, such as `ctx::Error` or `std::io::Error`"
)]
pub trait FromCtxError: Sized {
    /// Converts the context's error.
    fn from_ctx_error(err: Error) -> Self;
}

// Not recommended: rustc then stops at `FromCtxError`, whose message says
// what to do, instead of adding a note that leads through this impl.
#[diagnostic::do_not_recommend]
impl<E: From<Error>> FromCtxError for E {
    fn from_ctx_error(err: Error) -> Self {
        E::from(err)
    }
}

/// Runs `fut` unless, and until, `ctx` is done: [`Context::run`].
pub async fn race<F: Future>(ctx: &Context, fut: F) -> Result<F::Output, Error> {
    ctx.run(fut).await
}

/// What `timeout = ...` accepts.
#[diagnostic::on_unimplemented(
    message = "`timeout = ...` takes a `std::time::Duration`, not `{Self}`",
    label = "expected a `Duration`",
    note = "write e.g. `timeout = Duration::from_secs(5)` or `timeout = Duration::from_millis(250)`"
)]
pub trait Timeout {
    /// The duration.
    fn duration(self) -> Duration;
}

impl Timeout for Duration {
    fn duration(self) -> Duration {
        self
    }
}

/// The duration of `timeout = EXPR`, checked to be one.
pub fn timeout<T: Timeout>(timeout: T) -> Duration {
    timeout.duration()
}

/// The root context of `#[ctx::main]`: canceled on SIGINT or SIGTERM.
///
/// # Panics
///
/// If the process cannot listen for signals at all (the operating system
/// refused), as `#[tokio::main]` panics when it cannot build its runtime.
pub fn main_context() -> (Context, CancelGuard) {
    match crate::signal::notify(&Context::background()) {
        Ok(pair) => pair,
        Err(err) => panic!("ctx::main: cannot listen for SIGINT and SIGTERM: {err}"),
    }
}

/// Runs the body of a `#[ctx::test(timeout = ...)]` under `ctx`, whose
/// deadline is the test's timeout.
///
/// # Panics
///
/// If the deadline passes before the body finishes (including a body that
/// finished only because it saw the context end), naming the timeout: the
/// test failed.
pub async fn test_within<F: Future>(
    ctx: &Context,
    timeout: Duration,
    written: &'static str,
    body: F,
) -> F::Output {
    match ctx.run(body).await {
        Ok(out) if ctx.err().is_none() => out,
        _ => panic!(
            "test ran past its timeout of {timeout:?} (`timeout = {written}`); its context was canceled"
        ),
    }
}
