//! Arena's browser client: a thin wasm-bindgen shell over plain-Rust game logic.
//!
//! The logic that can run without a browser — prediction ([`predict`]), interpolation
//! ([`interp`]) and its playout clock ([`playout`]), clock sync ([`clock`]), the match state ([`session`]), counters ([`stats`]), and
//! the lobby's rules ([`lobby`], [`route`]: which room to ask for, what a close leads to, what a
//! URL means) — is plain Rust tested natively. The browser shell (`app`, `net`, `http`, `input`,
//! `render`, `hud`, `lobby_view`, `host_panel`, `storage`) wires it to WebSocket, fetch,
//! keyboard/mouse/touch, a canvas, the DOM and browser storage.

pub mod clock;
pub mod feel;
pub mod interp;
pub mod lobby;
pub mod netgraph;
pub mod pacer;
pub mod playout;
pub mod predict;
pub mod route;
pub mod session;
pub mod stats;

#[cfg(target_arch = "wasm32")]
mod app;
#[cfg(target_arch = "wasm32")]
mod host_panel;
#[cfg(target_arch = "wasm32")]
mod http;
#[cfg(target_arch = "wasm32")]
mod hud;
#[cfg(target_arch = "wasm32")]
mod input;
#[cfg(target_arch = "wasm32")]
mod lobby_view;
#[cfg(target_arch = "wasm32")]
mod net;
#[cfg(target_arch = "wasm32")]
mod render;
#[cfg(target_arch = "wasm32")]
mod storage;

use wasm_bindgen::prelude::*;

/// Entry point, run when the module is initialised.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen(start)]
pub fn start() -> Result<(), JsValue> {
    app::start()
}

/// A JSON snapshot of what the client sees, for tests and debugging (`window.arenaDebug()`).
/// Read-only, except that `net.corrections` lists the prediction corrections since the previous
/// call (so a poller sees every one).
#[wasm_bindgen(js_name = arenaDebug)]
pub fn arena_debug() -> String {
    #[cfg(target_arch = "wasm32")]
    {
        app::debug_json()
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        "{}".to_string()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn native_probe_matches_the_build_time_value() {
        let map = shared::map::MapDef::from_json(include_str!("../../assets/maps/arena.json")).unwrap();
        assert_eq!(shared::rules::movement_probe(&map, 2000).to_string(), super::NATIVE_MOVEMENT_PROBE);
    }
}

/// The probe value of the movement rules computed natively when this crate was built; the WASM
/// build recomputes it to prove its prediction matches the server bit for bit.
pub const NATIVE_MOVEMENT_PROBE: &str = env!("ARENA_NATIVE_MOVEMENT_PROBE");

/// The WebSocket URL for the page's own origin.
#[cfg(target_arch = "wasm32")]
pub fn server_url() -> Result<String, JsValue> {
    net::server_url()
}

/// The protocol version this client speaks.
#[wasm_bindgen(js_name = protocolVersion)]
pub fn protocol_version() -> u16 {
    shared::PROTOCOL_VERSION
}
