//! Tests that run inside a real browser as WebAssembly (`cargo xtask test-web`, through
//! wasm-bindgen-test and headless Chromium).
#![cfg(target_arch = "wasm32")]

use glam::Vec2;
use shared::map::MapDef;
use shared::protocol::{InputCmd, OwnState};
use shared::tick::Tick;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn arena() -> MapDef {
    MapDef::from_json(include_str!("../../assets/maps/arena.json")).expect("valid map")
}

/// The movement rules give bit-identical results in WASM and natively (the value was computed
/// by the native build script), so the client's prediction replays exactly what the server ran.
#[wasm_bindgen_test]
fn movement_rules_are_bit_exact_in_wasm() {
    let in_wasm = shared::rules::movement_probe(&arena(), 2000);
    assert_eq!(in_wasm.to_string(), client_web::NATIVE_MOVEMENT_PROBE);
}

/// Prediction and reconciliation in WASM: replaying unacknowledged inputs from the server's
/// state reproduces the locally predicted position exactly.
#[wasm_bindgen_test]
fn reconciliation_is_exact_in_wasm() {
    let map = arena();
    let dt = 1.0 / 60.0;
    let start = map.spawns[0];
    let own =
        |pos, vel| OwnState { pos, vel, hp: 100, alive: true, respawn_tick: None, fire_cooldown: 0, score: 0, rank: 1 };
    let mut predictor = client_web::predict::Predictor::new();
    predictor.reconcile(&own(start, Vec2::ZERO), 0, dt, &map);
    let inputs: Vec<InputCmd> = (1..=40)
        .map(|seq| InputCmd {
            seq,
            ack: Tick::ZERO,
            move_x: 1.0,
            move_y: if seq > 20 { 0.5 } else { 0.0 },
            aim: 0.0,
            fire: false,
            view: None,
        })
        .collect();
    for input in &inputs {
        predictor.apply_local(*input, dt, &map);
    }
    let predicted = predictor.pos;
    let (mut pos, mut vel) = (start, Vec2::ZERO);
    for input in &inputs[..25] {
        shared::rules::step_player(
            &mut pos,
            &mut vel,
            shared::rules::MoveInput { dir: Vec2::new(input.move_x, input.move_y) },
            dt,
            &map,
        );
    }
    predictor.reconcile(&own(pos, vel), 25, dt, &map);
    assert_eq!(predictor.pos, predicted);
    assert_eq!(predictor.last_error, 0.0);
}

/// The socket URL follows the page's origin, so the client works from any machine on a LAN.
#[wasm_bindgen_test]
fn connects_back_to_the_host_that_served_the_page() {
    let host = web_sys::window().unwrap().location().host().unwrap();
    assert_eq!(client_web::server_url().unwrap(), format!("ws://{host}/ws"));
}
