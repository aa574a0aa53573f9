//! The balancer of one target service: its current strategy (switchable while requests flow),
//! its candidate set (rebuilt when the registry changes), per-instance load and outlier state,
//! and the ring of its picks. One per target, shared by every caller (the gateway and
//! order-service both call user-service through the same one).
//!
//! A pick is: the cached candidate set (no filtering when nothing changed), the ejected and
//! already-tried instances left out when there are any, the strategy's choice among prepared
//! candidates, and a fixed-size entry in the ring. `peek` runs the same steps and changes
//! nothing, for the route inspector.

use super::load::{InstanceLoad, OutlierSettings};
use super::members::{Member, Members};
use super::record::{MASK_BITS, Mask, PickEntry, PickLog, PickRecord};
use super::{Candidates, Pick, Reason, Strategy, picker};
use crate::registry::{InstanceView, Registry};
use crate::telemetry::TraceId;
use crate::telemetry::names::Name;
use crate::telemetry::path;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// How many picks each balancer remembers.
pub const DEFAULT_PICK_LOG: usize = 1000;
/// The eligible members of a set, as the strategies read them.
struct Eligible<'a> {
    members: &'a Members,
    index: &'a [u32],
}

impl Candidates for Eligible<'_> {
    fn len(&self) -> usize {
        self.index.len()
    }
    fn id(&self, i: usize) -> &str {
        &self.members[self.index[i] as usize].id
    }
    fn weight(&self, i: usize) -> u32 {
        self.members[self.index[i] as usize].weight
    }
    fn in_flight(&self, i: usize) -> u32 {
        self.members[self.index[i] as usize].load.in_flight()
    }
    fn ewma_ns(&self, i: usize) -> f64 {
        self.members[self.index[i] as usize]
            .load
            .ewma_ns_at(path::now())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no passing instance of {target} ({registered} registered, {passing} passing)")]
pub struct NoCandidate {
    pub target: String,
    pub registered: usize,
    pub passing: usize,
}

/// The chosen instance, with the set it was chosen from and why.
#[derive(Debug, Clone)]
pub struct Picked {
    pub members: Arc<Members>,
    /// Index of the chosen instance in `members`.
    pub index: usize,
    pub strategy: Strategy,
    /// Why; a `TwoChoices::other` is an index into `members`.
    pub reason: Reason,
    pub eligible: Mask,
    pub ejected: Mask,
    /// The ring's sequence number of this pick (0: not recorded, a peek).
    pub seq: u64,
}

impl Picked {
    pub fn member(&self) -> &Member {
        &self.members[self.index]
    }

    /// The pick as the dashboard shows one (for a peek: what it would record).
    pub fn record(&self, caller: &str, target: &str) -> PickRecord {
        let m = self.member();
        PickEntry {
            seq: self.seq,
            at_unix_ms: unix_ms(),
            caller: Name::of(caller),
            strategy: self.strategy,
            members: self.members.clone(),
            chosen: self.index,
            reason: self.reason,
            eligible: self.eligible,
            ejected: self.ejected,
            in_flight: m.load.in_flight(),
            trace_id: None,
            attempt: 1,
        }
        .record(target)
    }

    /// The reason as a sentence naming the instances.
    pub fn reason_text(&self) -> String {
        let names: Vec<&str> = self.members.iter().map(|m| &*m.id).collect();
        self.reason.describe(&names)
    }
}

/// An instance's load as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadView {
    pub id: String,
    pub in_flight: u32,
    pub ewma_ms: f64,
    pub requests: u64,
    pub failures: u64,
    pub consecutive_failures: u32,
    /// Remaining ejection time, when ejected.
    pub ejected_for_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BalancerSnapshot {
    pub target: String,
    pub strategy: Strategy,
    pub counts: BTreeMap<String, u64>,
    pub loads: Vec<LoadView>,
    pub recent: Vec<PickRecord>,
}

pub struct ServiceBalancer {
    target: String,
    seed: u64,
    picker: RwLock<Arc<dyn Pick>>,
    loads: Mutex<HashMap<String, Arc<InstanceLoad>>>,
    /// The candidate set as of the registry index it carries.
    members: RwLock<Arc<Members>>,
    outlier: RwLock<OutlierSettings>,
    log: PickLog,
    /// When the last ejection of any instance ends (ms since `born`; 0: none yet): picks skip
    /// checking each instance's ejection once it is past.
    ejections_end: std::sync::atomic::AtomicU64,
    born: Instant,
}

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Whether a pick may change state (a real call) or only look (the route inspector).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Record,
    Peek,
}

/// Who asks for a pick and for which attempt: what the ring records with it.
#[derive(Debug, Clone, Copy)]
pub struct PickFor<'a> {
    pub caller: Name,
    pub key: Option<&'a str>,
    /// Instances a retry already tried.
    pub exclude: &'a [Arc<str>],
    pub trace_id: Option<TraceId>,
    pub attempt: u32,
}

fn bit(i: usize) -> Mask {
    if i < MASK_BITS { 1 << i } else { 0 }
}

impl ServiceBalancer {
    pub fn new(
        target: impl Into<String>,
        strategy: Strategy,
        outlier: OutlierSettings,
        seed: u64,
    ) -> Self {
        ServiceBalancer {
            target: target.into(),
            seed,
            picker: RwLock::new(Arc::from(picker(strategy, seed))),
            loads: Mutex::new(HashMap::new()),
            members: RwLock::new(Arc::new(Members::default())),
            outlier: RwLock::new(outlier),
            log: PickLog::new(DEFAULT_PICK_LOG),
            ejections_end: std::sync::atomic::AtomicU64::new(0),
            born: Instant::now(),
        }
    }

    pub fn target(&self) -> &str {
        &self.target
    }

    pub fn strategy(&self) -> Strategy {
        self.picker
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .strategy()
    }

    /// Switches strategy; picks already made keep their instance, the next pick uses the new one.
    pub fn set_strategy(&self, s: Strategy) {
        if self.strategy() != s {
            *self.picker.write().unwrap_or_else(|e| e.into_inner()) =
                Arc::from(picker(s, self.seed));
            for l in self
                .loads
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .values()
            {
                l.picks.store(0, Ordering::Relaxed);
            }
        }
    }

    pub fn set_outlier(&self, o: OutlierSettings) {
        *self.outlier.write().unwrap_or_else(|e| e.into_inner()) = o;
    }

    pub fn load(&self, id: &str) -> Arc<InstanceLoad> {
        let mut loads = self.loads.lock().unwrap_or_else(|e| e.into_inner());
        loads.entry(id.to_string()).or_default().clone()
    }

    /// The candidate set as the registry has it now: the cached one while the registry's index
    /// has not moved, else rebuilt once.
    pub fn members(&self, registry: &Registry) -> Arc<Members> {
        let index = registry.index();
        {
            let cached = self.members.read().unwrap_or_else(|e| e.into_inner());
            if cached.index == index {
                return cached.clone();
            }
        }
        let built = Arc::new(Members::build(
            index,
            &registry.service_shared(&self.target),
            &self.loads,
        ));
        *self.members.write().unwrap_or_else(|e| e.into_inner()) = built.clone();
        built
    }

    /// A candidate set made from a list (tests, benchmarks), sharing this balancer's loads.
    pub fn members_of(&self, instances: &[InstanceView]) -> Arc<Members> {
        Arc::new(Members::build(0, instances, &self.loads))
    }

    /// Chooses among `members`: passing, not ejected, not in `exclude` (instances a retry
    /// already tried). When ejection would leave nobody, ejected instances are used anyway
    /// (Envoy's panic threshold does the same); when a retry has nowhere new to go, it may
    /// return to an instance already tried. The pick is counted and recorded in the ring.
    pub fn pick(&self, members: &Arc<Members>, at: PickFor<'_>) -> Result<Picked, NoCandidate> {
        self.choose(members, at, Mode::Record)
    }

    /// What `pick` would choose now, changing nothing: no turn of a rotation taken, nothing
    /// counted or recorded. The next `pick` with nothing changed in between chooses the same.
    pub fn peek(&self, members: &Arc<Members>, at: PickFor<'_>) -> Result<Picked, NoCandidate> {
        self.choose(members, at, Mode::Peek)
    }

    fn choose(
        &self,
        members: &Arc<Members>,
        at: PickFor<'_>,
        mode: Mode,
    ) -> Result<Picked, NoCandidate> {
        let passing = members.passing();
        if passing.is_empty() {
            return Err(NoCandidate {
                target: self.target.clone(),
                registered: members.len(),
                passing: 0,
            });
        }
        let excluded = |m: &Member| {
            at.exclude
                .iter()
                .any(|x| Arc::ptr_eq(x, &m.id) || **x == *m.id)
        };
        // Only look at each member's ejection while some ejection may still run.
        let now = (self.ejections_end.load(Ordering::Relaxed) > 0).then(Instant::now);
        let ejected_now = |m: &Member| now.is_some_and(|t| m.load.is_ejected(t));
        let mut ejected: Mask = 0;
        let mut any_out = false;
        if now.is_some() || !at.exclude.is_empty() {
            for &i in passing {
                let m = &members[i as usize];
                if ejected_now(m) {
                    ejected |= bit(i as usize);
                    any_out = true;
                } else if excluded(m) {
                    any_out = true;
                }
            }
        }
        // The common case takes the passing list as it is; otherwise the first tier with
        // anyone in it: neither ejected nor tried, then not tried, then passing.
        let filtered: Vec<u32>;
        let (eligible, eligible_mask): (&[u32], Mask) = if !any_out {
            (passing, members.passing_mask())
        } else {
            let tiers: [&dyn Fn(&Member) -> bool; 2] =
                [&|m| !ejected_now(m) && !excluded(m), &|m| !excluded(m)];
            filtered = tiers
                .iter()
                .map(|ok| {
                    passing
                        .iter()
                        .copied()
                        .filter(|&i| ok(&members[i as usize]))
                        .collect::<Vec<_>>()
                })
                .find(|v| !v.is_empty())
                .unwrap_or_else(|| passing.to_vec());
            let mask = filtered.iter().fold(0, |m, &i| m | bit(i as usize));
            (&filtered, mask)
        };
        let view = Eligible {
            members,
            index: eligible,
        };
        let picker = self.picker.read().unwrap_or_else(|e| e.into_inner());
        let (k, reason) = match mode {
            Mode::Record => picker.pick(&view, at.key),
            Mode::Peek => picker.peek(&view, at.key),
        };
        let strategy = picker.strategy();
        drop(picker);
        let index = eligible[k] as usize;
        // Reasons name other candidates by their place among the eligible: make it the set's.
        let reason = match reason {
            Reason::TwoChoices {
                chosen_cost,
                other,
                other_cost,
            } => Reason::TwoChoices {
                chosen_cost,
                other: eligible.get(other as usize).map_or(index as u32, |&i| i),
                other_cost,
            },
            r => r,
        };
        let mut picked = Picked {
            members: members.clone(),
            index,
            strategy,
            reason,
            eligible: eligible_mask,
            ejected,
            seq: 0,
        };
        if mode == Mode::Record {
            let load = &members[index].load;
            load.picks.fetch_add(1, Ordering::Relaxed);
            picked.seq = self.log.push(PickEntry {
                seq: 0,
                // The time of the request being served, read moments ago: no clock read here.
                at_unix_ms: crate::telemetry::path::recent_unix_ms(),
                caller: at.caller,
                strategy,
                members: members.clone(),
                chosen: index,
                reason,
                eligible: eligible_mask,
                ejected,
                in_flight: load.in_flight(),
                trace_id: at.trace_id,
                attempt: at.attempt,
            });
        }
        Ok(picked)
    }

    /// Reports how a call to `load`'s instance went: latency for P2C, failures for outlier
    /// ejection. Returns the ejection time when this report ejects the instance.
    pub fn report(
        &self,
        id: &str,
        load: &InstanceLoad,
        rtt: Duration,
        failure: bool,
    ) -> Option<Duration> {
        let now = path::now();
        load.observe_latency(rtt, now);
        let settings = self.outlier.read().unwrap_or_else(|e| e.into_inner());
        // Asked only when this failure would eject: the cap on how many may be out at once.
        let may_eject = || {
            let loads = self.loads.lock().unwrap_or_else(|e| e.into_inner());
            let ejected = loads.values().filter(|l| l.is_ejected(now)).count();
            (ejected + 1) * 100 <= settings.max_ejected_percent as usize * loads.len().max(1)
        };
        let ejected = load.record(failure, &settings, may_eject, now);
        if let Some(d) = ejected {
            let end = (now + d).saturating_duration_since(self.born).as_millis() as u64 + 1;
            self.ejections_end.fetch_max(end, Ordering::Relaxed);
            tracing::warn!(instance = %id, target = %self.target, ejected_for = ?d, "outlier ejected");
        }
        ejected
    }

    pub fn snapshot(&self, recent: usize) -> BalancerSnapshot {
        let now = path::now();
        let loads = self.loads.lock().unwrap_or_else(|e| e.into_inner());
        let mut views: Vec<LoadView> = loads
            .iter()
            .map(|(id, l)| LoadView {
                id: id.clone(),
                in_flight: l.in_flight(),
                ewma_ms: l.ewma_ns_at(now) / 1e6,
                requests: l.requests.load(Ordering::Relaxed),
                failures: l.failures.load(Ordering::Relaxed),
                consecutive_failures: l.consecutive_failures(),
                ejected_for_ms: l.ejected_until(now).map(|u| (u - now).as_millis() as u64),
            })
            .collect();
        views.sort_by(|a, b| a.id.cmp(&b.id));
        let counts = loads
            .iter()
            .map(|(id, l)| (id.clone(), l.picks.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect();
        drop(loads);
        BalancerSnapshot {
            target: self.target.clone(),
            strategy: self.strategy(),
            counts,
            loads: views,
            recent: self
                .log
                .recent(recent)
                .iter()
                .map(|e| e.record(&self.target))
                .collect(),
        }
    }
}

/// One balancer per target service, created on first use with the configured strategy.
pub struct Balancers {
    map: RwLock<BTreeMap<String, Arc<ServiceBalancer>>>,
    strategies: RwLock<BTreeMap<String, Strategy>>,
    outlier: RwLock<OutlierSettings>,
}

impl Balancers {
    pub fn new(strategies: BTreeMap<String, Strategy>, outlier: OutlierSettings) -> Self {
        Balancers {
            map: RwLock::new(BTreeMap::new()),
            strategies: RwLock::new(strategies),
            outlier: RwLock::new(outlier),
        }
    }

    pub fn get(&self, target: &str) -> Arc<ServiceBalancer> {
        if let Some(b) = self
            .map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(target)
        {
            return b.clone();
        }
        let strategy = self
            .strategies
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(target)
            .copied()
            .unwrap_or_default();
        let outlier = self
            .outlier
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let seed = super::consistent_hash::hash(target.as_bytes());
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(target.to_string())
            .or_insert_with(|| Arc::new(ServiceBalancer::new(target, strategy, outlier, seed)))
            .clone()
    }

    /// New outlier settings for every balancer, present and future.
    pub fn set_outlier(&self, o: OutlierSettings) {
        for b in self.all() {
            b.set_outlier(o.clone());
        }
        *self.outlier.write().unwrap_or_else(|e| e.into_inner()) = o;
    }

    pub fn set_strategy(&self, target: &str, s: Strategy) {
        self.strategies
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(target.to_string(), s);
        self.get(target).set_strategy(s);
    }

    pub fn all(&self) -> Vec<Arc<ServiceBalancer>> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::members::tests::view as inst;
    use super::super::record::RECORDED_CANDIDATES;
    use super::*;
    use crate::registry::Health;
    use proptest::prelude::{ProptestConfig, any, prop_assert_eq, proptest};

    fn caller() -> Name {
        Name::of("gateway")
    }

    /// One pick by the gateway, first attempt, no key: the chosen id.
    fn pick(b: &ServiceBalancer, m: &Arc<Members>) -> String {
        pick_for(b, m, &[], None)
    }

    fn pick_for(
        b: &ServiceBalancer,
        m: &Arc<Members>,
        exclude: &[Arc<str>],
        key: Option<&str>,
    ) -> String {
        let c = caller();
        let p = b
            .pick(
                m,
                PickFor {
                    caller: c,
                    key,
                    exclude,
                    trace_id: None,
                    attempt: 1,
                },
            )
            .unwrap();
        p.member().id.to_string()
    }

    #[test]
    fn only_passing_instances_are_picked_and_every_pick_is_recorded() {
        let b = ServiceBalancer::new("svc", Strategy::RoundRobin, OutlierSettings::default(), 1);
        let m = b.members_of(&[
            inst("a", Health::Passing),
            inst("b", Health::Critical),
            inst("c", Health::Passing),
        ]);
        let c = caller();
        let chosen: Vec<String> = (0..4)
            .map(|_| {
                let at = PickFor {
                    caller: c,
                    key: None,
                    exclude: &[],
                    trace_id: Some(TraceId(0x71)),
                    attempt: 1,
                };
                b.pick(&m, at).unwrap().member().id.to_string()
            })
            .collect();
        assert_eq!(chosen, ["a", "c", "a", "c"]);
        let snap = b.snapshot(10);
        assert_eq!(snap.counts.get("a"), Some(&2));
        assert_eq!(snap.counts.get("b"), None);
        let last = snap.recent.last().unwrap();
        assert_eq!(
            (last.caller.as_str(), last.trace_id.as_deref()),
            ("gateway", Some("00000000000000000000000000000071"))
        );
        let b_view = last.candidates.iter().find(|c| c.id == "b").unwrap();
        assert!(!b_view.eligible && b_view.health == Health::Critical);
        assert!(last.reason.contains("turn"));
    }

    #[test]
    fn a_large_service_records_a_bounded_candidate_set_with_the_chosen_one() {
        let b = ServiceBalancer::new("svc", Strategy::RoundRobin, OutlierSettings::default(), 1);
        let insts: Vec<InstanceView> = (0..100)
            .map(|i| inst(&format!("i{i:03}"), Health::Passing))
            .collect();
        let m = b.members_of(&insts);
        for _ in 0..60 {
            pick(&b, &m);
        }
        let last = b.snapshot(1).recent.pop().unwrap();
        assert_eq!(last.chosen, "i059");
        assert_eq!(last.candidates_total, 100);
        assert_eq!(last.candidates.len(), RECORDED_CANDIDATES);
        assert!(last.candidates.iter().any(|c| c.id == "i059"));
        assert!(
            last.candidates.windows(2).all(|w| w[0].id < w[1].id),
            "kept in order"
        );
    }

    #[test]
    fn retries_avoid_instances_already_tried() {
        let b = ServiceBalancer::new("svc", Strategy::RoundRobin, OutlierSettings::default(), 1);
        let m = b.members_of(&[inst("a", Health::Passing), inst("b", Health::Passing)]);
        let a: Arc<str> = Arc::from("a");
        for _ in 0..5 {
            assert_eq!(pick_for(&b, &m, std::slice::from_ref(&a), None), "b");
        }
        // Nowhere new to go: back to a tried one rather than failing.
        let both = [a, Arc::from("b")];
        assert!(["a", "b"].contains(&pick_for(&b, &m, &both, None).as_str()));
        let none = b.members_of(&[inst("x", Health::Critical)]);
        let c = caller();
        let err = b
            .pick(
                &none,
                PickFor {
                    caller: c,
                    key: None,
                    exclude: &[],
                    trace_id: None,
                    attempt: 1,
                },
            )
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "no passing instance of svc (1 registered, 0 passing)"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_ejected_instance_is_skipped_until_its_time_is_up() {
        let outlier = OutlierSettings {
            consecutive_failures: 2,
            base_ejection_ms: 1000,
            max_ejection_ms: 1000,
            max_ejected_percent: 50,
        };
        let b = ServiceBalancer::new("svc", Strategy::RoundRobin, outlier, 1);
        let m = b.members_of(&[inst("a", Health::Passing), inst("b", Health::Passing)]);
        let la = b.load("a");
        assert_eq!(b.report("a", &la, Duration::from_millis(1), true), None);
        assert_eq!(
            b.report("a", &la, Duration::from_millis(1), true),
            Some(Duration::from_secs(1))
        );
        assert!((0..4).all(|_| pick(&b, &m) == "b"));
        assert_eq!(b.snapshot(1).loads[0].ejected_for_ms, Some(1000));
        let last = b.snapshot(1).recent.pop().unwrap();
        let a_view = &last.candidates[0];
        assert!(a_view.ejected && !a_view.eligible, "{a_view:?}");
        // The 50 % cap: b cannot be ejected while a is.
        let lb = b.load("b");
        b.report("b", &lb, Duration::from_millis(1), true);
        assert_eq!(b.report("b", &lb, Duration::from_millis(1), true), None);
        tokio::time::advance(Duration::from_millis(1001)).await;
        let ids: Vec<String> = (0..2).map(|_| pick(&b, &m)).collect();
        assert!(
            ids.contains(&"a".to_string()),
            "a is back after its ejection: {ids:?}"
        );
    }

    /// P2C stops picking an instance that turned slow; once it is left alone long enough its
    /// cost decays below the others' and it is tried again (a cleared latency fault must not
    /// keep it out for good).
    #[tokio::test(start_paused = true)]
    async fn p2c_tries_a_once_slow_instance_again_after_a_while() {
        let b = ServiceBalancer::new("svc", Strategy::P2c, OutlierSettings::default(), 7);
        let m = b.members_of(&[inst("a", Health::Passing), inst("b", Health::Passing)]);
        let (la, lb) = (b.load("a"), b.load("b"));
        b.report("a", &la, Duration::from_millis(200), false);
        b.report("b", &lb, Duration::from_micros(300), false);
        assert!((0..20).all(|_| pick(&b, &m) == "b"), "the slow one loses");
        // b keeps answering fast; nobody sends to a.
        // 200 ms decays below b's 0.3 ms in 10 s × ln(667) ≈ 65 s.
        for _ in 0..90 {
            tokio::time::advance(Duration::from_secs(1)).await;
            b.report("b", &lb, Duration::from_micros(300), false);
        }
        assert_eq!(
            pick(&b, &m),
            "a",
            "90 s later the idle instance is worth another try"
        );
    }

    #[test]
    fn switching_strategy_takes_effect_on_the_next_pick() {
        let b = ServiceBalancer::new("svc", Strategy::RoundRobin, OutlierSettings::default(), 1);
        b.set_strategy(Strategy::LeastRequest);
        assert_eq!(b.strategy(), Strategy::LeastRequest);
        let m = b.members_of(&[inst("a", Health::Passing), inst("b", Health::Passing)]);
        let la = b.load("a");
        let _busy = la.start();
        assert_eq!(pick(&b, &m), "b");
        assert_eq!(b.snapshot(1).recent[0].strategy, Strategy::LeastRequest);
    }

    #[tokio::test]
    async fn the_set_is_rebuilt_only_when_the_registry_changes() {
        let registry = Registry::new();
        let b = ServiceBalancer::new("svc", Strategy::RoundRobin, OutlierSettings::default(), 1);
        let reg = |id: &str| crate::registry::Registration {
            id: id.into(),
            name: "svc".into(),
            address: "127.0.0.1".into(),
            port: 1,
            ..Default::default()
        };
        registry.register(reg("a")).unwrap();
        let first = b.members(&registry);
        assert!(
            Arc::ptr_eq(&first, &b.members(&registry)),
            "nothing changed: the same set"
        );
        registry.register(reg("b")).unwrap();
        let second = b.members(&registry);
        assert_eq!(second.len(), 2);
        assert!(
            Arc::ptr_eq(&first[0].load, &second[0].load),
            "loads carry over"
        );
    }

    fn strategy() -> impl proptest::strategy::Strategy<Value = Strategy> + Clone {
        proptest::sample::select(Strategy::ALL.to_vec())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// The route inspector's promise: for every strategy, whatever happened before, a peek
        /// names exactly the instance the next real pick chooses, and peeking changes nothing
        /// (the picks after it are those that would have been made without it).
        #[test]
        fn a_peek_predicts_the_next_pick_and_changes_nothing(
            s in strategy(),
            n in 1usize..8,
            critical in proptest::collection::vec(any::<bool>(), 8),
            weights in proptest::collection::vec(0u32..5, 8),
            busy in proptest::collection::vec(0u32..3, 8),
            before in 0usize..20,
            key in proptest::option::of("[a-z]{1,6}"),
            seed in any::<u64>(),
        ) {
            let views: Vec<InstanceView> = (0..n).map(|i| {
                let mut v = inst(&format!("i{i}"), if critical[i] && i > 0 { Health::Critical } else { Health::Passing });
                v.weight = weights[i];
                v
            }).collect();
            let twin = |seed| {
                let b = ServiceBalancer::new("svc", s, OutlierSettings::default(), seed);
                let m = b.members_of(&views);
                (b, m)
            };
            let (real, m) = twin(seed);
            let (control, mc) = twin(seed);
            // The loads' in-flight counts matter to least_request and p2c: hold some.
            let held: Vec<_> = (0..n).flat_map(|i| (0..busy[i]).map(move |_| i)).collect();
            let _g1: Vec<_> = held.iter().map(|&i| m[i].load.start()).collect();
            let _g2: Vec<_> = held.iter().map(|&i| mc[i].load.start()).collect();
            for _ in 0..before {
                pick_for(&real, &m, &[], key.as_deref());
                pick_for(&control, &mc, &[], key.as_deref());
            }
            let c = caller();
            let at = PickFor { caller: c, key: key.as_deref(), exclude: &[], trace_id: None, attempt: 1 };
            let predicted = real.peek(&m, at).unwrap().member().id.to_string();
            prop_assert_eq!(&real.peek(&m, at).unwrap().member().id.to_string(), &predicted);
            prop_assert_eq!(real.snapshot(1000).recent.len(), before, "a peek records nothing");
            for step in 0..5 {
                let got = pick_for(&real, &m, &[], key.as_deref());
                if step == 0 {
                    prop_assert_eq!(&got, &predicted);
                }
                prop_assert_eq!(got, pick_for(&control, &mc, &[], key.as_deref()), "step {}", step);
            }
        }
    }
}
