//! `ctx::http`: request contexts on real servers and clients, on loopback.
//!
//! Every server here listens on 127.0.0.1 with a port the system picks.
//! Handlers hand their request context to the test through a channel, so
//! the test waits on the context itself instead of sleeping.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::routing::get;
use axum::Router;
use ctx::http::{Abandoned, ClientError, ClientLayer, ContextLayer, RequestExt, RequestId};
use ctx::{Context, Error};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tower::{Layer, ServiceExt};

/// Generous: how long anything that should be prompt may take on a busy
/// two-core machine before the test calls it a failure.
const PATIENCE: Duration = Duration::from_secs(5);

/// The disconnect-to-cancel bound of the issue.
const PROMPT: Duration = Duration::from_millis(200);

async fn serve(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// A router whose one handler sends its request context to the test, then
/// waits until that context ends and answers with the error.
fn reporting(root: &Context) -> (Router, mpsc::UnboundedReceiver<Context>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = Router::new()
        .route(
            "/",
            get(
                |State(tx): State<mpsc::UnboundedSender<Context>>, ctx: Context| async move {
                    tx.send(ctx.clone()).unwrap();
                    Err::<(), _>(ctx.done().await)
                },
            ),
        )
        .with_state(tx)
        .layer(ContextLayer::new(root));
    (app, rx)
}

async fn within<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(PATIENCE, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within {PATIENCE:?}"))
}

#[tokio::test]
async fn request_context_is_canceled_when_the_client_disconnects() {
    let (app, mut contexts) = reporting(&Context::background());
    let addr = serve(app).await;

    let mut latencies = Vec::new();
    for _ in 0..5 {
        let mut conn = TcpStream::connect(addr).await.unwrap();
        conn.write_all(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n")
            .await
            .unwrap();
        let ctx = within("the request", contexts.recv()).await.unwrap();
        assert_eq!(ctx.err(), None);

        drop(conn);
        let gone = Instant::now();
        assert_eq!(within("the cancel", ctx.done()).await, Error::Canceled);
        latencies.push(gone.elapsed());
        let cause = ctx.cause().unwrap();
        assert!(
            cause.downcast_ref::<Abandoned>().is_some(),
            "cause: {cause}"
        );
    }
    latencies.sort();
    eprintln!("disconnect-to-cancel latency: {latencies:?}");
    assert!(
        latencies[latencies.len() / 2] < PROMPT,
        "median disconnect-to-cancel latency over {PROMPT:?}: {latencies:?}"
    );
}

#[tokio::test]
async fn request_context_ends_once_the_response_is_sent() {
    let (tx, mut contexts) = mpsc::unbounded_channel();
    let app = Router::new()
        .route(
            "/",
            get(|ctx: Context| async move {
                tx.send(ctx).unwrap();
                "done"
            }),
        )
        .layer(ContextLayer::new(&Context::background()));
    let addr = serve(app).await;

    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET / HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).await.unwrap();
    assert!(response.ends_with("done"), "{response}");

    let ctx = within("the request", contexts.recv()).await.unwrap();
    assert_eq!(within("the end", ctx.done()).await, Error::Canceled);
    let cause = ctx.cause().unwrap();
    assert!(
        cause.is(Error::Canceled),
        "a finished request is not abandoned: {cause}"
    );
}

#[tokio::test]
async fn canceling_the_root_cancels_requests_in_flight() {
    let (root, stop) = Context::background().with_cancel();
    let (app, mut contexts) = reporting(&root);
    let addr = serve(app).await;

    let client = http_client();
    let call = tokio::spawn(client.get(format!("http://{addr}/").parse().unwrap()));
    let ctx = within("the request", contexts.recv()).await.unwrap();
    stop.cancel();
    let resp = within("the answer", call).await.unwrap().unwrap();
    assert_eq!(resp.status(), 503, "a canceled handler answers 503");
    assert_eq!(ctx.err(), Some(Error::Canceled));
}

/// The layer alone, in-process: the context the handler gets for the given
/// headers, and the id the response echoes.
async fn seen(layer: ContextLayer, headers: &[(&str, &[u8])]) -> (Context, String) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let svc = layer.layer(tower::service_fn(move |req: http::Request<Body>| {
        tx.send(req.context()).unwrap();
        async { Ok::<_, Infallible>(http::Response::new(Body::empty())) }
    }));
    let mut req = http::Request::builder();
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = svc.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let echoed = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    (rx.recv().await.unwrap(), echoed)
}

fn layer() -> ContextLayer {
    ContextLayer::new(&Context::background())
}

fn left(ctx: &Context) -> Duration {
    ctx.deadline().expect("a deadline") - Instant::now().min(ctx.deadline().unwrap())
}

fn id(ctx: &Context) -> String {
    ctx.value::<RequestId>()
        .expect("every request has an id")
        .to_string()
}

#[tokio::test]
async fn grpc_timeout_becomes_the_deadline() {
    let (ctx, _) = seen(layer(), &[("grpc-timeout", b"1500m")]).await;
    let left = left(&ctx);
    assert!(
        left <= Duration::from_millis(1500) && left > Duration::from_millis(500),
        "{left:?}"
    );

    let (ctx, _) = seen(layer(), &[]).await;
    assert_eq!(ctx.deadline(), None, "no header, no default: no deadline");
}

#[tokio::test]
async fn the_maximum_caps_and_the_default_fills_in() {
    let capped = layer().max_timeout(Duration::from_secs(1));
    let (ctx, _) = seen(capped.clone(), &[("grpc-timeout", b"5S")]).await;
    assert!(left(&ctx) <= Duration::from_secs(1));
    let (ctx, _) = seen(capped, &[]).await;
    assert!(
        left(&ctx) <= Duration::from_secs(1),
        "the maximum applies without a header too"
    );

    let defaulted = layer().default_timeout(Duration::from_millis(700));
    let (ctx, _) = seen(defaulted.clone(), &[]).await;
    assert!(left(&ctx) <= Duration::from_millis(700));
    let (ctx, _) = seen(defaulted, &[("grpc-timeout", b"3S")]).await;
    assert!(
        left(&ctx) > Duration::from_secs(2),
        "the client's timeout wins over the default"
    );
}

#[tokio::test]
async fn malformed_or_hostile_headers_are_ignored() {
    let defaulted = layer().default_timeout(Duration::from_secs(9));
    for bad in [&b"1.5S"[..], b"-1S", b"123456789n", b"S", b"", b"9\xffS"] {
        let (ctx, _) = seen(defaulted.clone(), &[("grpc-timeout", bad)]).await;
        assert!(
            left(&ctx) > Duration::from_secs(8),
            "{bad:?} should fall back to the default"
        );
    }
    // The largest value the format allows is fine: a deadline far away.
    let (ctx, _) = seen(layer(), &[("grpc-timeout", b"99999999H")]).await;
    assert!(ctx
        .deadline()
        .is_none_or(|d| d > Instant::now() + Duration::from_secs(3600)));
    // Zero: the request is over before it starts.
    let (ctx, _) = seen(layer(), &[("grpc-timeout", b"0n")]).await;
    assert_eq!(
        within("the deadline", ctx.done()).await,
        Error::DeadlineExceeded
    );

    for bad in [&b"has space"[..], b"\x80\xff", b""] {
        let (ctx, echoed) = seen(layer(), &[("x-request-id", bad)]).await;
        assert_eq!(
            id(&ctx).len(),
            32,
            "{bad:?} should be replaced by a fresh id"
        );
        assert_eq!(echoed, id(&ctx));
    }
}

#[tokio::test]
async fn request_ids_come_from_the_header_or_are_generated() {
    let (ctx, echoed) = seen(layer(), &[("x-request-id", b"req-7")]).await;
    assert_eq!((id(&ctx).as_str(), echoed.as_str()), ("req-7", "req-7"));

    let (first, echoed) = seen(layer(), &[]).await;
    let (second, _) = seen(layer(), &[]).await;
    assert_eq!(echoed, id(&first));
    assert_ne!(id(&first), id(&second));
}

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A server that answers with the `grpc-timeout` and `x-request-id` it got,
/// counting requests.
async fn echo_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route(
            "/",
            get(
                |State(count): State<Arc<AtomicUsize>>, headers: http::HeaderMap| async move {
                    count.fetch_add(1, Ordering::SeqCst);
                    let header = |name| {
                        headers
                            .get(name)
                            .map_or("-", |v| v.to_str().unwrap_or("?"))
                            .to_owned()
                    };
                    format!("{} {}", header("grpc-timeout"), header("x-request-id"))
                },
            ),
        )
        .with_state(count.clone());
    (serve(app).await, count)
}

fn get_with(addr: SocketAddr, ctx: &Context) -> http::Request<Empty<Bytes>> {
    http::Request::get(format!("http://{addr}/"))
        .body(Empty::new())
        .unwrap()
        .with_context(ctx)
}

#[tokio::test]
async fn outgoing_calls_carry_the_time_left_and_the_request_id() {
    let (addr, _) = echo_server().await;
    let client = ClientLayer::new().layer(http_client());

    let id = RequestId::from_header(&http::HeaderValue::from_static("r-7")).unwrap();
    let (ctx, _cancel) = Context::background()
        .with_value(id)
        .with_timeout(Duration::from_secs(2));
    let resp = client.clone().oneshot(get_with(addr, &ctx)).await.unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let body = std::str::from_utf8(&body).unwrap().to_owned();
    let (timeout, id) = body.split_once(' ').unwrap();
    let sent = ctx::http::decode_timeout(&timeout.parse().unwrap()).unwrap();
    assert!(
        sent <= Duration::from_secs(2) && sent > Duration::from_secs(1),
        "{sent:?}"
    );
    assert_eq!(id, "r-7");

    // Without a deadline, no grpc-timeout; without an id, none is made up.
    let resp = client
        .oneshot(get_with(addr, &Context::background()))
        .await
        .unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"- -");
}

/// What the caller set on the request itself and asks for less wins: its
/// own `x-request-id`, and a `grpc-timeout` shorter than the time left.
/// `net_grpc` checks the interceptor against the same rule.
#[tokio::test]
async fn outgoing_calls_keep_the_callers_own_request_id_and_shorter_timeout() {
    let (addr, _) = echo_server().await;
    let client = ClientLayer::new().layer(http_client());
    let id = RequestId::from_header(&http::HeaderValue::from_static("r-7")).unwrap();
    let (ctx, _cancel) = Context::background()
        .with_value(id)
        .with_timeout(Duration::from_secs(2));
    let get = |own_timeout: &'static str| {
        let mut req = get_with(addr, &ctx);
        req.headers_mut()
            .insert("x-request-id", http::HeaderValue::from_static("mine"));
        req.headers_mut()
            .insert("grpc-timeout", http::HeaderValue::from_static(own_timeout));
        req
    };

    let resp = client.clone().oneshot(get("500m")).await.unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"500m mine");

    // A longer timeout of its own gives way to the time left.
    let resp = client.oneshot(get("60S")).await.unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let body = std::str::from_utf8(&body).unwrap().to_owned();
    let (timeout, id) = body.split_once(' ').unwrap();
    let sent = ctx::http::decode_timeout(&timeout.parse().unwrap()).unwrap();
    assert!(sent <= Duration::from_secs(2), "{sent:?}");
    assert_eq!(id, "mine");
}

#[tokio::test]
async fn a_done_context_or_passed_deadline_is_not_sent() {
    let (addr, count) = echo_server().await;
    let client = ClientLayer::new().layer(http_client());

    let (passed, _c1) = Context::background().with_deadline(Instant::now());
    let err = client
        .clone()
        .oneshot(get_with(addr, &passed))
        .await
        .unwrap_err();
    assert_eq!(err.context_error(), Some(Error::DeadlineExceeded));

    let (canceled, cancel) = Context::background().with_cancel();
    cancel.cancel();
    let err = client
        .clone()
        .oneshot(get_with(addr, &canceled))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Context(Error::Canceled)),
        "{err:?}"
    );

    // A live call after them is the first the server ever sees.
    client
        .oneshot(get_with(addr, &Context::background()))
        .await
        .unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_call_is_aborted_when_its_context_ends_and_the_server_sees_it() {
    let (app, mut server_contexts) = reporting(&Context::background());
    let addr = serve(app).await;
    let client = ClientLayer::new().layer(http_client());

    let (ctx, cancel) = Context::background().with_cancel();
    let call = tokio::spawn(client.oneshot(get_with(addr, &ctx)));
    let server_ctx = within("the request", server_contexts.recv()).await.unwrap();

    cancel.cancel();
    let aborted = Instant::now();
    let err = within("the abort", call).await.unwrap().unwrap_err();
    assert_eq!(err.context_error(), Some(Error::Canceled));
    assert_eq!(
        within("the server's cancel", server_ctx.done()).await,
        Error::Canceled
    );
    eprintln!("client cancel to server cancel: {:?}", aborted.elapsed());
    assert!(server_ctx
        .cause()
        .unwrap()
        .downcast_ref::<Abandoned>()
        .is_some());
}

/// The client's future and body watch their context with an owned `done()`
/// future (`DoneOwned`, `Sync`), no longer a boxed `Send`-only one: both are
/// `Sync` when what they wrap is, as hyper's own bodies are.
#[test]
fn the_clients_future_and_body_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<ctx::http::client::ResponseFuture<std::future::Ready<()>>>();
    send_sync::<ctx::http::client::ResponseBody<String>>();
    send_sync::<ctx::grpc::client::ResponseBody<String>>();
}

/// Records the spans opened while it is the default subscriber, with
/// their fields, and the span each event is logged in.
#[derive(Default)]
struct Spans {
    opened: std::sync::Mutex<Vec<(String, String)>>,
    entered: std::sync::Mutex<Vec<u64>>,
    events_in: std::sync::Mutex<Vec<Option<u64>>>,
}

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
}

impl tracing::Subscriber for &'static Spans {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut fields = String::new();
        span.record(&mut Fields(&mut fields));
        let mut opened = self.opened.lock().unwrap();
        opened.push((span.metadata().name().to_owned(), fields));
        tracing::span::Id::from_u64(opened.len() as u64)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {
        let current = self.entered.lock().unwrap().last().copied();
        self.events_in.lock().unwrap().push(current);
    }
    fn enter(&self, span: &tracing::span::Id) {
        self.entered.lock().unwrap().push(span.into_u64());
    }
    fn exit(&self, _: &tracing::span::Id) {
        self.entered.lock().unwrap().pop();
    }
}

/// A second subscriber, registered for the life of the process, that
/// wants every callsite "sometimes": tracing then asks the current thread's
/// subscriber at each hit instead of caching an answer.
///
/// Without it, while `Spans` is the only registered subscriber, tracing
/// decides a callsite's interest at its first hit by asking only the
/// hitting thread's subscriber: when another test's server thread (which
/// has none) first hits the layer's `request` span, the span is disabled
/// for this test too. That happened about once in a hundred runs.
struct AskEveryTime;

impl tracing::Subscriber for AskEveryTime {
    fn register_callsite(
        &self,
        _: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        false
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn the_request_id_is_in_a_span_around_the_handler() {
    // Registered on creation; leaked so that it stays registered.
    std::mem::forget(tracing::Dispatch::new(AskEveryTime));
    let spans: &'static Spans = Box::leak(Box::default());
    tracing::subscriber::with_default(spans, || {
        let svc = layer().layer(tower::service_fn(|_: http::Request<Body>| async {
            tracing::info!("handling");
            Ok::<_, Infallible>(http::Response::new(Body::empty()))
        }));
        let req = http::Request::get("/users")
            .header("x-request-id", "req-99")
            .body(Body::empty())
            .unwrap();
        futures::executor::block_on(svc.oneshot(req)).unwrap();
    });
    let opened = spans.opened.lock().unwrap();
    assert_eq!(opened.len(), 1, "{opened:?}");
    let (name, fields) = &opened[0];
    assert_eq!(name, "request");
    assert!(fields.contains("request_id=req-99"), "{fields}");
    // Quoted and escaped: a path may hold `"` and `=`.
    assert!(fields.contains(r#"path="/users""#), "{fields}");
    // The handler's event, then the layer's ending event (logged as the
    // response is dropped, with the span as its explicit parent).
    assert_eq!(
        *spans.events_in.lock().unwrap(),
        [Some(1), None],
        "the handler logs inside the span"
    );
}

/// The names from before 0.2.0 still compile, as aliases of the names by
/// role: deleting or retargeting an alias breaks this test's build.
#[test]
#[allow(deprecated)] // the old names are the point
fn the_old_names_are_aliases_of_the_names_by_role() {
    use std::any::TypeId;
    type Fut = std::future::Ready<()>;
    assert_eq!(
        TypeId::of::<ctx::http::ResponseFuture<Fut>>(),
        TypeId::of::<ctx::http::server::ResponseFuture<Fut>>()
    );
    assert_eq!(
        TypeId::of::<ctx::http::ContextBody<String>>(),
        TypeId::of::<ctx::http::server::ResponseBody<String>>()
    );
    assert_eq!(
        TypeId::of::<ctx::http::ClientFuture<Fut>>(),
        TypeId::of::<ctx::http::client::ResponseFuture<Fut>>()
    );
    assert_eq!(
        TypeId::of::<ctx::http::ClientBody<String>>(),
        TypeId::of::<ctx::http::client::ResponseBody<String>>()
    );
}

/// Trailers are a body's last frame: a context that ends after the client
/// read them does not fail the poll that finds the end, so a response
/// received in full is not reported as cut off.
#[tokio::test]
async fn a_context_ending_after_the_trailers_does_not_fail_the_body() {
    use http_body_util::StreamBody;
    use hyper::body::Frame;
    let client = ClientLayer::new().layer(tower::service_fn(|_: http::Request<()>| async {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
        let frames: Vec<Result<Frame<Bytes>, Infallible>> = vec![
            Ok(Frame::data(Bytes::from_static(b"hello"))),
            Ok(Frame::trailers(trailers)),
        ];
        Ok::<_, Infallible>(http::Response::new(StreamBody::new(futures::stream::iter(
            frames,
        ))))
    }));
    let (ctx, cancel) = Context::background().with_cancel();
    let resp = client
        .oneshot(http::Request::new(()).with_context(&ctx))
        .await
        .unwrap();
    let mut body = resp.into_body();
    let data = body.frame().await.unwrap().unwrap();
    assert_eq!(data.into_data().unwrap(), "hello");
    let trailers = body.frame().await.unwrap().unwrap();
    assert_eq!(trailers.into_trailers().unwrap()["grpc-status"], "0");
    cancel.cancel();
    assert!(
        body.frame().await.is_none(),
        "the end of a body whose trailers arrived, not the context's error"
    );
}

/// A body that sleeps past `until` in its first poll, then fails.
struct FailsLate {
    until: Instant,
}

impl hyper::body::Body for FailsLate {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        std::thread::sleep(self.until.saturating_duration_since(Instant::now()));
        std::task::Poll::Ready(Some(Err(std::io::Error::other("reset below the layer"))))
    }
}

/// A call or a body that fails once its deadline has passed failed by the
/// deadline, even when ctx's timer has not fired it yet: a timeout below
/// the layer reading the `grpc-timeout` it sent (tonic's channel has one)
/// fires at the same deadline.
#[tokio::test]
async fn a_failure_after_the_deadline_passed_is_the_deadlines() {
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(30));
    let until = Instant::now() + Duration::from_millis(60);
    // The call: the service's future blocks its poll past the deadline, so
    // the layer's look at the context came before the deadline.
    let failing =
        ClientLayer::new().layer(tower::service_fn(move |_: http::Request<()>| async move {
            std::thread::sleep(until.saturating_duration_since(Instant::now()));
            Err::<http::Response<String>, _>(std::io::Error::other("timeout expired below"))
        }));
    let err = failing
        .oneshot(http::Request::new(()).with_context(&ctx))
        .await
        .unwrap_err();
    assert_eq!(err.context_error(), Some(Error::DeadlineExceeded), "{err}");

    // The body.
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(30));
    let until = Instant::now() + Duration::from_millis(60);
    let answering =
        ClientLayer::new().layer(tower::service_fn(move |_: http::Request<()>| async move {
            Ok::<_, Infallible>(http::Response::new(FailsLate { until }))
        }));
    let resp = answering
        .oneshot(http::Request::new(()).with_context(&ctx))
        .await
        .unwrap();
    let mut body = resp.into_body();
    let err = body.frame().await.unwrap().unwrap_err();
    assert_eq!(err.context_error(), Some(Error::DeadlineExceeded), "{err}");
    // Over: it says so, and announces nothing more.
    assert!(hyper::body::Body::is_end_stream(&body));
    assert_eq!(hyper::body::Body::size_hint(&body).exact(), Some(0));

    // Before the deadline, the service's own error is passed on.
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_secs(60));
    let early = ClientLayer::new().layer(tower::service_fn(|_: http::Request<()>| async {
        Err::<http::Response<String>, _>(std::io::Error::other("refused"))
    }));
    let err = early
        .oneshot(http::Request::new(()).with_context(&ctx))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Service(_)), "{err}");
}

/// A handler returning a failed call's error answers 502 without the
/// error's text (upstream addresses, OS errors stay on the server).
#[tokio::test]
async fn a_failed_call_answers_502_without_its_error_text() {
    use axum::response::IntoResponse;
    let err = ClientError::Service(std::io::Error::other("connect 10.0.0.7:5432: refused").into());
    let resp = err.into_response();
    assert_eq!(resp.status(), 502);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "bad gateway");
}
