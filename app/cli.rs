//! The command line, as DESIGN.md fixes it (tests and scripts rely on these names).

use clap::{Args, Parser, Subcommand, ValueEnum};
use devcluster::config::Config;
use devcluster::registry::Store;
use std::path::PathBuf;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "lgo-dash",
    version,
    about = "A terminal dashboard with an embedded microservice dev cluster"
)]
pub struct Cli {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Show a cluster that runs elsewhere (its admin URL; `http://` may be left out) instead of
    /// starting one.
    #[arg(long, value_name = "URL", conflicts_with = "open", value_parser = admin_url)]
    pub attach: Option<String>,
    /// Browse traces from an OTLP/JSON file (`ctl traces export`) without a cluster.
    #[arg(long, value_name = "FILE")]
    pub open: Option<PathBuf>,
    /// Keys over the built-in ones (assets/keymap.toml); default ~/.config/lgo-dash/keymap.toml
    /// when it exists.
    #[arg(long, value_name = "FILE")]
    pub keymap: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// How the cluster starts: for the dashboard and `serve` (before or after `serve`), not `ctl`.
#[derive(Debug, Clone, Default, Args)]
pub struct ClusterArgs {
    /// A TOML file whose keys override the defaults (assets/lgo.toml).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// The environment (also LGO_ENV, then ENVIRONMENT).
    #[arg(
        long,
        value_name = "NAME",
        env = "LGO_ENV",
        default_value = DEFAULT_ENV
    )]
    pub env: String,
    /// `auto`: take free ports instead of the defaults (registry 8500, admin 9900, gateway 8080,
    /// user-service 8081 on, its gRPC 50051 on, order-service 8091 on, OTLP 4317 and 4318, Nacos
    /// 8848; `ports.*` in the config file moves one).
    #[arg(long, value_name = "MODE")]
    pub ports: Option<PortsMode>,
    /// Start without the traffic generator.
    #[arg(long)]
    pub no_traffic: bool,
    /// Where the registry lives: `embedded` (this process alone), or `etcd://HOST:PORT` /
    /// `consul://HOST:PORT` to share it with every lgo-dash (and service) on that store.
    #[arg(long, value_name = "STORE", default_value = "embedded", value_parser = store)]
    pub registry: Store,
    /// Listen on ADDR instead of 127.0.0.1 (every port). Beyond this machine it needs an admin
    /// token in LGO_ADMIN_TOKEN, which the admin API, registry writes and KV writes then require.
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<std::net::IpAddr>,
}

fn store(s: &str) -> Result<Store, String> {
    s.parse()
}

const DEFAULT_ENV: &str = "development";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PortsMode {
    Auto,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run the cluster without a terminal: prints `NAME URL` per endpoint, then `ready`.
    Serve(ClusterArgs),
    /// Script a running cluster through its admin API.
    Ctl(CtlArgs),
}

#[derive(Debug, Clone, Args)]
pub struct CtlArgs {
    /// The admin API of the cluster (`http://` may be left out). Before or after the command.
    #[arg(
        long,
        global = true,
        env = crate::ENV_ADMIN,
        default_value = "http://127.0.0.1:9900",
        value_name = "URL",
        value_parser = admin_url
    )]
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
    Kill {
        id: String,
        /// Restart by itself after this many seconds.
        #[arg(long = "for", value_name = "SECONDS")]
        for_s: Option<u64>,
    },
    /// Bring a killed instance back on its port.
    Restart { id: String },
    /// Every circuit breaker: state, mode, failure rate, calls.
    Breakers {
        #[arg(long)]
        json: bool,
    },
    /// Force a breaker open or closed, or give it back to its thresholds (auto).
    Breaker {
        /// CALLER->TARGET, e.g. gateway->user-service
        name: String,
        #[arg(value_parser = ["open", "closed", "auto"])]
        mode: String,
    },
    /// Each target service's balancer: strategy and share of picks per instance.
    Balancers {
        #[arg(long)]
        json: bool,
    },
    /// Switch a service's balancing strategy.
    Strategy {
        service: String,
        /// round_robin | random | weighted | least_request | p2c | consistent_hash
        strategy: String,
    },
    /// Set an instance's balancer weight.
    Weight { id: String, weight: u32 },
    /// Inject a fault into an instance (`fault ID clear` removes it).
    Fault {
        id: String,
        /// `clear` to remove the instance's fault.
        #[arg(value_parser = ["clear"])]
        clear: Option<String>,
        /// Added latency in milliseconds.
        #[arg(long, value_name = "MS", default_value_t = 0)]
        latency: u64,
        /// Random extra latency, 0 to MS.
        #[arg(long, value_name = "MS", default_value_t = 0)]
        jitter: u64,
        /// Share of requests answered 500, 0.0 to 1.0.
        #[arg(long, value_name = "R", default_value_t = 0.0)]
        error_rate: f64,
        /// Never answer (health checks included).
        #[arg(long)]
        hang: bool,
        /// Revert by itself after this many seconds.
        #[arg(long = "for", value_name = "SECONDS")]
        for_s: Option<u64>,
    },
    /// Set the traffic generator's rate (0 pauses it).
    Traffic { rps: u32 },
    /// Requests per second, errors and latency percentiles per service and instance; the
    /// process's and host's CPU and memory.
    Metrics {
        #[arg(long)]
        json: bool,
    },
    /// Recent log lines, oldest first: level, service, message, fields, trace.
    Logs {
        /// Minimum level: trace, debug, info, warn, error, fatal.
        #[arg(long, default_value = "info")]
        level: String,
        #[arg(long)]
        service: Option<String>,
        /// Only lines of this trace.
        #[arg(long)]
        trace: Option<String>,
        /// Only lines logged under this span (16 hex digits).
        #[arg(long)]
        span: Option<String>,
        /// Only lines whose message or fields contain this text.
        #[arg(long)]
        grep: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Recent traces, newest first: root operation, services, spans, duration, errors.
    Traces {
        #[command(subcommand)]
        command: Option<TracesCommand>,
        /// Only traces through this service.
        #[arg(long)]
        service: Option<String>,
        /// Only traces with a span whose operation contains this text.
        #[arg(long)]
        operation: Option<String>,
        /// Only traces at least this long.
        #[arg(long, value_name = "MS")]
        min_ms: Option<f64>,
        /// Only traces with an error.
        #[arg(long)]
        errors: bool,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// One trace as a waterfall (its spans, nested, on a time axis).
    Trace {
        /// The trace id (32 hex digits, or the framework's 16).
        id: String,
        /// Width of the waterfall in columns.
        #[arg(long, default_value_t = 120)]
        width: u16,
        #[arg(long)]
        json: bool,
    },
    /// The gateway's route table, step by step.
    Route {
        #[command(subcommand)]
        command: RouteCommand,
    },
    /// The live config: read a key, set one (checked, applied at once), history and undo.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum ConfigCommand {
    /// Every key with its value and the layer it comes from.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One key's value and origin (`traffic.rps`, `breaker.gateway->user-service.window`).
    Get {
        key: String,
        #[arg(long)]
        json: bool,
    },
    /// Sets a key: a TOML literal (`40`, `true`, `"x"`) or a bare word (`p2c`). Refused with
    /// the reason when the config would not be valid; the live one then stays.
    Set { key: String, value: String },
    /// Removes a key's override: the value from the file or the defaults takes over again.
    Unset { key: String },
    /// Every change: version, when, who, key, old → new.
    History {
        #[arg(long)]
        json: bool,
    },
    /// Undoes the newest change.
    Undo,
    /// Shows what switching to environment NAME would change; `--yes` switches.
    Env {
        name: String,
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum TracesCommand {
    /// Write the traces (spans and all) to a file any OTLP tool reads; `lgo-dash --open FILE`
    /// browses it offline.
    Export {
        #[arg(long, value_parser = ["otlp-json"], default_value = "otlp-json")]
        format: String,
        /// Where to write; standard output when absent.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Only traces through this service.
        #[arg(long)]
        service: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum RouteCommand {
    /// Which route, rewritten path, service, candidates, balancer choice and breaker decision.
    Explain {
        method: String,
        path: String,
        #[arg(long)]
        json: bool,
    },
}

/// An admin URL as given, `http://` added when no scheme is: `localhost:9900` works.
pub fn admin_url(given: &str) -> Result<String, String> {
    let url = if given.contains("://") {
        given.to_string()
    } else {
        format!("http://{given}")
    };
    match reqwest::Url::parse(&url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
            Ok(url.trim_end_matches('/').to_string())
        }
        _ => Err(format!(
            "expected the admin API's URL, like http://127.0.0.1:9900 or localhost:9900, got {given:?}"
        )),
    }
}

impl ClusterArgs {
    /// These, with what was given after `serve` taking precedence over what came before it.
    pub fn then(&self, after: &ClusterArgs) -> ClusterArgs {
        ClusterArgs {
            config: after.config.clone().or_else(|| self.config.clone()),
            env: if after.env != DEFAULT_ENV {
                after.env.clone()
            } else {
                self.env.clone()
            },
            ports: after.ports.or(self.ports),
            no_traffic: self.no_traffic || after.no_traffic,
            registry: if after.registry != Store::Embedded {
                after.registry.clone()
            } else {
                self.registry.clone()
            },
            bind: after.bind.or(self.bind),
        }
    }

    /// The environment name: `--env`/`LGO_ENV`, else `ENVIRONMENT` (the framework's variable).
    pub fn environment(&self) -> String {
        if self.env == DEFAULT_ENV
            && std::env::var_os("LGO_ENV").is_none()
            && let Ok(e) = std::env::var("ENVIRONMENT")
            && !e.is_empty()
        {
            return e;
        }
        self.env.clone()
    }

    pub fn cluster_options(&self) -> anyhow::Result<devcluster::cluster::ClusterOptions> {
        let token = devcluster::control::auth::Token::from_env();
        let bind = self
            .bind
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
        if !bind.is_loopback() && token.is_none() {
            anyhow::bail!(
                "--bind {bind} would let other machines reach the admin API and change the registry: \
                 set an admin token in {} first (the admin API, registry writes and KV writes then \
                 require it; ctl and --attach send it)",
                devcluster::control::auth::TOKEN_ENV
            );
        }
        let layers = Config::base_layers(
            &self.environment(),
            self.config.as_deref(),
            std::env::vars(),
        )?;
        let effective = devcluster::config::Effective::of(&layers)?;
        Ok(devcluster::cluster::ClusterOptions::new(effective.config)
            .layers(layers)
            .config_file(self.config.clone())
            .auto_ports(self.ports == Some(PortsMode::Auto))
            .traffic(!self.no_traffic)
            .store(self.registry.clone())
            .bind(bind)
            .admin_token(token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("lgo-dash").chain(args.iter().copied()))
    }

    fn admin(args: &[&str]) -> String {
        match parse(args).unwrap().command {
            Some(Command::Ctl(c)) => c.admin,
            other => panic!("{other:?}"),
        }
    }

    /// `--admin` goes before or after the command, and `http://` may be left out.
    #[test]
    fn ctl_takes_admin_anywhere_with_or_without_a_scheme() {
        assert_eq!(
            admin(&["ctl", "instances", "--admin", "http://127.0.0.1:7000"]),
            "http://127.0.0.1:7000"
        );
        assert_eq!(
            admin(&["ctl", "--admin", "localhost:7000", "instances"]),
            "http://localhost:7000"
        );
        let e = parse(&["ctl", "--admin", "not a url", "instances"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("like http://127.0.0.1:9900"), "{e}");
    }

    /// The cluster's flags mean nothing to `ctl`: refused there, and not in its help.
    /// `--registry` names its store, before or after `serve`; a malformed or unknown one is
    /// refused with what is expected.
    #[test]
    fn registry_takes_etcd_and_explains_the_rest() {
        let store = |args: &[&str]| -> Result<Store, String> {
            let cli = parse(args).map_err(|e| e.to_string())?;
            Ok(match cli.command {
                Some(Command::Serve(after)) => cli.cluster.then(&after).registry,
                _ => cli.cluster.registry,
            })
        };
        assert_eq!(store(&[]), Ok(Store::Embedded));
        let etcd = Store::Etcd {
            endpoint: "http://127.0.0.1:2379".into(),
        };
        assert_eq!(
            store(&["--registry", "etcd://127.0.0.1:2379"]),
            Ok(etcd.clone())
        );
        assert_eq!(
            store(&["serve", "--registry", "etcd://127.0.0.1:2379"]),
            Ok(etcd.clone())
        );
        assert_eq!(etcd.url(), "etcd://127.0.0.1:2379");
        assert_eq!(
            store(&["--registry", "consul://127.0.0.1:8500"]),
            Ok(Store::Consul {
                address: "http://127.0.0.1:8500".into()
            })
        );
        let consul = store(&["--registry", "consul://"]).unwrap_err();
        assert!(consul.contains("consul://HOST:PORT"), "{consul}");
        let bad = store(&["--registry", "etcd://nowhere"]).unwrap_err();
        assert!(bad.contains("etcd://HOST:PORT"), "{bad}");
        let other = store(&["--registry", "zookeeper://x:1"]).unwrap_err();
        assert!(other.contains("expected embedded"), "{other}");
    }

    #[test]
    fn ctl_has_no_cluster_flags() {
        assert!(parse(&["ctl", "--ports", "auto", "instances"]).is_err());
        let help = parse(&["ctl", "--help"]).unwrap_err().to_string();
        assert!(help.contains("--admin"), "{help}");
        for flag in ["--ports", "--no-traffic", "--config", "--env"] {
            assert!(!help.contains(flag), "{flag} in ctl's help:\n{help}");
        }
    }

    /// `serve` takes the cluster's flags after it or before it.
    #[test]
    fn serve_takes_the_cluster_flags_before_or_after_it() {
        for args in [
            &[
                "serve",
                "--ports",
                "auto",
                "--no-traffic",
                "--env",
                "staging",
            ][..],
            &[
                "--ports",
                "auto",
                "--no-traffic",
                "--env",
                "staging",
                "serve",
            ],
            &[
                "--ports",
                "auto",
                "serve",
                "--no-traffic",
                "--env",
                "staging",
            ],
        ] {
            let cli = parse(args).unwrap();
            let Some(Command::Serve(after)) = &cli.command else {
                panic!("{args:?}")
            };
            let c = cli.cluster.then(after);
            assert_eq!(
                (c.ports, c.no_traffic, c.env.as_str()),
                (Some(PortsMode::Auto), true, "staging"),
                "{args:?}"
            );
        }
    }
}
