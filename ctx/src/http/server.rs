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
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use bytes::Buf;
use http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::ending::{Counters, RequestGuard, Stats};
use super::propagate::{Propagate, Propagators};
use super::{decode_timeout, RequestId, GRPC_TIMEOUT, X_REQUEST_ID};
use crate::{CancelGuard, Context, DoneOwned, Error};

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
/// runs inside a `request` span with the id as its `request_id` field, and
/// the end of each request context is one event in that span (see [how
/// requests end](super#how-requests-end)); [`stats`](ContextLayer::stats)
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
///   with the codes of `From<ctx::Error> for tonic::Status`;
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
/// is how a gRPC stream reports a deadline; for plain HTTP it ends without
/// an error (a body type's error cannot be made up). With a known length
/// (`content-length`) the client then sees a short, failed response, as
/// hyper closes the connection; a chunked or HTTP/2 body looks complete to
/// the client, so a stream that must tell a cut from an end should mark
/// its own end.
///
/// [`cooperative`](ContextLayer::cooperative) turns the race off, for the
/// head and the body: the handler then runs until it returns and must
/// watch `ctx` itself. Work that must finish even if the client goes away
/// belongs behind a [`DetachLayer`](super::DetachLayer).
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
    root: Context,
    /// Set by [`ContextLayer::default_timeout`].
    default_timeout: Option<Duration>,
    /// Set by [`ContextLayer::max_timeout`].
    max_timeout: Option<Duration>,
    /// Set by [`ContextLayer::cooperative`]: the handler is not raced
    /// against its request context.
    cooperative: bool,
    /// The value types read from incoming headers; added to by
    /// [`ContextLayer::propagate`].
    propagate: Propagators,
    /// How the layer's request contexts ended; made by
    /// [`ContextLayer::new`], shared by the layer's clones and services.
    counters: Arc<Counters>,
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
    /// [`ClientLayer::propagate`](super::ClientLayer::propagate) (or the
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
    // The layer's own answer (`context deadline exceeded`) is a frame of
    // the handler's data type: `Bytes`, as in hyper, axum and tonic.
    ResBody::Data: From<&'static [u8]>,
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
        let ctx = self.layer.root.with_value(id.clone());
        let ctx = self.layer.propagate.decode(req.headers(), ctx);
        // `with_timeout` measures from now on the clock deadlines follow
        // (tokio's, in a paused test); a timeout too far to represent is
        // no deadline.
        let (ctx, guard) = {
            // The census (feature `debug`) names this line and the request.
            #[cfg(feature = "debug")]
            let _origin = crate::debug::registry::Origin::labeled(format_args!(
                "{} {}",
                req.method(),
                req.uri().path()
            ))
            .enter();
            match self.layer.timeout_for(&req) {
                Some(timeout) => ctx.with_timeout(timeout),
                None => ctx.with_cancel(),
            }
        };
        let guard = RequestGuard::new(guard, &ctx, &self.layer.counters, &span);
        let race = (!self.layer.cooperative).then(|| Race::new(&ctx, is_grpc(req.headers())));
        req.extensions_mut().insert(ctx);
        // For a `DetachLayer` inside: the root its detached contexts obey.
        req.extensions_mut()
            .insert(ServerRoot(self.layer.root.clone()));
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
            handler: Handler::Running { inner },
            guard: Some(guard),
            race,
            id: Some(id),
            method,
            span,
        }
    }
}

/// The server's root, as given to [`ContextLayer::new`], in the extensions
/// of every request the layer passes on: [`DetachLayer`](super::DetachLayer)
/// derives from it, and its presence says a `ContextLayer` is outside.
#[derive(Clone)]
pub(super) struct ServerRoot(pub(super) Context);

/// Whether `headers` are those of a gRPC request: a `content-type` of
/// `application/grpc`, alone or followed by `+` (`+proto`), `-` (`-web`)
/// or `;` (parameters), as gRPC servers recognize it.
pub(super) fn is_grpc(headers: &HeaderMap) -> bool {
    let Some(rest) = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.as_bytes().strip_prefix(b"application/grpc"))
    else {
        return false;
    };
    matches!(rest.first(), None | Some(b'+' | b'-' | b';'))
}

/// The race of a handler (its future, then its body) against its request
/// context: its `done()` to be woken by. The context itself is read from
/// the [`RequestGuard`] beside the race, there whenever a race is.
struct Race {
    /// Wakes the task when the context ends; polled only when the handler
    /// is pending.
    done: DoneOwned,
    /// The request is gRPC ([`is_grpc`]): the answer is a `grpc-status`.
    grpc: bool,
}

impl Race {
    fn new(ctx: &Context, grpc: bool) -> Race {
        Race {
            done: ctx.done_owned(),
            grpc,
        }
    }

    /// The error of the request context `guard` holds, if it has ended:
    /// checked before the handler is polled, so that a context that ended
    /// wins a tie. `err()` is one atomic load, so a future or body that is
    /// ready at once never registers a waker. No guard (the request is
    /// over) is no end to race.
    #[inline]
    fn ended(&self, guard: Option<&RequestGuard>) -> Option<Error> {
        guard.and_then(|guard| guard.context().err())
    }

    /// After the handler returned `Pending`: the context's error if it
    /// ended meanwhile, else `None` with the task's waker registered.
    fn ended_while_pending(&mut self, cx: &mut TaskContext<'_>) -> Option<Error> {
        match Pin::new(&mut self.done).poll(cx) {
            Poll::Ready(err) => Some(err),
            Poll::Pending => None,
        }
    }
}

/// The gRPC status for `err`, as `From<ctx::Error> for tonic::Status` maps
/// it: `(grpc-status, grpc-message)`.
fn grpc_status(err: Error) -> (HeaderValue, HeaderValue) {
    let code = match err {
        Error::Canceled => "1",
        Error::DeadlineExceeded => "4",
    };
    // The text is plain ASCII without `%`: no percent-encoding needed.
    (
        HeaderValue::from_static(code),
        HeaderValue::from_static(error_text(err)),
    )
}

/// Makes `headers` the head of a trailers-only gRPC response: the status
/// `code` and `message` (printable ASCII) where a call's trailers would
/// carry them, as tonic's `Status::into_http` does.
pub(super) fn grpc_status_headers(
    headers: &mut HeaderMap,
    code: HeaderValue,
    message: HeaderValue,
) {
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(GRPC_STATUS, code);
    headers.insert(GRPC_MESSAGE, message);
}

/// `err`'s text, as its `Display` writes it (a unit test keeps the two
/// the same), as a `'static` string for a header or a body.
fn error_text(err: Error) -> &'static str {
    match err {
        Error::Canceled => "context canceled",
        Error::DeadlineExceeded => "context deadline exceeded",
    }
}

/// The layer's answer when the request context ended before the handler
/// answered: a trailers-only gRPC status, or 503/504 with the error's text.
fn answer<B>(err: Error, grpc: bool, id: Option<RequestId>) -> Response<ResponseBody<B>>
where
    B: Body,
    B::Data: From<&'static [u8]>,
{
    let data = (!grpc).then(|| error_text(err).as_bytes());
    let mut resp = Response::new(ResponseBody {
        kind: Kind::Own {
            data: data.map(B::Data::from),
            trailers: None,
        },
        guard: None,
        owed: Some(0),
        race: None,
    });
    let headers = resp.headers_mut();
    if grpc {
        // HTTP 200: gRPC says it in `grpc-status`.
        let (code, message) = grpc_status(err);
        grpc_status_headers(headers, code, message);
    } else {
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        *resp.status_mut() = match err {
            Error::Canceled => StatusCode::SERVICE_UNAVAILABLE,
            Error::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        };
    }
    if let Some(id) = id {
        resp.headers_mut()
            .insert(X_REQUEST_ID, id.header_value().clone());
    }
    resp
}

/// gRPC's status code header (a response header or trailer).
const GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");

/// gRPC's status message header.
const GRPC_MESSAGE: http::HeaderName = http::HeaderName::from_static("grpc-message");

pin_project! {
    /// The response future of [`ContextService`]: the inner service's, with
    /// the request context's guard, raced against the request context.
    ///
    /// When the context ends before the handler answers, the handler's
    /// future is dropped and this future answers itself (503, 504, or a
    /// gRPC status: see [the race](ContextLayer#the-race)), unless the
    /// layer is [`cooperative`](ContextLayer::cooperative).
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
    #[project = ResponseFutureProj]
    pub struct ResponseFuture<F> {
        // The handler's future, from `ContextService::call`; dropped in
        // place when the request context wins the race.
        #[pin]
        handler: Handler<F>,
        // The request context's guard, from `ContextService::call`;
        // taken when the handler answers (into the body), fails (and
        // dropped there: a plain cancel) or loses the race (the context
        // is over already). Still here on drop means the request was
        // abandoned.
        guard: Option<RequestGuard>,
        // The race against the request context, from `ContextService::call`
        // (`None`: cooperative); moved into the body with the answer.
        race: Option<Race>,
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
                guard.abandon();
            }
        }
    }
}

pin_project! {
    /// The handler's future, until the request context ends first.
    #[project = HandlerProj]
    enum Handler<F> {
        Running {
            #[pin]
            inner: F,
        },
        // Dropped: the context ended first and the layer answered.
        Dropped,
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    ResBody: Body,
    ResBody::Data: From<&'static [u8]>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        // The context first: a handler ready in the same poll loses, as in
        // `Context::run`, and one whose context is done on arrival is
        // never polled.
        let guard = this.guard.as_ref();
        if let Some(err) = this.race.as_ref().and_then(|race| race.ended(guard)) {
            return Poll::Ready(Ok(lose_race(this, err)));
        }
        let HandlerProj::Running { inner } = this.handler.as_mut().project() else {
            panic!("ctx: internal error: ResponseFuture polled after it finished");
        };
        let polled = {
            let _entered = span::enter(this.span);
            catch_unwind(AssertUnwindSafe(|| inner.poll(cx)))
        };
        let result = match polled {
            Ok(Poll::Ready(result)) => result,
            Ok(Poll::Pending) => {
                return match this.race.as_mut().and_then(|r| r.ended_while_pending(cx)) {
                    Some(err) => Poll::Ready(Ok(lose_race(this, err))),
                    None => Poll::Pending,
                };
            }
            Err(payload) => panicked(this.guard.take(), payload),
        };
        // An error ends the request here: the guard drops (plain cancel).
        let guard = this.guard.take();
        let race = this.race.take();
        Poll::Ready(result.map(|mut resp| {
            if let Some(id) = this.id.take() {
                resp.headers_mut()
                    .entry(X_REQUEST_ID)
                    .or_insert_with(|| id.header_value().clone());
            }
            let owed = owed_on_the_wire(this.method, &resp);
            resp.map(|inner| ResponseBody {
                kind: Kind::Handler { inner },
                guard,
                owed,
                race,
            })
        }))
    }
}

/// The request context ended before the handler answered: drops the
/// handler's future and answers for it.
fn lose_race<F, ResBody>(
    mut this: ResponseFutureProj<'_, F>,
    err: Error,
) -> Response<ResponseBody<ResBody>>
where
    ResBody: Body,
    ResBody::Data: From<&'static [u8]>,
{
    let grpc = this.race.take().is_some_and(|race| race.grpc);
    {
        // Dropping the handler runs its code (its drops): in its span.
        let _entered = span::enter(this.span);
        this.handler.set(Handler::Dropped);
    }
    span::lost_race(this.span, err);
    // The context is over already, with its own cause: dropping the guard
    // changes nothing, and the answer below is the response, written in
    // full when the server is done with it.
    drop(this.guard.take());
    answer(err, grpc, this.id.take())
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
    /// When the request context ends while the body is still streaming,
    /// the handler's body is dropped and this body ends: for a gRPC
    /// request with trailers carrying `grpc-status` (4 or 1) and
    /// `grpc-message`, for plain HTTP without more frames (see [the
    /// race](ContextLayer#the-race)), unless the layer is
    /// [`cooperative`](ContextLayer::cooperative). The same body carries
    /// the layer's own answer when the context ended before the head.
    ///
    /// Data, trailers, size hint and end of stream are otherwise the inner
    /// body's.
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
    #[project = ResponseBodyProj]
    pub struct ResponseBody<B>
    where
        B: Body,
    {
        // The handler's body, or the layer's own frames.
        #[pin]
        kind: Kind<B>,
        // The request context's guard, from the response future; taken
        // (a plain cancel) at the end of the body or at its first error.
        // Still here on drop means the body was cut off, unless the
        // response counts as written in full (`owed`, `is_end_stream`).
        // `None` in the layer's own answer: the context was over already.
        guard: Option<RequestGuard>,
        // The bytes of a known length not yet yielded: set from the head
        // by `owed_on_the_wire` (`Some(0)` when no body goes on the wire),
        // counted down by each data frame; `None` when the length is not
        // known, or the body yielded more than it announced (the server
        // then fails the response).
        owed: Option<u64>,
        // The race against the request context, from the response future
        // (`None`: cooperative, or the body is over).
        race: Option<Race>,
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
                if *this.owed == Some(0) || this.kind.is_end_stream() {
                    drop(guard); // a plain cancel
                } else {
                    guard.abandon();
                }
            }
        }
    }
}

pin_project! {
    /// What a [`ResponseBody`] yields.
    #[project = KindProj]
    enum Kind<B>
    where
        B: Body,
    {
        // The handler's body.
        Handler {
            #[pin]
            inner: B,
        },
        // The layer's own frames: its answer's text (the race was lost
        // before the head), or the gRPC status that ends a body cut off by
        // the context. Each is taken by the poll that yields it.
        Own {
            data: Option<B::Data>,
            trailers: Option<HeaderMap>,
        },
    }
}

impl<B: Body> Kind<B> {
    fn is_end_stream(&self) -> bool {
        match self {
            Kind::Handler { inner } => inner.is_end_stream(),
            Kind::Own { data, trailers } => data.is_none() && trailers.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Kind::Handler { inner } => inner.size_hint(),
            Kind::Own { data, .. } => {
                let len = data.as_ref().map_or(0, Buf::remaining);
                SizeHint::with_exact(u64::try_from(len).unwrap_or(u64::MAX))
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
        let mut this = self.project();
        // The context first, as for the head.
        let guard = this.guard.as_ref();
        if let Some(err) = this.race.as_ref().and_then(|race| race.ended(guard)) {
            cut(&mut this, err);
        }
        if let KindProj::Handler { inner } = this.kind.as_mut().project() {
            let frame = match catch_unwind(AssertUnwindSafe(|| inner.poll_frame(cx))) {
                Ok(Poll::Ready(frame)) => frame,
                Ok(Poll::Pending) => {
                    let ended = this.race.as_mut().and_then(|r| r.ended_while_pending(cx));
                    let Some(err) = ended else {
                        return Poll::Pending;
                    };
                    cut(&mut this, err);
                    return Poll::Ready(own_frame(this.kind));
                }
                Err(payload) => panicked(this.guard.take(), payload),
            };
            match &frame {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        let len = u64::try_from(data.remaining()).unwrap_or(u64::MAX);
                        *this.owed = this.owed.and_then(|owed| owed.checked_sub(len));
                    }
                }
                // The end, or an error that ends the body: the request is
                // over.
                _ => {
                    *this.race = None;
                    drop(this.guard.take());
                }
            }
            return Poll::Ready(frame);
        }
        Poll::Ready(own_frame(this.kind))
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        self.kind.is_end_stream()
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        self.kind.size_hint()
    }
}

/// The request context ended while the handler's body was streaming:
/// drops that body, and ends with the gRPC status for a gRPC request.
fn cut<B: Body>(this: &mut ResponseBodyProj<'_, B>, err: Error) {
    let grpc = this.race.take().is_some_and(|race| race.grpc);
    let trailers = grpc.then(|| {
        let (code, message) = grpc_status(err);
        let mut trailers = HeaderMap::with_capacity(2);
        trailers.insert(GRPC_STATUS, code);
        trailers.insert(GRPC_MESSAGE, message);
        trailers
    });
    this.kind.set(Kind::Own {
        data: None,
        trailers,
    });
    // The context is over already, with its own cause: the cut is no
    // abandonment.
    drop(this.guard.take());
}

/// The next of the layer's own frames: its data, then its trailers, then
/// the end.
fn own_frame<B: Body>(kind: Pin<&mut Kind<B>>) -> Option<Result<Frame<B::Data>, B::Error>> {
    match kind.project() {
        KindProj::Own { data, trailers } => data
            .take()
            .map(Frame::data)
            .or_else(|| trailers.take().map(Frame::trailers))
            .map(Ok),
        KindProj::Handler { .. } => {
            panic!("ctx: internal error: the handler's body taken for the layer's own")
        }
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

    /// The cause for a panic with `payload`: its message when it is a
    /// string.
    pub(super) fn from_payload(payload: &(dyn Any + Send)) -> HandlerPanicked {
        let message = payload
            .downcast_ref::<&'static str>()
            .map(|message| (*message).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned());
        HandlerPanicked { message }
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
pub(super) fn panicked(guard: Option<impl EndOnPanic>, payload: Box<dyn Any + Send>) -> ! {
    if let Some(guard) = guard {
        guard.end_on_panic(HandlerPanicked::from_payload(&*payload));
    }
    resume_unwind(payload)
}

/// A guard that [`panicked`] ends: a request context's, or a detached
/// context's.
pub(super) trait EndOnPanic {
    fn end_on_panic(self, cause: HandlerPanicked);
}

impl EndOnPanic for CancelGuard {
    fn end_on_panic(self, cause: HandlerPanicked) {
        self.cancel_with_cause(cause);
    }
}

impl EndOnPanic for RequestGuard {
    fn end_on_panic(self, cause: HandlerPanicked) {
        self.panicked(cause);
    }
}

/// The request span: real with the `tracing` feature, nothing without.
mod span {
    #[cfg(feature = "tracing")]
    pub(super) type Span = tracing::Span;
    #[cfg(not(feature = "tracing"))]
    pub(super) type Span = ();

    #[cfg(feature = "tracing")]
    pub(super) fn new<B>(req: &http::Request<B>, id: &super::RequestId) -> Span {
        // The id is checked to hold no space, quote or `=` (see
        // `RequestId::from_header`), and a method is a token; a path may
        // hold `"` and `=`, so it is written quoted and escaped.
        tracing::info_span!(
            "request",
            request_id = %id,
            method = %req.method(),
            path = ?req.uri().path(),
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

    /// Says, in the request's span, that the layer dropped the handler and
    /// answered for it.
    #[cfg(feature = "tracing")]
    pub(super) fn lost_race(span: &Span, err: crate::Error) {
        tracing::debug!(
            parent: span,
            error = %err,
            "request context ended before the handler answered: handler dropped"
        );
    }

    #[cfg(not(feature = "tracing"))]
    #[inline]
    pub(super) fn lost_race(_: &Span, _: crate::Error) {}

    /// A span for unit tests: none.
    #[cfg(all(test, feature = "tracing"))]
    pub(super) fn none() -> Span {
        tracing::Span::none()
    }

    #[cfg(all(test, not(feature = "tracing")))]
    pub(super) fn none() -> Span {}
}

/// The request span (with the `tracing` feature; `()` without), for the
/// ending event.
pub(super) type RequestSpan = span::Span;

#[cfg(test)]
pub(super) fn test_span() -> RequestSpan {
    span::none()
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
    fn the_answers_text_is_the_errors_own() {
        for err in [Error::Canceled, Error::DeadlineExceeded] {
            assert_eq!(error_text(err), err.to_string());
        }
    }

    #[test]
    fn grpc_requests_are_known_by_their_content_type() {
        let grpc = |content_type: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            is_grpc(&headers)
        };
        for yes in [
            "application/grpc",
            "application/grpc+proto",
            "application/grpc-web",
            "application/grpc;charset=utf-8",
        ] {
            assert!(grpc(yes), "{yes}");
        }
        for no in ["application/grpcx", "application/json", "text/plain", ""] {
            assert!(!grpc(no), "{no}");
        }
        assert!(!is_grpc(&HeaderMap::new()));
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
