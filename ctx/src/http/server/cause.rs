//! How the layer ends a request context itself: the causes [`Abandoned`]
//! (the request was dropped before its response was written in full) and
//! [`HandlerPanicked`], and the way out of a handler's panic.

use std::any::Any;
use std::fmt;
use std::panic::resume_unwind;

#[cfg(doc)]
use super::{ContextLayer, ResponseBody};
use crate::http::ending::RequestGuard;
use crate::CancelGuard;

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
    pub(in crate::http) fn from_payload(payload: &(dyn Any + Send)) -> HandlerPanicked {
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
pub(in crate::http) fn panicked(guard: Option<impl EndOnPanic>, payload: Box<dyn Any + Send>) -> ! {
    if let Some(guard) = guard {
        guard.end_on_panic(HandlerPanicked::from_payload(&*payload));
    }
    resume_unwind(payload)
}

/// A guard that [`panicked`] ends: a request context's, or a detached
/// context's.
pub(in crate::http) trait EndOnPanic {
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
