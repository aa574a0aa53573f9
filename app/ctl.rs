//! `lgo-dash ctl`: one command per admin API call, human tables by default, `--json` for scripts.

use crate::cli::{CtlArgs, CtlCommand};
use devcluster::control::AdminClient;
use devcluster::handle::InstanceSnapshot;
use std::fmt::Write as _;
use std::process::ExitCode;

pub fn run(args: &CtlArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = AdminClient::new(&args.admin);
    rt.block_on(async {
        match &args.command {
            CtlCommand::Instances { json } => {
                let list = client.instances().await?;
                if *json {
                    println!("{}", serde_json::to_string_pretty(&list)?);
                } else {
                    print!("{}", instances_table(&list));
                }
            }
            CtlCommand::Kill { id } => {
                client.kill(id).await?;
                println!(
                    "killed {id} (port closed, still registered: watch its health turn critical)"
                );
            }
            CtlCommand::Restart { id } => {
                client.restart(id).await?;
                println!("restarted {id}");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// A plain-text table with aligned columns.
pub fn instances_table(list: &[InstanceSnapshot]) -> String {
    let header = [
        "ID", "SERVICE", "ADDRESS", "HEALTH", "PROCESS", "VERSION", "WEIGHT",
    ];
    let rows: Vec<[String; 7]> = list
        .iter()
        .map(|i| {
            let v = &i.view;
            [
                v.id.clone(),
                v.service.clone(),
                format!("{}:{}", v.address, v.port),
                v.health.to_string(),
                serde_json::to_value(i.process)
                    .ok()
                    .and_then(|p| p.as_str().map(str::to_string))
                    .unwrap_or_default(),
                v.version.clone(),
                v.weight.to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            let _ = write!(l, "{c:<w$}  ", w = widths[i]);
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&header);
    for r in &rows {
        line(&r.iter().map(String::as_str).collect::<Vec<_>>());
    }
    out
}
