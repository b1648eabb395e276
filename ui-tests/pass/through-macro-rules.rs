//! The attributes work on a function that a `macro_rules!` re-emits
//! (rust-lang/rust#134882): the `ctx` they add resolves from the user's own
//! tokens, not from the wrapper's, and adds no warning when unused.
#![deny(warnings)]

use std::time::Duration;

use ctx::{ctx, Context, Error};

/// Re-emits a function as given, as logging or registration wrappers do.
macro_rules! wrap {
    ($(#[$m:meta])* $v:vis async fn $($rest:tt)*) => {
        $(#[$m])* $v async fn $($rest)*
    };
    ($(#[$m:meta])* $v:vis fn $($rest:tt)*) => {
        $(#[$m])* $v fn $($rest)*
    };
}

/// Writes the attribute itself; the body is the user's.
macro_rules! handler {
    ($name:ident $body:block) => {
        #[ctx]
        async fn $name() -> Result<u32, Error> $body
    };
}

/// Writes the attribute and the body; only the name is the user's.
macro_rules! checker {
    ($name:ident) => {
        #[ctx]
        fn $name() -> Result<bool, Error> {
            ctx.check()?;
            Ok(ctx.deadline().is_some())
        }
    };
}

wrap! {
    #[ctx::ctx]
    pub async fn uses_ctx(id: u32) -> Result<u32, Error> {
        ctx.check()?;
        Ok(id)
    }
}

wrap! {
    #[ctx(timeout = Duration::from_secs(5))]
    async fn under_timeout() -> Result<bool, Error> {
        Ok(ctx.deadline().is_some())
    }
}

wrap! {
    #[ctx(timeout = Duration::from_secs(5))]
    fn ignores_ctx() -> u32 {
        3
    }
}

wrap! {
    #[ctx]
    async fn never_uses_ctx() -> Result<u32, Error> {
        Ok(4)
    }
}

handler!(from_handler {
    ctx.check()?;
    Ok(5)
});

checker!(from_checker);

wrap! {
    #[ctx::test]
    async fn a_test_through_the_wrapper() {
        assert!(!ctx.is_done());
    }
}

wrap! {
    #[ctx::test(timeout = Duration::from_secs(5))]
    async fn a_test_that_ignores_ctx() {}
}

wrap! {
    #[ctx::main(flavor = "current_thread")]
    async fn main() -> Result<(), Error> {
        let root = Context::background();
        assert_eq!(uses_ctx(&root, 1).await?, 1);
        assert!(under_timeout(&root).await?);
        assert_eq!(ignores_ctx(&root), 3);
        assert_eq!(never_uses_ctx(&root).await?, 4);
        assert_eq!(from_handler(&root).await?, 5);
        assert!(!from_checker(&root)?);
        assert!(!ctx.is_done());
        Ok(())
    }
}
