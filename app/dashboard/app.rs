//! The dashboard's state and how actions change it. Drawing reads this; nothing here awaits.

use super::action::Action;
use super::keymap::Keymap;
use super::palette;
use super::tabs::Tab;
use super::views::balancer::{self, BalancerView};
use super::views::breakers::BreakersView;
use super::views::config::{ConfigTab, EditKey, EnvPreview};
use super::views::filter::ListFilter;
use super::views::inspector::{Answer, Inspector, InspectorKey};
use super::views::instance::InstanceDetail;
use super::views::line::LineEdit;
use super::views::logs::LogsView;
use super::views::metrics::MetricsView;
use super::views::prompt::{Prompt, PromptFor, PromptKey};
use super::views::services::ServicesView;
use super::views::traces::{self, OpenTrace, TracesView};
use devcluster::breaker::Mode;
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
    logs_fetched: Option<Instant>,
    instance_fetched: Option<Instant>,
    traces_fetched: Option<Instant>,
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
            logs_fetched: None,
            instance_fetched: None,
            traces_fetched: None,
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
        let s = &self.services;
        let (current, index) = match self.tab {
            Tab::Services => match s.drawn_services.row_at(column, row) {
                Some(i) => {
                    self.services.focus = super::views::services::Focus::Services;
                    (self.services.service, i)
                }
                None => {
                    let i = s.drawn_instances.row_at(column, row)?;
                    self.services.focus = super::views::services::Focus::Instances;
                    (self.services.instance, i)
                }
            },
            Tab::Balancer => {
                let i = self.balancer.drawn_targets.row_at(column, row)?;
                self.balancer.focus = balancer::Focus::Targets;
                (self.balancer.target, i)
            }
            Tab::Breakers => (
                self.breakers.selected,
                self.breakers.drawn.row_at(column, row)?,
            ),
            Tab::Metrics => (
                self.metrics.selected,
                self.metrics.drawn.row_at(column, row)?,
            ),
            Tab::Traces => (self.traces.selected, self.traces.drawn.row_at(column, row)?),
            Tab::Config => (self.config.selected, self.config.drawn.row_at(column, row)?),
            Tab::Logs => {
                let i = self.logs.drawn.row_at(column, row)?;
                let last = self.logs.records.len().checked_sub(1)?;
                (self.logs.selected.unwrap_or(usize::MAX), i.min(last))
            }
        };
        if index == current {
            return self.on_action(Action::Open);
        }
        if self.tab == Tab::Logs {
            self.logs.selected = Some(index);
            return None;
        }
        // Step there as the keys would, each list keeping its own rules (held traces,
        // folded sections), until the cursor stops.
        let (step, times) = if index > current {
            (Action::Down, index - current)
        } else {
            (Action::Up, current - index)
        };
        for _ in 0..times {
            let before = self.cursor();
            self.on_action(step.clone());
            if self.cursor() == before {
                break;
            }
        }
        None
    }

    /// Where every cursor is, to tell whether a step moved one.
    fn cursor(&self) -> [usize; 11] {
        let s = &self.services;
        let b = &self.balancer;
        [
            s.service,
            s.instance,
            b.target,
            b.instance,
            self.breakers.selected,
            self.metrics.selected,
            self.traces.selected,
            usize::from(self.traces.held.is_some()),
            self.traces.open.as_ref().map_or(0, |t| t.selected),
            self.config.selected,
            self.logs.selected.map_or(usize::MAX, |l| l),
        ]
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
        self.services.clamp(&self.snapshot);
        self.balancer.clamp(&self.snapshot);
        self.breakers.clamp(&self.snapshot);
        self.metrics.clamp(&self.snapshot);
        self.config.clamp(&self.snapshot.config);
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
            Reply::Done(text) => self.toast(text, false),
            Reply::Failed(text) => self.toast(text, true),
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
                    (false, Ok(text)) => self.toast(text, false),
                    (false, Err(e)) => self.toast(e, true),
                }
            }
            Reply::EnvDiff(name, Ok(changes)) => {
                self.config.env_preview = Some(EnvPreview { name, changes });
            }
            Reply::EnvDiff(_, Err(e)) => self.toast(e, true),
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

    /// Applies an action; returns a request for the cluster when the action needs one.
    pub fn on_action(&mut self, action: Action) -> Option<Request> {
        if self.help && !matches!(action, Action::Quit | Action::ToggleHelp | Action::Back) {
            // The list scrolls when it does not fit; other keys wait until it is closed.
            let last = (self.keymap.bindings().len()).saturating_sub(self.help_rows.get().max(1));
            let at = self.help_offset;
            self.help_offset = match action {
                Action::Up => at.saturating_sub(1),
                Action::Down => at + 1,
                Action::PageUp => at.saturating_sub(PAGE),
                Action::PageDown => at + PAGE,
                Action::Top => 0,
                Action::Bottom => last,
                _ => at,
            }
            .min(last);
            return None;
        }
        let jump = match action {
            Action::Top => Some((Action::Up, usize::MAX)),
            Action::Bottom if self.tab == Tab::Logs => {
                self.logs.follow();
                return None;
            }
            Action::Bottom => Some((Action::Down, usize::MAX)),
            Action::PageUp => Some((Action::Up, PAGE)),
            Action::PageDown => Some((Action::Down, PAGE)),
            _ => None,
        };
        if let Some((step, times)) = jump {
            // Steps until the cursor stops: every list clamps its own.
            for _ in 0..times {
                let before = self.cursor();
                self.on_action(step.clone());
                if self.cursor() == before {
                    break;
                }
            }
            return None;
        }
        let cmd = match (action, self.tab) {
            (Action::Quit, _) => {
                self.quit = true;
                None
            }
            (Action::ToggleMouse, _) => {
                self.mouse = !self.mouse;
                let text = if self.mouse {
                    "mouse on: click a tab or a row, scroll with the wheel (m turns it off)"
                } else {
                    "mouse off: the terminal selects text (m turns it on)"
                };
                self.toast(text, false);
                None
            }
            (Action::ToggleHelp, _) => {
                self.help = !self.help;
                self.help_offset = 0;
                None
            }
            (Action::Back, _) if self.help => {
                self.help = false;
                None
            }
            (Action::NextTab, _) => {
                self.tab = Tab::from_index(self.tab.index() + 1);
                return self.on_tick(Instant::now());
            }
            (Action::PrevTab, _) => {
                self.tab = Tab::from_index(self.tab.index() + Tab::ALL.len() - 1);
                return self.on_tick(Instant::now());
            }
            (Action::GoToTab(i), _) => {
                self.tab = Tab::from_index(i);
                return self.on_tick(Instant::now());
            }
            (Action::TogglePause, _) => {
                self.paused = !self.paused;
                let text = if self.paused {
                    "paused: the view is frozen (p resumes)"
                } else {
                    "resumed: live updates again (p pauses)"
                };
                self.toast(text, false);
                None
            }
            (Action::Undo, Tab::Config) => return Some(Request::ConfigUndo),
            (Action::SwitchEnv, Tab::Config) => {
                self.prompt = Some(Prompt::new(PromptFor::Environment, self.env()));
                None
            }
            (Action::Unset, Tab::Config) => {
                let key = self.config.selected_key(&self.snapshot.config)?.to_string();
                return Some(Request::ConfigSet { key, value: None });
            }
            (
                Action::Search,
                Tab::Services | Tab::Balancer | Tab::Breakers | Tab::Metrics | Tab::Config,
            ) => {
                let text = self.list_filter().text().unwrap_or_default().to_string();
                self.prompt = Some(Prompt::new(PromptFor::ListFilter, text));
                None
            }
            (
                a @ (Action::Up | Action::Down | Action::Open | Action::Toggle | Action::Back),
                Tab::Config,
            ) => {
                self.config.on_action(&a, &self.snapshot.config);
                None
            }
            (Action::Inspect, _) => {
                self.inspector = Some(Inspector::default());
                None
            }
            (Action::Palette, _) => {
                self.prompt = Some(Prompt::new(PromptFor::Palette, ""));
                None
            }
            (Action::Open, Tab::Traces) if self.traces.open.is_none() => {
                let id = self.traces.selected_trace()?.trace_id;
                if self.traces.loading == Some(id) {
                    return None;
                }
                self.traces.loading = Some(id);
                return Some(Request::Trace(id));
            }
            (a @ (Action::TraceLogs | Action::SpanLogs), Tab::Traces) => {
                let open = self.traces.open.as_ref()?;
                let id = open.id;
                self.logs.span = match a {
                    Action::SpanLogs => Some(open.selected_span()?.span_id),
                    _ => None,
                };
                self.logs.trace = Some(id);
                self.logs.search = None;
                // A healthy request's lines are debug (access lines): all of the trace's show.
                self.logs.level = devcluster::telemetry::Level::Debug;
                self.logs.follow();
                self.tab = Tab::Logs;
                return self.fetch_logs(Instant::now());
            }
            (Action::Up, Tab::Logs) => {
                self.logs.up();
                None
            }
            (Action::Down, Tab::Logs) => {
                self.logs.down();
                None
            }
            (Action::Follow, Tab::Logs) => {
                self.logs.follow();
                None
            }
            (Action::CycleLevel, Tab::Logs) => {
                self.logs.level = self.logs.level.next();
                return self.fetch_logs(Instant::now());
            }
            (Action::Search, Tab::Logs) => {
                let text = self.logs.search.clone().unwrap_or_default();
                self.prompt = Some(Prompt::new(PromptFor::LogSearch, text));
                None
            }
            (Action::Search, Tab::Traces) => {
                self.prompt = Some(match &self.traces.open {
                    Some(t) => {
                        Prompt::new(PromptFor::SpanSearch, t.search.clone().unwrap_or_default())
                    }
                    None => Prompt::new(
                        PromptFor::TraceFilter,
                        self.traces.filter_text.clone().unwrap_or_default(),
                    ),
                });
                None
            }
            (Action::Back, Tab::Logs) => {
                self.logs.trace = None;
                self.logs.span = None;
                self.logs.search = None;
                self.logs.service = None;
                return self.fetch_logs(Instant::now());
            }
            (Action::Open, Tab::Logs) => {
                let Some(id) = self.logs.selected_record().and_then(|r| r.trace_id) else {
                    self.toast("this line belongs to no trace", true);
                    return None;
                };
                return self.open_trace(id);
            }
            (
                a @ (Action::Up | Action::Down | Action::Back | Action::Toggle | Action::NextMatch),
                Tab::Traces,
            ) => {
                self.traces.on_action(&a);
                None
            }
            (Action::Back, Tab::Services) if self.services.detail.is_some() => {
                self.services.detail = None;
                None
            }
            (Action::Open, Tab::Services) if self.services.detail.is_some() => {
                // A pivot: the trace of the newest pick that chose it.
                let d = self.services.detail.as_ref()?;
                let trace = d
                    .picks(&self.snapshot)
                    .into_iter()
                    .find_map(|p| p.trace_id.as_deref().and_then(TraceId::parse));
                let Some(id) = trace else {
                    self.toast("no recent pick of this instance has a trace", true);
                    return None;
                };
                return self.open_trace(id);
            }
            (Action::Open, Tab::Services)
                if self.services.focus == super::views::services::Focus::Instances
                    && !self.services.topology =>
            {
                let id = self
                    .services
                    .selected_instance(&self.snapshot)?
                    .view
                    .id
                    .clone();
                self.services.detail = Some(InstanceDetail::new(id));
                self.instance_fetched = None;
                return self.on_tick(Instant::now());
            }
            (a @ (Action::Up | Action::Down), Tab::Services) if self.services.detail.is_some() => {
                // In detail, the next or previous instance in detail.
                self.services.on_action(&a, &self.snapshot);
                let id = self
                    .services
                    .selected_instance(&self.snapshot)?
                    .view
                    .id
                    .clone();
                if self.services.detail.as_ref().is_some_and(|d| d.id != id) {
                    self.services.detail = Some(InstanceDetail::new(id));
                    self.instance_fetched = None;
                    return self.on_tick(Instant::now());
                }
                None
            }
            (Action::Open, Tab::Breakers) => {
                // A pivot: the traces that failed through the selected breaker's target.
                let b = self.breakers.selected_breaker(&self.snapshot)?;
                let (caller, target) = b.name.split_once("->")?;
                self.traces.filter = TraceFilter {
                    service: Some(target.to_string()),
                    errors_only: true,
                    ..Default::default()
                };
                self.traces.filter_text = Some(format!("service:{target} error"));
                self.traces.open = None;
                self.traces.refilter();
                self.traces_fetched = None;
                self.toast(
                    format!("failed traces through {target} (the breaker {caller}->{target} counts them)"),
                    false,
                );
                self.tab = Tab::Traces;
                return self.on_tick(Instant::now());
            }
            (a @ (Action::Up | Action::Down | Action::Open | Action::Back), tab) => {
                match tab {
                    Tab::Services => self.services.on_action(&a, &self.snapshot),
                    Tab::Balancer => self.balancer.on_action(&a, &self.snapshot),
                    Tab::Breakers => self.breakers.on_action(&a, &self.snapshot),
                    Tab::Metrics => self.metrics.on_action(&a, &self.snapshot),
                    _ => {}
                }
                None
            }
            (Action::InstanceLogs, Tab::Services) => {
                let id = match &self.services.detail {
                    Some(d) => d.id.clone(),
                    None => self
                        .services
                        .selected_instance(&self.snapshot)?
                        .view
                        .id
                        .clone(),
                };
                self.logs.trace = None;
                self.logs.span = None;
                self.logs.service = None;
                self.logs.search = Some(id);
                self.logs.level = devcluster::telemetry::Level::Debug;
                self.logs.follow();
                self.tab = Tab::Logs;
                return self.fetch_logs(Instant::now());
            }
            (Action::Topology, Tab::Services) => {
                self.services.topology = !self.services.topology;
                None
            }
            (a @ (Action::KillSelected | Action::RestartSelected), Tab::Services) => {
                self.services_command(&a)
            }
            (a @ (Action::NextStrategy | Action::PrevStrategy), Tab::Balancer) => {
                let b = self.balancer.selected_balancer(&self.snapshot)?;
                Some(Command::Strategy {
                    service: b.target.clone(),
                    strategy: balancer::cycle(b.strategy, a == Action::NextStrategy),
                })
            }
            (a @ (Action::WeightUp | Action::WeightDown), Tab::Balancer) => {
                let Some(inst) = self.balancer.selected_instance(&self.snapshot) else {
                    self.toast("select an instance first (Enter, then j/k)", true);
                    return None;
                };
                let w = inst.view.weight;
                let weight = if a == Action::WeightUp {
                    (w + 1).min(1000)
                } else {
                    w.saturating_sub(1)
                };
                Some(Command::Weight {
                    id: inst.view.id.clone(),
                    weight,
                })
            }
            (
                a
                @ (Action::ForceOpen | Action::ForceClosed | Action::BreakerAuto | Action::Toggle),
                Tab::Breakers,
            ) => {
                let b = self.breakers.selected_breaker(&self.snapshot)?;
                let mode = match a {
                    Action::ForceOpen => Mode::ForcedOpen,
                    Action::ForceClosed => Mode::ForcedClosed,
                    Action::BreakerAuto => Mode::Auto,
                    _ => b.mode.next(),
                };
                Some(Command::BreakerMode {
                    name: b.name.clone(),
                    mode,
                })
            }
            _ => None,
        };
        if let Some(c) = &cmd {
            self.apply_locally(c);
        }
        cmd.map(Request::Command)
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

    fn services_command(&mut self, action: &Action) -> Option<Command> {
        let Some(inst) = self.services.selected_instance(&self.snapshot) else {
            self.toast("no instance selected", true);
            return None;
        };
        let id = inst.view.id.clone();
        Some(if *action == Action::KillSelected {
            Command::Kill { id, for_s: None }
        } else {
            Command::Restart { id }
        })
    }

    /// The environment shown in the header: the cluster's, once it says.
    pub fn env(&self) -> &str {
        let live = self.snapshot.config.env.as_str();
        if live.is_empty() {
            &self.header.env
        } else {
            live
        }
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
            PromptFor::LogSearch => {
                self.logs.set_search(text);
                self.fetch_logs(Instant::now())
            }
            PromptFor::TraceFilter => match traces::parse_filter(&text) {
                Ok(f) => {
                    self.traces.filter = f;
                    self.traces.filter_text = (!text.is_empty()).then_some(text);
                    self.traces.refilter();
                    self.traces_fetched = None;
                    self.on_tick(Instant::now())
                }
                Err(e) => {
                    self.toast(e, true);
                    None
                }
            },
            PromptFor::Environment => Some(Request::EnvDiff(text)),
            PromptFor::Palette => match palette::parse(&text) {
                Ok(run) => {
                    if self.palette_history.last() != Some(&text) {
                        self.palette_history.push(text);
                    }
                    self.run_palette(run)
                }
                Err(e) => {
                    // Kept open with what was typed, to be fixed.
                    self.prompt = Some(Prompt::new(PromptFor::Palette, text));
                    self.toast(e, true);
                    None
                }
            },
            PromptFor::ListFilter => {
                self.list_filter_mut().set(text);
                let snap = &self.snapshot;
                match self.tab {
                    Tab::Services => {
                        self.services.service = 0;
                        self.services.instance = 0;
                        self.services.clamp(snap);
                    }
                    Tab::Breakers => {
                        self.breakers.selected = 0;
                        self.breakers.clamp(snap);
                    }
                    Tab::Metrics => {
                        self.metrics.selected = 0;
                        self.metrics.clamp(snap);
                    }
                    Tab::Config => {
                        self.config.selected = 0;
                        self.config.clamp(&snap.config);
                    }
                    _ => {}
                }
                None
            }
            PromptFor::SpanSearch => {
                let open = self.traces.open.as_mut()?;
                let found = open.set_search(text.clone());
                if found == 0 && !text.is_empty() {
                    self.toast(format!("no span matches \"{text}\""), true);
                }
                None
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
        let show = |app: &mut App, tab: Tab| {
            app.tab = tab;
            app.on_tick(Instant::now())
        };
        match cmd {
            C::Instances { .. } => show(self, Tab::Services),
            C::Breakers { .. } => show(self, Tab::Breakers),
            C::Balancers { .. } => show(self, Tab::Balancer),
            C::Metrics { .. } => show(self, Tab::Metrics),
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
                self.fetch_logs(Instant::now())
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
                let mut words = Vec::new();
                if let Some(s) = &service {
                    words.push(format!("service:{s}"));
                }
                if let Some(m) = min_ms {
                    words.push(format!("min:{m}"));
                }
                if errors {
                    words.push("error".to_string());
                }
                words.extend(operation.clone());
                self.traces.filter = TraceFilter {
                    service,
                    operation,
                    min_duration_ms: min_ms,
                    errors_only: errors,
                    limit: None,
                };
                self.traces.filter_text = (!words.is_empty()).then(|| words.join(" "));
                self.traces.open = None;
                self.traces.refilter();
                self.traces_fetched = None;
                show(self, Tab::Traces)
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
                    show(self, Tab::Config)
                }
                ConfigCommand::List { .. } | ConfigCommand::History { .. } => {
                    show(self, Tab::Config)
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

    /// The filter of the list on this tab (the Balancer's picks, the Services' instances, …).
    fn list_filter(&self) -> &ListFilter {
        match self.tab {
            Tab::Services => &self.services.filter,
            Tab::Balancer => &self.balancer.filter,
            Tab::Breakers => &self.breakers.filter,
            Tab::Metrics => &self.metrics.filter,
            _ => &self.config.filter,
        }
    }

    fn list_filter_mut(&mut self) -> &mut ListFilter {
        match self.tab {
            Tab::Services => &mut self.services.filter,
            Tab::Balancer => &mut self.balancer.filter,
            Tab::Breakers => &mut self.breakers.filter,
            Tab::Metrics => &mut self.metrics.filter,
            _ => &mut self.config.filter,
        }
    }

    /// Asks for the Logs tab's lines now.
    fn fetch_logs(&mut self, now: Instant) -> Option<Request> {
        self.logs_fetched = Some(now);
        Some(Request::Logs(self.logs.filter()))
    }

    /// Time passing: asks for the trace list or the log lines again while their tab shows.
    pub fn on_tick(&mut self, now: Instant) -> Option<Request> {
        if self.paused {
            return None;
        }
        if self.tab == Tab::Services
            && let Some(d) = &self.services.detail
        {
            if self
                .instance_fetched
                .is_some_and(|at| now.duration_since(at) < LOGS_REFRESH * 2)
            {
                return None;
            }
            self.instance_fetched = Some(now);
            return Some(Request::InstanceEvents(d.id.clone(), d.filter()));
        }
        if self.tab == Tab::Logs {
            if self
                .logs_fetched
                .is_some_and(|at| now.duration_since(at) < LOGS_REFRESH)
            {
                return None;
            }
            return self.fetch_logs(now);
        }
        if self.tab != Tab::Traces || self.traces.open.is_some() {
            return None;
        }
        if self
            .traces_fetched
            .is_some_and(|at| now.duration_since(at) < TRACES_REFRESH)
        {
            return None;
        }
        self.traces_fetched = Some(now);
        Some(Request::Traces(TraceFilter {
            limit: Some(traces::LIST_LIMIT),
            ..self.traces.filter.clone()
        }))
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
