//! The server side of a hop: a middleware that makes each request a traffic-path span,
//! continuing the caller's trace from its headers, runs the handler in the request's scope (so
//! calls it makes and anything it logs join the trace), answers with `X-Trace-ID` as the
//! framework we follow does, counts the request in the server's metrics and writes its access
//! line. `/health` and `/metrics` are neither traced nor counted: probes and scrapers would
//! drown the real requests.

use super::context::{self, SpanContext, SpanId, TraceId};
use super::metrics::ServerMetrics;
use super::names::Name;
use super::path::{self, Access, PathSpan, Scope, ServerSpan, Text, Timing};
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;

#[derive(Clone)]
pub struct ServerSpans {
    pub service: Name,
    pub instance: Name,
    pub metrics: Arc<ServerMetrics>,
}

impl ServerSpans {
    pub fn new(metrics: Arc<ServerMetrics>) -> Self {
        ServerSpans {
            service: Name::of(&metrics.service),
            instance: Name::of(&metrics.instance),
            metrics,
        }
    }
}

/// Put into a response's extensions by a handler that routes by itself (the gateway), so the
/// metrics group by route pattern rather than raw path.
#[derive(Clone, Debug)]
pub struct RouteName(pub String);

/// Requests that matched no route share one label, so junk paths cannot grow the series.
pub const UNMATCHED: &str = "unmatched";

/// A request's trace context: the caller's, continued, or a new trace.
pub fn server_context(headers: &http::HeaderMap) -> (SpanContext, Option<SpanId>) {
    let remote = context::extract(headers);
    let ctx = SpanContext {
        trace_id: remote.map_or_else(TraceId::random, |r| r.trace_id),
        span_id: SpanId::random(),
    };
    (ctx, remote.and_then(|r| r.parent))
}

/// `X-Trace-ID: <trace>` on a response, as the framework we follow answers.
pub fn trace_header<B>(resp: &mut http::Response<B>, trace: TraceId) {
    resp.headers_mut()
        .insert(context::names::X_TRACE_ID, context::trace_value(trace));
}

pub async fn trace_request(State(s): State<ServerSpans>, req: Request, next: Next) -> Response {
    if matches!(req.uri().path(), "/health" | "/metrics") {
        return next.run(req).await;
    }
    let start = path::stamp();
    let (start_unix_ns, started) = (start.unix_ns, start.at);
    let _in_flight = s.metrics.start();
    let (ctx, parent) = server_context(req.headers());
    let http_method = req.method().clone();
    let method = Name::method(&http_method);
    let target = Text::new(
        req.uri()
            .path_and_query()
            .map_or(req.uri().path(), |p| p.as_str()),
    );
    let matched = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| s.metrics.route_names(m.as_str(), &http_method));
    let config_version = crate::config::center::live_version();
    s.metrics.ran_under(config_version);
    let scope = Scope {
        ctx,
        service: s.service,
        instance: s.instance,
    };
    let (mut resp, events) = path::scoped(scope, next.run(req)).await;
    let status = resp.status().as_u16();
    // A handler that routes by itself (the gateway) names the route it took.
    let named = resp
        .extensions()
        .get::<RouteName>()
        .map(|r| s.metrics.route_names(&r.0, &http_method));
    let matched_route = named.is_some() || matched.is_some();
    let names = named
        .or(matched)
        .unwrap_or_else(|| s.metrics.route_names(UNMATCHED, &http_method));
    let took = started.elapsed();
    s.metrics.record_route(&names, status, took);
    trace_header(&mut resp, ctx.trace_id);
    let duration_ns = took.as_nanos() as u64;
    let route_name = if matched_route {
        names.route
    } else {
        Name::EMPTY
    };
    path::access(Access {
        at_unix_ns: start_unix_ns + duration_ns,
        service: s.service,
        instance: s.instance,
        method,
        route: names.route,
        status,
        took_ns: duration_ns,
        trace_id: ctx.trace_id,
        span_id: ctx.span_id,
    });
    path::record(PathSpan::Server(ServerSpan {
        timing: Timing::new(ctx, parent, start_unix_ns, duration_ns, status >= 500),
        service: s.service,
        instance: s.instance,
        method,
        op: names.op,
        route: route_name,
        target,
        status,
        config_version: config_version as u32,
        events: (!events.is_empty()).then(|| Box::new(events)),
    }));
    resp
}
