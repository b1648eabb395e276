//! How a request context ends, seen from outside: `ContextLayer::stats()`
//! counts each cause, and (feature `tracing`) one event per request
//! carries the cause, how long the request ran and how much of its
//! deadline was left.
//!
//! The counts are driven over loopback HTTP/1.1, one layer per test (the
//! counts are the layer's), as `net_http_causes.rs` and `net_http_race.rs`
//! drive the causes; the events in-process, under a recording subscriber
//! that is the test thread's default.

use std::convert::Infallible;
use std::future::pending;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use ctx::http::{ContextLayer, RequestExt, Stats};
use ctx::Context;
use futures::FutureExt;
use http::{Request, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tower::{Layer, ServiceExt};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

#[path = "support/loopback.rs"]
mod loopback;
use loopback::{serve, within, PATIENCE};

/// A server behind `layer`: `/ok` answers, `/stuck` sends its context to
/// the test and never answers, `/panic` panics.
async fn server(layer: ContextLayer) -> (SocketAddr, mpsc::UnboundedReceiver<Context>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route(
            "/stuck",
            get(move |ctx: Context| async move {
                tx.send(ctx).unwrap();
                pending::<&'static str>().await
            }),
        )
        .route(
            "/panic",
            get(|| async {
                panic!("no such user");
                #[allow(unreachable_code)]
                "unreachable"
            }),
        )
        .layer(layer);
    (serve(app).await, rx)
}

/// Sends `request` and reads until the server closes the connection.
async fn exchange(addr: SocketAddr, request: &str) -> String {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let _ = within("the response", conn.read_to_end(&mut response)).await;
    String::from_utf8_lossy(&response).into_owned()
}

fn get_request(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n{extra}\r\n")
}

/// Waits until `layer`'s counts are `want`: a request the server finishes
/// after the client has its answer (it drops the body once written) is
/// counted a moment later.
async fn counts_become(layer: &ContextLayer, want: [u64; 5]) {
    within("the counts", async {
        while counts(layer.stats()) != want {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

/// The counts of `stats`, in the order of its readers: completed,
/// canceled, deadline exceeded, abandoned, handler panicked.
fn counts(stats: Stats) -> [u64; 5] {
    [
        stats.completed(),
        stats.canceled(),
        stats.deadline_exceeded(),
        stats.abandoned(),
        stats.handler_panicked(),
    ]
}

#[tokio::test]
async fn the_stats_count_each_cause() {
    let (root, stop) = Context::background().with_cancel();
    let layer = ContextLayer::new(&root);
    let (addr, mut contexts) = server(layer.clone()).await;
    assert_eq!(counts(layer.stats()), [0; 5]);

    // Completed: the response was written in full. The count comes once
    // the server has dropped the body, which the client cannot see.
    let response = exchange(addr, &get_request("/ok", "")).await;
    assert!(response.ends_with("\r\n\r\nok"), "{response}");
    counts_become(&layer, [1, 0, 0, 0, 0]).await;

    // Deadline exceeded: the layer answers 504, counted before it answers.
    let response = exchange(addr, &get_request("/stuck", "grpc-timeout: 20m\r\n")).await;
    assert!(response.starts_with("HTTP/1.1 504"), "{response}");
    let _ = contexts.recv().await;
    assert_eq!(counts(layer.stats()), [1, 0, 1, 0, 0]);

    // Abandoned: the client hangs up before the answer; counted before the
    // request context is canceled.
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(get_request("/stuck", "").as_bytes())
        .await
        .unwrap();
    let ctx = within("the request", contexts.recv()).await.unwrap();
    drop(conn);
    within("the cancel", ctx.done()).await;
    assert_eq!(counts(layer.stats()), [1, 0, 1, 1, 0]);

    // Handler panicked: counted before the request context is canceled.
    let (tx, mut panicked) = mpsc::unbounded_channel();
    let panicking = Router::new()
        .route(
            "/panic",
            get(move |ctx: Context| async move {
                tx.send(ctx).unwrap();
                panic!("no such user");
                #[allow(unreachable_code)]
                "unreachable"
            }),
        )
        .layer(layer.clone());
    let panicking = serve(panicking).await;
    let _ = exchange(panicking, &get_request("/panic", "")).await;
    let ctx = within("the request", panicked.recv()).await.unwrap();
    within("the cancel", ctx.done()).await;
    assert_eq!(
        counts(layer.stats()),
        [1, 0, 1, 1, 1],
        "clones share counts"
    );

    // Canceled: the server's root is canceled while a handler runs; the
    // layer answers 503.
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(get_request("/stuck", "").as_bytes())
        .await
        .unwrap();
    let _ = within("the request", contexts.recv()).await.unwrap();
    stop.cancel();
    let mut response = Vec::new();
    let _ = within("the answer", conn.read_to_end(&mut response)).await;
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 503"), "{response}");
    assert_eq!(counts(layer.stats()), [1, 1, 1, 1, 1]);
    assert_eq!(layer.stats().ended(), 5);

    // Another layer counts for itself.
    assert_eq!(
        ContextLayer::new(&Context::background()).stats(),
        Stats::default()
    );
}

#[tokio::test]
async fn the_stats_count_a_panic_as_a_panic_and_many_requests_exactly() {
    let layer = ContextLayer::new(&Context::background());
    let (addr, _contexts) = server(layer.clone()).await;
    let _ = exchange(addr, &get_request("/panic", "")).await;
    let mut calls = Vec::new();
    for _ in 0..50 {
        calls.push(tokio::spawn(async move {
            exchange(addr, &get_request("/ok", "")).await
        }));
    }
    for call in calls {
        assert!(call.await.unwrap().ends_with("ok"));
    }
    counts_become(&layer, [50, 0, 0, 0, 1]).await;
    assert_eq!(layer.stats().ended(), 51);
}

/// One ending event: its level, and its fields as `name=value` (and its
/// target as `target=`).
type Ending = (Level, Vec<String>);

/// What a subscriber saw of the layer's ending events.
#[derive(Clone, Default)]
struct Endings(Arc<Mutex<Vec<Ending>>>);

struct Fields(Vec<String>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push(format!("{}={value:?}", field.name()));
    }
}

impl Subscriber for Endings {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields(Vec::new());
        event.record(&mut fields);
        if fields
            .0
            .iter()
            .any(|f| f == "message=request context ended")
        {
            fields
                .0
                .push(format!("target={}", event.metadata().target()));
            let level = *event.metadata().level();
            self.0.lock().unwrap().push((level, fields.0));
        }
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// A second subscriber, registered for the life of the process, that
/// wants every callsite "sometimes": tracing then asks the current
/// thread's subscriber at each hit instead of caching an answer made when
/// another thread, with no subscriber, hit the callsite first (see
/// `net_http.rs`).
struct AskEveryTime;

impl Subscriber for AskEveryTime {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        false
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// Runs `f` on a current-thread runtime with a recording subscriber as the
/// thread's default; the ending events it saw.
fn watched<F: std::future::Future<Output = ()>>(f: F) -> Vec<Ending> {
    std::mem::forget(tracing::Dispatch::new(AskEveryTime));
    let endings = Endings::default();
    tracing::subscriber::with_default(endings.clone(), || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    });
    let seen = endings.0.lock().unwrap().clone();
    seen
}

/// The one ending event in `seen`: its level and fields.
#[track_caller]
fn the_one(seen: &[Ending]) -> Ending {
    assert_eq!(seen.len(), 1, "one ending event per request: {seen:#?}");
    seen[0].clone()
}

fn field<'a>(fields: &'a [String], name: &str) -> Option<&'a str> {
    let prefix = format!("{name}=");
    fields.iter().find_map(|f| f.strip_prefix(prefix.as_str()))
}

type Handler = tower::util::BoxCloneService<Request<()>, Response<String>, Infallible>;

/// A handler that answers at once, or never.
fn handler(answers: bool) -> Handler {
    tower::util::BoxCloneService::new(tower::service_fn(move |_: Request<()>| async move {
        if !answers {
            pending::<()>().await;
        }
        Ok::<_, Infallible>(Response::new(String::new()))
    }))
}

#[test]
fn a_completed_request_logs_its_end_at_debug_with_the_time_it_ran() {
    let seen = watched(async {
        let svc = ContextLayer::new(&Context::background()).layer(handler(true));
        drop(svc.oneshot(Request::new(())).await.unwrap());
    });
    let (level, fields) = the_one(&seen);
    assert_eq!(level, Level::DEBUG);
    assert_eq!(field(&fields, "target"), Some("ctx::http::server"));
    assert_eq!(field(&fields, "end"), Some(r#""completed""#), "{fields:?}");
    assert_eq!(field(&fields, "cause"), Some(r#""context canceled""#));
    let elapsed: u64 = field(&fields, "elapsed_us").unwrap().parse().unwrap();
    assert!(elapsed < PATIENCE.as_micros() as u64, "{elapsed}");
    assert_eq!(field(&fields, "deadline_left_us"), None, "no deadline");
}

#[test]
fn a_deadline_logs_its_cause_and_no_time_left() {
    let seen = watched(async {
        let layer =
            ContextLayer::new(&Context::background()).max_timeout(Duration::from_millis(20));
        let resp = layer
            .layer(handler(false))
            .oneshot(Request::new(()))
            .await
            .unwrap();
        assert_eq!(resp.status(), 504);
    });
    let (level, fields) = the_one(&seen);
    assert_eq!(level, Level::INFO);
    assert_eq!(
        field(&fields, "end"),
        Some(r#""deadline_exceeded""#),
        "{fields:?}"
    );
    assert_eq!(
        field(&fields, "cause"),
        Some(r#""context deadline exceeded""#)
    );
    assert_eq!(field(&fields, "deadline_left_us"), Some("0"));
    let elapsed: u64 = field(&fields, "elapsed_us").unwrap().parse().unwrap();
    // From a moment after the deadline was set: a little under 20 ms at
    // the least.
    assert!(elapsed >= 15_000, "ran until its deadline: {elapsed}");
}

#[test]
fn a_request_with_time_left_logs_how_much() {
    let seen = watched(async {
        let layer = ContextLayer::new(&Context::background()).max_timeout(Duration::from_secs(60));
        drop(
            layer
                .layer(handler(true))
                .oneshot(Request::new(()))
                .await
                .unwrap(),
        );
    });
    let (_, fields) = the_one(&seen);
    let left: u64 = field(&fields, "deadline_left_us").unwrap().parse().unwrap();
    assert!(left > 50_000_000 && left <= 60_000_000, "{left}");
}

#[test]
fn a_canceled_root_logs_canceled_with_the_roots_cause() {
    #[derive(Debug)]
    struct Shutdown;
    impl std::fmt::Display for Shutdown {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("shutting down")
        }
    }
    impl std::error::Error for Shutdown {}

    let seen = watched(async {
        let (root, stop) = Context::background().with_cancel();
        let svc = ContextLayer::new(&root).layer(handler(false));
        let call = tokio::spawn(svc.oneshot(Request::new(())));
        tokio::task::yield_now().await; // the handler is running
        stop.cancel_with_cause(Shutdown);
        assert_eq!(call.await.unwrap().unwrap().status(), 503);
    });
    let (level, fields) = the_one(&seen);
    assert_eq!(level, Level::INFO);
    assert_eq!(field(&fields, "end"), Some(r#""canceled""#), "{fields:?}");
    assert_eq!(field(&fields, "cause"), Some(r#""shutting down""#));
}

#[test]
fn an_abandoned_request_logs_abandoned() {
    let seen = watched(async {
        let svc = ContextLayer::new(&Context::background()).layer(handler(false));
        // Polled once (the handler is pending), then dropped, as hyper
        // drops the future of a client that went away.
        assert!(svc.oneshot(Request::new(())).now_or_never().is_none());
    });
    let (level, fields) = the_one(&seen);
    assert_eq!(level, Level::INFO);
    assert_eq!(field(&fields, "end"), Some(r#""abandoned""#), "{fields:?}");
    assert_eq!(
        field(&fields, "cause"),
        Some(r#""request abandoned before its response was sent (client went away)""#)
    );
}

#[test]
fn a_handler_panic_logs_its_message_escaped_at_warn() {
    let seen = watched(async {
        let svc = ContextLayer::new(&Context::background()).layer(tower::service_fn(
            |_: Request<()>| async {
                panic!("user \"admin\"\nforged=1");
                #[allow(unreachable_code)]
                Ok::<_, Infallible>(Response::new(String::new()))
            },
        ));
        let call = std::panic::AssertUnwindSafe(svc.oneshot(Request::new(())));
        assert!(call.catch_unwind().await.is_err());
    });
    let (level, fields) = the_one(&seen);
    assert_eq!(level, Level::WARN);
    assert_eq!(
        field(&fields, "end"),
        Some(r#""handler_panicked""#),
        "{fields:?}"
    );
    // Quoted and escaped: the message cannot start a line or a field.
    assert_eq!(
        field(&fields, "cause"),
        Some(r#""request handler panicked: user \"admin\"\nforged=1""#)
    );
}

/// The context a handler got ends once, and is logged once, though both
/// the response future and the body pass through the layer.
#[test]
fn a_streamed_response_logs_one_end_when_its_body_ends() {
    let seen = watched(async {
        let (tx, rx) = std::sync::mpsc::channel();
        let svc = ContextLayer::new(&Context::background()).layer(tower::service_fn(
            move |req: Request<()>| {
                tx.send(req.context()).unwrap();
                async { Ok::<_, Infallible>(Response::new(String::from("body"))) }
            },
        ));
        let resp = svc.oneshot(Request::new(())).await.unwrap();
        let ctx = rx.recv().unwrap();
        assert!(!ctx.is_done(), "open until the body is sent");
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap();
        assert_eq!(body.to_bytes(), "body");
        assert!(ctx.is_done());
    });
    let (_, fields) = the_one(&seen);
    assert_eq!(field(&fields, "end"), Some(r#""completed""#));
}

/// A server whose `/trailers` answers "hello" then trailers, of no known
/// length, as `http_body_util::StreamBody` or a gRPC-style body writes
/// them: such a body never says `is_end_stream`, and the server drops it
/// after its trailers without polling it again.
async fn trailers_server(layer: ContextLayer) -> (SocketAddr, mpsc::UnboundedReceiver<Context>) {
    use http_body_util::StreamBody;
    use hyper::body::{Bytes, Frame};
    let (tx, rx) = mpsc::unbounded_channel();
    let app = Router::new()
        .route(
            "/trailers",
            get(move |ctx: Context| {
                tx.send(ctx).unwrap();
                async {
                    let mut trailers = http::HeaderMap::new();
                    trailers.insert("x-checksum", http::HeaderValue::from_static("abc"));
                    let frames: Vec<Result<Frame<Bytes>, Infallible>> = vec![
                        Ok(Frame::data(Bytes::from_static(b"hello"))),
                        Ok(Frame::trailers(trailers)),
                    ];
                    let body = StreamBody::new(futures::stream::iter(frames));
                    Response::new(axum::body::Body::new(body))
                }
            }),
        )
        .layer(layer);
    (serve(app).await, rx)
}

/// The context of a request answered in full ended with a plain cancel.
fn not_abandoned(ctx: &Context) {
    let cause = ctx.cause().expect("the request is over");
    assert!(
        cause.downcast_ref::<ctx::http::Abandoned>().is_none(),
        "a response written in full ended as abandoned: {cause}"
    );
}

#[tokio::test]
async fn a_body_ending_in_trailers_is_written_in_full_over_http1_and_http2() {
    use http_body_util::{BodyExt, Empty};
    use hyper::body::Bytes;
    let layer = ContextLayer::new(&Context::background());
    let (addr, mut contexts) = trailers_server(layer.clone()).await;

    // HTTP/1.1, chunked: hyper drops trailers the response did not
    // announce in a `trailer` header, then ends the body.
    let response = exchange(addr, &get_request("/trailers", "te: trailers\r\n")).await;
    assert!(
        response.ends_with("5\r\nhello\r\n0\r\n\r\n"),
        "the whole chunked response, to its last chunk: {response:?}"
    );
    counts_become(&layer, [1, 0, 0, 0, 0]).await;
    not_abandoned(&contexts.recv().await.unwrap());

    // HTTP/2: the trailers end the stream.
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Empty<Bytes>>();
    let uri = format!("http://{addr}/trailers").parse().unwrap();
    let resp = within("the head", client.get(uri)).await.unwrap();
    let collected = within("the body", resp.into_body().collect())
        .await
        .unwrap();
    assert_eq!(collected.trailers().unwrap()["x-checksum"], "abc");
    assert_eq!(collected.to_bytes(), "hello");
    counts_become(&layer, [2, 0, 0, 0, 0]).await;
    not_abandoned(&contexts.recv().await.unwrap());
}

/// Holds `ctx`'s timer thread inside a wake until dropped: the timer runs
/// the wakers of the deadlines it fires, and this waker blocks there.
struct TimerStall {
    release: std::sync::mpsc::Sender<()>,
    /// Keeps the stalling context's `done()` registered.
    _done: std::pin::Pin<Box<ctx::DoneOwned>>,
}

impl TimerStall {
    /// Returns once the timer thread is stalled.
    fn new() -> TimerStall {
        use std::sync::mpsc::{channel, Receiver, Sender};
        use std::task::{Context as TaskContext, Wake, Waker};
        struct Blocking {
            stalled: Mutex<Sender<()>>,
            release: Mutex<Receiver<()>>,
        }
        impl Wake for Blocking {
            fn wake(self: Arc<Self>) {
                self.wake_by_ref();
            }
            fn wake_by_ref(self: &Arc<Self>) {
                let _ = self.stalled.lock().unwrap().send(());
                // Until the stall is dropped (or, should the test hang, for
                // a bounded time).
                let _ = self.release.lock().unwrap().recv_timeout(PATIENCE * 4);
            }
        }
        let (stalled_tx, stalled) = channel();
        let (release, release_rx) = channel();
        let waker = Waker::from(Arc::new(Blocking {
            stalled: Mutex::new(stalled_tx),
            release: Mutex::new(release_rx),
        }));
        let (ctx, guard) = Context::background().with_timeout(Duration::from_millis(1));
        let mut done = Box::pin(ctx.done_owned());
        assert!(
            std::future::Future::poll(done.as_mut(), &mut TaskContext::from_waker(&waker))
                .is_pending()
        );
        std::mem::forget(guard); // the deadline, not the guard, ends it
        stalled
            .recv_timeout(PATIENCE)
            .expect("the timer fires the stalling deadline");
        TimerStall {
            release,
            _done: done,
        }
    }
}

impl Drop for TimerStall {
    fn drop(&mut self) {
        let _ = self.release.send(());
    }
}

/// A timeout above the layer that fires at the request's own deadline
/// (tonic's `grpc-timeout`, outside every layer) drops the request before
/// ctx's timer thread has fired that deadline: the request ran out of
/// time, it was not abandoned by its client.
#[test]
fn a_request_dropped_after_its_deadline_passed_counts_as_deadline_exceeded() {
    let layer = ContextLayer::new(&Context::background());
    let (tx, rx) = std::sync::mpsc::channel();
    let svc = layer.layer(tower::service_fn(move |req: Request<()>| {
        tx.send(req.context().clone()).unwrap();
        pending::<Result<Response<String>, Infallible>>()
    }));
    let stall = TimerStall::new();
    let req = Request::builder()
        .header("grpc-timeout", "30m")
        .body(())
        .unwrap();
    let mut call = Box::pin(svc.oneshot(req));
    assert!(
        (&mut call).now_or_never().is_none(),
        "the handler never answers"
    );
    let ctx = rx.recv().unwrap();
    while ctx.remaining() != Some(Duration::ZERO) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(ctx.err(), None, "the stalled timer has not fired it yet");
    drop(call);
    assert_eq!(counts(layer.stats()), [0, 0, 1, 0, 0]);
    assert_eq!(ctx.err(), Some(ctx::Error::DeadlineExceeded));
    assert!(ctx
        .cause()
        .unwrap()
        .downcast_ref::<ctx::http::Abandoned>()
        .is_none());
    drop(stall);
}
