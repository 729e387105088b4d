//! The fleet directory on Redis at fleet scale, for BENCHMARKS.md: a throwaway `redis-server`
//! (Debian's), two real lobbies (`server::fleet::lobby::run`, in this process) on it, and
//! simulated game servers that each report 64 rooms every 2 s, spread evenly over the interval
//! and alternating between the lobbies, over HTTP as real servers do. While they report, players
//! ask both lobbies for the room list, join by code and quick play; every request's round trip is
//! timed from here. Redis's CPU (from `/proc`) and memory (`INFO memory`) are read over the run.
//!
//! `fleetbench [--servers N] [--rooms N] [--seconds N] [--player-rps N] [--change-every N]`

#[allow(dead_code)]
#[path = "../../../server/tests/common/redis.rs"]
mod redis;

use std::time::{Duration, Instant};

use server::fleet::{Report, lobby::LobbyConfig};
use shared::room::{RoomCode, RoomSummary};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LOBBY_KEY: &str = "fleetbench-lobby-key-0123456789";

struct Args {
    servers: usize,
    rooms: usize,
    seconds: u64,
    player_rps: u32,
    /// A room's player count changes every this many of its server's reports (1: every report,
    /// the worst case; real rooms change far less often).
    change_every: u64,
}

fn args() -> Args {
    let mut args = Args { servers: 1000, rooms: 64, seconds: 20, player_rps: 60, change_every: 1 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--servers" => args.servers = value.parse().expect("--servers N"),
            "--rooms" => args.rooms = value.parse().expect("--rooms N"),
            "--seconds" => args.seconds = value.parse().expect("--seconds N"),
            "--player-rps" => args.player_rps = value.parse().expect("--player-rps N"),
            "--change-every" => args.change_every = value.parse::<u64>().expect("--change-every N").max(1),
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`): the status.
async fn request(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect to a lobby");
    stream.set_nodelay(true).ok();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.expect("write");
    stream.write_all(body.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("read");
    let text = String::from_utf8_lossy(&answer[..answer.len().min(64)]).into_owned();
    text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// A simulated server's report to a lobby, with the fleet key and its own key: the status.
async fn post_report(lobby: u16, server_key: &str, body: &str) -> u16 {
    let bearer = format!("Bearer {LOBBY_KEY}");
    request(lobby, "POST", "/api/fleet/report", &[("Authorization", &bearer), ("X-Arena-Server-Key", server_key)], body)
        .await
}

fn code(server: usize, room: usize) -> RoomCode {
    // Distinct codes: a base-24 number of (server, room).
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    let mut n = server * 64 + room;
    let mut text = String::new();
    for _ in 0..4 {
        text.push(ALPHABET[n % 24] as char);
        n /= 24;
    }
    RoomCode::parse(&text).expect("a code")
}

fn report(server: usize, rooms: usize, round: u64, change_every: u64) -> Report {
    // Each room's count moves once every `change_every` reports, rooms out of step.
    let tick = |room: usize| (round + room as u64) / change_every;
    Report {
        server: format!("gs-{server:04}"),
        url: format!("http://10.0.{}.{}:8080/", server / 250, server % 250),
        max_rooms: (rooms + 16) as u16,
        draining: false,
        rooms: (0..rooms)
            .map(|room| RoomSummary {
                code: code(server, room),
                name: format!("Room {room}"),
                map: "arena".into(),
                players: ((server + room + tick(room) as usize) % 9) as u16,
                max_players: 12,
                bots: 0,
                spectators: 0,
                locked: false,
                public: room % 2 == 0,
                created_unix_ms: 1_700_000_000_000 + (server * 64 + room) as u64,
            })
            .collect(),
        goodbye: false,
        reserved: Vec::new(),
    }
}

fn quantiles(samples: &mut [Duration]) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1000.0;
    (at(0.5), at(0.99))
}

/// Redis's utime + stime so far, seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = args();
    let redis = redis::Redis::start();
    let redis_pid: u32 = redis
        .cli(&["INFO", "server"])
        .lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .map_or(0, |v| v.trim().parse().unwrap_or(0));
    let mut lobbies = Vec::new();
    for _ in 0..2 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        lobbies.push(listener.local_addr().unwrap().port());
        let config = LobbyConfig {
            lobby_key: LOBBY_KEY.into(),
            join_token_secret: Some("fleetbench-join-token-secret-0123456789".into()),
            token_lifetime: Duration::from_secs(60),
            allocator: None,
            requests_per_minute: 1_000_000,
            trusted_proxies: Vec::new(),
            http: server::config::HttpLimits::default(),
            token_issuer: None,
            token_audience: None,
            directory: Some(redis.url()),
            directory_password: None,
            stale_placements_for: server::fleet::lobby::STALE_PLACEMENTS_FOR,
        };
        tokio::spawn(server::fleet::lobby::run(listener, config, std::future::pending()));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Every server reports once before the clock starts (the directory full).
    let keys: Vec<String> = (0..args.servers).map(|i| format!("{:064x}", i as u128 * 7919 + 1)).collect();
    let fill = Instant::now();
    for chunk in (0..args.servers).collect::<Vec<_>>().chunks(16) {
        let tasks = chunk.iter().map(|&i| {
            let body = serde_json::to_string(&report(i, args.rooms, 0, args.change_every)).unwrap();
            let key = keys[i].clone();
            let lobby = lobbies[i % 2];
            async move {
                assert_eq!(post_report(lobby, &key, &body).await, 204, "a report was refused");
            }
        });
        futures_util::future::join_all(tasks).await;
    }
    println!(
        "directory filled: {} servers × {} rooms in {:.1} s",
        args.servers,
        args.rooms,
        fill.elapsed().as_secs_f64()
    );
    let memory = |redis: &redis::Redis| {
        let info = redis.cli(&["INFO", "memory"]);
        let get = |key: &str| {
            info.lines().find_map(|l| l.strip_prefix(key)).map_or(0.0, |v| v.trim().parse::<f64>().unwrap_or(0.0))
        };
        (get("used_memory:") / 1048576.0, get("used_memory_rss:") / 1048576.0)
    };

    let started = Instant::now();
    let cpu_before = cpu_seconds(redis_pid);
    let end = started + Duration::from_secs(args.seconds);
    // Reports: every server every 2 s, evenly spread.
    let reporting = {
        let (keys, lobbies, servers, rooms, change_every) =
            (keys.clone(), lobbies.clone(), args.servers, args.rooms, args.change_every);
        tokio::spawn(async move {
            let mut samples = Vec::new();
            let gap = Duration::from_secs(2) / servers as u32;
            let mut next = Instant::now();
            let mut n: u64 = 0;
            let mut in_flight = tokio::task::JoinSet::new();
            while Instant::now() < end {
                let i = (n % servers as u64) as usize;
                let body = serde_json::to_string(&report(i, rooms, n / servers as u64 + 1, change_every)).unwrap();
                let key = keys[i].clone();
                let lobby = lobbies[(i + (n / servers as u64) as usize) % 2];
                in_flight.spawn(async move {
                    let at = Instant::now();
                    let status = post_report(lobby, &key, &body).await;
                    (status, at.elapsed())
                });
                while in_flight.len() > 64 {
                    if let Some(Ok((status, took))) = in_flight.join_next().await {
                        assert_eq!(status, 204);
                        samples.push(took);
                    }
                }
                n += 1;
                next += gap;
                tokio::time::sleep_until(next.into()).await;
            }
            while let Some(Ok((_, took))) = in_flight.join_next().await {
                samples.push(took);
            }
            (n, samples)
        })
    };
    // Players: list, join by code, quick play, in turn, both lobbies.
    let mut list = Vec::new();
    let mut join = Vec::new();
    let mut quick = Vec::new();
    let gap = Duration::from_secs(1) / args.player_rps.max(1);
    let mut next = Instant::now();
    let mut n = 0usize;
    while Instant::now() < end {
        let lobby = lobbies[n % 2];
        let at = Instant::now();
        match n % 3 {
            0 => {
                let status = request(lobby, "GET", "/api/rooms", &[], "").await;
                assert_eq!(status, 200);
                list.push(at.elapsed());
            }
            1 => {
                let target = code((n * 7) % args.servers, (n * 13) % args.rooms);
                let status =
                    request(lobby, "POST", "/api/fleet/join", &[], &format!(r#"{{"code":"{target}","name":"p"}}"#))
                        .await;
                assert_eq!(status, 200, "join {target}");
                join.push(at.elapsed());
            }
            _ => {
                let status = request(lobby, "POST", "/api/fleet/quickplay", &[], r#"{"name":"p"}"#).await;
                assert_eq!(status, 200, "quick play");
                quick.push(at.elapsed());
            }
        }
        n += 1;
        next += gap;
        tokio::time::sleep_until(next.into()).await;
    }
    let (reports, mut report_samples) = reporting.await.unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(redis_pid) - cpu_before;
    let (used, rss) = memory(&redis);
    println!(
        "{} servers × {} rooms (a room changes every {} reports), {:.0} s: {} reports ({:.0}/s), Redis CPU {:.1} % of a core, memory used {:.1} MiB (RSS {:.1} MiB)",
        args.servers,
        args.rooms,
        args.change_every,
        elapsed,
        reports,
        reports as f64 / elapsed,
        100.0 * cpu / elapsed,
        used,
        rss
    );
    // Time inside Redis per script call (all the directory's scripts together).
    for line in redis.cli(&["INFO", "commandstats"]).lines().filter(|l| l.starts_with("cmdstat_eval")) {
        println!("redis {line}");
    }
    for (what, samples) in [
        ("report", &mut report_samples),
        ("GET /api/rooms", &mut list),
        ("join by code", &mut join),
        ("quick play", &mut quick),
    ] {
        let (p50, p99) = quantiles(samples);
        println!("{what}: p50 {p50:.2} ms, p99 {p99:.2} ms ({} requests)", samples.len());
    }
}
