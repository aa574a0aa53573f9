//! The embedded service registry: instances, their health checks, discovery and change watches,
//! and the Consul-compatible HTTP API in front of it.

mod checks;
pub mod consul;
mod model;
mod store;

pub use model::{CheckKind, CheckSpec, CheckView, Health, InstanceView, Registration};
pub use store::{Registry, RegistryError};
