//! The config center's key/value store, served on the registry port with Consul's KV API
//! (`/v1/kv/...`). Every write bumps one index; a blocking read of a key or a prefix waits
//! until the index of what it reads passes the one the client saw.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;

/// Consul's default limit on a value.
pub const MAX_VALUE_BYTES: usize = 512 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvEntry {
    pub key: String,
    pub value: Vec<u8>,
    pub flags: u64,
    pub create_index: u64,
    pub modify_index: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KvError {
    #[error(
        "key {0:?}: must not be empty, start with '/', hold a '..' or '.' segment, or control characters"
    )]
    BadKey(String),
    #[error("value of {key}: {len} bytes, the limit is {MAX_VALUE_BYTES}")]
    TooLarge { key: String, len: usize },
    /// The guard refused the value (a config key whose value would make the config invalid).
    #[error("{0}")]
    Refused(String),
}

/// Checks a write before it is stored: `Err(reason)` refuses it.
pub type Guard = Arc<dyn Fn(&str, &[u8]) -> Result<(), String> + Send + Sync>;

#[derive(Default)]
struct State {
    entries: BTreeMap<String, KvEntry>,
    /// The index at which each deleted key went, so a blocking read of a prefix wakes on a
    /// delete too (the prefix's index is the newest change under it).
    deleted: BTreeMap<String, u64>,
}

#[derive(Clone)]
pub struct KvStore {
    state: Arc<Mutex<State>>,
    index: Arc<watch::Sender<u64>>,
    guard: Arc<Mutex<Option<Guard>>>,
}

impl Default for KvStore {
    fn default() -> Self {
        Self::new()
    }
}

impl KvStore {
    pub fn new() -> Self {
        KvStore {
            state: Arc::default(),
            // Consul's index is never 0.
            index: Arc::new(watch::channel(1).0),
            guard: Arc::default(),
        }
    }

    /// Every later write is checked by `guard` first (the config center checks `lgo/` keys).
    pub fn set_guard(&self, guard: Guard) {
        *self.guard.lock().unwrap_or_else(|e| e.into_inner()) = Some(guard);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The index of the last write (≥ 1).
    pub fn index(&self) -> u64 {
        *self.index.borrow()
    }

    /// A receiver that sees the index move on every write.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.index.subscribe()
    }

    fn bump(&self) -> u64 {
        let mut next = 0;
        self.index.send_modify(|i| {
            *i += 1;
            next = *i;
        });
        next
    }

    pub fn get(&self, key: &str) -> Option<KvEntry> {
        self.lock().entries.get(key).cloned()
    }

    /// Entries whose key starts with `prefix` (a string prefix, as Consul's), by key.
    pub fn list(&self, prefix: &str) -> Vec<KvEntry> {
        self.lock()
            .entries
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// What a blocking read of `key` (or, with `recurse`, of the prefix) compares with the
    /// client's index: the newest change to it, or the store's index when nothing is there.
    pub fn index_of(&self, key: &str, recurse: bool) -> u64 {
        let s = self.lock();
        let newest = if recurse {
            let written = s
                .entries
                .range(key.to_string()..)
                .take_while(|(k, _)| k.starts_with(key))
                .map(|(_, e)| e.modify_index);
            let deleted = s
                .deleted
                .range(key.to_string()..)
                .take_while(|(k, _)| k.starts_with(key))
                .map(|(_, &i)| i);
            written.chain(deleted).max()
        } else {
            s.entries
                .get(key)
                .map(|e| e.modify_index)
                .or_else(|| s.deleted.get(key).copied())
        };
        drop(s);
        newest.unwrap_or_else(|| self.index())
    }

    /// Writes `value` under `key`. With `cas`, only when the key's ModifyIndex equals it
    /// (0: only when absent); `Ok(None)` when that condition fails. Returns the new index.
    pub fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        flags: Option<u64>,
        cas: Option<u64>,
    ) -> Result<Option<u64>, KvError> {
        check_limits(key, &value)?;
        let guard = self.guard.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(guard) = guard {
            guard(key, &value).map_err(KvError::Refused)?;
        }
        self.put_checked(key, value, flags, cas)
    }

    /// `put` for a writer that has checked the value itself (the config center): the guard,
    /// which would check it again, is skipped.
    pub(crate) fn put_checked(
        &self,
        key: &str,
        value: Vec<u8>,
        flags: Option<u64>,
        cas: Option<u64>,
    ) -> Result<Option<u64>, KvError> {
        check_limits(key, &value)?;
        let mut s = self.lock();
        let current = s.entries.get(key).map(|e| e.modify_index);
        if let Some(cas) = cas
            && current.unwrap_or(0) != cas
        {
            return Ok(None);
        }
        let index = self.bump();
        let old = s.entries.get(key);
        let entry = KvEntry {
            key: key.into(),
            value,
            flags: flags.unwrap_or_else(|| old.map_or(0, |e| e.flags)),
            create_index: old.map_or(index, |e| e.create_index),
            modify_index: index,
        };
        s.entries.insert(key.into(), entry);
        s.deleted.remove(key);
        Ok(Some(index))
    }

    /// Deletes `key` (with `recurse`, every key under the prefix). With `cas`, only when the
    /// key's ModifyIndex equals it; returns whether the condition held.
    pub fn delete(&self, key: &str, recurse: bool, cas: Option<u64>) -> bool {
        let mut s = self.lock();
        if let Some(cas) = cas
            && s.entries.get(key).map(|e| e.modify_index) != Some(cas)
        {
            return false;
        }
        let gone: Vec<String> = if recurse {
            s.entries
                .range(key.to_string()..)
                .take_while(|(k, _)| k.starts_with(key))
                .map(|(k, _)| k.clone())
                .collect()
        } else {
            s.entries
                .contains_key(key)
                .then(|| key.to_string())
                .into_iter()
                .collect()
        };
        if gone.is_empty() {
            return true;
        }
        let index = self.bump();
        for k in gone {
            s.entries.remove(&k);
            s.deleted.insert(k, index);
        }
        true
    }

    /// Waits until `index_of(key, recurse)` passes `after`, or `wait` elapses.
    pub async fn wait_past(&self, key: &str, recurse: bool, after: u64, wait: Duration) {
        if after == 0 {
            return;
        }
        let mut rx = self.subscribe();
        let _ = tokio::time::timeout(wait, async {
            loop {
                rx.borrow_and_update();
                if self.index_of(key, recurse) > after {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
    }
}

/// What Consul refuses whoever writes: a bad key, a value over the limit.
fn check_limits(key: &str, value: &[u8]) -> Result<(), KvError> {
    // A key stays inside its namespace: no absolute path, no `..` to climb out of a prefix,
    // nothing a terminal or a log line would act on.
    let escapes = key.split('/').any(|seg| seg == ".." || seg == ".");
    if key.is_empty() || key.starts_with('/') || escapes || key.chars().any(char::is_control) {
        return Err(KvError::BadKey(key.into()));
    }
    if value.len() > MAX_VALUE_BYTES {
        return Err(KvError::TooLarge {
            key: key.into(),
            len: value.len(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_leave_their_namespace() {
        let kv = KvStore::new();
        for bad in [
            "",
            "/etc/passwd",
            "lgo/../secrets",
            "..",
            "a/./b",
            "a\nb",
            "a\u{1b}[2J",
        ] {
            assert_eq!(
                kv.put(bad, b"x".to_vec(), None, None),
                Err(KvError::BadKey(bad.into())),
                "{bad:?}"
            );
        }
        for good in [
            "lgo/traffic/rps",
            "team/a..b",
            "dotted.name/v1",
            "ünïcode/key",
        ] {
            assert!(kv.put(good, b"x".to_vec(), None, None).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn writes_bump_the_index_and_keep_the_create_index() {
        let kv = KvStore::new();
        let first = kv
            .put("lgo/traffic/rps", b"20".to_vec(), None, None)
            .unwrap();
        let second = kv
            .put("lgo/traffic/rps", b"40".to_vec(), Some(7), None)
            .unwrap();
        assert!(second > first);
        let e = kv.get("lgo/traffic/rps").unwrap();
        assert_eq!(
            (e.create_index, e.modify_index),
            (first.unwrap(), second.unwrap())
        );
        assert_eq!((e.value.as_slice(), e.flags), (&b"40"[..], 7));
        kv.put("lgo/traffic/rps", b"50".to_vec(), None, None)
            .unwrap();
        assert_eq!(kv.get("lgo/traffic/rps").unwrap().flags, 7, "flags stay");
    }

    #[test]
    fn check_and_set() {
        let kv = KvStore::new();
        assert_eq!(kv.put("a", vec![], None, Some(5)).unwrap(), None, "absent");
        let i = kv.put("a", vec![1], None, Some(0)).unwrap().unwrap();
        assert_eq!(
            kv.put("a", vec![2], None, Some(0)).unwrap(),
            None,
            "present"
        );
        assert!(kv.put("a", vec![3], None, Some(i)).unwrap().is_some());
        assert!(!kv.delete("a", false, Some(i)), "stale cas");
        assert!(kv.get("a").is_some());
    }

    #[test]
    fn prefixes_are_plain_string_prefixes_and_deletes_move_their_index() {
        let kv = KvStore::new();
        for k in ["a/b", "a/bc", "a/c/d", "b"] {
            kv.put(k, k.as_bytes().to_vec(), None, None).unwrap();
        }
        let keys = |p| kv.list(p).into_iter().map(|e| e.key).collect::<Vec<_>>();
        assert_eq!(keys("a/b"), ["a/b", "a/bc"]);
        let before = kv.index_of("a/", true);
        assert!(kv.delete("a/c", true, None));
        assert_eq!(keys("a/"), ["a/b", "a/bc"]);
        assert!(
            kv.index_of("a/", true) > before,
            "a delete wakes prefix watchers"
        );
        assert_eq!(
            kv.put("/x", vec![], None, None),
            Err(KvError::BadKey("/x".into()))
        );
        assert!(matches!(
            kv.put("big", vec![0; MAX_VALUE_BYTES + 1], None, None),
            Err(KvError::TooLarge { .. })
        ));
    }
}
