//! The replay file format (documented in `docs` of this module and in README.md):
//!
//! ```text
//! magic       8 bytes  "ARENARPL"
//! version     u16 LE   FORMAT_VERSION
//! then frames, each:
//!   length    u32 LE   payload bytes (at most MAX_FRAME)
//!   crc32     u32 LE   CRC-32 (IEEE) of the payload
//!   payload   bincode (standard config, serde): the first frame is a ReplayHeader, every other
//!             frame a TickRecord
//! ```
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
/// the window.
pub const FORMAT_VERSION: u16 = 4;
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
    let tail = loop {
        let frame_start = offset as u64;
        match next_frame(bytes, &mut offset) {
            FrameResult::End => break TailStatus::Clean,
            FrameResult::Truncated => break TailStatus::Truncated { offset: frame_start },
            FrameResult::Bad(why) => break TailStatus::Corrupt { offset: frame_start, why },
            FrameResult::Ok(payload) => match decode::<TickRecord>(payload) {
                Ok(record) => records.push(record),
                Err(why) => break TailStatus::Corrupt { offset: frame_start, why },
            },
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
        for tick in 1..=10 {
            let ops = vec![Op::Chat { id: NetId(tick), text: format!("line {tick}") }];
            frame(&TickRecord { tick, ops, hash: Some(u64::from(tick)) }, &mut bytes);
        }
        bytes
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
