//! Arena's wire contract and game rules, shared by the server and the WASM client.
//!
//! This crate owns everything both sides must agree on: the message types and their bincode
//! encoding ([`protocol`]), the tick clock ([`tick`]), the snapshot delta codec ([`snapshot`]),
//! quantization ([`quant`]), the map format ([`map`]) and the movement and combat rules the
//! client uses to predict its own player ([`rules`]).
//!
//! It deliberately does no I/O, reads no clock and depends on neither tokio nor web-sys, so it
//! builds for native targets and for `wasm32-unknown-unknown` and is fully deterministic.

pub mod bits;
pub mod close;
pub mod map;
pub mod protocol;
pub mod quant;
pub mod room;
pub mod rules;
pub mod snapshot;
pub mod text;
pub mod tick;

pub use protocol::{ClientMsg, DisconnectReason, PROTOCOL_VERSION, ServerMsg};
pub use snapshot::NetId;
pub use tick::Tick;
