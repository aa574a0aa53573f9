//! The admin API (axum, on the admin port) and its client: every command the dashboard and
//! `lgo-dash ctl` can give, over HTTP, so they work the same against a remote cluster.

mod api;
pub mod auth;
mod client;
mod command;

pub use api::router;
pub use client::{AdminClient, ConfigApplied, ConfigEntries};
pub use command::Command;

use serde::{Deserialize, Serialize};

/// A named URL the cluster listens on (`serve` prints these as `NAME URL`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub name: String,
    pub url: String,
    /// What is wrong with it, when something is (the shared store cannot be reached).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl Endpoint {
    pub fn new(name: impl Into<String>, url: impl Into<String>) -> Self {
        Endpoint {
            name: name.into(),
            url: url.into(),
            problem: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no instance \"{0}\" (see `lgo-dash ctl instances`)")]
    UnknownInstance(String),
    #[error(
        "instance \"{0}\" was registered from outside: lgo-dash can kill, restart or inject faults only into the instances it runs"
    )]
    NotManaged(String),
    #[error("cannot restart {id} on {addr}: {message}")]
    Restart {
        id: String,
        addr: String,
        message: String,
    },
    #[error("{0}")]
    Invalid(String),
    /// A value refused: the key, the value and what was expected.
    #[error("refused: {0}")]
    Refused(crate::config::Invalid),
    #[error("{0}")]
    NotFound(String),
    #[error("this view is read-only (a fixed snapshot): commands need a live cluster")]
    ReadOnly,
    #[error(
        "nothing answers at {url} ({message}): is `lgo-dash serve` running? (--admin URL or LGO_ADMIN)"
    )]
    Unreachable { url: String, message: String },
    #[error("admin API answered {status}: {message}")]
    Remote { status: u16, message: String },
}

impl From<crate::config::center::ChangeError> for ControlError {
    fn from(e: crate::config::center::ChangeError) -> Self {
        match e {
            crate::config::center::ChangeError::Refused(invalid) => ControlError::Refused(invalid),
            other => ControlError::Invalid(other.to_string()),
        }
    }
}

impl ControlError {
    pub fn status(&self) -> u16 {
        match self {
            ControlError::UnknownInstance(_) | ControlError::NotFound(_) => 404,
            ControlError::Invalid(_) | ControlError::Refused(_) => 400,
            ControlError::NotManaged(_) => 409,
            ControlError::Restart { .. } => 500,
            ControlError::ReadOnly => 405,
            ControlError::Unreachable { .. } => 502,
            ControlError::Remote { status, .. } => *status,
        }
    }
}
