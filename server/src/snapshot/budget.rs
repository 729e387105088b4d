//! The per-client byte budget of a snapshot (`--snapshot-budget-bytes`): when a client's view
//! changed more than fits, the most important changes go now and the rest wait.
//!
//! The priority accumulator of Glenn Fiedler's "state synchronization", applied to Quake-style
//! deltas: every entity whose state differs from the client's acknowledged baseline gains
//! priority each snapshot (more when it is near the client, moving far, new, or one of the
//! client's own shots); the highest go first while they fit, and an entity sent has its priority
//! reset. An entity left out keeps its baseline state in the view that is sent, so the delta says
//! nothing about it and the client keeps what it had; one not yet created stays absent. Removals
//! always go (they are two bits and a gap). The view returned is exactly what the client will hold,
//! so it is what the server records as the next possible baseline.
//!
//! With acks a round trip behind, a deferred entity may already have gone out newer in a
//! snapshot not yet acknowledged: the client then gets the baseline's older state after the newer
//! one. Players' poses are held by the client's interpolator (the `budget_limited` flag tells it
//! to look); projectiles, which would vanish for a snapshot, weigh 3× more while in flight.

use std::collections::HashMap;

use glam::Vec2;
use shared::bits::BitWriter;
use shared::quant;
use shared::snapshot::{COUNT_BITS, EntityState, NetId, View, entry_bits};
use shared::tick::Tick;

/// Distance (world units) within which an entity counts as near, scaling its priority up to 3×.
const NEAR: f32 = 1000.0;
/// A client's own projectiles outrank everything but its own player.
const OWN_SHOT_WEIGHT: f32 = 4.0;
/// New projectiles: they never change after creation, so a late one is a wrong one.
const NEW_SHOT_WEIGHT: f32 = 2.0;
/// The client's own player entity (its score and flags are drawn from it).
const OWN_PLAYER_WEIGHT: f32 = 8.0;
/// Weighs a projectile the client may already hold though its baseline does not: deferring it
/// would make it vanish for a snapshot. A weight, not an absolute rank, so entities never sent
/// still win in time. (Players deferred after a newer state went out are held at their newest
/// pose by the client; weighting them too was measured to leave others stale 10 snapshots
/// instead of 6 for 20 % fewer such rollbacks.)
const IN_FLIGHT_WEIGHT: f32 = 3.0;

/// Where the client is and who it is: what "near" and "own" mean for its priorities.
#[derive(Clone, Copy, Debug)]
pub struct Focus {
    pub pos: Vec2,
    pub own: NetId,
}

/// What [`Budget::fit`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fitted {
    /// Changed entities sent and left for later.
    pub sent: u32,
    pub deferred: u32,
    /// Upper bound of the delta's size, bits (the entries counted at their largest id gap).
    pub bits: usize,
    /// The mandatory part (removals) alone was over the budget.
    pub over: bool,
}

/// One client's priority accumulators.
#[derive(Debug, Default)]
pub struct Budget {
    priority: HashMap<NetId, f32>,
    /// Scratch, reused.
    candidates: Vec<Candidate>,
    scratch: BitWriter,
}

#[derive(Debug, Clone, Copy)]
struct Candidate {
    id: NetId,
    priority: f32,
    bits: usize,
    /// Index in `view` of the new state.
    index: usize,
    send: bool,
}

impl Budget {
    pub fn new() -> Budget {
        Budget::default()
    }

    /// Everything changed was sent (the whole delta fitted): every accumulator resets.
    pub fn sent_everything(&mut self) {
        self.priority.clear();
    }

    /// Cuts `view` (what the client should see at `tick`) down to a view whose delta against
    /// `baseline` takes at most `budget_bits`, into `out`. `newest_sent`: the newest view already
    /// handed to the client (acknowledged or not); entities it holds newer than the baseline go
    /// first.
    #[allow(clippy::too_many_arguments)]
    pub fn fit(
        &mut self,
        tick: Tick,
        baseline: Option<&View>,
        newest_sent: Option<&View>,
        view: &View,
        focus: Focus,
        budget_bits: usize,
        out: &mut View,
    ) -> Fitted {
        let empty = View::default();
        let baseline = baseline.unwrap_or(&empty);
        let newest_sent = newest_sent.unwrap_or(baseline);
        let mut fitted = Fitted { bits: COUNT_BITS as usize, ..Fitted::default() };
        self.candidates.clear();
        // Removals first (mandatory), and every changed entity as a candidate.
        let (old, new) = (&baseline.entities, &view.entities);
        let (mut i, mut j) = (0, 0);
        while i < old.len() || j < new.len() {
            match (old.get(i), new.get(j)) {
                (Some((old_id, old_state)), Some((new_id, new_state))) if old_id == new_id => {
                    if old_state != new_state {
                        let bits = entry_bits(tick, *new_id, Some(old_state), Some(new_state), &mut self.scratch);
                        let gain = gain(tick, Some(old_state), new_state, focus, *new_id);
                        self.candidates.push(Candidate { id: *new_id, priority: gain, bits, index: j, send: false });
                    }
                    i += 1;
                    j += 1;
                }
                (Some((old_id, old_state)), new_entry) if new_entry.is_none_or(|(new_id, _)| old_id < new_id) => {
                    fitted.bits += entry_bits(tick, *old_id, Some(old_state), None, &mut self.scratch);
                    self.priority.remove(old_id);
                    i += 1;
                }
                (_, Some((new_id, new_state))) => {
                    let bits = entry_bits(tick, *new_id, None, Some(new_state), &mut self.scratch);
                    let gain = gain(tick, None, new_state, focus, *new_id);
                    self.candidates.push(Candidate { id: *new_id, priority: gain, bits, index: j, send: false });
                    j += 1;
                }
                (Some(_), None) | (None, None) => unreachable!("handled above / loop condition"),
            }
        }
        fitted.over = fitted.bits > budget_bits;
        // Accumulate, then send the highest while they fit (smaller ones may still fit after a
        // larger one did not).
        for candidate in &mut self.candidates {
            if let Some(EntityState::Projectile(_)) = newest_sent.get(candidate.id)
                && baseline.get(candidate.id).is_none()
            {
                candidate.priority *= IN_FLIGHT_WEIGHT;
            }
            let accumulated = self.priority.entry(candidate.id).or_insert(0.0);
            *accumulated += candidate.priority;
            candidate.priority = *accumulated;
        }
        self.candidates.sort_unstable_by(|a, b| b.priority.total_cmp(&a.priority).then(a.id.cmp(&b.id)));
        for candidate in &mut self.candidates {
            if fitted.bits + candidate.bits <= budget_bits {
                fitted.bits += candidate.bits;
                candidate.send = true;
                fitted.sent += 1;
                self.priority.remove(&candidate.id);
            } else {
                fitted.deferred += 1;
            }
        }
        // The view the client will hold: sent entities as they are now, deferred ones as the
        // baseline had them (absent if new), unchanged ones as they are.
        self.candidates.sort_unstable_by_key(|c| c.index);
        out.entities.clear();
        let mut next = self.candidates.iter().peekable();
        for (index, (id, state)) in view.entities.iter().enumerate() {
            let candidate = next.next_if(|c| c.index == index);
            match candidate {
                None => out.entities.push((*id, *state)),
                Some(c) if c.send => out.entities.push((*id, *state)),
                Some(_) => {
                    if let Some(old_state) = baseline.get(*id) {
                        out.entities.push((*id, *old_state));
                    }
                }
            }
        }
        // Forget accumulators of entities that left the view (no unbounded growth).
        if self.priority.len() > view.entities.len() {
            self.priority.retain(|id, _| view.get(*id).is_some());
        }
        fitted
    }
}

/// Priority one snapshot adds to a changed entity.
fn gain(tick: Tick, old: Option<&EntityState>, new: &EntityState, focus: Focus, id: NetId) -> f32 {
    let pos = position(tick, new);
    let nearness = 1.0 + 2.0 * (1.0 - pos.distance(focus.pos) / NEAR).clamp(0.0, 1.0);
    let weight = match (old, new) {
        _ if id == focus.own => OWN_PLAYER_WEIGHT,
        (_, EntityState::Projectile(p)) if p.owner == focus.own => OWN_SHOT_WEIGHT,
        (None, EntityState::Projectile(_)) => NEW_SHOT_WEIGHT,
        // Moved far (fast, or long unsent) or changed health/score: up to 3× more.
        (Some(old), _) => 1.0 + (position(tick, old).distance(pos) / 32.0).min(2.0),
        (None, _) => 1.5,
    };
    nearness * weight
}

/// Where an entity is at `tick` (projectiles are extrapolated from their launch).
fn position(tick: Tick, state: &EntityState) -> Vec2 {
    match state {
        EntityState::Player(p) => quant::q_to_vec(p.x, p.y),
        EntityState::Orb(o) => quant::q_to_vec(o.x, o.y),
        EntityState::Projectile(p) => {
            let origin = quant::q_to_vec(p.origin_x, p.origin_y);
            let velocity = Vec2::new(quant::q_to_vel(p.vx), quant::q_to_vel(p.vy));
            origin + velocity * (tick.since(p.spawn_tick) as f32 / 60.0)
        }
    }
}
