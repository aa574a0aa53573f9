//! Per-instance request and error rates, from the balancers' cumulative counters sampled about
//! once a second. Works the same for an embedded and an attached cluster: it only reads snapshots.

use devcluster::handle::ClusterSnapshot;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The shortest interval a rate is computed over; shorter ones are too noisy to read.
const MIN_SAMPLE: Duration = Duration::from_millis(900);

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub rps: f64,
    /// Percent of requests that failed; `None` when there were none.
    pub error_pct: Option<f64>,
}

/// Cumulative (requests, failures) per instance id.
type Counters = HashMap<String, (u64, u64)>;

#[derive(Debug, Default)]
pub struct Rates {
    last: Option<(Instant, Counters)>,
    current: HashMap<String, Rate>,
}

impl Rates {
    /// Takes a sample when enough time has passed since the last one.
    pub fn observe(&mut self, snap: &ClusterSnapshot, now: Instant) {
        let counters: Counters = snap
            .instances
            .iter()
            .filter_map(|i| {
                let l = i.load.as_ref()?;
                Some((i.view.id.clone(), (l.requests, l.failures)))
            })
            .collect();
        match &self.last {
            Some((at, _)) if now.duration_since(*at) < MIN_SAMPLE => return,
            Some((at, prev)) => {
                let secs = now.duration_since(*at).as_secs_f64();
                self.current = counters
                    .iter()
                    .map(|(id, &(req, fail))| {
                        // A restarted cluster resets counters: treat a decrease as a fresh start.
                        let (preq, pfail) = prev.get(id).copied().unwrap_or((req, fail));
                        let dreq = req.saturating_sub(preq);
                        let dfail = fail.saturating_sub(pfail);
                        let rate = Rate {
                            rps: dreq as f64 / secs,
                            error_pct: (dreq > 0).then(|| dfail as f64 * 100.0 / dreq as f64),
                        };
                        (id.clone(), rate)
                    })
                    .collect();
            }
            None => {}
        }
        self.last = Some((now, counters));
    }

    pub fn get(&self, id: &str) -> Option<Rate> {
        self.current.get(id).copied()
    }
}
