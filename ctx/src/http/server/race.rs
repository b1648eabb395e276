//! The race of a handler against its request context, and what the layer
//! says when the context wins: the gRPC or gRPC-Web status, or the error's
//! text.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use bytes::Buf;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::HeaderMap;

use crate::http::ending::RequestGuard;
use crate::{Context, DoneOwned, Error};

/// The protocol a request speaks, as its `content-type` says: how the
/// layer answers for it, and how a body cut off by its context ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(in crate::http) enum Protocol {
    /// Plain HTTP: 503 or 504 with the error's text; a cut body fails.
    Http,
    /// gRPC (`application/grpc`, alone or followed by `+`, `-` or `;`, as
    /// gRPC servers recognize it, gRPC-Web aside): the status in the head
    /// of a trailers-only answer, or in the trailers of a cut stream.
    Grpc,
    /// gRPC-Web (`application/grpc-web`, alone or followed by `+`, `-` or
    /// `;`): the status in the head of a trailers-only answer with the
    /// `content_type` given, or in a trailer frame at the end of a cut
    /// stream's data, as the gRPC-Web protocol carries trailers (over
    /// HTTP/1.1 no HTTP trailers reach a browser). With `text`
    /// (`application/grpc-web-text`) the body is base64 text, and so is
    /// the frame.
    GrpcWeb {
        /// The request's own `content-type` when well formed
        /// ([`web_content_type`]), else `application/grpc-web+proto`.
        content_type: HeaderValue,
        /// The body is base64 (`application/grpc-web-text`).
        text: bool,
    },
}

impl Protocol {
    /// The protocol of the request (or response) with these `headers`.
    pub(in crate::http) fn of(headers: &HeaderMap) -> Protocol {
        let Some(value) = headers.get(CONTENT_TYPE) else {
            return Protocol::Http;
        };
        let Some(rest) = value.as_bytes().strip_prefix(b"application/grpc") else {
            return Protocol::Http;
        };
        if !ends_name(rest) {
            return Protocol::Http; // `application/grpcx`
        }
        let Some(web) = rest.strip_prefix(b"-web").filter(|web| ends_name(web)) else {
            return Protocol::Grpc;
        };
        match web_content_type(web) {
            Some(text) => Protocol::GrpcWeb {
                content_type: value.clone(),
                text,
            },
            // Known for gRPC-Web, but not a type to echo.
            None => Protocol::GrpcWeb {
                content_type: HeaderValue::from_static("application/grpc-web+proto"),
                text: false,
            },
        }
    }

    /// The `content-type` of the layer's own gRPC answer; `None` for plain
    /// HTTP.
    pub(in crate::http) fn grpc_content_type(&self) -> Option<HeaderValue> {
        match self {
            Protocol::Http => None,
            Protocol::Grpc => Some(HeaderValue::from_static("application/grpc")),
            Protocol::GrpcWeb { content_type, .. } => Some(content_type.clone()),
        }
    }
}

/// Whether `rest`, what follows a media type's name, ends the name: nothing,
/// or `+` (a suffix), `-` (a variant) or `;` (parameters).
fn ends_name(rest: &[u8]) -> bool {
    matches!(rest.first(), None | Some(b'+' | b'-' | b';'))
}

/// Whether `rest`, what follows `application/grpc-web` in a content type,
/// makes a well-formed gRPC-Web type, one to echo in the answer: `-text`
/// (or the spec's `-text-base64`) or nothing, then `+` and a subtype
/// (`+proto`, `+json`) or nothing, then `;` and parameters of visible
/// ASCII or nothing. `Some(text)` if so, `text` for a base64 body.
fn web_content_type(rest: &[u8]) -> Option<bool> {
    let (text, rest) = match rest.strip_prefix(b"-text") {
        Some(rest) => (true, rest.strip_prefix(b"-base64").unwrap_or(rest)),
        None => (false, rest),
    };
    let (subtype, params) =
        rest.split_at(rest.iter().position(|&b| b == b';').unwrap_or(rest.len()));
    let subtype_ok = subtype.is_empty()
        || subtype
            .strip_prefix(b"+")
            .is_some_and(|name| !name.is_empty() && name.iter().all(|&b| is_token(b)));
    let params_ok = params
        .iter()
        .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b));
    (subtype_ok && params_ok).then_some(text)
}

/// An HTTP token character (RFC 9110, section 5.6.2).
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Whether `headers` are those of a gRPC or gRPC-Web request.
#[cfg(test)]
fn is_grpc(headers: &HeaderMap) -> bool {
    Protocol::of(headers) != Protocol::Http
}

/// The race of a handler (its future, then its body) against its request
/// context: its `done()` to be woken by. The context itself is read from
/// the [`RequestGuard`] beside the race, there whenever a race is.
pub(super) struct Race {
    /// Wakes the task when the context ends; polled only when the handler
    /// is pending.
    done: DoneOwned,
    /// The request's protocol ([`Protocol::of`]): whether the answer is
    /// a `grpc-status`, and where a cut stream's status goes; set from the
    /// request, then from the response head ([`Race::answered`]).
    pub(super) protocol: Protocol,
    /// For a binary gRPC-Web body, where its data is in its framing: its
    /// trailer frame ends the response as HTTP trailers do.
    web: Option<WebFrames>,
}

impl Race {
    pub(super) fn new(ctx: &Context, protocol: Protocol) -> Race {
        Race {
            done: ctx.done_owned(),
            web: WebFrames::of(&protocol),
            protocol,
        }
    }

    /// Ends the race in `race`: the protocol it found, plain HTTP when
    /// there was none (cooperative, or over).
    pub(super) fn take_protocol(race: &mut Option<Race>) -> Protocol {
        race.take().map_or(Protocol::Http, |race| race.protocol)
    }

    /// Reads the next `data` of the handler's body; true once it has
    /// carried a whole gRPC-Web trailer frame: the response is complete,
    /// whether or not the body says it is over.
    pub(super) fn completed_by(&mut self, data: &impl Buf) -> bool {
        self.web.as_mut().is_some_and(|web| web.read(data))
    }

    /// The handler answered a gRPC or gRPC-Web request with a head of
    /// these `headers`: its body is framed as their `content-type` says,
    /// if that names gRPC or gRPC-Web (tonic-web picks base64 by the
    /// request's `accept`; a gRPC server without gRPC-Web support answers
    /// plain gRPC), else as the request's does.
    pub(super) fn answered(&mut self, headers: &HeaderMap) {
        if self.protocol == Protocol::Http {
            return;
        }
        match Protocol::of(headers) {
            Protocol::Http => {}
            said => self.protocol = said,
        }
        self.web = WebFrames::of(&self.protocol);
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

/// Where a binary gRPC-Web body is in its framing: each message, and the
/// trailer block that ends the response, is a flag byte (0x80 for
/// trailers), a 4-byte big-endian length and that many bytes.
///
/// Base64 bodies (`grpc-web-text`) are not followed: the end of their
/// trailer frame is left to the body's own end.
#[derive(Debug, Default)]
struct WebFrames {
    /// The current frame's header, as far as read.
    header: [u8; 5],
    /// How much of `header` is read.
    have: usize,
    /// The current frame's bytes not yet read, once its header is.
    left: u64,
    /// Set when a buffer could not be read whole: nothing is followed after.
    lost: bool,
}

impl WebFrames {
    fn of(protocol: &Protocol) -> Option<WebFrames> {
        matches!(protocol, Protocol::GrpcWeb { text: false, .. }).then(WebFrames::default)
    }

    /// Reads `data`; true once a trailer frame has been read whole.
    fn read(&mut self, data: &impl Buf) -> bool {
        // A `Bytes` is one chunk; a buffer of more than this many is not
        // followed (no end is found early, which is what was before).
        let mut chunks = [std::io::IoSlice::new(&[]); 16];
        let n = data.chunks_vectored(&mut chunks);
        let seen: usize = chunks[..n].iter().map(|chunk| chunk.len()).sum();
        self.lost |= seen != data.remaining();
        !self.lost && chunks[..n].iter().any(|chunk| self.read_chunk(chunk))
    }

    fn read_chunk(&mut self, mut bytes: &[u8]) -> bool {
        while !bytes.is_empty() {
            if self.have < self.header.len() {
                let n = (self.header.len() - self.have).min(bytes.len());
                self.header[self.have..self.have + n].copy_from_slice(&bytes[..n]);
                self.have += n;
                bytes = &bytes[n..];
                if self.have < self.header.len() {
                    return false;
                }
                let [_, a, b, c, d] = self.header;
                self.left = u64::from(u32::from_be_bytes([a, b, c, d]));
            } else {
                let n =
                    usize::try_from(self.left).map_or(bytes.len(), |left| left.min(bytes.len()));
                self.left -= n as u64;
                bytes = &bytes[n..];
            }
            if self.have == self.header.len() && self.left == 0 {
                if self.header[0] & 0x80 != 0 {
                    return true;
                }
                self.have = 0;
            }
        }
        false
    }
}

/// The gRPC status code for `err`, as `From<ctx::Error> for tonic::Status`
/// maps it: 1 (`CANCELLED`) or 4 (`DEADLINE_EXCEEDED`).
const fn grpc_code(err: Error) -> &'static str {
    match err {
        Error::Canceled => "1",
        Error::DeadlineExceeded => "4",
    }
}

/// The gRPC status for `err`: `(grpc-status, grpc-message)`.
pub(super) fn grpc_status(err: Error) -> (HeaderValue, HeaderValue) {
    // The text is plain ASCII without `%`: no percent-encoding needed.
    (
        HeaderValue::from_static(grpc_code(err)),
        HeaderValue::from_static(error_text(err)),
    )
}

/// Makes `headers` the head of a trailers-only gRPC (or gRPC-Web) response
/// of type `content_type`: the status `code` and `message` (printable
/// ASCII) where a call's trailers would carry them, as tonic's
/// `Status::into_http` does. gRPC-Web keeps trailers-only responses as
/// they are.
pub(in crate::http) fn grpc_status_headers(
    headers: &mut HeaderMap,
    content_type: HeaderValue,
    code: HeaderValue,
    message: HeaderValue,
) {
    headers.insert(CONTENT_TYPE, content_type);
    headers.insert(GRPC_STATUS, code);
    headers.insert(GRPC_MESSAGE, message);
}

/// `err`'s text, as its `Display` writes it (a unit test keeps the two
/// the same), as a `'static` string for a header or a body.
pub(super) const fn error_text(err: Error) -> &'static str {
    match err {
        Error::Canceled => "context canceled",
        Error::DeadlineExceeded => "context deadline exceeded",
    }
}

/// The gRPC-Web trailer frame that ends a stream cut off by `err`, the
/// status gRPC puts in HTTP trailers (`grpc_status`) carried in the body
/// instead: base64 for a `text` body, as its own padded chunk (the
/// protocol lets a server pad wherever it flushes, and clients decode
/// each padded chunk alone). `'static`: the layer's statuses are fixed,
/// so every frame is built at compile time.
pub(super) fn grpc_web_trailers(err: Error, text: bool) -> &'static [u8] {
    /// The frame for one error, binary and base64.
    macro_rules! frames {
        ($err:expr) => {{
            const FRAME: [u8; web_frame_len($err)] = web_frame($err);
            const TEXT: [u8; base64_len(FRAME.len())] = base64(&FRAME);
            (&FRAME, &TEXT)
        }};
    }
    let (binary, base64): (&'static [u8], &'static [u8]) = match err {
        Error::Canceled => frames!(Error::Canceled),
        Error::DeadlineExceeded => frames!(Error::DeadlineExceeded),
    };
    if text {
        base64
    } else {
        binary
    }
}

/// The key of a gRPC-Web trailer block's first line, then of its second.
const WEB_STATUS: &[u8] = b"grpc-status:";
const WEB_MESSAGE: &[u8] = b"\r\ngrpc-message:";

/// The length of [`web_frame`]`(err)`.
const fn web_frame_len(err: Error) -> usize {
    5 + WEB_STATUS.len() + grpc_code(err).len() + WEB_MESSAGE.len() + error_text(err).len() + 2
}

/// A gRPC-Web trailer frame carrying `err`'s status: the flag byte 0x80
/// (trailers, uncompressed), the block's length (four bytes, big-endian),
/// then the block, header lines as HTTP/1 writes them:
/// `grpc-status:4\r\ngrpc-message:context deadline exceeded\r\n`.
/// `N` is [`web_frame_len`]`(err)`.
const fn web_frame<const N: usize>(err: Error) -> [u8; N] {
    let mut frame = [0; N];
    frame[0] = 0x80;
    let len = (N - 5) as u32; // a few dozen bytes
    let len = len.to_be_bytes();
    let mut at = 1;
    while at < 5 {
        frame[at] = len[at - 1];
        at += 1;
    }
    let parts = [
        WEB_STATUS,
        grpc_code(err).as_bytes(),
        WEB_MESSAGE,
        error_text(err).as_bytes(),
        b"\r\n",
    ];
    let mut part = 0;
    while part < parts.len() {
        let mut i = 0;
        while i < parts[part].len() {
            frame[at] = parts[part][i];
            at += 1;
            i += 1;
        }
        part += 1;
    }
    assert!(
        at == N,
        "ctx: internal error: a gRPC-Web frame of the wrong length"
    );
    frame
}

/// The length of `len` bytes in padded base64.
const fn base64_len(len: usize) -> usize {
    len.div_ceil(3) * 4
}

/// `bytes` in padded standard base64 (RFC 4648, section 4); `N` is
/// [`base64_len`]`(bytes.len())`. Our own, not the `base64` crate's: this
/// one is a `const fn`, so the two frames are built at compile time and
/// the layer needs no dependency for them.
const fn base64<const N: usize>(bytes: &[u8]) -> [u8; N] {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = [b'='; N];
    let mut i = 0;
    let mut at = 0;
    while i < bytes.len() {
        let b0 = bytes[i] as usize;
        let b1 = if i + 1 < bytes.len() {
            bytes[i + 1] as usize
        } else {
            0
        };
        let b2 = if i + 2 < bytes.len() {
            bytes[i + 2] as usize
        } else {
            0
        };
        out[at] = ALPHABET[b0 >> 2];
        out[at + 1] = ALPHABET[((b0 & 0x03) << 4) | (b1 >> 4)];
        if i + 1 < bytes.len() {
            out[at + 2] = ALPHABET[((b1 & 0x0f) << 2) | (b2 >> 6)];
        }
        if i + 2 < bytes.len() {
            out[at + 3] = ALPHABET[b2 & 0x3f];
        }
        i += 3;
        at += 4;
    }
    assert!(at == N, "ctx: internal error: base64 of the wrong length");
    out
}

/// gRPC's status code header (a response header or trailer).
pub(super) const GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");

/// gRPC's status message header.
pub(super) const GRPC_MESSAGE: http::HeaderName = http::HeaderName::from_static("grpc-message");

#[cfg(test)]
mod tests {
    use super::*;

    /// A gRPC-Web frame: `flag`, the length, `payload` (the module's
    /// `web_frame` builds only the layer's own trailer frames).
    fn any_frame(flag: u8, payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![flag];
        frame.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
        frame.extend_from_slice(payload);
        frame
    }

    #[test]
    fn a_grpc_web_trailer_frame_is_found_however_the_data_is_split() {
        // A message whose bytes look like a trailer flag, an empty
        // message, then the trailers.
        let mut body = any_frame(0, &[0x80, 0x80, 0, 0, 0, 1]);
        body.extend(any_frame(0, &[]));
        let trailers = any_frame(0x80, b"grpc-status:0\r\n");
        body.extend(&trailers);
        let end = body.len();
        for split in 1..=end {
            let mut web = WebFrames::default();
            let mut ended_at = None;
            for (i, piece) in body.chunks(split).enumerate() {
                if web.read(&bytes::Bytes::copy_from_slice(piece)) {
                    ended_at = Some((i + 1) * split);
                    break;
                }
            }
            // Found with the piece holding the frame's last byte, not before.
            assert_eq!(
                ended_at.map(|at| at.min(end)),
                Some(end),
                "pieces of {split}"
            );
        }
        // An empty trailer block ends it too; messages alone do not.
        assert!(WebFrames::default().read(&bytes::Bytes::from(any_frame(0x80, b""))));
        assert!(!WebFrames::default().read(&bytes::Bytes::from(any_frame(0, b"\x80\x80"))));
    }

    #[test]
    fn only_binary_grpc_web_bodies_are_followed() {
        assert!(WebFrames::of(&protocol(b"application/grpc-web+proto")).is_some());
        assert!(WebFrames::of(&protocol(b"application/grpc-web-text")).is_none());
        assert!(WebFrames::of(&protocol(b"application/grpc")).is_none());
        assert!(WebFrames::of(&Protocol::Http).is_none());
    }

    #[test]
    fn the_answers_text_is_the_errors_own() {
        for err in [Error::Canceled, Error::DeadlineExceeded] {
            assert_eq!(error_text(err), err.to_string());
        }
    }

    fn protocol(content_type: &'static [u8]) -> Protocol {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_bytes(content_type).unwrap());
        Protocol::of(&headers)
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

    #[test]
    fn grpc_web_requests_are_told_from_grpc_and_their_type_echoed_when_well_formed() {
        for grpc in [
            &b"application/grpc"[..],
            b"application/grpc+proto",
            b"application/grpc;charset=utf-8",
            b"application/grpc-webx",
            b"application/grpc-exp",
        ] {
            assert_eq!(protocol(grpc), Protocol::Grpc, "{grpc:?}");
        }
        for (web, text) in [
            (&b"application/grpc-web"[..], false),
            (b"application/grpc-web+proto", false),
            (b"application/grpc-web+json", false),
            (b"application/grpc-web; charset=utf-8", false),
            (b"application/grpc-web-text", true),
            (b"application/grpc-web-text+proto", true),
            (b"application/grpc-web-text-base64", true),
        ] {
            let content_type = HeaderValue::from_bytes(web).unwrap();
            assert_eq!(
                protocol(web),
                Protocol::GrpcWeb { content_type, text },
                "{web:?}"
            );
        }
        for odd in [
            &b"application/grpc-web+"[..],
            b"application/grpc-web-texts",
            b"application/grpc-web-foo",
            b"application/grpc-web+pro/to",
            b"application/grpc-web+proto;\xff",
            b"application/grpc-web-text+",
        ] {
            assert_eq!(
                protocol(odd),
                Protocol::GrpcWeb {
                    content_type: HeaderValue::from_static("application/grpc-web+proto"),
                    text: false,
                },
                "{odd:?}"
            );
        }
        assert_eq!(Protocol::of(&HeaderMap::new()), Protocol::Http);
        assert_eq!(protocol(b"application/grpcx"), Protocol::Http);
    }

    #[test]
    fn the_response_head_says_how_a_grpc_body_is_framed() {
        let race = |request: &'static [u8], response: Option<&'static [u8]>| {
            let mut race = Race::new(&Context::background(), protocol(request));
            let mut headers = HeaderMap::new();
            if let Some(response) = response {
                headers.insert(CONTENT_TYPE, HeaderValue::from_bytes(response).unwrap());
            }
            race.answered(&headers);
            race.protocol
        };
        let text = |protocol: Protocol| match protocol {
            Protocol::GrpcWeb { text, .. } => Some(text),
            _ => None,
        };
        // tonic-web answers base64 when the request's `accept` asks.
        assert_eq!(
            text(race(
                b"application/grpc-web",
                Some(b"application/grpc-web-text+proto")
            )),
            Some(true)
        );
        assert_eq!(
            text(race(
                b"application/grpc-web-text",
                Some(b"application/grpc-web+proto")
            )),
            Some(false)
        );
        assert_eq!(text(race(b"application/grpc-web-text", None)), Some(true));
        assert_eq!(
            text(race(b"application/grpc-web-text", Some(b"text/plain"))),
            Some(true)
        );
        assert_eq!(
            race(b"application/grpc-web", Some(b"application/grpc")),
            Protocol::Grpc,
            "a gRPC server without gRPC-Web answers plain gRPC"
        );
        assert_eq!(
            race(b"text/plain", Some(b"application/grpc-web")),
            Protocol::Http,
            "plain HTTP stays plain"
        );
    }

    #[test]
    fn grpc_web_trailer_frames_carry_the_status_of_each_error() {
        let deadline = grpc_web_trailers(Error::DeadlineExceeded, false);
        let block = b"grpc-status:4\r\ngrpc-message:context deadline exceeded\r\n";
        assert_eq!(deadline[0], 0x80, "trailers, uncompressed");
        assert_eq!(
            deadline[1..5],
            u32::try_from(block.len()).unwrap().to_be_bytes()
        );
        assert_eq!(&deadline[5..], block);
        let canceled = grpc_web_trailers(Error::Canceled, false);
        assert_eq!(
            &canceled[5..],
            b"grpc-status:1\r\ngrpc-message:context canceled\r\n"
        );
        assert_eq!(canceled[1..5], 46u32.to_be_bytes());
        // From Python's `base64.b64encode`.
        assert_eq!(
            grpc_web_trailers(Error::DeadlineExceeded, true),
            b"gAAAADdncnBjLXN0YXR1czo0DQpncnBjLW1lc3NhZ2U6Y29udGV4dCBkZWFkbGluZSBleGNlZWRlZA0K"
        );
        assert_eq!(
            grpc_web_trailers(Error::Canceled, true),
            b"gAAAAC5ncnBjLXN0YXR1czoxDQpncnBjLW1lc3NhZ2U6Y29udGV4dCBjYW5jZWxlZA0K"
        );
    }

    #[test]
    fn base64_pads_as_rfc_4648_does() {
        // The test vectors of RFC 4648, section 10.
        assert_eq!(base64::<0>(b""), *b"");
        assert_eq!(base64::<4>(b"f"), *b"Zg==");
        assert_eq!(base64::<4>(b"fo"), *b"Zm8=");
        assert_eq!(base64::<4>(b"foo"), *b"Zm9v");
        assert_eq!(base64::<8>(b"foob"), *b"Zm9vYg==");
        assert_eq!(base64::<8>(b"fooba"), *b"Zm9vYmE=");
        assert_eq!(base64::<8>(b"foobar"), *b"Zm9vYmFy");
        assert_eq!(base64::<4>(&[0xff, 0xfe, 0xfd]), *b"//79");
    }
}
