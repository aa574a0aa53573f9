//! The registry shared through a real etcd (`etcd-client`): this process's instances are put
//! under `lgo/registry/<id>` on a lease it keeps alive, and every other process's are read by
//! prefix and followed with a watch ([`super::shared`] turns one into the other).
//!
//! The config center's keys are shared too: `lgo/config/<path>` in etcd is the KV key
//! `lgo/<path>` here (`etcdctl put lgo/config/traffic/rps 75` reaches every process at once,
//! checked like any config edit: a refused value leaves the config as it was). A key written
//! here (the KV API, `ctl config set` without a config file) goes out the same way. When a
//! session starts, etcd's values win; keys only this process has are written out.
//!
//! When etcd goes away the mirror keeps what it last read (callers go on calling those
//! instances) and tries again with backoff; back, it takes a new lease, puts every own instance
//! again and reads the others afresh, so no registration is lost. A process that dies without
//! deregistering stops keeping its lease alive: etcd deletes its keys after the lease's TTL
//! and every other process drops them.

use super::shared::{ConfigSync, LOCAL_CONFIG, MirrorState, Outgoing, SharedInstance};
use super::store::Registry;
use crate::config::kv::KvStore;
use etcd_client::{Client, ConnectOptions, EventType, GetOptions, PutOptions, WatchOptions};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

/// Where instances live in etcd.
pub const PREFIX: &str = "lgo/registry/";
/// Where config keys live in etcd (`lgo/config/traffic/rps` is the KV key `lgo/traffic/rps`).
pub const CONFIG_PREFIX: &str = "lgo/config/";
/// Everything the mirror reads and watches.
const ALL: &str = "lgo/";

#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// `http://host:port` of an etcd member.
    pub endpoint: String,
    /// How long etcd keeps this process's instances once it stops hearing from it.
    pub lease_ttl: Duration,
}

impl EtcdOptions {
    pub fn new(endpoint: impl Into<String>) -> Self {
        EtcdOptions {
            endpoint: endpoint.into(),
            lease_ttl: Duration::from_secs(10),
        }
    }
}

/// What the mirror reports of its link to etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    Connecting,
    /// In a session: own instances published, the others followed.
    Up,
    /// etcd cannot be reached (since, ms since the epoch); what was read last is kept.
    Down {
        error: String,
        since_unix_ms: u64,
    },
}

/// A running mirror between a [`Registry`] and etcd. Dropping it stops it without revoking
/// its lease (as a process that dies would); [`EtcdMirror::stop`] withdraws its instances.
pub struct EtcdMirror {
    task: JoinHandle<()>,
    link: Arc<Mutex<Link>>,
    lease: Arc<Mutex<Option<i64>>>,
    options: EtcdOptions,
    owner: String,
}

impl Drop for EtcdMirror {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EtcdMirror {
    /// Starts mirroring `registry` (and, given, the config center's `kv` keys) through etcd as
    /// `owner` (a name unique to this process).
    pub fn start(
        registry: Registry,
        kv: Option<KvStore>,
        owner: impl Into<String>,
        options: EtcdOptions,
    ) -> Self {
        let owner = owner.into();
        let link = Arc::new(Mutex::new(Link::Connecting));
        let lease = Arc::new(Mutex::new(None));
        let task = tokio::spawn(supervise(
            registry,
            kv,
            owner.clone(),
            options.clone(),
            link.clone(),
            lease.clone(),
        ));
        EtcdMirror {
            task,
            link,
            lease,
            options,
            owner,
        }
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub fn link(&self) -> Link {
        self.link.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stops mirroring and withdraws this process's instances (revokes its lease).
    pub async fn stop(self) {
        self.task.abort();
        let lease = *self.lease.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(id) = lease
            && let Ok(mut c) = connect(&self.options.endpoint).await
        {
            let _ = c.lease_revoke(id).await;
        }
    }
}

async fn connect(endpoint: &str) -> Result<Client, etcd_client::Error> {
    Client::connect(
        [endpoint],
        Some(
            ConnectOptions::new()
                .with_connect_timeout(Duration::from_secs(2))
                .with_timeout(Duration::from_secs(5)),
        ),
    )
    .await
}

/// Runs sessions one after the other, with backoff while etcd cannot be reached.
async fn supervise(
    registry: Registry,
    kv: Option<KvStore>,
    owner: String,
    options: EtcdOptions,
    link: Arc<Mutex<Link>>,
    lease: Arc<Mutex<Option<i64>>>,
) {
    let mut state = MirrorState::default();
    let mut config = ConfigSync::default();
    let mut backoff = Duration::from_millis(100);
    loop {
        let mut s = Session {
            registry: &registry,
            kv: kv.as_ref(),
            owner: &owner,
            options: &options,
            state: &mut state,
            config: &mut config,
        };
        match s.run(&lease, &link).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!("etcd {}: {e}; retrying in {backoff:?}", options.endpoint);
                let since_unix_ms = match &*link.lock().unwrap_or_else(|e| e.into_inner()) {
                    Link::Down { since_unix_ms, .. } => *since_unix_ms,
                    _ => crate::telemetry::clock::unix_ns() / 1_000_000,
                };
                set_link(
                    &link,
                    Link::Down {
                        error: e.to_string(),
                        since_unix_ms,
                    },
                );
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
        state.republish();
    }
}

struct Session<'a> {
    registry: &'a Registry,
    kv: Option<&'a KvStore>,
    owner: &'a str,
    options: &'a EtcdOptions,
    state: &'a mut MirrorState,
    config: &'a mut ConfigSync,
}

/// The part of `key` after `prefix`, as text.
fn rest(key: &[u8], prefix: &str) -> Option<String> {
    key.strip_prefix(prefix.as_bytes())
        .map(|r| String::from_utf8_lossy(r).into_owned())
}

impl Session<'_> {
    /// One connection's worth of mirroring: a lease, own instances put, the others read and
    /// watched, config keys both ways, until etcd fails.
    async fn run(
        &mut self,
        lease_slot: &Mutex<Option<i64>>,
        link: &Mutex<Link>,
    ) -> Result<(), etcd_client::Error> {
        let options = self.options;
        let mut client = connect(&options.endpoint).await?;
        let ttl = options.lease_ttl.as_secs().max(1) as i64;
        let lease = client.lease_grant(ttl, None).await?.id();
        *lease_slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(lease);
        let (mut keeper, mut kept) = client.lease_keep_alive(lease).await?;

        // Everything as it is now; then every change after that revision.
        let listing = client
            .get(ALL, Some(GetOptions::new().with_prefix()))
            .await?;
        let revision = listing.header().map_or(0, |h| h.revision());
        let mut present = Vec::new();
        let mut config_there = HashMap::new();
        for kv in listing.kvs() {
            if let Some(id) = rest(kv.key(), PREFIX) {
                self.state.import(self.registry, self.owner, kv.value());
                present.push(id);
            } else if let Some(path) = rest(kv.key(), CONFIG_PREFIX) {
                config_there.insert(format!("{LOCAL_CONFIG}{path}"), kv.value().to_vec());
            }
        }
        // Gone while this process was not listening.
        for id in self.state.imported_ids() {
            if !present.contains(&id) {
                self.state.forget(self.registry, &id);
            }
        }
        self.config_from_etcd(config_there);
        let mut watch = client
            .watch(
                ALL,
                Some(
                    WatchOptions::new()
                        .with_prefix()
                        .with_start_revision(revision + 1),
                ),
            )
            .await?;

        let mut changes = self.registry.subscribe();
        let mut kv_changes = self.kv.map(KvStore::subscribe);
        let out = self.state.outgoing(self.registry);
        publish(&mut client, lease, self.owner, out).await?;
        self.config_to_etcd(&mut client).await?;
        set_link(link, Link::Up);
        let mut tick =
            tokio::time::interval((options.lease_ttl / 3).max(Duration::from_millis(200)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    let out = self.state.outgoing(self.registry);
                    publish(&mut client, lease, self.owner, out).await?;
                }
                Some(changed) = async {
                    match kv_changes.as_mut() {
                        Some(rx) => Some(rx.changed().await),
                        None => std::future::pending().await,
                    }
                } => {
                    if changed.is_ok() {
                        self.config_to_etcd(&mut client).await?;
                    }
                }
                message = watch.message() => {
                    let Some(resp) = message? else {
                        return Err(etcd_client::Error::WatchError("the watch ended".into()));
                    };
                    if resp.canceled() {
                        return Err(etcd_client::Error::WatchError(format!(
                            "the watch was cancelled: {}",
                            resp.cancel_reason()
                        )));
                    }
                    for event in resp.events() {
                        let Some(kv) = event.kv() else { continue };
                        let put = event.event_type() == EventType::Put;
                        if let Some(id) = rest(kv.key(), PREFIX) {
                            if put {
                                self.state.import(self.registry, self.owner, kv.value());
                            } else {
                                self.state.forget(self.registry, &id);
                            }
                        } else if let Some(path) = rest(kv.key(), CONFIG_PREFIX) {
                            let key = format!("{LOCAL_CONFIG}{path}");
                            self.config_changed(&key, put.then(|| kv.value().to_vec()));
                        }
                    }
                }
                _ = tick.tick() => {
                    keeper.keep_alive().await?;
                    match kept.message().await? {
                        Some(r) if r.ttl() > 0 => {}
                        // etcd no longer knows the lease (it expired while this process was away).
                        _ => return Err(etcd_client::Error::LeaseKeepAliveError(
                            "the lease expired".into(),
                        )),
                    }
                }
            }
        }
    }

    /// At a session's start: etcd's config keys win; local ones it lacks go out next.
    fn config_from_etcd(&mut self, there: HashMap<String, Vec<u8>>) {
        if let Some(kv) = self.kv {
            self.config.start_from(kv, &there, "etcd");
        }
    }

    /// A config key changed in etcd (`None`: deleted).
    fn config_changed(&mut self, key: &str, value: Option<Vec<u8>>) {
        if let Some(kv) = self.kv {
            self.config.remote_changed(kv, key, value, "etcd");
        }
    }

    /// Local config keys that differ from what was agreed go out to etcd.
    async fn config_to_etcd(&mut self, client: &mut Client) -> Result<(), etcd_client::Error> {
        let Some(kv) = self.kv else { return Ok(()) };
        let (puts, deletes) = self.config.local_changes(kv);
        for (key, value) in puts {
            let path = key.trim_start_matches(LOCAL_CONFIG);
            client
                .put(format!("{CONFIG_PREFIX}{path}"), value.clone(), None)
                .await?;
            self.config.agreed(&key, Some(value));
        }
        for key in deletes {
            let path = key.trim_start_matches(LOCAL_CONFIG);
            client
                .delete(format!("{CONFIG_PREFIX}{path}"), None)
                .await?;
            self.config.agreed(&key, None);
        }
        Ok(())
    }
}

fn set_link(slot: &Mutex<Link>, l: Link) {
    *slot.lock().unwrap_or_else(|e| e.into_inner()) = l;
}

/// Writes this process's changes: puts on its lease, deletes.
async fn publish(
    client: &mut Client,
    lease: i64,
    owner: &str,
    out: Outgoing,
) -> Result<(), etcd_client::Error> {
    for view in out.puts {
        let id = view.id.clone();
        let value = serde_json::to_string(&SharedInstance {
            owner: owner.to_string(),
            instance: view,
        })
        .unwrap_or_default();
        client
            .put(
                format!("{PREFIX}{id}"),
                value,
                Some(PutOptions::new().with_lease(lease)),
            )
            .await?;
    }
    for id in out.deletes {
        client.delete(format!("{PREFIX}{id}"), None).await?;
    }
    Ok(())
}
