//! A 50 ms deadline that reports "context deadline exceeded" (Go's
//! `ExampleWithDeadline`).
//!
//! The work would take a second; the deadline ends it after 50 ms. Even
//! though the deadline will fire by itself, the guard is still kept: it
//! releases the timer if the work finishes first.
//!
//! Run: `cargo run --example deadline`

use std::sync::Arc;
use std::time::{Duration, Instant};

use ctx::Context;

include!("support/narration.rs");

pub async fn story(say: Say) {
    let started = Instant::now();
    let (ctx, _cancel) = Context::background().with_deadline(started + Duration::from_millis(50));
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_secs(1)) => say("overslept".into()),
        err = ctx.done() => say(format!("{err}")),
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(50),
        "a deadline never fires early"
    );
    say("the deadline ended the work, not the sleep".into());
}

// `pub`: the tour and the tests include this file as a `pub mod` and never call it.
#[tokio::main]
pub async fn main() {
    story(Arc::new(|line| println!("{line}"))).await;
}
