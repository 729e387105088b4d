//! A live room's task: owns the [`World`], runs the fixed-timestep loop, admits players and
//! spectators, carries out host commands and sends every client its snapshot. Connection tasks
//! talk to it only through [`SimInput`] on its one bounded channel; it talks back only with
//! `try_send` into each client's bounded outbox and by [`Kick`], so it never waits on a client
//! (no cycle of bounded channels). It publishes its summary for the lobby into its
//! [`RoomPublic`] and never waits on the registry or on another room. An empty room does not
//! tick: it sleeps on its inbox until someone joins or its idle time runs out.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shared::bits::BitWriter;
use shared::map::MapDef;
use shared::protocol::{
    self, DisconnectReason, GameEvent, InputCmd, Leaderboard, OwnState, ServerMsg, SnapshotMsgRef, Welcome,
};
use shared::room::{HostCmd, HostKey, MAX_ROOM_BOTS, RoomCode, RoomInfo};
use shared::rules::VIEW_HALF_EXTENT;
use shared::snapshot::{NetId, View, encode_delta};
use shared::tick::Tick;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::RoomPublic;
use crate::config::ServerConfig;
use crate::maps::MapCatalog;
use crate::metrics::{self, Histogram};
use crate::net::polled::Sockets;
use crate::replay::{self, Op, Recorder};
use crate::sim::world::{PlayerKey, Rules, World, WorldConfig, lag_comp_ticks};
use crate::snapshot::budget::{Budget, Focus};
use crate::snapshot::interest::{Cut, Entry, InterestScene, Sent};
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
    /// What the connection's writer measures of its link, for the operator's view of the room.
    link: LinkStats,
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

    /// The connection's link figures (written by its tasks, read by the room's inspection).
    pub fn link(&self) -> &LinkStats {
        &self.inner.link
    }
}

/// One connection's link as its tasks measure it: the round trip of the server's WebSocket pings
/// and the bytes per second its writer sends. Shared through the connection's [`Kick`].
#[derive(Debug, Default)]
pub struct LinkStats {
    /// Last measured round trip, microseconds (0: none yet).
    pub rtt_us: AtomicU32,
    /// Bytes written since the last rate sample.
    pub window_bytes: AtomicU64,
    /// Bytes per second over the last sample window.
    pub bytes_per_second: AtomicU32,
    /// The payload (send time, µs) of the ping awaiting its pong; 0 when none is.
    pub ping_sent_us: AtomicU64,
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
        /// Watch instead of play.
        spectator: bool,
        /// The host key the client presented, if any.
        host_key: Option<HostKey>,
        /// The browser's own id (0 if it sent none); kicked ids cannot come back.
        client_id: u64,
        /// The peer's address (`None` in tests and benchmarks without a socket).
        ip: Option<std::net::IpAddr>,
    },
    /// A host command; the room checks that `conn` is the host.
    Host {
        conn: ConnId,
        cmd: HostCmd,
    },
    /// An operator's request (`/api/admin/…`); the room answers on `reply`.
    Admin {
        op: crate::admin::ops::AdminOp,
        reply: oneshot::Sender<Result<crate::admin::ops::AdminAnswer, String>>,
    },
    /// Makes the room task panic. No client message maps to it: tests use it to prove that a
    /// failing room is contained (only its own players are disconnected, with a reason).
    Crash,
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
    /// A joined plain-TCP connection handing its socket to the room's task, which polls it
    /// once per tick from then on (`net::polled`). Only the run loop takes these.
    Attach(Box<crate::net::polled::Attached>),
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

/// A baseline in the shared-view delta cache: its tick and the address of its view.
type BaselineKey = (Tick, usize);

/// One player's connection as the room sees it.
struct Client {
    player: PlayerKey,
    player_id: NetId,
    name: String,
    client_id: u64,
    ip: Option<std::net::IpAddr>,
    outbox: Outbox,
    kick: Kick,
    baselines: Baselines<Sent>,
    /// Priorities of the changes the byte budget deferred.
    budget: Budget,
    /// Events not yet delivered (kept across skipped snapshots).
    pending_events: Vec<GameEvent>,
    leaderboard_pending: bool,
    /// The room's description changed and this client has not been sent it yet.
    room_pending: bool,
    /// Consecutive snapshots skipped because the outbox was full.
    skipped: u32,
    resume_token: u64,
    /// When the last message from this connection arrived: a resume may take over a seat whose
    /// connection has been silent for [`TAKEOVER_SILENCE`] (a half-open socket the server has
    /// not noticed yet), never a live one.
    last_heard: Instant,
    /// One input being timed until a snapshot acknowledges it: (sequence, arrival).
    latency_probe: Option<(u32, Instant)>,
}

/// A spectator of a live room: sees the whole map, has no player, sends no inputs.
struct Spectator {
    outbox: Outbox,
    kick: Kick,
    ip: Option<std::net::IpAddr>,
    baselines: Baselines,
    budget: Budget,
    pending_events: Vec<GameEvent>,
    leaderboard_pending: bool,
    room_pending: bool,
    skipped: u32,
}

/// A player whose connection dropped without a goodbye: the entity stays in the world (standing
/// still, not firing, marked [`shared::snapshot::FLAG_AWAY`]) until a connection with its resume
/// token takes it back or `config.resume_grace` ends.
struct HeldSeat {
    player: PlayerKey,
    player_id: NetId,
    name: String,
    client_id: u64,
    ip: Option<std::net::IpAddr>,
    since: Instant,
}

/// Score and counters of a player who left with a goodbye (a closed tab, a reload), kept for the
/// grace period: coming back with the token makes a new entity with the same score.
struct Departed {
    score: u16,
    kills: u16,
    deaths: u16,
    left_at: Instant,
}

/// What a resume token in a hello finds (see [`Room::claim_seat`]).
struct Seat {
    player: PlayerKey,
    player_id: NetId,
    name: String,
    token: u64,
    /// The seat was in play on this connection (a takeover), which loses it.
    replaced: Option<ConnId>,
}

/// A resume may take a seat from a live connection only after this long without a message from
/// it: long enough that two racing resumes cannot both win, short enough that a player whose
/// old socket is half-open (the server has not noticed it yet) gets back in at once.
pub const TAKEOVER_SILENCE: Duration = Duration::from_secs(2);
/// Seats one (non-loopback) address may have held in a room at once; more drops leave at once.
pub const MAX_HELD_PER_ADDRESS: usize = 4;

/// Queue depths above this are reported as this (the client only cares about small ones).
const MAX_REPORTED_QUEUE: u8 = 100;

/// Spectators one room admits at once.
pub const MAX_SPECTATORS: u16 = 64;
/// Restarts and map changes are at most one per this long (each one ends a replay file).
pub const NEW_MATCH_COOLDOWN: Duration = Duration::from_secs(2);
/// How long a host who lost the role without acting gets a notice instead of a disconnect for
/// a host command (one that was on its way before the news arrived).
const DEMOTION_GRACE: Duration = Duration::from_secs(5);

/// What a room is, beyond the server-wide configuration: its identity and its creator's choices.
#[derive(Clone, Debug)]
pub struct RoomSetup {
    pub code: RoomCode,
    pub name: String,
    pub public: bool,
    pub map: Arc<MapDef>,
    pub bots: u16,
    pub max_players: u16,
    /// "Main": never closes for being idle.
    pub permanent: bool,
    pub host_key: HostKey,
    pub maps: Arc<MapCatalog>,
    /// The server's drain, which every room watches.
    pub drain: Arc<super::Drain>,
}

impl RoomSetup {
    /// A room that plays `config`'s map with its bots and player cap (tests and benchmarks).
    pub fn from_config(config: &ServerConfig, code: RoomCode) -> RoomSetup {
        RoomSetup {
            code,
            name: "Main".to_string(),
            public: true,
            map: config.map.clone(),
            bots: config.bots,
            max_players: config.max_players,
            permanent: true,
            host_key: super::random_host_key(),
            maps: Arc::new(MapCatalog::with_default(config.map.clone())),
            drain: Arc::default(),
        }
    }
}

/// The state the room task owns.
pub struct Room {
    config: Arc<ServerConfig>,
    setup: RoomSetup,
    pub world: World,
    clients: BTreeMap<ConnId, Client>,
    spectators: BTreeMap<ConnId, Spectator>,
    /// Seats held for dropped players, by resume token.
    held: HashMap<u64, HeldSeat>,
    /// The host's seat, while it is held: the role waits for them (and passes on if the seat
    /// expires).
    held_host: Option<u64>,
    departed: HashMap<u64, Departed>,
    scene: Scene,
    leaderboard: Leaderboard,
    stats: Arc<RoomStats>,
    public: Option<Arc<RoomPublic>>,
    /// The room's secret for resume-token tags (HMAC-SHA-256, 256 random bits).
    token_key: [u8; 32],
    locked: bool,
    /// The host's connection, while a human holds the role.
    host: Option<ConnId>,
    /// Whether the host holds the key (joined with it, or was handed the role). A player who
    /// became host only because the host left plays host without the key, so the creator
    /// coming back with it takes the role back, and nobody else ever learns it.
    host_has_key: bool,
    /// The last host who lost the role without acting, and when: a control they click before
    /// the news reaches them gets a notice, not a disconnect.
    former_host: Option<(ConnId, Instant)>,
    /// When the last new match started (restarts and map changes are limited to one per
    /// [`NEW_MATCH_COOLDOWN`]: each closes one replay file and opens another).
    last_new_match: Option<Instant>,
    /// Browsers (client ids), resume tokens and addresses the host kicked: refused for the
    /// room's life.
    banned_clients: HashSet<u64>,
    banned_tokens: HashSet<u64>,
    banned_ips: HashSet<std::net::IpAddr>,
    /// Matches played (restarts and map changes start a new one).
    match_number: u32,
    /// What interest-managed players see (`config.interest`).
    interest: InterestScene,
    // Buffers reused for every client's snapshot.
    writer: BitWriter,
    entries: Vec<(NetId, Entry)>,
    /// This round's encoded deltas by baseline tick (shared-view mode only).
    /// Shared-view mode: deltas encoded this round, by baseline (its tick and the view's
    /// address: with a byte budget two clients' baselines of one tick can differ).
    delta_cache: Vec<(Option<BaselineKey>, Vec<u8>)>,
    /// Records the match, when replays are on; started when the first player joins.
    recorder: Option<Recorder>,
    /// Seconds left at the last drain notice (None: not announced yet).
    drain_announced: Option<u64>,
    /// The operator closed the room: its task ends after this message.
    pub closed_by_operator: bool,
}

impl Room {
    /// A room playing `config`'s map (tests and benchmarks; the server uses [`Room::with_setup`]).
    pub fn new(config: Arc<ServerConfig>, stats: Arc<RoomStats>) -> Room {
        let setup = RoomSetup::from_config(&config, RoomCode::from_indices([0, 1, 2, 3]));
        Room::with_setup(config, setup, stats, None)
    }

    pub fn with_setup(
        config: Arc<ServerConfig>,
        setup: RoomSetup,
        stats: Arc<RoomStats>,
        public: Option<Arc<RoomPublic>>,
    ) -> Room {
        let world = new_world(&config, &setup.map, 0);
        let mut room = Room {
            scene: Scene::new(),
            interest: InterestScene::new(&setup.map),
            setup,
            config,
            world,
            clients: BTreeMap::new(),
            spectators: BTreeMap::new(),
            held: HashMap::new(),
            held_host: None,
            departed: HashMap::new(),
            leaderboard: Leaderboard::default(),
            stats,
            public,
            token_key: rand::random(),
            locked: false,
            host: None,
            host_has_key: false,
            former_host: None,
            last_new_match: None,
            banned_clients: HashSet::new(),
            banned_tokens: HashSet::new(),
            banned_ips: HashSet::new(),
            match_number: 0,
            writer: BitWriter::new(),
            entries: Vec::new(),
            delta_cache: Vec::new(),
            recorder: None,
            drain_announced: None,
            closed_by_operator: false,
        };
        room.add_bots(room.setup.bots);
        room.publish();
        room
    }

    pub fn code(&self) -> RoomCode {
        self.setup.code
    }

    pub fn is_permanent(&self) -> bool {
        self.setup.permanent
    }

    /// Nobody is playing or watching, and no seat is held for a reconnect (a held seat keeps the
    /// world running: the player is still in it).
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty() && self.spectators.is_empty() && self.held.is_empty()
    }

    /// Human players, held seats included (they count against `max_players`).
    fn humans(&self) -> usize {
        self.clients.len() + self.held.len()
    }

    /// Starts recording this match if replays are on and it is not recorded yet.
    fn ensure_recording(&mut self) {
        if self.recorder.is_some() {
            return;
        }
        let Some(dir) = self.config.replay_dir.as_ref() else { return };
        let header = replay::ReplayHeader {
            protocol_version: shared::PROTOCOL_VERSION,
            server_version: env!("CARGO_PKG_VERSION").to_string(),
            tick_hz: self.config.tick_hz,
            snapshot_hz: self.config.snapshot_hz,
            seed: match_seed(&self.config, self.match_number),
            rules: match self.config.rules {
                Rules::Arena => 0,
                Rules::S1 => 1,
            },
            map: (*self.setup.map).clone(),
            started_unix_ms: unix_ms(),
            hash_every: replay::HASH_EVERY,
            lag_comp_ticks: self.world.config.lag_comp_ticks,
        };
        // A recording must start from the match's first tick: a match already under way (players
        // joined before recording could start) is not recorded.
        if self.world.tick.0 != 0 {
            return;
        }
        match Recorder::create_named(dir, &header, self.setup.code.as_str(), self.config.replay_retention) {
            Ok(mut recorder) => {
                for player in self.world.players.values() {
                    recorder.op(Op::Join { id: player.net_id, name: player.name.clone(), bot: player.bot.is_some() });
                }
                self.recorder = Some(recorder);
            }
            Err(error) => {
                warn!(room = %self.setup.code, dir = %dir.display(), %error, "cannot record a replay; playing without one")
            }
        }
    }

    fn record(&mut self, op: Op) {
        if let Some(recorder) = self.recorder.as_mut() {
            recorder.op(op);
        }
    }

    fn add_bots(&mut self, count: u16) {
        let existing = self.world.players.values().filter(|p| p.bot.is_some()).count();
        for index in existing..existing + usize::from(count) {
            let name = format!("bot-{}", index + 1);
            let key = self.world.add_player(name.clone(), true);
            let id = self.world.players[key].net_id;
            self.record(Op::Join { id, name, bot: true });
        }
    }

    /// Adds or removes server bots to reach `bots`, and tells the room who did.
    fn set_bots(&mut self, bots: u16, by: &str) {
        let now = self.setup.bots;
        if bots > now {
            self.add_bots(bots - now);
        } else {
            self.remove_bots(now - bots);
        }
        self.setup.bots = bots;
        self.mark_room_changed();
        self.announce(format!("{by} set the bots to {bots}"));
    }

    fn remove_bots(&mut self, count: u16) {
        let mut bots: Vec<(PlayerKey, NetId)> =
            self.world.players.iter().filter(|(_, p)| p.bot.is_some()).map(|(k, p)| (k, p.net_id)).collect();
        bots.sort_by_key(|(_, id)| std::cmp::Reverse(id.0));
        for (key, id) in bots.into_iter().take(usize::from(count)) {
            self.world.remove_player(key, DisconnectReason::ClientLeft);
            self.record(Op::Leave { id, reason: DisconnectReason::ClientLeft });
        }
    }

    /// Applies one message from a connection.
    pub fn handle(&mut self, input: SimInput) {
        match input {
            SimInput::Join { conn, name, resume, outbox, kick, reply, spectator, host_key, client_id, ip } => {
                let result = if self.is_banned(client_id, resume, ip) {
                    Err(DisconnectReason::Kicked)
                } else if spectator {
                    self.join_spectator(conn, outbox, kick, ip)
                } else {
                    self.join(conn, name, resume, outbox, kick, host_key, (client_id, ip))
                };
                if let Err(Ok(welcome)) = reply.send(result) {
                    // The connection gave up waiting: undo the join (no seat to hold: nobody
                    // got its token).
                    drop(welcome);
                    self.leave(conn, DisconnectReason::ClientLeft);
                }
            }
            SimInput::Input { conn, cmd, received } => {
                if let Some(client) = self.clients.get_mut(&conn) {
                    client.last_heard = received;
                    client.baselines.ack(cmd.ack);
                    if client.latency_probe.is_none() {
                        client.latency_probe = Some((cmd.seq, received));
                    }
                    self.world.push_input(client.player, cmd);
                    let id = client.player_id;
                    self.record(Op::Input { id, cmd });
                } else if let Some(spectator) = self.spectators.get(&conn) {
                    spectator.kick.kick(DisconnectReason::NotAllowed);
                }
            }
            SimInput::Ack { conn, tick } => {
                if let Some(client) = self.clients.get_mut(&conn) {
                    client.last_heard = Instant::now();
                    client.baselines.ack(tick);
                } else if let Some(spectator) = self.spectators.get_mut(&conn) {
                    spectator.baselines.ack(tick);
                }
            }
            SimInput::Chat { conn, text } => {
                if let Some(client) = self.clients.get(&conn) {
                    info!(room = %self.setup.code, conn = conn.0, player = %client.player_id, %text, "chat");
                    let id = client.player_id;
                    self.record(Op::Chat { id, text: text.clone() });
                    self.world.events.push(GameEvent::Chat { from: id, text });
                }
            }
            SimInput::Host { conn, cmd } => self.host_command(conn, cmd),
            SimInput::Leave { conn, reason } => self.leave(conn, reason),
            SimInput::ReplayControl { conn, .. } => {
                // Live rooms cannot be paused; a player asking is confused, not hostile.
                if let Some(spectator) = self.spectators.get(&conn) {
                    spectator.kick.kick(DisconnectReason::NotAllowed);
                }
            }
            SimInput::Admin { op, reply } => {
                let answer = self.admin(op);
                let _ = reply.send(answer);
            }
            SimInput::Crash => panic!("room {} was asked to crash (panic containment test)", self.setup.code),
            // Only `run` polls sockets; one handed to a room driven some other way (tests,
            // benchmarks) is closed with "room closed" as it drops.
            SimInput::Attach(attached) => drop(attached),
        }
    }

    /// Carries out an operator's request (already authorized and audited by the API).
    fn admin(&mut self, op: crate::admin::ops::AdminOp) -> Result<crate::admin::ops::AdminAnswer, String> {
        use crate::admin::ops::{AdminAnswer, AdminOp};
        let done = |text: String| Ok(AdminAnswer::Done { done: text });
        match op {
            AdminOp::Inspect => Ok(AdminAnswer::Detail(Box::new(self.detail()))),
            AdminOp::Kick { player, message } => {
                let Some(client) = self.clients.values().find(|c| c.player_id == player) else {
                    let reason = DisconnectReason::ByOperator { message };
                    return match self.kick_held(player, reason) {
                        Some(name) => {
                            self.announce(format!("{name} was removed by the server's operator"));
                            done(format!("kicked {name} (whose seat was held for a reconnect)"))
                        }
                        None => Err(format!("no player {} in room {}", player.0, self.setup.code)),
                    };
                };
                if client.client_id != 0 {
                    self.banned_clients.insert(client.client_id);
                }
                if let Some(ip) = client.ip.filter(|ip| !ip.is_loopback()) {
                    self.banned_ips.insert(ip);
                }
                self.banned_tokens.insert(client.resume_token);
                client.kick.kick(DisconnectReason::ByOperator { message });
                let name = client.name.clone();
                self.announce(format!("{name} was removed by the server's operator"));
                done(format!("kicked {name}"))
            }
            AdminOp::KickAddress { ip } => {
                let key = crate::net::connection::address_key(ip);
                let matches = |other: Option<std::net::IpAddr>| {
                    other.is_some_and(|other| crate::net::connection::address_key(other) == key)
                };
                let mut closed = 0;
                for kick in self
                    .clients
                    .values()
                    .filter(|c| matches(c.ip))
                    .map(|c| &c.kick)
                    .chain(self.spectators.values().filter(|s| matches(s.ip)).map(|s| &s.kick))
                {
                    kick.kick(DisconnectReason::Banned);
                    closed += 1;
                }
                let held: Vec<NetId> = self.held.values().filter(|s| matches(s.ip)).map(|s| s.player_id).collect();
                for player in held {
                    self.kick_held(player, DisconnectReason::Banned);
                    closed += 1;
                }
                done(format!("closed {closed} connection(s)"))
            }
            AdminOp::Close { message } => {
                if self.setup.permanent {
                    return Err("the permanent room cannot be closed; drain the server to stop it".to_string());
                }
                info!(room = %self.setup.code, %message, "room closed by the operator");
                self.close_all(DisconnectReason::ByOperator { message });
                self.closed_by_operator = true;
                done(format!("closed room {}", self.setup.code))
            }
            AdminOp::Notice { text } => {
                self.announce(text);
                done("notice sent".to_string())
            }
            AdminOp::SetBots { bots } => {
                if bots > MAX_ROOM_BOTS && !self.setup.permanent {
                    return Err(format!("a room can have at most {MAX_ROOM_BOTS} bots"));
                }
                if bots > crate::config::MAX_MAIN_BOTS {
                    return Err(format!("at most {} bots", crate::config::MAX_MAIN_BOTS));
                }
                self.set_bots(bots, "The server's operator");
                done(format!("bots set to {bots}"))
            }
        }
    }

    /// The room as the operator sees it.
    fn detail(&self) -> crate::admin::ops::RoomDetail {
        use crate::admin::ops::{PlayerDetail, RoomDetail, SpectatorDetail, rtt_ms};
        let players = self
            .clients
            .iter()
            .map(|(conn, client)| {
                let player = self.world.players.get(client.player);
                let link = client.kick.link();
                PlayerDetail {
                    id: client.player_id.0,
                    name: client.name.clone(),
                    host: self.host == Some(*conn),
                    ip: client.ip.map(|ip| ip.to_string()),
                    rtt_ms: rtt_ms(link.rtt_us.load(Ordering::Relaxed)),
                    bytes_per_second: link.bytes_per_second.load(Ordering::Relaxed),
                    score: player.map_or(0, |p| p.score),
                    kills: player.map_or(0, |p| p.kills),
                    deaths: player.map_or(0, |p| p.deaths),
                }
            })
            .collect();
        let spectators = self
            .spectators
            .values()
            .map(|spectator| {
                let link = spectator.kick.link();
                SpectatorDetail {
                    ip: spectator.ip.map(|ip| ip.to_string()),
                    rtt_ms: rtt_ms(link.rtt_us.load(Ordering::Relaxed)),
                    bytes_per_second: link.bytes_per_second.load(Ordering::Relaxed),
                }
            })
            .collect();
        RoomDetail {
            code: self.setup.code.to_string(),
            name: self.setup.name.clone(),
            map: self.setup.map.id.clone(),
            public: self.setup.public,
            locked: self.locked,
            permanent: self.setup.permanent,
            replay: false,
            tick: self.world.tick.0,
            tick_p99_ms: metrics::quantile_us(&self.stats.tick_time.snapshot(), 0.99)
                .map_or(0.0, |us| us.min(10_000_000) as f64 / 1000.0),
            bots: self.setup.bots,
            max_players: self.setup.max_players,
            players,
            spectators,
        }
    }

    /// Whether `key` is this room's host key (constant time: no timing hints for guessers).
    fn is_host_key(&self, key: Option<&HostKey>) -> bool {
        use subtle::ConstantTimeEq;
        key.is_some_and(|key| bool::from(key.ct_eq(&self.setup.host_key)))
    }

    /// Kicks a player whose seat is held (no connection to close): the seat goes and its token,
    /// browser id and address are barred as for a connected player. The player's name, if found.
    fn kick_held(&mut self, player: NetId, reason: DisconnectReason) -> Option<String> {
        let token = self.held.iter().find(|(_, seat)| seat.player_id == player).map(|(token, _)| *token)?;
        let seat = self.held.remove(&token).expect("found");
        if seat.client_id != 0 {
            self.banned_clients.insert(seat.client_id);
        }
        if let Some(ip) = seat.ip.filter(|ip| !ip.is_loopback()) {
            self.banned_ips.insert(ip);
        }
        self.banned_tokens.insert(token);
        self.remove_seat(seat.player, seat.player_id, reason);
        if self.held_host == Some(token) {
            self.held_host = None;
            self.pass_host_on();
        }
        self.publish();
        Some(seat.name)
    }

    /// Whether a join comes from someone the host kicked: the same browser id, resume token or
    /// address. Loopback addresses are never banned: everyone on the server's own machine
    /// shares them.
    fn is_banned(&self, client_id: u64, resume: Option<u64>, ip: Option<std::net::IpAddr>) -> bool {
        (client_id != 0 && self.banned_clients.contains(&client_id))
            || resume.is_some_and(|token| self.banned_tokens.contains(&token))
            || ip.is_some_and(|ip| !ip.is_loopback() && self.banned_ips.contains(&ip))
    }

    /// A fresh resume token: a random nonce and its tag (HMAC under this room's key), so the
    /// room can tell its own tokens (live, held or expired) from forged ones or another room's
    /// without remembering every token it ever gave out.
    fn new_resume_token(&self) -> u64 {
        loop {
            let nonce: u32 = rand::random();
            let token = (u64::from(nonce) << 32) | u64::from(self.resume_tag(nonce));
            let taken = self.held.contains_key(&token) || self.clients.values().any(|c| c.resume_token == token);
            if token != 0 && !taken {
                return token;
            }
        }
    }

    fn resume_tag(&self, nonce: u32) -> u32 {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.token_key).expect("any key length");
        mac.update(b"arena resume token");
        mac.update(&nonce.to_le_bytes());
        let tag = mac.finalize().into_bytes();
        u32::from_le_bytes([tag[0], tag[1], tag[2], tag[3]])
    }

    /// What a hello's resume token gets: its held seat; its seat taken over from a connection
    /// silent for [`TAKEOVER_SILENCE`] (that connection is closed as [`DisconnectReason::Replaced`]);
    /// nothing (`None`: a token of this room whose seat is gone, so a new player); or a refusal
    /// (not this room's token, or its seat is in play on a live connection).
    fn claim_seat(&mut self, token: u64) -> Result<Option<Seat>, DisconnectReason> {
        let tag_ok = {
            use subtle::ConstantTimeEq;
            bool::from(self.resume_tag((token >> 32) as u32).ct_eq(&(token as u32)))
        };
        if !tag_ok {
            return Err(DisconnectReason::ResumeRefused {
                why: "not a player of this room (a token from another room, from before a server restart, or forged)"
                    .to_string(),
            });
        }
        if let Some(held) = self.held.remove(&token) {
            return Ok(Some(Seat {
                player: held.player,
                player_id: held.player_id,
                name: held.name,
                token,
                replaced: None,
            }));
        }
        let Some((&old, client)) = self.clients.iter().find(|(_, c)| c.resume_token == token) else {
            return Ok(None);
        };
        let silent = client.last_heard.elapsed();
        if silent < TAKEOVER_SILENCE && !client.kick.is_kicked() {
            let after = TAKEOVER_SILENCE - silent + Duration::from_millis(100);
            return Err(DisconnectReason::SeatInUse { after_ms: after.as_millis().min(u128::from(u32::MAX)) as u32 });
        }
        let client = self.clients.remove(&old).expect("found above");
        client.kick.kick(DisconnectReason::Replaced);
        Ok(Some(Seat {
            player: client.player,
            player_id: client.player_id,
            name: client.name,
            token,
            replaced: Some(old),
        }))
    }

    /// Removes the held seats whose grace period is over: those players leave as lost.
    fn expire_held_seats(&mut self) {
        if self.held.is_empty() {
            return;
        }
        let grace = self.config.resume_grace;
        let expired: Vec<u64> =
            self.held.iter().filter(|(_, seat)| seat.since.elapsed() >= grace).map(|(token, _)| *token).collect();
        if expired.is_empty() {
            return;
        }
        for token in expired {
            let seat = self.held.remove(&token).expect("listed");
            info!(room = %self.setup.code, player = %seat.player_id, name = %seat.name, "held seat expired");
            self.remove_seat(seat.player, seat.player_id, DisconnectReason::ConnectionLost);
            if self.held_host == Some(token) {
                self.held_host = None;
                self.pass_host_on();
            }
        }
        self.publish();
    }

    fn remove_seat(
        &mut self,
        player: PlayerKey,
        id: NetId,
        reason: DisconnectReason,
    ) -> Option<crate::sim::world::Player> {
        self.record(Op::Leave { id, reason: reason.clone() });
        self.world.remove_player(player, reason)
    }

    #[allow(clippy::too_many_arguments)]
    fn join(
        &mut self,
        conn: ConnId,
        name: String,
        resume: Option<u64>,
        outbox: Outbox,
        kick: Kick,
        host_key: Option<HostKey>,
        (client_id, ip): (u64, Option<std::net::IpAddr>),
    ) -> Result<Vec<u8>, DisconnectReason> {
        self.expire_held_seats();
        let key_holder = self.is_host_key(host_key.as_ref());
        let seat = match resume {
            Some(token) => self.claim_seat(token)?,
            None => None,
        };
        // Back soon after a goodbye (a reload) counts as one of the room's players for the lock.
        let grace = self.config.resume_grace;
        self.departed.retain(|_, departed| departed.left_at.elapsed() < grace);
        let reloading = resume.is_some_and(|token| self.departed.contains_key(&token));
        if seat.is_none() {
            if self.locked && !key_holder && !reloading {
                return Err(DisconnectReason::RoomLocked);
            }
            if self.humans() >= usize::from(self.setup.max_players) {
                return Err(DisconnectReason::RoomFull { max: self.setup.max_players });
            }
        }
        if self.world.tick.0 == 0 {
            self.ensure_recording();
        }
        let resumed = seat.is_some();
        let (player, player_id, name, resume_token) = match seat {
            Some(seat) => {
                // The same entity, id, position, health and score: no join or leave for anyone.
                if let Some(old) = seat.replaced {
                    if self.host == Some(old) {
                        self.host = Some(conn);
                        self.mark_room_changed();
                    }
                    info!(room = %self.setup.code, conn = old.0, player = %seat.player_id, "seat taken over by a newer connection");
                }
                if self.held_host == Some(seat.token) {
                    // The role waited for them.
                    self.held_host = None;
                    self.host = Some(conn);
                    self.mark_room_changed();
                }
                self.world.set_away(seat.player, false);
                self.record(Op::Back { id: seat.player_id });
                (seat.player, seat.player_id, seat.name, seat.token)
            }
            None => {
                let player = self.world.add_player(name.clone(), false);
                let player_id = self.world.players[player].net_id;
                self.record(Op::Join { id: player_id, name: name.clone(), bot: false });
                // Back soon after a goodbye (a reload): a new entity with the old score.
                match resume.and_then(|token| self.departed.remove(&token).map(|d| (token, d))) {
                    Some((token, d)) => {
                        self.world.restore_stats(player, d.score, d.kills, d.deaths);
                        self.record(Op::Resume { id: player_id, score: d.score, kills: d.kills, deaths: d.deaths });
                        (player, player_id, name, token)
                    }
                    None => (player, player_id, name, self.new_resume_token()),
                }
            }
        };
        self.clients.insert(
            conn,
            Client {
                player,
                player_id,
                name: name.clone(),
                client_id,
                ip,
                outbox,
                kick,
                baselines: Baselines::new(),
                budget: Budget::new(),
                pending_events: Vec::new(),
                leaderboard_pending: true,
                room_pending: false,
                skipped: 0,
                resume_token,
                last_heard: Instant::now(),
                latency_probe: None,
            },
        );
        // The key holder takes the role (back); with no host at all the first player does not:
        // the creator of a room made over HTTP may still be on the way.
        if key_holder && self.host != Some(conn) {
            let previous = self.host.replace(conn);
            self.held_host = None;
            self.host_has_key = true;
            if let Some(previous) = previous {
                self.former_host = Some((previous, Instant::now()));
                self.announce(format!("{name} is the host again"));
            }
            self.mark_room_changed();
        }
        info!(
            room = %self.setup.code,
            conn = conn.0,
            player = %player_id,
            %name,
            resumed,
            host = self.host == Some(conn),
            players = self.world.players.len(),
            "join"
        );
        self.publish();
        Ok(protocol::encode(&self.welcome_for(conn)))
    }

    fn join_spectator(
        &mut self,
        conn: ConnId,
        outbox: Outbox,
        kick: Kick,
        ip: Option<std::net::IpAddr>,
    ) -> Result<Vec<u8>, DisconnectReason> {
        if self.spectators.len() >= usize::from(MAX_SPECTATORS) {
            return Err(DisconnectReason::RoomFull { max: MAX_SPECTATORS });
        }
        self.spectators.insert(
            conn,
            Spectator {
                outbox,
                kick,
                ip,
                baselines: Baselines::new(),
                budget: Budget::new(),
                pending_events: Vec::new(),
                leaderboard_pending: true,
                room_pending: false,
                skipped: 0,
            },
        );
        // Watching starts the clock: record the match from its first tick.
        if self.world.tick.0 == 0 {
            self.ensure_recording();
        }
        info!(room = %self.setup.code, conn = conn.0, spectators = self.spectators.len(), "spectator joined");
        self.publish();
        Ok(protocol::encode(&self.welcome_for(conn)))
    }

    /// The welcome for `conn` (a player or a spectator) in the current match.
    fn welcome_for(&self, conn: ConnId) -> ServerMsg {
        let client = self.clients.get(&conn);
        ServerMsg::Welcome(Box::new(Welcome {
            player_id: client.map_or(NetId(0), |c| c.player_id),
            resume_token: client.map_or(0, |c| c.resume_token),
            tick_rate: self.config.tick_hz,
            snapshot_rate: self.config.snapshot_hz,
            server_tick: self.world.tick,
            map_id: self.setup.map.id.clone(),
            map: (*self.setup.map).clone(),
            roster: self.world.roster(),
            max_players: self.setup.max_players,
            replay: None,
            room: self.room_info_for(conn),
            spectator: client.is_none(),
            snapshot_budget_bytes: self.config.snapshot_budget_bytes,
        }))
    }

    /// The room as `conn` may see it: only the host gets the host key.
    fn room_info_for(&self, conn: ConnId) -> RoomInfo {
        let is_host = self.host == Some(conn);
        RoomInfo {
            code: self.setup.code,
            name: self.setup.name.clone(),
            public: self.setup.public,
            locked: self.locked,
            map_id: self.setup.map.id.clone(),
            max_players: self.setup.max_players,
            bots: self.setup.bots,
            host: self.host.and_then(|host| self.clients.get(&host)).map(|c| c.player_id),
            you_are_host: is_host,
            host_key: (is_host && self.host_has_key).then_some(self.setup.host_key),
            maps: self.setup.maps.ids(),
            permanent: self.setup.permanent,
        }
    }

    /// Every client is sent the room's new description with its next snapshot (or sooner).
    fn mark_room_changed(&mut self) {
        for client in self.clients.values_mut() {
            client.room_pending = true;
        }
        for spectator in self.spectators.values_mut() {
            spectator.room_pending = true;
        }
        self.publish();
    }

    /// A notice for everyone in the room (host actions and the like).
    fn announce(&mut self, text: String) {
        info!(room = %self.setup.code, notice = %text, "room notice");
        let event = GameEvent::Notice { text };
        for client in self.clients.values_mut() {
            client.pending_events.push(event.clone());
        }
        for spectator in self.spectators.values_mut() {
            spectator.pending_events.push(event.clone());
        }
    }

    /// While the server drains, once per tick: tells the players how long is left (at the start
    /// and at 30, 20, 10, 5, 4, 3, 2 and 1 seconds); true when the room is empty and may close.
    fn drain_step(&mut self) -> bool {
        let Some(left) = self.setup.drain.remaining() else { return false };
        // Held seats do not keep a draining room open: nobody can join it to resume them.
        if self.clients.is_empty() && self.spectators.is_empty() {
            return true;
        }
        let seconds = left.as_secs_f64().ceil() as u64;
        let due = match self.drain_announced {
            None => true,
            Some(last) => [30, 20, 10, 5, 4, 3, 2, 1].iter().any(|&mark| seconds <= mark && last > mark),
        };
        if due {
            self.drain_announced = Some(seconds);
            self.announce(format!("Server restarting in {seconds} s: finish your match"));
        }
        false
    }

    /// A notice for one client only (a host command that could not be carried out).
    fn tell(&mut self, conn: ConnId, text: String) {
        if let Some(client) = self.clients.get_mut(&conn) {
            client.pending_events.push(GameEvent::Notice { text });
        }
    }

    fn host_command(&mut self, conn: ConnId, cmd: HostCmd) {
        let just_demoted =
            self.former_host.is_some_and(|(former, when)| former == conn && when.elapsed() < DEMOTION_GRACE);
        if self.host != Some(conn) && just_demoted {
            self.tell(conn, "You are no longer the host".to_string());
            return;
        }
        if self.host != Some(conn) {
            let kick = self.clients.get(&conn).map(|c| &c.kick).or(self.spectators.get(&conn).map(|s| &s.kick));
            if let Some(kick) = kick {
                warn!(room = %self.setup.code, conn = conn.0, ?cmd, "host command from a non-host");
                kick.kick(DisconnectReason::NotAllowed);
            }
            return;
        }
        let host_name = self.clients.get(&conn).map_or_else(|| "The host".to_string(), |c| c.name.clone());
        info!(room = %self.setup.code, conn = conn.0, ?cmd, "host command");
        match cmd {
            HostCmd::Restart | HostCmd::SetMap { .. }
                if self.last_new_match.is_some_and(|at| at.elapsed() < NEW_MATCH_COOLDOWN)
                    && !matches!(&cmd, HostCmd::SetMap { map } if self.setup.maps.get(map).is_none()) =>
            {
                self.tell(conn, "A new match just started; wait a moment".to_string());
            }
            HostCmd::Restart => {
                self.new_match(self.setup.map.clone());
                self.announce(format!("{host_name} restarted the match"));
            }
            HostCmd::SetMap { map } => match self.setup.maps.get(&map) {
                Some(map) => {
                    let name = map.name.clone();
                    self.new_match(map);
                    self.announce(format!("{host_name} changed the map to {name}"));
                }
                None => self.tell(conn, format!("There is no map called \"{map}\"")),
            },
            HostCmd::SetBots { bots } => {
                if bots > MAX_ROOM_BOTS {
                    self.tell(conn, format!("A room can have at most {MAX_ROOM_BOTS} bots"));
                    return;
                }
                self.set_bots(bots, &host_name);
            }
            HostCmd::Kick { player } => {
                let target = self.clients.iter().find(|(c, client)| **c != conn && client.player_id == player);
                let Some((&target, client)) = target else {
                    if let Some(name) = self.kick_held(player, DisconnectReason::Kicked) {
                        self.announce(format!("{host_name} kicked {name}"));
                    } else {
                        self.tell(conn, "That player is not in the room".to_string());
                    }
                    return;
                };
                if client.client_id != 0 {
                    self.banned_clients.insert(client.client_id);
                }
                if let Some(ip) = client.ip.filter(|ip| !ip.is_loopback()) {
                    self.banned_ips.insert(ip);
                }
                self.banned_tokens.insert(client.resume_token);
                client.kick.kick(DisconnectReason::Kicked);
                let name = client.name.clone();
                let _ = target;
                self.announce(format!("{host_name} kicked {name}"));
            }
            HostCmd::SetLocked { locked } => {
                self.locked = locked;
                self.mark_room_changed();
                self.announce(format!("{host_name} {} the room", if locked { "locked" } else { "unlocked" }));
            }
            HostCmd::SetPublic { public } => {
                self.setup.public = public;
                self.mark_room_changed();
                self.announce(format!("{host_name} made the room {}", if public { "public" } else { "private" }));
            }
            HostCmd::Handover { player } => {
                let target = self.clients.iter().find(|(c, client)| **c != conn && client.player_id == player);
                let Some((&target, client)) = target else {
                    self.tell(conn, "That player is not in the room".to_string());
                    return;
                };
                let name = client.name.clone();
                self.host = Some(target);
                self.former_host = Some((conn, Instant::now()));
                // A new key, for the new host only: the old host cannot take the role back.
                self.setup.host_key = super::random_host_key();
                self.host_has_key = true;
                self.mark_room_changed();
                self.announce(format!("{host_name} made {name} the host"));
            }
        }
    }

    /// Starts a new match on `map`: a new world (scores reset), a new replay file, and a new
    /// welcome for everyone in the room. Players keep their connections and resume tokens.
    fn new_match(&mut self, map: Arc<MapDef>) {
        // Closing the file joins its writer thread (a final flush and fsync): off this thread.
        if let Some(recorder) = self.recorder.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn_blocking(move || recorder.finish())),
                Err(_) => recorder.finish(),
            }
        }
        self.last_new_match = Some(Instant::now());
        self.match_number += 1;
        self.world = new_world(&self.config, &map, self.match_number);
        self.scene = Scene::new();
        self.interest = InterestScene::new(&map);
        self.setup.map = map;
        self.leaderboard = Leaderboard::default();
        // Held seats belong to the old match's world: their players come back as new players.
        self.held.clear();
        self.departed.clear();
        if self.held_host.take().is_some() {
            self.pass_host_on();
        }
        self.ensure_recording();
        self.add_bots(self.setup.bots);
        let conns: Vec<ConnId> = self.clients.keys().copied().collect();
        for conn in &conns {
            let client = self.clients.get_mut(conn).expect("listed");
            let player = self.world.add_player(client.name.clone(), false);
            client.player = player;
            client.player_id = self.world.players[player].net_id;
            let (id, name) = (client.player_id, client.name.clone());
            self.record(Op::Join { id, name, bot: false });
        }
        let spectators: Vec<ConnId> = self.spectators.keys().copied().collect();
        for conn in conns.iter().chain(&spectators) {
            let welcome = protocol::encode(&self.welcome_for(*conn));
            let (outbox, kick) = match (self.clients.get_mut(conn), self.spectators.get_mut(conn)) {
                (Some(client), _) => {
                    client.baselines.reset();
                    // Events name the old match's players; notices are plain text and stay.
                    client.pending_events.retain(|e| matches!(e, GameEvent::Notice { .. }));
                    client.leaderboard_pending = true;
                    client.room_pending = false;
                    client.latency_probe = None;
                    (&client.outbox, &client.kick)
                }
                (None, Some(spectator)) => {
                    spectator.baselines.reset();
                    spectator.pending_events.retain(|e| matches!(e, GameEvent::Notice { .. }));
                    spectator.leaderboard_pending = true;
                    spectator.room_pending = false;
                    (&spectator.outbox, &spectator.kick)
                }
                (None, None) => continue,
            };
            // A client whose outbox is full now would apply the old match's snapshots to the new
            // one: it is too slow to follow a restart.
            if outbox.try_send(welcome).is_err() {
                kick.kick(DisconnectReason::TooSlow);
            }
        }
        self.world.events.clear();
        self.publish();
    }

    fn leave(&mut self, conn: ConnId, reason: DisconnectReason) {
        if self.spectators.remove(&conn).is_some() {
            info!(room = %self.setup.code, conn = conn.0, %reason, "spectator left");
            self.publish();
            return;
        }
        let Some(client) = self.clients.remove(&conn) else {
            return;
        };
        // Dropped without a goodbye: the seat is held for a resume.
        let lost = matches!(
            reason,
            DisconnectReason::ConnectionLost | DisconnectReason::IdleTimeout { .. } | DisconnectReason::TooSlow
        );
        // One address (a household, a NAT) holds at most a few seats at once, so reset-and-rejoin
        // cannot fill a room with ghosts; loopback (the server's own machine) is exempt.
        let address_holds = client.ip.filter(|ip| !ip.is_loopback()).map_or(0, |ip| {
            let key = crate::net::connection::address_key(ip);
            self.held
                .values()
                .filter(|s| s.ip.is_some_and(|other| crate::net::connection::address_key(other) == key))
                .count()
        });
        if lost
            && !self.config.resume_grace.is_zero()
            && !self.banned_tokens.contains(&client.resume_token)
            && address_holds < MAX_HELD_PER_ADDRESS
        {
            info!(room = %self.setup.code, conn = conn.0, player = %client.player_id, name = %client.name, %reason, grace_s = self.config.resume_grace.as_secs(), "connection lost; seat held");
            self.world.set_away(client.player, true);
            self.record(Op::Away { id: client.player_id });
            self.held.insert(
                client.resume_token,
                HeldSeat {
                    player: client.player,
                    player_id: client.player_id,
                    name: client.name.clone(),
                    client_id: client.client_id,
                    ip: client.ip,
                    since: Instant::now(),
                },
            );
            if self.host == Some(conn) {
                // The role waits for the player (no "is now the host" for a Wi-Fi blip).
                self.host = None;
                self.held_host = Some(client.resume_token);
            }
        } else {
            if reason.is_expected() {
                info!(room = %self.setup.code, conn = conn.0, player = %client.player_id, name = %client.name, %reason, "leave");
            } else {
                warn!(room = %self.setup.code, conn = conn.0, player = %client.player_id, name = %client.name, %reason, "leave");
            }
            if let Some(player) = self.remove_seat(client.player, client.player_id, reason)
                && !self.banned_tokens.contains(&client.resume_token)
                && !self.config.resume_grace.is_zero()
            {
                let (score, kills, deaths) = (player.score, player.kills, player.deaths);
                self.departed.insert(client.resume_token, Departed { score, kills, deaths, left_at: Instant::now() });
            }
        }
        if self.host == Some(conn) {
            self.pass_host_on();
        }
        self.publish();
    }

    /// The longest-present human (lowest connection id) still in the room becomes host, without
    /// the key: the key holder reloading the page takes the role back.
    fn pass_host_on(&mut self) {
        self.host = self.clients.iter().find(|(_, c)| !c.kick.is_kicked()).map(|(conn, _)| *conn);
        self.host_has_key = false;
        if let Some(name) = self.host.and_then(|host| self.clients.get(&host)).map(|c| c.name.clone()) {
            self.announce(format!("{name} is now the host"));
        }
        self.mark_room_changed();
    }

    /// Writes the room's lobby summary and counts where the registry and `/metrics` read them.
    fn publish(&self) {
        self.stats.players.store(self.world.players.len() as u32, Ordering::Relaxed);
        self.stats.clients.store((self.clients.len() + self.spectators.len()) as u32, Ordering::Relaxed);
        if let Some(public) = &self.public {
            let mut summary = public.summary.lock().expect("summary lock is never poisoned");
            summary.name.clone_from(&self.setup.name);
            summary.map.clone_from(&self.setup.map.id);
            summary.players = self.humans() as u16;
            summary.max_players = self.setup.max_players;
            summary.bots = self.setup.bots;
            summary.spectators = self.spectators.len() as u16;
            summary.locked = self.locked;
            summary.public = self.setup.public;
        }
    }

    /// Runs one tick of the world and hands its events to every client.
    pub fn step(&mut self) {
        self.expire_held_seats();
        self.world.step();
        let clamps = self.world.take_lag_comp_clamps();
        if clamps.future > 0 {
            self.stats.lag_comp_future.fetch_add(clamps.future, Ordering::Relaxed);
        }
        if clamps.too_old > 0 {
            self.stats.lag_comp_too_old.fetch_add(clamps.too_old, Ordering::Relaxed);
        }
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
        for spectator in self.spectators.values_mut() {
            spectator.pending_events.extend(self.world.events.iter().cloned());
            if spectator.pending_events.len() > MAX_PENDING_EVENTS {
                spectator.pending_events.clear();
                spectator.kick.kick(DisconnectReason::TooSlow);
            }
        }
        self.world.events.clear();
    }

    /// Sends the room's new description to every client that has not had it yet.
    fn send_room_updates(&mut self) {
        let conns: Vec<ConnId> = self
            .clients
            .iter()
            .filter(|(_, c)| c.room_pending)
            .map(|(c, _)| *c)
            .chain(self.spectators.iter().filter(|(_, s)| s.room_pending).map(|(c, _)| *c))
            .collect();
        for conn in conns {
            let message = protocol::encode(&ServerMsg::Room(Box::new(self.room_info_for(conn))));
            let sent = match (self.clients.get(&conn), self.spectators.get(&conn)) {
                (Some(client), _) => client.outbox.try_send(message).is_ok(),
                (None, Some(spectator)) => spectator.outbox.try_send(message).is_ok(),
                (None, None) => continue,
            };
            if sent {
                if let Some(client) = self.clients.get_mut(&conn) {
                    client.room_pending = false;
                } else if let Some(spectator) = self.spectators.get_mut(&conn) {
                    spectator.room_pending = false;
                }
            }
        }
    }

    /// Snapshots for spectators: the whole map, no own player.
    fn send_spectator_snapshots(&mut self, too_slow_after: u32) {
        if self.spectators.is_empty() {
            return;
        }
        let mut all = View { entities: Vec::with_capacity(self.scene.len()) };
        self.scene.view_all(&mut all);
        let all = Arc::new(all);
        let tick = self.world.tick;
        let center = glam::Vec2::new(self.world.map.width, self.world.map.height) / 2.0;
        for spectator in self.spectators.values_mut() {
            if spectator.kick.is_kicked() {
                continue;
            }
            let baseline = spectator.baselines.baseline();
            let base = baseline.map(|(_, view)| &**view);
            encode_delta(tick, base, &all, &mut self.writer);
            let limit = self.config.snapshot_budget_bytes.map(|b| b as usize);
            let encode = |delta: &[u8], events: usize, with_leaderboard: bool, budget_limited: bool| {
                let message = SnapshotMsgRef {
                    tick,
                    baseline: baseline.map(|(tick, _)| tick),
                    input_ack: 0,
                    input_queue: 0,
                    own: None,
                    delta,
                    events: &spectator.pending_events[..events],
                    leaderboard: with_leaderboard.then_some(&self.leaderboard),
                    budget_limited,
                };
                let mut bytes = Vec::with_capacity(delta.len() + 64);
                protocol::encode_snapshot_into(message, &mut bytes);
                bytes
            };
            let delta = self.writer.finish();
            let (mut event_count, mut with_leaderboard) =
                (spectator.pending_events.len(), spectator.leaderboard_pending);
            let mut bytes = encode(delta, event_count, with_leaderboard, false);
            let mut view = all.clone();
            // Spectators see the whole map: the budget matters most here.
            if let Some(limit) = limit {
                if bytes.len() > limit {
                    (event_count, with_leaderboard) = extras_within(
                        &spectator.pending_events,
                        spectator.leaderboard_pending,
                        &self.leaderboard,
                        limit,
                    );
                    bytes = encode(delta, event_count, with_leaderboard, false);
                }
                if bytes.len() > limit {
                    let overhead = bytes.len() - delta.len();
                    let focus = Focus { pos: center, own: NetId(0) };
                    let fitted = fit_to_budget(
                        &mut spectator.budget,
                        tick,
                        base,
                        spectator.baselines.newest().map(|view| &**view),
                        &all,
                        focus,
                        limit,
                        overhead,
                        &mut self.writer,
                        &self.stats,
                    );
                    bytes = encode(self.writer.finish(), event_count, with_leaderboard, true);
                    if bytes.len() > limit {
                        self.stats.snapshots_over_budget.fetch_add(1, Ordering::Relaxed);
                    }
                    view = Arc::new(fitted);
                } else {
                    spectator.budget.sent_everything();
                }
            }
            let size = bytes.len() as u64;
            if spectator.outbox.try_send(bytes).is_ok() {
                spectator.baselines.record(tick, view.clone());
                spectator.pending_events.drain(..event_count);
                spectator.leaderboard_pending &= !with_leaderboard;
                spectator.skipped = 0;
                self.stats.snapshots_sent.fetch_add(1, Ordering::Relaxed);
                self.stats.snapshot_bytes.fetch_add(size, Ordering::Relaxed);
            } else {
                spectator.skipped += 1;
                self.stats.snapshots_skipped.fetch_add(1, Ordering::Relaxed);
                if spectator.skipped > too_slow_after {
                    spectator.kick.kick(DisconnectReason::TooSlow);
                }
            }
        }
    }

    /// Builds and queues one snapshot for every client.
    ///
    /// Without interest management every client gets the same view: it is built once, shared
    /// (`Arc`) as everyone's baseline, and each distinct (baseline → view) delta is encoded once
    /// per round and reused for every client that acknowledged the same baseline.
    pub fn send_snapshots(&mut self) {
        self.send_room_updates();
        if let Some(leaderboard) = self.world.refresh_leaderboard() {
            self.leaderboard = leaderboard;
            for client in self.clients.values_mut() {
                client.leaderboard_pending = true;
            }
            for spectator in self.spectators.values_mut() {
                spectator.leaderboard_pending = true;
            }
        }
        let flash_ticks = self.config.ticks_per_snapshot();
        if !self.config.interest || !self.spectators.is_empty() {
            self.scene.rebuild(&self.world, flash_ticks);
        }
        if self.config.interest {
            self.interest.sync(&mut self.world, flash_ticks);
        }
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
        // Players whose queue depth went out: the next report covers the ticks after this one.
        let mut reported = Vec::with_capacity(self.clients.len());
        // Interest-managed clients go in order of where they stand (a Z-order curve over the
        // map), so neighbours, whose views share most cells, come one after the other while
        // those cells are still in the cache (about 9 % off a 1,000-player round).
        let mut order: Vec<(u32, &mut Client)> = self
            .clients
            .values_mut()
            .map(|client| {
                let key = match (self.config.interest, self.world.players.get(client.player)) {
                    (true, Some(player)) => z_order(player.pos),
                    _ => 0,
                };
                (key, client)
            })
            .collect();
        if self.config.interest {
            order.sort_unstable_by_key(|(key, _)| *key);
        }
        for (_, client) in order {
            if client.kick.is_kicked() {
                continue;
            }
            let Some(player) = self.world.players.get(client.player) else { continue };
            // S1 keeps only the latest input (no queue): report a depth in the pacer's band.
            let queue_low = if self.config.rules == Rules::S1 { 1 } else { player.queue_low };
            // The view to send (as it will be kept) and its delta from the client's baseline:
            // from this round's cache or `self.writer`.
            let (mut sent, baseline_tick, cached) = match &shared_view {
                Some(view) => {
                    let baseline = match client.baselines.baseline() {
                        Some((tick, Sent::View(view))) => Some((tick, view)),
                        _ => None,
                    };
                    // Each distinct baseline → view delta is encoded once per round.
                    let cache_key = baseline.map(|(tick, view)| (tick, Arc::as_ptr(view) as usize));
                    let index = match self.delta_cache.iter().position(|(key, _)| *key == cache_key) {
                        Some(index) => index,
                        None => {
                            encode_delta(tick, baseline.map(|(_, view)| &**view), view, &mut self.writer);
                            self.delta_cache.push((cache_key, self.writer.finish().to_vec()));
                            self.delta_cache.len() - 1
                        }
                    };
                    (Sent::View(view.clone()), baseline.map(|(tick, _)| tick), Some(index))
                }
                None => {
                    let cut = self.interest.cut(player.pos, VIEW_HALF_EXTENT);
                    let baseline_tick = encode_cut(
                        &self.interest,
                        client.baselines.baseline(),
                        &cut,
                        &mut self.entries,
                        &mut self.writer,
                    );
                    (Sent::Cut(Arc::new(cut)), baseline_tick, None)
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
            let limit = self.config.snapshot_budget_bytes.map(|b| b as usize);
            let encode = |delta: &[u8], events: usize, with_leaderboard: bool, budget_limited: bool| {
                let message = SnapshotMsgRef {
                    tick,
                    baseline: baseline_tick,
                    input_ack: player.last_applied_seq,
                    input_queue: queue_low.min(MAX_REPORTED_QUEUE),
                    own: Some(own),
                    delta,
                    events: &client.pending_events[..events],
                    leaderboard: with_leaderboard.then_some(&self.leaderboard),
                    budget_limited,
                };
                let mut bytes = Vec::with_capacity(delta.len() + 64);
                protocol::encode_snapshot_into(message, &mut bytes);
                bytes
            };
            let (mut event_count, mut with_leaderboard) = (client.pending_events.len(), client.leaderboard_pending);
            let mut bytes = encode(delta, event_count, with_leaderboard, false);
            if let Some(limit) = limit {
                if bytes.len() > limit {
                    // Over: events and the leaderboard get at most half (the rest wait), the
                    // entities what is left.
                    (event_count, with_leaderboard) =
                        extras_within(&client.pending_events, client.leaderboard_pending, &self.leaderboard, limit);
                    bytes = encode(delta, event_count, with_leaderboard, false);
                }
                if bytes.len() > limit {
                    let overhead = bytes.len() - delta.len();
                    let focus = Focus { pos: player.pos, own: player.net_id };
                    // The budget weighs whole views: the kept ones are rebuilt from their cuts.
                    let whole = |sent: &Sent| self.interest.whole(sent);
                    let baseline = baseline_tick.and_then(|_| client.baselines.baseline()).and_then(|(_, b)| whole(b));
                    // (When the newest is the baseline, the budget reads the baseline.)
                    let newest = match client.baselines.newest_tick() {
                        Some(newest) if Some(newest) == baseline_tick => None,
                        _ => client.baselines.newest().and_then(whole),
                    };
                    let view = whole(&sent).expect("a cut of this round is usable");
                    let fitted = fit_to_budget(
                        &mut client.budget,
                        tick,
                        baseline.as_deref(),
                        newest.as_deref(),
                        &view,
                        focus,
                        limit,
                        overhead,
                        &mut self.writer,
                        &self.stats,
                    );
                    bytes = encode(self.writer.finish(), event_count, with_leaderboard, true);
                    if bytes.len() > limit {
                        self.stats.snapshots_over_budget.fetch_add(1, Ordering::Relaxed);
                    }
                    sent = Sent::View(Arc::new(fitted));
                } else {
                    client.budget.sent_everything();
                }
            }
            let size = bytes.len() as u64;
            match client.outbox.try_send(bytes) {
                Ok(()) => {
                    reported.push(client.player);
                    client.baselines.record(tick, sent);
                    client.pending_events.drain(..event_count);
                    client.leaderboard_pending &= !with_leaderboard;
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
        for key in reported {
            if let Some(player) = self.world.players.get_mut(key) {
                player.queue_low = u8::MAX;
            }
        }
        self.send_spectator_snapshots(too_slow_after);
    }

    /// Hands the recording's last ticks to its writer (see [`Recorder::flush`]).
    pub fn flush_recording(&mut self) {
        if let Some(recorder) = self.recorder.as_mut() {
            recorder.flush();
        }
    }

    /// Flushes and closes the replay file, if recording.
    pub fn finish_recording(&mut self) {
        if let Some(recorder) = self.recorder.take() {
            recorder.finish();
        }
    }

    /// The room's counters.
    pub fn stats(&self) -> &RoomStats {
        &self.stats
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
        for spectator in self.spectators.values() {
            spectator.kick.kick(reason.clone());
        }
    }
}

/// How many of the pending `events` (in order) and whether the pending leaderboard go in a
/// snapshot limited to `limit` bytes: at most half of it, so entities always get the other half;
/// the rest wait for the next snapshot. At least one event goes, so no event blocks the queue.
fn extras_within(
    events: &[GameEvent],
    leaderboard_pending: bool,
    leaderboard: &Leaderboard,
    limit: usize,
) -> (usize, bool) {
    let mut room = limit / 2;
    let mut count = 0;
    for event in events {
        let size = protocol::encode(event).len();
        if size > room && count > 0 {
            break;
        }
        room = room.saturating_sub(size);
        count += 1;
    }
    let with_leaderboard = leaderboard_pending && count == events.len() && protocol::encode(leaderboard).len() <= room;
    (count, with_leaderboard)
}

/// Where `pos` falls on a Z-order (Morton) curve over 256-unit cells: nearby positions get
/// nearby keys.
fn z_order(pos: glam::Vec2) -> u32 {
    let spread = |v: f32| {
        let mut v = u32::from((v / 256.0).clamp(0.0, 65_535.0) as u16);
        v = (v | (v << 8)) & 0x00ff_00ff;
        v = (v | (v << 4)) & 0x0f0f_0f0f;
        v = (v | (v << 2)) & 0x3333_3333;
        (v | (v << 1)) & 0x5555_5555
    };
    spread(pos.x) | (spread(pos.y) << 1)
}

/// Interest-managed: encodes into `writer` the delta from the client's `baseline` to `current`
/// (a cut of this round) and returns the baseline's tick, or a full snapshot and `None` when the
/// baseline can no longer be read. A cut baseline takes the fast path ([`InterestScene::delta`]);
/// debug builds check its bytes against `encode_delta` of the whole views.
fn encode_cut(
    interest: &InterestScene,
    baseline: Option<(Tick, &Sent)>,
    current: &Cut,
    entries: &mut Vec<(NetId, Entry)>,
    writer: &mut BitWriter,
) -> Option<Tick> {
    let tick = interest.tick;
    let whole_current = || {
        let mut view = View::default();
        interest.materialize(current, &mut view);
        view
    };
    match baseline {
        Some((base_tick, Sent::Cut(base))) if interest.encode(base, current, entries, writer) => {
            #[cfg(debug_assertions)]
            {
                let mut base_view = View::default();
                assert!(interest.materialize(base, &mut base_view), "a usable cut materializes");
                let mut reference = BitWriter::new();
                encode_delta(tick, Some(&base_view), &whole_current(), &mut reference);
                assert_eq!(writer.finish(), reference.finish(), "fast delta differs from the reference at {tick}");
            }
            Some(base_tick)
        }
        Some((base_tick, Sent::View(base))) => {
            encode_delta(tick, Some(base), &whole_current(), writer);
            Some(base_tick)
        }
        _ => {
            encode_delta(tick, None, &whole_current(), writer);
            None
        }
    }
}

/// Fits one snapshot's view into `limit` bytes whose fixed part (everything but the delta) takes
/// `overhead`: returns the view the client will hold, with its delta encoded into `writer`.
#[allow(clippy::too_many_arguments)]
fn fit_to_budget(
    budget: &mut Budget,
    tick: Tick,
    baseline: Option<&View>,
    newest_sent: Option<&View>,
    view: &View,
    focus: Focus,
    limit: usize,
    overhead: usize,
    writer: &mut BitWriter,
    stats: &RoomStats,
) -> View {
    // Two bytes of slack: the delta's length prefix grows from one byte to three past 250.
    let bits = limit.saturating_sub(overhead + 2) * 8;
    let mut fitted = View { entities: Vec::with_capacity(view.len()) };
    let outcome = budget.fit(tick, baseline, newest_sent, view, focus, bits, &mut fitted);
    encode_delta(tick, baseline, &fitted, writer);
    stats.snapshots_budget_limited.fetch_add(1, Ordering::Relaxed);
    stats.budget_deferred_entities.fetch_add(u64::from(outcome.deferred), Ordering::Relaxed);
    fitted
}

fn new_world(config: &ServerConfig, map: &Arc<MapDef>, match_number: u32) -> World {
    let mut world = World::new(
        map.clone(),
        WorldConfig {
            tick_hz: config.tick_hz,
            seed: match_seed(config, match_number),
            rules: config.rules,
            lag_comp_ticks: lag_comp_ticks(config.lag_comp_ms, config.tick_hz),
        },
    );
    if config.interest {
        // The interest scene follows the orbs through the journal.
        world.journal_orbs();
    }
    world
}

/// Each match of a room has its own seed, derived from the server's.
fn match_seed(config: &ServerConfig, match_number: u32) -> u64 {
    config.seed.wrapping_add(u64::from(match_number).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Runs the room until `cancel` fires (then every client is asked to close with
/// [`DisconnectReason::ServerClosing`]) or, unless the room is permanent, until it has been empty
/// for `config.room_idle` (then joins still queued are refused with
/// [`DisconnectReason::RoomClosed`]).
pub async fn run(mut room: Room, mut inbox: mpsc::Receiver<SimInput>, cancel: CancellationToken) {
    let config = room.config.clone();
    let stats = room.stats.clone();
    let period = Duration::from_secs_f64(1.0 / f64::from(config.tick_hz));
    let ticks_per_snapshot = config.ticks_per_snapshot();
    // A hand-rolled deadline instead of `tokio::time::interval`: after a stall we run at most
    // MAX_CATCH_UP_TICKS ticks back to back and then drop the rest of the debt (and count it),
    // so a long pause never turns into a burst of hundreds of ticks (no spiral of death).
    let mut next_tick = Instant::now() + period;
    let mut pending = Vec::new();
    // Set when the room becomes empty; refused joins do not push it back.
    let mut empty_since: Option<Instant> = None;
    let drain = room.setup.drain.clone();
    // The sockets of this room's plain-TCP players, read and written here once per tick. Dropped
    // (however this function ends, a panic included), each says goodbye with its reason.
    let mut sockets = Sockets::default();
    loop {
        if room.is_empty() {
            // Draining: an empty room has finished its match.
            if drain.is_draining() {
                info!(room = %room.code(), "room closed: empty while the server drains");
                refuse_queued_joins(&mut inbox);
                room.finish_recording();
                return;
            }
            // Nobody here: no ticks at all (the world, bots included, is paused), just wait for
            // a join, the idle deadline, the drain or shutdown. An empty room costs no CPU.
            if empty_since.is_none() {
                // The last ticks recorded go to disk now, not when someone next joins.
                room.flush_recording();
            }
            let idle_deadline = *empty_since.get_or_insert_with(Instant::now) + config.room_idle;
            let permanent = room.is_permanent();
            let message = tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                _ = drain.started.cancelled() => continue,
                message = inbox.recv() => message,
                _ = tokio::time::sleep_until(idle_deadline), if !permanent => {
                    info!(room = %room.code(), idle_s = config.room_idle.as_secs(), "room closed after being empty");
                    refuse_queued_joins(&mut inbox);
                    room.close_all(DisconnectReason::RoomClosed);
                    room.finish_recording();
                    return;
                }
            };
            let Some(message) = message else { break };
            dispatch(&mut room, &mut sockets, message);
            // A connection ended while the room is empty (a seat taken over, its join undone)
            // is closed now, not when someone next joins.
            if !sockets.is_empty() {
                sockets.write(&mut room);
                stats.polled_sockets.store(sockets.len() as u32, Ordering::Relaxed);
            }
            if room.closed_by_operator {
                refuse_queued_joins(&mut inbox);
                room.finish_recording();
                return;
            }
            next_tick = Instant::now() + period;
            continue;
        }
        empty_since = None;
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
            dispatch(&mut room, &mut sockets, input);
        }
        let reading = Instant::now();
        sockets.read(&mut room);
        let mut io = reading.elapsed();
        if room.closed_by_operator {
            refuse_queued_joins(&mut inbox);
            room.finish_recording();
            return;
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
            warn!(room = %room.code(), ticks_dropped = behind, tick = %room.world.tick, "tick loop fell behind; dropping time");
            next_tick = started + period;
        }
        if snapshot_due {
            room.send_snapshots();
        }
        let writing = Instant::now();
        sockets.write(&mut room);
        io += writing.elapsed();
        stats.polled_sockets.store(sockets.len() as u32, Ordering::Relaxed);
        let took = started.elapsed().saturating_sub(io);
        stats.last_tick_us.store(took.as_micros() as u64, Ordering::Relaxed);
        stats.last_tick_unix_ms.store(unix_ms(), Ordering::Relaxed);
        if room.drain_step() {
            info!(room = %room.code(), "room closed: empty while the server drains");
            refuse_queued_joins(&mut inbox);
            room.finish_recording();
            return;
        }
        if ran > 0 {
            stats.tick_time.record(took);
        }
        if !sockets.is_empty() {
            stats.socket_io_time.record(io);
        }
    }
    room.close_all(DisconnectReason::ServerClosing);
    drop(sockets);
    stats.polled_sockets.store(0, Ordering::Relaxed);
    room.finish_recording();
    info!(room = %room.code(), tick = %room.world.tick, "room stopped");
}

/// Hands a socket to the poller and everything else to the room.
fn dispatch(room: &mut Room, sockets: &mut Sockets, input: SimInput) {
    match input {
        SimInput::Attach(attached) => sockets.attach(*attached),
        other => room.handle(other),
    }
}

/// Rooms with players whose tick loop has not run for `limit` (their codes): `/livez` and the
/// systemd watchdog fail on any.
pub fn stuck_rooms(rooms: &super::registry::Registry, limit: Duration) -> Vec<String> {
    let now = unix_ms();
    rooms
        .handles()
        .iter()
        .filter(|h| h.public.stats.clients.load(Ordering::Relaxed) > 0)
        .filter(|h| {
            let last = h.public.stats.last_tick_unix_ms.load(Ordering::Relaxed);
            last != 0 && now.saturating_sub(last) > limit.as_millis() as u64
        })
        .map(|h| h.public.code.to_string())
        .collect()
}

/// Runs a room that is built only when its first message (a join) arrives: until then an unused
/// room is just its handle and its summary (no world, no scene), so a thousand rooms created and
/// never joined cost almost no memory. Closes unused after `idle`, like an empty room.
pub async fn run_when_used(
    make: impl FnOnce() -> Room,
    public: Arc<RoomPublic>,
    idle: Duration,
    mut inbox: mpsc::Receiver<SimInput>,
    cancel: CancellationToken,
    drain: Arc<super::Drain>,
) {
    use crate::admin::ops::{AdminAnswer, AdminOp};
    let code = public.code;
    let idle_deadline = Instant::now() + idle;
    let first = loop {
        let message = tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            _ = drain.started.cancelled() => {
                refuse_queued_joins(&mut inbox);
                return;
            }
            message = inbox.recv() => message,
            _ = tokio::time::sleep_until(idle_deadline) => {
                info!(room = %code, idle_s = idle.as_secs(), "room closed: nobody joined");
                refuse_queued_joins(&mut inbox);
                return;
            }
        };
        // The operator looking at (or closing) a room nobody joined does not build it.
        match message {
            Some(SimInput::Admin { op: AdminOp::Inspect, reply }) => {
                let _ = reply.send(Ok(AdminAnswer::Detail(Box::new(unused_detail(&public)))));
            }
            Some(SimInput::Admin { op: AdminOp::Close { .. }, reply }) => {
                info!(room = %code, "room closed by the operator before anyone joined");
                let _ = reply.send(Ok(AdminAnswer::Done { done: format!("closed room {code}") }));
                refuse_queued_joins(&mut inbox);
                return;
            }
            Some(SimInput::Admin { op: AdminOp::KickAddress { .. } | AdminOp::Notice { .. }, reply }) => {
                let _ = reply.send(Ok(AdminAnswer::Done { done: "closed 0 connection(s)".to_string() }));
            }
            Some(SimInput::Admin { op: AdminOp::Kick { player, .. }, reply }) => {
                let _ = reply.send(Err(format!("no player {} in room {code}", player.0)));
            }
            Some(other) => break other,
            None => return,
        }
    };
    let mut room = make();
    room.handle(first);
    if room.closed_by_operator {
        refuse_queued_joins(&mut inbox);
        return;
    }
    // Boxed, so the waiting state above stays small (the running room's future is large).
    Box::pin(run(room, inbox, cancel)).await;
}

/// What the operator sees of a room nobody has joined yet (from its published summary).
fn unused_detail(public: &RoomPublic) -> crate::admin::ops::RoomDetail {
    let summary = public.summary();
    crate::admin::ops::RoomDetail {
        code: public.code.to_string(),
        name: summary.name,
        map: summary.map,
        public: summary.public,
        locked: summary.locked,
        permanent: public.permanent,
        replay: false,
        tick: 0,
        tick_p99_ms: 0.0,
        bots: summary.bots,
        max_players: summary.max_players,
        players: Vec::new(),
        spectators: Vec::new(),
    }
}

/// Closes the inbox and answers every join still queued in it with "room closed", so a join
/// racing the room's close never hangs and never lands in a dead room.
fn refuse_queued_joins(inbox: &mut mpsc::Receiver<SimInput>) {
    inbox.close();
    while let Ok(message) = inbox.try_recv() {
        if let SimInput::Join { reply, .. } = message {
            let _ = reply.send(Err(DisconnectReason::RoomClosed));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Joins `conn` as a player; returns the welcome or the refusal.
    fn join(
        room: &mut Room,
        conn: u64,
        key: Option<HostKey>,
        client_id: u64,
        ip: &str,
    ) -> Result<Welcome, DisconnectReason> {
        let (outbox, _outbox_rx) = mpsc::channel(64);
        let (reply, mut reply_rx) = oneshot::channel();
        room.handle(SimInput::Join {
            conn: ConnId(conn),
            name: format!("p{conn}"),
            resume: None,
            outbox,
            kick: Kick::new(),
            reply,
            spectator: false,
            host_key: key,
            client_id,
            ip: Some(ip.parse().unwrap()),
        });
        match reply_rx.try_recv().expect("answered at once") {
            Ok(bytes) => match protocol::decode_server(&bytes).unwrap() {
                ServerMsg::Welcome(welcome) => Ok(*welcome),
                other => panic!("{other:?}"),
            },
            Err(reason) => Err(reason),
        }
    }

    #[test]
    fn one_address_holds_at_most_a_few_seats_and_loopback_is_exempt() {
        let config = Arc::new(ServerConfig { max_players: 32, ..ServerConfig::default() });
        let setup = RoomSetup::from_config(&config, RoomCode::from_indices([1, 2, 3, 4]));
        let mut room = Room::with_setup(config, setup, Arc::new(RoomStats::default()), None);
        for conn in 1..=6 {
            join(&mut room, conn, None, conn, "198.51.100.7").unwrap();
            room.handle(SimInput::Leave { conn: ConnId(conn), reason: DisconnectReason::ConnectionLost });
        }
        assert_eq!(room.held.len(), MAX_HELD_PER_ADDRESS, "the rest left at once");
        assert_eq!(room.world.players.len(), MAX_HELD_PER_ADDRESS);
        // Same /64 for IPv6.
        for conn in 10..=15 {
            join(&mut room, conn, None, conn, &format!("2001:db8::{conn}")).unwrap();
            room.handle(SimInput::Leave { conn: ConnId(conn), reason: DisconnectReason::ConnectionLost });
        }
        assert_eq!(room.held.len(), 2 * MAX_HELD_PER_ADDRESS);
        for conn in 20..=25 {
            join(&mut room, conn, None, conn, "127.0.0.1").unwrap();
            room.handle(SimInput::Leave { conn: ConnId(conn), reason: DisconnectReason::ConnectionLost });
        }
        assert_eq!(room.held.len(), 2 * MAX_HELD_PER_ADDRESS + 6, "loopback is exempt");
    }

    #[test]
    fn the_host_role_waits_for_a_held_host_and_passes_on_when_the_seat_expires() {
        let config = Arc::new(ServerConfig { resume_grace: Duration::from_millis(200), ..ServerConfig::default() });
        let mut setup = RoomSetup::from_config(&config, RoomCode::from_indices([1, 2, 3, 4]));
        setup.host_key = [9; 16];
        let mut room = Room::with_setup(config, setup, Arc::new(RoomStats::default()), None);
        let host = join(&mut room, 1, Some([9; 16]), 1, "127.0.0.1").unwrap();
        join(&mut room, 2, None, 2, "127.0.0.1").unwrap();
        room.handle(SimInput::Leave { conn: ConnId(1), reason: DisconnectReason::ConnectionLost });
        assert_eq!(room.host, None, "nobody else is made host for a drop");
        assert_eq!(room.held_host, Some(host.resume_token));
        // The resume (no key needed) takes the role back.
        let (outbox, _rx) = mpsc::channel(64);
        let (reply, mut reply_rx) = oneshot::channel();
        room.handle(SimInput::Join {
            conn: ConnId(3),
            name: "back".into(),
            resume: Some(host.resume_token),
            outbox,
            kick: Kick::new(),
            reply,
            spectator: false,
            host_key: None,
            client_id: 1,
            ip: Some("127.0.0.1".parse().unwrap()),
        });
        let Ok(bytes) = reply_rx.try_recv().unwrap() else { panic!("resume refused") };
        let ServerMsg::Welcome(welcome) = protocol::decode_server(&bytes).unwrap() else { panic!("a welcome") };
        assert_eq!(welcome.player_id, host.player_id);
        assert!(welcome.room.you_are_host, "the role waited");
        assert_eq!(room.host, Some(ConnId(3)));
        // Dropped again and gone for good: the role passes on when the seat expires.
        room.handle(SimInput::Leave { conn: ConnId(3), reason: DisconnectReason::ConnectionLost });
        std::thread::sleep(Duration::from_millis(250));
        room.step();
        assert_eq!(room.host, Some(ConnId(2)));
        assert!(room.held.is_empty() && room.held_host.is_none());
    }

    #[test]
    fn a_kick_bans_the_browser_and_its_address_but_never_loopback() {
        let config = Arc::new(ServerConfig::default());
        let mut setup = RoomSetup::from_config(&config, RoomCode::from_indices([1, 2, 3, 4]));
        setup.host_key = [9; 16];
        let mut room = Room::with_setup(config, setup, Arc::new(RoomStats::default()), None);
        let host = join(&mut room, 1, Some([9; 16]), 1, "127.0.0.1").unwrap();
        assert!(host.room.you_are_host);
        let lan = join(&mut room, 2, None, 2, "192.168.1.20").unwrap();
        let local = join(&mut room, 3, None, 3, "127.0.0.1").unwrap();
        room.handle(SimInput::Host { conn: ConnId(1), cmd: HostCmd::Kick { player: lan.player_id } });
        room.handle(SimInput::Leave { conn: ConnId(2), reason: DisconnectReason::Kicked });
        // A new browser id from the same LAN address is still the kicked player.
        assert_eq!(join(&mut room, 4, None, 44, "192.168.1.20").err(), Some(DisconnectReason::Kicked));
        assert!(join(&mut room, 5, None, 55, "192.168.1.21").is_ok());
        room.handle(SimInput::Host { conn: ConnId(1), cmd: HostCmd::Kick { player: local.player_id } });
        room.handle(SimInput::Leave { conn: ConnId(3), reason: DisconnectReason::Kicked });
        // Loopback is everyone on the server's machine: only the browser id is banned there.
        assert_eq!(join(&mut room, 6, None, 3, "127.0.0.1").err(), Some(DisconnectReason::Kicked));
        assert!(join(&mut room, 7, None, 77, "127.0.0.1").is_ok());
    }
}
