//! The server role: [`ContextLayer`] gives each request a context.
//!
//! The layer makes a [`ContextService`], whose calls return a
//! [`ResponseFuture`] and, once the handler answers, a response with a
//! [`ResponseBody`] that holds the request context open until it has been
//! sent. The layer, the service and the causes [`Abandoned`] and
//! [`HandlerPanicked`] are also at [`ctx::http`](super), as tower keeps a
//! middleware's layer and service beside each other and its futures a step
//! away.

mod body;
mod cause;
mod layer;
mod race;
mod service;

pub use body::ResponseBody;
pub use cause::{Abandoned, HandlerPanicked};
pub use layer::ContextLayer;
pub use service::{ContextService, ResponseFuture};

pub(super) use cause::panicked;
pub(super) use race::{grpc_status_headers, Protocol};
pub(super) use service::ServerRoot;

use super::RequestId;

/// The request span: real with the `tracing` feature, nothing without.
// Kept in this file, not in a child module: `tracing` names a span's and an
// event's target after the module they are written in, and the request span
// and the lost-race event are documented under the target
// `ctx::http::server`.
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
