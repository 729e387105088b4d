//! Seats: joins of players and spectators, resume tokens and held seats, the room's bans, and
//! leaves (a dropped connection's seat is held for a resume; a goodbye frees it).

use std::time::Duration;

use shared::protocol::{self, DisconnectReason, ServerMsg, Welcome};
use shared::room::{HostKey, RoomInfo};
use shared::snapshot::NetId;
use tokio::time::Instant;
use tracing::{info, warn};

use super::state::{Client, Departed, HeldSeat, Room, Spectator};
use crate::net::kick::{ConnId, Kick, Outbox};
use crate::replay::Op;
use crate::sim::world::PlayerKey;
use crate::snapshot::Baselines;
use crate::snapshot::budget::Budget;

/// What a resume token in a hello finds (see [`Room::claim_seat`]).
struct Seat {
    player: PlayerKey,
    player_id: NetId,
    name: String,
    token: u64,
    /// The seat was in play on this connection (a takeover), which loses it.
    replaced: Option<ConnId>,
}

/// A resume may take a seat from a live connection only after this long without a message from
/// it: long enough that two racing resumes cannot both win, short enough that a player whose
/// old socket is half-open (the server has not noticed it yet) gets back in at once.
pub const TAKEOVER_SILENCE: Duration = Duration::from_secs(2);

/// Seats one (non-loopback) address may have held in a room at once; more drops leave at once.
pub const MAX_HELD_PER_ADDRESS: usize = 4;

/// Spectators one room admits at once.
pub const MAX_SPECTATORS: u16 = 64;

impl Room {
    /// Whether `key` is this room's host key (constant time: no timing hints for guessers).
    pub(super) fn is_host_key(&self, key: Option<&HostKey>) -> bool {
        use subtle::ConstantTimeEq;
        key.is_some_and(|key| bool::from(key.ct_eq(&self.setup.host_key)))
    }

    /// Kicks a player whose seat is held (no connection to close): the seat goes and its token,
    /// browser id and address are barred as for a connected player. The player's name, if found.
    pub(super) fn kick_held(&mut self, player: NetId, reason: DisconnectReason) -> Option<String> {
        let token = self.held.iter().find(|(_, seat)| seat.player_id == player).map(|(token, _)| *token)?;
        let seat = self.held.remove(&token).expect("found");
        if seat.client_id != 0 {
            self.banned_clients.insert(seat.client_id);
        }
        if let Some(ip) = seat.ip.filter(|ip| !ip.is_loopback()) {
            self.banned_ips.insert(crate::rate::address_key(ip));
        }
        self.banned_tokens.insert(token);
        self.remove_seat(seat.player, seat.player_id, reason);
        if self.held_host == Some(token) {
            self.held_host = None;
            self.pass_host_on();
        }
        self.publish();
        Some(seat.name)
    }

    /// Whether a join comes from someone the host kicked: the same browser id, resume token or
    /// address. Loopback addresses are never banned: everyone on the server's own machine
    /// shares them.
    pub(super) fn is_banned(&self, client_id: u64, resume: Option<u64>, ip: Option<std::net::IpAddr>) -> bool {
        (client_id != 0 && self.banned_clients.contains(&client_id))
            || resume.is_some_and(|token| self.banned_tokens.contains(&token))
            || ip.is_some_and(|ip| !ip.is_loopback() && self.banned_ips.contains(&crate::rate::address_key(ip)))
    }

    /// A fresh resume token: a random nonce and its tag (HMAC under this room's key), so the
    /// room can tell its own tokens (live, held or expired) from forged ones or another room's
    /// without remembering every token it ever gave out.
    pub(super) fn new_resume_token(&self) -> u64 {
        loop {
            let nonce: u32 = rand::random();
            let token = (u64::from(nonce) << 32) | u64::from(self.resume_tag(nonce));
            let taken = self.held.contains_key(&token) || self.clients.values().any(|c| c.resume_token == token);
            if token != 0 && !taken {
                return token;
            }
        }
    }

    pub(super) fn resume_tag(&self, nonce: u32) -> u32 {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.token_key).expect("any key length");
        mac.update(b"arena resume token");
        mac.update(&nonce.to_le_bytes());
        let tag = mac.finalize().into_bytes();
        u32::from_le_bytes([tag[0], tag[1], tag[2], tag[3]])
    }

    /// What a hello's resume token gets: its held seat; its seat taken over from a connection
    /// silent for [`TAKEOVER_SILENCE`] (that connection is closed as [`DisconnectReason::Replaced`]);
    /// nothing (`None`: a token of this room whose seat is gone, so a new player); or a refusal
    /// (not this room's token, or its seat is in play on a live connection).
    fn claim_seat(&mut self, token: u64) -> Result<Option<Seat>, DisconnectReason> {
        let tag_ok = {
            use subtle::ConstantTimeEq;
            bool::from(self.resume_tag((token >> 32) as u32).ct_eq(&(token as u32)))
        };
        if !tag_ok {
            return Err(DisconnectReason::ResumeRefused {
                why: "not a player of this room (a token from another room, from before a server restart, or forged)"
                    .to_string(),
            });
        }
        if let Some(held) = self.held.remove(&token) {
            return Ok(Some(Seat {
                player: held.player,
                player_id: held.player_id,
                name: held.name,
                token,
                replaced: None,
            }));
        }
        let Some((&old, client)) = self.clients.iter().find(|(_, c)| c.resume_token == token) else {
            return Ok(None);
        };
        let silent = client.last_heard.elapsed();
        if silent < TAKEOVER_SILENCE && !client.kick.is_kicked() {
            let after = TAKEOVER_SILENCE - silent + Duration::from_millis(100);
            return Err(DisconnectReason::SeatInUse { after_ms: after.as_millis().min(u128::from(u32::MAX)) as u32 });
        }
        let client = self.clients.remove(&old).expect("found above");
        client.kick.kick(DisconnectReason::Replaced);
        Ok(Some(Seat {
            player: client.player,
            player_id: client.player_id,
            name: client.name,
            token,
            replaced: Some(old),
        }))
    }

    /// Removes the held seats whose grace period is over: those players leave as lost.
    pub(super) fn expire_held_seats(&mut self) {
        if self.held.is_empty() {
            return;
        }
        let grace = self.config.resume_grace;
        let expired: Vec<u64> =
            self.held.iter().filter(|(_, seat)| seat.since.elapsed() >= grace).map(|(token, _)| *token).collect();
        if expired.is_empty() {
            return;
        }
        for token in expired {
            let seat = self.held.remove(&token).expect("listed");
            info!(room = %self.setup.code, player = %seat.player_id, name = %seat.name, "held seat expired");
            self.remove_seat(seat.player, seat.player_id, DisconnectReason::ConnectionLost);
            if self.held_host == Some(token) {
                self.held_host = None;
                self.pass_host_on();
            }
        }
        self.publish();
    }

    /// Whether `token` carries this room's tag (it may still name no seat). A forged one is
    /// refused by [`Room::claim_seat`] with its own reason.
    pub(super) fn is_own_token(&self, token: u64) -> bool {
        use subtle::ConstantTimeEq;
        bool::from(self.resume_tag((token >> 32) as u32).ct_eq(&(token as u32)))
    }

    /// Whether `resume` names a seat of this room: held, in play, or left within the grace (a
    /// reload): what a reused single-use join token may take back.
    pub(super) fn has_seat_for(&self, resume: Option<u64>) -> bool {
        resume.is_some_and(|token| {
            self.held.get(&token).is_some_and(|held| held.since.elapsed() < self.config.resume_grace)
                || self.clients.values().any(|client| client.resume_token == token)
                || self.departed.get(&token).is_some_and(|d| d.left_at.elapsed() < self.config.resume_grace)
        })
    }

    pub(super) fn remove_seat(
        &mut self,
        player: PlayerKey,
        id: NetId,
        reason: DisconnectReason,
    ) -> Option<crate::sim::world::Player> {
        self.record(Op::Leave { id, reason: reason.clone() });
        let removed = self.world.remove_player(player, reason);
        if let Some(player) = &removed {
            self.note_leaver(player);
        }
        removed
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn join(
        &mut self,
        conn: ConnId,
        name: String,
        resume: Option<u64>,
        outbox: Outbox,
        kick: Kick,
        host_key: Option<HostKey>,
        (client_id, ip, identity): (u64, Option<std::net::IpAddr>, Option<String>),
    ) -> Result<Vec<u8>, DisconnectReason> {
        self.expire_held_seats();
        let key_holder = self.is_host_key(host_key.as_ref());
        let seat = match resume {
            Some(token) => self.claim_seat(token)?,
            None => None,
        };
        // Back soon after a goodbye (a reload) counts as one of the room's players for the lock.
        let grace = self.config.resume_grace;
        self.departed.retain(|_, departed| departed.left_at.elapsed() < grace);
        let reloading = resume.is_some_and(|token| self.departed.contains_key(&token));
        if seat.is_none() {
            if self.locked && !key_holder && !reloading {
                return Err(DisconnectReason::RoomLocked);
            }
            if self.humans() >= usize::from(self.setup.max_players) {
                return Err(DisconnectReason::RoomFull { max: self.setup.max_players });
            }
        }
        if self.world.tick.0 == 0 {
            self.ensure_recording();
        }
        let resumed = seat.is_some();
        let (player, player_id, name, resume_token) = match seat {
            Some(seat) => {
                // The same entity, id, position, health and score: no join or leave for anyone.
                if let Some(old) = seat.replaced {
                    if self.host == Some(old) {
                        self.host = Some(conn);
                        self.mark_room_changed();
                    }
                    info!(room = %self.setup.code, conn = old.0, player = %seat.player_id, "seat taken over by a newer connection");
                }
                if self.held_host == Some(seat.token) {
                    // The role waited for them.
                    self.held_host = None;
                    self.host = Some(conn);
                    self.mark_room_changed();
                }
                self.world.set_away(seat.player, false);
                self.record(Op::Back { id: seat.player_id });
                (seat.player, seat.player_id, seat.name, seat.token)
            }
            None => {
                let player = self.world.add_player(name.clone(), false);
                let player_id = self.world.players[player].net_id;
                self.record(Op::Join { id: player_id, name: name.clone(), bot: false });
                // Back soon after a goodbye (a reload): a new entity with the old score.
                match resume.and_then(|token| self.departed.remove(&token).map(|d| (token, d))) {
                    Some((token, d)) => {
                        self.world.restore_stats(player, d.score, d.kills, d.deaths);
                        self.forget_leaver(d.id);
                        self.record(Op::Resume { id: player_id, score: d.score, kills: d.kills, deaths: d.deaths });
                        (player, player_id, name, token)
                    }
                    None => (player, player_id, name, self.new_resume_token()),
                }
            }
        };
        if let Some(identity) = identity {
            self.identities.insert(player_id, identity);
        }
        self.clients.insert(
            conn,
            Client {
                player,
                player_id,
                name: name.clone(),
                client_id,
                ip,
                outbox,
                kick,
                baselines: Baselines::new(),
                budget: Budget::new(),
                pending_events: Vec::new(),
                leaderboard_pending: true,
                room_pending: false,
                skipped: 0,
                resume_token,
                last_heard: Instant::now(),
                latency_probe: None,
            },
        );
        // The key holder takes the role (back); with no host at all the first player does not:
        // the creator of a room made over HTTP may still be on the way.
        if key_holder && self.host != Some(conn) {
            let previous = self.host.replace(conn);
            self.held_host = None;
            self.host_has_key = true;
            if let Some(previous) = previous {
                self.former_host = Some((previous, Instant::now()));
                self.announce(format!("{name} is the host again"));
            }
            self.mark_room_changed();
        }
        info!(
            room = %self.setup.code,
            conn = conn.0,
            player = %player_id,
            %name,
            resumed,
            host = self.host == Some(conn),
            players = self.world.players.len(),
            "join"
        );
        self.publish();
        let welcome = protocol::encode(&self.welcome_for(conn));
        // Between rounds: the results follow the welcome (the outbox is sent after it).
        self.send_round_over_to(conn);
        Ok(welcome)
    }

    pub(super) fn join_spectator(
        &mut self,
        conn: ConnId,
        outbox: Outbox,
        kick: Kick,
        ip: Option<std::net::IpAddr>,
    ) -> Result<Vec<u8>, DisconnectReason> {
        if self.spectators.len() >= usize::from(MAX_SPECTATORS) {
            return Err(DisconnectReason::RoomFull { max: MAX_SPECTATORS });
        }
        self.spectators.insert(
            conn,
            Spectator {
                outbox,
                kick,
                ip,
                baselines: Baselines::new(),
                budget: Budget::new(),
                pending_events: Vec::new(),
                leaderboard_pending: true,
                room_pending: false,
                skipped: 0,
            },
        );
        // Watching starts the clock: record the match from its first tick.
        if self.world.tick.0 == 0 {
            self.ensure_recording();
        }
        info!(room = %self.setup.code, conn = conn.0, spectators = self.spectators.len(), "spectator joined");
        self.publish();
        let welcome = protocol::encode(&self.welcome_for(conn));
        self.send_round_over_to(conn);
        Ok(welcome)
    }

    /// The welcome for `conn` (a player or a spectator) in the current match.
    pub(super) fn welcome_for(&self, conn: ConnId) -> ServerMsg {
        let client = self.clients.get(&conn);
        ServerMsg::Welcome(Box::new(Welcome {
            player_id: client.map_or(NetId(0), |c| c.player_id),
            resume_token: client.map_or(0, |c| c.resume_token),
            tick_rate: self.config.tick_hz,
            snapshot_rate: self.config.snapshot_hz,
            server_tick: self.world.tick,
            map_id: self.setup.map.id.clone(),
            map: (*self.setup.map).clone(),
            roster: self.world.roster(),
            max_players: self.setup.max_players,
            replay: None,
            room: self.room_info_for(conn),
            spectator: client.is_none(),
            snapshot_budget_bytes: self.config.snapshot_budget_bytes,
            player: client.and_then(|c| self.identities.get(&c.player_id)).cloned(),
            seat_hold_ms: if client.is_some() {
                self.config.resume_grace.as_millis().min(u128::from(u32::MAX)) as u32
            } else {
                0
            },
        }))
    }

    /// The room as `conn` may see it: only the host gets the host key.
    pub(super) fn room_info_for(&self, conn: ConnId) -> RoomInfo {
        let is_host = self.host == Some(conn);
        RoomInfo {
            code: self.setup.code,
            name: self.setup.name.clone(),
            public: self.setup.public,
            locked: self.locked,
            map_id: self.setup.map.id.clone(),
            max_players: self.setup.max_players,
            bots: self.setup.bots,
            host: self.host.and_then(|host| self.clients.get(&host)).map(|c| c.player_id),
            you_are_host: is_host,
            host_key: (is_host && self.host_has_key).then_some(self.setup.host_key),
            maps: self.setup.maps.ids(),
            permanent: self.setup.permanent,
            rounds: self.rounds.rules,
            round: self.rounds.number,
            round_ends_at: self.round_ends_at(),
        }
    }

    pub(super) fn leave(&mut self, conn: ConnId, reason: DisconnectReason) {
        if self.spectators.remove(&conn).is_some() {
            info!(room = %self.setup.code, conn = conn.0, %reason, "spectator left");
            self.publish();
            return;
        }
        let Some(client) = self.clients.remove(&conn) else {
            return;
        };
        // Dropped without a goodbye: the seat is held for a resume.
        let lost = matches!(
            reason,
            DisconnectReason::ConnectionLost | DisconnectReason::IdleTimeout { .. } | DisconnectReason::TooSlow
        );
        // One address (a household, a NAT) holds at most a few seats at once, so reset-and-rejoin
        // cannot fill a room with ghosts; loopback (the server's own machine) is exempt.
        let address_holds = client.ip.filter(|ip| !ip.is_loopback()).map_or(0, |ip| {
            let key = crate::rate::address_key(ip);
            self.held.values().filter(|s| s.ip.is_some_and(|other| crate::rate::address_key(other) == key)).count()
        });
        if lost
            && !self.config.resume_grace.is_zero()
            && !self.banned_tokens.contains(&client.resume_token)
            && address_holds < MAX_HELD_PER_ADDRESS
        {
            info!(room = %self.setup.code, conn = conn.0, player = %client.player_id, name = %client.name, %reason, grace_s = self.config.resume_grace.as_secs(), "connection lost; seat held");
            self.world.set_away(client.player, true);
            self.record(Op::Away { id: client.player_id });
            self.held.insert(
                client.resume_token,
                HeldSeat {
                    player: client.player,
                    player_id: client.player_id,
                    name: client.name.clone(),
                    client_id: client.client_id,
                    ip: client.ip,
                    since: Instant::now(),
                },
            );
            if self.host == Some(conn) {
                // The role waits for the player (no "is now the host" for a Wi-Fi blip).
                self.host = None;
                self.held_host = Some(client.resume_token);
            }
        } else {
            if reason.is_expected() {
                info!(room = %self.setup.code, conn = conn.0, player = %client.player_id, name = %client.name, %reason, "leave");
            } else {
                warn!(room = %self.setup.code, conn = conn.0, player = %client.player_id, name = %client.name, %reason, "leave");
            }
            if let Some(player) = self.remove_seat(client.player, client.player_id, reason)
                && !self.banned_tokens.contains(&client.resume_token)
                && !self.config.resume_grace.is_zero()
            {
                let (score, kills, deaths) = (player.score, player.kills, player.deaths);
                let id = client.player_id;
                self.departed
                    .insert(client.resume_token, Departed { id, score, kills, deaths, left_at: Instant::now() });
            }
        }
        if self.host == Some(conn) {
            self.pass_host_on();
        }
        self.publish();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use shared::room::{HostCmd, RoomCode};
    use tokio::sync::{mpsc, oneshot};

    use super::*;
    use crate::config::ServerConfig;
    use crate::room::input::SimInput;
    use crate::room::state::RoomSetup;
    use crate::stats::RoomStats;

    /// Joins `conn` as a player; returns the welcome or the refusal.
    pub(super) fn join(
        room: &mut Room,
        conn: u64,
        key: Option<HostKey>,
        client_id: u64,
        ip: &str,
    ) -> Result<Welcome, DisconnectReason> {
        let (outbox, _outbox_rx) = mpsc::channel(64);
        let (reply, mut reply_rx) = oneshot::channel();
        room.handle(SimInput::Join {
            conn: ConnId(conn),
            name: format!("p{conn}"),
            resume: None,
            outbox,
            kick: Kick::new(),
            reply,
            spectator: false,
            host_key: key,
            client_id,
            ip: Some(ip.parse().unwrap()),
            seat_only: false,
            player: None,
        });
        match reply_rx.try_recv().expect("answered at once") {
            Ok(bytes) => match protocol::decode_server(&bytes).unwrap() {
                ServerMsg::Welcome(welcome) => Ok(*welcome),
                other => panic!("{other:?}"),
            },
            Err(reason) => Err(reason),
        }
    }

    #[test]
    pub(super) fn one_address_holds_at_most_a_few_seats_and_loopback_is_exempt() {
        let config = Arc::new(ServerConfig { max_players: 32, ..ServerConfig::default() });
        let setup = RoomSetup::from_config(&config, RoomCode::from_indices([1, 2, 3, 4]));
        let mut room = Room::with_setup(config, setup, Arc::new(RoomStats::default()), None);
        for conn in 1..=6 {
            join(&mut room, conn, None, conn, "198.51.100.7").unwrap();
            room.handle(SimInput::Leave { conn: ConnId(conn), reason: DisconnectReason::ConnectionLost });
        }
        assert_eq!(room.held.len(), MAX_HELD_PER_ADDRESS, "the rest left at once");
        assert_eq!(room.world.players.len(), MAX_HELD_PER_ADDRESS);
        // Same /64 for IPv6.
        for conn in 10..=15 {
            join(&mut room, conn, None, conn, &format!("2001:db8::{conn}")).unwrap();
            room.handle(SimInput::Leave { conn: ConnId(conn), reason: DisconnectReason::ConnectionLost });
        }
        assert_eq!(room.held.len(), 2 * MAX_HELD_PER_ADDRESS);
        for conn in 20..=25 {
            join(&mut room, conn, None, conn, "127.0.0.1").unwrap();
            room.handle(SimInput::Leave { conn: ConnId(conn), reason: DisconnectReason::ConnectionLost });
        }
        assert_eq!(room.held.len(), 2 * MAX_HELD_PER_ADDRESS + 6, "loopback is exempt");
    }

    #[test]
    pub(super) fn the_host_role_waits_for_a_held_host_and_passes_on_when_the_seat_expires() {
        let config = Arc::new(ServerConfig { resume_grace: Duration::from_millis(200), ..ServerConfig::default() });
        let mut setup = RoomSetup::from_config(&config, RoomCode::from_indices([1, 2, 3, 4]));
        setup.host_key = [9; 16];
        let mut room = Room::with_setup(config, setup, Arc::new(RoomStats::default()), None);
        let host = join(&mut room, 1, Some([9; 16]), 1, "127.0.0.1").unwrap();
        join(&mut room, 2, None, 2, "127.0.0.1").unwrap();
        room.handle(SimInput::Leave { conn: ConnId(1), reason: DisconnectReason::ConnectionLost });
        assert_eq!(room.host, None, "nobody else is made host for a drop");
        assert_eq!(room.held_host, Some(host.resume_token));
        // The resume (no key needed) takes the role back.
        let (outbox, _rx) = mpsc::channel(64);
        let (reply, mut reply_rx) = oneshot::channel();
        room.handle(SimInput::Join {
            conn: ConnId(3),
            name: "back".into(),
            resume: Some(host.resume_token),
            outbox,
            kick: Kick::new(),
            reply,
            spectator: false,
            host_key: None,
            client_id: 1,
            ip: Some("127.0.0.1".parse().unwrap()),
            seat_only: true,
            player: None,
        });
        let Ok(bytes) = reply_rx.try_recv().unwrap() else { panic!("resume refused") };
        let ServerMsg::Welcome(welcome) = protocol::decode_server(&bytes).unwrap() else { panic!("a welcome") };
        assert_eq!(welcome.player_id, host.player_id);
        assert!(welcome.room.you_are_host, "the role waited");
        assert_eq!(room.host, Some(ConnId(3)));
        // Dropped again and gone for good: the role passes on when the seat expires.
        room.handle(SimInput::Leave { conn: ConnId(3), reason: DisconnectReason::ConnectionLost });
        std::thread::sleep(Duration::from_millis(250));
        room.step();
        assert_eq!(room.host, Some(ConnId(2)));
        assert!(room.held.is_empty() && room.held_host.is_none());
        // A reused single-use join token with that (genuine) resume token finds no seat now: it
        // seats nobody new.
        let (outbox, _rx) = mpsc::channel(64);
        let (reply, mut reply_rx) = oneshot::channel();
        room.handle(SimInput::Join {
            conn: ConnId(4),
            name: "again".into(),
            resume: Some(host.resume_token),
            outbox,
            kick: Kick::new(),
            reply,
            spectator: false,
            host_key: None,
            client_id: 1,
            ip: Some("127.0.0.1".parse().unwrap()),
            seat_only: true,
            player: None,
        });
        let refused = reply_rx.try_recv().unwrap();
        assert!(matches!(refused, Err(DisconnectReason::TokenInvalid { .. })), "{refused:?}");
        assert_eq!(room.clients.len(), 1, "nobody was seated");
    }

    #[test]
    pub(super) fn a_kick_bans_the_browser_and_its_address_but_never_loopback() {
        let config = Arc::new(ServerConfig::default());
        let mut setup = RoomSetup::from_config(&config, RoomCode::from_indices([1, 2, 3, 4]));
        setup.host_key = [9; 16];
        let mut room = Room::with_setup(config, setup, Arc::new(RoomStats::default()), None);
        let host = join(&mut room, 1, Some([9; 16]), 1, "127.0.0.1").unwrap();
        assert!(host.room.you_are_host);
        let lan = join(&mut room, 2, None, 2, "192.168.1.20").unwrap();
        let local = join(&mut room, 3, None, 3, "127.0.0.1").unwrap();
        room.handle(SimInput::Host { conn: ConnId(1), cmd: HostCmd::Kick { player: lan.player_id } });
        room.handle(SimInput::Leave { conn: ConnId(2), reason: DisconnectReason::Kicked });
        // A new browser id from the same LAN address is still the kicked player.
        assert_eq!(join(&mut room, 4, None, 44, "192.168.1.20").err(), Some(DisconnectReason::Kicked));
        assert!(join(&mut room, 5, None, 55, "192.168.1.21").is_ok());
        room.handle(SimInput::Host { conn: ConnId(1), cmd: HostCmd::Kick { player: local.player_id } });
        room.handle(SimInput::Leave { conn: ConnId(3), reason: DisconnectReason::Kicked });
        // Loopback is everyone on the server's machine: only the browser id is banned there.
        assert_eq!(join(&mut room, 6, None, 3, "127.0.0.1").err(), Some(DisconnectReason::Kicked));
        assert!(join(&mut room, 7, None, 77, "127.0.0.1").is_ok());
        // An IPv6 player is banned by its /64 (SECURITY.md: addresses count as a /64): the next
        // address of the same network is still them; another network is not.
        let v6 = join(&mut room, 8, None, 8, "2001:db8:5:5::1").unwrap();
        room.handle(SimInput::Host { conn: ConnId(1), cmd: HostCmd::Kick { player: v6.player_id } });
        room.handle(SimInput::Leave { conn: ConnId(8), reason: DisconnectReason::Kicked });
        assert_eq!(join(&mut room, 9, None, 99, "2001:db8:5:5::2").err(), Some(DisconnectReason::Kicked));
        assert!(join(&mut room, 10, None, 100, "2001:db8:5:6::1").is_ok());
    }
}
