//! gRPC on tonic: the caller's deadline reaches the handler's context, and
//! the handler's context reaches the next call.
//!
//! tonic honours an incoming `grpc-timeout` by dropping the handler when it
//! expires, but hands the handler no deadline, and sends one only when each
//! call sets it. With `ctx`:
//!
//! - **Server**: add [`ContextLayer`](crate::http::ContextLayer) to the
//!   server (`Server::builder().layer(...)`). Each handler finds its request
//!   context with [`request.context()`](RequestExt::context): its deadline is
//!   the caller's `grpc-timeout` (capped by the layer's maximum), it carries
//!   the [`RequestId`](crate::http::RequestId), and it is canceled when the
//!   caller cancels the call (HTTP/2 stream reset) or the server shuts down.
//! - **Client**: wrap the channel in [`ClientLayer`] and make each request
//!   with [`request(&ctx, message)`](request). The call sends the time left
//!   as `grpc-timeout` and the request id, fails locally with
//!   `DEADLINE_EXCEEDED` or `CANCELLED` when the context is done before it is
//!   sent, and is aborted (stream reset) when the context ends during it.
//!   [`interceptor`] does the first two for clients built with
//!   `with_interceptor`, without the abort. Both write the headers by the
//!   HTTP client's rule: a shorter `grpc-timeout` or an `x-request-id` the
//!   request already carries is kept.
//! - `?` on a [`ctx::Error`](crate::Error) in a handler returns the matching
//!   [`Status`]: `impl From<ctx::Error> for Status`.
//!
//! Go: grpc-go's deadline propagation through `ctx` (`grpc.Invoke(ctx, ...)`
//! and the server's `stream.Context()`).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tonic::metadata::MetadataMap;
use tonic::Status;
use tower_layer::Layer;
use tower_service::Service;

use crate::http::{self as ctx_http, ClientError};
use crate::{Context, Error};

/// A tonic request carrying `ctx`: the message, with the context in its
/// extensions (for [`ClientLayer`] and [`interceptor`]) and its time left
/// as the request's timeout.
///
/// ```
/// use std::time::Duration;
/// use ctx::grpc::RequestExt;
///
/// let (ctx, _cancel) = ctx::Context::background().with_timeout(Duration::from_secs(5));
/// let req = ctx::grpc::request(&ctx, "hello");
/// assert!(req.metadata().get("grpc-timeout").is_some());
/// assert!(req.context().deadline().is_some()); // the same context
/// ```
///
/// Go: passing `ctx` to a generated client method.
pub fn request<T>(ctx: &Context, message: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    if let Some(left) = ctx.remaining() {
        req.set_timeout(left);
    }
    req.extensions_mut().insert(ctx.clone());
    req
}

/// The context of a tonic request: on a server, the one
/// [`ContextLayer`](crate::http::ContextLayer) made; on a client, the one
/// [`request`] attached.
///
/// ```
/// use ctx::grpc::RequestExt;
/// let (ctx, cancel) = ctx::Context::background().with_cancel();
/// let req = ctx::grpc::request(&ctx, ());
/// cancel.cancel();
/// assert!(req.context().is_done());
/// assert!(!tonic::Request::new(()).context().is_done()); // none: background
/// ```
///
/// Go: `stream.Context()` in a grpc-go handler.
pub trait RequestExt {
    /// The request's context; [`Context::background`] if it has none.
    fn context(&self) -> Context;
}

impl<T> RequestExt for tonic::Request<T> {
    fn context(&self) -> Context {
        self.extensions()
            .get::<Context>()
            .cloned()
            .unwrap_or_default()
    }
}

/// `DEADLINE_EXCEEDED` for [`Error::DeadlineExceeded`], `CANCELLED` for
/// [`Error::Canceled`], so a handler can write `ctx.check()?`.
///
/// ```
/// fn handler(ctx: &ctx::Context) -> Result<(), tonic::Status> {
///     ctx.check()?;
///     Ok(())
/// }
/// let (ctx, cancel) = ctx::Context::background().with_cancel();
/// cancel.cancel();
/// assert_eq!(handler(&ctx).unwrap_err().code(), tonic::Code::Cancelled);
/// ```
impl From<Error> for Status {
    fn from(err: Error) -> Status {
        match err {
            Error::Canceled => Status::cancelled(err.to_string()),
            Error::DeadlineExceeded => Status::deadline_exceeded(err.to_string()),
        }
    }
}

/// A tonic interceptor (`Client::with_interceptor(channel, ctx::grpc::interceptor)`)
/// for requests made with [`request`]: fails a call whose context is done
/// before it is sent, and sends the time left as `grpc-timeout` (unless the
/// request asks for less) and the request id as `x-request-id` (unless the
/// request has one), by the same rule as
/// [`ClientLayer`](crate::http::ClientLayer). It cannot abort a call
/// already sent: use [`ClientLayer`] for that.
///
/// ```
/// use std::time::Duration;
/// use ctx::http::RequestId;
///
/// let (ctx, _cancel) = ctx::Context::background().with_timeout(Duration::ZERO);
/// let req = ctx::grpc::request(&ctx, ());
/// let status = ctx::grpc::interceptor(req).unwrap_err();
/// assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
///
/// // An id the caller set on the call is the one sent.
/// let ctx = ctx::Context::background().with_value(RequestId::generate());
/// let mut req = ctx::grpc::request(&ctx, ());
/// req.metadata_mut().insert("x-request-id", "mine".parse().unwrap());
/// let req = ctx::grpc::interceptor(req).unwrap();
/// assert_eq!(req.metadata().get("x-request-id").unwrap(), "mine");
/// ```
///
/// # Errors
///
/// `DEADLINE_EXCEEDED` or `CANCELLED` when the request's context is done.
#[allow(clippy::result_large_err)] // tonic's `Interceptor` shape
pub fn interceptor(req: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
    let Some(ctx) = req.extensions().get::<Context>().cloned() else {
        return Ok(req);
    };
    // tonic's metadata is an HTTP header map underneath: unwrap it, so the
    // HTTP client's rule writes it, and wrap it again.
    let (metadata, extensions, message) = req.into_parts();
    let mut headers = metadata.into_headers();
    ctx_http::prepare_outgoing(&ctx, &mut headers)?;
    Ok(tonic::Request::from_parts(
        MetadataMap::from_headers(headers),
        extensions,
        message,
    ))
}

/// [`crate::http::ClientLayer`] for tonic channels: errors come out as
/// [`Status`], so a call aborted by its context fails with
/// `DEADLINE_EXCEEDED` or `CANCELLED`, as a generated client expects.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// use tower::ServiceExt;
///
/// // Stands for `tonic::transport::Channel` (any `Service<http::Request<_>>`):
/// // this one never answers.
/// let channel = tower::service_fn(|_: http::Request<()>| {
///     std::future::pending::<Result<http::Response<String>, std::io::Error>>()
/// });
/// let channel = tower::ServiceBuilder::new()
///     .layer(ctx::grpc::ClientLayer::new())
///     .service(channel);
/// // In real code: GreeterClient::new(channel).say_hello(ctx::grpc::request(&ctx, msg))
/// let (ctx, _cancel) = ctx::Context::background().with_timeout(Duration::from_millis(20));
/// let call = http::Request::new(()).with_context(&ctx);
/// # use ctx::http::RequestExt;
/// let status = channel.oneshot(call).await.unwrap_err();
/// assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
/// # }
/// ```
///
/// Go: a grpc-go client call given `ctx`.
#[derive(Clone, Debug, Default)]
pub struct ClientLayer {
    inner: ctx_http::ClientLayer,
}

impl ClientLayer {
    /// The layer; like [`crate::http::ClientLayer`], it has no settings.
    ///
    /// ```
    /// let layer = ctx::grpc::ClientLayer::new();
    /// # let _ = layer;
    /// ```
    pub fn new() -> ClientLayer {
        ClientLayer::default()
    }
}

impl<S> Layer<S> for ClientLayer {
    type Service = ClientService<S>;

    fn layer(&self, inner: S) -> ClientService<S> {
        ClientService {
            inner: self.inner.layer(inner),
        }
    }
}

/// The service made by [`ClientLayer`].
///
/// ```
/// use tower::Layer;
/// let svc = ctx::grpc::ClientLayer::new().layer(tower::service_fn(|_: http::Request<()>| async {
///     Ok::<_, std::io::Error>(http::Response::new(String::new()))
/// }));
/// # let _ = svc;
/// ```
#[derive(Clone, Debug)]
pub struct ClientService<S> {
    inner: ctx_http::ClientService<S>,
}

impl<S, B, ResBody> Service<http::Request<B>> for ClientService<S>
where
    S: Service<http::Request<B>, Response = http::Response<ResBody>>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = http::Response<StatusBody<ResBody>>;
    type Error = Status;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Status>> {
        self.inner.poll_ready(cx).map_err(to_status)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        ResponseFuture {
            inner: self.inner.call(req),
        }
    }
}

fn to_status(err: ClientError) -> Status {
    match err {
        ClientError::Context(err) => err.into(),
        ClientError::Service(err) => Status::from_error(err),
    }
}

pin_project! {
    /// The response future of [`ClientService`].
    ///
    /// # Cancel safety
    ///
    /// Dropping it drops the call.
    ///
    /// ```
    /// fn assert_future<F: std::future::Future>(_: &F) {}
    /// # use tower::{Layer, Service};
    /// # let mut svc = ctx::grpc::ClientLayer::new().layer(tower::service_fn(|_: http::Request<()>| async {
    /// #     Ok::<_, std::io::Error>(http::Response::new(String::new()))
    /// # }));
    /// let fut: ctx::grpc::ResponseFuture<_> = svc.call(http::Request::new(()));
    /// assert_future(&fut);
    /// ```
    pub struct ResponseFuture<F> {
        #[pin]
        inner: ctx_http::ClientFuture<F>,
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<ResBody>, E>>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Output = Result<http::Response<StatusBody<ResBody>>, Status>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx).map(|result| match result {
            Ok(resp) => Ok(resp.map(|inner| StatusBody { inner })),
            Err(err) => Err(to_status(err)),
        })
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

pin_project! {
    /// A [`ClientBody`](crate::http::ClientBody) whose errors are [`Status`]:
    /// a response stream cut off by the context ends with
    /// `DEADLINE_EXCEEDED` or `CANCELLED`.
    ///
    /// ```
    /// fn assert_body<B: http_body::Body<Error = tonic::Status>>() {}
    /// assert_body::<ctx::grpc::StatusBody<String>>();
    /// ```
    pub struct StatusBody<B> {
        #[pin]
        inner: ctx_http::ClientBody<B>,
    }
}

impl<B> Body for StatusBody<B>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = B::Data;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, Status>>> {
        self.project()
            .inner
            .poll_frame(cx)
            .map(|frame| frame.map(|frame| frame.map_err(to_status)))
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

impl<B> fmt::Debug for StatusBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatusBody").finish_non_exhaustive()
    }
}
