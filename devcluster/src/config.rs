//! The cluster's settings: defaults from `assets/lgo.toml` (embedded), overridden by a file the
//! user names. Unknown keys are refused with the key's path, so a typo never passes silently.

pub mod center;
pub mod file;
pub mod kv;
pub mod layers;

use crate::balance::Strategy;
use crate::balance::load::OutlierSettings;
use crate::breaker::BreakerSettings;
use layers::Layer;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// The defaults shipped with the binary.
pub const DEFAULTS_TOML: &str = include_str!("../../assets/lgo.toml");

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub ports: Ports,
    pub services: BTreeMap<String, ServiceConfig>,
    pub health: HealthConfig,
    pub shutdown: ShutdownConfig,
    pub balancer: BTreeMap<String, BalancerConfig>,
    /// `default` plus one entry per named breaker (already merged over `default`).
    pub breaker: BTreeMap<String, BreakerSettings>,
    pub timeouts: TimeoutsConfig,
    pub retries: RetriesConfig,
    pub outlier: OutlierSettings,
    pub traffic: TrafficConfig,
    pub telemetry: TelemetryConfig,
    pub routes: Vec<RouteConfig>,
    /// Faults injected per instance id (`[faults.user-service-2] latency_ms = 200`), applied
    /// and cleared live like the `ctl fault` command.
    #[serde(default)]
    pub faults: BTreeMap<String, crate::services::faults::Fault>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BalancerConfig {
    pub strategy: Strategy,
    /// For consistent_hash: `header:NAME` or `path:NAME`.
    #[serde(default)]
    pub hash_key: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsConfig {
    pub call_ms: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetriesConfig {
    pub attempts: u32,
    pub budget_percent: u32,
    pub min_per_second: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrafficConfig {
    pub rps: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Spans kept in the trace store (the oldest go first).
    pub max_spans: usize,
    /// Log records kept.
    pub max_logs: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub path: String,
    pub service: String,
    pub rewrite: String,
    /// Allowed methods; empty means any.
    #[serde(default)]
    pub methods: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Ports {
    pub registry: u16,
    pub admin: u16,
    pub gateway: u16,
    pub otlp_grpc: u16,
    pub otlp_http: u16,
    pub user_service: u16,
    /// gRPC port of the first user-service instance; a config written before gRPC existed
    /// still loads.
    #[serde(default = "default_user_service_grpc")]
    pub user_service_grpc: u16,
    pub order_service: u16,
    /// Nacos's Open API; a config written before it existed still loads.
    #[serde(default = "default_nacos")]
    pub nacos: u16,
}

fn default_nacos() -> u16 {
    8848
}

fn default_user_service_grpc() -> u16 {
    50051
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    pub instances: usize,
    pub version: String,
    /// order-service only: how it fetches users from user-service, applied live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_protocol: Option<Protocol>,
}

/// How one sample service calls another.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// JSON over HTTP/1.1 (`GET /users/{id}` on user-service).
    #[default]
    Http,
    /// gRPC (`lgo.user.v1.UserService/GetUser` on user-service-grpc).
    Grpc,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    pub interval_ms: u64,
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ShutdownConfig {
    pub drain_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The cause is in the message and not a `source`: a report of the chain would say it twice.
    #[error("cannot read config file {path}: {cause}")]
    Read { path: String, cause: std::io::Error },
    /// A document that does not parse (TOML or JSON syntax).
    #[error("invalid config in {origin}: {message}")]
    Invalid { origin: String, message: String },
    /// A key whose value the config cannot take; `origin` is the layer that set it.
    #[error("invalid config in {origin}: {invalid}")]
    Value { origin: String, invalid: Invalid },
}

/// A value the config cannot take: the key, the value given (as TOML text; empty for a whole
/// section) and what it expected, in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub struct Invalid {
    pub key: String,
    pub value: String,
    pub expected: String,
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.value.is_empty() {
            write!(f, "{}: expected {}", self.key, self.expected)
        } else {
            // A long value (a whole route table) is shortened: what was expected must show.
            const SHOWN: usize = 60;
            let value: String = if self.value.chars().count() > SHOWN {
                self.value.chars().take(SHOWN - 1).chain(['…']).collect()
            } else {
                self.value.clone()
            };
            write!(f, "{} = {}: expected {}", self.key, value, self.expected)
        }
    }
}

impl Invalid {
    pub fn new(key: impl Into<String>, value: impl ToString, expected: impl Into<String>) -> Self {
        Invalid {
            key: key.into(),
            value: value.to_string(),
            expected: expected.into(),
        }
    }

    /// The same, its key under `prefix` (`faults.user-service-2.` + `error_rate`).
    #[must_use]
    pub fn under(mut self, prefix: &str) -> Self {
        self.key = format!("{prefix}{}", self.key);
        self
    }

    /// A deserializer's refusal of the merged `table`: the key it names ("…\nin `traffic.rps`"),
    /// that key's value in the table, and what it expected, in words.
    fn of_toml(e: &toml::de::Error, table: &toml::Table) -> Option<Invalid> {
        let text = e.to_string();
        let (message, key) = text.trim_end().rsplit_once("\nin `")?;
        let mut key = key.strip_suffix('`')?.to_string();
        let message = in_words(message.trim());
        let mut expected = match message.split_once(", expected ") {
            Some((_, expected)) => expected.to_string(),
            None => message
                .strip_prefix("expected ")
                .unwrap_or(&message)
                .to_string(),
        };
        // A typo: the key is the unknown one, under the table that was read.
        if let Some((field, _)) = message
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split_once('`'))
        {
            key = if key.is_empty() {
                field.to_string()
            } else {
                format!("{key}.{field}")
            };
            expected = format!("a known key: {expected}");
        }
        let value = layers::get_path(table, &layers::split_key(&key))
            .map(ToString::to_string)
            .unwrap_or_default();
        Some(Invalid::new(key, value, expected))
    }
}

/// A deserializer's message with its type names said in words: "expected u32" means nothing
/// to someone editing a config key.
fn in_words(message: &str) -> String {
    [
        ("expected u8", "expected a whole number from 0 to 255"),
        ("expected u16", "expected a whole number from 0 to 65535"),
        (
            "expected u32",
            "expected a whole number from 0 to 4294967295",
        ),
        ("expected u64", "expected a whole number, 0 or more"),
        ("expected usize", "expected a whole number, 0 or more"),
        ("expected i32", "expected a whole number"),
        ("expected i64", "expected a whole number"),
        ("expected f32", "expected a number"),
        ("expected f64", "expected a number"),
        ("expected a boolean", "expected true or false"),
    ]
    .iter()
    .fold(message.to_string(), |m, (from, to)| m.replace(from, to))
}

impl Config {
    /// The embedded defaults.
    pub fn defaults() -> Config {
        // The defaults are part of the binary and covered by a test; failing here is a build bug.
        #[allow(clippy::expect_used)]
        Config::from_layers(&[("defaults", DEFAULTS_TOML)])
            .expect("embedded assets/lgo.toml is valid")
    }

    /// The layers below the KV store: the defaults, the environment's file, the user's file
    /// (TOML, or JSON by its extension), then `LGO__SECTION__KEY` variables from `vars`.
    pub fn base_layers(
        env: &str,
        path: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Vec<Layer>, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            origin: "layers".into(),
            message,
        };
        let mut layers = vec![Layer::defaults().map_err(invalid)?];
        layers.push(
            Layer::environment(env)
                .map_err(|reason| invalid(format!("environment {env}: {reason}")))?,
        );
        if let Some(path) = path {
            let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
                path: path.display().to_string(),
                cause,
            })?;
            layers.push(Layer::file(path, &text).map_err(invalid)?);
        }
        let known = layers[0].table.clone();
        layers.extend(Layer::from_env(vars, &known));
        Ok(layers)
    }

    /// Merges TOML documents key by key, later ones winning, then checks the result.
    pub fn from_layers(layers: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let parsed = layers
            .iter()
            .map(|(origin, text)| {
                Layer::parse(origin, text).map_err(|message| ConfigError::Invalid {
                    origin: origin.to_string(),
                    message,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Effective::of(&parsed)?.config)
    }

    fn from_table(mut merged: toml::Table, origin: &str) -> Result<Config, ConfigError> {
        inherit_breaker_defaults(&mut merged);
        let cfg: Config =
            toml::Value::Table(merged.clone())
                .try_into()
                .map_err(|e: toml::de::Error| match Invalid::of_toml(&e, &merged) {
                    Some(invalid) => ConfigError::Value {
                        origin: origin.to_string(),
                        invalid,
                    },
                    None => ConfigError::Invalid {
                        origin: origin.to_string(),
                        message: in_words(&e.to_string()),
                    },
                })?;
        cfg.validate().map_err(|invalid| ConfigError::Value {
            origin: origin.to_string(),
            invalid,
        })?;
        Ok(cfg)
    }

    /// This config as one layer (for a cluster started from a `Config` built in code).
    pub fn as_layer(&self, origin: &str) -> Layer {
        let table = match toml::Value::try_from(self) {
            Ok(toml::Value::Table(t)) => t,
            _ => toml::Table::new(),
        };
        Layer {
            origin: origin.into(),
            kind: layers::LayerKind::Code,
            table,
        }
    }

    fn validate(&self) -> Result<(), Invalid> {
        for (name, s) in &self.services {
            if !matches!(name.as_str(), "user-service" | "order-service") {
                return Err(Invalid::new(
                    format!("services.{name}"),
                    "",
                    "a sample service: user-service or order-service",
                ));
            }
            if let Some(p) = s.user_protocol
                && name != "order-service"
            {
                return Err(Invalid::new(
                    format!("services.{name}.user_protocol"),
                    format!("\"{}\"", format!("{p:?}").to_lowercase()),
                    "none here: only order-service calls user-service \
                     (set services.order-service.user_protocol)",
                ));
            }
            if s.instances > 16 {
                return Err(Invalid::new(
                    format!("services.{name}.instances"),
                    s.instances,
                    "0 to 16",
                ));
            }
        }
        if self.health.interval_ms < 50 {
            return Err(Invalid::new(
                "health.interval_ms",
                self.health.interval_ms,
                "at least 50",
            ));
        }
        if self.health.timeout_ms == 0 {
            return Err(Invalid::new("health.timeout_ms", 0, "at least 1"));
        }
        for (service, b) in &self.balancer {
            if let Some(k) = &b.hash_key
                && !(k.starts_with("header:") || k.starts_with("path:"))
            {
                return Err(Invalid::new(
                    format!("balancer.{service}.hash_key"),
                    format!("\"{k}\""),
                    "\"header:NAME\" or \"path:NAME\"",
                ));
            }
        }
        for (name, b) in &self.breaker {
            b.validate(name)?;
        }
        if self.timeouts.call_ms == 0 {
            return Err(Invalid::new("timeouts.call_ms", 0, "at least 1"));
        }
        if !(1..=10).contains(&self.retries.attempts) {
            return Err(Invalid::new(
                "retries.attempts",
                self.retries.attempts,
                "1 to 10",
            ));
        }
        if self.retries.budget_percent > 100 {
            return Err(Invalid::new(
                "retries.budget_percent",
                self.retries.budget_percent,
                "0 to 100",
            ));
        }
        if self.outlier.max_ejected_percent > 100 {
            return Err(Invalid::new(
                "outlier.max_ejected_percent",
                self.outlier.max_ejected_percent,
                "0 to 100",
            ));
        }
        for (key, v) in [
            ("telemetry.max_spans", self.telemetry.max_spans),
            ("telemetry.max_logs", self.telemetry.max_logs),
        ] {
            if !(100..=10_000_000).contains(&v) {
                return Err(Invalid::new(key, v, "100 to 10000000"));
            }
        }
        if self.traffic.rps > 10_000 {
            return Err(Invalid::new("traffic.rps", self.traffic.rps, "0 to 10000"));
        }
        for (id, f) in &self.faults {
            f.validate()
                .map_err(|e| e.under(&format!("faults.{id}.")))?;
        }
        for (i, r) in self.routes.iter().enumerate() {
            crate::gateway::routes::Route::compile(r)
                .map_err(|e| e.under(&format!("routes[{i}].")))?;
        }
        Ok(())
    }

    pub fn strategies(&self) -> BTreeMap<String, Strategy> {
        self.balancer
            .iter()
            .map(|(k, v)| (k.clone(), v.strategy))
            .collect()
    }

    /// Breakers with a section of their own (already merged over the defaults).
    pub fn named_breakers(&self) -> BTreeMap<String, BreakerSettings> {
        self.breaker
            .iter()
            .filter(|(k, _)| k.as_str() != "default")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Each target's consistent-hash key, where set.
    pub fn hash_keys(&self) -> BTreeMap<String, String> {
        self.balancer
            .iter()
            .filter_map(|(k, v)| v.hash_key.clone().map(|h| (k.clone(), h)))
            .collect()
    }

    /// Settings for breakers without a section of their own.
    pub fn breaker_defaults(&self) -> BreakerSettings {
        self.breaker.get("default").cloned().unwrap_or_default()
    }

    pub fn call_timeout(&self) -> Duration {
        Duration::from_millis(self.timeouts.call_ms)
    }

    /// How order-service fetches users.
    pub fn user_protocol(&self) -> Protocol {
        self.services
            .get(crate::services::order::SERVICE)
            .and_then(|s| s.user_protocol)
            .unwrap_or_default()
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

/// Each `[breaker.NAME]` starts from `[breaker.default]` and overrides only the keys it sets.
fn inherit_breaker_defaults(root: &mut toml::Table) {
    let Some(toml::Value::Table(breakers)) = root.get_mut("breaker") else {
        return;
    };
    let Some(toml::Value::Table(defaults)) = breakers.get("default").cloned() else {
        return;
    };
    for (name, v) in breakers.iter_mut() {
        if name != "default"
            && let toml::Value::Table(t) = v
        {
            let mut merged = defaults.clone();
            merge(&mut merged, std::mem::take(t));
            *t = merged;
        }
    }
}

/// The config the layers add up to, its merged keys, and the layer each leaf came from.
#[derive(Debug, Clone)]
pub struct Effective {
    pub config: Config,
    pub table: toml::Table,
    pub origins: BTreeMap<String, String>,
}

impl Effective {
    pub fn of<'a>(layers: impl IntoIterator<Item = &'a Layer>) -> Result<Effective, ConfigError> {
        let mut table = toml::Table::new();
        let mut origins = BTreeMap::new();
        let mut origin = "defaults";
        for l in layers {
            layers::merge(&mut table, &l.table, &l.origin, &mut origins, "");
            origin = &l.origin;
        }
        let config = Config::from_table(table.clone(), origin).map_err(|e| match e {
            // Named after the layer that set the refused key (a file's hand edit, not the KV
            // layer merged on top of it); for a section, the layer of a key under it.
            ConfigError::Value { origin, invalid } => ConfigError::Value {
                origin: origins
                    .get(&invalid.key)
                    .or_else(|| {
                        let section = format!("{}.", invalid.key);
                        origins
                            .iter()
                            .find(|(key, _)| key.starts_with(&section))
                            .map(|(_, o)| o)
                    })
                    .cloned()
                    .unwrap_or(origin),
                invalid,
            },
            other => other,
        })?;
        Ok(Effective {
            config,
            table,
            origins,
        })
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

    /// A long value is shortened in the message; what was expected is always there whole.
    #[test]
    fn a_long_refused_value_leaves_room_for_what_was_expected() {
        let long = format!("[{}]", "{ path = \"/api/x\", service = \"x\" }, ".repeat(8));
        let text = Invalid::new("routes", &long, "a table with a path and a service").to_string();
        assert!(
            text.ends_with("expected a table with a path and a service"),
            "{text}"
        );
        assert!(text.contains('…') && text.len() < 160, "{text}");
        assert_eq!(
            Invalid::new("traffic.rps", "\"x\"", "a whole number").to_string(),
            "traffic.rps = \"x\": expected a whole number"
        );
    }

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
        let err = Config::from_layers(&[
            ("defaults", DEFAULTS_TOML),
            (
                "mine.toml",
                "[balancer.user-service]\nstrategy = \"fastest\"\n",
            ),
        ])
        .expect_err("unknown strategy");
        assert!(err.to_string().contains("fastest"), "{err}");
        let err = Config::from_layers(&[
            ("defaults", DEFAULTS_TOML),
            ("mine.toml", "[telemetry]\nmax_spans = 5\n"),
        ])
        .expect_err("too small a store");
        assert!(
            err.to_string()
                .contains("telemetry.max_spans = 5: expected 100 to 10000000"),
            "{err}"
        );
    }

    /// A refusal names the layer that set the key, not the last one merged.
    #[test]
    fn a_refusal_names_the_layer_that_set_the_key() {
        let err = Config::from_layers(&[
            ("defaults", DEFAULTS_TOML),
            ("my.toml", "[traffic]\nrps = 5000000\n"),
            ("kv", "[retries]\nattempts = 2\n"),
        ])
        .expect_err("too many requests a second");
        assert!(err.to_string().contains("in my.toml"), "{err}");
    }

    /// A value of the wrong type is refused in words, with the key: not "expected u32".
    #[test]
    fn a_wrong_type_is_refused_in_words() {
        let refused = |text: &str| {
            Config::from_layers(&[("defaults", DEFAULTS_TOML), ("mine.toml", text)])
                .expect_err(text)
                .to_string()
        };
        let err = refused("[traffic]\nrps = -5\n");
        assert!(err.contains("rps"), "{err}");
        assert!(err.contains("a whole number from 0 to"), "{err}");
        assert!(!err.contains("u32"), "{err}");
        let err = refused("[traffic]\nrps = \"lots\"\n");
        assert!(err.contains("a whole number"), "{err}");
    }

    #[test]
    fn a_named_breaker_inherits_the_defaults_it_does_not_set() {
        let c = Config::from_layers(&[
            ("defaults", DEFAULTS_TOML),
            (
                "mine.toml",
                "[breaker.\"gateway->user-service\"]\nwindow = 40\n",
            ),
        ])
        .expect("valid");
        let b = &c.breaker["gateway->user-service"];
        assert_eq!(b.window, crate::breaker::WindowSize::Calls(40));
        assert_eq!(b.minimum_calls, c.breaker_defaults().minimum_calls);
        let err = Config::from_layers(&[
            ("defaults", DEFAULTS_TOML),
            (
                "mine.toml",
                "[breaker.\"a->b\"]\nfailure_rate_threshold = 150\n",
            ),
        ])
        .expect_err("out of range");
        assert!(
            err.to_string()
                .contains("breaker.\"a->b\".failure_rate_threshold = 150"),
            "{err}"
        );
    }
}
