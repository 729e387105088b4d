//! Input pacing: how fast the fixed-step loop makes inputs, relative to real time, so the
//! server's queue of this client's inputs stays near its target depth.
//!
//! Each snapshot reports how many of our inputs were waiting on the server. Too few (the queue
//! ran dry in the last half second: the server held our player still for a tick) and we make
//! inputs a little faster until there is a cushion; too many (every report over the last half
//! second above the target: each one adds a tick of delay to everything we do) and we slow a
//! little. The change is at most 5 % and goes through a deadband, because the feedback arrives a
//! round trip late and a single stall is noise, not a trend. After a stall the server catches up
//! by itself (two inputs per tick), so pacing never needs to jump.

use std::collections::VecDeque;

/// Reports considered (about half a second of snapshots at 30 Hz).
const WINDOW: usize = 15;
/// The cushion we aim for: at least one input always waiting (arrivals are clumpy: the browser's
/// frames and the server's ticks beat against each other, and the link jitters), and not
/// always more than two (the server catches up above two: each input waiting is a tick of delay).
const LOW: u8 = 1;
const HIGH: u8 = 2;
/// Most the input rate departs from real time.
const MAX_CHANGE: f64 = 0.05;
/// How much the rate moves per report while the cushion is out of band.
const STEP: f64 = 0.002;
/// In band, the share of its distance from 1.0 the rate gives back per report (about a
/// five-second time constant at 30 reports per second).
const LEAK: f64 = 0.007;

/// This many empty reports in a row is a network stall (nothing arrived for several ticks), not
/// a slow clock: those reports are ignored, so a Wi-Fi hiccup never winds the rate up.
const STALL_RUN: u32 = 4;

#[derive(Debug, Clone)]
pub struct Pacer {
    reports: VecDeque<u8>,
    rate: f64,
    /// Empty reports in a row so far (held back until we know whether it is a stall).
    empty_run: u32,
    last: Option<u8>,
}

impl Default for Pacer {
    fn default() -> Self {
        Pacer { reports: VecDeque::with_capacity(WINDOW), rate: 1.0, empty_run: 0, last: None }
    }
}

impl Pacer {
    /// The server's queue depth from one snapshot.
    pub fn on_report(&mut self, queue: u8) {
        self.last = Some(queue);
        if queue == 0 {
            self.empty_run += 1;
            return;
        }
        // A short run of empty reports was the clock falling behind: it counts.
        if self.empty_run < STALL_RUN {
            for _ in 0..self.empty_run {
                self.add(0);
            }
        }
        self.empty_run = 0;
        self.add(queue);
    }

    fn add(&mut self, queue: u8) {
        if self.reports.len() == WINDOW {
            self.reports.pop_front();
        }
        self.reports.push_back(queue);
        if self.reports.len() < WINDOW / 2 {
            return;
        }
        // Integral control with a deadband: nudge while the cushion is out of band, hold the
        // rate that works once it is in band (a clock a few percent slow needs a rate a few
        // percent above one for good, not a kick now and then).
        let lowest = self.reports.iter().copied().min().unwrap_or(LOW);
        if lowest < LOW {
            self.rate += STEP;
        } else if lowest > HIGH {
            self.rate -= STEP;
        } else {
            // In band: leak slowly back toward real time, so a rate that only clumpy arrivals
            // pushed up does not stay (a clock that truly needs it gets pushed up again).
            self.rate -= (self.rate - 1.0) * LEAK;
        }
        self.rate = self.rate.clamp(1.0 - MAX_CHANGE, 1.0 + MAX_CHANGE);
    }

    /// Inputs per tick of real time: multiply the frame time by this before stepping.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// The last depth the server reported.
    pub fn last_report(&self) -> Option<u8> {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server applying one input per tick (two while more than two wait), fed by a client
    /// whose clock runs `drift` slower or faster; returns (ticks the queue was empty in the
    /// second half, largest queue in the second half).
    fn simulate(drift: f64, paced: bool) -> (u32, usize) {
        simulate_with(drift, paced, |_| false).0
    }

    /// As [`simulate`], with `stalled(tick)` holding every input back until the stall ends
    /// (then they arrive together); also returns the final rate.
    fn simulate_with(drift: f64, paced: bool, stalled: impl Fn(u32) -> bool) -> ((u32, usize), f64) {
        let mut pacer = Pacer::default();
        let mut held = 0usize;
        let (mut queue, mut made, mut empty, mut largest) = (2usize, 0.0f64, 0u32, 0usize);
        let mut low = usize::MAX;
        let ticks = 60 * 60;
        for tick in 0..ticks {
            let rate = if paced { pacer.rate() } else { 1.0 };
            made += drift * rate;
            while made >= 1.0 {
                held += 1;
                made -= 1.0;
            }
            if !stalled(tick) {
                queue += held;
                held = 0;
            }
            // The server notes the depth when the tick begins and reports the lowest since the
            // previous snapshot (every other tick); then it applies one input (two while more
            // than two wait).
            low = low.min(queue);
            if tick % 2 == 0 {
                pacer.on_report(low.min(255) as u8);
                low = usize::MAX;
            }
            let take = if queue > 2 { 2 } else { 1 };
            let applied = take.min(queue);
            if tick > ticks / 2 {
                if applied == 0 {
                    empty += 1;
                }
                largest = largest.max(queue);
            }
            queue -= applied;
        }
        ((empty, largest), pacer.rate())
    }

    #[test]
    fn a_slow_client_clock_is_paced_up_and_the_queue_never_runs_dry() {
        // The browser's clock 2 % slow: unpaced, the server holds the player still on ~2 % of ticks.
        let (empty_unpaced, _) = simulate(0.98, false);
        let (empty_paced, largest) = simulate(0.98, true);
        assert!(empty_unpaced > 20, "{empty_unpaced}");
        assert!(empty_paced * 5 < empty_unpaced, "paced: {empty_paced} empty ticks (unpaced {empty_unpaced})");
        assert!(largest <= 4, "the cushion stays small: {largest}");
    }

    #[test]
    fn stalls_do_not_wind_the_rate_up() {
        // A true clock and a 250 ms stall (15 ticks) every 5 s: the server starves during each
        // stall, but that is the network, not our pace.
        let (_, rate) = simulate_with(1.0, true, |tick| tick % 300 >= 120 && tick % 300 < 135);
        assert!((rate - 1.0).abs() <= 0.01, "rate after a minute of stalls: {rate}");
    }

    #[test]
    fn the_rate_stays_within_five_percent_and_settles() {
        let mut pacer = Pacer::default();
        for report in 0..100 {
            pacer.on_report(if report % 2 == 0 { 0 } else { 1 });
        }
        assert!((pacer.rate() - 1.05).abs() < 1e-9, "{}", pacer.rate());
        for _ in 0..100 {
            pacer.on_report(9);
        }
        assert!((pacer.rate() - 0.95).abs() < 1e-9, "{}", pacer.rate());
        // In band: the rate drifts back toward real time, slowly.
        let before = pacer.rate();
        for _ in 0..30 {
            pacer.on_report(1);
        }
        assert!(pacer.rate() > before && pacer.rate() < 1.0 && pacer.rate() < before + 0.02, "{}", pacer.rate());
    }
}
