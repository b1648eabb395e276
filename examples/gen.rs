//! A generator task that would leak without cancellation (Go's `ExampleWithCancel`).
//!
//! `gen` starts a task that sends 1, 2, 3, ... into a channel. The consumer
//! stops after 5; without a way to tell the generator, its task would stay
//! blocked on a full channel forever. Canceling the context ends it.
//!
//! Run: `cargo run --example gen`

use std::sync::Arc;

use ctx::Context;
use tokio::sync::mpsc;

include!("support/narration.rs");

/// Sends 1, 2, 3, ... until `ctx` is done; returns the task so callers can
/// see it end.
fn gen(ctx: Context, say: Say) -> (mpsc::Receiver<u64>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(1);
    let task = tokio::spawn(async move {
        let mut n = 1;
        loop {
            tokio::select! {
                err = ctx.done() => {
                    say(format!("generator: stopping ({err}), no task leaked"));
                    return;
                }
                sent = tx.send(n) => {
                    if sent.is_err() {
                        return;
                    }
                    n += 1;
                }
            }
        }
    });
    (rx, task)
}

pub async fn story(say: Say) {
    let (ctx, cancel) = Context::background().with_cancel();
    let (mut numbers, generator) = gen(ctx, say.clone());
    while let Some(n) = numbers.recv().await {
        say(format!("consumer: got {n}"));
        if n == 5 {
            break;
        }
    }
    say("consumer: done with 5 numbers, canceling the generator".into());
    // The receiver is still alive: the generator is not stopped by a closed
    // channel but by the context.
    cancel.cancel();
    generator.await.expect("generator task panicked");
    drop(numbers);
}

// `pub`: the tour and the tests include this file as a `pub mod` and never call it.
#[tokio::main]
pub async fn main() {
    story(Arc::new(|line| println!("{line}"))).await;
}
