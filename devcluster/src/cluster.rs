//! Starts and stops the whole dev cluster: registry (Consul API), sample service instances, admin
//! API. Hands out a [`ClusterHandle`] through which the dashboard and `ctl` watch and steer it.

use crate::config::Config;
use crate::control::{self, ControlError, Endpoint};
use crate::handle::{ClusterHandle, ClusterSnapshot, InstanceSnapshot, ProcessState};
use crate::registry::{CheckKind, CheckSpec, Registration, Registry};
use crate::server::HttpServer;
use crate::services::{order, user};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

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
}

/// How the cluster is started.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub config: Config,
    /// Take free ports instead of the configured ones (`--ports auto`).
    pub auto_ports: bool,
    pub bind: IpAddr,
}

impl ClusterOptions {
    pub fn new(config: Config) -> Self {
        ClusterOptions {
            config,
            auto_ports: false,
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    }

    pub fn auto_ports(mut self, yes: bool) -> Self {
        self.auto_ports = yes;
        self
    }
}

/// A sample service instance the cluster runs (and can kill and restart).
pub(crate) struct ManagedInstance {
    pub(crate) id: String,
    pub(crate) server: HttpServer,
    pub(crate) registration: Registration,
}

/// State shared by the cluster, its admin API and its in-process handle.
pub struct Core {
    pub(crate) registry: Registry,
    pub(crate) instances: Vec<ManagedInstance>,
    pub(crate) endpoints: Vec<Endpoint>,
    version: AtomicU64,
    snapshot_tx: watch::Sender<Arc<ClusterSnapshot>>,
}

pub struct Cluster {
    core: Arc<Core>,
    registry_server: HttpServer,
    admin_server: HttpServer,
    publisher: JoinHandle<()>,
    drain: std::time::Duration,
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
    let ip = listener
        .local_addr()
        .map(|a| a.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    HttpServer::start(name, listener, router).map_err(|source| ClusterError::Bind {
        name: name.into(),
        ip,
        port: 0,
        source,
    })
}

impl Cluster {
    /// Binds every port first (so a busy one fails before anything starts), then starts the
    /// registry, the sample instances (each registering itself with an HTTP check) and the admin API.
    pub async fn start(opts: ClusterOptions) -> Result<Cluster, ClusterError> {
        let cfg = &opts.config;
        let registry_l = bind(&opts, "registry", "registry", cfg.ports.registry).await?;
        let admin_l = bind(&opts, "admin", "admin", cfg.ports.admin).await?;
        let mut planned = Vec::new();
        for (service, key, first) in [
            (user::SERVICE, "user_service", cfg.ports.user_service),
            (order::SERVICE, "order_service", cfg.ports.order_service),
        ] {
            for n in 1..=cfg.instances(service) {
                let id = format!("{service}-{n}");
                let port = first.saturating_add(n as u16 - 1);
                planned.push((service, id.clone(), bind(&opts, &id, key, port).await?));
            }
        }

        let registry = Registry::new();
        let registry_server = started(
            "registry",
            registry_l,
            crate::registry::consul::router(registry.clone()),
        )?;

        let users = user::UserStore::seeded();
        let orders = order::OrderStore::seeded();
        let lookup = Arc::new(order::UserLookup::new(registry.clone()));
        let mut instances = Vec::new();
        for (service, id, listener) in planned {
            let router = if service == user::SERVICE {
                user::router(users.clone(), &id)
            } else {
                order::router(orders.clone(), lookup.clone(), &id)
            };
            let server = started(&id, listener, router)?;
            let registration = sample_registration(cfg, service, &id, server.addr());
            registry
                .register(registration.clone())
                .map_err(|e| ClusterError::Register {
                    id: id.clone(),
                    message: e.to_string(),
                })?;
            instances.push(ManagedInstance {
                id,
                server,
                registration,
            });
        }

        let endpoints = vec![
            Endpoint::new("registry", registry_server.url()),
            Endpoint::new(
                "admin",
                format!(
                    "http://{}",
                    admin_l
                        .local_addr()
                        .map_or_else(|_| "?".into(), |a| a.to_string())
                ),
            ),
        ];
        let (snapshot_tx, _) = watch::channel(Arc::new(ClusterSnapshot::default()));
        let core = Arc::new(Core {
            registry,
            instances,
            endpoints,
            version: AtomicU64::new(0),
            snapshot_tx,
        });
        core.publish();
        let publisher = tokio::spawn(publish_loop(
            Arc::downgrade(&core),
            core.registry.subscribe(),
        ));
        let admin_server = started("admin", admin_l, control::router(core.clone()))?;
        tracing::info!(
            registry = %registry_server.url(),
            admin = %admin_server.url(),
            instances = core.instances.len(),
            "cluster started"
        );
        Ok(Cluster {
            core,
            registry_server,
            admin_server,
            publisher,
            drain: opts.config.drain(),
        })
    }

    /// `NAME URL` of every endpoint, in the order `serve` prints them.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.core.endpoints
    }

    pub fn registry(&self) -> &Registry {
        &self.core.registry
    }

    pub fn registry_url(&self) -> String {
        self.registry_server.url()
    }

    pub fn admin_url(&self) -> String {
        self.admin_server.url()
    }

    pub fn handle(&self) -> ClusterHandle {
        ClusterHandle::local(self.core.clone())
    }

    /// Graceful stop: instances deregister first (so callers stop picking them), then drain.
    pub async fn shutdown(self) {
        for inst in &self.core.instances {
            let _ = self.core.registry.deregister(&inst.id);
        }
        // Idle keep-alive connections close at once; only requests in flight take drain time.
        for inst in &self.core.instances {
            inst.server.shutdown(self.drain).await;
        }
        self.admin_server.shutdown(self.drain).await;
        self.registry_server.shutdown(self.drain).await;
        self.publisher.abort();
        tracing::info!("cluster stopped");
    }
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
        address: addr.ip().to_string(),
        port: addr.port(),
        tags: vec!["sample".into(), format!("v{}", cfg.version(service))],
        meta,
        weight_passing: 1,
        weight_warning: 1,
        checks: vec![CheckSpec {
            id: String::new(),
            name: format!("{service} HTTP /health"),
            kind: CheckKind::Http {
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
    }
}

async fn publish_loop(core: std::sync::Weak<Core>, mut changes: watch::Receiver<u64>) {
    while changes.changed().await.is_ok() {
        let Some(core) = core.upgrade() else { return };
        core.publish();
    }
}

impl Core {
    /// Rebuilds the snapshot and wakes whoever watches it.
    pub(crate) fn publish(&self) {
        let version = self.version.fetch_add(1, Ordering::Relaxed) + 1;
        let instances = self
            .registry
            .instances()
            .into_iter()
            .map(|view| {
                let process = match self.instances.iter().find(|m| m.id == view.id) {
                    Some(m) if m.server.is_running() => ProcessState::Running,
                    Some(_) => ProcessState::Killed,
                    None => ProcessState::External,
                };
                InstanceSnapshot { view, process }
            })
            .collect();
        self.snapshot_tx.send_replace(Arc::new(ClusterSnapshot {
            version,
            registry_index: self.registry.index(),
            endpoints: self.endpoints.clone(),
            instances,
        }));
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<Arc<ClusterSnapshot>> {
        self.snapshot_tx.subscribe()
    }

    fn managed(&self, id: &str) -> Result<&ManagedInstance, ControlError> {
        self.instances.iter().find(|m| m.id == id).ok_or_else(|| {
            if self.registry.instance(id).is_some() {
                ControlError::NotManaged(id.to_string())
            } else {
                ControlError::UnknownInstance(id.to_string())
            }
        })
    }

    /// Stops an instance like a crash: its port closes, it stays registered, health checks
    /// have to notice.
    pub(crate) async fn kill(&self, id: &str) -> Result<(), ControlError> {
        let inst = self.managed(id)?;
        inst.server.kill().await;
        tracing::warn!(instance = %id, "killed");
        self.publish();
        Ok(())
    }

    /// Brings a killed instance back on its port (and re-registers it if it was removed).
    pub(crate) async fn restart(&self, id: &str) -> Result<(), ControlError> {
        let inst = self.managed(id)?;
        inst.server
            .restart()
            .await
            .map_err(|e| ControlError::Restart {
                id: id.to_string(),
                addr: inst.server.addr().to_string(),
                message: e.to_string(),
            })?;
        if self.registry.instance(id).is_none() {
            let _ = self.registry.register(inst.registration.clone());
        }
        tracing::info!(instance = %id, "restarted");
        self.publish();
        Ok(())
    }
}
