//! The server side of a hop: a middleware that opens a span per request, continuing the
//! caller's trace from its headers, and records the status. `/health` is not traced: the
//! registry probes it every second and it would drown the traces of real requests.

use super::context;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;
use tracing::Instrument;

#[derive(Clone)]
pub struct ServerSpan {
    pub service: Arc<str>,
    pub instance: Arc<str>,
}

impl ServerSpan {
    pub fn new(service: &str, instance: &str) -> Self {
        ServerSpan {
            service: Arc::from(service),
            instance: Arc::from(instance),
        }
    }
}

pub async fn trace_request(State(s): State<ServerSpan>, req: Request, next: Next) -> Response {
    if req.uri().path() == "/health" {
        return next.run(req).await;
    }
    let remote = context::extract(req.headers());
    let trace_id = remote.map(|r| r.trace_id.to_string());
    let parent = remote.and_then(|r| r.parent).map(|p| p.to_string());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    let span = tracing::info_span!(
        "server",
        otel.name = %format_args!("{} {}", req.method(), route.as_deref().unwrap_or(req.uri().path())),
        service = %s.service,
        instance = %s.instance,
        trace_id = trace_id.as_deref(),
        parent_span_id = parent.as_deref(),
        http.method = %req.method(),
        http.target = %req.uri(),
        http.route = route.as_deref(),
        http.status_code = tracing::field::Empty,
        error = tracing::field::Empty,
    );
    let resp = next.run(req).instrument(span.clone()).await;
    span.record("http.status_code", resp.status().as_u16());
    if resp.status().is_server_error() {
        span.record("error", true);
    }
    resp
}
