//! How formats 5 and 6 pack a tick's inputs: each against the same player's previous input.
//! The layouts are documented in `format.rs`.

use serde::{Deserialize, Serialize};
use shared::protocol::{InputCmd, ViewTime, aim_of_step, aim_step, move_of_step, move_step};
use shared::snapshot::NetId;
use shared::tick::Tick;

use super::record::{Op, TickRecord};

/// A tick as formats 5 and 6 store it. Format 6 stores `tick` as the difference from the
/// previous stored tick (wrapping), several ticks to a frame.
#[derive(Serialize, Deserialize)]
pub(super) struct StoredTick {
    pub(super) tick: u32,
    pub(super) ops: Vec<StoredOp>,
    pub(super) hash: Option<u64>,
}

#[derive(Serialize, Deserialize)]
pub(super) enum StoredOp {
    /// Any operation but an input, as it is.
    Op(Op),
    /// Consecutive inputs, packed.
    Inputs(Vec<u8>),
}

// Format 5's flags.
pub(super) const SEQ: u8 = 1;
pub(super) const ACK: u8 = 2;
const MOVE_X: u8 = 4;
const MOVE_Y: u8 = 8;
const AIM: u8 = 16;
const FIRE: u8 = 32;
pub(super) const VIEW: u8 = 64;

// Format 6's first byte: a 2-bit code per control (bits 0–1 `move_x`, 2–3 `move_y`, 4–5 `aim`),
// fire, and whether a second byte follows.
const CODE_BITS: u32 = 2;
/// The control is its predicted step.
const CODE_PREDICTED: u8 = 0;
/// One step above the prediction.
const CODE_UP: u8 = 1;
/// One step below the prediction.
const CODE_DOWN: u8 = 2;
/// A value follows: its step's difference from the prediction, or a float that is not on a step.
const CODE_EXPLICIT: u8 = 3;
const FIRE6: u8 = 64;
pub(super) const MORE6: u8 = 128;
// Format 6's second byte.
const SEQ6: u8 = 1;
const ACK6: u8 = 2;
const VIEW6: u8 = 4;

pub(super) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// The difference `now - before` of two u32s (wrapping), zigzag coded: small either way.
pub(super) fn diff(now: u32, before: u32) -> u64 {
    let d = now.wrapping_sub(before) as i32;
    u64::from(((d << 1) ^ (d >> 31)) as u32)
}

/// `before` moved by a difference [`diff`] made (wrapping: no value can overflow).
pub(super) fn undiff(before: u32, coded: u32) -> u32 {
    let d = ((coded >> 1) as i32) ^ -((coded & 1) as i32);
    before.wrapping_add(d as u32)
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag(coded: u64) -> i64 {
    ((coded >> 1) as i64) ^ -((coded & 1) as i64)
}

/// Reads a packed run.
pub(super) struct Cursor<'a> {
    pub(super) bytes: &'a [u8],
    pub(super) at: usize,
}

impl Cursor<'_> {
    fn byte(&mut self) -> Result<u8, String> {
        let byte = *self.bytes.get(self.at).ok_or("input run cut short")?;
        self.at += 1;
        Ok(byte)
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint too long".into())
    }

    fn u32(&mut self) -> Result<u32, String> {
        u32::try_from(self.varint()?).map_err(|_| "value over 32 bits".to_string())
    }
}

/// The view a player's input is expected to claim: its previous view moved along with its ack.
fn expected_view(previous: &InputCmd, ack: Tick) -> Option<ViewTime> {
    previous.view.map(|view| ViewTime {
        tick: Tick(ack.0.wrapping_add(view.tick.0.wrapping_sub(previous.ack.0))),
        frac: view.frac,
    })
}

/// The aim's steps wrap around a turn.
const AIM_TURN: i64 = shared::protocol::AIM_STEPS as i64;

/// Control `i` (0 `move_x`, 1 `move_y`, 2 `aim`) in steps ([`InputCmd::quantized`]).
fn step_of(i: usize, value: f32) -> i64 {
    if i == 2 { i64::from(aim_step(value)) } else { i64::from(move_step(value)) }
}

/// The value of step `step` of control `i`, if `step` is one.
fn value_of(i: usize, step: i64) -> Option<f32> {
    if i == 2 {
        Some(aim_of_step(step.rem_euclid(AIM_TURN) as u32))
    } else {
        (-127..=127).contains(&step).then(|| move_of_step(step as i32))
    }
}

/// `step` of control `i` if `value` is exactly on it (the server quantizes what it records).
fn exact_step(i: usize, value: f32) -> Option<i64> {
    let step = step_of(i, value);
    (value_of(i, step)?.to_bits() == value.to_bits()).then_some(step)
}

/// How far step `to` is from step `from` (around the turn for the aim).
fn step_distance(i: usize, to: i64, from: i64) -> i64 {
    let d = to - from;
    if i == 2 { (d + AIM_TURN / 2).rem_euclid(AIM_TURN) - AIM_TURN / 2 } else { d }
}

/// What the codec remembers of one player.
#[derive(Clone, Copy, Default)]
struct Track {
    /// The player's last input.
    cmd: InputCmd,
    /// `move_x`, `move_y`, `aim` of the input before it.
    before: [f32; 3],
    /// Per float: predict it along the line through its last two values (it has been moving
    /// smoothly) rather than as held (it has been still, or jumping). Format 5, and format 6's
    /// floats that are not on a step.
    linear: [bool; 3],
    /// The same choice for the controls' steps (format 6).
    steps_linear: [bool; 3],
}

impl Track {
    fn floats(cmd: &InputCmd) -> [f32; 3] {
        [cmd.move_x, cmd.move_y, cmd.aim]
    }

    fn line(&self, i: usize) -> f32 {
        let last = Track::floats(&self.cmd)[i];
        let next = last + (last - self.before[i]);
        if next.is_finite() { next } else { last }
    }

    /// The value float `i` of the next input is expected to have.
    fn predict(&self, i: usize) -> f32 {
        if self.linear[i] { self.line(i) } else { Track::floats(&self.cmd)[i] }
    }

    fn step_held(&self, i: usize) -> i64 {
        step_of(i, Track::floats(&self.cmd)[i])
    }

    fn step_line(&self, i: usize) -> i64 {
        let last = self.step_held(i);
        let next = last + step_distance(i, last, step_of(i, self.before[i]));
        if i == 2 { next.rem_euclid(AIM_TURN) } else { next.clamp(-127, 127) }
    }

    /// The step control `i` of the next input is expected to have.
    fn predict_step(&self, i: usize) -> i64 {
        if self.steps_linear[i] { self.step_line(i) } else { self.step_held(i) }
    }

    /// Remembers `cmd`, and for each control which prediction would have come closer.
    fn push(&mut self, cmd: InputCmd) {
        let now = Track::floats(&cmd);
        let last = Track::floats(&self.cmd);
        for i in 0..3 {
            let held = (now[i].to_bits() ^ last[i].to_bits()).leading_zeros();
            let line = (now[i].to_bits() ^ self.line(i).to_bits()).leading_zeros();
            self.linear[i] = line > held;
            let step = step_of(i, now[i]);
            let held = step_distance(i, step, self.step_held(i)).abs();
            let line = step_distance(i, step, self.step_line(i)).abs();
            self.steps_linear[i] = line < held;
        }
        self.before = last;
        self.cmd = cmd;
    }
}

/// Packs and unpacks the inputs of format 5 or 6: remembers each player's last inputs, and
/// (format 6) the last tick stored.
pub(super) struct InputCodec {
    version: u16,
    last: std::collections::HashMap<NetId, Track>,
    last_tick: u32,
}

impl InputCodec {
    pub(super) fn new(version: u16) -> InputCodec {
        InputCodec { version, last: Default::default(), last_tick: 0 }
    }

    /// Format 5 (kept to write test files that check the reader).
    #[cfg(test)]
    fn pack_one_v5(&mut self, out: &mut Vec<u8>, previous: &InputCmd, track: &Track, cmd: &InputCmd) {
        let mut flags = 0;
        if cmd.seq != previous.seq.wrapping_add(1) {
            flags |= SEQ;
        }
        if cmd.ack != previous.ack {
            flags |= ACK;
        }
        let floats = [
            (MOVE_X, cmd.move_x, track.predict(0)),
            (MOVE_Y, cmd.move_y, track.predict(1)),
            (AIM, cmd.aim, track.predict(2)),
        ];
        for (flag, now, expected) in floats {
            if now.to_bits() != expected.to_bits() {
                flags |= flag;
            }
        }
        if cmd.fire {
            flags |= FIRE;
        }
        if cmd.view != expected_view(previous, cmd.ack) {
            flags |= VIEW;
        }
        out.push(flags);
        if flags & SEQ != 0 {
            put_varint(out, u64::from(cmd.seq));
        }
        if flags & ACK != 0 {
            put_varint(out, diff(cmd.ack.0, previous.ack.0));
        }
        for (flag, now, expected) in floats {
            if flags & flag != 0 {
                put_varint(out, u64::from(now.to_bits() ^ expected.to_bits()));
            }
        }
        if flags & VIEW != 0 {
            put_view(out, cmd);
        }
    }

    fn pack_one_v6(&mut self, out: &mut Vec<u8>, previous: &InputCmd, track: &Track, cmd: &InputCmd) {
        let now = Track::floats(cmd);
        let mut first = 0;
        let mut explicit = [None; 3];
        for i in 0..3 {
            let code = match exact_step(i, now[i]) {
                Some(step) => match step_distance(i, step, track.predict_step(i)) {
                    0 => CODE_PREDICTED,
                    1 => CODE_UP,
                    -1 => CODE_DOWN,
                    off => {
                        explicit[i] = Some(zigzag(off) << 1);
                        CODE_EXPLICIT
                    }
                },
                None => {
                    explicit[i] = Some(u64::from(now[i].to_bits() ^ track.predict(i).to_bits()) << 1 | 1);
                    CODE_EXPLICIT
                }
            };
            first |= code << (CODE_BITS * i as u32);
        }
        if cmd.fire {
            first |= FIRE6;
        }
        let mut second = 0;
        if cmd.seq != previous.seq.wrapping_add(1) {
            second |= SEQ6;
        }
        if cmd.ack != previous.ack {
            second |= ACK6;
        }
        if cmd.view != expected_view(previous, cmd.ack) {
            second |= VIEW6;
        }
        if second != 0 {
            first |= MORE6;
        }
        out.push(first);
        if second != 0 {
            out.push(second);
        }
        if second & SEQ6 != 0 {
            put_varint(out, u64::from(cmd.seq));
        }
        if second & ACK6 != 0 {
            put_varint(out, diff(cmd.ack.0, previous.ack.0));
        }
        for value in explicit.into_iter().flatten() {
            put_varint(out, value);
        }
        if second & VIEW6 != 0 {
            put_view(out, cmd);
        }
    }

    fn pack_one(&mut self, out: &mut Vec<u8>, previous_id: &mut u32, id: NetId, cmd: &InputCmd) {
        put_varint(out, diff(id.0, *previous_id));
        *previous_id = id.0;
        let track = self.last.get(&id).copied().unwrap_or_default();
        match self.version {
            #[cfg(test)]
            5 => self.pack_one_v5(out, &track.cmd, &track, cmd),
            _ => self.pack_one_v6(out, &track.cmd, &track, cmd),
        }
        self.last.entry(id).or_default().push(*cmd);
    }

    fn unpack_one(&mut self, cursor: &mut Cursor<'_>, previous_id: &mut u32) -> Result<Op, String> {
        let id = NetId(undiff(*previous_id, cursor.u32()?));
        *previous_id = id.0;
        let track = self.last.get(&id).copied().unwrap_or_default();
        let cmd = if self.version == 5 { unpack_v5(cursor, &track)? } else { unpack_v6(cursor, &track)? };
        self.last.entry(id).or_default().push(cmd);
        Ok(Op::Input { id, cmd })
    }

    /// A player who joins starts from a zero input (ids are not reused within a match, but a
    /// file must not depend on it).
    fn forget(&mut self, op: &Op) {
        if let Op::Join { id, .. } = op {
            self.last.remove(id);
        }
    }

    /// `record` as stored (format 6: its tick as a difference from the previous one's).
    pub(super) fn pack(&mut self, record: &TickRecord) -> StoredTick {
        let mut ops = Vec::new();
        let mut run: Option<(Vec<u8>, u32)> = None;
        for op in &record.ops {
            match op {
                Op::Input { id, cmd } => {
                    let (bytes, previous_id) = run.get_or_insert_with(|| (Vec::new(), 0));
                    self.pack_one(bytes, previous_id, *id, cmd);
                }
                other => {
                    if let Some((bytes, _)) = run.take() {
                        ops.push(StoredOp::Inputs(bytes));
                    }
                    self.forget(other);
                    ops.push(StoredOp::Op(other.clone()));
                }
            }
        }
        if let Some((bytes, _)) = run.take() {
            ops.push(StoredOp::Inputs(bytes));
        }
        let tick = if self.version >= 6 { record.tick.wrapping_sub(self.last_tick) } else { record.tick };
        self.last_tick = record.tick;
        StoredTick { tick, ops, hash: record.hash }
    }

    pub(super) fn unpack(&mut self, stored: StoredTick) -> Result<TickRecord, String> {
        let tick = if self.version >= 6 { self.last_tick.wrapping_add(stored.tick) } else { stored.tick };
        self.last_tick = tick;
        let mut ops = Vec::with_capacity(stored.ops.len());
        for op in stored.ops {
            match op {
                StoredOp::Op(Op::Input { .. }) => return Err("an unpacked input in a packed file".into()),
                StoredOp::Op(op) => {
                    self.forget(&op);
                    ops.push(op);
                }
                StoredOp::Inputs(bytes) => {
                    let mut cursor = Cursor { bytes: &bytes, at: 0 };
                    let mut previous_id = 0;
                    while cursor.at < bytes.len() {
                        ops.push(self.unpack_one(&mut cursor, &mut previous_id)?);
                    }
                }
            }
        }
        Ok(TickRecord { tick, ops, hash: stored.hash })
    }
}

fn put_view(out: &mut Vec<u8>, cmd: &InputCmd) {
    match cmd.view {
        None => out.push(0),
        Some(view) => {
            out.push(1);
            put_varint(out, diff(view.tick.0, cmd.ack.0));
            out.push(view.frac);
        }
    }
}

fn read_view(cursor: &mut Cursor<'_>, ack: Tick) -> Result<Option<ViewTime>, String> {
    match cursor.byte()? {
        0 => Ok(None),
        1 => {
            let tick = Tick(undiff(ack.0, cursor.u32()?));
            Ok(Some(ViewTime { tick, frac: cursor.byte()? }))
        }
        other => Err(format!("view tag {other}")),
    }
}

fn unpack_v5(cursor: &mut Cursor<'_>, track: &Track) -> Result<InputCmd, String> {
    let previous = track.cmd;
    let flags = cursor.byte()?;
    if flags & 128 != 0 {
        return Err("unknown input flag".into());
    }
    let seq = if flags & SEQ != 0 { cursor.u32()? } else { previous.seq.wrapping_add(1) };
    let ack = if flags & ACK != 0 { Tick(undiff(previous.ack.0, cursor.u32()?)) } else { previous.ack };
    let mut float = |flag: u8, expected: f32| -> Result<f32, String> {
        Ok(if flags & flag != 0 { f32::from_bits(cursor.u32()? ^ expected.to_bits()) } else { expected })
    };
    let move_x = float(MOVE_X, track.predict(0))?;
    let move_y = float(MOVE_Y, track.predict(1))?;
    let aim = float(AIM, track.predict(2))?;
    let view = if flags & VIEW != 0 { read_view(cursor, ack)? } else { expected_view(&previous, ack) };
    Ok(InputCmd { seq, ack, move_x, move_y, aim, fire: flags & FIRE != 0, view })
}

fn unpack_v6(cursor: &mut Cursor<'_>, track: &Track) -> Result<InputCmd, String> {
    let previous = track.cmd;
    let first = cursor.byte()?;
    let second = if first & MORE6 != 0 { cursor.byte()? } else { 0 };
    if second & !(SEQ6 | ACK6 | VIEW6) != 0 {
        return Err("unknown input flag".into());
    }
    if first & MORE6 != 0 && second == 0 {
        return Err("an empty second input byte".into());
    }
    let seq = if second & SEQ6 != 0 { cursor.u32()? } else { previous.seq.wrapping_add(1) };
    let ack = if second & ACK6 != 0 { Tick(undiff(previous.ack.0, cursor.u32()?)) } else { previous.ack };
    let mut floats = [0.0; 3];
    for (i, float) in floats.iter_mut().enumerate() {
        let predicted = track.predict_step(i);
        let step = match (first >> (CODE_BITS * i as u32)) & 3 {
            CODE_PREDICTED => predicted,
            CODE_UP => predicted + 1,
            CODE_DOWN => predicted - 1,
            _ => {
                let value = cursor.varint()?;
                if value & 1 == 1 {
                    let bits = u32::try_from(value >> 1).map_err(|_| "float over 32 bits".to_string())?;
                    *float = f32::from_bits(bits ^ track.predict(i).to_bits());
                    continue;
                }
                let off = unzigzag(value >> 1);
                if off.unsigned_abs() > 1 << 20 {
                    return Err("step difference out of range".into());
                }
                predicted + off
            }
        };
        *float = value_of(i, step).ok_or_else(|| format!("stick step {step} out of range"))?;
    }
    let view = if second & VIEW6 != 0 { read_view(cursor, ack)? } else { expected_view(&previous, ack) };
    let [move_x, move_y, aim] = floats;
    Ok(InputCmd { seq, ack, move_x, move_y, aim, fire: first & FIRE6 != 0, view })
}
