//! Frame time of the real client in headless Chromium with about 200 entities on screen.
//!
//! Starts the server in-process with 150 bots on an open 1500×1000 map (all of it fits on a
//! 1280×800 screen) and 60 orbs, opens the client, lets it play for a warm-up, then reads the
//! client's own per-frame timing (update + render, measured with `performance.now()`) from
//! `window.arenaDebug()`.
//!
//! Run: `cargo xtask build-web && cargo bench -p client-web --bench frame_time`

#[path = "../tests/browser_support/mod.rs"]
mod browser_support;

use std::sync::Arc;
use std::time::Duration;

use browser_support::{Player, start_server_with};
use server::ServerConfig;
use shared::map::MapDef;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let map = MapDef::from_json(
            r#"{"id":"frame-bench","name":"frame bench","width":1500,"height":1000,"walls":[],
                "spawns":[[250,250],[750,250],[1250,250],[250,500],[750,500],[1250,500],[250,750],[750,750],[1250,750]],
                "orbs":60}"#,
        )
        .expect("valid map");
        let config = ServerConfig { map: Arc::new(map), bots: 150, ..ServerConfig::default() };
        let server = start_server_with(config, None).await;
        let player = Player::launch("frame-bench").await;
        player.page.goto(format!("{}?name=bench&autojoin=1", server.url)).await.expect("open");
        player.wait_for("connected", |d| d["state"] == "connected").await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let mut samples = Vec::new();
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let debug = player.debug().await;
            let players = debug["players"].as_array().map_or(0, Vec::len);
            let entities = players as u64 + debug["projectiles"].as_u64().unwrap_or(0) + debug["orbs"].as_u64().unwrap_or(0);
            samples.push((entities, debug["frame"].clone()));
        }
        let (entities, frame) = samples.last().cloned().expect("five samples");
        let mean_entities = samples.iter().map(|(e, _)| *e).sum::<u64>() as f64 / samples.len() as f64;
        println!(
            "frame_time: {:.0} entities on screen (mean of 5 samples; last {entities}); frame p50 {:.3} ms, p99 {:.3} ms, mean {:.3} ms over the last {} frames",
            mean_entities,
            frame["p50_ms"].as_f64().unwrap_or(f64::NAN),
            frame["p99_ms"].as_f64().unwrap_or(f64::NAN),
            frame["mean_ms"].as_f64().unwrap_or(f64::NAN),
            frame["frames"].as_u64().unwrap_or(0).min(300),
        );
        player.assert_no_console_errors().await;
        player.close().await;
        server.stop().await;
    });
}
