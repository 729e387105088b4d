//! `cargo xtask <command>`: Arena's build and test tooling (the xtask pattern: plain Rust, no
//! shell scripts, nothing to install beyond rustup and, for browser tests, Debian's Chromium).
//!
//! - `build-web [--dev]`: builds `client-web` for wasm32 and writes `dist/` (JS bindings via the
//!   `wasm-bindgen-cli-support` library, then the static files), which the server embeds.
//! - `run [ARGS...]`: `build-web`, then builds and starts the release server with ARGS.
//! - `test-web`: runs the client's wasm-bindgen tests in headless Chromium.
//! - `test`: installs what is missing (wasm32 target, Chromium), checks formatting and lints,
//!   builds everything and runs every test; ends with one `N passed, N failed` line.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

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
            command
                .args(["run", "--release", "-p", "arena-server", "--"])
                .args(&args[1..]);
            let status = command.status().context("running the server")?;
            if !status.success() {
                bail!("server exited with {status}");
            }
            Ok(())
        }
        Some("test") => test_all(&root),
        Some("test-web") => {
            let mut tally = Tally::default();
            if !test_web(&root, &mut tally)? {
                bail!("wasm tests failed");
            }
            Ok(())
        }
        // Used as cargo's runner for wasm32 test binaries (see `test_web`).
        Some("wasm-test-runner") => wasm_bindgen_cli::wasm_bindgen_test_runner::run_cli_with_args(
            std::iter::once("wasm-bindgen-test-runner".to_string())
                .chain(args[1..].iter().cloned()),
        ),
        _ => {
            eprintln!(
                "usage: cargo xtask <build-web [--dev] | run [SERVER ARGS...] | test | test-web>"
            );
            std::process::exit(2);
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string()))
}

fn run(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("running {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed with {status}");
    }
    Ok(())
}

/// Adds the wasm32 target when this toolchain lacks it.
fn ensure_wasm_target() -> Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    match installed {
        Ok(output)
            if String::from_utf8_lossy(&output.stdout)
                .lines()
                .any(|l| l.trim() == WASM_TARGET) =>
        {
            Ok(())
        }
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

/// Builds the WASM client into `dist/`.
fn build_web(root: &Path, dev: bool) -> Result<()> {
    ensure_wasm_target()?;
    let started = Instant::now();
    let mut build = cargo();
    build.args([
        "build",
        "-p",
        "client-web",
        "--lib",
        "--target",
        WASM_TARGET,
    ]);
    if !dev {
        build.args(["--profile", "wasm-release"]);
    }
    run(&mut build)?;
    let profile_dir = if dev { "debug" } else { "wasm-release" };
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let wasm = target_dir
        .join(WASM_TARGET)
        .join(profile_dir)
        .join("client_web.wasm");
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
    for entry in std::fs::read_dir(&static_dir)
        .with_context(|| format!("reading {}", static_dir.display()))?
    {
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

/// Installs Debian's Chromium and ChromeDriver when missing (browser end-to-end tests).
fn ensure_chromium() -> Result<()> {
    if Path::new("/usr/bin/chromium").exists() {
        return Ok(());
    }
    eprintln!("xtask: installing chromium (browser tests) with apt-get");
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false);
    let apt = |args: &[&str]| {
        let mut command = if is_root {
            Command::new("apt-get")
        } else {
            let mut sudo = Command::new("sudo");
            sudo.arg("apt-get");
            sudo
        };
        command.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        run(&mut command)
    };
    apt(&["update", "-qq"])?;
    apt(&["install", "-y", "-qq", "chromium", "chromium-driver"])
}

#[derive(Default)]
struct Tally {
    passed: u64,
    failed: u64,
}

/// Runs cargo with its stdout echoed and every libtest summary line counted.
fn run_counted(command: &mut Command, tally: &mut Tally) -> Result<bool> {
    command.stdout(Stdio::piped());
    let mut child = command
        .spawn()
        .with_context(|| format!("running {command:?}"))?;
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
    ensure_chromium()?;
    let runner = std::env::current_exe()?;
    let mut command = cargo();
    command
        .args([
            "test",
            "-p",
            "client-web",
            "--target",
            WASM_TARGET,
            "--test",
            "wasm",
        ])
        .env(
            "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER",
            format!("{} wasm-test-runner", runner.display()),
        )
        .env("CHROMEDRIVER", "/usr/bin/chromedriver")
        .env(
            "WASM_BINDGEN_TEST_WEBDRIVER_JSON",
            root.join("client-web").join("webdriver.json"),
        )
        .env("WASM_BINDGEN_TEST_TIMEOUT", "60");
    run_counted(&mut command, tally)
}

fn test_all(root: &Path) -> Result<()> {
    let started = Instant::now();
    ensure_wasm_target()?;
    ensure_chromium()?;
    let mut steps_failed = Vec::new();
    let mut step = |name: &str, command: &mut Command| {
        eprintln!("xtask: == {name}");
        if let Err(error) = run(command) {
            eprintln!("xtask: {name} FAILED: {error}");
            steps_failed.push(name.to_string());
        }
    };
    step(
        "cargo fmt --check",
        cargo().args(["fmt", "--all", "--", "--check"]),
    );
    build_web(root, false)?;
    step(
        "shared builds for wasm32",
        cargo().args(["build", "-p", "arena-shared", "--target", WASM_TARGET]),
    );
    step(
        "clippy",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    );
    let mut tally = Tally::default();
    eprintln!("xtask: == cargo test --workspace");
    if !run_counted(
        cargo().args(["test", "--workspace", "--no-fail-fast"]),
        &mut tally,
    )? {
        steps_failed.push("cargo test".to_string());
    }
    eprintln!("xtask: finished in {:.0}s", started.elapsed().as_secs_f64());
    if !steps_failed.is_empty() {
        eprintln!("xtask: failed steps: {}", steps_failed.join(", "));
    }
    println!(
        "{} passed, {} failed",
        tally.passed,
        tally.failed + steps_failed.len() as u64
    );
    if !steps_failed.is_empty() || tally.failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}
