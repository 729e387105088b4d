//! The operations a room answers for its operator ([`RoomOp`]), and what a room reports about
//! itself. The admin API maps its requests to these; the room knows nothing of HTTP or JSON
//! bodies (its report is plain data that the API serializes).

use serde::Serialize;
use shared::snapshot::NetId;

/// Longest operator message (notice, kick or close reason), bytes.
pub const MAX_MESSAGE_BYTES: usize = 200;

/// An operator's request to one room (`SimInput::Admin`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoomOp {
    /// Report the room's players, spectators and figures.
    Inspect,
    /// Remove a player (who cannot come back to the room) with a message.
    Kick { player: NetId, message: String },
    /// Close every connection from a banned address (an IPv6 /64).
    KickAddress { ip: std::net::IpAddr },
    /// Close the room: everyone leaves with the message, the replay is finished.
    Close { message: String },
    /// A notice shown to everyone in the room.
    Notice { text: String },
    /// Set the room's server bots.
    SetBots { bots: u16 },
}

/// A room's answer.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(untagged)]
pub enum RoomAnswer {
    Detail(Box<RoomDetail>),
    Done { done: String },
}

/// A room as the operator sees it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct RoomDetail {
    pub code: String,
    pub name: String,
    pub map: String,
    pub public: bool,
    pub locked: bool,
    pub permanent: bool,
    /// A recorded match being watched.
    pub replay: bool,
    pub tick: u32,
    /// 99th percentile of the room's tick time since it opened, milliseconds.
    pub tick_p99_ms: f64,
    pub bots: u16,
    pub max_players: u16,
    pub players: Vec<PlayerDetail>,
    pub spectators: Vec<SpectatorDetail>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PlayerDetail {
    pub id: u32,
    pub name: String,
    pub host: bool,
    pub ip: Option<String>,
    /// Round trip of the server's WebSocket pings, milliseconds (`None` before the first).
    pub rtt_ms: Option<f64>,
    /// What the server sends this player, bytes per second (last two seconds).
    pub bytes_per_second: u32,
    pub score: u16,
    pub kills: u16,
    pub deaths: u16,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SpectatorDetail {
    pub ip: Option<String>,
    pub rtt_ms: Option<f64>,
    pub bytes_per_second: u32,
}

/// An operator's text made safe to show: control characters and bidi overrides dropped, cut to
/// [`MAX_MESSAGE_BYTES`]; `None` when nothing is left.
pub fn clean_message(raw: &str) -> Option<String> {
    shared::protocol::sanitize_chat(raw).map(|text| {
        let mut end = text.len().min(MAX_MESSAGE_BYTES);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text[..end].to_string()
    })
}

/// `rtt_us` as milliseconds, `None` when not measured yet.
pub fn rtt_ms(rtt_us: u32) -> Option<f64> {
    (rtt_us != 0).then(|| f64::from(rtt_us) / 1000.0)
}
