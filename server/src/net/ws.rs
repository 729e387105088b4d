//! WebSocket pieces every connection path shares (the connection tasks and the polled sockets):
//! the limits, the goodbye (a `Disconnect` message and a Close frame with the same reason, then
//! the closing handshake's drain), and the link's pings (round trip and bytes per second).

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use shared::protocol::{self, DisconnectReason, MAX_CLIENT_MSG_BYTES, ServerMsg};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::kick::Kick;

/// How long the writer tries to deliver the goodbye before dropping the socket.
pub(crate) const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// How often the writer sends a WebSocket ping (the round trip shown to the operator) and
/// samples its bytes per second.
pub(crate) const LINK_SAMPLE_EVERY: Duration = Duration::from_secs(2);

/// The clock ping payloads count from (microseconds since the first use).
pub(crate) fn link_clock_us() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed().as_micros() as u64
}

/// WebSocket limits for player connections: no client message is anywhere near this size.
pub fn ws_config() -> WebSocketConfig {
    // tungstenite zero-fills its whole read buffer before every read: the default 128 KiB made
    // memset the server's top cost. Client messages are tiny, so a small buffer loses nothing.
    WebSocketConfig::default()
        .max_message_size(Some(MAX_CLIENT_MSG_BYTES))
        .max_frame_size(Some(MAX_CLIENT_MSG_BYTES))
        .read_buffer_size(4096)
        // Messages queued for a client are bounded: a room stops taking from a client's outbox
        // while its socket is backed up, so this is a safety net, not a queue.
        .max_write_buffer_size(MAX_WRITE_BUFFER)
}

/// At most this many bytes wait in tungstenite for one client's socket.
const MAX_WRITE_BUFFER: usize = 1 << 20;

/// The end of the closing handshake: after our Close frame, read (and drop) what the peer still
/// sends until its Close reply or the end of the stream, for at most [`CLOSE_TIMEOUT`]. Closing
/// the socket with the peer's inputs still unread would make the kernel answer with a reset,
/// and a browser that gets a reset may throw away our goodbye before reading it (it then shows
/// "connection lost" instead of the reason).
pub(crate) async fn drain_until_closed<T>(stream: &mut T)
where
    T: futures_util::Stream<Item = Result<Message, WsError>> + Unpin,
{
    let drain = async {
        while let Some(Ok(frame)) = stream.next().await {
            if matches!(frame, Message::Close(_)) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, drain).await;
}

/// Sends the goodbye (message plus Close frame) on a socket that was never split.
pub(crate) async fn close_with<S>(ws: &mut WebSocketStream<S>, reason: &DisconnectReason)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let goodbye = async {
        if reason_deserves_goodbye(reason) {
            let message = protocol::encode(&ServerMsg::Disconnect(reason.clone()));
            ws.send(Message::Binary(message.into())).await?;
            ws.close(Some(close_frame(reason))).await
        } else {
            ws.close(None).await
        }
    };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, goodbye).await;
}

pub(crate) fn reason_deserves_goodbye(reason: &DisconnectReason) -> bool {
    !matches!(reason, DisconnectReason::ClientLeft | DisconnectReason::ConnectionLost)
}

/// The Close frame for `reason`: its code, and its text cut to the 123 bytes a control frame
/// allows (RFC 6455 §5.5); the whole reason went before it in the `Disconnect` message.
pub(crate) fn close_frame(reason: &DisconnectReason) -> CloseFrame {
    const MAX_CLOSE_REASON_BYTES: usize = 123;
    let mut text = reason.to_string();
    if text.len() > MAX_CLOSE_REASON_BYTES {
        let mut end = MAX_CLOSE_REASON_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    CloseFrame { code: CloseCode::from(reason.close_code()), reason: text.into() }
}

/// Every [`LINK_SAMPLE_EVERY`]: takes the link's bytes per second and returns the next ping
/// (its payload is its send time, so the pong gives the round trip).
pub(crate) fn sample_link(kick: &Kick) -> Message {
    let link = kick.link();
    let bytes = link.window_bytes.swap(0, Ordering::Relaxed);
    let rate = bytes as f64 / LINK_SAMPLE_EVERY.as_secs_f64();
    link.bytes_per_second.store(rate.min(f64::from(u32::MAX)) as u32, Ordering::Relaxed);
    let now = link_clock_us().max(1);
    link.ping_sent_us.store(now, Ordering::Relaxed);
    Message::Ping(now.to_le_bytes().to_vec().into())
}
