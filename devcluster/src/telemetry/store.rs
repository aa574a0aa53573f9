//! The span store: bounded by span count (the oldest go first), grouped by trace, searchable.

use super::context::SpanId;
use super::context::TraceId;
use super::span::{SpanEvent, SpanFacts, SpanRecord, TraceSummary};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
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

/// Strings shared by many spans (services, instances, operations, attribute keys, short
/// values) are kept once. Bounded, so unique strings cannot grow it without end.
#[derive(Default)]
struct Interner {
    set: HashSet<Arc<str>, BuildHasherDefault<Fnv>>,
}

/// FNV-1a: the interner hashes short strings on every stored span; SipHash's protection
/// against crafted keys buys nothing here (a full interner just stops interning).
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }
}

const INTERNED_MAX: usize = 50_000;
/// Longer attribute values are mostly unique (messages, reasons); they are not interned.
const INTERN_VALUE_MAX_LEN: usize = 24;

impl Interner {
    fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.set.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        if self.set.len() < INTERNED_MAX {
            self.set.insert(a.clone());
        }
        a
    }

    fn value(&mut self, s: &str) -> Arc<str> {
        if s.len() <= INTERN_VALUE_MAX_LEN {
            self.get(s)
        } else {
            Arc::from(s)
        }
    }
}

/// A span as the store keeps it: ids inline, shared strings, boxed slices (no spare capacity).
struct StoredSpan {
    span_id: SpanId,
    parent_id: Option<SpanId>,
    start_unix_ns: u64,
    duration_ns: u64,
    service: Arc<str>,
    instance: Arc<str>,
    name: Arc<str>,
    attributes: Box<[(Arc<str>, Arc<str>)]>,
    events: Box<[SpanEvent]>,
    error: bool,
}

impl StoredSpan {
    fn new(s: SpanRecord, strings: &mut Interner) -> StoredSpan {
        StoredSpan {
            span_id: s.span_id,
            parent_id: s.parent_id,
            start_unix_ns: s.start_unix_ns,
            duration_ns: s.duration_ns,
            service: strings.get(&s.service),
            instance: strings.get(&s.instance),
            name: strings.get(&s.name),
            attributes: s
                .attributes
                .iter()
                .map(|(k, v)| (strings.get(k), strings.value(v)))
                .collect(),
            events: s.events.into_boxed_slice(),
            error: s.error,
        }
    }

    fn record(&self, trace_id: TraceId) -> SpanRecord {
        SpanRecord {
            trace_id,
            span_id: self.span_id,
            parent_id: self.parent_id,
            service: self.service.to_string(),
            instance: self.instance.to_string(),
            name: self.name.to_string(),
            start_unix_ns: self.start_unix_ns,
            duration_ns: self.duration_ns,
            error: self.error,
            attributes: self
                .attributes
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            events: self.events.to_vec(),
        }
    }

    fn facts(&self, trace_id: TraceId) -> SpanFacts<'_> {
        SpanFacts {
            trace_id,
            span_id: self.span_id,
            parent_id: self.parent_id,
            service: &self.service,
            name: &self.name,
            start_unix_ns: self.start_unix_ns,
            end_unix_ns: self.start_unix_ns + self.duration_ns,
            error: self.error,
        }
    }
}

struct Inner {
    capacity: usize,
    len: usize,
    /// The trace of every span, oldest first: a trace's spans are kept in arrival order too,
    /// so the oldest span overall is the front of the front trace's queue.
    order: VecDeque<TraceId>,
    traces: HashMap<TraceId, VecDeque<StoredSpan>>,
    strings: Interner,
    /// Total spans ever added (for "N new" and benchmarks).
    added: u64,
}

impl SpanStore {
    pub fn new(capacity: usize) -> Self {
        SpanStore {
            inner: Mutex::new(Inner {
                capacity: capacity.max(1),
                len: 0,
                order: VecDeque::new(),
                traces: HashMap::new(),
                strings: Interner::default(),
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
        let mut g = self.lock();
        g.insert(span);
        g.evict();
    }

    /// Adds many at once under one lock (OTLP batches, benchmarks).
    pub fn extend(&self, spans: impl IntoIterator<Item = SpanRecord>) {
        let mut g = self.lock();
        for span in spans {
            g.insert(span);
        }
        g.evict();
    }

    pub fn len(&self) -> usize {
        self.lock().len
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
            .map(|t| t.iter().map(|s| s.record(id)).collect())
            .unwrap_or_default();
        v.sort_by_key(|s| s.start_unix_ns);
        v
    }

    /// Recent traces matching `f`, newest first.
    pub fn traces(&self, f: &TraceFilter) -> Vec<TraceSummary> {
        let g = self.lock();
        let mut out: Vec<TraceSummary> = g
            .traces
            .iter()
            .filter(|(_, spans)| {
                f.operation
                    .as_ref()
                    .is_none_or(|op| spans.iter().any(|s| s.name.contains(op.as_str())))
            })
            .filter_map(|(&id, spans)| {
                let sum = TraceSummary::of_facts(spans.iter().map(|s| s.facts(id)).collect())?;
                let service_ok = f
                    .service
                    .as_ref()
                    .is_none_or(|svc| sum.services.iter().any(|s| s == svc));
                let dur_ok = f.min_duration_ms.is_none_or(|m| sum.duration_ms >= m);
                let err_ok = !f.errors_only || sum.error;
                (service_ok && dur_ok && err_ok).then_some(sum)
            })
            .collect();
        out.sort_by_key(|t| std::cmp::Reverse(t.start_unix_ns));
        out.truncate(f.limit.unwrap_or(100));
        out
    }
}

impl Inner {
    fn insert(&mut self, span: SpanRecord) {
        self.added += 1;
        self.len += 1;
        let id = span.trace_id;
        let stored = StoredSpan::new(span, &mut self.strings);
        self.traces.entry(id).or_default().push_back(stored);
        self.order.push_back(id);
    }

    fn evict(&mut self) {
        while self.len > self.capacity {
            let Some(trace) = self.order.pop_front() else {
                break;
            };
            if let Some(t) = self.traces.get_mut(&trace) {
                t.pop_front();
                self.len -= 1;
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
