//! Sending: events to every client, the room's description, and each tick's snapshots (a delta
//! against each client's acknowledged baseline, interest-managed or one shared view, cut to
//! the byte budget); spectators get the whole map.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use shared::bits::BitWriter;
use shared::protocol::{self, DisconnectReason, GameEvent, Leaderboard, OwnState, ServerMsg, SnapshotMsgRef};
use shared::rules::VIEW_HALF_EXTENT;
use shared::snapshot::{NetId, View, encode_delta};
use shared::tick::Tick;
use tokio::time::Instant;

use super::state::{Client, Room};
use crate::net::kick::ConnId;
use crate::sim::world::Rules;
use crate::snapshot::budget::{Budget, Focus};
use crate::snapshot::interest::{Cut, Entry, InterestScene, Sent};
use crate::stats::RoomStats;

/// Undelivered events a client may accumulate before it counts as too slow.
const MAX_PENDING_EVENTS: usize = 2048;

/// Queue depths above this are reported as this (the client only cares about small ones).
const MAX_REPORTED_QUEUE: u8 = 100;

impl Room {
    /// Queues `bytes` for `conn` (a player or a spectator) now, ahead of its next snapshot; a
    /// client whose outbox is full is too slow to follow and is closed as such.
    pub(super) fn send_now(&mut self, conn: ConnId, bytes: Vec<u8>) {
        let (outbox, kick) = match (self.clients.get(&conn), self.spectators.get(&conn)) {
            (Some(client), _) => (&client.outbox, &client.kick),
            (None, Some(spectator)) => (&spectator.outbox, &spectator.kick),
            (None, None) => return,
        };
        if outbox.try_send(bytes).is_err() {
            kick.kick(DisconnectReason::TooSlow);
        }
    }

    pub(super) fn distribute_events(&mut self) {
        if self.world.events.is_empty() {
            return;
        }
        for client in self.clients.values_mut() {
            client.pending_events.extend(self.world.events.iter().cloned());
            if client.pending_events.len() > MAX_PENDING_EVENTS {
                client.pending_events.clear();
                client.kick.kick(DisconnectReason::TooSlow);
            }
        }
        for spectator in self.spectators.values_mut() {
            spectator.pending_events.extend(self.world.events.iter().cloned());
            if spectator.pending_events.len() > MAX_PENDING_EVENTS {
                spectator.pending_events.clear();
                spectator.kick.kick(DisconnectReason::TooSlow);
            }
        }
        self.world.events.clear();
    }

    /// Sends the room's new description to every client that has not had it yet.
    pub(super) fn send_room_updates(&mut self) {
        let conns: Vec<ConnId> = self
            .clients
            .iter()
            .filter(|(_, c)| c.room_pending)
            .map(|(c, _)| *c)
            .chain(self.spectators.iter().filter(|(_, s)| s.room_pending).map(|(c, _)| *c))
            .collect();
        for conn in conns {
            let message = protocol::encode(&ServerMsg::Room(Box::new(self.room_info_for(conn))));
            let sent = match (self.clients.get(&conn), self.spectators.get(&conn)) {
                (Some(client), _) => client.outbox.try_send(message).is_ok(),
                (None, Some(spectator)) => spectator.outbox.try_send(message).is_ok(),
                (None, None) => continue,
            };
            if sent {
                if let Some(client) = self.clients.get_mut(&conn) {
                    client.room_pending = false;
                } else if let Some(spectator) = self.spectators.get_mut(&conn) {
                    spectator.room_pending = false;
                }
            }
        }
    }

    /// Snapshots for spectators: the whole map, no own player.
    pub(super) fn send_spectator_snapshots(&mut self, too_slow_after: u32) {
        if self.spectators.is_empty() {
            return;
        }
        let mut all = View { entities: Vec::with_capacity(self.scene.len()) };
        self.scene.view_all(&mut all);
        let all = Arc::new(all);
        let tick = self.world.tick;
        let center = glam::Vec2::new(self.world.map.width, self.world.map.height) / 2.0;
        for spectator in self.spectators.values_mut() {
            if spectator.kick.is_kicked() {
                continue;
            }
            let baseline = spectator.baselines.baseline();
            let base = baseline.map(|(_, view)| &**view);
            encode_delta(tick, base, &all, &mut self.writer);
            let limit = self.config.snapshot_budget_bytes.map(|b| b as usize);
            let encode = |delta: &[u8], events: usize, with_leaderboard: bool, budget_limited: bool| {
                let message = SnapshotMsgRef {
                    tick,
                    baseline: baseline.map(|(tick, _)| tick),
                    input_ack: 0,
                    input_queue: 0,
                    own: None,
                    delta,
                    events: &spectator.pending_events[..events],
                    leaderboard: with_leaderboard.then_some(&self.leaderboard),
                    budget_limited,
                };
                let mut bytes = Vec::with_capacity(delta.len() + 64);
                protocol::encode_snapshot_into(message, &mut bytes);
                bytes
            };
            let delta = self.writer.finish();
            let (mut event_count, mut with_leaderboard) =
                (spectator.pending_events.len(), spectator.leaderboard_pending);
            let mut bytes = encode(delta, event_count, with_leaderboard, false);
            let mut view = all.clone();
            // Spectators see the whole map: the budget matters most here.
            if let Some(limit) = limit {
                if bytes.len() > limit {
                    (event_count, with_leaderboard) = extras_within(
                        &spectator.pending_events,
                        spectator.leaderboard_pending,
                        &self.leaderboard,
                        limit,
                    );
                    bytes = encode(delta, event_count, with_leaderboard, false);
                }
                if bytes.len() > limit {
                    let overhead = bytes.len() - delta.len();
                    let focus = Focus { pos: center, own: NetId(0) };
                    let fitted = fit_to_budget(
                        &mut spectator.budget,
                        tick,
                        base,
                        spectator.baselines.newest().map(|view| &**view),
                        &all,
                        focus,
                        limit,
                        overhead,
                        &mut self.writer,
                        &self.stats,
                    );
                    bytes = encode(self.writer.finish(), event_count, with_leaderboard, true);
                    if bytes.len() > limit {
                        self.stats.snapshots_over_budget.fetch_add(1, Ordering::Relaxed);
                    }
                    view = Arc::new(fitted);
                } else {
                    spectator.budget.sent_everything();
                }
            }
            let size = bytes.len() as u64;
            if spectator.outbox.try_send(bytes).is_ok() {
                spectator.baselines.record(tick, view.clone());
                spectator.pending_events.drain(..event_count);
                spectator.leaderboard_pending &= !with_leaderboard;
                spectator.skipped = 0;
                self.stats.snapshots_sent.fetch_add(1, Ordering::Relaxed);
                self.stats.snapshot_bytes.fetch_add(size, Ordering::Relaxed);
            } else {
                spectator.skipped += 1;
                self.stats.snapshots_skipped.fetch_add(1, Ordering::Relaxed);
                if spectator.skipped > too_slow_after {
                    spectator.kick.kick(DisconnectReason::TooSlow);
                }
            }
        }
    }

    /// Builds and queues one snapshot for every client.
    ///
    /// Without interest management every client gets the same view: it is built once, shared
    /// (`Arc`) as everyone's baseline, and each distinct (baseline → view) delta is encoded once
    /// per round and reused for every client that acknowledged the same baseline.
    pub fn send_snapshots(&mut self) {
        self.send_room_updates();
        if let Some(leaderboard) = self.world.refresh_leaderboard() {
            self.leaderboard = leaderboard;
            for client in self.clients.values_mut() {
                client.leaderboard_pending = true;
            }
            for spectator in self.spectators.values_mut() {
                spectator.leaderboard_pending = true;
            }
        }
        let flash_ticks = self.config.ticks_per_snapshot();
        if !self.config.interest || !self.spectators.is_empty() {
            self.scene.rebuild(&self.world, flash_ticks);
        }
        if self.config.interest {
            self.interest.sync(&mut self.world, flash_ticks);
        }
        let tick = self.world.tick;
        let too_slow_after =
            (self.config.slow_client_timeout.as_secs_f32() * f32::from(self.config.snapshot_hz)).ceil() as u32;
        let shared_view = (!self.config.interest).then(|| {
            let mut view = View { entities: Vec::with_capacity(self.scene.len()) };
            self.scene.view_all(&mut view);
            Arc::new(view)
        });
        self.delta_cache.clear();
        let now = Instant::now();
        // Players whose queue depth went out: the next report covers the ticks after this one.
        let mut reported = Vec::with_capacity(self.clients.len());
        // Interest-managed clients go in order of where they stand (a Z-order curve over the
        // map), so neighbours, whose views share most cells, come one after the other while
        // those cells are still in the cache (about 9 % off a 1,000-player round).
        let mut order: Vec<(u32, &mut Client)> = self
            .clients
            .values_mut()
            .map(|client| {
                let key = match (self.config.interest, self.world.players.get(client.player)) {
                    (true, Some(player)) => z_order(player.pos),
                    _ => 0,
                };
                (key, client)
            })
            .collect();
        if self.config.interest {
            order.sort_unstable_by_key(|(key, _)| *key);
        }
        for (_, client) in order {
            if client.kick.is_kicked() {
                continue;
            }
            let Some(player) = self.world.players.get(client.player) else { continue };
            // S1 keeps only the latest input (no queue): report a depth in the pacer's band.
            let queue_low = if self.config.rules == Rules::S1 { 1 } else { player.queue_low };
            // The view to send (as it will be kept) and its delta from the client's baseline:
            // from this round's cache or `self.writer`.
            let (mut sent, baseline_tick, cached) = match &shared_view {
                Some(view) => {
                    let baseline = match client.baselines.baseline() {
                        Some((tick, Sent::View(view))) => Some((tick, view)),
                        _ => None,
                    };
                    // Each distinct baseline → view delta is encoded once per round.
                    let cache_key = baseline.map(|(tick, view)| (tick, Arc::as_ptr(view) as usize));
                    let index = match self.delta_cache.iter().position(|(key, _)| *key == cache_key) {
                        Some(index) => index,
                        None => {
                            encode_delta(tick, baseline.map(|(_, view)| &**view), view, &mut self.writer);
                            self.delta_cache.push((cache_key, self.writer.finish().to_vec()));
                            self.delta_cache.len() - 1
                        }
                    };
                    (Sent::View(view.clone()), baseline.map(|(tick, _)| tick), Some(index))
                }
                None => {
                    let cut = self.interest.cut(player.pos, VIEW_HALF_EXTENT);
                    let baseline_tick = encode_cut(
                        &self.interest,
                        client.baselines.baseline(),
                        &cut,
                        &mut self.entries,
                        &mut self.writer,
                    );
                    (Sent::Cut(Arc::new(cut)), baseline_tick, None)
                }
            };
            let own = OwnState {
                pos: player.pos,
                vel: player.vel,
                hp: player.hp,
                alive: player.alive,
                respawn_tick: (!player.alive).then_some(player.respawn_at),
                fire_cooldown: player.fire_cooldown.min(u32::from(u16::MAX)) as u16,
                score: player.score,
                rank: player.rank,
            };
            let delta: &[u8] = match cached {
                Some(index) => &self.delta_cache[index].1,
                None => self.writer.finish(),
            };
            let limit = self.config.snapshot_budget_bytes.map(|b| b as usize);
            let encode = |delta: &[u8], events: usize, with_leaderboard: bool, budget_limited: bool| {
                let message = SnapshotMsgRef {
                    tick,
                    baseline: baseline_tick,
                    input_ack: player.last_applied_seq,
                    input_queue: queue_low.min(MAX_REPORTED_QUEUE),
                    own: Some(own),
                    delta,
                    events: &client.pending_events[..events],
                    leaderboard: with_leaderboard.then_some(&self.leaderboard),
                    budget_limited,
                };
                let mut bytes = Vec::with_capacity(delta.len() + 64);
                protocol::encode_snapshot_into(message, &mut bytes);
                bytes
            };
            let (mut event_count, mut with_leaderboard) = (client.pending_events.len(), client.leaderboard_pending);
            let mut bytes = encode(delta, event_count, with_leaderboard, false);
            if let Some(limit) = limit {
                if bytes.len() > limit {
                    // Over: events and the leaderboard get at most half (the rest wait), the
                    // entities what is left.
                    (event_count, with_leaderboard) =
                        extras_within(&client.pending_events, client.leaderboard_pending, &self.leaderboard, limit);
                    bytes = encode(delta, event_count, with_leaderboard, false);
                }
                if bytes.len() > limit {
                    let overhead = bytes.len() - delta.len();
                    let focus = Focus { pos: player.pos, own: player.net_id };
                    // The budget weighs whole views: the kept ones are rebuilt from their cuts.
                    let whole = |sent: &Sent| self.interest.whole(sent);
                    let baseline = baseline_tick.and_then(|_| client.baselines.baseline()).and_then(|(_, b)| whole(b));
                    // (When the newest is the baseline, the budget reads the baseline.)
                    let newest = match client.baselines.newest_tick() {
                        Some(newest) if Some(newest) == baseline_tick => None,
                        _ => client.baselines.newest().and_then(whole),
                    };
                    let view = whole(&sent).expect("a cut of this round is usable");
                    let fitted = fit_to_budget(
                        &mut client.budget,
                        tick,
                        baseline.as_deref(),
                        newest.as_deref(),
                        &view,
                        focus,
                        limit,
                        overhead,
                        &mut self.writer,
                        &self.stats,
                    );
                    bytes = encode(self.writer.finish(), event_count, with_leaderboard, true);
                    if bytes.len() > limit {
                        self.stats.snapshots_over_budget.fetch_add(1, Ordering::Relaxed);
                    }
                    sent = Sent::View(Arc::new(fitted));
                } else {
                    client.budget.sent_everything();
                }
            }
            let size = bytes.len() as u64;
            match client.outbox.try_send(bytes) {
                Ok(()) => {
                    reported.push(client.player);
                    client.baselines.record(tick, sent);
                    client.pending_events.drain(..event_count);
                    client.leaderboard_pending &= !with_leaderboard;
                    client.skipped = 0;
                    if let Some((seq, received)) = client.latency_probe
                        && player.last_applied_seq >= seq
                    {
                        self.stats.input_ack_latency.record(now.saturating_duration_since(received));
                        client.latency_probe = None;
                    }
                    self.stats.snapshots_sent.fetch_add(1, Ordering::Relaxed);
                    self.stats.snapshot_bytes.fetch_add(size, Ordering::Relaxed);
                }
                Err(_) => {
                    // Full or closed: the events stay pending for the next snapshot; the next
                    // delta is still taken against what the client acknowledged, so skipping is
                    // safe.
                    client.skipped += 1;
                    self.stats.snapshots_skipped.fetch_add(1, Ordering::Relaxed);
                    if client.skipped > too_slow_after {
                        client.kick.kick(DisconnectReason::TooSlow);
                    }
                }
            }
        }
        for key in reported {
            if let Some(player) = self.world.players.get_mut(key) {
                player.queue_low = u8::MAX;
            }
        }
        self.send_spectator_snapshots(too_slow_after);
    }
}

/// How many of the pending `events` (in order) and whether the pending leaderboard go in a
/// snapshot limited to `limit` bytes: at most half of it, so entities always get the other half;
/// the rest wait for the next snapshot. At least one event goes, so no event blocks the queue.
fn extras_within(
    events: &[GameEvent],
    leaderboard_pending: bool,
    leaderboard: &Leaderboard,
    limit: usize,
) -> (usize, bool) {
    let mut room = limit / 2;
    let mut count = 0;
    for event in events {
        let size = protocol::encode(event).len();
        if size > room && count > 0 {
            break;
        }
        room = room.saturating_sub(size);
        count += 1;
    }
    let with_leaderboard = leaderboard_pending && count == events.len() && protocol::encode(leaderboard).len() <= room;
    (count, with_leaderboard)
}

/// Where `pos` falls on a Z-order (Morton) curve over 256-unit cells: nearby positions get
/// nearby keys.
fn z_order(pos: glam::Vec2) -> u32 {
    let spread = |v: f32| {
        let mut v = u32::from((v / 256.0).clamp(0.0, 65_535.0) as u16);
        v = (v | (v << 8)) & 0x00ff_00ff;
        v = (v | (v << 4)) & 0x0f0f_0f0f;
        v = (v | (v << 2)) & 0x3333_3333;
        (v | (v << 1)) & 0x5555_5555
    };
    spread(pos.x) | (spread(pos.y) << 1)
}

/// Interest-managed: encodes into `writer` the delta from the client's `baseline` to `current`
/// (a cut of this round) and returns the baseline's tick, or a full snapshot and `None` when the
/// baseline can no longer be read. A cut baseline takes the fast path ([`InterestScene::delta`]);
/// debug builds check its bytes against `encode_delta` of the whole views.
fn encode_cut(
    interest: &InterestScene,
    baseline: Option<(Tick, &Sent)>,
    current: &Cut,
    entries: &mut Vec<(NetId, Entry)>,
    writer: &mut BitWriter,
) -> Option<Tick> {
    let tick = interest.tick;
    let whole_current = || {
        let mut view = View::default();
        interest.materialize(current, &mut view);
        view
    };
    match baseline {
        Some((base_tick, Sent::Cut(base))) if interest.encode(base, current, entries, writer) => {
            #[cfg(debug_assertions)]
            {
                let mut base_view = View::default();
                assert!(interest.materialize(base, &mut base_view), "a usable cut materializes");
                let mut reference = BitWriter::new();
                encode_delta(tick, Some(&base_view), &whole_current(), &mut reference);
                assert_eq!(writer.finish(), reference.finish(), "fast delta differs from the reference at {tick}");
            }
            Some(base_tick)
        }
        Some((base_tick, Sent::View(base))) => {
            encode_delta(tick, Some(base), &whole_current(), writer);
            Some(base_tick)
        }
        _ => {
            encode_delta(tick, None, &whole_current(), writer);
            None
        }
    }
}

/// Fits one snapshot's view into `limit` bytes whose fixed part (everything but the delta) takes
/// `overhead`: returns the view the client will hold, with its delta encoded into `writer`.
#[allow(clippy::too_many_arguments)]
fn fit_to_budget(
    budget: &mut Budget,
    tick: Tick,
    baseline: Option<&View>,
    newest_sent: Option<&View>,
    view: &View,
    focus: Focus,
    limit: usize,
    overhead: usize,
    writer: &mut BitWriter,
    stats: &RoomStats,
) -> View {
    // Two bytes of slack: the delta's length prefix grows from one byte to three past 250.
    let bits = limit.saturating_sub(overhead + 2) * 8;
    let mut fitted = View { entities: Vec::with_capacity(view.len()) };
    let outcome = budget.fit(tick, baseline, newest_sent, view, focus, bits, &mut fitted);
    encode_delta(tick, baseline, &fitted, writer);
    stats.snapshots_budget_limited.fetch_add(1, Ordering::Relaxed);
    stats.budget_deferred_entities.fetch_add(u64::from(outcome.deferred), Ordering::Relaxed);
    fitted
}
