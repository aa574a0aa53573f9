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
