//! The registry shared through a real etcd (`etcd-client`): this process's instances are put
//! under `lgo/registry/<id>` on a lease it keeps alive, and every other process's are read by
//! prefix and followed with a watch ([`super::mirror`] runs the sessions).
//!
//! The config center's keys are shared too: `lgo/config/<path>` in etcd is the KV key
//! `lgo/<path>` here (`etcdctl put lgo/config/traffic/rps 75` reaches every process at once,
//! checked like any config edit: a refused value leaves the config as it was).
//!
//! A process that dies without deregistering stops keeping its lease alive: etcd deletes its
//! keys after the lease's TTL and every other process drops them. Back after an outage, a
//! session takes a new lease and puts every own instance again.

use super::mirror::{self, Event, Events, Writer};
use super::model::InstanceView;
use super::shared::{LOCAL_CONFIG, Outgoing, SharedInstance};
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, LeaseKeepAliveStream,
    LeaseKeeper, PutOptions, Txn, TxnOp, TxnOpResponse, WatchOptions, WatchStream,
};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

pub use super::mirror::Link;

/// Where instances live in etcd.
pub const PREFIX: &str = "lgo/registry/";
/// Where config keys live in etcd (`lgo/config/traffic/rps` is the KV key `lgo/traffic/rps`).
pub const CONFIG_PREFIX: &str = "lgo/config/";
/// Everything a session reads and watches.
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

/// etcd as a [`mirror::Store`].
pub struct EtcdStore {
    options: EtcdOptions,
    /// The current session's lease, revoked on a graceful stop.
    lease: Mutex<Option<i64>>,
}

impl From<EtcdOptions> for EtcdStore {
    fn from(options: EtcdOptions) -> Self {
        EtcdStore {
            options,
            lease: Mutex::new(None),
        }
    }
}

/// A registry mirrored through etcd.
pub type EtcdMirror = mirror::Mirror<EtcdStore>;

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

fn text(e: etcd_client::Error) -> String {
    e.to_string()
}

/// The part of `key` after `prefix`, as text.
fn rest(key: &[u8], prefix: &str) -> Option<String> {
    key.strip_prefix(prefix.as_bytes())
        .map(|r| String::from_utf8_lossy(r).into_owned())
}

fn instance_of(value: &[u8]) -> Option<SharedInstance> {
    let parsed = serde_json::from_slice(value);
    if parsed.is_err() {
        tracing::warn!("etcd: an entry under {PREFIX} that is not an instance was skipped");
    }
    parsed.ok()
}

impl mirror::Store for EtcdStore {
    type Writer = EtcdWriter;
    type Events = EtcdEvents;

    fn name(&self) -> String {
        format!("etcd {}", self.options.endpoint)
    }

    fn refresh_every(&self) -> Duration {
        (self.options.lease_ttl / 3).max(Duration::from_millis(200))
    }

    async fn open(&self, _owner: &str) -> Result<(EtcdWriter, EtcdEvents), String> {
        let mut client = connect(&self.options.endpoint).await.map_err(text)?;
        let ttl = self.options.lease_ttl.as_secs().max(1) as i64;
        let lease = client.lease_grant(ttl, None).await.map_err(text)?.id();
        *self.lease.lock().unwrap_or_else(|e| e.into_inner()) = Some(lease);
        let (keeper, kept) = client.lease_keep_alive(lease).await.map_err(text)?;
        // Everything as it is now; then every change after that revision.
        let listing = client
            .get(ALL, Some(GetOptions::new().with_prefix()))
            .await
            .map_err(text)?;
        let revision = listing.header().map_or(0, |h| h.revision());
        let mut instances = Vec::new();
        let mut config = HashMap::new();
        for kv in listing.kvs() {
            if rest(kv.key(), PREFIX).is_some() {
                instances.extend(instance_of(kv.value()));
            } else if let Some(path) = rest(kv.key(), CONFIG_PREFIX) {
                config.insert(format!("{LOCAL_CONFIG}{path}"), kv.value().to_vec());
            }
        }
        let watch = client
            .watch(
                ALL,
                Some(
                    WatchOptions::new()
                        .with_prefix()
                        .with_start_revision(revision + 1),
                ),
            )
            .await
            .map_err(text)?;
        Ok((
            EtcdWriter {
                client,
                lease,
                keeper,
                kept,
            },
            EtcdEvents {
                pending: VecDeque::from([Event::All(instances), Event::Config(config)]),
                watch,
            },
        ))
    }

    async fn withdraw(&self, _own: Vec<String>) {
        // Revoking the lease deletes every key on it, at once.
        let lease = *self.lease.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(id) = lease
            && let Ok(mut c) = connect(&self.options.endpoint).await
        {
            let _ = c.lease_revoke(id).await;
        }
    }
}

pub struct EtcdWriter {
    client: Client,
    lease: i64,
    keeper: LeaseKeeper,
    kept: LeaseKeepAliveStream,
}

impl EtcdWriter {
    /// Puts an own instance: over a key on this session's lease, a missing one, or one this
    /// process published under an earlier lease; never over another process's instance of the
    /// same id (that would move it to this lease, and this process's deregistration would then
    /// delete it): that one is left alone and said.
    async fn put_own(&mut self, owner: &str, id: &str, value: String) -> Result<(), String> {
        let key = format!("{PREFIX}{id}");
        let put = TxnOp::put(
            key.clone(),
            value.clone(),
            Some(PutOptions::new().with_lease(self.lease)),
        );
        // One round trip: a new key is put; else one on this lease is put; else it is read.
        let resp = self
            .client
            .txn(
                Txn::new()
                    .when([Compare::version(key.clone(), CompareOp::Equal, 0)])
                    .and_then([put.clone()])
                    .or_else([TxnOp::txn(
                        Txn::new()
                            .when([Compare::lease(key.clone(), CompareOp::Equal, self.lease)])
                            .and_then([put])
                            .or_else([TxnOp::get(key.clone(), None)]),
                    )]),
            )
            .await
            .map_err(text)?;
        if resp.succeeded() {
            return Ok(());
        }
        let Some(TxnOpResponse::Txn(inner)) = resp.op_responses().into_iter().next() else {
            return Err("etcd answered a transaction without its inner answer".into());
        };
        if inner.succeeded() {
            return Ok(());
        }
        let holder = inner.op_responses().into_iter().find_map(|r| match r {
            TxnOpResponse::Get(g) => Some(
                g.kvs()
                    .first()
                    .and_then(|kv| serde_json::from_slice::<SharedInstance>(kv.value()).ok())
                    .map(|s| s.owner),
            ),
            _ => None,
        });
        match holder.flatten() {
            Some(other) if other != owner => {
                tracing::warn!(
                    instance = %id,
                    %other,
                    "shared registry: another lgo-dash already publishes this instance id; this one stays local (give it another id to share it)"
                );
                Ok(())
            }
            _ => self
                .client
                .put(key, value, Some(PutOptions::new().with_lease(self.lease)))
                .await
                .map(|_| ())
                .map_err(text),
        }
    }
}

impl Writer for EtcdWriter {
    async fn publish(&mut self, owner: &str, out: Outgoing) -> Result<(), String> {
        for view in out.puts {
            let id = view.id.clone();
            let value = serde_json::to_string(&SharedInstance {
                owner: owner.to_string(),
                instance: view,
            })
            .unwrap_or_default();
            self.put_own(owner, &id, value).await?;
        }
        // Only a key on this session's lease is this process's to delete: another process
        // that registered the same id keeps its own.
        for id in out.deletes {
            let key = format!("{PREFIX}{id}");
            self.client
                .txn(
                    Txn::new()
                        .when([Compare::lease(key.clone(), CompareOp::Equal, self.lease)])
                        .and_then([TxnOp::delete(key, None)]),
                )
                .await
                .map_err(text)?;
        }
        Ok(())
    }

    async fn refresh(&mut self, _own: Vec<InstanceView>) -> Result<(), String> {
        self.keeper.keep_alive().await.map_err(text)?;
        match self.kept.message().await.map_err(text)? {
            Some(r) if r.ttl() > 0 => Ok(()),
            // etcd no longer knows the lease (it expired while this process was away).
            _ => Err("the lease expired".into()),
        }
    }

    async fn put_config(&mut self, key: &str, value: Vec<u8>) -> Result<(), String> {
        let path = mirror::config_path(key);
        self.client
            .put(format!("{CONFIG_PREFIX}{path}"), value, None)
            .await
            .map_err(text)?;
        Ok(())
    }

    async fn delete_config(&mut self, key: &str) -> Result<(), String> {
        let path = mirror::config_path(key);
        self.client
            .delete(format!("{CONFIG_PREFIX}{path}"), None)
            .await
            .map_err(text)?;
        Ok(())
    }
}

pub struct EtcdEvents {
    /// What the store held when the session opened, then what one watch answer carried.
    pending: VecDeque<Event>,
    watch: WatchStream,
}

impl Events for EtcdEvents {
    async fn next(&mut self) -> Result<Event, String> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Ok(e);
            }
            let Some(resp) = self.watch.message().await.map_err(text)? else {
                return Err("the watch ended".into());
            };
            if resp.canceled() {
                return Err(format!("the watch was cancelled: {}", resp.cancel_reason()));
            }
            for event in resp.events() {
                let Some(kv) = event.kv() else { continue };
                let put = event.event_type() == EventType::Put;
                if let Some(id) = rest(kv.key(), PREFIX) {
                    if !put {
                        self.pending.push_back(Event::Gone(id));
                    } else if let Some(s) = instance_of(kv.value()) {
                        self.pending.push_back(Event::Put(Box::new(s)));
                    }
                } else if let Some(path) = rest(kv.key(), CONFIG_PREFIX) {
                    self.pending.push_back(Event::ConfigKey(
                        format!("{LOCAL_CONFIG}{path}"),
                        put.then(|| kv.value().to_vec()),
                    ));
                }
            }
        }
    }
}
