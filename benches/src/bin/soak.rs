//! `soak`: hours of play in minutes, with the server watched from outside.
//!
//! Starts the given (release) `arena-server` on 127.0.0.1 with replays on, creates `--rooms`
//! rooms and spreads `--clients` real WebSocket bots over them. Every bot plays (inputs at 20 Hz,
//! a chat line now and then) for a random life (exponential, mean `--life-seconds`), then churns:
//! it leaves with a goodbye and joins again as a new player, or its TCP connection is reset and
//! it comes back with its resume token (the held seat: it must get the same player back), or it
//! goes and a newcomer takes its place. Every `--sample-seconds` one CSV row: the server's RSS
//! and open file descriptors (from /proc), its CPU, the tick-time p99 over the interval (from
//! `/metrics`), the p99 and largest gap between messages the bots saw, bots connected and the
//! churn so far. At the end every bot leaves, and the file descriptors must come back to where
//! they were before the first bot. Writes `soak.csv`, `soak.svg` (plotters) and `soak.json` in
//! `--out`, prints the verdict (and the JSON with `--json`), and exits 1 when it fails:
//! - memory: no upward trend after the warm-up: over the second half of the run the
//!   least-squares growth stays under max(4 MiB, 5 % of the mean RSS), and the last third's mean
//!   RSS is at most the middle third's plus max(2 MiB, 3 %) (a rise to a plateau while the
//!   allocator settles is not a leak; a leak keeps climbing in both tests);
//! - file descriptors: back to the baseline after the churn (plus the replay file each joined
//!   room keeps open, and 2 of slack);
//! - tick p99 flat: the median of the last third's intervals at most 1.5× the first third's
//!   plus 0.5 ms;
//! - no bot closed by the server, and every resume got its own player back.
//!
//! `cargo xtask soak --minutes M --clients N` builds and runs it.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg32;
use serde_json::json;
use server::metrics::{BUCKETS_US, quantile_us};
use shared::protocol::{self, ClientMsg, InputCmd, PROTOCOL_VERSION, ServerMsg};
use shared::room::RoomRequest;
use tokio::time::Instant;
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::Message;

/// Message-gap histogram: 1 ms buckets up to this many ms, plus one overflow bucket.
const GAP_BUCKETS: usize = 5000;

struct Args {
    server: PathBuf,
    minutes: f64,
    clients: usize,
    rooms: usize,
    life_seconds: f64,
    sample_seconds: f64,
    out: PathBuf,
    json: bool,
    seed: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        server: PathBuf::from("target/release/arena-server"),
        minutes: 2.0,
        clients: 100,
        rooms: 0,
        life_seconds: 60.0,
        sample_seconds: 10.0,
        out: PathBuf::from("target/soak"),
        json: false,
        seed: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--json" {
            args.json = true;
            continue;
        }
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let number = |v: &str| v.parse::<f64>().map_err(|_| format!("{flag}: not a number: {v}"));
        match flag.as_str() {
            "--server" => args.server = PathBuf::from(value),
            "--minutes" => args.minutes = number(&value)?,
            "--clients" => args.clients = number(&value)? as usize,
            "--rooms" => args.rooms = number(&value)? as usize,
            "--life-seconds" => args.life_seconds = number(&value)?.max(1.0),
            "--sample-seconds" => args.sample_seconds = number(&value)?.max(1.0),
            "--out" => args.out = PathBuf::from(value),
            "--seed" => args.seed = number(&value)? as u64,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if args.rooms == 0 {
        // Rooms of about 25 players (the default cap is 32), at least 2.
        args.rooms = args.clients.div_ceil(25).max(2);
    }
    Ok(args)
}

/// What the bots share with the sampler.
#[derive(Default)]
struct Shared {
    gaps: Vec<AtomicU64>,
    connected: AtomicU64,
    joins: AtomicU64,
    goodbyes: AtomicU64,
    resets: AtomicU64,
    resumes_ok: AtomicU64,
    resumes_lost: AtomicU64,
    chats: AtomicU64,
    seat_in_use: AtomicU64,
    refused: AtomicU64,
    closed_by_server: AtomicU64,
    reasons: std::sync::Mutex<HashMap<String, u64>>,
    stop: AtomicBool,
}

impl Shared {
    fn new() -> Shared {
        Shared { gaps: (0..=GAP_BUCKETS).map(|_| AtomicU64::new(0)).collect(), ..Shared::default() }
    }

    fn gap(&self, ms: u64) {
        self.gaps[(ms as usize).min(GAP_BUCKETS)].fetch_add(1, Ordering::Relaxed);
    }

    fn take_gaps(&self) -> Vec<u64> {
        self.gaps.iter().map(|g| g.swap(0, Ordering::Relaxed)).collect()
    }

    fn note_reason(&self, why: String) {
        *self.reasons.lock().unwrap().entry(why).or_default() += 1;
    }
}

/// One HTTP/1.0 request to the server on loopback: (status, body).
fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut stream = StdTcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((status, body))
}

/// Cumulative tick-time histogram counts from `/metrics`.
fn tick_histogram(addr: SocketAddr) -> Option<Vec<u64>> {
    let (_, text) = http(addr, "GET", "/metrics", "")?;
    let cumulative: Vec<u64> = text
        .lines()
        .filter(|l| l.starts_with("arena_tick_duration_seconds_bucket"))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    (cumulative.len() == BUCKETS_US.len() + 1).then_some(cumulative)
}

struct Proc {
    rss_bytes: u64,
    fds: u64,
    cpu_seconds: f64,
}

fn read_proc(pid: u32) -> Option<Proc> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: u64 =
        status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Proc { rss_bytes: rss_kb * 1024, fds, cpu_seconds: ticks as f64 / 100.0 })
}

/// Starts the server and returns it with the port it printed.
fn start_server(args: &Args) -> (std::process::Child, u16) {
    use std::io::BufRead;
    let replays = args.out.join("replays");
    let _ = std::fs::remove_dir_all(&replays);
    let mut child = std::process::Command::new(&args.server)
        .args(["--bind", "127.0.0.1:0", "--no-lan", "--bots", "0", "--room-creates-per-minute", "1000"])
        .args(["--max-rooms", &(args.rooms + 4).to_string(), "--room-idle-seconds", "3600"])
        .arg("--replay-dir")
        .arg(&replays)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", args.server.display()));
    let stderr = child.stderr.take().unwrap();
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("://localhost:").nth(1) {
                let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
                let _ = port_tx.send(port.parse::<u16>().unwrap_or(0));
            }
        }
    });
    let port = port_rx.recv_timeout(Duration::from_secs(20)).expect("the server prints its address");
    (child, port)
}

fn hello(name: &str, code: &str, resume: Option<u64>) -> Message {
    Message::Binary(
        protocol::encode(&ClientMsg::Hello {
            protocol: PROTOCOL_VERSION,
            name: name.to_string(),
            resume,
            room: RoomRequest::Join { code: code.to_string() },
            host_key: None,
            client_id: 0,
            auth: None,
            guest: None,
        })
        .into(),
    )
}

enum LifeEnd {
    Goodbye,
    Reset,
    Stop,
    Failed,
    /// The resume came before the server saw the old connection go: try again after this long.
    SeatInUse(Duration),
}

/// One bot: lives, churns and comes back until told to stop.
async fn bot(index: usize, url: String, code: String, shared: Arc<Shared>, life_seconds: f64, seed: u64) {
    let mut rng = Pcg32::seed_from_u64(seed ^ (index as u64).wrapping_mul(0x9e37_79b9));
    let mut resume: Option<(u64, shared::snapshot::NetId)> = None;
    let mut generation = 0u32;
    // Joins are spread over the first seconds.
    tokio::time::sleep(Duration::from_millis(rng.random_range(0..5000))).await;
    while !shared.stop.load(Ordering::Relaxed) {
        let life = Duration::from_secs_f64(-life_seconds * (1.0 - rng.random::<f64>()).ln());
        let chat_every = rng.random_range(20.0..60.0);
        let name = format!("soak{index}-{generation}");
        generation += 1;
        match live(&url, &code, &name, resume.take(), life, chat_every, &shared).await {
            (LifeEnd::Goodbye, _) => {
                shared.goodbyes.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(rng.random_range(200..2000))).await;
            }
            (LifeEnd::Reset, seat) => {
                shared.resets.fetch_add(1, Ordering::Relaxed);
                resume = seat;
                tokio::time::sleep(Duration::from_millis(rng.random_range(300..3000))).await;
            }
            (LifeEnd::SeatInUse(after), seat) => {
                shared.seat_in_use.fetch_add(1, Ordering::Relaxed);
                resume = seat;
                tokio::time::sleep(after).await;
            }
            (LifeEnd::Stop, _) => break,
            (LifeEnd::Failed, _) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

/// One connection's life. Returns how it ended and, for a reset, the seat to resume.
async fn live(
    url: &str,
    code: &str,
    name: &str,
    resume: Option<(u64, shared::snapshot::NetId)>,
    life: Duration,
    chat_every: f64,
    shared: &Shared,
) -> (LifeEnd, Option<(u64, shared::snapshot::NetId)>) {
    let Ok((mut ws, _)) = tokio_tungstenite::connect_async(url).await else {
        shared.refused.fetch_add(1, Ordering::Relaxed);
        return (LifeEnd::Failed, None);
    };
    if ws.send(hello(name, code, resume.map(|(token, _)| token))).await.is_err() {
        shared.refused.fetch_add(1, Ordering::Relaxed);
        return (LifeEnd::Failed, None);
    }
    // The welcome.
    let welcome = loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Binary(bytes)))) => match protocol::decode_server(&bytes) {
                Ok(ServerMsg::Welcome(welcome)) => break welcome,
                Ok(ServerMsg::Disconnect(shared::protocol::DisconnectReason::SeatInUse { after_ms })) => {
                    return (LifeEnd::SeatInUse(Duration::from_millis(u64::from(after_ms))), resume);
                }
                Ok(ServerMsg::Disconnect(reason)) => shared.note_reason(format!("refused: {reason}")),
                _ => {}
            },
            Ok(Some(Ok(_))) => {}
            _ => {
                shared.refused.fetch_add(1, Ordering::Relaxed);
                if resume.is_some() {
                    // A resume refused for good: the seat was lost.
                    shared.resumes_lost.fetch_add(1, Ordering::Relaxed);
                }
                return (LifeEnd::Failed, None);
            }
        }
    };
    shared.joins.fetch_add(1, Ordering::Relaxed);
    if let Some((_, id)) = resume {
        if welcome.player_id == id {
            shared.resumes_ok.fetch_add(1, Ordering::Relaxed);
        } else {
            shared.resumes_lost.fetch_add(1, Ordering::Relaxed);
        }
    }
    let seat = Some((welcome.resume_token, welcome.player_id));
    shared.connected.fetch_add(1, Ordering::Relaxed);
    let ends = Instant::now() + life;
    let mut inputs = tokio::time::interval(Duration::from_millis(50));
    inputs.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_frame: Option<Instant> = None;
    let mut seq = 0u32;
    let mut next_chat = Instant::now() + Duration::from_secs_f64(chat_every);
    let ending = loop {
        tokio::select! {
            _ = tokio::time::sleep_until(ends) => break if seq.is_multiple_of(2) { LifeEnd::Goodbye } else { LifeEnd::Reset },
            _ = inputs.tick() => {
                if shared.stop.load(Ordering::Relaxed) {
                    break LifeEnd::Stop;
                }
                seq += 1;
                let angle = seq as f32 * 0.05;
                let cmd = InputCmd { seq, move_x: angle.cos(), move_y: angle.sin(), aim: angle, fire: seq.is_multiple_of(15), ..InputCmd::default() };
                if ws.send(Message::Binary(protocol::encode(&ClientMsg::Input(cmd)).into())).await.is_err() {
                    break LifeEnd::Failed;
                }
                if Instant::now() >= next_chat {
                    next_chat += Duration::from_secs_f64(chat_every);
                    shared.chats.fetch_add(1, Ordering::Relaxed);
                    let chat = ClientMsg::Chat { text: format!("{name} says hi") };
                    let _ = ws.send(Message::Binary(protocol::encode(&chat).into())).await;
                }
            }
            frame = ws.next() => match frame {
                Some(Ok(Message::Binary(bytes))) => {
                    let now = Instant::now();
                    if let Some(last) = last_frame {
                        shared.gap(now.duration_since(last).as_millis() as u64);
                    }
                    last_frame = Some(now);
                    if let Ok(ServerMsg::Disconnect(reason)) = protocol::decode_server(&bytes) {
                        shared.note_reason(format!("closed: {reason}"));
                    }
                }
                Some(Ok(_)) => {}
                _ => {
                    shared.closed_by_server.fetch_add(1, Ordering::Relaxed);
                    break LifeEnd::Failed;
                }
            },
        }
    };
    shared.connected.fetch_sub(1, Ordering::Relaxed);
    match ending {
        LifeEnd::Reset => {
            // A dropped link: a reset, no Close frame. The server holds the seat.
            if let MaybeTlsStream::Plain(tcp) = ws.get_ref() {
                let _ = socket2::SockRef::from(tcp).set_linger(Some(Duration::ZERO));
            }
            drop(ws);
            (LifeEnd::Reset, seat)
        }
        LifeEnd::Goodbye | LifeEnd::Stop => {
            let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
            // Read to the server's Close so the socket ends cleanly.
            let _ = tokio::time::timeout(Duration::from_secs(2), async { while ws.next().await.is_some() {} }).await;
            (ending, None)
        }
        LifeEnd::Failed | LifeEnd::SeatInUse(_) => (LifeEnd::Failed, None),
    }
}

struct Sample {
    t_s: f64,
    rss_mib: f64,
    fds: u64,
    cpu: f64,
    tick_p99_ms: f64,
    gap_p99_ms: f64,
    gap_max_ms: f64,
    connected: u64,
    joins: u64,
    goodbyes: u64,
    resets: u64,
}

/// Least-squares slope of `ys` over `xs`.
fn slope(xs: &[f64], ys: &[f64]) -> f64 {
    let n = xs.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let (mut num, mut den) = (0.0, 0.0);
    for (x, y) in xs.iter().zip(ys) {
        num += (x - mx) * (y - my);
        den += (x - mx) * (x - mx);
    }
    if den == 0.0 { 0.0 } else { num / den }
}

fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn plot(path: &std::path::Path, samples: &[Sample], title: &str) -> Result<(), String> {
    use plotters::prelude::*;
    let root = SVGBackend::new(path, (1000, 900)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let root = root.titled(title, ("sans-serif", 20)).map_err(|e| e.to_string())?;
    let panels = root.split_evenly((4, 1));
    let minutes: Vec<f64> = samples.iter().map(|s| s.t_s / 60.0).collect();
    let end = minutes.last().copied().unwrap_or(1.0).max(0.1);
    type Series<'a> = (&'a str, Vec<f64>, RGBColor);
    let series: [Series; 4] = [
        ("server RSS (MiB)", samples.iter().map(|s| s.rss_mib).collect(), BLUE),
        ("open file descriptors", samples.iter().map(|s| s.fds as f64).collect(), MAGENTA),
        ("tick p99 (ms)", samples.iter().map(|s| s.tick_p99_ms).collect(), RED),
        ("message gap p99 (ms)", samples.iter().map(|s| s.gap_p99_ms).collect(), GREEN),
    ];
    for (panel, (label, ys, color)) in panels.iter().zip(series) {
        let top = ys.iter().copied().fold(0.0f64, f64::max).max(1.0) * 1.15;
        let mut chart = ChartBuilder::on(panel)
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(60)
            .caption(label, ("sans-serif", 15))
            .build_cartesian_2d(0.0..end, 0.0..top)
            .map_err(|e| e.to_string())?;
        chart.configure_mesh().x_desc("minutes").draw().map_err(|e| e.to_string())?;
        chart
            .draw_series(LineSeries::new(minutes.iter().copied().zip(ys.iter().copied()), color.stroke_width(2)))
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(error) => {
            eprintln!("soak: {error}");
            std::process::exit(2);
        }
    };
    std::fs::create_dir_all(&args.out).expect("create --out");
    let (mut child, port) = start_server(&args);
    let pid = child.id();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let url = format!("ws://127.0.0.1:{port}/ws");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let baseline = read_proc(pid).expect("read the server's /proc");
    let mut codes = Vec::new();
    for room in 0..args.rooms {
        let body = format!(r#"{{"name":"soak {room}","public":true}}"#);
        let (status, text) = http(addr, "POST", "/api/rooms", &body).expect("POST /api/rooms");
        assert_eq!(status, 201, "creating a room: {text}");
        let created: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        codes.push(created["code"].as_str().expect("a code").to_string());
    }
    eprintln!(
        "soak: server pid {pid} on {port}; {} clients over {} rooms for {} min; baseline RSS {:.1} MiB, {} fds",
        args.clients,
        args.rooms,
        args.minutes,
        baseline.rss_bytes as f64 / 1048576.0,
        baseline.fds
    );
    let shared = Arc::new(Shared::new());
    let mut bots = Vec::new();
    for index in 0..args.clients {
        let code = codes[index % codes.len()].clone();
        bots.push(tokio::spawn(bot(index, url.clone(), code, shared.clone(), args.life_seconds, args.seed)));
    }
    let started = Instant::now();
    let duration = Duration::from_secs_f64(args.minutes * 60.0);
    let mut csv =
        String::from("t_s,rss_mib,fds,cpu_cores,tick_p99_ms,gap_p99_ms,gap_max_ms,connected,joins,goodbyes,resets\n");
    let mut samples: Vec<Sample> = Vec::new();
    let mut previous_ticks = tick_histogram(addr).unwrap_or_default();
    let mut previous_cpu = (Instant::now(), baseline.cpu_seconds);
    let _ = shared.take_gaps();
    let sample_every = Duration::from_secs_f64(args.sample_seconds);
    let mut next = started + sample_every;
    while next <= started + duration {
        tokio::time::sleep_until(next).await;
        next += sample_every;
        let Some(now_proc) = read_proc(pid) else {
            eprintln!("soak: the server is gone");
            break;
        };
        let ticks = tick_histogram(addr).unwrap_or_default();
        let delta: Vec<u64> = if ticks.len() == previous_ticks.len() {
            let mut counts = Vec::with_capacity(ticks.len());
            let mut previous_cumulative = 0;
            for (now, before) in ticks.iter().zip(&previous_ticks) {
                let cumulative = now - before;
                counts.push(cumulative - previous_cumulative.min(cumulative));
                previous_cumulative = cumulative;
            }
            counts
        } else {
            Vec::new()
        };
        previous_ticks = ticks;
        let tick_p99_ms = quantile_us(&delta, 0.99).map_or(0.0, |us| us as f64 / 1000.0);
        let gaps = shared.take_gaps();
        let gap_p99_ms = arena_benches::ms_quantile(&gaps, 0.99).unwrap_or(0) as f64;
        let gap_max_ms = gaps.iter().rposition(|&c| c > 0).unwrap_or(0) as f64;
        let now = Instant::now();
        let cpu = (now_proc.cpu_seconds - previous_cpu.1) / now.duration_since(previous_cpu.0).as_secs_f64();
        previous_cpu = (now, now_proc.cpu_seconds);
        let sample = Sample {
            t_s: started.elapsed().as_secs_f64(),
            rss_mib: now_proc.rss_bytes as f64 / 1048576.0,
            fds: now_proc.fds,
            cpu,
            tick_p99_ms,
            gap_p99_ms,
            gap_max_ms,
            connected: shared.connected.load(Ordering::Relaxed),
            joins: shared.joins.load(Ordering::Relaxed),
            goodbyes: shared.goodbyes.load(Ordering::Relaxed),
            resets: shared.resets.load(Ordering::Relaxed),
        };
        let row = format!(
            "{:.1},{:.2},{},{:.3},{:.3},{},{},{},{},{},{}",
            sample.t_s,
            sample.rss_mib,
            sample.fds,
            sample.cpu,
            sample.tick_p99_ms,
            sample.gap_p99_ms,
            sample.gap_max_ms,
            sample.connected,
            sample.joins,
            sample.goodbyes,
            sample.resets
        );
        csv.push_str(&row);
        csv.push('\n');
        eprintln!("soak: {row}");
        samples.push(sample);
    }

    // The end: every bot leaves; the descriptors must come back to the baseline.
    shared.stop.store(true, Ordering::Relaxed);
    for bot in bots {
        let _ = tokio::time::timeout(Duration::from_secs(15), bot).await;
    }
    // Held seats of bots reset just before the end are still in their grace; their sockets are
    // closed already. Let the server finish its closes.
    let mut after = read_proc(pid).expect("server alive");
    for _ in 0..20 {
        if after.fds <= baseline.fds + args.rooms as u64 + 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        after = read_proc(pid).expect("server alive");
    }
    let _ = child.kill();
    let _ = child.wait();

    // The verdict.
    let warmup_s = (args.minutes * 60.0 * 0.2).min(120.0);
    let steady: Vec<&Sample> = samples.iter().filter(|s| s.t_s >= warmup_s).collect();
    let xs: Vec<f64> = steady.iter().map(|s| s.t_s).collect();
    let rss: Vec<f64> = steady.iter().map(|s| s.rss_mib).collect();
    let mean_rss = rss.iter().sum::<f64>() / rss.len().max(1) as f64;
    let half = steady.len() / 2;
    let (late_x, late_rss) = (&xs[half..], &rss[half..]);
    let span = late_x.last().copied().unwrap_or(0.0) - late_x.first().copied().unwrap_or(0.0);
    let growth_mib = slope(late_x, late_rss) * span;
    let allowed_growth = (0.05 * mean_rss).max(4.0);
    let third_of = |part: &[f64]| part.iter().sum::<f64>() / part.len().max(1) as f64;
    let n = rss.len();
    let (middle_mean, last_mean) = (third_of(&rss[n / 3..2 * n / 3]), third_of(&rss[2 * n / 3..]));
    let allowed_step = (0.03 * mean_rss).max(2.0);
    let memory_ok = steady.len() >= 6 && growth_mib < allowed_growth && last_mean <= middle_mean + allowed_step;
    // Each room that was joined keeps its replay file open: the baseline plus one per room.
    let expected_fds = baseline.fds + args.rooms as u64;
    let fds_ok = after.fds <= expected_fds + 2;
    let third = (steady.len() / 3).max(1);
    let first_tick = median(steady.iter().take(third).map(|s| s.tick_p99_ms).collect());
    let last_tick = median(steady.iter().rev().take(third).map(|s| s.tick_p99_ms).collect());
    let tick_ok = last_tick <= 1.5 * first_tick + 0.5;
    let closed = shared.closed_by_server.load(Ordering::Relaxed);
    let resumes_lost = shared.resumes_lost.load(Ordering::Relaxed);
    let clean_ok = closed == 0 && resumes_lost == 0;
    let pass = memory_ok && fds_ok && tick_ok && clean_ok;
    let gap_p99 = median(steady.iter().map(|s| s.gap_p99_ms).collect());
    let summary = json!({
        "clients": args.clients,
        "rooms": args.rooms,
        "minutes": args.minutes,
        "samples": samples.len(),
        "warmup_s": warmup_s,
        "rss_mib": {"baseline": baseline.rss_bytes as f64 / 1048576.0, "mean_steady": mean_rss,
                    "first_steady": rss.first(), "last": rss.last(),
                    "second_half_trend_mib": growth_mib, "allowed_trend_mib": allowed_growth,
                    "middle_third_mean": middle_mean, "last_third_mean": last_mean, "allowed_step_mib": allowed_step},
        "fds": {"baseline": baseline.fds, "expected_after": expected_fds, "peak": samples.iter().map(|s| s.fds).max(), "after_churn": after.fds},
        "tick_p99_ms": {"first_third_median": first_tick, "last_third_median": last_tick,
                        "max": samples.iter().map(|s| s.tick_p99_ms).fold(0.0, f64::max)},
        "gap_ms": {"p99_median": gap_p99, "max": samples.iter().map(|s| s.gap_max_ms).fold(0.0, f64::max)},
        "cpu_cores_median": median(steady.iter().map(|s| s.cpu).collect()),
        "churn": {
            "joins": shared.joins.load(Ordering::Relaxed),
            "goodbyes": shared.goodbyes.load(Ordering::Relaxed),
            "resets": shared.resets.load(Ordering::Relaxed),
            "resumes_same_player": shared.resumes_ok.load(Ordering::Relaxed),
            "resumes_lost": resumes_lost,
            "resumes_waited_for_takeover": shared.seat_in_use.load(Ordering::Relaxed),
            "chat_lines": shared.chats.load(Ordering::Relaxed),
            "connects_failed": shared.refused.load(Ordering::Relaxed),
            "closed_by_server": closed,
            "reasons": *shared.reasons.lock().unwrap(),
        },
        "verdict": {"memory_flat": memory_ok, "fds_back_to_baseline": fds_ok, "tick_p99_flat": tick_ok,
                    "no_server_closes_and_every_resume_kept_its_player": clean_ok, "pass": pass},
    });
    std::fs::write(args.out.join("soak.csv"), &csv).expect("write soak.csv");
    std::fs::write(args.out.join("soak.json"), serde_json::to_string_pretty(&summary).unwrap())
        .expect("write soak.json");
    let title = format!(
        "Arena soak: {} bots, {} rooms, {} min, churn every ~{:.0} s per bot",
        args.clients, args.rooms, args.minutes, args.life_seconds
    );
    if let Err(error) = plot(&args.out.join("soak.svg"), &samples, &title) {
        eprintln!("soak: plot failed: {error}");
    }
    eprintln!(
        "soak: {} — memory trend over the second half {:+.1} MiB (allowed {:.1}), last third {:.1} MiB against the middle third's {:.1}, fds {} -> {} (baseline {} + {} replay files), tick p99 {:.2} -> {:.2} ms, gap p99 {:.0} ms, {} joins, {} resets ({} resumed), {} server closes",
        if pass { "PASS" } else { "FAIL" },
        growth_mib,
        allowed_growth,
        last_mean,
        middle_mean,
        samples.iter().map(|s| s.fds).max().unwrap_or(0),
        after.fds,
        baseline.fds,
        args.rooms,
        first_tick,
        last_tick,
        gap_p99,
        shared.joins.load(Ordering::Relaxed),
        shared.resets.load(Ordering::Relaxed),
        shared.resumes_ok.load(Ordering::Relaxed),
        closed
    );
    eprintln!("soak: wrote {}", args.out.join("soak.{csv,svg,json}").display());
    if args.json {
        println!("{summary}");
    }
    if !pass {
        std::process::exit(1);
    }
}
