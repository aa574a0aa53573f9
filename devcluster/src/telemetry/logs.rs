//! The log store: the cluster's `tracing` events (and, later, OTLP logs) with level, service,
//! message, fields and the trace they belong to; bounded, oldest dropped first.

use super::context::{SpanId, TraceId};
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
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
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
            Level::Trace | Level::Error => Level::Debug,
            Level::Debug => Level::Info,
            Level::Info => Level::Warn,
            Level::Warn => Level::Error,
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
            other => Err(format!(
                "level {other:?}: expected trace, debug, info, warn or error"
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
    /// Only records after this sequence number (follow mode asks for what is new).
    pub after: Option<u64>,
    pub limit: Option<usize>,
}

impl LogFilter {
    pub fn matches(&self, r: &LogRecord) -> bool {
        self.level.is_none_or(|l| r.level >= l)
            && self.service.as_ref().is_none_or(|s| &r.service == s)
            && self.trace.is_none_or(|t| r.trace_id == Some(t))
            && self.after.is_none_or(|a| r.seq > a)
            && self.q.as_ref().is_none_or(|q| {
                let q = q.to_lowercase();
                r.message.to_lowercase().contains(&q)
                    || r.fields
                        .iter()
                        .any(|(k, v)| k.contains(&q) || v.to_lowercase().contains(&q))
            })
    }
}

pub struct LogStore {
    inner: Mutex<(VecDeque<LogRecord>, usize, u64)>,
}

impl LogStore {
    pub fn new(capacity: usize) -> Self {
        LogStore {
            inner: Mutex::new((VecDeque::new(), capacity.max(1), 0)),
        }
    }

    pub fn push(&self, mut r: LogRecord) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.2 += 1;
        r.seq = g.2;
        if g.0.len() >= g.1 {
            g.0.pop_front();
        }
        g.0.push_back(r);
    }

    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).0.len()
    }

    pub fn set_capacity(&self, capacity: usize) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.1 = capacity.max(1);
        while g.0.len() > g.1 {
            g.0.pop_front();
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The newest `limit` (default 500) records matching `f`, oldest first.
    pub fn query(&self, f: &LogFilter) -> Vec<LogRecord> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let limit = f.limit.unwrap_or(500);
        let mut out: Vec<LogRecord> =
            g.0.iter()
                .rev()
                .filter(|r| f.matches(r))
                .take(limit)
                .cloned()
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

    #[test]
    fn bounded_and_filtered() {
        let s = LogStore::new(3);
        s.push(rec(Level::Info, "a", "first", None));
        s.push(rec(Level::Debug, "a", "Second", Some(7)));
        s.push(rec(Level::Warn, "b", "third", Some(7)));
        s.push(rec(Level::Error, "b", "fourth", None));
        assert_eq!(s.len(), 3);
        let all = s.query(&LogFilter::default());
        assert_eq!(all.first().unwrap().message, "Second", "the oldest went");
        assert_eq!(all.last().unwrap().seq, 4);
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
                after: Some(3),
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
    }

    #[test]
    fn levels_parse_and_cycle() {
        assert_eq!("WARNING".parse::<Level>(), Ok(Level::Warn));
        assert!("loud".parse::<Level>().unwrap_err().contains("expected"));
        assert_eq!(Level::Error.next(), Level::Debug);
    }
}
