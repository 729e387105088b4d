//! A real PostgreSQL for a test: Debian's server binaries (`postgresql`, installed by `cargo xtask
//! test`), a throwaway cluster in a temporary directory on a free loopback port, trust auth on
//! loopback only, stopped and removed on drop. As root, the cluster runs as the `postgres` user
//! (PostgreSQL refuses to run as root).

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Postgres {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    /// fsync on (benchmarks); tests run without it, for speed.
    durable: bool,
}

fn bin_dir() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's server binaries under /usr/lib/postgresql (apt install postgresql)")
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("pg_ctl").exists())
        .collect();
    versions.sort();
    versions.pop().expect("a PostgreSQL version with pg_ctl")
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

/// Runs a PostgreSQL tool, as `postgres` when this is root.
fn run(bin: &Path, tool: &str, args: &[&str]) -> std::process::Output {
    let program = bin.join(tool);
    let output = if is_root() {
        Command::new("runuser").args(["-u", "postgres", "--"]).arg(&program).args(args).output()
    } else {
        Command::new(&program).args(args).output()
    };
    output.unwrap_or_else(|e| panic!("running {}: {e}", program.display()))
}

impl Postgres {
    /// Starts a fresh cluster; its URL is [`Postgres::url`].
    pub fn start(label: &str) -> Postgres {
        Postgres::start_with(label, false)
    }

    /// A cluster that fsyncs its commits, as a production one does (for benchmarks).
    pub fn start_durable(label: &str) -> Postgres {
        Postgres::start_with(label, true)
    }

    fn start_with(label: &str, durable: bool) -> Postgres {
        let bin = bin_dir();
        let dir = std::env::temp_dir().join(format!("arena-pg-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        if is_root() {
            let status = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir).status().unwrap();
            assert!(status.success(), "chown the cluster's directory");
        }
        let data = dir.join("data");
        let out = run(&bin, "initdb", &["-D", data.to_str().unwrap(), "-U", "postgres", "--auth=trust", "-E", "UTF8"]);
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        let port = free_port();
        let mut pg = Postgres { port, dir, bin, durable };
        pg.start_again();
        pg
    }

    /// Starts the cluster (again, after [`Postgres::stop`]) on the same port.
    pub fn start_again(&mut self) {
        let data = self.dir.join("data");
        let fast = if self.durable { "" } else { " -c fsync=off -c full_page_writes=off" };
        let options = format!("-p {} -c listen_addresses=127.0.0.1 -k {}{fast}", self.port, self.dir.display());
        let log = self.dir.join("log");
        let out = run(
            &self.bin,
            "pg_ctl",
            &["-D", data.to_str().unwrap(), "-o", &options, "-l", log.to_str().unwrap(), "-w", "-t", "30", "start"],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// Stops the server now (a database going away under a running game server).
    pub fn stop(&self) {
        let data = self.dir.join("data");
        let _ = run(&self.bin, "pg_ctl", &["-D", data.to_str().unwrap(), "-m", "immediate", "-w", "stop"]);
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loopback port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
