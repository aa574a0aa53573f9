//! Every pick, kept in a bounded ring with per-instance counts, so "is it really balancing?"
//! has an answer: who called, the candidates and their state, the choice and why, the trace.

use crate::registry::Health;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

/// One instance of the target service as the balancer saw it at pick time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateView {
    pub id: String,
    pub health: Health,
    pub weight: u32,
    pub in_flight: u32,
    pub ejected: bool,
    /// Passing, not ejected, not excluded by a retry: could have been chosen.
    pub eligible: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PickRecord {
    pub seq: u64,
    pub at_unix_ms: u64,
    pub caller: String,
    pub target: String,
    pub strategy: super::Strategy,
    /// The candidate set, chosen instance first, at most `RECORDED_CANDIDATES` of them.
    pub candidates: Vec<CandidateView>,
    /// How many instances there were in all.
    #[serde(default)]
    pub candidates_total: usize,
    pub chosen: String,
    pub reason: String,
    pub trace_id: Option<String>,
    /// 1 for the first try, 2+ for retries.
    pub attempt: u32,
}

#[derive(Debug)]
pub struct PickLog {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    seq: u64,
    ring: VecDeque<Arc<PickRecord>>,
    counts: BTreeMap<String, u64>,
}

impl PickLog {
    pub fn new(capacity: usize) -> Self {
        PickLog {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Stores a record (its `seq` is assigned here) and counts the pick.
    pub fn push(&self, mut rec: PickRecord) -> Arc<PickRecord> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.seq += 1;
        rec.seq = g.seq;
        *g.counts.entry(rec.chosen.clone()).or_default() += 1;
        let rec = Arc::new(rec);
        if g.ring.len() == self.capacity {
            g.ring.pop_front();
        }
        g.ring.push_back(rec.clone());
        rec
    }

    /// The newest `n` records, oldest first.
    pub fn recent(&self, n: usize) -> Vec<Arc<PickRecord>> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.ring
            .iter()
            .skip(g.ring.len().saturating_sub(n))
            .cloned()
            .collect()
    }

    /// Picks per instance since start (or the last reset).
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .counts
            .clone()
    }

    pub fn reset_counts(&self) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .counts
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(chosen: &str) -> PickRecord {
        PickRecord {
            seq: 0,
            at_unix_ms: 0,
            caller: "gateway".into(),
            target: "user-service".into(),
            strategy: super::super::Strategy::RoundRobin,
            candidates_total: 2,
            candidates: Vec::new(),
            chosen: chosen.into(),
            reason: String::new(),
            trace_id: None,
            attempt: 1,
        }
    }

    #[test]
    fn keeps_the_newest_within_capacity_and_counts_all() {
        let log = PickLog::new(3);
        for id in ["a", "b", "a", "c", "a"] {
            log.push(rec(id));
        }
        let recent: Vec<String> = log.recent(10).iter().map(|r| r.chosen.clone()).collect();
        assert_eq!(recent, ["a", "c", "a"]);
        assert_eq!(log.recent(10).last().map(|r| r.seq), Some(5));
        assert_eq!(log.counts().get("a"), Some(&3));
        assert_eq!(log.counts().get("b"), Some(&1));
    }
}
