//! The binary's command line (clap): `arena-server` with its subcommands and every flag, with
//! its help text. `settings.rs` layers the same settings from `ARENA_*` variables and a TOML
//! file; `main.rs` turns them into a `ServerConfig` and runs the command.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "arena-server", version, about = "Arena: authoritative multiplayer arena server")]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// Log lines as text (colours only on a terminal) or as one JSON object per line, for log
    /// shippers.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server (the default when no subcommand is given).
    Serve(Box<ServeArgs>),
    /// Connect headless bot players to a running server and report what they saw.
    Bots(BotsArgs),
    /// Inspect recorded matches.
    #[command(subcommand)]
    Replay(ReplayCommand),
    /// Prints the effective configuration as TOML, each value with where it came from (flag,
    /// ARENA_* environment variable, --config file, or default); takes the same flags as serve.
    Config(Box<ServeArgs>),
    /// Checks a server's health endpoint: exit 0 on HTTP 200, 1 otherwise (container
    /// HEALTHCHECKs need no shell or curl).
    Health {
        #[arg(long, default_value = "http://127.0.0.1:8080/livez")]
        url: String,
        /// Trust this CA certificate (PEM) for an https:// URL.
        #[arg(long, value_name = "FILE")]
        ca_cert: Option<PathBuf>,
    },
    /// Administer a running server from a shell (JSON out): rooms, kick, close, bots,
    /// broadcast, bans, ban, unban, drain, audit. The token comes from --token-file or
    /// ARENA_ADMIN_TOKEN, never from an argument.
    Admin(server::admin::cli::AdminArgs),
    /// Run the fleet lobby: one page and API for every server's rooms (servers report with
    /// --lobby-url); sends players to the right server with a signed join token.
    Lobby(LobbyArgs),
    /// Run the in-repo fake of the Agones SDK sidecar, to try `serve --agones` without
    /// Kubernetes: prints what the GameServer reports (state, health, Counters, List) as JSON
    /// lines whenever it changes.
    #[cfg(feature = "agones")]
    FakeAgones {
        /// gRPC port (the SDK's default is 9357, or AGONES_SDK_GRPC_PORT).
        #[arg(long, default_value_t = 9357)]
        port: u16,
    },
}

#[derive(Subcommand, Debug)]
pub enum ReplayCommand {
    /// Re-simulate a replay and compare every stored state hash. Exit status: 0 the whole file
    /// verified; 2 verified up to a cut tail (as after a crash); 1 damaged (a corrupt record
    /// before the end), divergent, or unreadable.
    Verify { file: PathBuf },
    /// Serve a replay to spectators: open the printed URL, then play/pause, change speed
    /// (0.25x–8x) and seek from the browser.
    Serve {
        file: PathBuf,
        /// Address to listen on.
        #[arg(long, default_value = "0.0.0.0:8080")]
        bind: SocketAddr,
    },
    /// Rewrite a replay in the current format (older formats, 3 and up, pack their inputs
    /// smaller); the records it holds are kept exactly. A file with a cut or damaged tail is
    /// refused unless --force (the copy would end cleanly and hide the damage).
    Repack {
        file: PathBuf,
        out: PathBuf,
        /// Repack what precedes a cut or damaged tail anyway.
        #[arg(long)]
        force: bool,
    },
    /// Length, players, ticks and final scores of a replay.
    Info {
        file: PathBuf,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

/// The serve flags. Every one is also an `ARENA_<NAME>` environment variable and a key of the
/// `--config` TOML file (`tick_hz = 30`); flags win over the environment, which wins over the file.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// A TOML file of settings (keys are the flags with _ for -, e.g. `tick_hz = 30`); also
    /// ARENA_CONFIG. Flags and ARENA_* variables override it.
    #[arg(long, value_name = "FILE", env = "ARENA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on (HTTP, the browser client and /ws on one port).
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub bind: SocketAddr,
    /// Simulation ticks per second.
    #[arg(long, default_value_t = 60)]
    pub tick_hz: u16,
    /// Snapshots per second sent to each client.
    #[arg(long, default_value_t = 30)]
    pub snapshot_hz: u16,
    /// Most human players in one room (bots and spectators do not count); also the most a
    /// room's creator may ask for [default: 64; 2000 with --scenario s1].
    #[arg(long)]
    pub max_players: Option<u16>,
    /// Most rooms at once, "Main" included.
    #[arg(long, default_value_t = 64)]
    pub max_rooms: u16,
    /// An empty room (other than "Main") closes after this many seconds.
    #[arg(long, default_value_t = 60)]
    pub room_idle_seconds: u64,
    /// Rooms one IP address may create per minute (API and browser alike).
    #[arg(long, default_value_t = 10)]
    pub room_creates_per_minute: u16,
    /// Most WebSocket connections at once, all rooms together (then HTTP 503)
    /// [default: 2048; 4096 with --scenario s1].
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Serve /metrics on this address instead of the game port (e.g. 127.0.0.1:9090).
    #[arg(long)]
    pub metrics_bind: Option<SocketAddr>,
    /// Most WebSocket connections at once from one address (an IPv6 /64; then HTTP 429);
    /// loopback is exempt, 0 turns it off (behind a proxy that is not on this machine). 32 lets a
    /// LAN party or a family behind one NAT address play and stops one host opening hundreds.
    #[arg(long, default_value_t = 32)]
    pub max_connections_per_ip: u32,
    /// Game rules: `arena` (the game) or `s1` (benchmark scenario S1: 4000×4000 open world,
    /// 500 static orbs, straight 200 units/s movement, no combat, no interest filtering).
    #[arg(long, value_enum, default_value = "arena")]
    pub scenario: Scenario,
    /// Server-side AI players in "Main" that move, aim, shoot and collect orbs.
    #[arg(long, default_value_t = 0)]
    pub bots: u16,
    /// Map file (JSON, see assets/maps/README.md) for "Main" and the default of new rooms; the
    /// built-in arena when omitted.
    #[arg(long)]
    pub map: Option<PathBuf>,
    /// Directory for match replays (one file per room and match, named with the room's code).
    #[arg(long, default_value = "replays")]
    pub replay_dir: PathBuf,
    /// Do not record a replay.
    #[arg(long, value_parser = clap::builder::BoolishValueParser::new())]
    pub no_replay: bool,
    /// Replays kept in --replay-dir: the oldest are deleted past this many files...
    #[arg(long, default_value_t = 500)]
    pub replay_keep_files: usize,
    /// ...or past this many megabytes.
    #[arg(long, default_value_t = 2048)]
    pub replay_keep_mb: u64,
    /// On SIGTERM (or Ctrl-C), matches run this long (or until their rooms empty) before every
    /// connection is closed; a second signal stops at once.
    #[arg(long, default_value_t = 30)]
    pub drain_seconds: u64,
    /// Worker threads for networking and the room (1 runs everything on one thread, which
    /// avoids cross-thread wake-ups); defaults to the number of CPUs.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Seed for orb placement and bot behaviour.
    #[arg(long, default_value_t = 0x5eed)]
    pub seed: u64,
    /// Condition every connection's link, both directions, for testing netcode on a bad
    /// network: e.g. `latency=75ms,jitter=10ms,stall=250ms/10s,bandwidth=64000`. Off by default.
    #[arg(long)]
    pub net_sim: Option<server::net::netsim::NetSim>,
    /// Lag compensation window, milliseconds: a shot is tested against targets as its shooter
    /// saw them, at most this far back (about RTT plus the interpolation delay); 0 turns it off.
    #[arg(long, default_value_t = server::sim::world::DEFAULT_LAG_COMP_MS)]
    pub lag_comp_ms: u32,
    /// How long a round lasts, in seconds; its end shows the results, then an intermission, then
    /// a fresh round. 0: endless play [default: 300; endless with --scenario s1]. Rooms may
    /// choose their own (`rounds` in the create settings, or the host's menu).
    #[arg(long)]
    pub round_seconds: Option<u32>,
    /// Where finished rounds, players, ratings and boards are kept: `sqlite:FILE` (made on first
    /// start) or `postgres://USER:PASSWORD@HOST/DB` (a fleet shares one; better in
    /// ARENA_DATABASE: flags show in `ps`).
    #[arg(long, default_value = "sqlite:arena.db")]
    pub database: String,
    /// Keep no results: rounds end with their results but nothing is stored or rated.
    #[arg(long)]
    pub no_database: bool,
    /// Where finished rounds wait (fsynced) until the database has them.
    #[arg(long, default_value = "results.spool")]
    pub results_spool: PathBuf,
    /// Seconds of a round a player must have played for the round to count them (and a round
    /// counts with at least 2 such players).
    #[arg(long, default_value_t = 60)]
    pub rated_min_seconds: u32,
    /// How long a season of the boards lasts: `week` (to Monday 00:00 UTC), `month` (to the
    /// 1st, 00:00 UTC) or `Nd` (N days). Past seasons keep their boards.
    #[arg(long, default_value = "month")]
    pub season_length: server::store::season::SeasonLength,
    /// A round also ends as soon as a player reaches this score (0: no score limit).
    #[arg(long, default_value_t = 0)]
    pub score_limit: u16,
    /// Seconds between a round's end and the next round (1–120).
    #[arg(long, default_value_t = 10)]
    pub intermission_seconds: u64,
    /// Most bytes of one snapshot for one client; the most important changes go first (near,
    /// fast, changed, own shots), the rest in later snapshots. 0: no budget
    /// [default: 1400; none with --scenario s1].
    #[arg(long)]
    pub snapshot_budget_bytes: Option<u32>,
    /// Do not announce on the LAN (mDNS) or list other Arena servers (always off when bound to
    /// loopback).
    #[arg(long, value_parser = clap::builder::BoolishValueParser::new())]
    pub no_lan: bool,
    /// mDNS host name: players on the LAN open http://NAME.local:PORT/ (on a clash the server
    /// takes NAME-2 and says so).
    #[arg(long, default_value = server::lan::DEFAULT_MDNS_NAME)]
    pub mdns_name: String,
    /// This server's name in other servers' LAN lists [default: "Arena on HOSTNAME"].
    #[arg(long)]
    pub server_name: Option<String>,
    /// The address players should use when it is not one of this machine's (a port forward, a
    /// proxy, a DNS name): shown first, in invites and QR codes. A template: `{hostname}` (the
    /// machine's or pod's host name) and `{port}` are filled in, and a path
    /// (`https://games.example/gs/{hostname}/`) is where the pages, the API and the WebSocket are
    /// served, for a proxy or ingress that routes servers by path.
    #[arg(long)]
    pub public_url: Option<String>,
    /// Serve HTTPS and wss:// on the game port with this certificate chain (PEM; with
    /// --tls-key). Renewed files are picked up within 30 s.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Another web origin allowed to open game connections, e.g. a lobby site
    /// (`--allowed-origin https://lobby.example`; repeatable). The server's own pages always are.
    #[arg(long = "allowed-origin", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// Who may embed the game in a frame (CSP frame-ancestors sources, e.g. `https://site.example`).
    #[arg(long, default_value = "'none'")]
    pub frame_ancestors: String,
    /// An admin token for /admin and /api/admin (`NAME=SECRET` or `SECRET`, at least 16
    /// characters; repeatable; prefer ARENA_ADMIN_TOKEN or the config file to a flag). Without
    /// one, a server on loopback generates a token and prints it once; otherwise admin is off.
    #[arg(long = "admin-token", value_delimiter = ',')]
    pub admin_token: Vec<String>,
    /// Where IP bans are kept (JSON), so they survive restarts.
    #[arg(long, default_value = "bans.json")]
    pub bans_file: PathBuf,
    /// Where every admin action is appended (JSON lines).
    #[arg(long, default_value = "admin-audit.log")]
    pub audit_log: PathBuf,
    /// /metrics asks for an admin token (Authorization: Bearer) instead of answering anyone
    /// who reaches the port. Off by default: use --metrics-bind to keep it off the game port.
    #[arg(long, value_parser = clap::builder::BoolishValueParser::new())]
    pub metrics_require_token: bool,
    /// A server password players type on the page before joining (prefer ARENA_PASSWORD or the
    /// config file to a flag).
    #[arg(long)]
    pub password: Option<String>,
    /// Admit only players with a join token (JWT) signed with this HS256 secret (at least 32
    /// bytes) by the host's own backend.
    #[arg(long)]
    pub join_token_secret: Option<String>,
    /// Admit only players with a join token signed by a key of this JWKS file (RS*, PS*, ES*,
    /// EdDSA; picked by `kid`).
    #[arg(long, value_name = "FILE")]
    pub join_token_jwks: Option<PathBuf>,
    /// Join tokens must carry this `iss`.
    #[arg(long)]
    pub join_token_issuer: Option<String>,
    /// Join tokens must carry this `aud`.
    #[arg(long)]
    pub join_token_audience: Option<String>,
    /// A join token with a `jti` admits once (used again, it only takes back the seat of the
    /// player it seated); always so for a server in a fleet (`--lobby-url`).
    #[arg(long)]
    pub join_token_single_use: bool,
    /// A reverse proxy in front of the server (repeatable; an address or a network such as an
    /// ingress's pod range, 10.0.0.0/8): for its requests the client's address is taken from
    /// X-Forwarded-For, so per-address limits, bans and logs apply to the player, not to the proxy.
    #[arg(long = "trusted-proxy", value_delimiter = ',', value_parser = server::config::parse_proxy_net)]
    pub trusted_proxies: Vec<server::config::ProxyNet>,
    /// Report this server's rooms to a fleet lobby (`arena-server lobby`) every 2 s, so players
    /// find them from one page; needs --lobby-key and --public-url. Lobbies sharing a Redis
    /// directory: `URL,URL,…` (the one that took the last report, else the next that answers).
    #[arg(long, value_name = "URL", requires = "lobby_key")]
    pub lobby_url: Option<String>,
    /// The fleet's shared key for --lobby-url (better in ARENA_LOBBY_KEY or the config file).
    #[arg(long)]
    pub lobby_key: Option<String>,
    /// Report this server's rooms straight into the fleet's Redis directory (`redis://HOST/DB`
    /// or `rediss://`; an ACL user as `redis://USER@HOST`), which the lobbies started with the
    /// same --directory read, instead of to a lobby; its password only in
    /// ARENA_DIRECTORY_PASSWORD. Needs --public-url.
    #[arg(long, value_name = "URL", conflicts_with = "lobby_url")]
    pub directory: Option<String>,
    /// This server's name in the fleet [default: the host name, which is the GameServer's name
    /// on Agones].
    #[arg(long)]
    pub instance: Option<String>,
    /// Run as an Agones GameServer: Ready once listening, health pings while the rooms tick,
    /// Counters `rooms`/`players` and List `rooms` kept current, Shutdown after the drain. Needs
    /// the `agones` build feature and the SDK sidecar (waits up to 30 s for it).
    #[arg(long, value_parser = clap::builder::BoolishValueParser::new())]
    pub agones: bool,
    /// A connection that sends nothing for this long (not even the answer to the server's
    /// pings every 2 s) is closed as dead (half-open TCP), with close code 4024.
    #[arg(long, default_value_t = 30)]
    pub idle_timeout_seconds: u64,
    /// A player whose connection drops without a goodbye keeps their seat this long: the entity
    /// stands still, marked as reconnecting, and the browser's automatic reconnect takes it back
    /// (same id, position, health and score). 0 removes dropped players at once (0–600).
    #[arg(long, default_value_t = 20)]
    pub resume_grace_seconds: u64,
    /// Hellos (joins) per minute from one address, with as large a burst (loopback exempt; 0
    /// turns it off). Failed passwords and tokens are limited apart: 10 a minute.
    #[arg(long, default_value_t = 60)]
    pub joins_per_minute_per_ip: u32,
}

#[derive(Args, Debug)]
pub struct LobbyArgs {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub bind: SocketAddr,
    /// The key game servers report with (their --lobby-key); at least 16 characters.
    #[arg(long, env = "ARENA_LOBBY_KEY", hide_env_values = true)]
    pub lobby_key: String,
    /// Signs join tokens for the game servers (their --join-token-secret); without it, tokens
    /// are not issued and the servers must admit anyone.
    #[arg(long, env = "ARENA_JOIN_TOKEN_SECRET", hide_env_values = true)]
    pub join_token_secret: Option<String>,
    /// How long a join token is valid, seconds.
    #[arg(long, default_value_t = 60)]
    pub token_seconds: u64,
    /// Place players through the Agones allocator service at this URL (GameServerAllocations
    /// "a free room slot" and "the server that hosts room CODE"); without it, the
    /// least-loaded reporting server.
    #[arg(long, value_name = "URL")]
    pub agones_allocator: Option<String>,
    /// The allocator's CA certificate (PEM).
    #[arg(long, value_name = "FILE")]
    pub agones_allocator_ca: Option<PathBuf>,
    /// This lobby's client certificate and key for the allocator's mTLS (PEM; the
    /// `allocator-client.default` Secret of an Agones install).
    #[arg(long, value_name = "FILE", requires = "agones_allocator_key")]
    pub agones_allocator_cert: Option<PathBuf>,
    #[arg(long, value_name = "FILE", requires = "agones_allocator_cert")]
    pub agones_allocator_key: Option<PathBuf>,
    /// Namespace and Fleet of the game servers.
    #[arg(long, default_value = "default")]
    pub agones_namespace: String,
    #[arg(long, default_value = "arena")]
    pub agones_fleet: String,
    /// Placement requests per minute from one address.
    #[arg(long, default_value_t = 120)]
    pub requests_per_minute: u32,
    /// A reverse proxy in front of the lobby (repeatable; an address or a network): its
    /// X-Forwarded-For names the player.
    #[arg(long = "trusted-proxy", value_delimiter = ',', value_parser = server::config::parse_proxy_net)]
    pub trusted_proxies: Vec<server::config::ProxyNet>,
    /// `iss` and `aud` put in join tokens (for servers started with --join-token-issuer or
    /// --join-token-audience).
    #[arg(long)]
    pub join_token_issuer: Option<String>,
    #[arg(long)]
    pub join_token_audience: Option<String>,
    /// The fleet directory every lobby shares: `redis://HOST:PORT/DB`, or `rediss://` for TLS,
    /// with an ACL user as `redis://USER@HOST`; its password only in ARENA_DIRECTORY_PASSWORD
    /// (never in a flag or the URL). Without it, this lobby's own memory (a single lobby).
    #[arg(long, value_name = "URL", env = "ARENA_DIRECTORY")]
    pub directory: Option<String>,
}

/// The variable the fleet directory's password comes from (never a flag).
pub const DIRECTORY_PASSWORD_VAR: &str = "ARENA_DIRECTORY_PASSWORD";

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    Arena,
    S1,
}

#[derive(Args, Debug)]
pub struct BotsArgs {
    /// WebSocket URL of the server.
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    pub url: String,
    /// Number of bot players.
    #[arg(long, default_value_t = 10)]
    pub count: u32,
    /// Seconds each bot plays.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Inputs per second per bot.
    #[arg(long, default_value_t = 60)]
    pub input_hz: u32,
    /// Random seed for the bots' behaviour.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Join the room with this code (default: quick play).
    #[arg(long, conflicts_with = "rooms")]
    pub room: Option<String>,
    /// Spread the bots over this many new rooms (mind the server's --room-creates-per-minute).
    #[arg(long, default_value_t = 0)]
    pub rooms: u32,
    /// Server bots in each of the new rooms (with --rooms).
    #[arg(long, default_value_t = 0)]
    pub room_bots: u16,
    /// Condition each bot's link, both directions (same spec as the server's --net-sim).
    #[arg(long)]
    pub net_sim: Option<server::net::netsim::NetSim>,
}
