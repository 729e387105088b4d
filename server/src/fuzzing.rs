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
pub const TARGETS: [(&str, Target); 10] = [
    ("client_msg", client_msg),
    ("server_msg", server_msg),
    ("replay_file", replay_file),
    ("map_json", map_json),
    ("http_json", http_json),
    ("join_token", join_token),
    ("http_headers", http_headers),
    ("mdns_announcement", mdns_announcement),
    ("room_messages", room_messages),
    ("replay_seek", replay_seek),
];

/// The secret the `join_token` target's server verifies with (its seeds are signed with it).
pub const FUZZ_TOKEN_SECRET: &str = "fuzz-join-token-secret-of-32-bytes-or-more";

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

/// A join token as a hello carries it, through the gate a fleet server admits with (`iss`,
/// `aud` and its own name in `aud`, and a `jti`, required), twice: verification never panics,
/// what it admits has a clean, bounded name, and a single-use token's second use is told apart.
/// A first byte of `{` instead reads the rest as a JWKS file (`--join-token-jwks`).
pub fn join_token(data: &[u8]) {
    use crate::auth::{Gate, JoinTokenKeys};
    if data.first() == Some(&b'{') {
        let Ok(text) = std::str::from_utf8(data) else { return };
        let _ = JoinTokenKeys::from_jwks(text, None, None).map(|keys| keys.verify("a.b.c", Some("gs-1")));
        return;
    }
    let keys = JoinTokenKeys::from_secret(FUZZ_TOKEN_SECRET, Some("lobby".into()), Some("arena".into()))
        .expect("the fuzz secret is a secret");
    let gate = Gate { password: None, tokens: Some(keys), ..Gate::default() };
    let token = String::from_utf8_lossy(data).into_owned();
    let auth = shared::protocol::JoinAuth::Token(token);
    if let Ok(admission) = gate.admit(Some(&auth), Some("gs-1")) {
        let name = format!("{admission:?}");
        assert!(name.len() < 8192, "an admission of {} bytes", name.len());
        assert!(!admission.spent_before, "a first use is a first use");
        let again = gate.admit(Some(&auth), Some("gs-1")).expect("the same token verifies again");
        assert!(again.spent_before, "a single-use token's second use is known");
    }
}

/// Request headers and a path as a peer sends them, through what the server reads from them:
/// the client's address behind trusted proxies (`X-Forwarded-For`), the `Origin` check and the
/// base path. The first line is the path, then `name: value` lines.
pub fn http_headers(data: &[u8]) {
    use axum::http::{HeaderMap, HeaderName, HeaderValue};
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let path = lines.next().unwrap_or("/").trim_end_matches('\r');
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some((name, value)) = line.trim_end_matches('\r').split_once(':') else { continue };
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name.trim()), HeaderValue::try_from(value.trim())) {
            headers.append(name, value);
        }
    }
    let trusted: Vec<crate::config::ProxyNet> = vec!["127.0.0.1/32".parse().unwrap(), "10.0.0.0/8".parse().unwrap()];
    let peer: std::net::SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let client = crate::net::http::client_addr(&trusted, peer, &headers);
    assert!(
        client == peer || !crate::config::is_trusted_proxy(&trusted, client.ip()),
        "a trusted proxy taken for the client: {client}"
    );
    let _ = crate::net::http::origin_allowed(
        &headers,
        &["https://games.example".to_string()],
        Some("https://games.example/gs/pod-1/"),
    );
    let _ = crate::net::http::origin_allowed(&headers, &[], None);
    if let Ok(uri) = path.parse::<axum::http::Uri>() {
        let mut request = axum::extract::Request::new(axum::body::Body::empty());
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        let under_base = request.uri().path().starts_with("/gs/pod-1");
        let stripped = crate::net::http::strip_base_path("/gs/pod-1/", request);
        // A path under the base path becomes a route's path; any other (`*`, `/x`) passes as it is.
        assert!(!under_base || stripped.uri().path().starts_with('/'), "{}", stripped.uri());
    }
}

/// A hostile mDNS announcement (`_arena._tcp`) as the LAN listing takes it: the port in the
/// first two bytes, then the address count and addresses (a kind byte, 4 or 16 bytes each),
/// then the full name and `key=value` TXT lines. What becomes a peer has a clean, bounded name,
/// an http(s) URL on a LAN address and bounded numbers.
pub fn mdns_announcement(data: &[u8]) {
    use std::net::IpAddr;
    let Some((port, rest)) = data.split_first_chunk::<2>() else { return };
    let port = u16::from_le_bytes(*port);
    let Some((&count, mut rest)) = rest.split_first() else { return };
    let mut addresses = Vec::new();
    for _ in 0..count % 8 {
        let Some((&kind, tail)) = rest.split_first() else { break };
        if kind % 2 == 0 {
            let Some((octets, tail)) = tail.split_first_chunk::<4>() else { break };
            addresses.push(IpAddr::from(*octets));
            rest = tail;
        } else {
            let Some((octets, tail)) = tail.split_first_chunk::<16>() else { break };
            addresses.push(IpAddr::from(*octets));
            rest = tail;
        }
    }
    let text = String::from_utf8_lossy(rest);
    let mut lines = text.split('\n');
    let fullname = lines.next().unwrap_or("").to_string();
    let properties: Vec<(String, String)> =
        lines.filter_map(|line| line.split_once('=').map(|(k, v)| (k.to_string(), v.to_string()))).collect();
    let lookup = |key: &str| properties.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let announced = crate::lan::Announcement { fullname: &fullname, port, addresses: &addresses, text: &lookup };
    let own = format!("us.{}", crate::lan::SERVICE_TYPE);
    let Some(peer) = crate::lan::peer_from_announcement(&announced, &own, std::time::Instant::now()) else {
        return;
    };
    assert!(!peer.name.is_empty() && peer.name.len() <= 256, "a peer name of {} bytes", peer.name.len());
    assert!(!peer.name.chars().any(char::is_control), "control characters in {:?}", peer.name);
    assert!(peer.url.starts_with("http://") || peer.url.starts_with("https://"), "{}", peer.url);
    assert!(peer.rooms <= 1_000_000 && peer.players <= 1_000_000);
}

/// WebSocket frames from two players as the room takes them: each chunk is a selector byte
/// (bit 0: which player; bit 1: a tick and its snapshots after it), a length byte and the
/// frame's bytes, read by the connection's `Reader` (flood limit, decoding, validation) and
/// handed to the room, host commands included (the first player is the room's host). A
/// connection the reader closes leaves the room. Nothing panics, and the room's world stays in
/// its bounds.
pub fn room_messages(data: &[u8]) {
    use crate::net::kick::{ConnId, Kick};
    use crate::net::reader::{Reader, Step};
    use crate::room::{Room, RoomSetup, RoomStats, SimInput};
    use tokio_tungstenite::tungstenite::Message;
    let config = Arc::new(crate::config::ServerConfig { bots: 2, ..crate::config::ServerConfig::default() });
    let mut setup = RoomSetup::from_config(&config, shared::room::RoomCode::from_indices([1, 2, 3, 4]));
    setup.permanent = false;
    let host_key = setup.host_key;
    let mut room = Room::with_setup(config, setup, Arc::new(RoomStats::default()), None);
    let mut players = Vec::new();
    for index in 0..2u64 {
        let (outbox, receiver) = tokio::sync::mpsc::channel(64);
        let (reply, _answer) = tokio::sync::oneshot::channel();
        let (conn, kick) = (ConnId(index + 1), Kick::new());
        room.handle(SimInput::Join {
            conn,
            name: format!("p{index}"),
            resume: None,
            outbox,
            kick: kick.clone(),
            reply,
            spectator: false,
            host_key: (index == 0).then_some(host_key),
            client_id: index + 1,
            ip: None,
            seat_only: false,
            player: None,
        });
        players.push((conn, kick, Reader::new(), receiver, true));
    }
    let mut rest = data;
    let mut now = tokio::time::Instant::now();
    for _ in 0..256 {
        let Some((&[selector, length], tail)) = rest.split_first_chunk::<2>() else { break };
        let length = usize::from(length).min(tail.len());
        let (frame, tail) = tail.split_at(length);
        rest = tail;
        let (conn, kick, reader, receiver, open) = &mut players[usize::from(selector & 1)];
        if *open {
            now += std::time::Duration::from_millis(5);
            let frame = Some(Ok(Message::Binary(frame.to_vec().into())));
            match reader.frame(*conn, kick, frame, now) {
                Step::Room(input) => room.handle(input),
                Step::Close(reason) => {
                    room.handle(SimInput::Leave { conn: *conn, reason });
                    *open = false;
                }
                Step::Ping(_) | Step::Skip => {}
            }
        }
        while receiver.try_recv().is_ok() {}
        if selector & 2 != 0 {
            room.step();
            room.send_snapshots();
        }
    }
    room.step();
    room.send_snapshots();
    for player in room.world.players.values() {
        assert!(player.pos.is_finite(), "a player at {}", player.pos);
    }
}

/// A spectator's playback controls on the shipped sample replay (`replay serve`): each 4-byte
/// chunk is paused, a speed, a seek (or none) and how many ticks to run after it. A seek never
/// runs more than `MAX_SEEK_STEPS_PER_TICK` simulation ticks in one real tick, and playback
/// never goes past the recording's end.
pub fn replay_seek(data: &[u8]) {
    use crate::room::theater::{MAX_SEEK_STEPS_PER_TICK, Theater};
    static SAMPLE: std::sync::OnceLock<Arc<crate::replay::format::ReplayFile>> = std::sync::OnceLock::new();
    let file = SAMPLE.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/replays/sample.arenareplay");
        let bytes = std::fs::read(path).expect("the shipped sample replay");
        Arc::new(crate::replay::format::parse(&bytes).expect("the shipped sample reads"))
    });
    let config = Arc::new(crate::config::ServerConfig::default());
    let mut theater = Theater::new(file.clone(), config).expect("the sample plays");
    let total = theater.total_ticks();
    let stats = crate::room::RoomStats::default();
    for chunk in data.chunks_exact(4).take(8) {
        let speed = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0][usize::from(chunk[1] % 6)];
        let seek = (chunk[0] & 2 != 0).then(|| Tick(u32::from(u16::from_le_bytes([chunk[2], chunk[3]])) * 4));
        theater.handle(crate::room::SimInput::ReplayControl {
            conn: crate::net::kick::ConnId(1),
            paused: chunk[0] & 1 != 0,
            speed,
            seek,
        });
        for _ in 0..(chunk[0] >> 4) + 1 {
            let before = theater.status().tick.0;
            theater.tick();
            let after = theater.status().tick.0;
            if after >= before {
                assert!(after - before <= MAX_SEEK_STEPS_PER_TICK, "{} ticks in one real tick", after - before);
            }
            assert!(after <= total, "tick {after} past the end {total}");
            theater.send(&stats);
        }
    }
}
