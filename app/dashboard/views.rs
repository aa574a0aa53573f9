//! One module per tab that has its own view.

pub mod services;
