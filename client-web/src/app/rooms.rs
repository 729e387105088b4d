//! The app around a match: the lobby screen (room list polling, quick play, join by code,
//! create), the first screen a URL leads to, the room a connection asks for and what a closed
//! connection leads to, the in-room box (invite link, copy, Leave) and the host's controls.
//! The rules themselves are plain Rust in `lobby` and `route`; this is their browser wiring.

use std::cell::RefCell;
use std::rc::Rc;

use serde_json::{Value, json};
use shared::NetId;
use shared::protocol::{Welcome, sanitize_name};
use shared::room::{HostCmd, RoomCode, RoomInfo};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{JsFuture, spawn_local};
use web_sys::{Document, Element, Event, EventTarget, KeyboardEvent};

use super::state::{App, ConnState, listen, now_ms};
use crate::http::{self, Reply};
use crate::hud::Hud;
use crate::lobby::{self, AfterClose, Ending, JoinTarget, NAME_KEY, RoomState};
use crate::route::{self, Launch};
use crate::session::Session;
use crate::storage;

/// How often the lobby asks for the room list.
const POLL_INTERVAL_MS: f64 = 1000.0;
/// A poll that has not answered after this long is given up on, so one lost request does not
/// stop the list from refreshing.
const POLL_TIMEOUT_MS: f64 = 5000.0;
/// How long the copy button says "Copied!".
const COPIED_LABEL_MS: f64 = 2000.0;

pub(super) fn install_listeners(app: &Rc<RefCell<App>>, document: &Document) -> Result<(), JsValue> {
    on_click(document, "play", app, App::play_clicked)?;
    on_click(document, "join-code", app, App::join_code_clicked)?;
    on_click(document, "create", app, App::create_clicked)?;
    on_click(document, "leave", app, App::leave)?;
    on_click(document, "copy-invite", app, App::copy_invite)?;
    on_click(document, "host-restart", app, |app| app.host_command(HostCmd::Restart))?;
    on_click(document, "host-set-map", app, App::set_map_clicked)?;
    on_click(document, "host-set-bots", app, App::set_bots_clicked)?;
    on_click(document, "host-set-rounds", app, |app| {
        if let Some(rules) = lobby::round_rules_from(&app.host_panel.rounds.value()) {
            app.host_command(HostCmd::SetRounds { rules });
        }
    })?;
    on_click(document, "host-lock", app, |app| {
        let locked = app.room.as_ref().is_some_and(|room| room.locked);
        app.host_command(HostCmd::SetLocked { locked: !locked });
    })?;
    on_click(document, "host-public", app, |app| {
        let public = app.room.as_ref().is_some_and(|room| room.public);
        app.host_command(HostCmd::SetPublic { public: !public });
    })?;
    // Rows come and go with every refresh: one listener on each list handles all its buttons.
    listen::<Event>(&by_id(document, "lobby-rooms")?, "click", app, |app, event| {
        let Some(button) = clicked_button(&event) else { return };
        let code = button
            .closest("[data-code]")
            .ok()
            .flatten()
            .and_then(|row| row.get_attribute("data-code"))
            .and_then(|code| RoomCode::parse(&code));
        let Some(code) = code else { return };
        if button.class_list().contains("join") {
            app.start_join(JoinTarget::Join(code));
        } else if button.class_list().contains("watch") {
            app.start_join(JoinTarget::Watch(code));
        }
    })?;
    listen::<Event>(&by_id(document, "host-players")?, "click", app, |app, event| {
        let Some(button) = clicked_button(&event) else { return };
        let Some(player) = button.get_attribute("data-id").and_then(|id| id.parse().ok()).map(NetId) else {
            return;
        };
        if button.class_list().contains("kick") {
            app.host_command(HostCmd::Kick { player });
        } else if button.class_list().contains("handover") {
            app.host_command(HostCmd::Handover { player });
        }
    })?;
    Ok(())
}

fn by_id(document: &Document, id: &str) -> Result<EventTarget, JsValue> {
    Ok(document.get_element_by_id(id).ok_or_else(|| format!("#{id} missing from index.html"))?.into())
}

fn on_click(
    document: &Document,
    id: &str,
    app: &Rc<RefCell<App>>,
    handler: impl Fn(&mut App) + 'static,
) -> Result<(), JsValue> {
    listen::<Event>(&by_id(document, id)?, "click", app, move |app, event| {
        event.prevent_default();
        handler(app);
    })
}

/// The button a click landed on (or inside), if any.
fn clicked_button(event: &Event) -> Option<Element> {
    event.target()?.dyn_into::<Element>().ok()?.closest("button").ok()?
}

fn event_element(event: &Event) -> Option<Element> {
    event.target()?.dyn_into::<Element>().ok()
}

/// The room as `arenaDebug()` shows it: everything but the host key, which stays secret.
fn room_json(room: &RoomInfo) -> Value {
    json!({
        "code": room.code.as_str(),
        "name": room.name,
        "public": room.public,
        "locked": room.locked,
        "map_id": room.map_id,
        "bots": room.bots,
        "max_players": room.max_players,
        "host": room.host.map(|id| id.0),
        "you_are_host": room.you_are_host,
        "permanent": room.permanent,
        "maps": room.maps,
        "round": room.round,
        "round_seconds": room.rounds.seconds,
        "round_ends_at": room.round_ends_at.map(|tick| tick.0),
    })
}

fn target_label(target: &JoinTarget) -> String {
    match target {
        JoinTarget::QuickPlay => "quick-play".to_string(),
        JoinTarget::Join(code) => format!("join {code}"),
        JoinTarget::Watch(code) => format!("watch {code}"),
        JoinTarget::Create(_) => "create".to_string(),
    }
}

/// The other human players of a match (no bots, not me), by id: the host's Kick / Make host list.
fn other_humans(session: &Session) -> Vec<(NetId, String)> {
    let mut players: Vec<(NetId, String)> = session
        .roster
        .iter()
        .filter(|(id, entry)| !entry.bot && **id != session.me() && **id != NetId(0))
        .map(|(id, entry)| (*id, entry.name.clone()))
        .collect();
    players.sort_by_key(|(id, _)| id.0);
    players
}

impl App {
    /// The first screen, from the URL (`/`, `/r/CODE`, `?name=&autojoin=`) and the remembered name.
    pub(super) fn launch(&mut self) {
        let location = self.window.location();
        let path = route::local_path(&route::base(), &location.pathname().unwrap_or_default());
        // A join token handed over in the fragment: kept in memory, taken out of the address bar
        // (and so out of the history) at once.
        if let Some(token) = lobby::token_in_fragment(&location.hash().unwrap_or_default()) {
            self.auth = Some(shared::protocol::JoinAuth::Token(token));
            let search = location.search().unwrap_or_default();
            self.replace_url(&format!("{path}{search}"));
        }
        let params = web_sys::UrlSearchParams::new_with_str(&location.search().unwrap_or_default()).ok();
        let param = |key: &str| params.as_ref().and_then(|params| params.get(key));
        if let Some(name) = param("name") {
            self.lobby.name_input.set_value(&name);
        }
        let autojoin = route::autojoin_param(param("autojoin").as_deref());
        let path_room = route::room_in_path(&path);
        match route::launch(path_room, autojoin, !self.name.trim().is_empty()) {
            Launch::Play(target) => self.start_join(target),
            Launch::Lobby { invite } => {
                let bad_link = path.starts_with("/r/") && path_room.is_none();
                let message = bad_link.then(|| "That invite link has no valid room code".to_string());
                self.show_lobby(invite, message);
            }
        }
    }

    /// Shows the lobby, with no connection: after Leave, after an ending retrying cannot fix,
    /// or as the first screen. `invite` makes the play button join that room.
    pub(super) fn show_lobby(&mut self, invite: Option<RoomCode>, message: Option<String>) {
        self.conn = None;
        self.session = None;
        // Whatever comes next is a new visit, not a reconnect.
        self.lost_at_ms = None;
        self.seat = None;
        self.room = None;
        self.state = ConnState::NameEntry;
        self.target = JoinTarget::QuickPlay;
        self.server_reason = None;
        self.last_close_reason = None;
        self.reconnect_attempt = 0;
        self.chat_open = false;
        self.hud.chat_input.set_value("");
        Hud::show(&self.hud.chat_input, false);
        self.input.release_all();
        self.replace_url(&invite.map_or_else(|| "/".to_string(), route::room_path));
        self.set_invite(invite);
        self.set_lobby_message(message);
        Hud::show(&self.hud.hud_root, false);
        self.lobby.show(true);
        self.last_poll_ms = f64::NEG_INFINITY; // The list is stale: refresh it on the next frame.
        let _ = self.lobby.name_input.focus();
        if let Some(code) = invite {
            self.check_invite(code);
        }
    }

    pub(super) fn set_invite(&mut self, invite: Option<RoomCode>) {
        self.invite = invite;
        self.invite_room = None;
        self.lobby.set_invite(invite, None);
    }

    pub(super) fn set_lobby_message(&mut self, message: Option<String>) {
        self.lobby.set_message(message.as_deref());
        self.lobby_message = message;
    }

    /// Leaves the lobby for a room: remembers the name and connects.
    pub(super) fn start_join(&mut self, target: JoinTarget) {
        if let Some(password) = self.lobby.typed_password() {
            self.auth = Some(shared::protocol::JoinAuth::Password(password));
        }
        let name = sanitize_name(&self.lobby.name_input.value());
        storage::local_set(NAME_KEY, &name);
        self.lobby.name_input.set_value(&name);
        self.name = name;
        self.target = target;
        self.room = None;
        self.set_invite(None);
        self.set_lobby_message(None);
        self.lobby.show(false);
        Hud::show(&self.hud.hud_root, true);
        let _ = self.canvas.focus();
        self.reconnect_attempt = 0;
        self.last_close_reason = None;
        self.connect();
    }

    /// `#play`: quick play, or the invite link's room.
    pub(super) fn play_clicked(&mut self) {
        let target = self.invite.map_or(JoinTarget::QuickPlay, JoinTarget::Join);
        self.start_join(target);
    }

    pub(super) fn join_code_clicked(&mut self) {
        match lobby::typed_code(&self.lobby.code_input.value()) {
            Ok(code) => self.start_join(JoinTarget::Join(code)),
            Err(message) => {
                self.set_lobby_message(Some(message));
                let _ = self.lobby.code_input.focus();
            }
        }
    }

    pub(super) fn create_clicked(&mut self) {
        let settings = lobby::settings_from_form(
            &self.lobby.create_name.value(),
            self.lobby.create_public.checked(),
            &self.lobby.create_map.value(),
            &self.lobby.create_bots.value(),
            (&self.lobby.create_max.value(), &self.lobby.create_rounds.value()),
        );
        self.start_join(JoinTarget::Create(settings));
    }

    /// Enter in the lobby does what the box being typed in is for.
    pub(super) fn on_lobby_key(&mut self, event: &KeyboardEvent) {
        if !matches!(event.code().as_str(), "Enter" | "NumpadEnter") {
            return;
        }
        let Some(element) = event_element(event) else { return };
        let action: fn(&mut App) = match element.id().as_str() {
            "code" => App::join_code_clicked,
            "create-name" | "create-bots" | "create-max" => App::create_clicked,
            "name" => App::play_clicked,
            _ if element.tag_name() == "BODY" => App::play_clicked,
            // Buttons, menus and checkboxes do their own thing with Enter.
            _ => return,
        };
        event.prevent_default();
        action(self);
    }

    /// Keys typed into the room box or the host controls are theirs, not game controls. True
    /// when the key was such a key.
    pub(super) fn on_panel_key(&mut self, event: &KeyboardEvent) -> bool {
        let Some(element) = event_element(event) else { return false };
        if !self.hud.top_left.contains(Some(&element)) {
            return false;
        }
        if matches!(event.code().as_str(), "Enter" | "NumpadEnter") && element.id() == "host-bots" {
            event.prevent_default();
            self.set_bots_clicked();
        }
        true
    }

    pub(super) fn is_live_spectator(&self) -> bool {
        self.session.as_ref().is_some_and(|session| session.welcome.spectator)
    }

    /// Refreshes the lobby's room list (and the map list until it arrives), one request at a
    /// time, about once a second.
    pub(super) fn poll_lobby(&mut self, now: f64) {
        let busy = self.poll_started_ms.is_some_and(|started| now - started < POLL_TIMEOUT_MS);
        if busy || now - self.last_poll_ms < POLL_INTERVAL_MS {
            return;
        }
        self.poll_started_ms = Some(now);
        self.last_poll_ms = now;
        let want_maps = self.maps.is_empty();
        let weak = self.this.clone();
        self.lan_requested = true;
        spawn_local(async move {
            let rooms = http::get("/api/rooms").await;
            let maps = if want_maps { Some(http::get("/api/maps").await) } else { None };
            let lan = http::get("/api/lan").await;
            if let Some(app) = weak.upgrade()
                && let Ok(mut app) = app.try_borrow_mut()
            {
                app.on_lan(lan);
                app.on_lobby_lists(rooms, maps);
            }
        });
    }

    /// Asks for `/api/lan` once (a player who came straight into a room by an invite link).
    pub(super) fn fetch_lan(&mut self) {
        let weak = self.this.clone();
        spawn_local(async move {
            let lan = http::get("/api/lan").await;
            if let Some(app) = weak.upgrade()
                && let Ok(mut app) = app.try_borrow_mut()
            {
                app.on_lan(lan);
            }
        });
    }

    pub(super) fn on_lan(&mut self, reply: Result<Reply, JsValue>) {
        if let Ok(reply) = reply
            && reply.ok()
            && let Some(lan) = lobby::parse_lan(&reply.body)
        {
            self.lobby.set_lan(&lan);
            self.lan = Some(lan);
        }
    }

    /// A server without the API (or one that is down) leaves the lists as they were.
    pub(super) fn on_lobby_lists(&mut self, rooms: Result<Reply, JsValue>, maps: Option<Result<Reply, JsValue>>) {
        self.poll_started_ms = None;
        if let Ok(reply) = rooms
            && reply.ok()
            && let Some(rooms) = lobby::parse_rooms(&reply.body)
        {
            self.lobby_rooms = rooms;
        }
        if let Some(Ok(reply)) = maps
            && reply.ok()
            && let Some(maps) = lobby::parse_maps(&reply.body)
        {
            self.maps = maps;
            self.lobby.set_maps(&self.maps);
        }
        self.lobby.set_rooms(&self.lobby_rooms, &self.maps);
    }

    /// Asks the server about an invite link's room, to name it in the lobby (or say it is gone).
    pub(super) fn check_invite(&mut self, code: RoomCode) {
        let weak = self.this.clone();
        spawn_local(async move {
            let reply = http::get(&format!("/api/rooms/{code}")).await;
            if let Some(app) = weak.upgrade()
                && let Ok(mut app) = app.try_borrow_mut()
            {
                app.on_invite_reply(code, reply);
            }
        });
    }

    pub(super) fn on_invite_reply(&mut self, code: RoomCode, reply: Result<Reply, JsValue>) {
        if self.invite != Some(code) || self.state != ConnState::NameEntry {
            return; // The player moved on meanwhile.
        }
        let Ok(reply) = reply else { return };
        if reply.status == 404 {
            self.set_invite(None);
            self.replace_url("/");
            self.set_lobby_message(Some(format!("No room has the code {code}; it may have closed")));
        } else if reply.ok()
            && let Some(room) = lobby::parse_room(&reply.body)
        {
            self.lobby.set_invite(Some(code), Some(&room));
            self.invite_room = Some(room);
        }
    }

    /// A welcome starts a match: the first on a connection, or a new one after the host
    /// restarted it or changed the map (same connection, fresh session; chat carries over).
    pub(super) fn on_welcome(&mut self, welcome: Welcome) {
        let code = welcome.room.code;
        if let Some(player) = &welcome.player {
            storage::save_player(player);
        }
        let replay = welcome.replay.is_some();
        if !welcome.spectator && !replay {
            self.resume = Some((code, welcome.resume_token));
            storage::save_resume(code, welcome.resume_token);
        }
        if let Some(key) = &welcome.room.host_key {
            storage::save_host_key(code, key);
        }
        // A replay is no room one can come back to or invite to.
        if !replay {
            self.target = if welcome.spectator { JoinTarget::Watch(code) } else { JoinTarget::Join(code) };
            self.replace_url(&route::room_path(code));
        }
        let same_room = self.room.as_ref().is_some_and(|room| room.code == code);
        let seat = (!welcome.spectator && !replay).then_some((code, welcome.player_id));
        let resumed = seat.is_some() && seat == self.seat;
        let lost_for_ms = self.lost_at_ms.take().map(|at| now_ms() - at);
        self.seat_hold_ms = if seat.is_some() { f64::from(welcome.seat_hold_ms) } else { 0.0 };
        self.seat = seat;
        self.graphs = crate::netgraph::NetGraphs::new(welcome.snapshot_budget_bytes);
        let mut session = Session::new(welcome);
        if same_room && let Some(old) = self.session.take() {
            session.chat = old.chat;
        }
        if let Some(lost_for_ms) = lost_for_ms {
            let text = if resumed {
                self.resumes += 1;
                self.last_resume_ms = Some(lost_for_ms);
                format!("Reconnected after {:.1} s: same player, same place, same score", lost_for_ms / 1000.0)
            } else {
                format!("Reconnected after {:.1} s as a new player (the old seat was gone)", lost_for_ms / 1000.0)
            };
            session.notices.push_back(crate::session::FeedLine { at_ms: now_ms(), text, from: None });
        }
        self.room = Some(session.welcome.room.clone());
        self.session = Some(session);
        self.state = ConnState::Connected;
        self.reconnect_attempt = 0;
        self.last_close_reason = None;
        self.accumulator_ms = 0.0;
        self.last_ping_ms = 0.0;
        self.follow_leader = true;
    }

    /// The room changed (host, lock, visibility, bots...): the HUD and host panel follow it.
    pub(super) fn on_room(&mut self, room: RoomInfo) {
        if let Some(key) = &room.host_key {
            storage::save_host_key(room.code, key);
        }
        self.room = Some(room);
    }

    /// A connection ended (`why` in words): retry, or back to the lobby saying why.
    pub(super) fn on_closed(&mut self, code: u16, why: String) {
        let ending = Ending {
            reason: self.server_reason.as_ref(),
            code,
            why: &why,
            target: &self.target,
            in_room: self.room.as_ref().map(|room| RoomState { permanent: room.permanent }),
        };
        match lobby::after_close(ending) {
            AfterClose::Retry => {
                self.last_close_reason = Some(why.clone());
                self.schedule_reconnect(why);
            }
            AfterClose::QuickPlay => {
                // Not a failure but a redirect: go again now, still saying why we were cut off.
                self.target = JoinTarget::QuickPlay;
                self.room = None;
                let why = self.last_close_reason.clone().unwrap_or(why);
                self.state = ConnState::Reconnecting { at_ms: now_ms(), why };
            }
            AfterClose::Lobby(message) => {
                let asks_password = lobby::asks_password(self.server_reason.as_ref(), code);
                // A wrong password is forgotten; the invite (if any) stays for the next try.
                let invite = match &self.target {
                    JoinTarget::Join(code) if asks_password => Some(*code),
                    _ => None,
                };
                if asks_password && matches!(self.auth, Some(shared::protocol::JoinAuth::Password(_)) | None) {
                    self.auth = None;
                }
                // A refused join token (used already, expired, for another server) will not do
                // better on a second try: forget it, so a next Play is not refused the same way.
                if matches!(
                    self.server_reason,
                    Some(
                        shared::protocol::DisconnectReason::TokenInvalid { .. }
                            | shared::protocol::DisconnectReason::TokenExpired
                    )
                ) && matches!(self.auth, Some(shared::protocol::JoinAuth::Token(_)))
                {
                    self.auth = None;
                }
                self.show_lobby(invite, Some(message));
                if asks_password {
                    self.lobby.ask_password();
                }
            }
        }
    }

    /// `#leave`: a normal close (1000), which the server takes as the player leaving; its close
    /// event never reaches us, so nothing reconnects.
    pub(super) fn leave(&mut self) {
        if let Some(conn) = self.conn.take() {
            conn.close_normally();
        }
        self.show_lobby(None, None);
    }

    /// Shows `path` (as the routes know it) in the address bar, under the page's base.
    pub(super) fn replace_url(&self, path: &str) {
        if let Ok(history) = self.window.history() {
            let _ = history.replace_state_with_url(&JsValue::NULL, "", Some(&route::at(path)));
        }
    }

    /// The room's invite for other devices: on the server's LAN address when it has one (never
    /// `localhost`, even when this page was opened at localhost), else this page's origin.
    pub(super) fn invite_link(&self, code: RoomCode) -> String {
        let origin = format!("{}{}", self.window.location().origin().unwrap_or_default(), route::base());
        route::invite_link(&lobby::invite_base(self.lan.as_ref(), &origin), code)
    }

    /// `#copy-invite`: the clipboard where the browser offers one (secure pages), else the link
    /// is selected so the player can copy it by hand.
    pub(super) fn copy_invite(&mut self) {
        let Some(code) = self.room.as_ref().map(|room| room.code) else { return };
        let link = self.invite_link(code);
        // Give the keyboard back to the game (Space would press the button again).
        let _ = self.canvas.focus();
        let navigator = self.window.navigator();
        // `navigator.clipboard` is undefined on plain-http pages other than localhost.
        let clipboard = js_sys::Reflect::get(&navigator, &JsValue::from_str("clipboard"))
            .ok()
            .filter(|clipboard| clipboard.is_object())
            .map(JsCast::unchecked_into::<web_sys::Clipboard>);
        let Some(clipboard) = clipboard else {
            self.select_invite_text();
            return;
        };
        let written = JsFuture::from(clipboard.write_text(&link));
        let weak = self.this.clone();
        spawn_local(async move {
            let copied = written.await.is_ok();
            if let Some(app) = weak.upgrade()
                && let Ok(mut app) = app.try_borrow_mut()
            {
                if copied {
                    app.copied_at_ms = Some(now_ms());
                } else {
                    app.select_invite_text();
                }
            }
        });
    }

    /// Selects the link's text and tries the old copy command; the selection stays either way.
    pub(super) fn select_invite_text(&mut self) {
        let Some(document) = self.window.document() else { return };
        if let (Ok(range), Ok(Some(selection))) = (document.create_range(), self.window.get_selection()) {
            let _ = range.select_node_contents(&self.hud.invite_link);
            let _ = selection.remove_all_ranges();
            let _ = selection.add_range(&range);
        }
        let copied = document.dyn_into::<web_sys::HtmlDocument>().ok().and_then(|html| html.exec_command("copy").ok());
        if copied == Some(true) {
            self.copied_at_ms = Some(now_ms());
        }
    }

    /// Sends a host command, only while this client is the host (from anyone else the server
    /// closes the connection). The game gets the keyboard back afterwards.
    pub(super) fn host_command(&mut self, command: HostCmd) {
        let is_host = self.room.as_ref().is_some_and(|room| room.you_are_host);
        if is_host && self.state == ConnState::Connected {
            self.send(&shared::ClientMsg::Host(command));
        }
        let _ = self.canvas.focus();
    }

    pub(super) fn set_map_clicked(&mut self) {
        let map = self.host_panel.map.value();
        if !map.is_empty() {
            self.host_command(HostCmd::SetMap { map });
        }
    }

    pub(super) fn set_bots_clicked(&mut self) {
        if let Some(bots) = lobby::typed_bots(&self.host_panel.bots.value()) {
            self.host_command(HostCmd::SetBots { bots });
        }
    }

    /// The room box (name, code, role, invite link, copy) and the host controls.
    pub(super) fn update_room_box(&mut self, session: &Session, now: f64) {
        let players = other_humans(session);
        self.host_panel.update(self.room.as_ref(), &players, &self.maps);
        let Some(room) = &self.room else { return };
        let (name, code) = (room.name.clone(), room.code);
        let role = if session.is_replay() {
            "Replay"
        } else if session.welcome.spectator {
            "Watching"
        } else if room.you_are_host {
            "Host"
        } else {
            ""
        };
        let link = self.invite_link(code);
        let copied = self.copied_at_ms.is_some_and(|at| now - at < COPIED_LABEL_MS);
        let hud = &mut self.hud;
        for (key, element, text) in [
            ("room-name", hud.room_name.clone(), name.as_str()),
            ("room-code", hud.room_code.clone(), code.as_str()),
            ("room-role", hud.room_role.clone().into(), role),
            ("invite-link", hud.invite_link.clone(), link.as_str()),
            ("copy-invite", hud.copy_invite.clone().into(), if copied { "Copied!" } else { "Copy link" }),
        ] {
            hud.set_text(key, &element, text);
        }
        Hud::show(&hud.room_role, !role.is_empty());
        Hud::show(&hud.invite_row, !session.is_replay());
        // The invite's QR code, drawn by the server, when it has a LAN address.
        let qr = self
            .lan
            .as_ref()
            .and_then(|lan| lan.best_url.as_ref())
            .map(|_| route::at(&format!("/api/lan/qr.svg?path=/r/{code}")));
        if hud.invite_qr.get_attribute("src") != qr {
            match &qr {
                Some(src) => {
                    let _ = hud.invite_qr.set_attribute("src", src);
                }
                None => {
                    let _ = hud.invite_qr.remove_attribute("src");
                }
            }
        }
        Hud::show(&hud.invite_qr, qr.is_some() && !session.is_replay());
    }

    /// The lobby's and the room's part of `arenaDebug()`.
    pub(super) fn debug_rooms(&self, value: &mut Value) {
        let lobby = self.state == ConnState::NameEntry;
        value["screen"] = json!(if lobby { "lobby" } else { "game" });
        value["room"] = self.room.as_ref().map_or(Value::Null, room_json);
        value["lobby_rooms"] = serde_json::to_value(&self.lobby_rooms).unwrap_or(Value::Null);
        value["lobby_message"] = json!(self.lobby_message);
        value["lobby_maps"] = json!(self.maps.iter().map(|map| map.id.as_str()).collect::<Vec<_>>());
        value["invite"] = json!(self.invite.map(|code| code.to_string()));
        value["invite_room"] = serde_json::to_value(&self.invite_room).unwrap_or(Value::Null);
        value["invite_link"] = json!(self.room.as_ref().map(|room| self.invite_link(room.code)));
        value["invite_qr"] = json!(self.hud.invite_qr.get_attribute("src"));
        value["lan"] = serde_json::to_value(&self.lan).unwrap_or(Value::Null);
        value["target"] = json!(target_label(&self.target));
    }
}
