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

use super::{Directory, FindError, Placement, Report};
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
}

impl std::fmt::Debug for LobbyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LobbyConfig").field("allocator", &self.allocator).finish_non_exhaustive()
    }
}

struct Lobby {
    config: LobbyConfig,
    /// The allocator's HTTP client, built (and its certificates read) once at start.
    allocator_agent: Option<ureq::Agent>,
    directory: Mutex<Directory>,
    /// Each server name's own key.
    server_keys: Mutex<super::ServerKeys>,
    limits: crate::auth::JoinLimits,
    /// `GET /api/rooms`'s body, rebuilt at most once a second however many players poll it.
    listing: Mutex<Option<(Instant, bytes::Bytes)>>,
}

/// How long a built room list is served before it is rebuilt.
const LISTING_FRESH: Duration = Duration::from_secs(1);

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
    let lobby = Arc::new(Lobby {
        allocator_agent,
        limits: crate::auth::JoinLimits::new(config.requests_per_minute),
        config,
        directory: Mutex::new(Directory::new()),
        server_keys: Mutex::default(),
        listing: Mutex::new(None),
    });
    info!(addr = %listener.local_addr()?, allocator = lobby.config.allocator.is_some(), "fleet lobby listening");
    // Forget servers that stopped reporting.
    let sweeper = {
        let lobby = lobby.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let gone = lobby.directory.lock().expect("directory lock").expire(Instant::now());
                for server in gone {
                    info!(%server, "server stopped reporting: dropped from the lobby");
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
async fn rooms(State(lobby): State<Arc<Lobby>>) -> Response {
    let mut listing = lobby.listing.lock().expect("listing lock");
    let body = match listing.as_ref() {
        Some((built, body)) if built.elapsed() < LISTING_FRESH => body.clone(),
        _ => {
            let rooms = lobby.directory.lock().expect("directory lock").public_rooms(super::LISTED_ROOMS);
            let body = bytes::Bytes::from(serde_json::to_vec(&rooms).expect("rooms serialize"));
            *listing = Some((Instant::now(), body.clone()));
            body
        }
    };
    ([(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")], body).into_response()
}

/// `GET /api/fleet/servers`: the servers heard from (name, URL, rooms, free slots, players).
async fn servers(State(lobby): State<Arc<Lobby>>) -> Response {
    let directory = lobby.directory.lock().expect("directory lock");
    let mut list: Vec<serde_json::Value> = directory
        .entries()
        .map(|(name, entry)| {
            serde_json::json!({
                "server": name,
                "url": entry.report.url,
                "rooms": entry.report.rooms.len(),
                "free_slots": entry.free_slots(),
                "players": entry.players,
                "draining": entry.report.draining,
            })
        })
        .collect();
    list.sort_by(|a, b| a["server"].as_str().cmp(&b["server"].as_str()));
    json(StatusCode::OK, &list)
}

/// The header a game server's own key comes in.
pub const SERVER_KEY_HEADER: &str = "x-arena-server-key";

/// `POST /api/fleet/report` from a game server (`Authorization: Bearer LOBBY_KEY`, and its own
/// key in `X-Arena-Server-Key`).
async fn report(State(lobby): State<Arc<Lobby>>, request: Request) -> Response {
    let server_key = request.headers().get(SERVER_KEY_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
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
    let now = Instant::now();
    {
        let mut keys = lobby.server_keys.lock().expect("server keys lock");
        match keys.check(&report.server, &server_key, now) {
            Ok(()) if report.goodbye => keys.release(&report.server),
            Ok(()) => {}
            Err(super::KeyRefusal::Missing) => {
                return json_error(StatusCode::UNAUTHORIZED, "a server key (X-Arena-Server-Key) is required");
            }
            Err(super::KeyRefusal::NameTaken) => {
                warn!(server = %report.server, "a report under a known server's name with another key: refused");
                return json_error(
                    StatusCode::CONFLICT,
                    &format!(
                        "server {} reports with another key; a restarted server gets its name back {} s after the old one's last report",
                        report.server,
                        super::NAME_HELD_FOR.as_secs()
                    ),
                );
            }
            Err(super::KeyRefusal::Full) => {
                return json_error(StatusCode::SERVICE_UNAVAILABLE, "the lobby knows too many servers");
            }
        }
    }
    lobby.directory.lock().expect("directory lock").report(report, now);
    StatusCode::NO_CONTENT.into_response()
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

/// The answer for `placement`, with a token for `name`; the directory counts the player there
/// until that server's next report.
fn sent(lobby: &Lobby, placement: Placement, name: Option<&str>, create: bool) -> Response {
    lobby.directory.lock().expect("directory lock").sent(&placement);
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
    let found = lobby.directory.lock().expect("directory lock").find(code, body.server.as_deref());
    let placement = match (found, &lobby.config.allocator) {
        (Err(FindError::Ambiguous(servers)), _) => {
            return json(
                StatusCode::CONFLICT,
                &serde_json::json!({
                    "error": "several servers have a room with that code: pick it from the list",
                    "servers": servers,
                }),
            );
        }
        (Ok(placement), None) => Ok(placement),
        (Ok(placement), Some(_)) if body.server.is_some() => Ok(placement),
        (_, Some(allocator)) => allocate(allocator, &lobby, Some(code)).await,
        (Err(FindError::NoSuchRoom), None) => Err(StatusCode::NOT_FOUND),
    };
    answer(&lobby, placement.map(|placement| Placement { room: Some(code), ..placement }), body.name.as_deref(), false)
}

/// The answer to a placement request: where to go, or why nowhere.
fn answer(lobby: &Lobby, placement: Result<Placement, StatusCode>, name: Option<&str>, create: bool) -> Response {
    match placement {
        Ok(placement) => sent(lobby, placement, name, create),
        Err(StatusCode::NOT_FOUND) => json_error(StatusCode::NOT_FOUND, "no room has that code"),
        Err(status) => json_error(status, "no server can take players right now; try again in a few seconds"),
    }
}

/// Off Agones, a new room's server: the one with the most free slots and the fewest players.
fn least_loaded(lobby: &Lobby) -> Result<Placement, StatusCode> {
    lobby.directory.lock().expect("directory lock").least_loaded().ok_or(StatusCode::SERVICE_UNAVAILABLE)
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
    let open_room = {
        let directory = lobby.directory.lock().expect("directory lock");
        directory.quick_play().filter(|placement| placement.room.is_some())
    };
    let placement = match (open_room, &lobby.config.allocator) {
        (Some(placement), _) => Ok(placement),
        (None, Some(allocator)) => allocate(allocator, &lobby, None).await,
        (None, None) => least_loaded(&lobby),
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
        Some(allocator) => allocate(allocator, &lobby, None).await,
        None => least_loaded(&lobby),
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
    let directory = lobby.directory.lock().expect("directory lock");
    let entry = directory.server(&name).ok_or_else(|| {
        warn!(server = %name, "allocated a GameServer the lobby has not heard from yet");
        StatusCode::SERVICE_UNAVAILABLE
    })?;
    if entry.report.draining {
        warn!(server = %name, "allocated a GameServer that is draining");
        return Err(StatusCode::SERVICE_UNAVAILABLE);
    }
    Ok(Placement { server: name, url: entry.report.url.clone(), room })
}
