//! Rolling counters for the network overlay and the debug hook: rates over the last second and
//! frame-time percentiles.

use std::collections::VecDeque;

/// Counts events and bytes and reports their rate over the last second.
#[derive(Debug, Clone, Default)]
pub struct Rate {
    /// (time in ms, amount), oldest first, at most one second old.
    samples: VecDeque<(f64, f64)>,
}

impl Rate {
    pub fn add(&mut self, now_ms: f64, amount: f64) {
        self.samples.push_back((now_ms, amount));
        self.trim(now_ms);
    }

    fn trim(&mut self, now_ms: f64) {
        while self.samples.front().is_some_and(|(t, _)| now_ms - t > 1000.0) {
            self.samples.pop_front();
        }
    }

    /// Sum of amounts in the last second (a per-second rate).
    pub fn per_second(&mut self, now_ms: f64) -> f64 {
        self.trim(now_ms);
        self.samples.iter().map(|(_, amount)| amount).sum()
    }
}

/// The last few hundred frame times.
#[derive(Debug, Clone, Default)]
pub struct FrameTimes {
    recent: VecDeque<f64>,
    pub frames: u64,
}

const FRAME_WINDOW: usize = 300;

impl FrameTimes {
    pub fn add(&mut self, ms: f64) {
        if self.recent.len() >= FRAME_WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(ms);
        self.frames += 1;
    }

    pub fn mean(&self) -> f64 {
        if self.recent.is_empty() { 0.0 } else { self.recent.iter().sum::<f64>() / self.recent.len() as f64 }
    }

    /// The `q` quantile (0..=1) of recent frame times.
    pub fn quantile(&self, q: f64) -> f64 {
        if self.recent.is_empty() {
            return 0.0;
        }
        let mut sorted: Vec<f64> = self.recent.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        sorted[((sorted.len() - 1) as f64 * q).round() as usize]
    }

    pub fn last(&self) -> f64 {
        self.recent.back().copied().unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_covers_the_last_second() {
        let mut rate = Rate::default();
        rate.add(0.0, 100.0);
        rate.add(500.0, 50.0);
        assert_eq!(rate.per_second(900.0), 150.0);
        assert_eq!(rate.per_second(1200.0), 50.0);
        assert_eq!(rate.per_second(3000.0), 0.0);
    }

    #[test]
    fn frame_quantiles() {
        let mut frames = FrameTimes::default();
        for i in 1..=100 {
            frames.add(f64::from(i));
        }
        assert_eq!(frames.quantile(0.5), 51.0);
        assert_eq!(frames.quantile(0.99), 99.0);
        assert!((frames.mean() - 50.5).abs() < 1e-9);
        assert_eq!(frames.last(), 100.0);
    }
}
