//! The seven tabs, their titles, and the [`TabView`] each one's view implements.

use super::action::Action;
use super::app::{Command, Request, SelfCost};
use super::views::filter::ListFilter;
use super::views::prompt::{Prompt, PromptFor};
use devcluster::handle::ClusterSnapshot;
use devcluster::telemetry::{SpanId, TraceFilter, TraceId};
use ratatui::Frame;
use ratatui::layout::Rect;
use std::time::Instant;
use widgets::Theme;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tab {
    #[default]
    Services,
    Balancer,
    Breakers,
    Metrics,
    Traces,
    Config,
    Logs,
}

impl Tab {
    pub const ALL: [Tab; 7] = [
        Tab::Services,
        Tab::Balancer,
        Tab::Breakers,
        Tab::Metrics,
        Tab::Traces,
        Tab::Config,
        Tab::Logs,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Tab::Services => "Services",
            Tab::Balancer => "Balancer",
            Tab::Breakers => "Breakers",
            Tab::Metrics => "Metrics",
            Tab::Traces => "Traces",
            Tab::Config => "Config",
            Tab::Logs => "Logs",
        }
    }

    pub fn index(self) -> usize {
        Tab::ALL.iter().position(|t| *t == self).unwrap_or(0)
    }

    pub fn from_index(i: usize) -> Tab {
        Tab::ALL[i % Tab::ALL.len()]
    }
}

/// What a tab's view reads besides its own state.
pub struct Cx<'a> {
    pub snap: &'a ClusterSnapshot,
    /// The environment the header shows (the cluster's, once it says).
    pub env: &'a str,
    /// What the dashboard itself costs (the Metrics tab shows it).
    pub cost: &'a SelfCost,
}

/// What became of an action a tab was given.
#[derive(Debug)]
pub enum Outcome {
    /// Not this tab's: a global binding may take it.
    Ignored,
    /// Done within the view.
    Done,
    /// Ask the cluster (its answer comes back as a `Reply`).
    Ask(Request),
    /// Change the cluster: shown at once, then sent.
    Send(Command),
    /// A line for the footer, an error or not.
    Toast(String, bool),
    /// Open a one-line prompt; its text comes back to [`TabView::on_prompt`].
    Prompt(Prompt),
    /// Show something on another tab.
    Show(Pivot),
}

/// A move to another tab with what to show there.
#[derive(Debug, PartialEq)]
pub enum Pivot {
    /// One trace's waterfall.
    Trace(TraceId),
    /// The trace list filtered, the filter typed as `text`; `why` is said in the footer.
    Traces {
        filter: TraceFilter,
        text: String,
        why: Option<String>,
    },
    /// Log lines at every level: a trace's (one of its spans'), or those that mention `search`.
    Logs {
        trace: Option<TraceId>,
        span: Option<SpanId>,
        search: Option<String>,
    },
}

/// One tab of the dashboard: how it acts on keys, how it draws, what it asks the cluster for.
/// The app holds one of each and gives the shown one the actions its keymap section names
/// before the global ones; what the tab cannot do alone (send, prompt, go to another tab) it
/// returns as an [`Outcome`].
pub trait TabView {
    fn on_action(&mut self, action: &Action, cx: &Cx) -> Outcome;

    fn render(&self, frame: &mut Frame, area: Rect, cx: &Cx, theme: &Theme);

    /// A new snapshot: cursors stay within the lists.
    fn clamp(&mut self, _snap: &ClusterSnapshot) {}

    /// Where its cursors are, to tell whether a step moved one (g, G and PgDn step until the
    /// cursor stops).
    fn cursor(&self) -> [usize; 3];

    /// The row under a click, with the row the cursor is on: `(cursor, clicked)`.
    fn row_at(&mut self, column: u16, row: u16) -> Option<(usize, usize)>;

    /// Selects a clicked row at once; `false`: the app steps there as j/k would.
    fn select_row(&mut self, _index: usize) -> bool {
        false
    }

    /// The text of a prompt this tab opened, applied.
    fn on_prompt(&mut self, _purpose: PromptFor, _text: String, _cx: &Cx) -> Outcome {
        Outcome::Ignored
    }

    /// Time passing while the tab shows: fresh data to ask for, if it is due.
    fn on_tick(&mut self, _now: Instant) -> Option<Request> {
        None
    }
}

/// `/` on a list: the prompt for its filter, with the current text to edit.
pub fn filter_prompt(filter: &ListFilter) -> Outcome {
    let text = filter.text().unwrap_or_default();
    Outcome::Prompt(Prompt::new(PromptFor::ListFilter, text))
}
