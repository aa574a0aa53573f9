//! The terminal dashboard: starts (or attaches to) a cluster and shows it tab by tab.
//! The UI only reads snapshots from a `ClusterHandle`; it never awaits the cluster while drawing.

pub mod action;
pub mod app;
mod crash;
mod event_loop;
pub mod keymap;
pub mod palette;
pub mod render;
pub mod tabs;
mod tty;
pub mod views;

use crate::cli::Cli;
use devcluster::control::AdminClient;
use devcluster::{Cluster, ClusterHandle};
use std::process::ExitCode;

pub fn run(args: &Cli) -> anyhow::Result<ExitCode> {
    let rt = crate::runtime()?;
    let env = args.cluster.environment();
    // A bad keymap file is said before the terminal is taken over.
    let keymap = keymap::Keymap::load(args.keymap.as_deref())?;
    rt.block_on(async {
        if let Some(path) = &args.open {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            let spans = devcluster::telemetry::export::read_otlp_json(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            let handle = ClusterHandle::offline(spans);
            let title = format!("offline · {}", path.display());
            event_loop::run_on(
                handle,
                app::Header { mode: title, env },
                keymap,
                tabs::Tab::Traces,
            )
            .await?;
            return Ok(ExitCode::SUCCESS);
        }
        match &args.attach {
            Some(url) => {
                let handle = ClusterHandle::remote(AdminClient::new(url));
                let title = "attached".to_string();
                event_loop::run(handle, app::Header { mode: title, env }, keymap).await?;
            }
            None => {
                let cluster = Cluster::start(args.cluster.cluster_options()?).await?;
                let title = "embedded cluster".to_string();
                let result =
                    event_loop::run(cluster.handle(), app::Header { mode: title, env }, keymap)
                        .await;
                cluster.shutdown().await;
                result?;
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests;
