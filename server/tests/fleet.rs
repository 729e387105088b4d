//! The fleet lobby on loopback: one lobby and three real game servers that report to it. Rooms
//! created through the lobby spread over the servers by free slots and are all listed; a join
//! by code lands on the server hosting the room, with a join token that server accepts; quick
//! play fills a room with space; a server killed with SIGKILL leaves the list within seconds.
//! With the `agones` feature the same placements go through a GameServerAllocation against the
//! fake allocator over three fake SDK sidecars, which the servers keep informed.

mod common;
#[path = "common/redis.rs"]
mod redis;

use std::process::Child;
use std::time::{Duration, Instant};

use common::{TestClient, hello_auth};
use shared::protocol::JoinAuth;
use shared::room::{RoomRequest, RoomSettings};

const LOBBY_KEY: &str = "fleet-test-lobby-key-0123456789";
const SECRET: &str = "fleet-test-join-token-secret-0123456789";

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(instance: &str, lobby: u16, extra_env: &[(&str, &str)]) -> Server {
    start_server_to(instance, &format!("http://127.0.0.1:{lobby}"), extra_env)
}

/// A game server reporting to `lobby_url` (one lobby, or `A,B` for lobbies on one directory, or
/// `redis://…`: straight into that directory).
fn start_server_to(instance: &str, lobby_url: &str, extra_env: &[(&str, &str)]) -> Server {
    let mut env = vec![("ARENA_LOBBY_KEY", LOBBY_KEY), ("ARENA_JOIN_TOKEN_SECRET", SECRET)];
    env.extend_from_slice(extra_env);
    let mut args = vec![
        "--bind",
        "127.0.0.1:0",
        "--no-replay",
        "--max-rooms",
        "4",
        "--instance",
        instance,
        if lobby_url.starts_with("redis://") { "--directory" } else { "--lobby-url" },
        lobby_url,
        "--public-url",
        "http://127.0.0.1:{port}/",
    ];
    if extra_env.iter().any(|(name, _)| name.starts_with("AGONES")) {
        args.push("--agones");
    }
    let (child, port) = common::spawn_binary(&args, &env);
    Server { child, port }
}

async fn start_lobby(allocator: Option<String>) -> (u16, tokio::sync::oneshot::Sender<()>) {
    start_lobby_with(allocator, |_| {}).await
}

/// The tests' lobby settings (the test's keys; placements not rate limited), `allocator` on Agones.
fn lobby_config(allocator: Option<String>) -> server::fleet::lobby::LobbyConfig {
    server::fleet::lobby::LobbyConfig {
        lobby_key: LOBBY_KEY.into(),
        join_token_secret: Some(SECRET.into()),
        token_lifetime: Duration::from_secs(60),
        allocator: allocator.map(|url| server::fleet::lobby::Allocator {
            url,
            namespace: "default".into(),
            fleet: "arena".into(),
            ca_cert: None,
            client_cert: None,
        }),
        requests_per_minute: 1000,
        trusted_proxies: Vec::new(),
        http: server::config::HttpLimits::default(),
        token_issuer: None,
        token_audience: None,
        directory: None,
        directory_password: None,
        stale_placements_for: server::fleet::lobby::STALE_PLACEMENTS_FOR,
    }
}

async fn start_lobby_with(
    allocator: Option<String>,
    tweak: impl FnOnce(&mut server::fleet::lobby::LobbyConfig),
) -> (u16, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut config = lobby_config(allocator);
    tweak(&mut config);
    tokio::spawn(server::fleet::lobby::run(listener, config, async move {
        let _ = stopped.await;
    }));
    (port, stop)
}

/// A lobby API call: (status, JSON).
async fn lobby(port: u16, method: &str, path: &str, body: Option<&str>) -> (u16, serde_json::Value) {
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let (status, _, text) = common::http_to(addr, method, path, body, &[]).await;
    (status, serde_json::from_str(&text).unwrap_or(serde_json::json!({ "raw": text })))
}

/// Polls `GET path` on the lobby until `done` holds (15 s); fails with the last answer.
async fn wait_lobby(port: u16, path: &str, what: &str, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, answer) = lobby(port, "GET", path, None).await;
        if done(&answer) {
            return answer;
        }
        assert!(Instant::now() < deadline, "{what}: not within 15 s; {path} says {answer}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn listed(rooms: &serde_json::Value, code: &str, server: &str) -> bool {
    rooms.as_array().is_some_and(|rooms| rooms.iter().any(|r| r["code"] == code && r["server"] == server))
}

/// Plays where the lobby sent us: connects to the server it named with its token.
async fn go(sent: &serde_json::Value, name: &str, room: RoomRequest) -> TestClient {
    let url = sent["url"].as_str().unwrap().trim_end_matches('/').replace("http://", "ws://");
    let token = sent["token"].as_str().expect("a join token").to_string();
    TestClient::join_with(&format!("{url}/ws"), hello_auth(name, room, Some(JoinAuth::Token(token))))
        .await
        .unwrap_or_else(|ending| panic!("the server refused the lobby's player: {ending:?}"))
}

/// Creates a room through the lobby and waits until the lobby lists it; (client, code, server).
async fn create_through_lobby(port: u16, name: &str) -> (TestClient, String, String) {
    create_through_lobby_with(port, name, RoomSettings::default()).await
}

async fn create_through_lobby_with(port: u16, name: &str, settings: RoomSettings) -> (TestClient, String, String) {
    let (status, sent) = lobby(port, "POST", "/api/fleet/create", Some(&format!(r#"{{"name":"{name}"}}"#))).await;
    assert_eq!(status, 200, "{sent}");
    let server = sent["server"].as_str().unwrap().to_string();
    assert!(sent["go"].as_str().unwrap().contains("#join="), "{sent}");
    let client = go(&sent, name, RoomRequest::Create(settings)).await;
    let code = client.welcome.room.code.to_string();
    wait_lobby(port, "/api/rooms", "the new room listed", |rooms| listed(rooms, &code, &server)).await;
    (client, code, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_lobby_lists_every_servers_rooms_and_sends_players_to_the_right_one() {
    let (port, _stop) = start_lobby(None).await;
    let mut servers: Vec<Server> = ["gs-1", "gs-2", "gs-3"].iter().map(|name| start_server(name, port, &[])).collect();
    wait_lobby(port, "/api/fleet/servers", "three servers reporting", |s| s.as_array().is_some_and(|s| s.len() == 3))
        .await;

    // Three rooms through the lobby: each on the server with the most free slots, so one each.
    let mut made = Vec::new();
    for name in ["ana", "bo", "cy"] {
        made.push(create_through_lobby(port, name).await);
    }
    let mut hosts: Vec<&str> = made.iter().map(|(_, _, server)| server.as_str()).collect();
    hosts.sort();
    assert_eq!(hosts, ["gs-1", "gs-2", "gs-3"], "new rooms spread over the servers by free slots");

    // Join by code lands on the server hosting the room, in that room, under the token's name.
    let (_, code, host) = &made[1];
    let (status, sent) =
        lobby(port, "POST", "/api/fleet/join", Some(&format!(r#"{{"code":"{code}","name":"dee"}}"#))).await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!(sent["server"], host.as_str());
    let port_of = |server: &str| servers[["gs-1", "gs-2", "gs-3"].iter().position(|s| *s == server).unwrap()].port;
    assert_eq!(sent["url"], format!("http://127.0.0.1:{}/", port_of(host)));
    let dee = go(&sent, "ignored", RoomRequest::QuickPlay).await;
    assert_eq!(dee.welcome.room.code.to_string(), *code, "the token's room, whatever the hello asked");
    let (status, answer) = lobby(port, "POST", "/api/fleet/join", Some(r#"{"code":"ZZZZ"}"#)).await;
    assert_eq!(status, 404, "{answer}");

    // Quick play fills a room that has players (the fullest with space).
    wait_lobby(port, "/api/rooms", "dee counted", |rooms| {
        rooms.as_array().is_some_and(|r| r.iter().any(|r| r["code"] == code.as_str() && r["players"] == 2))
    })
    .await;
    let (status, sent) = lobby(port, "POST", "/api/fleet/quickplay", Some(r#"{"name":"eve"}"#)).await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!(sent["code"], code.as_str(), "quick play joins the fullest room with space: {sent}");

    // SIGKILL one server: its rooms leave the lobby within seconds, and its codes are unknown.
    let (dead_code, dead_host) =
        made.iter().find(|(_, _, s)| s == "gs-3").map(|(_, code, host)| (code.clone(), host.clone())).unwrap();
    let dead = servers.remove(2);
    let killed_at = Instant::now();
    std::process::Command::new("kill").args(["-KILL", &dead.child.id().to_string()]).status().unwrap();
    wait_lobby(port, "/api/rooms", "the killed server's rooms gone", |rooms| {
        !listed(rooms, dead_code.as_str(), dead_host.as_str())
    })
    .await;
    let gone_after = killed_at.elapsed();
    assert!(gone_after < Duration::from_secs(9), "took {gone_after:?}");
    let (status, _) = lobby(port, "POST", "/api/fleet/join", Some(&format!(r#"{{"code":"{dead_code}"}}"#))).await;
    assert_eq!(status, 404);
    let servers_left =
        wait_lobby(port, "/api/fleet/servers", "two servers", |s| s.as_array().is_some_and(|s| s.len() == 2)).await;
    assert!(servers_left.to_string().contains("gs-1") && servers_left.to_string().contains("gs-2"), "{servers_left}");
    drop(dead);
    // Reports need the fleet's key.
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let (status, _, _) =
        common::http_to(addr, "POST", "/api/fleet/report", Some("{}"), &[("Authorization", "Bearer nope")]).await;
    assert_eq!(status, 401);
    drop(servers);
}

#[cfg(feature = "agones")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_agones_the_lobby_places_players_through_game_server_allocations() {
    use server::agones::fake::FakeSdk;
    // Three GameServers, each with its fake sidecar; the fake allocator sees what they report.
    let mut sidecars = Vec::new();
    let mut ports = Vec::new();
    for name in ["gs-1", "gs-2", "gs-3"] {
        let fake = FakeSdk::new(name, &["rooms", "players"], &["rooms"]);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        ports.push(listener.local_addr().unwrap().port().to_string());
        tokio::spawn(fake.clone().serve(listener, std::future::pending()));
        sidecars.push((name.to_string(), fake));
    }
    let allocator_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let allocator_url = format!("http://{}", allocator_listener.local_addr().unwrap());
    let allocator = server::agones::fake::allocator(sidecars.clone());
    tokio::spawn(async move { axum::serve(allocator_listener, allocator).await });
    let (port, _stop) = start_lobby(Some(allocator_url)).await;
    let servers: Vec<Server> = ["gs-1", "gs-2", "gs-3"]
        .iter()
        .zip(&ports)
        .map(|(name, sdk_port)| start_server(name, port, &[("AGONES_SDK_GRPC_PORT", sdk_port)]))
        .collect();
    wait_lobby(port, "/api/fleet/servers", "three servers reporting", |s| s.as_array().is_some_and(|s| s.len() == 3))
        .await;
    // Every GameServer Ready with its Main counted.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !sidecars.iter().all(|(_, fake)| {
        let state = fake.snapshot();
        state.state == "Ready" && state.counters["rooms"].count == 1
    }) {
        assert!(
            Instant::now() < deadline,
            "not all GameServers Ready: {:?}",
            sidecars.iter().map(|(_, f)| f.snapshot()).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Create: allocated (a free `rooms` slot); the room goes where the allocation said.
    let (client, code, host) = create_through_lobby(port, "ana").await;
    let allocated: Vec<&String> =
        sidecars.iter().filter(|(_, fake)| fake.snapshot().state == "Allocated").map(|(name, _)| name).collect();
    assert_eq!(allocated, [&host], "the allocation chose the server the room is on");
    // The server lists the room in its `rooms` List; join by code allocates by `containsValue`.
    let deadline = Instant::now() + Duration::from_secs(10);
    let sidecar = &sidecars.iter().find(|(name, _)| *name == host).unwrap().1;
    while !sidecar.snapshot().lists["rooms"].values.contains(&code) {
        assert!(Instant::now() < deadline, "room {code} not in {host}'s rooms List: {:?}", sidecar.snapshot());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, sent) =
        lobby(port, "POST", "/api/fleet/join", Some(&format!(r#"{{"code":"{code}","name":"bo"}}"#))).await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!(sent["server"], host.as_str(), "the allocation found the server that hosts {code}");
    let bo = go(&sent, "bo", RoomRequest::QuickPlay).await;
    assert_eq!(bo.welcome.room.code.to_string(), code);
    let (status, _) = lobby(port, "POST", "/api/fleet/join", Some(r#"{"code":"ZZZZ"}"#)).await;
    assert_eq!(status, 404, "no GameServer hosts ZZZZ");
    drop((client, bo, servers));
}

/// SECURITY.md's lobby limits: placements per address per minute (429 with `Retry-After`, the
/// next address not touched), a placement body over 1 KiB and a report over 512 KiB (413).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lobby_limits_placements_per_address_and_bodies_by_size() {
    let (port, _stop) = start_lobby_with(None, |config| {
        config.requests_per_minute = 3;
        config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let from = |ip: &'static str| [("X-Forwarded-For", ip)];
    // No server reports: a placement is answered (503, no server) until the address's allowance
    // is spent.
    for attempt in 0..3 {
        let (status, head, body) =
            common::http_to(addr, "POST", "/api/fleet/quickplay", Some("{}"), &from("198.51.100.1")).await;
        assert_ne!(status, 429, "placement {attempt} refused: {head}{body}");
    }
    let (status, head, body) =
        common::http_to(addr, "POST", "/api/fleet/quickplay", Some("{}"), &from("198.51.100.1")).await;
    assert_eq!(status, 429, "the fourth placement in a minute: {body}");
    assert!(head.contains("retry-after:"), "{head}");
    let (status, _, body) =
        common::http_to(addr, "POST", "/api/fleet/quickplay", Some("{}"), &from("198.51.100.2")).await;
    assert_ne!(status, 429, "another address was limited: {body}");
    // Bodies.
    let status = common::status_of_body(addr, "POST", "/api/fleet/join", 1025, &from("198.51.100.3")).await;
    assert_eq!(status, 413, "a 1,025-byte placement body");
    let key = format!("Bearer {LOBBY_KEY}");
    let status =
        common::status_of_body(addr, "POST", "/api/fleet/report", 512 * 1024 + 1, &[("Authorization", &key)]).await;
    assert_eq!(status, 413, "a report one byte over 512 KiB");
}

/// A hello with a join token and a resume token (a reload of the page the lobby sent to).
fn hello_resuming(name: &str, code: &str, token: &str, resume: u64) -> tokio_tungstenite::tungstenite::Message {
    tokio_tungstenite::tungstenite::Message::Binary(
        shared::protocol::encode(&shared::protocol::ClientMsg::Hello {
            protocol: shared::protocol::PROTOCOL_VERSION,
            name: name.to_string(),
            resume: Some(resume),
            room: RoomRequest::Join { code: code.to_string() },
            host_key: None,
            client_id: 0,
            auth: Some(JoinAuth::Token(token.to_string())),
            guest: None,
        })
        .into(),
    )
}

/// SECURITY.md's "lobby tokens" and "server names": a lobby token opens the one server it was
/// signed for, seats one player, and afterwards only resumes that player's seat; a holder of the
/// fleet key cannot report under a known server's name or move its URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lobby_tokens_open_one_server_once_and_a_servers_name_keeps_its_key() {
    use shared::protocol::DisconnectReason;
    let (port, _stop) = start_lobby(None).await;
    let servers: Vec<Server> = ["gs-1", "gs-2"].iter().map(|name| start_server(name, port, &[])).collect();
    wait_lobby(port, "/api/fleet/servers", "two servers reporting", |s| s.as_array().is_some_and(|s| s.len() == 2))
        .await;
    let (host, code, on) = create_through_lobby(port, "ana").await;
    let (status, sent) =
        lobby(port, "POST", "/api/fleet/join", Some(&format!(r#"{{"code":"{code}","name":"bo"}}"#))).await;
    assert_eq!(status, 200, "{sent}");
    let token = sent["token"].as_str().expect("a token").to_string();
    let url_of = |name: &str| {
        let index = ["gs-1", "gs-2"].iter().position(|s| *s == name).unwrap();
        format!("ws://127.0.0.1:{}/ws", servers[index].port)
    };
    let other = if on == "gs-1" { "gs-2" } else { "gs-1" };

    // The other server refuses it.
    let refused = TestClient::join_with(
        &url_of(other),
        hello_auth("bo", RoomRequest::QuickPlay, Some(JoinAuth::Token(token.clone()))),
    )
    .await
    .err()
    .unwrap_or_else(|| panic!("{other} admitted a token signed for {on}"));
    assert!(
        matches!(&refused.reason, Some(DisconnectReason::TokenInvalid { why }) if why.contains("another server")),
        "{refused:?}"
    );
    // Its own server seats bo.
    let bo = TestClient::join_with(
        &url_of(&on),
        hello_auth("bo", RoomRequest::QuickPlay, Some(JoinAuth::Token(token.clone()))),
    )
    .await
    .unwrap_or_else(|ending| panic!("{on} refused its own token: {ending:?}"));
    let (bo_id, bo_resume) = (bo.id(), bo.welcome.resume_token);
    // Seen again (a copied link), it seats nobody new: not without a resume token, not with a
    // forged one.
    let again = TestClient::join_with(
        &url_of(&on),
        hello_auth("mal", RoomRequest::QuickPlay, Some(JoinAuth::Token(token.clone()))),
    )
    .await
    .err()
    .expect("a used token seated a second player");
    assert!(
        matches!(&again.reason, Some(DisconnectReason::TokenInvalid { why }) if why.contains("used already")),
        "{again:?}"
    );
    let forged = TestClient::join_with(&url_of(&on), hello_resuming("mal", &code, &token, 0x1234_5678_9abc_def0))
        .await
        .err()
        .expect("a used token with a forged resume token seated a player");
    assert!(matches!(forged.reason, Some(DisconnectReason::ResumeRefused { .. })), "{forged:?}");
    // Nor as a spectator, nor to create a room.
    for (what, request) in
        [("watch", RoomRequest::Watch { code: code.clone() }), ("create", RoomRequest::Create(RoomSettings::default()))]
    {
        let refused =
            TestClient::join_with(&url_of(&on), hello_auth("mal", request, Some(JoinAuth::Token(token.clone()))))
                .await
                .err()
                .unwrap_or_else(|| panic!("a used token could {what}"));
        assert!(
            matches!(&refused.reason, Some(DisconnectReason::TokenInvalid { why })
                if why.contains("used already") || (what == "create" && why.contains("admits to room"))),
            "{what}: {refused:?}"
        );
    }
    // bo's connection drops; the reload (same token, bo's resume token) takes bo's seat back.
    drop(bo);
    let deadline = Instant::now() + Duration::from_secs(10);
    let back = loop {
        match TestClient::join_with(&url_of(&on), hello_resuming("bo", &code, &token, bo_resume)).await {
            Ok(back) => break back,
            Err(ending) => {
                let Some(DisconnectReason::SeatInUse { after_ms }) = ending.reason else {
                    panic!("the reload was refused: {ending:?}")
                };
                assert!(Instant::now() < deadline, "the seat stayed in use: {ending:?}");
                tokio::time::sleep(Duration::from_millis(u64::from(after_ms))).await;
            }
        }
    };
    assert_eq!(back.id(), bo_id, "the reload resumes bo, not a new player");
    // A reload that no longer has the token (or whose token expired) comes back with the resume
    // token alone: that takes bo's seat, never a new one.
    let back_resume = back.welcome.resume_token;
    drop(back);
    let deadline = Instant::now() + Duration::from_secs(10);
    let again = loop {
        let hello = common::hello_to("bo", RoomRequest::Join { code: code.clone() }, None, 0, Some(back_resume));
        match TestClient::join_with(&url_of(&on), hello).await {
            Ok(again) => break again,
            Err(ending) => {
                let Some(DisconnectReason::SeatInUse { after_ms }) = ending.reason else {
                    panic!("the token-less reload was refused: {ending:?}")
                };
                assert!(Instant::now() < deadline, "the seat stayed in use: {ending:?}");
                tokio::time::sleep(Duration::from_millis(u64::from(after_ms))).await;
            }
        }
    };
    // Its seat (the same entity after a drop, or its score after a goodbye): the same token.
    assert_eq!(again.welcome.resume_token, back_resume, "bo's seat came back, not a new player's");
    let no_seat = common::hello_to("mal", RoomRequest::Join { code: code.clone() }, None, 0, None);
    let refused = TestClient::join_with(&url_of(&on), no_seat).await.err().expect("no token, no resume: refused");
    assert_eq!(refused.reason, Some(DisconnectReason::TokenRequired));
    let back = again;

    // Reports under gs-1's name: the fleet key alone is not enough, another server key is refused,
    // and gs-1's URL stays where it was.
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let fleet_key = format!("Bearer {LOBBY_KEY}");
    let hijack = r#"{"server":"gs-1","url":"http://evil.example/","max_rooms":4,"draining":false,"rooms":[]}"#;
    let (status, _, body) =
        common::http_to(addr, "POST", "/api/fleet/report", Some(hijack), &[("Authorization", &fleet_key)]).await;
    assert_eq!(status, 401, "a report without a server key: {body}");
    let wrong = "f".repeat(64);
    let (status, _, body) = common::http_to(
        addr,
        "POST",
        "/api/fleet/report",
        Some(hijack),
        &[("Authorization", &fleet_key), ("X-Arena-Server-Key", &wrong)],
    )
    .await;
    assert_eq!(status, 409, "a report under gs-1's name with another key: {body}");
    // Several of gs-1's own reports later, its URL is still its own.
    tokio::time::sleep(server::fleet::REPORT_EVERY * 2).await;
    let (_, listing) = lobby(port, "GET", "/api/fleet/servers", None).await;
    let gs1 = listing.as_array().unwrap().iter().find(|s| s["server"] == "gs-1").expect("gs-1 listed").clone();
    assert_eq!(gs1["url"], format!("http://127.0.0.1:{}/", servers[0].port), "{listing}");
    // A new name is still open to the fleet key (the fleet key admits servers).
    let newcomer = r#"{"server":"gs-9","url":"http://127.0.0.1:1/","max_rooms":4,"draining":false,"rooms":[]}"#;
    let (status, _, body) = common::http_to(
        addr,
        "POST",
        "/api/fleet/report",
        Some(newcomer),
        &[("Authorization", &fleet_key), ("X-Arena-Server-Key", &wrong)],
    )
    .await;
    assert_eq!(status, 204, "{body}");
    drop((host, back, servers));
}

/// The README's ACL for a game server reporting straight into Redis (NAME its `--instance`).
const GAME_SERVER_ACL: &str = "on >PASSWORD resetkeys ~arena:name:NAME ~arena:server:NAME ~arena:server:NAME:codes \
    ~arena:code:* ~arena:room:* ~arena:rooms ~arena:servers resetchannels -@all +ping +hello +auth +client|setname \
    +eval +evalsha +script|load +get +set +del +exists +pttl +zscore +smembers +sadd +srem +hset +hget +hmget +hincrby +pexpire +zadd \
    +zrem +zrange +zrevrange +zrangebyscore +zremrangebyscore";

/// A lobby as its own process on the directory at `directory` (to be SIGKILLed).
fn start_lobby_process(directory: &str) -> Server {
    let env = [("ARENA_LOBBY_KEY", LOBBY_KEY), ("ARENA_JOIN_TOKEN_SECRET", SECRET)];
    let args = ["lobby", "--bind", "127.0.0.1:0", "--directory", directory, "--requests-per-minute", "1000"];
    let (child, port) = common::spawn_binary(&args, &env);
    Server { child, port }
}

/// `GET path` on a lobby: (status, the `X-Arena-Directory` header, JSON).
async fn lobby_with_state(port: u16, path: &str) -> (u16, String, serde_json::Value) {
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let (status, headers, text) = common::http_to(addr, "GET", path, None, &[]).await;
    let state = headers
        .lines()
        .find_map(|l| l.strip_prefix("x-arena-directory:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_default();
    (status, state, serde_json::from_str(&text).unwrap_or(serde_json::json!({ "raw": text })))
}

/// Two lobbies on one real Redis (one in its own process, one in this one) and three game
/// servers that each report to either: both lobbies list every server's rooms; a room made
/// through one is joined by code through the other; 12 quick plays at once through both never
/// hand out more seats than the rooms have; the first lobby SIGKILLed → its servers report to
/// the other, which keeps every room listed past the expiry; Redis restarted empty → the
/// directory is whole again within a report interval or so; Redis stopped → the lobby answers
/// its last view marked stale, places from it for a while then refuses with a 503, and the
/// matches go on (a game server's metrics say its reports fail).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lobbies_on_redis_share_rooms_codes_and_seats_and_outlive_a_lobby_and_redis() {
    let mut redis = redis::Redis::start();
    let mut lobby_a = start_lobby_process(&redis.url());
    let url = redis.url();
    let (b, _stop_b) = start_lobby_with(None, |config| {
        config.directory = Some(url);
        config.stale_placements_for = Duration::from_secs(4);
    })
    .await;
    let a = lobby_a.port;
    let (to_a, to_b) =
        (format!("http://127.0.0.1:{a},http://127.0.0.1:{b}"), format!("http://127.0.0.1:{b},http://127.0.0.1:{a}"));
    // gs-3 reports straight into Redis as an ACL user that may touch only its own keys and the
    // shared ones (the README's ACL); the others report to either lobby.
    let set_user = |redis: &redis::Redis| {
        let rules = GAME_SERVER_ACL.replace("NAME", "gs-3").replace(">PASSWORD", ">gs3-password-0123456789");
        let mut command = vec!["ACL", "SETUSER", "gs-3"];
        command.extend(rules.split_whitespace());
        let answer = redis.cli(&command);
        assert_eq!(answer.trim(), "OK", "ACL SETUSER: {answer}");
    };
    set_user(&redis);
    let gs3_url = format!("redis://gs-3@127.0.0.1:{}/0", redis.port);
    let servers = [
        start_server_to("gs-1", &to_a, &[]),
        start_server_to("gs-2", &to_b, &[]),
        start_server_to("gs-3", &gs3_url, &[("ARENA_DIRECTORY_PASSWORD", "gs3-password-0123456789")]),
    ];
    for port in [a, b] {
        wait_lobby(port, "/api/fleet/servers", "three servers in the shared directory", |s| {
            s.as_array().is_some_and(|s| s.len() == 3)
        })
        .await;
    }

    // The ACL keeps gs-3's login off another server's keys and off anything but the directory.
    let as_gs3 = |command: &[&str]| {
        let mut args = vec!["--user", "gs-3", "--pass", "gs3-password-0123456789", "--no-auth-warning"];
        args.extend_from_slice(command);
        redis.cli(&args)
    };
    for refused in [&["HSET", "arena:server:gs-1", "url", "http://evil/"][..], &["FLUSHALL"], &["CONFIG", "GET", "*"]] {
        let answer = as_gs3(refused);
        assert!(answer.contains("NOPERM"), "{refused:?} as gs-3: {answer}");
    }
    assert!(as_gs3(&["HGET", "arena:server:gs-3", "url"]).contains("http://127.0.0.1:"), "its own key");
    assert_eq!(redis.cli(&["ACL", "LOG", "RESET"]).trim(), "OK");
    let nothing_denied = |redis: &redis::Redis, when: &str| {
        let denied = redis.cli(&["ACL", "LOG"]);
        assert!(denied.trim().is_empty(), "the ACL refused gs-3 {when}: {denied}");
    };

    // Each server holds codes reserved fleet-wide (set only if absent in Redis) for its next
    // rooms.
    let reserved = |redis: &redis::Redis| -> std::collections::BTreeMap<String, String> {
        redis
            .cli(&["--scan", "--pattern", "arena:code:*"])
            .lines()
            .map(|key| (key.trim_start_matches("arena:code:").to_string(), redis.cli(&["GET", key]).trim().to_string()))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let held = loop {
        let held = reserved(&redis);
        let per_server = |name: &str| held.values().filter(|owner| *owner == name).count();
        // Its Main room's code and four in reserve.
        if ["gs-1", "gs-2", "gs-3"].iter().all(|name| per_server(name) >= 5) {
            break held;
        }
        assert!(Instant::now() < deadline, "codes never reserved: {held:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // Three rooms of 4 through both lobbies: the slots are counted in Redis, so one per server.
    let small = || RoomSettings { max_players: Some(4), ..RoomSettings::default() };
    let mut made = Vec::new();
    for (port, name) in [(a, "ana"), (b, "bo"), (a, "cy")] {
        made.push(create_through_lobby_with(port, name, small()).await);
    }
    let mut hosts: Vec<&str> = made.iter().map(|(_, _, server)| server.as_str()).collect();
    hosts.sort();
    assert_eq!(hosts, ["gs-1", "gs-2", "gs-3"], "new rooms spread over the servers through both lobbies");
    for (_, code, server) in &made {
        assert_eq!(held.get(code), Some(server), "room {code} took a code reserved for {server}: {held:?}");
    }
    for port in [a, b] {
        wait_lobby(port, "/api/rooms", "every room listed by both lobbies", |rooms| {
            made.iter().all(|(_, code, server)| listed(rooms, code, server))
        })
        .await;
    }

    // A room made through lobby A, joined by code through lobby B.
    let (_, code, host) = &made[0];
    let (status, sent) =
        lobby(b, "POST", "/api/fleet/join", Some(&format!(r#"{{"code":"{code}","name":"dee"}}"#))).await;
    assert_eq!((status, sent["server"].as_str()), (200, Some(host.as_str())), "{sent}");
    let dee = go(&sent, "dee", RoomRequest::QuickPlay).await;
    assert_eq!(dee.welcome.room.code.to_string(), *code);
    for port in [a, b] {
        wait_lobby(port, "/api/rooms", "dee counted", |rooms| {
            rooms.as_array().is_some_and(|r| r.iter().any(|r| r["code"] == code.as_str() && r["players"] == 2))
        })
        .await;
    }

    // 12 quick plays at once, half through each lobby. The fullest rooms with a seat go first:
    // the three small rooms' 2 + 3 + 3 seats, then the servers' Main rooms; never a seat twice.
    let (_, before) = lobby(b, "GET", "/api/rooms", None).await;
    let free: std::collections::BTreeMap<String, u64> = before
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["code"].as_str().unwrap().to_string(),
                r["max_players"].as_u64().unwrap() - r["players"].as_u64().unwrap(),
            )
        })
        .collect();
    let bursts = (0..12).map(|i| {
        let port = if i % 2 == 0 { a } else { b };
        async move { lobby(port, "POST", "/api/fleet/quickplay", Some(r#"{"name":"q"}"#)).await }
    });
    let answers = futures_util::future::join_all(bursts).await;
    let mut seats: std::collections::BTreeMap<String, u64> = Default::default();
    for (status, sent) in &answers {
        assert_eq!(*status, 200, "{sent}");
        *seats.entry(sent["code"].as_str().expect("a room with a seat").to_string()).or_default() += 1;
    }
    for (code, placed) in &seats {
        let room_free = free.get(code).copied().unwrap_or(0);
        assert!(*placed <= room_free, "room {code} was handed {placed} seats of {room_free}: {seats:?} of {free:?}");
    }
    let small: u64 = made.iter().map(|(_, code, _)| seats.get(code).copied().unwrap_or(0)).sum();
    assert_eq!(small, 8, "the small rooms' 8 free seats handed out first, each once: {seats:?} of {free:?}");

    // Lobby A SIGKILLed: its servers move their reports to B, which keeps every room (the
    // directory forgets a server 6 s after its last report: watch for 8 s).
    std::process::Command::new("kill").args(["-KILL", &lobby_a.child.id().to_string()]).status().unwrap();
    let _ = lobby_a.child.wait();
    let watch_until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < watch_until {
        let (status, state, rooms) = lobby_with_state(b, "/api/rooms").await;
        assert!(
            status == 200 && state == "fresh" && made.iter().all(|(_, code, server)| listed(&rooms, code, server)),
            "lobby B lost a room after A died: {status} {state} {rooms}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (status, sent) = lobby(b, "POST", "/api/fleet/join", Some(&format!(r#"{{"code":"{}"}}"#, made[2].1))).await;
    assert_eq!((status, sent["server"].as_str()), (200, Some(made[2].2.as_str())), "{sent}");

    // Redis restarted empty: the servers' next reports fill it again (three servers, each with
    // its Main room and one of ours).
    nothing_denied(&redis, "before the restart");
    redis.kill();
    redis.start_again();
    set_user(&redis);
    let restarted = Instant::now();
    let room_keys = |redis: &redis::Redis| redis.cli(&["--scan", "--pattern", "arena:room:*"]).lines().count();
    assert_eq!(room_keys(&redis), 0, "a restarted Redis starts empty");
    while room_keys(&redis) < 6 || redis.cli(&["ZCARD", "arena:servers"]).trim() != "3" {
        assert!(
            restarted.elapsed() < Duration::from_secs(10),
            "the directory never filled again: {}",
            room_keys(&redis)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let whole_after = restarted.elapsed();
    eprintln!("Redis restarted empty: every server and room back in it after {whole_after:?}");
    assert!(whole_after < Duration::from_secs(5), "whole again only after {whole_after:?}");
    wait_lobby(b, "/api/rooms", "lobby B lists every room again", |rooms| {
        made.iter().all(|(_, code, server)| listed(rooms, code, server))
    })
    .await;

    // Nothing gs-3 did was refused by its ACL (so the README's ACL is enough).
    nothing_denied(&redis, "after the restart");

    // Redis stopped: the last view, marked stale; placements from it for 4 s, then refused.
    redis.kill();
    let stopped = Instant::now();
    let (status, rooms) = loop {
        // (A list built in the last second is served as it is.)
        let (status, state, rooms) = lobby_with_state(b, "/api/rooms").await;
        if state == "stale" {
            break (status, rooms);
        }
        assert!(stopped.elapsed() < Duration::from_secs(3), "never marked stale: {status} {state} {rooms}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status, 200, "{rooms}");
    assert!(made.iter().all(|(_, code, server)| listed(&rooms, code, server)), "the last view: {rooms}");
    let (status, sent) = lobby(b, "POST", "/api/fleet/quickplay", Some(r#"{"name":"r"}"#)).await;
    assert_eq!(status, 200, "placed from the last view {:?} after Redis stopped: {sent}", stopped.elapsed());
    tokio::time::sleep(Duration::from_millis(5500).saturating_sub(stopped.elapsed())).await;
    let (status, refused) = lobby(b, "POST", "/api/fleet/quickplay", Some(r#"{"name":"r"}"#)).await;
    assert_eq!(status, 503, "{refused}");
    assert!(refused["error"].as_str().is_some_and(|e| e.contains("directory is unreachable")), "{refused}");
    // The matches go on: a player with a token the lobby would have signed joins the room on
    // its server and plays; the server's metrics say no lobby takes its reports.
    drop(dee);
    let index = ["gs-1", "gs-2", "gs-3"].iter().position(|s| *s == host.as_str()).unwrap();
    let room = shared::room::RoomCode::parse(code).unwrap();
    let token =
        server::fleet::lobby::sign(SECRET, Duration::from_secs(60), Some("eve"), (host, Some(room)), (None, None))
            .unwrap();
    let hello = hello_auth("eve", RoomRequest::QuickPlay, Some(JoinAuth::Token(token)));
    let mut eve = TestClient::join_with(&format!("ws://127.0.0.1:{}/ws", servers[index].port), hello)
        .await
        .unwrap_or_else(|ending| panic!("the room refused a player while Redis was down: {ending:?}"));
    assert_eq!(eve.welcome.room.code.to_string(), *code);
    let from = eve.latest_tick().0;
    assert!(eve.until(Duration::from_secs(5), |c| c.latest_tick().0 >= from + 60).await, "the match stalled");
    let metrics_addr = format!("127.0.0.1:{}", servers[index].port).parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(6);
    loop {
        let (_, _, metrics) = common::http_to(metrics_addr, "GET", "/metrics", None, &[]).await;
        if metrics.lines().any(|l| l == "arena_fleet_directory_up 0") {
            break;
        }
        assert!(Instant::now() < deadline, "the game server's metrics never said its reports fail: {metrics}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(servers);
}

/// A lobby started while Redis is down starts anyway: its list is empty and stale, placements
/// are refused with the reason, and it connects once Redis answers; a Redis that refuses the
/// lobby's login stops the start with the reason instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lobby_waits_for_redis_to_answer_and_stops_on_a_refused_login() {
    let mut redis = redis::Redis::not_started();
    let url = redis.url();
    let (port, _stop) = start_lobby_with(None, |config| config.directory = Some(url)).await;
    let (status, state, rooms) = lobby_with_state(port, "/api/rooms").await;
    assert_eq!((status, state.as_str(), rooms.clone()), (200, "stale", serde_json::json!([])), "{rooms}");
    let (status, refused) = lobby(port, "POST", "/api/fleet/quickplay", Some("{}")).await;
    assert_eq!(status, 503, "{refused}");
    assert!(refused["error"].as_str().is_some_and(|e| e.contains("directory is unreachable")), "{refused}");

    redis.start_again();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, state, servers) = lobby_with_state(port, "/api/fleet/servers").await;
        if status == 200 && state == "fresh" {
            break;
        }
        assert!(Instant::now() < deadline, "the lobby never connected: {status} {state} {servers}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A login Redis refuses: no lobby.
    assert_eq!(redis.cli(&["CONFIG", "SET", "requirepass", "the-real-password-0123"]).trim(), "OK");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = server::fleet::lobby::LobbyConfig {
        directory: Some(redis.url()),
        directory_password: Some("a-wrong-password-0123".into()),
        ..lobby_config(None)
    };
    let started = tokio::time::timeout(Duration::from_secs(10), server::fleet::lobby::run(listener, config, async {}))
        .await
        .expect("the start is refused at once, not retried");
    let error = started.expect_err("a refused login stops the lobby").to_string();
    assert!(error.contains("--directory") && !error.contains("a-wrong-password"), "{error}");
}
