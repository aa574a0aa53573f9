//! What travels through the client's layers: one request (the call, then each attempt of it),
//! its answer, and what can go wrong.

use super::explain::Explain;
use super::pool::PooledBody;
use super::target::Target;
use crate::balance::service::{NoCandidate, Picked};
use crate::breaker::Rejected;
use crate::telemetry::names::Name;
use crate::telemetry::{SpanContext, SpanId};
use axum::body::Body;
use axum::response::IntoResponse;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use hyper::body::{Bytes, Frame, SizeHint};
use serde_json::json;
use std::pin::Pin;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    NoInstance(#[from] NoCandidate),
    #[error(transparent)]
    Rejected(#[from] Rejected),
    #[error("{instance} did not answer within {after:?}")]
    Timeout { instance: String, after: Duration },
    /// No connection to the instance (refused, or closed before the request was written): the
    /// request never reached it.
    #[error("{instance} failed: {message}")]
    Connect { instance: String, message: String },
    /// The connection failed while the request was on its way or being answered.
    #[error("{instance} failed: {message}")]
    Upstream { instance: String, message: String },
    #[error("{0}")]
    BadRequest(String),
}

impl CallError {
    pub fn status(&self) -> StatusCode {
        match self {
            CallError::NoInstance(_) | CallError::Rejected(_) => StatusCode::SERVICE_UNAVAILABLE,
            CallError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            CallError::Upstream { .. } | CallError::Connect { .. } => StatusCode::BAD_GATEWAY,
            CallError::BadRequest(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// The instance that failed, when one was reached.
    pub fn instance(&self) -> Option<&str> {
        match self {
            CallError::Timeout { instance, .. }
            | CallError::Upstream { instance, .. }
            | CallError::Connect { instance, .. } => Some(instance),
            _ => None,
        }
    }

    /// The JSON error body a caller gets.
    pub fn body(&self) -> serde_json::Value {
        let mut body = json!({"error": self.to_string()});
        if let CallError::Rejected(r) = self {
            body["breaker"] = json!(r.breaker);
            body["state"] = json!(r.state);
            body["mode"] = json!(r.mode);
        }
        body
    }
}

impl IntoResponse for CallError {
    fn into_response(self) -> axum::response::Response {
        (self.status(), axum::Json(self.body())).into_response()
    }
}

/// A request body: empty, held in memory (so an idempotent request can be sent again), or
/// streamed through once.
#[derive(Debug, Default)]
pub enum ReqBody {
    #[default]
    Empty,
    Full(Option<Bytes>),
    Stream(Body),
}

impl ReqBody {
    /// A copy for another attempt; `None` for a stream, which can be sent once only.
    pub fn try_clone(&self) -> Option<ReqBody> {
        match self {
            ReqBody::Empty => Some(ReqBody::Empty),
            ReqBody::Full(b) => Some(ReqBody::Full(b.clone())),
            ReqBody::Stream(_) => None,
        }
    }
}

impl hyper::body::Body for ReqBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        match self.get_mut() {
            ReqBody::Empty => Poll::Ready(None),
            ReqBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ReqBody::Stream(s) => Pin::new(s).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReqBody::Empty => true,
            ReqBody::Full(b) => b.is_none(),
            ReqBody::Stream(s) => s.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReqBody::Empty => SizeHint::with_exact(0),
            ReqBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ReqBody::Stream(s) => s.size_hint(),
        }
    }
}

/// The answer of a call: the upstream's response, its body streamed from the pooled
/// connection.
pub type Resp = http::Response<PooledBody>;

/// What every attempt of one call shares (one allocation per call): the request's method,
/// target and headers (the connection writes them from a reference), where it goes, what the
/// call's span reports.
pub struct CallShared {
    pub method: Method,
    /// Origin-form target: `/users/1?x=y`.
    pub path: String,
    pub headers: HeaderMap,
    pub target: Arc<Target>,
    /// The balancing key (`hash_key`), when the target has one.
    pub key: Option<String>,
    /// The caller's instance (the server handling the request that makes the call), for spans.
    pub caller_instance: Name,
    /// Attempts made so far (the call's span reports it).
    pub attempts: AtomicU32,
    /// A dry run: every layer says what it would do here and changes nothing.
    pub dry: Option<Box<Mutex<Explain>>>,
    /// The client's address a proxy adds to `X-Forwarded-For` ([`Call::forwarded_for`]).
    ///
    /// [`Call::forwarded_for`]: super::Call::forwarded_for
    pub forwarded_for: Option<HeaderValue>,
    /// The answer's header lines are kept for a proxy to pass on ([`Call::forward`]).
    ///
    /// [`Call::forward`]: super::Call::forward
    pub forward: bool,
    /// May go again after it reached an instance (retry layer).
    pub idempotent: bool,
    /// A gRPC call: HTTP/2 to the instance, its outcome in its gRPC status.
    pub grpc: bool,
}

/// One request on its way down the stack, moved from layer to layer (so kept small): what all
/// its attempts share is behind `call`; what differs per attempt — the trace context the
/// instance continues — is written from `trace`.
pub struct Req {
    pub body: ReqBody,
    /// The attempt's span and the one above it (in `ctx`'s trace), sent as `traceparent` and the
    /// framework's `X-Trace-ID` / `X-Span-ID` / `X-Parent-ID` (set by the attempt layer).
    pub trace: Option<(SpanId, SpanId)>,
    pub call: Arc<CallShared>,
    /// The span this request runs under: the call's span above the pick, the attempt's below.
    pub ctx: SpanContext,
    /// 1 for the first try, 2+ for retries.
    pub attempt: u32,
    /// Instances earlier attempts of this call went to.
    pub tried: Vec<Arc<str>>,
    /// The instance chosen for this attempt (set by the pick layer).
    pub picked: Option<Picked>,
}

impl Req {
    pub fn method(&self) -> &Method {
        &self.call.method
    }

    pub fn path(&self) -> &str {
        &self.call.path
    }

    pub fn headers(&self) -> &HeaderMap {
        &self.call.headers
    }

    /// The trace context the instance continues (the attempt's span) and its parent.
    pub fn trace_context(&self) -> Option<(SpanContext, SpanId)> {
        self.trace.map(|(span_id, parent)| {
            let ctx = SpanContext {
                trace_id: self.ctx.trace_id,
                span_id,
                flags: self.ctx.flags,
            };
            (ctx, parent)
        })
    }

    pub fn target(&self) -> &Arc<Target> {
        &self.call.target
    }

    pub fn is_dry(&self) -> bool {
        self.call.dry.is_some()
    }

    /// Notes what a layer would do, in a dry run.
    pub fn explain(&self, f: impl FnOnce(&mut Explain)) {
        if let Some(d) = &self.call.dry {
            f(&mut d.lock().unwrap_or_else(|e| e.into_inner()));
        }
    }

    /// A copy for the next attempt, when the body can be sent again (the headers are shared).
    pub fn try_clone(&self) -> Option<Req> {
        Some(Req {
            body: self.body.try_clone()?,
            trace: None,
            call: self.call.clone(),
            ctx: self.ctx,
            attempt: self.attempt,
            tried: self.tried.clone(),
            picked: None,
        })
    }
}

/// Put into a response's extensions by the pick layer: which instance answered.
#[derive(Debug, Clone)]
pub struct AnsweredBy(pub Arc<str>);

/// An answer's status as the layers see it: its HTTP status, or for a gRPC call the HTTP
/// status its gRPC status maps to (NOT_FOUND 404, UNAVAILABLE 503…).
pub fn status_of(resp: &Resp, grpc: bool) -> u16 {
    match resp.body().grpc_code {
        Some(code) if grpc && resp.status() == StatusCode::OK => {
            crate::telemetry::grpc::http_status(code)
        }
        _ => resp.status().as_u16(),
    }
}

/// Whether an outcome counts as a failure: no answer, or a 5xx (for gRPC, a status that maps
/// to one: UNAVAILABLE, INTERNAL, DEADLINE_EXCEEDED, UNKNOWN…).
pub fn failed(r: &Result<Resp, CallError>, grpc: bool) -> bool {
    match r {
        Ok(resp) => status_of(resp, grpc) >= 500,
        Err(_) => true,
    }
}

/// Whether another attempt may get a better outcome: over HTTP any failure; over gRPC only
/// UNAVAILABLE, or no answer at all other than a timeout (gRPC's DEADLINE_EXCEEDED: the caller's
/// deadline is spent), as gRPC retry policies are written.
pub fn retryable(r: &Result<Resp, CallError>, grpc: bool) -> bool {
    if !grpc {
        return failed(r, false);
    }
    match r {
        Ok(resp) => resp.body().grpc_code == Some(14),
        Err(CallError::Timeout { .. }) => false,
        Err(_) => true,
    }
}
