//! Request values on the wire: a custom `Propagate` type and the W3C
//! headers (`traceparent`, `tracestate`, `baggage`) travel from a caller's
//! context to the next service's request context, over a real two-hop
//! HTTP chain (client -> A -> B on 127.0.0.1) and a real tonic call; what
//! a client sends that is malformed or too large is dropped, and nothing
//! of it reaches the next hop.
//!
//! B reports its request context and the raw headers it received, so a
//! test sees both what was decoded and what went over the wire.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use ctx::http::{
    Baggage, ClientLayer, ClientService, ContextLayer, Propagate, RequestExt, RequestId,
    TraceContext,
};
use ctx::Context;
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tower::{Layer, ServiceExt};

// `pub mod`: the example's `pub fn main`, which only its own binary calls,
// is then reachable from this crate's root and not dead code here.
#[path = "../examples/grpc.rs"]
pub mod grpc;

/// Generous: how long anything prompt may take on a busy two-core machine.
const PATIENCE: Duration = Duration::from_secs(5);

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// A value of the application's own: the tenant a request is for.
#[derive(Clone, Debug, PartialEq)]
struct Tenant(String);

impl Propagate for Tenant {
    const HEADER: HeaderName = HeaderName::from_static("x-tenant");

    fn encode(&self) -> Option<HeaderValue> {
        HeaderValue::from_str(&self.0).ok()
    }

    /// 1 to 32 of `a-z 0-9 -`; anything else is no tenant.
    fn decode(value: &HeaderValue) -> Option<Tenant> {
        let bytes = value.as_bytes();
        let ok = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-';
        if bytes.is_empty() || bytes.len() > 32 || !bytes.iter().all(ok) {
            return None;
        }
        Some(Tenant(String::from_utf8(bytes.to_vec()).ok()?))
    }
}

/// The values of a request context, as text, for comparing.
#[derive(Debug, Default, PartialEq)]
struct Values {
    tenant: Option<String>,
    traceparent: Option<String>,
    tracestate: Option<String>,
    baggage: Option<String>,
}

impl Values {
    fn of(ctx: &Context) -> Values {
        let trace = ctx.value::<TraceContext>();
        Values {
            tenant: ctx.value::<Tenant>().map(|t| t.0.clone()),
            traceparent: trace.map(|t| t.traceparent().to_str().unwrap().to_owned()),
            tracestate: trace
                .and_then(TraceContext::tracestate)
                .map(|s| s.to_str().unwrap().to_owned()),
            baggage: ctx.value::<Baggage>().map(|b| b.as_str().to_owned()),
        }
    }
}

fn server_layer(root: &Context) -> ContextLayer {
    ContextLayer::new(root)
        .propagate::<Tenant>()
        .propagate::<TraceContext>()
        .propagate::<Baggage>()
}

type HttpClient = ClientService<Client<HttpConnector, Empty<Bytes>>>;

fn http_client() -> HttpClient {
    ClientLayer::new()
        .propagate::<Tenant>()
        .propagate::<TraceContext>()
        .propagate::<Baggage>()
        .layer(Client::builder(TokioExecutor::new()).build_http())
}

async fn serve(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// What a service saw: its request context's values and id, and the
/// headers that came over the wire.
#[derive(Debug)]
struct Seen {
    values: Values,
    id: String,
    headers: HeaderMap,
}

type Report = mpsc::UnboundedSender<Seen>;

/// B: reports what it saw.
fn service_b(report: Report) -> Router {
    Router::new()
        .route(
            "/",
            get(
                |State(report): State<Report>, ctx: Context, headers: HeaderMap| async move {
                    let id = ctx.value::<RequestId>().unwrap().to_string();
                    let _ = report.send(Seen {
                        values: Values::of(&ctx),
                        id,
                        headers,
                    });
                    "ok"
                },
            ),
        )
        .with_state(report)
        .layer(server_layer(&Context::background()))
}

#[derive(Clone)]
struct A {
    report: Report,
    client: HttpClient,
    b: String,
}

/// A: reports what it saw, then calls B under its request context.
/// `/forward` adds a baggage entry of its own; `/own-headers` sets the
/// outgoing `traceparent` and `x-tenant` itself, as a tracer would.
fn service_a(a: A) -> Router {
    async fn call_b(a: &A, ctx: &Context, own_headers: bool) -> String {
        let mut req = http::Request::get(&a.b)
            .body(Empty::new())
            .unwrap()
            .with_context(ctx);
        if own_headers {
            let headers = req.headers_mut();
            headers.insert(
                "traceparent",
                HeaderValue::from_static("00-11111111111111111111111111111111-2222222222222222-01"),
            );
            headers.insert("x-tenant", HeaderValue::from_static("set-by-a"));
        }
        match a.client.clone().oneshot(req).await {
            Ok(resp) => resp.status().to_string(),
            Err(err) => err.to_string(),
        }
    }
    Router::new()
        .route(
            "/forward",
            get(
                |State(a): State<A>, ctx: Context, headers: HeaderMap| async move {
                    report(&a, &ctx, headers);
                    // The nearest value wins: B gets A's baggage.
                    let more = ctx
                        .value::<Baggage>()
                        .cloned()
                        .unwrap_or_default()
                        .with("hop", "a")
                        .unwrap();
                    call_b(&a, &ctx.with_value(more), false).await
                },
            ),
        )
        .route(
            "/own-headers",
            get(
                |State(a): State<A>, ctx: Context, headers: HeaderMap| async move {
                    report(&a, &ctx, headers);
                    call_b(&a, &ctx, true).await
                },
            ),
        )
        .with_state(a)
        .layer(server_layer(&Context::background()))
}

fn report(a: &A, ctx: &Context, headers: HeaderMap) {
    let _ = a.report.send(Seen {
        values: Values::of(ctx),
        id: ctx.value::<RequestId>().unwrap().to_string(),
        headers,
    });
}

/// A and B on loopback; what each saw arrives on its receiver.
struct Chain {
    a: String,
    seen_by_a: mpsc::UnboundedReceiver<Seen>,
    seen_by_b: mpsc::UnboundedReceiver<Seen>,
}

async fn chain() -> Chain {
    let (to_b, seen_by_b) = mpsc::unbounded_channel();
    let (to_a, seen_by_a) = mpsc::unbounded_channel();
    let b = serve(service_b(to_b)).await;
    let a = serve(service_a(A {
        report: to_a,
        client: http_client(),
        b: format!("http://{b}/"),
    }))
    .await;
    Chain {
        a: format!("http://{a}"),
        seen_by_a,
        seen_by_b,
    }
}

async fn next(seen: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(PATIENCE, seen.recv())
        .await
        .expect("the service reported in time")
        .expect("the service is up")
}

/// GETs `url` through the propagating client, under `ctx`; the body.
async fn get_under(ctx: &Context, url: &str) -> String {
    let req = http::Request::get(url)
        .body(Empty::new())
        .unwrap()
        .with_context(ctx);
    let resp = http_client().oneshot(req).await.unwrap();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap();
    String::from_utf8(body.to_bytes().to_vec()).unwrap()
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn a_custom_value_and_both_w3c_headers_cross_two_hops() {
    let mut chain = chain().await;
    let trace =
        TraceContext::parse(TRACEPARENT, Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")).unwrap();
    let baggage = Baggage::new().with("user", "alice smith").unwrap();
    let ctx = Context::background()
        .with_value(Tenant("acme".to_owned()))
        .with_value(trace)
        .with_value(baggage);

    let answer = get_under(&ctx, &format!("{}/forward", chain.a)).await;
    assert_eq!(answer, "200 OK");

    let sent = Values::of(&ctx);
    let at_a = next(&mut chain.seen_by_a).await;
    assert_eq!(at_a.values, sent, "A's request context");

    let at_b = next(&mut chain.seen_by_b).await;
    assert_eq!(
        at_b.values,
        Values {
            baggage: Some("user=alice%20smith,hop=a".to_owned()),
            ..sent
        },
        "B's request context: A's baggage, the rest unchanged"
    );
    assert_eq!(header(&at_b.headers, "traceparent"), Some(TRACEPARENT));
    assert_eq!(
        header(&at_b.headers, "tracestate"),
        Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
    );
    assert_eq!(header(&at_b.headers, "x-tenant"), Some("acme"));
    assert_eq!(at_b.id, at_a.id, "the request id travels as before");
}

#[tokio::test]
async fn an_outgoing_header_the_caller_set_wins() {
    let mut chain = chain().await;
    let ctx = Context::background()
        .with_value(Tenant("acme".to_owned()))
        .with_value(TraceContext::parse(TRACEPARENT, Some("rojo=1")).unwrap());
    let answer = get_under(&ctx, &format!("{}/own-headers", chain.a)).await;
    assert_eq!(answer, "200 OK");
    let _ = next(&mut chain.seen_by_a).await;

    let at_b = next(&mut chain.seen_by_b).await;
    let theirs = "00-11111111111111111111111111111111-2222222222222222-01";
    assert_eq!(header(&at_b.headers, "traceparent"), Some(theirs));
    assert_eq!(
        header(&at_b.headers, "tracestate"),
        None,
        "no state of another trace beside the caller's traceparent"
    );
    assert_eq!(header(&at_b.headers, "x-tenant"), Some("set-by-a"));
    assert_eq!(at_b.values.traceparent.as_deref(), Some(theirs));
    assert_eq!(at_b.values.tenant.as_deref(), Some("set-by-a"));
}

/// A header as a client sends it: any bytes a header may hold.
type RawHeader = (&'static str, Vec<u8>);

/// One request to A from a plain client (no ctx, no client layer) with
/// `headers`: what A decoded, and what A's call then sent to B.
async fn send_raw(chain: &mut Chain, headers: &[RawHeader]) -> (Seen, Seen) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut req = http::Request::get(format!("{}/forward", chain.a))
        .body(Empty::new())
        .unwrap();
    for (name, value) in headers {
        req.headers_mut()
            .append(*name, HeaderValue::from_bytes(value).unwrap());
    }
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    (
        next(&mut chain.seen_by_a).await,
        next(&mut chain.seen_by_b).await,
    )
}

#[tokio::test]
async fn malformed_and_oversized_headers_from_a_client_are_dropped_and_nothing_is_sent_on() {
    let mut chain = chain().await;
    let v = |s: &str| s.as_bytes().to_vec();
    let many_entries = (0..181)
        .map(|i| format!("k{i}=v"))
        .collect::<Vec<_>>()
        .join(",");
    let long_baggage = format!("k={}", "v".repeat(8192));
    let long_tracestate = format!("k={}", "v".repeat(600));
    let cases: Vec<(&str, Vec<RawHeader>)> = vec![
        (
            "a tenant out of its charset",
            vec![("x-tenant", v("ACME; evil=1"))],
        ),
        ("a tenant too long", vec![("x-tenant", v(&"a".repeat(33)))]),
        (
            "two tenants",
            vec![("x-tenant", v("one")), ("x-tenant", v("two"))],
        ),
        (
            "an uppercase traceparent",
            vec![("traceparent", v(&TRACEPARENT.to_uppercase()))],
        ),
        (
            "a traceparent with a zero trace id",
            vec![(
                "traceparent",
                v("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            )],
        ),
        (
            "a traceparent with a tail",
            vec![("traceparent", v(&format!("{TRACEPARENT}-x")))],
        ),
        (
            "two traceparents",
            vec![
                ("traceparent", v(TRACEPARENT)),
                ("traceparent", v(TRACEPARENT)),
            ],
        ),
        (
            "a traceparent of bytes outside ASCII",
            vec![(
                "traceparent",
                b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-\xff\xfe".to_vec(),
            )],
        ),
        (
            "a tracestate without a traceparent",
            vec![("tracestate", v("rojo=1"))],
        ),
        (
            "baggage with an empty entry",
            vec![("baggage", v("a=1,,b=2"))],
        ),
        ("baggage with a quote", vec![("baggage", v("a=\"1\""))]),
        ("baggage with a bad escape", vec![("baggage", v("a=%zz"))]),
        (
            "baggage with bytes outside ASCII",
            vec![("baggage", b"a=caf\xe9".to_vec())],
        ),
        (
            "baggage of 181 entries",
            vec![("baggage", v(&many_entries))],
        ),
        (
            "baggage over 8192 bytes",
            vec![("baggage", v(&long_baggage))],
        ),
        (
            "baggage over 8192 bytes in two headers",
            vec![
                ("baggage", v(&format!("a={}", "v".repeat(5000)))),
                ("baggage", v(&format!("b={}", "v".repeat(5000)))),
            ],
        ),
    ];
    for (what, headers) in &cases {
        let (at_a, at_b) = send_raw(&mut chain, headers).await;
        assert_eq!(at_a.values, Values::default(), "{what}: nothing kept at A");
        for name in ["x-tenant", "traceparent", "tracestate"] {
            assert!(
                !at_b.headers.contains_key(name),
                "{what}: {name} reached B: {:?}",
                at_b.headers
            );
        }
        // Only A's own entry: nothing of the client's.
        assert_eq!(header(&at_b.headers, "baggage"), Some("hop=a"), "{what}");
    }

    // A valid traceparent keeps going without its invalid tracestate.
    for bad_state in [
        v("rojo=1,rojo=2"),
        v("Rojo=1"),
        v(&long_tracestate),
        b"rojo=caf\xe9".to_vec(),
    ] {
        let (at_a, at_b) = send_raw(
            &mut chain,
            &[("traceparent", v(TRACEPARENT)), ("tracestate", bad_state)],
        )
        .await;
        assert_eq!(at_a.values.traceparent.as_deref(), Some(TRACEPARENT));
        assert_eq!(at_a.values.tracestate, None);
        assert_eq!(header(&at_b.headers, "traceparent"), Some(TRACEPARENT));
        assert!(!at_b.headers.contains_key("tracestate"));
    }

    // A request id that could fake a log field is replaced by a fresh one,
    // and the fresh one is what goes on.
    let (at_a, at_b) = send_raw(&mut chain, &[("x-request-id", v(r#"x" user="admin"#))]).await;
    assert_eq!(at_a.id.len(), 32, "{:?}", at_a.id);
    assert!(at_a.id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(at_b.id, at_a.id);
}

#[tokio::test]
async fn a_server_reads_only_the_values_it_asked_for() {
    let (tx, mut contexts) = mpsc::unbounded_channel();
    let handler = move |req: http::Request<()>| {
        let tx = tx.clone();
        async move {
            tx.send(req.context()).unwrap();
            Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
        }
    };
    let request = || {
        http::Request::builder()
            .header("traceparent", TRACEPARENT)
            .header("baggage", "user=alice")
            .header("x-tenant", "acme")
            .body(())
            .unwrap()
    };

    let plain = ContextLayer::new(&Context::background()).layer(tower::service_fn(handler.clone()));
    plain.oneshot(request()).await.unwrap();
    let ctx = contexts.recv().await.unwrap();
    assert_eq!(Values::of(&ctx), Values::default());

    let only_trace = ContextLayer::new(&Context::background())
        .propagate::<TraceContext>()
        .layer(tower::service_fn(handler));
    only_trace.oneshot(request()).await.unwrap();
    let ctx = contexts.recv().await.unwrap();
    assert_eq!(
        Values::of(&ctx),
        Values {
            traceparent: Some(TRACEPARENT.to_owned()),
            ..Values::default()
        }
    );
}

/// `demo.Worker` with the request context of each call sent to the test
/// before the worker handles it.
#[derive(Clone)]
struct Reporting {
    worker: grpc::Worker,
    contexts: mpsc::UnboundedSender<Context>,
}

impl tonic::server::NamedService for Reporting {
    const NAME: &'static str = "demo.Worker";
}

impl tower::Service<http::Request<tonic::body::Body>> for Reporting {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = <grpc::Worker as tower::Service<http::Request<tonic::body::Body>>>::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        tower::Service::<http::Request<tonic::body::Body>>::poll_ready(&mut self.worker, cx)
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let _ = self.contexts.send(req.context());
        self.worker.call(req)
    }
}

#[tokio::test]
async fn a_tonic_call_carries_the_values_through_the_client_layer_and_the_interceptor() {
    let (contexts, mut seen) = mpsc::unbounded_channel();
    let (ended, _endings) = mpsc::unbounded_channel();
    let incoming = tonic::transport::server::TcpIncoming::bind(([127, 0, 0, 1], 0).into()).unwrap();
    let addr = incoming.local_addr().unwrap();
    let router = tonic::transport::Server::builder()
        .layer(server_layer(&Context::background()))
        .add_service(Reporting {
            worker: grpc::Worker::new(ended),
            contexts,
        });
    tokio::spawn(router.serve_with_incoming(incoming));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();

    let ctx = Context::background()
        .with_value(Tenant("acme".to_owned()))
        .with_value(TraceContext::parse(TRACEPARENT, Some("rojo=1")).unwrap())
        .with_value(Baggage::new().with("user", "alice").unwrap());
    let want = Values::of(&ctx);
    let call = || ctx::grpc::request(&ctx, grpc::WorkRequest { millis: 0 });
    let next_context = |seen: &mut mpsc::UnboundedReceiver<Context>| seen.try_recv().unwrap();

    // The client layer.
    let mut client = grpc::WorkerClient::new(
        tower::ServiceBuilder::new()
            .layer(
                ctx::grpc::ClientLayer::new()
                    .propagate::<Tenant>()
                    .propagate::<TraceContext>()
                    .propagate::<Baggage>(),
            )
            .service(channel.clone()),
    );
    tokio::time::timeout(PATIENCE, client.work(call()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(Values::of(&next_context(&mut seen)), want, "client layer");

    // The interceptor.
    let intercepted = tonic::service::interceptor::InterceptedService::new(
        channel.clone(),
        ctx::grpc::Interceptor::new()
            .propagate::<Tenant>()
            .propagate::<TraceContext>()
            .propagate::<Baggage>(),
    );
    let mut client = grpc::WorkerClient::new(intercepted);
    tokio::time::timeout(PATIENCE, client.work(call()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(Values::of(&next_context(&mut seen)), want, "interceptor");

    // The plain interceptor sends the deadline and id as before, no values.
    let intercepted =
        tonic::service::interceptor::InterceptedService::new(channel, ctx::grpc::interceptor);
    let mut client = grpc::WorkerClient::new(intercepted);
    tokio::time::timeout(PATIENCE, client.work(call()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(Values::of(&next_context(&mut seen)), Values::default());
}

/// The values a server decoded are its request context's: they reach a
/// `DetachLayer`'s detached context too (it keeps the request's values).
#[tokio::test]
async fn a_detached_handler_keeps_the_propagated_values() {
    let (tx, mut contexts) = mpsc::unbounded_channel();
    let app = Router::new()
        .route(
            "/",
            get(move |ctx: Context| async move {
                tx.send(ctx).unwrap();
                "ok"
            }),
        )
        .route_layer(ctx::http::DetachLayer::new())
        .layer(server_layer(&Context::background()));
    let req = http::Request::get("/")
        .header("x-tenant", "acme")
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = app.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let ctx = contexts.recv().await.unwrap();
    assert_eq!(ctx.value::<Tenant>(), Some(&Tenant("acme".to_owned())));
}
