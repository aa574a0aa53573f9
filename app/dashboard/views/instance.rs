//! An instance in detail (Enter on an instance in the Services tab): what it is now, its health
//! timeline (checks turning it out of and back into rotation, ejections, faults, kills and
//! restarts: the cluster's log lines about it), the picks that chose it, and the breakers in
//! front of its service. Pivots: Enter opens the trace of its newest pick, L its log lines.

use super::balancer::clock;
use super::breakers::badge;
use crate::dashboard::render::wrapped_lines;
use devcluster::balance::record::PickRecord;
use devcluster::handle::{ClusterSnapshot, InstanceSnapshot};
use devcluster::telemetry::{Level, LogFilter, LogRecord};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};
use widgets::Theme;

/// The instance shown, and its timeline as last fetched.
#[derive(Debug, Default)]
pub struct InstanceDetail {
    pub id: String,
    pub timeline: Vec<LogRecord>,
    pub error: Option<String>,
}

impl InstanceDetail {
    pub fn new(id: impl Into<String>) -> InstanceDetail {
        InstanceDetail {
            id: id.into(),
            ..Default::default()
        }
    }

    /// The log lines that make its timeline: every line about it at info and above.
    pub fn filter(&self) -> LogFilter {
        LogFilter {
            level: Some(Level::Info),
            q: Some(self.id.clone()),
            limit: Some(200),
            ..Default::default()
        }
    }

    /// The picks that chose it, newest first.
    pub fn picks<'a>(&self, snap: &'a ClusterSnapshot) -> Vec<&'a PickRecord> {
        let mut v: Vec<&PickRecord> = snap
            .balancers
            .iter()
            .flat_map(|b| b.recent.iter())
            .filter(|p| p.chosen == self.id)
            .collect();
        v.sort_by_key(|p| std::cmp::Reverse(p.seq));
        v
    }
}

pub fn render(
    frame: &mut Frame,
    area: Rect,
    d: &InstanceDetail,
    inst: &InstanceSnapshot,
    snap: &ClusterSnapshot,
    theme: &Theme,
) {
    let v = &inst.view;
    let picks = d.picks(snap);
    let breakers: Vec<_> = snap
        .breakers
        .iter()
        .filter(|b| b.name.ends_with(&format!("->{}", v.service)))
        .collect();
    // Now: address, health, process, weight, notes; the breakers in front of it.
    let mut lines = vec![Line::from(vec![
        Span::raw(format!("{}  ", v.base_url())),
        Span::styled(
            v.health.as_str(),
            crate::dashboard::render::health_style(v.health, theme),
        ),
        Span::raw(format!("  weight {}  ", v.weight)),
        Span::styled(inst.notes().join(" · "), theme.warning),
    ])];
    for b in &breakers {
        lines.push(Line::from(vec![
            Span::styled(format!("{:<30}", b.name), theme.dim),
            badge(b).span(theme),
            Span::raw(format!(
                "  {:.0}% failed of {} calls in its window",
                b.failure_rate, b.calls_in_window
            )),
        ]));
    }
    // Wrapped, not cut: on a narrow terminal a fault's figure or a breaker's count goes to the
    // next line.
    let rows: u16 = lines
        .iter()
        .map(|l| wrapped_lines(&l.to_string(), usize::from(area.width.saturating_sub(2))) as u16)
        .sum();
    let [now, timeline, bottom] = Layout::vertical([
        Constraint::Length(rows + 2),
        Constraint::Fill(2),
        Constraint::Fill(1),
    ])
    .areas(area);
    frame.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: false }).block(
            Block::bordered()
                .title(Line::styled(
                    format!(
                        " {} · Esc back · Enter its newest pick's trace · L its logs ",
                        v.id
                    ),
                    theme.title,
                ))
                .border_style(theme.border_focused),
        ),
        now,
    );

    // The timeline, newest at the bottom (as logs read).
    let shown = usize::from(timeline.height.saturating_sub(2));
    let rows: Vec<Line> = match &d.error {
        Some(e) => vec![Line::styled(format!("error: {e}"), theme.error)],
        None if d.timeline.is_empty() => vec![Line::styled(
            "nothing yet: its checks, ejections, faults, kills and restarts show here",
            theme.dim,
        )],
        None => d.timeline[d.timeline.len().saturating_sub(shown)..]
            .iter()
            .map(|r| {
                let style = match r.level {
                    Level::Error | Level::Fatal => theme.critical,
                    Level::Warn => theme.warning,
                    _ => theme.text,
                };
                let fields: Vec<String> = r
                    .fields
                    .iter()
                    .filter(|(k, _)| k != "instance")
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                Line::from(vec![
                    Span::styled(clock(r.at_unix_ns / 1_000_000), theme.dim),
                    Span::raw(" "),
                    Span::styled(r.message.clone(), style),
                    Span::styled(format!("  {}", fields.join(" ")), theme.dim),
                ])
            })
            .collect(),
    };
    // One row a line, cut on the right, so the newest lines are always the ones at the bottom.
    frame.render_widget(
        Paragraph::new(rows).block(
            Block::bordered()
                .title(Line::styled(" Health timeline ", theme.title))
                .border_style(theme.border),
        ),
        timeline,
    );

    // The picks that chose it.
    let rows: Vec<Line> = if picks.is_empty() {
        vec![Line::styled("no recent pick chose it", theme.dim)]
    } else {
        picks
            .iter()
            .map(|p| {
                Line::from(vec![
                    Span::styled(clock(p.at_unix_ms), theme.dim),
                    Span::raw(format!(" {} ", p.caller)),
                    Span::raw(if p.attempt > 1 {
                        format!("retry {} ", p.attempt)
                    } else {
                        String::new()
                    }),
                    Span::raw(p.reason.clone()),
                    Span::styled(
                        format!(
                            "  {}",
                            p.trace_id
                                .as_deref()
                                .map_or("", |t| t.get(..8).unwrap_or(t))
                        ),
                        theme.dim,
                    ),
                ])
            })
            .collect()
    };
    frame.render_widget(
        Paragraph::new(rows).block(
            Block::bordered()
                .title(Line::styled(
                    format!(" Picks that chose it ({}) ", picks.len()),
                    theme.title,
                ))
                .border_style(theme.border),
        ),
        bottom,
    );
}
