//! Latency histograms precise enough to tell rows apart, recorded with one atomic add.
//!
//! **Log-linear buckets** (HDR-style) over nanoseconds: below 32 ns each value has its own
//! bucket; above, every power of two is cut into 32 equal buckets, so a bucket is at most 1/32
//! (3.1 %) of its lower bound wide. A percentile is read as the midpoint of the bucket its rank
//! falls in: within 1.6 % of the true value, from 32 ns to 137 s.
//!
//! [`Histogram`] is the Prometheus side: classic cumulative buckets (0.5 ms doubling, as
//! before) kept as plain atomics, so observing takes no lock (prometheus-client's histogram
//! takes a mutex per observation).

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Sub-buckets per power of two (5 bits).
const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
/// Powers of two covered: up to 2^37 ns (137 s); longer values land in the last bucket.
const MAX_EXP: u32 = 36;
/// Buckets in all.
pub const BUCKETS: usize = ((MAX_EXP - SUB_BITS + 2) as usize) * SUB as usize;

/// The bucket of `ns`.
pub fn bucket(ns: u64) -> usize {
    if ns < SUB {
        return ns as usize;
    }
    let e = 63 - ns.leading_zeros();
    if e > MAX_EXP {
        return BUCKETS - 1;
    }
    let sub = (ns >> (e - SUB_BITS)) & (SUB - 1);
    ((e - SUB_BITS + 1) as u64 * SUB + sub) as usize
}

/// The lowest value of bucket `i` and its width, in nanoseconds.
pub fn bounds(i: usize) -> (u64, u64) {
    let i = i as u64;
    if i < SUB {
        return (i, 1);
    }
    let e = (i / SUB) as u32 - 1 + SUB_BITS;
    let sub = i % SUB;
    let width = 1u64 << (e - SUB_BITS);
    ((SUB + sub) << (e - SUB_BITS), width)
}

/// The value a bucket stands for: its midpoint, in milliseconds.
pub fn midpoint_ms(i: usize) -> f64 {
    let (lo, w) = bounds(i);
    (lo as f64 + w as f64 / 2.0) / 1e6
}

/// The `q` quantile (0..=1) of counts given as `(bucket, count)` in ascending bucket order, in
/// milliseconds; 0 without any count. Nearest rank: the value at rank ⌈q·n⌉.
pub fn quantile_ms(counts: impl Iterator<Item = (usize, u64)> + Clone, q: f64) -> f64 {
    let total: u64 = counts.clone().map(|(_, n)| n).sum();
    if total == 0 {
        return 0.0;
    }
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for (i, n) in counts {
        seen += n;
        if seen >= rank {
            return midpoint_ms(i);
        }
    }
    0.0
}

/// Upper bounds of the Prometheus buckets, in seconds: 0.5 ms doubling, 16 of them.
const CLASSIC: usize = 16;

fn classic_bound(i: usize) -> f64 {
    0.0005 * f64::from(1u32 << i)
}

/// A Prometheus histogram of latencies, observed without a lock. Clones share their counts
/// (a metric family hands out clones).
#[derive(Debug, Clone, Default)]
pub struct Histogram(Arc<Counts>);

#[derive(Debug)]
struct Counts {
    /// Per bucket (not cumulative; the last one is +Inf).
    counts: [AtomicU64; CLASSIC + 1],
    sum_ns: AtomicU64,
}

impl Default for Counts {
    fn default() -> Self {
        Counts {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_ns: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn observe(&self, took: Duration) {
        let ns = took.as_nanos() as u64;
        // 0.5 ms doubling: the bucket is how many doublings of 0.5 ms it takes to reach it.
        let halves = ns.div_ceil(500_000).max(1);
        let i = ((64 - (halves - 1).leading_zeros()) as usize).min(CLASSIC);
        self.0.counts[i].fetch_add(1, Ordering::Relaxed);
        self.0.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.0
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        // Per-bucket counts: the encoder writes them cumulated.
        let mut count = 0;
        let mut buckets = Vec::with_capacity(CLASSIC + 1);
        for (i, c) in self.0.counts.iter().enumerate() {
            let n = c.load(Ordering::Relaxed);
            count += n;
            let bound = if i < CLASSIC {
                classic_bound(i)
            } else {
                f64::INFINITY
            };
            buckets.push((bound, n));
        }
        let sum = self.0.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_falls_in_a_bucket_no_wider_than_a_thirty_second_of_it() {
        for ns in (0..100_000u64).chain((0..60).map(|k| 1u64 << (k / 2) | k)) {
            let i = bucket(ns);
            let (lo, w) = bounds(i);
            if ns < 1u64 << 37 {
                assert!(
                    lo <= ns && ns < lo + w,
                    "{ns} in bucket {i} = [{lo}, {})",
                    lo + w
                );
            }
            assert!(w * 32 <= lo.max(32), "bucket {i} too wide: {w} at {lo}");
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
        let mut last = 0;
        for i in 1..BUCKETS {
            let (lo, _) = bounds(i);
            assert!(lo > last, "bounds ascend");
            last = lo;
        }
    }

    #[test]
    fn the_prometheus_buckets_are_half_a_millisecond_doubling() {
        let h = Histogram::default();
        for ms in [0.1, 0.5, 0.6, 1.0, 3.0, 100_000.0] {
            h.observe(Duration::from_secs_f64(ms / 1000.0));
        }
        let c: Vec<u64> =
            h.0.counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect();
        assert_eq!(c[0], 2, "≤ 0.5 ms: {c:?}");
        assert_eq!(c[1], 2, "≤ 1 ms");
        assert_eq!(c[3], 1, "≤ 4 ms");
        assert_eq!(c[CLASSIC], 1, "+Inf");
        assert_eq!(h.count(), 6);
    }
}
