//! Builds what each client sees and remembers what it was sent, so every snapshot can be a delta
//! against the newest one that client acknowledged.
//!
//! Pure and synchronous like `sim/`: the sim task calls it between ticks. [`Scene`] quantizes the
//! world once per snapshot tick and buckets it in a grid; [`Scene::view_around`] cuts one
//! client's [`View`] out of it (interest management); [`Baselines`] keeps the views sent to one
//! client and picks the delta baseline from its acks. The bit format itself lives in
//! `shared::snapshot`, because the client must decode it.

pub mod budget;

use std::collections::VecDeque;
use std::sync::Arc;

use glam::Vec2;
use shared::map::MapDef;
use shared::quant;
use shared::snapshot::{
    EntityState, FLAG_ALIVE, FLAG_AWAY, FLAG_FIRING, FLAG_HIT, NetId, OrbNet, PlayerNet, ProjectileNet,
    SERVER_BASELINE_WINDOW, View,
};
use shared::tick::Tick;

use crate::sim::grid::Grid;
use crate::sim::world::World;

/// Cell size of the interest grid, world units.
const INTEREST_CELL: f32 = 256.0;

/// The whole world, quantized, at one tick: the input to every client's view.
pub struct Scene {
    pub tick: Tick,
    /// Every entity, sorted by id.
    entities: Vec<(NetId, EntityState)>,
    /// Indices into `entities`, bucketed by the entity's current position.
    grid: Grid<u32>,
    /// Unsorted staging area (reused).
    staging: Vec<(NetId, EntityState, Vec2)>,
}

impl Scene {
    pub fn new(map: &MapDef) -> Scene {
        Scene {
            tick: Tick::ZERO,
            entities: Vec::new(),
            grid: Grid::new(map.width, map.height, INTEREST_CELL),
            staging: Vec::new(),
        }
    }

    /// Quantizes the world. `flash_ticks` is how long the firing/hit flags stay on (one snapshot
    /// interval, so every snapshot shows what happened since the previous one).
    pub fn rebuild(&mut self, world: &World, flash_ticks: u32) {
        self.tick = world.tick;
        let tick = world.tick;
        let recent = |at: Option<Tick>| at.is_some_and(|at| tick.since(at) < flash_ticks);
        self.staging.clear();
        for player in world.players.values() {
            let mut flags = 0;
            if player.alive {
                flags |= FLAG_ALIVE;
            }
            if recent(player.fired_at) {
                flags |= FLAG_FIRING;
            }
            if recent(player.hit_at) {
                flags |= FLAG_HIT;
            }
            if player.away {
                flags |= FLAG_AWAY;
            }
            let (x, y) = quant::vec_to_q(player.pos);
            let state = EntityState::Player(PlayerNet {
                x,
                y,
                aim: quant::angle_to_q(player.aim),
                hp: player.hp,
                score: player.score,
                flags,
            });
            self.staging.push((player.net_id, state, player.pos));
        }
        for projectile in world.projectiles.values() {
            let (origin_x, origin_y) = quant::vec_to_q(projectile.origin);
            let state = EntityState::Projectile(ProjectileNet {
                origin_x,
                origin_y,
                vx: quant::vel_to_q(projectile.vel.x),
                vy: quant::vel_to_q(projectile.vel.y),
                spawn_tick: projectile.spawn_tick,
                owner: projectile.owner_net_id,
            });
            self.staging.push((projectile.net_id, state, projectile.pos));
        }
        for orb in world.orbs.values() {
            let (x, y) = quant::vec_to_q(orb.pos);
            self.staging.push((orb.net_id, EntityState::Orb(OrbNet { x, y, value: orb.value }), orb.pos));
        }
        self.staging.sort_unstable_by_key(|(id, _, _)| *id);
        self.entities.clear();
        self.grid.clear();
        for (index, (id, state, pos)) in self.staging.iter().enumerate() {
            self.entities.push((*id, *state));
            self.grid.insert(*pos, index as u32);
        }
    }

    /// Entities within `half_extent` of `center`, into `out` (sorted by id). `marks` is a reused
    /// bitset over entity indices: marking and then scanning it yields id order without a sort.
    pub fn view_around(&self, center: Vec2, half_extent: Vec2, marks: &mut Vec<u64>, out: &mut View) {
        marks.clear();
        marks.resize(self.entities.len().div_ceil(64), 0);
        self.grid.query_box(center - half_extent, center + half_extent, |_, index| {
            marks[index as usize / 64] |= 1 << (index % 64);
        });
        out.entities.clear();
        for (word_index, &word) in marks.iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                let index = word_index * 64 + bits.trailing_zeros() as usize;
                out.entities.push(self.entities[index]);
                bits &= bits - 1;
            }
        }
    }

    /// Every entity (no interest filtering).
    pub fn view_all(&self, out: &mut View) {
        out.entities.clear();
        out.entities.extend_from_slice(&self.entities);
    }

    pub fn len(&self) -> usize {
        self.entities.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entities.is_empty()
    }
}

/// The views recently sent to one client and the newest one it acknowledged. Views are shared
/// (`Arc`): without interest management every client is sent the same view, stored once.
#[derive(Debug, Default)]
pub struct Baselines {
    /// Oldest first; at most [`SERVER_BASELINE_WINDOW`] entries.
    sent: VecDeque<(Tick, Arc<View>)>,
    /// Newest acknowledged tick that is still in `sent`.
    acked: Option<Tick>,
}

impl Baselines {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a client's acknowledgement. Acks of ticks never sent (or already forgotten) and
    /// acks older than the current one are ignored, so a hostile client cannot pick a baseline.
    pub fn ack(&mut self, tick: Tick) {
        if self.acked.is_some_and(|acked| !tick.is_newer_than(acked)) {
            return;
        }
        if self.sent.iter().any(|(sent, _)| *sent == tick) {
            self.acked = Some(tick);
        }
    }

    /// The baseline to encode the next snapshot against, if the client has one.
    pub fn baseline(&self) -> Option<(Tick, &Arc<View>)> {
        let acked = self.acked?;
        self.sent.iter().find(|(tick, _)| *tick == acked).map(|(tick, view)| (*tick, view))
    }

    /// The newest view handed to the client's connection (acknowledged or not).
    pub fn newest(&self) -> Option<&Arc<View>> {
        self.sent.back().map(|(_, view)| view)
    }

    /// Remembers a view that was handed to the client's connection.
    pub fn record(&mut self, tick: Tick, view: Arc<View>) {
        if self.sent.len() >= SERVER_BASELINE_WINDOW {
            self.sent.pop_front();
        }
        self.sent.push_back((tick, view));
        if let Some(acked) = self.acked
            && !self.sent.iter().any(|(sent, _)| *sent == acked)
        {
            self.acked = None; // Fell out of the window: the next snapshot is full.
        }
    }

    /// Forgets everything (the next snapshot will be full).
    pub fn reset(&mut self) {
        self.sent.clear();
        self.acked = None;
    }
}
