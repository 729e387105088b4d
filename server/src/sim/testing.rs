//! A deterministic harness for gameplay tests and benchmarks: a world on a chosen map, players
//! you steer with one call, and stepping without any clock or network.

use std::sync::Arc;

use glam::Vec2;
use shared::map::MapDef;
use shared::protocol::{InputCmd, ViewTime};

use super::world::{PlayerKey, World, WorldConfig};

pub struct Stepper {
    pub world: World,
    /// Next input sequence number per player is derived from this counter.
    seq: u32,
}

impl Stepper {
    pub fn new(map: MapDef, seed: u64) -> Stepper {
        Stepper::with_config(map, WorldConfig { tick_hz: 60, seed, ..WorldConfig::default() })
    }

    pub fn with_config(map: MapDef, config: WorldConfig) -> Stepper {
        Stepper { world: World::new(Arc::new(map), config), seq: 0 }
    }

    /// The shipped arena map.
    pub fn arena(seed: u64) -> Stepper {
        Stepper::new(MapDef::from_json(crate::maps::DEFAULT_MAP_JSON).expect("default map"), seed)
    }

    pub fn spawn_player(&mut self, name: &str) -> PlayerKey {
        self.world.add_player(name.to_string(), false)
    }

    pub fn spawn_bot(&mut self, name: &str) -> PlayerKey {
        self.world.add_player(name.to_string(), true)
    }

    /// Queues one input for `key`.
    pub fn input(&mut self, key: PlayerKey, move_dir: Vec2, aim: f32, fire: bool) {
        self.input_seen(key, move_dir, aim, fire, None);
    }

    /// Queues one input that claims the player saw the others at `view` (lag compensation).
    pub fn input_seen(&mut self, key: PlayerKey, move_dir: Vec2, aim: f32, fire: bool, view: Option<ViewTime>) {
        self.seq += 1;
        let cmd = InputCmd {
            seq: self.seq,
            ack: shared::Tick::ZERO,
            move_x: move_dir.x,
            move_y: move_dir.y,
            aim,
            fire,
            view,
        };
        self.world.push_input(key, cmd);
    }

    /// Steps `n` ticks, feeding `key` the same input every tick.
    pub fn hold(&mut self, key: PlayerKey, move_dir: Vec2, aim: f32, fire: bool, n: u32) {
        for _ in 0..n {
            self.input(key, move_dir, aim, fire);
            self.world.step();
        }
    }

    pub fn step(&mut self, n: u32) {
        for _ in 0..n {
            self.world.step();
        }
    }

    /// Puts a player at a spot (test setup only).
    pub fn place(&mut self, key: PlayerKey, pos: Vec2) {
        let player = &mut self.world.players[key];
        player.pos = pos;
        player.vel = Vec2::ZERO;
    }
}
