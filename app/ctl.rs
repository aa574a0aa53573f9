//! `lgo-dash ctl`: one command per admin API call, human tables by default, `--json` for scripts.

use crate::cli::{CtlArgs, CtlCommand, RouteCommand};
use devcluster::balance::service::BalancerSnapshot;
use devcluster::breaker::{BreakerSnapshot, Mode};
use devcluster::cluster::RouteExplain;
use devcluster::control::{AdminClient, Command};
use devcluster::handle::InstanceSnapshot;
use devcluster::services::faults::Fault;
use std::fmt::Write as _;
use std::process::ExitCode;

pub fn run(args: &CtlArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = AdminClient::new(&args.admin);
    rt.block_on(async {
        let command = match &args.command {
            CtlCommand::Instances { json } => {
                let list = client.instances().await?;
                print_or_json(*json, list.as_slice(), instances_table)?;
                return Ok(ExitCode::SUCCESS);
            }
            CtlCommand::Breakers { json } => {
                let list = client.breakers().await?;
                print_or_json(*json, list.as_slice(), breakers_table)?;
                return Ok(ExitCode::SUCCESS);
            }
            CtlCommand::Balancers { json } => {
                let list = client.balancers().await?;
                print_or_json(*json, list.as_slice(), balancers_table)?;
                return Ok(ExitCode::SUCCESS);
            }
            CtlCommand::Route {
                command: RouteCommand::Explain { method, path, json },
            } => {
                let e = client.explain(method, path).await?;
                print_or_json(*json, &e, explain_text)?;
                return Ok(ExitCode::SUCCESS);
            }
            CtlCommand::Kill { id, for_s } => Command::Kill {
                id: id.clone(),
                for_s: *for_s,
            },
            CtlCommand::Restart { id } => Command::Restart { id: id.clone() },
            CtlCommand::Breaker { name, mode } => Command::BreakerMode {
                name: name.clone(),
                mode: mode.parse::<Mode>().map_err(anyhow::Error::msg)?,
            },
            CtlCommand::Strategy { service, strategy } => Command::Strategy {
                service: service.clone(),
                strategy: strategy.parse().map_err(anyhow::Error::msg)?,
            },
            CtlCommand::Weight { id, weight } => Command::Weight {
                id: id.clone(),
                weight: *weight,
            },
            CtlCommand::Fault {
                id, clear: Some(_), ..
            } => Command::ClearFault { id: id.clone() },
            CtlCommand::Fault {
                id,
                clear: None,
                latency,
                jitter,
                error_rate,
                hang,
                for_s,
            } => Command::Fault {
                id: id.clone(),
                fault: Fault {
                    latency_ms: *latency,
                    jitter_ms: *jitter,
                    error_rate: *error_rate,
                    hang: *hang,
                },
                for_s: *for_s,
            },
            CtlCommand::Traffic { rps } => Command::Traffic { rps: *rps },
        };
        println!("{}", client.send(&command).await?);
        Ok(ExitCode::SUCCESS)
    })
}

fn print_or_json<T: serde::Serialize + ?Sized>(
    json: bool,
    v: &T,
    text: impl Fn(&T) -> String,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(v)?);
    } else {
        print!("{}", text(v));
    }
    Ok(())
}

/// Aligned columns, two spaces apart.
fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(str::len);
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            let _ = write!(l, "{c:<w$}  ", w = widths[i]);
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}

fn json_str<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|p| p.as_str().map(str::to_string))
        .unwrap_or_default()
}

pub fn instances_table(list: &[InstanceSnapshot]) -> String {
    let rows: Vec<[String; 8]> = list
        .iter()
        .map(|i| {
            let v = &i.view;
            let mut notes = Vec::new();
            if let Some(f) = &i.fault {
                notes.push(format!(
                    "fault +{}ms {:.0}%err{}",
                    f.fault.latency_ms,
                    f.fault.error_rate * 100.0,
                    if f.fault.hang { " hang" } else { "" }
                ));
            }
            if let Some(ms) = i.load.as_ref().and_then(|l| l.ejected_for_ms) {
                notes.push(format!("ejected {}s", ms.div_ceil(1000)));
            }
            if let Some(ms) = i.restart_in_ms {
                notes.push(format!("restarts in {}s", ms.div_ceil(1000)));
            }
            [
                v.id.clone(),
                v.service.clone(),
                format!("{}:{}", v.address, v.port),
                v.health.to_string(),
                json_str(&i.process),
                v.version.clone(),
                v.weight.to_string(),
                notes.join(", "),
            ]
        })
        .collect();
    table(
        [
            "ID", "SERVICE", "ADDRESS", "HEALTH", "PROCESS", "VERSION", "WEIGHT", "NOTES",
        ],
        &rows,
    )
}

fn breakers_table(list: &[BreakerSnapshot]) -> String {
    let rows: Vec<[String; 7]> = list
        .iter()
        .map(|b| {
            [
                b.name.clone(),
                b.state.to_string(),
                b.mode.to_string(),
                format!("{:.0}%", b.failure_rate),
                format!("{}/{}", b.calls_in_window, b.settings.window),
                format!("{:.1}s", b.in_state_ms as f64 / 1000.0),
                b.transitions
                    .last()
                    .map(|t| t.reason.clone())
                    .unwrap_or_default(),
            ]
        })
        .collect();
    table(
        [
            "NAME",
            "STATE",
            "MODE",
            "FAILURES",
            "WINDOW",
            "IN STATE",
            "LAST TRANSITION",
        ],
        &rows,
    )
}

fn balancers_table(list: &[BalancerSnapshot]) -> String {
    let mut out = String::new();
    for b in list {
        let total: u64 = b.counts.values().sum();
        let _ = writeln!(out, "{}  strategy {}  picks {total}", b.target, b.strategy);
        for (id, n) in &b.counts {
            let share = if total == 0 {
                0.0
            } else {
                *n as f64 * 100.0 / total as f64
            };
            let _ = writeln!(out, "  {id:<20} {n:>8}  {share:5.1}%");
        }
    }
    out
}

fn explain_text(e: &RouteExplain) -> String {
    let mut out = String::new();
    let or_dash = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    let _ = writeln!(out, "request     {} {}", e.method, e.path);
    let _ = writeln!(out, "route       {}", or_dash(&e.route));
    let _ = writeln!(out, "rewritten   {}", or_dash(&e.rewritten));
    let _ = writeln!(out, "service     {}", or_dash(&e.service));
    let key = match (&e.strategy, &e.hash_key) {
        (Some(s), Some(k)) if s == "consistent_hash" => format!(" (key {k})"),
        _ => String::new(),
    };
    let _ = writeln!(out, "strategy    {}{key}", or_dash(&e.strategy));
    for c in &e.candidates {
        let mark = if e.chosen.as_deref() == Some(c.id.as_str()) {
            "→"
        } else {
            " "
        };
        let _ = writeln!(
            out,
            "  {mark} {:<18} {:<8} weight {:<3} in-flight {:<3}{}{}",
            c.id,
            c.health.to_string(),
            c.weight,
            c.in_flight,
            if c.ejected { " ejected" } else { "" },
            if c.eligible { "" } else { " (not a candidate)" }
        );
    }
    let _ = writeln!(
        out,
        "chosen      {} — {}",
        or_dash(&e.chosen),
        or_dash(&e.reason)
    );
    let _ = writeln!(
        out,
        "breaker     {} {} ({})",
        or_dash(&e.breaker),
        e.breaker_state.map(|s| s.to_string()).unwrap_or_default(),
        e.breaker_mode.map(|m| m.to_string()).unwrap_or_default()
    );
    let _ = writeln!(out, "outcome     {}", e.outcome);
    out
}
