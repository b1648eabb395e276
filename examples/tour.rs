//! A narrated walk through ctx: the model, then each scenario in turn.
//!
//! Run: `cargo run --example tour`
//!
//! Every scenario is also its own example (`cargo run --example gen`, ...)
//! and is checked by a test (`tests/examples_*.rs`) that reads what it says.

use std::sync::Arc;
use std::time::Duration;

use ctx::{ctx, Context, Error};

// `pub mod`: each example's `pub fn main`, which only its own binary calls,
// is then reachable from this crate's root and not dead code here.
#[path = "crawler.rs"]
pub mod crawler;
#[path = "deadline.rs"]
pub mod deadline;
#[path = "fanout.rs"]
pub mod fanout;
#[path = "gen.rs"]
pub mod gen;
#[path = "halted.rs"]
pub mod halted;
#[path = "logid.rs"]
pub mod logid;
#[path = "stream.rs"]
pub mod stream;
#[path = "timeout.rs"]
pub mod timeout;
#[path = "worker.rs"]
pub mod worker;

include!("support/narration.rs");

fn chapter(title: &str, why: &str) {
    println!("\n== {title}\n   {why}\n");
}

fn say() -> Say {
    Arc::new(|line| println!("   {line}"))
}

/// `#[ctx]` adds `ctx: &ctx::Context` as the first parameter and, because
/// this returns a `Result` whose error converts from `ctx::Error`, races the
/// body against the context: a canceled call returns at once.
#[ctx]
async fn fetch_report(id: u64) -> Result<String, Error> {
    tokio::time::sleep(Duration::from_secs(30)).await; // slow backend
    Ok(format!("report {id}"))
}

/// `timeout = ...` runs the body under a child context with that budget.
#[ctx(timeout = Duration::from_millis(50))]
async fn with_budget() -> Result<Duration, Error> {
    let left = ctx.remaining().unwrap_or_default();
    tokio::time::sleep(Duration::from_secs(30)).await;
    Ok(left)
}

async fn macros_story(say: Say) {
    let (ctx, cancel) = Context::background().with_cancel();
    let started = std::time::Instant::now();
    let call = tokio::spawn({
        let ctx = ctx.clone();
        async move { fetch_report(&ctx, 7).await }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    cancel.cancel();
    let result = call.await.expect("the call panicked");
    say(format!(
        "fetch_report canceled mid-way returned {result:?} after {} ms, not 30 s",
        started.elapsed().as_millis() / 10 * 10
    ));
    say(format!(
        "with_budget returned {:?}",
        with_budget(&Context::background()).await
    ));
    say("and `let _ = ctx.with_cancel();` inside #[ctx] is a compile error: the guard would cancel at once".into());
}

#[tokio::main]
async fn main() {
    println!("ctx: Go's context for async Rust");
    println!("A Context is a node in a tree. It ends (is done) when its parent ends,");
    println!("when its deadline passes, or when its CancelGuard is canceled or dropped.");

    chapter(
        "1. gen: a generator that would leak",
        "Canceling the context ends a task that no channel close would reach.",
    );
    gen::story(say()).await;

    chapter(
        "2. halted: the first failure halts the second operation",
        "operation1 cancels the shared context with its error as the cause.",
    );
    halted::story(say()).await;

    chapter(
        "3. worker: flag, channel, context",
        "All three stop a loop; only the context also carries a deadline and a cause.",
    );
    worker::story(say()).await;

    chapter(
        "4. deadline: 50 ms",
        "A deadline ends the work with DeadlineExceeded, never early.",
    );
    deadline::story(say()).await;

    chapter(
        "5. timeout: A gives B a 2 s budget",
        "B checks its context between steps and stops when the budget is spent.",
    );
    timeout::story(say(), timeout::BUDGET).await;

    chapter(
        "6. logid: request-scoped values",
        "A RequestId put in once is read by every layer below through value().",
    );
    logid::story(say());

    chapter(
        "7. stream: produce until done",
        "The producer returns err() once the consumer has had enough.",
    );
    stream::story(say()).await;

    chapter(
        "8. #[ctx]: the parameter, prompt returns, timeouts",
        "The attribute threads ctx through and makes canceled calls return at once.",
    );
    macros_story(say()).await;

    chapter(
        "9. fanout: a request's three subtasks under one scope",
        "One failing subtask, or a client that hangs up, stops all three, with the cause.",
    );
    fanout::story(say()).await;

    chapter(
        "10. crawler: a bounded crawl",
        "set_limit and ready() keep at most N fetches in flight; the first broken page stops the rest.",
    );
    crawler::story(say()).await;

    println!("\nThat is the model. See README.md for the rest.");
}
