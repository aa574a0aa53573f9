//! A breaker's thresholds, as set in `[breaker."CALLER->TARGET"]`.

use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerSettings {
    /// Percent of failed calls in the window that opens the breaker (1–100).
    pub failure_rate_threshold: u32,
    /// Percent of slow calls in the window that opens it (1–100; 100 means only when all are slow).
    pub slow_call_rate_threshold: u32,
    /// A call at least this long counts as slow.
    pub slow_call_ms: u64,
    /// Calls in the sliding window.
    pub window: u32,
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
            window: 20,
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

    /// Checks ranges; the message names the key, the value and what is expected.
    pub fn validate(&self, name: &str) -> Result<(), String> {
        let key = |k: &str| format!("breaker.\"{name}\".{k}");
        let pct = |k: &str, v: u32| {
            if (1..=100).contains(&v) {
                Ok(())
            } else {
                Err(format!(
                    "{} = {v}: expected a percentage from 1 to 100",
                    key(k)
                ))
            }
        };
        pct("failure_rate_threshold", self.failure_rate_threshold)?;
        pct("slow_call_rate_threshold", self.slow_call_rate_threshold)?;
        if self.window == 0 || self.window > 10_000 {
            return Err(format!(
                "{} = {}: expected 1 to 10000 calls",
                key("window"),
                self.window
            ));
        }
        if self.minimum_calls == 0 || self.minimum_calls > self.window {
            return Err(format!(
                "{} = {}: expected 1 to window ({})",
                key("minimum_calls"),
                self.minimum_calls,
                self.window
            ));
        }
        if self.half_open_probes == 0 || self.half_open_probes > 1000 {
            return Err(format!(
                "{} = {}: expected 1 to 1000",
                key("half_open_probes"),
                self.half_open_probes
            ));
        }
        Ok(())
    }
}
