//! `GET`s to the server that served the page (same origin), for the lobby's room and map lists.
//! Only the status and the body text come back; parsing is the caller's (see `lobby`).

use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::Response;

/// A finished request.
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Fetches `path` (like `/api/rooms`). Fails only when no answer arrived at all (the server is
/// down); an error status is a [`Reply`] like any other.
pub async fn get(path: &str) -> Result<Reply, JsValue> {
    let window = web_sys::window().ok_or("no window")?;
    let response: Response = JsFuture::from(window.fetch_with_str(&crate::route::at(path))).await?.dyn_into()?;
    let body = JsFuture::from(response.text()?).await?.as_string().unwrap_or_default();
    Ok(Reply { status: response.status(), body })
}
