//! A table of service instances: health mark, process state, address, weight, live load (in
//! flight, req/s, error %), version, notes (faults, ejection, countdowns) and the last
//! health-check output. Selection lives in a `TableState` kept by the caller.

use crate::columns::{Column, constraints, fit, shown, widest};
use crate::highlight::highlight;
use crate::theme::Theme;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Row, StatefulWidget, Table, TableState};

/// Health as the table shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthMark {
    Passing,
    Warning,
    Critical,
}

impl HealthMark {
    fn label(self) -> &'static str {
        match self {
            HealthMark::Passing => "● passing",
            HealthMark::Warning => "▲ warning",
            HealthMark::Critical => "✖ critical",
        }
    }

    fn style(self, theme: &Theme) -> Style {
        match self {
            HealthMark::Passing => theme.passing,
            HealthMark::Warning => theme.warning,
            HealthMark::Critical => theme.critical,
        }
    }
}

/// One row: plain data, already formatted by the caller where formatting is domain knowledge.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceRow {
    pub id: String,
    pub health: HealthMark,
    /// "running", "killed", "external".
    pub process: String,
    pub address: String,
    pub version: String,
    pub weight: u32,
    pub in_flight: u32,
    /// Requests per second through the balancer; `None` until two samples exist.
    pub rps: Option<f64>,
    /// Percent of those that failed.
    pub error_pct: Option<f64>,
    /// Short flags with countdowns: "ejected 4s", "fault +200ms 18s".
    pub notes: Vec<String>,
    /// The last check output, e.g. "HTTP GET http://…/health: 200 OK".
    pub check: String,
}

#[derive(Debug, Clone, Default)]
pub struct InstanceTable<'a> {
    rows: &'a [InstanceRow],
    block: Option<Block<'a>>,
    theme: Theme,
    /// Text marked where it occurs in an instance's id or address (a list filter's).
    marked: Option<&'a str>,
}

impl<'a> InstanceTable<'a> {
    pub fn new(rows: &'a [InstanceRow]) -> Self {
        InstanceTable {
            rows,
            block: None,
            theme: Theme::default(),
            marked: None,
        }
    }

    /// Marks `text` where it occurs in ids and addresses (ignoring case).
    #[must_use]
    pub fn mark(mut self, text: Option<&'a str>) -> Self {
        self.marked = text;
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

impl StatefulWidget for &InstanceTable<'_> {
    type State = TableState;

    fn render(self, area: Rect, buf: &mut Buffer, state: &mut TableState) {
        if area.is_empty() {
            return;
        }
        let t = &self.theme;
        // Which columns fit: the instance and its health stay; the rest go, the last check
        // first, then version, address, weight, in flight, process, the rates, the notes last.
        let inner = match &self.block {
            Some(_) => area.width.saturating_sub(2),
            None => area.width,
        };
        let notes: Vec<String> = self.rows.iter().map(|r| r.notes.join(" ")).collect();
        let widths = fit(
            &[
                Column::keep(widest(self.rows.iter().map(|r| r.id.as_str()), 8)),
                Column::keep(10),
                Column::drop(8, 3),
                Column::drop(widest(self.rows.iter().map(|r| r.address.as_str()), 7), 6),
                Column::drop(6, 5),
                Column::drop(4, 4),
                Column::drop(6, 2),
                Column::drop(5, 2),
                Column::drop(7, 7),
                Column::drop(widest(notes.iter().map(String::as_str), 5).min(26), 1),
                Column::fill(10, 8),
            ],
            inner,
            1,
        );
        let header = Row::new(shown(
            [
                "INSTANCE",
                "HEALTH",
                "PROCESS",
                "ADDRESS",
                "WEIGHT",
                "INFL",
                "REQ/S",
                "ERR%",
                "VERSION",
                "NOTES",
                "LAST CHECK",
            ],
            &widths,
        ))
        .style(t.title);
        let rows = self.rows.iter().map(|r| {
            let process_style = if r.process == "running" {
                t.dim
            } else {
                t.killed
            };
            let right = |s: String| Cell::from(Line::from(s).right_aligned());
            let err_style = match r.error_pct {
                Some(e) if e >= 5.0 => t.critical,
                Some(e) if e > 0.0 => t.warning,
                _ => t.text,
            };
            Row::new(shown(
                [
                    Cell::from(highlight(&r.id, self.marked, Style::new(), t.matched)),
                    Cell::from(Span::styled(r.health.label(), r.health.style(t))),
                    Cell::from(Span::styled(r.process.as_str(), process_style)),
                    Cell::from(highlight(&r.address, self.marked, Style::new(), t.matched)),
                    right(r.weight.to_string()),
                    right(r.in_flight.to_string()),
                    right(r.rps.map_or("-".into(), |v| format!("{v:.1}"))),
                    Cell::from(
                        Line::from(Span::styled(
                            r.error_pct.map_or("-".into(), |v| format!("{v:.1}")),
                            err_style,
                        ))
                        .right_aligned(),
                    ),
                    Cell::from(r.version.as_str()),
                    Cell::from(Span::styled(r.notes.join(" "), t.warning)),
                    Cell::from(Span::styled(r.check.as_str(), t.dim)),
                ],
                &widths,
            ))
        });
        let mut table = Table::new(rows, constraints(&widths))
            .header(header)
            .column_spacing(1)
            .row_highlight_style(t.selected);
        if let Some(b) = &self.block {
            table = table.block(b.clone());
        }
        StatefulWidget::render(table, area, buf, state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, health: HealthMark, process: &str) -> InstanceRow {
        InstanceRow {
            id: id.into(),
            health,
            process: process.into(),
            address: "127.0.0.1:8081".into(),
            version: "1.0.0".into(),
            weight: 1,
            in_flight: 0,
            rps: None,
            error_pct: None,
            notes: vec![],
            check: "HTTP GET /health: 200 OK".into(),
        }
    }

    fn render(rows: &[InstanceRow], w: u16, h: u16) -> Buffer {
        let area = Rect::new(0, 0, w, h);
        let mut buf = Buffer::empty(area);
        let mut state = TableState::default().with_selected(Some(1));
        StatefulWidget::render(&InstanceTable::new(rows), area, &mut buf, &mut state);
        buf
    }

    fn line(buf: &Buffer, y: u16) -> String {
        (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect()
    }

    #[test]
    fn shows_each_instance_with_its_health_and_process() {
        let rows = [
            row("user-service-1", HealthMark::Passing, "running"),
            row("user-service-2", HealthMark::Critical, "killed"),
        ];
        let buf = render(&rows, 130, 4);
        assert!(line(&buf, 0).starts_with("INSTANCE"));
        let first = line(&buf, 1);
        assert!(
            first.contains("user-service-1")
                && first.contains("● passing")
                && first.contains("running")
        );
        let second = line(&buf, 2);
        assert!(
            second.contains("user-service-2")
                && second.contains("✖ critical")
                && second.contains("killed")
        );
        assert!(second.contains("127.0.0.1:8081") && second.contains("200 OK"));
    }

    #[test]
    fn shows_live_load_and_notes() {
        let mut r = row("user-service-2", HealthMark::Passing, "running");
        r.in_flight = 3;
        r.rps = Some(6.5);
        r.error_pct = Some(12.5);
        r.notes = vec!["ejected 4s".into()];
        let buf = render(&[row("a", HealthMark::Passing, "running"), r], 140, 4);
        let l = line(&buf, 2);
        assert!(
            l.contains("  3 ") && l.contains("6.5") && l.contains("12.5"),
            "{l}"
        );
        assert!(l.contains("ejected 4s"), "{l}");
        assert!(line(&buf, 1).contains(" - "), "no rate yet shows a dash");
    }

    #[test]
    fn health_is_coloured_and_selection_highlighted() {
        let rows = [
            row("a", HealthMark::Passing, "running"),
            row("b", HealthMark::Critical, "killed"),
        ];
        let buf = render(&rows, 110, 4);
        let t = Theme::default();
        // "● passing" starts at the HEALTH column (after an 8-wide id column and a space).
        assert_eq!(buf[(9, 1)].fg, t.passing.fg.unwrap_or_default());
        assert_eq!(buf[(9, 2)].fg, t.critical.fg.unwrap_or_default());
        assert!(
            buf[(0, 2)]
                .modifier
                .contains(ratatui::style::Modifier::REVERSED)
        );
        assert!(
            !buf[(0, 1)]
                .modifier
                .contains(ratatui::style::Modifier::REVERSED)
        );
    }

    #[test]
    fn never_panics_on_tiny_areas() {
        let rows = [row("a", HealthMark::Warning, "running")];
        for (w, h) in [(0, 0), (1, 1), (5, 2), (20, 1)] {
            render(&rows, w, h);
        }
        render(&[], 40, 5);
    }
}
