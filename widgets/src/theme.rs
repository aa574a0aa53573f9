//! Named styles, so widgets never hold colour literals and the palette changes in one place.

use ratatui::style::{Color, Modifier, Style};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    pub text: Style,
    pub dim: Style,
    pub title: Style,
    pub border: Style,
    pub border_focused: Style,
    pub selected: Style,
    pub passing: Style,
    pub warning: Style,
    pub critical: Style,
    pub killed: Style,
    pub key: Style,
    pub tab_active: Style,
    pub error: Style,
}

impl Default for Theme {
    fn default() -> Self {
        Theme {
            text: Style::new(),
            dim: Style::new().fg(Color::DarkGray),
            title: Style::new().add_modifier(Modifier::BOLD),
            border: Style::new().fg(Color::DarkGray),
            border_focused: Style::new().fg(Color::Cyan),
            selected: Style::new().add_modifier(Modifier::REVERSED),
            passing: Style::new().fg(Color::Green),
            warning: Style::new().fg(Color::Yellow),
            critical: Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
            killed: Style::new().fg(Color::Magenta),
            key: Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
            tab_active: Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
            error: Style::new().fg(Color::Red),
        }
    }
}
