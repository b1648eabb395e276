//! The response body: [`ResponseBody`] holds the request context open
//! until the response has been written in full, and says how the request
//! ended (completed, or abandoned when dropped before that).

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use bytes::Buf;
use http::header::CONTENT_LENGTH;
use http::{HeaderMap, Method, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::cause::panicked;
use super::race::{grpc_status, grpc_web_trailers, Protocol, Race, GRPC_MESSAGE, GRPC_STATUS};
#[cfg(doc)]
use super::{Abandoned, ContextLayer, HandlerPanicked, ResponseFuture};
use crate::http::ending::RequestGuard;
use crate::http::BoxError;
use crate::Error;

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
    /// yielded its trailers (a body's last frame; for binary gRPC-Web, its
    /// in-body trailer frame, read across data frames), once it has yielded
    /// exactly its known length (its exact size hint, else the
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
    /// `grpc-message`, for gRPC-Web with the same status in a gRPC-Web
    /// trailer frame, its last data (base64 for `grpc-web-text`), for
    /// plain HTTP with the context's [`Error`] as the body's error, so
    /// that the server aborts the response and the client sees it fail
    /// rather than end (see [the race](ContextLayer#the-race)), unless the
    /// layer is [`cooperative`](ContextLayer::cooperative). The same body
    /// carries the layer's own answer when the context ended before the
    /// head.
    ///
    /// Data, trailers, size hint and end of stream are otherwise the inner
    /// body's; its errors are passed on boxed (`Box<dyn std::error::Error +
    /// Send + Sync>`, what hyper, axum and tonic take), and a cut's error
    /// downcasts to [`Error`]. Its data type must convert from `&'static
    /// [u8]` (`Bytes` does), as for the layer's service: the layer's own
    /// frames are static bytes.
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
        pub(super) kind: Kind<B>,
        // The request context's guard, from the response future; taken
        // (a plain cancel) at the end of the body or at its first error.
        // Still here on drop means the body was cut off, unless the
        // response counts as written in full (`owed`, `is_end_stream`).
        // `None` in the layer's own answer: the context was over already.
        pub(super) guard: Option<RequestGuard>,
        // The bytes of a known length not yet yielded: set from the head
        // by `owed_on_the_wire` (`Some(0)` when no body goes on the wire),
        // counted down by each data frame; `None` when the length is not
        // known, or the body yielded more than it announced (the server
        // then fails the response).
        pub(super) owed: Option<u64>,
        // The race against the request context, from the response future
        // (`None`: cooperative, or the body is over).
        pub(super) race: Option<Race>,
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
    pub(super) enum Kind<B>
    where
        B: Body,
    {
        // The handler's body.
        Handler {
            #[pin]
            inner: B,
        },
        // The layer's own frames: its answer's text (the race was lost
        // before the head), or what ends a body cut off by the context:
        // the gRPC status in trailers, the gRPC-Web trailer frame as
        // data, or for plain HTTP the context's error, which makes the
        // server abort the response. Each is taken by the poll that
        // yields it.
        Own {
            data: Option<B::Data>,
            trailers: Option<HeaderMap>,
            error: Option<Error>,
        },
    }
}

impl<B: Body> Kind<B> {
    fn is_end_stream(&self) -> bool {
        match self {
            Kind::Handler { inner } => inner.is_end_stream(),
            Kind::Own {
                data,
                trailers,
                error,
            } => data.is_none() && trailers.is_none() && error.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Kind::Handler { inner } => inner.size_hint(),
            // An error to come: nothing is known.
            Kind::Own { error: Some(_), .. } => SizeHint::default(),
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
pub(super) fn owed_on_the_wire<B: Body>(method: &Method, resp: &Response<B>) -> Option<u64> {
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

impl<B> Body for ResponseBody<B>
where
    B: Body,
    B::Data: From<&'static [u8]>,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, BoxError>>> {
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
            let over = match &frame {
                Some(Ok(frame)) if !frame.is_trailers() => frame.data_ref().is_some_and(|data| {
                    let len = u64::try_from(data.remaining()).unwrap_or(u64::MAX);
                    *this.owed = this.owed.and_then(|owed| owed.checked_sub(len));
                    // A gRPC-Web trailer frame is the end of the response,
                    // as HTTP trailers are.
                    this.race
                        .as_mut()
                        .is_some_and(|race| race.completed_by(data))
                }),
                // Trailers (the last frame of a body: hyper sends them, or
                // drops them on HTTP/1, and polls no further), the end, or
                // an error that ends the body. A body that ends in trailers
                // may never say `is_end_stream`.
                _ => true,
            };
            if over {
                *this.race = None;
                drop(this.guard.take());
            }
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
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
/// drops that body, and ends with the gRPC status for a gRPC request (in
/// trailers), with a gRPC-Web trailer frame for a gRPC-Web one (in the
/// data: HTTP/1.1 carries no trailers to a browser, and a gRPC-Web client
/// reads its status from the body), with the context's error otherwise (a
/// clean end would pass a cut-off chunked or HTTP/2 body off as complete).
fn cut<B>(this: &mut ResponseBodyProj<'_, B>, err: Error)
where
    B: Body,
    B::Data: From<&'static [u8]>,
{
    let protocol = Race::take_protocol(this.race);
    let own = match protocol {
        Protocol::Http => Kind::Own {
            data: None,
            trailers: None,
            error: Some(err),
        },
        Protocol::Grpc => {
            let (code, message) = grpc_status(err);
            let mut trailers = HeaderMap::with_capacity(2);
            trailers.insert(GRPC_STATUS, code);
            trailers.insert(GRPC_MESSAGE, message);
            Kind::Own {
                data: None,
                trailers: Some(trailers),
                error: None,
            }
        }
        Protocol::GrpcWeb { text, .. } => Kind::Own {
            data: Some(B::Data::from(grpc_web_trailers(err, text))),
            trailers: None,
            error: None,
        },
    };
    this.kind.set(own);
    // The context is over already, with its own cause: the cut is no
    // abandonment.
    drop(this.guard.take());
}

/// The next of the layer's own frames: its data, then its trailers or its
/// error, then the end.
fn own_frame<B: Body>(kind: Pin<&mut Kind<B>>) -> Option<Result<Frame<B::Data>, BoxError>> {
    match kind.project() {
        KindProj::Own {
            data,
            trailers,
            error,
        } => data
            .take()
            .map(Frame::data)
            .or_else(|| trailers.take().map(Frame::trailers))
            .map(Ok)
            .or_else(|| error.take().map(|err| Err(err.into()))),
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
