//! Headless bot players over real WebSockets (`arena-server bots`): each bot joins like a
//! browser would, plays (random walk, aim, fire), applies every snapshot with the shared codec
//! and checks what it reconstructs. Used by tests, the load generator and hosts who want to see
//! a room under load.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg32;
use serde::Serialize;
use shared::protocol::{self, ClientMsg, InputCmd, PROTOCOL_VERSION, ServerMsg, ViewTime};
use shared::room::{RoomRequest, RoomSettings};
use shared::snapshot::{EntityState, SnapshotReceiver};
use shared::tick::Tick;
use std::collections::VecDeque;
use tokio::sync::Semaphore;

use crate::net::netsim::{Link, NetSim};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// WebSocket settings for bot clients: a modest read buffer (tungstenite zero-fills the whole
/// buffer before each read, so the 128 KiB default costs more than the messages).
pub fn client_ws_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(16 * 1024)
}

/// What to run.
#[derive(Clone, Debug)]
pub struct BotsConfig {
    /// WebSocket URL, e.g. `ws://127.0.0.1:8080/ws`.
    pub url: String,
    pub count: u32,
    /// How long each bot plays after joining.
    pub seconds: f64,
    pub name_prefix: String,
    /// Inputs per second per bot (the browser client sends one per tick).
    pub input_hz: u32,
    /// Joins in flight at once.
    pub connect_concurrency: usize,
    pub seed: u64,
    /// Join the room with this code; `None` quick-plays (unless `rooms` is set).
    pub room: Option<String>,
    /// Spread the bots over this many new rooms (bot i plays in room i mod `rooms`; the first
    /// bot of each creates it). 0: no new rooms.
    pub rooms: u32,
    /// Server bots in each new room.
    pub room_bots: u16,
    /// Condition each bot's link (both directions), like the server's `--net-sim`.
    pub net_sim: Option<NetSim>,
    /// The server's password or a join token, for a server that asks for one.
    pub auth: Option<shared::protocol::JoinAuth>,
}

impl Default for BotsConfig {
    fn default() -> Self {
        BotsConfig {
            url: "ws://127.0.0.1:8080/ws".to_string(),
            count: 10,
            seconds: 10.0,
            name_prefix: "headless".to_string(),
            input_hz: 60,
            connect_concurrency: 10,
            seed: 1,
            room: None,
            rooms: 0,
            room_bots: 0,
            net_sim: None,
            auth: None,
        }
    }
}

/// The summary printed by `arena-server bots --json`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct BotsReport {
    pub clients: u32,
    /// Bots that completed the handshake and got a welcome.
    pub connected: u32,
    pub connect_failures: u32,
    pub snapshots_per_client_s: f64,
    pub bytes_per_client_s: f64,
    pub rtt_ms_p50: f64,
    pub rtt_ms_p99: f64,
    /// Snapshots or messages the shared codec could not decode or apply.
    pub decode_errors: u32,
    /// Snapshots whose reconstruction broke an invariant (own player missing, ids unsorted).
    pub reconstruction_errors: u32,
    /// Bots that lost their connection before the end of the run.
    pub disconnects: u32,
    /// Reasons given by the server for those disconnects.
    pub disconnect_reasons: Vec<String>,
    /// Mean number of entities in a bot's view.
    pub entities_in_view_mean: f64,
    pub inputs_sent: u64,
    pub seconds: f64,
    /// Codes of the rooms the bots played in.
    pub rooms: Vec<String>,
}

impl BotsReport {
    /// True when every bot connected and played to the end without a decode error.
    pub fn is_clean(&self) -> bool {
        self.connected == self.clients
            && self.connect_failures == 0
            && self.disconnects == 0
            && self.decode_errors == 0
            && self.reconstruction_errors == 0
    }
}

#[derive(Default)]
struct BotOutcome {
    connected: bool,
    snapshots: u64,
    bytes: u64,
    rtts_ms: Vec<f64>,
    decode_errors: u32,
    reconstruction_errors: u32,
    disconnect: Option<String>,
    entities_seen: u64,
    inputs_sent: u64,
    played: f64,
    room: Option<String>,
}

/// Runs the bots and gathers their report.
pub async fn run(config: BotsConfig) -> BotsReport {
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(config.connect_concurrency.max(1)));
    // One cell per new room: its creator publishes the code, the others wait for it.
    let codes: Arc<Vec<tokio::sync::watch::Sender<Option<String>>>> =
        Arc::new((0..config.rooms).map(|_| tokio::sync::watch::Sender::new(None)).collect());
    let mut tasks = Vec::new();
    for index in 0..config.count {
        let config = config.clone();
        let gate = gate.clone();
        let codes = codes.clone();
        tasks.push(tokio::spawn(async move { play_one(index, &config, &gate, &codes).await }));
    }
    let mut report = BotsReport { clients: config.count, ..Default::default() };
    let mut rtts = Vec::new();
    let (mut snapshots, mut bytes, mut played, mut entities) = (0u64, 0u64, 0f64, 0u64);
    for task in tasks {
        let outcome = task
            .await
            .unwrap_or_else(|_| BotOutcome { disconnect: Some("bot task panicked".to_string()), ..Default::default() });
        if outcome.connected {
            report.connected += 1;
        } else {
            report.connect_failures += 1;
        }
        if let Some(reason) = outcome.disconnect {
            report.disconnects += u32::from(outcome.connected);
            report.disconnect_reasons.push(reason);
        }
        report.decode_errors += outcome.decode_errors;
        report.reconstruction_errors += outcome.reconstruction_errors;
        report.inputs_sent += outcome.inputs_sent;
        if let Some(code) = outcome.room
            && !report.rooms.contains(&code)
        {
            report.rooms.push(code);
        }
        snapshots += outcome.snapshots;
        bytes += outcome.bytes;
        played += outcome.played;
        entities += outcome.entities_seen;
        rtts.extend(outcome.rtts_ms);
    }
    if played > 0.0 {
        report.snapshots_per_client_s = snapshots as f64 / played;
        report.bytes_per_client_s = bytes as f64 / played;
    }
    if snapshots > 0 {
        report.entities_in_view_mean = entities as f64 / snapshots as f64;
    }
    rtts.sort_by(f64::total_cmp);
    report.rtt_ms_p50 = percentile(&rtts, 0.50);
    report.rtt_ms_p99 = percentile(&rtts, 0.99);
    report.seconds = started.elapsed().as_secs_f64();
    report
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index]
}

/// One direction of a bot's conditioned link: the schedule and what waits in it.
type ConditionedLink = Option<(Link, VecDeque<(Instant, Vec<u8>)>)>;

/// Which room bot `index` asks for, waiting for its room's creator when it is not the creator.
async fn room_request(
    index: u32,
    config: &BotsConfig,
    codes: &[tokio::sync::watch::Sender<Option<String>>],
) -> Option<RoomRequest> {
    if config.rooms > 0 {
        let group = (index % config.rooms) as usize;
        if index < config.rooms {
            let name = format!("{} room {}", config.name_prefix, group + 1);
            let settings = RoomSettings { name: Some(name), bots: Some(config.room_bots), ..RoomSettings::default() };
            return Some(RoomRequest::Create(settings));
        }
        let mut code = codes[group].subscribe();
        let code = code.wait_for(Option::is_some).await.ok()?.clone()?;
        // An empty code means the creator failed.
        return (!code.is_empty()).then_some(RoomRequest::Join { code });
    }
    Some(match &config.room {
        Some(code) => RoomRequest::Join { code: code.clone() },
        None => RoomRequest::QuickPlay,
    })
}

async fn play_one(
    index: u32,
    config: &BotsConfig,
    gate: &Semaphore,
    codes: &[tokio::sync::watch::Sender<Option<String>>],
) -> BotOutcome {
    let creator = config.rooms > 0 && index < config.rooms;
    let outcome = play_one_inner(index, config, gate, codes).await;
    if creator {
        // Release the room's other bots even when the creator failed (empty code: give up).
        codes[index as usize].send_if_modified(|code| {
            if code.is_none() {
                *code = Some(String::new());
                true
            } else {
                false
            }
        });
    }
    outcome
}

async fn play_one_inner(
    index: u32,
    config: &BotsConfig,
    gate: &Semaphore,
    codes: &[tokio::sync::watch::Sender<Option<String>>],
) -> BotOutcome {
    let mut outcome = BotOutcome::default();
    let Some(room) = room_request(index, config, codes).await else {
        outcome.disconnect = Some("its room could not be created".to_string());
        return outcome;
    };
    let mut rng = Pcg32::seed_from_u64(config.seed.wrapping_mul(1_000_003).wrapping_add(u64::from(index)));
    // Handshake with at most `connect_concurrency` in flight.
    let permit = gate.acquire().await.expect("semaphore is never closed");
    let connect = tokio::time::timeout(
        Duration::from_secs(20),
        tokio_tungstenite::connect_async_with_config(config.url.as_str(), Some(client_ws_config()), true),
    )
    .await;
    let mut ws = match connect {
        Ok(Ok((ws, _))) => ws,
        Ok(Err(error)) => {
            outcome.disconnect = Some(format!("connect failed: {error}"));
            return outcome;
        }
        Err(_) => {
            outcome.disconnect = Some("connect timed out".to_string());
            return outcome;
        }
    };
    let hello = ClientMsg::Hello {
        protocol: PROTOCOL_VERSION,
        name: format!("{}-{}", config.name_prefix, index + 1),
        resume: None,
        room,
        host_key: None,
        client_id: config.seed.wrapping_mul(0x9e37_79b9).wrapping_add(u64::from(index) + 1),
        auth: config.auth.clone(),
        guest: None,
    };
    if ws.send(Message::Binary(protocol::encode(&hello).into())).await.is_err() {
        outcome.disconnect = Some("hello could not be sent".to_string());
        return outcome;
    }
    let welcome = loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Binary(bytes)))) => match protocol::decode_server(&bytes) {
                Ok(ServerMsg::Welcome(welcome)) => break welcome,
                Ok(ServerMsg::Disconnect(reason)) => {
                    outcome.disconnect = Some(reason.to_string());
                    return outcome;
                }
                Ok(_) => continue,
                Err(error) => {
                    outcome.decode_errors += 1;
                    outcome.disconnect = Some(format!("undecodable welcome: {error}"));
                    return outcome;
                }
            },
            Ok(Some(Ok(_))) => continue,
            _ => {
                outcome.disconnect = Some("no welcome".to_string());
                return outcome;
            }
        }
    };
    drop(permit);
    outcome.connected = true;
    outcome.room = Some(welcome.room.code.to_string());
    if config.rooms > 0 && index < config.rooms {
        codes[index as usize].send_replace(Some(welcome.room.code.to_string()));
    }
    let mut me = welcome.player_id;

    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(config.seconds);
    let mut receiver = SnapshotReceiver::new();
    let mut latest = Tick::ZERO;
    let mut seq = 0u32;
    let mut heading: f32 = rng.random_range(0.0..std::f32::consts::TAU);
    let mut aim: f32 = 0.0;
    let mut inputs = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(config.input_hz.max(1))));
    inputs.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pings = tokio::time::interval(Duration::from_millis(500));
    pings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // With `net_sim`, both directions go through a conditioned link: messages wait in these
    // queues until the link delivers them.
    let mut up = config.net_sim.map(|sim| (Link::new(sim, Instant::now(), u64::from(index) * 2), VecDeque::new()));
    let mut down =
        config.net_sim.map(|sim| (Link::new(sim, Instant::now(), u64::from(index) * 2 + 1), VecDeque::new()));
    let due = |queue: &ConditionedLink| queue.as_ref().and_then(|(_, q)| q.front()).map(|(at, _)| *at);
    let ended_by_us = loop {
        let (up_due, down_due) = (due(&up), due(&down));
        let far = deadline + Duration::from_secs(3600);
        let bytes: Vec<u8> = tokio::select! {
            _ = tokio::time::sleep_until(deadline) => break true,
            _ = tokio::time::sleep_until(up_due.unwrap_or(far)), if up_due.is_some() => {
                let Some((_, bytes)) = up.as_mut().and_then(|(_, q)| q.pop_front()) else { continue };
                if ws.send(Message::Binary(bytes.into())).await.is_err() {
                    outcome.disconnect = Some("send failed".to_string());
                    break false;
                }
                continue;
            }
            _ = tokio::time::sleep_until(down_due.unwrap_or(far)), if down_due.is_some() => {
                let Some((_, bytes)) = down.as_mut().and_then(|(_, q)| q.pop_front()) else { continue };
                bytes
            }
            _ = inputs.tick() => {
                seq += 1;
                heading += rng.random_range(-0.3..0.3);
                aim += rng.random_range(-0.2..0.2);
                let cmd = InputCmd {
                    seq,
                    ack: latest,
                    move_x: heading.cos().clamp(-1.0, 1.0),
                    move_y: heading.sin().clamp(-1.0, 1.0),
                    aim,
                    fire: rng.random_bool(0.2),
                    // No interpolation here: the bot saw the newest snapshot.
                    view: Some(ViewTime { tick: latest, frac: 0 }),
                };
                let bytes = protocol::encode(&ClientMsg::Input(cmd));
                if let Some((link, queue)) = up.as_mut() {
                    queue.push_back((link.deliver_at(Instant::now(), bytes.len()), bytes));
                } else if ws.send(Message::Binary(bytes.into())).await.is_err() {
                    outcome.disconnect = Some("send failed".to_string());
                    break false;
                }
                outcome.inputs_sent += 1;
                continue;
            }
            _ = pings.tick() => {
                let client_time = started.elapsed().as_secs_f64() * 1000.0;
                let bytes = protocol::encode(&ClientMsg::Ping { client_time });
                if let Some((link, queue)) = up.as_mut() {
                    queue.push_back((link.deliver_at(Instant::now(), bytes.len()), bytes));
                } else if ws.send(Message::Binary(bytes.into())).await.is_err() {
                    outcome.disconnect = Some("send failed".to_string());
                    break false;
                }
                continue;
            }
            frame = ws.next() => {
                let bytes = match frame {
                    Some(Ok(Message::Binary(bytes))) => bytes,
                    Some(Ok(Message::Close(frame))) => {
                        if outcome.disconnect.is_none() {
                            outcome.disconnect = Some(match frame {
                                Some(frame) if frame.code != CloseCode::Normal => format!("closed {}: {}", u16::from(frame.code), frame.reason),
                                _ => "closed by server".to_string(),
                            });
                        }
                        break false;
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(error)) => {
                        outcome.disconnect.get_or_insert_with(|| format!("connection error: {error}"));
                        break false;
                    }
                    None => {
                        outcome.disconnect.get_or_insert_with(|| "connection lost".to_string());
                        break false;
                    }
                };
                if let Some((link, queue)) = down.as_mut() {
                    queue.push_back((link.deliver_at(Instant::now(), bytes.len()), bytes.to_vec()));
                    continue;
                }
                bytes.to_vec()
            }
        };
        outcome.bytes += bytes.len() as u64;
        match protocol::decode_server(&bytes) {
            Ok(ServerMsg::Snapshot(snapshot)) => {
                outcome.snapshots += 1;
                match receiver.apply(snapshot.tick, snapshot.baseline, &snapshot.delta) {
                    Ok(view) => {
                        latest = snapshot.tick;
                        outcome.entities_seen += view.len() as u64;
                        let own_alive = snapshot.own.is_some_and(|own| own.alive);
                        let own_seen = matches!(view.get(me), Some(EntityState::Player(_)));
                        if !view.is_sorted() || (own_alive && !own_seen) {
                            outcome.reconstruction_errors += 1;
                        }
                    }
                    Err(_) => outcome.decode_errors += 1,
                }
            }
            Ok(ServerMsg::Pong { client_time, .. }) => {
                outcome.rtts_ms.push(started.elapsed().as_secs_f64() * 1000.0 - client_time);
            }
            Ok(ServerMsg::Disconnect(reason)) => {
                outcome.disconnect = Some(format!("{reason} ({})", reason.close_code()));
            }
            Ok(ServerMsg::Welcome(welcome)) => {
                // The host started a new match: a new player, snapshots from scratch.
                me = welcome.player_id;
                receiver = SnapshotReceiver::new();
                latest = Tick::ZERO;
            }
            Ok(
                ServerMsg::ReplayStatus(_) | ServerMsg::Room(_) | ServerMsg::RoundOver(_) | ServerMsg::RoundRated(_),
            ) => {}
            Err(_) => outcome.decode_errors += 1,
        }
    };
    outcome.played = started.elapsed().as_secs_f64().min(config.seconds);
    if ended_by_us {
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            ws.close(None).await?;
            // Drain until the server's Close reply so the close is clean on both sides.
            while let Some(frame) = ws.next().await {
                frame?;
            }
            Ok::<(), tokio_tungstenite::tungstenite::Error>(())
        })
        .await;
    }
    outcome
}
