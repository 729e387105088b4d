//! Client-side prediction of the player's own movement, with reconciliation and smoothing.
//!
//! Every local input is applied at once with the same rules the server runs
//! (`shared::rules::step_player`) and kept until the server acknowledges it. Each snapshot
//! carries the server's exact state after the last input it applied; the predictor restarts
//! from there and replays the inputs not yet applied. Any difference between the old and the new
//! prediction becomes a visual offset that decays over about a tenth of a second, so small
//! corrections never show as snaps.

use std::collections::VecDeque;

use glam::Vec2;
use shared::map::MapDef;
use shared::protocol::{InputCmd, OwnState};
use shared::rules::{MoveInput, step_player};

/// Inputs kept unacknowledged at most (two seconds at 60 Hz); older ones are dropped.
const MAX_PENDING: usize = 120;
/// Corrections larger than this (world units) are teleports (respawn): snap instead of smooth.
const SNAP_DISTANCE: f32 = 120.0;
/// Corrections kept until read (a reader that never reads loses the oldest beyond this).
const MAX_LOGGED_CORRECTIONS: usize = 1024;
/// How fast the visual offset decays, per second (1/e time of 1/12 s).
const SMOOTHING_RATE: f32 = 12.0;

#[derive(Debug, Clone, Default)]
pub struct Predictor {
    pending: VecDeque<InputCmd>,
    /// Predicted simulation state (what the server will have after all pending inputs).
    pub pos: Vec2,
    pub vel: Vec2,
    /// The predicted position one fixed step earlier: frames between steps are drawn as a blend
    /// of the two, so motion is even when the display and the simulation rates do not divide.
    prev_pos: Vec2,
    /// Visual offset added to `pos` when drawing; decays to zero.
    offset: Vec2,
    /// Size of the last correction, world units (for the net overlay).
    pub last_error: f32,
    /// Whether the server reported the player alive; dead players are not predicted.
    pub alive: bool,
    initialized: bool,
    /// Every correction (units) since [`Predictor::take_corrections`]: teleports and deaths
    /// are not corrections and are not listed.
    corrections: Vec<f32>,
}

impl Predictor {
    pub fn new() -> Predictor {
        Predictor::default()
    }

    /// Applies one local input immediately and remembers it for replay.
    pub fn apply_local(&mut self, cmd: InputCmd, dt: f32, map: &MapDef) {
        if !self.initialized || !self.alive {
            return;
        }
        self.prev_pos = self.pos;
        step_player(&mut self.pos, &mut self.vel, MoveInput { dir: Vec2::new(cmd.move_x, cmd.move_y) }, dt, map);
        if self.pending.len() >= MAX_PENDING {
            self.pending.pop_front();
        }
        self.pending.push_back(cmd);
    }

    /// Reconciles with the server's state after input `input_ack`.
    pub fn reconcile(&mut self, own: &OwnState, input_ack: u32, dt: f32, map: &MapDef) {
        while self.pending.front().is_some_and(|cmd| cmd.seq <= input_ack) {
            self.pending.pop_front();
        }
        let before = self.pos;
        let before_prev = self.prev_pos;
        self.pos = own.pos;
        self.vel = own.vel;
        self.prev_pos = own.pos;
        self.alive = own.alive;
        if !own.alive {
            self.pending.clear();
            self.offset = Vec2::ZERO;
            self.last_error = 0.0;
            self.initialized = true;
            return;
        }
        // Rebuild both blend ends from the replay, so a blend never straddles a correction.
        for cmd in &self.pending {
            self.prev_pos = self.pos;
            step_player(&mut self.pos, &mut self.vel, MoveInput { dir: Vec2::new(cmd.move_x, cmd.move_y) }, dt, map);
        }
        if self.pending.is_empty() {
            // Nothing to replay: the last step's start is unknown, keep the blend's shape.
            self.prev_pos = self.pos - (before - before_prev);
        }
        if !self.initialized {
            self.initialized = true;
            return;
        }
        let error = before - self.pos;
        self.last_error = error.length();
        if self.last_error > SNAP_DISTANCE {
            self.offset = Vec2::ZERO;
        } else {
            self.offset += error;
            if self.last_error > 0.0 && self.corrections.len() < MAX_LOGGED_CORRECTIONS {
                self.corrections.push(self.last_error);
            }
        }
    }

    /// Where to draw the player this frame: `blend` (0..=1, how far the frame is between the
    /// previous fixed step and the next, `accumulator / dt`) of the way from the previous step's
    /// position to the current one, plus the decaying correction offset; advances the smoothing
    /// by `frame_dt` seconds.
    pub fn render_pos(&mut self, frame_dt: f32, blend: f32) -> Vec2 {
        self.offset *= (-SMOOTHING_RATE * frame_dt.clamp(0.0, 0.25)).exp();
        if self.offset.length_squared() < 1e-4 {
            self.offset = Vec2::ZERO;
        }
        self.prev_pos.lerp(self.pos, blend.clamp(0.0, 1.0)) + self.offset
    }

    /// The corrections made since the last call (every reconciliation that moved the player).
    pub fn take_corrections(&mut self) -> Vec<f32> {
        std::mem::take(&mut self.corrections)
    }

    /// The correction still being smoothed out, world units.
    pub fn correction_offset(&self) -> f32 {
        self.offset.length()
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    pub fn is_ready(&self) -> bool {
        self.initialized
    }

    pub fn reset(&mut self) {
        *self = Predictor::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::tick::Tick;

    const DT: f32 = 1.0 / 60.0;

    fn map() -> MapDef {
        MapDef::open("test", 2000.0, 0)
    }

    fn own(pos: Vec2, vel: Vec2) -> OwnState {
        OwnState { pos, vel, hp: 100, alive: true, respawn_tick: None, fire_cooldown: 0, score: 0, rank: 1 }
    }

    fn cmd(seq: u32, x: f32) -> InputCmd {
        InputCmd { seq, ack: Tick::ZERO, move_x: x, move_y: 0.0, aim: 0.0, fire: false, view: None }
    }

    /// The server's view of the same inputs, stepped with the same rules.
    fn server_after(inputs: &[InputCmd], start: Vec2, map: &MapDef) -> (Vec2, Vec2) {
        let (mut pos, mut vel) = (start, Vec2::ZERO);
        for input in inputs {
            step_player(&mut pos, &mut vel, MoveInput { dir: Vec2::new(input.move_x, input.move_y) }, DT, map);
        }
        (pos, vel)
    }

    #[test]
    fn replaying_unacked_inputs_matches_the_server_exactly() {
        let map = map();
        let start = Vec2::new(500.0, 500.0);
        let mut predictor = Predictor::new();
        predictor.reconcile(&own(start, Vec2::ZERO), 0, DT, &map);
        let inputs: Vec<InputCmd> = (1..=30).map(|seq| cmd(seq, if seq < 20 { 1.0 } else { -0.5 })).collect();
        for input in &inputs {
            predictor.apply_local(*input, DT, &map);
        }
        let predicted = predictor.pos;
        // The server has applied the first 12; its state arrives and the rest are replayed.
        let (pos, vel) = server_after(&inputs[..12], start, &map);
        predictor.reconcile(&own(pos, vel), 12, DT, &map);
        assert_eq!(predictor.pos, predicted, "same rules, same inputs: no correction");
        assert_eq!(predictor.pending(), 18);
        assert_eq!(predictor.last_error, 0.0);
        assert_eq!(predictor.render_pos(DT, 1.0), predicted);
    }

    #[test]
    fn corrections_are_smoothed_not_snapped() {
        let map = map();
        let start = Vec2::new(500.0, 500.0);
        let mut predictor = Predictor::new();
        predictor.reconcile(&own(start, Vec2::ZERO), 0, DT, &map);
        for seq in 1..=10 {
            predictor.apply_local(cmd(seq, 1.0), DT, &map);
        }
        let shown_before = predictor.render_pos(0.0, 1.0);
        // The server disagrees by 8 units (say, a collision the client did not know about).
        let (pos, vel) = server_after(&(1..=10).map(|s| cmd(s, 1.0)).collect::<Vec<_>>(), start, &map);
        predictor.reconcile(&own(pos - Vec2::new(8.0, 0.0), vel), 10, DT, &map);
        assert!((predictor.last_error - 8.0).abs() < 1e-3);
        let logged = predictor.take_corrections();
        assert!(logged.len() == 1 && (logged[0] - 8.0).abs() < 1e-3, "{logged:?}");
        assert!(predictor.take_corrections().is_empty());
        let shown_after = predictor.render_pos(0.0, 1.0);
        assert!((shown_after - shown_before).length() < 1e-3, "no visible jump on the correction frame");
        // Half a second later the offset has decayed away.
        for _ in 0..30 {
            predictor.render_pos(DT, 1.0);
        }
        assert!((predictor.render_pos(0.0, 1.0) - predictor.pos).length() < 0.05);
    }

    #[test]
    fn frames_between_steps_are_drawn_as_a_blend_of_the_last_two() {
        let map = map();
        let mut predictor = Predictor::new();
        predictor.reconcile(&own(Vec2::new(500.0, 500.0), Vec2::ZERO), 0, DT, &map);
        for seq in 1..=30 {
            predictor.apply_local(cmd(seq, 1.0), DT, &map);
        }
        let before = predictor.render_pos(0.0, 0.0);
        let after = predictor.render_pos(0.0, 1.0);
        let half = predictor.render_pos(0.0, 0.5);
        assert!(after.x > before.x, "moving right");
        assert!((half - before.lerp(after, 0.5)).length() < 1e-4);
        // A 144 Hz display: the drawn position advances evenly, frame by frame.
        let (mut accumulator, mut last, mut steps) = (0.0f32, predictor.render_pos(0.0, 0.0).x, Vec::new());
        let mut seq = 31;
        for _ in 0..144 {
            accumulator += 1.0 / 144.0;
            while accumulator >= DT {
                predictor.apply_local(cmd(seq, 1.0), DT, &map);
                seq += 1;
                accumulator -= DT;
            }
            let x = predictor.render_pos(0.0, accumulator / DT).x;
            steps.push(x - last);
            last = x;
        }
        let (min, max) = steps.iter().skip(20).fold((f32::MAX, f32::MIN), |(lo, hi), s| (lo.min(*s), hi.max(*s)));
        assert!(max - min < 0.05 * max, "per-frame motion {min:.3}..{max:.3}");
    }

    #[test]
    fn teleports_snap() {
        let map = map();
        let mut predictor = Predictor::new();
        predictor.reconcile(&own(Vec2::new(100.0, 100.0), Vec2::ZERO), 0, DT, &map);
        predictor.reconcile(&own(Vec2::new(1500.0, 1500.0), Vec2::ZERO), 0, DT, &map);
        assert_eq!(predictor.render_pos(0.0, 1.0), Vec2::new(1500.0, 1500.0));
        assert!(predictor.take_corrections().is_empty(), "a teleport is not a correction");
    }

    #[test]
    fn dead_players_are_not_predicted() {
        let map = map();
        let mut predictor = Predictor::new();
        let mut dead = own(Vec2::new(100.0, 100.0), Vec2::ZERO);
        dead.alive = false;
        predictor.reconcile(&dead, 0, DT, &map);
        predictor.apply_local(cmd(1, 1.0), DT, &map);
        assert_eq!(predictor.pos, Vec2::new(100.0, 100.0));
        assert_eq!(predictor.pending(), 0);
    }
}
