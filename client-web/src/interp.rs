//! Interpolation of remote entities between snapshots.
//!
//! Remote players are drawn where they were at the playout clock's render tick
//! ([`crate::playout::Playout`]), blended between the two snapshots around it, so motion is smooth
//! even though snapshots arrive 30 times a second with jitter.

use std::collections::VecDeque;

use glam::Vec2;
use shared::quant;
use shared::snapshot::{EntityState, NetId, View};

/// One remote player's drawable state in one snapshot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pose {
    pub pos: Vec2,
    pub aim: f32,
}

#[derive(Debug, Clone)]
struct Frame {
    tick: u32,
    /// Sorted by id (views are).
    poses: Vec<(NetId, Pose)>,
}

impl Frame {
    fn pose(&self, id: NetId) -> Option<Pose> {
        self.poses.binary_search_by_key(&id, |(pid, _)| *pid).ok().map(|i| self.poses[i].1)
    }
}

/// Recent snapshots' player poses, and the delay to draw them at.
#[derive(Debug, Clone)]
pub struct Interpolator {
    frames: VecDeque<Frame>,
    /// Ticks between snapshots at nominal rate.
    interval_ticks: f64,
}

/// Snapshots kept for interpolation (about a second at 30 Hz).
const KEEP: usize = 32;

impl Interpolator {
    pub fn new(tick_rate: u16, snapshot_rate: u16) -> Interpolator {
        Interpolator {
            frames: VecDeque::with_capacity(KEEP),
            interval_ticks: f64::from(tick_rate) / f64::from(snapshot_rate.max(1)),
        }
    }

    /// Records the players of a snapshot (older or repeated ticks are ignored). `deferred_from`
    /// is given when the server's byte budget limited this snapshot: the baseline (tick and
    /// view) its delta was applied to. A player whose state is the baseline's while a snapshot
    /// newer than the baseline already had it elsewhere was left out (it keeps its acknowledged
    /// state), so it holds its newest known pose instead of jumping back.
    pub fn push(&mut self, tick: u32, view: &View, deferred_from: Option<(u32, &View)>) {
        if self.frames.back().is_some_and(|newest| tick <= newest.tick) {
            return;
        }
        let mut frame = if self.frames.len() >= KEEP {
            self.frames.pop_front().expect("non-empty when full")
        } else {
            Frame { tick, poses: Vec::new() }
        };
        frame.tick = tick;
        frame.poses.clear();
        // The newest frame, if it is newer than the baseline (it may then know better).
        let newer = deferred_from.and_then(|(base_tick, _)| self.frames.back().filter(|f| f.tick > base_tick));
        for (id, state) in &view.entities {
            if let EntityState::Player(p) = state {
                let mut pose = Pose { pos: quant::q_to_vec(p.x, p.y), aim: quant::q_to_angle(p.aim) };
                let deferred = deferred_from.and_then(|(_, b)| b.get(*id)).is_some_and(|old| old == state);
                if deferred && let Some(known) = newer.and_then(|f| f.pose(*id)) {
                    pose = known;
                }
                frame.poses.push((*id, pose));
            }
        }
        self.frames.push_back(frame);
    }

    /// The pose of `id` at fractional `tick`: blended between the snapshots around it, held at
    /// the newest one (extrapolating at most one interval) when `tick` is past the buffer, and
    /// `None` when the player is in neither snapshot.
    pub fn sample(&self, id: NetId, tick: f64) -> Option<Pose> {
        let find = |frame: &Frame| frame.pose(id);
        let newest = self.frames.back()?;
        if tick >= f64::from(newest.tick) {
            let pose = find(newest)?;
            // Extrapolate from the previous frame, for at most one interval.
            let previous = self.frames.iter().rev().nth(1);
            if let Some(previous) = previous
                && let Some(before) = find(previous)
            {
                let span = f64::from(newest.tick - previous.tick);
                let ahead = (tick - f64::from(newest.tick)).min(self.interval_ticks);
                let velocity = (pose.pos - before.pos) / span as f32;
                if velocity.length() < 40.0 {
                    return Some(Pose { pos: pose.pos + velocity * ahead as f32, aim: pose.aim });
                }
            }
            return Some(pose);
        }
        // Find the pair of frames around `tick`.
        let later_index = self.frames.iter().position(|f| f64::from(f.tick) > tick)?;
        if later_index == 0 {
            return find(&self.frames[0]);
        }
        let (before, after) = (&self.frames[later_index - 1], &self.frames[later_index]);
        match (find(before), find(after)) {
            (Some(a), Some(b)) => {
                let t = ((tick - f64::from(before.tick)) / f64::from(after.tick - before.tick)) as f32;
                // A jump of more than 150 units in one gap is a respawn, not motion: don't slide.
                if a.pos.distance(b.pos) > 150.0 {
                    return Some(if t < 0.5 { a } else { b });
                }
                Some(Pose { pos: a.pos.lerp(b.pos, t), aim: lerp_angle(a.aim, b.aim, t) })
            }
            (None, Some(b)) => Some(b),
            (Some(a), None) => Some(a),
            (None, None) => None,
        }
    }

    /// Ids of players present in the newest snapshot.
    pub fn latest_ids(&self) -> impl Iterator<Item = NetId> + '_ {
        self.frames.back().into_iter().flat_map(|f| f.poses.iter().map(|(id, _)| *id))
    }

    pub fn newest_tick(&self) -> Option<u32> {
        self.frames.back().map(|f| f.tick)
    }

    pub fn clear(&mut self) {
        self.frames.clear();
    }
}

/// Fraction of a remote player's leftover visual offset kept after one second: it fades with a
/// time constant of about 0.1 s, like the own player's corrections.
const OFFSET_KEEP_PER_S: f32 = 0.000_045;
/// A remote player drawn moving faster than this many times its top speed in one frame is
/// smoothed: the data changed under it (a stall's end: the playout clock had run to the edge
/// of the data and the next snapshot disagreed with what was drawn). Catch-up at twice the speed
/// passes untouched.
const SMOOTH_ABOVE: f32 = 2.5;
/// Jumps longer than this are respawns: drawn at once.
const TELEPORT: f32 = 150.0;

/// Keeps remote players from jumping on screen when new data disagrees with what was drawn: the
/// difference becomes an offset that fades in a tenth of a second, so a player never appears to
/// move more than 2.5× its top speed in a frame (respawns excepted).
#[derive(Debug, Default, Clone)]
pub struct Smoother {
    /// Per player: where it was drawn last frame, the offset still being faded out, and the
    /// frame it was last drawn in.
    drawn: std::collections::HashMap<NetId, (Vec2, Vec2, u64)>,
    frame: u64,
}

impl Smoother {
    /// Where to draw `id` this frame, given where the data puts it (`target`).
    pub fn smooth(&mut self, id: NetId, target: Vec2, frame_s: f32, max_speed: f32) -> Vec2 {
        let frame = self.frame;
        let Some(&(last, offset, _)) = self.drawn.get(&id) else {
            self.drawn.insert(id, (target, Vec2::ZERO, frame));
            return target;
        };
        let mut offset = offset * OFFSET_KEEP_PER_S.powf(frame_s.clamp(0.0, 0.25));
        let limit = SMOOTH_ABOVE * max_speed * frame_s.max(1.0 / 240.0);
        let step = target + offset - last;
        if target.distance(last) > TELEPORT {
            offset = Vec2::ZERO;
        } else if step.length() > limit {
            offset = last + step.clamp_length_max(limit) - target;
        }
        let drawn = target + offset;
        self.drawn.insert(id, (drawn, offset, frame));
        drawn
    }

    /// Starts a frame: players smoothed before [`Smoother::end_frame`] are the ones drawn.
    pub fn begin_frame(&mut self) {
        self.frame += 1;
    }

    /// Forgets players not drawn this frame (they left or went out of view).
    pub fn end_frame(&mut self) {
        let frame = self.frame;
        self.drawn.retain(|_, (_, _, seen)| *seen == frame);
    }

    pub fn clear(&mut self) {
        self.drawn.clear();
    }
}

/// Interpolates angles the short way round.
pub fn lerp_angle(a: f32, b: f32, t: f32) -> f32 {
    use std::f32::consts::{PI, TAU};
    let mut diff = (b - a) % TAU;
    if diff > PI {
        diff -= TAU;
    } else if diff < -PI {
        diff += TAU;
    }
    a + diff * t
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::snapshot::PlayerNet;

    fn view_with(id: u32, x: f32, y: f32) -> View {
        let (qx, qy) = quant::vec_to_q(Vec2::new(x, y));
        View {
            entities: vec![(
                NetId(id),
                EntityState::Player(PlayerNet { x: qx, y: qy, aim: 0, hp: 100, score: 0, flags: 1 }),
            )],
        }
    }

    #[test]
    fn blends_between_snapshots() {
        let mut interp = Interpolator::new(60, 30);
        interp.push(100, &view_with(1, 100.0, 100.0), None);
        interp.push(102, &view_with(1, 110.0, 100.0), None);
        let mid = interp.sample(NetId(1), 101.0).unwrap();
        assert!((mid.pos.x - 105.0).abs() < 0.2, "{mid:?}");
        let quarter = interp.sample(NetId(1), 100.5).unwrap();
        assert!((quarter.pos.x - 102.5).abs() < 0.2, "{quarter:?}");
        assert!(interp.sample(NetId(2), 101.0).is_none());
    }

    #[test]
    fn extrapolates_at_most_one_interval_past_the_newest() {
        let mut interp = Interpolator::new(60, 30);
        interp.push(100, &view_with(1, 100.0, 100.0), None);
        interp.push(102, &view_with(1, 110.0, 100.0), None);
        let ahead = interp.sample(NetId(1), 103.0).unwrap();
        assert!((ahead.pos.x - 115.0).abs() < 0.2, "{ahead:?}");
        let far = interp.sample(NetId(1), 200.0).unwrap();
        assert!((far.pos.x - 120.0).abs() < 0.2, "capped: {far:?}");
    }

    #[test]
    fn respawns_do_not_slide_across_the_map() {
        let mut interp = Interpolator::new(60, 30);
        interp.push(100, &view_with(1, 100.0, 100.0), None);
        interp.push(102, &view_with(1, 1900.0, 1900.0), None);
        let pose = interp.sample(NetId(1), 100.6).unwrap();
        assert_eq!(pose.pos, Vec2::new(100.0, 100.0));
    }

    #[test]
    fn angles_take_the_short_way() {
        use std::f32::consts::PI;
        let mid = lerp_angle(PI - 0.1, -PI + 0.1, 0.5);
        assert!((mid.abs() - PI).abs() < 1e-4, "{mid}");
    }

    #[test]
    fn a_player_the_budget_left_out_holds_its_newest_pose_instead_of_jumping_back() {
        let mut interp = Interpolator::new(60, 30);
        let baseline = view_with(1, 100.0, 100.0);
        interp.push(100, &baseline, None);
        interp.push(102, &view_with(1, 110.0, 100.0), Some((100, &baseline)));
        // Tick 104 is a delta against tick 100 that left player 1 out: it carries 100's state.
        interp.push(104, &view_with(1, 100.0, 100.0), Some((100, &baseline)));
        let held = interp.sample(NetId(1), 104.0).unwrap();
        assert!((held.pos.x - 110.0).abs() < 0.2, "held at its newest pose, got {:?}", held.pos);
        // Refreshed at 106: it moves on from there.
        interp.push(106, &view_with(1, 120.0, 100.0), Some((100, &baseline)));
        let moved = interp.sample(NetId(1), 105.0).unwrap();
        assert!((moved.pos.x - 115.0).abs() < 0.2, "{:?}", moved.pos);
        // Not budget-limited (or a full snapshot): the state is taken as it is, even when it is
        // the baseline's (a player that went there and came back).
        interp.push(108, &view_with(1, 100.0, 100.0), None);
        assert!((interp.sample(NetId(1), 108.0).unwrap().pos.x - 100.0).abs() < 0.2);
    }

    #[test]
    fn a_remote_jump_is_faded_in_not_drawn_at_once_and_respawns_are_not() {
        let mut smoother = Smoother::default();
        let frame = 1.0 / 60.0;
        let id = NetId(3);
        smoother.begin_frame();
        assert_eq!(smoother.smooth(id, Vec2::new(100.0, 0.0), frame, 300.0), Vec2::new(100.0, 0.0));
        // The data jumps 22 units in one frame (limit 2.5 × 5 = 12.5): drawn at most 12.5 on.
        let first = smoother.smooth(id, Vec2::new(122.0, 0.0), frame, 300.0);
        assert!((first.x - 112.5).abs() < 1e-3, "{first}");
        // Then it catches up within a few frames, never jumping again.
        let mut last = first;
        for _ in 0..30 {
            let now = smoother.smooth(id, Vec2::new(122.0, 0.0), frame, 300.0);
            assert!(now.distance(last) <= 12.5 + 1e-3);
            last = now;
        }
        assert!((last.x - 122.0).abs() < 0.1, "caught up: {last}");
        // Normal motion (5 units a frame) is drawn as it is.
        assert_eq!(smoother.smooth(id, Vec2::new(127.0, 0.0), frame, 300.0).x.round(), 127.0);
        // A respawn across the map is drawn at once.
        assert_eq!(smoother.smooth(id, Vec2::new(900.0, 0.0), frame, 300.0), Vec2::new(900.0, 0.0));
    }
}
