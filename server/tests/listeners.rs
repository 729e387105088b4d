//! What a TCP connection may hold on every listener before it is a request being answered or a
//! WebSocket (SECURITY.md, "Sockets"): silent, half-sent and idle keep-alive connections end at
//! the header timeout, a slow request body gets 408, and one address holds only its share of
//! connections while another address and the first one's WebSockets are not touched. On the game
//! port, `--metrics-bind` and the fleet lobby alike. (TLS handshakes: `tls.rs`.)

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{TestClient, TestServer, closed_within, connect_from, status_from};
use server::ServerConfig;
use server::config::HttpLimits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn limits(header_timeout: Duration) -> HttpLimits {
    HttpLimits { header_timeout, request_timeout: Duration::from_secs(2), ..HttpLimits::default() }
}

/// Opens a silent, a half-sent and an idle keep-alive connection to `addr` and asserts that the
/// server closes each one within 5 s (the timeout here is 1 s; without one they stay open).
async fn quiet_connections_end(addr: SocketAddr, path: &str, what: &str) {
    let mut silent = connect_from("127.0.0.1", addr).await;
    let mut half = connect_from("127.0.0.1", addr).await;
    half.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: ").await.unwrap();
    let mut idle = connect_from("127.0.0.1", addr).await;
    idle.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes()).await.unwrap();
    // The whole answer (head and Content-Length bytes), and the connection kept alive after it.
    let mut answer = Vec::new();
    loop {
        let text = String::from_utf8_lossy(&answer).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|line| line.to_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                .and_then(|v| v.parse::<usize>().ok())
                .expect("a Content-Length");
            if body.len() >= length {
                assert!(head.starts_with("HTTP/1.1 200"), "{what}: GET {path}: {head}");
                break;
            }
        }
        let mut buffer = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut buffer))
            .await
            .expect("an answer within 5 s")
            .unwrap();
        assert!(n > 0, "{what}: closed before answering: {text:?}");
        answer.extend_from_slice(&buffer[..n]);
    }
    for (name, stream) in [("silent", &mut silent), ("half-sent headers", &mut half), ("idle keep-alive", &mut idle)] {
        let after = closed_within(stream, Duration::from_secs(5)).await;
        assert!(after.is_some(), "{what}: a {name} connection still open after 5 s");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_connections_end_at_the_header_timeout_on_every_listener() {
    let metrics = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let metrics_addr = metrics.local_addr().unwrap();
    drop(metrics);
    let config = ServerConfig {
        http: limits(Duration::from_secs(1)),
        metrics_bind: Some(metrics_addr),
        ..ServerConfig::default()
    };
    let server = TestServer::start(config).await;

    // A connection that says nothing is closed at the timeout, not before.
    let mut silent = connect_from("127.0.0.1", server.addr).await;
    let after = closed_within(&mut silent, Duration::from_secs(5)).await.expect("a silent connection is closed");
    assert!(after >= Duration::from_millis(900), "closed after {after:?}, before the 1 s timeout");

    quiet_connections_end(server.addr, "/livez", "game port").await;
    quiet_connections_end(metrics_addr, "/metrics", "--metrics-bind").await;

    // A request body that stalls is answered 408 within the request timeout (2 s).
    let mut slow = connect_from("127.0.0.1", server.addr).await;
    slow.write_all(b"POST /api/rooms HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{\"name\"")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(6), slow.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "a stalled body got: {answer:?}");

    // And the server goes on answering.
    assert_eq!(status_from("127.0.0.1", server.addr, "/readyz").await, 200);
    server.stop().await;

    // The fleet lobby's listener does the same.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let lobby_addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = server::fleet::lobby::LobbyConfig {
        lobby_key: "a-lobby-key-for-tests-only-7f3a9c".into(),
        join_token_secret: None,
        token_lifetime: Duration::from_secs(60),
        allocator: None,
        requests_per_minute: 1000,
        trusted_proxies: Vec::new(),
        http: limits(Duration::from_secs(1)),
        token_issuer: None,
        token_audience: None,
        directory: None,
        directory_password: None,
        stale_placements_for: server::fleet::lobby::STALE_PLACEMENTS_FOR,
    };
    let lobby = tokio::spawn(server::fleet::lobby::run(listener, config, async move {
        let _ = stopped.await;
    }));
    quiet_connections_end(lobby_addr, "/livez", "fleet lobby").await;
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), lobby).await.expect("the lobby stops").unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_only_its_share_of_connections() {
    // Loopback counts here (by default it is exempt), so that 127.0.0.1 and 127.0.0.2 are two
    // clients' addresses. A long header timeout: nothing here ends by it.
    let http = HttpLimits { per_address: 4, limit_loopback: true, ..limits(Duration::from_secs(60)) };
    let server = TestServer::start(ServerConfig { http, ..ServerConfig::default() }).await;

    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect_from("127.0.0.1", server.addr).await);
    }
    // A fifth from the same address is closed at once.
    let mut fifth = connect_from("127.0.0.1", server.addr).await;
    let closed = closed_within(&mut fifth, Duration::from_secs(2)).await;
    assert!(closed.is_some(), "a fifth connection from one address was kept open");
    // Another address is not touched.
    assert_eq!(status_from("127.0.0.2", server.addr, "/readyz").await, 200, "another address was refused");

    // A connection that ends gives its place back.
    held.pop();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let status = status_from("127.0.0.1", server.addr, "/readyz").await;
        if status == 200 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the freed place never came back (last status {status})");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // WebSockets stop counting once upgraded: three players from the held address join, and
    // its HTTP requests are still answered.
    let mut players = Vec::new();
    for name in ["ann", "bo", "cy"] {
        players.push(TestClient::join(&server, name).await);
    }
    assert_eq!(status_from("127.0.0.1", server.addr, "/readyz").await, 200, "the players' sockets were counted");
    drop(players);
    drop(held);
    server.stop().await;
}
