//! The fleet directory in Redis (or Valkey): what [`super::Directory`] keeps in one lobby's
//! memory, shared by any number of lobbies. Every change is one Lua script, so it is atomic in
//! Redis whichever lobby runs it: two lobbies never hand out the last seat of a room or the last
//! room slot of a server, and a report replaces a server's rooms in one step.
//!
//! Keys (all under [`PREFIX`]):
//! - `server:NAME`, a hash (url, max_rooms, rooms, players, sent_rooms, draining) that expires
//!   [`super::STALE_AFTER`] after the server's last report, and `servers`, a sorted set of names
//!   by when they expire (the live ones without a scan of the keyspace);
//! - `server:NAME:codes`, the codes of its rooms at its last report (to drop the rooms a report
//!   no longer has, and all of them when the server expires: the lobbies' scripts that read the
//!   list or the servers first drop the servers whose time in `servers` has passed);
//! - `name:NAME`, the SHA-256 of the server's own key, held [`super::NAME_HELD_FOR`] after its
//!   last report (see [`super::ServerKeys`]);
//! - `code:CODE`, the server holding a room code (set only if absent: a code is one server's
//!   across the fleet; a code held in reserve expires unless reported), and `room:CODE`, a hash
//!   (server, url, the listed JSON, players, max, open, sent) that a report rewrites only when
//!   the room changed;
//! - `rooms`, the sorted index of the listed rooms (public, on a server that is not draining),
//!   scored by players then age, so `GET /api/rooms` reads the fullest 200 without a scan.
//!
//! Players sent to a room are counted against its seats (`sent`) until a report shows them
//! arrived, or [`SENT_FOR`] after the last placement there, so a report landing between two
//! placements never frees a seat twice; rooms taken on a server (`sent_rooms`) count until its
//! next report, as in the in-memory directory.

use std::time::Duration;

use redis::aio::ConnectionManager;
use serde::Serialize;
use shared::room::RoomCode;

use super::{FleetRoom, Placement, Report};

/// Every key of the directory starts with this.
pub const PREFIX: &str = "arena:";

/// How long players sent to a room count against its seats when they do not arrive (a report
/// takes off only those who did).
pub const SENT_FOR: Duration = Duration::from_secs(10);

/// How long one Redis call may take before the directory counts Redis as unreachable.
const CALL_TIMEOUT: Duration = Duration::from_millis(1500);

/// A connection to the directory in Redis (cheap to clone: one multiplexed connection that
/// reconnects by itself).
#[derive(Clone)]
pub struct RedisDirectory {
    connection: ConnectionManager,
}

impl std::fmt::Debug for RedisDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisDirectory").finish_non_exhaustive()
    }
}

/// Why a call to the directory failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectoryError {
    /// Redis did not answer (down, unreachable, too slow): the caller may answer from its last
    /// view.
    Unreachable(String),
    /// Redis answered with an error (a refused login or ACL, a wrong type at a key).
    Refused(String),
}

impl std::fmt::Display for DirectoryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DirectoryError::Unreachable(why) => write!(f, "the fleet directory (Redis) did not answer: {why}"),
            DirectoryError::Refused(why) => write!(f, "the fleet directory (Redis) refused: {why}"),
        }
    }
}

fn failed(error: redis::RedisError) -> DirectoryError {
    if error.is_io_error() || error.is_timeout() || error.is_connection_dropped() || error.is_connection_refusal() {
        DirectoryError::Unreachable(error.to_string())
    } else {
        DirectoryError::Refused(error.to_string())
    }
}

/// What a report's script answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reported {
    /// Taken; these of its codes are another server's (not listed, not joinable by code here),
    /// and these are newly reserved for its next rooms.
    Taken { taken_elsewhere: Vec<RoomCode>, codes: Vec<RoomCode> },
    /// The name is bound to another key.
    NameTaken,
}

/// One server as `GET /api/fleet/servers` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ServerView {
    pub server: String,
    pub url: String,
    pub rooms: u32,
    pub free_slots: u32,
    pub players: u32,
    pub draining: bool,
}

#[derive(Serialize)]
struct ReportArgs<'a> {
    server: &'a str,
    url: &'a str,
    key: String,
    max_rooms: u16,
    draining: u8,
    goodbye: u8,
    now: u64,
    ttl: u64,
    hold: u64,
    sent_for: u64,
    reserved: Vec<String>,
    candidates: Vec<String>,
    want: usize,
}

/// The list's order as one number: players first (most first), then the newest.
fn list_score(players: u16, created_unix_ms: u64) -> f64 {
    // Milliseconds fit 41 bits until 2039; with up to 4,096 players the sum stays exact in an
    // f64's 53 bits.
    (f64::from(players.min(4095)) * 2f64.powi(41)) + (created_unix_ms % (1u64 << 41)) as f64
}

/// What every script that may find a server gone starts with (Lua has no shared libraries in
/// Redis 7.0: each script carries these).
macro_rules! sweep {
    () => {
        r#"
-- A room of `server` gone: its entry, its place in the list, its code.
local function drop_room(p, server, code)
  local room_key = p .. 'room:' .. code
  if redis.call('HGET', room_key, 'server') == server then
    redis.call('DEL', room_key)
    redis.call('ZREM', p .. 'rooms', code)
  end
  local code_key = p .. 'code:' .. code
  if redis.call('GET', code_key) == server then redis.call('DEL', code_key) end
end
-- Servers whose last report is older than the expiry leave with their rooms.
local function sweep(p, now)
  for _, name in ipairs(redis.call('ZRANGEBYSCORE', p .. 'servers', '-inf', now)) do
    local codes_key = p .. 'server:' .. name .. ':codes'
    for _, code in ipairs(redis.call('SMEMBERS', codes_key)) do drop_room(p, name, code) end
    redis.call('DEL', codes_key)
    redis.call('ZREM', p .. 'servers', name)
  end
end
"#
    };
}

/// A server's report: its rooms replaced in one step (a room that did not change is left as it
/// is), its key refreshed, and codes reserved for its next rooms.
const REPORT: &str = concat!(
    sweep!(),
    r#"
local p = ARGV[1]
local r = cjson.decode(ARGV[2])
local name_key = p .. 'name:' .. r.server
local held = redis.call('GET', name_key)
if held and held ~= r.key then return {'name_taken', {}, {}} end
local server_key = p .. 'server:' .. r.server
local codes_key = server_key .. ':codes'
local old = {}
for _, code in ipairs(redis.call('SMEMBERS', codes_key)) do old[code] = true end
local taken, now_codes = {}, {}
local players, rooms = 0, 0
if r.goodbye == 0 then
  -- ARGV[3..]: code, JSON, players, max, open, listed, score for each room.
  for i = 3, #ARGV, 7 do
    local code, json, n = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
    local room_key = p .. 'room:' .. code
    local was = redis.call('HMGET', room_key, 'server', 'json', 'players', 'sent', 'sent_at', 'open', 'listed', 'url')
    local ok = was[1] == r.server
    if not ok then
      -- A room new here: its code must be free, or reserved for this server. (Whether another
      -- server is live is read from the shared index: a server's login may not read others' keys.)
      local owner = redis.call('GET', p .. 'code:' .. code)
      local other = was[1] and tonumber(redis.call('ZSCORE', p .. 'servers', was[1]) or 0) > r.now
      if other or (owner and owner ~= r.server) then
        table.insert(taken, code)
      else
        ok = true
        was = {false, false, false, false, false, false, false, false}
        redis.call('SET', p .. 'code:' .. code, r.server)
      end
    end
    if ok then
      now_codes[code] = true
      if was[2] ~= json or was[6] ~= ARGV[i + 4] or was[7] ~= ARGV[i + 5] or was[8] ~= r.url then
        -- Players sent here and not arrived stay counted: the report's new players are the
        -- arrivals; what is left is forgotten SENT_FOR after the last placement.
        local sent = 0
        if was[4] and tonumber(was[5] or 0) + r.sent_for > r.now then
          sent = math.max(0, tonumber(was[4]) - math.max(0, n - tonumber(was[3])))
        end
        redis.call('HSET', room_key, 'server', r.server, 'url', r.url, 'json', json, 'players', n,
          'max', ARGV[i + 3], 'open', ARGV[i + 4], 'listed', ARGV[i + 5], 'sent', sent)
        if ARGV[i + 5] == '1' then
          redis.call('ZADD', p .. 'rooms', ARGV[i + 6], code)
        else
          redis.call('ZREM', p .. 'rooms', code)
        end
      end
      if not old[code] then redis.call('SADD', codes_key, code) end
      players = players + n
      rooms = rooms + 1
    end
  end
end
for code, _ in pairs(old) do
  if not now_codes[code] then
    redis.call('SREM', codes_key, code)
    drop_room(p, r.server, code)
  end
end
if r.goodbye == 1 then
  redis.call('DEL', name_key, server_key, codes_key)
  redis.call('ZREM', p .. 'servers', r.server)
  return {'ok', taken, {}}
end
-- Codes held in reserve for its next rooms: kept while reported, topped up from the candidates.
for _, code in ipairs(r.reserved) do
  local code_key = p .. 'code:' .. code
  local owner = redis.call('GET', code_key)
  if not owner then
    redis.call('SET', code_key, r.server, 'PX', r.ttl)
  elseif owner == r.server and redis.call('PTTL', code_key) > 0 then
    redis.call('PEXPIRE', code_key, r.ttl)
  end
end
local granted = {}
for _, code in ipairs(r.candidates) do
  if #granted >= r.want then break end
  if redis.call('SET', p .. 'code:' .. code, r.server, 'NX', 'PX', r.ttl) then table.insert(granted, code) end
end
redis.call('SET', name_key, r.key, 'PX', r.hold)
redis.call('HSET', server_key, 'url', r.url, 'max_rooms', r.max_rooms, 'rooms', rooms,
  'players', players, 'sent_rooms', 0, 'draining', r.draining)
redis.call('PEXPIRE', server_key, r.ttl)
redis.call('ZADD', p .. 'servers', r.now + r.ttl, r.server)
return {'ok', taken, granted}
"#
);

/// The listed rooms, fullest first (forgetting index entries whose room expired).
const LIST: &str = concat!(
    sweep!(),
    r#"
local p = ARGV[1]
local limit = tonumber(ARGV[2])
sweep(p, tonumber(ARGV[3]))
local out = {}
local start = 0
while #out < limit do
  local codes = redis.call('ZREVRANGE', p .. 'rooms', start, start + limit - 1)
  if #codes == 0 then break end
  for _, code in ipairs(codes) do
    local json = redis.call('HGET', p .. 'room:' .. code, 'json')
    if json then
      if #out < limit then table.insert(out, json) end
    else
      redis.call('ZREM', p .. 'rooms', code)
      start = start - 1
    end
  end
  start = start + #codes
end
return out
"#
);

/// The live servers: {name, url, max_rooms, rooms, players, sent_rooms, draining} each.
const SERVERS: &str = concat!(
    sweep!(),
    r#"
local p = ARGV[1]
local now = tonumber(ARGV[2])
sweep(p, now)
local out = {}
for _, name in ipairs(redis.call('ZRANGE', p .. 'servers', 0, -1)) do
  local s = redis.call('HMGET', p .. 'server:' .. name, 'url', 'max_rooms', 'rooms', 'players', 'sent_rooms', 'draining')
  if s[1] then table.insert(out, {name, s[1], s[2], s[3], s[4], s[5], s[6]}) end
end
return out
"#
);

/// Join by code: the room's server, counting the player there (`ARGV[3]`: only on this server).
const JOIN: &str = r#"
local p = ARGV[1]
local room_key = p .. 'room:' .. ARGV[2]
local room = redis.call('HMGET', room_key, 'server', 'url', 'sent_at')
if not room[1] then return false end
if ARGV[3] ~= '' and ARGV[3] ~= room[1] then return false end
local server_key = p .. 'server:' .. room[1]
if redis.call('EXISTS', server_key) == 0 then return false end
local now = tonumber(ARGV[4])
if tonumber(room[3] or 0) + tonumber(ARGV[5]) <= now then redis.call('HSET', room_key, 'sent', 0) end
redis.call('HINCRBY', room_key, 'sent', 1)
redis.call('HSET', room_key, 'sent_at', now)
redis.call('HINCRBY', server_key, 'players', 1)
return {room[1], room[2]}
"#;

/// Quick play: the fullest open room with a seat (counting the players sent there and not
/// arrived, for `SENT_FOR` after the last), taking the seat.
const QUICK_PLAY: &str = r#"
local p = ARGV[1]
local now, sent_for = tonumber(ARGV[2]), tonumber(ARGV[3])
local start = 0
while true do
  local codes = redis.call('ZREVRANGE', p .. 'rooms', start, start + 63)
  if #codes == 0 then return false end
  for _, code in ipairs(codes) do
    local room_key = p .. 'room:' .. code
    local room = redis.call('HMGET', room_key, 'server', 'url', 'players', 'max', 'open', 'sent', 'sent_at')
    if room[1] and room[5] == '1' then
      local sent = 0
      if tonumber(room[7] or 0) + sent_for > now then sent = tonumber(room[6]) end
      local server_key = p .. 'server:' .. room[1]
      if tonumber(room[3]) + sent < tonumber(room[4]) and redis.call('EXISTS', server_key) == 1 then
        redis.call('HSET', room_key, 'sent', sent + 1, 'sent_at', now)
        redis.call('HINCRBY', server_key, 'players', 1)
        return {room[1], room[2], code}
      end
    end
  end
  start = start + #codes
end
"#;

/// A new room's server: the live one (not draining) with the most free room slots, then the
/// fewest players, then the first name; takes the slot.
const LEAST_LOADED: &str = r#"
local p = ARGV[1]
local now = tonumber(ARGV[2])
local best, best_url, best_free, best_players = nil, nil, 0, 0
for _, name in ipairs(redis.call('ZRANGEBYSCORE', p .. 'servers', now, '+inf')) do
  local s = redis.call('HMGET', p .. 'server:' .. name, 'url', 'max_rooms', 'rooms', 'sent_rooms', 'draining', 'players')
  if s[1] and s[5] == '0' then
    local free = tonumber(s[2]) - tonumber(s[3]) - tonumber(s[4])
    local players = tonumber(s[6])
    if free > 0 and (best == nil or free > best_free or (free == best_free and (players < best_players
        or (players == best_players and name < best)))) then
      best, best_url, best_free, best_players = name, s[1], free, players
    end
  end
end
if best == nil then return false end
redis.call('HINCRBY', p .. 'server:' .. best, 'sent_rooms', 1)
return {best, best_url}
"#;

/// One live server's URL and whether it drains (for an Agones allocation's answer).
const SERVER: &str = r#"
local s = redis.call('HMGET', ARGV[1] .. 'server:' .. ARGV[2], 'url', 'draining')
if not s[1] then return false end
return {s[1], s[2]}
"#;

/// Counts a player placed elsewhere (an Agones allocation) on a room or a server.
const COUNT: &str = r#"
local p = ARGV[1]
if ARGV[3] ~= '' and redis.call('EXISTS', p .. 'room:' .. ARGV[3]) == 1 then
  local room_key = p .. 'room:' .. ARGV[3]
  if tonumber(redis.call('HGET', room_key, 'sent_at') or 0) + tonumber(ARGV[5]) <= tonumber(ARGV[4]) then
    redis.call('HSET', room_key, 'sent', 0)
  end
  redis.call('HINCRBY', room_key, 'sent', 1)
  redis.call('HSET', room_key, 'sent_at', ARGV[4])
elseif ARGV[3] == '' and redis.call('EXISTS', p .. 'server:' .. ARGV[2]) == 1 then
  redis.call('HINCRBY', p .. 'server:' .. ARGV[2], 'sent_rooms', 1)
end
if redis.call('EXISTS', p .. 'server:' .. ARGV[2]) == 1 then
  redis.call('HINCRBY', p .. 'server:' .. ARGV[2], 'players', 1)
end
return 1
"#;

/// Whether a directory URL carries a password (`redis://user:secret@host`), which belongs in the
/// environment instead.
pub fn has_password(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else { return false };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority.rsplit_once('@').is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

fn sent_for() -> String {
    SENT_FOR.as_millis().to_string()
}

fn now_ms() -> u64 {
    crate::stats::unix_ms()
}

impl RedisDirectory {
    /// Connects to `url` (`redis://` or `rediss://`; an ACL user in the URL, the password
    /// from `password` when given). Fails when Redis cannot be reached or refuses the login.
    pub async fn connect(url: &str, password: Option<&str>) -> Result<RedisDirectory, DirectoryError> {
        use redis::IntoConnectionInfo;
        let mut info = url.into_connection_info().map_err(|e| DirectoryError::Refused(format!("--directory: {e}")))?;
        if let Some(password) = password {
            let redis_settings = info.redis_settings().clone().set_password(password);
            info = info.set_redis_settings(redis_settings);
        }
        let client = redis::Client::open(info).map_err(|e| DirectoryError::Refused(e.to_string()))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CALL_TIMEOUT))
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        let connection =
            tokio::time::timeout(CALL_TIMEOUT * 2, redis::aio::ConnectionManager::new_with_config(client, config))
                .await
                .map_err(|_| DirectoryError::Unreachable("no answer".to_string()))?
                .map_err(failed)?;
        let directory = RedisDirectory { connection };
        let _: String = directory.call(redis::cmd("PING")).await?;
        Ok(directory)
    }

    async fn call<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, DirectoryError> {
        let mut connection = self.connection.clone();
        tokio::time::timeout(CALL_TIMEOUT, cmd.query_async(&mut connection))
            .await
            .map_err(|_| DirectoryError::Unreachable("timed out".to_string()))?
            .map_err(failed)
    }

    async fn script<T: redis::FromRedisValue>(&self, source: &str, args: &[&str]) -> Result<T, DirectoryError> {
        let script = redis::Script::new(source);
        let mut invocation = script.prepare_invoke();
        invocation.arg(PREFIX);
        for arg in args {
            invocation.arg(*arg);
        }
        let mut connection = self.connection.clone();
        tokio::time::timeout(CALL_TIMEOUT, invocation.invoke_async(&mut connection))
            .await
            .map_err(|_| DirectoryError::Unreachable("timed out".to_string()))?
            .map_err(failed)
    }

    /// Takes `report` from the server whose own key hashes to `key_digest`, and reserves for
    /// its next rooms those of `candidates` no server holds (up to what it lacks).
    pub async fn report(
        &self,
        report: &Report,
        key_digest: &[u8; 32],
        candidates: &[RoomCode],
    ) -> Result<Reported, DirectoryError> {
        let draining = report.draining || report.goodbye;
        let mut rooms: Vec<String> = Vec::new();
        for room in report.rooms.iter().take(super::MAX_REPORTED_ROOMS) {
            rooms.push(room.code.to_string());
            rooms.push(
                serde_json::to_string(&FleetRoom { room: room.clone(), server: report.server.clone() })
                    .expect("a room serializes"),
            );
            rooms.push(room.players.to_string());
            rooms.push(room.max_players.to_string());
            rooms.push(u8::from(room.public && !room.locked && !draining).to_string());
            rooms.push(u8::from(room.public && !draining).to_string());
            rooms.push(list_score(room.players, room.created_unix_ms).to_string());
        }
        let args = ReportArgs {
            server: &report.server,
            url: &report.url,
            key: key_digest.iter().map(|b| format!("{b:02x}")).collect(),
            max_rooms: report.max_rooms,
            draining: u8::from(draining),
            goodbye: u8::from(report.goodbye),
            now: now_ms(),
            ttl: super::STALE_AFTER.as_millis() as u64,
            hold: super::NAME_HELD_FOR.as_millis() as u64,
            sent_for: SENT_FOR.as_millis() as u64,
            reserved: report.reserved.iter().map(RoomCode::to_string).collect(),
            candidates: candidates.iter().map(RoomCode::to_string).collect(),
            want: super::RESERVED_CODES.saturating_sub(report.reserved.len()),
        };
        let head = serde_json::to_string(&args).expect("a report serializes");
        let mut all: Vec<&str> = vec![&head];
        all.extend(rooms.iter().map(String::as_str));
        let (status, taken, granted): (String, Vec<String>, Vec<String>) = self.script(REPORT, &all).await?;
        let codes = |list: Vec<String>| list.iter().filter_map(|c| RoomCode::parse(c)).collect();
        match status.as_str() {
            "name_taken" => Ok(Reported::NameTaken),
            _ => Ok(Reported::Taken { taken_elsewhere: codes(taken), codes: codes(granted) }),
        }
    }

    /// The `limit` fullest listed rooms, as `GET /api/rooms` shows them (JSON objects).
    pub async fn public_rooms(&self, limit: usize) -> Result<Vec<String>, DirectoryError> {
        self.script(LIST, &[&limit.to_string(), &now_ms().to_string()]).await
    }

    /// The live servers, by name.
    pub async fn servers(&self) -> Result<Vec<ServerView>, DirectoryError> {
        let rows: Vec<(String, String, u32, u32, u32, u32, u8)> =
            self.script(SERVERS, &[&now_ms().to_string()]).await?;
        Ok(rows
            .into_iter()
            .map(|(server, url, max_rooms, rooms, players, sent_rooms, draining)| ServerView {
                server,
                url,
                rooms,
                free_slots: max_rooms.saturating_sub(rooms + sent_rooms),
                players,
                draining: draining != 0,
            })
            .collect())
    }

    /// The server hosting `code` (on `on` only, when given), counting the player there.
    pub async fn join(&self, code: RoomCode, on: Option<&str>) -> Result<Option<Placement>, DirectoryError> {
        let found: Option<(String, String)> =
            self.script(JOIN, &[&code.to_string(), on.unwrap_or(""), &now_ms().to_string(), &sent_for()]).await?;
        Ok(found.map(|(server, url)| Placement { server, url, room: Some(code) }))
    }

    /// The fullest open room with a seat, the seat taken.
    pub async fn quick_play(&self) -> Result<Option<Placement>, DirectoryError> {
        let found: Option<(String, String, String)> =
            self.script(QUICK_PLAY, &[&now_ms().to_string(), &sent_for()]).await?;
        Ok(found.map(|(server, url, code)| Placement { server, url, room: RoomCode::parse(&code) }))
    }

    /// The server with the most free room slots, one of them taken.
    pub async fn least_loaded(&self) -> Result<Option<Placement>, DirectoryError> {
        let found: Option<(String, String)> = self.script(LEAST_LOADED, &[&now_ms().to_string()]).await?;
        Ok(found.map(|(server, url)| Placement { server, url, room: None }))
    }

    /// A live server's URL and whether it is draining.
    pub async fn server(&self, name: &str) -> Result<Option<(String, bool)>, DirectoryError> {
        let found: Option<(String, u8)> = self.script(SERVER, &[name]).await?;
        Ok(found.map(|(url, draining)| (url, draining != 0)))
    }

    /// Counts a player placed by someone else (an Agones allocation).
    pub async fn count(&self, placement: &Placement) -> Result<(), DirectoryError> {
        let room = placement.room.map(|code| code.to_string()).unwrap_or_default();
        let _: i64 = self.script(COUNT, &[&placement.server, &room, &now_ms().to_string(), &sent_for()]).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_the_url_is_noticed() {
        assert!(has_password("redis://:secret@127.0.0.1:6379/0"));
        assert!(has_password("rediss://lobby:secret@redis.internal"));
        assert!(!has_password("redis://lobby@redis.internal:6379"));
        assert!(!has_password("redis://127.0.0.1:6379/0"));
        assert!(!has_password("redis://127.0.0.1/0?x=a:b@c"));
    }

    #[test]
    fn the_list_score_orders_by_players_then_the_newest() {
        assert!(list_score(3, 1_000) > list_score(2, 1_900_000_000_000));
        assert!(list_score(2, 1_900_000_000_001) > list_score(2, 1_900_000_000_000));
        assert_eq!(list_score(4095, 1), list_score(9000, 1), "capped, never out of order with the time");
    }
}
