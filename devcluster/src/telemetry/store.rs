//! The span store: bounded by span count (the oldest go first), grouped by trace, searchable.

use super::context::SpanId;
use super::context::TraceId;
use super::intern::{Interner, Sym};
use super::path::PathSpan;
use super::span::{SpanEvent, SpanFacts, SpanRecord, TraceSummary};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::Mutex;

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
    /// Only traces that started at or after this time (the wall clock, in ms since the epoch).
    #[serde(default)]
    pub since_unix_ms: Option<u64>,
    /// Only traces that started at or before this time.
    #[serde(default)]
    pub until_unix_ms: Option<u64>,
}

pub struct SpanStore {
    inner: Mutex<Inner>,
}

/// A span as the store keeps it: the traffic path's own spans as the fixed-size records they
/// were made as, any other (a `tracing` span, an OTLP export) in the generic form.
enum StoredSpan {
    Generic(GenericSpan),
    Path(PathSpan),
}

/// A generic span: ids inline (as words: a `u128` would align every record to 16 bytes),
/// strings as [`Sym`]s, boxed slices (no spare capacity).
struct GenericSpan {
    trace_id: [u64; 2],
    span_id: SpanId,
    /// 0: no parent.
    parent_id: u64,
    start_unix_ns: u64,
    duration_ns: u64,
    service: Sym,
    instance: Sym,
    name: Sym,
    attributes: Box<[(Sym, Sym)]>,
    /// The strings this span owns (long values; anything once the interner is full).
    own: Box<[Box<str>]>,
    events: Box<[StoredEvent]>,
    error: bool,
}

struct StoredEvent {
    at_unix_ns: u64,
    message: Sym,
    attributes: Box<[(Sym, Sym)]>,
}

impl StoredSpan {
    fn trace_id(&self) -> TraceId {
        match self {
            StoredSpan::Generic(g) => g.trace(),
            StoredSpan::Path(p) => p.timing().ctx().trace_id,
        }
    }

    fn record(&self, strings: &Interner) -> SpanRecord {
        match self {
            StoredSpan::Generic(g) => g.record(strings),
            StoredSpan::Path(p) => p.record(),
        }
    }

    fn facts<'a>(&'a self, strings: &'a Interner) -> SpanFacts<'a> {
        match self {
            StoredSpan::Generic(g) => g.facts(strings),
            StoredSpan::Path(p) => {
                let t = p.timing();
                let ctx = t.ctx();
                SpanFacts {
                    trace_id: ctx.trace_id,
                    span_id: ctx.span_id,
                    parent_id: t.parent(),
                    service: p.service().as_str(),
                    name: p.name().as_str(),
                    start_unix_ns: t.start_unix_ns,
                    end_unix_ns: t.start_unix_ns + t.duration_ns,
                    error: t.error,
                }
            }
        }
    }
}

impl GenericSpan {
    fn trace(&self) -> TraceId {
        TraceId((u128::from(self.trace_id[0]) << 64) | u128::from(self.trace_id[1]))
    }

    fn new(s: SpanRecord, strings: &mut Interner) -> GenericSpan {
        let mut p = strings.packer();
        let (service, instance, name) = (p.name(&s.service), p.name(&s.instance), p.name(&s.name));
        let attributes = p.pairs(&s.attributes);
        let events = s
            .events
            .iter()
            .map(|e| StoredEvent {
                at_unix_ns: e.at_unix_ns,
                message: p.value(&e.message),
                attributes: p.pairs(&e.attributes),
            })
            .collect();
        GenericSpan {
            trace_id: [(s.trace_id.0 >> 64) as u64, s.trace_id.0 as u64],
            span_id: s.span_id,
            parent_id: s.parent_id.map_or(0, |p| p.0),
            start_unix_ns: s.start_unix_ns,
            duration_ns: s.duration_ns,
            service,
            instance,
            name,
            attributes,
            own: p.finish(),
            events,
            error: s.error,
        }
    }

    fn record(&self, strings: &Interner) -> SpanRecord {
        let text = |sym| strings.text(&self.own, sym).to_string();
        SpanRecord {
            trace_id: self.trace(),
            span_id: self.span_id,
            parent_id: (self.parent_id != 0).then_some(SpanId(self.parent_id)),
            service: text(self.service),
            instance: text(self.instance),
            name: text(self.name),
            start_unix_ns: self.start_unix_ns,
            duration_ns: self.duration_ns,
            error: self.error,
            attributes: self
                .attributes
                .iter()
                .map(|&(k, v)| (text(k), text(v)))
                .collect(),
            events: self
                .events
                .iter()
                .map(|e| SpanEvent {
                    at_unix_ns: e.at_unix_ns,
                    message: text(e.message),
                    attributes: e
                        .attributes
                        .iter()
                        .map(|&(k, v)| (text(k), text(v)))
                        .collect(),
                })
                .collect(),
        }
    }

    fn facts<'a>(&'a self, strings: &'a Interner) -> SpanFacts<'a> {
        SpanFacts {
            trace_id: self.trace(),
            span_id: self.span_id,
            parent_id: (self.parent_id != 0).then_some(SpanId(self.parent_id)),
            service: strings.text(&self.own, self.service),
            name: strings.text(&self.own, self.name),
            start_unix_ns: self.start_unix_ns,
            end_unix_ns: self.start_unix_ns + self.duration_ns,
            error: self.error,
        }
    }
}

/// Spans in one ring, oldest first (eviction is a pop). Each trace is found through its newest
/// span, and each span links back to the one before it of its trace: adding a span is one
/// lookup and no allocation (a span's place in the ring is its number minus the front's).
struct Inner {
    capacity: usize,
    ring: VecDeque<StoredSpan>,
    /// Per span of `ring`: how many spans back the previous span of its trace is (0: none).
    prev: VecDeque<u32>,
    /// The sequence number of `ring[0]`.
    front_seq: u64,
    /// Each trace's newest span. foldhash: three spans a request look their trace up here.
    traces: HashMap<TraceId, u64, foldhash::fast::FixedState>,
    /// Evictions since the index was last swept.
    evicted: u64,
    strings: Interner,
    /// The (trace, span) fingerprints of the generic spans in `ring`: an exporter that sends a
    /// batch again (a retry after a timeout) adds nothing. The traffic path's own spans are
    /// not in it: their ids are drawn here and never come twice.
    seen: HashSet<u64, BuildHasherDefault<Premixed>>,
}

/// A span's (trace id, span id) as 64 well-mixed bits: 8 bytes a stored span where the ids
/// themselves would take 32. Two different spans share one with a chance of 2^-64 per pair
/// (with 100 000 spans stored, about one new span in 10^14 would be taken for a duplicate).
fn fingerprint(trace: TraceId, span: SpanId) -> u64 {
    foldhash::fast::FixedState::with_seed(0x6c67_6f2d_6461_7368).hash_one((trace.0, span.0))
}

/// The hasher of [`Inner::seen`]: its keys are hashes already.
#[derive(Default)]
struct Premixed(u64);

impl Hasher for Premixed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// The ring is reserved up to this many spans at once: untouched pages cost no memory, and
/// a full ring then never doubles past its bound.
const RESERVE_MAX: usize = 200_000;

impl SpanStore {
    pub fn new(capacity: usize) -> Self {
        SpanStore {
            inner: Mutex::new(Inner {
                capacity: capacity.max(1),
                ring: VecDeque::with_capacity(capacity.clamp(1, RESERVE_MAX)),
                prev: VecDeque::with_capacity(capacity.clamp(1, RESERVE_MAX)),
                front_seq: 0,
                traces: HashMap::default(),
                evicted: 0,
                strings: Interner::default(),
                seen: HashSet::default(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_capacity(&self, capacity: usize) {
        let mut g = self.lock();
        g.capacity = capacity.max(1);
        let len = g.capacity;
        g.evict_to(len);
    }

    /// Adds a span, unless a span with its trace and span ids is stored already.
    pub fn push(&self, span: SpanRecord) {
        let mut g = self.lock();
        g.insert(span);
    }

    /// Adds a traffic-path span as it is: nothing to intern or copy.
    pub fn push_path(&self, span: PathSpan) {
        let mut g = self.lock();
        g.insert_stored(StoredSpan::Path(span));
    }

    /// Adds many at once under one lock (OTLP batches, benchmarks); as [`SpanStore::push`],
    /// a span already stored is not stored again. Returns how many were new.
    pub fn extend(&self, spans: impl IntoIterator<Item = SpanRecord>) -> usize {
        let mut g = self.lock();
        let mut added = 0;
        for span in spans {
            added += usize::from(g.insert(span));
        }
        added
    }

    pub fn len(&self) -> usize {
        self.lock().ring.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn added(&self) -> u64 {
        let g = self.lock();
        g.front_seq + g.ring.len() as u64
    }

    /// The spans of one trace, by start time.
    pub fn trace(&self, id: TraceId) -> Vec<SpanRecord> {
        let g = self.lock();
        let mut v: Vec<SpanRecord> = g.seqs(id).map(|n| g.span(n).record(&g.strings)).collect();
        v.sort_by_key(|s| s.start_unix_ns);
        v
    }

    /// Recent traces matching `f`, newest first.
    pub fn traces(&self, f: &TraceFilter) -> Vec<TraceSummary> {
        let g = self.lock();
        let limit = f.limit.unwrap_or(100);
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        // The most recently active traces first: walk the ring from its newest span, judging
        // each trace once, until enough match (the dashboard asks every tick).
        for span in g.ring.iter().rev() {
            if out.len() >= limit {
                break;
            }
            let id = span.trace_id();
            if seen.insert(id)
                && let Some(sum) = g.summary(id, f)
            {
                out.push(sum);
            }
        }
        out.sort_by_key(|t| std::cmp::Reverse(t.start_unix_ns));
        out
    }
}

impl Inner {
    fn span(&self, seq: u64) -> &StoredSpan {
        &self.ring[(seq - self.front_seq) as usize]
    }

    /// The sequence numbers of trace `id`'s spans still in the ring, newest first.
    fn seqs(&self, id: TraceId) -> impl Iterator<Item = u64> + '_ {
        let mut next = self.traces.get(&id).copied();
        std::iter::from_fn(move || {
            let seq = next.filter(|&s| s >= self.front_seq)?;
            let back = self.prev[(seq - self.front_seq) as usize];
            next = (back != 0).then(|| seq - u64::from(back));
            Some(seq)
        })
    }

    /// The summary of trace `id` when it passes `f`.
    fn summary(&self, id: TraceId, f: &TraceFilter) -> Option<TraceSummary> {
        let facts: Vec<SpanFacts<'_>> = self
            .seqs(id)
            .map(|n| self.span(n).facts(&self.strings))
            .collect();
        if facts.is_empty() {
            return None;
        }
        if let Some(op) = &f.operation
            && !facts.iter().any(|s| s.name.contains(op.as_str()))
        {
            return None;
        }
        let sum = TraceSummary::of_facts(facts)?;
        let service_ok = f
            .service
            .as_ref()
            .is_none_or(|svc| sum.services.iter().any(|s| s == svc));
        let dur_ok = f.min_duration_ms.is_none_or(|m| sum.duration_ms >= m);
        let err_ok = !f.errors_only || sum.error;
        let started_ms = sum.start_unix_ns / 1_000_000;
        let time_ok = f.since_unix_ms.is_none_or(|t| started_ms >= t)
            && f.until_unix_ms.is_none_or(|t| started_ms <= t);
        (service_ok && dur_ok && err_ok && time_ok).then_some(sum)
    }

    /// Stores `span` unless it is stored already (by trace and span id): whether it was new.
    fn insert(&mut self, span: SpanRecord) -> bool {
        if !self.seen.insert(fingerprint(span.trace_id, span.span_id)) {
            return false;
        }
        let stored = StoredSpan::Generic(GenericSpan::new(span, &mut self.strings));
        self.insert_stored(stored);
        true
    }

    fn insert_stored(&mut self, stored: StoredSpan) {
        // Room first: pushing onto a full ring would double its buffer.
        self.evict_to(self.capacity - 1);
        let seq = self.front_seq + self.ring.len() as u64;
        let back = match self.traces.insert(stored.trace_id(), seq) {
            Some(last) if last >= self.front_seq => u32::try_from(seq - last).unwrap_or(0),
            _ => 0,
        };
        self.ring.push_back(stored);
        self.prev.push_back(back);
    }

    fn evict_to(&mut self, len: usize) {
        while self.ring.len() > len {
            let Some(oldest) = self.ring.pop_front() else {
                break;
            };
            self.prev.pop_front();
            self.front_seq += 1;
            if let StoredSpan::Generic(g) = &oldest {
                self.seen.remove(&fingerprint(g.trace(), g.span_id));
            }
            drop(oldest);
            // Traces whose newest span has left are dropped from the index in one sweep now and
            // then, not one lookup per eviction (the evicted span's trace is cold in memory; the
            // sweep reads the index in order). Until then the index points before the ring, and
            // a lookup finds nothing there.
            self.evicted += 1;
            if self.evicted >= self.capacity as u64 / 4 + 64 {
                self.evicted = 0;
                let front = self.front_seq;
                self.traces.retain(|_, newest| *newest >= front);
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

    /// 100 000 of them sit in the ring: the traffic path's records may not make it wider.
    #[test]
    fn a_stored_span_stays_small() {
        assert!(
            std::mem::size_of::<StoredSpan>() <= 120,
            "{} bytes",
            std::mem::size_of::<StoredSpan>()
        );
    }

    #[test]
    fn a_span_sent_again_is_stored_once() {
        let s = SpanStore::new(3);
        assert_eq!(
            s.extend([span(1, 1, None, "a", 10), span(1, 2, Some(1), "a", 20)]),
            2
        );
        // The same batch again (an exporter's retry), and one span twice in one batch.
        assert_eq!(
            s.extend([span(1, 1, None, "a", 10), span(1, 2, Some(1), "a", 20)]),
            0
        );
        assert_eq!(
            s.extend([span(2, 1, None, "a", 30), span(2, 1, None, "a", 30)]),
            1
        );
        assert_eq!(s.len(), 3);
        assert_eq!(s.trace(TraceId(1)).len(), 2);
        // The same span id in another trace is another span; once a span has left the ring,
        // it may come back.
        s.push(span(3, 2, None, "a", 40));
        assert_eq!(s.trace(TraceId(1)).len(), 1, "span 1 went first");
        assert_eq!(s.extend([span(1, 1, None, "a", 10)]), 1);
        let back: Vec<SpanId> = s.trace(TraceId(1)).iter().map(|x| x.span_id).collect();
        assert_eq!(back, [SpanId(1)], "span 2 made room for it");
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

    #[test]
    fn a_time_window_keeps_the_traces_that_started_in_it() {
        let s = SpanStore::new(100);
        let ms = 1_000_000;
        for (trace, start_ms) in [(1, 1000), (2, 2000), (3, 3000)] {
            s.push(span(trace, trace as u64, None, "gateway", start_ms * ms));
        }
        let ids = |since, until| {
            s.traces(&TraceFilter {
                since_unix_ms: since,
                until_unix_ms: until,
                ..Default::default()
            })
            .iter()
            .map(|t| t.trace_id.0)
            .collect::<Vec<_>>()
        };
        assert_eq!(ids(Some(2000), None), [3, 2], "from its first millisecond");
        assert_eq!(ids(None, Some(2000)), [2, 1], "to its last");
        assert_eq!(ids(Some(1500), Some(2500)), [2]);
        assert_eq!(ids(Some(3001), None), Vec::<u128>::new());
    }
}
