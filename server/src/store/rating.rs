//! Ratings: Weng-Lin (OpenSkill, the `skillratings` crate) over a round's placements, every
//! player their own team. Who is rated, and when a round counts:
//! - only humans with a player id (guests or token players); bots neither are rated nor rate;
//! - a round counts when at least 2 such humans each played [`RatingRules::min_play`] of it;
//! - those players are rated by their places, and so is every such human who left the running
//!   round, whatever they played: leaving counts as the round's last place (no rage-quit escape);
//!   a dropped connection whose seat was held has not left;
//! - players with the same place tie.
//!
//! The board shows a conservative ordinal, `rating - 3 × uncertainty`: new players start at
//! 0 (25 − 3 × 8.33) and climb as the uncertainty shrinks.

use skillratings::MultiTeamOutcome;
use skillratings::weng_lin::{WengLinConfig, WengLinRating, weng_lin_multi_team};

use super::record::RoundRecord;

/// A player's rating as stored.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rating {
    pub rating: f64,
    pub uncertainty: f64,
}

impl Default for Rating {
    fn default() -> Self {
        let fresh = WengLinRating::new();
        Rating { rating: fresh.rating, uncertainty: fresh.uncertainty }
    }
}

impl Rating {
    /// What boards sort by and show: the rating less three uncertainties.
    pub fn ordinal(&self) -> f64 {
        self.rating - 3.0 * self.uncertainty
    }
}

/// When a round counts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RatingRules {
    /// Seconds a player must have played for the round to count them (60).
    pub min_play: u32,
}

impl Default for RatingRules {
    fn default() -> Self {
        RatingRules { min_play: 60 }
    }
}

/// The indices (into `round.players`) of the players the round rates, or none when it does not
/// count.
pub fn rated_players(round: &RoundRecord, rules: RatingRules) -> Vec<usize> {
    let human = |i: &usize| !round.players[*i].bot && round.players[*i].player.is_some();
    let played = |i: &usize| round.players[*i].seconds_played >= rules.min_play;
    let qualified = (0..round.players.len()).filter(human).filter(played).count();
    if qualified < 2 {
        return Vec::new();
    }
    (0..round.players.len()).filter(human).filter(|i| played(i) || round.players[*i].left).collect()
}

/// New ratings for `players` (their rating and place), in the same order.
pub fn rate(players: &[(Rating, u16)]) -> Vec<Rating> {
    let teams: Vec<[WengLinRating; 1]> =
        players.iter().map(|(r, _)| [WengLinRating { rating: r.rating, uncertainty: r.uncertainty }]).collect();
    let input: Vec<(&[WengLinRating], MultiTeamOutcome)> = teams
        .iter()
        .zip(players)
        .map(|(team, (_, place))| (&team[..], MultiTeamOutcome::new(usize::from(*place))))
        .collect();
    weng_lin_multi_team(&input, &WengLinConfig::new())
        .into_iter()
        .map(|team| {
            team.first().map_or_else(Rating::default, |r| Rating { rating: r.rating, uncertainty: r.uncertainty })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::record::RecordedPlayer;

    fn line(player: Option<&str>, place: u16, seconds: u32, left: bool, bot: bool) -> RecordedPlayer {
        RecordedPlayer {
            player: player.map(str::to_string),
            name: player.unwrap_or("bot").to_string(),
            place,
            bot,
            left,
            score: 0,
            kills: 0,
            deaths: 0,
            orbs: 0,
            shots: 0,
            hits: 0,
            seconds_played: seconds,
            net_id: None,
        }
    }

    fn round(players: Vec<RecordedPlayer>) -> RoundRecord {
        RoundRecord {
            round_id: "0".repeat(32),
            server: "s".into(),
            room: "ABCD".into(),
            round: 1,
            map: "arena".into(),
            ended_unix_ms: 0,
            why: "time".into(),
            seconds: 300,
            replay: None,
            players,
        }
    }

    #[test]
    fn a_round_counts_with_two_humans_who_played_a_minute_and_leavers_are_rated_last() {
        let rules = RatingRules::default();
        let one = round(vec![line(Some("a"), 1, 300, false, false), line(None, 2, 300, false, true)]);
        assert!(rated_players(&one, rules).is_empty(), "one human and a bot: no rating");
        let short = round(vec![line(Some("a"), 1, 300, false, false), line(Some("b"), 2, 30, false, false)]);
        assert!(rated_players(&short, rules).is_empty(), "b played half a minute");
        let anonymous = round(vec![line(Some("a"), 1, 300, false, false), line(None, 2, 300, false, false)]);
        assert!(rated_players(&anonymous, rules).is_empty(), "no id, no rating");
        let quitter = round(vec![
            line(Some("a"), 1, 300, false, false),
            line(Some("b"), 2, 300, false, false),
            line(None, 3, 300, false, true),
            line(Some("q"), 4, 20, true, false),
            line(Some("late"), 3, 10, false, false),
        ]);
        assert_eq!(rated_players(&quitter, rules), [0, 1, 3], "the quitter is rated (last); the late joiner is not");
    }

    #[test]
    fn winners_gain_losers_lose_and_ties_stay_level() {
        let fresh = Rating::default();
        assert!(fresh.ordinal().abs() < 1e-9, "new players start at 0");
        let after = rate(&[(fresh, 1), (fresh, 2), (fresh, 3)]);
        assert!(after[0].rating > fresh.rating && after[2].rating < fresh.rating, "{after:?}");
        assert!(after.iter().all(|r| r.uncertainty < fresh.uncertainty), "every round teaches something");
        let tie = rate(&[(fresh, 1), (fresh, 1)]);
        assert!((tie[0].rating - tie[1].rating).abs() < 1e-9, "{tie:?}");
    }
}
