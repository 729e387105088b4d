//! A uniform grid over the map for neighbourhood queries (pickups, hits, bot targeting and
//! interest management). Buckets are reused between ticks, so rebuilding allocates nothing in
//! steady state.

use glam::Vec2;

/// Items bucketed by position in square cells.
#[derive(Debug, Clone)]
pub struct Grid<T> {
    cell_size: f32,
    columns: usize,
    rows: usize,
    cells: Vec<Vec<(Vec2, T)>>,
}

impl<T: Copy + PartialEq> Grid<T> {
    /// A grid covering `width` × `height` world units.
    pub fn new(width: f32, height: f32, cell_size: f32) -> Self {
        let columns = ((width / cell_size).ceil() as usize).max(1);
        let rows = ((height / cell_size).ceil() as usize).max(1);
        Self { cell_size, columns, rows, cells: (0..columns * rows).map(|_| Vec::new()).collect() }
    }

    fn cell_of(&self, pos: Vec2) -> (usize, usize) {
        let column = ((pos.x / self.cell_size).max(0.0) as usize).min(self.columns - 1);
        let row = ((pos.y / self.cell_size).max(0.0) as usize).min(self.rows - 1);
        (column, row)
    }

    /// Empties every cell, keeping their capacity.
    pub fn clear(&mut self) {
        for cell in &mut self.cells {
            cell.clear();
        }
    }

    pub fn insert(&mut self, pos: Vec2, item: T) {
        let (column, row) = self.cell_of(pos);
        self.cells[row * self.columns + column].push((pos, item));
    }

    /// Removes `item`, which must have been inserted at `pos`. Returns whether it was found.
    pub fn remove(&mut self, pos: Vec2, item: T) -> bool {
        let (column, row) = self.cell_of(pos);
        let cell = &mut self.cells[row * self.columns + column];
        match cell.iter().position(|(_, other)| *other == item) {
            Some(index) => {
                cell.swap_remove(index);
                true
            }
            None => false,
        }
    }

    /// Calls `visit` for every item whose position lies within the axis-aligned box.
    pub fn query_box(&self, min: Vec2, max: Vec2, mut visit: impl FnMut(Vec2, T)) {
        let (first_column, first_row) = self.cell_of(min);
        let (last_column, last_row) = self.cell_of(max);
        for row in first_row..=last_row {
            for column in first_column..=last_column {
                for &(pos, item) in &self.cells[row * self.columns + column] {
                    if pos.x >= min.x && pos.y >= min.y && pos.x <= max.x && pos.y <= max.y {
                        visit(pos, item);
                    }
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
}
