//! Pure game rules that the server runs authoritatively and the client runs to predict its own
//! player: movement with acceleration and friction, collision against the map, projectile flight.
//!
//! Everything here is plain `f32` arithmetic with `sqrt` only (no `sin`/`cos`, whose results may
//! differ between platforms' math libraries), so the same input gives bit-identical results on
//! the native server and in the WASM client.

mod movement;

pub use movement::{MoveInput, collide_near, collide_with_map, sanitize_move, step_player, step_player_near};

/// Radius of a player's body, world units.
pub const PLAYER_RADIUS: f32 = 18.0;
/// Acceleration from full stick input, units/s².
pub const PLAYER_ACCEL: f32 = 2400.0;
/// Linear drag coefficient, 1/s. Terminal speed is `PLAYER_ACCEL / PLAYER_FRICTION`.
pub const PLAYER_FRICTION: f32 = 7.5;
/// Hard cap on speed, units/s.
pub const PLAYER_MAX_SPEED: f32 = 320.0;
/// Health of a fresh player.
pub const PLAYER_MAX_HP: u8 = 100;

/// Projectile speed, units/s.
pub const PROJECTILE_SPEED: f32 = 900.0;
/// Projectile radius, world units.
pub const PROJECTILE_RADIUS: f32 = 5.0;
/// Projectile lifetime in seconds.
pub const PROJECTILE_LIFETIME_S: f32 = 1.0;
/// Damage of one hit.
pub const PROJECTILE_DAMAGE: u8 = 20;
/// Minimum time between shots, seconds.
pub const FIRE_COOLDOWN_S: f32 = 0.2;

/// Orb pickup radius (added to the player's radius).
pub const ORB_RADIUS: f32 = 10.0;
/// Score for a kill.
pub const KILL_SCORE: u16 = 10;
/// Seconds between death and respawn.
pub const RESPAWN_DELAY_S: f32 = 3.0;

/// Half-size of the area around a player whose entities it receives (interest management).
/// Wider than any sensible screen at the client's zoom so nothing pops in at the edges.
pub const VIEW_HALF_EXTENT: glam::Vec2 = glam::Vec2::new(1100.0, 750.0);

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
