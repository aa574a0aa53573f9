//! The balancer of one target service: its current strategy (switchable while requests flow),
//! per-instance load and outlier state, and the log of its picks. One per target, shared by
//! every caller (the gateway and order-service both call user-service through the same one).

use super::load::{InstanceLoad, OutlierSettings};
use super::record::{CandidateView, PickLog, PickRecord};
use super::{Candidate, Pick, Strategy, picker};
use crate::registry::{Health, InstanceView};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// How many picks each balancer remembers.
pub const DEFAULT_PICK_LOG: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no passing instance of {target} ({registered} registered, {passing} passing)")]
pub struct NoCandidate {
    pub target: String,
    pub registered: usize,
    pub passing: usize,
}

/// The chosen instance, with its load handle (to count in-flight and report the outcome).
pub struct Picked {
    /// Position of the chosen instance in the slice given to `pick`.
    pub index: usize,
    pub load: Arc<InstanceLoad>,
    pub record: Arc<PickRecord>,
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
    outlier: RwLock<OutlierSettings>,
    log: PickLog,
}

/// The instances a pick record describes, in registry order: all of them up to
/// `RECORDED_CANDIDATES`, and always the chosen one.
fn recorded_indices(chosen: usize, n: usize) -> Vec<usize> {
    let mut v: Vec<usize> = std::iter::once(chosen)
        .chain((0..n).filter(|&i| i != chosen))
        .take(RECORDED_CANDIDATES)
        .collect();
    v.sort_unstable();
    v
}

/// How many candidates a pick record keeps (the chosen one always among them).
pub const RECORDED_CANDIDATES: usize = 32;

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
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
            outlier: RwLock::new(outlier),
            log: PickLog::new(DEFAULT_PICK_LOG),
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
            self.log.reset_counts();
        }
    }

    pub fn set_outlier(&self, o: OutlierSettings) {
        *self.outlier.write().unwrap_or_else(|e| e.into_inner()) = o;
    }

    pub fn load(&self, id: &str) -> Arc<InstanceLoad> {
        let mut loads = self.loads.lock().unwrap_or_else(|e| e.into_inner());
        loads.entry(id.to_string()).or_default().clone()
    }

    /// Chooses among `instances` (all registered instances of the target): passing, not
    /// ejected, not in `exclude` (instances a retry already tried). When ejection would leave
    /// nobody, ejected instances are used anyway (Envoy's panic threshold does the same); when a
    /// retry has nowhere new to go, it may return to an instance already tried.
    pub fn pick(
        &self,
        caller: &str,
        instances: &[InstanceView],
        key: Option<&str>,
        exclude: &[String],
        trace_id: Option<&str>,
        attempt: u32,
    ) -> Result<Picked, NoCandidate> {
        self.choose(caller, instances, key, exclude, trace_id, attempt, true)
    }

    /// What `pick` would choose now, without recording it (the route inspector). A rotating
    /// strategy still advances by one turn.
    pub fn preview(
        &self,
        instances: &[InstanceView],
        key: Option<&str>,
    ) -> Result<Picked, NoCandidate> {
        self.choose("explain", instances, key, &[], None, 1, false)
    }

    #[allow(clippy::too_many_arguments)]
    fn choose(
        &self,
        caller: &str,
        instances: &[InstanceView],
        key: Option<&str>,
        exclude: &[String],
        trace_id: Option<&str>,
        attempt: u32,
        record: bool,
    ) -> Result<Picked, NoCandidate> {
        let now = Instant::now();
        let loads: Vec<Arc<InstanceLoad>> = {
            let mut map = self.loads.lock().unwrap_or_else(|e| e.into_inner());
            instances
                .iter()
                .map(|i| match map.get(&i.id) {
                    Some(l) => l.clone(),
                    None => map.entry(i.id.clone()).or_default().clone(),
                })
                .collect()
        };
        let passing = |i: usize| instances[i].health == Health::Passing;
        let ejected: Vec<bool> = loads.iter().map(|l| l.is_ejected(now)).collect();
        let excluded = |i: usize| exclude.iter().any(|x| *x == instances[i].id);
        let all: Vec<usize> = (0..instances.len()).collect();
        let tiers: [&dyn Fn(usize) -> bool; 3] = [
            &|i| passing(i) && !ejected[i] && !excluded(i),
            &|i| passing(i) && !excluded(i),
            &|i| passing(i),
        ];
        let eligible: Vec<usize> = tiers
            .iter()
            .map(|ok| all.iter().copied().filter(|i| ok(*i)).collect::<Vec<_>>())
            .find(|v| !v.is_empty())
            .ok_or_else(|| NoCandidate {
                target: self.target.clone(),
                registered: instances.len(),
                passing: 0,
            })?;
        let cands: Vec<Candidate<'_>> = eligible
            .iter()
            .map(|&i| Candidate {
                id: &instances[i].id,
                weight: instances[i].weight,
                in_flight: loads[i].in_flight(),
                ewma_ns: loads[i].ewma_ns(),
            })
            .collect();
        let picker = self
            .picker
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let (k, reason) = picker.pick(&cands, key);
        let chosen = eligible[k];
        let names: Vec<&str> = cands.iter().map(|c| c.id).collect();
        let rec = PickRecord {
            seq: 0,
            at_unix_ms: unix_ms(),
            caller: caller.to_string(),
            target: self.target.clone(),
            strategy: picker.strategy(),
            candidates_total: instances.len(),
            // The chosen one first, then the rest up to a bound: a pick costs the same whether
            // the service has 3 instances or 1000.
            candidates: recorded_indices(chosen, instances.len())
                .into_iter()
                .map(|i| (i, &instances[i]))
                .map(|(i, inst)| CandidateView {
                    id: inst.id.clone(),
                    health: inst.health,
                    weight: inst.weight,
                    in_flight: loads[i].in_flight(),
                    ejected: ejected[i],
                    eligible: eligible.binary_search(&i).is_ok(),
                })
                .collect(),
            chosen: instances[chosen].id.clone(),
            reason: reason.describe(&names),
            trace_id: trace_id.map(str::to_string),
            attempt,
        };
        let record = if record {
            self.log.push(rec)
        } else {
            Arc::new(rec)
        };
        Ok(Picked {
            index: chosen,
            load: loads[chosen].clone(),
            record,
        })
    }

    /// Reports a finished call. Returns the ejection time when this failure ejects the instance.
    pub fn report(
        &self,
        id: &str,
        load: &InstanceLoad,
        rtt: Duration,
        failure: bool,
    ) -> Option<Duration> {
        let now = Instant::now();
        load.observe_latency(rtt, now);
        let settings = self
            .outlier
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let may_eject = {
            let loads = self.loads.lock().unwrap_or_else(|e| e.into_inner());
            let ejected = loads.values().filter(|l| l.is_ejected(now)).count();
            (ejected + 1) * 100 <= settings.max_ejected_percent as usize * loads.len().max(1)
        };
        let ejected = load.record(failure, &settings, may_eject, now);
        if let Some(d) = ejected {
            tracing::warn!(instance = %id, target = %self.target, ejected_for = ?d, "outlier ejected");
        }
        ejected
    }

    pub fn snapshot(&self, recent: usize) -> BalancerSnapshot {
        let now = Instant::now();
        let mut loads: Vec<LoadView> = self
            .loads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(id, l)| LoadView {
                id: id.clone(),
                in_flight: l.in_flight(),
                ewma_ms: l.ewma_ns() / 1e6,
                requests: l.requests.load(std::sync::atomic::Ordering::Relaxed),
                failures: l.failures.load(std::sync::atomic::Ordering::Relaxed),
                consecutive_failures: l.consecutive_failures(),
                ejected_for_ms: l.ejected_until(now).map(|u| (u - now).as_millis() as u64),
            })
            .collect();
        loads.sort_by(|a, b| a.id.cmp(&b.id));
        BalancerSnapshot {
            target: self.target.clone(),
            strategy: self.strategy(),
            counts: self.log.counts(),
            loads,
            recent: self
                .log
                .recent(recent)
                .iter()
                .map(|r| (**r).clone())
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
    use super::*;
    use std::collections::BTreeMap as Map;

    fn inst(id: &str, health: Health) -> InstanceView {
        InstanceView {
            id: id.into(),
            service: "svc".into(),
            version: String::new(),
            address: "127.0.0.1".into(),
            port: 1,
            tags: vec![],
            meta: Map::new(),
            weight: 1,
            weight_warning: 1,
            protocol: "http".into(),
            health_path: String::new(),
            health,
            checks: vec![],
            create_index: 1,
            modify_index: 1,
        }
    }

    #[test]
    fn only_passing_instances_are_picked_and_every_pick_is_recorded() {
        let b = ServiceBalancer::new("svc", Strategy::RoundRobin, OutlierSettings::default(), 1);
        let insts = [
            inst("a", Health::Passing),
            inst("b", Health::Critical),
            inst("c", Health::Passing),
        ];
        let chosen: Vec<String> = (0..4)
            .map(|_| {
                b.pick("gateway", &insts, None, &[], Some("t1"), 1)
                    .unwrap()
                    .record
                    .chosen
                    .clone()
            })
            .collect();
        assert_eq!(chosen, ["a", "c", "a", "c"]);
        let snap = b.snapshot(10);
        assert_eq!(snap.counts.get("a"), Some(&2));
        assert_eq!(snap.counts.get("b"), None);
        let last = snap.recent.last().unwrap();
        assert_eq!(
            (last.caller.as_str(), last.trace_id.as_deref()),
            ("gateway", Some("t1"))
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
        for _ in 0..60 {
            b.pick("gateway", &insts, None, &[], None, 1).unwrap();
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
        let insts = [inst("a", Health::Passing), inst("b", Health::Passing)];
        for _ in 0..5 {
            let p = b.pick("c", &insts, None, &["a".into()], None, 2).unwrap();
            assert_eq!(p.record.chosen, "b");
        }
        // Nowhere new to go: back to a tried one rather than failing.
        let p = b
            .pick("c", &insts, None, &["a".into(), "b".into()], None, 3)
            .unwrap();
        assert!(["a", "b"].contains(&p.record.chosen.as_str()));
        let none = b
            .pick("c", &[inst("x", Health::Critical)], None, &[], None, 1)
            .err()
            .unwrap();
        assert_eq!(
            none.to_string(),
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
        let insts = [inst("a", Health::Passing), inst("b", Health::Passing)];
        let la = b.load("a");
        b.load("b");
        assert_eq!(b.report("a", &la, Duration::from_millis(1), true), None);
        assert_eq!(
            b.report("a", &la, Duration::from_millis(1), true),
            Some(Duration::from_secs(1))
        );
        assert!((0..4).all(|_| {
            b.pick("c", &insts, None, &[], None, 1)
                .unwrap()
                .record
                .chosen
                == "b"
        }));
        assert_eq!(b.snapshot(1).loads[0].ejected_for_ms, Some(1000));
        // The 50 % cap: b cannot be ejected while a is.
        let lb = b.load("b");
        b.report("b", &lb, Duration::from_millis(1), true);
        assert_eq!(b.report("b", &lb, Duration::from_millis(1), true), None);
        tokio::time::advance(Duration::from_millis(1001)).await;
        let ids: Vec<String> = (0..2)
            .map(|_| {
                b.pick("c", &insts, None, &[], None, 1)
                    .unwrap()
                    .record
                    .chosen
                    .clone()
            })
            .collect();
        assert!(
            ids.contains(&"a".to_string()),
            "a is back after its ejection: {ids:?}"
        );
    }

    #[test]
    fn switching_strategy_takes_effect_on_the_next_pick() {
        let b = ServiceBalancer::new("svc", Strategy::RoundRobin, OutlierSettings::default(), 1);
        b.set_strategy(Strategy::LeastRequest);
        assert_eq!(b.strategy(), Strategy::LeastRequest);
        let insts = [inst("a", Health::Passing), inst("b", Health::Passing)];
        let la = b.load("a");
        let _busy = la.start();
        let p = b.pick("c", &insts, None, &[], None, 1).unwrap();
        assert_eq!(p.record.chosen, "b");
        assert_eq!(p.record.strategy, Strategy::LeastRequest);
    }
}
