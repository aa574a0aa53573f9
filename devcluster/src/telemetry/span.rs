//! A finished span as the store keeps it, and a trace's one-line summary.

use super::context::{SpanId, TraceId};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanEvent {
    pub at_unix_ns: u64,
    pub message: String,
    #[serde(default)]
    pub attributes: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanRecord {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    #[serde(default)]
    pub parent_id: Option<SpanId>,
    /// The service that made it (`service` field, inherited from the parent span).
    pub service: String,
    /// The instance that made it, when known.
    #[serde(default)]
    pub instance: String,
    /// The operation: "GET /users/{id}", "call user-service", …
    pub name: String,
    pub start_unix_ns: u64,
    pub duration_ns: u64,
    pub error: bool,
    /// Everything else recorded on it: http.method, http.status_code, attempt, chosen instance…
    #[serde(default)]
    pub attributes: Vec<(String, String)>,
    #[serde(default)]
    pub events: Vec<SpanEvent>,
}

impl SpanRecord {
    pub fn end_unix_ns(&self) -> u64 {
        self.start_unix_ns + self.duration_ns
    }

    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// What the trace list shows for one trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceSummary {
    pub trace_id: TraceId,
    /// The root span's operation (the earliest span without a parent in the store).
    pub root: String,
    pub root_service: String,
    /// Services in order of first appearance.
    pub services: Vec<String>,
    pub span_count: usize,
    pub start_unix_ns: u64,
    pub duration_ms: f64,
    pub error: bool,
}

/// What a trace summary needs of a span, whatever form the span is kept in.
pub struct SpanFacts<'a> {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_id: Option<SpanId>,
    pub service: &'a str,
    pub name: &'a str,
    pub start_unix_ns: u64,
    pub end_unix_ns: u64,
    pub error: bool,
}

impl SpanRecord {
    pub fn facts(&self) -> SpanFacts<'_> {
        SpanFacts {
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent_id: self.parent_id,
            service: &self.service,
            name: &self.name,
            start_unix_ns: self.start_unix_ns,
            end_unix_ns: self.end_unix_ns(),
            error: self.error,
        }
    }
}

impl TraceSummary {
    /// Summarises the spans of one trace (non-empty).
    pub fn of(spans: &[&SpanRecord]) -> Option<TraceSummary> {
        Self::of_facts(spans.iter().map(|s| s.facts()).collect())
    }

    pub fn of_facts(mut spans: Vec<SpanFacts<'_>>) -> Option<TraceSummary> {
        spans.sort_by_key(|s| s.start_unix_ns);
        let first = spans.first()?;
        let start = first.start_unix_ns;
        let end = spans.iter().map(|s| s.end_unix_ns).max()?;
        let ids: std::collections::HashSet<SpanId> = spans.iter().map(|s| s.span_id).collect();
        let root = spans
            .iter()
            .find(|s| s.parent_id.is_none_or(|p| !ids.contains(&p)))
            .unwrap_or(first);
        let mut services: Vec<String> = Vec::new();
        for s in &spans {
            if !s.service.is_empty() && !services.iter().any(|x| x == s.service) {
                services.push(s.service.to_string());
            }
        }
        Some(TraceSummary {
            trace_id: first.trace_id,
            root: root.name.to_string(),
            root_service: root.service.to_string(),
            services,
            span_count: spans.len(),
            start_unix_ns: start,
            duration_ms: (end - start) as f64 / 1e6,
            error: spans.iter().any(|s| s.error),
        })
    }
}
