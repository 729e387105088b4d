//! The replay file format (documented in `docs` of this module and in README.md):
//!
//! ```text
//! magic       8 bytes  "ARENARPL"
//! version     u16 LE   FORMAT_VERSION
//! then frames, each:
//!   length    u32 LE   payload bytes (at most MAX_FRAME)
//!   crc32     u32 LE   CRC-32 (IEEE) of the payload
//!   payload   bincode (standard config, serde): the first frame is a ReplayHeader, every other
//!             frame (format 6) the ticks of up to a tenth of a second, each: its number as the
//!             difference from the previous tick stored (the first from 0), its operations with
//!             consecutive inputs packed into one `Inputs` run (below), its hash.
//!             Format 5: one tick a frame, its number whole; formats 3 and 4: a TickRecord.
//! ```
//!
//! An `Inputs` run holds inputs in the order the room applied them, each written against the
//! same player's previous input (its last one in the file, across ticks). Format 6:
//!
//! ```text
//! id        varint, zigzag difference (wrapping u32) from the previous input's id in the run
//!           (first: from 0)
//! controls  u8: a 2-bit code each for move_x (bits 0–1), move_y (2–3) and aim (4–5): 0 the
//!           predicted step, 1 one step above it, 2 one below, 3 a value follows · 64 fire
//!           · 128 a second byte follows
//! [more]    u8: 1 seq is not previous + 1 · 2 ack changed · 4 view is not the previous view
//!           moved along with ack · others reserved (an error)
//! then: seq varint · ack as a varint zigzag difference · each control coded 3, in order, as a
//! varint: (zigzag step difference from the prediction) << 1, or, for a float that is not on a
//! step, (its bits XOR the predicted float's bits) << 1 | 1 · view: 0 (none) or 1, tick as a
//! varint zigzag difference from ack, frac u8
//! ```
//!
//! The server records controls quantized (`InputCmd::quantized`: the stick in 1/127 steps, the
//! aim in 65,536 steps a turn), so a control is a step. Each is predicted as held (its last step)
//! or along the line through its last two steps (around the turn for the aim), whichever came
//! closer for its last value; nothing on the wire says which. Floats that are not on a step
//! (files repacked from older formats) are predicted the same way in `f32` arithmetic. A
//! player's first input is written against an all-zero input. Held keys and a still mouse, or
//! steady turning, cost two bytes an input.
//!
//! Format 5 wrote one flags byte (1 seq, 2 ack, 4 move_x, 8 move_y, 16 aim not as predicted,
//! 32 fire, 64 view) and each mispredicted float as the varint of its bits XOR the predicted
//! float's bits; the reader still takes it.
//!
//! Frames are appended as the match runs; a crash can only cut the file inside the last frame.
//! The reader stops at the first frame that is short or fails its checksum and says so
//! ([`TailStatus`]), so a truncated or corrupted file still plays up to its last good record.

use std::io::Read;

use serde::{Deserialize, Serialize};
use shared::map::MapDef;

use super::packing::{InputCodec, StoredTick};
pub use super::record::{Op, TickRecord};
use thiserror::Error;

/// File magic.
pub const MAGIC: &[u8; 8] = b"ARENARPL";
/// Bumped whenever the layout, the operations or the rules change in a way that breaks old
/// replays. Readers refuse other versions with [`ReplayError::Version`]. 2: a player with no
/// input queued holds still instead of repeating its last input, and a backlog is applied two
/// inputs per tick. 3: inputs carry the moment the player saw (lag compensation) and the header
/// the window. 4: `Away`/`Back`. 5: inputs packed against each player's previous one. 6: inputs'
/// controls packed as steps, several ticks to a frame.
pub const FORMAT_VERSION: u16 = 6;
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

/// Packs records into frames in the current format: inputs against each player's previous
/// one, several ticks to a frame (at most [`FrameWriter::ticks`] apart: a tenth of a second of
/// the match that a crash can lose besides what the writer had not flushed).
pub struct FrameWriter {
    codec: InputCodec,
    pending: Vec<StoredTick>,
    first_tick: u32,
    ticks: u32,
}

impl FrameWriter {
    /// A writer for a match at `tick_hz`: a frame spans a tenth of a second of ticks.
    pub fn new(tick_hz: u16) -> FrameWriter {
        FrameWriter {
            codec: InputCodec::new(FORMAT_VERSION),
            pending: Vec::new(),
            first_tick: 0,
            ticks: u32::from(tick_hz / 10).max(1),
        }
    }

    /// How many ticks a frame spans at most.
    pub fn ticks(&self) -> u32 {
        self.ticks
    }

    /// Packs `record` (ticks in increasing order) into the frame being built. The frame must
    /// have been written if it was [`due`] at an earlier tick.
    ///
    /// [`due`]: FrameWriter::due
    pub fn push(&mut self, record: &TickRecord) {
        if self.pending.is_empty() {
            self.first_tick = record.tick;
        }
        self.pending.push(self.codec.pack(record));
    }

    /// Whether the frame being built must be written before the match goes past `tick` (it
    /// spans [`FrameWriter::ticks`] ticks from its first).
    pub fn due(&self, tick: u32) -> bool {
        !self.pending.is_empty() && tick.wrapping_sub(self.first_tick) >= self.ticks - 1
    }

    /// Appends the frame being built, if any, to `out`.
    pub fn flush(&mut self, out: &mut Vec<u8>) {
        if !self.pending.is_empty() {
            frame(&self.pending, out);
            self.pending.clear();
        }
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
    let mut frames = FrameWriter::new(header.tick_hz);
    for record in records {
        // Written before the match goes past the tick before this record, as the recorder would.
        if frames.due(record.tick.wrapping_sub(1)) {
            frames.flush(&mut bytes);
        }
        frames.push(record);
    }
    frames.flush(&mut bytes);
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
    let mut codec = InputCodec::new(version);
    let tail = loop {
        let frame_start = offset as u64;
        match next_frame(bytes, &mut offset) {
            FrameResult::End => break TailStatus::Clean,
            FrameResult::Truncated => break TailStatus::Truncated { offset: frame_start },
            FrameResult::Bad(why) => break TailStatus::Corrupt { offset: frame_start, why },
            FrameResult::Ok(payload) => {
                // A frame's records count only if all of them read.
                let read = match version {
                    6.. => decode::<Vec<StoredTick>>(payload)
                        .and_then(|stored| stored.into_iter().map(|tick| codec.unpack(tick)).collect()),
                    5 => decode::<StoredTick>(payload).and_then(|stored| codec.unpack(stored)).map(|r| vec![r]),
                    _ => decode::<TickRecord>(payload).map(|r| vec![r]),
                };
                match read {
                    Ok(read) => records.extend(read),
                    Err(why) => break TailStatus::Corrupt { offset: frame_start, why },
                }
            }
        }
    };
    Ok(ReplayFile { header, records, tail, bytes: bytes.len() as u64 })
}

/// How many whole frames `bytes` (a replay file) holds, its header's included.
#[cfg(test)]
pub(crate) fn frame_count(bytes: &[u8]) -> usize {
    let (mut offset, mut n) = (10, 0);
    while let FrameResult::Ok(_) = next_frame(bytes, &mut offset) {
        n += 1;
    }
    n
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

/// A header for tests: the open 1,000-unit map at 60 Hz.
#[cfg(test)]
pub(crate) fn test_header() -> ReplayHeader {
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

#[cfg(test)]
mod tests {
    use shared::protocol::InputCmd;
    use shared::snapshot::NetId;

    use super::*;
    use crate::replay::packing::StoredOp;

    fn header() -> ReplayHeader {
        test_header()
    }

    fn sample() -> Vec<u8> {
        let mut bytes = file_start(&header());
        let mut frames = FrameWriter::new(60);
        for tick in 1..=10 {
            let ops = vec![Op::Chat { id: NetId(tick), text: format!("line {tick}") }];
            frames.push(&TickRecord { tick, ops, hash: Some(u64::from(tick)) });
            frames.flush(&mut bytes);
        }
        bytes
    }

    /// A triangle wave in [-1, 1] with period 1 (a stick swept back and forth; no `libm`, so the
    /// frozen file below is the same on every platform).
    fn triangle(x: f32) -> f32 {
        4.0 * ((x - x.floor()) - 0.5).abs() - 1.0
    }

    /// Four players over 200 ticks: held keys, everything moving (odd floats, off-step floats,
    /// seq jumps, views coming and going), an idle one; and a quantized steady turner.
    fn busy_ticks() -> Vec<TickRecord> {
        use shared::protocol::ViewTime;
        use shared::tick::Tick;
        let mut ticks = Vec::new();
        let mut seq = [0u32; 4];
        for tick in 1..=200u32 {
            let mut ops = Vec::new();
            if tick == 1 {
                for id in 1..=4 {
                    ops.push(Op::Join { id: NetId(id), name: format!("p{id}"), bot: false });
                }
            }
            for id in 1..=4u32 {
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
                    }
                    .quantized(),
                    // Everything moving, odd floats included.
                    2 => InputCmd {
                        seq: seq[i],
                        ack: Tick(tick.saturating_sub(3)),
                        move_x: triangle(tick as f32 / 37.0) * 0.999,
                        move_y: if tick == 77 { -0.0 } else { triangle(tick as f32 / 23.0 + 0.1) },
                        aim: if tick == 90 { f32::MAX } else { tick as f32 * -0.3 },
                        fire: tick % 3 == 0,
                        view: (tick % 7 != 0).then(|| ViewTime { tick: Tick(tick / 3), frac: (tick * 37) as u8 }),
                    },
                    // Steady turning, as the server records it (quantized).
                    3 => {
                        let turn = tick as f32 / 120.0;
                        InputCmd {
                            seq: seq[i],
                            move_x: triangle(turn),
                            move_y: triangle(turn + 0.25),
                            aim: turn * std::f32::consts::TAU,
                            ..InputCmd::default()
                        }
                        .quantized()
                    }
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
        ticks
    }

    /// A format 5 file of `records`, as the previous server wrote it.
    fn format5(records: &[TickRecord]) -> Vec<u8> {
        let mut bytes = file_start(&header());
        bytes[8..10].copy_from_slice(&5u16.to_le_bytes());
        let mut codec = InputCodec::new(5);
        for record in records {
            frame(&codec.pack(record), &mut bytes);
        }
        bytes
    }

    /// The packed bytes of player `id`'s inputs in each of `ticks`, alone.
    fn run_sizes(version: u16, ticks: &[TickRecord], id: u32) -> Vec<usize> {
        let mut codec = InputCodec::new(version);
        let mut sizes = Vec::new();
        for record in ticks {
            let alone: Vec<Op> =
                record.ops.iter().filter(|op| matches!(op, Op::Input { id: i, .. } if i.0 == id)).cloned().collect();
            let stored = codec.pack(&TickRecord { tick: record.tick, ops: alone, hash: None });
            let StoredOp::Inputs(run) = &stored.ops[0] else { panic!("a run") };
            sizes.push(run.len());
        }
        sizes
    }

    /// Inputs of every shape come back exactly (bit for bit), interleaved with other operations
    /// and across ticks and frames, in formats 6 and 5.
    #[test]
    fn packed_inputs_round_trip_exactly_in_formats_6_and_5() {
        let ticks = busy_ticks();
        for (version, bytes) in [(6, write_all(&header(), &ticks)), (5, format5(&ticks))] {
            let file = parse(&bytes).unwrap();
            assert_eq!(file.tail, TailStatus::Clean, "format {version}");
            assert_eq!(file.records, ticks, "format {version}: every input comes back bit for bit");
        }
        // Format 6 puts six ticks (a tenth of a second at 60 Hz) in a frame, and no more even
        // when records are sparse (ticks 1, 2, 60, 61, 65, 66, 67: frames 1–2, 60–65, 66–67).
        assert_eq!(frame_count(&write_all(&header(), &ticks)) - 1, 200_usize.div_ceil(6));
        let sparse: Vec<TickRecord> = [1, 2, 60, 61, 65, 66, 67]
            .into_iter()
            .map(|tick| TickRecord { tick, ops: vec![], hash: Some(u64::from(tick)) })
            .collect();
        let bytes = write_all(&header(), &sparse);
        assert_eq!(frame_count(&bytes) - 1, 3);
        assert_eq!(parse(&bytes).unwrap().records, sparse);
    }

    /// A format 5 file written by the format 5 writer (`busy_ticks`, frozen in the repository
    /// so that the writer kept for tests and the reader cannot drift apart unnoticed) reads
    /// back exactly. `ARENA_WRITE_FIXTURES=1` rewrites it.
    #[test]
    fn the_frozen_format_5_file_reads_exactly() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/format5-busy.arenareplay");
        let ticks = busy_ticks();
        if std::env::var_os("ARENA_WRITE_FIXTURES").is_some() {
            std::fs::write(&path, format5(&ticks)).unwrap();
        }
        let bytes = std::fs::read(&path).expect("the frozen format 5 file");
        assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]), 5);
        let file = parse(&bytes).unwrap();
        assert_eq!(file.tail, TailStatus::Clean);
        assert_eq!(file.records, ticks);
    }

    /// Held keys cost two bytes an input (id, controls), three when the ack moved; quantized
    /// steady turning costs two or three; the same turning in format 5 cost seven or more.
    #[test]
    fn held_controls_and_steady_turning_cost_two_bytes() {
        let ticks = busy_ticks();
        // The held-keys player, once its view sits a steady 4 ticks behind its ack (from tick 4):
        // the ack moves every other tick, and format 6 spends a second byte and its difference.
        let held = run_sizes(6, &ticks[..100], 1);
        assert!(held[4..].iter().all(|&n| n == 2 || n == 4), "{held:?}");
        assert!(held[4..].iter().filter(|&&n| n == 2).count() >= 45, "{held:?}");
        let turning = run_sizes(6, &ticks, 3);
        let average = turning[3..].iter().sum::<usize>() as f64 / (turning.len() - 3) as f64;
        assert!(average <= 2.2, "{average} bytes: {turning:?}");
        let before = run_sizes(5, &ticks, 3);
        let average5 = before[3..].iter().sum::<usize>() as f64 / (before.len() - 3) as f64;
        assert!(average5 >= 6.0, "format 5: {average5} bytes: {before:?}");
    }

    /// Differences at the ends of the u32 range (a hostile file) wrap instead of overflowing;
    /// malformed runs are errors, never panics.
    #[test]
    fn hostile_input_runs_are_errors_or_values_never_panics() {
        use super::super::packing::{ACK, MORE6, VIEW, diff, undiff};
        let run = |version: u16, bytes: Vec<u8>| {
            let mut codec = InputCodec::new(version);
            codec.unpack(StoredTick { tick: 1, ops: vec![StoredOp::Inputs(bytes)], hash: None })
        };
        // Format 5: id 1, ack +1, then a view tick difference of u32::MAX (zigzag): wraps.
        let wrapped = run(5, vec![0x02, ACK | VIEW, 0x02, 0x01, 0xFE, 0xFF, 0xFF, 0xFF, 0x0F, 0x00]).unwrap();
        assert!(matches!(&wrapped.ops[0], Op::Input { id: NetId(1), .. }));
        // A varint over 32 bits, a cut run, an unknown flag, an unknown view tag.
        assert!(run(5, vec![0x02, ACK, 0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]).is_err());
        assert!(run(5, vec![0x02, ACK]).is_err());
        assert!(run(5, vec![0x02, 0x80]).is_err());
        assert!(run(5, vec![0x02, VIEW, 0x07]).is_err());
        // Format 6: the same wrap through the second byte (ack 2, view 4).
        let wrapped = run(6, vec![0x02, MORE6, 2 | 4, 0x02, 0x01, 0xFE, 0xFF, 0xFF, 0xFF, 0x0F, 0x00]).unwrap();
        assert!(matches!(&wrapped.ops[0], Op::Input { id: NetId(1), .. }));
        // Aim step differences of half a turn (-32,768) and of eight turns (2^19) wrap around it.
        let far = run(6, vec![0x02, 3 << 4, 0xFE, 0xFF, 0x07]).unwrap();
        let Op::Input { cmd, .. } = &far.ops[0] else { panic!("an input") };
        assert!(cmd.aim.is_finite() && (0.0..std::f32::consts::TAU).contains(&cmd.aim), "{cmd:?}");
        let far = run(6, vec![0x02, 3 << 4, 0x80, 0x80, 0x80, 0x01]).unwrap();
        let Op::Input { cmd, .. } = &far.ops[0] else { panic!("an input") };
        assert!(cmd.aim.is_finite() && (0.0..std::f32::consts::TAU).contains(&cmd.aim), "{cmd:?}");
        for hostile in [
            vec![0x02, 0x03, 0x80, 0x04], // the stick 256 steps up: out of range
            vec![0x02, 0x01, 0x02],       // 2 after the id is a new id with no byte
            vec![0x02, MORE6],            // the second byte missing
            vec![0x02, MORE6, 0x00],      // an empty second byte
            vec![0x02, MORE6, 0x08],      // a reserved flag
            vec![0x02, 0x03, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], // a float over 32 bits
            vec![0x02, 0x03, 0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], // a huge step
            vec![0x02, MORE6, 4, 0x07],   // an unknown view tag
        ] {
            assert!(run(6, hostile.clone()).is_err(), "{hostile:02x?}");
        }
        for (a, b) in [(0u32, u32::MAX), (u32::MAX, 0), (5, 3), (3, 5), (1 << 31, 0)] {
            assert_eq!(undiff(b, diff(a, b) as u32), a);
        }
        // A bad run inside a file, through the reader the fuzz target drives: the frame's
        // earlier ticks are dropped with it, earlier frames kept.
        let mut bytes = file_start(&header());
        let mut frames = FrameWriter::new(60);
        frames.push(&TickRecord { tick: 1, ops: vec![], hash: Some(1) });
        frames.flush(&mut bytes);
        let hostile = vec![0x02, MORE6, 0x08];
        frame(
            &vec![
                StoredTick { tick: 1, ops: vec![], hash: Some(2) },
                StoredTick { tick: 1, ops: vec![StoredOp::Inputs(hostile)], hash: None },
            ],
            &mut bytes,
        );
        let file = parse(&bytes).unwrap();
        assert_eq!(file.records.len(), 1);
        assert!(matches!(&file.tail, TailStatus::Corrupt { why, .. } if why.contains("flag")), "{:?}", file.tail);
    }

    /// NaNs with payloads, -0.0 and infinities (from a hostile or old file) come back bit for
    /// bit through the float path.
    #[test]
    fn odd_floats_round_trip_bit_for_bit() {
        let odd = [f32::from_bits(0x7fc0_1234), -0.0, f32::INFINITY, f32::from_bits(0xffa0_0001), 1e-40, 0.5];
        let ops: Vec<Op> = (0..odd.len())
            .map(|i| {
                let (a, b, c) = (odd[i], odd[(i + 1) % odd.len()], odd[(i + 2) % odd.len()]);
                Op::Input {
                    id: NetId(1),
                    cmd: InputCmd { seq: i as u32, move_x: a, move_y: b, aim: c, ..InputCmd::default() },
                }
            })
            .collect();
        let records = vec![TickRecord { tick: 1, ops, hash: None }];
        let file = parse(&write_all(&header(), &records)).unwrap();
        let bits = |records: &[TickRecord]| -> Vec<[u32; 3]> {
            records[0]
                .ops
                .iter()
                .map(|op| match op {
                    Op::Input { cmd, .. } => [cmd.move_x.to_bits(), cmd.move_y.to_bits(), cmd.aim.to_bits()],
                    other => panic!("{other:?}"),
                })
                .collect()
        };
        assert_eq!(bits(&file.records), bits(&records));
    }

    /// `replay repack` of an older file: floats that are not on a step come back bit for bit.
    #[test]
    fn repacked_older_files_keep_their_floats() {
        let ticks = busy_ticks();
        let file = parse(&format5(&ticks)).unwrap();
        let again = parse(&write_all(&file.header, &file.records)).unwrap();
        assert_eq!(again.records, ticks);
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
