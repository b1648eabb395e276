//! `#[ctx]` on a `fn` that returns a future it builds from an async block
//! (`Box::pin(async move { .. })`, `async move { .. }`, `.boxed()`): the
//! checks go into the block, which gets its own handle on `ctx`.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ctx::{ctx, Context, Error};
use futures::future::{BoxFuture, FutureExt};

const FOREVER: Duration = Duration::from_secs(30);
const PROMPT: Duration = Duration::from_secs(1);

fn canceled() -> Context {
    let (ctx, cancel) = Context::background().with_cancel();
    cancel.cancel();
    ctx
}

/// A trait written without async-trait, as tower-style services are.
trait Service: Send + Sync {
    #[ctx]
    fn call(&self, id: u32) -> Pin<Box<dyn Future<Output = Result<u32, Error>> + Send + '_>>;

    #[ctx]
    fn call_static(&self, id: u32) -> BoxFuture<'static, Result<u32, Error>>;
}

#[derive(Default)]
struct Slow {
    started: Arc<AtomicUsize>,
}

impl Service for Slow {
    #[ctx]
    fn call(&self, id: u32) -> Pin<Box<dyn Future<Output = Result<u32, Error>> + Send + '_>> {
        // Runs at the call, as written.
        let started = &self.started;
        Box::pin(async move {
            started.fetch_add(1, Ordering::SeqCst);
            ctx.check()?;
            if id == 99 {
                tokio::time::sleep(FOREVER).await;
            }
            Ok(id + 1)
        })
    }

    #[ctx(timeout = Duration::from_millis(50))]
    fn call_static(&self, id: u32) -> BoxFuture<'static, Result<u32, Error>> {
        let started = Arc::clone(&self.started);
        async move {
            started.fetch_add(1, Ordering::SeqCst);
            // A 'static future: `ctx` inside is its own handle.
            assert!(ctx.deadline().is_some());
            tokio::time::sleep(Duration::from_millis(u64::from(id))).await;
            Ok(id)
        }
        .boxed()
    }
}

#[ctx]
fn plain(id: u32) -> impl Future<Output = Result<u32, Error>> {
    async move {
        ctx.check()?;
        Ok(id)
    }
}

#[ctx(cooperative)]
fn cooperative(steps: u32) -> impl Future<Output = Result<u32, Error>> {
    async move {
        let mut done = 0;
        while done < steps {
            ctx.check()?;
            done += 1;
            tokio::task::yield_now().await;
        }
        Ok(done)
    }
}

#[ctx]
fn not_a_result() -> impl Future<Output = String> {
    async move { format!("{ctx:?}") }
}

#[tokio::test]
async fn a_returned_future_yields_its_value() {
    let root = Context::background();
    assert_eq!(Slow::default().call(&root, 1).await, Ok(2));
    assert_eq!(Slow::default().call_static(&root, 1).await, Ok(1));
    assert_eq!(plain(&root, 3).await, Ok(3));
    assert_eq!(cooperative(&root, 3).await, Ok(3));
    assert_eq!(not_a_result(&root).await, "background");
}

#[tokio::test]
async fn a_canceled_call_returns_without_polling_the_block() {
    let slow = Slow::default();
    assert_eq!(slow.call(&canceled(), 1).await, Err(Error::Canceled));
    assert_eq!(slow.call_static(&canceled(), 1).await, Err(Error::Canceled));
    assert_eq!(slow.started.load(Ordering::SeqCst), 0, "a block ran");
    assert_eq!(plain(&canceled(), 3).await, Err(Error::Canceled));
    assert_eq!(cooperative(&canceled(), 3).await, Err(Error::Canceled));
}

#[tokio::test]
async fn a_budget_stops_the_block() {
    let slow = Slow::default();
    let (budget, _cancel) = Context::background().with_timeout(Duration::from_millis(50));
    let at = Instant::now();
    assert_eq!(slow.call(&budget, 99).await, Err(Error::DeadlineExceeded));
    assert!(at.elapsed() < PROMPT, "took {:?}", at.elapsed());
    // Its own `timeout = 50ms`.
    let at = Instant::now();
    assert_eq!(
        slow.call_static(&Context::background(), 10_000).await,
        Err(Error::DeadlineExceeded)
    );
    assert!(at.elapsed() < PROMPT, "took {:?}", at.elapsed());
}

#[tokio::test]
async fn a_static_future_outlives_the_borrow_of_ctx() {
    let slow = Slow::default();
    let future = {
        let (short_lived, _cancel) = Context::background().with_cancel();
        slow.call_static(&short_lived, 1)
        // `short_lived` and its guard drop here: the future's handle
        // was canceled with it.
    };
    assert_eq!(future.await, Err(Error::Canceled));
}
