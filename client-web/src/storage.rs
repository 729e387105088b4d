//! Browser storage for what outlives a connection: the player's name and client id
//! (localStorage), resume tokens (sessionStorage, per tab) and host keys (localStorage), each
//! per room code. Storage can be missing or full (private windows, quotas): every read may be
//! `None` and every write may silently not happen.

use shared::room::{RoomCode, host_key_hex, parse_host_key};
use web_sys::Storage;

use crate::lobby::{self, CLIENT_ID_KEY, Credentials};

fn local() -> Option<Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

fn session() -> Option<Storage> {
    web_sys::window()?.session_storage().ok().flatten()
}

pub fn local_get(key: &str) -> Option<String> {
    local()?.get_item(key).ok().flatten()
}

pub fn local_set(key: &str, value: &str) {
    if let Some(storage) = local() {
        let _ = storage.set_item(key, value);
    }
}

/// This browser's client id, generated (and stored) on first use.
pub fn client_id() -> u64 {
    if let Some(id) = local_get(CLIENT_ID_KEY).as_deref().and_then(lobby::parse_client_id) {
        return id;
    }
    let id = lobby::client_id_from_random(js_sys::Math::random(), js_sys::Math::random());
    local_set(CLIENT_ID_KEY, &id.to_string());
    id
}

/// This browser's guest identity (128 bits from the browser's cryptographic generator), made
/// and kept on first use; `None` when the generator or the storage is missing (the player then
/// plays unrated).
pub fn guest_secret() -> Option<[u8; 16]> {
    if let Some(secret) = local_get(lobby::GUEST_KEY).as_deref().and_then(lobby::parse_guest_secret) {
        return Some(secret);
    }
    let mut secret = [0u8; 16];
    web_sys::window()?.crypto().ok()?.get_random_values_with_u8_array(&mut secret).ok()?;
    local_set(lobby::GUEST_KEY, &lobby::guest_secret_hex(&secret));
    // Kept only if it could be stored: a secret the next visit cannot read would make a new
    // player every time.
    local_get(lobby::GUEST_KEY).as_deref().and_then(lobby::parse_guest_secret)
}

/// Remembers this browser's public player id (the leaderboard page reads it).
pub fn save_player(id: &str) {
    local_set(lobby::PLAYER_KEY, id);
}

pub fn save_resume(code: RoomCode, token: u64) {
    if let Some(storage) = session() {
        let _ = storage.set_item(&lobby::resume_key(code), &token.to_string());
    }
}

/// Drops a resume token the server refused (its seat is gone or it was never this room's).
pub fn forget_resume(code: RoomCode) {
    if let Some(storage) = session() {
        let _ = storage.remove_item(&lobby::resume_key(code));
    }
}

pub fn save_host_key(code: RoomCode, key: &shared::room::HostKey) {
    local_set(&lobby::host_key_key(code), &host_key_hex(key));
}

/// What this browser holds for `code`. `remembered` is the app's own copy of the last resume
/// token, for when sessionStorage is unavailable.
pub fn credentials(code: RoomCode, remembered: Option<(RoomCode, u64)>) -> Credentials {
    let stored = session().and_then(|storage| storage.get_item(&lobby::resume_key(code)).ok().flatten());
    let resume = stored
        .and_then(|token| token.parse().ok())
        .or_else(|| remembered.filter(|(room, _)| *room == code).map(|(_, token)| token));
    let host_key = local_get(&lobby::host_key_key(code)).as_deref().and_then(parse_host_key);
    Credentials { resume, host_key }
}
