//! The client role: [`ClientLayer`] sends a request's deadline and id on,
//! and aborts the call when its context is done.
//!
//! The layer makes a [`ClientService`], whose calls return a
//! [`ResponseFuture`] and, once answered, a response with a
//! [`ResponseBody`]; both fail with [`ClientError`]. The layer, the service
//! and the error are also at [`ctx::http`](super), as tower keeps a
//! middleware's layer and service beside each other and its futures a step
//! away.
//!
//! The outgoing headers follow one rule, shared with the gRPC client
//! ([`ctx::grpc`](crate::grpc), feature `tonic`): a call whose context is
//! done is not sent; the time left goes as `grpc-timeout` unless the request
//! already asks for less; the context's [`RequestId`] goes as
//! `x-request-id` unless the request already has one; and each value type
//! the layer [propagates](ClientLayer::propagate) goes in its header,
//! unless the request already has that header.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::propagate::{Propagate, Propagators};
use super::BoxError;
use super::{decode_timeout, encode_timeout, RequestId, GRPC_TIMEOUT, X_REQUEST_ID};
use crate::{Context, DoneOwned, Error};

/// A tower layer for outgoing requests (hyper-util's client, a tonic
/// channel, any `Service<http::Request<B>>`) that makes each call obey the
/// [`Context`] the request carries.
///
/// For a request with a context in its extensions (put there with
/// [`RequestExt::with_context`](super::RequestExt::with_context)):
///
/// - a context that is done already fails the call with
///   [`ClientError::Context`] without calling the inner service, so nothing
///   is sent; so does a deadline that has passed, even before the timer
///   marks the context done ([`Error::DeadlineExceeded`]);
/// - the time left is sent as `grpc-timeout` (or the request's own
///   `grpc-timeout`, if that is shorter), and the context's [`RequestId`] as
///   `x-request-id` (unless the request has one);
/// - the nearest value of each [propagated](ClientLayer::propagate) type in
///   the context is sent in its header (unless the request has that
///   header: the caller's own, or an OpenTelemetry propagator's, wins);
/// - once the context is done, the call is aborted: the inner future, and
///   later the response body, are dropped (which closes the connection or
///   resets the stream) and the call, or the next read of the body, fails
///   with [`ClientError::Context`].
///
/// A request without a context passes through unchanged.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// use ctx::http::{ClientLayer, RequestExt};
/// use tower::{Layer, ServiceExt};
///
/// // Stands for a real client: checks the deadline it was sent.
/// let client = ClientLayer::new().layer(tower::service_fn(|req: http::Request<()>| async move {
///     let sent = ctx::http::decode_timeout(&req.headers()["grpc-timeout"]).unwrap();
///     assert!(sent <= Duration::from_secs(2));
///     Ok::<_, std::io::Error>(http::Response::new(()))
/// }));
///
/// let (ctx, cancel) = ctx::Context::background().with_timeout(Duration::from_secs(2));
/// client.clone().oneshot(http::Request::new(()).with_context(&ctx)).await.unwrap();
///
/// cancel.cancel();
/// let err = client.oneshot(http::Request::new(()).with_context(&ctx)).await.unwrap_err();
/// assert_eq!(err.context_error(), Some(ctx::Error::Canceled)); // never sent
/// # }
/// ```
///
/// Go: `http.NewRequestWithContext` with a client, and grpc-go's deadline
/// propagation.
#[derive(Clone, Debug, Default)]
pub struct ClientLayer {
    /// The value types sent from the request's context; added to by
    /// [`ClientLayer::propagate`].
    propagate: Propagators,
}

impl ClientLayer {
    /// The layer. Everything it sends comes from each request's context;
    /// [`propagate`](ClientLayer::propagate) adds value types to send.
    ///
    /// ```
    /// let layer = ctx::http::ClientLayer::new();
    /// # let _ = layer;
    /// ```
    pub fn new() -> ClientLayer {
        ClientLayer::default()
    }

    /// Sends the nearest `T` of each request's context in `T`'s header
    /// ([`Propagate`]), for a server that reads it with
    /// [`ContextLayer::propagate`](super::ContextLayer::propagate). A request
    /// that already has the header keeps its own: a value the caller (or
    /// an OpenTelemetry propagator) set wins. A context without a `T`
    /// sends nothing. Registering a type twice sends it once.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use ctx::http::{Baggage, ClientLayer, RequestExt, TraceContext};
    /// use tower::{Layer, ServiceExt};
    ///
    /// // Stands for a real client: echoes the headers it was sent.
    /// let client = ClientLayer::new()
    ///     .propagate::<TraceContext>()
    ///     .propagate::<Baggage>()
    ///     .layer(tower::service_fn(|req: http::Request<()>| async move {
    ///         let mut resp = http::Response::new(());
    ///         *resp.headers_mut() = req.headers().clone();
    ///         Ok::<_, std::io::Error>(resp)
    ///     }));
    ///
    /// let trace = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", None).unwrap();
    /// let baggage = Baggage::new().with("user", "alice").unwrap();
    /// let ctx = ctx::Context::background().with_value(trace).with_value(baggage);
    ///
    /// let sent = client.clone().oneshot(http::Request::new(()).with_context(&ctx)).await.unwrap();
    /// assert_eq!(sent.headers()["traceparent"], "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    /// assert_eq!(sent.headers()["baggage"], "user=alice");
    ///
    /// // The caller's own header wins.
    /// let mut req = http::Request::new(()).with_context(&ctx);
    /// req.headers_mut().insert("baggage", "user=bob".parse().unwrap());
    /// let sent = client.oneshot(req).await.unwrap();
    /// assert_eq!(sent.headers()["baggage"], "user=bob");
    /// # }
    /// ```
    pub fn propagate<T: Propagate>(mut self) -> ClientLayer {
        self.propagate = self.propagate.with::<T>();
        self
    }
}

impl<S> Layer<S> for ClientLayer {
    type Service = ClientService<S>;

    fn layer(&self, inner: S) -> ClientService<S> {
        ClientService {
            inner,
            propagate: self.propagate.clone(),
        }
    }
}

/// The service made by [`ClientLayer`]: see there.
///
/// ```
/// use tower::Layer;
/// let client = ctx::http::ClientLayer::new().layer(tower::service_fn(|_: http::Request<()>| async {
///     Ok::<_, std::io::Error>(http::Response::new(String::new()))
/// }));
/// # let _ = client;
/// ```
#[derive(Clone, Debug)]
pub struct ClientService<S> {
    /// The service that sends the request; set by [`ClientLayer::layer`].
    inner: S,
    /// The value types to send, from the layer.
    propagate: Propagators,
}

impl<S> ClientService<S> {
    /// The wrapped service.
    ///
    /// ```
    /// use tower::Layer;
    /// let client = ctx::http::ClientLayer::new().layer(7);
    /// assert_eq!(*client.get_ref(), 7);
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, B, ResBody> Service<Request<B>> for ClientService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = ClientError;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), ClientError>> {
        self.inner
            .poll_ready(cx)
            .map_err(|err| ClientError::Service(err.into()))
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let Some(ctx) = req.extensions().get::<Context>().cloned() else {
            return ResponseFuture::running(self.inner.call(req), None);
        };
        if let Err(err) = prepare_outgoing(&ctx, req.headers_mut(), &self.propagate) {
            return ResponseFuture::failed(err);
        }
        // An owned `done()`: it lives in the future, then in the body, and
        // costs no allocation of its own.
        let done = ctx.done_owned();
        ResponseFuture::running(self.inner.call(req), Some(done))
    }
}

/// The headers of a call made under `ctx`: the one rule of every outgoing
/// call, for [`ClientService`] and for the gRPC interceptor (whose tonic
/// metadata is a header map underneath).
///
/// - `ctx` done, or its deadline passed: the context's error (a passed
///   deadline is [`Error::DeadlineExceeded`] even before the timer marks the
///   context done), and `headers` untouched;
/// - the time left goes as `grpc-timeout`, unless `headers` already holds a
///   valid shorter one: the caller may ask for less, never for more;
/// - the context's [`RequestId`] goes as `x-request-id`, unless `headers`
///   already holds one: an id the caller set is theirs to choose;
/// - each type of `propagate` goes in its header from the context's
///   nearest value, unless `headers` already holds it.
pub(crate) fn prepare_outgoing(
    ctx: &Context,
    headers: &mut HeaderMap,
    propagate: &Propagators,
) -> Result<(), Error> {
    ctx.check()?;
    if let Some(left) = ctx.remaining() {
        // The timer may not have fired yet at the very instant the deadline
        // passes; a call with no time left would only fail remotely.
        if left == Duration::ZERO {
            return Err(Error::DeadlineExceeded);
        }
        let own = headers.get(GRPC_TIMEOUT).and_then(decode_timeout);
        if own.is_none_or(|own| own > left) {
            headers.insert(GRPC_TIMEOUT, encode_timeout(left));
        }
    }
    if let Some(id) = ctx.value::<RequestId>() {
        headers
            .entry(X_REQUEST_ID)
            .or_insert_with(|| id.header_value().clone());
    }
    propagate.encode(ctx, headers);
    Ok(())
}

pin_project! {
    /// The response future of [`ClientService`]: the inner call, raced
    /// against the request's context.
    ///
    /// # Cancel safety
    ///
    /// Dropping it drops the inner call, as dropping any tower future does.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use ctx::http::RequestExt;
    /// use tower::{Layer, Service};
    /// let mut client = ctx::http::ClientLayer::new().layer(tower::service_fn(|_: http::Request<()>| {
    ///     std::future::pending::<Result<http::Response<String>, std::io::Error>>()
    /// }));
    /// let (ctx, cancel) = ctx::Context::background().with_cancel();
    /// let call: ctx::http::client::ResponseFuture<_> = client.call(http::Request::new(()).with_context(&ctx));
    /// cancel.cancel(); // aborts the call that would never answer
    /// assert_eq!(call.await.unwrap_err().context_error(), Some(ctx::Error::Canceled));
    /// # }
    /// ```
    pub struct ResponseFuture<F> {
        // Chosen once, by `ClientService::call`.
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    /// A call that was sent, or one refused before sending.
    #[project = StateProj]
    enum State<F> {
        Running {
            // The inner service's call.
            #[pin]
            inner: F,
            // The end of the request's context: `None` for a request
            // without one. Moved into the body when the response head
            // arrives.
            done: Option<DoneOwned>,
        },
        Failed {
            // Why the call was not sent; taken by the one poll that
            // reports it.
            err: Option<Error>,
        },
    }
}

impl<F> ResponseFuture<F> {
    fn running(inner: F, done: Option<DoneOwned>) -> ResponseFuture<F> {
        ResponseFuture {
            state: State::Running { inner, done },
        }
    }

    fn failed(err: Error) -> ResponseFuture<F> {
        ResponseFuture {
            state: State::Failed { err: Some(err) },
        }
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, ClientError>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Failed { err } => Poll::Ready(Err(ClientError::Context(
                err.take()
                    .expect("ctx: internal error: client ResponseFuture polled after it finished"),
            ))),
            StateProj::Running { inner, done } => {
                // The context first: once it is done the call is over, even
                // if the answer arrived in the same instant.
                if let Some(err) = done.as_mut().and_then(|d| ready_err(Pin::new(d).poll(cx))) {
                    return Poll::Ready(Err(ClientError::Context(err)));
                }
                match inner.poll(cx) {
                    Poll::Pending => Poll::Pending,
                    // A failure once the deadline has passed, before ctx's
                    // timer fired it: most likely a timeout below that read
                    // the `grpc-timeout` sent (tonic's channel does), so the
                    // call failed by its deadline.
                    Poll::Ready(Err(_))
                        if done.as_ref().is_some_and(DoneOwned::deadline_passed) =>
                    {
                        Poll::Ready(Err(ClientError::Context(Error::DeadlineExceeded)))
                    }
                    Poll::Ready(Err(err)) => Poll::Ready(Err(ClientError::Service(err.into()))),
                    Poll::Ready(Ok(resp)) => {
                        let done = done.take();
                        Poll::Ready(Ok(resp.map(|inner| ResponseBody {
                            inner,
                            done,
                            aborted: false,
                        })))
                    }
                }
            }
        }
    }
}

fn ready_err(poll: Poll<Error>) -> Option<Error> {
    match poll {
        Poll::Ready(err) => Some(err),
        Poll::Pending => None,
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

pin_project! {
    /// A response body that fails with [`ClientError::Context`] once the
    /// request's context is done, so that reading a slow body obeys the
    /// deadline too (Go: the context covers "reading the response headers
    /// and body").
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use ctx::http::RequestExt;
    /// use http_body::Body;
    /// use tower::{Layer, ServiceExt};
    /// let client = ctx::http::ClientLayer::new().layer(tower::service_fn(|_: http::Request<()>| async {
    ///     Ok::<_, std::io::Error>(http::Response::new(String::from("body")))
    /// }));
    /// let (ctx, cancel) = ctx::Context::background().with_cancel();
    /// let resp = client.oneshot(http::Request::new(()).with_context(&ctx)).await.unwrap();
    /// let mut body: ctx::http::client::ResponseBody<String> = resp.into_body();
    /// cancel.cancel();
    /// let frame = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await;
    /// assert_eq!(frame.unwrap().unwrap_err().context_error(), Some(ctx::Error::Canceled));
    /// # }
    /// ```
    pub struct ResponseBody<B> {
        // The inner service's body.
        #[pin]
        inner: B,
        // The end of the request's context, from the response future;
        // cleared at the end of the body (its trailers or its end) or when
        // the context ends it, so a finished body holds no context.
        done: Option<DoneOwned>,
        // Set once the context ended the body: every later poll reports
        // the end.
        aborted: bool,
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = ClientError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, ClientError>>> {
        let this = self.project();
        if *this.aborted {
            return Poll::Ready(None);
        }
        if let Some(err) = this
            .done
            .as_mut()
            .and_then(|d| ready_err(Pin::new(d).poll(cx)))
        {
            *this.aborted = true;
            *this.done = None;
            return Poll::Ready(Some(Err(ClientError::Context(err))));
        }
        match this.inner.poll_frame(cx) {
            Poll::Ready(None) => {
                *this.done = None;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(_)))
                if this.done.as_ref().is_some_and(DoneOwned::deadline_passed) =>
            {
                *this.aborted = true;
                *this.done = None;
                Poll::Ready(Some(Err(ClientError::Context(Error::DeadlineExceeded))))
            }
            Poll::Ready(Some(frame)) => {
                // Trailers are the last frame: the response is in, and a
                // context that ends after them must not fail the poll that
                // finds the end (nor hold the context until then).
                if frame.as_ref().is_ok_and(Frame::is_trailers) {
                    *this.done = None;
                }
                Poll::Ready(Some(frame.map_err(|err| ClientError::Service(err.into()))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        self.aborted || self.inner.is_end_stream()
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        // Nothing more comes from an aborted body, whatever the inner one
        // announced.
        if self.aborted {
            return SizeHint::with_exact(0);
        }
        self.inner.size_hint()
    }
}

impl<B> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseBody")
            .field("aborted", &self.aborted)
            .finish_non_exhaustive()
    }
}

/// Why a call through [`ClientLayer`] failed: its context, or the service.
///
/// ```
/// let err = ctx::http::ClientError::Context(ctx::Error::DeadlineExceeded);
/// assert_eq!(err.context_error(), Some(ctx::Error::DeadlineExceeded));
/// assert_eq!(err.to_string(), "context deadline exceeded");
/// let io: std::io::Error = err.into();
/// assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
/// ```
#[derive(Debug)]
pub enum ClientError {
    /// The request's context was done before the call, or became done during
    /// it: the call was not sent, or was aborted. Also a failure of the
    /// service once the context's deadline had passed (as Go's clients
    /// report the context's error then): a timeout below the layer that
    /// reads the `grpc-timeout` it sent, such as tonic's channel, fires at
    /// the same deadline and may come first.
    Context(Error),
    /// The wrapped service failed (connecting, sending, reading).
    Service(BoxError),
}

impl ClientError {
    /// The context's error, if that is what ended the call.
    ///
    /// ```
    /// let err = ctx::http::ClientError::Service(std::io::Error::other("refused").into());
    /// assert_eq!(err.context_error(), None);
    /// ```
    pub fn context_error(&self) -> Option<Error> {
        match self {
            ClientError::Context(err) => Some(*err),
            ClientError::Service(_) => None,
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Context(err) => fmt::Display::fmt(err, f),
            ClientError::Service(err) => fmt::Display::fmt(err, f),
        }
    }
}

/// Transparent: the display and the source are the wrapped error's own.
impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Context(err) => err.source(),
            ClientError::Service(err) => err.source(),
        }
    }
}

impl From<ClientError> for std::io::Error {
    /// A context error converts as [`Error`] does (`Interrupted`,
    /// `TimedOut`); a service error becomes `Other`, or stays the I/O error
    /// it was.
    fn from(err: ClientError) -> std::io::Error {
        match err {
            ClientError::Context(err) => err.into(),
            ClientError::Service(err) => match err.downcast::<std::io::Error>() {
                Ok(io) => *io,
                Err(other) => std::io::Error::other(other),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use http::HeaderValue;

    use super::*;
    use crate::http::{Baggage, TraceContext};

    fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
        headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// Every built-in value type.
    fn all() -> Propagators {
        Propagators::default()
            .with::<TraceContext>()
            .with::<Baggage>()
    }

    #[test]
    fn a_done_context_is_refused_and_the_headers_left_alone() {
        let ctx = Context::background().with_value(RequestId::generate());
        let (canceled, cancel) = ctx.with_cancel();
        cancel.cancel();
        let (passed, _guard) = ctx.with_deadline(Instant::now());
        for (done, want) in [
            (canceled, Error::Canceled),
            (passed, Error::DeadlineExceeded),
        ] {
            let mut headers = HeaderMap::new();
            assert_eq!(prepare_outgoing(&done, &mut headers, &all()), Err(want));
            assert!(headers.is_empty(), "{headers:?}");
        }
    }

    #[test]
    fn the_callers_own_id_and_shorter_timeout_are_kept() {
        let ctx = Context::background()
            .with_value(RequestId::from_header(&HeaderValue::from_static("ctx-id")).unwrap());
        let (ctx, _guard) = ctx.with_timeout(Duration::from_secs(60));

        let mut headers = HeaderMap::new();
        headers.insert(X_REQUEST_ID, HeaderValue::from_static("mine"));
        headers.insert(GRPC_TIMEOUT, HeaderValue::from_static("1S"));
        prepare_outgoing(&ctx, &mut headers, &all()).unwrap();
        assert_eq!(header(&headers, "x-request-id"), Some("mine"));
        assert_eq!(header(&headers, "grpc-timeout"), Some("1S"));

        let mut headers = HeaderMap::new();
        headers.insert(GRPC_TIMEOUT, HeaderValue::from_static("2H"));
        prepare_outgoing(&ctx, &mut headers, &all()).unwrap();
        assert_eq!(header(&headers, "x-request-id"), Some("ctx-id"));
        let sent = decode_timeout(&headers[GRPC_TIMEOUT]).unwrap();
        assert!(sent <= Duration::from_secs(60), "{sent:?}");
    }

    #[test]
    fn a_context_without_deadline_or_id_adds_nothing() {
        let mut headers = HeaderMap::new();
        prepare_outgoing(&Context::background(), &mut headers, &all()).unwrap();
        assert!(headers.is_empty(), "{headers:?}");
    }

    #[test]
    fn values_go_in_their_headers_unless_the_caller_set_them() {
        let trace = TraceContext::parse(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            Some("rojo=1"),
        )
        .unwrap();
        let baggage = Baggage::new().with("user", "alice").unwrap();
        let ctx = Context::background().with_value(trace).with_value(baggage);

        let mut headers = HeaderMap::new();
        prepare_outgoing(&ctx, &mut headers, &all()).unwrap();
        assert_eq!(
            header(&headers, "traceparent"),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        );
        assert_eq!(header(&headers, "tracestate"), Some("rojo=1"));
        assert_eq!(header(&headers, "baggage"), Some("user=alice"));

        // Only the registered types.
        let mut headers = HeaderMap::new();
        let only_baggage = Propagators::default().with::<Baggage>();
        prepare_outgoing(&ctx, &mut headers, &only_baggage).unwrap();
        assert!(!headers.contains_key("traceparent"), "{headers:?}");

        // The caller's own headers win.
        let mut headers = HeaderMap::new();
        let theirs = "00-11111111111111111111111111111111-2222222222222222-00";
        headers.insert("traceparent", HeaderValue::from_static(theirs));
        headers.insert("baggage", HeaderValue::from_static("user=bob"));
        prepare_outgoing(&ctx, &mut headers, &all()).unwrap();
        assert_eq!(header(&headers, "traceparent"), Some(theirs));
        assert!(!headers.contains_key("tracestate"), "{headers:?}");
        assert_eq!(header(&headers, "baggage"), Some("user=bob"));
    }

    #[test]
    fn a_type_registered_twice_is_sent_once() {
        let twice = all().with::<Baggage>().with::<TraceContext>();
        assert_eq!(format!("{twice:?}"), format!("{:?}", all()));
        let ctx = Context::background().with_value(Baggage::new().with("a", "1").unwrap());
        let mut headers = HeaderMap::new();
        prepare_outgoing(&ctx, &mut headers, &twice).unwrap();
        assert_eq!(headers.get_all("baggage").iter().count(), 1);
    }
}
