//! Replays end to end: a real server records a match played over WebSockets; the file
//! re-simulates to the same state hashes; damage is reported, divergence is pinpointed, a
//! SIGKILLed server loses at most the last second, and the shipped sample still verifies.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{TestClient, TestServer};
use glam::Vec2;
use server::ServerConfig;
use server::replay::format::{self, Op, TailStatus};

fn temp_dir(label: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("replays-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn only_file(dir: &Path) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files.into_iter().next().unwrap()
}

#[tokio::test]
async fn a_recorded_match_re_simulates_to_the_same_hashes() {
    let dir = temp_dir("match");
    let config = ServerConfig { bots: 6, replay_dir: Some(dir.clone()), ..ServerConfig::default() };
    let server = TestServer::start(config).await;
    let mut a = TestClient::join(&server, "alpha").await;
    let mut b = TestClient::join(&server, "beta").await;
    for i in 0..90 {
        let angle = i as f32 * 0.1;
        // Alpha claims to see the others a little in the past (as the browser does): its shots
        // are lag compensated, and the replay must re-simulate them identically.
        let seen = shared::protocol::ViewTime::from_render_tick(f64::from(a.latest_tick().0) - 2.7);
        a.input_seen(Vec2::new(angle.cos(), angle.sin()), angle, i % 3 == 0, seen).await;
        b.input(Vec2::new(-1.0, 0.3), 1.0, true).await;
        a.next_snapshot().await;
        b.next_snapshot().await;
    }
    a.chat("gg").await;
    b.ws.close(None).await.unwrap();
    a.until(Duration::from_millis(500), |_| false).await;
    server.stop().await;

    let path = only_file(&dir);
    let file = format::read(std::fs::File::open(&path).unwrap()).unwrap();
    assert_eq!(file.tail, TailStatus::Clean);
    let ops: Vec<&Op> = file.records.iter().flat_map(|r| &r.ops).collect();
    assert_eq!(ops.iter().filter(|op| matches!(op, Op::Join { bot: true, .. })).count(), 6);
    assert!(ops.iter().any(|op| matches!(op, Op::Join { name, bot: false, .. } if name == "alpha")));
    assert!(ops.iter().filter(|op| matches!(op, Op::Input { .. })).count() >= 150);
    assert!(ops.iter().any(|op| matches!(op, Op::Input { cmd, .. } if cmd.fire && cmd.view.is_some())));
    let bits = |cmd: &shared::protocol::InputCmd| [cmd.move_x.to_bits(), cmd.move_y.to_bits(), cmd.aim.to_bits()];
    // The server records controls as the simulation took them: quantized (format 6 packs steps).
    let off_step: Vec<_> =
        ops.iter().filter(|op| matches!(op, Op::Input { cmd, .. } if bits(cmd) != bits(&cmd.quantized()))).collect();
    assert!(off_step.is_empty(), "inputs recorded off their steps: {off_step:?}");
    assert!(ops.iter().any(|op| matches!(op, Op::Chat { text, .. } if text == "gg")));
    assert!(ops.iter().any(|op| matches!(op, Op::Leave { .. })), "beta's leave is recorded");
    let report = server::replay::verify(&file).expect("re-simulation matches");
    assert!(report.hashes_checked >= 2, "{report:?}");
    let info = server::replay::info(&file);
    assert!(info.players.iter().any(|p| p.name == "beta" && !p.present));
    assert!(info.players.iter().any(|p| p.name == "alpha"));
    assert_eq!(info.chat_lines, 1);

    // Change one recorded input and re-seal its frame: verify names the first divergent tick.
    let mut tampered = file.records.clone();
    let (index, tick) = tampered
        .iter_mut()
        .enumerate()
        .find_map(|(index, record)| {
            record.ops.iter_mut().find_map(|op| match op {
                Op::Input { cmd, .. } if cmd.move_x != 0.0 => {
                    cmd.move_x = -cmd.move_x;
                    Some(())
                }
                _ => None,
            })?;
            Some((index, record.tick))
        })
        .unwrap();
    let bytes = format::write_all(&file.header, &tampered);
    let divergence = server::replay::verify(&format::parse(&bytes).unwrap()).unwrap_err();
    let next_hash_tick = tampered[index..].iter().find(|r| r.hash.is_some()).unwrap().tick;
    assert!(divergence.tick >= tick && divergence.tick <= next_hash_tick, "{divergence} (tampered at {tick})");
}

#[test]
fn the_sample_replay_still_verifies() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/replays/sample.arenareplay");
    let file = format::read(std::fs::File::open(&path).expect("assets/replays/sample.arenareplay")).unwrap();
    assert_eq!(file.tail, TailStatus::Clean);
    let report = server::replay::verify(&file).unwrap_or_else(|d| {
        panic!("the rules changed in a way that breaks old replays ({d}); bump replay::format::FORMAT_VERSION and regenerate the sample with `cargo xtask record-sample`")
    });
    assert!(report.ticks >= 60 * 110, "about two minutes: {report:?}");
    let info = server::replay::info(&file);
    assert!(info.players.len() >= 30, "about 32 players: {}", info.players.len());
}

/// `replay verify` on `path`: (exit code, stdout, stderr).
fn verify(path: &Path) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_arena-server"))
        .env("ARENA_NO_DATABASE", "true")
        .args(["replay", "verify"])
        .arg(path)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

/// Starts the real server recording into `dir` and one headless player in Main (an empty room
/// does not tick); returns both and the server's port once the recording exists.
fn start_recording(dir: &Path) -> (std::process::Child, std::process::Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_arena-server"))
        .env("ARENA_NO_DATABASE", "true")
        .args(["--bind", "127.0.0.1:0", "--bots", "8", "--no-lan", "--replay-dir"])
        .arg(dir)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("http://localhost:").nth(1) {
                let _ = tx.send(rest.chars().take_while(char::is_ascii_digit).collect::<String>());
            }
        }
    });
    let port = rx.recv_timeout(Duration::from_secs(20)).expect("server started");
    let before = std::fs::read_dir(dir).unwrap().count();
    let player = Command::new(env!("CARGO_BIN_EXE_arena-server"))
        .env("ARENA_NO_DATABASE", "true")
        .args(["bots", "--url", &format!("ws://127.0.0.1:{port}/ws"), "--count", "1", "--seconds", "30"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The recording starts with the first player: wait for its file.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::fs::read_dir(dir).unwrap().count() == before {
        assert!(std::time::Instant::now() < deadline, "no replay file 20 s after a player joined");
        std::thread::sleep(Duration::from_millis(10));
    }
    (child, player, port)
}

#[test]
fn sigkill_loses_at_most_half_a_second_verify_says_how_much_was_checked_and_a_restart_is_clean() {
    let dir = temp_dir("sigkill");
    let (mut child, mut player, _) = start_recording(&dir);
    let started = std::time::Instant::now();
    std::thread::sleep(Duration::from_millis(3000));
    child.kill().unwrap(); // SIGKILL: no chance to flush.
    let ran = started.elapsed().as_secs_f64();
    let _ = child.wait();
    let _ = player.kill();
    let _ = player.wait();
    let path = only_file(&dir);
    let file = format::read(std::fs::File::open(&path).unwrap()).unwrap();
    let last_tick = file.records.last().map_or(0, |r| r.tick);
    // Frames of six ticks, flushed 0.4 s after the first unflushed one; 10 ticks of slack for the file appearing a little after
    // the match's first tick.
    assert!(
        f64::from(last_tick) >= (ran - 0.5) * 60.0 - 10.0,
        "lost more than half a second: {last_tick} ticks after {ran:.2} s"
    );
    // Killed mid-write, the last record may be cut: verified up to it (2), or whole (0).
    let (code, out, err) = verify(&path);
    match file.tail {
        TailStatus::Clean => assert_eq!((code, out.starts_with("ok:")), (0, true), "{out}{err}"),
        TailStatus::Truncated { .. } => assert_eq!((code, out.starts_with("cut:")), (2, true), "{out}{err}"),
        TailStatus::Corrupt { .. } => panic!("a SIGKILL left a corrupt record: {err}"),
    }

    // A restart with the same replay directory starts cleanly and records a new match.
    let (mut again, mut player, port) = start_recording(&dir);
    let health = Command::new(env!("CARGO_BIN_EXE_arena-server"))
        .env("ARENA_NO_DATABASE", "true")
        .args(["health", "--url", &format!("http://127.0.0.1:{port}/readyz")])
        .output()
        .unwrap();
    assert!(health.status.success(), "{}", String::from_utf8_lossy(&health.stderr));
    let _ = again.kill();
    let _ = again.wait();
    let _ = player.kill();
    let _ = player.wait();
    assert!(std::fs::read_dir(&dir).unwrap().count() >= 2, "the restarted server recorded its own match");
}

#[test]
fn verify_exits_0_for_a_whole_file_2_for_a_cut_tail_and_1_for_damage() {
    let dir = temp_dir("verify-statuses");
    let sample =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/replays/sample.arenareplay")).unwrap();
    let path = dir.join("copy.arenareplay");
    std::fs::write(&path, &sample).unwrap();
    let (code, out, err) = verify(&path);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("ok:") && out.contains("the whole file"), "{out}");

    // Cut inside the last record: what precedes it verifies, and the status says so.
    std::fs::write(&path, &sample[..sample.len() - 3]).unwrap();
    let (code, out, err) = verify(&path);
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.starts_with("cut:") && out.contains("truncated"), "{out}");

    // One bit flipped halfway: damaged, whatever verified before it.
    let mut flipped = sample.clone();
    flipped[sample.len() / 2] ^= 0x10;
    std::fs::write(&path, &flipped).unwrap();
    let (code, out, err) = verify(&path);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("damaged") && err.contains("corrupt record at byte"), "{err}");

    // Not a replay at all: a clear error and 1.
    std::fs::write(&path, b"definitely not a replay").unwrap();
    let (code, _, err) = verify(&path);
    assert_eq!(code, 1);
    assert!(err.contains("not an Arena replay"), "{err}");
    let output = Command::new(env!("CARGO_BIN_EXE_arena-server"))
        .env("ARENA_NO_DATABASE", "true")
        .args(["replay", "info"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_new_recording_deletes_the_oldest_replays_beyond_the_limit() {
    let dir = temp_dir("retention");
    for i in 0..5 {
        std::fs::write(dir.join(format!("match-OLD{i}-{i}.arenareplay")), vec![0u8; 100]).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    let retention = server::replay::retention::Retention { max_files: 3, max_bytes: u64::MAX };
    let config = ServerConfig { replay_dir: Some(dir.clone()), replay_retention: retention, ..ServerConfig::default() };
    let server = TestServer::start(config).await;
    let mut a = TestClient::join(&server, "alpha").await;
    a.next_snapshot().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let names = loop {
        let mut names: Vec<String> =
            std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect();
        names.sort();
        if names.len() <= 3 || tokio::time::Instant::now() > deadline {
            break names;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.iter().any(|n| !n.contains("OLD")), "the new recording is kept: {names:?}");
    assert!(
        !names.iter().any(|n| n.contains("OLD0") || n.contains("OLD1") || n.contains("OLD2")),
        "oldest first: {names:?}"
    );
    server.stop().await;
}
