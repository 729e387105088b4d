//! Lock-free latency histograms and the Prometheus text rendering behind `/metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the histogram buckets, microseconds (the last bucket is +Inf).
pub const BUCKETS_US: [u64; 28] = [
    25, 50, 100, 200, 300, 500, 750, 1_000, 1_500, 2_000, 2_500, 3_000, 4_000, 5_000, 6_000, 7_000, 8_000, 9_000,
    10_000, 12_500, 15_000, 20_000, 30_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
];

/// A cumulative histogram of durations, safe to record from one task and read from others.
#[derive(Debug)]
pub struct Histogram {
    /// Count per bucket (not cumulative); one extra for +Inf.
    counts: [AtomicU64; BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_us: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn record(&self, duration: Duration) {
        let micros = duration.as_micros().min(u128::from(u64::MAX)) as u64;
        let index = BUCKETS_US.iter().position(|&bound| micros <= bound).unwrap_or(BUCKETS_US.len());
        self.counts[index].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(micros, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `other`'s counts into this one (to render several rooms' histograms as one).
    pub fn add(&self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter().zip(&other.counts) {
            mine.fetch_add(theirs.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        self.sum_us.fetch_add(other.sum_us.load(Ordering::Relaxed), Ordering::Relaxed);
        self.count.fetch_add(other.count(), Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Bucket counts (not cumulative), the last being +Inf.
    pub fn snapshot(&self) -> Vec<u64> {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect()
    }

    /// Appends the histogram in Prometheus text format, in seconds.
    pub fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (index, count) in self.snapshot().into_iter().enumerate() {
            cumulative += count;
            let le = BUCKETS_US.get(index).map_or("+Inf".to_string(), |&us| format!("{}", us as f64 / 1e6));
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_sum {}", self.sum_us.load(Ordering::Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {}", self.count());
    }
}

/// Estimates a quantile (0..=1) from non-cumulative bucket counts: the upper bound of the bucket
/// it falls in, in microseconds (`None` when empty; `u64::MAX` for the +Inf bucket).
pub fn quantile_us(counts: &[u64], q: f64) -> Option<u64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let target = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (index, count) in counts.iter().enumerate() {
        seen += count;
        if seen >= target {
            return Some(BUCKETS_US.get(index).copied().unwrap_or(u64::MAX));
        }
    }
    None
}

pub fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
}

pub fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_from_buckets() {
        let histogram = Histogram::default();
        for micros in [10, 40, 60, 90, 150, 400, 900, 2_500, 80_000, 5_000_000] {
            histogram.record(Duration::from_micros(micros));
        }
        let counts = histogram.snapshot();
        assert_eq!(quantile_us(&counts, 0.5), Some(200));
        assert_eq!(quantile_us(&counts, 0.9), Some(100_000));
        assert_eq!(quantile_us(&counts, 1.0), Some(u64::MAX));
        assert_eq!(quantile_us(&[0; 3], 0.5), None);
        let mut text = String::new();
        histogram.render(&mut text, "t_seconds", "test");
        assert!(text.contains("t_seconds_bucket{le=\"0.0002\"} 5"), "{text}");
        assert!(text.contains("t_seconds_bucket{le=\"+Inf\"} 10"));
        assert!(text.contains("t_seconds_count 10"));
    }
}
