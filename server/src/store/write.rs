//! Writing finished rounds: a batch is one transaction of a few multi-row statements, whatever
//! its size (up to [`super::writer::BATCH`] rounds):
//! 1. the rounds' rows (`ON CONFLICT DO NOTHING … RETURNING id`): a round stored before (a
//!    retry, the spool replayed after a crash) is skipped and counts once;
//! 2. the players' rows, upserted in id order (on PostgreSQL this locks them in one order, so
//!    two servers writing rounds of the same players wait for each other, never in a circle);
//! 3. their standings (all time and the current season) read at once, the ratings and totals
//!    worked out in memory round after round, and written back at once;
//! 4. every player's line of every round; 5. the boards' bucket counts, by their changes.

use std::collections::{BTreeMap, HashMap, HashSet};

use sqlx::Row;
use sqlx::any::AnyArguments;
use sqlx::query::Query;

use super::db::{Store, db_error};
use super::rating::{Rating, rate, rated_players};
use super::record::{RatedPlayer, RoundRecord};
use super::standing::{CountChanges, MOST_BINDS, Standing, placeholders};

/// A player's line as it goes into `round_players`.
struct Line<'a> {
    round: &'a RoundRecord,
    index: usize,
    before: Option<f64>,
    after: Option<f64>,
}

fn bind_line<'q>(
    query: Query<'q, sqlx::Any, AnyArguments<'q>>,
    line: &Line<'q>,
) -> Query<'q, sqlx::Any, AnyArguments<'q>> {
    let player = &line.round.players[line.index];
    query
        .bind(line.round.round_id.as_str())
        .bind(line.index as i64)
        .bind(player.player.as_deref())
        .bind(player.name.as_str())
        .bind(i64::from(player.place))
        .bind(i64::from(player.bot))
        .bind(i64::from(player.left))
        .bind(i64::from(player.score))
        .bind(i64::from(player.kills))
        .bind(i64::from(player.deaths))
        .bind(i64::from(player.orbs))
        .bind(i64::from(player.shots))
        .bind(i64::from(player.hits))
        .bind(i64::from(player.seconds_played))
        .bind(line.before)
        .bind(line.after)
        .bind(player.net_id.map(i64::from))
}

impl Store {
    /// Rounds stored.
    pub async fn rounds(&self) -> Result<i64, String> {
        sqlx::query("SELECT COUNT(*) FROM rounds")
            .fetch_one(&self.pool)
            .await
            .and_then(|row| row.try_get(0))
            .map_err(db_error)
    }

    /// Stores `rounds` in one transaction; returns how many were new (the others were stored
    /// before and count once).
    pub async fn write(&self, rounds: &[RoundRecord]) -> Result<usize, String> {
        Ok(self.write_rated(rounds).await?.iter().filter(|r| r.is_some()).count())
    }

    /// Stores `rounds` in one transaction; for each, its all-time rating changes (without board
    /// places: [`Store::ranks`] asks those), or `None` when it was stored before.
    pub async fn write_rated(&self, rounds: &[RoundRecord]) -> Result<Vec<Option<Vec<RatedPlayer>>>, String> {
        if rounds.is_empty() {
            return Ok(Vec::new());
        }
        let most = MOST_BINDS;
        let backend = self.backend;
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let season = self.season_in(&mut tx, super::standing::now_ms()).await?;

        // 1. The rounds: which of them are new.
        let mut fresh: HashSet<String> = HashSet::new();
        for chunk in rounds.chunks(most / 10) {
            let sql = format!(
                "INSERT INTO rounds (id, server, room, number, map, ended_unix_ms, why, seconds, replay, rated) VALUES {} \
                 ON CONFLICT (id) DO NOTHING RETURNING id",
                placeholders(backend, chunk.len(), 10, 1)
            );
            let mut query = sqlx::query(&sql);
            for round in chunk {
                query = query
                    .bind(round.round_id.as_str())
                    .bind(round.server.as_str())
                    .bind(round.room.as_str())
                    .bind(i64::from(round.round))
                    .bind(round.map.as_str())
                    .bind(round.ended_unix_ms as i64)
                    .bind(round.why.as_str())
                    .bind(i64::from(round.seconds))
                    .bind(round.replay.as_deref())
                    .bind(i64::from(!rated_players(round, self.rules).is_empty()));
            }
            for row in query.fetch_all(&mut *tx).await.map_err(db_error)? {
                fresh.insert(row.try_get::<String, _>(0).map_err(db_error)?);
            }
        }
        // Each new round once, in the batch's order (an id twice in one batch counts once).
        let new: Vec<&RoundRecord> = rounds.iter().filter(|round| fresh.remove(&round.round_id)).collect();
        let new_ids: HashSet<&str> = new.iter().map(|round| round.round_id.as_str()).collect();

        // 2. The players: name (the latest round's), first and last seen; their ban.
        let mut who: BTreeMap<&str, (&str, i64, i64)> = BTreeMap::new();
        for round in &new {
            let at = round.ended_unix_ms as i64;
            for line in round.players.iter().filter(|p| !p.bot) {
                let Some(id) = line.player.as_deref() else { continue };
                let entry = who.entry(id).or_insert((line.name.as_str(), at, at));
                if at >= entry.2 {
                    entry.0 = line.name.as_str();
                }
                entry.1 = entry.1.min(at);
                entry.2 = entry.2.max(at);
            }
        }
        let who: Vec<(&str, (&str, i64, i64))> = who.into_iter().collect();
        let mut banned: HashMap<String, bool> = HashMap::new();
        for chunk in who.chunks(most / 4) {
            let sql = format!(
                "INSERT INTO players (id, name, first_unix_ms, last_unix_ms, banned) VALUES {} \
                 ON CONFLICT (id) DO UPDATE SET \
                 name = CASE WHEN excluded.last_unix_ms >= players.last_unix_ms THEN excluded.name ELSE players.name END, \
                 first_unix_ms = CASE WHEN excluded.first_unix_ms < players.first_unix_ms THEN excluded.first_unix_ms ELSE players.first_unix_ms END, \
                 last_unix_ms = CASE WHEN excluded.last_unix_ms > players.last_unix_ms THEN excluded.last_unix_ms ELSE players.last_unix_ms END \
                 RETURNING id, banned",
                placeholders(backend, chunk.len(), 4, 1).replace(')', ", 0)")
            );
            let mut query = sqlx::query(&sql);
            for (id, (name, first, last)) in chunk {
                query = query.bind(*id).bind(*name).bind(*first).bind(*last);
            }
            for row in query.fetch_all(&mut *tx).await.map_err(db_error)? {
                let id: String = row.try_get(0).map_err(db_error)?;
                let ban: i64 = row.try_get(1).map_err(db_error)?;
                banned.insert(id, ban != 0);
            }
        }

        // 3. Their standings, all time (0) and this season, as they are now.
        let seasons = [0, season];
        let mut standings: HashMap<(i64, String), Standing> = HashMap::new();
        let mut stored_keys: HashMap<(i64, String), (Option<f64>, Option<i64>)> = HashMap::new();
        for chunk in who.chunks(most / 2) {
            let sql = format!(
                "SELECT season, player_id, rating, uncertainty, rated_rounds, rounds, wins, score, kills, deaths, rating_key, score_key \
                 FROM standings WHERE season IN {} AND player_id IN {}",
                placeholders(backend, 1, 2, 1),
                placeholders(backend, 1, chunk.len(), 3)
            );
            let mut query = sqlx::query(&sql).bind(seasons[0]).bind(seasons[1]);
            for (id, _) in chunk {
                query = query.bind(*id);
            }
            for row in query.fetch_all(&mut *tx).await.map_err(db_error)? {
                let get_i = |i: usize| row.try_get::<i64, _>(i).map_err(db_error);
                let key = (get_i(0)?, row.try_get::<String, _>(1).map_err(db_error)?);
                standings.insert(
                    key.clone(),
                    Standing {
                        rating: Rating {
                            rating: row.try_get(2).map_err(db_error)?,
                            uncertainty: row.try_get(3).map_err(db_error)?,
                        },
                        rated_rounds: get_i(4)?,
                        rounds: get_i(5)?,
                        wins: get_i(6)?,
                        score: get_i(7)?,
                        kills: get_i(8)?,
                        deaths: get_i(9)?,
                    },
                );
                stored_keys.insert(key, (row.try_get(10).map_err(db_error)?, row.try_get(11).map_err(db_error)?));
            }
        }

        // The rounds, one after the other, in memory.
        let mut touched: HashSet<(i64, String)> = HashSet::new();
        let mut lines: Vec<Line<'_>> = Vec::new();
        let mut outcomes: HashMap<&str, Vec<RatedPlayer>> = HashMap::new();
        for round in &new {
            // One line per player (two seats of one player count as their better one).
            let mut seen: HashSet<&str> = HashSet::new();
            let counted: Vec<usize> = (0..round.players.len())
                .filter(|&i| !round.players[i].bot)
                .filter(|&i| round.players[i].player.as_deref().is_some_and(|id| seen.insert(id)))
                .collect();
            let rated: Vec<usize> = rated_players(round, self.rules)
                .into_iter()
                .filter(|i| counted.contains(i))
                .filter(|&i| !banned.get(round.players[i].player.as_deref().unwrap_or("")).copied().unwrap_or(false))
                .collect();
            let mut changes: HashMap<usize, (f64, f64)> = HashMap::new();
            for &season in &seasons {
                let id = |i: usize| round.players[i].player.clone().unwrap_or_default();
                let current: HashMap<usize, Standing> = counted
                    .iter()
                    .map(|&i| (i, standings.get(&(season, id(i))).copied().unwrap_or_else(Standing::fresh)))
                    .collect();
                let after = if rated.len() >= 2 {
                    let input: Vec<(Rating, u16)> =
                        rated.iter().map(|i| (current[i].rating, round.players[*i].place)).collect();
                    rate(&input)
                } else {
                    Vec::new()
                };
                for &i in &counted {
                    let line = &round.players[i];
                    let key = (season, id(i));
                    let mut now = current[&i];
                    now.rounds += 1;
                    now.score += i64::from(line.score);
                    now.kills += i64::from(line.kills);
                    now.deaths += i64::from(line.deaths);
                    if let Some(position) = rated.iter().position(|&r| r == i)
                        && let Some(new_rating) = after.get(position)
                    {
                        if season == 0 {
                            changes.insert(i, (now.rating.ordinal(), new_rating.ordinal()));
                        }
                        now.rating = *new_rating;
                        now.rated_rounds += 1;
                        now.wins += i64::from(line.place == 1);
                    }
                    standings.insert(key.clone(), now);
                    touched.insert(key);
                }
            }
            for index in 0..round.players.len() {
                let change = changes.get(&index);
                lines.push(Line { round, index, before: change.map(|c| c.0), after: change.map(|c| c.1) });
            }
            let rated_lines: Vec<RatedPlayer> = rated
                .iter()
                .filter_map(|i| changes.get(i).map(|c| (i, c)))
                .map(|(i, (before, after))| RatedPlayer {
                    player: round.players[*i].player.clone().expect("rated players have ids"),
                    before: *before,
                    after: *after,
                    rank: None,
                })
                .collect();
            outcomes.insert(round.round_id.as_str(), rated_lines);
        }

        // 4. The standings back, at once, in key order; and the boards' counts by what moved.
        let mut touched: Vec<(i64, String)> = touched.into_iter().collect();
        touched.sort();
        let mut counts = CountChanges::default();
        for chunk in touched.chunks(most / 12) {
            let sql = format!(
                "INSERT INTO standings (season, player_id, rating, uncertainty, rated_rounds, rounds, wins, score, kills, deaths, rating_key, score_key) \
                 VALUES {} ON CONFLICT (season, player_id) DO UPDATE SET rating = excluded.rating, uncertainty = excluded.uncertainty, \
                 rated_rounds = excluded.rated_rounds, rounds = excluded.rounds, wins = excluded.wins, score = excluded.score, \
                 kills = excluded.kills, deaths = excluded.deaths, rating_key = excluded.rating_key, score_key = excluded.score_key",
                placeholders(backend, chunk.len(), 12, 1)
            );
            let mut query = sqlx::query(&sql);
            for key in chunk {
                let standing = standings[key];
                let keys = standing.keys(banned.get(&key.1).copied().unwrap_or(false));
                counts.moved(key.0, stored_keys.get(key).copied().unwrap_or((None, None)), keys);
                query = query
                    .bind(key.0)
                    .bind(key.1.as_str())
                    .bind(standing.rating.rating)
                    .bind(standing.rating.uncertainty)
                    .bind(standing.rated_rounds)
                    .bind(standing.rounds)
                    .bind(standing.wins)
                    .bind(standing.score)
                    .bind(standing.kills)
                    .bind(standing.deaths)
                    .bind(keys.0)
                    .bind(keys.1);
            }
            query.execute(&mut *tx).await.map_err(db_error)?;
        }
        for chunk in lines.chunks(most / 17) {
            let sql = format!(
                "INSERT INTO round_players (round_id, line, player_id, name, place, bot, left_early, score, kills, deaths, orbs, shots, hits, seconds_played, ordinal_before, ordinal_after, net_id) VALUES {}",
                placeholders(backend, chunk.len(), 17, 1)
            );
            let mut query = sqlx::query(&sql);
            for line in chunk {
                query = bind_line(query, line);
            }
            query.execute(&mut *tx).await.map_err(db_error)?;
        }
        counts.apply(self.backend, &mut tx).await?;
        tx.commit().await.map_err(db_error)?;
        // The first copy of a new round carries its changes; a repeat is a duplicate.
        let mut answered: HashSet<&str> = HashSet::new();
        Ok(rounds
            .iter()
            .map(|round| {
                let id = round.round_id.as_str();
                (new_ids.contains(id) && answered.insert(id)).then(|| outcomes.remove(id).unwrap_or_default())
            })
            .collect())
    }
}
