//! A request through two services, client -> A -> B, all on 127.0.0.1:
//! the client's deadline shrinks at each hop, and a client that gives up
//! at the top cancels the work in B.
//!
//! `cargo run --example two_hop --features net`; `tests/net_examples.rs`
//! runs the same story.
//!
//! A and B each wrap their router in `ContextLayer` (a context per request,
//! its deadline from `grpc-timeout`) and call out through `ClientLayer`
//! (which sends the time left on and aborts the call when the context
//! ends). A makes its call to B in a task of its own, as a handler fanning
//! out would: nothing but the context ties that call to the client.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use ctx::http::{ClientLayer, ClientService, ContextLayer, RequestExt, RequestId};
use ctx::Context;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tower::{Layer, ServiceExt};

/// The client's deadline for the first request.
pub const DEADLINE: Duration = Duration::from_secs(2);

include!("support/narration.rs");

type HttpClient = ClientService<Client<HttpConnector, Empty<Bytes>>>;

fn http_client() -> HttpClient {
    ClientLayer::new().layer(Client::builder(TokioExecutor::new()).build_http())
}

/// GETs `url` under `ctx`, returning the body as text.
async fn fetch(
    client: &HttpClient,
    ctx: &Context,
    url: &str,
) -> Result<String, ctx::http::ClientError> {
    let req = http::Request::get(url)
        .body(Empty::new())
        .expect("a valid request")
        .with_context(ctx);
    let body = client
        .clone()
        .oneshot(req)
        .await?
        .into_body()
        .collect()
        .await?;
    Ok(String::from_utf8_lossy(&body.to_bytes()).into_owned())
}

/// The time left, in microseconds, as the services report it.
fn left_us(ctx: &Context) -> u128 {
    ctx.remaining().map_or(0, |left| left.as_micros())
}

/// How a request context ended, as one line.
fn ending(ctx: &Context) -> String {
    match (ctx.err(), ctx.cause()) {
        (Some(err), Some(cause)) if !cause.is(err) => format!("{err} ({cause})"),
        (Some(err), _) => err.to_string(),
        (None, _) => "still live".to_owned(),
    }
}

/// Where B reports that a slow request started, and how its context ended.
#[derive(Clone)]
struct B {
    started: mpsc::UnboundedSender<()>,
    ended: mpsc::UnboundedSender<String>,
}

/// B: `/fast` answers with the time it has left; `/slow` works until its
/// context ends.
fn service_b(root: &Context, b: B) -> Router {
    Router::new()
        .route(
            "/fast",
            get(|ctx: Context| async move { left_us(&ctx).to_string() }),
        )
        .route(
            "/slow",
            get(|State(b): State<B>, ctx: Context| async move {
                let work = tokio::spawn(async move {
                    let _ = b.started.send(());
                    let err = ctx.done().await;
                    let _ = b.ended.send(ending(&ctx));
                    err
                });
                Err::<(), _>(work.await.unwrap_or(ctx::Error::Canceled))
            }),
        )
        .with_state(b)
        .layer(ContextLayer::new(root))
}

#[derive(Clone)]
struct A {
    client: HttpClient,
    b: String,
    ended: mpsc::UnboundedSender<String>,
}

/// A: `/fast` calls B's `/fast` and answers with both times left;
/// `/slow` calls B's `/slow` from a task holding its request context.
fn service_a(root: &Context, a: A) -> Router {
    Router::new()
        .route(
            "/fast",
            get(|State(a): State<A>, ctx: Context| async move {
                let mine = left_us(&ctx);
                let id = ctx
                    .value::<RequestId>()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                let theirs = fetch(&a.client, &ctx, &format!("{}/fast", a.b)).await?;
                Ok::<_, ctx::http::ClientError>(format!("{mine} {theirs} {id}"))
            }),
        )
        .route(
            "/slow",
            get(|State(a): State<A>, ctx: Context| async move {
                let call = tokio::spawn(async move {
                    let result = fetch(&a.client, &ctx, &format!("{}/slow", a.b)).await;
                    let _ = a.ended.send(ending(&ctx));
                    result
                });
                match call.await {
                    Ok(Ok(body)) => Ok(body),
                    _ => Err(ctx::Error::Canceled),
                }
            }),
        )
        .with_state(a)
        .layer(ContextLayer::new(root))
}

async fn listen(app: Router) -> std::io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

/// The times left (µs) at the client, at A and at B, for the test.
#[derive(Debug)]
pub struct Outcome {
    pub left_us: [u128; 3],
}

pub async fn story(say: Say) -> std::io::Result<Outcome> {
    let root = Context::background();
    let (b_started, mut b_starts) = mpsc::unbounded_channel();
    let (b_ended, mut b_endings) = mpsc::unbounded_channel();
    let (a_ended, mut a_endings) = mpsc::unbounded_channel();
    let b = B {
        started: b_started,
        ended: b_ended,
    };
    let b = listen(service_b(&root, b)).await?;
    let a = A {
        client: http_client(),
        b,
        ended: a_ended,
    };
    let a = listen(service_a(&root, a)).await?;
    let client = http_client();

    // 1. The deadline shrinks at each hop.
    let id = RequestId::generate();
    let (ctx, _cancel) = Context::background()
        .with_value(id.clone())
        .with_timeout(DEADLINE);
    let at_client = left_us(&ctx);
    let body = fetch(&client, &ctx, &format!("{a}/fast"))
        .await
        .map_err(std::io::Error::from)?;
    let mut fields = body.split(' ');
    let mut next = || -> std::io::Result<u128> {
        fields
            .next()
            .and_then(|field| field.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("unexpected answer: {body}")))
    };
    let (at_a, at_b) = (next()?, next()?);
    say(format!(
        "client: {at_client} us left, sends the request to A"
    ));
    say(format!("A: {at_a} us left, calls B"));
    say(format!("B: {at_b} us left"));
    let same_id = body.ends_with(&format!(" {id}"));
    say(format!("the request id reached A and B: {same_id}"));

    // 2. The client gives up: the work in B stops.
    let (ctx, give_up) = Context::background().with_cancel();
    let call = tokio::spawn({
        let client = client.clone();
        async move { fetch(&client, &ctx, &format!("{a}/slow")).await }
    });
    b_starts
        .recv()
        .await
        .ok_or_else(|| std::io::Error::other("B stopped"))?;
    say("B: working on the slow request".to_owned());
    say("client: gives up".to_owned());
    give_up.cancel();
    let _ = call.await;
    let in_a = a_endings.recv().await.unwrap_or_default();
    say(format!("A: request context ended: {in_a}"));
    let in_b = b_endings.recv().await.unwrap_or_default();
    say(format!("B: request context ended: {in_b}"));

    Ok(Outcome {
        left_us: [at_client, at_a, at_b],
    })
}

// `pub`: the tests include this file as a `pub mod` and never call it.
#[tokio::main]
pub async fn main() -> std::io::Result<()> {
    story(Arc::new(|line| println!("{line}"))).await?;
    Ok(())
}
