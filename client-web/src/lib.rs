//! Arena's browser client (WASM). Placeholder until the client issue: it compiles against
//! `shared` for wasm32 so the wire contract is checked on both targets.

use wasm_bindgen::prelude::*;

/// The protocol version this client speaks.
#[wasm_bindgen]
pub fn protocol_version() -> u16 {
    shared::PROTOCOL_VERSION
}
