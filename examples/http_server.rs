//! An HTTP server whose handler takes two seconds and notices when the
//! client does not wait: Go's `r.Context()` example, on axum.
//!
//! ```text
//! cargo run --example http_server --features net           # listens on 127.0.0.1:8000
//! curl 127.0.0.1:8000/                 # wait 2 s: "request processed"
//! curl -m 0.1 127.0.0.1:8000/          # give up: the server says "request cancelled"
//! ```
//!
//! Ctrl-C cancels the root context of `#[ctx::main]`: the server stops
//! accepting, requests in flight see their context canceled and answer 503,
//! and the process exits, after at most [`GRACE`] even if a handler ignores
//! its context. `tests/net_examples.rs` drives all of it.

use std::future::IntoFuture;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use ctx::http::ContextLayer;
use ctx::Context;
use tokio::net::TcpListener;

/// How long the handler works.
pub const WORK: Duration = Duration::from_secs(2);

/// How long shutdown waits for requests in flight.
pub const GRACE: Duration = Duration::from_secs(5);

/// Where the example tells what happens: stderr, or a test's recorder.
pub type Say = Arc<dyn Fn(&str) + Send + Sync>;

/// The handler's state.
#[derive(Clone)]
pub struct App {
    say: Say,
    /// Subtasks spawned and not finished, for shutdown to wait for and the
    /// test to check that none is left.
    pub subtasks: Arc<AtomicUsize>,
    /// Subtasks that have not said how they ended yet (shutdown waits for
    /// these: the line is the last thing a subtask does), and the
    /// notification when none is left.
    unsaid: Arc<AtomicUsize>,
    idle: Arc<tokio::sync::Notify>,
}

impl App {
    pub fn new(say: Say) -> App {
        App {
            say,
            subtasks: Arc::new(AtomicUsize::new(0)),
            unsaid: Arc::new(AtomicUsize::new(0)),
            idle: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Waits until no subtask is left. At shutdown the layer answers the
    /// requests in flight itself and drops their handlers; their subtasks,
    /// detached, still have to see the cancel and stop.
    pub async fn subtasks_done(&self) {
        loop {
            // Made before the check: `notify_waiters` reaches it even if
            // the last subtask finishes in between.
            let idle = self.idle.notified();
            if self.unsaid.load(Ordering::SeqCst) == 0 {
                return;
            }
            idle.await;
        }
    }
}

/// The service: every request gets a context, a child of `root`.
pub fn router(root: &Context, app: App) -> Router {
    Router::new()
        .route("/", get(handler))
        .with_state(app)
        .layer(ContextLayer::new(root))
}

async fn handler(State(app): State<App>, ctx: Context) -> Result<&'static str, ctx::Error> {
    (app.say)("processing request");
    // When the client goes away, hyper drops this future, so nothing after
    // an `.await` here would run. The request context is canceled then;
    // the work runs in a task that holds it, sees that and stops.
    // Counted before it is spawned, so shutdown cannot miss it.
    app.subtasks.fetch_add(1, Ordering::SeqCst);
    app.unsaid.fetch_add(1, Ordering::SeqCst);
    let work = tokio::spawn(work(ctx.clone(), app));
    work.await.unwrap_or(Err(ctx::Error::Canceled))
}

async fn work(ctx: Context, app: App) -> Result<&'static str, ctx::Error> {
    let outcome = tokio::select! {
        () = tokio::time::sleep(WORK) => Ok("request processed\n"),
        err = ctx.done() => Err(err),
    };
    // Counted out before it says so: once the line is out, the task is
    // over. Shutdown is told after the line (`unsaid`), so it is never lost.
    app.subtasks.fetch_sub(1, Ordering::SeqCst);
    match outcome {
        Ok(_) => (app.say)("request processed"),
        Err(_) => (app.say)("request cancelled"),
    }
    if app.unsaid.fetch_sub(1, Ordering::SeqCst) == 1 {
        app.idle.notify_waiters();
    }
    outcome
}

/// Serves until `ctx` is done, then stops accepting and waits for the
/// requests in flight (whose contexts are children of `ctx`, so they end
/// too), at most [`GRACE`].
pub async fn serve(ctx: &Context, listener: TcpListener, app: Router) -> io::Result<()> {
    let stop = ctx.clone();
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            stop.done().await;
        })
        .into_future();
    tokio::select! {
        served = server => served,
        () = async {
            ctx.done().await;
            tokio::time::sleep(GRACE).await;
        } => Err(io::Error::new(io::ErrorKind::TimedOut, "requests still running after the grace period")),
    }
}

// `pub`: the tests include this file as a `pub mod` and never call it.
#[ctx::main]
pub async fn main() -> io::Result<()> {
    let addr = std::env::args().nth(1);
    let listener = TcpListener::bind(addr.as_deref().unwrap_or("127.0.0.1:8000")).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let app = App::new(Arc::new(|line| eprintln!("{line}")));
    serve(ctx, listener, router(ctx, app.clone())).await?;
    // The requests are answered; their subtasks stop too, within the grace
    // period (they watch the same, canceled, contexts).
    let _ = tokio::time::timeout(GRACE, app.subtasks_done()).await;
    println!(
        "shut down: {}",
        ctx.cause().map_or_else(String::new, |c| c.to_string())
    );
    Ok(())
}
