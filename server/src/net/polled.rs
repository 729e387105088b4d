//! Player sockets owned by their room and polled once per tick, outside tokio's reactor.
//!
//! After the join a plain-TCP connection's task hands its WebSocket to the room
//! ([`SimInput::Attach`], as an [`Attachment`]) and ends. Each tick the room's task
//! (`room::sockets`) reads every queued frame of every socket ([`Attached`]'s `read`: `recv`
//! until a short read or `EAGAIN`, at most [`MAX_FRAMES_PER_POLL`] frames), steps the world,
//! and writes what each outbox holds (its `write`: all of a tick's messages for a client go out
//! in one `send`). No packet wakes a thread and no message crosses a channel
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

use super::context::ConnectionSlot;
use super::reader::{Reader, Step, idle_timeout};
use super::socket::PlayerSocket;
use super::ws::{self, LINK_SAMPLE_EVERY, sample_link};
use crate::net::kick::{ConnId, Kick};
use crate::room::input::{Attachment, SimInput};

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
            next_sample: Instant::now() + LINK_SAMPLE_EVERY,
            blocked: false,
            slot: Some(slot),
            pings: Vec::new(),
        }
    }
}

impl Attachment for Attached {
    fn conn(&self) -> ConnId {
        self.conn
    }

    fn kick(&self) -> &Kick {
        &self.kick
    }

    /// Reads what the socket holds, handing each message to the room.
    fn read(&mut self, now: Instant, handle: &mut dyn FnMut(SimInput)) {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let cx = &mut cx;
        let Some(ws) = self.ws.as_mut() else { return };
        ws.get_mut().next_round();
        for _ in 0..MAX_FRAMES_PER_POLL {
            let frame = match std::pin::Pin::new(&mut *ws).poll_next(cx) {
                Poll::Pending => break,
                Poll::Ready(frame) => frame,
            };
            match self.reader.frame(self.conn, &self.kick, frame, now) {
                Step::Room(input) => handle(input),
                // Answered in this tick's write, with the tick the world has then reached.
                Step::Ping(client_time) => self.pings.push(client_time),
                Step::Skip => {}
                Step::Close(reason) => return self.kick.kick(reason),
            }
        }
        if now.saturating_duration_since(self.reader.last_frame) >= self.idle {
            self.kick.kick(idle_timeout(self.idle));
        }
    }

    /// Writes the outbox (unless the socket is still backed up), the link ping when due, and
    /// flushes once.
    fn write(&mut self, now: Instant, server_tick: Tick) {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let cx = &mut cx;
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
            self.next_sample = now + LINK_SAMPLE_EVERY;
            if ws.as_mut().start_send(sample_link(&self.kick)).is_err() {
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
            ws::close_with(&mut ws, &reason).await;
            ws::drain_until_closed(&mut ws).await;
            drop(slot);
        });
    }
}
