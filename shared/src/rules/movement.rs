//! Player movement: acceleration, friction, speed cap and collision with walls and map edges.

use glam::Vec2;

use super::{PLAYER_ACCEL, PLAYER_FRICTION, PLAYER_MAX_SPEED, PLAYER_RADIUS};
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
    collide_with_map(pos, vel, PLAYER_RADIUS, map);
}

/// Pushes a circle out of every wall it overlaps and keeps it inside the map, cancelling the
/// velocity component that points into whatever it hit (so players slide along walls).
pub fn collide_with_map(pos: &mut Vec2, vel: &mut Vec2, radius: f32, map: &MapDef) {
    // Two passes settle corners where two walls meet.
    for _ in 0..2 {
        for wall in &map.walls {
            let closest = wall.closest_point(*pos);
            let offset = *pos - closest;
            let dist_sq = offset.length_squared();
            if dist_sq >= radius * radius {
                continue;
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
        }
    }
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
}
