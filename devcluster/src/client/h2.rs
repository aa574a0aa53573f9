//! The bottom of the stack for gRPC calls: one HTTP/2 connection per instance, every call to
//! that instance multiplexed on it (what a gRPC channel keeps per address), made on the first
//! call and made again once it has closed.
//!
//! Spoken with the `h2` crate directly rather than through hyper's client: a unary call's
//! message is handed to its stream at once, so a call costs no task of its own (hyper spawns
//! one per request to wait for the answer, and another to pipe the body) and no hop through a
//! dispatch channel. `benches/grpc_client.rs` measures the difference.

use super::headers;
use super::pool::PooledBody;
use super::request::ReqBody;
use super::request::{CallError, Req, Resp};
use hyper::body::{Bytes, Frame};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

/// How long making a connection may take; an instance that does not accept by then is
/// unreachable for this attempt (the attempt's own timeout usually ends it first).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Flow-control windows: as hyper's client sets them (h2's own 64 KiB would hold a large
/// answer back a round trip per window).
const STREAM_WINDOW: u32 = 2 << 20;
const CONNECTION_WINDOW: u32 = 5 << 20;

/// An instance's address: host and port.
type Addr = (Arc<str>, u16);

/// The HTTP/2 connections of a client, by instance address.
#[derive(Default)]
pub struct Channels {
    hosts: RwLock<HashMap<Addr, Arc<Channel>, foldhash::fast::FixedState>>,
}

/// One instance's connection: its sender while it is open, and a lock that lets one call at
/// a time make a new one (the others wait for it and share it).
struct Channel {
    /// `host:port`, to connect to and as each request's `:authority`.
    authority: http::uri::Authority,
    open: Mutex<Option<Open>>,
    connecting: tokio::sync::Mutex<()>,
}

struct Open {
    sender: h2::client::SendRequest<Bytes>,
    /// Set when the connection's task ends (the instance closed it, or it failed).
    closed: Arc<AtomicBool>,
}

impl Channels {
    fn channel(&self, address: &Arc<str>, port: u16) -> Arc<Channel> {
        let key = (address.clone(), port);
        if let Some(c) = self
            .hosts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return c.clone();
        }
        let authority = if address.contains(':') {
            format!("[{address}]:{port}")
        } else {
            format!("{address}:{port}")
        };
        // From the registry: an address that is no authority gets a connect error per call.
        let authority = http::uri::Authority::try_from(authority)
            .unwrap_or_else(|_| http::uri::Authority::from_static("invalid.address:0"));
        self.hosts
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_insert_with(|| {
                Arc::new(Channel {
                    authority,
                    open: Mutex::new(None),
                    connecting: tokio::sync::Mutex::new(()),
                })
            })
            .clone()
    }

    /// Sends the attempt to the instance the pick chose, over its HTTP/2 connection.
    pub async fn send(&self, req: Req) -> Result<Resp, CallError> {
        let Some(picked) = req.picked.as_ref() else {
            return Err(CallError::BadRequest(
                "no instance chosen for this attempt".into(),
            ));
        };
        let member = picked.member();
        let instance = member.id.to_string();
        let channel = self.channel(&member.address, member.port);
        let not_sent = |message: String| CallError::Connect {
            instance: instance.clone(),
            message,
        };
        let mut uri = http::uri::Parts::default();
        uri.scheme = Some(http::uri::Scheme::HTTP);
        uri.authority = Some(channel.authority.clone());
        uri.path_and_query = Some(
            http::uri::PathAndQuery::try_from(req.call.path.as_str())
                .map_err(|e| CallError::BadRequest(format!("{}: {e}", req.call.path)))?,
        );
        let mut request = http::Request::new(());
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() =
            http::Uri::from_parts(uri).map_err(|e| CallError::BadRequest(e.to_string()))?;
        let h = request.headers_mut();
        h.clone_from(&req.call.headers);
        h.insert(http::header::TE, http::HeaderValue::from_static("trailers"));
        if let Some((ctx, _)) = req.trace_context() {
            crate::telemetry::context::inject_traceparent(h, ctx);
        }
        let message = match req.body {
            ReqBody::Empty => None,
            ReqBody::Full(b) => b,
            ReqBody::Stream(_) => {
                return Err(CallError::BadRequest(
                    "a gRPC call's message is sent whole".into(),
                ));
            }
        };
        let mut sender = channel.sender().await.map_err(not_sent)?;
        std::future::poll_fn(|cx| sender.poll_ready(cx))
            .await
            .map_err(|e| not_sent(headers::root_cause(&e)))?;
        let (answer, mut stream) = sender
            .send_request(request, message.is_none())
            .map_err(|e| not_sent(headers::root_cause(&e)))?;
        if let Some(m) = message {
            // Queued on the stream; the connection writes it as flow control allows.
            stream
                .send_data(m, true)
                .map_err(|e| not_sent(headers::root_cause(&e)))?;
        }
        match answer.await {
            Ok(resp) => {
                let code = crate::telemetry::grpc::status_code(resp.headers());
                Ok(resp.map(|recv| {
                    PooledBody::h2(
                        H2Body {
                            recv,
                            phase: Phase::Data,
                        },
                        code,
                    )
                }))
            }
            // Refused before it was processed (GOAWAY, REFUSED_STREAM): another instance may
            // have it.
            Err(e) if e.is_go_away() || e.reason() == Some(h2::Reason::REFUSED_STREAM) => {
                Err(CallError::Connect {
                    instance,
                    message: headers::root_cause(&e),
                })
            }
            Err(e) => Err(CallError::Upstream {
                instance,
                message: headers::root_cause(&e),
            }),
        }
    }
}

impl Channel {
    /// The open connection's sender, or a new connection's.
    async fn sender(&self) -> Result<h2::client::SendRequest<Bytes>, String> {
        if let Some(s) = self.live() {
            return Ok(s);
        }
        let _one = self.connecting.lock().await;
        // Made by the call that held the lock before this one?
        if let Some(s) = self.live() {
            return Ok(s);
        }
        let addr = self.authority.as_str();
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| format!("connect to {addr}: timed out"))?
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = h2::client::Builder::new()
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .handshake::<_, Bytes>(stream)
            .await
            .map_err(|e| format!("HTTP/2 handshake with {addr}: {}", headers::root_cause(&e)))?;
        let closed = Arc::new(AtomicBool::new(false));
        let flag = closed.clone();
        crate::telemetry::spawn(async move {
            // Ends when the instance closes it (a kill, a restart) or every sender is gone.
            let _ = Batched {
                inner: conn,
                deferred: false,
            }
            .await;
            flag.store(true, Ordering::Release);
        });
        *self.open.lock().unwrap_or_else(|e| e.into_inner()) = Some(Open {
            sender: sender.clone(),
            closed,
        });
        Ok(sender)
    }

    fn live(&self) -> Option<h2::client::SendRequest<Bytes>> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        match open.as_ref() {
            Some(o) if !o.closed.load(Ordering::Acquire) => Some(o.sender.clone()),
            Some(_) => {
                *open = None;
                None
            }
            None => None,
        }
    }
}

/// A connection's task that lets the callers run before it writes. Each call that queues a
/// request wakes the connection; run at once (tokio runs a task woken by the running one
/// next), it would write each request in a write of its own. Woken, it first steps back
/// behind the tasks already waiting to run, so that under load the requests they queue go
/// out together: one write for many calls. Idle, nothing waits and it runs at once.
struct Batched<F> {
    inner: F,
    deferred: bool,
}

impl<F: std::future::Future + Unpin> std::future::Future for Batched<F> {
    type Output = F::Output;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        if !self.deferred {
            self.deferred = true;
            // A task that wakes itself is put back at the end of the queue.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.deferred = false;
        std::pin::Pin::new(&mut self.inner).poll(cx)
    }
}

/// An HTTP/2 answer's body: its data (each piece's flow-control window given back as it is
/// read), then its trailers — where a gRPC status travels.
pub struct H2Body {
    recv: h2::RecvStream,
    phase: Phase,
}

#[derive(Clone, Copy, PartialEq)]
enum Phase {
    Data,
    Trailers,
    Done,
}

impl H2Body {
    pub fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.phase == Phase::Data {
            match std::task::ready!(self.recv.poll_data(cx)) {
                Some(Ok(data)) => {
                    let _ = self.recv.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(e)) => {
                    self.phase = Phase::Done;
                    return Poll::Ready(Some(Err(std::io::Error::other(e))));
                }
                None => self.phase = Phase::Trailers,
            }
        }
        if self.phase == Phase::Done {
            return Poll::Ready(None);
        }
        let trailers = std::task::ready!(self.recv.poll_trailers(cx));
        self.phase = Phase::Done;
        match trailers {
            Ok(Some(t)) => Poll::Ready(Some(Ok(Frame::trailers(t)))),
            Ok(None) => Poll::Ready(None),
            Err(e) => Poll::Ready(Some(Err(std::io::Error::other(e)))),
        }
    }

    pub fn is_end_stream(&self) -> bool {
        self.phase == Phase::Done
    }
}
