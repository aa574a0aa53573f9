//! Rolling per-second windows: for each of the last five minutes' seconds, requests, errors and
//! a latency histogram in fixed buckets (0.5 ms doubling), so rates and percentiles over any
//! recent span of time come from summing slots.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds kept.
pub const WINDOW_SECONDS: u64 = 300;
/// Seconds the "now" figures average over (complete seconds only).
pub const RECENT_SECONDS: u64 = 10;
const BUCKETS: usize = 17;

/// Upper edge of bucket `i` in milliseconds (the last one is open-ended).
fn upper_ms(i: usize) -> f64 {
    0.5 * f64::from(1u32 << i.min(20))
}

fn bucket_of(ms: f64) -> usize {
    (0..BUCKETS - 1)
        .find(|&i| ms <= upper_ms(i))
        .unwrap_or(BUCKETS - 1)
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    second: u64,
    requests: u32,
    errors: u32,
    buckets: [u32; BUCKETS],
}

impl Slot {
    fn add(&mut self, other: &Slot) {
        self.requests += other.requests;
        self.errors += other.errors;
        for (a, b) in self.buckets.iter_mut().zip(other.buckets) {
            *a += b;
        }
    }

    /// The `q` quantile in milliseconds, interpolated inside its bucket; 0 without requests.
    fn quantile_ms(&self, q: f64) -> f64 {
        let total: u64 = self.buckets.iter().map(|&b| u64::from(b)).sum();
        if total == 0 {
            return 0.0;
        }
        let rank = q * total as f64;
        let mut seen = 0.0;
        for (i, &n) in self.buckets.iter().enumerate() {
            let n = f64::from(n);
            if n > 0.0 && seen + n >= rank {
                let lo = if i == 0 { 0.0 } else { upper_ms(i - 1) };
                let hi = upper_ms(i);
                return lo + (hi - lo) * ((rank - seen) / n).clamp(0.0, 1.0);
            }
            seen += n;
        }
        upper_ms(BUCKETS - 1)
    }
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[derive(Debug, Default)]
pub struct Rolling {
    slots: Mutex<VecDeque<Slot>>,
}

/// A service's or instance's recent seconds, oldest first, with "now" figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// The unix second of the first point.
    pub start_unix_s: u64,
    pub requests: Vec<u32>,
    pub errors: Vec<u32>,
    pub p50_ms: Vec<f64>,
    pub p99_ms: Vec<f64>,
    /// Over the last complete `RECENT_SECONDS`.
    pub rps: f64,
    pub error_pct: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    /// Over the whole window.
    pub total_requests: u64,
    pub total_errors: u64,
}

impl Rolling {
    pub fn record(&self, took: Duration, error: bool) {
        self.record_at(now_s(), took, error);
    }

    fn record_at(&self, second: u64, took: Duration, error: bool) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if slots.back().is_none_or(|s| s.second < second) {
            slots.push_back(Slot {
                second,
                ..Default::default()
            });
        }
        while slots
            .front()
            .is_some_and(|s| s.second + WINDOW_SECONDS <= second)
        {
            slots.pop_front();
        }
        // A late record for an earlier second lands in its own slot when still there.
        let Some(slot) = slots.iter_mut().rev().find(|s| s.second <= second) else {
            return;
        };
        slot.requests += 1;
        slot.errors += u32::from(error);
        slot.buckets[bucket_of(took.as_secs_f64() * 1000.0)] += 1;
    }

    /// The windows summed second by second over the last `seconds` (ending now).
    pub fn merged(windows: &[&Rolling], seconds: usize) -> Series {
        Self::merged_at(windows, seconds, now_s())
    }

    fn merged_at(windows: &[&Rolling], seconds: usize, now: u64) -> Series {
        let span = (seconds as u64).clamp(1, WINDOW_SECONDS);
        let first = now + 1 - span;
        let mut per_second = vec![Slot::default(); span as usize];
        let mut whole = Slot::default();
        for w in windows {
            let slots = w.slots.lock().unwrap_or_else(|e| e.into_inner());
            for s in slots.iter().filter(|s| s.second + WINDOW_SECONDS > now) {
                whole.add(s);
                if s.second >= first && s.second <= now {
                    per_second[(s.second - first) as usize].add(s);
                }
            }
        }
        // "Now": the last complete seconds, not the one still filling.
        let mut recent = Slot::default();
        let recent_from = now.saturating_sub(RECENT_SECONDS);
        for w in windows {
            let slots = w.slots.lock().unwrap_or_else(|e| e.into_inner());
            for s in slots
                .iter()
                .filter(|s| s.second >= recent_from && s.second < now)
            {
                recent.add(s);
            }
        }
        Series {
            start_unix_s: first,
            requests: per_second.iter().map(|s| s.requests).collect(),
            errors: per_second.iter().map(|s| s.errors).collect(),
            p50_ms: per_second.iter().map(|s| s.quantile_ms(0.5)).collect(),
            p99_ms: per_second.iter().map(|s| s.quantile_ms(0.99)).collect(),
            rps: f64::from(recent.requests) / RECENT_SECONDS as f64,
            error_pct: if recent.requests == 0 {
                0.0
            } else {
                f64::from(recent.errors) * 100.0 / f64::from(recent.requests)
            },
            p50: recent.quantile_ms(0.5),
            p90: recent.quantile_ms(0.9),
            p99: recent.quantile_ms(0.99),
            total_requests: u64::from(whole.requests),
            total_errors: u64::from(whole.errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn rates_and_percentiles_over_complete_seconds() {
        let r = Rolling::default();
        let now = 1_000_000;
        // 10 complete seconds of 20 requests: 18 fast (1 ms), 2 slow (100 ms) and failing.
        for s in now - 10..now {
            for i in 0..20 {
                r.record_at(s, if i < 18 { ms(1) } else { ms(100) }, i >= 18);
            }
        }
        // The current second is still filling: it shows in the series, not in "now".
        r.record_at(now, ms(5000), true);
        let s = Rolling::merged_at(&[&r], 60, now);
        assert_eq!(s.requests.len(), 60);
        assert_eq!(*s.requests.last().unwrap(), 1);
        assert_eq!(s.requests[59 - 5], 20);
        assert!((s.rps - 20.0).abs() < 1e-9, "{}", s.rps);
        assert!((s.error_pct - 10.0).abs() < 1e-9);
        assert!(s.p50 > 0.5 && s.p50 <= 1.0, "p50 {}", s.p50);
        assert!(s.p99 > 64.0 && s.p99 <= 128.0, "p99 {}", s.p99);
        assert_eq!(s.total_requests, 201);
        assert_eq!(s.total_errors, 21);
    }

    #[test]
    fn old_seconds_leave_the_window_and_instances_merge() {
        let a = Rolling::default();
        let b = Rolling::default();
        a.record_at(100, ms(1), false);
        a.record_at(100 + WINDOW_SECONDS, ms(1), false);
        b.record_at(100 + WINDOW_SECONDS, ms(2), false);
        let s = Rolling::merged_at(&[&a, &b], 5, 100 + WINDOW_SECONDS);
        assert_eq!(s.total_requests, 2, "second 100 is out of the window");
        assert_eq!(*s.requests.last().unwrap(), 2);
        let empty = Rolling::merged_at(&[], 5, 1000);
        assert_eq!((empty.rps, empty.p99), (0.0, 0.0));
    }

    #[test]
    fn buckets_cover_the_range() {
        assert_eq!(bucket_of(0.1), 0);
        assert_eq!(bucket_of(0.5), 0);
        assert_eq!(bucket_of(0.6), 1);
        assert_eq!(bucket_of(1_000_000.0), BUCKETS - 1);
    }
}
