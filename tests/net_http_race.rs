//! `ContextLayer` enforces the request context: a handler still running
//! when its context ends is dropped and the layer answers for it (504, 503,
//! or a gRPC status), a body still streaming is cut, and `.cooperative()`
//! turns both off.
//!
//! The handlers here ignore their context and never finish on their own,
//! so an answer can only come from the layer; drop flags show that the
//! handler's future or body was dropped, not left running.

use std::convert::Infallible;
use std::future::pending;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use ctx::http::{Abandoned, ContextLayer, RequestExt, RequestId};
use ctx::{Context, Error};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::{Body as HttpBody, Bytes, Frame};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tower::{Layer, ServiceExt};

#[path = "support/loopback.rs"]
mod loopback;
use loopback::{serve, within};

/// Set when the value holding it is dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn drop_flag() -> (DropFlag, Arc<AtomicBool>) {
    let dropped = Arc::new(AtomicBool::new(false));
    (DropFlag(dropped.clone()), dropped)
}

/// A router whose handler sends its context to the test, then ignores it
/// and never answers; `dropped` is set when its future is dropped.
fn stuck(layer: ContextLayer) -> (Router, mpsc::UnboundedReceiver<Context>, Arc<AtomicBool>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (flag, dropped) = drop_flag();
    let flag = Arc::new(std::sync::Mutex::new(Some(flag)));
    let app = Router::new()
        .route(
            "/",
            get(move |ctx: Context| {
                let flag = flag.lock().unwrap().take();
                async move {
                    let _flag = flag;
                    tx.send(ctx).unwrap();
                    pending::<&'static str>().await
                }
            }),
        )
        .layer(layer);
    (app, rx, dropped)
}

async fn text(resp: Response<hyper::body::Incoming>) -> String {
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

#[tokio::test]
async fn a_handler_that_ignores_its_deadline_is_dropped_and_answered_504() {
    let layer = ContextLayer::new(&Context::background()).max_timeout(Duration::from_millis(100));
    let (app, mut contexts, dropped) = stuck(layer);
    let addr = serve(app).await;

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let req = Request::get(format!("http://{addr}/"))
        .header("x-request-id", "race-1")
        .body(Empty::new())
        .unwrap();
    let sent = Instant::now();
    let resp = within("the answer", client.request(req)).await.unwrap();
    let took = sent.elapsed();

    assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(resp.headers()["x-request-id"], "race-1");
    assert_eq!(
        resp.headers()["content-type"],
        "text/plain; charset=utf-8",
        "as ctx::Error's own axum response"
    );
    assert!(dropped.load(Ordering::SeqCst), "the handler was dropped");
    assert_eq!(text(resp).await, "context deadline exceeded");
    assert!(
        took >= Duration::from_millis(100),
        "not before the deadline: {took:?}"
    );

    let ctx = contexts.recv().await.unwrap();
    assert_eq!(ctx.err(), Some(Error::DeadlineExceeded));
    let cause = ctx.cause().unwrap();
    assert!(
        cause.is(Error::DeadlineExceeded) && cause.downcast_ref::<Abandoned>().is_none(),
        "the deadline ended it, and the layer's answer is no abandonment: {cause}"
    );
}

#[tokio::test]
async fn canceling_the_root_drops_a_handler_that_ignores_it_and_answers_503() {
    let (root, stop) = Context::background().with_cancel();
    let (app, mut contexts, dropped) = stuck(ContextLayer::new(&root));
    let addr = serve(app).await;

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let call = tokio::spawn(client.get(format!("http://{addr}/").parse().unwrap()));
    let ctx = within("the request", contexts.recv()).await.unwrap();
    assert!(!dropped.load(Ordering::SeqCst));
    stop.cancel();
    let resp = within("the answer", call).await.unwrap().unwrap();

    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let id = ctx.value::<RequestId>().unwrap().to_string();
    assert_eq!(
        resp.headers()["x-request-id"],
        id.as_str(),
        "the generated id"
    );
    assert!(dropped.load(Ordering::SeqCst), "the handler was dropped");
    assert_eq!(text(resp).await, "context canceled");
    assert_eq!(ctx.err(), Some(Error::Canceled));
    assert!(ctx.cause().unwrap().downcast_ref::<Abandoned>().is_none());
}

#[tokio::test]
async fn a_context_done_on_arrival_is_answered_without_polling_the_handler() {
    let polled = Arc::new(AtomicBool::new(false));
    let (flag, dropped) = drop_flag();
    let mut flag = Some(flag);
    let svc = ContextLayer::new(&Context::background()).layer(tower::service_fn({
        let polled = polled.clone();
        move |_: Request<Body>| {
            let polled = polled.clone();
            let flag = flag.take();
            async move {
                let _flag = flag;
                polled.store(true, Ordering::SeqCst);
                Ok::<_, Infallible>(Response::new(Body::from("too late")))
            }
        }
    }));
    let req = Request::builder()
        .header("grpc-timeout", "0n")
        .body(Body::empty())
        .unwrap();
    let resp = svc.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(!polled.load(Ordering::SeqCst), "never polled, as ctx.run");
    assert!(dropped.load(Ordering::SeqCst));
}

/// The layer alone, for a gRPC request whose handler never answers: the
/// response once `end` has ended the request context.
async fn grpc_answer(
    content_type: &'static str,
    end: impl FnOnce(&ctx::CancelGuard),
    timeout: Option<&'static str>,
) -> (Response<impl HttpBody<Data = Bytes>>, Arc<AtomicBool>) {
    let (root, stop) = Context::background().with_cancel();
    let (flag, dropped) = drop_flag();
    let mut flag = Some(flag);
    let svc = ContextLayer::new(&root).layer(tower::service_fn(move |_: Request<Body>| {
        let flag = flag.take();
        async move {
            let _flag = flag;
            pending::<Result<Response<Body>, Infallible>>().await
        }
    }));
    let mut req = Request::post("/demo.Worker/Work").header("content-type", content_type);
    if let Some(timeout) = timeout {
        req = req.header("grpc-timeout", timeout);
    }
    let call = tokio::spawn(svc.oneshot(req.body(Body::empty()).unwrap()));
    tokio::task::yield_now().await;
    end(&stop);
    let resp = within("the answer", call).await.unwrap().unwrap();
    (resp, dropped)
}

#[tokio::test]
async fn a_grpc_request_gets_deadline_exceeded_or_cancelled_as_a_grpc_status() {
    for (content_type, timeout, want_code, want_message) in [
        (
            "application/grpc",
            Some("50m"),
            "4",
            "context deadline exceeded",
        ),
        (
            "application/grpc+proto",
            Some("50m"),
            "4",
            "context deadline exceeded",
        ),
        ("application/grpc", None, "1", "context canceled"),
    ] {
        let (resp, dropped) = grpc_answer(
            content_type,
            |stop| {
                if timeout.is_none() {
                    stop.handle().cancel();
                }
            },
            timeout,
        )
        .await;
        assert_eq!(resp.status(), StatusCode::OK, "gRPC says it in grpc-status");
        let headers = resp.headers();
        assert_eq!(headers["content-type"], "application/grpc");
        assert_eq!(headers["grpc-status"], want_code, "{content_type}");
        assert_eq!(headers["grpc-message"], want_message);
        assert!(headers.contains_key("x-request-id"));
        assert!(dropped.load(Ordering::SeqCst), "the handler was dropped");
        assert!(
            resp.body().is_end_stream(),
            "trailers-only: the status is in the head, and no body follows"
        );
        let collected = resp.into_body().collect().await.ok().unwrap();
        assert!(collected.trailers().is_none());
        assert!(collected.to_bytes().is_empty());
    }
}

/// A body: the given chunks, then nothing more, ever; `dropped` is set
/// when it is dropped.
struct Stuck {
    chunks: Vec<&'static str>,
    _flag: DropFlag,
}

impl HttpBody for Stuck {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.chunks.is_empty() {
            return Poll::Pending;
        }
        let chunk = self.chunks.remove(0);
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(chunk.as_bytes())))))
    }
}

/// A server whose one route answers at once with a body of "first" that
/// then never ends, under a 200 ms default timeout; with `length`, the
/// response announces that `content-length`.
async fn streaming(
    length: Option<u64>,
) -> (
    SocketAddr,
    mpsc::UnboundedReceiver<Context>,
    Arc<AtomicBool>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (flag, dropped) = drop_flag();
    let flag = Arc::new(std::sync::Mutex::new(Some(flag)));
    let app = Router::new()
        .route(
            "/",
            get(move |ctx: Context| {
                tx.send(ctx).unwrap();
                let body = Stuck {
                    chunks: vec!["first"],
                    _flag: flag.lock().unwrap().take().unwrap(),
                };
                let mut resp = Response::new(Body::new(body));
                if let Some(length) = length {
                    resp.headers_mut().insert("content-length", length.into());
                }
                async move { resp }
            }),
        )
        .layer(
            ContextLayer::new(&Context::background()).default_timeout(Duration::from_millis(200)),
        );
    (serve(app).await, rx, dropped)
}

const GET: &str = "GET / HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n";

/// Sends a `GET /` and reads until the server closes the connection (an
/// error there, a reset, ends the read too).
async fn exchange(addr: SocketAddr) -> String {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(GET.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match within("the end of the response", conn.read(&mut buf)).await {
            Ok(0) | Err(_) => break,
            Ok(n) => response.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&response).into_owned()
}

/// A chunked body cut by its context is aborted, not ended: the chunk
/// sent, then the connection closed without the last chunk, so that no
/// client takes the cut body for the whole.
#[tokio::test]
async fn a_streaming_body_cut_by_the_context_is_aborted() {
    let (addr, mut contexts, dropped) = streaming(None).await;
    let response = exchange(addr).await;
    assert!(
        response.contains("transfer-encoding: chunked"),
        "{response}"
    );
    assert!(
        response.ends_with("5\r\nfirst\r\n"),
        "the chunk, then the close, no last chunk: {response:?}"
    );
    assert!(
        dropped.load(Ordering::SeqCst),
        "the handler's body was dropped"
    );
    let ctx = contexts.recv().await.unwrap();
    let cause = ctx.cause().unwrap();
    assert!(
        cause.is(Error::DeadlineExceeded) && cause.downcast_ref::<Abandoned>().is_none(),
        "{cause}"
    );
}

/// With a known length, the short body is a failed response: hyper closes
/// the connection, and the client never sees the announced bytes.
#[tokio::test]
async fn a_body_of_known_length_cut_by_the_context_is_seen_short() {
    let (addr, _contexts, dropped) = streaming(Some(100)).await;
    let response = exchange(addr).await;
    assert!(response.contains("content-length: 100"), "{response}");
    let body = response.split_once("\r\n\r\n").unwrap().1;
    assert_eq!(body, "first", "5 of the 100 bytes, then the close");
    assert!(dropped.load(Ordering::SeqCst));
}

/// Through a real HTTP client, over HTTP/1 (chunked) and HTTP/2 (a reset
/// stream): the cut body reads as a failure after its first chunk.
#[tokio::test]
async fn a_client_reading_a_cut_body_sees_it_fail() {
    for http2 in [false, true] {
        let (addr, _contexts, dropped) = streaming(None).await;
        let client = Client::builder(TokioExecutor::new())
            .http2_only(http2)
            .build_http::<Empty<Bytes>>();
        let resp = within(
            "the head",
            client.get(format!("http://{addr}/").parse().unwrap()),
        )
        .await
        .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "the handler's own head");
        let mut body = resp.into_body();
        let first = within("the chunk", body.frame()).await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "first");
        let mut failed = false;
        while let Some(frame) = within("the cut", body.frame()).await {
            assert!(
                frame
                    .as_ref()
                    .map_or(true, |frame| frame.data_ref().is_none()),
                "no data after the cut (HTTP/2: {http2})"
            );
            if frame.is_err() {
                failed = true;
                break;
            }
        }
        assert!(
            failed,
            "the cut body reads as an error, not an end (HTTP/2: {http2})"
        );
        assert!(dropped.load(Ordering::SeqCst));
    }
}

/// The body itself, polled by hand: the chunk, then the context's error
/// (the cause, downcast from the boxed error), then the end.
#[tokio::test]
async fn a_cut_plain_body_yields_the_context_error_then_ends() {
    let (flag, dropped) = drop_flag();
    let mut flag = Some(flag);
    // The server's root, canceled mid-body (as at shutdown).
    let (root, cancel) = Context::background().with_cancel();
    let svc = ContextLayer::new(&root).layer(tower::service_fn(move |_: Request<Body>| {
        let body = Stuck {
            chunks: vec!["first"],
            _flag: flag.take().unwrap(),
        };
        async { Ok::<_, Infallible>(Response::new(Body::new(body))) }
    }));
    let resp = svc.oneshot(Request::new(Body::empty())).await.unwrap();
    let mut body = resp.into_body();
    let first = within("the chunk", body.frame()).await.unwrap().unwrap();
    assert_eq!(first.into_data().unwrap(), "first");
    cancel.cancel();
    let err = within("the cut", body.frame())
        .await
        .unwrap()
        .expect_err("a plain body cut by its context ends in an error");
    assert_eq!(err.downcast_ref::<Error>(), Some(&Error::Canceled), "{err}");
    assert!(
        dropped.load(Ordering::SeqCst),
        "the handler's body was dropped"
    );
    assert!(body.frame().await.is_none(), "then the end");
    assert!(body.is_end_stream());
}

#[tokio::test]
async fn a_grpc_stream_cut_by_its_context_ends_with_the_status_in_trailers() {
    let (flag, dropped) = drop_flag();
    let mut flag = Some(flag);
    let svc = ContextLayer::new(&Context::background()).layer(tower::service_fn(
        move |_: Request<Body>| {
            let body = Stuck {
                chunks: vec!["message"],
                _flag: flag.take().unwrap(),
            };
            let mut resp = Response::new(Body::new(body));
            resp.headers_mut().insert(
                "content-type",
                http::HeaderValue::from_static("application/grpc"),
            );
            async { Ok::<_, Infallible>(resp) }
        },
    ));
    let req = Request::post("/demo.Worker/Watch")
        .header("content-type", "application/grpc")
        .header("grpc-timeout", "100m")
        .body(Body::empty())
        .unwrap();
    let resp = svc.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "the handler's own head");
    let mut body = resp.into_body();

    let first = within("the message", body.frame()).await.unwrap().unwrap();
    assert_eq!(first.into_data().unwrap(), "message");
    let last = within("the cut", body.frame()).await.unwrap().unwrap();
    let trailers = last.into_trailers().expect("trailers end a gRPC stream");
    assert_eq!(trailers["grpc-status"], "4");
    assert_eq!(trailers["grpc-message"], "context deadline exceeded");
    assert!(
        dropped.load(Ordering::SeqCst),
        "the handler's body was dropped"
    );
    assert!(body.frame().await.is_none(), "then the end");
    assert!(body.is_end_stream());
}

#[tokio::test]
async fn a_cooperative_layer_lets_the_handler_and_its_body_run_past_the_end() {
    let (tx, mut contexts) = mpsc::unbounded_channel();
    let layer = ContextLayer::new(&Context::background())
        .max_timeout(Duration::from_millis(50))
        .cooperative();
    let svc = layer.layer(tower::service_fn(move |req: Request<Body>| {
        let ctx = req.context();
        tx.send(ctx.clone()).unwrap();
        async move {
            // Runs on after its context ended: nobody drops it.
            let err = ctx.done().await;
            let late = futures::stream::once(async move {
                ctx.done().await;
                Ok::<_, Infallible>(Frame::data(Bytes::from_static(b" and the body too")))
            });
            let first = futures::stream::once(async move {
                Ok(Frame::data(Bytes::from(format!("answered after: {err}"))))
            });
            let body = StreamBody::new(futures::StreamExt::chain(first, late));
            Ok::<_, Infallible>(Response::new(Body::new(body)))
        }
    }));
    let resp = within("the answer", svc.oneshot(Request::new(Body::empty())))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "the handler's own answer");
    let body = within("the body", resp.into_body().collect())
        .await
        .unwrap();
    assert_eq!(
        body.to_bytes(),
        "answered after: context deadline exceeded and the body too"
    );
    let ctx = contexts.recv().await.unwrap();
    assert_eq!(ctx.err(), Some(Error::DeadlineExceeded));
}

/// The same handler without `.cooperative()` never gets to answer.
#[tokio::test]
async fn without_cooperative_the_same_handler_is_answered_for() {
    let layer = ContextLayer::new(&Context::background()).max_timeout(Duration::from_millis(50));
    let svc = layer.layer(tower::service_fn(|req: Request<Body>| async move {
        let err = req.context().done().await;
        Ok::<_, Infallible>(Response::new(Body::from(format!("answered after: {err}"))))
    }));
    let resp = within("the answer", svc.oneshot(Request::new(Body::empty())))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "context deadline exceeded");
}
