//! The room registry: creates rooms, maps codes to handles, lists the public ones and removes
//! rooms when their task ends (idle close, shutdown or a panic). A connection asks it once, at
//! hello, which room to join, and from then on talks only to that room. It is never on a tick's
//! path: rooms write their summaries into their own [`RoomPublic`] and never wait on it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shared::protocol::DisconnectReason;
use shared::room::{HostKey, MAX_ROOM_BOTS, RoomCode, RoomRequest, RoomSettings, RoomSummary, sanitize_room_name};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info};

use super::input::{INBOX_CAPACITY, SimInput};
use super::public::{Drain, RoomPublic, random_code, random_host_key};
use super::seats::MAX_SPECTATORS;
use super::state::{Room, RoomSetup};
use super::task;
use crate::config::ServerConfig;
use crate::maps::MapCatalog;
use crate::rate::TokenBucket;
use crate::stats::{RoomStats, unix_ms};

/// How a connection reaches a room: its inbox and what it publishes.
#[derive(Clone, Debug)]
pub struct RoomHandle {
    pub inbox: mpsc::Sender<SimInput>,
    pub public: Arc<RoomPublic>,
}

/// Why a room could not be created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateError {
    /// This address created rooms too fast.
    RateLimited,
    /// The server hosts `max` rooms already.
    TooManyRooms { max: u16 },
    /// A setting is out of range or names no map.
    BadSettings(String),
    /// The server is shutting down.
    ShuttingDown,
}

impl CreateError {
    pub fn reason(&self) -> DisconnectReason {
        match self {
            CreateError::RateLimited => DisconnectReason::CreateRateLimited,
            CreateError::TooManyRooms { max } => DisconnectReason::TooManyRooms { max: *max },
            CreateError::BadSettings(_) => DisconnectReason::Malformed,
            CreateError::ShuttingDown => DisconnectReason::ServerClosing,
        }
    }
}

impl std::fmt::Display for CreateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CreateError::BadSettings(why) => write!(f, "{why}"),
            other => write!(f, "{}", other.reason()),
        }
    }
}

/// Where a connection's hello leads.
pub struct Destination {
    pub room: RoomHandle,
    pub spectator: bool,
    /// The host key of a room this very hello created (the creator is its host).
    pub created_key: Option<HostKey>,
}

/// The server's rooms.
pub struct Registry {
    config: Arc<ServerConfig>,
    pub maps: Arc<MapCatalog>,
    rooms: Mutex<HashMap<RoomCode, RoomHandle>>,
    creates: Mutex<HashMap<IpAddr, TokenBucket>>,
    /// Fires at shutdown: every room closes its clients with "server is shutting down".
    stop: CancellationToken,
    /// Room tasks, so shutdown can wait for them.
    tracker: TaskTracker,
    /// The stats of "Main" (for the callers of `run_with_stats`).
    main_stats: Arc<RoomStats>,
    main_code: Mutex<Option<RoomCode>>,
    /// The server's drain: set on the first SIGTERM, read by every room.
    pub drain: Arc<Drain>,
    /// Codes a fleet lobby reserved for this server's next rooms (unique across the fleet);
    /// empty outside a fleet, or while no lobby answers (then codes are random, unique here).
    reserved_codes: Mutex<Vec<RoomCode>>,
}

/// Codes a fleet lobby may reserve for this server's next rooms at once.
pub const RESERVED_CODES: usize = 4;

/// Addresses remembered for the create limit before idle ones are forgotten.
const MAX_TRACKED_CREATORS: usize = 4096;

impl Registry {
    /// Rooms with players whose tick loop has not run for `limit` (their codes): `/livez` and the
    /// systemd watchdog fail on any.
    pub fn stuck_rooms(&self, limit: Duration) -> Vec<String> {
        let now = unix_ms();
        self.handles()
            .iter()
            .filter(|h| h.public.stats.clients.load(Ordering::Relaxed) > 0)
            .filter(|h| {
                let last = h.public.stats.last_tick_unix_ms.load(Ordering::Relaxed);
                last != 0 && now.saturating_sub(last) > limit.as_millis() as u64
            })
            .map(|h| h.public.code.to_string())
            .collect()
    }

    pub fn new(config: Arc<ServerConfig>, main_stats: Arc<RoomStats>) -> Arc<Registry> {
        Arc::new(Registry {
            maps: Arc::new(MapCatalog::with_default(config.map.clone())),
            config,
            rooms: Mutex::new(HashMap::new()),
            creates: Mutex::new(HashMap::new()),
            stop: CancellationToken::new(),
            tracker: TaskTracker::new(),
            main_stats,
            main_code: Mutex::new(None),
            drain: Arc::default(),
            reserved_codes: Mutex::default(),
        })
    }

    pub fn config(&self) -> &Arc<ServerConfig> {
        &self.config
    }

    /// Opens "Main": public, permanent, the configured map and bots.
    pub fn open_main(self: &Arc<Self>) -> RoomHandle {
        let settings = RoomSettings {
            name: Some("Main".to_string()),
            public: Some(true),
            map: Some(self.config.map.id.clone()),
            bots: Some(self.config.bots),
            max_players: Some(self.config.max_players),
            rounds: Some(self.config.rounds),
        };
        let (handle, _) = self.spawn_room(settings, true, Some(self.main_stats.clone())).expect("Main always fits");
        *self.main_code.lock().expect("not poisoned") = Some(handle.public.code);
        handle
    }

    /// Registers a room whose task the caller runs (the replay theater): it gets a code and is
    /// listed as public and permanent.
    pub fn register_external(self: &Arc<Self>, name: &str, map: &str) -> (RoomHandle, mpsc::Receiver<SimInput>) {
        let (inbox, receiver) = mpsc::channel(INBOX_CAPACITY);
        let mut rooms = self.rooms.lock().expect("not poisoned");
        let code = self.unused_code(&rooms);
        let public = Arc::new(RoomPublic {
            code,
            permanent: true,
            owns_sockets: false,
            stats: self.main_stats.clone(),
            summary: Mutex::new(RoomSummary {
                code,
                name: name.to_string(),
                map: map.to_string(),
                players: 0,
                max_players: MAX_SPECTATORS,
                bots: 0,
                spectators: 0,
                locked: false,
                public: true,
                created_unix_ms: unix_ms(),
            }),
        });
        let handle = RoomHandle { inbox, public };
        rooms.insert(code, handle.clone());
        *self.main_code.lock().expect("not poisoned") = Some(code);
        (handle, receiver)
    }

    /// Creates a room for `creator` (rate-limited per address) and returns it with its host key.
    pub fn create(
        self: &Arc<Self>,
        settings: RoomSettings,
        creator: Option<IpAddr>,
    ) -> Result<(RoomHandle, HostKey), CreateError> {
        if self.stop.is_cancelled() || self.drain.is_draining() {
            return Err(CreateError::ShuttingDown);
        }
        self.validate(&settings)?;
        if self.room_count() >= usize::from(self.config.max_rooms) {
            return Err(CreateError::TooManyRooms { max: self.config.max_rooms });
        }
        if let Some(ip) = creator
            && !self.take_create_token(ip)
        {
            return Err(CreateError::RateLimited);
        }
        self.spawn_room(settings, false, None)
    }

    fn validate(&self, settings: &RoomSettings) -> Result<(), CreateError> {
        check_settings(settings, &self.maps, self.config.max_players)
    }

    /// Takes one create from `ip`'s allowance, counted per address like every other limit (an
    /// IPv6 host by its /64: one host has the whole /64 to rotate through).
    fn take_create_token(&self, ip: IpAddr) -> bool {
        let ip = crate::rate::address_key(ip);
        let per_minute = f64::from(self.config.room_creates_per_minute);
        let mut creates = self.creates.lock().expect("not poisoned");
        if creates.len() >= MAX_TRACKED_CREATORS && !creates.contains_key(&ip) {
            // Forget addresses whose bucket has refilled (they are back to a full burst anyway);
            // if that frees nothing, refuse rather than grow without bound.
            creates.retain(|_, bucket| !bucket.is_full());
            if creates.len() >= MAX_TRACKED_CREATORS {
                return false;
            }
        }
        creates.entry(ip).or_insert_with(|| TokenBucket::new(per_minute / 60.0, per_minute)).try_take()
    }

    /// Registers and starts a room. The room is findable by its code before this returns.
    fn spawn_room(
        self: &Arc<Self>,
        settings: RoomSettings,
        permanent: bool,
        stats: Option<Arc<RoomStats>>,
    ) -> Result<(RoomHandle, HostKey), CreateError> {
        let mut rooms = self.rooms.lock().expect("not poisoned");
        if rooms.len() >= usize::from(self.config.max_rooms) {
            return Err(CreateError::TooManyRooms { max: self.config.max_rooms });
        }
        let code = self.unused_code(&rooms);
        let map = settings.map.as_deref().and_then(|id| self.maps.get(id)).unwrap_or_else(|| self.maps.default_map());
        let host_key = random_host_key();
        let setup = RoomSetup {
            code,
            name: sanitize_room_name(settings.name.as_deref().unwrap_or(""), &format!("Room {code}")),
            public: settings.public.unwrap_or(true),
            map,
            // Main's bots are the server host's choice (`--bots`); other rooms' are capped.
            bots: if permanent { settings.bots.unwrap_or(0) } else { settings.bots.unwrap_or(0).min(MAX_ROOM_BOTS) },
            max_players: settings.max_players.unwrap_or(self.config.max_players).clamp(1, self.config.max_players),
            permanent,
            host_key,
            maps: self.maps.clone(),
            drain: self.drain.clone(),
            rounds: settings.rounds.unwrap_or(self.config.rounds),
        };
        let stats = stats.unwrap_or_default();
        let public = Arc::new(RoomPublic {
            code,
            permanent,
            owns_sockets: true,
            stats: stats.clone(),
            summary: std::sync::Mutex::new(RoomSummary {
                code,
                name: setup.name.clone(),
                map: setup.map.id.clone(),
                players: 0,
                max_players: setup.max_players,
                bots: setup.bots,
                spectators: 0,
                locked: false,
                public: setup.public,
                created_unix_ms: unix_ms(),
            }),
        });
        let (inbox, receiver) = mpsc::channel(INBOX_CAPACITY);
        let handle = RoomHandle { inbox, public: public.clone() };
        rooms.insert(code, handle.clone());
        drop(rooms);
        info!(room = %code, name = %setup.name, map = %setup.map.id, public = setup.public, bots = setup.bots, "room created");
        let cancel = self.stop.child_token();
        let task = if permanent {
            let room = Room::with_setup(self.config.clone(), setup, stats, Some(public));
            tokio::spawn(task::run(room, receiver, cancel))
        } else {
            // Built at its first join: a room nobody uses costs a handle and a summary.
            let config = self.config.clone();
            let unused = public.clone();
            let make = move || Room::with_setup(config, setup, stats, Some(public));
            tokio::spawn(task::run_when_used(make, unused, self.config.room_idle, receiver, cancel, self.drain.clone()))
        };
        let registry = Arc::downgrade(self);
        // The supervisor: whatever way the room's task ends, the room leaves the registry; a
        // panic is logged and touches no other room (its clients see their outboxes close and
        // are told "room closed").
        self.tracker.spawn(async move {
            if let Err(failure) = task.await {
                error!(room = %code, %failure, "room task failed; its players were disconnected");
            }
            if let Some(registry) = registry.upgrade() {
                registry.rooms.lock().expect("not poisoned").remove(&code);
            }
            info!(room = %code, "room removed");
        });
        Ok((handle, host_key))
    }

    /// Removes a room whose task the caller ran (see [`Registry::register_external`]).
    pub fn remove(&self, code: RoomCode) {
        self.rooms.lock().expect("not poisoned").remove(&code);
    }

    /// The live room with this code (private ones included).
    pub fn find(&self, code: &str) -> Option<RoomHandle> {
        let code = RoomCode::parse(code)?;
        self.rooms.lock().expect("not poisoned").get(&code).cloned()
    }

    /// Public rooms, oldest first.
    pub fn list_public(&self) -> Vec<RoomSummary> {
        let mut list: Vec<RoomSummary> =
            self.handles().iter().map(|h| h.public.summary()).filter(|summary| summary.public).collect();
        list.sort_by_key(|summary| (summary.created_unix_ms, summary.code));
        list
    }

    /// Every live room's handle.
    pub fn handles(&self) -> Vec<RoomHandle> {
        self.rooms.lock().expect("not poisoned").values().cloned().collect()
    }

    /// Public rooms and the human players in them (what the LAN announcement tells).
    pub fn totals(&self) -> (u32, u32) {
        let public = self.list_public();
        (public.len() as u32, public.iter().map(|s| u32::from(s.players)).sum())
    }

    pub fn room_count(&self) -> usize {
        self.rooms.lock().expect("not poisoned").len()
    }

    /// Quick play's pick: the fullest public, unlocked room with space, skipping `except`.
    fn quick_play_pick(&self, except: &[RoomCode]) -> Option<RoomHandle> {
        self.handles()
            .into_iter()
            .filter(|h| !except.contains(&h.public.code))
            .map(|h| (h.public.summary(), h))
            .filter(|(s, _)| s.public && !s.locked && s.players < s.max_players)
            .max_by_key(|(s, _)| (s.players, std::cmp::Reverse(s.created_unix_ms)))
            .map(|(_, h)| h)
    }

    /// Resolves a hello's room request. `tried` lists rooms quick play already failed to join.
    pub fn resolve(
        self: &Arc<Self>,
        request: &RoomRequest,
        peer: IpAddr,
        tried: &[RoomCode],
    ) -> Result<Destination, DisconnectReason> {
        // Draining: players already in their rooms play on; nobody new comes in.
        if self.drain.is_draining() {
            return Err(DisconnectReason::ServerClosing);
        }
        match request {
            RoomRequest::QuickPlay => {
                if let Some(room) = self.quick_play_pick(tried) {
                    return Ok(Destination { room, spectator: false, created_key: None });
                }
                let settings = RoomSettings { public: Some(true), ..RoomSettings::default() };
                // No room has space and none can be opened: the server is full.
                let (room, key) = self.create(settings, Some(peer)).map_err(|error| match error {
                    CreateError::TooManyRooms { .. } => DisconnectReason::ServerFull { max: self.config.max_players },
                    other => other.reason(),
                })?;
                Ok(Destination { room, spectator: false, created_key: Some(key) })
            }
            RoomRequest::Join { code } => {
                let room = self.find(code).ok_or(DisconnectReason::NoSuchRoom)?;
                Ok(Destination { room, spectator: false, created_key: None })
            }
            RoomRequest::Watch { code } => {
                let room = self.find(code).ok_or(DisconnectReason::NoSuchRoom)?;
                Ok(Destination { room, spectator: true, created_key: None })
            }
            RoomRequest::Create(settings) => {
                let (room, key) = self.create(settings.clone(), Some(peer)).map_err(|e| e.reason())?;
                Ok(Destination { room, spectator: false, created_key: Some(key) })
            }
        }
    }

    /// Starts draining: no new rooms or joins; rooms announce the restart and close once empty.
    pub fn start_drain(&self, seconds: u64) {
        self.drain.start(seconds);
    }

    /// Stops every room (clients are told the server is shutting down) and waits for them.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }

    pub fn main_code(&self) -> Option<RoomCode> {
        *self.main_code.lock().expect("not poisoned")
    }
}

impl Registry {
    /// A code for a new room: one the lobby reserved for this server when it has one, else a
    /// random one unused here.
    fn unused_code(&self, rooms: &HashMap<RoomCode, RoomHandle>) -> RoomCode {
        let mut reserved = self.reserved_codes.lock().expect("not poisoned");
        while let Some(code) = reserved.pop() {
            if !rooms.contains_key(&code) {
                return code;
            }
        }
        loop {
            let code = random_code();
            if !rooms.contains_key(&code) {
                return code;
            }
        }
    }

    /// The codes held in reserve (each report names them, so the lobby keeps them reserved).
    pub fn reserved_codes(&self) -> Vec<RoomCode> {
        self.reserved_codes.lock().expect("not poisoned").clone()
    }

    /// Adds codes the lobby reserved for this server (at most [`RESERVED_CODES`] are kept).
    pub fn add_reserved_codes(&self, codes: &[RoomCode]) {
        let mut reserved = self.reserved_codes.lock().expect("not poisoned");
        for code in codes {
            if !reserved.contains(code) && reserved.len() < RESERVED_CODES {
                reserved.push(*code);
            }
        }
    }
}

/// Whether a room's settings (from `POST /api/rooms` or a hello's create) can be honoured on a
/// server with `maps` and `max_players`.
pub fn check_settings(settings: &RoomSettings, maps: &MapCatalog, max_players: u16) -> Result<(), CreateError> {
    if let Some(map) = &settings.map
        && maps.get(map).is_none()
    {
        let known = maps.ids().join(", ");
        return Err(CreateError::BadSettings(format!("map: no map called {map:?} (maps: {known})")));
    }
    if let Some(bots) = settings.bots
        && bots > MAX_ROOM_BOTS
    {
        return Err(CreateError::BadSettings(format!("bots: at most {MAX_ROOM_BOTS}, got {bots}")));
    }
    if let Some(max) = settings.max_players
        && !(1..=max_players).contains(&max)
    {
        return Err(CreateError::BadSettings(format!("max_players: 1..={max_players} on this server, got {max}")));
    }
    if let Some(rules) = &settings.rounds {
        rules.check().map_err(CreateError::BadSettings)?;
    }
    Ok(())
}
