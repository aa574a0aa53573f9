//! The command line, as DESIGN.md fixes it (tests and scripts rely on these names).

use clap::{Args, Parser, Subcommand, ValueEnum};
use devcluster::config::Config;
use std::path::PathBuf;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "lgo-dash",
    version,
    about = "A terminal dashboard with an embedded microservice dev cluster"
)]
pub struct Cli {
    /// A TOML file whose keys override the defaults (assets/lgo.toml).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// The environment (also LGO_ENV, then ENVIRONMENT).
    #[arg(
        long,
        global = true,
        value_name = "NAME",
        env = "LGO_ENV",
        default_value = "development"
    )]
    pub env: String,
    /// `auto`: take free ports instead of the defaults (8500, 9900, 8081-8083, 8091-8092).
    #[arg(long, global = true, value_name = "MODE")]
    pub ports: Option<PortsMode>,
    /// Start without the traffic generator.
    #[arg(long, global = true)]
    pub no_traffic: bool,
    /// Show a cluster that runs elsewhere (its admin URL) instead of starting one.
    #[arg(long, value_name = "URL")]
    pub attach: Option<String>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PortsMode {
    Auto,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run the cluster without a terminal: prints `NAME URL` per endpoint, then `ready`.
    Serve,
    /// Script a running cluster through its admin API.
    Ctl(CtlArgs),
}

#[derive(Debug, Clone, Args)]
pub struct CtlArgs {
    /// The admin API of the cluster.
    #[arg(long, env = crate::ENV_ADMIN, default_value = "http://127.0.0.1:9900", value_name = "URL")]
    pub admin: String,
    #[command(subcommand)]
    pub command: CtlCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum CtlCommand {
    /// List every instance with its health.
    Instances {
        #[arg(long)]
        json: bool,
    },
    /// Stop an instance like a crash (port closed, still registered): health checks must notice.
    Kill { id: String },
    /// Bring a killed instance back on its port.
    Restart { id: String },
}

impl Cli {
    /// The environment name: `--env`/`LGO_ENV`, else `ENVIRONMENT` (the framework's variable).
    pub fn environment(&self) -> String {
        if self.env == "development"
            && std::env::var_os("LGO_ENV").is_none()
            && let Ok(e) = std::env::var("ENVIRONMENT")
            && !e.is_empty()
        {
            return e;
        }
        self.env.clone()
    }

    pub fn load_config(&self) -> anyhow::Result<Config> {
        Ok(Config::load(self.config.as_deref())?)
    }

    pub fn cluster_options(&self) -> anyhow::Result<devcluster::cluster::ClusterOptions> {
        Ok(
            devcluster::cluster::ClusterOptions::new(self.load_config()?)
                .auto_ports(self.ports == Some(PortsMode::Auto)),
        )
    }
}
