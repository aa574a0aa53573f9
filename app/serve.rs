//! `lgo-dash serve`: the cluster without a terminal. Prints `NAME URL` per endpoint and `ready`;
//! SIGINT or SIGTERM deregisters the instances, drains, and exits 0.

use crate::cli::ClusterArgs;
use devcluster::Cluster;
use std::io::Write;
use std::process::ExitCode;

pub fn run(args: &ClusterArgs) -> anyhow::Result<ExitCode> {
    init_logging();
    let opts = args.cluster_options()?;
    let rt = crate::runtime()?;
    rt.block_on(async {
        let cluster = Cluster::start(opts).await?;
        let mut out = std::io::stdout().lock();
        for e in cluster.endpoints() {
            writeln!(out, "{} {}", e.name, e.url)?;
        }
        writeln!(out, "ready")?;
        out.flush()?;
        drop(out);
        wait_for_stop_signal().await?;
        tracing::info!("stop signal received: deregistering and draining");
        cluster.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}

async fn wait_for_stop_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}

/// Logs go to stderr so stdout stays the machine-readable endpoint list. The log filter is
/// the fmt layer's alone: spans reach the trace store whatever `LGO_LOG` says.
fn init_logging() {
    use tracing_subscriber::Layer;
    use tracing_subscriber::filter::{FilterExt, filter_fn};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_env(crate::ENV_LOG)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // The log lines are events; letting the fmt layer see spans too would make it format
    // every request's span fields, which costs more than the request.
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(filter.and(filter_fn(|m| m.is_event()))),
        )
        .with(devcluster::telemetry::layer())
        .try_init();
}
