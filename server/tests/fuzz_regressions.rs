//! Every fuzz target's seed corpus (`fuzz/corpus/TARGET/`) and every crash the fuzzers ever found
//! (`fuzz/regressions/TARGET/`, one file per crash, named after what it broke) run through the
//! targets' bodies (`server::fuzzing`) in the ordinary test suite, uninstrumented: a fixed crash
//! stays fixed. `cargo xtask fuzz` runs the coverage-guided search itself.
//!
//! `cargo test -p arena-server --test fuzz_regressions -- --ignored write_seed_corpora` rewrites
//! the seed corpora from real traffic (a real server on loopback, a real recorded match).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use glam::Vec2;
use shared::protocol::{ClientMsg, InputCmd, JoinAuth, ViewTime};
use shared::room::{HostCmd, RoomRequest};
use shared::snapshot::NetId;
use shared::tick::Tick;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

#[test]
fn every_seed_and_every_past_crash_runs_clean_through_its_target() {
    for (target, run) in server::fuzzing::TARGETS {
        let seeds = files(&fuzz_dir().join("corpus").join(target));
        assert!(seeds.len() >= 3, "fuzz/corpus/{target}/ has {} seeds; run write_seed_corpora", seeds.len());
        let crashes = files(&fuzz_dir().join("regressions").join(target));
        for path in seeds.iter().chain(&crashes) {
            let data = std::fs::read(path).unwrap();
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(outcome.is_ok(), "{target} panicked on {}", path.display());
        }
        eprintln!("{target}: {} seeds, {} past crashes", seeds.len(), crashes.len());
    }
    // The seeds are still what they were made to be: a format change that stales them shows here.
    let seeds = fuzz_dir().join("corpus");
    let replay = std::fs::read(seeds.join("replay_file/match")).unwrap();
    let file = server::replay::format::parse(&replay).expect("the recorded match reads");
    let report = server::replay::verify(&file).expect("the recorded match re-simulates");
    assert!(report.hashes_checked >= 1, "{report:?}");
    for name in ["hello", "input", "chat"] {
        let bytes = std::fs::read(seeds.join("client_msg").join(name)).unwrap();
        shared::protocol::decode_client(&bytes).unwrap_or_else(|e| panic!("seed client_msg/{name} decodes: {e}"));
    }
    let welcome = std::fs::read(seeds.join("server_msg/frame-00")).unwrap();
    assert!(
        matches!(shared::protocol::decode_server(&welcome), Ok(shared::protocol::ServerMsg::Welcome(_))),
        "seed server_msg/frame-00 is a welcome of this protocol version"
    );
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = fuzz_dir().join("corpus").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

#[tokio::test]
#[ignore = "writes fuzz/corpus/: run by hand when the protocol changes"]
async fn write_seed_corpora() {
    use shared::protocol::encode;
    // Client messages: one of each kind.
    let input = InputCmd {
        seq: 7,
        ack: Tick(40),
        move_x: 0.6,
        move_y: -0.8,
        aim: 1.5,
        fire: true,
        view: ViewTime::from_render_tick(37.25),
    };
    let client = [
        ("hello", common::hello_to("ann", RoomRequest::QuickPlay, None, 42, Some(9)).into_data().to_vec()),
        (
            "hello-auth",
            encode(&ClientMsg::Hello {
                protocol: shared::protocol::PROTOCOL_VERSION,
                name: "bob".into(),
                resume: None,
                room: RoomRequest::Join { code: "ABCD".into() },
                host_key: Some([7; 16]),
                client_id: 1,
                auth: Some(JoinAuth::Password("pw".into())),
                guest: None,
            }),
        ),
        ("input", encode(&ClientMsg::Input(input))),
        ("ack", encode(&ClientMsg::Ack { tick: Tick(99) })),
        ("ping", encode(&ClientMsg::Ping { client_time: 1234.5 })),
        ("chat", encode(&ClientMsg::Chat { text: "gg wp".into() })),
        ("replay", encode(&ClientMsg::ReplayControl { paused: true, speed: 2.0, seek: Some(Tick(600)) })),
        ("host-kick", encode(&ClientMsg::Host(HostCmd::Kick { player: NetId(3) }))),
        ("host-map", encode(&ClientMsg::Host(HostCmd::SetMap { map: "duel".into() }))),
        ("host-bots", encode(&ClientMsg::Host(HostCmd::SetBots { bots: 4 }))),
    ];
    for (name, bytes) in client {
        write("client_msg", name, &bytes);
    }

    // Server messages and a replay: real ones, from a real server recording a short match.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fuzz-seeds-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = server::ServerConfig {
        map: common::duel_map(),
        bots: 2,
        replay_dir: Some(dir.clone()),
        ..server::ServerConfig::default()
    };
    let server = common::TestServer::start(config).await;
    let mut other = common::TestClient::join(&server, "other").await;
    let mut ws = common::connect_raw(&server).await;
    ws.send(common::hello("seed")).await.unwrap();
    let mut frames = Vec::new();
    let mut seq = 0;
    while frames.len() < 40 {
        let frame = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap().unwrap().unwrap();
        if frame.is_binary() {
            frames.push(frame.into_data().to_vec());
            seq += 1;
            let cmd = InputCmd { seq, move_x: 1.0, fire: seq % 4 == 0, ..InputCmd::default() };
            ws.send(tokio_tungstenite::tungstenite::Message::Binary(encode(&ClientMsg::Input(cmd)).into()))
                .await
                .unwrap();
        }
        other.input(Vec2::new(-1.0, 0.2), 2.0, true).await;
        other.chat("hello").await;
    }
    for (index, frame) in frames.iter().enumerate().filter(|(i, _)| [0, 1, 2, 3, 10, 20, 39].contains(i)) {
        write("server_msg", &format!("frame-{index:02}"), frame);
    }
    ws.close(None).await.unwrap();
    other.until(Duration::from_millis(300), |_| false).await;
    server.stop().await;
    let replay = files(&dir).into_iter().next().expect("a replay file");
    let bytes = std::fs::read(&replay).unwrap();
    write("replay_file", "match", &bytes);
    write("replay_file", "cut-tail", &bytes[..bytes.len() * 2 / 3]);
    let sample =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/replays/sample.arenareplay")).unwrap();
    write("replay_file", "sample-head", &sample[..8192.min(sample.len())]);

    // Maps: the shipped ones.
    for path in files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/maps")) {
        if path.extension().is_some_and(|e| e == "json") {
            write("map_json", path.file_name().unwrap().to_str().unwrap(), &std::fs::read(&path).unwrap());
        }
    }

    // HTTP bodies: the first byte picks the endpoint (see `server::fuzzing::http_json`).
    let bodies: [(&str, u8, &str); 7] = [
        ("create-room", 0, r#"{"name":"Friday","public":false,"map":"open","bots":3,"max_players":8}"#),
        ("admin-kick", 1, r#"{"player":3,"message":"be nice"}"#),
        ("admin-close", 2, r#"{"message":"closing for the night","room":"ABCD"}"#),
        ("admin-bots", 3, r#"{"bots":4}"#),
        ("admin-ban", 4, r#"{"ip":"2001:db8::1","reason":"spam"}"#),
        (
            "fleet-report",
            5,
            r#"{"server":"gs-1","url":"https://play.example/gs/1/","max_rooms":8,"draining":false,"rooms":[]}"#,
        ),
        ("lobby-join", 6, r#"{"name":"ann","code":"ABCD","server":"gs-1"}"#),
    ];
    for (name, endpoint, body) in bodies {
        let mut bytes = vec![endpoint];
        bytes.extend_from_slice(body.as_bytes());
        write("http_json", name, &bytes);
    }
}
