//! Start-up and events: the page's entry point, its event listeners (keys, mouse, touch,
//! resize, visibility, the network), the animation-frame loop, the connection and what arrives
//! on it.

use std::cell::RefCell;
use std::rc::Rc;

use glam::Vec2;
use shared::protocol::{self, ClientMsg, DisconnectReason, ServerMsg};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement, KeyboardEvent, MouseEvent, TouchEvent, Window};

use super::state::{APP, App, ConnState, SERVER_SILENCE_MS, listen, log_error, now_ms};
use crate::host_panel::HostPanel;
use crate::hud::Hud;
use crate::input::{InputState, TouchStick};
use crate::lobby::{self, JoinTarget, NAME_KEY};
use crate::lobby_view::LobbyView;
use crate::net::{Connection, NetEvent, server_url};
use crate::stats::{FrameTimes, Rate};
use crate::storage;

pub fn start() -> Result<(), JsValue> {
    std::panic::set_hook(Box::new(|info| log_error(&format!("arena client panicked: {info}"))));
    let window = web_sys::window().ok_or("no window")?;
    let document = window.document().ok_or("no document")?;
    let hud = Hud::new(&document).map_err(|e| JsValue::from_str(&e))?;
    let lobby = LobbyView::new(&document).map_err(|e| JsValue::from_str(&e))?;
    let host_panel = HostPanel::new(&document).map_err(|e| JsValue::from_str(&e))?;
    let canvas: HtmlCanvasElement = document.get_element_by_id("game").ok_or("#game missing")?.dyn_into()?;
    let ctx: CanvasRenderingContext2d = canvas.get_context("2d")?.ok_or("no 2d context")?.dyn_into()?;
    let stored_name = storage::local_get(NAME_KEY).unwrap_or_default();
    lobby.name_input.set_value(&stored_name);
    let app = Rc::new_cyclic(|this| {
        RefCell::new(App {
            window: window.clone(),
            canvas,
            ctx,
            hud,
            lobby,
            host_panel,
            input: InputState::default(),
            conn: None,
            state: ConnState::NameEntry,
            session: None,
            name: stored_name,
            target: JoinTarget::QuickPlay,
            room: None,
            client_id: storage::client_id(),
            my_rating: None,
            auth: None,
            resume: None,
            invite: None,
            invite_room: None,
            lobby_rooms: Vec::new(),
            lan: None,
            lan_requested: false,
            touch_device: false,
            maps: Vec::new(),
            lobby_message: None,
            poll_started_ms: None,
            last_poll_ms: f64::NEG_INFINITY,
            copied_at_ms: None,
            server_reason: None,
            last_close_reason: None,
            reconnect_attempt: 0,
            last_heard_ms: 0.0,
            seat: None,
            lost_at_ms: None,
            seat_hold_ms: 0.0,
            connecting_since_ms: 0.0,
            losses: 0,
            resumes: 0,
            backlog_skips: 0,
            last_resume_ms: None,
            retry_after_ms: 0.0,
            accumulator_ms: 0.0,
            last_frame_ms: None,
            last_ping_ms: 0.0,
            last_sent_ms: 0.0,
            bytes_in: Rate::default(),
            bytes_out: Rate::default(),
            snapshots_in: Rate::default(),
            frames: FrameTimes::default(),
            max_error: (0.0, 0.0),
            graphs: crate::netgraph::NetGraphs::new(None),
            overlay: false,
            chat_open: false,
            aim: 0.0,
            own_pos: Vec2::ZERO,
            spectator_camera: Vec2::ZERO,
            follow_leader: true,
            css: Vec2::ONE,
            dpr: 1.0,
            drawn_players: Vec::new(),
            drawn_projectiles: 0,
            drawn_orbs: 0,
            drawn_render_tick: 0.0,
            steps_this_frame: 0,
            feel: Default::default(),
            corrections: Default::default(),
            this: this.clone(),
        })
    });
    APP.with(|slot| *slot.borrow_mut() = Some(app.clone()));
    install_listeners(&app, &window, &document)?;
    start_frame_loop(app.clone(), &window)?;
    if window.navigator().max_touch_points() > 0 {
        app.borrow_mut().set_touch_device();
    }
    app.borrow_mut().launch();
    Ok(())
}

pub(super) fn install_listeners(
    app: &Rc<RefCell<App>>,
    window: &Window,
    document: &web_sys::Document,
) -> Result<(), JsValue> {
    let window_target: &web_sys::EventTarget = window.as_ref();
    listen::<KeyboardEvent>(window_target, "keydown", app, App::on_key_down)?;
    listen::<KeyboardEvent>(window_target, "keyup", app, |app, event| {
        app.input.keys.remove(&event.code());
    })?;
    listen::<web_sys::Event>(window_target, "blur", app, |app, _| app.input.release_all())?;
    listen::<web_sys::Event>(window_target, "online", app, |app, _| app.retry_now())?;
    listen::<web_sys::Event>(document.as_ref(), "visibilitychange", app, |app, _| {
        if app.window.document().is_some_and(|d| d.visibility_state() == web_sys::VisibilityState::Visible) {
            app.retry_now();
        }
    })?;
    let canvas: web_sys::EventTarget = app.borrow().canvas.clone().into();
    listen::<MouseEvent>(&canvas, "mousemove", app, |app, event| {
        app.input.mouse = Some(Vec2::new(event.offset_x() as f32, event.offset_y() as f32));
    })?;
    listen::<MouseEvent>(&canvas, "mousedown", app, |app, event| {
        if event.button() == 0 {
            app.input.mouse_down = true;
        }
    })?;
    listen::<MouseEvent>(window_target, "mouseup", app, |app, event| {
        if event.button() == 0 {
            app.input.mouse_down = false;
        }
    })?;
    listen::<MouseEvent>(&canvas, "contextmenu", app, |_, event| event.prevent_default())?;
    for kind in ["touchstart", "touchmove", "touchend", "touchcancel"] {
        listen::<TouchEvent>(&canvas, kind, app, App::on_touch)?;
    }
    super::rooms::install_listeners(app, document)?;
    let replay_play: web_sys::EventTarget = app.borrow().hud.replay_play.clone().into();
    listen::<MouseEvent>(&replay_play, "click", app, |app, _| {
        let paused = app.session.as_ref().and_then(|s| s.replay).is_some_and(|r| r.paused);
        app.replay_control(Some(!paused), None, None);
    })?;
    let replay_speed: web_sys::EventTarget = app.borrow().hud.replay_speed.clone().into();
    listen::<web_sys::Event>(&replay_speed, "change", app, |app, _| {
        let speed = app.hud.replay_speed.value().parse().unwrap_or(1.0);
        app.replay_control(None, Some(speed), None);
    })?;
    let replay_seek: web_sys::EventTarget = app.borrow().hud.replay_seek.clone().into();
    listen::<web_sys::Event>(&replay_seek, "change", app, |app, _| {
        let tick = app.hud.replay_seek.value().parse().unwrap_or(0);
        app.replay_control(None, None, Some(tick));
        let _ = app.hud.replay_seek.blur();
    })?;
    Ok(())
}

type FrameCallback = Closure<dyn FnMut(f64)>;

fn start_frame_loop(app: Rc<RefCell<App>>, window: &Window) -> Result<(), JsValue> {
    // The closure re-schedules itself, so it holds a handle to itself.
    let slot: Rc<RefCell<Option<FrameCallback>>> = Rc::new(RefCell::new(None));
    let slot_inner = slot.clone();
    let window_inner = window.clone();
    *slot.borrow_mut() = Some(Closure::new(move |_timestamp: f64| {
        if let Ok(mut app) = app.try_borrow_mut() {
            app.frame(now_ms());
        }
        if let Some(callback) = slot_inner.borrow().as_ref() {
            let _ = window_inner.request_animation_frame(callback.as_ref().unchecked_ref());
        }
    }));
    let first = slot.borrow();
    window.request_animation_frame(first.as_ref().expect("just set").as_ref().unchecked_ref())?;
    Ok(())
}

impl App {
    pub(super) fn connect(&mut self) {
        self.conn = None;
        self.session = None;
        self.server_reason = None;
        self.state = ConnState::Connecting;
        self.connecting_since_ms = now_ms();
        let weak = self.this.clone();
        let handler = move |event: NetEvent| {
            if let Some(app) = weak.upgrade()
                && let Ok(mut app) = app.try_borrow_mut()
            {
                app.on_net(event);
            }
        };
        match server_url().and_then(|url| Connection::open(&url, handler)) {
            Ok(conn) => self.conn = Some(conn),
            Err(error) => {
                log_error(&format!("cannot open WebSocket: {error:?}"));
                self.schedule_reconnect("cannot open a connection".to_string());
            }
        }
    }

    pub(super) fn send(&mut self, message: &ClientMsg) {
        let bytes = protocol::encode(message);
        if let Some(conn) = &self.conn
            && conn.send(&bytes)
        {
            let now = now_ms();
            self.bytes_out.add(now, bytes.len() as f64);
            self.last_sent_ms = now;
        }
    }

    pub(super) fn on_net(&mut self, event: NetEvent) {
        let now = now_ms();
        match event {
            NetEvent::Open => {
                let remembered = self.resume;
                let hello = lobby::hello(
                    &self.name,
                    &self.target,
                    self.client_id,
                    |code| storage::credentials(code, remembered),
                    (self.auth.clone(), storage::guest_secret()),
                );
                self.send(&hello);
            }
            NetEvent::Message(bytes) => {
                self.last_heard_ms = now;
                self.bytes_in.add(now, bytes.len() as f64);
                match protocol::decode_server(&bytes) {
                    Ok(ServerMsg::Welcome(welcome)) => self.on_welcome(*welcome),
                    Ok(ServerMsg::Room(room)) => self.on_room(*room),
                    Ok(ServerMsg::Snapshot(snapshot)) => {
                        self.snapshots_in.add(now, 1.0);
                        self.graphs.snapshot(bytes.len());
                        let Some(session) = self.session.as_mut() else {
                            return;
                        };
                        if let Err(error) = session.on_snapshot(&snapshot, now) {
                            log_error(&format!("snapshot {} could not be applied: {error}", snapshot.tick));
                            return;
                        }
                        if let Some(own) = &snapshot.own {
                            self.feel.server_moved(now, own.vel);
                        }
                        let error = session.predictor.last_error;
                        if now - self.max_error.1 > 1000.0 {
                            self.max_error = (0.0, now);
                        }
                        self.max_error.0 = self.max_error.0.max(error);
                        // Spectators send no inputs, and in a background tab none go out either:
                        // ack anyway to keep deltas small.
                        if session.is_spectator() || now - self.last_sent_ms > 100.0 {
                            self.send(&ClientMsg::Ack { tick: snapshot.tick });
                        }
                    }
                    Ok(ServerMsg::Pong { client_time, server_tick }) => {
                        if let Some(session) = self.session.as_mut() {
                            session.clock.on_pong(client_time, server_tick.0, now);
                        }
                    }
                    Ok(ServerMsg::Disconnect(reason)) => self.server_reason = Some(reason),
                    Ok(ServerMsg::RoundOver(over)) => {
                        if let Some(session) = self.session.as_mut() {
                            session.round_over = Some((*over, now));
                        }
                    }
                    Ok(ServerMsg::RoundRated(rated)) => {
                        if let Some(session) = self.session.as_mut() {
                            let me = session.welcome.player_id;
                            if let Some(mine) = rated.changes.iter().find(|c| c.id == me) {
                                self.my_rating = Some((mine.after, mine.rank));
                            }
                            session.round_rated = Some(*rated);
                        }
                    }
                    Ok(ServerMsg::ReplayStatus(status)) => {
                        if let Some(session) = self.session.as_mut() {
                            session.on_replay_status(status);
                        }
                    }
                    Err(error) => log_error(&format!("undecodable server message: {error}")),
                }
            }
            NetEvent::Close { code, reason } => {
                self.conn = None;
                if self.session.take().is_some() {
                    self.lost_at_ms = Some(now);
                    self.losses += 1;
                }
                // The server holds the seat only after a loss (a dead link, a silent or too slow
                // connection); after any other ending (shutting down, full, rate limited…) the
                // page backs off as usual instead of knocking every half second.
                let lost = match &self.server_reason {
                    Some(reason) => matches!(
                        reason,
                        DisconnectReason::ConnectionLost
                            | DisconnectReason::IdleTimeout { .. }
                            | DisconnectReason::TooSlow
                    ),
                    // 4000: our own watchdog dropped the link (`close_lost`).
                    None => [
                        4000,
                        DisconnectReason::ConnectionLost.close_code(),
                        DisconnectReason::TooSlow.close_code(),
                        DisconnectReason::IdleTimeout { seconds: 0 }.close_code(),
                    ]
                    .contains(&code),
                };
                if !lost {
                    self.seat_hold_ms = 0.0;
                }
                if let Some(DisconnectReason::SeatInUse { after_ms }) = self.server_reason {
                    // Our seat is still on the old connection: same token, a little later.
                    self.retry_after_ms = f64::from(after_ms);
                }
                let refused = DisconnectReason::ResumeRefused { why: String::new() }.close_code();
                if matches!(self.server_reason, Some(DisconnectReason::ResumeRefused { .. }))
                    || (self.server_reason.is_none() && code == refused)
                {
                    // Our seat is not there to take back: join afresh.
                    if let JoinTarget::Join(code) = self.target {
                        storage::forget_resume(code);
                    }
                    self.resume = None;
                    self.seat = None;
                }
                let why = match &self.server_reason {
                    Some(reason) => reason.to_string(),
                    None if !reason.is_empty() => reason,
                    // A reconnect attempt that never got in keeps telling why we were cut off
                    // in the first place (say, "server is shutting down").
                    None if self.reconnect_attempt > 0 && self.last_close_reason.is_some() => {
                        self.last_close_reason.clone().unwrap_or_default()
                    }
                    None if code == 1006 => "connection lost".to_string(),
                    None => lobby::close_code_words(code),
                };
                self.on_closed(code, why);
            }
        }
    }

    /// Nothing from the server for [`SERVER_SILENCE_MS`]: the link is dead or stalled. The socket
    /// is dropped with code 4000 (not a goodbye: the server holds our seat) and a new connection
    /// takes the seat back, whether or not the old one ever reports its end.
    pub(super) fn on_server_silent(&mut self, now: f64) {
        let why = format!("no data from the server for {:.0} s", SERVER_SILENCE_MS / 1000.0);
        web_sys::console::warn_1(&JsValue::from_str(&format!("{why}; reconnecting")));
        if let Some(conn) = self.conn.take() {
            conn.close_lost();
        }
        if self.session.take().is_some() {
            self.lost_at_ms = Some(now);
            self.losses += 1;
        }
        self.last_close_reason = Some(why.clone());
        self.schedule_reconnect(why);
    }

    pub(super) fn schedule_reconnect(&mut self, why: String) {
        // While the server holds our seat, try every half second (the network may be back any
        // moment, and the seat is lost when the hold ends); after that, back off to 15 s.
        let now = now_ms();
        let backoff = 500.0 * 2f64.powi(self.reconnect_attempt.min(5) as i32);
        let delay = if self.seat_held_until(now).is_some() {
            // Spread out, so many players cut off at once do not knock in step.
            300.0 + 400.0 * js_sys::Math::random()
        } else {
            backoff.min(15_000.0)
        };
        let delay = delay.max(self.retry_after_ms);
        self.retry_after_ms = 0.0;
        self.reconnect_attempt += 1;
        self.state = ConnState::Reconnecting { at_ms: now + delay, why };
    }

    /// When the server stops holding our seat, if it still does at `now`.
    pub(super) fn seat_held_until(&self, now: f64) -> Option<f64> {
        let until = self.lost_at_ms? + self.seat_hold_ms;
        (self.seat.is_some() && self.resume.is_some() && now < until).then_some(until)
    }

    /// The network is back (`online`) or the tab is visible again: a reconnect that is waiting
    /// goes now instead of at its back-off's end.
    pub(super) fn retry_now(&mut self) {
        let stale_attempt = self.state == ConnState::Connecting && now_ms() - self.connecting_since_ms > 1000.0;
        if matches!(self.state, ConnState::Reconnecting { .. }) || stale_attempt {
            self.connect();
        }
    }

    pub(super) fn on_key_down(&mut self, event: KeyboardEvent) {
        let code = event.code();
        if self.state == ConnState::NameEntry {
            self.on_lobby_key(&event);
            return;
        }
        if self.on_panel_key(&event) {
            return;
        }
        if self.chat_open {
            match code.as_str() {
                "Enter" | "NumpadEnter" => {
                    event.prevent_default();
                    let text = self.hud.chat_input.value();
                    if !text.trim().is_empty() {
                        self.send(&ClientMsg::Chat { text });
                    }
                    self.close_chat();
                }
                "Escape" => {
                    event.prevent_default();
                    self.close_chat();
                }
                _ => {}
            }
            return;
        }
        match code.as_str() {
            "F3" | "Backquote" => {
                event.prevent_default();
                self.overlay = !self.overlay;
            }
            // Watching a live room is read-only: the server accepts no chat from spectators.
            "Enter" | "NumpadEnter" if !self.is_live_spectator() => {
                event.prevent_default();
                self.chat_open = true;
                self.input.release_all();
                Hud::show(&self.hud.chat_input, true);
                let _ = self.hud.chat_input.focus();
            }
            _ => {
                if matches!(code.as_str(), "Space" | "ArrowUp" | "ArrowDown" | "ArrowLeft" | "ArrowRight") {
                    event.prevent_default();
                }
                let was_still = self.input.move_dir() == Vec2::ZERO;
                self.input.keys.insert(code);
                if was_still {
                    // When the browser took the key (the same clock as `performance.now()`).
                    self.feel.key_pressed(event.time_stamp(), self.input.move_dir());
                }
            }
        }
    }

    pub(super) fn close_chat(&mut self) {
        self.chat_open = false;
        self.hud.chat_input.set_value("");
        let _ = self.hud.chat_input.blur();
        Hud::show(&self.hud.chat_input, false);
        let _ = self.canvas.focus();
    }

    /// Switches the page to touch controls: the hints name thumbs, not keys and a mouse.
    pub(super) fn set_touch_device(&mut self) {
        if self.touch_device {
            return;
        }
        self.touch_device = true;
        if let Some(body) = self.window.document().and_then(|d| d.body()) {
            let _ = body.class_list().add_1("touch");
        }
        self.hud.help.set_text_content(Some("Left thumb: drag to move · right thumb: hold to aim and fire"));
    }

    pub(super) fn on_touch(&mut self, event: TouchEvent) {
        event.prevent_default();
        self.set_touch_device();
        let touches = event.changed_touches();
        let kind = event.type_();
        for index in 0..touches.length() {
            let Some(touch) = touches.get(index) else {
                continue;
            };
            let pos = Vec2::new(touch.client_x() as f32, touch.client_y() as f32);
            let id = touch.identifier();
            match kind.as_str() {
                "touchstart" => {
                    let stick = TouchStick { id, origin: pos, current: pos };
                    if pos.x < self.css.x / 2.0 && self.input.move_touch.is_none() {
                        self.input.move_touch = Some(stick);
                    } else if self.input.aim_touch.is_none() {
                        self.input.aim_touch = Some(stick);
                    }
                }
                "touchmove" => {
                    for stick in [&mut self.input.move_touch, &mut self.input.aim_touch].into_iter().flatten() {
                        if stick.id == id {
                            stick.current = pos;
                        }
                    }
                }
                _ => {
                    if self.input.move_touch.is_some_and(|s| s.id == id) {
                        self.input.move_touch = None;
                    }
                    if self.input.aim_touch.is_some_and(|s| s.id == id) {
                        self.input.aim_touch = None;
                    }
                }
            }
        }
    }

    /// Matches the canvas backing store to its CSS size times the device pixel ratio.
    pub(super) fn fit_canvas(&mut self) {
        let css = Vec2::new(
            self.window.inner_width().ok().and_then(|v| v.as_f64()).unwrap_or(800.0) as f32,
            self.window.inner_height().ok().and_then(|v| v.as_f64()).unwrap_or(600.0) as f32,
        );
        let dpr = self.window.device_pixel_ratio().clamp(1.0, 3.0);
        if css != self.css || dpr != self.dpr {
            self.css = css;
            self.dpr = dpr;
            self.canvas.set_width((f64::from(css.x) * dpr).round() as u32);
            self.canvas.set_height((f64::from(css.y) * dpr).round() as u32);
        }
    }
}
