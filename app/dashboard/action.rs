//! Keys become `Action`s through one table, which also feeds the footer hints and the `?`
//! overlay, so they cannot disagree.

use super::tabs::Tab;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Quit,
    NextTab,
    PrevTab,
    GoToTab(usize),
    Up,
    Down,
    /// First / last row, a page up / down: as many `Up`s or `Down`s as move the cursor.
    Top,
    Bottom,
    PageUp,
    PageDown,
    Open,
    Back,
    KillSelected,
    RestartSelected,
    NextStrategy,
    PrevStrategy,
    WeightUp,
    WeightDown,
    ForceOpen,
    ForceClosed,
    BreakerAuto,
    /// Space: cycles a breaker's mode, folds a span's subtree.
    Toggle,
    Inspect,
    Follow,
    CycleLevel,
    Search,
    TraceLogs,
    NextMatch,
    TogglePause,
    ToggleHelp,
    /// Undo the newest config change.
    Undo,
    /// Remove the selected config key's override.
    Unset,
    /// Switch environment (after seeing the diff).
    SwitchEnv,
    /// Mouse capture on or off (off: the terminal selects text again).
    ToggleMouse,
    /// The Services tab: the call graph instead of the instances.
    Topology,
}

/// A binding as the help overlay shows it.
pub struct Binding {
    pub keys: &'static str,
    pub action: Action,
    pub help: &'static str,
    /// The footer's short label (the most used bindings only).
    pub footer: Option<&'static str>,
    /// The tab it acts on; `None` for keys that work everywhere.
    pub tab: Option<Tab>,
    /// Tabs where a global binding does nothing, so their footer leaves it out.
    pub idle_on: &'static [Tab],
}

/// Every binding, global ones first. Order here is the order in `?` and the footer.
pub fn bindings() -> Vec<Binding> {
    let b = |keys, action, help, footer, tab| Binding {
        keys,
        action,
        help,
        footer,
        tab,
        idle_on: &[],
    };
    let services = Some(Tab::Services);
    let balancer = Some(Tab::Balancer);
    let breakers = Some(Tab::Breakers);
    vec![
        b("1-7", Action::GoToTab(0), "switch tab", Some("tab"), None),
        b(
            "Tab / S-Tab",
            Action::NextTab,
            "next / previous tab",
            None,
            None,
        ),
        b(
            "j k ↑ ↓",
            Action::Down,
            "move selection",
            Some("move"),
            None,
        ),
        b(
            "g G Home End",
            Action::Top,
            "first / last row (End on Logs: follow)",
            None,
            None,
        ),
        b("PgUp PgDn", Action::PageUp, "a page up / down", None, None),
        Binding {
            idle_on: &[Tab::Breakers, Tab::Metrics],
            ..b(
                "Enter",
                Action::Open,
                "open: instances, a trace's waterfall, a line's trace",
                Some("open"),
                None,
            )
        },
        b("Esc", Action::Back, "back", None, None),
        b(
            "x",
            Action::KillSelected,
            "kill selected instance (like a crash)",
            Some("kill"),
            services,
        ),
        b(
            "r",
            Action::RestartSelected,
            "restart selected instance",
            Some("restart"),
            services,
        ),
        b(
            "t",
            Action::Topology,
            "the call graph: who calls whom, rates, errors, breakers",
            Some("topology"),
            services,
        ),
        b(
            "s / S",
            Action::NextStrategy,
            "next / previous balancing strategy",
            Some("strategy"),
            balancer,
        ),
        b(
            "+ / -",
            Action::WeightUp,
            "raise / lower the selected instance's weight",
            Some("weight"),
            balancer,
        ),
        b(
            "o",
            Action::ForceOpen,
            "force the breaker open",
            Some("force open"),
            breakers,
        ),
        b(
            "c",
            Action::ForceClosed,
            "force the breaker closed",
            Some("force closed"),
            breakers,
        ),
        b(
            "a",
            Action::BreakerAuto,
            "back to automatic",
            Some("auto"),
            breakers,
        ),
        b(
            "space",
            Action::Toggle,
            "cycle auto → forced open → forced closed",
            Some("cycle"),
            breakers,
        ),
        b(
            "space",
            Action::Toggle,
            "fold / unfold the selected span's subtree",
            Some("fold"),
            Some(Tab::Traces),
        ),
        b(
            "L",
            Action::TraceLogs,
            "the open trace's log lines (in the Logs tab)",
            Some("logs"),
            Some(Tab::Traces),
        ),
        b(
            "/",
            Action::Search,
            "filter the trace list; in a waterfall, find spans",
            Some("filter"),
            Some(Tab::Traces),
        ),
        b(
            "n",
            Action::NextMatch,
            "in a waterfall, the next span found",
            Some("next"),
            Some(Tab::Traces),
        ),
        b(
            "f",
            Action::Follow,
            "follow the newest lines",
            Some("follow"),
            Some(Tab::Logs),
        ),
        b(
            "v",
            Action::CycleLevel,
            "minimum level: debug → info → warn → error",
            Some("level"),
            Some(Tab::Logs),
        ),
        b(
            "/",
            Action::Search,
            "search the messages and fields",
            Some("search"),
            Some(Tab::Logs),
        ),
        b(
            "Enter",
            Action::Open,
            "edit the selected key (a refusal shows in place)",
            Some("edit"),
            Some(Tab::Config),
        ),
        b(
            "space",
            Action::Toggle,
            "fold / unfold a section of keys",
            None,
            Some(Tab::Config),
        ),
        b(
            "d",
            Action::Unset,
            "remove the key's override (file or default again)",
            Some("unset"),
            Some(Tab::Config),
        ),
        b(
            "E",
            Action::SwitchEnv,
            "switch environment: its diff first, y applies",
            Some("env"),
            Some(Tab::Config),
        ),
        b(
            "u",
            Action::Undo,
            "undo the newest config change",
            Some("undo"),
            Some(Tab::Config),
        ),
        b(
            "e",
            Action::Inspect,
            "route inspector: how the gateway routes METHOD PATH",
            Some("explain"),
            None,
        ),
        b(
            "p",
            Action::TogglePause,
            "pause / resume live updates",
            Some("pause"),
            None,
        ),
        b(
            "m",
            Action::ToggleMouse,
            "mouse on / off (off: select text in the terminal)",
            None,
            None,
        ),
        b(
            "?",
            Action::ToggleHelp,
            "show / hide this help",
            Some("help"),
            None,
        ),
        b("q", Action::Quit, "quit", Some("quit"), None),
    ]
}

/// Maps a key press to an action; `None` when the key means nothing here.
pub fn action_for(key: KeyEvent) -> Option<Action> {
    if key.kind != KeyEventKind::Press && key.kind != KeyEventKind::Repeat {
        return None;
    }
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
        return Some(Action::Quit);
    }
    Some(match key.code {
        KeyCode::Char('q') => Action::Quit,
        KeyCode::Tab => Action::NextTab,
        KeyCode::BackTab => Action::PrevTab,
        KeyCode::Char(c @ '1'..='7') => Action::GoToTab(c as usize - '1' as usize),
        KeyCode::Char('j') | KeyCode::Down => Action::Down,
        KeyCode::Char('k') | KeyCode::Up => Action::Up,
        KeyCode::Char('g') | KeyCode::Home => Action::Top,
        KeyCode::Char('G') | KeyCode::End => Action::Bottom,
        KeyCode::PageUp => Action::PageUp,
        KeyCode::PageDown => Action::PageDown,
        KeyCode::Enter | KeyCode::Char('l') | KeyCode::Right => Action::Open,
        KeyCode::Esc | KeyCode::Char('h') | KeyCode::Left => Action::Back,
        KeyCode::Char('x') => Action::KillSelected,
        KeyCode::Char('r') => Action::RestartSelected,
        KeyCode::Char('s') => Action::NextStrategy,
        KeyCode::Char('S') => Action::PrevStrategy,
        KeyCode::Char('+' | '=') => Action::WeightUp,
        KeyCode::Char('-') => Action::WeightDown,
        KeyCode::Char('o') => Action::ForceOpen,
        KeyCode::Char('c') => Action::ForceClosed,
        KeyCode::Char('a') => Action::BreakerAuto,
        KeyCode::Char(' ') => Action::Toggle,
        KeyCode::Char('e') => Action::Inspect,
        KeyCode::Char('f') => Action::Follow,
        KeyCode::Char('v') => Action::CycleLevel,
        KeyCode::Char('/') => Action::Search,
        KeyCode::Char('L') => Action::TraceLogs,
        KeyCode::Char('n') => Action::NextMatch,
        KeyCode::Char('p') => Action::TogglePause,
        KeyCode::Char('u') => Action::Undo,
        KeyCode::Char('d') => Action::Unset,
        KeyCode::Char('E') => Action::SwitchEnv,
        KeyCode::Char('m') => Action::ToggleMouse,
        KeyCode::Char('t') => Action::Topology,
        KeyCode::Char('?') => Action::ToggleHelp,
        _ => return None,
    })
}
