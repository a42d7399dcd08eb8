//! A uniform grid of square cells over the i16 plane: the spatial index
//! behind areas of interest. Who is near a view is found by looking at the
//! few cells the view overlaps, never at every player.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use shared::ClientId;
use shared::legacy::Position;

/// The area-of-interest limits are protocol facts, defined in `shared`.
pub use shared::native::{CELL_SIZE, MAX_VIEW_CELLS};

/// One cell of the grid, by column and row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cell {
    pub col: i16,
    pub row: i16,
}

impl Cell {
    /// The cell holding `position`.
    pub fn of(position: Position) -> Cell {
        Cell {
            col: coordinate_cell(i32::from(position.x)),
            row: coordinate_cell(i32::from(position.y)),
        }
    }
}

fn coordinate_cell(coordinate: i32) -> i16 {
    // i16 / 64 fits in i16 with room to spare.
    coordinate.div_euclid(CELL_SIZE) as i16
}

/// A map keyed by cell with a cheap hash: every view looks up each of
/// its cells once per broadcast, so with thousands of views this lookup is
/// the hot loop. Keys are our own small coordinates, not peer-chosen
/// strings, so a keyed (DoS-resistant) hash buys nothing here.
pub type CellMap<V> = HashMap<Cell, V, BuildHasherDefault<CellHasher>>;

/// Fibonacci hashing of a cell's packed coordinates.
#[derive(Debug, Default)]
pub struct CellHasher(u64);

impl Hasher for CellHasher {
    fn finish(&self) -> u64 {
        let mixed = self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        mixed ^ (mixed >> 29)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 << 8) | u64::from(byte);
        }
    }

    fn write_i16(&mut self, value: i16) {
        self.0 = (self.0 << 16) | u64::from(value as u16);
    }
}

/// A rectangle of cells, bounds included: the cells a view overlaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    min: Cell,
    max: Cell,
}

impl Region {
    /// The cells overlapping `center ± half_extent` on both axes (clamped to
    /// the i16 plane). `None` means the whole world: a `half_extent` of 0,
    /// or a view of more than [`MAX_VIEW_CELLS`] cells.
    pub fn around(center: Position, half_extent: u16) -> Option<Region> {
        if half_extent == 0 {
            return None;
        }
        let span = |c: i16| {
            let low = (i32::from(c) - i32::from(half_extent)).max(i32::from(i16::MIN));
            let high = (i32::from(c) + i32::from(half_extent)).min(i32::from(i16::MAX));
            (coordinate_cell(low), coordinate_cell(high))
        };
        let (min_col, max_col) = span(center.x);
        let (min_row, max_row) = span(center.y);
        let region = Region {
            min: Cell {
                col: min_col,
                row: min_row,
            },
            max: Cell {
                col: max_col,
                row: max_row,
            },
        };
        (region.cell_count() <= MAX_VIEW_CELLS).then_some(region)
    }

    /// The corner cells: the least column and row, and the greatest.
    pub fn bounds(&self) -> (Cell, Cell) {
        (self.min, self.max)
    }

    pub fn contains(&self, cell: Cell) -> bool {
        (self.min.col..=self.max.col).contains(&cell.col)
            && (self.min.row..=self.max.row).contains(&cell.row)
    }

    /// Whether a player in `cell` (`None`: no position) is seen.
    pub fn sees(&self, cell: Option<Cell>) -> bool {
        cell.is_some_and(|c| self.contains(c))
    }

    pub fn cell_count(&self) -> u32 {
        let cols = (i32::from(self.max.col) - i32::from(self.min.col) + 1) as u32;
        let rows = (i32::from(self.max.row) - i32::from(self.min.row) + 1) as u32;
        cols * rows
    }

    /// Every cell of the region, row by row.
    pub fn cells(&self) -> impl Iterator<Item = Cell> + '_ {
        (self.min.row..=self.max.row)
            .flat_map(move |row| (self.min.col..=self.max.col).map(move |col| Cell { col, row }))
    }
}

/// Which players are in which cell. Only non-empty cells are stored.
#[derive(Debug, Default)]
pub struct Grid {
    cells: CellMap<HashSet<ClientId>>,
}

impl Grid {
    /// Moves `id` from cell `from` to cell `to` (`None`: in no cell).
    pub fn relocate(&mut self, id: ClientId, from: Option<Cell>, to: Option<Cell>) {
        if from == to {
            return;
        }
        if let Some(from) = from
            && let Some(players) = self.cells.get_mut(&from)
        {
            players.remove(&id);
            if players.is_empty() {
                self.cells.remove(&from);
            }
        }
        if let Some(to) = to {
            self.cells.entry(to).or_default().insert(id);
        }
    }

    /// The players in `cell`.
    pub fn players_in(&self, cell: Cell) -> impl Iterator<Item = ClientId> + '_ {
        self.cells.get(&cell).into_iter().flatten().copied()
    }

    /// The players in any cell of `region`.
    pub fn players_in_region<'a>(
        &'a self,
        region: &'a Region,
    ) -> impl Iterator<Item = ClientId> + 'a {
        region.cells().flat_map(|cell| self.players_in(cell))
    }

    /// Cells holding at least one player.
    #[cfg(test)]
    fn occupied_cells(&self) -> usize {
        self.cells.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_split_at_multiples_of_the_cell_size_including_negatives() {
        assert_eq!(Cell::of(Position::new(0, 0)), Cell { col: 0, row: 0 });
        assert_eq!(Cell::of(Position::new(63, 64)), Cell { col: 0, row: 1 });
        assert_eq!(Cell::of(Position::new(-1, -64)), Cell { col: -1, row: -1 });
        assert_eq!(Cell::of(Position::new(-65, 0)), Cell { col: -2, row: 0 });
        assert_eq!(
            Cell::of(Position::new(i16::MIN, i16::MAX)),
            Cell {
                col: -512,
                row: 511
            }
        );
    }

    #[test]
    fn a_region_covers_the_view_widened_to_whole_cells() {
        let region = Region::around(Position::new(100, 100), 10).unwrap();
        // 90..=110 lies in cell 1 on both axes.
        assert_eq!(region.cell_count(), 1);
        assert!(region.contains(Cell { col: 1, row: 1 }));
        let region = Region::around(Position::new(0, 0), 100).unwrap();
        // -100..=100: cells -2..=1 on both axes.
        assert_eq!(region.cell_count(), 16);
        assert_eq!(region.cells().count(), 16);
        assert!(region.contains(Cell { col: -2, row: 1 }));
        assert!(!region.contains(Cell { col: 2, row: 0 }));
        assert!(!region.sees(None));
    }

    #[test]
    fn the_largest_view_a_client_may_ask_for_is_always_a_view() {
        use shared::native::MAX_VIEW_HALF_EXTENT;
        assert_eq!(MAX_VIEW_HALF_EXTENT, 992);
        for x in [-1000, -33, 0, 31, 32, 63, 1000, 30_000] {
            let center = Position::new(x, x / 2);
            assert!(
                Region::around(center, MAX_VIEW_HALF_EXTENT).is_some(),
                "at {x}"
            );
        }
        // One more unit, and some centre makes it too big.
        let over = MAX_VIEW_HALF_EXTENT + CELL_SIZE as u16;
        assert!(Region::around(Position::new(0, 0), over).is_none());
    }

    #[test]
    fn zero_or_huge_views_mean_the_whole_world() {
        assert_eq!(Region::around(Position::new(0, 0), 0), None);
        assert_eq!(Region::around(Position::new(0, 0), u16::MAX), None);
        // 32 × 32 cells is the largest region.
        // -1023..=1023 spans cells -16..=15: 32 × 32.
        let largest = Region::around(Position::new(0, 0), 1023).unwrap();
        assert_eq!(largest.cell_count(), MAX_VIEW_CELLS);
        assert_eq!(Region::around(Position::new(0, 0), 1024), None);
    }

    #[test]
    fn views_at_the_edge_of_the_plane_are_clamped() {
        let region = Region::around(Position::new(i16::MAX, i16::MIN), 100).unwrap();
        assert_eq!(region.cell_count(), 4);
        assert!(region.contains(Cell::of(Position::new(i16::MAX, i16::MIN))));
    }

    #[test]
    fn the_grid_finds_players_by_region_and_forgets_empty_cells() {
        let mut grid = Grid::default();
        let near = Cell::of(Position::new(10, 10));
        let far = Cell::of(Position::new(1000, 1000));
        grid.relocate(1, None, Some(near));
        grid.relocate(2, None, Some(far));
        grid.relocate(3, None, Some(near));
        let region = Region::around(Position::new(0, 0), 50).unwrap();
        let mut seen: Vec<_> = grid.players_in_region(&region).collect();
        seen.sort();
        assert_eq!(seen, vec![1, 3]);
        grid.relocate(3, Some(near), Some(far));
        grid.relocate(1, Some(near), None);
        assert_eq!(grid.players_in_region(&region).count(), 0);
        assert_eq!(grid.occupied_cells(), 1, "the emptied cell is dropped");
        let mut far_players: Vec<_> = grid.players_in(far).collect();
        far_players.sort();
        assert_eq!(far_players, vec![2, 3]);
    }
}
