//! Quantization of positions, velocities and angles for the wire.
//!
//! Positions are fixed-point with [`POS_SCALE`] steps per world unit (1/8 unit), so a `u16`
//! covers maps up to 8191 units square. Angles are one byte (256 steps, about 1.4°): enough to
//! draw other players' aim; the server always uses the full-precision angle from the input.

use glam::Vec2;

/// Fixed-point steps per world unit.
pub const POS_SCALE: f32 = 8.0;
/// Largest world coordinate that quantizes without clamping.
pub const MAX_COORD: f32 = u16::MAX as f32 / POS_SCALE;
/// Velocity steps per (world unit / second).
pub const VEL_SCALE: f32 = 16.0;

pub fn pos_to_q(value: f32) -> u16 {
    (value * POS_SCALE).round().clamp(0.0, u16::MAX as f32) as u16
}

pub fn q_to_pos(q: u16) -> f32 {
    f32::from(q) / POS_SCALE
}

pub fn vec_to_q(v: Vec2) -> (u16, u16) {
    (pos_to_q(v.x), pos_to_q(v.y))
}

pub fn q_to_vec(x: u16, y: u16) -> Vec2 {
    Vec2::new(q_to_pos(x), q_to_pos(y))
}

pub fn vel_to_q(value: f32) -> i16 {
    (value * VEL_SCALE).round().clamp(i16::MIN as f32, i16::MAX as f32) as i16
}

pub fn q_to_vel(q: i16) -> f32 {
    f32::from(q) / VEL_SCALE
}

/// Maps any finite angle in radians to 0..=255 (0 = +x, increasing counter-clockwise in math
/// convention, i.e. towards +y).
pub fn angle_to_q(angle: f32) -> u8 {
    let turns = angle / std::f32::consts::TAU;
    let frac = turns - turns.floor();
    ((frac * 256.0).round() as u32 % 256) as u8
}

pub fn q_to_angle(q: u8) -> f32 {
    f32::from(q) / 256.0 * std::f32::consts::TAU
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_within_half_a_step() {
        for v in [0.0, 0.06, 1.0, 123.456, 3999.9, 8000.0] {
            let back = q_to_pos(pos_to_q(v));
            assert!((back - v).abs() <= 0.5 / POS_SCALE + 1e-3, "{v} -> {back}");
        }
        assert_eq!(pos_to_q(-5.0), 0);
        assert_eq!(pos_to_q(1e9), u16::MAX);
    }

    #[test]
    fn angles_wrap() {
        assert_eq!(angle_to_q(0.0), 0);
        assert_eq!(angle_to_q(std::f32::consts::TAU), 0);
        assert_eq!(angle_to_q(-std::f32::consts::FRAC_PI_2), 192);
        assert_eq!(angle_to_q(std::f32::consts::PI), 128);
        let a = 1.0f32;
        assert!((q_to_angle(angle_to_q(a)) - a).abs() < 0.013);
    }
}
