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
    let server = start_replay_server().await;
    let mut viewer = Player::launch("viewer").await;
    viewer.open_and_join(&server.url, "viewer").await;
    let tick_of = |d: &serde_json::Value| d["tick"].as_u64().unwrap_or(0);
    let watching = viewer
        .wait_for("spectating with players in view", |d| {
            d["spectator"] == true && d["players"].as_array().is_some_and(|p| p.len() >= 28) && tick_of(d) > 0
        })
        .await;
    let total = watching["replay"]["total_ticks"].as_u64();
    viewer.check(total == Some(7201), format!("the sample replay has {total:?} ticks, expected 7201")).await;
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
