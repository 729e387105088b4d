//! Per-frame measurements of how the game feels, kept by the client itself so a test (or a
//! player with F3) can read them from `arenaDebug().feel`: how often remote players were drawn
//! past the newest snapshot, whether any of them snapped, how far render time trailed the data,
//! and whether the own player ever moved backwards with a key held or was corrected.

use std::collections::HashMap;

use glam::Vec2;
use shared::snapshot::NetId;

/// A remote player moving this many times its top speed in one frame has snapped.
const SNAP_FACTOR: f32 = 3.0;
/// Jumps longer than this are respawns (teleports by design), not snaps.
const RESPAWN_DISTANCE: f32 = 150.0;
/// Trail samples kept for the median.
const TRAIL_SAMPLES: usize = 2048;
/// A key counts as held (for backward frames) once held this long: reversing at full speed
/// takes the movement rules about a quarter second, and that momentum is not a defect.
const HELD_FOR_S: f32 = 0.35;
/// Held this long from a standstill, a player runs at 99 % of its top speed (friction 7.5/s):
/// from then on its per-frame motion is checked for evenness.
const FULL_SPEED_AFTER_S: f32 = 0.6;
/// Per-frame motion at full speed counts as even within this fraction of speed × frame time.
const EVEN_WITHIN: f32 = 0.10;
/// Correction and key-to-server samples kept for their quantiles (the oldest go first).
const QUANTILE_SAMPLES: usize = 4096;
/// The server has taken a key press once the own velocity it reports points this many units per
/// second along the key (it was still, or drifting the other way, when the key went down).
const MOVING_ALONG: f32 = 1.0;

/// What one frame drew, as far as the feel is concerned.
#[derive(Debug, Clone, Copy, Default)]
pub struct FrameFeel {
    /// Where remote entities were drawn, the newest snapshot, and one snapshot interval (ticks).
    pub render_tick: f64,
    pub newest_tick: f64,
    pub interval_ticks: f64,
    /// Frame time, seconds, and the players' top speed (units per second).
    pub frame_s: f32,
    pub max_speed: f32,
    /// The own player's drawn position and the direction of the keys held (zero: none).
    pub own_pos: Option<Vec2>,
    pub held: Vec2,
    /// The correction the last reconciliation made (units; 0 when none this frame).
    pub correction: f32,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FeelStats {
    pub frames: u64,
    /// Frames drawing remote players past the newest snapshot (extrapolating).
    pub frames_past_newest: u64,
    /// Frames drawing them more than one snapshot interval past it (never, by design).
    pub frames_past_cap: u64,
    /// Remote players moving ≥ 3× top speed in one frame (respawns excluded).
    pub remote_snaps: u64,
    /// Frames where the own player, with a key held (for 0.35 s or more), was drawn moving
    /// against it.
    pub own_backward_frames: u64,
    /// Frames at full speed (a key held 0.6 s or more, no correction) and those among them whose
    /// motion was off by more than ± 10 % of top speed × frame time (micro-stutter).
    pub own_full_speed_frames: u64,
    pub own_uneven_frames: u64,
    /// Reconciliation corrections of at least one unit, and the largest.
    pub corrections_over_1: u64,
    pub max_correction: f32,
    /// Frames drawing the own player, and the 99th percentile of the correction they showed
    /// (units; a frame without one counts as 0).
    pub own_frames: u64,
    pub correction_p99: f32,
    /// Movement keys pressed from a standstill, and how long (ms) from the press until the first
    /// snapshot whose own state shows the server moving the player that way: median and p99.
    pub key_presses: u64,
    pub key_to_server_p50_ms: f64,
    pub key_to_server_p99_ms: f64,
    /// Median of (newest snapshot − render tick), ticks.
    pub trail_ticks_p50: f64,
    #[serde(skip)]
    corrections: Quantiles,
    #[serde(skip)]
    key_to_server: Quantiles,
    /// A press not yet seen on the server: when (ms) and which way.
    #[serde(skip)]
    pressed: Option<(f64, Vec2)>,
    /// Trail samples in arrival order (to drop the oldest) and the same samples kept sorted (for
    /// the median without sorting every frame).
    #[serde(skip)]
    trails: std::collections::VecDeque<f64>,
    #[serde(skip)]
    trails_sorted: Vec<f64>,
    #[serde(skip)]
    last_remote: HashMap<NetId, Vec2>,
    #[serde(skip)]
    last_own: Option<Vec2>,
    /// The keys held and for how long, seconds.
    #[serde(skip)]
    held: (Vec2, f32),
}

/// The newest samples of a figure, kept sorted for its quantiles.
#[derive(Debug, Clone, Default)]
struct Quantiles {
    arrival: std::collections::VecDeque<f64>,
    sorted: Vec<f64>,
}

impl Quantiles {
    fn add(&mut self, value: f64) {
        if self.arrival.len() == QUANTILE_SAMPLES
            && let Some(oldest) = self.arrival.pop_front()
        {
            let at = self.sorted.partition_point(|v| v.total_cmp(&oldest).is_lt());
            self.sorted.remove(at);
        }
        self.arrival.push_back(value);
        let at = self.sorted.partition_point(|v| v.total_cmp(&value).is_lt());
        self.sorted.insert(at, value);
    }

    /// The `q` quantile of the samples and `zeros` more samples of 0 (nearest rank).
    fn quantile_with_zeros(&self, q: f64, zeros: u64) -> f64 {
        let n = self.sorted.len() as u64 + zeros;
        if n == 0 {
            return 0.0;
        }
        let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
        if rank <= zeros { 0.0 } else { self.sorted[(rank - zeros - 1) as usize] }
    }
}

impl FeelStats {
    /// A movement key went down at `now_ms` with no movement held before: from now until the
    /// server is seen moving that way counts as its key-to-server time.
    pub fn key_pressed(&mut self, now_ms: f64, dir: Vec2) {
        if dir != Vec2::ZERO {
            self.pressed = Some((now_ms, dir));
        }
    }

    /// A snapshot arrived at `now_ms` with the server's own velocity for the player.
    pub fn server_moved(&mut self, now_ms: f64, vel: Vec2) {
        if let Some((at, dir)) = self.pressed
            && vel.dot(dir.normalize()) > MOVING_ALONG
        {
            self.pressed = None;
            self.key_presses += 1;
            self.key_to_server.add(now_ms - at);
            self.key_to_server_p50_ms = self.key_to_server.quantile_with_zeros(0.5, 0);
            self.key_to_server_p99_ms = self.key_to_server.quantile_with_zeros(0.99, 0);
        }
    }

    /// Adds one frame: what it drew (`remote` players' positions) and how.
    pub fn frame(&mut self, frame: FrameFeel, remote: impl Iterator<Item = (NetId, Vec2)>) {
        self.frames += 1;
        let ahead = frame.render_tick - frame.newest_tick;
        if ahead > 1e-6 {
            self.frames_past_newest += 1;
        }
        if ahead > frame.interval_ticks + 1e-6 {
            self.frames_past_cap += 1;
        }
        if self.trails.len() == TRAIL_SAMPLES
            && let Some(oldest) = self.trails.pop_front()
        {
            let at = self.trails_sorted.partition_point(|v| v.total_cmp(&oldest).is_lt());
            self.trails_sorted.remove(at);
        }
        let trail = -ahead;
        self.trails.push_back(trail);
        let at = self.trails_sorted.partition_point(|v| v.total_cmp(&trail).is_lt());
        self.trails_sorted.insert(at, trail);
        let snap = SNAP_FACTOR * frame.max_speed * frame.frame_s.max(1.0 / 240.0);
        let mut seen = HashMap::with_capacity(self.last_remote.len());
        for (id, pos) in remote {
            if let Some(before) = self.last_remote.get(&id) {
                let moved = before.distance(pos);
                if moved >= snap && moved < RESPAWN_DISTANCE {
                    self.remote_snaps += 1;
                }
            }
            seen.insert(id, pos);
        }
        self.last_remote = seen;
        self.held =
            if frame.held == self.held.0 { (frame.held, self.held.1 + frame.frame_s) } else { (frame.held, 0.0) };
        if let (Some(now), Some(before)) = (frame.own_pos, self.last_own)
            && frame.held != Vec2::ZERO
            && self.held.1 >= HELD_FOR_S
            && (now - before).dot(frame.held.normalize()) < -0.5
        {
            self.own_backward_frames += 1;
        }
        if let (Some(now), Some(before)) = (frame.own_pos, self.last_own)
            && frame.held != Vec2::ZERO
            && self.held.1 >= FULL_SPEED_AFTER_S
            && frame.correction == 0.0
            && frame.frame_s > 0.0
        {
            let expected = frame.max_speed * frame.frame_s;
            let moved = (now - before).dot(frame.held.normalize());
            self.own_full_speed_frames += 1;
            if (moved - expected).abs() > EVEN_WITHIN * expected {
                self.own_uneven_frames += 1;
            }
        }
        self.last_own = frame.own_pos;
        if frame.own_pos.is_some() {
            // Only frames with a correction are stored; the rest count as zeros.
            if frame.correction > 0.0 {
                self.corrections.add(f64::from(frame.correction));
            }
            self.own_frames += 1;
            let zeros = self.own_frames.saturating_sub(self.corrections.sorted.len() as u64);
            self.correction_p99 = self.corrections.quantile_with_zeros(0.99, zeros) as f32;
        }
        if frame.correction >= 1.0 {
            self.corrections_over_1 += 1;
        }
        self.max_correction = self.max_correction.max(frame.correction);
        self.trail_ticks_p50 = self.trails_sorted[self.trails_sorted.len() / 2];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(render: f64, newest: f64) -> FrameFeel {
        FrameFeel {
            render_tick: render,
            newest_tick: newest,
            interval_ticks: 2.0,
            frame_s: 1.0 / 60.0,
            max_speed: 300.0,
            ..FrameFeel::default()
        }
    }

    #[test]
    fn counts_extrapolation_snaps_and_backward_frames() {
        let mut feel = FeelStats::default();
        feel.frame(frame(10.0, 12.0), [(NetId(1), Vec2::new(0.0, 0.0))].into_iter());
        feel.frame(frame(12.5, 12.0), [(NetId(1), Vec2::new(4.0, 0.0))].into_iter());
        feel.frame(frame(14.5, 12.0), [(NetId(1), Vec2::new(40.0, 0.0))].into_iter()); // 36 units: a snap
        feel.frame(frame(15.0, 16.0), [(NetId(1), Vec2::new(900.0, 0.0))].into_iter()); // respawn
        assert_eq!((feel.frames, feel.frames_past_newest, feel.frames_past_cap), (4, 2, 1));
        assert_eq!(feel.remote_snaps, 1);
        let mut own = FeelStats::default();
        let held = |x: f32, c: f32| FrameFeel {
            own_pos: Some(Vec2::new(x, 0.0)),
            held: Vec2::X,
            correction: c,
            ..frame(0.0, 0.0)
        };
        own.frame(held(0.0, 0.0), std::iter::empty());
        own.frame(held(5.0, 0.0), std::iter::empty());
        // Just pressed: moving back is momentum, not counted.
        own.frame(held(3.0, 0.0), std::iter::empty());
        assert_eq!(own.own_backward_frames, 0);
        for step in 0..30 {
            own.frame(held(3.0 + step as f32, 0.0), std::iter::empty());
        }
        own.frame(held(30.0, 2.5), std::iter::empty()); // moved back 2 units, key held 0.5 s
        assert_eq!(own.own_backward_frames, 1);
        assert_eq!((own.corrections_over_1, own.max_correction), (1, 2.5));
        // One correcting frame in 34: above the 1 % that p99 lets through.
        assert_eq!((own.own_frames, own.correction_p99), (34, 2.5));
        for _ in 0..300 {
            own.frame(held(30.0, 0.0), std::iter::empty());
        }
        assert_eq!(own.correction_p99, 0.0, "one frame in 334 is under 1 %");
    }

    #[test]
    fn key_to_server_runs_from_the_press_to_the_first_snapshot_moving_that_way() {
        let mut feel = FeelStats::default();
        feel.server_moved(100.0, Vec2::new(50.0, 0.0));
        assert_eq!(feel.key_presses, 0, "no press yet");
        feel.key_pressed(1000.0, Vec2::X);
        feel.server_moved(1100.0, Vec2::new(-40.0, 0.0)); // still drifting the other way
        feel.server_moved(1150.0, Vec2::new(0.5, 0.0)); // not yet moving along it
        feel.server_moved(1210.0, Vec2::new(12.0, 0.0));
        feel.server_moved(1300.0, Vec2::new(200.0, 0.0)); // counted once
        assert_eq!((feel.key_presses, feel.key_to_server_p50_ms), (1, 210.0));
        feel.key_pressed(2000.0, Vec2::new(-1.0, 1.0));
        feel.server_moved(2300.0, Vec2::new(-10.0, 10.0));
        assert_eq!((feel.key_presses, feel.key_to_server_p50_ms, feel.key_to_server_p99_ms), (2, 210.0, 300.0));
    }

    #[test]
    fn uneven_motion_at_full_speed_is_counted() {
        let mut feel = FeelStats::default();
        let at = |x: f32, frame_s: f32| FrameFeel {
            own_pos: Some(Vec2::new(x, 0.0)),
            held: Vec2::X,
            frame_s,
            max_speed: 300.0,
            ..FrameFeel::default()
        };
        let mut x = 0.0;
        for _ in 0..60 {
            x += 5.0; // 300 u/s × 1/60 s: even
            feel.frame(at(x, 1.0 / 60.0), std::iter::empty());
        }
        assert_eq!(feel.own_uneven_frames, 0);
        assert!(feel.own_full_speed_frames >= 23, "{}", feel.own_full_speed_frames);
        feel.frame(at(x + 10.0, 1.0 / 60.0), std::iter::empty()); // two steps in one frame
        feel.frame(at(x + 10.0, 1.0 / 60.0), std::iter::empty()); // none
        assert_eq!(feel.own_uneven_frames, 2);
    }
}
