//! Two dependent operations: the first one's failure halts the second.
//!
//! `operation1` fails after 100 ms and cancels the shared context with the
//! failure as its cause; `operation2`, which would need 500 ms, notices and
//! stops ("halted operation2"), and can tell why.
//!
//! Run: `cargo run --example halted`

use std::sync::Arc;
use std::time::Duration;

use ctx::Context;

include!("support/narration.rs");

#[derive(Debug)]
struct Operation1Failed;

impl std::fmt::Display for Operation1Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("operation1 failed")
    }
}

impl std::error::Error for Operation1Failed {}

async fn operation1(_ctx: &Context) -> Result<(), Operation1Failed> {
    tokio::time::sleep(Duration::from_millis(100)).await;
    Err(Operation1Failed)
}

async fn operation2(ctx: &Context, say: &Say) {
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_millis(500)) => say("operation2 done".into()),
        _ = ctx.done() => {
            let why = ctx.cause().map(|c| c.to_string()).unwrap_or_default();
            say(format!("halted operation2 (cause: {why})"));
        }
    }
}

pub async fn story(say: Say) {
    let (ctx, cancel) = Context::background().with_cancel();
    let first = tokio::spawn({
        let ctx = ctx.clone();
        async move {
            if let Err(err) = operation1(&ctx).await {
                cancel.cancel_with_cause(err);
            }
        }
    });
    operation2(&ctx, &say).await;
    first.await.expect("operation1 panicked");
}

// `pub`: the tour and the tests include this file as a `pub mod` and never call it.
#[tokio::main]
pub async fn main() {
    story(Arc::new(|line| println!("{line}"))).await;
}
