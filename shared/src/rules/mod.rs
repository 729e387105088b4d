//! Pure game rules that the server runs authoritatively and the client runs to predict its own
//! player: movement with acceleration and friction, collision against the map, projectile flight.
//!
//! Everything here is plain `f32` arithmetic with `sqrt` only (no `sin`/`cos`, whose results may
//! differ between platforms' math libraries), so the same input gives bit-identical results on
//! the native server and in the WASM client.

pub mod consts;
mod movement;

pub use consts::*;
pub use movement::{MoveInput, collide_near, collide_with_map, sanitize_move, step_player, step_player_near};

/// Runs `steps` ticks of scripted movement on `map` and hashes every intermediate position and
/// velocity bit pattern (FNV-1a). The client's WASM build and the native server must produce the
/// same value: that is what makes client-side prediction exact (see `client-web/tests/wasm.rs`).
pub fn movement_probe(map: &crate::map::MapDef, steps: u32) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut mix = |value: f32| {
        for byte in value.to_bits().to_le_bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    let mut pos = map.spawns[0];
    let mut vel = glam::Vec2::ZERO;
    for step in 0..steps {
        // Inputs from integer arithmetic only, so the script itself is platform-independent.
        let phase = (step / 37) % 8;
        let x = [1.0, 0.7, 0.0, -0.7, -1.0, -0.7, 0.0, 0.7][phase as usize];
        let y = [0.0, 0.7, 1.0, 0.7, 0.0, -0.7, -1.0, -0.7][phase as usize];
        let fraction = (step % 11) as f32 / 10.0;
        let dir = glam::Vec2::new(x, y) * fraction;
        step_player(&mut pos, &mut vel, MoveInput { dir }, 1.0 / 60.0, map);
        mix(pos.x);
        mix(pos.y);
        mix(vel.x);
        mix(vel.y);
    }
    hash
}

/// Converts a duration in seconds to whole ticks at `tick_hz` (at least one).
pub fn seconds_to_ticks(seconds: f32, tick_hz: u16) -> u32 {
    ((seconds * f32::from(tick_hz)).round() as u32).max(1)
}
