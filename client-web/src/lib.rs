//! Arena's browser client: a thin wasm-bindgen shell over plain-Rust game logic.
//!
//! The logic that can run without a browser — prediction ([`predict`]), interpolation
//! ([`interp`]), clock sync ([`clock`]), the match state ([`session`]) and counters ([`stats`]) —
//! is plain Rust tested natively. The browser shell ([`app`], [`net`], [`input`], [`render`],
//! [`hud`]) wires it to WebSocket, keyboard/mouse/touch, a canvas and the DOM.

pub mod clock;
pub mod interp;
pub mod predict;
pub mod session;
pub mod stats;

#[cfg(target_arch = "wasm32")]
mod app;
#[cfg(target_arch = "wasm32")]
mod hud;
#[cfg(target_arch = "wasm32")]
mod input;
#[cfg(target_arch = "wasm32")]
mod net;
#[cfg(target_arch = "wasm32")]
mod render;

use wasm_bindgen::prelude::*;

/// Entry point, run when the module is initialised.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen(start)]
pub fn start() -> Result<(), JsValue> {
    app::start()
}

/// A JSON snapshot of what the client sees, for tests and debugging (`window.arenaDebug()`).
/// Read-only: calling it changes nothing.
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

/// The protocol version this client speaks.
#[wasm_bindgen(js_name = protocolVersion)]
pub fn protocol_version() -> u16 {
    shared::PROTOCOL_VERSION
}
