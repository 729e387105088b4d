//! The DOM side of the HUD: health, score, leaderboard, kill feed, notices, chat, respawn
//! countdown, connection status, the room box (name, code, invite link, Leave) and the network
//! overlay. All player-provided text goes through
//! `textContent`, never HTML. Elements are only touched when what they show changed.

use wasm_bindgen::JsCast;
use web_sys::{Document, Element, HtmlElement, HtmlInputElement};

pub struct Hud {
    document: Document,
    pub status: HtmlElement,
    pub hp_fill: HtmlElement,
    pub hp_text: Element,
    pub score: Element,
    pub leaderboard: Element,
    pub killfeed: Element,
    pub notices: Element,
    pub chat_log: Element,
    pub chat_input: HtmlInputElement,
    pub respawn: HtmlElement,
    pub netgraph: HtmlElement,
    pub netgraph_text: Element,
    pub netgraph_plot: web_sys::HtmlCanvasElement,
    pub hud_root: HtmlElement,
    pub vitals: HtmlElement,
    pub replay_bar: HtmlElement,
    pub replay_play: HtmlElement,
    pub replay_speed: web_sys::HtmlSelectElement,
    pub replay_seek: HtmlInputElement,
    pub replay_time: Element,
    /// Top-left column holding the room box, the host controls and the network overlay; keys
    /// typed there are not game controls.
    pub top_left: HtmlElement,
    pub room_name: Element,
    pub room_code: Element,
    pub room_role: HtmlElement,
    pub invite_row: HtmlElement,
    pub invite_link: Element,
    pub invite_qr: HtmlElement,
    pub help: Element,
    pub copy_invite: HtmlElement,
    pub round_clock: HtmlElement,
    pub round_over: HtmlElement,
    pub round_title: Element,
    pub round_results: Element,
    pub round_next: Element,
    /// What each element shows now (to skip unchanged updates).
    cache: std::collections::HashMap<&'static str, String>,
}

pub(crate) fn by_id<T: JsCast>(document: &Document, id: &str) -> Result<T, String> {
    document
        .get_element_by_id(id)
        .ok_or_else(|| format!("#{id} missing from index.html"))?
        .dyn_into::<T>()
        .map_err(|_| format!("#{id} has the wrong element type"))
}

impl Hud {
    pub fn new(document: &Document) -> Result<Hud, String> {
        Ok(Hud {
            status: by_id(document, "status")?,
            hp_fill: by_id(document, "hp-fill")?,
            hp_text: by_id(document, "hp-text")?,
            score: by_id(document, "score")?,
            leaderboard: by_id(document, "leaderboard")?,
            killfeed: by_id(document, "killfeed")?,
            notices: by_id(document, "notices")?,
            chat_log: by_id(document, "chat-log")?,
            chat_input: by_id(document, "chat-input")?,
            respawn: by_id(document, "respawn")?,
            netgraph: by_id(document, "netgraph")?,
            netgraph_text: by_id(document, "netgraph-text")?,
            netgraph_plot: by_id(document, "netgraph-plot")?,
            hud_root: by_id(document, "hud")?,
            vitals: by_id(document, "vitals")?,
            replay_bar: by_id(document, "replay-bar")?,
            replay_play: by_id(document, "replay-play")?,
            replay_speed: by_id(document, "replay-speed")?,
            replay_seek: by_id(document, "replay-seek")?,
            replay_time: by_id(document, "replay-time")?,
            top_left: by_id(document, "top-left")?,
            room_name: by_id(document, "room-name")?,
            room_code: by_id(document, "room-code")?,
            room_role: by_id(document, "room-role")?,
            invite_row: by_id(document, "invite-row")?,
            invite_link: by_id(document, "invite-link")?,
            invite_qr: by_id(document, "invite-qr")?,
            help: by_id(document, "help")?,
            copy_invite: by_id(document, "copy-invite")?,
            round_clock: by_id(document, "round-clock")?,
            round_over: by_id(document, "round-over")?,
            round_title: by_id(document, "round-title")?,
            round_results: by_id(document, "round-results")?,
            round_next: by_id(document, "round-next")?,
            document: document.clone(),
            cache: Default::default(),
        })
    }

    fn changed(&mut self, key: &'static str, value: &str) -> bool {
        if self.cache.get(key).map(String::as_str) == Some(value) {
            return false;
        }
        self.cache.insert(key, value.to_string());
        true
    }

    pub fn set_text(&mut self, key: &'static str, element: &Element, text: &str) {
        if self.changed(key, text) {
            element.set_text_content(Some(text));
        }
    }

    pub fn show(element: &HtmlElement, visible: bool) {
        let _ = element.class_list().toggle_with_force("hidden", !visible);
    }

    pub fn set_status(&mut self, text: Option<&str>, bad: bool) {
        let key = format!("{}{}", bad, text.unwrap_or(""));
        if !self.changed("status", &key) {
            return;
        }
        let status = self.status.clone();
        Hud::show(&status, text.is_some());
        status.set_text_content(text);
        let _ = status.class_list().toggle_with_force("bad", bad);
    }

    pub fn set_health(&mut self, hp: u8, max: u8) {
        let text = format!("{hp}");
        if self.changed("hp", &text) {
            let percent = f64::from(hp) / f64::from(max.max(1)) * 100.0;
            let _ = self.hp_fill.style().set_property("width", &format!("{percent:.0}%"));
            self.hp_text.set_text_content(Some(&format!("{hp} HP")));
        }
    }

    /// Replaces a list's items with `rows`: (text, css class).
    pub fn set_list(&mut self, key: &'static str, list: &Element, rows: &[(String, &'static str)]) {
        let signature: String = rows.iter().map(|(text, class)| format!("{class}\u{1}{text}\u{2}")).collect();
        if !self.changed(key, &signature) {
            return;
        }
        list.set_text_content(None);
        for (text, class) in rows {
            if let Ok(item) = self.document.create_element("li") {
                item.set_text_content(Some(text));
                if !class.is_empty() {
                    item.set_class_name(class);
                }
                let _ = list.append_child(&item);
            }
        }
    }

    /// Chat lines as a name span plus text, both as text nodes.
    pub fn set_chat(&mut self, lines: &[(String, String)]) {
        let signature: String = lines.iter().map(|(from, text)| format!("{from}\u{1}{text}\u{2}")).collect();
        if !self.changed("chat", &signature) {
            return;
        }
        let list = self.chat_log.clone();
        list.set_text_content(None);
        for (from, text) in lines {
            let (Ok(item), Ok(name)) = (self.document.create_element("li"), self.document.create_element("span"))
            else {
                continue;
            };
            name.set_class_name("from");
            name.set_text_content(Some(&format!("{from}: ")));
            let _ = item.append_child(&name);
            let _ = item.append_with_str_1(text);
            let _ = list.append_child(&item);
        }
    }
}
