//! Shooting over the network: kills reach the kill feed and the leaderboard, and a resumed
//! player keeps its score.

mod common;

use std::time::Duration;

use common::{TestClient, TestServer, duel_map};
use futures_util::{SinkExt, StreamExt};
use glam::Vec2;
use server::ServerConfig;
use shared::protocol::{self, GameEvent, ServerMsg};
use shared::rules::KILL_SCORE;

#[tokio::test]
async fn kills_update_the_kill_feed_and_leaderboard_and_resume_keeps_the_score() {
    let server = TestServer::start(ServerConfig { map: duel_map(), ..ServerConfig::default() }).await;
    // The first player spawns at (100,150), the second at (300,150): straight along +x.
    let mut shooter = TestClient::join(&server, "shooter").await;
    let mut target = TestClient::join(&server, "target").await;
    let (shooter_id, target_id) = (shooter.id(), target.id());
    shooter.next_snapshot().await;
    let mut killed = false;
    for _ in 0..240 {
        shooter.input(Vec2::ZERO, 0.0, true).await;
        shooter.next_snapshot().await;
        target.next_snapshot().await;
        if shooter.events.contains(&GameEvent::Kill { killer: shooter_id, victim: target_id }) {
            killed = true;
            break;
        }
    }
    assert!(killed, "five hits at point-blank range kill within four seconds");
    assert!(
        shooter
            .until(Duration::from_secs(2), |c| c
                .leaderboard
                .as_ref()
                .is_some_and(|b| b.top.first().is_some_and(|e| e.id == shooter_id && e.score == KILL_SCORE)))
            .await,
        "leaderboard shows the kill: {:?}",
        shooter.leaderboard
    );
    assert!(
        target
            .until(Duration::from_secs(2), |c| c
                .last
                .as_ref()
                .and_then(|s| s.own)
                .is_some_and(|o| !o.alive && o.respawn_tick.is_some()))
            .await
    );
    assert_eq!(shooter.last.as_ref().and_then(|s| s.own).map(|o| o.rank), Some(1));

    // Left with a goodbye, back with the resume token soon after (a reload): a new entity, the
    // same score.
    let token = shooter.welcome.resume_token;
    shooter.ws.close(None).await.unwrap();
    drop(shooter);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut ws = common::connect_raw(&server).await;
    // The token goes with a hello naming its room (quick play ignores tokens).
    let room = shared::room::RoomRequest::Join { code: server.rooms.main_code().unwrap().to_string() };
    ws.send(common::hello_to("shooter", room, None, 0, Some(token))).await.unwrap();
    let mut score = None;
    while score.is_none() {
        let frame = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap().unwrap().unwrap();
        if let Ok(ServerMsg::Snapshot(snapshot)) = protocol::decode_server(&frame.into_data()) {
            score = snapshot.own.map(|own| own.score);
        }
    }
    assert_eq!(score, Some(KILL_SCORE));
    server.stop().await;
}
