//! Every core example runs and tells the story it should. Each example's
//! logic is included from its file, so the test and `cargo run --example`
//! run the same code.

use std::sync::{Arc, Mutex};

// `pub mod`: each example's `pub fn main`, which only its own binary calls,
// is then reachable from this crate's root and not dead code here.
#[path = "../examples/deadline.rs"]
pub mod deadline;
#[path = "../examples/gen.rs"]
pub mod gen;
#[path = "../examples/halted.rs"]
pub mod halted;
#[path = "../examples/logid.rs"]
pub mod logid;
#[path = "../examples/stream.rs"]
pub mod stream;
#[path = "../examples/timeout.rs"]
pub mod timeout;
#[path = "../examples/worker.rs"]
pub mod worker;

include!("../examples/support/narration.rs");

fn recorder() -> (Say, Arc<Mutex<Vec<String>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    (Arc::new(move |line| sink.lock().unwrap().push(line)), lines)
}

fn take(lines: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
    lines.lock().unwrap().clone()
}

#[tokio::test]
async fn gen_stops_the_generator_task_by_canceling() {
    let (say, lines) = recorder();
    gen::story(say).await;
    assert_eq!(
        take(&lines),
        [
            "consumer: got 1",
            "consumer: got 2",
            "consumer: got 3",
            "consumer: got 4",
            "consumer: got 5",
            "consumer: done with 5 numbers, canceling the generator",
            "generator: stopping (context canceled), no task leaked",
        ]
    );
}

#[tokio::test]
async fn halted_operation2_stops_when_operation1_fails() {
    let (say, lines) = recorder();
    halted::story(say).await;
    assert_eq!(
        take(&lines),
        ["halted operation2 (cause: operation1 failed)"]
    );
}

#[tokio::test]
async fn worker_loops_stop_by_flag_channel_and_context() {
    let (say, lines) = recorder();
    worker::story(say).await;
    assert_eq!(
        take(&lines),
        [
            "main: stopping all three workers",
            "flag worker: saw the global flag after 1 round(s)",
            "channel worker: got the stop message",
            "context worker: stopped: context canceled (cause: shutting down)",
        ]
    );
}

#[tokio::test]
async fn deadline_of_50ms_reports_deadline_exceeded() {
    let (say, lines) = recorder();
    deadline::story(say).await;
    assert_eq!(
        take(&lines),
        [
            "context deadline exceeded",
            "the deadline ended the work, not the sleep"
        ]
    );
}

#[tokio::test]
async fn timeout_budget_stops_b_and_a_reports_it() {
    let (say, lines) = recorder();
    let started = std::time::Instant::now();
    timeout::story(say, timeout::BUDGET).await;
    let lines = take(&lines);
    assert_eq!(lines[0], "A: calling B with a 2s budget");
    assert_eq!(
        lines.last().unwrap(),
        "A: B failed: context deadline exceeded"
    );
    // B would need 3 s; it stopped at the 2 s budget (generous upper bound).
    let took = started.elapsed();
    assert!(
        took >= timeout::BUDGET && took < std::time::Duration::from_millis(2900),
        "{took:?}"
    );
}

#[test]
fn logid_reaches_every_layer_through_value() {
    let (say, lines) = recorder();
    logid::story(say);
    assert_eq!(
        take(&lines),
        [
            "[req 7] handler: GET /users/ada",
            "[req 7] service: checking permissions",
            "[req 7] repository: loading ada",
            "[req 7] handler: responding 42",
            "[req 8] handler: GET /users/bob",
            "[req 8] service: checking permissions",
            "[req 8] repository: loading bob",
            "[req 8] handler: responding 42",
            "[no request] server: idle",
        ]
    );
}

#[tokio::test]
async fn stream_produces_until_done_then_returns_err() {
    let (say, lines) = recorder();
    stream::story(say).await;
    assert_eq!(
        take(&lines),
        [
            "consumer: 1",
            "consumer: 4",
            "consumer: 9",
            "stream: returned context canceled"
        ]
    );
}
