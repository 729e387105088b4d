//! Everything that can change a room arrives as one [`SimInput`] on the room's one bounded
//! channel; a connection whose socket the room's task polls itself is an [`Attachment`].

use shared::protocol::{DisconnectReason, InputCmd};
use shared::room::{HostCmd, HostKey};
use shared::tick::Tick;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::ops::{RoomAnswer, RoomOp};
use crate::net::kick::{ConnId, Kick, Outbox};

/// Capacity of the channel into the sim. Connection tasks wait when it is full.
pub const INBOX_CAPACITY: usize = 8192;

/// Everything that can change the room arrives through this enum.
#[derive(Debug)]
pub enum SimInput {
    /// A connection finished its handshake and wants a player.
    Join {
        conn: ConnId,
        name: String,
        resume: Option<u64>,
        outbox: Outbox,
        kick: Kick,
        /// The encoded [`ServerMsg::Welcome`], or why the join was refused.
        reply: oneshot::Sender<Result<Vec<u8>, DisconnectReason>>,
        /// Watch instead of play.
        spectator: bool,
        /// The host key the client presented, if any.
        host_key: Option<HostKey>,
        /// The browser's own id (0 if it sent none); kicked ids cannot come back.
        client_id: u64,
        /// The peer's address (`None` in tests and benchmarks without a socket).
        ip: Option<std::net::IpAddr>,
        /// Only the seat `resume` holds (or held, before a reload) may be taken, no new one: the
        /// hello's single-use join token was used before.
        seat_only: bool,
        /// The player's public id (stored rounds, ratings), if they have one.
        player: Option<String>,
    },
    /// A host command; the room checks that `conn` is the host.
    Host {
        conn: ConnId,
        cmd: HostCmd,
    },
    /// An operator's request (`/api/admin/…`); the room answers on `reply`.
    Admin {
        op: RoomOp,
        reply: oneshot::Sender<Result<RoomAnswer, String>>,
    },
    /// Makes the room task panic. No client message maps to it: tests use it to prove that a
    /// failing room is contained (only its own players are disconnected, with a reason).
    Crash,
    Input {
        conn: ConnId,
        cmd: InputCmd,
        /// When the connection task decoded it (for input-to-ack latency).
        received: Instant,
    },
    Ack {
        conn: ConnId,
        tick: Tick,
    },
    Chat {
        conn: ConnId,
        text: String,
    },
    /// A spectator's playback request (replay rooms only).
    ReplayControl {
        conn: ConnId,
        paused: bool,
        speed: f32,
        seek: Option<Tick>,
    },
    /// A joined plain-TCP connection handing its socket to the room's task, which polls it
    /// once per tick from then on (`net::polled`). Only the run loop takes these.
    Attach(Box<dyn Attachment>),
    /// Sent exactly once per joined connection, after its reader and writer stopped.
    Leave {
        conn: ConnId,
        reason: DisconnectReason,
    },
}

/// A joined connection whose socket the room's task reads and writes itself, once per tick
/// (`net::polled` implements it for plain TCP). Dropping it ends the connection with the reason
/// its [`Kick`] holds (its goodbye then runs on a task of its own).
pub trait Attachment: Send + std::fmt::Debug {
    fn conn(&self) -> ConnId;
    fn kick(&self) -> &Kick;
    /// Reads what the socket holds, handing each message to `handle`.
    fn read(&mut self, now: Instant, handle: &mut dyn FnMut(SimInput));
    /// Writes what the outbox holds (unless the socket is still backed up), the pongs owed and
    /// the link sample when due, and flushes once.
    fn write(&mut self, now: Instant, server_tick: Tick);
}
