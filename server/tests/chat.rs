//! Chat: reaches everyone, sanitized and length-limited.

mod common;

use std::time::Duration;

use common::{TestClient, TestServer, duel_map};
use server::ServerConfig;
use shared::protocol::{GameEvent, MAX_CHAT_BYTES};

fn chats(client: &TestClient) -> Vec<String> {
    client
        .events
        .iter()
        .filter_map(|e| match e {
            GameEvent::Chat { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn chat_reaches_everyone_sanitized() {
    let server = TestServer::start(ServerConfig { map: duel_map(), ..ServerConfig::default() }).await;
    let mut a = TestClient::join(&server, "a").await;
    let mut b = TestClient::join(&server, "b").await;
    let mut c = TestClient::join(&server, "c").await;
    a.next_snapshot().await;
    a.chat("hello\u{7} <b>world</b>\n").await;
    a.chat(&"x".repeat(1000).chars().take(900).collect::<String>()).await;
    a.chat("   ").await;
    for client in [&mut a, &mut b, &mut c] {
        assert!(client.until(Duration::from_secs(3), |c| chats(c).len() >= 2).await, "chat arrives");
        let lines = chats(client);
        assert_eq!(lines[0], "hello <b>world</b>", "control characters stripped, markup left to the client to escape");
        assert_eq!(lines[1].len(), MAX_CHAT_BYTES, "long lines are cut");
        assert_eq!(lines.len(), 2, "empty lines are dropped");
    }
    let from_a = b.events.iter().any(|e| matches!(e, GameEvent::Chat { from, .. } if *from == a.id()));
    assert!(from_a);
    server.stop().await;
}

#[tokio::test]
async fn chat_floods_are_rate_limited() {
    let server = TestServer::start(ServerConfig { map: duel_map(), ..ServerConfig::default() }).await;
    let mut a = TestClient::join(&server, "spammer").await;
    let mut b = TestClient::join(&server, "reader").await;
    for i in 0..30 {
        a.chat(&format!("spam {i}")).await;
    }
    b.until(Duration::from_millis(1500), |_| false).await;
    let received = chats(&b).len();
    assert!((5..=7).contains(&received), "burst of 5 plus about one a second, got {received}");
    server.stop().await;
}
