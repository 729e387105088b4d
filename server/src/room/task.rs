//! The task that runs a room: the fixed-timestep loop (bounded catch-up, no ticks while empty,
//! idle close, drain), the sockets it polls itself, and the lazy start of a room nobody has
//! joined yet. Connection tasks talk to it only through [`SimInput`]; it talks back only with
//! `try_send` into each client's bounded outbox and by [`Kick`], so it never waits on a client.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use shared::protocol::DisconnectReason;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::input::SimInput;
use super::operate::unused_detail;
use super::ops::{RoomAnswer, RoomOp};
use super::public::{Drain, RoomPublic};
use super::sockets::Sockets;
use super::state::Room;
use crate::stats::unix_ms;

/// Most ticks the loop runs back to back to catch up after a stall; beyond that it drops time.
pub const MAX_CATCH_UP_TICKS: u32 = 4;

/// Runs the room until `cancel` fires (then every client is asked to close with
/// [`DisconnectReason::ServerClosing`]) or, unless the room is permanent, until it has been empty
/// for `config.room_idle` (then joins still queued are refused with
/// [`DisconnectReason::RoomClosed`]).
pub async fn run(mut room: Room, mut inbox: mpsc::Receiver<SimInput>, cancel: CancellationToken) {
    let config = room.config.clone();
    let stats = room.stats.clone();
    let period = Duration::from_secs_f64(1.0 / f64::from(config.tick_hz));
    let ticks_per_snapshot = config.ticks_per_snapshot();
    // A hand-rolled deadline instead of `tokio::time::interval`: after a stall we run at most
    // MAX_CATCH_UP_TICKS ticks back to back and then drop the rest of the debt (and count it),
    // so a long pause never turns into a burst of hundreds of ticks (no spiral of death).
    let mut next_tick = Instant::now() + period;
    let mut pending = Vec::new();
    // Set when the room becomes empty; refused joins do not push it back.
    let mut empty_since: Option<Instant> = None;
    let drain = room.setup.drain.clone();
    // The sockets of this room's plain-TCP players, read and written here once per tick. Dropped
    // (however this function ends, a panic included), each says goodbye with its reason.
    let mut sockets = Sockets::default();
    loop {
        if room.is_empty() {
            // Draining: an empty room has finished its match.
            if drain.is_draining() {
                info!(room = %room.code(), "room closed: empty while the server drains");
                refuse_queued_joins(&mut inbox);
                room.finish_recording();
                return;
            }
            // Nobody here: no ticks at all (the world, bots included, is paused), just wait for
            // a join, the idle deadline, the drain or shutdown. An empty room costs no CPU.
            if empty_since.is_none() {
                // The last ticks recorded go to disk now, not when someone next joins.
                room.flush_recording();
            }
            let idle_deadline = *empty_since.get_or_insert_with(Instant::now) + config.room_idle;
            let permanent = room.is_permanent();
            let message = tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                _ = drain.started.cancelled() => continue,
                message = inbox.recv() => message,
                _ = tokio::time::sleep_until(idle_deadline), if !permanent => {
                    info!(room = %room.code(), idle_s = config.room_idle.as_secs(), "room closed after being empty");
                    refuse_queued_joins(&mut inbox);
                    room.close_all(DisconnectReason::RoomClosed);
                    room.finish_recording();
                    return;
                }
            };
            let Some(message) = message else { break };
            dispatch(&mut room, &mut sockets, message);
            // A connection ended while the room is empty (a seat taken over, its join undone)
            // is closed now, not when someone next joins.
            if !sockets.is_empty() {
                sockets.write(&mut room);
                stats.polled_sockets.store(sockets.len() as u32, Ordering::Relaxed);
            }
            if room.closed_by_operator {
                refuse_queued_joins(&mut inbox);
                room.finish_recording();
                return;
            }
            next_tick = Instant::now() + period;
            continue;
        }
        empty_since = None;
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep_until(next_tick) => {}
        }
        let started = Instant::now();
        // Drain everything the connections sent since the last tick.
        while let Ok(input) = inbox.try_recv() {
            pending.push(input);
        }
        for input in pending.drain(..) {
            dispatch(&mut room, &mut sockets, input);
        }
        let reading = Instant::now();
        sockets.read(&mut room);
        let mut io = reading.elapsed();
        if room.closed_by_operator {
            refuse_queued_joins(&mut inbox);
            room.finish_recording();
            return;
        }
        let mut ran = 0;
        let mut snapshot_due = false;
        while next_tick <= started && ran < MAX_CATCH_UP_TICKS {
            room.step();
            snapshot_due |= room.world.tick.0.is_multiple_of(ticks_per_snapshot);
            next_tick += period;
            ran += 1;
        }
        if next_tick <= started {
            let behind = ((started - next_tick).as_secs_f64() / period.as_secs_f64()) as u64 + 1;
            stats.ticks_dropped.fetch_add(behind, Ordering::Relaxed);
            warn!(room = %room.code(), ticks_dropped = behind, tick = %room.world.tick, "tick loop fell behind; dropping time");
            next_tick = started + period;
        }
        if snapshot_due {
            room.send_snapshots();
        }
        let writing = Instant::now();
        sockets.write(&mut room);
        io += writing.elapsed();
        stats.polled_sockets.store(sockets.len() as u32, Ordering::Relaxed);
        let took = started.elapsed().saturating_sub(io);
        stats.last_tick_us.store(took.as_micros() as u64, Ordering::Relaxed);
        stats.last_tick_unix_ms.store(unix_ms(), Ordering::Relaxed);
        if room.drain_step() {
            info!(room = %room.code(), "room closed: empty while the server drains");
            refuse_queued_joins(&mut inbox);
            room.finish_recording();
            return;
        }
        if ran > 0 {
            stats.tick_time.record(took);
        }
        if !sockets.is_empty() {
            stats.socket_io_time.record(io);
        }
    }
    room.close_all(DisconnectReason::ServerClosing);
    drop(sockets);
    stats.polled_sockets.store(0, Ordering::Relaxed);
    room.finish_recording();
    info!(room = %room.code(), tick = %room.world.tick, "room stopped");
}

/// Hands a socket to the poller and everything else to the room.
fn dispatch(room: &mut Room, sockets: &mut Sockets, input: SimInput) {
    match input {
        SimInput::Attach(attached) => sockets.attach(attached),
        other => room.handle(other),
    }
}

/// Runs a room that is built only when its first message (a join) arrives: until then an unused
/// room is just its handle and its summary (no world, no scene), so a thousand rooms created and
/// never joined cost almost no memory. Closes unused after `idle`, like an empty room.
pub async fn run_when_used(
    make: impl FnOnce() -> Room,
    public: Arc<RoomPublic>,
    idle: Duration,
    mut inbox: mpsc::Receiver<SimInput>,
    cancel: CancellationToken,
    drain: Arc<Drain>,
) {
    let code = public.code;
    let idle_deadline = Instant::now() + idle;
    let first = loop {
        let message = tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            _ = drain.started.cancelled() => {
                refuse_queued_joins(&mut inbox);
                return;
            }
            message = inbox.recv() => message,
            _ = tokio::time::sleep_until(idle_deadline) => {
                info!(room = %code, idle_s = idle.as_secs(), "room closed: nobody joined");
                refuse_queued_joins(&mut inbox);
                return;
            }
        };
        // The operator looking at (or closing) a room nobody joined does not build it.
        match message {
            Some(SimInput::Admin { op: RoomOp::Inspect, reply }) => {
                let _ = reply.send(Ok(RoomAnswer::Detail(Box::new(unused_detail(&public)))));
            }
            Some(SimInput::Admin { op: RoomOp::Close { .. }, reply }) => {
                info!(room = %code, "room closed by the operator before anyone joined");
                let _ = reply.send(Ok(RoomAnswer::Done { done: format!("closed room {code}") }));
                refuse_queued_joins(&mut inbox);
                return;
            }
            Some(SimInput::Admin { op: RoomOp::KickAddress { .. } | RoomOp::Notice { .. }, reply }) => {
                let _ = reply.send(Ok(RoomAnswer::Done { done: "closed 0 connection(s)".to_string() }));
            }
            Some(SimInput::Admin { op: RoomOp::Kick { player, .. }, reply }) => {
                let _ = reply.send(Err(format!("no player {} in room {code}", player.0)));
            }
            Some(other) => break other,
            None => return,
        }
    };
    let mut room = make();
    room.handle(first);
    if room.closed_by_operator {
        refuse_queued_joins(&mut inbox);
        return;
    }
    // Boxed, so the waiting state above stays small (the running room's future is large).
    Box::pin(run(room, inbox, cancel)).await;
}

/// Closes the inbox and answers every join still queued in it with "room closed", so a join
/// racing the room's close never hangs and never lands in a dead room.
fn refuse_queued_joins(inbox: &mut mpsc::Receiver<SimInput>) {
    inbox.close();
    while let Ok(message) = inbox.try_recv() {
        if let SimInput::Join { reply, .. } = message {
            let _ = reply.send(Err(DisconnectReason::RoomClosed));
        }
    }
}
