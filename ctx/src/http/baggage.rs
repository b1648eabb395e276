//! W3C Baggage (`baggage`) as a request value: [`Baggage`].

use std::borrow::Cow;
use std::fmt;

use http::header::{HeaderMap, HeaderName, HeaderValue};

use super::propagate::Propagate;
use super::trace::trim_ows;

/// `baggage`: the W3C Baggage header, application-defined key-value pairs
/// that travel with a request.
///
/// ```
/// assert_eq!(ctx::http::BAGGAGE.as_str(), "baggage");
/// ```
pub const BAGGAGE: HeaderName = HeaderName::from_static("baggage");

/// The most entries kept: the format's own limit (180), above the
/// specification's minimum of 64.
const MAX_MEMBERS: usize = 180;

/// The longest baggage kept, all its headers combined: the
/// specification's minimum, 8192 bytes.
const MAX_LEN: usize = 8192;

/// W3C Baggage: key-value pairs an application attaches to a request
/// (a user id, a feature flag, "this is a test request"), carried to every
/// call the request makes.
///
/// Opt in per layer, on servers and clients:
/// `ContextLayer::new(&root).propagate::<Baggage>()`,
/// `ClientLayer::new().propagate::<Baggage>()`. Baggage is what a caller
/// says about itself: a server facing the internet should not trust it.
///
/// Entries are read as the [W3C Baggage](https://www.w3.org/TR/baggage/)
/// specification writes them, `key=value` with optional `;property`
/// parts, separated by `,`. The header is passed on as it came (all its
/// headers combined with `,`), properties included; [`with`](Baggage::with)
/// adds or replaces an entry.
///
/// # What is accepted
///
/// At most 180 entries and 8192 bytes, all `baggage` headers combined:
/// the specification's minimums are 64 and 8192. Keys (and property keys)
/// are HTTP tokens; values (and property values) are ASCII without
/// controls, spaces, `"`, `,`, `;` or `\`, where every `%` starts a
/// percent-encoded byte (`%2C`); spaces and tabs around the parts are
/// allowed. Anything else (an empty entry, a bad character, one byte or
/// entry too many) drops the whole baggage, as if the caller sent none:
/// nothing of it is kept or sent on.
///
/// # Examples
///
/// ```
/// use ctx::http::{Baggage, Propagate};
///
/// let mut headers = http::HeaderMap::new();
/// headers.insert("baggage", "userId=alice, serverNode=DF%2028;region=eu, isProduction=false".parse().unwrap());
/// let baggage = Baggage::from_headers(&headers).unwrap();
/// assert_eq!(baggage.len(), 3);
/// assert_eq!(baggage.get("serverNode").as_deref(), Some("DF 28")); // percent-decoded
/// assert_eq!(baggage.get("nobody"), None);
///
/// // A service adds to what it received, and sends it on.
/// let more = baggage.with("canary", "yes, please").unwrap();
/// assert_eq!(more.get("canary").as_deref(), Some("yes, please"));
/// assert!(more.as_str().ends_with(",canary=yes%2C%20please"));
///
/// headers.insert("baggage", "userId=alice,,".parse().unwrap());
/// assert!(Baggage::from_headers(&headers).is_none()); // an empty entry: all dropped
/// ```
///
/// Go: OpenTelemetry's `baggage.Baggage` and `propagation.Baggage`.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Baggage {
    /// The valid header value of our own (copied, so it does not hold the
    /// request's header buffer); `None` when there are no entries.
    header: Option<HeaderValue>,
}

impl Baggage {
    /// Baggage with no entries: nothing is sent until one is added.
    ///
    /// ```
    /// let baggage = ctx::http::Baggage::new();
    /// assert!(baggage.is_empty());
    /// ```
    pub fn new() -> Baggage {
        Baggage::default()
    }

    /// This baggage with `key` set to `value`, replacing the entries that
    /// had that key, the others kept in order; `value` is percent-encoded
    /// as needed. `None` if `key` is not an HTTP token (letters, digits and
    /// ``!#$%&'*+-.^_`|~``) or the result would pass 180 entries or 8192
    /// bytes.
    ///
    /// ```
    /// let baggage = ctx::http::Baggage::new().with("tenant", "acme").unwrap();
    /// let baggage = baggage.with("tenant", "globex").unwrap();
    /// assert_eq!(baggage.as_str(), "tenant=globex");
    /// assert!(baggage.with("not a token", "x").is_none());
    /// ```
    pub fn with(&self, key: &str, value: &str) -> Option<Baggage> {
        if !token(key.as_bytes()) {
            return None;
        }
        let mut text = String::new();
        for member in self.members().filter(|member| member.key != key) {
            text.push_str(member.raw);
            text.push(',');
        }
        text.push_str(key);
        text.push('=');
        for &byte in value.as_bytes() {
            if octet(byte) && byte != b'%' {
                text.push(char::from(byte));
            } else {
                text.push('%');
                text.push(char::from(b"0123456789ABCDEF"[usize::from(byte >> 4)]));
                text.push(char::from(b"0123456789ABCDEF"[usize::from(byte & 0xf)]));
            }
        }
        members(text.as_bytes())?;
        Some(Baggage {
            header: Some(HeaderValue::from_str(&text).ok()?),
        })
    }

    /// The value of the first entry with `key`, percent-decoded (a byte
    /// sequence that is not UTF-8 becomes U+FFFD); `None` if there is none.
    ///
    /// ```
    /// let baggage = ctx::http::Baggage::new().with("city", "Zürich").unwrap();
    /// assert_eq!(baggage.as_str(), "city=Z%C3%BCrich");
    /// assert_eq!(baggage.get("city").as_deref(), Some("Zürich"));
    /// ```
    pub fn get(&self, key: &str) -> Option<Cow<'_, str>> {
        self.members()
            .find(|member| member.key == key)
            .map(|member| percent_decode(member.value))
    }

    /// The entries in order, as `(key, decoded value)`; properties are
    /// carried, not shown.
    ///
    /// ```
    /// let baggage = ctx::http::Baggage::new().with("a", "1").unwrap().with("b", "2").unwrap();
    /// let entries: Vec<_> = baggage.iter().map(|(k, v)| format!("{k}={v}")).collect();
    /// assert_eq!(entries, ["a=1", "b=2"]);
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = (&str, Cow<'_, str>)> + '_ {
        self.members()
            .map(|member| (member.key, percent_decode(member.value)))
    }

    /// How many entries there are.
    ///
    /// ```
    /// assert_eq!(ctx::http::Baggage::new().with("a", "1").unwrap().len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.members().count()
    }

    /// Whether there are no entries.
    ///
    /// ```
    /// assert!(ctx::http::Baggage::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.header.is_none()
    }

    /// The `baggage` header as it is sent on; empty when there are no
    /// entries.
    ///
    /// ```
    /// let baggage = ctx::http::Baggage::new().with("a", "1 2").unwrap();
    /// assert_eq!(baggage.as_str(), "a=1%202");
    /// ```
    pub fn as_str(&self) -> &str {
        // Checked as ASCII: always text.
        self.header
            .as_ref()
            .and_then(|header| header.to_str().ok())
            .unwrap_or_default()
    }

    fn members(&self) -> impl Iterator<Item = Member<'_>> {
        let text = self.as_str();
        text.split(',')
            .filter(|_| !text.is_empty())
            .map(Member::parse)
    }
}

/// Reads and sends `baggage` by the rules in [what is
/// accepted](Baggage#what-is-accepted).
impl Propagate for Baggage {
    const HEADER: HeaderName = BAGGAGE;

    /// The header; `None` when there are no entries.
    fn encode(&self) -> Option<HeaderValue> {
        self.header.clone()
    }

    fn decode(value: &HeaderValue) -> Option<Baggage> {
        let count = members(value.as_bytes())?;
        (count > 0).then(|| Baggage {
            header: HeaderValue::from_bytes(value.as_bytes()).ok(),
        })
    }

    /// Every `baggage` header, combined with `,` as RFC 9110 combines a
    /// list, then checked as one.
    fn from_headers(headers: &HeaderMap) -> Option<Baggage> {
        let mut values = headers.get_all(BAGGAGE).iter();
        let first = values.next()?;
        let mut combined = first.as_bytes().to_vec();
        for value in values {
            // Checked before it grows: a client's headers never make this
            // longer than the limit.
            if combined.len() + 1 + value.len() > MAX_LEN {
                return None;
            }
            combined.push(b',');
            combined.extend_from_slice(value.as_bytes());
        }
        Baggage::decode(&HeaderValue::from_bytes(&combined).ok()?)
    }
}

/// The header text: it holds nothing but checked ASCII, and values are
/// percent-encoded, so it is safe in a log line.
impl fmt::Display for Baggage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Baggage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Baggage({:?})", self.as_str())
    }
}

/// One entry of a checked baggage string.
struct Member<'a> {
    /// The entry as written, properties included, without the spaces
    /// around it.
    raw: &'a str,
    key: &'a str,
    /// Still percent-encoded.
    value: &'a str,
}

impl<'a> Member<'a> {
    /// Splits an entry of a checked string (so it has an `=`).
    fn parse(member: &'a str) -> Member<'a> {
        let raw = trim_str(member);
        let pair = raw.split(';').next().unwrap_or_default();
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        Member {
            raw,
            key: trim_str(key),
            value: trim_str(value),
        }
    }
}

fn trim_str(text: &str) -> &str {
    text.trim_matches([' ', '\t'])
}

/// How many entries a valid baggage string has, or `None` if it is
/// invalid or over the limits.
fn members(bytes: &[u8]) -> Option<usize> {
    if bytes.len() > MAX_LEN {
        return None;
    }
    let mut count = 0;
    for member in bytes.split(|&b| b == b',') {
        let mut parts = member.split(|&b| b == b';');
        let pair = parts.next().unwrap_or_default();
        let eq = pair.iter().position(|&b| b == b'=')?;
        if !token(trim_ows(&pair[..eq])) || !value(trim_ows(&pair[eq + 1..])) {
            return None;
        }
        for property in parts {
            let property = trim_ows(property);
            let valid = match property.iter().position(|&b| b == b'=') {
                Some(eq) => {
                    token(trim_ows(&property[..eq])) && value(trim_ows(&property[eq + 1..]))
                }
                None => token(property),
            };
            if !valid {
                return None;
            }
        }
        count += 1;
        if count > MAX_MEMBERS {
            return None;
        }
    }
    Some(count)
}

/// An HTTP token (RFC 9110 `tchar`s), nonempty.
fn token(bytes: &[u8]) -> bool {
    !bytes.is_empty()
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// `baggage-octet`: ASCII without controls, space, `"`, `,`, `;`, `\`.
fn octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

/// A value: `baggage-octet`s, every `%` followed by two hex digits.
fn value(bytes: &[u8]) -> bool {
    let mut rest = bytes;
    while let Some((&b, tail)) = rest.split_first() {
        if !octet(b) {
            return false;
        }
        rest = tail;
        if b == b'%' {
            match rest {
                [h, l, tail @ ..] if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => rest = tail,
                _ => return false,
            }
        }
    }
    true
}

/// A checked value, percent-decoded.
fn percent_decode(value: &str) -> Cow<'_, str> {
    if !value.contains('%') {
        return Cow::Borrowed(value);
    }
    let digit = |b: u8| char::from(b).to_digit(16).unwrap_or(0) as u8;
    let mut bytes = Vec::with_capacity(value.len());
    let mut rest = value.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        match (b, tail) {
            (b'%', [h, l, tail @ ..]) => {
                bytes.push((digit(*h) << 4) | digit(*l));
                rest = tail;
            }
            _ => {
                bytes.push(b);
                rest = tail;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baggage_is_read_as_the_specification_writes_it() {
        let entries = |n: usize| {
            (0..n)
                .map(|i| format!("k{i}=v"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let at_limit = format!("k={}", "v".repeat(MAX_LEN - 2));
        let over_limit = format!("k={}", "v".repeat(MAX_LEN - 1));
        let (e180, e181) = (entries(180), entries(181));
        let cases: &[(&str, Option<usize>)] = &[
            ("userId=alice", Some(1)),
            ("key1=value1;property1;property2, key2 = value2, key3=value3; propertyKey=propertyValue", Some(3)),
            ("userId =   alice, serverNode = DF%2028", Some(2)),
            ("k=", Some(1)),
            ("k=a=b", Some(1)),
            ("k=%e2%82%AC", Some(1)),
            ("dup=1,dup=2", Some(2)),
            (&e180, Some(180)),
            (&e181, None),
            (&at_limit, Some(1)),
            (&over_limit, None),
            ("", None),
            ("k=1,", None),
            ("k=1,,k=2", None),
            ("=1", None),
            ("k", None),
            ("k y=1", None),
            ("k\"=1", None),
            ("k=a b", None),
            ("k=a\"b", None),
            ("k=a\\b", None),
            ("k=%", None),
            ("k=%2", None),
            ("k=%zz", None),
            ("k=caf\u{e9}", None),
            ("k=1;", None),
            ("k=1;p=a b", None),
            ("k=1;p q", None),
            ("k=1\u{7f}", None),
        ];
        for (text, want) in cases {
            assert_eq!(members(text.as_bytes()), *want, "{text:?}");
        }
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(BAGGAGE, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn baggage_headers_are_combined_and_bounded() {
        let baggage = Baggage::from_headers(&headers(&["a=1", "b=2;p"])).unwrap();
        assert_eq!(baggage.as_str(), "a=1,b=2;p");
        assert_eq!(baggage.get("b").as_deref(), Some("2"));

        let many = vec!["k=vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"; 70];
        assert!(
            Baggage::from_headers(&headers(&many)).is_none(),
            "8192 bytes passed"
        );
        assert!(Baggage::from_headers(&headers(&["a=1", "b c"])).is_none());
        assert!(Baggage::from_headers(&HeaderMap::new()).is_none());
    }

    #[test]
    fn values_are_percent_decoded_and_encoded() {
        let baggage = Baggage::decode(&HeaderValue::from_static(
            "a=%E2%82%AC, b=plain, c=%ff, d=%2c%3B",
        ))
        .unwrap();
        assert_eq!(baggage.get("a").as_deref(), Some("\u{20ac}"));
        assert!(matches!(baggage.get("b"), Some(Cow::Borrowed("plain"))));
        assert_eq!(baggage.get("c").as_deref(), Some("\u{fffd}"));
        assert_eq!(baggage.get("d").as_deref(), Some(",;"));

        let text = "\"quoted\", 100% ; \\ \u{e9}\n";
        let baggage = Baggage::new().with("k", text).unwrap();
        assert_eq!(baggage.get("k").as_deref(), Some(text));
        assert!(members(baggage.as_str().as_bytes()).is_some());
    }

    #[test]
    fn with_replaces_and_keeps_the_bounds() {
        let baggage = Baggage::decode(&HeaderValue::from_static("a=1;p, b=2, a=3")).unwrap();
        let baggage = baggage.with("a", "4").unwrap();
        assert_eq!(baggage.as_str(), "b=2,a=4");
        assert!(Baggage::new().with("", "x").is_none());
        assert!(Baggage::new().with("k", &"v".repeat(MAX_LEN)).is_none());
        let mut full = Baggage::new();
        for i in 0..MAX_MEMBERS {
            full = full.with(&format!("k{i}"), "v").unwrap();
        }
        assert!(full.with("one-more", "v").is_none());
        assert_eq!(full.with("k0", "w").unwrap().len(), MAX_MEMBERS);
    }
}
