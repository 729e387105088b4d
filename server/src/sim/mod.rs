//! The simulation: the sans-IO [`world::World`] and the task that owns it ([`sim_loop`]).
//!
//! Only `sim_loop` mutates the world; nothing here awaits inside a tick or reads the clock
//! except the loop's own timer, and rules see only ticks and a fixed `dt`.

pub mod ai;
pub mod grid;
pub mod sim_loop;
pub mod testing;
pub mod world;
