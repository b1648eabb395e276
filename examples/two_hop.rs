//! A traced request through two services, client -> A -> B, all on
//! 127.0.0.1: the client's deadline shrinks at each hop, its W3C trace
//! context and its tenant (a request value of the application's own)
//! reach B, and a client that gives up at the top cancels the work in B.
//!
//! `cargo run --example two_hop --features net`; `tests/net_examples.rs`
//! runs the same story.
//!
//! A and B each wrap their router in `ContextLayer` (a context per request,
//! its deadline from `grpc-timeout`) and call out through `ClientLayer`
//! (which sends the time left on and aborts the call when the context
//! ends). Both layers also carry `TraceContext` (`traceparent`,
//! `tracestate`) and `Tenant` (`x-tenant`): registered with `.propagate`,
//! a value in the caller's context is a value of the next request context.
//! A makes its call to B in a task of its own, as a handler fanning out
//! would: nothing but the context ties that call to the client. At the end
//! each service's layer says how many of its requests were abandoned; run
//! alone, the example also prints each request's ending event (its cause,
//! how long it ran, the time its deadline had left).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use ctx::http::{
    ClientLayer, ClientService, ContextLayer, Propagate, RequestExt, RequestId, TraceContext,
};
use ctx::Context;
use http::{HeaderName, HeaderValue};
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

/// The trace the client's request belongs to, as a tracer would have
/// started it.
pub const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// The tenant a request is for: a request value of the application's own,
/// sent as `x-tenant`.
#[derive(Clone, Debug, PartialEq)]
pub struct Tenant(pub String);

impl Propagate for Tenant {
    const HEADER: HeaderName = HeaderName::from_static("x-tenant");

    fn encode(&self) -> Option<HeaderValue> {
        HeaderValue::from_str(&self.0).ok()
    }

    /// 1 to 32 of `a-z 0-9 -`: anything else from a client is no tenant.
    fn decode(value: &HeaderValue) -> Option<Tenant> {
        let bytes = value.as_bytes();
        let ok = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-';
        if bytes.is_empty() || bytes.len() > 32 || !bytes.iter().all(ok) {
            return None;
        }
        String::from_utf8(bytes.to_vec()).ok().map(Tenant)
    }
}

/// A service's server layer: a context per request, with the caller's
/// trace context and tenant in it.
fn server_layer(root: &Context) -> ContextLayer {
    ContextLayer::new(root)
        .propagate::<TraceContext>()
        .propagate::<Tenant>()
}

include!("support/narration.rs");

type HttpClient = ClientService<Client<HttpConnector, Empty<Bytes>>>;

fn http_client() -> HttpClient {
    ClientLayer::new()
        .propagate::<TraceContext>()
        .propagate::<Tenant>()
        .layer(Client::builder(TokioExecutor::new()).build_http())
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

/// B: `/fast` answers with the time it has left, the trace id and the
/// tenant; `/slow` works until its context ends.
fn service_b(layer: ContextLayer, b: B) -> Router {
    Router::new()
        .route(
            "/fast",
            get(|ctx: Context| async move {
                let trace = ctx.value::<TraceContext>().map_or("-", |t| t.trace_id());
                let tenant = ctx.value::<Tenant>().map_or("-", |t| t.0.as_str());
                format!("{} {trace} {tenant}", left_us(&ctx))
            }),
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
        .layer(layer)
}

#[derive(Clone)]
struct A {
    client: HttpClient,
    b: String,
    ended: mpsc::UnboundedSender<String>,
}

/// A: `/fast` calls B's `/fast` and answers with its own time left, B's
/// answer and the request id; `/slow` calls B's `/slow` from a task
/// holding its request context.
fn service_a(layer: ContextLayer, a: A) -> Router {
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
        .layer(layer)
}

async fn listen(app: Router) -> std::io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

/// What happened, for the test: the times left (µs) at the client, at A
/// and at B; the trace id and tenant B saw; the requests A's and B's
/// layers counted as abandoned.
#[derive(Debug)]
pub struct Outcome {
    pub left_us: [u128; 3],
    pub trace_at_b: String,
    pub tenant_at_b: String,
    pub abandoned: [u64; 2],
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
    let b_layer = server_layer(&root);
    let b = listen(service_b(b_layer.clone(), b)).await?;
    let a = A {
        client: http_client(),
        b,
        ended: a_ended,
    };
    let a_layer = server_layer(&root);
    let a = listen(service_a(a_layer.clone(), a)).await?;
    let client = http_client();

    // 1. The deadline shrinks at each hop; the trace context and the
    //    tenant come along.
    let id = RequestId::generate();
    let trace = TraceContext::parse(TRACEPARENT, None)
        .ok_or_else(|| std::io::Error::other("a valid traceparent"))?;
    let (ctx, _cancel) = Context::background()
        .with_value(id.clone())
        .with_value(trace.clone())
        .with_value(Tenant("acme".to_owned()))
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
    let mut words = body.split(' ').skip(2);
    let trace_at_b = words.next().unwrap_or_default().to_owned();
    let tenant_at_b = words.next().unwrap_or_default().to_owned();
    say(format!(
        "client: {at_client} us left, sends the request to A (trace {}, tenant acme)",
        trace.trace_id()
    ));
    say(format!("A: {at_a} us left, calls B"));
    say(format!(
        "B: {at_b} us left, trace {trace_at_b}, tenant {tenant_at_b}"
    ));
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

    // 3. Each layer counted how its requests ended (a context the layer
    //    ended is counted before it is canceled, so these are in).
    let abandoned = [a_layer.stats().abandoned(), b_layer.stats().abandoned()];
    say(format!("A: abandoned requests: {}", abandoned[0]));
    say(format!("B: abandoned requests: {}", abandoned[1]));

    Ok(Outcome {
        left_us: [at_client, at_a, at_b],
        trace_at_b,
        tenant_at_b,
        abandoned,
    })
}

/// Prints the layers' `request context ended` events (feature `tracing`,
/// on with `net`) with their fields, indented under the story: a real
/// service would use `tracing-subscriber`'s formatter.
struct PrintEndings;

impl tracing::Subscriber for PrintEndings {
    fn enabled(&self, meta: &tracing::Metadata<'_>) -> bool {
        meta.target().starts_with("ctx::http")
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Fields(String);
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                use std::fmt::Write;
                let _ = match field.name() {
                    "message" => write!(self.0, "{value:?}"),
                    name => write!(self.0, " {name}={value:?}"),
                };
            }
        }
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        if fields.0.starts_with("request context ended") {
            println!("    [{}] {}", event.metadata().level(), fields.0);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

// `pub`: the tests include this file as a `pub mod` and never call it.
#[tokio::main]
pub async fn main() -> std::io::Result<()> {
    tracing::subscriber::set_global_default(PrintEndings).map_err(std::io::Error::other)?;
    story(Arc::new(|line| println!("{line}"))).await?;
    Ok(())
}
