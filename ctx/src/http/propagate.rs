//! Request values on the wire: a type that implements [`Propagate`] and is
//! registered on the layers travels from `with_value` in one service to
//! `value::<T>()` in the next.
//!
//! The server layer decodes it from the request's headers into the request
//! context ([`ContextLayer::propagate`](super::ContextLayer::propagate)); the
//! client layers and the gRPC interceptor encode the nearest value of the
//! caller's context into the outgoing headers
//! ([`ClientLayer::propagate`](super::ClientLayer::propagate)). Nothing
//! travels unless both sides ask for it: a server facing the internet
//! decides which values it trusts from its clients.

#[cfg(feature = "tower")]
use std::any::{type_name, TypeId};
#[cfg(feature = "tower")]
use std::fmt;
#[cfg(feature = "tower")]
use std::sync::Arc;

use http::header::{Entry, HeaderMap, HeaderName, HeaderValue};

#[cfg(feature = "tower")]
use crate::Context;

/// The longest value [`Propagate::from_headers`] passes to
/// [`Propagate::decode`]: a bound that holds whatever `decode` checks.
/// W3C Baggage, the largest of the built-in values, needs 8192 bytes.
const MAX_VALUE_LEN: usize = 8192;

/// A request value that travels in one header, from a caller's context to
/// the context of the request it makes.
///
/// Implement it for a newtype, register the type on the server's
/// [`ContextLayer`](super::ContextLayer) and on the caller's
/// [`ClientLayer`](super::ClientLayer) (or `ctx::grpc::ClientLayer`, or
/// `ctx::grpc::Interceptor`), and a value put in a context with
/// `with_value` on one service is `value::<T>()` of the request context on
/// the next:
///
/// - the client side sends [`encode`](Propagate::encode) of the nearest `T`
///   of the call's context as [`HEADER`](Propagate::HEADER), unless the
///   request already has that header: a header the caller (or an
///   OpenTelemetry propagator) set wins;
/// - the server side reads the header with
///   [`decode`](Propagate::decode), and puts the value in the request
///   context when it decodes, and nothing when it does not.
///
/// `decode` reads what any client sent: it must check everything (length,
/// characters, count) and return `None` for anything malformed or too
/// large. A value that is `None` is dropped as if the header were absent,
/// and the request goes on. So that nothing a client sends can grow
/// memory, a value longer than 8192 bytes, or sent in more than one
/// header, never reaches `decode`.
///
/// # Examples
///
/// A tenant id, sent by service A and read by service B:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use ctx::http::{ClientLayer, ContextLayer, Propagate, RequestExt};
/// use http::{HeaderName, HeaderValue};
/// use tower::{Layer, ServiceExt};
///
/// #[derive(Debug, PartialEq)]
/// struct Tenant(u32);
///
/// impl Propagate for Tenant {
///     const HEADER: HeaderName = HeaderName::from_static("x-tenant");
///
///     fn encode(&self) -> Option<HeaderValue> {
///         Some(HeaderValue::from(self.0))
///     }
///
///     fn decode(value: &HeaderValue) -> Option<Tenant> {
///         let digits = value.as_bytes();
///         if digits.is_empty() || digits.len() > 9 || !digits.iter().all(u8::is_ascii_digit) {
///             return None; // malformed or too long: dropped
///         }
///         std::str::from_utf8(digits).ok()?.parse().ok().map(Tenant)
///     }
/// }
///
/// // Service B: its request context carries the tenant A sent.
/// let b = ContextLayer::new(&ctx::Context::background())
///     .propagate::<Tenant>()
///     .layer(tower::service_fn(|req: http::Request<()>| async move {
///         let tenant = req.context().value::<Tenant>().map_or(0, |t| t.0);
///         let mut resp = http::Response::new(String::new());
///         resp.headers_mut().insert("x-seen", HeaderValue::from(tenant));
///         Ok::<_, std::convert::Infallible>(resp)
///     }));
/// // A's client, calling B (in-process here; hyper's client in real code).
/// let to_b = ClientLayer::new().propagate::<Tenant>().layer(b);
///
/// let ctx = ctx::Context::background().with_value(Tenant(42));
/// let resp = to_b.oneshot(http::Request::new(()).with_context(&ctx)).await.unwrap();
/// assert_eq!(resp.headers()["x-seen"], "42");
///
/// assert_eq!(Tenant::decode(&HeaderValue::from_static("12x")), None);
/// # }
/// ```
///
/// Go: none; grpc-go's `metadata` carries strings, and OpenTelemetry's
/// `TextMapPropagator` is the nearest counterpart.
pub trait Propagate: Sized + Send + Sync + 'static {
    /// The header the value travels in (lowercase, as `HeaderName` keeps
    /// it, and as HTTP/2 and gRPC metadata need).
    const HEADER: HeaderName;

    /// The value as a header value, or `None` to send nothing.
    ///
    /// `HeaderValue` cannot hold a line break, so no encoding can inject
    /// another header.
    fn encode(&self) -> Option<HeaderValue>;

    /// The value in `value` as a client sent it, or `None` if it is
    /// malformed or too large.
    fn decode(value: &HeaderValue) -> Option<Self>;

    /// The value in `headers`, as the server layer reads it: `None` if
    /// [`HEADER`](Propagate::HEADER) is absent, sent more than once (which
    /// one would be meant?), longer than 8192 bytes, or does not
    /// [`decode`](Propagate::decode).
    ///
    /// A value spread over several headers (as [`TraceContext`](super::TraceContext)
    /// is) overrides this and [`to_headers`](Propagate::to_headers), and
    /// keeps the same bounds.
    ///
    /// ```
    /// use ctx::http::{Propagate, TraceContext};
    /// let mut headers = http::HeaderMap::new();
    /// headers.insert("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap());
    /// let trace = TraceContext::from_headers(&headers).unwrap();
    /// assert_eq!(trace.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    /// ```
    fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let value = single(headers, &Self::HEADER)?;
        if value.len() > MAX_VALUE_LEN {
            return None;
        }
        Self::decode(value)
    }

    /// Writes the value into `headers`, as the client side sends it: as
    /// [`HEADER`](Propagate::HEADER), unless `headers` already has that
    /// header (the caller's own wins) or [`encode`](Propagate::encode)
    /// gives `None`.
    ///
    /// ```
    /// use ctx::http::{Propagate, TraceContext};
    /// let trace = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", None).unwrap();
    /// let mut headers = http::HeaderMap::new();
    /// trace.to_headers(&mut headers);
    /// assert_eq!(headers["traceparent"], "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    /// ```
    fn to_headers(&self, headers: &mut HeaderMap) {
        if let Entry::Vacant(slot) = headers.entry(Self::HEADER) {
            if let Some(value) = self.encode() {
                slot.insert(value);
            }
        }
    }
}

/// The one value of `name` in `headers`: `None` if it is absent or sent
/// more than once.
pub(super) fn single<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Option<&'h HeaderValue> {
    let mut values = headers.get_all(name).iter();
    let value = values.next()?;
    values.next().is_none().then_some(value)
}

/// The value types a layer propagates, in the order they were registered;
/// cheap to clone (services are cloned per request), and no allocation
/// when there are none.
#[cfg(feature = "tower")]
#[derive(Clone, Default)]
pub(crate) struct Propagators(Option<Arc<[Propagator]>>);

/// One registered type: its decoding into a context and its encoding from
/// one, monomorphized by [`Propagators::with`].
#[cfg(feature = "tower")]
#[derive(Clone, Copy)]
struct Propagator {
    /// Keeps a type from being registered twice.
    type_id: TypeId,
    /// For `Debug`.
    type_name: &'static str,
    decode: fn(&HeaderMap, Context) -> Context,
    encode: fn(&Context, &mut HeaderMap),
}

#[cfg(feature = "tower")]
impl Propagators {
    /// These and `T`, unless `T` is here already.
    pub(crate) fn with<T: Propagate>(&self) -> Propagators {
        let all = self.0.as_deref().unwrap_or_default();
        if all.iter().any(|p| p.type_id == TypeId::of::<T>()) {
            return self.clone();
        }
        let added = Propagator {
            type_id: TypeId::of::<T>(),
            type_name: type_name::<T>(),
            decode: decode_into::<T>,
            encode: encode_from::<T>,
        };
        Propagators(Some(all.iter().copied().chain([added]).collect()))
    }

    /// `ctx` with a value of each registered type that `headers` holds.
    pub(crate) fn decode(&self, headers: &HeaderMap, mut ctx: Context) -> Context {
        for propagator in self.0.iter().flat_map(|all| all.iter()) {
            ctx = (propagator.decode)(headers, ctx);
        }
        ctx
    }

    /// Writes the nearest value of each registered type in `ctx` into
    /// `headers` (each keeps a header already there).
    pub(crate) fn encode(&self, ctx: &Context, headers: &mut HeaderMap) {
        for propagator in self.0.iter().flat_map(|all| all.iter()) {
            (propagator.encode)(ctx, headers);
        }
    }
}

#[cfg(feature = "tower")]
fn decode_into<T: Propagate>(headers: &HeaderMap, ctx: Context) -> Context {
    match T::from_headers(headers) {
        Some(value) => ctx.with_value(value),
        None => ctx,
    }
}

#[cfg(feature = "tower")]
fn encode_from<T: Propagate>(ctx: &Context, headers: &mut HeaderMap) {
    if let Some(value) = ctx.value::<T>() {
        value.to_headers(headers);
    }
}

#[cfg(feature = "tower")]
impl fmt::Debug for Propagators {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                self.0
                    .iter()
                    .flat_map(|all| all.iter().map(|p| p.type_name)),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_sent_twice_is_no_value() {
        let name = HeaderName::from_static("x-one");
        let mut headers = HeaderMap::new();
        assert!(single(&headers, &name).is_none());
        headers.append(&name, HeaderValue::from_static("a"));
        assert_eq!(single(&headers, &name).unwrap(), "a");
        headers.append(&name, HeaderValue::from_static("b"));
        assert!(single(&headers, &name).is_none());
    }
}
