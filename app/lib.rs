//! lgo-dash: a terminal dashboard over an embedded microservice dev cluster, plus `serve`
//! (the cluster without a terminal) and `ctl` (scripting it over the admin API).

pub mod cli;
pub mod ctl;
pub mod dashboard;
pub mod serve;

use clap::Parser;
use std::process::ExitCode;

/// Environment variable naming the admin API for `ctl` (and the default of `--admin`).
pub const ENV_ADMIN: &str = "LGO_ADMIN";
/// Log filter (tracing's EnvFilter syntax), e.g. `LGO_LOG=debug`.
pub const ENV_LOG: &str = "LGO_LOG";

pub fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let result = match args.command.clone() {
        Some(cli::Command::Serve(after)) => serve::run(&args.cluster.then(&after)),
        Some(cli::Command::Ctl(ctl)) => ctl::run(&ctl),
        None => dashboard::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lgo-dash: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Worker threads: two are enough for a dev cluster on a laptop, and never more than the CPUs
/// the process may run on (`taskset`, a container's quota): two workers on one CPU only hand
/// work back and forth, each waking the other.
fn workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().min(2))
}

/// A multi-threaded runtime; two workers are enough for a dev cluster on a laptop.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers())
        .enable_all()
        .build()?)
}
