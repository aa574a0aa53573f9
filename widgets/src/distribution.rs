//! Horizontal bars showing each item's share of a total: "is it really balancing?" at a glance.
//! One row per item: label, a bar of its share (a full bar is 100 %), percent, count and a note.

use crate::theme::Theme;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Widget};

/// How a row is drawn: an item that cannot receive picks right now is greyed or marked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShareKind {
    #[default]
    Normal,
    /// Temporarily out (ejected by outlier detection).
    Ejected,
    /// Not a candidate (unhealthy).
    Down,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShareRow {
    pub label: String,
    pub count: u64,
    /// Shown after the numbers, e.g. "w=5 in-flight 2".
    pub note: String,
    pub kind: ShareKind,
}

#[derive(Debug, Clone, Default)]
pub struct DistributionBars<'a> {
    rows: &'a [ShareRow],
    selected: Option<usize>,
    block: Option<Block<'a>>,
    theme: Theme,
}

/// Eighths of a cell, so short bars still differ.
const PARTIAL: [&str; 8] = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"];

impl<'a> DistributionBars<'a> {
    pub fn new(rows: &'a [ShareRow]) -> Self {
        DistributionBars {
            rows,
            ..Default::default()
        }
    }

    #[must_use]
    pub fn selected(mut self, i: Option<usize>) -> Self {
        self.selected = i;
        self
    }

    #[must_use]
    pub fn block(mut self, block: Block<'a>) -> Self {
        self.block = Some(block);
        self
    }

    #[must_use]
    pub fn theme(mut self, theme: Theme) -> Self {
        self.theme = theme;
        self
    }
}

/// A bar of `width` cells filled to `frac` (0..=1), in eighths.
pub fn bar(frac: f64, width: u16) -> String {
    let eighths = (frac.clamp(0.0, 1.0) * f64::from(width) * 8.0).round() as usize;
    let mut s = "█".repeat(eighths / 8);
    s.push_str(PARTIAL[eighths % 8]);
    s
}

impl Widget for &DistributionBars<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let inner = match &self.block {
            Some(b) => {
                b.clone().render(area, buf);
                b.inner(area)
            }
            None => area,
        };
        if inner.is_empty() {
            return;
        }
        let t = &self.theme;
        let total: u64 = self.rows.iter().map(|r| r.count).sum();
        let label_w = crate::columns::widest(self.rows.iter().map(|r| r.label.as_str()), 4).min(28);
        // label, bar, " 100.0% 1234567 ", note: the bar gives room to the notes first (down to
        // 4 cells); a note that still does not fit keeps its first whole words (never "ewma 0.2m").
        let note_w = crate::columns::widest(self.rows.iter().map(|r| r.note.as_str()), 0);
        let bar_w = inner
            .width
            .saturating_sub(label_w + 1 + 18 + note_w)
            .clamp(4, 50);
        let note_room = usize::from(inner.width.saturating_sub(label_w + 1 + 18 + bar_w));
        for (i, r) in self.rows.iter().enumerate().take(inner.height as usize) {
            let share = if total == 0 {
                0.0
            } else {
                r.count as f64 / total as f64
            };
            let bar_style = match r.kind {
                ShareKind::Normal => t.passing,
                ShareKind::Ejected => t.warning,
                ShareKind::Down => t.dim,
            };
            let label: String = r.label.chars().take(label_w as usize).collect();
            let line = Line::from(vec![
                Span::raw(format!("{label:<w$} ", w = label_w as usize)),
                Span::styled(
                    // Scaled to the whole: an even split of three is three thirds, not three
                    // full bars.
                    format!("{:<w$}", bar(share, bar_w), w = bar_w as usize),
                    bar_style,
                ),
                Span::raw(format!(" {:>5.1}% {:>8} ", share * 100.0, r.count)),
                Span::styled(whole_words(&r.note, note_room), note_style(r.kind, t)),
            ]);
            let y = inner.y + i as u16;
            let row = Rect::new(inner.x, y, inner.width, 1);
            let line = if self.selected == Some(i) {
                line.style(t.selected)
            } else {
                line
            };
            line.render(row, buf);
        }
    }
}

/// The first words of `text` that fit in `width` columns, each whole; a figure stays with the
/// word before it (`ewma 1.5ms`, `ejected 4s`: never the name without its value).
fn whole_words(text: &str, width: usize) -> String {
    let mut pairs: Vec<String> = Vec::new();
    for word in text.split(' ') {
        match pairs.last_mut() {
            Some(last) if word.starts_with(|c: char| c.is_ascii_digit()) => {
                last.push(' ');
                last.push_str(word);
            }
            _ => pairs.push(word.to_string()),
        }
    }
    let mut out = String::new();
    for word in &pairs {
        let sep = usize::from(!out.is_empty());
        if out.chars().count() + sep + word.chars().count() > width {
            break;
        }
        if sep == 1 {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

fn note_style(kind: ShareKind, t: &Theme) -> Style {
    match kind {
        ShareKind::Normal => t.dim,
        ShareKind::Ejected => t.warning,
        ShareKind::Down => t.critical,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn screen(rows: &[ShareRow], w: u16) -> Vec<String> {
        let mut term = Terminal::new(TestBackend::new(w, rows.len() as u16)).unwrap();
        term.draw(|f| f.render_widget(&DistributionBars::new(rows), f.area()))
            .unwrap();
        let buf = term.backend().buffer().clone();
        (0..buf.area.height)
            .map(|y| {
                (0..buf.area.width)
                    .map(|x| buf[(x, y)].symbol().to_string())
                    .collect::<String>()
            })
            .collect()
    }

    fn row(label: &str, count: u64) -> ShareRow {
        ShareRow {
            label: label.into(),
            count,
            ..Default::default()
        }
    }

    /// A bar is its share of the whole: 50 % fills half the bar, an even split of three fills
    /// a third each (scaled to the largest, 33/33/33 drew three full bars).
    #[test]
    fn bars_show_shares_of_the_whole() {
        let cells = |line: &str| {
            let full = line.matches('█').count() as f64;
            let part = ["▏", "▎", "▍", "▌", "▋", "▊", "▉"]
                .iter()
                .enumerate()
                .find(|(_, p)| line.contains(*p))
                .map_or(0.0, |(i, _)| (i + 1) as f64 / 8.0);
            full + part
        };
        let lines = screen(&[row("a", 50), row("b", 25), row("c", 25)], 60);
        let half = cells(&lines[0]);
        let quarter = cells(&lines[1]);
        assert!(half >= 4.0, "{lines:#?}");
        assert!((half - 2.0 * quarter).abs() <= 0.25, "{lines:#?}");
        assert!(lines[0].contains("50.0%"), "{lines:#?}");
        assert!(lines[2].contains("25.0%"), "{lines:#?}");
        // Half of the bar's width: the bar column is what is left beside label and numbers.
        let bar_width = 60 - 5 - 18;
        assert!(
            (half - f64::from(bar_width) / 2.0).abs() <= 1.0,
            "{lines:#?}"
        );
        let even = screen(&[row("a", 1), row("b", 1), row("c", 1)], 60);
        for l in &even {
            assert!(
                (cells(l) - f64::from(bar_width) / 3.0).abs() <= 1.0,
                "{even:#?}"
            );
        }
    }

    /// Narrow, the bar shrinks for the notes, and a note that still does not fit keeps whole
    /// words: a latency is shown whole or not at all.
    #[test]
    fn notes_fit_before_the_bar_grows_and_keep_whole_words() {
        let noted = |label: &str, note: &str| ShareRow {
            note: note.into(),
            ..row(label, 5)
        };
        let rows = [
            noted("order-service-1", "w=1 in-flight 0 ewma 0.2ms"),
            noted("order-service-2", "w=1 in-flight 0 ewma 1.1ms"),
        ];
        let wide = screen(&rows, 80);
        assert!(wide[0].contains("w=1 in-flight 0 ewma 0.2ms"), "{wide:#?}");
        assert!(wide[0].contains('█'), "{wide:#?}");
        let narrow = screen(&rows, 60);
        assert!(narrow[0].contains("50.0%"), "{narrow:#?}");
        for line in &narrow {
            assert!(line.contains("w=1"), "{narrow:#?}");
            assert!(
                !line.trim_end().ends_with("ewma") && !line.trim_end().ends_with("in-flight"),
                "a name without its figure: {narrow:#?}"
            );
            let words: Vec<&str> = line.split_whitespace().collect();
            for w in words
                .iter()
                .filter(|w| w.ends_with('m') || w.ends_with("ms"))
            {
                assert!(w.ends_with("ms"), "a latency cut: {narrow:#?}");
            }
        }
    }

    #[test]
    fn no_picks_yet_draws_empty_bars_without_dividing_by_zero() {
        let lines = screen(&[row("a", 0), row("b", 0)], 50);
        assert!(lines[0].contains("0.0%"), "{lines:#?}");
        assert!(!lines[0].contains('█'));
    }

    #[test]
    fn partial_cells_in_eighths() {
        assert_eq!(bar(0.0, 10), "");
        assert_eq!(bar(1.0, 2), "██");
        assert_eq!(bar(1.0 / 8.0, 1), "▏");
        assert_eq!(bar(0.01, 1), "", "under half an eighth rounds to nothing");
        assert_eq!(bar(0.25, 1), "▎");
    }
}
