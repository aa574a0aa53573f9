//! Round robin: each candidate in turn, one atomic increment per pick.

use super::{Candidates, Pick, Reason, Strategy};
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct RoundRobin {
    next: AtomicU64,
}

impl Pick for RoundRobin {
    fn strategy(&self) -> Strategy {
        Strategy::RoundRobin
    }

    fn pick(&self, candidates: &dyn Candidates, _key: Option<&str>) -> (usize, Reason) {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        ((n % candidates.len() as u64) as usize, Reason::Turn(n))
    }

    fn peek(&self, candidates: &dyn Candidates, _key: Option<&str>) -> (usize, Reason) {
        let n = self.next.load(Ordering::Relaxed);
        ((n % candidates.len() as u64) as usize, Reason::Turn(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::test_support::cands;

    #[test]
    fn takes_each_in_turn() {
        let rr = RoundRobin::default();
        let c = cands(&["a", "b", "c"]);
        let picks: Vec<usize> = (0..7).map(|_| rr.pick(&c, None).0).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2, 0]);
    }
}
