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
    /// Play is frozen (a round is over): ticks go on, nobody moves, fires or picks anything up;
    /// inputs are taken (and acknowledged) without effect. See [`World::freeze`].
    pub frozen: bool,
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
            frozen: false,
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
            orbs: 0,
            shots: 0,
            shot_hits: 0,
            joined_at: self.tick,
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

    /// Freezes play where it stands (a round's end): shots in flight vanish, everyone stops.
    pub fn freeze(&mut self) {
        self.frozen = true;
        self.projectiles.clear();
        for player in self.players.values_mut() {
            player.vel = Vec2::ZERO;
            player.inputs.clear();
        }
    }

    /// Advances the world by one tick.
    pub fn step(&mut self) {
        self.tick = self.tick.next();
        if self.frozen {
            for player in self.players.values_mut() {
                if let Some(last) = player.inputs.back() {
                    player.last_applied_seq = last.seq;
                }
                player.inputs.clear();
            }
            return;
        }
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
                    player.shots = player.shots.saturating_add(1);
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
        if let Some(shooter) = self.players.get_mut(shooter) {
            shooter.shot_hits = shooter.shot_hits.saturating_add(1);
        }
        let Some(victim) = self.players.get_mut(victim_key) else {
            return;
        };
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
                    player.orbs = player.orbs.saturating_add(1);
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
#[path = "world_tests.rs"]
mod tests;
