//! Builds what each client sees and remembers what it was sent, so every snapshot can be a delta
//! against the newest one that client acknowledged.
//!
//! Pure and synchronous like `sim/`: the sim task calls it between ticks. [`Scene`] quantizes the
//! whole world once per snapshot tick (the view shared by every client without interest
//! management, and spectators'); [`interest::InterestScene`] keeps what interest-managed players
//! see and cuts each one's view out of it; [`Baselines`] keeps the views sent to one client and
//! picks the delta baseline from its acks. The bit format itself lives in
//! `shared::snapshot`, because the client must decode it.

pub mod budget;
pub mod interest;

use std::collections::VecDeque;
use std::sync::Arc;

use shared::quant;
use shared::snapshot::{
    EntityState, FLAG_ALIVE, FLAG_AWAY, FLAG_FIRING, FLAG_HIT, NetId, OrbNet, PlayerNet, ProjectileNet,
    SERVER_BASELINE_WINDOW, View,
};
use shared::tick::Tick;

use crate::sim::world::{Player, Projectile, World};

/// The whole world, quantized, at one tick: the view shared by every client without interest
/// management, and spectators'.
#[derive(Default)]
pub struct Scene {
    pub tick: Tick,
    /// Every entity, sorted by id.
    entities: Vec<(NetId, EntityState)>,
    /// Unsorted staging area (reused).
    staging: Vec<(NetId, EntityState)>,
}

impl Scene {
    pub fn new() -> Scene {
        Scene::default()
    }

    /// Quantizes the world. `flash_ticks` is how long the firing/hit flags stay on (one snapshot
    /// interval, so every snapshot shows what happened since the previous one).
    pub fn rebuild(&mut self, world: &World, flash_ticks: u32) {
        self.tick = world.tick;
        let tick = world.tick;
        self.staging.clear();
        for player in world.players.values() {
            self.staging.push((player.net_id, player_state(player, tick, flash_ticks)));
        }
        for projectile in world.projectiles.values() {
            self.staging.push((projectile.net_id, projectile_state(projectile)));
        }
        for orb in world.orbs.values() {
            let (x, y) = quant::vec_to_q(orb.pos);
            self.staging.push((orb.net_id, EntityState::Orb(OrbNet { x, y, value: orb.value })));
        }
        self.staging.sort_unstable_by_key(|(id, _)| *id);
        self.entities.clear();
        self.entities.extend_from_slice(&self.staging);
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

/// A player as clients see it at `tick`. `flash_ticks`: how long the firing and hit flags stay
/// on after the event.
pub fn player_state(player: &Player, tick: Tick, flash_ticks: u32) -> EntityState {
    let recent = |at: Option<Tick>| at.is_some_and(|at| tick.since(at) < flash_ticks);
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
    EntityState::Player(PlayerNet {
        x,
        y,
        aim: quant::angle_to_q(player.aim),
        hp: player.hp,
        score: player.score,
        flags,
    })
}

/// A projectile as clients see it (it never changes after it is fired).
pub fn projectile_state(projectile: &Projectile) -> EntityState {
    let (origin_x, origin_y) = quant::vec_to_q(projectile.origin);
    EntityState::Projectile(ProjectileNet {
        origin_x,
        origin_y,
        vx: quant::vel_to_q(projectile.vel.x),
        vy: quant::vel_to_q(projectile.vel.y),
        spawn_tick: projectile.spawn_tick,
        owner: projectile.owner_net_id,
    })
}

/// The views recently sent to one client and the newest one it acknowledged. Views are shared
/// (`Arc`): without interest management every client is sent the same view, stored once. `V` is
/// how a view is kept: whole, or (interest-managed players) as an [`interest::Sent`].
#[derive(Debug)]
pub struct Baselines<V = Arc<View>> {
    /// Oldest first; at most [`SERVER_BASELINE_WINDOW`] entries.
    sent: VecDeque<(Tick, V)>,
    /// Newest acknowledged tick that is still in `sent`.
    acked: Option<Tick>,
}

impl<V> Default for Baselines<V> {
    fn default() -> Self {
        Baselines { sent: VecDeque::new(), acked: None }
    }
}

impl<V> Baselines<V> {
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
    pub fn baseline(&self) -> Option<(Tick, &V)> {
        let acked = self.acked?;
        self.sent.iter().find(|(tick, _)| *tick == acked).map(|(tick, view)| (*tick, view))
    }

    /// The tick of the newest view handed to the client's connection.
    pub fn newest_tick(&self) -> Option<Tick> {
        self.sent.back().map(|(tick, _)| *tick)
    }

    /// The newest view handed to the client's connection (acknowledged or not).
    pub fn newest(&self) -> Option<&V> {
        self.sent.back().map(|(_, view)| view)
    }

    /// Remembers a view that was handed to the client's connection.
    pub fn record(&mut self, tick: Tick, view: V) {
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
