//! Match replays: the recorder the room feeds, the file format, and re-simulation (`verify`,
//! `info`) through the same `World` the room runs.
//!
//! A replay is the match's configuration, map and seed plus, per tick, the operations the room
//! applied to the world (joins, resumes, inputs, leaves, chat) and a state hash every
//! [`HASH_EVERY`] ticks. Because `World` is deterministic, replaying the operations reproduces
//! the match bit for bit; the hashes prove it. See `format.rs` for the byte layout.

pub mod erase;
pub mod format;
mod packing;
pub mod record;
pub mod recorder;
pub mod retention;
pub mod sim;

pub use format::{Op, ReplayHeader, TailStatus, TickRecord};
pub use recorder::Recorder;
pub use sim::{Divergence, ReplayInfo, Resim, info, verify};

/// A state hash is stored every this many ticks (one second at 60 Hz).
pub const HASH_EVERY: u32 = 60;
