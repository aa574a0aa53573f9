//! A one-line text prompt at the bottom of the body: the Logs tab's search, the trace list's
//! filter, the waterfall's span search, every other list's filter. While it is open it takes every key but Ctrl-C.

use super::line::LineEdit;
use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Layout, Rect};
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
    /// A `ctl` command (`:`), completed with Tab.
    Palette,
}

impl PromptFor {
    fn label(self) -> &'static str {
        match self {
            PromptFor::LogSearch => "search logs › ",
            PromptFor::TraceFilter => "filter traces (service:NAME min:MS error TEXT) › ",
            PromptFor::SpanSearch => "find span › ",
            PromptFor::Environment => "switch environment (development, staging, production) › ",
            PromptFor::ListFilter => "filter (empty: all) › ",
            PromptFor::Palette => ":",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    pub purpose: PromptFor,
    pub line: LineEdit,
    /// What Tab offered for the word being completed (shown above the line), and which one a
    /// further Tab put in.
    pub offered: Vec<String>,
    pub chosen: Option<usize>,
    /// The history entry shown (Up / Down), counted back from the newest.
    pub recalled: Option<usize>,
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
            // A search or filter offers its last text to replace; the palette's line (one to
            // fix, after a refusal) is edited.
            line: if purpose == PromptFor::Palette {
                LineEdit::new(text)
            } else {
                LineEdit::selected(text)
            },
            offered: Vec::new(),
            chosen: None,
            recalled: None,
        }
    }

    pub fn text(&self) -> &str {
        self.line.value()
    }

    pub fn on_key(&mut self, key: KeyEvent) -> PromptKey {
        match key.code {
            KeyCode::Esc => PromptKey::Cancelled,
            KeyCode::Enter => PromptKey::Applied(self.text().trim().to_string()),
            _ => {
                self.line.on_key(key);
                PromptKey::Typed
            }
        }
    }
}

/// Draws the prompt on the last line of `area`, the terminal's cursor in its text.
pub fn render(frame: &mut Frame, area: Rect, p: &Prompt, theme: &Theme) {
    if area.height == 0 {
        return;
    }
    let line_area = Rect::new(area.x, area.y + area.height - 1, area.width, 1);
    frame.render_widget(Clear, line_area);
    // What Tab offers, on the row above: as many as fit, the one put in marked.
    if !p.offered.is_empty() && area.height >= 2 {
        let row = Rect::new(area.x, line_area.y - 1, area.width, 1);
        frame.render_widget(Clear, row);
        let mut spans = vec![Span::raw(" ")];
        for (i, c) in p.offered.iter().enumerate() {
            let style = if p.chosen == Some(i) {
                theme.selected
            } else {
                theme.dim
            };
            spans.push(Span::styled(c.as_str(), style));
            spans.push(Span::raw("  "));
        }
        frame.render_widget(Line::from(spans), row);
    }
    let label = format!(" {}", p.purpose.label());
    let hint = if p.purpose == PromptFor::Palette {
        "  Tab completes · ↑↓ history · Enter runs · Esc cancels"
    } else {
        "  Enter applies · Esc cancels"
    };
    let label_w = (label.chars().count() as u16).min(area.width);
    let hint_w = if area.width >= label_w + 20 + hint.len() as u16 {
        hint.len() as u16
    } else {
        0
    };
    let [label_area, text_area, hint_area] = Layout::horizontal([
        Constraint::Length(label_w),
        Constraint::Fill(1),
        Constraint::Length(hint_w),
    ])
    .areas(line_area);
    frame.render_widget(Span::styled(label, theme.key), label_area);
    p.line.render(frame, text_area, theme.text);
    frame.render_widget(Line::styled(hint, theme.dim).right_aligned(), hint_area);
}
