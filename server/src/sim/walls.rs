//! The map's walls bucketed by grid cell, so "is this small circle free?" reads the few walls
//! near it instead of every wall (every projectile asks every tick).

use glam::Vec2;
use shared::map::MapDef;

use super::grid::cell_index;

/// Cell size, world units.
const CELL: f32 = 128.0;
/// 1 / [`CELL`]: exact, since the cell size is a power of two (a multiplication, not a division).
const PER_UNIT: f32 = 1.0 / CELL;

/// For each cell, the walls whose bounds, grown by `reach`, touch it.
#[derive(Debug, Clone)]
pub struct WallIndex {
    columns: usize,
    rows: usize,
    reach: f32,
    /// Cell `i`'s walls are `walls[starts[i]..starts[i + 1]]`: every list in one array, so a
    /// lookup reads one allocation, not a cell's own.
    starts: Vec<u32>,
    walls: Vec<u16>,
}

impl WallIndex {
    /// Indexes `map`'s walls for circles of radius up to `reach`.
    pub fn new(map: &MapDef, reach: f32) -> WallIndex {
        let columns = ((map.width / CELL).ceil() as usize).max(1);
        let rows = ((map.height / CELL).ceil() as usize).max(1);
        let mut index = WallIndex { columns, rows, reach, starts: Vec::new(), walls: Vec::new() };
        let mut cells = vec![Vec::new(); columns * rows];
        for (number, wall) in map.walls.iter().enumerate() {
            let (first_column, first_row) = index.cell_of(Vec2::new(wall.x - reach, wall.y - reach));
            let (last_column, last_row) = index.cell_of(Vec2::new(wall.x + wall.w + reach, wall.y + wall.h + reach));
            for row in first_row..=last_row {
                for column in first_column..=last_column {
                    cells[row * columns + column].push(number as u16);
                }
            }
        }
        index.starts.push(0);
        for cell in cells {
            index.walls.extend(cell);
            index.starts.push(u32::try_from(index.walls.len()).expect("fewer than 2^32 wall entries"));
        }
        index
    }

    fn cell(&self, column: usize, row: usize) -> &[u16] {
        let cell = row * self.columns + column;
        &self.walls[self.starts[cell] as usize..self.starts[cell + 1] as usize]
    }

    fn cell_of(&self, pos: Vec2) -> (usize, usize) {
        (cell_index(pos.x * PER_UNIT, self.columns - 1), cell_index(pos.y * PER_UNIT, self.rows - 1))
    }

    /// The walls that may lie within `reach` of `p` (increasing indices), and `reach`: what
    /// [`shared::rules::collide_near`] takes.
    pub fn near(&self, p: Vec2) -> (&[u16], f32) {
        let (column, row) = self.cell_of(p);
        (self.cell(column, row), self.reach)
    }

    /// Exactly [`MapDef::is_free`] (`map` must be the indexed map).
    pub fn is_free(&self, map: &MapDef, p: Vec2, radius: f32) -> bool {
        if radius > self.reach || !p.is_finite() {
            return map.is_free(p, radius);
        }
        let inside = p.x >= radius && p.y >= radius && p.x <= map.width - radius && p.y <= map.height - radius;
        // A wall within `radius` of `p` has `p` inside its bounds grown by `reach`: it is listed
        // in `p`'s cell.
        let (column, row) = self.cell_of(p);
        inside && !self.cell(column, row).iter().any(|&wall| map.walls[usize::from(wall)].overlaps_circle(p, radius))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const ARENA: &str = include_str!("../../../assets/maps/arena.json");

    proptest! {
        #[test]
        fn answers_exactly_as_a_scan_of_every_wall(
            points in proptest::collection::vec((-50.0f32..2_450.0, -50.0f32..2_450.0, 0.0f32..40.0), 1..400),
        ) {
            let map = MapDef::from_json(ARENA).expect("the shipped map parses");
            let index = WallIndex::new(&map, 32.0);
            for (x, y, radius) in points {
                let p = Vec2::new(x, y);
                prop_assert_eq!(index.is_free(&map, p, radius), map.is_free(p, radius), "{:?} r {}", p, radius);
            }
        }
    }

    proptest! {
        #[test]
        fn near_lists_every_wall_within_reach_in_order(
            points in proptest::collection::vec((-100.0f32..2_500.0, -100.0f32..2_500.0), 1..300),
        ) {
            let map = MapDef::from_json(ARENA).expect("the shipped map parses");
            let index = WallIndex::new(&map, 82.0);
            for (x, y) in points {
                let p = Vec2::new(x, y);
                let (walls, reach) = index.near(p);
                prop_assert!(walls.windows(2).all(|pair| pair[0] < pair[1]));
                for (number, wall) in map.walls.iter().enumerate() {
                    if wall.closest_point(p).distance(p) <= reach {
                        prop_assert!(walls.contains(&(number as u16)), "wall {} near {:?}", number, p);
                    }
                }
            }
        }
    }

    #[test]
    fn a_circle_touching_a_wall_is_not_free() {
        let map = MapDef::from_json(ARENA).expect("the shipped map parses");
        let index = WallIndex::new(&map, 32.0);
        let wall = map.walls[0];
        let touching = Vec2::new(wall.x - 4.0, wall.y + wall.h / 2.0);
        assert!(!map.is_free(touching, 5.0));
        assert!(!index.is_free(&map, touching, 5.0));
    }
}
