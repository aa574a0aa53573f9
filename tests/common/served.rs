//! `lgo-dash serve` as a child process of a test: its endpoints as printed (`NAME URL` lines
//! until `ready`). Shared by `serve_e2e.rs` and `shared_registry.rs` (included by path).

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const BIN: &str = env!("CARGO_BIN_EXE_lgo-dash");

pub struct Served {
    pub child: Child,
    pub endpoints: Vec<(String, String)>,
}

impl Served {
    pub fn url(&self, name: &str) -> String {
        self.endpoints
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, u)| u.clone())
            .unwrap_or_else(|| panic!("serve printed no `{name}` endpoint: {:?}", self.endpoints))
    }
}

/// Runs `lgo-dash ARGS` (killed when dropped) with `env` and waits for `ready`.
pub async fn start(args: &[&str], env: &[(&str, &str)]) -> Served {
    let mut child = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .env("LGO_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("run lgo-dash serve");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut endpoints = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line == "ready" {
                return true;
            }
            let (name, url) = line
                .split_once(' ')
                .unwrap_or_else(|| panic!("not `NAME URL`: {line:?}"));
            endpoints.push((name.to_string(), url.to_string()));
        }
        false
    })
    .await;
    assert_eq!(read, Ok(true), "serve printed `ready`");
    Served { child, endpoints }
}
