//! What the write and the boards share: a player's standing in one season and its keys on the
//! boards; the boards' buckets (a rating bucket is 1/16 of a point; a score bucket is one score
//! below 1,024 and 1/128 of a doubling above), and the changes to their counts; multi-row
//! placeholders.

use std::collections::BTreeMap;

use super::db::{Backend, Board, db_error};
use super::rating::Rating;

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Most bind values in one statement (SQLite allows 32,766, PostgreSQL 65,535).
pub(super) const MOST_BINDS: usize = 30_000;

/// `($a, $b, …), (…)`: `rows` groups of `columns` placeholders numbered from `$first`; on
/// SQLite plain `?`s in the same order. (`sqlx` asks SQLite each numbered parameter's name, and
/// SQLite finds a name by walking the statement's list of them: binding thousands of `$N`s
/// costs the square of their number; plain `?`s have no names to walk.)
pub(super) fn placeholders(backend: Backend, rows: usize, columns: usize, first: usize) -> String {
    let mut text = String::with_capacity(rows * columns * 6);
    for row in 0..rows {
        text.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..columns {
            if column > 0 {
                text.push_str(", ");
            }
            if backend == Backend::Sqlite {
                text.push('?');
            } else {
                text.push('$');
                text.push_str(&(first + row * columns + column).to_string());
            }
        }
        text.push(')');
    }
    text
}

/// Score buckets below this hold one score each.
pub(super) const EXACT_SCORES: i64 = 1024;
/// Score buckets per doubling above it.
const SCORE_STEPS: i64 = 128;
/// Rating buckets per point.
const RATING_STEPS: f64 = 16.0;

/// The bucket a key falls in.
pub(super) fn bucket(board: Board, key: f64) -> i64 {
    match board {
        Board::Rating => (key * RATING_STEPS).floor().clamp(-1e9, 1e9) as i64,
        Board::Score => {
            let score = key.max(0.0) as i64;
            if score < EXACT_SCORES {
                return score;
            }
            let octave = 63 - i64::from(score.leading_zeros());
            let step = (score >> (octave - 7)) & (SCORE_STEPS - 1);
            EXACT_SCORES + (octave - 10) * SCORE_STEPS + step
        }
    }
}

/// The first key above `bucket`, or `None` when the bucket holds one key (scores below 1,024).
pub(super) fn bucket_top(board: Board, bucket: i64) -> Option<f64> {
    match board {
        Board::Rating => Some((bucket + 1) as f64 / RATING_STEPS),
        Board::Score if bucket < EXACT_SCORES => None,
        Board::Score => {
            let octave = 10 + (bucket - EXACT_SCORES) / SCORE_STEPS;
            let step = (bucket - EXACT_SCORES) % SCORE_STEPS;
            Some((((SCORE_STEPS + step) << (octave - 7)) + (1 << (octave - 7))) as f64)
        }
    }
}

/// A player's standing in one season, as the write works on it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Standing {
    pub rating: Rating,
    pub rated_rounds: i64,
    pub rounds: i64,
    pub wins: i64,
    pub score: i64,
    pub kills: i64,
    pub deaths: i64,
}

impl Standing {
    pub fn fresh() -> Standing {
        Standing { rating: Rating::default(), rated_rounds: 0, rounds: 0, wins: 0, score: 0, kills: 0, deaths: 0 }
    }

    /// Its keys on the rating and score boards (`None`: not on that board).
    pub fn keys(&self, banned: bool) -> (Option<f64>, Option<i64>) {
        if banned {
            return (None, None);
        }
        ((self.rated_rounds > 0).then(|| self.rating.ordinal()), (self.rounds > 0).then_some(self.score))
    }
}

/// Changes to the boards' bucket counts, applied in key order (locks taken in one order).
#[derive(Default)]
pub(super) struct CountChanges(BTreeMap<(i64, i64, i64), i64>);

impl CountChanges {
    /// A standing's keys went from `before` to `after`.
    pub fn moved(&mut self, season: i64, before: (Option<f64>, Option<i64>), after: (Option<f64>, Option<i64>)) {
        let rating = |key: Option<f64>| key.map(|k| bucket(Board::Rating, k));
        let score = |key: Option<i64>| key.map(|k| bucket(Board::Score, k as f64));
        for (board, old, new) in
            [(Board::Rating, rating(before.0), rating(after.0)), (Board::Score, score(before.1), score(after.1))]
        {
            if old == new {
                continue;
            }
            if let Some(old) = old {
                *self.0.entry((season, board.code(), old)).or_default() -= 1;
            }
            if let Some(new) = new {
                *self.0.entry((season, board.code(), new)).or_default() += 1;
            }
        }
    }

    pub async fn apply(self, backend: Backend, tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<(), String> {
        let changes: Vec<((i64, i64, i64), i64)> = self.0.into_iter().filter(|(_, delta)| *delta != 0).collect();
        for chunk in changes.chunks(MOST_BINDS / 4) {
            let sql = format!(
                "INSERT INTO board_counts (season, board, bucket, players) VALUES {} \
                 ON CONFLICT (season, board, bucket) DO UPDATE SET players = board_counts.players + excluded.players",
                placeholders(backend, chunk.len(), 4, 1)
            );
            let mut query = sqlx::query(&sql);
            for ((season, board, bucket), delta) in chunk {
                query = query.bind(*season).bind(*board).bind(*bucket).bind(*delta);
            }
            query.execute(&mut **tx).await.map_err(db_error)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_ordered_and_their_tops_bound_them() {
        for board in [Board::Rating, Board::Score] {
            let keys: Vec<f64> = match board {
                Board::Rating => (-400..800).map(|k| f64::from(k) / 13.0).collect(),
                Board::Score => (0..200_000).step_by(37).map(f64::from).collect(),
            };
            let mut last = i64::MIN;
            for key in keys {
                let b = bucket(board, key);
                assert!(b >= last, "{board:?}: {key} fell back to bucket {b} after {last}");
                last = b;
                match bucket_top(board, b) {
                    Some(top) => {
                        assert!(key < top, "{board:?}: {key} not below its bucket's top {top}");
                        assert!(bucket(board, top) > b, "{board:?}: the top {top} of {b} is in it");
                    }
                    None => assert!(key < EXACT_SCORES as f64 && board == Board::Score),
                }
            }
        }
        assert_eq!(bucket(Board::Score, 1023.0), 1023);
        assert_eq!(bucket(Board::Score, 1024.0), 1024);
        assert_eq!(bucket(Board::Score, 1031.0), 1024, "1/128 of 1,024..2,048 is 8 wide");
        assert_eq!(bucket(Board::Score, 1032.0), 1025);
    }

    #[test]
    fn placeholders_number_rows_and_columns() {
        assert_eq!(placeholders(Backend::Postgres, 2, 3, 1), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(placeholders(Backend::Postgres, 1, 2, 3), "($3, $4)");
        assert_eq!(placeholders(Backend::Sqlite, 2, 2, 1), "(?, ?), (?, ?)");
        assert_eq!(placeholders(Backend::Postgres, 2, 1, 1).replace(')', ", 0)"), "($1, 0), ($2, 0)");
    }

    #[test]
    fn count_changes_follow_a_standing_between_buckets() {
        let mut counts = CountChanges::default();
        counts.moved(0, (None, None), (Some(1.0), Some(10)));
        counts.moved(0, (Some(1.0), Some(10)), (Some(1.01), Some(12)));
        counts.moved(3, (Some(5.0), Some(7)), (None, None));
        let rating = bucket(Board::Rating, 1.0);
        assert_eq!(counts.0.get(&(0, 0, rating)), Some(&1), "1.0 and 1.01 share a bucket");
        assert_eq!(counts.0.get(&(0, 1, 10)), Some(&0));
        assert_eq!(counts.0.get(&(0, 1, 12)), Some(&1));
        assert_eq!(counts.0.get(&(3, 0, bucket(Board::Rating, 5.0))), Some(&-1));
        assert_eq!(counts.0.get(&(3, 1, 7)), Some(&-1));
    }
}
