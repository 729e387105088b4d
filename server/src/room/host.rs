//! The host's controls (restart, map, bots, kick, lock, public, handover), new matches, notices
//! to the room, and the drain's countdown.

use std::sync::Arc;
use std::time::Duration;

use shared::map::MapDef;
use shared::protocol::{self, DisconnectReason, GameEvent, Leaderboard};
use shared::room::{HostCmd, MAX_ROOM_BOTS};
use shared::snapshot::NetId;
use tokio::time::Instant;
use tracing::{info, warn};

use super::public::random_host_key;
use super::state::{Room, new_world};
use crate::net::kick::ConnId;
use crate::replay::Op;
use crate::sim::world::PlayerKey;
use crate::snapshot::Scene;
use crate::snapshot::interest::InterestScene;

/// Restarts and map changes are at most one per this long (each one ends a replay file).
pub const NEW_MATCH_COOLDOWN: Duration = Duration::from_secs(2);

/// Changes of the room's bots are at most one per this long: each adds or removes up to
/// [`MAX_ROOM_BOTS`] players, an announcement to everyone and their joins or leaves to the
/// replay, so a host toggling them cannot grow the recording (or the chat) faster than play does.
pub const BOT_CHANGE_COOLDOWN: Duration = Duration::from_secs(2);

/// How long a host who lost the role without acting gets a notice instead of a disconnect for
/// a host command (one that was on its way before the news arrived).
const DEMOTION_GRACE: Duration = Duration::from_secs(5);

impl Room {
    pub(super) fn add_bots(&mut self, count: u16) {
        let existing = self.world.players.values().filter(|p| p.bot.is_some()).count();
        for index in existing..existing + usize::from(count) {
            let name = format!("bot-{}", index + 1);
            let key = self.world.add_player(name.clone(), true);
            let id = self.world.players[key].net_id;
            self.record(Op::Join { id, name, bot: true });
        }
    }

    /// Adds or removes server bots to reach `bots`, and tells the room who did.
    pub(super) fn set_bots(&mut self, bots: u16, by: &str) {
        let now = self.setup.bots;
        if bots > now {
            self.add_bots(bots - now);
        } else {
            self.remove_bots(now - bots);
        }
        self.setup.bots = bots;
        self.mark_room_changed();
        self.announce(format!("{by} set the bots to {bots}"));
    }

    pub(super) fn remove_bots(&mut self, count: u16) {
        let mut bots: Vec<(PlayerKey, NetId)> =
            self.world.players.iter().filter(|(_, p)| p.bot.is_some()).map(|(k, p)| (k, p.net_id)).collect();
        bots.sort_by_key(|(_, id)| std::cmp::Reverse(id.0));
        for (key, id) in bots.into_iter().take(usize::from(count)) {
            self.world.remove_player(key, DisconnectReason::ClientLeft);
            self.record(Op::Leave { id, reason: DisconnectReason::ClientLeft });
        }
    }

    /// Every client is sent the room's new description with its next snapshot (or sooner).
    pub(super) fn mark_room_changed(&mut self) {
        for client in self.clients.values_mut() {
            client.room_pending = true;
        }
        for spectator in self.spectators.values_mut() {
            spectator.room_pending = true;
        }
        self.publish();
    }

    /// A notice for everyone in the room (host actions and the like).
    pub(super) fn announce(&mut self, text: String) {
        info!(room = %self.setup.code, notice = %text, "room notice");
        let event = GameEvent::Notice { text };
        for client in self.clients.values_mut() {
            client.pending_events.push(event.clone());
        }
        for spectator in self.spectators.values_mut() {
            spectator.pending_events.push(event.clone());
        }
    }

    /// While the server drains, once per tick: tells the players how long is left (at the start
    /// and at 30, 20, 10, 5, 4, 3, 2 and 1 seconds); true when the room is empty and may close.
    pub(super) fn drain_step(&mut self) -> bool {
        let Some(left) = self.setup.drain.remaining() else { return false };
        // Held seats do not keep a draining room open: nobody can join it to resume them.
        if self.clients.is_empty() && self.spectators.is_empty() {
            return true;
        }
        let seconds = left.as_secs_f64().ceil() as u64;
        let due = match self.drain_announced {
            None => true,
            Some(last) => [30, 20, 10, 5, 4, 3, 2, 1].iter().any(|&mark| seconds <= mark && last > mark),
        };
        if due {
            self.drain_announced = Some(seconds);
            self.announce(format!("Server restarting in {seconds} s: finish your match"));
        }
        false
    }

    /// A notice for one client only (a host command that could not be carried out).
    pub(super) fn tell(&mut self, conn: ConnId, text: String) {
        if let Some(client) = self.clients.get_mut(&conn) {
            client.pending_events.push(GameEvent::Notice { text });
        }
    }

    pub(super) fn host_command(&mut self, conn: ConnId, cmd: HostCmd) {
        let just_demoted =
            self.former_host.is_some_and(|(former, when)| former == conn && when.elapsed() < DEMOTION_GRACE);
        if self.host != Some(conn) && just_demoted {
            self.tell(conn, "You are no longer the host".to_string());
            return;
        }
        if self.host != Some(conn) {
            let kick = self.clients.get(&conn).map(|c| &c.kick).or(self.spectators.get(&conn).map(|s| &s.kick));
            if let Some(kick) = kick {
                warn!(room = %self.setup.code, conn = conn.0, ?cmd, "host command from a non-host");
                kick.kick(DisconnectReason::NotAllowed);
            }
            return;
        }
        let host_name = self.clients.get(&conn).map_or_else(|| "The host".to_string(), |c| c.name.clone());
        info!(room = %self.setup.code, conn = conn.0, ?cmd, "host command");
        match cmd {
            HostCmd::Restart | HostCmd::SetMap { .. }
                if self.last_new_match.is_some_and(|at| at.elapsed() < NEW_MATCH_COOLDOWN)
                    && !matches!(&cmd, HostCmd::SetMap { map } if self.setup.maps.get(map).is_none()) =>
            {
                self.tell(conn, "A new match just started; wait a moment".to_string());
            }
            HostCmd::Restart => {
                self.new_match(self.setup.map.clone());
                self.announce(format!("{host_name} restarted the match"));
            }
            HostCmd::SetMap { map } => match self.setup.maps.get(&map) {
                Some(map) => {
                    let name = map.name.clone();
                    self.new_match(map);
                    self.announce(format!("{host_name} changed the map to {name}"));
                }
                None => self.tell(conn, format!("There is no map called \"{map}\"")),
            },
            HostCmd::SetBots { bots } => {
                if bots > MAX_ROOM_BOTS {
                    self.tell(conn, format!("A room can have at most {MAX_ROOM_BOTS} bots"));
                    return;
                }
                if bots == self.setup.bots {
                    return;
                }
                if self.last_bot_change.is_some_and(|at| at.elapsed() < BOT_CHANGE_COOLDOWN) {
                    self.tell(conn, "The bots just changed; wait a moment".to_string());
                    return;
                }
                self.last_bot_change = Some(Instant::now());
                self.set_bots(bots, &host_name);
            }
            HostCmd::Kick { player } => {
                let target = self.clients.iter().find(|(c, client)| **c != conn && client.player_id == player);
                let Some((&target, client)) = target else {
                    if let Some(name) = self.kick_held(player, DisconnectReason::Kicked) {
                        self.announce(format!("{host_name} kicked {name}"));
                    } else {
                        self.tell(conn, "That player is not in the room".to_string());
                    }
                    return;
                };
                if client.client_id != 0 {
                    self.banned_clients.insert(client.client_id);
                }
                if let Some(ip) = client.ip.filter(|ip| !ip.is_loopback()) {
                    self.banned_ips.insert(crate::rate::address_key(ip));
                }
                self.banned_tokens.insert(client.resume_token);
                client.kick.kick(DisconnectReason::Kicked);
                let name = client.name.clone();
                let _ = target;
                self.announce(format!("{host_name} kicked {name}"));
            }
            HostCmd::SetLocked { locked } => {
                self.locked = locked;
                self.mark_room_changed();
                self.announce(format!("{host_name} {} the room", if locked { "locked" } else { "unlocked" }));
            }
            HostCmd::SetPublic { public } => {
                self.setup.public = public;
                self.mark_room_changed();
                self.announce(format!("{host_name} made the room {}", if public { "public" } else { "private" }));
            }
            HostCmd::SetRounds { rules } => {
                if let Err(why) = rules.check() {
                    self.tell(conn, format!("Not changed: {why}"));
                    return;
                }
                self.rounds.rules = rules;
                self.mark_room_changed();
                self.announce(format!("{host_name} set the rounds to {}", describe_rules(&rules)));
            }
            HostCmd::Handover { player } => {
                let target = self.clients.iter().find(|(c, client)| **c != conn && client.player_id == player);
                let Some((&target, client)) = target else {
                    self.tell(conn, "That player is not in the room".to_string());
                    return;
                };
                let name = client.name.clone();
                self.host = Some(target);
                self.former_host = Some((conn, Instant::now()));
                // A new key, for the new host only: the old host cannot take the role back.
                self.setup.host_key = random_host_key();
                self.host_has_key = true;
                self.mark_room_changed();
                self.announce(format!("{host_name} made {name} the host"));
            }
        }
    }

    /// Starts a new match on `map`: a new world (scores reset), a new replay file, and a new
    /// welcome for everyone in the room. Players keep their connections and resume tokens.
    pub(super) fn new_match(&mut self, map: Arc<MapDef>) {
        self.close_recording();
        self.start_round();
        self.last_new_match = Some(Instant::now());
        self.match_number += 1;
        self.world = new_world(&self.config, &map, self.match_number);
        self.scene = Scene::new();
        self.interest = InterestScene::new(&map);
        self.setup.map = map;
        self.leaderboard = Leaderboard::default();
        // Held seats belong to the old match's world: their players come back as new players.
        self.held.clear();
        self.departed.clear();
        if self.held_host.take().is_some() {
            self.pass_host_on();
        }
        self.ensure_recording();
        self.add_bots(self.setup.bots);
        let conns: Vec<ConnId> = self.clients.keys().copied().collect();
        // The players keep who they are; their entities are new.
        let identities = std::mem::take(&mut self.identities);
        for conn in &conns {
            let client = self.clients.get_mut(conn).expect("listed");
            let player = self.world.add_player(client.name.clone(), false);
            let old_id = client.player_id;
            client.player = player;
            client.player_id = self.world.players[player].net_id;
            if let Some(identity) = identities.get(&old_id) {
                self.identities.insert(client.player_id, identity.clone());
            }
            let (id, name) = (client.player_id, client.name.clone());
            self.record(Op::Join { id, name, bot: false });
        }
        let spectators: Vec<ConnId> = self.spectators.keys().copied().collect();
        for conn in conns.iter().chain(&spectators) {
            let welcome = protocol::encode(&self.welcome_for(*conn));
            let (outbox, kick) = match (self.clients.get_mut(conn), self.spectators.get_mut(conn)) {
                (Some(client), _) => {
                    client.baselines.reset();
                    // Events name the old match's players; notices are plain text and stay.
                    client.pending_events.retain(|e| matches!(e, GameEvent::Notice { .. }));
                    client.leaderboard_pending = true;
                    client.room_pending = false;
                    client.latency_probe = None;
                    (&client.outbox, &client.kick)
                }
                (None, Some(spectator)) => {
                    spectator.baselines.reset();
                    spectator.pending_events.retain(|e| matches!(e, GameEvent::Notice { .. }));
                    spectator.leaderboard_pending = true;
                    spectator.room_pending = false;
                    (&spectator.outbox, &spectator.kick)
                }
                (None, None) => continue,
            };
            // A client whose outbox is full now would apply the old match's snapshots to the new
            // one: it is too slow to follow a restart.
            if outbox.try_send(welcome).is_err() {
                kick.kick(DisconnectReason::TooSlow);
            }
        }
        self.world.events.clear();
        self.publish();
    }

    /// The longest-present human (lowest connection id) still in the room becomes host, without
    /// the key: the key holder reloading the page takes the role back.
    pub(super) fn pass_host_on(&mut self) {
        self.host = self.clients.iter().find(|(_, c)| !c.kick.is_kicked()).map(|(conn, _)| *conn);
        self.host_has_key = false;
        if let Some(name) = self.host.and_then(|host| self.clients.get(&host)).map(|c| c.name.clone()) {
            self.announce(format!("{name} is now the host"));
        }
        self.mark_room_changed();
    }
}

/// Rules as a notice says them: "5 minutes", "first to 50", "endless".
pub fn describe_rules(rules: &shared::room::RoundRules) -> String {
    let time = match rules.seconds {
        0 => None,
        s if s % 60 == 0 => Some(format!("{} minute{}", s / 60, if s == 60 { "" } else { "s" })),
        s => Some(format!("{s} seconds")),
    };
    match (time, rules.score_limit) {
        (None, None) => "endless".to_string(),
        (Some(time), None) => time,
        (None, Some(limit)) => format!("first to {limit}"),
        (Some(time), Some(limit)) => format!("{time} or first to {limit}"),
    }
}
