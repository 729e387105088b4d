//! Graceful shutdown: every client gets `ServerClosing` and a 1001 Close frame, both when the
//! library's shutdown future fires and when the real binary receives SIGTERM (after its drain:
//! one second here; `drain.rs` covers the drain itself).

mod common;

use std::process::Command;
use std::time::Duration;

use common::{TestClient, TestServer, read_until_closed};
use shared::protocol::DisconnectReason;

#[tokio::test]
async fn shutdown_closes_every_client_with_a_reason() {
    let server = TestServer::start_default().await;
    let mut a = TestClient::join(&server, "a").await;
    let mut b = TestClient::join(&server, "b").await;
    a.next_snapshot().await;
    b.next_snapshot().await;
    let readers = [a, b].map(|mut client| tokio::spawn(async move { read_until_closed(&mut client.ws).await }));
    server.stop().await;
    for reader in readers {
        let ending = reader.await.unwrap();
        assert_eq!(ending.reason, Some(DisconnectReason::ServerClosing));
        assert_eq!(ending.close.map(|c| c.0), Some(1001));
    }
}

#[tokio::test]
async fn the_binary_shuts_down_cleanly_on_sigterm() {
    let (mut child, port) =
        common::spawn_binary(&["--bind", "127.0.0.1:0", "--bots", "4", "--no-replay", "--drain-seconds", "1"], &[]);
    let url = format!("ws://127.0.0.1:{port}/ws");
    let mut client = TestClient::join_url(&url, "watcher").await;
    client.next_snapshot().await;
    assert!(client.welcome.roster.iter().filter(|r| r.bot).count() == 4, "--bots 4 adds four bots");

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let ending = read_until_closed(&mut client.ws).await;
    assert_eq!(ending.reason, Some(DisconnectReason::ServerClosing));
    assert_eq!(ending.close.map(|c| c.0), Some(1001));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(std::time::Instant::now() < deadline, "server exits within 10 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "clean exit status: {exit}");
}
