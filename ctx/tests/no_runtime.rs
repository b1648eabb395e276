//! The executor-agnostic core under `futures::executor` and plain threads,
//! with no tokio runtime anywhere in the test: what a program built with
//! `default-features = false` has.
//!
//! `.ci/run` runs it as `cargo test -p ctx-tree --no-default-features --test
//! no_runtime`, where ctx is built without any feature, so without tokio
//! (tokio is here only as a dev-dependency, to ask whether a runtime is
//! current). In a workspace-wide run features unify and ctx has its
//! defaults; the test then still shows that the core needs no runtime.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use ctx::{Context, Error};
use futures::executor::block_on;

fn assert_no_runtime() {
    assert!(
        tokio::runtime::Handle::try_current().is_err(),
        "this test must run outside any tokio runtime"
    );
}

#[test]
fn a_cancel_from_a_plain_thread_wakes_done_under_futures_executor() {
    let (ctx, cancel) = Context::background().with_cancel();
    let canceler = std::thread::spawn(move || cancel.cancel());
    let err = block_on(async {
        assert_no_runtime();
        ctx.done().await
    });
    assert_eq!(err, Error::Canceled);
    canceler.join().unwrap();
}

#[test]
fn a_deadline_fires_without_a_runtime_and_never_early() {
    let start = Instant::now();
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(50));
    let err = block_on(async {
        assert_no_runtime();
        ctx.done().await
    });
    assert_eq!(err, Error::DeadlineExceeded);
    assert!(start.elapsed() >= Duration::from_millis(50));
}

#[test]
fn run_drops_a_future_that_never_ends_when_the_deadline_passes() {
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(20));
    let out = block_on(async {
        assert_no_runtime();
        ctx.run(std::future::pending::<()>()).await
    });
    assert_eq!(out, Err(Error::DeadlineExceeded));
}

#[test]
fn done_owned_waits_on_another_thread_with_its_own_executor() {
    let (ctx, cancel) = Context::background().with_cancel();
    let (child, _cancel_child) = ctx.with_cancel();
    let done = child.done_owned();
    let waiter = std::thread::spawn(move || {
        assert_no_runtime();
        block_on(done)
    });
    cancel.cancel();
    assert_eq!(waiter.join().unwrap(), Error::Canceled);
}

#[test]
fn after_func_runs_when_a_deadline_fires_without_a_runtime() {
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(10));
    let (ran, fired) = mpsc::channel();
    let _stop = ctx.after_func(move || {
        let _ = ran.send(tokio::runtime::Handle::try_current().is_err());
    });
    let no_runtime = fired
        .recv_timeout(Duration::from_secs(10))
        .expect("the callback ran");
    assert!(no_runtime, "the callback ran inside a tokio runtime");
    assert_eq!(ctx.err(), Some(Error::DeadlineExceeded));
}

#[test]
fn blocking_waits_and_values_work_on_plain_threads() {
    struct RequestId(u32);
    let root = Context::background().with_value(RequestId(7));
    let (ctx, cancel) = root.with_timeout(Duration::from_secs(60));
    let reader = {
        let ctx = ctx.clone();
        std::thread::spawn(move || {
            assert_no_runtime();
            let id = ctx.value::<RequestId>().map(|id| id.0);
            (id, ctx.wait_blocking())
        })
    };
    assert_eq!(ctx.wait_timeout(Duration::from_millis(1)), None);
    cancel.cancel();
    assert_eq!(reader.join().unwrap(), (Some(7), Error::Canceled));
}
