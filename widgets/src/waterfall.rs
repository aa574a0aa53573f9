//! A trace as a waterfall: one row per span, nested by indentation on the left, a bar on a
//! shared time axis on the right. Fed with plain rows already flattened and ordered by the
//! caller; only the visible rows are drawn, so a trace of any size scrolls at the same cost.

use crate::theme::Theme;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Widget};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WaterfallRow {
    pub depth: u16,
    pub name: String,
    pub service: String,
    /// Offset from the trace's start and length, in nanoseconds.
    pub start_ns: u64,
    pub duration_ns: u64,
    pub error: bool,
    /// On the critical path (the chain of spans that decided the trace's duration).
    pub critical: bool,
    pub has_children: bool,
    pub collapsed: bool,
    /// Matches the search in the trace.
    pub highlight: bool,
    /// Index into the service palette (same service, same colour).
    pub colour: usize,
}

/// Service colours, in order of first appearance in the trace.
pub const PALETTE: [Color; 8] = [
    Color::Cyan,
    Color::Magenta,
    Color::Blue,
    Color::Yellow,
    Color::Green,
    Color::LightCyan,
    Color::LightMagenta,
    Color::LightBlue,
];

#[derive(Debug, Clone, Default)]
pub struct Waterfall<'a> {
    rows: &'a [WaterfallRow],
    total_ns: u64,
    selected: Option<usize>,
    offset: usize,
    block: Option<Block<'a>>,
    theme: Theme,
}

/// "850µs", "12.3ms", "1.20s".
pub fn duration_label(ns: u64) -> String {
    match ns {
        0..1_000_000 => format!("{}µs", ns / 1000),
        1_000_000..1_000_000_000 => format!("{:.1}ms", ns as f64 / 1e6),
        _ => format!("{:.2}s", ns as f64 / 1e9),
    }
}

impl<'a> Waterfall<'a> {
    /// `total_ns`: the trace's length (the time axis spans 0..total).
    pub fn new(rows: &'a [WaterfallRow], total_ns: u64) -> Self {
        Waterfall {
            rows,
            total_ns: total_ns.max(1),
            ..Default::default()
        }
    }

    #[must_use]
    pub fn selected(mut self, i: Option<usize>) -> Self {
        self.selected = i;
        self
    }

    /// The first row drawn (the caller keeps the selection in view).
    #[must_use]
    pub fn offset(mut self, offset: usize) -> Self {
        self.offset = offset;
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

    /// The offset that keeps `selected` visible in `height` rows, moving as little as possible.
    pub fn scroll_to(offset: usize, selected: usize, height: usize) -> usize {
        let height = height.max(1);
        if selected < offset {
            selected
        } else if selected >= offset + height {
            selected + 1 - height
        } else {
            offset
        }
    }
}

/// The bar's cells: from `start` to `end` of `total`, across `width` cells, at least one.
fn bar_cells(start: u64, dur: u64, total: u64, width: u16) -> (u16, u16) {
    let w = u128::from(width);
    let total = u128::from(total.max(1));
    let from = (u128::from(start) * w / total).min(w.saturating_sub(1)) as u16;
    let to = ((u128::from(start) + u128::from(dur)) * w)
        .div_ceil(total)
        .min(w) as u16;
    (from, to.max(from + 1))
}

impl Widget for &Waterfall<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let inner = match &self.block {
            Some(b) => {
                b.clone().render(area, buf);
                b.inner(area)
            }
            None => area,
        };
        if inner.height < 2 || inner.width < 20 {
            return;
        }
        let t = &self.theme;
        // Span names as wide as the longest shown needs, from two fifths of the width up to
        // three (the bars keep the rest): a name is read whole where it can be.
        let needed = self
            .rows
            .iter()
            .skip(self.offset)
            .take(usize::from(inner.height))
            .map(|r| {
                usize::from(r.depth) * 2 + 2 + if r.error { 2 } else { 0 } + r.name.chars().count()
            })
            .max()
            .unwrap_or(0) as u16;
        let label_w = needed
            .clamp(inner.width * 2 / 5, inner.width * 3 / 5)
            .clamp(16, 72);
        let dur_w: u16 = 9;
        let bar_w = inner.width.saturating_sub(label_w + dur_w + 2);
        let bar_x = inner.x + label_w + 1;

        // The time axis: ticks at 0, ¼, ½, ¾ and the end.
        let axis = Rect::new(inner.x, inner.y, inner.width, 1);
        Line::styled(format!("{:<w$}", "SPAN", w = label_w as usize), t.title).render(axis, buf);
        // The end's label is placed first; a tick whose label would run into the next one
        // (or the end's) is left out rather than drawn over it.
        let mut room_until = bar_x + bar_w;
        for q in (0..=4u16).rev() {
            let x = bar_x + (bar_w.saturating_sub(1)) * q / 4;
            let label = duration_label(self.total_ns * u64::from(q) / 4);
            let len = label.chars().count() as u16;
            let x = x.min((bar_x + bar_w).saturating_sub(len));
            if x + len + u16::from(q < 4) > room_until {
                continue;
            }
            buf.set_string(x, inner.y, &label, t.dim);
            room_until = x;
        }

        let height = (inner.height - 1) as usize;
        for (i, row) in self.rows.iter().enumerate().skip(self.offset).take(height) {
            let y = inner.y + 1 + (i - self.offset) as u16;
            let colour = if t.colour {
                PALETTE[row.colour % PALETTE.len()]
            } else {
                Color::Reset
            };
            let marker = match (row.has_children, row.collapsed) {
                (true, true) => "▸ ",
                (true, false) => "▾ ",
                _ => "  ",
            };
            let mut label_style = Style::new();
            if row.critical {
                label_style = label_style.add_modifier(Modifier::BOLD);
            }
            if row.error {
                label_style = label_style.patch(t.error);
            }
            if row.highlight {
                label_style = if t.colour {
                    label_style
                        .fg(Color::Black)
                        .bg(Color::Yellow)
                        .add_modifier(Modifier::BOLD)
                } else {
                    label_style.add_modifier(Modifier::REVERSED | Modifier::BOLD)
                };
            }
            let indent = " ".repeat(usize::from(row.depth.min(label_w / 2)) * 2);
            let label = Line::from(vec![
                Span::raw(indent),
                Span::styled(marker, t.dim),
                Span::styled(if row.error { "✖ " } else { "" }, t.critical),
                Span::styled(row.name.as_str(), label_style),
            ]);
            label.render(Rect::new(inner.x, y, label_w, 1), buf);

            let (from, to) = bar_cells(row.start_ns, row.duration_ns, self.total_ns, bar_w);
            let mut bar_style = match (row.error, t.colour) {
                (true, true) => Style::new().fg(Color::Red),
                (true, false) => t.error,
                (false, _) => Style::new().fg(colour),
            };
            if row.critical {
                bar_style = bar_style.add_modifier(Modifier::BOLD);
            }
            let glyph = if row.critical { "█" } else { "▆" };
            for x in from..to {
                buf.set_string(bar_x + x, y, glyph, bar_style);
            }
            let d = duration_label(row.duration_ns);
            buf.set_string(
                inner.x + inner.width - dur_w,
                y,
                format!("{d:>w$}", w = dur_w as usize),
                t.dim,
            );
            if self.selected == Some(i) {
                buf.set_style(Rect::new(inner.x, y, inner.width, 1), t.selected);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn row(depth: u16, name: &str, start_ms: u64, dur_ms: u64) -> WaterfallRow {
        WaterfallRow {
            depth,
            name: name.into(),
            service: "svc".into(),
            start_ns: start_ms * 1_000_000,
            duration_ns: dur_ms * 1_000_000,
            ..Default::default()
        }
    }

    fn draw(wf: &Waterfall<'_>, w: u16, h: u16) -> (Vec<String>, Buffer) {
        let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
        term.draw(|f| f.render_widget(wf, f.area())).unwrap();
        let buf = term.backend().buffer().clone();
        let lines = (0..h)
            .map(|y| (0..w).map(|x| buf[(x, y)].symbol()).collect::<String>())
            .collect();
        (lines, buf)
    }

    /// The columns of a line holding bar glyphs.
    fn bar_span(line: &str) -> (usize, usize) {
        let cols: Vec<usize> = line
            .chars()
            .enumerate()
            .filter(|(_, c)| *c == '▆' || *c == '█')
            .map(|(i, _)| i)
            .collect();
        (*cols.first().unwrap(), *cols.last().unwrap())
    }

    #[test]
    fn children_are_indented_and_bars_are_to_scale() {
        let mut rows = vec![
            row(0, "GET /api/orders/{id}", 0, 100),
            row(1, "call order-service", 10, 50),
            row(2, "GET /orders/{id}", 60, 40),
        ];
        rows[0].has_children = true;
        let (lines, _) = draw(&Waterfall::new(&rows, 100_000_000), 120, 5);
        assert!(
            lines[0].starts_with("SPAN") && lines[0].contains("0µs"),
            "{lines:#?}"
        );
        assert!(lines[0].contains("100.0ms"), "{lines:#?}");
        assert!(lines[1].starts_with("▾ GET /api/orders/{id}"), "{lines:#?}");
        assert!(lines[2].starts_with("    call order-service"), "{lines:#?}");
        assert!(lines[3].starts_with("      GET /orders/{id}"), "{lines:#?}");
        let (a0, a1) = bar_span(&lines[1]);
        let (b0, b1) = bar_span(&lines[2]);
        let (c0, c1) = bar_span(&lines[3]);
        let full = a1 - a0 + 1;
        // 10 % in, half as long; the third starts where the second ends (60 %).
        assert!(
            (b0 - a0) * 10 >= full - 2 && (b0 - a0) * 10 <= full + 2,
            "{lines:#?}"
        );
        assert!(((b1 - b0 + 1) * 2).abs_diff(full) <= 2, "{lines:#?}");
        assert!(c0 > b1 - 1 && c1 == a1, "{lines:#?}");
        assert!(lines[1].trim_end().ends_with("100.0ms"));
    }

    #[test]
    fn an_error_span_is_marked_and_red() {
        let mut rows = vec![row(0, "root", 0, 10), row(1, "rejected by breaker", 2, 1)];
        rows[1].error = true;
        let (lines, buf) = draw(&Waterfall::new(&rows, 10_000_000), 100, 4);
        assert!(lines[2].contains("✖ rejected by breaker"), "{lines:#?}");
        let (x0, _) = bar_span(&lines[2]);
        assert_eq!(buf[(x0 as u16, 2)].fg, Color::Red);
        assert!(lines[2].trim_end().ends_with("1.0ms"));
    }

    #[test]
    fn a_search_match_is_highlighted() {
        let mut rows = vec![row(0, "root", 0, 10), row(1, "charge card", 2, 5)];
        rows[1].highlight = true;
        let (lines, buf) = draw(&Waterfall::new(&rows, 10_000_000), 100, 4);
        let x = lines[2].find("charge").unwrap() as u16;
        assert_eq!(buf[(x, 2)].bg, Color::Yellow);
        assert_ne!(buf[(2, 1)].bg, Color::Yellow);
    }

    #[test]
    fn a_trace_wider_than_the_screen_still_fits_and_tiny_spans_get_a_cell() {
        // 10 s trace with a 1 µs span at the very end, on an 60-column screen.
        let rows = vec![row(0, "long", 0, 10_000), {
            let mut r = row(1, "blip", 0, 0);
            r.start_ns = 10_000 * 1_000_000 - 1000;
            r.duration_ns = 1000;
            r
        }];
        let (lines, _) = draw(&Waterfall::new(&rows, 10_000_000_000), 60, 4);
        let (x0, x1) = bar_span(&lines[2]);
        assert_eq!(x0, x1, "one cell");
        let (_, end) = bar_span(&lines[1]);
        assert_eq!(x1, end, "at the end of the axis");
        for l in &lines {
            assert!(l.chars().count() <= 60);
        }
    }

    #[test]
    fn only_the_visible_window_is_drawn_and_selection_scrolls_into_view() {
        let rows: Vec<WaterfallRow> = (0..10_000)
            .map(|i| row(1, &format!("span {i}"), i, 1))
            .collect();
        let off = Waterfall::scroll_to(0, 9_999, 5);
        assert_eq!(off, 9_995);
        let wf = Waterfall::new(&rows, 10_001_000_000)
            .offset(off)
            .selected(Some(9_999));
        let (lines, buf) = draw(&wf, 80, 6);
        assert!(
            lines[1].contains("span 9995") && lines[5].contains("span 9999"),
            "{lines:#?}"
        );
        assert!(buf[(0, 5)].modifier.contains(Modifier::REVERSED));
        assert_eq!(Waterfall::scroll_to(9_995, 9_997, 5), 9_995);
        assert_eq!(Waterfall::scroll_to(9_995, 3, 5), 3);
        // Tiny areas draw nothing rather than panic.
        draw(&wf, 10, 1);
    }
}
