//! Trace context on the wire. Incoming: W3C `traceparent` wins (version 00, or a later one's
//! first four fields); else `X-Trace-ID` (32 hex digits, or 16 padded with zeros on the left)
//! with `X-Span-ID` as the caller's span. Anything invalid starts a new trace, never an error.
//! Outgoing: both forms.

use crate::balance::SeededRng;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::sync::OnceLock;

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";
pub const X_TRACE_ID: &str = "x-trace-id";
pub const X_SPAN_ID: &str = "x-span-id";
pub const X_PARENT_ID: &str = "x-parent-id";

/// The same names, made once (a name given as text is parsed on every lookup).
pub mod names {
    use http::HeaderName;
    pub const TRACEPARENT: HeaderName = HeaderName::from_static(super::TRACEPARENT);
    pub const X_TRACE_ID: HeaderName = HeaderName::from_static(super::X_TRACE_ID);
    pub const X_SPAN_ID: HeaderName = HeaderName::from_static(super::X_SPAN_ID);
    pub const X_PARENT_ID: HeaderName = HeaderName::from_static(super::X_PARENT_ID);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TraceId(pub u128);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SpanId(pub u64);

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

fn hex_digits(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl TraceId {
    /// 32 hex digits, or 16 (the framework's short ids, zero-padded); never all zeros.
    pub fn parse(s: &str) -> Option<TraceId> {
        let s = s.trim();
        if !(hex_digits(s, 32) || hex_digits(s, 16)) {
            return None;
        }
        u128::from_str_radix(s, 16)
            .ok()
            .filter(|v| *v != 0)
            .map(TraceId)
    }

    pub fn random() -> TraceId {
        TraceId((u128::from(rng().next_u64()) << 64) | u128::from(rng().next_u64() | 1))
    }
}

impl SpanId {
    pub fn parse(s: &str) -> Option<SpanId> {
        let s = s.trim();
        if !hex_digits(s, 16) {
            return None;
        }
        u64::from_str_radix(s, 16)
            .ok()
            .filter(|v| *v != 0)
            .map(SpanId)
    }

    pub fn random() -> SpanId {
        SpanId(rng().next_u64() | 1)
    }
}

macro_rules! hex_serde {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                <$t>::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("bad id {s:?}")))
            }
        }
    };
}
hex_serde!(TraceId);
hex_serde!(SpanId);

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

/// One span's place in a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanContext {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// W3C trace flags, passed on as the trace's first caller set them (bit 0: sampled), so a
    /// downstream SDK that samples by its parent keeps the caller's decision.
    pub flags: u8,
}

/// The caller's context read from request headers: its trace and (when given) its span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remote {
    pub trace_id: TraceId,
    pub parent: Option<SpanId>,
    /// The caller's W3C trace flags (bit 0: sampled), to pass on as they came; the
    /// framework's headers carry none and count as sampled.
    pub flags: u8,
}

/// The trace flags of a context that says nothing of them: sampled.
pub const SAMPLED: u8 = 0x01;

fn get<'a>(h: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    // A few headers (most requests): comparing names costs less than hashing this one.
    let value = if h.len() <= 8 {
        h.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    } else {
        h.get(name)
    };
    value.and_then(|v| v.to_str().ok())
}

fn lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `(trace, parent, flags)` from a valid `traceparent`, as W3C Trace Context reads it:
/// version 00 is exactly its four fields; a later version (not `ff`) may carry more after
/// them, and its first four are read the same way.
pub fn parse_traceparent(v: &str) -> Option<Remote> {
    let v = v.trim();
    let (head, rest) = (v.get(..55)?, &v[55..]);
    let mut parts = head.split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let more_allowed = version != "00";
    if parts.next().is_some()
        || !lower_hex(version, 2)
        || version == "ff"
        || !lower_hex(trace, 32)
        || !lower_hex(span, 16)
        || !lower_hex(flags, 2)
        || !(rest.is_empty() || (more_allowed && rest.starts_with('-')))
    {
        return None;
    }
    Some(Remote {
        trace_id: TraceId::parse(trace)?,
        parent: Some(SpanId::parse(span)?),
        flags: u8::from_str_radix(flags, 16).ok()?,
    })
}

/// The caller's context, if the headers carry a usable one.
pub fn extract(h: &HeaderMap) -> Option<Remote> {
    if let Some(r) = get(h, &names::TRACEPARENT).and_then(parse_traceparent) {
        return Some(r);
    }
    let trace_id = TraceId::parse(get(h, &names::X_TRACE_ID)?)?;
    Some(Remote {
        trace_id,
        parent: get(h, &names::X_SPAN_ID).and_then(SpanId::parse),
        flags: SAMPLED,
    })
}

/// Every byte as its two lowercase hex digits.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut t = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [DIGITS[i >> 4], DIGITS[i & 0xf]];
        i += 1;
    }
    t
};

/// `v` as 16 lowercase hex digits into `out`, a byte at a time.
fn hex64(v: u64, out: &mut [u8]) {
    for (i, b) in v.to_be_bytes().iter().enumerate() {
        out[2 * i..2 * i + 2].copy_from_slice(&HEX_PAIRS[*b as usize]);
    }
}

fn hex128(v: u128, out: &mut [u8]) {
    hex64((v >> 64) as u64, &mut out[..16]);
    hex64(v as u64, &mut out[16..32]);
}

/// A trace id as a header value, as [`trace_hex`] writes it, without formatting machinery.
pub fn trace_value(t: TraceId) -> HeaderValue {
    HeaderValue::from_bytes(&trace_hex(t)).unwrap_or(HeaderValue::from_static("0"))
}

/// A trace id's hex digits as a response's `X-Trace-ID` gives them back: 32, or 16 for an id
/// that fits in 64 bits (the framework's short ids: a caller that sent 16 digits reads the
/// same 16 back). A trace this cluster starts has 128 random bits.
#[derive(Debug, Clone, Copy)]
pub struct TraceHex {
    buf: [u8; 32],
    short: bool,
}

impl std::ops::Deref for TraceHex {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        if self.short {
            &self.buf[16..]
        } else {
            &self.buf
        }
    }
}

/// A trace id as its hex digits: see [`TraceHex`].
pub fn trace_hex(t: TraceId) -> TraceHex {
    let mut buf = [0u8; 32];
    hex128(t.0, &mut buf);
    TraceHex {
        buf,
        short: t.0 >> 64 == 0,
    }
}

fn span_value(s: SpanId) -> HeaderValue {
    let mut buf = [0u8; 16];
    hex64(s.0, &mut buf);
    HeaderValue::from_bytes(&buf).unwrap_or(HeaderValue::from_static("0"))
}

/// Two lowercase hex digits.
fn hex8(v: u8) -> [u8; 2] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    [HEX[usize::from(v >> 4)], HEX[usize::from(v & 0xf)]]
}

/// Writes `ctx` (and its parent) as HTTP/1.1 header lines straight into a request head, in both
/// forms: no header map, no allocation.
pub fn write_headers(out: &mut Vec<u8>, ctx: SpanContext, parent: SpanId) {
    let mut hex = [0u8; 32];
    hex128(ctx.trace_id.0, &mut hex);
    out.extend_from_slice(b"traceparent: 00-");
    out.extend_from_slice(&hex);
    out.push(b'-');
    let mut span = [0u8; 16];
    hex64(ctx.span_id.0, &mut span);
    out.extend_from_slice(&span);
    out.push(b'-');
    out.extend_from_slice(&hex8(ctx.flags));
    out.extend_from_slice(b"\r\nx-trace-id: ");
    out.extend_from_slice(&hex);
    out.extend_from_slice(b"\r\nx-span-id: ");
    out.extend_from_slice(&span);
    out.extend_from_slice(b"\r\nx-parent-id: ");
    hex64(parent.0, &mut span);
    out.extend_from_slice(&span);
    out.extend_from_slice(b"\r\n");
}

/// Writes `ctx` as the calling span into outgoing gRPC metadata: `traceparent` only, what
/// OpenTelemetry's gRPC instrumentation reads (the framework's `X-*` headers are its HTTP
/// form; each header is encoded again on every call).
pub fn inject_traceparent(h: &mut HeaderMap, ctx: SpanContext) {
    let mut tp = [0u8; 55];
    tp[..3].copy_from_slice(b"00-");
    hex128(ctx.trace_id.0, &mut tp[3..35]);
    tp[35] = b'-';
    hex64(ctx.span_id.0, &mut tp[36..52]);
    tp[52] = b'-';
    tp[53..].copy_from_slice(&hex8(ctx.flags));
    if let Ok(v) = HeaderValue::from_bytes(&tp) {
        h.insert(names::TRACEPARENT, v);
    }
}

/// Writes `ctx` as the calling span into outgoing headers, in both forms; `parent` is the
/// span above it (the framework's `X-Parent-ID`). `tracestate` passes through untouched.
pub fn inject(h: &mut HeaderMap, ctx: SpanContext, parent: Option<SpanId>) {
    // "00-" trace "-" span "-" flags
    inject_traceparent(h, ctx);
    h.insert(names::X_TRACE_ID, trace_value(ctx.trace_id));
    h.insert(names::X_SPAN_ID, span_value(ctx.span_id));
    match parent {
        Some(p) => {
            h.insert(names::X_PARENT_ID, span_value(p));
        }
        None => {
            h.remove(names::X_PARENT_ID);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn traceparent_wins_and_framework_headers_are_understood() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let r = extract(&headers(&[
            (TRACEPARENT, tp),
            (X_TRACE_ID, "1234567890abcdef"),
        ]))
        .unwrap();
        assert_eq!(r.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(r.parent.unwrap().to_string(), "00f067aa0ba902b7");

        let r = extract(&headers(&[(X_TRACE_ID, "1234567890abcdef")])).unwrap();
        assert_eq!(r.trace_id.to_string(), "00000000000000001234567890abcdef");
        assert_eq!(r.parent, None);
        let r = extract(&headers(&[
            (X_TRACE_ID, "4bf92f3577b34da6a3ce929d0e0e4736"),
            (X_SPAN_ID, "00f067aa0ba902b7"),
        ]))
        .unwrap();
        assert_eq!(r.parent, Some(SpanId(0x00f0_67aa_0ba9_02b7)));
    }

    #[test]
    fn invalid_context_is_ignored_never_an_error() {
        for bad in [
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0X",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "garbage",
            "",
        ] {
            assert_eq!(extract(&headers(&[(TRACEPARENT, bad)])), None, "{bad}");
        }
        assert_eq!(extract(&headers(&[(X_TRACE_ID, "xyz")])), None);
        assert_eq!(extract(&headers(&[(X_TRACE_ID, "0000000000000000")])), None);
    }

    #[test]
    fn flags_are_read_and_later_versions_give_their_first_four_fields() {
        let tp = |v: &str| parse_traceparent(v).map(|r| (r.trace_id.0, r.parent, r.flags));
        let (trace, span) = (
            0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736,
            SpanId(0x00f0_67aa_0ba9_02b7),
        );
        assert_eq!(
            tp("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"),
            Some((trace, Some(span), 0)),
            "not sampled, as sent"
        );
        for later in [
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-ever",
        ] {
            assert_eq!(tp(later), Some((trace, Some(span), 1)), "{later}");
        }
        let framework = extract(&headers(&[(X_TRACE_ID, "1234567890abcdef")])).unwrap();
        assert_eq!(framework.flags, SAMPLED);
    }

    #[test]
    fn a_short_trace_id_comes_back_as_the_16_digits_sent() {
        let short = TraceId::parse("1234567890abcdef").unwrap();
        assert_eq!(&*trace_hex(short), b"1234567890abcdef");
        assert_eq!(trace_value(short), "1234567890abcdef");
        let long = TraceId::parse("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        assert_eq!(&*trace_hex(long), b"4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn inject_writes_both_forms_and_round_trips() {
        let ctx = SpanContext {
            trace_id: TraceId::random(),
            span_id: SpanId::random(),
            flags: SAMPLED,
        };
        let mut h = headers(&[(X_PARENT_ID, "1111111111111111")]);
        inject(&mut h, ctx, None);
        assert!(h.get(X_PARENT_ID).is_none());
        let back = extract(&h).unwrap();
        assert_eq!(
            (back.trace_id, back.parent),
            (ctx.trace_id, Some(ctx.span_id))
        );
        assert_eq!(h[X_TRACE_ID].to_str().unwrap(), ctx.trace_id.to_string());
        inject(&mut h, ctx, Some(SpanId(7)));
        assert_eq!(h[X_PARENT_ID].to_str().unwrap(), "0000000000000007");
    }
}
