//! `/api/admin/…`: the operator's JSON API, and the `/admin` page's files. Every request needs
//! `Authorization: Bearer TOKEN`; a token in the URL is refused outright (URLs end up in logs,
//! histories and Referer headers). Failed tokens count against the address like failed
//! passwords. Mutations are audited.

// Handlers' helpers return the refusal as the response itself; it is built once per request.
#![allow(clippy::result_large_err)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use shared::snapshot::NetId;
use tokio::sync::oneshot;

use super::{Admin, AdminState, AuditEntry};
use crate::net::context::{NetContext, Operator};
use crate::net::http::{json, json_error, origin_allowed};
use crate::room::input::SimInput;
use crate::room::ops::{RoomAnswer, RoomOp, clean_message};
use crate::room::registry::RoomHandle;

/// How long a room has to answer the operator (a wedged room must not hang the API).
const ROOM_ANSWER_LIMIT: Duration = Duration::from_secs(2);
/// Largest request body.
const MAX_BODY: usize = 4096;

/// The page and the API, for the game port's router (merged by the server's wiring).
pub fn routes<S: Clone + Send + Sync + 'static>(state: Arc<AdminState>) -> Router<S> {
    Router::new()
        .route("/admin", get(super::page::index))
        .route("/admin/admin.js", get(super::page::script))
        .route("/admin/admin.css", get(super::page::style))
        .route("/api/admin/rooms", get(rooms))
        .route("/api/admin/rooms/{code}/kick", post(kick))
        .route("/api/admin/rooms/{code}/close", post(close_room))
        .route("/api/admin/rooms/{code}/bots", post(set_bots))
        .route("/api/admin/broadcast", post(broadcast))
        .route("/api/admin/bans", get(list_bans).post(ban))
        .route("/api/admin/bans/{ip}", delete(unban))
        .route("/api/admin/drain", post(drain))
        .route("/api/admin/audit", get(audit))
        .with_state(state)
}

impl Operator for Admin {
    fn is_banned(&self, ip: IpAddr) -> bool {
        Admin::is_banned(self, ip)
    }

    fn authorize(
        &self,
        net: &NetContext,
        peer: IpAddr,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<(), Response> {
        check_token(net, self, peer, headers, query).map(|_| ())
    }
}

/// The caller's token name and address (the client's, behind a trusted proxy), or the response
/// refusing it.
pub fn authorize(
    ctx: &AdminState,
    peer: IpAddr,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<(String, IpAddr), Response> {
    check_token(&ctx.net, &ctx.admin, peer, headers, query)
}

/// [`authorize`] from its parts (also `/metrics` behind `--metrics-require-token`, through
/// [`Operator`]).
fn check_token(
    ctx: &NetContext,
    admin: &Admin,
    peer: IpAddr,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<(String, IpAddr), Response> {
    let peer = crate::net::http::client_addr(&ctx.config.trusted_proxies, SocketAddr::new(peer, 0), headers).ip();
    if !admin.is_on() {
        return Err(json_error(
            StatusCode::NOT_FOUND,
            "administration is off: start the server with --admin-token (or ARENA_ADMIN_TOKEN)",
        ));
    }
    let in_url = query.is_some_and(|q| {
        q.split('&').any(|pair| {
            let key = pair.split('=').next().unwrap_or("").to_ascii_lowercase();
            key.contains("token") || key == "authorization" || key == "key"
        })
    });
    if in_url {
        return Err(json_error(
            StatusCode::BAD_REQUEST,
            "tokens are never accepted in a URL: send the header Authorization: Bearer TOKEN",
        ));
    }
    if origin_allowed(headers, &ctx.config.allowed_origins, ctx.config.public_url.as_deref()).is_err() {
        return Err(json_error(StatusCode::FORBIDDEN, "the admin API answers this server's own pages only"));
    }
    let key = crate::rate::address_key(peer);
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    // A locked-out address is refused before its token is looked at, the right one too: the
    // lockout must not tell a guesser which of its guesses was right. Wrong tokens are limited
    // apart from players' failed passwords (ten a minute), so the operator behind the same
    // address waits at most a few seconds after a guesser stops.
    if admin.limits.locked_out(key) {
        return Err(retry_later("too many failed tokens from your address; try again in a few seconds"));
    }
    match presented.and_then(|token| admin.authorize(token)) {
        Some(name) => Ok((name.to_string(), peer)),
        None => {
            if presented.is_some() {
                admin.limits.failed(key);
            }
            let mut response = json_error(StatusCode::UNAUTHORIZED, "a valid admin token is required");
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer realm=\"arena-admin\""));
            Err(response)
        }
    }
}

fn retry_later(message: &str) -> Response {
    let mut response = json_error(StatusCode::TOO_MANY_REQUESTS, message);
    response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("10"));
    response
}

/// Authorizes and parses a JSON body (`{}` or empty for no fields).
pub(super) async fn parse<T: DeserializeOwned>(
    ctx: &AdminState,
    peer: IpAddr,
    request: Request,
) -> Result<((String, IpAddr), T), Response> {
    let who = authorize(ctx, peer, request.headers(), request.uri().query())?;
    let body = axum::body::to_bytes(request.into_body(), MAX_BODY)
        .await
        .map_err(|_| json_error(StatusCode::PAYLOAD_TOO_LARGE, "body larger than 4096 bytes"))?;
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &body };
    let value = serde_json::from_slice(body)
        .map_err(|error| json_error(StatusCode::BAD_REQUEST, &format!("invalid request: {error}")))?;
    Ok((who, value))
}

/// Sends `op` to `room` and waits (bounded) for its answer.
async fn ask(room: &RoomHandle, op: RoomOp) -> Result<RoomAnswer, (StatusCode, String)> {
    let (reply, answer) = oneshot::channel();
    let asked = async {
        room.inbox.send(SimInput::Admin { op, reply }).await.map_err(|_| ())?;
        answer.await.map_err(|_| ())
    };
    // Bounded as a whole: a room whose inbox is full or that is wedged does not hang the API.
    match tokio::time::timeout(ROOM_ANSWER_LIMIT, asked).await {
        Ok(Ok(Ok(answer))) => Ok(answer),
        Ok(Ok(Err(message))) => Err((StatusCode::CONFLICT, message)),
        Ok(Err(())) => Err((StatusCode::NOT_FOUND, "the room has closed".to_string())),
        Err(_) => Err((StatusCode::GATEWAY_TIMEOUT, "the room did not answer in 2 s".to_string())),
    }
}

/// Asks every room at once (each bounded by [`ROOM_ANSWER_LIMIT`]).
async fn ask_all(rooms: &[RoomHandle], op: impl Fn() -> RoomOp) -> Vec<Result<RoomAnswer, (StatusCode, String)>> {
    futures_util::future::join_all(rooms.iter().map(|room| ask(room, op()))).await
}

/// Records an operation and turns its outcome into the response.
pub(super) fn audited(
    ctx: &AdminState,
    who: &str,
    peer: IpAddr,
    action: &str,
    target: &str,
    outcome: Result<serde_json::Value, (StatusCode, String)>,
) -> Response {
    ctx.admin.audit(AuditEntry {
        at_ms: crate::stats::unix_ms(),
        who: who.to_string(),
        from: peer.to_string(),
        action: action.to_string(),
        target: target.to_string(),
        outcome: match &outcome {
            Ok(_) => "ok".to_string(),
            Err((_, message)) => message.clone(),
        },
    });
    match outcome {
        Ok(value) => json(StatusCode::OK, &value),
        Err((status, message)) => json_error(status, &message),
    }
}

fn find_room(ctx: &NetContext, code: &str) -> Result<RoomHandle, (StatusCode, String)> {
    ctx.rooms.find(code).ok_or((StatusCode::NOT_FOUND, format!("no room has the code {code:?}")))
}

/// Finds room `code` and asks it `op`; the answer as JSON.
async fn ask_room(ctx: &NetContext, code: &str, op: RoomOp) -> Result<serde_json::Value, (StatusCode, String)> {
    let room = find_room(ctx, code)?;
    ask(&room, op).await.map(|answer| serde_json::to_value(answer).expect("answers serialize"))
}

/// `GET /api/admin/rooms`: the server and every room in detail.
async fn rooms(
    State(ctx): State<Arc<AdminState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    if let Err(response) = authorize(&ctx, peer.ip(), request.headers(), request.uri().query()) {
        return response;
    }
    let mut handles = ctx.rooms.handles();
    let main = ctx.rooms.main_code();
    handles.sort_by_key(|h| (Some(h.public.code) != main, h.public.code));
    let answers = ask_all(&handles, || RoomOp::Inspect).await;
    let rooms: Vec<serde_json::Value> = handles
        .iter()
        .zip(answers)
        .map(|(handle, answer)| match answer {
            Ok(detail) => serde_json::to_value(detail).expect("details serialize"),
            Err((_, error)) => serde_json::json!({ "code": handle.public.code.to_string(), "error": error }),
        })
        .collect();
    json(
        StatusCode::OK,
        &serde_json::json!({
            "server": {
                "version": env!("CARGO_PKG_VERSION"),
                "protocol": shared::PROTOCOL_VERSION,
                "draining": ctx.rooms.drain.is_draining(),
                "drain_seconds_left": ctx.rooms.drain.remaining().map(|d| d.as_secs()),
                "connections": ctx.open_connections.load(std::sync::atomic::Ordering::Relaxed),
                "rooms": rooms.len(),
                "max_rooms": ctx.config.max_rooms,
                "bans": ctx.admin.bans().len(),
            },
            "rooms": rooms,
        }),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KickRequest {
    pub(crate) player: u32,
    #[serde(default)]
    pub(crate) message: Option<String>,
}

/// `POST /api/admin/rooms/CODE/kick {"player": ID, "message": "..."}`.
async fn kick(
    State(ctx): State<Arc<AdminState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(code): Path<String>,
    request: Request,
) -> Response {
    let ((who, from), body): ((String, IpAddr), KickRequest) = match parse(&ctx, peer.ip(), request).await {
        Ok(parsed) => parsed,
        Err(response) => return response,
    };
    let message = body.message.as_deref().and_then(clean_message).unwrap_or_else(|| "removed".to_string());
    let outcome = ask_room(&ctx, &code, RoomOp::Kick { player: NetId(body.player), message }).await;
    audited(&ctx, &who, from, "kick", &format!("room {code} player {}", body.player), outcome)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MessageRequest {
    #[serde(default)]
    pub(crate) message: Option<String>,
    #[serde(default)]
    pub(crate) room: Option<String>,
}

/// `POST /api/admin/rooms/CODE/close {"message": "..."}`.
async fn close_room(
    State(ctx): State<Arc<AdminState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(code): Path<String>,
    request: Request,
) -> Response {
    let ((who, from), body): ((String, IpAddr), MessageRequest) = match parse(&ctx, peer.ip(), request).await {
        Ok(parsed) => parsed,
        Err(response) => return response,
    };
    let message = body.message.as_deref().and_then(clean_message).unwrap_or_else(|| "the room was closed".to_string());
    let outcome = ask_room(&ctx, &code, RoomOp::Close { message }).await;
    audited(&ctx, &who, from, "close_room", &format!("room {code}"), outcome)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BotsRequest {
    bots: u16,
}

/// `POST /api/admin/rooms/CODE/bots {"bots": N}`.
async fn set_bots(
    State(ctx): State<Arc<AdminState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(code): Path<String>,
    request: Request,
) -> Response {
    let ((who, from), body): ((String, IpAddr), BotsRequest) = match parse(&ctx, peer.ip(), request).await {
        Ok(parsed) => parsed,
        Err(response) => return response,
    };
    let outcome = ask_room(&ctx, &code, RoomOp::SetBots { bots: body.bots }).await;
    audited(&ctx, &who, from, "set_bots", &format!("room {code} bots {}", body.bots), outcome)
}

/// `POST /api/admin/broadcast {"message": "...", "room": "CODE"?}`: a notice in one room or all.
async fn broadcast(
    State(ctx): State<Arc<AdminState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let ((who, from), body): ((String, IpAddr), MessageRequest) = match parse(&ctx, peer.ip(), request).await {
        Ok(parsed) => parsed,
        Err(response) => return response,
    };
    let Some(text) = body.message.as_deref().and_then(clean_message) else {
        return json_error(StatusCode::BAD_REQUEST, "message is empty");
    };
    let target = body.room.clone().unwrap_or_else(|| "all rooms".to_string());
    let rooms = match &body.room {
        Some(code) => match find_room(&ctx, code) {
            Ok(room) => vec![room],
            Err(error) => return audited(&ctx, &who, from, "broadcast", &target, Err(error)),
        },
        None => ctx.rooms.handles(),
    };
    let answers = ask_all(&rooms, || RoomOp::Notice { text: format!("Server: {text}") }).await;
    let reached = answers.iter().filter(|answer| answer.is_ok()).count();
    audited(&ctx, &who, from, "broadcast", &target, Ok(serde_json::json!({ "rooms": reached })))
}

/// `GET /api/admin/bans`.
async fn list_bans(
    State(ctx): State<Arc<AdminState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    match authorize(&ctx, peer.ip(), request.headers(), request.uri().query()) {
        Ok(_) => json(StatusCode::OK, &ctx.admin.bans()),
        Err(response) => response,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BanRequest {
    pub(crate) ip: String,
    #[serde(default)]
    pub(crate) reason: Option<String>,
}

/// `POST /api/admin/bans {"ip": "...", "reason": "..."}`: bans the address (an IPv6 /64), saves
/// the list, and closes its connections in every room.
async fn ban(
    State(ctx): State<Arc<AdminState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let ((who, from), body): ((String, IpAddr), BanRequest) = match parse(&ctx, peer.ip(), request).await {
        Ok(parsed) => parsed,
        Err(response) => return response,
    };
    let Ok(ip) = body.ip.trim().parse::<IpAddr>() else {
        return json_error(StatusCode::BAD_REQUEST, "ip must be an IPv4 or IPv6 address");
    };
    if crate::config::is_trusted_proxy(&ctx.config.trusted_proxies, ip) {
        return json_error(StatusCode::BAD_REQUEST, "that is a trusted proxy: banning it would ban everyone behind it");
    }
    let reason = body.reason.as_deref().and_then(clean_message).unwrap_or_default();
    let outcome = match ctx.admin.ban(ip, reason, &who) {
        Ok(ban) => {
            let answers = ask_all(&ctx.rooms.handles(), || RoomOp::KickAddress { ip }).await;
            let closed: u32 = answers
                .iter()
                .filter_map(|answer| match answer {
                    Ok(RoomAnswer::Done { done }) => done.split_whitespace().nth(1)?.parse::<u32>().ok(),
                    _ => None,
                })
                .sum();
            Ok(serde_json::json!({ "ban": ban, "closed_connections": closed }))
        }
        Err(message) => Err((StatusCode::BAD_REQUEST, message)),
    };
    audited(&ctx, &who, from, "ban", &ip.to_string(), outcome)
}

/// `DELETE /api/admin/bans/IP`.
async fn unban(
    State(ctx): State<Arc<AdminState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(ip): Path<String>,
    request: Request,
) -> Response {
    let (who, from) = match authorize(&ctx, peer.ip(), request.headers(), request.uri().query()) {
        Ok(operator) => operator,
        Err(response) => return response,
    };
    let Ok(address) = ip.parse::<IpAddr>() else {
        return json_error(StatusCode::BAD_REQUEST, "not an IP address");
    };
    let outcome = match ctx.admin.unban(address) {
        Ok(true) => Ok(serde_json::json!({ "unbanned": address.to_string() })),
        Ok(false) => Err((StatusCode::NOT_FOUND, format!("{address} is not banned"))),
        Err(message) => Err((StatusCode::INTERNAL_SERVER_ERROR, message)),
    };
    audited(&ctx, &who, from, "unban", &address.to_string(), outcome)
}

/// `POST /api/admin/drain`: starts the drain, as the first SIGTERM does.
async fn drain(
    State(ctx): State<Arc<AdminState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let ((who, from), _): ((String, IpAddr), serde_json::Map<String, serde_json::Value>) =
        match parse(&ctx, peer.ip(), request).await {
            Ok(parsed) => parsed,
            Err(response) => return response,
        };
    let already = ctx.rooms.drain.is_draining() || ctx.drain_request.is_cancelled();
    ctx.drain_request.cancel();
    let outcome = Ok(serde_json::json!({
        "draining": true,
        "already": already,
        "seconds": ctx.config.drain.as_secs(),
    }));
    audited(&ctx, &who, from, "drain", "server", outcome)
}

/// `GET /api/admin/audit`: the newest audit entries (up to 500 kept in memory).
async fn audit(
    State(ctx): State<Arc<AdminState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    match authorize(&ctx, peer.ip(), request.headers(), request.uri().query()) {
        Ok(_) => json(StatusCode::OK, &ctx.admin.recent_audit(500)),
        Err(response) => response,
    }
}
