//! A one-line text prompt at the bottom of the body: the Logs tab's search, the trace list's
//! filter, the waterfall's span search, every other list's filter. While it is open it takes every key but Ctrl-C.

use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Clear;
use widgets::Theme;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptFor {
    /// Text to find in log messages and fields.
    LogSearch,
    /// `service:NAME min:MS error TEXT` over the trace list.
    TraceFilter,
    /// A span's name or attribute inside the open trace.
    SpanSearch,
    /// The environment to switch to (its diff is shown first).
    Environment,
    /// Text the rows of the tab's list must hold (instances, picks, breakers, services, keys).
    ListFilter,
}

impl PromptFor {
    fn label(self) -> &'static str {
        match self {
            PromptFor::LogSearch => "search logs › ",
            PromptFor::TraceFilter => "filter traces (service:NAME min:MS error TEXT) › ",
            PromptFor::SpanSearch => "find span › ",
            PromptFor::Environment => "switch environment (development, staging, production) › ",
            PromptFor::ListFilter => "filter (empty: all) › ",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    pub purpose: PromptFor,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptKey {
    Typed,
    Applied(String),
    Cancelled,
}

impl Prompt {
    pub fn new(purpose: PromptFor, text: impl Into<String>) -> Self {
        Prompt {
            purpose,
            text: text.into(),
        }
    }

    pub fn on_key(&mut self, key: KeyEvent) -> PromptKey {
        match key.code {
            KeyCode::Esc => PromptKey::Cancelled,
            KeyCode::Enter => PromptKey::Applied(self.text.trim().to_string()),
            _ => {
                edit_line(&mut self.text, key);
                PromptKey::Typed
            }
        }
    }
}

/// Line editing shared by every text input: Backspace deletes, printable keys insert.
/// Returns whether the key edited the text.
pub fn edit_line(text: &mut String, key: KeyEvent) -> bool {
    match key.code {
        KeyCode::Backspace => {
            text.pop();
            true
        }
        KeyCode::Char(c) if !c.is_control() => {
            text.push(c);
            true
        }
        _ => false,
    }
}

/// Draws the prompt on the last line of `area`.
pub fn render(frame: &mut Frame, area: Rect, p: &Prompt, theme: &Theme) {
    if area.height == 0 {
        return;
    }
    let line_area = Rect::new(area.x, area.y + area.height - 1, area.width, 1);
    frame.render_widget(Clear, line_area);
    frame.render_widget(
        Line::from(vec![
            Span::styled(format!(" {}", p.purpose.label()), theme.key),
            Span::raw(p.text.as_str()),
            Span::styled("▏  Enter applies · Esc cancels", theme.dim),
        ]),
        line_area,
    );
}
