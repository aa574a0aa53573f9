//! Smooth weighted round robin, as nginx does it: every pick adds each candidate's weight to
//! its current weight, takes the highest, and subtracts the total from the chosen one. Weights
//! 5:1:1 give `a a b a c a a`, interleaved rather than in bursts.

use super::{Candidate, Pick, Reason, Strategy};
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct SmoothWeighted {
    /// Current weight per instance id; instances that left the candidate set are dropped.
    current: Mutex<HashMap<String, i64>>,
}

impl Pick for SmoothWeighted {
    fn strategy(&self) -> Strategy {
        Strategy::Weighted
    }

    fn pick(&self, candidates: &[Candidate<'_>], _key: Option<&str>) -> (usize, Reason) {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if current.len() != candidates.len()
            || candidates.iter().any(|c| !current.contains_key(c.id))
        {
            current.retain(|id, _| candidates.iter().any(|c| c.id == id));
        }
        let mut total = 0i64;
        let mut best: Option<(usize, i64)> = None;
        for (i, c) in candidates.iter().enumerate() {
            let w = i64::from(c.weight);
            total += w;
            let cw = match current.get_mut(c.id) {
                Some(v) => v,
                None => current.entry(c.id.to_string()).or_insert(0),
            };
            *cw += w;
            if best.is_none_or(|(_, b)| *cw > b) {
                best = Some((i, *cw));
            }
        }
        let (i, cw) = best.unwrap_or((0, 0));
        if let Some(v) = current.get_mut(candidates[i].id) {
            *v -= total;
        }
        (i, Reason::CurrentWeight { current: cw, total })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::test_support::cands;

    fn weighted<'a>(ids: &'a [&'a str], weights: &[u32]) -> Vec<Candidate<'a>> {
        let mut c = cands(ids);
        for (c, w) in c.iter_mut().zip(weights) {
            c.weight = *w;
        }
        c
    }

    #[test]
    fn five_one_one_interleaves_like_nginx() {
        let p = SmoothWeighted::default();
        let c = weighted(&["a", "b", "c"], &[5, 1, 1]);
        let seq: String = (0..14).map(|_| c[p.pick(&c, None).0].id).collect();
        assert_eq!(seq, "aabacaaaabacaa");
    }

    #[test]
    fn shares_follow_the_weights() {
        let p = SmoothWeighted::default();
        let c = weighted(&["a", "b", "c"], &[3, 2, 1]);
        let mut counts = [0; 3];
        for _ in 0..600 {
            counts[p.pick(&c, None).0] += 1;
        }
        assert_eq!(counts, [300, 200, 100]);
    }

    #[test]
    fn a_zero_weight_instance_gets_nothing_unless_alone() {
        let p = SmoothWeighted::default();
        let c = weighted(&["a", "b"], &[1, 0]);
        assert!((0..10).all(|_| p.pick(&c, None).0 == 0));
        let alone = weighted(&["b"], &[0]);
        assert_eq!(p.pick(&alone, None).0, 0);
    }
}
