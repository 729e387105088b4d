//! Figures the rooms publish: lock-free latency histograms and each room's [`RoomStats`], written
//! by the room's task and read by `/metrics`, the admin API, health checks and tests. Below both
//! the rooms and whoever reads them.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
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

    /// The sum of every recorded duration, microseconds.
    pub fn sum_us(&self) -> u64 {
        self.sum_us.load(Ordering::Relaxed)
    }

    /// Bucket counts (not cumulative), the last being +Inf.
    pub fn snapshot(&self) -> Vec<u64> {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect()
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

/// Figures the room publishes for logs, `/metrics` and tests. Written by the sim task only.
#[derive(Debug, Default)]
pub struct RoomStats {
    pub tick: AtomicU32,
    pub ticks: AtomicU64,
    /// Ticks dropped because the loop fell more than `room::task::MAX_CATCH_UP_TICKS` behind.
    pub ticks_dropped: AtomicU64,
    /// Duration of the last tick (step plus snapshots, if any), microseconds.
    pub last_tick_us: AtomicU64,
    /// When the tick loop last ran (unix ms): `/livez` checks that rooms with players tick.
    pub last_tick_unix_ms: AtomicU64,
    pub players: AtomicU32,
    pub clients: AtomicU32,
    /// Of the clients, those whose sockets the room's task polls itself (`net::polled`).
    pub polled_sockets: AtomicU32,
    pub snapshots_sent: AtomicU64,
    /// Snapshots not sent because the client's outbox was full.
    pub snapshots_skipped: AtomicU64,
    pub snapshot_bytes: AtomicU64,
    /// Duration of each loop iteration that did work (steps plus snapshots), without the time
    /// spent on polled sockets.
    pub tick_time: Histogram,
    /// Per loop iteration: reading and writing the room's polled sockets (decoding the frames
    /// and handling their messages included).
    pub socket_io_time: Histogram,
    /// From an input's arrival to the snapshot that acknowledges it leaving for the socket.
    pub input_ack_latency: Histogram,
    /// Shots whose claimed view was clamped: in the future, or older than `--lag-comp-ms`.
    pub lag_comp_future: AtomicU64,
    pub lag_comp_too_old: AtomicU64,
    /// Snapshots that left changes for later to stay within `--snapshot-budget-bytes`, and the
    /// changes (entity states) so deferred.
    pub snapshots_budget_limited: AtomicU64,
    pub budget_deferred_entities: AtomicU64,
    /// Snapshots over the budget anyway (their fixed part alone did not fit).
    pub snapshots_over_budget: AtomicU64,
}

/// A game server's reports to the fleet lobby (one per process; all zero outside a fleet).
#[derive(Debug, Default)]
pub struct FleetReports {
    /// Reporting at all (`--lobby-url` given).
    pub reporting: std::sync::atomic::AtomicBool,
    /// The last report reached a lobby that stored it.
    pub up: std::sync::atomic::AtomicBool,
    pub failed: AtomicU64,
}

/// This process's [`FleetReports`].
pub static FLEET_REPORTS: FleetReports = FleetReports {
    reporting: std::sync::atomic::AtomicBool::new(false),
    up: std::sync::atomic::AtomicBool::new(false),
    failed: AtomicU64::new(0),
};

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
