//! The stream pattern: produce values until the work fails or the context
//! is done, then return `err()` (from Go's context documentation).
//!
//! Run: `cargo run --example stream`

use std::sync::Arc;

use ctx::{Context, Error};
use tokio::sync::mpsc;

include!("support/narration.rs");

async fn do_something(ctx: &Context, n: u64) -> Result<u64, Error> {
    ctx.check()?;
    Ok(n * n)
}

/// Sends values to `out` until `do_something` fails or `ctx` is done.
async fn stream(ctx: &Context, out: mpsc::Sender<u64>) -> Result<(), Error> {
    let mut n = 1;
    loop {
        let value = do_something(ctx, n).await?;
        tokio::select! {
            err = ctx.done() => return Err(err),
            sent = out.send(value) => {
                if sent.is_err() {
                    return Ok(()); // the consumer is gone: a normal end
                }
            }
        }
        n += 1;
    }
}

pub async fn story(say: Say) {
    let (ctx, cancel) = Context::background().with_cancel();
    let (tx, mut rx) = mpsc::channel(1);
    let producer = tokio::spawn({
        let ctx = ctx.clone();
        async move { stream(&ctx, tx).await }
    });
    for _ in 0..3 {
        let value = rx.recv().await.expect("the stream ended early");
        say(format!("consumer: {value}"));
    }
    cancel.cancel();
    match producer.await.expect("producer panicked") {
        Ok(()) => say("stream: ended normally".into()),
        Err(err) => say(format!("stream: returned {err}")),
    }
}

// `pub`: the tour and the tests include this file as a `pub mod` and never call it.
#[tokio::main]
pub async fn main() {
    story(Arc::new(|line| println!("{line}"))).await;
}
