//! The playout clock for remote entities: where in server ticks they are drawn this frame.
//!
//! Anchored to when snapshots actually arrive, not to the ping-based server clock: a snapshot is
//! already one-way latency old when it lands, so a clock that adds half the round trip eats the
//! interpolation buffer and extrapolates on any real link. Each arrival gives a sample of
//! `tick − arrival_ms × ticks_per_ms`; TCP only ever delays, so the anchor follows the early
//! arrivals (a high percentile of the samples) and a stall's late burst does not drag it back.
//! Render time aims at `anchor − delay`, where the delay covers one snapshot interval plus the
//! measured arrival jitter (no RTT term), and moves at 0.9×–1.1× real time to get there: after a
//! stall it slows, then catches up gently; it jumps only when more than 250 ms off. It never
//! runs more than one snapshot interval past the newest snapshot: when data stops, it stops.

use std::collections::VecDeque;

/// Arrival samples kept (about two seconds at 30 snapshots per second).
const SAMPLES: usize = 64;
/// The anchor: this quantile of the samples (early arrivals).
const ANCHOR_QUANTILE: f64 = 0.9;
/// The jitter measure: anchor minus this quantile, in ticks.
const JITTER_QUANTILE: f64 = 0.5;
/// Most the clock speeds up or slows down relative to real time.
const MAX_RATE_CHANGE: f64 = 0.1;
/// Ticks off target at which the rate change is at its maximum (smaller errors, smaller change).
const FULL_CORRECTION_TICKS: f64 = 3.0;
/// Off target by more than this (milliseconds of server time): jump instead of slewing.
const JUMP_MS: f64 = 250.0;

#[derive(Debug, Clone)]
pub struct Playout {
    ticks_per_ms: f64,
    interval_ticks: f64,
    samples: VecDeque<f64>,
    anchor: Option<f64>,
    jitter_ticks: f64,
    newest: Option<f64>,
    /// Where remote entities are drawn (fractional tick), and when that was last advanced.
    render: Option<(f64, f64)>,
    /// How far past the newest snapshot the last frame drew, milliseconds.
    pub extrapolated_ms: f64,
}

impl Playout {
    pub fn new(tick_rate: u16, snapshot_rate: u16) -> Playout {
        Playout {
            ticks_per_ms: f64::from(tick_rate) / 1000.0,
            interval_ticks: f64::from(tick_rate) / f64::from(snapshot_rate.max(1)),
            samples: VecDeque::with_capacity(SAMPLES),
            anchor: None,
            jitter_ticks: 0.0,
            newest: None,
            render: None,
            extrapolated_ms: 0.0,
        }
    }

    /// A snapshot for `tick` arrived at `now_ms`.
    pub fn on_arrival(&mut self, tick: u32, now_ms: f64) {
        let tick = f64::from(tick);
        if self.newest.is_some_and(|newest| tick <= newest) {
            return;
        }
        self.newest = Some(tick);
        if self.samples.len() == SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back(tick - now_ms * self.ticks_per_ms);
        let mut sorted: Vec<f64> = self.samples.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
        let anchor = at(ANCHOR_QUANTILE);
        self.jitter_ticks = anchor - at(JITTER_QUANTILE);
        self.anchor = Some(anchor);
    }

    /// Ticks the drawn time trails the anchor: one snapshot interval, a tick of margin and twice
    /// the arrival jitter, at most ten intervals.
    pub fn delay_ticks(&self) -> f64 {
        (self.interval_ticks + 1.0 + 2.0 * self.jitter_ticks).min(10.0 * self.interval_ticks)
    }

    pub fn jitter_ticks(&self) -> f64 {
        self.jitter_ticks
    }

    pub fn newest_tick(&self) -> Option<f64> {
        self.newest
    }

    /// Advances the clock to `now_ms` and returns the (fractional) tick to draw remote entities
    /// at; `None` before the first snapshot.
    pub fn advance(&mut self, now_ms: f64) -> Option<f64> {
        let (anchor, newest) = (self.anchor?, self.newest?);
        let target = anchor + now_ms * self.ticks_per_ms - self.delay_ticks();
        let render = match self.render {
            None => target,
            Some((render, last_ms)) => {
                let elapsed = (now_ms - last_ms).max(0.0) * self.ticks_per_ms;
                let error = target - (render + elapsed);
                if error > JUMP_MS * self.ticks_per_ms {
                    // Far behind (a long blip): jump forward. Never backward: far ahead, the
                    // clock just runs at its slowest until the target catches up.
                    target
                } else {
                    let rate = 1.0 + (error / FULL_CORRECTION_TICKS).clamp(-1.0, 1.0) * MAX_RATE_CHANGE;
                    render + elapsed * rate
                }
            }
        };
        // Never more than one interval past the data: when snapshots stop, the clock stops.
        let render = render.min(newest + self.interval_ticks);
        self.extrapolated_ms = ((render - newest) / self.ticks_per_ms).max(0.0);
        self.render = Some((render, now_ms));
        Some(render)
    }

    /// Forgets everything (a new match, a replay seek).
    pub fn clear(&mut self) {
        *self = Playout { samples: VecDeque::with_capacity(SAMPLES), ..Playout::new_like(self) };
    }

    fn new_like(other: &Playout) -> Playout {
        Playout {
            ticks_per_ms: other.ticks_per_ms,
            interval_ticks: other.interval_ticks,
            samples: VecDeque::new(),
            anchor: None,
            jitter_ticks: 0.0,
            newest: None,
            render: None,
            extrapolated_ms: 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME_MS: f64 = 1000.0 / 60.0;

    /// Feeds 30 Hz snapshots of a 60 Hz server, each delayed by `latency(i)`, and draws 60 fps
    /// frames for `seconds`; returns (frame time, render tick, newest tick) per frame.
    fn run(seconds: f64, latency: impl Fn(u32) -> f64) -> Vec<(f64, f64, f64)> {
        let mut playout = Playout::new(60, 30);
        let mut arrivals: Vec<(f64, u32)> =
            (0..(seconds * 30.0) as u32).map(|i| (i as f64 * 1000.0 / 30.0 + latency(i), 2 * i)).collect();
        arrivals.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut next = 0;
        let mut frames = Vec::new();
        let mut now = 0.0;
        while now < seconds * 1000.0 {
            while next < arrivals.len() && arrivals[next].0 <= now {
                playout.on_arrival(arrivals[next].1, arrivals[next].0);
                next += 1;
            }
            if let Some(render) = playout.advance(now) {
                frames.push((now, render, playout.newest_tick().unwrap()));
            }
            now += FRAME_MS;
        }
        frames
    }

    #[test]
    fn latency_does_not_eat_the_buffer() {
        // 150 ms one way, no jitter: drawn just behind the newest snapshot, never past it.
        let frames = run(10.0, |_| 150.0);
        for &(now, render, newest) in frames.iter().skip(60) {
            assert!(render <= newest + 1e-9, "at {now:.0} ms drew {render:.2} past newest {newest}");
            assert!(newest - render <= 4.0 + 1e-9, "at {now:.0} ms trailing {:.2} ticks", newest - render);
        }
    }

    #[test]
    fn motion_is_even_on_a_clean_link() {
        let frames = run(6.0, |_| 40.0);
        for pair in frames.windows(2).skip(120) {
            let step = pair[1].1 - pair[0].1;
            assert!((step - 1.0).abs() < 0.02, "render advanced {step:.3} ticks in one 60 fps frame");
        }
    }

    #[test]
    fn jitter_widens_the_buffer_and_stays_inside_the_data() {
        // ± 20 ms of jitter on 75 ms (a pseudo-random but fixed pattern).
        let jitter = |i: u32| 75.0 + ((i.wrapping_mul(2_654_435_761) >> 16) % 41) as f64 - 20.0;
        let frames = run(10.0, jitter);
        let past = frames.iter().skip(90).filter(|(_, render, newest)| render > newest).count();
        assert!(past * 100 < frames.len(), "{past} of {} frames drew past the newest snapshot", frames.len());
        let mut trailing: Vec<f64> = frames.iter().skip(90).map(|(_, r, n)| n - r).collect();
        trailing.sort_by(f64::total_cmp);
        assert!(trailing[trailing.len() / 2] < 8.0, "median trail {} ticks", trailing[trailing.len() / 2]);
    }

    #[test]
    fn render_time_never_runs_backward_when_the_link_gets_slower() {
        // The route changes: 50 ms one way, then 400 ms (the anchor drops by 21 ticks).
        let frames = run(12.0, |i| if i < 150 { 50.0 } else { 400.0 });
        for pair in frames.windows(2) {
            assert!(pair[1].1 >= pair[0].1 - 1e-9, "render went back from {} to {}", pair[0].1, pair[1].1);
        }
    }

    #[test]
    fn a_stall_stops_the_clock_then_it_catches_up_without_jumping() {
        // 75 ms link; snapshots sent during 250 ms every 5 s arrive together at the stall's end.
        let latency = |i: u32| {
            let sent = i as f64 * 1000.0 / 30.0;
            let phase = sent % 5000.0;
            let held = if (2000.0..2250.0).contains(&phase) { 2250.0 - phase } else { 0.0 };
            75.0 + held
        };
        let frames = run(12.0, latency);
        let mut largest_step: f64 = 0.0;
        for pair in frames.windows(2).skip(60) {
            let step = pair[1].1 - pair[0].1;
            assert!(step >= -1e-9, "render time went backwards: {step}");
            largest_step = largest_step.max(step);
            assert!(pair[1].1 <= pair[1].2 + 2.0 + 1e-9, "never more than one interval past the data");
        }
        // Catching up runs at most 10 % fast: no frame jumps.
        assert!(largest_step <= 1.1 + 1e-6, "largest step {largest_step:.3} ticks");
    }
}
