//! Every correct way to keep a cancel guard compiles without a lostcancel
//! error or any warning.
#![deny(warnings)]

use std::time::{Duration, Instant};

use ctx::{ctx, CancelGuard, Context};

struct Worker {
    ctx: Context,
    _cancel: CancelGuard,
}

fn keep(guard: CancelGuard) -> CancelGuard {
    guard
}

#[ctx]
fn bound_to_underscore_name() -> bool {
    let (child, _cancel) = ctx.with_cancel();
    child.is_done()
}

#[ctx]
fn bound_to_a_name_and_canceled_on_some_paths(fail: bool) -> Result<bool, ctx::Error> {
    let (child, cancel) = ctx.with_timeout(Duration::from_secs(1));
    if fail {
        cancel.cancel();
        return child.check().map(|()| false);
    }
    let done = child.is_done();
    drop(cancel);
    Ok(done)
}

#[ctx]
fn moved_into_a_struct() -> Worker {
    let (child, cancel) = ctx.with_deadline(Instant::now() + Duration::from_secs(1));
    Worker {
        ctx: child,
        _cancel: cancel,
    }
}

#[ctx]
fn returned() -> (Context, CancelGuard) {
    ctx.with_timeout_cause(Duration::from_secs(1), std::fmt::Error)
}

#[ctx]
fn returned_after_binding() -> (Context, CancelGuard) {
    let pair = ctx.with_cancel();
    pair
}

#[ctx]
fn passed_to_a_function() -> CancelGuard {
    let (_child, cancel) = ctx.with_deadline_cause(Instant::now(), std::fmt::Error);
    keep(cancel)
}

#[ctx]
fn handle_kept_for_another_task() -> bool {
    let (child, cancel) = ctx.with_cancel();
    let handle = cancel.handle();
    handle.cancel();
    drop(cancel);
    child.is_done()
}

#[ctx]
fn context_discarded_guard_kept() -> CancelGuard {
    let (_, cancel) = ctx.with_cancel();
    cancel
}

#[ctx]
fn guard_used_by_a_temporary_in_one_statement() -> bool {
    // The pair lives until the end of the statement: the call sees a live
    // context.
    bound_to_underscore_name(&ctx.with_cancel().0)
}

#[ctx]
async fn in_closures_and_async_blocks() -> bool {
    let make = || ctx.with_cancel();
    let (child, _cancel) = make();
    let task = async move {
        let (grandchild, _cancel) = child.with_cancel();
        grandchild.is_done()
    };
    task.await
}

#[ctx]
fn with_signals() -> std::io::Result<bool> {
    let (child, _stop) = ctx::signal::notify(ctx)?;
    Ok(child.is_done())
}

fn main() {
    let root = Context::background();
    assert!(!bound_to_underscore_name(&root));
    assert_eq!(
        bound_to_a_name_and_canceled_on_some_paths(&root, false),
        Ok(false)
    );
    assert!(bound_to_a_name_and_canceled_on_some_paths(&root, true).is_err());
    let worker = moved_into_a_struct(&root);
    assert!(!worker.ctx.is_done());
    let (child, _cancel) = returned(&root);
    assert!(!child.is_done());
    let (child, _cancel) = returned_after_binding(&root);
    assert!(!child.is_done());
    let _cancel = passed_to_a_function(&root);
    assert!(handle_kept_for_another_task(&root));
    let _cancel = context_discarded_guard_kept(&root);
    assert!(!guard_used_by_a_temporary_in_one_statement(&root));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert!(!runtime.block_on(in_closures_and_async_blocks(&root)));
    assert_eq!(with_signals(&root).unwrap(), false);
}
