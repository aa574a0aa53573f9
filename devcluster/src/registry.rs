//! The embedded service registry: instances, their health checks, discovery and change watches,
//! and the Consul-compatible HTTP API in front of it; shared with other processes through etcd
//! or a Consul agent when a team outgrows one machine ([`mirror::Store`], one per store).

mod checks;
pub mod consul;
pub mod consul_store;
pub mod etcd;
pub mod mirror;
mod model;
pub mod nacos;
pub mod shared;
mod store;

pub use model::{CheckKind, CheckSpec, CheckView, Health, InstanceView, Registration};
pub use store::{Registry, RegistryError};

use crate::config::kv::KvStore;

/// Where the registry lives: in this process alone, or shared with other processes through a
/// distributed store (`--registry`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Store {
    #[default]
    Embedded,
    /// An etcd member, `http://HOST:PORT`.
    Etcd { endpoint: String },
    /// A Consul agent, `http://HOST:PORT`.
    Consul { address: String },
}

impl Store {
    /// As the user writes it: `embedded`, `etcd://HOST:PORT`.
    pub fn url(&self) -> String {
        match self {
            Store::Embedded => "embedded".into(),
            Store::Etcd { endpoint } => {
                format!("etcd://{}", endpoint.trim_start_matches("http://"))
            }
            Store::Consul { address } => {
                format!("consul://{}", address.trim_start_matches("http://"))
            }
        }
    }

    /// Starts mirroring `registry` (and the config center's `kv` keys) through this store, as
    /// `owner`; `None` for the embedded registry.
    pub fn mirror(&self, registry: &Registry, kv: Option<KvStore>, owner: &str) -> Option<Mirror> {
        match self {
            Store::Embedded => None,
            Store::Etcd { endpoint } => Some(Mirror::Etcd(etcd::EtcdMirror::start(
                registry.clone(),
                kv,
                owner,
                etcd::EtcdOptions::new(endpoint.clone()),
            ))),
            Store::Consul { address } => Some(Mirror::Consul(consul_store::ConsulMirror::start(
                registry.clone(),
                kv,
                owner,
                consul_store::ConsulOptions::new(address.clone()),
            ))),
        }
    }
}

/// A registry mirrored through a shared store: one [`mirror::Mirror`] over the store chosen.
pub enum Mirror {
    Etcd(etcd::EtcdMirror),
    Consul(consul_store::ConsulMirror),
}

impl Mirror {
    pub fn link(&self) -> mirror::Link {
        match self {
            Mirror::Etcd(m) => m.link(),
            Mirror::Consul(m) => m.link(),
        }
    }

    /// Stops mirroring and withdraws this process's instances from the store.
    pub async fn stop(self) {
        match self {
            Mirror::Etcd(m) => m.stop().await,
            Mirror::Consul(m) => m.stop().await,
        }
    }
}

/// `HOST:PORT` after `SCHEME://`, as the `http://HOST:PORT` a client connects to.
fn host_port(scheme: &str, rest: &str, port: u16) -> Result<String, String> {
    let addr = rest.trim_end_matches('/');
    let example = format!("expected {scheme}://HOST:PORT, e.g. {scheme}://127.0.0.1:{port}");
    match addr.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok() => Ok(format!("http://{addr}")),
        // Digits, but no port: say which.
        Some((h, p)) if !h.is_empty() && !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            Err(format!(
                "{scheme}://{rest}: port {p} is out of range (1 to 65535); {example}"
            ))
        }
        _ => Err(format!("{scheme}://{rest}: {example}")),
    }
}

impl std::str::FromStr for Store {
    type Err = String;

    fn from_str(s: &str) -> Result<Store, String> {
        let s = s.trim();
        if s == "embedded" {
            return Ok(Store::Embedded);
        }
        if let Some(rest) = s.strip_prefix("etcd://") {
            return Ok(Store::Etcd {
                endpoint: host_port("etcd", rest, 2379)?,
            });
        }
        if let Some(rest) = s.strip_prefix("consul://") {
            return Ok(Store::Consul {
                address: host_port("consul", rest, 8500)?,
            });
        }
        Err(format!(
            "{s:?}: expected embedded, etcd://HOST:PORT or consul://HOST:PORT"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::Store;

    #[test]
    fn a_store_is_read_or_refused_with_what_is_wrong() {
        assert_eq!(
            "etcd://127.0.0.1:2379".parse::<Store>(),
            Ok(Store::Etcd {
                endpoint: "http://127.0.0.1:2379".into()
            })
        );
        let out_of_range = "etcd://127.0.0.1:99999".parse::<Store>().unwrap_err();
        assert!(
            out_of_range.contains("port 99999 is out of range"),
            "{out_of_range}"
        );
        let no_port = "consul://127.0.0.1".parse::<Store>().unwrap_err();
        assert!(no_port.contains("expected consul://HOST:PORT"), "{no_port}");
    }
}
