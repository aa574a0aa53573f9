//! The part of Consul's HTTP API that real clients use, served from the embedded registry:
//! agent registration and TTL updates, catalog and health reads with blocking queries.

mod api;
mod blocking;
mod wire;

pub use api::router;
pub use wire::{parse_registration, service_entry_json};
