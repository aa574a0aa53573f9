//! What the dashboard can be asked to do, and the code's half of every binding: its name in
//! the keymap file, where it acts, its help and footer texts. The keys are the other half
//! (`keymap.rs`, defaults in `assets/keymap.toml`); dispatch, the footer and the `?` overlay all
//! read the one table they make, so they cannot disagree.

use super::tabs::Tab;

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
    /// The `:` command palette.
    Palette,
    /// The selected instance's log lines, in the Logs tab.
    InstanceLogs,
    /// The selected span's log lines, in the Logs tab.
    SpanLogs,
}

/// Where a binding acts: everywhere, or on one tab (where it comes before the global ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Global,
    Tab(Tab),
}

impl Scope {
    /// Every scope, in the keymap file's order.
    pub fn all() -> impl Iterator<Item = Scope> {
        std::iter::once(Scope::Global).chain(Tab::ALL.into_iter().map(Scope::Tab))
    }

    /// Its section in the keymap file: `global`, `services`, …
    pub fn section(self) -> String {
        match self {
            Scope::Global => "global".to_string(),
            Scope::Tab(t) => t.title().to_lowercase(),
        }
    }

    pub fn tab(self) -> Option<Tab> {
        match self {
            Scope::Global => None,
            Scope::Tab(t) => Some(t),
        }
    }
}

/// What a binding does, whatever its keys.
pub struct Def {
    pub scope: Scope,
    /// Its name in the keymap file.
    pub name: &'static str,
    pub action: Action,
    pub help: &'static str,
    /// The footer's short label (the most used bindings only).
    pub footer: Option<&'static str>,
    /// The other half of a pair the footer shows as one hint (`j/k move`, `1-7 tab`), and what
    /// joins their keys.
    pub pair: Option<(&'static str, &'static str)>,
    /// Tabs where a global binding does nothing, so their footer leaves it out.
    pub idle_on: &'static [Tab],
}

const fn def(
    scope: Scope,
    name: &'static str,
    action: Action,
    help: &'static str,
    footer: Option<&'static str>,
) -> Def {
    Def {
        scope,
        name,
        action,
        help,
        footer,
        pair: None,
        idle_on: &[],
    }
}

/// Every binding, global ones first, in the order of `?` and the footer.
pub fn defs() -> Vec<Def> {
    use Scope::Global as G;
    let on = Scope::Tab;
    let mut all = vec![
        Def {
            pair: Some(("tab_logs", "-")),
            ..def(
                G,
                "tab_services",
                Action::GoToTab(0),
                "the Services tab",
                Some("tab"),
            )
        },
        def(
            G,
            "tab_balancer",
            Action::GoToTab(1),
            "the Balancer tab",
            None,
        ),
        def(
            G,
            "tab_breakers",
            Action::GoToTab(2),
            "the Breakers tab",
            None,
        ),
        def(
            G,
            "tab_metrics",
            Action::GoToTab(3),
            "the Metrics tab",
            None,
        ),
        def(G, "tab_traces", Action::GoToTab(4), "the Traces tab", None),
        def(G, "tab_config", Action::GoToTab(5), "the Config tab", None),
        def(G, "tab_logs", Action::GoToTab(6), "the Logs tab", None),
        def(G, "next_tab", Action::NextTab, "next tab", None),
        def(G, "prev_tab", Action::PrevTab, "previous tab", None),
        Def {
            pair: Some(("up", "/")),
            ..def(
                G,
                "down",
                Action::Down,
                "move the selection down",
                Some("move"),
            )
        },
        def(G, "up", Action::Up, "move the selection up", None),
        def(G, "top", Action::Top, "first row", None),
        def(
            G,
            "bottom",
            Action::Bottom,
            "last row (on Logs: follow)",
            None,
        ),
        def(G, "page_up", Action::PageUp, "a page up", None),
        def(G, "page_down", Action::PageDown, "a page down", None),
        Def {
            idle_on: &[Tab::Metrics],
            ..def(
                G,
                "open",
                Action::Open,
                "open: instances, picks, a waterfall, a line's trace",
                Some("open"),
            )
        },
        def(G, "back", Action::Back, "back", None),
        def(
            on(Tab::Services),
            "filter",
            Action::Search,
            "filter services and instances; Esc clears",
            Some("filter"),
        ),
        def(
            on(Tab::Services),
            "kill",
            Action::KillSelected,
            "kill selected instance (like a crash)",
            Some("kill"),
        ),
        def(
            on(Tab::Services),
            "restart",
            Action::RestartSelected,
            "restart selected instance",
            Some("restart"),
        ),
        def(
            on(Tab::Services),
            "logs",
            Action::InstanceLogs,
            "the selected instance's log lines (in the Logs tab)",
            Some("logs"),
        ),
        def(
            on(Tab::Services),
            "topology",
            Action::Topology,
            "the call graph: who calls whom, rates, errors, breakers",
            Some("topology"),
        ),
        def(
            on(Tab::Balancer),
            "filter",
            Action::Search,
            "filter the picks; Esc clears",
            Some("filter"),
        ),
        Def {
            pair: Some(("prev_strategy", "/")),
            ..def(
                on(Tab::Balancer),
                "next_strategy",
                Action::NextStrategy,
                "next balancing strategy",
                Some("strategy"),
            )
        },
        def(
            on(Tab::Balancer),
            "prev_strategy",
            Action::PrevStrategy,
            "previous balancing strategy",
            None,
        ),
        Def {
            pair: Some(("weight_down", "/")),
            ..def(
                on(Tab::Balancer),
                "weight_up",
                Action::WeightUp,
                "raise the selected instance's weight",
                Some("weight"),
            )
        },
        def(
            on(Tab::Balancer),
            "weight_down",
            Action::WeightDown,
            "lower the selected instance's weight",
            None,
        ),
        def(
            on(Tab::Breakers),
            "filter",
            Action::Search,
            "filter breakers by name; Esc clears",
            Some("filter"),
        ),
        def(
            on(Tab::Breakers),
            "traces",
            Action::Open,
            "the failed traces through the breaker's target",
            None,
        ),
        def(
            on(Tab::Breakers),
            "force_open",
            Action::ForceOpen,
            "force the breaker open",
            Some("force open"),
        ),
        def(
            on(Tab::Breakers),
            "force_closed",
            Action::ForceClosed,
            "force the breaker closed",
            Some("force closed"),
        ),
        def(
            on(Tab::Breakers),
            "auto",
            Action::BreakerAuto,
            "back to automatic",
            Some("auto"),
        ),
        def(
            on(Tab::Breakers),
            "cycle",
            Action::Toggle,
            "cycle auto → forced open → forced closed",
            Some("cycle"),
        ),
        def(
            on(Tab::Metrics),
            "filter",
            Action::Search,
            "filter services, caller → target paths; Esc clears",
            Some("filter"),
        ),
        def(
            on(Tab::Traces),
            "filter",
            Action::Search,
            "filter the trace list; in a waterfall, find spans",
            Some("filter"),
        ),
        def(
            on(Tab::Traces),
            "next_match",
            Action::NextMatch,
            "in a waterfall, the next span found",
            Some("next"),
        ),
        def(
            on(Tab::Traces),
            "fold",
            Action::Toggle,
            "fold / unfold the selected span's subtree",
            Some("fold"),
        ),
        def(
            on(Tab::Traces),
            "logs",
            Action::TraceLogs,
            "the open trace's log lines (in the Logs tab)",
            Some("logs"),
        ),
        def(
            on(Tab::Traces),
            "span_logs",
            Action::SpanLogs,
            "the selected span's own log lines (in the Logs tab)",
            None,
        ),
        def(
            on(Tab::Config),
            "filter",
            Action::Search,
            "filter keys by name; Esc clears",
            Some("filter"),
        ),
        def(
            on(Tab::Config),
            "edit",
            Action::Open,
            "edit the selected key (a refusal shows in place)",
            Some("edit"),
        ),
        def(
            on(Tab::Config),
            "fold",
            Action::Toggle,
            "fold / unfold a section of keys",
            None,
        ),
        def(
            on(Tab::Config),
            "unset",
            Action::Unset,
            "remove the key's override (file or default again)",
            Some("unset"),
        ),
        def(
            on(Tab::Config),
            "env",
            Action::SwitchEnv,
            "switch environment: its diff first, y applies",
            Some("env"),
        ),
        def(
            on(Tab::Config),
            "undo",
            Action::Undo,
            "undo the newest config change",
            Some("undo"),
        ),
        def(
            on(Tab::Logs),
            "search",
            Action::Search,
            "search the messages and fields",
            Some("search"),
        ),
        def(
            on(Tab::Logs),
            "follow",
            Action::Follow,
            "follow the newest lines",
            Some("follow"),
        ),
        def(
            on(Tab::Logs),
            "level",
            Action::CycleLevel,
            "minimum level: debug → info → warn → error → fatal",
            Some("level"),
        ),
    ];
    all.extend([
        def(
            G,
            "explain",
            Action::Inspect,
            "route inspector: how the gateway routes METHOD PATH",
            Some("explain"),
        ),
        def(
            G,
            "palette",
            Action::Palette,
            "command palette: any ctl command, Tab completes",
            Some("command"),
        ),
        def(
            G,
            "pause",
            Action::TogglePause,
            "pause / resume live updates",
            Some("pause"),
        ),
        def(
            G,
            "mouse",
            Action::ToggleMouse,
            "mouse on / off (off: select text in the terminal)",
            None,
        ),
        def(
            G,
            "help",
            Action::ToggleHelp,
            "show / hide this help",
            Some("help"),
        ),
        def(G, "quit", Action::Quit, "quit", Some("quit")),
    ]);
    all
}
