//! The authoritative world: players, projectiles and orbs in slotmaps, advanced one fixed tick at
//! a time by [`World::step`].
//!
//! `World` is sans-IO: it never awaits, never reads a clock and draws randomness only from its
//! own seeded PRNG, so the same seed, map and input stream always produce the same state (checked
//! by [`World::state_hash`]). Bad or late input is not an error here: it is clamped or dropped and
//! counted. Networking, snapshots and timing live elsewhere.

use std::collections::VecDeque;
use std::sync::Arc;

use glam::Vec2;
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg32;
use shared::map::MapDef;
use shared::protocol::{
    DisconnectReason, GameEvent, InputCmd, LEADERBOARD_SIZE, LeaderEntry, Leaderboard, RosterEntry,
};
use shared::rules::{self, MoveInput};
use shared::snapshot::NetId;
use shared::tick::Tick;
use slotmap::SlotMap;

use super::ai::{BotBrain, Senses};
pub use super::entities::{Orb, OrbChange, OrbKey, Player, PlayerKey, Projectile, ProjectileKey};
use super::grid::Grid;
pub use super::lagcomp::{DEFAULT_LAG_COMP_MS, LagCompClamps, MAX_LAG_COMP_MS, MAX_VIEW_BEHIND_ACK, lag_comp_ticks};
use super::lagcomp::{History, rewind_for};
use super::walls::WallIndex;
/// How many unapplied inputs a player may have queued (two seconds at 60 Hz); past that the
/// oldest are dropped. A backlog within it is applied in full, in order, so the server takes
/// exactly the steps the client predicted.
pub const INPUT_BUFFER: usize = 120;
/// Queued inputs the server keeps as a cushion against jitter; above it, it catches up.
pub const INPUT_TARGET_DEPTH: usize = 2;
/// Most inputs applied in one tick while catching up (a late burst after a stall): the player
/// moves at most this many times its speed for a moment, never a lurch.
pub const MAX_INPUTS_PER_TICK: usize = 2;
/// Ticks of catch-up a player may bank: only ticks it spent holding still (no input) earn the
/// right to apply a second input later, so nobody outruns the clock by sending faster.
pub const MAX_CATCH_UP_CREDIT: u16 = 120;

/// Which game the world plays.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Rules {
    /// The arena game: acceleration, walls, shooting, orbs, respawns, bots.
    #[default]
    Arena,
    /// Benchmark scenario S1 (shared/SCENARIO-S1.md): players move at 200 units/s along their
    /// latest input on an open map, spawn uniformly, never fight; orbs are static.
    S1,
}

/// Speed of an S1 player, units/s.
pub const S1_SPEED: f32 = 200.0;

/// Everything fixed for the lifetime of a world.
#[derive(Clone, Debug)]
pub struct WorldConfig {
    pub tick_hz: u16,
    pub seed: u64,
    pub rules: Rules,
    /// Lag compensation window, ticks: how far back a shot may be tested against targets as the
    /// shooter saw them (0: shots meet the present only).
    pub lag_comp_ticks: u32,
}

impl Default for WorldConfig {
    fn default() -> Self {
        Self { tick_hz: 60, seed: 0x5eed, rules: Rules::Arena, lag_comp_ticks: 30 }
    }
}

/// Most orb changes kept for a consumer that has not taken them; past this the journal is
/// dropped and the consumer resynchronizes from [`World::orbs`].
const ORB_JOURNAL_LIMIT: usize = 4096;

/// The room's whole game state.
pub struct World {
    pub config: WorldConfig,
    pub map: Arc<MapDef>,
    pub tick: Tick,
    pub players: SlotMap<PlayerKey, Player>,
    pub projectiles: SlotMap<ProjectileKey, Projectile>,
    pub orbs: SlotMap<OrbKey, Orb>,
    /// Orbs by position; orbs never move, so this is updated only on pickup and spawn.
    orb_grid: Grid<OrbKey>,
    /// Living players by position, rebuilt every tick.
    player_grid: Grid<PlayerKey>,
    /// The map's walls by cell, for the free-space checks of projectiles and orbs, and for
    /// players' collisions (`player_walls`, which looks farther).
    walls: WallIndex,
    player_walls: WallIndex,
    rng: Pcg32,
    next_net_id: u32,
    /// Events of the ticks stepped since the caller last drained them.
    pub events: Vec<GameEvent>,
    /// Set when scores or the player list changed; cleared by [`World::refresh_leaderboard`].
    leaderboard_dirty: bool,
    dt: f32,
    // Scratch buffers, reused every tick so a steady-state step allocates nothing.
    bot_keys: Vec<PlayerKey>,
    shots: Vec<(PlayerKey, NetId, Vec2, f32, f32)>,
    /// Living players' positions over the lag compensation window.
    history: History,
    lag_comp_clamps: LagCompClamps,
    respawns: Vec<PlayerKey>,
    hits: Vec<(PlayerKey, PlayerKey)>,
    rank_order: Vec<(u16, NetId, PlayerKey)>,
    /// Scratch for projectiles to remove (reused every tick).
    dead_projectiles: Vec<ProjectileKey>,
    /// Scratch for orbs picked up this tick (reused every tick).
    taken_orbs: Vec<(OrbKey, PlayerKey)>,
    /// Orbs spawned and removed since the consumer last took them, when journaling is on (see
    /// [`World::journal_orbs`]); `complete` is false until the consumer has synchronized once
    /// and after an overflow.
    orb_journal: Option<(Vec<OrbChange>, bool)>,
}

/// How far pushes out of walls may move a player within a tick before the collision falls back
/// to reading every wall (see `shared::rules::collide_near`).
const PUSH_ROOM: f32 = 64.0;

/// Cell size of the world's neighbourhood grids, world units.
const GRID_CELL: f32 = 128.0;

impl World {
    pub fn new(map: Arc<MapDef>, config: WorldConfig) -> World {
        let mut world = World {
            dt: 1.0 / f32::from(config.tick_hz.max(1)),
            rng: Pcg32::seed_from_u64(config.seed),
            config,
            orb_grid: Grid::new(map.width, map.height, GRID_CELL),
            player_grid: Grid::new(map.width, map.height, GRID_CELL),
            walls: WallIndex::new(&map, rules::PROJECTILE_RADIUS.max(rules::ORB_RADIUS)),
            player_walls: WallIndex::new(&map, rules::PLAYER_RADIUS + PUSH_ROOM),
            map,
            tick: Tick::ZERO,
            players: SlotMap::with_key(),
            projectiles: SlotMap::with_key(),
            orbs: SlotMap::with_key(),
            next_net_id: 1,
            events: Vec::new(),
            leaderboard_dirty: true,
            bot_keys: Vec::new(),
            shots: Vec::new(),
            history: History::default(),
            lag_comp_clamps: LagCompClamps::default(),
            respawns: Vec::new(),
            hits: Vec::new(),
            rank_order: Vec::new(),
            dead_projectiles: Vec::new(),
            taken_orbs: Vec::new(),
            orb_journal: None,
        };
        for _ in 0..world.map.orbs {
            if world.config.rules == Rules::S1 {
                world.spawn_s1_orb();
            } else {
                world.spawn_orb();
            }
        }
        world
    }

    /// S1: an orb uniform over the whole map with a kind in 0..=3; it never changes.
    fn spawn_s1_orb(&mut self) {
        let pos = Vec2::new(self.rng.random_range(0.0..self.map.width), self.rng.random_range(0.0..self.map.height));
        let value = self.rng.random_range(0..4u8);
        let net_id = self.allocate_net_id();
        let key = self.orbs.insert(Orb { net_id, pos, value });
        self.orb_grid.insert(pos, key);
        self.journal(OrbChange::Spawned { net_id, pos, value });
    }

    /// Starts recording orb spawns and removals for [`World::take_orb_changes`] (interest
    /// management updates its scene from them instead of re-reading every orb each round).
    pub fn journal_orbs(&mut self) {
        self.orb_journal.get_or_insert((Vec::new(), false));
    }

    /// Moves the orb changes since the last call into `into` (cleared first) and returns true,
    /// or returns false when they are not all known (journaling off, never taken, or
    /// overflowed): the consumer then reads [`World::orbs`] whole.
    pub fn take_orb_changes(&mut self, into: &mut Vec<OrbChange>) -> bool {
        into.clear();
        let Some((changes, complete)) = &mut self.orb_journal else { return false };
        std::mem::swap(changes, into);
        std::mem::replace(complete, true)
    }

    fn journal(&mut self, change: OrbChange) {
        if let Some((changes, complete)) = &mut self.orb_journal {
            if changes.len() >= ORB_JOURNAL_LIMIT {
                changes.clear();
                *complete = false;
            }
            if *complete {
                changes.push(change);
            }
        }
    }

    /// Seconds per tick.
    pub fn dt(&self) -> f32 {
        self.dt
    }

    fn allocate_net_id(&mut self) -> NetId {
        let id = NetId(self.next_net_id);
        self.next_net_id = self.next_net_id.wrapping_add(1).max(1);
        id
    }

    /// Adds a player at the best spawn point. `bot` players are driven by the server's AI.
    pub fn add_player(&mut self, name: String, bot: bool) -> PlayerKey {
        let net_id = self.allocate_net_id();
        let pos = if self.config.rules == Rules::S1 {
            Vec2::new(self.rng.random_range(0.0..self.map.width), self.rng.random_range(0.0..self.map.height))
        } else {
            self.choose_spawn()
        };
        let brain = bot.then(|| BotBrain::new(&mut self.rng));
        let key = self.players.insert(Player {
            net_id,
            name: name.clone(),
            bot: brain,
            pos,
            vel: Vec2::ZERO,
            aim: 0.0,
            hp: rules::PLAYER_MAX_HP,
            alive: true,
            respawn_at: self.tick,
            score: 0,
            kills: 0,
            deaths: 0,
            rank: 0,
            inputs: VecDeque::with_capacity(INPUT_BUFFER),
            last_input: InputCmd::default(),
            last_applied_seq: 0,
            queue_low: u8::MAX,
            catch_up_credit: 0,
            fire_cooldown: 0,
            life: 0,
            fired_at: None,
            hit_at: None,
            inputs_dropped: 0,
            away: false,
        });
        self.events.push(GameEvent::Joined { id: net_id, name, bot });
        self.leaderboard_dirty = true;
        key
    }

    /// Removes a player and its projectiles' ownership (they keep flying but score for nobody).
    pub fn remove_player(&mut self, key: PlayerKey, reason: DisconnectReason) -> Option<Player> {
        let player = self.players.remove(key)?;
        self.events.push(GameEvent::Left { id: player.net_id, reason });
        self.leaderboard_dirty = true;
        Some(player)
    }

    /// Queues an input for the player. Inputs older than the last applied one are ignored;
    /// when the buffer is full the oldest queued input is dropped.
    pub fn push_input(&mut self, key: PlayerKey, cmd: InputCmd) {
        let Some(player) = self.players.get_mut(key).filter(|player| !player.away) else {
            return;
        };
        if self.config.rules == Rules::S1 {
            // S1 keeps only the latest input; it is applied every tick until replaced.
            player.last_input = cmd;
            player.last_applied_seq = cmd.seq;
            return;
        }
        let newest = player.inputs.back().map_or(player.last_applied_seq, |queued| queued.seq);
        if cmd.seq <= newest && !(newest == 0 && cmd.seq == 0 && player.inputs.is_empty()) {
            return;
        }
        if player.inputs.len() >= INPUT_BUFFER {
            player.inputs.pop_front();
            player.inputs_dropped += 1;
        }
        player.inputs.push_back(cmd);
    }

    /// Holds (`away`) or gives back a player's seat. Held: queued inputs are dropped, the
    /// player stands still and does not fire, and new inputs are ignored. Given back: input
    /// sequence numbers start again (the returning connection counts from its own start, and
    /// snapshots ack from there).
    pub fn set_away(&mut self, key: PlayerKey, away: bool) {
        let Some(player) = self.players.get_mut(key) else {
            return;
        };
        player.away = away;
        player.inputs.clear();
        player.last_input = InputCmd::default();
        player.last_applied_seq = 0;
        player.catch_up_credit = 0;
        player.vel = Vec2::ZERO;
    }

    /// Restores score and counters (used when a player resumes after a reconnect).
    pub fn restore_stats(&mut self, key: PlayerKey, score: u16, kills: u16, deaths: u16) {
        if let Some(player) = self.players.get_mut(key) {
            player.score = score;
            player.kills = kills;
            player.deaths = deaths;
            self.leaderboard_dirty = true;
        }
    }

    /// Advances the world by one tick.
    pub fn step(&mut self) {
        self.tick = self.tick.next();
        if self.config.rules == Rules::S1 {
            self.step_s1();
            return;
        }
        self.rebuild_player_grid();
        self.think_bots();
        self.step_players();
        self.step_projectiles();
        self.collect_orbs();
    }

    /// S1 movement: straight along the latest input at [`S1_SPEED`], clamped to the map.
    fn step_s1(&mut self) {
        let dt = self.dt;
        let max = Vec2::new(self.map.width, self.map.height);
        for player in self.players.values_mut() {
            let input = player.last_input;
            let mut dir = Vec2::new(input.move_x, input.move_y);
            let len = dir.length();
            if len > 1.0 {
                dir /= len;
            }
            player.pos = (player.pos + dir * S1_SPEED * dt).clamp(Vec2::ZERO, max);
            player.aim = input.aim;
        }
    }

    /// Buckets the living players where the previous tick left them: what shots meet this tick
    /// (the moment the newest snapshot showed), and the newest frame of the lag compensation
    /// history.
    fn rebuild_player_grid(&mut self) {
        self.player_grid.clear();
        for (key, player) in &self.players {
            if player.alive {
                self.player_grid.insert(player.pos, key);
            }
        }
        if self.config.lag_comp_ticks > 0 {
            let keep = self.config.lag_comp_ticks as usize + 2;
            self.history.record(Tick(self.tick.0.wrapping_sub(1)), &self.players, keep);
        }
    }

    /// Shots clamped to the lag compensation window since the last call (for metrics).
    pub fn take_lag_comp_clamps(&mut self) -> LagCompClamps {
        std::mem::take(&mut self.lag_comp_clamps)
    }
}
impl World {
    fn think_bots(&mut self) {
        let mut bot_keys = std::mem::take(&mut self.bot_keys);
        bot_keys.clear();
        bot_keys.extend(self.players.iter().filter(|(_, p)| p.bot.is_some()).map(|(key, _)| key));
        for &key in &bot_keys {
            let Some(mut brain) = self.players[key].bot.take() else {
                continue;
            };
            let senses = Senses {
                tick: self.tick,
                map: &self.map,
                players: &self.players,
                player_grid: &self.player_grid,
                orbs: &self.orbs,
                orb_grid: &self.orb_grid,
            };
            let cmd = brain.think(&senses, key, &mut self.rng);
            let player = &mut self.players[key];
            player.bot = Some(brain);
            let seq = player.last_applied_seq.wrapping_add(1);
            player.inputs.clear();
            player.inputs.push_back(InputCmd { seq, ..cmd });
        }
        self.bot_keys = bot_keys;
    }

    fn step_players(&mut self) {
        let tick = self.tick;
        let dt = self.dt;
        let fire_cooldown = rules::seconds_to_ticks(rules::FIRE_COOLDOWN_S, self.config.tick_hz);
        let lifetime = rules::seconds_to_ticks(rules::PROJECTILE_LIFETIME_S, self.config.tick_hz);
        let mut shots = std::mem::take(&mut self.shots);
        let mut respawns = std::mem::take(&mut self.respawns);
        let (present, window) = (Tick(tick.0.wrapping_sub(1)), self.config.lag_comp_ticks as f32);
        let clamps = &mut self.lag_comp_clamps;
        for (key, player) in &mut self.players {
            player.fire_cooldown = player.fire_cooldown.saturating_sub(1);
            // One input per tick; none queued (a stall): the player holds still, a step the
            // client never predicted is never guessed; a backlog above the target depth (the
            // burst after a stall) is applied two per tick until it is back on target. Every
            // input is applied exactly once, in order, so prediction replays the same steps.
            player.queue_low = player.queue_low.min(player.inputs.len().min(usize::from(u8::MAX)) as u8);
            if player.inputs.is_empty() {
                player.catch_up_credit = (player.catch_up_credit + 1).min(MAX_CATCH_UP_CREDIT);
            }
            // A second input per tick only to make up for ticks held still before: on average
            // never more than one input per tick, whatever the client sends.
            let catch_up = player.inputs.len() > INPUT_TARGET_DEPTH && player.catch_up_credit > 0;
            if catch_up {
                player.catch_up_credit -= 1;
            }
            let take = if catch_up { MAX_INPUTS_PER_TICK } else { 1 };
            for _ in 0..take {
                let Some(input) = player.inputs.pop_front() else { break };
                player.last_applied_seq = input.seq;
                player.last_input = input;
                if !player.alive {
                    continue;
                }
                let dir = Vec2::new(input.move_x, input.move_y);
                let near = |pos| self.player_walls.near(pos);
                rules::step_player_near(&mut player.pos, &mut player.vel, MoveInput { dir }, dt, &self.map, near);
                player.aim = normalize_angle(input.aim);
                if input.fire && player.fire_cooldown == 0 {
                    player.fire_cooldown = fire_cooldown;
                    player.fired_at = Some(tick);
                    let rewind = rewind_for(&input, present, window, clamps);
                    shots.push((key, player.net_id, player.pos, player.aim, rewind));
                }
            }
            if !player.alive && !player.respawn_at.is_newer_than(tick) {
                respawns.push(key);
            }
        }
        for key in respawns.drain(..) {
            self.respawn(key);
        }
        for (owner, owner_net_id, pos, aim, rewind) in shots.drain(..) {
            let dir = Vec2::from_angle(aim);
            let origin = pos + dir * (rules::PLAYER_RADIUS + rules::PROJECTILE_RADIUS + 1.0);
            if !self.walls.is_free(&self.map, origin, rules::PROJECTILE_RADIUS) {
                continue; // Muzzle inside a wall: the shot is blocked.
            }
            let net_id = self.allocate_net_id();
            self.projectiles.insert(Projectile {
                net_id,
                owner,
                owner_net_id,
                origin,
                pos: origin,
                vel: dir * rules::PROJECTILE_SPEED,
                spawn_tick: tick,
                expires_at: tick.plus(lifetime),
                rewind,
            });
        }
        self.shots = shots;
        self.respawns = respawns;
    }

    fn step_projectiles(&mut self) {
        let tick = self.tick;
        let dt = self.dt;
        let hit_radius = rules::PLAYER_RADIUS + rules::PROJECTILE_RADIUS;
        // The farthest a player can get in one tick: two inputs (catching up) at top speed, plus
        // a push out of a wall.
        let reach_per_tick = 2.0 * rules::PLAYER_MAX_SPEED * dt + 1.0;
        self.dead_projectiles.clear();
        let mut hits = std::mem::take(&mut self.hits);
        let history = &self.history;
        for (key, projectile) in &mut self.projectiles {
            projectile.pos += projectile.vel * dt;
            let expired = !projectile.expires_at.is_newer_than(tick);
            if !expired && self.walls.is_free(&self.map, projectile.pos, rules::PROJECTILE_RADIUS) {
                let mut victim = None;
                if projectile.rewind > 0.0 {
                    // Lag compensated: targets where the shooter saw them (walls as they are).
                    // The grid holds the present, so search as far as anyone could have moved.
                    let reach = hit_radius + projectile.rewind.ceil() * reach_per_tick + rules::PLAYER_RADIUS;
                    let players = &self.players;
                    self.player_grid.query_radius(projectile.pos, reach, |_, player_key| {
                        if player_key == projectile.owner || victim.is_some_and(|v| player_key >= v) {
                            return;
                        }
                        let life = players.get(player_key).map_or(u32::MAX, |p| p.life);
                        let then = history.rewound(player_key, life, projectile.rewind);
                        if then.is_some_and(|then| then.distance_squared(projectile.pos) <= hit_radius * hit_radius) {
                            victim = Some(player_key);
                        }
                    });
                } else {
                    self.player_grid.query_radius(projectile.pos, hit_radius, |_, player_key| {
                        if player_key != projectile.owner && victim.is_none_or(|v| player_key < v) {
                            victim = Some(player_key);
                        }
                    });
                }
                if let Some(victim) = victim {
                    hits.push((projectile.owner, victim));
                    self.dead_projectiles.push(key);
                }
            } else {
                self.dead_projectiles.push(key);
            }
        }
        for key in self.dead_projectiles.drain(..) {
            self.projectiles.remove(key);
        }
        for (shooter, victim) in hits.drain(..) {
            self.damage(shooter, victim, rules::PROJECTILE_DAMAGE);
        }
        self.hits = hits;
    }

    fn damage(&mut self, shooter: PlayerKey, victim_key: PlayerKey, amount: u8) {
        let tick = self.tick;
        let respawn_ticks = rules::seconds_to_ticks(rules::RESPAWN_DELAY_S, self.config.tick_hz);
        let Some(victim) = self.players.get_mut(victim_key) else {
            return;
        };
        if !victim.alive {
            return; // Two shots in one tick: the second hits a corpse.
        }
        victim.hp = victim.hp.saturating_sub(amount);
        victim.hit_at = Some(tick);
        if victim.hp > 0 {
            return;
        }
        victim.alive = false;
        victim.vel = Vec2::ZERO;
        victim.deaths = victim.deaths.saturating_add(1);
        victim.respawn_at = tick.plus(respawn_ticks);
        victim.inputs.clear();
        let victim_id = victim.net_id;
        let killer_id = match self.players.get_mut(shooter) {
            Some(killer) => {
                killer.kills = killer.kills.saturating_add(1);
                killer.score = killer.score.saturating_add(rules::KILL_SCORE);
                killer.net_id
            }
            None => NetId(0), // The shooter left while the shot was in flight.
        };
        self.events.push(GameEvent::Kill { killer: killer_id, victim: victim_id });
        self.leaderboard_dirty = true;
    }

    fn respawn(&mut self, key: PlayerKey) {
        let pos = self.choose_spawn();
        let Some(player) = self.players.get_mut(key) else {
            return;
        };
        player.pos = pos;
        player.vel = Vec2::ZERO;
        player.hp = rules::PLAYER_MAX_HP;
        player.alive = true;
        player.life = player.life.wrapping_add(1);
        player.fire_cooldown = 0;
        self.events.push(GameEvent::Respawned { id: player.net_id });
    }

    /// The spawn point farthest from every living player (first one on ties).
    fn choose_spawn(&self) -> Vec2 {
        let mut best = self.map.spawns[0];
        let mut best_distance = f32::NEG_INFINITY;
        for &spawn in &self.map.spawns {
            let mut nearest = f32::INFINITY;
            for player in self.players.values() {
                if player.alive {
                    nearest = nearest.min(player.pos.distance_squared(spawn));
                }
            }
            if nearest > best_distance {
                best_distance = nearest;
                best = spawn;
            }
        }
        best
    }

    fn collect_orbs(&mut self) {
        let reach = rules::PLAYER_RADIUS + rules::ORB_RADIUS;
        self.taken_orbs.clear();
        for (player_key, player) in &self.players {
            if !player.alive {
                continue;
            }
            let taken = &mut self.taken_orbs;
            self.orb_grid.query_radius(player.pos, reach, |_, orb_key| {
                if !taken.iter().any(|(taken_key, _)| *taken_key == orb_key) {
                    taken.push((orb_key, player_key));
                }
            });
        }
        if self.taken_orbs.is_empty() {
            return;
        }
        let taken = std::mem::take(&mut self.taken_orbs);
        for &(orb_key, player_key) in &taken {
            if let Some(orb) = self.orbs.remove(orb_key) {
                self.orb_grid.remove(orb.pos, orb_key);
                self.journal(OrbChange::Removed { net_id: orb.net_id, pos: orb.pos });
                if let Some(player) = self.players.get_mut(player_key) {
                    player.score = player.score.saturating_add(u16::from(orb.value));
                }
                self.spawn_orb();
            }
        }
        self.taken_orbs = taken;
        self.leaderboard_dirty = true;
    }

    /// Places a new orb at a random free spot (gives up after a few tries on crowded maps).
    fn spawn_orb(&mut self) {
        for _ in 0..32 {
            let pos =
                Vec2::new(self.rng.random_range(0.0..self.map.width), self.rng.random_range(0.0..self.map.height));
            if !self.walls.is_free(&self.map, pos, rules::ORB_RADIUS) {
                continue;
            }
            let roll: u32 = self.rng.random_range(0..100);
            let value = match roll {
                0..70 => 1,
                70..95 => 2,
                _ => 3,
            };
            let net_id = self.allocate_net_id();
            let key = self.orbs.insert(Orb { net_id, pos, value });
            self.orb_grid.insert(pos, key);
            self.journal(OrbChange::Spawned { net_id, pos, value });
            return;
        }
    }

    /// Recomputes ranks and returns the leaderboard when anything changed since the last call.
    pub fn refresh_leaderboard(&mut self) -> Option<Leaderboard> {
        if !self.leaderboard_dirty {
            return None;
        }
        self.leaderboard_dirty = false;
        let mut order = std::mem::take(&mut self.rank_order);
        order.clear();
        order.extend(self.players.iter().map(|(key, p)| (p.score, p.net_id, key)));
        order.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut top = Vec::with_capacity(LEADERBOARD_SIZE);
        for (index, (_, _, key)) in order.iter().enumerate() {
            let player = &mut self.players[*key];
            player.rank = (index + 1).min(usize::from(u16::MAX)) as u16;
            if index < LEADERBOARD_SIZE {
                top.push(LeaderEntry {
                    id: player.net_id,
                    score: player.score,
                    kills: player.kills,
                    deaths: player.deaths,
                });
            }
        }
        self.rank_order = order;
        Some(Leaderboard { top, players: self.players.len().min(usize::from(u16::MAX)) as u16 })
    }

    /// Names of everyone in the room, for a welcome.
    pub fn roster(&self) -> Vec<RosterEntry> {
        self.players
            .values()
            .map(|p| RosterEntry { id: p.net_id, name: p.name.clone(), bot: p.bot.is_some() })
            .collect()
    }

    /// Living players near `pos` (used by the AI).
    pub fn players_near(&self, pos: Vec2, radius: f32, visit: impl FnMut(Vec2, PlayerKey)) {
        self.player_grid.query_radius(pos, radius, visit);
    }

    /// Orbs near `pos` (used by the AI).
    pub fn orbs_near(&self, pos: Vec2, radius: f32, visit: impl FnMut(Vec2, OrbKey)) {
        self.orb_grid.query_radius(pos, radius, visit);
    }

    /// A 64-bit FNV-1a hash of everything that determines the future of the world. Two worlds
    /// with equal hashes at the same tick evolve identically under the same inputs.
    pub fn state_hash(&self) -> u64 {
        let mut hash = Fnv::new();
        hash.u32(self.tick.0);
        hash.u32(self.next_net_id);
        for player in self.players.values() {
            hash.u32(player.net_id.0);
            for v in [player.pos.x, player.pos.y, player.vel.x, player.vel.y, player.aim] {
                hash.u32(v.to_bits());
            }
            hash.u32(u32::from(player.hp) | (u32::from(player.alive) << 8));
            hash.u32(u32::from(player.score) | (u32::from(player.kills) << 16));
            hash.u32(u32::from(player.deaths));
            hash.u32(player.respawn_at.0);
            hash.u32(player.fire_cooldown);
            hash.u32(player.last_applied_seq);
        }
        for projectile in self.projectiles.values() {
            hash.u32(projectile.net_id.0);
            for v in [projectile.pos.x, projectile.pos.y, projectile.vel.x, projectile.vel.y] {
                hash.u32(v.to_bits());
            }
            hash.u32(projectile.expires_at.0);
        }
        for orb in self.orbs.values() {
            hash.u32(orb.net_id.0);
            hash.u32(orb.pos.x.to_bits());
            hash.u32(orb.pos.y.to_bits());
            hash.u32(u32::from(orb.value));
        }
        let mut rng = self.rng.clone();
        hash.u32(rng.random::<u32>());
        hash.finish()
    }
}

/// Wraps an angle into (-π, π].
fn normalize_angle(angle: f32) -> f32 {
    use std::f32::consts::{PI, TAU};
    let wrapped = (angle + PI).rem_euclid(TAU) - PI;
    if wrapped <= -PI { wrapped + TAU } else { wrapped }
}

/// FNV-1a, 64-bit: tiny, stable across platforms and versions (unlike `DefaultHasher`).
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn u32(&mut self, value: u32) {
        for byte in value.to_le_bytes() {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use glam::Vec2;
    use shared::map::MapDef;
    use shared::protocol::{DisconnectReason, GameEvent};
    use shared::rules;

    use crate::sim::testing::Stepper;

    /// A small open map with two spawn points 200 units apart on one line.
    fn duel_map() -> MapDef {
        MapDef::from_json(
            r#"{"id":"duel","name":"duel","width":600,"height":300,"walls":[],
                "spawns":[[100,150],[300,150]],"orbs":0}"#,
        )
        .unwrap()
    }

    #[test]
    fn same_seed_and_inputs_give_the_same_state() {
        let run = |seed| {
            let mut stepper = Stepper::arena(seed);
            for i in 0..12 {
                stepper.spawn_bot(&format!("bot{i}"));
            }
            let human = stepper.spawn_player("human");
            for tick in 0..900u32 {
                let angle = tick as f32 * 0.01;
                stepper.input(human, Vec2::new(angle.cos(), angle.sin()), angle, tick % 7 == 0);
                stepper.step(1);
            }
            stepper.world.state_hash()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn input_moves_the_player_in_its_direction() {
        let mut stepper = Stepper::new(duel_map(), 1);
        let key = stepper.spawn_player("p");
        let start = stepper.world.players[key].pos;
        stepper.hold(key, Vec2::X, 0.0, false, 30);
        let end = stepper.world.players[key].pos;
        assert!(end.x > start.x + 50.0, "{start} -> {end}");
        assert!((end.y - start.y).abs() < 1e-3);
        assert_eq!(stepper.world.players[key].last_applied_seq, 30);
    }

    #[test]
    fn shots_kill_award_score_and_respawn_later() {
        let mut stepper = Stepper::new(duel_map(), 1);
        let shooter = stepper.spawn_player("shooter");
        let target = stepper.spawn_player("target");
        assert_eq!(stepper.world.players[shooter].pos, Vec2::new(100.0, 150.0));
        assert_eq!(stepper.world.players[target].pos, Vec2::new(300.0, 150.0));
        stepper.world.events.clear();
        let mut died_at = None;
        for _ in 0..120 {
            stepper.input(shooter, Vec2::ZERO, 0.0, true);
            stepper.input(target, Vec2::ZERO, 0.0, false);
            stepper.step(1);
            if !stepper.world.players[target].alive && died_at.is_none() {
                died_at = Some(stepper.world.tick);
            }
        }
        let died_at = died_at.expect("five hits kill");
        let (killer_id, victim_id) = (stepper.world.players[shooter].net_id, stepper.world.players[target].net_id);
        assert!(stepper.world.events.contains(&GameEvent::Kill { killer: killer_id, victim: victim_id }));
        assert_eq!(stepper.world.players[shooter].kills, 1);
        assert_eq!(stepper.world.players[shooter].score, rules::KILL_SCORE);
        assert_eq!(stepper.world.players[target].deaths, 1);
        let board = stepper.world.refresh_leaderboard().expect("scores changed");
        assert_eq!(board.top[0].id, killer_id);
        assert_eq!(board.top[0].score, rules::KILL_SCORE);
        assert_eq!(stepper.world.players[shooter].rank, 1);
        // Respawn after the delay, with full health.
        let respawn_ticks = rules::seconds_to_ticks(rules::RESPAWN_DELAY_S, 60);
        let until_respawn = respawn_ticks - stepper.world.tick.since(died_at);
        stepper.step(until_respawn - 1);
        assert!(!stepper.world.players[target].alive);
        stepper.step(2);
        assert!(stepper.world.players[target].alive);
        assert_eq!(stepper.world.players[target].hp, rules::PLAYER_MAX_HP);
    }

    /// A target crossing the line of fire at top speed and a still shooter that aims where the
    /// target's path meets its shot in a timeline `aim_back` ticks in the past. The shot's input
    /// claims the view `claim` (ticks before the present; negative: the future). Returns whether
    /// the target was hit and the clamps counted.
    fn lag_comp_shot(window: u32, aim_back: u32, claim: Option<i64>) -> (bool, super::LagCompClamps) {
        use shared::protocol::ViewTime;
        use shared::tick::Tick;
        let config = super::WorldConfig { lag_comp_ticks: window, ..super::WorldConfig::default() };
        let mut stepper = Stepper::with_config(MapDef::open("lag", 2000.0, 0), config);
        let shooter = stepper.spawn_player("shooter");
        let target = stepper.spawn_player("target");
        let from = Vec2::new(400.0, 1000.0);
        stepper.place(shooter, from);
        stepper.place(target, Vec2::new(800.0, 300.0));
        let mut path = Vec::new(); // The target's position after each tick.
        for _ in 0..90 {
            stepper.input(shooter, Vec2::ZERO, 0.0, false);
            stepper.input(target, Vec2::Y, 0.0, false);
            stepper.step(1);
            path.push(stepper.world.players[target].pos);
        }
        let present = stepper.world.tick; // The next step fires; its present is this tick.
        let per_tick = path[path.len() - 1] - path[path.len() - 2];
        let target_at = |ticks_after_present: f32| path[path.len() - 1] + per_tick * ticks_after_present;
        // The shot is first tested the tick it is fired, 15 units out from its muzzle 24 units
        // from the shooter; k ticks later it is 24 + 15 (k + 1) out.
        let step = rules::PROJECTILE_SPEED / 60.0;
        let muzzle = rules::PLAYER_RADIUS + rules::PROJECTILE_RADIUS + 1.0;
        let (aim_point, _) = (0..60)
            .map(|k| {
                let point = target_at(k as f32 - aim_back as f32);
                let miss = (point.distance(from) - (muzzle + step * (k as f32 + 1.0))).abs();
                (point, miss)
            })
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap();
        let aim = (aim_point - from).to_angle();
        let view = claim.map(|back| ViewTime { tick: Tick((i64::from(present.0) - back) as u32), frac: 0 });
        stepper.input_seen(shooter, Vec2::ZERO, aim, true, view);
        for _ in 0..60 {
            stepper.input(target, Vec2::Y, 0.0, false);
            stepper.step(1);
            stepper.input(shooter, Vec2::ZERO, aim, false);
        }
        let hit = stepper.world.players[target].hp < rules::PLAYER_MAX_HP;
        (hit, stepper.world.take_lag_comp_clamps())
    }

    #[test]
    fn a_shot_meets_its_target_where_the_shooter_saw_it() {
        // 200 ms behind the present, as a shooter at ~130 ms RTT draws others: a hit.
        let (hit, clamps) = lag_comp_shot(30, 12, Some(12));
        assert!(hit, "a lag-compensated shot at what the shooter saw hits");
        assert_eq!(clamps, super::LagCompClamps::default());
        // The same aim without a claim (or with compensation off) meets the present: by then
        // the target is 64 units further on, and the shot misses.
        assert!(!lag_comp_shot(30, 12, None).0, "no claim: the present");
        assert!(!lag_comp_shot(0, 12, Some(12)).0, "--lag-comp-ms 0: the present");
        // Aimed at the present, a shot with no claim hits (the control for the two above).
        assert!(lag_comp_shot(30, 0, None).0, "aimed at the present");
    }

    #[test]
    fn claims_beyond_the_window_or_in_the_future_are_clamped_and_counted() {
        // A window of 6 ticks: a claim of 12 is tested 6 back, where the target was not.
        let (hit, clamps) = lag_comp_shot(6, 12, Some(12));
        assert!(!hit);
        assert_eq!(clamps, super::LagCompClamps { future: 0, too_old: 1 });
        // Claiming 5 ticks in the future is tested at the present: aimed there, it hits.
        let (hit, clamps) = lag_comp_shot(30, 0, Some(-5));
        assert!(hit);
        assert_eq!(clamps, super::LagCompClamps { future: 1, too_old: 0 });
        // Inside the window, nothing is clamped; the edge itself is allowed.
        let (hit, clamps) = lag_comp_shot(12, 12, Some(12));
        assert!(hit);
        assert_eq!(clamps, super::LagCompClamps::default());
    }

    #[test]
    fn a_claim_far_behind_the_acknowledged_snapshot_is_clamped() {
        use shared::protocol::{InputCmd, ViewTime};
        use shared::tick::Tick;
        let mut stepper = Stepper::new(duel_map(), 1);
        let shooter = stepper.spawn_player("shooter");
        stepper.step(60);
        // It acknowledged the present yet claims to have seen 24 ticks back: its interpolation
        // buffer is never that deep, so it is clamped to 16 behind the ack and counted.
        fn shoot(stepper: &mut Stepper, shooter: super::PlayerKey, back: u32, seq: u32) {
            let present = stepper.world.tick;
            let view = Some(ViewTime { tick: Tick(present.0 - back), frac: 0 });
            let cmd = InputCmd { seq, ack: present, fire: true, view, ..InputCmd::default() };
            stepper.world.push_input(shooter, cmd);
            stepper.step(20);
        }
        shoot(&mut stepper, shooter, 9, 1);
        assert_eq!(stepper.world.take_lag_comp_clamps(), super::LagCompClamps::default());
        shoot(&mut stepper, shooter, 24, 2);
        assert_eq!(stepper.world.take_lag_comp_clamps(), super::LagCompClamps { future: 0, too_old: 1 });
    }

    #[test]
    fn lag_compensated_matches_replay_identically() {
        let run = || {
            let mut stepper = Stepper::arena(11);
            for i in 0..6 {
                stepper.spawn_bot(&format!("bot{i}"));
            }
            let human = stepper.spawn_player("human");
            for tick in 0..600u32 {
                let angle = tick as f32 * 0.02;
                let view =
                    shared::protocol::ViewTime { tick: shared::Tick(tick.saturating_sub(9)), frac: (tick % 256) as u8 };
                stepper.input_seen(human, Vec2::new(angle.cos(), angle.sin()), angle * 3.0, tick % 5 == 0, Some(view));
                stepper.step(1);
            }
            stepper.world.state_hash()
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn walls_stop_projectiles() {
        let map = MapDef::from_json(
            r#"{"id":"wall","name":"wall","width":600,"height":300,
                "walls":[{"x":190,"y":0,"w":20,"h":300}],
                "spawns":[[100,150],[300,150]],"orbs":0}"#,
        )
        .unwrap();
        let mut stepper = Stepper::new(map, 1);
        let shooter = stepper.spawn_player("shooter");
        let target = stepper.spawn_player("target");
        for _ in 0..120 {
            stepper.input(shooter, Vec2::ZERO, 0.0, true);
            stepper.step(1);
        }
        assert_eq!(stepper.world.players[target].hp, rules::PLAYER_MAX_HP);
    }

    #[test]
    fn orbs_give_score_and_are_replaced() {
        let mut stepper = Stepper::arena(3);
        let orb_count = stepper.world.orbs.len();
        assert_eq!(orb_count, usize::from(stepper.world.map.orbs));
        let key = stepper.spawn_player("collector");
        let (orb_pos, orb_value) = {
            let orb = stepper.world.orbs.values().next().unwrap();
            (orb.pos, orb.value)
        };
        stepper.place(key, orb_pos + Vec2::new(rules::PLAYER_RADIUS, 0.0));
        stepper.step(1);
        assert!(stepper.world.players[key].score >= u16::from(orb_value));
        assert_eq!(stepper.world.orbs.len(), orb_count);
    }

    #[test]
    fn input_buffer_is_bounded_and_ignores_stale_inputs() {
        let mut stepper = Stepper::new(duel_map(), 1);
        let key = stepper.spawn_player("p");
        for _ in 0..super::INPUT_BUFFER + 12 {
            stepper.input(key, Vec2::X, 0.0, false);
        }
        assert_eq!(stepper.world.players[key].inputs.len(), super::INPUT_BUFFER);
        assert_eq!(stepper.world.players[key].inputs_dropped, 12);
        stepper.step(1);
        let applied = stepper.world.players[key].last_applied_seq;
        let stale = shared::protocol::InputCmd { seq: applied, ..Default::default() };
        let queued = stepper.world.players[key].inputs.len();
        stepper.world.push_input(key, stale);
        assert_eq!(stepper.world.players[key].inputs.len(), queued);
    }

    #[test]
    fn a_stall_then_a_burst_takes_exactly_the_predicted_steps() {
        use shared::protocol::InputCmd;
        use shared::rules::MoveInput;
        // What the client predicts: every input applied once, in order, from the same start.
        let map = MapDef::open("open", 2000.0, 0);
        let mut stepper = Stepper::new(map.clone(), 1);
        let key = stepper.spawn_player("p");
        let start = stepper.world.players[key].pos;
        let inputs: Vec<InputCmd> = (1..=90u32)
            .map(|seq| InputCmd { seq, move_x: if seq < 60 { 1.0 } else { -0.5 }, move_y: 0.3, ..Default::default() })
            .collect();
        let predicted = |upto: u32| {
            let (mut pos, mut vel) = (start, Vec2::ZERO);
            for cmd in inputs.iter().take(upto as usize) {
                rules::step_player(
                    &mut pos,
                    &mut vel,
                    MoveInput { dir: Vec2::new(cmd.move_x, cmd.move_y) },
                    1.0 / 60.0,
                    &map,
                );
            }
            pos
        };
        // 20 inputs on time, then a 15-tick stall, then the 15 held inputs and the rest in a burst.
        let mut next = 0;
        for _ in 0..20 {
            stepper.world.push_input(key, inputs[next]);
            next += 1;
            stepper.step(1);
        }
        stepper.step(15);
        let held = stepper.world.players[key].pos;
        assert_eq!(held, predicted(20), "a stalled player holds still: no guessed steps");
        for _ in 0..30 {
            stepper.world.push_input(key, inputs[next]);
            next += 1;
        }
        let mut largest_step: f32 = 0.0;
        let mut last = held;
        while !stepper.world.players[key].inputs.is_empty() {
            stepper.step(1);
            let player = &stepper.world.players[key];
            assert_eq!(player.pos, predicted(player.last_applied_seq), "state after input {}", player.last_applied_seq);
            largest_step = largest_step.max(player.pos.distance(last));
            last = player.pos;
        }
        let max_step = rules::PLAYER_MAX_SPEED / 60.0;
        assert!(largest_step <= 2.0 * max_step + 1e-3, "catching up moved {largest_step} in one tick");
    }

    #[test]
    fn sending_inputs_faster_never_moves_a_player_faster() {
        let mut stepper = Stepper::new(MapDef::open("open", 4000.0, 0), 1);
        let key = stepper.spawn_player("cheat");
        let mut seq = 0;
        let start = stepper.world.players[key].pos;
        // Two inputs every tick for three seconds: still one step per tick.
        for _ in 0..180 {
            for _ in 0..2 {
                seq += 1;
                let cmd = shared::protocol::InputCmd { seq, move_x: 1.0, ..Default::default() };
                stepper.world.push_input(key, cmd);
            }
            stepper.step(1);
        }
        let moved = stepper.world.players[key].pos.x - start.x;
        let one_per_tick = 180.0 * rules::PLAYER_MAX_SPEED / 60.0;
        assert!(moved <= one_per_tick + 1.0, "moved {moved} in 180 ticks; one step a tick allows {one_per_tick}");
    }

    #[test]
    fn leaving_removes_the_player_and_reports_the_reason() {
        let mut stepper = Stepper::new(duel_map(), 1);
        let key = stepper.spawn_player("p");
        let id = stepper.world.players[key].net_id;
        stepper.world.remove_player(key, DisconnectReason::ClientLeft);
        assert!(stepper.world.players.is_empty());
        assert!(stepper.world.events.contains(&GameEvent::Left { id, reason: DisconnectReason::ClientLeft }));
    }

    #[test]
    fn bots_play_the_game() {
        let mut stepper = Stepper::arena(11);
        for i in 0..16 {
            stepper.spawn_bot(&format!("bot{i}"));
        }
        stepper.step(60 * 60);
        let total_score: u32 = stepper.world.players.values().map(|p| u32::from(p.score)).sum();
        let kills: u32 = stepper.world.players.values().map(|p| u32::from(p.kills)).sum();
        assert!(total_score > 0, "bots never scored in a minute");
        assert!(kills > 0, "bots never killed anyone in a minute");
    }
}
