//! The server side of a hop: a middleware that opens a span per request, continuing the
//! caller's trace from its headers, records the status, and counts the request in the
//! server's metrics. `/health` and `/metrics` are neither traced nor counted: probes and
//! scrapers would drown the real requests.

use super::context;
use super::metrics::ServerMetrics;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;
use tracing::Instrument;

#[derive(Clone)]
pub struct ServerSpan {
    pub service: Arc<str>,
    pub instance: Arc<str>,
    pub metrics: Arc<ServerMetrics>,
}

impl ServerSpan {
    pub fn new(metrics: Arc<ServerMetrics>) -> Self {
        ServerSpan {
            service: Arc::from(metrics.service.as_str()),
            instance: Arc::from(metrics.instance.as_str()),
            metrics,
        }
    }
}

/// Put into a response's extensions by a handler that routes by itself (the gateway), so the
/// metrics group by route pattern rather than raw path.
#[derive(Clone, Debug)]
pub struct RouteName(pub String);

/// Requests that matched no route share one label, so junk paths cannot grow the series.
const UNMATCHED: &str = "unmatched";

pub async fn trace_request(State(s): State<ServerSpan>, req: Request, next: Next) -> Response {
    if matches!(req.uri().path(), "/health" | "/metrics") {
        return next.run(req).await;
    }
    let started = std::time::Instant::now();
    let _in_flight = s.metrics.start();
    let method = req.method().clone();
    let remote = context::extract(req.headers());
    let trace_id = remote.map(|r| r.trace_id.to_string());
    let parent = remote.and_then(|r| r.parent).map(|p| p.to_string());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    let config_version = crate::config::center::live_version();
    s.metrics.ran_under(config_version);
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
        // The config version the request ran under (the config center's, process-wide).
        config.version = config_version,
    );
    let resp = next.run(req).instrument(span.clone()).await;
    span.record("http.status_code", resp.status().as_u16());
    if resp.status().is_server_error() {
        span.record("error", true);
    }
    let route = resp
        .extensions()
        .get::<RouteName>()
        .map(|r| r.0.as_str())
        .or(route.as_deref())
        .unwrap_or(UNMATCHED);
    let took = started.elapsed();
    let status = resp.status().as_u16();
    s.metrics.record(route, method.as_str(), status, took);
    // The access log line, in the request's span (debug: `serve` prints info and above).
    span.in_scope(|| {
        tracing::debug!(
            status,
            took_ms = took.as_secs_f64() * 1000.0,
            "{method} {route} → {status}"
        );
    });
    resp
}
