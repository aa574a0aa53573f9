//! The dashboard's state and how actions change it. Drawing reads this; nothing here awaits.

use super::action::Action;
use super::keymap::Keymap;
use super::palette;
use super::tabs::{Cx, Outcome, Pivot, Tab, TabView};
use super::views::balancer::BalancerView;
use super::views::breakers::BreakersView;
use super::views::config::{ConfigTab, EditKey, EnvPreview};
use super::views::inspector::{Answer, Inspector, InspectorKey};
use super::views::line::LineEdit;
use super::views::logs::LogsView;
use super::views::metrics::MetricsView;
use super::views::prompt::{Prompt, PromptFor, PromptKey};
use super::views::services::ServicesView;
use super::views::traces::{self, OpenTrace, TracesView};
use devcluster::cluster::RouteExplain;
use devcluster::config::center::Change;
use devcluster::handle::{ClusterSnapshot, Link};
use devcluster::telemetry::{LogFilter, LogRecord, SpanRecord, TraceFilter, TraceId, TraceSummary};
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::crossterm::event::{MouseButton, MouseEvent, MouseEventKind};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a toast stays in the footer.
pub const TOAST_DURATION: Duration = Duration::from_secs(5);

/// What the header says about where the data comes from.
#[derive(Debug, Clone)]
pub struct Header {
    pub mode: String,
    pub env: String,
}

pub use devcluster::control::Command;

/// A request for the cluster, carried out by the event loop off the drawing path.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Command(Command),
    Explain {
        method: String,
        path: String,
    },
    Traces(TraceFilter),
    Trace(TraceId),
    Logs(LogFilter),
    /// Set a config key (`None`: remove its override).
    ConfigSet {
        key: String,
        value: Option<String>,
    },
    ConfigUndo,
    /// What switching to this environment would change.
    EnvDiff(String),
    /// An instance's timeline: the log lines about it.
    InstanceEvents(String, LogFilter),
    EnvSwitch(String),
}

/// A request as sent: a reply to it is applied only if no newer request of its kind was sent
/// since (a slow answer never overwrites a newer one). Commands are never dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    kind: Option<std::mem::Discriminant<Request>>,
    seq: u64,
}

/// What came back from a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Done(String),
    Failed(String),
    Explained(Box<Result<RouteExplain, String>>),
    Traces(Result<Vec<TraceSummary>, String>),
    Trace(TraceId, Result<Vec<SpanRecord>, String>),
    Logs(Result<Vec<LogRecord>, String>),
    /// The answer to a config edit of `key`.
    ConfigSet(String, Result<String, String>),
    EnvDiff(String, Result<Vec<Change>, String>),
    InstanceEvents(String, Result<Vec<LogRecord>, String>),
}

/// How often the trace list is refreshed while the Traces tab shows it.
pub const TRACES_REFRESH: Duration = Duration::from_secs(1);
/// How often the Logs tab asks for new lines.
pub const LOGS_REFRESH: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
pub struct Toast {
    pub text: String,
    pub error: bool,
    pub at: Instant,
}

/// What the dashboard itself costs, shown on the Metrics tab.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SelfCost {
    /// Frames drawn per second, over the last few seconds (none while nothing changes).
    pub frames_per_s: f64,
    /// How long the last frame took to build and write.
    pub frame_ms: f64,
    /// Its own CPU % and RSS when attached (embedded, they are the cluster process's).
    pub process: Option<(f64, u64)>,
}

/// The environment to show: the cluster's, once it says, else the one asked for.
fn env_of<'a>(snap: &'a ClusterSnapshot, header: &'a Header) -> &'a str {
    let live = snap.config.env.as_str();
    if live.is_empty() { &header.env } else { live }
}

/// Rows a PgUp / PgDn moves.
const PAGE: usize = 10;

pub struct App {
    pub header: Header,
    pub tab: Tab,
    /// The snapshot being shown (frozen while paused).
    pub snapshot: Arc<ClusterSnapshot>,
    pub paused: bool,
    pub help: bool,
    pub services: ServicesView,
    pub balancer: BalancerView,
    pub breakers: BreakersView,
    pub traces: TracesView,
    pub metrics: MetricsView,
    pub config: ConfigTab,
    pub logs: LogsView,
    /// The route inspector overlay, when open; it takes the keyboard.
    pub inspector: Option<Inspector>,
    /// A one-line text prompt (search, filter), when open; it takes the keyboard.
    pub prompt: Option<Prompt>,
    pub toast: Option<Toast>,
    pub quit: bool,
    /// The link to an attached cluster; a banner says when it is not up.
    pub link: Link,
    /// The first row of the help overlay shown, and how many rows it showed last (drawing
    /// knows the room).
    pub help_offset: usize,
    pub help_rows: std::cell::Cell<usize>,
    /// Dark, light or monochrome (`NO_COLOR`, `LGO_THEME`).
    pub theme: widgets::Theme,
    /// Mouse capture: clicks on tabs, the wheel scrolls. Off, the terminal selects text.
    pub mouse: bool,
    /// The tab bar's row as last drawn (below the attach banner when there is one), for clicks.
    pub tabs_row: std::cell::Cell<u16>,
    /// Every key's binding (built in, then the user's file).
    pub keymap: Arc<Keymap>,
    /// Palette lines run so far, oldest first (↑ recalls them).
    pub palette_history: Vec<String>,
    pub self_cost: SelfCost,
    /// The tab a pivot left (a trace opened from Logs or a pick, the traces of a breaker, a
    /// trace's lines): Esc back on the tab it showed returns there, as a browser's back does.
    /// Choosing a tab forgets it.
    pub came_from: Option<Tab>,
    /// The palette line whose command is on its way: refused by the cluster, the palette opens
    /// again with it, to be fixed (as a line the palette itself cannot read).
    palette_sent: Option<String>,
    /// The newest request sent of each kind that a newer one replaces (lists, a trace, logs).
    newest: std::collections::HashMap<std::mem::Discriminant<Request>, u64>,
    sent: u64,
}

impl App {
    pub fn new(header: Header, snapshot: Arc<ClusterSnapshot>) -> App {
        App {
            header,
            tab: Tab::default(),
            snapshot,
            paused: false,
            help: false,
            services: ServicesView::default(),
            balancer: BalancerView::default(),
            breakers: BreakersView::default(),
            traces: TracesView::default(),
            metrics: MetricsView::default(),
            config: ConfigTab::default(),
            logs: LogsView::default(),
            inspector: None,
            prompt: None,
            toast: None,
            quit: false,
            link: Link::Up,
            help_offset: 0,
            help_rows: std::cell::Cell::new(usize::MAX),
            theme: widgets::Theme::default(),
            mouse: true,
            tabs_row: std::cell::Cell::new(1),
            keymap: Arc::new(Keymap::default()),
            palette_history: Vec::new(),
            self_cost: SelfCost::default(),
            came_from: None,
            palette_sent: None,
            newest: std::collections::HashMap::new(),
            sent: 0,
        }
    }

    /// A key press outside prompts and editors: its binding's action on this tab.
    pub fn on_key(&mut self, key: KeyEvent) -> Option<Request> {
        let action = self.keymap.action(self.tab, key)?;
        self.on_action(action)
    }

    /// A mouse event: a click on the tab bar switches tab, the wheel moves the selection.
    pub fn on_mouse(&mut self, m: MouseEvent) -> Option<Request> {
        match m.kind {
            MouseEventKind::ScrollDown => self.on_action(Action::Down),
            MouseEventKind::ScrollUp => self.on_action(Action::Up),
            MouseEventKind::Down(MouseButton::Left) if m.row == self.tabs_row.get() => {
                let tab = super::render::tab_at(m.column)?;
                self.on_action(Action::GoToTab(tab))
            }
            MouseEventKind::Down(MouseButton::Left) => self.click_row(m.column, m.row),
            _ => None,
        }
    }

    /// A click on a list's row selects it; on the row already selected, opens it (as Enter).
    fn click_row(&mut self, column: u16, row: u16) -> Option<Request> {
        let (current, index) = self.view_mut().row_at(column, row)?;
        if index == current {
            return self.on_action(Action::Open);
        }
        if self.view_mut().select_row(index) {
            return None;
        }
        let (step, times) = if index > current {
            (Action::Down, index - current)
        } else {
            (Action::Up, current - index)
        };
        self.steps(step, times)
    }

    /// Steps as the keys would, each list keeping its own rules (held traces, folded
    /// sections), until the cursor stops or `times` steps were taken.
    fn steps(&mut self, step: Action, times: usize) -> Option<Request> {
        for _ in 0..times {
            let before = self.view_mut().cursor();
            self.on_action(step.clone());
            if self.view_mut().cursor() == before {
                break;
            }
        }
        None
    }

    /// The shown tab's view.
    pub fn view(&self) -> &dyn TabView {
        match self.tab {
            Tab::Services => &self.services,
            Tab::Balancer => &self.balancer,
            Tab::Breakers => &self.breakers,
            Tab::Metrics => &self.metrics,
            Tab::Traces => &self.traces,
            Tab::Config => &self.config,
            Tab::Logs => &self.logs,
        }
    }

    fn view_mut(&mut self) -> &mut dyn TabView {
        self.split().0
    }

    /// The shown tab's view, and what it reads besides itself.
    fn split(&mut self) -> (&mut dyn TabView, Cx<'_>) {
        let cx = Cx {
            snap: &self.snapshot,
            env: env_of(&self.snapshot, &self.header),
            cost: &self.self_cost,
        };
        let view: &mut dyn TabView = match self.tab {
            Tab::Services => &mut self.services,
            Tab::Balancer => &mut self.balancer,
            Tab::Breakers => &mut self.breakers,
            Tab::Metrics => &mut self.metrics,
            Tab::Traces => &mut self.traces,
            Tab::Config => &mut self.config,
            Tab::Logs => &mut self.logs,
        };
        (view, cx)
    }

    /// What the shown tab reads besides itself, for drawing.
    pub fn cx(&self) -> Cx<'_> {
        Cx {
            snap: &self.snapshot,
            env: self.env(),
            cost: &self.self_cost,
        }
    }

    /// The link to an attached cluster changed; returns whether the screen changes.
    pub fn on_link(&mut self, link: Link) -> bool {
        if link == self.link {
            return false;
        }
        if link == Link::Up && matches!(self.link, Link::Lost { ever_up: true, .. }) {
            self.toast("the cluster answers again", false);
        }
        self.link = link;
        true
    }

    /// A new snapshot arrived; returns whether the screen must be redrawn.
    pub fn on_snapshot(&mut self, snapshot: Arc<ClusterSnapshot>) -> bool {
        if self.paused {
            return false;
        }
        self.snapshot = snapshot;
        let snap = &self.snapshot;
        let views: [&mut dyn TabView; 5] = [
            &mut self.services,
            &mut self.balancer,
            &mut self.breakers,
            &mut self.metrics,
            &mut self.config,
        ];
        for v in views {
            v.clamp(snap);
        }
        true
    }

    /// A key while the inspector is open: it edits the input instead of acting.
    pub fn on_inspector_key(&mut self, key: KeyEvent) -> Option<Request> {
        let insp = self.inspector.as_mut()?;
        match insp.on_key(key) {
            InspectorKey::Close => self.inspector = None,
            InspectorKey::Explain { method, path } => {
                return Some(Request::Explain { method, path });
            }
            InspectorKey::Invalid(e) => insp.answer = Some(Answer::Failed(e)),
            InspectorKey::Edited | InspectorKey::Ignored => {}
        }
        None
    }

    /// Numbers a request about to be sent.
    pub fn ticket(&mut self, req: &Request) -> Ticket {
        self.sent += 1;
        let kind = match req {
            // Each command is its own: all their answers are said.
            Request::Command(_) | Request::ConfigSet { .. } | Request::ConfigUndo => None,
            Request::EnvSwitch(_) => None,
            other => Some(std::mem::discriminant(other)),
        };
        if let Some(k) = kind {
            self.newest.insert(k, self.sent);
        }
        Ticket {
            kind,
            seq: self.sent,
        }
    }

    /// A reply to the request `ticket` numbered; dropped when a newer request of its kind was
    /// sent since. Returns whether it was applied.
    pub fn on_answer(&mut self, ticket: Ticket, reply: Reply) -> bool {
        if let Some(k) = ticket.kind
            && self
                .newest
                .get(&k)
                .is_some_and(|newest| *newest > ticket.seq)
        {
            // Its trace wait is the newer request's: leave `loading` as it is.
            return false;
        }
        self.on_reply(reply);
        true
    }

    pub fn on_reply(&mut self, reply: Reply) {
        match reply {
            Reply::Done(text) => {
                self.palette_sent = None;
                self.toast(text, false);
            }
            Reply::Failed(text) => self.refused(text),
            Reply::Traces(Ok(list)) => {
                self.traces.error = None;
                self.traces.set_list(list);
            }
            Reply::Traces(Err(e)) => self.traces.error = Some(e),
            Reply::Logs(Ok(records)) => {
                self.logs.error = None;
                self.logs.set_records(records);
            }
            Reply::Logs(Err(e)) => self.logs.error = Some(e),
            Reply::Trace(id, result) => {
                if self.traces.loading == Some(id) {
                    self.traces.loading = None;
                }
                match result {
                    Ok(spans) if !spans.is_empty() => {
                        self.traces.open = Some(OpenTrace::new(id, spans));
                    }
                    Ok(_) => self.toast(format!("trace {id} is no longer in the store"), true),
                    Err(e) => self.toast(e, true),
                }
            }
            Reply::ConfigSet(key, result) => {
                let editing = self.config.editing.as_ref().is_some_and(|e| e.key == key);
                match (editing, result) {
                    (true, result) => {
                        if let Some(text) = self.config.on_answer(&key, result) {
                            self.toast(text, false);
                        }
                    }
                    (false, Ok(text)) => {
                        self.palette_sent = None;
                        self.toast(text, false);
                    }
                    (false, Err(e)) => self.refused(e),
                }
            }
            Reply::EnvDiff(name, Ok(changes)) => {
                self.palette_sent = None;
                self.config.env_preview = Some(EnvPreview { name, changes });
            }
            Reply::EnvDiff(_, Err(e)) => self.refused(e),
            Reply::InstanceEvents(id, result) => {
                if let Some(d) = self.services.detail.as_mut().filter(|d| d.id == id) {
                    match result {
                        Ok(lines) => {
                            d.timeline = lines;
                            d.error = None;
                        }
                        Err(e) => d.error = Some(e),
                    }
                }
            }
            Reply::Explained(r) => {
                if let Some(insp) = &mut self.inspector {
                    insp.answer = Some(match *r {
                        Ok(e) => Answer::Explained(Box::new(e)),
                        Err(e) => Answer::Failed(e),
                    });
                }
            }
        }
    }

    /// A refusal: said, and when a palette line asked for it, the palette opens again with the
    /// line to be fixed.
    fn refused(&mut self, text: String) {
        if let Some(line) = self.palette_sent.take()
            && self.prompt.is_none()
        {
            self.prompt = Some(Prompt::new(PromptFor::Palette, line));
        }
        self.toast(text, true);
    }

    /// Applies an action: the shown tab's first, the global ones when the tab does not take
    /// it. Returns a request for the cluster when the action needs one.
    pub fn on_action(&mut self, action: Action) -> Option<Request> {
        if self.help {
            return self.on_help_action(action);
        }
        let back = action == Action::Back;
        let outcome = {
            let (view, cx) = self.split();
            view.on_action(&action, &cx)
        };
        let taken = !matches!(outcome, Outcome::Ignored);
        let req = match outcome {
            Outcome::Ignored => self.on_global_action(action),
            outcome => self.apply(outcome),
        };
        // Esc that closed what a pivot showed: back to where the pivot started (the waterfall
        // closed, or the logs' trace filter cleared).
        let closed = match self.tab {
            Tab::Traces => self.traces.open.is_none() && self.traces.loading.is_none(),
            Tab::Logs => true,
            _ => false,
        };
        if back
            && taken
            && closed
            && let Some(tab) = self.came_from.take()
        {
            return self.go_to(tab).or(req);
        }
        req
    }

    /// While help shows, keys scroll it; Esc or ? closes it.
    fn on_help_action(&mut self, action: Action) -> Option<Request> {
        let last = (self.keymap.bindings().len()).saturating_sub(self.help_rows.get().max(1));
        let at = self.help_offset;
        self.help_offset = match action {
            Action::Quit => {
                self.quit = true;
                return None;
            }
            Action::ToggleHelp | Action::Back => {
                self.help = false;
                0
            }
            Action::Up => at.saturating_sub(1),
            Action::Down => at + 1,
            Action::PageUp => at.saturating_sub(PAGE),
            Action::PageDown => at + PAGE,
            Action::Top => 0,
            Action::Bottom => last,
            _ => at,
        }
        .min(last);
        None
    }

    /// What a tab could not do alone.
    fn apply(&mut self, outcome: Outcome) -> Option<Request> {
        match outcome {
            Outcome::Ignored | Outcome::Done => None,
            Outcome::Ask(req) => Some(req),
            Outcome::Send(cmd) => {
                self.apply_locally(&cmd);
                Some(Request::Command(cmd))
            }
            Outcome::Toast(text, error) => {
                self.toast(text, error);
                None
            }
            Outcome::Prompt(p) => {
                self.prompt = Some(p);
                None
            }
            Outcome::Show(pivot) => self.show(pivot),
        }
    }

    /// Goes to the tab that shows `pivot`.
    fn show(&mut self, pivot: Pivot) -> Option<Request> {
        let from = self.tab;
        let req = self.show_pivot(pivot);
        if self.tab != from {
            self.came_from = Some(from);
        }
        req
    }

    fn show_pivot(&mut self, pivot: Pivot) -> Option<Request> {
        match pivot {
            Pivot::Trace(id) => self.open_trace(id),
            Pivot::Traces { filter, text, why } => {
                self.traces.set_filter(filter, Some(text));
                if let Some(why) = why {
                    self.toast(why, false);
                }
                self.go_to(Tab::Traces)
            }
            Pivot::Logs {
                trace,
                span,
                search,
            } => {
                let logs = &mut self.logs;
                logs.trace = trace;
                logs.span = span;
                logs.search = search;
                logs.service = None;
                // A healthy request's lines are debug (access lines): all of them show.
                logs.level_before.get_or_insert(logs.level);
                logs.level = devcluster::telemetry::Level::Debug;
                logs.follow();
                self.tab = Tab::Logs;
                Some(self.logs.fetch(Instant::now()))
            }
        }
    }

    /// Shows `tab`, asking for its data when it has some to ask for.
    fn go_to(&mut self, tab: Tab) -> Option<Request> {
        self.tab = tab;
        self.on_tick(Instant::now())
    }

    /// The actions of `[global]`: tabs, help, pause, mouse, the palette and the inspector,
    /// and the jumps (g, G, PgUp, PgDn) on any list.
    fn on_global_action(&mut self, action: Action) -> Option<Request> {
        match action {
            Action::Top => self.steps(Action::Up, usize::MAX),
            Action::Bottom => self.steps(Action::Down, usize::MAX),
            Action::PageUp => self.steps(Action::Up, PAGE),
            Action::PageDown => self.steps(Action::Down, PAGE),
            Action::Quit => {
                self.quit = true;
                None
            }
            Action::ToggleMouse => {
                self.mouse = !self.mouse;
                let text = if self.mouse {
                    "mouse on: click a tab or a row, scroll with the wheel (m turns it off)"
                } else {
                    "mouse off: the terminal selects text (m turns it on)"
                };
                self.toast(text, false);
                None
            }
            Action::ToggleHelp => {
                self.help = true;
                self.help_offset = 0;
                None
            }
            Action::NextTab => {
                self.came_from = None;
                self.go_to(Tab::from_index(self.tab.index() + 1))
            }
            Action::PrevTab => {
                self.came_from = None;
                self.go_to(Tab::from_index(self.tab.index() + Tab::ALL.len() - 1))
            }
            Action::GoToTab(i) => {
                self.came_from = None;
                self.go_to(Tab::from_index(i))
            }
            Action::TogglePause => {
                self.paused = !self.paused;
                let text = if self.paused {
                    "paused: the view is frozen (p resumes)"
                } else {
                    "resumed: live updates again (p pauses)"
                };
                self.toast(text, false);
                None
            }
            Action::Inspect => {
                self.inspector = Some(Inspector::default());
                None
            }
            Action::Palette => {
                self.prompt = Some(Prompt::new(PromptFor::Palette, ""));
                None
            }
            _ => None,
        }
    }

    /// Shows a change at once, before the cluster's next snapshot confirms it, so that pressing
    /// a key twice quickly steps twice (`s s` moves two strategies on, `+ +` adds two).
    fn apply_locally(&mut self, cmd: &Command) {
        let snap = Arc::make_mut(&mut self.snapshot);
        match cmd {
            Command::Strategy { service, strategy } => {
                if let Some(b) = snap.balancers.iter_mut().find(|b| &b.target == service) {
                    b.strategy = *strategy;
                }
            }
            Command::Weight { id, weight } => {
                if let Some(i) = Arc::make_mut(&mut snap.instances)
                    .iter_mut()
                    .find(|i| &i.view.id == id)
                {
                    i.view.weight = *weight;
                }
            }
            Command::BreakerMode { name, mode } => {
                if let Some(b) = snap.breakers.iter_mut().find(|b| &b.name == name) {
                    b.mode = *mode;
                }
            }
            _ => {}
        }
    }

    /// The environment shown in the header: the cluster's, once it says.
    pub fn env(&self) -> &str {
        env_of(&self.snapshot, &self.header)
    }

    /// A key while the environment switch preview is open: `y` switches, anything else closes.
    pub fn on_env_preview_key(&mut self, key: KeyEvent) -> Option<Request> {
        let preview = self.config.env_preview.take()?;
        (key.code == KeyCode::Char('y')).then_some(Request::EnvSwitch(preview.name))
    }

    /// A key while a config value is being edited.
    pub fn on_config_key(&mut self, key: KeyEvent) -> Option<Request> {
        match self.config.on_edit_key(key) {
            EditKey::Submit { key, value } => Some(Request::ConfigSet {
                key,
                value: Some(value),
            }),
            EditKey::Edited | EditKey::Cancelled => None,
        }
    }

    /// A key while the prompt is open: edits it, or applies it to what it was opened for.
    pub fn on_prompt_key(&mut self, key: KeyEvent) -> Option<Request> {
        if self.prompt.as_ref()?.purpose == PromptFor::Palette && self.on_palette_key(key) {
            return None;
        }
        let prompt = self.prompt.as_mut()?;
        let purpose = prompt.purpose;
        let text = match prompt.on_key(key) {
            PromptKey::Typed => return None,
            PromptKey::Cancelled => {
                self.prompt = None;
                return None;
            }
            PromptKey::Applied(text) => text,
        };
        self.prompt = None;
        match purpose {
            PromptFor::Environment => Some(Request::EnvDiff(text)),
            PromptFor::Palette => match palette::parse(&text) {
                Ok(run) => {
                    if self.palette_history.last() != Some(&text) {
                        self.palette_history.push(text.clone());
                    }
                    // Refused before it is sent (an unknown strategy, say): kept open, as a
                    // line it cannot read.
                    if let palette::Run::Ctl(cmd) = &run
                        && let Err(e) = crate::ctl::command_of(cmd)
                    {
                        self.prompt = Some(Prompt::new(PromptFor::Palette, text));
                        self.toast(e.to_string(), true);
                        return None;
                    }
                    let req = self.run_palette(run);
                    // What the cluster may refuse: a command, a config edit, an environment.
                    if matches!(
                        req,
                        Some(Request::Command(_) | Request::ConfigSet { .. } | Request::EnvDiff(_))
                    ) {
                        self.palette_sent = Some(text);
                    }
                    req
                }
                Err(e) => {
                    // Kept open with what was typed, to be fixed.
                    self.prompt = Some(Prompt::new(PromptFor::Palette, text));
                    self.toast(e, true);
                    None
                }
            },
            // The tab's own prompts: its filter, its search.
            purpose => {
                let outcome = {
                    let (view, cx) = self.split();
                    view.on_prompt(purpose, text, &cx)
                };
                self.apply(outcome)
            }
        }
    }

    /// Tab, shift-Tab, ↑ and ↓ in the palette: completion and history. Returns whether the
    /// key was one of those.
    fn on_palette_key(&mut self, key: KeyEvent) -> bool {
        // The cluster's names are gathered for Tab only, not for every key typed.
        let names =
            matches!(key.code, KeyCode::Tab | KeyCode::BackTab).then(|| self.palette_names());
        let Some(p) = self.prompt.as_mut() else {
            return false;
        };
        match (key.code, names) {
            (KeyCode::Tab | KeyCode::BackTab, Some(names)) => {
                let text = p.text().to_string();
                let at = text
                    .char_indices()
                    .nth(p.line.cursor())
                    .map_or(text.len(), |(i, _)| i);
                let (before, after) = text.split_at(at);
                let start = palette::word_start(before);
                let word = &before[start..];
                // The word replaced, the cursor after it, what followed the cursor kept.
                let put = |p: &mut Prompt, w: &str| {
                    let head = format!("{}{w}", &before[..start]);
                    let cursor = head.chars().count();
                    p.line = LineEdit::with_cursor(format!("{head}{after}"), cursor);
                };
                if p.chosen.is_some() && !p.offered.is_empty() {
                    let n = p.offered.len();
                    let i = p.chosen.unwrap_or(0);
                    let next = if key.code == KeyCode::BackTab {
                        (i + n - 1) % n
                    } else {
                        (i + 1) % n
                    };
                    p.chosen = Some(next);
                    let w = p.offered[next].clone();
                    put(p, &w);
                    return true;
                }
                let (_, all) = palette::complete(before, &names);
                if let [only] = all.as_slice() {
                    p.offered.clear();
                    put(p, &format!("{only} "));
                } else if !all.is_empty() {
                    let common = palette::common_prefix(&all).to_string();
                    if common.len() > word.len() {
                        put(p, &common);
                    } else {
                        p.chosen = Some(0);
                        put(p, &all[0]);
                    }
                    p.offered = all;
                }
                true
            }
            (KeyCode::Up | KeyCode::Down, _) => {
                let n = self.palette_history.len();
                let next = match (key.code, p.recalled) {
                    (KeyCode::Up, None) if n > 0 => Some(0),
                    (KeyCode::Up, Some(r)) => Some((r + 1).min(n.saturating_sub(1))),
                    (KeyCode::Down, Some(r)) if r > 0 => Some(r - 1),
                    _ => None,
                };
                p.recalled = next;
                p.line =
                    LineEdit::new(next.map_or("", |r| self.palette_history[n - 1 - r].as_str()));
                p.offered.clear();
                p.chosen = None;
                true
            }
            _ => {
                // Typing ends a completion in progress.
                p.offered.clear();
                p.chosen = None;
                false
            }
        }
    }

    /// The cluster's names the palette completes.
    fn palette_names(&self) -> palette::Names {
        let snap = &self.snapshot;
        let mut services: Vec<String> =
            snap.services().iter().map(|g| g.name.to_string()).collect();
        services.extend(snap.balancers.iter().map(|b| b.target.clone()));
        palette::Names {
            instances: snap.instances.iter().map(|i| i.view.id.clone()).collect(),
            breakers: snap.breakers.iter().map(|b| b.name.clone()).collect(),
            services,
            keys: snap.config.entries.iter().map(|e| e.key.clone()).collect(),
            traces: self
                .traces
                .list
                .iter()
                .map(|t| t.trace_id.to_string())
                .collect(),
        }
    }

    /// Carries out a palette line: a command is sent as `ctl` would send it; a reading command
    /// shows its tab (`:logs --level warn` opens Logs at warn).
    fn run_palette(&mut self, run: palette::Run) -> Option<Request> {
        use crate::cli::{ConfigCommand, CtlCommand as C, RouteCommand, TracesCommand};
        let cmd = match run {
            palette::Run::Quit => {
                self.quit = true;
                return None;
            }
            palette::Run::Help => {
                self.help = true;
                self.help_offset = 0;
                return None;
            }
            palette::Run::Env(name) => {
                self.tab = Tab::Config;
                return Some(Request::EnvDiff(name));
            }
            palette::Run::Ctl(cmd) => cmd,
        };
        match crate::ctl::command_of(&cmd) {
            Ok(Some(c)) => {
                self.apply_locally(&c);
                return Some(Request::Command(c));
            }
            Ok(None) => {}
            Err(e) => {
                self.toast(e.to_string(), true);
                return None;
            }
        }
        match cmd {
            C::Instances { .. } => self.go_to(Tab::Services),
            C::Breakers { .. } => self.go_to(Tab::Breakers),
            C::Balancers { .. } => self.go_to(Tab::Balancer),
            C::Metrics { .. } => self.go_to(Tab::Metrics),
            C::Logs {
                level,
                service,
                trace,
                span,
                grep,
                ..
            } => {
                match level.parse::<devcluster::telemetry::Level>() {
                    Ok(l) => self.logs.level = l,
                    Err(e) => {
                        self.toast(e, true);
                        return None;
                    }
                }
                self.logs.trace = trace.as_deref().and_then(TraceId::parse);
                self.logs.span = span
                    .as_deref()
                    .and_then(devcluster::telemetry::SpanId::parse);
                self.logs.service = service;
                self.logs.search = grep;
                self.logs.follow();
                self.tab = Tab::Logs;
                Some(self.logs.fetch(Instant::now()))
            }
            C::Traces {
                command: Some(TracesCommand::Export { .. }),
                ..
            } => {
                self.toast(
                    "export writes a file: run `lgo-dash ctl traces export --out FILE` in a shell",
                    true,
                );
                None
            }
            C::Traces {
                service,
                operation,
                min_ms,
                errors,
                ..
            } => {
                let filter = TraceFilter {
                    service,
                    operation,
                    min_duration_ms: min_ms,
                    errors_only: errors,
                    ..Default::default()
                };
                let text = traces::filter_text(&filter);
                let text = (!text.is_empty()).then_some(text);
                self.traces.set_filter(filter, text);
                self.go_to(Tab::Traces)
            }
            C::Trace { id, .. } => match TraceId::parse(&id) {
                Some(id) => self.open_trace(id),
                None => {
                    self.toast(
                        format!("trace id {id:?}: expected 32 (or 16) hex digits"),
                        true,
                    );
                    None
                }
            },
            C::Route {
                command: RouteCommand::Explain { method, path, .. },
            } => {
                self.inspector = Some(Inspector {
                    input: LineEdit::new(format!("{method} {path}")),
                    example: false,
                    answer: Some(Answer::Pending),
                });
                Some(Request::Explain { method, path })
            }
            C::Config { command } => match command {
                ConfigCommand::Set { key, value } => Some(Request::ConfigSet {
                    key,
                    value: Some(value),
                }),
                ConfigCommand::Unset { key } => Some(Request::ConfigSet { key, value: None }),
                ConfigCommand::Undo => Some(Request::ConfigUndo),
                ConfigCommand::Env { name, yes: true } => Some(Request::EnvSwitch(name)),
                ConfigCommand::Env { name, yes: false } => {
                    self.tab = Tab::Config;
                    Some(Request::EnvDiff(name))
                }
                ConfigCommand::Get { key, .. } => {
                    self.config.filter.set(key);
                    self.config.selected = 0;
                    self.config.clamp(&self.snapshot.config);
                    self.go_to(Tab::Config)
                }
                ConfigCommand::List { .. } | ConfigCommand::History { .. } => {
                    self.go_to(Tab::Config)
                }
            },
            // The ones that change something were sent above.
            _ => None,
        }
    }

    /// Shows a trace's waterfall in the Traces tab (from a log line, a pick, the palette).
    fn open_trace(&mut self, id: TraceId) -> Option<Request> {
        self.tab = Tab::Traces;
        self.traces.open = None;
        self.traces.loading = Some(id);
        Some(Request::Trace(id))
    }

    /// Time passing: the shown tab asks for its data again when it is due (the trace list, the
    /// log lines, an instance's timeline).
    pub fn on_tick(&mut self, now: Instant) -> Option<Request> {
        if self.paused {
            return None;
        }
        self.view_mut().on_tick(now)
    }

    pub fn toast(&mut self, text: impl Into<String>, error: bool) {
        self.toast = Some(Toast {
            text: text.into(),
            error,
            at: Instant::now(),
        });
    }

    /// Drops an expired toast; returns whether that changed the screen.
    pub fn expire_toast(&mut self, now: Instant) -> bool {
        if self
            .toast
            .as_ref()
            .is_some_and(|t| now.duration_since(t.at) >= TOAST_DURATION)
        {
            self.toast = None;
            return true;
        }
        false
    }
}
