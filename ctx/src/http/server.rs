//! The server role: [`ContextLayer`] gives each request a context.
//!
//! The layer makes a [`ContextService`], whose calls return a
//! [`ResponseFuture`] and, once the handler answers, a response with a
//! [`ResponseBody`] that holds the request context open until it has been
//! sent. The layer, the service and the causes [`Abandoned`] and
//! [`HandlerPanicked`] are also at [`ctx::http`](super), as tower keeps a
//! middleware's layer and service beside each other and its futures a step
//! away.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{ready, Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use bytes::Buf;
use http::header::CONTENT_LENGTH;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::{decode_timeout, RequestId, GRPC_TIMEOUT, X_REQUEST_ID};
use crate::{CancelGuard, Context};

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
/// [module docs](super) tell the whole story.
///
/// The response gets the request id as `x-request-id`, unless the service
/// set that header itself. With the `tracing` feature, the service's future
/// runs inside a `request` span with the id as its `request_id` field.
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
/// Go: `http.Server.BaseContext` and `http.Request.Context`.
#[derive(Clone, Debug)]
pub struct ContextLayer {
    /// The parent of every request context; set by [`ContextLayer::new`].
    root: Context,
    /// Set by [`ContextLayer::default_timeout`].
    default_timeout: Option<Duration>,
    /// Set by [`ContextLayer::max_timeout`].
    max_timeout: Option<Duration>,
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

    /// The request's timeout: what it asked for (else the default), never
    /// more than the maximum.
    fn timeout_for<B>(&self, req: &Request<B>) -> Option<Duration> {
        let asked = req.headers().get(GRPC_TIMEOUT).and_then(decode_timeout);
        match (asked.or(self.default_timeout), self.max_timeout) {
            (Some(timeout), Some(max)) => Some(timeout.min(max)),
            (timeout, max) => timeout.or(max),
        }
    }
}

impl<S> Layer<S> for ContextLayer {
    type Service = ContextService<S>;

    fn layer(&self, inner: S) -> ContextService<S> {
        ContextService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service made by [`ContextLayer`]: see there.
///
/// ```
/// use tower::Layer;
/// let svc = ctx::http::ContextLayer::new(&ctx::Context::background())
///     .layer(tower::service_fn(|_: http::Request<()>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
///     }));
/// # let _ = svc;
/// ```
#[derive(Clone, Debug)]
pub struct ContextService<S> {
    /// The handler; set by [`ContextLayer::layer`].
    inner: S,
    /// The settings, copied from the layer that made this service.
    layer: ContextLayer,
}

impl<S, B, ResBody> Service<Request<B>> for ContextService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    ResBody: Body,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let id = req
            .headers()
            .get(X_REQUEST_ID)
            .and_then(RequestId::from_header)
            .unwrap_or_else(RequestId::generate);
        let span = span::new(&req, &id);
        // A deadline too far to represent is no deadline.
        let deadline = self
            .layer
            .timeout_for(&req)
            .and_then(|timeout| Instant::now().checked_add(timeout));
        let ctx = self.layer.root.with_value(id.clone());
        let (ctx, guard) = {
            // The census (feature `debug`) names this line and the request.
            #[cfg(feature = "debug")]
            let _origin = crate::debug::registry::Origin::labeled(format_args!(
                "{} {}",
                req.method(),
                req.uri().path()
            ))
            .enter();
            match deadline {
                Some(deadline) => ctx.with_deadline(deadline),
                None => ctx.with_cancel(),
            }
        };
        req.extensions_mut().insert(ctx);
        let method = req.method().clone();
        let inner = {
            let _entered = span::enter(&span);
            // `call` is the handler's code too (a `service_fn` closure runs
            // here, before any future exists).
            match catch_unwind(AssertUnwindSafe(|| self.inner.call(req))) {
                Ok(inner) => inner,
                Err(payload) => panicked(Some(guard), payload),
            }
        };
        ResponseFuture {
            inner,
            guard: Some(guard),
            id: Some(id),
            method,
            span,
        }
    }
}

pin_project! {
    /// The response future of [`ContextService`]: the inner service's, with
    /// the request context's guard.
    ///
    /// Dropping it before it finishes cancels the request context with the
    /// cause [`Abandoned`]; once it finishes, the guard moves into the
    /// response body ([`ResponseBody`]). If the handler's future panics,
    /// the request context is canceled with the cause [`HandlerPanicked`]
    /// and the panic goes on.
    ///
    /// ```
    /// fn assert_future<F: std::future::Future>(_: &F) {}
    /// # use tower::{Layer, Service};
    /// # let mut svc = ctx::http::ContextLayer::new(&ctx::Context::background())
    /// #     .layer(tower::service_fn(|_: http::Request<()>| async {
    /// #         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    /// #     }));
    /// let fut: ctx::http::server::ResponseFuture<_> = svc.call(http::Request::new(()));
    /// assert_future(&fut);
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Dropping it is how a server says the request is over: the request
    /// context is canceled before the drop returns.
    pub struct ResponseFuture<F> {
        // The handler's future.
        #[pin]
        inner: F,
        // The request context's guard, from `ContextService::call`;
        // taken when the handler answers (into the body) or fails (and
        // dropped there: a plain cancel). Still here on drop means the
        // request was abandoned.
        guard: Option<CancelGuard>,
        // The request id to echo; taken when the response head is built.
        id: Option<RequestId>,
        // The request's method, from `ContextService::call`: the answer to
        // a `HEAD` or `CONNECT` sends no body.
        method: Method,
        // Entered around every poll of the handler.
        span: span::Span,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(guard) = this.project().guard.take() {
                guard.cancel_with_cause(Abandoned);
            }
        }
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    ResBody: Body,
{
    type Output = Result<Response<ResponseBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let polled = {
            let _entered = span::enter(this.span);
            catch_unwind(AssertUnwindSafe(|| this.inner.poll(cx)))
        };
        let result = match polled {
            Ok(poll) => ready!(poll),
            Err(payload) => panicked(this.guard.take(), payload),
        };
        // An error ends the request here: the guard drops (plain cancel).
        let guard = this.guard.take();
        Poll::Ready(result.map(|mut resp| {
            if let Some(id) = this.id.take() {
                resp.headers_mut()
                    .entry(X_REQUEST_ID)
                    .or_insert_with(|| id.header_value().clone());
            }
            let owed = owed_on_the_wire(this.method, &resp);
            resp.map(|inner| ResponseBody { inner, guard, owed })
        }))
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

pin_project! {
    /// A response body that holds its request's context open until the body
    /// has been sent: at its end (or at an error, or when it is dropped) the
    /// request context is canceled, as Go cancels `r.Context()` when
    /// `ServeHTTP` returns.
    ///
    /// Dropped before the response was written in full (the client went
    /// away mid-body), it cancels with the cause [`Abandoned`]. The response
    /// counts as written in full, so that a drop is a plain cancel, once the
    /// body has ended or says it is over ([`is_end_stream`]), once it has
    /// yielded exactly its known length (its exact size hint, else the
    /// `content-length` header, as hyper frames it), and from the start
    /// when no body goes on the wire: the answer to a `HEAD` request, a
    /// 1xx (a 101 upgrade among them), 204 or 304 status, a 2xx answer to
    /// `CONNECT`. Servers drop such bodies without polling them to their
    /// end, so the end of the body alone cannot tell.
    ///
    /// A panic in the body's `poll_frame` cancels with the cause
    /// [`HandlerPanicked`] and goes on, as in [`ResponseFuture`].
    ///
    /// Data, trailers, size hint and end of stream are the inner body's.
    ///
    /// [`is_end_stream`]: Body::is_end_stream
    ///
    /// ```
    /// use http_body::Body;
    /// # use tower::{Layer, Service};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let mut svc = ctx::http::ContextLayer::new(&ctx::Context::background())
    /// #     .layer(tower::service_fn(|_: http::Request<()>| async {
    /// #         Ok::<_, std::convert::Infallible>(http::Response::new(String::from("hi")))
    /// #     }));
    /// let resp = svc.call(http::Request::new(())).await.unwrap();
    /// let body: &ctx::http::server::ResponseBody<String> = resp.body();
    /// assert_eq!(body.size_hint().exact(), Some(2));
    /// # }
    /// ```
    pub struct ResponseBody<B>
    where
        B: Body,
    {
        // The handler's body.
        #[pin]
        inner: B,
        // The request context's guard, from the response future; taken
        // (a plain cancel) at the end of the body or at its first error.
        // Still here on drop means the body was cut off, unless the
        // response counts as written in full (`owed`, `is_end_stream`).
        guard: Option<CancelGuard>,
        // The bytes of a known length not yet yielded: set from the head
        // by `owed_on_the_wire` (`Some(0)` when no body goes on the wire),
        // counted down by each data frame; `None` when the length is not
        // known, or the body yielded more than it announced (the server
        // then fails the response).
        owed: Option<u64>,
    }

    impl<B> PinnedDrop for ResponseBody<B>
    where
        B: Body,
    {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(guard) = this.guard.take() {
                // hyper and axum drop a body with nothing left to send
                // without polling it to its end.
                if *this.owed == Some(0) || this.inner.is_end_stream() {
                    guard.cancel();
                } else {
                    guard.cancel_with_cause(Abandoned);
                }
            }
        }
    }
}

/// What of the response's body goes on the wire: `Some(0)` for nothing,
/// `Some(n)` for a known length, `None` for a body framed by its end.
///
/// The same reading of the head as hyper's (`proto::h1::role`) and the
/// HTTP semantics (RFC 9110, sections 6.4.1 and 9.3.6): no body for a
/// `HEAD` request, a 1xx, 204 or 304 status or a 2xx answer to `CONNECT`;
/// else the body's exact size hint, else `content-length`.
fn owed_on_the_wire<B: Body>(method: &Method, resp: &Response<B>) -> Option<u64> {
    let status = resp.status();
    let bodiless = method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || (method == Method::CONNECT && status.is_success());
    if bodiless {
        return Some(0);
    }
    resp.body()
        .size_hint()
        .exact()
        .or_else(|| content_length(resp.headers()))
}

/// The `content-length` of `headers`: every value (and every item of a
/// comma-separated value) the same number, else `None`, as hyper's HTTP/2
/// side reads it. Its HTTP/1 side takes only plain numbers and fails the
/// response on anything else, so that no body goes out and a reading that
/// is too lenient here never counts a body as written.
fn content_length(headers: &HeaderMap) -> Option<u64> {
    let mut length = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        for item in value.as_bytes().split(|&b| b == b',') {
            let n = digits(item.trim_ascii())?;
            if length.is_some_and(|length| length != n) {
                return None;
            }
            length = Some(n);
        }
    }
    length
}

/// A decimal number of ASCII digits only (no sign, no space), or `None`.
fn digits(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() {
        return None;
    }
    bytes.iter().try_fold(0u64, |n, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

impl<B: Body> Body for ResponseBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let frame = match catch_unwind(AssertUnwindSafe(|| this.inner.poll_frame(cx))) {
            Ok(poll) => ready!(poll),
            Err(payload) => panicked(this.guard.take(), payload),
        };
        match &frame {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    let len = u64::try_from(data.remaining()).unwrap_or(u64::MAX);
                    *this.owed = this.owed.and_then(|owed| owed.checked_sub(len));
                }
            }
            // The end, or an error that ends the body: the request is over.
            _ => drop(this.guard.take()),
        }
        Poll::Ready(frame)
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B: Body> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseBody")
            .field("open", &self.guard.is_some())
            .finish_non_exhaustive()
    }
}

/// The cause of a request context canceled because the request was
/// abandoned before its response was written in full (as
/// [`ResponseBody`] defines it): the client disconnected or reset the
/// stream, or something above the layer (a timeout, a shutdown that gave
/// up waiting) dropped the request. A handler that panics ends its request
/// with [`HandlerPanicked`] instead.
///
/// ```
/// let (ctx, cancel) = ctx::Context::background().with_cancel();
/// cancel.cancel_with_cause(ctx::http::Abandoned);
/// let cause = ctx.cause().unwrap();
/// assert!(cause.downcast_ref::<ctx::http::Abandoned>().is_some());
/// assert_eq!(cause.to_string(), "request abandoned before its response was sent (client went away)");
/// ```
///
/// Go: the cancellation of `r.Context()` when the client's connection closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Abandoned;

impl fmt::Display for Abandoned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("request abandoned before its response was sent (client went away)")
    }
}

impl std::error::Error for Abandoned {}

/// The cause of a request context canceled because its handler panicked:
/// in the inner service's `call`, in its response future, or in the
/// response body's `poll_frame`.
///
/// [`ContextLayer`] does not answer such a request itself: it records this
/// cause, then lets the panic go on with its payload untouched (never
/// dropped, never replaced), so the stack behaves as it would without the
/// layer. hyper then closes the connection (HTTP/1) or resets the stream
/// (HTTP/2) and keeps serving, as Go's `net/http` does after recovering a
/// handler's panic; tokio contains the panic in the connection's task. For
/// a 500 instead, add a panic-catching layer (tower-http's
/// `CatchPanicLayer`) outside `ContextLayer`: inside it, the handler would
/// return a 500 response and the request would end as answered.
///
/// Tasks that hold a clone of the request context see this cause, and with
/// it the panic's message when it was a string.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::panic::AssertUnwindSafe;
/// use ctx::http::{ContextLayer, HandlerPanicked, RequestExt};
/// use futures::FutureExt;
/// use tower::{Layer, ServiceExt};
/// # std::panic::set_hook(Box::new(|_| {})); // keep the doctest's output quiet
///
/// let (tx, contexts) = std::sync::mpsc::channel();
/// let svc = ContextLayer::new(&ctx::Context::background()).layer(tower::service_fn(
///     move |req: http::Request<()>| {
///         tx.send(req.context()).unwrap();
///         async {
///             panic!("no such user");
///             #[allow(unreachable_code)]
///             Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
///         }
///     },
/// ));
/// let call = AssertUnwindSafe(svc.oneshot(http::Request::new(())));
/// let payload = call.catch_unwind().await.unwrap_err(); // the panic went on
/// assert_eq!(payload.downcast_ref::<&str>(), Some(&"no such user"));
///
/// let cause = contexts.recv().unwrap().cause().unwrap();
/// let panicked = cause.downcast_ref::<HandlerPanicked>().unwrap();
/// assert_eq!(panicked.message(), Some("no such user"));
/// assert_eq!(cause.to_string(), "request handler panicked: no such user");
/// # }
/// ```
///
/// Go: none; `net/http` recovers a handler's panic, logs it and closes the
/// connection, and the request context ends as for a disconnect.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HandlerPanicked {
    /// The panic's message, when its payload was a `&str` or `String`;
    /// set from the payload by [`panicked`].
    message: Option<String>,
}

impl HandlerPanicked {
    /// The panic's message, when its payload was a string (as `panic!`
    /// with a message makes it); `None` for other payloads
    /// (`std::panic::panic_any`).
    ///
    /// ```
    /// // See `HandlerPanicked` for a handler that panics.
    /// fn log(cause: &ctx::Cause) {
    ///     if let Some(panicked) = cause.downcast_ref::<ctx::http::HandlerPanicked>() {
    ///         eprintln!("handler panicked: {}", panicked.message().unwrap_or("(no message)"));
    ///     }
    /// }
    /// # let _ = log;
    /// ```
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }
}

impl fmt::Display for HandlerPanicked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.message {
            Some(message) => write!(f, "request handler panicked: {message}"),
            None => f.write_str("request handler panicked"),
        }
    }
}

impl std::error::Error for HandlerPanicked {}

/// Ends the request context (if still open) with [`HandlerPanicked`], then
/// goes on with the panic.
///
/// The payload is only read (for its message), never dropped here: it goes
/// on with the panic to whoever catches it, so a payload whose own `Drop`
/// panics cannot unwind out of the layer. `AssertUnwindSafe` at the catch
/// sites is sound for the same reason: nothing observes the state the panic
/// left behind except by resuming it.
fn panicked(guard: Option<CancelGuard>, payload: Box<dyn Any + Send>) -> ! {
    if let Some(guard) = guard {
        let message = payload
            .downcast_ref::<&'static str>()
            .map(|message| (*message).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned());
        guard.cancel_with_cause(HandlerPanicked { message });
    }
    resume_unwind(payload)
}

/// The request span: real with the `tracing` feature, nothing without.
mod span {
    #[cfg(feature = "tracing")]
    pub(super) type Span = tracing::Span;
    #[cfg(not(feature = "tracing"))]
    pub(super) type Span = ();

    #[cfg(feature = "tracing")]
    pub(super) fn new<B>(req: &http::Request<B>, id: &super::RequestId) -> Span {
        tracing::info_span!(
            "request",
            request_id = %id,
            method = %req.method(),
            path = %req.uri().path(),
        )
    }

    #[cfg(not(feature = "tracing"))]
    #[inline]
    pub(super) fn new<B>(_: &http::Request<B>, _: &super::RequestId) -> Span {}

    #[cfg(feature = "tracing")]
    #[inline]
    pub(super) fn enter(span: &Span) -> tracing::span::Entered<'_> {
        span.enter()
    }

    #[cfg(not(feature = "tracing"))]
    #[inline]
    pub(super) fn enter(_: &Span) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn length(values: &[&'static str]) -> Option<u64> {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(CONTENT_LENGTH, http::HeaderValue::from_static(value));
        }
        content_length(&headers)
    }

    #[test]
    fn content_length_is_read_as_hyper_frames_the_body() {
        assert_eq!(length(&["5"]), Some(5));
        assert_eq!(length(&[" 5 "]), Some(5));
        assert_eq!(length(&["5, 5", "5"]), Some(5), "repeats that agree");
        assert_eq!(length(&["18446744073709551615"]), Some(u64::MAX));
        assert_eq!(length(&[]), None);
        for bad in [&["5", "6"][..], &["5,6"], &["+5"], &["-1"], &[""], &["5 5"]] {
            assert_eq!(length(bad), None, "{bad:?}");
        }
        assert_eq!(length(&["18446744073709551616"]), None, "overflow");
    }

    #[test]
    fn no_body_goes_on_the_wire_for_head_1xx_204_304_or_connect() {
        let owed = |method: Method, status: u16| {
            let mut resp = Response::new(String::from("hello"));
            *resp.status_mut() = StatusCode::from_u16(status).unwrap();
            owed_on_the_wire(&method, &resp)
        };
        assert_eq!(owed(Method::GET, 200), Some(5));
        assert_eq!(owed(Method::HEAD, 200), Some(0));
        assert_eq!(owed(Method::GET, 101), Some(0));
        assert_eq!(owed(Method::GET, 103), Some(0));
        assert_eq!(owed(Method::GET, 204), Some(0));
        assert_eq!(owed(Method::GET, 304), Some(0));
        assert_eq!(owed(Method::CONNECT, 200), Some(0));
        assert_eq!(
            owed(Method::CONNECT, 407),
            Some(5),
            "a refused tunnel has a body"
        );
    }
}
