//! `cargo xtask <command>`: Arena's build and test tooling (the xtask pattern: plain Rust, no
//! shell scripts, nothing to install beyond rustup and, for browser tests, Debian's Chromium).
//!
//! - `build-web [--dev]`: builds `client-web` for wasm32 and writes `dist/` (JS bindings via the
//!   `wasm-bindgen-cli-support` library, then the static files), which the server embeds.
//! - `run [ARGS...]`: `build-web`, then builds and starts the release server with ARGS.
//! - `test-web`: runs the client's wasm-bindgen tests in headless Chromium.
//! - `s1`: runs benchmark scenario S1 (fresh release server per run, the load generator, runs
//!   interleaved) and prints medians; see BENCHMARKS.md.
//! - `feel`: the netcode feel harness over RTT 0–300 ms, jitter and stalls (see BENCHMARKS.md).
//! - `record-sample`: regenerates `assets/replays/sample.arenareplay` (28 server bots and 4
//!   headless WebSocket bots, two minutes).
//! - `floors`: checks the import graph against ARCHITECTURE.md's "Floors" table (every arrow
//!   points down, no circle, no source file over 800 lines); `test` runs it too.
//! - `test`: installs what is missing (wasm32 target, Chromium), checks formatting and lints,
//!   builds everything and runs every test; ends with one `N passed, N failed` line.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

mod floors;

const WASM_TARGET: &str = "wasm32-unknown-unknown";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    std::env::set_current_dir(&root)?;
    match args.first().map(String::as_str) {
        Some("build-web") => build_web(&root, args.iter().any(|a| a == "--dev")),
        Some("run") => {
            build_web(&root, false)?;
            let mut command = cargo();
            // `cargo xtask run -- --bots 8` and `cargo xtask run --bots 8` both work.
            let server_args = match args.get(1).map(String::as_str) {
                Some("--") => &args[2..],
                _ => &args[1..],
            };
            command.args(["run", "--release", "-p", "arena-server", "--"]).args(server_args);
            let status = command.status().context("running the server")?;
            if !status.success() {
                bail!("server exited with {status}");
            }
            Ok(())
        }
        Some("test") => test_all(&root),
        Some("floors") => floors::run(&root),
        Some("fuzz") => {
            let mut seconds = 60u64;
            let mut only: Option<String> = None;
            let mut it = args[1..].iter();
            while let Some(flag) = it.next() {
                let value = it.next().with_context(|| format!("{flag} needs a value"))?;
                match flag.as_str() {
                    "--seconds" => seconds = value.parse().context("--seconds takes a whole number")?,
                    "--target" => only = Some(value.clone()),
                    other => bail!("unknown flag {other}"),
                }
            }
            fuzz(&root, seconds, only.as_deref()).map(|_| ())
        }
        Some("s1") => s1(&root, &args[1..]),
        Some("soak") => soak(&root, &args[1..]),
        Some("record-sample") => record_sample(&root),
        Some("static") => {
            build_web(&root, false)?;
            let path = build_static(&root, true)?;
            println!("{}", path.display());
            Ok(())
        }
        Some("feel") => {
            // The feel harness (benches/src/bin/feel.rs), in release, passing its flags on.
            run(cargo().args(["run", "--release", "-p", "arena-benches", "--bin", "feel", "--"]).args(&args[1..]))
        }
        Some("test-web") => {
            ensure_test_tools()?;
            let mut tally = Tally::default();
            if !test_web(&root, &mut tally)? {
                bail!("wasm tests failed");
            }
            Ok(())
        }
        // Used as cargo's runner for wasm32 test binaries (see `test_web`).
        Some("wasm-test-runner") => wasm_bindgen_cli::wasm_bindgen_test_runner::run_cli_with_args(
            std::iter::once("wasm-bindgen-test-runner".to_string()).chain(args[1..].iter().cloned()),
        ),
        _ => {
            eprintln!(
                "usage: cargo xtask <build-web [--dev] | run [SERVER ARGS...] | test | floors | test-web | static | record-sample | fuzz [--seconds 60] [--target NAME] | soak [--minutes 2] [--clients 100] [--json] | feel [--seconds 8] [--json] [--rtt MS | --like-browser] | s1 [--clients 50,100,200,400] [--runs 3] [--window 15] [--warmup 3]>"
            );
            std::process::exit(2);
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

fn cargo() -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string()));
    // A CI build is built once: incremental caches would only cost disk (gigabytes of it).
    if std::env::var_os("CI").is_some() {
        command.env("CARGO_INCREMENTAL", "0");
    }
    command
}

fn run(command: &mut Command) -> Result<()> {
    let status = command.status().with_context(|| format!("running {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed with {status}");
    }
    Ok(())
}

/// Adds the wasm32 target when this toolchain lacks it.
fn ensure_wasm_target() -> Result<()> {
    let installed = Command::new("rustup").args(["target", "list", "--installed"]).output();
    match installed {
        Ok(output) if String::from_utf8_lossy(&output.stdout).lines().any(|l| l.trim() == WASM_TARGET) => Ok(()),
        Ok(_) => {
            eprintln!("xtask: adding the {WASM_TARGET} target (one-time)");
            run(Command::new("rustup").args(["target", "add", WASM_TARGET]))
        }
        Err(_) => {
            eprintln!("xtask: rustup not found; assuming the {WASM_TARGET} target is available");
            Ok(())
        }
    }
}

const STATIC_TARGET: &str = "x86_64-unknown-linux-musl";
/// The C compiler for the static target (Debian's musl-tools).
const MUSL_GCC: &str = "/usr/bin/musl-gcc";

/// Builds the server as one static (musl) executable with the client embedded (the container
/// image's binary; also for copying onto any Linux host), checks that it has no dynamic loader
/// and that it runs, and returns its path. `release` for shipping; the test suite builds the
/// dev profile (faster, the same linking).
fn build_static(root: &Path, release: bool) -> Result<PathBuf> {
    let installed = Command::new("rustup").args(["target", "list", "--installed"]).output()?;
    if !String::from_utf8_lossy(&installed.stdout).lines().any(|l| l.trim() == STATIC_TARGET) {
        eprintln!("xtask: adding the {STATIC_TARGET} target (one-time)");
        run(Command::new("rustup").args(["target", "add", STATIC_TARGET]))?;
    }
    // ring (TLS and the admin client) compiles some C for the target: musl-gcc does that.
    if !Path::new(MUSL_GCC).exists() {
        eprintln!(
            "xtask: {MUSL_GCC} is missing (Debian package musl-tools, needed for the static build); installing it"
        );
        apt_install(&["musl-tools"]).with_context(|| {
            format!(
                "{MUSL_GCC} is needed for the static build: install it by hand with `sudo apt-get install musl-tools`"
            )
        })?;
    }
    let mut build = cargo();
    build.env("CC_x86_64_unknown_linux_musl", MUSL_GCC);
    build.args(["build", "-p", "arena-server", "--bin", "arena-server", "--target", STATIC_TARGET]);
    if release {
        build.arg("--release");
    }
    run(&mut build)?;
    let target_dir = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    let path = target_dir.join(STATIC_TARGET).join(if release { "release" } else { "debug" }).join("arena-server");
    let ldd = Command::new("ldd").arg(&path).output();
    if let Ok(ldd) = ldd {
        let said = String::from_utf8_lossy(&ldd.stdout).to_string() + &String::from_utf8_lossy(&ldd.stderr);
        if !(said.contains("not a dynamic executable") || said.contains("statically linked")) {
            bail!("{} is not static: ldd says {}", path.display(), said.trim());
        }
    }
    let version = Command::new(&path).arg("--version").output()?;
    if !version.status.success() {
        bail!("{} --version failed", path.display());
    }
    Ok(path)
}

/// Builds the WASM client into `dist/`.
fn build_web(root: &Path, dev: bool) -> Result<()> {
    ensure_wasm_target()?;
    let started = Instant::now();
    let mut build = cargo();
    build.args(["build", "-p", "client-web", "--lib", "--target", WASM_TARGET]);
    if !dev {
        build.args(["--profile", "wasm-release"]);
    }
    run(&mut build)?;
    let profile_dir = if dev { "debug" } else { "wasm-release" };
    let target_dir = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    let wasm = target_dir.join(WASM_TARGET).join(profile_dir).join("client_web.wasm");
    let dist = root.join("dist");
    let staging = root.join("target").join("dist-staging");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)?;
    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(&wasm)
        .web(true)?
        .typescript(false)
        .omit_default_module_path(false)
        .remove_name_section(!dev)
        .remove_producers_section(!dev)
        .debug(dev)
        .generate(&staging)
        .map_err(|error| anyhow::anyhow!("wasm-bindgen: {error}"))?;
    let static_dir = root.join("client-web").join("static");
    for entry in std::fs::read_dir(&static_dir).with_context(|| format!("reading {}", static_dir.display()))? {
        let entry = entry?;
        std::fs::copy(entry.path(), staging.join(entry.file_name()))?;
    }
    // Swap in the new dist/ only when complete, so the server never embeds a half-built client.
    let _ = std::fs::remove_dir_all(&dist);
    std::fs::rename(&staging, &dist).or_else(|_| copy_dir(&staging, &dist))?;
    // Report what a browser downloads: every file gzip-compressed, as the server serves it.
    let (mut raw_total, mut gzip_total) = (0usize, 0usize);
    for entry in std::fs::read_dir(&dist)? {
        let bytes = std::fs::read(entry?.path())?;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut encoder, &bytes)?;
        raw_total += bytes.len();
        gzip_total += encoder.finish()?.len().min(bytes.len());
    }
    eprintln!(
        "xtask: dist/ built in {:.1}s: {} KiB raw, {} KiB transferred gzip-compressed",
        started.elapsed().as_secs_f64(),
        raw_total / 1024,
        gzip_total / 1024
    );
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        std::fs::copy(entry.path(), to.join(entry.file_name()))?;
    }
    Ok(())
}

/// What the browser tests need, each checked on its own: (program, Debian package, used for).
const TEST_TOOLS: [(&str, &str, &str); 8] = [
    ("/usr/bin/chromium", "chromium", "the browser end-to-end tests (headless Chromium over CDP)"),
    ("/usr/bin/chromedriver", "chromium-driver", "the WASM tests (wasm-bindgen-test drives Chromium through it)"),
    ("/usr/sbin/ip", "iproute2", "the LAN discovery test (network namespaces and a veth pair)"),
    ("/usr/bin/curl", "curl", "the LAN discovery test (HTTP from inside a network namespace)"),
    ("/usr/bin/protoc", "protobuf-compiler", "the `agones` feature (the Agones SDK and the fake sidecar's gRPC code)"),
    (
        "/usr/include/google/protobuf/field_mask.proto",
        "libprotobuf-dev",
        "the `agones` feature (protobuf's well-known types)",
    ),
    ("/usr/bin/redis-server", "redis-server", "the fleet directory tests (a throwaway Redis per test)"),
    (
        "/usr/lib/postgresql/15/bin/pg_ctl",
        "postgresql",
        "the storage tests (a throwaway PostgreSQL 15 cluster per test, Debian 12's)",
    ),
];

/// What the workspace's tests are built with: the Agones integration and its fake sidecar too.
const TEST_FEATURES: &str = "arena-server/agones";

/// Installs whichever Debian test tool is missing (Chromium and ChromeDriver, iproute2 and curl;
/// a machine often has the browser but not its driver), then checks that each one actually runs.
/// Fails with a message naming what is missing and how to install it when apt-get cannot be used.
fn ensure_test_tools() -> Result<()> {
    let missing: Vec<(&str, &str, &str)> =
        TEST_TOOLS.iter().copied().filter(|(path, _, _)| !Path::new(path).exists()).collect();
    if !missing.is_empty() {
        let packages: Vec<&str> = missing.iter().map(|(_, package, _)| *package).collect();
        for (path, package, used_for) in &missing {
            eprintln!("xtask: {path} is missing (Debian package {package}, needed for {used_for})");
        }
        eprintln!("xtask: installing {} with apt-get", packages.join(" "));
        if let Err(error) = apt_install(&packages) {
            bail!(
                "could not install {} ({error:#}). Install it by hand: `sudo apt-get install {}`",
                packages.join(" and "),
                packages.join(" ")
            );
        }
    }
    for (path, package, used_for) in TEST_TOOLS {
        if path.ends_with(".proto") {
            continue; // A file, not a program.
        }
        // `ip` knows -V, not --version.
        let output = Command::new(path).arg(if package == "iproute2" { "-V" } else { "--version" }).output();
        match output {
            Ok(output) if output.status.success() => {}
            Ok(output) => bail!(
                "{path} (package {package}, needed for {used_for}) does not run: `{path} --version` exited with {}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
            Err(error) => {
                bail!("{path} (package {package}, needed for {used_for}) cannot be started: {error}")
            }
        }
    }
    Ok(())
}

/// `apt-get update` then `apt-get install` of `packages`, as root or through sudo.
fn apt_install(packages: &[&str]) -> Result<()> {
    let is_root = Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false);
    let has_sudo = Command::new("sudo").arg("-n").arg("true").status().is_ok_and(|s| s.success());
    if !is_root && !has_sudo {
        bail!("not root and no password-less sudo");
    }
    let apt = |args: &[&str]| {
        let mut command = if is_root {
            Command::new("apt-get")
        } else {
            let mut sudo = Command::new("sudo");
            sudo.arg("-n").arg("apt-get");
            sudo
        };
        command.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        run(&mut command)
    };
    apt(&["update", "-qq"])?;
    let mut install = vec!["install", "-y", "-qq"];
    install.extend_from_slice(packages);
    apt(&install)
}

#[derive(Default)]
struct Tally {
    passed: u64,
    failed: u64,
}

/// Runs cargo with its stdout echoed and every libtest summary line counted.
fn run_counted(command: &mut Command, tally: &mut Tally) -> Result<bool> {
    command.stdout(Stdio::piped());
    let mut child = command.spawn().with_context(|| format!("running {command:?}"))?;
    let stdout = child.stdout.take().expect("piped");
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        if let Some(rest) = line.trim_start().strip_prefix("test result: ") {
            tally.passed += count_before(rest, " passed");
            tally.failed += count_before(rest, " failed");
        }
    }
    Ok(child.wait()?.success())
}

fn count_before(text: &str, label: &str) -> u64 {
    text.find(label)
        .and_then(|end| text[..end].rsplit(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse().ok())
        .unwrap_or(0)
}

/// Runs the client's wasm-bindgen tests in headless Chromium, with this binary as the runner
/// (the library form of `wasm-bindgen-test-runner`: nothing to install).
fn test_web(root: &Path, tally: &mut Tally) -> Result<bool> {
    ensure_wasm_target()?;
    let runner = std::env::current_exe()?;
    let mut command = cargo();
    command
        .args(["test", "-p", "client-web", "--target", WASM_TARGET, "--test", "wasm"])
        .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER", format!("{} wasm-test-runner", runner.display()))
        .env("CHROMEDRIVER", "/usr/bin/chromedriver")
        .env("WASM_BINDGEN_TEST_WEBDRIVER_JSON", root.join("client-web").join("webdriver.json"))
        .env("WASM_BINDGEN_TEST_TIMEOUT", "60");
    run_counted(&mut command, tally)
}

fn test_all(root: &Path) -> Result<()> {
    let started = Instant::now();
    warn_if_disk_is_short(root);
    ensure_wasm_target()?;
    let mut steps_failed = Vec::new();
    // Without the browser tools the rest still runs; the browser tests then fail, and this says why.
    if let Err(error) = ensure_test_tools() {
        eprintln!("xtask: browser tools FAILED: {error:#}");
        steps_failed.push(format!("browser tools ({error:#})"));
    }
    let mut step = |name: &str, command: &mut Command| {
        eprintln!("xtask: == {name}");
        if let Err(error) = run(command) {
            eprintln!("xtask: {name} FAILED: {error}");
            steps_failed.push(name.to_string());
        }
    };
    step("cargo fmt --check", cargo().args(["fmt", "--all", "--", "--check"]));
    build_web(root, false)?;
    step("shared builds for wasm32", cargo().args(["build", "-p", "arena-shared", "--target", WASM_TARGET]));
    step(
        "clippy",
        cargo().args(["clippy", "--workspace", "--all-targets", "--features", TEST_FEATURES, "--", "-D", "warnings"]),
    );
    let mut tally = Tally::default();
    eprintln!("xtask: == cargo test --workspace --features {TEST_FEATURES}");
    if !run_counted(cargo().args(["test", "--workspace", "--no-fail-fast", "--features", TEST_FEATURES]), &mut tally)? {
        steps_failed.push("cargo test".to_string());
    }
    eprintln!("xtask: == wasm tests in Chromium");
    if !test_web(root, &mut tally)? {
        steps_failed.push("wasm tests".to_string());
    }
    // A brief fuzz of every target (the long runs are `cargo xtask fuzz --seconds N`).
    let fuzz_seconds: u64 = std::env::var("ARENA_CI_FUZZ_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    eprintln!("xtask: == fuzz every target for {fuzz_seconds} s");
    match fuzz(root, fuzz_seconds, None) {
        Ok((targets, runs)) => {
            eprintln!("xtask: fuzz OK: {targets} targets, {runs} runs, no crash");
            tally.passed += 1;
        }
        Err(error) => {
            eprintln!("xtask: fuzz FAILED: {error:#}");
            steps_failed.push("fuzz".to_string());
        }
    }
    // The 2-minute soak (the recorded one is 30 minutes at N = 400: BENCHMARKS.md).
    let soak_args: Vec<String> = ["--minutes", "2", "--clients", "100"].iter().map(|a| a.to_string()).collect();
    eprintln!("xtask: == soak: {}", soak_args.join(" "));
    match soak(root, &soak_args) {
        Ok(()) => {
            eprintln!("xtask: soak OK");
            tally.passed += 1;
        }
        Err(error) => {
            eprintln!("xtask: soak FAILED: {error:#}");
            steps_failed.push("soak".to_string());
        }
    }
    eprintln!("xtask: == a static (musl) server binary builds and runs");
    match build_static(root, false) {
        Ok(path) => {
            eprintln!("xtask: static binary OK: {}", path.display());
            tally.passed += 1;
        }
        Err(error) => {
            eprintln!("xtask: static binary FAILED: {error:#}");
            steps_failed.push("static binary".to_string());
        }
    }
    eprintln!("xtask: finished in {:.0}s", started.elapsed().as_secs_f64());
    if !steps_failed.is_empty() {
        eprintln!("xtask: failed steps: {}", steps_failed.join(", "));
    }
    println!("{} passed, {} failed", tally.passed, tally.failed + steps_failed.len() as u64);
    if !steps_failed.is_empty() || tally.failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}

/// A whole test run writes about 6 GiB under `target/`; a full disk fails deep inside rustc
/// ("No space left on device"), so say it up front where it is easy to read.
fn warn_if_disk_is_short(root: &Path) {
    let Ok(output) = Command::new("df").args(["-Pk"]).arg(root).output() else { return };
    let text = String::from_utf8_lossy(&output.stdout);
    let free_kib =
        text.lines().nth(1).and_then(|line| line.split_whitespace().nth(3)).and_then(|v| v.parse::<u64>().ok());
    if let Some(free_kib) = free_kib {
        let free_gib = free_kib as f64 / (1024.0 * 1024.0);
        eprintln!("xtask: {free_gib:.1} GiB free on the disk holding {}", root.display());
        if free_gib < 8.0 {
            eprintln!("xtask: WARNING: a full test run needs about 6 GiB under target/; free some space first");
        }
    }
}

/// The fuzz targets (`fuzz/fuzz_targets/*.rs`, bodies in `server::fuzzing`).
const FUZZ_TARGETS: [&str; 10] = [
    "client_msg",
    "server_msg",
    "replay_file",
    "map_json",
    "http_json",
    "join_token",
    "http_headers",
    "mdns_announcement",
    "room_messages",
    "replay_seek",
];

/// Builds the fuzz targets with libFuzzer on the stable toolchain and runs each for `seconds`
/// (or only `only`). `cargo fuzz` needs nightly for its default sanitizer flags; the
/// coverage instrumentation itself (`-Cpasses=sancov-module` and LLVM's sanitizer-coverage
/// options) is stable, so this builds what `cargo fuzz build -s none` builds, with debug
/// assertions and overflow checks on. Each target starts from its seeds in `fuzz/corpus/`
/// (read-only) and a working corpus under `target/fuzz/`; a crash stops with its input saved in
/// `target/fuzz/artifacts/TARGET/` and a non-zero exit: copy it to `fuzz/regressions/TARGET/`
/// with the fix, and `server/tests/fuzz_regressions.rs` replays it from then on.
/// Returns (targets run, total executions).
fn fuzz(root: &Path, seconds: u64, only: Option<&str>) -> Result<(usize, u64)> {
    let targets: Vec<&str> = FUZZ_TARGETS.iter().copied().filter(|t| only.is_none_or(|o| o == *t)).collect();
    if targets.is_empty() {
        bail!("no fuzz target called {} (targets: {})", only.unwrap_or(""), FUZZ_TARGETS.join(", "));
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    let fuzz_target = target_dir.join("fuzz");
    let flags = [
        "--cfg fuzzing",
        "-Cpasses=sancov-module",
        "-Cllvm-args=-sanitizer-coverage-level=4",
        "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
        "-Cllvm-args=-sanitizer-coverage-pc-table",
        "-Cllvm-args=-sanitizer-coverage-trace-compares",
        "-Cdebug-assertions",
        "-Coverflow-checks",
    ]
    .join(" ");
    eprintln!("xtask: building {} fuzz target(s) with libFuzzer (stable, SanitizerCoverage)", targets.len());
    // An explicit --target keeps RUSTFLAGS off build scripts and proc macros (they would not
    // link without libFuzzer's hooks), as cargo fuzz does.
    let rustc = Command::new("rustc").arg("-vV").output().context("rustc -vV")?;
    let host = String::from_utf8_lossy(&rustc.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .context("rustc -vV names no host")?;
    let mut build = cargo();
    build
        .args(["build", "--release", "--locked", "--target", &host, "--manifest-path"])
        .arg(root.join("fuzz/Cargo.toml"))
        .arg("--target-dir")
        .arg(&fuzz_target)
        .env("RUSTFLAGS", &flags)
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    for target in &targets {
        build.args(["--bin", target]);
    }
    run(&mut build)?;
    let mut executions = 0u64;
    let mut crashed = Vec::new();
    for target in &targets {
        let seeds = root.join("fuzz/corpus").join(target);
        let corpus = fuzz_target.join("corpus").join(target);
        let artifacts = fuzz_target.join("artifacts").join(target);
        std::fs::create_dir_all(&corpus)?;
        std::fs::create_dir_all(&artifacts)?;
        let log = fuzz_target.join(format!("{target}.log"));
        eprintln!("xtask: fuzzing {target} for {seconds} s (log {})", log.display());
        let status = Command::new(fuzz_target.join(&host).join("release").join(target))
            .arg(format!("-max_total_time={seconds}"))
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .args(["-timeout=10", "-rss_limit_mb=2048", "-max_len=65536", "-print_final_stats=1"])
            .arg(&corpus)
            .arg(&seeds)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .status()
            .with_context(|| format!("running fuzz target {target}"))?;
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let runs: u64 = text
            .lines()
            .filter_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
            .filter_map(|v| v.trim().parse().ok())
            .next_back()
            .unwrap_or(0);
        let coverage = text.lines().rfind(|l| l.contains(" cov: ")).unwrap_or("").trim().to_string();
        executions += runs;
        if status.success() {
            eprintln!("xtask: {target}: {runs} runs, no crash ({coverage})");
        } else {
            let tail: Vec<&str> = text.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect();
            eprintln!(
                "xtask: {target}: CRASH after {runs} runs ({status}); inputs in {}\n{}",
                artifacts.display(),
                tail.join("\n")
            );
            crashed.push(*target);
        }
    }
    if !crashed.is_empty() {
        bail!("fuzz targets crashed: {}", crashed.join(", "));
    }
    Ok((targets.len(), executions))
}

/// The soak (benches/src/bin/soak.rs): builds the release server and the soak driver and runs
/// it, passing its flags on (`--minutes`, `--clients`, `--rooms`, `--json`, ...); results in
/// `target/soak/` unless `--out` says otherwise. Fails when the soak's verdict does.
fn soak(root: &Path, args: &[String]) -> Result<()> {
    run(cargo().args([
        "build",
        "--release",
        "-p",
        "arena-server",
        "-p",
        "arena-benches",
        "--bin",
        "arena-server",
        "--bin",
        "soak",
    ]))?;
    let target_dir = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    let mut command = Command::new(target_dir.join("release").join("soak"));
    command.arg("--server").arg(target_dir.join("release").join("arena-server"));
    if !args.iter().any(|a| a == "--out") {
        command.arg("--out").arg(target_dir.join("soak"));
    }
    run(command.args(args))
}

/// Scenario S1: for each run and each client count (interleaved), start a fresh release server
/// with `--scenario s1` on 127.0.0.1, run the load generator against it, stop the server by its
/// PID; then print the median (min–max) of every headline metric.
fn s1(root: &Path, args: &[String]) -> Result<()> {
    let mut clients: Vec<usize> = vec![50, 100, 200, 400];
    let (mut runs, mut window, mut warmup) = (3usize, "15".to_string(), "3".to_string());
    let mut extra_server_args: Vec<String> = Vec::new();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--clients" => clients = value()?.split(',').map(|n| n.trim().parse()).collect::<Result<_, _>>()?,
            "--runs" => runs = value()?.parse()?,
            "--window" => window = value()?,
            "--warmup" => warmup = value()?,
            "--server-arg" => extra_server_args.push(value()?),
            other => bail!("unknown flag {other}"),
        }
    }
    run(cargo().args(["build", "--release", "-p", "arena-server", "-p", "arena-benches", "--bins"]))?;
    let target_dir = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    let server_bin = target_dir.join("release").join("arena-server");
    let loadgen_bin = target_dir.join("release").join("loadgen");
    let out_dir = target_dir.join("s1");
    std::fs::create_dir_all(&out_dir)?;
    let results_path = out_dir.join("results.jsonl");
    let mut results = std::fs::File::create(&results_path)?;
    let mut by_clients: std::collections::BTreeMap<usize, Vec<String>> = Default::default();
    for run_index in 0..runs {
        for &n in &clients {
            eprintln!("xtask: S1 run {}/{runs}, {n} clients", run_index + 1);
            let mut server = Command::new(&server_bin)
                .args(["--scenario", "s1", "--bind", "127.0.0.1:0"])
                .args(&extra_server_args)
                .env("RUST_LOG", "warn")
                .stderr(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .context("starting arena-server")?;
            let stderr = server.stderr.take().expect("piped");
            let mut lines = BufReader::new(stderr).lines();
            let port = loop {
                let Some(line) = lines.next() else { bail!("server exited before printing its address") };
                let line = line?;
                if let Some(rest) = line.split("http://localhost:").nth(1) {
                    break rest.chars().take_while(char::is_ascii_digit).collect::<String>();
                }
            };
            // Keep draining the server's stderr so it never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
            let output = Command::new(&loadgen_bin)
                .args(["--url", &format!("ws://127.0.0.1:{port}/ws"), "--clients", &n.to_string()])
                .args(["--server-pid", &server.id().to_string(), "--window", &window, "--warmup", &warmup, "--json"])
                .args(["--seed", &(run_index + 1).to_string()])
                .output()
                .context("running loadgen")?;
            let _ = Command::new("kill").args(["-TERM", &server.id().to_string()]).status();
            let _ = server.wait();
            let line = String::from_utf8_lossy(&output.stdout).trim().to_string();
            if line.is_empty() {
                bail!("loadgen printed nothing: {}", String::from_utf8_lossy(&output.stderr));
            }
            std::io::Write::write_all(&mut results, format!("{line}\n").as_bytes())?;
            by_clients.entry(n).or_default().push(line);
        }
    }
    let metrics = [
        ("server_cpu_cores", "server cores"),
        ("server_cpu_ms_per_client_s", "CPU ms/client-s"),
        ("server_rss_mb", "RSS MB"),
        ("server_peak_rss_mb", "peak RSS MB"),
        ("payload_kib_per_client_s", "KiB/s/client"),
        ("messages_per_client_s", "msgs/s/client"),
        ("bytes_per_player_per_patch", "B/player/patch"),
        ("gap_ms_p50", "gap p50 ms"),
        ("gap_ms_p99", "gap p99 ms"),
        ("gap_ms_max", "gap max ms"),
        ("tick_ms_p50", "tick p50 ms"),
        ("tick_ms_p99", "tick p99 ms"),
        ("tick_ms_max", "tick max ms"),
        ("input_ack_ms_p50", "input→ack p50 ms"),
        ("input_ack_ms_p99", "input→ack p99 ms"),
        ("loadgen_cpu_cores", "loadgen cores"),
        ("machine_busy_cores", "machine busy cores"),
        ("join_failures", "join failures"),
        ("disconnects", "disconnects"),
    ];
    println!("S1 results: median (min–max) of {runs} runs; raw lines in {}", results_path.display());
    for (n, lines) in &by_clients {
        println!("\nN = {n}");
        for (key, label) in metrics {
            let mut values: Vec<f64> = lines.iter().filter_map(|line| json_number(line, key)).collect();
            values.sort_by(f64::total_cmp);
            if values.is_empty() {
                continue;
            }
            let median = values[values.len() / 2];
            println!("  {label:<20} {median:>10.3}  ({:.3}–{:.3})", values[0], values[values.len() - 1]);
        }
    }
    Ok(())
}

/// Reads a number field from a flat JSON object line (good enough for the load generator's output).
fn json_number(line: &str, key: &str) -> Option<f64> {
    let start = line.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = &line[start..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].trim().parse().ok()
}

/// Regenerates the sample replay: a release server with 28 AI bots records a two-minute match in
/// which 4 headless WebSocket bots also play (so real client inputs are in the file).
fn record_sample(root: &Path) -> Result<()> {
    run(cargo().args(["build", "--release", "-p", "arena-server"]))?;
    let target_dir = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    let server_bin = target_dir.join("release").join("arena-server");
    let dir = target_dir.join("sample-replay");
    let _ = std::fs::remove_dir_all(&dir);
    let mut server = Command::new(&server_bin)
        .args(["--bind", "127.0.0.1:0", "--bots", "28", "--seed", "2026", "--replay-dir"])
        .arg(&dir)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .context("starting arena-server")?;
    let mut lines = BufReader::new(server.stderr.take().expect("piped")).lines();
    let port = loop {
        let Some(line) = lines.next() else { bail!("server exited before printing its address") };
        if let Some(rest) = line?.split("http://localhost:").nth(1) {
            break rest.chars().take_while(char::is_ascii_digit).collect::<String>();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let bots = Command::new(&server_bin)
        .args(["bots", "--url", &format!("ws://127.0.0.1:{port}/ws"), "--count", "4", "--seconds", "120"])
        .args(["--input-hz", "30", "--seed", "2026"])
        .status()?;
    let _ = Command::new("kill").args(["-TERM", &server.id().to_string()]).status();
    let _ = server.wait();
    if !bots.success() {
        bail!("the headless bots did not run clean");
    }
    let recorded = std::fs::read_dir(&dir)?.next().context("no replay was written")??.path();
    let destination = root.join("assets").join("replays").join("sample.arenareplay");
    std::fs::create_dir_all(destination.parent().expect("has a parent"))?;
    std::fs::copy(&recorded, &destination)?;
    run(Command::new(&server_bin).args(["replay", "info"]).arg(&destination))?;
    run(Command::new(&server_bin).args(["replay", "verify"]).arg(&destination))?;
    eprintln!("xtask: wrote {}", destination.display());
    Ok(())
}
