//! The S1 load generator against a real S1 server on loopback: a short, small run must connect
//! everyone, see ~30 snapshots per second each, keep deltas tiny, and its decode sample must
//! reconstruct every player and orb. Also: it refuses non-loopback targets.

use std::process::Command;
use std::time::Duration;

use server::ServerConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_measures_an_s1_server() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(server::run(listener, ServerConfig::s1(), async move {
        let _ = stopped.await;
    }));
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_loadgen"))
            .args(["--url", &format!("ws://{addr}/ws"), "--clients", "20", "--warmup", "1", "--window", "2", "--json"])
            .args(["--server-pid", &std::process::id().to_string()])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), server).await.unwrap().unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "loadgen failed: {stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(report["clients_present"], 20.0);
    assert_eq!(report["join_failures"], 0);
    assert_eq!(report["disconnects"], 0);
    assert_eq!(report["decode_sample_ok"], true, "{report}");
    let rate = report["messages_per_client_s"].as_f64().unwrap();
    assert!((27.0..=31.0).contains(&rate), "about 30 snapshots/s: {rate}");
    let per_player = report["bytes_per_player_per_patch"].as_f64().unwrap();
    assert!(per_player > 0.0 && per_player <= 7.0, "bytes per moving player per patch: {per_player}");
    assert!(report["server_cpu_cores"].as_f64().is_some());
    assert!(report["tick_ms_p50"].as_f64().is_some(), "server tick histogram read from /metrics");
    assert!(report["input_ack_ms_p50"].as_f64().is_some());
}

#[test]
fn loadgen_only_targets_loopback() {
    let output = Command::new(env!("CARGO_BIN_EXE_loadgen")).args(["--url", "ws://10.1.2.3:8080/ws"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a loopback address"));
}
