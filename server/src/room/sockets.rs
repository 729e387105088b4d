//! The sockets a room's task polls itself (see `net::polled`): every socket read once per tick
//! into the room, every outbox written once per tick (a big room's writes spread over a few
//! threads), and the connections that ended handed to the room as `Leave`s.

use shared::protocol::DisconnectReason;
use shared::tick::Tick;
use tokio::time::Instant;

use super::input::{Attachment, SimInput};
use super::state::Room;

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

fn write_each(attached: &mut [Box<dyn Attachment>], now: Instant, tick: Tick) {
    for attached in attached {
        if !attached.kick().is_kicked() {
            attached.write(now, tick);
        }
    }
}

/// The sockets a room's task polls.
#[derive(Default)]
pub struct Sockets {
    attached: Vec<Box<dyn Attachment>>,
}

impl Sockets {
    pub fn attach(&mut self, attached: Box<dyn Attachment>) {
        self.attached.push(attached);
    }

    pub fn len(&self) -> usize {
        self.attached.len()
    }

    pub fn is_empty(&self) -> bool {
        self.attached.is_empty()
    }

    /// Reads every socket (see [`Attachment::read`]).
    pub fn read(&mut self, room: &mut Room) {
        let now = Instant::now();
        for attached in &mut self.attached {
            if !attached.kick().is_kicked() {
                attached.read(now, &mut |input| room.handle(input));
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
        if self.attached.iter().any(|a| a.kick().is_kicked()) {
            let (ended, live): (Vec<_>, Vec<_>) = self.attached.drain(..).partition(|a| a.kick().is_kicked());
            self.attached = live;
            for attached in ended {
                let conn = attached.conn();
                let reason = attached.kick().reason().unwrap_or(DisconnectReason::ConnectionLost);
                drop(attached);
                room.handle(SimInput::Leave { conn, reason });
            }
        }
    }
}
