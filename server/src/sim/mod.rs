//! The simulation: the sans-IO [`world::World`], its bots and spatial grid. The room task that
//! owns a world lives in `crate::room`.
//!
//! Only a room task mutates its world; nothing here awaits inside a tick or reads the clock
//! except the loop's own timer, and rules see only ticks and a fixed `dt`.

pub mod ai;
pub mod entities;
pub mod grid;
pub mod lagcomp;
pub mod testing;
pub mod walls;
pub mod world;
