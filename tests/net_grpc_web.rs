//! gRPC-Web through `ContextLayer`: the layer speaks the protocol the
//! request speaks. A stream cut by its context ends with a gRPC-Web
//! trailer frame in the body (gRPC-Web carries its status there: over
//! HTTP/1.1 no HTTP trailers reach a browser), base64 for
//! `application/grpc-web-text`; the layer's own answer before the head
//! keeps the request's gRPC-Web `content-type`.
//!
//! The handlers here ignore their context and never finish on their own,
//! so the status can only come from the layer.

use std::convert::Infallible;
use std::future::pending;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use ctx::http::{Abandoned, ContextLayer, DetachLayer};
use ctx::{Context, Error};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::{Body as HttpBody, Bytes, Frame};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
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

/// A body: the given chunks, then nothing more, ever; its flag is set
/// when it is dropped.
struct Stuck {
    chunks: Vec<Bytes>,
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
        Poll::Ready(Some(Ok(Frame::data(self.chunks.remove(0)))))
    }
}

/// A gRPC-Web message frame: flag 0, the length, the message.
fn message_frame(message: &[u8]) -> Vec<u8> {
    let mut frame = vec![0];
    frame.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(message);
    frame
}

/// A server whose one route answers at once with `content_type` and a
/// body of `first` that then never ends, under a 200 ms default timeout;
/// also the request contexts, and whether the handler's body was dropped.
async fn streaming(
    content_type: &'static str,
    first: Vec<u8>,
) -> (
    SocketAddr,
    mpsc::UnboundedReceiver<Context>,
    Arc<AtomicBool>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = Arc::new(Mutex::new(Some(DropFlag(dropped.clone()))));
    let first = Bytes::from(first);
    let app = Router::new()
        .route(
            "/demo.Worker/Watch",
            axum::routing::post(move |ctx: Context| {
                tx.send(ctx).unwrap();
                let body = Stuck {
                    chunks: vec![first.clone()],
                    _flag: flag.lock().unwrap().take().unwrap(),
                };
                let mut resp = Response::new(Body::new(body));
                resp.headers_mut()
                    .insert("content-type", HeaderValue::from_static(content_type));
                async move { resp }
            }),
        )
        .layer(
            ContextLayer::new(&Context::background()).default_timeout(Duration::from_millis(200)),
        );
    (serve(app).await, rx, dropped)
}

/// Calls the server's route as a gRPC-Web client would, over HTTP/2 or
/// HTTP/1.1: the response body in full (it must end, not fail) and
/// whether HTTP trailers came.
async fn call(addr: SocketAddr, content_type: &str, http2: bool) -> (Bytes, bool) {
    let client = Client::builder(TokioExecutor::new())
        .http2_only(http2)
        .build_http::<Empty<Bytes>>();
    let req = Request::post(format!("http://{addr}/demo.Worker/Watch"))
        .header("content-type", content_type)
        .header("x-grpc-web", "1")
        .body(Empty::new())
        .unwrap();
    let resp = within("the head", client.request(req)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "the handler's own head");
    let body = within("the end of the body", resp.into_body().collect())
        .await
        .unwrap_or_else(|err| panic!("a gRPC-Web stream ends, with its status: {err}"));
    let trailers = body.trailers().is_some();
    (body.to_bytes(), trailers)
}

/// The frames of a gRPC-Web body, as a client reads them: `(flag,
/// payload)` each; fails the test on a frame cut short.
fn frames(mut body: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while !body.is_empty() {
        assert!(body.len() >= 5, "a frame header cut short: {body:?}");
        let len = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
        assert!(body.len() >= 5 + len, "a frame cut short: {body:?}");
        frames.push((body[0], body[5..5 + len].to_vec()));
        body = &body[5 + len..];
    }
    frames
}

/// The fields of a gRPC-Web trailer block (`name:value\r\n` lines), as
/// a client parses them.
fn trailer_fields(block: &[u8]) -> Vec<(String, String)> {
    let block = std::str::from_utf8(block).expect("trailers are ASCII");
    assert!(block.ends_with("\r\n"), "{block:?}");
    block
        .split_terminator("\r\n")
        .map(|line| {
            let (name, value) = line.split_once(':').expect("name:value");
            (name.trim().to_ascii_lowercase(), value.trim().to_owned())
        })
        .collect()
}

/// The status a gRPC-Web client reads from `body`: its messages, then
/// the fields of the trailer frame that must end it.
fn read_stream(body: &[u8]) -> (Vec<Vec<u8>>, Vec<(String, String)>) {
    let mut frames = frames(body);
    let (flag, block) = frames.pop().expect("frames");
    assert_eq!(flag, 0x80, "the last frame is the trailers, uncompressed");
    assert!(
        frames.iter().all(|(flag, _)| *flag == 0),
        "messages before it: {frames:?}"
    );
    let messages = frames.into_iter().map(|(_, message)| message).collect();
    (messages, trailer_fields(&block))
}

fn deadline_exceeded() -> Vec<(String, String)> {
    vec![
        ("grpc-status".into(), "4".into()),
        ("grpc-message".into(), "context deadline exceeded".into()),
    ]
}

/// Decodes a `grpc-web-text` body: base64, each chunk padded on its own,
/// so read four characters at a time, as the gRPC-Web clients do.
fn unbase64(text: &[u8]) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c:?} in {text:?}"),
        }
    };
    assert_eq!(text.len() % 4, 0, "padded chunks: {text:?}");
    let mut out = Vec::new();
    for quad in text.chunks(4) {
        let data = quad.iter().take_while(|&&c| c != b'=').count();
        assert!(data >= 2, "{quad:?}");
        let bits = quad[..data]
            .iter()
            .enumerate()
            .fold(0, |bits, (i, &c)| bits | value(c) << (18 - 6 * i));
        out.extend_from_slice(&bits.to_be_bytes()[1..data]);
    }
    out
}

#[test]
fn unbase64_reads_independently_padded_chunks() {
    assert_eq!(unbase64(b"Zg==Zm8=Zm9v"), b"ffofoo");
}

/// A gRPC-Web stream over HTTP/1.1, where hyper drops HTTP trailers: the
/// cut must still carry its status, in the body, and the body must end
/// rather than fail, so that the client reads the status.
#[tokio::test]
async fn a_grpc_web_stream_cut_over_http1_ends_with_a_trailer_frame_carrying_deadline_exceeded() {
    for content_type in ["application/grpc-web+proto", "application/grpc-web"] {
        let (addr, mut contexts, dropped) =
            streaming("application/grpc-web+proto", message_frame(b"hi")).await;
        let (body, trailers) = call(addr, content_type, false).await;
        let (messages, status) = read_stream(&body);
        assert_eq!(messages, [b"hi".to_vec()], "{content_type}");
        assert_eq!(status, deadline_exceeded(), "{content_type}");
        assert!(!trailers, "no HTTP trailers over HTTP/1.1");
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
}

/// The same over HTTP/2: the status in the body too (gRPC-Web clients
/// read it there whatever the HTTP version), and no HTTP trailers.
#[tokio::test]
async fn a_grpc_web_stream_cut_over_http2_ends_with_the_same_trailer_frame() {
    let (addr, _contexts, dropped) =
        streaming("application/grpc-web+proto", message_frame(b"hi")).await;
    let (body, trailers) = call(addr, "application/grpc-web+proto", true).await;
    let (messages, status) = read_stream(&body);
    assert_eq!(messages, [b"hi".to_vec()]);
    assert_eq!(status, deadline_exceeded());
    assert!(!trailers, "the status once, in the body");
    assert!(dropped.load(Ordering::SeqCst));
}

/// `application/grpc-web-text`: the body is base64, and the trailer frame
/// comes as a base64 chunk of its own, after the handler's padded one.
#[tokio::test]
async fn a_grpc_web_text_stream_cut_by_its_context_ends_with_a_base64_trailer_frame() {
    // Seven bytes: a padded chunk.
    let first = message_frame(b"hi");
    let mut encoded = Vec::new();
    for http2 in [false, true] {
        let (addr, _contexts, dropped) =
            streaming("application/grpc-web-text+proto", b"AAAAAAJoaQ==".to_vec()).await;
        let (body, _) = call(addr, "application/grpc-web-text", http2).await;
        let tail = body
            .strip_prefix(&b"AAAAAAJoaQ=="[..])
            .expect("the handler's chunk");
        assert!(
            tail.iter()
                .all(|c| c.is_ascii_alphanumeric() || b"+/=".contains(c)),
            "base64 text: {body:?}"
        );
        let decoded = unbase64(&body);
        assert_eq!(decoded[..first.len()], first);
        let (messages, status) = read_stream(&decoded);
        assert_eq!(messages, [b"hi".to_vec()]);
        assert_eq!(status, deadline_exceeded(), "HTTP/2: {http2}");
        assert!(dropped.load(Ordering::SeqCst));
        encoded.push(body);
    }
    assert_eq!(encoded[0], encoded[1], "the same bytes over both versions");
}

/// A gRPC-Web request that a plain gRPC server answers (`application/grpc`,
/// as a tonic server without tonic-web would): its body is framed as
/// gRPC, so the cut puts the status in HTTP trailers, as for gRPC.
#[tokio::test]
async fn a_grpc_web_request_answered_as_plain_grpc_is_cut_with_trailers() {
    let (addr, _contexts, dropped) = streaming("application/grpc", message_frame(b"hi")).await;
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Empty<Bytes>>();
    let req = Request::post(format!("http://{addr}/demo.Worker/Watch"))
        .header("content-type", "application/grpc-web+proto")
        .body(Empty::new())
        .unwrap();
    let resp = within("the head", client.request(req)).await.unwrap();
    let body = within("the end", resp.into_body().collect()).await.unwrap();
    let trailers = body.trailers().cloned().expect("HTTP trailers");
    assert_eq!(trailers["grpc-status"], "4");
    assert_eq!(body.to_bytes(), message_frame(b"hi"), "no frame added");
    assert!(dropped.load(Ordering::SeqCst));
}

/// The layer alone, for a request of `content_type` whose handler never
/// answers: the response once the context has ended, by its 50 ms
/// `grpc-timeout` or, with `cancel`, by the root's cancel.
async fn early_answer(content_type: &'static [u8], cancel: bool) -> Response<impl HttpBody> {
    let (root, stop) = Context::background().with_cancel();
    let svc = ContextLayer::new(&root).layer(tower::service_fn(|_: Request<Body>| {
        pending::<Result<Response<Body>, Infallible>>()
    }));
    let mut req = Request::post("/demo.Worker/Work").header(
        "content-type",
        HeaderValue::from_bytes(content_type).unwrap(),
    );
    if !cancel {
        req = req.header("grpc-timeout", "50m");
    }
    let call = tokio::spawn(svc.oneshot(req.body(Body::empty()).unwrap()));
    tokio::task::yield_now().await;
    if cancel {
        stop.cancel();
    }
    within("the answer", call).await.unwrap().unwrap()
}

/// Before the head, the layer's answer is gRPC-Web's trailers-only
/// response: the status in the head, no body, under the request's own
/// gRPC-Web `content-type` (or `application/grpc-web+proto` for one that
/// is not well formed), never plain gRPC's.
#[tokio::test]
async fn the_early_answer_to_a_grpc_web_request_keeps_its_content_type() {
    for (content_type, cancel, want_type, want_code, want_message) in [
        (
            &b"application/grpc-web+proto"[..],
            false,
            "application/grpc-web+proto",
            "4",
            "context deadline exceeded",
        ),
        (
            b"application/grpc-web",
            true,
            "application/grpc-web",
            "1",
            "context canceled",
        ),
        (
            b"application/grpc-web-text",
            false,
            "application/grpc-web-text",
            "4",
            "context deadline exceeded",
        ),
        (
            b"application/grpc-web-text+proto",
            true,
            "application/grpc-web-text+proto",
            "1",
            "context canceled",
        ),
        (
            b"application/grpc-web+json; charset=utf-8",
            false,
            "application/grpc-web+json; charset=utf-8",
            "4",
            "context deadline exceeded",
        ),
        (
            b"application/grpc-web+",
            false,
            "application/grpc-web+proto",
            "4",
            "context deadline exceeded",
        ),
        (
            b"application/grpc-web;\xff",
            false,
            "application/grpc-web+proto",
            "4",
            "context deadline exceeded",
        ),
        (
            b"application/grpc",
            false,
            "application/grpc",
            "4",
            "context deadline exceeded",
        ),
    ] {
        let resp = early_answer(content_type, cancel).await;
        let said = String::from_utf8_lossy(content_type);
        assert_eq!(resp.status(), StatusCode::OK, "{said}");
        let headers = resp.headers();
        assert_eq!(headers["content-type"], want_type, "{said}");
        assert_eq!(headers["grpc-status"], want_code, "{said}");
        assert_eq!(headers["grpc-message"], want_message, "{said}");
        assert!(headers.contains_key("x-request-id"));
        assert!(resp.body().is_end_stream(), "trailers-only: {said}");
    }
}

/// `DetachLayer`'s refusal answers a gRPC-Web request in gRPC-Web too.
#[tokio::test]
async fn a_detach_refusal_keeps_the_grpc_web_content_type() {
    let svc = DetachLayer::new().layer(tower::service_fn(|_: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::from("unreachable")))
    }));
    let req = Request::post("/demo.Worker/Work")
        .header("content-type", "application/grpc-web-text")
        .body(Body::empty())
        .unwrap();
    let resp = svc.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "gRPC says it in grpc-status");
    assert_eq!(resp.headers()["content-type"], "application/grpc-web-text");
    assert_eq!(resp.headers()["grpc-status"], "13", "INTERNAL");
}

/// A handler's own gRPC-Web trailer frame ends the response, as HTTP
/// trailers do for gRPC: a deadline that passes after it, while the body
/// has not said it is over, appends no second status, and the request
/// counts as completed.
#[tokio::test]
async fn a_grpc_web_trailer_frame_from_the_handler_ends_the_race() {
    let layer =
        ContextLayer::new(&Context::background()).default_timeout(Duration::from_millis(100));
    let mut ok = vec![0x80];
    ok.extend_from_slice(
        &u32::try_from(b"grpc-status:0\r\n".len())
            .unwrap()
            .to_be_bytes(),
    );
    ok.extend_from_slice(b"grpc-status:0\r\n");
    let message = message_frame(b"hi");
    // The trailer frame split over two chunks, as a body may write it.
    let chunks = vec![
        Bytes::from(message.clone()),
        Bytes::copy_from_slice(&ok[..3]),
        Bytes::copy_from_slice(&ok[3..]),
    ];
    let svc = layer
        .clone()
        .layer(tower::service_fn(move |_: Request<()>| {
            let chunks = chunks.clone();
            async move {
                let body = Stuck {
                    chunks,
                    _flag: DropFlag(Arc::new(AtomicBool::new(false))),
                };
                let mut resp = Response::new(body);
                resp.headers_mut().insert(
                    "content-type",
                    HeaderValue::from_static("application/grpc-web+proto"),
                );
                Ok::<_, Infallible>(resp)
            }
        }));
    let req = Request::post("/demo.Worker/Watch")
        .header("content-type", "application/grpc-web+proto")
        .body(())
        .unwrap();
    let mut body = svc.oneshot(req).await.unwrap().into_body();
    let mut data = Vec::new();
    // What the server would write, until well past the deadline.
    while let Ok(Some(frame)) = tokio::time::timeout(Duration::from_millis(500), body.frame()).await
    {
        data.extend_from_slice(&frame.unwrap().into_data().unwrap());
    }
    let mut want = message;
    want.extend_from_slice(&ok);
    assert_eq!(data, want, "the handler's frames alone, no second status");
    assert_eq!(layer.stats().completed(), 1, "{:?}", layer.stats());
    assert_eq!(layer.stats().deadline_exceeded(), 0);
}
