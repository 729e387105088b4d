//! The fleet lobby: one lobby for every server's rooms, so players never need to know which
//! server hosts a room. Game servers started with `--lobby-url` report their rooms every 2 s
//! ([`report`]); `arena-server lobby` ([`lobby`]) keeps them in a soft [`Directory`] (a server
//! that stops reporting disappears within [`STALE_AFTER`]), lists the public rooms, and sends a
//! player to a server: the one hosting room CODE, or one with a free room slot (through an
//! Agones GameServerAllocation when on Agones, else the least-loaded server). The browser then
//! connects to that server directly with a signed join token: no proxy hop, no shared state
//! beyond this directory.
//!
//! [`Directory`] is plain data with no sockets or clock of its own, so the benchmark drives it at
//! fleet scale (1,000 servers × 64 rooms).

pub mod lobby;
mod place;
pub mod redis;
pub mod report;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use shared::room::{RoomCode, RoomSummary};

/// A server that has not reported for this long is dropped from the directory.
pub const STALE_AFTER: Duration = Duration::from_secs(6);
/// How often game servers report.
pub const REPORT_EVERY: Duration = Duration::from_secs(2);
/// Most rooms one report may carry (the directory's per-server bound).
pub const MAX_REPORTED_ROOMS: usize = 1000;
/// Most rooms the lobby's list shows (the fullest).
pub const LISTED_ROOMS: usize = 200;

/// What a game server tells the lobby about itself.
/// Unknown fields are ignored, so servers of the next version can report during a rolling
/// update.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Report {
    /// Unique in the fleet: the instance (host or pod) name, which is the GameServer's name on
    /// Agones.
    pub server: String,
    /// Where players connect (its `--public-url`).
    pub url: String,
    pub max_rooms: u16,
    /// No new rooms or joins (draining).
    pub draining: bool,
    /// Every live room, private ones too (join by code needs them; only public ones are listed).
    pub rooms: Vec<RoomSummary>,
    /// The server is stopping: its last report, which frees its name at once (see
    /// [`ServerKeys`]).
    #[serde(default)]
    pub goodbye: bool,
    /// Codes the lobby reserved for this server's next rooms and not used yet (kept reserved
    /// while it reports them).
    #[serde(default)]
    pub reserved: Vec<RoomCode>,
}

/// Codes a server holds in reserve for its next rooms (the registry keeps them): the lobby tops
/// them up with each report, so the codes of rooms made between reports are unique across the
/// fleet too.
pub use crate::room::registry::RESERVED_CODES;

/// A lobby's answer to a report.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ReportAnswer {
    /// Codes newly reserved for this server (no other server holds them).
    #[serde(default)]
    pub codes: Vec<RoomCode>,
}

impl Report {
    /// What the lobby checks before taking a report: a plain server name and an http(s) URL
    /// (both end up in pages and in the URLs handed to browsers).
    pub fn check(&self) -> Result<(), &'static str> {
        let name_ok = !self.server.is_empty()
            && self.server.len() <= 64
            && self.server.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        let url_ok = (self.url.starts_with("http://") || self.url.starts_with("https://"))
            && self.url.len() <= 200
            && !self.url.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '<' | '>' | '\''));
        if !(name_ok && url_ok) {
            return Err("server must be a plain name and url an http(s) URL");
        }
        if self.reserved.len() > RESERVED_CODES {
            return Err("a server holds at most 4 reserved codes");
        }
        Ok(())
    }
}

/// How long a server's name stays bound to its key after its last report (a server that
/// crashed and restarts under the same name with a new key waits this long; one that said
/// goodbye does not).
pub const NAME_HELD_FOR: Duration = Duration::from_secs(60);
/// Most server names bound at once.
pub const MAX_SERVER_NAMES: usize = 10_000;

/// Which key each server reports with. The fleet key (shared by every server) only lets a
/// server in; each server also presents a random key of its own, made at start, and the first
/// report under a name binds the name to that key until [`NAME_HELD_FOR`] after its last report
/// (or its goodbye). So whoever holds the fleet key cannot take over a known server's name and
/// move its URL, which would send that server's players, and their join tokens, elsewhere.
#[derive(Debug, Default)]
pub struct ServerKeys {
    /// Name → (SHA-256 of its key, last report).
    names: HashMap<String, ([u8; 32], Instant)>,
}

/// Why a report's server key was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyRefusal {
    /// No key, or one too short to be one of ours (32 random bytes, hex).
    Missing,
    /// The name reports with another key.
    NameTaken,
    /// [`MAX_SERVER_NAMES`] names are bound and none has expired.
    Full,
}

/// Shortest server key taken (the servers' are 64 hex digits).
pub const MIN_SERVER_KEY_BYTES: usize = 32;

impl ServerKeys {
    /// Checks `key` for `server` at `now`, binding the name on its first report.
    pub fn check(&mut self, server: &str, key: &str, now: Instant) -> Result<(), KeyRefusal> {
        use sha2::Digest;
        if key.len() < MIN_SERVER_KEY_BYTES {
            return Err(KeyRefusal::Missing);
        }
        let digest: [u8; 32] = sha2::Sha256::digest(key.as_bytes()).into();
        if let Some((bound, last)) = self.names.get_mut(server)
            && now.saturating_duration_since(*last) <= NAME_HELD_FOR
        {
            if !crate::auth::constant_time_eq(bound, &digest) {
                return Err(KeyRefusal::NameTaken);
            }
            *last = now;
            return Ok(());
        }
        if self.names.len() >= MAX_SERVER_NAMES && !self.names.contains_key(server) {
            self.names.retain(|_, (_, last)| now.saturating_duration_since(*last) <= NAME_HELD_FOR);
            if self.names.len() >= MAX_SERVER_NAMES {
                return Err(KeyRefusal::Full);
            }
        }
        self.names.insert(server.to_string(), (digest, now));
        Ok(())
    }

    /// Frees `server`'s name (after its goodbye, checked with [`ServerKeys::check`]).
    pub fn release(&mut self, server: &str) {
        self.names.remove(server);
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// One server as the directory holds it.
#[derive(Clone, Debug)]
pub struct Entry {
    pub report: Report,
    pub seen: Instant,
    /// Human players in all its rooms (with the players sent there since its report).
    pub players: u32,
    /// Players and rooms sent there since its last report (it has not counted them yet), so
    /// placements made in between do not all pick the same last seat or slot.
    pub sent_rooms: u32,
}

impl Entry {
    /// Rooms it could still open.
    pub fn free_slots(&self) -> u32 {
        u32::from(self.report.max_rooms).saturating_sub(self.report.rooms.len() as u32 + self.sent_rooms)
    }
}

/// Why a code leads nowhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FindError {
    NoSuchRoom,
    /// Several servers host a room with this code (codes are unique per server, not per
    /// fleet): these; the caller says which.
    Ambiguous(Vec<String>),
}

/// A public room in the fleet's list.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct FleetRoom {
    #[serde(flatten)]
    pub room: RoomSummary,
    /// The server hosting it.
    pub server: String,
}

/// Where the lobby sends a player.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub server: String,
    pub url: String,
    /// The room to join; `None`: any room of that server (quick play there, or create).
    pub room: Option<RoomCode>,
}

/// The fleet's servers and their rooms, indexed by room code.
#[derive(Debug, Default)]
pub struct Directory {
    servers: HashMap<String, Entry>,
    /// Which servers host a room with each code (almost always one).
    by_code: HashMap<RoomCode, Vec<String>>,
    /// Codes reserved for a server's next rooms, and when it last reported them.
    reserved: HashMap<RoomCode, (String, Instant)>,
}

impl Directory {
    pub fn new() -> Directory {
        Directory::default()
    }

    pub fn servers(&self) -> usize {
        self.servers.len()
    }

    pub fn rooms(&self) -> usize {
        self.by_code.len()
    }

    pub fn server(&self, name: &str) -> Option<&Entry> {
        self.servers.get(name)
    }

    /// Every server heard from, in no particular order.
    pub fn entries(&self) -> impl Iterator<Item = (&String, &Entry)> {
        self.servers.iter()
    }

    /// Takes a server's report (replacing its previous one).
    pub fn report(&mut self, mut report: Report, now: Instant) {
        report.rooms.truncate(MAX_REPORTED_ROOMS);
        if let Some(old) = self.servers.remove(&report.server) {
            self.unindex(&old.report.server, &old.report.rooms);
        }
        for room in &report.rooms {
            let servers = self.by_code.entry(room.code).or_default();
            if !servers.contains(&report.server) {
                servers.push(report.server.clone());
            }
        }
        // What it no longer reports in reserve it used (the room is indexed now) or lost.
        self.reserved.retain(|code, (holder, _)| *holder != report.server || report.reserved.contains(code));
        for code in &report.reserved {
            match self.reserved.get_mut(code) {
                Some((holder, seen)) if *holder == report.server => *seen = now,
                Some(_) => {}
                None => {
                    self.reserved.insert(*code, (report.server.clone(), now));
                }
            }
        }
        let players = report.rooms.iter().map(|r| u32::from(r.players)).sum();
        self.servers.insert(report.server.clone(), Entry { report, seen: now, players, sent_rooms: 0 });
    }

    /// Reserves for `server` those of `candidates` that no server has a room with or holds in
    /// reserve, up to what it lacks of [`RESERVED_CODES`]; returns them.
    pub fn reserve(&mut self, server: &str, candidates: &[RoomCode], now: Instant) -> Vec<RoomCode> {
        let holds = self.reserved.values().filter(|(holder, _)| holder == server).count();
        let mut granted = Vec::new();
        for code in candidates {
            if holds + granted.len() >= RESERVED_CODES {
                break;
            }
            if !self.by_code.contains_key(code) && !self.reserved.contains_key(code) {
                self.reserved.insert(*code, (server.to_string(), now));
                granted.push(*code);
            }
        }
        granted
    }

    fn unindex(&mut self, server: &str, rooms: &[RoomSummary]) {
        for room in rooms {
            if let Some(servers) = self.by_code.get_mut(&room.code) {
                servers.retain(|s| s != server);
                if servers.is_empty() {
                    self.by_code.remove(&room.code);
                }
            }
        }
    }

    /// Drops servers that stopped reporting; returns their names.
    pub fn expire(&mut self, now: Instant) -> Vec<String> {
        let stale: Vec<String> = self
            .servers
            .iter()
            .filter(|(_, entry)| now.saturating_duration_since(entry.seen) > STALE_AFTER)
            .map(|(name, _)| name.clone())
            .collect();
        for name in &stale {
            if let Some(entry) = self.servers.remove(name) {
                self.unindex(name, &entry.report.rooms);
            }
        }
        self.reserved.retain(|_, (_, seen)| now.saturating_duration_since(*seen) <= STALE_AFTER);
        stale
    }

    /// The public rooms of every server, fullest first (then newest), at most `limit` of them
    /// (a page shows a few hundred; only those are copied and sorted).
    pub fn public_rooms(&self, limit: usize) -> Vec<FleetRoom> {
        let mut rooms: Vec<(&RoomSummary, &String)> = self
            .servers
            .iter()
            .filter(|(_, entry)| !entry.report.draining)
            .flat_map(|(name, entry)| {
                entry.report.rooms.iter().filter(|room| room.public).map(move |room| (room, name))
            })
            .collect();
        let order = |a: &(&RoomSummary, &String), b: &(&RoomSummary, &String)| {
            b.0.players
                .cmp(&a.0.players)
                .then(b.0.created_unix_ms.cmp(&a.0.created_unix_ms))
                .then(a.0.code.cmp(&b.0.code))
        };
        if rooms.len() > limit && limit > 0 {
            rooms.select_nth_unstable_by(limit - 1, order);
            rooms.truncate(limit);
        }
        rooms.truncate(limit);
        rooms.sort_by(order);
        rooms.into_iter().map(|(room, server)| FleetRoom { room: room.clone(), server: server.clone() }).collect()
    }

    /// The server hosting room `code` (`on`: the one the player picked, when several do).
    pub fn find(&self, code: RoomCode, on: Option<&str>) -> Result<Placement, FindError> {
        let servers = self.by_code.get(&code).ok_or(FindError::NoSuchRoom)?;
        let server = match (on, servers.as_slice()) {
            (Some(on), _) => servers.iter().find(|s| *s == on).ok_or(FindError::NoSuchRoom)?,
            (None, [only]) => only,
            (None, _) => return Err(FindError::Ambiguous(servers.clone())),
        };
        let entry = self.servers.get(server).ok_or(FindError::NoSuchRoom)?;
        Ok(Placement { server: server.clone(), url: entry.report.url.clone(), room: Some(code) })
    }

    /// Counts a player sent to `placement` until its server's next report (which includes them).
    pub fn sent(&mut self, placement: &Placement) {
        let Some(entry) = self.servers.get_mut(&placement.server) else { return };
        entry.players += 1;
        match placement.room {
            Some(code) => {
                if let Some(room) = entry.report.rooms.iter_mut().find(|r| r.code == code) {
                    room.players = room.players.saturating_add(1);
                }
            }
            None => entry.sent_rooms += 1,
        }
    }

    /// Quick play: the fullest public room with space (players meet players), else a
    /// server with a free room slot.
    pub fn quick_play(&self) -> Option<Placement> {
        let best = self
            .servers
            .iter()
            .filter(|(_, entry)| !entry.report.draining)
            .flat_map(|(name, entry)| entry.report.rooms.iter().map(move |room| (name, entry, room)))
            .filter(|(_, _, room)| room.public && !room.locked && room.players < room.max_players)
            .max_by_key(|(name, _, room)| (room.players, std::cmp::Reverse(room.code), std::cmp::Reverse(*name)));
        match best {
            Some((name, entry, room)) => {
                Some(Placement { server: name.clone(), url: entry.report.url.clone(), room: Some(room.code) })
            }
            None => self.least_loaded(),
        }
    }

    /// A server with a free room slot: the most free slots, then the fewest players, so new rooms
    /// spread over the fleet (on Agones, the allocation decides instead).
    pub fn least_loaded(&self) -> Option<Placement> {
        self.servers
            .iter()
            .filter(|(_, entry)| !entry.report.draining && entry.free_slots() > 0)
            .min_by_key(|(name, entry)| (std::cmp::Reverse(entry.free_slots()), entry.players, (*name).clone()))
            .map(|(name, entry)| Placement { server: name.clone(), url: entry.report.url.clone(), room: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(code: &str, public: bool, players: u16) -> RoomSummary {
        RoomSummary {
            code: RoomCode::parse(code).unwrap(),
            name: format!("room {code}"),
            map: "arena".into(),
            players,
            max_players: 4,
            bots: 0,
            spectators: 0,
            locked: false,
            public,
            created_unix_ms: 0,
        }
    }

    fn report(server: &str, max_rooms: u16, rooms: Vec<RoomSummary>) -> Report {
        Report {
            server: server.into(),
            url: format!("http://{server}/"),
            max_rooms,
            draining: false,
            rooms,
            goodbye: false,
            reserved: Vec::new(),
        }
    }

    #[test]
    fn rooms_are_found_listed_and_forgotten_with_their_server() {
        let mut directory = Directory::new();
        let start = Instant::now();
        directory.report(report("a", 4, vec![room("ABCD", true, 1), room("EFGH", false, 3)]), start);
        directory.report(report("b", 4, vec![room("JKMN", true, 2)]), start);
        assert_eq!(
            directory.find(RoomCode::parse("EFGH").unwrap(), None).unwrap().server,
            "a",
            "private rooms by code"
        );
        let listed: Vec<String> = directory.public_rooms(100).iter().map(|r| r.room.code.to_string()).collect();
        assert_eq!(listed, ["JKMN", "ABCD"], "public only, fullest first");
        // A new report replaces the old one: a closed room is gone.
        directory.report(report("a", 4, vec![room("ABCD", true, 1)]), start + Duration::from_secs(3));
        assert_eq!(directory.find(RoomCode::parse("EFGH").unwrap(), None), Err(FindError::NoSuchRoom));
        // b stops reporting: gone after STALE_AFTER, a stays.
        let later = start + STALE_AFTER + Duration::from_secs(2);
        assert_eq!(directory.expire(later), ["b"]);
        assert_eq!(directory.find(RoomCode::parse("JKMN").unwrap(), None), Err(FindError::NoSuchRoom));
        assert_eq!(directory.servers(), 1);
        assert_eq!(directory.rooms(), 1);
    }

    #[test]
    fn a_code_on_two_servers_is_ambiguous_until_the_player_picks_one() {
        let mut directory = Directory::new();
        let now = Instant::now();
        directory.report(report("a", 4, vec![room("ABCD", true, 1)]), now);
        directory.report(report("b", 4, vec![room("ABCD", false, 2)]), now);
        let code = RoomCode::parse("ABCD").unwrap();
        assert_eq!(directory.find(code, None), Err(FindError::Ambiguous(vec!["a".into(), "b".into()])));
        assert_eq!(directory.find(code, Some("b")).unwrap().server, "b");
        assert_eq!(directory.find(code, Some("c")), Err(FindError::NoSuchRoom));
        // One of them closes it: the other's is found again, not lost.
        directory.report(report("a", 4, vec![]), now);
        assert_eq!(directory.find(code, None).unwrap().server, "b");
    }

    #[test]
    fn placements_count_until_the_next_report() {
        let mut directory = Directory::new();
        let now = Instant::now();
        directory.report(report("a", 2, vec![room("ABCD", true, 3)]), now);
        directory.report(report("b", 3, vec![]), now);
        // One seat left in ABCD: the second quick play does not get it too.
        let first = directory.quick_play().unwrap();
        assert_eq!(first.room, RoomCode::parse("ABCD"));
        directory.sent(&first);
        let second = directory.quick_play().unwrap();
        assert_eq!((second.server.as_str(), second.room), ("b", None), "the full room is skipped");
        // Rooms sent to b use up its free slots until it reports.
        for _ in 0..3 {
            directory.sent(&second);
        }
        assert_eq!(directory.least_loaded().unwrap().server, "a", "b's three slots are taken");
        directory.report(report("b", 3, vec![]), now);
        assert_eq!(directory.least_loaded().unwrap().server, "b", "its report replaces the guesses");
    }

    #[test]
    fn quick_play_fills_rooms_then_spreads_new_ones() {
        let mut directory = Directory::new();
        let now = Instant::now();
        directory.report(report("a", 2, vec![room("ABCD", true, 3), room("EFGH", true, 4)]), now);
        directory.report(report("b", 4, vec![]), now);
        directory.report(report("c", 4, vec![room("JKMN", true, 1)]), now);
        let placement = directory.quick_play().unwrap();
        assert_eq!(
            (placement.server.as_str(), placement.room),
            ("a", RoomCode::parse("ABCD")),
            "the fullest with space"
        );
        // Nothing with space: the server with the most free slots and the fewest players.
        let mut full = Directory::new();
        full.report(report("a", 2, vec![room("ABCD", true, 4)]), now);
        full.report(report("b", 4, vec![room("EFGH", true, 4)]), now);
        full.report(report("c", 4, vec![room("JKMN", false, 2)]), now);
        // b and c have 3 free slots each; c has fewer players (2 against 4).
        assert_eq!(full.quick_play().unwrap(), Placement { server: "c".into(), url: "http://c/".into(), room: None });
        // A draining server gets nobody.
        let mut draining = Directory::new();
        draining.report(Report { draining: true, ..report("a", 4, vec![room("ABCD", true, 1)]) }, now);
        assert!(draining.quick_play().is_none());
        assert!(draining.public_rooms(100).is_empty());
    }

    /// SECURITY.md's "server names": the fleet key lets a server in, its own key keeps its name.
    #[test]
    fn codes_are_reserved_for_one_server_only_and_lapse_when_it_stops_reporting_them() {
        let mut directory = Directory::new();
        let now = Instant::now();
        let code = |text: &str| RoomCode::parse(text).unwrap();
        let mut a = report("a", 4, vec![room("ABCD", true, 1)]);
        directory.report(a.clone(), now);
        directory.report(report("b", 4, vec![]), now);
        let candidates: Vec<RoomCode> =
            ["ABCD", "EFGH", "JKLM", "NPQR", "STUV", "WXYZ"].iter().map(|c| code(c)).collect();
        let for_a = directory.reserve("a", &candidates, now);
        assert_eq!(for_a, [code("EFGH"), code("JKLM"), code("NPQR"), code("STUV")], "not a code in use; four at most");
        let for_b = directory.reserve("b", &candidates, now);
        assert_eq!(for_b, [code("WXYZ")], "never a code another server holds");
        // A reports the codes it keeps; the one it used is now a room, the others stay its own.
        a.rooms.push(room("EFGH", true, 1));
        a.reserved = vec![code("JKLM"), code("NPQR"), code("STUV")];
        directory.report(a, now);
        assert_eq!(directory.reserve("b", &candidates, now), Vec::<RoomCode>::new(), "{candidates:?}");
        assert_eq!(directory.reserve("a", &[code("ZZZZ")], now), [code("ZZZZ")], "topped up to four");
        // A report may hold no more than its share in reserve (no squatting on the code space).
        let mut greedy = report("c", 4, vec![]);
        greedy.reserved = candidates.clone();
        assert!(greedy.check().is_err(), "six reserved codes");
        // Unreported reservations lapse with the server.
        directory.expire(now + STALE_AFTER + Duration::from_secs(1));
        let later = now + STALE_AFTER + Duration::from_secs(1);
        directory.report(report("b", 4, vec![]), later);
        assert_eq!(directory.reserve("b", &[code("JKLM")], later), [code("JKLM")]);
    }

    #[test]
    fn a_known_servers_name_takes_only_its_own_key() {
        let mut keys = ServerKeys::default();
        let now = Instant::now();
        let (real, other) = ("a".repeat(64), "b".repeat(64));
        assert_eq!(keys.check("gs-1", &real, now), Ok(()), "the first report binds the name");
        assert_eq!(keys.check("gs-1", &real, now + REPORT_EVERY), Ok(()));
        assert_eq!(keys.check("gs-1", &other, now + REPORT_EVERY), Err(KeyRefusal::NameTaken));
        assert_eq!(keys.check("gs-1", "short", now), Err(KeyRefusal::Missing));
        assert_eq!(keys.check("gs-2", &other, now), Ok(()), "another name is free");
        // Held while the server reports, and for NAME_HELD_FOR after its last report.
        let last = now + REPORT_EVERY;
        assert_eq!(keys.check("gs-1", &other, last + NAME_HELD_FOR), Err(KeyRefusal::NameTaken));
        assert_eq!(keys.check("gs-1", &other, last + NAME_HELD_FOR + Duration::from_secs(1)), Ok(()));
        // A goodbye frees the name at once (a restart reports with a new key).
        keys.release("gs-2");
        assert_eq!(keys.check("gs-2", &real, last), Ok(()));
        // Bounded: full of live names, a new one waits; expired ones make room.
        let mut full = ServerKeys::default();
        for index in 0..MAX_SERVER_NAMES {
            full.check(&format!("s{index}"), &real, now).unwrap();
        }
        assert_eq!(full.check("new", &real, now), Err(KeyRefusal::Full));
        assert_eq!(full.check("s7", &real, now), Ok(()), "known names still report");
        assert_eq!(full.check("new", &real, now + NAME_HELD_FOR + Duration::from_secs(1)), Ok(()));
        assert_eq!(full.len(), 1);
    }
}
