//! `ctx::grpc`: the gRPC example on a real tonic server and channel on
//! 127.0.0.1, and the interceptor on its own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ctx::grpc::RequestExt;
use ctx::Context;
use tokio::sync::mpsc;
use tonic::Code;

// `pub mod`: the example's `pub fn main`, which only its own binary calls,
// is then reachable from this crate's root and not dead code here.
#[path = "../examples/grpc.rs"]
pub mod grpc;

/// Generous: how long anything prompt may take on a busy two-core machine.
const PATIENCE: Duration = Duration::from_secs(5);

#[tokio::test]
async fn grpc_deadline_reaches_the_handler_and_ends_its_work() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let say: grpc::Say = Arc::new(move |line| {
        let _ = tx.send(line);
    });
    let outcome = grpc::story(say).await.unwrap();
    eprintln!("grpc: {outcome:?}");

    // The caller's deadline, less the trip, is the handler's.
    assert!(outcome.seen <= outcome.sent, "{outcome:?}");
    assert!(outcome.seen > outcome.sent / 2, "{outcome:?}");
    assert!(outcome.same_id);

    let (code, took, in_handler) = &outcome.slow;
    assert_eq!(*code, Code::DeadlineExceeded);
    assert!(
        *took >= Duration::from_millis(200) && *took < PATIENCE,
        "{took:?}"
    );
    // Whichever came first, the handler's own deadline or the caller's
    // reset of the stream, the handler's context ended with the call.
    assert!(
        in_handler == "context deadline exceeded" || in_handler.starts_with("request abandoned"),
        "{in_handler}"
    );

    assert_eq!(outcome.late, Code::DeadlineExceeded);
    assert_eq!(outcome.handled, 2, "the late call never reached the server");

    let lines: Vec<String> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
    assert_eq!(lines.len(), 5, "{lines:#?}");
    assert_eq!(lines[1], "handler: saw the caller's request id: true");
    assert_eq!(
        lines[4],
        "caller, deadline passed: DeadlineExceeded, not sent"
    );
}

#[tokio::test]
async fn canceling_the_server_root_cancels_calls_in_flight() {
    let (ended, mut endings) = mpsc::unbounded_channel();
    let (root, stop) = Context::background().with_cancel();
    let worker = grpc::Worker::new(ended);
    let started = worker.started();
    let addr = grpc::serve(&root, worker).await.unwrap();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = grpc::WorkerClient::new(
        tower::ServiceBuilder::new()
            .layer(ctx::grpc::ClientLayer::new())
            .service(channel),
    );
    let call = tokio::spawn(async move {
        client
            .work(tonic::Request::new(grpc::WorkRequest { millis: 60_000 }))
            .await
    });
    tokio::time::timeout(PATIENCE, started.notified())
        .await
        .expect("the call reaches the handler");
    stop.cancel();
    let status = tokio::time::timeout(PATIENCE, call)
        .await
        .expect("the call ends")
        .unwrap()
        .unwrap_err();
    assert_eq!(status.code(), Code::Cancelled, "{status:?}");
    let ended = tokio::time::timeout(PATIENCE, endings.recv())
        .await
        .unwrap();
    assert_eq!(ended.as_deref(), Some("context canceled"));
}

/// A `demo.Worker` that ignores its context and never answers; `dropped`
/// is set when a call's future is dropped.
#[derive(Clone)]
struct Ignoring {
    dropped: Arc<AtomicBool>,
}

/// Sets its flag when dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl tonic::server::NamedService for Ignoring {
    const NAME: &'static str = "demo.Worker";
}

impl tower::Service<http::Request<tonic::body::Body>> for Ignoring {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Request<tonic::body::Body>) -> Self::Future {
        let flag = DropFlag(self.dropped.clone());
        Box::pin(async move {
            let _flag = flag;
            std::future::pending().await
        })
    }
}

/// `ContextLayer` answers for a handler that ignores its context, in the
/// trailers-only form a real tonic client reads as the status.
#[tokio::test]
async fn a_handler_that_ignores_its_deadline_fails_the_call_with_deadline_exceeded() {
    let dropped = Arc::new(AtomicBool::new(false));
    let incoming = tonic::transport::server::TcpIncoming::bind(([127, 0, 0, 1], 0).into()).unwrap();
    let addr = incoming.local_addr().unwrap();
    let router = tonic::transport::Server::builder()
        .layer(
            ctx::http::ContextLayer::new(&Context::background())
                .max_timeout(Duration::from_millis(100)),
        )
        .add_service(Ignoring {
            dropped: dropped.clone(),
        });
    tokio::spawn(router.serve_with_incoming(incoming));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    // No deadline from the caller: only the layer's maximum can end it.
    let mut client = grpc::WorkerClient::new(channel);
    let call = client.work(tonic::Request::new(grpc::WorkRequest { millis: 0 }));
    let status = tokio::time::timeout(PATIENCE, call)
        .await
        .expect("the layer answers")
        .unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert_eq!(status.message(), "context deadline exceeded");
    assert!(dropped.load(Ordering::SeqCst), "the handler was dropped");
}

/// A detached tonic service is still a tonic service: `DetachService` is a
/// `NamedService` when the service inside is.
#[test]
fn a_detached_service_can_be_added_to_a_tonic_server() {
    use tower::Layer;
    let detached = ctx::http::DetachLayer::new().layer(Ignoring {
        dropped: Arc::new(AtomicBool::new(false)),
    });
    assert_eq!(
        <ctx::http::DetachService<Ignoring> as tonic::server::NamedService>::NAME,
        "demo.Worker"
    );
    let _router = tonic::transport::Server::builder()
        .layer(ctx::http::ContextLayer::new(&Context::background()))
        .add_service(detached);
}

#[test]
fn the_interceptor_sends_the_time_left_and_refuses_done_contexts() {
    let id = ctx::http::RequestId::generate();
    let (ctx, cancel) = Context::background()
        .with_value(id.clone())
        .with_timeout(Duration::from_secs(3));
    let req = ctx::grpc::interceptor(ctx::grpc::request(&ctx, ())).unwrap();
    let sent = req
        .metadata()
        .get("grpc-timeout")
        .unwrap()
        .to_str()
        .unwrap();
    let sent = ctx::http::decode_timeout(&sent.parse().unwrap()).unwrap();
    assert!(
        sent <= Duration::from_secs(3) && sent > Duration::from_secs(2),
        "{sent:?}"
    );
    assert_eq!(req.metadata().get("x-request-id").unwrap(), id.as_str());
    assert!(req.context().remaining().is_some());

    cancel.cancel();
    let status = ctx::grpc::interceptor(ctx::grpc::request(&ctx, ())).unwrap_err();
    assert_eq!(status.code(), Code::Cancelled);

    // A request without a context passes through untouched.
    let plain = ctx::grpc::interceptor(tonic::Request::new(())).unwrap();
    assert!(plain.metadata().get("grpc-timeout").is_none());
}

/// The interceptor writes the headers by the HTTP client layer's rule (see
/// `net_http`'s `outgoing_calls_keep_the_callers_own_request_id_and_shorter_timeout`):
/// what the caller set on the call itself and asks for less wins.
#[test]
fn the_interceptor_keeps_the_callers_own_request_id_and_shorter_timeout() {
    let (ctx, _cancel) = Context::background()
        .with_value(ctx::http::RequestId::generate())
        .with_timeout(Duration::from_secs(3));
    let sent_timeout = |req: &tonic::Request<()>| {
        let text = req
            .metadata()
            .get("grpc-timeout")
            .unwrap()
            .to_str()
            .unwrap();
        ctx::http::decode_timeout(&text.parse().unwrap()).unwrap()
    };

    let mut req = ctx::grpc::request(&ctx, ());
    req.metadata_mut()
        .insert("x-request-id", "mine".parse().unwrap());
    req.set_timeout(Duration::from_secs(1));
    let req = ctx::grpc::interceptor(req).unwrap();
    assert_eq!(req.metadata().get("x-request-id").unwrap(), "mine");
    assert_eq!(sent_timeout(&req), Duration::from_secs(1));
    assert!(req.context().remaining().is_some());

    // A longer timeout of its own gives way to the time left.
    let mut req = ctx::grpc::request(&ctx, ());
    req.set_timeout(Duration::from_secs(60));
    let req = ctx::grpc::interceptor(req).unwrap();
    assert!(sent_timeout(&req) <= Duration::from_secs(3));
}

/// The names from before 0.2.0 still compile, as aliases of the names by
/// role: deleting or retargeting an alias breaks this test's build.
#[test]
#[allow(deprecated)] // the old names are the point
fn the_old_names_are_aliases_of_the_names_by_role() {
    use std::any::TypeId;
    type Fut = std::future::Ready<()>;
    assert_eq!(
        TypeId::of::<ctx::grpc::ResponseFuture<Fut>>(),
        TypeId::of::<ctx::grpc::client::ResponseFuture<Fut>>()
    );
    assert_eq!(
        TypeId::of::<ctx::grpc::StatusBody<String>>(),
        TypeId::of::<ctx::grpc::client::ResponseBody<String>>()
    );
}

/// Calls `demo.Worker/Work` at `addr` `n` times at once over one HTTP/2
/// connection, each with `grpc-timeout: {timeout}`, from a bare client that
/// keeps no timer of its own (a tonic client's own timeout would reset the
/// stream at its deadline, before the server's); the `grpc-status` and
/// `grpc-message` of each answer.
async fn raw_calls(addr: std::net::SocketAddr, n: usize, timeout: &str) -> Vec<(String, String)> {
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let calls = (0..n).map(|_| {
        let client = client.clone();
        async move {
            let req = http::Request::post(format!("http://{addr}/demo.Worker/Work"))
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .header("grpc-timeout", timeout)
                // One empty message: a `WorkRequest` with its defaults.
                .body(Full::new(Bytes::from_static(&[0, 0, 0, 0, 0])))
                .unwrap();
            let resp = client.request(req).await.unwrap();
            let (head, body) = resp.into_parts();
            // Trailers-only answers carry the status in the head.
            let fields = match head.headers.get("grpc-status") {
                Some(_) => head.headers,
                None => body
                    .collect()
                    .await
                    .unwrap()
                    .trailers()
                    .cloned()
                    .unwrap_or_default(),
            };
            let field = |name: &str| {
                fields
                    .get(name)
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default()
            };
            (field("grpc-status"), field("grpc-message"))
        }
    });
    tokio::time::timeout(PATIENCE, futures::future::join_all(calls))
        .await
        .expect("every call ends")
}

/// Waits until `layer` has counted `n` ended request contexts.
async fn ended(layer: &ctx::http::ContextLayer, n: u64) -> ctx::http::Stats {
    tokio::time::timeout(PATIENCE, async {
        while layer.stats().ended() < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("every request context ends");
    layer.stats()
}

/// On tonic's `Server`, tonic's own timeout reads the caller's
/// `grpc-timeout` outside every layer and may answer first (`CANCELLED`,
/// "Timeout expired"), dropping the layer's future at the deadline; either
/// way each request context ends by its deadline, and the layer counts it
/// so, not as abandoned by its client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_tonics_server_a_callers_deadline_is_counted_as_a_deadline() {
    let layer = ctx::http::ContextLayer::new(&Context::background());
    let incoming = tonic::transport::server::TcpIncoming::bind(([127, 0, 0, 1], 0).into()).unwrap();
    let addr = incoming.local_addr().unwrap();
    let router = tonic::transport::Server::builder()
        .layer(layer.clone())
        .add_service(Ignoring {
            dropped: Arc::new(AtomicBool::new(false)),
        });
    tokio::spawn(router.serve_with_incoming(incoming));
    let n = 100;
    for (status, message) in raw_calls(addr, n, "20m").await {
        assert!(
            (status == "1" && message == "Timeout%20expired")
                || (status == "4" && message == "context deadline exceeded"),
            "{status} {message}"
        );
    }
    let stats = ended(&layer, n as u64).await;
    assert_eq!(stats.abandoned(), 0, "{stats:?}");
    assert_eq!(stats.deadline_exceeded(), n as u64, "{stats:?}");
}

/// Served without tonic's `Server` (its routes as an axum router, the layer
/// around them), nothing else reads `grpc-timeout`: the layer answers a
/// caller's passed deadline with `DEADLINE_EXCEEDED`.
#[tokio::test]
async fn routes_served_by_axum_answer_a_callers_deadline_with_deadline_exceeded() {
    let layer = ctx::http::ContextLayer::new(&Context::background());
    let dropped = Arc::new(AtomicBool::new(false));
    let app = tonic::service::Routes::new(Ignoring {
        dropped: dropped.clone(),
    })
    .into_axum_router()
    .layer(layer.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let answers = raw_calls(addr, 1, "50m").await;
    assert_eq!(
        answers[0],
        ("4".to_owned(), "context deadline exceeded".to_owned())
    );
    assert!(dropped.load(Ordering::SeqCst), "the handler was dropped");
    assert_eq!(ended(&layer, 1).await.deadline_exceeded(), 1);
}
