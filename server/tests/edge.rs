//! Security at the edge: WebSocket upgrades from another site's page are refused (`Origin`),
//! the server's own pages, listed origins and non-browser clients are let in; every page carries
//! a Content-Security-Policy that allows only the server's own scripts and connections.

mod common;

use std::time::Duration;

use common::TestServer;
use server::ServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends a WebSocket upgrade with `origin` (and `Host: host`) and returns the status line.
async fn upgrade_status(server: &TestServer, host: &str, origin: Option<&str>) -> String {
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let origin = origin.map_or_else(String::new, |o| format!("Origin: {o}\r\n"));
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{origin}\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut response)).await.unwrap().unwrap();
    String::from_utf8_lossy(&response[..n]).lines().next().unwrap_or_default().to_string()
}

#[tokio::test]
async fn websocket_upgrades_from_other_sites_are_refused() {
    let config = ServerConfig {
        allowed_origins: vec!["https://lobby.example".into()],
        public_url: Some("https://arena.example.com/".into()),
        ..ServerConfig::default()
    };
    let server = TestServer::start(config).await;
    let host = server.addr.to_string();
    let own = format!("http://{host}");
    for (origin, expected) in [
        (None, "101"),                          // bots and tools send no Origin
        (Some(own.as_str()), "101"),            // the server's own page
        (Some("https://lobby.example"), "101"), // listed with --allowed-origin
        (Some("http://evil.example"), "403"),   // another site's page
        (Some("null"), "403"),                  // sandboxed or file pages
        (Some("http://127.0.0.1:1"), "403"),    // same host, another port
    ] {
        let status = upgrade_status(&server, &host, origin).await;
        assert!(status.contains(expected), "Origin {origin:?}: {status}");
    }
    // By Host: the mDNS name and --public-url's name (a proxy may rewrite Host) are this server;
    // a hostile name re-pointed at it (DNS rebinding) is not, even though Origin matches Host.
    for (host, origin, expected) in [
        ("party.local:8080", "http://party.local:8080", "101"),
        ("10.0.0.7:8080", "http://10.0.0.7:8080", "101"),
        ("[fd00::7]:8080", "http://[fd00::7]:8080", "101"),
        ("internal:8080", "https://arena.example.com", "101"),
        ("evil.example:8080", "http://evil.example:8080", "403"),
    ] {
        let status = upgrade_status(&server, host, Some(origin)).await;
        assert!(status.contains(expected), "Host {host}, Origin {origin}: {status}");
    }
    // Creating rooms from another site's page is refused the same way.
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let request = format!(
        "POST /api/rooms HTTP/1.0\r\nHost: {host}\r\nOrigin: http://evil.example\r\nContent-Length: 2\r\n\r\n{{}}"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response).await;
    assert!(response.starts_with("HTTP/1.0 403"), "{response}");
    server.stop().await;
}

#[tokio::test]
async fn pages_carry_a_content_security_policy() {
    let server = TestServer::start_default().await;
    let (status, headers, _) = common::http(&server, "GET", "/", None).await;
    assert_eq!(status, 200);
    let csp = headers.lines().find(|l| l.starts_with("content-security-policy:")).expect("a CSP header").to_string();
    for part in
        ["default-src 'none'", "script-src 'self' 'wasm-unsafe-eval'", "connect-src 'self'", "frame-ancestors 'none'"]
    {
        assert!(csp.contains(part), "{part} in {csp}");
    }
    assert!(headers.contains("referrer-policy: no-referrer"), "{headers}");
    let (_, invite_headers, _) = common::http(&server, "GET", "/r/ABCD", None).await;
    assert!(invite_headers.contains("content-security-policy:"), "invite pages too: {invite_headers}");
    server.stop().await;
}

/// Runs the real binary for a moment and returns what it wrote to stderr (a file, not a terminal).
fn stderr_of(args: &[&str]) -> String {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("log-{}.txt", args.join("_")));
    let file = std::fs::File::create(&path).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_arena-server"))
        .env("ARENA_NO_DATABASE", "true")
        .args(["--bind", "127.0.0.1:0", "--no-replay"])
        .args(args)
        .stderr(file)
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut text = String::new();
    while std::time::Instant::now() < deadline {
        text = std::fs::read_to_string(&path).unwrap_or_default();
        if text.contains("listening") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    text
}

#[test]
fn logs_are_plain_in_a_file_and_json_on_request() {
    let plain = stderr_of(&[]);
    assert!(plain.contains("arena server listening"), "{plain}");
    assert!(!plain.contains('\u{1b}'), "no colour escape sequences when stderr is a file: {plain:?}");
    let json = stderr_of(&["--log-format", "json"]);
    let line = json.lines().find(|l| l.contains("arena server listening")).expect("the listening line");
    let value: serde_json::Value = serde_json::from_str(line).expect("one JSON object per log line");
    assert_eq!(value["level"], "INFO", "{value}");
    assert_eq!(value["fields"]["message"], "arena server listening", "{value}");
}

/// The systemd unit in deploy/ passes `systemd-analyze verify` (with ExecStart pointed at the
/// binary just built, since verify checks that it exists). Skipped with a message where
/// systemd-analyze is not installed.
#[test]
fn the_systemd_unit_verifies() {
    if std::process::Command::new("systemd-analyze").arg("--version").output().is_err() {
        eprintln!("SKIPPED: systemd-analyze is not installed");
        return;
    }
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/arena-server.service")).unwrap();
    assert!(unit.contains("Type=notify") && unit.contains("WatchdogSec="), "a notify unit with a watchdog");
    let unit = unit.replace("/usr/local/bin/arena-server", env!("CARGO_BIN_EXE_arena-server"));
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("unit");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("arena-server.service");
    std::fs::write(&path, unit).unwrap();
    let out = std::process::Command::new("systemd-analyze").args(["verify", "--man=no"]).arg(&path).output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && !said.contains("arena-server.service:"), "systemd-analyze verify: {said}");
}

/// `arena-server health` (the container's HEALTHCHECK) exits 0 for a live server and 1 otherwise.
#[tokio::test]
async fn the_health_command_reports_a_live_server() {
    let server = TestServer::start_default().await;
    let url = format!("http://{}/livez", server.addr);
    let ok = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_arena-server"))
            .env("ARENA_NO_DATABASE", "true")
            .args(["health", "--url", &url])
            .status()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(ok.success());
    let addr = server.addr;
    server.stop().await;
    let down = std::process::Command::new(env!("CARGO_BIN_EXE_arena-server"))
        .env("ARENA_NO_DATABASE", "true")
        .args(["health", "--url", &format!("http://{addr}/livez")])
        .status()
        .unwrap();
    assert!(!down.success(), "a stopped server is not healthy");
}

#[tokio::test]
async fn metrics_can_move_off_the_game_port() {
    // Find a free loopback port for the metrics listener.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let metrics_addr = probe.local_addr().unwrap();
    drop(probe);
    let config = ServerConfig { metrics_bind: Some(metrics_addr), ..ServerConfig::default() };
    let server = TestServer::start(config).await;
    let (status, _, body) = common::http(&server, "GET", "/metrics", None).await;
    assert_eq!(status, 404, "not on the game port: {body}");
    let text = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(metrics_addr).unwrap();
        write!(stream, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text
    })
    .await
    .unwrap();
    assert!(text.starts_with("HTTP/1.0 200") && text.contains("arena_rooms 1"), "{text}");
    server.stop().await;
}

/// `/metrics` is open on the game port by default: it must never name a private room, whose
/// code is all a stranger needs to join. Private rooms get an opaque label instead, the same at
/// every scrape; public rooms keep their codes.
#[tokio::test]
async fn metrics_never_name_a_private_room() {
    let server = TestServer::start_default().await;
    let (status, _, body) = common::http(&server, "POST", "/api/rooms", Some(r#"{"public":false}"#)).await;
    assert_eq!(status, 201, "{body}");
    let private: shared::room::CreatedRoom = serde_json::from_str(&body).unwrap();
    let (status, _, body) = common::http(&server, "POST", "/api/rooms", Some(r#"{"public":true}"#)).await;
    assert_eq!(status, 201, "{body}");
    let public: shared::room::CreatedRoom = serde_json::from_str(&body).unwrap();
    let scrape = || async {
        let (status, _, text) = common::http(&server, "GET", "/metrics", None).await;
        assert_eq!(status, 200);
        text
    };
    let text = scrape().await;
    assert!(text.contains("arena_rooms 3"), "Main and the two rooms: {text}");
    assert!(
        !text.contains(&format!("\"{}\"", private.code)),
        "the private code {} is in /metrics:\n{text}",
        private.code
    );
    assert!(text.contains(&format!("arena_room_players{{room=\"{}\"}}", public.code)), "{text}");
    let opaque: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("arena_room_players{room=\"private-"))
        .map(|l| l.split('"').nth(1).unwrap())
        .collect();
    assert_eq!(opaque.len(), 1, "one private room, one opaque label: {text}");
    assert_eq!(opaque[0].len(), "private-".len() + 8, "{text}");
    let again = scrape().await;
    assert!(again.contains(&format!("room=\"{}\"", opaque[0])), "the label is stable: {again}");
    server.stop().await;
}

#[tokio::test]
async fn metrics_include_the_build_and_the_process() {
    let server = TestServer::start_default().await;
    let (status, _, text) = common::http(&server, "GET", "/metrics", None).await;
    assert_eq!(status, 200);
    assert!(text.contains(&format!("arena_build_info{{version=\"{}\"", env!("CARGO_PKG_VERSION"))), "{text}");
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in {text}"))
    };
    assert!(value("process_resident_memory_bytes") > 1e6, "a running server holds over a megabyte");
    assert!(value("process_open_fds") >= 3.0);
    assert!(value("process_cpu_seconds_total") >= 0.0);
    let started = value("process_start_time_seconds");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!(started > now - 3600.0 && started <= now + 5.0, "started {started}, now {now}");
    server.stop().await;
}

/// The Grafana dashboard in deploy/ is valid JSON and every series it queries is one the server
/// exports (so a renamed metric cannot leave a dashboard panel silently empty).
#[tokio::test]
async fn the_grafana_dashboard_queries_only_metrics_the_server_exports() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/grafana/arena-dashboard.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("valid JSON");
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|panel| panel["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|target| target["expr"].as_str().map(str::to_string))
        .collect();
    assert!(exprs.len() >= 15, "{exprs:?}");
    let server = TestServer::start_default().await;
    let (status, _, text) = common::http(&server, "GET", "/metrics", None).await;
    assert_eq!(status, 200);
    let exported: std::collections::BTreeSet<&str> =
        text.lines().filter(|l| !l.starts_with('#')).filter_map(|l| l.split(['{', ' ']).next()).collect();
    for expr in &exprs {
        let mut rest = expr.as_str();
        while let Some(at) = rest.find(|c: char| c.is_ascii_lowercase()) {
            rest = &rest[at..];
            let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            rest = &rest[name.len().max(1)..];
            if name.starts_with("arena_") || name.starts_with("process_") {
                assert!(exported.contains(name.as_str()), "{name} (in `{expr}`) is not exported; /metrics:\n{text}");
            }
        }
    }
    server.stop().await;
}

/// A connection that goes silent (a half-open TCP connection: nothing, not even pongs) is closed
/// with its own reason after `--idle-timeout-seconds`; one that only answers the server's pings
/// (a player idle in the lobby view) stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_closed_but_one_that_answers_pings_stays() {
    use futures_util::{SinkExt, StreamExt};
    let config =
        server::ServerConfig { idle_timeout: std::time::Duration::from_secs(3), ..server::ServerConfig::default() };
    let server = TestServer::start(config).await;
    // Silent: hello, then neither reading (so no pongs) nor writing.
    let mut silent = common::connect_raw(&server).await;
    silent.send(common::hello("silent")).await.unwrap();
    // Listening: reads everything (tungstenite answers each ping with a pong) and sends nothing.
    let mut listening = common::connect_raw(&server).await;
    listening.send(common::hello("listening")).await.unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(6);
    while tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(std::time::Duration::from_millis(200), listening.next()).await {
            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Close(frame)))) => {
                panic!("the listening client was closed: {frame:?}")
            }
            Ok(None | Some(Err(_))) => panic!("the listening client's connection ended"),
            _ => {}
        }
    }
    let ending = common::read_until_closed(&mut silent).await;
    assert_eq!(ending.reason, Some(shared::protocol::DisconnectReason::IdleTimeout { seconds: 3 }), "{ending:?}");
    assert_eq!(ending.close.map(|c| c.0), Some(4024));
    server.stop().await;
}
