//! Player movement: acceleration, friction, speed cap and collision with walls and map edges.

use glam::Vec2;

use super::consts::{PLAYER_ACCEL, PLAYER_FRICTION, PLAYER_MAX_SPEED, PLAYER_RADIUS};
use crate::map::MapDef;

/// The movement part of one input, already validated.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MoveInput {
    /// Desired direction; length ≤ 1 (see [`sanitize_move`]).
    pub dir: Vec2,
}

/// Clamps a raw stick vector to length ≤ 1; non-finite input becomes zero.
pub fn sanitize_move(raw: Vec2) -> Vec2 {
    if !raw.is_finite() {
        return Vec2::ZERO;
    }
    let len_sq = raw.length_squared();
    if len_sq > 1.0 { raw / len_sq.sqrt() } else { raw }
}

/// Advances one player body by `dt` seconds under `input`, then resolves collisions.
pub fn step_player(pos: &mut Vec2, vel: &mut Vec2, input: MoveInput, dt: f32, map: &MapDef) {
    integrate(pos, vel, input, dt);
    collide_with_map(pos, vel, PLAYER_RADIUS, map);
}

/// [`step_player`], with the collision reading only the walls `near` lists for the position
/// (see [`collide_near`]): the same result, bit for bit, from fewer walls.
pub fn step_player_near<'a>(
    pos: &mut Vec2,
    vel: &mut Vec2,
    input: MoveInput,
    dt: f32,
    map: &MapDef,
    near: impl FnOnce(Vec2) -> (&'a [u16], f32),
) {
    integrate(pos, vel, input, dt);
    let (walls, reach) = near(*pos);
    collide_near(pos, vel, PLAYER_RADIUS, map, walls, reach);
}

fn integrate(pos: &mut Vec2, vel: &mut Vec2, input: MoveInput, dt: f32) {
    let dir = sanitize_move(input.dir);
    let accel = dir * PLAYER_ACCEL - *vel * PLAYER_FRICTION;
    *vel += accel * dt;
    let speed_sq = vel.length_squared();
    if speed_sq > PLAYER_MAX_SPEED * PLAYER_MAX_SPEED {
        *vel *= PLAYER_MAX_SPEED / speed_sq.sqrt();
    }
    if speed_sq < 1e-4 && dir == Vec2::ZERO {
        *vel = Vec2::ZERO;
    }
    *pos += *vel * dt;
}

/// Pushes a circle out of every wall it overlaps and keeps it inside the map, cancelling the
/// velocity component that points into whatever it hit (so players slide along walls).
pub fn collide_with_map(pos: &mut Vec2, vel: &mut Vec2, radius: f32, map: &MapDef) {
    // Two passes settle corners where two walls meet.
    for _ in 0..2 {
        for wall in &map.walls {
            push_out(pos, vel, radius, wall);
        }
    }
    clamp_to_map(pos, vel, radius, map);
}

/// [`collide_with_map`] reading only `walls` (indices into `map.walls`, increasing): every wall
/// whose distance from `pos` is at most `reach`, and maybe others. A wall left out is farther
/// than `reach`, so while the pushes move the circle less than `reach - radius` (minus a unit
/// of slack for rounding) it never comes within `radius` and the full scan would skip it too:
/// the result is the same bit for bit. Should the pushes move it farther, the full scan runs
/// from the start.
pub fn collide_near(pos: &mut Vec2, vel: &mut Vec2, radius: f32, map: &MapDef, walls: &[u16], reach: f32) {
    if !pos.is_finite() {
        collide_with_map(pos, vel, radius, map);
        return;
    }
    let (start, start_vel) = (*pos, *vel);
    let mut moved = 0.0f32;
    for _ in 0..2 {
        for &wall in walls {
            if push_out(pos, vel, radius, &map.walls[usize::from(wall)]) {
                moved = moved.max(pos.distance(start));
            }
        }
    }
    if moved + radius + 1.0 > reach {
        (*pos, *vel) = (start, start_vel);
        collide_with_map(pos, vel, radius, map);
        return;
    }
    clamp_to_map(pos, vel, radius, map);
}

/// Pushes the circle out of `wall` if it overlaps it; true if it did.
fn push_out(pos: &mut Vec2, vel: &mut Vec2, radius: f32, wall: &crate::map::Rect) -> bool {
    let closest = wall.closest_point(*pos);
    let offset = *pos - closest;
    let dist_sq = offset.length_squared();
    if dist_sq >= radius * radius {
        return false;
    }
    let normal = if dist_sq > 1e-8 {
        offset / dist_sq.sqrt()
    } else {
        // Centre inside the wall: leave by the nearest face.
        let to_left = pos.x - wall.x;
        let to_right = wall.x + wall.w - pos.x;
        let to_top = pos.y - wall.y;
        let to_bottom = wall.y + wall.h - pos.y;
        let nearest = to_left.min(to_right).min(to_top).min(to_bottom);
        if nearest == to_left {
            Vec2::NEG_X
        } else if nearest == to_right {
            Vec2::X
        } else if nearest == to_top {
            Vec2::NEG_Y
        } else {
            Vec2::Y
        }
    };
    *pos = closest + normal * radius;
    let into = vel.dot(normal);
    if into < 0.0 {
        *vel -= normal * into;
    }
    true
}

fn clamp_to_map(pos: &mut Vec2, vel: &mut Vec2, radius: f32, map: &MapDef) {
    let clamped = pos.clamp(Vec2::splat(radius), Vec2::new(map.width - radius, map.height - radius));
    if clamped.x != pos.x {
        vel.x = 0.0;
    }
    if clamped.y != pos.y {
        vel.y = 0.0;
    }
    *pos = clamped;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::Rect;

    fn open_map() -> MapDef {
        MapDef::open("test", 1000.0, 0)
    }

    #[test]
    fn accelerates_towards_input_and_caps_speed() {
        let map = MapDef::open("wide", 8000.0, 0);
        let (mut pos, mut vel) = (Vec2::new(100.0, 500.0), Vec2::ZERO);
        let right = MoveInput { dir: Vec2::X };
        step_player(&mut pos, &mut vel, right, 1.0 / 60.0, &map);
        assert!(vel.x > 0.0 && vel.y == 0.0);
        assert!(pos.x > 100.0);
        for _ in 0..240 {
            step_player(&mut pos, &mut vel, right, 1.0 / 60.0, &map);
        }
        assert!(vel.length() <= PLAYER_MAX_SPEED + 1e-3, "{vel}");
        assert!(vel.length() > 0.9 * PLAYER_MAX_SPEED, "{vel}");
    }

    #[test]
    fn friction_stops_a_player_without_input() {
        let map = open_map();
        let (mut pos, mut vel) = (Vec2::new(500.0, 500.0), Vec2::new(300.0, 0.0));
        for _ in 0..120 {
            step_player(&mut pos, &mut vel, MoveInput::default(), 1.0 / 60.0, &map);
        }
        assert_eq!(vel, Vec2::ZERO);
    }

    #[test]
    fn oversized_input_is_normalized() {
        assert_eq!(sanitize_move(Vec2::new(3.0, 4.0)), Vec2::new(0.6, 0.8));
        assert_eq!(sanitize_move(Vec2::new(f32::NAN, 1.0)), Vec2::ZERO);
    }

    #[test]
    fn walls_block_and_players_slide() {
        let mut map = open_map();
        map.walls.push(Rect { x: 500.0, y: 0.0, w: 50.0, h: 1000.0 });
        let (mut pos, mut vel) = (Vec2::new(400.0, 500.0), Vec2::ZERO);
        let diagonal = MoveInput { dir: Vec2::new(1.0, 1.0) };
        for _ in 0..120 {
            step_player(&mut pos, &mut vel, diagonal, 1.0 / 60.0, &map);
        }
        assert!(pos.x <= 500.0 - PLAYER_RADIUS + 1e-3, "went through the wall: {pos}");
        assert!(pos.y > 600.0, "should slide along the wall: {pos}");
    }

    #[test]
    fn map_edges_hold() {
        let map = open_map();
        let (mut pos, mut vel) = (Vec2::new(30.0, 30.0), Vec2::ZERO);
        for _ in 0..60 {
            step_player(&mut pos, &mut vel, MoveInput { dir: Vec2::new(-1.0, -1.0) }, 1.0 / 60.0, &map);
        }
        assert_eq!(pos, Vec2::splat(PLAYER_RADIUS));
    }

    #[test]
    fn deterministic() {
        let map = MapDef::from_json(include_str!("../../../assets/maps/arena.json")).unwrap();
        let run = || {
            let (mut pos, mut vel) = (map.spawns[0], Vec2::ZERO);
            for i in 0..600 {
                let t = i as f32 * 0.01;
                let dir = Vec2::new(1.0 - t % 2.0, (t * 0.7) % 1.0);
                step_player(&mut pos, &mut vel, MoveInput { dir }, 1.0 / 60.0, &map);
            }
            (pos.x.to_bits(), pos.y.to_bits(), vel.x.to_bits(), vel.y.to_bits())
        };
        assert_eq!(run(), run());
    }

    proptest::proptest! {
        /// With the walls within `reach` (plus some others) the collision gives the full scan's
        /// result bit for bit, whether the pushes stay within the room `reach` leaves or the
        /// full scan has to take over (a small `reach`).
        #[test]
        fn colliding_with_nearby_walls_matches_the_full_scan(
            start in (0.0f32..2400.0, 0.0f32..2400.0),
            vel in (-400.0f32..400.0, -400.0f32..400.0),
            dir in (-1.5f32..1.5, -1.5f32..1.5),
            reach in proptest::prop_oneof![proptest::strategy::Just(PLAYER_RADIUS + 64.0), (PLAYER_RADIUS..PLAYER_RADIUS + 8.0)],
            extra in proptest::collection::vec(0usize..64, 0..4),
        ) {
            let map = MapDef::from_json(include_str!("../../../assets/maps/arena.json")).expect("the shipped map parses");
            // Start on or near walls often: the corners are where the passes matter.
            let (mut full_pos, mut full_vel) = (Vec2::new(start.0, start.1), Vec2::new(vel.0, vel.1));
            let wall = map.walls[(start.0 as usize) % map.walls.len()];
            if start.1 < 1200.0 {
                full_pos = Vec2::new(wall.x + (start.0 % (wall.w + 40.0)) - 20.0, wall.y + (start.1 % (wall.h + 40.0)) - 20.0);
            }
            let (mut near_pos, mut near_vel) = (full_pos, full_vel);
            let input = MoveInput { dir: Vec2::new(dir.0, dir.1) };
            step_player(&mut full_pos, &mut full_vel, input, 1.0 / 60.0, &map);
            let walls: Vec<u16> = (0..map.walls.len())
                .filter(|&index| {
                    let nearby = |pos: Vec2| map.walls[index].closest_point(pos).distance(pos) <= reach;
                    let (mut pos, mut vel) = (near_pos, near_vel);
                    integrate(&mut pos, &mut vel, input, 1.0 / 60.0);
                    nearby(pos) || extra.contains(&index)
                })
                .map(|index| index as u16)
                .collect();
            step_player_near(&mut near_pos, &mut near_vel, input, 1.0 / 60.0, &map, |_| (&walls, reach));
            proptest::prop_assert_eq!((near_pos.x.to_bits(), near_pos.y.to_bits()), (full_pos.x.to_bits(), full_pos.y.to_bits()));
            proptest::prop_assert_eq!((near_vel.x.to_bits(), near_vel.y.to_bits()), (full_vel.x.to_bits(), full_vel.y.to_bits()));
        }
    }
}
