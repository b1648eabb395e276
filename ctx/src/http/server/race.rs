//! The race of a handler against its request context, and what the layer
//! says when the context wins: the gRPC status or the error's text.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use http::header::{HeaderValue, CONTENT_TYPE};
use http::HeaderMap;

use crate::http::ending::RequestGuard;
use crate::{Context, DoneOwned, Error};

/// Whether `headers` are those of a gRPC request: a `content-type` of
/// `application/grpc`, alone or followed by `+` (`+proto`), `-` (`-web`)
/// or `;` (parameters), as gRPC servers recognize it.
pub(in crate::http) fn is_grpc(headers: &HeaderMap) -> bool {
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
pub(super) struct Race {
    /// Wakes the task when the context ends; polled only when the handler
    /// is pending.
    done: DoneOwned,
    /// The request is gRPC ([`is_grpc`]): the answer is a `grpc-status`.
    pub(super) grpc: bool,
}

impl Race {
    pub(super) fn new(ctx: &Context, grpc: bool) -> Race {
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
    pub(super) fn ended(&self, guard: Option<&RequestGuard>) -> Option<Error> {
        guard.and_then(|guard| guard.context().err())
    }

    /// After the handler returned `Pending`: the context's error if it
    /// ended meanwhile, else `None` with the task's waker registered.
    pub(super) fn ended_while_pending(&mut self, cx: &mut TaskContext<'_>) -> Option<Error> {
        match Pin::new(&mut self.done).poll(cx) {
            Poll::Ready(err) => Some(err),
            Poll::Pending => None,
        }
    }
}

/// The gRPC status for `err`, as `From<ctx::Error> for tonic::Status` maps
/// it: `(grpc-status, grpc-message)`.
pub(super) fn grpc_status(err: Error) -> (HeaderValue, HeaderValue) {
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
pub(in crate::http) fn grpc_status_headers(
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
pub(super) fn error_text(err: Error) -> &'static str {
    match err {
        Error::Canceled => "context canceled",
        Error::DeadlineExceeded => "context deadline exceeded",
    }
}
/// gRPC's status code header (a response header or trailer).
pub(super) const GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");

/// gRPC's status message header.
pub(super) const GRPC_MESSAGE: http::HeaderName = http::HeaderName::from_static("grpc-message");

#[cfg(test)]
mod tests {
    use super::*;

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
}
