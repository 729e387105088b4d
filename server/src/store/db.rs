//! The database: SQLite by default (a file beside the server's other data, made on first start)
//! or PostgreSQL (`--database postgres://…`, so a fleet shares one set of players and boards),
//! through `sqlx`'s `Any` driver and one set of portable SQL. Versioned migrations
//! (`server/migrations/`) run at start; a database with a newer schema than this binary is
//! refused with the reason, and a file that is not a database is an error, never replaced.
//!
//! The tables: `players` (who: name, first and last seen, the rated-play ban), `standings`
//! (each player's rating and totals per season; season 0 is all time), `seasons`, `rounds` and
//! `round_players`, and `board_counts` (how many standings each bucket of a board holds, so a
//! rank is a sum and a short index walk: [`super::boards`]). Writing a batch of rounds is one
//! transaction of a few multi-row statements ([`super::write`]).

use std::time::Duration;

use serde::Serialize;
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Row};

use super::rating::RatingRules;
use super::season::SeasonLength;

/// The schema, one file per version, in order. Statements end with `;` at a line's end (no `;`
/// in comments).
const MIGRATIONS: [&str; 3] = [
    include_str!("../../migrations/0001_players_and_rounds.sql"),
    include_str!("../../migrations/0002_seasons_and_standings.sql"),
    include_str!("../../migrations/0003_replay_ids.sql"),
];

/// Which engine the URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// An open database.
#[derive(Debug, Clone)]
pub struct Store {
    pub(super) pool: AnyPool,
    pub backend: Backend,
    pub rules: RatingRules,
    /// How long a season lasts (the schedule of the next ones; a season's end is stored).
    pub seasons: SeasonLength,
}

/// The database as a running server holds it: open from the start, or opened later by a task
/// that keeps trying when PostgreSQL was unreachable at start (rounds wait in the spool).
#[derive(Debug, Clone, Default)]
pub struct StoreCell(std::sync::Arc<std::sync::OnceLock<std::sync::Arc<Store>>>);

impl StoreCell {
    /// A cell holding an open database.
    pub fn ready(store: std::sync::Arc<Store>) -> StoreCell {
        let cell = StoreCell::default();
        cell.set(store);
        cell
    }

    /// The database, once it is open.
    pub fn get(&self) -> Option<&std::sync::Arc<Store>> {
        self.0.get()
    }

    /// Puts the database in (the first time only).
    pub fn set(&self, store: std::sync::Arc<Store>) {
        let _ = self.0.set(store);
    }
}

/// Why a database did not open.
#[derive(Debug)]
pub enum OpenFailure {
    /// PostgreSQL did not answer (not running, no route, timed out): worth trying again.
    Unreachable(String),
    /// Anything else: a bad URL, a file that is not a database, a newer schema, a refused login.
    Refused(String),
}

impl std::fmt::Display for OpenFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenFailure::Unreachable(why) | OpenFailure::Refused(why) => f.write_str(why),
        }
    }
}

/// Which board.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
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

    pub fn name(self) -> &'static str {
        match self {
            Board::Rating => "rating",
            Board::Score => "score",
        }
    }

    /// Its number in `board_counts`.
    pub(super) fn code(self) -> i64 {
        match self {
            Board::Rating => 0,
            Board::Score => 1,
        }
    }

    /// Its key column in `standings`.
    pub(super) fn key(self) -> &'static str {
        match self {
            Board::Rating => "rating_key",
            Board::Score => "score_key",
        }
    }
}

/// Which season: all time (season 0 in the tables), the current one, or a numbered one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeasonPick {
    AllTime,
    Current,
    Number(u64),
}

impl SeasonPick {
    /// `all`, `current` or a season's number (1 and on).
    pub fn parse(text: &str) -> Option<SeasonPick> {
        match text {
            "all" => Some(SeasonPick::AllTime),
            "current" => Some(SeasonPick::Current),
            _ => match text.parse::<u64>() {
                Ok(n) if (1..=1_000_000).contains(&n) => Some(SeasonPick::Number(n)),
                _ => None,
            },
        }
    }
}

/// A season, as `/api/seasons` lists it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Season {
    pub season: u64,
    pub started_unix_ms: i64,
    /// When it is scheduled to end (or ended early by an operator: `ended_unix_ms`).
    pub ends_unix_ms: i64,
    pub ended_unix_ms: Option<i64>,
    pub name: String,
}

/// One line of a board.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BoardLine {
    /// Tied players share a place (1, 2, 2, 4).
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
    /// 0: all time.
    pub season: u64,
    /// The season's dates, when it is one.
    pub season_info: Option<Season>,
    pub total: u64,
    pub lines: Vec<BoardLine>,
}

/// A player's standing in one season (or all time).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StandingView {
    pub season: u64,
    pub rating: f64,
    pub mu: f64,
    pub sigma: f64,
    /// Place on the season's rating board (`None` before a rated round, or while banned).
    pub rank: Option<u64>,
    pub score_rank: Option<u64>,
    pub rated_rounds: i64,
    pub rounds: i64,
    pub wins: i64,
    pub score: i64,
    pub kills: i64,
    pub deaths: i64,
}

/// A player's profile.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Profile {
    pub player: String,
    pub name: String,
    /// All time: rating (conservative), its parts, place and totals.
    pub rating: f64,
    pub mu: f64,
    pub sigma: f64,
    pub rank: Option<u64>,
    pub rated_rounds: i64,
    pub rounds: i64,
    pub wins: i64,
    pub score: i64,
    pub kills: i64,
    pub deaths: i64,
    /// Kept out of rated play by an operator.
    pub banned: bool,
    /// The current season, once they played in it.
    pub this_season: Option<StandingView>,
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
    /// The replay's file name, and where to fetch it (`/api/replays/NAME`).
    pub replay: Option<String>,
    pub replay_url: Option<String>,
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

/// Whether a connection failed for want of an answer (rather than a refusal worth reporting: a
/// TLS failure is a setting to fix, not a server that is not up yet).
fn unanswered(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut)
}

pub(super) fn db_error(error: sqlx::Error) -> String {
    error.to_string()
}

impl Store {
    /// Opens (SQLite: creates on first start) and migrates the database at `url`
    /// (`sqlite:PATH` or `postgres://…`).
    pub async fn open(url: &str, rules: RatingRules) -> Result<Store, String> {
        Store::open_with(url, rules, SeasonLength::default()).await
    }

    /// [`Store::open`] with a season schedule.
    pub async fn open_with(url: &str, rules: RatingRules, seasons: SeasonLength) -> Result<Store, String> {
        Store::try_open(url, rules, seasons).await.map_err(|failure| failure.to_string())
    }

    /// [`Store::open_with`], telling a PostgreSQL that did not answer from every other failure.
    pub async fn try_open(url: &str, rules: RatingRules, seasons: SeasonLength) -> Result<Store, OpenFailure> {
        use OpenFailure::{Refused, Unreachable};
        sqlx::any::install_default_drivers();
        let (backend, connect) = if let Some(path) = url.strip_prefix("sqlite:") {
            let path = path.trim_start_matches("//");
            if path.is_empty() {
                return Err(Refused("sqlite: needs a file (sqlite:arena.db)".to_string()));
            }
            // A file that is there must be a SQLite database: never replaced, never "repaired".
            if let Ok(mut file) = std::fs::File::open(path) {
                use std::io::Read;
                let mut header = [0u8; 16];
                let read = file.read(&mut header).map_err(|e| Refused(format!("cannot read {path}: {e}")))?;
                if read > 0 && header[..read] != b"SQLite format 3\0"[..read] {
                    return Err(Refused(format!(
                        "{path} is not a SQLite database (left as it is): move it away or name another file"
                    )));
                }
            }
            (Backend::Sqlite, format!("sqlite://{path}?mode=rwc"))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_string())
        } else {
            return Err(Refused("--database takes sqlite:FILE or postgres://USER@HOST/DB".to_string()));
        };
        let options = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 8 })
            .acquire_timeout(Duration::from_secs(5))
            // A local file cannot go away under an open connection: no ping before each use.
            .test_before_acquire(backend != Backend::Sqlite)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // Readers never wait for the writer; a second writer waits, not fails.
                        sqlx::query("PRAGMA journal_mode=WAL").execute(&mut *conn).await?;
                        sqlx::query("PRAGMA busy_timeout=5000").execute(&mut *conn).await?;
                        sqlx::query("PRAGMA synchronous=NORMAL").execute(&mut *conn).await?;
                        // 64 MiB of pages per connection: the boards' indexes stay in memory.
                        sqlx::query("PRAGMA cache_size=-65536").execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            });
        let pool = options.connect(&connect).await.map_err(|e| match backend {
            Backend::Sqlite => Refused(format!("cannot open the SQLite database {url}: {e}")),
            Backend::Postgres if unanswered(&e) => Unreachable(format!("cannot reach PostgreSQL: {e}")),
            Backend::Postgres => Refused(format!("PostgreSQL refused: {e}")),
        })?;
        let store = Store { pool, backend, rules, seasons };
        store.migrate().await.map_err(|(unreachable, e)| {
            let why = format!("database {}: {e}", store.describe(url));
            if unreachable && backend == Backend::Postgres { Unreachable(why) } else { Refused(why) }
        })?;
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

    /// Brings the schema up to this binary's version. A failure says whether the database
    /// stopped answering (`true`: worth another try) or refused.
    async fn migrate(&self) -> Result<(), (bool, String)> {
        let failed = |e: sqlx::Error| (unanswered(&e), db_error(e));
        let mut conn = self.pool.acquire().await.map_err(failed)?;
        if self.backend == Backend::Postgres {
            // Servers starting at once migrate one after the other.
            sqlx::query("SELECT pg_advisory_lock(7270726)").execute(&mut *conn).await.map_err(failed)?;
        }
        let result = async {
            sqlx::query("CREATE TABLE IF NOT EXISTS arena_schema (version BIGINT NOT NULL)")
                .execute(&mut *conn)
                .await
                .map_err(|e| (unanswered(&e), format!("not an Arena database, or unreadable: {e}")))?;
            let current: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) FROM arena_schema")
                .fetch_one(&mut *conn)
                .await
                .and_then(|row| row.try_get(0))
                .map_err(failed)?;
            let known = Store::schema_version();
            if current > known {
                return Err((
                    false,
                    format!(
                        "its schema is version {current}, newer than this server's ({known}): run a newer arena-server"
                    ),
                ));
            }
            for (index, migration) in MIGRATIONS.iter().enumerate().skip(current as usize) {
                let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(failed)?;
                for statement in migration.split(';').map(str::trim).filter(|s| !s.is_empty() && !is_comment(s)) {
                    sqlx::query(statement)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| (unanswered(&e), format!("migration {}: {e}", index + 1)))?;
                }
                sqlx::query("INSERT INTO arena_schema (version) VALUES ($1)")
                    .bind(index as i64 + 1)
                    .execute(&mut *tx)
                    .await
                    .map_err(failed)?;
                tx.commit().await.map_err(failed)?;
            }
            Ok(current)
        }
        .await;
        // Version 2 moved the totals into `standings`; its bucket counts are counted here.
        let result = match result {
            Ok(before) if before < 2 => self.rebuild_counts().await.map_err(|e| (false, e)),
            other => other.map(|_| ()),
        };
        if self.backend == Backend::Postgres {
            let _ = sqlx::query("SELECT pg_advisory_unlock(7270726)").execute(&mut *conn).await;
        }
        result
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
