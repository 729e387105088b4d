//! A client that stops reading never slows the room: its snapshots are skipped, and after the
//! configured time it is disconnected with `TooSlow`.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{TestClient, TestServer, hello, read_until_closed};
use futures_util::SinkExt;
use server::ServerConfig;
use shared::protocol::DisconnectReason;

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_as_too_slow() {
    let config = ServerConfig {
        bots: 150,
        interest: false, // Every snapshot carries the whole room, so buffers fill fast.
        slow_client_timeout: Duration::from_secs(1),
        ..ServerConfig::default()
    };
    let server = TestServer::start(config).await;
    let mut observer = TestClient::join(&server, "observer").await;

    // A socket with a tiny receive buffer that never reads after the hello.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(server.addr).await.unwrap();
    let (mut slow, _) =
        tokio_tungstenite::client_async(server.url(), tokio_tungstenite::MaybeTlsStream::Plain(stream)).await.unwrap();
    slow.send(hello("sloth")).await.unwrap();

    // The observer keeps getting every snapshot on time while the slow client stalls.
    let started = tokio::time::Instant::now();
    let mut kicked = false;
    let mut observed = 0u32;
    while started.elapsed() < Duration::from_secs(20) {
        observer.next_snapshot().await;
        observed += 1;
        let tick = observer.latest_tick();
        observer.send(&shared::protocol::ClientMsg::Ack { tick }).await;
        if server.stats.snapshots_skipped.load(Ordering::Relaxed) > 30 {
            kicked = true;
            break;
        }
    }
    assert!(kicked, "the slow client's snapshots were skipped");
    let rate = f64::from(observed) / started.elapsed().as_secs_f64();
    assert!(rate > 20.0, "the observer kept receiving about 30 snapshots/s meanwhile, got {rate:.1}");
    // Start reading now: after the buffered snapshots comes the goodbye.
    let ending = read_until_closed(&mut slow).await;
    assert_eq!(ending.reason, Some(DisconnectReason::TooSlow));
    assert_eq!(ending.close.map(|c| c.0), Some(4007));
    for _ in 0..10 {
        observer.next_snapshot().await;
    }
    server.stop().await;
}
