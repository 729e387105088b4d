//! Rooms on the wire: codes, the settings a room is created with, host commands, and what a
//! client is told about the room it is in. The HTTP API (`/api/rooms`) uses the same types as
//! JSON.

use serde::{Deserialize, Serialize};

use crate::snapshot::NetId;
use crate::text::{strip_controls, truncate_utf8};

/// Letters a room code is made of: A–Z without the look-alikes I and O (no digits at all, so
/// no 0/O or 1/I/L confusion either).
pub const ROOM_CODE_ALPHABET: &[u8; 24] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
/// Letters in a room code. 24⁴ = 331,776 codes.
pub const ROOM_CODE_LEN: usize = 4;
/// Longest room name in bytes (UTF-8), after sanitizing.
pub const MAX_ROOM_NAME_BYTES: usize = 32;
/// Most server bots a room may have.
pub const MAX_ROOM_BOTS: u16 = 32;
/// Longest map id accepted in a request.
pub const MAX_MAP_ID_BYTES: usize = 32;
/// Bytes of a host key.
pub const HOST_KEY_BYTES: usize = 16;

/// A room's secret host key (128 random bits). Whoever presents it at join is the host.
pub type HostKey = [u8; HOST_KEY_BYTES];

/// A valid room code: [`ROOM_CODE_LEN`] letters of [`ROOM_CODE_ALPHABET`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomCode([u8; ROOM_CODE_LEN]);

impl RoomCode {
    /// Parses a code typed by a person: surrounding spaces are ignored and lower case is
    /// accepted. Anything else (wrong length, a letter outside the alphabet) is `None`.
    pub fn parse(text: &str) -> Option<RoomCode> {
        let text = text.trim();
        if text.len() != ROOM_CODE_LEN {
            return None;
        }
        let mut code = [0u8; ROOM_CODE_LEN];
        for (slot, byte) in code.iter_mut().zip(text.bytes()) {
            let upper = byte.to_ascii_uppercase();
            if !ROOM_CODE_ALPHABET.contains(&upper) {
                return None;
            }
            *slot = upper;
        }
        Some(RoomCode(code))
    }

    /// The code whose letters are `indices` into [`ROOM_CODE_ALPHABET`] (each taken modulo its
    /// length), for generating codes from random numbers.
    pub fn from_indices(indices: [u8; ROOM_CODE_LEN]) -> RoomCode {
        RoomCode(indices.map(|i| ROOM_CODE_ALPHABET[usize::from(i) % ROOM_CODE_ALPHABET.len()]))
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("codes are ASCII letters")
    }
}

impl std::fmt::Display for RoomCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for RoomCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for RoomCode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        RoomCode::parse(&text).ok_or_else(|| serde::de::Error::custom("not a room code"))
    }
}

/// A round's default length.
pub const DEFAULT_ROUND_SECONDS: u32 = 300;
/// Shortest and longest round (0 is endless).
pub const MIN_ROUND_SECONDS: u32 = 5;
pub const MAX_ROUND_SECONDS: u32 = 3600;

/// How a room's rounds end: after `seconds` (0: endless, the round never ends by time), or as
/// soon as a player reaches `score_limit`. A round's end shows the results, then a short
/// intermission, then a fresh round with the same players.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoundRules {
    pub seconds: u32,
    pub score_limit: Option<u16>,
}

impl Default for RoundRules {
    fn default() -> Self {
        RoundRules { seconds: DEFAULT_ROUND_SECONDS, score_limit: None }
    }
}

impl RoundRules {
    /// A room whose play never ends (the old behaviour).
    pub const ENDLESS: RoundRules = RoundRules { seconds: 0, score_limit: None };

    pub fn is_endless(&self) -> bool {
        self.seconds == 0 && self.score_limit.is_none()
    }

    /// The rules' bounds, as a message for the one who set them.
    pub fn check(&self) -> Result<(), String> {
        if self.seconds != 0 && !(MIN_ROUND_SECONDS..=MAX_ROUND_SECONDS).contains(&self.seconds) {
            return Err(format!(
                "rounds.seconds: 0 (endless) or {MIN_ROUND_SECONDS}..={MAX_ROUND_SECONDS}, got {}",
                self.seconds
            ));
        }
        if self.score_limit == Some(0) {
            return Err("rounds.score_limit: at least 1 (or none)".to_string());
        }
        Ok(())
    }
}

/// What a new room should be like; every field is optional (the server fills in defaults).
/// The same object is the body of `POST /api/rooms`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoomSettings {
    /// Shown in the lobby; sanitized like player names, up to [`MAX_ROOM_NAME_BYTES`].
    pub name: Option<String>,
    /// Listed in the lobby (default) or reachable only by code.
    pub public: Option<bool>,
    /// A map id from the server's map list (`assets/maps/`).
    pub map: Option<String>,
    /// Server bots, 0..=[`MAX_ROOM_BOTS`].
    pub bots: Option<u16>,
    /// Human players at once; capped by the server's per-room limit.
    pub max_players: Option<u16>,
    /// How rounds end (the server's default: 5-minute rounds).
    pub rounds: Option<RoundRules>,
}

/// Which room a connection wants, in its hello.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RoomRequest {
    /// The fullest public room with space, or a new public room.
    QuickPlay,
    /// The room with this code (as typed; the server validates it).
    Join { code: String },
    /// A new room; the creator becomes its host.
    Create(RoomSettings),
    /// Watch the room with this code as a spectator (no player, no inputs).
    Watch { code: String },
}

/// Commands only the room's host may send. The room checks the sender's role and every value,
/// and announces each action in the room's notices.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HostCmd {
    /// New match: scores reset, a new replay file.
    Restart,
    /// New match on another map.
    SetMap { map: String },
    /// Server bots, 0..=[`MAX_ROOM_BOTS`].
    SetBots { bots: u16 },
    /// Removes a player, who cannot come back while the room lives.
    Kick { player: NetId },
    /// A locked room admits nobody new (players resuming after a drop still get back in).
    SetLocked { locked: bool },
    /// Listed in the lobby or not.
    SetPublic { public: bool },
    /// Makes another human player the host.
    Handover { player: NetId },
    /// How rounds end, from now on (the running round's clock counts from its start).
    SetRounds { rules: RoundRules },
}

/// The room a client is in, as that client may see it. Sent in the welcome and again
/// ([`crate::protocol::ServerMsg::Room`]) whenever it changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomInfo {
    pub code: RoomCode,
    pub name: String,
    pub public: bool,
    pub locked: bool,
    pub map_id: String,
    pub max_players: u16,
    pub bots: u16,
    /// The host's player, if a human holds the role.
    pub host: Option<NetId>,
    /// True for the one client that is the host.
    pub you_are_host: bool,
    /// The host key, sent only to the host (to keep in the browser for a reload).
    pub host_key: Option<HostKey>,
    /// Map ids the host may switch to.
    pub maps: Vec<String>,
    /// The room "Main" of a server: never closes.
    pub permanent: bool,
    /// How rounds end.
    pub rounds: RoundRules,
    /// The round being played (1 is the room's first).
    pub round: u32,
    /// The tick the running round ends at by time (`None`: no time limit, or between rounds).
    pub round_ends_at: Option<crate::tick::Tick>,
}

/// A room as the lobby lists it (`GET /api/rooms`, `GET /api/rooms/CODE`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSummary {
    pub code: RoomCode,
    pub name: String,
    pub map: String,
    /// Human players.
    pub players: u16,
    pub max_players: u16,
    pub bots: u16,
    pub spectators: u16,
    pub locked: bool,
    pub public: bool,
    pub created_unix_ms: u64,
}

/// `POST /api/rooms`'s answer (201).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedRoom {
    pub code: RoomCode,
    /// Lowercase hex of the [`HostKey`]: present it at join (in the hello) to be the host.
    pub host_key: String,
    pub room: RoomSummary,
}

/// Lowercase hex of a host key.
pub fn host_key_hex(key: &HostKey) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses [`host_key_hex`]'s output.
pub fn parse_host_key(hex: &str) -> Option<HostKey> {
    let hex = hex.trim();
    if hex.len() != HOST_KEY_BYTES * 2 || !hex.is_ascii() {
        return None;
    }
    let mut key = [0u8; HOST_KEY_BYTES];
    for (index, slot) in key.iter_mut().enumerate() {
        *slot = u8::from_str_radix(&hex[index * 2..index * 2 + 2], 16).ok()?;
    }
    Some(key)
}

/// Sanitizes a room name like a player name; empty becomes `fallback`.
pub fn sanitize_room_name(raw: &str, fallback: &str) -> String {
    let cleaned = truncate_utf8(&strip_controls(raw.trim()), MAX_ROOM_NAME_BYTES);
    let cleaned = cleaned.trim();
    if cleaned.is_empty() { fallback.to_string() } else { cleaned.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_parse_case_insensitively_and_refuse_look_alikes() {
        assert_eq!(RoomCode::parse(" abcd ").unwrap().as_str(), "ABCD");
        for bad in ["", "ABC", "ABCDE", "AB0D", "ABID", "ABOD", "AB D", "ÄBCD", "AB\u{0}D"] {
            assert_eq!(RoomCode::parse(bad), None, "{bad:?}");
        }
        assert!(!ROOM_CODE_ALPHABET.contains(&b'I') && !ROOM_CODE_ALPHABET.contains(&b'O'));
        let code = RoomCode::from_indices([0, 23, 24, 255]);
        assert_eq!(RoomCode::parse(code.as_str()), Some(code));
    }

    #[test]
    fn host_keys_round_trip_through_hex() {
        let key: HostKey = std::array::from_fn(|i| (i * 17) as u8);
        assert_eq!(parse_host_key(&host_key_hex(&key)), Some(key));
        assert_eq!(parse_host_key("zz"), None);
        assert_eq!(parse_host_key(&"é".repeat(16)), None);
    }

    #[test]
    fn room_names_are_sanitized() {
        assert_eq!(sanitize_room_name("  \u{202e}fun\n room ", "x"), "fun room");
        assert_eq!(sanitize_room_name("\u{7}", "Room ABCD"), "Room ABCD");
        assert!(sanitize_room_name(&"é".repeat(40), "x").len() <= MAX_ROOM_NAME_BYTES);
    }

    #[test]
    fn settings_refuse_unknown_fields() {
        assert!(serde_json::from_str::<RoomSettings>(r#"{"name":"a","color":"red"}"#).is_err());
        let settings: RoomSettings = serde_json::from_str(r#"{"public":false}"#).unwrap();
        assert_eq!(settings.public, Some(false));
    }
}
