//! Why a connection ended: [`DisconnectReason`], its WebSocket close code and the text a player
//! reads. One place for every close, shared by the server and the client.

use serde::{Deserialize, Serialize};

/// Why a connection ended. Sent as [`ServerMsg::Disconnect`] and repeated as the WebSocket Close
/// frame's code ([`DisconnectReason::close_code`]) and reason text (its `Display`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DisconnectReason {
    /// The client closed the connection.
    ClientLeft,
    /// The server is shutting down.
    ServerClosing,
    /// Quick play found no room with space (`max` players each) and could not open another.
    ServerFull { max: u16 },
    /// The client speaks another protocol version.
    ProtocolMismatch { server: u16, client: u16 },
    /// No valid hello arrived in time.
    HandshakeTimeout,
    /// A message could not be decoded.
    Malformed,
    /// A text frame arrived; the protocol is binary only.
    TextFrame,
    /// A frame or message exceeded the size limit.
    TooLarge { limit: u32 },
    /// An input had out-of-range or non-finite values.
    InvalidInput,
    /// The client sent far more messages than any real client would.
    RateLimited,
    /// The client could not keep up with snapshots for too long.
    TooSlow,
    /// Removed by the host (also when coming back to a room one was kicked from).
    Kicked,
    /// The connection dropped without a Close frame.
    ConnectionLost,
    /// No live room has that code (or it is not a code at all).
    NoSuchRoom,
    /// The room closed (idle, or it failed) before or while joining.
    RoomClosed,
    /// The host locked the room.
    RoomLocked,
    /// The room has `max` players already (the server may have space in other rooms).
    RoomFull { max: u16 },
    /// A host command from a non-host, or an input from a spectator.
    NotAllowed,
    /// The server hosts `max` rooms already.
    TooManyRooms { max: u16 },
    /// This address created rooms too fast; try again in a few seconds.
    CreateRateLimited,
    /// The server's operator removed this player or closed the room; `message` says why.
    ByOperator { message: String },
    /// The server's operator banned this address.
    Banned,
    /// The server has a password and the hello carried none.
    PasswordRequired,
    /// The hello's password is not the server's.
    WrongPassword,
    /// The server admits only players with a join token and the hello carried none.
    TokenRequired,
    /// The join token is not valid: bad signature, malformed, not yet valid, or for another room.
    TokenInvalid { why: String },
    /// The join token has expired.
    TokenExpired,
    /// This address joined (or failed to authenticate) too often; try again in a few seconds.
    JoinRateLimited,
    /// Nothing arrived for `seconds` (not even the answer to the server's pings): the connection
    /// is presumed dead (half-open TCP).
    IdleTimeout { seconds: u32 },
    /// The hello's resume token cannot take a seat: not one of this room's tokens (forged, from
    /// another room or from before a restart), or its seat is still in play on a live connection.
    /// A client drops the token and joins afresh.
    ResumeRefused { why: String },
    /// Another connection resumed this player's seat (the same player on a newer connection).
    Replaced,
    /// The resume token's seat is in play on a connection that was heard from within the last
    /// `after_ms`: the client keeps its token and tries again after that long (a connection the
    /// server has not seen drop yet is taken over once it has been silent that long).
    SeatInUse { after_ms: u32 },
}

impl DisconnectReason {
    /// WebSocket close code for this reason. 1000/1001/1003/1009 are the standard codes; 4xxx are
    /// Arena's own (the range RFC 6455 leaves to applications).
    pub fn close_code(&self) -> u16 {
        match self {
            DisconnectReason::ClientLeft => 1000,
            DisconnectReason::ServerClosing => 1001,
            DisconnectReason::TextFrame => 1003,
            DisconnectReason::TooLarge { .. } => 1009,
            DisconnectReason::ConnectionLost => 1006,
            DisconnectReason::ProtocolMismatch { .. } => 4001,
            DisconnectReason::ServerFull { .. } => 4002,
            DisconnectReason::HandshakeTimeout => 4003,
            DisconnectReason::Malformed => 4004,
            DisconnectReason::InvalidInput => 4005,
            DisconnectReason::RateLimited => 4006,
            DisconnectReason::TooSlow => 4007,
            DisconnectReason::Kicked => 4008,
            DisconnectReason::NoSuchRoom => 4009,
            DisconnectReason::RoomClosed => 4010,
            DisconnectReason::RoomLocked => 4011,
            DisconnectReason::RoomFull { .. } => 4012,
            DisconnectReason::NotAllowed => 4013,
            DisconnectReason::TooManyRooms { .. } => 4014,
            DisconnectReason::CreateRateLimited => 4015,
            DisconnectReason::ByOperator { .. } => 4016,
            DisconnectReason::Banned => 4017,
            DisconnectReason::PasswordRequired => 4018,
            DisconnectReason::WrongPassword => 4019,
            DisconnectReason::TokenRequired => 4020,
            DisconnectReason::TokenInvalid { .. } => 4021,
            DisconnectReason::TokenExpired => 4022,
            DisconnectReason::JoinRateLimited => 4023,
            DisconnectReason::IdleTimeout { .. } => 4024,
            DisconnectReason::ResumeRefused { .. } => 4025,
            DisconnectReason::Replaced => 4026,
            DisconnectReason::SeatInUse { .. } => 4027,
        }
    }

    /// True for endings that are part of normal play (not worth a warning in logs).
    pub fn is_expected(&self) -> bool {
        matches!(
            self,
            DisconnectReason::ClientLeft | DisconnectReason::ServerClosing | DisconnectReason::ConnectionLost
        )
    }
}

impl std::fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DisconnectReason::ClientLeft => write!(f, "left the game"),
            DisconnectReason::ServerClosing => write!(f, "server is shutting down"),
            DisconnectReason::ServerFull { max } => write!(f, "server is full (every room has {max} players)"),
            DisconnectReason::ProtocolMismatch { server, client } => {
                write!(f, "version mismatch: server speaks protocol {server}, client {client}; reload the page")
            }
            DisconnectReason::HandshakeTimeout => write!(f, "no hello received in time"),
            DisconnectReason::Malformed => write!(f, "malformed message"),
            DisconnectReason::TextFrame => write!(f, "text frames are not accepted"),
            DisconnectReason::TooLarge { limit } => write!(f, "message larger than {limit} bytes"),
            DisconnectReason::InvalidInput => write!(f, "invalid input values"),
            DisconnectReason::RateLimited => write!(f, "too many messages"),
            DisconnectReason::TooSlow => write!(f, "connection too slow to keep up"),
            DisconnectReason::Kicked => write!(f, "kicked by the host"),
            DisconnectReason::ConnectionLost => write!(f, "connection lost"),
            DisconnectReason::NoSuchRoom => write!(f, "no room has that code"),
            DisconnectReason::RoomClosed => write!(f, "the room has closed"),
            DisconnectReason::RoomLocked => write!(f, "the room is locked"),
            DisconnectReason::RoomFull { max } => write!(f, "the room is full ({max} players)"),
            DisconnectReason::NotAllowed => {
                write!(f, "not allowed: only the host can do that, and spectators cannot play")
            }
            DisconnectReason::TooManyRooms { max } => write!(f, "the server has too many rooms ({max})"),
            DisconnectReason::CreateRateLimited => write!(f, "creating rooms too fast; try again in a few seconds"),
            DisconnectReason::ByOperator { message } => write!(f, "removed by the server's operator: {message}"),
            DisconnectReason::Banned => write!(f, "this address is banned from the server"),
            DisconnectReason::PasswordRequired => write!(f, "this server needs a password"),
            DisconnectReason::WrongPassword => write!(f, "wrong password"),
            DisconnectReason::TokenRequired => write!(f, "this server admits players with a join token only"),
            DisconnectReason::TokenInvalid { why } => write!(f, "join token refused: {why}"),
            DisconnectReason::TokenExpired => write!(f, "join token expired; get a new one"),
            DisconnectReason::JoinRateLimited => {
                write!(f, "joining too often from your address; try again in a few seconds")
            }
            DisconnectReason::IdleTimeout { seconds } => write!(f, "nothing received for {seconds} s"),
            DisconnectReason::ResumeRefused { why } => write!(f, "cannot resume: {why}"),
            DisconnectReason::Replaced => write!(f, "this player continues on a newer connection"),
            DisconnectReason::SeatInUse { after_ms } => {
                write!(f, "this player is still connected; trying again in {:.1} s", f64::from(*after_ms) / 1000.0)
            }
        }
    }
}
