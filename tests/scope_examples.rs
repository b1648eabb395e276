//! The scope examples run and tell the story they should. Each example's
//! logic is included from its file, so the test and `cargo run --example`
//! run the same code.

use std::sync::{Arc, Mutex};

// `pub mod`: each example's `pub fn main`, which only its own binary calls,
// is then reachable from this crate's root and not dead code here.
#[path = "../examples/crawler.rs"]
pub mod crawler;
#[path = "../examples/fanout.rs"]
pub mod fanout;

fn recorder() -> (fanout::Say, Arc<Mutex<Vec<String>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    (Arc::new(move |line| sink.lock().unwrap().push(line)), lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_stops_all_three_subtasks_on_a_failure_or_a_canceled_request() {
    let (say, lines) = recorder();
    fanout::story(say).await;
    assert_eq!(
        *lines.lock().unwrap(),
        [
            "request 1, every backend answers:",
            "  identity: done",
            "  database: done",
            "  token:    done",
            "  -> 200 OK: alice has 3 orders",
            "request 2, the token is expired:",
            "  identity: stopped early (context canceled; cause: unauthorized: token expired)",
            "  database: stopped early (context canceled; cause: unauthorized: token expired)",
            "  token:    failed: unauthorized: token expired",
            "  -> error: unauthorized: token expired (answered without waiting for the slow calls)",
            "request 3, the client hangs up:",
            "  identity: stopped early (context canceled; cause: client disconnected)",
            "  database: stopped early (context canceled; cause: client disconnected)",
            "  token:    stopped early (context canceled; cause: client disconnected)",
            "  -> error: context canceled (answered without waiting for the slow calls)",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crawler_respects_its_limit_and_stops_at_the_first_broken_page() {
    let (say, lines) = recorder();
    crawler::story(say).await;
    assert_eq!(
        *lines.lock().unwrap(),
        [
            "crawl 1: Ok(()), 24 pages fetched",
            "  first pages: / /about /blog /blog/1 /blog/10",
            "  fetches in flight stayed within the limit of 4: true",
            "crawl 2 failed: GET /docs/broken: status 500",
            "  stopped before fetching the whole site: true",
        ]
    );
}

#[tokio::test]
async fn crawler_under_a_canceled_request_fetches_nothing() {
    let (ctx, cancel) = ctx::Context::background().with_cancel();
    cancel.cancel();
    let web = Arc::new(crawler::Web::site(false));
    let (result, crawl) = crawler::crawl(&ctx, web, &["/"], 2).await;
    assert!(matches!(
        result,
        Err(crawler::CrawlError::Ctx(ctx::Error::Canceled))
    ));
    assert!(crawl.fetched().is_empty());
}
