//! The Traces tab: recent traces (root operation, services, spans, duration, error mark);
//! Enter opens one as a waterfall — nested spans on a time axis, service colours, errors and
//! breaker refusals marked, the critical path in bold, subtrees folded with space — with the
//! selected span's attributes and events below. `lgo-dash ctl trace ID` prints the same
//! waterfall as text.

use crate::dashboard::action::Action;
use crate::dashboard::app::{Request, TRACES_REFRESH};
use crate::dashboard::tabs::{Cx, Outcome, Pivot, TabView};
use crate::dashboard::views::balancer::clock;
use crate::dashboard::views::prompt::{Prompt, PromptFor};
use crate::dashboard::views::services::WIDE;
use devcluster::telemetry::{SpanId, SpanRecord, TraceFilter, TraceId, TraceSummary};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table, TableState, Wrap};
use std::collections::{HashMap, HashSet};
use std::time::Instant;
use widgets::columns::{Column, constraints, fit, shown, widest};
use widgets::highlight::{highlight, highlight_owned};
use widgets::waterfall::duration_label;
use widgets::{Notice, Theme, Waterfall, WaterfallRow};

/// How many traces the list asks for.
pub const LIST_LIMIT: usize = 200;

#[derive(Debug, Default)]
pub struct TracesView {
    pub list: Vec<TraceSummary>,
    /// The list's filter (`/`), and the text it was typed as.
    pub filter: TraceFilter,
    pub filter_text: Option<String>,
    pub selected: usize,
    /// The newest list, held back while the cursor is below the top: the rows under it do not
    /// move while the user looks; going back to the top shows it.
    pub held: Option<Vec<TraceSummary>>,
    /// The trace being shown as a waterfall.
    pub open: Option<OpenTrace>,
    /// Set while a trace is being fetched, so Enter twice does not ask twice.
    pub loading: Option<TraceId>,
    pub error: Option<String>,
    pub drawn: super::rows::Drawn,
    /// When the list was last asked for.
    pub fetched: Option<Instant>,
}

#[derive(Debug)]
pub struct OpenTrace {
    pub id: TraceId,
    pub spans: Vec<SpanRecord>,
    pub collapsed: HashSet<SpanId>,
    pub layout: Flat,
    pub selected: usize,
    /// What `/` searched for; matching spans are highlighted, `n` goes to the next.
    pub search: Option<String>,
    /// The first row drawn; kept by drawing so the selection stays in view.
    pub offset: std::cell::Cell<usize>,
}

/// A trace flattened for drawing: rows in tree order and, for each, its span's index.
#[derive(Debug, Default)]
pub struct Flat {
    pub rows: Vec<WaterfallRow>,
    pub span_of_row: Vec<usize>,
    pub total_ns: u64,
}

/// Orders the spans as a tree (children by start time under their parent; spans whose parent
/// is not in the trace are roots), skips the children of folded spans, colours by service, and
/// marks the critical path: from the first root down, always into the child that ends last.
pub fn flatten(spans: &[SpanRecord], collapsed: &HashSet<SpanId>) -> Flat {
    flatten_search(spans, collapsed, None)
}

/// Whether `s` matches a span search: its name, service, or an attribute key or value.
pub fn span_matches(s: &SpanRecord, q: &str) -> bool {
    let q = q.to_lowercase();
    s.name.to_lowercase().contains(&q)
        || s.service.to_lowercase().contains(&q)
        || s.attributes
            .iter()
            .any(|(k, v)| k.to_lowercase().contains(&q) || v.to_lowercase().contains(&q))
}

/// [`flatten`], marking the spans that match `search`.
pub fn flatten_search(
    spans: &[SpanRecord],
    collapsed: &HashSet<SpanId>,
    search: Option<&str>,
) -> Flat {
    let Some(t0) = spans.iter().map(|s| s.start_unix_ns).min() else {
        return Flat::default();
    };
    let t1 = spans.iter().map(|s| s.end_unix_ns()).max().unwrap_or(t0);
    let index: HashMap<SpanId, usize> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.span_id, i))
        .collect();
    let mut children: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut roots = Vec::new();
    for (i, s) in spans.iter().enumerate() {
        match s.parent_id.and_then(|p| index.get(&p)) {
            Some(&p) if p != i => children.entry(p).or_default().push(i),
            _ => roots.push(i),
        }
    }
    let by_start = |v: &mut Vec<usize>| v.sort_by_key(|&i| (spans[i].start_unix_ns, i));
    by_start(&mut roots);
    for v in children.values_mut() {
        by_start(v);
    }

    let mut critical = HashSet::new();
    let mut at = roots.first().copied();
    while let Some(i) = at {
        if !critical.insert(i) {
            break;
        }
        at = children
            .get(&i)
            .and_then(|c| c.iter().copied().max_by_key(|&c| spans[c].end_unix_ns()));
    }

    let mut colours: Vec<&str> = Vec::new();
    let mut flat = Flat {
        total_ns: t1 - t0,
        ..Default::default()
    };
    // Depth-first, iteratively: a trace of 10 000 spans must not overflow the stack.
    let mut stack: Vec<(usize, u16)> = roots.iter().rev().map(|&r| (r, 0)).collect();
    let mut seen = HashSet::new();
    while let Some((i, depth)) = stack.pop() {
        if !seen.insert(i) {
            continue;
        }
        let s = &spans[i];
        let colour = match colours.iter().position(|c| *c == s.service) {
            Some(c) => c,
            None => {
                colours.push(&s.service);
                colours.len() - 1
            }
        };
        let kids = children.get(&i);
        let folded = collapsed.contains(&s.span_id);
        flat.rows.push(WaterfallRow {
            depth,
            name: s.name.clone(),
            service: s.service.clone(),
            start_ns: s.start_unix_ns - t0,
            duration_ns: s.duration_ns,
            error: s.error,
            critical: critical.contains(&i),
            has_children: kids.is_some(),
            collapsed: folded,
            highlight: search.is_some_and(|q| span_matches(s, q)),
            colour,
        });
        flat.span_of_row.push(i);
        if let (Some(kids), false) = (kids, folded) {
            stack.extend(kids.iter().rev().map(|&c| (c, depth + 1)));
        }
    }
    flat
}

impl OpenTrace {
    pub fn new(id: TraceId, spans: Vec<SpanRecord>) -> Self {
        let layout = flatten(&spans, &HashSet::new());
        OpenTrace {
            id,
            spans,
            collapsed: HashSet::new(),
            layout,
            selected: 0,
            search: None,
            offset: std::cell::Cell::new(0),
        }
    }

    pub fn selected_span(&self) -> Option<&SpanRecord> {
        self.layout
            .span_of_row
            .get(self.selected)
            .map(|&i| &self.spans[i])
    }

    /// Folds or unfolds the selected span's subtree.
    pub fn toggle(&mut self) {
        let Some(id) = self.selected_span().map(|s| s.span_id) else {
            return;
        };
        if !self.collapsed.remove(&id) {
            self.collapsed.insert(id);
        }
        self.relayout();
    }

    fn relayout(&mut self) {
        self.layout = flatten_search(&self.spans, &self.collapsed, self.search.as_deref());
        self.selected = self.selected.min(self.layout.rows.len().saturating_sub(1));
    }

    /// Highlights the spans matching `q` (empty clears) and goes to the first one.
    pub fn set_search(&mut self, q: String) -> usize {
        self.search = (!q.is_empty()).then_some(q);
        self.relayout();
        let found = self.layout.rows.iter().filter(|r| r.highlight).count();
        if found > 0 {
            self.selected = usize::MAX;
            self.next_match();
        }
        found
    }

    /// Moves to the next highlighted row after the selection, wrapping around.
    pub fn next_match(&mut self) {
        let n = self.layout.rows.len();
        let start = if self.selected >= n {
            0
        } else {
            self.selected + 1
        };
        if let Some(i) = (0..n)
            .map(|k| (start + k) % n.max(1))
            .find(|&i| self.layout.rows[i].highlight)
        {
            self.selected = i;
        }
    }
}

/// Reads the trace list's filter: `service:NAME`, `min:MS`, `error`, and any other words as
/// text to find in an operation.
pub fn parse_filter(text: &str) -> Result<TraceFilter, String> {
    parse_filter_at(text, devcluster::telemetry::clock::unix_ns() / 1_000_000)
}

/// [`parse_filter`] with `from:` and `to:` clock times (UTC, as the list shows them) read as
/// the last such time at or before `now_ms`.
pub fn parse_filter_at(text: &str, now_ms: u64) -> Result<TraceFilter, String> {
    let mut f = TraceFilter::default();
    let mut words = Vec::new();
    for w in text.split_whitespace() {
        if let Some(s) = w.strip_prefix("service:") {
            f.service = Some(s.to_string());
        } else if let Some(m) = w.strip_prefix("min:") {
            let ms = m
                .trim_end_matches("ms")
                .parse::<f64>()
                .map_err(|_| format!("min:{m}: expected milliseconds, e.g. min:50"))?;
            f.min_duration_ms = Some(ms);
        } else if let Some(t) = w.strip_prefix("from:") {
            f.since_unix_ms = Some(clock_at(t, now_ms).map_err(|e| format!("from:{t}: {e}"))?);
        } else if let Some(t) = w.strip_prefix("to:") {
            f.until_unix_ms = Some(clock_at(t, now_ms).map_err(|e| format!("to:{t}: {e}"))?);
        } else if w == "error" || w == "errors" {
            f.errors_only = true;
        } else {
            words.push(w);
        }
    }
    if !words.is_empty() {
        f.operation = Some(words.join(" "));
    }
    Ok(f)
}

/// A filter as it is typed (what [`parse_filter`] reads back).
pub fn filter_text(f: &TraceFilter) -> String {
    let mut words = Vec::new();
    if let Some(s) = &f.service {
        words.push(format!("service:{s}"));
    }
    if let Some(m) = f.min_duration_ms {
        words.push(format!("min:{m}"));
    }
    if let Some(t) = f.since_unix_ms {
        words.push(format!("from:{}", clock(t)));
    }
    if let Some(t) = f.until_unix_ms {
        words.push(format!("to:{}", clock(t)));
    }
    if f.errors_only {
        words.push("error".to_string());
    }
    words.extend(f.operation.clone());
    words.join(" ")
}

/// `HH:MM:SS[.mmm]` (UTC) as the last such moment at or before `now_ms`.
fn clock_at(t: &str, now_ms: u64) -> Result<u64, &'static str> {
    const EXPECTED: &str = "expected a time of day as the list shows it, e.g. 17:30:21.250";
    let (hms, frac) = t.split_once('.').unwrap_or((t, "0"));
    let parts: Vec<u64> = hms
        .split(':')
        .map(|p| p.parse::<u64>().map_err(|_| EXPECTED))
        .collect::<Result<_, _>>()?;
    let [h, m, sec] = parts[..] else {
        return Err(EXPECTED);
    };
    let ms = format!("{frac:0<3}")
        .get(..3)
        .and_then(|f| f.parse::<u64>().ok())
        .ok_or(EXPECTED)?;
    if h > 23 || m > 59 || sec > 59 {
        return Err(EXPECTED);
    }
    let of_day = ((h * 60 + m) * 60 + sec) * 1000 + ms;
    let day = now_ms - now_ms % 86_400_000;
    Ok(if day + of_day <= now_ms {
        day + of_day
    } else {
        (day + of_day).saturating_sub(86_400_000)
    })
}

impl TracesView {
    pub fn selected_trace(&self) -> Option<&TraceSummary> {
        self.list.get(self.selected)
    }

    /// A new list: shown at once when the cursor is on the top row (following the newest,
    /// as `tail -f` does), held back otherwise ([`TracesView::held`]).
    pub fn set_list(&mut self, list: Vec<TraceSummary>) {
        if self.selected > 0 && !self.list.is_empty() {
            self.held = Some(list);
        } else {
            self.list = list;
            self.held = None;
            self.selected = 0;
        }
    }

    /// A new filter (typed as `text`): the list closes any open trace, and its answer
    /// replaces the shown list whatever the cursor, asked for at once.
    pub fn set_filter(&mut self, filter: TraceFilter, text: Option<String>) {
        self.filter = filter;
        self.filter_text = text;
        self.open = None;
        self.selected = 0;
        self.held = None;
        self.fetched = None;
    }

    /// Traces held back that are not shown (they arrived since the user moved down).
    pub fn new_count(&self) -> usize {
        self.held.as_ref().map_or(0, |h| {
            h.iter()
                .filter(|t| !self.list.iter().any(|s| s.trace_id == t.trace_id))
                .count()
        })
    }

    /// j/k, space, n and Esc in the list or the waterfall.
    fn step(&mut self, action: &Action) {
        match (&mut self.open, action) {
            (Some(t), Action::Down) if t.selected + 1 < t.layout.rows.len() => t.selected += 1,
            (Some(t), Action::Up) => t.selected = t.selected.saturating_sub(1),
            (Some(t), Action::Toggle) => t.toggle(),
            (Some(t), Action::NextMatch) => t.next_match(),
            (Some(_), Action::Back) => self.open = None,
            (None, Action::Down) if self.selected + 1 < self.list.len() => self.selected += 1,
            (None, Action::Up) if self.selected > 1 => self.selected -= 1,
            // Back on top: following the newest again, held ones shown.
            (None, Action::Up) => {
                self.selected = 0;
                if let Some(list) = self.held.take() {
                    self.list = list;
                }
            }
            _ => {}
        }
    }
}

impl TabView for TracesView {
    fn on_action(&mut self, action: &Action, _cx: &Cx) -> Outcome {
        match action {
            Action::Open if self.open.is_none() => {
                let Some(id) = self.selected_trace().map(|t| t.trace_id) else {
                    return Outcome::Done;
                };
                if self.loading == Some(id) {
                    return Outcome::Done;
                }
                self.loading = Some(id);
                Outcome::Ask(Request::Trace(id))
            }
            Action::TraceLogs | Action::SpanLogs => {
                let Some(open) = &self.open else {
                    return Outcome::Done;
                };
                let span = match action {
                    Action::SpanLogs => match open.selected_span() {
                        Some(s) => Some(s.span_id),
                        None => return Outcome::Done,
                    },
                    _ => None,
                };
                Outcome::Show(Pivot::Logs {
                    trace: Some(open.id),
                    span,
                    search: None,
                })
            }
            // Esc on the list clears its filter (in a waterfall it closes the waterfall).
            Action::Back if self.open.is_none() && self.filter_text.is_some() => {
                self.set_filter(TraceFilter::default(), None);
                self.on_tick(Instant::now())
                    .map_or(Outcome::Done, Outcome::Ask)
            }
            Action::Search => Outcome::Prompt(match &self.open {
                Some(t) => Prompt::new(PromptFor::SpanSearch, t.search.clone().unwrap_or_default()),
                None => Prompt::new(
                    PromptFor::TraceFilter,
                    self.filter_text.clone().unwrap_or_default(),
                ),
            }),
            Action::Up
            | Action::Down
            | Action::Back
            | Action::Toggle
            | Action::NextMatch
            | Action::Open => {
                self.step(action);
                Outcome::Done
            }
            _ => Outcome::Ignored,
        }
    }

    fn render(&self, frame: &mut Frame, area: Rect, _cx: &Cx, theme: &Theme) {
        render(frame, area, self, theme);
    }

    fn cursor(&self) -> [usize; 3] {
        [
            self.selected,
            usize::from(self.held.is_some()),
            self.open.as_ref().map_or(0, |t| t.selected),
        ]
    }

    fn row_at(&mut self, column: u16, row: u16) -> Option<(usize, usize)> {
        Some((self.selected, self.drawn.row_at(column, row)?))
    }

    fn on_prompt(&mut self, purpose: PromptFor, text: String, _cx: &Cx) -> Outcome {
        match purpose {
            PromptFor::TraceFilter => match parse_filter(&text) {
                Ok(f) => {
                    self.set_filter(f, (!text.is_empty()).then_some(text));
                    self.on_tick(Instant::now())
                        .map_or(Outcome::Done, Outcome::Ask)
                }
                Err(e) => Outcome::Toast(e, true),
            },
            PromptFor::SpanSearch => {
                let Some(open) = self.open.as_mut() else {
                    return Outcome::Done;
                };
                let found = open.set_search(text.clone());
                if found == 0 && !text.is_empty() {
                    return Outcome::Toast(format!("no span matches \"{text}\""), true);
                }
                Outcome::Done
            }
            _ => Outcome::Ignored,
        }
    }

    fn on_tick(&mut self, now: Instant) -> Option<Request> {
        if self.open.is_some()
            || self
                .fetched
                .is_some_and(|at| now.duration_since(at) < TRACES_REFRESH)
        {
            return None;
        }
        self.fetched = Some(now);
        Some(Request::Traces(TraceFilter {
            limit: Some(LIST_LIMIT),
            ..self.filter.clone()
        }))
    }
}

pub fn render(frame: &mut Frame, area: Rect, view: &TracesView, theme: &Theme) {
    match &view.open {
        // Wide, the list stays beside the open trace (keys go to the trace; Esc back).
        Some(open) if area.width >= WIDE && !view.list.is_empty() => {
            let [list, trace] =
                Layout::horizontal([Constraint::Percentage(40), Constraint::Percentage(60)])
                    .areas(area);
            render_list(frame, list, view, theme);
            view.drawn.clear();
            render_trace(frame, trace, open, theme);
        }
        Some(open) => {
            view.drawn.clear();
            render_trace(frame, area, open, theme);
        }
        None => render_list(frame, area, view, theme),
    }
}

/// The services a trace went through, joined by arrows, whole names only: when they do not
/// all fit in `width`, the last ones give way to `→ …` (never a name cut in two).
fn path_within(services: &[String], width: usize) -> String {
    const MORE: &str = " → …";
    let whole = services.join(" → ");
    if whole.chars().count() <= width {
        return whole;
    }
    let mut shown = String::new();
    for s in services {
        let next = if shown.is_empty() {
            s.clone()
        } else {
            format!("{shown} → {s}")
        };
        if next.chars().count() + MORE.chars().count() > width {
            break;
        }
        shown = next;
    }
    if shown.is_empty() {
        "…".into()
    } else {
        shown + MORE
    }
}

fn render_list(frame: &mut Frame, area: Rect, view: &TracesView, theme: &Theme) {
    if view.list.is_empty() {
        let mut lines = match &view.filter_text {
            // A filter that keeps nothing (a breaker's window with no failed trace, say).
            Some(f) => vec![
                format!("No trace matches \"{f}\"."),
                String::new(),
                "Esc clears the filter; / changes it.".to_string(),
            ],
            None => vec![
                "No trace yet.".to_string(),
                String::new(),
                "Every request through the gateway or a sample service is traced;".to_string(),
                "the traffic generator makes some every second (ctl traffic 20).".to_string(),
            ],
        };
        if let Some(e) = &view.error {
            lines.push(String::new());
            lines.push(format!("error: {e}"));
        }
        frame.render_widget(&Notice::new(lines).title("Traces").theme(*theme), area);
        return;
    }
    // The root (the operation) whole, sized to the list; narrow, the trace id goes first (the
    // waterfall shows it), then the span count; the services' path takes the rest.
    let widths = fit(
        &[
            Column::keep(12),
            Column::drop(12, 2),
            Column::keep(1),
            Column::keep(widest(view.list.iter().map(|t| t.root.as_str()), 4).min(48)),
            Column::fill(28, 0),
            Column::drop(5, 1),
            Column::keep(9),
        ],
        area.width.saturating_sub(2),
        1,
    );
    let rows = view.list.iter().map(|t| {
        Row::new(shown(
            [
                Cell::from(Span::styled(clock(t.start_unix_ns / 1_000_000), theme.dim)),
                Cell::from(Span::styled(
                    t.trace_id.to_string()[..12].to_string(),
                    theme.dim,
                )),
                Cell::from(Span::styled(
                    if t.error { "✖" } else { " " },
                    theme.critical,
                )),
                // What the filter looked for, marked.
                Cell::from(highlight(
                    &t.root,
                    view.filter.operation.as_deref(),
                    theme.text,
                    theme.matched,
                )),
                Cell::from(highlight_owned(
                    &path_within(&t.services, usize::from(widths[4].unwrap_or(0))),
                    view.filter.service.as_deref(),
                    theme.text,
                    theme.matched,
                )),
                Cell::from(Line::from(t.span_count.to_string()).right_aligned()),
                Cell::from(
                    Line::from(duration_label((t.duration_ms * 1e6) as u64)).right_aligned(),
                ),
            ],
            &widths,
        ))
    });
    let table = Table::new(rows, constraints(&widths))
        .header(
            Row::new(shown(
                ["TIME", "TRACE", "", "ROOT", "SERVICES", "SPANS", "DURATION"],
                &widths,
            ))
            .style(theme.title),
        )
        .row_highlight_style(theme.selected)
        .block(
            Block::bordered()
                .title(Line::styled(
                    match &view.filter_text {
                        Some(f) => format!(
                            " Traces matching \"{f}\" ({}) · Enter opens · / changes ",
                            view.list.len()
                        ),
                        None => format!(
                            " Recent traces ({}) · Enter opens · / filters ",
                            view.list.len()
                        ),
                    } + &match view.new_count() {
                        0 => String::new(),
                        n if area.width >= 110 => {
                            format!("· {n} new above (k / Home at the top shows them) ")
                        }
                        n => format!("· {n} new (Home) "),
                    },
                    theme.title,
                ))
                .border_style(theme.border_focused),
        );
    let mut state = TableState::default().with_selected(Some(view.selected));
    frame.render_stateful_widget(table, area, &mut state);
    view.drawn.set(area, 1, state.offset());
}

fn render_trace(frame: &mut Frame, area: Rect, open: &OpenTrace, theme: &Theme) {
    let [wf_area, detail_area] =
        Layout::vertical([Constraint::Fill(1), Constraint::Length(11)]).areas(area);
    // Rows visible: the area less its borders and the axis line.
    let visible = wf_area.height.saturating_sub(3) as usize;
    open.offset.set(Waterfall::scroll_to(
        open.offset.get(),
        open.selected,
        visible,
    ));
    let errors = open.spans.iter().filter(|s| s.error).count();
    let title = Line::from(vec![
        Span::styled(format!(" trace {} ", open.id), theme.title),
        Span::styled(
            format!(
                "· {} spans · {} · {} errors · space folds · / finds{} · Esc back ",
                open.spans.len(),
                duration_label(open.layout.total_ns),
                errors,
                match &open.search {
                    Some(q) => format!(
                        " \"{q}\" ({} found, n next)",
                        open.layout.rows.iter().filter(|r| r.highlight).count()
                    ),
                    None => String::new(),
                }
            ),
            theme.dim,
        ),
    ]);
    let wf = Waterfall::new(&open.layout.rows, open.layout.total_ns)
        .selected(Some(open.selected))
        .offset(open.offset.get())
        .theme(*theme)
        .block(
            Block::bordered()
                .title(title)
                .border_style(theme.border_focused),
        );
    frame.render_widget(&wf, wf_area);
    if let Some(s) = open.selected_span() {
        frame.render_widget(details(s, theme), detail_area);
    }
}

fn details<'a>(s: &'a SpanRecord, theme: &Theme) -> Paragraph<'a> {
    let mut lines = vec![Line::from(vec![
        Span::styled(s.name.as_str(), theme.title),
        Span::raw(format!(
            "  {}{}  {}",
            s.service,
            if s.instance.is_empty() || s.instance == s.service {
                String::new()
            } else {
                format!(" ({})", s.instance)
            },
            duration_label(s.duration_ns)
        )),
        Span::styled(if s.error { "  error" } else { "" }, theme.critical),
        Span::styled(format!("  span {}", s.span_id), theme.dim),
    ])];
    let attrs: Vec<String> = s
        .attributes
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    lines.push(Line::from(vec![
        Span::styled("attributes  ", theme.dim),
        Span::raw(attrs.join("  ")),
    ]));
    for e in &s.events {
        let fields: Vec<String> = e
            .attributes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        lines.push(Line::from(vec![
            Span::styled(format!("{}  ", clock(e.at_unix_ns / 1_000_000)), theme.dim),
            Span::raw(e.message.as_str()),
            Span::styled(format!("  {}", fields.join(" ")), theme.dim),
        ]));
    }
    Paragraph::new(lines).wrap(Wrap { trim: false }).block(
        Block::bordered()
            .title(Line::styled(" Span ", theme.title))
            .border_style(theme.border),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(id: u64, parent: Option<u64>, service: &str, start_ms: u64, dur_ms: u64) -> SpanRecord {
        SpanRecord {
            trace_id: TraceId(7),
            span_id: SpanId(id),
            parent_id: parent.map(SpanId),
            service: service.into(),
            instance: String::new(),
            name: format!("op{id}"),
            start_unix_ns: 1_000_000_000 + start_ms * 1_000_000,
            duration_ns: dur_ms * 1_000_000,
            error: false,
            attributes: vec![],
            events: vec![],
        }
    }

    fn names(f: &Flat) -> Vec<(u16, String)> {
        f.rows.iter().map(|r| (r.depth, r.name.clone())).collect()
    }

    #[test]
    fn flattens_in_tree_order_with_depth_colours_and_critical_path() {
        // Out of order on purpose; span 9's parent is elsewhere (another process): a root.
        let spans = vec![
            span(3, Some(2), "order", 20, 50),
            span(1, None, "gateway", 0, 100),
            span(2, Some(1), "gateway", 10, 80),
            span(4, Some(1), "gateway", 5, 3),
            span(5, Some(2), "order", 15, 2),
            span(9, Some(42), "user", 200, 1),
        ];
        let f = flatten(&spans, &HashSet::new());
        assert_eq!(
            names(&f),
            [
                (0, "op1".into()),
                (1, "op4".into()),
                (1, "op2".into()),
                (2, "op5".into()),
                (2, "op3".into()),
                (0, "op9".into()),
            ]
        );
        assert_eq!(f.total_ns, 201_000_000);
        let critical: Vec<&str> = f
            .rows
            .iter()
            .filter(|r| r.critical)
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(critical, ["op1", "op2", "op3"]);
        assert_eq!(f.rows[0].colour, f.rows[1].colour);
        assert_ne!(f.rows[0].colour, f.rows[4].colour);
        assert!(f.rows[0].has_children && !f.rows[1].has_children);

        let folded = flatten(&spans, &[SpanId(2)].into());
        assert_eq!(folded.rows.len(), 4, "op2's two children are hidden");
        assert!(folded.rows[2].collapsed);
    }

    #[test]
    fn toggling_folds_the_selected_subtree() {
        let spans = vec![
            span(1, None, "a", 0, 10),
            span(2, Some(1), "a", 1, 5),
            span(3, Some(2), "b", 2, 1),
        ];
        let mut t = OpenTrace::new(TraceId(7), spans);
        t.selected = 1;
        t.toggle();
        assert_eq!(t.layout.rows.len(), 2);
        t.toggle();
        assert_eq!(t.layout.rows.len(), 3);
    }

    #[test]
    fn search_highlights_and_n_cycles_through_matches() {
        let mut spans = vec![
            span(1, None, "gateway", 0, 10),
            span(2, Some(1), "user-service", 1, 5),
            span(3, Some(1), "user-service", 6, 1),
        ];
        spans[0].attributes = vec![("peer.instance".into(), "user-service-2".into())];
        let mut t = OpenTrace::new(TraceId(7), spans);
        assert_eq!(
            t.set_search("user-service".into()),
            3,
            "service and attribute match"
        );
        assert_eq!(t.selected, 0);
        t.next_match();
        assert_eq!(t.selected, 1);
        assert_eq!(t.set_search("op3".into()), 1);
        assert_eq!(t.selected, 2);
        t.next_match();
        assert_eq!(t.selected, 2, "the only match wraps to itself");
        assert_eq!(t.set_search("nothing".into()), 0);
        assert_eq!(t.set_search(String::new()), 0);
        assert!(t.layout.rows.iter().all(|r| !r.highlight));
    }

    #[test]
    fn a_time_window_is_typed_as_clock_times_and_read_back() {
        // 2026-11-30 17:30:21.250 UTC.
        let now = 1_796_059_821_250;
        let day = now - now % 86_400_000;
        let f = parse_filter_at("from:17:30:11.25 to:17:30:21 service:user-service", now).unwrap();
        assert_eq!(f.since_unix_ms, Some(day + 63_011_250));
        assert_eq!(f.until_unix_ms, Some(day + 63_021_000));
        assert_eq!(
            filter_text(&f),
            "service:user-service from:17:30:11.250 to:17:30:21.000"
        );
        assert_eq!(parse_filter_at(&filter_text(&f), now).unwrap(), f);
        // A time later today than now is yesterday's.
        let f = parse_filter_at("from:23:59:00", now).unwrap();
        assert_eq!(f.since_unix_ms, Some(day - 60_000));
        for bad in ["from:25:00:00", "to:noon", "from:1:2", "to:10:00:00.x"] {
            let e = parse_filter_at(bad, now).unwrap_err();
            assert!(e.contains("expected a time of day"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_list_filter_reads_service_min_error_and_text() {
        let f = parse_filter("service:user-service min:50ms error GET users").unwrap();
        assert_eq!(f.service.as_deref(), Some("user-service"));
        assert_eq!(f.min_duration_ms, Some(50.0));
        assert!(f.errors_only);
        assert_eq!(f.operation.as_deref(), Some("GET users"));
        assert!(parse_filter("min:fast").unwrap_err().contains("min:fast"));
        assert_eq!(parse_filter("").unwrap(), TraceFilter::default());
    }

    #[test]
    fn a_deep_trace_does_not_overflow() {
        let spans: Vec<SpanRecord> = (1..=10_000)
            .map(|i| span(i, (i > 1).then(|| i - 1), "s", i, 1))
            .collect();
        let f = flatten(&spans, &HashSet::new());
        assert_eq!(f.rows.len(), 10_000);
        assert_eq!(f.rows[9_999].depth, 9_999);
    }
}
