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
