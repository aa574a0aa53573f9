//! What the registry holds: registrations as given, and the views it hands out.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Health of a check or of an instance (the worst of its checks), with Consul's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Passing,
    Warning,
    Critical,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Passing => "passing",
            Health::Warning => "warning",
            Health::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Health> {
        match s.to_ascii_lowercase().as_str() {
            "passing" => Some(Health::Passing),
            "warning" => Some(Health::Warning),
            "critical" => Some(Health::Critical),
            _ => None,
        }
    }
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a check decides its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    /// `method` `url` every `interval`: 2xx passing, 429 warning, anything else critical.
    Http {
        url: String,
        method: String,
        interval: Duration,
        timeout: Duration,
        headers: Vec<(String, String)>,
        /// Sent with each probe (Consul's `Body`).
        body: String,
    },
    /// Connects to `addr` (`host:port`) every `interval`: connected passing, else critical.
    Tcp {
        addr: String,
        interval: Duration,
        timeout: Duration,
    },
    /// Critical unless refreshed (pass/warn/fail) within `ttl`.
    Ttl { ttl: Duration },
    /// Calls the standard `grpc.health.v1.Health/Check` on `addr` (`host:port`) every
    /// `interval`, for `service` (empty: the server as a whole), over plaintext HTTP/2:
    /// SERVING is passing, anything else critical.
    Grpc {
        addr: String,
        service: String,
        interval: Duration,
        timeout: Duration,
    },
    /// An instance of another process, read from a shared store (etcd): its owner runs the
    /// check (`kind`, as the owner describes it: `definition`) and publishes the result; here
    /// it only changes when the store says so.
    Shared {
        owner: String,
        kind: String,
        definition: String,
    },
}

impl CheckKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            CheckKind::Http { .. } => "http",
            CheckKind::Ttl { .. } => "ttl",
            CheckKind::Tcp { .. } => "tcp",
            CheckKind::Grpc { .. } => "grpc",
            CheckKind::Shared { .. } => "shared",
        }
    }

    /// Consul's `GRPC` field: `host:port`, or `host:port/service`.
    pub fn grpc_target(addr: &str, service: &str) -> String {
        if service.is_empty() {
            addr.to_string()
        } else {
            format!("{addr}/{service}")
        }
    }
}

/// One check as registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSpec {
    /// Empty means "derive it": `service:<id>` (or `service:<id>:<n>` with several checks).
    pub id: String,
    pub name: String,
    pub kind: CheckKind,
    pub initial: Option<Health>,
    pub notes: String,
    pub deregister_critical_after: Option<Duration>,
}

/// A service instance as registered, in-process or through the Consul API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registration {
    pub id: String,
    pub name: String,
    pub address: String,
    pub port: u16,
    pub tags: Vec<String>,
    pub meta: BTreeMap<String, String>,
    /// Consul's `Weights.Passing`; the balancer weight also reads `meta.weight`.
    pub weight_passing: u32,
    pub weight_warning: u32,
    /// Consul's `EnableTagOverride`: kept and reported (anti-entropy, what it steers, has no
    /// counterpart in one process).
    pub enable_tag_override: bool,
    pub checks: Vec<CheckSpec>,
    /// The API it came through: `consul` or `nacos` for a service outside the cluster; empty
    /// for the cluster's own instances.
    pub via: String,
}

/// A check as the registry reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckView {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub status: Health,
    pub output: String,
    pub notes: String,
    /// HTTP URL or TTL, for display.
    pub definition: String,
    /// Consul's `Definition` fields (`HTTP`, `Interval`, `TTL`, …) with their values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spec: Vec<(String, String)>,
    pub create_index: u64,
    pub modify_index: u64,
}

/// An instance as the registry reports it, health included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceView {
    pub id: String,
    pub service: String,
    pub version: String,
    pub address: String,
    pub port: u16,
    pub tags: Vec<String>,
    pub meta: BTreeMap<String, String>,
    /// Balancer weight: `meta.weight` when it parses, else Consul's `Weights.Passing`.
    pub weight: u32,
    pub weight_warning: u32,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enable_tag_override: bool,
    pub protocol: String,
    pub health_path: String,
    pub health: Health,
    pub checks: Vec<CheckView>,
    pub create_index: u64,
    pub modify_index: u64,
    /// The API it was registered through (see [`Registration::via`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub via: String,
}

impl InstanceView {
    /// Where the instance answers, as a user would call it: `http://host:port`, or
    /// `grpc://host:port` for one registered with `protocol=grpc`.
    pub fn base_url(&self) -> String {
        let scheme = if self.protocol == "grpc" {
            "grpc"
        } else {
            "http"
        };
        format!("{scheme}://{}:{}", self.address, self.port)
    }
}
