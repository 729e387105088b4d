//! What a room shows the rest of the server: its published summary and figures ([`RoomPublic`]),
//! the server's drain that every room watches, and the random codes and host keys rooms get.

use std::sync::{Arc, Mutex};

use shared::room::{HOST_KEY_BYTES, HostKey, ROOM_CODE_LEN, RoomCode, RoomSummary};

use crate::stats::{RoomStats, unix_ms};

/// What a room publishes for everyone else to read (the lobby, the API, `/metrics`). Only the
/// room writes it; readers take the lock for a copy and never wait on the room itself.
#[derive(Debug)]
pub struct RoomPublic {
    pub code: RoomCode,
    pub permanent: bool,
    /// The room's task polls its players' sockets itself once attached (live rooms; the replay
    /// theater leaves them to their connection tasks). See `net::polled`.
    pub owns_sockets: bool,
    pub stats: Arc<RoomStats>,
    pub summary: Mutex<RoomSummary>,
}

impl RoomPublic {
    pub fn summary(&self) -> RoomSummary {
        self.summary.lock().expect("summary lock is never poisoned").clone()
    }
}

/// The server's drain (the first SIGTERM): no new rooms or joins, every room tells its players
/// the server restarts in N seconds and plays on until it is empty or the deadline passes.
#[derive(Debug, Default)]
pub struct Drain {
    /// Unix milliseconds of the deadline; 0 while not draining.
    deadline_unix_ms: std::sync::atomic::AtomicU64,
    /// Fires when the drain starts (wakes rooms that wait empty).
    pub started: tokio_util::sync::CancellationToken,
}

impl Drain {
    /// Starts draining with `seconds` to go (a second call changes nothing).
    pub fn start(&self, seconds: u64) {
        let deadline = unix_ms() + seconds.saturating_mul(1000);
        let _ = self.deadline_unix_ms.compare_exchange(
            0,
            deadline.max(1),
            std::sync::atomic::Ordering::SeqCst,
            std::sync::atomic::Ordering::SeqCst,
        );
        self.started.cancel();
    }

    pub fn is_draining(&self) -> bool {
        self.deadline_unix_ms.load(std::sync::atomic::Ordering::Relaxed) != 0
    }

    /// Time left before the deadline, when draining.
    pub fn remaining(&self) -> Option<std::time::Duration> {
        let deadline = self.deadline_unix_ms.load(std::sync::atomic::Ordering::Relaxed);
        (deadline != 0).then(|| std::time::Duration::from_millis(deadline.saturating_sub(unix_ms())))
    }
}

/// 128 bits from the operating system's generator.
pub fn random_host_key() -> HostKey {
    let mut key = [0u8; HOST_KEY_BYTES];
    getrandom::fill(&mut key).expect("the OS random generator is available");
    key
}

/// A uniformly random room code.
pub fn random_code() -> RoomCode {
    let mut bytes = [0u8; ROOM_CODE_LEN];
    // Rejection sampling keeps the letters uniform (256 is not a multiple of 24).
    let limit = 240u8;
    for slot in &mut bytes {
        loop {
            let mut byte = [0u8; 1];
            getrandom::fill(&mut byte).expect("the OS random generator is available");
            if byte[0] < limit {
                *slot = byte[0];
                break;
            }
        }
    }
    RoomCode::from_indices(bytes)
}
