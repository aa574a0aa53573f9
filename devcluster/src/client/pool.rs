//! The pooled connection, the bottom of the stack: HTTP/1.1 connections to each instance (hyper's
//! `client::conn`), kept alive and reused. A connection goes back to its instance's idle list
//! the moment its response body has been read to the end, so the next request on it costs no
//! handshake and no extra task: one write of headers and body, one read of the answer.
//!
//! Written here rather than taken from hyper-util's pooled client because that client costs a
//! quarter more CPU per request than nginx in the shared benchmark (a background task per
//! response to return its connection, URI parsing and a pool lock on every call), and a dev
//! cluster's gateway is meant to cost what nginx costs. A request that could not be written on
//! a reused connection (the instance closed it meanwhile) is sent again on a new one: it never
//! reached the instance.

use super::request::{CallError, ReqBody, Resp};
use super::{BoxFuture, headers};
use crate::balance::members::Member;
use http::HeaderValue;
use hyper::body::{Body as HttpBody, Bytes, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;

/// Idle connections kept per instance.
const MAX_IDLE: usize = 256;
/// An idle connection older than this is closed rather than reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

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
    idle: Mutex<Vec<Idle>>,
}

struct Idle {
    tx: SendRequest<ReqBody>,
    since: Instant,
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

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a request got no answer: it never left (no connection, or one closed before the request
/// was written), or the connection failed on the way.
#[derive(Debug)]
pub enum SendError {
    NotSent(BoxError),
    Failed(BoxError),
}

impl Host {
    /// A ready connection: the most recently used idle one, or a new one.
    async fn checkout(&self) -> Result<(SendRequest<ReqBody>, bool), BoxError> {
        loop {
            let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let Some(Idle { mut tx, since }) = idle else {
                return Ok((self.connect().await?, false));
            };
            if tx.is_closed() || since.elapsed() > IDLE_TIMEOUT {
                continue;
            }
            if tx.ready().await.is_ok() {
                return Ok((tx, true));
            }
        }
    }

    async fn connect(&self) -> Result<SendRequest<ReqBody>, BoxError> {
        let stream = tokio::net::TcpStream::connect((&*self.address, self.port)).await?;
        let _ = stream.set_nodelay(true);
        let (tx, conn) = hyper::client::conn::http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await?;
        tokio::spawn(async move {
            // Ends when the instance closes it or every handle to it is gone.
            let _ = conn.await;
        });
        Ok(tx)
    }

    fn checkin(&self, tx: SendRequest<ReqBody>) {
        if tx.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(Idle {
                tx,
                since: Instant::now(),
            });
        }
    }

    /// Sends `req` (origin-form URI) and returns the answer, its body streaming from the
    /// connection; the connection goes back when that body has been read.
    pub async fn send(
        self: Arc<Self>,
        mut req: http::Request<ReqBody>,
    ) -> Result<http::Response<PooledBody>, SendError> {
        req.headers_mut()
            .insert(http::header::HOST, self.authority.clone());
        let (mut tx, mut reused) = self.checkout().await.map_err(SendError::NotSent)?;
        loop {
            match tx.try_send_request(req).await {
                Ok(resp) => {
                    let (parts, body) = resp.into_parts();
                    let mut body = PooledBody {
                        inner: Some(body),
                        back: Some((self.clone(), tx)),
                    };
                    if body.is_end_stream() {
                        body.give_back();
                    }
                    return Ok(http::Response::from_parts(parts, body));
                }
                // Never written: the instance closed a reused connection meanwhile. Once more
                // on a new one.
                Err(mut e) if reused && e.message().is_some() => {
                    req = e
                        .take_message()
                        .ok_or_else(|| SendError::NotSent(e.into_error().into()))?;
                    tx = self.connect().await.map_err(SendError::NotSent)?;
                    reused = false;
                }
                Err(e) if e.message().is_some() => {
                    return Err(SendError::NotSent(e.into_error().into()));
                }
                Err(e) => return Err(SendError::Failed(e.into_error().into())),
            }
        }
    }
}

/// A response body from a pooled connection: returns the connection to its instance's idle
/// list once read to the end. Dropped before that, the connection closes with it.
pub struct PooledBody {
    inner: Option<Incoming>,
    back: Option<(Arc<Host>, SendRequest<ReqBody>)>,
}

impl PooledBody {
    /// An empty body (a dry run's answer).
    pub fn empty() -> PooledBody {
        PooledBody {
            inner: None,
            back: None,
        }
    }

    fn give_back(&mut self) {
        if let Some((host, tx)) = self.back.take() {
            host.checkin(tx);
        }
    }
}

impl HttpBody for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.give_back(),
            Poll::Ready(Some(Ok(_))) if self.inner.as_ref().is_some_and(|b| b.is_end_stream()) => {
                self.give_back()
            }
            Poll::Ready(Some(Err(_))) => self.back = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint())
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
            host.send(*req.http).await.map_err(|e| match e {
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
    use http_body_util::BodyExt;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// An HTTP/1.1 server on loopback answering every request with its path, counting the
    /// connections it accepted.
    async fn echo() -> (Arc<Members>, Arc<AtomicUsize>) {
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
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Full::new(Bytes::from(r.uri().path().to_string())),
                        ))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(s), svc)
                        .await;
                });
            }
        });
        let mut v = view("echo", Health::Passing);
        v.port = port;
        (
            Arc::new(Members::build(0, &[v], &Mutex::default())),
            accepted,
        )
    }

    fn get(path: &str) -> http::Request<ReqBody> {
        http::Request::builder()
            .uri(path)
            .body(ReqBody::Empty)
            .unwrap()
    }

    #[tokio::test]
    async fn one_connection_serves_request_after_request() {
        let (set, accepted) = echo().await;
        let member = &set[0];
        let pool = Pool::new();
        for i in 0..20 {
            let resp = pool
                .host(member)
                .send(get(&format!("/n/{i}")))
                .await
                .unwrap();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(body, format!("/n/{i}"));
        }
        assert_eq!(accepted.load(Ordering::Relaxed), 1, "kept alive and reused");
        assert_eq!(pool.idle(), 1);
    }

    #[tokio::test]
    async fn a_body_dropped_unread_takes_its_connection_with_it() {
        let (set, accepted) = echo().await;
        let member = &set[0];
        let pool = Pool::new();
        let resp = pool.host(member).send(get("/a")).await.unwrap();
        // Small bodies arrive with their headers: already at the end, already given back.
        assert!(resp.body().is_end_stream() || pool.idle() == 0);
        drop(resp);
        let again = pool.host(member).send(get("/b")).await.unwrap();
        assert_eq!(again.status(), 200);
        assert!(accepted.load(Ordering::Relaxed) <= 2);
    }
}
