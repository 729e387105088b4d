//! The browser shell: owns the canvas, the DOM HUD, the lobby, the socket and the [`Session`],
//! and drives everything from `requestAnimationFrame`. Inputs go out at the simulation tick rate
//! from a fixed-step accumulator; snapshots are applied as they arrive (even in a background
//! tab). The lobby and the room around a match (joining, invite links, host controls) live in
//! [`rooms`].
//!
//! One job per file: [`state`] (the `App` and its helpers), [`events`] (start-up, listeners,
//! the frame loop, the connection), [`frame`] (one animation frame), [`rooms`] (lobby and room
//! flow) and [`debug`] (`arenaDebug()`). They are `impl App` blocks over `state.rs`.

mod debug;
mod events;
mod frame;
mod rooms;
mod state;

pub use debug::debug_json;
pub use events::start;
