//! The cluster's settings: defaults from `assets/lgo.toml` (embedded), overridden by a file the
//! user names. Unknown keys are refused with the key's path, so a typo never passes silently.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// The defaults shipped with the binary.
pub const DEFAULTS_TOML: &str = include_str!("../../assets/lgo.toml");

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub ports: Ports,
    pub services: BTreeMap<String, ServiceConfig>,
    pub health: HealthConfig,
    pub shutdown: ShutdownConfig,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Ports {
    pub registry: u16,
    pub admin: u16,
    pub gateway: u16,
    pub otlp_grpc: u16,
    pub otlp_http: u16,
    pub user_service: u16,
    pub order_service: u16,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    pub instances: usize,
    pub version: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    pub interval_ms: u64,
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ShutdownConfig {
    pub drain_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid config in {origin}: {message}")]
    Invalid { origin: String, message: String },
}

impl Config {
    /// The embedded defaults.
    pub fn defaults() -> Config {
        // The defaults are part of the binary and covered by a test; failing here is a build bug.
        #[allow(clippy::expect_used)]
        Config::from_layers(&[("defaults", DEFAULTS_TOML)])
            .expect("embedded assets/lgo.toml is valid")
    }

    /// Defaults, then the file at `path` on top.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let Some(path) = path else {
            return Ok(Config::defaults());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::from_layers(&[
            ("defaults", DEFAULTS_TOML),
            (&path.display().to_string(), &text),
        ])
    }

    /// Merges TOML documents key by key, later ones winning, then checks the result.
    pub fn from_layers(layers: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut merged = toml::Table::new();
        for (origin, text) in layers {
            let table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Invalid {
                origin: origin.to_string(),
                message: e.to_string(),
            })?;
            merge(&mut merged, table);
        }
        let origin = layers.last().map(|l| l.0).unwrap_or("defaults").to_string();
        let cfg: Config = toml::Value::Table(merged)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid {
                origin: origin.clone(),
                message: e.to_string(),
            })?;
        cfg.validate()
            .map_err(|message| ConfigError::Invalid { origin, message })?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), String> {
        for (name, s) in &self.services {
            if !matches!(name.as_str(), "user-service" | "order-service") {
                return Err(format!(
                    "services.{name}: unknown sample service (expected user-service or order-service)"
                ));
            }
            if s.instances > 16 {
                return Err(format!(
                    "services.{name}.instances = {}: expected 0 to 16",
                    s.instances
                ));
            }
        }
        if self.health.interval_ms < 50 {
            return Err(format!(
                "health.interval_ms = {}: expected at least 50",
                self.health.interval_ms
            ));
        }
        if self.health.timeout_ms == 0 {
            return Err("health.timeout_ms = 0: expected at least 1".into());
        }
        Ok(())
    }

    pub fn instances(&self, service: &str) -> usize {
        self.services.get(service).map_or(0, |s| s.instances)
    }

    pub fn version(&self, service: &str) -> String {
        self.services
            .get(service)
            .map_or_else(|| "0.0.0".into(), |s| s.version.clone())
    }

    pub fn check_interval(&self) -> Duration {
        Duration::from_millis(self.health.interval_ms)
    }

    pub fn check_timeout(&self) -> Duration {
        Duration::from_millis(self.health.timeout_ms)
    }

    pub fn drain(&self) -> Duration {
        Duration::from_millis(self.shutdown.drain_ms)
    }
}

fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_and_match_the_design_ports() {
        let c = Config::defaults();
        assert_eq!(c.ports.registry, 8500);
        assert_eq!(c.ports.gateway, 8080);
        assert_eq!(c.instances("user-service"), 3);
        assert_eq!(c.instances("order-service"), 2);
    }

    #[test]
    fn a_user_file_overrides_single_keys() {
        let c = Config::from_layers(&[
            ("defaults", DEFAULTS_TOML),
            (
                "mine.toml",
                "[ports]\nregistry = 18500\n[services.user-service]\ninstances = 1\n",
            ),
        ])
        .expect("valid");
        assert_eq!(c.ports.registry, 18500);
        assert_eq!(c.ports.admin, 9900);
        assert_eq!(c.instances("user-service"), 1);
        assert_eq!(c.version("user-service"), "1.0.0");
    }

    #[test]
    fn unknown_and_invalid_keys_are_refused_with_their_name() {
        let err = Config::from_layers(&[
            ("defaults", DEFAULTS_TOML),
            ("mine.toml", "[ports]\nregistyr = 1\n"),
        ])
        .expect_err("typo");
        let msg = err.to_string();
        assert!(
            msg.contains("mine.toml") && msg.contains("registyr"),
            "{msg}"
        );
        let err = Config::from_layers(&[
            ("defaults", DEFAULTS_TOML),
            ("mine.toml", "[health]\ninterval_ms = 5\n"),
        ])
        .expect_err("too fast");
        assert!(err.to_string().contains("health.interval_ms = 5"), "{err}");
    }
}
