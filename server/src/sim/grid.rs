//! A uniform grid over the map for neighbourhood queries (pickups, hits, bot targeting and
//! interest management). Buckets are reused between ticks, so rebuilding allocates nothing in
//! steady state.

use glam::Vec2;

/// Queries at most this many columns wide scan every cell instead of the occupancy mask.
const NARROW: usize = 4;

/// `v` (a position times 1 / cell size) as a cell index in `0..=last`: its integer part, 0 below
/// zero and for NaN, `last` past the end. The same as `(v.max(0.0) as usize).min(last)`, through
/// a 32-bit signed conversion and an integer clamp, where converting to a 64-bit unsigned integer
/// is a longer, branchy sequence (every grid query and wall check maps two corners or a point).
#[inline]
pub(crate) fn cell_index(v: f32, last: usize) -> usize {
    debug_assert!(last <= i32::MAX as usize);
    (v as i32).clamp(0, last as i32) as usize
}

/// Items bucketed by position in square cells.
#[derive(Debug, Clone)]
pub struct Grid<T> {
    /// 1 / cell size: a multiplication where a division was (the same cells for a power-of-two
    /// size such as the world's 128; for any size a monotone mapping, which is all the queries
    /// need: an item inside a box lies in a cell between the box corners' cells).
    per_unit: f32,
    columns: usize,
    rows: usize,
    cells: Vec<Vec<(Vec2, T)>>,
    /// One bit per cell, set while it holds items: `words_per_row` words per row. A wide query
    /// over a sparse grid (a bot looking 650 units around) visits only the occupied cells, in
    /// the same order as a scan of every cell.
    occupied: Vec<u64>,
    words_per_row: usize,
}

impl<T: Copy + PartialEq> Grid<T> {
    /// A grid covering `width` × `height` world units.
    pub fn new(width: f32, height: f32, cell_size: f32) -> Self {
        let columns = ((width / cell_size).ceil() as usize).max(1);
        let rows = ((height / cell_size).ceil() as usize).max(1);
        let words_per_row = columns.div_ceil(64);
        Self {
            per_unit: 1.0 / cell_size,
            columns,
            rows,
            cells: (0..columns * rows).map(|_| Vec::new()).collect(),
            occupied: vec![0; rows * words_per_row],
            words_per_row,
        }
    }

    fn mark(&mut self, column: usize, row: usize, occupied: bool) {
        let word = &mut self.occupied[row * self.words_per_row + column / 64];
        let bit = 1u64 << (column % 64);
        if occupied {
            *word |= bit;
        } else {
            *word &= !bit;
        }
    }

    fn cell_of(&self, pos: Vec2) -> (usize, usize) {
        (cell_index(pos.x * self.per_unit, self.columns - 1), cell_index(pos.y * self.per_unit, self.rows - 1))
    }

    /// Empties every cell, keeping their capacity.
    pub fn clear(&mut self) {
        for (row, words) in self.occupied.chunks_mut(self.words_per_row).enumerate() {
            for (word_index, word) in words.iter_mut().enumerate() {
                let mut bits = std::mem::take(word);
                while bits != 0 {
                    let column = word_index * 64 + bits.trailing_zeros() as usize;
                    self.cells[row * self.columns + column].clear();
                    bits &= bits - 1;
                }
            }
        }
    }

    pub fn insert(&mut self, pos: Vec2, item: T) {
        let (column, row) = self.cell_of(pos);
        self.cells[row * self.columns + column].push((pos, item));
        self.mark(column, row, true);
    }

    /// Removes `item`, which must have been inserted at `pos`. Returns whether it was found.
    pub fn remove(&mut self, pos: Vec2, item: T) -> bool {
        let (column, row) = self.cell_of(pos);
        let cell = &mut self.cells[row * self.columns + column];
        match cell.iter().position(|(_, other)| *other == item) {
            Some(index) => {
                cell.swap_remove(index);
                if cell.is_empty() {
                    self.mark(column, row, false);
                }
                true
            }
            None => false,
        }
    }

    /// Calls `visit` for every item whose position lies within the axis-aligned box.
    pub fn query_box(&self, min: Vec2, max: Vec2, mut visit: impl FnMut(Vec2, T)) {
        let (first_column, first_row) = self.cell_of(min);
        let (last_column, last_row) = self.cell_of(max);
        if first_column > last_column {
            return; // An inverted box holds nothing.
        }
        let mut scan = |row: usize, column: usize| {
            for &(pos, item) in &self.cells[row * self.columns + column] {
                if pos.x >= min.x && pos.y >= min.y && pos.x <= max.x && pos.y <= max.y {
                    visit(pos, item);
                }
            }
        };
        if last_column - first_column < NARROW {
            // A few cells: reading them costs less than reading the mask.
            for row in first_row..=last_row {
                for column in first_column..=last_column {
                    scan(row, column);
                }
            }
            return;
        }
        for row in first_row..=last_row {
            let words = &self.occupied[row * self.words_per_row..(row + 1) * self.words_per_row];
            let first_word = first_column / 64;
            for (word_index, word) in words.iter().enumerate().take(last_column / 64 + 1).skip(first_word) {
                // This word's columns within first_column..=last_column.
                let low = (first_column.max(word_index * 64) - word_index * 64) as u32;
                let high = (last_column.min(word_index * 64 + 63) - word_index * 64) as u32;
                let span = if high - low == 63 { u64::MAX } else { ((1u64 << (high - low + 1)) - 1) << low };
                let mut bits = word & span;
                while bits != 0 {
                    scan(row, word_index * 64 + bits.trailing_zeros() as usize);
                    bits &= bits - 1;
                }
            }
        }
    }

    /// Calls `visit` for every item within `radius` of `center`.
    pub fn query_radius(&self, center: Vec2, radius: f32, mut visit: impl FnMut(Vec2, T)) {
        let r2 = radius * radius;
        self.query_box(center - Vec2::splat(radius), center + Vec2::splat(radius), |pos, item| {
            if pos.distance_squared(center) <= r2 {
                visit(pos, item);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_index_is_the_saturating_unsigned_conversion() {
        let mut values = vec![0.0, -0.0, 0.5, 0.999_999_9, 1.0, 15.999, 16.0, 1e9, 3e9, 1e30, -0.5, -1.0, -1e30];
        values.extend([f32::NAN, f32::INFINITY, f32::NEG_INFINITY, f32::MAX, f32::MIN, f32::EPSILON]);
        values.extend((-4000..4000).map(|i| i as f32 * 0.013));
        for last in [0, 1, 15, 63, 1000] {
            for &v in &values {
                assert_eq!(cell_index(v, last), (v.max(0.0) as usize).min(last), "{v} with last {last}");
            }
        }
    }

    #[test]
    fn queries_find_exactly_the_items_in_range() {
        let mut grid = Grid::new(1000.0, 1000.0, 100.0);
        for i in 0..100u32 {
            grid.insert(Vec2::new((i % 10) as f32 * 100.0 + 5.0, (i / 10) as f32 * 100.0 + 5.0), i);
        }
        let mut found = Vec::new();
        grid.query_box(Vec2::new(0.0, 0.0), Vec2::new(210.0, 110.0), |_, i| found.push(i));
        found.sort_unstable();
        assert_eq!(found, vec![0, 1, 2, 10, 11, 12]);
        let mut near = Vec::new();
        grid.query_radius(Vec2::new(505.0, 505.0), 100.0, |_, i| near.push(i));
        near.sort_unstable();
        assert_eq!(near, vec![45, 54, 55, 56, 65]);
        assert!(grid.remove(Vec2::new(505.0, 505.0), 55));
        assert!(!grid.remove(Vec2::new(505.0, 505.0), 55));
        // Positions outside the map clamp into edge cells instead of panicking.
        grid.insert(Vec2::new(-50.0, 5000.0), 999);
        let mut edge = Vec::new();
        grid.query_box(Vec2::new(-100.0, 4000.0), Vec2::new(0.0, 6000.0), |_, i| edge.push(i));
        assert_eq!(edge, vec![999]);
    }

    proptest::proptest! {
        /// Queries visit exactly what a scan of every cell in the box would, in the same order
        /// (bots pick the first of equally near targets, so order is part of the simulation),
        /// across rows of more than one occupancy word, after removals and clears.
        #[test]
        fn queries_visit_what_a_full_scan_visits_in_order(
            items in proptest::collection::vec((-50.0f32..13_050.0, -50.0f32..2_050.0), 0..200),
            removals in proptest::collection::vec(0usize..200, 0..60),
            boxes in proptest::collection::vec((-100.0f32..13_100.0, -100.0f32..2_100.0, 0.0f32..9_000.0, 0.0f32..1_500.0), 1..12),
            clear_at in 0usize..3,
        ) {
            let mut grid = Grid::new(13_000.0, 2_000.0, 100.0);
            for round in 0..2 {
                if round == clear_at {
                    grid.clear();
                }
                for (i, &(x, y)) in items.iter().enumerate() {
                    grid.insert(Vec2::new(x, y), (round, i));
                }
                for &r in &removals {
                    if let Some(&(x, y)) = items.get(r) {
                        grid.remove(Vec2::new(x, y), (round, r));
                    }
                }
            }
            for &(x, y, w, h) in &boxes {
                let (min, max) = (Vec2::new(x, y), Vec2::new(x + w, y + h));
                let mut found = Vec::new();
                grid.query_box(min, max, |_, item| found.push(item));
                let mut expected = Vec::new();
                let (first_column, first_row) = grid.cell_of(min);
                let (last_column, last_row) = grid.cell_of(max);
                for row in first_row..=last_row {
                    for column in first_column..=last_column {
                        for &(pos, item) in &grid.cells[row * grid.columns + column] {
                            if pos.x >= min.x && pos.y >= min.y && pos.x <= max.x && pos.y <= max.y {
                                expected.push(item);
                            }
                        }
                    }
                }
                proptest::prop_assert_eq!(found, expected);
            }
            let occupied = grid.cells.iter().filter(|cell| !cell.is_empty()).count();
            let marked: u32 = grid.occupied.iter().map(|word| word.count_ones()).sum();
            proptest::prop_assert_eq!(occupied, marked as usize);
        }
    }
}
