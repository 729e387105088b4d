//! HTTP on the game port: `/ws` upgrades to a player connection, `/api/rooms` and `/api/maps`
//! are the lobby's JSON API, `/api/lan` and `/api/lan/qr.svg` the LAN invite (URLs, QR code,
//! other servers), `/healthz` answers 200, `/metrics` is Prometheus text, `/r/CODE` is
//! an invite link (the client page), and everything else is the embedded browser client.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::TokioIo;
use shared::room::{CreatedRoom, RoomSettings, host_key_hex};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tracing::debug;

use super::assets;
use super::connection;
use super::context::{NetContext, Refused};
use super::socket::PlayerSocket;
use super::ws;

/// The game port's routes; `shells` are the routes of the layers above `net` (the admin page and
/// API, the LAN invite), merged in by the server's wiring before the static files' fallback.
pub fn router(ctx: Arc<NetContext>, shells: Router<Arc<NetContext>>) -> Router {
    Router::new()
        .route("/ws", get(upgrade))
        .route("/livez", get(livez))
        .route("/healthz", get(livez))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/rooms", get(list_rooms).post(create_room))
        .route("/api/rooms/{code}", get(get_room))
        .route("/api/maps", get(list_maps))
        .route("/r/{code}", get(invite_page))
        .merge(shells)
        .fallback(get(static_file))
        .with_state(ctx)
}

/// The client's address: the peer's, unless the peer is a trusted proxy (`--trusted-proxy`);
/// then the right-most `X-Forwarded-For` entry that is not itself a trusted proxy (entries to
/// its left could have been written by the client).
pub fn client_addr(trusted: &[crate::config::ProxyNet], peer: SocketAddr, headers: &HeaderMap) -> SocketAddr {
    let is_trusted = |ip: std::net::IpAddr| crate::config::is_trusted_proxy(trusted, ip);
    if !is_trusted(peer.ip()) {
        return peer;
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for entry in forwarded.iter().rev() {
        let Ok(ip) = entry.parse::<std::net::IpAddr>() else { return peer };
        if !is_trusted(ip) {
            return SocketAddr::new(ip, 0);
        }
    }
    peer
}

/// A request under the base path (`/gs/NAME/ws` when a proxy routes by path and keeps the
/// prefix) as the routes know it (`/ws`); other requests pass as they are, so a proxy that strips
/// the prefix works too.
pub fn strip_base_path(base: &str, mut request: Request) -> Request {
    if base == "/" {
        return request;
    }
    let path = request.uri().path();
    let rest = if path == base.trim_end_matches('/') { Some("") } else { path.strip_prefix(base) };
    if let Some(rest) = rest {
        let query = request.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
        if let Ok(uri) = format!("/{rest}{query}").parse() {
            *request.uri_mut() = uri;
        }
    }
    request
}

/// Performs the WebSocket handshake (RFC 6455 §4.2) and hands the upgraded socket to a
/// connection task tracked for shutdown.
async fn upgrade(
    State(ctx): State<Arc<NetContext>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
) -> Response {
    let peer = client_addr(&ctx.config.trusted_proxies, peer, request.headers());
    let headers = request.headers();
    let has_token = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|part| part.trim().eq_ignore_ascii_case(token)))
    };
    if !has_token(header::UPGRADE, "websocket") || !has_token(header::CONNECTION, "upgrade") {
        return (StatusCode::UPGRADE_REQUIRED, [(header::UPGRADE, "websocket")], "this endpoint speaks WebSocket\n")
            .into_response();
    }
    if let Err(origin) = origin_allowed(headers, &ctx.config.allowed_origins, ctx.config.public_url.as_deref()) {
        debug!(%peer, %origin, "WebSocket from another site's page refused");
        return (
            StatusCode::FORBIDDEN,
            "this game only accepts connections from its own pages (see --allowed-origin)\n",
        )
            .into_response();
    }
    if headers.get(header::SEC_WEBSOCKET_VERSION).map(|v| v.as_bytes()) != Some(b"13") {
        return (StatusCode::BAD_REQUEST, [(header::SEC_WEBSOCKET_VERSION, "13")], "unsupported WebSocket version\n")
            .into_response();
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return (StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key\n").into_response();
    };
    let accept = derive_accept_key(key.as_bytes());
    if ctx.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "server is shutting down\n").into_response();
    }
    match ctx.try_open(peer.ip()) {
        Ok(()) => {}
        Err(Refused::ServerFull) => {
            return (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, "5")], "too many connections\n")
                .into_response();
        }
        Err(Refused::TooManyFromAddress) => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, "5")],
                "too many connections from your address (--max-connections-per-ip)\n",
            )
                .into_response();
        }
    }
    let on_upgrade = hyper::upgrade::on(&mut request);
    let task_ctx = ctx.clone();
    ctx.tracker.spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                // A plain TCP connection (see `net::listen::serve_plain`) is taken back from hyper, so that
                // after the join it can leave the reactor (`net::polled`); TLS stays upgraded.
                let socket = match upgraded.downcast::<TokioIo<TcpStream>>() {
                    Ok(parts) => PlayerSocket::Tcp { stream: parts.io.into_inner(), prefix: parts.read_buf },
                    Err(upgraded) => PlayerSocket::Upgraded(TokioIo::new(upgraded)),
                };
                let ws = WebSocketStream::from_raw_socket(socket, Role::Server, Some(ws::ws_config())).await;
                connection::serve(ws, peer, task_ctx).await;
            }
            Err(error) => {
                task_ctx.release(peer.ip());
                debug!(%peer, %error, "upgrade failed");
            }
        }
    });
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let response_headers = response.headers_mut();
    response_headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    response_headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    response_headers
        .insert(header::SEC_WEBSOCKET_ACCEPT, HeaderValue::from_str(&accept).expect("base64 is a valid header value"));
    response
}

/// A browser request says which page sent it (`Origin`): allowed when it is this server's own
/// page, or `--public-url`'s, or listed in `--allowed-origin`; without `Origin` (bots, tools) it
/// is not a browser page and is allowed. Refusing the rest stops a hostile web page from driving
/// a visitor's browser into a LAN server. "Own page" means the same host and port as the
/// request's `Host`, and that host must be one this server answers to by design (an IP address,
/// `localhost`, a `.local` mDNS name, or `--public-url`'s host): a hostile site whose name was
/// re-pointed at the server (DNS rebinding) matches its own Host but is none of those. A server
/// reached by another DNS name sets `--public-url` to it. `Err`: the origin.
pub fn origin_allowed(headers: &HeaderMap, allowed: &[String], public_url: Option<&str>) -> Result<(), String> {
    let Some(origin) = headers.get(header::ORIGIN) else { return Ok(()) };
    let origin = origin.to_str().unwrap_or("").trim().to_ascii_lowercase();
    let authority = |url: &str| -> Option<String> {
        let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"))?;
        Some(rest.split('/').next().unwrap_or("").to_ascii_lowercase())
    };
    let public = public_url.and_then(authority);
    if public.is_some() && authority(&origin) == public {
        return Ok(());
    }
    if allowed.iter().any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(&origin)) {
        return Ok(());
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).map(|h| h.trim().to_ascii_lowercase());
    let same_site = authority(&origin).is_some_and(|a| Some(&a) == host.as_ref());
    let known_name = host.as_deref().is_some_and(|host| {
        let name = host
            .rsplit_once(':')
            .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
            .map_or(host, |(name, _)| name);
        let name = name.trim_start_matches('[').trim_end_matches(']');
        name.parse::<std::net::IpAddr>().is_ok()
            || name == "localhost"
            || name.ends_with(".local")
            || public.as_deref().is_some_and(|p| p.split(':').next() == Some(name))
    });
    if same_site && known_name { Ok(()) } else { Err(origin) }
}

/// Prometheus text exposition of every live room's figures; not on the game port when the host
/// moved it elsewhere with `--metrics-bind`.
async fn metrics(
    State(ctx): State<Arc<NetContext>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    if ctx.config.metrics_bind.is_some() {
        return (StatusCode::NOT_FOUND, "metrics are served on --metrics-bind\n").into_response();
    }
    guarded_metrics(&ctx, peer, &request)
}

/// `/metrics`, behind the admin token when the host asked for that (`--metrics-require-token`).
fn guarded_metrics(ctx: &NetContext, peer: SocketAddr, request: &Request) -> Response {
    let peer = client_addr(&ctx.config.trusted_proxies, peer, request.headers());
    if ctx.config.metrics_require_token
        && let Err(refused) = ctx.operator.authorize(ctx, peer.ip(), request.headers(), request.uri().query())
    {
        return refused;
    }
    metrics_text(ctx)
}

/// The router of `--metrics-bind`: `/metrics` only.
pub fn metrics_router(ctx: Arc<NetContext>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(ctx): State<Arc<NetContext>>, ConnectInfo(peer): ConnectInfo<SocketAddr>, request: Request| async move {
                guarded_metrics(&ctx, peer, &request)
            }),
        )
        .with_state(ctx)
}

fn metrics_text(ctx: &NetContext) -> Response {
    let text = crate::metrics::encode(&ctx.metrics);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

pub fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    let body = serde_json::to_vec(value).expect("API types serialize");
    (status, [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")], body).into_response()
}

pub fn json_error(status: StatusCode, message: &str) -> Response {
    json(status, &serde_json::json!({ "error": message }))
}

/// `GET /api/rooms`: the public rooms.
async fn list_rooms(State(ctx): State<Arc<NetContext>>) -> Response {
    json(StatusCode::OK, &ctx.rooms.list_public())
}

/// `GET /api/rooms/CODE`: any live room, private ones included (the code is the secret).
async fn get_room(
    State(ctx): State<Arc<NetContext>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(code): Path<String>,
) -> Response {
    let peer = client_addr(&ctx.config.trusted_proxies, peer, &headers).ip();
    // Past the limit every lookup is refused, found or not: a 200 would still tell a sweep where
    // a private room is.
    if ctx.code_misses.exhausted(peer) {
        let mut response = json_error(
            StatusCode::TOO_MANY_REQUESTS,
            "too many unknown room codes from your address; try again in a minute",
        );
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
        return response;
    }
    match ctx.rooms.find(&code) {
        Some(room) => json(StatusCode::OK, &room.public.summary()),
        None => {
            ctx.code_misses.take(peer);
            json_error(StatusCode::NOT_FOUND, "no room has that code")
        }
    }
}

/// `GET /api/maps`: the maps a room can be created with.
async fn list_maps(State(ctx): State<Arc<NetContext>>) -> Response {
    let maps: Vec<_> = ctx.rooms.maps.iter().map(|map| serde_json::json!({ "id": map.id, "name": map.name })).collect();
    json(StatusCode::OK, &maps)
}

/// `GET /livez` (and `/healthz`): 200 while the process serves and every room with players keeps
/// ticking; 503 naming the rooms whose tick loop has not run for 5 s (a wedged room).
async fn livez(State(ctx): State<Arc<NetContext>>) -> Response {
    let stuck = ctx.rooms.stuck_rooms(std::time::Duration::from_secs(5));
    if stuck.is_empty() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        // Counted, not named: a private room's code is its secret.
        (StatusCode::SERVICE_UNAVAILABLE, format!("{} room(s) with players not ticking\n", stuck.len())).into_response()
    }
}

/// `GET /readyz`: 200 while accepting players; 503 while starting and while draining.
async fn readyz(State(ctx): State<Arc<NetContext>>) -> Response {
    if ctx.rooms.drain.is_draining() {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response();
    }
    if !ctx.ready.load(std::sync::atomic::Ordering::Relaxed) || ctx.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response();
    }
    (StatusCode::OK, "ready\n").into_response()
}

/// Largest `POST /api/rooms` body accepted.
const MAX_CREATE_BODY: usize = 4096;

/// `POST /api/rooms`: creates a room from a JSON [`RoomSettings`] body; 201 with its code and
/// host key, 400 for bad JSON or settings, 429 (with `Retry-After`) past the per-address create
/// rate, 503 at `--max-rooms` or while shutting down.
async fn create_room(
    State(ctx): State<Arc<NetContext>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    use crate::room::registry::CreateError;
    let peer = client_addr(&ctx.config.trusted_proxies, peer, request.headers());
    // Another site's page may not create rooms in a visitor's name (as for the WebSocket).
    if origin_allowed(request.headers(), &ctx.config.allowed_origins, ctx.config.public_url.as_deref()).is_err() {
        return json_error(StatusCode::FORBIDDEN, "rooms can only be created from this server's own pages");
    }
    if ctx.operator.is_banned(peer.ip()) {
        return json_error(StatusCode::FORBIDDEN, "this address is banned from the server");
    }
    // On a server that admits only some players, rooms are created by joining (the hello carries
    // the password or token), never anonymously through the API.
    if !ctx.config.gate.is_open() {
        return json_error(
            StatusCode::FORBIDDEN,
            "this server admits players with a password or join token only: create rooms from the game page",
        );
    }
    let body = match axum::body::to_bytes(request.into_body(), MAX_CREATE_BODY).await {
        Ok(body) => body,
        Err(_) => return json_error(StatusCode::PAYLOAD_TOO_LARGE, "body larger than 4096 bytes"),
    };
    let settings: RoomSettings = if body.iter().all(u8::is_ascii_whitespace) {
        RoomSettings::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(settings) => settings,
            Err(error) => return json_error(StatusCode::BAD_REQUEST, &format!("invalid room settings: {error}")),
        }
    };
    match ctx.rooms.create(settings, Some(peer.ip())) {
        Ok((room, key)) => {
            let created =
                CreatedRoom { code: room.public.code, host_key: host_key_hex(&key), room: room.public.summary() };
            json(StatusCode::CREATED, &created)
        }
        Err(CreateError::RateLimited) => {
            let seconds = (60 / ctx.config.room_creates_per_minute.max(1)).max(1).to_string();
            let mut response = json_error(StatusCode::TOO_MANY_REQUESTS, "creating rooms too fast; try again later");
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_str(&seconds).expect("digits"));
            response
        }
        Err(CreateError::BadSettings(why)) => {
            json_error(StatusCode::BAD_REQUEST, &format!("invalid room settings: {why}"))
        }
        Err(error @ (CreateError::TooManyRooms { .. } | CreateError::ShuttingDown)) => {
            json_error(StatusCode::SERVICE_UNAVAILABLE, &error.to_string())
        }
    }
}

/// `GET /r/CODE`: the client page; it reads the code from the address and joins that room.
async fn invite_page(State(ctx): State<Arc<NetContext>>, request_headers: HeaderMap) -> Response {
    serve_asset("/index.html", &request_headers, &ctx.config.frame_ancestors, &ctx.config.base_path())
}

/// Serves an embedded file, gzip-compressed when the browser accepts it.
async fn static_file(State(ctx): State<Arc<NetContext>>, request_headers: HeaderMap, request: Request) -> Response {
    serve_asset(request.uri().path(), &request_headers, &ctx.config.frame_ancestors, &ctx.config.base_path())
}

/// The page's Content-Security-Policy: only this server's own scripts, styles, images (the QR
/// codes), WebAssembly and WebSocket; no plugins, no base or form tricks; framed only by
/// `frame_ancestors` (`--frame-ancestors`, none by default).
pub fn content_security_policy(frame_ancestors: &str) -> String {
    format!(
        "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; base-uri 'none'; form-action 'none'; object-src 'none'; frame-ancestors {frame_ancestors}"
    )
}

/// A small page or script built into the binary (the boards, the fleet lobby), served with no
/// caching, no sniffing, no referrer, and a policy that allows no framing.
pub fn built_in_text(mime: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, mime.to_string()),
            (header::CACHE_CONTROL, "no-cache".to_string()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
            (header::REFERRER_POLICY, "no-referrer".to_string()),
            (header::CONTENT_SECURITY_POLICY, content_security_policy("'none'")),
        ],
        body,
    )
        .into_response()
}

/// The page and its loader with their absolute paths moved under `base` (a proxy routes this
/// server by a path prefix), and the page told its base (`<meta name="arena-base">`) so the
/// client's requests and WebSocket go there too. `None`: serve the file as built.
fn rebased(asset: &assets::WebAsset, base: &str) -> Option<Vec<u8>> {
    if base == "/" || !matches!(asset.path, "/index.html" | "/main.js") {
        return None;
    }
    let text = std::str::from_utf8(asset.raw).ok()?;
    let text = if asset.path == "/index.html" {
        text.replace("href=\"/", &format!("href=\"{base}")).replace("src=\"/", &format!("src=\"{base}")).replacen(
            "<head>",
            &format!("<head>\n  <meta name=\"arena-base\" content=\"{base}\">"),
            1,
        )
    } else {
        text.replace("from '/", &format!("from '{base}"))
    };
    Some(text.into_bytes())
}

fn serve_asset(path: &str, request_headers: &HeaderMap, frame_ancestors: &str, base: &str) -> Response {
    let Some(asset) = assets::find(path) else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    let rebased = rebased(asset, base);
    let accepts_gzip = request_headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|part| part.trim().starts_with("gzip")));
    // index.html must be revalidated so a rebuilt client is picked up; the rest may be cached
    // briefly (names are stable across builds, so not forever).
    let cache = if asset.path == "/index.html" { "no-cache" } else { "public, max-age=300" };
    let mut builder = Response::builder()
        .header(header::CONTENT_TYPE, asset.mime)
        .header(header::CACHE_CONTROL, cache)
        .header(header::VARY, "Accept-Encoding")
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "no-referrer");
    if asset.mime.starts_with("text/html") {
        builder = builder.header("content-security-policy", content_security_policy(frame_ancestors));
    }
    let body = match (rebased, asset.gzip, accepts_gzip) {
        (Some(rebased), _, _) => Body::from(rebased),
        (None, Some(gzip), true) => {
            builder = builder.header(header::CONTENT_ENCODING, "gzip");
            Body::from(gzip)
        }
        _ => Body::from(asset.raw),
    };
    builder.body(body).expect("static headers are valid")
}
