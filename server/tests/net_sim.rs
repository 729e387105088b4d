//! The link conditioner (`--net-sim`) end to end: a real server delays both directions of a real
//! WebSocket connection, stalls it periodically, and still ends it with its reason.

mod common;

use std::time::Duration;

use common::{TestClient, TestServer};
use futures_util::StreamExt;
use server::ServerConfig;
use server::net::netsim::NetSim;
use shared::protocol::{self, ClientMsg, ServerMsg};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// Sends a ping and waits for its pong; returns the round trip.
async fn ping(client: &mut TestClient) -> Duration {
    let sent = Instant::now();
    client.send(&ClientMsg::Ping { client_time: 1.0 }).await;
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), client.ws.next()).await.expect("pong in 5 s");
        let bytes = match frame {
            Some(Ok(Message::Binary(bytes))) => bytes,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("connection ended: {other:?}"),
        };
        if let Ok(ServerMsg::Pong { .. }) = protocol::decode_server(&bytes) {
            return sent.elapsed();
        }
    }
}

#[tokio::test]
async fn latency_is_added_both_ways_and_stalls_hold_then_burst() {
    let sim: NetSim = "latency=60ms".parse().unwrap();
    let server = TestServer::start(ServerConfig { net_sim: Some(sim), ..ServerConfig::default() }).await;
    let mut client = TestClient::join(&server, "far").await;
    client.next_snapshot().await;
    let mut rtts: Vec<Duration> = Vec::new();
    for _ in 0..5 {
        rtts.push(ping(&mut client).await);
    }
    rtts.sort();
    // 60 ms each way: at least 120 ms, and (loopback) not much more.
    assert!(rtts[0] >= Duration::from_millis(118), "round trips {rtts:?}");
    assert!(rtts[2] < Duration::from_millis(400), "round trips {rtts:?}");
    server.stop().await;

    let sim: NetSim = "latency=5ms,stall=400ms/1s".parse().unwrap();
    let server = TestServer::start(ServerConfig { net_sim: Some(sim), ..ServerConfig::default() }).await;
    let mut client = TestClient::join(&server, "wifi").await;
    client.next_snapshot().await;
    // Over 2.5 s of 30 Hz snapshots, a stall shows as a gap of about 400 ms, then a burst.
    let started = Instant::now();
    let (mut last, mut largest, mut count) = (Instant::now(), Duration::ZERO, 0);
    while started.elapsed() < Duration::from_millis(2500) {
        client.next_snapshot().await;
        largest = largest.max(last.elapsed());
        last = Instant::now();
        count += 1;
    }
    assert!(largest >= Duration::from_millis(300), "largest gap {largest:?} over {count} snapshots");
    assert!(count >= 50, "the burst after each stall delivers what was held: {count} snapshots");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_bots_condition_their_own_link() {
    let server = TestServer::start(ServerConfig::default()).await;
    let config = server::bots::BotsConfig {
        url: server.url(),
        count: 3,
        seconds: 2.0,
        net_sim: Some("latency=40ms,jitter=5ms".parse().unwrap()),
        ..server::bots::BotsConfig::default()
    };
    let report = server::bots::run(config).await;
    assert!(report.is_clean(), "{report:?}");
    // 40 ms each way on the bots' side only: round trips of at least 80 ms.
    assert!(report.rtt_ms_p50 >= 75.0 && report.rtt_ms_p50 < 300.0, "{report:?}");
    server.stop().await;
}
