//! One schema for flags, `ARENA_*` environment variables and a TOML file, with that precedence:
//! `arena-server config` shows each value and where it came from, the server runs with them,
//! and unknown keys, unknown variables and bad values are errors that name the key and source.

mod common;

use std::process::Command;

fn dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("config-tests");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the binary with `args` and `env` (and no other ARENA_ variables); (exit ok, stdout, stderr).
fn run(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_arena-server"));
    command.args(args).env("RUST_BACKTRACE", "0");
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("ARENA_")) {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    let out = command.output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

fn line<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines().find(|l| l.starts_with(&format!("{key} = "))).unwrap_or_else(|| panic!("no {key} in:\n{text}"))
}

#[test]
fn flags_beat_the_environment_which_beats_the_file_which_beats_the_defaults() {
    let file = dir().join("layers.toml");
    std::fs::write(&file, "tick_hz = 30\nbots = 3\nmax_rooms = 9\nallowed_origins = [\"https://a.example\"]\n")
        .unwrap();
    let path = file.to_str().unwrap();
    let (ok, out, err) = run(&["config", "--config", path, "--max-rooms", "7"], &[("ARENA_BOTS", "5")]);
    assert!(ok, "{err}");
    assert_eq!(line(&out, "tick_hz"), format!("tick_hz = 30  # file {path}"));
    assert_eq!(line(&out, "bots"), "bots = 5  # env ARENA_BOTS");
    assert_eq!(line(&out, "max_rooms"), "max_rooms = 7  # flag");
    assert_eq!(line(&out, "snapshot_hz"), "snapshot_hz = 30  # default");
    assert_eq!(line(&out, "allowed_origins"), format!("allowed_origins = [\"https://a.example\"]  # file {path}"));
    // The printout is itself a valid config file.
    let printed = dir().join("printed.toml");
    std::fs::write(&printed, &out).unwrap();
    let (ok, again, err) = run(&["config", "--config", printed.to_str().unwrap()], &[]);
    assert!(ok, "the printed settings load again: {err}");
    assert!(line(&again, "bots").starts_with("bots = 5  # file"), "{again}");
    // Lists split on commas, switches take 1/yes/true, Kubernetes' service variables are not ours.
    let (ok, out, err) = run(
        &["config"],
        &[
            ("ARENA_ALLOWED_ORIGINS", "https://a.example,https://b.example"),
            ("ARENA_NO_LAN", "1"),
            ("ARENA_SERVICE_HOST", "10.0.0.1"),
            ("ARENA_PORT_8080_TCP", "tcp://10.0.0.1:8080"),
        ],
    );
    assert!(ok, "{err}");
    assert!(
        line(&out, "allowed_origins").starts_with("allowed_origins = [\"https://a.example\", \"https://b.example\"]"),
        "{out}"
    );
    assert!(line(&out, "no_lan").starts_with("no_lan = 1  # env ARENA_NO_LAN"), "{out}");
    // ARENA_CONFIG names the file too.
    let (ok, out, _) = run(&["config"], &[("ARENA_CONFIG", path)]);
    assert!(ok && line(&out, "tick_hz").starts_with("tick_hz = 30"), "{out}");
}

#[test]
fn unknown_keys_unknown_variables_and_bad_values_are_errors_that_say_where() {
    let unknown = dir().join("unknown.toml");
    std::fs::write(&unknown, "tick_hzz = 30\n").unwrap();
    let (ok, _, err) = run(&["config", "--config", unknown.to_str().unwrap()], &[]);
    assert!(!ok && err.contains("unknown key `tick_hzz`") && err.contains("unknown.toml"), "{err}");
    let (ok, _, err) = run(&["config"], &[("ARENA_TICKHZ", "3")]);
    assert!(!ok && err.contains("ARENA_TICKHZ (did you mean ARENA_TICK_HZ?)"), "{err}");
    let (ok, _, err) = run(&["config"], &[("ARENA_TRUSTED_PROXY", "10.0.0.1")]);
    assert!(!ok && err.contains("did you mean ARENA_TRUSTED_PROXIES?"), "a flag's spelling is a near miss: {err}");
    let (ok, _, err) = run(&["config"], &[("ARENA_ROUND_SECOND", "3")]);
    assert!(!ok && err.contains("did you mean ARENA_ROUND_SECONDS?"), "{err}");
    // Another subcommand's setting is known, and a typo of it is caught the same way.
    let (ok, _, err) = run(&["lobby", "--help"], &[("ARENA_LOBBY_KEY", "x")]);
    assert!(ok, "{err}");
    let (ok, _, err) = run(&["lobby", "--help"], &[("ARENA_LOBBY_KY", "x")]);
    assert!(!ok && err.contains("did you mean ARENA_LOBBY_KEY?"), "{err}");
    // The peer harness's own variables are not the server's settings, and not a typo either.
    let (ok, _, err) = run(&["config"], &[("ARENA_SERVER", "x"), ("ARENA_LOADGEN", "y"), ("ARENA_DIR", ".")]);
    assert!(ok, "{err}");
    let bad = dir().join("bad.toml");
    std::fs::write(&bad, "tick_hz = \"fast\"\n").unwrap();
    let (ok, _, err) = run(&["config", "--config", bad.to_str().unwrap()], &[]);
    assert!(!ok && err.contains("'fast'") && err.contains("tick-hz") && err.contains("bad.toml"), "{err}");
    let (ok, _, err) = run(&["config"], &[("ARENA_TICK_HZ", "500")]);
    assert!(!ok && err.contains("--tick-hz must be 1..=240, got 500"), "{err}");
    let table = dir().join("table.toml");
    std::fs::write(&table, "[server]\ntick_hz = 30\n").unwrap();
    let (ok, _, err) = run(&["config", "--config", table.to_str().unwrap()], &[]);
    assert!(!ok && err.contains("unknown key `server`"), "{err}");
}

#[tokio::test]
async fn the_server_runs_with_its_config_file() {
    let file = dir().join("serve.toml");
    std::fs::write(&file, "bind = \"127.0.0.1:0\"\nbots = 3\nno_replay = true\nno_lan = true\n").unwrap();
    let (mut child, port) = common::spawn_binary(&["--config", file.to_str().unwrap()], &[]);
    let client = common::TestClient::join_url(&format!("ws://127.0.0.1:{port}/ws"), "reader").await;
    let bots = client.welcome.roster.iter().filter(|r| r.bot).count();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(bots, 3, "bots = 3 from the file");
}

#[test]
fn secrets_are_never_printed_by_config_or_help() {
    let dir = dir();
    let file = dir.join("secret.toml");
    std::fs::write(&file, "join_token_secret = \"file-secret-of-at-least-32-bytes-long!!\"\n").unwrap();
    let env = [("ARENA_PASSWORD", "env-password-value"), ("ARENA_ADMIN_TOKEN", "ops=env-admin-token-value")];
    let (ok, out, err) = run(&["config", "--config", file.to_str().unwrap()], &env);
    assert!(ok, "{err}");
    for secret in ["env-password-value", "env-admin-token-value", "file-secret-of-at-least"] {
        assert!(!out.contains(secret) && !err.contains(secret), "{secret} printed:\n{out}{err}");
    }
    assert!(line(&out, "password").contains("\"<hidden>\""), "{out}");
    assert!(line(&out, "join_token_secret").contains("\"<hidden>\""), "{out}");
    let (_, help, _) = run(&["serve", "--help", "--config", file.to_str().unwrap()], &env);
    for secret in ["env-password-value", "env-admin-token-value", "file-secret-of-at-least"] {
        assert!(!help.contains(secret), "{secret} in --help:\n{help}");
    }
    assert!(help.contains("ARENA_PASSWORD"), "the variable is still named: {help}");
}

/// The environment is shared with the rest of the machine: a harness's `ARENA_MAIN`, a
/// deployment's `ARENA_VERSION` and `ARENA_ENV` are not typos of a setting, so the server, the
/// lobby and `config` start anyway and say which variables they ignore.
#[test]
fn variables_that_are_not_settings_are_warned_about_not_refused() {
    use std::io::BufRead;
    let env = [
        ("ARENA_MAIN", "/work/main"),
        ("ARENA_VERSION", "1.2.3"),
        ("ARENA_ENV", "staging"),
        ("ARENA_LOBBY_KEY", "4f0c2a9d81e7b35c6a0f9e2d71b84c3a"),
    ];
    let (ok, out, err) = run(&["config"], &env);
    assert!(ok, "{err}");
    assert!(err.contains("ARENA_ENV, ARENA_MAIN, ARENA_VERSION"), "config names them: {err}");
    assert!(out.contains("tick_hz = "), "{out}");
    let (ok, _, err) = run(&["lobby", "--help"], &env);
    assert!(ok, "the lobby's command line too: {err}");
    for args in [
        &["--bind", "127.0.0.1:0", "--no-replay", "--no-lan", "--no-database"][..],
        &["lobby", "--bind", "127.0.0.1:0"][..],
    ] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_arena-server"));
        command.args(args).env("RUST_BACKTRACE", "0").env("RUST_LOG", "info").stdout(std::process::Stdio::null());
        command.stderr(std::process::Stdio::piped());
        for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("ARENA_")) {
            command.env_remove(name);
        }
        command.envs(env);
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut seen = Vec::new();
        let (mut warned, mut serving) = (false, false);
        while !(warned && serving) {
            match rx.recv_timeout(std::time::Duration::from_secs(20)) {
                Ok(line) => {
                    warned |= line.contains("name no setting") && line.contains("ARENA_ENV, ARENA_MAIN, ARENA_VERSION");
                    serving |= line.contains("://localhost:");
                    seen.push(line);
                }
                Err(_) => break,
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            warned && serving,
            "`arena-server {}` started and warned; it printed:\n{}",
            args.join(" "),
            seen.join("\n")
        );
    }
}

/// Runs the binary until it exits (10 s at most, then it is killed and the test fails: a secret
/// that should have been refused started a server); (exit ok, stderr).
fn run_to_exit(args: &[&str]) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_arena-server"));
    command.args(args).env("RUST_BACKTRACE", "0").stdout(std::process::Stdio::null());
    command.stderr(std::process::Stdio::piped());
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("ARENA_")) {
        command.env_remove(name);
    }
    let mut child = command.spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`arena-server {}` was still running after 10 s", args.join(" "));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status.success(), stderr)
}

/// The placeholders the Agones manifests used to ship passed the length checks, so a fleet
/// deployed as shipped ran with published secrets: the lobby, the servers and the admin API
/// refuse them (and never repeat them), and no manifest ships a Secret.
#[test]
fn placeholder_secrets_are_refused_and_no_manifest_ships_one() {
    let join_secret = "REPLACE-WITH-A-RANDOM-SECRET-OF-32-BYTES-OR-MORE";
    let lobby_key = "REPLACE-WITH-A-RANDOM-KEY";
    let bind = ["--bind", "127.0.0.1:0", "--no-lan"];
    let cases: [(Vec<&str>, &str); 5] = [
        (vec!["--join-token-secret", join_secret], "--join-token-secret"),
        (vec!["--admin-token", "ops=changeme-changeme-changeme"], "--admin-token"),
        (
            vec!["--lobby-url", "http://127.0.0.1:9", "--lobby-key", lobby_key, "--public-url", "http://x/"],
            "--lobby-key",
        ),
        (vec!["lobby", "--bind", "127.0.0.1:0", "--lobby-key", lobby_key], "--lobby-key"),
        (
            vec![
                "lobby",
                "--bind",
                "127.0.0.1:0",
                "--lobby-key",
                "a-real-random-lobby-key-4f9c2e81",
                "--join-token-secret",
                join_secret,
            ],
            "--join-token-secret",
        ),
    ];
    for (args, flag) in cases {
        let mut all: Vec<&str> = args.clone();
        if all[0] != "lobby" {
            all.extend(bind);
        }
        let (ok, stderr) = run_to_exit(&all);
        assert!(!ok, "{all:?} started: {stderr}");
        assert!(stderr.contains(&format!("{flag} looks like a placeholder")), "{all:?}: {stderr}");
        for secret in [join_secret, lobby_key, "changeme-changeme"] {
            assert!(!stderr.contains(secret), "the refusal repeats the secret: {stderr}");
        }
    }
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/agones");
    let mut manifests = 0;
    for entry in std::fs::read_dir(&deploy).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            manifests += 1;
            let text = std::fs::read_to_string(&path).unwrap();
            for document in text.split("\n---") {
                let kind = document.lines().find_map(|l| l.strip_prefix("kind: ")).unwrap_or("");
                assert_ne!(kind.trim(), "Secret", "{} ships a Secret: its values would be published", path.display());
            }
            assert!(!text.contains("REPLACE-WITH"), "{} ships a placeholder", path.display());
        }
    }
    assert!(manifests >= 3, "the Agones manifests are in {}", deploy.display());
}

/// The Agones manifests put the servers and the lobby behind an ingress: both trust the pod
/// network it runs in (a network, which `--trusted-proxy` takes), and the command line takes
/// what they pass and refuses what is neither an address nor a network.
#[test]
fn the_agones_manifests_trust_their_ingress_by_network() {
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/agones");
    for manifest in ["fleet.yaml", "lobby.yaml"] {
        let text = std::fs::read_to_string(deploy.join(manifest)).unwrap();
        let trusted: Vec<&str> =
            text.lines().filter_map(|line| line.trim().strip_prefix("- --trusted-proxy=")).collect();
        assert!(!trusted.is_empty(), "{manifest} runs behind an ingress without --trusted-proxy");
        for value in trusted {
            let net = server::config::parse_proxy_net(value).unwrap_or_else(|e| panic!("{manifest}: {e}"));
            assert!(net.prefix_len() < net.max_prefix_len(), "{manifest}: {value} is one address, not the pod network");
            // The binary takes it (its parser runs before the secret's check refuses to start).
            let flag = format!("--trusted-proxy={value}");
            let (ok, stderr) =
                run_to_exit(&[&flag, "--bind", "127.0.0.1:0", "--no-lan", "--join-token-secret", "short"]);
            assert!(!ok && stderr.contains("--join-token-secret"), "{flag} was not taken: {stderr}");
        }
    }
    let (ok, stderr) = run_to_exit(&["--trusted-proxy=10.0.0.0/33", "--bind", "127.0.0.1:0"]);
    assert!(!ok && stderr.contains("--trusted-proxy"), "a bad network was taken: {stderr}");
}
