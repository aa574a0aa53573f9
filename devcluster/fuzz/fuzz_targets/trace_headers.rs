//! `traceparent` and the framework's `X-Trace-ID` / `X-Span-ID` / `X-Parent-ID` of any value,
//! together: never a panic; a traceparent read is written back the same.
#![no_main]

use devcluster::telemetry::context::{extract, parse_traceparent};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|&b| b == 0);
    let mut h = http::HeaderMap::new();
    for name in ["traceparent", "x-trace-id", "x-span-id", "x-parent-id"] {
        if let Some(v) = parts.next()
            && let Ok(v) = http::HeaderValue::from_bytes(v)
        {
            h.insert(name, v);
        }
    }
    let _ = extract(&h);
    if let Ok(text) = std::str::from_utf8(data)
        && let Some(tp) = parse_traceparent(text)
        && let Some(parent) = tp.parent
    {
        let again = format!("00-{}-{}-01", tp.trace_id, parent);
        let back = parse_traceparent(&again).expect("a written traceparent reads back");
        assert_eq!((back.trace_id, back.parent), (tp.trace_id, tp.parent));
    }
});
