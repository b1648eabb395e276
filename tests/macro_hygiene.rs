//! The attributes on functions that a `macro_rules!` re-emits: the `ctx`
//! they add resolves from the user's tokens (rust-lang/rust#134882), and the
//! functions keep every guarantee.
#![deny(warnings)]

use std::time::Duration;

use ctx::{ctx, Context, Error};

/// Re-emits a function as given, as logging or registration wrappers do:
/// the attribute then reaches the macro with the wrapper's hygiene.
macro_rules! wrap {
    ($(#[$m:meta])* $v:vis async fn $($rest:tt)*) => {
        $(#[$m])* $v async fn $($rest)*
    };
    ($(#[$m:meta])* $v:vis fn $($rest:tt)*) => {
        $(#[$m])* $v fn $($rest)*
    };
}

/// Writes the attribute itself around the user's name and body.
macro_rules! handler {
    ($name:ident $body:block) => {
        #[ctx]
        async fn $name() -> Result<u32, Error> $body
    };
}

fn canceled() -> Context {
    let (ctx, cancel) = Context::background().with_cancel();
    cancel.cancel();
    ctx
}

wrap! {
    #[ctx]
    async fn echo(id: u32) -> Result<u32, Error> {
        ctx.check()?;
        Ok(id)
    }
}

wrap! {
    #[ctx(timeout = Duration::from_millis(20))]
    async fn overruns() -> Result<(), Error> {
        ctx.done().await;
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok(())
    }
}

wrap! {
    #[ctx]
    fn deadline_inside() -> Option<Duration> {
        ctx.remaining()
    }
}

handler!(answer {
    ctx.check()?;
    Ok(42)
});

#[tokio::test]
async fn a_wrapped_function_sees_its_ctx_and_keeps_its_checks() {
    let root = Context::background();
    assert_eq!(echo(&root, 7).await, Ok(7));
    assert_eq!(echo(&canceled(), 7).await, Err(Error::Canceled));
    assert_eq!(overruns(&root).await, Err(Error::DeadlineExceeded));
    let (short, _cancel) = root.with_timeout(Duration::from_secs(5));
    assert!(deadline_inside(&short).is_some());
    assert_eq!(answer(&root).await, Ok(42));
    assert_eq!(answer(&canceled()).await, Err(Error::Canceled));
}

wrap! {
    #[ctx::test]
    async fn a_wrapped_test_has_ctx_in_scope() {
        assert!(!ctx.is_done());
        assert_eq!(echo(ctx, 1).await, Ok(1));
    }
}

wrap! {
    #[ctx::test(timeout = Duration::from_secs(10))]
    async fn a_wrapped_test_gets_its_timeout() {
        assert!(ctx.remaining().is_some());
    }
}

wrap! {
    // `ctx` unused: no warning (this file denies them).
    #[ctx::test]
    async fn a_wrapped_test_may_ignore_ctx() {}
}

wrap! {
    #[ctx::test(timeout = Duration::from_millis(50))]
    #[should_panic(expected = "timeout")]
    async fn a_wrapped_test_that_outlives_its_timeout_fails() {
        ctx.done().await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
}
