//! The lobby's DOM: the name box and the play button, the live list of public rooms, join by
//! code, and the create-room form. Room names and every other peer-provided string go through
//! `textContent`, never HTML. Lists are rebuilt only when what they show changed, so a button
//! under the pointer is not replaced every second.

use shared::room::{RoomCode, RoomSummary};
use web_sys::{Document, Element, HtmlElement, HtmlInputElement, HtmlSelectElement};

use crate::hud::{Hud, by_id};
use crate::lobby::{self, MapEntry};

pub struct LobbyView {
    document: Document,
    pub root: HtmlElement,
    pub name_input: HtmlInputElement,
    /// The server password box, shown once the server asked for one.
    pub password_input: HtmlInputElement,
    pub play: HtmlElement,
    invite_banner: HtmlElement,
    message: HtmlElement,
    rooms: Element,
    rooms_empty: HtmlElement,
    pub code_input: HtmlInputElement,
    pub create_name: HtmlInputElement,
    pub create_public: HtmlInputElement,
    pub create_map: HtmlSelectElement,
    pub create_bots: HtmlInputElement,
    pub create_max: HtmlInputElement,
    pub create_rounds: web_sys::HtmlSelectElement,
    /// The LAN invite box and the other servers on the network.
    lan_box: HtmlElement,
    lan_url: Element,
    lan_mdns: Element,
    lan_qr: Element,
    others_box: HtmlElement,
    others: Element,
    /// What the room list, the map menu and the LAN boxes show now (to skip unchanged rebuilds).
    rooms_shown: Option<String>,
    maps_shown: Option<String>,
    lan_shown: Option<lobby::LanInfo>,
}

impl LobbyView {
    pub fn new(document: &Document) -> Result<LobbyView, String> {
        Ok(LobbyView {
            root: by_id(document, "lobby")?,
            name_input: by_id(document, "name")?,
            password_input: by_id(document, "password")?,
            play: by_id(document, "play")?,
            invite_banner: by_id(document, "invite-banner")?,
            message: by_id(document, "lobby-message")?,
            rooms: by_id(document, "lobby-rooms")?,
            rooms_empty: by_id(document, "lobby-empty")?,
            code_input: by_id(document, "code")?,
            create_name: by_id(document, "create-name")?,
            create_public: by_id(document, "create-public")?,
            create_map: by_id(document, "create-map")?,
            create_bots: by_id(document, "create-bots")?,
            create_max: by_id(document, "create-max")?,
            create_rounds: by_id(document, "create-rounds")?,
            lan_box: by_id(document, "lan-box")?,
            lan_url: by_id(document, "lan-url")?,
            lan_mdns: by_id(document, "lan-mdns")?,
            lan_qr: by_id(document, "lan-qr")?,
            others_box: by_id(document, "lan-others-box")?,
            others: by_id(document, "lan-others")?,
            document: document.clone(),
            rooms_shown: None,
            maps_shown: None,
            lan_shown: None,
        })
    }

    pub fn show(&self, visible: bool) {
        Hud::show(&self.root, visible);
    }

    /// Shows the password box (empty, focused) when the server asked for a password.
    pub fn ask_password(&self) {
        self.password_input.set_value("");
        Hud::show(&self.password_input, true);
        let _ = self.password_input.focus();
    }

    /// The password typed, when the box is shown and not empty.
    pub fn typed_password(&self) -> Option<String> {
        let shown = !self.password_input.class_list().contains("hidden");
        let value = self.password_input.value();
        (shown && !value.is_empty()).then_some(value)
    }

    /// The sentence at the top of the lobby (why the last room ended, a bad code), or none.
    pub fn set_message(&self, text: Option<&str>) {
        self.message.set_text_content(text);
        Hud::show(&self.message, text.is_some());
    }

    /// An invite link opened without a name yet: the play button joins that room instead of
    /// quick play. `room` is what the server said about it, once it answered.
    pub fn set_invite(&self, invite: Option<RoomCode>, room: Option<&RoomSummary>) {
        match invite {
            Some(code) => {
                let banner = match room {
                    Some(room) => {
                        format!("Join room {code}: {} ({}/{} players)", room.name, room.players, room.max_players)
                    }
                    None => format!("Join room {code}"),
                };
                self.invite_banner.set_text_content(Some(&banner));
                self.play.set_text_content(Some(&format!("Join {code}")));
            }
            None => self.play.set_text_content(Some("Quick play")),
        }
        Hud::show(&self.invite_banner, invite.is_some());
    }

    /// The public room list: one `li[data-code]` per room with its name, details, a lock marker
    /// and `button.join` / `button.watch`.
    pub fn set_rooms(&mut self, rooms: &[RoomSummary], maps: &[MapEntry]) {
        let rows: Vec<(String, String)> =
            rooms.iter().map(|room| (room.name.clone(), lobby::room_details(room, maps))).collect();
        let signature = rooms
            .iter()
            .zip(&rows)
            .map(|(room, (name, details))| format!("{}\u{1}{name}\u{1}{details}\u{1}{}\u{2}", room.code, room.locked))
            .collect::<String>();
        if self.rooms_shown.as_deref() == Some(signature.as_str()) {
            return;
        }
        self.rooms_shown = Some(signature);
        self.rooms.set_text_content(None);
        for (room, (name, details)) in rooms.iter().zip(&rows) {
            if let Some(row) = self.room_row(room, name, details) {
                let _ = self.rooms.append_child(&row);
            }
        }
        Hud::show(&self.rooms_empty, rooms.is_empty());
    }

    fn room_row(&self, room: &RoomSummary, name: &str, details: &str) -> Option<Element> {
        let row = self.element("li", "room", None)?;
        let _ = row.set_attribute("data-code", room.code.as_str());
        let _ = row.class_list().toggle_with_force("locked", room.locked);
        let text = self.element("div", "room-text", None)?;
        let title = self.element("div", "room-title", None)?;
        append(&title, self.element("span", "room-name", Some(name))?)?;
        append(&title, self.element("span", "room-code", Some(room.code.as_str()))?)?;
        if room.locked {
            let marker = self.element("span", "lock", Some("locked"))?;
            let _ = marker.set_attribute("title", "Locked: nobody new can join");
            append(&title, marker)?;
        }
        append(&text, title)?;
        append(&text, self.element("div", "room-details", Some(details))?)?;
        append(&row, text)?;
        append(&row, self.button("join", "Join")?)?;
        append(&row, self.button("watch", "Watch")?)?;
        Some(row)
    }

    /// "Invite other devices" (this server's LAN URL, its QR code drawn by the server, the mDNS
    /// name) and "Other games on this network" (`li.lan-peer` with a link, as text).
    pub fn set_lan(&mut self, lan: &lobby::LanInfo) {
        if self.lan_shown.as_ref() == Some(lan) {
            return;
        }
        self.lan_shown = Some(lan.clone());
        match &lan.best_url {
            Some(url) => {
                self.lan_url.set_text_content(Some(url));
                let _ = self.lan_qr.set_attribute("src", &crate::route::at("/api/lan/qr.svg?path=/"));
                let _ = self.lan_qr.set_attribute("alt", &format!("QR code of {url}"));
            }
            None => {
                self.lan_url.set_text_content(Some(
                    "This server listens on this machine only: other devices cannot join. Start it with --bind 0.0.0.0:8080.",
                ));
                let _ = self.lan_qr.remove_attribute("src");
            }
        }
        let _ = self.lan_qr.class_list().toggle_with_force("hidden", lan.best_url.is_none());
        let mdns = lan.mdns_url.as_ref().map(|url| format!("or type {url}"));
        self.lan_mdns.set_text_content(mdns.as_deref());
        Hud::show(&self.lan_box, true);
        self.others.set_text_content(None);
        for peer in &lan.others {
            let Some(row) = self.element("li", "lan-peer", None) else { continue };
            let Some(link) = self.element("a", "lan-peer-name", Some(&peer.name)) else { continue };
            if let Some(href) = lobby::safe_link(&peer.url) {
                let _ = link.set_attribute("href", href);
            }
            let _ = append(&row, link);
            if let Some(details) = self.element("span", "room-details", Some(&lobby::peer_details(peer))) {
                let _ = append(&row, details);
            }
            let _ = append(&self.others, row);
        }
        Hud::show(&self.others_box, !lan.others.is_empty());
    }

    /// The create form's map menu, from `GET /api/maps`.
    pub fn set_maps(&mut self, maps: &[MapEntry]) {
        let signature: String = maps.iter().map(|map| format!("{}\u{1}{}\u{2}", map.id, map.name)).collect();
        if self.maps_shown.as_deref() == Some(signature.as_str()) {
            return;
        }
        self.maps_shown = Some(signature);
        let chosen = self.create_map.value();
        fill_select(&self.document, &self.create_map, maps.iter().map(|map| (map.id.as_str(), map.name.as_str())));
        if maps.iter().any(|map| map.id == chosen) {
            self.create_map.set_value(&chosen);
        }
    }

    fn element(&self, tag: &str, class: &str, text: Option<&str>) -> Option<Element> {
        let element = self.document.create_element(tag).ok()?;
        element.set_class_name(class);
        if text.is_some() {
            element.set_text_content(text);
        }
        Some(element)
    }

    fn button(&self, class: &str, label: &str) -> Option<Element> {
        let button = self.element("button", class, Some(label))?;
        let _ = button.set_attribute("type", "button");
        Some(button)
    }
}

/// Appends `child` to `parent`; `None` if the DOM refused.
pub fn append(parent: &Element, child: Element) -> Option<()> {
    parent.append_child(&child).ok().map(drop)
}

/// Replaces a menu's options with (value, label) pairs, as text.
pub fn fill_select<'a>(
    document: &Document,
    select: &HtmlSelectElement,
    options: impl Iterator<Item = (&'a str, &'a str)>,
) {
    select.set_text_content(None);
    for (value, label) in options {
        if let Ok(option) = document.create_element("option") {
            let _ = option.set_attribute("value", value);
            option.set_text_content(Some(label));
            let _ = select.append_child(&option);
        }
    }
}
