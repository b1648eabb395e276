//! The layer and its builder: [`ContextLayer`], its settings, and the
//! timeout it gives each request. The service it makes, and the race, are
//! in the sibling modules `service` and `race`.

use std::sync::Arc;
use std::time::Duration;

use http::Request;

#[cfg(doc)]
use super::{Abandoned, HandlerPanicked, ResponseBody};
use crate::http::ending::{Counters, Stats};
use crate::http::propagate::{Propagate, Propagators};
#[cfg(doc)]
use crate::http::RequestId;
use crate::http::{decode_timeout, GRPC_TIMEOUT};
use crate::Context;

/// A tower layer that gives every request its own [`Context`], a child of
/// the server's root, stored in the request's extensions.
///
/// The request context carries the request's [`RequestId`] and a deadline
/// (from `grpc-timeout`, else the default, capped by the maximum), and ends
/// when the first of these happens: the deadline passes, the root is
/// canceled, the response future or body is dropped before the response
/// was written in full (the client went away: cause [`Abandoned`]), the
/// handler panics (cause [`HandlerPanicked`]; the layer lets the panic go
/// on and answers nothing), or the response has been written in full (a
/// plain cancel). [`ResponseBody`] says what counts as written in full; the
/// [module docs](crate::http) tell the whole story.
///
/// The response gets the request id as `x-request-id`, unless the service
/// set that header itself. With the `tracing` feature, the service's future
/// runs inside a `request` span with the id as its `request_id` field, and
/// the end of each request context is one event in that span (see [how
/// requests end](crate::http#how-requests-end)); [`stats`](ContextLayer::stats)
/// counts the ends by cause.
///
/// Request values a caller sends (W3C trace context, baggage, your own)
/// are read into the request context only for the types registered with
/// [`propagate`](ContextLayer::propagate).
///
/// # The race
///
/// The layer enforces the request context, as `#[ctx]` does for a body
/// and [`Context::run`] for a future. When the context ends (its deadline
/// passes, or the root is canceled) before the handler has returned the
/// response head, the handler's future is dropped and the layer answers
/// itself, as `ctx::Error`'s own axum response does:
///
/// - 504 Gateway Timeout (deadline) or 503 Service Unavailable (canceled),
///   with the error's text (`context deadline exceeded`, `context
///   canceled`) as a `text/plain` body;
/// - for a gRPC request (its `content-type` starts with
///   `application/grpc`), HTTP 200 with `grpc-status` 4
///   (`DEADLINE_EXCEEDED`) or 1 (`CANCELLED`) and the text as
///   `grpc-message`, in the headers and with no body: the trailers-only
///   response tonic itself sends for a [`Status`](https://docs.rs/tonic/latest/tonic/struct.Status.html),
///   with the codes of `From<ctx::Error> for tonic::Status`. Its
///   `content-type` is `application/grpc`, or for gRPC-Web (a request of
///   `application/grpc-web`, `application/grpc-web+proto` or any other
///   `+` suffix, `application/grpc-web-text`) the request's own, as
///   gRPC-Web keeps trailers-only responses as they are
///   (`application/grpc-web+proto` if the request's is not well formed);
/// - either way with the request id as `x-request-id`.
///
/// A context already done when the request arrives (`grpc-timeout: 0n`, a
/// root canceled) is answered so at the first poll, without polling the
/// handler; a handler ready in the same poll as the end of its context
/// loses, as in [`Context::run`]. The request context keeps the cause that
/// ended it (the deadline, or the root's cause), and the layer's answer
/// counts as a response written in full: never [`Abandoned`].
///
/// After the head, a body still streaming when the context ends is cut
/// there: the handler's body is dropped and the response ends. For gRPC
/// it ends with trailers carrying `grpc-status` and `grpc-message`, which
/// is how a gRPC stream reports a deadline. For gRPC-Web, whose clients
/// read the status from the body (over HTTP/1.1 no trailers reach them),
/// it ends with the same two in a gRPC-Web trailer frame (flag byte 0x80,
/// the length, `grpc-status:4\r\ngrpc-message:...\r\n`) as its last
/// data, base64 for `application/grpc-web-text`, then a clean end. The
/// response's own `content-type` says how its body is framed (tonic-web
/// answers base64 when the request's `accept` asks for it; a gRPC server
/// without gRPC-Web answers plain gRPC, and gets trailers), else the
/// request's. The frame follows the handler's last data frame, so a body
/// that stopped inside a message leaves the client a malformed stream,
/// not a complete one. For plain HTTP the body ends
/// with the context's [`Error`](crate::Error) as its error, and the server aborts the
/// response, so the client sees it fail, never a complete response: hyper
/// closes an HTTP/1 connection without the last chunk (or short of its
/// `content-length`) and resets an HTTP/2 stream. (Go's counterpart is a
/// handler that panics with `http.ErrAbortHandler`; a Go handler that just
/// returns when its context ends sends a truncated body as complete.)
///
/// [`cooperative`](ContextLayer::cooperative) turns the race off, for the
/// head and the body: the handler then runs until it returns and must
/// watch `ctx` itself. Work that must finish even if the client goes away
/// belongs behind a [`DetachLayer`](crate::http::DetachLayer).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// use ctx::http::{ContextLayer, RequestExt, RequestId};
/// use tower::{Layer, Service, ServiceExt};
///
/// let root = ctx::Context::background();
/// let layer = ContextLayer::new(&root).max_timeout(Duration::from_secs(30));
/// let mut svc = layer.layer(tower::service_fn(|req: http::Request<String>| async move {
///     let ctx = req.context(); // this request's own context
///     assert!(ctx.remaining().unwrap() <= Duration::from_secs(5));
///     let id = ctx.value::<RequestId>().unwrap().clone();
///     Ok::<_, std::convert::Infallible>(http::Response::new(format!("hello from {id}")))
/// }));
///
/// let req = http::Request::builder()
///     .header("grpc-timeout", "5S")
///     .header("x-request-id", "abc")
///     .body(String::new())
///     .unwrap();
/// let resp = svc.ready().await.unwrap().call(req).await.unwrap();
/// assert_eq!(resp.headers()["x-request-id"], "abc");
/// # }
/// ```
///
/// A handler that ignores its context is answered for when the context
/// ends (see [the race](#the-race)):
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// use ctx::http::ContextLayer;
/// use tower::{Layer, ServiceExt};
///
/// let layer = ContextLayer::new(&ctx::Context::background()).max_timeout(Duration::from_millis(10));
/// let svc = layer.layer(tower::service_fn(|_: http::Request<()>| async {
///     tokio::time::sleep(Duration::from_secs(60)).await; // never mind the context
///     Ok::<_, std::convert::Infallible>(http::Response::new(String::from("done")))
/// }));
/// let resp = svc.oneshot(http::Request::new(())).await.unwrap(); // after 10 ms
/// assert_eq!(resp.status(), 504);
/// # }
/// ```
///
/// Go: `http.Server.BaseContext` and `http.Request.Context`; the race is
/// close to `http.TimeoutHandler`, for every way the context ends.
#[derive(Clone, Debug)]
pub struct ContextLayer {
    /// The parent of every request context; set by [`ContextLayer::new`].
    pub(super) root: Context,
    /// Set by [`ContextLayer::default_timeout`].
    pub(super) default_timeout: Option<Duration>,
    /// Set by [`ContextLayer::max_timeout`].
    pub(super) max_timeout: Option<Duration>,
    /// Set by [`ContextLayer::cooperative`]: the handler is not raced
    /// against its request context.
    pub(super) cooperative: bool,
    /// The value types read from incoming headers; added to by
    /// [`ContextLayer::propagate`].
    pub(super) propagate: Propagators,
    /// How the layer's request contexts ended; made by
    /// [`ContextLayer::new`], shared by the layer's clones and services.
    pub(super) counters: Arc<Counters>,
}

impl ContextLayer {
    /// A layer deriving request contexts from `root`: cancel `root` and every
    /// request in flight is canceled. No default or maximum timeout.
    ///
    /// ```
    /// let (root, _stop) = ctx::Context::background().with_cancel();
    /// let layer = ctx::http::ContextLayer::new(&root);
    /// # let _ = layer;
    /// ```
    pub fn new(root: &Context) -> ContextLayer {
        ContextLayer {
            root: root.clone(),
            default_timeout: None,
            max_timeout: None,
            cooperative: false,
            propagate: Propagators::default(),
            counters: Arc::new(Counters::new()),
        }
    }

    /// The timeout of a request that sends no (valid) `grpc-timeout`: for
    /// plain HTTP clients, which do not say how long they will wait.
    ///
    /// ```
    /// use std::time::Duration;
    /// let layer = ctx::http::ContextLayer::new(&ctx::Context::background())
    ///     .default_timeout(Duration::from_secs(10));
    /// # let _ = layer;
    /// ```
    pub fn default_timeout(mut self, timeout: Duration) -> ContextLayer {
        self.default_timeout = Some(timeout);
        self
    }

    /// The longest any request may run, whatever its `grpc-timeout` asks
    /// and whether or not it sends one.
    ///
    /// ```
    /// use std::time::Duration;
    /// let layer = ctx::http::ContextLayer::new(&ctx::Context::background())
    ///     .max_timeout(Duration::from_secs(60));
    /// # let _ = layer;
    /// ```
    pub fn max_timeout(mut self, timeout: Duration) -> ContextLayer {
        self.max_timeout = Some(timeout);
        self
    }

    /// Turns off the [race](ContextLayer#the-race): the handler runs until
    /// it returns, and its body until it ends, whatever the request
    /// context does. The handler must then watch `ctx` itself (`ctx.run`,
    /// `#[ctx]`, `ctx.check()?`), as in Go, where nothing stops a handler
    /// that ignores `r.Context()`.
    ///
    /// The context ends as before; only the layer no longer answers for
    /// the handler.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::time::Duration;
    /// use ctx::http::{ContextLayer, RequestExt};
    /// use tower::{Layer, ServiceExt};
    ///
    /// let layer = ContextLayer::new(&ctx::Context::background())
    ///     .max_timeout(Duration::from_millis(10))
    ///     .cooperative();
    /// let svc = layer.layer(tower::service_fn(|req: http::Request<()>| async move {
    ///     let ctx = req.context();
    ///     ctx.done().await; // the handler sees the deadline, and answers as it likes
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(format!("late: {}", ctx.err().unwrap())))
    /// }));
    /// let resp = svc.oneshot(http::Request::new(())).await.unwrap();
    /// assert_eq!(resp.status(), 200); // the handler's own answer
    /// # }
    /// ```
    ///
    /// Go: the default; `http.TimeoutHandler` is the race.
    pub fn cooperative(mut self) -> ContextLayer {
        self.cooperative = true;
        self
    }

    /// Reads a `T` from each request's headers into its context: a value
    /// of [`Propagate`] type, which a caller's
    /// [`ClientLayer::propagate`](crate::http::ClientLayer::propagate) (or the
    /// gRPC client layer or interceptor) sent from its own context. A
    /// header that is absent, or does not pass `T`'s checks, puts nothing
    /// in the context, and the request goes on.
    ///
    /// Nothing is read unless asked for: a server facing the internet
    /// registers only the values it trusts its clients with. Registering
    /// a type twice reads it once.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use ctx::http::{Baggage, ContextLayer, RequestExt, TraceContext};
    /// use tower::{Layer, ServiceExt};
    ///
    /// let layer = ContextLayer::new(&ctx::Context::background())
    ///     .propagate::<TraceContext>()
    ///     .propagate::<Baggage>();
    /// let svc = layer.layer(tower::service_fn(|req: http::Request<()>| async move {
    ///     let ctx = req.context();
    ///     let trace = ctx.value::<TraceContext>().unwrap();
    ///     let user = ctx.value::<Baggage>().and_then(|b| b.get("user").map(|u| u.into_owned()));
    ///     assert_eq!(trace.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    ///     assert_eq!(user.as_deref(), Some("alice"));
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    /// }));
    /// let req = http::Request::builder()
    ///     .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    ///     .header("baggage", "user=alice")
    ///     .body(())
    ///     .unwrap();
    /// svc.oneshot(req).await.unwrap();
    /// # }
    /// ```
    pub fn propagate<T: Propagate>(mut self) -> ContextLayer {
        self.propagate = self.propagate.with::<T>();
        self
    }

    /// How the request contexts of this layer (its clones, and every
    /// service they made) have ended so far, counted by cause: see
    /// [`Stats`].
    ///
    /// Keep a clone of the layer to read them: the layer given to a router
    /// shares its counters with the one kept.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use ctx::http::ContextLayer;
    /// use tower::{Layer, ServiceExt};
    ///
    /// let layer = ContextLayer::new(&ctx::Context::background());
    /// let svc = layer.clone().layer(tower::service_fn(|_: http::Request<()>| async {
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    /// }));
    /// drop(svc.oneshot(http::Request::new(())).await.unwrap());
    /// assert_eq!(layer.stats().completed(), 1);
    /// # }
    /// ```
    pub fn stats(&self) -> Stats {
        self.counters.stats()
    }

    /// The request's timeout: what it asked for (else the default), never
    /// more than the maximum.
    pub(super) fn timeout_for<B>(&self, req: &Request<B>) -> Option<Duration> {
        let asked = req.headers().get(GRPC_TIMEOUT).and_then(decode_timeout);
        match (asked.or(self.default_timeout), self.max_timeout) {
            (Some(timeout), Some(max)) => Some(timeout.min(max)),
            (timeout, max) => timeout.or(max),
        }
    }
}
