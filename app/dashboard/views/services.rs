//! The Services tab: services on the left, the selected service's instances on the right with
//! health, process state, live load (in flight, req/s, error %), faults and ejection with their
//! countdowns, the last check, and the selected instance's details below.

use crate::dashboard::action::Action;
use crate::dashboard::app::{Command, LOGS_REFRESH, Request};
use crate::dashboard::tabs::{Cx, Outcome, Pivot, TabView, filter_prompt};
use crate::dashboard::views::filter::ListFilter;
use crate::dashboard::views::instance::InstanceDetail;
use crate::dashboard::views::prompt::PromptFor;
use crate::dashboard::views::rows::Drawn;
use devcluster::handle::{ClusterSnapshot, InstanceSnapshot, ProcessState, ServiceGroup};
use devcluster::registry::Health;
use devcluster::telemetry::TraceId;
use devcluster::telemetry::metrics::MetricsView;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Cell, List, ListItem, ListState, Paragraph, Row, Table, TableState, Wrap,
};
use std::time::Instant;
use widgets::{HealthMark, InstanceRow, InstanceTable, Notice, Theme};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Focus {
    #[default]
    Services,
    Instances,
}

#[derive(Debug, Default)]
pub struct ServicesView {
    pub service: usize,
    pub instance: usize,
    pub focus: Focus,
    /// The call graph instead of the selected service's instances (`t`).
    pub topology: bool,
    /// Keeps services whose name holds its text (with all their instances) and instances whose
    /// id or address does.
    pub filter: ListFilter,
    /// The instance shown in detail (Enter on an instance), with its timeline.
    pub detail: Option<InstanceDetail>,
    /// Where the services and the instances were drawn (mouse clicks).
    pub drawn_services: Drawn,
    pub drawn_instances: Drawn,
    /// When the instance in detail's timeline was last asked for.
    pub detail_fetched: Option<Instant>,
    /// The selected service and instance by name: a service registered (or gone) above it
    /// moves the rows, not the selection.
    held: Option<(String, Option<String>)>,
}

impl ServicesView {
    /// Keeps the selection inside what the snapshot holds.
    /// The services and instances the filter keeps.
    pub fn groups<'a>(&self, snap: &'a ClusterSnapshot) -> Vec<ServiceGroup<'a>> {
        let mut groups = snap.services();
        if self.filter.text().is_some() {
            groups.retain_mut(|g| {
                if self.filter.keeps([g.name]) {
                    return true;
                }
                g.instances.retain(|i| {
                    let addr = format!("{}:{}", i.view.address, i.view.port);
                    self.filter.keeps([i.view.id.as_str(), addr.as_str()])
                });
                !g.instances.is_empty()
            });
        }
        groups
    }

    pub fn clamp(&mut self, snap: &ClusterSnapshot) {
        let groups = self.groups(snap);
        if let Some((name, id)) = &self.held
            && let Some(at) = groups.iter().position(|g| g.name == name)
        {
            self.service = at;
            if let Some(j) = id
                .as_ref()
                .and_then(|id| groups[at].instances.iter().position(|i| &i.view.id == id))
            {
                self.instance = j;
            }
        }
        self.service = self.service.min(groups.len().saturating_sub(1));
        let n = groups.get(self.service).map_or(0, |g| g.instances.len());
        self.instance = self.instance.min(n.saturating_sub(1));
        self.hold(&groups);
    }

    /// Remembers the selection by name (after a move, or the list changed).
    fn hold(&mut self, groups: &[ServiceGroup<'_>]) {
        self.held = groups.get(self.service).map(|g| {
            (
                g.name.to_string(),
                g.instances.get(self.instance).map(|i| i.view.id.clone()),
            )
        });
    }

    /// j/k, Enter and Esc within the lists.
    fn step(&mut self, action: &Action, snap: &ClusterSnapshot) {
        let groups = self.groups(snap);
        match (action, self.focus) {
            (Action::Down, Focus::Services) if self.service + 1 < groups.len() => {
                self.service += 1;
                self.instance = 0;
            }
            (Action::Up, Focus::Services) if self.service > 0 => {
                self.service -= 1;
                self.instance = 0;
            }
            (Action::Down, Focus::Instances) => {
                let n = groups.get(self.service).map_or(0, |g| g.instances.len());
                if self.instance + 1 < n {
                    self.instance += 1;
                }
            }
            (Action::Up, Focus::Instances) => self.instance = self.instance.saturating_sub(1),
            (Action::Open, _) => self.focus = Focus::Instances,
            (Action::Back, Focus::Services) if self.filter.clear() => self.clamp(snap),
            (Action::Back, _) => self.focus = Focus::Services,
            _ => {}
        }
        self.hold(&self.groups(snap));
    }

    pub fn selected_instance<'a>(&self, snap: &'a ClusterSnapshot) -> Option<&'a InstanceSnapshot> {
        self.groups(snap)
            .get(self.service)
            .and_then(|g| g.instances.get(self.instance).copied())
    }
}

/// From this width panes that are stacked on smaller terminals stand side by side.
pub const WIDE: u16 = 200;

impl ServicesView {
    /// Shows `id` in detail and asks for its timeline.
    fn show_detail(&mut self, id: String) -> Outcome {
        self.detail = Some(InstanceDetail::new(id));
        self.detail_fetched = None;
        self.on_tick(Instant::now())
            .map_or(Outcome::Done, Outcome::Ask)
    }
}

impl TabView for ServicesView {
    fn on_action(&mut self, action: &Action, cx: &Cx) -> Outcome {
        let snap = cx.snap;
        let selected = |v: &ServicesView| v.selected_instance(snap).map(|i| i.view.id.clone());
        match action {
            Action::Back if self.detail.is_some() => {
                self.detail = None;
                Outcome::Done
            }
            Action::Open => match &self.detail {
                // A pivot: the trace of the newest pick that chose it.
                Some(d) => d
                    .picks(snap)
                    .into_iter()
                    .find_map(|p| p.trace_id.as_deref().and_then(TraceId::parse))
                    .map_or_else(
                        || {
                            let text = "no recent pick of this instance has a trace";
                            Outcome::Toast(text.into(), true)
                        },
                        |id| Outcome::Show(Pivot::Trace(id)),
                    ),
                None if self.focus == Focus::Instances && !self.topology => {
                    selected(self).map_or(Outcome::Done, |id| self.show_detail(id))
                }
                None => {
                    self.step(action, snap);
                    Outcome::Done
                }
            },
            Action::Up | Action::Down if self.detail.is_some() => {
                // In detail, the next or previous instance in detail.
                self.step(action, snap);
                match selected(self) {
                    Some(id) if self.detail.as_ref().is_some_and(|d| d.id != id) => {
                        self.show_detail(id)
                    }
                    _ => Outcome::Done,
                }
            }
            Action::Up | Action::Down | Action::Back => {
                self.step(action, snap);
                Outcome::Done
            }
            Action::InstanceLogs => {
                let id = self
                    .detail
                    .as_ref()
                    .map(|d| d.id.clone())
                    .or(selected(self));
                id.map_or(Outcome::Done, |id| {
                    Outcome::Show(Pivot::Logs {
                        trace: None,
                        span: None,
                        search: Some(id),
                    })
                })
            }
            Action::Topology => {
                self.topology = !self.topology;
                Outcome::Done
            }
            Action::KillSelected | Action::RestartSelected => {
                let Some(id) = selected(self) else {
                    return Outcome::Toast("no instance selected".into(), true);
                };
                Outcome::Send(if *action == Action::KillSelected {
                    Command::Kill { id, for_s: None }
                } else {
                    Command::Restart { id }
                })
            }
            Action::Search => filter_prompt(&self.filter),
            _ => Outcome::Ignored,
        }
    }

    fn render(&self, frame: &mut Frame, area: Rect, cx: &Cx, theme: &Theme) {
        render(frame, area, self, cx.snap, theme);
    }

    fn clamp(&mut self, snap: &ClusterSnapshot) {
        ServicesView::clamp(self, snap);
    }

    fn cursor(&self) -> [usize; 3] {
        [self.service, self.instance, 0]
    }

    fn row_at(&mut self, column: u16, row: u16) -> Option<(usize, usize)> {
        if let Some(i) = self.drawn_services.row_at(column, row) {
            self.focus = Focus::Services;
            return Some((self.service, i));
        }
        let i = self.drawn_instances.row_at(column, row)?;
        self.focus = Focus::Instances;
        Some((self.instance, i))
    }

    fn on_prompt(&mut self, purpose: PromptFor, text: String, cx: &Cx) -> Outcome {
        if purpose != PromptFor::ListFilter {
            return Outcome::Ignored;
        }
        self.filter.set(text);
        self.service = 0;
        self.instance = 0;
        // The held service stays selected when the filter keeps it.
        ServicesView::clamp(self, cx.snap);
        Outcome::Done
    }

    fn on_tick(&mut self, now: Instant) -> Option<Request> {
        let d = self.detail.as_ref()?;
        if self
            .detail_fetched
            .is_some_and(|at| now.duration_since(at) < LOGS_REFRESH * 2)
        {
            return None;
        }
        self.detail_fetched = Some(now);
        Some(Request::InstanceEvents(d.id.clone(), d.filter()))
    }
}

pub fn health_mark(h: Health) -> HealthMark {
    match h {
        Health::Passing => HealthMark::Passing,
        Health::Warning => HealthMark::Warning,
        Health::Critical => HealthMark::Critical,
    }
}

fn process_label(p: ProcessState) -> &'static str {
    match p {
        ProcessState::Running => "running",
        ProcessState::Killed => "killed",
        ProcessState::External => "external",
    }
}

/// Converts an instance into the widget's plain row; its rates are its own (server side) over
/// the last ten seconds, the numbers the Metrics tab shows.
pub fn row(i: &InstanceSnapshot, metrics: &MetricsView) -> InstanceRow {
    let v = &i.view;
    let rate = metrics.instances.get(&v.id);
    InstanceRow {
        id: v.id.clone(),
        health: health_mark(v.health),
        // An outside service says which API it came through.
        process: match (i.process, v.via.as_str()) {
            (ProcessState::External, via) if !via.is_empty() => via.into(),
            (p, _) => process_label(p).into(),
        },
        address: format!("{}:{}", v.address, v.port),
        version: v.version.clone(),
        weight: v.weight,
        in_flight: i.load.as_ref().map_or(0, |l| l.in_flight),
        rps: rate.map(|r| r.rps),
        error_pct: rate.filter(|r| r.rps > 0.0).map(|r| r.error_pct),
        notes: i.notes(),
        check: v
            .checks
            .iter()
            .max_by_key(|c| c.status)
            // "HTTP GET http://…/health: 200 OK Output: {…}" → "200 OK": the URL and the
            // answer are in the details pane.
            .map(|c| {
                let status = c
                    .output
                    .split_once(": ")
                    .map_or(c.output.as_str(), |(_, r)| r);
                status
                    .split_once(" Output: ")
                    .map_or(status, |(s, _)| s)
                    .to_string()
            })
            .unwrap_or_else(|| "no checks".into()),
    }
}

pub fn render(
    frame: &mut Frame,
    area: Rect,
    view: &ServicesView,
    snap: &ClusterSnapshot,
    theme: &Theme,
) {
    let groups = view.groups(snap);
    if groups.is_empty() && view.filter.text().is_some() {
        let all = snap.services().len();
        let notice = Notice::new([
            format!(
                "No service or instance matches \"{}\".",
                view.filter.text().unwrap_or_default()
            ),
            String::new(),
            "/ changes the filter, Esc clears it.".to_string(),
        ])
        .title(view.filter.title("Services", 0, all).trim().to_string())
        .theme(*theme);
        frame.render_widget(&notice, area);
        return;
    }
    if groups.is_empty() {
        let notice = Notice::new([
            "No service is registered yet.",
            "",
            "Register one through the Consul API on the registry port:",
            "PUT /v1/agent/service/register {\"Name\":\"my-svc\",\"Port\":9000}",
        ])
        .title("Services")
        .theme(*theme);
        frame.render_widget(&notice, area);
        return;
    }
    // As wide as the longest name needs (up to 32), narrower on a narrow terminal: the
    // instances beside it need the room more.
    let name_w = widgets::columns::widest(groups.iter().map(|g| g.name), 8).min(24);
    let pane = (name_w + 11)
        .min(32)
        .min(area.width / 3)
        .max(name_w.min(16) + 9);
    let [left, right] =
        Layout::horizontal([Constraint::Length(pane), Constraint::Fill(1)]).areas(area);
    let focus_style = |f: Focus| {
        if view.focus == f {
            theme.border_focused
        } else {
            theme.border
        }
    };

    let items: Vec<ListItem> = groups
        .iter()
        .map(|g| {
            let total = g.instances.len();
            let passing = g.passing();
            let style = if passing == total {
                theme.passing
            } else if passing == 0 {
                theme.critical
            } else {
                theme.warning
            };
            let pad = usize::from(name_w).saturating_sub(g.name.chars().count()) + 1;
            let mut line = view.filter.mark(g.name, theme.text, theme);
            line.spans.push(Span::raw(" ".repeat(pad)));
            line.spans
                .push(Span::styled(format!("{passing}/{total} up"), style));
            ListItem::new(line)
        })
        .collect();
    let mut list_state = ListState::default().with_selected(Some(view.service));
    let list = List::new(items)
        .block(
            Block::bordered()
                .title(Line::styled(
                    match view.filter.text() {
                        None => " Services ".to_string(),
                        Some(_) => format!(" Services {}/{} ", groups.len(), snap.services().len()),
                    },
                    theme.title,
                ))
                .border_style(focus_style(Focus::Services)),
        )
        .highlight_style(theme.selected);
    frame.render_stateful_widget(list, left, &mut list_state);
    view.drawn_services.set(left, 0, list_state.offset());

    if let Some(d) = &view.detail
        && let Some(inst) = snap.instances.iter().find(|i| i.view.id == d.id)
    {
        view.drawn_instances.clear();
        super::instance::render(frame, right, d, inst, snap, theme);
        return;
    }
    if view.topology {
        view.drawn_instances.clear();
        render_topology(frame, right, snap, theme);
        return;
    }
    let Some(group) = groups.get(view.service) else {
        return;
    };
    // Every instance first (a header and borders besides), then the detail pane, up to 9
    // rows, in what is left: on a short terminal the list is what matters.
    let table_rows = group.instances.len() as u16 + 3;
    let detail = right.height.saturating_sub(table_rows).min(9);
    // On a wide terminal the detail pane goes beside the instances, with room to read it whole.
    let [table_area, detail_area] = if area.width >= WIDE {
        Layout::horizontal([Constraint::Fill(1), Constraint::Length(64)]).areas(right)
    } else {
        Layout::vertical([Constraint::Fill(1), Constraint::Length(detail)]).areas(right)
    };
    let rows: Vec<InstanceRow> = group
        .instances
        .iter()
        .map(|i| row(i, &snap.metrics))
        .collect();
    let title = match view.filter.text() {
        None => format!(
            " {} · {} · {} passing ",
            group.name,
            match rows.len() {
                1 => "1 instance".to_string(),
                n => format!("{n} instances"),
            },
            group.passing()
        ),
        Some(text) => {
            let all = snap
                .services()
                .iter()
                .find(|g| g.name == group.name)
                .map_or(0, |g| g.instances.len());
            format!(
                " {} · {} of {all} instances · / \"{text}\" (Esc clears) ",
                group.name,
                rows.len(),
            )
        }
    };
    let table = InstanceTable::new(&rows)
        .theme(*theme)
        .mark(view.filter.text())
        .block(
            Block::bordered()
                .title(Line::styled(title, theme.title))
                .border_style(focus_style(Focus::Instances)),
        );
    let mut table_state = TableState::default().with_selected(Some(view.instance));
    frame.render_stateful_widget(&table, table_area, &mut table_state);
    view.drawn_instances
        .set(table_area, 1, table_state.offset());

    if let Some(inst) = group.instances.get(view.instance) {
        frame.render_widget(details(inst, theme), detail_area);
    }
}

/// The services as a call graph: every path from a service nobody calls (the gateway, an
/// external client), then each edge with its rate, errors, p99 and the breaker at its end.
fn render_topology(frame: &mut Frame, area: Rect, snap: &ClusterSnapshot, theme: &Theme) {
    let calls = &snap.metrics.calls;
    let edges: Vec<(&str, &str)> = calls
        .iter()
        .map(|c| (c.caller.as_str(), c.target.as_str()))
        .collect();
    let mut lines = Vec::new();
    let roots: Vec<&str> = {
        let mut r: Vec<&str> = edges
            .iter()
            .map(|e| e.0)
            .filter(|c| !edges.iter().any(|e| e.1 == *c))
            .collect();
        r.sort_unstable();
        r.dedup();
        r
    };
    // Depth first, each path once, cycles cut.
    fn paths<'a>(
        at: &'a str,
        edges: &[(&'a str, &'a str)],
        path: &mut Vec<&'a str>,
        out: &mut Vec<Vec<&'a str>>,
    ) {
        path.push(at);
        let next: Vec<&str> = edges.iter().filter(|e| e.0 == at).map(|e| e.1).collect();
        if next.is_empty() || path.len() > 8 {
            out.push(path.clone());
        }
        for n in next {
            if !path.contains(&n) {
                paths(n, edges, path, out);
            } else {
                out.push(path.clone());
            }
        }
        path.pop();
    }
    let mut all = Vec::new();
    for r in roots {
        paths(r, &edges, &mut Vec::new(), &mut all);
    }
    for p in &all {
        let mut spans = Vec::new();
        for (i, s) in p.iter().enumerate() {
            if i > 0 {
                spans.push(Span::styled(" ─▶ ", theme.dim));
            }
            spans.push(Span::styled(*s, theme.title));
        }
        lines.push(Line::from(spans));
    }
    if lines.is_empty() {
        lines.push(Line::styled("no calls between services yet", theme.dim));
    }
    let block = Block::bordered()
        .title(Line::styled(
            " Topology · calls over the last 10 s (t: instances) ",
            theme.title,
        ))
        .border_style(theme.border_focused);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [graph, table_area] = Layout::vertical([
        Constraint::Length(lines.len() as u16 + 1),
        Constraint::Fill(1),
    ])
    .areas(inner);
    frame.render_widget(Paragraph::new(lines), graph);
    // The edges: names and the breaker's state stay whole, numbers go when narrow.
    let cells: Vec<[String; 4]> = calls
        .iter()
        .map(|c| {
            let name = format!("{} → {}", c.caller, c.target);
            let [name, rps, err, _, _, p99, _, _] =
                crate::dashboard::views::metrics::stats_cells(&name, &c.series);
            [name, rps, err, p99]
        })
        .collect();
    let header = ["CALLER → TARGET", "REQ/S", "ERR%", "P99", "BREAKER"];
    let col = |i: usize| {
        widgets::columns::widest(cells.iter().map(|c| c[i].as_str()).chain([header[i]]), 1)
    };
    let widths = widgets::columns::fit(
        &[
            widgets::columns::Column::keep(col(0)),
            widgets::columns::Column::drop(col(1), 2),
            widgets::columns::Column::drop(col(2), 3),
            widgets::columns::Column::drop(col(3), 4),
            widgets::columns::Column::keep(11),
        ],
        table_area.width,
        1,
    );
    let rows = calls.iter().zip(cells).map(|(c, [name, rps, err, p99])| {
        let breaker = snap
            .breakers
            .iter()
            .find(|b| b.name == format!("{}->{}", c.caller, c.target));
        // The same badge as the Breakers tab (a forced one with its lock).
        let mark = breaker.map_or(Span::styled("-", theme.dim), |b| {
            crate::dashboard::views::breakers::badge(b).span(theme)
        });
        let err_style = crate::dashboard::views::metrics::error_style(c.series.error_pct, theme);
        let right = |t: String, st| Cell::from(Line::from(Span::styled(t, st)).right_aligned());
        Row::new(widgets::columns::shown(
            [
                Cell::from(name),
                right(rps, theme.text),
                right(err, err_style),
                right(p99, theme.text),
                Cell::from(mark),
            ],
            &widths,
        ))
    });
    frame.render_widget(
        Table::new(rows, widgets::columns::constraints(&widths))
            .header(Row::new(widgets::columns::shown(header, &widths)).style(theme.title)),
        table_area,
    );
}

fn details<'a>(inst: &'a InstanceSnapshot, theme: &Theme) -> Paragraph<'a> {
    let v = &inst.view;
    let meta = v
        .meta
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("  ");
    let mut lines = vec![
        Line::from(vec![
            Span::styled(v.id.as_str(), theme.title),
            Span::raw(format!(
                "  {}  {}  ",
                v.base_url(),
                match v.via.as_str() {
                    "" => process_label(inst.process).to_string(),
                    via => format!("external, registered through {via}"),
                }
            )),
            Span::styled(
                v.health.as_str(),
                crate::dashboard::render::health_style(v.health, theme),
            ),
        ]),
        Line::from(vec![
            Span::styled("tags  ", theme.dim),
            Span::raw(v.tags.join(",")),
            Span::styled("   meta  ", theme.dim),
            Span::raw(meta),
        ]),
    ];
    let notes = inst.notes();
    if !notes.is_empty() {
        lines.push(Line::from(vec![
            Span::styled("now   ", theme.dim),
            Span::styled(notes.join(" · "), theme.warning),
        ]));
    }
    for c in &v.checks {
        lines.push(Line::from(vec![
            Span::styled(
                format!("{:<9}", c.status.as_str()),
                crate::dashboard::render::health_style(c.status, theme),
            ),
            Span::raw(format!("{}  ", c.id)),
            Span::styled(c.definition.as_str(), theme.dim),
        ]));
        if !c.output.is_empty() {
            lines.push(Line::from(Span::styled(
                format!("         {}", c.output),
                theme.dim,
            )));
        }
    }
    Paragraph::new(lines).wrap(Wrap { trim: false }).block(
        Block::bordered()
            .title(Line::styled(" Instance ", theme.title))
            .border_style(theme.border),
    )
}
