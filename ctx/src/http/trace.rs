//! W3C Trace Context (`traceparent`, `tracestate`) as a request value:
//! [`TraceContext`].

use std::fmt;

use http::header::{HeaderMap, HeaderName, HeaderValue};

use super::propagate::{single, Propagate};

/// `traceparent`: the W3C Trace Context header naming the caller's trace
/// and span.
///
/// ```
/// assert_eq!(ctx::http::TRACEPARENT.as_str(), "traceparent");
/// ```
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// `tracestate`: the W3C Trace Context header carrying vendors' entries
/// beside `traceparent`.
///
/// ```
/// assert_eq!(ctx::http::TRACESTATE.as_str(), "tracestate");
/// ```
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// The length of a version `00` `traceparent`.
const TRACEPARENT_LEN: usize = 55;

/// The longest `traceparent` of a later version read (and sent on as
/// version `00`): the specification asks only that "prohibitively large"
/// headers be refused.
const MAX_TRACEPARENT_LEN: usize = 512;

/// The longest `tracestate` kept, all its headers combined: the
/// specification's 512 characters.
const MAX_TRACESTATE_LEN: usize = 512;

/// The most `tracestate` entries kept: the specification's 32.
const MAX_TRACESTATE_MEMBERS: usize = 32;

/// The longest simple key of a `tracestate` entry; and the longest
/// tenant id and system id of a multi-tenant key (`tenant@system`, at most
/// 256 characters too).
const MAX_SIMPLE_KEY: usize = 256;
const MAX_TENANT_ID: usize = 241;
const MAX_SYSTEM_ID: usize = 14;

/// The longest value of a `tracestate` entry.
const MAX_TRACESTATE_VALUE: usize = 256;

/// The caller's W3C Trace Context: its `traceparent` and `tracestate`,
/// carried from an incoming request to the calls it makes, unchanged.
///
/// ctx carries trace context; it is not a tracer. It never mints a span
/// id: a service passes on the `traceparent` it received, so the next
/// service sees the same parent. A tracer (OpenTelemetry) that starts a
/// span for the request sets its own `traceparent` on the outgoing
/// request, and that header wins. What ctx adds is that a value read by
/// the server layer reaches the calls made under the request context,
/// across tasks and services, with no tracer at all.
///
/// Opt in per layer, on servers and clients:
/// `ContextLayer::new(&root).propagate::<TraceContext>()`,
/// `ClientLayer::new().propagate::<TraceContext>()` (a server facing the
/// internet may not want its clients to choose its trace ids).
///
/// # What is accepted
///
/// As [W3C Trace Context Level 1](https://www.w3.org/TR/trace-context-1/)
/// (the Recommendation) defines it, everything else dropped as if absent:
///
/// - `traceparent`: exactly one header, `00-<trace-id>-<parent-id>-<flags>`
///   with a 32-digit trace id and a 16-digit parent id in lowercase hex,
///   neither all zeros, and two hex digits of flags: 55 characters. A
///   later version (`01` to `fe`; `ff` is invalid) is read as the
///   specification says (its first 55 characters in that form, then the
///   end or a `-`, here at most 512 characters, what follows the `-`
///   unread) and sent on as version `00`, dropping the fields this
///   version does not know.
/// - `tracestate`: read only with a valid `traceparent`, and dropped alone
///   when it is invalid (the `traceparent` is kept): at most 32 entries
///   `key=value` and 512 characters, all its headers combined with `,`;
///   each key once; values of 1 to 256 printable ASCII characters
///   (`0x20..=0x7E`) except `,` and `=`, not ending in a space. A key is
///   either simple or multi-tenant:
///   - a simple key: 1 to 256 characters among `a-z 0-9 _ - * /`, the
///     first a lowercase letter (`rojo`);
///   - a multi-tenant key `tenant-id@system-id`, with exactly one `@`: a
///     tenant id of 1 to 241 characters among `a-z 0-9 _ - * /`, the first
///     a lowercase letter or a digit, and a system id of 1 to 14 of them,
///     the first a lowercase letter (`1tenant@congo`).
///
///   (Level 2, still a draft, allows more keys, `1abc` or `a@b@c`: a
///   `tracestate` with one is dropped here.) Empty entries are allowed
///   and not counted; a `tracestate` of only those is none. Nothing is
///   truncated: one invalid entry, or one over the limits, drops the
///   whole `tracestate`.
///
/// # Examples
///
/// ```
/// use ctx::http::{Propagate, TraceContext};
///
/// let mut headers = http::HeaderMap::new();
/// headers.insert("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap());
/// headers.insert("tracestate", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE".parse().unwrap());
/// let trace = TraceContext::from_headers(&headers).unwrap();
/// assert_eq!(trace.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert_eq!(trace.parent_id(), "00f067aa0ba902b7");
/// assert!(trace.sampled());
///
/// // In a handler, with `.propagate::<TraceContext>()` on the server layer:
/// let ctx = ctx::Context::background().with_value(trace);
/// let trace = ctx.value::<TraceContext>().unwrap();
/// assert_eq!(trace.tracestate().unwrap(), "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
///
/// // A client cannot slip anything else through:
/// headers.insert("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01".parse().unwrap());
/// assert!(TraceContext::from_headers(&headers).is_none()); // parent id all zeros
/// ```
///
/// Go: OpenTelemetry's `propagation.TraceContext`, without the tracer.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TraceContext {
    /// A valid version `00` `traceparent`, 55 bytes of our own (copied,
    /// so it does not hold the request's header buffer).
    traceparent: HeaderValue,
    /// A valid, nonempty `tracestate` of at most 512 bytes.
    tracestate: Option<HeaderValue>,
}

impl TraceContext {
    /// A trace context from the text of its headers, as a tracer bridge or
    /// a test would make one: `None` if `traceparent` is invalid, or if
    /// `tracestate` is given and invalid (see [what is
    /// accepted](TraceContext#what-is-accepted)).
    ///
    /// ```
    /// use ctx::http::TraceContext;
    /// let trace = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", Some("rojo=1")).unwrap();
    /// assert!(!trace.sampled());
    /// assert!(TraceContext::parse("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-00", None).is_none()); // uppercase
    /// assert!(TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", Some("Rojo=1")).is_none());
    /// ```
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Option<TraceContext> {
        let traceparent = parse_traceparent(traceparent.as_bytes())?;
        let tracestate = match tracestate {
            None => None,
            Some(text) => {
                let members = tracestate_members(text.as_bytes())?;
                (members > 0)
                    .then(|| HeaderValue::from_str(text).ok())
                    .flatten()
            }
        };
        Some(TraceContext {
            traceparent,
            tracestate,
        })
    }

    /// The trace id: 32 lowercase hex digits, never all zeros.
    ///
    /// ```
    /// let trace = ctx::http::TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", None).unwrap();
    /// assert_eq!(trace.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    /// ```
    pub fn trace_id(&self) -> &str {
        &self.traceparent_str()[3..35]
    }

    /// The caller's span id (`parent-id`): 16 lowercase hex digits, never
    /// all zeros.
    ///
    /// ```
    /// let trace = ctx::http::TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", None).unwrap();
    /// assert_eq!(trace.parent_id(), "00f067aa0ba902b7");
    /// ```
    pub fn parent_id(&self) -> &str {
        &self.traceparent_str()[36..52]
    }

    /// The trace flags, a bit field (`0x01`: sampled).
    ///
    /// ```
    /// let trace = ctx::http::TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09", None).unwrap();
    /// assert_eq!(trace.flags(), 0x09);
    /// ```
    pub fn flags(&self) -> u8 {
        let bytes = self.traceparent.as_bytes();
        (hex_value(bytes[53]) << 4) | hex_value(bytes[54])
    }

    /// Whether the caller may have recorded the trace: the `sampled` flag.
    ///
    /// ```
    /// let trace = ctx::http::TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", None).unwrap();
    /// assert!(trace.sampled());
    /// ```
    pub fn sampled(&self) -> bool {
        self.flags() & 0x01 != 0
    }

    /// The `traceparent` header, as it is sent on.
    ///
    /// ```
    /// let text = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    /// let trace = ctx::http::TraceContext::parse(text, None).unwrap();
    /// assert_eq!(trace.traceparent(), text);
    /// ```
    pub fn traceparent(&self) -> &HeaderValue {
        &self.traceparent
    }

    /// The `tracestate` header, as it is sent on; `None` when the caller
    /// sent none, or an invalid one.
    ///
    /// ```
    /// let trace = ctx::http::TraceContext::parse(
    ///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ///     Some("congo=t61rcWkgMzE"),
    /// ).unwrap();
    /// assert_eq!(trace.tracestate().unwrap(), "congo=t61rcWkgMzE");
    /// ```
    pub fn tracestate(&self) -> Option<&HeaderValue> {
        self.tracestate.as_ref()
    }

    fn traceparent_str(&self) -> &str {
        // Checked as lowercase hex and dashes: always text.
        self.traceparent.to_str().unwrap_or_default()
    }
}

/// Sends `traceparent` and `tracestate`, and reads both back, by the rules
/// in [what is accepted](TraceContext#what-is-accepted).
impl Propagate for TraceContext {
    const HEADER: HeaderName = TRACEPARENT;

    /// The `traceparent`; [`to_headers`](Propagate::to_headers) sends the
    /// `tracestate` too.
    fn encode(&self) -> Option<HeaderValue> {
        Some(self.traceparent.clone())
    }

    /// A trace context from a `traceparent` alone (no `tracestate`).
    fn decode(value: &HeaderValue) -> Option<TraceContext> {
        Some(TraceContext {
            traceparent: parse_traceparent(value.as_bytes())?,
            tracestate: None,
        })
    }

    /// Reads one `traceparent` and, when that is valid, every `tracestate`
    /// header, combined; an invalid `tracestate` is dropped alone.
    fn from_headers(headers: &HeaderMap) -> Option<TraceContext> {
        let mut trace = TraceContext::decode(single(headers, &TRACEPARENT)?)?;
        trace.tracestate = combined_tracestate(headers);
        Some(trace)
    }

    /// Sends both headers, unless the request has either already: a
    /// caller (or a tracer) that set its own trace context keeps it whole.
    fn to_headers(&self, headers: &mut HeaderMap) {
        if headers.contains_key(TRACEPARENT) || headers.contains_key(TRACESTATE) {
            return;
        }
        headers.insert(TRACEPARENT, self.traceparent.clone());
        if let Some(tracestate) = &self.tracestate {
            headers.insert(TRACESTATE, tracestate.clone());
        }
    }
}

/// The `traceparent` header value.
impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.traceparent_str())
    }
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceContext")
            .field("traceparent", &self.traceparent)
            .field("tracestate", &self.tracestate)
            .finish()
    }
}

/// A valid `traceparent` as a version `00` header value (a later version
/// downgraded), or `None`.
fn parse_traceparent(bytes: &[u8]) -> Option<HeaderValue> {
    if bytes.len() < TRACEPARENT_LEN || bytes.len() > MAX_TRACEPARENT_LEN {
        return None;
    }
    let (version, rest) = bytes.split_at(2);
    let fields = &rest[..TRACEPARENT_LEN - 2];
    let valid = lower_hex(version)
        && version != b"ff"
        && fields[0] == b'-'
        && nonzero_lower_hex(&fields[1..33])
        && fields[33] == b'-'
        && nonzero_lower_hex(&fields[34..50])
        && fields[50] == b'-'
        && lower_hex(&fields[51..53]);
    if !valid {
        return None;
    }
    if version == b"00" {
        // Version 00 is exactly 55 characters.
        if bytes.len() != TRACEPARENT_LEN {
            return None;
        }
    } else if bytes.len() > TRACEPARENT_LEN && bytes[TRACEPARENT_LEN] != b'-' {
        // A later version: the flags are followed by the end or a `-`.
        // What comes after is fields this version does not know; the
        // specification forbids assuming anything about them, and they
        // are not sent on, so any bytes pass.
        return None;
    }
    let mut version_00 = [0u8; TRACEPARENT_LEN];
    version_00[..2].copy_from_slice(b"00");
    version_00[2..].copy_from_slice(fields);
    HeaderValue::from_bytes(&version_00).ok()
}

fn lower_hex(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|&b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn nonzero_lower_hex(bytes: &[u8]) -> bool {
    lower_hex(bytes) && bytes.iter().any(|&b| b != b'0')
}

/// The value of a lowercase hex digit (checked before).
fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        _ => digit - b'a' + 10,
    }
}

/// Every `tracestate` header of `headers`, combined with `,` as RFC 9110
/// combines a list: `None` when there is none, or the result is invalid,
/// too long or has no entries.
fn combined_tracestate(headers: &HeaderMap) -> Option<HeaderValue> {
    let mut values = headers.get_all(TRACESTATE).iter();
    let first = values.next()?;
    let mut combined = first.as_bytes().to_vec();
    for value in values {
        // Checked before it grows: a client's headers never make this
        // longer than the limit.
        if combined.len() + 1 + value.len() > MAX_TRACESTATE_LEN {
            return None;
        }
        combined.push(b',');
        combined.extend_from_slice(value.as_bytes());
    }
    let members = tracestate_members(&combined)?;
    if members == 0 {
        return None;
    }
    HeaderValue::from_bytes(&combined).ok()
}

/// How many entries a valid `tracestate` has, or `None` if it is invalid
/// or over the limits.
fn tracestate_members(bytes: &[u8]) -> Option<usize> {
    if bytes.len() > MAX_TRACESTATE_LEN {
        return None;
    }
    let mut keys: Vec<&[u8]> = Vec::new();
    for member in bytes.split(|&b| b == b',') {
        let member = trim_ows(member);
        if member.is_empty() {
            continue;
        }
        let eq = member.iter().position(|&b| b == b'=')?;
        let (key, value) = (&member[..eq], &member[eq + 1..]);
        if !tracestate_key(key) || !tracestate_value(value) || keys.contains(&key) {
            return None;
        }
        if keys.len() == MAX_TRACESTATE_MEMBERS {
            return None;
        }
        keys.push(key);
    }
    Some(keys.len())
}

/// Whether `key` is a `tracestate` key of Trace Context Level 1, the W3C
/// Recommendation:
///
/// ```text
/// key              = simple-key / multi-tenant-key
/// simple-key       = lcalpha 0*255( lcalpha / DIGIT / "_" / "-"/ "*" / "/" )
/// multi-tenant-key = tenant-id "@" system-id
/// tenant-id        = ( lcalpha / DIGIT ) 0*240( lcalpha / DIGIT / "_" / "-"/ "*" / "/" )
/// system-id        = lcalpha 0*13( lcalpha / DIGIT / "_" / "-"/ "*" / "/" )
/// ```
///
/// The Level 2 drafts (not a Recommendation) relax this to
/// `(lcalpha / DIGIT) 0*255(keychar)` with `@` among the `keychar`s,
/// anywhere and any number of times; ctx follows the Recommendation, so a
/// key only Level 2 allows (`1abc`, `a@b@c`, `a@`) is invalid here.
fn tracestate_key(key: &[u8]) -> bool {
    match key.iter().position(|&b| b == b'@') {
        None => key_id(key, MAX_SIMPLE_KEY, |b| b.is_ascii_lowercase()),
        Some(at) => {
            let (tenant, system) = (&key[..at], &key[at + 1..]);
            key_id(tenant, MAX_TENANT_ID, |b| {
                b.is_ascii_lowercase() || b.is_ascii_digit()
            }) && key_id(system, MAX_SYSTEM_ID, |b| b.is_ascii_lowercase())
        }
    }
}

/// A simple key, a tenant id or a system id: 1 to `max` characters among
/// `a-z 0-9 _ - * /`, the first passing `first` (so a second `@` is
/// refused here).
fn key_id(id: &[u8], max: usize, first: fn(u8) -> bool) -> bool {
    id.first().is_some_and(|&b| first(b))
        && id.len() <= max
        && id
            .iter()
            .all(|&b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/'))
}

fn tracestate_value(value: &[u8]) -> bool {
    // Printable ASCII but `,` and `=`; the last not a space (the member
    // is trimmed, so only a tab could be last, and that is refused too).
    value.len() <= MAX_TRACESTATE_VALUE
        && value.last().is_some_and(|&b| b != b' ')
        && value
            .iter()
            .all(|&b| (b' '..=b'~').contains(&b) && b != b',' && b != b'=')
}

/// `bytes` without the spaces and tabs (HTTP's optional whitespace)
/// around it.
pub(super) fn trim_ows(bytes: &[u8]) -> &[u8] {
    let ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !ows(b)).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !ows(b)).map_or(start, |i| i + 1);
    &bytes[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn traceparent(text: &[u8]) -> Option<String> {
        parse_traceparent(text).map(|v| v.to_str().unwrap().to_owned())
    }

    #[test]
    fn traceparents_are_read_as_the_specification_says() {
        let long = format!("cc-{}-{}", &VALID[3..], "x".repeat(500));
        let cases: &[(&[u8], Option<&str>)] = &[
            (VALID.as_bytes(), Some(VALID)),
            (
                b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
                Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"),
            ),
            // A later version: read and sent on as 00.
            (
                b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                Some(VALID),
            ),
            (
                b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next",
                Some(VALID),
            ),
            // Fields unknown to version 00 are not checked (a space, a
            // byte past ASCII, as a header value may hold), only dropped.
            (
                b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-a b\tc\x80",
                Some(VALID),
            ),
            (
                b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
                Some(VALID),
            ),
            (
                b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.what",
                None,
            ),
            (
                b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
                None,
            ),
            // A later version is checked as version 00 for what it shares.
            (
                b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what",
                None,
            ),
            (
                b"CC-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                None,
            ),
            (
                b"cc-00000000000000000000000000000000-00f067aa0ba902b7-01-what",
                None,
            ),
            (
                b"cc-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01-what",
                None,
            ),
            (
                b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01-what",
                None,
            ),
            (long.as_bytes(), None), // over 512
            // Version 00 is exactly 55 characters.
            (
                b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
                None,
            ),
            (
                b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
                None,
            ),
            (
                b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                None,
            ),
            (
                b"0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                None,
            ),
            (
                b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                None,
            ),
            (
                b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                None,
            ),
            (
                b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                None,
            ),
            (
                b"00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
                None,
            ),
            (
                b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0X",
                None,
            ),
            (
                b"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                None,
            ),
            (
                b"00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
                None,
            ),
            (
                b" 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                None,
            ),
            (
                b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ",
                None,
            ),
            (
                b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-\xff\xff",
                None,
            ),
            (b"", None),
        ];
        for (text, want) in cases {
            assert_eq!(
                traceparent(text).as_deref(),
                *want,
                "{:?}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn tracestates_are_checked_and_bounded() {
        let k = |n: usize| format!("k{n}=v");
        let thirty_two = (0..32).map(k).collect::<Vec<_>>().join(",");
        let thirty_three = (0..33).map(k).collect::<Vec<_>>().join(",");
        let key_256 = format!("{}=v", "k".repeat(256));
        let key_257 = format!("{}=v", "k".repeat(257));
        let value_256 = format!("k={}", "v".repeat(256));
        let value_257 = format!("k={}", "v".repeat(257));
        let len_512 = format!("a={},b={}", "v".repeat(254), "v".repeat(253));
        let len_513 = format!("a={},b={}", "v".repeat(254), "v".repeat(254));
        assert_eq!(len_512.len(), 512);
        let cases: &[(&str, Option<usize>)] = &[
            ("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", Some(2)),
            ("rojo=1 , congo=2\t", Some(2)),
            ("tenant@system=1,a/b*c_d-e=2", Some(2)),
            ("k= leading space kept", Some(1)),
            ("k=a\"quote", Some(1)),
            ("", Some(0)),
            (" , ,", Some(0)),
            ("rojo=1,,congo=2", Some(2)),
            (&thirty_two, Some(32)),
            (&thirty_three, None),
            (&key_256, Some(1)),
            (&key_257, None),
            (&value_256, Some(1)),
            (&value_257, None),
            (&len_512, Some(2)),
            (&len_513, None),
            ("rojo=1,rojo=2", None), // a key once
            ("Rojo=1", None),
            ("_rojo=1", None),
            ("ro jo=1", None),
            ("rojo", None),
            ("rojo=", None),
            ("=1", None),
            ("rojo=1=2", None),
            ("rojo=a\tb", None),
            ("rojo=caf\u{e9}", None),
        ];
        for (text, want) in cases {
            assert_eq!(tracestate_members(text.as_bytes()), *want, "{text:?}");
        }
    }

    /// The key grammar of Trace Context Level 1 (the Recommendation), and
    /// the cases of the W3C test suite's `test_tracestate_key_*`.
    #[test]
    fn tracestate_keys_are_simple_or_multi_tenant() {
        let simple_256 = "k".repeat(256);
        let simple_257 = "k".repeat(257);
        let tenant_241 = format!("{}@s", "t".repeat(241));
        let tenant_242 = format!("{}@s", "t".repeat(242));
        let system_14 = format!("t@{}", "s".repeat(14));
        let system_15 = format!("t@{}", "s".repeat(15));
        let longest = format!("{}@{}", "t".repeat(241), "s".repeat(14));
        let valid = [
            "rojo",
            "a",
            "a0_-*/",
            "abcdefghijklmnopqrstuvwxyz0123456789_-*/",
            &simple_256,
            "t@s",
            "1tenant@congo",
            "0@a",
            "t_-*/0@s0_-*/",
            "abcdefghijklmnopqrstuvwxyz0123456789_-*/@a-z0-9_-*/",
            &tenant_241,
            &system_14,
            &longest,
        ];
        let invalid = [
            "",
            "1abc", // a simple key starts with a letter
            "_rojo",
            "-rojo",
            "*rojo",
            "/rojo",
            "Rojo",
            "ro.jo",
            "ro jo",
            &simple_257,
            "a@b@c", // one `@` at most
            "a@@b",
            "a@b/c@d",
            "@",
            "@b", // an empty tenant id
            "a@", // an empty system id
            "_t@s",
            "T@s",
            "a@1b", // a system id starts with a letter
            "a@_b",
            "a@B",
            "a@b.c",
            &tenant_242,
            &system_15,
        ];
        for key in valid {
            assert!(tracestate_key(key.as_bytes()), "{key:?} refused");
        }
        for key in invalid {
            assert!(!tracestate_key(key.as_bytes()), "{key:?} accepted");
        }
        // An invalid key drops the whole `tracestate`, as any invalid entry.
        assert_eq!(tracestate_members(b"rojo=1,t@s=2"), Some(2));
        assert_eq!(tracestate_members(b"rojo=1,1abc=2"), None);
        assert_eq!(tracestate_members(b"rojo=1,a@b@c=2"), None);
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn tracestate_headers_are_combined_and_dropped_alone_when_invalid() {
        let trace = TraceContext::from_headers(&headers(&[
            ("traceparent", VALID),
            ("tracestate", "rojo=1"),
            ("tracestate", "congo=2"),
        ]))
        .unwrap();
        assert_eq!(trace.tracestate().unwrap(), "rojo=1,congo=2");

        for bad in ["rojo=1,rojo=2", "NOPE", ""] {
            let trace = TraceContext::from_headers(&headers(&[
                ("traceparent", VALID),
                ("tracestate", bad),
            ]))
            .unwrap();
            assert_eq!(trace.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
            assert!(trace.tracestate().is_none(), "{bad:?}");
        }

        // Many headers: refused once the combination passes 512.
        let many = vec![("tracestate", "k=vvvvvvvvvv"); 60];
        let mut pairs = vec![("traceparent", VALID)];
        pairs.extend(many);
        assert!(TraceContext::from_headers(&headers(&pairs))
            .unwrap()
            .tracestate()
            .is_none());

        // No valid traceparent: nothing, tracestate unread.
        assert!(TraceContext::from_headers(&headers(&[("tracestate", "rojo=1")])).is_none());
        assert!(
            TraceContext::from_headers(&headers(&[("traceparent", VALID), ("traceparent", VALID)]))
                .is_none(),
            "two traceparents"
        );
    }

    #[test]
    fn a_caller_set_trace_context_is_kept_whole() {
        let trace = TraceContext::parse(VALID, Some("rojo=1")).unwrap();
        let mine = "00-11111111111111111111111111111111-2222222222222222-00";

        let mut sent = headers(&[("traceparent", mine)]);
        trace.to_headers(&mut sent);
        assert_eq!(sent["traceparent"], mine);
        assert!(
            !sent.contains_key("tracestate"),
            "no state of another trace"
        );

        let mut sent = headers(&[("tracestate", "mine=1")]);
        trace.to_headers(&mut sent);
        assert!(!sent.contains_key("traceparent"));
        assert_eq!(sent["tracestate"], "mine=1");

        let mut sent = HeaderMap::new();
        trace.to_headers(&mut sent);
        assert_eq!(sent["traceparent"], VALID);
        assert_eq!(sent["tracestate"], "rojo=1");
    }

    #[test]
    fn flags_are_read_as_bits() {
        let with =
            |flags: &str| TraceContext::parse(&format!("{}{flags}", &VALID[..53]), None).unwrap();
        assert_eq!(with("00").flags(), 0);
        assert!(!with("00").sampled());
        assert_eq!(with("ff").flags(), 0xff);
        assert!(with("03").sampled());
        assert!(!with("02").sampled());
    }

    #[test]
    fn ows_is_trimmed_on_both_sides() {
        assert_eq!(trim_ows(b" \t a b \t"), b"a b");
        assert_eq!(trim_ows(b"  "), b"");
        assert_eq!(trim_ows(b""), b"");
    }
}
