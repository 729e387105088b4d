//! The fuzz targets' bodies: each takes arbitrary bytes through one of the server's (or the
//! client's) decoders the way real input reaches it, and panics only on a real defect (a decoder
//! that panics, or an encode/decode round trip that is not stable). `fuzz/` runs them under
//! libFuzzer (`cargo xtask fuzz`); `server/tests/fuzz_regressions.rs` runs every seed and every
//! crash ever found through them in the ordinary test suite.

use std::sync::Arc;

use shared::map::MapDef;
use shared::protocol::{self, ClientMsg, ServerMsg};
use shared::snapshot::{SnapshotReceiver, View, apply_delta};
use shared::tick::Tick;

use crate::sim::world::{World, WorldConfig};

/// A fuzz target's body.
pub type Target = fn(&[u8]);

/// The fuzz targets, by name (the names of `fuzz/fuzz_targets/*.rs` and `fuzz/corpus/*/`).
pub const TARGETS: [(&str, Target); 5] = [
    ("client_msg", client_msg),
    ("server_msg", server_msg),
    ("replay_file", replay_file),
    ("map_json", map_json),
    ("http_json", http_json),
];

/// A client's WebSocket message, as the server's reader decodes and checks it: decoding never
/// panics, inputs are validated, and whatever decodes re-encodes to bytes that decode to the
/// same bytes again (compared as bytes: NaN is not equal to itself).
pub fn client_msg(data: &[u8]) {
    let Ok(message) = protocol::decode_client(data) else { return };
    if let ClientMsg::Input(cmd) = &message {
        let _ = cmd.validate();
    }
    if let ClientMsg::Hello { name, .. } = &message {
        let clean = protocol::sanitize_name(name);
        assert!(clean.len() <= 64, "a sanitized name of {} bytes", clean.len());
    }
    let once = protocol::encode(&message);
    let again = protocol::decode_client(&once).expect("an encoded message decodes");
    assert_eq!(protocol::encode(&again), once, "round trip is not stable for {message:?}");
}

/// A server message as the browser client takes it: decoded, and a snapshot's delta applied on
/// a fresh receiver and on a baseline with a few entities (the client's decode path).
pub fn server_msg(data: &[u8]) {
    let Ok(message) = protocol::decode_server(data) else { return };
    let once = protocol::encode(&message);
    let again = protocol::decode_server(&once).expect("an encoded message decodes");
    assert_eq!(protocol::encode(&again), once, "round trip is not stable");
    if let ServerMsg::Snapshot(snapshot) = message {
        let mut receiver = SnapshotReceiver::new();
        let _ = receiver.apply(snapshot.tick, snapshot.baseline, &snapshot.delta);
        let _ = receiver.apply(snapshot.tick.next(), Some(snapshot.tick), &snapshot.delta);
        let baseline = baseline_view();
        let mut out = View::default();
        let _ = apply_delta(snapshot.tick, Some(&baseline), &snapshot.delta, &mut out);
    }
}

/// A small view with two players and an orb, to apply fuzzed deltas against.
fn baseline_view() -> View {
    use shared::snapshot::{EntityState, FLAG_ALIVE, NetId, OrbNet, PlayerNet};
    View {
        entities: vec![
            (NetId(1), EntityState::Player(PlayerNet { x: 100, y: 200, aim: 3, hp: 100, score: 5, flags: FLAG_ALIVE })),
            (NetId(2), EntityState::Player(PlayerNet { x: 900, y: 20, aim: 0, hp: 40, score: 0, flags: 0 })),
            (NetId(7), EntityState::Orb(OrbNet { x: 5, y: 5, value: 2 })),
        ],
    }
}

/// A replay file as `replay verify`, `replay info` and the replay server read it: the tolerant
/// reader never panics, and a file that reads re-simulates (or reports a divergence) without
/// panicking.
pub fn replay_file(data: &[u8]) {
    let Ok(file) = crate::replay::format::parse(data) else { return };
    let _ = crate::replay::verify(&file);
    let _ = crate::replay::info(&file);
}

/// A map file as `--map` and the map catalog load it: a map that validates can be played (a
/// world is built on it and runs a second with bots) without panicking.
pub fn map_json(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(map) = MapDef::from_json(text) else { return };
    let mut world = World::new(Arc::new(map), WorldConfig::default());
    for _ in 0..3 {
        world.add_player("bot".to_string(), true);
    }
    for _ in 0..30 {
        world.step();
    }
    assert!(world.tick == Tick(30));
}

/// The HTTP API's JSON bodies, through the types and checks their handlers use: the first byte
/// picks the endpoint, the rest is the body.
pub fn http_json(data: &[u8]) {
    let Some((&endpoint, body)) = data.split_first() else { return };
    match endpoint % 7 {
        0 => {
            if let Ok(settings) = serde_json::from_slice::<shared::room::RoomSettings>(body) {
                let maps = crate::maps::MapCatalog::with_default(Arc::new(MapDef::open("open", 1000.0, 0)));
                let _ = crate::room::registry::check_settings(&settings, &maps, 16);
            }
        }
        1 => {
            if let Ok(kick) = serde_json::from_slice::<crate::admin::api::KickRequest>(body) {
                let _ = kick.message.as_deref().and_then(crate::room::ops::clean_message);
            }
        }
        2 => {
            if let Ok(message) = serde_json::from_slice::<crate::admin::api::MessageRequest>(body) {
                let _ = message.message.as_deref().and_then(crate::room::ops::clean_message);
            }
        }
        3 => {
            let _ = serde_json::from_slice::<crate::admin::api::BotsRequest>(body);
        }
        4 => {
            if let Ok(ban) = serde_json::from_slice::<crate::admin::api::BanRequest>(body) {
                let _ = ban.ip.trim().parse::<std::net::IpAddr>();
                let _ = ban.reason.as_deref().and_then(crate::room::ops::clean_message);
            }
        }
        5 => {
            if let Ok(report) = serde_json::from_slice::<crate::fleet::Report>(body) {
                let _ = report.check();
            }
        }
        _ => {
            let _ = serde_json::from_slice::<crate::fleet::lobby::PlayerRequest>(body);
        }
    }
}
