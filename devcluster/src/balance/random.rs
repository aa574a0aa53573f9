//! Random: a uniform draw per pick from a seedable source.

use super::{Candidates, Pick, Reason, SeededRng, Strategy};

#[derive(Debug)]
pub struct Random {
    rng: SeededRng,
}

impl Random {
    pub fn new(seed: u64) -> Self {
        Random {
            rng: SeededRng::new(seed),
        }
    }
}

impl Pick for Random {
    fn strategy(&self) -> Strategy {
        Strategy::Random
    }

    fn pick(&self, candidates: &dyn Candidates, _key: Option<&str>) -> (usize, Reason) {
        (self.rng.below(candidates.len()), Reason::Random)
    }

    fn peek(&self, candidates: &dyn Candidates, _key: Option<&str>) -> (usize, Reason) {
        (self.rng.peek_below(1, candidates.len()), Reason::Random)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::test_support::cands;

    /// Pearson's chi-square over 5 buckets (4 degrees of freedom): 18.47 is the 0.1 % critical
    /// value, so a fair draw fails this about once in a thousand seeds; the seed is fixed.
    #[test]
    fn spreads_uniformly_by_chi_square() {
        let r = Random::new(42);
        let c = cands(&["a", "b", "c", "d", "e"]);
        let draws = 50_000;
        let mut counts = [0u32; 5];
        for _ in 0..draws {
            counts[r.pick(&c, None).0] += 1;
        }
        let expected = draws as f64 / 5.0;
        let chi2: f64 = counts
            .iter()
            .map(|&o| (o as f64 - expected).powi(2) / expected)
            .sum();
        assert!(chi2 < 18.47, "chi-square {chi2:.2} for {counts:?}");
    }

    #[test]
    fn the_same_seed_gives_the_same_sequence() {
        let c = cands(&["a", "b", "c"]);
        let (x, y) = (Random::new(7), Random::new(7));
        let a: Vec<usize> = (0..20).map(|_| x.pick(&c, None).0).collect();
        let b: Vec<usize> = (0..20).map(|_| y.pick(&c, None).0).collect();
        assert_eq!(a, b);
    }
}
