//! A timeout around a slow call: A calls B with a 2 s budget; B would need
//! 3 s, notices the deadline between steps, and stops.
//!
//! Run: `cargo run --example timeout`

use std::sync::Arc;
use std::time::Duration;

use ctx::{Context, Error};

include!("support/narration.rs");

/// The budget A gives B.
pub const BUDGET: Duration = Duration::from_secs(2);

/// B: thirty steps of 100 ms; checks the context before each.
async fn b(ctx: &Context, say: &Say) -> Result<u32, Error> {
    let mut steps = 0;
    for _ in 0..30 {
        if let Err(err) = ctx.check() {
            say(format!("B: stopping early, {err}"));
            return Err(err);
        }
        // Sleeping, but also watching the context: B stops mid-step too.
        ctx.run(tokio::time::sleep(Duration::from_millis(100)))
            .await?;
        steps += 1;
    }
    Ok(steps)
}

/// A: gives B a budget and reports what happened.
async fn a(parent: &Context, budget: Duration, say: &Say) {
    let (ctx, _cancel) = parent.with_timeout(budget);
    say(format!("A: calling B with a {budget:?} budget"));
    match b(&ctx, say).await {
        Ok(steps) => say(format!("A: B finished {steps} steps")),
        Err(err) => say(format!("A: B failed: {err}")),
    }
}

pub async fn story(say: Say, budget: Duration) {
    a(&Context::background(), budget, &say).await;
}

// `pub`: the tour and the tests include this file as a `pub mod` and never call it.
#[tokio::main]
pub async fn main() {
    story(Arc::new(|line| println!("{line}")), BUDGET).await;
}
