//! Smooth weighted round robin, as nginx does it: every pick adds each candidate's weight to
//! its current weight, takes the highest, and subtracts the total from the chosen one. Weights
//! 5:1:1 give `a a b a c a a`, interleaved rather than in bursts.

use super::{Candidates, Pick, Reason, Strategy};
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct SmoothWeighted {
    state: Mutex<State>,
}

/// Current weights aligned with the last candidate set, so a pick is one pass over plain
/// vectors; a changed set is re-aligned by id, keeping the weights of those still there.
#[derive(Debug, Default)]
struct State {
    ids: Vec<String>,
    current: Vec<i64>,
}

impl State {
    fn align(&mut self, candidates: &dyn Candidates) {
        let same = self.ids.len() == candidates.len()
            && self
                .ids
                .iter()
                .enumerate()
                .all(|(i, a)| a == candidates.id(i));
        if same {
            return;
        }
        let old: HashMap<&str, i64> = self
            .ids
            .iter()
            .map(String::as_str)
            .zip(self.current.iter().copied())
            .collect();
        let current = (0..candidates.len())
            .map(|i| old.get(candidates.id(i)).copied().unwrap_or(0))
            .collect();
        self.current = current;
        self.ids = (0..candidates.len())
            .map(|i| candidates.id(i).to_string())
            .collect();
    }
}

impl Pick for SmoothWeighted {
    fn strategy(&self) -> Strategy {
        Strategy::Weighted
    }

    fn pick(&self, candidates: &dyn Candidates, _key: Option<&str>) -> (usize, Reason) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.align(candidates);
        step(&mut st.current, candidates)
    }

    fn peek(&self, candidates: &dyn Candidates, _key: Option<&str>) -> (usize, Reason) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.align(candidates);
        let mut current = st.current.clone();
        step(&mut current, candidates)
    }
}

/// One round of nginx's smooth weighted choice over `current` (aligned with `candidates`).
fn step(current: &mut [i64], candidates: &dyn Candidates) -> (usize, Reason) {
    let mut total = 0i64;
    let mut best: Option<(usize, i64)> = None;
    for (i, cw) in current.iter_mut().enumerate().take(candidates.len()) {
        let w = i64::from(candidates.weight(i));
        total += w;
        *cw += w;
        if best.is_none_or(|(_, b)| *cw > b) {
            best = Some((i, *cw));
        }
    }
    let (i, cw) = best.unwrap_or((0, 0));
    if let Some(v) = current.get_mut(i) {
        *v -= total;
    }
    (
        i,
        Reason::CurrentWeight {
            current: cw.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32,
            total: total.clamp(0, i64::from(i32::MAX)) as i32,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::Candidate;
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

    #[test]
    fn a_changed_candidate_set_keeps_the_others_turns() {
        let p = SmoothWeighted::default();
        let abc = weighted(&["a", "b", "c"], &[3, 2, 1]);
        for _ in 0..4 {
            p.pick(&abc, None);
        }
        // b leaves: a and c go on at 3:1, a and c keeping their accumulated weights.
        let ac = weighted(&["a", "c"], &[3, 1]);
        let mut counts = [0; 2];
        for _ in 0..400 {
            counts[p.pick(&ac, None).0] += 1;
        }
        assert!((299..=301).contains(&counts[0]), "{counts:?}");
        // b comes back with no history and gets its share at once.
        let mut counts = [0; 3];
        for _ in 0..600 {
            counts[p.pick(&abc, None).0] += 1;
        }
        assert!((199..=201).contains(&counts[1]), "{counts:?}");
    }
}
