//! `arena-server lobby`: the fleet's lobby page and API. Game servers post their rooms to
//! `POST /api/fleet/report` (with the fleet's shared key, and each its own key that binds its
//! name, [`super::ServerKeys`]); players get the public rooms of every
//! server from `GET /api/rooms` and ask where to go with `POST /api/fleet/{join,quickplay,create}`,
//! which answer the chosen server's URL and a join token signed for it (and for the room, when
//! there is one). On Agones (`--agones-allocator`), quick play and create place players through a
//! GameServerAllocation ("a server with a free room slot") and join by code through "the server
//! that hosts room CODE"; otherwise the directory picks the least-loaded server.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use shared::room::RoomCode;
use tracing::{info, warn};

use super::redis::{DirectoryError, RedisDirectory, Reported, ServerView};
use super::{Directory, Placement, Report};
use crate::net::http::{json, json_error};

/// Largest report accepted (1,000 rooms of summaries fit).
const MAX_REPORT_BYTES: usize = 512 * 1024;
/// Largest player request body.
const MAX_REQUEST_BYTES: usize = 1024;

/// The Agones allocator service (its REST endpoint), for placements on Agones.
#[derive(Clone, Debug)]
pub struct Allocator {
    /// Base URL, e.g. `https://agones-allocator.agones-system.svc:443`.
    pub url: String,
    pub namespace: String,
    pub fleet: String,
    /// PEM files: the allocator's CA, and this lobby's client certificate and key (the
    /// allocator service requires mTLS unless it was installed without it).
    pub ca_cert: Option<std::path::PathBuf>,
    pub client_cert: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// How the lobby runs.
#[derive(Clone)]
pub struct LobbyConfig {
    /// The key game servers report with.
    pub lobby_key: String,
    /// Signs join tokens (the servers' `--join-token-secret`); `None`: servers admit anyone.
    pub join_token_secret: Option<String>,
    /// How long a join token is valid.
    pub token_lifetime: Duration,
    pub allocator: Option<Allocator>,
    /// Player requests (placements) per minute from one address.
    pub requests_per_minute: u32,
    /// Reverse proxies in front of the lobby (their `X-Forwarded-For` names the player).
    pub trusted_proxies: Vec<crate::config::ProxyNet>,
    /// What a connection may hold before it is a request (timeouts, per address).
    pub http: crate::config::HttpLimits,
    /// `iss` and `aud` for the join tokens, when the servers require them.
    pub token_issuer: Option<String>,
    pub token_audience: Option<String>,
    /// The shared directory (`redis://` or `rediss://`; an ACL user may be in the URL, never a
    /// password); `None`: this lobby's memory.
    pub directory: Option<String>,
    /// The directory's password (from the environment or the config file, never a flag).
    pub directory_password: Option<String>,
    /// How long a Redis lobby places players from its last view while Redis does not answer
    /// ([`STALE_PLACEMENTS_FOR`] by default); then it refuses placements with a 503.
    pub stale_placements_for: Duration,
}

impl std::fmt::Debug for LobbyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LobbyConfig")
            .field("allocator", &self.allocator)
            .field("directory", &self.directory)
            .finish_non_exhaustive()
    }
}

struct Lobby {
    config: LobbyConfig,
    /// The allocator's HTTP client, built (and its certificates read) once at start.
    allocator_agent: Option<ureq::Agent>,
    directory: Dir,
    limits: crate::auth::JoinLimits,
    /// `GET /api/rooms`'s body, rebuilt at most once a second however many players poll it.
    listing: Mutex<Option<(Instant, bytes::Bytes)>>,
}

pub use super::place::STALE_PLACEMENTS_FOR;
use super::place::{DIRECTORY_DOWN, Dir, LISTING_FRESH, NO_SERVER, Nowhere, View, connected};

/// Serves the lobby on `listener` until `shutdown` completes.
pub async fn run(
    listener: tokio::net::TcpListener,
    config: LobbyConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if config.lobby_key.len() < 16 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "--lobby-key must be at least 16 characters",
        ));
    }
    crate::auth::refuse_placeholder("--lobby-key", &config.lobby_key)
        .map_err(|message| std::io::Error::new(std::io::ErrorKind::InvalidInput, message))?;
    if let Some(secret) = &config.join_token_secret {
        // The same checks as the servers that verify what it signs.
        crate::auth::JoinTokenKeys::from_secret(secret, None, None)
            .map_err(|message| std::io::Error::new(std::io::ErrorKind::InvalidInput, message))?;
    }
    let allocator_agent = match &config.allocator {
        Some(allocator) => {
            let client = allocator.client_cert.as_ref().map(|(cert, key)| (cert.as_path(), key.as_path()));
            Some(
                crate::admin::cli::agent_with(allocator.ca_cert.as_deref(), client)
                    .map_err(|message| std::io::Error::new(std::io::ErrorKind::InvalidInput, message))?,
            )
        }
        None => None,
    };
    let directory = match &config.directory {
        Some(url) => {
            let cell = Arc::new(std::sync::OnceLock::new());
            match RedisDirectory::connect(url, config.directory_password.as_deref()).await {
                Ok(redis) => {
                    let _ = cell.set(redis);
                }
                // A refused login or a bad URL stops the start; a Redis that does not answer yet
                // is tried again (the lobby answers 503 until then).
                Err(DirectoryError::Refused(why)) => return Err(std::io::Error::other(format!("--directory: {why}"))),
                Err(error) => {
                    warn!(%error, "the fleet directory (Redis) does not answer yet: trying again every few seconds");
                    let (cell, url, password) = (cell.clone(), url.clone(), config.directory_password.clone());
                    tokio::spawn(async move {
                        let mut wait = Duration::from_millis(500);
                        loop {
                            tokio::time::sleep(wait).await;
                            match RedisDirectory::connect(&url, password.as_deref()).await {
                                Ok(redis) => {
                                    let _ = cell.set(redis);
                                    info!("the fleet directory (Redis) answers: the lobby is connected");
                                    break;
                                }
                                Err(DirectoryError::Refused(why)) => {
                                    warn!(%why, "the fleet directory (Redis) refused this lobby");
                                }
                                Err(_) => {}
                            }
                            wait = (wait * 2).min(Duration::from_secs(8));
                        }
                    });
                }
            }
            Dir::Redis { redis: cell, view: Mutex::new(View::default()) }
        }
        None => Dir::Local { directory: Mutex::new(Directory::new()), keys: Mutex::default() },
    };
    let lobby = Arc::new(Lobby {
        allocator_agent,
        limits: crate::auth::JoinLimits::new(config.requests_per_minute),
        config,
        directory,
        listing: Mutex::new(None),
    });
    info!(
        addr = %listener.local_addr()?,
        allocator = lobby.config.allocator.is_some(),
        directory = if matches!(lobby.directory, Dir::Redis { .. }) { "redis" } else { "memory" },
        "fleet lobby listening"
    );
    // Forget servers that stopped reporting (in memory), or keep the last view fresh (Redis,
    // where servers expire by themselves).
    let sweeper = {
        let lobby = lobby.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                match &lobby.directory {
                    Dir::Local { directory, .. } => {
                        let gone = directory.lock().expect("directory lock").expire(Instant::now());
                        for server in gone {
                            info!(%server, "server stopped reporting: dropped from the lobby");
                        }
                    }
                    Dir::Redis { .. } => {
                        let _ = lobby.directory.refresh_view().await;
                    }
                }
            }
        })
    };
    let app = Router::new()
        .route("/", get(page))
        .route("/lobby.js", get(script))
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(|| async { "ready\n" }))
        .route("/api/rooms", get(rooms))
        .route("/api/fleet/servers", get(servers))
        .route("/api/fleet/report", post(report))
        .route("/api/fleet/join", post(join))
        .route("/api/fleet/quickplay", post(quick_play))
        .route("/api/fleet/create", post(create))
        .with_state(lobby.clone());
    let stop = tokio_util::sync::CancellationToken::new();
    let stopping = stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopping.cancel();
    });
    let gate = crate::net::listen::Gate::new(lobby.config.http.clone(), lobby.config.trusted_proxies.clone());
    let result = crate::net::listen::serve_plain(listener, app, |_| {}, gate, stop).await;
    sweeper.abort();
    result
}

const PAGE: &str = include_str!("page/lobby.html");
const SCRIPT: &str = include_str!("page/lobby.js");

async fn page() -> Response {
    crate::net::http::built_in_text("text/html; charset=utf-8", PAGE)
}

async fn script() -> Response {
    crate::net::http::built_in_text("text/javascript; charset=utf-8", SCRIPT)
}

/// `GET /api/rooms`: every server's public rooms, fullest first, each with its server's name.
/// From a Redis lobby that cannot reach Redis: its last view, marked `X-Arena-Directory: stale`.
async fn rooms(State(lobby): State<Arc<Lobby>>) -> Response {
    let cached = lobby.listing.lock().expect("listing lock").clone();
    let (body, stale) = match cached {
        Some((built, body)) if built.elapsed() < LISTING_FRESH => (body, false),
        _ => match &lobby.directory {
            Dir::Local { directory, .. } => {
                let rooms = directory.lock().expect("directory lock").public_rooms(super::LISTED_ROOMS);
                (bytes::Bytes::from(serde_json::to_vec(&rooms).expect("rooms serialize")), false)
            }
            Dir::Redis { view, .. } => {
                let fresh = lobby.directory.view_fresh().await;
                let rooms = view.lock().expect("view lock").rooms.clone();
                (bytes::Bytes::from(serde_json::to_vec(&rooms).expect("rooms serialize")), !fresh)
            }
        },
    };
    if !stale {
        let mut listing = lobby.listing.lock().expect("listing lock");
        if listing.as_ref().is_none_or(|(built, _)| built.elapsed() >= LISTING_FRESH) {
            *listing = Some((Instant::now(), body.clone()));
        }
    }
    let state = if stale { "stale" } else { "fresh" };
    (
        [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")],
        [(header::HeaderName::from_static(DIRECTORY_HEADER), state)],
        body,
    )
        .into_response()
}

/// The header saying whether a list is the directory's present (`fresh`) or a Redis lobby's
/// last view while Redis does not answer (`stale`).
pub const DIRECTORY_HEADER: &str = "x-arena-directory";

/// `GET /api/fleet/servers`: the servers heard from (name, URL, rooms, free slots, players).
async fn servers(State(lobby): State<Arc<Lobby>>) -> Response {
    let (mut list, stale) = match &lobby.directory {
        Dir::Local { directory, .. } => {
            let directory = directory.lock().expect("directory lock");
            let list: Vec<ServerView> = directory
                .entries()
                .map(|(name, entry)| ServerView {
                    server: name.clone(),
                    url: entry.report.url.clone(),
                    rooms: entry.report.rooms.len() as u32,
                    free_slots: entry.free_slots(),
                    players: entry.players,
                    draining: entry.report.draining,
                })
                .collect();
            (list, false)
        }
        Dir::Redis { view, .. } => {
            let fresh = lobby.directory.view_fresh().await;
            (view.lock().expect("view lock").servers.clone(), !fresh)
        }
    };
    list.sort_by(|a, b| a.server.cmp(&b.server));
    let mut response = json(StatusCode::OK, &list);
    response.headers_mut().insert(
        header::HeaderName::from_static(DIRECTORY_HEADER),
        header::HeaderValue::from_static(if stale { "stale" } else { "fresh" }),
    );
    response
}

/// The header a game server's own key comes in.
pub const SERVER_KEY_HEADER: &str = "x-arena-server-key";
/// The header with which a game server asks for codes reserved for its next rooms (the answer
/// is then 200 with a [`super::ReportAnswer`], else 204).
pub const RESERVE_HEADER: &str = "x-arena-reserve-codes";

/// `POST /api/fleet/report` from a game server (`Authorization: Bearer LOBBY_KEY`, and its own
/// key in `X-Arena-Server-Key`).
async fn report(State(lobby): State<Arc<Lobby>>, request: Request) -> Response {
    let server_key = request.headers().get(SERVER_KEY_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    // A server that takes reserved codes asks for them (servers of older versions do not).
    let wants_codes = request.headers().contains_key(RESERVE_HEADER);
    let answered = move |codes: Vec<RoomCode>| {
        if wants_codes {
            json(StatusCode::OK, &super::ReportAnswer { codes })
        } else {
            StatusCode::NO_CONTENT.into_response()
        }
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !crate::auth::constant_time_eq(presented.as_bytes(), lobby.config.lobby_key.as_bytes()) {
        return json_error(StatusCode::UNAUTHORIZED, "a valid lobby key is required");
    }
    let Ok(body) = axum::body::to_bytes(request.into_body(), MAX_REPORT_BYTES).await else {
        return json_error(StatusCode::PAYLOAD_TOO_LARGE, "report too large");
    };
    let report: Report = match serde_json::from_slice(&body) {
        Ok(report) => report,
        Err(error) => return json_error(StatusCode::BAD_REQUEST, &format!("not a report: {error}")),
    };
    if let Err(why) = report.check() {
        return json_error(StatusCode::BAD_REQUEST, why);
    }
    let name_taken = || {
        warn!(server = %report.server, "a report under a known server's name with another key: refused");
        json_error(
            StatusCode::CONFLICT,
            &format!(
                "server {} reports with another key; a restarted server gets its name back {} s after the old one's last report",
                report.server,
                super::NAME_HELD_FOR.as_secs()
            ),
        )
    };
    match &lobby.directory {
        Dir::Local { directory, keys } => {
            let now = Instant::now();
            {
                let mut keys = keys.lock().expect("server keys lock");
                match keys.check(&report.server, &server_key, now) {
                    Ok(()) if report.goodbye => keys.release(&report.server),
                    Ok(()) => {}
                    Err(super::KeyRefusal::Missing) => return missing_key(),
                    Err(super::KeyRefusal::NameTaken) => return name_taken(),
                    Err(super::KeyRefusal::Full) => {
                        return json_error(StatusCode::SERVICE_UNAVAILABLE, "the lobby knows too many servers");
                    }
                }
            }
            let server = report.server.clone();
            let mut directory = directory.lock().expect("directory lock");
            directory.report(report, now);
            let codes = if wants_codes { directory.reserve(&server, &candidate_codes(), now) } else { Vec::new() };
            answered(codes)
        }
        Dir::Redis { redis, .. } => {
            if server_key.len() < super::MIN_SERVER_KEY_BYTES {
                return missing_key();
            }
            use sha2::Digest;
            let digest: [u8; 32] = sha2::Sha256::digest(server_key.as_bytes()).into();
            let candidates = if wants_codes { candidate_codes() } else { Vec::new() };
            match async { connected(redis)?.report(&report, &digest, &candidates).await }.await {
                Ok(Reported::NameTaken) => name_taken(),
                Ok(Reported::Taken { taken_elsewhere, codes }) => {
                    if !taken_elsewhere.is_empty() {
                        warn!(server = %report.server, codes = ?taken_elsewhere, "room codes another server holds: not listed for this one");
                    }
                    answered(codes)
                }
                Err(error) => {
                    warn!(server = %report.server, %error, "a report could not be stored");
                    json_error(StatusCode::SERVICE_UNAVAILABLE, DIRECTORY_DOWN)
                }
            }
        }
    }
}

/// Fresh random codes to reserve from (twice what a server may lack).
fn candidate_codes() -> Vec<RoomCode> {
    (0..super::RESERVED_CODES * 2).map(|_| crate::room::random_code()).collect()
}

fn missing_key() -> Response {
    json_error(StatusCode::UNAUTHORIZED, "a server key (X-Arena-Server-Key) is required")
}

/// A player's request: their name (for the token) and, to join, the room code.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlayerRequest {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    code: Option<String>,
    /// The server of the room picked from the list (a code can exist on two servers).
    #[serde(default)]
    server: Option<String>,
}

/// Where to go: the server's URL, the room (if any) and a join token for it.
#[derive(Serialize)]
struct Sent {
    server: String,
    url: String,
    code: Option<String>,
    /// Signed join token (absent when the lobby has no secret: the servers admit anyone).
    token: Option<String>,
    /// The page to open: `URL r/CODE ?name= #join=TOKEN` (or the server's lobby to create).
    go: String,
}

async fn player_request(lobby: &Lobby, peer: SocketAddr, request: Request) -> Result<PlayerRequest, Response> {
    let peer = crate::net::http::client_addr(&lobby.config.trusted_proxies, peer, request.headers());
    if !lobby.limits.try_join(crate::rate::address_key(peer.ip())) {
        let mut response = json_error(StatusCode::TOO_MANY_REQUESTS, "too many requests from your address");
        response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
        return Err(response);
    }
    let body = axum::body::to_bytes(request.into_body(), MAX_REQUEST_BYTES)
        .await
        .map_err(|_| json_error(StatusCode::PAYLOAD_TOO_LARGE, "body too large"))?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(PlayerRequest::default());
    }
    serde_json::from_slice(&body)
        .map_err(|error| json_error(StatusCode::BAD_REQUEST, &format!("invalid request: {error}")))
}

/// The answer for `placement` (already counted there until that server's next report), with a
/// token for `name`.
fn sent(lobby: &Lobby, placement: Placement, name: Option<&str>, create: bool) -> Response {
    let name = name.map(shared::protocol::sanitize_name);
    let token = match &lobby.config.join_token_secret {
        Some(secret) => match sign(
            secret,
            lobby.config.token_lifetime,
            name.as_deref(),
            (&placement.server, placement.room),
            (lobby.config.token_issuer.as_deref(), lobby.config.token_audience.as_deref()),
        ) {
            Ok(token) => Some(token),
            Err(error) => {
                return json_error(StatusCode::INTERNAL_SERVER_ERROR, &format!("cannot sign a token: {error}"));
            }
        },
        None => None,
    };
    let base = if placement.url.ends_with('/') { placement.url.clone() } else { format!("{}/", placement.url) };
    let path = match placement.room {
        Some(code) => format!("r/{code}"),
        None => String::new(),
    };
    let mut query = Vec::new();
    if let Some(name) = &name {
        query.push(format!("name={}", percent(name)));
        if !create {
            query.push("autojoin=1".to_string());
        }
    }
    let query = if query.is_empty() { String::new() } else { format!("?{}", query.join("&")) };
    let fragment = token.as_ref().map(|t| format!("#join={t}")).unwrap_or_default();
    let go = format!("{base}{path}{query}{fragment}");
    json(
        StatusCode::OK,
        &Sent { server: placement.server, url: placement.url, code: placement.room.map(|c| c.to_string()), token, go },
    )
}

fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// A single-use join token for `server` (its `aud`) and `room` (or any room of that server),
/// valid for `lifetime`, with `iss` and the servers' `aud` too when given.
pub fn sign(
    secret: &str,
    lifetime: Duration,
    name: Option<&str>,
    (server, room): (&str, Option<RoomCode>),
    (issuer, audience): (Option<&str>, Option<&str>),
) -> Result<String, String> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let subject = shared::room::host_key_hex(&crate::room::random_host_key());
    // The id a server remembers the token by until it expires: 128 random bits.
    let jti = shared::room::host_key_hex(&crate::room::random_host_key());
    let audiences: Vec<&str> = audience.into_iter().chain(std::iter::once(server)).collect();
    let mut claims = serde_json::json!({
        "sub": subject, "exp": now + lifetime.as_secs(), "iat": now, "jti": jti, "aud": audiences,
    });
    if let Some(name) = name {
        claims["name"] = name.into();
    }
    if let Some(room) = room {
        claims["room"] = room.to_string().into();
    }
    if let Some(issuer) = issuer {
        claims["iss"] = issuer.into();
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| e.to_string())
}

/// `POST /api/fleet/join {"code": "ABCD", "name": "..."}`: the server hosting the room.
async fn join(
    State(lobby): State<Arc<Lobby>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let body = match player_request(&lobby, peer, request).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let Some(code) = body.code.as_deref().and_then(RoomCode::parse) else {
        return json_error(StatusCode::BAD_REQUEST, "code must be a room code (4 letters)");
    };
    // The directory knows every room; on Agones the allocation marks the server Allocated too
    // (unless the player picked a server from the list, which the directory answers).
    let placement = match &lobby.config.allocator {
        Some(allocator) if body.server.is_none() => match allocate(allocator, &lobby, Some(code)).await {
            Err(StatusCode::NOT_FOUND) => Err(Nowhere::NoSuchRoom),
            Err(_) => Err(Nowhere::Unavailable(NO_SERVER)),
            Ok(placement) => Ok(placement),
        },
        _ => lobby.directory.by_code(lobby.config.stale_placements_for, code, body.server.as_deref()).await,
    };
    answer(&lobby, placement.map(|placement| Placement { room: Some(code), ..placement }), body.name.as_deref(), false)
}

/// The answer to a placement request: where to go, or why nowhere.
fn answer(lobby: &Lobby, placement: Result<Placement, Nowhere>, name: Option<&str>, create: bool) -> Response {
    match placement {
        Ok(placement) => sent(lobby, placement, name, create),
        Err(Nowhere::NoSuchRoom) => json_error(StatusCode::NOT_FOUND, "no room has that code"),
        Err(Nowhere::Ambiguous(servers)) => json(
            StatusCode::CONFLICT,
            &serde_json::json!({
                "error": "several servers have a room with that code: pick it from the list",
                "servers": servers,
            }),
        ),
        Err(Nowhere::Unavailable(why)) => json_error(StatusCode::SERVICE_UNAVAILABLE, why),
    }
}

/// `POST /api/fleet/quickplay {"name": "..."}`: the fullest public room with space, else a
/// server with a free room slot.
async fn quick_play(
    State(lobby): State<Arc<Lobby>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let body = match player_request(&lobby, peer, request).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let placement = match (lobby.directory.open_room(lobby.config.stale_placements_for).await, &lobby.config.allocator)
    {
        (Ok(Some(placement)), _) => Ok(placement),
        (Err(nowhere), _) => Err(nowhere),
        (Ok(None), Some(allocator)) => {
            allocate(allocator, &lobby, None).await.map_err(|_| Nowhere::Unavailable(NO_SERVER))
        }
        (Ok(None), None) => lobby.directory.least_loaded(lobby.config.stale_placements_for).await,
    };
    answer(&lobby, placement, body.name.as_deref(), false)
}

/// `POST /api/fleet/create {"name": "..."}`: a server with a free room slot, whose page the
/// player creates the room on.
async fn create(
    State(lobby): State<Arc<Lobby>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let body = match player_request(&lobby, peer, request).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let placement = match &lobby.config.allocator {
        Some(allocator) => allocate(allocator, &lobby, None).await.map_err(|_| Nowhere::Unavailable(NO_SERVER)),
        None => lobby.directory.least_loaded(lobby.config.stale_placements_for).await,
    };
    answer(&lobby, placement.map(|placement| Placement { room: None, ..placement }), body.name.as_deref(), true)
}

/// The GameServerAllocation request body: "the server that hosts room CODE" or "a server with
/// a free room slot" (deploy/agones/allocations/*.yaml, as the allocator service takes them).
pub fn allocation_request(allocator: &Allocator, room: Option<RoomCode>) -> serde_json::Value {
    let labels = serde_json::json!({ "agones.dev/fleet": allocator.fleet });
    let selector = |state: &str| match room {
        Some(code) => serde_json::json!({
            "matchLabels": labels, "gameServerState": state,
            "lists": { "rooms": { "containsValue": code.to_string() } },
        }),
        None => serde_json::json!({
            "matchLabels": labels, "gameServerState": state,
            "counters": { "rooms": { "minAvailable": 1 } },
        }),
    };
    serde_json::json!({
        "namespace": allocator.namespace,
        "gameServerSelectors": [selector("ALLOCATED"), selector("READY")],
        "scheduling": "Packed",
        "priorities": [{ "type": "Counter", "key": "rooms", "order": "Ascending" }],
    })
}

/// Places through the Agones allocator; the allocated GameServer must be in the directory (it
/// reports under its GameServer name).
async fn allocate(allocator: &Allocator, lobby: &Lobby, room: Option<RoomCode>) -> Result<Placement, StatusCode> {
    let body = allocation_request(allocator, room).to_string();
    let url = format!("{}/gameserverallocation", allocator.url.trim_end_matches('/'));
    let agent = lobby.allocator_agent.clone().ok_or(StatusCode::SERVICE_UNAVAILABLE)?;
    let answer = tokio::task::spawn_blocking(move || -> Result<(u16, String), String> {
        let mut response = agent
            .post(&url)
            .header("Content-Type", "application/json")
            .send(body)
            .map_err(|e| format!("{url}: {e}"))?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().map_err(|e| e.to_string())?;
        Ok((status, text))
    })
    .await
    .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
    let (status, text) = answer.map_err(|error| {
        warn!(%error, "Agones allocation failed");
        StatusCode::SERVICE_UNAVAILABLE
    })?;
    if status != 200 {
        // 429 (or 404): no GameServer matched: no such room, or no free slot anywhere. Anything
        // else is the allocator failing (a bad request, a refused certificate): say so.
        if !matches!(status, 404 | 429) {
            warn!(status, answer = %text.chars().take(300).collect::<String>(), "Agones allocator refused the allocation");
            return Err(StatusCode::SERVICE_UNAVAILABLE);
        }
        return Err(if room.is_some() { StatusCode::NOT_FOUND } else { StatusCode::SERVICE_UNAVAILABLE });
    }
    let name = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["gameServerName"].as_str().map(str::to_string))
        .ok_or(StatusCode::SERVICE_UNAVAILABLE)?;
    let url = lobby.directory.allocated(&name).await.ok_or(StatusCode::SERVICE_UNAVAILABLE)?;
    let placement = Placement { server: name, url, room };
    lobby.directory.count(&placement).await;
    Ok(placement)
}
