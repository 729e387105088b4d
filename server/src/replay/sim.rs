//! Re-simulation of a replay through `World`: `verify` checks every stored hash, `info`
//! summarizes a match, and [`Resim`] steps a replay for spectating and benchmarks.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use shared::protocol::GameEvent;
use shared::snapshot::NetId;
use shared::tick::Tick;

use super::format::{Op, ReplayFile, ReplayHeader, TailStatus, TickRecord};
use crate::sim::world::{PlayerKey, Rules, World, WorldConfig};

/// Where and why a re-simulation disagreed with the recording.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    pub tick: u32,
    pub why: String,
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "diverged at tick {}: {}", self.tick, self.why)
    }
}

/// One player's line in a replay summary.
#[derive(Clone, Debug, Serialize)]
pub struct PlayerLine {
    pub id: u32,
    pub name: String,
    pub bot: bool,
    pub score: u16,
    pub kills: u16,
    pub deaths: u16,
    /// Still in the room at the end of the recording.
    pub present: bool,
}

/// A world being driven by a replay's records.
/// The longest hash interval a replay may declare (a minute at 60 Hz).
pub const MAX_HASH_EVERY: u32 = 3600;

pub struct Resim {
    pub world: World,
    keys: HashMap<NetId, PlayerKey>,
    /// Everyone who ever joined, with their last known stats.
    pub players: Vec<PlayerLine>,
    pub hashes_checked: u32,
    /// Keep the world's events (kills, joins, chat) for the caller to drain; otherwise they are
    /// dropped after every record.
    pub keep_events: bool,
    /// The longest jump between records a sound file has (its hash interval).
    max_gap: u32,
}

impl Resim {
    pub fn new(header: &ReplayHeader) -> Result<Resim, String> {
        let rules = match header.rules {
            0 => Rules::Arena,
            1 => Rules::S1,
            other => return Err(format!("unknown rules {other}")),
        };
        header.map.validate().map_err(|e| e.to_string())?;
        // Records come at least every `hash_every` ticks, which bounds the work between two.
        if !(1..=MAX_HASH_EVERY).contains(&header.hash_every) {
            return Err(format!("hash interval of {} ticks is outside 1..={MAX_HASH_EVERY}", header.hash_every));
        }
        let most = crate::sim::world::lag_comp_ticks(crate::sim::world::MAX_LAG_COMP_MS, header.tick_hz);
        if header.lag_comp_ticks > most {
            return Err(format!(
                "lag compensation window of {} ticks is over the {most} allowed",
                header.lag_comp_ticks
            ));
        }
        let config =
            WorldConfig { tick_hz: header.tick_hz, seed: header.seed, rules, lag_comp_ticks: header.lag_comp_ticks };
        Ok(Resim {
            world: World::new(Arc::new(header.map.clone()), config),
            keys: HashMap::new(),
            players: Vec::new(),
            hashes_checked: 0,
            keep_events: false,
            max_gap: header.hash_every.max(1),
        })
    }

    /// Steps up to and including `record.tick`, applying its operations just before that step.
    pub fn apply(&mut self, record: &TickRecord) -> Result<(), Divergence> {
        let target = Tick(record.tick);
        if !target.is_newer_than(self.world.tick) {
            return Err(Divergence {
                tick: record.tick,
                why: format!("record out of order after tick {}", self.world.tick),
            });
        }
        // The recorder writes a record at least every `hash_every` ticks: a longer jump is a
        // damaged (or hostile) file, not hours of ticks to simulate.
        let gap = target.since(self.world.tick);
        if gap > self.max_gap {
            return Err(Divergence {
                tick: record.tick,
                why: format!("record jumps {gap} ticks ahead of tick {} (at most {})", self.world.tick, self.max_gap),
            });
        }
        while self.world.tick.next() != target {
            self.world.step();
        }
        for op in &record.ops {
            self.apply_op(op, record.tick)?;
        }
        self.world.step();
        if let Some(expected) = record.hash {
            let got = self.world.state_hash();
            if got != expected {
                return Err(Divergence {
                    tick: record.tick,
                    why: format!("state hash {got:016x}, recording says {expected:016x}"),
                });
            }
            self.hashes_checked += 1;
        }
        if !self.keep_events {
            self.world.events.clear();
        }
        Ok(())
    }

    fn key(&self, id: NetId, tick: u32) -> Result<PlayerKey, Divergence> {
        self.keys.get(&id).copied().ok_or(Divergence { tick, why: format!("player {id} is not in the game") })
    }

    fn apply_op(&mut self, op: &Op, tick: u32) -> Result<(), Divergence> {
        match op {
            Op::Join { id, name, bot } => {
                let key = self.world.add_player(name.clone(), *bot);
                let got = self.world.players[key].net_id;
                if got != *id {
                    return Err(Divergence { tick, why: format!("join of {name} got id {got}, recording says {id}") });
                }
                self.keys.insert(*id, key);
                self.players.push(PlayerLine {
                    id: id.0,
                    name: name.clone(),
                    bot: *bot,
                    score: 0,
                    kills: 0,
                    deaths: 0,
                    present: true,
                });
            }
            Op::Resume { id, score, kills, deaths } => {
                let key = self.key(*id, tick)?;
                self.world.restore_stats(key, *score, *kills, *deaths);
            }
            Op::Input { id, cmd } => {
                let key = self.key(*id, tick)?;
                self.world.push_input(key, *cmd);
            }
            Op::Away { id } | Op::Back { id } => {
                let key = self.key(*id, tick)?;
                self.world.set_away(key, matches!(op, Op::Away { .. }));
            }
            Op::Leave { id, reason } => {
                let key = self.key(*id, tick)?;
                if let Some(player) = self.world.remove_player(key, reason.clone())
                    && let Some(line) = self.players.iter_mut().rev().find(|l| l.id == id.0)
                {
                    (line.score, line.kills, line.deaths, line.present) =
                        (player.score, player.kills, player.deaths, false);
                }
                self.keys.remove(id);
            }
            // Chat does not touch the simulation; the event is for spectators.
            Op::Chat { id, text } => self.world.events.push(GameEvent::Chat { from: *id, text: text.clone() }),
        }
        Ok(())
    }

    /// Refreshes the stats of players still in the game.
    pub fn update_lines(&mut self) {
        for line in &mut self.players {
            if let Some(player) = self.keys.get(&NetId(line.id)).and_then(|key| self.world.players.get(*key)) {
                (line.score, line.kills, line.deaths) = (player.score, player.kills, player.deaths);
            }
        }
    }
}

/// What `verify` found.
#[derive(Clone, Debug)]
pub struct VerifyReport {
    pub ticks: u32,
    pub records: usize,
    pub hashes_checked: u32,
    pub tail: TailStatus,
}

/// Re-simulates the whole replay and compares every stored hash.
pub fn verify(file: &ReplayFile) -> Result<VerifyReport, Divergence> {
    let mut resim = Resim::new(&file.header).map_err(|why| Divergence { tick: 0, why })?;
    for record in &file.records {
        resim.apply(record)?;
    }
    Ok(VerifyReport {
        ticks: resim.world.tick.0,
        records: file.records.len(),
        hashes_checked: resim.hashes_checked,
        tail: file.tail.clone(),
    })
}

/// A replay summary (`arena-server replay info`).
#[derive(Clone, Debug, Serialize)]
pub struct ReplayInfo {
    pub map: String,
    pub rules: &'static str,
    pub tick_hz: u16,
    pub ticks: u32,
    pub seconds: f64,
    pub records: usize,
    pub bytes: u64,
    pub chat_lines: usize,
    /// Recorded inputs, and the whole file's bytes divided by them.
    pub inputs: usize,
    pub bytes_per_input: f64,
    /// The same records' bytes per input with each input stored whole (format 4).
    pub unpacked_bytes_per_input: f64,
    pub tail: String,
    /// Everyone who played, best score first.
    pub players: Vec<PlayerLine>,
    /// Set when re-simulation stopped early.
    pub divergence: Option<String>,
}

pub fn info(file: &ReplayFile) -> ReplayInfo {
    let mut divergence = None;
    let mut resim = Resim::new(&file.header).ok();
    if let Some(resim) = resim.as_mut() {
        for record in &file.records {
            if let Err(error) = resim.apply(record) {
                divergence = Some(error.to_string());
                break;
            }
        }
        resim.update_lines();
    }
    let ticks = file.records.last().map_or(0, |r| r.tick);
    let inputs = file.records.iter().flat_map(|r| &r.ops).filter(|op| matches!(op, Op::Input { .. })).count();
    let mut players = resim.map(|r| r.players).unwrap_or_default();
    players.sort_by(|a, b| b.score.cmp(&a.score).then(a.id.cmp(&b.id)));
    ReplayInfo {
        map: file.header.map.id.clone(),
        rules: if file.header.rules == 1 { "s1" } else { "arena" },
        tick_hz: file.header.tick_hz,
        ticks,
        seconds: f64::from(ticks) / f64::from(file.header.tick_hz.max(1)),
        records: file.records.len(),
        bytes: file.bytes,
        chat_lines: file.records.iter().flat_map(|r| &r.ops).filter(|op| matches!(op, Op::Chat { .. })).count(),
        inputs,
        bytes_per_input: file.bytes as f64 / inputs.max(1) as f64,
        unpacked_bytes_per_input: super::format::unpacked_size(&file.records) as f64 / inputs.max(1) as f64,
        tail: file.tail.to_string(),
        players,
        divergence,
    }
}
