//! Private rooms cannot be found by sweeping the code space: from one address (an IPv6 /64),
//! `GET /api/rooms/CODE` and hellos naming a code that does not exist count together, and past
//! the limit every lookup by code is refused, a real one too (a 200 would still tell a sweep
//! where a private room is). Addresses come from `X-Forwarded-For` behind `--trusted-proxy`, so
//! the limit meets non-loopback addresses on 127.0.0.1.

mod common;

use common::{TestServer, hello_to, http_to, read_until_closed};
use futures_util::SinkExt;
use server::ServerConfig;
use server::net::context::CODE_MISSES_PER_MINUTE;
use shared::protocol::DisconnectReason;
use shared::room::{CreatedRoom, RoomCode, RoomRequest};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// A code no room has (the index walks the code space, skipping `taken`).
fn unused_code(index: u32, taken: &[RoomCode]) -> String {
    let mut index = index;
    loop {
        let letters = [index % 24, (index / 24) % 24, (index / 576) % 24, (index / 13_824) % 24].map(|i| i as u8);
        let code = RoomCode::from_indices(letters);
        if !taken.contains(&code) {
            return code.to_string();
        }
        index += 1;
    }
}

async fn lookup(server: &TestServer, code: &str, from: &str) -> (u16, String, String) {
    http_to(server.addr, "GET", &format!("/api/rooms/{code}"), None, &[("X-Forwarded-For", from)]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_of_room_codes_is_refused_per_address_and_real_players_are_not() {
    let config = ServerConfig {
        trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()],
        room_creates_per_minute: 100,
        ..ServerConfig::default()
    };
    let server = TestServer::start(config).await;
    let (status, _, body) = http_to(server.addr, "POST", "/api/rooms", Some(r#"{"public":false}"#), &[]).await;
    assert_eq!(status, 201, "{body}");
    let private: CreatedRoom = serde_json::from_str(&body).unwrap();
    let code = private.code.to_string();
    let taken = [private.code, server.rooms.main_code().unwrap()];
    let limit = CODE_MISSES_PER_MINUTE as u32;

    // A sweeper: a 404 for each unknown code up to the limit, then 429 for everything.
    let sweeper = "198.51.100.7";
    for index in 0..limit {
        let (status, _, body) = lookup(&server, &unused_code(index * 7, &taken), sweeper).await;
        assert_eq!(status, 404, "miss {index}: {body}");
    }
    let (status, head, body) = lookup(&server, &unused_code(9_999, &taken), sweeper).await;
    assert_eq!(status, 429, "past {limit} misses: {body}");
    assert!(head.contains("retry-after:"), "{head}");
    let (status, _, body) = lookup(&server, &code, sweeper).await;
    assert_eq!(status, 429, "the private room's real code is refused too (no oracle): {body}");
    // Its hellos by code are refused as well, before the room is looked at.
    let mut request = server.url().into_client_request().unwrap();
    request.headers_mut().insert("x-forwarded-for", sweeper.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    ws.send(hello_to("sweeper", RoomRequest::Join { code: code.clone() }, None, 0, None)).await.unwrap();
    let ending = read_until_closed(&mut ws).await;
    assert_eq!(ending.reason, Some(DisconnectReason::JoinRateLimited), "{ending:?}");

    // Another address is not affected: it finds the room (a player with the invite).
    let (status, _, body) = lookup(&server, &code, "198.51.100.8").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&code), "{body}");

    // Hellos with unknown codes count like lookups: an IPv6 host spreading its misses over its
    // /64 meets one limit.
    let v6 = |host: u32| format!("2001:db8:1:2::{host:x}");
    for index in 0..limit {
        let mut request = server.url().into_client_request().unwrap();
        request.headers_mut().insert("x-forwarded-for", v6(index + 1).parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let bad = unused_code(50_000 + index * 13, &taken);
        ws.send(hello_to("guess", RoomRequest::Join { code: bad }, None, 0, None)).await.unwrap();
        let ending = read_until_closed(&mut ws).await;
        assert_eq!(ending.reason, Some(DisconnectReason::NoSuchRoom), "guess {index}: {ending:?}");
    }
    let (status, _, body) = lookup(&server, &code, &v6(0xffff)).await;
    assert_eq!(status, 429, "the same /64: {body}");
    let (status, _, body) = lookup(&server, &code, "2001:db8:1:3::1").await;
    assert_eq!(status, 200, "another /64: {body}");
    server.stop().await;
}
