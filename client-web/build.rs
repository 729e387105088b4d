//! Computes the movement-rule probe on the build host (natively) and hands it to the WASM tests,
//! which recompute it in the browser: equal values prove prediction is bit-exact across targets.

fn main() {
    let map_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/maps/arena.json");
    println!("cargo:rerun-if-changed={map_path}");
    println!("cargo:rerun-if-changed=../shared/src");
    let text = std::fs::read_to_string(map_path).expect("read the arena map");
    let map = shared::map::MapDef::from_json(&text).expect("valid arena map");
    let probe = shared::rules::movement_probe(&map, 2000);
    println!("cargo:rustc-env=ARENA_NATIVE_MOVEMENT_PROBE={probe}");
}
