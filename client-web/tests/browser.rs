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
    assert_ne!(alice_id, bob_id);
    alice
        .wait_for("alice sees bob", |d| d["players"].as_array().is_some_and(|p| p.iter().any(|p| p["name"] == "bob")))
        .await;

    let x_of = |debug: &serde_json::Value, id: u64| {
        debug["players"]
            .as_array()
            .and_then(|players| players.iter().find(|p| p["id"].as_u64() == Some(id)).and_then(|p| p["x"].as_f64()))
    };
    let before = x_of(&bob.debug().await, alice_id).expect("bob sees alice");
    // Alice holds the right arrow for one second.
    alice.key_down("ArrowRight", 39).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    alice.key_up("ArrowRight", 39).await;
    let moved =
        bob.wait_for("bob sees alice move right", |d| x_of(d, alice_id).is_some_and(|x| x > before + 150.0)).await;
    let after = x_of(&moved, alice_id).unwrap();
    eprintln!("bob saw alice move from x={before:.1} to x={after:.1}");
    // Her own view agrees (prediction) and she did not drift vertically.
    let alice_view = alice.debug().await;
    assert!(alice_view["own"]["x"].as_f64().unwrap() > before + 150.0);

    // Alice chats: Enter opens the chat box, typing, Enter sends.
    alice.key_press("Enter", 13).await;
    alice.type_text("hello from alice <b>not bold</b>").await;
    alice.key_press("Enter", 13).await;
    let chat = bob
        .wait_for("bob receives the chat line", |d| {
            d["chat"]
                .as_array()
                .is_some_and(|lines| lines.iter().any(|l| l["text"] == "hello from alice <b>not bold</b>"))
        })
        .await;
    assert!(chat["chat"].as_array().unwrap().iter().any(|l| l["from"] == "alice"));
    // Rendered as text, never as HTML.
    let rendered = bob.eval("document.getElementById('chat-log').textContent").await;
    assert!(rendered.as_str().unwrap().contains("<b>not bold</b>"), "{rendered}");
    let bold = bob.eval("document.querySelectorAll('#chat-log b').length").await;
    assert_eq!(bold.as_u64(), Some(0));

    // The HUD shows the leaderboard with both players, and the network overlay toggles on F3.
    let board = bob.eval("document.getElementById('leaderboard').textContent").await;
    assert!(board.as_str().unwrap().contains("alice") && board.as_str().unwrap().contains("bob"), "{board}");
    bob.key_press("F3", 114).await;
    let overlay = bob.wait_for("net overlay", |d| d["overlay"] == true).await;
    assert_eq!(overlay["overlay"], true);
    let netgraph = bob
        .wait_for_eval("document.getElementById('netgraph').textContent", |text| {
            text.as_str().is_some_and(|t| t.contains("ping") && t.contains("snapshots") && t.contains("interp"))
        })
        .await;
    eprintln!("bob's network overlay:\n{}", netgraph.as_str().unwrap());

    let dir = screenshot_dir();
    alice.screenshot(&dir.join("alice.png")).await;
    bob.screenshot(&dir.join("bob.png")).await;
    eprintln!("screenshots in {}", dir.display());

    let decode_errors = bob.debug().await["decode_errors"].as_u64();
    assert_eq!(decode_errors, Some(0));
    alice.assert_no_console_errors();
    bob.assert_no_console_errors();
    alice.close().await;
    bob.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_shown_in_words_and_the_client_reconnects() {
    let server = start_server(small_map(), None).await;
    let port = server.addr.port();
    let mut carol = Player::launch("carol").await;
    carol.open_and_join(&server.url, "carol").await;
    carol.wait_for("connected", |d| d["state"] == "connected" && d["own"].is_object()).await;
    // Watch the page while the server shuts down (stopping waits for idle HTTP connections).
    let stopping = tokio::spawn(server.stop());
    let lost = carol
        .wait_for("shows the close reason", |d| {
            d["state"] == "reconnecting" && d["status_text"].as_str().is_some_and(|s| s.contains("Reconnecting"))
        })
        .await;
    let status = lost["status_text"].as_str().unwrap_or_default().to_string();
    assert!(status.contains("server is shutting down"), "status: {status}");
    assert!(status.contains("Reconnecting in"), "status: {status}");
    stopping.await.unwrap();
    // Failed reconnect attempts keep showing why the connection ended.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let still = carol.debug().await["status_text"].as_str().unwrap_or_default().to_string();
    assert!(still.contains("server is shutting down"), "status after failed attempts: {still}");
    // A server comes back on the same port: the page reconnects by itself.
    let again = start_server(small_map(), Some(port)).await;
    carol.wait_for("reconnected", |d| d["state"] == "connected" && d["own"].is_object()).await;
    let dir = screenshot_dir();
    carol.screenshot(&dir.join("carol-reconnected.png")).await;
    carol.assert_no_console_errors();
    carol.close().await;
    again.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_can_be_watched_paused_sped_up_and_seeked() {
    let server = start_replay_server().await;
    let mut viewer = Player::launch("viewer").await;
    viewer.open_and_join(&server.url, "viewer").await;
    let tick_of = |d: &serde_json::Value| d["tick"].as_u64().unwrap_or(0);
    let watching = viewer
        .wait_for("spectating with players in view", |d| {
            d["spectator"] == true && d["players"].as_array().is_some_and(|p| p.len() >= 28) && tick_of(d) > 0
        })
        .await;
    assert_eq!(watching["replay"]["total_ticks"].as_u64(), Some(7201));
    assert!(viewer.eval("getComputedStyle(document.getElementById('replay-bar')).display").await != "none");

    // Pause: the tick stops.
    viewer.page.find_element("#replay-play").await.unwrap().click().await.unwrap();
    let paused = viewer.wait_for("paused", |d| d["replay"]["paused"] == true).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let still = viewer.debug().await;
    assert!(tick_of(&still) <= tick_of(&paused) + 2, "paused at {} but moved to {}", tick_of(&paused), tick_of(&still));

    // 8x and play: about 480 ticks per second of real time.
    viewer
        .eval("const s = document.getElementById('replay-speed'); s.value = '8'; s.dispatchEvent(new Event('change'))")
        .await;
    viewer.wait_for("speed 8", |d| d["replay"]["speed"] == 8.0).await;
    viewer.page.find_element("#replay-play").await.unwrap().click().await.unwrap();
    let before = tick_of(&viewer.wait_for("playing", |d| d["replay"]["paused"] == false).await);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = tick_of(&viewer.debug().await);
    assert!(after >= before + 350, "8x should run ~480 ticks per second: {before} -> {after}");

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
    assert_eq!(viewer.debug().await["decode_errors"].as_u64(), Some(0));
    viewer.assert_no_console_errors();
    viewer.close().await;
    server.stop().await;
}
