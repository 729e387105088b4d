//! What the world holds: players, projectiles and orbs (each in a slotmap under its own key),
//! the orb journal's entries, and a bot's brain state (its behaviour is `ai.rs`).

use std::collections::VecDeque;

use glam::Vec2;
use shared::protocol::InputCmd;
use shared::snapshot::NetId;
use shared::tick::Tick;
use slotmap::new_key_type;

new_key_type! {
    /// Key of a player in [`World::players`].
    pub struct PlayerKey;
    /// Key of a projectile in [`World::projectiles`].
    pub struct ProjectileKey;
    /// Key of an orb in [`World::orbs`].
    pub struct OrbKey;
}

#[derive(Debug, Clone)]
pub struct Player {
    pub net_id: NetId,
    pub name: String,
    /// Server-side AI, for bot players.
    pub bot: Option<BotBrain>,
    pub pos: Vec2,
    pub vel: Vec2,
    pub aim: f32,
    pub hp: u8,
    pub alive: bool,
    /// When dead: the tick the player comes back.
    pub respawn_at: Tick,
    pub score: u16,
    pub kills: u16,
    pub deaths: u16,
    /// 1-based rank by score, refreshed by [`World::refresh_leaderboard`].
    pub rank: u16,
    /// Inputs received but not applied yet, oldest first.
    pub inputs: VecDeque<InputCmd>,
    /// The input applied last (bots: the one they chose this tick).
    pub last_input: InputCmd,
    /// Sequence number of the last input applied, acked to the client in snapshots.
    pub last_applied_seq: u32,
    /// The fewest inputs waiting at the start of a tick since the room last reported it to the
    /// client (0: the player held still at least once), which paces its inputs by it. The room
    /// resets it to `u8::MAX` when it builds a snapshot.
    pub queue_low: u8,
    /// Ticks this player held still for lack of input and has not caught up yet.
    pub catch_up_credit: u16,
    /// Ticks until the player may fire again.
    pub fire_cooldown: u32,
    /// Bumped at every respawn: lag compensation never hits a new life where an old one stood.
    pub life: u32,
    /// Last tick the player fired (for the muzzle-flash flag).
    pub fired_at: Option<Tick>,
    /// Last tick the player took damage (for the hit flag).
    pub hit_at: Option<Tick>,
    /// Inputs dropped because the buffer was full (a sign of a bursty or hostile client).
    pub inputs_dropped: u64,
    /// The connection dropped and the seat is held for a resume: no inputs are taken, the
    /// player stands still and does not fire (see [`World::set_away`]).
    pub away: bool,
    /// Orbs picked up, shots fired, and shots that hit another player (a round's results).
    pub orbs: u16,
    pub shots: u32,
    pub shot_hits: u32,
    /// The tick the player joined this world (its round's time played counts from here).
    pub joined_at: Tick,
}

#[derive(Debug, Clone)]
pub struct Projectile {
    pub net_id: NetId,
    pub owner: PlayerKey,
    pub owner_net_id: NetId,
    pub origin: Vec2,
    pub pos: Vec2,
    pub vel: Vec2,
    pub spawn_tick: Tick,
    pub expires_at: Tick,
    /// Lag compensation: this shot meets targets as they were this many ticks before the
    /// present (what its shooter saw when firing), clamped to the window; 0 for the present.
    pub rewind: f32,
}

#[derive(Debug, Clone)]
pub struct Orb {
    pub net_id: NetId,
    pub pos: Vec2,
    pub value: u8,
}

/// An orb appearing or going, as [`World::take_orb_changes`] reports them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OrbChange {
    Spawned { net_id: NetId, pos: Vec2, value: u8 },
    Removed { net_id: NetId, pos: Vec2 },
}

#[derive(Clone, Debug)]
pub struct BotBrain {
    /// Direction to wander in when nothing is interesting.
    pub(super) wander: Vec2,
    /// When to pick a new wander direction and strafe side.
    pub(super) next_decision: Tick,
    /// +1 or -1: which way to circle an enemy.
    pub(super) strafe_sign: f32,
    /// Position last tick, to notice being stuck on a wall.
    pub(super) last_pos: Vec2,
    pub(super) stuck_ticks: u32,
    /// 0.3..1.0: accuracy and trigger discipline, so bots differ.
    pub(super) skill: f32,
    /// The enemy and the orb found nearest at the last look: they bound the next search.
    pub(super) enemy: Option<PlayerKey>,
    pub(super) orb: Option<OrbKey>,
}
