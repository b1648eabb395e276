//! An outgoing HTTP request with a 100 ms timeout, against a slow server
//! on 127.0.0.1: the call fails with `DeadlineExceeded` after about 100 ms,
//! and the server sees its request context end at the same time.
//!
//! `cargo run --example http_client --features net`; `tests/net_examples.rs`
//! runs the same story and checks the times.
//!
//! The client is hyper-util's, wrapped in `ctx::http::ClientLayer`: the
//! request carries its context (`with_context`), the layer sends the time
//! left as `grpc-timeout` and drops the call when the context is done.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use ctx::http::{ClientLayer, ContextLayer, RequestExt};
use ctx::Context;
use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tower::{Layer, ServiceExt};

/// The client's timeout.
pub const TIMEOUT: Duration = Duration::from_millis(100);

/// How long the slow server would take.
pub const SLOW: Duration = Duration::from_secs(10);

include!("support/narration.rs");

/// What happened, for the test to check.
#[derive(Debug)]
pub struct Outcome {
    /// How the call failed (`None`: it succeeded).
    pub client: Option<ctx::Error>,
    /// How long the call took.
    pub elapsed: Duration,
    /// How the server's request context ended, and how long after the call
    /// started.
    pub server: (ctx::Error, Duration),
}

/// The slow server: its handler's work watches the request context, and
/// reports how it ended on `ended`.
async fn slow_server(
    ended: mpsc::UnboundedSender<(ctx::Error, String)>,
) -> std::io::Result<String> {
    async fn handler(
        State(ended): State<mpsc::UnboundedSender<(ctx::Error, String)>>,
        ctx: Context,
    ) -> Result<&'static str, ctx::Error> {
        // In a task of its own, so it outlives the handler future that hyper
        // drops when the client goes away.
        let work = tokio::spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(SLOW) => Ok("finally"),
                err = ctx.done() => {
                    let cause = ctx.cause().map(|c| c.to_string()).unwrap_or_default();
                    let _ = ended.send((err, cause));
                    Err(err)
                }
            }
        });
        work.await.unwrap_or(Err(ctx::Error::Canceled))
    }
    let app = Router::new()
        .route("/", get(handler))
        .with_state(ended)
        .layer(ContextLayer::new(&Context::background()));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

pub async fn story(say: Say) -> std::io::Result<Outcome> {
    let (ended, mut server_ended) = mpsc::unbounded_channel();
    let url = slow_server(ended).await?;

    let client = ClientLayer::new().layer(Client::builder(TokioExecutor::new()).build_http());
    // From before the context exists: its deadline is at most TIMEOUT after.
    let start = Instant::now();
    let (ctx, _cancel) = Context::background().with_timeout(TIMEOUT);
    let req = http::Request::get(url)
        .body(Empty::<Bytes>::new())
        .map_err(std::io::Error::other)?
        .with_context(&ctx);

    let result = client.oneshot(req).await;
    let elapsed = start.elapsed();
    let client = match result {
        Ok(resp) => {
            say(format!("client: got {} (unexpected)", resp.status()));
            None
        }
        Err(err) => {
            say(format!(
                "client: request failed after {} ms: {err}",
                elapsed.as_millis()
            ));
            err.context_error()
        }
    };

    let (server, cause) = server_ended
        .recv()
        .await
        .ok_or_else(|| std::io::Error::other("the server stopped"))?;
    let server_elapsed = start.elapsed();
    say(format!(
        "server: request context ended after {} ms: {cause}",
        server_elapsed.as_millis()
    ));
    Ok(Outcome {
        client,
        elapsed,
        server: (server, server_elapsed),
    })
}

// `pub`: the tests include this file as a `pub mod` and never call it.
#[tokio::main]
pub async fn main() -> std::io::Result<()> {
    let outcome = story(Arc::new(|line| println!("{line}"))).await?;
    assert_eq!(outcome.client, Some(ctx::Error::DeadlineExceeded));
    Ok(())
}
