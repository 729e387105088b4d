//! HTTPS and wss:// on the game port, for real: a self-signed certificate, a rustls client that
//! trusts only it, the page and `/readyz` over HTTPS, a game joined over wss://, plain HTTP
//! refused, `arena-server health` over HTTPS with `--ca-cert`, and a renewed certificate picked up
//! without a restart. Also the proxy path prefix (`--public-url https://host/gs/NAME/`): the
//! pages, the API and the WebSocket answer under it, and the page is told its base.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{TestClient, TestServer, hello, http_to};
use futures_util::{SinkExt, StreamExt};
use server::ServerConfig;
use server::net::tls::TlsFiles;
use shared::protocol::{self, ServerMsg};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("arena-tls-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A fresh self-signed certificate for `localhost`, written as cert.pem and key.pem; returns
/// the certificate (DER) to trust.
fn write_certificate(dir: &std::path::Path) -> rustls::pki_types::CertificateDer<'static> {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    // Written next to the files and renamed over them, as certbot does.
    std::fs::write(dir.join("cert.tmp"), certified.cert.pem()).unwrap();
    std::fs::write(dir.join("key.tmp"), certified.signing_key.serialize_pem()).unwrap();
    std::fs::rename(dir.join("key.tmp"), dir.join("key.pem")).unwrap();
    std::fs::rename(dir.join("cert.tmp"), dir.join("cert.pem")).unwrap();
    certified.cert.der().clone()
}

fn connector(trusted: &rustls::pki_types::CertificateDer<'static>) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

async fn tls_stream(
    server: &TestServer,
    trusted: &rustls::pki_types::CertificateDer<'static>,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, std::io::Error> {
    let tcp = tokio::net::TcpStream::connect(server.addr).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    connector(trusted).connect(name, tcp).await
}

/// `GET path` over HTTPS: (status, body).
async fn https_get(
    server: &TestServer,
    trusted: &rustls::pki_types::CertificateDer<'static>,
    path: &str,
) -> (u16, String) {
    let mut stream = tls_stream(server, trusted).await.expect("TLS handshake with the trusted certificate");
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await;
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text.split_once("\r\n\r\n").map_or(String::new(), |(_, body)| body.to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_and_wss_on_the_game_port_with_renewals_picked_up() {
    let dir = temp_dir("serve");
    let first = write_certificate(&dir);
    let files =
        TlsFiles { cert: dir.join("cert.pem"), key: dir.join("key.pem"), reload_every: Duration::from_millis(100) };
    let server = TestServer::start(ServerConfig { tls: Some(files), ..ServerConfig::default() }).await;

    let (status, body) = https_get(&server, &first, "/readyz").await;
    assert_eq!((status, body.as_str()), (200, "ready\n"));
    let (status, page) = https_get(&server, &first, "/").await;
    assert_eq!(status, 200);
    assert!(page.contains("<html"), "{page}");

    // A game over wss://.
    let stream = tls_stream(&server, &first).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async("wss://localhost/ws", stream).await.expect("wss upgrade");
    ws.send(hello("secure")).await.unwrap();
    let welcome = loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("an answer").unwrap().unwrap();
        if let tokio_tungstenite::tungstenite::Message::Binary(bytes) = frame
            && let Ok(ServerMsg::Welcome(welcome)) = protocol::decode_server(&bytes)
        {
            break welcome;
        }
    };
    assert_eq!(welcome.room.code, server.rooms.main_code().unwrap());

    // Plain HTTP on the TLS port gets no page.
    let plain = tokio::time::timeout(Duration::from_secs(5), http_to(server.addr, "GET", "/readyz", None, &[])).await;
    assert!(
        plain.is_err() || plain.as_ref().is_ok_and(|(status, _, _)| *status != 200),
        "plain HTTP answered: {plain:?}"
    );

    // `arena-server health` over HTTPS, trusting the certificate.
    std::fs::write(dir.join("ca.pem"), pem_of(&first)).unwrap();
    let url = format!("https://localhost:{}/livez", server.addr.port());
    let health = std::process::Command::new(env!("CARGO_BIN_EXE_arena-server"))
        .env("ARENA_NO_DATABASE", "true")
        .args(["health", "--url", &url, "--ca-cert"])
        .arg(dir.join("ca.pem"))
        .output()
        .unwrap();
    assert!(health.status.success(), "health over HTTPS: {}", String::from_utf8_lossy(&health.stderr));
    let untrusted = std::process::Command::new(env!("CARGO_BIN_EXE_arena-server"))
        .env("ARENA_NO_DATABASE", "true")
        .args(["health", "--url", &url])
        .output()
        .unwrap();
    assert!(!untrusted.status.success(), "an unknown certificate is not trusted");

    // Renewal: new files, and new connections get the new certificate without a restart.
    let second = write_certificate(&dir);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(stream) = tls_stream(&server, &second).await {
            let seen = stream.get_ref().1.peer_certificates().unwrap()[0].clone();
            assert_eq!(seen, second);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the renewed certificate was never served");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(tls_stream(&server, &first).await.is_err(), "the old certificate is gone");
    drop(ws);
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

fn pem_of(der: &rustls::pki_types::CertificateDer<'_>) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in der.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            b64.push(if i <= chunk.len() { ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char } else { '=' });
        }
    }
    let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
    format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", lines.join("\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_certificate_stops_the_server_with_the_reason() {
    let dir = temp_dir("bad");
    std::fs::write(dir.join("cert.pem"), "not a certificate").unwrap();
    std::fs::write(dir.join("key.pem"), "not a key").unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let files =
        TlsFiles { cert: dir.join("cert.pem"), key: dir.join("key.pem"), reload_every: Duration::from_secs(30) };
    let error =
        server::run(listener, ServerConfig { tls: Some(files), ..ServerConfig::default() }, std::future::pending())
            .await
            .expect_err("the server refuses to start");
    assert!(error.to_string().contains("--tls-cert"), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_proxy_that_routes_by_path_everything_answers_under_the_prefix() {
    let config = ServerConfig { public_url: Some("https://games.example/gs/pod-1/".into()), ..ServerConfig::default() };
    let server = TestServer::start(config).await;
    let (status, _, page) = http_to(server.addr, "GET", "/gs/pod-1/", None, &[]).await;
    assert_eq!(status, 200);
    if server::net::assets::has_client() {
        assert!(page.contains(r#"<meta name="arena-base" content="/gs/pod-1/">"#), "{page}");
        assert!(page.contains(r#"href="/gs/pod-1/style.css""#), "{page}");
        assert!(!page.contains(r#"src="/main.js""#), "{page}");
        let (status, _, script) = http_to(server.addr, "GET", "/gs/pod-1/main.js", None, &[]).await;
        assert_eq!(status, 200);
        assert!(script.contains("from '/gs/pod-1/client_web.js'"), "{script}");
    }
    let (status, _, rooms) = http_to(server.addr, "GET", "/gs/pod-1/api/rooms", None, &[]).await;
    assert_eq!(status, 200, "{rooms}");
    assert!(rooms.contains("Main"), "{rooms}");
    let (status, _, _) = http_to(server.addr, "GET", "/gs/pod-1/r/ABCD", None, &[]).await;
    assert_eq!(status, 200, "an invite link under the prefix is the page");
    // A proxy that strips the prefix reaches the same routes.
    let (status, _, _) = http_to(server.addr, "GET", "/api/rooms", None, &[]).await;
    assert_eq!(status, 200);
    let client = TestClient::join_url(&format!("ws://{}/gs/pod-1/ws", server.addr), "proxied").await;
    assert_eq!(client.welcome.room.code, server.rooms.main_code().unwrap());
    server.stop().await;
}

/// A TLS server whose loopback addresses count as clients' own (see `listeners.rs`).
async fn tls_server(
    tag: &str,
    http: server::config::HttpLimits,
) -> (TestServer, rustls::pki_types::CertificateDer<'static>) {
    let dir = temp_dir(tag);
    let trusted = write_certificate(&dir);
    let files =
        TlsFiles { cert: dir.join("cert.pem"), key: dir.join("key.pem"), reload_every: Duration::from_secs(30) };
    let config = ServerConfig { tls: Some(files), http, ..ServerConfig::default() };
    (TestServer::start(config).await, trusted)
}

/// Silent TLS sockets: `per_address` from each of `addresses` loopback addresses 127.0.0.10...
async fn silent_sockets(server: &TestServer, addresses: u8, per_address: usize) -> Vec<tokio::net::TcpStream> {
    let mut sockets = Vec::new();
    for a in 0..addresses {
        for _ in 0..per_address {
            sockets.push(common::connect_from(&format!("127.0.0.{}", 10 + a), server.addr).await);
        }
    }
    sockets
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_tls_sockets_from_many_addresses_cannot_lock_a_client_out() {
    // The review's attack with the shipped limits: 16 addresses, 16 silent sockets each (256,
    // every handshake slot there was).
    let http = server::config::HttpLimits { limit_loopback: true, ..server::config::HttpLimits::default() };
    let (server, trusted) = tls_server("silent", http.clone()).await;
    let mut sockets = silent_sockets(&server, 16, 16).await;
    // Past its share of handshakes an address's sockets are closed at accept...
    let share = http.tls_handshakes_per_address as usize;
    let over = &mut sockets[share];
    assert!(
        common::closed_within(over, Duration::from_secs(3)).await.is_some(),
        "a socket past the address's {share} handshakes was kept"
    );
    // ...and a real client from elsewhere gets in at once.
    let (status, body) = https_get(&server, &trusted, "/readyz").await;
    assert_eq!((status, body.as_str()), (200, "ready\n"), "a client was locked out by silent sockets");
    drop(sockets);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_handshake_pool_gives_the_oldest_place_to_a_new_client_and_handshakes_time_out() {
    // Eight places, filled by two addresses' silent sockets; a long timeout rescues nobody.
    let http = server::config::HttpLimits {
        limit_loopback: true,
        tls_handshakes: 8,
        tls_handshakes_per_address: 4,
        tls_handshake_timeout: Duration::from_secs(60),
        ..server::config::HttpLimits::default()
    };
    let (server, trusted) = tls_server("evict", http).await;
    // Accepted in order: the real client's socket comes after all eight.
    let mut sockets = silent_sockets(&server, 2, 4).await;
    let (status, _) = https_get(&server, &trusted, "/readyz").await;
    assert_eq!(status, 200, "a new client found every place taken");
    assert!(
        common::closed_within(&mut sockets[0], Duration::from_secs(3)).await.is_some(),
        "the oldest silent handshake kept its place"
    );
    assert!(
        common::closed_within(&mut sockets[7], Duration::from_millis(300)).await.is_none(),
        "a newer silent handshake was dropped too"
    );
    server.stop().await;

    // A handshake that never finishes ends at the timeout.
    let http = server::config::HttpLimits { tls_handshake_timeout: Duration::from_secs(1), ..Default::default() };
    let (server, _) = tls_server("timeout", http).await;
    let mut silent = common::connect_from("127.0.0.1", server.addr).await;
    let after = common::closed_within(&mut silent, Duration::from_secs(5)).await;
    assert!(after.is_some_and(|after| after >= Duration::from_millis(900)), "a silent handshake ended after {after:?}");
    server.stop().await;
}
