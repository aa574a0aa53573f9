//! Load balancers: one trait, one module per strategy. A strategy only chooses among the
//! candidates it is given (passing, not ejected instances, with their load); the per-service
//! state around it — loads, outlier ejection, the record of picks — lives in [`service`].

mod consistent_hash;
mod least_request;
pub mod load;
pub mod members;
mod p2c;
mod random;
pub mod record;
mod round_robin;
pub mod service;
mod weighted;

pub use consistent_hash::ConsistentHash;
pub use least_request::LeastRequest;
pub use p2c::PowerOfTwo;
pub use random::Random;
pub use round_robin::RoundRobin;
pub use weighted::SmoothWeighted;

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// The strategies, with the names used in config, `ctl strategy` and the dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    #[default]
    RoundRobin,
    Random,
    Weighted,
    LeastRequest,
    P2c,
    ConsistentHash,
}

impl Strategy {
    pub const ALL: [Strategy; 6] = [
        Strategy::RoundRobin,
        Strategy::Random,
        Strategy::Weighted,
        Strategy::LeastRequest,
        Strategy::P2c,
        Strategy::ConsistentHash,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::RoundRobin => "round_robin",
            Strategy::Random => "random",
            Strategy::Weighted => "weighted",
            Strategy::LeastRequest => "least_request",
            Strategy::P2c => "p2c",
            Strategy::ConsistentHash => "consistent_hash",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Strategy::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Strategy::ALL.iter().map(|s| s.as_str()).collect();
                format!(
                    "unknown strategy \"{s}\": expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// What a strategy sees of one candidate instance.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub id: &'a str,
    pub weight: u32,
    pub in_flight: u32,
    /// Peak-EWMA latency in nanoseconds (0 before the first response).
    pub ewma_ns: f64,
}

/// The candidates a strategy chooses among, read one field at a time: a strategy reads only
/// what it needs (round robin only the count, P2C two loads), and the caller builds nothing.
pub trait Candidates {
    fn len(&self) -> usize;
    fn id(&self, i: usize) -> &str;
    fn weight(&self, i: usize) -> u32;
    fn in_flight(&self, i: usize) -> u32;
    /// Peak-EWMA latency in nanoseconds (0 before the first response).
    fn ewma_ns(&self, i: usize) -> f64;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Candidates for [Candidate<'_>] {
    fn len(&self) -> usize {
        <[Candidate<'_>]>::len(self)
    }
    fn id(&self, i: usize) -> &str {
        self[i].id
    }
    fn weight(&self, i: usize) -> u32 {
        self[i].weight
    }
    fn in_flight(&self, i: usize) -> u32 {
        self[i].in_flight
    }
    fn ewma_ns(&self, i: usize) -> f64 {
        self[i].ewma_ns
    }
}

impl Candidates for Vec<Candidate<'_>> {
    fn len(&self) -> usize {
        self.as_slice().len()
    }
    fn id(&self, i: usize) -> &str {
        self[i].id
    }
    fn weight(&self, i: usize) -> u32 {
        self[i].weight
    }
    fn in_flight(&self, i: usize) -> u32 {
        self[i].in_flight
    }
    fn ewma_ns(&self, i: usize) -> f64 {
        self[i].ewma_ns
    }
}

/// Why a candidate was chosen; cheap to produce (no allocation on the pick path).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reason {
    /// The n-th turn of the rotation.
    Turn(u64),
    Random,
    /// Smooth weighted: the chosen one had the highest current weight.
    CurrentWeight {
        current: i32,
        total: i32,
    },
    LeastInFlight(u32),
    /// Power of two choices: cost (EWMA × (in-flight+1), ns) of the chosen and of the other.
    /// Kept small (it is stored with every pick and attempt span).
    TwoChoices {
        chosen_cost: f32,
        other: u32,
        other_cost: f32,
    },
    /// Consistent hash: the key's hash landed on this instance's point of the ring.
    Hash(u64),
    /// Consistent hash without a key: fell back to rotation.
    NoKey(u64),
    Only,
}

impl Reason {
    /// A sentence for the pick log; `names` are the candidates' ids.
    pub fn describe(&self, names: &[&str]) -> String {
        self.describe_with(|i| names.get(i).copied().unwrap_or("?"))
    }

    /// The same, naming a `TwoChoices::other` through `name_of`.
    pub fn describe_with<'a>(&self, name_of: impl Fn(usize) -> &'a str) -> String {
        match *self {
            Reason::Turn(n) => format!("turn {n} of the rotation"),
            Reason::Random => "uniform random draw".into(),
            Reason::CurrentWeight { current, total } => {
                format!("highest current weight {current} (total weight {total})")
            }
            Reason::LeastInFlight(n) => format!("fewest requests in flight ({n})"),
            Reason::TwoChoices {
                chosen_cost,
                other,
                other_cost,
            } => format!(
                "cost {:.2}ms beat {} at {:.2}ms (EWMA latency × in-flight)",
                f64::from(chosen_cost) / 1e6,
                name_of(other as usize),
                f64::from(other_cost) / 1e6
            ),
            Reason::Hash(h) => format!("key hash {h:016x} on the ring"),
            Reason::NoKey(n) => format!("no hash key on the request: rotation turn {n}"),
            Reason::Only => "only candidate".into(),
        }
    }
}

/// One strategy. `pick` gets at least one candidate and returns the index of the chosen one.
pub trait Pick: Send + Sync {
    fn strategy(&self) -> Strategy;
    fn pick(&self, candidates: &dyn Candidates, key: Option<&str>) -> (usize, Reason);
    /// What `pick` would answer now, changing nothing (no turn taken, no draw made, no weight
    /// moved): the next `pick` with the same candidates answers the same.
    fn peek(&self, candidates: &dyn Candidates, key: Option<&str>) -> (usize, Reason);
}

/// A new picker for `strategy`; `seed` makes the random ones reproducible.
pub fn picker(strategy: Strategy, seed: u64) -> Box<dyn Pick> {
    match strategy {
        Strategy::RoundRobin => Box::new(RoundRobin::default()),
        Strategy::Random => Box::new(Random::new(seed)),
        Strategy::Weighted => Box::new(SmoothWeighted::default()),
        Strategy::LeastRequest => Box::new(LeastRequest::default()),
        Strategy::P2c => Box::new(PowerOfTwo::new(seed)),
        Strategy::ConsistentHash => Box::new(ConsistentHash::default()),
    }
}

/// A lock-free, seedable random source (SplitMix64 over an atomic counter): good enough
/// statistics for balancing, no lock on the pick path.
#[derive(Debug)]
pub struct SeededRng(AtomicU64);

impl SeededRng {
    pub fn new(seed: u64) -> Self {
        SeededRng(AtomicU64::new(seed))
    }

    const STEP: u64 = 0x9E37_79B9_7F4A_7C15;

    fn mix(state: u64) -> u64 {
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn next_u64(&self) -> u64 {
        Self::mix(
            self.0
                .fetch_add(Self::STEP, Ordering::Relaxed)
                .wrapping_add(Self::STEP),
        )
    }

    /// The value the `k`-th next `next_u64` will return (k = 1: the very next), drawing nothing.
    pub fn peek_u64(&self, k: u64) -> u64 {
        Self::mix(
            self.0
                .load(Ordering::Relaxed)
                .wrapping_add(Self::STEP.wrapping_mul(k)),
        )
    }

    /// Uniform in `0..n` (n > 0), by multiply-shift rather than a biased modulo.
    pub fn below(&self, n: usize) -> usize {
        Self::scale(self.next_u64(), n)
    }

    /// What the `k`-th next `below(n)` will return.
    pub fn peek_below(&self, k: u64, n: usize) -> usize {
        Self::scale(self.peek_u64(k), n)
    }

    /// Two draws at once, in `0..n` and `0..m`, from the halves of one value: one atomic step.
    pub fn below2(&self, n: usize, m: usize) -> (usize, usize) {
        Self::split(self.next_u64(), n, m)
    }

    /// What the next `below2(n, m)` will return.
    pub fn peek_below2(&self, n: usize, m: usize) -> (usize, usize) {
        Self::split(self.peek_u64(1), n, m)
    }

    fn split(v: u64, n: usize, m: usize) -> (usize, usize) {
        let (hi, lo) = (v >> 32, v & 0xFFFF_FFFF);
        (
            ((hi * n as u64) >> 32) as usize,
            ((lo * m as u64) >> 32) as usize,
        )
    }

    fn scale(v: u64, n: usize) -> usize {
        ((v as u128 * n as u128) >> 64) as usize
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::Candidate;

    pub fn cands<'a>(ids: &'a [&'a str]) -> Vec<Candidate<'a>> {
        ids.iter()
            .map(|id| Candidate {
                id,
                weight: 1,
                in_flight: 0,
                ewma_ns: 0.0,
            })
            .collect()
    }
}
