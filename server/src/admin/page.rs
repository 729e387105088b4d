//! The `/admin` page: static HTML, CSS and a script embedded in the binary (it does not depend
//! on the browser client being built). The page asks for the token and keeps it in memory only;
//! every request carries it in the `Authorization` header.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::net::context::NetContext;

const HTML: &str = include_str!("page/admin.html");
const SCRIPT: &str = include_str!("page/admin.js");
const STYLE: &str = include_str!("page/admin.css");

fn file(ctx: &NetContext, mime: &'static str, body: impl Into<axum::body::Body>) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, mime.to_string()),
            (header::CACHE_CONTROL, "no-store".to_string()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
            (header::REFERRER_POLICY, "no-referrer".to_string()),
            (header::CONTENT_SECURITY_POLICY, crate::net::http::content_security_policy(&ctx.config.frame_ancestors)),
        ],
        body.into(),
    )
        .into_response()
}

/// The page, with its files and API under the server's base path (a proxy's prefix, from
/// `--public-url`), which the script reads from `<meta name="arena-base">`.
pub async fn index(State(ctx): State<Arc<super::AdminState>>) -> Response {
    let base = ctx.config.base_path();
    let html = HTML.replace("\"/admin/", &format!("\"{base}admin/")).replacen(
        "<head>",
        &format!("<head>\n<meta name=\"arena-base\" content=\"{base}\">"),
        1,
    );
    file(&ctx, "text/html; charset=utf-8", html)
}

pub async fn script(State(ctx): State<Arc<super::AdminState>>) -> Response {
    file(&ctx, "text/javascript; charset=utf-8", SCRIPT)
}

pub async fn style(State(ctx): State<Arc<super::AdminState>>) -> Response {
    file(&ctx, "text/css; charset=utf-8", STYLE)
}
