//! Boards, ranks, seasons, profiles and the operator's actions on players.
//!
//! A rank is `1 +` the standings strictly ahead (tied players share a place). Counting them
//! one by one is linear in the board, so each board keeps `board_counts`: how many standings
//! each bucket of keys holds (a rating bucket is 1/16 of a point; a score bucket is one score
//! below 1,024 and 1/128 of a doubling above). The players ahead are then the sum of the
//! buckets above (a few hundred rows) and a walk of the index inside one bucket (a few thousand
//! entries at a million players). A page's ranks cost the same two queries once, for its
//! first line; the others follow from the page itself.

use std::collections::BTreeMap;

use futures_util::TryStreamExt;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, Row};

use super::db::{Board, BoardLine, BoardPage, Profile, RecentRound, Season, SeasonPick, StandingView, Store, db_error};
use super::rating::Rating;
use super::season::date;
use super::standing::{CountChanges, Standing, bucket, bucket_top, now_ms};

/// What an erasure left to do outside the database: the replays that name the player.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Erased {
    pub replays: Vec<ErasedReplay>,
}

/// One replay file (its name in the replay directory) and who the player was in it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErasedReplay {
    pub file: String,
    /// Their entities' ids in the file.
    pub net_ids: Vec<u32>,
    /// Their names, for lines stored without an id (rounds from before ids were kept).
    pub names: Vec<String>,
}

type AnyQuery<'q> = Query<'q, Any, AnyArguments<'q>>;

/// Binds a key as its column's type (scores are integers: an index on them is used).
fn bind_key<'q>(query: AnyQuery<'q>, board: Board, key: f64) -> AnyQuery<'q> {
    match board {
        Board::Rating => query.bind(key),
        Board::Score => query.bind(key as i64),
    }
}

fn key_of(row: &AnyRow, index: usize, board: Board) -> Result<Option<f64>, String> {
    match board {
        Board::Rating => row.try_get::<Option<f64>, _>(index).map_err(db_error),
        Board::Score => row.try_get::<Option<i64>, _>(index).map(|k| k.map(|k| k as f64)).map_err(db_error),
    }
}

fn season_row(row: &AnyRow) -> Result<Season, String> {
    let id: i64 = row.try_get(0).map_err(db_error)?;
    let started: i64 = row.try_get(1).map_err(db_error)?;
    let ends: i64 = row.try_get(2).map_err(db_error)?;
    let ended: Option<i64> = row.try_get(3).map_err(db_error)?;
    Ok(Season {
        season: id as u64,
        started_unix_ms: started,
        ends_unix_ms: ends,
        ended_unix_ms: ended,
        name: format!("Season {id} ({} to {})", date(started), date(ended.unwrap_or(ends))),
    })
}

const SEASON_COLUMNS: &str = "id, started_unix_ms, ends_unix_ms, ended_unix_ms";

/// A line of a board as read: the key it is ranked by, and what it shows.
struct Read {
    key: f64,
    line: BoardLine,
}

const LINE_COLUMNS: &str = "s.player_id, p.name, s.rating, s.uncertainty, s.score, s.rounds, s.wins";

fn read_line(row: &AnyRow, board: Board) -> Result<Read, String> {
    let rating = Rating { rating: row.try_get(2).map_err(db_error)?, uncertainty: row.try_get(3).map_err(db_error)? };
    Ok(Read {
        key: key_of(row, 7, board)?.unwrap_or(f64::NAN),
        line: BoardLine {
            rank: 0,
            player: row.try_get(0).map_err(db_error)?,
            name: row.try_get(1).map_err(db_error)?,
            rating: rating.ordinal(),
            score: row.try_get(4).map_err(db_error)?,
            rounds: row.try_get(5).map_err(db_error)?,
            wins: row.try_get(6).map_err(db_error)?,
        },
    })
}

impl Store {
    /// The current season's number, inside `tx`: the first season begins now; a season past its
    /// end is closed and the next begins where it ended, so rounds written late count in the
    /// season that is running when they are written.
    pub(super) async fn season_in(&self, tx: &mut sqlx::Transaction<'_, Any>, now: i64) -> Result<i64, String> {
        for _ in 0..3 {
            // The newest season decides, read in one statement: two servers beginning the first
            // season at once must not see "no open season" and then each other's new one.
            let newest = sqlx::query(&format!("SELECT {SEASON_COLUMNS} FROM seasons ORDER BY id DESC LIMIT 1"))
                .fetch_optional(&mut **tx)
                .await
                .map_err(db_error)?
                .map(|row| season_row(&row))
                .transpose()?;
            let (next, start) = match newest {
                None => (1, now),
                Some(season) => match season.ended_unix_ms {
                    None if now < season.ends_unix_ms => return Ok(season.season as i64),
                    None => {
                        sqlx::query("UPDATE seasons SET ended_unix_ms = $2 WHERE id = $1 AND ended_unix_ms IS NULL")
                            .bind(season.season as i64)
                            .bind(season.ends_unix_ms)
                            .execute(&mut **tx)
                            .await
                            .map_err(db_error)?;
                        (season.season as i64 + 1, season.ends_unix_ms)
                    }
                    Some(ended) => (season.season as i64 + 1, ended.min(now)),
                },
            };
            sqlx::query(
                "INSERT INTO seasons (id, started_unix_ms, ends_unix_ms, ended_unix_ms) VALUES ($1, $2, $3, NULL) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(next)
            .bind(start)
            .bind(self.seasons.end_after(now.max(start)))
            .execute(&mut **tx)
            .await
            .map_err(db_error)?;
        }
        Err("seasons: the current season keeps changing (check the servers' clocks)".to_string())
    }

    /// The current season (begun, or rolled over, if it is due).
    pub async fn current_season(&self) -> Result<Season, String> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let id = self.season_in(&mut tx, now_ms()).await?;
        let row = sqlx::query(&format!("SELECT {SEASON_COLUMNS} FROM seasons WHERE id = $1"))
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        season_row(&row)
    }

    /// Every season, newest first (at most `limit`).
    pub async fn seasons_list(&self, limit: u64) -> Result<Vec<Season>, String> {
        self.current_season().await?;
        sqlx::query(&format!("SELECT {SEASON_COLUMNS} FROM seasons ORDER BY id DESC LIMIT $1"))
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?
            .iter()
            .map(season_row)
            .collect()
    }

    /// Ends the current season now (an operator's action) and begins the next; returns both.
    pub async fn end_season(&self) -> Result<(Season, Season), String> {
        let now = now_ms();
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let id = self.season_in(&mut tx, now).await?;
        sqlx::query("UPDATE seasons SET ended_unix_ms = $2 WHERE id = $1 AND ended_unix_ms IS NULL")
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        sqlx::query(
            "INSERT INTO seasons (id, started_unix_ms, ends_unix_ms, ended_unix_ms) VALUES ($1, $2, $3, NULL) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id + 1)
        .bind(now)
        .bind(self.seasons.end_after(now))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        let rows = sqlx::query(&format!("SELECT {SEASON_COLUMNS} FROM seasons WHERE id IN ($1, $2) ORDER BY id"))
            .bind(id)
            .bind(id + 1)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        match &rows[..] {
            [ended, next] => Ok((season_row(ended)?, season_row(next)?)),
            _ => Err("seasons: the next season is missing".to_string()),
        }
    }

    /// The season a pick names: its number in the tables (0: all time) and its dates, or `None`
    /// when there is no such season.
    async fn resolve(&self, pick: SeasonPick) -> Result<Option<(i64, Option<Season>)>, String> {
        match pick {
            SeasonPick::AllTime => Ok(Some((0, None))),
            SeasonPick::Current => {
                let season = self.current_season().await?;
                Ok(Some((season.season as i64, Some(season))))
            }
            SeasonPick::Number(n) => Ok(sqlx::query(&format!("SELECT {SEASON_COLUMNS} FROM seasons WHERE id = $1"))
                .bind(n as i64)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error)?
                .map(|row| season_row(&row))
                .transpose()?
                .map(|season| (n as i64, Some(season)))),
        }
    }

    /// Up to `n` board lines each side of `sql`'s union: `$1` and `$5` the season, `$2` and
    /// `$6` the key, `$3` the player, `$4` and `$7` the limit.
    async fn walk(
        &self,
        sql: String,
        season: i64,
        board: Board,
        key: f64,
        player: &str,
        n: u64,
    ) -> Result<Vec<Read>, String> {
        let query = bind_key(sqlx::query(&sql).bind(season), board, key).bind(player).bind(n as i64).bind(season);
        bind_key(query, board, key)
            .bind(n as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?
            .iter()
            .map(|row| read_line(row, board))
            .collect()
    }

    /// How many standings of `season` are on `board`.
    async fn board_total(&self, season: i64, board: Board) -> Result<u64, String> {
        let total: i64 = sqlx::query(
            "SELECT CAST(COALESCE(SUM(players), 0) AS BIGINT) FROM board_counts WHERE season = $1 AND board = $2",
        )
        .bind(season)
        .bind(board.code())
        .fetch_one(&self.pool)
        .await
        .and_then(|row| row.try_get(0))
        .map_err(db_error)?;
        Ok(total.max(0) as u64)
    }

    /// How many standings of `season` are strictly ahead of `key` on `board`.
    async fn ahead_of(&self, season: i64, board: Board, key: f64) -> Result<u64, String> {
        Ok(self.ahead_and_total(season, board, key).await?.0)
    }

    /// How many standings of `season` are strictly ahead of `key` on `board` (the buckets above
    /// its own, and those above it in its own bucket), and how many the board holds: one
    /// statement.
    async fn ahead_and_total(&self, season: i64, board: Board, key: f64) -> Result<(u64, u64), String> {
        let b = bucket(board, key);
        let above = "CAST(COALESCE((SELECT SUM(players) FROM board_counts WHERE season = $1 AND board = $2 AND bucket > $3), 0) AS BIGINT), \
                     CAST(COALESCE((SELECT SUM(players) FROM board_counts WHERE season = $1 AND board = $2), 0) AS BIGINT)";
        let column = board.key();
        let row = match bucket_top(board, b) {
            None => sqlx::query(&format!("SELECT {above}, CAST(0 AS BIGINT)"))
                .bind(season)
                .bind(board.code())
                .bind(b)
                .fetch_one(&self.pool)
                .await
                .map_err(db_error)?,
            Some(top) => {
                let sql = format!(
                    "SELECT {above}, (SELECT COUNT(*) FROM standings WHERE season = $4 AND {column} IS NOT NULL \
                     AND {column} > $5 AND {column} < $6)"
                );
                let query = sqlx::query(&sql).bind(season).bind(board.code()).bind(b).bind(season);
                bind_key(bind_key(query, board, key), board, top).fetch_one(&self.pool).await.map_err(db_error)?
            }
        };
        let get = |i: usize| row.try_get::<i64, _>(i).map_err(db_error).map(|n| n.max(0) as u64);
        Ok((get(0)? + get(2)?, get(1)?))
    }

    /// How many standings of `season` have exactly `key` on `board`.
    async fn tied_at(&self, season: i64, board: Board, key: f64) -> Result<u64, String> {
        let b = bucket(board, key);
        let count: i64 = if bucket_top(board, b).is_none() {
            sqlx::query(
                "SELECT COALESCE(MAX(players), 0) FROM board_counts WHERE season = $1 AND board = $2 AND bucket = $3",
            )
            .bind(season)
            .bind(board.code())
            .bind(b)
            .fetch_one(&self.pool)
            .await
            .and_then(|row| row.try_get(0))
            .map_err(db_error)?
        } else {
            let column = board.key();
            let sql =
                format!("SELECT COUNT(*) FROM standings WHERE season = $1 AND {column} IS NOT NULL AND {column} = $2");
            bind_key(sqlx::query(&sql).bind(season), board, key)
                .fetch_one(&self.pool)
                .await
                .and_then(|row| row.try_get(0))
                .map_err(db_error)?
        };
        Ok(count.max(0) as u64)
    }

    /// A standing's key on `board` in `season` (`None`: not on it).
    async fn key_in(&self, season: i64, board: Board, player: &str) -> Result<Option<f64>, String> {
        let sql = format!("SELECT {} FROM standings WHERE season = $1 AND player_id = $2", board.key());
        match sqlx::query(&sql).bind(season).bind(player).fetch_optional(&self.pool).await.map_err(db_error)? {
            Some(row) => key_of(&row, 0, board),
            None => Ok(None),
        }
    }

    /// `player`'s place on the all-time `board` (`None` when not on it).
    pub async fn rank(&self, board: Board, player: &str) -> Result<Option<u64>, String> {
        self.rank_in(0, board, player).await
    }

    /// `player`'s place on `board` in `season` (0: all time).
    pub async fn rank_in(&self, season: i64, board: Board, player: &str) -> Result<Option<u64>, String> {
        match self.key_in(season, board, player).await? {
            Some(key) => Ok(Some(self.ahead_of(season, board, key).await? + 1)),
            None => Ok(None),
        }
    }

    /// Each player's place on the all-time rating board.
    pub async fn ranks(&self, players: &[String]) -> Result<Vec<Option<u64>>, String> {
        let mut ranks = Vec::with_capacity(players.len());
        for player in players {
            ranks.push(self.rank(Board::Rating, player).await?);
        }
        Ok(ranks)
    }

    /// `limit` lines of the all-time `board` from place `offset + 1`, or around `player`.
    pub async fn board(
        &self,
        board: Board,
        around: Option<&str>,
        offset: u64,
        limit: u64,
    ) -> Result<BoardPage, String> {
        self.season_board(board, SeasonPick::AllTime, around, offset, limit).await
    }

    /// `limit` lines of `board` in `season` from place `offset + 1`, or around `player`
    /// (centred on them, when they are on it).
    pub async fn season_board(
        &self,
        board: Board,
        season: SeasonPick,
        around: Option<&str>,
        offset: u64,
        limit: u64,
    ) -> Result<BoardPage, String> {
        let Some((season, info)) = self.resolve(season).await? else {
            return Err("no such season".to_string());
        };
        let column = board.key();
        let from = format!(
            "SELECT {LINE_COLUMNS}, s.{column} FROM standings s JOIN players p ON p.id = s.player_id \
             WHERE s.season = $1 AND s.{column} IS NOT NULL"
        );
        let anchor = match around {
            Some(player) => self.key_in(season, board, player).await?.map(|key| (player, key)),
            None => None,
        };
        let mut lines: Vec<Read> = Vec::new();
        if let Some((player, key)) = anchor {
            // Keyset walks out from the player, both ways: each two short index ranges (the
            // players tied with them, then the next keys), in one statement.
            let both = |tied: &str, beyond: &str| {
                format!(
                    "SELECT * FROM ({from} AND s.{column} = $2 AND {tied} LIMIT $4) AS tied \
                     UNION ALL SELECT * FROM ({} AND {beyond} LIMIT $7) AS beyond",
                    from.replace("$1", "$5")
                )
            };
            let mut before = self
                .walk(
                    both(
                        "s.player_id < $3 ORDER BY s.player_id DESC",
                        &format!("s.{column} > $6 ORDER BY s.{column} ASC, s.player_id DESC"),
                    ),
                    season,
                    board,
                    key,
                    player,
                    limit,
                )
                .await?;
            before.sort_by(|a, b| a.key.total_cmp(&b.key).then_with(|| b.line.player.cmp(&a.line.player)));
            let mut after = self
                .walk(
                    both(
                        "s.player_id >= $3 ORDER BY s.player_id ASC",
                        &format!("s.{column} < $6 ORDER BY s.{column} DESC, s.player_id ASC"),
                    ),
                    season,
                    board,
                    key,
                    player,
                    limit,
                )
                .await?;
            after.sort_by(|a, b| b.key.total_cmp(&a.key).then_with(|| a.line.player.cmp(&b.line.player)));
            let limit = limit as usize;
            let after_take = after.len().min(limit - before.len().min(limit / 2));
            let before_take = before.len().min(limit - after_take);
            before.truncate(before_take);
            before.reverse();
            after.truncate(after_take);
            lines = before;
            lines.extend(after);
        } else {
            let sql = format!("{from} ORDER BY s.{column} DESC, s.player_id ASC LIMIT $2 OFFSET $3");
            for row in sqlx::query(&sql)
                .bind(season)
                .bind(limit as i64)
                .bind(offset as i64)
                .fetch_all(&self.pool)
                .await
                .map_err(db_error)?
            {
                lines.push(read_line(&row, board)?);
            }
        }
        // Places: the first line's from the counts, the rest from the page (ties share one).
        let mut total = 0;
        if lines.is_empty() {
            total = self.board_total(season, board).await?;
        }
        if let Some(first) = lines.first() {
            let top = first.key;
            let (ahead, all) = self.ahead_and_total(season, board, top).await?;
            total = all;
            let first_rank = ahead + 1;
            let tied_top = if lines.iter().any(|l| l.key < top) { self.tied_at(season, board, top).await? } else { 0 };
            let mut below_top = 0u64;
            let mut previous: Option<(f64, u64)> = None;
            for read in &mut lines {
                let rank = match previous {
                    _ if read.key == top => first_rank,
                    Some((key, rank)) if key == read.key => rank,
                    _ => first_rank + tied_top + below_top,
                };
                if read.key < top {
                    below_top += 1;
                }
                read.line.rank = rank;
                previous = Some((read.key, rank));
            }
        }
        Ok(BoardPage {
            board: board.name(),
            season: season as u64,
            season_info: info,
            total,
            lines: lines.into_iter().map(|read| read.line).collect(),
        })
    }

    async fn standing_view(&self, season: i64, player: &str) -> Result<Option<StandingView>, String> {
        let Some(row) = sqlx::query(
            "SELECT rating, uncertainty, rated_rounds, rounds, wins, score, kills, deaths, rating_key, score_key \
             FROM standings WHERE season = $1 AND player_id = $2",
        )
        .bind(season)
        .bind(player)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?
        else {
            return Ok(None);
        };
        let get_i = |i: usize| row.try_get::<i64, _>(i).map_err(db_error);
        let rating =
            Rating { rating: row.try_get(0).map_err(db_error)?, uncertainty: row.try_get(1).map_err(db_error)? };
        let rating_key = key_of(&row, 8, Board::Rating)?;
        let score_key = key_of(&row, 9, Board::Score)?;
        let rank = match rating_key {
            Some(key) => Some(self.ahead_of(season, Board::Rating, key).await? + 1),
            None => None,
        };
        let score_rank = match score_key {
            Some(key) => Some(self.ahead_of(season, Board::Score, key).await? + 1),
            None => None,
        };
        Ok(Some(StandingView {
            season: season as u64,
            rating: rating.ordinal(),
            mu: rating.rating,
            sigma: rating.uncertainty,
            rank,
            score_rank,
            rated_rounds: get_i(2)?,
            rounds: get_i(3)?,
            wins: get_i(4)?,
            score: get_i(5)?,
            kills: get_i(6)?,
            deaths: get_i(7)?,
        }))
    }

    /// A player's profile, with their last `recent` rounds.
    pub async fn profile(&self, player: &str, recent: u64) -> Result<Option<Profile>, String> {
        let Some(row) = sqlx::query("SELECT id, name, banned FROM players WHERE id = $1")
            .bind(player)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?
        else {
            return Ok(None);
        };
        let all = self.standing_view(0, player).await?.unwrap_or_else(|| {
            let fresh = Standing::fresh();
            StandingView {
                season: 0,
                rating: fresh.rating.ordinal(),
                mu: fresh.rating.rating,
                sigma: fresh.rating.uncertainty,
                rank: None,
                score_rank: None,
                rated_rounds: 0,
                rounds: 0,
                wins: 0,
                score: 0,
                kills: 0,
                deaths: 0,
            }
        });
        let season = self.current_season().await?;
        let this_season = self.standing_view(season.season as i64, player).await?;
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
                let replay: Option<String> = r.try_get(6).map_err(db_error)?;
                Ok(RecentRound {
                    round_id: r.try_get(0).map_err(db_error)?,
                    ended_unix_ms: r.try_get(1).map_err(db_error)?,
                    place: r.try_get(2).map_err(db_error)?,
                    score: r.try_get(3).map_err(db_error)?,
                    rating_change: before.zip(after).map(|(b, a)| a - b),
                    replay_url: replay.as_ref().map(|name| format!("/api/replays/{name}")),
                    replay,
                    players: r.try_get(7).map_err(db_error)?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let banned: i64 = row.try_get(2).map_err(db_error)?;
        Ok(Some(Profile {
            player: row.try_get(0).map_err(db_error)?,
            name: row.try_get(1).map_err(db_error)?,
            rating: all.rating,
            mu: all.mu,
            sigma: all.sigma,
            rank: all.rank,
            rated_rounds: all.rated_rounds,
            rounds: all.rounds,
            wins: all.wins,
            score: all.score,
            kills: all.kills,
            deaths: all.deaths,
            banned: banned != 0,
            this_season,
            recent,
        }))
    }

    /// A player's standings with the keys they are stored under, inside `tx`.
    async fn standings_of(
        tx: &mut sqlx::Transaction<'_, Any>,
        player: &str,
    ) -> Result<Vec<(i64, Standing, (Option<f64>, Option<i64>))>, String> {
        let rows = sqlx::query(
            "SELECT season, rating, uncertainty, rated_rounds, rounds, wins, score, kills, deaths, rating_key, score_key \
             FROM standings WHERE season IN (SELECT 0 UNION SELECT id FROM seasons) AND player_id = $1 ORDER BY season",
        )
        .bind(player)
        .fetch_all(&mut **tx)
        .await
        .map_err(db_error)?;
        rows.iter()
            .map(|row| {
                let get_i = |i: usize| row.try_get::<i64, _>(i).map_err(db_error);
                Ok((
                    get_i(0)?,
                    Standing {
                        rating: Rating {
                            rating: row.try_get(1).map_err(db_error)?,
                            uncertainty: row.try_get(2).map_err(db_error)?,
                        },
                        rated_rounds: get_i(3)?,
                        rounds: get_i(4)?,
                        wins: get_i(5)?,
                        score: get_i(6)?,
                        kills: get_i(7)?,
                        deaths: get_i(8)?,
                    },
                    (row.try_get(9).map_err(db_error)?, row.try_get(10).map_err(db_error)?),
                ))
            })
            .collect()
    }

    /// Keeps a player out of rated play (or lets them back): their rounds are not rated and
    /// they leave every board, all time and seasons; lifting the ban puts them back as they
    /// were. `false` when no player has that id.
    pub async fn set_rated_ban(&self, player: &str, banned: bool) -> Result<bool, String> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let found = sqlx::query("UPDATE players SET banned = $2 WHERE id = $1")
            .bind(player)
            .bind(i64::from(banned))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected()
            > 0;
        if !found {
            return Ok(false);
        }
        let mut counts = CountChanges::default();
        for (season, standing, stored) in Store::standings_of(&mut tx, player).await? {
            let keys = standing.keys(banned);
            counts.moved(season, stored, keys);
            sqlx::query("UPDATE standings SET rating_key = $3, score_key = $4 WHERE season = $1 AND player_id = $2")
                .bind(season)
                .bind(player)
                .bind(keys.0)
                .bind(keys.1)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        counts.apply(self.backend, &mut tx).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    /// Erases a player on request: their name, standings and identity go; their lines in
    /// stored rounds stay (other players' results need them) as "(erased)" with no id. Returns
    /// the replays of their rounds, for [`crate::replay::erase`] to rewrite, or `None` when no
    /// player has that id.
    pub async fn erase_player(&self, player: &str) -> Result<Option<Erased>, String> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let found = sqlx::query("DELETE FROM players WHERE id = $1")
            .bind(player)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected()
            > 0;
        if !found {
            return Ok(None);
        }
        let mut counts = CountChanges::default();
        for (season, _, stored) in Store::standings_of(&mut tx, player).await? {
            counts.moved(season, stored, (None, None));
        }
        sqlx::query("DELETE FROM standings WHERE season IN (SELECT 0 UNION SELECT id FROM seasons) AND player_id = $1")
            .bind(player)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        // Where they are in replays: each round's file, their entity ids (or, for rounds stored
        // before ids were kept, their names).
        let mut replays: BTreeMap<String, ErasedReplay> = BTreeMap::new();
        for row in sqlx::query(
            "SELECT r.replay, rp.net_id, rp.name FROM round_players rp JOIN rounds r ON r.id = rp.round_id \
             WHERE rp.player_id = $1 AND r.replay IS NOT NULL",
        )
        .bind(player)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?
        {
            let file: String = row.try_get(0).map_err(db_error)?;
            let entry = replays.entry(file.clone()).or_insert_with(|| ErasedReplay { file, ..ErasedReplay::default() });
            match row.try_get::<Option<i64>, _>(1).map_err(db_error)?.and_then(|id| u32::try_from(id).ok()) {
                Some(id) => entry.net_ids.push(id),
                None => entry.names.push(row.try_get(2).map_err(db_error)?),
            }
        }
        sqlx::query("UPDATE round_players SET player_id = NULL, name = '(erased)' WHERE player_id = $1")
            .bind(player)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        counts.apply(self.backend, &mut tx).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(Some(Erased { replays: replays.into_values().collect() }))
    }

    /// Counts every board's buckets afresh from the standings (after the migration that made
    /// them, or a bulk load).
    pub async fn rebuild_counts(&self) -> Result<(), String> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        sqlx::query("DELETE FROM board_counts").execute(&mut *tx).await.map_err(db_error)?;
        let mut counts = CountChanges::default();
        {
            let mut rows = sqlx::query(
                "SELECT season, rating_key, score_key FROM standings WHERE rating_key IS NOT NULL OR score_key IS NOT NULL",
            )
            .fetch(&mut *tx);
            while let Some(row) = rows.try_next().await.map_err(db_error)? {
                let season: i64 = row.try_get(0).map_err(db_error)?;
                counts.moved(
                    season,
                    (None, None),
                    (row.try_get(1).map_err(db_error)?, row.try_get(2).map_err(db_error)?),
                );
            }
        }
        counts.apply(self.backend, &mut tx).await?;
        tx.commit().await.map_err(db_error)
    }
}
