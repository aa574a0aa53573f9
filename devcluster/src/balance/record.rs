//! Every pick, kept in a bounded ring, so "is it really balancing?" has an answer: who called,
//! the candidates and their state, the choice and why, the trace.
//!
//! A pick writes a small fixed-size entry into a pre-allocated ring slot (the candidate set is
//! shared by reference, the reason is a plain value): nothing is formatted or allocated on the
//! call path. The dashboard's [`PickRecord`]s are made from the entries when it asks.

use super::members::Members;
use super::{Reason, Strategy};
use crate::registry::Health;
use crate::telemetry::TraceId;
use crate::telemetry::names::Name;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// The candidate set in registry order, at most `RECORDED_CANDIDATES` of them, the chosen
    /// one always among them.
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

/// How many candidates a pick record shows (the chosen one always among them).
pub const RECORDED_CANDIDATES: usize = 32;

/// Which of the first 128 members were eligible / ejected, one bit each.
pub type Mask = u128;
pub const MASK_BITS: usize = 128;

/// A pick as the ring keeps it.
#[derive(Debug, Clone)]
pub struct PickEntry {
    pub seq: u64,
    pub at_unix_ms: u64,
    pub caller: Name,
    pub strategy: Strategy,
    pub members: Arc<Members>,
    /// Index into `members`.
    pub chosen: usize,
    /// The reason, its `TwoChoices::other` an index into `members`.
    pub reason: Reason,
    pub eligible: Mask,
    pub ejected: Mask,
    /// The chosen one's requests in flight when it was chosen.
    pub in_flight: u32,
    pub trace_id: Option<TraceId>,
    pub attempt: u32,
}

impl PickEntry {
    /// The members a record shows, in registry order: all of them up to
    /// `RECORDED_CANDIDATES`, and always the chosen one.
    fn shown(&self) -> Vec<usize> {
        let n = self.members.len();
        let mut v: Vec<usize> = std::iter::once(self.chosen)
            .chain((0..n).filter(|&i| i != self.chosen))
            .take(RECORDED_CANDIDATES)
            .collect();
        v.sort_unstable();
        v
    }

    pub fn record(&self, target: &str) -> PickRecord {
        let bit = |m: Mask, i: usize| i < MASK_BITS && m >> i & 1 == 1;
        let members = &self.members;
        let names: Vec<&str> = members.iter().map(|m| &*m.id).collect();
        PickRecord {
            seq: self.seq,
            at_unix_ms: self.at_unix_ms,
            caller: self.caller.to_string(),
            target: target.to_string(),
            strategy: self.strategy,
            candidates_total: members.len(),
            candidates: self
                .shown()
                .into_iter()
                .filter_map(|i| Some((i, members.get(i)?)))
                .map(|(i, m)| CandidateView {
                    id: m.id.to_string(),
                    health: m.health,
                    weight: m.weight,
                    in_flight: if i == self.chosen {
                        self.in_flight
                    } else {
                        m.load.in_flight()
                    },
                    ejected: bit(self.ejected, i),
                    eligible: bit(self.eligible, i),
                })
                .collect(),
            chosen: names.get(self.chosen).copied().unwrap_or("?").to_string(),
            reason: self.reason.describe(&names),
            trace_id: self.trace_id.map(|t| t.to_string()),
            attempt: self.attempt,
        }
    }
}

/// The ring: slots allocated once, each behind its own small lock, so writers only meet when
/// they land on the same slot.
pub struct PickLog {
    next: AtomicU64,
    slots: Box<[Mutex<Option<PickEntry>>]>,
}

impl std::fmt::Debug for PickLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PickLog")
            .field("picks", &self.next.load(Ordering::Relaxed))
            .field("capacity", &self.slots.len())
            .finish()
    }
}

impl PickLog {
    pub fn new(capacity: usize) -> Self {
        PickLog {
            next: AtomicU64::new(0),
            slots: (0..capacity.max(1)).map(|_| Mutex::new(None)).collect(),
        }
    }

    /// Stores an entry; its `seq` is assigned here and returned.
    pub fn push(&self, mut e: PickEntry) -> u64 {
        let seq = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        e.seq = seq;
        let slot = &self.slots[(seq % self.slots.len() as u64) as usize];
        *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
        seq
    }

    /// The newest `n` entries, oldest first.
    pub fn recent(&self, n: usize) -> Vec<PickEntry> {
        let last = self.next.load(Ordering::Relaxed);
        let n = n.min(self.slots.len()) as u64;
        let first = last.saturating_sub(n) + 1;
        (first..=last)
            .filter_map(|seq| {
                let slot = &self.slots[(seq % self.slots.len() as u64) as usize];
                let g = slot.lock().unwrap_or_else(|p| p.into_inner());
                // A slot already overwritten by a newer pick, or not written yet, is skipped.
                g.as_ref().filter(|e| e.seq == seq).cloned()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::members::tests::members;
    use super::*;

    fn entry(m: &Arc<Members>, chosen: usize) -> PickEntry {
        PickEntry {
            seq: 0,
            at_unix_ms: 0,
            caller: Name::of("gateway"),
            strategy: Strategy::RoundRobin,
            members: m.clone(),
            chosen,
            reason: Reason::Turn(chosen as u64),
            eligible: 0b111,
            ejected: 0,
            in_flight: 0,
            trace_id: None,
            attempt: 1,
        }
    }

    #[test]
    fn keeps_the_newest_within_capacity() {
        let m = members(&["a", "b", "c"]);
        let log = PickLog::new(3);
        for i in [0, 1, 0, 2, 0] {
            log.push(entry(&m, i));
        }
        let recent: Vec<String> = log
            .recent(10)
            .iter()
            .map(|e| e.record("svc").chosen)
            .collect();
        assert_eq!(recent, ["a", "c", "a"]);
        assert_eq!(log.recent(10).last().map(|r| r.seq), Some(5));
        assert_eq!(log.recent(1).len(), 1);
    }
}
