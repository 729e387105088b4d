//! A connection's reading side without its I/O: rate limits, decoding and validation, one frame
//! at a time. The connection task (`net::connection`) and the room polling its sockets
//! (`net::polled`) both feed it.

use std::sync::atomic::Ordering;
use std::time::Duration;

use shared::protocol::{self, ClientMsg, DisconnectReason, MAX_CLIENT_MSG_BYTES};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tracing::debug;

use super::kick::{ConnId, Kick};
use super::ws::link_clock_us;
use crate::rate::TokenBucket;
use crate::room::input::SimInput;

/// Messages per second a connection may send on average (inputs at up to 60 Hz, acks, pings,
/// chat). A new connection may burst [`MESSAGE_BURST`]; time spent below the rate earns credit up
/// to [`MESSAGE_BACKLOG`] (30 s of it), so the backlog a Wi-Fi blip releases at once (everything
/// the browser queued while the network was gone) is paid for by the silence before it and is
/// not taken for a flood. A sustained rate above [`MESSAGE_RATE`] still empties the bucket and
/// closes the connection. Of a late backlog, the room keeps the newest inputs (its input queue
/// trims beyond two seconds, oldest first).
const MESSAGE_RATE: f64 = 90.0;

const MESSAGE_BURST: f64 = 180.0;

const MESSAGE_BACKLOG: f64 = MESSAGE_RATE * 30.0;

/// Chat lines per second, with a small burst. Excess lines are dropped, not fatal.
const CHAT_RATE: f64 = 1.0;

const CHAT_BURST: f64 = 5.0;

/// What one client frame asks of its connection.
pub(crate) enum Step {
    /// Hand this to the room.
    Room(SimInput),
    /// A ping to answer with the room's tick.
    Ping(f64),
    /// Nothing more to do (a pong, a dropped chat line).
    Skip,
    /// Close the connection for this reason.
    Close(DisconnectReason),
}

/// A connection's reading side without its I/O: rate limits, decoding and validation, one frame
/// at a time. The connection task ([`read_loop`]) and the room polling its sockets
/// (`net::polled`) both feed it.
pub(crate) struct Reader {
    messages: TokenBucket,
    chat: TokenBucket,
    /// When the last frame came (any frame proves the peer alive).
    pub last_frame: Instant,
}

impl Reader {
    pub fn new() -> Reader {
        Reader {
            messages: TokenBucket::with_initial(MESSAGE_RATE, MESSAGE_BACKLOG, MESSAGE_BURST),
            chat: TokenBucket::new(CHAT_RATE, CHAT_BURST),
            last_frame: Instant::now(),
        }
    }

    /// Handles one frame from the stream (`None`: the stream ended).
    /// `now`: the time it arrived (the room's poller reads the clock once per round).
    pub fn frame(&mut self, conn: ConnId, kick: &Kick, frame: Option<Result<Message, WsError>>, now: Instant) -> Step {
        self.last_frame = now;
        let bytes = match frame {
            Some(Ok(Message::Binary(bytes))) => bytes,
            Some(Ok(Message::Text(_))) => return Step::Close(DisconnectReason::TextFrame),
            // A goodbye: the player left (the leave button, a closed tab). Any other Close (a
            // client giving up on a stalled link, code 4000) or the stream's end without one is a
            // lost connection, whose seat is held for a resume.
            Some(Ok(Message::Close(frame))) if is_goodbye(frame.as_ref()) => {
                return Step::Close(DisconnectReason::ClientLeft);
            }
            Some(Ok(Message::Close(_))) | None => return Step::Close(DisconnectReason::ConnectionLost),
            Some(Ok(Message::Pong(payload))) => {
                // The answer to the server's ping: the link's round trip. Only the answer to the
                // ping in flight counts: an unsolicited pong cannot make up a round trip.
                let link = kick.link();
                if let Ok(sent) = <[u8; 8]>::try_from(payload.as_ref()).map(u64::from_le_bytes)
                    && sent != 0
                    && link.ping_sent_us.compare_exchange(sent, 0, Ordering::Relaxed, Ordering::Relaxed).is_ok()
                {
                    let rtt = link_clock_us().saturating_sub(sent);
                    link.rtt_us.store(rtt.min(u64::from(u32::MAX)) as u32, Ordering::Relaxed);
                }
                return if self.messages.try_take_at(now) {
                    Step::Skip
                } else {
                    Step::Close(DisconnectReason::RateLimited)
                };
            }
            // Pings (tungstenite answers them) count against the flood limit like messages.
            Some(Ok(_)) => {
                return if self.messages.try_take_at(now) {
                    Step::Skip
                } else {
                    Step::Close(DisconnectReason::RateLimited)
                };
            }
            Some(Err(error)) => return Step::Close(reason_for(&error)),
        };
        if !self.messages.try_take_at(now) {
            return Step::Close(DisconnectReason::RateLimited);
        }
        let message = match protocol::decode_client(&bytes) {
            Ok(message) => message,
            Err(error) => {
                debug!(conn = conn.0, %error, "undecodable message");
                return Step::Close(DisconnectReason::Malformed);
            }
        };
        Step::Room(match message {
            ClientMsg::Input(cmd) => {
                if let Err(error) = cmd.validate() {
                    debug!(conn = conn.0, %error, "invalid input");
                    return Step::Close(DisconnectReason::InvalidInput);
                }
                // The simulation and the replay take the controls quantized, as the client
                // predicted them (`InputCmd::quantized`).
                SimInput::Input { conn, cmd: cmd.quantized(), received: self.last_frame }
            }
            ClientMsg::Ack { tick } => SimInput::Ack { conn, tick },
            ClientMsg::Ping { client_time } => {
                if !client_time.is_finite() {
                    return Step::Close(DisconnectReason::InvalidInput);
                }
                return Step::Ping(client_time);
            }
            ClientMsg::Chat { text } => {
                if !self.chat.try_take_at(now) {
                    debug!(conn = conn.0, "chat rate limit: line dropped");
                    return Step::Skip;
                }
                match protocol::sanitize_chat(&text) {
                    Some(text) => SimInput::Chat { conn, text },
                    None => return Step::Skip,
                }
            }
            ClientMsg::ReplayControl { paused, speed, seek } => {
                if !protocol::REPLAY_SPEEDS.contains(&speed) {
                    return Step::Close(DisconnectReason::InvalidInput);
                }
                SimInput::ReplayControl { conn, paused, speed, seek }
            }
            ClientMsg::Host(cmd) => SimInput::Host { conn, cmd },
            ClientMsg::Hello { .. } => return Step::Close(DisconnectReason::Malformed),
        })
    }
}

/// The reason a connection silent for `idle` is closed with.
pub(crate) fn idle_timeout(idle: Duration) -> DisconnectReason {
    DisconnectReason::IdleTimeout { seconds: idle.as_secs().min(u64::from(u32::MAX)) as u32 }
}

/// Maps a WebSocket read error to the reason the connection ends.
pub(crate) fn reason_for(error: &WsError) -> DisconnectReason {
    match error {
        WsError::Capacity(_) => DisconnectReason::TooLarge { limit: MAX_CLIENT_MSG_BYTES as u32 },
        WsError::Protocol(_) | WsError::Utf8(_) => DisconnectReason::Malformed,
        _ => DisconnectReason::ConnectionLost,
    }
}

/// Whether a client's Close frame says the player is leaving: no code, 1000 (normal) or 1001
/// (going away: the tab closed or navigated).
fn is_goodbye(frame: Option<&CloseFrame>) -> bool {
    frame.is_none_or(|frame| matches!(frame.code, CloseCode::Normal | CloseCode::Away))
}
