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

use super::grid::Grid;
use super::world::{Orb, OrbKey, Player, PlayerKey};

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

#[derive(Clone, Debug)]
pub struct BotBrain {
    /// Direction to wander in when nothing is interesting.
    wander: Vec2,
    /// When to pick a new wander direction and strafe side.
    next_decision: Tick,
    /// +1 or -1: which way to circle an enemy.
    strafe_sign: f32,
    /// Position last tick, to notice being stuck on a wall.
    last_pos: Vec2,
    stuck_ticks: u32,
    /// 0.3..1.0: accuracy and trigger discipline, so bots differ.
    skill: f32,
}

impl BotBrain {
    pub fn new(rng: &mut Pcg32) -> BotBrain {
        BotBrain {
            wander: random_direction(rng),
            next_decision: Tick::ZERO,
            strafe_sign: 1.0,
            last_pos: Vec2::ZERO,
            stuck_ticks: 0,
            skill: rng.random_range(0.3..1.0),
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

        let mut enemy: Option<(f32, Vec2)> = None;
        senses.player_grid.query_radius(pos, SIGHT, |other_pos, key| {
            if key != me {
                let d = other_pos.distance_squared(pos);
                if enemy.is_none_or(|(best, _)| d < best) {
                    enemy = Some((d, other_pos));
                }
            }
        });

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
            let mut orb: Option<(f32, Vec2)> = None;
            senses.orb_grid.query_radius(pos, ORB_SIGHT, |orb_pos, key| {
                if senses.orbs.contains_key(key) {
                    let d = orb_pos.distance_squared(pos);
                    if orb.is_none_or(|(best, _)| d < best) {
                        orb = Some((d, orb_pos));
                    }
                }
            });
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

fn random_direction(rng: &mut Pcg32) -> Vec2 {
    let angle: f32 = rng.random_range(-std::f32::consts::PI..std::f32::consts::PI);
    Vec2::from_angle(angle)
}
