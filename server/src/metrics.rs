//! The `/metrics` exposition, encoded by `prometheus-client`: it reads the figures every live room
//! publishes ([`crate::stats`]) at scrape time, so the tick never touches it.

use std::sync::atomic::{AtomicU64, Ordering};

pub use crate::stats::{BUCKETS_US, Histogram, quantile_us};

/// What `/metrics` shows, encoded by `prometheus-client` (Prometheus text format 0.0.4): the
/// server-wide totals of every live room (counters summed, histograms merged), a few series per
/// live room labeled `room="CODE"` (only live rooms, so label growth is bounded by
/// `--max-rooms`), `arena_build_info` and the standard process metrics. Values are read from the
/// rooms' own lock-free figures at scrape time: the tick loop never touches the registry.
pub fn registry(rooms: std::sync::Arc<crate::room::registry::Registry>) -> prometheus_client::registry::Registry {
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(RoomsCollector { rooms }));
    registry.register_collector(Box::new(ProcessCollector));
    registry
}

/// The registry as Prometheus text.
pub fn encode(registry: &prometheus_client::registry::Registry) -> String {
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, registry).expect("encoding into a String");
    out
}

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;

use shared::room::RoomCode;

use crate::stats::RoomStats;

/// A server-wide counter: name (without `_total`), help, and the room counter it sums.
type CounterSeries = (&'static str, &'static str, fn(&RoomStats) -> &AtomicU64);

/// Server-wide totals of the rooms' counters.
const ROOM_COUNTERS: [CounterSeries; 9] = [
    ("arena_ticks", "Simulation ticks run, all rooms.", |s| &s.ticks),
    ("arena_ticks_dropped", "Ticks skipped after falling too far behind, all rooms.", |s| &s.ticks_dropped),
    ("arena_snapshots_sent", "Snapshots handed to connections.", |s| &s.snapshots_sent),
    ("arena_snapshots_skipped", "Snapshots skipped for full outboxes.", |s| &s.snapshots_skipped),
    ("arena_snapshot_bytes", "Bytes of snapshot messages sent.", |s| &s.snapshot_bytes),
    (
        "arena_lag_comp_clamped_future",
        "Shots whose input claimed a view after the server's present (clamped to it).",
        |s| &s.lag_comp_future,
    ),
    (
        "arena_lag_comp_clamped_window",
        "Shots whose input claimed a view older than --lag-comp-ms (clamped to the window).",
        |s| &s.lag_comp_too_old,
    ),
    (
        "arena_snapshots_budget_limited",
        "Snapshots that deferred changes to stay within --snapshot-budget-bytes.",
        |s| &s.snapshots_budget_limited,
    ),
    ("arena_snapshot_deferred_entities", "Entity changes deferred to a later snapshot by the byte budget.", |s| {
        &s.budget_deferred_entities
    }),
];

/// One of our histograms as a Prometheus histogram (seconds).
struct Seconds<'a>(&'a Histogram);

impl std::fmt::Debug for Seconds<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Seconds")
    }
}

impl EncodeMetric for Seconds<'_> {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let counts = self.0.snapshot();
        let buckets: Vec<(f64, u64)> = BUCKETS_US.iter().map(|&us| us as f64 / 1e6).zip(counts).collect();
        let sum = self.0.sum_us() as f64 / 1e6;
        encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(sum, self.0.count(), &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// A room's label in `/metrics`: its code while it is public; otherwise `private-` and 8 hex
/// digits of an HMAC of the code under a key this process drew at random, so `/metrics` (public
/// on the game port unless `--metrics-bind` or `--metrics-require-token`) never shows a code
/// that only the room's players should know, and a private room keeps one label for its life.
fn room_label(code: RoomCode, public: bool) -> String {
    use hmac::Mac;
    static KEY: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    if public {
        return code.to_string();
    }
    let key = KEY.get_or_init(|| {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the OS random generator is available");
        key
    });
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    mac.update(b"arena metrics room label");
    mac.update(code.as_str().as_bytes());
    let tag = mac.finalize().into_bytes();
    format!("private-{:02x}{:02x}{:02x}{:02x}", tag[0], tag[1], tag[2], tag[3])
}

struct RoomsCollector {
    rooms: std::sync::Arc<crate::room::registry::Registry>,
}

impl std::fmt::Debug for RoomsCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RoomsCollector")
    }
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: impl prometheus_client::encoding::EncodeGaugeValue,
) -> Result<(), std::fmt::Error> {
    encoder.encode_descriptor(name, help, None, MetricType::Gauge)?.encode_gauge(&value)
}

impl Collector for RoomsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut rooms: Vec<_> = self
            .rooms
            .handles()
            .into_iter()
            .map(|h| (h.public.code, room_label(h.public.code, h.public.summary().public), h.public.stats.clone()))
            .collect();
        let main = self.rooms.main_code();
        rooms.sort_by_key(|(code, _, _)| (Some(*code) != main, *code));
        let load = |v: &AtomicU64| v.load(Ordering::Relaxed);
        let sum = |f: &dyn Fn(&RoomStats) -> u64| rooms.iter().map(|(_, _, s)| f(s)).sum::<u64>();
        gauge(&mut encoder, "arena_rooms", "Live rooms, Main included.", rooms.len() as u64)?;
        let oldest_tick = rooms.first().map_or(0, |(_, _, s)| s.tick.load(Ordering::Relaxed));
        gauge(&mut encoder, "arena_tick", "Current simulation tick of the oldest room.", u64::from(oldest_tick))?;
        let players = sum(&|s| u64::from(s.players.load(Ordering::Relaxed)));
        gauge(&mut encoder, "arena_players", "Players in all rooms, bots included.", players)?;
        let clients = sum(&|s| u64::from(s.clients.load(Ordering::Relaxed)));
        gauge(&mut encoder, "arena_clients", "Connected clients in all rooms (players and spectators).", clients)?;
        let polled = sum(&|s| u64::from(s.polled_sockets.load(Ordering::Relaxed)));
        gauge(
            &mut encoder,
            "arena_polled_sockets",
            "Client sockets their rooms read and write once per tick (outside the reactor).",
            polled,
        )?;
        for (name, help, field) in ROOM_COUNTERS {
            encoder
                .encode_descriptor(name, help, None, MetricType::Counter)?
                .encode_counter::<prometheus_client::encoding::NoLabelSet, u64, f64>(&sum(&|s| load(field(s))), None)?;
        }
        encoder
            .encode_descriptor(
                "arena_snapshots_over_budget",
                "Snapshots larger than the budget because their fixed part alone did not fit.",
                None,
                MetricType::Counter,
            )?
            .encode_counter::<prometheus_client::encoding::NoLabelSet, u64, f64>(
                &sum(&|s| load(&s.snapshots_over_budget)),
                None,
            )?;
        let fleet = &crate::stats::FLEET_REPORTS;
        if fleet.reporting.load(Ordering::Relaxed) {
            gauge(
                &mut encoder,
                "arena_fleet_directory_up",
                "1 when the last report to the fleet lobby was stored, 0 while the lobbies or their directory do not take it (matches go on).",
                u64::from(fleet.up.load(Ordering::Relaxed)),
            )?;
            encoder
                .encode_descriptor(
                    "arena_fleet_reports_failed",
                    "Reports to the fleet lobby that no lobby stored.",
                    None,
                    MetricType::Counter,
                )?
                .encode_counter::<prometheus_client::encoding::NoLabelSet, u64, f64>(&load(&fleet.failed), None)?;
        }
        let (tick_time, input_ack, socket_io) = (Histogram::default(), Histogram::default(), Histogram::default());
        for (_, _, stats) in &rooms {
            tick_time.add(&stats.tick_time);
            input_ack.add(&stats.input_ack_latency);
            socket_io.add(&stats.socket_io_time);
        }
        let histograms = [
            (
                "arena_tick_duration_seconds",
                "Time per tick-loop iteration with work (step and snapshots), all rooms.",
                &tick_time,
            ),
            (
                "arena_socket_io_seconds",
                "Time per tick-loop iteration reading and writing the room's own sockets (decoding and handling their messages included), all rooms.",
                &socket_io,
            ),
            (
                "arena_input_ack_latency_seconds",
                "From receiving an input to queueing the snapshot that acks it, all rooms.",
                &input_ack,
            ),
        ];
        for (name, help, histogram) in histograms {
            Seconds(histogram).encode(encoder.encode_descriptor(name, help, None, MetricType::Histogram)?)?;
        }
        // A few series per live room.
        type PerRoom = (&'static str, &'static str, MetricType, fn(&RoomStats) -> f64);
        let per_room: [PerRoom; 4] = [
            ("arena_room_players", "Players in the room, bots included.", MetricType::Gauge, |s| {
                f64::from(s.players.load(Ordering::Relaxed))
            }),
            ("arena_room_clients", "Connected clients in the room.", MetricType::Gauge, |s| {
                f64::from(s.clients.load(Ordering::Relaxed))
            }),
            ("arena_room_ticks", "Simulation ticks the room ran.", MetricType::Counter, |s| {
                s.ticks.load(Ordering::Relaxed) as f64
            }),
            (
                "arena_room_tick_p99_seconds",
                "99th percentile of the room's tick time since it opened.",
                MetricType::Gauge,
                |s| quantile_us(&s.tick_time.snapshot(), 0.99).map_or(0.0, |us| us.min(10_000_000) as f64 / 1e6),
            ),
        ];
        for (name, help, kind, value) in per_room {
            let mut family = encoder.encode_descriptor(name, help, None, kind)?;
            for (_, label, stats) in &rooms {
                let labels = [("room", label.clone())];
                let mut metric = family.encode_family(&labels)?;
                match kind {
                    MetricType::Counter => metric
                        .encode_counter::<prometheus_client::encoding::NoLabelSet, f64, f64>(&value(stats), None)?,
                    _ => metric.encode_gauge(&value(stats))?,
                }
            }
        }
        Ok(())
    }
}

/// `arena_build_info` and the standard process metrics (CPU seconds, resident memory, open file
/// descriptors, start time), read from `/proc/self` on Linux (left out elsewhere).
#[derive(Debug)]
struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let build =
            [("version", env!("CARGO_PKG_VERSION").to_string()), ("protocol", shared::PROTOCOL_VERSION.to_string())];
        encoder.encode_descriptor("arena_build", "The running build.", None, MetricType::Info)?.encode_info(&build)?;
        let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return Ok(()) };
        // Fields after the command name (which may hold spaces, so split after its closing
        // paren): utime and stime are fields 14 and 15, starttime 22 (clock ticks since boot).
        let fields: Vec<&str> = stat.rsplit_once(')').map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
        // Linux's USER_HZ is 100 on every architecture the server targets.
        const TICKS_PER_SECOND: f64 = 100.0;
        if let (Some(user), Some(system)) = (field(14), field(15)) {
            encoder
                .encode_descriptor("process_cpu_seconds", "User and system CPU time spent.", None, MetricType::Counter)?
                .encode_counter::<prometheus_client::encoding::NoLabelSet, f64, f64>(
                    &((user + system) as f64 / TICKS_PER_SECOND),
                    None,
                )?;
        }
        let rss_kb = std::fs::read_to_string("/proc/self/status").ok().and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        });
        if let Some(rss_kb) = rss_kb {
            gauge(&mut encoder, "process_resident_memory_bytes", "Resident memory size in bytes.", rss_kb * 1024)?;
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            gauge(&mut encoder, "process_open_fds", "Number of open file descriptors.", fds.count() as u64)?;
        }
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| s.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse::<u64>().ok()));
        if let (Some(boot), Some(start)) = (boot, field(22)) {
            let started = boot as f64 + start as f64 / TICKS_PER_SECOND;
            gauge(
                &mut encoder,
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch.",
                started,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
        #[derive(Debug)]
        struct One(Histogram);
        impl Collector for One {
            fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
                Seconds(&self.0).encode(encoder.encode_descriptor("t_seconds", "test", None, MetricType::Histogram)?)
            }
        }
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(One(histogram)));
        let text = encode(&registry);
        assert!(text.contains("# TYPE t_seconds histogram"), "{text}");
        assert!(text.contains("t_seconds_bucket{le=\"0.0002\"} 5"), "{text}");
        assert!(text.contains("t_seconds_bucket{le=\"+Inf\"} 10"));
        assert!(text.contains("t_seconds_count 10"), "{text}");
        assert!(text.contains("t_seconds_sum 5.08415"), "{text}");
    }
}
