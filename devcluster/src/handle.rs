//! `ClusterHandle`: the one way the dashboard and `ctl` see and steer a cluster, whether it runs
//! in this process, behind an admin URL (`--attach`), or is a fixed snapshot (tests, recordings).

use crate::balance::service::{BalancerSnapshot, LoadView};
use crate::breaker::BreakerSnapshot;
use crate::cluster::Core;
use crate::cluster::RouteExplain;
use crate::config::center::{Change, ConfigView, describe};
use crate::control::{AdminClient, Command, ControlError, Endpoint};
use crate::registry::{Health, InstanceView};
use crate::services::faults::FaultView;
use crate::services::traffic::TrafficView;
use crate::telemetry::metrics::MetricsView;
use crate::telemetry::{LogFilter, LogRecord, SpanRecord, TraceFilter, TraceId, TraceSummary};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

mod slices;
pub use slices::{Slices, SnapshotDelta};

/// Whether an instance's process is up, as opposed to what its health check last saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ProcessState {
    #[default]
    Running,
    /// Stopped with `kill`: the port is closed, the registration stays.
    Killed,
    /// Registered from outside (through the Consul API); lgo-dash does not run it.
    External,
}

/// One instance: what the registry knows plus whether its process runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceSnapshot {
    #[serde(flatten)]
    pub view: InstanceView,
    pub process: ProcessState,
    /// The injected fault, with its countdown.
    #[serde(default)]
    pub fault: Option<FaultView>,
    /// When killed for a while: time until it restarts by itself.
    #[serde(default)]
    pub restart_in_ms: Option<u64>,
    /// What its balancer measured: in flight, requests, failures, ejection.
    #[serde(default)]
    pub load: Option<LoadView>,
    /// Another process's instance, as last read from the shared store, which cannot be
    /// reached now: it is still called, but may be gone.
    #[serde(default)]
    pub stale: bool,
}

impl InstanceSnapshot {
    /// What is unusual about it, with countdowns: "fault +200ms 18s", "ejected 4s",
    /// "restarts in 9s". Shared by the dashboard and `ctl instances`.
    pub fn notes(&self) -> Vec<String> {
        let secs = |ms: u64| ms.div_ceil(1000);
        let mut notes = Vec::new();
        if let Some(f) = &self.fault {
            notes.push(match f.remaining_ms {
                Some(ms) => format!("fault {} {}s", f.fault.summary(), secs(ms)),
                None => format!("fault {}", f.fault.summary()),
            });
        }
        if let Some(ms) = self.load.as_ref().and_then(|l| l.ejected_for_ms) {
            notes.push(format!("ejected {}s", secs(ms)));
        }
        if let Some(ms) = self.restart_in_ms {
            notes.push(format!("restarts in {}s", secs(ms)));
        }
        if self.stale {
            notes.push("stale: store away".into());
        }
        notes
    }
}

/// Everything the dashboard draws from, cheap to clone (it is shared behind an `Arc`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ClusterSnapshot {
    /// Bumped on every publish that changed something; `--attach` long-polls on it.
    pub version: u64,
    /// This run of the cluster (its start time): versions count from 1 in each run.
    #[serde(default)]
    pub epoch: u64,
    /// The version each slice last changed at.
    #[serde(default)]
    pub slices: Slices,
    pub registry_index: u64,
    pub endpoints: Vec<Endpoint>,
    /// Shared with the publisher's last build: an unchanged slice is not copied again.
    pub instances: Arc<[InstanceSnapshot]>,
    #[serde(default)]
    pub balancers: Vec<BalancerSnapshot>,
    #[serde(default)]
    pub breakers: Vec<BreakerSnapshot>,
    #[serde(default)]
    pub traffic: TrafficView,
    /// Per-second series per service and instance, and the process and host.
    #[serde(default)]
    pub metrics: MetricsView,
    /// The live config: keys with values and origins, version, recent changes.
    #[serde(default)]
    pub config: ConfigView,
}

/// One service and its instances, for grouped views.
pub struct ServiceGroup<'a> {
    pub name: &'a str,
    pub instances: Vec<&'a InstanceSnapshot>,
}

impl ServiceGroup<'_> {
    pub fn passing(&self) -> usize {
        self.instances
            .iter()
            .filter(|i| i.view.health == Health::Passing)
            .count()
    }
}

impl ClusterSnapshot {
    /// Instances grouped by service, services sorted by name.
    pub fn services(&self) -> Vec<ServiceGroup<'_>> {
        let mut out: Vec<ServiceGroup<'_>> = Vec::new();
        for inst in self.instances.iter() {
            match out.iter_mut().find(|g| g.name == inst.view.service) {
                Some(g) => g.instances.push(inst),
                None => out.push(ServiceGroup {
                    name: &inst.view.service,
                    instances: vec![inst],
                }),
            }
        }
        out.sort_by(|a, b| a.name.cmp(b.name));
        out
    }
}

/// Who the dashboard is in the config history.
const DASHBOARD: &str = "dashboard";

#[derive(Clone)]
pub struct ClusterHandle {
    kind: Kind,
    snapshots: watch::Receiver<Arc<ClusterSnapshot>>,
    /// How the link to an attached cluster stands; `None`: nothing to lose (in this process).
    link: Option<watch::Receiver<Link>>,
}

/// How the link to an attached cluster (`--attach`) stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Snapshots come (always so for a cluster in this process).
    Up,
    /// No answer yet: attaching.
    Connecting,
    /// The admin API does not answer: since when (the snapshot shown is from then, or empty
    /// when it never answered), why, and when it is tried next (past: being tried now).
    Lost {
        since: std::time::Instant,
        error: String,
        retry_at: std::time::Instant,
        ever_up: bool,
    },
}

#[derive(Clone)]
enum Kind {
    Local(Arc<Core>),
    Remote(AdminClient),
    /// Holds the sender so receivers stay open (`changed()` pends instead of failing).
    Fixed {
        _sender: Arc<watch::Sender<Arc<ClusterSnapshot>>>,
    },
    /// Traces read from a file (`--open`): no cluster, only its spans.
    Offline {
        _sender: Arc<watch::Sender<Arc<ClusterSnapshot>>>,
        spans: Arc<crate::telemetry::SpanStore>,
    },
}

/// How long one `--attach` long-poll may wait for a change.
const REMOTE_POLL_WAIT: Duration = Duration::from_secs(10);
/// Pause before polling again after the remote admin API failed, doubled on each failure up to
/// [`REMOTE_RETRY_MAX`]: a cluster that comes back is seen within seconds, one that stays away
/// is not hammered.
const REMOTE_RETRY: Duration = Duration::from_millis(250);
const REMOTE_RETRY_MAX: Duration = Duration::from_secs(4);

impl ClusterHandle {
    pub(crate) fn local(core: Arc<Core>) -> Self {
        ClusterHandle {
            snapshots: core.subscribe(),
            kind: Kind::Local(core),
            link: None,
        }
    }

    /// A handle on a cluster behind an admin URL. It follows changes by long-polling
    /// `/api/snapshot`; the returned handle shows an empty snapshot until the first answer.
    /// When the admin API stops answering, [`ClusterHandle::link`] says so and the last
    /// snapshot stays; polling goes on with backoff and picks up by itself when it answers
    /// again (a restarted cluster's versions start over).
    pub fn remote(client: AdminClient) -> Self {
        let (tx, rx) = watch::channel(Arc::new(ClusterSnapshot::default()));
        let (link_tx, link_rx) = watch::channel(Link::Connecting);
        let poll_client = client.clone();
        crate::telemetry::spawn(async move {
            let mut after = 0;
            let mut pause = REMOTE_RETRY;
            let mut lost_since = None;
            let mut ever_up = false;
            loop {
                if tx.is_closed() {
                    return;
                }
                let held = tx.borrow().clone();
                let epoch = held.epoch;
                let got = poll_client
                    .snapshot_since(after, epoch, REMOTE_POLL_WAIT)
                    .await
                    // Asked with nothing held (`after` 0), every slice comes and `held` is not read.
                    .and_then(|d| d.apply(&held).map_err(ControlError::Invalid));
                match got {
                    Ok(s) => {
                        after = s.version;
                        // A long poll that ended without a change: nothing to show again. A
                        // version names its content within a run.
                        if (s.epoch, s.version) != (held.epoch, held.version) {
                            tx.send_replace(Arc::new(s));
                        }
                        if lost_since.take().is_some() || !ever_up {
                            tracing::info!(url = poll_client.base(), "attach: admin API answers");
                        }
                        ever_up = true;
                        pause = REMOTE_RETRY;
                        link_tx.send_if_modified(|l| {
                            let changed = *l != Link::Up;
                            *l = Link::Up;
                            changed
                        });
                    }
                    Err(e) => {
                        let now = std::time::Instant::now();
                        let since = *lost_since.get_or_insert_with(|| {
                            tracing::warn!(error = %e, "attach: admin API unreachable");
                            now
                        });
                        // A cluster started again counts its versions from the start.
                        after = 0;
                        link_tx.send_replace(Link::Lost {
                            since,
                            error: e.to_string(),
                            retry_at: now + pause,
                            ever_up,
                        });
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(REMOTE_RETRY_MAX);
                    }
                }
            }
        });
        ClusterHandle {
            kind: Kind::Remote(client),
            snapshots: rx,
            link: Some(link_rx),
        }
    }

    /// How the link to the cluster stands: always up for one in this process.
    pub fn link(&self) -> Link {
        self.link.as_ref().map_or(Link::Up, |l| l.borrow().clone())
    }

    /// A receiver that wakes when the link changes; `None` for a cluster in this process.
    pub fn subscribe_link(&self) -> Option<watch::Receiver<Link>> {
        self.link.clone()
    }

    /// A read-only handle on a fixed snapshot (tests, offline views).
    pub fn fixed(snapshot: ClusterSnapshot) -> Self {
        let (tx, rx) = watch::channel(Arc::new(snapshot));
        ClusterHandle {
            kind: Kind::Fixed {
                _sender: Arc::new(tx),
            },
            snapshots: rx,
            link: None,
        }
    }

    /// Traces without a cluster, e.g. read from an OTLP/JSON file: the Traces tab browses them,
    /// everything that would steer a cluster answers read-only.
    pub fn offline(spans: Arc<crate::telemetry::SpanStore>) -> Self {
        let (tx, rx) = watch::channel(Arc::new(ClusterSnapshot::default()));
        ClusterHandle {
            kind: Kind::Offline {
                _sender: Arc::new(tx),
                spans,
            },
            snapshots: rx,
            link: None,
        }
    }

    /// The latest snapshot: a cheap `Arc` clone, never waits.
    pub fn snapshot(&self) -> Arc<ClusterSnapshot> {
        self.snapshots.borrow().clone()
    }

    /// A receiver that wakes on every new snapshot.
    pub fn subscribe(&self) -> watch::Receiver<Arc<ClusterSnapshot>> {
        self.snapshots.clone()
    }

    /// Carries out a command; the answer is a sentence to show.
    pub async fn send(&self, cmd: Command) -> Result<String, ControlError> {
        match &self.kind {
            Kind::Local(core) => core.telemetry.scope(core.execute_as(cmd, DASHBOARD)).await,
            Kind::Remote(c) => c.send_as(&cmd, DASHBOARD).await,
            Kind::Fixed { .. } | Kind::Offline { .. } => Err(ControlError::ReadOnly),
        }
    }

    pub async fn kill(&self, id: &str) -> Result<String, ControlError> {
        self.send(Command::Kill {
            id: id.into(),
            for_s: None,
        })
        .await
    }

    pub async fn restart(&self, id: &str) -> Result<String, ControlError> {
        self.send(Command::Restart { id: id.into() }).await
    }

    /// Where the gateway would send `METHOD PATH`, and why.
    pub async fn explain(&self, method: &str, path: &str) -> Result<RouteExplain, ControlError> {
        match &self.kind {
            Kind::Local(core) => Ok(core.telemetry.scope(core.explain(method, path)).await),
            Kind::Remote(c) => c.explain(method, path).await,
            Kind::Fixed { .. } | Kind::Offline { .. } => Err(ControlError::ReadOnly),
        }
    }

    /// Recent traces matching `f`, newest first. A fixed handle has none.
    pub async fn traces(&self, f: &TraceFilter) -> Result<Vec<TraceSummary>, ControlError> {
        match &self.kind {
            Kind::Local(core) => Ok(core.telemetry.spans.traces(f)),
            Kind::Remote(c) => c.traces(f).await,
            Kind::Offline { spans, .. } => Ok(spans.traces(f)),
            Kind::Fixed { .. } => Ok(Vec::new()),
        }
    }

    /// Every span of one trace, by start time.
    pub async fn trace(&self, id: TraceId) -> Result<Vec<SpanRecord>, ControlError> {
        match &self.kind {
            Kind::Local(core) => Ok(core.telemetry.spans.trace(id)),
            Kind::Remote(c) => c.trace(id).await,
            Kind::Offline { spans, .. } => Ok(spans.trace(id)),
            Kind::Fixed { .. } => Ok(Vec::new()),
        }
    }

    /// Sets a config key (`None`: unsets it) as the dashboard; the changes, described.
    pub async fn config_set(&self, key: &str, value: Option<&str>) -> Result<String, ControlError> {
        match &self.kind {
            Kind::Local(core) => {
                let (key, value) = (key.to_string(), value.map(str::to_string));
                let change = core.config.change(move |c| match &value {
                    Some(v) => c.set(&key, v, DASHBOARD),
                    None => c.unset(&key, DASHBOARD),
                });
                let done = core.telemetry.scope(change).await;
                // The dashboard sees the new value at once, not at the next publish tick.
                core.publish();
                done.map(|c| describe(&c)).map_err(ControlError::from)
            }
            Kind::Remote(c) => c
                .config_set(key, value, DASHBOARD)
                .await
                .map(|a| describe(&a.changes)),
            Kind::Fixed { .. } | Kind::Offline { .. } => Err(ControlError::ReadOnly),
        }
    }

    /// What switching to environment `name` would change.
    pub async fn env_diff(&self, name: &str) -> Result<Vec<Change>, ControlError> {
        match &self.kind {
            Kind::Local(core) => core.config.env_diff(name).map_err(ControlError::from),
            Kind::Remote(c) => c.config_env(name, false).await.map(|a| a.changes),
            Kind::Fixed { .. } | Kind::Offline { .. } => Err(ControlError::ReadOnly),
        }
    }

    pub async fn env_switch(&self, name: &str) -> Result<String, ControlError> {
        match &self.kind {
            Kind::Local(core) => {
                let env = name.to_string();
                let change = core.config.change(move |c| c.switch_env(&env, "env"));
                let done = core.telemetry.scope(change).await;
                core.publish();
                done.map(|c| format!("environment {name}: {}", describe(&c)))
                    .map_err(ControlError::from)
            }
            Kind::Remote(c) => c
                .config_env(name, true)
                .await
                .map(|a| format!("environment {name}: {}", describe(&a.changes))),
            Kind::Fixed { .. } | Kind::Offline { .. } => Err(ControlError::ReadOnly),
        }
    }

    pub async fn config_undo(&self) -> Result<String, ControlError> {
        match &self.kind {
            Kind::Local(core) => {
                let done = core
                    .telemetry
                    .scope(core.config.change(|c| c.undo("undo")))
                    .await;
                core.publish();
                done.map(|c| describe(&c)).map_err(ControlError::from)
            }
            Kind::Remote(c) => c.config_undo().await.map(|a| describe(&a.changes)),
            Kind::Fixed { .. } | Kind::Offline { .. } => Err(ControlError::ReadOnly),
        }
    }

    /// The newest log records matching `f`, oldest first.
    pub async fn logs(&self, f: &LogFilter) -> Result<Vec<LogRecord>, ControlError> {
        match &self.kind {
            Kind::Local(core) => Ok(core.telemetry.logs.query(f)),
            Kind::Remote(c) => c.logs(f).await,
            Kind::Fixed { .. } | Kind::Offline { .. } => Ok(Vec::new()),
        }
    }
}
