//! `lgo-dash ctl`: one command per admin API call, human tables by default, `--json` for scripts.

use crate::cli::{ConfigCommand, CtlArgs, CtlCommand, RouteCommand, TracesCommand};
use devcluster::balance::service::BalancerSnapshot;
use devcluster::breaker::{BreakerSnapshot, Mode};
use devcluster::cluster::RouteExplain;
use devcluster::control::{AdminClient, Command};
use devcluster::handle::InstanceSnapshot;
use devcluster::services::faults::Fault;
use devcluster::telemetry::metrics::MetricsView;
use devcluster::telemetry::rolling::Series;
use devcluster::telemetry::{
    Level, LogFilter, LogRecord, SpanId, SpanRecord, TraceFilter, TraceId, TraceSummary,
};
use std::fmt::Write as _;
use std::process::ExitCode;

/// `println!` for ctl's answers, except that a reader gone away (`ctl logs | head`) ends the
/// command quietly instead of a panic (Rust ignores SIGPIPE; the write fails instead).
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($t)*) {
            stdout_failed(e);
        }
    }};
}

/// `print!`, the same way.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = write!(std::io::stdout().lock(), $($t)*) {
            stdout_failed(e);
        }
    }};
}

fn stdout_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("lgo-dash: cannot write the answer: {e}");
    std::process::exit(1);
}

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
            CtlCommand::Metrics { json } => {
                let m = client.metrics().await?;
                print_or_json(*json, &m, metrics_text)?;
                return Ok(ExitCode::SUCCESS);
            }
            CtlCommand::Logs {
                level,
                service,
                trace,
                span,
                grep,
                limit,
                json,
            } => {
                let trace = match trace {
                    Some(t) => Some(TraceId::parse(t).ok_or_else(|| {
                        anyhow::anyhow!("trace id {t:?}: expected 32 (or 16) hex digits")
                    })?),
                    None => None,
                };
                let span =
                    match span {
                        Some(s) => Some(SpanId::parse(s).ok_or_else(|| {
                            anyhow::anyhow!("span id {s:?}: expected 16 hex digits")
                        })?),
                        None => None,
                    };
                let f = LogFilter {
                    span,
                    level: Some(level.parse::<Level>().map_err(anyhow::Error::msg)?),
                    service: service.clone(),
                    q: grep.clone(),
                    trace,
                    after: None,
                    limit: Some(*limit),
                };
                let lines = client.logs(&f).await?;
                print_or_json(*json, lines.as_slice(), logs_text)?;
                return Ok(ExitCode::SUCCESS);
            }
            CtlCommand::Traces {
                command:
                    Some(TracesCommand::Export {
                        format: _,
                        out,
                        service,
                        limit,
                    }),
                ..
            } => {
                let f = TraceFilter {
                    service: service.clone(),
                    limit: Some(*limit),
                    ..Default::default()
                };
                let mut spans = Vec::new();
                let list = client.traces(&f).await?;
                for t in &list {
                    spans.extend(client.trace(t.trace_id).await?);
                }
                let json = devcluster::telemetry::export::to_otlp_json(&spans)?;
                match out {
                    Some(path) => {
                        std::fs::write(path, json)
                            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
                        eprintln!(
                            "wrote {} traces ({} spans) to {}; lgo-dash --open {} shows them",
                            list.len(),
                            spans.len(),
                            path.display(),
                            path.display()
                        );
                    }
                    None => outln!("{json}"),
                }
                return Ok(ExitCode::SUCCESS);
            }
            CtlCommand::Traces {
                command: None,
                service,
                operation,
                min_ms,
                errors,
                limit,
                json,
            } => {
                let f = TraceFilter {
                    service: service.clone(),
                    operation: operation.clone(),
                    min_duration_ms: *min_ms,
                    errors_only: *errors,
                    limit: Some(*limit),
                    ..Default::default()
                };
                let list = client.traces(&f).await?;
                print_or_json(*json, list.as_slice(), traces_table)?;
                return Ok(ExitCode::SUCCESS);
            }
            CtlCommand::Trace { id, width, json } => {
                let id = TraceId::parse(id).ok_or_else(|| {
                    anyhow::anyhow!("trace id {id:?}: expected 32 (or 16) hex digits")
                })?;
                let spans = client.trace(id).await?;
                print_or_json(*json, spans.as_slice(), |s| waterfall_text(s, *width))?;
                return Ok(ExitCode::SUCCESS);
            }
            CtlCommand::Route {
                command: RouteCommand::Explain { method, path, json },
            } => {
                let e = client.explain(method, path).await?;
                print_or_json(*json, &e, RouteExplain::text)?;
                return Ok(ExitCode::SUCCESS);
            }
            CtlCommand::Config { command } => return config(&client, command).await,
            other => match command_of(other)? {
                Some(c) => c,
                None => anyhow::bail!("nothing to send for {other:?}"),
            },
        };
        outln!("{}", client.send(&command).await?);
        Ok(ExitCode::SUCCESS)
    })
}

/// The admin command a state-changing `ctl` command sends (the dashboard's `:` palette sends
/// the same); `None` for the commands that only read.
pub fn command_of(c: &CtlCommand) -> anyhow::Result<Option<Command>> {
    Ok(Some(match c {
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
        _ => return Ok(None),
    }))
}

fn print_or_json<T: serde::Serialize + ?Sized>(
    json: bool,
    v: &T,
    text: impl Fn(&T) -> String,
) -> anyhow::Result<()> {
    if json {
        outln!("{}", serde_json::to_string_pretty(v)?);
    } else {
        out!("{}", text(v));
    }
    Ok(())
}

/// Aligned columns, two spaces apart.
async fn config(client: &AdminClient, command: &ConfigCommand) -> anyhow::Result<ExitCode> {
    let applied = |a: devcluster::control::ConfigApplied| {
        if a.changes.is_empty() {
            outln!("no change (version {})", a.version);
        }
        for c in &a.changes {
            outln!("{}", change_line(c));
        }
    };
    match command {
        ConfigCommand::List { json } => {
            let all = client.config_entries().await?;
            let rows: Vec<[String; 3]> = all
                .entries
                .iter()
                .map(|e| {
                    [
                        e.key.clone(),
                        crate::dashboard::views::config::clip(&e.value, 60),
                        e.origin.clone(),
                    ]
                })
                .collect();
            print_or_json(*json, all.entries.as_slice(), |_| {
                format!(
                    "version {}\n{}",
                    all.version,
                    table(["KEY", "VALUE", "FROM"], &rows)
                )
            })?;
        }
        ConfigCommand::Get { key, json } => {
            let e = client.config_get(key).await?;
            print_or_json(*json, &e, |e| {
                format!("{} = {}    ({})\n", e.key, e.value, e.origin)
            })?;
        }
        ConfigCommand::Set { key, value } => {
            applied(client.config_set(key, Some(value), "ctl").await?)
        }
        ConfigCommand::Unset { key } => applied(client.config_set(key, None, "ctl").await?),
        ConfigCommand::History { json } => {
            let h = client.config_history().await?;
            print_or_json(*json, h.as_slice(), |h| {
                h.iter().map(|c| change_line(c) + "\n").collect::<String>()
            })?;
        }
        ConfigCommand::Undo => applied(client.config_undo().await?),
        ConfigCommand::Env { name, yes: false } => {
            let a = client.config_env(name, false).await?;
            outln!("switching to {name} would change:");
            for c in &a.changes {
                outln!("  {}: {} → {}", c.key, c.old_text(), c.new_text());
            }
            if a.changes.is_empty() {
                outln!("  nothing");
            }
            outln!("run again with --yes to switch");
        }
        ConfigCommand::Env { name, yes: true } => applied(client.config_env(name, true).await?),
    }
    Ok(ExitCode::SUCCESS)
}

/// `v3  12:04:05  ctl  traffic.rps: 20 → 40`.
fn change_line(c: &devcluster::config::center::Change) -> String {
    format!(
        "v{}  {}  {}  {}: {} → {}",
        c.version,
        // HH:MM:SS of the dashboard's clock (milliseconds left off).
        &crate::dashboard::views::balancer::clock(c.at_unix_ms)[..8],
        c.who,
        c.key,
        c.old_text(),
        c.new_text()
    )
}

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
            let notes = i.notes();
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

fn traces_table(list: &[TraceSummary]) -> String {
    let rows: Vec<[String; 6]> = list
        .iter()
        .map(|t| {
            [
                t.trace_id.to_string(),
                t.root.clone(),
                t.services.join(","),
                t.span_count.to_string(),
                format!("{:.1}ms", t.duration_ms),
                if t.error { "error" } else { "" }.to_string(),
            ]
        })
        .collect();
    table(
        ["TRACE", "ROOT", "SERVICES", "SPANS", "DURATION", "STATUS"],
        &rows,
    )
}

/// The dashboard's waterfall widget drawn into a buffer and printed as text.
pub fn waterfall_text(spans: &[SpanRecord], width: u16) -> String {
    use ratatui::buffer::Buffer;
    use ratatui::layout::Rect;
    use ratatui::widgets::Widget;
    let flat = crate::dashboard::views::traces::flatten(spans, &Default::default());
    let height = flat.rows.len() as u16 + 1;
    let area = Rect::new(0, 0, width.max(40), height);
    let mut buf = Buffer::empty(area);
    widgets::Waterfall::new(&flat.rows, flat.total_ns).render(area, &mut buf);
    let mut out = String::new();
    for y in 0..height {
        let line: String = (0..area.width).map(|x| buf[(x, y)].symbol()).collect();
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn metrics_text(m: &MetricsView) -> String {
    use crate::dashboard::views::metrics::{bytes, stats_cells};
    let row = |name: &String, s: &Series| stats_cells(name, s);
    let header = [
        "", "REQ/S", "ERR%", "P50", "P90", "P99", "REQUESTS", "ERRORS",
    ];
    let services: Vec<[String; 8]> = m.services.iter().map(|(n, s)| row(n, s)).collect();
    let instances: Vec<[String; 8]> = m.instances.iter().map(|(n, s)| row(n, s)).collect();
    let routes: Vec<[String; 8]> = m
        .routes
        .iter()
        .map(|r| row(&format!("{} {}", r.service, r.route), &r.series))
        .collect();
    let calls: Vec<[String; 8]> = m
        .calls
        .iter()
        .map(|c| row(&format!("{}->{}", c.caller, c.target), &c.series))
        .collect();
    let mut out = String::from("per service, last 10 s (requests and errors: last 5 min)\n");
    out.push_str(&table(header, &services));
    out.push_str("\nper instance\n");
    out.push_str(&table(header, &instances));
    out.push_str("\nper route (server side)\n");
    out.push_str(&table(header, &routes));
    out.push_str("\nper call path (client side: caller->target, errors are failed calls)\n");
    out.push_str(&table(header, &calls));
    let p = &m.process;
    let _ = writeln!(
        out,
        "\nprocess  cpu {:.1}%  rss {}\nhost     cpu {:.1}% of {} cores  memory {} / {}  load {:.2}",
        p.cpu_percent,
        bytes(p.rss_bytes),
        p.host_cpu_percent,
        p.cpus,
        bytes(p.host_memory_used_bytes),
        bytes(p.host_memory_total_bytes),
        p.load_average_1m
    );
    out
}

fn logs_text(lines: &[LogRecord]) -> String {
    let mut out = String::new();
    for r in lines {
        let fields: Vec<String> = r.fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let who = if r.instance.is_empty() || r.instance == r.service {
            r.service.as_str()
        } else {
            r.instance.as_str()
        };
        let _ = write!(
            out,
            "{} {:<5} {:<16} {}",
            crate::dashboard::views::balancer::clock(r.at_unix_ns / 1_000_000),
            r.level.as_str(),
            who,
            r.message
        );
        if !fields.is_empty() {
            let _ = write!(out, "  {}", fields.join(" "));
        }
        if let Some(t) = r.trace_id {
            let _ = write!(out, "  trace={t}");
        }
        out.push('\n');
    }
    out
}
