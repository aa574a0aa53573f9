//! The registry shared through a real etcd (`etcd-client`): this process's instances are put
//! under `lgo/registry/<id>` on a lease it keeps alive, and every other process's are read by
//! prefix and followed with a watch ([`super::shared`] turns one into the other).
//!
//! When etcd goes away the mirror keeps what it last read (callers go on calling those
//! instances) and tries again with backoff; back, it takes a new lease, puts every own instance
//! again and reads the others afresh, so no registration is lost. A process that dies without
//! deregistering stops keeping its lease alive: etcd deletes its keys after the lease's TTL
//! and every other process drops them.

use super::shared::{MirrorState, Outgoing};
use super::store::Registry;
use etcd_client::{Client, ConnectOptions, EventType, GetOptions, PutOptions, WatchOptions};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

/// Where instances live in etcd.
pub const PREFIX: &str = "lgo/registry/";

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
    /// etcd cannot be reached; what was read last is kept.
    Down {
        error: String,
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
    /// Starts mirroring `registry` through etcd as `owner` (a name unique to this process).
    pub fn start(registry: Registry, owner: impl Into<String>, options: EtcdOptions) -> Self {
        let owner = owner.into();
        let link = Arc::new(Mutex::new(Link::Connecting));
        let lease = Arc::new(Mutex::new(None));
        let task = tokio::spawn(supervise(
            registry,
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
    owner: String,
    options: EtcdOptions,
    link: Arc<Mutex<Link>>,
    lease: Arc<Mutex<Option<i64>>>,
) {
    let mut state = MirrorState::default();
    let mut backoff = Duration::from_millis(100);
    loop {
        match session(&registry, &owner, &options, &mut state, &lease, &link).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!("etcd {}: {e}; retrying in {backoff:?}", options.endpoint);
                set_link(
                    &link,
                    Link::Down {
                        error: e.to_string(),
                    },
                );
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
        state.republish();
    }
}

/// One connection's worth of mirroring: a lease, own instances put, the others read and
/// watched, until etcd fails.
async fn session(
    registry: &Registry,
    owner: &str,
    options: &EtcdOptions,
    state: &mut MirrorState,
    lease_slot: &Mutex<Option<i64>>,
    link: &Mutex<Link>,
) -> Result<(), etcd_client::Error> {
    let mut client = connect(&options.endpoint).await?;
    let ttl = options.lease_ttl.as_secs().max(1) as i64;
    let lease = client.lease_grant(ttl, None).await?.id();
    *lease_slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(lease);
    let (mut keeper, mut kept) = client.lease_keep_alive(lease).await?;

    // The others, as they are now; then every change after that revision.
    let listing = client
        .get(PREFIX, Some(GetOptions::new().with_prefix()))
        .await?;
    let revision = listing.header().map_or(0, |h| h.revision());
    let mut present = Vec::new();
    for kv in listing.kvs() {
        state.import(registry, owner, kv.value());
        present.push(
            String::from_utf8_lossy(&kv.key()[PREFIX.len().min(kv.key().len())..]).into_owned(),
        );
    }
    // Gone while this process was not listening.
    for id in state.imported_ids() {
        if !present.contains(&id) {
            state.forget(registry, &id);
        }
    }
    let mut watch = client
        .watch(
            PREFIX,
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(revision + 1),
            ),
        )
        .await?;

    let mut changes = registry.subscribe();
    publish(&mut client, lease, state.outgoing(registry, owner)).await?;
    set_link(link, Link::Up);
    let mut tick = tokio::time::interval((options.lease_ttl / 3).max(Duration::from_millis(200)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                publish(&mut client, lease, state.outgoing(registry, owner)).await?;
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
                    let id = String::from_utf8_lossy(&kv.key()[PREFIX.len().min(kv.key().len())..]).into_owned();
                    match event.event_type() {
                        EventType::Put => state.import(registry, owner, kv.value()),
                        EventType::Delete => state.forget(registry, &id),
                    }
                }
            }
            _ = tick.tick() => {
                keeper.keep_alive().await?;
                match kept.message().await? {
                    Some(r) if r.ttl() > 0 => {}
                    // etcd no longer knows the lease (it expired while this process was away).
                    _ => return Err(etcd_client::Error::LeaseKeepAliveError("the lease expired".into())),
                }
            }
        }
    }
}

fn set_link(slot: &Mutex<Link>, l: Link) {
    *slot.lock().unwrap_or_else(|e| e.into_inner()) = l;
}

/// Writes this process's changes: puts on its lease, deletes.
async fn publish(client: &mut Client, lease: i64, out: Outgoing) -> Result<(), etcd_client::Error> {
    for (id, value) in out.puts {
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
