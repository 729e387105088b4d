//! The boards and profiles over HTTP, read from the database (`config.store`):
//! - `GET /api/leaderboard?board=rating|score&season=current|all|N&around=ID&offset=N&limit=N`:
//!   a page of a board (at most 100 lines; `around` centres it on a player; the current season
//!   unless `season` says otherwise);
//! - `GET /api/seasons`: the seasons, newest first (their dates; past ones keep their boards);
//! - `GET /api/replays/NAME`: a stored round's replay file, as profiles and rounds link it;
//! - `GET /api/players/ID`: a player's rating, rank, totals and last rounds (with their replays);
//! - `GET /api/rounds/ID`: a stored round, every player's line and rating change;
//! - `GET /leaderboard`: the page that shows them, refreshed while rounds end.
//!
//! Bad parameters are a 400 that says which; an unknown id a 404; no database a 404 that says
//! so; a database that fails a 503. Names are peers' text: the page renders them as text.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::context::NetContext;
use super::http::{json, json_error};
use crate::store::db::{Board, SeasonPick};
use crate::store::record::{is_player_id, is_round_id};

/// Most lines in one page of a board.
pub const MAX_PAGE: u64 = 100;
/// Deepest offset asked for (a million players deep is the bench's board).
pub const MAX_OFFSET: u64 = 100_000_000;
/// Rounds listed in a profile.
pub const RECENT_ROUNDS: u64 = 20;

pub fn routes() -> Router<Arc<NetContext>> {
    Router::new()
        .route("/api/leaderboard", get(leaderboard))
        .route("/api/players/{id}", get(player))
        .route("/api/rounds/{id}", get(round))
        .route("/api/seasons", get(seasons))
        .route("/api/replays/{name}", get(replay))
        .route("/leaderboard", get(page))
        .route("/leaderboard.js", get(script))
}

/// The database, or why there is none: started without one (404), or not reachable yet (503).
fn open_store(ctx: &NetContext) -> Result<&Arc<crate::store::db::Store>, (StatusCode, &'static str)> {
    match ctx.config.store.as_ref().map(|cell| cell.get()) {
        Some(Some(store)) => Ok(store),
        Some(None) => Err((
            StatusCode::SERVICE_UNAVAILABLE,
            "the database has not answered since the server started; try again shortly",
        )),
        None => Err((StatusCode::NOT_FOUND, "this server keeps no boards (started with --no-database)")),
    }
}

fn failed(error: String) -> Response {
    tracing::warn!(%error, "database read failed");
    json_error(StatusCode::SERVICE_UNAVAILABLE, "the database is not answering; try again shortly")
}

/// What a board request asks for, checked.
#[derive(Debug, PartialEq, Eq)]
pub struct BoardQuery {
    pub board: Board,
    pub season: SeasonPick,
    pub around: Option<String>,
    pub offset: u64,
    pub limit: u64,
}

/// Reads `/api/leaderboard`'s parameters; the error names the bad one.
pub fn board_query(params: &HashMap<String, String>) -> Result<BoardQuery, String> {
    let number = |key: &str, default: u64, max: u64| -> Result<u64, String> {
        match params.get(key) {
            None => Ok(default),
            Some(text) => match text.parse::<u64>() {
                Ok(value) if value <= max => Ok(value),
                _ => Err(format!("{key}: a whole number 0..={max}, got {text:?}")),
            },
        }
    };
    let board = match params.get("board").map(String::as_str) {
        None => Board::Rating,
        Some(name) => Board::parse(name).ok_or_else(|| "board: rating or score".to_string())?,
    };
    let season = match params.get("season") {
        None => SeasonPick::Current,
        Some(text) => {
            SeasonPick::parse(text).ok_or_else(|| format!("season: current, all or a season's number, got {text:?}"))?
        }
    };
    let around = match params.get("around") {
        Some(id) if is_player_id(id) => Some(id.clone()),
        Some(_) => return Err("around: a player id (20 hex digits)".to_string()),
        None => None,
    };
    let limit = number("limit", MAX_PAGE, MAX_PAGE)?;
    if limit == 0 {
        return Err("limit: 1..=100".to_string());
    }
    Ok(BoardQuery { board, season, around, offset: number("offset", 0, MAX_OFFSET)?, limit })
}

async fn leaderboard(State(ctx): State<Arc<NetContext>>, Query(params): Query<HashMap<String, String>>) -> Response {
    let store = match open_store(&ctx) {
        Ok(store) => store,
        Err((status, why)) => return json_error(status, why),
    };
    let query = match board_query(&params) {
        Ok(query) => query,
        Err(why) => return json_error(StatusCode::BAD_REQUEST, &why),
    };
    match store.season_board(query.board, query.season, query.around.as_deref(), query.offset, query.limit).await {
        Ok(page) => json(StatusCode::OK, &page),
        Err(error) if error == "no such season" => json_error(StatusCode::NOT_FOUND, "no season has that number"),
        Err(error) => failed(error),
    }
}

async fn seasons(State(ctx): State<Arc<NetContext>>) -> Response {
    let store = match open_store(&ctx) {
        Ok(store) => store,
        Err((status, why)) => return json_error(status, why),
    };
    match store.seasons_list(1000).await {
        Ok(seasons) => {
            json(StatusCode::OK, &serde_json::json!({ "length": store.seasons.to_string(), "seasons": seasons }))
        }
        Err(error) => failed(error),
    }
}

/// Whether `name` is a replay file's name as the recorder makes them (no path, no dots but the
/// extension's).
pub fn is_replay_name(name: &str) -> bool {
    name.strip_suffix(".arenareplay").is_some_and(|stem| {
        (1..=120).contains(&stem.len()) && stem.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// Largest replay served (the recorder's files are far smaller).
const MAX_REPLAY_BYTES: u64 = 256 << 20;

async fn replay(State(ctx): State<Arc<NetContext>>, Path(name): Path<String>) -> Response {
    if !is_replay_name(&name) {
        return json_error(StatusCode::BAD_REQUEST, "not a replay's name");
    }
    let Some(dir) = ctx.config.replay_dir.as_ref() else {
        return json_error(StatusCode::NOT_FOUND, "this server records no replays");
    };
    let path = dir.join(&name);
    match tokio::fs::metadata(&path).await {
        Ok(meta) if meta.len() > MAX_REPLAY_BYTES => {
            return json_error(StatusCode::PAYLOAD_TOO_LARGE, "that replay is too large to serve here");
        }
        Ok(meta) if meta.is_file() => {}
        _ => return json_error(StatusCode::NOT_FOUND, "no such replay (retention may have removed it)"),
    }
    match tokio::fs::read(&path).await {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
            ],
            bytes,
        )
            .into_response(),
        Err(_) => json_error(StatusCode::NOT_FOUND, "no such replay (retention may have removed it)"),
    }
}

async fn player(State(ctx): State<Arc<NetContext>>, Path(id): Path<String>) -> Response {
    let store = match open_store(&ctx) {
        Ok(store) => store,
        Err((status, why)) => return json_error(status, why),
    };
    if !is_player_id(&id) {
        return json_error(StatusCode::BAD_REQUEST, "a player id is 20 hex digits");
    }
    match store.profile(&id, RECENT_ROUNDS).await {
        Ok(Some(profile)) => json(StatusCode::OK, &profile),
        Ok(None) => json_error(StatusCode::NOT_FOUND, "no player has that id"),
        Err(error) => failed(error),
    }
}

async fn round(State(ctx): State<Arc<NetContext>>, Path(id): Path<String>) -> Response {
    let store = match open_store(&ctx) {
        Ok(store) => store,
        Err((status, why)) => return json_error(status, why),
    };
    if !is_round_id(&id) {
        return json_error(StatusCode::BAD_REQUEST, "a round id is 32 hex digits");
    }
    match store.round(&id).await {
        Ok(Some(round)) => json(StatusCode::OK, &round),
        Ok(None) => json_error(StatusCode::NOT_FOUND, "no round has that id"),
        Err(error) => failed(error),
    }
}

const PAGE: &str = include_str!("page/leaderboard.html");
const SCRIPT: &str = include_str!("page/leaderboard.js");

async fn page() -> Response {
    super::http::built_in_text("text/html; charset=utf-8", PAGE)
}

async fn script() -> Response {
    super::http::built_in_text("text/javascript; charset=utf-8", SCRIPT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn board_parameters_are_bounded_and_bad_ones_named() {
        let defaults = board_query(&params(&[])).unwrap();
        assert_eq!(
            defaults,
            BoardQuery { board: Board::Rating, season: SeasonPick::Current, around: None, offset: 0, limit: 100 }
        );
        let all = board_query(&params(&[("season", "all")])).unwrap();
        assert_eq!(all.season, SeasonPick::AllTime);
        assert_eq!(board_query(&params(&[("season", "3")])).unwrap().season, SeasonPick::Number(3));
        let score = board_query(&params(&[("board", "score"), ("limit", "10"), ("offset", "20")])).unwrap();
        assert_eq!((score.board, score.offset, score.limit), (Board::Score, 20, 10));
        for (bad, named) in [
            (vec![("limit", "101")], "limit"),
            (vec![("limit", "0")], "limit"),
            (vec![("limit", "-5")], "limit"),
            (vec![("offset", "-1")], "offset"),
            (vec![("offset", "99999999999999999999")], "offset"),
            (vec![("board", "kills")], "board"),
            (vec![("around", "' OR 1=1 --")], "around"),
            (vec![("season", "0")], "season"),
            (vec![("season", "-2")], "season"),
            (vec![("season", "last week")], "season"),
        ] {
            let error = board_query(&params(&bad)).unwrap_err();
            assert!(error.starts_with(named), "{bad:?}: {error}");
        }
        assert!(is_replay_name("ABCD-r3-20261207T120000Z.arenareplay"));
        for bad in
            ["../arena.db", "a/b.arenareplay", ".arenareplay", "x.arenareplay.gz", "..arenareplay", "a b.arenareplay"]
        {
            assert!(!is_replay_name(bad), "{bad}");
        }
    }
}
