//! Consistent hashing on a request key (a header or a path parameter): each instance owns many
//! points on a ring, a key goes to the first point at or after its hash. When an instance joins
//! or leaves, only the keys next to its points move, about 1/n of them.

use super::{Candidates, Pick, Reason, Strategy};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Points per instance: enough that shares stay within a few percent of 1/n.
const POINTS_PER_INSTANCE: u32 = 160;

#[derive(Debug, Default)]
pub struct ConsistentHash {
    ring: Mutex<Ring>,
    fallback: AtomicU64,
}

#[derive(Debug, Default)]
struct Ring {
    ids: Vec<String>,
    /// (point, index into `ids`), sorted by point.
    points: Vec<(u64, usize)>,
}

/// FNV-1a followed by a 64-bit finalizer: stable across runs and platforms (unlike std's
/// SipHash keys), so a key keeps its instance across restarts too.
pub fn hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

impl Ring {
    fn matches(&self, candidates: &dyn Candidates) -> bool {
        self.ids.len() == candidates.len()
            && self
                .ids
                .iter()
                .enumerate()
                .all(|(i, a)| a == candidates.id(i))
    }

    fn build(candidates: &dyn Candidates) -> Ring {
        let ids: Vec<String> = (0..candidates.len())
            .map(|i| candidates.id(i).to_string())
            .collect();
        let mut points = Vec::with_capacity(ids.len() * POINTS_PER_INSTANCE as usize);
        for (i, id) in ids.iter().enumerate() {
            for v in 0..POINTS_PER_INSTANCE {
                points.push((hash(format!("{id}#{v}").as_bytes()), i));
            }
        }
        points.sort_unstable();
        Ring { ids, points }
    }

    fn lookup(&self, h: u64) -> usize {
        let at = self.points.partition_point(|(p, _)| *p < h);
        self.points
            .get(at)
            .or_else(|| self.points.first())
            .map_or(0, |(_, i)| *i)
    }
}

impl Pick for ConsistentHash {
    fn strategy(&self) -> Strategy {
        Strategy::ConsistentHash
    }

    fn pick(&self, candidates: &dyn Candidates, key: Option<&str>) -> (usize, Reason) {
        if key.is_none() {
            let n = self.fallback.fetch_add(1, Ordering::Relaxed);
            return ((n % candidates.len() as u64) as usize, Reason::NoKey(n));
        }
        self.peek(candidates, key)
    }

    /// With a key the choice is a pure function of the key and the candidates (the ring is a
    /// cache of them); without one, the next turn of the fallback rotation.
    fn peek(&self, candidates: &dyn Candidates, key: Option<&str>) -> (usize, Reason) {
        let Some(key) = key else {
            let n = self.fallback.load(Ordering::Relaxed);
            return ((n % candidates.len() as u64) as usize, Reason::NoKey(n));
        };
        let h = hash(key.as_bytes());
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        if !ring.matches(candidates) {
            *ring = Ring::build(candidates);
        }
        (ring.lookup(h), Reason::Hash(h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::test_support::cands;

    fn assign(p: &ConsistentHash, ids: &[&str], keys: &[String]) -> Vec<String> {
        let c = cands(ids);
        keys.iter()
            .map(|k| ids[p.pick(&c, Some(k)).0].to_string())
            .collect()
    }

    #[test]
    fn the_same_key_goes_to_the_same_instance() {
        let p = ConsistentHash::default();
        let c = cands(&["a", "b", "c"]);
        let first = p.pick(&c, Some("user-42")).0;
        assert!((0..20).all(|_| p.pick(&c, Some("user-42")).0 == first));
    }

    #[test]
    fn a_join_or_leave_moves_about_one_nth_of_the_keys() {
        let keys: Vec<String> = (0..20_000).map(|i| format!("user-{i}")).collect();
        let p = ConsistentHash::default();
        let five = ["u1", "u2", "u3", "u4", "u5"];
        let six = ["u1", "u2", "u3", "u4", "u5", "u6"];
        let before = assign(&p, &five, &keys);
        let after = assign(&p, &six, &keys);
        let moved = before.iter().zip(&after).filter(|(a, b)| a != b).count();
        let n = six.len() as f64;
        assert!(
            (moved as f64) <= 1.5 / n * keys.len() as f64,
            "join moved {moved} of {}",
            keys.len()
        );
        // Every moved key went to the newcomer: nobody else's keys were shuffled.
        assert!(before.iter().zip(&after).all(|(a, b)| a == b || b == "u6"));

        let without_u3: Vec<&str> = five.iter().copied().filter(|x| *x != "u3").collect();
        let left = assign(&p, &without_u3, &keys);
        let moved = before.iter().zip(&left).filter(|(a, b)| a != b).count();
        assert!(
            (moved as f64) <= 1.5 / 5.0 * keys.len() as f64,
            "leave moved {moved}"
        );
        assert!(before.iter().zip(&left).all(|(a, b)| a == b || a == "u3"));
    }

    #[test]
    fn without_a_key_it_rotates() {
        let p = ConsistentHash::default();
        let c = cands(&["a", "b"]);
        let picks: Vec<usize> = (0..4).map(|_| p.pick(&c, None).0).collect();
        assert_eq!(picks, [0, 1, 0, 1]);
    }
}
