//! Draining like a service: the first signal stops new rooms and joins, turns `/readyz` to 503
//! and tells every player how long is left while their match plays on; the server ends when the
//! rooms are empty or the drain time is up (then every connection closes with 1001), or at once
//! on a second signal. The real binary does the same on SIGTERM and tells systemd (READY,
//! STOPPING) through `$NOTIFY_SOCKET`.

mod common;

use std::io::{Read, Write};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{TestClient, hello, read_until_closed};
use server::ServerConfig;
use server::room::RoomStats;
use server::room::registry::Registry;
use shared::protocol::DisconnectReason;
use tokio::sync::oneshot;

/// `GET path` over plain HTTP/1.0: (status, body).
fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text.split("\r\n\r\n").nth(1).unwrap_or_default().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_lets_the_match_finish_refuses_newcomers_and_ends_when_the_rooms_are_empty() {
    let config = ServerConfig { drain: Duration::from_secs(30), ..ServerConfig::default() };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let rooms = Registry::new(Arc::new(config.clone()), Arc::new(RoomStats::default()));
    let (drain_tx, drain_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(server::run_with_drain_and_registry(
        listener,
        Some(rooms.clone()),
        config,
        async move {
            let _ = drain_rx.await;
        },
        std::future::pending(),
    ));
    let url = format!("ws://{addr}/ws");
    let deadline = Instant::now() + Duration::from_secs(5);
    while get(addr, "/readyz").0 != 200 {
        assert!(Instant::now() < deadline, "ready within 5 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut player = TestClient::join_url(&url, "stayer").await;
    player.next_snapshot().await;

    drain_tx.send(()).unwrap();
    let told = player.until(Duration::from_secs(5), |c| c.notices().iter().any(|n| n.contains("restarting in"))).await;
    assert!(told, "the player is told the server restarts: {:?}", player.notices());
    let (ready, body) = get(addr, "/readyz");
    assert_eq!((ready, body.trim()), (503, "draining"));
    assert_eq!(get(addr, "/livez").0, 200, "alive while draining");
    // Nobody new: a quick play is refused with a reason, and no room can be created.
    let refused = TestClient::join_with(&url, hello("late")).await.err().expect("refused while draining");
    assert_eq!(refused.reason, Some(DisconnectReason::ServerClosing), "{refused:?}");
    let (status, _) = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        write!(stream, "POST /api/rooms HTTP/1.0\r\nHost: localhost\r\nContent-Length: 2\r\n\r\n{{}}").unwrap();
        let mut text = String::new();
        let _ = stream.read_to_string(&mut text);
        (text.split_whitespace().nth(1).and_then(|s| s.parse::<u16>().ok()).unwrap_or(0), text)
    })
    .await
    .unwrap();
    assert_eq!(status, 503);
    // The match plays on: snapshots keep coming.
    let before = player.snapshots;
    assert!(player.until(Duration::from_secs(2), |c| c.snapshots >= before + 20).await, "still playing");
    // The last player leaves: the server is done at once, not after 30 s.
    let left = Instant::now();
    player.ws.close(None).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("ends once the rooms are empty")
        .unwrap()
        .unwrap();
    eprintln!("drained {:?} after the last player left", left.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_that_runs_out_closes_everyone_with_a_reason() {
    let config = ServerConfig { drain: Duration::from_secs(1), ..ServerConfig::default() };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (drain_tx, drain_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(server::run_with_drain(
        listener,
        config,
        async move {
            let _ = drain_rx.await;
        },
        std::future::pending(),
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut player = TestClient::join_url(&format!("ws://{addr}/ws"), "stayer").await;
    player.next_snapshot().await;
    let started = Instant::now();
    drain_tx.send(()).unwrap();
    let ending = read_until_closed(&mut player.ws).await;
    assert_eq!(ending.reason, Some(DisconnectReason::ServerClosing));
    assert_eq!(ending.close.map(|c| c.0), Some(1001));
    assert!(started.elapsed() >= Duration::from_millis(900), "the match got its drain time: {:?}", started.elapsed());
    tokio::time::timeout(Duration::from_secs(5), server).await.expect("ends").unwrap().unwrap();
}

/// Starts the real binary with `args` and a fake systemd notify socket; returns it, its port and
/// the socket.
fn start_binary(args: &[&str], label: &str) -> (std::process::Child, u16, std::os::unix::net::UnixDatagram) {
    let socket_path =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("notify-{label}-{}", std::process::id()));
    let _ = std::fs::remove_file(&socket_path);
    let notify = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    notify.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut args_with_bind = vec!["--bind", "127.0.0.1:0", "--no-replay"];
    args_with_bind.extend_from_slice(args);
    let (child, port) = common::spawn_binary(&args_with_bind, &[("NOTIFY_SOCKET", socket_path.to_str().unwrap())]);
    (child, port, notify)
}

fn notification(socket: &std::os::unix::net::UnixDatagram, want: &str) -> String {
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let Ok(n) = socket.recv(&mut buf) else { break };
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        if text.contains(want) {
            return text;
        }
    }
    panic!("no {want} notification");
}

fn wait_exit(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "server exits within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_drains_on_sigterm_tells_systemd_and_stops_at_once_on_a_second() {
    let (mut child, port, notify) = start_binary(&["--drain-seconds", "30"], "twice");
    let ready = notification(&notify, "READY=1");
    assert!(ready.contains("STATUS=serving"), "{ready}");
    let mut player = TestClient::join_url(&format!("ws://127.0.0.1:{port}/ws"), "stayer").await;
    player.next_snapshot().await;
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let stopping = notification(&notify, "STOPPING=1");
    assert!(stopping.contains("EXTEND_TIMEOUT_USEC="), "the drain asks systemd for time: {stopping}");
    assert!(player.until(Duration::from_secs(5), |c| c.notices().iter().any(|n| n.contains("restarting in"))).await);
    // A second SIGTERM: no 30 s wait.
    let second = Instant::now();
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let ending = read_until_closed(&mut player.ws).await;
    assert_eq!(ending.reason, Some(DisconnectReason::ServerClosing));
    assert_eq!(ending.close.map(|c| c.0), Some(1001));
    let status = wait_exit(&mut child, Duration::from_secs(8));
    assert!(status.success(), "clean exit: {status}");
    eprintln!("stopped {:?} after the second signal", second.elapsed());
}
