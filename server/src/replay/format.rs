//! The replay file format (documented in `docs` of this module and in README.md):
//!
//! ```text
//! magic       8 bytes  "ARENARPL"
//! version     u16 LE   FORMAT_VERSION
//! then frames, each:
//!   length    u32 LE   payload bytes (at most MAX_FRAME)
//!   crc32     u32 LE   CRC-32 (IEEE) of the payload
//!   payload   bincode (standard config, serde): the first frame is a ReplayHeader, every other
//!             frame a tick: its number, its operations, its hash (format 5: consecutive
//!             inputs packed into one `Inputs` run, see below; formats 3 and 4: a TickRecord)
//! ```
//!
//! An `Inputs` run (format 5) holds inputs in the order the room applied them, each written
//! against the same player's previous input (its last one in the file, across ticks):
//!
//! ```text
//! id        varint, zigzag difference (wrapping u32) from the previous input's id in the run
//!           (first: from 0)
//! flags     u8: 1 seq is not previous + 1 · 2 ack changed · 4 move_x, 8 move_y, 16 aim is not
//!           as predicted
//!           · 32 fire · 64 view is not the previous view moved along with ack · 128 reserved
//! then, in flag order: seq varint · ack as a varint zigzag difference · each mispredicted float
//! as a varint of its bits XOR the predicted bits · view: 0 (none) or 1, tick as a varint zigzag
//! difference from ack, frac u8
//!
//! A float is predicted as held (its last value) or, when it has been moving smoothly, along the
//! line through its last two values (`f32` arithmetic, the same on both sides): whichever of the
//! two came closer, in bits, for its last value. Nothing on the wire says which.
//! ```
//!
//! A player's first input is written against an all-zero input. Held keys and a still mouse
//! cost two bytes an input (three when the ack moved).
//!
//! Frames are appended as the match runs; a crash can only cut the file inside the last frame.
//! The reader stops at the first frame that is short or fails its checksum and says so
//! ([`TailStatus`]), so a truncated or corrupted file still plays up to its last good record.

use std::io::Read;

use serde::{Deserialize, Serialize};
use shared::map::MapDef;
use shared::protocol::{DisconnectReason, InputCmd};
use shared::snapshot::NetId;
use thiserror::Error;

/// File magic.
pub const MAGIC: &[u8; 8] = b"ARENARPL";
/// Bumped whenever the layout, the operations or the rules change in a way that breaks old
/// replays. Readers refuse other versions with [`ReplayError::Version`]. 2: a player with no
/// input queued holds still instead of repeating its last input, and a backlog is applied two
/// inputs per tick. 3: inputs carry the moment the player saw (lag compensation) and the header
/// the window. 4: `Away`/`Back`. 5: inputs packed against each player's previous one.
pub const FORMAT_VERSION: u16 = 5;
/// The oldest format this server still reads (3 has no `Away`/`Back` operations; nothing else
/// changed).
pub const OLDEST_FORMAT_VERSION: u16 = 3;
/// Largest frame payload accepted (a tick with every player's input fits easily).
pub const MAX_FRAME: u32 = 16 << 20;

/// Everything needed to rebuild the world a match started from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReplayHeader {
    pub protocol_version: u16,
    /// Version of the server that recorded it (informational).
    pub server_version: String,
    pub tick_hz: u16,
    pub snapshot_hz: u16,
    pub seed: u64,
    /// 0 = arena, 1 = S1.
    pub rules: u8,
    pub map: MapDef,
    /// Wall-clock start, milliseconds since the Unix epoch (informational).
    pub started_unix_ms: u64,
    pub hash_every: u32,
    /// Lag compensation window, ticks (see `WorldConfig::lag_comp_ticks`).
    pub lag_comp_ticks: u32,
}

/// One operation the room applied to the world, in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// `World::add_player`; `id` is the net id it returned (checked on replay).
    Join { id: NetId, name: String, bot: bool },
    /// `World::restore_stats` after a resume.
    Resume { id: NetId, score: u16, kills: u16, deaths: u16 },
    /// `World::push_input`.
    Input { id: NetId, cmd: InputCmd },
    /// `World::remove_player`.
    Leave { id: NetId, reason: DisconnectReason },
    /// A chat line (no effect on the simulation; kept for spectators and `info`).
    Chat { id: NetId, text: String },
    /// `World::set_away(id, true)`: the connection dropped and the seat is held.
    Away { id: NetId },
    /// `World::set_away(id, false)`: a resume took the held seat back.
    Back { id: NetId },
}

/// The operations applied before tick `tick` was stepped, and the state hash after it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TickRecord {
    pub tick: u32,
    pub ops: Vec<Op>,
    pub hash: Option<u64>,
}

/// A tick as format 5 stores it.
#[derive(Serialize, Deserialize)]
struct StoredTick {
    tick: u32,
    ops: Vec<StoredOp>,
    hash: Option<u64>,
}

#[derive(Serialize, Deserialize)]
enum StoredOp {
    /// Any operation but an input, as it is.
    Op(Op),
    /// Consecutive inputs, packed (see the module's documentation).
    Inputs(Vec<u8>),
}

const SEQ: u8 = 1;
const ACK: u8 = 2;
const MOVE_X: u8 = 4;
const MOVE_Y: u8 = 8;
const AIM: u8 = 16;
const FIRE: u8 = 32;
const VIEW: u8 = 64;

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// The difference `now - before` of two u32s (wrapping), zigzag coded: small either way.
fn diff(now: u32, before: u32) -> u64 {
    let d = now.wrapping_sub(before) as i32;
    u64::from(((d << 1) ^ (d >> 31)) as u32)
}

/// `before` moved by a difference [`diff`] made (wrapping: no value can overflow).
fn undiff(before: u32, coded: u32) -> u32 {
    let d = ((coded >> 1) as i32) ^ -((coded & 1) as i32);
    before.wrapping_add(d as u32)
}

/// Reads a packed run.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
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
fn expected_view(previous: &InputCmd, ack: shared::tick::Tick) -> Option<shared::protocol::ViewTime> {
    previous.view.map(|view| shared::protocol::ViewTime {
        tick: shared::tick::Tick(ack.0.wrapping_add(view.tick.0.wrapping_sub(previous.ack.0))),
        frac: view.frac,
    })
}

/// What the codec remembers of one player.
#[derive(Clone, Copy, Default)]
struct Track {
    /// The player's last input.
    cmd: InputCmd,
    /// `move_x`, `move_y`, `aim` of the input before it.
    before: [f32; 3],
    /// Per float: predict it along the line through its last two values (it has been moving
    /// smoothly) rather than as held (it has been still, or jumping).
    linear: [bool; 3],
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

    /// Remembers `cmd`, and for each float which prediction would have come closer (in bits).
    fn push(&mut self, cmd: InputCmd) {
        let now = Track::floats(&cmd);
        let last = Track::floats(&self.cmd);
        for i in 0..3 {
            let held = (now[i].to_bits() ^ last[i].to_bits()).leading_zeros();
            let line = (now[i].to_bits() ^ self.line(i).to_bits()).leading_zeros();
            self.linear[i] = line > held;
        }
        self.before = last;
        self.cmd = cmd;
    }
}

/// Packs and unpacks format 5's inputs: remembers each player's last inputs.
#[derive(Default)]
pub struct InputCodec {
    last: std::collections::HashMap<NetId, Track>,
}

impl InputCodec {
    fn pack_one(&mut self, out: &mut Vec<u8>, previous_id: &mut u32, id: NetId, cmd: &InputCmd) {
        put_varint(out, diff(id.0, *previous_id));
        *previous_id = id.0;
        let track = self.last.get(&id).copied().unwrap_or_default();
        let previous = track.cmd;
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
        if cmd.view != expected_view(&previous, cmd.ack) {
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
            match cmd.view {
                None => out.push(0),
                Some(view) => {
                    out.push(1);
                    put_varint(out, diff(view.tick.0, cmd.ack.0));
                    out.push(view.frac);
                }
            }
        }
        self.last.entry(id).or_default().push(*cmd);
    }

    fn unpack_one(&mut self, cursor: &mut Cursor<'_>, previous_id: &mut u32) -> Result<Op, String> {
        let id = NetId(undiff(*previous_id, cursor.u32()?));
        *previous_id = id.0;
        let track = self.last.get(&id).copied().unwrap_or_default();
        let previous = track.cmd;
        let flags = cursor.byte()?;
        if flags & 128 != 0 {
            return Err("unknown input flag".into());
        }
        let seq = if flags & SEQ != 0 { cursor.u32()? } else { previous.seq.wrapping_add(1) };
        let ack =
            if flags & ACK != 0 { shared::tick::Tick(undiff(previous.ack.0, cursor.u32()?)) } else { previous.ack };
        let mut float = |flag: u8, expected: f32| -> Result<f32, String> {
            Ok(if flags & flag != 0 { f32::from_bits(cursor.u32()? ^ expected.to_bits()) } else { expected })
        };
        let move_x = float(MOVE_X, track.predict(0))?;
        let move_y = float(MOVE_Y, track.predict(1))?;
        let aim = float(AIM, track.predict(2))?;
        let view = if flags & VIEW != 0 {
            match cursor.byte()? {
                0 => None,
                1 => {
                    let tick = shared::tick::Tick(undiff(ack.0, cursor.u32()?));
                    Some(shared::protocol::ViewTime { tick, frac: cursor.byte()? })
                }
                other => return Err(format!("view tag {other}")),
            }
        } else {
            expected_view(&previous, ack)
        };
        let cmd = InputCmd { seq, ack, move_x, move_y, aim, fire: flags & FIRE != 0, view };
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

    fn pack(&mut self, record: &TickRecord) -> StoredTick {
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
        StoredTick { tick: record.tick, ops, hash: record.hash }
    }

    fn unpack(&mut self, stored: StoredTick) -> Result<TickRecord, String> {
        let mut ops = Vec::with_capacity(stored.ops.len());
        for op in stored.ops {
            match op {
                StoredOp::Op(Op::Input { .. }) => return Err("an unpacked input in a format 5 file".into()),
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
        Ok(TickRecord { tick: stored.tick, ops, hash: stored.hash })
    }

    /// Appends `record`'s frame (format 5) to `out`.
    pub fn frame(&mut self, record: &TickRecord, out: &mut Vec<u8>) {
        frame(&self.pack(record), out);
    }
}

/// How the file ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TailStatus {
    /// Every byte belonged to a whole, valid frame.
    Clean,
    /// The file ends inside a frame (a crash or a copy in progress) at this byte offset.
    Truncated { offset: u64 },
    /// A frame failed its checksum or did not decode.
    Corrupt { offset: u64, why: String },
}

impl std::fmt::Display for TailStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TailStatus::Clean => write!(f, "complete"),
            TailStatus::Truncated { offset } => {
                write!(f, "truncated at byte {offset}; played up to the last whole record")
            }
            TailStatus::Corrupt { offset, why } => {
                write!(f, "corrupt record at byte {offset} ({why}); played up to the last good record")
            }
        }
    }
}

#[derive(Debug, Error)]
pub enum ReplayError {
    #[error("reading the replay: {0}")]
    Io(#[from] std::io::Error),
    #[error("not an Arena replay (bad magic)")]
    Magic,
    #[error(
        "replay format version {found} is not supported (this server reads versions {OLDEST_FORMAT_VERSION} to {FORMAT_VERSION}); use the server version that recorded it"
    )]
    Version { found: u16 },
    #[error("the replay header is damaged: {0}")]
    Header(String),
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Appends one frame for `payload` to `out`.
pub fn frame<T: Serialize>(payload: &T, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    bincode::serde::encode_into_std_write(payload, out, config()).expect("encoding into a Vec cannot fail");
    let body = &out[start + 8..];
    let length = body.len() as u32;
    let crc = crc32fast::hash(body);
    out[start..start + 4].copy_from_slice(&length.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// The file's first bytes: magic, version and the header frame.
pub fn file_start(header: &ReplayHeader) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    frame(header, &mut out);
    out
}

/// A whole file in the current format: `header`, then `records`.
pub fn write_all(header: &ReplayHeader, records: &[TickRecord]) -> Vec<u8> {
    let mut bytes = file_start(header);
    let mut codec = InputCodec::default();
    for record in records {
        codec.frame(record, &mut bytes);
    }
    bytes
}

/// The bytes `records` take as format 4 wrote them (each input whole): for comparisons.
pub fn unpacked_size(records: &[TickRecord]) -> u64 {
    let mut bytes = Vec::new();
    let mut total = 0;
    for record in records {
        bytes.clear();
        frame(record, &mut bytes);
        total += bytes.len() as u64;
    }
    total
}

/// A whole replay read into memory.
#[derive(Debug)]
pub struct ReplayFile {
    pub header: ReplayHeader,
    pub records: Vec<TickRecord>,
    pub tail: TailStatus,
    pub bytes: u64,
}

/// Reads a replay, keeping every record up to the first damaged one.
pub fn read(mut reader: impl Read) -> Result<ReplayFile, ReplayError> {
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes)?;
    parse(&bytes)
}

pub fn parse(bytes: &[u8]) -> Result<ReplayFile, ReplayError> {
    if bytes.len() < 10 || &bytes[..8] != MAGIC {
        return Err(ReplayError::Magic);
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(ReplayError::Version { found: version });
    }
    let mut offset = 10usize;
    let header: ReplayHeader = match next_frame(bytes, &mut offset) {
        FrameResult::Ok(payload) => decode(payload).map_err(ReplayError::Header)?,
        FrameResult::End => return Err(ReplayError::Header("missing".into())),
        FrameResult::Truncated => return Err(ReplayError::Header("truncated".into())),
        FrameResult::Bad(why) => return Err(ReplayError::Header(why)),
    };
    let mut records = Vec::new();
    let mut codec = InputCodec::default();
    let tail = loop {
        let frame_start = offset as u64;
        match next_frame(bytes, &mut offset) {
            FrameResult::End => break TailStatus::Clean,
            FrameResult::Truncated => break TailStatus::Truncated { offset: frame_start },
            FrameResult::Bad(why) => break TailStatus::Corrupt { offset: frame_start, why },
            FrameResult::Ok(payload) => {
                let record = if version >= 5 {
                    decode::<StoredTick>(payload).and_then(|stored| codec.unpack(stored))
                } else {
                    decode::<TickRecord>(payload)
                };
                match record {
                    Ok(record) => records.push(record),
                    Err(why) => break TailStatus::Corrupt { offset: frame_start, why },
                }
            }
        }
    };
    Ok(ReplayFile { header, records, tail, bytes: bytes.len() as u64 })
}

enum FrameResult<'a> {
    Ok(&'a [u8]),
    End,
    Truncated,
    Bad(String),
}

fn next_frame<'a>(bytes: &'a [u8], offset: &mut usize) -> FrameResult<'a> {
    let rest = &bytes[*offset..];
    if rest.is_empty() {
        return FrameResult::End;
    }
    if rest.len() < 8 {
        return FrameResult::Truncated;
    }
    let length = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
    if length > MAX_FRAME {
        return FrameResult::Bad(format!("frame length {length} over the limit"));
    }
    let Some(payload) = rest.get(8..8 + length as usize) else { return FrameResult::Truncated };
    if crc32fast::hash(payload) != crc {
        return FrameResult::Bad("checksum mismatch".into());
    }
    *offset += 8 + length as usize;
    FrameResult::Ok(payload)
}

fn decode<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Result<T, String> {
    let (value, used) = bincode::serde::decode_from_slice(payload, config().with_limit::<{ MAX_FRAME as usize }>())
        .map_err(|e| e.to_string())?;
    if used != payload.len() {
        return Err(format!("{} trailing bytes", payload.len() - used));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> ReplayHeader {
        ReplayHeader {
            protocol_version: shared::PROTOCOL_VERSION,
            server_version: "test".into(),
            tick_hz: 60,
            snapshot_hz: 30,
            seed: 7,
            rules: 0,
            map: MapDef::open("t", 1000.0, 3),
            started_unix_ms: 0,
            hash_every: 60,
            lag_comp_ticks: 30,
        }
    }

    fn sample() -> Vec<u8> {
        let mut bytes = file_start(&header());
        let mut codec = InputCodec::default();
        for tick in 1..=10 {
            let ops = vec![Op::Chat { id: NetId(tick), text: format!("line {tick}") }];
            codec.frame(&TickRecord { tick, ops, hash: Some(u64::from(tick)) }, &mut bytes);
        }
        bytes
    }

    /// Inputs of every shape come back exactly (bit for bit), interleaved with other operations
    /// and across ticks; held controls cost two bytes an input.
    #[test]
    fn packed_inputs_round_trip_exactly_and_held_controls_cost_two_bytes() {
        use shared::protocol::ViewTime;
        use shared::tick::Tick;
        let mut ticks = Vec::new();
        let mut seq = [0u32; 3];
        for tick in 1..=200u32 {
            let mut ops = Vec::new();
            if tick == 1 {
                for id in 1..=3 {
                    ops.push(Op::Join { id: NetId(id), name: format!("p{id}"), bot: false });
                }
            }
            for id in 1..=3u32 {
                let i = (id - 1) as usize;
                seq[i] += if tick == 50 && id == 2 { 7 } else { 1 };
                let cmd = match id {
                    // Held keys, a still mouse, the view one snapshot behind its ack.
                    1 => InputCmd {
                        seq: seq[i],
                        ack: Tick(tick / 2 * 2),
                        move_x: 1.0,
                        move_y: 0.0,
                        aim: 0.5,
                        fire: tick % 10 == 0,
                        view: Some(ViewTime { tick: Tick((tick / 2 * 2).saturating_sub(4)), frac: 0 }),
                    },
                    // Everything moving, odd floats included.
                    2 => InputCmd {
                        seq: seq[i],
                        ack: Tick(tick.saturating_sub(3)),
                        move_x: (tick as f32 * 0.05).cos(),
                        move_y: if tick == 77 { -0.0 } else { (tick as f32 * 0.05).sin() },
                        aim: if tick == 90 { f32::MAX } else { tick as f32 * -0.3 },
                        fire: tick % 3 == 0,
                        view: (tick % 7 != 0).then(|| ViewTime { tick: Tick(tick / 3), frac: (tick * 37) as u8 }),
                    },
                    _ => InputCmd { seq: seq[i], ..InputCmd::default() },
                };
                ops.push(Op::Input { id: NetId(id), cmd });
            }
            if tick == 120 {
                ops.push(Op::Chat { id: NetId(1), text: "gg".into() });
                ops.push(Op::Input { id: NetId(1), cmd: InputCmd { seq: 999, ..InputCmd::default() } });
            }
            ticks.push(TickRecord { tick, ops, hash: (tick % 60 == 0).then_some(u64::from(tick)) });
        }
        let mut bytes = file_start(&header());
        let mut codec = InputCodec::default();
        for record in &ticks {
            codec.frame(record, &mut bytes);
        }
        let file = parse(&bytes).unwrap();
        assert_eq!(file.tail, TailStatus::Clean);
        assert_eq!(file.records, ticks, "every input comes back bit for bit");
        // The held-keys player alone, once its view sits a steady 4 ticks behind its ack (from
        // tick 4): two bytes (id, flags) per input when its ack did not move, three when it did.
        let mut codec = InputCodec::default();
        let mut sizes = Vec::new();
        for record in &ticks[..100] {
            let held: Vec<Op> =
                record.ops.iter().filter(|op| matches!(op, Op::Input { id: NetId(1), .. })).cloned().collect();
            let stored = codec.pack(&TickRecord { tick: record.tick, ops: held, hash: None });
            let StoredOp::Inputs(run) = &stored.ops[0] else { panic!("a run") };
            sizes.push(run.len());
        }
        assert!(sizes[4..].iter().all(|&n| n == 2 || n == 3), "{sizes:?}");
    }

    /// Differences at the ends of the u32 range (a hostile file) wrap instead of overflowing.
    #[test]
    fn hostile_input_runs_are_errors_or_values_never_panics() {
        let run = |bytes: Vec<u8>| {
            let mut codec = InputCodec::default();
            codec.unpack(StoredTick { tick: 1, ops: vec![StoredOp::Inputs(bytes)], hash: None })
        };
        // Id 1, ack +1, then a view tick difference of u32::MAX (zigzag): wraps.
        let wrapped = run(vec![0x02, ACK | VIEW, 0x02, 0x01, 0xFE, 0xFF, 0xFF, 0xFF, 0x0F, 0x00]).unwrap();
        assert!(matches!(&wrapped.ops[0], Op::Input { id: NetId(1), .. }));
        // A varint over 32 bits, a cut run, an unknown flag, an unknown view tag.
        assert!(run(vec![0x02, ACK, 0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]).is_err());
        assert!(run(vec![0x02, ACK]).is_err());
        assert!(run(vec![0x02, 0x80]).is_err());
        assert!(run(vec![0x02, VIEW, 0x07]).is_err());
        for (a, b) in [(0u32, u32::MAX), (u32::MAX, 0), (5, 3), (3, 5), (1 << 31, 0)] {
            assert_eq!(undiff(b, diff(a, b) as u32), a);
        }
        // The same run inside a file, through the reader the fuzz target drives.
        let mut bytes = file_start(&header());
        let hostile = vec![0x02, ACK | VIEW, 0x02, 0x01, 0xFE, 0xFF, 0xFF, 0xFF, 0x0F, 0x00, 0x04, 0x80];
        frame(&StoredTick { tick: 1, ops: vec![StoredOp::Inputs(hostile)], hash: None }, &mut bytes);
        let file = parse(&bytes).unwrap();
        assert!(matches!(&file.tail, TailStatus::Corrupt { why, .. } if why.contains("flag")), "{:?}", file.tail);
    }

    #[test]
    fn round_trip() {
        let file = parse(&sample()).unwrap();
        assert_eq!(file.header, header());
        assert_eq!(file.records.len(), 10);
        assert_eq!(file.records[9].tick, 10);
        assert_eq!(file.tail, TailStatus::Clean);
    }

    #[test]
    fn a_truncated_file_plays_up_to_its_last_whole_record() {
        let bytes = sample();
        for cut in [bytes.len() - 1, bytes.len() - 5, bytes.len() - 20] {
            let file = parse(&bytes[..cut]).unwrap();
            assert_eq!(file.records.len(), 9, "cut at {cut}");
            assert!(matches!(file.tail, TailStatus::Truncated { .. }));
        }
    }

    #[test]
    fn a_corrupted_record_is_reported_and_earlier_ones_kept() {
        let mut bytes = sample();
        let last = bytes.len() - 3;
        bytes[last] ^= 0xff;
        let file = parse(&bytes).unwrap();
        assert_eq!(file.records.len(), 9);
        assert!(matches!(&file.tail, TailStatus::Corrupt { why, .. } if why.contains("checksum")));
    }

    #[test]
    fn other_versions_and_other_files_get_clear_errors() {
        let mut bytes = sample();
        bytes[8] = 99;
        let error = parse(&bytes).unwrap_err();
        assert!(matches!(error, ReplayError::Version { found: 99 }));
        assert!(error.to_string().contains("not supported"));
        assert!(matches!(parse(b"hello world, not a replay"), Err(ReplayError::Magic)));
    }
}
