//! Sums over rectangles of grid cells (a 2-D prefix-sum table): what a
//! region of cells holds, in four reads whatever its size. Used by the
//! native format's per-cell news.

use std::ops::Range;

use super::grid::{Cell, Region};

/// Most cells of the rectangle around the cells with news, per cell with
/// news, for which the native format's cell news keeps a table of sums
/// over the rectangle.
/// Players spread over a world of any size fill it; a few players far
/// apart would not, and use the binary searches instead.
pub const SUM_TABLE_CELLS_PER_ENTRY: usize = 64;

/// Sums of bytes over every rectangle of cells from `origin`: what a region
/// gets, in four reads whatever its size.
#[derive(Debug)]
pub struct SumTable {
    origin: Cell,
    cols: usize,
    rows: usize,
    /// `below[r * (cols + 1) + c]`: the bytes of the cells of rows
    /// `..r` and columns `..c` (counted from `origin`).
    below: Vec<usize>,
    /// `entry_at[r * cols + c]`: the index of the entry of that cell, or
    /// [`NO_ENTRY`].
    entry_at: Vec<u32>,
}

const NO_ENTRY: u32 = u32::MAX;

impl SumTable {
    /// A table over the rectangle of the `len` cells `cell(i)` (sorted by
    /// row, then column; `bytes(i)` is what cell `i` holds), or `None` if that rectangle is
    /// too sparse.
    pub fn build(
        len: usize,
        cell: impl Fn(usize) -> Cell,
        bytes: impl Fn(usize) -> usize,
    ) -> Option<SumTable> {
        let last = cell(len.checked_sub(1)?);
        let first = cell(0);
        let (min_col, max_col) = (0..len)
            .map(&cell)
            .fold((first.col, first.col), |(lo, hi), cell| {
                (lo.min(cell.col), hi.max(cell.col))
            });
        let cols = (i32::from(max_col) - i32::from(min_col) + 1) as usize;
        let rows = (i32::from(last.row) - i32::from(first.row) + 1) as usize;
        if cols * rows > SUM_TABLE_CELLS_PER_ENTRY * len.max(64) {
            return None;
        }
        let origin = Cell {
            col: min_col,
            row: first.row,
        };
        let width = cols + 1;
        let mut below = vec![0; width * (rows + 1)];
        let mut entry_at = vec![NO_ENTRY; cols * rows];
        for i in 0..len {
            let cell = cell(i);
            let r = (i32::from(cell.row) - i32::from(origin.row)) as usize;
            let c = (i32::from(cell.col) - i32::from(origin.col)) as usize;
            below[(r + 1) * width + c + 1] = bytes(i);
            entry_at[r * cols + c] = i as u32;
        }
        for r in 1..=rows {
            for c in 1..=cols {
                below[r * width + c] += below[(r - 1) * width + c] + below[r * width + c - 1]
                    - below[(r - 1) * width + c - 1];
            }
        }
        Some(SumTable {
            origin,
            cols,
            rows,
            below,
            entry_at,
        })
    }

    /// The bytes of the cells of `region`.
    pub fn sum(&self, region: &Region) -> usize {
        let Some((rows, cols)) = self.span(region) else {
            return 0;
        };
        let width = self.cols + 1;
        let at = |r: usize, c: usize| self.below[r * width + c];
        at(rows.end, cols.end) + at(rows.start, cols.start)
            - at(rows.start, cols.end)
            - at(rows.end, cols.start)
    }

    /// The entries of the cells of `region`, row by row.
    pub fn entries_in(&self, region: &Region) -> impl Iterator<Item = usize> + '_ {
        let (rows, cols) = self.span(region).unwrap_or_default();
        rows.flat_map(move |r| {
            self.entry_at[r * self.cols + cols.start..r * self.cols + cols.end]
                .iter()
                .filter(|&&i| i != NO_ENTRY)
                .map(|&i| i as usize)
        })
    }

    /// The rows and columns of the table (from `origin`) in `region`.
    fn span(&self, region: &Region) -> Option<(Range<usize>, Range<usize>)> {
        let (min, max) = region.bounds();
        let clamp = |value: i32, origin: i16, len: usize| {
            (value - i32::from(origin)).clamp(0, len as i32) as usize
        };
        // Half-open ranges of the table's rows and columns.
        let (r0, r1) = (
            clamp(i32::from(min.row), self.origin.row, self.rows),
            clamp(i32::from(max.row) + 1, self.origin.row, self.rows),
        );
        let (c0, c1) = (
            clamp(i32::from(min.col), self.origin.col, self.cols),
            clamp(i32::from(max.col) + 1, self.origin.col, self.cols),
        );
        (r0 < r1 && c0 < c1).then_some((r0..r1, c0..c1))
    }
}
