//! Power of two choices over peak-EWMA latency × in-flight (as in Finagle, Linkerd and tower):
//! draw two distinct candidates at random, send to the cheaper. A slow instance quickly stops
//! winning, without scanning every candidate.

use super::{Candidates, Pick, Reason, SeededRng, Strategy};

/// Latency assumed for an instance that has not answered yet (tower's default RTT is similar).
const DEFAULT_RTT_NS: f64 = 1_000_000.0;

#[derive(Debug)]
pub struct PowerOfTwo {
    rng: SeededRng,
}

impl PowerOfTwo {
    pub fn new(seed: u64) -> Self {
        PowerOfTwo {
            rng: SeededRng::new(seed),
        }
    }
}

pub(crate) fn cost(c: &dyn Candidates, i: usize) -> f64 {
    let ewma = c.ewma_ns(i);
    let rtt = if ewma > 0.0 { ewma } else { DEFAULT_RTT_NS };
    rtt * f64::from(c.in_flight(i) + 1)
}

impl Pick for PowerOfTwo {
    fn strategy(&self) -> Strategy {
        Strategy::P2c
    }

    fn pick(&self, candidates: &dyn Candidates, _key: Option<&str>) -> (usize, Reason) {
        let n = candidates.len();
        if n == 1 {
            return (0, Reason::Only);
        }
        let (a, b) = self.rng.below2(n, n - 1);
        choose(candidates, a, b)
    }

    fn peek(&self, candidates: &dyn Candidates, _key: Option<&str>) -> (usize, Reason) {
        let n = candidates.len();
        if n == 1 {
            return (0, Reason::Only);
        }
        let (a, b) = self.rng.peek_below2(n, n - 1);
        choose(candidates, a, b)
    }
}

/// The cheaper of draws `a` (in `0..n`) and `b` (a second draw among the other n-1, shifted
/// past `a`: always distinct).
fn choose(candidates: &dyn Candidates, a: usize, mut b: usize) -> (usize, Reason) {
    if b >= a {
        b += 1;
    }
    let (ca, cb) = (cost(candidates, a), cost(candidates, b));
    let (win, lose, cw, cl) = if ca <= cb {
        (a, b, ca, cb)
    } else {
        (b, a, cb, ca)
    };
    (
        win,
        Reason::TwoChoices {
            chosen_cost: cw as f32,
            other: lose as u32,
            other_cost: cl as f32,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::test_support::cands;

    #[test]
    fn a_slow_instance_gets_almost_nothing() {
        let p = PowerOfTwo::new(1);
        let mut c = cands(&["fast-1", "slow", "fast-2"]);
        c[0].ewma_ns = 1e6;
        c[1].ewma_ns = 200e6; // 200 ms of injected latency
        c[2].ewma_ns = 1.2e6;
        let mut counts = [0; 3];
        for _ in 0..3000 {
            counts[p.pick(&c, None).0] += 1;
        }
        // It can only win when drawn twice, which the distinct second draw rules out.
        assert_eq!(counts[1], 0, "{counts:?}");
        assert!(counts[0] > 900 && counts[2] > 900, "{counts:?}");
    }

    #[test]
    fn in_flight_counts_against_an_instance() {
        let p = PowerOfTwo::new(3);
        let mut c = cands(&["a", "b"]);
        c[0].ewma_ns = 1e6;
        c[1].ewma_ns = 1e6;
        c[0].in_flight = 9;
        assert!((0..50).all(|_| p.pick(&c, None).0 == 1));
    }
}
