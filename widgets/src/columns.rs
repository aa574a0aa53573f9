//! Columns that fit a width: which of a table's columns are shown and how wide. Identifying
//! columns are never cut below their content, numbers are never cut: when the table is too
//! wide, whole columns go, the least needed first. A terminal of 80 columns shows fewer
//! columns, not every column cut short.

use ratatui::layout::Constraint;

/// A column as the fitting sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// What its content needs, header included.
    pub width: u16,
    /// 0: always shown; otherwise the larger, the sooner it goes when the table is too wide.
    pub drop: u8,
    /// Takes the room left over (a free-text column, cut when it must be).
    pub fill: bool,
}

impl Column {
    /// Shown whatever the width, at its content's width (an identifier, a number).
    pub fn keep(width: u16) -> Column {
        Column {
            width,
            drop: 0,
            fill: false,
        }
    }

    /// Dropped at rank `drop` when the table does not fit.
    pub fn drop(width: u16, drop: u8) -> Column {
        Column {
            width,
            drop,
            fill: false,
        }
    }

    /// Takes what is left; dropped at rank `drop` when even its `min` does not fit.
    pub fn fill(min: u16, drop: u8) -> Column {
        Column {
            width: min,
            drop,
            fill: true,
        }
    }
}

/// The width of each column at `avail` cells with `spacing` between columns; `None`: dropped.
pub fn fit(cols: &[Column], avail: u16, spacing: u16) -> Vec<Option<u16>> {
    let mut shown: Vec<bool> = vec![true; cols.len()];
    let need = |shown: &[bool]| {
        let n = shown.iter().filter(|s| **s).count() as u16;
        cols.iter()
            .zip(shown)
            .filter(|(_, s)| **s)
            .map(|(c, _)| c.width)
            .sum::<u16>()
            + spacing * n.saturating_sub(1)
    };
    while need(&shown) > avail {
        // The least needed of those shown; of equals, the rightmost.
        let Some(i) = (0..cols.len())
            .filter(|&i| shown[i] && cols[i].drop > 0)
            .max_by_key(|&i| (cols[i].drop, i))
        else {
            break;
        };
        shown[i] = false;
    }
    let spare = avail.saturating_sub(need(&shown));
    let filler = (0..cols.len()).find(|&i| shown[i] && cols[i].fill);
    cols.iter()
        .enumerate()
        .map(|(i, c)| shown[i].then(|| c.width + if Some(i) == filler { spare } else { 0 }))
        .collect()
}

/// The items of the shown columns, in order.
pub fn shown<T>(items: impl IntoIterator<Item = T>, widths: &[Option<u16>]) -> Vec<T> {
    items
        .into_iter()
        .zip(widths)
        .filter_map(|(item, w)| w.map(|_| item))
        .collect()
}

/// The constraints of the shown columns.
pub fn constraints(widths: &[Option<u16>]) -> Vec<Constraint> {
    widths
        .iter()
        .flatten()
        .map(|w| Constraint::Length(*w))
        .collect()
}

/// The widest of `items` in cells, and at least `min`.
pub fn widest<'s>(items: impl IntoIterator<Item = &'s str>, min: u16) -> u16 {
    items
        .into_iter()
        .map(|s| s.chars().count() as u16)
        .max()
        .unwrap_or(0)
        .max(min)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_fits_and_the_filler_takes_the_rest() {
        let cols = [Column::keep(10), Column::drop(5, 1), Column::fill(4, 2)];
        assert_eq!(fit(&cols, 40, 1), vec![Some(10), Some(5), Some(23)]);
    }

    #[test]
    fn the_least_needed_go_first_and_kept_ones_are_never_cut() {
        let cols = [
            Column::keep(14),
            Column::drop(10, 1),
            Column::drop(8, 3),
            Column::keep(6),
            Column::fill(10, 2),
        ];
        // 14+10+8+6+10 + 4 spaces = 52
        assert_eq!(fit(&cols, 52, 1)[2], Some(8));
        assert_eq!(
            fit(&cols, 45, 1),
            vec![Some(14), Some(10), None, Some(6), Some(12)]
        );
        assert_eq!(
            fit(&cols, 33, 1),
            vec![Some(14), Some(10), None, Some(6), None]
        );
        assert_eq!(fit(&cols, 22, 1), vec![Some(14), None, None, Some(6), None]);
        // Narrower than what must stay: it stays whole (the terminal cuts, not the table).
        assert_eq!(fit(&cols, 10, 1), vec![Some(14), None, None, Some(6), None]);
    }

    #[test]
    fn shown_items_follow_the_widths() {
        let w = [Some(3), None, Some(2)];
        assert_eq!(shown(["a", "b", "c"], &w), vec!["a", "c"]);
        assert_eq!(
            constraints(&w),
            vec![Constraint::Length(3), Constraint::Length(2)]
        );
        assert_eq!(widest(["ab", "abcd"], 3), 4);
    }
}
