//! Named styles, so widgets never hold colour literals and the palette changes in one place.
//! Three themes: dark (the default), light (for light terminal backgrounds) and monochrome
//! (`NO_COLOR`), where states stay readable from their symbols and text attributes alone.

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
    /// A list filter's match in the rows it kept.
    pub matched: Style,
    /// Colours per service and for marks (the waterfall); off in monochrome.
    pub colour: bool,
}

impl Default for Theme {
    fn default() -> Self {
        Theme::dark()
    }
}

impl Theme {
    /// For dark terminal backgrounds.
    pub fn dark() -> Theme {
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
            matched: Style::new()
                .fg(Color::Yellow)
                .add_modifier(Modifier::BOLD.union(Modifier::UNDERLINED)),
            colour: true,
        }
    }

    /// For light terminal backgrounds: no yellow or cyan text, which light backgrounds wash out.
    pub fn light() -> Theme {
        Theme {
            dim: Style::new().fg(Color::Gray),
            border: Style::new().fg(Color::Gray),
            border_focused: Style::new().fg(Color::Blue),
            // Dark orange of the 256-colour palette: Magenta is already a killed process's.
            warning: Style::new().fg(Color::Indexed(130)),
            key: Style::new().fg(Color::Blue).add_modifier(Modifier::BOLD),
            tab_active: Style::new().fg(Color::Blue).add_modifier(Modifier::BOLD),
            matched: Style::new().add_modifier(Modifier::BOLD.union(Modifier::UNDERLINED)),
            ..Theme::dark()
        }
    }

    /// No colour at all (`NO_COLOR`): text attributes only, beside the symbols every state
    /// already has (● ▲ ✖ for health, the breaker's state word).
    pub fn monochrome() -> Theme {
        let plain = Style::new();
        Theme {
            text: plain,
            dim: plain.add_modifier(Modifier::DIM),
            title: plain.add_modifier(Modifier::BOLD),
            border: plain,
            border_focused: plain.add_modifier(Modifier::BOLD),
            selected: plain.add_modifier(Modifier::REVERSED),
            passing: plain,
            warning: plain.add_modifier(Modifier::BOLD),
            critical: plain.add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
            killed: plain.add_modifier(Modifier::ITALIC),
            key: plain.add_modifier(Modifier::BOLD),
            tab_active: plain.add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
            error: plain.add_modifier(Modifier::BOLD),
            matched: plain.add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
            colour: false,
        }
    }

    /// The theme the environment asks for: `NO_COLOR` (any value, per no-color.org) wins, then
    /// `LGO_THEME=light|dark|mono`; dark otherwise.
    pub fn from_env(no_color: Option<&str>, lgo_theme: Option<&str>) -> Theme {
        if no_color.is_some_and(|v| !v.is_empty()) {
            return Theme::monochrome();
        }
        match lgo_theme.map(str::to_ascii_lowercase).as_deref() {
            Some("light") => Theme::light(),
            Some("mono" | "monochrome") => Theme::monochrome(),
            _ => Theme::dark(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_color_wins_then_lgo_theme() {
        assert_eq!(
            Theme::from_env(Some("1"), Some("light")),
            Theme::monochrome()
        );
        assert_eq!(Theme::from_env(Some(""), Some("light")), Theme::light());
        assert_eq!(Theme::from_env(None, Some("MONO")), Theme::monochrome());
        assert_eq!(Theme::from_env(None, None), Theme::dark());
    }
}
