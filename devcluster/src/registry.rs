//! The embedded service registry: instances, their health checks, discovery and change watches,
//! and the Consul-compatible HTTP API in front of it; shared with other processes through etcd
//! when a team outgrows one machine.

mod checks;
pub mod consul;
pub mod etcd;
mod model;
pub mod shared;
mod store;

pub use model::{CheckKind, CheckSpec, CheckView, Health, InstanceView, Registration};
pub use store::{Registry, RegistryError};

/// Where the registry lives: in this process alone, or shared with other processes through a
/// distributed store (`--registry`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Store {
    #[default]
    Embedded,
    /// An etcd member, `http://HOST:PORT`.
    Etcd { endpoint: String },
}

impl Store {
    /// As the user writes it: `embedded`, `etcd://HOST:PORT`.
    pub fn url(&self) -> String {
        match self {
            Store::Embedded => "embedded".into(),
            Store::Etcd { endpoint } => {
                format!("etcd://{}", endpoint.trim_start_matches("http://"))
            }
        }
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
            let addr = rest.trim_end_matches('/');
            let ok = addr
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
            if !ok {
                return Err(format!(
                    "etcd://{rest}: expected etcd://HOST:PORT, e.g. etcd://127.0.0.1:2379"
                ));
            }
            return Ok(Store::Etcd {
                endpoint: format!("http://{addr}"),
            });
        }
        if s.starts_with("consul://") {
            return Err(format!(
                "{s}: the Consul backend is not built yet; use etcd://HOST:PORT or embedded"
            ));
        }
        Err(format!(
            "{s:?}: expected embedded, etcd://HOST:PORT or consul://HOST:PORT"
        ))
    }
}
