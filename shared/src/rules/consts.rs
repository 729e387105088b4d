//! The game's constants: bodies, speeds, weapons, orbs, respawns and the view's extent.

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
