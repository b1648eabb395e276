//! `crate = path`: the macros work through a renamed dependency.

extern crate ctx as renamed;

use renamed::{Context, Error};

#[renamed::ctx(crate = renamed)]
async fn through_the_renamed_crate() -> Result<u32, Error> {
    Ok(5)
}

#[renamed::ctx(crate = "renamed", timeout = std::time::Duration::from_secs(5))]
fn through_a_string_path() -> Result<bool, Error> {
    Ok(ctx.deadline().is_some())
}

#[renamed::test(crate = renamed)]
async fn test_through_the_renamed_crate() {
    assert_eq!(through_the_renamed_crate(ctx).await, Ok(5));
    let (canceled, cancel) = Context::background().with_cancel();
    cancel.cancel();
    assert_eq!(
        through_the_renamed_crate(&canceled).await,
        Err(Error::Canceled)
    );
    assert_eq!(through_a_string_path(ctx), Ok(true));
}
