//! Arena as an Agones GameServer, against the in-repo fake SDK sidecar (Agones' own sidecar
//! cannot run here): the real binary started with `--agones` marks itself Ready, health-pings,
//! keeps the `rooms` and `players` Counters and the `rooms` List equal to its live rooms as they
//! open, fill, empty and close, and tells Shutdown after the drain SIGTERM starts. A room with
//! players that stops ticking stops the health pings. Built with `--features agones` (`cargo
//! xtask test` does).
#![cfg(feature = "agones")]

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use server::agones::fake::{FakeSdk, FakeState};
use server::room::RoomStats;
use server::room::registry::Registry;

/// Starts the fake sidecar on 127.0.0.1:0; returns it, its port and its stop switch.
async fn fake_sidecar(name: &str) -> (FakeSdk, u16, tokio::sync::oneshot::Sender<()>) {
    let fake = FakeSdk::new(name, &["rooms", "players"], &["rooms"]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(fake.clone().serve(listener, async move {
        let _ = stopped.await;
    }));
    (fake, port, stop)
}

/// Polls the fake until `done` holds (15 s); fails with the last state seen.
async fn wait_for(fake: &FakeSdk, what: &str, done: impl Fn(&FakeState) -> bool) -> FakeState {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let state = fake.snapshot();
        if done(&state) {
            return state;
        }
        assert!(Instant::now() < deadline, "{what}: not within 15 s; the sidecar holds {state:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn count(state: &FakeState, counter: &str) -> i64 {
    state.counters.get(counter).map_or(-1, |c| c.count)
}

fn codes(state: &FakeState) -> Vec<String> {
    let mut codes = state.lists.get("rooms").map(|l| l.values.clone()).unwrap_or_default();
    codes.sort();
    codes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_reports_ready_health_rooms_and_players_and_shuts_down_after_the_drain() {
    let (fake, port, _stop) = fake_sidecar("arena-abc12").await;
    let sdk_port = port.to_string();
    let (mut child, game_port) = common::spawn_binary(
        &[
            "--bind",
            "127.0.0.1:0",
            "--agones",
            "--no-replay",
            "--max-rooms",
            "8",
            "--room-idle-seconds",
            "1",
            "--drain-seconds",
            "5",
        ],
        &[("AGONES_SDK_GRPC_PORT", &sdk_port), ("RUST_LOG", "info")],
    );
    let addr: std::net::SocketAddr = format!("127.0.0.1:{game_port}").parse().unwrap();
    let main = {
        let (_, _, body) = common::http_to(addr, "GET", "/api/rooms", None, &[]).await;
        let rooms: serde_json::Value = serde_json::from_str(&body).unwrap();
        rooms[0]["code"].as_str().unwrap().to_string()
    };

    let state = wait_for(&fake, "Ready with Main counted and listed", |s| {
        s.state == "Ready" && count(s, "rooms") == 1 && codes(s) == [main.clone()]
    })
    .await;
    assert_eq!(state.ready_calls, 1);
    assert_eq!(state.counters["rooms"].capacity, 8, "the rooms Counter's capacity is --max-rooms");
    assert_eq!(state.lists["rooms"].capacity, 8);
    let pings = state.health_pings;
    wait_for(&fake, "health pings", |s| s.health_pings >= pings + 2).await;

    // A new room: counted and listed; a player: counted; both gone again when they end.
    let (status, _, body) = common::http_to(addr, "POST", "/api/rooms", Some("{}"), &[]).await;
    assert_eq!(status, 201, "{body}");
    let created: serde_json::Value = serde_json::from_str(&body).unwrap();
    let code = created["code"].as_str().unwrap().to_string();
    // A player in it keeps it open (an empty room closes after --room-idle-seconds).
    let join = common::hello_to("ana", shared::room::RoomRequest::Join { code: code.clone() }, None, 0, None);
    let player = common::TestClient::join_with(&format!("ws://{addr}/ws"), join).await.expect("joins the new room");
    let mut both = vec![main.clone(), code.clone()];
    both.sort();
    wait_for(&fake, "the new room and its player counted, the room listed", |s| {
        count(s, "rooms") == 2 && count(s, "players") == 1 && codes(s) == both
    })
    .await;
    // The player leaves (a goodbye: a dropped connection would hold the seat for the grace).
    let mut player = player;
    player.ws.close(None).await.unwrap();
    wait_for(&fake, "the player gone", |s| count(s, "players") == 0).await;
    // Empty, the new room closes after --room-idle-seconds.
    wait_for(&fake, "the idle room gone from the Counter and the List", |s| {
        count(s, "rooms") == 1 && codes(s) == [main.clone()]
    })
    .await;

    // SIGTERM: the drain (nobody is playing, so it ends at once), then Shutdown.
    let killed = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    wait_for(&fake, "Shutdown after the drain", |s| s.shutdown_calls == 1 && s.state == "Shutdown").await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the server did not exit after the drain");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_with_players_that_stops_ticking_stops_the_health_pings() {
    let (fake, port, _stop) = fake_sidecar("arena-wedge").await;
    let config = Arc::new(server::ServerConfig::default());
    let rooms = Registry::new(config, Arc::new(RoomStats::default()));
    let main = rooms.open_main();
    let stop = tokio_util::sync::CancellationToken::new();
    let options = server::agones::Options {
        port: Some(port),
        back_to_ready_after: Duration::from_secs(1),
        ..server::agones::Options::new(4, 8)
    };
    let task = tokio::spawn(server::agones::run(rooms.clone(), options, stop.clone()));
    let state = wait_for(&fake, "Ready and pinging", |s| s.state == "Ready" && s.health_pings >= 2).await;
    assert_eq!(count(&state, "rooms"), 1);
    // Main "has a player" and its tick loop has not run for a minute: a wedged room. (An empty
    // room does not tick, so nothing overwrites these figures.)
    main.public.stats.clients.store(1, Ordering::Relaxed);
    main.public.stats.last_tick_unix_ms.store(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64 - 60_000,
        Ordering::Relaxed,
    );
    // Let any ping already on its way arrive, then watch for 5 s (two and a half report periods).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = fake.snapshot().health_pings;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = fake.snapshot().health_pings;
    assert_eq!(after, before, "health pings went on while a room was wedged");
    // Ticking again: the pings resume.
    main.public.stats.clients.store(0, Ordering::Relaxed);
    wait_for(&fake, "pings resumed", |s| s.health_pings > after).await;
    // Allocated (by a lobby's allocation) but nobody came: back to Ready after a while, so the
    // Fleet can scale it down.
    fake.set_state("Allocated");
    let state = wait_for(&fake, "back to Ready", |s| s.state == "Ready").await;
    assert_eq!(state.ready_calls, 2);
    // Draining: no free room slot left for allocations.
    rooms.start_drain(30);
    // (Main, empty, closes at once while draining: nothing is left open.)
    wait_for(&fake, "no free room slot while draining", |s| {
        s.counters["rooms"].capacity == s.counters["rooms"].count && s.counters["rooms"].capacity < 4
    })
    .await;
    stop.cancel();
    let sdk = task.await.unwrap().expect("the SDK connected");
    server::agones::shutdown(sdk).await;
    assert_eq!(fake.snapshot().shutdown_calls, 1);
}
