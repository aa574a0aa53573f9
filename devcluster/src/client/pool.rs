//! The pooled connection, the bottom of the stack: HTTP/1.1 connections to each instance, kept
//! alive and reused, written and read by the task that makes the call.
//!
//! A request goes out in one write (head and a small body together); its answer is read on the
//! same task, and a small body that arrived with its head is handed over at once and the
//! connection goes straight back to its instance's idle list. A larger or chunked body streams
//! from the connection as the caller reads it, and the connection goes back once it is read to
//! the end. The bytes are hyper's: `httparse` and `http` (see [`super::http1`]).
//!
//! Written here rather than taken from hyper's client because that client drives each
//! connection from a task of its own, reached through channels: in the shared benchmark its
//! client connection cost half again the instructions of the proxying around it, and hyper-util's
//! pooled client a quarter more CPU per request than nginx. A request that could not have reached
//! the instance — no connection, or a reused one the instance had closed before answering a byte
//! (a request with a body held in memory, or none) — is sent once more on a new connection,
//! as Go's client does.

use super::http1::{self, Chunks, Decoded, Framing, Sending};
use super::request::{CallError, ReqBody, Resp};
use super::{BoxFuture, headers};
use crate::balance::members::Member;
use bytes::{Bytes, BytesMut};
use http::HeaderValue;
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Idle connections kept per instance.
const MAX_IDLE: usize = 256;
/// An idle connection older than this is closed rather than reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// A body up to this size is written with its head, in one write.
const INLINE_BODY: usize = 16 * 1024;
/// How much a read asks for at least.
const READ_CHUNK: usize = 8 * 1024;

/// An instance's address and port.
type HostKey = (Arc<str>, u16);

/// Every instance's connections.
#[derive(Default)]
pub struct Pool {
    hosts: RwLock<HashMap<HostKey, Arc<Host>, foldhash::fast::FixedState>>,
}

/// One instance's idle connections and its `Host` header.
pub struct Host {
    address: Arc<str>,
    port: u16,
    authority: HeaderValue,
    idle: Mutex<Vec<(Conn, Instant)>>,
}

/// What a request sends.
pub struct Outgoing<'a> {
    pub method: &'a http::Method,
    /// Origin-form: `/users/1?x=y`.
    pub target: &'a str,
    pub headers: &'a http::HeaderMap,
    pub body: ReqBody,
    /// The span the instance continues, and its parent.
    pub trace: Option<(crate::telemetry::SpanContext, crate::telemetry::SpanId)>,
}

/// An open connection and what was read from it beyond the last answer (nothing, normally).
struct Conn {
    stream: TcpStream,
    buf: BytesMut,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a request got no answer: it never left (no connection, or one closed before the request
/// could have been read), or the connection failed on the way.
#[derive(Debug)]
pub enum SendError {
    NotSent(BoxError),
    Failed(BoxError),
}

fn failed(e: impl Into<BoxError>) -> SendError {
    SendError::Failed(e.into())
}

impl Pool {
    pub fn new() -> Arc<Pool> {
        Arc::new(Pool::default())
    }

    /// The connections of `member`'s address.
    pub fn host(&self, member: &Member) -> Arc<Host> {
        let key = (member.address.clone(), member.port);
        if let Some(h) = self
            .hosts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return h.clone();
        }
        let authority = HeaderValue::from_str(&format!("{}:{}", member.address, member.port))
            .unwrap_or_else(|_| HeaderValue::from_static("localhost"));
        self.hosts
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_insert_with(|| {
                Arc::new(Host {
                    address: member.address.clone(),
                    port: member.port,
                    authority,
                    idle: Mutex::new(Vec::new()),
                })
            })
            .clone()
    }

    /// Idle connections across every instance (tests, the dashboard).
    pub fn idle(&self) -> usize {
        self.hosts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|h| h.idle.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }
}

/// Whether an idle connection is still open and quiet (the instance may have closed it).
fn usable(c: &Conn) -> bool {
    let mut probe = [0u8; 1];
    c.buf.is_empty()
        && matches!(c.stream.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

impl Host {
    /// The most recently used idle connection that is still open, if any.
    fn checkout(&self) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some((c, since)) = idle.pop() {
            if since.elapsed() <= IDLE_TIMEOUT && usable(&c) {
                return Some(c);
            }
        }
        None
    }

    async fn connect(&self) -> Result<Conn, SendError> {
        let stream = TcpStream::connect((&*self.address, self.port))
            .await
            .map_err(|e| SendError::NotSent(e.into()))?;
        let _ = stream.set_nodelay(true);
        Ok(Conn {
            stream,
            buf: BytesMut::with_capacity(READ_CHUNK),
        })
    }

    fn checkin(&self, c: Conn) {
        if !c.buf.is_empty() {
            return; // bytes nobody asked for: not a connection to trust again
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push((c, Instant::now()));
        }
    }

    /// Sends a request and returns the answer; its body streams from the connection, which
    /// goes back to the idle list once the body has been read.
    pub async fn send(
        self: Arc<Self>,
        out: Outgoing<'_>,
    ) -> Result<http::Response<PooledBody>, SendError> {
        let Outgoing {
            method,
            target,
            headers,
            body,
            trace,
        } = out;
        // What goes out: the head, and the body when it is in memory.
        let (sending, held, stream) = match body {
            ReqBody::Empty
                if matches!(
                    *method,
                    http::Method::POST | http::Method::PUT | http::Method::PATCH
                ) =>
            {
                (Sending::Length(0), None, None)
            }
            ReqBody::Empty => (Sending::None, None, None),
            ReqBody::Full(b) => {
                let b = b.unwrap_or_default();
                (Sending::Length(b.len() as u64), Some(b), None)
            }
            ReqBody::Stream(s) => match s.size_hint().exact() {
                Some(n) => (Sending::Length(n), None, Some(s)),
                None => (Sending::Chunked, None, Some(s)),
            },
        };
        let mut head =
            Vec::with_capacity(256 + held.as_ref().map_or(0, |b| b.len().min(INLINE_BODY)));
        http1::write_head(
            &mut head,
            method,
            target,
            headers,
            &self.authority,
            sending,
            trace,
        );
        let inline = held.as_ref().is_some_and(|b| b.len() <= INLINE_BODY);
        if inline && let Some(b) = &held {
            head.extend_from_slice(b);
        }
        let replayable = stream.is_none();
        let mut stream = stream;
        let mut reused = self.checkout();
        loop {
            let was_reused = reused.is_some();
            let mut conn = match reused.take() {
                Some(c) => c,
                None => self.connect().await?,
            };
            let sent = async {
                conn.stream.write_all(&head).await?;
                if !inline && let Some(b) = &held {
                    conn.stream.write_all(b).await?;
                }
                Ok::<(), std::io::Error>(())
            }
            .await;
            if let Err(e) = sent {
                if was_reused && replayable {
                    continue; // the instance closed it while idle: once more, on a new one
                }
                return Err(failed(e));
            }
            if let Some(body) = stream.take() {
                write_stream(&mut conn.stream, body, sending == Sending::Chunked).await?;
            }
            match read_head(&mut conn, method).await {
                Ok(head) => return Ok(self.answer(conn, head)),
                Err(ReadError::ClosedBeforeAnswer(_)) if was_reused && replayable => continue,
                Err(ReadError::ClosedBeforeAnswer(e)) | Err(ReadError::Other(e)) => {
                    return Err(failed(e));
                }
            }
        }
    }

    /// The response for `head`, its body taken from `conn` (at once, when it is all there).
    fn answer(self: &Arc<Self>, mut conn: Conn, head: http1::Head) -> http::Response<PooledBody> {
        let mut resp = http::Response::new(PooledBody::empty());
        *resp.status_mut() = head.status;
        *resp.version_mut() = head.version;
        *resp.headers_mut() = head.headers;
        let body = match head.framing {
            Framing::Length(n) if conn.buf.len() as u64 >= n => {
                // The whole body came with the head (the common case for small answers): the
                // connection is free again before anyone reads the body.
                let data = conn.buf.split_to(n as usize).freeze();
                if head.keep_alive {
                    self.checkin(conn);
                }
                PooledBody {
                    state: State::Whole((!data.is_empty()).then_some(data)),
                }
            }
            framing => PooledBody {
                state: State::Streaming(Box::new(Streaming {
                    conn: Some(conn),
                    host: self.clone(),
                    framing: match framing {
                        Framing::Length(n) => Body::Left(n),
                        Framing::Chunked => Body::Chunked(Chunks::default()),
                        Framing::UntilClose => Body::UntilClose,
                    },
                    keep_alive: head.keep_alive,
                })),
            },
        };
        *resp.body_mut() = body;
        resp
    }
}

async fn write_stream(
    stream: &mut TcpStream,
    mut body: axum::body::Body,
    chunked: bool,
) -> Result<(), SendError> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(failed)?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers are not forwarded
        };
        if chunked {
            out.clear();
            http1::chunk(&data, &mut out);
            stream.write_all(&out).await.map_err(failed)?;
        } else {
            stream.write_all(&data).await.map_err(failed)?;
        }
    }
    if chunked {
        stream.write_all(http1::LAST_CHUNK).await.map_err(failed)?;
    }
    Ok(())
}

enum ReadError {
    /// The connection ended before a single byte of the answer.
    ClosedBeforeAnswer(BoxError),
    Other(BoxError),
}

async fn read_head(conn: &mut Conn, method: &http::Method) -> Result<http1::Head, ReadError> {
    let mut got_any = false;
    loop {
        if !conn.buf.is_empty() {
            got_any = true;
            match http1::read_head(&mut conn.buf, method) {
                Ok(Some(head)) => return Ok(head),
                Ok(None) => {}
                Err(e) => return Err(ReadError::Other(e.into())),
            }
        }
        conn.buf.reserve(READ_CHUNK);
        match conn.stream.read_buf(&mut conn.buf).await {
            Ok(0) if !got_any => {
                return Err(ReadError::ClosedBeforeAnswer(
                    "connection closed before the instance answered".into(),
                ));
            }
            Ok(0) => return Err(ReadError::Other("connection closed mid-answer".into())),
            Ok(_) => {}
            Err(e) if !got_any => return Err(ReadError::ClosedBeforeAnswer(e.into())),
            Err(e) => return Err(ReadError::Other(e.into())),
        }
    }
}

/// A response body: whole, or streaming from its connection, which goes back to its instance's
/// idle list once the body has been read to the end. Dropped before that, the connection
/// closes with it.
pub struct PooledBody {
    state: State,
}

enum State {
    Whole(Option<Bytes>),
    Streaming(Box<Streaming>),
}

struct Streaming {
    conn: Option<Conn>,
    host: Arc<Host>,
    framing: Body,
    keep_alive: bool,
}

enum Body {
    Left(u64),
    Chunked(Chunks),
    UntilClose,
}

impl PooledBody {
    /// An empty body (a dry run's answer).
    pub fn empty() -> PooledBody {
        PooledBody {
            state: State::Whole(None),
        }
    }
}

impl Streaming {
    fn finish(&mut self) {
        if let Some(c) = self.conn.take()
            && self.keep_alive
        {
            self.host.checkin(c);
        }
    }

    fn done(&self) -> bool {
        match &self.framing {
            Body::Left(n) => *n == 0,
            Body::Chunked(c) => *c == Chunks::Done,
            Body::UntilClose => self.conn.is_none(),
        }
    }

    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        loop {
            if self.done() {
                self.finish();
                return Poll::Ready(None);
            }
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(None);
            };
            // What is in the buffer first.
            let piece = match &mut self.framing {
                Body::Left(left) if !conn.buf.is_empty() => {
                    let n = (*left).min(conn.buf.len() as u64);
                    *left -= n;
                    Some(conn.buf.split_to(n as usize).freeze())
                }
                Body::Chunked(c) => match c.decode(&mut conn.buf) {
                    Ok(Decoded::Data(d)) => Some(d),
                    Ok(Decoded::Done) => continue,
                    Ok(Decoded::More) => None,
                    Err(e) => {
                        self.conn = None;
                        return Poll::Ready(Some(Err(std::io::Error::other(e))));
                    }
                },
                Body::UntilClose if !conn.buf.is_empty() => Some(conn.buf.split().freeze()),
                _ => None,
            };
            if let Some(data) = piece {
                if self.done() {
                    // The last piece: give the connection back now, the reader may not come
                    // back for the end.
                    self.finish();
                }
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            // Read into a stack buffer and append: reading into the buffer's spare capacity
            // from a poll would take `unsafe` (the head, read by an async fn, does not copy).
            let mut chunk = [0u8; READ_CHUNK];
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut conn.stream).poll_read(cx, &mut read) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => {
                    self.conn = None;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Ok(())) => {
                    let n = read.filled().len();
                    if n == 0 {
                        if matches!(self.framing, Body::UntilClose) {
                            self.conn = None;
                            return Poll::Ready(None);
                        }
                        self.conn = None;
                        return Poll::Ready(Some(Err(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "the instance closed the connection mid-body",
                        ))));
                    }
                    conn.buf.extend_from_slice(read.filled());
                }
            }
        }
    }
}

impl HttpBody for PooledBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match &mut self.get_mut().state {
            State::Whole(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            State::Streaming(s) => s.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.state {
            State::Whole(b) => b.is_none(),
            State::Streaming(s) => s.done(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.state {
            State::Whole(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            State::Streaming(s) => match s.framing {
                Body::Left(n) => SizeHint::with_exact(n),
                _ => SizeHint::default(),
            },
        }
    }
}

/// The bottom of the stack as a service: sends the attempt to the instance the pick chose.
#[derive(Clone)]
pub struct Connect {
    pool: Arc<Pool>,
}

impl Connect {
    pub fn new(pool: Arc<Pool>) -> Self {
        Connect { pool }
    }
}

impl tower::Service<super::request::Req> for Connect {
    type Response = Resp;
    type Error = CallError;
    type Future = BoxFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), CallError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: super::request::Req) -> BoxFuture {
        let Some(picked) = req.picked.as_ref() else {
            return Box::pin(async {
                Err(CallError::BadRequest(
                    "no instance chosen for this attempt".into(),
                ))
            });
        };
        let member = picked.member();
        let (host, instance) = (self.pool.host(member), member.id.clone());
        Box::pin(async move {
            let out = Outgoing {
                method: &req.method,
                target: &req.target,
                headers: &req.headers,
                body: req.body,
                trace: req.trace,
            };
            host.send(out).await.map_err(|e| match e {
                SendError::NotSent(e) => CallError::Connect {
                    instance: instance.to_string(),
                    message: headers::root_cause(&*e),
                },
                SendError::Failed(e) => CallError::Upstream {
                    instance: instance.to_string(),
                    message: headers::root_cause(&*e),
                },
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::members::Members;
    use crate::balance::members::tests::view;
    use crate::registry::Health;
    use http_body_util::{BodyExt, Full};
    use hyper::body::Incoming;
    use hyper_util::rt::TokioIo;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A member at `port` on loopback.
    fn member_at(port: u16) -> Arc<Members> {
        let mut v = view("echo", Health::Passing);
        v.port = port;
        Arc::new(Members::build(0, &[v], &Mutex::default()))
    }

    /// An HTTP/1.1 server (hyper) on loopback: `/big` answers 1 MB, `/chunked` a streamed body of
    /// unknown length, anything else echoes the method, path and body; it counts connections.
    async fn server() -> (Arc<Members>, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (s, _) = listener.accept().await.unwrap();
                counter.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(|r: http::Request<Incoming>| async move {
                        let body: axum::body::Body = match r.uri().path() {
                            "/big" => axum::body::Body::from(vec![b'x'; 1 << 20]),
                            "/chunked" => axum::body::Body::new(Parts(0)),
                            _ => {
                                let head = format!("{} {} ", r.method(), r.uri());
                                let got = r.into_body().collect().await.unwrap().to_bytes();
                                axum::body::Body::new(Full::new(Bytes::from(
                                    [head.as_bytes(), &got].concat(),
                                )))
                            }
                        };
                        Ok::<_, std::convert::Infallible>(http::Response::new(body))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(s), svc)
                        .await;
                });
            }
        });
        (member_at(port), accepted)
    }

    /// 50 small frames and no length: hyper sends it chunked.
    struct Parts(u32);

    impl HttpBody for Parts {
        type Data = Bytes;
        type Error = std::io::Error;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            if self.0 == 50 {
                return Poll::Ready(None);
            }
            self.0 += 1;
            Poll::Ready(Some(Ok(Frame::data(Bytes::from(format!(
                "part {};",
                self.0
            ))))))
        }
    }

    fn req(method: http::Method, path: &str, body: ReqBody) -> Outgoing<'static> {
        let method: &'static http::Method = Box::leak(Box::new(method));
        let headers: &'static http::HeaderMap = Box::leak(Box::default());
        Outgoing {
            method,
            target: Box::leak(path.to_string().into_boxed_str()),
            headers,
            body,
            trace: None,
        }
    }

    async fn text(resp: http::Response<PooledBody>) -> String {
        String::from_utf8(
            resp.into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn one_connection_serves_request_after_request() {
        let (set, accepted) = server().await;
        let pool = Pool::new();
        for i in 0..20 {
            let resp = pool
                .host(&set[0])
                .send(req(
                    http::Method::GET,
                    &format!("/n/{i}?q=1"),
                    ReqBody::Empty,
                ))
                .await
                .unwrap();
            assert_eq!(text(resp).await, format!("GET /n/{i}?q=1 "));
        }
        assert_eq!(accepted.load(Ordering::Relaxed), 1, "kept alive and reused");
        assert_eq!(pool.idle(), 1);
        let posted = pool
            .host(&set[0])
            .send(req(
                http::Method::POST,
                "/users",
                ReqBody::Full(Some(Bytes::from_static(b"{\"name\":\"Ada\"}"))),
            ))
            .await
            .unwrap();
        assert_eq!(text(posted).await, "POST /users {\"name\":\"Ada\"}");
    }

    #[tokio::test]
    async fn chunked_and_large_bodies_stream_and_the_connection_comes_back() {
        let (set, accepted) = server().await;
        let pool = Pool::new();
        let chunked = pool
            .host(&set[0])
            .send(req(http::Method::GET, "/chunked", ReqBody::Empty))
            .await
            .unwrap();
        assert!(chunked.headers().get("transfer-encoding").is_some());
        let want: String = (1..=50).map(|i| format!("part {i};")).collect();
        assert_eq!(text(chunked).await, want);
        let big = pool
            .host(&set[0])
            .send(req(http::Method::GET, "/big", ReqBody::Empty))
            .await
            .unwrap();
        assert_eq!(big.body().size_hint().exact(), Some(1 << 20));
        let body = big.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body.len(), 1 << 20);
        assert!(body.iter().all(|&b| b == b'x'));
        // Both answers read to the end: the one connection is idle again and serves the next.
        assert_eq!(pool.idle(), 1);
        let again = pool
            .host(&set[0])
            .send(req(http::Method::HEAD, "/x", ReqBody::Empty))
            .await
            .unwrap();
        assert_eq!(text(again).await, "", "no body after HEAD");
        assert_eq!(accepted.load(Ordering::Relaxed), 1);
    }

    /// An instance that closes a kept-alive connection while it sits idle: the next request goes
    /// out on a new connection, and nobody sees an error.
    #[tokio::test]
    async fn a_connection_the_instance_closed_while_idle_is_not_an_error() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                counter.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let _ = s.read(&mut buf).await;
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .await;
                    // Keep-alive promised, then closed: as an idle timeout would.
                });
            }
        });
        let set = member_at(port);
        let pool = Pool::new();
        for _ in 0..3 {
            let resp = pool
                .host(&set[0])
                .send(req(http::Method::GET, "/", ReqBody::Empty))
                .await
                .unwrap();
            assert_eq!(text(resp).await, "ok");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(accepted.load(Ordering::Relaxed), 3);
        // Nobody listening: the request never left, and says so.
        drop(pool);
        let closed = member_at(1);
        let err = Pool::new()
            .host(&closed[0])
            .send(req(http::Method::GET, "/", ReqBody::Empty))
            .await
            .err()
            .unwrap();
        assert!(matches!(err, SendError::NotSent(_)), "{err:?}");
    }
}
