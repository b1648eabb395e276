//! Telling a worker loop to stop: a global flag, a channel, and a context.
//!
//! All three stop the worker. The flag is global (one switch for every
//! worker, reset by hand, no reason, no deadline); the channel is per worker
//! but must be threaded through by hand and closed exactly once; the context
//! composes: it carries a deadline and a cause, stops everything derived
//! from it, and a blocked worker wakes at once instead of at its next check.
//!
//! Run: `cargo run --example worker`

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ctx::Context;
use tokio::sync::oneshot;

include!("support/narration.rs");

static STOP: AtomicBool = AtomicBool::new(false);

async fn flag_worker(say: Say) {
    let mut rounds = 0u32;
    while !STOP.load(Ordering::Relaxed) {
        rounds += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    say(format!(
        "flag worker: saw the global flag after {} round(s)",
        rounds.min(1)
    ));
}

async fn channel_worker(mut stop: oneshot::Receiver<()>, say: Say) {
    let mut interval = tokio::time::interval(Duration::from_millis(5));
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = interval.tick() => {}
        }
    }
    say("channel worker: got the stop message".into());
}

async fn context_worker(ctx: Context, say: Say) {
    let mut interval = tokio::time::interval(Duration::from_millis(5));
    let err = loop {
        tokio::select! {
            err = ctx.done() => break err,
            _ = interval.tick() => {}
        }
    };
    let cause = ctx.cause().map(|c| c.to_string()).unwrap_or_default();
    say(format!("context worker: stopped: {err} (cause: {cause})"));
}

pub async fn story(say: Say) {
    STOP.store(false, Ordering::Relaxed);
    let flag = tokio::spawn(flag_worker(say.clone()));
    let (stop_tx, stop_rx) = oneshot::channel();
    let channel = tokio::spawn(channel_worker(stop_rx, say.clone()));
    let (ctx, cancel) = Context::background().with_cancel();
    let context = tokio::spawn(context_worker(ctx, say.clone()));

    tokio::time::sleep(Duration::from_millis(20)).await;
    say("main: stopping all three workers".into());
    STOP.store(true, Ordering::Relaxed);
    flag.await.expect("flag worker panicked");
    let _ = stop_tx.send(());
    channel.await.expect("channel worker panicked");
    cancel.cancel_with_cause(std::io::Error::other("shutting down"));
    context.await.expect("context worker panicked");
}

// `pub`: the tour and the tests include this file as a `pub mod` and never call it.
#[tokio::main]
pub async fn main() {
    story(Arc::new(|line| println!("{line}"))).await;
}
