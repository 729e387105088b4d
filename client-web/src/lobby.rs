//! The lobby's rules, without a browser: which room a connection asks for and with which
//! credentials, what a closed connection leads to (retry, or back to the lobby with a sentence),
//! the create-room form, the room list's wording, and the browser-storage keys. The DOM side is
//! `lobby_view`; the socket side is `app`.

use serde::{Deserialize, Serialize};
use shared::protocol::{ClientMsg, DisconnectReason, JoinAuth, PROTOCOL_VERSION};
use shared::protocol::{RoundEnd, RoundOver, RoundRated};
use shared::room::{
    HostKey, MAX_ROOM_BOTS, RoomCode, RoomRequest, RoomSettings, RoomSummary, RoundRules, sanitize_room_name,
};
use shared::snapshot::NetId;

/// What `GET /api/lan` says: this server's addresses for other devices and the Arena servers it
/// heard on the network.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LanInfo {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub urls: Vec<String>,
    #[serde(default)]
    pub mdns_url: Option<String>,
    #[serde(default)]
    pub best_url: Option<String>,
    #[serde(default)]
    pub others: Vec<LanPeer>,
}

/// Another Arena server on the network (every field came from that server: shown as text).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LanPeer {
    pub name: String,
    pub url: String,
    #[serde(default)]
    pub rooms: u32,
    #[serde(default)]
    pub players: u32,
    #[serde(default)]
    pub protocol: u16,
}

pub fn parse_lan(body: &str) -> Option<LanInfo> {
    serde_json::from_str(body).ok()
}

/// A URL fit for a link's `href`: plain `http(s)://` with nothing that could break out of it.
pub fn safe_link(url: &str) -> Option<&str> {
    let ok = (url.starts_with("http://") || url.starts_with("https://"))
        && url.len() < 200
        && !url.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '<' | '>' | '\\'));
    ok.then_some(url)
}

/// One line about another server: its rooms and players, or why it cannot be joined from here.
pub fn peer_details(peer: &LanPeer) -> String {
    if peer.protocol != PROTOCOL_VERSION {
        return "another version of Arena: open it to play there".to_string();
    }
    let plural = |n: u32, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    format!("{} · {}", plural(peer.rooms, "room", "rooms"), plural(peer.players, "player", "players"))
}

/// The invite for other devices: the server's LAN URL when it has one, else this page's origin.
pub fn invite_base(lan: Option<&LanInfo>, origin: &str) -> String {
    lan.and_then(|lan| lan.best_url.clone()).unwrap_or_else(|| origin.to_string())
}

/// The player's name (localStorage): remembered across visits.
pub const NAME_KEY: &str = "arena.name";
/// This browser's random client id (localStorage), generated once.
pub const CLIENT_ID_KEY: &str = "arena.client";

/// The resume token for a room (sessionStorage: a reload of this tab resumes, another tab is
/// another player).
pub fn resume_key(code: RoomCode) -> String {
    format!("arena.resume.{code}")
}

/// The host key for a room, as hex (localStorage: the host stays host after closing the tab).
pub fn host_key_key(code: RoomCode) -> String {
    format!("arena.hostkey.{code}")
}

/// A client id from two `Math.random()` values in [0, 1): 32 bits from each. Never 0, so a
/// stored id is always distinguishable from "none".
pub fn client_id_from_random(high: f64, low: f64) -> u64 {
    let bits = |value: f64| ((value.clamp(0.0, 1.0) * 4_294_967_296.0) as u64).min(u64::from(u32::MAX));
    ((bits(high) << 32) | bits(low)).max(1)
}

/// A stored client id, if it is one.
pub fn parse_client_id(text: &str) -> Option<u64> {
    text.trim().parse().ok().filter(|&id| id != 0)
}

/// Which room a connection asks for. After a welcome the app keeps `Join`/`Watch` of the room it
/// got, so reconnects go back to the same room rather than to a quick-play pick.
#[derive(Clone, Debug, PartialEq)]
pub enum JoinTarget {
    QuickPlay,
    Join(RoomCode),
    Watch(RoomCode),
    Create(RoomSettings),
}

impl JoinTarget {
    pub fn request(&self) -> RoomRequest {
        match self {
            JoinTarget::QuickPlay => RoomRequest::QuickPlay,
            JoinTarget::Join(code) => RoomRequest::Join { code: code.to_string() },
            JoinTarget::Watch(code) => RoomRequest::Watch { code: code.to_string() },
            JoinTarget::Create(settings) => RoomRequest::Create(settings.clone()),
        }
    }
}

/// What this browser holds for a room: its resume token and, for the room's host, the host key.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Credentials {
    pub resume: Option<u64>,
    pub host_key: Option<HostKey>,
}

/// Where the guest identity's secret is kept (localStorage), and the public id it maps to.
pub const GUEST_KEY: &str = "arena.guest";
pub const PLAYER_KEY: &str = "arena.player";

/// A guest secret as stored: 32 lowercase hex digits.
pub fn guest_secret_hex(secret: &[u8; 16]) -> String {
    secret.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn parse_guest_secret(text: &str) -> Option<[u8; 16]> {
    if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut secret = [0u8; 16];
    for (slot, pair) in secret.iter_mut().zip(text.as_bytes().chunks(2)) {
        *slot = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(secret)
}

/// The hello for `target`. Credentials go only to the room they belong to: `credentials_for` is
/// asked only when joining a code as a player (never for quick play, creating or watching).
pub fn hello(
    name: &str,
    target: &JoinTarget,
    client_id: u64,
    credentials_for: impl FnOnce(RoomCode) -> Credentials,
    (auth, guest): (Option<JoinAuth>, Option<[u8; 16]>),
) -> ClientMsg {
    let credentials = match target {
        JoinTarget::Join(code) => credentials_for(*code),
        _ => Credentials::default(),
    };
    ClientMsg::Hello {
        protocol: PROTOCOL_VERSION,
        name: name.to_string(),
        resume: credentials.resume,
        room: target.request(),
        host_key: credentials.host_key,
        client_id,
        auth,
        guest,
    }
}

/// Close codes whose reasons retrying cannot fix (see [`DisconnectReason::close_code`]), for when
/// the server's `Disconnect` message did not arrive before the Close frame.
fn is_permanent_code(code: u16) -> bool {
    matches!(code, 1003 | 4001 | 4004 | 4005 | 4008..=4023 | 4026)
}

/// Endings that retrying cannot fix: the client must not reconnect by itself.
pub fn is_permanent(reason: Option<&DisconnectReason>, code: u16) -> bool {
    match reason {
        Some(reason) => matches!(
            reason,
            DisconnectReason::ProtocolMismatch { .. }
                | DisconnectReason::Kicked
                | DisconnectReason::Malformed
                | DisconnectReason::InvalidInput
                | DisconnectReason::TextFrame
                | DisconnectReason::NoSuchRoom
                | DisconnectReason::RoomClosed
                | DisconnectReason::RoomLocked
                | DisconnectReason::RoomFull { .. }
                | DisconnectReason::NotAllowed
                | DisconnectReason::TooManyRooms { .. }
                | DisconnectReason::CreateRateLimited
                | DisconnectReason::ByOperator { .. }
                | DisconnectReason::Banned
                | DisconnectReason::PasswordRequired
                | DisconnectReason::WrongPassword
                | DisconnectReason::TokenRequired
                | DisconnectReason::TokenInvalid { .. }
                | DisconnectReason::TokenExpired
                | DisconnectReason::JoinRateLimited
                | DisconnectReason::Replaced
        ),
        None => is_permanent_code(code),
    }
}

/// How a connection ended, as far as deciding what comes next needs.
#[derive(Clone, Copy, Debug)]
pub struct Ending<'a> {
    /// What the server said in its `Disconnect` message, if it said anything.
    pub reason: Option<&'a DisconnectReason>,
    /// The Close frame's code.
    pub code: u16,
    /// The reason in words (the `Disconnect`'s Display, else the Close frame's text).
    pub why: &'a str,
    /// What the connection asked for.
    pub target: &'a JoinTarget,
    /// The room the player had been welcomed into on this or an earlier connection of the same
    /// visit, and whether it is its server's permanent room.
    pub in_room: Option<RoomState>,
}

/// What the client knew about the room it was in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RoomState {
    pub permanent: bool,
}

/// What to do after a connection ended.
#[derive(Clone, Debug, PartialEq)]
pub enum AfterClose {
    /// Try the same target again, after a backoff.
    Retry,
    /// The server's permanent room is gone, which means the server restarted (its rooms got new
    /// codes): quick play finds the new server's room, as a reconnect did before rooms existed.
    QuickPlay,
    /// Back to the lobby, saying this.
    Lobby(String),
}

pub fn after_close(ending: Ending<'_>) -> AfterClose {
    if !is_permanent(ending.reason, ending.code) {
        return AfterClose::Retry;
    }
    let no_such_room = match ending.reason {
        Some(reason) => *reason == DisconnectReason::NoSuchRoom,
        None => ending.code == DisconnectReason::NoSuchRoom.close_code(),
    };
    if no_such_room && ending.in_room.is_some_and(|room| room.permanent) {
        return AfterClose::QuickPlay;
    }
    AfterClose::Lobby(lobby_message(ending))
}

/// The server wants a password (none was sent, or it was wrong): the lobby asks for it.
pub fn asks_password(reason: Option<&DisconnectReason>, code: u16) -> bool {
    match reason {
        Some(reason) => matches!(reason, DisconnectReason::PasswordRequired | DisconnectReason::WrongPassword),
        None => matches!(code, 4018 | 4019),
    }
}

/// A join token handed over in the page address's fragment (`#join=TOKEN`, which browsers never
/// send to a server), by a lobby front end that allocated this server.
pub fn token_in_fragment(hash: &str) -> Option<String> {
    let token = hash.strip_prefix('#')?.split('&').find_map(|pair| pair.strip_prefix("join="))?;
    let plausible = !token.is_empty()
        && token.len() <= shared::protocol::MAX_JOIN_TOKEN_BYTES
        && token.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    plausible.then(|| token.to_string())
}

/// The sentence the lobby shows after a permanent ending.
fn lobby_message(ending: Ending<'_>) -> String {
    let kicked = match ending.reason {
        Some(reason) => *reason == DisconnectReason::Kicked,
        None => ending.code == DisconnectReason::Kicked.close_code(),
    };
    let why = ending.why;
    if kicked {
        "You were kicked by the host".to_string()
    } else if matches!(ending.reason, Some(DisconnectReason::PasswordRequired)) || ending.code == 4018 {
        "This server needs a password: type it below, then play".to_string()
    } else if matches!(ending.reason, Some(DisconnectReason::WrongPassword)) || ending.code == 4019 {
        "Wrong password: try again".to_string()
    } else if ending.in_room.is_some() {
        format!("Disconnected: {why}")
    } else {
        match ending.target {
            JoinTarget::Create(_) => format!("Could not create a room: {why}"),
            JoinTarget::Watch(_) => format!("Could not watch: {why}"),
            JoinTarget::QuickPlay | JoinTarget::Join(_) => format!("Could not join: {why}"),
        }
    }
}

/// The words for a connection that closed without a `Disconnect` message or Close reason text.
pub fn close_code_words(code: u16) -> String {
    match code {
        1000 | 1005 => "the server closed the connection".to_string(),
        1001 => DisconnectReason::ServerClosing.to_string(),
        1006 => DisconnectReason::ConnectionLost.to_string(),
        other => format!("the connection closed (code {other})"),
    }
}

/// A room code typed into the join-by-code box, or the sentence explaining what a code is.
pub fn typed_code(text: &str) -> Result<RoomCode, String> {
    if text.trim().is_empty() {
        return Err("Type the room's code first (4 letters, like ABCD)".to_string());
    }
    RoomCode::parse(text)
        .ok_or_else(|| format!("\u{201c}{}\u{201d} is not a room code: codes are 4 letters, like ABCD", text.trim()))
}

/// The create-room form as [`RoomSettings`]; a blank or unreadable field is left to the server's
/// default rather than refused.
pub fn settings_from_form(
    name: &str,
    public: bool,
    map: &str,
    bots: &str,
    (max_players, rounds): (&str, &str),
) -> RoomSettings {
    let name = sanitize_room_name(name, "");
    let number = |text: &str| text.trim().parse::<u16>().ok();
    RoomSettings {
        name: (!name.is_empty()).then_some(name),
        public: Some(public),
        map: (!map.trim().is_empty()).then(|| map.trim().to_string()),
        bots: number(bots).map(|bots| bots.min(MAX_ROOM_BOTS)),
        max_players: number(max_players).filter(|&max| max > 0),
        rounds: round_rules_from(rounds),
    }
}

/// A bots count typed by the host, or `None` when it is not a number.
/// A round-length menu's value (seconds; 0 endless) as rules; blank or unreadable: `None` (the
/// server's default).
pub fn round_rules_from(text: &str) -> Option<RoundRules> {
    let seconds = text.trim().parse::<u32>().ok()?;
    let rules = RoundRules { seconds, score_limit: None };
    rules.check().is_ok().then_some(rules)
}

/// The HUD's round clock: "3:07 left", or nothing without a time limit or between rounds.
pub fn round_clock_text(ends_at: Option<u32>, server_tick: f64, tick_rate: u16) -> Option<String> {
    let ends_at = ends_at?;
    let seconds = ((f64::from(ends_at) - server_tick) / f64::from(tick_rate.max(1))).max(0.0).ceil() as u64;
    Some(format!("{}:{:02} left", seconds / 60, seconds % 60))
}

/// The end screen: its title, and a line per player (place, name, score, K/D, orbs, accuracy),
/// whether it is this client's.
pub fn round_over_lines(over: &RoundOver, rated: Option<&RoundRated>, me: NetId) -> (String, Vec<(String, bool)>) {
    let why = match over.why {
        RoundEnd::TimeUp => "time is up".to_string(),
        RoundEnd::ScoreLimit { by } => {
            let name = over.placements.iter().find(|p| p.id == by).map_or("a player", |p| p.name.as_str());
            format!("{name} reached the score limit")
        }
    };
    let title = format!("Round {} over: {why}", over.round);
    let lines = over
        .placements
        .iter()
        .map(|p| {
            let tags = match (p.bot, p.left) {
                (_, true) => " (left)",
                (true, false) => " (bot)",
                _ => "",
            };
            let mut text = format!(
                "{}. {}{tags} — {} pts · {}/{} K/D · {} orbs · {:.0}% hits",
                p.place,
                p.name,
                p.score,
                p.kills,
                p.deaths,
                p.orbs,
                p.accuracy() * 100.0
            );
            if let Some(change) = rated.and_then(|r| r.changes.iter().find(|c| c.id == p.id)) {
                text.push_str(&rating_text(change));
            }
            (text, !p.bot && p.id == me)
        })
        .collect();
    (title, lines)
}

/// " · rating 12.3 (+1.4) · #5": a rating change as the end screen shows it.
pub fn rating_text(change: &shared::protocol::RatingChange) -> String {
    let delta = change.after - change.before;
    let rank = change.rank.map(|r| format!(" · #{r}")).unwrap_or_default();
    format!(" · rating {:.1} ({}{:.1}){rank}", change.after, if delta >= 0.0 { "+" } else { "" }, delta)
}

pub fn typed_bots(text: &str) -> Option<u16> {
    let bots = text.trim().parse::<i64>().ok()?;
    Some(bots.clamp(0, i64::from(MAX_ROOM_BOTS)) as u16)
}

/// One entry of `GET /api/maps`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapEntry {
    pub id: String,
    pub name: String,
}

/// `GET /api/rooms`'s body, or `None` when it is not a room list (a server without the API).
pub fn parse_rooms(body: &str) -> Option<Vec<RoomSummary>> {
    serde_json::from_str(body).ok()
}

/// `GET /api/rooms/CODE`'s body.
pub fn parse_room(body: &str) -> Option<RoomSummary> {
    serde_json::from_str(body).ok()
}

/// `GET /api/maps`'s body.
pub fn parse_maps(body: &str) -> Option<Vec<MapEntry>> {
    serde_json::from_str(body).ok()
}

/// A map's display name: its name from the map list, else its id.
pub fn map_name<'a>(maps: &'a [MapEntry], id: &'a str) -> &'a str {
    maps.iter().find(|map| map.id == id).map_or(id, |map| map.name.as_str())
}

/// The second line of a room row: map, players, bots, spectators.
pub fn room_details(room: &RoomSummary, maps: &[MapEntry]) -> String {
    let plural = |count: u16, one: &str, many: &str| format!("{count} {}", if count == 1 { one } else { many });
    format!(
        "{} · {}/{} players · {} · {} watching",
        map_name(maps, &room.map),
        room.players,
        room.max_players,
        plural(room.bots, "bot", "bots"),
        room.spectators
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> RoomCode {
        RoomCode::parse(text).expect("valid code")
    }

    fn ending<'a>(
        reason: Option<&'a DisconnectReason>,
        target: &'a JoinTarget,
        in_room: Option<RoomState>,
    ) -> Ending<'a> {
        let code = reason.map_or(1006, DisconnectReason::close_code);
        Ending { reason, code, why: "", target, in_room }
    }

    impl Ending<'_> {
        fn with_code(self, code: u16) -> Self {
            Ending { code, ..self }
        }
    }

    #[test]
    fn a_refused_resume_retries_afresh_and_a_replaced_connection_stops() {
        let join = JoinTarget::Join(code("abcd"));
        let refused = DisconnectReason::ResumeRefused { why: "this player is still connected".into() };
        assert_eq!(after_close(ending(Some(&refused), &join, None)), AfterClose::Retry);
        assert_eq!(after_close(ending(None, &join, None).with_code(4025)), AfterClose::Retry);
        let replaced = DisconnectReason::Replaced;
        let why = replaced.to_string();
        assert_eq!(
            after_close(Ending { why: &why, ..ending(Some(&replaced), &join, None) }),
            AfterClose::Lobby("Could not join: this player continues on a newer connection".into())
        );
        assert!(is_permanent(None, 4026));
        let in_use = DisconnectReason::SeatInUse { after_ms: 1500 };
        assert_eq!(after_close(ending(Some(&in_use), &join, None)), AfterClose::Retry);
        assert_eq!(after_close(ending(None, &join, None).with_code(4027)), AfterClose::Retry);
        // A lost connection (no reason, 1006) is retried: the seat is held for it.
        assert_eq!(after_close(ending(None, &join, None)), AfterClose::Retry);
    }

    #[test]
    fn the_server_password_and_join_tokens_reach_the_hello() {
        let asked = DisconnectReason::PasswordRequired;
        let wrong = DisconnectReason::WrongPassword;
        let join = JoinTarget::QuickPlay;
        assert!(asks_password(Some(&asked), 4018) && asks_password(Some(&wrong), 4019) && asks_password(None, 4019));
        assert!(!asks_password(Some(&DisconnectReason::TokenExpired), 4022));
        assert_eq!(
            after_close(ending(Some(&asked), &join, None)),
            AfterClose::Lobby("This server needs a password: type it below, then play".into())
        );
        assert_eq!(
            after_close(ending(Some(&wrong), &join, None)),
            AfterClose::Lobby("Wrong password: try again".into())
        );
        let expired = DisconnectReason::TokenExpired;
        let why = expired.to_string();
        assert_eq!(
            after_close(Ending { why: &why, ..ending(Some(&expired), &join, None) }),
            AfterClose::Lobby("Could not join: join token expired; get a new one".into())
        );
        assert_eq!(token_in_fragment("#join=aaa.bbb.ccc"), Some("aaa.bbb.ccc".into()));
        assert_eq!(token_in_fragment("#x=1&join=a-b_c.d"), Some("a-b_c.d".into()));
        assert_eq!(token_in_fragment("#join=<script>"), None);
        assert_eq!(token_in_fragment(""), None);
        let auth = Some(JoinAuth::Password("pw".into()));
        let ClientMsg::Hello { auth: sent, guest, .. } =
            hello("ann", &join, 1, |_| Credentials::default(), (auth.clone(), Some([9; 16])))
        else {
            panic!("a hello")
        };
        assert_eq!((sent, guest), (auth, Some([9; 16])), "the guest identity goes with every hello");
        let secret = [0xab; 16];
        assert_eq!(parse_guest_secret(&guest_secret_hex(&secret)), Some(secret));
        assert_eq!(parse_guest_secret("xyz"), None);
        assert_eq!(parse_guest_secret(&"g".repeat(32)), None);
    }

    #[test]
    fn client_ids_are_64_random_bits_and_never_zero() {
        assert_eq!(client_id_from_random(0.0, 0.0), 1);
        assert_eq!(client_id_from_random(0.5, 0.25), (1u64 << 63) | (1 << 30));
        assert_eq!(client_id_from_random(0.999_999_999_9, 0.999_999_999_9), u64::MAX);
        assert_eq!(client_id_from_random(f64::NAN, 1.5) & 0xffff_ffff, u64::from(u32::MAX));
        assert_eq!(parse_client_id(" 42 "), Some(42));
        assert_eq!(parse_client_id("0"), None);
        assert_eq!(parse_client_id("-1"), None);
        assert_eq!(parse_client_id("x"), None);
    }

    #[test]
    fn credentials_go_only_to_their_own_room() {
        let room = code("ABCD");
        let held = Credentials { resume: Some(7), host_key: Some([3; 16]) };
        let lookup = |asked: RoomCode| {
            assert_eq!(asked, room);
            held
        };
        let ClientMsg::Hello { resume, host_key, room: request, client_id, protocol, name, .. } =
            hello("ann", &JoinTarget::Join(room), 99, lookup, (None, None))
        else {
            panic!("not a hello");
        };
        assert_eq!((resume, host_key, client_id, protocol), (Some(7), Some([3; 16]), 99, PROTOCOL_VERSION));
        assert_eq!((request, name.as_str()), (RoomRequest::Join { code: "ABCD".into() }, "ann"));
        let unasked = |_| panic!("credentials must not be looked up");
        for target in [JoinTarget::QuickPlay, JoinTarget::Watch(room), JoinTarget::Create(RoomSettings::default())] {
            let ClientMsg::Hello { resume, host_key, room, .. } = hello("ann", &target, 1, unasked, (None, None))
            else {
                panic!("not a hello");
            };
            assert_eq!((resume, host_key, room), (None, None, target.request()));
        }
    }

    #[test]
    fn room_endings_are_permanent_and_told_in_words() {
        let join = JoinTarget::Join(code("ABCD"));
        let locked = DisconnectReason::RoomLocked;
        let closed = Ending { why: "the room is locked", ..ending(Some(&locked), &join, None) };
        assert_eq!(after_close(closed), AfterClose::Lobby("Could not join: the room is locked".into()));
        let kicked = DisconnectReason::Kicked;
        let in_room = Some(RoomState { permanent: false });
        assert_eq!(
            after_close(ending(Some(&kicked), &join, in_room)),
            AfterClose::Lobby("You were kicked by the host".into())
        );
        let create = JoinTarget::Create(RoomSettings::default());
        let busy = DisconnectReason::CreateRateLimited;
        let why = busy.to_string();
        let refused = Ending { why: &why, ..ending(Some(&busy), &create, None) };
        assert_eq!(
            after_close(refused),
            AfterClose::Lobby("Could not create a room: creating rooms too fast; try again in a few seconds".into())
        );
        let gone = DisconnectReason::RoomClosed;
        let ended = Ending { why: "the room has closed", ..ending(Some(&gone), &join, in_room) };
        assert_eq!(after_close(ended), AfterClose::Lobby("Disconnected: the room has closed".into()));
        // Without the Disconnect message, the Close frame's code decides.
        let by_code = Ending { code: 4008, ..ending(None, &join, in_room) };
        assert_eq!(after_close(by_code), AfterClose::Lobby("You were kicked by the host".into()));
        let full = Ending { code: 4012, why: "the room is full (8 players)", ..ending(None, &join, None) };
        assert_eq!(after_close(full), AfterClose::Lobby("Could not join: the room is full (8 players)".into()));
    }

    #[test]
    fn passing_troubles_are_retried() {
        let join = JoinTarget::Join(code("ABCD"));
        let in_room = Some(RoomState { permanent: false });
        for reason in [
            DisconnectReason::ServerClosing,
            DisconnectReason::ConnectionLost,
            DisconnectReason::TooSlow,
            DisconnectReason::ServerFull { max: 8 },
            DisconnectReason::RateLimited,
        ] {
            assert_eq!(after_close(ending(Some(&reason), &join, in_room)), AfterClose::Retry, "{reason:?}");
        }
        assert_eq!(after_close(ending(None, &join, in_room)), AfterClose::Retry, "a dropped connection");
    }

    #[test]
    fn a_vanished_permanent_room_means_a_restarted_server() {
        let join = JoinTarget::Join(code("ABCD"));
        let gone = DisconnectReason::NoSuchRoom;
        let main = Some(RoomState { permanent: true });
        assert_eq!(after_close(ending(Some(&gone), &join, main)), AfterClose::QuickPlay);
        let other = Some(RoomState { permanent: false });
        let why = gone.to_string();
        let ended = Ending { why: &why, ..ending(Some(&gone), &join, other) };
        assert_eq!(after_close(ended), AfterClose::Lobby("Disconnected: no room has that code".into()));
        let never_in = Ending { why: &why, ..ending(Some(&gone), &join, None) };
        assert_eq!(after_close(never_in), AfterClose::Lobby("Could not join: no room has that code".into()));
    }

    #[test]
    fn the_create_form_leaves_blanks_to_the_server() {
        let settings = settings_from_form("  Fun\u{202e} room ", false, "arena", " 40 ", ("12", "120"));
        assert_eq!(
            settings,
            RoomSettings {
                name: Some("Fun room".into()),
                public: Some(false),
                map: Some("arena".into()),
                bots: Some(MAX_ROOM_BOTS),
                max_players: Some(12),
                rounds: Some(RoundRules { seconds: 120, score_limit: None }),
            }
        );
        let blank = settings_from_form(" ", true, "", "", ("0", ""));
        assert_eq!(blank, RoomSettings { public: Some(true), ..RoomSettings::default() });
        let odd = settings_from_form("", true, "", "-3", ("x", "2"));
        assert_eq!((odd.bots, odd.rounds), (None, None), "a 2-second round is out of range: the default");
        assert_eq!(round_rules_from("0"), Some(RoundRules::ENDLESS));
    }

    #[test]
    fn the_round_clock_and_the_end_screen_read_right() {
        assert_eq!(round_clock_text(Some(600), 0.0, 60).as_deref(), Some("0:10 left"));
        assert_eq!(round_clock_text(Some(18_000), 59.5, 60).as_deref(), Some("5:00 left"));
        assert_eq!(round_clock_text(Some(60), 600.0, 60).as_deref(), Some("0:00 left"), "never negative");
        assert_eq!(round_clock_text(None, 0.0, 60), None);
        let line = |place, id, name: &str, bot, left| shared::protocol::Placement {
            place,
            id: NetId(id),
            name: name.into(),
            bot,
            left,
            score: 12,
            kills: 3,
            deaths: 1,
            orbs: 2,
            shots: 8,
            hits: 2,
            player: None,
        };
        let over = RoundOver {
            round: 3,
            round_id: "0".repeat(32),
            why: RoundEnd::ScoreLimit { by: NetId(5) },
            placements: vec![
                line(1, 5, "<b>ann</b>", false, false),
                line(2, 6, "bot", true, false),
                line(3, 7, "cy", false, true),
            ],
            next_round_in_ms: 10_000,
        };
        let (title, lines) = round_over_lines(&over, None, NetId(7));
        assert_eq!(title, "Round 3 over: <b>ann</b> reached the score limit");
        assert_eq!(lines[0], ("1. <b>ann</b> — 12 pts · 3/1 K/D · 2 orbs · 25% hits".to_string(), false));
        assert!(lines[1].0.contains("(bot)") && lines[2].0.contains("(left)") && lines[2].1, "{lines:?}");
        let rated = RoundRated {
            round_id: over.round_id.clone(),
            changes: vec![shared::protocol::RatingChange { id: NetId(5), before: 0.0, after: 1.46, rank: Some(2) }],
        };
        let (_, lines) = round_over_lines(&over, Some(&rated), NetId(7));
        assert!(lines[0].0.ends_with(" · rating 1.5 (+1.5) · #2"), "{lines:?}");
        assert!(!lines[1].0.contains("rating"), "bots have no rating: {lines:?}");
    }

    #[test]
    fn typed_codes_and_bots() {
        assert_eq!(typed_code(" abcd "), Ok(code("ABCD")));
        assert!(typed_code("").unwrap_err().contains("4 letters"));
        assert!(typed_code("AB0D").unwrap_err().contains("not a room code"));
        assert_eq!(typed_bots("5"), Some(5));
        assert_eq!(typed_bots("-2"), Some(0));
        assert_eq!(typed_bots("999"), Some(MAX_ROOM_BOTS));
        assert_eq!(typed_bots("many"), None);
    }

    #[test]
    fn lobby_lists_parse_and_read_well() {
        let rooms = parse_rooms(
            r#"[{"code":"ABCD","name":"<b>x</b>","map":"arena","players":3,"max_players":8,"bots":1,
                 "spectators":2,"locked":true,"public":true,"created_unix_ms":5}]"#,
        )
        .expect("a room list");
        assert_eq!(rooms[0].code, code("ABCD"));
        let maps = parse_maps(r#"[{"id":"arena","name":"The Arena"}]"#).expect("a map list");
        assert_eq!(room_details(&rooms[0], &maps), "The Arena · 3/8 players · 1 bot · 2 watching");
        assert_eq!(room_details(&rooms[0], &[]), "arena · 3/8 players · 1 bot · 2 watching");
        assert_eq!(parse_rooms("<!doctype html>"), None);
        assert_eq!(parse_room(r#"{"code":"AB0D"}"#), None);
    }

    #[test]
    fn storage_keys_name_the_room() {
        assert_eq!(resume_key(code("abcd")), "arena.resume.ABCD");
        assert_eq!(host_key_key(code("WXYZ")), "arena.hostkey.WXYZ");
    }

    #[test]
    fn lan_answers_parse_and_peer_links_stay_plain() {
        let body = r#"{"enabled":true,"urls":["http://192.168.1.20:8080/"],"mdns_url":"http://arena.local:8080/",
            "best_url":"http://192.168.1.20:8080/","others":[{"name":"<b>x</b>","url":"http://192.168.1.30:8080/",
            "rooms":2,"players":1,"protocol":PROTO}]}"#
            .replace("PROTO", &PROTOCOL_VERSION.to_string());
        let lan = parse_lan(&body).expect("parses");
        assert_eq!(lan.others[0].name, "<b>x</b>", "kept as text; the view sets textContent");
        assert_eq!(peer_details(&lan.others[0]), "2 rooms · 1 player");
        assert_eq!(invite_base(Some(&lan), "http://localhost:8080"), "http://192.168.1.20:8080/");
        assert_eq!(invite_base(None, "http://localhost:8080"), "http://localhost:8080");
        assert_eq!(safe_link("http://10.0.0.2:8080/"), Some("http://10.0.0.2:8080/"));
        for bad in ["javascript:alert(1)", "http://x/\"onmouseover=1", "http://a b/", "data:text/html,x"] {
            assert_eq!(safe_link(bad), None, "{bad}");
        }
        let old = LanPeer { protocol: PROTOCOL_VERSION - 1, ..lan.others[0].clone() };
        assert!(peer_details(&old).contains("another version"));
        assert_eq!(parse_lan("{}"), Some(LanInfo::default()));
    }
}
