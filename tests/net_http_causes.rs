//! How a request context behind `ContextLayer` ends, one test per way a
//! response can be finished or cut off, over real loopback HTTP/1.1.
//!
//! The rule: the cause is `Abandoned` if and only if the response future or
//! body is dropped before the response was written in full. A response
//! counts as written in full when its body has ended, when the body says it
//! is over (`is_end_stream`), once it has yielded exactly its known length
//! (exact size hint or `content-length`), and at once when nothing of the
//! body goes on the wire: a `HEAD` request, a 1xx, 204 or 304 status, a 101
//! upgrade, a 2xx answer to `CONNECT`. A panicking handler or body ends it
//! with `HandlerPanicked`. Every other end is a plain cancel.
//!
//! Most bodies here never end on their own (they wait forever after their
//! data), so a test passes only if the layer reads the finish from the rule
//! and not from a last poll of the body that hyper and axum do not make.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use axum::body::Body;
use axum::extract::State;
use axum::routing::{any, get};
use axum::Router;
use ctx::http::{Abandoned, ContextLayer, HandlerPanicked};
use ctx::{Cause, Context, Error};
use http::{Response, StatusCode};
use hyper::body::{Bytes, Frame, SizeHint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tower::{Layer, ServiceExt};

#[path = "support/loopback.rs"]
mod loopback;
use loopback::{serve, within};

type Respond = Arc<dyn Fn() -> Response<Body> + Send + Sync>;

/// A server whose every route and method answers with `respond()`, after
/// sending the request context to the test; `/ok` answers "ok".
async fn answering(
    respond: impl Fn() -> Response<Body> + Send + Sync + 'static,
) -> (SocketAddr, mpsc::UnboundedReceiver<Context>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let respond: Respond = Arc::new(respond);
    let handler = |State((tx, respond)): State<(mpsc::UnboundedSender<Context>, Respond)>,
                   ctx: Context| async move {
        tx.send(ctx).unwrap();
        respond()
    };
    let app = Router::new()
        .route("/", any(handler))
        .route("/ok", get(|| async { "ok" }))
        .fallback(handler)
        .with_state((tx, respond))
        .layer(ContextLayer::new(&Context::background()));
    (serve(app).await, rx)
}

/// Sends `request` (ending with its blank line) and reads until the server
/// closes the connection.
async fn exchange(addr: SocketAddr, request: &str) -> String {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    within("the response", conn.read_to_end(&mut response))
        .await
        .unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

/// Sends `request` and reads until `until` has arrived; returns the open
/// connection and what was read.
async fn read_until(addr: SocketAddr, request: &str, until: &str) -> (TcpStream, String) {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    while !String::from_utf8_lossy(&response).contains(until) {
        let mut buf = [0u8; 1024];
        let n = within("the response", conn.read(&mut buf)).await.unwrap();
        assert_ne!(n, 0, "closed before {until:?}: {response:?}");
        response.extend_from_slice(&buf[..n]);
    }
    (conn, String::from_utf8_lossy(&response).into_owned())
}

async fn cause(contexts: &mut mpsc::UnboundedReceiver<Context>) -> Cause {
    let ctx = within("the request", contexts.recv()).await.unwrap();
    within("the end of the request context", ctx.done()).await;
    ctx.cause().unwrap()
}

#[track_caller]
fn assert_plain_cancel(cause: &Cause) {
    assert!(
        cause.is(Error::Canceled) && cause.downcast_ref::<Abandoned>().is_none(),
        "a response written in full ends with a plain cancel, not: {cause}"
    );
}

#[track_caller]
fn assert_abandoned(cause: &Cause) {
    assert!(
        cause.downcast_ref::<Abandoned>().is_some(),
        "a response cut off ends as abandoned, not: {cause}"
    );
}

/// What a test body does after its chunks.
#[derive(Clone, Copy)]
enum Then {
    /// Waits forever, never saying it is over: only a dropped body ends.
    Wait,
    /// Says it is over (`is_end_stream`) but never yields the end.
    SayOver,
}

/// A body of the given chunks, then `then`.
struct Chunks {
    chunks: VecDeque<Bytes>,
    then: Then,
    hint: SizeHint,
}

impl Chunks {
    fn new(chunks: &[&'static str], then: Then) -> Chunks {
        Chunks {
            chunks: chunks
                .iter()
                .map(|c| Bytes::from_static(c.as_bytes()))
                .collect(),
            then,
            hint: SizeHint::default(),
        }
    }

    /// The same, with an exact size hint of the chunks' total length.
    fn exact(chunks: &[&'static str], then: Then) -> Chunks {
        let len = chunks.iter().map(|c| c.len() as u64).sum();
        Chunks {
            hint: SizeHint::with_exact(len),
            ..Chunks::new(chunks, then)
        }
    }

    fn into_response(self, status: StatusCode) -> Response<Body> {
        let mut resp = Response::new(Body::new(self));
        *resp.status_mut() = status;
        resp
    }
}

impl hyper::body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.chunks.pop_front() {
            Some(chunk) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
            // Never woken: the body stays open until it is dropped.
            None => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.then, Then::SayOver) && self.chunks.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        // The hint stays what it was at the start, as a body whose length
        // comes from elsewhere (a file's metadata) would report it.
        self.hint
    }
}

const GET: &str = "GET / HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n";

#[tokio::test]
async fn a_get_read_in_full_ends_with_a_plain_cancel() {
    let (addr, mut contexts) = answering(|| Response::new(Body::from("hello"))).await;
    let response = exchange(addr, GET).await;
    assert!(response.ends_with("\r\n\r\nhello"), "{response}");
    assert_plain_cancel(&cause(&mut contexts).await);
}

#[tokio::test]
async fn a_head_request_answered_in_full_ends_with_a_plain_cancel() {
    let (addr, mut contexts) = answering(|| Response::new(Body::from("hello"))).await;
    let response = exchange(
        addr,
        "HEAD / HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("content-length: 5"), "{response}");
    assert!(response.ends_with("\r\n\r\n"), "no body: {response}");
    assert_plain_cancel(&cause(&mut contexts).await);
}

#[tokio::test]
async fn a_204_or_304_ends_with_a_plain_cancel() {
    for status in [StatusCode::NO_CONTENT, StatusCode::NOT_MODIFIED] {
        let (addr, mut contexts) =
            answering(move || Chunks::new(&["ignored"], Then::Wait).into_response(status)).await;
        let response = exchange(addr, GET).await;
        assert!(
            response.starts_with(&format!("HTTP/1.1 {}", status.as_u16())),
            "{response}"
        );
        assert_plain_cancel(&cause(&mut contexts).await);
    }
}

/// hyper cannot send a 1xx as the final answer: it sends a 500 without a
/// body instead. The handler's body never goes on the wire either way.
#[tokio::test]
async fn a_1xx_answer_ends_with_a_plain_cancel() {
    let (addr, mut contexts) = answering(|| {
        Chunks::new(&["ignored"], Then::Wait).into_response(StatusCode::from_u16(103).unwrap())
    })
    .await;
    let response = exchange(addr, GET).await;
    assert!(response.starts_with("HTTP/1.1 500"), "{response}");
    assert_plain_cancel(&cause(&mut contexts).await);
}

#[tokio::test]
async fn a_101_upgrade_ends_with_a_plain_cancel() {
    let (addr, mut contexts) = answering(|| {
        let mut resp =
            Chunks::new(&["ignored"], Then::Wait).into_response(StatusCode::SWITCHING_PROTOCOLS);
        resp.headers_mut()
            .insert("connection", http::HeaderValue::from_static("upgrade"));
        resp.headers_mut()
            .insert("upgrade", http::HeaderValue::from_static("test"));
        resp
    })
    .await;
    let (_conn, response) = read_until(
        addr,
        "GET / HTTP/1.1\r\nhost: test\r\nconnection: upgrade\r\nupgrade: test\r\n\r\n",
        "\r\n\r\n",
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 101"), "{response}");
    assert_plain_cancel(&cause(&mut contexts).await);
}

/// A 2xx answer to `CONNECT` opens a tunnel: as with an upgrade, the
/// response has no body on the wire.
#[tokio::test]
async fn a_2xx_answer_to_connect_ends_with_a_plain_cancel() {
    let (addr, mut contexts) =
        answering(|| Chunks::new(&["ignored"], Then::Wait).into_response(StatusCode::OK)).await;
    let (_conn, response) = read_until(
        addr,
        "CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\n\r\n",
        "\r\n\r\n",
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert_plain_cancel(&cause(&mut contexts).await);
}

#[tokio::test]
async fn a_body_that_yielded_its_exact_size_hint_ends_with_a_plain_cancel() {
    let (addr, mut contexts) =
        answering(|| Chunks::exact(&["hel", "lo"], Then::Wait).into_response(StatusCode::OK)).await;
    let response = exchange(addr, GET).await;
    assert!(response.contains("content-length: 5"), "{response}");
    assert!(response.ends_with("\r\n\r\nhello"), "{response}");
    assert_plain_cancel(&cause(&mut contexts).await);
}

#[tokio::test]
async fn a_body_that_yielded_its_content_length_ends_with_a_plain_cancel() {
    let (addr, mut contexts) = answering(|| {
        let mut resp = Chunks::new(&["hel", "lo"], Then::Wait).into_response(StatusCode::OK);
        resp.headers_mut()
            .insert("content-length", http::HeaderValue::from_static("5"));
        resp
    })
    .await;
    let response = exchange(addr, GET).await;
    assert!(response.ends_with("\r\n\r\nhello"), "{response}");
    assert_plain_cancel(&cause(&mut contexts).await);
}

#[tokio::test]
async fn a_streaming_body_that_says_it_is_over_ends_with_a_plain_cancel() {
    let (addr, mut contexts) =
        answering(|| Chunks::new(&["hel", "lo"], Then::SayOver).into_response(StatusCode::OK))
            .await;
    let response = exchange(addr, GET).await;
    assert!(
        response.contains("transfer-encoding: chunked"),
        "{response}"
    );
    assert!(
        response.ends_with("0\r\n\r\n"),
        "the last chunk: {response}"
    );
    assert_plain_cancel(&cause(&mut contexts).await);
}

#[tokio::test]
async fn a_client_that_hangs_up_mid_body_abandons_the_request() {
    // Unknown length and a known one: neither is written in full.
    for exact in [false, true] {
        let (addr, mut contexts) = answering(move || {
            let chunks = ["first"];
            let body = if exact {
                Chunks {
                    hint: SizeHint::with_exact(100),
                    ..Chunks::new(&chunks, Then::Wait)
                }
            } else {
                Chunks::new(&chunks, Then::Wait)
            };
            body.into_response(StatusCode::OK)
        })
        .await;
        let (conn, _) = read_until(addr, GET, "first").await;
        drop(conn);
        assert_abandoned(&cause(&mut contexts).await);
    }
}

#[tokio::test]
async fn a_client_that_hangs_up_before_the_head_abandons_the_request() {
    let (tx, mut contexts) = mpsc::unbounded_channel();
    let app = Router::new()
        .route(
            "/",
            get(|ctx: Context| async move {
                tx.send(ctx.clone()).unwrap();
                Err::<(), _>(ctx.done().await)
            }),
        )
        .layer(ContextLayer::new(&Context::background()));
    let addr = serve(app).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(GET.as_bytes()).await.unwrap();
    let ctx = within("the request", contexts.recv()).await.unwrap();
    drop(conn);
    within("the cancel", ctx.done()).await;
    assert_abandoned(&ctx.cause().unwrap());
}

/// A panic payload whose own `Drop` panics.
struct Bomb;

impl Drop for Bomb {
    fn drop(&mut self) {
        panic!("the payload's drop panics too");
    }
}

/// Sends a `GET /` whose handler panics: the server closes the connection
/// without an answer.
async fn get_and_get_cut_off(addr: SocketAddr) {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(GET.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    // A reset or an orderly close, either way nothing.
    let _ = within("the close", conn.read_to_end(&mut response)).await;
    assert!(
        response.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&response)
    );
}

async fn assert_still_serving(addr: SocketAddr) {
    let response = exchange(
        addr,
        "GET /ok HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(response.ends_with("\r\n\r\nok"), "{response}");
}

#[tokio::test]
async fn a_panicking_handler_ends_with_handler_panicked_and_the_server_stays_up() {
    let (addr, mut contexts) = answering(|| panic!("no such user")).await;
    get_and_get_cut_off(addr).await;
    let cause = cause(&mut contexts).await;
    let panicked = cause.downcast_ref::<HandlerPanicked>();
    assert!(panicked.is_some(), "a handler panic, not: {cause}");
    assert_eq!(panicked.unwrap().message(), Some("no such user"));
    assert_still_serving(addr).await;
}

#[tokio::test]
async fn a_handler_panic_whose_payload_panics_on_drop_leaves_the_server_up() {
    let (addr, mut contexts) = answering(|| std::panic::panic_any(Bomb)).await;
    for _ in 0..3 {
        get_and_get_cut_off(addr).await;
        let cause = cause(&mut contexts).await;
        let panicked = cause.downcast_ref::<HandlerPanicked>();
        assert!(panicked.is_some(), "a handler panic, not: {cause}");
        assert_eq!(panicked.unwrap().message(), None, "not a string payload");
        assert_still_serving(addr).await;
    }
}

/// A body that yields one chunk, then panics.
struct PanickingBody {
    sent: bool,
}

impl hyper::body::Body for PanickingBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if std::mem::replace(&mut self.sent, true) {
            panic!("the body broke");
        }
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"first")))))
    }
}

#[tokio::test]
async fn a_body_that_panics_mid_stream_ends_with_handler_panicked() {
    let (addr, mut contexts) =
        answering(|| Response::new(Body::new(PanickingBody { sent: false }))).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(GET.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let _ = within("the close", conn.read_to_end(&mut response)).await;
    let cause = cause(&mut contexts).await;
    let panicked = cause.downcast_ref::<HandlerPanicked>();
    assert!(panicked.is_some(), "a body panic, not: {cause}");
    assert_eq!(panicked.unwrap().message(), Some("the body broke"));
    assert_still_serving(addr).await;
}

/// A payload the test can recognize.
#[derive(Debug, PartialEq)]
struct Marker(u32);

/// The layer alone: a panic in the service's `call` or in its future
/// reaches the caller with its own payload, and the context the handler got
/// ends with `HandlerPanicked`.
#[tokio::test]
async fn the_layer_lets_a_handler_panic_go_on_with_its_payload() {
    use futures::FutureExt;
    use std::panic::AssertUnwindSafe;

    for in_call in [true, false] {
        let (tx, mut contexts) = mpsc::unbounded_channel();
        let svc = ContextLayer::new(&Context::background()).layer(tower::service_fn(
            move |req: http::Request<Body>| {
                tx.send(ctx::http::RequestExt::context(&req)).unwrap();
                if in_call {
                    std::panic::panic_any(Marker(1));
                }
                async {
                    std::panic::panic_any(Marker(2));
                    #[allow(unreachable_code)]
                    Ok::<_, Infallible>(Response::new(Body::empty()))
                }
            },
        ));
        let call = AssertUnwindSafe(svc.oneshot(http::Request::new(Body::empty())));
        let payload = call.catch_unwind().await.unwrap_err();
        let want = Marker(if in_call { 1 } else { 2 });
        assert_eq!(
            payload.downcast_ref::<Marker>(),
            Some(&want),
            "the same payload"
        );
        let cause = cause(&mut contexts).await;
        assert!(
            cause.downcast_ref::<HandlerPanicked>().is_some(),
            "in_call {in_call}: {cause}"
        );
    }
}
