//! The room task: owns the [`World`], runs the fixed-timestep loop and sends every client its
//! snapshot. Connection tasks talk to it only through [`SimInput`] on one bounded channel; it
//! talks back only with `try_send` into each client's bounded outbox and by [`Kick`], so it never
//! waits on a client (no cycle of bounded channels).

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shared::bits::BitWriter;
use shared::protocol::{
    self, DisconnectReason, GameEvent, InputCmd, Leaderboard, OwnState, ServerMsg, SnapshotMsgRef, Welcome,
};
use shared::rules::VIEW_HALF_EXTENT;
use shared::snapshot::{NetId, View, encode_delta};
use shared::tick::Tick;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::world::{PlayerKey, Rules, World, WorldConfig};
use crate::config::ServerConfig;
use crate::metrics::{self, Histogram};
use crate::replay::{self, Op, Recorder};
use crate::snapshot::{Baselines, Scene};

/// Identifies one connection for the lifetime of the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

/// Encoded server messages on their way to one connection's writer.
pub type Outbox = mpsc::Sender<Vec<u8>>;

/// Capacity of each client's outbox, in messages. Small on purpose: a client that cannot keep up
/// should skip stale snapshots, not queue them.
pub const OUTBOX_CAPACITY: usize = 8;
/// Capacity of the channel into the sim. Connection tasks wait when it is full.
pub const INBOX_CAPACITY: usize = 8192;
/// Most ticks the loop runs back to back to catch up after a stall; beyond that it drops time.
pub const MAX_CATCH_UP_TICKS: u32 = 4;
/// Undelivered events a client may accumulate before it counts as too slow.
const MAX_PENDING_EVENTS: usize = 2048;

/// A one-shot, first-reason-wins request to close a connection. Shared by the sim (too slow,
/// server closing) and the connection's own reader (protocol violations); the reader and the
/// writer each wait on it through their own waker slot.
///
/// Lock-free on the hot path: a connection's tasks poll `signal` on every wake-up, so it is an
/// atomic flag plus an `AtomicWaker` per waiter (a `CancellationToken` took a lock per poll).
#[derive(Clone, Debug, Default)]
pub struct Kick {
    inner: Arc<KickInner>,
}

#[derive(Debug, Default)]
struct KickInner {
    kicked: std::sync::atomic::AtomicBool,
    reason: Mutex<Option<DisconnectReason>>,
    /// Slot 0: the reader; slot 1: the writer.
    wakers: [futures_util::task::AtomicWaker; 2],
}

/// Which of a connection's tasks waits on a [`Kick`].
#[derive(Clone, Copy, Debug)]
pub enum KickWaiter {
    Reader = 0,
    Writer = 1,
}

impl Kick {
    pub fn new() -> Kick {
        Kick::default()
    }

    /// Requests the close. Later reasons are ignored.
    pub fn kick(&self, reason: DisconnectReason) {
        let mut slot = self.inner.reason.lock().expect("kick mutex is never poisoned: no panics while held");
        if slot.is_none() {
            *slot = Some(reason);
            self.inner.kicked.store(true, Ordering::Release);
            for waker in &self.inner.wakers {
                waker.wake();
            }
        }
    }

    /// Completes once kicked. Create it once per task and poll it by reference in loops.
    pub fn signal(&self, waiter: KickWaiter) -> KickSignal<'_> {
        KickSignal { kick: self, slot: waiter as usize }
    }

    pub fn reason(&self) -> Option<DisconnectReason> {
        self.inner.reason.lock().expect("kick mutex is never poisoned").clone()
    }

    pub fn is_kicked(&self) -> bool {
        self.inner.kicked.load(Ordering::Acquire)
    }
}

/// The future returned by [`Kick::signal`].
pub struct KickSignal<'a> {
    kick: &'a Kick,
    slot: usize,
}

impl std::future::Future for KickSignal<'_> {
    type Output = ();

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if self.kick.is_kicked() {
            return std::task::Poll::Ready(());
        }
        self.kick.inner.wakers[self.slot].register(cx.waker());
        // Checked again after registering, so a kick in between is never missed.
        if self.kick.is_kicked() { std::task::Poll::Ready(()) } else { std::task::Poll::Pending }
    }
}

/// Everything that can change the room arrives through this enum.
#[derive(Debug)]
pub enum SimInput {
    /// A connection finished its handshake and wants a player.
    Join {
        conn: ConnId,
        name: String,
        resume: Option<u64>,
        outbox: Outbox,
        kick: Kick,
        /// The encoded [`ServerMsg::Welcome`], or why the join was refused.
        reply: oneshot::Sender<Result<Vec<u8>, DisconnectReason>>,
    },
    Input {
        conn: ConnId,
        cmd: InputCmd,
        /// When the connection task decoded it (for input-to-ack latency).
        received: Instant,
    },
    Ack {
        conn: ConnId,
        tick: Tick,
    },
    Chat {
        conn: ConnId,
        text: String,
    },
    /// A spectator's playback request (replay rooms only).
    ReplayControl {
        conn: ConnId,
        paused: bool,
        speed: f32,
        seek: Option<Tick>,
    },
    /// Sent exactly once per joined connection, after its reader and writer stopped.
    Leave {
        conn: ConnId,
        reason: DisconnectReason,
    },
}

/// Figures the room publishes for logs, `/metrics` and tests. Written by the sim task only.
#[derive(Debug, Default)]
pub struct RoomStats {
    pub tick: AtomicU32,
    pub ticks: AtomicU64,
    /// Ticks dropped because the loop fell more than [`MAX_CATCH_UP_TICKS`] behind.
    pub ticks_dropped: AtomicU64,
    /// Duration of the last tick (step plus snapshots, if any), microseconds.
    pub last_tick_us: AtomicU64,
    pub players: AtomicU32,
    pub clients: AtomicU32,
    pub snapshots_sent: AtomicU64,
    /// Snapshots not sent because the client's outbox was full.
    pub snapshots_skipped: AtomicU64,
    pub snapshot_bytes: AtomicU64,
    /// Duration of each loop iteration that did work (steps plus snapshots).
    pub tick_time: Histogram,
    /// From an input's arrival to the snapshot that acknowledges it leaving for the socket.
    pub input_ack_latency: Histogram,
}

impl RoomStats {
    /// Prometheus text exposition of every figure.
    pub fn render_prometheus(&self) -> String {
        let mut out = String::new();
        let load = |v: &AtomicU64| v.load(Ordering::Relaxed);
        metrics::gauge(
            &mut out,
            "arena_tick",
            "Current simulation tick.",
            u64::from(self.tick.load(Ordering::Relaxed)),
        );
        metrics::counter(&mut out, "arena_ticks_total", "Simulation ticks run.", load(&self.ticks));
        metrics::counter(
            &mut out,
            "arena_ticks_dropped_total",
            "Ticks skipped after falling too far behind.",
            load(&self.ticks_dropped),
        );
        metrics::gauge(
            &mut out,
            "arena_players",
            "Players in the room, bots included.",
            u64::from(self.players.load(Ordering::Relaxed)),
        );
        metrics::gauge(
            &mut out,
            "arena_clients",
            "Connected clients.",
            u64::from(self.clients.load(Ordering::Relaxed)),
        );
        metrics::counter(
            &mut out,
            "arena_snapshots_sent_total",
            "Snapshots handed to connections.",
            load(&self.snapshots_sent),
        );
        metrics::counter(
            &mut out,
            "arena_snapshots_skipped_total",
            "Snapshots skipped for full outboxes.",
            load(&self.snapshots_skipped),
        );
        metrics::counter(
            &mut out,
            "arena_snapshot_bytes_total",
            "Bytes of snapshot messages sent.",
            load(&self.snapshot_bytes),
        );
        self.tick_time.render(
            &mut out,
            "arena_tick_duration_seconds",
            "Time per tick-loop iteration with work (step and snapshots).",
        );
        self.input_ack_latency.render(
            &mut out,
            "arena_input_ack_latency_seconds",
            "From receiving an input to queueing the snapshot that acks it.",
        );
        out
    }
}

/// One connected client as the room sees it.
struct Client {
    player: PlayerKey,
    player_id: NetId,
    outbox: Outbox,
    kick: Kick,
    baselines: Baselines,
    /// Events not yet delivered (kept across skipped snapshots).
    pending_events: Vec<GameEvent>,
    leaderboard_pending: bool,
    /// Consecutive snapshots skipped because the outbox was full.
    skipped: u32,
    resume_token: u64,
    /// One input being timed until a snapshot acknowledges it: (sequence, arrival).
    latency_probe: Option<(u32, Instant)>,
}

/// Stats of a departed player, kept for a while so a reconnect can resume.
struct Departed {
    score: u16,
    kills: u16,
    deaths: u16,
    left_at: Instant,
}

/// The state the sim task owns.
pub struct Room {
    config: Arc<ServerConfig>,
    pub world: World,
    clients: BTreeMap<ConnId, Client>,
    departed: HashMap<u64, Departed>,
    scene: Scene,
    leaderboard: Leaderboard,
    stats: Arc<RoomStats>,
    token_source: RandomState,
    // Buffers reused for every client's snapshot.
    view_marks: Vec<u64>,
    writer: BitWriter,
    /// Largest interest view seen, to size new view buffers in one allocation.
    view_capacity: usize,
    /// This round's encoded deltas by baseline tick (shared-view mode only).
    delta_cache: Vec<(Option<Tick>, Vec<u8>)>,
    /// Records the match, when replays are on.
    recorder: Option<Recorder>,
}

impl Room {
    pub fn new(config: Arc<ServerConfig>, stats: Arc<RoomStats>) -> Room {
        let mut world = World::new(
            config.map.clone(),
            WorldConfig { tick_hz: config.tick_hz, seed: config.seed, rules: config.rules },
        );
        let mut recorder = config.replay_dir.as_ref().and_then(|dir| {
            let header = replay::ReplayHeader {
                protocol_version: shared::PROTOCOL_VERSION,
                server_version: env!("CARGO_PKG_VERSION").to_string(),
                tick_hz: config.tick_hz,
                snapshot_hz: config.snapshot_hz,
                seed: config.seed,
                rules: match config.rules {
                    Rules::Arena => 0,
                    Rules::S1 => 1,
                },
                map: (*config.map).clone(),
                started_unix_ms: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64),
                hash_every: replay::HASH_EVERY,
            };
            match Recorder::create(dir, &header) {
                Ok(recorder) => Some(recorder),
                Err(error) => {
                    warn!(dir = %dir.display(), %error, "cannot record a replay; playing without one");
                    None
                }
            }
        });
        for index in 0..config.bots {
            let name = format!("bot-{}", index + 1);
            let key = world.add_player(name.clone(), true);
            if let Some(recorder) = recorder.as_mut() {
                recorder.op(Op::Join { id: world.players[key].net_id, name, bot: true });
            }
        }
        Room {
            recorder,
            scene: Scene::new(&config.map),
            config,
            world,
            clients: BTreeMap::new(),
            departed: HashMap::new(),
            leaderboard: Leaderboard::default(),
            stats,
            token_source: RandomState::new(),
            view_marks: Vec::new(),
            writer: BitWriter::new(),
            view_capacity: 64,
            delta_cache: Vec::new(),
        }
    }

    fn humans(&self) -> usize {
        self.clients.len()
    }

    /// Applies one message from a connection.
    pub fn handle(&mut self, input: SimInput) {
        match input {
            SimInput::Join { conn, name, resume, outbox, kick, reply } => {
                let result = self.join(conn, name, resume, outbox, kick);
                if let Err(Ok(welcome)) = reply.send(result) {
                    // The connection gave up waiting: undo the join.
                    drop(welcome);
                    self.leave(conn, DisconnectReason::ConnectionLost);
                }
            }
            SimInput::Input { conn, cmd, received } => {
                if let Some(client) = self.clients.get_mut(&conn) {
                    client.baselines.ack(cmd.ack);
                    if client.latency_probe.is_none() {
                        client.latency_probe = Some((cmd.seq, received));
                    }
                    self.world.push_input(client.player, cmd);
                    if let Some(recorder) = self.recorder.as_mut() {
                        recorder.op(Op::Input { id: client.player_id, cmd });
                    }
                }
            }
            SimInput::Ack { conn, tick } => {
                if let Some(client) = self.clients.get_mut(&conn) {
                    client.baselines.ack(tick);
                }
            }
            SimInput::Chat { conn, text } => {
                if let Some(client) = self.clients.get(&conn) {
                    info!(conn = conn.0, player = %client.player_id, %text, "chat");
                    if let Some(recorder) = self.recorder.as_mut() {
                        recorder.op(Op::Chat { id: client.player_id, text: text.clone() });
                    }
                    self.world.events.push(GameEvent::Chat { from: client.player_id, text });
                }
            }
            SimInput::Leave { conn, reason } => self.leave(conn, reason),
            SimInput::ReplayControl { .. } => {} // Live rooms cannot be paused.
        }
    }

    fn join(
        &mut self,
        conn: ConnId,
        name: String,
        resume: Option<u64>,
        outbox: Outbox,
        kick: Kick,
    ) -> Result<Vec<u8>, DisconnectReason> {
        if self.humans() >= usize::from(self.config.max_players) {
            return Err(DisconnectReason::ServerFull { max: self.config.max_players });
        }
        let grace = self.config.resume_grace;
        self.departed.retain(|_, departed| departed.left_at.elapsed() < grace);
        let resumed = resume.and_then(|token| self.departed.remove(&token).map(|d| (token, d)));
        let player = self.world.add_player(name.clone(), false);
        if let Some(recorder) = self.recorder.as_mut() {
            recorder.op(Op::Join { id: self.world.players[player].net_id, name: name.clone(), bot: false });
        }
        let resume_token = match &resumed {
            Some((token, departed)) => {
                self.world.restore_stats(player, departed.score, departed.kills, departed.deaths);
                if let Some(recorder) = self.recorder.as_mut() {
                    recorder.op(Op::Resume {
                        id: self.world.players[player].net_id,
                        score: departed.score,
                        kills: departed.kills,
                        deaths: departed.deaths,
                    });
                }
                *token
            }
            None => self.token_source.hash_one(conn.0 ^ (u64::from(self.world.tick.0) << 32)),
        };
        let player_id = self.world.players[player].net_id;
        let roster = self.world.roster();
        let welcome = ServerMsg::Welcome(Box::new(Welcome {
            player_id,
            resume_token,
            tick_rate: self.config.tick_hz,
            snapshot_rate: self.config.snapshot_hz,
            server_tick: self.world.tick,
            map_id: self.config.map.id.clone(),
            map: (*self.config.map).clone(),
            roster,
            max_players: self.config.max_players,
            replay: None,
        }));
        info!(
            conn = conn.0,
            player = %player_id,
            %name,
            resumed = resumed.is_some(),
            players = self.world.players.len(),
            "join"
        );
        self.clients.insert(
            conn,
            Client {
                player,
                player_id,
                outbox,
                kick,
                baselines: Baselines::new(),
                pending_events: Vec::new(),
                leaderboard_pending: true,
                skipped: 0,
                resume_token,
                latency_probe: None,
            },
        );
        self.publish_counts();
        Ok(protocol::encode(&welcome))
    }

    fn leave(&mut self, conn: ConnId, reason: DisconnectReason) {
        let Some(client) = self.clients.remove(&conn) else {
            return;
        };
        if let Some(recorder) = self.recorder.as_mut() {
            recorder.op(Op::Leave { id: client.player_id, reason: reason.clone() });
        }
        if let Some(player) = self.world.remove_player(client.player, reason.clone()) {
            if reason.is_expected() {
                info!(conn = conn.0, player = %client.player_id, name = %player.name, %reason, "leave");
            } else {
                warn!(conn = conn.0, player = %client.player_id, name = %player.name, %reason, "leave");
            }
            self.departed.insert(
                client.resume_token,
                Departed { score: player.score, kills: player.kills, deaths: player.deaths, left_at: Instant::now() },
            );
        }
        self.publish_counts();
    }

    fn publish_counts(&self) {
        self.stats.players.store(self.world.players.len() as u32, Ordering::Relaxed);
        self.stats.clients.store(self.clients.len() as u32, Ordering::Relaxed);
    }

    /// Runs one tick of the world and hands its events to every client.
    pub fn step(&mut self) {
        self.world.step();
        if let Some(recorder) = self.recorder.as_mut() {
            recorder.end_tick(&self.world);
        }
        self.stats.tick.store(self.world.tick.0, Ordering::Relaxed);
        self.stats.ticks.fetch_add(1, Ordering::Relaxed);
        self.distribute_events();
    }

    fn distribute_events(&mut self) {
        if self.world.events.is_empty() {
            return;
        }
        for client in self.clients.values_mut() {
            client.pending_events.extend(self.world.events.iter().cloned());
            if client.pending_events.len() > MAX_PENDING_EVENTS {
                client.pending_events.clear();
                client.kick.kick(DisconnectReason::TooSlow);
            }
        }
        self.world.events.clear();
    }

    /// Builds and queues one snapshot for every client.
    ///
    /// Without interest management every client gets the same view: it is built once, shared
    /// (`Arc`) as everyone's baseline, and each distinct (baseline → view) delta is encoded once
    /// per round and reused for every client that acknowledged the same baseline.
    pub fn send_snapshots(&mut self) {
        if let Some(leaderboard) = self.world.refresh_leaderboard() {
            self.leaderboard = leaderboard;
            for client in self.clients.values_mut() {
                client.leaderboard_pending = true;
            }
        }
        self.scene.rebuild(&self.world, self.config.ticks_per_snapshot());
        let tick = self.world.tick;
        let too_slow_after =
            (self.config.slow_client_timeout.as_secs_f32() * f32::from(self.config.snapshot_hz)).ceil() as u32;
        let shared_view = (!self.config.interest).then(|| {
            let mut view = View { entities: Vec::with_capacity(self.scene.len()) };
            self.scene.view_all(&mut view);
            Arc::new(view)
        });
        self.delta_cache.clear();
        let now = Instant::now();
        for client in self.clients.values_mut() {
            if client.kick.is_kicked() {
                continue;
            }
            let Some(player) = self.world.players.get(client.player) else { continue };
            let view = match &shared_view {
                Some(view) => view.clone(),
                None => {
                    let mut view = View { entities: Vec::with_capacity(self.view_capacity) };
                    self.scene.view_around(player.pos, VIEW_HALF_EXTENT, &mut self.view_marks, &mut view);
                    self.view_capacity = self.view_capacity.max(view.len());
                    Arc::new(view)
                }
            };
            let baseline = client.baselines.baseline();
            let baseline_tick = baseline.map(|(tick, _)| tick);
            // In shared-view mode each distinct baseline → view delta is encoded once per round.
            let cached = if shared_view.is_some() {
                self.delta_cache.iter().position(|(key, _)| *key == baseline_tick)
            } else {
                None
            };
            let cached = match cached {
                Some(index) => Some(index),
                None => {
                    encode_delta(tick, baseline.map(|(_, view)| &**view), &view, &mut self.writer);
                    if shared_view.is_some() {
                        self.delta_cache.push((baseline_tick, self.writer.finish().to_vec()));
                        Some(self.delta_cache.len() - 1)
                    } else {
                        None
                    }
                }
            };
            let own = OwnState {
                pos: player.pos,
                vel: player.vel,
                hp: player.hp,
                alive: player.alive,
                respawn_tick: (!player.alive).then_some(player.respawn_at),
                fire_cooldown: player.fire_cooldown.min(u32::from(u16::MAX)) as u16,
                score: player.score,
                rank: player.rank,
            };
            let delta: &[u8] = match cached {
                Some(index) => &self.delta_cache[index].1,
                None => self.writer.finish(),
            };
            let message = SnapshotMsgRef {
                tick,
                baseline: baseline_tick,
                input_ack: player.last_applied_seq,
                own: Some(own),
                delta,
                events: &client.pending_events,
                leaderboard: client.leaderboard_pending.then_some(&self.leaderboard),
            };
            let mut bytes = Vec::with_capacity(delta.len() + 64);
            protocol::encode_snapshot_into(message, &mut bytes);
            let size = bytes.len() as u64;
            match client.outbox.try_send(bytes) {
                Ok(()) => {
                    client.baselines.record(tick, view);
                    client.pending_events.clear();
                    client.leaderboard_pending = false;
                    client.skipped = 0;
                    if let Some((seq, received)) = client.latency_probe
                        && player.last_applied_seq >= seq
                    {
                        self.stats.input_ack_latency.record(now.saturating_duration_since(received));
                        client.latency_probe = None;
                    }
                    self.stats.snapshots_sent.fetch_add(1, Ordering::Relaxed);
                    self.stats.snapshot_bytes.fetch_add(size, Ordering::Relaxed);
                }
                Err(_) => {
                    // Full or closed: the events stay pending for the next snapshot; the next
                    // delta is still taken against what the client acknowledged, so skipping is
                    // safe.
                    client.skipped += 1;
                    self.stats.snapshots_skipped.fetch_add(1, Ordering::Relaxed);
                    if client.skipped > too_slow_after {
                        client.kick.kick(DisconnectReason::TooSlow);
                    }
                }
            }
        }
    }

    /// Flushes and closes the replay file, if recording.
    pub fn finish_recording(&mut self) {
        if let Some(recorder) = self.recorder.take() {
            recorder.finish();
        }
    }

    /// Where this room's replay is being written.
    pub fn replay_path(&self) -> Option<&std::path::Path> {
        self.recorder.as_ref().map(|r| r.path.as_path())
    }

    /// Asks every connection to close with `reason`.
    pub fn close_all(&mut self, reason: DisconnectReason) {
        for client in self.clients.values() {
            client.kick.kick(reason.clone());
        }
    }
}

/// Runs the room until `cancel` fires, then asks every client to close with
/// [`DisconnectReason::ServerClosing`].
pub async fn run(
    config: Arc<ServerConfig>,
    mut inbox: mpsc::Receiver<SimInput>,
    stats: Arc<RoomStats>,
    cancel: CancellationToken,
) {
    let mut room = Room::new(config.clone(), stats.clone());
    let period = Duration::from_secs_f64(1.0 / f64::from(config.tick_hz));
    let ticks_per_snapshot = config.ticks_per_snapshot();
    // A hand-rolled deadline instead of `tokio::time::interval`: after a stall we run at most
    // MAX_CATCH_UP_TICKS ticks back to back and then drop the rest of the debt (and count it),
    // so a long pause never turns into a burst of hundreds of ticks (no spiral of death).
    let mut next_tick = Instant::now() + period;
    let mut pending = Vec::with_capacity(1024);
    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep_until(next_tick) => {}
        }
        let started = Instant::now();
        // Drain everything the connections sent since the last tick.
        while let Ok(input) = inbox.try_recv() {
            pending.push(input);
        }
        for input in pending.drain(..) {
            room.handle(input);
        }
        let mut ran = 0;
        let mut snapshot_due = false;
        while next_tick <= started && ran < MAX_CATCH_UP_TICKS {
            room.step();
            snapshot_due |= room.world.tick.0.is_multiple_of(ticks_per_snapshot);
            next_tick += period;
            ran += 1;
        }
        if next_tick <= started {
            let behind = ((started - next_tick).as_secs_f64() / period.as_secs_f64()) as u64 + 1;
            stats.ticks_dropped.fetch_add(behind, Ordering::Relaxed);
            warn!(ticks_dropped = behind, tick = %room.world.tick, "tick loop fell behind; dropping time");
            next_tick = started + period;
        }
        if snapshot_due {
            room.send_snapshots();
        }
        let took = started.elapsed();
        stats.last_tick_us.store(took.as_micros() as u64, Ordering::Relaxed);
        if ran > 0 {
            stats.tick_time.record(took);
        }
    }
    room.close_all(DisconnectReason::ServerClosing);
    room.finish_recording();
    info!(tick = %room.world.tick, "room stopped");
}
