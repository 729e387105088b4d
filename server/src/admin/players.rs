//! The operator's actions on stored players and seasons (audited like the others):
//! - `POST /api/admin/seasons/end`: ends the current season now and begins the next (its
//!   board is kept as a past season);
//! - `POST /api/admin/players/ID/rated-ban {"banned": true|false}`: keeps a player id out of
//!   rated play (not rated, off every board) or lets it back;
//! - `DELETE /api/admin/players/ID`: erases a player on request (name, standings, identity;
//!   their lines in stored rounds stay as "(erased)" with no id, and their name and chat in
//!   this server's replays of those rounds become "(erased)" too).

#![allow(clippy::result_large_err)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{delete, post};
use serde::Deserialize;

use super::AdminState;
use super::api::{audited, authorize, parse};
use crate::net::boards::is_replay_name;
use crate::replay::erase::Rewrite;
use crate::store::boards::Erased;
use crate::store::db::Store;
use crate::store::record::is_player_id;

pub fn routes() -> Router<Arc<AdminState>> {
    Router::new()
        .route("/api/admin/seasons/end", post(end_season))
        .route("/api/admin/players/{id}/rated-ban", post(rated_ban))
        .route("/api/admin/players/{id}", delete(erase))
}

type Refusal = (StatusCode, String);

fn store(ctx: &AdminState) -> Result<Arc<Store>, Refusal> {
    match ctx.config.store.as_ref().map(|cell| cell.get()) {
        Some(Some(store)) => Ok(store.clone()),
        Some(None) => Err((
            StatusCode::SERVICE_UNAVAILABLE,
            "the database has not answered since the server started; nothing was changed".to_string(),
        )),
        None => Err((StatusCode::NOT_FOUND, "this server keeps no players (started with --no-database)".to_string())),
    }
}

fn checked(id: &str) -> Result<(), Refusal> {
    if is_player_id(id) { Ok(()) } else { Err((StatusCode::BAD_REQUEST, "a player id is 20 hex digits".to_string())) }
}

fn failed(error: String) -> Refusal {
    tracing::warn!(%error, "database write failed");
    (StatusCode::SERVICE_UNAVAILABLE, "the database is not answering; nothing was changed".to_string())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

/// `POST /api/admin/seasons/end`.
async fn end_season(
    State(ctx): State<Arc<AdminState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let ((who, from), Empty {}): ((String, IpAddr), Empty) = match parse(&ctx, peer.ip(), request).await {
        Ok(parsed) => parsed,
        Err(response) => return response,
    };
    let outcome = async {
        let (ended, current) = store(&ctx)?.end_season().await.map_err(failed)?;
        Ok(serde_json::json!({ "ended": ended, "current": current }))
    }
    .await;
    let target = match &outcome {
        Ok(value) => format!("season {}", value["ended"]["season"]),
        Err(_) => "the current season".to_string(),
    };
    audited(&ctx, &who, from, "end_season", &target, outcome)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RatedBan {
    banned: bool,
}

/// `POST /api/admin/players/ID/rated-ban {"banned": BOOL}`.
async fn rated_ban(
    State(ctx): State<Arc<AdminState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let ((who, from), body): ((String, IpAddr), RatedBan) = match parse(&ctx, peer.ip(), request).await {
        Ok(parsed) => parsed,
        Err(response) => return response,
    };
    let outcome = async {
        checked(&id)?;
        match store(&ctx)?.set_rated_ban(&id, body.banned).await.map_err(failed)? {
            true => Ok(serde_json::json!({ "player": id, "banned": body.banned })),
            false => Err((StatusCode::NOT_FOUND, "no player has that id".to_string())),
        }
    }
    .await;
    let action = if body.banned { "rated_ban" } else { "rated_unban" };
    audited(&ctx, &who, from, action, &format!("player {}", printable(&id)), outcome)
}

/// `DELETE /api/admin/players/ID`.
async fn erase(
    State(ctx): State<Arc<AdminState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let (who, from) = match authorize(&ctx, peer.ip(), request.headers(), request.uri().query()) {
        Ok(operator) => operator,
        Err(response) => return response,
    };
    let outcome = async {
        checked(&id)?;
        let Some(erased) = store(&ctx)?.erase_player(&id).await.map_err(failed)? else {
            return Err((StatusCode::NOT_FOUND, "no player has that id".to_string()));
        };
        let replays = erase_from_replays(ctx.config.replay_dir.clone(), erased).await;
        Ok(serde_json::json!({ "player": id, "erased": true, "replays": replays }))
    }
    .await;
    audited(&ctx, &who, from, "erase_player", &format!("player {}", printable(&id)), outcome)
}

/// Rewrites the erased player's replays in this server's replay directory (their name and chat
/// become "(erased)"); says how many were rewritten, were not here (retention, or recorded by
/// another server of the fleet) and failed, each failure logged.
async fn erase_from_replays(dir: Option<std::path::PathBuf>, erased: Erased) -> serde_json::Value {
    let (mut rewritten, mut missing, mut failed) = (0, 0, 0);
    if let Some(dir) = dir {
        let outcomes = tokio::task::spawn_blocking(move || {
            erased
                .replays
                .iter()
                .map(|replay| {
                    if !is_replay_name(&replay.file) {
                        return Err(format!("not a replay's name: {:?}", replay.file));
                    }
                    crate::replay::erase::erase(&dir.join(&replay.file), &replay.net_ids, &replay.names)
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_else(|panic| vec![Err(format!("the rewrite stopped: {panic}"))]);
        for outcome in outcomes {
            match outcome {
                Ok(Rewrite::Rewritten { .. }) => rewritten += 1,
                Ok(Rewrite::Untouched) => {}
                Ok(Rewrite::Missing) => missing += 1,
                Err(why) => {
                    tracing::error!("erasing a player from a replay: {why}");
                    failed += 1;
                }
            }
        }
    } else {
        missing = erased.replays.len();
    }
    serde_json::json!({ "rewritten": rewritten, "not_here": missing, "failed": failed })
}

/// A path segment as the audit log may hold it (an id, or a short mark of what it was not).
fn printable(id: &str) -> String {
    if is_player_id(id) { id.to_string() } else { format!("(not an id, {} bytes)", id.len()) }
}
