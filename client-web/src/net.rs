//! The WebSocket to the server that served the page.

use js_sys::{ArrayBuffer, Uint8Array};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{BinaryType, CloseEvent, Event, MessageEvent, WebSocket};

/// What the socket reports to the app.
pub enum NetEvent {
    Open,
    Message(Vec<u8>),
    Close { code: u16, reason: String },
}

/// An open (or opening) socket plus the callbacks it owns; dropping it closes the socket.
pub struct Connection {
    socket: WebSocket,
    _on_open: Closure<dyn FnMut(Event)>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

/// `ws://host/ws` or `wss://host/ws` for the page's own origin, so the page works from any
/// machine on a LAN.
pub fn server_url() -> Result<String, JsValue> {
    let location = web_sys::window().ok_or("no window")?.location();
    let scheme = if location.protocol()? == "https:" { "wss" } else { "ws" };
    Ok(format!("{scheme}://{}{}", location.host()?, crate::route::at("/ws")))
}

impl Connection {
    pub fn open(url: &str, mut on_event: impl FnMut(NetEvent) + Clone + 'static) -> Result<Connection, JsValue> {
        let socket = WebSocket::new(url)?;
        socket.set_binary_type(BinaryType::Arraybuffer);
        let mut open_handler = on_event.clone();
        let on_open = Closure::<dyn FnMut(Event)>::new(move |_| open_handler(NetEvent::Open));
        let mut message_handler = on_event.clone();
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            if let Ok(buffer) = event.data().dyn_into::<ArrayBuffer>() {
                message_handler(NetEvent::Message(Uint8Array::new(&buffer).to_vec()));
            }
        });
        let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |event: CloseEvent| {
            on_event(NetEvent::Close { code: event.code(), reason: event.reason() });
        });
        socket.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        socket.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        // Errors are always followed by a close event, which carries what we report.
        Ok(Connection { socket, _on_open: on_open, _on_message: on_message, _on_close: on_close })
    }

    /// Closes the socket as a player leaving (code 1000). The callbacks go with `self`, so the
    /// close event never reaches the app and nothing reconnects.
    pub fn close_normally(self) {
        let _ = self.socket.close_with_code(1000);
    }

    /// Closes a socket the server stopped answering, with code 4000: not a goodbye, so the
    /// server holds the player's seat for the reconnect. The callbacks go with `self`.
    pub fn close_lost(self) {
        let _ = self.socket.close_with_code_and_reason(4000, "no data from the server");
    }

    /// Bytes sent but not yet handed to the network (`bufferedAmount`): grows while the link
    /// is stalled.
    pub fn buffered(&self) -> u32 {
        self.socket.buffered_amount()
    }

    /// Sends one binary message; false when the socket is not open.
    pub fn send(&self, bytes: &[u8]) -> bool {
        self.socket.ready_state() == WebSocket::OPEN && self.socket.send_with_u8_array(bytes).is_ok()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.socket.set_onopen(None);
        self.socket.set_onmessage(None);
        self.socket.set_onclose(None);
        let _ = self.socket.close();
    }
}
