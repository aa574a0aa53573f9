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

/// Requests that matched no route share one label, so junk paths cannot grow the series.
pub const UNMATCHED: &str = "unmatched";

/// A request's trace context: the caller's, continued, or a new trace.
pub fn server_context(headers: &http::HeaderMap) -> (SpanContext, Option<SpanId>) {
    let remote = context::extract(headers);
    let ctx = SpanContext {
        trace_id: remote.map_or_else(TraceId::random, |r| r.trace_id),
        span_id: SpanId::random(),
        flags: remote.map_or(context::SAMPLED, |r| r.flags),
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
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| Arc::<str>::from(m.as_str()));
    let head = (req.method(), req.uri(), req.headers());
    let mut served = Served::begin(&s.metrics, (s.service, s.instance), head, route);
    let (mut resp, events) = path::scoped(served.scope(), next.run(req)).await;
    served.finish(resp.status().as_u16(), events);
    trace_header(&mut resp, served.ctx.trace_id);
    resp
}

/// The status a request is recorded with when its client went away before the answer
/// (nginx's code for it).
pub const CLIENT_CLOSED: u16 = 499;

/// A request being served: its span, metrics and access line, written once it is answered —
/// or, when the client leaves first and the handler is dropped with this, with
/// [`CLIENT_CLOSED`], so a request nobody waited for still shows.
pub struct Served<'a> {
    metrics: &'a ServerMetrics,
    _in_flight: super::metrics::InFlight<'a>,
    service: Name,
    instance: Name,
    pub ctx: SpanContext,
    parent: Option<SpanId>,
    start: path::Stamp,
    method: http::Method,
    /// The route pattern that matched, if one did.
    route: Option<Arc<str>>,
    target: Text,
    config_version: u64,
    done: bool,
}

impl<'a> Served<'a> {
    /// Starts the record of a request (its head), served by `instance` of `service`.
    pub fn begin(
        metrics: &'a ServerMetrics,
        (service, instance): (Name, Name),
        head: (&http::Method, &http::Uri, &http::HeaderMap),
        route: Option<Arc<str>>,
    ) -> Served<'a> {
        let (method, uri, headers) = head;
        let start = path::stamp();
        let (ctx, parent) = server_context(headers);
        let config_version = super::current().map_or(1, |t| {
            t.config_version.load(std::sync::atomic::Ordering::Relaxed)
        });
        metrics.ran_under(config_version);
        Served {
            metrics,
            _in_flight: metrics.start(),
            service,
            instance,
            ctx,
            parent,
            start,
            method: method.clone(),
            route,
            target: Text::new(uri.path_and_query().map_or(uri.path(), |p| p.as_str())),
            config_version,
            done: false,
        }
    }

    /// The scope the request's handling runs in: calls it makes and what it logs join its trace.
    pub fn scope(&self) -> Scope {
        Scope {
            ctx: self.ctx,
            service: self.service,
            instance: self.instance,
        }
    }

    /// Writes the request's metrics, access line and span (once).
    pub fn finish(&mut self, status: u16, events: Vec<super::span::SpanEvent>) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let metrics = self.metrics;
        let names = metrics.route_names(self.route.as_deref().unwrap_or(UNMATCHED), &self.method);
        let took = path::stamp().at.saturating_duration_since(self.start.at);
        metrics.record_route(&names, status, took);
        let duration_ns = took.as_nanos() as u64;
        let method = Name::method(&self.method);
        path::access(Access {
            at_unix_ns: self.start.unix_ns + duration_ns,
            service: self.service,
            instance: self.instance,
            method,
            route: names.route,
            status,
            took_ns: duration_ns,
            trace_id: self.ctx.trace_id,
            span_id: self.ctx.span_id,
        });
        path::record(PathSpan::Server(ServerSpan {
            timing: Timing::new(
                self.ctx,
                self.parent,
                self.start.unix_ns,
                duration_ns,
                status >= 500,
            ),
            service: self.service,
            instance: self.instance,
            method,
            op: names.op,
            route: if self.route.is_some() {
                names.route
            } else {
                Name::EMPTY
            },
            target: std::mem::take(&mut self.target),
            status,
            config_version: self.config_version as u32,
            events: (!events.is_empty()).then(|| Box::new(events)),
        }));
    }
}

impl Drop for Served<'_> {
    fn drop(&mut self) {
        self.finish(CLIENT_CLOSED, Vec::new());
    }
}
