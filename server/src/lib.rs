//! Arena's dedicated server as a library, so tests and benchmarks can run it in-process.
//!
//! [`run`] serves one room on a listener until its shutdown future completes: HTTP and
//! WebSocket on one port ([`net`]), one task that owns the world and ticks it ([`sim`]), and
//! per-client delta snapshots ([`snapshot`]). [`bots`] is the headless WebSocket client behind
//! `arena-server bots`.

pub mod bots;
pub mod config;
pub mod metrics;
pub mod net;
pub mod replay;
pub mod sim;
pub mod snapshot;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

pub use config::ServerConfig;
use net::connection::NetContext;
use sim::sim_loop::{self, INBOX_CAPACITY, RoomStats};

/// Kernel send buffer per connection, bytes (a couple of seconds of snapshots for a busy view).
const SOCKET_SEND_BUFFER: usize = 128 * 1024;

/// How long shutdown waits for connections to deliver their Close frames.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Serves one room on `listener` until `shutdown` completes, then closes every connection with
/// a reason and returns.
///
/// Shutdown order: stop accepting; stop the room, which asks every client to close with
/// `ServerClosing`; wait (bounded) for the connection tasks to send their Close frames.
pub async fn run(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    run_with_stats(listener, config, shutdown, Arc::new(RoomStats::default())).await
}

/// [`run`], publishing the room's figures into `stats` (for tests, `/metrics` and benchmarks).
pub async fn run_with_stats(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send,
    stats: Arc<RoomStats>,
) -> std::io::Result<()> {
    serve(listener, config, shutdown, stats, RoomSource::Live).await
}

/// Serves a recorded match to spectators (the browser client shows playback controls) instead
/// of a live room, until `shutdown` completes.
pub async fn run_replay(
    listener: TcpListener,
    config: ServerConfig,
    replay: replay::format::ReplayFile,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    serve(listener, config, shutdown, Arc::new(RoomStats::default()), RoomSource::Replay(Arc::new(replay))).await
}

/// What the room task plays.
enum RoomSource {
    Live,
    Replay(Arc<replay::format::ReplayFile>),
}

async fn serve(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send,
    stats: Arc<RoomStats>,
    source: RoomSource,
) -> std::io::Result<()> {
    config.validate().map_err(|message| std::io::Error::new(std::io::ErrorKind::InvalidInput, message))?;
    let config = Arc::new(config);
    let local_addr = listener.local_addr()?;
    let stop_accepting = CancellationToken::new();
    let stop_room = CancellationToken::new();
    let tracker = TaskTracker::new();
    let (to_sim, inbox) = mpsc::channel(INBOX_CAPACITY);
    let room = match source {
        RoomSource::Live => tokio::spawn(sim_loop::run(config.clone(), inbox, stats.clone(), stop_room.clone())),
        RoomSource::Replay(file) => {
            tokio::spawn(replay::theater::run(file, config.clone(), inbox, stats.clone(), stop_room.clone()))
        }
    };
    let ctx = Arc::new(NetContext::new(config.clone(), to_sim, stats, stop_accepting.clone(), tracker.clone()));
    let app = net::http::router(ctx).into_make_service_with_connect_info::<SocketAddr>();
    let graceful = stop_accepting.clone();
    // Snapshots and inputs are small, latency-sensitive writes: disable Nagle's algorithm. A
    // fixed, modest send buffer bounds the memory and the staleness a slow client can cause:
    // once it is full the outbox fills, snapshots are skipped, and the client is dropped.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
        let _ = socket2::SockRef::from(&*tcp).set_send_buffer_size(SOCKET_SEND_BUFFER);
    });
    let http = tokio::spawn(async move {
        axum::serve(listener, app).with_graceful_shutdown(async move { graceful.cancelled().await }).await
    });
    info!(
        addr = %local_addr,
        tick_hz = config.tick_hz,
        snapshot_hz = config.snapshot_hz,
        max_players = config.max_players,
        bots = config.bots,
        map = %config.map.id,
        client = if net::assets::has_client() { "embedded" } else { "placeholder (run `cargo xtask build-web`)" },
        "arena server listening"
    );

    shutdown.await;
    info!("shutting down");
    stop_accepting.cancel();
    stop_room.cancel();
    if let Err(error) = room.await {
        warn!(%error, "room task ended abnormally");
    }
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait()).await.is_err() {
        warn!("some connections did not close in time");
    }
    // Idle keep-alive HTTP connections may hold the listener open; do not wait on them long.
    match tokio::time::timeout(Duration::from_secs(1), http).await {
        Ok(Ok(Err(error))) => warn!(%error, "http server error"),
        Ok(Err(error)) => warn!(%error, "http task ended abnormally"),
        _ => {}
    }
    info!("stopped");
    Ok(())
}
