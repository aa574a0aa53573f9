//! Headers on the way through: hop-by-hop ones removed (RFC 9110 §7.6.1), trace context passed
//! on — W3C `traceparent`/`tracestate` and the framework's `X-Trace-ID`/`X-Span-ID`/`X-Parent-ID`.
//! An invalid or missing context starts a new trace; it is never an error.

use crate::balance::SeededRng;
use http::{HeaderMap, HeaderName, HeaderValue};
use std::sync::OnceLock;

pub const TRACEPARENT: &str = "traceparent";
pub const X_TRACE_ID: &str = "x-trace-id";
pub const X_SPAN_ID: &str = "x-span-id";
pub const X_PARENT_ID: &str = "x-parent-id";

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Removes hop-by-hop headers, including any the `Connection` header names.
pub fn strip_hop_by_hop(h: &mut HeaderMap) {
    let named: Vec<String> = h
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    for name in HOP_BY_HOP
        .iter()
        .copied()
        .chain(named.iter().map(String::as_str))
    {
        h.remove(name);
    }
    h.remove("proxy-connection");
}

fn rng() -> &'static SeededRng {
    static RNG: OnceLock<SeededRng> = OnceLock::new();
    RNG.get_or_init(|| {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id()) << 32;
        SeededRng::new(seed)
    })
}

pub fn new_trace_id() -> String {
    format!("{:016x}{:016x}", rng().next_u64(), rng().next_u64() | 1)
}

pub fn new_span_id() -> String {
    format!("{:016x}", rng().next_u64() | 1)
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        && s.bytes().any(|b| b != b'0')
}

/// `(trace id, parent span id)` from a valid `traceparent` (version 00).
pub fn parse_traceparent(v: &str) -> Option<(String, String)> {
    let mut parts = v.trim().split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || version != "00"
        || !is_hex(trace, 32)
        || !is_hex(span, 16)
        || flags.len() != 2
    {
        return None;
    }
    Some((trace.to_string(), span.to_string()))
}

fn get<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn set(h: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(HeaderName::from_static(name), v);
    }
}

/// Makes the outgoing headers carry this hop's trace context and returns the trace id: the
/// incoming trace continues (from `traceparent`, else `X-Trace-ID`), with a new span whose
/// parent is the caller's span; without a usable context a new trace starts.
pub fn ensure_trace(h: &mut HeaderMap) -> String {
    let incoming = get(h, TRACEPARENT).and_then(parse_traceparent).or_else(|| {
        let t = get(h, X_TRACE_ID)?.trim().to_ascii_lowercase();
        let t = if is_hex(&t, 32) {
            t
        } else if is_hex(&t, 16) {
            format!("{t:0>32}")
        } else {
            return None;
        };
        let parent = get(h, X_SPAN_ID)
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| is_hex(s, 16))
            .unwrap_or_default();
        Some((t, parent))
    });
    let (trace, parent) = incoming.unwrap_or_else(|| (new_trace_id(), String::new()));
    let span = new_span_id();
    set(h, TRACEPARENT, &format!("00-{trace}-{span}-01"));
    set(h, X_TRACE_ID, &trace);
    set(h, X_SPAN_ID, &span);
    if parent.is_empty() {
        h.remove(X_PARENT_ID);
    } else {
        set(h, X_PARENT_ID, &parent);
    }
    trace
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

    #[test]
    fn continues_a_w3c_trace_with_a_new_span() {
        let mut h = HeaderMap::new();
        set(
            &mut h,
            TRACEPARENT,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        );
        let t = ensure_trace(&mut h);
        assert_eq!(t, "4bf92f3577b34da6a3ce929d0e0e4736");
        let (trace, span) = parse_traceparent(get(&h, TRACEPARENT).unwrap()).unwrap();
        assert_eq!(trace, t);
        assert_ne!(span, "00f067aa0ba902b7");
        assert_eq!(get(&h, X_PARENT_ID), Some("00f067aa0ba902b7"));
        assert_eq!(get(&h, X_TRACE_ID), Some(t.as_str()));
    }

    #[test]
    fn accepts_the_frameworks_headers_and_ignores_garbage() {
        let mut h = HeaderMap::new();
        set(&mut h, X_TRACE_ID, "ABCDEF0123456789abcdef0123456789");
        set(&mut h, X_SPAN_ID, "1111222233334444");
        assert_eq!(ensure_trace(&mut h), "abcdef0123456789abcdef0123456789");
        assert_eq!(get(&h, X_PARENT_ID), Some("1111222233334444"));

        let mut bad = HeaderMap::new();
        set(&mut bad, TRACEPARENT, "00-zzzz-1234-01");
        set(&mut bad, X_TRACE_ID, "not a trace");
        let t = ensure_trace(&mut bad);
        assert!(is_hex(&t, 32), "a new trace starts: {t}");
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
