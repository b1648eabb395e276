//! The client role: [`ClientLayer`] is [`crate::http::ClientLayer`] for
//! tonic channels, with [`Status`] errors.
//!
//! The layer makes a [`ClientService`], whose calls return a
//! [`ResponseFuture`] and, once answered, a response with a
//! [`ResponseBody`]: the same names, in the same roles, as in
//! [`ctx::http::client`](crate::http::client), which does the work (the
//! outgoing headers, the abort) underneath. The layer and the service are
//! also at [`ctx::grpc`](super).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tonic::Status;
use tower_layer::Layer;
use tower_service::Service;

use crate::http::client as http_client;
use crate::http::BoxError;
use crate::http::ClientError;

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
    /// The HTTP layer that does the work, with the same settings.
    inner: http_client::ClientLayer,
}

impl ClientLayer {
    /// The layer; like [`crate::http::ClientLayer::new`], it sends the
    /// deadline and the request id, and [`propagate`](ClientLayer::propagate)
    /// adds value types to send.
    ///
    /// ```
    /// let layer = ctx::grpc::ClientLayer::new();
    /// # let _ = layer;
    /// ```
    pub fn new() -> ClientLayer {
        ClientLayer::default()
    }

    /// Sends the nearest `T` of each call's context as metadata, as
    /// [`crate::http::ClientLayer::propagate`] does: metadata the call
    /// already has wins.
    ///
    /// ```
    /// use ctx::http::{Baggage, TraceContext};
    /// let channel = tower::service_fn(|_: http::Request<()>| async {
    ///     Ok::<_, std::io::Error>(http::Response::new(String::new()))
    /// });
    /// let channel = tower::ServiceBuilder::new()
    ///     .layer(ctx::grpc::ClientLayer::new().propagate::<TraceContext>().propagate::<Baggage>())
    ///     .service(channel);
    /// # let _ = channel;
    /// ```
    pub fn propagate<T: crate::http::Propagate>(self) -> ClientLayer {
        ClientLayer {
            inner: self.inner.propagate::<T>(),
        }
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
    /// The HTTP client service; set by [`ClientLayer::layer`].
    inner: http_client::ClientService<S>,
}

impl<S, B, ResBody> Service<http::Request<B>> for ClientService<S>
where
    S: Service<http::Request<B>, Response = http::Response<ResBody>>,
    S::Error: Into<BoxError>,
{
    type Response = http::Response<ResponseBody<ResBody>>;
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
    /// let fut: ctx::grpc::client::ResponseFuture<_> = svc.call(http::Request::new(()));
    /// assert_future(&fut);
    /// ```
    pub struct ResponseFuture<F> {
        // The HTTP client's call; set by `ClientService::call`.
        #[pin]
        inner: http_client::ResponseFuture<F>,
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<ResBody>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<http::Response<ResponseBody<ResBody>>, Status>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx).map(|result| match result {
            Ok(resp) => Ok(resp.map(|inner| ResponseBody { inner })),
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
    /// The response body of [`ClientService`]: the HTTP client's
    /// [`ResponseBody`](crate::http::client::ResponseBody) with [`Status`]
    /// errors, so a response stream cut off by the context ends with
    /// `DEADLINE_EXCEEDED` or `CANCELLED`.
    ///
    /// ```
    /// fn assert_body<B: http_body::Body<Error = tonic::Status>>() {}
    /// assert_body::<ctx::grpc::client::ResponseBody<String>>();
    /// ```
    pub struct ResponseBody<B> {
        // The HTTP client's body, from the response future.
        #[pin]
        inner: http_client::ResponseBody<B>,
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
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

impl<B> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseBody").finish_non_exhaustive()
    }
}
