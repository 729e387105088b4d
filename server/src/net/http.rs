//! HTTP on the game port: `/ws` upgrades to a player connection, `/healthz` answers 200, and
//! everything else is the embedded browser client.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tracing::debug;

use super::assets;
use super::connection::{self, NetContext};

pub fn router(ctx: Arc<NetContext>) -> Router {
    Router::new()
        .route("/ws", get(upgrade))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .fallback(get(static_file))
        .with_state(ctx)
}

/// Performs the WebSocket handshake (RFC 6455 §4.2) and hands the upgraded socket to a
/// connection task tracked for shutdown.
async fn upgrade(
    State(ctx): State<Arc<NetContext>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
) -> Response {
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
    if !ctx.try_open() {
        return (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, "5")], "too many connections\n")
            .into_response();
    }
    let on_upgrade = hyper::upgrade::on(&mut request);
    let task_ctx = ctx.clone();
    ctx.tracker.spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(connection::ws_config()),
                )
                .await;
                connection::serve(ws, peer, task_ctx).await;
            }
            Err(error) => {
                task_ctx.open_connections.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
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

/// Prometheus text exposition of the room's figures.
async fn metrics(State(ctx): State<Arc<NetContext>>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], ctx.stats.render_prometheus())
        .into_response()
}

/// Serves an embedded file, gzip-compressed when the browser accepts it.
async fn static_file(request_headers: HeaderMap, request: Request) -> Response {
    let Some(asset) = assets::find(request.uri().path()) else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
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
        .header("x-content-type-options", "nosniff");
    let body = match (asset.gzip, accepts_gzip) {
        (Some(gzip), true) => {
            builder = builder.header(header::CONTENT_ENCODING, "gzip");
            gzip
        }
        _ => asset.raw,
    };
    builder.body(Body::from(body)).expect("static headers are valid")
}
