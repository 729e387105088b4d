//! The wire protocol: every WebSocket binary message is one bincode-encoded [`ClientMsg`] or
//! [`ServerMsg`]. Text frames are refused. Close codes and reasons are [`DisconnectReason`]
//! (`close.rs`); peer text is cleaned by `text.rs`. Both are re-exported here.
//!
//! Any change to these types, to the snapshot bit format or to the rules a client predicts with
//! must bump [`PROTOCOL_VERSION`].

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use crate::close::DisconnectReason;
use crate::map::MapDef;
use crate::room::{HostCmd, HostKey, RoomInfo, RoomRequest};
use crate::snapshot::NetId;
pub use crate::text::{MAX_CHAT_BYTES, MAX_NAME_BYTES, sanitize_chat, sanitize_name};
use crate::tick::Tick;

/// Version of the wire format. The client sends it in [`ClientMsg::Hello`]; a mismatch closes the
/// connection with [`DisconnectReason::ProtocolMismatch`].
pub const PROTOCOL_VERSION: u16 = 10;
/// Bytes of a guest identity's secret.
pub const GUEST_SECRET_BYTES: usize = 16;

/// Largest client message the server decodes (bincode's decode limit and the WebSocket frame
/// limit). A chat line of [`MAX_CHAT_BYTES`] plus framing fits comfortably, and so does a hello
/// carrying a join token of [`MAX_JOIN_TOKEN_BYTES`].
pub const MAX_CLIENT_MSG_BYTES: usize = 2048;
/// Longest join token (a JWT) a hello may carry; RS256 with 4096-bit keys fits.
pub const MAX_JOIN_TOKEN_BYTES: usize = 1536;
/// Longest server password a hello may carry.
pub const MAX_PASSWORD_BYTES: usize = 128;
/// Largest server message a client decodes (a full snapshot of a crowded view fits).
pub const MAX_SERVER_MSG_BYTES: usize = 1 << 20;

/// Messages from a client to the server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ClientMsg {
    /// First message on every connection.
    Hello {
        protocol: u16,
        /// Display name; sanitized by the server (see [`sanitize_name`]).
        name: String,
        /// Token from an earlier [`Welcome`]: rejoining the same room within the grace period
        /// restores the player's score, kills and deaths.
        resume: Option<u64>,
        /// Which room: quick play, a code, a new room, or watching one.
        room: RoomRequest,
        /// The room's host key, if this browser holds it (makes the connection the host).
        host_key: Option<HostKey>,
        /// A random id this browser keeps; a player kicked by the host cannot come back with it.
        client_id: u64,
        /// The server's password or a join token, when the server asks for one.
        auth: Option<JoinAuth>,
        /// This browser's guest identity: 128 random bits it keeps, so a reload or another day
        /// is the same player (rating, profile). The server stores only a hash of it; the
        /// public id shown anywhere is derived from that hash, never the secret.
        guest: Option<[u8; GUEST_SECRET_BYTES]>,
    },
    /// One tick's worth of controls. Clients send one per simulation tick.
    Input(InputCmd),
    /// Acknowledges the newest snapshot applied, when the client has no input to send.
    Ack { tick: Tick },
    /// Clock sync and round-trip measurement; answered with [`ServerMsg::Pong`].
    Ping { client_time: f64 },
    /// A chat line (sanitized and rate-limited by the server).
    Chat { text: String },
    /// Spectators of a replay: pause or resume, set the speed (0.25–8), optionally jump to a
    /// tick. Ignored by live rooms.
    ReplayControl { paused: bool, speed: f32, seek: Option<Tick> },
    /// A host command; from anyone but the room's host it closes the connection with
    /// [`DisconnectReason::NotAllowed`].
    Host(HostCmd),
}

/// What a hello shows to be let in, on a server that does not admit everyone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JoinAuth {
    /// The server's password (`--password`), as the player typed it.
    Password(String),
    /// A signed join token (a JWT) from the host's own backend or lobby.
    Token(String),
}

/// Slowest and fastest replay playback speeds.
pub const REPLAY_SPEEDS: std::ops::RangeInclusive<f32> = 0.25..=8.0;

/// Where a replay being watched is.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReplayStatus {
    pub tick: Tick,
    /// The last tick of the recording.
    pub total_ticks: u32,
    pub paused: bool,
    pub speed: f32,
    /// Bumped on every seek: snapshots of a new epoch start from scratch (their ticks may go
    /// backwards), so the client resets its snapshot history.
    pub epoch: u32,
}

/// Controls for one tick, tagged with the client's sequence number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InputCmd {
    /// Increases by one per input; the server acks the last one it applied in each snapshot.
    pub seq: u32,
    /// The newest snapshot tick the client has applied (its delta baseline).
    pub ack: Tick,
    /// Movement stick, each component in [-1, 1]; the length is clamped to 1.
    pub move_x: f32,
    pub move_y: f32,
    /// Aim angle in radians, any finite value.
    pub aim: f32,
    pub fire: bool,
    /// The moment the client drew the other players when it sampled these controls (lag
    /// compensation: a shot is tested against targets as they were then). `None` claims nothing:
    /// the shot is tested against the present, as for server-side bots.
    pub view: Option<ViewTime>,
}

/// A moment of the server's timeline as the client drew it: a snapshot tick plus a fraction of
/// the next tick (1/256 steps), so the rewind is sub-tick.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewTime {
    pub tick: Tick,
    pub frac: u8,
}

impl ViewTime {
    /// The moment `render_tick` (a fractional server tick, as the client's playout clock gives
    /// it), rounded down to 1/256 of a tick; `None` before tick 0.
    pub fn from_render_tick(render_tick: f64) -> Option<ViewTime> {
        if !render_tick.is_finite() || render_tick < 0.0 {
            return None;
        }
        let whole = render_tick.floor();
        let frac = ((render_tick - whole) * 256.0).floor().clamp(0.0, 255.0) as u8;
        Some(ViewTime { tick: Tick(whole as u64 as u32), frac })
    }

    /// How many ticks (fractional) `self` lies before `now`; negative when it claims the future.
    pub fn ticks_before(self, now: Tick) -> f32 {
        let whole = now.0.wrapping_sub(self.tick.0) as i32;
        whole as f32 - f32::from(self.frac) / 256.0
    }
}

/// Why an input was refused. Refused inputs close the connection with
/// [`DisconnectReason::InvalidInput`].
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum InputError {
    #[error("movement is not a finite number")]
    NonFiniteMove,
    #[error("movement component outside [-1, 1]")]
    MoveOutOfRange,
    #[error("aim is not a finite number")]
    NonFiniteAim,
}

/// Steps of the movement stick per unit: `move_x` and `move_y` are multiples of 1/127.
pub const MOVE_STEPS: f32 = 127.0;
/// Steps of the aim per turn: the aim is a multiple of 2π/65,536 in [0, 2π).
pub const AIM_STEPS: u32 = 1 << 16;

/// The step of a stick component (any float; non-finite ones read as 0), in -127..=127.
pub fn move_step(value: f32) -> i32 {
    (value * MOVE_STEPS).round().clamp(-MOVE_STEPS, MOVE_STEPS) as i32
}

/// The stick component of a step.
pub fn move_of_step(step: i32) -> f32 {
    step as f32 / MOVE_STEPS
}

/// The step of an aim angle (any float; non-finite ones read as 0), in 0..65,536.
pub fn aim_step(angle: f32) -> u32 {
    let turn = angle.rem_euclid(std::f32::consts::TAU) * (AIM_STEPS as f32 / std::f32::consts::TAU);
    (turn.round() as u32) % AIM_STEPS
}

/// The aim angle of a step.
pub fn aim_of_step(step: u32) -> f32 {
    (step % AIM_STEPS) as f32 * (std::f32::consts::TAU / AIM_STEPS as f32)
}

impl InputCmd {
    /// The controls as the simulation takes them: the stick in steps of 1/127 and the aim in
    /// steps of 1/65,536 of a turn. The server quantizes every input it receives and the client
    /// every input it predicts, so both step the same values. Quantizing twice changes nothing.
    /// Finer controls would not be felt (a 65,536th of a turn is 0.1 units at 1,000 units) and
    /// would cost replays bytes: a quantized input packs into two or three (`replay` format 6).
    #[must_use]
    pub fn quantized(self) -> InputCmd {
        InputCmd {
            move_x: move_of_step(move_step(self.move_x)),
            move_y: move_of_step(move_step(self.move_y)),
            aim: aim_of_step(aim_step(self.aim)),
            ..self
        }
    }

    /// Checks the ranges a well-behaved client never leaves.
    pub fn validate(&self) -> Result<(), InputError> {
        if !self.move_x.is_finite() || !self.move_y.is_finite() {
            return Err(InputError::NonFiniteMove);
        }
        if self.move_x.abs() > 1.0 || self.move_y.abs() > 1.0 {
            return Err(InputError::MoveOutOfRange);
        }
        if !self.aim.is_finite() {
            return Err(InputError::NonFiniteAim);
        }
        Ok(())
    }
}

/// Messages from the server to a client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ServerMsg {
    /// Reply to an accepted [`ClientMsg::Hello`].
    Welcome(Box<Welcome>),
    /// World state at `tick`, events since the last snapshot sent, and the leaderboard when it
    /// changed.
    Snapshot(Box<SnapshotMsg>),
    /// Reply to [`ClientMsg::Ping`].
    Pong { client_time: f64, server_tick: Tick },
    /// Sent just before the server closes the connection; the Close frame repeats the reason.
    Disconnect(DisconnectReason),
    /// Replay playback changed (pause, speed, seek); sent to spectators before the snapshots it
    /// concerns.
    ReplayStatus(ReplayStatus),
    /// The room changed (host, lock, visibility, bots, map): its new description, as this
    /// client may see it. A new match (restart, map change) arrives as a new [`Welcome`].
    Room(Box<RoomInfo>),
    /// The round is over: play is frozen, these are its results, and the next round (a new
    /// [`Welcome`]) starts after the intermission. Sent to players and spectators alike, and to
    /// whoever joins during the intermission.
    RoundOver(Box<RoundOver>),
    /// The round's rating changes, once storage has committed them (a moment after the
    /// results; never on a server that keeps no results, or for a round that did not count).
    RoundRated(Box<RoundRated>),
}

/// A stored round's rating changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoundRated {
    pub round_id: String,
    pub changes: Vec<RatingChange>,
}

/// One player's rating change: the conservative rating (`μ − 3σ`) before and after, and the
/// player's place on the rating board after it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RatingChange {
    /// The player's entity in that round.
    pub id: NetId,
    pub before: f32,
    pub after: f32,
    pub rank: Option<u32>,
}

/// Why a round ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RoundEnd {
    /// Its time limit.
    TimeUp,
    /// A player reached the score limit.
    ScoreLimit { by: NetId },
}

/// A finished round's results.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoundOver {
    /// The round's number in the room (1 is the first).
    pub round: u32,
    /// Unique across servers and restarts (128 random bits, hex): `/api/rounds/ID`.
    pub round_id: String,
    pub why: RoundEnd,
    /// Best first. Players who left the running round come last, in the order they left
    /// (the last to leave ahead).
    pub placements: Vec<Placement>,
    /// Until the next round starts.
    pub next_round_in_ms: u32,
}

/// One player's line in a round's results.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// 1-based; players with the same score, kills and deaths share a place.
    pub place: u16,
    pub id: NetId,
    pub name: String,
    pub bot: bool,
    /// Left before the round ended (counted as its last place).
    pub left: bool,
    pub score: u16,
    pub kills: u16,
    pub deaths: u16,
    /// Orbs picked up.
    pub orbs: u16,
    /// Shots fired and shots that hit a player.
    pub shots: u32,
    pub hits: u32,
    /// The player's public id (`/api/players/ID`), when they have one (bots and anonymous
    /// clients do not).
    pub player: Option<String>,
}

impl Placement {
    /// Hits per shot, 0 without shots.
    pub fn accuracy(&self) -> f32 {
        if self.shots == 0 { 0.0 } else { self.hits as f32 / self.shots as f32 }
    }
}

/// Everything a client needs to start playing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    /// The entity id of this client's player.
    pub player_id: NetId,
    /// Keep this to resume the same player after a reconnect.
    pub resume_token: u64,
    pub tick_rate: u16,
    pub snapshot_rate: u16,
    pub server_tick: Tick,
    pub map_id: String,
    /// The full map, so a client needs nothing else to render and predict.
    pub map: MapDef,
    /// Names of every player in the room now; later changes arrive as [`GameEvent`]s.
    pub roster: Vec<RosterEntry>,
    pub max_players: u16,
    /// Present when watching a replay: the client is a spectator with no player of its own.
    pub replay: Option<ReplayStatus>,
    /// The room joined.
    pub room: RoomInfo,
    /// Watching a live room: no player of its own (`player_id` is 0), no inputs.
    pub spectator: bool,
    /// The server's per-snapshot byte budget for this client, if any (drawn in the net overlay).
    pub snapshot_budget_bytes: Option<u32>,
    /// This player's public id (`/api/players/ID`, the leaderboard page), when they have one.
    pub player: Option<String>,
    /// How long the server holds this seat after the connection drops (milliseconds; 0: not
    /// held). The page shows it counting down while it reconnects.
    pub seat_hold_ms: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterEntry {
    pub id: NetId,
    pub name: String,
    pub bot: bool,
}

/// One snapshot for one client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnapshotMsg {
    pub tick: Tick,
    /// The snapshot `delta` is relative to; `None` means `delta` is a full snapshot.
    pub baseline: Option<Tick>,
    /// Sequence number of the last input the server applied for this client.
    pub input_ack: u32,
    /// The fewest of this client's inputs waiting in the server's queue at the start of any
    /// tick since the previous snapshot (0: the server had none at least once and held the
    /// player still): the client paces its inputs to keep it at one or two.
    pub input_queue: u8,
    /// Exact state of the client's own player, for prediction and reconciliation.
    pub own: Option<OwnState>,
    /// Entities in view, encoded by [`crate::snapshot::encode_delta`].
    #[serde(with = "serde_bytes")]
    pub delta: Vec<u8>,
    /// Kills, joins, leaves and chat since the previous snapshot this client received.
    pub events: Vec<GameEvent>,
    /// Present when the leaderboard changed since the last one this client received.
    pub leaderboard: Option<Leaderboard>,
    /// The byte budget left some changed entities out of `delta`: those keep the baseline's
    /// state in it, and the client holds what it last drew for them instead of going back.
    pub budget_limited: bool,
}

/// A borrowed twin of [`SnapshotMsg`] for the server's hot path: it encodes (with
/// [`encode_snapshot_into`]) to exactly the bytes of `ServerMsg::Snapshot(SnapshotMsg { .. })`
/// without copying the delta, the events or the leaderboard into an owned message first.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct SnapshotMsgRef<'a> {
    pub tick: Tick,
    pub baseline: Option<Tick>,
    pub input_ack: u32,
    pub input_queue: u8,
    pub own: Option<OwnState>,
    #[serde(with = "serde_bytes")]
    pub delta: &'a [u8],
    pub events: &'a [GameEvent],
    pub leaderboard: Option<&'a Leaderboard>,
    pub budget_limited: bool,
}

/// Mirrors [`ServerMsg`]'s variant order so the snapshot gets the same variant index.
#[derive(Serialize)]
enum ServerMsgRef<'a> {
    #[allow(dead_code)]
    Welcome,
    Snapshot(SnapshotMsgRef<'a>),
}

/// Encodes `ServerMsg::Snapshot` from borrowed parts into `out` (cleared first).
pub fn encode_snapshot_into(message: SnapshotMsgRef<'_>, out: &mut Vec<u8>) {
    encode_into(&ServerMsgRef::Snapshot(message), out);
}

/// Full-precision state of the receiving client's own player.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct OwnState {
    pub pos: glam::Vec2,
    pub vel: glam::Vec2,
    pub hp: u8,
    pub alive: bool,
    /// When dead, the tick at which the player respawns.
    pub respawn_tick: Option<Tick>,
    /// Ticks until the player may fire again.
    pub fire_cooldown: u16,
    pub score: u16,
    /// 1-based rank among all players by score.
    pub rank: u16,
}

/// Something that happened, shown in the kill feed, notices or chat.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum GameEvent {
    Kill {
        killer: NetId,
        victim: NetId,
    },
    Joined {
        id: NetId,
        name: String,
        bot: bool,
    },
    Left {
        id: NetId,
        reason: DisconnectReason,
    },
    Chat {
        from: NetId,
        text: String,
    },
    Respawned {
        id: NetId,
    },
    /// A room notice (host actions and the like), shown as text.
    Notice {
        text: String,
    },
}

/// Top players by score. Names come from the roster.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leaderboard {
    pub top: Vec<LeaderEntry>,
    /// Total players in the room.
    pub players: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderEntry {
    pub id: NetId,
    pub score: u16,
    pub kills: u16,
    pub deaths: u16,
}

/// Number of entries in [`Leaderboard::top`].
pub const LEADERBOARD_SIZE: usize = 10;

/// Why a message could not be decoded.
#[derive(Debug, Error)]
pub enum DecodeError {
    #[error("bincode: {0}")]
    Bincode(#[from] bincode::error::DecodeError),
    #[error("{0} trailing bytes after the message")]
    TrailingBytes(usize),
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encodes a message into `out` (cleared first), so callers can reuse the buffer.
pub fn encode_into<T: Serialize>(msg: &T, out: &mut Vec<u8>) {
    out.clear();
    bincode::serde::encode_into_std_write(msg, out, config()).expect("encoding into a Vec cannot fail");
}

/// Encodes a message into a fresh buffer.
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(msg, &mut out);
    out
}

/// Decodes a client message, refusing anything over [`MAX_CLIENT_MSG_BYTES`] or with trailing
/// bytes.
pub fn decode_client(bytes: &[u8]) -> Result<ClientMsg, DecodeError> {
    let cfg = config().with_limit::<MAX_CLIENT_MSG_BYTES>();
    let (msg, used) = bincode::serde::decode_from_slice(bytes, cfg)?;
    if used != bytes.len() {
        return Err(DecodeError::TrailingBytes(bytes.len() - used));
    }
    Ok(msg)
}

/// Decodes a server message, refusing anything over [`MAX_SERVER_MSG_BYTES`].
pub fn decode_server(bytes: &[u8]) -> Result<ServerMsg, DecodeError> {
    let cfg = config().with_limit::<MAX_SERVER_MSG_BYTES>();
    let (msg, used) = bincode::serde::decode_from_slice(bytes, cfg)?;
    if used != bytes.len() {
        return Err(DecodeError::TrailingBytes(bytes.len() - used));
    }
    Ok(msg)
}

/// Reads the protocol version from the start of an encoded [`ClientMsg::Hello`] without decoding
/// the rest, so a client of another version (whose hello may have a different layout) still gets
/// [`DisconnectReason::ProtocolMismatch`] rather than [`DisconnectReason::Malformed`].
pub fn peek_hello_version(bytes: &[u8]) -> Option<u16> {
    let cfg = config().with_limit::<16>();
    let ((variant, version), _): ((u32, u16), usize) = bincode::serde::decode_from_slice(bytes, cfg).ok()?;
    (variant == 0).then_some(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_round_trip() {
        let msgs = [
            ClientMsg::Hello {
                protocol: PROTOCOL_VERSION,
                name: "ana".into(),
                resume: Some(7),
                room: RoomRequest::Join { code: "ABCD".into() },
                host_key: Some([7; 16]),
                client_id: 99,
                auth: Some(JoinAuth::Token("a.b.c".into())),
                guest: None,
            },
            ClientMsg::Hello {
                protocol: PROTOCOL_VERSION,
                name: "bo".into(),
                resume: None,
                room: RoomRequest::Create(crate::room::RoomSettings {
                    name: Some("fun".into()),
                    public: Some(false),
                    map: Some("duel".into()),
                    bots: Some(3),
                    max_players: Some(8),
                    rounds: Some(crate::room::RoundRules { seconds: 60, score_limit: Some(30) }),
                }),
                host_key: None,
                client_id: 1,
                auth: Some(JoinAuth::Password("pw".into())),
                guest: None,
            },
            ClientMsg::Host(HostCmd::Kick { player: NetId(5) }),
            ClientMsg::Input(InputCmd {
                seq: 9,
                ack: Tick(4),
                move_x: 1.0,
                move_y: -0.5,
                aim: 2.0,
                fire: true,
                view: Some(ViewTime { tick: Tick(3), frac: 128 }),
            }),
            ClientMsg::Ack { tick: Tick(77) },
            ClientMsg::Ping { client_time: 12.5 },
            ClientMsg::Chat { text: "gg".into() },
            ClientMsg::ReplayControl { paused: true, speed: 2.0, seek: Some(Tick(600)) },
        ];
        for msg in msgs {
            assert_eq!(decode_client(&encode(&msg)).unwrap(), msg);
        }
    }

    #[test]
    fn hello_version_can_be_peeked() {
        let hello = ClientMsg::Hello {
            protocol: 999,
            name: "x".into(),
            resume: None,
            room: RoomRequest::QuickPlay,
            host_key: None,
            client_id: 0,
            auth: None,
            guest: None,
        };
        assert_eq!(peek_hello_version(&encode(&hello)), Some(999));
        assert_eq!(peek_hello_version(&encode(&ClientMsg::Ack { tick: Tick(1) })), None);
        assert_eq!(peek_hello_version(&[]), None);
    }

    #[test]
    fn borrowed_snapshots_encode_like_owned_ones() {
        let own = OwnState {
            pos: glam::Vec2::new(1.5, 2.0),
            vel: glam::Vec2::ZERO,
            hp: 90,
            alive: true,
            respawn_tick: None,
            fire_cooldown: 3,
            score: 7,
            rank: 2,
        };
        let events = vec![GameEvent::Chat { from: NetId(3), text: "hi".into() }, GameEvent::Respawned { id: NetId(4) }];
        let board = Leaderboard { top: vec![LeaderEntry { id: NetId(3), score: 7, kills: 1, deaths: 0 }], players: 2 };
        let delta = vec![1u8, 2, 3, 250];
        let owned = ServerMsg::Snapshot(Box::new(SnapshotMsg {
            tick: Tick(99),
            baseline: Some(Tick(97)),
            input_ack: 12,
            input_queue: 3,
            own: Some(own),
            delta: delta.clone(),
            events: events.clone(),
            leaderboard: Some(board.clone()),
            budget_limited: true,
        }));
        let mut borrowed = Vec::new();
        encode_snapshot_into(
            SnapshotMsgRef {
                tick: Tick(99),
                baseline: Some(Tick(97)),
                input_ack: 12,
                input_queue: 3,
                own: Some(own),
                delta: &delta,
                events: &events,
                leaderboard: Some(&board),
                budget_limited: true,
            },
            &mut borrowed,
        );
        assert_eq!(borrowed, encode(&owned));
        assert_eq!(decode_server(&borrowed).unwrap(), owned);
    }

    #[test]
    fn input_message_is_small() {
        let view = Some(ViewTime { tick: Tick(99_997), frac: 200 });
        let msg = ClientMsg::Input(InputCmd { seq: 100_000, ack: Tick(100_000), view, ..Default::default() });
        assert!(encode(&msg).len() <= 32, "{}", encode(&msg).len());
    }

    #[test]
    fn decode_rejects_garbage_trailing_bytes_and_huge_lengths() {
        assert!(decode_client(&[0xff, 0xff, 0xff]).is_err());
        let mut bytes = encode(&ClientMsg::Ack { tick: Tick(1) });
        bytes.push(0);
        assert!(matches!(decode_client(&bytes), Err(DecodeError::TrailingBytes(1))));
        // A chat message claiming a 4 GB string must fail on the limit, not allocate.
        let huge = [4u8, 0xfc, 0xff, 0xff, 0xff, 0xff];
        assert!(decode_client(&huge).is_err());
    }

    #[test]
    fn quantizing_is_idempotent_and_within_half_a_step() {
        for step in -127..=127 {
            assert_eq!(move_step(move_of_step(step)), step, "move step {step}");
        }
        for step in 0..AIM_STEPS {
            assert_eq!(aim_step(aim_of_step(step)), step, "aim step {step}");
        }
        // A fixed pseudo-random sequence (splitmix64) of values in [0, 1).
        let mut state = 7u64;
        let mut unit = move || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32
        };
        for _ in 0..100_000 {
            let cmd = InputCmd {
                move_x: unit() * 2.0 - 1.0,
                move_y: unit() * 2.0 - 1.0,
                aim: unit() * 2000.0 - 1000.0,
                ..Default::default()
            };
            let q = cmd.quantized();
            assert_eq!(q.quantized(), q, "{cmd:?}");
            assert_eq!(q.validate(), Ok(()), "{cmd:?} -> {q:?}");
            assert!((q.move_x - cmd.move_x).abs() <= 0.5 / MOVE_STEPS + 1e-6, "{cmd:?} -> {q:?}");
            assert!((q.move_y - cmd.move_y).abs() <= 0.5 / MOVE_STEPS + 1e-6, "{cmd:?} -> {q:?}");
            let off = (q.aim - cmd.aim).rem_euclid(std::f32::consts::TAU);
            let off = off.min(std::f32::consts::TAU - off);
            // Half a step, plus the f32 rounding of an angle near 1,000 radians.
            assert!(off <= std::f32::consts::PI / AIM_STEPS as f32 + 1e-4, "{cmd:?} -> {q:?}");
            assert!((0.0..std::f32::consts::TAU).contains(&q.aim), "{q:?}");
        }
        for hostile in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, f32::MAX, -0.0, 1e-30] {
            let q = InputCmd { move_x: hostile, move_y: hostile, aim: hostile, ..Default::default() }.quantized();
            assert_eq!(q.quantized(), q, "{hostile}");
            assert!(q.move_x.is_finite() && q.move_y.is_finite() && q.aim.is_finite(), "{hostile} -> {q:?}");
            assert_eq!(q.validate(), Ok(()), "{hostile} -> {q:?}");
        }
    }

    #[test]
    fn input_validation() {
        let ok = InputCmd { move_x: 1.0, move_y: -1.0, aim: 100.0, ..Default::default() };
        assert_eq!(ok.validate(), Ok(()));
        let nan = InputCmd { move_x: f32::NAN, ..ok };
        assert_eq!(nan.validate(), Err(InputError::NonFiniteMove));
        let big = InputCmd { move_y: 1.5, ..ok };
        assert_eq!(big.validate(), Err(InputError::MoveOutOfRange));
        let inf_aim = InputCmd { aim: f32::INFINITY, ..ok };
        assert_eq!(inf_aim.validate(), Err(InputError::NonFiniteAim));
    }

    #[test]
    fn sanitizers() {
        assert_eq!(sanitize_name("  \u{7}bob\n "), "bob");
        assert_eq!(sanitize_name(""), "player");
        assert_eq!(sanitize_name("ééééééééééééééééééé").len(), 16);
        assert_eq!(sanitize_chat("hi\u{202e}\nthere").as_deref(), Some("hithere"));
        assert_eq!(sanitize_chat(" \r\n "), None);
        assert!(sanitize_chat(&"x".repeat(500)).unwrap().len() == MAX_CHAT_BYTES);
    }

    #[test]
    fn close_codes_are_distinct() {
        let reasons = [
            DisconnectReason::ClientLeft,
            DisconnectReason::ServerClosing,
            DisconnectReason::ServerFull { max: 1 },
            DisconnectReason::ProtocolMismatch { server: 1, client: 2 },
            DisconnectReason::HandshakeTimeout,
            DisconnectReason::Malformed,
            DisconnectReason::TextFrame,
            DisconnectReason::TooLarge { limit: 1 },
            DisconnectReason::InvalidInput,
            DisconnectReason::RateLimited,
            DisconnectReason::TooSlow,
            DisconnectReason::Kicked,
            DisconnectReason::ConnectionLost,
            DisconnectReason::NoSuchRoom,
            DisconnectReason::RoomClosed,
            DisconnectReason::RoomLocked,
            DisconnectReason::RoomFull { max: 9 },
            DisconnectReason::NotAllowed,
            DisconnectReason::TooManyRooms { max: 64 },
            DisconnectReason::CreateRateLimited,
        ];
        let mut codes: Vec<u16> = reasons.iter().map(DisconnectReason::close_code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), reasons.len());
        for reason in &reasons {
            assert!(reason.to_string().len() <= 123, "close reasons must fit a Close frame");
        }
    }

    #[test]
    fn view_times_round_down_to_a_256th_of_a_tick() {
        assert_eq!(ViewTime::from_render_tick(100.5), Some(ViewTime { tick: Tick(100), frac: 128 }));
        assert_eq!(ViewTime::from_render_tick(7.999), Some(ViewTime { tick: Tick(7), frac: 255 }));
        assert_eq!(ViewTime::from_render_tick(-0.5), None);
        assert_eq!(ViewTime::from_render_tick(f64::NAN), None);
        let view = ViewTime { tick: Tick(100), frac: 64 };
        assert!((view.ticks_before(Tick(110)) - 9.75).abs() < 1e-6);
        assert!((view.ticks_before(Tick(100)) + 0.25).abs() < 1e-6, "the future is negative");
        // Across the wrap.
        let view = ViewTime { tick: Tick(u32::MAX), frac: 0 };
        assert!((view.ticks_before(Tick(4)) - 5.0).abs() < 1e-6);
    }
}
