//! Plain-TCP players are read and written by their room's task, outside tokio's reactor
//! (`net::polled`): what a connection task did must still happen there.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{TestClient, TestServer};
use futures_util::{SinkExt, StreamExt};
use shared::protocol::{self, ClientMsg, DisconnectReason, ServerMsg};
use tokio_tungstenite::tungstenite::Message;

/// Waits (up to 5 s) until `done` holds for the server's Main stats, printing what it saw.
async fn until_stats(server: &TestServer, what: &str, done: impl Fn(&TestServer) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !done(server) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: polled sockets {}, clients {}",
            server.stats.polled_sockets.load(Ordering::Relaxed),
            server.stats.clients.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_joined_socket_is_polled_by_its_room_and_still_answers_pings_and_says_goodbye() {
    let server = TestServer::start_default().await;
    let mut alice = TestClient::join(&server, "alice").await;
    until_stats(&server, "alice's socket attached to Main", |s| s.stats.polled_sockets.load(Ordering::Relaxed) == 1)
        .await;
    let (_, _, metrics) = common::http(&server, "GET", "/metrics", None).await;
    assert!(metrics.lines().any(|l| l == "arena_polled_sockets 1"), "{metrics}");

    // The game's ping is answered with the room's tick; a WebSocket ping with a pong.
    alice.send(&ClientMsg::Ping { client_time: 42.5 }).await;
    alice.ws.send(Message::Ping(b"are you there".to_vec().into())).await.unwrap();
    let (mut pong, mut ws_pong) = (None, false);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while pong.is_none() || !ws_pong {
        let frame = tokio::time::timeout_at(deadline, alice.ws.next())
            .await
            .unwrap_or_else(|_| panic!("pong {pong:?}, WebSocket pong {ws_pong} within 5 s"));
        match frame {
            Some(Ok(Message::Binary(bytes))) => {
                if let Ok(ServerMsg::Pong { client_time, server_tick }) = protocol::decode_server(&bytes) {
                    pong = Some((client_time, server_tick));
                }
            }
            Some(Ok(Message::Pong(payload))) => ws_pong = payload.as_ref() == b"are you there",
            Some(Ok(_)) => {}
            other => panic!("connection ended: {other:?}"),
        }
    }
    let (client_time, server_tick) = pong.unwrap();
    assert_eq!(client_time, 42.5);
    assert!(server_tick.0 > 0, "the pong carries the room's tick, got {server_tick:?}");

    // Snapshots keep coming from the room's own writes.
    let before = alice.snapshots;
    for _ in 0..5 {
        alice.next_snapshot().await;
    }
    assert!(alice.snapshots >= before + 5);

    // A text frame is still refused with its reason, by the polled reader.
    alice.ws.send(Message::Text("hello?".into())).await.unwrap();
    let ending = common::read_until_closed(&mut alice.ws).await;
    assert_eq!(ending.reason, Some(DisconnectReason::TextFrame), "{ending:?}");
    assert_eq!(ending.close.as_ref().map(|c| c.0), Some(DisconnectReason::TextFrame.close_code()), "{ending:?}");
    until_stats(&server, "the socket left the room and its slot was given back", |s| {
        s.stats.polled_sockets.load(Ordering::Relaxed) == 0 && s.stats.clients.load(Ordering::Relaxed) == 0
    })
    .await;
    server.stop().await;
}

#[tokio::test]
async fn shutdown_says_goodbye_on_every_polled_socket() {
    let server = TestServer::start_default().await;
    let mut clients = Vec::new();
    for i in 0..5 {
        clients.push(TestClient::join(&server, &format!("p{i}")).await);
    }
    until_stats(&server, "five sockets attached", |s| s.stats.polled_sockets.load(Ordering::Relaxed) == 5).await;
    let stopping = tokio::spawn(server.stop());
    for client in &mut clients {
        let ending = common::read_until_closed(&mut client.ws).await;
        assert_eq!(ending.reason, Some(DisconnectReason::ServerClosing), "{ending:?}");
        assert_eq!(ending.close.as_ref().map(|c| c.0), Some(DisconnectReason::ServerClosing.close_code()));
    }
    stopping.await.unwrap();
}

/// A client that sends more right behind its hello (tungstenite may read it together with the
/// hello, before the socket goes to its room): nothing it sent is lost, and it still gets its
/// goodbye. (Any hand-over of the socket that dropped tungstenite's read-ahead would lose it.)
#[tokio::test]
async fn a_client_that_sends_before_its_welcome_loses_nothing() {
    let server = TestServer::start_default().await;
    let mut ws = common::connect_raw(&server).await;
    ws.feed(common::hello("eager")).await.unwrap();
    ws.feed(Message::Binary(protocol::encode(&ClientMsg::Ping { client_time: 7.25 }).into())).await.unwrap();
    ws.flush().await.unwrap();
    let (mut welcomed, mut pong) = (false, None);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !welcomed || pong.is_none() {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .unwrap_or_else(|_| panic!("welcome {welcomed}, pong {pong:?} within 5 s"));
        match frame {
            Some(Ok(Message::Binary(bytes))) => match protocol::decode_server(&bytes) {
                Ok(ServerMsg::Welcome(_)) => welcomed = true,
                Ok(ServerMsg::Pong { client_time, .. }) => pong = Some(client_time),
                _ => {}
            },
            Some(Ok(_)) => {}
            other => panic!("connection ended: {other:?}"),
        }
    }
    assert_eq!(pong, Some(7.25), "the ping sent behind the hello was answered");
    until_stats(&server, "the socket attached to Main", |s| s.stats.polled_sockets.load(Ordering::Relaxed) == 1).await;
    let stopping = tokio::spawn(server.stop());
    let ending = common::read_until_closed(&mut ws).await;
    assert_eq!(ending.reason, Some(DisconnectReason::ServerClosing), "{ending:?}");
    assert_eq!(ending.close.as_ref().map(|c| c.0), Some(DisconnectReason::ServerClosing.close_code()));
    stopping.await.unwrap();
}

/// A room with 256 or more polled sockets spreads its writes over threads (on a machine with
/// more than one core): every client still gets messages, a client in the last write share is
/// kicked with its reason (read on the room's thread, its goodbye written), clients across the
/// other shares keep getting messages, and every one gets its goodbye.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_room_writes_every_socket_from_several_threads() {
    const PLAYERS: usize = 300;
    // Scenario S1's rules (everyone sees everyone, no combat) on a small empty map, at a low
    // rate: a debug build keeps up with 300 players.
    let config = server::config::ServerConfig {
        map: Arc::new(shared::map::MapDef::open("big", 1000.0, 0)),
        tick_hz: 20,
        snapshot_hz: 10,
        max_players: PLAYERS as u16,
        max_connections_per_ip: 1_000,
        joins_per_minute_per_ip: 1_000,
        ..server::config::ServerConfig::s1()
    };
    let server = TestServer::start(config).await;
    // Each client is read by a task of its own from its join on (a client left unread for
    // long would be dropped as too slow): it counts binary frames and returns the reason it
    // was given when the server ends it.
    let mut sinks = Vec::new();
    let mut frames = Vec::new();
    let mut endings = Vec::new();
    for i in 0..PLAYERS {
        let client = TestClient::join(&server, &format!("p{i}")).await;
        let (sink, mut stream) = client.ws.split();
        let count = Arc::new(AtomicUsize::new(0));
        let counter = count.clone();
        endings.push(tokio::spawn(async move {
            let mut reason = None;
            while let Some(Ok(frame)) = stream.next().await {
                if let Message::Binary(bytes) = frame {
                    counter.fetch_add(1, Ordering::Relaxed);
                    if let Ok(ServerMsg::Disconnect(why)) = protocol::decode_server(&bytes) {
                        reason = Some(why);
                    }
                }
            }
            reason
        }));
        sinks.push(sink);
        frames.push(count);
    }
    until_stats(&server, "every socket attached to Main", |s| {
        s.stats.polled_sockets.load(Ordering::Relaxed) as usize == PLAYERS
    })
    .await;
    // Every client gets snapshots from its share's writer.
    let until_each_gets_more = |who: Vec<usize>, what: &'static str| {
        let frames = frames.clone();
        async move {
            let before: Vec<usize> = who.iter().map(|&i| frames[i].load(Ordering::Relaxed)).collect();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            loop {
                let behind: Vec<usize> = who
                    .iter()
                    .zip(&before)
                    .filter(|&(&i, &b)| frames[i].load(Ordering::Relaxed) < b + 3)
                    .map(|(&i, _)| i)
                    .collect();
                if behind.is_empty() {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{what}: clients without 3 more messages in 5 s: {behind:?}"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    until_each_gets_more((0..PLAYERS).collect(), "every client").await;

    // The last client (the last share) is still read, and kicked with its reason.
    sinks[PLAYERS - 1].send(Message::Text("hello?".into())).await.unwrap();
    let reason = tokio::time::timeout(Duration::from_secs(5), endings.pop().unwrap()).await;
    assert_eq!(reason.expect("closed within 5 s").unwrap(), Some(DisconnectReason::TextFrame));
    until_stats(&server, "the kicked socket left the room", |s| {
        s.stats.polled_sockets.load(Ordering::Relaxed) as usize == PLAYERS - 1
    })
    .await;
    until_each_gets_more(vec![0, PLAYERS / 2, PLAYERS - 2], "after the kick").await;

    server.stop().await;
    for (i, ending) in endings.into_iter().enumerate() {
        let reason = tokio::time::timeout(Duration::from_secs(5), ending).await;
        assert_eq!(reason.expect("closed within 5 s").unwrap(), Some(DisconnectReason::ServerClosing), "client {i}");
    }
}
