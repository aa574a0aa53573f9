//! Least request: the candidate with the fewest requests in flight; ties are broken by a
//! rotating start so equally idle instances share the load.

use super::{Candidates, Pick, Reason, Strategy};
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug, Default)]
pub struct LeastRequest {
    start: AtomicUsize,
}

impl Pick for LeastRequest {
    fn strategy(&self) -> Strategy {
        Strategy::LeastRequest
    }

    fn pick(&self, candidates: &dyn Candidates, _key: Option<&str>) -> (usize, Reason) {
        let start = self.start.fetch_add(1, Ordering::Relaxed);
        least_from(candidates, start)
    }

    fn peek(&self, candidates: &dyn Candidates, _key: Option<&str>) -> (usize, Reason) {
        least_from(candidates, self.start.load(Ordering::Relaxed))
    }
}

fn least_from(candidates: &dyn Candidates, start: usize) -> (usize, Reason) {
    let n = candidates.len();
    let start = start % n;
    // Scan from a rotating start so equals take turns; two ranges, no division per step.
    let mut best = start;
    for i in (start + 1..n).chain(0..start) {
        if candidates.in_flight(i) < candidates.in_flight(best) {
            best = i;
        }
    }
    (best, Reason::LeastInFlight(candidates.in_flight(best)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::test_support::cands;

    #[test]
    fn prefers_the_least_busy_and_rotates_among_equals() {
        let p = LeastRequest::default();
        let mut c = cands(&["a", "b", "c"]);
        c[0].in_flight = 4;
        c[1].in_flight = 1;
        c[2].in_flight = 3;
        assert!((0..5).all(|_| p.pick(&c, None).0 == 1));
        let idle = cands(&["a", "b", "c"]);
        let mut seen = [false; 3];
        for _ in 0..3 {
            seen[p.pick(&idle, None).0] = true;
        }
        assert_eq!(seen, [true; 3]);
    }
}
