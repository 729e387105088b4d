//! Bans and per-address join limits need a real non-loopback peer (loopback is exempt from
//! both), so this test runs the real binary inside a network namespace it creates, joined to
//! this one by a veth pair with private addresses (no LAN announcing; removed on drop), and plays
//! from outside it. The operator uses the `arena-server admin` command line throughout: the
//! banned player is closed with its own code, cannot come back, stays banned after a restart,
//! and gets back in once unbanned; past `--joins-per-minute-per-ip` an address is told to wait.
//! Needs root and `ip`; without them the test says why and skips.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::netns::ip;
use common::{TestClient, hello, read_until_closed};
use shared::protocol::DisconnectReason;

const OUTSIDE: &str = "10.231.7.1";
const INSIDE: &str = "10.231.7.2";
const PORT: u16 = 18091;
const TOKEN: &str = "ops=bans-test-secret-0123456789";

/// A namespace reached from here through a veth pair; removed on drop.
struct Namespace {
    name: String,
    outside_end: String,
}

impl Namespace {
    fn create() -> Result<Namespace, String> {
        let id = std::process::id() % 100_000;
        let ns = Namespace { name: format!("arena-bans-{id}"), outside_end: format!("abo{id}") };
        let inside_end = format!("abi{id}");
        ip(&["netns", "add", &ns.name])?;
        ip(&["link", "add", &ns.outside_end, "type", "veth", "peer", "name", &inside_end])?;
        ip(&["link", "set", &inside_end, "netns", &ns.name])?;
        ip(&["addr", "add", &format!("{OUTSIDE}/30"), "dev", &ns.outside_end])?;
        ip(&["link", "set", &ns.outside_end, "up"])?;
        ip(&["-n", &ns.name, "addr", "add", &format!("{INSIDE}/30"), "dev", &inside_end])?;
        ip(&["-n", &ns.name, "link", "set", &inside_end, "up"])?;
        ip(&["-n", &ns.name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
        let _ = ip(&["link", "del", &self.outside_end]);
    }
}

/// The server inside the namespace, stopped by its PID on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(ns: &str, dir: &std::path::Path) -> Server {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("server.log")).unwrap();
    let child = Command::new("ip")
        .env("ARENA_NO_DATABASE", "true")
        .args(["netns", "exec", ns, env!("CARGO_BIN_EXE_arena-server")])
        .args(["--bind", &format!("{INSIDE}:{PORT}"), "--no-lan", "--no-replay", "--joins-per-minute-per-ip", "5"])
        .arg("--bans-file")
        .arg(dir.join("bans.json"))
        .arg("--audit-log")
        .arg(dir.join("audit.log"))
        .env("ARENA_ADMIN_TOKEN", TOKEN)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start arena-server in the namespace");
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect_timeout(&format!("{INSIDE}:{PORT}").parse().unwrap(), Duration::from_millis(200))
        .is_err()
    {
        assert!(Instant::now() < deadline, "the server never listened; log: {}", log_of(dir));
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

fn log_of(dir: &std::path::Path) -> String {
    std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
}

/// `arena-server admin URL ARGS…` with the token in the environment: (success, stdout+stderr).
fn admin(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_arena-server"))
        .env("ARENA_NO_DATABASE", "true")
        .arg("admin")
        .arg(format!("http://{INSIDE}:{PORT}"))
        .args(args)
        .env("ARENA_ADMIN_TOKEN", TOKEN)
        .output()
        .expect("run arena-server admin");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn url() -> String {
    format!("ws://{INSIDE}:{PORT}/ws")
}

async fn refusal() -> (Option<DisconnectReason>, Option<u16>) {
    match TestClient::join_with(&url(), hello("again")).await {
        Ok(client) => panic!("admitted as {:?}", client.welcome.player_id),
        Err(ending) => (ending.reason, ending.close.map(|c| c.0)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_banned_address_is_closed_stays_out_across_restarts_and_join_floods_wait() {
    if let Some(why) = common::netns::unavailable(&["ip"]) {
        eprintln!("SKIPPED: {why}");
        return;
    }
    let ns = Namespace::create().expect("namespace and veth pair");
    let dir = std::env::temp_dir().join(format!("arena-bans-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let server = start_server(&ns.name, &dir);

    let mut player = TestClient::join_url(&url(), "cheater").await;
    let (ok, rooms) = admin(&["rooms"]);
    assert!(ok, "{rooms}");
    assert!(rooms.contains(&format!("\"ip\": \"{OUTSIDE}\"")), "the operator sees the player's address: {rooms}");

    let (ok, banned) = admin(&["ban", OUTSIDE, "--reason", "aimbot"]);
    assert!(ok, "{banned}");
    assert!(banned.contains("\"closed_connections\": 1"), "{banned}");
    let ending = read_until_closed(&mut player.ws).await;
    assert_eq!(ending.reason, Some(DisconnectReason::Banned), "{ending:?}");
    assert_eq!(ending.close.map(|c| c.0), Some(4017));
    assert_eq!(refusal().await, (Some(DisconnectReason::Banned), Some(4017)), "a banned address cannot come back");

    // Restarted, the server still knows the ban (from --bans-file).
    drop(server);
    let server = start_server(&ns.name, &dir);
    assert_eq!(refusal().await, (Some(DisconnectReason::Banned), Some(4017)), "the ban survives a restart");
    let (ok, bans) = admin(&["bans"]);
    assert!(ok && bans.contains("aimbot") && bans.contains("\"by\": \"ops\""), "{bans}");
    let (ok, lifted) = admin(&["unban", OUTSIDE]);
    assert!(ok, "{lifted}");

    // Unbanned: back in, up to the join rate (5 a minute, as a burst), then told to wait.
    for attempt in 1..=5 {
        let client = TestClient::join_with(&url(), hello("back"))
            .await
            .unwrap_or_else(|ending| panic!("join {attempt} refused: {ending:?}"));
        drop(client);
    }
    assert_eq!(refusal().await, (Some(DisconnectReason::JoinRateLimited), Some(4023)));

    // The audit log has the ban and the unban by the token's name, and not the token.
    let audit = std::fs::read_to_string(dir.join("audit.log")).unwrap();
    assert!(audit.contains("\"action\":\"ban\"") && audit.contains("\"action\":\"unban\""), "{audit}");
    assert!(audit.contains("\"who\":\"ops\"") && !audit.contains("bans-test-secret"), "{audit}");
    let (ok, wrong) = {
        let out = Command::new(env!("CARGO_BIN_EXE_arena-server"))
            .env("ARENA_NO_DATABASE", "true")
            .args(["admin", &format!("http://{INSIDE}:{PORT}"), "rooms"])
            .env("ARENA_ADMIN_TOKEN", "a-wrong-token-that-is-long")
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    assert!(!ok && wrong.contains("HTTP 401"), "a wrong token fails with the server's answer: {wrong}");
    assert!(!log_of(&dir).contains("bans-test-secret"), "the token is never logged");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
