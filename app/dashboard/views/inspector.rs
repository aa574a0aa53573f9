//! The route inspector overlay (`e`): type `METHOD PATH`, Enter asks the cluster how the gateway
//! would route it — matched route, rewritten path, target, candidates, the balancer's choice and
//! the breaker's decision — the same answer as `lgo-dash ctl route explain`.

use super::line::LineEdit;
use devcluster::cluster::RouteExplain;
use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};
use widgets::Theme;

#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Pending,
    Explained(Box<RouteExplain>),
    Failed(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Inspector {
    pub input: LineEdit,
    /// The input is still the example it opened with, shown selected: typing replaces it.
    pub example: bool,
    pub answer: Option<Answer>,
}

/// What a key did to the inspector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InspectorKey {
    Edited,
    Close,
    Explain { method: String, path: String },
    Invalid(String),
    Ignored,
}

impl Default for Inspector {
    fn default() -> Self {
        Inspector {
            input: LineEdit::new("GET /api/users/1"),
            example: true,
            answer: None,
        }
    }
}

/// "GET /x" → ("GET", "/x"); a bare path means GET.
pub fn parse(input: &str) -> Result<(String, String), String> {
    let mut words = input.split_whitespace();
    let (method, path) = match (words.next(), words.next(), words.next()) {
        (Some(p), None, _) if p.starts_with('/') => ("GET".to_string(), p.to_string()),
        (Some(m), Some(p), None) if p.starts_with('/') => (m.to_ascii_uppercase(), p.to_string()),
        _ => {
            return Err(format!(
                "\"{input}\": expected METHOD PATH, e.g. GET /api/users/1"
            ));
        }
    };
    if !method.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(format!("\"{method}\" is not an HTTP method"));
    }
    Ok((method, path))
}

impl Inspector {
    pub fn on_key(&mut self, key: KeyEvent) -> InspectorKey {
        match key.code {
            KeyCode::Esc => InspectorKey::Close,
            KeyCode::Enter => match parse(self.input.value()) {
                Ok((method, path)) => {
                    self.answer = Some(Answer::Pending);
                    InspectorKey::Explain { method, path }
                }
                Err(e) => InspectorKey::Invalid(e),
            },
            // The first character typed, or a deletion, replaces the example as a whole.
            KeyCode::Char(_) | KeyCode::Backspace | KeyCode::Delete if self.example => {
                self.example = false;
                self.input.set("");
                self.input.on_key(key);
                InspectorKey::Edited
            }
            _ if self.input.on_key(key) => {
                self.example = false;
                InspectorKey::Edited
            }
            _ => InspectorKey::Ignored,
        }
    }
}

pub fn render(frame: &mut Frame, area: Rect, insp: &Inspector, theme: &Theme) {
    let [popup] = Layout::horizontal([Constraint::Length(96.min(area.width))])
        .flex(Flex::Center)
        .areas(area);
    let [popup] = Layout::vertical([Constraint::Length(18.min(area.height))])
        .flex(Flex::Center)
        .areas(popup);
    // The input's row: what fits around the cursor, the terminal's cursor in it.
    let style = if insp.example {
        theme.selected
    } else {
        theme.text
    };
    let (text, cursor) = insp.input.visible(popup.width.saturating_sub(5), style);
    let mut lines = vec![
        Line::from(vec![Span::styled("› ", theme.key), text]),
        Line::raw(""),
    ];
    match &insp.answer {
        None => lines.push(Line::styled(
            "type METHOD PATH and press Enter; Esc closes",
            theme.dim,
        )),
        Some(Answer::Pending) => lines.push(Line::styled("asking the cluster…", theme.dim)),
        Some(Answer::Failed(e)) => lines.push(Line::styled(e.clone(), theme.error)),
        Some(Answer::Explained(e)) => {
            lines.extend(e.text().lines().map(|l| Line::raw(l.to_string())));
        }
    }
    let p = Paragraph::new(lines).wrap(Wrap { trim: false }).block(
        Block::bordered()
            .title(Line::styled(
                " Route inspector (Enter explains, Esc closes) ",
                theme.title,
            ))
            .border_style(theme.border_focused),
    );
    frame.render_widget(Clear, popup);
    frame.render_widget(p, popup);
    if popup.width > 4 && popup.height > 2 {
        frame.set_cursor_position((popup.x + 3 + cursor, popup.y + 1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_defaults_to_get_and_garbage_is_explained() {
        assert_eq!(
            parse("/api/users/1").unwrap(),
            ("GET".into(), "/api/users/1".into())
        );
        assert_eq!(
            parse("post /api/orders").unwrap(),
            ("POST".into(), "/api/orders".into())
        );
        let e = parse("GET").unwrap_err();
        assert!(e.contains("expected METHOD PATH"), "{e}");
        assert!(parse("G3T /x").is_err());
        assert!(parse("GET /x extra").is_err());
    }
}
