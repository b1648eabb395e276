//! axum extractors: a handler takes `ctx: ctx::Context` (and `RequestId`)
//! as arguments; `ctx::Error` is a response.

use std::fmt;

use axum_core::extract::FromRequestParts;
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;
use http::StatusCode;

use super::RequestId;
use crate::{Context, Error};

/// The request's context, put there by [`ContextLayer`](super::ContextLayer).
///
/// A handler takes it by value, first. For a `#[ctx]` handler, write
/// `#[ctx(owned)]`: a plain `#[ctx]` adds `ctx: &Context`, which no extractor
/// gives, and axum then reports that the function does not implement
/// `Handler<_, _>`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use axum::{routing::get, Router};
/// use tower::ServiceExt;
///
/// async fn handler(ctx: ctx::Context) -> Result<&'static str, ctx::Error> {
///     ctx.check()?; // 503 if the request is canceled, 504 past its deadline
///     Ok("hello")
/// }
///
/// let root = ctx::Context::background();
/// let app = Router::new()
///     .route("/", get(handler))
///     .layer(ctx::http::ContextLayer::new(&root));
/// let resp = app.oneshot(http::Request::new(axum::body::Body::empty())).await.unwrap();
/// assert_eq!(resp.status(), 200);
/// # }
/// ```
impl<S: Send + Sync> FromRequestParts<S> for Context {
    type Rejection = MissingContext;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Context, MissingContext> {
        parts
            .extensions
            .get::<Context>()
            .cloned()
            .ok_or(MissingContext)
    }
}

/// The request's id, from its context.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use axum::{routing::get, Router};
/// use ctx::http::RequestId;
/// use tower::ServiceExt;
///
/// async fn handler(id: RequestId) -> String {
///     format!("you are {id}")
/// }
///
/// let app = Router::new()
///     .route("/", get(handler))
///     .layer(ctx::http::ContextLayer::new(&ctx::Context::background()));
/// let req = http::Request::builder()
///     .header("x-request-id", "r-1")
///     .body(axum::body::Body::empty())
///     .unwrap();
/// let resp = app.oneshot(req).await.unwrap();
/// assert_eq!(resp.headers()["x-request-id"], "r-1");
/// # }
/// ```
impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = MissingContext;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<RequestId, MissingContext> {
        parts
            .extensions
            .get::<Context>()
            .and_then(|ctx| ctx.value::<RequestId>())
            .cloned()
            .ok_or(MissingContext)
    }
}

/// The rejection of the [`Context`] and [`RequestId`] extractors when the
/// request went through no [`ContextLayer`](super::ContextLayer): a
/// configuration mistake, answered with 500 Internal Server Error.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use axum::{routing::get, Router};
/// use tower::ServiceExt;
///
/// let app = Router::new().route("/", get(|_: ctx::Context| async { "unreachable" })); // no layer
/// let resp = app.oneshot(http::Request::new(axum::body::Body::empty())).await.unwrap();
/// assert_eq!(resp.status(), 500);
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissingContext;

impl fmt::Display for MissingContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the request has no ctx::Context: add ctx::http::ContextLayer to the router")
    }
}

impl std::error::Error for MissingContext {}

impl IntoResponse for MissingContext {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}

/// A handler may return `Err(ctx::Error)`: `Canceled` answers 503 Service
/// Unavailable (the server is shutting down, or nobody is listening),
/// `DeadlineExceeded` 504 Gateway Timeout.
///
/// ```
/// use axum_core::response::IntoResponse;
/// assert_eq!(ctx::Error::Canceled.into_response().status(), 503);
/// assert_eq!(ctx::Error::DeadlineExceeded.into_response().status(), 504);
/// ```
impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = match self {
            Error::Canceled => StatusCode::SERVICE_UNAVAILABLE,
            Error::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        };
        (status, self.to_string()).into_response()
    }
}

/// A handler may return the error of a call it made through
/// [`ClientLayer`](super::ClientLayer): a context error answers as
/// [`Error`] does (503 or 504), a failure of the service called answers 502
/// Bad Gateway with the body `bad gateway`.
///
/// The service's error stays on the server: its text names upstream
/// addresses, host names and operating-system errors, which are not the
/// client's to see (Go's `httputil.ReverseProxy` answers 502 the same way
/// and logs the error). With the feature `tracing` it is logged, a `warn`
/// event with target `ctx::http::client` and the error in field `error`.
///
/// ```
/// use axum_core::response::IntoResponse;
/// use ctx::http::ClientError;
/// assert_eq!(ClientError::Context(ctx::Error::DeadlineExceeded).into_response().status(), 504);
/// let refused = ClientError::Service(std::io::Error::other("connect 10.0.0.7:5432: refused").into());
/// let resp = refused.into_response();
/// assert_eq!(resp.status(), 502);
/// ```
#[cfg(feature = "tower")]
impl IntoResponse for super::ClientError {
    fn into_response(self) -> Response {
        match self {
            super::ClientError::Context(err) => err.into_response(),
            super::ClientError::Service(err) => {
                #[cfg(feature = "tracing")]
                tracing::warn!(
                    target: "ctx::http::client",
                    error = %err,
                    "a call failed; answered 502 Bad Gateway"
                );
                #[cfg(not(feature = "tracing"))]
                drop(err);
                (StatusCode::BAD_GATEWAY, "bad gateway").into_response()
            }
        }
    }
}
