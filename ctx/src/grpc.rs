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
//!   A handler still running when its context ends is dropped, and the
//!   caller gets `DEADLINE_EXCEEDED` or `CANCELLED` from the layer; a
//!   response stream still open then ends with that status in its
//!   trailers (see [the race](crate::http::ContextLayer#the-race)).
//!
//!   **tonic's own timeout.** tonic's `Server` reads the caller's
//!   `grpc-timeout` too, in a timeout of its own outside every layer, and
//!   at the caller's deadline the two race: when tonic's fires first, the
//!   caller gets `CANCELLED` with the message "Timeout expired" (tonic's
//!   mapping of its timeout). The request context ends by its deadline
//!   either way, and the layer's [`stats`](crate::http::ContextLayer::stats)
//!   count it as such. For `DEADLINE_EXCEEDED` from the layer every time,
//!   serve the routes without tonic's `Server`:
//!   `Routes::into_axum_router().layer(ContextLayer::new(&root))` with
//!   `axum::serve`. A deadline the layer sets itself
//!   ([`max_timeout`](crate::http::ContextLayer::max_timeout),
//!   [`default_timeout`](crate::http::ContextLayer::default_timeout)) is
//!   the layer's alone, on either server.
//! - **Client**: wrap the channel in [`ClientLayer`] (its service, response
//!   future and body in [`client`]) and make each request with
//!   [`request(&ctx, message)`](request). The call sends the time left
//!   as `grpc-timeout` and the request id, fails locally with
//!   `DEADLINE_EXCEEDED` or `CANCELLED` when the context is done before it is
//!   sent, and is aborted (stream reset) when the context ends during it.
//!   A call that fails once its deadline has passed fails with
//!   `DEADLINE_EXCEEDED` too: tonic's channel arms a timeout from the
//!   `grpc-timeout` it sends, and it may fire first.
//!   [`interceptor`] does the first two for clients built with
//!   `with_interceptor`, without the abort. Both write the headers by the
//!   HTTP client's rule: a shorter `grpc-timeout` or an `x-request-id` the
//!   request already carries is kept.
//! - **Values on the wire**: request values of a
//!   [`Propagate`] type (W3C
//!   [`TraceContext`](crate::http::TraceContext) and
//!   [`Baggage`](crate::http::Baggage), or your own) travel as metadata
//!   when the client sends them
//!   ([`ClientLayer::propagate`], or an [`Interceptor`] built with
//!   [`Interceptor::propagate`]) and the server's `ContextLayer` reads them
//!   ([`ContextLayer::propagate`](crate::http::ContextLayer::propagate)).
//! - `?` on a [`ctx::Error`](crate::Error) in a handler returns the matching
//!   [`Status`]: `impl From<ctx::Error> for Status`.
//!
//! Go: grpc-go's deadline propagation through `ctx` (`grpc.Invoke(ctx, ...)`
//! and the server's `stream.Context()`).

use tonic::metadata::MetadataMap;
use tonic::Status;

use crate::http::propagate::{Propagate, Propagators};
use crate::{Context, Error};

pub mod client;

// The layer and the service it makes are the front door, named here; the
// future and body, whose names repeat across roles and modules
// (`ResponseFuture`, `ResponseBody`), only in `client`.
#[doc(inline)]
pub use client::{ClientLayer, ClientService};

/// Renamed to [`client::ResponseFuture`]: the gRPC client's response future.
#[deprecated(
    since = "0.2.0",
    note = "renamed to `ctx::grpc::client::ResponseFuture`"
)]
pub type ResponseFuture<F> = client::ResponseFuture<F>;

/// Renamed to [`client::ResponseBody`]: the gRPC client's response body.
#[deprecated(since = "0.2.0", note = "renamed to `ctx::grpc::client::ResponseBody`")]
pub type StatusBody<B> = client::ResponseBody<B>;

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
///
/// It sends no other values: an [`Interceptor`] built with
/// [`Interceptor::propagate`] does.
#[allow(clippy::result_large_err)] // tonic's `Interceptor` shape
pub fn interceptor(req: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
    intercept(req, &Propagators::default())
}

/// [`interceptor`] with request values: a tonic interceptor
/// (`Client::with_interceptor(channel, ctx::grpc::Interceptor::new()...)`)
/// that also sends the nearest value of each
/// [propagated](Interceptor::propagate) type of the request's context as
/// metadata.
///
/// Like [`interceptor`], it fails a call whose context is done before it
/// is sent, sends the time left and the request id, and cannot abort a
/// call already sent ([`ClientLayer`] can).
///
/// ```
/// use ctx::http::TraceContext;
/// use tonic::service::Interceptor as _;
///
/// let mut intercept = ctx::grpc::Interceptor::new().propagate::<TraceContext>();
/// let trace = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", None).unwrap();
/// let ctx = ctx::Context::background().with_value(trace);
/// let req = intercept.call(ctx::grpc::request(&ctx, ())).unwrap();
/// assert_eq!(
///     req.metadata().get("traceparent").unwrap(),
///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
/// );
/// ```
///
/// With a generated client: `GreeterClient::with_interceptor(channel,
/// ctx::grpc::Interceptor::new().propagate::<TraceContext>())`.
///
/// Go: a grpc-go `UnaryClientInterceptor` that copies context values into
/// outgoing metadata (`metadata.AppendToOutgoingContext`).
#[derive(Clone, Debug, Default)]
pub struct Interceptor {
    /// The value types to send; added to by [`Interceptor::propagate`].
    propagate: Propagators,
}

impl Interceptor {
    /// An interceptor that does what [`interceptor`] does, until
    /// [`propagate`](Interceptor::propagate) adds value types to send.
    ///
    /// ```
    /// let intercept = ctx::grpc::Interceptor::new();
    /// # let _ = intercept;
    /// ```
    pub fn new() -> Interceptor {
        Interceptor::default()
    }

    /// Sends the nearest `T` of each request's context in `T`'s header, as
    /// [`ClientLayer::propagate`](crate::http::ClientLayer::propagate)
    /// does: metadata the call already has wins.
    ///
    /// ```
    /// use ctx::http::{Baggage, TraceContext};
    /// let intercept = ctx::grpc::Interceptor::new()
    ///     .propagate::<TraceContext>()
    ///     .propagate::<Baggage>();
    /// # let _ = intercept;
    /// ```
    pub fn propagate<T: Propagate>(mut self) -> Interceptor {
        self.propagate = self.propagate.with::<T>();
        self
    }
}

impl tonic::service::Interceptor for Interceptor {
    fn call(&mut self, req: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        intercept(req, &self.propagate)
    }
}

/// The outgoing metadata of `req`, by the HTTP client's rule.
#[allow(clippy::result_large_err)] // tonic's `Interceptor` shape
fn intercept(
    req: tonic::Request<()>,
    propagate: &Propagators,
) -> Result<tonic::Request<()>, Status> {
    let Some(ctx) = req.extensions().get::<Context>().cloned() else {
        return Ok(req);
    };
    // tonic's metadata is an HTTP header map underneath: unwrap it, so the
    // HTTP client's rule writes it, and wrap it again.
    let (metadata, extensions, message) = req.into_parts();
    let mut headers = metadata.into_headers();
    crate::http::client::prepare_outgoing(&ctx, &mut headers, propagate)?;
    Ok(tonic::Request::from_parts(
        MetadataMap::from_headers(headers),
        extensions,
        message,
    ))
}
