//! The database: SQLite by default (a file beside the server's other data, made on first start)
//! or PostgreSQL (`--database postgres://…`, so a fleet shares one set of players and boards),
//! through `sqlx`'s `Any` driver and one set of portable SQL. Versioned migrations
//! (`server/migrations/`) run at start; a database with a newer schema than this binary is
//! refused with the reason, and a file that is not a database is an error, never replaced.
//!
//! Writing a round is one transaction: the round's row goes in first (`ON CONFLICT DO
//! NOTHING`), so a round stored twice (a retry, the spool replayed after a crash) counts once;
//! then the rated players' ratings are read (locked, on PostgreSQL, in id order) and updated.

use std::time::Duration;

use serde::Serialize;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use super::rating::{Rating, RatingRules, rate, rated_players};
use super::record::{RatedPlayer, RoundRecord};

/// The schema, one file per version, in order. Statements end with `;` at a line's end (no `;`
/// in comments).
const MIGRATIONS: [&str; 1] = [include_str!("../../migrations/0001_players_and_rounds.sql")];

/// Which engine the URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// An open database.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    pub backend: Backend,
    pub rules: RatingRules,
}

/// Which board.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Board {
    /// By conservative rating (rated players only).
    Rating,
    /// By total score.
    Score,
}

impl Board {
    pub fn parse(text: &str) -> Option<Board> {
        match text {
            "rating" => Some(Board::Rating),
            "score" => Some(Board::Score),
            _ => None,
        }
    }
}

/// One line of a board.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BoardLine {
    pub rank: u64,
    pub player: String,
    pub name: String,
    pub rating: f64,
    pub score: i64,
    pub rounds: i64,
    pub wins: i64,
}

/// A page of a board.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BoardPage {
    pub board: &'static str,
    pub total: u64,
    pub lines: Vec<BoardLine>,
}

/// A player's profile.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Profile {
    pub player: String,
    pub name: String,
    pub rating: f64,
    pub mu: f64,
    pub sigma: f64,
    /// Place on the rating board (`None` before a rated round).
    pub rank: Option<u64>,
    pub rated_rounds: i64,
    pub rounds: i64,
    pub wins: i64,
    pub score: i64,
    pub kills: i64,
    pub deaths: i64,
    pub recent: Vec<RecentRound>,
}

/// A round in a profile.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RecentRound {
    pub round_id: String,
    pub ended_unix_ms: i64,
    pub place: i64,
    pub players: i64,
    pub score: i64,
    pub rating_change: Option<f64>,
    pub replay: Option<String>,
}

/// A stored round, as `/api/rounds/ID` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RoundView {
    pub round_id: String,
    pub server: String,
    pub room: String,
    pub round: i64,
    pub map: String,
    pub ended_unix_ms: i64,
    pub why: String,
    pub seconds: i64,
    pub replay: Option<String>,
    pub rated: bool,
    pub players: Vec<RoundLine>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RoundLine {
    pub place: i64,
    pub player: Option<String>,
    pub name: String,
    pub bot: bool,
    pub left: bool,
    pub score: i64,
    pub kills: i64,
    pub deaths: i64,
    pub orbs: i64,
    pub shots: i64,
    pub hits: i64,
    pub seconds_played: i64,
    pub rating_before: Option<f64>,
    pub rating_after: Option<f64>,
}

fn db_error(error: sqlx::Error) -> String {
    error.to_string()
}

impl Store {
    /// Opens (SQLite: creates on first start) and migrates the database at `url`
    /// (`sqlite:PATH` or `postgres://…`).
    pub async fn open(url: &str, rules: RatingRules) -> Result<Store, String> {
        sqlx::any::install_default_drivers();
        let (backend, connect) = if let Some(path) = url.strip_prefix("sqlite:") {
            let path = path.trim_start_matches("//");
            if path.is_empty() {
                return Err("sqlite: needs a file (sqlite:arena.db)".to_string());
            }
            // A file that is there must be a SQLite database: never replaced, never "repaired".
            if let Ok(mut file) = std::fs::File::open(path) {
                use std::io::Read;
                let mut header = [0u8; 16];
                let read = file.read(&mut header).map_err(|e| format!("cannot read {path}: {e}"))?;
                if read > 0 && header[..read] != b"SQLite format 3\0"[..read] {
                    return Err(format!(
                        "{path} is not a SQLite database (left as it is): move it away or name another file"
                    ));
                }
            }
            (Backend::Sqlite, format!("sqlite://{path}?mode=rwc"))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_string())
        } else {
            return Err("--database takes sqlite:FILE or postgres://USER@HOST/DB".to_string());
        };
        let options = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 8 })
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // Readers never wait for the writer; a second writer waits, not fails.
                        sqlx::query("PRAGMA journal_mode=WAL").execute(&mut *conn).await?;
                        sqlx::query("PRAGMA busy_timeout=5000").execute(&mut *conn).await?;
                        sqlx::query("PRAGMA synchronous=NORMAL").execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            });
        let pool = options.connect(&connect).await.map_err(|e| match backend {
            Backend::Sqlite => format!("cannot open the SQLite database {url}: {e}"),
            Backend::Postgres => format!("cannot reach PostgreSQL: {e}"),
        })?;
        let store = Store { pool, backend, rules };
        store.migrate().await.map_err(|e| format!("database {}: {e}", store.describe(url)))?;
        Ok(store)
    }

    /// The URL without a password, for messages.
    fn describe(&self, url: &str) -> String {
        match (url.find("://"), url.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => format!("{}://…{}", &url[..scheme], &url[at..]),
            _ => url.to_string(),
        }
    }

    /// The schema version this binary knows.
    pub fn schema_version() -> i64 {
        MIGRATIONS.len() as i64
    }

    async fn migrate(&self) -> Result<(), String> {
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        if self.backend == Backend::Postgres {
            // Servers starting at once migrate one after the other.
            sqlx::query("SELECT pg_advisory_lock(7270726)").execute(&mut *conn).await.map_err(db_error)?;
        }
        let result = async {
            sqlx::query("CREATE TABLE IF NOT EXISTS arena_schema (version BIGINT NOT NULL)")
                .execute(&mut *conn)
                .await
                .map_err(|e| format!("not an Arena database, or unreadable: {e}"))?;
            let current: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) FROM arena_schema")
                .fetch_one(&mut *conn)
                .await
                .and_then(|row| row.try_get(0))
                .map_err(db_error)?;
            let known = Store::schema_version();
            if current > known {
                return Err(format!(
                    "its schema is version {current}, newer than this server's ({known}): run a newer arena-server"
                ));
            }
            for (index, migration) in MIGRATIONS.iter().enumerate().skip(current as usize) {
                let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(db_error)?;
                for statement in migration.split(';').map(str::trim).filter(|s| !s.is_empty() && !is_comment(s)) {
                    sqlx::query(statement)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| format!("migration {}: {e}", index + 1))?;
                }
                sqlx::query("INSERT INTO arena_schema (version) VALUES ($1)")
                    .bind(index as i64 + 1)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                tx.commit().await.map_err(db_error)?;
            }
            Ok(())
        }
        .await;
        if self.backend == Backend::Postgres {
            let _ = sqlx::query("SELECT pg_advisory_unlock(7270726)").execute(&mut *conn).await;
        }
        result
    }

    /// Stores `rounds` in one transaction; returns how many were new (the others were stored
    /// before and count once).
    pub async fn write(&self, rounds: &[RoundRecord]) -> Result<usize, String> {
        Ok(self.write_rated(rounds).await?.iter().filter(|r| r.is_some()).count())
    }

    /// Stores `rounds` in one transaction; for each, its rating changes (with the board places
    /// after the commit), or `None` when it was stored before.
    pub async fn write_rated(&self, rounds: &[RoundRecord]) -> Result<Vec<Option<Vec<RatedPlayer>>>, String> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let mut outcomes = Vec::new();
        for round in rounds {
            outcomes.push(self.write_round(&mut tx, round).await?);
        }
        tx.commit().await.map_err(db_error)?;
        for changes in outcomes.iter_mut().flatten() {
            for change in changes.iter_mut() {
                change.rank = self.rank(Board::Rating, &change.player).await?;
            }
        }
        Ok(outcomes)
    }

    async fn write_round(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        round: &RoundRecord,
    ) -> Result<Option<Vec<RatedPlayer>>, String> {
        let rated = rated_players(round, self.rules);
        let inserted = sqlx::query(
            "INSERT INTO rounds (id, server, room, number, map, ended_unix_ms, why, seconds, replay, rated) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&round.round_id)
        .bind(&round.server)
        .bind(&round.room)
        .bind(i64::from(round.round))
        .bind(&round.map)
        .bind(round.ended_unix_ms as i64)
        .bind(&round.why)
        .bind(i64::from(round.seconds))
        .bind(round.replay.clone())
        .bind(i64::from(!rated.is_empty()))
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
        if inserted.rows_affected() == 0 {
            return Ok(None);
        }
        // Everyone with an id gets a row (their totals), before the rated ones are locked.
        let now = round.ended_unix_ms as i64;
        let fresh = Rating::default();
        for line in round.players.iter().filter(|p| !p.bot) {
            let Some(id) = &line.player else { continue };
            sqlx::query(
                "INSERT INTO players (id, name, rating, uncertainty, ordinal, rated_rounds, rounds, wins, score, kills, deaths, first_unix_ms, last_unix_ms, banned) \
                 VALUES ($1, $2, $3, $4, $5, 0, 1, 0, $6, $7, $8, $9, $9, 0) \
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, rounds = players.rounds + 1, \
                 score = players.score + excluded.score, kills = players.kills + excluded.kills, \
                 deaths = players.deaths + excluded.deaths, last_unix_ms = excluded.last_unix_ms",
            )
            .bind(id)
            .bind(&line.name)
            .bind(fresh.rating)
            .bind(fresh.uncertainty)
            .bind(fresh.ordinal())
            .bind(i64::from(line.score))
            .bind(i64::from(line.kills))
            .bind(i64::from(line.deaths))
            .bind(now)
            .execute(&mut **tx)
            .await
            .map_err(db_error)?;
        }
        // The rated players' current ratings, locked in id order (two servers never wait on
        // each other in a circle).
        let mut order: Vec<usize> = rated.clone();
        order.sort_by(|a, b| round.players[*a].player.cmp(&round.players[*b].player));
        order.dedup_by(|a, b| round.players[*a].player == round.players[*b].player);
        let lock = if self.backend == Backend::Postgres { " FOR UPDATE" } else { "" };
        let select = format!("SELECT rating, uncertainty, banned FROM players WHERE id = $1{lock}");
        let mut current = Vec::new();
        for &index in &order {
            let id = round.players[index].player.as_deref().expect("rated players have ids");
            let row = sqlx::query(&select).bind(id).fetch_one(&mut **tx).await.map_err(db_error)?;
            let rating =
                Rating { rating: row.try_get(0).map_err(db_error)?, uncertainty: row.try_get(1).map_err(db_error)? };
            let banned: i64 = row.try_get(2).map_err(db_error)?;
            if banned == 0 {
                current.push((index, rating));
            }
        }
        let changes: Vec<(usize, Rating, Rating)> = if current.len() >= 2 {
            let input: Vec<(Rating, u16)> = current.iter().map(|(i, r)| (*r, round.players[*i].place)).collect();
            current.iter().zip(rate(&input)).map(|((i, before), after)| (*i, *before, after)).collect()
        } else {
            Vec::new()
        };
        for (index, _, after) in &changes {
            let line = &round.players[*index];
            sqlx::query(
                "UPDATE players SET rating = $2, uncertainty = $3, ordinal = $4, rated_rounds = rated_rounds + 1, \
                 wins = wins + $5 WHERE id = $1",
            )
            .bind(line.player.as_deref())
            .bind(after.rating)
            .bind(after.uncertainty)
            .bind(after.ordinal())
            .bind(i64::from(line.place == 1))
            .execute(&mut **tx)
            .await
            .map_err(db_error)?;
        }
        for (line_no, line) in round.players.iter().enumerate() {
            let change = changes.iter().find(|(i, _, _)| *i == line_no);
            sqlx::query(
                "INSERT INTO round_players (round_id, line, player_id, name, place, bot, left_early, score, kills, deaths, orbs, shots, hits, seconds_played, ordinal_before, ordinal_after) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
            )
            .bind(&round.round_id)
            .bind(line_no as i64)
            .bind(line.player.clone())
            .bind(&line.name)
            .bind(i64::from(line.place))
            .bind(i64::from(line.bot))
            .bind(i64::from(line.left))
            .bind(i64::from(line.score))
            .bind(i64::from(line.kills))
            .bind(i64::from(line.deaths))
            .bind(i64::from(line.orbs))
            .bind(i64::from(line.shots))
            .bind(i64::from(line.hits))
            .bind(i64::from(line.seconds_played))
            .bind(change.map(|(_, before, _)| before.ordinal()))
            .bind(change.map(|(_, _, after)| after.ordinal()))
            .execute(&mut **tx)
            .await
            .map_err(db_error)?;
        }
        Ok(Some(
            changes
                .iter()
                .map(|(index, before, after)| RatedPlayer {
                    player: round.players[*index].player.clone().expect("rated players have ids"),
                    before: before.ordinal(),
                    after: after.ordinal(),
                    rank: None,
                })
                .collect(),
        ))
    }

    /// Rounds stored.
    pub async fn rounds(&self) -> Result<i64, String> {
        sqlx::query("SELECT COUNT(*) FROM rounds")
            .fetch_one(&self.pool)
            .await
            .and_then(|row| row.try_get(0))
            .map_err(db_error)
    }

    fn board_sql(board: Board) -> (&'static str, &'static str) {
        match board {
            // (what ranks, which players are on the board)
            Board::Rating => ("ordinal", "rated_rounds > 0 AND banned = 0"),
            Board::Score => ("score", "rounds > 0 AND banned = 0"),
        }
    }

    /// `limit` lines of `board` from place `offset + 1`, or around `player` (centred on them).
    pub async fn board(
        &self,
        board: Board,
        around: Option<&str>,
        offset: u64,
        limit: u64,
    ) -> Result<BoardPage, String> {
        let (key, on) = Store::board_sql(board);
        let total: i64 = sqlx::query(&format!("SELECT COUNT(*) FROM players WHERE {on}"))
            .fetch_one(&self.pool)
            .await
            .and_then(|row| row.try_get(0))
            .map_err(db_error)?;
        let offset = match around {
            Some(player) => match self.rank(board, player).await? {
                Some(rank) => (rank - 1).saturating_sub(limit / 2),
                None => offset,
            },
            None => offset,
        };
        let rows = sqlx::query(&format!(
            "SELECT id, name, ordinal, score, rated_rounds, rounds, wins FROM players WHERE {on} \
             ORDER BY {key} DESC, id ASC LIMIT $1 OFFSET $2"
        ))
        .bind(limit as i64)
        .bind(offset as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let lines = rows
            .iter()
            .enumerate()
            .map(|(i, row)| board_line(offset + i as u64 + 1, row, board))
            .collect::<Result<_, _>>()?;
        Ok(BoardPage {
            board: match board {
                Board::Rating => "rating",
                Board::Score => "score",
            },
            total: total as u64,
            lines,
        })
    }

    /// `player`'s place on `board` (`None` when not on it).
    pub async fn rank(&self, board: Board, player: &str) -> Result<Option<u64>, String> {
        let (key, on) = Store::board_sql(board);
        let Some(row) = sqlx::query(&format!("SELECT {key} FROM players WHERE id = $1 AND {on}"))
            .bind(player)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?
        else {
            return Ok(None);
        };
        let value: f64 = match board {
            Board::Rating => row.try_get::<f64, _>(0).map_err(db_error)?,
            Board::Score => row.try_get::<i64, _>(0).map_err(db_error)? as f64,
        };
        let ahead_sql = format!("SELECT COUNT(*) FROM players WHERE {on} AND ({key} > $1 OR ({key} = $1 AND id < $2))");
        let query = sqlx::query(&ahead_sql);
        let query = match board {
            Board::Rating => query.bind(value),
            Board::Score => query.bind(value as i64),
        };
        let ahead: i64 =
            query.bind(player).fetch_one(&self.pool).await.and_then(|row| row.try_get(0)).map_err(db_error)?;
        Ok(Some(ahead as u64 + 1))
    }

    /// A player's profile, with their last `recent` rounds.
    pub async fn profile(&self, player: &str, recent: u64) -> Result<Option<Profile>, String> {
        let Some(row) = sqlx::query(
            "SELECT id, name, rating, uncertainty, ordinal, rated_rounds, rounds, wins, score, kills, deaths FROM players WHERE id = $1",
        )
        .bind(player)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?
        else {
            return Ok(None);
        };
        let get_f = |i: usize| row.try_get::<f64, _>(i).map_err(db_error);
        let get_i = |i: usize| row.try_get::<i64, _>(i).map_err(db_error);
        let rounds = sqlx::query(
            "SELECT rp.round_id, r.ended_unix_ms, rp.place, rp.score, rp.ordinal_before, rp.ordinal_after, r.replay, \
             (SELECT COUNT(*) FROM round_players o WHERE o.round_id = rp.round_id) \
             FROM round_players rp JOIN rounds r ON r.id = rp.round_id WHERE rp.player_id = $1 \
             ORDER BY r.ended_unix_ms DESC, rp.round_id LIMIT $2",
        )
        .bind(player)
        .bind(recent as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let recent = rounds
            .iter()
            .map(|r| {
                let before: Option<f64> = r.try_get(4).map_err(db_error)?;
                let after: Option<f64> = r.try_get(5).map_err(db_error)?;
                Ok(RecentRound {
                    round_id: r.try_get(0).map_err(db_error)?,
                    ended_unix_ms: r.try_get(1).map_err(db_error)?,
                    place: r.try_get(2).map_err(db_error)?,
                    score: r.try_get(3).map_err(db_error)?,
                    rating_change: before.zip(after).map(|(b, a)| a - b),
                    replay: r.try_get(6).map_err(db_error)?,
                    players: r.try_get(7).map_err(db_error)?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let rated_rounds = get_i(5)?;
        let rank = if rated_rounds > 0 { self.rank(Board::Rating, player).await? } else { None };
        Ok(Some(Profile {
            player: row.try_get(0).map_err(db_error)?,
            name: row.try_get(1).map_err(db_error)?,
            mu: get_f(2)?,
            sigma: get_f(3)?,
            rating: get_f(4)?,
            rank,
            rated_rounds,
            rounds: get_i(6)?,
            wins: get_i(7)?,
            score: get_i(8)?,
            kills: get_i(9)?,
            deaths: get_i(10)?,
            recent,
        }))
    }

    /// A stored round.
    pub async fn round(&self, id: &str) -> Result<Option<RoundView>, String> {
        let Some(row) =
            sqlx::query("SELECT id, server, room, number, map, ended_unix_ms, why, seconds, replay, rated FROM rounds WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error)?
        else {
            return Ok(None);
        };
        let lines = sqlx::query(
            "SELECT place, player_id, name, bot, left_early, score, kills, deaths, orbs, shots, hits, seconds_played, ordinal_before, ordinal_after \
             FROM round_players WHERE round_id = $1 ORDER BY line",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let players = lines
            .iter()
            .map(|r| {
                let i = |n: usize| r.try_get::<i64, _>(n).map_err(db_error);
                Ok(RoundLine {
                    place: i(0)?,
                    player: r.try_get(1).map_err(db_error)?,
                    name: r.try_get(2).map_err(db_error)?,
                    bot: i(3)? != 0,
                    left: i(4)? != 0,
                    score: i(5)?,
                    kills: i(6)?,
                    deaths: i(7)?,
                    orbs: i(8)?,
                    shots: i(9)?,
                    hits: i(10)?,
                    seconds_played: i(11)?,
                    rating_before: r.try_get(12).map_err(db_error)?,
                    rating_after: r.try_get(13).map_err(db_error)?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let i = |n: usize| row.try_get::<i64, _>(n).map_err(db_error);
        Ok(Some(RoundView {
            round_id: row.try_get(0).map_err(db_error)?,
            server: row.try_get(1).map_err(db_error)?,
            room: row.try_get(2).map_err(db_error)?,
            round: i(3)?,
            map: row.try_get(4).map_err(db_error)?,
            ended_unix_ms: i(5)?,
            why: row.try_get(6).map_err(db_error)?,
            seconds: i(7)?,
            replay: row.try_get(8).map_err(db_error)?,
            rated: i(9)? != 0,
            players,
        }))
    }
}

fn is_comment(statement: &str) -> bool {
    statement.lines().all(|line| line.trim().is_empty() || line.trim().starts_with("--"))
}

fn board_line(rank: u64, row: &AnyRow, _board: Board) -> Result<BoardLine, String> {
    Ok(BoardLine {
        rank,
        player: row.try_get(0).map_err(db_error)?,
        name: row.try_get(1).map_err(db_error)?,
        rating: row.try_get(2).map_err(db_error)?,
        score: row.try_get(3).map_err(db_error)?,
        rounds: row.try_get(5).map_err(db_error)?,
        wins: row.try_get(6).map_err(db_error)?,
    })
}
