//! Hostile and broken clients: each gets a clear close reason, and only its own connection
//! ends; a well-behaved client in the same room keeps receiving snapshots throughout.

mod common;

use std::time::Duration;

use common::{Ending, TestClient, TestServer, Ws, connect_raw, duel_map, hello, read_until_closed};
use futures_util::SinkExt;
use server::ServerConfig;
use shared::protocol::{self, ClientMsg, DisconnectReason, GameEvent, InputCmd, PROTOCOL_VERSION};
use shared::tick::Tick;
use tokio_tungstenite::tungstenite::Message;

fn config() -> ServerConfig {
    ServerConfig { map: duel_map(), handshake_timeout: Duration::from_millis(500), ..ServerConfig::default() }
}

async fn joined(server: &TestServer) -> Ws {
    let mut ws = connect_raw(server).await;
    ws.send(hello("troublemaker")).await.unwrap();
    ws
}

fn input(move_x: f32, move_y: f32, aim: f32) -> Message {
    let cmd = InputCmd { seq: 1, ack: Tick::ZERO, move_x, move_y, aim, fire: false, view: None };
    Message::Binary(protocol::encode(&ClientMsg::Input(cmd)).into())
}

/// Runs `misbehave` on a fresh connection and checks how it ended and that `observer` still
/// receives snapshots afterwards.
async fn check(
    server: &TestServer,
    observer: &mut TestClient,
    expected: DisconnectReason,
    misbehave: impl AsyncFnOnce(&mut Ws),
) {
    let before = observer.snapshots;
    let mut ws = connect_raw(server).await;
    misbehave(&mut ws).await;
    let Ending { reason, close } = read_until_closed(&mut ws).await;
    assert_eq!(reason.as_ref(), Some(&expected), "ServerMsg::Disconnect reason");
    let (code, text) = close.expect("a Close frame");
    assert_eq!(code, expected.close_code(), "close code for {expected:?}");
    assert_eq!(text, expected.to_string(), "close reason text");
    for _ in 0..5 {
        observer.next_snapshot().await;
    }
    assert!(observer.snapshots >= before + 5, "the observer keeps receiving snapshots");
}

#[tokio::test]
async fn every_violation_closes_only_that_connection_with_its_reason() {
    let server = TestServer::start(config()).await;
    let mut observer = TestClient::join(&server, "observer").await;
    observer.next_snapshot().await;

    let wrong_version = ClientMsg::Hello {
        protocol: PROTOCOL_VERSION + 1,
        name: "old".into(),
        resume: None,
        room: shared::room::RoomRequest::QuickPlay,
        host_key: None,
        client_id: 0,
        auth: None,
        guest: None,
    };
    check(
        &server,
        &mut observer,
        DisconnectReason::ProtocolMismatch { server: PROTOCOL_VERSION, client: PROTOCOL_VERSION + 1 },
        async |ws| {
            ws.send(Message::Binary(protocol::encode(&wrong_version).into())).await.unwrap();
        },
    )
    .await;

    // A future client whose hello has a different layout still learns it is a version problem.
    check(
        &server,
        &mut observer,
        DisconnectReason::ProtocolMismatch { server: PROTOCOL_VERSION, client: 77 },
        async |ws| {
            ws.send(Message::Binary(vec![0, 77, 0xff, 0xff, 0xff].into())).await.unwrap();
        },
    )
    .await;

    check(&server, &mut observer, DisconnectReason::Malformed, async |ws| {
        ws.send(Message::Binary(vec![0xde, 0xad, 0xbe, 0xef, 0x01].into())).await.unwrap();
    })
    .await;

    check(&server, &mut observer, DisconnectReason::Malformed, async |ws| {
        ws.send(hello("x")).await.unwrap();
        ws.send(Message::Binary(vec![9, 9, 9].into())).await.unwrap();
    })
    .await;

    check(&server, &mut observer, DisconnectReason::TextFrame, async |ws| {
        ws.send(Message::Text("{\"hello\": 1}".into())).await.unwrap();
    })
    .await;

    check(&server, &mut observer, DisconnectReason::TextFrame, async |ws| {
        ws.send(hello("x")).await.unwrap();
        ws.send(Message::Text("chat?".into())).await.unwrap();
    })
    .await;

    check(
        &server,
        &mut observer,
        DisconnectReason::TooLarge { limit: protocol::MAX_CLIENT_MSG_BYTES as u32 },
        async |ws| {
            ws.send(hello("x")).await.unwrap();
            ws.send(Message::Binary(vec![0u8; 64 * 1024].into())).await.unwrap();
        },
    )
    .await;

    check(&server, &mut observer, DisconnectReason::InvalidInput, async |ws| {
        ws.send(hello("x")).await.unwrap();
        ws.send(input(f32::NAN, 0.0, 0.0)).await.unwrap();
    })
    .await;

    check(&server, &mut observer, DisconnectReason::InvalidInput, async |ws| {
        ws.send(hello("x")).await.unwrap();
        ws.send(input(0.0, 0.0, f32::INFINITY)).await.unwrap();
    })
    .await;

    check(&server, &mut observer, DisconnectReason::InvalidInput, async |ws| {
        ws.send(hello("x")).await.unwrap();
        ws.send(input(7.0, 0.0, 0.0)).await.unwrap();
    })
    .await;

    check(&server, &mut observer, DisconnectReason::RateLimited, async |ws| {
        ws.send(hello("x")).await.unwrap();
        let ack = Message::Binary(protocol::encode(&ClientMsg::Ack { tick: Tick(1) }).into());
        for _ in 0..1000 {
            if ws.feed(ack.clone()).await.is_err() {
                break;
            }
        }
        let _ = ws.flush().await;
    })
    .await;

    check(&server, &mut observer, DisconnectReason::HandshakeTimeout, async |_ws| {}).await;

    check(&server, &mut observer, DisconnectReason::Malformed, async |ws| {
        ws.send(hello("x")).await.unwrap();
        ws.send(hello("again")).await.unwrap();
    })
    .await;

    assert_eq!(observer.welcome.roster.len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn an_abrupt_disconnect_holds_the_seat_then_removes_the_player() {
    // The seat is held for the grace period (one second here; `tests/reconnect.rs` resumes it).
    let server = TestServer::start(ServerConfig { resume_grace: Duration::from_secs(1), ..config() }).await;
    let mut observer = TestClient::join(&server, "observer").await;
    let ws = joined(&server).await;
    // Wait until the observer sees the newcomer, then cut its TCP connection without a Close.
    assert!(
        observer
            .until(Duration::from_secs(3), |c| c
                .events
                .iter()
                .any(|e| matches!(e, GameEvent::Joined { name, .. } if name == "troublemaker")))
            .await
    );
    let id = observer
        .events
        .iter()
        .find_map(|e| match e {
            GameEvent::Joined { id, name, .. } if name == "troublemaker" => Some(*id),
            _ => None,
        })
        .unwrap();
    // Linger 0 makes the drop send a TCP reset: no Close frame, no FIN handshake.
    if let tokio_tungstenite::MaybeTlsStream::Plain(tcp) = ws.get_ref() {
        socket2::SockRef::from(tcp).set_linger(Some(Duration::ZERO)).unwrap();
    }
    drop(ws);
    assert!(
        observer
            .until(Duration::from_secs(5), |c| c.events.iter().any(
                |e| matches!(e, GameEvent::Left { id: left, reason: DisconnectReason::ConnectionLost } if *left == id)
            ))
            .await,
        "the dropped player leaves the room as lost once the grace ends: {:?}",
        observer.events
    );
    server.stop().await;
}

#[tokio::test]
async fn a_connection_flood_is_refused_with_503_and_players_keep_playing() {
    let config = ServerConfig {
        map: duel_map(),
        max_players: 4,
        max_connections: 260,
        handshake_timeout: Duration::from_secs(30),
        ..ServerConfig::default()
    };
    let server = TestServer::start(config).await;
    let mut observer = TestClient::join(&server, "observer").await;
    // The observer holds one slot; fill the rest with connections that never say hello.
    let limit = 260;
    let mut idle = Vec::new();
    for _ in 1..limit {
        idle.push(connect_raw(&server).await);
    }
    let refused = tokio_tungstenite::connect_async(server.url()).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 503),
        other => panic!("expected HTTP 503, got {:?}", other.map(|(_, response)| response.status())),
    }
    for _ in 0..5 {
        observer.next_snapshot().await;
    }
    // Freeing slots lets new players in again.
    drop(idle.drain(..10).collect::<Vec<_>>());
    let mut late = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Ok((ws, _)) = tokio_tungstenite::connect_async(server.url()).await {
            late = Some(ws);
            break;
        }
    }
    assert!(late.is_some(), "a slot frees up once connections close");
    server.stop().await;
}
