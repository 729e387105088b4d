//! Lag compensation: the window (`--lag-comp-ms` in ticks), where every living player was at
//! each of the last ticks, and how far back a shot meets its targets (its input's claimed view,
//! clamped to the window, clamps counted).

use std::collections::VecDeque;

use glam::Vec2;
use shared::protocol::InputCmd;
use shared::tick::Tick;
use slotmap::SlotMap;

use super::entities::{Player, PlayerKey};

/// Lag compensation window a no-flags server uses, milliseconds (`--lag-comp-ms`): the rewind is
/// about the shooter's RTT plus its interpolation delay, so this covers RTTs up to ~400 ms.
pub const DEFAULT_LAG_COMP_MS: u32 = 500;

/// Most lag compensation a server accepts, milliseconds (`--lag-comp-ms`, replay headers).
pub const MAX_LAG_COMP_MS: u32 = 2000;

/// How far a shooter's claimed view may trail the newest snapshot it acknowledged, ticks: its
/// interpolation buffer (two snapshot intervals plus jitter) with room to spare. An honest client
/// is never near it; a client claiming older views to reach further back is clamped to it.
pub const MAX_VIEW_BEHIND_ACK: u32 = 16;

/// Milliseconds of lag compensation to whole ticks at `tick_hz`.
pub fn lag_comp_ticks(ms: u32, tick_hz: u16) -> u32 {
    (u64::from(ms) * u64::from(tick_hz)).div_ceil(1000) as u32
}

/// Shots whose claimed view time was clamped (see [`World::lag_comp_clamps`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LagCompClamps {
    /// The input claimed a moment after the server's present.
    pub future: u64,
    /// The input claimed a moment older than the window.
    pub too_old: u64,
}

/// Where every living player was at each of the last few ticks: what a lag-compensated shot is
/// tested against. Frames are reused, so a steady-state tick allocates nothing.
/// One living player in a history frame: key, position, life.
pub(super) type HistoryEntry = (PlayerKey, Vec2, u32);

#[derive(Default)]
pub(super) struct History {
    /// Oldest first; each frame is sorted by key (slotmap order).
    frames: VecDeque<(Tick, Vec<HistoryEntry>)>,
}

impl History {
    pub(super) fn record(&mut self, tick: Tick, players: &SlotMap<PlayerKey, Player>, keep: usize) {
        let mut frame = if self.frames.len() >= keep {
            self.frames.pop_front().map(|(_, frame)| frame).unwrap_or_default()
        } else {
            Vec::new()
        };
        frame.clear();
        frame.extend(players.iter().filter(|(_, p)| p.alive).map(|(key, p)| (key, p.pos, p.life)));
        self.frames.push_back((tick, frame));
    }

    /// Where `key` was at `tick` in its current `life` (a player that died and respawned since
    /// is not hit where its previous life stood).
    pub(super) fn at(&self, tick: Tick, key: PlayerKey, life: u32) -> Option<Vec2> {
        let (newest, _) = self.frames.back()?;
        let back = newest.since(tick) as usize;
        let (frame_tick, frame) = self.frames.get(self.frames.len().checked_sub(back + 1)?)?;
        if *frame_tick != tick {
            return None; // Not contiguous (cannot happen: a frame is recorded every tick).
        }
        let index = frame.binary_search_by_key(&key, |(k, _, _)| *k).ok()?;
        let (_, pos, then) = frame[index];
        (then == life).then_some(pos)
    }

    /// Where `key` (in its `life`) was `rewind` ticks (fractional) before the newest frame,
    /// interpolated between the two frames around it; `None` if it was not alive then. A rewind
    /// past the oldest frame (the first ticks of a match) uses the oldest.
    pub(super) fn rewound(&self, key: PlayerKey, life: u32, rewind: f32) -> Option<Vec2> {
        let (newest, _) = self.frames.back()?;
        let rewind = rewind.min(self.frames.len().saturating_sub(1) as f32);
        let whole = rewind.floor();
        let frac = rewind - whole;
        let later_tick = Tick(newest.0.wrapping_sub(whole as u32));
        let later = self.at(later_tick, key, life)?;
        if frac <= 0.0 {
            return Some(later);
        }
        match self.at(Tick(later_tick.0.wrapping_sub(1)), key, life) {
            Some(earlier) => Some(later + (earlier - later) * frac),
            None => Some(later),
        }
    }
}

/// How far back a shot from an input that claims `view` meets its targets: the claim's distance
/// before `present` (the previous tick, which the grid holds), clamped to `[0, window]`, with
/// clamps counted. No claim (bots) or no window: the present.
pub(super) fn rewind_for(input: &InputCmd, present: Tick, window: f32, clamps: &mut LagCompClamps) -> f32 {
    let Some(view) = input.view else { return 0.0 };
    if window <= 0.0 {
        return 0.0;
    }
    // No further back than the newest snapshot it acknowledged allows (see MAX_VIEW_BEHIND_ACK).
    let window = window.min(present.since(input.ack).saturating_add(MAX_VIEW_BEHIND_ACK).min(1 << 20) as f32);
    let rewind = view.ticks_before(present);
    if rewind < 0.0 {
        clamps.future += 1;
        0.0
    } else if rewind > window {
        clamps.too_old += 1;
        window
    } else {
        rewind
    }
}
