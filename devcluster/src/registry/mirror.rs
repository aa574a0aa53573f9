//! A registry mirrored through a shared store — what every store has in common. The store
//! itself (etcd, a Consul agent) is a [`Store`]: it opens sessions, each a [`Writer`] for this
//! process's instances and config edits and a stream of [`Event`]s for the others'. The loop
//! here runs sessions one after the other with backoff, sends own instances out as they change,
//! refreshes them (a lease kept alive, TTL checks passed), takes the others' in, passes config
//! keys both ways, and says how the link stands.
//!
//! The embedded registry is the store of last resort: each process keeps its own [`Registry`]
//! (the dashboard, the balancers and the Consul API read it), and a mirror keeps it in step.

use super::model::InstanceView;
use super::shared::{ConfigSync, LOCAL_CONFIG, MirrorState, Outgoing, SharedInstance};
use super::store::Registry;
use crate::config::kv::KvStore;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

/// What a mirror reports of its link to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    Connecting,
    /// In a session: own instances published, the others followed.
    Up,
    /// The store cannot be reached (since, ms since the epoch); what was read last is kept.
    Down {
        error: String,
        since_unix_ms: u64,
    },
}

/// What a store says about the others.
#[derive(Debug)]
pub enum Event {
    /// An instance put (or changed) by some process.
    Put(Box<SharedInstance>),
    /// An instance withdrawn (or expired), by id.
    Gone(String),
    /// Every instance the store holds now.
    All(Vec<SharedInstance>),
    /// Every instance of one service the store holds now.
    Service(String, Vec<SharedInstance>),
    /// The services the store knows now: instances of any other are gone.
    Services(Vec<String>),
    /// A config key (the local KV key, `lgo/traffic/rps`) changed; `None`: deleted.
    ConfigKey(String, Option<Vec<u8>>),
    /// Every config key the store holds now.
    Config(HashMap<String, Vec<u8>>),
}

/// A shared store a registry can be mirrored through.
pub trait Store: Send + Sync + 'static {
    type Writer: Writer;
    type Events: Events;
    /// For logs: `etcd http://127.0.0.1:2379`.
    fn name(&self) -> String;
    /// How often own instances are refreshed (a lease kept alive, TTL checks passed).
    fn refresh_every(&self) -> Duration;
    /// A session as `owner`: its writer, and the others' events from now on (what the store
    /// holds now first).
    fn open(
        &self,
        owner: &str,
    ) -> impl Future<Output = Result<(Self::Writer, Self::Events), String>> + Send;
    /// After a graceful stop: this process's instances (`own`) withdrawn at once.
    fn withdraw(&self, own: Vec<String>) -> impl Future<Output = ()> + Send;
}

/// A session's way into the store.
pub trait Writer: Send {
    /// Own instances new or changed, and withdrawn.
    fn publish(
        &mut self,
        owner: &str,
        out: Outgoing,
    ) -> impl Future<Output = Result<(), String>> + Send;
    /// Keeps own instances alive, with their health as now.
    fn refresh(
        &mut self,
        own: Vec<InstanceView>,
    ) -> impl Future<Output = Result<(), String>> + Send;
    /// A config key (local KV key) written here goes out.
    fn put_config(
        &mut self,
        key: &str,
        value: Vec<u8>,
    ) -> impl Future<Output = Result<(), String>> + Send;
    fn delete_config(&mut self, key: &str) -> impl Future<Output = Result<(), String>> + Send;
}

/// A session's view of the others.
pub trait Events: Send {
    fn next(&mut self) -> impl Future<Output = Result<Event, String>> + Send;
}

/// A running mirror between a [`Registry`] (and the config center's KV store) and `S`.
/// Dropping it stops it without withdrawing anything (as a process that dies would);
/// [`Mirror::stop`] withdraws this process's instances.
pub struct Mirror<S: Store> {
    task: JoinHandle<()>,
    stop: tokio_util::sync::CancellationToken,
    link: Arc<Mutex<Link>>,
    own: Arc<Mutex<Vec<String>>>,
    store: Arc<S>,
}

impl<S: Store> Drop for Mirror<S> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<S: Store> Mirror<S> {
    /// Starts mirroring `registry` (and, given, `kv`'s config keys) through `store` as `owner`
    /// (a name unique to this process).
    pub fn start(
        registry: Registry,
        kv: Option<KvStore>,
        owner: impl Into<String>,
        store: impl Into<S>,
    ) -> Self {
        let store = Arc::new(store.into());
        let link = Arc::new(Mutex::new(Link::Connecting));
        let own = Arc::new(Mutex::new(Vec::new()));
        let stop = tokio_util::sync::CancellationToken::new();
        let run = supervise(
            store.clone(),
            registry,
            kv,
            owner.into(),
            link.clone(),
            own.clone(),
        );
        let task = crate::telemetry::spawn({
            let stop = stop.clone();
            async move {
                stop.run_until_cancelled(run).await;
            }
        });
        Mirror {
            task,
            stop,
            link,
            own,
            store,
        }
    }

    pub fn link(&self) -> Link {
        self.link.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stops mirroring (on its signal, between two steps of a session) and withdraws this
    /// process's instances from the store.
    pub async fn stop(mut self) {
        self.stop.cancel();
        let task = std::mem::replace(&mut self.task, crate::telemetry::spawn(async {}));
        let abort = task.abort_handle();
        if tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .is_err()
        {
            tracing::warn!(
                "{}: the mirror did not stop in 2 s: aborted",
                self.store.name()
            );
            abort.abort();
        }
        let own = self.own.lock().unwrap_or_else(|e| e.into_inner()).clone();
        self.store.withdraw(own).await;
    }
}

/// Sessions one after the other, with backoff while the store cannot be reached.
async fn supervise<S: Store>(
    store: Arc<S>,
    registry: Registry,
    kv: Option<KvStore>,
    owner: String,
    link: Arc<Mutex<Link>>,
    own: Arc<Mutex<Vec<String>>>,
) {
    let mut m = Session {
        store: store.name(),
        registry: &registry,
        kv: kv.as_ref(),
        owner: &owner,
        state: MirrorState::default(),
        config: ConfigSync::default(),
        own: &own,
    };
    let mut backoff = Duration::from_millis(100);
    loop {
        match m.run(&*store, &link).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!("{}: {e}; retrying in {backoff:?}", store.name());
                let mut l = link.lock().unwrap_or_else(|e| e.into_inner());
                let since_unix_ms = match &*l {
                    Link::Down { since_unix_ms, .. } => *since_unix_ms,
                    _ => crate::telemetry::clock::unix_ns() / 1_000_000,
                };
                *l = Link::Down {
                    error: e,
                    since_unix_ms,
                };
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
        // The store may have lost everything: all of it goes out again.
        m.state.republish();
    }
}

struct Session<'a> {
    /// For log lines.
    store: String,
    registry: &'a Registry,
    kv: Option<&'a KvStore>,
    owner: &'a str,
    state: MirrorState,
    config: ConfigSync,
    own: &'a Mutex<Vec<String>>,
}

impl Session<'_> {
    /// Sends own instances that changed since the last call. What a stop withdraws is what the
    /// store may hold: an instance withdrawn here stays in that list until its delete went out.
    async fn publish(&mut self, writer: &mut impl Writer) -> Result<(), String> {
        let out = self.state.outgoing(self.registry);
        let published: Vec<String> = self.state.published().map(|v| v.id.clone()).collect();
        let mut there = published.clone();
        there.extend(out.deletes.iter().cloned());
        *self.own.lock().unwrap_or_else(|e| e.into_inner()) = there;
        let gone = out.deletes.clone();
        writer.publish(self.owner, out).await?;
        self.state.unshadow(self.registry, self.owner, &gone);
        *self.own.lock().unwrap_or_else(|e| e.into_inner()) = published;
        Ok(())
    }

    /// One session: own instances out, the others in, config both ways, until the store fails.
    async fn run<S: Store>(&mut self, store: &S, link: &Mutex<Link>) -> Result<(), String> {
        let (mut writer, mut events) = store.open(self.owner).await?;
        let mut changes = self.registry.subscribe();
        let mut kv_changes = self.kv.map(KvStore::subscribe);
        self.publish(&mut writer).await?;
        *link.lock().unwrap_or_else(|e| e.into_inner()) = Link::Up;
        // Local config keys go out once the store's have come in (they win at a start).
        let mut configured = false;
        let mut tick = tokio::time::interval(store.refresh_every());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    self.publish(&mut writer).await?;
                }
                Some(changed) = async {
                    match kv_changes.as_mut() {
                        Some(rx) => Some(rx.changed().await),
                        None => std::future::pending().await,
                    }
                } => {
                    if changed.is_ok() && configured {
                        self.config_out(&mut writer).await?;
                    }
                }
                _ = tick.tick() => {
                    writer.refresh(self.state.published().cloned().collect()).await?;
                }
                event = events.next() => {
                    if self.take(event?) && !configured {
                        configured = true;
                        self.config_out(&mut writer).await?;
                    }
                    // What an event put back among the unpublished goes out now.
                    if self.state.take_repost() {
                        self.publish(&mut writer).await?;
                    }
                }
            }
        }
    }

    /// Applies what the store said; true when it was the whole of the config keys.
    fn take(&mut self, event: Event) -> bool {
        let (registry, owner) = (self.registry, self.owner);
        match event {
            Event::Put(s) => self.state.import_shared(registry, owner, *s),
            Event::Gone(id) => {
                // An own instance of that id (held back while another process's key stood
                // there, or lost by the store): it goes out again.
                if !self.state.forget(registry, &id) && registry.instance(&id).is_some() {
                    self.state.unpublish(&id);
                }
            }
            Event::All(list) => {
                let present: HashSet<String> = list.iter().map(|s| s.instance.id.clone()).collect();
                for s in list {
                    self.state.import_shared(registry, owner, s);
                }
                for id in self.state.imported_ids() {
                    if !present.contains(&id) {
                        self.state.forget(registry, &id);
                    }
                }
            }
            Event::Service(name, list) => {
                let present: HashSet<String> = list.iter().map(|s| s.instance.id.clone()).collect();
                for s in list {
                    self.state.import_shared(registry, owner, s);
                }
                for id in self.state.imported_of(&name) {
                    if !present.contains(&id) {
                        self.state.forget(registry, &id);
                    }
                }
            }
            Event::Services(names) => {
                for id in self.state.imported_ids() {
                    let gone = registry
                        .instance(&id)
                        .is_some_and(|i| !names.contains(&i.service));
                    if gone {
                        self.state.forget(registry, &id);
                    }
                }
            }
            Event::ConfigKey(key, value) => {
                if let Some(kv) = self.kv {
                    self.config.remote_changed(kv, &key, value, &self.store);
                }
            }
            Event::Config(there) => {
                if let Some(kv) = self.kv {
                    self.config.start_from(kv, &there, &self.store);
                }
                return true;
            }
        }
        false
    }

    /// Local config keys that differ from what was agreed go out.
    async fn config_out(&mut self, writer: &mut impl Writer) -> Result<(), String> {
        let Some(kv) = self.kv else { return Ok(()) };
        let (puts, deletes) = self.config.local_changes(kv);
        for (key, value) in puts {
            writer.put_config(&key, value.clone()).await?;
            self.config.agreed(&key, Some(value));
        }
        for key in deletes {
            writer.delete_config(&key).await?;
            self.config.agreed(&key, None);
        }
        Ok(())
    }
}

/// The path of a config key under `LOCAL_CONFIG` (`lgo/traffic/rps` → `traffic/rps`).
pub fn config_path(key: &str) -> &str {
    key.strip_prefix(LOCAL_CONFIG).unwrap_or(key)
}
