//! A centred message in a box: placeholders for empty tabs and the "terminal too small" screen.

use crate::theme::Theme;
use ratatui::buffer::Buffer;
use ratatui::layout::{Alignment, Rect};
use ratatui::text::{Line, Text};
use ratatui::widgets::{Block, Paragraph, Widget, Wrap};

#[derive(Debug, Clone, Default)]
pub struct Notice {
    title: String,
    lines: Vec<String>,
    theme: Theme,
    bordered: bool,
}

impl Notice {
    pub fn new(lines: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Notice {
            lines: lines.into_iter().map(Into::into).collect(),
            ..Default::default()
        }
    }

    #[must_use]
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = title.into();
        self.bordered = true;
        self
    }

    #[must_use]
    pub fn theme(mut self, theme: Theme) -> Self {
        self.theme = theme;
        self
    }
}

impl Widget for &Notice {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.is_empty() {
            return;
        }
        let inner = if self.bordered {
            let block = Block::bordered()
                .border_style(self.theme.border)
                .title(Line::styled(format!(" {} ", self.title), self.theme.title));
            let inner = block.inner(area);
            block.render(area, buf);
            inner
        } else {
            area
        };
        let text = Text::from(
            self.lines
                .iter()
                .map(|l| Line::from(l.as_str()))
                .collect::<Vec<_>>(),
        );
        let height = (text.lines.len() as u16).min(inner.height);
        let top = inner.y + inner.height.saturating_sub(height) / 2;
        let body = Rect::new(inner.x, top, inner.width, height);
        Paragraph::new(text)
            .style(self.theme.text)
            .alignment(Alignment::Center)
            .wrap(Wrap { trim: true })
            .render(body, buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_panics_on_tiny_or_empty_areas() {
        let n = Notice::new(["a message longer than the area"]).title("t");
        for (w, h) in [(0, 0), (1, 1), (2, 1), (3, 3), (10, 2)] {
            let area = Rect::new(0, 0, w, h);
            let mut buf = Buffer::empty(area);
            (&n).render(area, &mut buf);
        }
    }

    #[test]
    fn centres_its_lines() {
        let area = Rect::new(0, 0, 12, 3);
        let mut buf = Buffer::empty(area);
        (&Notice::new(["hello"])).render(area, &mut buf);
        assert_eq!(
            buf,
            Buffer::with_lines(["            ", "    hello   ", "            "])
        );
    }
}
