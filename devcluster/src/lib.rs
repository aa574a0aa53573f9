//! The lgo-dash dev cluster: an embedded service registry with a Consul-compatible HTTP API, sample
//! services, and the admin API that the dashboard and `lgo-dash ctl` drive. No terminal code lives here.

pub mod balance;
pub mod breaker;
pub mod client;
pub mod cluster;
pub mod config;
pub mod control;
pub mod duration;
pub mod gateway;
pub mod handle;
pub mod proto;
pub mod registry;
pub mod server;
pub mod services;
pub mod telemetry;

pub use cluster::{Cluster, ClusterError};
pub use config::Config;
pub use handle::ClusterHandle;
