//! `loadgen`: the S1 load generator (../shared/SCENARIO-S1.md §6–7) for Arena.
//!
//! Opens N real WebSocket clients over loopback in this one process, joins them (at most 10 in
//! flight, 20 s timeout each), sends S1 inputs at 30 Hz on a fixed grid with a random phase, and
//! measures over a warm-up and a window: payload and wire bytes, messages and message gaps per
//! client, server CPU/RSS from /proc, this process's CPU, machine busy time, failures, and the
//! server's tick time and input-to-ack latency from its `/metrics`. Prints a table and one JSON
//! line. Four "decode sample" clients fully decode every snapshot and must end up seeing all N
//! players and all orbs; the others only read the snapshot tick (to ack it) and count bytes.
//!
//! Run against a server started with `arena-server --scenario s1`:
//! `loadgen --url ws://127.0.0.1:8080/ws --clients 400 --server-pid PID [--json] [--guests]`
//! (`--guests`: each client joins with a guest identity, so finished rounds store its line)
//! (`cargo xtask s1` does all of it, several times, and summarizes).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream as StdTcpStream};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg32;
use serde_json::json;
use server::metrics::{BUCKETS_US, quantile_us};
use shared::protocol::{self, ClientMsg, InputCmd, PROTOCOL_VERSION, ServerMsg};
use shared::snapshot::{EntityState, SnapshotReceiver};
use shared::tick::Tick;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

const JOINING: u8 = 0;
const WARMUP: u8 = 1;
const WINDOW: u8 = 2;
const TEARDOWN: u8 = 3;
const DECODE_SAMPLE: usize = 4;
/// Message-gap histogram: 1 ms buckets up to this many ms, plus one overflow bucket.
const GAP_BUCKETS: usize = 2000;

struct Args {
    url: String,
    clients: usize,
    server_pid: Option<u32>,
    warmup: f64,
    window: f64,
    json: bool,
    seed: u64,
    /// Each client sends a guest identity (so rounds store and rate them).
    guests: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        url: "ws://127.0.0.1:8080/ws".into(),
        clients: 50,
        server_pid: None,
        warmup: 3.0,
        window: 15.0,
        json: false,
        seed: 1,
        guests: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => args.url = value()?,
            "--clients" => args.clients = value()?.parse().map_err(|e| format!("--clients: {e}"))?,
            "--server-pid" => args.server_pid = Some(value()?.parse().map_err(|e| format!("--server-pid: {e}"))?),
            "--warmup" => args.warmup = value()?.parse().map_err(|e| format!("--warmup: {e}"))?,
            "--window" => args.window = value()?.parse().map_err(|e| format!("--window: {e}"))?,
            "--seed" => args.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--json" => args.json = true,
            "--guests" => args.guests = true,
            "--bench" => {} // Passed by `cargo bench`; harmless.
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if !(1..=5000).contains(&args.clients) {
        return Err("--clients must be 1..=5000".into());
    }
    if !(0.0..=60.0).contains(&args.warmup) || !(1.0..=300.0).contains(&args.window) {
        return Err("--warmup must be 0..=60 and --window 1..=300 seconds".into());
    }
    Ok(args)
}

/// The socket address of a ws:// URL, refusing anything but loopback.
fn loopback_addr(url: &str) -> Result<SocketAddr, String> {
    let rest = url.strip_prefix("ws://").ok_or("only ws:// URLs")?;
    let host_port = rest.split('/').next().unwrap_or_default();
    let addr: SocketAddr = host_port
        .replace("localhost", "127.0.0.1")
        .parse()
        .map_err(|e| format!("{host_port}: {e} (use an IP:port)"))?;
    let loopback = match addr.ip() {
        IpAddr::V4(ip) => ip.is_loopback(),
        IpAddr::V6(ip) => ip.is_loopback(),
    };
    if !loopback {
        return Err(format!("{addr} is not a loopback address: the load generator only targets this machine"));
    }
    Ok(addr)
}

/// Counts bytes read from the socket (wire bytes: frame headers, payloads, control frames).
struct Counting<S> {
    inner: S,
    read: Arc<AtomicU64>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counting<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        let added = buf.filled().len() - before;
        self.read.fetch_add(added as u64, Ordering::Relaxed);
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counting<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Counters one client shares with the coordinator.
#[derive(Default)]
struct ClientCounters {
    wire: Arc<AtomicU64>,
    payload: AtomicU64,
    messages: AtomicU64,
    joined: AtomicU8,
}

struct Shared {
    phase: AtomicU8,
    disconnects: AtomicU64,
    failures: AtomicU64,
}

struct Outcome {
    gaps: Vec<u64>,
    disconnect: Option<String>,
    /// Decode-sample clients: players and orbs in their last view.
    seen: Option<(usize, usize)>,
}

/// Reads the snapshot tick from an encoded `ServerMsg::Snapshot` without decoding the rest.
fn peek_snapshot_tick(bytes: &[u8]) -> Option<Tick> {
    let config = bincode::config::standard().with_limit::<16>();
    let ((variant, tick), _): ((u32, u32), usize) = bincode::serde::decode_from_slice(bytes, config).ok()?;
    (variant == 1).then_some(Tick(tick))
}

async fn client(
    index: usize,
    args: Arc<Args>,
    addr: SocketAddr,
    counters: Arc<ClientCounters>,
    shared: Arc<Shared>,
    gate: Arc<Semaphore>,
) -> Outcome {
    let mut outcome = Outcome { gaps: Vec::new(), disconnect: None, seen: None };
    let decode = index < DECODE_SAMPLE;
    let mut rng = Pcg32::seed_from_u64(args.seed.wrapping_mul(7919).wrapping_add(index as u64));
    let permit = gate.acquire().await.expect("semaphore open");
    let join = async {
        let tcp = TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
        tcp.set_nodelay(true).ok();
        let stream = Counting { inner: tcp, read: counters.wire.clone() };
        let (mut ws, _) = tokio_tungstenite::client_async_with_config(
            args.url.as_str(),
            stream,
            Some(server::bots::client_ws_config()),
        )
        .await
        .map_err(|e| format!("handshake: {e}"))?;
        let hello = ClientMsg::Hello {
            protocol: PROTOCOL_VERSION,
            name: format!("s1-{index}"),
            resume: None,
            room: shared::room::RoomRequest::QuickPlay,
            host_key: None,
            client_id: index as u64 + 1,
            auth: None,
            guest: args.guests.then(|| {
                let mut secret = [0u8; shared::protocol::GUEST_SECRET_BYTES];
                secret[..8].copy_from_slice(&args.seed.to_le_bytes());
                secret[8..].copy_from_slice(&(index as u64).to_le_bytes());
                secret
            }),
        };
        ws.send(Message::Binary(protocol::encode(&hello).into())).await.map_err(|e| format!("hello: {e}"))?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Binary(bytes))) => match protocol::decode_server(&bytes) {
                    Ok(ServerMsg::Welcome(_)) => return Ok(ws),
                    Ok(ServerMsg::Disconnect(reason)) => return Err(format!("refused: {reason}")),
                    _ => continue,
                },
                Some(Ok(_)) => continue,
                other => return Err(format!("no welcome: {other:?}")),
            }
        }
    };
    let mut ws = match tokio::time::timeout(Duration::from_secs(20), join).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(error)) => {
            shared.failures.fetch_add(1, Ordering::Relaxed);
            outcome.disconnect = Some(error);
            return outcome;
        }
        Err(_) => {
            shared.failures.fetch_add(1, Ordering::Relaxed);
            outcome.disconnect = Some("join timed out after 20 s".into());
            return outcome;
        }
    };
    drop(permit);
    counters.joined.store(1, Ordering::Relaxed);

    let period = Duration::from_secs_f64(1.0 / 30.0);
    let phase = Duration::from_secs_f64(rng.random_range(0.0..period.as_secs_f64()));
    let mut inputs = tokio::time::interval_at(Instant::now() + phase, period);
    inputs.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut heading: f32 = rng.random_range(0.0..std::f32::consts::TAU);
    let mut aim: f32 = rng.random_range(-std::f32::consts::PI..std::f32::consts::PI);
    let mut seq = 0u32;
    let mut latest = Tick::ZERO;
    let mut receiver = SnapshotReceiver::new();
    let mut last_message: Option<Instant> = None;
    let mut gaps = vec![0u64; GAP_BUCKETS + 1];
    let mut teardown_check = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            _ = inputs.tick() => {
                seq += 1;
                heading += rng.random_range(-0.3..0.3);
                aim += rng.random_range(-0.2..0.2);
                if aim > std::f32::consts::PI { aim -= std::f32::consts::TAU; }
                if aim < -std::f32::consts::PI { aim += std::f32::consts::TAU; }
                let cmd = InputCmd { seq, ack: latest, move_x: heading.cos(), move_y: heading.sin(), aim, fire: false, view: None };
                if let Err(error) = ws.send(Message::Binary(protocol::encode(&ClientMsg::Input(cmd)).into())).await {
                    outcome.disconnect = Some(format!("send: {error}"));
                    break;
                }
            }
            _ = teardown_check.tick() => {
                if shared.phase.load(Ordering::Relaxed) == TEARDOWN {
                    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
                    break;
                }
            }
            frame = ws.next() => {
                let bytes = match frame {
                    Some(Ok(Message::Binary(bytes))) => bytes,
                    Some(Ok(Message::Close(frame))) => {
                        outcome.disconnect = Some(format!("closed by server: {frame:?}"));
                        break;
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(error)) => {
                        outcome.disconnect = Some(format!("error: {error}"));
                        break;
                    }
                    None => {
                        outcome.disconnect = Some("connection lost".into());
                        break;
                    }
                };
                let now = Instant::now();
                counters.payload.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                counters.messages.fetch_add(1, Ordering::Relaxed);
                if shared.phase.load(Ordering::Relaxed) == WINDOW
                    && let Some(last) = last_message
                {
                    let gap_ms = now.duration_since(last).as_millis() as usize;
                    gaps[gap_ms.min(GAP_BUCKETS)] += 1;
                }
                last_message = Some(now);
                if decode {
                    if let Ok(ServerMsg::Snapshot(snapshot)) = protocol::decode_server(&bytes)
                        && let Ok(view) = receiver.apply(snapshot.tick, snapshot.baseline, &snapshot.delta)
                    {
                        latest = snapshot.tick;
                        if shared.phase.load(Ordering::Relaxed) == WINDOW {
                            let players = view.entities.iter().filter(|(_, s)| matches!(s, EntityState::Player(_))).count();
                            outcome.seen = Some((players, view.len() - players));
                        }
                    }
                } else if let Some(tick) = peek_snapshot_tick(&bytes) {
                    latest = tick;
                }
            }
        }
    }
    if outcome.disconnect.is_some() && shared.phase.load(Ordering::Relaxed) != TEARDOWN {
        shared.disconnects.fetch_add(1, Ordering::Relaxed);
    } else {
        outcome.disconnect = None;
    }
    outcome.gaps = gaps;
    outcome
}

/// (utime + stime) in clock ticks for a process, from /proc/PID/stat.
fn process_cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// VmRSS and VmHWM in KiB.
fn process_memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// (busy, total) jiffies of the whole machine from the first line of /proc/stat.
fn machine_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let values: Vec<u64> =
        stat.lines().next().unwrap_or_default().split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// Fetches `/metrics` over plain HTTP/1.0 and returns the bucket counts of the named histograms.
fn server_histograms(addr: SocketAddr) -> HashMap<String, Vec<u64>> {
    let mut result = HashMap::new();
    let Ok(mut stream) = StdTcpStream::connect_timeout(&addr, Duration::from_secs(2)) else { return result };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n");
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    for name in ["arena_tick_duration_seconds", "arena_input_ack_latency_seconds", "arena_socket_io_seconds"] {
        let cumulative: Vec<u64> = text
            .lines()
            .filter(|l| l.starts_with(&format!("{name}_bucket")))
            .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
            .collect();
        if cumulative.len() == BUCKETS_US.len() + 1 {
            let mut counts = Vec::with_capacity(cumulative.len());
            let mut previous = 0;
            for value in cumulative {
                counts.push(value - previous);
                previous = value;
            }
            result.insert(name.to_string(), counts);
        }
    }
    result
}

fn main() {
    let args = match parse_args() {
        Ok(args) => Arc::new(args),
        Err(error) => {
            eprintln!("loadgen: {error}");
            std::process::exit(2);
        }
    };
    let addr = match loopback_addr(&args.url) {
        Ok(addr) => addr,
        Err(error) => {
            eprintln!("loadgen: {error}");
            std::process::exit(2);
        }
    };
    // `LOADGEN_THREADS` sets the worker threads (default: one per core).
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = std::env::var("LOADGEN_THREADS").ok().and_then(|v| v.parse().ok()) {
        builder.worker_threads(threads);
    }
    let runtime = builder.enable_all().build().expect("tokio runtime");
    // Hard limit on the whole run, whatever happens.
    let budget = Duration::from_secs_f64(60.0 + args.warmup + args.window + args.clients as f64 * 0.05);
    let result = runtime.block_on(async { tokio::time::timeout(budget, run(args.clone(), addr)).await });
    match result {
        Ok(code) => {
            runtime.shutdown_timeout(Duration::from_secs(2));
            std::process::exit(code);
        }
        Err(_) => {
            eprintln!("loadgen: exceeded its time budget of {:.0} s", budget.as_secs_f64());
            std::process::exit(3);
        }
    }
}

async fn run(args: Arc<Args>, addr: SocketAddr) -> i32 {
    let shared =
        Arc::new(Shared { phase: AtomicU8::new(JOINING), disconnects: AtomicU64::new(0), failures: AtomicU64::new(0) });
    let gate = Arc::new(Semaphore::new(10));
    let counters: Vec<Arc<ClientCounters>> = (0..args.clients).map(|_| Arc::new(ClientCounters::default())).collect();
    let join_started = Instant::now();
    let tasks: Vec<_> = counters
        .iter()
        .enumerate()
        .map(|(index, c)| tokio::spawn(client(index, args.clone(), addr, c.clone(), shared.clone(), gate.clone())))
        .collect();
    // All joins done (or failed).
    loop {
        let joined = counters.iter().filter(|c| c.joined.load(Ordering::Relaxed) == 1).count() as u64;
        if joined + shared.failures.load(Ordering::Relaxed) >= args.clients as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let join_seconds = join_started.elapsed().as_secs_f64();
    shared.phase.store(WARMUP, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;

    let present = counters.iter().filter(|c| c.joined.load(Ordering::Relaxed) == 1).count().max(1) as f64;
    let totals = |counters: &[Arc<ClientCounters>]| {
        counters.iter().fold((0u64, 0u64, 0u64), |acc, c| {
            (
                acc.0 + c.payload.load(Ordering::Relaxed),
                acc.1 + c.wire.load(Ordering::Relaxed),
                acc.2 + c.messages.load(Ordering::Relaxed),
            )
        })
    };
    let tck = clock_ticks_per_second();
    let server_pid = args.server_pid.map(|p| p.to_string());
    let server_cpu_start = server_pid.as_deref().and_then(process_cpu_ticks);
    let self_cpu_start = process_cpu_ticks("self");
    let machine_start = machine_jiffies();
    let metrics_start = server_histograms(addr);
    let start = totals(&counters);
    shared.phase.store(WINDOW, Ordering::Relaxed);
    let window_started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.window)).await;
    shared.phase.store(WARMUP, Ordering::Relaxed);
    let window = window_started.elapsed().as_secs_f64();
    let end = totals(&counters);
    let metrics_end = server_histograms(addr);
    let machine_end = machine_jiffies();
    let self_cpu_end = process_cpu_ticks("self");
    let server_cpu_end = server_pid.as_deref().and_then(process_cpu_ticks);
    let (rss_kib, hwm_kib) = args.server_pid.map_or((0, 0), process_memory_kib);

    shared.phase.store(TEARDOWN, Ordering::Relaxed);
    let mut gaps = vec![0u64; GAP_BUCKETS + 1];
    let mut reasons: Vec<String> = Vec::new();
    let mut decode_seen = Vec::new();
    for task in tasks {
        if let Ok(outcome) = tokio::time::timeout(Duration::from_secs(10), task).await.unwrap_or(Ok(Outcome {
            gaps: Vec::new(),
            disconnect: Some("did not stop".into()),
            seen: None,
        })) {
            for (bucket, count) in outcome.gaps.iter().enumerate() {
                gaps[bucket] += count;
            }
            if let Some(reason) = outcome.disconnect {
                reasons.push(reason);
            }
            if let Some(seen) = outcome.seen {
                decode_seen.push(seen);
            }
        }
    }

    let server_cpu = match (server_cpu_start, server_cpu_end) {
        (Some(a), Some(b)) => Some((b - a) as f64 / tck),
        _ => None,
    };
    let self_cpu = match (self_cpu_start, self_cpu_end) {
        (Some(a), Some(b)) => (b - a) as f64 / tck,
        _ => 0.0,
    };
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as f64;
    let machine_busy =
        (machine_end.0 - machine_start.0) as f64 / ((machine_end.1 - machine_start.1).max(1) as f64) * cores;
    let delta_quantiles = |name: &str| -> (Option<f64>, Option<f64>, Option<f64>) {
        let (Some(a), Some(b)) = (metrics_start.get(name), metrics_end.get(name)) else { return (None, None, None) };
        let counts: Vec<u64> = a.iter().zip(b).map(|(x, y)| y - x).collect();
        let ms = |v: Option<u64>| v.map(|us| if us == u64::MAX { f64::INFINITY } else { us as f64 / 1000.0 });
        let max = counts.iter().rposition(|&c| c > 0).map(|i| BUCKETS_US.get(i).copied().unwrap_or(u64::MAX));
        (ms(quantile_us(&counts, 0.5)), ms(quantile_us(&counts, 0.99)), ms(max))
    };
    let (tick_p50, tick_p99, tick_max) = delta_quantiles("arena_tick_duration_seconds");
    let (ack_p50, ack_p99, _) = delta_quantiles("arena_input_ack_latency_seconds");
    let (io_p50, io_p99, io_max) = delta_quantiles("arena_socket_io_seconds");
    let clients_present = present;
    let payload_per_client = (end.0 - start.0) as f64 / window / clients_present;
    let messages_per_client = (end.2 - start.2) as f64 / window / clients_present;
    // Bytes per moving player per patch: payload per message spread over the players in it.
    let bytes_per_player_patch = payload_per_client / messages_per_client.max(1e-9) / clients_present;
    let decode_ok = !decode_seen.is_empty()
        && decode_seen.iter().all(|&(players, orbs)| players as f64 == clients_present && orbs == 500);
    let report = json!({
        "clients": args.clients,
        "clients_present": clients_present,
        "join_seconds": join_seconds,
        "window_seconds": window,
        "payload_kib_per_client_s": payload_per_client / 1024.0,
        "wire_kib_per_client_s": (end.1 - start.1) as f64 / window / clients_present / 1024.0,
        "messages_per_client_s": messages_per_client,
        "bytes_per_player_per_patch": bytes_per_player_patch,
        "gap_ms_p50": arena_benches::ms_quantile(&gaps, 0.5),
        "gap_ms_p99": arena_benches::ms_quantile(&gaps, 0.99),
        "gap_ms_p999": arena_benches::ms_quantile(&gaps, 0.999),
        "gap_ms_max": gaps.iter().rposition(|&c| c > 0),
        "server_cpu_cores": server_cpu.map(|s| s / window),
        "server_cpu_ms_per_client_s": server_cpu.map(|s| s * 1000.0 / (clients_present * window)),
        "server_rss_mb": rss_kib as f64 / 1024.0,
        "server_peak_rss_mb": hwm_kib as f64 / 1024.0,
        "loadgen_cpu_cores": self_cpu / window,
        "machine_busy_cores": machine_busy,
        "other_load_cores": server_cpu.map(|s| machine_busy - s / window - self_cpu / window),
        "saturated": machine_busy >= 0.9 * cores,
        "tick_ms_p50": tick_p50,
        "tick_ms_p99": tick_p99,
        "tick_ms_max": tick_max,
        "socket_io_ms_p50": io_p50,
        "socket_io_ms_p99": io_p99,
        "socket_io_ms_max": io_max,
        "input_ack_ms_p50": ack_p50,
        "input_ack_ms_p99": ack_p99,
        "join_failures": shared.failures.load(Ordering::Relaxed),
        "disconnects": shared.disconnects.load(Ordering::Relaxed),
        "decode_sample_ok": decode_ok,
        "decode_sample_seen": decode_seen,
        "errors": reasons.iter().take(5).collect::<Vec<_>>(),
    });
    if args.json {
        println!("{report}");
    } else {
        for (key, value) in report.as_object().expect("object") {
            println!("{key:<28} {value}");
        }
    }
    let failed =
        shared.failures.load(Ordering::Relaxed) > 0 || shared.disconnects.load(Ordering::Relaxed) > 0 || !decode_ok;
    i32::from(failed)
}
