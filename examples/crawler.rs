//! A bounded crawler: at most N fetches at once, and one failure stops all.
//!
//! The crawl is one `ctx::scope`. `set_limit` bounds the fetches in flight;
//! the body feeds the seed URLs with `ready().await` before each spawn, so it
//! never queues more than the limit (Go's blocking `Group.Go`); each fetch
//! spawns the links it finds (spawning queues, so a task never waits for a
//! slot while holding its own). A page that fails cancels the crawl: queued
//! fetches never start, running ones see their context canceled, and the
//! scope reports the failure once every fetch has stopped.
//!
//! The web here is an in-memory site with simulated latency.
//!
//! Run: `cargo run --example crawler`

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ctx::{Context, Scope};

include!("support/narration.rs");

/// A fetch that failed, or the crawl's context ending.
#[derive(Debug)]
pub enum CrawlError {
    Ctx(ctx::Error),
    Status { url: String, status: u16 },
}

impl From<ctx::Error> for CrawlError {
    fn from(err: ctx::Error) -> Self {
        CrawlError::Ctx(err)
    }
}

impl fmt::Display for CrawlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CrawlError::Ctx(err) => write!(f, "{err}"),
            CrawlError::Status { url, status } => write!(f, "GET {url}: status {status}"),
        }
    }
}

impl std::error::Error for CrawlError {}

/// An in-memory web site: each page's links, or an error status.
pub struct Web {
    pages: HashMap<String, Result<Vec<String>, u16>>,
    latency: Duration,
}

impl Web {
    /// A site of 24 pages: a home page, an about page, two sections of an
    /// index and ten pages each, all linking back home. With `broken`, one
    /// docs page also links to a page that fails.
    pub fn site(broken: bool) -> Web {
        let mut pages = HashMap::new();
        let home = vec!["/docs".into(), "/blog".into(), "/about".into()];
        pages.insert("/".to_string(), Ok(home));
        pages.insert("/about".to_string(), Ok(vec!["/".into()]));
        for section in ["docs", "blog"] {
            let index = (1..=10).map(|i| format!("/{section}/{i}")).collect();
            pages.insert(format!("/{section}"), Ok(index));
            for i in 1..=10 {
                let mut links = vec![
                    "/".to_string(),
                    format!("/{section}"),
                    format!("/{section}/{}", i % 10 + 1),
                ];
                if broken && section == "docs" && i == 7 {
                    links.push("/docs/broken".into());
                }
                pages.insert(format!("/{section}/{i}"), Ok(links));
            }
        }
        pages.insert("/docs/broken".to_string(), Err(500));
        Web {
            pages,
            latency: Duration::from_millis(2),
        }
    }

    /// Fetches `url`'s links, taking `latency`, unless `ctx` ends first.
    async fn fetch(&self, ctx: &Context, url: &str) -> Result<Vec<String>, CrawlError> {
        ctx.run(tokio::time::sleep(self.latency)).await?;
        match self.pages.get(url) {
            Some(Ok(links)) => Ok(links.clone()),
            Some(Err(status)) => Err(CrawlError::Status {
                url: url.to_string(),
                status: *status,
            }),
            None => Err(CrawlError::Status {
                url: url.to_string(),
                status: 404,
            }),
        }
    }
}

/// What a crawl saw.
#[derive(Default)]
pub struct Crawl {
    seen: Mutex<BTreeSet<String>>,
    fetched: Mutex<BTreeSet<String>>,
    in_flight: AtomicUsize,
    /// The most fetches ever in flight at once.
    pub peak: AtomicUsize,
}

impl Crawl {
    pub fn fetched(&self) -> Vec<String> {
        self.fetched.lock().unwrap().iter().cloned().collect()
    }
}

/// Spawns a fetch of `url` unless it was seen before.
fn visit(s: &Scope<CrawlError>, web: &Arc<Web>, crawl: &Arc<Crawl>, url: String) {
    if !crawl.seen.lock().unwrap().insert(url.clone()) {
        return;
    }
    let (s2, web, crawl) = (s.clone(), web.clone(), crawl.clone());
    s.spawn(move |ctx| async move {
        let now = crawl.in_flight.fetch_add(1, SeqCst) + 1;
        crawl.peak.fetch_max(now, SeqCst);
        let links = web.fetch(&ctx, &url).await;
        crawl.in_flight.fetch_sub(1, SeqCst);
        let links = links?;
        crawl.fetched.lock().unwrap().insert(url);
        for link in links {
            visit(&s2, &web, &crawl, link);
        }
        Ok(())
    });
}

/// Crawls from `seeds` with at most `limit` fetches in flight.
pub async fn crawl(
    ctx: &Context,
    web: Arc<Web>,
    seeds: &[&str],
    limit: usize,
) -> (Result<(), CrawlError>, Arc<Crawl>) {
    let crawl = Arc::new(Crawl::default());
    let c = crawl.clone();
    let seeds: Vec<String> = seeds.iter().map(|s| s.to_string()).collect();
    let result = ctx::scope(ctx, |s| async move {
        s.set_limit(limit);
        for seed in seeds {
            s.ready().await?; // backpressure: wait for a free slot
            visit(&s, &web, &c, seed);
        }
        Ok(())
    })
    .await;
    (result, crawl)
}

pub async fn story(say: Say) {
    const LIMIT: usize = 4;
    let ctx = Context::background();

    let (result, seen) = crawl(&ctx, Arc::new(Web::site(false)), &["/", "/blog/5"], LIMIT).await;
    let fetched = seen.fetched();
    say(format!(
        "crawl 1: {result:?}, {} pages fetched",
        fetched.len()
    ));
    say(format!("  first pages: {}", fetched[..5].join(" ")));
    let peak = seen.peak.load(SeqCst);
    say(format!(
        "  fetches in flight stayed within the limit of {LIMIT}: {}",
        peak <= LIMIT
    ));

    let (result, seen) = crawl(&ctx, Arc::new(Web::site(true)), &["/docs/6"], LIMIT).await;
    match result {
        Ok(()) => say("crawl 2: unexpectedly complete".to_string()),
        Err(err) => say(format!("crawl 2 failed: {err}")),
    }
    let fetched = seen.fetched();
    say(format!(
        "  stopped before fetching the whole site: {}",
        fetched.len() < 24
    ));
}

// `pub`: the tour and the tests include this file as a `pub mod` and never call it.
#[tokio::main]
pub async fn main() {
    story(Arc::new(|line| println!("{line}"))).await;
}
