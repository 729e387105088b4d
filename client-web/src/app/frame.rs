//! One animation frame: the fixed-step inputs, prediction and interpolation, drawing, and the
//! HUD and F3 overlay kept current.

use glam::Vec2;
use shared::protocol::ClientMsg;
use shared::rules::PLAYER_MAX_HP;

use super::state::{App, ConnState, SEND_BACKLOG_BYTES, SERVER_SILENCE_MS, STALL_HOLD_MS, now_ms};

/// How long a connection attempt may take while our seat is held.
const CONNECT_TIMEOUT_MS: f64 = 3000.0;
use crate::hud::Hud;
use crate::lobby;
use crate::render::{self, Camera, FrameScene};
use crate::session::Session;

impl App {
    pub(super) fn frame(&mut self, now: f64) {
        // Back from a hidden tab (no frames, so no pings and no pongs): the silence was ours, not
        // the server's.
        if self.last_frame_ms.is_some_and(|last| now - last > 1000.0) {
            self.last_heard_ms = now;
        }
        let frame_dt = self.last_frame_ms.map_or(0.0, |last| (now - last).clamp(0.0, 250.0));
        self.last_frame_ms = Some(now);
        self.fit_canvas();
        if let ConnState::Reconnecting { at_ms, .. } = self.state
            && now >= at_ms
        {
            self.connect();
        }
        if self.state == ConnState::Connected && self.conn.is_some() && now - self.last_heard_ms > SERVER_SILENCE_MS {
            self.on_server_silent(now);
        }
        // An attempt that hangs (a lost SYN after a network change) is given up after 3 s while
        // the seat waits, rather than when the browser gives up.
        if self.state == ConnState::Connecting
            && self.seat_held_until(now).is_some()
            && now - self.connecting_since_ms > CONNECT_TIMEOUT_MS
        {
            self.conn = None;
            let why = self.last_close_reason.clone().unwrap_or_else(|| "connection lost".to_string());
            self.schedule_reconnect(why);
        }
        if self.state == ConnState::NameEntry {
            self.poll_lobby(now);
        } else if !self.lan_requested {
            self.lan_requested = true;
            self.fetch_lan();
        }
        if self.state == ConnState::Connected && self.session.is_some() {
            self.play_frame(now, frame_dt);
        } else {
            let _ = self.ctx.set_transform(self.dpr, 0.0, 0.0, self.dpr, 0.0, 0.0);
            self.ctx.set_fill_style_str("#0d1117");
            self.ctx.fill_rect(0.0, 0.0, f64::from(self.css.x), f64::from(self.css.y));
        }
        self.update_status(now);
        self.frames.add(now_ms() - now);
    }

    pub(super) fn play_frame(&mut self, now: f64, frame_dt: f64) {
        let Some(mut session) = self.session.take() else {
            return;
        };
        // Aim from the mouse (or touch) relative to where the player was drawn.
        let camera = Camera::new(self.css, self.dpr, self.own_pos);
        if let Some(point) = self.input.aim_point() {
            let to = camera.to_world(point) - self.own_pos;
            if to.length_squared() > 1.0 {
                self.aim = to.y.atan2(to.x);
            }
        }
        // Fixed-step inputs at the server's tick rate.
        if session.is_spectator() {
            // No inputs at all: a live room closes a spectator's connection for one.
            self.accumulator_ms = 0.0;
            self.move_spectator_camera(&session, frame_dt);
        } else {
            self.send_inputs(&mut session, frame_dt);
        }
        if now - self.last_ping_ms > 1000.0 {
            self.last_ping_ms = now;
            self.send(&ClientMsg::Ping { client_time: now });
        }
        session.expire_feeds(now);
        let own_pos = if session.is_spectator() {
            self.spectator_camera
        } else if session.predictor.is_ready() {
            // Between the last two fixed steps, by how far this frame is into the next one.
            let tick_ms = 1000.0 / f64::from(session.welcome.tick_rate.max(1));
            let blend = (self.accumulator_ms / tick_ms) as f32;
            session.predictor.render_pos((frame_dt / 1000.0) as f32, blend)
        } else {
            session.own.map_or(self.own_pos, |own| own.pos)
        };
        self.own_pos = own_pos;
        let render_tick = session.render_tick(now).or_else(|| session.last_tick.map(|t| f64::from(t.0))).unwrap_or(0.0);
        // Replays jump and run at up to 8x by design: drawn as they are; live play is smoothed.
        let players = if session.is_replay() {
            session.players(render_tick, own_pos, self.aim)
        } else {
            session.players_for_frame(render_tick, own_pos, self.aim, (frame_dt / 1000.0) as f32)
        };
        let projectiles = session.projectiles(render_tick);
        let orbs = session.orbs();
        let camera = Camera::new(self.css, self.dpr, own_pos);
        let name_of = |id| session.name_of(id);
        let scene = FrameScene {
            map: &session.welcome.map,
            orbs: &orbs,
            projectiles: &projectiles,
            players: &players,
            name_of: &name_of,
            stick: self.input.move_touch,
            aim_touch: self.input.aim_touch,
            touch_device: self.touch_device,
        };
        render::draw(&self.ctx, &camera, &scene);
        self.update_hud(&session, now);
        self.drawn_players = players;
        self.drawn_projectiles = projectiles.len();
        self.drawn_orbs = orbs.len();
        self.drawn_render_tick = render_tick;
        if !session.is_replay() {
            // Every correction since the last frame (a burst after a stall applies several).
            let new_corrections = session.predictor.take_corrections();
            let largest = new_corrections.iter().copied().fold(0.0f32, f32::max);
            let tick_ms = 1000.0 / f64::from(session.welcome.tick_rate.max(1));
            self.graphs.frame(
                session.clock.rtt_ms,
                session.playout.jitter_ticks() * tick_ms,
                session.playout.delay_ticks() * tick_ms,
                largest,
            );
            {
                let mut corrections = self.corrections.borrow_mut();
                let room = 4096usize.saturating_sub(corrections.len());
                corrections.extend(new_corrections.into_iter().take(room));
            }
            let own = !session.is_spectator() && session.predictor.is_ready();
            let frame = crate::feel::FrameFeel {
                render_tick,
                // The interpolation buffer's newest frame: checked independently of the clock.
                newest_tick: session.interp.newest_tick().map_or(render_tick, f64::from),
                interval_ticks: f64::from(session.welcome.tick_rate) / f64::from(session.welcome.snapshot_rate.max(1)),
                frame_s: (frame_dt / 1000.0) as f32,
                max_speed: shared::rules::PLAYER_MAX_SPEED,
                own_pos: own.then_some(own_pos),
                held: if self.chat_open { Vec2::ZERO } else { self.input.move_dir() },
                correction: largest,
            };
            self.feel.frame(frame, self.drawn_players.iter().filter(|p| !p.own && p.alive).map(|p| (p.id, p.pos)));
        }
        self.session = Some(session);
    }

    /// Fixed-step inputs at the server's tick rate.
    pub(super) fn send_inputs(&mut self, session: &mut Session, frame_dt: f64) {
        let tick_ms = 1000.0 / f64::from(session.welcome.tick_rate.max(1));
        // Paced: a few percent faster or slower to keep the server's queue of our inputs small.
        self.accumulator_ms += frame_dt * session.pacer.rate();
        let mut steps = 0;
        // A backed-up socket (a stalled link: the browser keeps the connection and queues what we
        // send) takes no more inputs: they would reach the server as one late burst. The player
        // stands still here as on the server, and moves again when the link drains.
        // The same when the server has been silent for a second: the link is stalled even if
        // the socket does not show it (Chromium hands data to its network service at once, so
        // `bufferedAmount` stays 0 through its offline mode).
        let backed_up = self.conn.as_ref().is_some_and(|conn| conn.buffered() > SEND_BACKLOG_BYTES)
            || now_ms() - self.last_heard_ms > STALL_HOLD_MS;
        if backed_up {
            let skipped = (self.accumulator_ms / tick_ms).floor();
            self.backlog_skips += skipped as u64;
            self.accumulator_ms -= skipped * tick_ms;
        }
        while !backed_up && self.accumulator_ms >= tick_ms && steps < 5 {
            let playing = !self.chat_open;
            let dir = if playing { self.input.move_dir() } else { Vec2::ZERO };
            let cmd = session.make_input(dir, self.aim, playing && self.input.firing());
            self.send(&ClientMsg::Input(cmd));
            self.accumulator_ms -= tick_ms;
            steps += 1;
        }
        if steps == 5 {
            self.accumulator_ms = 0.0; // Too far behind (tab was hidden): do not burst.
        }
        self.steps_this_frame = steps;
    }

    /// Spectator camera: follows the leader until a movement key is pressed; F follows again.
    pub(super) fn move_spectator_camera(&mut self, session: &Session, frame_dt: f64) {
        let dir = self.input.move_dir();
        if dir != Vec2::ZERO {
            self.follow_leader = false;
            self.spectator_camera += dir * 900.0 * (frame_dt / 1000.0) as f32;
        }
        if self.input.keys.contains("KeyF") {
            self.follow_leader = true;
        }
        if self.follow_leader
            && let Some(leader) = session.leaderboard.top.first()
            && let Some(sprite) = self.drawn_players.iter().find(|p| p.id == leader.id)
        {
            self.spectator_camera = sprite.pos;
        }
        let map = &session.welcome.map;
        self.spectator_camera = self.spectator_camera.clamp(Vec2::ZERO, Vec2::new(map.width, map.height));
    }

    /// Sends a playback request (spectators only).
    pub(super) fn replay_control(&mut self, paused: Option<bool>, speed: Option<f32>, seek: Option<u32>) {
        let Some(status) = self.session.as_ref().and_then(|s| s.replay) else { return };
        let message = ClientMsg::ReplayControl {
            paused: paused.unwrap_or(status.paused),
            speed: speed.unwrap_or(status.speed).clamp(0.25, 8.0),
            seek: seek.map(shared::tick::Tick),
        };
        self.send(&message);
    }

    pub(super) fn update_status(&mut self, now: f64) {
        match &self.state {
            ConnState::NameEntry | ConnState::Connected => self.hud.set_status(None, false),
            // A retry while the seat is held reads as the wait it is part of (no flicker between
            // "Connecting…" and the countdown every half second).
            ConnState::Connecting => match (self.seat_held_until(now), &self.last_close_reason) {
                (Some(until), Some(why)) => self.hud.set_status(Some(&seat_held_text(why, until - now)), true),
                _ => self.hud.set_status(Some("Connecting…"), false),
            },
            ConnState::Reconnecting { at_ms, why } => {
                let text = match self.seat_held_until(now) {
                    Some(until) => seat_held_text(why, until - now),
                    None => format!(
                        "Disconnected: {why}. Reconnecting in {:.0} s…",
                        ((at_ms - now) / 1000.0).ceil().max(0.0)
                    ),
                };
                self.hud.set_status(Some(&text), true);
            }
        }
        let show_overlay = self.overlay;
        Hud::show(&self.hud.netgraph, show_overlay);
    }

    pub(super) fn update_hud(&mut self, session: &Session, now: f64) {
        Hud::show(&self.hud.vitals, !session.is_spectator());
        Hud::show(&self.hud.replay_bar, session.is_replay());
        self.update_room_box(session, now);
        if let Some(status) = session.replay {
            let rate = f64::from(session.welcome.tick_rate.max(1));
            let clock = |ticks: u32| {
                let seconds = (f64::from(ticks) / rate) as u32;
                format!("{}:{:02}", seconds / 60, seconds % 60)
            };
            let shown = session.last_tick.map_or(status.tick.0, |t| t.0);
            let label = format!(
                "{} / {} · {}x{}",
                clock(shown),
                clock(status.total_ticks),
                speed_label(status.speed),
                if status.paused { " · paused" } else { "" }
            );
            let time = self.hud.replay_time.clone();
            self.hud.set_text("replay-time", &time, &label);
            let play = self.hud.replay_play.clone();
            self.hud.set_text("replay-play", &play, if status.paused { "▶ Play" } else { "❚❚ Pause" });
            self.hud.replay_seek.set_max(&status.total_ticks.to_string());
            let dragging =
                self.window.document().and_then(|d| d.active_element()).is_some_and(|e| e == **self.hud.replay_seek);
            if !dragging {
                self.hud.replay_seek.set_value(&shown.to_string());
            }
            self.hud.replay_speed.set_value(speed_label(status.speed));
        }
        if let Some(own) = session.own {
            self.hud.set_health(if own.alive { own.hp } else { 0 }, PLAYER_MAX_HP);
            let mut score_text =
                format!("Score {} · #{} of {}", own.score, own.rank, session.leaderboard.players.max(1));
            if let Some((rating, rank)) = self.my_rating {
                score_text.push_str(&format!(" · rating {rating:.1}"));
                if let Some(rank) = rank {
                    score_text.push_str(&format!(" (#{rank} overall)"));
                }
            }
            let score = self.hud.score.clone();
            self.hud.set_text("score", &score, &score_text);
            let respawn = self.hud.respawn.clone();
            match (own.alive, own.respawn_tick, session.clock.server_tick(now)) {
                (false, Some(at), Some(server_tick)) => {
                    let seconds = ((f64::from(at.0) - server_tick) / f64::from(session.welcome.tick_rate)).max(0.0);
                    let text = format!("You were eliminated. Respawning in {:.0}…", seconds.ceil());
                    self.hud.set_text("respawn", &respawn, &text);
                    Hud::show(&respawn, true);
                }
                _ => Hud::show(&respawn, false),
            }
        }
        self.update_round(session, now);
        let rows: Vec<(String, &'static str)> = session
            .leaderboard_rows()
            .into_iter()
            .map(|(rank, name, score, me)| (format!("{rank}. {name} — {score}"), if me { "me" } else { "" }))
            .collect();
        let board = self.hud.leaderboard.clone();
        self.hud.set_list("leaderboard", &board, &rows);
        let kills: Vec<(String, &'static str)> = session.kill_feed.iter().map(|l| (l.text.clone(), "")).collect();
        let killfeed = self.hud.killfeed.clone();
        self.hud.set_list("killfeed", &killfeed, &kills);
        let notices: Vec<(String, &'static str)> = session.notices.iter().map(|l| (l.text.clone(), "")).collect();
        let notice_list = self.hud.notices.clone();
        self.hud.set_list("notices", &notice_list, &notices);
        let chat: Vec<(String, String)> =
            session.chat.iter().map(|l| (l.from.clone().unwrap_or_default(), l.text.clone())).collect();
        self.hud.set_chat(&chat);
        if self.overlay {
            let text = self.netgraph_text(session, now);
            let netgraph = self.hud.netgraph_text.clone();
            self.hud.set_text("netgraph", &netgraph, &text);
            crate::netgraph::draw(&self.hud.netgraph_plot, &self.graphs);
        }
    }

    /// The round clock in the vitals, and the end screen between rounds (text only: names are
    /// peers' strings).
    pub(super) fn update_round(&mut self, session: &Session, now: f64) {
        let clock = session.clock.server_tick(now).and_then(|tick| {
            let ends_at = self.room.as_ref().and_then(|room| room.round_ends_at).map(|t| t.0);
            lobby::round_clock_text(ends_at.filter(|_| session.round_over.is_none()), tick, session.welcome.tick_rate)
        });
        let clock_element = self.hud.round_clock.clone();
        self.hud.set_text("round-clock", &clock_element, clock.as_deref().unwrap_or(""));
        Hud::show(&clock_element, clock.is_some());
        let panel = self.hud.round_over.clone();
        let Some((over, received)) = &session.round_over else {
            Hud::show(&panel, false);
            return;
        };
        let (title, lines) = lobby::round_over_lines(over, session.round_rated.as_ref(), session.welcome.player_id);
        let title_element = self.hud.round_title.clone();
        self.hud.set_text("round-title", &title_element, &title);
        let rows: Vec<(String, &'static str)> =
            lines.into_iter().map(|(text, me)| (text, if me { "me" } else { "" })).collect();
        let results = self.hud.round_results.clone();
        self.hud.set_list("round-results", &results, &rows);
        let left = ((f64::from(over.next_round_in_ms) - (now - received)) / 1000.0).max(0.0).ceil();
        let next = self.hud.round_next.clone();
        self.hud.set_text("round-next", &next, &format!("Next round in {left:.0}…"));
        Hud::show(&panel, true);
    }

    pub(super) fn netgraph_text(&mut self, session: &Session, now: f64) -> String {
        let tick_ms = 1000.0 / f64::from(session.welcome.tick_rate.max(1));
        format!(
            "ping        {:>6.1} ms\nsnapshots   {:>6.0} /s\nin          {:>6.1} KB/s\nout         {:>6.1} KB/s\ninterp      {:>6.1} ms (jitter {:.1} ms)\nextrapolate {:>6.1} ms ({} frames past newest)\npred error  {:>6.2} u (max {:.2}, {} corrections)\npending     {:>6}\nserver q    {:>6} (input rate {:.3})\nframe       {:>6.2} ms (p99 {:.2})\nentities    {:>6}\ntick        {:>6}\nbudget      {:>6} (largest {:.0} B, {} over)\nlink        {:>6} lost, {} resumed{}, {} inputs held in stalls",
            session.clock.rtt_ms,
            self.snapshots_in.per_second(now),
            self.bytes_in.per_second(now) / 1000.0,
            self.bytes_out.per_second(now) / 1000.0,
            session.playout.delay_ticks() * tick_ms,
            session.playout.jitter_ticks() * tick_ms,
            session.playout.extrapolated_ms,
            self.feel.frames_past_newest,
            session.predictor.last_error,
            self.max_error.0,
            self.feel.corrections_over_1,
            session.predictor.pending(),
            session.pacer.last_report().map_or_else(|| "-".to_string(), |q| q.to_string()),
            session.pacer.rate(),
            self.frames.mean(),
            self.frames.quantile(0.99),
            session.latest_view().map_or(0, |v| v.len()),
            session.last_tick.map_or(0, |t| t.0),
            self.graphs.snapshot_bytes.limit.map_or_else(|| "none".to_string(), |b| format!("{b:.0} B")),
            self.graphs.snapshot_bytes.samples().fold(0.0f32, f32::max),
            self.graphs.snapshot_bytes.over_limit(),
            self.losses,
            self.resumes,
            self.last_resume_ms.map_or_else(String::new, |ms| format!(" (last after {:.1} s)", ms / 1000.0)),
            self.backlog_skips,
        )
    }
}

/// The speed as the speed menu spells it. (Avoids `{}` formatting of floats, whose
/// shortest-representation code would add kilobytes to the WASM module.)
fn speed_label(speed: f32) -> &'static str {
    const LABELS: [(f32, &str); 6] = [(0.25, "0.25"), (0.5, "0.5"), (1.0, "1"), (2.0, "2"), (4.0, "4"), (8.0, "8")];
    LABELS.iter().min_by(|a, b| (a.0 - speed).abs().total_cmp(&(b.0 - speed).abs())).map_or("1", |(_, label)| label)
}

/// The status while the server holds our seat: why we were cut off, and the hold counting down.
fn seat_held_text(why: &str, left_ms: f64) -> String {
    format!("Disconnected: {why}. Reconnecting… your seat is held for {:.0} s more.", (left_ms / 1000.0).ceil())
}
