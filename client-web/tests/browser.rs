//! Real-browser end-to-end tests: the server runs in-process on 127.0.0.1:0 serving the embedded
//! WASM client, and headless Chromium (Debian's `/usr/bin/chromium`, driven over CDP by
//! chromiumoxide) plays it like a person: types a name, presses keys, chats.
//!
//! Screenshots are written to `target/tmp/e2e-screenshots/`.
#![cfg(not(target_arch = "wasm32"))]

mod browser_support;

use std::sync::Arc;
use std::time::Duration;

use browser_support::{Player, screenshot_dir, start_replay_server, start_server};
use shared::map::MapDef;

/// The browser tests run one at a time: each starts one to four Chromiums, and on two cores
/// several tests' browsers at once starve the servers they test (a shutdown's goodbye then
/// misses its 1 s deadline). Held for a whole test.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// An open 1200×800 map whose two spawn points are 400 units apart, so both players are in each
/// other's view from the start.
fn small_map() -> Arc<MapDef> {
    Arc::new(
        MapDef::from_json(
            r#"{"id":"e2e","name":"e2e","width":1200,"height":800,"walls":[{"x":560,"y":600,"w":80,"h":80}],
                "spawns":[[300,400],[700,400]],"orbs":20}"#,
        )
        .expect("valid map"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_players_see_each_other_move_and_chat() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let server = start_server(small_map(), None).await;
    let mut alice = Player::launch("alice").await;
    let mut bob = Player::launch("bob").await;
    alice.open_and_join(&server.url, "alice").await;
    let alice_state = alice.wait_for("alice connected", |d| d["state"] == "connected" && d["own"].is_object()).await;
    let alice_id = alice_state["player_id"].as_u64().expect("player id");
    bob.open_and_join(&server.url, "bob").await;
    let bob_state = bob
        .wait_for("bob sees alice", |d| {
            d["state"] == "connected" && d["players"].as_array().is_some_and(|p| p.iter().any(|p| p["name"] == "alice"))
        })
        .await;
    let bob_id = bob_state["player_id"].as_u64().unwrap();
    bob.check(alice_id != bob_id, format!("alice and bob got the same player id {alice_id}")).await;
    alice
        .wait_for("alice sees bob", |d| d["players"].as_array().is_some_and(|p| p.iter().any(|p| p["name"] == "bob")))
        .await;

    let x_of = |debug: &serde_json::Value, id: u64| {
        debug["players"]
            .as_array()
            .and_then(|players| players.iter().find(|p| p["id"].as_u64() == Some(id)).and_then(|p| p["x"].as_f64()))
    };
    let before = x_of(&bob.debug().await, alice_id);
    bob.check(before.is_some(), "bob draws alice").await;
    let before = before.unwrap();
    // Alice holds the right arrow for one second.
    alice.key_down("ArrowRight", 39).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    alice.key_up("ArrowRight", 39).await;
    let moved =
        bob.wait_for("bob sees alice move right", |d| x_of(d, alice_id).is_some_and(|x| x > before + 150.0)).await;
    let after = x_of(&moved, alice_id).unwrap();
    eprintln!("bob saw alice move from x={before:.1} to x={after:.1}");
    // Her own view agrees.
    alice
        .wait_for("alice's own state moved right", |d| d["own"]["x"].as_f64().is_some_and(|x| x > before + 150.0))
        .await;

    // Alice chats: Enter opens the chat box, typing, Enter sends.
    alice.key_press("Enter", 13).await;
    alice.type_text("hello from alice <b>not bold</b>").await;
    alice.key_press("Enter", 13).await;
    bob.wait_for("bob receives alice's chat line from alice", |d| {
        d["chat"].as_array().is_some_and(|lines| {
            lines.iter().any(|l| l["text"] == "hello from alice <b>not bold</b>" && l["from"] == "alice")
        })
    })
    .await;
    // Shown in the chat box (the DOM is rewritten in the next animation frame: wait for it),
    // rendered as text, never as HTML.
    bob.wait_for_text("the chat line in #chat-log", "chat-log", |t| t.contains("hello from alice <b>not bold</b>"))
        .await;
    let bold = bob.eval("document.querySelectorAll('#chat-log b').length").await;
    bob.check(bold.as_u64() == Some(0), format!("#chat-log has {bold} <b> elements: chat was rendered as HTML")).await;

    // The HUD shows the leaderboard with both players, and the network overlay toggles on F3.
    bob.wait_for_text("both players in #leaderboard", "leaderboard", |t| t.contains("alice") && t.contains("bob"))
        .await;
    bob.key_press("F3", 114).await;
    bob.wait_for("net overlay on", |d| d["overlay"] == true).await;
    let netgraph = bob
        .wait_for_text("the network overlay's figures", "netgraph", |t| {
            t.contains("ping") && t.contains("snapshots") && t.contains("interp")
        })
        .await;
    eprintln!("bob's network overlay:\n{netgraph}");
    // Its graphs are drawn (lit pixels on the plot's canvas), with the server's budget line.
    let lit = bob
        .wait_for_eval(
            "the overlay's graphs drawn on #netgraph-plot",
            "(() => { const c = document.getElementById('netgraph-plot'); \
              const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; \
              let lit = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) lit++; return lit; })()",
            |v| v.as_u64().is_some_and(|n| n > 2000),
        )
        .await;
    let net = bob.debug().await["net"].clone();
    eprintln!(
        "graph pixels lit: {lit}; budget {} B, largest snapshot {} B",
        net["budget_bytes"], net["largest_snapshot_bytes"]
    );
    bob.check(net["budget_bytes"].as_f64() == Some(1400.0), format!("the welcome's budget in the overlay: {net}"))
        .await;
    bob.check(net["snapshots_over_budget"].as_u64() == Some(0), format!("no snapshot over budget: {net}")).await;

    let dir = screenshot_dir();
    alice.screenshot(&dir.join("alice.png")).await;
    bob.screenshot(&dir.join("bob.png")).await;
    eprintln!("screenshots in {}", dir.display());

    let decode_errors = bob.debug().await["decode_errors"].as_u64();
    bob.check(decode_errors == Some(0), format!("decode errors: {decode_errors:?}")).await;
    alice.assert_no_console_errors().await;
    bob.assert_no_console_errors().await;
    alice.close().await;
    bob.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_shown_in_words_and_the_client_reconnects() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let server = start_server(small_map(), None).await;
    let port = server.addr.port();
    let mut carol = Player::launch("carol").await;
    carol.open_and_join(&server.url, "carol").await;
    carol.wait_for("connected", |d| d["state"] == "connected" && d["own"].is_object()).await;
    // Watch the page while the server shuts down (stopping waits for idle HTTP connections).
    let stopping = tokio::spawn(server.stop());
    let says_why = |d: &serde_json::Value| {
        d["state"] == "reconnecting"
            && d["close_reason"].as_str().is_some_and(|s| s.contains("server is shutting down"))
            && d["status_text"]
                .as_str()
                .is_some_and(|s| s.contains("server is shutting down") && s.contains("Reconnecting in"))
    };
    carol.wait_for("the status to say 'server is shutting down' and 'Reconnecting in'", says_why).await;
    stopping.await.unwrap();
    // Failed reconnect attempts keep showing why the connection ended.
    carol
        .wait_for("a failed reconnect attempt that still says 'server is shutting down'", |d| {
            d["reconnect_attempt"].as_u64() >= Some(2) && says_why(d)
        })
        .await;
    // A server comes back on the same port: the page reconnects by itself.
    let again = start_server(small_map(), Some(port)).await;
    carol.wait_for("reconnected", |d| d["state"] == "connected" && d["own"].is_object()).await;
    let dir = screenshot_dir();
    carol.screenshot(&dir.join("carol-reconnected.png")).await;
    carol.assert_no_console_errors().await;
    carol.close().await;
    again.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_can_be_watched_paused_sped_up_and_seeked() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let server = start_replay_server().await;
    let mut viewer = Player::launch("viewer").await;
    viewer.open_and_join(&server.url, "viewer").await;
    let tick_of = |d: &serde_json::Value| d["tick"].as_u64().unwrap_or(0);
    let watching = viewer
        .wait_for("spectating with players in view", |d| {
            d["spectator"] == true && d["players"].as_array().is_some_and(|p| p.len() >= 28) && tick_of(d) > 0
        })
        .await;
    // The length the file itself records (the sample is regenerated when the format changes).
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/replays/sample.arenareplay");
    let file = server::replay::format::read(std::fs::File::open(path).expect("sample replay")).expect("readable");
    let expected = u64::from(server::replay::info(&file).ticks);
    let total = watching["replay"]["total_ticks"].as_u64();
    viewer
        .check(total == Some(expected), format!("the sample replay has {total:?} ticks, the file says {expected}"))
        .await;
    viewer
        .wait_for_eval(
            "the replay bar to show",
            "getComputedStyle(document.getElementById('replay-bar')).display",
            |v| v.as_str().is_some_and(|d| d != "none"),
        )
        .await;

    // Pause: the tick stops.
    viewer.page.find_element("#replay-play").await.unwrap().click().await.unwrap();
    let paused = viewer.wait_for("paused", |d| d["replay"]["paused"] == true).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let still = viewer.debug().await;
    let moved = format!("paused at {} but moved to {}", tick_of(&paused), tick_of(&still));
    viewer.check(tick_of(&still) <= tick_of(&paused) + 2, moved).await;

    // 8x and play: 480 ticks of play (8 s at 1x) arrive within 5 s of real time (about 1 s at 8x),
    // which no speed below 1.6x could do.
    viewer
        .eval("const s = document.getElementById('replay-speed'); s.value = '8'; s.dispatchEvent(new Event('change'))")
        .await;
    viewer.wait_for("speed 8", |d| d["replay"]["speed"] == 8.0).await;
    viewer.page.find_element("#replay-play").await.unwrap().click().await.unwrap();
    let before = tick_of(&viewer.wait_for("playing", |d| d["replay"]["paused"] == false).await);
    let started = tokio::time::Instant::now();
    viewer.wait_for("480 ticks of play", |d| tick_of(d) >= before + 480).await;
    let took = started.elapsed();
    viewer.check(took < Duration::from_secs(5), format!("480 ticks at 8x took {took:?}")).await;

    // Pause, then seek back: the stream restarts from exactly there (a new epoch).
    viewer.page.find_element("#replay-play").await.unwrap().click().await.unwrap();
    let paused_at = tick_of(&viewer.wait_for("paused again", |d| d["replay"]["paused"] == true).await);
    let target = paused_at / 2;
    viewer
        .eval(&format!(
            "const r = document.getElementById('replay-seek'); r.value = '{target}'; r.dispatchEvent(new Event('change'))"
        ))
        .await;
    // The world is drawn again from the new epoch's first (full) snapshot.
    viewer
        .wait_for("seeked back and drawn", |d| {
            d["replay"]["epoch"].as_u64() >= Some(1)
                && tick_of(d) == target
                && d["players"].as_array().is_some_and(|p| p.len() >= 28)
        })
        .await;
    let dir = screenshot_dir();
    viewer.screenshot(&dir.join("replay-viewer.png")).await;
    let decode_errors = viewer.debug().await["decode_errors"].as_u64();
    viewer.check(decode_errors == Some(0), format!("decode errors: {decode_errors:?}")).await;
    viewer.assert_no_console_errors().await;
    viewer.close().await;
    server.stop().await;
}

/// `POST /api/rooms` with a JSON body, as a host's script would; returns the status line and body.
async fn post_room(server: &browser_support::TestServer, body: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.expect("connect");
    let request = format!(
        "POST /api/rooms HTTP/1.0\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

fn names(d: &serde_json::Value) -> Vec<String> {
    d["players"].as_array().map_or_else(Vec::new, |players| {
        players.iter().filter_map(|p| p["name"].as_str().map(str::to_string)).collect()
    })
}

fn lobby_has(d: &serde_json::Value, name: &str) -> bool {
    d["lobby_rooms"].as_array().is_some_and(|rooms| rooms.iter().any(|r| r["name"] == name))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_room_by_invite_quick_play_elsewhere_a_kick_and_a_live_lobby() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let config = server::ServerConfig {
        map: small_map(),
        room_idle: Duration::from_secs(2),
        room_creates_per_minute: 100,
        ..server::ServerConfig::default()
    };
    let server = browser_support::start_server_with(config, None).await;
    let main_code = server.main_code.clone();

    // Dora watches the lobby the whole time.
    let mut dora = Player::launch("dora").await;
    dora.open(&server.url).await;
    dora.wait_for("Main listed in the lobby", |d| lobby_has(d, "Main")).await;

    // Alice creates a private room from the lobby form.
    let mut alice = Player::launch("alice").await;
    alice.open(&server.url).await;
    alice.set_value("#name", "alice").await;
    alice.set_value("#create-name", "alice's den").await;
    alice.set_checked("#create-public", false).await;
    alice.click("#create").await;
    let created = alice
        .wait_for("alice in her new room as host", |d| {
            d["screen"] == "game" && d["state"] == "connected" && d["room"]["you_are_host"] == true
        })
        .await;
    let code = created["room"]["code"].as_str().unwrap_or_default().to_string();
    let invite = created["invite_link"].as_str().unwrap_or_default().to_string();
    alice.check(invite.ends_with(&format!("/r/{code}")), format!("invite link {invite:?} for room {code}")).await;
    alice.check(created["room"]["public"] == false, "the room is private").await;
    alice.wait_for_text("the invite link in the HUD", "invite-link", |t| t == invite).await;

    // Bob, a first-time visitor, opens the invite link: name screen, then straight into the room.
    let mut bob = Player::launch("bob").await;
    bob.open_and_join(&invite, "bob").await;
    let bob_state = bob
        .wait_for("bob in alice's room, seeing alice", |d| {
            d["room"]["code"] == code.as_str() && names(d).iter().any(|n| n == "alice")
        })
        .await;
    let bob_id = bob_state["player_id"].as_u64().unwrap_or(0);
    alice.wait_for("alice sees bob", |d| names(d).iter().any(|n| n == "bob")).await;

    // Carol quick-plays: she lands in Main and sees neither of them.
    let mut carol = Player::launch("carol").await;
    carol.open_and_join(&server.url, "carol").await;
    let carol_state = carol
        .wait_for("carol in Main, drawn", |d| {
            d["state"] == "connected" && d["room"]["code"] == main_code.as_str() && !names(d).is_empty()
        })
        .await;
    carol.check(names(&carol_state) == ["carol"], format!("carol sees only herself: {:?}", names(&carol_state))).await;
    // The private room is not in the lobby.
    let lobby = dora.debug().await;
    dora.check(!lobby_has(&lobby, "alice's den"), "the private room is not listed").await;

    // The host kicks Bob: his page says so in words and he is back in the lobby.
    let kick = format!("#host-players li[data-id=\"{bob_id}\"] button.kick");
    alice.wait_for_element(&kick).await;
    alice.click(&kick).await;
    bob.wait_for("bob back in the lobby, told why", |d| {
        d["screen"] == "lobby" && d["lobby_message"].as_str().is_some_and(|m| m.contains("kicked by the host"))
    })
    .await;
    bob.wait_for_text("the kick in the lobby's message", "lobby-message", |t| t.contains("kicked by the host")).await;
    alice
        .wait_for("alice's notice of the kick", |d| {
            d["notices"].as_array().is_some_and(|n| n.iter().any(|n| n == "alice kicked bob"))
        })
        .await;

    // A room created (by a host's script) appears in Dora's lobby, as text, and disappears when
    // it closes for being empty.
    let answer = post_room(&server, r#"{"name":"<i>pop-up</i>","public":true}"#).await;
    dora.check(answer.starts_with("HTTP/1.0 201") || answer.starts_with("HTTP/1.1 201"), answer.clone()).await;
    dora.wait_for("the new room in the lobby", |d| lobby_has(d, "<i>pop-up</i>")).await;
    dora.wait_for_text("the new room drawn in the list", "lobby-rooms", |t| t.contains("<i>pop-up</i>")).await;
    let italics = dora.eval("document.querySelectorAll('#lobby-rooms i').length").await;
    dora.check(italics.as_u64() == Some(0), format!("room names must be text, found {italics} <i> elements")).await;
    dora.wait_for("the empty room gone from the lobby", |d| lobby_has(d, "Main") && !lobby_has(d, "<i>pop-up</i>"))
        .await;
    dora.wait_for_text("the closed room gone from the list", "lobby-rooms", |t| !t.contains("pop-up")).await;

    let dir = screenshot_dir();
    alice.screenshot(&dir.join("rooms-alice-host.png")).await;
    bob.screenshot(&dir.join("rooms-bob-kicked.png")).await;
    dora.screenshot(&dir.join("rooms-lobby.png")).await;
    for player in [&alice, &bob, &carol, &dora] {
        player.assert_no_console_errors().await;
    }
    for player in [alice, bob, carol, dora] {
        player.close().await;
    }
    server.stop().await;
}

/// The feel on a bad link, measured by the page itself (`arenaDebug().feel`, every frame): the
/// server listens in a network namespace of its own, and the pages reach it only through a
/// userspace delay line at 75 ms ± 10 ms each way (150 ms RTT ± 20 ms) with a 250 ms stall of
/// the whole link every 10 s; the server itself runs unconditioned. Alice runs back and forth
/// for 16 s, 2 s each way with a 0.6 s stop between runs (`FEEL_SECONDS` makes it longer:
/// BENCHMARKS.md quotes a 60 s run), and Bob watches her.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_150_ms_link_with_stalls_nobody_snaps_runs_ahead_or_rubber_bands() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let ns = Arc::new(browser_support::Netns::create("feel"));
    let config = server::ServerConfig { map: small_map(), ..server::ServerConfig::default() };
    let server = browser_support::start_server_on(config, ns.listen()).await;
    // `FEEL_LINK` sets another link (BENCHMARKS.md quotes a clean one: `latency=0ms`).
    let link = std::env::var("FEEL_LINK").unwrap_or_else(|_| "latency=75ms,jitter=10ms,stall=250ms/10s".to_string());
    let sim = link.parse().expect("FEEL_LINK: a --net-sim spec");
    let line = browser_support::DelayLine::start(ns.clone(), server.addr, sim).await;
    let mut alice = Player::launch("alice").await;
    let mut bob = Player::launch("bob").await;
    alice.open_and_join(&line.url, "alice").await;
    alice.wait_for("alice connected", |d| d["state"] == "connected" && d["own"].is_object()).await;
    bob.open_and_join(&line.url, "bob").await;
    bob.wait_for("bob sees alice", |d| names(d).iter().any(|n| n == "alice")).await;
    let bob_frames_before = bob.debug().await["feel"]["frames"].as_u64().unwrap_or(0);
    let seconds: u64 = std::env::var("FEEL_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(16).max(4);
    let mut presses = Vec::new();
    for lap in 0..seconds / 2 {
        let (key, code) = if lap % 2 == 0 { ("ArrowRight", 39) } else { ("ArrowLeft", 37) };
        presses.push((tokio::time::Instant::now(), if lap % 2 == 0 { glam::Vec2::X } else { -glam::Vec2::X }));
        alice.key_down(key, code).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        alice.key_up(key, code).await;
        // A stop between runs: each press starts from a standstill (its key-to-server time is
        // not the time it takes to turn round).
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    let frames = seconds * 50;
    let watched = bob
        .wait_for(&format!("bob drew {frames} frames"), |d| {
            d["feel"]["frames"].as_u64() >= Some(bob_frames_before + frames)
        })
        .await;
    let played = alice.debug().await;
    eprintln!("bob's feel (watching): {}", watched["feel"]);
    eprintln!("alice's feel (playing): {}", played["feel"]);
    eprintln!("alice's net: {}", played["net"]);
    // The same presses timed from outside the page, by the delay line.
    let outside = key_to_server_from_outside(&line.tap.lock().unwrap(), &presses);
    eprintln!("alice's key to server, from the delay line (ms): {outside}");
    let timed = outside["presses"].as_u64().unwrap_or(0);
    alice
        .check(
            timed == presses.len() as u64,
            format!("the delay line timed {timed} of {} presses: {outside}", presses.len()),
        )
        .await;
    let feel = &watched["feel"];
    bob.check(feel["remote_snaps"].as_u64() == Some(0), format!("remote players snapped: {feel}")).await;
    bob.check(feel["frames_past_cap"].as_u64() == Some(0), format!("drawn > 1 interval past the data: {feel}")).await;
    // Not bought with latency: the median trail behind the newest snapshot stays within two
    // snapshot intervals plus twice the jitter (4 + 2 × 1.2 ticks here).
    let trail = feel["trail_ticks_p50"].as_f64().unwrap_or(f64::MAX);
    bob.check(trail <= 6.4, format!("median trail {trail} ticks: {feel}")).await;
    // Alice's own player: the server takes exactly the steps she predicted, stalls included, so
    // no correction reaches a player radius and she never moves against the key she holds.
    let own = &played["feel"];
    let largest = own["max_correction"].as_f64().unwrap_or(f64::MAX);
    alice.check(largest < 18.0, format!("a correction of {largest} units: {own}")).await;
    let p99 = own["correction_p99"].as_f64().unwrap_or(f64::MAX);
    alice.check(p99 < 1.0, format!("corrections p99 {p99} units: {own}")).await;
    let presses = own["key_presses"].as_u64().unwrap_or(0);
    alice.check(presses + 1 >= seconds / 2, format!("{presses} key presses seen on the server: {own}")).await;
    alice.check(own["own_backward_frames"].as_u64() == Some(0), format!("moved against the held key: {own}")).await;
    alice.assert_no_console_errors().await;
    bob.assert_no_console_errors().await;
    alice.close().await;
    bob.close().await;
    drop(line);
    server.stop().await;
}

/// Times each key press (when the test pressed it, which way) from outside the page, with what
/// the delay line saw: the first input moving that way leaving the page (sampling), reaching the
/// server (up), the first snapshot acknowledging it leaving the server (the server's part: its
/// input queue, its tick and the next snapshot) and reaching the page (down), and the first
/// snapshot whose own velocity runs along the key reaching the page (the total). Medians and
/// maxima, ms.
fn key_to_server_from_outside(
    tap: &[browser_support::TapEvent],
    presses: &[(tokio::time::Instant, glam::Vec2)],
) -> serde_json::Value {
    use browser_support::Tapped;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut parts: [Vec<f64>; 5] = Default::default();
    let mut queues = Vec::new();
    for &(pressed, dir) in presses {
        let Some((conn, seq, sent, arrived)) = tap.iter().find_map(|e| match e.what {
            Tapped::Input { seq, dir: d } if e.read_at >= pressed && d.dot(dir) > 0.5 => {
                Some((e.conn, seq, e.read_at, e.delivered_at))
            }
            _ => None,
        }) else {
            continue;
        };
        let acked = tap.iter().find_map(|e| match e.what {
            Tapped::Snapshot { input_ack, input_queue, .. }
                if e.conn == conn && input_ack >= seq && e.read_at >= arrived =>
            {
                Some((e.read_at, e.delivered_at, input_queue))
            }
            _ => None,
        });
        let moving = tap.iter().find_map(|e| match e.what {
            Tapped::Snapshot { vel: Some(vel), .. } if e.conn == conn && e.read_at >= pressed && vel.dot(dir) > 1.0 => {
                Some(e.delivered_at)
            }
            _ => None,
        });
        let (Some((left, shown, queue)), Some(moving)) = (acked, moving) else { continue };
        for (part, value) in
            parts.iter_mut().zip([sent - pressed, arrived - sent, left - arrived, shown - left, moving - pressed])
        {
            part.push(ms(value));
        }
        queues.push(f64::from(queue));
    }
    let summary = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        serde_json::json!({"p50": values.get(values.len() / 2), "max": values.last()})
    };
    let [mut sampling, mut up, mut server, mut down, mut total] = parts;
    serde_json::json!({
        "presses": total.len(),
        "sampling": summary(&mut sampling),
        "up": summary(&mut up),
        "server": summary(&mut server),
        "down": summary(&mut down),
        "total": summary(&mut total),
        "input_queue_at_ack": summary(&mut queues),
    })
}

/// Reads the QR code an `<img>` shows, from the page's own pixels: the image is drawn on a canvas
/// in the page (as the phone's camera would see the screen) and decoded here. Waits up to 5 s for
/// the image to load and decode; `None` if it never does.
async fn decode_qr_image(player: &Player, selector: &str) -> Option<String> {
    for _ in 0..50 {
        if let Some(text) = decode_qr_image_once(player, selector).await {
            return Some(text);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

async fn decode_qr_image_once(player: &Player, selector: &str) -> Option<String> {
    let expression = format!(
        "(() => {{ const img = document.querySelector('{selector}'); \
           if (!img || !img.complete || !img.naturalWidth) return null; \
           const c = document.createElement('canvas'); c.width = 320; c.height = 320; \
           const g = c.getContext('2d'); g.fillStyle = '#fff'; g.fillRect(0, 0, 320, 320); \
           g.drawImage(img, 20, 20, 280, 280); \
           const d = g.getImageData(0, 0, 320, 320).data; const out = []; \
           for (let i = 0; i < d.length; i += 4) out.push(d[i] < 128 ? 0 : 255); return out; }})()"
    );
    let pixels: Vec<u8> =
        player.eval(&expression).await.as_array()?.iter().map(|v| v.as_u64().unwrap_or(255) as u8).collect();
    if pixels.len() != 320 * 320 {
        return None;
    }
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(320, 320, |x, y| pixels[y * 320 + x]);
    let grids = image.detect_grids();
    grids.first().and_then(|grid| grid.decode().ok()).map(|(_, text)| text)
}

/// The LAN invite in a real browser: the lobby shows the server's address for other devices (not
/// the `localhost` the page was opened at) and a QR code that decodes to it; in a room, the
/// invite link and its QR code use that address too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lobby_and_the_room_invite_other_devices_with_a_scannable_lan_address() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    // The server listens on loopback (tests never listen elsewhere); --public-url stands in for
    // the LAN address a real host would have.
    let lan_url = "http://10.9.8.7:8080/";
    let config = server::ServerConfig {
        map: small_map(),
        public_url: Some(lan_url.to_string()),
        ..server::ServerConfig::default()
    };
    let server = browser_support::start_server_with(config, None).await;
    let mut eve = Player::launch("eve").await;
    eve.open(&server.url).await;
    eve.wait_for_text("the LAN address in the lobby", "lan-url", |t| t == lan_url).await;
    let decoded = decode_qr_image(&eve, "#lan-qr").await;
    eve.check(decoded.as_deref() == Some(lan_url), format!("the lobby's QR code says {decoded:?}, expected {lan_url}"))
        .await;
    // Into Main: the room box's invite is on the LAN address, with its own QR code.
    eve.set_value("#name", "eve").await;
    eve.click("#play").await;
    let code = server.main_code.clone();
    let expected = format!("{lan_url}r/{code}");
    eve.wait_for_text("the room's invite on the LAN address", "invite-link", |t| t == expected).await;
    let decoded = decode_qr_image(&eve, "#invite-qr").await;
    eve.check(
        decoded.as_deref() == Some(expected.as_str()),
        format!("the room's QR code says {decoded:?}, expected {expected}"),
    )
    .await;
    eve.screenshot(&screenshot_dir().join("lan-invite.png")).await;
    eve.assert_no_console_errors().await;
    eve.close().await;
    server.stop().await;
}

/// Whether the HUD's boxes overlap one another or leave the viewport (JSON: what was measured).
const HUD_LAYOUT: &str = "(() => { const ids = ['top-left', 'board-box', 'vitals', 'help']; \
  const r = ids.map(id => document.getElementById(id).getBoundingClientRect()); \
  const w = window.innerWidth, h = window.innerHeight; \
  const inside = r.every(b => b.left >= 0 && b.top >= 0 && b.right <= w && b.bottom <= h); \
  let overlap = false; for (let i = 0; i < r.length; i++) for (let j = i + 1; j < r.length; j++) { \
    const a = r[i], b = r[j]; if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom) overlap = true; } \
  return { inside, overlap, w, h, boxes: r.map(b => [b.left, b.top, b.right, b.bottom].map(Math.round)) }; })()";

/// A phone joins by an invite link and plays with its thumbs: a phone-sized viewport with a touch
/// screen, touch hints instead of keys, the stick and the reticle drawn while in use, movement
/// from the left thumb and shots from the right, and a HUD that stays out of the way in portrait
/// and in landscape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_joins_by_invite_link_moves_and_fires_with_its_thumbs() {
    use chromiumoxide::cdp::browser_protocol::input::DispatchTouchEventType as Touch;
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let server = browser_support::start_server(small_map(), None).await;
    let mut phone = Player::launch("phone").await;
    phone.emulate_phone(390, 844).await;
    let invite = format!("{}r/{}", server.url, server.main_code);
    phone.open_and_join(&invite, "thumbs").await;
    let joined = phone.wait_for("the phone joined Main", |d| d["state"] == "connected" && d["own"].is_object()).await;
    phone.check(joined["room"]["code"] == server.main_code.as_str(), format!("joined {}", joined["room"])).await;
    let touch = phone.wait_for("touch controls on", |d| d["touch"]["device"] == true).await;
    let help = touch["touch"]["help"].as_str().unwrap_or_default().to_string();
    phone.check(help.contains("thumb"), format!("touch hints, not keys: {help:?}")).await;
    let shown = phone.eval("getComputedStyle(document.getElementById('help')).display").await;
    phone.check(shown != "none", format!("the hint is shown on a phone: display {shown}")).await;

    // Left thumb: press, drag right past the stick's radius, hold for a second.
    let start_x = joined["own"]["x"].as_f64().unwrap_or(0.0);
    phone.touch(Touch::TouchStart, &[(100.0, 650.0)]).await;
    for step in 1..=6 {
        phone.touch(Touch::TouchMove, &[(100.0 + 15.0 * f64::from(step), 650.0)]).await;
    }
    let moving = phone.wait_for("the stick in use", |d| d["touch"]["moving"] == true).await;
    let stick_pixels = phone
        .eval("(() => { const c = document.getElementById('game'); const g = c.getContext('2d'); \
               const s = window.devicePixelRatio; const d = g.getImageData(175 * s, 640 * s, 20 * s, 20 * s).data; \
               let lit = 0; for (let i = 0; i < d.length; i += 4) if (d[i] > 90 && d[i + 1] > 90 && d[i + 2] > 90) lit++; return lit; })()")
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let moved = phone
        .wait_for("the phone's player moved right", |d| d["own"]["x"].as_f64().is_some_and(|x| x > start_x + 100.0))
        .await;
    phone.touch(Touch::TouchEnd, &[]).await;
    eprintln!("moved from x={start_x:.0} to x={:.0}; stick knob pixels lit: {stick_pixels}", moved["own"]["x"]);
    phone.check(moving["touch"]["moving"] == true, "the stick was in use").await;
    phone
        .check(
            stick_pixels.as_u64().unwrap_or(0) > 20,
            format!("the stick's knob is drawn under the thumb: {stick_pixels}"),
        )
        .await;

    // Right thumb: hold to aim and fire.
    phone.touch(Touch::TouchStart, &[(300.0, 300.0)]).await;
    let firing = phone
        .wait_for("shots fired from the right thumb", |d| {
            d["touch"]["aiming"] == true && d["projectiles"].as_u64() > Some(0)
        })
        .await;
    phone.screenshot(&screenshot_dir().join("phone-portrait.png")).await;
    phone.touch(Touch::TouchEnd, &[]).await;
    eprintln!("firing: {} projectiles drawn", firing["projectiles"]);

    // The HUD keeps to the edges: nothing overlaps or leaves the screen, portrait and landscape.
    let portrait = phone.eval(HUD_LAYOUT).await;
    phone.check(portrait["inside"] == true && portrait["overlap"] == false, format!("portrait HUD: {portrait}")).await;
    phone.emulate_phone(844, 390).await;
    let landscape = phone.wait_for_eval("the landscape layout", HUD_LAYOUT, |v| v["w"] == 844).await;
    phone
        .check(landscape["inside"] == true && landscape["overlap"] == false, format!("landscape HUD: {landscape}"))
        .await;
    phone.screenshot(&screenshot_dir().join("phone-landscape.png")).await;
    phone.assert_no_console_errors().await;
    phone.close().await;
    server.stop().await;
}

/// A private server run like a service, in real Chromium: the page asks for the password (and
/// says when it is wrong), the game is served under a proxy's path prefix, and the operator signs
/// in to `/admin` with a token, sees the player (name as text, address, round trip), kicks them
/// with a message the player reads, and finds the kick in the audit log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_server_asks_on_the_page_and_the_operator_kicks_from_the_admin_page() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let secret = "browser-admin-secret-0123456789";
    let dir = std::env::temp_dir().join(format!("arena-browser-admin-{}", std::process::id()));
    let config = server::ServerConfig {
        map: small_map(),
        gate: Arc::new(server::auth::Gate { password: Some("open sesame".into()), ..Default::default() }),
        admin: server::admin::AdminConfig {
            tokens: vec![server::admin::AdminToken::parse(&format!("ops={secret}")).unwrap()],
            bans_file: Some(dir.join("bans.json")),
            audit_log: Some(dir.join("audit.log")),
        },
        public_url: Some("https://games.example/gs/pod-1/".into()),
        ..server::ServerConfig::default()
    };
    let server = browser_support::start_server_with(config, None).await;
    let game = format!("{}gs/pod-1/", server.url);

    let mut eve = Player::launch("eve").await;
    eve.open_and_join(&game, "<b>eve</b>").await;
    eve.wait_for("the lobby asking for the password", |d| {
        d["screen"] == "lobby" && d["lobby_message"].as_str().is_some_and(|m| m.contains("needs a password"))
    })
    .await;
    eve.wait_for_eval(
        "the password box shown",
        "!document.getElementById('password').classList.contains('hidden')",
        |v| v == true,
    )
    .await;
    eve.set_value("#password", "open says me").await;
    eve.click("#play").await;
    eve.wait_for("a wrong password said so", |d| {
        d["screen"] == "lobby" && d["lobby_message"].as_str().is_some_and(|m| m.contains("Wrong password"))
    })
    .await;
    eve.set_value("#password", "open sesame").await;
    eve.click("#play").await;
    eve.wait_for("eve playing in Main", |d| {
        d["state"] == "connected" && d["room"]["code"] == server.main_code.as_str()
    })
    .await;
    let path = eve.eval("location.pathname").await;
    eve.check(
        path.as_str().is_some_and(|p| p.starts_with("/gs/pod-1/")),
        format!("the address stays under the proxy's prefix: {path}"),
    )
    .await;

    // The operator's page: sign in, find eve, kick her with a message.
    let ops = Player::launch("ops").await;
    // Under the proxy's prefix too: the page's script and API calls stay under it.
    ops.page.goto(format!("{game}admin")).await.expect("open the admin page");
    ops.wait_for_element("#token").await;
    ops.set_value("#token", secret).await;
    ops.click("#login button[type=submit]").await;
    ops.wait_for_eval("the rooms drawn", "document.body.dataset.loaded === '1'", |v| v == true).await;
    let row = "#rooms tr[data-player-id]";
    ops.wait_for_element(row).await;
    let shown = ops
        .wait_for_eval(
            "eve's row with her round trip",
            &format!("(() => {{ const r = document.querySelector('{row}'); return r ? r.textContent : ''; }})()"),
            |v| v.as_str().is_some_and(|t| t.contains("<b>eve</b>") && t.contains("127.0.0.1")),
        )
        .await;
    let bold = ops.eval("document.querySelectorAll('#rooms b').length").await;
    ops.check(bold.as_u64() == Some(0), format!("names are text, found {bold} <b> elements in {shown}")).await;
    ops.set_value(&format!(".room[data-room=\"{}\"] input.message", server.main_code), "bye for now").await;
    ops.click(&format!("{row} button.kick")).await;
    eve.wait_for("eve back in the lobby, told why", |d| {
        d["screen"] == "lobby"
            && d["lobby_message"].as_str().is_some_and(|m| m.contains("removed by the server's operator: bye for now"))
    })
    .await;
    ops.wait_for_eval("the kick in the audit table", "document.getElementById('audit').textContent", |v| {
        v.as_str().is_some_and(|t| t.contains("kick") && t.contains("ops"))
    })
    .await;

    let shots = screenshot_dir();
    eve.screenshot(&shots.join("password-eve-kicked.png")).await;
    ops.screenshot(&shots.join("admin-page.png")).await;
    for player in [&eve, &ops] {
        player.assert_no_console_errors().await;
    }
    eve.close().await;
    ops.close().await;
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The fleet lobby in real Chromium: the lobby page lists a server's rooms; Quick play sends the
/// player to that server's page with a signed join token in the address's fragment, which the
/// client uses and then removes from the address bar; a second player joins the same room by
/// its code from the lobby page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_lobby_sends_players_to_the_server_with_a_join_token() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let key = "browser-fleet-lobby-key-0123456789";
    let secret = "browser-fleet-join-token-secret-0123456789";
    let lobby_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let lobby_url = format!("http://{}/", lobby_listener.local_addr().unwrap());
    let (stop_lobby, lobby_stopped) = tokio::sync::oneshot::channel::<()>();
    let lobby = tokio::spawn(server::fleet::lobby::run(
        lobby_listener,
        server::fleet::lobby::LobbyConfig {
            lobby_key: key.into(),
            join_token_secret: Some(secret.into()),
            token_lifetime: Duration::from_secs(60),
            allocator: None,
            requests_per_minute: 1000,
            trusted_proxies: Vec::new(),
            http: server::config::HttpLimits::default(),
            token_issuer: None,
            token_audience: None,
            directory: None,
            directory_password: None,
            stale_placements_for: server::fleet::lobby::STALE_PLACEMENTS_FOR,
        },
        async move {
            let _ = lobby_stopped.await;
        },
    ));
    // The game server admits only players with a token; it reports to the lobby.
    // `{port}`: the port the server binds (port 0, chosen by the system).
    let config = server::ServerConfig {
        map: small_map(),
        gate: Arc::new(server::auth::Gate {
            password: None,
            tokens: Some(server::auth::JoinTokenKeys::from_secret(secret, None, None).unwrap()),
            ..Default::default()
        }),
        lobby: Some(server::fleet::report::LobbyLink {
            url: lobby_url.trim_end_matches('/').to_string(),
            key: key.into(),
            instance: "gs-1".into(),
            public_url: "http://127.0.0.1:{port}/".into(),
            directory: None,
        }),
        public_url: Some("http://127.0.0.1:{port}/".into()),
        ..server::ServerConfig::default()
    };
    let server = browser_support::start_server_with(config, None).await;

    let ann = Player::launch("ann").await;
    ann.page.goto(lobby_url.clone()).await.expect("open the lobby");
    ann.wait_for_eval("Main listed in the lobby", "document.body.dataset.rooms || '0'", |v| v != "0").await;
    let row = ann
        .eval("document.querySelector('#rooms li') ? document.querySelector('#rooms li').dataset.server : null")
        .await;
    ann.check(row == "gs-1", format!("the room's server is shown: {row}")).await;
    ann.set_value("#name", "ann").await;
    ann.click("#quickplay").await;
    ann.wait_for("ann playing on the game server under the token's name", |d| {
        d["state"] == "connected"
            && d["room"]["code"] == server.main_code.as_str()
            && names(d).iter().any(|n| n == "ann")
    })
    .await;
    let where_now = ann.eval("location.href").await;
    ann.check(
        where_now.as_str().is_some_and(|href| href.starts_with(&server.url) && !href.contains('#')),
        format!("on the game server, the token gone from the address: {where_now}"),
    )
    .await;

    // Bob joins by code from the lobby page.
    let bob = Player::launch("bob").await;
    bob.page.goto(lobby_url.clone()).await.expect("open the lobby");
    bob.wait_for_element("#code").await;
    bob.set_value("#name", "bob").await;
    bob.set_value("#code", &server.main_code).await;
    bob.click("#join").await;
    bob.wait_for("bob in the same room, seeing ann", |d| {
        d["room"]["code"] == server.main_code.as_str() && names(d).iter().any(|n| n == "ann")
    })
    .await;
    for player in [&ann, &bob] {
        player.assert_no_console_errors().await;
    }
    ann.close().await;
    bob.close().await;
    server.stop().await;
    let _ = stop_lobby.send(());
    let _ = lobby.await;
}

/// A tab hidden for 15 s (no animation frames: no inputs, no pings) is the same player, playing,
/// within a second of being shown again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tab_hidden_for_15_s_is_back_within_a_second_of_being_shown() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let server = start_server(small_map(), None).await;
    let mut alice = Player::launch("hidden").await;
    alice.open_and_join(&server.url, "alice").await;
    let joined = alice.wait_for("alice connected", |d| d["state"] == "connected" && d["own"].is_object()).await;
    let alice_id = joined["player_id"].as_u64().expect("player id");
    alice.hide_for(Duration::from_secs(15)).await;
    let shown = tokio::time::Instant::now();
    let before = alice.debug().await;
    let snapshots = before["snapshots"].as_u64().unwrap_or(0);
    let back = alice
        .wait_for("alice playing again after 15 s hidden", |d| {
            d["state"] == "connected"
                && d["player_id"].as_u64() == Some(alice_id)
                && d["own"].is_object()
                && (d["snapshots"].as_u64() > Some(snapshots + 3) || d["snapshots"].as_u64() < Some(snapshots))
        })
        .await;
    let took = shown.elapsed();
    eprintln!(
        "hidden 15 s: playing again {:.0} ms after being shown (state when shown: {}, losses {}, resumes {})",
        took.as_secs_f64() * 1000.0,
        before["state"],
        back["losses"],
        back["resumes"]
    );
    alice
        .check(took <= Duration::from_secs(1), format!("back {took:?} after being shown (goal: within 1 s): {back}"))
        .await;
    alice.close().await;
    server.stop().await;
}

/// A Wi-Fi blip is not a flood, and a cut connection is not a leave: alice holds a key through
/// offline spells of 3, 8 and 15 s (the browser's offline mode: the connection stays, traffic
/// waits) and through a reset of her TCP connection; each time she is the same player after,
/// never kicked, back within a second of the network's return (the page tries at once on
/// `online`), and bob sees her keep her id. While she waits the page counts the seat hold down.
/// The long blips and the reset go through the client's watchdog and its automatic resume of
/// the held seat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blips_and_a_cut_connection_keep_the_same_player_without_a_kick() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let server = start_server(small_map(), None).await;
    let proxy = browser_support::CutProxy::start(server.addr).await;
    let mut alice = Player::launch("alice").await;
    let mut bob = Player::launch("bob").await;
    alice.open_and_join(&proxy.url, "alice").await;
    let joined = alice.wait_for("alice connected", |d| d["state"] == "connected" && d["own"].is_object()).await;
    let alice_id = joined["player_id"].as_u64().expect("player id");
    bob.open_and_join(&server.url, "bob").await;
    bob.wait_for("bob sees alice", |d| names(d).iter().any(|n| n == "alice")).await;
    let bob_sees_alice = |d: &serde_json::Value| {
        d["players"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["id"].as_u64() == Some(alice_id) && p["away"] == false))
    };
    let same_alice = |d: &serde_json::Value| {
        d["state"] == "connected" && d["player_id"].as_u64() == Some(alice_id) && d["own"].is_object()
    };
    alice.key_down("ArrowRight", 39).await;
    for seconds in [3, 8, 15] {
        let before = alice.debug().await;
        alice.set_offline(true).await;
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let during = alice.debug().await;
        if seconds > 5 {
            // Past the 4 s watchdog the page is reconnecting (waiting, or trying), and says how
            // long the seat waits.
            let status = during["status_text"].as_str().unwrap_or_default();
            alice
                .check(
                    (during["state"] == "reconnecting" || during["state"] == "connecting")
                        && status.contains("your seat is held for"),
                    format!("offline for {seconds} s, the page shows the seat hold: {during}"),
                )
                .await;
        }
        alice.set_offline(false).await;
        let online = tokio::time::Instant::now();
        alice.wait_for(&format!("alice back after a {seconds} s blip, same player"), same_alice).await;
        let back = online.elapsed();
        eprintln!(
            "{seconds} s offline: the same player again {:.0} ms after the network came back",
            back.as_secs_f64() * 1000.0
        );
        alice
            .check(back <= Duration::from_secs(1), format!("back {back:?} after a {seconds} s blip (goal: within 1 s)"))
            .await;
        let after = alice
            .wait_for(&format!("alice playing after a {seconds} s blip"), |d| {
                same_alice(d) && d["snapshots"].as_u64() > Some(5)
            })
            .await;
        eprintln!(
            "{seconds} s blip: losses {} -> {}, resumes {} -> {}, inputs held back {} -> {}, buffered during {}",
            before["losses"],
            after["losses"],
            before["resumes"],
            after["resumes"],
            before["backlog_skips"],
            after["backlog_skips"],
            during["send_buffered"]
        );
        alice
            .check(
                after["losses"] == after["resumes"],
                format!("every lost connection came back to the same seat: {after}"),
            )
            .await;
        // From a second into the stall no input is made: the backlog stays about a second long.
        let held_back = after["backlog_skips"].as_u64().unwrap_or(0) - before["backlog_skips"].as_u64().unwrap_or(0);
        alice.check(held_back >= 30, format!("only {held_back} input steps held back in a {seconds} s blip")).await;
        bob.wait_for(&format!("bob sees alice (id {alice_id}) back after the {seconds} s blip"), bob_sees_alice).await;
    }
    alice.key_up("ArrowRight", 39).await;
    let before_cut = alice.debug().await;
    let (losses, resumes) = (before_cut["losses"].as_u64().unwrap_or(0), before_cut["resumes"].as_u64().unwrap_or(0));
    let cut = proxy.cut();
    alice.check(cut >= 1, format!("the proxy had {cut} connections to cut")).await;
    let after = alice
        .wait_for("alice resumed the same player after the reset", |d| {
            same_alice(d)
                && d["losses"].as_u64() > Some(losses)
                && d["resumes"].as_u64() > Some(resumes)
                && d["notices"].as_array().is_some_and(|n| {
                    n.iter().any(|n| {
                        n.as_str().is_some_and(|n| n.starts_with("Reconnected after") && n.contains("same player"))
                    })
                })
        })
        .await;
    eprintln!("after the reset: {after}");
    // The network overlay (F3) counts the losses and resumes.
    alice.key_press("F3", 114).await;
    let overlay = alice
        .wait_for_text("the overlay to show the resumes", "netgraph-text", |t| {
            t.lines().any(|l| l.starts_with("link") && l.contains("3 lost, 3 resumed (last after"))
        })
        .await;
    eprintln!("overlay: {overlay}");
    bob.wait_for("bob sees alice with her id after the reset", bob_sees_alice).await;

    // A real flood from a page is still a flood: a second WebSocket in bob's page sends a hello
    // and 5,000 inputs at once, and is closed as rate limited; bob's game and alice's go on.
    let encode = |message: &shared::protocol::ClientMsg| {
        let bytes = shared::protocol::encode(message);
        format!("[{}]", bytes.iter().map(u8::to_string).collect::<Vec<_>>().join(","))
    };
    let hello = encode(&shared::protocol::ClientMsg::Hello {
        protocol: shared::protocol::PROTOCOL_VERSION,
        name: "flood".into(),
        resume: None,
        room: shared::room::RoomRequest::QuickPlay,
        host_key: None,
        client_id: 0,
        auth: None,
        guest: None,
    });
    let input = encode(&shared::protocol::ClientMsg::Input(shared::protocol::InputCmd {
        seq: 1,
        move_x: 1.0,
        ..Default::default()
    }));
    let flood = format!(
        "(() => {{ window.flood = {{ code: null, reason: null }}; \
           const ws = new WebSocket('ws://{addr}/ws'); ws.binaryType = 'arraybuffer'; \
           ws.onopen = () => {{ ws.send(new Uint8Array({hello})); const input = new Uint8Array({input}); \
             for (let i = 0; i < 5000; i++) ws.send(input); }}; \
           ws.onclose = (e) => {{ window.flood.code = e.code; window.flood.reason = e.reason; }}; \
           return true; }})()",
        addr = server.addr
    );
    bob.eval(&flood).await;
    let flood_end = bob
        .wait_for_eval("the flooding socket closed as rate limited (4006)", "window.flood", |v| v["code"] == 4006)
        .await;
    eprintln!("the flood ended: {flood_end}");
    bob.wait_for("bob still playing", |d| d["state"] == "connected" && d["own"].is_object()).await;
    alice.wait_for("alice still the same player", same_alice).await;
    let dir = screenshot_dir();
    alice.screenshot(&dir.join("alice-resumed.png")).await;
    alice.assert_no_console_errors().await;
    bob.assert_no_console_errors().await;
    alice.close().await;
    bob.close().await;
    drop(proxy);
    server.stop().await;
}

/// Two guests finish a 5-second round on a server that keeps results: both see the same end
/// screen (places, stats, then each one's rating change), the round clock before it, the next
/// round begin after the intermission, and `/leaderboard` list them both; back on the game,
/// the browser is the same player.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_ends_with_the_same_results_for_both_players_and_the_next_begins() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let dir = std::env::temp_dir().join(format!("arena-browser-rounds-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let rules = server::store::rating::RatingRules { min_play: 1 };
    let store = Arc::new(
        server::store::db::Store::open(&format!("sqlite:{}", dir.join("arena.db").display()), rules).await.unwrap(),
    );
    let (sink, queue) = server::store::record::ResultsSink::new();
    let stop_writer = tokio_util::sync::CancellationToken::new();
    let store = server::store::db::StoreCell::ready(store);
    let writer = tokio::spawn(server::store::writer::run(
        Some(store.clone()),
        queue,
        dir.join("results.spool"),
        Arc::new(server::store::writer::WriterStats::default()),
        stop_writer.clone(),
    ));
    let config = server::ServerConfig {
        map: small_map(),
        rounds: shared::room::RoundRules { seconds: 5, score_limit: None },
        intermission: Duration::from_secs(4),
        results: Some(sink),
        store: Some(store),
        ..server::ServerConfig::default()
    };
    let server = browser_support::start_server_with(config, None).await;
    let mut ana = Player::launch("ana").await;
    let mut bo = Player::launch("bo").await;
    ana.open_and_join(&server.url, "<i>ana</i>").await;
    bo.open_and_join(&server.url, "bo").await;
    for player in [&ana, &bo] {
        player.wait_for("connected", |d| d["state"] == "connected" && d["own"].is_object()).await;
    }
    ana.wait_for_text("the round clock counting down", "round-clock", |t| t.ends_with(" left") && t.starts_with("0:0"))
        .await;
    let shown = "!document.getElementById('round-over').classList.contains('hidden')";
    let mut results = Vec::new();
    for player in [&ana, &bo] {
        player.wait_for_eval("the end screen", shown, |v| v == true).await;
        let title = player.wait_for_text("the end screen's title", "round-title", |t| !t.is_empty()).await;
        player.check(title.starts_with("Round 1 over: time is up"), format!("title: {title}")).await;
        let lines = player.eval("[...document.querySelectorAll('#round-results li')].map(li => li.textContent)").await;
        let mine = player.eval("document.querySelector('#round-results li.me')?.textContent ?? null").await;
        results.push((lines, mine));
    }
    let (ana_lines, ana_mine) = &results[0];
    let (bo_lines, bo_mine) = &results[1];
    // The placements (a line's rating change may come a moment later, once it is committed).
    let placements = |lines: &serde_json::Value| -> Vec<String> {
        let text =
            |l: &serde_json::Value| l.as_str().unwrap_or("").split(" · rating ").next().unwrap_or("").to_string();
        lines.as_array().into_iter().flatten().map(text).collect()
    };
    ana.check(
        placements(ana_lines) == placements(bo_lines),
        format!("the same results: {ana_lines} against {bo_lines}"),
    )
    .await;
    let lines: Vec<&str> = ana_lines.as_array().into_iter().flatten().filter_map(|l| l.as_str()).collect();
    ana.check(
        lines.len() == 2 && lines.iter().any(|l| l.contains("<i>ana</i>")) && lines.iter().any(|l| l.contains(" bo ")),
        format!("both players listed, names as text: {lines:?}"),
    )
    .await;
    ana.check(
        ana_mine.as_str().is_some_and(|l| l.contains("<i>ana</i>"))
            && bo_mine.as_str().is_some_and(|l| l.contains(" bo ")),
        format!("each sees their own line marked: {ana_mine} / {bo_mine}"),
    )
    .await;
    // No markup from a name reached the page.
    let injected = ana.eval("document.querySelectorAll('#round-results i').length").await;
    ana.check(injected == 0, format!("a name became markup: {injected}")).await;
    // Storage committed the round: each sees their rating change on their own line.
    for player in [&ana, &bo] {
        player
            .wait_for_eval(
                "the rating change on my line",
                "document.querySelector('#round-results li.me')?.textContent ?? ''",
                |v| v.as_str().is_some_and(|t| t.contains(" · rating ") && t.contains(" · #")),
            )
            .await;
    }
    let me_before = ana.eval("localStorage.getItem('arena.player')").await;
    ana.check(
        me_before.as_str().is_some_and(|id| id.len() == 20),
        format!("the page knows its player id: {me_before}"),
    )
    .await;
    // The next round: the end screen goes, the clock comes back.
    for player in [&ana, &bo] {
        player.wait_for_eval("the next round", shown, |v| v == false).await;
        player.wait_for("round 2", |d| d["room"]["round"] == 2).await;
    }
    // The board: both players, ana's line marked as hers, names as text.
    ana.visit(&format!("{}leaderboard", server.url)).await;
    ana.wait_for_eval("the board loaded", "document.body.dataset.loaded === '1'", |v| v == true).await;
    let top = ana.eval("[...document.querySelectorAll('#top li')].map(li => li.textContent)").await;
    let top: Vec<&str> = top.as_array().into_iter().flatten().filter_map(|l| l.as_str()).collect();
    // Two players who tied the round share a place (1, 1); otherwise 1, 2.
    ana.check(
        top.len() == 2 && top[0].starts_with("1. ") && (top[1].starts_with("2. ") || top[1].starts_with("1. ")),
        format!("the board: {top:?}"),
    )
    .await;
    ana.check(
        top.iter().any(|l| l.contains("<i>ana</i>")) && top.iter().any(|l| l.contains(" bo ")),
        format!("{top:?}"),
    )
    .await;
    let mine = ana.eval("document.querySelector('#top li.me')?.textContent ?? null").await;
    ana.check(mine.as_str().is_some_and(|l| l.contains("<i>ana</i>")), format!("my line marked: {mine}")).await;
    let markup = ana.eval("document.querySelectorAll('#top i').length").await;
    ana.check(markup == 0, format!("a name became markup on the board: {markup}")).await;
    // Back to the game (a new page load): the same player.
    ana.open_and_join(&server.url, "<i>ana</i>").await;
    ana.wait_for("connected again", |d| d["state"] == "connected" && d["own"].is_object()).await;
    let me_after = ana.eval("localStorage.getItem('arena.player')").await;
    ana.check(me_after == me_before, format!("the same player after a reload: {me_before} then {me_after}")).await;
    drop((ana, bo));
    server.stop().await;
    stop_writer.cancel();
    let _ = writer.await;
}
