//! What the balancer knows about each instance's load and behaviour: requests in flight, a
//! peak-EWMA of latency (for P2C), and consecutive failures for passive outlier ejection.

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// How fast the latency average forgets (tower's peak-EWMA default is in this range).
const EWMA_DECAY: Duration = Duration::from_secs(10);

/// Passive outlier detection, as Envoy does it: K consecutive failures (connect errors, 5xx,
/// timeouts) eject an instance for `base_ejection × times ejected`, capped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutlierSettings {
    pub consecutive_failures: u32,
    pub base_ejection_ms: u64,
    pub max_ejection_ms: u64,
    /// Never eject more than this share of a service's instances.
    pub max_ejected_percent: u32,
}

impl Default for OutlierSettings {
    fn default() -> Self {
        OutlierSettings {
            consecutive_failures: 3,
            base_ejection_ms: 5_000,
            max_ejection_ms: 60_000,
            max_ejected_percent: 50,
        }
    }
}

/// One instance's load and behaviour as its balancer sees it. Everything is an atomic: every
/// call reads and updates it, from any thread, and no lock is taken.
#[derive(Debug)]
pub struct InstanceLoad {
    in_flight: AtomicU32,
    ewma_bits: AtomicU64,
    /// When the average was last updated, in nanoseconds since `born` (0: never).
    ewma_at: AtomicU64,
    consecutive_failures: AtomicU32,
    ejections: AtomicU32,
    /// Ejected until this many nanoseconds after `born` (0: not ejected).
    ejected_until: AtomicU64,
    born: Instant,
    pub requests: AtomicU64,
    pub failures: AtomicU64,
    /// Times the balancer chose it since the counts were last reset.
    pub picks: AtomicU64,
}

impl Default for InstanceLoad {
    fn default() -> Self {
        InstanceLoad {
            in_flight: AtomicU32::new(0),
            ewma_bits: AtomicU64::new(0f64.to_bits()),
            ewma_at: AtomicU64::new(0),
            consecutive_failures: AtomicU32::new(0),
            ejections: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
            born: Instant::now(),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            picks: AtomicU64::new(0),
        }
    }
}

/// Counts a request as in flight until dropped.
#[derive(Debug)]
pub struct InFlight<'a>(&'a InstanceLoad);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl InstanceLoad {
    /// Nanoseconds from `born` to `t` (at least 1, so 0 can mean "never").
    fn ns(&self, t: Instant) -> u64 {
        (t.saturating_duration_since(self.born).as_nanos() as u64).max(1)
    }

    pub fn start(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        InFlight(self)
    }

    /// A request starts (paired with [`InstanceLoad::end`]; [`InstanceLoad::start`] is the
    /// guard form).
    pub fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub fn end(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub fn ewma_ns(&self) -> f64 {
        f64::from_bits(self.ewma_bits.load(Ordering::Relaxed))
    }

    /// The average as of `now`, decayed for the time since its last sample (as Finagle's and
    /// tower's peak-EWMA read it): an instance nobody picks since it was slow looks cheaper by
    /// the second, is tried again, and its next answer sets the average. Read undecayed, a
    /// latency fault that was cleared would keep it out of P2C's picks for good.
    pub fn ewma_ns_at(&self, now: Instant) -> f64 {
        let v = self.ewma_ns();
        let at = self.ewma_at.load(Ordering::Relaxed);
        if at == 0 {
            return v;
        }
        let idle = self.ns(now).saturating_sub(at) as f64 / 1e9;
        v * (-idle / EWMA_DECAY.as_secs_f64()).exp()
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures.load(Ordering::Relaxed)
    }

    /// Folds one response time in: a slower sample replaces the average at once (peak),
    /// a faster one pulls it down with a time-based decay. Two racing updates may lose one
    /// sample, which an average does not notice.
    pub fn observe_latency(&self, rtt: Duration, now: Instant) {
        let sample = rtt.as_nanos() as f64;
        let old = self.ewma_ns();
        let now_ns = self.ns(now);
        let prev = self.ewma_at.swap(now_ns, Ordering::Relaxed);
        let new = if prev == 0 || sample > old {
            sample
        } else {
            let elapsed = now_ns.saturating_sub(prev) as f64 / 1e9;
            let w = (-elapsed / EWMA_DECAY.as_secs_f64()).exp();
            old * w + sample * (1.0 - w)
        };
        self.ewma_bits.store(new.to_bits(), Ordering::Relaxed);
    }

    pub fn ejected_until(&self, now: Instant) -> Option<Instant> {
        let until = self.ejected_until.load(Ordering::Relaxed);
        (until > self.ns(now)).then(|| self.born + Duration::from_nanos(until))
    }

    pub fn is_ejected(&self, now: Instant) -> bool {
        self.ejected_until.load(Ordering::Relaxed) > self.ns(now)
    }

    /// Records success or failure. Returns `Some(duration)` when this failure crosses the
    /// threshold and `may_eject` (asked only then) allows it: the instance is then ejected for
    /// that long.
    pub fn record(
        &self,
        failure: bool,
        settings: &OutlierSettings,
        may_eject: impl FnOnce() -> bool,
        now: Instant,
    ) -> Option<Duration> {
        if !failure {
            if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
                self.consecutive_failures.store(0, Ordering::Relaxed);
            }
            return None;
        }
        self.failures.fetch_add(1, Ordering::Relaxed);
        let n = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if settings.consecutive_failures == 0
            || n < settings.consecutive_failures
            || self.is_ejected(now)
            || !may_eject()
        {
            return None;
        }
        let times = self.ejections.fetch_add(1, Ordering::Relaxed) + 1;
        let ms = settings
            .base_ejection_ms
            .saturating_mul(u64::from(times))
            .min(settings.max_ejection_ms);
        let d = Duration::from_millis(ms);
        self.ejected_until
            .store(self.ns(now + d), Ordering::Relaxed);
        self.consecutive_failures.store(0, Ordering::Relaxed);
        Some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn k_consecutive_failures_eject_for_a_growing_time() {
        let l = InstanceLoad::default();
        let s = OutlierSettings {
            consecutive_failures: 3,
            base_ejection_ms: 1000,
            max_ejection_ms: 1500,
            max_ejected_percent: 100,
        };
        let now = Instant::now();
        assert_eq!(l.record(true, &s, || true, now), None);
        assert_eq!(
            l.record(false, &s, || true, now),
            None,
            "a success resets the count"
        );
        assert_eq!(l.record(true, &s, || true, now), None);
        assert_eq!(l.record(true, &s, || true, now), None);
        assert_eq!(
            l.record(true, &s, || true, now),
            Some(Duration::from_millis(1000))
        );
        assert!(l.is_ejected(now + Duration::from_millis(999)));
        assert!(!l.is_ejected(now + Duration::from_millis(1000)));
        let later = now + Duration::from_secs(2);
        for _ in 0..2 {
            l.record(true, &s, || true, later);
        }
        assert_eq!(
            l.record(true, &s, || true, later),
            Some(Duration::from_millis(1500)),
            "backs off, capped"
        );
    }

    #[test]
    fn peak_ewma_jumps_up_and_decays_down() {
        let l = InstanceLoad::default();
        let t0 = Instant::now();
        l.observe_latency(Duration::from_millis(1), t0);
        l.observe_latency(Duration::from_millis(200), t0 + Duration::from_millis(10));
        assert!((l.ewma_ns() - 200e6).abs() < 1.0);
        l.observe_latency(Duration::from_millis(1), t0 + Duration::from_secs(30));
        assert!(l.ewma_ns() < 20e6, "{}", l.ewma_ns());
    }

    /// Read at a later time, an average nobody fed decays: a slow instance left alone becomes
    /// worth another try.
    #[test]
    fn an_unfed_average_decays_as_it_is_read() {
        let l = InstanceLoad::default();
        let t0 = Instant::now();
        l.observe_latency(Duration::from_millis(200), t0);
        assert!((l.ewma_ns_at(t0) - 200e6).abs() < 1.0);
        let later = l.ewma_ns_at(t0 + Duration::from_secs(60));
        assert!(later < 1e6, "{later}");
        assert!(
            later > 0.0,
            "still an observed instance, not an unknown one"
        );
        assert_eq!(l.ewma_ns(), 200e6, "reading does not change it");
    }
}
