//! The input pipeline over a real WebSocket: a burst (what TCP delivers after a stall) is
//! applied in full and in order, two inputs per tick, and every snapshot reports how many of
//! the client's inputs are still waiting (the client paces itself by it).

mod common;

use std::time::Duration;

use common::{TestClient, TestServer, duel_map};
use glam::Vec2;
use server::ServerConfig;

#[tokio::test]
async fn a_burst_is_applied_in_order_and_the_queue_is_reported() {
    let server = TestServer::start(ServerConfig { map: duel_map(), ..ServerConfig::default() }).await;
    let mut client = TestClient::join(&server, "burst").await;
    client.next_snapshot().await;
    for _ in 0..30 {
        client.input(Vec2::X, 0.0, false).await;
    }
    let mut deepest = 0;
    let mut acks = Vec::new();
    let done = client
        .until(Duration::from_secs(5), |c| {
            let last = c.last.as_ref().expect("a snapshot");
            deepest = deepest.max(last.input_queue);
            acks.push(last.input_ack);
            last.input_ack == 30 && last.input_queue == 0
        })
        .await;
    assert!(done, "acks seen {acks:?}");
    assert!(deepest >= 3, "the burst waited in the queue: deepest report {deepest}, acks {acks:?}");
    // In order, never skipping ahead more than the catch-up allows (2 inputs per tick, 2 ticks
    // per snapshot).
    for pair in acks.windows(2) {
        assert!(pair[1] >= pair[0] && pair[1] - pair[0] <= 4, "acks {acks:?}");
    }
    server.stop().await;
}

/// A Wi-Fi blip is not a flood: a client that sends nothing for 12 s (its network gone, the
/// browser queueing its inputs) and then releases the whole backlog at once (720 inputs) stays
/// connected as the same player, and the newest of those inputs move it. A client that sends far
/// more than its silence paid for is still closed as a flood.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twelve_second_blip_is_not_a_flood_but_a_real_flood_is() {
    use futures_util::{SinkExt, StreamExt};
    use shared::protocol::{ClientMsg, DisconnectReason, InputCmd, ServerMsg};
    let server =
        common::TestServer::start(server::ServerConfig { map: common::duel_map(), ..server::ServerConfig::default() })
            .await;
    let mut blip = common::TestClient::join(&server, "blip").await;
    let id = blip.id();
    // Play for a moment, then the network goes: nothing is sent for 12 s (snapshots are still
    // read, as the kernel would keep taking them).
    for _ in 0..30 {
        blip.input(glam::Vec2::ZERO, 0.0, false).await;
        blip.next_snapshot().await;
    }
    let before = blip.player_pos(id).expect("own player in view");
    let silence = tokio::time::Instant::now() + std::time::Duration::from_secs(12);
    while tokio::time::Instant::now() < silence {
        if let Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Binary(bytes)))) =
            tokio::time::timeout(std::time::Duration::from_millis(100), blip.ws.next()).await
            && let Ok(ServerMsg::Disconnect(reason)) = shared::protocol::decode_server(&bytes)
        {
            panic!("disconnected during the blip: {reason}");
        }
    }
    // The network is back: 12 s of queued inputs (moving down) arrive together.
    let ack = blip.latest_tick();
    for seq in 0..720u32 {
        let cmd = InputCmd { seq: 10_000 + seq, ack, move_x: 0.0, move_y: 1.0, aim: 0.0, fire: false, view: None };
        let message =
            tokio_tungstenite::tungstenite::Message::Binary(shared::protocol::encode(&ClientMsg::Input(cmd)).into());
        blip.ws.feed(message).await.expect("the backlog is sent");
    }
    blip.ws.flush().await.expect("the backlog is flushed");
    // Still the same player, and the backlog's newest inputs moved it down.
    let moved = blip
        .until(std::time::Duration::from_secs(5), |c| c.player_pos(id).is_some_and(|p| p.y > before.y + 20.0))
        .await;
    let after = blip.player_pos(id);
    assert!(moved, "the backlog did not move the player: {before:?} → {after:?}");
    assert_eq!(blip.id(), id, "the same entity");

    // A flood: 5 s of silence pays for about 630 messages, not 5,000.
    let mut flood = common::connect_raw(&server).await;
    flood.send(common::hello("flood")).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    let ack = tokio_tungstenite::tungstenite::Message::Binary(
        shared::protocol::encode(&ClientMsg::Ack { tick: shared::tick::Tick(1) }).into(),
    );
    for _ in 0..5000 {
        if flood.feed(ack.clone()).await.is_err() {
            break;
        }
    }
    let _ = flood.flush().await;
    let ending = common::read_until_closed(&mut flood).await;
    assert_eq!(ending.reason, Some(DisconnectReason::RateLimited), "{ending:?}");
    server.stop().await;
}
