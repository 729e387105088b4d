//! The browser shell's state: the [`App`] (canvas, HUD, lobby, socket, session, the input
//! accumulator and the feel counters), its connection state, the one instance the page runs,
//! and the small helpers every part of the shell uses (the clock, event listeners).

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use glam::Vec2;
use shared::protocol::DisconnectReason;
use shared::room::{RoomCode, RoomInfo, RoomSummary};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement, Window};

use crate::host_panel::HostPanel;
use crate::hud::Hud;
use crate::input::InputState;
use crate::lobby::{JoinTarget, MapEntry};
use crate::lobby_view::LobbyView;
use crate::net::Connection;
use crate::session::{PlayerSprite, Session};
use crate::stats::{FrameTimes, Rate};

/// The watchdog's limit: the server answers our pings every second and sends 20–30 snapshots a
/// second, so this long without a message is a dead or stalled link.
pub(super) const SERVER_SILENCE_MS: f64 = 4000.0;
/// Bytes queued in the socket (`WebSocket.bufferedAmount`) above which no new input is made:
/// about a second of inputs.
pub(super) const SEND_BACKLOG_BYTES: u32 = 1024;
/// No new input after this long without a message from the server: what a stall queues is at
/// most this much input, which the server applies late (NETCODE.md §5) rather than as a flood.
pub(super) const STALL_HOLD_MS: f64 = 1000.0;

thread_local! {
    pub(super) static APP: RefCell<Option<Rc<RefCell<App>>>> = const { RefCell::new(None) };
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum ConnState {
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
    pub(super) window: Window,
    pub(super) canvas: HtmlCanvasElement,
    pub(super) ctx: CanvasRenderingContext2d,
    pub(super) hud: Hud,
    pub(super) lobby: LobbyView,
    pub(super) host_panel: HostPanel,
    pub(super) input: InputState,
    pub(super) conn: Option<Connection>,
    pub(super) state: ConnState,
    pub(super) session: Option<Session>,
    pub(super) name: String,
    /// What the current (or next) connection asks for. After a welcome it names the room joined,
    /// so reconnects go back into the same room.
    pub(super) target: JoinTarget,
    /// The room the player is in, from the welcome and later `Room` messages. Kept while
    /// reconnecting: what happens after a close depends on whether we had got in.
    pub(super) room: Option<RoomInfo>,
    /// This browser's random id (localStorage), sent in every hello.
    pub(super) client_id: u64,
    /// This player's rating and board place after their last rated round.
    pub(super) my_rating: Option<(f32, Option<u32>)>,
    /// The server password the player typed (memory only), or the join token the page was
    /// opened with (`#join=`): sent in every hello.
    pub(super) auth: Option<shared::protocol::JoinAuth>,
    /// The last resume token and its room, in case sessionStorage is unavailable.
    pub(super) resume: Option<(RoomCode, u64)>,
    /// The room of the invite link the lobby offers to join (`/r/CODE` without a known name),
    /// and what the server said about it.
    pub(super) invite: Option<RoomCode>,
    pub(super) invite_room: Option<RoomSummary>,
    /// The last `/api/rooms` and `/api/maps` answers.
    pub(super) lobby_rooms: Vec<RoomSummary>,
    /// What `/api/lan` said (asked once at start and with every lobby poll).
    pub(super) lan: Option<crate::lobby::LanInfo>,
    pub(super) lan_requested: bool,
    /// A touch screen (it has touch points, or a finger touched): touch controls and hints.
    pub(super) touch_device: bool,
    pub(super) maps: Vec<MapEntry>,
    /// Why the lobby is showing again (kicked, room locked...), shown at its top.
    pub(super) lobby_message: Option<String>,
    /// When the running `/api/rooms` poll started (one at a time), and when the last one did.
    pub(super) poll_started_ms: Option<f64>,
    pub(super) last_poll_ms: f64,
    /// When the invite link was last copied, to say so on the button for a moment.
    pub(super) copied_at_ms: Option<f64>,
    /// The reason the server gave before closing, if any.
    pub(super) server_reason: Option<DisconnectReason>,
    /// Why the last connection ended, shown until a reconnect succeeds.
    pub(super) last_close_reason: Option<String>,
    pub(super) reconnect_attempt: u32,
    /// When the last message from the server arrived: the watchdog gives up on a connection
    /// silent for [`SERVER_SILENCE_MS`] (the server answers our pings every second).
    pub(super) last_heard_ms: f64,
    /// The player we were (room and id) and when that connection was lost: a welcome back into
    /// the same seat is a resume, and the overlay says how long it took.
    pub(super) seat: Option<(RoomCode, shared::NetId)>,
    pub(super) lost_at_ms: Option<f64>,
    /// How long the server holds our seat after a drop (from the last welcome; 0: no seat).
    pub(super) seat_hold_ms: f64,
    /// When the connection attempt under way began.
    pub(super) connecting_since_ms: f64,
    /// Connections lost and seats taken back, for the overlay and `arenaDebug`.
    pub(super) losses: u32,
    pub(super) resumes: u32,
    /// Input steps not taken because the socket was backed up (see [`SEND_BACKLOG_BYTES`]).
    pub(super) backlog_skips: u64,
    /// How long the last resume took, from the loss to the welcome back.
    pub(super) last_resume_ms: Option<f64>,
    /// The server asked us to wait this long before the next try (our seat's old connection
    /// is not yet silent long enough to take over).
    pub(super) retry_after_ms: f64,
    pub(super) accumulator_ms: f64,
    pub(super) last_frame_ms: Option<f64>,
    pub(super) last_ping_ms: f64,
    pub(super) last_sent_ms: f64,
    pub(super) bytes_in: Rate,
    pub(super) bytes_out: Rate,
    pub(super) snapshots_in: Rate,
    pub(super) frames: FrameTimes,
    /// Largest prediction correction in the last second (world units) and when it was reset.
    pub(super) max_error: (f32, f64),
    /// The F3 overlay's graphs.
    pub(super) graphs: crate::netgraph::NetGraphs,
    pub(super) overlay: bool,
    pub(super) chat_open: bool,
    pub(super) aim: f32,
    pub(super) own_pos: Vec2,
    /// Spectators: where the camera looks, and whether it follows the leader.
    pub(super) spectator_camera: Vec2,
    pub(super) follow_leader: bool,
    pub(super) css: Vec2,
    pub(super) dpr: f64,
    /// What was drawn last frame, for `arenaDebug`.
    pub(super) drawn_players: Vec<PlayerSprite>,
    pub(super) drawn_projectiles: usize,
    pub(super) drawn_orbs: usize,
    /// Where remote entities were drawn last frame (fractional tick), and fixed steps run.
    pub(super) drawn_render_tick: f64,
    pub(super) steps_this_frame: u32,
    /// How the game felt, frame by frame, since this page loaded (`arenaDebug().feel`).
    pub(super) feel: crate::feel::FeelStats,
    /// Every prediction correction (units) since `arenaDebug()` last read them.
    pub(super) corrections: std::cell::RefCell<Vec<f32>>,
    pub(super) this: Weak<RefCell<App>>,
}

pub(super) fn now_ms() -> f64 {
    web_sys::window().and_then(|w| w.performance()).map_or(0.0, |p| p.now())
}

pub(super) fn log_error(message: &str) {
    web_sys::console::error_1(&JsValue::from_str(message));
}

pub(super) fn listen<E: JsCast + 'static>(
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
