//! Server configuration: what a host can set from the command line, with the defaults a
//! no-flags start uses. Shapes every room (rates, limits) and the server around them.
//!
//! It owns the settings types of the shells too (admin tokens, TLS files, the lobby link, the
//! mDNS name), so it sits below all of them: the room reads it, and `admin`, `net::tls`,
//! `fleet` and `lan` re-export their settings from here. Nothing here does I/O at start.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use shared::map::MapDef;

use crate::sim::world::Rules;

pub use crate::maps::DEFAULT_MAP_JSON;

/// Most bots a host of the server may put in "Main" (`--bots`); rooms' own hosts may ask for
/// up to [`shared::room::MAX_ROOM_BOTS`].
pub const MAX_MAIN_BOTS: u16 = 1000;

/// Everything that shapes one room.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Simulation rate, ticks per second.
    pub tick_hz: u16,
    /// Snapshot rate, per second; at most `tick_hz`.
    pub snapshot_hz: u16,
    /// Human players admitted to one room at once (bots and spectators do not count); also the
    /// cap on what a room's creator may ask for.
    pub max_players: u16,
    /// Server-side AI players in "Main".
    pub bots: u16,
    /// The map of "Main", and the default for new rooms.
    pub map: Arc<MapDef>,
    /// Seed of the world's PRNG (orb placement, bots).
    pub seed: u64,
    /// Time a new connection has to send its hello.
    pub handshake_timeout: Duration,
    /// How long a client may fail to take snapshots before it is dropped as too slow.
    pub slow_client_timeout: Duration,
    /// How long a connection may send nothing at all (not even the answer to the server's
    /// pings every 2 s) before it is closed as dead: a half-open TCP connection.
    pub idle_timeout: Duration,
    /// Send each client only the entities near it. Off sends everything (benchmark scenarios).
    pub interest: bool,
    /// How long the seat of a player whose connection dropped is held for a resume (zero: the
    /// player leaves at once).
    pub resume_grace: Duration,
    /// Where rooms hand finished rounds to storage (`None`: rounds are not stored).
    pub results: Option<crate::store::record::ResultsSink>,
    /// The database the boards and profiles are read from (`None`: no boards; an empty cell:
    /// not reachable yet).
    pub store: Option<crate::store::db::StoreCell>,
    /// How rounds end in rooms that do not choose (Main included).
    pub rounds: shared::room::RoundRules,
    /// Between a round's end and the next round.
    pub intermission: Duration,
    /// The game the room plays.
    pub rules: Rules,
    /// Where to record the match; `None` records nothing.
    pub replay_dir: Option<std::path::PathBuf>,
    /// How long a drain (the first SIGTERM) lets matches run before closing every connection.
    pub drain: Duration,
    /// How many replays (files and bytes) the replay directory keeps; the oldest go first.
    pub replay_retention: crate::replay::retention::Retention,
    /// Rooms the server hosts at once, "Main" included.
    pub max_rooms: u16,
    /// An empty room (other than "Main") closes after this long.
    pub room_idle: Duration,
    /// Rooms created per minute from one IP address (API and hello alike); also the burst.
    pub room_creates_per_minute: u16,
    /// WebSocket connections open at once, all rooms together; past it upgrades get HTTP 503.
    pub max_connections: usize,
    /// WebSocket connections open at once from one address (loopback exempt); past it upgrades
    /// get HTTP 429. High enough for a family or a LAN party behind one NAT address.
    pub max_connections_per_ip: u32,
    /// The public room "Main" that a no-flags start opens and that never closes.
    pub main_room: bool,
    /// Condition every connection's link (both directions); testing only, off by default.
    pub net_sim: Option<crate::net::netsim::NetSim>,
    /// Lag compensation window, milliseconds: shots are tested against targets as the shooter
    /// saw them, up to this far back (0 turns it off).
    pub lag_comp_ms: u32,
    /// Announce on the LAN (mDNS) and list other Arena servers; also off whenever the server
    /// listens on loopback only.
    pub lan: bool,
    /// mDNS host name, without `.local` (`arena` → `http://arena.local:PORT/`).
    pub mdns_name: String,
    /// The server's name in LAN listings.
    pub server_name: String,
    /// Serve `/metrics` on this address instead of the game port (e.g. loopback or a
    /// cluster-internal interface).
    pub metrics_bind: Option<std::net::SocketAddr>,
    /// Web origins besides the server's own pages that may open game connections
    /// (`--allowed-origin https://lobby.example`, repeatable).
    pub allowed_origins: Vec<String>,
    /// The pages' CSP `frame-ancestors`: who may embed the game (`'none'` by default).
    pub frame_ancestors: String,
    /// The address players should use, when the machine's own addresses are not it (behind a
    /// port forward or a proxy, or a name): shown first in invites and QR codes.
    pub public_url: Option<String>,
    /// Most bytes one snapshot message may take (per client); the most important changes go
    /// first and the rest wait for later snapshots. `None`: no budget (scenario S1).
    pub snapshot_budget_bytes: Option<u32>,
    /// Who may join: anonymous (the default), a password, join tokens.
    pub gate: Arc<crate::auth::Gate>,
    /// Hellos per minute from one address (loopback exempt; 0 turns it off).
    pub joins_per_minute_per_ip: u32,
    /// The operator's tokens, ban list and audit log (`/admin`, `/api/admin/…`).
    pub admin: AdminConfig,
    /// `/metrics` asks for an admin token.
    pub metrics_require_token: bool,
    /// HTTPS and `wss://` on the game port.
    pub tls: Option<TlsFiles>,
    /// Reverse proxies whose `X-Forwarded-For` names the real client (limits, bans and logs
    /// then apply to the client, not to the proxy).
    /// An address or a network (`10.0.0.0/8`, as an ingress's pods have).
    pub trusted_proxies: Vec<ProxyNet>,
    /// What every connection may hold before it is a request or a WebSocket.
    pub http: HttpLimits,
    /// Run as an Agones GameServer (Ready, health, Counters and List, Shutdown).
    pub agones: bool,
    /// Report rooms to a fleet lobby.
    pub lobby: Option<LobbyLink>,
}

/// A trusted proxy: one address (`10.1.2.3`, a network of one) or a network (`10.0.0.0/8`).
pub type ProxyNet = ipnet::IpNet;

/// `--trusted-proxy`: an address or a network in CIDR notation.
pub fn parse_proxy_net(text: &str) -> Result<ProxyNet, String> {
    let text = text.trim();
    if let Ok(net) = text.parse::<ProxyNet>() {
        return Ok(net.trunc());
    }
    text.parse::<std::net::IpAddr>()
        .map(ProxyNet::from)
        .map_err(|_| format!("{text:?} is neither an address (10.1.2.3) nor a network (10.0.0.0/8)"))
}

/// Whether `ip` is one of `trusted` (an IPv4-mapped IPv6 address is its IPv4 address).
pub fn is_trusted_proxy(trusted: &[ProxyNet], ip: std::net::IpAddr) -> bool {
    let ip = ip.to_canonical();
    trusted.iter().any(|net| net.contains(&ip))
}

/// What one TCP connection may hold on any listener (the game port, plain or TLS,
/// `--metrics-bind` and the fleet lobby) before it is a request being answered or a WebSocket,
/// and how many such connections one address may hold.
#[derive(Clone, Debug)]
pub struct HttpLimits {
    /// A request's headers must have arrived this long after the connection became idle
    /// (accepted, or its last response sent): the header timeout and the keep-alive idle
    /// timeout in one.
    pub header_timeout: Duration,
    /// A request, its body included, must be answered within this (HTTP 408 after it).
    pub request_timeout: Duration,
    /// Connections open at once from one address (an IPv6 /64) that are not WebSockets yet;
    /// past it a new one is closed at once. Trusted proxies are exempt.
    pub per_address: u32,
    /// The same, all addresses together.
    pub total: usize,
    /// Whether loopback counts against `per_address` (by default it does not: local tools,
    /// the load generator and a same-host proxy).
    pub limit_loopback: bool,
    /// A TLS handshake must finish within this.
    pub tls_handshake_timeout: Duration,
    /// TLS handshakes in progress from one address (an IPv6 /64).
    pub tls_handshakes_per_address: u32,
    /// TLS handshakes in progress in all; when full, the oldest one in progress is dropped for a
    /// new one, so sockets that never finish cannot keep a real client out.
    pub tls_handshakes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            per_address: 64,
            total: 4096,
            limit_loopback: false,
            tls_handshake_timeout: Duration::from_secs(5),
            tls_handshakes_per_address: 4,
            tls_handshakes: 1024,
        }
    }
}

/// Snapshot budget a no-flags server uses: 1,400 bytes at 30 snapshots per second is 41 KiB/s
/// per client at most (and one TCP segment on a typical path).
pub const DEFAULT_SNAPSHOT_BUDGET_BYTES: u32 = 1400;
/// Smallest budget accepted: a snapshot's fixed part (own state, ack, a few events) must fit.
pub const MIN_SNAPSHOT_BUDGET_BYTES: u32 = 256;

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            tick_hz: 60,
            snapshot_hz: 30,
            max_players: 64,
            bots: 0,
            map: Arc::new(MapDef::from_json(DEFAULT_MAP_JSON).expect("the embedded default map is valid")),
            seed: 0x5eed,
            handshake_timeout: Duration::from_secs(5),
            slow_client_timeout: Duration::from_secs(3),
            idle_timeout: Duration::from_secs(30),
            interest: true,
            resume_grace: Duration::from_secs(20),
            results: None,
            store: None,
            rounds: shared::room::RoundRules::default(),
            intermission: Duration::from_secs(10),
            rules: Rules::Arena,
            replay_dir: None,
            replay_retention: crate::replay::retention::Retention::default(),
            drain: Duration::from_secs(30),
            max_rooms: 64,
            room_idle: Duration::from_secs(60),
            room_creates_per_minute: 10,
            max_connections: 2048,
            max_connections_per_ip: 32,
            main_room: true,
            net_sim: None,
            lag_comp_ms: crate::sim::world::DEFAULT_LAG_COMP_MS,
            lan: true,
            mdns_name: DEFAULT_MDNS_NAME.to_string(),
            server_name: default_server_name(),
            public_url: None,
            allowed_origins: Vec::new(),
            metrics_bind: None,
            frame_ancestors: "'none'".to_string(),
            snapshot_budget_bytes: Some(DEFAULT_SNAPSHOT_BUDGET_BYTES),
            gate: Arc::default(),
            joins_per_minute_per_ip: 60,
            admin: AdminConfig::default(),
            metrics_require_token: false,
            tls: None,
            trusted_proxies: Vec::new(),
            http: HttpLimits::default(),
            agones: false,
            lobby: None,
        }
    }
}

/// "Arena on HOST" from the machine's host name (Linux), or "Arena".
pub fn default_server_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|host| host.trim().to_string())
        .filter(|host| !host.is_empty())
        .map_or_else(|| "Arena".to_string(), |host| format!("Arena on {host}"))
}

impl ServerConfig {
    /// Benchmark scenario S1 (shared/SCENARIO-S1.md): a 4000×4000 open world with 500 static
    /// orbs, S1 movement, no combat, no interest filtering, room for 2000 players.
    pub fn s1() -> ServerConfig {
        ServerConfig {
            map: Arc::new(MapDef::open("s1", 4000.0, 500)),
            rules: Rules::S1,
            // The scenario measures steady play: no round ever ends.
            rounds: shared::room::RoundRules::ENDLESS,
            interest: false,
            // The scenario sends everyone everything: no budget.
            snapshot_budget_bytes: None,
            max_players: 2000,
            max_connections: 4096,
            ..ServerConfig::default()
        }
    }

    /// Checks ranges; returns a message a host can act on.
    pub fn validate(&self) -> Result<(), String> {
        self.rounds.check().map_err(|why| format!("--round-seconds / --score-limit: {why}"))?;
        if !(1..=240).contains(&self.tick_hz) {
            return Err(format!("--tick-hz must be 1..=240, got {}", self.tick_hz));
        }
        if self.snapshot_hz == 0 || self.snapshot_hz > self.tick_hz {
            return Err(format!("--snapshot-hz must be 1..=tick rate ({}), got {}", self.tick_hz, self.snapshot_hz));
        }
        if self.max_players == 0 {
            return Err("--max-players must be at least 1".to_string());
        }
        if self.max_rooms == 0 {
            return Err("--max-rooms must be at least 1".to_string());
        }
        if self.lag_comp_ms > crate::sim::world::MAX_LAG_COMP_MS {
            return Err(format!(
                "--lag-comp-ms must be at most {}, got {}",
                crate::sim::world::MAX_LAG_COMP_MS,
                self.lag_comp_ms
            ));
        }
        if let Some(budget) = self.snapshot_budget_bytes
            && budget < MIN_SNAPSHOT_BUDGET_BYTES
        {
            return Err(format!(
                "--snapshot-budget-bytes must be 0 (no budget) or at least {MIN_SNAPSHOT_BUDGET_BYTES}, got {budget}"
            ));
        }
        if let Some(url) = self.public_url.as_ref().map(|url| url.replace("{port}", "1"))
            && (!(url.starts_with("http://") || url.starts_with("https://"))
                || url.len() > 200
                || url
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '<' | '>' | '\'' | '{' | '}')))
        {
            return Err(format!(
                "--public-url must be a plain http:// or https:// URL (placeholders: {{hostname}}, {{port}}), got {url:?}"
            ));
        }
        if self.frame_ancestors.chars().any(|c| c.is_control() || c == ';' || c == ',') {
            return Err(format!(
                "--frame-ancestors must be CSP sources separated by spaces, got {:?}",
                self.frame_ancestors
            ));
        }
        if self.agones && !cfg!(feature = "agones") {
            return Err("--agones: this build has no Agones support (build with `--features agones`)".to_string());
        }
        if self.agones && self.max_rooms > 1000 {
            return Err(format!(
                "--max-rooms must be at most 1000 with --agones (an Agones List holds 1000 room codes), got {}",
                self.max_rooms
            ));
        }
        if self.bots > MAX_MAIN_BOTS {
            return Err(format!("--bots must be at most {MAX_MAIN_BOTS}, got {}", self.bots));
        }
        Ok(())
    }

    /// The path the pages are served under, from `--public-url`'s path (`/gs/NAME/` behind a
    /// proxy that routes by path), always starting and ending with `/`; `/` without one.
    pub fn base_path(&self) -> String {
        let Some(url) = &self.public_url else { return "/".to_string() };
        let rest = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
        let path = rest.find('/').map_or("/", |i| &rest[i..]);
        let path = path.split(['?', '#']).next().unwrap_or("/");
        let trimmed = path.trim_matches('/');
        if trimmed.is_empty() { "/".to_string() } else { format!("/{trimmed}/") }
    }

    /// Ticks between snapshots (snapshots go out on ticks that are multiples of this).
    pub fn ticks_per_snapshot(&self) -> u32 {
        (u32::from(self.tick_hz) / u32::from(self.snapshot_hz.max(1))).max(1)
    }
}

/// The default mDNS host name (`--mdns-name`).
pub const DEFAULT_MDNS_NAME: &str = "arena";

/// Shortest admin token accepted (a generated one has 32 hex digits).
pub const MIN_TOKEN_CHARS: usize = 16;

/// A named admin token. `Debug` never shows the secret.
#[derive(Clone)]
pub struct AdminToken {
    pub name: String,
    secret: String,
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AdminToken({:?})", self.name)
    }
}

impl AdminToken {
    /// `NAME=SECRET` (NAME: letters, digits, `-`, `_`, at most 32) or just `SECRET` (named
    /// "admin"; a secret may itself contain `=`, as base64 does). Errors never repeat any part of
    /// the spec: it may be mostly secret.
    pub fn parse(spec: &str) -> Result<AdminToken, String> {
        let is_name = |name: &str| {
            !name.is_empty()
                && name.len() <= 32
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        let (name, secret) = match spec.split_once('=') {
            Some((name, secret)) if is_name(name) && secret.chars().count() >= MIN_TOKEN_CHARS => {
                (name.to_string(), secret.to_string())
            }
            _ => ("admin".to_string(), spec.to_string()),
        };
        if secret.chars().count() < MIN_TOKEN_CHARS || secret.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "--admin-token: a token must be NAME=SECRET or SECRET, the secret at least {MIN_TOKEN_CHARS} characters without spaces"
            ));
        }
        crate::auth::refuse_placeholder("--admin-token", &secret)?;
        Ok(AdminToken { name, secret })
    }

    /// A fresh random token (128 bits, hex) named "admin".
    pub fn generate() -> AdminToken {
        let mut key = [0u8; shared::room::HOST_KEY_BYTES];
        getrandom::fill(&mut key).expect("the OS random generator is available");
        AdminToken { name: "admin".to_string(), secret: shared::room::host_key_hex(&key) }
    }

    /// The secret, to print once when it was generated.
    pub fn reveal(&self) -> &str {
        &self.secret
    }
}

/// What the host configured.
#[derive(Clone, Debug, Default)]
pub struct AdminConfig {
    /// No tokens: administration is off.
    pub tokens: Vec<AdminToken>,
    /// Where bans are kept (JSON); `None` keeps them in memory only.
    pub bans_file: Option<PathBuf>,
    /// Where the audit log is appended (JSON lines); `None` logs to the server log only.
    pub audit_log: Option<PathBuf>,
}

/// How often the certificate files are checked for a renewal.
pub const RELOAD_EVERY: Duration = Duration::from_secs(30);

/// The certificate chain and private key files (PEM).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// How often the files are checked for a renewal ([`RELOAD_EVERY`]).
    pub reload_every: Duration,
}

/// Where and how to report.
#[derive(Clone)]
pub struct LobbyLink {
    /// The lobby's base URL (`http://arena-lobby:8080`).
    pub url: String,
    /// The fleet's shared key (`Authorization: Bearer`).
    pub key: String,
    /// This server's name in the fleet.
    pub instance: String,
    /// Where players connect to this server.
    pub public_url: String,
    /// Report straight into the fleet's Redis directory (`redis://…`) instead of to a lobby
    /// (`url` and `key` are then unused), with its password.
    pub directory: Option<(String, Option<String>)>,
}

impl std::fmt::Debug for LobbyLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("LobbyLink")
            .field("url", &self.url)
            .field("instance", &self.instance)
            .field("public_url", &self.public_url)
            .field("directory", &self.directory.as_ref().map(|(url, _)| url))
            .finish()
    }
}
