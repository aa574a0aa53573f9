//! The traffic path's own spans — a server's request, a client's call, each attempt of it —
//! and the access line of each request, recorded straight into the stores as fixed-size
//! records of [`Name`]s and numbers. Their text (operation names, attributes, the access line's
//! message) is made when someone reads them, not on every request; a user's own `tracing` spans
//! keep going through the `tracing` layer.
//!
//! A request's [`Scope`] (its trace, the span it runs under, who serves it) is set for the
//! handler's task, so a call made while handling it, and any `tracing` span or event inside
//! it, joins its trace.

pub use super::clock::{Stamp, now, recent_unix_ms, stamp, unix_ns};
use super::context::{SpanContext, SpanId, TraceId};
use super::logs::Level;
use super::names::Name;
use super::span::{SpanEvent, SpanRecord};
use crate::balance::{Reason, Strategy};
use crate::breaker::State;
use std::cell::RefCell;
use std::future::Future;

/// Where a request's spans belong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope {
    /// The span the handler runs under (its server span).
    pub ctx: SpanContext,
    pub service: Name,
    pub instance: Name,
}

/// Events logged inside a scope with no `tracing` span of their own: they become events of the
/// scope's server span, as they would of a `tracing` span.
const MAX_SCOPE_EVENTS: usize = 64;

struct Current {
    scope: Scope,
    events: Vec<SpanEvent>,
}

tokio::task_local! {
    static CURRENT: RefCell<Current>;
}

/// The scope of the request being handled by this task, if any.
pub fn current() -> Option<Scope> {
    CURRENT.try_with(|c| c.borrow().scope).ok()
}

/// Runs `f` in `scope`; returns its output and the events logged in it meanwhile.
pub async fn scoped<F: Future>(scope: Scope, f: F) -> (F::Output, Vec<SpanEvent>) {
    let cell = RefCell::new(Current {
        scope,
        events: Vec::new(),
    });
    CURRENT
        .scope(cell, async move {
            let out = f.await;
            let events = CURRENT
                .try_with(|c| std::mem::take(&mut c.borrow_mut().events))
                .unwrap_or_default();
            (out, events)
        })
        .await
}

/// Adds an event to the current scope's span; false when there is no scope.
pub(crate) fn add_scope_event(event: SpanEvent) -> bool {
    CURRENT
        .try_with(|c| {
            let mut c = c.borrow_mut();
            if c.events.len() < MAX_SCOPE_EVENTS {
                c.events.push(event);
            }
        })
        .is_ok()
}

/// A span's place in its trace and its time. The ids are kept as plain words (a `u128` field
/// would align the record to 16 bytes: 100 000 of them are stored).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    trace: [u64; 2],
    span: u64,
    /// 0: no parent.
    parent: u64,
    pub start_unix_ns: u64,
    pub duration_ns: u64,
    pub error: bool,
    /// The trace's W3C flags (in the padding after `error`: no bigger a record).
    flags: u8,
}

impl Timing {
    pub fn new(
        ctx: SpanContext,
        parent: Option<SpanId>,
        start_unix_ns: u64,
        duration_ns: u64,
        error: bool,
    ) -> Timing {
        Timing {
            trace: [(ctx.trace_id.0 >> 64) as u64, ctx.trace_id.0 as u64],
            span: ctx.span_id.0,
            parent: parent.map_or(0, |p| p.0),
            start_unix_ns,
            duration_ns,
            error,
            flags: ctx.flags,
        }
    }

    pub fn ctx(&self) -> SpanContext {
        SpanContext {
            trace_id: TraceId((u128::from(self.trace[0]) << 64) | u128::from(self.trace[1])),
            span_id: SpanId(self.span),
            flags: self.flags,
        }
    }

    pub fn parent(&self) -> Option<SpanId> {
        (self.parent != 0).then_some(SpanId(self.parent))
    }
}

/// A short text kept inline (a request target like `/api/users/42`), longer ones boxed: 16
/// bytes in all.
#[derive(Debug, Clone, PartialEq)]
pub enum Text {
    Inline { len: u8, bytes: [u8; INLINE_TEXT] },
    Heap(Box<Box<str>>),
}

const INLINE_TEXT: usize = 14;

impl Default for Text {
    fn default() -> Text {
        Text::Inline {
            len: 0,
            bytes: [0; INLINE_TEXT],
        }
    }
}

impl Text {
    pub fn new(s: &str) -> Text {
        if s.len() <= INLINE_TEXT {
            let mut bytes = [0; INLINE_TEXT];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            Text::Inline {
                len: s.len() as u8,
                bytes,
            }
        } else {
            Text::Heap(Box::new(s.into()))
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Text::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..*len as usize]).unwrap_or_default()
            }
            Text::Heap(s) => s,
        }
    }
}

/// A server's span for one request (the gateway's or an instance's).
#[derive(Debug, Clone, PartialEq)]
pub struct ServerSpan {
    pub timing: Timing,
    pub service: Name,
    pub instance: Name,
    pub method: Name,
    /// "GET /api/users/{id}": the operation.
    pub op: Name,
    /// The matched route pattern ([`Name::EMPTY`] when none matched).
    pub route: Name,
    pub target: Text,
    pub status: u16,
    pub config_version: u32,
    /// Events logged while handling it (rare: most requests log nothing).
    pub events: Option<Box<Vec<SpanEvent>>>,
}

/// A client's span for one call to a service (all its attempts).
#[derive(Debug, Clone, PartialEq)]
pub struct CallSpan {
    pub timing: Timing,
    pub service: Name,
    pub instance: Name,
    /// "call user-service".
    pub op: Name,
    pub target: Name,
    pub method: Name,
    pub attempts: u32,
    pub status: u16,
}

/// One attempt of a call: the instance the balancer chose and why, the breaker guarding it.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptSpan {
    pub timing: Timing,
    pub service: Name,
    pub instance: Name,
    /// "GET user-service".
    pub op: Name,
    pub attempt: u8,
    pub peer: Name,
    pub strategy: Strategy,
    /// A `TwoChoices::other` here is the other candidate's [`Name`] number.
    pub reason: Reason,
    pub breaker: Name,
    pub breaker_state: State,
    pub status: u16,
    /// Why it failed, when it got no answer.
    pub failure: Option<Box<String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PathSpan {
    Server(ServerSpan),
    Call(CallSpan),
    Attempt(AttemptSpan),
}

/// `(key, value)` attributes as the generic records carry them.
type Attributes = Vec<(String, String)>;

impl PathSpan {
    pub fn timing(&self) -> &Timing {
        match self {
            PathSpan::Server(s) => &s.timing,
            PathSpan::Call(s) => &s.timing,
            PathSpan::Attempt(s) => &s.timing,
        }
    }

    pub fn service(&self) -> Name {
        match self {
            PathSpan::Server(s) => s.service,
            PathSpan::Call(s) => s.service,
            PathSpan::Attempt(s) => s.service,
        }
    }

    pub fn instance(&self) -> Name {
        match self {
            PathSpan::Server(s) => s.instance,
            PathSpan::Call(s) => s.instance,
            PathSpan::Attempt(s) => s.instance,
        }
    }

    pub fn name(&self) -> Name {
        match self {
            PathSpan::Server(s) => s.op,
            PathSpan::Call(s) => s.op,
            PathSpan::Attempt(s) => s.op,
        }
    }

    fn attributes(&self) -> Attributes {
        let kv = |k: &str, v: String| (k.to_string(), v);
        match self {
            PathSpan::Server(s) => {
                let mut a = vec![
                    kv("http.method", s.method.to_string()),
                    kv("http.target", s.target.as_str().to_string()),
                ];
                if !s.route.is_empty() {
                    a.push(kv("http.route", s.route.to_string()));
                }
                a.push(kv("config.version", s.config_version.to_string()));
                a.push(kv("http.status_code", s.status.to_string()));
                a
            }
            PathSpan::Call(s) => vec![
                kv("peer.service", s.target.to_string()),
                kv("http.method", s.method.to_string()),
                kv("attempts", s.attempts.to_string()),
                kv("http.status_code", s.status.to_string()),
            ],
            PathSpan::Attempt(s) => {
                let mut a = vec![
                    kv("attempt", s.attempt.to_string()),
                    kv("peer.instance", s.peer.to_string()),
                    kv("balancer.strategy", s.strategy.to_string()),
                    kv("balancer.reason", describe(&s.reason)),
                    kv("breaker", s.breaker.to_string()),
                    kv("breaker.state", s.breaker_state.to_string()),
                ];
                if s.status != 0 {
                    a.push(kv("http.status_code", s.status.to_string()));
                }
                a
            }
        }
    }

    fn events(&self) -> Vec<SpanEvent> {
        match self {
            PathSpan::Server(s) => {
                let t = &s.timing;
                let mut v: Vec<SpanEvent> = s.events.as_deref().cloned().unwrap_or_default();
                v.push(SpanEvent {
                    at_unix_ns: t.start_unix_ns + t.duration_ns,
                    message: access_message(
                        s.method,
                        if s.route.is_empty() { s.op } else { s.route },
                        s.status,
                    ),
                    attributes: vec![
                        ("status".into(), s.status.to_string()),
                        ("took_ms".into(), took_ms(t.duration_ns)),
                    ],
                });
                v
            }
            PathSpan::Attempt(s) => s
                .failure
                .iter()
                .map(|f| SpanEvent {
                    at_unix_ns: s.timing.start_unix_ns + s.timing.duration_ns,
                    message: f.to_string(),
                    attributes: vec![],
                })
                .collect(),
            PathSpan::Call(_) => vec![],
        }
    }

    /// The span as every other record reads.
    pub fn record(&self) -> SpanRecord {
        let t = self.timing();
        let ctx = t.ctx();
        SpanRecord {
            trace_id: ctx.trace_id,
            span_id: ctx.span_id,
            parent_id: t.parent(),
            service: self.service().to_string(),
            instance: self.instance().to_string(),
            name: self.name().to_string(),
            start_unix_ns: t.start_unix_ns,
            duration_ns: t.duration_ns,
            error: t.error,
            attributes: self.attributes(),
            events: self.events(),
        }
    }
}

/// Milliseconds to the microsecond: `0.452`, not `0.45229400000000003`.
fn took_ms(ns: u64) -> String {
    format!("{:.3}", ns as f64 / 1e6)
}

/// A reason whose `TwoChoices::other` is a [`Name`] number, as a sentence.
fn describe(r: &Reason) -> String {
    match *r {
        Reason::TwoChoices { other, .. } => {
            let name = Name::from_raw(other);
            r.describe_with(|_| name.as_str())
        }
        _ => r.describe(&[]),
    }
}

/// "GET /api/users/{id} → 200"
pub fn access_message(method: Name, route: Name, status: u16) -> String {
    format!("{method} {route} → {status}")
}

/// Records a traffic-path span into its cluster's span store.
pub fn record(span: PathSpan) {
    if let Some(t) = super::current() {
        t.spans.push_path(span);
    }
}

/// The access line of one request, as the log store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Access {
    pub at_unix_ns: u64,
    pub service: Name,
    pub instance: Name,
    pub method: Name,
    pub route: Name,
    pub status: u16,
    pub took_ns: u64,
    pub trace_id: TraceId,
    pub span_id: SpanId,
}

impl Access {
    pub const LEVEL: Level = Level::Debug;
    pub const TARGET: &'static str = "devcluster::telemetry::http";

    pub fn message(&self) -> String {
        access_message(self.method, self.route, self.status)
    }

    pub fn fields(&self) -> Vec<(String, String)> {
        vec![
            ("status".into(), self.status.to_string()),
            ("took_ms".into(), took_ms(self.took_ns)),
        ]
    }
}

/// Records a request's access line into its cluster's log store.
pub fn access(line: Access) {
    if let Some(t) = super::current() {
        t.logs.push_access(line);
    }
}
