//! `DetachLayer`: a handler that runs to completion in its own task, under
//! a context that keeps the request's deadline and values, that the
//! client's disconnect does not cancel and that the server's root does.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use ctx::http::{Abandoned, ContextLayer, DetachLayer, HandlerPanicked, RequestExt, RequestId};
use ctx::{Context, Error};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tower::util::MapRequestLayer;
use tower::{Layer, ServiceExt};

#[path = "support/loopback.rs"]
mod loopback;
use loopback::{serve, within};

/// What the detached handler reports: the context it got, and later how
/// it finished.
struct Reports {
    /// The request context, as `ContextLayer` made it (seen outside the
    /// detach layer).
    request: mpsc::UnboundedReceiver<Context>,
    /// The handler's context, when it starts.
    detached: mpsc::UnboundedReceiver<Context>,
    /// Sent by the test to let the handler finish.
    go: mpsc::UnboundedSender<()>,
    /// Whether the handler's context was done when it finished.
    finished: mpsc::UnboundedReceiver<Option<Error>>,
}

/// A server with one detached route under `root`, with a 30 s default
/// timeout: the handler reports its context, waits for the test's go (or
/// for its context to end), reports how it finished and answers.
async fn detached_server(root: &Context) -> (SocketAddr, Reports) {
    let (request_tx, request) = mpsc::unbounded_channel();
    let (detached_tx, detached) = mpsc::unbounded_channel();
    let (go, go_rx) = mpsc::unbounded_channel::<()>();
    let go_rx = Arc::new(tokio::sync::Mutex::new(go_rx));
    let (finished_tx, finished) = mpsc::unbounded_channel();
    let handler = move |ctx: Context| {
        let go_rx = go_rx.clone();
        async move {
            detached_tx.send(ctx.clone()).unwrap();
            tokio::select! {
                _ = async { go_rx.lock().await.recv().await } => {}
                _ = ctx.done() => {}
            }
            finished_tx.send(ctx.err()).unwrap();
            "finished"
        }
    };
    let app = Router::new()
        .route("/", get(handler))
        .route_layer(DetachLayer::new())
        .layer(MapRequestLayer::new(move |req: Request<Body>| {
            request_tx.send(req.context()).unwrap();
            req
        }))
        .layer(ContextLayer::new(root).default_timeout(Duration::from_secs(30)));
    let reports = Reports {
        request,
        detached,
        go,
        finished,
    };
    (serve(app).await, reports)
}

const GET: &str = "GET / HTTP/1.1\r\nhost: test\r\n\r\n";

#[tokio::test]
async fn a_detached_route_finishes_after_its_client_hung_up() {
    let (addr, mut reports) = detached_server(&Context::background()).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(GET.as_bytes()).await.unwrap();
    let request = within("the request", reports.request.recv()).await.unwrap();
    let detached = within("the handler", reports.detached.recv())
        .await
        .unwrap();

    // Its own context: the request's values and deadline.
    assert_ne!(detached, request);
    assert_eq!(
        detached.value::<RequestId>(),
        request.value::<RequestId>(),
        "the request's values"
    );
    assert!(detached.deadline().is_some());
    assert_eq!(
        detached.deadline(),
        request.deadline(),
        "the request's deadline"
    );

    // The client hangs up: the request is abandoned, the handler is not.
    drop(conn);
    within("the request's end", request.done()).await;
    assert!(request
        .cause()
        .unwrap()
        .downcast_ref::<Abandoned>()
        .is_some());
    assert_eq!(
        detached.err(),
        None,
        "the disconnect does not reach the handler"
    );

    reports.go.send(()).unwrap();
    let finished = within("the handler's end", reports.finished.recv()).await;
    assert_eq!(finished, Some(None), "it ran to its end, never canceled");
    // Its context ends when it returns, with a plain cancel.
    assert_eq!(within("the end", detached.done()).await, Error::Canceled);
    assert!(detached.cause().unwrap().is(Error::Canceled));
}

/// The server's shutdown reason, as the root's cause.
#[derive(Debug)]
struct ShuttingDown;

impl std::fmt::Display for ShuttingDown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("shutting down")
    }
}

impl std::error::Error for ShuttingDown {}

#[tokio::test]
async fn a_detached_route_is_canceled_by_the_server_root() {
    let (root, stop) = Context::background().with_cancel();
    let (addr, mut reports) = detached_server(&root).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(GET.as_bytes()).await.unwrap();
    let detached = within("the handler", reports.detached.recv())
        .await
        .unwrap();

    stop.cancel_with_cause(ShuttingDown);
    assert_eq!(
        detached.err(),
        Some(Error::Canceled),
        "canceled by the time the root's cancel returns"
    );
    let cause = detached.cause().unwrap();
    assert!(
        cause.downcast_ref::<ShuttingDown>().is_some(),
        "the root's cause: {cause}"
    );
    let finished = within("the handler's end", reports.finished.recv()).await;
    assert_eq!(finished, Some(Some(Error::Canceled)));
}

#[tokio::test]
async fn a_detached_route_answers_a_client_that_waits() {
    let app = Router::new()
        .route(
            "/",
            get(|ctx: Context| async move { format!("done: {:?}", ctx.err()) }),
        )
        .route_layer(DetachLayer::new())
        .layer(ContextLayer::new(&Context::background()));
    let resp = within("the answer", app.oneshot(Request::new(Body::empty())))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().contains_key("x-request-id"));
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "done: None");
}

#[tokio::test]
async fn detach_layer_without_a_context_layer_refuses_the_request() {
    let called = Arc::new(AtomicBool::new(false));
    let svc = DetachLayer::new().layer(tower::service_fn({
        let called = called.clone();
        move |_: Request<Body>| {
            called.store(true, Ordering::SeqCst);
            async { Ok::<_, Infallible>(Response::new(Body::from("unreachable"))) }
        }
    }));

    let resp = svc
        .clone()
        .oneshot(Request::new(Body::empty()))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .is_empty());

    let req = Request::post("/demo.Worker/Work")
        .header("content-type", "application/grpc")
        .body(Body::empty())
        .unwrap();
    let resp = svc.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "gRPC says it in grpc-status");
    assert_eq!(resp.headers()["grpc-status"], "13", "INTERNAL");
    let message = resp.headers()["grpc-message"].to_str().unwrap();
    assert!(message.contains("ctx::http::ContextLayer"), "{message}");

    assert!(
        !called.load(Ordering::SeqCst),
        "the handler is never called"
    );
}

#[tokio::test]
async fn a_detached_handler_that_panics_ends_its_context_with_handler_panicked() {
    use futures::FutureExt;
    use std::panic::AssertUnwindSafe;

    let (tx, mut contexts) = mpsc::unbounded_channel();
    let svc = ContextLayer::new(&Context::background()).layer(DetachLayer::new().layer(
        tower::service_fn(move |req: Request<Body>| {
            tx.send(req.context()).unwrap();
            async {
                panic!("detached and broken");
                #[allow(unreachable_code)]
                Ok::<_, Infallible>(Response::new(Body::empty()))
            }
        }),
    ));
    let call = AssertUnwindSafe(svc.oneshot(Request::new(Body::empty())));
    let payload = within("the panic", call.catch_unwind()).await.unwrap_err();
    assert_eq!(
        payload.downcast_ref::<&str>(),
        Some(&"detached and broken"),
        "the panic goes on with its payload"
    );
    let detached = contexts.recv().await.unwrap();
    let cause = detached.cause().unwrap();
    let panicked = cause.downcast_ref::<HandlerPanicked>();
    assert_eq!(
        panicked.and_then(HandlerPanicked::message),
        Some("detached and broken")
    );
}

/// The response of a handler whose client left is dropped: nothing waits
/// for it, and the task still finishes.
#[tokio::test]
async fn a_detached_response_nobody_waits_for_is_discarded() {
    let (done_tx, done) = oneshot::channel();
    let (go, go_rx) = oneshot::channel::<()>();
    let go_rx = Arc::new(std::sync::Mutex::new(Some(go_rx)));
    let done_tx = Arc::new(std::sync::Mutex::new(Some(done_tx)));
    let svc = ContextLayer::new(&Context::background()).layer(DetachLayer::new().layer(
        tower::service_fn(move |_: Request<Body>| {
            let go_rx = go_rx.lock().unwrap().take().unwrap();
            let done_tx = done_tx.lock().unwrap().take().unwrap();
            async move {
                let _ = go_rx.await;
                done_tx.send(()).unwrap();
                Ok::<_, Infallible>(Response::new(Body::from("nobody reads this")))
            }
        }),
    ));
    let call = svc.oneshot(Request::new(Body::empty()));
    // Polled once (the task starts), then dropped: the client left.
    let mut call = Box::pin(call);
    assert!(futures::poll!(call.as_mut()).is_pending());
    drop(call);
    go.send(()).unwrap();
    within("the handler's end", done).await.unwrap();
}

/// `DetachLayer::wait` waits for the handlers still running after their
/// clients went away, so a server can let them finish before its runtime
/// ends; `in_flight` counts them.
#[tokio::test]
async fn wait_returns_once_the_detached_handlers_have_finished() {
    use futures::FutureExt;
    let detach = DetachLayer::new();
    let (go, gate) = tokio::sync::watch::channel(false);
    let (finished_tx, mut finished) = mpsc::unbounded_channel();
    let handler = tower::service_fn(move |_: Request<()>| {
        let mut gate = gate.clone();
        let finished = finished_tx.clone();
        async move {
            gate.wait_for(|go| *go).await.unwrap();
            finished.send(()).unwrap();
            Ok::<_, Infallible>(Response::new(String::new()))
        }
    });
    let svc = ContextLayer::new(&Context::background()).layer(detach.clone().layer(handler));
    for _ in 0..3 {
        // Each client goes away before the answer.
        let mut call = Box::pin(svc.clone().oneshot(Request::new(())));
        assert!((&mut call).now_or_never().is_none());
    }
    within("the handlers' start", async {
        while detach.in_flight() < 3 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(detach.in_flight(), 3);
    let mut waiting = Box::pin(detach.wait());
    assert!((&mut waiting).now_or_never().is_none(), "three still run");

    go.send(true).unwrap();
    within("the wait", waiting).await;
    assert_eq!(detach.in_flight(), 0);
    for _ in 0..3 {
        assert_eq!(
            finished.try_recv(),
            Ok(()),
            "each finished before the wait ended"
        );
    }
    // Nothing runs: at once.
    assert_eq!(detach.wait().now_or_never(), Some(()));
}

/// A detached handler dropped by its runtime's shutdown stops counting.
#[test]
fn a_handler_dropped_by_its_runtimes_shutdown_is_no_longer_in_flight() {
    use futures::FutureExt;
    let detach = DetachLayer::new();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let handler = tower::service_fn(|_: Request<()>| async {
            std::future::pending::<()>().await;
            Ok::<_, Infallible>(Response::new(String::new()))
        });
        let svc = ContextLayer::new(&Context::background()).layer(detach.clone().layer(handler));
        let mut call = Box::pin(svc.oneshot(Request::new(())));
        assert!((&mut call).now_or_never().is_none());
    });
    assert_eq!(detach.in_flight(), 1);
    drop(runtime);
    assert_eq!(detach.in_flight(), 0);
    assert_eq!(detach.wait().now_or_never(), Some(()));
}
