//! HTTP/1.1 as functions over bytes: writing a request's head, reading a response's head
//! (`httparse`, the parser hyper uses), and the framing of a body (RFC 9112 §6: no body, a
//! length, chunked, or until the connection closes), including the chunked decoder. The header
//! block, the names cache and the body reader serve the gateway's server
//! ([`crate::server::h1`]) as well; the client's connection is in [`super::pool`].

use crate::telemetry::context::{self, SpanContext, SpanId};
use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version};
use std::mem::MaybeUninit;

/// Most headers a message may have.
pub(crate) const MAX_HEADERS: usize = 100;
/// Largest response head accepted.
pub const MAX_HEAD: usize = 64 * 1024;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// How a request's body goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sending {
    /// No body at all (and no length header: a GET).
    None,
    Length(u64),
    Chunked,
}

/// Headers the client writes itself, whatever the caller passed: the framing and the target.
fn written_by_us(n: &HeaderName) -> bool {
    use http::header::{CONNECTION, CONTENT_LENGTH, EXPECT, HOST, TRANSFER_ENCODING};
    *n == HOST
        || *n == CONTENT_LENGTH
        || *n == TRANSFER_ENCODING
        || *n == CONNECTION
        || *n == EXPECT
}

/// The trace headers, written from the attempt's context when there is one.
fn trace_header(n: &HeaderName) -> bool {
    use crate::telemetry::context::names::{TRACEPARENT, X_PARENT_ID, X_SPAN_ID, X_TRACE_ID};
    *n == TRACEPARENT || *n == X_TRACE_ID || *n == X_SPAN_ID || *n == X_PARENT_ID
}

/// Writes the request line and headers, with `host` and the body's framing, into `out`;
/// `forwarded_for` is added to `X-Forwarded-For` (after what is there, comma-separated).
#[allow(clippy::too_many_arguments)]
pub fn write_head(
    out: &mut Vec<u8>,
    method: &Method,
    target: &str,
    headers: &HeaderMap,
    host: &HeaderValue,
    sending: Sending,
    trace: Option<(SpanContext, SpanId)>,
    forwarded_for: Option<&HeaderValue>,
) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(if target.is_empty() {
        b"/"
    } else {
        target.as_bytes()
    });
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\n");
    if let Some((ctx, parent)) = trace {
        context::write_headers(out, ctx, parent);
    }
    for (name, value) in headers {
        if written_by_us(name) || (trace.is_some() && trace_header(name)) {
            continue;
        }
        if forwarded_for.is_some() && *name == X_FORWARDED_FOR {
            continue; // written below, with the client added
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(client) = forwarded_for {
        // One line: what earlier proxies said (every line of it), then this one's client.
        out.extend_from_slice(b"x-forwarded-for: ");
        for earlier in headers.get_all(X_FORWARDED_FOR) {
            out.extend_from_slice(earlier.as_bytes());
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(client.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match sending {
        Sending::None => {}
        Sending::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa(n).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Sending::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

fn itoa(mut n: u64) -> String {
    if n == 0 {
        return "0".into();
    }
    let mut digits = Vec::with_capacity(20);
    while n > 0 {
        digits.push(b'0' + (n % 10) as u8);
        n /= 10;
    }
    digits.reverse();
    String::from_utf8(digits).unwrap_or_default()
}

/// How a response's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Length(u64),
    Chunked,
    /// Until the server closes the connection (which then cannot be reused).
    UntilClose,
}

/// A response head read from the front of a buffer.
#[derive(Debug)]
pub struct Head {
    pub status: StatusCode,
    pub version: Version,
    /// Empty when the header lines were kept as [`Forwarded`].
    pub headers: HeaderMap,
    pub forwarded: Option<Box<Forwarded>>,
    pub framing: Framing,
    /// The connection may carry another request after this response.
    pub keep_alive: bool,
}

/// An answer's header lines as the instance wrote them, less the hop-by-hop ones (RFC 9110
/// §7.6.1, those its `Connection` names too), `X-Trace-ID` (a proxy sets its own) and the
/// framing, which the proxy writes for its own connection: what a proxy passes on, without
/// parsing the lines into a header map only to write them out again.
#[derive(Debug, Clone, Default)]
pub struct Forwarded {
    /// `name: value\r\n` lines, with room for a few more ([`Forwarded::add`]).
    pub lines: BytesMut,
    /// A `date` line is among them.
    pub date: bool,
    /// A `content-length` line is among them: kept only on an answer without a body (to a
    /// `HEAD`, a 204 or a 304), where it tells what the full answer would have had.
    pub length: bool,
}

impl Forwarded {
    /// Adds the line `name: value`.
    pub fn add(&mut self, name: &[u8], value: &[u8]) {
        put_header(&mut self.lines, name, value);
    }
}

/// Why a response could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    #[error("invalid response from the instance: {0}")]
    Invalid(String),
    #[error("response head larger than {MAX_HEAD} bytes")]
    TooLarge,
}

/// Parses a response head at the front of `buf`, consuming it. `None`: more bytes are needed.
/// Interim (1xx) responses are skipped; `request` decides whether the response has a body.
/// Header values share the head's bytes (no copy each); with `forward`, the header lines are
/// kept as [`Forwarded`] lines instead of a map.
pub fn read_head(
    buf: &mut BytesMut,
    request: &Method,
    names: &mut Names,
    forward: bool,
) -> Result<Option<Head>, HeadError> {
    loop {
        let mut found = NO_OFFSETS;
        let count;
        let (used, code, minor) = {
            let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
            let mut resp = httparse::Response::new(&mut []);
            let base = buf.as_ptr() as usize;
            match httparse::ParserConfig::default()
                .parse_response_with_uninit_headers(&mut resp, buf, &mut slots)
            {
                Ok(httparse::Status::Complete(n)) => {
                    count = offsets(resp.headers, base, &mut found);
                    (n, resp.code.unwrap_or(0), resp.version.unwrap_or(1))
                }
                Ok(httparse::Status::Partial) => {
                    return if buf.len() > MAX_HEAD {
                        Err(HeadError::TooLarge)
                    } else {
                        Ok(None)
                    };
                }
                Err(e) => return Err(HeadError::Invalid(e.to_string())),
            }
        };
        let status =
            StatusCode::from_u16(code).map_err(|_| HeadError::Invalid(format!("status {code}")))?;
        let version = if minor == 0 {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        };
        let head = buf.split_to(used).freeze();
        if status.is_informational() {
            if status == StatusCode::SWITCHING_PROTOCOLS {
                return Err(HeadError::Invalid(
                    "protocol upgrades are not proxied".into(),
                ));
            }
            continue;
        }
        let no_body = *request == Method::HEAD
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        let (block, forwarded) = if forward {
            // The length a HEAD or 304 answer gives is the full answer's; a 204 has none.
            let length_passes = *request == Method::HEAD || status == StatusCode::NOT_MODIFIED;
            let (block, lines) = HeaderBlock::forward(&head, &found[..count], length_passes);
            (block, Some(Box::new(lines)))
        } else {
            (HeaderBlock::read(&head, &found[..count], names), None)
        };
        let HeaderBlock {
            headers,
            coded,
            chunked,
            length,
            close,
            keep,
            ..
        } = block.map_err(HeadError::Invalid)?;
        let framing = if no_body {
            Framing::Length(0)
        } else if chunked {
            Framing::Chunked
        } else if coded {
            // A transfer coding other than chunked last: the body runs to the close
            // (RFC 9112 §6.3), whatever a content-length says.
            Framing::UntilClose
        } else if let Some(n) = length {
            Framing::Length(n)
        } else {
            Framing::UntilClose
        };
        // Both a coding and a length: a sender to be wary of, so the connection is not reused.
        let keep_alive = framing != Framing::UntilClose
            && !close
            && !(coded && length.is_some())
            && (version == Version::HTTP_11 || keep);
        return Ok(Some(Head {
            status,
            version,
            headers,
            forwarded,
            framing,
            keep_alive,
        }));
    }
}

/// A chunked body being decoded from the bytes that arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Chunks {
    /// Expecting a chunk-size line.
    #[default]
    Size,
    /// In a chunk's data: bytes left.
    Data(u64),
    /// After a chunk's data: its CRLF.
    DataEnd,
    /// After the last (zero) chunk: trailer lines until an empty one.
    Trailers,
    Done,
}

/// What the decoder made of the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    Data(Bytes),
    /// More bytes are needed.
    More,
    Done,
}

impl Chunks {
    /// Takes the next piece of body out of `buf`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, HeadError> {
        loop {
            match *self {
                Chunks::Done => return Ok(Decoded::Done),
                Chunks::Data(0) => *self = Chunks::DataEnd,
                Chunks::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Decoded::More);
                    }
                    let n = (left as usize).min(buf.len());
                    *self = Chunks::Data(left - n as u64);
                    return Ok(Decoded::Data(buf.split_to(n).freeze()));
                }
                Chunks::DataEnd => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(Decoded::More);
                    };
                    if !line.is_empty() {
                        return Err(HeadError::Invalid("chunk not followed by CRLF".into()));
                    }
                    *self = Chunks::Size;
                }
                Chunks::Size => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(Decoded::More);
                    };
                    let hex = line.split(|&b| b == b';').next().unwrap_or_default();
                    // Hex digits only (a sign or leading space is not a size: RFC 9112 §7.1),
                    // whitespace allowed before an extension.
                    let hex = hex.trim_ascii_end();
                    let size = (!hex.is_empty()
                        && hex.len() <= 16
                        && hex.iter().all(u8::is_ascii_hexdigit))
                    .then(|| std::str::from_utf8(hex).ok())
                    .flatten()
                    .and_then(|s| u64::from_str_radix(s, 16).ok())
                    .ok_or_else(|| HeadError::Invalid("chunk size".into()))?;
                    *self = if size == 0 {
                        Chunks::Trailers
                    } else {
                        Chunks::Data(size)
                    };
                }
                Chunks::Trailers => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(Decoded::More);
                    };
                    if line.is_empty() {
                        *self = Chunks::Done;
                    }
                }
            }
        }
    }
}

/// A CRLF-terminated line off the front of `buf` (without the CRLF).
fn take_line(buf: &mut BytesMut) -> Result<Option<Bytes>, HeadError> {
    match buf.windows(2).position(|w| w == b"\r\n") {
        Some(i) => {
            let line = buf.split_to(i).freeze();
            buf.advance(2);
            Ok(Some(line))
        }
        None if buf.len() > 4096 => Err(HeadError::Invalid("chunk line too long".into())),
        None => Ok(None),
    }
}

/// `data` as one chunk of a chunked body (size line, data, CRLF).
pub fn chunk(data: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The end of a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// What is left of a body being read from a connection, by its framing.
#[derive(Debug)]
pub(crate) enum Left {
    Bytes(u64),
    Chunks(Chunks),
    /// Until the peer closes the connection (answers only).
    UntilClose,
}

/// Who sends a body, for what a reader of it says and how long it waits mid-body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer {
    pub name: &'static str,
    /// How long the peer may send nothing mid-body.
    pub patience: std::time::Duration,
}

/// How many bytes a read asks for at least.
const READ_CHUNK: usize = 8 * 1024;

/// A body read from a connection, piece by piece, by its framing — the same for an answer on
/// the client's pooled connection and a request on the server's: what is left, and the timer
/// for a peer that goes quiet mid-body. The connection's buffer and reading side stay with
/// their owner.
pub(crate) struct BodyReader {
    pub left: Left,
    peer: Peer,
    /// Set at the first read that has to wait, pushed back by every read that brings bytes.
    quiet: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl BodyReader {
    pub(crate) fn new(left: Left, peer: Peer) -> BodyReader {
        BodyReader {
            left,
            peer,
            quiet: None,
        }
    }

    /// The body has been read to its end (a body until close ends with the connection).
    pub(crate) fn done(&self) -> bool {
        match &self.left {
            Left::Bytes(n) => *n == 0,
            Left::Chunks(c) => *c == Chunks::Done,
            Left::UntilClose => false,
        }
    }

    /// The next piece of the body: from `buf` when it is there, else read from `rd` into it.
    /// `Ok(None)`: the body has ended (for a body until close: the peer closed).
    pub(crate) fn poll_piece<R: tokio::io::AsyncRead + Unpin>(
        &mut self,
        rd: &mut R,
        buf: &mut BytesMut,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<Option<Bytes>>> {
        use std::io::{Error, ErrorKind};
        use std::task::Poll;
        loop {
            let piece = match &mut self.left {
                Left::Bytes(0) => return Poll::Ready(Ok(None)),
                Left::Bytes(left) if !buf.is_empty() => {
                    let n = (*left).min(buf.len() as u64);
                    *left -= n;
                    Some(buf.split_to(n as usize).freeze())
                }
                Left::Chunks(c) => match c.decode(buf) {
                    Ok(Decoded::Data(d)) => Some(d),
                    Ok(Decoded::Done) => return Poll::Ready(Ok(None)),
                    Ok(Decoded::More) => None,
                    Err(e) => return Poll::Ready(Err(Error::other(e))),
                },
                Left::UntilClose if !buf.is_empty() => Some(buf.split().freeze()),
                Left::Bytes(_) | Left::UntilClose => None,
            };
            if let Some(data) = piece {
                return Poll::Ready(Ok(Some(data)));
            }
            let read = match poll_read_buf(rd, buf, cx) {
                Poll::Ready(r) => r,
                Poll::Pending => {
                    let patience = self.peer.patience;
                    let quiet = self
                        .quiet
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(patience)));
                    if std::future::Future::poll(quiet.as_mut(), cx).is_ready() {
                        let why = format!(
                            "the {} sent nothing more of the body for {} s",
                            self.peer.name,
                            patience.as_secs()
                        );
                        return Poll::Ready(Err(Error::new(ErrorKind::TimedOut, why)));
                    }
                    return Poll::Pending;
                }
            };
            match read {
                Err(e) => return Poll::Ready(Err(e)),
                Ok(0) if matches!(self.left, Left::UntilClose) => return Poll::Ready(Ok(None)),
                Ok(0) => {
                    let why = format!("the {} closed the connection mid-body", self.peer.name);
                    return Poll::Ready(Err(Error::new(ErrorKind::UnexpectedEof, why)));
                }
                Ok(_) => {
                    if let Some(q) = self.quiet.as_mut() {
                        q.as_mut()
                            .reset(tokio::time::Instant::now() + self.peer.patience);
                    }
                }
            }
        }
    }
}

/// Reads into `buf`'s spare room (made if short) through tokio's `AsyncRead`, which also
/// forgets the socket's readiness after a read that did not fill the room: the next poll
/// waits for the peer instead of asking the kernel once more for nothing.
pub(crate) fn poll_read_buf<R: tokio::io::AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    cx: &mut std::task::Context<'_>,
) -> std::task::Poll<std::io::Result<usize>> {
    use std::future::Future;
    use tokio::io::AsyncReadExt;
    if buf.capacity() - buf.len() < READ_CHUNK / 2 {
        buf.reserve(READ_CHUNK);
    }
    std::pin::pin!(rd.read_buf(buf)).poll(cx)
}

/// Where each header's name and value are in a head, as offsets from its start: the parser's
/// slices borrow the read buffer, which is split off before the header map is made. On the
/// stack (an allocation costs more than clearing it).
pub(crate) type Offsets = [(u32, u32, u32, u32); MAX_HEADERS];

pub(crate) const NO_OFFSETS: Offsets = [(0, 0, 0, 0); MAX_HEADERS];

/// Fills `found` with the offsets of `headers`, slices of a buffer starting at address `base`;
/// returns how many there are.
pub(crate) fn offsets(headers: &[httparse::Header<'_>], base: usize, found: &mut Offsets) -> usize {
    for (slot, h) in found.iter_mut().zip(headers) {
        let name = (h.name.as_ptr() as usize - base) as u32;
        let value = (h.value.as_ptr() as usize - base) as u32;
        *slot = (
            name,
            name + h.name.len() as u32,
            value,
            value + h.value.len() as u32,
        );
    }
    headers.len()
}

/// A message's headers as a map (values sharing the head's bytes), with what its framing and
/// the connection's reuse depend on. The same for requests and responses.
pub(crate) struct HeaderBlock {
    pub headers: HeaderMap,
    /// A transfer coding was named; `chunked`: chunked was the last.
    pub coded: bool,
    pub chunked: bool,
    pub length: Option<u64>,
    /// `Connection: close` / `keep-alive`.
    pub close: bool,
    pub keep: bool,
    /// `Expect: 100-continue`.
    pub continue_expected: bool,
}

/// The headers that frame a message or decide the connection's reuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framer {
    TransferEncoding,
    ContentLength,
    Connection,
    Expect,
}

impl Framer {
    fn of(name: &HeaderName) -> Option<Framer> {
        use http::header::{CONNECTION, CONTENT_LENGTH, EXPECT, TRANSFER_ENCODING};
        if *name == TRANSFER_ENCODING {
            Some(Framer::TransferEncoding)
        } else if *name == CONTENT_LENGTH {
            Some(Framer::ContentLength)
        } else if *name == CONNECTION {
            Some(Framer::Connection)
        } else if *name == EXPECT {
            Some(Framer::Expect)
        } else {
            None
        }
    }
}

/// What a header of an answer is to a proxy passing it on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Read for the framing; passed on only as a HEAD's or 304's length.
    Framer(Framer),
    /// Hop-by-hop (RFC 9110 §7.6.1, `Proxy-Connection` included), or `X-Trace-ID`, which the
    /// proxy sets itself: not passed on.
    HopByHop,
    Date,
    Other,
}

impl Role {
    /// The role of a name as sent (any case); by its length first, as most are none of these.
    fn of(name: &[u8]) -> Role {
        let is = |n: &[u8]| name.eq_ignore_ascii_case(n);
        if is(b"connection") {
            Role::Framer(Framer::Connection)
        } else if is(b"content-length") {
            Role::Framer(Framer::ContentLength)
        } else if is(b"transfer-encoding") {
            Role::Framer(Framer::TransferEncoding)
        } else if is(b"date") {
            Role::Date
        } else if is(b"x-trace-id") || super::headers::is_hop_by_hop(name) {
            Role::HopByHop
        } else {
            Role::Other
        }
    }
}

/// The tokens of a comma-separated value, trimmed, empty ones left out.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|c| *c == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// Appends the header line `name: value`.
pub(crate) fn put_header(out: &mut impl bytes::BufMut, name: &[u8], value: &[u8]) {
    out.put_slice(name);
    out.put_slice(b": ");
    out.put_slice(value);
    out.put_slice(b"\r\n");
}

impl HeaderBlock {
    fn new(headers: HeaderMap) -> HeaderBlock {
        HeaderBlock {
            headers,
            coded: false,
            chunked: false,
            length: None,
            close: false,
            keep: false,
            continue_expected: false,
        }
    }

    /// Takes note of a framing header's value.
    fn note(&mut self, framer: Framer, value: &[u8]) -> Result<(), String> {
        let text = || std::str::from_utf8(value).unwrap_or_default();
        match framer {
            Framer::TransferEncoding => {
                self.coded = true;
                self.chunked = text()
                    .rsplit(',')
                    .next()
                    .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
            }
            Framer::ContentLength => {
                let n = content_length(value).ok_or("content-length")?;
                if self.length.is_some_and(|l| l != n) {
                    return Err("two different content-lengths".into());
                }
                self.length = Some(n);
            }
            Framer::Connection => {
                let tokens = || text().split(',').map(str::trim);
                self.close |= tokens().any(|t| t.eq_ignore_ascii_case("close"));
                self.keep |= tokens().any(|t| t.eq_ignore_ascii_case("keep-alive"));
            }
            Framer::Expect => {
                self.continue_expected = value.eq_ignore_ascii_case(b"100-continue");
            }
        }
        Ok(())
    }

    /// The headers at `found` in `head`. `Err`: what is malformed.
    pub(crate) fn read(
        head: &Bytes,
        found: &[(u32, u32, u32, u32)],
        names: &mut Names,
    ) -> Result<HeaderBlock, String> {
        let mut b = HeaderBlock::new(HeaderMap::with_capacity(found.len()));
        for (i, &(ns, ne, vs, ve)) in found.iter().enumerate() {
            let name = names
                .name(i, &head[ns as usize..ne as usize])
                .map_err(|_| "a header name".to_string())?;
            let value = HeaderValue::from_maybe_shared(head.slice(vs as usize..ve as usize))
                .map_err(|_| format!("the value of {name}"))?;
            if let Some(framer) = Framer::of(&name) {
                b.note(framer, value.as_bytes())?;
            }
            b.headers.append(name, value);
        }
        Ok(b)
    }

    /// The framing of the headers at `found` in `head`, with no map, and the lines a proxy
    /// passes on ([`Forwarded`]); `length_passes`: a content-length is among them (an answer
    /// without a body). httparse has checked the names and values already.
    pub(crate) fn forward(
        head: &Bytes,
        found: &[(u32, u32, u32, u32)],
        length_passes: bool,
    ) -> (Result<HeaderBlock, String>, Forwarded) {
        let at = |(s, e): (u32, u32)| &head[s as usize..e as usize];
        let mut b = HeaderBlock::new(HeaderMap::new());
        // Room for what the proxy adds (its X-Trace-ID) without growing.
        let mut out = BytesMut::with_capacity(head.len() + 64);
        let mut f = Forwarded::default();
        // A Connection header that names headers to drop (beyond close and keep-alive).
        let mut names_others = false;
        for &(ns, ne, vs, ve) in found {
            let (name, value) = (at((ns, ne)), at((vs, ve)));
            let passes = match Role::of(name) {
                Role::Framer(framer) => {
                    if let Err(e) = b.note(framer, value) {
                        return (Err(e), Forwarded::default());
                    }
                    names_others |= framer == Framer::Connection
                        && tokens(value).any(|t| {
                            !t.eq_ignore_ascii_case(b"close")
                                && !t.eq_ignore_ascii_case(b"keep-alive")
                        });
                    let length = framer == Framer::ContentLength && length_passes;
                    f.length |= length;
                    length
                }
                Role::HopByHop => false,
                Role::Date => {
                    f.date = true;
                    true
                }
                Role::Other => true,
            };
            if passes {
                put_header(&mut out, name, value);
            }
        }
        if names_others {
            // Rare: again, without the headers Connection names.
            out.clear();
            let named = |name: &[u8]| {
                found.iter().any(|&(ns, ne, vs, ve)| {
                    Role::of(at((ns, ne))) == Role::Framer(Framer::Connection)
                        && tokens(at((vs, ve))).any(|t| t.eq_ignore_ascii_case(name))
                })
            };
            f.date = false;
            for &(ns, ne, vs, ve) in found {
                let (name, value) = (at((ns, ne)), at((vs, ve)));
                let passes = match Role::of(name) {
                    Role::Framer(framer) => framer == Framer::ContentLength && length_passes,
                    Role::HopByHop => false,
                    Role::Date | Role::Other => true,
                };
                if passes && !named(name) {
                    f.date |= Role::of(name) == Role::Date;
                    put_header(&mut out, name, value);
                }
            }
        }
        f.lines = out;
        (Ok(b), f)
    }
}

/// The header names a connection's peer sent last, by position, as it spelled them: a peer
/// sends the same names in the same order message after message, and comparing bytes costs
/// less than making a name.
#[derive(Debug, Default)]
pub struct Names {
    last: Vec<(Spelled, HeaderName)>,
}

/// How many positions are remembered, and the longest spelling remembered.
const REMEMBERED_NAMES: usize = 16;
const SPELLED_MAX: usize = 30;

#[derive(Debug)]
struct Spelled {
    len: u8,
    bytes: [u8; SPELLED_MAX],
}

impl Spelled {
    fn of(raw: &[u8]) -> Option<Spelled> {
        let mut bytes = [0; SPELLED_MAX];
        bytes.get_mut(..raw.len())?.copy_from_slice(raw);
        Some(Spelled {
            len: raw.len() as u8,
            bytes,
        })
    }

    fn is(&self, raw: &[u8]) -> bool {
        &self.bytes[..self.len as usize] == raw
    }
}

impl Names {
    /// The name of the `i`-th header, spelled `raw`.
    pub fn name(
        &mut self,
        i: usize,
        raw: &[u8],
    ) -> Result<HeaderName, http::header::InvalidHeaderName> {
        if let Some((spelled, name)) = self.last.get(i)
            && spelled.is(raw)
        {
            return Ok(name.clone());
        }
        let name = HeaderName::from_bytes(raw)?;
        if let Some(spelled) = Spelled::of(raw) {
            if i < self.last.len() {
                self.last[i] = (spelled, name.clone());
            } else if i == self.last.len() && i < REMEMBERED_NAMES {
                self.last.push((spelled, name.clone()));
            }
        }
        Ok(name)
    }
}

/// A `Content-Length` value: decimal digits only (RFC 9110 §8.6; a sign, or a list, is not a
/// length).
pub(crate) fn content_length(v: &[u8]) -> Option<u64> {
    let v = v.trim_ascii();
    if v.is_empty() {
        return None;
    }
    v.iter().try_fold(0u64, |n, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_names_follow_what_the_peer_sends() {
        let mut names = Names::default();
        let mut b = BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Type: a\r\nX-One: 1\r\n\r\n"[..]);
        let first = read_head(&mut b, &Method::GET, &mut names, false)
            .unwrap()
            .unwrap();
        let mut b = BytesMut::from(&b"HTTP/1.1 200 OK\r\nX-Two: 2\r\ncontent-type: b\r\n\r\n"[..]);
        let second = read_head(&mut b, &Method::GET, &mut names, false)
            .unwrap()
            .unwrap();
        let keys = |h: &Head| h.headers.keys().map(|k| k.to_string()).collect::<Vec<_>>();
        assert_eq!(keys(&first), ["content-type", "x-one"]);
        assert_eq!(keys(&second), ["x-two", "content-type"]);
        assert_eq!(second.headers["content-type"], "b");
        assert!(second.headers.get("x-one").is_none());
    }

    /// The head read into a map; read for forwarding too, it must frame the same way.
    fn head(raw: &str, method: Method) -> Result<Option<Head>, HeadError> {
        let read = |forward| {
            let mut b = BytesMut::from(raw.as_bytes());
            read_head(&mut b, &method, &mut Names::default(), forward)
        };
        let (mapped, forwarded) = (read(false), read(true));
        let framing = |h: &Result<Option<Head>, HeadError>| match h {
            Ok(Some(h)) => Ok(Some((h.status, h.framing, h.keep_alive))),
            Ok(None) => Ok(None),
            Err(e) => Err(e.to_string()),
        };
        assert_eq!(framing(&mapped), framing(&forwarded), "{raw:?}");
        mapped
    }

    fn forwarded(raw: &str, method: Method) -> Forwarded {
        let mut b = BytesMut::from(raw.as_bytes());
        let h = read_head(&mut b, &method, &mut Names::default(), true)
            .unwrap()
            .unwrap();
        assert!(h.headers.is_empty());
        *h.forwarded.unwrap()
    }

    /// What a proxy passes on: the end-to-end lines as sent (names in their case), without the
    /// hop-by-hop ones, those `Connection` names, the framing and X-Trace-ID.
    #[test]
    fn forwarded_lines_leave_out_what_is_per_hop() {
        let f = forwarded(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\
             Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\n\
             X-Trace-ID: abc\r\nDate: Mon, 30 Nov 2026 10:00:00 GMT\r\nX-Kept:  two words\r\n\
             Transfer-Encoding: identity\r\nUpgrade: h2c\r\nTE: trailers\r\n\r\n{}",
            Method::GET,
        );
        assert_eq!(
            std::str::from_utf8(&f.lines).unwrap(),
            "Content-Type: application/json\r\nDate: Mon, 30 Nov 2026 10:00:00 GMT\r\n\
             X-Kept: two words\r\n"
        );
        assert!(f.date && !f.length);
        // HEAD and 304 answers keep the length of the full answer; a 204 has none.
        let f = forwarded("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", Method::HEAD);
        assert_eq!(&f.lines[..], b"content-length: 5\r\n");
        assert!(f.length && !f.date);
        let f = forwarded(
            "HTTP/1.1 304 Not Modified\r\ncontent-length: 5\r\n\r\n",
            Method::GET,
        );
        assert!(f.length);
        let f = forwarded(
            "HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n",
            Method::DELETE,
        );
        assert!(f.lines.is_empty() && !f.length);
    }

    #[test]
    fn a_request_head_carries_host_and_its_own_framing() {
        let mut h = HeaderMap::new();
        h.insert("x-trace-id", HeaderValue::from_static("abc"));
        h.insert("content-length", HeaderValue::from_static("999"));
        h.insert("host", HeaderValue::from_static("gateway:8080"));
        let mut out = Vec::new();
        write_head(
            &mut out,
            &Method::POST,
            "/users?x=1",
            &h,
            &HeaderValue::from_static("127.0.0.1:8081"),
            Sending::Length(12),
            None,
            None,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "POST /users?x=1 HTTP/1.1\r\nhost: 127.0.0.1:8081\r\nx-trace-id: abc\r\ncontent-length: 12\r\n\r\n"
        );
        // With the attempt's context, its trace headers replace any the caller passed on.
        h.insert("traceparent", HeaderValue::from_static("00-old-old-01"));
        let ctx = SpanContext {
            trace_id: crate::telemetry::TraceId(0xabc),
            span_id: SpanId(0x22),
            flags: crate::telemetry::context::SAMPLED,
        };
        let mut out = Vec::new();
        write_head(
            &mut out,
            &Method::GET,
            "/",
            &h,
            &HeaderValue::from_static("i:1"),
            Sending::None,
            Some((ctx, SpanId(0x11))),
            None,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET / HTTP/1.1\r\nhost: i:1\r\n\
             traceparent: 00-00000000000000000000000000000abc-0000000000000022-01\r\n\
             x-trace-id: 00000000000000000000000000000abc\r\n\
             x-span-id: 0000000000000022\r\nx-parent-id: 0000000000000011\r\n\r\n"
        );
        // A proxy's client joins what earlier proxies said, on one line.
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        h.append("x-forwarded-for", HeaderValue::from_static("10.0.0.2"));
        h.insert("accept", HeaderValue::from_static("*/*"));
        let client = HeaderValue::from_static("127.0.0.9");
        let mut out = Vec::new();
        let host = HeaderValue::from_static("i:1");
        let head = |h: &HeaderMap, out: &mut Vec<u8>| {
            out.clear();
            write_head(
                out,
                &Method::GET,
                "/",
                h,
                &host,
                Sending::None,
                None,
                Some(&client),
            );
            String::from_utf8(out.clone()).unwrap()
        };
        assert_eq!(
            head(&h, &mut out),
            "GET / HTTP/1.1\r\nhost: i:1\r\naccept: */*\r\n\
             x-forwarded-for: 10.0.0.1, 10.0.0.2, 127.0.0.9\r\n\r\n"
        );
        h.remove("x-forwarded-for");
        assert_eq!(
            head(&h, &mut out),
            "GET / HTTP/1.1\r\nhost: i:1\r\naccept: */*\r\nx-forwarded-for: 127.0.0.9\r\n\r\n"
        );
    }

    #[test]
    fn response_heads_and_their_framing() {
        let h = head(
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (h.status, h.framing, h.keep_alive),
            (StatusCode::OK, Framing::Length(5), true)
        );
        let h = head(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.framing, Framing::Chunked);
        let h = head(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (h.framing, h.keep_alive),
            (Framing::Chunked, false),
            "the coding wins over the length, and the connection is not kept"
        );
        let h = head(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\ncontent-length: 3\r\n\r\n",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        assert_eq!((h.framing, h.keep_alive), (Framing::UntilClose, false));
        let h = head(
            "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        assert!(!h.keep_alive);
        let h = head("HTTP/1.0 200 OK\r\n\r\n", Method::GET)
            .unwrap()
            .unwrap();
        assert_eq!((h.framing, h.keep_alive), (Framing::UntilClose, false));
        let h = head("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", Method::HEAD)
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::Length(0), "HEAD answers have no body");
        let h = head(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
            Method::PUT,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (h.status, h.framing),
            (StatusCode::NO_CONTENT, Framing::Length(0))
        );
        assert!(
            head("HTTP/1.1 200 OK\r\ncontent-len", Method::GET)
                .unwrap()
                .is_none()
        );
        assert!(head("HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n", Method::GET).is_err());
        assert!(head("garbage\r\n\r\n", Method::GET).is_err());
    }

    #[test]
    fn chunked_bodies_decode_across_arbitrary_splits() {
        let raw = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nx-trailer: 1\r\n\r\n";
        for split in 0..raw.len() {
            let mut c = Chunks::default();
            let mut buf = BytesMut::new();
            let mut body = Vec::new();
            for part in [&raw[..split], &raw[split..]] {
                buf.extend_from_slice(part);
                while let Decoded::Data(d) = c.decode(&mut buf).unwrap() {
                    body.extend_from_slice(&d);
                }
            }
            assert_eq!(c, Chunks::Done, "split at {split}");
            assert_eq!(body, b"hello, world");
        }
        let mut bad = BytesMut::from(&b"zz\r\n"[..]);
        assert!(Chunks::default().decode(&mut bad).is_err());
    }
}
