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

/// How long the watchdog of a `#[ctx::test(timeout = ...)]` waits past the
/// timeout before it fails the test itself: long enough for the usual path
/// (the runtime sees the deadline and [`test_timed_out`] reports it) to win
/// when the body awaits, short enough to stay well within a second.
pub const TEST_WATCHDOG_GRACE: Duration = Duration::from_millis(250);

/// Runs a `#[ctx::test(timeout = ...)]`: `body` (the test's runtime and
/// body) on a thread of its own, under a root context whose deadline is the
/// timeout, while the test's thread watches the real clock.
///
/// - The body returns: its value is the test's.
/// - The body panics (a failed assertion, `#[should_panic]`): the panic is
///   resumed on the test's thread, with its payload.
/// - Neither, by the timeout plus [`TEST_WATCHDOG_GRACE`]: the body blocks
///   its thread (`std::thread::sleep`, a lock, a loop that never awaits),
///   so the runtime cannot stop it. The watchdog cancels the context and
///   fails the test with the message of [`test_timed_out`]; the body's
///   thread is left behind, to end with the process.
///
/// The wait is on the real clock (a channel's timeout), never tokio's, so a
/// paused or advanced tokio clock cannot stretch it.
///
/// # Panics
///
/// As above, with the location of the test (the caller, through
/// `#[track_caller]`), not a line of ctx; and if the thread cannot be
/// started.
#[track_caller]
pub fn test_watchdog<T: Send + 'static>(
    timeout: Duration,
    written: &'static str,
    name: &'static str,
    body: impl FnOnce(Context) -> T + Send + 'static,
) -> T {
    let (ctx, guard) = Context::background().with_timeout(timeout);
    let (done, outcome) = std::sync::mpsc::sync_channel(1);
    // Named as the test's thread, so a panic message names the test.
    let mut thread = std::thread::Builder::new();
    if let Some(name) = std::thread::current().name() {
        thread = thread.name(name.to_owned());
    }
    let spawned = thread.spawn(move || {
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || body(ctx)));
        // Fails only when the watchdog has given up on this thread.
        let _ = done.send(out);
    });
    if let Err(err) = spawned {
        panic!("ctx::test: cannot start a thread for the test: {err}");
    }
    match outcome.recv_timeout(timeout.saturating_add(TEST_WATCHDOG_GRACE)) {
        Ok(Ok(out)) => out,
        Ok(Err(payload)) => std::panic::resume_unwind(payload),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            guard.cancel();
            panic!(
                "{}, and `{name}` still runs on its thread, left behind: it blocks its \
                 thread instead of awaiting",
                timed_out(timeout, written)
            )
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            panic!("ctx: internal error: the thread of test `{name}` ended without a result")
        }
    }
}

/// Runs the body of a `#[ctx::test(timeout = ...)]` under `ctx`, whose
/// deadline is the test's timeout: `None` if the deadline passed before the
/// body finished (including a body that finished only because it saw the
/// context end), and the test fails with [`test_timed_out`].
pub async fn test_within<F: Future>(ctx: &Context, body: F) -> Option<F::Output> {
    match ctx.run(body).await {
        Ok(out) if ctx.err().is_none() => Some(out),
        _ => None,
    }
}

/// Fails a `#[ctx::test(timeout = ...)]` that ran past its timeout, naming
/// it.
///
/// # Panics
///
/// Always, at the caller's location: the expansion calls this from the
/// test's own span, so the report points at the test.
#[track_caller]
pub fn test_timed_out(timeout: Duration, written: &'static str) -> ! {
    panic!("{}", timed_out(timeout, written))
}

fn timed_out(timeout: Duration, written: &str) -> String {
    format!("test ran past its timeout of {timeout:?} (`timeout = {written}`); its context was canceled")
}

/// The lostcancel check, asked of the compiler at each place where a body
/// discards a value (see `check.rs` in `ctx-macros`).
///
/// A macro sees tokens, not types, so it cannot tell a `CancelGuard` from a
/// builder whose method is also called `with_cancel`. Instead it wraps the
/// discarded value, where it stands, in a call rustc resolves once the types
/// are known:
///
/// ```text
/// let (c, _) = VALUE;
/// // becomes
/// let (c, _) = ::ctx::__private::lostcancel::TupleWithCancel::front::<1, _>(VALUE).__lostcancel(0);
/// ```
///
/// `front` returns the value as it was (so it is dropped where it was), and
/// asks two things of the type `M` of the `0`: `T: Front<1, M>` (the element
/// the pattern drops) and `M: TupleWithCancel` (the message). Every type has
/// `Front<_, u8>`; a tuple with a `CancelGuard` there also has
/// `Front<1, i32>`. So for any other type `M` is `u8`, whose message trait is
/// implemented; for a guard both stay open until rustc gives the integer its
/// fallback type, `i32`, and `i32` has no message trait: the error is the
/// trait's `on_unimplemented` text, spanned where the guard is dropped.
///
/// Nothing is decided before type inference ends, so a `_` whose type is
/// only known from a later line is checked like any other, and one that is
/// not a guard compiles as before.
pub mod lostcancel {
    use std::marker::PhantomData;

    use crate::CancelGuard;

    /// A value being discarded, returned by [`Pending::__lostcancel`] once
    /// the verdict `M` is given.
    pub struct Pending<T, M>(T, PhantomData<M>);

    impl<T, M> Pending<T, M> {
        /// The value, unchanged: the integer literal passed here is the
        /// verdict the bounds on `M` choose.
        #[inline(always)]
        pub fn __lostcancel(self, _verdict: M) -> T {
            self.0
        }
    }

    /// `M` is `i32` when dropping a `Self` drops a cancel guard at once
    /// (a guard, a derivation's pair, `signal::notify`'s result), and `u8`
    /// for every type.
    pub trait Whole<M> {}
    impl<T: ?Sized> Whole<u8> for T {}
    impl Whole<i32> for CancelGuard {}
    impl<A> Whole<i32> for (A, CancelGuard) {}
    impl<A, E> Whole<i32> for Result<(A, CancelGuard), E> {}

    /// `M` is `i32` when element `I` of the tuple `Self`, counted from the
    /// front, is a cancel guard, and `u8` for every type.
    pub trait Front<const I: usize, M> {}
    impl<T: ?Sized, const I: usize> Front<I, u8> for T {}

    /// `M` is `i32` when element `I` of the tuple `Self`, counted from the
    /// back (`0` is the last), is a cancel guard, and `u8` for every type.
    pub trait Back<const I: usize, M> {}
    impl<T: ?Sized, const I: usize> Back<I, u8> for T {}

    // One impl per place of the guard in tuples of up to four elements;
    // every other element stays generic.
    impl Front<0, i32> for (CancelGuard,) {}
    impl<B> Front<0, i32> for (CancelGuard, B) {}
    impl<A> Front<1, i32> for (A, CancelGuard) {}
    impl<B, C> Front<0, i32> for (CancelGuard, B, C) {}
    impl<A, C> Front<1, i32> for (A, CancelGuard, C) {}
    impl<A, B> Front<2, i32> for (A, B, CancelGuard) {}
    impl<B, C, D> Front<0, i32> for (CancelGuard, B, C, D) {}
    impl<A, C, D> Front<1, i32> for (A, CancelGuard, C, D) {}
    impl<A, B, D> Front<2, i32> for (A, B, CancelGuard, D) {}
    impl<A, B, C> Front<3, i32> for (A, B, C, CancelGuard) {}
    impl Back<0, i32> for (CancelGuard,) {}
    impl<A> Back<0, i32> for (A, CancelGuard) {}
    impl<B> Back<1, i32> for (CancelGuard, B) {}
    impl<A, B> Back<0, i32> for (A, B, CancelGuard) {}
    impl<A, C> Back<1, i32> for (A, CancelGuard, C) {}
    impl<B, C> Back<2, i32> for (CancelGuard, B, C) {}
    impl<A, B, C> Back<0, i32> for (A, B, C, CancelGuard) {}
    impl<A, B, D> Back<1, i32> for (A, B, CancelGuard, D) {}
    impl<A, C, D> Back<2, i32> for (A, CancelGuard, C, D) {}
    impl<B, C, D> Back<3, i32> for (CancelGuard, B, C, D) {}

    /// One trait per message: `#[diagnostic::on_unimplemented]` takes
    /// literal text only, so the shape (`_` in a tuple, `..`, a whole `_`,
    /// `.0`, a bare statement, `forget`) and the derivation named in the
    /// text each get their own trait. The macro picks the trait; the types
    /// decide whether it is reported.
    macro_rules! messages {
        ($($name:ident: $message:tt, $label:tt;)*) => {$(
            #[doc = concat!("The lostcancel error: ", $message, ".")]
            #[diagnostic::on_unimplemented(message = $message, label = $label)]
            pub trait $name: Sized {
                /// The whole value is discarded.
                #[inline(always)]
                fn whole<T: Whole<Self>>(value: T) -> Pending<T, Self> {
                    Pending(value, PhantomData)
                }

                /// Element `I` of the tuple, counted from the front, is
                /// discarded.
                #[inline(always)]
                fn front<const I: usize, T: Front<I, Self>>(value: T) -> Pending<T, Self> {
                    Pending(value, PhantomData)
                }

                /// Element `I` of the tuple, counted from the back, is
                /// discarded.
                #[inline(always)]
                fn back<const I: usize, T: Back<I, Self>>(value: T) -> Pending<T, Self> {
                    Pending(value, PhantomData)
                }
            }

            // Two integer types, so that the bound alone never picks one:
            // only the value's type does. Neither is offered as a fix.
            #[diagnostic::do_not_recommend]
            impl $name for u8 {}
            #[diagnostic::do_not_recommend]
            impl $name for u16 {}
        )*};
    }

    messages! {
        WildWithCancel:
            "this `_` drops the context and cancel guard from `with_cancel` at once, so the context is canceled before anything uses it; bind both (`let (ctx, _cancel) = ...`) and keep the guard until the work ends",
            "the context and its cancel guard are dropped here";
        WildWithDeadline:
            "this `_` drops the context and cancel guard from `with_deadline` at once, so the context is canceled before anything uses it; bind both (`let (ctx, _cancel) = ...`) and keep the guard until the work ends",
            "the context and its cancel guard are dropped here";
        WildWithTimeout:
            "this `_` drops the context and cancel guard from `with_timeout` at once, so the context is canceled before anything uses it; bind both (`let (ctx, _cancel) = ...`) and keep the guard until the work ends",
            "the context and its cancel guard are dropped here";
        WildWithDeadlineCause:
            "this `_` drops the context and cancel guard from `with_deadline_cause` at once, so the context is canceled before anything uses it; bind both (`let (ctx, _cancel) = ...`) and keep the guard until the work ends",
            "the context and its cancel guard are dropped here";
        WildWithTimeoutCause:
            "this `_` drops the context and cancel guard from `with_timeout_cause` at once, so the context is canceled before anything uses it; bind both (`let (ctx, _cancel) = ...`) and keep the guard until the work ends",
            "the context and its cancel guard are dropped here";
        WildSignalNotify:
            "this `_` drops the context and cancel guard from `signal::notify` at once, so the context is canceled before anything uses it; bind both (`let (ctx, _cancel) = ...`) and keep the guard until the work ends",
            "the context and its cancel guard are dropped here";
        Wild:
            "this `_` drops a cancel guard at once, so its context is canceled before anything uses it; bind the guard (`let (ctx, _cancel) = ...`, `let _cancel = ...`) and keep it until the work ends",
            "the cancel guard is dropped here";
        TupleWithCancel:
            "this `_` drops the cancel guard from `with_cancel` at once, so the context is already canceled; bind it (`_cancel`) and keep it until the work ends",
            "the cancel guard is dropped here";
        TupleWithDeadline:
            "this `_` drops the cancel guard from `with_deadline` at once, so the context is already canceled; bind it (`_cancel`) and keep it until the work ends",
            "the cancel guard is dropped here";
        TupleWithTimeout:
            "this `_` drops the cancel guard from `with_timeout` at once, so the context is already canceled; bind it (`_cancel`) and keep it until the work ends",
            "the cancel guard is dropped here";
        TupleWithDeadlineCause:
            "this `_` drops the cancel guard from `with_deadline_cause` at once, so the context is already canceled; bind it (`_cancel`) and keep it until the work ends",
            "the cancel guard is dropped here";
        TupleWithTimeoutCause:
            "this `_` drops the cancel guard from `with_timeout_cause` at once, so the context is already canceled; bind it (`_cancel`) and keep it until the work ends",
            "the cancel guard is dropped here";
        TupleSignalNotify:
            "this `_` drops the cancel guard from `signal::notify` at once, so the context is already canceled; bind it (`_cancel`) and keep it until the work ends",
            "the cancel guard is dropped here";
        Tuple:
            "this `_` drops a cancel guard at once, so its context is already canceled; bind it (`_cancel`) and keep it until the work ends",
            "the cancel guard is dropped here";
        RestWithCancel:
            "this `..` drops the cancel guard from `with_cancel` at once, so the context is already canceled; bind it (`_cancel`) and keep it until the work ends",
            "the cancel guard is dropped here";
        RestWithDeadline:
            "this `..` drops the cancel guard from `with_deadline` at once, so the context is already canceled; bind it (`_cancel`) and keep it until the work ends",
            "the cancel guard is dropped here";
        RestWithTimeout:
            "this `..` drops the cancel guard from `with_timeout` at once, so the context is already canceled; bind it (`_cancel`) and keep it until the work ends",
            "the cancel guard is dropped here";
        RestWithDeadlineCause:
            "this `..` drops the cancel guard from `with_deadline_cause` at once, so the context is already canceled; bind it (`_cancel`) and keep it until the work ends",
            "the cancel guard is dropped here";
        RestWithTimeoutCause:
            "this `..` drops the cancel guard from `with_timeout_cause` at once, so the context is already canceled; bind it (`_cancel`) and keep it until the work ends",
            "the cancel guard is dropped here";
        RestSignalNotify:
            "this `..` drops the cancel guard from `signal::notify` at once, so the context is already canceled; bind it (`_cancel`) and keep it until the work ends",
            "the cancel guard is dropped here";
        Rest:
            "this `..` drops a cancel guard at once, so its context is already canceled; bind it (`_cancel`) and keep it until the work ends",
            "the cancel guard is dropped here";
        Field0WithCancel:
            "`.0` keeps the context from `with_cancel` and drops its cancel guard at once, so the context is already canceled; bind both (`let (ctx, _cancel) = ...`) and keep the guard until the work ends",
            "the cancel guard is dropped here";
        Field0WithDeadline:
            "`.0` keeps the context from `with_deadline` and drops its cancel guard at once, so the context is already canceled; bind both (`let (ctx, _cancel) = ...`) and keep the guard until the work ends",
            "the cancel guard is dropped here";
        Field0WithTimeout:
            "`.0` keeps the context from `with_timeout` and drops its cancel guard at once, so the context is already canceled; bind both (`let (ctx, _cancel) = ...`) and keep the guard until the work ends",
            "the cancel guard is dropped here";
        Field0WithDeadlineCause:
            "`.0` keeps the context from `with_deadline_cause` and drops its cancel guard at once, so the context is already canceled; bind both (`let (ctx, _cancel) = ...`) and keep the guard until the work ends",
            "the cancel guard is dropped here";
        Field0WithTimeoutCause:
            "`.0` keeps the context from `with_timeout_cause` and drops its cancel guard at once, so the context is already canceled; bind both (`let (ctx, _cancel) = ...`) and keep the guard until the work ends",
            "the cancel guard is dropped here";
        Field0SignalNotify:
            "`.0` keeps the context from `signal::notify` and drops its cancel guard at once, so the context is already canceled; bind both (`let (ctx, _cancel) = ...`) and keep the guard until the work ends",
            "the cancel guard is dropped here";
        Field0:
            "`.0` keeps the context and drops its cancel guard at once, so the context is already canceled; bind both (`let (ctx, _cancel) = ...`) and keep the guard until the work ends",
            "the cancel guard is dropped here";
        StmtWithCancel:
            "the context and cancel guard from `with_cancel` are dropped at once, so the context is canceled before anything uses it; bind both (`let (ctx, _cancel) = ...`) and keep the guard until the work ends",
            "both are dropped at the end of this statement";
        StmtWithDeadline:
            "the context and cancel guard from `with_deadline` are dropped at once, so the context is canceled before anything uses it; bind both (`let (ctx, _cancel) = ...`) and keep the guard until the work ends",
            "both are dropped at the end of this statement";
        StmtWithTimeout:
            "the context and cancel guard from `with_timeout` are dropped at once, so the context is canceled before anything uses it; bind both (`let (ctx, _cancel) = ...`) and keep the guard until the work ends",
            "both are dropped at the end of this statement";
        StmtWithDeadlineCause:
            "the context and cancel guard from `with_deadline_cause` are dropped at once, so the context is canceled before anything uses it; bind both (`let (ctx, _cancel) = ...`) and keep the guard until the work ends",
            "both are dropped at the end of this statement";
        StmtWithTimeoutCause:
            "the context and cancel guard from `with_timeout_cause` are dropped at once, so the context is canceled before anything uses it; bind both (`let (ctx, _cancel) = ...`) and keep the guard until the work ends",
            "both are dropped at the end of this statement";
        StmtSignalNotify:
            "the context and cancel guard from `signal::notify` are dropped at once, so the context is canceled before anything uses it; bind both (`let (ctx, _cancel) = ...`) and keep the guard until the work ends",
            "both are dropped at the end of this statement";
        Forget:
            "`forget` keeps this cancel guard from ever canceling its context, so the context, its deadline's timer entry and its children are never released; drop the guard, or call `cancel()`, when the work ends",
            "the cancel guard is forgotten here";
    }
}
