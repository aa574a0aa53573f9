//! The `/` filter of a list: which rows stay, their match marked, and what the title says.

use ratatui::style::Style;
use ratatui::text::Line;
use widgets::Theme;
use widgets::highlight::{contains, highlight, highlight_owned};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    text: Option<String>,
}

impl ListFilter {
    /// Applies what was typed at the prompt; empty clears the filter.
    pub fn set(&mut self, text: String) {
        self.text = (!text.is_empty()).then_some(text);
    }

    pub fn clear(&mut self) -> bool {
        self.text.take().is_some()
    }

    pub fn text(&self) -> Option<&str> {
        self.text.as_deref()
    }

    /// Whether a row with these texts stays: one of them holds the filter's text (any case).
    pub fn keeps<'a>(&self, texts: impl IntoIterator<Item = &'a str>) -> bool {
        match &self.text {
            None => true,
            Some(t) => texts.into_iter().any(|s| contains(s, t)),
        }
    }

    /// `text` with the match marked.
    pub fn mark<'a>(&self, text: &'a str, base: Style, theme: &Theme) -> Line<'a> {
        highlight(text, self.text(), base, theme.matched)
    }

    /// Like [`ListFilter::mark`], for a text the line must own.
    pub fn mark_owned(&self, text: &str, base: Style, theme: &Theme) -> Line<'static> {
        highlight_owned(text, self.text(), base, theme.matched)
    }

    /// A pane's title, saying the filter when there is one: ` Breakers · / "user" (2 of 4) `.
    pub fn title(&self, name: &str, kept: usize, all: usize) -> String {
        match &self.text {
            None => format!(" {name} "),
            Some(t) => format!(" {name} · / \"{t}\" ({kept} of {all}, Esc clears) "),
        }
    }
}
