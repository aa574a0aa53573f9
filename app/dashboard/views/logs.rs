//! The Logs tab: what the cluster logged (and, with OTLP, your services), newest at the bottom.
//! It follows new lines until you move up; `v` raises the minimum level, `/` searches, Enter
//! opens the selected line's trace, `L` in a trace's waterfall shows that trace's logs here.

use crate::dashboard::action::Action;
use crate::dashboard::app::{LOGS_REFRESH, Request};
use crate::dashboard::tabs::{Cx, Outcome, Pivot, TabView};
use crate::dashboard::views::balancer::clock;
use crate::dashboard::views::prompt::{Prompt, PromptFor};
use devcluster::telemetry::{Level, LogFilter, LogRecord, TraceId};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table, TableState};
use std::time::Instant;
use widgets::Theme;
use widgets::columns::{Column, constraints, fit, shown, widest};
use widgets::highlight::highlight_owned;

/// How many lines the tab asks for.
pub const LIMIT: usize = 1000;

#[derive(Debug)]
pub struct LogsView {
    pub records: Vec<LogRecord>,
    /// `None`: following the newest line.
    pub selected: Option<usize>,
    pub level: Level,
    pub trace: Option<TraceId>,
    /// Only one span's lines (from a waterfall's span).
    pub span: Option<devcluster::telemetry::SpanId>,
    pub search: Option<String>,
    /// Only this service's lines (`:logs --service NAME`).
    pub service: Option<String>,
    pub error: Option<String>,
    pub drawn: super::rows::Drawn,
    /// When the lines were last asked for.
    pub fetched: Option<Instant>,
    /// The level chosen before a pivot showed a trace's lines at every level: Esc puts it back.
    pub level_before: Option<Level>,
}

impl Default for LogsView {
    fn default() -> Self {
        LogsView {
            records: Vec::new(),
            selected: None,
            level: Level::Info,
            trace: None,
            span: None,
            search: None,
            service: None,
            error: None,
            drawn: Default::default(),
            fetched: None,
            level_before: None,
        }
    }
}

impl LogsView {
    pub fn filter(&self) -> LogFilter {
        LogFilter {
            level: Some(self.level),
            trace: self.trace,
            span: self.span,
            q: self.search.clone(),
            service: self.service.clone(),
            limit: Some(LIMIT),
            ..Default::default()
        }
    }

    pub fn set_records(&mut self, records: Vec<LogRecord>) {
        // Keep a selected line selected as older ones scroll out.
        let keep = self
            .selected
            .and_then(|i| self.records.get(i))
            .map(|r| r.seq);
        self.records = records;
        self.selected = keep.and_then(|seq| self.records.iter().position(|r| r.seq == seq));
    }

    pub fn selected_record(&self) -> Option<&LogRecord> {
        match self.selected {
            Some(i) => self.records.get(i),
            None => self.records.last(),
        }
    }

    pub fn up(&mut self) {
        let last = self.records.len().saturating_sub(1);
        self.selected = Some(self.selected.unwrap_or(last).saturating_sub(1));
    }

    pub fn down(&mut self) {
        if let Some(i) = self.selected {
            self.selected = (i + 1 < self.records.len()).then_some(i + 1);
        }
    }

    pub fn follow(&mut self) {
        self.selected = None;
    }

    /// Applies a search typed at the prompt (empty clears it).
    pub fn set_search(&mut self, q: String) {
        self.search = (!q.is_empty()).then_some(q);
        self.selected = None;
    }
}

impl LogsView {
    /// Asks for the lines now.
    pub fn fetch(&mut self, now: Instant) -> Request {
        self.fetched = Some(now);
        Request::Logs(self.filter())
    }

    fn refetch(&mut self) -> Outcome {
        Outcome::Ask(self.fetch(Instant::now()))
    }
}

impl TabView for LogsView {
    fn on_action(&mut self, action: &Action, _cx: &Cx) -> Outcome {
        match action {
            Action::Up => self.up(),
            Action::Down => self.down(),
            Action::Follow | Action::Bottom => self.follow(),
            Action::CycleLevel => {
                self.level = self.level.next();
                return self.refetch();
            }
            Action::Search => {
                let text = self.search.clone().unwrap_or_default();
                return Outcome::Prompt(Prompt::new(PromptFor::LogSearch, text));
            }
            Action::Back => {
                self.trace = None;
                self.span = None;
                self.search = None;
                self.service = None;
                if let Some(level) = self.level_before.take() {
                    self.level = level;
                }
                return self.refetch();
            }
            Action::Open => {
                return match self.selected_record().and_then(|r| r.trace_id) {
                    Some(id) => Outcome::Show(Pivot::Trace(id)),
                    None => Outcome::Toast("this line belongs to no trace".into(), true),
                };
            }
            _ => return Outcome::Ignored,
        }
        Outcome::Done
    }

    fn render(&self, frame: &mut Frame, area: Rect, _cx: &Cx, theme: &Theme) {
        render(frame, area, self, theme);
    }

    fn cursor(&self) -> [usize; 3] {
        [self.selected.unwrap_or(usize::MAX), 0, 0]
    }

    fn row_at(&mut self, column: u16, row: u16) -> Option<(usize, usize)> {
        let i = self.drawn.row_at(column, row)?;
        let last = self.records.len().checked_sub(1)?;
        Some((self.selected.unwrap_or(usize::MAX), i.min(last)))
    }

    fn select_row(&mut self, index: usize) -> bool {
        self.selected = Some(index);
        true
    }

    fn on_prompt(&mut self, purpose: PromptFor, text: String, _cx: &Cx) -> Outcome {
        if purpose != PromptFor::LogSearch {
            return Outcome::Ignored;
        }
        self.set_search(text);
        self.refetch()
    }

    fn on_tick(&mut self, now: Instant) -> Option<Request> {
        if self
            .fetched
            .is_some_and(|at| now.duration_since(at) < LOGS_REFRESH)
        {
            return None;
        }
        Some(self.fetch(now))
    }
}

pub fn level_style(l: Level, theme: &Theme) -> Style {
    match l {
        Level::Error | Level::Fatal => theme.critical,
        Level::Warn => theme.warning,
        Level::Info => theme.passing,
        Level::Debug | Level::Trace => theme.dim,
    }
}

pub fn render(frame: &mut Frame, area: Rect, view: &LogsView, theme: &Theme) {
    let [bar, list] = Layout::vertical([Constraint::Length(1), Constraint::Fill(1)]).areas(area);
    let mut spans = vec![
        Span::styled(" level ≥ ", theme.dim),
        Span::styled(view.level.as_str(), level_style(view.level, theme)),
        Span::styled(" (v) ", theme.dim),
    ];
    match &view.search {
        Some(q) => spans.push(Span::raw(format!(" search \"{q}\" (/ changes)"))),
        None => spans.push(Span::styled(" / searches", theme.dim)),
    }
    if let Some(s) = &view.service {
        spans.push(Span::raw(format!("  service {s} (Esc shows all)")));
    }
    if let Some(t) = view.trace {
        spans.push(Span::raw(format!("  trace {t} (Esc shows all)")));
    }
    if let Some(s) = view.span {
        spans.push(Span::raw(format!("  span {s}")));
    }
    spans.push(if view.selected.is_none() {
        Span::styled("  ● following", theme.passing)
    } else {
        Span::styled("  paused on a line (f follows)", theme.warning)
    });
    frame.render_widget(Line::from(spans), bar);

    if view.records.is_empty() {
        let text = match &view.error {
            Some(e) => format!("error: {e}"),
            None => "No log line matches.".to_string(),
        };
        frame.render_widget(
            Paragraph::new(text).block(Block::bordered().border_style(theme.border)),
            list,
        );
        return;
    }
    let selected = view
        .selected
        .unwrap_or(view.records.len().saturating_sub(1));
    // Only the rows that show are built (a thousand lines are kept): the window that ends at the
    // selected line, as a fresh table state would scroll to it.
    let on_screen = usize::from(list.height.saturating_sub(3)).max(1);
    let first = (selected + 1).saturating_sub(on_screen);
    let window = &view.records[first..(first + on_screen).min(view.records.len())];
    let who = |r: &LogRecord| -> String {
        if r.instance.is_empty() || r.instance == r.service {
            r.service.clone()
        } else {
            r.instance.clone()
        }
    };
    // The service or instance is whole (sized to the rows on screen); narrow, the trace column
    // goes first (Enter still opens the line's trace), then the time; the message takes the rest.
    let names: Vec<String> = window.iter().map(who).collect();
    let widths = fit(
        &[
            Column::drop(12, 1),
            Column::keep(5),
            Column::keep(widest(names.iter().map(String::as_str), 7)),
            Column::fill(36, 0),
            Column::drop(8, 2),
        ],
        list.width.saturating_sub(2),
        1,
    );
    let rows = window.iter().zip(names).map(|(r, who)| -> Row<'static> {
        let fields: Vec<String> = r.fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let fields_text = fields.join(" ");
        Row::new(shown(
            [
                Cell::from(Span::styled(clock(r.at_unix_ns / 1_000_000), theme.dim)),
                Cell::from(Span::styled(r.level.as_str(), level_style(r.level, theme))),
                Cell::from(who),
                Cell::from({
                    // The search's match marked in the message and the fields.
                    let q = view.search.as_deref();
                    let mut line = highlight_owned(&r.message, q, theme.text, theme.matched);
                    line.spans.push(Span::raw("  "));
                    let fields = highlight_owned(&fields_text, q, theme.dim, theme.matched);
                    line.spans.extend(fields.spans);
                    line
                }),
                Cell::from(Span::styled(
                    r.trace_id
                        .map(|t| t.to_string()[..8].to_string())
                        .unwrap_or_default(),
                    theme.dim,
                )),
            ],
            &widths,
        ))
    });
    let table = Table::new(rows, constraints(&widths))
        .header(
            Row::new(shown(
                ["TIME", "LEVEL", "SERVICE", "MESSAGE", "TRACE"],
                &widths,
            ))
            .style(theme.title),
        )
        .row_highlight_style(theme.selected)
        .block(
            Block::bordered()
                .title(Line::styled(
                    format!(
                        " Logs ({}) · Enter opens the line's trace ",
                        view.records.len()
                    ),
                    theme.title,
                ))
                .border_style(theme.border_focused),
        );
    let mut state = TableState::default().with_selected(Some(selected - first));
    frame.render_stateful_widget(table, list, &mut state);
    view.drawn.set(list, 1, first + state.offset());
}
