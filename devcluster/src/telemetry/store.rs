//! The span store: bounded by span count (the oldest go first), grouped by trace, searchable.

use super::context::TraceId;
use super::span::{SpanRecord, TraceSummary};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// What `ctl traces` and the Traces tab filter on; empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TraceFilter {
    pub service: Option<String>,
    /// A substring of any span's operation.
    pub operation: Option<String>,
    pub min_duration_ms: Option<f64>,
    pub errors_only: bool,
    pub limit: Option<usize>,
}

pub struct SpanStore {
    inner: Mutex<Inner>,
}

struct Inner {
    capacity: usize,
    /// Every span, oldest first, with its trace.
    order: VecDeque<(TraceId, Arc<SpanRecord>)>,
    traces: HashMap<TraceId, VecDeque<Arc<SpanRecord>>>,
    /// Total spans ever added (for "N new" and benchmarks).
    added: u64,
}

impl SpanStore {
    pub fn new(capacity: usize) -> Self {
        SpanStore {
            inner: Mutex::new(Inner {
                capacity: capacity.max(1),
                order: VecDeque::new(),
                traces: HashMap::new(),
                added: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_capacity(&self, capacity: usize) {
        let mut g = self.lock();
        g.capacity = capacity.max(1);
        g.evict();
    }

    pub fn push(&self, span: SpanRecord) {
        let span = Arc::new(span);
        let mut g = self.lock();
        g.added += 1;
        g.traces
            .entry(span.trace_id)
            .or_default()
            .push_back(span.clone());
        g.order.push_back((span.trace_id, span));
        g.evict();
    }

    /// Adds many at once under one lock (OTLP batches, benchmarks).
    pub fn extend(&self, spans: impl IntoIterator<Item = SpanRecord>) {
        let mut g = self.lock();
        for span in spans {
            let span = Arc::new(span);
            g.added += 1;
            g.traces
                .entry(span.trace_id)
                .or_default()
                .push_back(span.clone());
            g.order.push_back((span.trace_id, span));
        }
        g.evict();
    }

    pub fn len(&self) -> usize {
        self.lock().order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn added(&self) -> u64 {
        self.lock().added
    }

    /// The spans of one trace, by start time.
    pub fn trace(&self, id: TraceId) -> Vec<SpanRecord> {
        let mut v: Vec<SpanRecord> = self
            .lock()
            .traces
            .get(&id)
            .map(|t| t.iter().map(|s| (**s).clone()).collect())
            .unwrap_or_default();
        v.sort_by_key(|s| s.start_unix_ns);
        v
    }

    /// Recent traces matching `f`, newest first.
    pub fn traces(&self, f: &TraceFilter) -> Vec<TraceSummary> {
        let g = self.lock();
        let mut out: Vec<TraceSummary> = g
            .traces
            .values()
            .filter_map(|spans| {
                let spans: Vec<&SpanRecord> = spans.iter().map(|s| s.as_ref()).collect();
                let sum = TraceSummary::of(&spans)?;
                let service_ok = f
                    .service
                    .as_ref()
                    .is_none_or(|svc| sum.services.iter().any(|s| s == svc));
                let op_ok = f
                    .operation
                    .as_ref()
                    .is_none_or(|op| spans.iter().any(|s| s.name.contains(op.as_str())));
                let dur_ok = f.min_duration_ms.is_none_or(|m| sum.duration_ms >= m);
                let err_ok = !f.errors_only || sum.error;
                (service_ok && op_ok && dur_ok && err_ok).then_some(sum)
            })
            .collect();
        out.sort_by_key(|t| std::cmp::Reverse(t.start_unix_ns));
        out.truncate(f.limit.unwrap_or(100));
        out
    }
}

impl Inner {
    fn evict(&mut self) {
        while self.order.len() > self.capacity {
            let Some((trace, span)) = self.order.pop_front() else {
                break;
            };
            if let Some(t) = self.traces.get_mut(&trace) {
                if let Some(pos) = t.iter().position(|s| Arc::ptr_eq(s, &span)) {
                    t.remove(pos);
                }
                if t.is_empty() {
                    self.traces.remove(&trace);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::context::SpanId;

    fn span(trace: u128, id: u64, parent: Option<u64>, service: &str, start: u64) -> SpanRecord {
        SpanRecord {
            trace_id: TraceId(trace),
            span_id: SpanId(id),
            parent_id: parent.map(SpanId),
            service: service.into(),
            instance: String::new(),
            name: format!("op{id}"),
            start_unix_ns: start,
            duration_ns: 1_000_000,
            error: id == 99,
            attributes: vec![],
            events: vec![],
        }
    }

    #[test]
    fn bounded_by_span_count_oldest_first() {
        let s = SpanStore::new(3);
        s.push(span(1, 1, None, "a", 10));
        s.push(span(1, 2, Some(1), "b", 20));
        s.push(span(2, 3, None, "a", 30));
        s.push(span(2, 4, Some(3), "c", 40));
        assert_eq!(s.len(), 3);
        assert_eq!(s.trace(TraceId(1)).len(), 1, "span 1 went first");
        s.set_capacity(1);
        assert!(s.trace(TraceId(1)).is_empty());
        assert_eq!(s.traces(&TraceFilter::default()).len(), 1);
        assert_eq!(s.added(), 4);
    }

    #[test]
    fn summaries_and_filters() {
        let s = SpanStore::new(100);
        s.push(span(1, 2, Some(1), "order-service", 20));
        s.push(span(1, 1, None, "gateway", 10));
        s.push(span(2, 3, None, "gateway", 50));
        s.push(span(2, 99, Some(3), "user-service", 60));
        let all = s.traces(&TraceFilter::default());
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].trace_id, TraceId(2), "newest first");
        let t1 = &all[1];
        assert_eq!(
            (t1.root.as_str(), t1.root_service.as_str()),
            ("op1", "gateway")
        );
        assert_eq!(t1.services, ["gateway", "order-service"]);
        assert_eq!(t1.span_count, 2);
        assert!((t1.duration_ms - 1.00001).abs() < 0.01);
        let f = |f: TraceFilter| {
            s.traces(&f)
                .iter()
                .map(|t| t.trace_id.0)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            f(TraceFilter {
                service: Some("user-service".into()),
                ..Default::default()
            }),
            [2]
        );
        assert_eq!(
            f(TraceFilter {
                errors_only: true,
                ..Default::default()
            }),
            [2]
        );
        assert_eq!(
            f(TraceFilter {
                operation: Some("op2".into()),
                ..Default::default()
            }),
            [1]
        );
        assert_eq!(
            f(TraceFilter {
                min_duration_ms: Some(5.0),
                ..Default::default()
            }),
            Vec::<u128>::new()
        );
    }
}
