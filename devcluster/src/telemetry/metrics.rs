//! Metrics: every instance (and the gateway) counts its requests, errors, in-flight and latency
//! per route, the service client counts calls per caller, target and instance, and the process
//! and host are sampled each second. Two views of the same numbers:
//! - Prometheus (OpenMetrics text, from `prometheus-client`): each instance's own `/metrics`,
//!   and the admin port's `/metrics` for the gateway, the client side and the process;
//! - rolling per-second windows (five minutes) for the dashboard's sparklines and percentiles.

use super::histogram::Histogram;
use super::names::Name;
use super::rolling::{Rolling, Series};
use super::slots::Slots;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// The content type `/metrics` answers with.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Latency buckets: 0.5 ms doubling up to about 16 s.
fn latency_histogram() -> Histogram {
    Histogram::default()
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

/// One server (an instance, or the gateway): its own registry and a rolling window per route
/// (the server's own series is their sum, made when the dashboard asks).
pub struct ServerMetrics {
    pub service: String,
    pub instance: String,
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    errors: Family<RouteLabels, Counter>,
    duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    in_flight: Gauge,
    /// Per route: the metric handles (so a request allocates no label) and its window, found
    /// without a lock.
    routes: Slots<Box<str>, Arc<RouteEntry>, 32>,
    /// The config version the last request here ran under (0: none yet).
    config_version: AtomicU64,
}

struct RouteEntry {
    name: Name,
    /// "GET /users/{id}" per method seen: the server span's operation.
    ops: Slots<http::Method, Name, 8>,
    errors: Counter,
    duration: Histogram,
    /// Requests by (method, status): a handful per route.
    requests: Slots<(http::Method, u16), Counter, 16>,
    window: Rolling,
}

impl ServerMetrics {
    pub fn new(service: &str, instance: &str) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let errors = Family::<RouteLabels, Counter>::default();
        let duration = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let in_flight = Gauge::default();
        registry.register(
            "http_server_requests",
            "Requests answered, by route, method and status",
            requests.clone(),
        );
        registry.register(
            "http_server_errors",
            "Requests answered with a 5xx status, by route",
            errors.clone(),
        );
        registry.register(
            "http_server_request_duration_seconds",
            "Time to answer, by route",
            duration.clone(),
        );
        registry.register(
            "http_server_in_flight",
            "Requests being answered now",
            in_flight.clone(),
        );
        ServerMetrics {
            service: service.into(),
            instance: instance.into(),
            registry,
            requests,
            errors,
            duration,
            in_flight,
            routes: Slots::default(),
            config_version: AtomicU64::new(0),
        }
    }

    /// A request started; the guard counts it out when dropped.
    pub fn start(&self) -> InFlight<'_> {
        self.in_flight.inc();
        InFlight(self)
    }

    /// A route's metric handles and names for `method`, looked up once per request.
    pub fn route_names(&self, route: &str, method: &http::Method) -> RouteNames {
        let method = &crate::telemetry::names::label_method(method);
        let entry = self.route(route);
        let op = entry.ops.with(
            |m| m == method,
            || (method.clone(), Name::of(&format!("{method} {route}"))),
            |n| *n,
        );
        RouteNames {
            route: entry.name,
            op,
            method: method.clone(),
            entry,
        }
    }

    /// Counts a request of the route `names` was looked up for.
    pub fn record_route(&self, names: &RouteNames, status: u16, took: Duration) {
        self.record_in(&names.entry, &names.method, status, took);
    }

    pub fn record(&self, route: &str, method: &str, status: u16, took: Duration) {
        let entry = self.route(route);
        let method = http::Method::from_bytes(method.as_bytes()).unwrap_or_default();
        self.record_in(&entry, &method, status, took);
    }

    /// Atomic adds only: the counter is found among the route's few (method, status) pairs.
    fn record_in(&self, entry: &RouteEntry, method: &http::Method, status: u16, took: Duration) {
        let method = &crate::telemetry::names::label_method(method);
        let error = status >= 500;
        entry.requests.with(
            |(m, st)| m == method && *st == status,
            || {
                let c = self
                    .requests
                    .get_or_create(&RequestLabels {
                        route: entry.name.to_string(),
                        method: method.to_string(),
                        status,
                    })
                    .clone();
                ((method.clone(), status), c)
            },
            |c| {
                c.inc();
            },
        );
        if error {
            entry.errors.inc();
        }
        entry.duration.observe(took);
        entry.window.record(took, error);
    }

    fn route(&self, route: &str) -> Arc<RouteEntry> {
        self.routes.with(
            |r| &**r == route,
            || {
                let labels = RouteLabels {
                    route: route.into(),
                };
                let entry = Arc::new(RouteEntry {
                    name: Name::of(route),
                    ops: Slots::default(),
                    errors: self.errors.get_or_create(&labels).clone(),
                    duration: self.duration.get_or_create(&labels).clone(),
                    requests: Slots::default(),
                    window: Rolling::default(),
                });
                (route.into(), entry)
            },
            Arc::clone,
        )
    }

    /// Each route's window, by route.
    fn route_windows(&self) -> Vec<(String, Arc<RouteEntry>)> {
        let mut v = Vec::new();
        self.routes.each(|k, e| v.push((k.to_string(), e.clone())));
        v
    }

    /// A request ran under config version `v`.
    pub fn ran_under(&self, v: u64) {
        self.config_version
            .store(v, std::sync::atomic::Ordering::Relaxed);
    }

    /// The OpenMetrics text of this server's registry.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

pub struct InFlight<'a>(&'a ServerMetrics);

/// A route of a server as a request records it: its metric handles and span names.
pub struct RouteNames {
    pub route: super::names::Name,
    /// "GET /users/{id}".
    pub op: super::names::Name,
    pub method: http::Method,
    entry: Arc<RouteEntry>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.dec();
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    caller: String,
    target: String,
    instance: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PathLabels {
    caller: String,
    target: String,
}

/// The process and the host, as sampled each second.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessView {
    pub cpu_percent: f64,
    pub rss_bytes: u64,
    pub host_cpu_percent: f64,
    pub host_memory_used_bytes: u64,
    pub host_memory_total_bytes: u64,
    pub load_average_1m: f64,
    pub cpus: usize,
}

/// One caller->target path of the service client: its histogram, its counters by instance and
/// outcome, and its window. A client keeps its handle and records without any lookup by name
/// and without a lock.
pub struct CallPath {
    caller: String,
    target: String,
    family: Family<CallLabels, Counter>,
    duration: Histogram,
    calls: Slots<(Box<str>, &'static str), Counter, 32>,
    window: Rolling,
}

impl CallPath {
    /// One attempt to `instance` ended as `outcome` (ok, 5xx, timeout, connect_error,
    /// upstream_error).
    pub fn record(&self, instance: &str, outcome: &'static str, took: Duration) {
        self.calls.with(
            |(i, o)| &**i == instance && *o == outcome,
            || {
                let c = self
                    .family
                    .get_or_create(&CallLabels {
                        caller: self.caller.clone(),
                        target: self.target.clone(),
                        instance: instance.into(),
                        outcome: outcome.into(),
                    })
                    .clone();
                ((instance.into(), outcome), c)
            },
            |c| {
                c.inc();
            },
        );
        self.duration.observe(took);
        self.window.record(took, outcome != "ok");
    }
}

type CallEntry = CallPath;

/// One caller's paths, by target.
type CallTargets = RwLock<HashMap<String, Arc<CallEntry>>>;

/// Everything the cluster measures: the servers, the client side, the process.
pub struct MetricsHub {
    servers: Mutex<BTreeMap<String, Arc<ServerMetrics>>>,
    /// caller -> target -> entry.
    paths: RwLock<HashMap<String, CallTargets>>,
    registry: Mutex<Registry>,
    calls: Family<CallLabels, Counter>,
    call_duration: Family<PathLabels, Histogram, fn() -> Histogram>,
    process: Mutex<ProcessView>,
    process_cpu: Gauge<f64, AtomicU64>,
    process_rss: Gauge,
    host_cpu: Gauge<f64, AtomicU64>,
    spans_stored: Gauge,
    tokio_tasks: Gauge,
}

impl Default for MetricsHub {
    fn default() -> Self {
        Self::new()
    }
}

impl MetricsHub {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let calls = Family::<CallLabels, Counter>::default();
        let call_duration =
            Family::<PathLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        let process_cpu = Gauge::<f64, AtomicU64>::default();
        let process_rss = Gauge::default();
        let host_cpu = Gauge::<f64, AtomicU64>::default();
        let spans_stored = Gauge::default();
        let tokio_tasks = Gauge::default();
        registry.register(
            "http_client_requests",
            "Calls made through the service client, by caller, target, instance and outcome",
            calls.clone(),
        );
        registry.register(
            "http_client_request_duration_seconds",
            "Time from sending a call to its answer, by caller and target",
            call_duration.clone(),
        );
        registry.register(
            "process_cpu_percent",
            "CPU used by this process, percent of one core",
            process_cpu.clone(),
        );
        registry.register(
            "process_resident_memory_bytes",
            "Resident memory of this process",
            process_rss.clone(),
        );
        registry.register(
            "host_cpu_percent",
            "CPU used on the host, percent of all cores",
            host_cpu.clone(),
        );
        registry.register(
            "trace_spans_stored",
            "Spans in the trace store",
            spans_stored.clone(),
        );
        registry.register(
            "process_tokio_tasks",
            "Tasks alive in the tokio runtime that serves this scrape (a leak shows as growth)",
            tokio_tasks.clone(),
        );
        MetricsHub {
            servers: Mutex::new(BTreeMap::new()),
            paths: RwLock::default(),
            registry: Mutex::new(registry),
            calls,
            call_duration,
            process: Mutex::new(ProcessView::default()),
            process_cpu,
            process_rss,
            host_cpu,
            spans_stored,
            tokio_tasks,
        }
    }

    /// Serves the OTLP receiver's counters on the admin port too.
    pub fn register_otlp(&self, c: &super::otlp::Counters) {
        let mut r = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        r.register(
            "otlp_received_spans",
            "Spans taken in over OTLP",
            c.spans.clone(),
        );
        r.register(
            "otlp_received_logs",
            "Log records taken in over OTLP",
            c.logs.clone(),
        );
        r.register(
            "otlp_rejected_exports",
            "OTLP exports refused as malformed",
            c.rejected.clone(),
        );
    }

    /// The metrics of one server, created on first use (a restart keeps counting).
    pub fn server(&self, service: &str, instance: &str) -> Arc<ServerMetrics> {
        let mut map = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(instance.to_string())
            .or_insert_with(|| Arc::new(ServerMetrics::new(service, instance)))
            .clone()
    }

    pub fn record_call(
        &self,
        caller: &str,
        target: &str,
        instance: &str,
        outcome: &'static str,
        took: Duration,
    ) {
        self.call_path(caller, target)
            .record(instance, outcome, took);
    }

    /// The handle of caller → target, made on first use.
    pub fn call_path(&self, caller: &str, target: &str) -> Arc<CallPath> {
        self.path(caller, target)
    }

    /// Made once per caller and target (a client keeps the handle).
    fn path(&self, caller: &str, target: &str) -> Arc<CallEntry> {
        let mut paths = self.paths.write().unwrap_or_else(|e| e.into_inner());
        let targets = paths.entry(caller.into()).or_default();
        let mut targets = targets.write().unwrap_or_else(|e| e.into_inner());
        targets
            .entry(target.into())
            .or_insert_with(|| {
                Arc::new(CallEntry {
                    caller: caller.into(),
                    target: target.into(),
                    family: self.calls.clone(),
                    calls: Slots::default(),
                    duration: self
                        .call_duration
                        .get_or_create(&PathLabels {
                            caller: caller.into(),
                            target: target.into(),
                        })
                        .clone(),
                    window: Rolling::default(),
                })
            })
            .clone()
    }

    pub fn set_process(&self, p: ProcessView) {
        self.process_cpu.set(p.cpu_percent);
        self.process_rss.set(p.rss_bytes as i64);
        self.host_cpu.set(p.host_cpu_percent);
        *self.process.lock().unwrap_or_else(|e| e.into_inner()) = p;
    }

    /// The admin port's `/metrics`: the gateway's server metrics, the client side, the process.
    pub fn encode_admin(&self) -> String {
        if let Some(t) = super::current() {
            self.spans_stored.set(t.spans.len() as i64);
        }
        // Read at scrape time, not by the 1 s sampler: a soak compares it before and after.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            self.tokio_tasks
                .set(i64::try_from(rt.metrics().num_alive_tasks()).unwrap_or(i64::MAX));
        }
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, &registry);
        if let Some(gw) = self
            .servers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(crate::gateway::GATEWAY)
        {
            let _ = prometheus_client::encoding::text::encode_registry(&mut out, &gw.registry);
        }
        let _ = prometheus_client::encoding::text::encode_eof(&mut out);
        out
    }

    /// Per server (instance, or the gateway), the config version its last request ran under.
    pub fn config_versions(&self) -> BTreeMap<String, u64> {
        self.servers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(id, s)| {
                let v = s.config_version.load(std::sync::atomic::Ordering::Relaxed);
                (id.clone(), v)
            })
            .filter(|(_, v)| *v > 0)
            .collect()
    }

    /// Per service (instances merged) and per instance, the last `seconds` of each series.
    pub fn view(&self, seconds: usize) -> MetricsView {
        let servers: Vec<Arc<ServerMetrics>> = self
            .servers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        // Each server with its routes' windows, read once.
        let per_server: Vec<_> = servers.iter().map(|s| (&**s, s.route_windows())).collect();
        let mut by_service: BTreeMap<&str, Vec<&Rolling>> = BTreeMap::new();
        let mut routes: BTreeMap<(&str, &str), Vec<&Rolling>> = BTreeMap::new();
        for (s, entries) in &per_server {
            // Listed from the start, requests or not.
            by_service.entry(&s.service).or_default();
            for (route, entry) in entries {
                by_service
                    .entry(&s.service)
                    .or_default()
                    .push(&entry.window);
                routes
                    .entry((&s.service, route))
                    .or_default()
                    .push(&entry.window);
            }
        }
        let mut calls = Vec::new();
        for (caller, targets) in self.paths.read().unwrap_or_else(|e| e.into_inner()).iter() {
            for (target, entry) in targets.read().unwrap_or_else(|e| e.into_inner()).iter() {
                calls.push(CallSeries {
                    caller: caller.clone(),
                    target: target.clone(),
                    series: Rolling::merged(&[&entry.window], seconds),
                });
            }
        }
        calls.sort_by(|a, b| (&a.caller, &a.target).cmp(&(&b.caller, &b.target)));
        MetricsView {
            routes: routes
                .into_iter()
                .map(|((service, route), windows)| RouteSeries {
                    service: service.into(),
                    route: route.into(),
                    series: Rolling::merged(&windows, seconds),
                })
                .collect(),
            calls,
            services: by_service
                .into_iter()
                .map(|(name, windows)| (name.to_string(), Rolling::merged(&windows, seconds)))
                .collect(),
            instances: per_server
                .iter()
                .map(|(s, entries)| {
                    let windows: Vec<&Rolling> = entries.iter().map(|(_, e)| &e.window).collect();
                    (s.instance.clone(), Rolling::merged(&windows, seconds))
                })
                .collect(),
            process: self
                .process
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}

/// What the Metrics tab draws: per-second series per service and per instance, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsView {
    pub services: BTreeMap<String, Series>,
    pub instances: BTreeMap<String, Series>,
    /// Per service and route (instances merged), by service then route.
    #[serde(default)]
    pub routes: Vec<RouteSeries>,
    /// The client side: per caller and target, by caller then target.
    #[serde(default)]
    pub calls: Vec<CallSeries>,
    pub process: ProcessView,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteSeries {
    pub service: String,
    pub route: String,
    pub series: Series,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallSeries {
    pub caller: String,
    pub target: String,
    pub series: Series,
}

/// Samples the process and the host every second into `hub` until `hub` is dropped.
pub async fn sample_process(hub: std::sync::Weak<MetricsHub>) {
    use sysinfo::{MemoryRefreshKind, Pid, ProcessRefreshKind, ProcessesToUpdate, System};
    let Ok(mut sys) = System::new() else {
        tracing::warn!("sysinfo is not supported here: no process or host figures");
        return;
    };
    let pid = Pid::from_u32(std::process::id());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let Some(hub) = hub.upgrade() else {
            return;
        };
        sys.refresh_cpu_usage();
        sys.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        sys.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[pid]),
            true,
            ProcessRefreshKind::nothing().with_cpu().with_memory(),
        );
        let (cpu, rss) = sys
            .process(pid)
            .map_or((0.0, 0), |p| (f64::from(p.cpu_usage()), p.memory()));
        hub.set_process(ProcessView {
            cpu_percent: cpu,
            rss_bytes: rss,
            host_cpu_percent: f64::from(sys.global_cpu_usage()),
            host_memory_used_bytes: sys.used_memory(),
            host_memory_total_bytes: sys.total_memory(),
            load_average_1m: System::load_average().map_or(0.0, |l| l.one),
            cpus: sys.cpus().len(),
        });
    }
}
