//! Every breaker of the cluster by name (`CALLER->TARGET`), created on first use with its
//! configured settings (a named section, else the defaults).

use super::{Breaker, BreakerSettings, BreakerSnapshot, Mode};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

#[derive(Default)]
pub struct Breakers {
    map: RwLock<BTreeMap<String, Arc<Breaker>>>,
    defaults: RwLock<BreakerSettings>,
    named: RwLock<BTreeMap<String, BreakerSettings>>,
}

impl Breakers {
    pub fn new(defaults: BreakerSettings, named: BTreeMap<String, BreakerSettings>) -> Self {
        Breakers {
            map: RwLock::new(BTreeMap::new()),
            defaults: RwLock::new(defaults),
            named: RwLock::new(named),
        }
    }

    pub fn name(caller: &str, target: &str) -> String {
        format!("{caller}->{target}")
    }

    pub fn get(&self, name: &str) -> Arc<Breaker> {
        if let Some(b) = self.map.read().unwrap_or_else(|e| e.into_inner()).get(name) {
            return b.clone();
        }
        let settings = self
            .named
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
            .unwrap_or_else(|| {
                self.defaults
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone()
            });
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(Breaker::new(name, settings)))
            .clone()
    }

    /// An existing breaker only (commands must not create breakers by typo).
    pub fn find(&self, name: &str) -> Option<Arc<Breaker>> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    pub fn set_mode(&self, name: &str, mode: Mode) -> Result<(), String> {
        let b = self.find(name).ok_or_else(|| {
            let known: Vec<String> = self
                .map
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .keys()
                .cloned()
                .collect();
            format!("no breaker \"{name}\" (known: {})", known.join(", "))
        })?;
        b.set_mode(mode);
        Ok(())
    }

    /// New settings from config: future breakers get them, existing ones switch at once
    /// (their counts and state stay).
    pub fn set_settings(
        &self,
        defaults: BreakerSettings,
        named: BTreeMap<String, BreakerSettings>,
    ) {
        for (name, b) in self.map.read().unwrap_or_else(|e| e.into_inner()).iter() {
            b.set_settings(named.get(name).cloned().unwrap_or_else(|| defaults.clone()));
        }
        *self.defaults.write().unwrap_or_else(|e| e.into_inner()) = defaults;
        *self.named.write().unwrap_or_else(|e| e.into_inner()) = named;
    }

    pub fn snapshots(&self) -> Vec<BreakerSnapshot> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|b| b.snapshot())
            .collect()
    }
}
