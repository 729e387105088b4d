//! One task per WebSocket connection: handshake, then a reader and a writer that run until
//! either side ends the connection, then exactly one [`SimInput::Leave`].
//!
//! The reader decodes and validates every frame (size limits, binary only, bincode with a
//! limit, finite and in-range input, rate limits) and forwards it to the room; any violation
//! closes only this connection, with a reason. The writer forwards the outbox to the socket and,
//! once [`Kick`] fires, sends [`ServerMsg::Disconnect`] and a Close frame carrying the same
//! reason.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use shared::protocol::{self, ClientMsg, DisconnectReason, MAX_CLIENT_MSG_BYTES, PROTOCOL_VERSION, ServerMsg};
use shared::tick::Tick;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info};

use super::rate::TokenBucket;
use crate::config::ServerConfig;
use crate::sim::sim_loop::{ConnId, Kick, KickWaiter, OUTBOX_CAPACITY, Outbox, RoomStats, SimInput};

/// Messages per second a connection may send on average (inputs at up to 60 Hz, acks, pings,
/// chat), with a burst that absorbs a network stall of about two seconds being flushed at once.
const MESSAGE_RATE: f64 = 90.0;
const MESSAGE_BURST: f64 = 180.0;
/// Chat lines per second, with a small burst. Excess lines are dropped, not fatal.
const CHAT_RATE: f64 = 1.0;
const CHAT_BURST: f64 = 5.0;
/// How long the writer tries to deliver the goodbye before dropping the socket.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// What every connection task shares.
pub struct NetContext {
    pub config: Arc<ServerConfig>,
    pub to_sim: mpsc::Sender<SimInput>,
    pub stats: Arc<RoomStats>,
    /// Fires when the server starts shutting down (connections still in their handshake leave).
    pub shutdown: CancellationToken,
    /// Tracks connection tasks so shutdown can wait for their Close frames.
    pub tracker: TaskTracker,
    next_conn: AtomicU64,
    /// WebSocket connections open now (joined or still in their handshake).
    pub open_connections: std::sync::atomic::AtomicUsize,
}

/// Connections allowed beyond `max_players` (spectators, handshakes in flight, players being
/// refused with a reason). Past this, upgrades get HTTP 503 so a connection flood cannot
/// exhaust file descriptors.
pub const CONNECTION_HEADROOM: usize = 256;

/// Decrements the open-connection count when a connection task ends, however it ends.
pub struct ConnectionSlot<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for ConnectionSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl NetContext {
    /// Claims a connection slot; false when the server is at its connection limit.
    pub fn try_open(&self) -> bool {
        let limit = usize::from(self.config.max_players) + CONNECTION_HEADROOM;
        let previous = self.open_connections.fetch_add(1, Ordering::Relaxed);
        if previous >= limit {
            self.open_connections.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        true
    }
}

impl NetContext {
    pub fn new(
        config: Arc<ServerConfig>,
        to_sim: mpsc::Sender<SimInput>,
        stats: Arc<RoomStats>,
        shutdown: CancellationToken,
        tracker: TaskTracker,
    ) -> NetContext {
        NetContext {
            config,
            to_sim,
            stats,
            shutdown,
            tracker,
            next_conn: AtomicU64::new(1),
            open_connections: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

/// WebSocket limits for player connections: no client message is anywhere near this size.
pub fn ws_config() -> WebSocketConfig {
    // tungstenite zero-fills its whole read buffer before every read: the default 128 KiB made
    // memset the server's top cost. Client messages are tiny, so a small buffer loses nothing.
    WebSocketConfig::default()
        .max_message_size(Some(MAX_CLIENT_MSG_BYTES))
        .max_frame_size(Some(MAX_CLIENT_MSG_BYTES))
        .read_buffer_size(4096)
}

/// Runs one player connection to its end.
pub async fn serve<S>(mut ws: WebSocketStream<S>, peer: SocketAddr, ctx: Arc<NetContext>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // The slot was claimed by the upgrade handler (`NetContext::try_open`); give it back at the end.
    let _slot = ConnectionSlot(&ctx.open_connections);
    let conn = ConnId(ctx.next_conn.fetch_add(1, Ordering::Relaxed));
    let hello = tokio::select! {
        _ = ctx.shutdown.cancelled() => Err(DisconnectReason::ServerClosing),
        result = tokio::time::timeout(ctx.config.handshake_timeout, read_hello(&mut ws)) => {
            result.unwrap_or(Err(DisconnectReason::HandshakeTimeout))
        }
    };
    let (name, resume) = match hello {
        Ok(hello) => hello,
        Err(reason) => {
            info!(conn = conn.0, %peer, %reason, code = reason.close_code(), "refused in handshake");
            close_with(&mut ws, &reason).await;
            return;
        }
    };

    let (outbox, outbox_rx) = mpsc::channel(OUTBOX_CAPACITY);
    let kick = Kick::new();
    let (reply, reply_rx) = oneshot::channel();
    let join = SimInput::Join { conn, name, resume, outbox: outbox.clone(), kick: kick.clone(), reply };
    if ctx.to_sim.send(join).await.is_err() {
        close_with(&mut ws, &DisconnectReason::ServerClosing).await;
        return;
    }
    let welcome = match reply_rx.await {
        Ok(Ok(welcome)) => welcome,
        Ok(Err(reason)) => {
            info!(conn = conn.0, %peer, %reason, "join refused");
            close_with(&mut ws, &reason).await;
            return;
        }
        Err(_) => {
            close_with(&mut ws, &DisconnectReason::ServerClosing).await;
            return;
        }
    };
    let (mut sink, stream) = ws.split();
    if sink.send(Message::Binary(welcome.into())).await.is_err() {
        kick.kick(DisconnectReason::ConnectionLost);
    }
    // The writer runs as its own task so a wake-up for one direction never polls the other.
    let writer_kick = kick.clone();
    let writer = ctx.tracker.spawn(async move { write_loop(sink, outbox_rx, &writer_kick).await });
    read_loop(stream, conn, &ctx, &kick, &outbox).await;
    let _ = writer.await;
    let reason = kick.reason().unwrap_or(DisconnectReason::ConnectionLost);
    debug!(conn = conn.0, %peer, %reason, "connection closed");
    // The room may already be gone during shutdown; then there is nobody left to tell.
    let _ = ctx.to_sim.send(SimInput::Leave { conn, reason }).await;
}

/// Waits for the hello and checks its version.
async fn read_hello<S>(ws: &mut WebSocketStream<S>) -> Result<(String, Option<u64>), DisconnectReason>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let bytes = match ws.next().await {
            Some(Ok(Message::Binary(bytes))) => bytes,
            Some(Ok(Message::Text(_))) => return Err(DisconnectReason::TextFrame),
            Some(Ok(Message::Close(_))) | None => return Err(DisconnectReason::ClientLeft),
            Some(Ok(_)) => continue, // Ping/Pong: tungstenite answers pings itself.
            Some(Err(error)) => return Err(reason_for(&error)),
        };
        return match protocol::decode_client(&bytes) {
            Ok(ClientMsg::Hello { protocol, name, resume }) if protocol == PROTOCOL_VERSION => {
                Ok((protocol::sanitize_name(&name), resume))
            }
            Ok(ClientMsg::Hello { protocol, .. }) => {
                Err(DisconnectReason::ProtocolMismatch { server: PROTOCOL_VERSION, client: protocol })
            }
            _ => match protocol::peek_hello_version(&bytes) {
                Some(client) if client != PROTOCOL_VERSION => {
                    Err(DisconnectReason::ProtocolMismatch { server: PROTOCOL_VERSION, client })
                }
                _ => Err(DisconnectReason::Malformed),
            },
        };
    }
}

/// Maps a WebSocket read error to the reason the connection ends.
fn reason_for(error: &WsError) -> DisconnectReason {
    match error {
        WsError::Capacity(_) => DisconnectReason::TooLarge { limit: MAX_CLIENT_MSG_BYTES as u32 },
        WsError::Protocol(_) | WsError::Utf8(_) => DisconnectReason::Malformed,
        _ => DisconnectReason::ConnectionLost,
    }
}

/// Sends the goodbye (message plus Close frame) on a socket that was never split.
async fn close_with<S>(ws: &mut WebSocketStream<S>, reason: &DisconnectReason)
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

fn reason_deserves_goodbye(reason: &DisconnectReason) -> bool {
    !matches!(reason, DisconnectReason::ClientLeft | DisconnectReason::ConnectionLost)
}

fn close_frame(reason: &DisconnectReason) -> CloseFrame {
    CloseFrame { code: CloseCode::from(reason.close_code()), reason: reason.to_string().into() }
}

async fn read_loop<S>(
    mut stream: SplitStream<WebSocketStream<S>>,
    conn: ConnId,
    ctx: &NetContext,
    kick: &Kick,
    outbox: &Outbox,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut messages = TokenBucket::new(MESSAGE_RATE, MESSAGE_BURST);
    let mut chat = TokenBucket::new(CHAT_RATE, CHAT_BURST);
    let kicked = kick.signal(KickWaiter::Reader);
    tokio::pin!(kicked);
    loop {
        let frame = tokio::select! {
            biased;
            _ = &mut kicked => return,
            frame = stream.next() => frame,
        };
        let bytes = match frame {
            Some(Ok(Message::Binary(bytes))) => bytes,
            Some(Ok(Message::Text(_))) => return kick.kick(DisconnectReason::TextFrame),
            Some(Ok(Message::Close(_))) | None => return kick.kick(DisconnectReason::ClientLeft),
            Some(Ok(_)) => continue,
            Some(Err(error)) => return kick.kick(reason_for(&error)),
        };
        if !messages.try_take() {
            return kick.kick(DisconnectReason::RateLimited);
        }
        let message = match protocol::decode_client(&bytes) {
            Ok(message) => message,
            Err(error) => {
                debug!(conn = conn.0, %error, "undecodable message");
                return kick.kick(DisconnectReason::Malformed);
            }
        };
        let to_sim = match message {
            ClientMsg::Input(cmd) => {
                if let Err(error) = cmd.validate() {
                    debug!(conn = conn.0, %error, "invalid input");
                    return kick.kick(DisconnectReason::InvalidInput);
                }
                SimInput::Input { conn, cmd, received: tokio::time::Instant::now() }
            }
            ClientMsg::Ack { tick } => SimInput::Ack { conn, tick },
            ClientMsg::Ping { client_time } => {
                if !client_time.is_finite() {
                    return kick.kick(DisconnectReason::InvalidInput);
                }
                let server_tick = Tick(ctx.stats.tick.load(Ordering::Relaxed));
                let pong = protocol::encode(&ServerMsg::Pong { client_time, server_tick });
                // A full outbox means the client is behind anyway; it will ping again.
                let _ = outbox.try_send(pong);
                continue;
            }
            ClientMsg::Chat { text } => {
                if !chat.try_take() {
                    debug!(conn = conn.0, "chat rate limit: line dropped");
                    continue;
                }
                match protocol::sanitize_chat(&text) {
                    Some(text) => SimInput::Chat { conn, text },
                    None => continue,
                }
            }
            ClientMsg::ReplayControl { paused, speed, seek } => {
                if !protocol::REPLAY_SPEEDS.contains(&speed) {
                    return kick.kick(DisconnectReason::InvalidInput);
                }
                SimInput::ReplayControl { conn, paused, speed, seek }
            }
            ClientMsg::Hello { .. } => return kick.kick(DisconnectReason::Malformed),
        };
        if ctx.to_sim.send(to_sim).await.is_err() {
            return kick.kick(DisconnectReason::ServerClosing);
        }
    }
}

async fn write_loop<S>(
    mut sink: SplitSink<WebSocketStream<S>, Message>,
    mut outbox: mpsc::Receiver<Vec<u8>>,
    kick: &Kick,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let kicked = kick.signal(KickWaiter::Writer);
    tokio::pin!(kicked);
    loop {
        let next = tokio::select! {
            biased;
            _ = &mut kicked => None,
            message = outbox.recv() => message,
        };
        let Some(bytes) = next else { break };
        let sent = tokio::select! {
            biased;
            _ = &mut kicked => break,
            sent = sink.send(Message::Binary(bytes.into())) => sent,
        };
        if sent.is_err() {
            kick.kick(DisconnectReason::ConnectionLost);
            break;
        }
    }
    let reason = kick.reason().unwrap_or(DisconnectReason::ServerClosing);
    let goodbye = async {
        if reason_deserves_goodbye(&reason) {
            let message = protocol::encode(&ServerMsg::Disconnect(reason.clone()));
            sink.send(Message::Binary(message.into())).await?;
            sink.send(Message::Close(Some(close_frame(&reason)))).await?;
        }
        sink.close().await
    };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, goodbye).await;
}
