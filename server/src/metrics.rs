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

/// `arena_build_info` and the standard process metrics (CPU seconds, resident memory, open file
/// descriptors, start time), read from `/proc/self` on Linux (left out elsewhere).
pub fn render_process(out: &mut String) {
    let _ = writeln!(
        out,
        "# HELP arena_build_info The running build.\n# TYPE arena_build_info gauge\narena_build_info{{version=\"{}\",protocol=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION"),
        shared::PROTOCOL_VERSION
    );
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return };
    // Fields after the command name (which may hold spaces, so split after its closing paren):
    // utime and stime are fields 14 and 15, starttime 22 (in clock ticks since boot).
    let fields: Vec<&str> = stat.rsplit_once(')').map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    // Linux's USER_HZ is 100 on every architecture the server targets.
    const TICKS_PER_SECOND: f64 = 100.0;
    if let (Some(user), Some(system)) = (field(14), field(15)) {
        let seconds = (user + system) as f64 / TICKS_PER_SECOND;
        let _ = writeln!(
            out,
            "# HELP process_cpu_seconds_total User and system CPU time spent.\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {seconds}"
        );
    }
    if let Some(rss_kb) = std::fs::read_to_string("/proc/self/status").ok().and_then(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    }) {
        gauge(out, "process_resident_memory_bytes", "Resident memory size in bytes.", rss_kb * 1024);
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        gauge(out, "process_open_fds", "Number of open file descriptors.", fds.count() as u64);
    }
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse::<u64>().ok()));
    if let (Some(boot), Some(start)) = (boot, field(22)) {
        let started = boot as f64 + start as f64 / TICKS_PER_SECOND;
        let _ = writeln!(
            out,
            "# HELP process_start_time_seconds Start time of the process since the Unix epoch.\n# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds {started}"
        );
    }
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
