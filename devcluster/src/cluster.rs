//! Starts and stops the whole dev cluster: registry (Consul API), sample service instances,
//! gateway, traffic generator, admin API. Hands out a [`ClusterHandle`] through which the
//! dashboard and `ctl` watch and steer it.

mod commands;
mod hot_apply;

pub use commands::RouteExplain;

use crate::balance::service::{BalancerSnapshot, Balancers, LoadView};
use crate::breaker::Breakers;
use crate::client::{ClientSettings, ServiceClient};
use crate::config::Config;
use crate::config::center::{ConfigCenter, ConfigView};
use crate::config::kv::KvStore;
use crate::config::layers::Layer;
use crate::control::{self, ControlError, Endpoint};
use crate::gateway::{Gateway, routes::RouteTable};
use crate::handle::{ClusterHandle, ClusterSnapshot, InstanceSnapshot, ProcessState, Slices};
use crate::registry::etcd::Link;
use crate::registry::{CheckKind, CheckSpec, Registration, Registry, Store};
use crate::server::HttpServer;
use crate::services::faults::Faults;
use crate::services::traffic::{self, Traffic};
use crate::services::{order, user, user_grpc};
use crate::telemetry::metrics::MetricsHub;
use crate::telemetry::otlp::Receiver;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How often the snapshot is rebuilt even without registry changes (loads, picks, breakers).
const PUBLISH_EVERY: Duration = Duration::from_millis(500);
/// Picks per balancer carried in each snapshot.
const SNAPSHOT_PICKS: usize = 50;
/// Seconds of metric series in each snapshot (the sparklines' width).
const SNAPSHOT_SECONDS: usize = 120;
/// Config changes a snapshot carries (the Config tab's history).
const SNAPSHOT_CHANGES: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "port {port} ({name}) is already in use on {ip}: free it, change [ports] {key} in a --config file, \
         or pass --ports auto to use free ports"
    )]
    PortInUse {
        name: String,
        key: String,
        ip: IpAddr,
        port: u16,
    },
    #[error("cannot listen on {ip}:{port} ({name}): {source}")]
    Bind {
        name: String,
        ip: IpAddr,
        port: u16,
        source: std::io::Error,
    },
    #[error("cannot register {id}: {message}")]
    Register { id: String, message: String },
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
}

/// How the cluster is started.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub config: Config,
    /// The layers `config` came from (for each key's origin); empty: `config` is one layer.
    pub layers: Vec<Layer>,
    /// The user's file among those layers: edits are written back to it, hand edits reloaded.
    pub config_file: Option<std::path::PathBuf>,
    /// Take free ports instead of the configured ones (`--ports auto`).
    pub auto_ports: bool,
    /// Start the traffic generator (`--no-traffic` turns it off; `ctl traffic RPS` resumes).
    pub traffic: bool,
    pub bind: IpAddr,
    /// Where the registry lives (`--registry`).
    pub store: Store,
    /// Required of the admin API and of registry and KV writes (`LGO_ADMIN_TOKEN`).
    pub admin_token: Option<control::auth::Token>,
}

impl ClusterOptions {
    pub fn new(config: Config) -> Self {
        ClusterOptions {
            config,
            layers: Vec::new(),
            config_file: None,
            auto_ports: false,
            traffic: true,
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            store: Store::Embedded,
            admin_token: None,
        }
    }

    /// Listens on `addr` instead of 127.0.0.1 (`--bind`).
    pub fn bind(mut self, addr: IpAddr) -> Self {
        self.bind = addr;
        self
    }

    pub fn admin_token(mut self, token: Option<control::auth::Token>) -> Self {
        self.admin_token = token;
        self
    }

    pub fn store(mut self, store: Store) -> Self {
        self.store = store;
        self
    }

    pub fn layers(mut self, layers: Vec<Layer>) -> Self {
        self.layers = layers;
        self
    }

    pub fn config_file(mut self, path: Option<std::path::PathBuf>) -> Self {
        self.config_file = path;
        self
    }

    pub fn auto_ports(mut self, yes: bool) -> Self {
        self.auto_ports = yes;
        self
    }

    pub fn traffic(mut self, yes: bool) -> Self {
        self.traffic = yes;
        self
    }
}

/// What the snapshot adds to an instance lgo-dash runs.
#[derive(Debug, Clone, PartialEq)]
struct ManagedState {
    running: bool,
    fault: Option<crate::services::faults::FaultView>,
    restart_in_ms: Option<u64>,
}

/// The instances slice as last built, and what it was built from.
struct InstancesCache {
    store_away: bool,
    views: u64,
    loads: Vec<LoadView>,
    managed: Vec<ManagedState>,
    built: Arc<[InstanceSnapshot]>,
}

/// A sample service instance the cluster runs (and can kill and restart).
pub(crate) struct ManagedInstance {
    pub(crate) id: String,
    pub(crate) server: HttpServer,
    pub(crate) registration: Registration,
    /// user-service's gRPC side: the same process on a second port, registered on its own as
    /// `<id>-grpc`; it dies and comes back with the instance.
    pub(crate) grpc: Option<(HttpServer, Registration)>,
}

impl ManagedInstance {
    pub(crate) fn servers(&self) -> impl Iterator<Item = &HttpServer> {
        std::iter::once(&self.server).chain(self.grpc.as_ref().map(|(s, _)| s))
    }

    pub(crate) fn registrations(&self) -> impl Iterator<Item = &Registration> {
        std::iter::once(&self.registration).chain(self.grpc.as_ref().map(|(_, r)| r))
    }

    /// Whether `id` names this instance or its gRPC side.
    pub(crate) fn answers_to(&self, id: &str) -> bool {
        self.registrations().any(|r| r.id == id)
    }
}

/// State shared by the cluster, its admin API and its in-process handle.
pub struct Core {
    pub(crate) registry: Registry,
    /// The config center's KV store (Consul's KV API on the registry port).
    pub(crate) kv: KvStore,
    pub(crate) config: Arc<ConfigCenter>,
    pub(crate) instances: Vec<ManagedInstance>,
    pub(crate) endpoints: Vec<Endpoint>,
    pub(crate) balancers: Arc<Balancers>,
    pub(crate) breakers: Arc<Breakers>,
    pub(crate) gateway: Arc<Gateway>,
    pub(crate) faults: Arc<Faults>,
    pub(crate) traffic: Arc<Traffic>,
    pub(crate) metrics: Arc<MetricsHub>,
    /// This cluster's spans and logs.
    pub(crate) telemetry: Arc<crate::telemetry::Telemetry>,
    /// Instances killed for a while: when they come back by themselves.
    pub(crate) restarts: Mutex<HashMap<String, (tokio::time::Instant, JoinHandle<()>)>>,
    /// The one signal every background task stops on.
    pub(crate) stop: CancellationToken,
    /// The registry shared through etcd (`--registry etcd://`): its link, and its lease to
    /// revoke on a graceful stop.
    pub(crate) mirror: std::sync::Mutex<Option<crate::registry::Mirror>>,
    /// This run (its start, in ns since the epoch): snapshot versions count within it.
    epoch: u64,
    instances_cache: std::sync::Mutex<Option<InstancesCache>>,
    publishing: std::sync::Mutex<()>,
    snapshot_tx: watch::Sender<Arc<ClusterSnapshot>>,
}

pub struct Cluster {
    core: Arc<Core>,
    servers: Vec<HttpServer>,
    /// Background tasks, by name, stopped by `core.stop`.
    tasks: Vec<(&'static str, JoinHandle<()>)>,
    drain: Duration,
}

/// A background task as spawned.
type BoxedTask = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// A task that ran until the stop signal, as one that returns nothing.
fn unit(t: JoinHandle<Option<()>>) -> JoinHandle<()> {
    crate::telemetry::spawn(async move {
        let _ = t.await;
    })
}

/// How a graceful stop went: the background tasks that had to be aborted because they did not
/// stop on the signal within the drain time (none, normally).
#[derive(Debug, Default)]
pub struct ShutdownReport {
    pub aborted: Vec<&'static str>,
}

async fn bind(
    opts: &ClusterOptions,
    name: &str,
    key: &str,
    port: u16,
) -> Result<TcpListener, ClusterError> {
    let port = if opts.auto_ports { 0 } else { port };
    TcpListener::bind(SocketAddr::new(opts.bind, port))
        .await
        .map_err(|source| {
            if source.kind() == std::io::ErrorKind::AddrInUse {
                ClusterError::PortInUse {
                    name: name.into(),
                    key: key.into(),
                    ip: opts.bind,
                    port,
                }
            } else {
                ClusterError::Bind {
                    name: name.into(),
                    ip: opts.bind,
                    port,
                    source,
                }
            }
        })
}

fn started(
    name: &str,
    listener: TcpListener,
    router: axum::Router,
) -> Result<HttpServer, ClusterError> {
    started_with(
        name,
        listener,
        std::sync::Arc::new(crate::server::RouterConnections(router)),
    )
}

fn started_with(
    name: &str,
    listener: TcpListener,
    handler: Arc<dyn crate::server::Connections>,
) -> Result<HttpServer, ClusterError> {
    let ip = listener
        .local_addr()
        .map(|a| a.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    HttpServer::start_with(name, listener, handler).map_err(|source| ClusterError::Bind {
        name: name.into(),
        ip,
        port: 0,
        source,
    })
}

/// `router` behind the admin token, when there is one: every request (`all`) or writes only.
fn guarded(router: axum::Router, token: &Option<control::auth::Token>, all: bool) -> axum::Router {
    match token {
        None => router,
        Some(t) if all => router.layer(axum::middleware::from_fn_with_state(
            t.clone(),
            control::auth::require,
        )),
        Some(t) => router.layer(axum::middleware::from_fn_with_state(
            t.clone(),
            control::auth::require_for_writes,
        )),
    }
}

fn client_settings(cfg: &Config) -> ClientSettings {
    ClientSettings {
        call_timeout: cfg.call_timeout(),
        attempts: cfg.retries.attempts,
        budget_percent: cfg.retries.budget_percent,
        min_retries_per_second: cfg.retries.min_per_second,
    }
}

impl Cluster {
    /// Binds every port first (so a busy one fails before anything starts), then starts the
    /// registry, the sample instances (each registering itself with an HTTP check), the
    /// gateway, the admin API and the traffic generator.
    pub async fn start(opts: ClusterOptions) -> Result<Cluster, ClusterError> {
        // Spans reach the store through the `tracing` dispatcher; without one there are none.
        crate::telemetry::install_if_absent();
        // The cluster's own telemetry; every task started from here records into it.
        let telemetry = crate::telemetry::Telemetry::new();
        telemetry
            .clone()
            .scope(Cluster::start_in(opts, telemetry))
            .await
    }

    async fn start_in(
        opts: ClusterOptions,
        telemetry: Arc<crate::telemetry::Telemetry>,
    ) -> Result<Cluster, ClusterError> {
        let cfg = &opts.config;
        telemetry.spans.set_capacity(cfg.telemetry.max_spans);
        telemetry.logs.set_capacity(cfg.telemetry.max_logs);
        let registry_l = bind(&opts, "registry", "registry", cfg.ports.registry).await?;
        let gateway_l = bind(&opts, "gateway", "gateway", cfg.ports.gateway).await?;
        let admin_l = bind(&opts, "admin", "admin", cfg.ports.admin).await?;
        let otlp_grpc_l = bind(&opts, "otlp-grpc", "otlp_grpc", cfg.ports.otlp_grpc).await?;
        let otlp_http_l = bind(&opts, "otlp-http", "otlp_http", cfg.ports.otlp_http).await?;
        let nacos_l = bind(&opts, "nacos", "nacos", cfg.ports.nacos).await?;
        // Shared with other processes, the sample instances' ids carry this process's tag, so
        // that two developers' `user-service-1` stay two instances.
        let tag = match opts.store {
            Store::Embedded => String::new(),
            Store::Etcd { .. } | Store::Consul { .. } => {
                format!("-{:04x}", crate::telemetry::SpanId::random().0 as u16)
            }
        };
        let mut planned = Vec::new();
        for (service, key, first) in [
            (user::SERVICE, "user_service", cfg.ports.user_service),
            (order::SERVICE, "order_service", cfg.ports.order_service),
        ] {
            for n in 1..=cfg.instances(service) {
                let id = format!("{service}-{n}{tag}");
                let port = first.saturating_add(n as u16 - 1);
                let listener = bind(&opts, &id, key, port).await?;
                let grpc = if service == user::SERVICE {
                    let grpc_port = cfg.ports.user_service_grpc.saturating_add(n as u16 - 1);
                    let grpc_id = format!("{id}-grpc");
                    Some(bind(&opts, &grpc_id, "user_service_grpc", grpc_port).await?)
                } else {
                    None
                };
                planned.push((service, id, listener, grpc));
            }
        }
        let routes = RouteTable::new(&cfg.routes).map_err(|invalid| {
            ClusterError::Config(crate::config::ConfigError::Value {
                origin: "config".into(),
                invalid,
            })
        })?;

        let registry = Registry::new();
        let kv = KvStore::new();
        let registry_server = started(
            "registry",
            registry_l,
            guarded(
                crate::registry::consul::router(registry.clone(), kv.clone()),
                &opts.admin_token,
                false,
            ),
        )?;
        let balancers = Arc::new(Balancers::new(cfg.strategies(), cfg.outlier.clone()));
        let breakers = Arc::new(Breakers::new(cfg.breaker_defaults(), cfg.named_breakers()));
        let hash_keys = cfg.hash_keys();
        let metrics = Arc::new(MetricsHub::new());
        let new_client = |caller: &str| {
            Arc::new(
                ServiceClient::new(
                    caller,
                    registry.clone(),
                    balancers.clone(),
                    breakers.clone(),
                    client_settings(cfg),
                    hash_keys.clone(),
                )
                .with_metrics(metrics.clone()),
            )
        };
        // The call paths exist from the start, so their breakers and balancers show at once.
        for (caller, target) in [
            ("gateway", user::SERVICE),
            ("gateway", order::SERVICE),
            (order::SERVICE, user::SERVICE),
            (order::SERVICE, user_grpc::SERVICE),
        ] {
            breakers.get(&Breakers::name(caller, target));
            balancers.get(target);
        }

        let faults = Faults::new();
        for (id, f) in &cfg.faults {
            faults.set(id, f.clone(), None);
        }
        let users = user::UserStore::seeded();
        let orders = order::OrderStore::seeded();
        let order_client = new_client(order::SERVICE);
        let lookup = Arc::new(order::UserLookup::new(order_client.clone()));
        lookup.set_protocol(cfg.user_protocol());
        let mut instances = Vec::new();
        let grpc_routes = user_grpc::routes(users.clone()).await;
        for (service, id, listener, grpc_listener) in planned {
            let m = metrics.server(service, &id);
            let router = if service == user::SERVICE {
                user::router(users.clone(), &id, faults.clone(), m)
            } else {
                order::router(orders.clone(), lookup.clone(), &id, faults.clone(), m)
            };
            let server = started(&id, listener, router)?;
            let registration = sample_registration(cfg, service, &id, server.addr());
            registry
                .register(registration.clone())
                .map_err(|e| ClusterError::Register {
                    id: id.clone(),
                    message: e.to_string(),
                })?;
            let grpc = match grpc_listener {
                Some(l) => {
                    let grpc_id = format!("{id}-grpc");
                    let router = user_grpc::instance_router(
                        grpc_routes.clone(),
                        &id,
                        faults.clone(),
                        metrics.server(user_grpc::SERVICE, &grpc_id),
                    );
                    let server =
                        started_with(&grpc_id, l, Arc::new(user_grpc::GrpcConnections(router)))?;
                    let registration = grpc_registration(cfg, &grpc_id, server.addr());
                    registry.register(registration.clone()).map_err(|e| {
                        ClusterError::Register {
                            id: grpc_id,
                            message: e.to_string(),
                        }
                    })?;
                    Some((server, registration))
                }
                None => None,
            };
            instances.push(ManagedInstance {
                id,
                server,
                registration,
                grpc,
            });
        }

        let gateway_client = new_client("gateway");
        let gateway = Gateway::new(gateway_client.clone(), routes);
        let gateway_server = started_with(
            "gateway",
            gateway_l,
            crate::gateway::connections(
                gateway.clone(),
                metrics.server(crate::gateway::GATEWAY, crate::gateway::GATEWAY),
            ),
        )?;
        let receiver = Receiver::new(telemetry.spans.clone(), telemetry.logs.clone());
        metrics.register_otlp(&receiver.counters);
        let otlp_http_server = started(
            "otlp-http",
            otlp_http_l,
            crate::telemetry::otlp::http_router(receiver.clone()),
        )?;
        let otlp_grpc_url = format!(
            "http://{}",
            otlp_grpc_l
                .local_addr()
                .map_or_else(|_| "?".into(), |a| a.to_string())
        );
        // Every background task of the cluster stops on this one signal.
        let stop = CancellationToken::new();
        let otlp_grpc = crate::telemetry::spawn({
            let receiver = receiver.clone();
            // Served until the stop signal, then drained as tonic's server does.
            let stopped = stop.clone().cancelled_owned();
            async move {
                if let Err(e) =
                    crate::telemetry::otlp::serve_grpc(receiver, otlp_grpc_l, stopped).await
                {
                    tracing::error!("the OTLP/gRPC receiver stopped: {e}");
                }
            }
        });
        let admin_url = format!(
            "http://{}",
            admin_l
                .local_addr()
                .map_or_else(|_| "?".into(), |a| a.to_string())
        );
        let mut endpoints = vec![
            Endpoint::new("registry", registry_server.url()),
            Endpoint::new("gateway", gateway_server.url()),
            Endpoint::new("admin", admin_url),
            Endpoint::new("otlp-grpc", otlp_grpc_url),
            Endpoint::new("otlp-http", otlp_http_server.url()),
        ];
        let traffic = Traffic::new(if opts.traffic { cfg.traffic.rps } else { 0 });
        let parts = hot_apply::Parts {
            balancers: balancers.clone(),
            breakers: breakers.clone(),
            clients: vec![gateway_client, order_client],
            gateway: gateway.clone(),
            traffic: traffic.clone(),
            faults: faults.clone(),
            users: lookup.clone(),
            telemetry: telemetry.clone(),
        };
        let layers = if opts.layers.is_empty() {
            vec![cfg.as_layer("config")]
        } else {
            opts.layers.clone()
        };
        let config = ConfigCenter::new(
            layers,
            opts.config_file.clone(),
            kv.clone(),
            Box::new(move |old, new| parts.apply(old, new)),
        )
        .map_err(ClusterError::Config)?;
        // Nacos clients read and publish the live config, so its API starts with the center.
        let nacos_server = started(
            "nacos",
            nacos_l,
            guarded(
                crate::registry::nacos::router(registry.clone(), kv.clone(), config.clone()),
                &opts.admin_token,
                false,
            ),
        )?;
        endpoints.push(Endpoint::new("nacos", nacos_server.url()));
        // Started once the config center guards the KV store: a config key from etcd is
        // checked like any other edit.
        let mirror = opts
            .store
            .mirror(&registry, Some(kv.clone()), &format!("lgo-dash{tag}"));
        if mirror.is_some() {
            endpoints.push(Endpoint::new("store", opts.store.url()));
        }
        if let Err(e) = config.watch_file() {
            tracing::warn!("{e}: hand edits of it will not be applied");
        }
        let (snapshot_tx, _) = watch::channel(Arc::new(ClusterSnapshot::default()));
        let core = Arc::new(Core {
            registry,
            kv,
            config: config.clone(),
            instances,
            endpoints,
            balancers,
            breakers,
            gateway,
            faults,
            traffic: traffic.clone(),
            metrics: metrics.clone(),
            telemetry: telemetry.clone(),
            restarts: Mutex::new(HashMap::new()),
            mirror: std::sync::Mutex::new(mirror),
            stop: stop.clone(),
            epoch: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64),
            instances_cache: std::sync::Mutex::new(None),
            publishing: std::sync::Mutex::new(()),
            snapshot_tx,
        });
        core.publish();
        // KV writes from outside (the Consul KV API) reach the running cluster through this.
        let until_stop = |f| crate::telemetry::spawn(stop.clone().run_until_cancelled_owned(f));
        let config_watch = until_stop(Box::pin(core.config.clone().watch()) as BoxedTask);
        let sampler = until_stop(Box::pin(crate::telemetry::metrics::sample_process(
            Arc::downgrade(&metrics),
        )));
        let publisher = until_stop(Box::pin(publish_loop(
            Arc::downgrade(&core),
            core.registry.subscribe(),
        )));
        let generator = traffic::spawn(gateway_server.url(), traffic, stop.clone());
        let admin_server = started(
            "admin",
            admin_l,
            guarded(control::router(core.clone()), &opts.admin_token, true),
        )?;
        tracing::info!(
            registry = %registry_server.url(),
            gateway = %gateway_server.url(),
            admin = %admin_server.url(),
            sample_processes = core.instances.len(),
            "cluster started"
        );
        Ok(Cluster {
            core,
            // Stopped in this order: the gateway first (no new traffic), the registry last.
            servers: vec![
                gateway_server,
                admin_server,
                otlp_http_server,
                nacos_server,
                registry_server,
            ],
            tasks: vec![
                ("traffic generator", generator),
                ("snapshot publisher", unit(publisher)),
                ("process sampler", unit(sampler)),
                ("OTLP/gRPC receiver", otlp_grpc),
                ("config KV watch", unit(config_watch)),
            ],
            drain: opts.config.drain(),
        })
    }

    /// `NAME URL` of every endpoint, in the order `serve` prints them.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.core.endpoints
    }

    fn endpoint(&self, name: &str) -> String {
        self.core
            .endpoints
            .iter()
            .find(|e| e.name == name)
            .map(|e| e.url.clone())
            .unwrap_or_default()
    }

    pub fn registry(&self) -> &Registry {
        &self.core.registry
    }

    /// The config center: the live config, its versions and history, `set`/`undo`.
    pub fn config(&self) -> &Arc<ConfigCenter> {
        &self.core.config
    }

    /// The config center's KV store.
    pub fn kv(&self) -> &KvStore {
        &self.core.kv
    }

    pub fn registry_url(&self) -> String {
        self.endpoint("registry")
    }

    pub fn gateway_url(&self) -> String {
        self.endpoint("gateway")
    }

    pub fn admin_url(&self) -> String {
        self.endpoint("admin")
    }

    pub fn handle(&self) -> ClusterHandle {
        ClusterHandle::local(self.core.clone())
    }

    /// This cluster's spans and logs (a second cluster in the process has its own).
    pub fn telemetry(&self) -> &Arc<crate::telemetry::Telemetry> {
        &self.core.telemetry
    }

    /// The traffic generator's counters, read now (the snapshot's copy is up to a publish old).
    pub fn traffic(&self) -> crate::services::traffic::TrafficView {
        self.core.traffic.view()
    }

    /// Graceful stop: every background task stops on one signal (traffic first), instances
    /// deregister (so callers stop picking them), then every server drains.
    pub async fn shutdown(self) -> ShutdownReport {
        let mut report = ShutdownReport::default();
        self.core.stop.cancel();
        let timers: Vec<_> = self
            .core
            .restarts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, (_, t))| ("instance restart timer", t))
            .collect();
        let patience = self.drain.max(Duration::from_secs(1));
        for (name, t) in self.tasks.into_iter().chain(timers) {
            let abort = t.abort_handle();
            if tokio::time::timeout(patience, t).await.is_err() {
                tracing::warn!("{name} did not stop within {patience:?}: aborted");
                abort.abort();
                report.aborted.push(name);
            }
        }
        for reg in self.core.instances.iter().flat_map(|i| i.registrations()) {
            let _ = self.core.registry.deregister(&reg.id);
        }
        // Withdrawn from the shared store at once (its lease revoked), not after its TTL.
        let mirror = self
            .core
            .mirror
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(m) = mirror {
            m.stop().await;
        }
        // Idle keep-alive connections close at once; only requests in flight take drain time.
        self.servers[0].shutdown(self.drain).await;
        for server in self.core.instances.iter().flat_map(|i| i.servers()) {
            server.shutdown(self.drain).await;
        }
        for s in &self.servers[1..] {
            s.shutdown(self.drain).await;
        }
        tracing::info!("cluster stopped");
        report
    }
}

/// The address an instance is registered under. Listening on every interface (`--bind
/// 0.0.0.0`), `0.0.0.0` would send other machines (and shared-registry peers) to themselves:
/// the address this host reaches others from is registered instead (loopback when it has none).
fn advertised(ip: std::net::IpAddr) -> String {
    if !ip.is_unspecified() {
        return ip.to_string();
    }
    // Connecting a UDP socket sends nothing: it only picks the outgoing interface.
    std::net::UdpSocket::bind(("0.0.0.0", 0))
        .and_then(|s| {
            s.connect(("192.0.2.1", 9))?;
            s.local_addr()
        })
        .map(|a| a.ip())
        .ok()
        .filter(|ip| !ip.is_unspecified())
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
        .to_string()
}

fn sample_registration(cfg: &Config, service: &str, id: &str, addr: SocketAddr) -> Registration {
    let meta: BTreeMap<String, String> = [
        ("version", cfg.version(service)),
        ("weight", "1".to_string()),
        ("protocol", "http".to_string()),
        ("health_path", "/health".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    Registration {
        id: id.to_string(),
        name: service.to_string(),
        address: advertised(addr.ip()),
        port: addr.port(),
        tags: vec!["sample".into(), format!("v{}", cfg.version(service))],
        meta,
        weight_passing: 1,
        weight_warning: 1,
        enable_tag_override: false,
        checks: vec![CheckSpec {
            id: String::new(),
            name: format!("{service} HTTP /health"),
            kind: CheckKind::Http {
                body: String::new(),
                url: format!("http://{addr}/health"),
                method: "GET".into(),
                interval: cfg.check_interval(),
                timeout: cfg.check_timeout(),
                headers: Vec::new(),
            },
            initial: None,
            notes: String::new(),
            deregister_critical_after: None,
        }],
        via: String::new(),
    }
}

/// user-service's gRPC side as registered: `protocol=grpc` in its meta, checked by the
/// standard gRPC health service for the proto's service.
fn grpc_registration(cfg: &Config, id: &str, addr: SocketAddr) -> Registration {
    let version = cfg.version(user::SERVICE);
    let meta: BTreeMap<String, String> = [
        ("version", version.clone()),
        ("weight", "1".to_string()),
        ("protocol", "grpc".to_string()),
        ("grpc_service", user_grpc::PROTO_SERVICE.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    Registration {
        id: id.to_string(),
        name: user_grpc::SERVICE.to_string(),
        address: advertised(addr.ip()),
        port: addr.port(),
        tags: vec!["sample".into(), "grpc".into(), format!("v{version}")],
        meta,
        weight_passing: 1,
        weight_warning: 1,
        enable_tag_override: false,
        checks: vec![CheckSpec {
            id: String::new(),
            name: format!("{} gRPC health", user_grpc::SERVICE),
            kind: CheckKind::Grpc {
                addr: addr.to_string(),
                service: user_grpc::PROTO_SERVICE.to_string(),
                interval: cfg.check_interval(),
                timeout: cfg.check_timeout(),
            },
            initial: None,
            notes: String::new(),
            deregister_critical_after: None,
        }],
        via: String::new(),
    }
}

/// Rebuilds the snapshot on every registry change, and on a slow tick for what changes without
/// one (loads, picks, breaker windows, countdowns).
async fn publish_loop(core: std::sync::Weak<Core>, mut changes: watch::Receiver<u64>) {
    let mut tick = tokio::time::interval(PUBLISH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            _ = tick.tick() => {}
        }
        let Some(core) = core.upgrade() else { return };
        core.publish();
    }
}

impl Core {
    /// Rebuilds the snapshot and wakes whoever watches it.
    /// Nothing is published when nothing changed: a quiet cluster wakes no dashboard.
    /// One publisher at a time: a snapshot built before a command's change must not be
    /// published after the one that shows it (the picture would step back).
    pub(crate) fn publish(&self) {
        let _one = self.publishing.lock().unwrap_or_else(|e| e.into_inner());
        let balancers: Vec<_> = self
            .balancers
            .all()
            .iter()
            .map(|b| b.snapshot(SNAPSHOT_PICKS))
            .collect();
        // The shared store, when it cannot be reached: said on its endpoint, and the instances
        // read from it are marked stale.
        let store_problem = match self
            .mirror
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(crate::registry::Mirror::link)
        {
            Some(Link::Down {
                error,
                since_unix_ms,
            }) => {
                let now_ms = crate::telemetry::clock::unix_ns() / 1_000_000;
                let secs = now_ms.saturating_sub(since_unix_ms) / 1000;
                Some(format!(
                    "unreachable for {secs}s ({error}): the instances last read from it are kept"
                ))
            }
            _ => None,
        };
        let instances = self.instances_slice(&balancers, store_problem.is_some());
        let mut endpoints = self.endpoints.clone();
        if let Some(e) = endpoints.iter_mut().find(|e| e.name == "store") {
            e.problem = store_problem;
        }
        let next = ClusterSnapshot {
            version: 0,
            epoch: self.epoch,
            slices: Slices::default(),
            registry_index: self.registry.index(),
            endpoints,
            instances,
            balancers,
            breakers: self.breakers.snapshots(),
            traffic: self.traffic.view(),
            metrics: self.metrics.view(SNAPSHOT_SECONDS),
            config: ConfigView {
                running: self.metrics.config_versions(),
                ..self.config.view(SNAPSHOT_CHANGES)
            },
        };
        // Compared and stamped under the channel's lock: two publishers cannot interleave.
        self.snapshot_tx
            .send_if_modified(|cur| match cur.followed_by(next) {
                Some(s) => {
                    *cur = Arc::new(s);
                    true
                }
                None => false,
            });
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<Arc<ClusterSnapshot>> {
        self.snapshot_tx.subscribe()
    }

    /// The instances as the snapshot shows them: the registry's views with their process
    /// state, fault, restart countdown and balancer load. Rebuilt only when one of those
    /// changed: a thousand idle external instances cost a comparison, not a copy.
    fn instances_slice(
        &self,
        balancers: &[BalancerSnapshot],
        store_away: bool,
    ) -> Arc<[InstanceSnapshot]> {
        let views = self.registry.views_version();
        // Each instance's load as its balancer measured it, by id (the first balancer's).
        let mut loads: Vec<LoadView> = balancers
            .iter()
            .flat_map(|b| b.loads.iter().cloned())
            .collect();
        loads.sort_by(|a, b| a.id.cmp(&b.id));
        loads.dedup_by(|a, b| a.id == b.id);
        let now = tokio::time::Instant::now();
        let restarts = self.restarts.lock().unwrap_or_else(|e| e.into_inner());
        // What lgo-dash adds to its own instances (external ones have none of it).
        let managed: Vec<ManagedState> = self
            .instances
            .iter()
            .map(|m| ManagedState {
                running: m.servers().all(HttpServer::is_running),
                fault: self.faults.view(&m.id),
                restart_in_ms: restarts
                    .get(&m.id)
                    .map(|(at, _)| at.saturating_duration_since(now).as_millis() as u64),
            })
            .collect();
        drop(restarts);
        let mut cache = self
            .instances_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cache.as_ref()
            && c.store_away == store_away
            && c.views == views
            && c.loads == loads
            && c.managed == managed
        {
            return c.built.clone();
        }
        let built: Arc<[InstanceSnapshot]> = self
            .registry
            .instances()
            .into_iter()
            .map(|view| {
                let own = self.instances.iter().position(|m| m.answers_to(&view.id));
                let state = own.map(|i| &managed[i]);
                InstanceSnapshot {
                    process: match state {
                        Some(m) if m.running => ProcessState::Running,
                        Some(_) => ProcessState::Killed,
                        None => ProcessState::External,
                    },
                    fault: state.and_then(|m| m.fault.clone()),
                    restart_in_ms: state.and_then(|m| m.restart_in_ms),
                    load: loads
                        .binary_search_by(|l| l.id.as_str().cmp(&view.id))
                        .ok()
                        .map(|i| loads[i].clone()),
                    stale: store_away
                        && view.meta.contains_key(crate::registry::shared::OWNER_META),
                    view,
                }
            })
            .collect();
        *cache = Some(InstancesCache {
            store_away,
            views,
            loads,
            managed,
            built: built.clone(),
        });
        built
    }

    fn managed(&self, id: &str) -> Result<&ManagedInstance, ControlError> {
        self.instances
            .iter()
            .find(|m| m.answers_to(id))
            .ok_or_else(|| {
                if self.registry.instance(id).is_some() {
                    ControlError::NotManaged(id.to_string())
                } else {
                    ControlError::UnknownInstance(id.to_string())
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::advertised;
    use std::net::{IpAddr, Ipv4Addr};

    /// Bound to every interface, an instance is registered under an address others can reach,
    /// never 0.0.0.0; bound to one address, under that one.
    #[test]
    fn instances_are_registered_under_a_reachable_address() {
        let any = advertised(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_ne!(any, "0.0.0.0");
        assert!(any.parse::<IpAddr>().is_ok(), "{any}");
        assert_eq!(advertised(IpAddr::V4(Ipv4Addr::LOCALHOST)), "127.0.0.1");
    }
}
