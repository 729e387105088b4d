//! The `/admin` page: static HTML, CSS and a script embedded in the binary (it does not depend
//! on the browser client being built). The page asks for the token and keeps it in memory only;
//! every request carries it in the `Authorization` header.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::net::connection::NetContext;

const HTML: &str = include_str!("page/admin.html");
const SCRIPT: &str = include_str!("page/admin.js");
const STYLE: &str = include_str!("page/admin.css");

fn file(ctx: &NetContext, mime: &'static str, body: &'static str) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, mime.to_string()),
            (header::CACHE_CONTROL, "no-store".to_string()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
            (header::REFERRER_POLICY, "no-referrer".to_string()),
            (header::CONTENT_SECURITY_POLICY, crate::net::http::content_security_policy(&ctx.config.frame_ancestors)),
        ],
        body,
    )
        .into_response()
}

pub async fn index(State(ctx): State<Arc<NetContext>>) -> Response {
    file(&ctx, "text/html; charset=utf-8", HTML)
}

pub async fn script(State(ctx): State<Arc<NetContext>>) -> Response {
    file(&ctx, "text/javascript; charset=utf-8", SCRIPT)
}

pub async fn style(State(ctx): State<Arc<NetContext>>) -> Response {
    file(&ctx, "text/css; charset=utf-8", STYLE)
}
