//! The registry's state: instances and checks behind one lock, a global change index that
//! blocking queries and watchers wait on, and the background tasks that run the checks.

use super::checks;
use super::model::{CheckKind, CheckSpec, CheckView, Health, InstanceView, Registration};
use crate::duration::format_go_duration;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How often TTL deadlines and `DeregisterCriticalServiceAfter` timers are looked at.
const REAPER_TICK: Duration = Duration::from_millis(100);
/// HTTP checks faster than this are raised to it (Consul's own floor is 1s; a dev cluster
/// wants faster feedback, but not a busy loop).
pub(crate) const MIN_CHECK_INTERVAL: Duration = Duration::from_millis(50);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegistryError {
    #[error(
        "Unknown service ID \"{0}\". Ensure that the service ID is passed, not the service name."
    )]
    UnknownService(String),
    #[error("Unknown check ID \"{0}\". Ensure that the check ID is passed, not the check name.")]
    UnknownCheck(String),
    #[error("CheckID \"{0}\" does not have associated TTL")]
    NotTtl(String),
    /// An instance another lgo-dash publishes through the shared store: it runs its checks
    /// and alone may change it.
    #[error(
        "\"{id}\" belongs to another lgo-dash sharing this registry ({owner}): change it there, or register yours under another ID"
    )]
    Owned { id: String, owner: String },
    #[error("{0}")]
    Invalid(String),
}

/// A cheap, clonable handle on the embedded registry.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    state: Mutex<State>,
    index_tx: watch::Sender<u64>,
    /// The index again, read by every call through the service client without a lock.
    index: std::sync::atomic::AtomicU64,
    /// Moves with the index and also when only a check's output changed (which Consul's index
    /// does not count): what [`Registry::instances`] returns is the same while it stands.
    views: std::sync::atomic::AtomicU64,
    pub(crate) http: reqwest::Client,
    reaper: Mutex<Option<JoinHandle<()>>>,
}

struct State {
    index: u64,
    entries: BTreeMap<String, Entry>,
    /// Per service, its instances as of an index: callers ask on every request, and views are
    /// costly to build (strings, maps, check descriptions).
    by_service: HashMap<String, (u64, Arc<[InstanceView]>)>,
    /// Nothing for the reaper to do before this (a TTL or a deregistration deadline); `None`:
    /// a deadline was set since the last look, look at the next tick. With a thousand idle TTL
    /// instances the reaper then scans them when one is due, not ten times a second.
    reap_due: Option<Instant>,
    /// Per service, the index of its last change (an instance or a check of it): what a
    /// blocking query on that service waits for, so one flapping service does not wake the
    /// watchers of every other (as Consul keeps an index per service).
    service_index: HashMap<String, u64>,
    /// The index of the last change to the set of services or their tags.
    catalog_index: u64,
}

struct Entry {
    reg: Registration,
    create_index: u64,
    modify_index: u64,
    checks: Vec<CheckState>,
    tasks: Vec<JoinHandle<()>>,
}

struct CheckState {
    spec: CheckSpec,
    status: Health,
    output: String,
    create_index: u64,
    modify_index: u64,
    ttl_deadline: Option<Instant>,
    critical_since: Option<Instant>,
}

impl Drop for Entry {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Ok(mut r) = self.reaper.lock()
            && let Some(t) = r.take()
        {
            t.abort();
        }
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// Creates an empty registry. Must be called inside a tokio runtime: it starts the task that
    /// expires TTL checks and reaps long-critical instances.
    pub fn new() -> Self {
        let (index_tx, _) = watch::channel(1);
        let http = reqwest::Client::builder()
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                index: 1,
                entries: BTreeMap::new(),
                by_service: HashMap::new(),
                reap_due: None,
                service_index: HashMap::new(),
                catalog_index: 1,
            }),
            index_tx,
            index: std::sync::atomic::AtomicU64::new(1),
            views: std::sync::atomic::AtomicU64::new(1),
            http,
            reaper: Mutex::new(None),
        });
        let weak = Arc::downgrade(&inner);
        let reaper = crate::telemetry::spawn(reap_loop(weak));
        if let Ok(mut r) = inner.reaper.lock() {
            *r = Some(reaper);
        }
        Registry { inner }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock_state(&self.inner)
    }

    /// The current change index (≥ 1). Every write that changes what a read returns bumps it.
    pub fn index(&self) -> u64 {
        self.inner.index.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The index of the last change to `service` (its instances or their checks); for a
    /// service never registered, the catalog's.
    pub fn service_index(&self, service: &str) -> u64 {
        let st = self.lock();
        st.service_index
            .get(service)
            .copied()
            .unwrap_or(st.catalog_index)
    }

    /// The index of the last change to the set of services (registrations, deregistrations).
    pub fn catalog_index(&self) -> u64 {
        self.lock().catalog_index
    }

    /// Waits until `index_of` (one of the indexes above, or [`Registry::index`]) passes
    /// `after` or `wait` elapses; returns it then.
    pub async fn wait_for_index(
        &self,
        index_of: impl Fn(&Registry) -> u64,
        after: u64,
        wait: Duration,
    ) -> u64 {
        let deadline = Instant::now() + wait;
        let mut rx = self.subscribe();
        loop {
            // Marked seen before the look: a change after it wakes the wait below.
            rx.borrow_and_update();
            let now = index_of(self);
            if now > after {
                return now;
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return index_of(self);
            }
        }
    }

    /// A receiver that sees the index move on every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.index_tx.subscribe()
    }

    /// Registers (or replaces, same ID) an instance and starts its checks.
    pub fn register(&self, reg: Registration) -> Result<InstanceView, RegistryError> {
        self.register_with(reg, None)
    }

    /// Registers as a Consul agent does (`PUT /v1/agent/service/register`): on a re-registration
    /// a check of the same ID keeps its status and output (a client re-registering on restart
    /// does not drop out of `?passing`), and the instance's other checks stay unless
    /// `replace_existing_checks` (Consul's `?replace-existing-checks`).
    pub fn register_as_consul(
        &self,
        reg: Registration,
        replace_existing_checks: bool,
    ) -> Result<InstanceView, RegistryError> {
        self.register_with(reg, Some(replace_existing_checks))
    }

    /// Deregisters as an API client asks it: not an instance another process owns.
    pub fn deregister_own(&self, id: &str) -> Result<(), RegistryError> {
        self.refuse_owned(id)?;
        self.deregister(id)
    }

    /// Refuses a change from an API client to an instance another lgo-dash owns (taken in from
    /// the shared store).
    pub fn refuse_owned(&self, id: &str) -> Result<(), RegistryError> {
        // Taken in from the store: its checks are its owner's (`Shared`). The owner's meta alone
        // does not say so: a Consul agent that is itself an lgo-dash holds the instances other
        // processes register through its API with that meta, and they may change them.
        let st = self.lock();
        let owner = st.entries.get(id).and_then(|e| {
            e.checks.iter().find_map(|c| match &c.spec.kind {
                CheckKind::Shared { owner, .. } => Some(owner),
                _ => None,
            })
        });
        match owner {
            Some(owner) => Err(RegistryError::Owned {
                id: id.to_string(),
                owner: owner.clone(),
            }),
            None => Ok(()),
        }
    }

    /// `keep`: `None` replaces everything; `Some(replace_existing_checks)` as
    /// [`Registry::register_as_consul`].
    fn register_with(
        &self,
        mut reg: Registration,
        keep: Option<bool>,
    ) -> Result<InstanceView, RegistryError> {
        if keep.is_some() && !reg.id.is_empty() {
            self.refuse_owned(&reg.id)?;
        }
        if reg.name.trim().is_empty() {
            return Err(RegistryError::Invalid("Missing service name".into()));
        }
        if reg.id.is_empty() {
            reg.id = reg.name.clone();
        }
        if reg.address.is_empty() {
            reg.address = "127.0.0.1".into();
        }
        let n = reg.checks.len();
        for (i, c) in reg.checks.iter_mut().enumerate() {
            if c.id.is_empty() {
                c.id = if n == 1 {
                    format!("service:{}", reg.id)
                } else {
                    format!("service:{}:{}", reg.id, i + 1)
                };
            }
            if c.name.is_empty() {
                c.name = format!("Service '{}' check", reg.name);
            }
            if let CheckKind::Http { interval, .. }
            | CheckKind::Grpc { interval, .. }
            | CheckKind::Tcp { interval, .. } = &mut c.kind
            {
                *interval = (*interval).max(MIN_CHECK_INTERVAL);
            }
        }
        let now = Instant::now();
        let mut st = self.lock();
        let index = bump(&mut st, &self.inner);
        if let Some(before) = st.entries.get(&reg.id).map(|e| e.reg.name.clone()) {
            st.service_index.insert(before, index);
        }
        st.service_index.insert(reg.name.clone(), index);
        st.catalog_index = index;
        let old = st.entries.get(&reg.id);
        let create_index = old.map(|e| e.create_index).unwrap_or(index);
        // What a Consul re-registration carries over: the state of checks of the same ID, and
        // (without replace-existing-checks) the checks it does not name.
        let mut kept: HashMap<String, (Health, String, u64, u64, Option<Instant>)> = HashMap::new();
        if let (Some(replace), Some(old)) = (keep, old) {
            for c in &old.checks {
                if !replace && !reg.checks.iter().any(|n| n.id == c.spec.id) {
                    reg.checks.push(c.spec.clone());
                }
                kept.insert(
                    c.spec.id.clone(),
                    (
                        c.status,
                        c.output.clone(),
                        c.create_index,
                        c.modify_index,
                        c.critical_since,
                    ),
                );
            }
        }
        let checks = reg
            .checks
            .iter()
            .map(|spec| {
                let ttl_deadline = match spec.kind {
                    CheckKind::Ttl { ttl } => Some(now + ttl),
                    CheckKind::Http { .. }
                    | CheckKind::Grpc { .. }
                    | CheckKind::Tcp { .. }
                    | CheckKind::Shared { .. } => None,
                };
                if let Some((status, output, created, modified, critical_since)) =
                    kept.remove(&spec.id)
                {
                    return CheckState {
                        spec: spec.clone(),
                        status,
                        output,
                        create_index: created,
                        modify_index: modified,
                        ttl_deadline,
                        critical_since,
                    };
                }
                let status = spec.initial.unwrap_or(Health::Critical);
                CheckState {
                    spec: spec.clone(),
                    status,
                    output: String::new(),
                    create_index: index,
                    modify_index: index,
                    ttl_deadline,
                    critical_since: (status == Health::Critical).then_some(now),
                }
            })
            .collect();
        let tasks = reg
            .checks
            .iter()
            .filter_map(|spec| match &spec.kind {
                CheckKind::Http { .. } => Some(crate::telemetry::spawn(checks::run_http_check(
                    Arc::downgrade(&self.inner),
                    reg.id.clone(),
                    spec.clone(),
                ))),
                CheckKind::Grpc { .. } => Some(crate::telemetry::spawn(checks::run_grpc_check(
                    Arc::downgrade(&self.inner),
                    reg.id.clone(),
                    spec.clone(),
                ))),
                CheckKind::Tcp { .. } => Some(crate::telemetry::spawn(checks::run_tcp_check(
                    Arc::downgrade(&self.inner),
                    reg.id.clone(),
                    spec.clone(),
                ))),
                CheckKind::Ttl { .. } | CheckKind::Shared { .. } => None,
            })
            .collect();
        let entry = Entry {
            reg: reg.clone(),
            create_index,
            modify_index: index,
            checks,
            tasks,
        };
        let view = entry.view();
        // Replacing drops the old entry, which aborts its check tasks.
        st.entries.insert(reg.id.clone(), entry);
        st.reap_due = None;
        Ok(view)
    }

    /// Removes an instance and its checks.
    pub fn deregister(&self, id: &str) -> Result<(), RegistryError> {
        let mut st = self.lock();
        let Some(gone) = st.entries.remove(id) else {
            return Err(RegistryError::UnknownService(id.to_string()));
        };
        let index = bump(&mut st, &self.inner);
        st.service_index.insert(gone.reg.name.clone(), index);
        st.catalog_index = index;
        Ok(())
    }

    /// Sets a TTL check's status (Consul's `check/pass|warn|fail`), resetting its TTL clock.
    pub fn update_ttl(
        &self,
        check_id: &str,
        status: Health,
        output: &str,
    ) -> Result<(), RegistryError> {
        let mut st = self.lock();
        let now = Instant::now();
        let found = st
            .entries
            .values()
            .flat_map(|e| e.checks.iter())
            .find(|c| c.spec.id == check_id)
            .map(|c| c.spec.kind.clone());
        let ttl = match found {
            None => return Err(RegistryError::UnknownCheck(check_id.to_string())),
            Some(CheckKind::Ttl { ttl }) => ttl,
            // Another process's instance: its owner passes its checks.
            Some(CheckKind::Shared { owner, .. }) => {
                let id = st
                    .entries
                    .values()
                    .find(|e| e.checks.iter().any(|c| c.spec.id == check_id))
                    .map_or_else(|| check_id.to_string(), |e| e.reg.id.clone());
                return Err(RegistryError::Owned { id, owner });
            }
            Some(_) => return Err(RegistryError::NotTtl(check_id.to_string())),
        };
        let changed = {
            let check = st
                .entries
                .values_mut()
                .flat_map(|e| e.checks.iter_mut())
                .find(|c| c.spec.id == check_id);
            match check {
                Some(c) => {
                    c.ttl_deadline = Some(now + ttl);
                    let changed = c.status != status || c.output != output;
                    c.output = output.to_string();
                    changed
                }
                None => false,
            }
        };
        // A deadline moved: the reaper looks again.
        st.reap_due = None;
        if changed {
            set_status_locked(&mut st, &self.inner, None, check_id, status, None);
            // The output alone may have changed: the views did, the index does not say so.
            touched(&self.inner);
        }
        Ok(())
    }

    /// Sets the status of a check another process runs ([`CheckKind::Shared`]), as its owner
    /// published it.
    pub fn set_shared_check(
        &self,
        instance_id: &str,
        check_id: &str,
        status: Health,
        output: &str,
    ) -> Result<(), RegistryError> {
        {
            let st = self.lock();
            let e = st
                .entries
                .get(instance_id)
                .ok_or_else(|| RegistryError::UnknownService(instance_id.to_string()))?;
            if !e
                .checks
                .iter()
                .any(|c| c.spec.id == check_id && matches!(c.spec.kind, CheckKind::Shared { .. }))
            {
                return Err(RegistryError::UnknownCheck(check_id.to_string()));
            }
        }
        record_check(
            &self.inner,
            instance_id,
            check_id,
            status,
            output.to_string(),
        );
        Ok(())
    }

    /// Adds a check to a registered instance (Consul's `/v1/agent/check/register`); a check of
    /// the same ID is replaced, keeping its status and output.
    pub fn add_check(&self, instance_id: &str, spec: CheckSpec) -> Result<(), RegistryError> {
        let reg = {
            let st = self.lock();
            let e = st
                .entries
                .get(instance_id)
                .ok_or_else(|| RegistryError::UnknownService(instance_id.to_string()))?;
            let mut reg = e.reg.clone();
            reg.checks = e.checks.iter().map(|c| c.spec.clone()).collect();
            reg.checks.retain(|c| c.id != spec.id);
            reg.checks.push(spec);
            reg
        };
        self.register_with(reg, Some(false)).map(|_| ())
    }

    /// Removes one check (Consul's `/v1/agent/check/deregister`); the instance stays.
    pub fn remove_check(&self, check_id: &str) -> Result<(), RegistryError> {
        let reg = {
            let st = self.lock();
            let e = st
                .entries
                .values()
                .find(|e| e.checks.iter().any(|c| c.spec.id == check_id))
                .ok_or_else(|| RegistryError::UnknownCheck(check_id.to_string()))?;
            let mut reg = e.reg.clone();
            reg.checks = e
                .checks
                .iter()
                .map(|c| c.spec.clone())
                .filter(|c| c.id != check_id)
                .collect();
            reg
        };
        self.register_with(reg, Some(true)).map(|_| ())
    }

    /// Sets an instance's balancer weight (`meta.weight` and Consul's `Weights.Passing`).
    pub fn set_weight(&self, id: &str, weight: u32) -> Result<(), RegistryError> {
        self.refuse_owned(id)?;
        let mut st = self.lock();
        let Some(e) = st.entries.get_mut(id) else {
            return Err(RegistryError::UnknownService(id.to_string()));
        };
        e.reg.meta.insert("weight".into(), weight.to_string());
        e.reg.weight_passing = weight;
        let index = bump(&mut st, &self.inner);
        if let Some(e) = st.entries.get_mut(id) {
            e.modify_index = index;
            let name = e.reg.name.clone();
            st.service_index.insert(name, index);
        }
        Ok(())
    }

    /// A version of what [`Registry::instances`] returns: the same views while it stands.
    pub fn views_version(&self) -> u64 {
        self.inner.views.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Every instance, sorted by service then id.
    pub fn instances(&self) -> Vec<InstanceView> {
        let st = self.lock();
        let mut v: Vec<_> = st.entries.values().map(Entry::view).collect();
        v.sort_by(|a, b| (&a.service, &a.id).cmp(&(&b.service, &b.id)));
        v
    }

    /// The instances of one service, all or passing only.
    pub fn service(&self, name: &str, passing_only: bool) -> Vec<InstanceView> {
        // Filter before building views: every call through the client asks for this.
        let st = self.lock();
        let mut v: Vec<InstanceView> = st
            .entries
            .values()
            .filter(|e| e.reg.name == name && (!passing_only || e.health() == Health::Passing))
            .map(Entry::view)
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// All instances of a service, shared: built once per registry change, so the call path
    /// does not rebuild views on every request.
    pub fn service_shared(&self, name: &str) -> Arc<[InstanceView]> {
        let mut st = self.lock();
        let index = st.index;
        if let Some((at, v)) = st.by_service.get(name)
            && *at == index
        {
            return v.clone();
        }
        let mut v: Vec<InstanceView> = st
            .entries
            .values()
            .filter(|e| e.reg.name == name)
            .map(Entry::view)
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        let v: Arc<[InstanceView]> = v.into();
        // Bounded by the number of services ever asked for; stale ones are replaced on use.
        st.by_service.insert(name.to_string(), (index, v.clone()));
        v
    }

    /// The passing instances of a service: what callers may send traffic to.
    pub fn discover(&self, name: &str) -> Vec<InstanceView> {
        self.service(name, true)
    }

    pub fn instance(&self, id: &str) -> Option<InstanceView> {
        self.lock().entries.get(id).map(Entry::view)
    }

    /// Service name → the union of its instances' tags (Consul's `/v1/catalog/services`).
    pub fn services(&self) -> BTreeMap<String, Vec<String>> {
        let st = self.lock();
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for e in st.entries.values() {
            out.entry(e.reg.name.clone())
                .or_default()
                .extend(e.reg.tags.iter().cloned());
        }
        out.into_iter()
            .map(|(k, v)| (k, v.into_iter().collect()))
            .collect()
    }
}

fn lock_state(inner: &Inner) -> MutexGuard<'_, State> {
    // A panic while holding the lock cannot leave the maps half-written in a way that matters
    // more than stopping the whole registry would, so keep serving.
    inner.state.lock().unwrap_or_else(|e| e.into_inner())
}

fn bump(st: &mut State, inner: &Inner) -> u64 {
    st.index += 1;
    touched(inner);
    inner
        .index
        .store(st.index, std::sync::atomic::Ordering::Release);
    inner.index_tx.send_replace(st.index);
    st.index
}

/// A view changed (a check's output, or anything the index counts).
fn touched(inner: &Inner) {
    inner
        .views
        .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
}

/// Records a check result (from an HTTP check task). Returns false when the instance is gone,
/// so the task stops.
pub(crate) fn record_check(
    inner: &Inner,
    instance_id: &str,
    check_id: &str,
    status: Health,
    output: String,
) -> bool {
    let mut st = lock_state(inner);
    if !st.entries.contains_key(instance_id) {
        return false;
    }
    set_status_locked(
        &mut st,
        inner,
        Some(instance_id),
        check_id,
        status,
        Some(output),
    );
    true
}

fn set_status_locked(
    st: &mut State,
    inner: &Inner,
    instance_id: Option<&str>,
    check_id: &str,
    status: Health,
    output: Option<String>,
) {
    let now = Instant::now();
    let next_index = st.index + 1;
    let mut changed = false;
    let mut output_changed = false;
    let mut services: Vec<String> = Vec::new();
    for (id, e) in st.entries.iter_mut() {
        if instance_id.is_some_and(|want| want != id) {
            continue;
        }
        let before = e.health();
        for c in e.checks.iter_mut().filter(|c| c.spec.id == check_id) {
            if let Some(out) = output.as_ref().filter(|o| **o != c.output) {
                c.output.clone_from(out);
                output_changed = true;
            }
            if c.status != status {
                c.status = status;
                c.modify_index = next_index;
                c.critical_since = (status == Health::Critical).then_some(now);
                changed = true;
                st.reap_due = None;
                services.push(e.reg.name.clone());
            }
        }
        if changed && e.health() != before {
            e.modify_index = next_index;
            // The instance's health timeline (the dashboard's instance detail reads it back).
            let output = e
                .checks
                .iter()
                .find(|c| c.spec.id == check_id)
                .map_or("", |c| c.output.as_str());
            let to = e.health();
            if to == Health::Passing {
                tracing::info!(instance = %id, check = %check_id, %output, "passing: back in rotation (was {before})");
            } else {
                tracing::warn!(instance = %id, check = %check_id, %output, "{to}: out of rotation (was {before})");
            }
        }
    }
    if changed {
        let index = bump(st, inner);
        for name in services {
            st.service_index.insert(name, index);
        }
    } else if output_changed {
        touched(inner);
    }
}

async fn reap_loop(inner: Weak<Inner>) {
    let mut tick = tokio::time::interval(REAPER_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        reap_once(&inner);
    }
}

/// Expires TTL checks whose deadline passed and removes instances critical for longer than
/// their `DeregisterCriticalServiceAfter`.
fn reap_once(inner: &Inner) {
    let now = Instant::now();
    let mut st = lock_state(inner);
    if st.reap_due.is_some_and(|due| now < due) {
        return;
    }
    let expired: Vec<(String, String)> = st
        .entries
        .iter()
        .flat_map(|(id, e)| {
            e.checks
                .iter()
                .filter(|c| {
                    c.status != Health::Critical && c.ttl_deadline.is_some_and(|d| d <= now)
                })
                .map(move |c| (id.clone(), c.spec.id.clone()))
        })
        .collect();
    for (id, check) in expired {
        set_status_locked(
            &mut st,
            inner,
            Some(&id),
            &check,
            Health::Critical,
            Some("TTL expired".into()),
        );
    }
    let doomed: Vec<String> = st
        .entries
        .iter()
        .filter(|(_, e)| {
            e.checks.iter().any(
                |c| match (c.spec.deregister_critical_after, c.critical_since) {
                    (Some(after), Some(since)) => {
                        c.status == Health::Critical && now.duration_since(since) >= after
                    }
                    _ => false,
                },
            )
        })
        .map(|(id, _)| id.clone())
        .collect();
    if !doomed.is_empty() {
        let index = bump(&mut st, inner);
        for id in &doomed {
            tracing::info!(instance = %id, "deregistered: critical for longer than DeregisterCriticalServiceAfter");
            if let Some(gone) = st.entries.remove(id) {
                st.service_index.insert(gone.reg.name.clone(), index);
            }
        }
        st.catalog_index = index;
    }
    // The next deadline; a look every second whatever (what sets a deadline also clears this).
    let next = st
        .entries
        .values()
        .flat_map(|e| e.checks.iter())
        .filter_map(
            |c| match (c.status, c.critical_since, c.spec.deregister_critical_after) {
                (Health::Critical, Some(since), Some(after)) => Some(since + after),
                (Health::Critical, _, _) => None,
                _ => c.ttl_deadline,
            },
        )
        .min();
    let now = Instant::now();
    st.reap_due = Some(next.map_or(now + REAP_AT_LEAST, |d| d.min(now + REAP_AT_LEAST)));
}

/// The reaper looks at every check at least this often, deadline or not.
const REAP_AT_LEAST: Duration = Duration::from_secs(1);

impl Entry {
    fn health(&self) -> Health {
        self.checks
            .iter()
            .map(|c| c.status)
            .max()
            .unwrap_or(Health::Passing)
    }

    fn view(&self) -> InstanceView {
        let r = &self.reg;
        let weight = r
            .meta
            .get("weight")
            .and_then(|w| w.parse().ok())
            .unwrap_or(r.weight_passing.max(1));
        InstanceView {
            id: r.id.clone(),
            service: r.name.clone(),
            version: r.meta.get("version").cloned().unwrap_or_default(),
            address: r.address.clone(),
            port: r.port,
            tags: r.tags.clone(),
            meta: r.meta.clone(),
            weight,
            weight_warning: r.weight_warning,
            enable_tag_override: r.enable_tag_override,
            protocol: r
                .meta
                .get("protocol")
                .cloned()
                .unwrap_or_else(|| "http".into()),
            health_path: r.meta.get("health_path").cloned().unwrap_or_default(),
            health: self.health(),
            checks: self.checks.iter().map(CheckState::view).collect(),
            create_index: self.create_index,
            modify_index: self.modify_index,
            via: r.via.clone(),
        }
    }
}

impl CheckState {
    /// Consul's `Definition` of the check: the fields it was registered with.
    fn definition_fields(&self) -> Vec<(String, String)> {
        let go = |d: &Duration| format_go_duration(*d);
        let mut f: Vec<(&str, String)> = match &self.spec.kind {
            CheckKind::Http {
                url,
                method,
                interval,
                timeout,
                body,
                ..
            } => vec![
                ("HTTP", url.clone()),
                ("Method", method.clone()),
                ("Body", body.clone()),
                ("Interval", go(interval)),
                ("Timeout", go(timeout)),
            ],
            CheckKind::Ttl { ttl } => vec![("TTL", go(ttl))],
            CheckKind::Tcp {
                addr,
                interval,
                timeout,
            } => vec![
                ("TCP", addr.clone()),
                ("Interval", go(interval)),
                ("Timeout", go(timeout)),
            ],
            CheckKind::Grpc {
                addr,
                service,
                interval,
                timeout,
            } => vec![
                ("GRPC", CheckKind::grpc_target(addr, service)),
                ("Interval", go(interval)),
                ("Timeout", go(timeout)),
            ],
            CheckKind::Shared { .. } => Vec::new(),
        };
        if let Some(after) = &self.spec.deregister_critical_after {
            f.push(("DeregisterCriticalServiceAfter", go(after)));
        }
        f.into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }

    fn view(&self) -> CheckView {
        let definition = match &self.spec.kind {
            CheckKind::Http {
                url,
                method,
                interval,
                ..
            } => {
                format!("{method} {url} every {}", format_go_duration(*interval))
            }
            CheckKind::Ttl { ttl } => format!("TTL {}", format_go_duration(*ttl)),
            CheckKind::Tcp { addr, interval, .. } => {
                format!("TCP {addr} every {}", format_go_duration(*interval))
            }
            CheckKind::Grpc {
                addr,
                service,
                interval,
                ..
            } => format!(
                "gRPC health {} every {}",
                CheckKind::grpc_target(addr, service),
                format_go_duration(*interval)
            ),
            CheckKind::Shared {
                owner, definition, ..
            } => format!("{definition} (run by {owner})"),
        };
        CheckView {
            id: self.spec.id.clone(),
            name: self.spec.name.clone(),
            kind: match &self.spec.kind {
                CheckKind::Shared { kind, .. } => kind.clone(),
                k => k.type_name().into(),
            },
            status: self.status,
            output: self.output.clone(),
            notes: self.spec.notes.clone(),
            definition,
            spec: self.definition_fields(),
            create_index: self.create_index,
            modify_index: self.modify_index,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{CheckKind, CheckSpec};

    fn reg(id: &str, service: &str) -> Registration {
        Registration {
            id: id.into(),
            name: service.into(),
            address: "127.0.0.1".into(),
            port: 9000,
            checks: vec![CheckSpec {
                id: format!("ttl:{id}"),
                name: "ttl".into(),
                kind: CheckKind::Ttl {
                    ttl: Duration::from_secs(60),
                },
                initial: Some(Health::Passing),
                notes: String::new(),
                deregister_critical_after: None,
            }],
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn the_shared_service_view_follows_every_change() {
        let r = Registry::new();
        r.register(reg("a", "svc")).unwrap();
        r.register(reg("x", "other")).unwrap();
        let first = r.service_shared("svc");
        assert_eq!(first.len(), 1);
        assert!(
            Arc::ptr_eq(&first, &r.service_shared("svc")),
            "no change, no rebuild"
        );

        r.register(reg("b", "svc")).unwrap();
        let ids: Vec<_> = r
            .service_shared("svc")
            .iter()
            .map(|i| i.id.clone())
            .collect();
        assert_eq!(ids, ["a", "b"]);

        r.update_ttl("ttl:a", Health::Critical, "down").unwrap();
        assert_eq!(r.service_shared("svc")[0].health, Health::Critical);

        r.set_weight("b", 7).unwrap();
        assert_eq!(r.service_shared("svc")[1].weight, 7);

        r.deregister("a").unwrap();
        assert_eq!(r.service_shared("svc").len(), 1);
        assert!(r.service_shared("nothing").is_empty());
    }
}
