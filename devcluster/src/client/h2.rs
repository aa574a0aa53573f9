//! The bottom of the stack for gRPC calls: one HTTP/2 connection per instance, every call to
//! that instance multiplexed on it (what a gRPC channel keeps per address), made on the first
//! call and made again once it has closed.

use super::headers;
use super::pool::PooledBody;
use super::request::ReqBody;
use super::request::{CallError, Req, Resp};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// How long making a connection may take; an instance that does not accept by then is
/// unreachable for this attempt (the attempt's own timeout usually ends it first).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// An instance's address: host and port.
type Addr = (Arc<str>, u16);

/// The HTTP/2 connections of a client, by instance address.
#[derive(Default)]
pub struct Channels {
    hosts: RwLock<HashMap<Addr, Arc<Channel>>>,
}

/// One instance's connection: the sender of its open connection, if there is one, and a lock
/// that lets one call at a time make a new one (the others wait for it and share it).
struct Channel {
    authority: String,
    open: Mutex<Option<SendRequest<ReqBody>>>,
    connecting: tokio::sync::Mutex<()>,
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
        let mut sender = channel.sender().await.map_err(not_sent)?;
        let mut request = http::Request::builder()
            .method(http::Method::POST)
            .uri(format!("http://{}{}", channel.authority, req.call.path))
            .body(req.body)
            .map_err(|e| CallError::BadRequest(e.to_string()))?;
        let h = request.headers_mut();
        h.clone_from(&req.call.headers);
        // Hop-by-hop on HTTP/1.1 (so dropped on the way in), required by gRPC on HTTP/2.
        h.insert(http::header::TE, http::HeaderValue::from_static("trailers"));
        if let Some(ctx) = req.trace.map(|(span, parent)| {
            let ctx = crate::telemetry::SpanContext {
                trace_id: req.ctx.trace_id,
                span_id: span,
            };
            (ctx, parent)
        }) {
            crate::telemetry::context::inject(h, ctx.0, Some(ctx.1));
        }
        sender
            .ready()
            .await
            .map_err(|e| not_sent(headers::root_cause(&e)))?;
        match sender.send_request(request).await {
            Ok(resp) => Ok(resp.map(PooledBody::h2)),
            // Refused before it was processed (GOAWAY, a stream reset with REFUSED_STREAM, a
            // connection closed before the request was written): another instance may have it.
            Err(e) if e.is_canceled() || e.is_closed() => Err(CallError::Connect {
                instance,
                message: headers::root_cause(&e),
            }),
            Err(e) => Err(CallError::Upstream {
                instance,
                message: headers::root_cause(&e),
            }),
        }
    }
}

impl Channel {
    /// The open connection's sender, or a new connection's.
    async fn sender(&self) -> Result<SendRequest<ReqBody>, String> {
        if let Some(s) = self.live() {
            return Ok(s);
        }
        let _one = self.connecting.lock().await;
        // Made by the call that held the lock before this one?
        if let Some(s) = self.live() {
            return Ok(s);
        }
        let stream = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio::net::TcpStream::connect(&self.authority),
        )
        .await
        .map_err(|_| format!("connect to {}: timed out", self.authority))?
        .map_err(|e| format!("connect to {}: {e}", self.authority))?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .map_err(|e| {
                    format!(
                        "HTTP/2 handshake with {}: {}",
                        self.authority,
                        headers::root_cause(&e)
                    )
                })?;
        tokio::spawn(async move {
            // Ends when the instance closes it (a kill, a restart) or every sender is gone.
            let _ = conn.await;
        });
        *self.open.lock().unwrap_or_else(|e| e.into_inner()) = Some(sender.clone());
        Ok(sender)
    }

    fn live(&self) -> Option<SendRequest<ReqBody>> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        match open.as_ref() {
            Some(s) if !s.is_closed() => Some(s.clone()),
            Some(_) => {
                *open = None;
                None
            }
            None => None,
        }
    }
}
