//! Player sockets owned by their room and polled once per tick, outside tokio's reactor.
//!
//! After the join a plain-TCP connection's task hands its WebSocket to the room
//! ([`SimInput::Attach`]) and ends. Each tick the room's task reads every queued frame of every
//! socket ([`Sockets::read`]: `recv` until a short read or `EAGAIN`, at most
//! [`MAX_FRAMES_PER_POLL`] frames), steps the
//! world, and writes what each outbox holds ([`Sockets::write`]: all of a tick's messages for a
//! client go out in one `send`). No packet wakes a thread and no message crosses a channel
//! between tasks: with per-connection reader and writer tasks those wake-ups, not the syscalls,
//! were most of the server's CPU (BENCHMARKS.md, "Networking at the kernel's floor").
//!
//! Everything the connection task did still happens, in the same order of checks: the same
//! [`Reader`] applies the flood and chat limits, decoding and validation; the idle timeout is
//! checked per tick; the link's pings go out every two seconds. Writes are bounded: while a
//! client's previous messages are still unsent (its socket buffer full), its outbox is not read,
//! so it fills and the room skips that client's snapshots and in the end drops it as too slow,
//! exactly as before. A connection that ends (kicked, lost, left) goes back into the reactor for
//! its goodbye on a task of its own, and the room gets its `Leave` at once.

use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{Sink, Stream};
use shared::protocol::{self, DisconnectReason, ServerMsg};
use shared::tick::Tick;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use super::connection::{self, ConnectionSlot, Reader, Step};
use super::socket::PlayerSocket;
use crate::room::live::{ConnId, Kick, Room, SimInput};

/// Frames read from one socket per tick at most; the rest wait for the next tick (a flood
/// cannot stretch a tick, and the flood limit closes it soon anyway).
pub const MAX_FRAMES_PER_POLL: usize = 256;

/// A joined connection handed to its room.
pub struct Attached {
    conn: ConnId,
    ws: Option<WebSocketStream<PlayerSocket>>,
    outbox: mpsc::Receiver<Vec<u8>>,
    kick: Kick,
    reader: Reader,
    idle: Duration,
    next_sample: Instant,
    /// Messages were queued in tungstenite but the socket took only part: nothing more is taken
    /// from the outbox until they are out.
    blocked: bool,
    /// The connection's slot (`--max-connections`), given back when the goodbye is done.
    slot: Option<ConnectionSlot>,
    /// Pings read this tick (their client times), answered by the write.
    pings: Vec<f64>,
}

impl std::fmt::Debug for Attached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attached").field("conn", &self.conn).finish_non_exhaustive()
    }
}

impl Attached {
    pub fn new(
        conn: ConnId,
        ws: WebSocketStream<PlayerSocket>,
        outbox: mpsc::Receiver<Vec<u8>>,
        kick: Kick,
        slot: ConnectionSlot,
        idle: Duration,
    ) -> Attached {
        Attached {
            conn,
            ws: Some(ws),
            outbox,
            kick,
            reader: Reader::new(),
            idle,
            next_sample: Instant::now() + connection::LINK_SAMPLE_EVERY,
            blocked: false,
            slot: Some(slot),
            pings: Vec::new(),
        }
    }

    /// Reads what the socket holds, handing each message to the room.
    fn read(&mut self, room: &mut Room, cx: &mut Context<'_>, now: Instant) {
        let Some(ws) = self.ws.as_mut() else { return };
        ws.get_mut().next_round();
        for _ in 0..MAX_FRAMES_PER_POLL {
            let frame = match std::pin::Pin::new(&mut *ws).poll_next(cx) {
                Poll::Pending => break,
                Poll::Ready(frame) => frame,
            };
            match self.reader.frame(self.conn, &self.kick, frame, now) {
                Step::Room(input) => room.handle(input),
                // Answered in this tick's write, with the tick the world has then reached.
                Step::Ping(client_time) => self.pings.push(client_time),
                Step::Skip => {}
                Step::Close(reason) => return self.kick.kick(reason),
            }
        }
        if now.saturating_duration_since(self.reader.last_frame) >= self.idle {
            self.kick.kick(connection::idle_timeout(self.idle));
        }
    }

    /// Writes the outbox (unless the socket is still backed up), the link ping when due, and
    /// flushes once.
    fn write(&mut self, cx: &mut Context<'_>, now: Instant, server_tick: Tick) {
        let Some(ws) = self.ws.as_mut() else { return };
        let mut ws = std::pin::Pin::new(ws);
        for client_time in self.pings.drain(..) {
            let pong = protocol::encode(&ServerMsg::Pong { client_time, server_tick });
            if ws.as_mut().start_send(Message::Binary(pong.into())).is_err() {
                return self.kick.kick(DisconnectReason::ConnectionLost);
            }
        }
        if self.blocked {
            match ws.as_mut().poll_flush(cx) {
                Poll::Pending => return,
                Poll::Ready(Ok(())) => self.blocked = false,
                Poll::Ready(Err(_)) => return self.kick.kick(DisconnectReason::ConnectionLost),
            }
        }
        loop {
            match self.outbox.try_recv() {
                Ok(bytes) => {
                    self.kick.link().window_bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    if ws.as_mut().start_send(Message::Binary(bytes.into())).is_err() {
                        return self.kick.kick(DisconnectReason::ConnectionLost);
                    }
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                // The room dropped this client's outbox without a reason.
                Err(mpsc::error::TryRecvError::Disconnected) => return self.kick.kick(DisconnectReason::RoomClosed),
            }
        }
        if now >= self.next_sample {
            self.next_sample = now + connection::LINK_SAMPLE_EVERY;
            if ws.as_mut().start_send(connection::sample_link(&self.kick)).is_err() {
                return self.kick.kick(DisconnectReason::ConnectionLost);
            }
        }
        // Always flushed: a pong queued while reading (or tungstenite's answer to a ping) may
        // be waiting. With nothing queued this is no system call.
        match ws.as_mut().poll_flush(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Pending => self.blocked = true,
            Poll::Ready(Err(_)) => self.kick.kick(DisconnectReason::ConnectionLost),
        }
    }
}

impl Drop for Attached {
    /// However the connection ends (the room closed it, the room is gone, the room's task
    /// panicked), it goes back into the reactor and says goodbye with its reason on a task.
    fn drop(&mut self) {
        self.kick.kick(DisconnectReason::RoomClosed);
        let Some(mut ws) = self.ws.take() else { return };
        let slot = self.slot.take();
        let reason = self.kick.reason().unwrap_or(DisconnectReason::ConnectionLost);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let Some(slot) = slot else { return };
        let tracker = slot.0.tracker.clone();
        let _guard = runtime.enter();
        tracker.spawn(async move {
            // In the task: a runtime that cannot take the socket fails here, not in a drop
            // (which may run while the room's task unwinds).
            if ws.get_mut().enter_reactor().is_err() {
                return;
            }
            connection::close_with(&mut ws, &reason).await;
            connection::drain_until_closed(&mut ws).await;
            drop(slot);
        });
    }
}

/// A room with at least this many polled sockets writes them from several threads.
const PARALLEL_WRITES_FROM: usize = 256;
/// Threads a room's writes use at most.
const MAX_WRITE_THREADS: usize = 4;
/// Set when the system refused a write thread.
static PARALLEL_WRITES_OFF: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// How many threads a big room's writes use (the cores, read once).
fn write_threads() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    if PARALLEL_WRITES_OFF.load(std::sync::atomic::Ordering::Relaxed) {
        return 1;
    }
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_WRITE_THREADS))
}

fn write_each(attached: &mut [Attached], now: Instant, tick: Tick) {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    for attached in attached {
        if !attached.kick.is_kicked() {
            attached.write(&mut cx, now, tick);
        }
    }
}

/// The sockets a room's task polls.
#[derive(Default)]
pub struct Sockets {
    attached: Vec<Attached>,
}

impl Sockets {
    pub fn attach(&mut self, attached: Attached) {
        self.attached.push(attached);
    }

    pub fn len(&self) -> usize {
        self.attached.len()
    }

    pub fn is_empty(&self) -> bool {
        self.attached.is_empty()
    }

    /// Reads every socket (see [`Attached::read`]).
    pub fn read(&mut self, room: &mut Room) {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let now = Instant::now();
        for attached in &mut self.attached {
            if !attached.kick.is_kicked() {
                attached.read(room, &mut cx, now);
            }
        }
    }

    /// Writes every socket, then ends the connections that are over: each goes to its goodbye
    /// and the room handles its `Leave` now.
    pub fn write(&mut self, room: &mut Room) {
        let now = Instant::now();
        let tick = room.world.tick;
        let threads = if self.attached.len() >= PARALLEL_WRITES_FROM { write_threads() } else { 1 };
        if threads > 1 {
            // A big room's sends (each also runs the receiver's side of loopback TCP in the
            // kernel) are spread over the cores for the length of this call. If the system
            // refuses a thread, that share waits in its outboxes for the next tick, and rooms
            // write on their own thread from then on.
            let per_thread = self.attached.len().div_ceil(threads);
            std::thread::scope(|scope| {
                let mut parts = self.attached.chunks_mut(per_thread);
                let mine = parts.next();
                for part in parts {
                    let spawned = std::thread::Builder::new()
                        .name("room-writes".into())
                        .spawn_scoped(scope, move || write_each(part, now, tick));
                    if let Err(error) = spawned {
                        tracing::warn!(%error, "a write thread could not start; rooms write on their own thread from now on");
                        PARALLEL_WRITES_OFF.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                if let Some(mine) = mine {
                    write_each(mine, now, tick);
                }
            });
        } else {
            write_each(&mut self.attached, now, tick);
        }
        if self.attached.iter().any(|a| a.kick.is_kicked()) {
            let (ended, live): (Vec<_>, Vec<_>) = self.attached.drain(..).partition(|a| a.kick.is_kicked());
            self.attached = live;
            for attached in ended {
                let conn = attached.conn;
                let reason = attached.kick.reason().unwrap_or(DisconnectReason::ConnectionLost);
                drop(attached);
                room.handle(SimInput::Leave { conn, reason });
            }
        }
    }
}
