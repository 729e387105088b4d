//! Administration end to end, on a real server and real WebSocket clients: the operator sees
//! rooms with their players' addresses, round trips and bytes per second; kicks one, closes a
//! room with a message, broadcasts, changes bots and starts a drain; every action lands in the
//! audit log (file and API) with the token's name and never the token. Tokens are refused in
//! URLs, wrong ones get 401 and then a lockout, and administration is off without a token.

mod common;

use std::time::Duration;

use common::{TestClient, TestServer, http_to, read_until_closed};
use server::ServerConfig;
use server::admin::{AdminConfig, AdminToken};
use shared::protocol::DisconnectReason;
use shared::room::{RoomRequest, RoomSettings};

const SECRET: &str = "test-admin-secret-0123456789";

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("arena-admin-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn admin_config(dir: &std::path::Path) -> ServerConfig {
    ServerConfig {
        admin: AdminConfig {
            tokens: vec![AdminToken::parse(&format!("ops={SECRET}")).unwrap()],
            bans_file: Some(dir.join("bans.json")),
            audit_log: Some(dir.join("audit.log")),
        },
        ..ServerConfig::default()
    }
}

/// An admin API call with the token: (status, JSON body).
async fn api(server: &TestServer, method: &str, path: &str, body: Option<&str>) -> (u16, serde_json::Value) {
    let bearer = format!("Bearer {SECRET}");
    let (status, _, text) = http_to(server.addr, method, path, body, &[("Authorization", &bearer)]).await;
    (status, serde_json::from_str(&text).unwrap_or_else(|_| serde_json::json!({ "raw": text })))
}

/// The room `code` in `/api/admin/rooms`.
async fn room_detail(server: &TestServer, code: &str) -> serde_json::Value {
    let (status, body) = api(server, "GET", "/api/admin/rooms", None).await;
    assert_eq!(status, 200, "{body}");
    body["rooms"].as_array().unwrap().iter().find(|r| r["code"] == code).cloned().unwrap_or_else(|| {
        panic!("room {code} not listed: {body}");
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_sees_kicks_closes_broadcasts_sets_bots_and_drains_and_every_action_is_audited() {
    let dir = temp_dir("ops");
    let server = TestServer::start(admin_config(&dir)).await;
    let main = server.rooms.main_code().unwrap().to_string();
    let mut ana = TestClient::join(&server, "ana").await;
    let mut bo = TestClient::join(&server, "bo").await;

    // The operator sees both players with their address, round trip and bytes per second (the
    // writer samples every 2 s; wait for the figures rather than for time).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let players = loop {
        ana.next_snapshot().await;
        bo.next_snapshot().await;
        let detail = room_detail(&server, &main).await;
        let players = detail["players"].as_array().unwrap().clone();
        let measured = players.len() == 2
            && players.iter().all(|p| p["rtt_ms"].as_f64().is_some() && p["bytes_per_second"].as_u64() > Some(0));
        if measured {
            break players;
        }
        assert!(tokio::time::Instant::now() < deadline, "no RTT and rate for both players: {detail}");
    };
    assert!(players.iter().all(|p| p["ip"] == "127.0.0.1"), "{players:?}");
    let ana_id = ana.id().0;

    // Broadcast: a notice in every room.
    let (status, body) = api(&server, "POST", "/api/admin/broadcast", Some(r#"{"message":"maintenance at 5"}"#)).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        bo.until(Duration::from_secs(5), |c| c.notices().iter().any(|n| n == "Server: maintenance at 5")).await,
        "bo never saw the broadcast; notices: {:?}",
        bo.notices()
    );

    // Bots: the room reports them and the world has them.
    let (status, body) = api(&server, "POST", &format!("/api/admin/rooms/{main}/bots"), Some(r#"{"bots":3}"#)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(room_detail(&server, &main).await["bots"], 3);
    let (status, body) = api(&server, "POST", &format!("/api/admin/rooms/{main}/bots"), Some(r#"{"bots":"x"}"#)).await;
    assert_eq!(status, 400, "a mistyped body is refused: {body}");
    let (status, body) =
        api(&server, "POST", &format!("/api/admin/rooms/{main}/bots"), Some(r#"{"bots":1,"evil":1}"#)).await;
    assert_eq!(status, 400, "unknown fields are refused: {body}");

    // Kick: ana is closed with the operator's message and its own close code; a long message
    // arrives whole in the goodbye and cut to a control frame's 123 bytes in the Close frame.
    let long = "be nice to the new players, please: ".repeat(5);
    let (status, body) = api(
        &server,
        "POST",
        &format!("/api/admin/rooms/{main}/kick"),
        Some(&serde_json::json!({ "player": ana_id, "message": long }).to_string()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let ending = read_until_closed(&mut ana.ws).await;
    let expected = long.trim().to_string();
    assert_eq!(ending.reason, Some(DisconnectReason::ByOperator { message: expected }), "{ending:?}");
    let (code, text) = ending.close.clone().expect("a Close frame");
    assert_eq!(code, 4016, "{ending:?}");
    assert!(text.len() <= 123 && text.starts_with("removed by the server's operator: be nice"), "{text:?}");
    let (status, body) =
        api(&server, "POST", &format!("/api/admin/rooms/{main}/kick"), Some(r#"{"player":999999}"#)).await;
    assert_eq!(status, 409, "kicking nobody says so: {body}");

    // Close a room with a message: its players leave with it and the room is gone; the
    // permanent room cannot be closed.
    let mut cy = TestClient::join_room(&server, "cy", RoomRequest::Create(RoomSettings::default())).await;
    let code = cy.welcome.room.code.to_string();
    let (status, body) =
        api(&server, "POST", &format!("/api/admin/rooms/{code}/close"), Some(r#"{"message":"closing for the night"}"#))
            .await;
    assert_eq!(status, 200, "{body}");
    let ending = read_until_closed(&mut cy.ws).await;
    assert_eq!(ending.reason, Some(DisconnectReason::ByOperator { message: "closing for the night".into() }));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while server.rooms.find(&code).is_some() {
        assert!(tokio::time::Instant::now() < deadline, "room {code} still listed after its close");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body) = api(&server, "POST", &format!("/api/admin/rooms/{main}/close"), None).await;
    assert_eq!(status, 409, "Main is permanent: {body}");
    // A room nobody joined yet is listed from its summary and closes at once.
    let unused = server.rooms.create(RoomSettings::default(), None).expect("a room").0.public.code.to_string();
    assert_eq!(room_detail(&server, &unused).await["players"], serde_json::json!([]));
    let (status, body) = api(&server, "POST", &format!("/api/admin/rooms/{unused}/close"), None).await;
    assert_eq!(status, 200, "{body}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while server.rooms.find(&unused).is_some() {
        assert!(tokio::time::Instant::now() < deadline, "unused room {unused} still listed after its close");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Drain: /readyz turns 503 and the player hears the countdown.
    let (status, body) = api(&server, "POST", "/api/admin/drain", Some("{}")).await;
    assert_eq!(status, 200, "{body}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (status, _, _) = http_to(server.addr, "GET", "/readyz", None, &[]).await;
        if status == 503 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "/readyz still {status} after the drain request");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        bo.until(Duration::from_secs(5), |c| c.notices().iter().any(|n| n.starts_with("Server restarting in"))).await,
        "no drain notice: {:?}",
        bo.notices()
    );

    // The audit log: every action, by the token's name, from the operator's address; the file
    // has the same lines and never the secret.
    let (status, audit) = api(&server, "GET", "/api/admin/audit", None).await;
    assert_eq!(status, 200);
    let actions: Vec<&str> = audit.as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    for action in ["broadcast", "set_bots", "kick", "close_room", "drain"] {
        assert!(actions.contains(&action), "{action} not audited: {actions:?}");
    }
    assert!(audit.as_array().unwrap().iter().all(|e| e["who"] == "ops" && e["from"] == "127.0.0.1"), "{audit}");
    let failed_kick = audit.as_array().unwrap().iter().find(|e| e["target"].as_str().unwrap().contains("999999"));
    assert!(failed_kick.is_some_and(|e| e["outcome"] != "ok"), "a failed action is audited with its error: {audit}");
    let file = std::fs::read_to_string(dir.join("audit.log")).unwrap();
    assert_eq!(file.lines().count(), audit.as_array().unwrap().len(), "{file}");
    assert!(!file.contains(SECRET));
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_only_in_the_header_wrong_ones_are_refused_then_locked_out() {
    let dir = temp_dir("auth");
    let server = TestServer::start(admin_config(&dir)).await;
    let (status, _, body) = http_to(server.addr, "GET", &format!("/api/admin/rooms?token={SECRET}"), None, &[]).await;
    assert_eq!(status, 400, "a token in the URL is refused: {body}");
    assert!(body.contains("never accepted in a URL"), "{body}");
    let bearer = format!("Bearer {SECRET}");
    let (status, _, body) =
        http_to(server.addr, "GET", "/api/admin/rooms?access_token=x", None, &[("Authorization", &bearer)]).await;
    assert_eq!(status, 400, "even with a good header: {body}");
    let (status, head, _) = http_to(server.addr, "GET", "/api/admin/rooms", None, &[]).await;
    assert_eq!(status, 401);
    assert!(head.contains("www-authenticate: bearer"), "{head}");
    // Another site's page cannot use a token it does not have, nor one it does.
    let (status, _, _) = http_to(
        server.addr,
        "GET",
        "/api/admin/rooms",
        None,
        &[("Authorization", &bearer), ("Origin", "https://evil.example")],
    )
    .await;
    assert_eq!(status, 403);
    // Wrong tokens: 401 each, then the address is locked out, the right token too (a lockout
    // that let the right one through would tell a guesser which guess was right), until the
    // allowance refills (ten a minute: one every 6 s).
    for attempt in 0..10 {
        let (status, _, body) =
            http_to(server.addr, "GET", "/api/admin/bans", None, &[("Authorization", "Bearer wrong-token-guess-1234")])
                .await;
        assert_eq!(status, 401, "attempt {attempt}: {body}");
    }
    let (status, _, body) =
        http_to(server.addr, "GET", "/api/admin/bans", None, &[("Authorization", "Bearer wrong-token-guess-1234")])
            .await;
    assert_eq!(status, 429, "locked out after ten wrong tokens: {body}");
    let (status, _, body) = http_to(server.addr, "GET", "/api/admin/bans", None, &[("Authorization", &bearer)]).await;
    assert_eq!(status, 429, "the right token is locked out too, so the lockout is no oracle: {body}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (status, _, body) =
            http_to(server.addr, "GET", "/api/admin/bans", None, &[("Authorization", &bearer)]).await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 429, "{body}");
        assert!(tokio::time::Instant::now() < deadline, "still locked out 15 s after the last wrong token: {body}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The page itself is served with the strict CSP and asks for the token.
    let (status, head, page) = http_to(server.addr, "GET", "/admin", None, &[]).await;
    assert_eq!(status, 200);
    assert!(head.contains("content-security-policy: default-src 'none'; script-src 'self'"), "{head}");
    assert!(page.contains(r#"type="password""#), "{page}");
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_administration_is_off_and_metrics_can_require_one() {
    let server = TestServer::start(ServerConfig::default()).await;
    let (status, _, body) =
        http_to(server.addr, "GET", "/api/admin/rooms", None, &[("Authorization", "Bearer x")]).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("administration is off"), "{body}");
    server.stop().await;

    let dir = temp_dir("metrics");
    let server = TestServer::start(ServerConfig { metrics_require_token: true, ..admin_config(&dir) }).await;
    let (status, _, _) = http_to(server.addr, "GET", "/metrics", None, &[]).await;
    assert_eq!(status, 401, "/metrics needs the token");
    let bearer = format!("Bearer {SECRET}");
    let (status, _, body) = http_to(server.addr, "GET", "/metrics", None, &[("Authorization", &bearer)]).await;
    assert_eq!(status, 200);
    assert!(body.contains("arena_rooms"), "{body}");
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Behind a reverse proxy named with `--trusted-proxy`, the operator sees, limits and bans the
/// player's own address from `X-Forwarded-For`; the proxy itself cannot be banned; a client
/// that is not a trusted proxy cannot pretend to be someone else with the header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_bans_reach_the_player_not_the_proxy() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let dir = temp_dir("proxy");
    let config = ServerConfig { trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()], ..admin_config(&dir) };
    let server = TestServer::start(config).await;
    async fn connect(url: String, forwarded: &str) -> common::Ws {
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert("x-forwarded-for", forwarded.parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await.expect("connects");
        ws.send(common::hello("proxied")).await.unwrap();
        ws
    }
    // The proxy appends the address it saw; anything to its left came from the client.
    let mut player = connect(server.url(), "10.9.9.9, 203.0.113.5").await;
    let main = server.rooms.main_code().unwrap().to_string();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let detail = room_detail(&server, &main).await;
        if detail["players"].as_array().is_some_and(|p| p.iter().any(|p| p["ip"] == "203.0.113.5")) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the player's forwarded address not shown: {detail}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body) = api(&server, "POST", "/api/admin/bans", Some(r#"{"ip":"127.0.0.1"}"#)).await;
    assert_eq!(status, 400, "the proxy cannot be banned: {body}");
    let (status, body) = api(&server, "POST", "/api/admin/bans", Some(r#"{"ip":"203.0.113.5","reason":"spam"}"#)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["closed_connections"], 1, "{body}");
    let ending = read_until_closed(&mut player).await;
    assert_eq!(ending.reason, Some(DisconnectReason::Banned), "{ending:?}");
    // The banned player cannot come back through the proxy; someone else behind it can.
    let mut again = connect(server.url(), "203.0.113.5").await;
    assert_eq!(read_until_closed(&mut again).await.reason, Some(DisconnectReason::Banned));
    let other = TestClient::join_with(&server.url(), common::hello("other")).await;
    assert!(other.is_ok(), "a player behind the same proxy without the banned address gets in");
    server.stop().await;

    // Without --trusted-proxy the header is the client's word: ignored.
    let server = TestServer::start(admin_config(&dir)).await;
    let _liar = connect(server.url(), "198.51.100.7").await;
    let main = server.rooms.main_code().unwrap().to_string();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let detail = room_detail(&server, &main).await;
        if let Some(players) = detail["players"].as_array().filter(|p| !p.is_empty()) {
            assert!(players.iter().all(|p| p["ip"] == "127.0.0.1"), "{detail}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the player never joined: {detail}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// SECURITY.md's request-body limits on the game port: 4 KiB for room creation and for the
/// admin API (a body one byte over gets 413, one at the limit is read).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_over_their_limit_get_413() {
    let dir = temp_dir("bodies");
    let server = TestServer::start(admin_config(&dir)).await;
    let main = server.rooms.main_code().unwrap().to_string();
    let bearer = format!("Bearer {SECRET}");
    let auth = [("Authorization", bearer.as_str())];
    let bots = format!("/api/admin/rooms/{main}/bots");
    for (path, headers) in [("/api/rooms", &[][..]), (bots.as_str(), &auth[..])] {
        let over = common::status_of_body(server.addr, "POST", path, 4097, headers).await;
        assert_eq!(over, 413, "POST {path} with 4,097 bytes");
        // At the limit the body is read (and refused as the JSON it is not).
        let at = common::status_of_body(server.addr, "POST", path, 4096, headers).await;
        assert_eq!(at, 400, "POST {path} with 4,096 bytes");
    }
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The operator's actions on stored players and seasons, over HTTP on a server with a database:
/// end the season (the page's season board empties, the past one is listed), ban a player from
/// rated play (off the board; lifted, back), erase a player (their profile is gone); bad ids and
/// unknown players are refused; every action is audited; `/api/replays` serves only replay names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_ends_seasons_bans_from_rated_play_and_erases_players_and_it_is_audited() {
    use server::store::{db::Store, rating::RatingRules, record};
    let dir = temp_dir("players");
    let store = std::sync::Arc::new(
        Store::open(&format!("sqlite:{}", dir.join("arena.db").display()), RatingRules::default()).await.unwrap(),
    );
    let (ann, bo) = (record::guest_player_id(&[1; 16]), record::guest_player_id(&[2; 16]));
    let line = |id: &str, place: u16| record::RecordedPlayer {
        player: Some(id.to_string()),
        name: format!("p{place}"),
        place,
        bot: false,
        left: false,
        score: 10 / place,
        kills: 1,
        deaths: 1,
        orbs: 0,
        shots: 0,
        hits: 0,
        seconds_played: 300,
        net_id: None,
    };
    // The round's replay: the shipped sample, with a chat line of headless-1's added (bo was
    // headless-1 in it, ann headless-2: her line kept no entity id, as older servers stored).
    let replays = dir.join("replays");
    std::fs::create_dir_all(&replays).unwrap();
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/replays/sample.arenareplay");
    let mut recording = server::replay::format::parse(&std::fs::read(&sample).unwrap()).unwrap();
    let joined = |name: &str| {
        recording.records.iter().flat_map(|r| &r.ops).find_map(|op| match op {
            server::replay::Op::Join { id, name: n, .. } if n == name => Some(*id),
            _ => None,
        })
    };
    let (bo_in_replay, ann_in_replay) = (joined("headless-1").unwrap(), joined("headless-2").unwrap());
    let said = recording.records.len() / 2;
    recording.records[said].ops.push(server::replay::Op::Chat { id: bo_in_replay, text: "bo's secret".into() });
    let replay_bytes = server::replay::format::write_all(&recording.header, &recording.records);
    std::fs::write(replays.join("ABCD-r1.arenareplay"), &replay_bytes).unwrap();
    let (mut ann_line, mut bo_line) = (line(&ann, 1), line(&bo, 2));
    ann_line.name = "headless-2".into();
    bo_line.net_id = Some(bo_in_replay.0);
    store
        .write(&[record::RoundRecord {
            round_id: format!("{:032x}", 1),
            server: "s".into(),
            room: "ABCD".into(),
            round: 1,
            map: "arena".into(),
            ended_unix_ms: 1,
            why: "time".into(),
            seconds: 300,
            replay: Some("ABCD-r1.arenareplay".into()),
            players: vec![ann_line, bo_line],
        }])
        .await
        .unwrap();
    let server = TestServer::start(ServerConfig {
        store: Some(server::store::db::StoreCell::ready(store.clone())),
        replay_dir: Some(replays.clone()),
        ..admin_config(&dir)
    })
    .await;
    let public = |path: String| {
        let addr = server.addr;
        async move {
            let (status, _, text) = http_to(addr, "GET", &path, None, &[]).await;
            (status, serde_json::from_str::<serde_json::Value>(&text).unwrap_or(serde_json::json!({ "raw": text })))
        }
    };
    let (status, board) = public("/api/leaderboard?season=current".into()).await;
    assert_eq!((status, board["total"].as_u64(), board["season"].as_u64()), (200, Some(2), Some(1)), "{board}");

    // Without a token: refused, nothing changes.
    let (status, _, _) = http_to(server.addr, "POST", "/api/admin/seasons/end", Some("{}"), &[]).await;
    assert_eq!(status, 401);
    let (status, body) = api(&server, "POST", "/api/admin/seasons/end", Some("{}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["ended"]["season"].as_u64(), body["current"]["season"].as_u64()), (Some(1), Some(2)), "{body}");
    let (_, board) = public("/api/leaderboard?season=current".into()).await;
    assert_eq!((board["season"].as_u64(), board["total"].as_u64()), (Some(2), Some(0)), "a fresh season: {board}");
    let (_, past) = public("/api/leaderboard?season=1".into()).await;
    assert_eq!(past["total"].as_u64(), Some(2), "the ended season keeps its board: {past}");
    let (_, seasons) = public("/api/seasons".into()).await;
    assert_eq!(seasons["seasons"].as_array().map(Vec::len), Some(2), "{seasons}");

    // A rated-play ban, and lifting it.
    let (status, body) =
        api(&server, "POST", &format!("/api/admin/players/{ann}/rated-ban"), Some(r#"{"banned":true}"#)).await;
    assert_eq!(status, 200, "{body}");
    let (_, all) = public("/api/leaderboard?season=all".into()).await;
    let players: Vec<&str> = all["lines"].as_array().unwrap().iter().map(|l| l["player"].as_str().unwrap()).collect();
    assert_eq!(players, [bo.as_str()], "banned: off the board: {all}");
    let (_, profile) = public(format!("/api/players/{ann}")).await;
    assert_eq!(profile["banned"], true, "{profile}");
    let (status, _) =
        api(&server, "POST", &format!("/api/admin/players/{ann}/rated-ban"), Some(r#"{"banned":false}"#)).await;
    assert_eq!(status, 200);
    let (_, all) = public("/api/leaderboard?season=all".into()).await;
    assert_eq!(all["total"].as_u64(), Some(2), "lifted: back on the board: {all}");
    let (status, body) =
        api(&server, "POST", "/api/admin/players/'%20OR%201=1/rated-ban", Some(r#"{"banned":true}"#)).await;
    assert_eq!(status, 400, "{body}");
    let unknown = record::guest_player_id(&[9; 16]);
    let (status, _) =
        api(&server, "POST", &format!("/api/admin/players/{unknown}/rated-ban"), Some(r#"{"banned":true}"#)).await;
    assert_eq!(status, 404);

    // A replay through its link; nothing but a replay name is served.
    let (_, profile) = public(format!("/api/players/{bo}")).await;
    let link = profile["recent"][0]["replay_url"].as_str().expect("a replay link").to_string();
    let (status, _, bytes) = http_to(server.addr, "GET", &link, None, &[]).await;
    // (`http_to` reads the body as lossy UTF-8: the magic is what survives of a binary file.)
    assert_eq!((status, bytes.get(..8)), (200, Some("ARENARPL")), "the replay is served");
    for bad in ["/api/replays/..%2Farena.db", "/api/replays/arena.db", "/api/replays/missing.arenareplay"] {
        let (status, _, _) = http_to(server.addr, "GET", bad, None, &[]).await;
        assert!(status == 400 || status == 404, "{bad}: {status}");
    }

    // Erasure: the profile goes, and the replay is rewritten without bo's name and chat, and
    // still verifies bit for bit.
    let (status, body) = api(&server, "DELETE", &format!("/api/admin/players/{bo}"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["replays"], serde_json::json!({ "rewritten": 1, "not_here": 0, "failed": 0 }), "{body}");
    let names_in = |bytes: &[u8]| {
        let file = server::replay::format::parse(bytes).unwrap();
        let mut joins = Vec::new();
        let mut chat = Vec::new();
        for op in file.records.iter().flat_map(|r| &r.ops) {
            match op {
                server::replay::Op::Join { id, name, .. } => joins.push((id.0, name.clone())),
                server::replay::Op::Chat { text, .. } => chat.push(text.clone()),
                _ => {}
            }
        }
        (joins, chat, file)
    };
    let (joins, chat, rewritten) = names_in(&std::fs::read(replays.join("ABCD-r1.arenareplay")).unwrap());
    assert!(joins.contains(&(bo_in_replay.0, "(erased)".to_string())), "{joins:?}");
    assert!(!joins.iter().any(|(_, n)| n == "headless-1"), "{joins:?}");
    assert!(joins.contains(&(ann_in_replay.0, "headless-2".to_string())), "ann is untouched: {joins:?}");
    assert_eq!(chat, ["(erased)"], "bo's chat line");
    assert_eq!(rewritten.records.len(), recording.records.len());
    let report = server::replay::verify(&rewritten).expect("the rewritten replay verifies");
    let hashes = recording.records.iter().filter(|r| r.hash.is_some()).count() as u32;
    assert!(hashes > 100 && report.hashes_checked == hashes, "{} of {hashes} hashes checked", report.hashes_checked);
    assert_eq!(report.tail, server::replay::TailStatus::Clean);
    let leftovers: Vec<_> = std::fs::read_dir(&replays).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "no temporary file left: {leftovers:?}");
    let (status, _) = public(format!("/api/players/{bo}")).await;
    assert_eq!(status, 404, "erased");
    let (_, round) = public(format!("/api/rounds/{:032x}", 1)).await;
    assert_eq!(
        (round["players"][1]["name"].as_str(), round["players"][1]["player"].is_null()),
        (Some("(erased)"), true),
        "{round}"
    );

    // Ann's line kept no entity id: her replay entry is found by her name.
    let (status, body) = api(&server, "DELETE", &format!("/api/admin/players/{ann}"), None).await;
    assert_eq!((status, &body["replays"]["rewritten"]), (200, &serde_json::json!(1)), "{body}");
    let (joins, _, _) = names_in(&std::fs::read(replays.join("ABCD-r1.arenareplay")).unwrap());
    assert!(joins.contains(&(ann_in_replay.0, "(erased)".to_string())), "{joins:?}");
    assert!(!joins.iter().any(|(_, n)| n == "headless-1" || n == "headless-2"), "{joins:?}");

    let (_, audit) = api(&server, "GET", "/api/admin/audit", None).await;
    let actions: Vec<&str> = audit.as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    for action in ["end_season", "rated_ban", "rated_unban", "erase_player"] {
        assert!(actions.contains(&action), "{action} not audited: {actions:?}");
    }
    assert!(audit.as_array().unwrap().iter().any(|e| e["target"].as_str().unwrap().contains("not an id")), "{audit}");
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
