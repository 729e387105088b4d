//! Snapshot wire format and the delta codec (the Quake 3 model).
//!
//! A [`View`] is what one client sees at one tick: quantized entity states sorted by [`NetId`].
//! The server encodes each client's view as a delta against a view that client acknowledged
//! ([`encode_delta`]); the client applies it to its copy of that baseline ([`apply_delta`],
//! usually through [`SnapshotReceiver`]). Without a baseline the same format carries a full
//! snapshot (every entity is "created").
//!
//! Bit layout (LSB-first, see [`crate::bits`]): `count` in [`COUNT_BITS`] bits, then `count`
//! entries in increasing id order, each:
//!
//! ```text
//! gamma(id - previous id)            // previous id starts at 0; ids are ≥ 1
//! op: 0 = update, 10 = create, 11 = remove
//! update of a player:  mask(5) then the masked fields (see PlayerNet)
//! update of others:    full state of the same kind
//! create:              kind(2) then full state
//! ```
//!
//! An entity whose state did not change is not listed: it costs zero bytes. A moving player
//! (position and aim changed, id next to the previous entry's) costs 33 bits.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::bits::{BitReader, BitWriter, BitsError};
use crate::tick::Tick;

/// Network identity of an entity. Allocated by the server from a counter that is never reused
/// within a match, so a new entity can never be mistaken for an old one with the same id.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NetId(pub u32);

impl std::fmt::Display for NetId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Player flag: alive (dead players are shown as wrecks and cannot be hit).
pub const FLAG_ALIVE: u8 = 1;
/// Player flag: fired during the last snapshot interval (muzzle flash).
pub const FLAG_FIRING: u8 = 2;
/// Player flag: took damage during the last snapshot interval (hit flash).
pub const FLAG_HIT: u8 = 4;
/// Player flag: the player's connection dropped and its seat is held for a resume: it stands
/// still and does not fire until it comes back or the grace period ends.
pub const FLAG_AWAY: u8 = 8;
const FLAG_BITS: u32 = 4;

/// Quantized player state. Positions use [`crate::quant::pos_to_q`], aim
/// [`crate::quant::angle_to_q`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlayerNet {
    pub x: u16,
    pub y: u16,
    pub aim: u8,
    pub hp: u8,
    pub score: u16,
    pub flags: u8,
}

/// Quantized projectile: where and when it was fired and its velocity. Projectiles fly straight,
/// so clients extrapolate them and they never need an update.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProjectileNet {
    pub origin_x: u16,
    pub origin_y: u16,
    pub vx: i16,
    pub vy: i16,
    pub spawn_tick: Tick,
    pub owner: NetId,
}

/// Quantized orb: position and how much score it gives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OrbNet {
    pub x: u16,
    pub y: u16,
    pub value: u8,
}

/// State of one networked entity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntityState {
    Player(PlayerNet),
    Projectile(ProjectileNet),
    Orb(OrbNet),
}

impl EntityState {
    fn kind_code(&self) -> u32 {
        match self {
            EntityState::Player(_) => 0,
            EntityState::Projectile(_) => 1,
            EntityState::Orb(_) => 2,
        }
    }
}

/// The entities one client sees at one tick, sorted by id with no duplicates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct View {
    pub entities: Vec<(NetId, EntityState)>,
}

impl View {
    pub fn get(&self, id: NetId) -> Option<&EntityState> {
        self.entities.binary_search_by_key(&id, |(entity_id, _)| *entity_id).ok().map(|index| &self.entities[index].1)
    }

    pub fn len(&self) -> usize {
        self.entities.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entities.is_empty()
    }

    /// True when ids are strictly increasing (the invariant every view must hold).
    pub fn is_sorted(&self) -> bool {
        self.entities.windows(2).all(|pair| pair[0].0 < pair[1].0)
    }
}

/// Width of the entry count at the start of a delta.
pub const COUNT_BITS: u32 = 18;
/// Largest number of entries a delta may list.
pub const MAX_DELTA_ENTRIES: u32 = (1 << COUNT_BITS) - 1;

/// How many received snapshots a client keeps as possible baselines. The server never encodes
/// against a baseline more than [`SERVER_BASELINE_WINDOW`] snapshots old, which is smaller.
pub const CLIENT_BASELINE_HISTORY: usize = 64;
/// How many sent snapshots the server remembers per client as possible baselines.
pub const SERVER_BASELINE_WINDOW: usize = 32;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SnapshotError {
    #[error("truncated snapshot: {0}")]
    Bits(#[from] BitsError),
    #[error("entity id overflow")]
    IdOverflow,
    #[error("entity {0} updated or removed but not in the baseline")]
    MissingEntity(NetId),
    #[error("entity {0} created but already in the baseline")]
    DuplicateEntity(NetId),
    #[error("unknown entity kind {0}")]
    UnknownKind(u32),
    #[error("delta against unknown baseline {0}")]
    UnknownBaseline(Tick),
    #[error("snapshot {got} is not newer than {latest}")]
    OutOfOrder { got: Tick, latest: Tick },
    #[error("{0} bytes left after the last entry")]
    TrailingData(usize),
}

enum Op {
    Update,
    Create,
    Remove,
}

/// Encodes `current` as a delta against `baseline` (or as a full snapshot when `None`) into
/// `out`, which is cleared first. `tick` is the tick of `current`.
///
/// Allocates nothing: one linear merge pass over the sorted views; the entry count is patched
/// in at the end.
pub fn encode_delta(tick: Tick, baseline: Option<&View>, current: &View, out: &mut BitWriter) {
    let empty = View::default();
    let mut delta = DeltaWriter::start(tick, out);
    merge(baseline.unwrap_or(&empty), current, |id, op, states| match op {
        Op::Update => {
            delta.update(id, states.0.expect("update has a baseline state"), states.1.expect("update has a new state"))
        }
        Op::Create => delta.create(id, states.1.expect("create has a new state")),
        Op::Remove => delta.remove(id),
    });
    delta.finish();
}

/// Writes a delta entry by entry, in strictly increasing id order: the same bits
/// [`encode_delta`] writes for two views that differ by those entries. For a server that finds
/// the differences without walking both views. [`DeltaWriter::finish`] patches the count in.
pub struct DeltaWriter<'a> {
    tick: Tick,
    out: &'a mut BitWriter,
    count: u32,
    previous_id: u32,
}

impl<'a> DeltaWriter<'a> {
    /// Starts a delta for a view at `tick` in `out` (cleared first).
    pub fn start(tick: Tick, out: &'a mut BitWriter) -> Self {
        out.clear();
        out.write(0, COUNT_BITS);
        DeltaWriter { tick, out, count: 0, previous_id: 0 }
    }

    fn entry(&mut self, id: NetId) {
        // A server bug, never a client's doing: debug builds stop, release builds write a
        // delta that client rejects rather than take the room down.
        debug_assert!(
            id.0 > self.previous_id,
            "delta entries must be in increasing id order ({id} after #{})",
            self.previous_id
        );
        self.count += 1;
        self.out.write_gamma(id.0.wrapping_sub(self.previous_id).max(1));
        self.previous_id = id.0;
    }

    /// `id` changed from `old` to `new` (an update of equal states is written anyway: leave
    /// those out).
    pub fn update(&mut self, id: NetId, old: &EntityState, new: &EntityState) {
        self.entry(id);
        self.out.write(0, 1);
        write_update(self.tick, old, new, self.out);
    }

    /// `id` changed as `update` says (computed once for every client that holds the same old
    /// state): writes what [`DeltaWriter::update`] would.
    pub fn update_encoded(&mut self, id: NetId, update: &EncodedUpdate) {
        self.entry(id);
        self.out.write(0, 1);
        let mut at = 0;
        while at < u32::from(update.len) {
            let bits = (u32::from(update.len) - at).min(32);
            self.out.write((update.bits >> at) as u32, bits);
            at += bits;
        }
    }

    /// `id` is new to the client.
    pub fn create(&mut self, id: NetId, new: &EntityState) {
        self.entry(id);
        self.out.write(0b01, 2);
        self.out.write(new.kind_code(), 2);
        write_full(self.tick, new, self.out);
    }

    /// `id` left the client's view.
    pub fn remove(&mut self, id: NetId) {
        self.entry(id);
        self.out.write(0b11, 2);
    }

    pub fn finish(self) {
        assert!(self.count <= MAX_DELTA_ENTRIES, "a view holds at most {MAX_DELTA_ENTRIES} entities");
        self.out.patch(0, self.count, COUNT_BITS);
    }
}

/// The update part of an entry (after its id and op), encoded once: a server whose clients
/// mostly hold the same previous state of an entity writes it into every delta with
/// [`DeltaWriter::update_encoded`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EncodedUpdate {
    bits: u128,
    len: u8,
}

impl EncodedUpdate {
    /// `old` → `new` at `tick` (`scratch` is reused).
    pub fn new(tick: Tick, old: &EntityState, new: &EntityState, scratch: &mut BitWriter) -> EncodedUpdate {
        scratch.clear();
        write_update(tick, old, new, scratch);
        let len = scratch.bit_len();
        assert!(len <= 128, "an update takes at most 75 bits");
        let mut bits = 0u128;
        for (index, byte) in scratch.finish().iter().enumerate() {
            bits |= u128::from(*byte) << (8 * index);
        }
        EncodedUpdate { bits, len: len as u8 }
    }
}

/// Bits the entry for `id` takes in a delta (what [`encode_delta`] writes for it: id gap, op and
/// state), with the id gap counted at its largest (the gap from 0), so a sum over entries bounds
/// the encoded size from above whichever entries are left out. `old`/`new`: the entity in the
/// baseline and in the view (`None`: absent). Equal states cost nothing. `scratch` is reused.
pub fn entry_bits(
    tick: Tick,
    id: NetId,
    old: Option<&EntityState>,
    new: Option<&EntityState>,
    scratch: &mut BitWriter,
) -> usize {
    let id_bits = 2 * (32 - id.0.max(1).leading_zeros() as usize) - 1;
    match (old, new) {
        (Some(old), Some(new)) if old == new => 0,
        (Some(old), Some(new)) if old.kind_code() == new.kind_code() => {
            scratch.clear();
            write_update(tick, old, new, scratch);
            id_bits + 1 + scratch.bit_len()
        }
        (_, Some(new)) => {
            scratch.clear();
            write_full(tick, new, scratch);
            id_bits + 2 + 2 + scratch.bit_len()
        }
        (Some(_), None) => id_bits + 2,
        (None, None) => 0,
    }
}

/// Walks both sorted views and calls `emit` for every difference, in id order.
fn merge<'a>(
    baseline: &'a View,
    current: &'a View,
    mut emit: impl FnMut(NetId, Op, (Option<&'a EntityState>, Option<&'a EntityState>)),
) {
    let (old, new) = (&baseline.entities, &current.entities);
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        match (old.get(i), new.get(j)) {
            (Some((old_id, old_state)), Some((new_id, new_state))) if old_id == new_id => {
                if old_state != new_state {
                    emit(*new_id, Op::Update, (Some(old_state), Some(new_state)));
                }
                i += 1;
                j += 1;
            }
            (Some((old_id, old_state)), Some((new_id, _))) if old_id < new_id => {
                emit(*old_id, Op::Remove, (Some(old_state), None));
                i += 1;
            }
            (Some((old_id, old_state)), None) => {
                emit(*old_id, Op::Remove, (Some(old_state), None));
                i += 1;
            }
            (_, Some((new_id, new_state))) => {
                emit(*new_id, Op::Create, (None, Some(new_state)));
                j += 1;
            }
            (None, None) => unreachable!("loop condition"),
        }
    }
}

const MASK_POS: u32 = 1;
const MASK_AIM: u32 = 2;
const MASK_HP: u32 = 4;
const MASK_SCORE: u32 = 8;
const MASK_FLAGS: u32 = 16;

fn write_update(tick: Tick, old: &EntityState, new: &EntityState, out: &mut BitWriter) {
    match (old, new) {
        (EntityState::Player(old), EntityState::Player(new)) => {
            let mut mask = 0;
            if (old.x, old.y) != (new.x, new.y) {
                mask |= MASK_POS;
            }
            if old.aim != new.aim {
                mask |= MASK_AIM;
            }
            if old.hp != new.hp {
                mask |= MASK_HP;
            }
            if old.score != new.score {
                mask |= MASK_SCORE;
            }
            if old.flags != new.flags {
                mask |= MASK_FLAGS;
            }
            out.write(mask, 5);
            if mask & MASK_POS != 0 {
                write_pos_delta(old.x, old.y, new.x, new.y, out);
            }
            if mask & MASK_AIM != 0 {
                out.write(u32::from(new.aim), 8);
            }
            if mask & MASK_HP != 0 {
                out.write(u32::from(new.hp), 8);
            }
            if mask & MASK_SCORE != 0 {
                out.write(u32::from(new.score), 16);
            }
            if mask & MASK_FLAGS != 0 {
                out.write(u32::from(new.flags), FLAG_BITS);
            }
        }
        // A kind never changes under one id; other kinds are replaced whole.
        _ => {
            debug_assert_eq!(old.kind_code(), new.kind_code(), "entity kind changed under one id");
            write_full(tick, new, out);
        }
    }
}

/// Position change in the smallest of four size classes (per-axis signed deltas of 5, 8 or 12
/// bits, or absolute 16-bit coordinates).
fn write_pos_delta(old_x: u16, old_y: u16, new_x: u16, new_y: u16, out: &mut BitWriter) {
    let dx = i32::from(new_x) - i32::from(old_x);
    let dy = i32::from(new_y) - i32::from(old_y);
    let largest = dx.abs().max(dy.abs());
    for (class, bits) in [(0u32, 5u32), (1, 8), (2, 12)] {
        if largest < (1 << (bits - 1)) {
            out.write(class, 2);
            out.write_signed(dx, bits);
            out.write_signed(dy, bits);
            return;
        }
    }
    out.write(3, 2);
    out.write(u32::from(new_x), 16);
    out.write(u32::from(new_y), 16);
}

fn read_pos_delta(old_x: u16, old_y: u16, input: &mut BitReader) -> Result<(u16, u16), SnapshotError> {
    let class = input.read(2)?;
    if class == 3 {
        return Ok((input.read(16)? as u16, input.read(16)? as u16));
    }
    let bits = [5, 8, 12][class as usize];
    let dx = input.read_signed(bits)?;
    let dy = input.read_signed(bits)?;
    // Wrapping keeps hostile deltas from panicking; a correct server never wraps.
    Ok(((i32::from(old_x) + dx) as u16, (i32::from(old_y) + dy) as u16))
}

/// Writes a value that is usually small but may use all 32 bits: 5-bit length, then the bits.
fn write_varbits(value: u32, out: &mut BitWriter) {
    let width = 32 - value.leading_zeros();
    out.write(width.saturating_sub(1), 5);
    if width > 1 {
        out.write(value, width);
    } else {
        out.write(value, 1);
    }
}

fn read_varbits(input: &mut BitReader) -> Result<u32, BitsError> {
    let width = input.read(5)? + 1;
    input.read(width)
}

fn write_full(tick: Tick, state: &EntityState, out: &mut BitWriter) {
    match state {
        EntityState::Player(p) => {
            out.write(u32::from(p.x), 16);
            out.write(u32::from(p.y), 16);
            out.write(u32::from(p.aim), 8);
            out.write(u32::from(p.hp), 8);
            out.write(u32::from(p.score), 16);
            out.write(u32::from(p.flags), FLAG_BITS);
        }
        EntityState::Projectile(p) => {
            out.write(u32::from(p.origin_x), 16);
            out.write(u32::from(p.origin_y), 16);
            out.write(p.vx as u16 as u32, 16);
            out.write(p.vy as u16 as u32, 16);
            // Age in ticks, not the absolute tick: small numbers, few bits.
            write_varbits(tick.since(p.spawn_tick), out);
            write_varbits(p.owner.0, out);
        }
        EntityState::Orb(o) => {
            out.write(u32::from(o.x), 16);
            out.write(u32::from(o.y), 16);
            out.write(u32::from(o.value), 8);
        }
    }
}

fn read_full(tick: Tick, kind: u32, input: &mut BitReader) -> Result<EntityState, SnapshotError> {
    Ok(match kind {
        0 => EntityState::Player(PlayerNet {
            x: input.read(16)? as u16,
            y: input.read(16)? as u16,
            aim: input.read(8)? as u8,
            hp: input.read(8)? as u8,
            score: input.read(16)? as u16,
            flags: input.read(FLAG_BITS)? as u8,
        }),
        1 => EntityState::Projectile(ProjectileNet {
            origin_x: input.read(16)? as u16,
            origin_y: input.read(16)? as u16,
            vx: input.read(16)? as u16 as i16,
            vy: input.read(16)? as u16 as i16,
            spawn_tick: Tick(tick.0.wrapping_sub(read_varbits(input)?)),
            owner: NetId(read_varbits(input)?),
        }),
        2 => EntityState::Orb(OrbNet {
            x: input.read(16)? as u16,
            y: input.read(16)? as u16,
            value: input.read(8)? as u8,
        }),
        other => return Err(SnapshotError::UnknownKind(other)),
    })
}

fn read_update(tick: Tick, old: &EntityState, input: &mut BitReader) -> Result<EntityState, SnapshotError> {
    match old {
        EntityState::Player(old) => {
            let mut new = *old;
            let mask = input.read(5)?;
            if mask & MASK_POS != 0 {
                (new.x, new.y) = read_pos_delta(old.x, old.y, input)?;
            }
            if mask & MASK_AIM != 0 {
                new.aim = input.read(8)? as u8;
            }
            if mask & MASK_HP != 0 {
                new.hp = input.read(8)? as u8;
            }
            if mask & MASK_SCORE != 0 {
                new.score = input.read(16)? as u16;
            }
            if mask & MASK_FLAGS != 0 {
                new.flags = input.read(FLAG_BITS)? as u8;
            }
            Ok(EntityState::Player(new))
        }
        other => read_full(tick, other.kind_code(), input),
    }
}

/// Applies a delta produced by [`encode_delta`] to `baseline` (empty for a full snapshot),
/// writing the reconstructed view into `out` (cleared first; reuse it to avoid allocation).
pub fn apply_delta(tick: Tick, baseline: Option<&View>, bytes: &[u8], out: &mut View) -> Result<(), SnapshotError> {
    out.entities.clear();
    let empty = View::default();
    let old = &baseline.unwrap_or(&empty).entities;
    let mut input = BitReader::new(bytes);
    let count = input.read(COUNT_BITS)?;
    let mut old_index = 0;
    let mut previous_id = 0u32;
    for _ in 0..count {
        let gap = input.read_gamma()?;
        let id = NetId(previous_id.checked_add(gap).ok_or(SnapshotError::IdOverflow)?);
        previous_id = id.0;
        // Unlisted baseline entities before `id` carry over unchanged.
        while old_index < old.len() && old[old_index].0 < id {
            out.entities.push(old[old_index]);
            old_index += 1;
        }
        let existing = old.get(old_index).filter(|(old_id, _)| *old_id == id).map(|(_, state)| state);
        let is_update = !input.read_bool()?;
        if is_update {
            let old_state = existing.ok_or(SnapshotError::MissingEntity(id))?;
            out.entities.push((id, read_update(tick, old_state, &mut input)?));
            old_index += 1;
        } else if !input.read_bool()? {
            if existing.is_some() {
                return Err(SnapshotError::DuplicateEntity(id));
            }
            let kind = input.read(2)?;
            out.entities.push((id, read_full(tick, kind, &mut input)?));
        } else {
            existing.ok_or(SnapshotError::MissingEntity(id))?;
            old_index += 1;
        }
    }
    out.entities.extend_from_slice(&old[old_index..]);
    if !input.at_end() {
        return Err(SnapshotError::TrailingData(bytes.len()));
    }
    Ok(())
}

/// The client side of the snapshot stream: keeps recent views as baselines and applies each
/// incoming delta to the one it names.
#[derive(Debug, Default)]
pub struct SnapshotReceiver {
    /// Oldest first; at most [`CLIENT_BASELINE_HISTORY`] entries.
    history: VecDeque<(Tick, View)>,
}

impl SnapshotReceiver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one snapshot and returns the reconstructed view.
    pub fn apply(&mut self, tick: Tick, baseline: Option<Tick>, delta: &[u8]) -> Result<&View, SnapshotError> {
        if let Some((latest, _)) = self.history.back()
            && !tick.is_newer_than(*latest)
        {
            return Err(SnapshotError::OutOfOrder { got: tick, latest: *latest });
        }
        if let Some(base_tick) = baseline
            && !self.history.iter().any(|(t, _)| *t == base_tick)
        {
            return Err(SnapshotError::UnknownBaseline(base_tick));
        }
        // Reuse the oldest buffer when full, unless it is the baseline itself.
        let oldest = self.history.front().map(|(t, _)| *t);
        let mut out = if self.history.len() >= CLIENT_BASELINE_HISTORY && oldest != baseline {
            self.history.pop_front().map(|(_, view)| view).unwrap_or_default()
        } else {
            View::default()
        };
        let base_view = baseline.and_then(|b| self.history.iter().find(|(t, _)| *t == b).map(|(_, v)| v));
        apply_delta(tick, base_view, delta, &mut out)?;
        self.history.push_back((tick, out));
        while self.history.len() > CLIENT_BASELINE_HISTORY {
            self.history.pop_front();
        }
        Ok(&self.history.back().expect("just pushed").1)
    }

    /// The view received for `tick`, if still kept.
    pub fn view_at(&self, tick: Tick) -> Option<&View> {
        self.history.iter().rev().find(|(t, _)| *t == tick).map(|(_, view)| view)
    }

    /// The newest view and its tick.
    pub fn latest(&self) -> Option<(Tick, &View)> {
        self.history.back().map(|(tick, view)| (*tick, view))
    }

    /// Forgets everything (after a reconnect the server starts with a full snapshot).
    pub fn reset(&mut self) {
        self.history.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn player(x: u16, y: u16, aim: u8) -> EntityState {
        EntityState::Player(PlayerNet { x, y, aim, hp: 100, score: 0, flags: FLAG_ALIVE })
    }

    fn view(entities: &[(u32, EntityState)]) -> View {
        View { entities: entities.iter().map(|(id, s)| (NetId(*id), *s)).collect() }
    }

    fn round_trip(tick: Tick, base: Option<&View>, cur: &View) -> usize {
        let mut w = BitWriter::new();
        encode_delta(tick, base, cur, &mut w);
        let bytes = w.finish().to_vec();
        let mut out = View::default();
        apply_delta(tick, base, &bytes, &mut out).expect("decodes");
        assert_eq!(&out, cur);
        bytes.len()
    }

    #[test]
    fn full_and_delta_round_trip() {
        let projectile = EntityState::Projectile(ProjectileNet {
            origin_x: 100,
            origin_y: 200,
            vx: -300,
            vy: 7,
            spawn_tick: Tick(95),
            owner: NetId(1),
        });
        let orb = EntityState::Orb(OrbNet { x: 5, y: 6, value: 3 });
        let a = view(&[(1, player(10, 10, 0)), (2, orb), (9, projectile)]);
        round_trip(Tick(100), None, &a);
        let b = view(&[(1, player(60, 9000, 4)), (2, orb), (12, player(1, 2, 3))]);
        round_trip(Tick(102), Some(&a), &b);
        round_trip(Tick(102), Some(&b), &a);
    }

    #[test]
    fn unchanged_entities_cost_nothing() {
        let many: Vec<(u32, EntityState)> = (1..=500).map(|i| (i, player(i as u16, 5, 0))).collect();
        let a = view(&many);
        // Everything unchanged: only the entry count (18 bits) → three bytes.
        assert_eq!(round_trip(Tick(1), Some(&a), &a), 3);
    }

    #[test]
    fn moving_player_costs_at_most_six_bytes() {
        let many: Vec<(u32, EntityState)> = (1..=200).map(|i| (i, player(1000, 1000, 0))).collect();
        let a = view(&many);
        // Each moves by 6.7 units (53 steps at 1/8) and turns: the S1 per-snapshot change.
        let moved: Vec<(u32, EntityState)> = (1..=200).map(|i| (i, player(1053, 947, 9))).collect();
        let bytes = round_trip(Tick(2), Some(&a), &view(&moved));
        assert!(bytes <= 200 * 6, "{bytes} bytes for 200 moving players");
        assert!(bytes <= 200 * 33 / 8 + 3, "{bytes}");
    }

    #[test]
    fn hostile_bytes_never_panic() {
        let a = view(&[(1, player(10, 10, 0))]);
        for len in 0..64 {
            for seed in 0..32u32 {
                let bytes: Vec<u8> =
                    (0..len).map(|i| (seed.wrapping_mul(2654435761).wrapping_add(i * 97) >> 3) as u8).collect();
                let mut out = View::default();
                let _ = apply_delta(Tick(5), Some(&a), &bytes, &mut out);
                let _ = apply_delta(Tick(5), None, &bytes, &mut out);
            }
        }
    }

    #[test]
    fn delta_errors() {
        let a = view(&[(1, player(10, 10, 0))]);
        let b = view(&[(1, player(11, 10, 0))]);
        let mut w = BitWriter::new();
        encode_delta(Tick(2), Some(&a), &b, &mut w);
        let bytes = w.finish().to_vec();
        let mut out = View::default();
        assert_eq!(apply_delta(Tick(2), None, &bytes, &mut out), Err(SnapshotError::MissingEntity(NetId(1))));
    }

    #[test]
    fn receiver_tracks_baselines() {
        let mut rx = SnapshotReceiver::new();
        let mut w = BitWriter::new();
        let a = view(&[(1, player(10, 10, 0))]);
        encode_delta(Tick(1), None, &a, &mut w);
        assert_eq!(rx.apply(Tick(1), None, w.finish()).unwrap(), &a);
        let mut prev = a.clone();
        for t in 2..200u32 {
            let cur = view(&[(1, player(10 + t as u16, 10, 0)), (t + 1, player(1, 1, 1))]);
            encode_delta(Tick(t), Some(&prev), &cur, &mut w);
            assert_eq!(rx.apply(Tick(t), Some(Tick(t - 1)), w.finish()).unwrap(), &cur);
            prev = cur;
        }
        assert_eq!(rx.apply(Tick(500), Some(Tick(3)), &[1]), Err(SnapshotError::UnknownBaseline(Tick(3))));
        assert!(matches!(rx.apply(Tick(150), None, &[1]), Err(SnapshotError::OutOfOrder { .. })));
    }

    #[test]
    fn an_encoded_update_writes_the_same_bits_as_the_update() {
        let tick = Tick(500);
        let old = EntityState::Player(PlayerNet { x: 100, y: 200, aim: 3, hp: 90, score: 5, flags: 1 });
        let moves = [
            PlayerNet { x: 104, y: 199, aim: 9, hp: 90, score: 5, flags: 1 },
            PlayerNet { x: 60_000, y: 3, aim: 200, hp: 10, score: 65_000, flags: 15 },
            PlayerNet { x: 100, y: 200, aim: 3, hp: 89, score: 5, flags: 1 },
        ];
        let mut scratch = BitWriter::new();
        for new in moves.map(EntityState::Player) {
            let encoded = EncodedUpdate::new(tick, &old, &new, &mut scratch);
            let (mut direct, mut cached) = (BitWriter::new(), BitWriter::new());
            let mut writer = DeltaWriter::start(tick, &mut direct);
            writer.create(NetId(2), &old);
            writer.update(NetId(7), &old, &new);
            writer.finish();
            let mut writer = DeltaWriter::start(tick, &mut cached);
            writer.create(NetId(2), &old);
            writer.update_encoded(NetId(7), &encoded);
            writer.finish();
            assert_eq!(direct.finish(), cached.finish(), "{new:?}");
        }
    }
}
