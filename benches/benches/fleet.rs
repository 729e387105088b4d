//! The fleet lobby's directory at fleet scale, with no sockets: 1,000 servers × 64 rooms (half
//! public, players spread), as the lobby holds them. Measures what each request costs: a server's
//! report (64 rooms replacing its previous 64), the public room list, quick play, join by code,
//! and the expiry sweep; the setup prints the directory's memory (resident set growth).
//! Run: `cargo bench -p arena-benches --bench fleet`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use server::fleet::{Directory, Report};
use shared::room::{RoomCode, RoomSummary};

const SERVERS: usize = 1000;
const ROOMS: usize = 64;

fn code(n: usize) -> RoomCode {
    // 24 letters per place: 24^4 = 331,776 distinct codes.
    let mut indices = [0u8; 4];
    let mut rest = n;
    for slot in &mut indices {
        *slot = (rest % 24) as u8;
        rest /= 24;
    }
    RoomCode::from_indices(indices)
}

fn report(server: usize, generation: usize) -> Report {
    let rooms = (0..ROOMS)
        .map(|r| {
            let n = server * ROOMS + r;
            RoomSummary {
                code: code(n),
                name: format!("room {n}"),
                map: "arena".to_string(),
                players: ((n * 7 + generation) % 17) as u16,
                max_players: 16,
                bots: 0,
                spectators: 0,
                locked: false,
                public: r % 2 == 0,
                created_unix_ms: n as u64,
            }
        })
        .collect();
    Report {
        server: format!("arena-{server:04}"),
        url: format!("https://games.example/gs/arena-{server:04}/"),
        max_rooms: 80,
        draining: false,
        rooms,
        goodbye: false,
        reserved: Vec::new(),
    }
}

fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn fleet(c: &mut Criterion) {
    let reports: Vec<Report> = (0..SERVERS).map(|s| report(s, 0)).collect();
    let before = resident_kib();
    let mut directory = Directory::new();
    let now = Instant::now();
    for report in reports.iter().cloned() {
        directory.report(report, now);
    }
    let after = resident_kib();
    eprintln!(
        "fleet: {} servers, {} rooms ({} public); directory ≈ {:.1} MiB resident ({:.0} bytes per room)",
        directory.servers(),
        directory.rooms(),
        directory.public_rooms(usize::MAX).len(),
        (after.saturating_sub(before)) as f64 / 1024.0,
        (after.saturating_sub(before) * 1024) as f64 / directory.rooms() as f64,
    );
    let mut group = c.benchmark_group("fleet_1000x64");
    group.sample_size(20).measurement_time(Duration::from_secs(4));
    let fresh: Vec<Report> = (0..SERVERS).map(|s| report(s, 1)).collect();
    let mut next = 0;
    group.bench_function("report_one_server", |b| {
        b.iter(|| {
            next = (next + 1) % SERVERS;
            directory.report(black_box(fresh[next].clone()), now);
        })
    });
    group.bench_function("public_rooms_top_200", |b| {
        b.iter(|| black_box(directory.public_rooms(server::fleet::LISTED_ROOMS).len()))
    });
    group.bench_function("public_rooms_top_200_json", |b| {
        b.iter(|| black_box(serde_json::to_vec(&directory.public_rooms(server::fleet::LISTED_ROOMS)).unwrap().len()))
    });
    group.bench_function("quick_play", |b| b.iter(|| black_box(directory.quick_play())));
    group.bench_function("least_loaded", |b| b.iter(|| black_box(directory.least_loaded())));
    let mut n = 0;
    group.bench_function("join_by_code", |b| {
        b.iter(|| {
            n = (n + 7919) % (SERVERS * ROOMS);
            black_box(directory.find(code(n), None).is_ok())
        })
    });
    group.bench_function("expire_sweep_none_stale", |b| b.iter(|| black_box(directory.expire(now).len())));
    group.finish();
}

criterion_group!(benches, fleet);
criterion_main!(benches);
