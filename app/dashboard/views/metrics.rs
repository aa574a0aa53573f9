//! The Metrics tab: per service (the gateway included) requests per second, error %, p50 / p90
//! / p99 over the last ten seconds; for the selected one, sparklines of the last two minutes;
//! and the process's and host's CPU and memory.

use crate::dashboard::action::Action;
use crate::dashboard::app::SelfCost;
use crate::dashboard::tabs::{Cx, Outcome, TabView, filter_prompt};
use crate::dashboard::views::filter::ListFilter;
use crate::dashboard::views::prompt::PromptFor;
use crate::dashboard::views::rows::Drawn;
use crate::dashboard::views::services::WIDE;
use devcluster::handle::ClusterSnapshot;
use devcluster::telemetry::metrics::{MetricsView as Metrics, ProcessView};
use devcluster::telemetry::rolling::Series;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Sparkline, Table, TableState};
use widgets::columns::{Column, constraints, fit, shown, widest};
use widgets::{Notice, Theme};

#[derive(Debug, Default)]
pub struct MetricsView {
    /// The service selected among those the filter keeps.
    pub selected: usize,
    /// Keeps the services and the caller → target paths whose names hold its text.
    pub filter: ListFilter,
    pub drawn: Drawn,
}

impl MetricsView {
    /// The services the filter keeps, with their figures.
    pub fn services<'a>(&self, snap: &'a ClusterSnapshot) -> Vec<(&'a String, &'a Series)> {
        snap.metrics
            .services
            .iter()
            .filter(|(n, _)| self.filter.keeps([n.as_str()]))
            .collect()
    }

    /// j/k, Enter and Esc within the lists.
    fn step(&mut self, action: &Action, snap: &ClusterSnapshot) {
        match action {
            Action::Down if self.selected + 1 < self.services(snap).len() => self.selected += 1,
            Action::Up => self.selected = self.selected.saturating_sub(1),
            Action::Back if self.filter.clear() => self.clamp(snap),
            _ => {}
        }
    }

    pub fn clamp(&mut self, snap: &ClusterSnapshot) {
        self.selected = self
            .selected
            .min(self.services(snap).len().saturating_sub(1));
    }
}

impl TabView for MetricsView {
    fn on_action(&mut self, action: &Action, cx: &Cx) -> Outcome {
        match action {
            Action::Up | Action::Down | Action::Back => {
                self.step(action, cx.snap);
                Outcome::Done
            }
            Action::Search => filter_prompt(&self.filter),
            _ => Outcome::Ignored,
        }
    }

    fn render(&self, frame: &mut Frame, area: Rect, cx: &Cx, theme: &Theme) {
        render(frame, area, (self, cx.cost), cx.snap, theme);
    }

    fn clamp(&mut self, snap: &ClusterSnapshot) {
        MetricsView::clamp(self, snap);
    }

    fn cursor(&self) -> [usize; 3] {
        [self.selected, 0, 0]
    }

    fn row_at(&mut self, column: u16, row: u16) -> Option<(usize, usize)> {
        Some((self.selected, self.drawn.row_at(column, row)?))
    }

    fn on_prompt(&mut self, purpose: PromptFor, text: String, cx: &Cx) -> Outcome {
        if purpose != PromptFor::ListFilter {
            return Outcome::Ignored;
        }
        self.filter.set(text);
        self.selected = 0;
        MetricsView::clamp(self, cx.snap);
        Outcome::Done
    }
}

/// "1.2 MB", "3.4 GB".
pub fn bytes(b: u64) -> String {
    let b = b as f64;
    if b >= 1e9 {
        format!("{:.1} GB", b / 1e9)
    } else {
        format!("{:.1} MB", b / 1e6)
    }
}

/// Milliseconds with a sensible number of digits.
pub fn ms(v: f64) -> String {
    if v == 0.0 {
        "-".into()
    } else if v < 10.0 {
        format!("{v:.2}ms")
    } else {
        format!("{v:.0}ms")
    }
}

pub fn render(
    frame: &mut Frame,
    area: Rect,
    (view, cost): (&MetricsView, &SelfCost),
    snap: &ClusterSnapshot,
    theme: &Theme,
) {
    let m: &Metrics = &snap.metrics;
    if m.services.is_empty() {
        let notice = Notice::new([
            "No request measured yet.",
            "",
            "Every request to a sample service or the gateway is counted here;",
            "the traffic generator makes some every second (ctl traffic 20).",
        ])
        .title("Metrics")
        .theme(*theme);
        frame.render_widget(&notice, area);
        return;
    }
    let kept = view.services(snap);
    let selected = kept.get(view.selected).copied();
    let routes: Vec<(String, &Series)> = m
        .routes
        .iter()
        .filter(|r| selected.is_some_and(|(name, _)| *name == r.service))
        .map(|r| (r.route.clone(), &r.series))
        .collect();
    let calls: Vec<(String, &Series)> = m
        .calls
        .iter()
        .map(|c| (format!("{} → {}", c.caller, c.target), &c.series))
        .filter(|(name, _)| view.filter.keeps([name.as_str()]))
        .collect();
    let wide = area.width >= WIDE;
    let (routes_h, calls_h) = (
        (routes.len().min(8) + 3) as u16,
        (calls.len().min(8) + 3) as u16,
    );
    let services_h = kept.len() as u16 + 3;
    // The process and the host on one line where they fit, else one line each.
    let split = area.width < 120;
    let process_h = if split { 5 } else { 4 };
    // Wide, the per-route and caller → target tables stand beside the services, one over the
    // other, and the two charts side by side (each then shows its whole two minutes).
    let (top, middle, charts, process) = if wide {
        let [top, charts, process] = Layout::vertical([
            Constraint::Length(services_h.max(routes_h + calls_h)),
            Constraint::Fill(1),
            Constraint::Length(process_h),
        ])
        .areas(area);
        let [top, middle] =
            Layout::horizontal([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(top);
        (top, middle, charts, process)
    } else {
        let [top, middle, charts, process] = Layout::vertical([
            Constraint::Length(services_h),
            Constraint::Length(routes_h.max(calls_h)),
            Constraint::Fill(1),
            Constraint::Length(process_h),
        ])
        .areas(area);
        (top, middle, charts, process)
    };

    let services: Vec<(String, &Series)> = kept.iter().map(|(n, s)| ((*n).clone(), *s)).collect();
    let title = view.filter.title(
        "Services · last 10 s (requests and errors: last 5 min)",
        kept.len(),
        m.services.len(),
    );
    let table = stats_table(
        &title,
        "SERVICE",
        services,
        top.width,
        theme.border_focused,
        (&view.filter, theme),
    )
    .row_highlight_style(theme.selected);
    let mut state = TableState::default().with_selected(Some(view.selected));
    frame.render_stateful_widget(table, top, &mut state);
    view.drawn.set(top, 1, state.offset());

    let [left, right] = if wide {
        Layout::vertical([Constraint::Length(routes_h), Constraint::Fill(1)]).areas(middle)
    } else {
        Layout::horizontal([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(middle)
    };
    let name = selected.map_or("", |(n, _)| n.as_str());
    frame.render_widget(
        stats_table(
            &format!(" {name} · per route "),
            "ROUTE",
            routes,
            left.width,
            theme.border,
            (&ListFilter::default(), theme),
        ),
        left,
    );
    frame.render_widget(
        stats_table(
            if right.width >= 66 {
                " Client side · calls per caller → target (errors: failed calls) "
            } else {
                " Client side · caller → target "
            },
            "CALLER → TARGET",
            calls,
            right.width,
            theme.border,
            (&view.filter, theme),
        ),
        right,
    );

    if let Some((name, s)) = selected {
        render_charts(frame, charts, name, s, wide, theme);
    }
    frame.render_widget(process_panel(&m.process, cost, split, theme), process);
}

/// How an error percentage reads: 5 % and above critical, any at all a warning.
pub fn error_style(pct: f64, theme: &Theme) -> ratatui::style::Style {
    if pct >= 5.0 {
        theme.critical
    } else if pct > 0.0 {
        theme.warning
    } else {
        theme.text
    }
}

/// A row's figures as text: name, req/s, error %, p50, p90, p99, requests, errors (the
/// dashboard's tables and `ctl metrics` show the same).
pub fn stats_cells(name: &str, s: &Series) -> [String; 8] {
    [
        name.to_string(),
        format!("{:.1}", s.rps),
        format!("{:.1}", s.error_pct),
        ms(s.p50),
        ms(s.p90),
        ms(s.p99),
        s.total_requests.to_string(),
        s.total_errors.to_string(),
    ]
}

/// Rows of rates, error %, percentiles and totals under a bordered title, as many columns as
/// fit `width`: the name is never cut, nor a number; the totals go first, then P50 and P90,
/// the rate last. Names show the filter's match.
fn stats_table<'a>(
    title: &str,
    first: &'a str,
    rows: Vec<(String, &Series)>,
    width: u16,
    border: ratatui::style::Style,
    (filter, theme): (&ListFilter, &Theme),
) -> Table<'a> {
    let cells: Vec<[String; 8]> = rows.iter().map(|(name, s)| stats_cells(name, s)).collect();
    let header = [
        first, "REQ/S", "ERR%", "P50", "P90", "P99", "REQUESTS", "ERRORS",
    ];
    let col = |i: usize| widest(cells.iter().map(|c| c[i].as_str()).chain([header[i]]), 1);
    let widths = fit(
        &[
            Column::keep(col(0)),
            Column::drop(col(1), 1),
            Column::drop(col(2), 2),
            Column::drop(col(3), 4),
            Column::drop(col(4), 5),
            Column::drop(col(5), 3),
            Column::drop(col(6), 6),
            Column::drop(col(7), 7),
        ],
        width.saturating_sub(2),
        1,
    );
    let table_rows: Vec<Row> = cells
        .into_iter()
        .zip(&rows)
        .map(|(c, (_, s))| {
            let err_style = error_style(s.error_pct, theme);
            let [name, rest @ ..] = c;
            let mut row = vec![Cell::from(filter.mark_owned(&name, theme.text, theme))];
            for (i, v) in rest.into_iter().enumerate() {
                let style = if i == 1 { err_style } else { theme.text };
                row.push(Cell::from(
                    Line::from(Span::styled(v, style)).right_aligned(),
                ));
            }
            Row::new(shown(row, &widths))
        })
        .collect();
    Table::new(table_rows, constraints(&widths))
        .header(Row::new(shown(header, &widths)).style(theme.title))
        .block(
            Block::bordered()
                .title(Line::styled(title.to_string(), theme.title))
                .border_style(border),
        )
}

fn render_charts(
    frame: &mut Frame,
    area: Rect,
    name: &str,
    s: &Series,
    side_by_side: bool,
    theme: &Theme,
) {
    // A chart needs a row inside its borders: on a short terminal only the rate chart shows,
    // and none below three rows (an empty box says nothing).
    if area.height < 3 {
        return;
    }
    let halves = [Constraint::Fill(1), Constraint::Fill(1)];
    let [rate, latency] = if side_by_side {
        Layout::horizontal(halves).areas(area)
    } else if area.height < 6 {
        [area, Rect::default()]
    } else {
        Layout::vertical(halves).areas(area)
    };
    // The newest second at the right edge; as many as fit, blank before the window.
    let fit = |v: &[u64], w: u16| -> Vec<u64> {
        let w = usize::from(w.saturating_sub(2));
        let shown = &v[v.len().saturating_sub(w)..];
        let mut out = vec![0; w - shown.len()];
        out.extend_from_slice(shown);
        out
    };
    let requests: Vec<u64> = s.requests.iter().map(|&r| u64::from(r)).collect();
    let max_rps = requests.iter().copied().max().unwrap_or(0);
    let p99: Vec<u64> = s.p99_ms.iter().map(|&v| (v * 1000.0) as u64).collect();
    let max_p99 = s.p99_ms.iter().copied().fold(0.0, f64::max);
    frame.render_widget(
        Sparkline::default()
            .data(fit(&requests, rate.width))
            .style(theme.passing)
            .block(
                Block::bordered()
                    .title(Line::styled(
                        format!(" {name} · requests per second, last 2 min (max {max_rps}) "),
                        theme.title,
                    ))
                    .border_style(theme.border),
            ),
        rate,
    );
    frame.render_widget(
        Sparkline::default()
            .data(fit(&p99, latency.width))
            .style(theme.warning)
            .block(
                Block::bordered()
                    .title(Line::styled(
                        format!(" {name} · p99 latency per second (max {}) ", ms(max_p99)),
                        theme.title,
                    ))
                    .border_style(theme.border),
            ),
        latency,
    );
}

fn process_panel<'a>(
    p: &ProcessView,
    cost: &SelfCost,
    split: bool,
    theme: &Theme,
) -> Paragraph<'a> {
    let process = vec![
        Span::styled("lgo-dash  ", theme.dim),
        Span::raw(format!(
            "cpu {:.1}%  rss {}",
            p.cpu_percent,
            bytes(p.rss_bytes)
        )),
    ];
    let host = vec![
        Span::styled(if split { "host      " } else { "     host  " }, theme.dim),
        Span::raw(format!(
            "cpu {:.1}% of {} cores  memory {} / {}  load {:.2}",
            p.host_cpu_percent,
            p.cpus,
            bytes(p.host_memory_used_bytes),
            bytes(p.host_memory_total_bytes),
            p.load_average_1m
        )),
    ];
    let lines = if split {
        vec![Line::from(process), Line::from(host)]
    } else {
        vec![Line::from([process, host].concat())]
    };
    // What the dashboard itself costs: drawn only when something on screen changed.
    let mut own = vec![
        Span::styled("dashboard  ", theme.dim),
        Span::raw(format!(
            "{:.1} frames/s  last frame {:.2}ms",
            cost.frames_per_s, cost.frame_ms
        )),
    ];
    if let Some((cpu, rss)) = cost.process {
        own.push(Span::raw(format!("  cpu {cpu:.1}%  rss {}", bytes(rss))));
    } else {
        own.push(Span::styled(
            "  (its cpu is in lgo-dash's above)",
            theme.dim,
        ));
    }
    Paragraph::new([lines, vec![Line::from(own)]].concat()).block(
        Block::bordered()
            .title(Line::styled(
                " Process and host (sampled each second) ",
                theme.title,
            ))
            .border_style(theme.border),
    )
}
