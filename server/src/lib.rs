//! Arena's dedicated server as a library, so tests and benchmarks can run it in-process.
//!
//! [`run`] serves on a listener until its shutdown future completes: HTTP and WebSocket on one
//! port ([`net`]), the room registry and one task per room, each owning its world and ticking it
//! ([`room`], [`sim`]), and per-client delta snapshots ([`snapshot`]). [`bots`] is the headless
//! WebSocket client behind `arena-server bots`.

pub mod admin;
#[cfg(feature = "agones")]
pub mod agones;
pub mod auth;
pub mod bots;
pub mod config;
pub mod fleet;
#[doc(hidden)]
pub mod fuzzing;
pub mod lan;
pub mod maps;
pub mod metrics;
pub mod net;
pub mod rate;
pub mod replay;
pub mod room;
pub mod sim;
pub mod snapshot;
pub mod stats;
pub mod store;
pub mod systemd;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

pub use config::ServerConfig;
use net::context::NetContext;
use room::registry::Registry;
use stats::RoomStats;

/// Kernel send buffer per connection, bytes (a couple of seconds of snapshots for a busy view).
const SOCKET_SEND_BUFFER: usize = 128 * 1024;

/// How long shutdown waits for every room to stop (close its clients, flush its replay).
const ROOMS_STOP_LIMIT: Duration = Duration::from_secs(10);

/// How long shutdown waits for connections to deliver their Close frames.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Serves the rooms on `listener` until `shutdown` completes, then closes every connection with
/// a reason and returns. A no-flags configuration opens the public room "Main".
///
/// Shutdown order: stop accepting; stop every room, each asking its clients to close with
/// `ServerClosing`; wait (bounded) for the connection tasks to send their Close frames.
pub async fn run(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    run_with_stats(listener, config, shutdown, Arc::new(RoomStats::default())).await
}

/// [`run`], publishing the figures of "Main" into `stats` (for tests and benchmarks).
pub async fn run_with_stats(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send,
    stats: Arc<RoomStats>,
) -> std::io::Result<()> {
    config.validate().map_err(|message| std::io::Error::new(std::io::ErrorKind::InvalidInput, message))?;
    let config = Arc::new(config);
    let rooms = Registry::new(config.clone(), stats);
    if config.main_room {
        rooms.open_main();
    }
    serve(listener, config, rooms, shutdown, None, None).await
}

/// [`run`] for a real host: when `drain` completes (the first SIGTERM) the server drains: no new
/// rooms or joins, `/readyz` answers 503, every room tells its players how long is left and plays
/// on until it is empty or `config.drain` passes; then, or when `stop` completes (a second
/// signal), every connection is closed with a reason and the function returns.
pub async fn run_with_drain(
    listener: TcpListener,
    config: ServerConfig,
    drain: impl Future<Output = ()> + Send + 'static,
    stop: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    run_with_drain_and_registry(listener, None, config, drain, stop).await
}

/// [`run_with_drain`] with a registry the caller made (tests look at its rooms).
pub async fn run_with_drain_and_registry(
    listener: TcpListener,
    rooms: Option<Arc<Registry>>,
    config: ServerConfig,
    drain: impl Future<Output = ()> + Send + 'static,
    stop: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    config.validate().map_err(|message| std::io::Error::new(std::io::ErrorKind::InvalidInput, message))?;
    let rooms = rooms.unwrap_or_else(|| Registry::new(Arc::new(config), Arc::new(RoomStats::default())));
    let config = rooms.config().clone();
    if config.main_room && rooms.main_code().is_none() {
        rooms.open_main();
    }
    serve(listener, config, rooms, stop, None, Some(Box::pin(drain))).await
}

/// [`run`] with a registry the caller made (and keeps, to look at or act on rooms in tests).
pub async fn run_with_registry(
    listener: TcpListener,
    rooms: Arc<Registry>,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let config = rooms.config().clone();
    config.validate().map_err(|message| std::io::Error::new(std::io::ErrorKind::InvalidInput, message))?;
    if config.main_room && rooms.main_code().is_none() {
        rooms.open_main();
    }
    serve(listener, config, rooms, shutdown, None, None).await
}

/// Serves a recorded match to spectators (the browser client shows playback controls): the
/// server's only room, which quick play and the lobby lead to, until `shutdown` completes.
pub async fn run_replay(
    listener: TcpListener,
    config: ServerConfig,
    replay: replay::format::ReplayFile,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    config.validate().map_err(|message| std::io::Error::new(std::io::ErrorKind::InvalidInput, message))?;
    // No other rooms can be created next to the recording.
    let config = Arc::new(ServerConfig { max_rooms: 1, main_room: false, ..config });
    let stats = Arc::new(RoomStats::default());
    let rooms = Registry::new(config.clone(), stats.clone());
    let (handle, inbox) = rooms.register_external("Replay", &replay.header.map.id);
    let stop_theater = CancellationToken::new();
    let theater_room =
        room::theater::run(Arc::new(replay), config.clone(), inbox, stats, stop_theater.clone(), handle.public.clone());
    let registry = rooms.clone();
    let code = handle.public.code;
    // However the replay room ends (it could not play the file, or it failed), it is unlisted.
    let theater = tokio::spawn(async move {
        let outcome = tokio::spawn(theater_room).await;
        registry.remove(code);
        outcome
    });
    let result = serve(listener, config, rooms, shutdown, Some(stop_theater), None).await;
    if let Ok(Err(error)) = theater.await {
        warn!(%error, "replay room ended abnormally");
    }
    result
}

async fn serve(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    rooms: Arc<Registry>,
    shutdown: impl Future<Output = ()> + Send,
    extra_room: Option<CancellationToken>,
    drain: Option<std::pin::Pin<Box<dyn Future<Output = ()> + Send>>>,
) -> std::io::Result<()> {
    let local_addr = listener.local_addr()?;
    // `{port}` in the public URL (and the one reported to a fleet lobby) is the bound port, so a
    // server on port 0 can say where it is.
    let config = if config.public_url.as_deref().is_some_and(|u| u.contains("{port}"))
        || config.lobby.as_ref().is_some_and(|l| l.public_url.contains("{port}"))
    {
        let port = local_addr.port().to_string();
        let mut rendered = (*config).clone();
        rendered.public_url = rendered.public_url.map(|url| url.replace("{port}", &port));
        if let Some(link) = rendered.lobby.as_mut() {
            link.public_url = link.public_url.replace("{port}", &port);
        }
        Arc::new(rendered)
    } else {
        config
    };
    let admin = Arc::new(
        admin::Admin::new(&config.admin)
            .map_err(|message| std::io::Error::new(std::io::ErrorKind::InvalidInput, message))?,
    );
    // Bound before anything starts, so a bad --metrics-bind stops the server cleanly.
    let metrics_listener = match config.metrics_bind {
        Some(addr) => Some(TcpListener::bind(addr).await?),
        None => None,
    };
    let stop_accepting = CancellationToken::new();
    let tracker = TaskTracker::new();
    // Loaded before anything starts, so a bad certificate stops the server with the reason.
    let tls = match &config.tls {
        Some(files) => Some(
            net::tls::Reloading::new(files.clone())
                .map_err(|message| std::io::Error::new(std::io::ErrorKind::InvalidInput, message))?,
        ),
        None => None,
    };
    let lan = lan::Lan::start(
        local_addr,
        config.lan,
        &config.mdns_name,
        &config.server_name,
        config.public_url.as_deref(),
        tls.is_some(),
    );
    let stop_lan = CancellationToken::new();
    let lan_task = tokio::spawn(lan.clone().run(rooms.clone(), stop_lan.clone()));
    let ctx = Arc::new(NetContext::new(
        config.clone(),
        rooms.clone(),
        stop_accepting.clone(),
        tracker.clone(),
        admin.clone(),
    ));
    // The layers above `net` add their routes here: `net` knows neither of them.
    let operator = Arc::new(admin::AdminState { net: ctx.clone(), admin });
    let shells = admin::api::routes(operator.clone())
        .merge(admin::players::routes().with_state(operator))
        .merge(lan::routes(lan.clone()))
        .merge(net::boards::routes());
    let base = config.base_path();
    let routes = tower::ServiceBuilder::new()
        .map_request(move |request| net::http::strip_base_path(&base, request))
        .service(net::http::router(ctx.clone(), shells));
    let graceful = stop_accepting.clone();
    // Snapshots and inputs are small, latency-sensitive writes: disable Nagle's algorithm. A
    // fixed, modest send buffer bounds the memory and the staleness a slow client can cause:
    // once it is full the outbox fills, snapshots are skipped, and the client is dropped.
    let tune = |tcp: &tokio::net::TcpStream| {
        let _ = tcp.set_nodelay(true);
        let _ = socket2::SockRef::from(tcp).set_send_buffer_size(SOCKET_SEND_BUFFER);
    };
    // Connections that are not WebSockets yet, per address and in all: the game port and
    // `--metrics-bind` share one count.
    let gate = net::listen::Gate::new(config.http.clone(), config.trusted_proxies.clone());
    let http = match &tls {
        Some(certificate) => {
            tokio::spawn(certificate.clone().watch(stop_accepting.clone()));
            let tls_config = net::tls::server_config(certificate.clone());
            tokio::spawn(net::listen::serve_tls(listener, tls_config, routes, tune, gate.clone(), graceful))
        }
        None => tokio::spawn(net::listen::serve_plain(listener, routes, tune, gate.clone(), graceful)),
    };
    // `/metrics` on its own address when the host asked for one (`--metrics-bind`).
    let metrics_http = match metrics_listener {
        Some(metrics_listener) => {
            info!(addr = %metrics_listener.local_addr()?, "metrics served here only");
            let app = net::http::metrics_router(ctx.clone());
            Some(tokio::spawn(net::listen::serve_plain(metrics_listener, app, |_| {}, gate, stop_accepting.clone())))
        }
        None => None,
    };
    info!(
        addr = %local_addr,
        tls = tls.is_some(),
        tick_hz = config.tick_hz,
        snapshot_hz = config.snapshot_hz,
        max_players = config.max_players,
        max_rooms = config.max_rooms,
        bots = config.bots,
        map = %config.map.id,
        main = %rooms.main_code().map_or_else(|| "-".to_string(), |c| c.to_string()),
        net_sim = %config.net_sim.map_or_else(|| "off".to_string(), |sim| sim.to_string()),
        client = if net::assets::has_client() { "embedded" } else { "placeholder (run `cargo xtask build-web`)" },
        "arena server listening"
    );

    if let Some(sim) = config.net_sim {
        warn!(%sim, "--net-sim is on: every connection is delayed on purpose (testing only)");
    }
    ctx.ready.store(true, std::sync::atomic::Ordering::Relaxed);
    systemd::ready(&format!("serving on {local_addr}"));
    // The fleet lobby hears of this server's rooms every 2 s until it stops.
    let stop_reports = CancellationToken::new();
    let reports = config
        .lobby
        .clone()
        .map(|link| tokio::spawn(fleet::report::run(rooms.clone(), link, config.max_rooms, stop_reports.clone())));
    // Agones: Ready once listening, then health and counts until the drain is over.
    #[cfg(feature = "agones")]
    let stop_agones = CancellationToken::new();
    #[cfg(feature = "agones")]
    let agones_task = config.agones.then(|| {
        let players = config.max_players;
        let task = agones::run(rooms.clone(), agones::Options::new(config.max_rooms, players), stop_agones.clone());
        tokio::spawn(async move {
            let outcome = task.await;
            if let Err(error) = &outcome {
                // Said at once: a GameServer that never gets Ready is not given players.
                tracing::error!(%error, "Agones: this server is not Ready and gets no players from allocations");
            }
            outcome
        })
    });
    let watchdog = tokio::spawn(systemd::watchdog(rooms.clone()));
    let mut shutdown = std::pin::pin!(shutdown);
    // The drain starts on the host's signal (when the caller passed one) or the operator's request.
    let drain_request = ctx.drain_request.clone();
    let drain = async move {
        match drain {
            Some(signal) => tokio::select! {
                _ = signal => {}
                _ = drain_request.cancelled() => {}
            },
            None => drain_request.cancelled().await,
        }
    };
    {
        tokio::select! {
            _ = &mut shutdown => {}
            _ = drain => {
                let seconds = config.drain.as_secs();
                rooms.start_drain(seconds);
                ctx.ready.store(false, std::sync::atomic::Ordering::Relaxed);
                systemd::stopping(config.drain + SHUTDOWN_GRACE + Duration::from_secs(2));
                warn!(drain_s = seconds, "draining: no new rooms or joins; matches run until their rooms empty (signal again to stop now)");
                let deadline = tokio::time::Instant::now() + config.drain;
                loop {
                    tokio::select! {
                        _ = &mut shutdown => break,
                        _ = tokio::time::sleep_until(deadline) => {
                            info!("drain time is up");
                            break;
                        }
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {
                            if rooms.room_count() == 0 {
                                info!("every room finished: drained");
                                break;
                            }
                        }
                    }
                }
            }
        }
    }
    watchdog.abort();
    if let Some(reports) = reports {
        stop_reports.cancel();
        let _ = reports.await;
    }
    ctx.ready.store(false, std::sync::atomic::Ordering::Relaxed);
    info!("shutting down");
    stop_accepting.cancel();
    // Say goodbye on the LAN first, so other servers' lobbies drop this one at once.
    stop_lan.cancel();
    let _ = lan_task.await;
    let _ = tokio::task::spawn_blocking(move || lan.shutdown()).await;
    if let Some(extra) = extra_room {
        extra.cancel();
    }
    // Bounded: a wedged room must not keep the process from exiting.
    if tokio::time::timeout(ROOMS_STOP_LIMIT, rooms.shutdown()).await.is_err() {
        warn!("some rooms did not stop in time");
    }
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait()).await.is_err() {
        warn!("some connections did not close in time");
    }
    #[cfg(feature = "agones")]
    if let Some(task) = agones_task {
        stop_agones.cancel();
        match task.await {
            Ok(Ok(sdk)) => agones::shutdown(sdk).await,
            Ok(Err(_)) => {} // Logged when it happened.
            Err(error) => warn!(%error, "the Agones task failed"),
        }
    }
    if let Some(task) = metrics_http {
        let abort = task.abort_handle();
        if tokio::time::timeout(Duration::from_secs(1), task).await.is_err() {
            abort.abort();
        }
    }
    // Idle keep-alive HTTP connections may hold the listener open; do not wait on them long.
    let abort_http = http.abort_handle();
    match tokio::time::timeout(Duration::from_secs(1), http).await {
        Ok(Ok(Err(error))) => warn!(%error, "http server error"),
        Ok(Err(error)) => warn!(%error, "http task ended abnormally"),
        Err(_) => abort_http.abort(),
        _ => {}
    }
    info!("stopped");
    Ok(())
}
