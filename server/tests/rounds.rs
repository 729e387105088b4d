//! Rounds end to end over real WebSockets on 127.0.0.1: a room created with 5-second rounds ends
//! its round on time, freezes play, sends every player and spectator the same results (a player
//! who left counted last), and starts the next round after the intermission; a host sets the
//! rules; bad rules are refused.

mod common;

use std::time::Duration;

use common::{TestClient, TestServer, duel_map, guest_hello, hello_to, http};
use glam::Vec2;
use server::ServerConfig;
use shared::protocol::{ClientMsg, RoundEnd};
use shared::room::{CreatedRoom, HostCmd, RoomRequest, RoomSettings, RoundRules};
use shared::tick::Tick;

fn config() -> ServerConfig {
    ServerConfig {
        map: duel_map(),
        intermission: Duration::from_secs(1),
        room_creates_per_minute: 1000,
        ..ServerConfig::default()
    }
}

fn five_seconds() -> RoundRules {
    RoundRules { seconds: 5, score_limit: None }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_round_ends_for_everyone_with_the_same_results_then_the_next_begins() {
    // A 3-second intermission: long enough to see the freeze.
    let server = TestServer::start(ServerConfig { intermission: Duration::from_secs(3), ..config() }).await;
    let settings = RoomSettings { rounds: Some(five_seconds()), ..RoomSettings::default() };
    let mut ana = TestClient::join_room(&server, "ana", RoomRequest::Create(settings)).await;
    let code = ana.welcome.room.code.to_string();
    assert_eq!(ana.welcome.room.rounds, five_seconds());
    assert_eq!(ana.welcome.room.round, 1);
    let hz = u32::from(ana.welcome.tick_rate);
    assert_eq!(ana.welcome.room.round_ends_at, Some(Tick(5 * hz)), "the round's clock, in ticks");
    let join = || RoomRequest::Join { code: code.clone() };
    let mut bo = TestClient::join_room(&server, "bo", join()).await;
    let mut watcher = TestClient::join_room(&server, "", RoomRequest::Watch { code: code.clone() }).await;
    // Cy plays a moment, then leaves with a goodbye: still in the results, last.
    let mut cy = TestClient::join_room(&server, "cy", join()).await;
    cy.next_snapshot().await;
    cy.ws.close(None).await.expect("goodbye");
    drop(cy);

    for client in [&mut ana, &mut bo, &mut watcher] {
        assert!(
            client.until(Duration::from_secs(10), |c| c.round_over.is_some()).await,
            "no round end within 10 s of a 5-second round"
        );
    }
    let over = ana.round_over.clone().unwrap();
    assert_eq!(bo.round_over.as_ref(), Some(&over), "every player sees the same results");
    assert_eq!(watcher.round_over.as_ref().map(|o| &o.placements), Some(&over.placements), "spectators too");
    assert_eq!((over.round, over.why), (1, RoundEnd::TimeUp));
    assert_eq!(over.round_id.len(), 32, "{over:?}");
    let names: Vec<(&str, bool)> = over.placements.iter().map(|p| (p.name.as_str(), p.left)).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert_eq!(names[2], ("cy", true), "the leaver is last: {names:?}");
    assert!(names[..2].contains(&("ana", false)) && names[..2].contains(&("bo", false)), "{names:?}");
    assert!(over.placements.windows(2).all(|w| w[0].place <= w[1].place), "{over:?}");
    assert!(over.next_round_in_ms <= 3000, "{over:?}");

    // Play is frozen: ana's inputs move nobody.
    let ana_id = ana.id();
    let before = bo.player_pos(ana_id).expect("bo sees ana");
    for _ in 0..10 {
        ana.input(Vec2::X, 0.0, true).await;
        bo.next_snapshot().await;
    }
    assert!(bo.round_over.is_some(), "the intermission ended within half a second of its 3");
    assert_eq!(bo.player_pos(ana_id), Some(before), "a frozen round moves nobody");

    // The next round: a new welcome for everyone, the clock from its start.
    let next = bo.next_welcome().await;
    assert_eq!(next.room.round, 2);
    assert_eq!(next.room.round_ends_at, Some(Tick(5 * hz)));
    assert!(bo.round_over.is_none());
    drop(server);
}

#[tokio::test]
async fn the_host_sets_the_rules_and_bad_rules_are_refused() {
    let server = TestServer::start(config()).await;
    let mut host = TestClient::join_room(&server, "host", RoomRequest::Create(RoomSettings::default())).await;
    assert_eq!(host.welcome.room.rounds, RoundRules::default(), "5-minute rounds by default");
    host.send(&ClientMsg::Host(HostCmd::SetRounds { rules: RoundRules { seconds: 60, score_limit: Some(25) } })).await;
    assert!(
        host.until(Duration::from_secs(5), |c| c.notices().iter().any(|n| n.contains("1 minute or first to 25"))).await,
        "notices: {:?}",
        host.notices()
    );
    host.send(&ClientMsg::Host(HostCmd::SetRounds { rules: RoundRules { seconds: 2, score_limit: None } })).await;
    assert!(
        host.until(Duration::from_secs(5), |c| c.notices().iter().any(|n| n.contains("Not changed"))).await,
        "notices: {:?}",
        host.notices()
    );
    // The API refuses out-of-range rules with the reason.
    let body = r#"{"rounds":{"seconds":100000}}"#;
    let (status, _, text) = http(&server, "POST", "/api/rooms", Some(body)).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("rounds.seconds"), "{text}");
    let (status, _, text) = http(&server, "POST", "/api/rooms", Some(r#"{"rounds":{"seconds":0}}"#)).await;
    assert_eq!(status, 201, "endless is a room option: {text}");
    let created: CreatedRoom = serde_json::from_str(&text).unwrap();
    let endless = TestClient::join_with(
        &server.url(),
        hello_to("e", RoomRequest::Join { code: created.code.to_string() }, None, 0, None),
    )
    .await
    .unwrap();
    assert_eq!(endless.welcome.room.round_ends_at, None);
}

/// A round that counts: two guests finish it on a server that stores results (SQLite), the end
/// screen comes once the round is on disk, and the boards, the profiles and the round itself are
/// served; coming back with the same guest secret is the same player.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_round_is_stored_rated_and_served_and_a_guest_stays_the_same_player() {
    use server::store::{db::Store, db::StoreCell, rating::RatingRules, record, writer};
    let dir = std::env::temp_dir().join(format!("arena-rounds-db-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = std::sync::Arc::new(
        Store::open(&format!("sqlite:{}", dir.join("arena.db").display()), RatingRules { min_play: 1 }).await.unwrap(),
    );
    let (sink, queue) = record::ResultsSink::new();
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(writer::run(
        Some(StoreCell::ready(store.clone())),
        queue,
        dir.join("results.spool"),
        std::sync::Arc::new(writer::WriterStats::default()),
        stop.clone(),
    ));
    let server = TestServer::start(ServerConfig {
        results: Some(sink),
        store: Some(StoreCell::ready(store.clone())),
        intermission: Duration::from_secs(3),
        ..config()
    })
    .await;
    let (ann_secret, bo_secret) = ([1u8; 16], [2u8; 16]);
    let settings = RoomSettings { rounds: Some(five_seconds()), ..RoomSettings::default() };
    let mut ann =
        TestClient::join_with(&server.url(), guest_hello("<b>ann</b>", RoomRequest::Create(settings), ann_secret))
            .await
            .unwrap();
    let code = ann.welcome.room.code.to_string();
    let ann_id = record::guest_player_id(&ann_secret);
    assert_eq!(ann.welcome.player.as_deref(), Some(ann_id.as_str()), "the welcome names the player's public id");
    let mut bo =
        TestClient::join_with(&server.url(), guest_hello("bo", RoomRequest::Join { code: code.clone() }, bo_secret))
            .await
            .unwrap();
    let bo_id = record::guest_player_id(&bo_secret);
    for client in [&mut ann, &mut bo] {
        assert!(client.until(Duration::from_secs(12), |c| c.round_over.is_some()).await, "no round end");
    }
    let over = ann.round_over.clone().unwrap();
    let ids: Vec<Option<&str>> = over.placements.iter().map(|p| p.player.as_deref()).collect();
    assert!(ids.contains(&Some(ann_id.as_str())) && ids.contains(&Some(bo_id.as_str())), "{over:?}");
    // On the end screen means on disk; the database has it within moments.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while store.rounds().await.unwrap() < 1 {
        assert!(tokio::time::Instant::now() < deadline, "the round never reached the database");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _, body) = http(&server, "GET", "/api/leaderboard?board=rating&limit=10", None).await;
    assert_eq!(status, 200, "{body}");
    let board: serde_json::Value = serde_json::from_str(&body).unwrap();
    let names: Vec<&str> = board["lines"].as_array().unwrap().iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 2, "{body}");
    assert!(names.contains(&"<b>ann</b>") && names.contains(&"bo"), "{body}");
    let (status, _, body) = http(&server, "GET", &format!("/api/players/{ann_id}"), None).await;
    assert_eq!(status, 200, "{body}");
    let profile: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(profile["rated_rounds"], 1, "{body}");
    assert!(profile["rank"].as_u64().is_some(), "{body}");
    assert_eq!(profile["recent"][0]["round_id"], over.round_id.as_str(), "{body}");
    let (status, _, body) = http(&server, "GET", &format!("/api/rounds/{}", over.round_id), None).await;
    assert_eq!(status, 200, "{body}");
    let round: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(round["players"].as_array().unwrap().len(), 2, "{body}");
    assert_eq!(round["rated"], true, "{body}");
    // Bad input is a 400 that says which; unknown ids a 404.
    for (path, status_wanted, says) in [
        ("/api/leaderboard?limit=-1", 400, "limit"),
        ("/api/leaderboard?limit=100000", 400, "limit"),
        ("/api/leaderboard?around=%27%20OR%201%3D1", 400, "around"),
        ("/api/players/not-an-id", 400, "player id"),
        ("/api/players/00000000000000000000", 404, "no player"),
        ("/api/rounds/ffffffffffffffffffffffffffffffff", 404, "no round"),
    ] {
        let (status, _, body) = http(&server, "GET", path, None).await;
        assert_eq!(status, status_wanted, "{path}: {body}");
        assert!(body.contains(says), "{path}: {body}");
    }
    let (status, head, body) = http(&server, "GET", "/leaderboard", None).await;
    assert_eq!(status, 200);
    assert!(head.contains("text/html") && body.contains("leaderboard.js"), "{head}");
    // The same guest, on a new connection: the same player.
    drop(bo);
    let again =
        TestClient::join_with(&server.url(), guest_hello("bo", RoomRequest::Join { code }, bo_secret)).await.unwrap();
    assert_eq!(again.welcome.player.as_deref(), Some(bo_id.as_str()));
    drop((ann, again, server));
    stop.cancel();
    task.await.unwrap();
}
