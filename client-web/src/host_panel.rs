//! The host's controls (`#host-controls`), shown only to the room's host: restart, map, bots,
//! lock, visibility, and per-player Kick / Make host buttons. This module only shows the room's
//! state; the clicks are wired in `app`, which sends the matching `ClientMsg::Host`.

use shared::NetId;
use shared::room::RoomInfo;
use web_sys::{Document, Element, HtmlElement, HtmlInputElement, HtmlSelectElement};

use crate::hud::{Hud, by_id};
use crate::lobby::{self, MapEntry};
use crate::lobby_view::{append, fill_select};

pub struct HostPanel {
    document: Document,
    pub root: HtmlElement,
    pub map: HtmlSelectElement,
    pub bots: HtmlInputElement,
    pub rounds: HtmlSelectElement,
    lock: Element,
    public: Element,
    players: Element,
    /// What each part shows now, so the DOM (and a menu the host has open) is touched only when
    /// the room changed.
    shown_maps: Option<String>,
    shown_bots: Option<u16>,
    shown_players: Option<String>,
    shown_toggles: Option<(bool, bool)>,
    shown_rounds: Option<u32>,
}

impl HostPanel {
    pub fn new(document: &Document) -> Result<HostPanel, String> {
        Ok(HostPanel {
            root: by_id(document, "host-controls")?,
            map: by_id(document, "host-map")?,
            bots: by_id(document, "host-bots")?,
            rounds: by_id(document, "host-rounds")?,
            lock: by_id(document, "host-lock")?,
            public: by_id(document, "host-public")?,
            players: by_id(document, "host-players")?,
            document: document.clone(),
            shown_maps: None,
            shown_bots: None,
            shown_players: None,
            shown_toggles: None,
            shown_rounds: None,
        })
    }

    /// Shows the panel for the host (hides it for everyone else) and brings it up to date.
    /// `players` are the other human players: (id, name).
    pub fn update(&mut self, room: Option<&RoomInfo>, players: &[(NetId, String)], maps: &[MapEntry]) {
        let Some(room) = room.filter(|room| room.you_are_host) else {
            Hud::show(&self.root, false);
            return;
        };
        Hud::show(&self.root, true);
        self.update_toggles(room);
        self.update_maps(room, maps);
        self.update_bots(room.bots);
        if self.shown_rounds != Some(room.rounds.seconds) {
            self.shown_rounds = Some(room.rounds.seconds);
            self.rounds.set_value(&room.rounds.seconds.to_string());
        }
        self.update_players(players);
    }

    fn update_toggles(&mut self, room: &RoomInfo) {
        if self.shown_toggles == Some((room.locked, room.public)) {
            return;
        }
        self.shown_toggles = Some((room.locked, room.public));
        self.lock.set_text_content(Some(if room.locked { "Unlock room" } else { "Lock room" }));
        self.public.set_text_content(Some(if room.public { "Make private" } else { "Make public" }));
        let _ = self.lock.set_attribute("aria-pressed", if room.locked { "true" } else { "false" });
        let _ = self.public.set_attribute("aria-pressed", if room.public { "true" } else { "false" });
    }

    /// The map menu: the room's allowed maps, the current one selected when the list changes.
    fn update_maps(&mut self, room: &RoomInfo, maps: &[MapEntry]) {
        let signature: String =
            room.maps.iter().map(|id| format!("{id}\u{1}{}\u{2}", lobby::map_name(maps, id))).collect();
        let signature = format!("{signature}\u{3}{}", room.map_id);
        if self.shown_maps.as_deref() == Some(signature.as_str()) {
            return;
        }
        self.shown_maps = Some(signature);
        fill_select(&self.document, &self.map, room.maps.iter().map(|id| (id.as_str(), lobby::map_name(maps, id))));
        self.map.set_value(&room.map_id);
    }

    /// The bots box follows the room, except while the host is typing in it.
    fn update_bots(&mut self, bots: u16) {
        let typing = self.document.active_element().is_some_and(|active| active == **self.bots);
        if self.shown_bots == Some(bots) || typing {
            return;
        }
        self.shown_bots = Some(bots);
        self.bots.set_value(&bots.to_string());
    }

    fn update_players(&mut self, players: &[(NetId, String)]) {
        let signature: String = players.iter().map(|(id, name)| format!("{id}\u{1}{name}\u{2}")).collect();
        if self.shown_players.as_deref() == Some(signature.as_str()) {
            return;
        }
        self.shown_players = Some(signature);
        self.players.set_text_content(None);
        if players.is_empty() {
            if let Some(row) = self.element("li", "empty", "No other players yet") {
                let _ = self.players.append_child(&row);
            }
            return;
        }
        for (id, name) in players {
            if let Some(row) = self.player_row(*id, name) {
                let _ = self.players.append_child(&row);
            }
        }
    }

    fn player_row(&self, id: NetId, name: &str) -> Option<Element> {
        let row = self.element("li", "player", "")?;
        let _ = row.set_attribute("data-id", &id.0.to_string());
        append(&row, self.element("span", "name", name)?)?;
        for (class, label) in [("kick", "Kick"), ("handover", "Make host")] {
            let button = self.element("button", class, label)?;
            let _ = button.set_attribute("type", "button");
            let _ = button.set_attribute("data-id", &id.0.to_string());
            append(&row, button)?;
        }
        Some(row)
    }

    fn element(&self, tag: &str, class: &str, text: &str) -> Option<Element> {
        let element = self.document.create_element(tag).ok()?;
        element.set_class_name(class);
        element.set_text_content(Some(text));
        Some(element)
    }
}
