//! A breaker's thresholds, as set in `[breaker."CALLER->TARGET"]`.

use crate::duration::{format_go_duration, parse_go_duration};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::Duration;

/// The sliding window: the last N calls (`window = 20`) or the last stretch of time
/// (`window = "10s"`), as resilience4j's count- and time-based windows.
///
/// A count window of 20 calls is 1.3 ms of traffic at 15 000 req/s and ten seconds at 2 req/s;
/// a time window means the same at any rate, so it is the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowSize {
    Calls(u32),
    Time(Duration),
}

impl fmt::Display for WindowSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WindowSize::Calls(n) => write!(f, "{n}"),
            WindowSize::Time(d) => f.write_str(&format_go_duration(*d)),
        }
    }
}

impl WindowSize {
    /// "the last 20 calls", "the last 10s".
    pub fn describe(&self) -> String {
        match self {
            WindowSize::Calls(n) => format!("the last {n} calls"),
            WindowSize::Time(_) => format!("the last {self}"),
        }
    }
}

impl Serialize for WindowSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            WindowSize::Calls(n) => s.serialize_u32(*n),
            WindowSize::Time(_) => s.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for WindowSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Calls(u32),
            Time(String),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom("expected a number of calls (20) or a duration (\"10s\")")
        })? {
            Raw::Calls(n) => Ok(WindowSize::Calls(n)),
            Raw::Time(t) => parse_go_duration(&t)
                .map(WindowSize::Time)
                .map_err(serde::de::Error::custom),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerSettings {
    /// Percent of failed calls in the window that opens the breaker (1–100).
    pub failure_rate_threshold: u32,
    /// Percent of slow calls in the window that opens it (1–100; 100 means only when all are slow).
    pub slow_call_rate_threshold: u32,
    /// A call at least this long counts as slow.
    pub slow_call_ms: u64,
    /// The sliding window: a number of calls or a duration.
    pub window: WindowSize,
    /// No decision before this many calls are in the window.
    pub minimum_calls: u32,
    pub open_for_ms: u64,
    /// Calls let through when half-open; their outcome closes or re-opens the breaker.
    pub half_open_probes: u32,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            failure_rate_threshold: 50,
            slow_call_rate_threshold: 100,
            slow_call_ms: 2000,
            window: WindowSize::Time(Duration::from_secs(10)),
            minimum_calls: 10,
            open_for_ms: 5000,
            half_open_probes: 3,
        }
    }
}

impl BreakerSettings {
    pub fn open_for(&self) -> Duration {
        Duration::from_millis(self.open_for_ms)
    }

    pub fn slow_call(&self) -> Duration {
        Duration::from_millis(self.slow_call_ms)
    }

    /// Checks ranges: the refusal names the key, the value and what is expected.
    pub fn validate(&self, name: &str) -> Result<(), crate::config::Invalid> {
        use crate::config::Invalid;
        let key = |k: &str| format!("breaker.\"{name}\".{k}");
        let pct = |k: &str, v: u32| {
            if (1..=100).contains(&v) {
                Ok(())
            } else {
                Err(Invalid::new(key(k), v, "a percentage from 1 to 100"))
            }
        };
        pct("failure_rate_threshold", self.failure_rate_threshold)?;
        pct("slow_call_rate_threshold", self.slow_call_rate_threshold)?;
        match self.window {
            WindowSize::Calls(n) if n == 0 || n > super::window::MAX_CALLS => {
                return Err(Invalid::new(
                    key("window"),
                    n,
                    format!(
                        "1 to {} calls, or a duration from 1s to 10m",
                        super::window::MAX_CALLS
                    ),
                ));
            }
            WindowSize::Time(d) if d < Duration::from_secs(1) || d > Duration::from_secs(600) => {
                return Err(Invalid::new(
                    key("window"),
                    format!("\"{}\"", self.window),
                    "a duration from 1s to 10m, or a number of calls",
                ));
            }
            _ => {}
        }
        let most = match self.window {
            WindowSize::Calls(n) => n,
            WindowSize::Time(_) => 1_000_000,
        };
        if self.minimum_calls == 0 || self.minimum_calls > most {
            return Err(Invalid::new(
                key("minimum_calls"),
                self.minimum_calls,
                match self.window {
                    WindowSize::Calls(n) => format!("1 to window ({n})"),
                    WindowSize::Time(_) => "1 to 1000000".into(),
                },
            ));
        }
        if self.half_open_probes == 0 || self.half_open_probes > 1000 {
            return Err(Invalid::new(
                key("half_open_probes"),
                self.half_open_probes,
                "1 to 1000",
            ));
        }
        Ok(())
    }
}
