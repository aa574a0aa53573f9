//! Keys become `Action`s through one table, which also feeds the footer hints and the `?`
//! overlay, so they cannot disagree.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Quit,
    NextTab,
    PrevTab,
    GoToTab(usize),
    Up,
    Down,
    Open,
    Back,
    KillSelected,
    RestartSelected,
    TogglePause,
    ToggleHelp,
}

/// A binding as the help overlay shows it.
pub struct Binding {
    pub keys: &'static str,
    pub action: Action,
    pub help: &'static str,
    /// The footer's short label (the most used bindings only).
    pub footer: Option<&'static str>,
}

/// Every binding, global ones first. Order here is the order in `?` and the footer.
pub fn bindings() -> Vec<Binding> {
    let b = |keys, action, help, footer| Binding {
        keys,
        action,
        help,
        footer,
    };
    vec![
        b("1-7", Action::GoToTab(0), "switch tab", Some("tab")),
        b("Tab / S-Tab", Action::NextTab, "next / previous tab", None),
        b("j k ↑ ↓", Action::Down, "move selection", Some("move")),
        b(
            "Enter",
            Action::Open,
            "open (services: focus its instances)",
            Some("open"),
        ),
        b("Esc", Action::Back, "back", None),
        b(
            "x",
            Action::KillSelected,
            "kill selected instance (like a crash)",
            Some("kill"),
        ),
        b(
            "r",
            Action::RestartSelected,
            "restart selected instance",
            Some("restart"),
        ),
        b(
            "p",
            Action::TogglePause,
            "pause / resume live updates",
            Some("pause"),
        ),
        b(
            "?",
            Action::ToggleHelp,
            "show / hide this help",
            Some("help"),
        ),
        b("q", Action::Quit, "quit", Some("quit")),
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
        KeyCode::Enter | KeyCode::Char('l') | KeyCode::Right => Action::Open,
        KeyCode::Esc | KeyCode::Char('h') | KeyCode::Left => Action::Back,
        KeyCode::Char('x') => Action::KillSelected,
        KeyCode::Char('r') => Action::RestartSelected,
        KeyCode::Char('p') => Action::TogglePause,
        KeyCode::Char('?') => Action::ToggleHelp,
        _ => return None,
    })
}
