//! What the client knows about the match it joined: roster, snapshots, prediction, clock,
//! interpolation, HUD feeds. Plain Rust (no browser types), so it is tested natively.

use std::collections::{HashMap, VecDeque};

use glam::Vec2;
use shared::protocol::{
    DisconnectReason, GameEvent, InputCmd, LEADERBOARD_SIZE, Leaderboard, OwnState, ReplayStatus, SnapshotMsg,
    ViewTime, Welcome,
};
use shared::quant;
use shared::rules::PROJECTILE_LIFETIME_S;
use shared::snapshot::{EntityState, NetId, SnapshotError, SnapshotReceiver, View};
use shared::tick::Tick;

use crate::clock::ServerClock;
use crate::interp::{Interpolator, Smoother};
use crate::pacer::Pacer;
use crate::playout::Playout;
use crate::predict::Predictor;

/// A line in the kill feed, notices or chat, with when it arrived (ms).
#[derive(Debug, Clone, PartialEq)]
pub struct FeedLine {
    pub at_ms: f64,
    pub text: String,
    /// Chat lines: who said it.
    pub from: Option<String>,
}

const KILL_FEED_LINES: usize = 5;
const NOTICE_LINES: usize = 4;
const CHAT_LINES: usize = 8;

#[derive(Debug, Clone)]
pub struct RosterEntry {
    pub name: String,
    pub bot: bool,
}

/// A drawable player.
#[derive(Debug, Clone, PartialEq)]
pub struct PlayerSprite {
    pub id: NetId,
    pub pos: Vec2,
    pub aim: f32,
    pub hp: u8,
    pub alive: bool,
    pub firing: bool,
    pub hit: bool,
    pub own: bool,
    /// The player's connection dropped and the server holds the seat for a reconnect.
    pub away: bool,
}

pub struct Session {
    pub welcome: Welcome,
    pub roster: HashMap<NetId, RosterEntry>,
    pub receiver: SnapshotReceiver,
    pub interp: Interpolator,
    /// Where (in server ticks) remote entities are drawn: anchored to snapshot arrivals.
    pub playout: Playout,
    /// Paces inputs to keep the server's queue of them near its target depth.
    pub pacer: Pacer,
    pub predictor: Predictor,
    pub clock: ServerClock,
    pub own: Option<OwnState>,
    pub input_ack: u32,
    pub leaderboard: Leaderboard,
    /// The round's results once it is over (and when they arrived, page ms), until the next
    /// round's welcome starts a new session.
    pub round_over: Option<(shared::protocol::RoundOver, f64)>,
    /// Its rating changes, when storage committed them.
    pub round_rated: Option<shared::protocol::RoundRated>,
    pub kill_feed: VecDeque<FeedLine>,
    pub notices: VecDeque<FeedLine>,
    pub chat: VecDeque<FeedLine>,
    pub last_tick: Option<Tick>,
    pub next_seq: u32,
    pub snapshots: u64,
    pub decode_errors: u64,
    /// Playback state when watching a replay (the client is then a spectator).
    pub replay: Option<ReplayStatus>,
    /// Fades out jumps of remote players when new data disagrees with what was drawn.
    pub smoother: Smoother,
    /// Where remote entities were drawn last (the latest [`Session::render_tick`]): sent with
    /// every input so the server tests shots against what this player saw.
    pub view: Option<ViewTime>,
    dt: f32,
}

impl Session {
    pub fn new(welcome: Welcome) -> Session {
        let roster = welcome
            .roster
            .iter()
            .map(|entry| (entry.id, RosterEntry { name: entry.name.clone(), bot: entry.bot }))
            .collect();
        Session {
            interp: Interpolator::new(welcome.tick_rate, welcome.snapshot_rate),
            playout: Playout::new(welcome.tick_rate, welcome.snapshot_rate),
            pacer: Pacer::default(),
            clock: ServerClock::new(welcome.tick_rate),
            dt: 1.0 / f32::from(welcome.tick_rate.max(1)),
            replay: welcome.replay,
            welcome,
            roster,
            receiver: SnapshotReceiver::new(),
            predictor: Predictor::new(),
            own: None,
            input_ack: 0,
            leaderboard: Leaderboard::default(),
            round_over: None,
            round_rated: None,
            kill_feed: VecDeque::new(),
            notices: VecDeque::new(),
            chat: VecDeque::new(),
            last_tick: None,
            next_seq: 1,
            snapshots: 0,
            decode_errors: 0,
            view: None,
            smoother: Smoother::default(),
        }
    }

    /// No player of its own: watching a replay or a live room. Spectators send no inputs.
    pub fn is_spectator(&self) -> bool {
        self.welcome.replay.is_some() || self.welcome.spectator
    }

    /// Watching a recording (playback controls, no interpolation delay).
    pub fn is_replay(&self) -> bool {
        self.welcome.replay.is_some()
    }

    /// Playback changed. A new epoch (after a seek) restarts the snapshot stream, whose ticks
    /// may go backwards: forget every baseline and interpolation frame.
    pub fn on_replay_status(&mut self, status: ReplayStatus) {
        if self.replay.is_some_and(|old| old.epoch != status.epoch) {
            self.receiver.reset();
            self.interp.clear();
            self.smoother.clear();
            self.playout.clear();
            self.last_tick = None;
        }
        self.replay = Some(status);
    }

    pub fn me(&self) -> NetId {
        self.welcome.player_id
    }

    /// Seconds per simulation tick.
    pub fn dt(&self) -> f32 {
        self.dt
    }

    pub fn name_of(&self, id: NetId) -> String {
        match self.roster.get(&id) {
            Some(entry) => entry.name.clone(),
            None if id == NetId(0) => "(gone)".to_string(),
            None => format!("player {}", id.0),
        }
    }

    /// Applies a snapshot that arrived at `now_ms`.
    pub fn on_snapshot(&mut self, snapshot: &SnapshotMsg, now_ms: f64) -> Result<(), SnapshotError> {
        if let Err(error) = self.receiver.apply(snapshot.tick, snapshot.baseline, &snapshot.delta) {
            self.decode_errors += 1;
            return Err(error);
        }
        self.snapshots += 1;
        self.last_tick = Some(snapshot.tick);
        if let Some((_, view)) = self.receiver.latest() {
            // Only a snapshot the budget limited can carry baseline states for changed players.
            let deferred_from = if snapshot.budget_limited {
                snapshot.baseline.and_then(|tick| self.receiver.view_at(tick).map(|view| (tick.0, view)))
            } else {
                None
            };
            self.interp.push(snapshot.tick.0, view, deferred_from);
        }
        self.playout.on_arrival(snapshot.tick.0, now_ms);
        self.clock.on_snapshot(snapshot.tick.0, now_ms);
        if let Some(own) = snapshot.own {
            self.predictor.reconcile(&own, snapshot.input_ack, self.dt, &self.welcome.map);
            self.own = Some(own);
        }
        self.input_ack = snapshot.input_ack;
        if snapshot.own.is_some() {
            self.pacer.on_report(snapshot.input_queue);
        }
        for event in &snapshot.events {
            self.on_event(event, now_ms);
        }
        if let Some(board) = &snapshot.leaderboard {
            self.leaderboard = board.clone();
        }
        Ok(())
    }

    fn on_event(&mut self, event: &GameEvent, now_ms: f64) {
        let push = |feed: &mut VecDeque<FeedLine>, limit: usize, line: FeedLine| {
            feed.push_back(line);
            while feed.len() > limit {
                feed.pop_front();
            }
        };
        match event {
            GameEvent::Joined { id, name, bot } => {
                let fresh = self.roster.insert(*id, RosterEntry { name: name.clone(), bot: *bot }).is_none();
                if fresh && *id != self.me() {
                    push(
                        &mut self.notices,
                        NOTICE_LINES,
                        FeedLine { at_ms: now_ms, text: format!("{name} joined"), from: None },
                    );
                }
            }
            GameEvent::Left { id, reason } => {
                let name = self.name_of(*id);
                let text = match reason {
                    DisconnectReason::ClientLeft => format!("{name} left"),
                    other => format!("{name} left ({other})"),
                };
                push(&mut self.notices, NOTICE_LINES, FeedLine { at_ms: now_ms, text, from: None });
                self.roster.remove(id);
            }
            GameEvent::Kill { killer, victim } => {
                let text = format!("{} ✕ {}", self.name_of(*killer), self.name_of(*victim));
                push(&mut self.kill_feed, KILL_FEED_LINES, FeedLine { at_ms: now_ms, text, from: None });
            }
            GameEvent::Chat { from, text } => {
                let name = self.name_of(*from);
                push(&mut self.chat, CHAT_LINES, FeedLine { at_ms: now_ms, text: text.clone(), from: Some(name) });
            }
            GameEvent::Notice { text } => {
                push(&mut self.notices, NOTICE_LINES, FeedLine { at_ms: now_ms, text: text.clone(), from: None });
            }
            GameEvent::Respawned { .. } => {}
        }
    }

    /// Makes the next input (acking the newest snapshot) and predicts it locally.
    pub fn make_input(&mut self, move_dir: Vec2, aim: f32, fire: bool) -> InputCmd {
        let cmd = InputCmd {
            seq: self.next_seq,
            ack: self.last_tick.unwrap_or(Tick::ZERO),
            move_x: move_dir.x.clamp(-1.0, 1.0),
            move_y: move_dir.y.clamp(-1.0, 1.0),
            aim: if aim.is_finite() { aim } else { 0.0 },
            fire,
            view: self.view,
        }
        // Predicted as the server will step it.
        .quantized();
        self.next_seq = self.next_seq.wrapping_add(1);
        self.predictor.apply_local(cmd, self.dt, &self.welcome.map);
        cmd
    }

    /// Advances the playout clock to `now_ms` and returns the fractional server tick at which
    /// remote entities are drawn this frame (see [`Playout`]).
    pub fn render_tick(&mut self, now_ms: f64) -> Option<f64> {
        if self.is_replay() {
            // Playback runs at any speed or stands still: draw the newest snapshot as it is.
            return self.last_tick.map(|t| f64::from(t.0));
        }
        let render_tick = self.playout.advance(now_ms);
        // Nothing drawn: no claim (a stale one would only be clamped).
        self.view = render_tick.and_then(ViewTime::from_render_tick);
        render_tick
    }

    /// Players to draw: others interpolated at `render_tick`, self at its predicted position.
    pub fn players(&self, render_tick: f64, own_pos: Vec2, own_aim: f32) -> Vec<PlayerSprite> {
        let Some((_, view)) = self.receiver.latest() else {
            return Vec::new();
        };
        let mut sprites = Vec::new();
        for (id, state) in &view.entities {
            let EntityState::Player(p) = state else {
                continue;
            };
            let alive = p.flags & shared::snapshot::FLAG_ALIVE != 0;
            let firing = p.flags & shared::snapshot::FLAG_FIRING != 0;
            let hit = p.flags & shared::snapshot::FLAG_HIT != 0;
            let away = p.flags & shared::snapshot::FLAG_AWAY != 0;
            if *id == self.me() {
                let hp = self.own.map_or(p.hp, |own| own.hp);
                let alive = self.own.map_or(alive, |own| own.alive);
                sprites.push(PlayerSprite {
                    id: *id,
                    pos: own_pos,
                    aim: own_aim,
                    hp,
                    alive,
                    firing,
                    hit,
                    own: true,
                    away,
                });
                continue;
            }
            let pose = self.interp.sample(*id, render_tick);
            let (pos, aim) = match pose {
                Some(pose) => (pose.pos, pose.aim),
                None => (quant::q_to_vec(p.x, p.y), quant::q_to_angle(p.aim)),
            };
            sprites.push(PlayerSprite { id: *id, pos, aim, hp: p.hp, alive, firing, hit, own: false, away });
        }
        sprites
    }

    /// [`Session::players`] for drawing a frame `frame_s` seconds after the previous one: remote
    /// players' jumps (new data disagreeing with what was drawn) are faded in, not drawn at once.
    pub fn players_for_frame(
        &mut self,
        render_tick: f64,
        own_pos: Vec2,
        own_aim: f32,
        frame_s: f32,
    ) -> Vec<PlayerSprite> {
        let mut sprites = self.players(render_tick, own_pos, own_aim);
        self.smoother.begin_frame();
        for sprite in sprites.iter_mut().filter(|s| !s.own) {
            sprite.pos = self.smoother.smooth(sprite.id, sprite.pos, frame_s, shared::rules::PLAYER_MAX_SPEED);
        }
        self.smoother.end_frame();
        sprites
    }

    /// Projectiles extrapolated to `render_tick`: (position, owner).
    pub fn projectiles(&self, render_tick: f64) -> Vec<(Vec2, NetId)> {
        let Some((_, view)) = self.receiver.latest() else {
            return Vec::new();
        };
        let rate = f64::from(self.welcome.tick_rate);
        let lifetime_ticks = f64::from(PROJECTILE_LIFETIME_S) * rate;
        let map = &self.welcome.map;
        view.entities
            .iter()
            .filter_map(|(_, state)| match state {
                EntityState::Projectile(p) => {
                    let age = render_tick - f64::from(p.spawn_tick.0);
                    if !(0.0..=lifetime_ticks).contains(&age) {
                        return None;
                    }
                    let origin = quant::q_to_vec(p.origin_x, p.origin_y);
                    let vel = Vec2::new(quant::q_to_vel(p.vx), quant::q_to_vel(p.vy));
                    let pos = origin + vel * (age / rate) as f32;
                    map.is_free(pos, 0.0).then_some((pos, p.owner))
                }
                _ => None,
            })
            .collect()
    }

    /// Orbs in view: (position, value).
    pub fn orbs(&self) -> Vec<(Vec2, u8)> {
        let Some((_, view)) = self.receiver.latest() else {
            return Vec::new();
        };
        view.entities
            .iter()
            .filter_map(|(_, state)| match state {
                EntityState::Orb(o) => Some((quant::q_to_vec(o.x, o.y), o.value)),
                _ => None,
            })
            .collect()
    }

    pub fn latest_view(&self) -> Option<&View> {
        self.receiver.latest().map(|(_, view)| view)
    }

    /// Leaderboard rows (rank, name, score, is me), plus my row when I am not in the top.
    pub fn leaderboard_rows(&self) -> Vec<(u16, String, u16, bool)> {
        let mut rows: Vec<(u16, String, u16, bool)> = self
            .leaderboard
            .top
            .iter()
            .take(LEADERBOARD_SIZE)
            .enumerate()
            .map(|(index, entry)| ((index + 1) as u16, self.name_of(entry.id), entry.score, entry.id == self.me()))
            .collect();
        if let Some(own) = self.own
            && !rows.iter().any(|row| row.3)
            && own.rank > 0
        {
            rows.push((own.rank, self.name_of(self.me()), own.score, true));
        }
        rows
    }

    /// Drops feed lines older than their display time.
    pub fn expire_feeds(&mut self, now_ms: f64) {
        while self.kill_feed.front().is_some_and(|l| now_ms - l.at_ms > 6000.0) {
            self.kill_feed.pop_front();
        }
        while self.notices.front().is_some_and(|l| now_ms - l.at_ms > 5000.0) {
            self.notices.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::bits::BitWriter;
    use shared::map::MapDef;
    use shared::protocol::RosterEntry as WireRoster;
    use shared::room::{RoomCode, RoomInfo};
    use shared::snapshot::{PlayerNet, encode_delta};

    fn welcome() -> Welcome {
        Welcome {
            player_id: NetId(1),
            resume_token: 9,
            tick_rate: 60,
            snapshot_rate: 30,
            server_tick: Tick(100),
            map_id: "test".into(),
            map: MapDef::open("test", 2000.0, 0),
            roster: vec![WireRoster { id: NetId(1), name: "me".into(), bot: false }],
            max_players: 8,
            replay: None,
            room: RoomInfo {
                code: RoomCode::parse("ABCD").unwrap(),
                name: "Main".into(),
                public: true,
                locked: false,
                map_id: "test".into(),
                max_players: 8,
                bots: 0,
                host: None,
                you_are_host: false,
                host_key: None,
                maps: Vec::new(),
                permanent: true,
                rounds: shared::room::RoundRules::default(),
                round: 1,
                round_ends_at: Some(Tick(18_000)),
            },
            spectator: false,
            snapshot_budget_bytes: Some(1400),
            player: None,
            seat_hold_ms: 20_000,
        }
    }

    fn snapshot(tick: u32, baseline: Option<(u32, &View)>, view: &View, events: Vec<GameEvent>) -> SnapshotMsg {
        let mut writer = BitWriter::new();
        encode_delta(Tick(tick), baseline.map(|(_, v)| v), view, &mut writer);
        SnapshotMsg {
            tick: Tick(tick),
            baseline: baseline.map(|(t, _)| Tick(t)),
            input_ack: 0,
            input_queue: 0,
            own: Some(OwnState {
                pos: Vec2::new(100.0, 100.0),
                vel: Vec2::ZERO,
                hp: 100,
                alive: true,
                respawn_tick: None,
                fire_cooldown: 0,
                score: 0,
                rank: 2,
            }),
            delta: writer.finish().to_vec(),
            events,
            leaderboard: None,
            budget_limited: false,
        }
    }

    fn player(x: u16) -> EntityState {
        EntityState::Player(PlayerNet { x, y: 800, aim: 0, hp: 100, score: 0, flags: 1 })
    }

    #[test]
    fn events_feed_the_roster_notices_kill_feed_and_chat() {
        let mut session = Session::new(welcome());
        let view = View { entities: vec![(NetId(1), player(800)), (NetId(2), player(1600))] };
        let events = vec![
            GameEvent::Joined { id: NetId(2), name: "eve".into(), bot: false },
            GameEvent::Kill { killer: NetId(2), victim: NetId(1) },
            GameEvent::Chat { from: NetId(2), text: "<i>gg</i>".into() },
        ];
        session.on_snapshot(&snapshot(102, None, &view, events), 0.0).unwrap();
        assert_eq!(session.name_of(NetId(2)), "eve");
        assert_eq!(session.notices.back().unwrap().text, "eve joined");
        assert_eq!(session.kill_feed.back().unwrap().text, "eve ✕ me");
        let chat = session.chat.back().unwrap();
        assert_eq!((chat.from.as_deref(), chat.text.as_str()), (Some("eve"), "<i>gg</i>"));
        let next = View { entities: vec![(NetId(1), player(800))] };
        let left = vec![GameEvent::Left { id: NetId(2), reason: DisconnectReason::ClientLeft }];
        session.on_snapshot(&snapshot(104, Some((102, &view)), &next, left), 33.0).unwrap();
        assert_eq!(session.notices.back().unwrap().text, "eve left");
        assert!(!session.roster.contains_key(&NetId(2)));
        session.expire_feeds(10_000.0);
        assert!(session.notices.is_empty() && session.kill_feed.is_empty());
        assert_eq!(session.chat.len(), 1, "chat stays");
    }

    #[test]
    fn inputs_ack_the_newest_snapshot_and_own_rank_is_listed() {
        let mut session = Session::new(welcome());
        let view = View { entities: vec![(NetId(1), player(800))] };
        session.on_snapshot(&snapshot(102, None, &view, Vec::new()), 0.0).unwrap();
        let cmd = session.make_input(Vec2::X, 0.5, true);
        assert_eq!((cmd.seq, cmd.ack), (1, Tick(102)));
        assert_eq!(session.make_input(Vec2::ZERO, f32::NAN, false).aim, 0.0);
        let rows = session.leaderboard_rows();
        assert_eq!(rows, vec![(2, "me".to_string(), 0, true)]);
    }

    #[test]
    fn a_new_replay_epoch_resets_the_snapshot_history() {
        let mut welcome = welcome();
        let status = ReplayStatus { tick: Tick(100), total_ticks: 7200, paused: false, speed: 1.0, epoch: 0 };
        welcome.replay = Some(status);
        let mut session = Session::new(welcome);
        assert!(session.is_spectator());
        let view = View { entities: vec![(NetId(2), player(800))] };
        session.on_snapshot(&snapshot(500, None, &view, Vec::new()), 0.0).unwrap();
        assert_eq!(session.render_tick(0.0), Some(500.0));
        // Seek back to tick 100: snapshots go back in time and must still apply.
        session.on_replay_status(ReplayStatus { tick: Tick(100), epoch: 1, ..status });
        assert!(session.latest_view().is_none());
        session.on_snapshot(&snapshot(102, None, &view, Vec::new()), 10.0).unwrap();
        assert_eq!(session.last_tick, Some(Tick(102)));
        // The same epoch keeps history: an older tick is refused.
        session.on_replay_status(ReplayStatus { tick: Tick(102), epoch: 1, paused: true, ..status });
        assert!(session.on_snapshot(&snapshot(90, None, &view, Vec::new()), 20.0).is_err());
    }

    #[test]
    fn a_live_spectator_has_no_player_and_interpolates() {
        let mut welcome = welcome();
        welcome.player_id = NetId(0);
        welcome.spectator = true;
        let mut session = Session::new(welcome);
        assert!(session.is_spectator() && !session.is_replay());
        let view = View { entities: vec![(NetId(2), player(800))] };
        session.on_snapshot(&snapshot(500, None, &view, Vec::new()), 0.0).unwrap();
        // Unlike a replay, a live room is drawn behind the newest snapshot, between two.
        assert!(session.render_tick(0.0).is_some_and(|tick| tick < 500.0));
    }

    #[test]
    fn room_notices_are_shown_as_text() {
        let mut session = Session::new(welcome());
        let view = View { entities: vec![(NetId(1), player(800))] };
        let events = vec![GameEvent::Notice { text: "<b>ann</b> locked the room".into() }];
        session.on_snapshot(&snapshot(102, None, &view, events), 0.0).unwrap();
        assert_eq!(session.notices.back().unwrap().text, "<b>ann</b> locked the room");
    }

    #[test]
    fn projectiles_fly_from_their_origin() {
        let mut session = Session::new(welcome());
        let projectile = EntityState::Projectile(shared::snapshot::ProjectileNet {
            origin_x: quant::pos_to_q(500.0),
            origin_y: quant::pos_to_q(500.0),
            vx: quant::vel_to_q(600.0),
            vy: 0,
            spawn_tick: Tick(100),
            owner: NetId(1),
        });
        let view = View { entities: vec![(NetId(5), projectile)] };
        session.on_snapshot(&snapshot(102, None, &view, Vec::new()), 0.0).unwrap();
        let shots = session.projectiles(106.0);
        assert_eq!(shots.len(), 1);
        assert!((shots[0].0.x - 560.0).abs() < 0.1, "{:?}", shots[0]);
        assert!(session.projectiles(99.0).is_empty(), "not fired yet at that time");
        assert!(session.projectiles(200.0).is_empty(), "expired");
    }
}
