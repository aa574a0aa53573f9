//! One module per tab that has its own view, and the overlays.

pub mod balancer;
pub mod breakers;
pub mod config;
pub mod filter;
pub mod inspector;
pub mod instance;
pub mod line;
pub mod logs;
pub mod metrics;
pub mod prompt;
pub mod rows;
pub mod services;
pub mod traces;
