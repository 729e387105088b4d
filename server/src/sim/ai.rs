//! Server-side bot players: a small deterministic brain that chases orbs, strafes and shoots at
//! the nearest enemy, and wanders (escaping walls it gets stuck on) otherwise.
//!
//! Bots draw randomness only from the world's PRNG, so a match with bots replays exactly.

use glam::Vec2;
use rand::RngExt;
use rand_pcg::Pcg32;
use shared::map::MapDef;
use shared::protocol::InputCmd;
use shared::tick::Tick;
use slotmap::SlotMap;

pub use super::entities::BotBrain;
use super::entities::{Orb, OrbKey, Player, PlayerKey};
use super::grid::Grid;

/// Read-only view of the world a bot decides from.
pub struct Senses<'a> {
    pub tick: Tick,
    pub map: &'a MapDef,
    pub players: &'a SlotMap<PlayerKey, Player>,
    pub player_grid: &'a Grid<PlayerKey>,
    pub orbs: &'a SlotMap<OrbKey, Orb>,
    pub orb_grid: &'a Grid<OrbKey>,
}

/// How far a bot notices enemies, world units.
const SIGHT: f32 = 650.0;
/// How far a bot looks for orbs.
const ORB_SIGHT: f32 = 500.0;

impl BotBrain {
    pub fn new(rng: &mut Pcg32) -> BotBrain {
        BotBrain {
            wander: random_direction(rng),
            next_decision: Tick::ZERO,
            strafe_sign: 1.0,
            last_pos: Vec2::ZERO,
            stuck_ticks: 0,
            skill: rng.random_range(0.3..1.0),
            enemy: None,
            orb: None,
        }
    }

    /// Decides this tick's input for player `me`.
    pub fn think(&mut self, senses: &Senses<'_>, me: PlayerKey, rng: &mut Pcg32) -> InputCmd {
        let Some(player) = senses.players.get(me) else {
            return InputCmd::default();
        };
        if !player.alive {
            return InputCmd::default();
        }
        let pos = player.pos;
        if pos.distance_squared(self.last_pos) < 0.5 {
            self.stuck_ticks += 1;
        } else {
            self.stuck_ticks = 0;
        }
        self.last_pos = pos;
        let stuck = self.stuck_ticks > 15;
        if stuck || !self.next_decision.is_newer_than(senses.tick) {
            self.wander = random_direction(rng);
            self.strafe_sign = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
            self.next_decision = senses.tick.plus(rng.random_range(60..240));
            self.stuck_ticks = 0;
        }

        let mut enemy: Option<(f32, Vec2, PlayerKey)> = None;
        let hint = self.enemy.and_then(|key| senses.players.get(key)).filter(|p| p.alive).map(|p| p.pos);
        senses.player_grid.query_radius(pos, search_radius(pos, hint, SIGHT), |other_pos, key| {
            if key != me {
                let d = other_pos.distance_squared(pos);
                if enemy.is_none_or(|(best, _, _)| d < best) {
                    enemy = Some((d, other_pos, key));
                }
            }
        });
        self.enemy = enemy.map(|(_, _, key)| key);
        let enemy = enemy.map(|(d, other_pos, _)| (d, other_pos));

        let mut aim = player.aim;
        let mut fire = false;
        let dir = if let Some((distance_sq, enemy_pos)) = enemy {
            let to_enemy = enemy_pos - pos;
            let distance = distance_sq.sqrt();
            let jitter = (1.0 - self.skill) * rng.random_range(-0.25..0.25);
            aim = to_enemy.y.atan2(to_enemy.x) + jitter;
            fire = distance < 600.0 && rng.random_bool(f64::from(0.25 + 0.5 * self.skill));
            let toward = to_enemy.normalize_or_zero();
            if distance > 320.0 {
                toward
            } else {
                (toward.perp() * self.strafe_sign - toward * 0.4).normalize_or_zero()
            }
        } else {
            let mut orb: Option<(f32, Vec2, OrbKey)> = None;
            let hint = self.orb.and_then(|key| senses.orbs.get(key)).map(|orb| orb.pos);
            senses.orb_grid.query_radius(pos, search_radius(pos, hint, ORB_SIGHT), |orb_pos, key| {
                if senses.orbs.contains_key(key) {
                    let d = orb_pos.distance_squared(pos);
                    if orb.is_none_or(|(best, _, _)| d < best) {
                        orb = Some((d, orb_pos, key));
                    }
                }
            });
            self.orb = orb.map(|(_, _, key)| key);
            let orb = orb.map(|(d, orb_pos, _)| (d, orb_pos));
            match orb {
                Some((_, orb_pos)) => {
                    let toward = (orb_pos - pos).normalize_or_zero();
                    aim = toward.y.atan2(toward.x);
                    toward
                }
                None => self.wander,
            }
        };
        // Steer away from the map edges instead of grinding along them.
        let margin = 80.0;
        let mut dir = if stuck { self.wander } else { dir };
        if pos.x < margin {
            dir.x = dir.x.abs();
        }
        if pos.y < margin {
            dir.y = dir.y.abs();
        }
        if pos.x > senses.map.width - margin {
            dir.x = -dir.x.abs();
        }
        if pos.y > senses.map.height - margin {
            dir.y = -dir.y.abs();
        }
        let dir = dir.clamp(Vec2::splat(-1.0), Vec2::splat(1.0));
        InputCmd { seq: 0, ack: Tick::ZERO, move_x: dir.x, move_y: dir.y, aim, fire, view: None }
    }
}

/// How far to search around `pos` for the nearest of something within `sight`, given `hint`:
/// where the one found nearest at the last look is now (still there, still eligible). Nothing
/// nearer than the nearest can lie beyond it, so a search out to it (a hair farther, for
/// rounding) finds the same nearest as a search of the whole sight: the same items at the
/// least distance, met in the same grid order (rows, columns, then insertion), so the same
/// first one. Only fewer cells are read. No hint, or one out of sight: the whole sight.
fn search_radius(pos: Vec2, hint: Option<Vec2>, sight: f32) -> f32 {
    let Some(hint) = hint else { return sight };
    let reach = hint.distance(pos) * (1.0 + 1e-4) + 1e-2;
    if reach.is_finite() && reach < sight * (1.0 - 1e-4) { reach } else { sight }
}

fn random_direction(rng: &mut Pcg32) -> Vec2 {
    let angle: f32 = rng.random_range(-std::f32::consts::PI..std::f32::consts::PI);
    Vec2::from_angle(angle)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The first strictly nearest item within `radius` in the grid's scan order (what a bot's
    /// search keeps), with its distance.
    fn nearest(grid: &Grid<u32>, center: Vec2, radius: f32) -> Option<(f32, u32)> {
        let mut best: Option<(f32, u32)> = None;
        grid.query_radius(center, radius, |pos, item| {
            let d = pos.distance_squared(center);
            if best.is_none_or(|(b, _)| d < b) {
                best = Some((d, item));
            }
        });
        best
    }

    proptest! {
        /// Whatever item the hint is (the last nearest, which may no longer be nearest), the
        /// bounded search finds what a search of the whole sight finds, ties included: points
        /// are on a coarse lattice, so many are equally near.
        #[test]
        fn a_search_bounded_by_any_hint_finds_the_same_nearest(
            points in proptest::collection::vec((0u32..48, 0u32..48), 1..60),
            center in (0u32..48, 0u32..48),
        ) {
            let at = |(x, y): (u32, u32)| Vec2::new(x as f32 * 50.0, y as f32 * 50.0);
            let mut grid = Grid::new(2_400.0, 2_400.0, 128.0);
            for (i, &point) in points.iter().enumerate() {
                grid.insert(at(point), i as u32);
            }
            let center = at(center);
            let whole = nearest(&grid, center, SIGHT);
            for &point in &points {
                let bounded = nearest(&grid, center, search_radius(center, Some(at(point)), SIGHT));
                prop_assert_eq!(bounded, whole, "hint {:?}", at(point));
            }
            prop_assert_eq!(nearest(&grid, center, search_radius(center, None, SIGHT)), whole);
        }
    }
}
