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
//! pooled client a quarter more CPU per request than nginx. As Go's client does, a request with
//! its body in memory (or none) goes out once more on a new connection when a reused one fails
//! while it is written; when a reused one closes after the request went out but before a byte
//! of the answer, only a request that may be repeated (idempotent, or with an idempotency key)
//! goes again.

use super::http1::{self, BodyReader, Chunks, Framing, Left, Peer, Sending};
use super::request::{CallError, ReqBody, Resp};
use super::{BoxFuture, headers};
use crate::balance::members::Member;
use crate::telemetry::path;
use bytes::{Bytes, BytesMut};
use http::HeaderValue;
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Idle connections kept per instance.
const MAX_IDLE: usize = 256;
/// An idle connection older than this is closed rather than reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// A body up to this size is written with its head, in one write.
const INLINE_BODY: usize = 16 * 1024;
/// How long a body may go without a byte once its head arrived (nginx's `proxy_read_timeout`
/// default). The attempt's timeout covers the wait for the head only: a slow stream is fine.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);
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
    /// Keep the answer's header lines for a proxy to pass on ([`PooledBody::forwarded`]).
    pub forward: bool,
    /// Added to `X-Forwarded-For` (a proxy's client).
    pub forwarded_for: Option<&'a HeaderValue>,
}

/// An open connection and what was read from it beyond the last answer (nothing, normally).
struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    names: http1::Names,
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
        let host = Host::new(member.address.clone(), member.port);
        self.hosts
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_insert(host)
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

/// Whether doing `method` twice is the same as doing it once (RFC 9110 §9.2.2), or the caller
/// said so with an idempotency key, as Go's client accepts.
fn idempotent(method: &http::Method, headers: &http::HeaderMap) -> bool {
    use http::Method as M;
    matches!(
        *method,
        M::GET | M::HEAD | M::PUT | M::DELETE | M::OPTIONS | M::TRACE
    ) || headers.contains_key("idempotency-key")
        || headers.contains_key("x-idempotency-key")
}

/// Whether an idle connection is still open and quiet (the instance may have closed it).
fn usable(c: &Conn) -> bool {
    let mut probe = [0u8; 1];
    c.buf.is_empty()
        && matches!(c.stream.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

impl Host {
    /// The connections of one address, outside any pool (a client of one server: the traffic
    /// generator's gateway).
    pub fn new(address: Arc<str>, port: u16) -> Arc<Host> {
        let authority = HeaderValue::from_str(&format!("{address}:{port}"))
            .unwrap_or_else(|_| HeaderValue::from_static("localhost"));
        Arc::new(Host {
            address,
            port,
            authority,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// The most recently used idle connection that is still open, if any.
    fn checkout(&self) -> Option<Conn> {
        let now = path::now();
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some((c, since)) = idle.pop() {
            if now.saturating_duration_since(since) <= IDLE_TIMEOUT && usable(&c) {
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
            names: http1::Names::default(),
        })
    }

    fn checkin(&self, c: Conn) {
        if !c.buf.is_empty() {
            return; // bytes nobody asked for: not a connection to trust again
        }
        let now = path::now();
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        // The oldest sit at the front: close those past their time rather than keep them
        // open until a quiet spell uses the list down to them.
        if idle
            .first()
            .is_some_and(|(_, since)| now.saturating_duration_since(*since) > IDLE_TIMEOUT)
        {
            idle.retain(|(_, since)| now.saturating_duration_since(*since) <= IDLE_TIMEOUT);
        }
        if idle.len() < MAX_IDLE {
            idle.push((c, now));
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
            forward,
            forwarded_for,
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
            forwarded_for,
        );
        let inline = held.as_ref().is_some_and(|b| b.len() <= INLINE_BODY);
        if inline && let Some(b) = &held {
            head.extend_from_slice(b);
        }
        // A request whose body is in memory can go out again on a new connection when a
        // reused one fails while it is written (the instance cannot have read it whole). When
        // the reused one closes after the request went out but before a byte of the answer,
        // the instance may have acted on it: only a request that may be repeated goes again.
        let replayable = stream.is_none();
        let repeatable = replayable && idempotent(method, headers);
        let mut stream = stream;
        let mut reused = self.checkout();
        loop {
            let was_reused = reused.is_some();
            // Connecting and streaming a body are boxed: rare next to a request on a kept-alive
            // connection, and their state would make every request's future larger.
            let mut conn = match reused.take() {
                Some(c) => c,
                None => Box::pin(self.connect()).await?,
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
                Box::pin(write_stream(
                    &mut conn.stream,
                    body,
                    sending == Sending::Chunked,
                ))
                .await?;
            }
            match read_head(&mut conn, method, forward).await {
                Ok(head) => return Ok(self.answer(conn, head)),
                Err(ReadError::ClosedBeforeAnswer(_)) if was_reused && repeatable => continue,
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
                    forwarded: head.forwarded,
                    grpc_code: None,
                }
            }
            framing => PooledBody {
                state: State::Streaming(Box::new(Streaming {
                    conn: Some(conn),
                    host: self.clone(),
                    reader: BodyReader::new(
                        match framing {
                            Framing::Length(n) => Left::Bytes(n),
                            Framing::Chunked => Left::Chunks(Chunks::default()),
                            Framing::UntilClose => Left::UntilClose,
                        },
                        INSTANCE,
                    ),
                    keep_alive: head.keep_alive,
                })),
                forwarded: head.forwarded,
                grpc_code: None,
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
        if data.is_empty() {
            continue; // as a chunk, it would read as the end of the body
        }
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

async fn read_head(
    conn: &mut Conn,
    method: &http::Method,
    forward: bool,
) -> Result<http1::Head, ReadError> {
    let mut got_any = false;
    loop {
        if !conn.buf.is_empty() {
            got_any = true;
            match http1::read_head(&mut conn.buf, method, &mut conn.names, forward) {
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
    /// The answer's header lines, when the request asked to keep them
    /// ([`Outgoing::forward`]): its header map is empty then.
    /// Boxed: the answer is moved through every layer, and only a proxy asks for them.
    pub forwarded: Option<Box<http1::Forwarded>>,
    /// An HTTP/2 answer's gRPC status when its headers carry one (a trailers-only answer:
    /// a gRPC error), read once for every layer that asks.
    pub grpc_code: Option<i32>,
}

enum State {
    Whole(Option<Bytes>),
    Streaming(Box<Streaming>),
    /// An HTTP/2 answer (a gRPC call's), its trailers (the gRPC status) included.
    H2(super::h2::H2Body),
}

struct Streaming {
    conn: Option<Conn>,
    host: Arc<Host>,
    reader: BodyReader,
    keep_alive: bool,
}

/// The instance, as a body's reader sees it: it may go quiet mid-body for
/// [`BODY_READ_TIMEOUT`].
const INSTANCE: Peer = Peer {
    name: "instance",
    patience: BODY_READ_TIMEOUT,
};

impl PooledBody {
    /// The body of an HTTP/2 answer ([`super::h2`]) and the gRPC status its headers carry.
    pub fn h2(body: super::h2::H2Body, grpc_code: Option<i32>) -> PooledBody {
        PooledBody {
            state: State::H2(body),
            forwarded: None,
            grpc_code,
        }
    }

    /// An empty body (a dry run's answer).
    pub fn empty() -> PooledBody {
        PooledBody {
            state: State::Whole(None),
            forwarded: None,
            grpc_code: None,
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
        // A body until close ends with its connection.
        self.reader.done() || (matches!(self.reader.left, Left::UntilClose) && self.conn.is_none())
    }

    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.reader.done() {
            self.finish();
            return Poll::Ready(None);
        }
        let Some(conn) = self.conn.as_mut() else {
            return Poll::Ready(None);
        };
        match std::task::ready!(self.reader.poll_piece(&mut conn.stream, &mut conn.buf, cx)) {
            Ok(Some(data)) => {
                if self.reader.done() {
                    // The last piece: give the connection back now, the reader may not come
                    // back for the end.
                    self.finish();
                }
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Ok(None) => {
                // The end (a body until close: the connection closed, it is not given back).
                self.finish();
                Poll::Ready(None)
            }
            Err(e) => {
                self.conn = None;
                Poll::Ready(Some(Err(e)))
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
            State::H2(b) => b.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.state {
            State::Whole(b) => b.is_none(),
            State::Streaming(s) => s.done(),
            State::H2(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.state {
            State::Whole(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            State::Streaming(s) => match s.reader.left {
                Left::Bytes(n) => SizeHint::with_exact(n),
                _ => SizeHint::default(),
            },
            State::H2(_) => SizeHint::default(),
        }
    }
}

/// The bottom of the stack as a service: sends the attempt to the instance the pick chose,
/// on a pooled HTTP/1.1 connection, or a gRPC call on the instance's HTTP/2 connection.
#[derive(Clone)]
pub struct Connect {
    pool: Arc<Pool>,
    h2: Arc<super::h2::Channels>,
}

impl Connect {
    pub fn new(pool: Arc<Pool>, h2: Arc<super::h2::Channels>) -> Self {
        Connect { pool, h2 }
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
        if req.call.grpc {
            let h2 = self.h2.clone();
            return Box::pin(async move { h2.send(req).await });
        }
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
            let trace = req.trace_context();
            let out = Outgoing {
                method: &req.call.method,
                target: &req.call.path,
                headers: &req.call.headers,
                body: req.body,
                trace,
                forward: req.call.forward,
                forwarded_for: req.call.forwarded_for.as_ref(),
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
        crate::telemetry::spawn(async move {
            loop {
                let (s, _) = listener.accept().await.unwrap();
                counter.fetch_add(1, Ordering::Relaxed);
                crate::telemetry::spawn(async move {
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
            forward: false,
            forwarded_for: None,
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
        crate::telemetry::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                counter.fetch_add(1, Ordering::Relaxed);
                crate::telemetry::spawn(async move {
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

    /// A raw instance that answers the first request on each connection and closes the
    /// connection after reading the second, without answering; it counts requests by method.
    async fn closes_after_reading() -> (Arc<Members>, Arc<Mutex<Vec<String>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        crate::telemetry::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                let log = log.clone();
                crate::telemetry::spawn(async move {
                    let mut buf = [0u8; 4096];
                    for answered in [true, false] {
                        let Ok(n) = s.read(&mut buf).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        let line = String::from_utf8_lossy(&buf[..n]);
                        let method = line.split(' ').next().unwrap_or("").to_string();
                        log.lock().unwrap().push(method);
                        if answered {
                            let _ = s
                                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                                .await;
                        }
                    }
                });
            }
        });
        (member_at(port), seen)
    }

    /// A POST on a kept-alive connection that the instance closes once it has read it may have
    /// been acted on: it fails rather than going out a second time. A GET in the same spot goes
    /// out again on a new connection and nobody sees an error.
    #[tokio::test]
    async fn a_request_the_instance_may_have_acted_on_is_not_sent_twice() {
        let (set, seen) = closes_after_reading().await;
        let pool = Pool::new();
        let host = pool.host(&set[0]);
        let first = host
            .clone()
            .send(req(http::Method::GET, "/", ReqBody::Empty));
        assert_eq!(text(first.await.unwrap()).await, "ok");
        let post = host
            .clone()
            .send(req(
                http::Method::POST,
                "/orders",
                ReqBody::Full(Some(Bytes::from_static(b"{\"item\":1}"))),
            ))
            .await;
        assert!(
            matches!(post, Err(SendError::Failed(_))),
            "{:?}",
            post.err()
        );
        let posts = || seen.lock().unwrap().iter().filter(|m| *m == "POST").count();
        assert_eq!(posts(), 1, "the POST reached the instance once");

        let fresh = host
            .clone()
            .send(req(http::Method::GET, "/", ReqBody::Empty));
        assert_eq!(text(fresh.await.unwrap()).await, "ok");
        let resent = host
            .clone()
            .send(req(http::Method::GET, "/", ReqBody::Empty));
        assert_eq!(
            text(resent.await.unwrap()).await,
            "ok",
            "the GET went again"
        );
        let gets = seen.lock().unwrap().iter().filter(|m| *m == "GET").count();
        assert_eq!(gets, 4, "three GETs asked, one of them sent twice");
        assert_eq!(posts(), 1);
    }

    /// Frames of a body of unknown length, some of them empty.
    struct Frames(std::collections::VecDeque<&'static str>);

    impl HttpBody for Frames {
        type Data = Bytes;
        type Error = std::io::Error;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            Poll::Ready(
                self.0
                    .pop_front()
                    .map(|f| Ok(Frame::data(Bytes::from_static(f.as_bytes())))),
            )
        }
    }

    /// An upload streamed in chunks reaches the instance whole, empty frames and all (an empty
    /// chunk on the wire would end it early).
    #[tokio::test]
    async fn a_streamed_upload_with_empty_frames_arrives_whole() {
        let (set, _) = server().await;
        let frames = Frames(["ab", "", "cd", "", "ef"].into_iter().collect());
        let resp = Pool::new()
            .host(&set[0])
            .send(req(
                http::Method::POST,
                "/upload",
                ReqBody::Stream(axum::body::Body::new(frames)),
            ))
            .await
            .unwrap();
        assert_eq!(text(resp).await, "POST /upload abcdef");
    }

    /// An instance that sends the head and part of the body, then nothing: the body ends with
    /// a timeout error instead of holding the caller for ever.
    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_coming_ends_with_a_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        crate::telemetry::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nab")
                .await;
            std::future::pending::<()>().await; // open and silent
        });
        let set = member_at(port);
        let resp = Pool::new()
            .host(&set[0])
            .send(req(http::Method::GET, "/", ReqBody::Empty))
            .await
            .unwrap();
        let err = resp.into_body().collect().await.err().unwrap();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
    }
}
