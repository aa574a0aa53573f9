//! The log store: the cluster's `tracing` events (and, later, OTLP logs) with level, service,
//! message, fields and the trace they belong to; bounded, oldest dropped first.

use super::context::{SpanId, TraceId};
use super::intern::{Interner, Sym};
use super::path::Access;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Mutex;

/// Records kept by default.
pub const DEFAULT_LOG_CAPACITY: usize = 20_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Trace,
    #[default]
    Debug,
    Info,
    Warn,
    Error,
    /// OTLP's FATAL (severities 21–24: Python's `critical`, Java's `fatal`); the cluster's own
    /// lines never are.
    Fatal,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Fatal => "fatal",
        }
    }

    pub fn from_tracing(l: tracing::Level) -> Level {
        match l {
            tracing::Level::TRACE => Level::Trace,
            tracing::Level::DEBUG => Level::Debug,
            tracing::Level::INFO => Level::Info,
            tracing::Level::WARN => Level::Warn,
            tracing::Level::ERROR => Level::Error,
        }
    }

    /// The next more severe level, wrapping to debug (the dashboard's level key).
    pub fn next(self) -> Level {
        match self {
            Level::Trace | Level::Fatal => Level::Debug,
            Level::Debug => Level::Info,
            Level::Info => Level::Warn,
            Level::Warn => Level::Error,
            Level::Error => Level::Fatal,
        }
    }
}

impl std::str::FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "trace" => Ok(Level::Trace),
            "debug" => Ok(Level::Debug),
            "info" => Ok(Level::Info),
            "warn" | "warning" => Ok(Level::Warn),
            "error" => Ok(Level::Error),
            "fatal" | "critical" => Ok(Level::Fatal),
            other => Err(format!(
                "level {other:?}: expected trace, debug, info, warn, error or fatal"
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    pub seq: u64,
    pub at_unix_ns: u64,
    pub level: Level,
    pub service: String,
    #[serde(default)]
    pub instance: String,
    /// Where it was logged (the `tracing` target, e.g. `devcluster::client`).
    pub target: String,
    pub message: String,
    #[serde(default)]
    pub fields: Vec<(String, String)>,
    #[serde(default)]
    pub trace_id: Option<TraceId>,
    #[serde(default)]
    pub span_id: Option<SpanId>,
}

/// What `ctl logs` and the Logs tab filter on; empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogFilter {
    pub level: Option<Level>,
    pub service: Option<String>,
    /// Case-insensitive text in the message or a field.
    pub q: Option<String>,
    pub trace: Option<TraceId>,
    /// Only lines logged under this span (a waterfall's span, its access line included).
    pub span: Option<SpanId>,
    /// Only records after this sequence number (follow mode asks for what is new).
    pub after: Option<u64>,
    pub limit: Option<usize>,
}

pub struct LogStore {
    inner: Mutex<Inner>,
}

struct Inner {
    /// Debug and trace lines (every request's access line among them).
    records: VecDeque<Stored>,
    capacity: usize,
    /// Info and above, kept apart: a busy cluster's access lines would push an instance's
    /// health timeline, its kills and warnings out within a minute.
    notable: VecDeque<Stored>,
    /// The sequence number of the newest record.
    seq: u64,
    strings: Interner,
}

/// A record as the store keeps it: a request's access line as the fixed-size record it was
/// made as (its message is written when read), any other in the generic form.
enum Stored {
    Log(StoredLog),
    Access { seq: u64, line: Access },
}

impl Stored {
    fn seq(&self) -> u64 {
        match self {
            Stored::Log(l) => l.seq,
            Stored::Access { seq, .. } => *seq,
        }
    }

    fn matches(&self, f: &LogFilter, q: Option<&str>, strings: &Interner) -> bool {
        match self {
            Stored::Log(l) => l.matches(f, q, strings),
            Stored::Access { seq, line } => {
                f.after.is_none_or(|a| *seq > a)
                    && f.level.is_none_or(|l| Access::LEVEL >= l)
                    && f.trace.is_none_or(|t| line.trace_id == t)
                    && f.span.is_none_or(|s| line.span_id == s)
                    && f.service
                        .as_ref()
                        .is_none_or(|s| line.service.as_str() == s)
                    && q.is_none_or(|q| {
                        // The instance too (an instance's lines are asked for by its id).
                        line.instance.as_str().to_lowercase().contains(q)
                            || line.message().to_lowercase().contains(q)
                            || line
                                .fields()
                                .iter()
                                .any(|(k, v)| k.contains(q) || v.to_lowercase().contains(q))
                    })
            }
        }
    }

    fn record(&self, strings: &Interner) -> LogRecord {
        match self {
            Stored::Log(l) => l.record(strings),
            Stored::Access { seq, line } => LogRecord {
                seq: *seq,
                at_unix_ns: line.at_unix_ns,
                level: Access::LEVEL,
                service: line.service.to_string(),
                instance: line.instance.to_string(),
                target: Access::TARGET.into(),
                message: line.message(),
                fields: line.fields(),
                trace_id: Some(line.trace_id),
                span_id: Some(line.span_id),
            },
        }
    }
}

/// A generic record: shared strings as [`Sym`]s, no spare capacity.
struct StoredLog {
    seq: u64,
    at_unix_ns: u64,
    level: Level,
    service: Sym,
    instance: Sym,
    target: Sym,
    message: Sym,
    fields: Box<[(Sym, Sym)]>,
    own: Box<[Box<str>]>,
    trace_id: Option<TraceId>,
    span_id: Option<SpanId>,
}

impl StoredLog {
    fn new(r: LogRecord, strings: &mut Interner) -> StoredLog {
        let mut p = strings.packer();
        let (service, instance, target) =
            (p.name(&r.service), p.name(&r.instance), p.name(&r.target));
        let message = p.value(&r.message);
        let fields = p.pairs(&r.fields);
        StoredLog {
            seq: r.seq,
            at_unix_ns: r.at_unix_ns,
            level: r.level,
            service,
            instance,
            target,
            message,
            fields,
            own: p.finish(),
            trace_id: r.trace_id,
            span_id: r.span_id,
        }
    }

    /// Whether `f` keeps this record; `q` is the filter's text, lowercased once per query.
    fn matches(&self, f: &LogFilter, q: Option<&str>, strings: &Interner) -> bool {
        let text = |sym| strings.text(&self.own, sym);
        f.after.is_none_or(|a| self.seq > a)
            && f.level.is_none_or(|l| self.level >= l)
            && f.trace.is_none_or(|t| self.trace_id == Some(t))
            && f.span.is_none_or(|s| self.span_id == Some(s))
            && f.service.as_ref().is_none_or(|s| text(self.service) == s)
            && q.is_none_or(|q| {
                let has = |s: &str| s.to_lowercase().contains(q);
                // The instance too: it is a column of its own, not a field.
                has(text(self.message))
                    || has(text(self.instance))
                    || self
                        .fields
                        .iter()
                        .any(|&(k, v)| text(k).contains(q) || has(text(v)))
            })
    }

    fn record(&self, strings: &Interner) -> LogRecord {
        let text = |sym| strings.text(&self.own, sym).to_string();
        LogRecord {
            seq: self.seq,
            at_unix_ns: self.at_unix_ns,
            level: self.level,
            service: text(self.service),
            instance: text(self.instance),
            target: text(self.target),
            message: text(self.message),
            fields: self
                .fields
                .iter()
                .map(|&(k, v)| (text(k), text(v)))
                .collect(),
            trace_id: self.trace_id,
            span_id: self.span_id,
        }
    }
}

/// How many info-and-above lines are kept beside `capacity` debug lines: a quarter as many
/// (they are far fewer), at least a thousand.
fn notable_capacity(capacity: usize) -> usize {
    (capacity / 4).max(1000).min(capacity.max(1))
}

/// Records are reserved up to this many at once (untouched pages cost no memory).
const RESERVE_MAX: usize = 100_000;

impl LogStore {
    pub fn new(capacity: usize) -> Self {
        LogStore {
            inner: Mutex::new(Inner {
                records: VecDeque::with_capacity(capacity.clamp(1, RESERVE_MAX)),
                capacity: capacity.max(1),
                notable: VecDeque::new(),
                seq: 0,
                strings: Interner::default(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn push(&self, mut r: LogRecord) {
        let mut g = self.lock();
        g.seq += 1;
        r.seq = g.seq;
        let notable = r.level >= Level::Info;
        let stored = Stored::Log(StoredLog::new(r, &mut g.strings));
        if notable {
            if g.notable.len() >= notable_capacity(g.capacity) {
                g.notable.pop_front();
            }
            g.notable.push_back(stored);
        } else {
            if g.records.len() >= g.capacity {
                g.records.pop_front();
            }
            g.records.push_back(stored);
        }
    }

    /// Adds a request's access line as it is: nothing formatted or interned.
    pub fn push_access(&self, line: Access) {
        let mut g = self.lock();
        g.seq += 1;
        let seq = g.seq;
        if g.records.len() >= g.capacity {
            g.records.pop_front();
        }
        g.records.push_back(Stored::Access { seq, line });
    }

    pub fn len(&self) -> usize {
        let g = self.lock();
        g.records.len() + g.notable.len()
    }

    pub fn set_capacity(&self, capacity: usize) {
        let mut g = self.lock();
        g.capacity = capacity.max(1);
        while g.records.len() > g.capacity {
            g.records.pop_front();
        }
        let keep = notable_capacity(g.capacity);
        while g.notable.len() > keep {
            g.notable.pop_front();
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The newest `limit` (default 500) records matching `f`, oldest first.
    pub fn query(&self, f: &LogFilter) -> Vec<LogRecord> {
        let g = self.lock();
        let limit = f.limit.unwrap_or(500);
        let q = f.q.as_ref().map(|q| q.to_lowercase());
        // Newest first from both kinds, merged by sequence; at info and above only the
        // notable ones are looked at.
        let mut debug = g
            .records
            .iter()
            .rev()
            .filter(|_| f.level.is_none_or(|l| l < Level::Info))
            .peekable();
        let mut notable = g.notable.iter().rev().peekable();
        let newest_first = std::iter::from_fn(|| match (debug.peek(), notable.peek()) {
            (Some(d), Some(n)) if d.seq() > n.seq() => debug.next(),
            (_, Some(_)) => notable.next(),
            (Some(_), None) => debug.next(),
            (None, None) => None,
        });
        let mut out: Vec<LogRecord> = newest_first
            .filter(|r| r.matches(f, q.as_deref(), &g.strings))
            .take(limit)
            .map(|r| r.record(&g.strings))
            .collect();
        out.reverse();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(level: Level, service: &str, msg: &str, trace: Option<u128>) -> LogRecord {
        LogRecord {
            seq: 0,
            at_unix_ns: 1,
            level,
            service: service.into(),
            instance: String::new(),
            target: "t".into(),
            message: msg.into(),
            fields: vec![("user_id".into(), "42".into())],
            trace_id: trace.map(TraceId),
            span_id: None,
        }
    }

    /// A busy cluster's debug lines (every request's access line) do not push out the info
    /// and warning lines: an instance's health timeline and kills outlive a minute of traffic.
    #[test]
    fn debug_lines_never_push_out_the_notable_ones() {
        let s = LogStore::new(100);
        s.push(rec(
            Level::Warn,
            "registry",
            "critical: out of rotation",
            None,
        ));
        for i in 0..10_000 {
            s.push(rec(Level::Debug, "gateway", &format!("GET /x {i}"), None));
        }
        let warn = s.query(&LogFilter {
            level: Some(Level::Info),
            ..Default::default()
        });
        assert_eq!(warn.len(), 1);
        assert_eq!(warn[0].message, "critical: out of rotation");
        let all = s.query(&LogFilter {
            limit: Some(1000),
            ..Default::default()
        });
        assert_eq!(all.len(), 101, "100 debug lines kept, and the warning");
        assert_eq!(all[0].message, "critical: out of rotation", "oldest first");
    }

    #[test]
    fn bounded_and_filtered() {
        let s = LogStore::new(3);
        s.push(rec(Level::Info, "a", "zeroth", None));
        s.push(rec(Level::Info, "a", "first", None));
        s.push(rec(Level::Debug, "a", "Second", Some(7)));
        s.push(rec(Level::Warn, "b", "third", Some(7)));
        s.push(rec(Level::Error, "b", "fourth", None));
        assert_eq!(s.len(), 4, "three notable lines, one debug");
        let all = s.query(&LogFilter::default());
        assert_eq!(all.first().unwrap().message, "first", "the oldest went");
        assert_eq!(all[1].message, "Second", "merged in order");
        assert_eq!(all.last().unwrap().seq, 5);
        let q = |f: LogFilter| {
            s.query(&f)
                .iter()
                .map(|r| r.message.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            q(LogFilter {
                level: Some(Level::Warn),
                ..Default::default()
            }),
            ["third", "fourth"]
        );
        assert_eq!(
            q(LogFilter {
                trace: Some(TraceId(7)),
                ..Default::default()
            }),
            ["Second", "third"]
        );
        assert_eq!(
            q(LogFilter {
                q: Some("SECOND".into()),
                ..Default::default()
            }),
            ["Second"]
        );
        assert_eq!(
            q(LogFilter {
                q: Some("42".into()),
                service: Some("b".into()),
                ..Default::default()
            }),
            ["third", "fourth"]
        );
        assert_eq!(
            q(LogFilter {
                after: Some(4),
                ..Default::default()
            }),
            ["fourth"]
        );
        assert_eq!(
            q(LogFilter {
                limit: Some(1),
                ..Default::default()
            }),
            ["fourth"]
        );
        // One span's lines.
        s.push(LogRecord {
            span_id: Some(SpanId(9)),
            ..rec(Level::Info, "b", "in the span", Some(7))
        });
        assert_eq!(
            q(LogFilter {
                span: Some(SpanId(9)),
                ..Default::default()
            }),
            ["in the span"]
        );
        // The instance is searched too (an instance's timeline asks by its id).
        s.push(LogRecord {
            instance: "user-service-2".into(),
            ..rec(Level::Warn, "user-service", "killed", None)
        });
        assert_eq!(
            q(LogFilter {
                q: Some("SERVICE-2".into()),
                ..Default::default()
            }),
            ["killed"]
        );
    }

    #[test]
    fn levels_parse_and_cycle() {
        assert_eq!("WARNING".parse::<Level>(), Ok(Level::Warn));
        assert!("loud".parse::<Level>().unwrap_err().contains("expected"));
        assert_eq!(Level::Error.next(), Level::Fatal);
        assert_eq!(Level::Fatal.next(), Level::Debug);
        assert_eq!("critical".parse::<Level>(), Ok(Level::Fatal));
        assert!(
            Level::Fatal > Level::Error,
            "a filter at error shows fatal lines"
        );
    }
}
