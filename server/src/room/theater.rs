//! Spectating a replay (`arena-server replay serve FILE`): this task takes the room's place. It
//! re-simulates the recording in real time (or paused, or 0.25x–8x, with seeking) and streams the
//! same delta snapshots players get to every connected spectator.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use shared::bits::BitWriter;
use shared::protocol::{
    self, DisconnectReason, GameEvent, Leaderboard, REPLAY_SPEEDS, ReplayStatus, ServerMsg, SnapshotMsg, Welcome,
};
use shared::snapshot::{NetId, View, encode_delta};
use shared::tick::Tick;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::input::SimInput;
use super::public::RoomPublic;
use crate::config::ServerConfig;
use crate::net::kick::{ConnId, Kick, Outbox};
use crate::replay::format::ReplayFile;
use crate::replay::sim::Resim;
use crate::snapshot::{Baselines, Scene};
use crate::stats::RoomStats;

/// Most simulation ticks run per real tick (8x speed).
const MAX_STEPS_PER_TICK: u32 = 8;
/// A seek re-simulates at most this many ticks per real tick, and for at most
/// [`SEEK_BUDGET`] of it, then goes on at the next tick: a seek (or a spectator sending seeks
/// over and over) never stalls the tick, whatever the recording's length.
pub const MAX_SEEK_STEPS_PER_TICK: u32 = 2048;
const SEEK_BUDGET: std::time::Duration = std::time::Duration::from_millis(4);

struct Spectator {
    outbox: Outbox,
    kick: Kick,
    ip: Option<std::net::IpAddr>,
    baselines: Baselines,
    pending_events: Vec<GameEvent>,
    /// The playback status must reach the client before its next snapshot.
    status_pending: bool,
    leaderboard_pending: bool,
    /// Last snapshot tick sent (snapshots go out only when the world moved).
    last_sent: Option<Tick>,
}

/// The replay being played and its audience.
pub struct Theater {
    file: Arc<ReplayFile>,
    resim: Resim,
    next_record: usize,
    paused: bool,
    speed: f32,
    epoch: u32,
    /// Fractional simulation ticks owed at slow speeds.
    owed: f32,
    spectators: BTreeMap<ConnId, Spectator>,
    scene: Scene,
    writer: BitWriter,
    leaderboard: Leaderboard,
    config: Arc<ServerConfig>,
    /// Where the lobby reads this room's summary (spectator count).
    public: Option<Arc<RoomPublic>>,
    /// The tick a seek is on its way to; playback and snapshots wait for it.
    seeking: Option<u32>,
}

impl Theater {
    pub fn new(file: Arc<ReplayFile>, config: Arc<ServerConfig>) -> Result<Theater, String> {
        let mut resim = Resim::new(&file.header)?;
        resim.keep_events = true;
        Ok(Theater {
            scene: Scene::new(),
            file,
            resim,
            next_record: 0,
            paused: false,
            speed: 1.0,
            epoch: 0,
            owed: 0.0,
            spectators: BTreeMap::new(),
            writer: BitWriter::new(),
            leaderboard: Leaderboard::default(),
            public: None,
            seeking: None,
            config,
        })
    }

    pub fn total_ticks(&self) -> u32 {
        self.file.records.last().map_or(0, |r| r.tick)
    }

    pub fn status(&self) -> ReplayStatus {
        ReplayStatus {
            tick: self.resim.world.tick,
            total_ticks: self.total_ticks(),
            paused: self.paused,
            speed: self.speed,
            epoch: self.epoch,
        }
    }

    /// Advances one simulation tick; false at the end of the recording.
    fn advance(&mut self) -> bool {
        let Some(record) = self.file.records.get(self.next_record) else { return false };
        if record.tick == self.resim.world.tick.next().0 {
            if let Err(divergence) = self.resim.apply(record) {
                warn!(%divergence, "replay diverged; playback stops here");
                self.next_record = self.file.records.len();
                return false;
            }
            self.next_record += 1;
        } else {
            self.resim.world.step();
        }
        true
    }

    /// Starts a jump to `target` (from the start when going back); [`Theater::tick`] carries
    /// it out a slice at a time.
    fn seek(&mut self, target: u32) {
        let target = target.min(self.total_ticks());
        if target < self.resim.world.tick.0 {
            match Resim::new(&self.file.header) {
                Ok(resim) => {
                    self.resim = resim;
                    self.next_record = 0;
                }
                Err(error) => {
                    warn!(%error, "cannot restart the replay");
                    return;
                }
            }
        }
        // What happens on the way is not shown.
        self.resim.keep_events = false;
        self.resim.world.events.clear();
        self.seeking = Some(target);
    }

    /// One slice of the seek in progress; the seek ends when the target is reached.
    fn seek_slice(&mut self) {
        let Some(target) = self.seeking else { return };
        let started = std::time::Instant::now();
        let mut steps = 0;
        let mut reached = self.resim.world.tick.0 >= target;
        while !reached && steps < MAX_SEEK_STEPS_PER_TICK {
            reached = !self.advance() || self.resim.world.tick.0 >= target;
            steps += 1;
            if steps % 16 == 0 && started.elapsed() >= SEEK_BUDGET {
                break;
            }
        }
        self.resim.world.events.clear();
        if !reached {
            return;
        }
        self.seeking = None;
        self.resim.keep_events = true;
        self.epoch += 1;
        for spectator in self.spectators.values_mut() {
            spectator.baselines.reset();
            spectator.pending_events.clear();
            spectator.last_sent = None;
        }
        self.mark_status();
    }

    /// The replay room as a spectator sees it: permanent, public, nobody's to host.
    fn room_info(&self) -> shared::room::RoomInfo {
        shared::room::RoomInfo {
            code: self.public.as_ref().map_or(shared::room::RoomCode::from_indices([0; 4]), |p| p.code),
            name: "Replay".to_string(),
            public: true,
            locked: false,
            map_id: self.file.header.map.id.clone(),
            max_players: 0,
            bots: 0,
            host: None,
            you_are_host: false,
            host_key: None,
            maps: Vec::new(),
            permanent: true,
            rounds: shared::room::RoundRules::ENDLESS,
            round: 1,
            round_ends_at: None,
        }
    }

    fn publish(&self) {
        if let Some(public) = &self.public {
            let mut summary = public.summary.lock().expect("summary lock is never poisoned");
            summary.spectators = self.spectators.len() as u16;
            // Everyone here watches; quick play may always lead here.
            summary.players = 0;
        }
    }

    fn mark_status(&mut self) {
        for spectator in self.spectators.values_mut() {
            spectator.status_pending = true;
        }
    }

    pub fn handle(&mut self, input: SimInput) {
        match input {
            SimInput::Join { conn, outbox, kick, reply, ip, .. } => {
                let roster = self.resim.world.roster();
                let welcome = ServerMsg::Welcome(Box::new(Welcome {
                    player_id: NetId(0),
                    resume_token: 0,
                    tick_rate: self.file.header.tick_hz,
                    snapshot_rate: self.config.snapshot_hz,
                    server_tick: self.resim.world.tick,
                    map_id: self.file.header.map.id.clone(),
                    map: self.file.header.map.clone(),
                    roster,
                    max_players: self.config.max_players,
                    replay: Some(self.status()),
                    room: self.room_info(),
                    spectator: true,
                    snapshot_budget_bytes: None,
                    player: None,
                    seat_hold_ms: 0,
                }));
                if reply.send(Ok(protocol::encode(&welcome))).is_ok() {
                    info!(conn = conn.0, "spectator joined");
                    self.spectators.insert(
                        conn,
                        Spectator {
                            outbox,
                            kick,
                            ip,
                            baselines: Baselines::new(),
                            pending_events: Vec::new(),
                            status_pending: false,
                            leaderboard_pending: true,
                            last_sent: None,
                        },
                    );
                }
            }
            SimInput::Ack { conn, tick }
            | SimInput::Input { conn, cmd: shared::protocol::InputCmd { ack: tick, .. }, .. } => {
                if let Some(spectator) = self.spectators.get_mut(&conn) {
                    spectator.baselines.ack(tick);
                }
            }
            SimInput::ReplayControl { paused, speed, seek, .. } => {
                self.paused = paused;
                self.speed = speed.clamp(*REPLAY_SPEEDS.start(), *REPLAY_SPEEDS.end());
                if let Some(target) = seek {
                    self.seek(target.0);
                }
                self.mark_status();
            }
            SimInput::Leave { conn, reason } => {
                self.spectators.remove(&conn);
                info!(conn = conn.0, %reason, "spectator left");
            }
            SimInput::Chat { .. } => {} // Spectators watch; they do not talk into a recording.
            SimInput::Host { conn, .. } => {
                // A recording has no host.
                if let Some(spectator) = self.spectators.get(&conn) {
                    spectator.kick.kick(DisconnectReason::NotAllowed);
                }
            }
            SimInput::Admin { op, reply } => {
                use super::ops::{RoomAnswer, RoomDetail, RoomOp, SpectatorDetail, rtt_ms};
                let answer = match op {
                    RoomOp::Inspect => Ok(RoomAnswer::Detail(Box::new(RoomDetail {
                        code: self.room_info().code.to_string(),
                        name: self.room_info().name,
                        map: self.file.header.map.id.clone(),
                        public: true,
                        locked: false,
                        permanent: true,
                        replay: true,
                        tick: self.resim.world.tick.0,
                        tick_p99_ms: 0.0,
                        bots: 0,
                        max_players: 0,
                        players: Vec::new(),
                        spectators: self
                            .spectators
                            .values()
                            .map(|s| SpectatorDetail {
                                ip: s.ip.map(|ip| ip.to_string()),
                                rtt_ms: rtt_ms(s.kick.link().rtt_us.load(std::sync::atomic::Ordering::Relaxed)),
                                bytes_per_second: s
                                    .kick
                                    .link()
                                    .bytes_per_second
                                    .load(std::sync::atomic::Ordering::Relaxed),
                            })
                            .collect(),
                    }))),
                    RoomOp::KickAddress { ip } => {
                        let key = crate::rate::address_key(ip);
                        let mut closed = 0;
                        for spectator in self.spectators.values() {
                            if spectator.ip.is_some_and(|other| crate::rate::address_key(other) == key) {
                                spectator.kick.kick(DisconnectReason::Banned);
                                closed += 1;
                            }
                        }
                        Ok(RoomAnswer::Done { done: format!("closed {closed} connection(s)") })
                    }
                    _ => {
                        Err("a replay being watched can only be inspected (and its banned viewers closed)".to_string())
                    }
                };
                let _ = reply.send(answer);
            }
            SimInput::Crash => panic!("replay room was asked to crash (panic containment test)"),
            SimInput::Attach(attached) => drop(attached),
        }
    }

    /// One real-time tick: advance playback by the speed, then hand events to spectators.
    pub fn tick(&mut self) {
        if self.seeking.is_some() {
            self.seek_slice();
            return;
        }
        if !self.paused {
            self.owed += self.speed;
            let mut steps = 0;
            while self.owed >= 1.0 && steps < MAX_STEPS_PER_TICK {
                self.owed -= 1.0;
                steps += 1;
                if !self.advance() {
                    self.paused = true;
                    self.owed = 0.0;
                    self.mark_status();
                    break;
                }
            }
        }
        if !self.resim.world.events.is_empty() {
            for spectator in self.spectators.values_mut() {
                spectator.pending_events.extend(self.resim.world.events.iter().cloned());
            }
            self.resim.world.events.clear();
        }
    }

    /// Sends each spectator its playback status (when changed) and a snapshot (when the world
    /// moved since the last one it got).
    pub fn send(&mut self, stats: &RoomStats) {
        if self.seeking.is_some() {
            return; // The world is on its way to the seek's target: nothing to show yet.
        }
        if let Some(board) = self.resim.world.refresh_leaderboard() {
            self.leaderboard = board;
            for spectator in self.spectators.values_mut() {
                spectator.leaderboard_pending = true;
            }
        }
        let tick = self.resim.world.tick;
        let status = self.status();
        let mut view: Option<Arc<View>> = None;
        for spectator in self.spectators.values_mut() {
            if spectator.status_pending {
                if spectator.outbox.try_send(protocol::encode(&ServerMsg::ReplayStatus(status))).is_err() {
                    continue; // Retried next time; no snapshot may overtake it.
                }
                spectator.status_pending = false;
            }
            if spectator.last_sent == Some(tick) {
                continue;
            }
            let view = view
                .get_or_insert_with(|| {
                    self.scene.rebuild(&self.resim.world, self.config.ticks_per_snapshot());
                    let mut view = View::default();
                    self.scene.view_all(&mut view);
                    Arc::new(view)
                })
                .clone();
            let baseline = spectator.baselines.baseline();
            encode_delta(tick, baseline.map(|(_, v)| &**v), &view, &mut self.writer);
            let message = ServerMsg::Snapshot(Box::new(SnapshotMsg {
                tick,
                baseline: baseline.map(|(t, _)| t),
                input_ack: 0,
                input_queue: 0,
                own: None,
                delta: self.writer.finish().to_vec(),
                events: std::mem::take(&mut spectator.pending_events),
                leaderboard: spectator.leaderboard_pending.then(|| self.leaderboard.clone()),
                budget_limited: false,
            }));
            let bytes = protocol::encode(&message);
            let size = bytes.len() as u64;
            match spectator.outbox.try_send(bytes) {
                Ok(()) => {
                    spectator.baselines.record(tick, view);
                    spectator.last_sent = Some(tick);
                    spectator.leaderboard_pending = false;
                    stats.snapshots_sent.fetch_add(1, Ordering::Relaxed);
                    stats.snapshot_bytes.fetch_add(size, Ordering::Relaxed);
                }
                Err(_) => {
                    if let ServerMsg::Snapshot(message) = message {
                        spectator.pending_events = message.events;
                    }
                    stats.snapshots_skipped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    fn close_all(&self) {
        for spectator in self.spectators.values() {
            spectator.kick.kick(DisconnectReason::ServerClosing);
        }
    }
}

/// The replay room task: like `task::run`, for a recording.
pub async fn run(
    file: Arc<ReplayFile>,
    config: Arc<ServerConfig>,
    mut inbox: mpsc::Receiver<SimInput>,
    stats: Arc<RoomStats>,
    cancel: CancellationToken,
    public: Arc<RoomPublic>,
) {
    let mut theater = match Theater::new(file, config.clone()) {
        Ok(theater) => Theater { public: Some(public), ..theater },
        Err(error) => {
            warn!(%error, "cannot play the replay");
            return;
        }
    };
    let period = Duration::from_secs_f64(1.0 / f64::from(theater.file.header.tick_hz.max(1)));
    let ticks_per_snapshot = config.ticks_per_snapshot();
    let mut interval = tokio::time::interval(period);
    // Playback may skip real ticks after a stall; spectators do not need them replayed.
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut real_ticks: u32 = 0;
    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            _ = interval.tick() => {}
        }
        let started = Instant::now();
        while let Ok(input) = inbox.try_recv() {
            theater.handle(input);
        }
        theater.tick();
        real_ticks = real_ticks.wrapping_add(1);
        if real_ticks.is_multiple_of(ticks_per_snapshot) {
            theater.send(&stats);
        }
        stats.tick.store(theater.resim.world.tick.0, Ordering::Relaxed);
        stats.clients.store(theater.spectators.len() as u32, Ordering::Relaxed);
        theater.publish();
        stats.tick_time.record(started.elapsed());
    }
    theater.close_all();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Arc<ReplayFile> {
        let bytes =
            std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/replays/sample.arenareplay")).unwrap();
        Arc::new(crate::replay::format::parse(&bytes).unwrap())
    }

    /// The review's finding: a seek re-simulated the whole way in one go, on the tick. It now
    /// goes a bounded slice per tick, and lands exactly where a straight run does.
    #[test]
    fn a_seek_goes_a_bounded_slice_per_tick_and_lands_where_a_straight_run_does() {
        let file = sample();
        let config = Arc::new(ServerConfig::default());
        let mut theater = Theater::new(file.clone(), config.clone()).unwrap();
        let total = theater.total_ticks();
        assert!(total > 2 * MAX_SEEK_STEPS_PER_TICK, "the sample is too short to tell: {total} ticks");
        let target = total - 10;
        theater.seek(target);
        let mut real_ticks = 0;
        while theater.seeking.is_some() {
            let before = theater.resim.world.tick.0;
            theater.tick();
            let stepped = theater.resim.world.tick.0 - before;
            assert!(stepped <= MAX_SEEK_STEPS_PER_TICK, "{stepped} ticks simulated in one real tick");
            real_ticks += 1;
            assert!(real_ticks < 100_000, "the seek never ended");
        }
        assert!(real_ticks >= 2, "a seek of {target} ticks ended in {real_ticks} real tick(s)");
        assert_eq!(theater.resim.world.tick.0, target);
        assert_eq!(theater.epoch, 1, "the spectators start over from the seek");
        // Back to the start and forward again: the same world as a run straight to the target.
        let mut straight = Theater::new(file, config).unwrap();
        while straight.resim.world.tick.0 < target && straight.advance() {}
        assert_eq!(theater.resim.world.state_hash(), straight.resim.world.state_hash());
        theater.seek(5);
        while theater.seeking.is_some() {
            theater.tick();
        }
        assert_eq!((theater.resim.world.tick.0, theater.epoch), (5, 2));
    }
}
