//! `feel`: how the game feels through a bad link, measured with the browser client's own code
//! (prediction, playout clock, input pacing and the per-frame feel counters of `client-web`,
//! compiled natively) in headless clients drawing 60 frames a second.
//!
//! For each scenario a fresh server runs in this process with `--net-sim` (RTT 0, 50, 150 and
//! 300 ms; jitter 0 and ± 20 ms each way; with and without a 250 ms stall every 4 s) on an open
//! map. A player runs back and forth (2 s right, a 0.6 s stop, 2 s left, a stop) while an
//! observer watches; the row reports the player's own corrections, backward and uneven frames,
//! how long a key press takes to move it on the server, and the observer's view of the player.
//! `feel [--seconds 8] [--json]` (`cargo xtask feel` builds and runs it in release).
//!
//! `feel --lag-comp [--seconds 60]`: lag compensation at 150 ms ± 20 ms. A shooter that aims
//! (leading) at the target as its own client draws it fires one shot at a time at a target
//! strafing at full speed; each shot is judged in the shooter's view (the projectile against
//! the target's interpolated path, with the client's own interpolation code) and on the server
//! (the target's health), with `--lag-comp-ms 500` and `0`.

use std::sync::Arc;
use std::time::Duration;

use client_web::feel::{FeelStats, FrameFeel};
use client_web::session::Session;
use futures_util::{SinkExt, StreamExt};
use glam::Vec2;
use server::ServerConfig;
use server::net::netsim::NetSim;
use server::room::RoomStats;
use server::room::registry::Registry;
use shared::map::MapDef;
use shared::protocol::{self, ClientMsg, PROTOCOL_VERSION, ServerMsg};
use shared::room::RoomRequest;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

const FRAME: Duration = Duration::from_micros(16_667);
/// The movement script's period: right, stop, left, stop.
const RUN_MS: f64 = 2000.0;
const STOP_MS: f64 = 600.0;

/// What the player holds `ms` into the run (after a 0.5 s start).
fn script(ms: f64) -> Vec2 {
    if ms < 500.0 {
        return Vec2::ZERO;
    }
    let phase = (ms - 500.0) % (2.0 * (RUN_MS + STOP_MS));
    if phase < RUN_MS {
        Vec2::X
    } else if phase < RUN_MS + STOP_MS {
        Vec2::ZERO
    } else if phase < 2.0 * RUN_MS + STOP_MS {
        -Vec2::X
    } else {
        Vec2::ZERO
    }
}

/// One client's results: its feel counters (for the player, each key press's delay until a
/// snapshot showed it moving on the server is among them).
struct Played {
    feel: FeelStats,
    /// The RTT the client measured (ping/pong), ms.
    rtt_ms: f64,
}

struct Scenario {
    rtt_ms: u64,
    jitter_ms: u64,
    /// A 250 ms stall every this many seconds (0: none).
    stall_every_s: u64,
}

/// A fresh in-process server on 127.0.0.1: its WebSocket URL, the sender that stops it, its task.
async fn start_server(
    config: ServerConfig,
) -> (String, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<std::io::Result<()>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("ws://{}/ws", listener.local_addr().expect("addr"));
    let rooms = Registry::new(Arc::new(config), Arc::new(RoomStats::default()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(server::run_with_registry(listener, rooms, async move {
        let _ = stopped.await;
    }));
    (url, stop, server)
}

async fn join(url: &str, name: &str) -> (Ws, Session) {
    // TCP_NODELAY, as browsers set it: Nagle's algorithm would hold inputs for the server's ACK.
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true).await.expect("connect");
    let hello = ClientMsg::Hello {
        protocol: PROTOCOL_VERSION,
        name: name.to_string(),
        resume: None,
        room: RoomRequest::QuickPlay,
        host_key: None,
        client_id: 0,
        auth: None,
        guest: None,
    };
    ws.send(Message::Binary(protocol::encode(&hello).into())).await.expect("hello");
    let welcome = loop {
        if let Some(Ok(Message::Binary(bytes))) = ws.next().await
            && let Ok(ServerMsg::Welcome(welcome)) = protocol::decode_server(&bytes)
        {
            break *welcome;
        }
    };
    (ws, Session::new(welcome))
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Plays one client for `seconds`: `moves` says whether it holds keys (the player) or only
/// watches.
async fn play(url: String, name: &str, moves: bool, seconds: f64) -> Played {
    let (mut ws, mut session) = join(&url, name).await;
    let mut previous_held = Vec2::ZERO;
    let tick_ms = 1000.0 / f64::from(session.welcome.tick_rate.max(1));
    let interval_ticks = f64::from(session.welcome.tick_rate) / f64::from(session.welcome.snapshot_rate.max(1));
    let started = Instant::now();
    let now_ms = || started.elapsed().as_secs_f64() * 1000.0;
    let mut frames = tokio::time::interval(FRAME);
    frames.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut feel, mut accumulator, mut last_frame) = (FeelStats::default(), 0.0, 0.0);
    // Pings, as the browser sends them: the RTT the row compares against.
    let mut pings = tokio::time::interval(Duration::from_secs(1));
    while started.elapsed().as_secs_f64() < seconds {
        tokio::select! {
            _ = pings.tick() => {
                let ping = ClientMsg::Ping { client_time: now_ms() };
                if ws.send(Message::Binary(protocol::encode(&ping).into())).await.is_err() {
                    break;
                }
            }
            _ = frames.tick() => {
                let now = now_ms();
                let frame_dt = (now - last_frame).clamp(0.0, 250.0);
                last_frame = now;
                let held = if moves { script(now) } else { Vec2::ZERO };
                if held != Vec2::ZERO && previous_held == Vec2::ZERO {
                    feel.key_pressed(now, held);
                }
                previous_held = held;
                accumulator += frame_dt * session.pacer.rate();
                while accumulator >= tick_ms {
                    let message = if moves {
                        ClientMsg::Input(session.make_input(held, 0.0, false))
                    } else {
                        ClientMsg::Ack { tick: session.last_tick.unwrap_or_default() }
                    };
                    if ws.send(Message::Binary(protocol::encode(&message).into())).await.is_err() {
                        return Played { feel, rtt_ms: session.clock.rtt_ms };
                    }
                    accumulator -= tick_ms;
                }
                let Some(render_tick) = session.render_tick(now) else { continue };
                let own_pos = session.predictor.render_pos((frame_dt / 1000.0) as f32, (accumulator / tick_ms) as f32);
                let largest = session.predictor.take_corrections().into_iter().fold(0.0f32, f32::max);
                let players = session.players_for_frame(render_tick, own_pos, 0.0, (frame_dt / 1000.0) as f32);
                let frame = FrameFeel {
                    render_tick,
                    newest_tick: session.interp.newest_tick().map_or(render_tick, f64::from),
                    interval_ticks,
                    frame_s: (frame_dt / 1000.0) as f32,
                    max_speed: shared::rules::PLAYER_MAX_SPEED,
                    own_pos: (moves && session.predictor.is_ready()).then_some(own_pos),
                    held,
                    correction: largest,
                };
                feel.frame(frame, players.iter().filter(|p| !p.own && p.alive).map(|p| (p.id, p.pos)));
            }
            message = ws.next() => {
                let Some(Ok(Message::Binary(bytes))) = message else { continue };
                if let Ok(ServerMsg::Pong { client_time, server_tick }) = protocol::decode_server(&bytes) {
                    session.clock.on_pong(client_time, server_tick.0, now_ms());
                }
                if let Ok(ServerMsg::Snapshot(snapshot)) = protocol::decode_server(&bytes) {
                    let now = now_ms();
                    let _ = session.on_snapshot(&snapshot, now);
                    if let Some(own) = snapshot.own {
                        feel.server_moved(now, own.vel);
                    }
                }
            }
        }
    }
    let _ = ws.close(None).await;
    Played { feel, rtt_ms: session.clock.rtt_ms }
}

async fn run(scenario: &Scenario, seconds: f64) -> serde_json::Value {
    let one_way = scenario.rtt_ms / 2;
    let mut spec = format!("latency={one_way}ms,jitter={}ms", scenario.jitter_ms.min(one_way));
    if scenario.stall_every_s > 0 {
        spec.push_str(&format!(",stall=250ms/{}s", scenario.stall_every_s));
    }
    let sim: NetSim = spec.parse().expect("valid spec");
    let config = ServerConfig {
        net_sim: Some(sim),
        replay_dir: None,
        // Open ground: the script runs 640 units each way and never meets a wall.
        map: Arc::new(MapDef::open("feel", 3000.0, 0)),
        ..ServerConfig::default()
    };
    let (url, stop, server) = start_server(config).await;
    let player = tokio::spawn(play(url.clone(), "player", true, seconds));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let observer = play(url, "observer", false, seconds - 0.3).await.feel;
    let Played { feel: player, rtt_ms } = player.await.expect("player task");
    let _ = stop.send(());
    let _ = server.await;
    let past = |f: &FeelStats| 100.0 * f.frames_past_newest as f64 / f.frames.max(1) as f64;
    serde_json::json!({
        "rtt_ms": scenario.rtt_ms,
        "jitter_ms": scenario.jitter_ms,
        "stall_every_s": scenario.stall_every_s,
        "own_max_correction": player.max_correction,
        "own_correction_p99": player.correction_p99,
        "own_corrections_over_1": player.corrections_over_1,
        "own_backward_frames": player.own_backward_frames,
        "own_uneven_pct": 100.0 * player.own_uneven_frames as f64 / player.own_full_speed_frames.max(1) as f64,
        "key_to_server_p50_ms": player.key_to_server_p50_ms,
        "key_to_server_p99_ms": player.key_to_server_p99_ms,
        "key_presses": player.key_presses,
        "rtt_measured_ms": rtt_ms,
        "own_full_speed_frames": player.own_full_speed_frames,
        "remote_snaps": observer.remote_snaps,
        "remote_past_newest_pct": past(&observer),
        "remote_past_cap_frames": observer.frames_past_cap,
        "remote_trail_ticks_p50": observer.trail_ticks_p50,
        "frames": observer.frames,
    })
}

/// The target of the lag compensation run: strafes up and down at full stick, turning every
/// 0.9 s, for `seconds`, sending inputs and acks like a browser.
async fn strafe(url: String, seconds: f64) {
    let (mut ws, mut session) = join(&url, "target").await;
    let tick_ms = 1000.0 / f64::from(session.welcome.tick_rate.max(1));
    let started = Instant::now();
    let mut frames = tokio::time::interval(FRAME);
    let mut accumulator = 0.0;
    while started.elapsed().as_secs_f64() < seconds {
        tokio::select! {
            _ = frames.tick() => {
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                let dir = if ((ms / 900.0) as u64).is_multiple_of(2) { Vec2::Y } else { -Vec2::Y };
                accumulator += 1000.0 / 60.0 * session.pacer.rate();
                while accumulator >= tick_ms {
                    let input = ClientMsg::Input(session.make_input(dir, 0.0, false));
                    if ws.send(Message::Binary(protocol::encode(&input).into())).await.is_err() {
                        return;
                    }
                    accumulator -= tick_ms;
                }
            }
            message = ws.next() => {
                let Some(Ok(Message::Binary(bytes))) = message else { continue };
                if let Ok(ServerMsg::Snapshot(snapshot)) = protocol::decode_server(&bytes) {
                    let _ = session.on_snapshot(&snapshot, started.elapsed().as_secs_f64() * 1000.0);
                }
            }
        }
    }
    let _ = ws.close(None).await;
}

/// One shot: where the shooter saw things when it fired, and what came of it.
struct Shot {
    fired_ms: f64,
    /// The render tick its input claimed (fractional server tick).
    view: f64,
    origin: Vec2,
    dir: Vec2,
    target_hp: u8,
    view_hit: Option<bool>,
    server_hit: bool,
}

/// The target's (hp, alive) in the shooter's newest snapshot.
fn target_health(session: &Session, target: shared::snapshot::NetId) -> Option<(u8, bool)> {
    match session.latest_view()?.get(target)? {
        shared::snapshot::EntityState::Player(p) => Some((p.hp, p.flags & shared::snapshot::FLAG_ALIVE != 0)),
        _ => None,
    }
}

/// Lag compensation at 150 ms ± 20 ms with a `window_ms` window: the shooter's shots judged in
/// its own view and on the server.
async fn lag_comp(window_ms: u32, seconds: f64) -> serde_json::Value {
    let sim: NetSim = "latency=75ms,jitter=20ms".parse().expect("valid spec");
    let config = ServerConfig {
        net_sim: Some(sim),
        replay_dir: None,
        lag_comp_ms: window_ms,
        map: Arc::new(MapDef::open("lag", 3000.0, 0)),
        ..ServerConfig::default()
    };
    let (url, stop, server) = start_server(config).await;
    let target = tokio::spawn(strafe(url.clone(), seconds + 1.0));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (mut ws, mut session) = join(&url, "shooter").await;
    let target_id = loop {
        // The target joined first: it is in the roster.
        if let Some((id, _)) = session.roster.iter().find(|(_, entry)| entry.name == "target") {
            break *id;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let tick_ms = 1000.0 / f64::from(session.welcome.tick_rate.max(1));
    let lifetime_ticks = (shared::rules::PROJECTILE_LIFETIME_S * 60.0) as i32;
    let step = shared::rules::PROJECTILE_SPEED / 60.0;
    let muzzle = shared::rules::PLAYER_RADIUS + shared::rules::PROJECTILE_RADIUS + 1.0;
    let hit_radius = shared::rules::PLAYER_RADIUS + shared::rules::PROJECTILE_RADIUS;
    let started = Instant::now();
    let now_ms = || started.elapsed().as_secs_f64() * 1000.0;
    let mut frames = tokio::time::interval(FRAME);
    let (mut accumulator, mut shots, mut next_shot) = (0.0, Vec::<Shot>::new(), 2500.0);
    while started.elapsed().as_secs_f64() < seconds {
        tokio::select! {
            _ = frames.tick() => {
                let now = now_ms();
                let Some(render_tick) = session.render_tick(now) else { continue };
                // Walk left for the first 1.2 s, then stand and shoot.
                let walk = if now < 1200.0 { -Vec2::X } else { Vec2::ZERO };
                let mut fire = None;
                if now >= next_shot
                    && let (Some(own), Some(pose), Some(before), Some((hp, true))) = (
                        session.own,
                        session.interp.sample(target_id, render_tick),
                        session.interp.sample(target_id, render_tick - 2.0),
                        target_health(&session, target_id),
                    )
                {
                    // Lead the target as drawn: where its path meets the shot.
                    let velocity = (pose.pos - before.pos) / 2.0;
                    let aim_at = (0..lifetime_ticks)
                        .map(|k| {
                            let point = pose.pos + velocity * k as f32;
                            (point, (point.distance(own.pos) - (muzzle + step * (k as f32 + 1.0))).abs())
                        })
                        .min_by(|a, b| a.1.total_cmp(&b.1))
                        .map(|(point, _)| point)
                        .unwrap_or(pose.pos);
                    let dir = (aim_at - own.pos).normalize_or_zero();
                    fire = Some(dir);
                    let view = session.view.map_or(render_tick, |v| f64::from(v.tick.0) + f64::from(v.frac) / 256.0);
                    shots.push(Shot { fired_ms: now, view, origin: own.pos + dir * muzzle, dir, target_hp: hp, view_hit: None, server_hit: false });
                    next_shot = now + 1100.0;
                }
                accumulator += 1000.0 / 60.0 * session.pacer.rate();
                while accumulator >= tick_ms {
                    let (aim, firing) = match fire.take() {
                        Some(dir) => (dir.to_angle(), true),
                        None => (0.0, false),
                    };
                    let input = ClientMsg::Input(session.make_input(walk, aim, firing));
                    if ws.send(Message::Binary(protocol::encode(&input).into())).await.is_err() {
                        break;
                    }
                    accumulator -= tick_ms;
                }
                // Judge shots in the shooter's own view once the target's path after them has
                // been drawn: the projectile k ticks on against the target at view + k.
                for shot in shots.iter_mut().filter(|s| s.view_hit.is_none() && now - s.fired_ms > 800.0) {
                    let hit = (0..lifetime_ticks).any(|k| {
                        let projectile = shot.origin + shot.dir * step * (k as f32 + 1.0);
                        session.interp.sample(target_id, shot.view + f64::from(k))
                            .is_some_and(|pose| pose.pos.distance(projectile) <= hit_radius)
                    });
                    shot.view_hit = Some(hit);
                }
            }
            message = ws.next() => {
                let Some(Ok(Message::Binary(bytes))) = message else { continue };
                if let Ok(ServerMsg::Snapshot(snapshot)) = protocol::decode_server(&bytes) {
                    let now = now_ms();
                    let _ = session.on_snapshot(&snapshot, now);
                    // The one shot in flight hit if the target lost health (or died) within
                    // its lifetime plus the way back.
                    if let (Some(shot), Some((hp, alive))) = (shots.last_mut(), target_health(&session, target_id))
                        && now - shot.fired_ms < 1400.0
                        && (hp < shot.target_hp || !alive)
                    {
                        shot.server_hit = true;
                    }
                }
            }
        }
    }
    let _ = ws.close(None).await;
    let _ = target.await;
    let _ = stop.send(());
    let _ = server.await;
    let judged: Vec<&Shot> = shots.iter().filter(|s| s.view_hit.is_some()).collect();
    let view_hits = judged.iter().filter(|s| s.view_hit == Some(true)).count();
    let both = judged.iter().filter(|s| s.view_hit == Some(true) && s.server_hit).count();
    let server_only = judged.iter().filter(|s| s.view_hit == Some(false) && s.server_hit).count();
    serde_json::json!({
        "lag_comp_ms": window_ms,
        "shots": judged.len(),
        "view_hits": view_hits,
        "server_hits_of_view_hits": both,
        "hit_ratio_pct": 100.0 * both as f64 / view_hits.max(1) as f64,
        "server_hits_not_in_view": server_only,
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds: f64 = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .map_or(8.0, |v| v.parse().expect("--seconds N"));
    let json = args.iter().any(|a| a == "--json");
    if args.iter().any(|a| a == "--lag-comp") {
        let seconds = if args.iter().any(|a| a == "--seconds") { seconds } else { 60.0 };
        let rows = [lag_comp(server::sim::world::DEFAULT_LAG_COMP_MS, seconds).await, lag_comp(0, seconds).await];
        if json {
            println!("{}", serde_json::Value::Array(rows.to_vec()));
            return;
        }
        println!(
            "| --lag-comp-ms | shots judged | hits in the shooter's view | of those, hits on the server | ratio | server hits the view missed |"
        );
        println!("|---|---|---|---|---|---|");
        for r in &rows {
            println!(
                "| {} | {} | {} | {} | {:.1} % | {} |",
                r["lag_comp_ms"],
                r["shots"],
                r["view_hits"],
                r["server_hits_of_view_hits"],
                r["hit_ratio_pct"].as_f64().unwrap_or(0.0),
                r["server_hits_not_in_view"]
            );
        }
        return;
    }
    let mut rows = Vec::new();
    // `--rtt 150` runs only the rows of one RTT.
    let only_rtt: Option<u64> =
        args.iter().position(|a| a == "--rtt").and_then(|i| args.get(i + 1)).map(|v| v.parse().expect("--rtt MS"));
    // `--like-browser` runs only the real-browser test's link (client-web/tests/browser.rs
    // `on_a_150_ms_link…`): 150 ms RTT, ± 10 ms each way, a 250 ms stall every 10 s.
    let scenarios: Vec<Scenario> = if args.iter().any(|a| a == "--like-browser") {
        vec![Scenario { rtt_ms: 150, jitter_ms: 10, stall_every_s: 10 }]
    } else {
        let mut all = Vec::new();
        for rtt_ms in [0, 50, 150, 300].into_iter().filter(|rtt| only_rtt.is_none_or(|only| only == *rtt)) {
            for jitter_ms in [0, 20] {
                for stall_every_s in [0, 4] {
                    all.push(Scenario { rtt_ms, jitter_ms, stall_every_s });
                }
            }
        }
        all
    };
    for scenario in &scenarios {
        let row = run(scenario, seconds).await;
        if !json {
            eprintln!("{row}");
        }
        rows.push(row);
    }
    if json {
        println!("{}", serde_json::Value::Array(rows));
        return;
    }
    println!(
        "| RTT ms | jitter ± ms | stalls | own corr. p99 / max (u) | own corr. ≥ 1 u | own backward frames | own uneven frames | key → server p50 / p99 (ms) | measured RTT (ms) | remote snaps | remote frames past newest | past cap | trail p50 (ticks) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {:.2} / {:.2} | {} | {} | {:.1} % | {:.0} / {:.0} | {:.0} | {} | {:.1} % | {} | {:.2} |",
            r["rtt_ms"],
            r["jitter_ms"],
            match r["stall_every_s"].as_u64() {
                Some(every) if every > 0 => format!("250 ms / {every} s"),
                _ => "none".to_string(),
            },
            r["own_correction_p99"].as_f64().unwrap_or(0.0),
            r["own_max_correction"].as_f64().unwrap_or(0.0),
            r["own_corrections_over_1"],
            r["own_backward_frames"],
            r["own_uneven_pct"].as_f64().unwrap_or(0.0),
            r["key_to_server_p50_ms"].as_f64().unwrap_or(f64::NAN),
            r["key_to_server_p99_ms"].as_f64().unwrap_or(f64::NAN),
            r["rtt_measured_ms"].as_f64().unwrap_or(f64::NAN),
            r["remote_snaps"],
            r["remote_past_newest_pct"].as_f64().unwrap_or(0.0),
            r["remote_past_cap_frames"],
            r["remote_trail_ticks_p50"].as_f64().unwrap_or(0.0),
        );
    }
}
