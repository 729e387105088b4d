//! `feel`: how the game feels through a bad link, measured with the browser client's own code
//! (prediction, playout clock, input pacing and the per-frame feel counters of `client-web`,
//! compiled natively) in headless clients drawing 60 frames a second.
//!
//! For each scenario a fresh server runs in this process with `--net-sim` (RTT 0, 50, 150 and
//! 300 ms; jitter 0 and ± 20 ms each way; with and without a 250 ms stall every 4 s). A player
//! runs back and forth (2 s right, 2 s left) while an observer watches; the row reports the
//! player's own corrections and backward frames and the observer's view of the player.
//! `feel [--seconds 8] [--json]` (`cargo xtask feel` builds and runs it in release).

use std::sync::Arc;
use std::time::Duration;

use client_web::feel::{FeelStats, FrameFeel};
use client_web::session::Session;
use futures_util::{SinkExt, StreamExt};
use glam::Vec2;
use server::ServerConfig;
use server::net::netsim::NetSim;
use server::room::live::RoomStats;
use server::room::registry::Registry;
use shared::protocol::{self, ClientMsg, PROTOCOL_VERSION, ServerMsg};
use shared::room::RoomRequest;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

const FRAME: Duration = Duration::from_micros(16_667);

struct Scenario {
    rtt_ms: u64,
    jitter_ms: u64,
    stalls: bool,
}

/// Plays one client for `seconds`: `moves` says whether it holds keys (the player) or only
/// watches. Returns its feel counters.
async fn play(url: String, name: &str, moves: bool, seconds: f64) -> FeelStats {
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.expect("connect");
    let hello = ClientMsg::Hello {
        protocol: PROTOCOL_VERSION,
        name: name.to_string(),
        resume: None,
        room: RoomRequest::QuickPlay,
        host_key: None,
        client_id: 0,
    };
    ws.send(Message::Binary(protocol::encode(&hello).into())).await.expect("hello");
    let welcome = loop {
        if let Some(Ok(Message::Binary(bytes))) = ws.next().await
            && let Ok(ServerMsg::Welcome(welcome)) = protocol::decode_server(&bytes)
        {
            break *welcome;
        }
    };
    let mut session = Session::new(welcome);
    let tick_ms = 1000.0 / f64::from(session.welcome.tick_rate.max(1));
    let interval_ticks = f64::from(session.welcome.tick_rate) / f64::from(session.welcome.snapshot_rate.max(1));
    let started = Instant::now();
    let now_ms = || started.elapsed().as_secs_f64() * 1000.0;
    let mut frames = tokio::time::interval(FRAME);
    frames.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut feel, mut accumulator, mut last_frame) = (FeelStats::default(), 0.0, 0.0);
    while started.elapsed().as_secs_f64() < seconds {
        tokio::select! {
            _ = frames.tick() => {
                let now = now_ms();
                let frame_dt = (now - last_frame).clamp(0.0, 250.0);
                last_frame = now;
                let held = if moves && now > 500.0 {
                    if ((now / 2000.0) as u64).is_multiple_of(2) { Vec2::X } else { -Vec2::X }
                } else {
                    Vec2::ZERO
                };
                accumulator += frame_dt * session.pacer.rate();
                while accumulator >= tick_ms {
                    let message = if moves {
                        ClientMsg::Input(session.make_input(held, 0.0, false))
                    } else {
                        ClientMsg::Ack { tick: session.last_tick.unwrap_or_default() }
                    };
                    if ws.send(Message::Binary(protocol::encode(&message).into())).await.is_err() {
                        return feel;
                    }
                    accumulator -= tick_ms;
                }
                let Some(render_tick) = session.render_tick(now) else { continue };
                let own_pos = session.predictor.render_pos((frame_dt / 1000.0) as f32, (accumulator / tick_ms) as f32);
                let largest = session.predictor.take_corrections().into_iter().fold(0.0f32, f32::max);
                let players = session.players(render_tick, own_pos, 0.0);
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
                if let Ok(ServerMsg::Snapshot(snapshot)) = protocol::decode_server(&bytes) {
                    let _ = session.on_snapshot(&snapshot, now_ms());
                }
            }
        }
    }
    let _ = ws.close(None).await;
    feel
}

async fn run(scenario: &Scenario, seconds: f64) -> serde_json::Value {
    let one_way = scenario.rtt_ms / 2;
    let mut spec = format!("latency={one_way}ms,jitter={}ms", scenario.jitter_ms.min(one_way));
    if scenario.stalls {
        spec.push_str(",stall=250ms/4s");
    }
    let sim: NetSim = spec.parse().expect("valid spec");
    let config = ServerConfig { net_sim: Some(sim), replay_dir: None, ..ServerConfig::default() };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("ws://{}/ws", listener.local_addr().expect("addr"));
    let rooms = Registry::new(Arc::new(config), Arc::new(RoomStats::default()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(server::run_with_registry(listener, rooms, async move {
        let _ = stopped.await;
    }));
    let player = tokio::spawn(play(url.clone(), "player", true, seconds));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let observer = play(url, "observer", false, seconds - 0.3).await;
    let player = player.await.expect("player task");
    let _ = stop.send(());
    let _ = server.await;
    let past = |f: &FeelStats| 100.0 * f.frames_past_newest as f64 / f.frames.max(1) as f64;
    serde_json::json!({
        "rtt_ms": scenario.rtt_ms,
        "jitter_ms": scenario.jitter_ms,
        "stalls": scenario.stalls,
        "own_max_correction": player.max_correction,
        "own_corrections_over_1": player.corrections_over_1,
        "own_backward_frames": player.own_backward_frames,
        "remote_snaps": observer.remote_snaps,
        "remote_past_newest_pct": past(&observer),
        "remote_past_cap_frames": observer.frames_past_cap,
        "remote_trail_ticks_p50": observer.trail_ticks_p50,
        "frames": observer.frames,
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
    let mut rows = Vec::new();
    for rtt_ms in [0, 50, 150, 300] {
        for jitter_ms in [0, 20] {
            for stalls in [false, true] {
                let row = run(&Scenario { rtt_ms, jitter_ms, stalls }, seconds).await;
                if !json {
                    eprintln!("{row}");
                }
                rows.push(row);
            }
        }
    }
    if json {
        println!("{}", serde_json::Value::Array(rows));
        return;
    }
    println!(
        "| RTT ms | jitter ± ms | stalls | own max corr. (u) | own corr. ≥ 1 u | own backward frames | remote snaps | remote frames past newest | past cap | trail p50 (ticks) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {:.2} | {} | {} | {} | {:.1} % | {} | {:.2} |",
            r["rtt_ms"],
            r["jitter_ms"],
            if r["stalls"] == true { "250 ms / 4 s" } else { "none" },
            r["own_max_correction"].as_f64().unwrap_or(0.0),
            r["own_corrections_over_1"],
            r["own_backward_frames"],
            r["remote_snaps"],
            r["remote_past_newest_pct"].as_f64().unwrap_or(0.0),
            r["remote_past_cap_frames"],
            r["remote_trail_ticks_p50"].as_f64().unwrap_or(0.0),
        );
    }
}
