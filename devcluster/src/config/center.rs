//! The config center: the live config is the base layers (defaults, environment file, user
//! file, `LGO__` variables) with the KV store's `lgo/...` keys on top. Every way in (`ctl config
//! set`, the dashboard, a KV write) goes through the same check: the whole config must still be
//! valid, else the write is refused with the key, the value and what was expected, and nothing
//! changes. A valid change makes a new version, is applied to the running cluster at once, and
//! is kept in the history (who, when, old → new) for undo.

use super::kv::KvStore;
use super::layers::{self, KV_PREFIX, Layer, LayerKind};
use super::{ConfigError, Effective, Invalid};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

/// Why a config change was not made. Nothing changed in any case: the previous config stays live.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChangeError {
    /// The value would leave the config invalid.
    #[error("refused: {0}")]
    Refused(Invalid),
    #[error("key \"{key}\": expected a dotted path such as traffic.rps")]
    BadKey { key: String },
    #[error("this cluster was started without environment layers: there is nothing to switch")]
    NoEnvironments,
    #[error("environment {env}: {reason}")]
    Environment { env: String, reason: String },
    #[error(
        "nothing to undo (an environment switch is undone by switching back: ctl config env NAME)"
    )]
    NothingToUndo,
    /// An edit that would not change the live value: a layer above the one edits go to sets
    /// the key.
    #[error(
        "{key} is set by {by}, above {file}: the live value would not change (remove it there first)"
    )]
    Shadowed {
        key: String,
        by: String,
        file: String,
    },
    /// The config file could not be read, written back or watched.
    #[error("{0}")]
    File(String),
    #[error("{0}")]
    Kv(String),
    #[error("the config change did not complete: {0}")]
    Interrupted(String),
}

/// Changes kept in the history.
const HISTORY_MAX: usize = 500;

/// One key changed by one write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// The config version this change made.
    pub version: u64,
    pub at_unix_ms: u64,
    /// `ctl`, `dashboard`, `kv`, `undo`.
    pub who: String,
    pub key: String,
    /// TOML text; `None` when the key was not set.
    pub old: Option<String>,
    pub new: Option<String>,
    /// Rebuilding the config and switching every part of the running cluster to it (the
    /// sample services run in this process: they all switch in this step).
    #[serde(default)]
    pub applied_in_us: u64,
}

/// A key's value and the layer it comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub key: String,
    pub value: String,
    pub origin: String,
}

impl Change {
    /// The old value as shown: "(unset)" when the key had none.
    pub fn old_text(&self) -> &str {
        self.old.as_deref().unwrap_or(UNSET)
    }

    pub fn new_text(&self) -> &str {
        self.new.as_deref().unwrap_or(UNSET)
    }
}

const UNSET: &str = "(unset)";

/// What the dashboard shows: every key, the version, the newest changes (newest last).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigView {
    pub version: u64,
    pub entries: Vec<Entry>,
    pub history: Vec<Change>,
    /// Why the config file's last edit on disk was not applied (the previous config stays).
    #[serde(default)]
    pub file_error: Option<String>,
    /// The environment whose file is a layer (empty when started from a plain config).
    #[serde(default)]
    pub env: String,
    /// Per server (instance or gateway): the config version its last request ran under.
    #[serde(default)]
    pub running: BTreeMap<String, u64>,
}

/// "traffic.rps: 20 → 75" for each change, or "no change".
pub fn describe(changes: &[Change]) -> String {
    if changes.is_empty() {
        return "no change".into();
    }
    let parts: Vec<String> = changes
        .iter()
        .map(|c| format!("{}: {} → {}", c.key, c.old_text(), c.new_text()))
        .collect();
    format!("{} (v{})", parts.join(", "), changes[0].version)
}

/// What the running cluster does with a new config (old, new).
pub type Apply = Box<dyn Fn(&super::Config, &super::Config) + Send + Sync>;

struct Live {
    effective: Effective,
    version: u64,
    history: Vec<Change>,
    /// Changes undo can still revert, newest last (undoing one removes it; an undo's own
    /// change is not pushed, so repeated undos walk back through history).
    undoable: Vec<Change>,
}

/// The user's `--config` file: edits are written back to it, hand edits reloaded from it.
struct ConfigFile {
    /// Its place among the base layers.
    index: usize,
    path: PathBuf,
}

pub struct ConfigCenter {
    base: Mutex<Vec<Layer>>,
    file: Option<ConfigFile>,
    file_error: Mutex<Option<String>>,
    watcher: Mutex<Option<notify::RecommendedWatcher>>,
    kv: KvStore,
    live: Mutex<Live>,
    /// Serialises writes: check, write to KV and apply happen as one step.
    writing: Mutex<()>,
    /// The KV index the live config was built at: the KV watcher skips what is already live
    /// (the center's own writes, applied as they were made).
    synced_kv: AtomicU64,
    /// Where the live version is published for spans: the cluster it was built in.
    telemetry: Option<Arc<crate::telemetry::Telemetry>>,
    /// The live version, for those who wait on changes.
    versions: tokio::sync::watch::Sender<u64>,
    apply: Apply,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl ConfigCenter {
    /// Starts from `base` plus whatever the KV store already holds under `lgo/`.
    /// Installs itself as the KV store's guard: a KV write of an `lgo/` key that would make
    /// the config invalid is refused (the KV API answers 400 with the reason).
    /// `file`: the base layer read from that TOML file (the user's `--config`), which edits
    /// from `ctl` and the dashboard are written back to.
    pub fn new(
        base: Vec<Layer>,
        file: Option<PathBuf>,
        kv: KvStore,
        apply: Apply,
    ) -> Result<Arc<Self>, ConfigError> {
        let effective = effective(&base, &kv, None)?;
        let file = file.and_then(|path| {
            let kind = LayerKind::File(path.clone());
            let index = base.iter().position(|l| l.kind == kind)?;
            Some(ConfigFile { index, path })
        });
        let center = Arc::new(ConfigCenter {
            base: Mutex::new(base),
            file,
            file_error: Mutex::new(None),
            watcher: Mutex::new(None),
            kv,
            live: Mutex::new(Live {
                effective,
                version: 1,
                history: Vec::new(),
                undoable: Vec::new(),
            }),
            writing: Mutex::new(()),
            synced_kv: AtomicU64::new(0),
            // The cluster being built: its spans carry this center's version.
            telemetry: crate::telemetry::owner(),
            versions: tokio::sync::watch::channel(1).0,
            apply,
        });
        let weak = Arc::downgrade(&center);
        center.kv.set_guard(Arc::new(move |key, value| {
            match (weak.upgrade(), layers::key_of_kv(key)) {
                (Some(c), Some(key)) => c
                    .check(&key, &String::from_utf8_lossy(value))
                    .map_err(|e| e.to_string()),
                _ => Ok(()),
            }
        }));
        Ok(center)
    }

    /// The base layers, locked: read them in place (cloning them per snapshot was waste); a
    /// change replaces them whole.
    fn base(&self) -> MutexGuard<'_, Vec<Layer>> {
        self.base.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The environment layer: its place and its name (`assets/config/staging.toml` → staging).
    fn env_layer(&self) -> Option<(usize, String)> {
        self.base()
            .iter()
            .enumerate()
            .find_map(|(i, l)| match &l.kind {
                LayerKind::Environment(name) => Some((i, name.clone())),
                _ => None,
            })
    }

    pub fn env(&self) -> Option<String> {
        self.env_layer().map(|(_, name)| name)
    }

    /// The base layers with environment `env`'s file in place of the current one.
    fn with_env(&self, env: &str) -> Result<Vec<Layer>, ChangeError> {
        let (index, _) = self.env_layer().ok_or(ChangeError::NoEnvironments)?;
        let mut base = self.base().clone();
        base[index] = Layer::environment(env).map_err(|reason| ChangeError::Environment {
            env: env.into(),
            reason,
        })?;
        Ok(base)
    }

    /// What switching to environment `env` would change, key by key (nothing is applied).
    pub fn env_diff(&self, env: &str) -> Result<Vec<Change>, ChangeError> {
        let base = self.with_env(env)?;
        let next = effective(&base, &self.kv, None).map_err(|e| invalid_env(env, &e))?;
        let live = self.live();
        Ok(diff(
            &layers::leaves(&live.effective.table),
            &layers::leaves(&next.table),
            live.version + 1,
            "env",
        ))
    }

    /// Switches to environment `env`: its file replaces the current environment's layer.
    /// Not undoable key by key; switch back instead.
    pub fn switch_env(&self, env: &str, who: &str) -> Result<Vec<Change>, ChangeError> {
        let _w = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let base = self.with_env(env)?;
        effective(&base, &self.kv, None).map_err(|e| invalid_env(env, &e))?;
        *self.base.lock().unwrap_or_else(|e| e.into_inner()) = base;
        Ok(self.sync_locked(who, false))
    }

    /// The layer above the user's file that sets `key` (an `LGO__` variable, the KV store).
    fn set_above_file(&self, key: &str) -> Option<String> {
        let parts = layers::split_key(key);
        let base = self.base();
        let file_at = base
            .iter()
            .position(|l| matches!(l.kind, LayerKind::File(_)))?;
        if let Some(l) = base[file_at + 1..]
            .iter()
            .find(|l| layers::get_path(&l.table, &parts).is_some())
        {
            return Some(l.origin.clone());
        }
        let kv_key = layers::kv_key(key);
        self.kv
            .get(&kv_key)
            .map(|_| format!("the KV store ({kv_key}; `ctl config unset {key}` removes it)"))
    }

    /// The file edits go to, when it is TOML (a JSON file is read, not rewritten).
    fn writable_file(&self) -> Option<&ConfigFile> {
        self.file
            .as_ref()
            .filter(|f| f.path.extension().is_some_and(|e| e == "toml"))
    }

    /// Reads the config file again (after a hand edit). A file that does not parse or does not
    /// add up to a valid config is not applied: the reason is kept for the dashboard and the
    /// previous config stays live.
    pub fn reload_file(&self) -> Vec<Change> {
        let Some(f) = &self.file else {
            return Vec::new();
        };
        let _w = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let origin = f.path.display().to_string();
        let layer = std::fs::read_to_string(&f.path)
            .map_err(|e| format!("cannot read {origin}: {e}"))
            .and_then(|text| Layer::file(&f.path, &text));
        let checked = layer.and_then(|layer| {
            let mut base = self.base().clone();
            base[f.index] = layer;
            effective(&base, &self.kv, None)
                .map(|_| base)
                .map_err(|e| e.to_string())
        });
        match checked {
            Ok(base) => {
                *self.base.lock().unwrap_or_else(|e| e.into_inner()) = base;
                *self.file_error.lock().unwrap_or_else(|e| e.into_inner()) = None;
                self.sync_locked("file", true)
            }
            Err(e) => {
                let msg = format!("{e} (the previous config stays live)");
                tracing::error!("config file not applied: {msg}");
                *self.file_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(msg);
                Vec::new()
            }
        }
    }

    /// Follows hand edits of the config file, if there is one.
    pub fn watch_file(self: &Arc<Self>) -> Result<(), ChangeError> {
        let Some(f) = &self.file else {
            return Ok(());
        };
        let weak = Arc::downgrade(self);
        let watcher = super::file::watch(f.path.clone(), move || {
            if let Some(c) = weak.upgrade() {
                c.reload_file();
            }
        })
        .map_err(|e| ChangeError::File(format!("cannot watch {}: {e}", f.path.display())))?;
        *self.watcher.lock().unwrap_or_else(|e| e.into_inner()) = Some(watcher);
        Ok(())
    }

    /// After writing the file: its new content becomes its layer.
    fn reread_file_layer(&self, f: &ConfigFile) -> Result<(), ChangeError> {
        let origin = f.path.display().to_string();
        let text = std::fs::read_to_string(&f.path)
            .map_err(|e| ChangeError::File(format!("cannot read {origin}: {e}")))?;
        let layer = Layer::file(&f.path, &text).map_err(ChangeError::File)?;
        self.base.lock().unwrap_or_else(|e| e.into_inner())[f.index] = layer;
        Ok(())
    }

    fn live(&self) -> MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn config(&self) -> super::Config {
        self.live().effective.config.clone()
    }

    pub fn version(&self) -> u64 {
        self.live().version
    }

    /// Every key with its value and origin, by key.
    pub fn entries(&self) -> Vec<Entry> {
        let live = self.live();
        layers::leaves(&live.effective.table)
            .into_iter()
            .map(|(key, value)| Entry {
                origin: live
                    .effective
                    .origins
                    .get(&key)
                    .cloned()
                    .unwrap_or_default(),
                key,
                value,
            })
            .collect()
    }

    pub fn get(&self, key: &str) -> Option<Entry> {
        let live = self.live();
        let v = layers::get_path(&live.effective.table, &layers::split_key(key))?;
        Some(Entry {
            key: key.into(),
            value: v.to_string(),
            origin: live
                .effective
                .origins
                .get(key)
                .cloned()
                .unwrap_or_else(|| "defaults".into()),
        })
    }

    /// The keys, the version and the newest `history` changes.
    pub fn view(&self, history: usize) -> ConfigView {
        let entries = self.entries();
        let env = self.env().unwrap_or_default();
        let live = self.live();
        let from = live.history.len().saturating_sub(history);
        ConfigView {
            version: live.version,
            entries,
            history: live.history[from..].to_vec(),
            file_error: self
                .file_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            env,
            running: BTreeMap::new(),
        }
    }

    pub fn history(&self) -> Vec<Change> {
        self.live().history.clone()
    }

    /// Checks that setting `key` to `text` leaves a valid config, without writing anything.
    pub fn check(&self, key: &str, text: &str) -> Result<(), ChangeError> {
        check_key(key)?;
        let value = layers::parse_value(text);
        effective(&self.base(), &self.kv, Some((key, Some(value))))
            .map(|_| ())
            .map_err(|e| refusal(key, text, e))
    }

    /// Runs a change (`set`, `unset`, `undo`, `switch_env`) on a blocking thread: writing the
    /// config file back and its fsyncs stay off the async workers that serve requests.
    pub async fn change<F>(self: &Arc<Self>, f: F) -> Result<Vec<Change>, ChangeError>
    where
        F: FnOnce(&ConfigCenter) -> Result<Vec<Change>, ChangeError> + Send + 'static,
    {
        let center = self.clone();
        crate::telemetry::spawn_blocking(move || f(&center))
            .await
            .unwrap_or_else(|e| Err(ChangeError::Interrupted(e.to_string())))
    }

    /// Sets `key` to `text` (a TOML literal or a bare word) in the KV layer and applies it.
    pub fn set(&self, key: &str, text: &str, who: &str) -> Result<Vec<Change>, ChangeError> {
        self.set_as(key, text, who, true)
    }

    fn set_as(
        &self,
        key: &str,
        text: &str,
        who: &str,
        undoable: bool,
    ) -> Result<Vec<Change>, ChangeError> {
        self.set_all(&[(key.to_string(), text.to_string())], who, undoable)
    }

    /// Sets several keys at once (a document published through Nacos): checked together, so a
    /// pair of keys that only make sense together goes in, and one refusal refuses them all.
    pub fn set_many(
        &self,
        pairs: &[(String, String)],
        who: &str,
    ) -> Result<Vec<Change>, ChangeError> {
        self.set_all(pairs, who, true)
    }

    /// The one write path of `set` and `set_many`: every key checked with the others, then
    /// written back to the file (or the KV layer) and applied.
    fn set_all(
        &self,
        pairs: &[(String, String)],
        who: &str,
        undoable: bool,
    ) -> Result<Vec<Change>, ChangeError> {
        let _w = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        for (key, _) in pairs {
            check_key(key)?;
        }
        let values: Vec<(&str, toml::Value)> = pairs
            .iter()
            .map(|(k, t)| (k.as_str(), layers::parse_value(t)))
            .collect();
        let extras: Vec<(&str, Option<toml::Value>)> =
            values.iter().map(|(k, v)| (*k, Some(v.clone()))).collect();
        if let Err(e) = effective_with(&self.base(), &self.kv, &extras) {
            let (key, text) = pairs
                .first()
                .map_or(("", ""), |(k, t)| (k.as_str(), t.as_str()));
            return Err(refusal(key, text, e));
        }
        let file = self.writable_file();
        // Written to the file under a layer that sets the key too, an edit would be said
        // done and change nothing live: refused, naming that layer.
        if let Some(f) = file {
            for (key, _) in pairs {
                if let Some(by) = self.set_above_file(key) {
                    return Err(ChangeError::Shadowed {
                        key: key.clone(),
                        by,
                        file: f.path.display().to_string(),
                    });
                }
            }
        }
        for (key, value) in &values {
            let canonical = value.to_string();
            match file {
                Some(f) => super::file::write_key(&f.path, key, Some(&canonical))
                    .map_err(ChangeError::File)?,
                None => {
                    self.kv
                        .put_checked(&layers::kv_key(key), canonical.into_bytes(), None, None)
                        .map_err(|e| ChangeError::Kv(e.to_string()))?;
                }
            }
        }
        if let Some(f) = file {
            self.reread_file_layer(f)?;
        }
        Ok(self.sync_locked(who, undoable))
    }

    /// The live config's keys as one table (what a Nacos client reads as the document).
    pub fn table(&self) -> toml::Table {
        self.live().effective.table.clone()
    }

    /// Wakes on every new version of the live config, however it changed.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.versions.subscribe()
    }

    /// Removes `key` from the KV layer: the value below (file, defaults) takes over again.
    pub fn unset(&self, key: &str, who: &str) -> Result<Vec<Change>, ChangeError> {
        self.unset_as(key, who, true)
    }

    fn unset_as(&self, key: &str, who: &str, undoable: bool) -> Result<Vec<Change>, ChangeError> {
        let _w = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        effective(&self.base(), &self.kv, Some((key, None))).map_err(|e| refusal(key, UNSET, e))?;
        // The key, or a whole section (`faults.user-service-2`): every key under it.
        self.kv.delete(&layers::kv_key(key), false, None);
        self.kv
            .delete(&format!("{}/", layers::kv_key(key)), true, None);
        if let Some(f) = self.writable_file() {
            super::file::write_key(&f.path, key, None).map_err(ChangeError::File)?;
            self.reread_file_layer(f)?;
        }
        Ok(self.sync_locked(who, undoable))
    }

    /// Undoes the newest change: its key goes back to its old value (or is unset).
    pub fn undo(&self, who: &str) -> Result<Vec<Change>, ChangeError> {
        let last = self
            .live()
            .undoable
            .pop()
            .ok_or(ChangeError::NothingToUndo)?;
        let done = match &last.old {
            // With a file, the old value is written back to it as it was, unless it came from
            // below the file (the defaults, the environment's file): then the file's override
            // goes, rather than a copy of that value written into it.
            Some(old)
                if self.writable_file().is_some()
                    && self.layer_below_file(&last.key).as_deref() != Some(old.as_str()) =>
            {
                self.set_as(&last.key, old, who, false)
            }
            Some(_) if self.writable_file().is_some() => self.unset_as(&last.key, who, false),
            Some(old) if self.layer_below_kv(&last.key).as_deref() != Some(old.as_str()) => {
                self.set_as(&last.key, old, who, false)
            }
            _ => self.unset_as(&last.key, who, false),
        };
        if done.is_err() {
            self.live().undoable.push(last);
        }
        done
    }

    /// The value `key` would have without the KV layer.
    fn layer_below_kv(&self, key: &str) -> Option<String> {
        value_in(self.base().iter(), key)
    }

    /// The value `key` has in the layers below the user's file.
    fn layer_below_file(&self, key: &str) -> Option<String> {
        value_in(
            self.base()
                .iter()
                .take_while(|l| !matches!(l.kind, LayerKind::File(_))),
            key,
        )
    }

    /// Re-reads the layers and applies what changed. A KV state that does not add up to a valid
    /// config is not applied; the live one stays.
    fn sync_locked(&self, who: &str, undoable: bool) -> Vec<Change> {
        let started = std::time::Instant::now();
        // Read before the KV layer is: a write landing meanwhile leaves the index ahead.
        self.synced_kv.store(self.kv.index(), Ordering::Relaxed);
        let next = match effective(&self.base(), &self.kv, None) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(
                    "the KV store's config keys do not add up to a valid config, the live one stays: {e}"
                );
                return Vec::new();
            }
        };
        let mut live = self.live();
        let before = layers::leaves(&live.effective.table);
        let after = layers::leaves(&next.table);
        if before == after {
            return Vec::new();
        }
        live.version += 1;
        let version = live.version;
        let mut changes = diff(&before, &after, version, who);
        let old = std::mem::replace(&mut live.effective, next);
        (self.apply)(&old.config, &live.effective.config);
        if let Some(t) = &self.telemetry {
            t.config_version.store(version, Ordering::Relaxed);
        }
        self.versions.send_replace(version);
        let applied_in_us = started.elapsed().as_micros() as u64;
        for c in &mut changes {
            c.applied_in_us = applied_in_us;
        }
        live.history.extend(changes.iter().cloned());
        if undoable {
            live.undoable.extend(changes.iter().cloned());
            let excess = live.undoable.len().saturating_sub(HISTORY_MAX);
            live.undoable.drain(..excess);
        }
        let excess = live.history.len().saturating_sub(HISTORY_MAX);
        live.history.drain(..excess);
        drop(live);
        for c in &changes {
            tracing::info!(
                key = %c.key,
                old = c.old_text(),
                new = c.new_text(),
                who = %c.who,
                version,
                "config changed"
            );
        }
        changes
    }

    /// Follows the KV store: applies writes made through the KV API.
    pub async fn watch(self: Arc<Self>) {
        let mut rx = self.kv.subscribe();
        while rx.changed().await.is_ok() {
            let _w = self.writing.lock().unwrap_or_else(|e| e.into_inner());
            if self.kv.index() > self.synced_kv.load(Ordering::Relaxed) {
                self.sync_locked("kv", true);
            }
        }
    }
}

/// Key by key, what differs between two sets of leaves.
fn diff(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
    version: u64,
    who: &str,
) -> Vec<Change> {
    let at = now_ms();
    let mut changes: Vec<Change> = Vec::new();
    for key in before.keys().chain(after.keys()) {
        let (old, new) = (before.get(key), after.get(key));
        if old != new && !changes.iter().any(|c| &c.key == key) {
            changes.push(Change {
                version,
                at_unix_ms: at,
                who: who.into(),
                key: key.clone(),
                old: old.cloned(),
                new: new.cloned(),
                applied_in_us: 0,
            });
        }
    }
    changes
}

fn check_key(key: &str) -> Result<(), ChangeError> {
    if key.is_empty() || key.split('.').any(str::is_empty) {
        return Err(ChangeError::BadKey { key: key.into() });
    }
    Ok(())
}

/// Setting `key` to `text` (or unsetting it) made `e`: the refusal names what the config
/// checks named (the key itself, or one the change broke); a document that did not parse is
/// said against the key and the text as typed.
fn refusal(key: &str, text: &str, e: ConfigError) -> ChangeError {
    match e {
        ConfigError::Value { invalid, .. } => ChangeError::Refused(invalid),
        ConfigError::Invalid { message, .. } => {
            ChangeError::Refused(Invalid::new(key, text, message.replace('\n', " ").trim()))
        }
        other => ChangeError::Refused(Invalid::new(key, text, other.to_string())),
    }
}

/// Environment `env`'s file does not add up to a valid config with the other layers.
fn invalid_env(env: &str, e: &ConfigError) -> ChangeError {
    ChangeError::Environment {
        env: env.into(),
        reason: e.to_string(),
    }
}

/// The base layers, then every `lgo/` key of the KV store, then `extra` (a key to set or, with
/// `None`, to leave out).
fn effective(
    base: &[Layer],
    kv: &KvStore,
    extra: Option<(&str, Option<toml::Value>)>,
) -> Result<Effective, super::ConfigError> {
    effective_with(base, kv, extra.as_slice())
}

/// [`effective`] with several keys set or left out at once.
fn effective_with(
    base: &[Layer],
    kv: &KvStore,
    extras: &[(&str, Option<toml::Value>)],
) -> Result<Effective, super::ConfigError> {
    let mut kv_table = toml::Table::new();
    for e in kv.list(KV_PREFIX) {
        let Some(key) = layers::key_of_kv(&e.key) else {
            continue;
        };
        if extras
            .iter()
            .any(|(k, _)| *k == key || key.starts_with(&format!("{k}.")))
        {
            continue;
        }
        let text = String::from_utf8_lossy(&e.value);
        layers::set_path(
            &mut kv_table,
            &layers::split_key(&key),
            layers::parse_value(&text),
        );
    }
    for (key, value) in extras {
        if let Some(value) = value {
            layers::set_path(&mut kv_table, &layers::split_key(key), value.clone());
        }
    }
    let kv_layer = Layer {
        origin: "kv".into(),
        kind: LayerKind::Kv,
        table: kv_table,
    };
    Effective::of(base.iter().chain([&kv_layer]))
}
/// The value of `key` in `layers` merged in order.
fn value_in<'a>(from: impl Iterator<Item = &'a Layer>, key: &str) -> Option<String> {
    let mut table = toml::Table::new();
    let mut origins = BTreeMap::new();
    for l in from {
        layers::merge(&mut table, &l.table, &l.origin, &mut origins, "");
    }
    layers::get_path(&table, &layers::split_key(key)).map(ToString::to_string)
}
