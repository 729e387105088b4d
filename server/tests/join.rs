//! Joining, moving, seeing each other and leaving, over real WebSockets.

mod common;

use std::time::Duration;

use common::{TestClient, TestServer, duel_map};
use glam::Vec2;
use server::ServerConfig;
use shared::protocol::{DisconnectReason, GameEvent};

#[tokio::test]
async fn join_gets_a_welcome_and_snapshots() {
    let server = TestServer::start_default().await;
    let mut client = TestClient::join(&server, "  alice\n").await;
    assert_eq!(client.welcome.tick_rate, 60);
    assert_eq!(client.welcome.snapshot_rate, 30);
    assert_eq!(client.welcome.map_id, "arena");
    assert!(client.welcome.roster.iter().any(|entry| entry.id == client.id() && entry.name == "alice"));
    let first = client.next_snapshot().await;
    assert_eq!(first.baseline, None, "the first snapshot is full");
    let own = first.own.expect("own state");
    assert!(own.alive);
    assert!(client.player_pos(client.id()).is_some(), "own player is in view");
    // With acks flowing, later snapshots are deltas.
    assert!(client.until(Duration::from_secs(3), |c| c.last.as_ref().is_some_and(|s| s.baseline.is_some())).await);
    server.stop().await;
}

#[tokio::test]
async fn input_moves_the_player_right_in_later_snapshots() {
    let server = TestServer::start(ServerConfig { map: duel_map(), ..ServerConfig::default() }).await;
    let mut client = TestClient::join(&server, "mover").await;
    client.next_snapshot().await;
    let start = client.player_pos(client.id()).expect("in view");
    for _ in 0..30 {
        client.input(Vec2::X, 0.0, false).await;
        client.next_snapshot().await;
    }
    let end = client.player_pos(client.id()).expect("in view");
    assert!(end.x > start.x + 100.0, "moved right: {start} -> {end}");
    assert!((end.y - start.y).abs() < 1.0, "no vertical drift: {start} -> {end}");
    let last = client.last.as_ref().unwrap();
    assert!(last.input_ack > 0, "inputs are acked");
    server.stop().await;
}

#[tokio::test]
async fn two_clients_see_each_other_and_leaving_removes_the_entity() {
    let server = TestServer::start(ServerConfig { map: duel_map(), ..ServerConfig::default() }).await;
    let mut a = TestClient::join(&server, "a").await;
    let mut b = TestClient::join(&server, "b").await;
    let (a_id, b_id) = (a.id(), b.id());
    assert!(a.until(Duration::from_secs(3), |c| c.player_pos(b_id).is_some()).await, "a sees b");
    assert!(b.until(Duration::from_secs(3), |c| c.player_pos(a_id).is_some()).await, "b sees a");
    assert!(
        a.until(Duration::from_secs(3), |c| c
            .events
            .iter()
            .any(|e| matches!(e, GameEvent::Joined { id, .. } if *id == b_id)))
            .await
    );
    b.ws.close(None).await.unwrap();
    assert!(a.until(Duration::from_secs(3), |c| c.player_pos(b_id).is_none()).await, "b's entity is removed");
    assert!(a.events.contains(&GameEvent::Left { id: b_id, reason: DisconnectReason::ClientLeft }));
    server.stop().await;
}

#[tokio::test]
async fn a_full_server_refuses_with_a_reason() {
    // One room of one player: quick play finds no space and cannot open another room.
    let config = ServerConfig { max_players: 1, max_rooms: 1, map: duel_map(), ..ServerConfig::default() };
    let server = TestServer::start(config).await;
    let _first = TestClient::join(&server, "first").await;
    let mut ws = common::connect_raw(&server).await;
    use futures_util::SinkExt;
    ws.send(common::hello("second")).await.unwrap();
    let ending = common::read_until_closed(&mut ws).await;
    assert_eq!(ending.reason, Some(DisconnectReason::ServerFull { max: 1 }));
    assert_eq!(ending.close.as_ref().map(|c| c.0), Some(4002));
    server.stop().await;
}
