//! Request contexts across the network: every HTTP request gets its own
//! [`Context`], and a caller's deadline travels with its calls.
//!
//! Go's `net/http` gives each request a context (`r.Context()`) that is
//! canceled when the client goes away and when `ServeHTTP` returns; gRPC
//! carries the caller's deadline to the server in the `grpc-timeout` header.
//! This module brings both to the Rust engines services already use: any
//! tower stack over the [`http`] types (hyper, axum, tonic, hyper-util's
//! client).
//!
//! # Servers
//!
//! [`ContextLayer`] (feature `tower`; its service, response future and body
//! in [`server`]) wraps a service. For each request it derives a context
//! from the server's root, so canceling the root (as `#[ctx::main]` does on
//! Ctrl-C) cancels every request in flight:
//!
//! ```text
//! root ─ with_value(RequestId) ─ with_deadline(grpc-timeout, capped) ─▶ request.extensions()
//! ```
//!
//! The request context ends, whichever comes first:
//!
//! - when its deadline passes: the incoming `grpc-timeout`, or the layer's
//!   [default](ContextLayer::default_timeout), never later than its
//!   [maximum](ContextLayer::max_timeout);
//! - when the server's root is canceled (shutdown);
//! - when the response has been written in full: Go's "when `ServeHTTP`
//!   returns". A plain cancel ([`Error::Canceled`](crate::Error::Canceled));
//! - when the response future or body is dropped before the response was
//!   written in full: hyper does that when the client disconnects (HTTP/1)
//!   or resets the stream (HTTP/2), and a timeout layer above does it when
//!   it gives up. The cause is then [`Abandoned`];
//! - when the handler panics (its `call`, its future or its body): the
//!   cause is [`HandlerPanicked`], and the panic goes on.
//!
//! A response counts as written in full once its body has ended, has
//! yielded its trailers (the last frame of a body; for binary gRPC-Web, its
//! in-body trailer frame), says it is over
//! (`is_end_stream`) or has yielded exactly its known length (exact size
//! hint, else `content-length`), and at once when no body goes on the
//! wire: the answer to a `HEAD` request, a 1xx status (a 101 upgrade among
//! them), 204, 304, a 2xx answer to `CONNECT`. hyper and axum drop such a
//! body without polling it to its end, so its end alone cannot tell.
//!
//! Handlers find the context in the request's extensions:
//! [`req.context()`](RequestExt::context), or as an axum extractor (feature
//! `axum`): `async fn handler(ctx: ctx::Context)`.
//!
//! Hyper notices an HTTP/1 client that went away only while it is not
//! waiting for the handler to read the request body: a `GET`, or a body the
//! handler has read to the end. A handler that never reads a large upload
//! learns of the disconnect when it next writes.
//!
//! The layer enforces the request context (see [the
//! race](ContextLayer#the-race)): when the context ends before the handler
//! has answered, it drops the handler's future and answers itself, 504 or
//! 503 (for gRPC, `grpc-status` 4 or 1), with the request id; a body still
//! streaming then is cut. [`ContextLayer::cooperative`] turns that off.
//!
//! Hyper drops the handler's future on disconnect, and the layer drops it
//! when the context ends, so code after an `.await` in the handler does not
//! run then: work that must notice the cancellation (log it, roll back)
//! runs in a task holding a clone of the context, which sees `done()`.
//! Work that must finish even if the client goes away belongs behind a
//! [`DetachLayer`] (feature `tower`; its future in [`detach`]): the
//! handler runs to completion in its own task, under a context that keeps
//! the request's deadline and values and that only the server's root
//! cancels.
//!
//! # Clients
//!
//! [`ClientLayer`] (feature `tower`; its service, response future and body
//! in [`client`]) wraps an outgoing service (hyper-util's client, a tonic
//! channel). A request that carries a context
//! ([`with_context`](RequestExt::with_context)) is sent with the time left as
//! `grpc-timeout` and the request id as `x-request-id`, and is aborted, its
//! future and body dropped, as soon as the context is done. A context that
//! is done before the call, including one whose deadline has passed, fails
//! the call locally with [`ClientError::Context`]: nothing goes over the wire.
//!
//! # Values on the wire
//!
//! The deadline and the request id travel by themselves. Any other request
//! value travels when its type implements [`Propagate`] (a header, an
//! encoding, a validating decoding) and both sides register it: the
//! caller's client layer with [`ClientLayer::propagate`] (or
//! `ctx::grpc::ClientLayer::propagate`, or a `ctx::grpc::Interceptor`),
//! the next service's server layer with [`ContextLayer::propagate`]. The
//! nearest value in the caller's context goes out; the server decodes it
//! into the request context, where `ctx.value::<T>()` finds it, in that
//! service's handlers and in every call they make under it:
//!
//! ```text
//! A: ctx.with_value(Tenant(7)) ─ ClientLayer ─ x-tenant: 7 ─▶ B: ContextLayer ─ ctx.value::<Tenant>()
//! ```
//!
//! Built in, each opt-in per layer (a server facing the internet registers
//! only what it trusts its clients with): [`TraceContext`] (W3C
//! `traceparent` and `tracestate`, passed on unchanged: ctx carries trace
//! context, it is not a tracer) and [`Baggage`] (W3C `baggage`). A header
//! the outgoing request already has, set by the caller or by an
//! OpenTelemetry propagator, wins. Everything decoded from a client is
//! checked and bounded: what does not pass is dropped as if absent.
//!
//! # How requests end
//!
//! [`ContextLayer::stats`] counts the layer's request contexts by how they
//! ended ([`Stats`]: completed, canceled, deadline exceeded, abandoned,
//! handler panicked). With the `tracing` feature, each end is also one
//! event, `request context ended` (target `ctx::http::server`), in the
//! request's span, with the fields
//! `end` (the same names), `cause` (the context's cause, quoted),
//! `elapsed_us` (how long the request ran) and `deadline_left_us` (the
//! time its deadline had left, absent without a deadline): `debug` for a
//! completed request, `info` for one that ended early, `warn` for a panic.
//!
//! # Headers
//!
//! - `grpc-timeout`: `1*8DIGIT unit`, unit one of `H M S m u n` (hours to
//!   nanoseconds), as gRPC defines it; [`decode_timeout`] and
//!   [`encode_timeout`]. A malformed value is ignored, as if absent.
//! - `x-request-id`: 1 to 128 characters among `A-Z a-z 0-9 . _ : -`;
//!   anything else is ignored and a fresh id generated ([`RequestId`]).
//!   The server layer echoes the id in the response.
//! - Values a layer was asked to carry ([`Propagate`]): the built-in W3C
//!   `traceparent` and `tracestate` ([`TraceContext`]) and `baggage`
//!   ([`Baggage`]), or a header of your own. Each is checked and bounded
//!   by its decoding, and dropped, as if absent, when it does not pass.
//!
//! Go: `http.Request.Context`, `http.Request.WithContext`, and gRPC's
//! deadline propagation.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue};

use crate::Context;

/// A boxed error, as tower, hyper, axum and tonic take them: a service's
/// error (`ClientLayer`), a response body's (`ContextLayer`).
#[cfg(feature = "tower")]
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[cfg(feature = "axum")]
mod axum;
mod baggage;
#[cfg(feature = "tower")]
pub mod client;
#[cfg(feature = "tower")]
pub mod detach;
#[cfg(feature = "tower")]
mod ending;
pub(crate) mod propagate;
#[cfg(feature = "tower")]
pub mod server;
mod trace;

#[cfg(feature = "axum")]
pub use self::axum::MissingContext;
// The layers, the services they make and the errors are the front door,
// named here; the futures and bodies, whose names repeat in both roles
// (`ResponseFuture`, `ResponseBody`), only in their role's module.
#[cfg(feature = "tower")]
#[doc(inline)]
pub use client::{ClientError, ClientLayer, ClientService};
#[cfg(feature = "tower")]
#[doc(inline)]
pub use detach::{DetachLayer, DetachService};
#[cfg(feature = "tower")]
#[doc(inline)]
pub use server::{Abandoned, ContextLayer, ContextService, HandlerPanicked};

pub use baggage::{Baggage, BAGGAGE};
#[cfg(feature = "tower")]
pub use ending::Stats;
pub use propagate::Propagate;
pub use trace::{TraceContext, TRACEPARENT, TRACESTATE};

/// Renamed to [`server::ResponseFuture`]: the server's response future.
#[cfg(feature = "tower")]
#[deprecated(
    since = "0.2.0",
    note = "renamed to `ctx::http::server::ResponseFuture`"
)]
pub type ResponseFuture<F> = server::ResponseFuture<F>;

/// Renamed to [`server::ResponseBody`]: the server's response body.
#[cfg(feature = "tower")]
#[deprecated(since = "0.2.0", note = "renamed to `ctx::http::server::ResponseBody`")]
pub type ContextBody<B> = server::ResponseBody<B>;

/// Renamed to [`client::ResponseFuture`]: the client's response future.
#[cfg(feature = "tower")]
#[deprecated(
    since = "0.2.0",
    note = "renamed to `ctx::http::client::ResponseFuture`"
)]
pub type ClientFuture<F> = client::ResponseFuture<F>;

/// Renamed to [`client::ResponseBody`]: the client's response body.
#[cfg(feature = "tower")]
#[deprecated(since = "0.2.0", note = "renamed to `ctx::http::client::ResponseBody`")]
pub type ClientBody<B> = client::ResponseBody<B>;

/// `grpc-timeout`: how long the caller will wait, in gRPC's format.
///
/// ```
/// assert_eq!(ctx::http::GRPC_TIMEOUT.as_str(), "grpc-timeout");
/// ```
pub const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// `x-request-id`: the id that ties together the logs of one request.
///
/// ```
/// assert_eq!(ctx::http::X_REQUEST_ID.as_str(), "x-request-id");
/// ```
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The largest value gRPC allows in `grpc-timeout`: eight digits.
const MAX_TIMEOUT_VALUE: u64 = 99_999_999;

/// Parses a `grpc-timeout` value: `None` when it is malformed.
///
/// The format is one to eight ASCII digits and a unit: `H` hours, `M`
/// minutes, `S` seconds, `m` milliseconds, `u` microseconds, `n`
/// nanoseconds. Nothing else is accepted: no sign, no space, no empty value.
///
/// ```
/// use std::time::Duration;
/// use ctx::http::decode_timeout;
/// use http::HeaderValue;
///
/// assert_eq!(decode_timeout(&HeaderValue::from_static("250m")), Some(Duration::from_millis(250)));
/// assert_eq!(decode_timeout(&HeaderValue::from_static("3S")), Some(Duration::from_secs(3)));
/// assert_eq!(decode_timeout(&HeaderValue::from_static("123456789n")), None); // nine digits
/// assert_eq!(decode_timeout(&HeaderValue::from_static("-1S")), None);
/// assert_eq!(decode_timeout(&HeaderValue::from_static("1 S")), None);
/// ```
///
/// Go: grpc-go's `decodeTimeout`.
pub fn decode_timeout(value: &HeaderValue) -> Option<Duration> {
    let (&unit, digits) = value.as_bytes().split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits
        .iter()
        .fold(0u64, |n, digit| n * 10 + u64::from(digit - b'0'));
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Formats `timeout` as a `grpc-timeout` value, in the finest unit that fits
/// in eight digits, rounded up (so a nonzero time never becomes `0`).
///
/// Times beyond what the format can say (over 11,000 years) are sent as the
/// largest value, `99999999H`.
///
/// ```
/// use std::time::Duration;
/// use ctx::http::{decode_timeout, encode_timeout};
///
/// assert_eq!(encode_timeout(Duration::from_millis(50)), "50000000n");
/// assert_eq!(encode_timeout(Duration::from_millis(100)), "100000u"); // 9 digits of ns
/// assert_eq!(encode_timeout(Duration::from_millis(250)), "250000u");
/// assert_eq!(encode_timeout(Duration::from_secs(3600)), "3600000m");
/// assert_eq!(encode_timeout(Duration::ZERO), "0n");
/// let sent = encode_timeout(Duration::from_nanos(1_234_567_891));
/// assert_eq!(decode_timeout(&sent), Some(Duration::from_micros(1_234_568))); // rounded up
/// ```
///
/// Go: grpc-go's `encodeTimeout`.
pub fn encode_timeout(timeout: Duration) -> HeaderValue {
    const UNITS: [(u128, u8); 6] = [
        (1, b'n'),
        (1_000, b'u'),
        (1_000_000, b'm'),
        (1_000_000_000, b'S'),
        (60_000_000_000, b'M'),
        (3_600_000_000_000, b'H'),
    ];
    let nanos = timeout.as_nanos();
    let (value, unit) = UNITS
        .iter()
        .map(|&(size, unit)| (nanos.div_ceil(size), unit))
        .find(|&(value, _)| value <= u128::from(MAX_TIMEOUT_VALUE))
        .unwrap_or((u128::from(MAX_TIMEOUT_VALUE), b'H'));
    let mut buf = [0u8; 9];
    let len = write_digits(&mut buf, value as u64);
    buf[len] = unit;
    HeaderValue::from_bytes(&buf[..=len])
        .expect("ctx: internal error: digits and a unit letter are a valid header value")
}

/// Writes `n` (at most eight digits) in decimal at the start of `buf`;
/// returns how many digits.
fn write_digits(buf: &mut [u8; 9], mut n: u64) -> usize {
    let mut reversed = [0u8; 8];
    let mut len = 0;
    loop {
        reversed[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for (i, digit) in reversed[..len].iter().rev().enumerate() {
        buf[i] = *digit;
    }
    len
}

/// The id of one request, shared by every log line and every call it makes:
/// a value of the request's [`Context`], read with `ctx.value::<RequestId>()`.
///
/// The server layer takes it from the `x-request-id` header when that holds
/// 1 to 128 characters among `A-Z a-z 0-9 . _ : -`, and otherwise generates
/// one; the client layer sends it on, so the services a request passes
/// through log the same id. The narrow set keeps a client from writing into
/// a log line: an id cannot hold a space, a quote, `=` or a brace, so it
/// cannot fake another field (UUIDs, hex ids, and ids like
/// `web-1:req.42` all fit).
///
/// # Examples
///
/// ```
/// use ctx::http::RequestId;
/// use http::HeaderValue;
///
/// let id = RequestId::from_header(&HeaderValue::from_static("req-42")).unwrap();
/// let ctx = ctx::Context::background().with_value(id);
/// assert_eq!(ctx.value::<RequestId>().map(RequestId::as_str), Some("req-42"));
///
/// assert!(RequestId::from_header(&HeaderValue::from_static("has space")).is_none());
/// let fresh = RequestId::generate();
/// assert_eq!(fresh.as_str().len(), 32);
/// assert_ne!(fresh, RequestId::generate());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RequestId(
    /// 1 to 128 bytes of `A-Z a-z 0-9 . _ : -`: only
    /// [`RequestId::from_header`], which checks, and
    /// [`RequestId::generate`] make one.
    HeaderValue,
);

impl RequestId {
    /// The longest id accepted from a client.
    const MAX_LEN: usize = 128;

    /// The id in `value`, or `None` if it is empty, longer than 128 bytes or
    /// holds anything but ASCII letters, digits, `.`, `_`, `:` and `-`.
    ///
    /// ```
    /// use ctx::http::RequestId;
    /// use http::HeaderValue;
    /// assert!(RequestId::from_header(&HeaderValue::from_static("a1b2")).is_some());
    /// assert!(RequestId::from_header(&HeaderValue::from_static("0f8fad5b-d9cb-469f-a165-70867728950e")).is_some());
    /// assert!(RequestId::from_header(&HeaderValue::from_static("")).is_none());
    /// assert!(RequestId::from_header(&HeaderValue::from_static(r#"x" user="admin"#)).is_none());
    /// ```
    pub fn from_header(value: &HeaderValue) -> Option<RequestId> {
        let bytes = value.as_bytes();
        let safe = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-');
        if bytes.is_empty() || bytes.len() > Self::MAX_LEN || !bytes.iter().all(safe) {
            return None;
        }
        // Copied: a value sliced from the request's header buffer would
        // hold all of that buffer for as long as the id lives.
        HeaderValue::from_bytes(bytes).ok().map(RequestId)
    }

    /// A fresh id: 32 lowercase hex digits, unique within the process (a
    /// counter) and, with high probability, across processes (a random
    /// prefix chosen at start).
    ///
    /// ```
    /// let id = ctx::http::RequestId::generate();
    /// assert!(id.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
    /// ```
    pub fn generate() -> RequestId {
        static PREFIX: OnceLock<u64> = OnceLock::new();
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let prefix = *PREFIX.get_or_init(random_u64);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut hex = [0u8; 32];
        for (i, byte) in hex.iter_mut().enumerate() {
            let word = if i < 16 { prefix } else { n };
            let nibble = (word >> (60 - 4 * (i % 16))) & 0xf;
            *byte = b"0123456789abcdef"[nibble as usize];
        }
        RequestId(
            HeaderValue::from_bytes(&hex)
                .expect("ctx: internal error: hex digits are a valid header value"),
        )
    }

    /// The id as text.
    ///
    /// ```
    /// let id = ctx::http::RequestId::from_header(&http::HeaderValue::from_static("abc")).unwrap();
    /// assert_eq!(id.as_str(), "abc");
    /// ```
    pub fn as_str(&self) -> &str {
        // Checked (or generated) as ASCII: always text.
        self.0.to_str().unwrap_or_default()
    }

    /// The id as a header value, ready to send.
    ///
    /// ```
    /// let id = ctx::http::RequestId::generate();
    /// assert_eq!(id.header_value().as_bytes(), id.as_str().as_bytes());
    /// ```
    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }
}

/// Random bits without a dependency: std's hasher keys are random per
/// process; mixing in the time and pid covers platforms where they are not.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    if let Ok(since_epoch) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(since_epoch.as_nanos());
    }
    hasher.finish()
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestId({:?})", self.as_str())
    }
}

/// The context of an [`http::Request`]: Go's `r.Context()` and
/// `r.WithContext(ctx)`.
///
/// The context lives in the request's extensions, where
/// [`ContextLayer`] puts it on a server and where [`ClientLayer`] looks for
/// it on a client.
///
/// # Examples
///
/// ```
/// use ctx::http::RequestExt;
///
/// let (ctx, _cancel) = ctx::Context::background().with_cancel();
/// let req = http::Request::new(()).with_context(&ctx);
/// _cancel.cancel();
/// assert!(req.context().is_done()); // the same context
///
/// // A request nobody gave a context reports the background one, as in Go.
/// assert!(!http::Request::new(()).context().is_done());
/// ```
pub trait RequestExt: Sized {
    /// The request's context; [`Context::background`] if it has none.
    ///
    /// Go: `http.Request.Context`.
    fn context(&self) -> Context;

    /// The request, carrying `ctx` (replacing any context it had).
    ///
    /// Go: `http.Request.WithContext`.
    fn with_context(self, ctx: &Context) -> Self;
}

impl<B> RequestExt for http::Request<B> {
    fn context(&self) -> Context {
        self.extensions()
            .get::<Context>()
            .cloned()
            .unwrap_or_default()
    }

    fn with_context(mut self, ctx: &Context) -> Self {
        self.extensions_mut().insert(ctx.clone());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(s: &str) -> Option<Duration> {
        decode_timeout(&HeaderValue::from_str(s).unwrap())
    }

    #[test]
    fn timeouts_round_trip_in_every_unit() {
        for (text, want) in [
            ("1H", Duration::from_secs(3600)),
            ("2M", Duration::from_secs(120)),
            ("99999999S", Duration::from_secs(99_999_999)),
            ("0m", Duration::ZERO),
            ("7u", Duration::from_micros(7)),
            ("00000010n", Duration::from_nanos(10)),
        ] {
            assert_eq!(decode(text), Some(want), "{text}");
            assert_eq!(decode(encode_timeout(want).to_str().unwrap()), Some(want));
        }
    }

    #[test]
    fn malformed_timeouts_are_ignored() {
        for bad in ["", "S", "1", "1s", "1x", "+1S", "1.5S", "123456789S", "1SS"] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
        assert_eq!(
            decode_timeout(&HeaderValue::from_bytes(b"1\xffS").unwrap()),
            None
        );
    }

    #[test]
    fn huge_timeouts_saturate_at_the_largest_value() {
        assert_eq!(encode_timeout(Duration::MAX), "99999999H");
        assert_eq!(
            decode(encode_timeout(Duration::MAX).to_str().unwrap()),
            Some(Duration::from_secs(99_999_999 * 3600))
        );
    }

    #[test]
    fn encoding_never_shortens_a_timeout() {
        for nanos in [1, 999, 100_000_001, 1_234_567_890_123, 86_400_000_000_000] {
            let want = Duration::from_nanos(nanos);
            let got = decode(encode_timeout(want).to_str().unwrap()).unwrap();
            assert!(got >= want, "{want:?} became {got:?}");
        }
    }

    #[test]
    fn request_ids_reject_what_logs_cannot_show() {
        let long = "x".repeat(129);
        for bad in [
            "",
            "a b",
            "tab\there",
            long.as_str(),
            // Enough to fake a field in a plain-text log line.
            r#"x" user="admin"#,
            "a}b",
            "a=b",
            "a,b",
            "a/b",
            "a+b",
            "%0a",
        ] {
            assert!(
                RequestId::from_header(&HeaderValue::from_str(bad).unwrap()).is_none(),
                "{bad:?}"
            );
        }
        assert!(RequestId::from_header(&HeaderValue::from_bytes(b"caf\xe9").unwrap()).is_none());
        assert!(
            RequestId::from_header(&HeaderValue::from_str(&"x".repeat(128)).unwrap()).is_some()
        );
        for good in [
            "req-42",
            "web-1:req.42",
            "A_b.C:d-0",
            "0f8fad5b-d9cb-469f-a165-70867728950e",
        ] {
            let id = RequestId::from_header(&HeaderValue::from_static(good)).unwrap();
            assert_eq!(id.as_str(), good);
        }
    }
}
