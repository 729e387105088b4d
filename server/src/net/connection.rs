//! One task per WebSocket connection: handshake, the hello's gate (bans, join limits,
//! credentials) and the join; then, for a plain-TCP socket in a live room, the hand-over to the
//! room's task (`net::polled`), or else a reader and a writer that run until either side ends
//! the connection, then exactly one [`SimInput::Leave`].
//!
//! The reader decodes and validates every frame (size limits, binary only, bincode with a
//! limit, finite and in-range input, rate limits) and forwards it to the room; any violation
//! closes only this connection, with a reason. The writer forwards the outbox to the socket and,
//! once [`Kick`] fires, sends [`ServerMsg::Disconnect`] and a Close frame carrying the same
//! reason.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use shared::protocol::{self, ClientMsg, DisconnectReason, PROTOCOL_VERSION, ServerMsg};
use shared::room::{HostKey, RoomRequest};
use shared::tick::Tick;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tracing::{debug, info};

use super::context::{ConnectionSlot, NetContext};
use super::kick::{ConnId, Kick, KickSignal, KickWaiter, OUTBOX_CAPACITY, Outbox};
use super::netsim::Link;
use super::polled::Attached;
use super::reader::{Reader, Step, idle_timeout, reason_for};
use super::socket::PlayerSocket;
use super::ws::{
    CLOSE_TIMEOUT, LINK_SAMPLE_EVERY, close_frame, close_with, drain_until_closed, reason_deserves_goodbye, sample_link,
};
use crate::rate::address_key;
use crate::room::input::SimInput;
use crate::room::registry::RoomHandle;

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
    let first_use = hello.first_use.clone();
    let (room, welcome) = match join_room(&ctx, conn, peer, hello, &outbox, &kick).await {
        Ok(joined) => joined,
        Err(reason) => {
            // The single-use token seated nobody: it may try again (a full room, a closing one).
            if let Some(jti) = first_use {
                ctx.config.gate.spent.unspend(&jti);
            }
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

/// A valid hello's content.
struct Hello {
    name: String,
    resume: Option<u64>,
    room: RoomRequest,
    host_key: Option<HostKey>,
    client_id: u64,
    auth: Option<shared::protocol::JoinAuth>,
    /// It may only take back a seat its resume token holds (its single-use join token was used
    /// before, or it came with a resume token instead of a token that is still valid).
    seat_only: bool,
    /// Its single-use token's id, on that token's first use.
    first_use: Option<String>,
    /// The guest secret it showed, and the player it is (public id): its token's subject, else
    /// its guest identity, else nobody (not rated).
    guest: Option<[u8; shared::protocol::GUEST_SECRET_BYTES]>,
    player: Option<String>,
}

/// The server's gate for one hello: bans, the per-address join rate, then the password or join
/// token. A token's name replaces the hello's; a token's room replaces quick play and refuses
/// any other room.
fn admit(ctx: &NetContext, peer: SocketAddr, mut hello: Hello) -> Result<Hello, DisconnectReason> {
    let key = address_key(peer.ip());
    if ctx.operator.is_banned(key) {
        return Err(DisconnectReason::Banned);
    }
    if !ctx.join_limits.try_join(key) {
        return Err(DisconnectReason::JoinRateLimited);
    }
    let fleet_name = ctx.config.lobby.as_ref().map(|link| link.instance.as_str());
    let resuming = hello.resume.is_some() && matches!(hello.room, RoomRequest::Join { .. });
    let admission = match ctx.config.gate.admit(hello.auth.as_ref(), fleet_name) {
        Ok(admission) => admission,
        // A player coming back to their seat (a reload, a reconnect after the join token
        // expired): the resume token, which the room checks, is enough to take that seat back,
        // never a new one.
        Err(DisconnectReason::TokenRequired | DisconnectReason::TokenExpired) if resuming => {
            crate::auth::Admission { spent_before: true, ..Default::default() }
        }
        Err(reason) => {
            // A missing credential is a question, not a guess; a wrong one counts.
            if !matches!(reason, DisconnectReason::PasswordRequired | DisconnectReason::TokenRequired) {
                ctx.join_limits.failed(key);
            }
            return Err(reason);
        }
    };
    hello.auth = None;
    hello.first_use = admission.first_use.clone();
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
    if admission.spent_before {
        // A reload or a reconnect of the player it seated, with their resume token; never a
        // second player (the room refuses a resume that finds no seat of theirs).
        if !resuming {
            ctx.join_limits.failed(key);
            return Err(DisconnectReason::TokenInvalid {
                why: "it was used already (a join token admits once): ask the lobby for a new one".to_string(),
            });
        }
        hello.seat_only = true;
    }
    hello.player = match (&admission.subject, &hello.guest) {
        (Some(subject), _) => Some(crate::store::record::token_player_id(admission.issuer.as_deref(), subject)),
        (None, Some(secret)) => Some(crate::store::record::guest_player_id(secret)),
        (None, None) => None,
    };
    if let Some(subject) = admission.subject {
        info!(%peer, %subject, again = admission.spent_before, "join token accepted");
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
    // A hello naming a code counts against the address's unknown codes like `GET /api/rooms/CODE`.
    let by_code = matches!(hello.room, RoomRequest::Join { .. } | RoomRequest::Watch { .. });
    if by_code && ctx.code_misses.exhausted(peer.ip()) {
        return Err(DisconnectReason::JoinRateLimited);
    }
    loop {
        let destination = match ctx.rooms.resolve(&hello.room, peer.ip(), &tried) {
            Err(DisconnectReason::NoSuchRoom) if by_code => {
                ctx.code_misses.take(peer.ip());
                return Err(DisconnectReason::NoSuchRoom);
            }
            other => other?,
        };
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
            seat_only: hello.seat_only,
            player: hello.player.clone(),
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
            Ok(ClientMsg::Hello { protocol, name, resume, room, host_key, client_id, auth, guest })
                if protocol == PROTOCOL_VERSION =>
            {
                Ok(Hello {
                    name: protocol::sanitize_name(&name),
                    resume,
                    room,
                    host_key,
                    client_id,
                    auth,
                    seat_only: false,
                    first_use: None,
                    guest,
                    player: None,
                })
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
