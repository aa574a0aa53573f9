//! The part of Consul's HTTP API that real clients use, served from the embedded registry:
//! agent registration and TTL updates, catalog and health reads with blocking queries, and the
//! config center's KV store.

mod api;
mod blocking;
mod filter;
mod kv;
mod wire;

pub use api::router;
pub use wire::{parse_registration, service_entry_json};
