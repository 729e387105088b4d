//! Rounds: a room plays rounds that end by time (`RoundRules::seconds`) or as soon as a player
//! reaches the score limit. The end freezes play, closes the round's replay, and sends every
//! player and spectator the results ([`ServerMsg::RoundOver`]); after the intermission a fresh
//! round starts in the same room with the same players (a new world and replay, as a host's
//! restart does). Humans who leave a running round are kept in its results as its last places:
//! leaving is no escape from a bad round. A dropped connection whose seat is held has not left.
//!
//! With storage on (`config.results`), the round's record goes to the writer, and the results
//! are shown once the writer has it on disk (at most [`SAVE_WAIT`] later): an end screen never
//! shows a result that a crash could still lose.

use shared::protocol::{self, Placement, RatingChange, RoundEnd, RoundOver, RoundRated, ServerMsg};
use shared::snapshot::NetId;
use shared::tick::Tick;
use tokio::time::Instant;
use tracing::info;

use super::state::{Room, round_id};
use crate::net::kick::ConnId;
use crate::sim::entities::Player;

/// Longest the results wait for the writer to have the round on disk.
pub const SAVE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// A player's line in the results (its place filled in by [`rank`]).
fn placement(player: &Player, left: bool, identity: Option<&String>) -> Placement {
    Placement {
        place: 0,
        id: player.net_id,
        name: player.name.clone(),
        bot: player.bot.is_some(),
        left,
        score: player.score,
        kills: player.kills,
        deaths: player.deaths,
        orbs: player.orbs,
        shots: player.shots,
        hits: player.shot_hits,
        player: identity.cloned(),
    }
}

/// Orders the players still in the round best first (score, then kills, then fewer deaths; the
/// same three share a place), then the leavers, the last to leave ahead, each a place of its own.
pub fn rank(mut present: Vec<Placement>, leavers: &[Placement]) -> Vec<Placement> {
    let key = |p: &Placement| (std::cmp::Reverse(p.score), std::cmp::Reverse(p.kills), p.deaths);
    present.sort_by(|a, b| key(a).cmp(&key(b)).then(a.id.0.cmp(&b.id.0)));
    let mut place = 0u16;
    let mut previous = None;
    for (index, line) in present.iter_mut().enumerate() {
        if previous != Some(key(line)) {
            place = index as u16 + 1;
            previous = Some(key(line));
        }
        line.place = place;
    }
    let first = present.len() as u16 + 1;
    for (place, leaver) in (first..).zip(leavers.iter().rev()) {
        present.push(Placement { place, left: true, ..leaver.clone() });
    }
    present
}

impl Room {
    /// The tick the running round ends at by time (`None`: no time limit, or between rounds).
    pub(super) fn round_ends_at(&self) -> Option<Tick> {
        if self.rounds.is_over() || self.rounds.rules.seconds == 0 {
            return None;
        }
        Some(Tick(self.rounds.rules.seconds.saturating_mul(u32::from(self.config.tick_hz))))
    }

    /// After each tick: ends the round when its time is up or a player reached the score
    /// limit; between rounds, starts the next one once the intermission is over.
    pub(super) fn check_round(&mut self) {
        if let Some((_, saved, since)) = &self.rounds.saving {
            if saved.load(std::sync::atomic::Ordering::Acquire) || since.elapsed() >= SAVE_WAIT {
                let (over, _, _) = self.rounds.saving.take().expect("checked");
                self.show_round_over(over);
            }
            return;
        }
        if let Some((next_at, over)) = &self.rounds.over {
            if let Some(changes) = self.rounds.rating.as_ref().and_then(|rated| rated.get()) {
                let rated = RoundRated {
                    round_id: over.round_id.clone(),
                    changes: changes
                        .iter()
                        .filter_map(|change| {
                            let line = over.placements.iter().find(|p| p.player.as_deref() == Some(&change.player))?;
                            Some(RatingChange {
                                id: line.id,
                                before: change.before as f32,
                                after: change.after as f32,
                                rank: change.rank.map(|r| r.min(u64::from(u32::MAX)) as u32),
                            })
                        })
                        .collect(),
                };
                self.rounds.rating = None;
                let bytes = protocol::encode(&ServerMsg::RoundRated(Box::new(rated)));
                let conns: Vec<ConnId> = self.clients.keys().chain(self.spectators.keys()).copied().collect();
                for conn in conns {
                    self.send_now(conn, bytes.clone());
                }
                return;
            }
            if Instant::now() >= *next_at {
                let map = self.setup.map.clone();
                self.new_match(map);
            }
            return;
        }
        if let Some(ends_at) = self.round_ends_at()
            && !ends_at.is_newer_than(self.world.tick)
        {
            return self.end_round(RoundEnd::TimeUp);
        }
        if let Some(limit) = self.rounds.rules.score_limit
            && let Some(best) = self.world.players.values().filter(|p| p.score >= limit).min_by_key(|p| p.net_id.0)
        {
            let by = best.net_id;
            self.end_round(RoundEnd::ScoreLimit { by });
        }
    }

    /// Ends the running round: play freezes, the replay closes, everyone gets the results.
    pub(super) fn end_round(&mut self, why: RoundEnd) {
        self.world.freeze();
        self.close_recording();
        let present: Vec<Placement> =
            self.world.players.values().map(|p| placement(p, false, self.identities.get(&p.net_id))).collect();
        let placements = rank(present, &self.rounds.leavers);
        let intermission = self.config.intermission;
        let over = Box::new(RoundOver {
            round: self.rounds.number,
            round_id: self.rounds.id.clone(),
            why,
            placements,
            next_round_in_ms: intermission.as_millis().min(u128::from(u32::MAX)) as u32,
        });
        info!(
            room = %self.setup.code,
            round = over.round,
            round_id = %over.round_id,
            ?why,
            players = over.placements.len(),
            winner = over.placements.first().map_or("", |p| p.name.as_str()),
            "round over"
        );
        let saved = self.config.results.as_ref().and_then(|sink| {
            let record = self.round_record(&over);
            let saved = sink.offer(record);
            if saved.is_none() {
                tracing::error!(room = %self.setup.code, round_id = %over.round_id, "the results queue is full: this round is not stored");
            }
            saved
        });
        match saved {
            Some((saved, rated)) => {
                self.rounds.saving = Some((over, saved, Instant::now()));
                self.rounds.rating = Some(rated);
            }
            None => self.show_round_over(over),
        }
        self.mark_room_changed();
    }

    /// Sends everyone the results; the intermission starts now.
    fn show_round_over(&mut self, over: Box<RoundOver>) {
        let intermission = self.config.intermission;
        let bytes = protocol::encode(&ServerMsg::RoundOver(over.clone()));
        let conns: Vec<ConnId> = self.clients.keys().chain(self.spectators.keys()).copied().collect();
        for conn in conns {
            self.send_now(conn, bytes.clone());
        }
        self.rounds.over = Some((Instant::now() + intermission, over));
    }

    /// The round as storage keeps it.
    fn round_record(&self, over: &RoundOver) -> crate::store::record::RoundRecord {
        let hz = u32::from(self.config.tick_hz.max(1));
        let now = self.world.tick;
        let seconds = |id: NetId| -> u32 {
            match self.world.players.values().find(|p| p.net_id == id) {
                Some(p) => now.0.saturating_sub(p.joined_at.0) / hz,
                None => self.rounds.played.get(&id).copied().unwrap_or(0),
            }
        };
        crate::store::record::RoundRecord {
            round_id: over.round_id.clone(),
            server: self.config.lobby.as_ref().map_or_else(|| self.config.server_name.clone(), |l| l.instance.clone()),
            room: self.setup.code.to_string(),
            round: over.round,
            map: self.setup.map.id.clone(),
            ended_unix_ms: crate::stats::unix_ms(),
            why: match over.why {
                RoundEnd::TimeUp => "time".to_string(),
                RoundEnd::ScoreLimit { .. } => "score".to_string(),
            },
            seconds: now.0 / hz,
            replay: self.rounds.replay.clone(),
            players: over
                .placements
                .iter()
                .map(|p| crate::store::record::RecordedPlayer {
                    player: if p.bot { None } else { p.player.clone() },
                    name: p.name.clone(),
                    place: p.place,
                    bot: p.bot,
                    left: p.left,
                    score: p.score,
                    kills: p.kills,
                    deaths: p.deaths,
                    orbs: p.orbs,
                    shots: p.shots,
                    hits: p.hits,
                    seconds_played: seconds(p.id),
                    net_id: Some(p.id.0),
                })
                .collect(),
        }
    }

    /// Tells a client who joined between rounds what the others see: the results.
    pub(super) fn send_round_over_to(&mut self, conn: ConnId) {
        let Some((next_at, over)) = &self.rounds.over else { return };
        let left = next_at.saturating_duration_since(Instant::now());
        let over = Box::new(RoundOver {
            next_round_in_ms: left.as_millis().min(u128::from(u32::MAX)) as u32,
            ..(**over).clone()
        });
        self.send_now(conn, protocol::encode(&ServerMsg::RoundOver(over)));
    }

    /// Counts a human who left the running round (a goodbye, a seat that expired, a kick) as one
    /// of its last places.
    pub(super) fn note_leaver(&mut self, player: &Player) {
        if player.bot.is_some() || self.rounds.is_over() || self.rounds.rules.is_endless() {
            return;
        }
        let hz = u32::from(self.config.tick_hz.max(1));
        self.rounds.played.insert(player.net_id, self.world.tick.0.saturating_sub(player.joined_at.0) / hz);
        self.rounds.leavers.push(placement(player, true, self.identities.get(&player.net_id)));
    }

    /// A player who left with a goodbye came back within the grace (a reload): not a leaver.
    pub(super) fn forget_leaver(&mut self, id: NetId) {
        self.rounds.leavers.retain(|leaver| leaver.id != id);
    }

    /// A new round begins (called by `new_match`).
    pub(super) fn start_round(&mut self) {
        self.rounds.number += 1;
        self.rounds.id = round_id();
        self.rounds.leavers.clear();
        self.rounds.played.clear();
        self.rounds.over = None;
        self.rounds.saving = None;
        self.rounds.rating = None;
        self.rounds.replay = None;
    }
}

#[cfg(test)]
mod tests {
    use shared::room::RoundRules;

    use super::*;

    fn line(id: u32, score: u16, kills: u16, deaths: u16) -> Placement {
        Placement {
            place: 0,
            id: NetId(id),
            name: format!("p{id}"),
            bot: false,
            left: false,
            score,
            kills,
            deaths,
            orbs: 0,
            shots: 0,
            hits: 0,
            player: None,
        }
    }

    #[test]
    fn placements_rank_by_score_kills_and_deaths_and_leavers_come_last() {
        let present = vec![line(1, 10, 1, 0), line(2, 30, 3, 1), line(3, 10, 1, 0), line(4, 10, 2, 5)];
        let leavers = vec![line(7, 99, 9, 0), line(8, 50, 0, 0)];
        let ranked = rank(present, &leavers);
        let order: Vec<(u32, u16, bool)> = ranked.iter().map(|p| (p.id.0, p.place, p.left)).collect();
        assert_eq!(
            order,
            [(2, 1, false), (4, 2, false), (1, 3, false), (3, 3, false), (8, 5, true), (7, 6, true)],
            "ties share a place; a leaver ranks below everyone who stayed, whatever their score"
        );
    }

    fn join(room: &mut Room, conn: u64) -> tokio::sync::mpsc::Receiver<Vec<u8>> {
        let (outbox, receiver) = tokio::sync::mpsc::channel(64);
        let (reply, _welcome) = tokio::sync::oneshot::channel();
        room.handle(crate::room::SimInput::Join {
            conn: ConnId(conn),
            name: format!("p{conn}"),
            resume: None,
            outbox,
            kick: crate::net::kick::Kick::new(),
            reply,
            spectator: false,
            host_key: None,
            client_id: conn,
            ip: None,
            seat_only: false,
            player: None,
        });
        receiver
    }

    fn round_over(receiver: &mut tokio::sync::mpsc::Receiver<Vec<u8>>) -> Option<RoundOver> {
        while let Ok(bytes) = receiver.try_recv() {
            if let Ok(ServerMsg::RoundOver(over)) = protocol::decode_server(&bytes) {
                return Some(*over);
            }
        }
        None
    }

    #[test]
    fn the_score_limit_ends_the_round_and_a_joiner_between_rounds_gets_the_results() {
        let config = std::sync::Arc::new(crate::config::ServerConfig {
            rounds: RoundRules { seconds: 0, score_limit: Some(20) },
            bots: 0,
            ..crate::config::ServerConfig::default()
        });
        let mut room = Room::new(config, std::sync::Arc::new(crate::stats::RoomStats::default()));
        let mut first = join(&mut room, 1);
        room.step();
        assert!(round_over(&mut first).is_none(), "no score, no end");
        let key = room.world.players.keys().next().unwrap();
        room.world.players[key].score = 20;
        room.step();
        let over = round_over(&mut first).expect("the score limit ends the round");
        assert_eq!(over.why, RoundEnd::ScoreLimit { by: room.world.players[key].net_id });
        assert!(room.world.frozen && room.rounds.is_over());
        assert_eq!(room.round_ends_at(), None);
        // Someone joining now is told the results too, after their welcome.
        let mut late = join(&mut room, 2);
        let told = round_over(&mut late).expect("the joiner gets the results");
        assert_eq!(told.round_id, over.round_id);
        assert!(told.next_round_in_ms <= over.next_round_in_ms);
    }
}
