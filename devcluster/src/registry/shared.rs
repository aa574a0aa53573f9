//! Instances shared between processes through a distributed store (etcd, a Consul agent):
//! what one process publishes of its own instances, how another takes them into its registry,
//! and config keys agreed between a process and the store ([`super::mirror`] runs it).
//!
//! Each process keeps its own [`Registry`] — the dashboard, the balancers and the Consul API
//! read it as before — and mirrors it: its own instances go out (with their health, as its
//! checks see it), the others' come in as instances whose checks their owner runs
//! ([`CheckKind::Shared`]). The store holds one key per instance, kept alive by its owner.

use super::model::{CheckKind, CheckSpec, InstanceView, Registration};
use super::store::Registry;
use crate::config::kv::KvStore;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// One instance as a process publishes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedInstance {
    /// The process that registered it and runs its checks.
    pub owner: String,
    pub instance: InstanceView,
}

/// What a process has published and taken in, so that a change is sent or applied once.
#[derive(Debug, Default)]
pub struct MirrorState {
    /// Own instances as last published (compared as views: serialized only when changed).
    published: HashMap<String, InstanceView>,
    /// Other processes' instances as taken in (id → as published).
    imported: HashMap<String, SharedInstance>,
    /// An own instance was unpublished by an event: publish without waiting for a change.
    repost: bool,
    /// Other processes' instances not taken in because an own one has their id: taken in once
    /// the own one goes.
    shadowed: HashMap<String, SharedInstance>,
}

/// The changes to write to the store: own instances new or changed (as published: without
/// this process's indexes), and ids withdrawn.
#[derive(Debug, Default, PartialEq)]
pub struct Outgoing {
    pub puts: Vec<InstanceView>,
    pub deletes: Vec<String>,
}

impl MirrorState {
    /// Everything is to be published again (a new session: the store may have lost it).
    pub fn republish(&mut self) {
        self.published.clear();
    }

    /// The ids of instances taken in from the store.
    pub fn imported_ids(&self) -> Vec<String> {
        self.imported.keys().cloned().collect()
    }

    /// Own instances as last published, to refresh in a store that expires them (Consul's
    /// TTL checks).
    pub fn published(&self) -> impl Iterator<Item = &InstanceView> {
        self.published.values()
    }

    /// The ids taken in of one service.
    pub fn imported_of(&self, service: &str) -> Vec<String> {
        self.imported
            .values()
            .filter(|s| s.instance.service == service)
            .map(|s| s.instance.id.clone())
            .collect()
    }

    /// What changed among the process's own instances since the last call.
    pub fn outgoing(&mut self, registry: &Registry) -> Outgoing {
        let mut out = Outgoing::default();
        let mut seen = Vec::new();
        for view in registry.instances() {
            if self.imported.contains_key(&view.id) {
                continue;
            }
            let view = published_view(view);
            seen.push(view.id.clone());
            if self.published.get(&view.id) == Some(&view) {
                continue;
            }
            out.puts.push(view.clone());
            self.published.insert(view.id.clone(), view);
        }
        let gone: Vec<String> = self
            .published
            .keys()
            .filter(|id| !seen.contains(id))
            .cloned()
            .collect();
        for id in gone {
            self.published.remove(&id);
            out.deletes.push(id);
        }
        out
    }

    /// Takes in an instance another process published (its own ones are skipped).
    pub fn import(&mut self, registry: &Registry, owner: &str, value: &[u8]) {
        let Ok(shared) = serde_json::from_slice::<SharedInstance>(value) else {
            tracing::warn!("shared registry: an entry that is not an instance was skipped");
            return;
        };
        self.import_shared(registry, owner, shared);
    }

    /// Takes in an instance another process published, read already.
    pub fn import_shared(&mut self, registry: &Registry, owner: &str, shared: SharedInstance) {
        if shared.owner == owner {
            return;
        }
        let id = shared.instance.id.clone();
        // An instance of this process with the same id (registered here before the other's
        // came in): never replaced by the other's, nor removed when the other goes.
        if self.published.contains_key(&id)
            || (!self.imported.contains_key(&id) && registry.instance(&id).is_some())
        {
            if !self.shadowed.contains_key(&id) {
                tracing::warn!(
                    instance = %id,
                    other = %shared.owner,
                    "shared registry: another lgo-dash publishes an instance with this process's id; this process keeps its own"
                );
            }
            self.shadowed.insert(id, shared);
            return;
        }
        let same_shape = self.imported.get(&id).is_some_and(|old| {
            let (mut a, mut b) = (old.instance.clone(), shared.instance.clone());
            for c in a.checks.iter_mut().chain(b.checks.iter_mut()) {
                c.status = super::model::Health::Passing;
                c.output.clear();
            }
            a.health = b.health;
            a == b && old.owner == shared.owner
        });
        let applied = if same_shape && registry.instance(&id).is_some() {
            // Only health moved: the checks' statuses, as the owner saw them.
            shared.instance.checks.iter().all(|c| {
                registry
                    .set_shared_check(&id, &c.id, c.status, &c.output)
                    .is_ok()
            })
        } else {
            false
        };
        if !applied {
            let _ = registry.register(registration_of(&shared));
            for c in &shared.instance.checks {
                let _ = registry.set_shared_check(&id, &c.id, c.status, &c.output);
            }
        }
        self.imported.insert(id, shared);
    }

    /// Removes an instance its owner withdrew (or whose owner's lease expired).
    /// Returns whether it was one taken in.
    pub fn forget(&mut self, registry: &Registry, id: &str) -> bool {
        self.shadowed.remove(id);
        if self.imported.remove(id).is_some() {
            let _ = registry.deregister(id);
            return true;
        }
        false
    }

    /// Own instances withdrawn (`gone`): another process's of the same id, kept aside while
    /// the own one stood, is taken in now.
    pub fn unshadow(&mut self, registry: &Registry, owner: &str, gone: &[String]) {
        for id in gone {
            if let Some(s) = self.shadowed.remove(id) {
                self.import_shared(registry, owner, s);
            }
        }
    }

    /// An own instance to be put again at the next publish.
    pub fn unpublish(&mut self, id: &str) {
        self.published.remove(id);
        self.repost = true;
    }

    /// Whether an own instance was unpublished since the last call (to publish at once).
    pub fn take_repost(&mut self) -> bool {
        std::mem::take(&mut self.repost)
    }
}

/// The view as published: the indexes are this process's own and mean nothing elsewhere.
fn published_view(mut v: InstanceView) -> InstanceView {
    v.create_index = 0;
    v.modify_index = 0;
    for c in &mut v.checks {
        c.create_index = 0;
        c.modify_index = 0;
    }
    v
}

/// The meta key an instance taken in from the store carries: the process that owns it.
pub const OWNER_META: &str = "lgo_owner";

/// An instance of another process as this registry holds it: its checks are its owner's.
fn registration_of(s: &SharedInstance) -> Registration {
    let v = &s.instance;
    let mut meta = v.meta.clone();
    meta.insert(OWNER_META.into(), s.owner.clone());
    Registration {
        id: v.id.clone(),
        name: v.service.clone(),
        address: v.address.clone(),
        port: v.port,
        tags: v.tags.clone(),
        meta,
        weight_passing: v.weight,
        weight_warning: v.weight_warning,
        enable_tag_override: v.enable_tag_override,
        checks: v
            .checks
            .iter()
            .map(|c| CheckSpec {
                id: c.id.clone(),
                name: c.name.clone(),
                kind: CheckKind::Shared {
                    owner: s.owner.clone(),
                    kind: c.kind.clone(),
                    definition: c.definition.clone(),
                },
                initial: Some(c.status),
                notes: c.notes.clone(),
                deregister_critical_after: None,
            })
            .collect(),
        via: v.via.clone(),
    }
}

/// The config center's keys in the local KV store (`lgo/traffic/rps`).
pub const LOCAL_CONFIG: &str = "lgo/";

/// Config keys as a shared store and this process last agreed on them (local KV key → value):
/// what differs from it on either side is a change to pass on, and a change coming back is
/// known for one.
#[derive(Debug, Default)]
pub struct ConfigSync {
    synced: HashMap<String, Vec<u8>>,
}

impl ConfigSync {
    /// At a session's start: the store's keys win; keys deleted there while this process was
    /// away go here too. Keys only this process has go out next ([`ConfigSync::local_changes`]).
    pub fn start_from(&mut self, kv: &KvStore, there: &HashMap<String, Vec<u8>>, store: &str) {
        for (key, value) in there {
            self.remote_changed(kv, key, Some(value.clone()), store);
        }
        let agreed: Vec<String> = self.synced.keys().cloned().collect();
        for key in agreed {
            if !there.contains_key(&key) {
                self.synced.remove(&key);
                kv.delete(&key, false, None);
            }
        }
    }

    /// A key changed in the store (`None`: deleted): applied here (checked like any edit: a
    /// refused value leaves the config as it was) unless it is what was agreed already.
    pub fn remote_changed(&mut self, kv: &KvStore, key: &str, value: Option<Vec<u8>>, store: &str) {
        if self.synced.get(key) == value.as_ref() {
            return;
        }
        match value {
            Some(v) => {
                let local = kv.get(key).map(|e| e.value);
                self.synced.insert(key.to_string(), v.clone());
                if local.as_ref() != Some(&v)
                    && let Err(e) = kv.put(key, v.clone(), None, None)
                {
                    // The error says "refused: key = value: expected …" itself.
                    tracing::warn!("{store}: a config key from the store: {e}");
                }
            }
            None => {
                self.synced.remove(key);
                kv.delete(key, false, None);
            }
        }
    }

    /// Local keys that differ from what was agreed: (key, value) to write, keys to delete.
    /// Each is to be marked [`ConfigSync::agreed`] once written.
    pub fn local_changes(&self, kv: &KvStore) -> (Vec<(String, Vec<u8>)>, Vec<String>) {
        let local: HashMap<String, Vec<u8>> = kv
            .list(LOCAL_CONFIG)
            .into_iter()
            .map(|e| (e.key, e.value))
            .collect();
        let deletes = self
            .synced
            .keys()
            .filter(|k| !local.contains_key(*k))
            .cloned()
            .collect();
        let puts = local
            .into_iter()
            .filter(|(k, v)| self.synced.get(k) != Some(v))
            .collect();
        (puts, deletes)
    }

    /// A key as now written to the store (`None`: deleted there).
    pub fn agreed(&mut self, key: &str, value: Option<Vec<u8>>) {
        match value {
            Some(v) => {
                self.synced.insert(key.to_string(), v);
            }
            None => {
                self.synced.remove(key);
            }
        }
    }
}
