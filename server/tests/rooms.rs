//! Rooms end to end over real WebSockets and HTTP on 127.0.0.1: codes, quick play, private
//! rooms, host controls, every join refusal with its close code, idle close, max rooms,
//! concurrent creates and joins, panic containment and the API's status codes.

mod common;

use std::time::Duration;

use common::{TestClient, TestServer, duel_map, hello_to, http};
use server::ServerConfig;
use server::room::SimInput;
use shared::protocol::{ClientMsg, DisconnectReason, ServerMsg};
use shared::room::{CreatedRoom, HostCmd, RoomRequest, RoomSettings, RoomSummary, parse_host_key};

fn config() -> ServerConfig {
    ServerConfig { map: duel_map(), room_creates_per_minute: 1000, ..ServerConfig::default() }
}

fn create(name: &str, public: bool) -> RoomRequest {
    RoomRequest::Create(RoomSettings { name: Some(name.to_string()), public: Some(public), ..RoomSettings::default() })
}

fn join(code: &str) -> RoomRequest {
    RoomRequest::Join { code: code.to_string() }
}

/// Tries to join and expects a refusal with `reason` (message and close code).
async fn expect_refused(server: &TestServer, hello: tokio_tungstenite::tungstenite::Message, reason: DisconnectReason) {
    match TestClient::join_with(&server.url(), hello).await {
        Ok(client) => panic!("expected {reason:?}, but joined room {}", client.welcome.room.code),
        Err(ending) => {
            assert_eq!(ending.reason.as_ref(), Some(&reason), "ending: {ending:?}");
            assert_eq!(ending.close.as_ref().map(|c| c.0), Some(reason.close_code()), "ending: {ending:?}");
        }
    }
}

/// Reads messages until a `Room` update satisfying `done` arrives (5 s).
async fn wait_room(client: &mut TestClient, done: impl Fn(&shared::room::RoomInfo) -> bool) {
    use futures_util::StreamExt;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let frame = tokio::time::timeout_at(deadline, client.ws.next()).await.expect("room update within 5 s");
        let bytes = match frame {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Binary(bytes))) => bytes,
            // The server's link pings (every 2 s) are answered by the client library.
            Some(Ok(
                tokio_tungstenite::tungstenite::Message::Ping(_) | tokio_tungstenite::tungstenite::Message::Pong(_),
            )) => {
                continue;
            }
            other => panic!("closed: {other:?}"),
        };
        if let Ok(ServerMsg::Room(info)) = shared::protocol::decode_server(&bytes)
            && done(&info)
        {
            return;
        }
    }
}

async fn wait_welcome(client: &mut TestClient) -> shared::protocol::Welcome {
    client.next_welcome().await
}

#[tokio::test]
async fn a_private_room_is_reached_by_code_and_never_by_quick_play() {
    let server = TestServer::start(config()).await;
    let main = server.rooms.main_code().expect("Main is open").to_string();
    let mut alice = TestClient::join_room(&server, "alice", create("secret club", false)).await;
    let code = alice.welcome.room.code.to_string();
    assert_ne!(code, main);
    assert!(alice.welcome.room.you_are_host && alice.welcome.room.host_key.is_some(), "{:?}", alice.welcome.room);
    assert_eq!(alice.welcome.room.name, "secret club");
    // Codes work from the first second, lower case too.
    let mut bob = TestClient::join_room(&server, "bob", join(&code.to_lowercase())).await;
    assert_eq!(bob.welcome.room.code.to_string(), code);
    assert!(!bob.welcome.room.you_are_host && bob.welcome.room.host_key.is_none(), "{:?}", bob.welcome.room);
    assert_eq!(bob.welcome.room.host, Some(alice.id()));
    let carol = TestClient::join(&server, "carol").await;
    assert_eq!(carol.welcome.room.code.to_string(), main, "quick play goes to Main, not the private room");
    // Alice and Bob see each other, not Carol.
    // (Player ids are per room: count players instead of looking Carol's id up.)
    let (a, b) = (alice.id(), bob.id());
    assert!(bob.until(Duration::from_secs(5), |t| t.player_pos(a).is_some()).await);
    assert!(alice.until(Duration::from_secs(5), |t| t.player_pos(b).is_some()).await);
    let players = |t: &TestClient| {
        t.view().entities.iter().filter(|e| matches!(e.1, shared::snapshot::EntityState::Player(_))).count()
    };
    assert_eq!(players(&alice), 2, "alice sees only her room's two players");
    assert_eq!(carol.welcome.roster.len(), 1, "Main has only carol: {:?}", carol.welcome.roster);
    // The lobby lists Main (public) but not the private room; the API finds it by code.
    let (status, _, body) = http(&server, "GET", "/api/rooms", None).await;
    assert_eq!(status, 200);
    let list: Vec<RoomSummary> = serde_json::from_str(&body).expect("JSON list");
    assert!(list.iter().any(|r| r.code.to_string() == main && r.players == 1), "{body}");
    assert!(!list.iter().any(|r| r.code.to_string() == code), "{body}");
    let (status, _, body) = http(&server, "GET", &format!("/api/rooms/{code}"), None).await;
    assert_eq!(status, 200, "{body}");
    let room: RoomSummary = serde_json::from_str(&body).unwrap();
    assert_eq!((room.players, room.public, room.name.as_str()), (2, false, "secret club"));
    server.stop().await;
}

#[tokio::test]
async fn bad_codes_locked_full_and_kicked_are_refused_with_their_reasons() {
    let server = TestServer::start(config()).await;
    for bad in ["", "AB0D", "ABCDE", "\u{202e}XYZ", "ZZZZ"] {
        // ZZZZ is well formed but (almost surely) not live; the others are not codes at all.
        if bad == "ZZZZ" && server.rooms.find("ZZZZ").is_some() {
            continue;
        }
        expect_refused(&server, hello_to("x", join(bad), None, 0, None), DisconnectReason::NoSuchRoom).await;
        expect_refused(
            &server,
            hello_to("x", RoomRequest::Watch { code: bad.into() }, None, 0, None),
            DisconnectReason::NoSuchRoom,
        )
        .await;
    }
    let settings = RoomSettings { max_players: Some(2), ..RoomSettings::default() };
    let mut host = TestClient::join_room(&server, "host", RoomRequest::Create(settings)).await;
    let code = host.welcome.room.code.to_string();
    let mut guest = TestClient::join_with(&server.url(), hello_to("guest", join(&code), None, 77, None)).await.unwrap();
    expect_refused(&server, hello_to("third", join(&code), None, 0, None), DisconnectReason::RoomFull { max: 2 }).await;

    // The host kicks the guest, who is told so and cannot come back (same browser id).
    host.send(&ClientMsg::Host(HostCmd::Kick { player: guest.id() })).await;
    let ending = common::read_until_closed(&mut guest.ws).await;
    assert_eq!(ending.reason, Some(DisconnectReason::Kicked));
    assert_eq!(ending.close.as_ref().map(|c| c.0), Some(4008));
    assert!(host.until(Duration::from_secs(5), |t| t.notices().iter().any(|n| n == "host kicked guest")).await);
    expect_refused(&server, hello_to("guest", join(&code), None, 77, None), DisconnectReason::Kicked).await;
    let token = guest.welcome.resume_token;
    expect_refused(&server, hello_to("guest2", join(&code), None, 78, Some(token)), DisconnectReason::Kicked).await;

    // Locked: nobody new gets in.
    host.send(&ClientMsg::Host(HostCmd::SetLocked { locked: true })).await;
    wait_room(&mut host, |room| room.locked).await;
    expect_refused(&server, hello_to("late", join(&code), None, 0, None), DisconnectReason::RoomLocked).await;
    host.send(&ClientMsg::Host(HostCmd::SetLocked { locked: false })).await;
    wait_room(&mut host, |room| !room.locked).await;
    let _late = TestClient::join_room(&server, "late", join(&code)).await;
    server.stop().await;
}

#[tokio::test]
async fn non_hosts_and_spectators_are_not_allowed_to_act() {
    let server = TestServer::start(config()).await;
    let host = TestClient::join_room(&server, "host", create("r", true)).await;
    let code = host.welcome.room.code.to_string();
    // A wrong host key is just a player (128 bits cannot be guessed; no hint is given).
    let mut guesser =
        TestClient::join_with(&server.url(), hello_to("guesser", join(&code), Some([0; 16]), 0, None)).await.unwrap();
    assert!(!guesser.welcome.room.you_are_host && guesser.welcome.room.host_key.is_none());
    guesser.send(&ClientMsg::Host(HostCmd::SetLocked { locked: true })).await;
    let ending = common::read_until_closed(&mut guesser.ws).await;
    assert_eq!(ending.reason, Some(DisconnectReason::NotAllowed));
    assert_eq!(ending.close.as_ref().map(|c| c.0), Some(4013));

    let mut watcher = TestClient::join_room(&server, "watcher", RoomRequest::Watch { code: code.clone() }).await;
    assert!(watcher.welcome.spectator);
    let snapshot = watcher.next_snapshot().await;
    assert!(snapshot.own.is_none());
    assert!(
        watcher.until(Duration::from_secs(5), |t| t.player_pos(host.id()).is_some()).await,
        "spectator sees the host"
    );
    watcher.input(glam::Vec2::X, 0.0, false).await;
    let ending = common::read_until_closed(&mut watcher.ws).await;
    assert_eq!(ending.reason, Some(DisconnectReason::NotAllowed));
    server.stop().await;
}

#[tokio::test]
async fn the_host_restarts_changes_map_sets_bots_hands_over_and_a_successor_takes_over() {
    let server = TestServer::start(config()).await;
    let mut host = TestClient::join_room(&server, "host", create("party", true)).await;
    let code = host.welcome.room.code.to_string();
    let mut bob = TestClient::join_room(&server, "bob", join(&code)).await;
    let mut carol = TestClient::join_room(&server, "carol", join(&code)).await;
    assert_eq!(host.welcome.room.maps, ["duel", "arena", "crossfire"]);

    host.send(&ClientMsg::Host(HostCmd::SetBots { bots: 3 })).await;
    wait_room(&mut bob, |room| room.bots == 3).await;
    let (status, _, body) = http(&server, "GET", &format!("/api/rooms/{code}"), None).await;
    assert_eq!(status, 200);
    let summary: RoomSummary = serde_json::from_str(&body).unwrap();
    assert_eq!((summary.bots, summary.players), (3, 3), "{body}");

    host.send(&ClientMsg::Host(HostCmd::SetMap { map: "crossfire".into() })).await;
    let welcome = wait_welcome(&mut bob).await;
    assert_eq!(welcome.map_id, "crossfire");
    assert_eq!(welcome.roster.len(), 6, "3 humans and 3 bots in the new match: {:?}", welcome.roster);
    host.send(&ClientMsg::Host(HostCmd::SetMap { map: "nowhere".into() })).await;
    // A restart right after a map change is refused with a notice (one new match per 2 s).
    host.send(&ClientMsg::Host(HostCmd::Restart)).await;
    assert!(
        host.until(Duration::from_secs(5), |t| t.notices().iter().any(|n| n.contains("wait a moment"))).await,
        "notices: {:?}",
        host.notices()
    );
    assert_eq!(wait_welcome(&mut carol).await.map_id, "crossfire", "carol's first new match: the map change");
    tokio::time::sleep(server::room::NEW_MATCH_COOLDOWN).await;
    host.send(&ClientMsg::Host(HostCmd::Restart)).await;
    let restarted = wait_welcome(&mut carol).await;
    assert_eq!(restarted.map_id, "crossfire", "the restart keeps the map");

    // Handing over: Bob becomes host and gets a fresh key; the old key no longer makes a host.
    let old_key = host.welcome.room.host_key.expect("the host has the key");
    let bob_id = wait_welcome(&mut bob).await.player_id;
    host.send(&ClientMsg::Host(HostCmd::Handover { player: bob_id })).await;
    wait_room(&mut bob, |room| room.you_are_host && room.host_key.is_some_and(|k| k != old_key)).await;
    let sneaky =
        TestClient::join_with(&server.url(), hello_to("sneaky", join(&code), Some(old_key), 0, None)).await.unwrap();
    assert!(!sneaky.welcome.room.you_are_host);
    // A control the old host clicked before hearing of the handover: a notice, not a disconnect.
    host.send(&ClientMsg::Host(HostCmd::SetLocked { locked: true })).await;
    assert!(
        host.until(Duration::from_secs(5), |t| t.notices().iter().any(|n| n == "You are no longer the host")).await,
        "notices: {:?}",
        host.notices()
    );
    // Bob (the host) leaves: the longest-present human, the original host, takes over, but
    // without the key (only a host who joined with it or was handed the role ever gets it).
    bob.ws.close(None).await.unwrap();
    wait_room(&mut host, |room| room.you_are_host && room.host_key.is_none()).await;
    assert!(
        host.until(Duration::from_secs(5), |t| {
            let n = t.notices();
            n.iter().any(|n| n == "host changed the map to Crossfire")
                && n.iter().any(|n| n == "host made bob the host")
                && n.iter().any(|n| n == "host is now the host")
        })
        .await,
        "notices: {:?}",
        host.notices()
    );
    assert!(host.notices().iter().any(|n| n.contains("no map called \"nowhere\"")), "{:?}", host.notices());
    server.stop().await;
}

#[tokio::test]
async fn the_api_creates_lists_and_refuses_with_the_right_status_codes() {
    let server = TestServer::start(ServerConfig {
        map: duel_map(),
        max_rooms: 5,
        room_creates_per_minute: 2,
        ..ServerConfig::default()
    })
    .await;
    let (status, _, body) = http(
        &server,
        "POST",
        "/api/rooms",
        Some(r#"{"name":"<b>api</b>","public":true,"map":"arena","bots":2,"max_players":8}"#),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let created: CreatedRoom = serde_json::from_str(&body).expect("created room JSON");
    assert_eq!((created.room.name.as_str(), created.room.map.as_str(), created.room.bots), ("<b>api</b>", "arena", 2));
    let key = parse_host_key(&created.host_key).expect("hex host key");
    // The key holder is the host when joining.
    let host = TestClient::join_with(&server.url(), hello_to("h", join(created.code.as_str()), Some(key), 0, None))
        .await
        .unwrap();
    assert!(host.welcome.room.you_are_host);
    for (body, what) in [
        ("{not json", "bad JSON"),
        (r#"{"colour":"red"}"#, "an unknown field"),
        (r#"{"map":"nowhere"}"#, "an unknown map"),
        (r#"{"bots":999}"#, "too many bots"),
        (r#"{"max_players":0}"#, "zero players"),
    ] {
        let (status, _, answer) = http(&server, "POST", "/api/rooms", Some(body)).await;
        assert_eq!(status, 400, "{what}: {answer}");
        assert!(answer.contains("invalid room settings"), "{what}: {answer}");
    }
    // Two creates a minute from one address: the second succeeds, the third is 429.
    let (status, _, _) = http(&server, "POST", "/api/rooms", Some("{}")).await;
    assert_eq!(status, 201);
    let (status, head, body) = http(&server, "POST", "/api/rooms", Some("{}")).await;
    assert_eq!(status, 429, "{body}");
    assert!(head.contains("retry-after: 30"), "{head}");
    expect_refused(&server, hello_to("x", create("r", true), None, 0, None), DisconnectReason::CreateRateLimited).await;
    let (status, _, body) = http(&server, "GET", "/api/rooms/QQQQ", None).await;
    assert_eq!(status, if server.rooms.find("QQQQ").is_some() { 200 } else { 404 }, "{body}");
    let (status, _, _) = http(&server, "GET", "/api/rooms/nope!", None).await;
    assert_eq!(status, 404);
    let (status, _, body) = http(&server, "GET", "/api/maps", None).await;
    assert_eq!(status, 200);
    assert!(body.contains("\"crossfire\"") && body.contains("\"The Arena\""), "{body}");
    let (status, _, body) = http(&server, "GET", &format!("/r/{}", created.code), None).await;
    assert_eq!(status, 200);
    assert!(body.contains("<html") || body.contains("<!doctype"), "the invite link serves the page");
    server.stop().await;

    // At --max-rooms: 503 with a reason, and a hello that would create gets TooManyRooms.
    let server = TestServer::start(ServerConfig {
        map: duel_map(),
        max_rooms: 2,
        room_creates_per_minute: 100,
        ..ServerConfig::default()
    })
    .await;
    let (status, _, _) = http(&server, "POST", "/api/rooms", Some("{}")).await;
    assert_eq!(status, 201);
    let (status, _, body) = http(&server, "POST", "/api/rooms", Some("{}")).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("too many rooms"), "{body}");
    expect_refused(&server, hello_to("x", create("r", true), None, 0, None), DisconnectReason::TooManyRooms { max: 2 })
        .await;
    server.stop().await;
}

#[tokio::test]
async fn empty_rooms_close_after_the_idle_time_but_main_stays() {
    let server = TestServer::start(ServerConfig { room_idle: Duration::from_millis(300), ..config() }).await;
    let main = server.rooms.main_code().unwrap().to_string();
    let mut guest = TestClient::join_room(&server, "guest", create("brief", true)).await;
    let code = guest.welcome.room.code.to_string();
    guest.next_snapshot().await;
    guest.ws.close(None).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (status, _, _) = http(&server, "GET", &format!("/api/rooms/{code}"), None).await;
        if status == 404 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "room {code} still answers {status} 5 s after emptying");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    expect_refused(&server, hello_to("x", join(&code), None, 0, None), DisconnectReason::NoSuchRoom).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(server.rooms.find(&main).is_some(), "Main never closes");
    let back = TestClient::join(&server, "back").await;
    assert_eq!(back.welcome.room.code.to_string(), main);
    server.stop().await;
}

#[tokio::test]
async fn joins_racing_an_idle_close_land_or_hear_room_closed_and_never_hang() {
    let server = TestServer::start(ServerConfig { room_idle: Duration::from_millis(20), ..config() }).await;
    let (mut landed, mut closed) = (0, 0);
    for attempt in 0..30u64 {
        let (status, _, body) = http(&server, "POST", "/api/rooms", Some("{}")).await;
        assert_eq!(status, 201, "{body}");
        let created: CreatedRoom = serde_json::from_str(&body).unwrap();
        // Join around the moment the empty room closes.
        tokio::time::sleep(Duration::from_millis(10 + attempt % 20)).await;
        let hello = hello_to("racer", join(created.code.as_str()), None, 0, None);
        let joined = tokio::time::timeout(Duration::from_secs(5), TestClient::join_with(&server.url(), hello))
            .await
            .expect("a join never hangs");
        match joined {
            Ok(mut client) => {
                client.next_snapshot().await; // A live room: it ticks for us.
                landed += 1;
            }
            Err(ending) => {
                let reason = ending.reason.expect("a reason");
                assert!(
                    matches!(reason, DisconnectReason::RoomClosed | DisconnectReason::NoSuchRoom),
                    "unexpected {reason:?}"
                );
                closed += 1;
            }
        }
    }
    eprintln!("{landed} joins landed, {closed} found the room closed");
    server.stop().await;
}

#[tokio::test]
async fn concurrent_creates_get_distinct_codes_and_concurrent_joins_all_land() {
    let server = TestServer::start(ServerConfig { max_rooms: 64, ..config() }).await;
    let creates = (0..40).map(|i| {
        let url = server.url();
        tokio::spawn(async move {
            TestClient::join_with(&url, hello_to(&format!("c{i}"), create(&format!("room {i}"), true), None, 0, None))
                .await
                .map(|c| c.welcome.room.code.to_string())
        })
    });
    let mut codes: Vec<String> = Vec::new();
    for task in creates.collect::<Vec<_>>() {
        codes.push(task.await.unwrap().expect("create succeeds"));
    }
    let mut unique = codes.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), codes.len(), "duplicate codes: {codes:?}");
    // 30 players join one room at once: all land, each with a distinct player.
    let target = codes[0].clone();
    let joins = (0..30).map(|i| {
        let url = server.url();
        let code = target.clone();
        tokio::spawn(async move {
            TestClient::join_with(&url, hello_to(&format!("j{i}"), join(&code), None, 0, None)).await.map(|c| c.id())
        })
    });
    let mut ids = Vec::new();
    for task in joins.collect::<Vec<_>>() {
        ids.push(task.await.unwrap().expect("join lands"));
    }
    ids.sort_by_key(|id| id.0);
    ids.dedup();
    assert_eq!(ids.len(), 30);
    server.stop().await;
}

#[tokio::test]
async fn a_room_that_panics_disconnects_only_its_players_and_is_removed() {
    let server = TestServer::start(config()).await;
    let mut doomed = TestClient::join_room(&server, "doomed", create("doomed", true)).await;
    let doomed_code = doomed.welcome.room.code.to_string();
    let mut fine = TestClient::join_room(&server, "fine", create("fine", true)).await;
    let main = server.rooms.main_code().unwrap().to_string();
    let mut main_player = TestClient::join_room(&server, "main", join(&main)).await;
    doomed.next_snapshot().await;
    let handle = server.rooms.find(&doomed_code).expect("live");
    handle.inbox.send(SimInput::Crash).await.expect("room inbox open");
    let ending = common::read_until_closed(&mut doomed.ws).await;
    assert_eq!(ending.reason, Some(DisconnectReason::RoomClosed), "{ending:?}");
    assert_eq!(ending.close.as_ref().map(|c| c.0), Some(4010));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while server.rooms.find(&doomed_code).is_some() {
        assert!(tokio::time::Instant::now() < deadline, "the failed room is still listed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The other rooms never noticed.
    let before = (fine.snapshots, main_player.snapshots);
    for _ in 0..10 {
        fine.next_snapshot().await;
        main_player.next_snapshot().await;
    }
    assert_eq!((fine.snapshots, main_player.snapshots), (before.0 + 10, before.1 + 10));
    let (status, _, _) = http(&server, "GET", &format!("/api/rooms/{doomed_code}"), None).await;
    assert_eq!(status, 404);
    server.stop().await;
}

#[tokio::test]
async fn each_room_records_its_own_replay_named_with_its_code() {
    let dir = std::env::temp_dir().join(format!("arena-room-replays-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let server = TestServer::start(ServerConfig { replay_dir: Some(dir.clone()), ..config() }).await;
    let mut host = TestClient::join_room(&server, "host", create("rec", true)).await;
    let code = host.welcome.room.code.to_string();
    for _ in 0..5 {
        host.next_snapshot().await;
    }
    host.send(&ClientMsg::Host(HostCmd::Restart)).await;
    wait_welcome(&mut host).await;
    for _ in 0..5 {
        host.next_snapshot().await;
    }
    server.stop().await;
    let mut files: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    files.sort();
    let ours: Vec<&String> = files.iter().filter(|f| f.starts_with(&format!("match-{code}-"))).collect();
    assert_eq!(ours.len(), 2, "one replay per match of room {code}: {files:?}");
    for file in ours {
        let replay = server::replay::format::read(std::fs::File::open(dir.join(file)).unwrap()).expect("readable");
        let outcome = server::replay::verify(&replay);
        assert!(outcome.is_ok(), "{file}: {outcome:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Room creates are limited per address like every other limit: an IPv6 host by its /64, so
/// rotating through its own /64 gets it nothing; the next /64 is another address.
#[tokio::test]
async fn room_creates_are_limited_per_ipv6_64() {
    let server = TestServer::start(ServerConfig {
        trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()],
        room_creates_per_minute: 2,
        ..config()
    })
    .await;
    let create_from = |from: &'static str| {
        let addr = server.addr;
        async move { common::http_to(addr, "POST", "/api/rooms", Some("{}"), &[("X-Forwarded-For", from)]).await }
    };
    for from in ["2001:db8:7:1::1", "2001:db8:7:1::2"] {
        let (status, _, body) = create_from(from).await;
        assert_eq!(status, 201, "{from}: {body}");
    }
    let (status, _, body) = create_from("2001:db8:7:1:ffff::3").await;
    assert_eq!(status, 429, "a third create from the same /64: {body}");
    let (status, _, body) = create_from("2001:db8:7:2::1").await;
    assert_eq!(status, 201, "another /64: {body}");
    server.stop().await;
}

/// The review's finding: a host (anyone who creates a room) toggling the bots between 0 and 32
/// as fast as messages go grew the room's replay (32 joins or leaves each) and everyone's chat
/// without limit. One change per `BOT_CHANGE_COOLDOWN`; the others get a notice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_toggling_bots_changes_them_once_per_cooldown() {
    let server = TestServer::start(config()).await;
    let mut host = TestClient::join_room(&server, "host", create("toggle", false)).await;
    for toggle in 0..40u16 {
        let bots = if toggle % 2 == 0 { 32 } else { 0 };
        host.send(&ClientMsg::Host(HostCmd::SetBots { bots })).await;
    }
    let refused = |t: &TestClient| t.notices().iter().filter(|n| n.contains("wait a moment")).count();
    assert!(
        // The first applied; the 20 asking for 0 refused; the 19 asking for the 32 it has, no-ops.
        host.until(Duration::from_secs(5), |t| refused(t) >= 20).await,
        "20 changes refused with a notice: {:?}",
        host.notices()
    );
    let applied = host.notices().iter().filter(|n| n.contains("set the bots to")).count();
    assert_eq!(applied, 1, "changes applied within one cooldown: {:?}", host.notices());
    // After the cooldown the host may change them again.
    tokio::time::sleep(server::room::BOT_CHANGE_COOLDOWN).await;
    host.send(&ClientMsg::Host(HostCmd::SetBots { bots: 2 })).await;
    wait_room(&mut host, |room| room.bots == 2).await;
    server.stop().await;
}

/// SECURITY.md's spectator cap: a room takes `MAX_SPECTATORS` watchers, and the next one is
/// refused as the room being full (close 4012); its players are not touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_takes_its_spectator_cap_and_refuses_the_next_watcher() {
    let server = TestServer::start(config()).await;
    let mut host = TestClient::join_room(&server, "host", create("watched", true)).await;
    let code = host.welcome.room.code.to_string();
    let mut watchers = Vec::new();
    for i in 0..server::room::MAX_SPECTATORS {
        watchers
            .push(TestClient::join_room(&server, &format!("w{i}"), RoomRequest::Watch { code: code.clone() }).await);
    }
    let max = server::room::MAX_SPECTATORS;
    expect_refused(
        &server,
        hello_to("one-more", RoomRequest::Watch { code: code.clone() }, None, 0, None),
        DisconnectReason::RoomFull { max },
    )
    .await;
    // The host still plays.
    let before = host.snapshots;
    assert!(host.until(Duration::from_secs(5), |t| t.snapshots > before + 2).await, "the host's snapshots stopped");
    drop(watchers);
    server.stop().await;
}
