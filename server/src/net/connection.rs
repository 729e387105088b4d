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
use shared::room::{HostKey, RoomRequest};
use shared::tick::Tick;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info};

use super::kick::{ConnId, Kick, KickSignal, KickWaiter, OUTBOX_CAPACITY, Outbox};
use super::netsim::Link;
use super::polled::Attached;
use super::socket::PlayerSocket;
use crate::config::ServerConfig;
use crate::rate::{TokenBucket, address_key};
use crate::room::input::SimInput;
use crate::room::registry::{Registry, RoomHandle};

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
/// How long the writer tries to deliver the goodbye before dropping the socket.
pub(crate) const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// How often the writer sends a WebSocket ping (the round trip shown to the operator) and
/// samples its bytes per second.
pub(crate) const LINK_SAMPLE_EVERY: Duration = Duration::from_secs(2);

/// The clock ping payloads count from (microseconds since the first use).
fn link_clock_us() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed().as_micros() as u64
}

/// What every connection task shares.
pub struct NetContext {
    pub config: Arc<ServerConfig>,
    pub rooms: Arc<Registry>,
    /// Fires when the server starts shutting down (connections still in their handshake leave).
    pub shutdown: CancellationToken,
    /// Tracks connection tasks so shutdown can wait for their Close frames.
    pub tracker: TaskTracker,
    next_conn: AtomicU64,
    /// WebSocket connections open now (joined or still in their handshake).
    pub open_connections: std::sync::atomic::AtomicUsize,
    /// This server's LAN URLs and the other servers heard on the network.
    pub lan: Arc<crate::lan::Lan>,
    /// Serving and not draining (`/readyz`).
    pub ready: std::sync::atomic::AtomicBool,
    /// Open connections per address (loopback not counted), for `--max-connections-per-ip`.
    per_ip: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, u32>>,
    /// The operator's tokens, bans and audit log.
    pub admin: Arc<crate::admin::Admin>,
    /// Joins and failed credentials per address.
    pub join_limits: crate::auth::JoinLimits,
    /// Failed admin tokens per address.
    pub admin_limits: crate::auth::JoinLimits,
    /// Fired by the operator (`POST /api/admin/drain`): drain as on the first SIGTERM.
    pub drain_request: CancellationToken,
    /// What `/metrics` shows (collectors reading the rooms at scrape time).
    pub metrics: prometheus_client::registry::Registry,
}

/// Gives a connection's slots back when its task ends, however it ends.
pub struct ConnectionSlot(pub Arc<NetContext>, pub std::net::IpAddr);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.release(self.1);
    }
}

/// Why a connection was not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `--max-connections` are open.
    ServerFull,
    /// `--max-connections-per-ip` are open from this address.
    TooManyFromAddress,
}

impl NetContext {
    /// Claims a connection slot for a peer at `ip`: refused when the server is at its connection
    /// limit (`max_connections`, so a flood cannot exhaust file descriptors) or this address at
    /// its own (`max_connections_per_ip`; loopback is exempt: local tools, load tests and a
    /// reverse proxy on this machine).
    pub fn try_open(&self, ip: std::net::IpAddr) -> Result<(), Refused> {
        let ip = address_key(ip);
        let limit = self.config.max_connections;
        let previous = self.open_connections.fetch_add(1, Ordering::Relaxed);
        if previous >= limit {
            self.open_connections.fetch_sub(1, Ordering::Relaxed);
            return Err(Refused::ServerFull);
        }
        if !ip.is_loopback() && self.config.max_connections_per_ip > 0 {
            let mut per_ip = self.per_ip.lock().expect("per-ip lock");
            let open = per_ip.entry(ip).or_insert(0);
            if *open >= self.config.max_connections_per_ip {
                if *open == 0 {
                    per_ip.remove(&ip);
                }
                drop(per_ip);
                self.open_connections.fetch_sub(1, Ordering::Relaxed);
                return Err(Refused::TooManyFromAddress);
            }
            *open += 1;
        }
        Ok(())
    }

    /// Gives back the slot [`NetContext::try_open`] claimed for `ip`.
    pub fn release(&self, ip: std::net::IpAddr) {
        let ip = address_key(ip);
        self.open_connections.fetch_sub(1, Ordering::Relaxed);
        if !ip.is_loopback() && self.config.max_connections_per_ip > 0 {
            let mut per_ip = self.per_ip.lock().expect("per-ip lock");
            if let Some(open) = per_ip.get_mut(&ip) {
                *open = open.saturating_sub(1);
                if *open == 0 {
                    per_ip.remove(&ip);
                }
            }
        }
    }
}

impl NetContext {
    pub fn new(
        config: Arc<ServerConfig>,
        rooms: Arc<Registry>,
        shutdown: CancellationToken,
        tracker: TaskTracker,
        lan: Arc<crate::lan::Lan>,
        admin: Arc<crate::admin::Admin>,
    ) -> NetContext {
        NetContext {
            admin,
            join_limits: crate::auth::JoinLimits::new(config.joins_per_minute_per_ip),
            admin_limits: crate::auth::JoinLimits::new(0),
            drain_request: CancellationToken::new(),
            metrics: crate::metrics::registry(rooms.clone()),
            config,
            rooms,
            shutdown,
            tracker,
            lan,
            ready: std::sync::atomic::AtomicBool::new(false),
            per_ip: Default::default(),
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
        // Messages queued for a client are bounded: a room stops taking from a client's outbox
        // while its socket is backed up, so this is a safety net, not a queue.
        .max_write_buffer_size(MAX_WRITE_BUFFER)
}

/// At most this many bytes wait in tungstenite for one client's socket.
const MAX_WRITE_BUFFER: usize = 1 << 20;

/// Runs one player connection to its end.
pub async fn serve(mut ws: WebSocketStream<PlayerSocket>, peer: SocketAddr, ctx: Arc<NetContext>) {
    // The slot was claimed by the upgrade handler (`NetContext::try_open`); give it back at the end.
    let slot = ConnectionSlot(ctx.clone(), peer.ip());
    let conn = ConnId(ctx.next_conn.fetch_add(1, Ordering::Relaxed));
    let hello = tokio::select! {
        _ = ctx.shutdown.cancelled() => Err(DisconnectReason::ServerClosing),
        result = tokio::time::timeout(ctx.config.handshake_timeout, read_hello(&mut ws)) => {
            result.unwrap_or(Err(DisconnectReason::HandshakeTimeout))
        }
    };
    let hello = hello.and_then(|hello| admit(&ctx, peer, hello));
    let hello = match hello {
        Ok(hello) => hello,
        Err(reason) => {
            info!(conn = conn.0, %peer, %reason, code = reason.close_code(), "refused in handshake");
            close_with(&mut ws, &reason).await;
            return;
        }
    };

    let (outbox, outbox_rx) = mpsc::channel(OUTBOX_CAPACITY);
    let kick = Kick::new();
    let (room, welcome) = match join_room(&ctx, conn, peer, hello, &outbox, &kick).await {
        Ok(joined) => joined,
        Err(reason) => {
            info!(conn = conn.0, %peer, %reason, code = reason.close_code(), "join refused");
            close_with(&mut ws, &reason).await;
            return;
        }
    };
    if ws.send(Message::Binary(welcome.into())).await.is_err() {
        kick.kick(DisconnectReason::ConnectionLost);
    }
    // A plain TCP connection in a live room leaves the reactor: its room reads and writes it
    // once per tick from now on (`net::polled`), and this task ends here.
    if ctx.config.net_sim.is_none() && room.public.owns_sockets && ws.get_ref().can_leave_reactor() {
        if let Err(error) = ws.get_mut().leave_reactor() {
            debug!(conn = conn.0, %peer, %error, "socket could not leave the reactor");
            kick.kick(DisconnectReason::ConnectionLost);
        }
        drop(outbox);
        let attached = Attached::new(conn, ws, outbox_rx, kick, slot, ctx.config.idle_timeout);
        if let Err(mpsc::error::SendError(refused)) = room.inbox.send(SimInput::Attach(Box::new(attached))).await {
            // The room is gone: dropping the connection closes it with "room closed".
            drop(refused);
        }
        return;
    }
    let (sink, stream) = ws.split();
    // The writer runs as its own task so a wake-up for one direction never polls the other.
    let writer_kick = kick.clone();
    // With `--net-sim`, each direction goes through its own conditioned link.
    let (writer, up) = match ctx.config.net_sim {
        None => (ctx.tracker.spawn(async move { write_loop(sink, outbox_rx, &writer_kick).await }), None),
        Some(sim) => {
            let now = Instant::now();
            let down = Link::new(sim, now, conn.0.wrapping_mul(2));
            let up = Link::new(sim, now, conn.0.wrapping_mul(2) + 1);
            let writer =
                ctx.tracker.spawn(async move { write_loop_conditioned(sink, outbox_rx, &writer_kick, down).await });
            let (delayed, arrivals) = mpsc::channel(CONDITIONED_QUEUE);
            ctx.tracker.spawn(deliver_conditioned(arrivals, room.clone(), outbox.clone(), kick.clone()));
            (writer, Some((up, delayed)))
        }
    };
    let mut stream = stream;
    read_loop(&mut stream, conn, &room, &kick, &outbox, up, ctx.config.idle_timeout).await;
    let _ = writer.await;
    let reason = kick.reason().unwrap_or(DisconnectReason::ConnectionLost);
    debug!(conn = conn.0, %peer, room = %room.public.code, %reason, "connection closed");
    // The room may already be gone (shutdown, idle close); then there is nobody left to tell.
    let _ = room.inbox.send(SimInput::Leave { conn, reason }).await;
    drain_until_closed(&mut stream).await;
    drop(slot);
}

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

/// Whether a client's Close frame says the player is leaving: no code, 1000 (normal) or 1001
/// (going away: the tab closed or navigated).
fn is_goodbye(frame: Option<&CloseFrame>) -> bool {
    frame.is_none_or(|frame| matches!(frame.code, CloseCode::Normal | CloseCode::Away))
}

/// A valid hello's content.
struct Hello {
    name: String,
    resume: Option<u64>,
    room: RoomRequest,
    host_key: Option<HostKey>,
    client_id: u64,
    auth: Option<shared::protocol::JoinAuth>,
}

/// The server's gate for one hello: bans, the per-address join rate, then the password or join
/// token. A token's name replaces the hello's; a token's room replaces quick play and refuses
/// any other room.
fn admit(ctx: &NetContext, peer: SocketAddr, mut hello: Hello) -> Result<Hello, DisconnectReason> {
    let key = address_key(peer.ip());
    if ctx.admin.is_banned(key) {
        return Err(DisconnectReason::Banned);
    }
    if !ctx.join_limits.try_join(key) {
        return Err(DisconnectReason::JoinRateLimited);
    }
    let admission = match ctx.config.gate.admit(hello.auth.as_ref()) {
        Ok(admission) => admission,
        Err(reason) => {
            // A missing credential is a question, not a guess; a wrong one counts.
            if !matches!(reason, DisconnectReason::PasswordRequired | DisconnectReason::TokenRequired) {
                ctx.join_limits.failed(key);
            }
            return Err(reason);
        }
    };
    hello.auth = None;
    if let Some(name) = admission.name {
        hello.name = protocol::sanitize_name(&name);
    }
    if let Some(code) = admission.room {
        hello.room = match hello.room {
            RoomRequest::QuickPlay => RoomRequest::Join { code: code.to_string() },
            RoomRequest::Join { code: asked } | RoomRequest::Watch { code: asked }
                if shared::room::RoomCode::parse(&asked) != Some(code) =>
            {
                return Err(DisconnectReason::TokenInvalid { why: format!("it admits to room {code} only") });
            }
            RoomRequest::Create(_) => {
                return Err(DisconnectReason::TokenInvalid { why: format!("it admits to room {code} only") });
            }
            same => same,
        };
    }
    if let Some(subject) = admission.subject {
        info!(%peer, %subject, "join token accepted");
    }
    Ok(hello)
}

/// Quick play tries this many rooms before it gives up (each can fill or lock meanwhile).
const QUICK_PLAY_ATTEMPTS: usize = 4;

/// Finds the hello's room and joins it in one step: the room either admits the connection
/// (and answers with the welcome) or says why not. A room that closes while the join is queued
/// answers "room closed" (its inbox refuses or drops the request); nothing waits forever.
async fn join_room(
    ctx: &NetContext,
    conn: ConnId,
    peer: SocketAddr,
    hello: Hello,
    outbox: &Outbox,
    kick: &Kick,
) -> Result<(RoomHandle, Vec<u8>), DisconnectReason> {
    let mut tried = Vec::new();
    loop {
        let destination = ctx.rooms.resolve(&hello.room, peer.ip(), &tried)?;
        let room = destination.room;
        let (reply, reply_rx) = oneshot::channel();
        let join = SimInput::Join {
            conn,
            name: hello.name.clone(),
            // A resume token is for the room it came from: only a hello naming that room uses it.
            resume: hello.resume.filter(|_| matches!(hello.room, RoomRequest::Join { .. })),
            outbox: outbox.clone(),
            kick: kick.clone(),
            reply,
            spectator: destination.spectator,
            host_key: destination.created_key.or(hello.host_key),
            client_id: hello.client_id,
            ip: Some(peer.ip()),
        };
        let answer = match room.inbox.send(join).await {
            Ok(()) => reply_rx.await.unwrap_or(Err(DisconnectReason::RoomClosed)),
            Err(_) => Err(DisconnectReason::RoomClosed),
        };
        let answer = match answer {
            Err(DisconnectReason::RoomClosed) if ctx.shutdown.is_cancelled() => Err(DisconnectReason::ServerClosing),
            other => other,
        };
        match answer {
            Ok(welcome) => {
                info!(conn = conn.0, %peer, room = %room.public.code, spectator = destination.spectator, "joined room");
                return Ok((room, welcome));
            }
            Err(DisconnectReason::RoomFull { .. } | DisconnectReason::RoomLocked | DisconnectReason::RoomClosed)
                if hello.room == RoomRequest::QuickPlay && tried.len() + 1 < QUICK_PLAY_ATTEMPTS =>
            {
                tried.push(room.public.code);
            }
            Err(reason) => return Err(reason),
        }
    }
}

/// Waits for the hello and checks its version.
async fn read_hello<S>(ws: &mut WebSocketStream<S>) -> Result<Hello, DisconnectReason>
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
            Ok(ClientMsg::Hello { protocol, name, resume, room, host_key, client_id, auth })
                if protocol == PROTOCOL_VERSION =>
            {
                Ok(Hello { name: protocol::sanitize_name(&name), resume, room, host_key, client_id, auth })
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

fn reason_deserves_goodbye(reason: &DisconnectReason) -> bool {
    !matches!(reason, DisconnectReason::ClientLeft | DisconnectReason::ConnectionLost)
}

/// The Close frame for `reason`: its code, and its text cut to the 123 bytes a control frame
/// allows (RFC 6455 §5.5); the whole reason went before it in the `Disconnect` message.
fn close_frame(reason: &DisconnectReason) -> CloseFrame {
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

async fn read_loop<S>(
    stream: &mut SplitStream<WebSocketStream<S>>,
    conn: ConnId,
    room: &RoomHandle,
    kick: &Kick,
    outbox: &Outbox,
    mut conditioned: Option<(Link, mpsc::Sender<(Instant, Arrival)>)>,
    idle: Duration,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut reader = Reader::new();
    // The idle timer is not moved per frame (that would touch the timer wheel 60 times a second
    // per client): when it fires, it is re-armed from the last frame's time if one came since.
    let silent = tokio::time::sleep(idle);
    tokio::pin!(silent);
    let kicked = kick.signal(KickWaiter::Reader);
    tokio::pin!(kicked);
    let room_gone = room.inbox.closed();
    tokio::pin!(room_gone);
    loop {
        let frame = tokio::select! {
            biased;
            _ = &mut kicked => return,
            // The room's task ended (closed or failed) without closing this connection first.
            _ = &mut room_gone => return kick.kick(DisconnectReason::RoomClosed),
            frame = stream.next() => frame,
            _ = &mut silent => {
                if reader.last_frame.elapsed() < idle {
                    silent.as_mut().reset(reader.last_frame + idle);
                    continue;
                }
                return kick.kick(idle_timeout(idle));
            }
        };
        let size = match &frame {
            Some(Ok(message)) => message.len(),
            _ => 0,
        };
        let arrival = match reader.frame(conn, kick, frame, Instant::now()) {
            Step::Close(reason) => return kick.kick(reason),
            Step::Skip => continue,
            Step::Ping(client_time) if conditioned.is_none() => {
                answer_ping(room, outbox, client_time);
                continue;
            }
            Step::Ping(client_time) => Arrival::Ping(client_time),
            Step::Room(input) => Arrival::Room(input),
        };
        if let Some((link, delayed)) = conditioned.as_mut() {
            let at = link.deliver_at(Instant::now(), size);
            if delayed.send((at, arrival)).await.is_err() {
                return kick.kick(DisconnectReason::RoomClosed);
            }
            continue;
        }
        let Arrival::Room(to_sim) = arrival else { continue };
        if room.inbox.send(to_sim).await.is_err() {
            // The room's task ended (closed or failed) without closing this connection first.
            return kick.kick(DisconnectReason::RoomClosed);
        }
    }
}

/// The reason a connection silent for `idle` is closed with.
pub(crate) fn idle_timeout(idle: Duration) -> DisconnectReason {
    DisconnectReason::IdleTimeout { seconds: idle.as_secs().min(u64::from(u32::MAX)) as u32 }
}

/// Answers a ping at once with the room's current tick. A full outbox means the client is
/// behind anyway; it will ping again.
fn answer_ping(room: &RoomHandle, outbox: &Outbox, client_time: f64) {
    let server_tick = Tick(room.public.stats.tick.load(Ordering::Relaxed));
    let _ = outbox.try_send(protocol::encode(&ServerMsg::Pong { client_time, server_tick }));
}

/// A client message on its way through the conditioned link (`--net-sim`).
#[derive(Debug)]
enum Arrival {
    Room(SimInput),
    Ping(f64),
}

/// Messages queued in a conditioned link, each way; past this the link pushes back (the reader
/// stops reading, the room's outbox fills), as a saturated real link would.
const CONDITIONED_QUEUE: usize = 1024;

/// Delivers the client's messages to the room when the conditioned link says they arrive.
async fn deliver_conditioned(
    mut arrivals: mpsc::Receiver<(Instant, Arrival)>,
    room: RoomHandle,
    outbox: Outbox,
    kick: Kick,
) {
    // Messages still in flight when the connection ends are dropped, as on a real link; the
    // room's `Leave` goes directly (it must never be lost). Ends with the room too.
    while let Some((at, arrival)) = arrivals.recv().await {
        tokio::select! {
            biased;
            _ = room.inbox.closed() => return,
            _ = tokio::time::sleep_until(at) => {}
        }
        if kick.is_kicked() {
            return;
        }
        match arrival {
            Arrival::Room(input) => {
                let input = match input {
                    // The room sees the input when the link delivers it.
                    SimInput::Input { conn, cmd, .. } => SimInput::Input { conn, cmd, received: Instant::now() },
                    other => other,
                };
                if room.inbox.send(input).await.is_err() {
                    return kick.kick(DisconnectReason::RoomClosed);
                }
            }
            Arrival::Ping(client_time) => answer_ping(&room, &outbox, client_time),
        }
    }
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

async fn write_loop<S>(
    mut sink: SplitSink<WebSocketStream<S>, Message>,
    mut outbox: mpsc::Receiver<Vec<u8>>,
    kick: &Kick,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let kicked = kick.signal(KickWaiter::Writer);
    tokio::pin!(kicked);
    let mut sample = tokio::time::interval_at(Instant::now() + LINK_SAMPLE_EVERY, LINK_SAMPLE_EVERY);
    sample.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let next = tokio::select! {
            biased;
            _ = &mut kicked => None,
            message = outbox.recv() => message,
            _ = sample.tick() => {
                let ping = sample_link(kick);
                let sent = tokio::select! {
                    biased;
                    _ = &mut kicked => break,
                    sent = sink.send(ping) => sent,
                };
                if sent.is_err() {
                    kick.kick(DisconnectReason::ConnectionLost);
                    break;
                }
                continue;
            }
        };
        let Some(bytes) = next else {
            // The room dropped this client's outbox without a reason: its task ended.
            kick.kick(DisconnectReason::RoomClosed);
            break;
        };
        if !send_unless_kicked(&mut sink, kicked.as_mut(), kick, bytes).await {
            break;
        }
    }
    send_goodbye(sink, kick).await;
}

/// Sends one message unless the connection is kicked first (a kick interrupts a send to a peer
/// that stopped reading). False when the writer should stop: kicked, or the send failed (then
/// the connection is marked lost).
async fn send_unless_kicked<S>(
    sink: &mut SplitSink<WebSocketStream<S>, Message>,
    kicked: std::pin::Pin<&mut KickSignal<'_>>,
    kick: &Kick,
    bytes: Vec<u8>,
) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    kick.link().window_bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
    let sent = tokio::select! {
        biased;
        _ = kicked => return false,
        sent = sink.send(Message::Binary(bytes.into())) => sent,
    };
    if sent.is_err() {
        kick.kick(DisconnectReason::ConnectionLost);
        return false;
    }
    true
}

/// Sends the reason (message and Close frame) on the writer's half, within [`CLOSE_TIMEOUT`].
async fn send_goodbye<S>(mut sink: SplitSink<WebSocketStream<S>, Message>, kick: &Kick)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
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

/// [`write_loop`] through a conditioned link (`--net-sim`): each message leaves when the link
/// says it arrives. At most [`CONDITIONED_QUEUE`] wait; then the outbox fills as it would with
/// a slow client. The goodbye is not delayed.
async fn write_loop_conditioned<S>(
    mut sink: SplitSink<WebSocketStream<S>, Message>,
    mut outbox: mpsc::Receiver<Vec<u8>>,
    kick: &Kick,
    mut link: Link,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let kicked = kick.signal(KickWaiter::Writer);
    tokio::pin!(kicked);
    let mut queue: std::collections::VecDeque<(Instant, Vec<u8>)> = std::collections::VecDeque::new();
    loop {
        let due = queue.front().map(|(at, _)| *at);
        tokio::select! {
            biased;
            _ = &mut kicked => break,
            _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                let Some((_, bytes)) = queue.pop_front() else { continue };
                if !send_unless_kicked(&mut sink, kicked.as_mut(), kick, bytes).await {
                    break;
                }
            }
            message = outbox.recv(), if queue.len() < CONDITIONED_QUEUE => {
                let Some(bytes) = message else {
                    kick.kick(DisconnectReason::RoomClosed);
                    break;
                };
                queue.push_back((link.deliver_at(Instant::now(), bytes.len()), bytes));
            }
        }
    }
    send_goodbye(sink, kick).await;
}

#[cfg(test)]
mod limit_tests {
    use std::net::IpAddr;
    use std::sync::Arc;

    use super::*;
    use crate::room::registry::Registry;
    use crate::stats::RoomStats;

    #[test]
    fn one_address_gets_its_own_limit_and_loopback_is_exempt() {
        let config =
            Arc::new(ServerConfig { max_connections: 10, max_connections_per_ip: 3, ..ServerConfig::default() });
        let rooms = Registry::new(config.clone(), Arc::new(RoomStats::default()));
        let ctx = NetContext::new(
            config,
            rooms,
            CancellationToken::new(),
            TaskTracker::new(),
            crate::lan::Lan::off(0),
            Arc::new(crate::admin::Admin::new(&Default::default()).unwrap()),
        );
        let home: IpAddr = "192.168.1.50".parse().unwrap();
        let other: IpAddr = "192.168.1.51".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(ctx.try_open(home), Ok(()));
        }
        assert_eq!(ctx.try_open(home), Err(Refused::TooManyFromAddress), "the fourth from one address");
        assert_eq!(ctx.try_open(other), Ok(()), "another address is not affected");
        ctx.release(home);
        assert_eq!(ctx.try_open(home), Ok(()), "a closed connection frees its slot");
        // Loopback: only the server-wide limit (10) applies.
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let mut opened = 0;
        while ctx.try_open(local).is_ok() {
            opened += 1;
        }
        assert_eq!(opened, 10 - 4, "loopback fills what is left of the server-wide limit");
        assert_eq!(ctx.try_open(other), Err(Refused::ServerFull));
        // A proxy on this machine seen through a dual-stack socket is loopback too; an IPv6
        // host's other addresses in its /64 share its count.
        assert_eq!(address_key("::ffff:127.0.0.1".parse().unwrap()), local);
        assert_eq!(
            address_key("2001:db8:1:2::5".parse().unwrap()),
            address_key("2001:db8:1:2:ffff::9".parse().unwrap())
        );
    }
}
