//! Where a list's rows were last drawn, so a mouse click can tell which row it hit.

use ratatui::layout::{Position, Rect};
use std::cell::Cell;

#[derive(Debug, Default)]
pub struct Drawn(Cell<Option<(Rect, usize)>>);

impl Drawn {
    /// A bordered list drawn in `area`, `header` rows under its top border, its first row shown
    /// being row `first` of the list.
    pub fn set(&self, area: Rect, header: u16, first: usize) {
        let rows = Rect::new(
            area.x + 1,
            area.y + 1 + header,
            area.width.saturating_sub(2),
            area.height.saturating_sub(2 + header),
        );
        self.0.set(Some((rows, first)));
    }

    /// Not drawn (another view took its place).
    pub fn clear(&self) {
        self.0.set(None);
    }

    /// The list row under the terminal cell (`column`, `row`), if a row was drawn there.
    pub fn row_at(&self, column: u16, row: u16) -> Option<usize> {
        let (area, first) = self.0.get()?;
        area.contains(Position::new(column, row))
            .then(|| first + usize::from(row - area.y))
    }
}
