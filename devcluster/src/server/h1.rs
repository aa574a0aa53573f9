//! The gateway's HTTP/1.1 connections, served without hyper: a request head read with
//! `httparse` (the parser hyper uses) into `http`'s types, its body read into memory first when
//! it is small (most requests have none) or streamed from the connection, the handler run on the
//! connection's own task, and the answer written — head and body together when the body is at
//! hand — in one write.
//!
//! Why not hyper's server connection: around the gateway's handler it cost ~8 k instructions a
//! proxied request in the shared benchmark (a quarter of the gateway's whole cost; nginx spends
//! 17 k on everything). The other listeners of the cluster (registry, config, admin, sample
//! services) serve their axum routers on it too (`server::RouterConnections`): at the traffic
//! generator's 100 req/s, hyper's connection cost as much as the routers it served.
//!
//! What it does as hyper does: keep-alive (HTTP/1.1 by default, HTTP/1.0 when asked), pipelined
//! requests answered in order, `Expect: 100-continue`, request bodies by length or chunked, answers
//! by length, chunked, or (HTTP/1.0) until close, no body after `HEAD`, 204 or 304, a `date`
//! header, 400 or 431 for a request it cannot read. A client that leaves while its request is
//! being handled (closes the connection) drops the handler, as hyper does. A connection that
//! waits [`IDLE`] for a request is closed; on a graceful stop, idle connections close at once and
//! busy ones after their answer.

use crate::client::http1::{
    BodyReader, Chunks, Forwarded, HeaderBlock, LAST_CHUNK, Left, MAX_HEADERS, NO_OFFSETS, Names,
    Peer, chunk, offsets, poll_read_buf, put_header,
};
use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, DATE, TRANSFER_ENCODING};
use http::{Method, StatusCode, Uri, Version};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use std::future::Future;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::watch;
use tokio::time::Sleep;

/// Largest request head accepted (431 beyond).
const MAX_HEAD: usize = 64 * 1024;
/// A request body up to this size is read before the handler runs; a larger one streams.
const BUFFERED_BODY: u64 = 64 * 1024;
/// How long a connection may wait for (the rest of) a request head, and a body for its next
/// byte.
pub const IDLE: Duration = Duration::from_secs(60);
/// How much of a pipelined next request is read while the current one is handled.
const MAX_AHEAD: usize = 64 * 1024;
/// An answer's body up to this size goes out with its head, in one write.
const INLINE_BODY: usize = 16 * 1024;
/// How much a read asks for at least.
const READ_CHUNK: usize = 8 * 1024;
/// How long, and how much of an unread body, a connection drains after answering early.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 32 << 20;

/// What serves the requests of a connection.
pub trait Handler: Send + Sync + 'static {
    type Body: HttpBody<Data = Bytes> + Send;
    fn call(
        &self,
        req: http::Request<Inbound>,
    ) -> impl Future<Output = http::Response<Self::Body>> + Send + '_;

    /// Header lines that come with an answer as another server wrote them (a proxy's
    /// answer), written after the answer's own headers.
    fn forwarded(_body: &mut Self::Body) -> Option<Box<Forwarded>> {
        None
    }
}

/// Serves the requests that come on `stream` with `handler` until the client closes it, it
/// stays idle for [`IDLE`], or `stop` turns true.
pub async fn serve<H: Handler>(stream: TcpStream, stop: watch::Receiver<bool>, handler: H)
where
    <H::Body as HttpBody>::Error: std::fmt::Display,
{
    let mut stopping = stop.clone();
    let (rd, wr) = stream.into_split();
    let mut conn = Conn {
        rd: Some(rd),
        wr,
        buf: BytesMut::with_capacity(READ_CHUNK),
        out: Vec::with_capacity(1024),
        names: Names::default(),
        idle: None,
        stopped: Box::pin(async move {
            let _ = stopping.wait_for(|v| *v).await;
        }),
    };
    loop {
        let head = match conn.read_head(&stop).await {
            Ok(Some(head)) => head,
            Ok(None) => return,
            Err(refusal) => {
                let _ = conn.refuse(refusal).await;
                return;
            }
        };
        let Head {
            parts,
            framing,
            keep_alive,
            continue_expected,
        } = head;
        let (is_head, version) = (parts.method == Method::HEAD, parts.version);
        let (body, back) = match conn.body(framing, continue_expected).await {
            Ok(b) => b,
            Err(Some(refusal)) => {
                let _ = conn.refuse(refusal).await;
                return;
            }
            Err(None) => return,
        };
        let mut answer = {
            // Pinned where it is made: the handler's future is kilobytes (a whole proxied
            // call), and every move of it is a copy.
            let mut call = std::pin::pin!(handler.call(http::Request::from_parts(parts, body)));
            match &back {
                // The body streams from the connection: whoever reads it sees a close.
                Some(_) => call.await,
                None => match conn.while_handled(call.as_mut()).await {
                    Some(a) => a,
                    None => return, // the client left: its request is dropped with it
                },
            }
        };
        // A streamed body not read to its end leaves the connection unusable.
        let (finished, unread) = match back {
            Some(slot) => match slot.lock().unwrap_or_else(|e| e.into_inner()).take() {
                Some(Returned::Finished(rd, rest)) => {
                    conn.rd = Some(rd);
                    conn.buf = rest;
                    (true, None)
                }
                Some(Returned::Unfinished(rd)) => (false, Some(rd)),
                None => (false, None),
            },
            None => (true, None),
        };
        let keep = keep_alive && finished && !*stop.borrow();
        let forwarded = H::forwarded(answer.body_mut());
        match conn
            .respond(answer, forwarded, is_head, version, keep)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                if let Some(rd) = unread {
                    conn.linger(rd).await;
                }
                return;
            }
            Err(_) => return,
        }
    }
}

/// One client connection: what was read and not yet used, and the buffer answers are written
/// from.
struct Conn {
    /// The reading side; lent to a request body that streams, and back once it is read.
    rd: Option<OwnedReadHalf>,
    wr: OwnedWriteHalf,
    buf: BytesMut,
    out: Vec<u8>,
    /// The header names the client sent last.
    names: Names,
    /// Ends a wait for a request; reset at most every half [`IDLE`] (a timer reset per request
    /// would cost more than the rest of the wait).
    idle: Option<Pin<Box<Sleep>>>,
    /// Ends when the server stops: made once for the connection (a wait on the server's stop
    /// signal made per request would register and unregister a waiter each time). Polled only
    /// between requests, and never again once it has ended (the connection closes then).
    stopped: Pin<Box<dyn Future<Output = ()> + Send>>,
}

/// A request's head, read.
struct Head {
    parts: http::request::Parts,
    framing: In,
    keep_alive: bool,
    continue_expected: bool,
}

/// How a request's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum In {
    Length(u64),
    Chunked,
}

/// A request the connection cannot serve: answered with `status` and closed.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    why: String,
}

fn bad(why: impl Into<String>) -> Refusal {
    Refusal {
        status: StatusCode::BAD_REQUEST,
        why: why.into(),
    }
}

fn too_large() -> Refusal {
    Refusal {
        status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        why: format!(
            "request head larger than {MAX_HEAD} bytes or with more than {MAX_HEADERS} headers"
        ),
    }
}

/// What [`Conn::read_more`] came to.
enum Read {
    Got,
    /// The client closed the connection (or it failed), it stayed idle, or the server stops.
    Closed,
}

impl Conn {
    /// Reads more of what the client sends: waits until something comes, the client closes
    /// the connection, it has waited [`IDLE`], or (when `watch_stop`) the server stops.
    async fn read_more(&mut self, watch_stop: bool) -> Read {
        let now = crate::telemetry::path::now();
        match &mut self.idle {
            Some(s) if s.deadline() > now + IDLE / 2 => {}
            Some(s) => s.as_mut().reset(now + IDLE),
            None => self.idle = Some(Box::pin(tokio::time::sleep_until(now + IDLE))),
        }
        let Conn {
            rd,
            buf,
            idle,
            stopped,
            ..
        } = self;
        let (Some(rd), Some(idle)) = (rd.as_mut(), idle.as_mut()) else {
            return Read::Closed;
        };
        std::future::poll_fn(|cx| {
            match poll_read_buf(rd, buf, cx) {
                Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(Read::Closed),
                Poll::Ready(Ok(_)) => return Poll::Ready(Read::Got),
                Poll::Pending => {}
            }
            if idle.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Read::Closed);
            }
            if watch_stop && stopped.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Read::Closed);
            }
            Poll::Pending
        })
        .await
    }

    /// The next request's head. `None`: the client closed the connection between requests,
    /// it stayed idle, or the server is stopping.
    async fn read_head(&mut self, stop: &watch::Receiver<bool>) -> Result<Option<Head>, Refusal> {
        loop {
            if !self.buf.is_empty()
                && let Some(head) = parse_head(&mut self.buf, &mut self.names)?
            {
                return Ok(Some(head));
            }
            let idle = self.buf.is_empty();
            if idle && *stop.borrow() {
                return Ok(None);
            }
            if let Read::Closed = self.read_more(idle).await {
                return Ok(None);
            }
        }
    }

    /// The request's body: in memory when small, else streaming from the connection (with the
    /// slot it hands the connection's unread bytes back through once read to the end).
    /// `Err(None)`: the client left.
    async fn body(
        &mut self,
        framing: In,
        continue_expected: bool,
    ) -> Result<(Inbound, Option<Back>), Option<Refusal>> {
        match framing {
            In::Length(0) => Ok((Inbound::empty(), None)),
            In::Length(n) if n <= BUFFERED_BODY => {
                if continue_expected && (self.buf.len() as u64) < n {
                    self.write_continue().await.map_err(|_| None)?;
                }
                while (self.buf.len() as u64) < n {
                    if let Read::Closed = self.read_more(false).await {
                        return Err(None);
                    }
                }
                let data = self.buf.split_to(n as usize).freeze();
                Ok((
                    Inbound {
                        state: InState::Whole(Some(data)),
                    },
                    None,
                ))
            }
            framing => {
                if continue_expected {
                    self.write_continue().await.map_err(|_| None)?;
                }
                let back = Arc::new(Mutex::new(None));
                let Some(rd) = self.rd.take() else {
                    return Err(None);
                };
                let reading = Reading {
                    rd: Some(rd),
                    buf: std::mem::take(&mut self.buf),
                    reader: BodyReader::new(
                        match framing {
                            In::Length(n) => Left::Bytes(n),
                            In::Chunked => Left::Chunks(Chunks::default()),
                        },
                        CLIENT,
                    ),
                    back: back.clone(),
                    done: false,
                };
                Ok((
                    Inbound {
                        state: InState::Stream(Box::new(reading)),
                    },
                    Some(back),
                ))
            }
        }
    }

    /// Runs `call` to its answer while watching the connection: bytes of a pipelined next
    /// request are kept; a close means the client left (`None`, and the call is dropped).
    async fn while_handled<F: Future>(&mut self, mut call: Pin<&mut F>) -> Option<F::Output> {
        std::future::poll_fn(|cx| {
            if let Poll::Ready(answer) = call.as_mut().poll(cx) {
                return Poll::Ready(Some(answer));
            }
            let Some(rd) = self.rd.as_mut() else {
                return Poll::Pending;
            };
            while self.buf.len() < MAX_AHEAD {
                match poll_read_buf(rd, &mut self.buf, cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(None),
                    Poll::Ready(Ok(_)) => {}
                }
            }
            Poll::Pending
        })
        .await
    }

    async fn write_continue(&mut self) -> std::io::Result<()> {
        write_all(&self.wr, b"HTTP/1.1 100 Continue\r\n\r\n").await
    }

    /// Writes the answer; `Ok(true)`: the connection can carry another request.
    async fn respond<B>(
        &mut self,
        answer: http::Response<B>,
        forwarded: Option<Box<Forwarded>>,
        is_head: bool,
        version: Version,
        mut keep: bool,
    ) -> std::io::Result<bool>
    where
        B: HttpBody<Data = Bytes>,
        B::Error: std::fmt::Display,
    {
        let (parts, body) = answer.into_parts();
        let status = parts.status;
        let no_body = is_head
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        // A HEAD or 304 answer keeps the length the full answer would have had.
        let length_passes = is_head || status == StatusCode::NOT_MODIFIED;
        let http10 = version == Version::HTTP_10;
        let framing = if no_body {
            Out::None
        } else if let Some(n) = body.size_hint().exact() {
            Out::Length(n)
        } else if !http10 {
            Out::Chunked
        } else {
            keep = false;
            Out::UntilClose
        };
        let out = &mut self.out;
        out.clear();
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(status.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
        out.extend_from_slice(b"\r\n");
        let (mut dated, mut sized) = (false, false);
        for (name, value) in &parts.headers {
            if *name == CONNECTION
                || *name == TRANSFER_ENCODING
                || (*name == CONTENT_LENGTH && !length_passes)
            {
                continue;
            }
            dated |= *name == DATE;
            sized |= *name == CONTENT_LENGTH;
            put_header(out, name.as_str().as_bytes(), value.as_bytes());
        }
        if let Some(f) = forwarded {
            out.extend_from_slice(&f.lines);
            dated |= f.date;
            sized |= f.length;
        }
        if !dated {
            put_header(out, b"date", &date());
        }
        // HEAD: the length the GET would have had, when the body knows it (as hyper does).
        if is_head
            && !sized
            && let Some(n) = body.size_hint().exact()
        {
            put_header(out, b"content-length", digits(n, &mut [0; 20]));
        }
        match framing {
            Out::Length(n) => put_header(out, b"content-length", digits(n, &mut [0; 20])),
            Out::Chunked => put_header(out, b"transfer-encoding", b"chunked"),
            Out::None | Out::UntilClose => {}
        }
        if !keep {
            put_header(out, b"connection", b"close");
        } else if http10 {
            put_header(out, b"connection", b"keep-alive");
        }
        out.extend_from_slice(b"\r\n");
        if no_body {
            write_all(&self.wr, &self.out).await?;
            return Ok(keep);
        }
        let mut body = std::pin::pin!(body);
        let mut sent = 0u64;
        loop {
            // What the body has now goes out with what is already waiting; before waiting for
            // more, what is waiting goes out.
            let frame =
                match std::future::poll_fn(|cx| Poll::Ready(body.as_mut().poll_frame(cx))).await {
                    Poll::Ready(f) => f,
                    Poll::Pending => {
                        if !self.out.is_empty() {
                            write_all(&self.wr, &self.out).await?;
                            self.out.clear();
                        }
                        std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await
                    }
                };
            let data = match frame {
                None => break,
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(d) if !d.is_empty() => d,
                    _ => continue, // trailers are not forwarded; an empty frame says nothing
                },
                Some(Err(e)) => {
                    // The head is out: the only way left to say the body broke is to close.
                    if !self.out.is_empty() {
                        let _ = write_all(&self.wr, &self.out).await;
                    }
                    tracing::debug!(error = %e, "answer body failed mid-way");
                    return Ok(false);
                }
            };
            sent += data.len() as u64;
            if framing == Out::Chunked {
                chunk(&data, &mut self.out);
            } else if self.out.len() + data.len() <= INLINE_BODY {
                self.out.extend_from_slice(&data);
            } else {
                if !self.out.is_empty() {
                    write_all(&self.wr, &self.out).await?;
                    self.out.clear();
                }
                write_all(&self.wr, &data).await?;
            }
            if self.out.len() >= INLINE_BODY {
                write_all(&self.wr, &self.out).await?;
                self.out.clear();
            }
        }
        if framing == Out::Chunked {
            self.out.extend_from_slice(LAST_CHUNK);
        }
        if !self.out.is_empty() {
            write_all(&self.wr, &self.out).await?;
        }
        // A body shorter or longer than it said: the client cannot tell where the next answer
        // starts.
        Ok(keep && !matches!(framing, Out::Length(n) if n != sent))
    }

    /// After answering before the request's body was read: says no more will be written, then
    /// reads and drops what the client still sends, for a while. Closed at once, the socket
    /// would reset, and a client still writing its body would lose the answer (a proxy in
    /// front would turn a 413 into a 502).
    async fn linger(&mut self, mut rd: OwnedReadHalf) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let _ = self.wr.shutdown().await;
        let mut sink = vec![0u8; 64 * 1024];
        let mut left = LINGER_BYTES;
        let _ = tokio::time::timeout(LINGER, async {
            while left > 0 {
                match rd.read(&mut sink).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => left = left.saturating_sub(n),
                }
            }
        })
        .await;
    }

    /// Answers a request the connection cannot read, and closes.
    async fn refuse(&mut self, r: Refusal) -> std::io::Result<()> {
        let body = serde_json::json!({ "error": r.why }).to_string();
        let mut out = Vec::with_capacity(160 + body.len());
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(r.status.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(r.status.canonical_reason().unwrap_or("").as_bytes());
        out.extend_from_slice(b"\r\n");
        put_header(&mut out, b"content-type", b"application/json");
        put_header(
            &mut out,
            b"content-length",
            body.len().to_string().as_bytes(),
        );
        put_header(&mut out, b"date", &date());
        put_header(&mut out, b"connection", b"close");
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body.as_bytes());
        write_all(&self.wr, &out).await
    }
}

/// How an answer's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Out {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// `n` in decimal, written into the end of `room`.
fn digits(mut n: u64, room: &mut [u8; 20]) -> &[u8] {
    let mut at = room.len();
    loop {
        at -= 1;
        room[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &room[at..];
        }
    }
}

/// Writes all of `bytes`, waiting for room when the socket's buffer is full.
async fn write_all(io: &OwnedWriteHalf, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        match io.try_write(bytes) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => io.writable().await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The `date` header's value, formatted once a second per thread.
fn date() -> [u8; 29] {
    use std::cell::Cell;
    thread_local! {
        static CACHED: Cell<(u64, [u8; 29])> = const { Cell::new((0, [0; 29])) };
    }
    let secs = crate::telemetry::clock::unix_s();
    CACHED.with(|c| {
        let (at, text) = c.get();
        if at == secs {
            return text;
        }
        let mut text = [0u8; 29];
        let made = httpdate::fmt_http_date(std::time::UNIX_EPOCH + Duration::from_secs(secs));
        let n = made.len().min(29);
        text[..n].copy_from_slice(&made.as_bytes()[..n]);
        c.set((secs, text));
        text
    })
}

/// Parses a request head at the front of `buf`, consuming it. `None`: more bytes are needed.
fn parse_head(buf: &mut BytesMut, names: &mut Names) -> Result<Option<Head>, Refusal> {
    // Where the method, target and each header are, as offsets into the head.
    let mut found = NO_OFFSETS;
    let count;
    let base = buf.as_ptr() as usize;
    let (used, method, target, minor) = {
        let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut []);
        match httparse::ParserConfig::default()
            .parse_request_with_uninit_headers(&mut req, buf, &mut slots)
        {
            // However it arrived (in one read or many), a head is no larger than MAX_HEAD.
            Ok(httparse::Status::Complete(n)) if n > MAX_HEAD => return Err(too_large()),
            Ok(httparse::Status::Complete(n)) => {
                count = offsets(req.headers, base, &mut found);
                let span = |s: &str| {
                    let at = s.as_ptr() as usize - base;
                    (at, at + s.len())
                };
                (
                    n,
                    span(req.method.unwrap_or_default()),
                    span(req.path.unwrap_or_default()),
                    req.version.unwrap_or(1),
                )
            }
            Ok(httparse::Status::Partial) => {
                return if buf.len() > MAX_HEAD {
                    Err(too_large())
                } else {
                    Ok(None)
                };
            }
            Err(httparse::Error::TooManyHeaders) => return Err(too_large()),
            Err(e) => return Err(bad(format!("malformed request: {e}"))),
        }
    };
    let head = buf.split_to(used).freeze();
    let method = Method::from_bytes(&head[method.0..method.1])
        .map_err(|_| bad("malformed request: method"))?;
    let uri = Uri::from_maybe_shared(head.slice(target.0..target.1))
        .map_err(|_| bad("malformed request: target"))?;
    let version = if minor == 0 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let HeaderBlock {
        headers,
        coded,
        chunked,
        length,
        close,
        keep,
        continue_expected,
    } = HeaderBlock::read(&head, &found[..count], names)
        .map_err(|why| bad(format!("malformed request: {why}")))?;
    // RFC 9112 §6.3: a request's transfer coding must end in chunked, and wins over a length
    // (then the connection is not reused: a sender to be wary of).
    let framing = if coded {
        if !chunked {
            return Err(bad(
                "malformed request: a transfer coding other than chunked last",
            ));
        }
        In::Chunked
    } else {
        In::Length(length.unwrap_or(0))
    };
    // A length beside a transfer coding: a sender to be wary of, not kept.
    let suspicious = coded && length.is_some();
    let keep_alive = !close && !suspicious && (version == Version::HTTP_11 || keep);
    let mut parts = http::Request::new(()).into_parts().0;
    parts.method = method;
    parts.uri = uri;
    parts.version = version;
    parts.headers = headers;
    Ok(Some(Head {
        parts,
        framing,
        keep_alive,
        continue_expected: continue_expected && version == Version::HTTP_11,
    }))
}

/// A request's body: in memory, or streaming from the connection.
pub struct Inbound {
    state: InState,
}

enum InState {
    Whole(Option<Bytes>),
    Stream(Box<Reading>),
}

impl Inbound {
    fn empty() -> Inbound {
        Inbound {
            state: InState::Whole(None),
        }
    }
}

/// Where a streamed body hands the connection's reading side back: with the bytes read past
/// its end once read to it, or unfinished when dropped before (then only to drain the rest).
type Back = Arc<Mutex<Option<Returned>>>;

enum Returned {
    Finished(OwnedReadHalf, BytesMut),
    Unfinished(OwnedReadHalf),
}

/// A body being read from the connection.
struct Reading {
    /// `None` once handed back.
    rd: Option<OwnedReadHalf>,
    buf: BytesMut,
    reader: BodyReader,
    back: Back,
    done: bool,
}

/// The client, as a body's reader sees it: it may go quiet mid-body for [`IDLE`].
const CLIENT: Peer = Peer {
    name: "client",
    patience: IDLE,
};

impl Reading {
    fn finish(&mut self) {
        self.done = true;
        if let Some(rd) = self.rd.take() {
            *self.back.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(Returned::Finished(rd, std::mem::take(&mut self.buf)));
        }
    }

    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let Some(rd) = self.rd.as_mut() else {
            return Poll::Ready(None);
        };
        match std::task::ready!(self.reader.poll_piece(rd, &mut self.buf, cx)) {
            Ok(Some(data)) => {
                if self.reader.done() {
                    self.finish();
                }
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Ok(None) => {
                self.finish();
                Poll::Ready(None)
            }
            Err(e) => {
                self.done = true;
                Poll::Ready(Some(Err(e)))
            }
        }
    }
}

impl Drop for Reading {
    /// Left unread (an answer before the whole body came, a 413 say): the connection drains
    /// the rest after answering, so the client reads the answer instead of a reset.
    fn drop(&mut self) {
        if let Some(rd) = self.rd.take() {
            *self.back.lock().unwrap_or_else(|e| e.into_inner()) = Some(Returned::Unfinished(rd));
        }
    }
}

impl HttpBody for Inbound {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match &mut self.get_mut().state {
            InState::Whole(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            InState::Stream(r) => r.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.state {
            InState::Whole(b) => b.is_none(),
            InState::Stream(r) => r.done,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.state {
            InState::Whole(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            InState::Stream(r) => match r.reader.left {
                Left::Bytes(n) => SizeHint::with_exact(n),
                _ => SizeHint::default(),
            },
        }
    }
}
