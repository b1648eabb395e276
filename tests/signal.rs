//! `ctx::signal::notify` in this process, without sending it signals.

use std::time::Duration;

use ctx::signal::{notify, Received};
use ctx::{Context, Error};

#[test]
fn notify_works_outside_a_runtime() {
    let (ctx, stop) = notify(&Context::background()).unwrap();
    assert!(!ctx.is_done());
    stop.cancel();
    assert_eq!(ctx.err(), Some(Error::Canceled));
}

#[test]
fn notify_works_inside_a_runtime_without_io() {
    // Without `enable_io` tokio cannot watch signals here; notify does not
    // need it.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (ctx, _stop) = notify(&Context::background()).unwrap();
        assert!(!ctx.is_done());
    });
}

#[test]
fn the_child_follows_its_parent() {
    let (parent, cancel) = Context::background().with_timeout(Duration::from_secs(60));
    let (ctx, _stop) = notify(&parent).unwrap();
    assert!(ctx.deadline().is_some());
    cancel.cancel();
    assert_eq!(ctx.err(), Some(Error::Canceled));
}

#[test]
fn a_done_parent_gives_a_done_child() {
    let (parent, cancel) = Context::background().with_cancel();
    cancel.cancel();
    let (ctx, _stop) = notify(&parent).unwrap();
    assert_eq!(ctx.err(), Some(Error::Canceled));
}

#[test]
fn received_is_a_cause_that_names_the_signal() {
    let (ctx, cancel) = Context::background().with_cancel();
    cancel.cancel_with_cause(Received::Terminate);
    let cause = ctx.cause().unwrap();
    assert_eq!(cause.downcast_ref(), Some(&Received::Terminate));
    assert_eq!(cause.to_string(), "received SIGTERM");
}
