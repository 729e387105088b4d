//! Room-level operator operations ([`RoomOp`]): inspect, kick, close connections from an
//! address, close the room, notices and bots. The admin API maps its requests to these.

use std::sync::atomic::Ordering;

use shared::protocol::DisconnectReason;
use shared::room::MAX_ROOM_BOTS;
use shared::snapshot::NetId;
use tracing::info;

use super::ops::{PlayerDetail, RoomAnswer, RoomDetail, RoomOp, SpectatorDetail, rtt_ms};
use super::public::RoomPublic;
use super::state::Room;
use crate::stats;

impl Room {
    /// Carries out an operator's request (already authorized and audited by the API).
    pub(super) fn operate(&mut self, op: RoomOp) -> Result<RoomAnswer, String> {
        let done = |text: String| Ok(RoomAnswer::Done { done: text });
        match op {
            RoomOp::Inspect => Ok(RoomAnswer::Detail(Box::new(self.detail()))),
            RoomOp::Kick { player, message } => {
                let Some(client) = self.clients.values().find(|c| c.player_id == player) else {
                    let reason = DisconnectReason::ByOperator { message };
                    return match self.kick_held(player, reason) {
                        Some(name) => {
                            self.announce(format!("{name} was removed by the server's operator"));
                            done(format!("kicked {name} (whose seat was held for a reconnect)"))
                        }
                        None => Err(format!("no player {} in room {}", player.0, self.setup.code)),
                    };
                };
                if client.client_id != 0 {
                    self.banned_clients.insert(client.client_id);
                }
                if let Some(ip) = client.ip.filter(|ip| !ip.is_loopback()) {
                    self.banned_ips.insert(crate::rate::address_key(ip));
                }
                self.banned_tokens.insert(client.resume_token);
                client.kick.kick(DisconnectReason::ByOperator { message });
                let name = client.name.clone();
                self.announce(format!("{name} was removed by the server's operator"));
                done(format!("kicked {name}"))
            }
            RoomOp::KickAddress { ip } => {
                let key = crate::rate::address_key(ip);
                let matches =
                    |other: Option<std::net::IpAddr>| other.is_some_and(|other| crate::rate::address_key(other) == key);
                let mut closed = 0;
                for kick in self
                    .clients
                    .values()
                    .filter(|c| matches(c.ip))
                    .map(|c| &c.kick)
                    .chain(self.spectators.values().filter(|s| matches(s.ip)).map(|s| &s.kick))
                {
                    kick.kick(DisconnectReason::Banned);
                    closed += 1;
                }
                let held: Vec<NetId> = self.held.values().filter(|s| matches(s.ip)).map(|s| s.player_id).collect();
                for player in held {
                    self.kick_held(player, DisconnectReason::Banned);
                    closed += 1;
                }
                done(format!("closed {closed} connection(s)"))
            }
            RoomOp::Close { message } => {
                if self.setup.permanent {
                    return Err("the permanent room cannot be closed; drain the server to stop it".to_string());
                }
                info!(room = %self.setup.code, %message, "room closed by the operator");
                self.close_all(DisconnectReason::ByOperator { message });
                self.closed_by_operator = true;
                done(format!("closed room {}", self.setup.code))
            }
            RoomOp::Notice { text } => {
                self.announce(text);
                done("notice sent".to_string())
            }
            RoomOp::SetBots { bots } => {
                if bots > MAX_ROOM_BOTS && !self.setup.permanent {
                    return Err(format!("a room can have at most {MAX_ROOM_BOTS} bots"));
                }
                if bots > crate::config::MAX_MAIN_BOTS {
                    return Err(format!("at most {} bots", crate::config::MAX_MAIN_BOTS));
                }
                self.set_bots(bots, "The server's operator");
                done(format!("bots set to {bots}"))
            }
        }
    }

    /// The room as the operator sees it.
    pub(super) fn detail(&self) -> RoomDetail {
        let players = self
            .clients
            .iter()
            .map(|(conn, client)| {
                let player = self.world.players.get(client.player);
                let link = client.kick.link();
                PlayerDetail {
                    id: client.player_id.0,
                    name: client.name.clone(),
                    host: self.host == Some(*conn),
                    ip: client.ip.map(|ip| ip.to_string()),
                    rtt_ms: rtt_ms(link.rtt_us.load(Ordering::Relaxed)),
                    bytes_per_second: link.bytes_per_second.load(Ordering::Relaxed),
                    score: player.map_or(0, |p| p.score),
                    kills: player.map_or(0, |p| p.kills),
                    deaths: player.map_or(0, |p| p.deaths),
                }
            })
            .collect();
        let spectators = self
            .spectators
            .values()
            .map(|spectator| {
                let link = spectator.kick.link();
                SpectatorDetail {
                    ip: spectator.ip.map(|ip| ip.to_string()),
                    rtt_ms: rtt_ms(link.rtt_us.load(Ordering::Relaxed)),
                    bytes_per_second: link.bytes_per_second.load(Ordering::Relaxed),
                }
            })
            .collect();
        RoomDetail {
            code: self.setup.code.to_string(),
            name: self.setup.name.clone(),
            map: self.setup.map.id.clone(),
            public: self.setup.public,
            locked: self.locked,
            permanent: self.setup.permanent,
            replay: false,
            tick: self.world.tick.0,
            tick_p99_ms: stats::quantile_us(&self.stats.tick_time.snapshot(), 0.99)
                .map_or(0.0, |us| us.min(10_000_000) as f64 / 1000.0),
            bots: self.setup.bots,
            max_players: self.setup.max_players,
            players,
            spectators,
        }
    }
}

/// What the operator sees of a room nobody has joined yet (from its published summary).
pub(super) fn unused_detail(public: &RoomPublic) -> RoomDetail {
    let summary = public.summary();
    RoomDetail {
        code: public.code.to_string(),
        name: summary.name,
        map: summary.map,
        public: summary.public,
        locked: summary.locked,
        permanent: public.permanent,
        replay: false,
        tick: 0,
        tick_p99_ms: 0.0,
        bots: summary.bots,
        max_players: summary.max_players,
        players: Vec::new(),
        spectators: Vec::new(),
    }
}
