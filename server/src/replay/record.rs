//! What a replay records: the operations a room applied to its world ([`Op`]) and, per tick,
//! those operations with the state hash after the step ([`TickRecord`]). The file layout is
//! `format.rs`; inputs are packed by `packing.rs`.

use serde::{Deserialize, Serialize};
use shared::protocol::{DisconnectReason, InputCmd};
use shared::snapshot::NetId;

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
