//! Headers on the way through: hop-by-hop ones removed (RFC 9110 §7.6.1), trace context passed
//! on — W3C `traceparent`/`tracestate` and the framework's `X-Trace-ID`/`X-Span-ID`/`X-Parent-ID`.
//! An invalid or missing context starts a new trace; it is never an error.

use crate::telemetry::context::{self, SpanContext, SpanId, TraceId};
use http::{HeaderMap, HeaderName};

/// Whether `n` is a hop-by-hop header (RFC 9110 §7.6.1), `Proxy-Connection` included.
fn hop_by_hop(n: &HeaderName) -> bool {
    is_hop_by_hop(n.as_str().as_bytes())
}

/// The same for a name as sent (any case): the proxy's lines ([`super::http1::Forwarded`]) are
/// never parsed into names.
pub(crate) fn is_hop_by_hop(name: &[u8]) -> bool {
    [
        &b"connection"[..],
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"keep-alive",
        b"proxy-connection",
    ]
    .iter()
    .any(|h| h.eq_ignore_ascii_case(name))
}

/// Removes hop-by-hop headers, including any the `Connection` header names. Most requests
/// have none: then this is one look at each name, nothing more.
pub fn strip_hop_by_hop(h: &mut HeaderMap) {
    if !h.keys().any(hop_by_hop) {
        return;
    }
    let named: Vec<HeaderName> = h
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| HeaderName::from_bytes(s.trim().as_bytes()).ok())
        .collect();
    let hop: Vec<HeaderName> = h.keys().filter(|k| hop_by_hop(k)).cloned().collect();
    for name in hop.iter().chain(&named) {
        h.remove(name);
    }
}

/// Makes the outgoing headers carry the calling span's context and returns its trace id.
/// `span` is the span of this attempt and `parent` the one above it, as the tracing layer
/// recorded them; without a layer (no subscriber), the incoming trace continues under a new
/// span id, or a new trace starts — never an error.
pub fn propagate(
    h: &mut HeaderMap,
    span: Option<SpanContext>,
    parent: Option<SpanContext>,
) -> TraceId {
    let (ctx, parent_id) = match span {
        Some(ctx) => (ctx, parent.map(|p| p.span_id)),
        None => {
            let remote = context::extract(h);
            let ctx = SpanContext {
                trace_id: remote.map_or_else(TraceId::random, |r| r.trace_id),
                span_id: SpanId::random(),
                flags: remote.map_or(context::SAMPLED, |r| r.flags),
            };
            (ctx, remote.and_then(|r| r.parent))
        }
    };
    context::inject(h, ctx, parent_id);
    ctx.trace_id
}

/// The innermost cause of an error chain: "Connection refused (os error 111)" rather than the
/// client library's wrapping.
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        last = inner.to_string();
        src = inner.source();
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::telemetry::context::{TRACEPARENT, X_PARENT_ID, X_SPAN_ID, X_TRACE_ID};
    use http::{HeaderName, HeaderValue};

    fn set(h: &mut HeaderMap, name: &'static str, v: &str) {
        h.insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(v).unwrap(),
        );
    }

    fn get<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
        h.get(name).and_then(|v| v.to_str().ok())
    }

    #[test]
    fn the_attempt_span_is_what_the_callee_sees() {
        let span = SpanContext {
            trace_id: TraceId(0xabc),
            span_id: SpanId(0x22),
            flags: context::SAMPLED,
        };
        let parent = SpanContext {
            trace_id: TraceId(0xabc),
            span_id: SpanId(0x11),
            flags: context::SAMPLED,
        };
        let mut h = HeaderMap::new();
        set(
            &mut h,
            TRACEPARENT,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        );
        assert_eq!(propagate(&mut h, Some(span), Some(parent)), TraceId(0xabc));
        assert_eq!(
            get(&h, TRACEPARENT),
            Some("00-00000000000000000000000000000abc-0000000000000022-01")
        );
        assert_eq!(get(&h, X_SPAN_ID), Some("0000000000000022"));
        assert_eq!(get(&h, X_PARENT_ID), Some("0000000000000011"));
    }

    #[test]
    fn without_a_layer_the_incoming_trace_continues_or_a_new_one_starts() {
        let mut h = HeaderMap::new();
        set(&mut h, X_TRACE_ID, "ABCDEF0123456789abcdef0123456789");
        set(&mut h, X_SPAN_ID, "1111222233334444");
        let t = propagate(&mut h, None, None);
        assert_eq!(t.to_string(), "abcdef0123456789abcdef0123456789");
        assert_eq!(get(&h, X_PARENT_ID), Some("1111222233334444"));
        assert_ne!(get(&h, X_SPAN_ID), Some("1111222233334444"));

        let mut bad = HeaderMap::new();
        set(&mut bad, TRACEPARENT, "00-zzzz-1234-01");
        set(&mut bad, X_TRACE_ID, "not a trace");
        let t = propagate(&mut bad, None, None);
        assert_ne!(t, TraceId(0), "a new trace starts");
        assert!(bad.get(X_PARENT_ID).is_none());
    }

    #[test]
    fn hop_by_hop_headers_go_including_those_connection_names() {
        let mut h = HeaderMap::new();
        set(&mut h, "connection", "keep-alive, x-private");
        set(&mut h, "keep-alive", "timeout=5");
        set(&mut h, "x-private", "1");
        set(&mut h, "transfer-encoding", "chunked");
        set(&mut h, "x-kept", "yes");
        strip_hop_by_hop(&mut h);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["x-kept"]);
    }
}
