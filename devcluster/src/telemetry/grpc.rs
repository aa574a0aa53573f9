//! gRPC on the traffic path. A gRPC call is an HTTP/2 POST whose outcome travels in the
//! `grpc-status` header or trailer; here it is recorded like any HTTP hop (the same span,
//! metrics and access line), labelled with the method [`grpc_method`] and the call's full
//! method as its route, and with its status as the HTTP status gRPC's own mapping gives it
//! (NOT_FOUND 404, UNAVAILABLE 503…), so errors count as errors in every tab.
//!
//! Only a status the server sent before any message (a "trailers-only" answer, how every unary
//! error travels) is seen: a status in the trailers after a message reads as OK.

use super::http::{Served, ServerSpans, trace_header};
use super::names::grpc_method;
use super::path;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;

/// The header (or trailer) a gRPC status travels in.
pub const STATUS_HEADER: http::HeaderName = http::HeaderName::from_static("grpc-status");

/// The HTTP status of a gRPC code, as gRPC's HTTP mapping (and grpc-gateway) give it.
pub fn http_status(code: i32) -> u16 {
    match code {
        0 => 200,          // OK
        1 => 499,          // CANCELLED
        3 | 9 | 11 => 400, // INVALID_ARGUMENT, FAILED_PRECONDITION, OUT_OF_RANGE
        4 => 504,          // DEADLINE_EXCEEDED
        5 => 404,          // NOT_FOUND
        6 | 10 => 409,     // ALREADY_EXISTS, ABORTED
        7 => 403,          // PERMISSION_DENIED
        8 => 429,          // RESOURCE_EXHAUSTED
        12 => 501,         // UNIMPLEMENTED
        14 => 503,         // UNAVAILABLE
        16 => 401,         // UNAUTHENTICATED
        _ => 500,          // UNKNOWN, INTERNAL, DATA_LOSS and codes gRPC has not defined
    }
}

/// The gRPC code of a trailers-only answer, if `headers` carry one.
pub fn status_code(headers: &http::HeaderMap) -> Option<i32> {
    headers
        .get(&STATUS_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// An answer's status as its hop is recorded: its HTTP status, or the gRPC status it carries.
pub fn effective_status<B>(resp: &http::Response<B>) -> u16 {
    match status_code(resp.headers()) {
        Some(code) if resp.status() == http::StatusCode::OK => http_status(code),
        _ => resp.status().as_u16(),
    }
}

/// What the gRPC middleware of one instance needs: its span names and metrics, and the full
/// method names it serves (`/pkg.Service/Method`), the only routes it labels by name (others
/// are `unmatched`) so a client calling made-up methods cannot grow the series.
#[derive(Clone)]
pub struct GrpcSpans {
    pub spans: ServerSpans,
    pub methods: Arc<[Arc<str>]>,
}

/// The server side of a gRPC hop: continues the caller's trace from its metadata (`traceparent`
/// or the framework's `X-Trace-ID`), runs the call in its scope and records it. Health checks
/// and reflection are neither traced nor counted, as `/health` is not over HTTP.
pub async fn trace_grpc(State(s): State<GrpcSpans>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path.starts_with("/grpc.health.") || path.starts_with("/grpc.reflection.") {
        return next.run(req).await;
    }
    let route = s.methods.iter().find(|m| ***m == *path).cloned();
    let head = (grpc_method(), req.uri(), req.headers());
    let spans = &s.spans;
    let mut served = Served::begin(&spans.metrics, (spans.service, spans.instance), head, route);
    let (mut resp, events) = path::scoped(served.scope(), next.run(req)).await;
    served.finish(effective_status(&resp), events);
    trace_header(&mut resp, served.ctx.trace_id);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_the_http_statuses_grpc_gives_them() {
        assert_eq!(http_status(0), 200);
        assert_eq!(http_status(5), 404);
        assert_eq!(http_status(3), 400);
        assert_eq!(http_status(14), 503);
        assert_eq!(http_status(4), 504);
        assert_eq!(http_status(99), 500);
        let trailers_only = http::Response::builder()
            .header(STATUS_HEADER, "5")
            .body(())
            .unwrap();
        assert_eq!(effective_status(&trailers_only), 404);
        let plain = http::Response::builder().status(502).body(()).unwrap();
        assert_eq!(effective_status(&plain), 502);
    }
}
