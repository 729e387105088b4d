//! What a finished round hands to storage, and who its players are: the data the room makes and
//! the writer takes ([`super::writer`]), with no database in sight, so the room's floor can
//! produce it and nothing on the tick's path waits for a disk or a socket.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

/// Hex digits of a public player id (80 bits of a SHA-256).
pub const PLAYER_ID_HEX: usize = 20;

/// A guest's public id: a hash of its secret (the secret itself is never stored or shown).
pub fn guest_player_id(secret: &[u8]) -> String {
    player_id(&[b"guest", secret])
}

/// A join token's player: its `sub`, scoped by its issuer (two backends' "42" are two players).
pub fn token_player_id(issuer: Option<&str>, subject: &str) -> String {
    player_id(&[b"token", issuer.unwrap_or("").as_bytes(), subject.as_bytes()])
}

fn player_id(parts: &[&[u8]]) -> String {
    let mut hash = Sha256::new();
    hash.update(b"arena player id v1");
    for part in parts {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part);
    }
    let digest = hash.finalize();
    let mut hex = String::with_capacity(PLAYER_ID_HEX);
    for byte in &digest[..PLAYER_ID_HEX / 2] {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// Whether `text` has the shape of a public player id (for the API's paths).
pub fn is_player_id(text: &str) -> bool {
    text.len() == PLAYER_ID_HEX && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether `text` has the shape of a round id (32 lowercase hex digits).
pub fn is_round_id(text: &str) -> bool {
    text.len() == 32 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// One player's line in a stored round.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordedPlayer {
    /// The public id; `None` for bots and anonymous clients (listed, never rated).
    pub player: Option<String>,
    pub name: String,
    pub place: u16,
    pub bot: bool,
    pub left: bool,
    pub score: u16,
    pub kills: u16,
    pub deaths: u16,
    pub orbs: u16,
    pub shots: u32,
    pub hits: u32,
    /// How long they were in the round (a held seat counts: a reconnect is no leave).
    pub seconds_played: u32,
    /// Their entity's id in the round's replay (what an erasure rewrites there); absent in
    /// rounds spooled by older servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_id: Option<u32>,
}

/// A finished round, as the writer stores it (and as the spool file keeps it, one JSON line
/// each, until the database has it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoundRecord {
    /// Unique across servers and restarts; storing the same id twice counts it once.
    pub round_id: String,
    /// The server's name (`--instance` in a fleet, else its configured name).
    pub server: String,
    pub room: String,
    pub round: u32,
    pub map: String,
    pub ended_unix_ms: u64,
    /// "time" or "score".
    pub why: String,
    pub seconds: u32,
    /// The round's replay file name, when it was recorded.
    pub replay: Option<String>,
    /// Best first, leavers last.
    pub players: Vec<RecordedPlayer>,
}

/// Where rooms hand finished rounds: a bounded queue to the writer task. A full queue (the
/// database far behind, and the spool too) drops the round with an error in the log rather
/// than stall a tick.
#[derive(Clone, Debug)]
pub struct ResultsSink {
    sender: mpsc::Sender<Offer>,
}

/// A round on its way to the writer, the flag the writer sets once it is on disk, and where it
/// puts the rating changes once they are committed.
#[derive(Debug)]
pub struct Offer {
    pub record: RoundRecord,
    pub saved: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pub rated: Rated,
}

/// One rated player's change, as committed: conservative ratings and the board place after.
#[derive(Clone, Debug, PartialEq)]
pub struct RatedPlayer {
    pub player: String,
    pub before: f64,
    pub after: f64,
    pub rank: Option<u64>,
}

/// Where the writer leaves a round's committed rating changes (the room polls it).
pub type Rated = std::sync::Arc<std::sync::OnceLock<Vec<RatedPlayer>>>;

/// Rounds the queue holds before rooms start dropping them.
pub const RESULTS_QUEUE: usize = 4096;

impl ResultsSink {
    /// A sink and the writer's end of it.
    pub fn new() -> (ResultsSink, mpsc::Receiver<Offer>) {
        let (sender, receiver) = mpsc::channel(RESULTS_QUEUE);
        (ResultsSink { sender }, receiver)
    }

    /// Hands `record` over without waiting: the flag that says when it is on disk, or `None`
    /// when the queue is full or the writer gone.
    pub fn offer(&self, record: RoundRecord) -> Option<(std::sync::Arc<std::sync::atomic::AtomicBool>, Rated)> {
        let saved = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let rated = Rated::default();
        self.sender.try_send(Offer { record, saved: saved.clone(), rated: rated.clone() }).ok().map(|()| (saved, rated))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_ids_are_hashes_scoped_by_kind_and_issuer() {
        let secret = [7u8; 16];
        let guest = guest_player_id(&secret);
        assert!(is_player_id(&guest), "{guest}");
        assert_eq!(guest, guest_player_id(&secret), "stable: a reload is the same player");
        assert_ne!(guest, guest_player_id(&[8u8; 16]));
        assert_ne!(guest, "07".repeat(10), "never the secret");
        assert_ne!(token_player_id(Some("a"), "42"), token_player_id(Some("b"), "42"), "scoped by issuer");
        assert_ne!(token_player_id(None, "42"), guest_player_id(b"42"));
        assert!(!is_player_id("'; drop table players; --") && !is_round_id("../etc/passwd"));
    }
}
