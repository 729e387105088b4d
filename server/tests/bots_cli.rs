//! `arena-server bots` against a running server: 20 real WebSocket players play cleanly; and
//! the command fails loudly when it cannot connect.

mod common;

use std::process::Command;

use common::TestServer;
use server::ServerConfig;

#[tokio::test]
async fn twenty_bots_run_clean_against_a_running_server() {
    let server = TestServer::start(ServerConfig { bots: 10, ..ServerConfig::default() }).await;
    let url = server.url();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_arena-server"))
            .env("ARENA_NO_DATABASE", "true")
            .args(["bots", "--url", &url, "--count", "20", "--seconds", "3", "--json"])
            .output()
            .expect("run arena-server bots")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "bots failed: {stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    assert_eq!(report["clients"], 20);
    assert_eq!(report["connected"], 20);
    assert_eq!(report["disconnects"], 0);
    assert_eq!(report["decode_errors"], 0);
    assert_eq!(report["reconstruction_errors"], 0);
    let rate = report["snapshots_per_client_s"].as_f64().unwrap();
    assert!((25.0..=31.0).contains(&rate), "about 30 snapshots/s per client, got {rate}");
    assert!(report["bytes_per_client_s"].as_f64().unwrap() > 0.0);
    let (p50, p99) = (report["rtt_ms_p50"].as_f64().unwrap(), report["rtt_ms_p99"].as_f64().unwrap());
    assert!(p50 > 0.0 && p50 <= p99, "rtt p50 {p50} p99 {p99}");
    server.stop().await;
}

#[test]
fn bots_exit_non_zero_when_they_cannot_connect() {
    // Bind and drop a listener to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let output = Command::new(env!("CARGO_BIN_EXE_arena-server"))
        .env("ARENA_NO_DATABASE", "true")
        .args(["bots", "--url", &format!("ws://127.0.0.1:{port}/ws"), "--count", "3", "--seconds", "1", "--json"])
        .output()
        .expect("run arena-server bots");
    assert!(!output.status.success());
    let report: serde_json::Value = serde_json::from_str(String::from_utf8_lossy(&output.stdout).trim()).unwrap();
    assert_eq!(report["connect_failures"], 3);
    assert_eq!(report["connected"], 0);
}
