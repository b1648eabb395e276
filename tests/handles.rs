//! The handles behave like their peers: `Context` is `Eq` + `Hash` by
//! identity and unwind-safe, as is `CancelGuard`; `done_owned()` can be
//! spawned.

use std::collections::HashSet;
use std::panic::{RefUnwindSafe, UnwindSafe};
use std::time::Duration;

use ctx::{CancelGuard, Context, DoneOwned, Error};

fn unwind_safe<T: UnwindSafe + RefUnwindSafe>() {}
fn owned_future<T: std::future::Future + Send + Sync + Unpin + 'static>() {}

#[test]
fn context_and_guard_are_unwind_safe_and_done_owned_is_spawnable() {
    unwind_safe::<Context>();
    unwind_safe::<CancelGuard>();
    owned_future::<DoneOwned>();
}

#[test]
fn contexts_are_equal_by_identity() {
    let root = Context::background();
    assert_eq!(Context::background(), Context::background());
    assert_eq!(Context::todo(), Context::todo());
    assert_ne!(Context::background(), Context::todo());
    assert_eq!(Context::default(), Context::background());

    let (a, _ga) = root.with_cancel();
    let (b, _gb) = root.with_cancel();
    assert_eq!(a, a.clone(), "a clone equals its original");
    assert_ne!(a, b, "two derivations never do");
    assert_ne!(a, root);
    let v1 = root.with_value(1u32);
    let v2 = root.with_value(1u32);
    assert_eq!(v1, v1.clone());
    assert_ne!(v1, v2);
    let w1 = root.without_cancel();
    assert_ne!(w1, root.without_cancel());
    assert_eq!(w1, w1.clone());
    let (t1, _gt1) = root.with_timeout(Duration::from_secs(60));
    let (t2, _gt2) = root.with_timeout(Duration::from_secs(60));
    assert_ne!(t1, t2);
}

#[test]
// Clippy sees the node's lock behind the handle; the hash is the node's
// address, which nothing can change.
#[allow(clippy::mutable_key_type)]
fn hashing_agrees_with_identity() {
    let (a, _ga) = Context::background().with_cancel();
    let (b, _gb) = Context::background().with_cancel();
    let set: HashSet<Context> = [
        a.clone(),
        a.clone(),
        b.clone(),
        Context::background(),
        Context::background(),
        Context::todo(),
    ]
    .into_iter()
    .collect();
    assert_eq!(set.len(), 4);
    assert!(set.contains(&a) && set.contains(&b));
}

#[tokio::test]
async fn done_owned_can_be_spawned_and_outlives_its_context_handle() {
    let (ctx, cancel) = Context::background().with_cancel();
    let watcher = tokio::spawn(ctx.done_owned());
    drop(ctx);
    cancel.cancel();
    assert_eq!(watcher.await.unwrap(), Error::Canceled);

    let (ctx, _g) = Context::background().with_timeout(Duration::from_millis(5));
    assert_eq!(
        tokio::spawn(ctx.done_owned()).await.unwrap(),
        Error::DeadlineExceeded
    );
}

#[tokio::test]
async fn done_owned_of_background_never_resolves_and_a_dropped_one_unregisters() {
    let pending = tokio::time::timeout(
        Duration::from_millis(20),
        Context::background().done_owned(),
    )
    .await;
    assert!(pending.is_err());

    let (ctx, cancel) = Context::background().with_cancel();
    for _ in 0..1000 {
        let mut fut = ctx.done_owned();
        assert!(futures::poll!(&mut fut).is_pending());
    }
    cancel.cancel();
    assert_eq!(ctx.done_owned().await, Error::Canceled);
}
