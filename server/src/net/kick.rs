//! A connection as the rest of the server holds it: its id, its outbox, and the [`Kick`] that
//! asks it to close (first reason wins) and carries the link figures its tasks measure. The one
//! part of `net` below `room`: a room keeps these for every client and never sees a socket.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use shared::protocol::DisconnectReason;
use tokio::sync::mpsc;

/// Identifies one connection for the lifetime of the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

/// Encoded server messages on their way to one connection's writer.
pub type Outbox = mpsc::Sender<Vec<u8>>;

/// Capacity of each client's outbox, in messages. Small on purpose: a client that cannot keep up
/// should skip stale snapshots, not queue them.
pub const OUTBOX_CAPACITY: usize = 8;

/// A one-shot, first-reason-wins request to close a connection. Shared by the sim (too slow,
/// server closing) and the connection's own reader (protocol violations); the reader and the
/// writer each wait on it through their own waker slot.
///
/// Lock-free on the hot path: a connection's tasks poll `signal` on every wake-up, so it is an
/// atomic flag plus an `AtomicWaker` per waiter (a `CancellationToken` took a lock per poll).
#[derive(Clone, Debug, Default)]
pub struct Kick {
    inner: Arc<KickInner>,
}

#[derive(Debug, Default)]
struct KickInner {
    /// What the connection's writer measures of its link, for the operator's view of the room.
    link: LinkStats,
    kicked: std::sync::atomic::AtomicBool,
    reason: Mutex<Option<DisconnectReason>>,
    /// Slot 0: the reader; slot 1: the writer.
    wakers: [futures_util::task::AtomicWaker; 2],
}

/// Which of a connection's tasks waits on a [`Kick`].
#[derive(Clone, Copy, Debug)]
pub enum KickWaiter {
    Reader = 0,
    Writer = 1,
}

impl Kick {
    pub fn new() -> Kick {
        Kick::default()
    }

    /// Requests the close. Later reasons are ignored.
    pub fn kick(&self, reason: DisconnectReason) {
        let mut slot = self.inner.reason.lock().expect("kick mutex is never poisoned: no panics while held");
        if slot.is_none() {
            *slot = Some(reason);
            self.inner.kicked.store(true, Ordering::Release);
            for waker in &self.inner.wakers {
                waker.wake();
            }
        }
    }

    /// Completes once kicked. Create it once per task and poll it by reference in loops.
    pub fn signal(&self, waiter: KickWaiter) -> KickSignal<'_> {
        KickSignal { kick: self, slot: waiter as usize }
    }

    pub fn reason(&self) -> Option<DisconnectReason> {
        self.inner.reason.lock().expect("kick mutex is never poisoned").clone()
    }

    pub fn is_kicked(&self) -> bool {
        self.inner.kicked.load(Ordering::Acquire)
    }

    /// The connection's link figures (written by its tasks, read by the room's inspection).
    pub fn link(&self) -> &LinkStats {
        &self.inner.link
    }
}

/// One connection's link as its tasks measure it: the round trip of the server's WebSocket pings
/// and the bytes per second its writer sends. Shared through the connection's [`Kick`].
#[derive(Debug, Default)]
pub struct LinkStats {
    /// Last measured round trip, microseconds (0: none yet).
    pub rtt_us: AtomicU32,
    /// Bytes written since the last rate sample.
    pub window_bytes: AtomicU64,
    /// Bytes per second over the last sample window.
    pub bytes_per_second: AtomicU32,
    /// The payload (send time, µs) of the ping awaiting its pong; 0 when none is.
    pub ping_sent_us: AtomicU64,
}

/// The future returned by [`Kick::signal`].
pub struct KickSignal<'a> {
    kick: &'a Kick,
    slot: usize,
}

impl std::future::Future for KickSignal<'_> {
    type Output = ();

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if self.kick.is_kicked() {
            return std::task::Poll::Ready(());
        }
        self.kick.inner.wakers[self.slot].register(cx.waker());
        // Checked again after registering, so a kick in between is never missed.
        if self.kick.is_kicked() { std::task::Poll::Ready(()) } else { std::task::Poll::Pending }
    }
}
