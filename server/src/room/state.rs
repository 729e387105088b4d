//! The room's state and its tick: who is in it (players, spectators, held seats), its world and
//! scenes, and the one entry point for what connections send ([`Room::handle`]). The other jobs
//! are `impl Room` blocks of their own files: seats, host commands, operator operations,
//! recording and sending.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use shared::bits::BitWriter;
use shared::map::MapDef;
use shared::protocol::{DisconnectReason, GameEvent, Leaderboard};
use shared::room::{HostKey, RoomCode};
use shared::snapshot::NetId;
use shared::tick::Tick;
use tokio::time::Instant;
use tracing::info;

use super::input::SimInput;
use super::public::{Drain, RoomPublic, random_host_key};
use crate::config::ServerConfig;
use crate::maps::MapCatalog;
use crate::net::kick::{ConnId, Kick, Outbox};
use crate::replay::{Op, Recorder};
use crate::sim::world::{PlayerKey, World, WorldConfig, lag_comp_ticks};
use crate::snapshot::budget::Budget;
use crate::snapshot::interest::{Entry, InterestScene, Sent};
use crate::snapshot::{Baselines, Scene};
use crate::stats::RoomStats;

/// A baseline in the shared-view delta cache: its tick and the address of its view.
pub(super) type BaselineKey = (Tick, usize);

/// One player's connection as the room sees it.
pub(super) struct Client {
    pub(super) player: PlayerKey,
    pub(super) player_id: NetId,
    pub(super) name: String,
    pub(super) client_id: u64,
    pub(super) ip: Option<std::net::IpAddr>,
    pub(super) outbox: Outbox,
    pub(super) kick: Kick,
    pub(super) baselines: Baselines<Sent>,
    /// Priorities of the changes the byte budget deferred.
    pub(super) budget: Budget,
    /// Events not yet delivered (kept across skipped snapshots).
    pub(super) pending_events: Vec<GameEvent>,
    pub(super) leaderboard_pending: bool,
    /// The room's description changed and this client has not been sent it yet.
    pub(super) room_pending: bool,
    /// Consecutive snapshots skipped because the outbox was full.
    pub(super) skipped: u32,
    pub(super) resume_token: u64,
    /// When the last message from this connection arrived: a resume may take over a seat whose
    /// connection has been silent for [`TAKEOVER_SILENCE`] (a half-open socket the server has
    /// not noticed yet), never a live one.
    pub(super) last_heard: Instant,
    /// One input being timed until a snapshot acknowledges it: (sequence, arrival).
    pub(super) latency_probe: Option<(u32, Instant)>,
}

/// A spectator of a live room: sees the whole map, has no player, sends no inputs.
pub(super) struct Spectator {
    pub(super) outbox: Outbox,
    pub(super) kick: Kick,
    pub(super) ip: Option<std::net::IpAddr>,
    pub(super) baselines: Baselines,
    pub(super) budget: Budget,
    pub(super) pending_events: Vec<GameEvent>,
    pub(super) leaderboard_pending: bool,
    pub(super) room_pending: bool,
    pub(super) skipped: u32,
}

/// A player whose connection dropped without a goodbye: the entity stays in the world (standing
/// still, not firing, marked [`shared::snapshot::FLAG_AWAY`]) until a connection with its resume
/// token takes it back or `config.resume_grace` ends.
pub(super) struct HeldSeat {
    pub(super) player: PlayerKey,
    pub(super) player_id: NetId,
    pub(super) name: String,
    pub(super) client_id: u64,
    pub(super) ip: Option<std::net::IpAddr>,
    pub(super) since: Instant,
}

/// Score and counters of a player who left with a goodbye (a closed tab, a reload), kept for the
/// grace period: coming back with the token makes a new entity with the same score.
pub(super) struct Departed {
    /// Its entity's id then (its line among the round's leavers until it comes back).
    pub(super) id: NetId,
    pub(super) score: u16,
    pub(super) kills: u16,
    pub(super) deaths: u16,
    pub(super) left_at: Instant,
}

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
    pub drain: Arc<Drain>,
    /// How its rounds end.
    pub rounds: shared::room::RoundRules,
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
            host_key: random_host_key(),
            maps: Arc::new(MapCatalog::with_default(config.map.clone())),
            drain: Arc::default(),
            rounds: config.rounds,
        }
    }
}

/// The room's rounds: the rules, the running round, and the results between rounds.
#[derive(Debug)]
pub struct Rounds {
    pub rules: shared::room::RoundRules,
    /// The running round's number (1 is the room's first).
    pub number: u32,
    /// The running round's id (128 random bits, hex).
    pub id: String,
    /// Humans who left the running round, in the order they left.
    pub(super) leavers: Vec<shared::protocol::Placement>,
    /// Seconds each leaver had played.
    pub(super) played: HashMap<NetId, u32>,
    /// The results, waiting for the writer to have them on disk (since when).
    pub(super) saving: Option<(Box<shared::protocol::RoundOver>, crate::store::writer::Saved, Instant)>,
    /// The running round's replay file name.
    pub(super) replay: Option<String>,
    /// Where the writer leaves the ended round's rating changes.
    pub(super) rating: Option<crate::store::record::Rated>,
    /// Between rounds: when the next starts, and the results everyone was sent.
    pub(super) over: Option<(Instant, Box<shared::protocol::RoundOver>)>,
}

impl Rounds {
    pub fn new(rules: shared::room::RoundRules) -> Rounds {
        Rounds {
            rules,
            number: 1,
            id: round_id(),
            leavers: Vec::new(),
            played: HashMap::new(),
            saving: None,
            rating: None,
            replay: None,
            over: None,
        }
    }

    /// Whether the round is over and the room waits for the next one.
    pub fn is_over(&self) -> bool {
        self.over.is_some() || self.saving.is_some()
    }
}

/// A fresh round id: 128 random bits as hex, unique across servers and restarts.
pub fn round_id() -> String {
    let bits: u128 = rand::random();
    format!("{bits:032x}")
}

/// The state the room task owns.
pub struct Room {
    pub(super) config: Arc<ServerConfig>,
    pub(super) setup: RoomSetup,
    pub world: World,
    pub(super) clients: BTreeMap<ConnId, Client>,
    pub(super) spectators: BTreeMap<ConnId, Spectator>,
    /// Seats held for dropped players, by resume token.
    pub(super) held: HashMap<u64, HeldSeat>,
    /// The host's seat, while it is held: the role waits for them (and passes on if the seat
    /// expires).
    pub(super) held_host: Option<u64>,
    pub(super) departed: HashMap<u64, Departed>,
    pub(super) scene: Scene,
    pub(super) leaderboard: Leaderboard,
    pub(super) stats: Arc<RoomStats>,
    pub(super) public: Option<Arc<RoomPublic>>,
    /// The room's secret for resume-token tags (HMAC-SHA-256, 256 random bits).
    pub(super) token_key: [u8; 32],
    pub(super) locked: bool,
    /// The host's connection, while a human holds the role.
    pub(super) host: Option<ConnId>,
    /// Whether the host holds the key (joined with it, or was handed the role). A player who
    /// became host only because the host left plays host without the key, so the creator
    /// coming back with it takes the role back, and nobody else ever learns it.
    pub(super) host_has_key: bool,
    /// The last host who lost the role without acting, and when: a control they click before
    /// the news reaches them gets a notice, not a disconnect.
    pub(super) former_host: Option<(ConnId, Instant)>,
    /// When the last new match started (restarts and map changes are limited to one per
    /// [`NEW_MATCH_COOLDOWN`]: each closes one replay file and opens another).
    pub(super) last_new_match: Option<Instant>,
    /// When the host last changed the bots (one change per [`super::host::BOT_CHANGE_COOLDOWN`]).
    pub(super) last_bot_change: Option<Instant>,
    /// Browsers (client ids), resume tokens and addresses the host kicked: refused for the
    /// room's life.
    pub(super) banned_clients: HashSet<u64>,
    pub(super) banned_tokens: HashSet<u64>,
    /// Kicked addresses, as limits count them (an IPv6 /64, [`crate::rate::address_key`]).
    pub(super) banned_ips: HashSet<std::net::IpAddr>,
    /// Matches played (restarts and map changes start a new one).
    pub(super) match_number: u32,
    /// The room's rounds: rules, the running round, the results between rounds.
    pub rounds: Rounds,
    /// Players' public ids by entity (leavers' too, until the round ends).
    pub(super) identities: HashMap<NetId, String>,
    /// What interest-managed players see (`config.interest`).
    pub(super) interest: InterestScene,
    // Buffers reused for every client's snapshot.
    pub(super) writer: BitWriter,
    pub(super) entries: Vec<(NetId, Entry)>,
    /// This round's encoded deltas by baseline tick (shared-view mode only).
    /// Shared-view mode: deltas encoded this round, by baseline (its tick and the view's
    /// address: with a byte budget two clients' baselines of one tick can differ).
    pub(super) delta_cache: Vec<(Option<BaselineKey>, Vec<u8>)>,
    /// Records the match, when replays are on; started when the first player joins.
    pub(super) recorder: Option<Recorder>,
    /// Seconds left at the last drain notice (None: not announced yet).
    pub(super) drain_announced: Option<u64>,
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
        let rounds = Rounds::new(setup.rounds);
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
            last_bot_change: None,
            banned_clients: HashSet::new(),
            banned_tokens: HashSet::new(),
            banned_ips: HashSet::new(),
            match_number: 0,
            rounds,
            identities: HashMap::new(),
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
    pub(super) fn humans(&self) -> usize {
        self.clients.len() + self.held.len()
    }

    /// Applies one message from a connection.
    pub fn handle(&mut self, input: SimInput) {
        match input {
            SimInput::Join {
                conn,
                name,
                resume,
                outbox,
                kick,
                reply,
                spectator,
                host_key,
                client_id,
                ip,
                seat_only,
                player,
            } => {
                let result = if self.is_banned(client_id, resume, ip) {
                    Err(DisconnectReason::Kicked)
                } else if spectator {
                    self.join_spectator(conn, outbox, kick, ip)
                } else if seat_only && !self.has_seat_for(resume) && resume.is_none_or(|token| self.is_own_token(token))
                {
                    Err(DisconnectReason::TokenInvalid {
                        why: "it was used already and this player has no seat here to resume".to_string(),
                    })
                } else {
                    self.join(conn, name, resume, outbox, kick, host_key, (client_id, ip, player))
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
                let answer = self.operate(op);
                let _ = reply.send(answer);
            }
            SimInput::Crash => panic!("room {} was asked to crash (panic containment test)", self.setup.code),
            // Only `run` polls sockets; one handed to a room driven some other way (tests,
            // benchmarks) is closed with "room closed" as it drops.
            SimInput::Attach(attached) => drop(attached),
        }
    }

    /// Writes the room's lobby summary and counts where the registry and `/metrics` read them.
    pub(super) fn publish(&self) {
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
        self.check_round();
        self.distribute_events();
    }

    /// The room's counters.
    pub fn stats(&self) -> &RoomStats {
        &self.stats
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

pub(super) fn new_world(config: &ServerConfig, map: &Arc<MapDef>, match_number: u32) -> World {
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
pub(super) fn match_seed(config: &ServerConfig, match_number: u32) -> u64 {
    config.seed.wrapping_add(u64::from(match_number).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}
