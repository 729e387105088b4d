//! The browser shell: owns the canvas, the DOM HUD, the lobby, the socket and the [`Session`],
//! and drives everything from `requestAnimationFrame`. Inputs go out at the simulation tick rate
//! from a fixed-step accumulator; snapshots are applied as they arrive (even in a background
//! tab). The lobby and the room around a match (joining, invite links, host controls) live in
//! [`rooms`].

mod rooms;

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use glam::Vec2;
use serde_json::json;
use shared::protocol::{self, ClientMsg, DisconnectReason, ServerMsg};
use shared::room::{RoomCode, RoomInfo, RoomSummary};
use shared::rules::PLAYER_MAX_HP;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement, KeyboardEvent, MouseEvent, TouchEvent, Window};

use crate::host_panel::HostPanel;
use crate::hud::Hud;
use crate::input::{InputState, TouchStick};
use crate::lobby::{self, JoinTarget, MapEntry, NAME_KEY};
use crate::lobby_view::LobbyView;
use crate::net::{Connection, NetEvent, server_url};
use crate::render::{self, Camera, FrameScene};
use crate::session::{PlayerSprite, Session};
use crate::stats::{FrameTimes, Rate};
use crate::storage;

/// The watchdog's limit: the server answers our pings every second and sends 20–30 snapshots a
/// second, so this long without a message is a dead or stalled link.
const SERVER_SILENCE_MS: f64 = 4000.0;
/// Bytes queued in the socket (`WebSocket.bufferedAmount`) above which no new input is made:
/// about a second of inputs.
const SEND_BACKLOG_BYTES: u32 = 1024;
/// No new input after this long without a message from the server: what a stall queues is at
/// most this much input, which the server applies late (NETCODE.md §5) rather than as a flood.
const STALL_HOLD_MS: f64 = 1000.0;

thread_local! {
    static APP: RefCell<Option<Rc<RefCell<App>>>> = const { RefCell::new(None) };
}

#[derive(Debug, Clone, PartialEq)]
enum ConnState {
    /// On the lobby screen (named for the old name-entry form, which tests wait for).
    NameEntry,
    Connecting,
    Connected,
    /// Lost; the next attempt is at `at_ms`. Endings retrying cannot fix go back to the lobby
    /// instead (see [`lobby::after_close`]).
    Reconnecting {
        at_ms: f64,
        why: String,
    },
}

pub struct App {
    window: Window,
    canvas: HtmlCanvasElement,
    ctx: CanvasRenderingContext2d,
    hud: Hud,
    lobby: LobbyView,
    host_panel: HostPanel,
    input: InputState,
    conn: Option<Connection>,
    state: ConnState,
    session: Option<Session>,
    name: String,
    /// What the current (or next) connection asks for. After a welcome it names the room joined,
    /// so reconnects go back into the same room.
    target: JoinTarget,
    /// The room the player is in, from the welcome and later `Room` messages. Kept while
    /// reconnecting: what happens after a close depends on whether we had got in.
    room: Option<RoomInfo>,
    /// This browser's random id (localStorage), sent in every hello.
    client_id: u64,
    /// The server password the player typed (memory only), or the join token the page was
    /// opened with (`#join=`): sent in every hello.
    auth: Option<shared::protocol::JoinAuth>,
    /// The last resume token and its room, in case sessionStorage is unavailable.
    resume: Option<(RoomCode, u64)>,
    /// The room of the invite link the lobby offers to join (`/r/CODE` without a known name),
    /// and what the server said about it.
    invite: Option<RoomCode>,
    invite_room: Option<RoomSummary>,
    /// The last `/api/rooms` and `/api/maps` answers.
    lobby_rooms: Vec<RoomSummary>,
    /// What `/api/lan` said (asked once at start and with every lobby poll).
    lan: Option<crate::lobby::LanInfo>,
    lan_requested: bool,
    /// A touch screen (it has touch points, or a finger touched): touch controls and hints.
    touch_device: bool,
    maps: Vec<MapEntry>,
    /// Why the lobby is showing again (kicked, room locked...), shown at its top.
    lobby_message: Option<String>,
    /// When the running `/api/rooms` poll started (one at a time), and when the last one did.
    poll_started_ms: Option<f64>,
    last_poll_ms: f64,
    /// When the invite link was last copied, to say so on the button for a moment.
    copied_at_ms: Option<f64>,
    /// The reason the server gave before closing, if any.
    server_reason: Option<DisconnectReason>,
    /// Why the last connection ended, shown until a reconnect succeeds.
    last_close_reason: Option<String>,
    reconnect_attempt: u32,
    /// When the last message from the server arrived: the watchdog gives up on a connection
    /// silent for [`SERVER_SILENCE_MS`] (the server answers our pings every second).
    last_heard_ms: f64,
    /// The player we were (room and id) and when that connection was lost: a welcome back into
    /// the same seat is a resume, and the overlay says how long it took.
    seat: Option<(RoomCode, shared::NetId)>,
    lost_at_ms: Option<f64>,
    /// Connections lost and seats taken back, for the overlay and `arenaDebug`.
    losses: u32,
    resumes: u32,
    /// Input steps not taken because the socket was backed up (see [`SEND_BACKLOG_BYTES`]).
    backlog_skips: u64,
    /// How long the last resume took, from the loss to the welcome back.
    last_resume_ms: Option<f64>,
    /// The server asked us to wait this long before the next try (our seat's old connection
    /// is not yet silent long enough to take over).
    retry_after_ms: f64,
    accumulator_ms: f64,
    last_frame_ms: Option<f64>,
    last_ping_ms: f64,
    last_sent_ms: f64,
    bytes_in: Rate,
    bytes_out: Rate,
    snapshots_in: Rate,
    frames: FrameTimes,
    /// Largest prediction correction in the last second (world units) and when it was reset.
    max_error: (f32, f64),
    /// The F3 overlay's graphs.
    graphs: crate::netgraph::NetGraphs,
    overlay: bool,
    chat_open: bool,
    aim: f32,
    own_pos: Vec2,
    /// Spectators: where the camera looks, and whether it follows the leader.
    spectator_camera: Vec2,
    follow_leader: bool,
    css: Vec2,
    dpr: f64,
    /// What was drawn last frame, for `arenaDebug`.
    drawn_players: Vec<PlayerSprite>,
    drawn_projectiles: usize,
    drawn_orbs: usize,
    /// Where remote entities were drawn last frame (fractional tick), and fixed steps run.
    drawn_render_tick: f64,
    steps_this_frame: u32,
    /// How the game felt, frame by frame, since this page loaded (`arenaDebug().feel`).
    feel: crate::feel::FeelStats,
    /// Every prediction correction (units) since `arenaDebug()` last read them.
    corrections: std::cell::RefCell<Vec<f32>>,
    this: Weak<RefCell<App>>,
}

fn now_ms() -> f64 {
    web_sys::window().and_then(|w| w.performance()).map_or(0.0, |p| p.now())
}

fn log_error(message: &str) {
    web_sys::console::error_1(&JsValue::from_str(message));
}

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

fn listen<E: JsCast + 'static>(
    target: &web_sys::EventTarget,
    event: &str,
    app: &Rc<RefCell<App>>,
    handler: impl Fn(&mut App, E) + 'static,
) -> Result<(), JsValue> {
    let weak = Rc::downgrade(app);
    let closure = Closure::<dyn FnMut(web_sys::Event)>::new(move |raw: web_sys::Event| {
        if let (Some(app), Ok(event)) = (weak.upgrade(), raw.dyn_into::<E>())
            && let Ok(mut app) = app.try_borrow_mut()
        {
            handler(&mut app, event);
        }
    });
    target.add_event_listener_with_callback(event, closure.as_ref().unchecked_ref())?;
    closure.forget(); // Page-lifetime listener.
    Ok(())
}

fn install_listeners(app: &Rc<RefCell<App>>, window: &Window, document: &web_sys::Document) -> Result<(), JsValue> {
    let window_target: &web_sys::EventTarget = window.as_ref();
    listen::<KeyboardEvent>(window_target, "keydown", app, App::on_key_down)?;
    listen::<KeyboardEvent>(window_target, "keyup", app, |app, event| {
        app.input.keys.remove(&event.code());
    })?;
    listen::<web_sys::Event>(window_target, "blur", app, |app, _| app.input.release_all())?;
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
    rooms::install_listeners(app, document)?;
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

/// `arenaDebug()`: what the client sees, as JSON.
pub fn debug_json() -> String {
    APP.with(|slot| match slot.borrow().as_ref().map(|app| app.try_borrow()) {
        Some(Ok(app)) => app.debug().to_string(),
        _ => "{\"state\":\"busy\"}".to_string(),
    })
}

/// The speed as the speed menu spells it. (Avoids `{}` formatting of floats, whose
/// shortest-representation code would add kilobytes to the WASM module.)
fn speed_label(speed: f32) -> &'static str {
    const LABELS: [(f32, &str); 6] = [(0.25, "0.25"), (0.5, "0.5"), (1.0, "1"), (2.0, "2"), (4.0, "4"), (8.0, "8")];
    LABELS.iter().min_by(|a, b| (a.0 - speed).abs().total_cmp(&(b.0 - speed).abs())).map_or("1", |(_, label)| label)
}

impl App {
    fn connect(&mut self) {
        self.conn = None;
        self.session = None;
        self.server_reason = None;
        self.state = ConnState::Connecting;
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

    fn send(&mut self, message: &ClientMsg) {
        let bytes = protocol::encode(message);
        if let Some(conn) = &self.conn
            && conn.send(&bytes)
        {
            let now = now_ms();
            self.bytes_out.add(now, bytes.len() as f64);
            self.last_sent_ms = now;
        }
    }

    fn on_net(&mut self, event: NetEvent) {
        let now = now_ms();
        match event {
            NetEvent::Open => {
                let remembered = self.resume;
                let hello = lobby::hello(
                    &self.name,
                    &self.target,
                    self.client_id,
                    |code| storage::credentials(code, remembered),
                    self.auth.clone(),
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
    fn on_server_silent(&mut self, now: f64) {
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

    fn schedule_reconnect(&mut self, why: String) {
        // The first retry is quick (a held seat is waiting), then backing off to 15 s.
        let delay = (500.0 * 2f64.powi(self.reconnect_attempt.min(5) as i32)).min(15_000.0).max(self.retry_after_ms);
        self.retry_after_ms = 0.0;
        self.reconnect_attempt += 1;
        self.state = ConnState::Reconnecting { at_ms: now_ms() + delay, why };
    }

    fn on_key_down(&mut self, event: KeyboardEvent) {
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
                self.input.keys.insert(code);
            }
        }
    }

    fn close_chat(&mut self) {
        self.chat_open = false;
        self.hud.chat_input.set_value("");
        let _ = self.hud.chat_input.blur();
        Hud::show(&self.hud.chat_input, false);
        let _ = self.canvas.focus();
    }

    /// Switches the page to touch controls: the hints name thumbs, not keys and a mouse.
    fn set_touch_device(&mut self) {
        if self.touch_device {
            return;
        }
        self.touch_device = true;
        if let Some(body) = self.window.document().and_then(|d| d.body()) {
            let _ = body.class_list().add_1("touch");
        }
        self.hud.help.set_text_content(Some("Left thumb: drag to move · right thumb: hold to aim and fire"));
    }

    fn on_touch(&mut self, event: TouchEvent) {
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
    fn fit_canvas(&mut self) {
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

    fn frame(&mut self, now: f64) {
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

    fn play_frame(&mut self, now: f64, frame_dt: f64) {
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
    fn send_inputs(&mut self, session: &mut Session, frame_dt: f64) {
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
    fn move_spectator_camera(&mut self, session: &Session, frame_dt: f64) {
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
    fn replay_control(&mut self, paused: Option<bool>, speed: Option<f32>, seek: Option<u32>) {
        let Some(status) = self.session.as_ref().and_then(|s| s.replay) else { return };
        let message = ClientMsg::ReplayControl {
            paused: paused.unwrap_or(status.paused),
            speed: speed.unwrap_or(status.speed).clamp(0.25, 8.0),
            seek: seek.map(shared::tick::Tick),
        };
        self.send(&message);
    }

    fn update_status(&mut self, now: f64) {
        match &self.state {
            ConnState::NameEntry | ConnState::Connected => self.hud.set_status(None, false),
            ConnState::Connecting => self.hud.set_status(Some("Connecting…"), false),
            ConnState::Reconnecting { at_ms, why } => {
                let seconds = ((at_ms - now) / 1000.0).ceil().max(0.0);
                let text = format!("Disconnected: {why}. Reconnecting in {seconds:.0} s…");
                self.hud.set_status(Some(&text), true);
            }
        }
        let show_overlay = self.overlay;
        Hud::show(&self.hud.netgraph, show_overlay);
    }

    fn update_hud(&mut self, session: &Session, now: f64) {
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
            let score_text = format!("Score {} · #{} of {}", own.score, own.rank, session.leaderboard.players.max(1));
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

    fn netgraph_text(&mut self, session: &Session, now: f64) -> String {
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

    fn debug(&self) -> serde_json::Value {
        let state = match &self.state {
            ConnState::NameEntry => "name-entry",
            ConnState::Connecting => "connecting",
            ConnState::Connected => "connected",
            ConnState::Reconnecting { .. } => "reconnecting",
        };
        let why = match &self.state {
            ConnState::Reconnecting { why, .. } => Some(why.clone()),
            _ => None,
        };
        let mut value = json!({
            "state": state,
            "close_reason": why,
            "reconnect_attempt": self.reconnect_attempt,
            "losses": self.losses,
            "resumes": self.resumes,
            "backlog_skips": self.backlog_skips,
            "send_buffered": self.conn.as_ref().map_or(0, |conn| conn.buffered()),
            "name": self.name,
            "status_text": self.hud.status.text_content(),
            "overlay": self.overlay,
            "touch": {
                "device": self.touch_device,
                "moving": self.input.move_touch.is_some(),
                "aiming": self.input.aim_touch.is_some(),
                "help": self.hud.help.text_content(),
            },
            "frame": {
                "frames": self.frames.frames,
                "last_ms": self.frames.last(),
                "mean_ms": self.frames.mean(),
                "p50_ms": self.frames.quantile(0.5),
                "p99_ms": self.frames.quantile(0.99),
            },
        });
        self.debug_rooms(&mut value);
        if let Some(session) = &self.session {
            let players: Vec<_> = self
                .drawn_players
                .iter()
                .map(|p| json!({"id": p.id.0, "name": session.name_of(p.id), "x": p.pos.x, "y": p.pos.y, "alive": p.alive, "hp": p.hp, "own": p.own, "away": p.away}))
                .collect();
            let chat: Vec<_> = session.chat.iter().map(|l| json!({"from": l.from, "text": l.text})).collect();
            let kills: Vec<_> = session.kill_feed.iter().map(|l| l.text.clone()).collect();
            let notices: Vec<_> = session.notices.iter().map(|l| l.text.clone()).collect();
            let board: Vec<_> = session
                .leaderboard_rows()
                .into_iter()
                .map(|(rank, name, score, me)| json!({"rank": rank, "name": name, "score": score, "me": me}))
                .collect();
            value["player_id"] = json!(session.me().0);
            value["spectator"] = json!(session.is_spectator());
            value["replay"] = json!(session.replay.map(|r| json!({"tick": r.tick.0, "total_ticks": r.total_ticks, "paused": r.paused, "speed": r.speed, "epoch": r.epoch})));
            value["tick"] = json!(session.last_tick.map(|t| t.0));
            value["snapshots"] = json!(session.snapshots);
            value["decode_errors"] = json!(session.decode_errors);
            value["own"] = json!(session.own.map(
                |o| json!({"x": o.pos.x, "y": o.pos.y, "alive": o.alive, "hp": o.hp, "score": o.score, "rank": o.rank})
            ));
            value["players"] = json!(players);
            value["projectiles"] = json!(self.drawn_projectiles);
            value["orbs"] = json!(self.drawn_orbs);
            value["chat"] = json!(chat);
            value["kill_feed"] = json!(kills);
            value["notices"] = json!(notices);
            value["leaderboard"] = json!(board);
            value["feel"] = serde_json::to_value(&self.feel).unwrap_or_default();
            value["net"] = json!({
                "rtt_ms": session.clock.rtt_ms,
                "interp_delay_ticks": session.playout.delay_ticks(),
                "jitter_ticks": session.playout.jitter_ticks(),
                "render_tick": self.drawn_render_tick,
                "newest_tick": session.playout.newest_tick(),
                "extrapolated_ms": session.playout.extrapolated_ms,
                "correction_offset": session.predictor.correction_offset(),
                "steps_this_frame": self.steps_this_frame,
                "server_input_queue": session.pacer.last_report(),
                "corrections": std::mem::take(&mut *self.corrections.borrow_mut()),
                "input_rate": session.pacer.rate(),
                "prediction_error": session.predictor.last_error,
                "pending_inputs": session.predictor.pending(),
                "budget_bytes": self.graphs.snapshot_bytes.limit,
                "graph_samples": self.graphs.rtt.len(),
                "snapshots_over_budget": self.graphs.snapshot_bytes.over_limit(),
                "largest_snapshot_bytes": self.graphs.snapshot_bytes.samples().fold(0.0f32, f32::max),
            });
        }
        value
    }
}
