//! `arena-server`: the dedicated server binary. Parses flags, sets up logging, binds, and hands
//! over to the library (`server::run`); `arena-server bots` runs headless bot players.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{ArgMatches, CommandFactory, FromArgMatches};
use server::ServerConfig;
use server::bots::{self, BotsConfig};
use shared::map::MapDef;
use tracing_subscriber::EnvFilter;

mod args;
mod settings;

use args::{BotsArgs, Cli, Command, LobbyArgs, LogFormat, ReplayCommand, Scenario, ServeArgs};

/// Every environment variable a setting of any subcommand reads: the serve settings'
/// `ARENA_<FLAG>` and the variables other subcommands name (`ARENA_LOBBY_KEY`…).
fn known_variables(command: &clap::Command, serve: &[String]) -> Vec<String> {
    fn walk(command: &clap::Command, into: &mut Vec<String>) {
        for arg in command.get_arguments() {
            if let Some(name) = arg.get_env().and_then(|name| name.to_str()) {
                into.push(name.to_string());
            }
        }
        for sub in command.get_subcommands() {
            walk(sub, into);
        }
    }
    let mut known: Vec<String> = serve.iter().map(|id| settings::env_name(id)).collect();
    known.push(args::DIRECTORY_PASSWORD_VAR.to_string());
    walk(command, &mut known);
    known.sort();
    known.dedup();
    known
}

/// Parses the command line over the environment and the configuration file (see `settings`);
/// also hands back the `ARENA_*` variables that name no setting (to be warned about).
fn parse() -> anyhow::Result<(Cli, ArgMatches, settings::FileLayer, Vec<String>)> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let base = Cli::command();
    let known: Vec<String> = base
        .find_subcommand("serve")
        .expect("a serve subcommand")
        .get_arguments()
        .map(|a| a.get_id().as_str().to_string())
        .filter(|id| settings::is_setting(id))
        .collect();
    let file = match settings::config_path(&args[1..]) {
        Some(path) => settings::load_file(&path, &known).map_err(anyhow::Error::msg)?,
        None => settings::FileLayer::default(),
    };
    // The environment is shared with everything else on the machine: a variable that is not
    // ours is warned about, only a near miss of a real setting (a typo) stops the start.
    let variables = known_variables(&base, &known);
    let unknown = settings::unknown_env(&variables);
    // A flag's spelling (`ARENA_TRUSTED_PROXY` for `--trusted-proxy`) is a near miss too.
    let spellings: Vec<(String, String)> = base
        .find_subcommand("serve")
        .expect("a serve subcommand")
        .get_arguments()
        .filter(|a| settings::is_setting(a.get_id().as_str()))
        .filter_map(|a| {
            let long = a.get_long()?;
            Some((
                format!("ARENA_{}", long.to_ascii_uppercase().replace('-', "_")),
                settings::env_name(a.get_id().as_str()),
            ))
        })
        .collect();
    let typos: Vec<String> = unknown
        .iter()
        .filter_map(|name| {
            let like = spellings
                .iter()
                .find(|(spelled, _)| spelled == name)
                .map(|(_, real)| real.as_str())
                .or_else(|| settings::near_miss(name, &variables))?;
            Some(format!("{name} (did you mean {like}?)"))
        })
        .collect();
    if !typos.is_empty() {
        bail!("unknown environment variable(s) {}: a setting's variable is ARENA_ and its name", typos.join(", "));
    }
    let command = settings::layer(base, &file)
        .mut_subcommand("serve", |c| settings::layer(c, &file))
        .mut_subcommand("config", |c| settings::layer(c, &file));
    let matches = match command.try_get_matches_from(&args) {
        Ok(matches) => matches,
        Err(error) if file.path.is_some() && error.kind() == clap::error::ErrorKind::ValueValidation => {
            let path = file.path.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
            eprintln!("{error}");
            bail!(
                "(a value above may come from {path} or an ARENA_* variable: flags, then the environment, then the file)"
            );
        }
        Err(error) => error.exit(),
    };
    let cli = Cli::from_arg_matches(&matches)?;
    Ok((cli, matches, file, unknown))
}

/// `arena-server config`: every setting, TOML, with its source.
fn print_config(args: &ServeArgs, matches: &ArgMatches, file: &settings::FileLayer) -> anyhow::Result<()> {
    let matches = matches.subcommand_matches("config").unwrap_or(matches);
    server_config(args)?; // The same checks as serve.
    println!(
        "# Arena server settings: flags > ARENA_* environment > {} > defaults",
        file.path.as_ref().map_or_else(|| "config file".to_string(), |p| p.display().to_string())
    );
    for arg in Cli::command().find_subcommand("config").expect("config").get_arguments() {
        let id = arg.get_id().as_str();
        if !settings::is_setting(id) {
            continue;
        }
        let raw = matches
            .get_raw(id)
            .map(|values| values.map(|v| v.to_string_lossy().to_string()).collect::<Vec<_>>())
            .filter(|values| !values.is_empty());
        let list = matches!(arg.get_action(), clap::ArgAction::Append);
        println!("{}", settings::toml_line(id, raw, list, &settings::source(matches, id, file)));
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let (cli, matches, file, unknown) = parse()?;
    if let Some(Command::Config(args)) = &cli.command {
        if !unknown.is_empty() {
            eprintln!("# not settings (ignored): {}", unknown.join(", "));
        }
        return print_config(args, &matches, &file);
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Json => logs.json().with_current_span(false).init(),
        // No escape sequences in a log redirected to a file or a journal.
        LogFormat::Text => logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init(),
    }
    if !unknown.is_empty() {
        tracing::warn!(
            variables = %unknown.join(", "),
            "ARENA_* environment variables that name no setting are ignored"
        );
    }
    let threads = match &cli.command {
        None => cli.serve.threads,
        Some(Command::Serve(args)) => args.threads,
        Some(Command::Bots(_))
        | Some(Command::Replay(_))
        | Some(Command::Health { .. })
        | Some(Command::Config(_))
        | Some(Command::Admin(_))
        | Some(Command::Lobby(_)) => None,
        #[cfg(feature = "agones")]
        Some(Command::FakeAgones { .. }) => None,
    };
    let runtime = match threads {
        Some(1) => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        Some(n) => tokio::runtime::Builder::new_multi_thread().worker_threads(n.max(1)).enable_all().build(),
        None => tokio::runtime::Builder::new_multi_thread().enable_all().build(),
    }
    .context("starting tokio")?;
    match cli.command {
        None => runtime.block_on(serve(cli.serve)),
        Some(Command::Serve(args)) => runtime.block_on(serve(*args)),
        Some(Command::Bots(args)) => runtime.block_on(run_bots(args)),
        Some(Command::Replay(ReplayCommand::Serve { file, bind })) => runtime.block_on(serve_replay(file, bind)),
        Some(Command::Replay(command)) => replay(command),
        Some(Command::Health { url, ca_cert }) => health(&url, ca_cert.as_deref()),
        Some(Command::Admin(args)) => match server::admin::cli::run(&args) {
            Ok(json) => {
                println!("{json}");
                Ok(())
            }
            Err(message) => {
                eprintln!("{message}");
                std::process::exit(1);
            }
        },
        Some(Command::Config(_)) => Ok(()),
        Some(Command::Lobby(args)) => runtime.block_on(run_lobby(args)),
        #[cfg(feature = "agones")]
        Some(Command::FakeAgones { port }) => runtime.block_on(fake_agones(port)),
    }
}

/// `arena-server fake-agones`: the fake sidecar on 127.0.0.1:PORT until Ctrl-C or SIGTERM.
#[cfg(feature = "agones")]
async fn fake_agones(port: u16) -> anyhow::Result<()> {
    let fake = server::agones::fake::FakeSdk::new(
        "arena-local",
        &[server::agones::ROOMS, server::agones::PLAYERS],
        &[server::agones::ROOMS],
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("binding 127.0.0.1:{port}"))?;
    eprintln!(
        "Fake Agones SDK sidecar on 127.0.0.1:{port}: start `arena-server --agones` (AGONES_SDK_GRPC_PORT={port})."
    );
    let watch = fake.clone();
    tokio::spawn(async move {
        let mut last = String::new();
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let mut state = watch.snapshot();
            // Pings are counted, not printed each time.
            let pings = std::mem::take(&mut state.health_pings);
            state.last_health_unix_ms = 0;
            let line = serde_json::to_string(&state).unwrap_or_default();
            if line != last {
                println!("{line} (health pings so far: {pings})");
                last = line;
            }
        }
    });
    fake.serve(listener, shutdown_signal()).await.context("fake sidecar")?;
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = server_config(&args)?;
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("binding {} (is another server running on that port?)", args.bind))?;
    // `{port}` in --public-url is the port actually bound (with --bind :0 too).
    if let Some(template) = &args.public_url {
        config.public_url = Some(render_public_url(template, listener.local_addr()?.port()));
    }
    if let (Some(lobby), Some(key)) = (&args.lobby_url, &args.lobby_key) {
        server::auth::refuse_placeholder("--lobby-key", key).map_err(anyhow::Error::msg)?;
        let Some(public_url) = config.public_url.clone() else {
            bail!("--lobby-url needs --public-url: the address players are sent to");
        };
        let instance = instance_name(&args);
        config.lobby = Some(server::fleet::report::LobbyLink {
            url: lobby.clone(),
            key: key.clone(),
            instance,
            public_url,
            directory: None,
        });
    }
    if let Some(directory) = &args.directory {
        if server::fleet::redis::has_password(directory) {
            bail!(
                "--directory: the password goes in {}, not in the URL (which shows in process lists and logs)",
                args::DIRECTORY_PASSWORD_VAR
            );
        }
        let Some(public_url) = config.public_url.clone() else {
            bail!("--directory needs --public-url: the address players are sent to");
        };
        let password = std::env::var(args::DIRECTORY_PASSWORD_VAR).ok().filter(|p| !p.is_empty());
        config.lobby = Some(server::fleet::report::LobbyLink {
            url: String::new(),
            key: String::new(),
            instance: instance_name(&args),
            public_url,
            directory: Some((directory.clone(), password)),
        });
    }
    // The database before the addresses: a refusal stops the start before anyone is invited.
    let writer = open_results(&args, &mut config).await?;
    print_urls(listener.local_addr()?, &config);
    let port = listener.local_addr()?.port();
    let scheme = if config.tls.is_some() { "https" } else { "http" };
    if config.admin.tokens.is_empty() {
        if args.bind.ip().is_loopback() {
            // Printed once, to the terminal only (not through the log): only whoever started the
            // server sees it.
            let token = server::admin::AdminToken::generate();
            eprintln!(
                "Admin: open {scheme}://localhost:{port}/admin and sign in with this token (shown once, valid until restart):\n  {}",
                token.reveal()
            );
            config.admin.tokens.push(token);
        } else {
            eprintln!("Admin is off: set --admin-token (or ARENA_ADMIN_TOKEN) to use /admin.");
        }
    } else {
        eprintln!("Admin: {scheme}://localhost:{port}/admin ({} token(s) configured)", config.admin.tokens.len());
    }
    // The first SIGTERM or Ctrl-C drains, the second stops at once.
    let (drain_tx, drain_rx) = tokio::sync::oneshot::channel::<()>();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = drain_tx.send(());
        shutdown_signal().await;
        eprintln!("Second signal: stopping now.");
        let _ = stop_tx.send(());
    });
    let drain = async move {
        let _ = drain_rx.await;
    };
    let stop = async move {
        if stop_rx.await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    server::run_with_drain(listener, config, drain, stop).await.context("server failed")?;
    if let Some((task, stop_writer)) = writer {
        // The rooms are done: what they handed over is committed (or left in the spool).
        stop_writer.cancel();
        let _ = task.await;
    }
    Ok(())
}

/// Opens the database (a clear error at start when it cannot be: a file that is not a
/// database, a schema newer than this binary) and starts the results writer.
async fn open_results(
    args: &ServeArgs,
    config: &mut ServerConfig,
) -> anyhow::Result<Option<(tokio::task::JoinHandle<()>, tokio_util::sync::CancellationToken)>> {
    if args.no_database {
        return Ok(None);
    }
    use server::store::db::{OpenFailure, Store, StoreCell};
    let rules = server::store::rating::RatingRules { min_play: args.rated_min_seconds };
    let cell = StoreCell::default();
    let stop = tokio_util::sync::CancellationToken::new();
    match Store::try_open(&args.database, rules, args.season_length).await {
        Ok(store) => cell.set(std::sync::Arc::new(store)),
        Err(OpenFailure::Refused(why)) => anyhow::bail!(why),
        Err(OpenFailure::Unreachable(why)) => {
            // Matches need no database: play on, keep results in the spool, keep trying.
            tracing::warn!(%why, "database: unreachable at start; rounds wait in the spool until it answers");
            let (url, cell, stop) = (args.database.clone(), cell.clone(), stop.clone());
            let season_length = args.season_length;
            tokio::spawn(async move {
                let mut wait = std::time::Duration::from_millis(500);
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(wait) => {}
                    }
                    match Store::try_open(&url, rules, season_length).await {
                        Ok(store) => {
                            tracing::info!("database: reachable; the spooled rounds are written now");
                            cell.set(std::sync::Arc::new(store));
                            return;
                        }
                        Err(OpenFailure::Unreachable(_)) => wait = (wait * 2).min(std::time::Duration::from_secs(8)),
                        Err(OpenFailure::Refused(why)) => {
                            tracing::error!(%why, "database: answers but cannot be used; rounds stay in the spool");
                            return;
                        }
                    }
                }
            });
        }
    }
    let (sink, queue) = server::store::record::ResultsSink::new();
    config.results = Some(sink);
    config.store = Some(cell.clone());
    let stats = std::sync::Arc::new(server::store::writer::WriterStats::default());
    let task =
        tokio::spawn(server::store::writer::run(Some(cell), queue, args.results_spool.clone(), stats, stop.clone()));
    Ok(Some((task, stop)))
}

/// The server's configuration from the serve settings, checked.
fn server_config(args: &ServeArgs) -> anyhow::Result<ServerConfig> {
    let base = match args.scenario {
        Scenario::Arena => ServerConfig::default(),
        Scenario::S1 => ServerConfig::s1(),
    };
    let mut config = ServerConfig {
        tick_hz: args.tick_hz,
        snapshot_hz: args.snapshot_hz,
        max_players: args.max_players.unwrap_or(base.max_players),
        max_rooms: args.max_rooms,
        room_idle: std::time::Duration::from_secs(args.room_idle_seconds),
        room_creates_per_minute: args.room_creates_per_minute,
        max_connections: args.max_connections.unwrap_or(base.max_connections),
        max_connections_per_ip: args.max_connections_per_ip,
        metrics_bind: args.metrics_bind,
        net_sim: args.net_sim,
        lag_comp_ms: args.lag_comp_ms,
        lan: !args.no_lan,
        public_url: args.public_url.as_deref().map(|url| render_public_url(url, args.bind.port())),
        tls: match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(server::net::tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                reload_every: server::net::tls::RELOAD_EVERY,
            }),
            _ => None,
        },
        allowed_origins: args.allowed_origins.clone(),
        frame_ancestors: args.frame_ancestors.clone(),
        mdns_name: server::lan::host_label(&args.mdns_name),
        server_name: args
            .server_name
            .clone()
            .map_or_else(server::config::default_server_name, |n| server::lan::clean_name(&n)),
        snapshot_budget_bytes: match args.snapshot_budget_bytes {
            Some(0) => None,
            Some(bytes) => Some(bytes),
            None => base.snapshot_budget_bytes,
        },
        gate: Arc::new(server::auth::Gate {
            password: args.password.clone().filter(|p| !p.is_empty()),
            tokens: join_token_keys(args)?,
            single_use: args.join_token_single_use,
            spent: Default::default(),
        }),
        joins_per_minute_per_ip: args.joins_per_minute_per_ip,
        admin: server::admin::AdminConfig {
            tokens: args
                .admin_token
                .iter()
                .filter(|t| !t.is_empty())
                .map(|t| server::admin::AdminToken::parse(t))
                .collect::<Result<_, _>>()
                .map_err(anyhow::Error::msg)?,
            bans_file: Some(args.bans_file.clone()),
            audit_log: Some(args.audit_log.clone()),
        },
        metrics_require_token: args.metrics_require_token,
        trusted_proxies: args.trusted_proxies.clone(),
        agones: args.agones,
        idle_timeout: Duration::from_secs(args.idle_timeout_seconds.clamp(5, 3600)),
        resume_grace: Duration::from_secs(args.resume_grace_seconds.min(600)),
        rounds: shared::room::RoundRules {
            seconds: args.round_seconds.unwrap_or(base.rounds.seconds),
            score_limit: (args.score_limit > 0).then_some(args.score_limit),
        },
        intermission: Duration::from_secs(args.intermission_seconds.clamp(1, 120)),
        bots: args.bots,
        seed: args.seed,
        replay_dir: (!args.no_replay).then(|| args.replay_dir.clone()),
        drain: Duration::from_secs(args.drain_seconds),
        replay_retention: server::replay::retention::Retention {
            max_files: args.replay_keep_files.max(1),
            max_bytes: args.replay_keep_mb.saturating_mul(1 << 20).max(1 << 20),
        },
        ..base
    };
    if let Some(path) = &args.map {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading map {}", path.display()))?;
        let map = MapDef::from_json(&text).with_context(|| format!("loading map {}", path.display()))?;
        config.map = Arc::new(map);
    }
    if let Err(message) = config.validate() {
        bail!(message);
    }
    Ok(config)
}

/// `--public-url` with `{hostname}` (this machine's or pod's host name) and `{port}` filled in.
fn render_public_url(template: &str, port: u16) -> String {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    template.replace("{hostname}", &hostname).replace("{port}", &port.to_string())
}

/// This server's name in the fleet: `--instance`, else the host name (the GameServer's name on
/// Agones).
fn instance_name(args: &ServeArgs) -> String {
    args.instance.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default()
    })
}

/// The join token keys from `--join-token-secret` or `--join-token-jwks` (not both).
fn join_token_keys(args: &ServeArgs) -> anyhow::Result<Option<server::auth::JoinTokenKeys>> {
    use server::auth::JoinTokenKeys;
    let (issuer, audience) = (args.join_token_issuer.clone(), args.join_token_audience.clone());
    match (&args.join_token_secret, &args.join_token_jwks) {
        (Some(_), Some(_)) => bail!("give --join-token-secret or --join-token-jwks, not both"),
        (Some(secret), None) => {
            Ok(Some(JoinTokenKeys::from_secret(secret, issuer, audience).map_err(anyhow::Error::msg)?))
        }
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let keys = JoinTokenKeys::from_jwks(&text, issuer, audience)
                .map_err(|e| anyhow::anyhow!("--join-token-jwks {}: {e}", path.display()))?;
            Ok(Some(keys))
        }
        (None, None) => Ok(None),
    }
}

/// Tells the host where players can reach the server: this machine, every LAN address (best
/// first), the mDNS name, and a QR code of the best LAN URL for phones.
fn print_urls(addr: SocketAddr, config: &ServerConfig) {
    let port = addr.port();
    let scheme = if config.tls.is_some() { "https" } else { "http" };
    let local = if addr.ip().is_unspecified() || addr.ip().is_loopback() {
        format!("{scheme}://localhost:{port}/")
    } else {
        server::lan::url_with(scheme, addr.ip(), port)
    };
    eprintln!("Arena is up: open {local} in a browser on this machine.");
    let mut urls: Vec<String> =
        server::lan::lan_addresses(addr.ip()).into_iter().map(|ip| server::lan::url_with(scheme, ip, port)).collect();
    if let Some(public) = &config.public_url {
        urls.insert(0, public.clone());
    }
    if urls.is_empty() {
        eprintln!(
            "Listening on loopback only: other devices cannot join. To play on your LAN, start with --bind 0.0.0.0:{port}."
        );
        return;
    }
    eprintln!("Players on your network can join at:");
    for url in &urls {
        eprintln!("  {url}");
    }
    if config.lan {
        eprintln!(
            "  {scheme}://{}.local:{port}/  (mDNS; if the name is taken a -2 suffix is used and logged)",
            config.mdns_name
        );
    }
    if let Some(qr) = server::lan::qr_terminal(&urls[0]) {
        eprintln!("Scan to join ({}):\n{qr}", urls[0]);
    }
    eprintln!("Firewall: allow TCP port {port} for other devices to reach this machine.");
}

/// `GET url` (http:// or https://) with a short limit; Ok on 200.
fn health(url: &str, ca_cert: Option<&std::path::Path>) -> anyhow::Result<()> {
    let agent = server::admin::cli::agent(ca_cert).map_err(anyhow::Error::msg)?;
    let response = agent.get(url).call().with_context(|| format!("unhealthy: {url}"))?;
    if response.status() == 200 {
        println!("healthy: {url}");
        Ok(())
    } else {
        bail!("unhealthy: {url} answered {}", response.status())
    }
}

async fn run_lobby(args: LobbyArgs) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(args.bind).await.with_context(|| format!("binding {}", args.bind))?;
    eprintln!("Arena fleet lobby: open http://localhost:{}/", listener.local_addr()?.port());
    let config = server::fleet::lobby::LobbyConfig {
        lobby_key: args.lobby_key,
        join_token_secret: args.join_token_secret,
        token_lifetime: Duration::from_secs(args.token_seconds.max(5)),
        allocator: args.agones_allocator.map(|url| server::fleet::lobby::Allocator {
            url,
            namespace: args.agones_namespace,
            fleet: args.agones_fleet,
            ca_cert: args.agones_allocator_ca,
            client_cert: args.agones_allocator_cert.zip(args.agones_allocator_key),
        }),
        requests_per_minute: args.requests_per_minute,
        trusted_proxies: args.trusted_proxies,
        http: server::config::HttpLimits::default(),
        token_issuer: args.join_token_issuer,
        token_audience: args.join_token_audience,
        directory: match args.directory {
            Some(url) if server::fleet::redis::has_password(&url) => bail!(
                "--directory: the password goes in {}, not in the URL (which shows in process lists and logs)",
                args::DIRECTORY_PASSWORD_VAR
            ),
            other => other,
        },
        directory_password: std::env::var(args::DIRECTORY_PASSWORD_VAR).ok().filter(|p| !p.is_empty()),
        stale_placements_for: server::fleet::lobby::STALE_PLACEMENTS_FOR,
    };
    server::fleet::lobby::run(listener, config, shutdown_signal()).await.context("lobby failed")?;
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}

async fn run_bots(args: BotsArgs) -> anyhow::Result<()> {
    if args.count == 0 || args.count > 5000 {
        bail!("--count must be 1..=5000");
    }
    if !(args.seconds > 0.0 && args.seconds <= 3600.0) {
        bail!("--seconds must be in (0, 3600]");
    }
    let config = BotsConfig {
        url: args.url,
        count: args.count,
        seconds: args.seconds,
        input_hz: args.input_hz.clamp(1, 120),
        seed: args.seed,
        room: args.room,
        rooms: args.rooms,
        room_bots: args.room_bots,
        net_sim: args.net_sim,
        ..BotsConfig::default()
    };
    // Hard limit: the run can never outlive its budget by more than a minute.
    let budget = Duration::from_secs_f64(args.seconds + 60.0);
    let report = tokio::time::timeout(budget, bots::run(config)).await.context("bots run exceeded its time budget")?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("clients               {}", report.clients);
        println!("connected             {}", report.connected);
        println!("connect failures      {}", report.connect_failures);
        println!("disconnects           {}", report.disconnects);
        println!("decode errors         {}", report.decode_errors);
        println!("reconstruction errors {}", report.reconstruction_errors);
        println!("snapshots/client/s    {:.1}", report.snapshots_per_client_s);
        println!("bytes/client/s        {:.0}", report.bytes_per_client_s);
        println!("entities in view      {:.1}", report.entities_in_view_mean);
        println!("rtt p50 / p99 (ms)    {:.2} / {:.2}", report.rtt_ms_p50, report.rtt_ms_p99);
        println!("rooms                 {}", report.rooms.join(" "));
        for reason in &report.disconnect_reasons {
            println!("  ended: {reason}");
        }
    }
    if !report.is_clean() {
        bail!("bots run was not clean");
    }
    Ok(())
}

async fn serve_replay(path: PathBuf, bind: SocketAddr) -> anyhow::Result<()> {
    let file = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let replay = server::replay::format::read(std::io::BufReader::new(file))
        .with_context(|| format!("reading {}", path.display()))?;
    if replay.tail != server::replay::format::TailStatus::Clean {
        eprintln!("warning: {}: {}", path.display(), replay.tail);
    }
    let listener = tokio::net::TcpListener::bind(bind).await.with_context(|| format!("binding {bind}"))?;
    let port = listener.local_addr()?.port();
    eprintln!("Replay of {} is up: open http://localhost:{port}/ in a browser", path.display());
    let config = ServerConfig { snapshot_hz: 30, ..ServerConfig::default() };
    server::run_replay(listener, config, replay, shutdown_signal()).await.context("server failed")?;
    Ok(())
}

/// `replay verify`'s exit status when the file was verified up to a cut tail (its last record
/// incomplete: the expected state after a crash).
const VERIFY_CUT_TAIL: i32 = 2;
/// `replay verify`'s exit status for a damaged file (a corrupt record before the end) or a
/// re-simulation that diverged; also when the file cannot be read at all (1, as any error).
const VERIFY_DAMAGED: i32 = 1;

fn replay(command: ReplayCommand) -> anyhow::Result<()> {
    use server::replay::format;
    let load = |path: &PathBuf| -> anyhow::Result<format::ReplayFile> {
        let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let replay =
            format::read(std::io::BufReader::new(file)).with_context(|| format!("reading {}", path.display()))?;
        if replay.tail != format::TailStatus::Clean {
            eprintln!("warning: {}: {}", path.display(), replay.tail);
        }
        Ok(replay)
    };
    match command {
        ReplayCommand::Serve { .. } => unreachable!("handled in main"),
        ReplayCommand::Verify { file } => {
            let replay = load(&file)?;
            let started = std::time::Instant::now();
            match server::replay::verify(&replay) {
                Ok(report) => {
                    let elapsed = started.elapsed().as_secs_f64();
                    let match_seconds = f64::from(report.ticks) / f64::from(replay.header.tick_hz.max(1));
                    let what = format!(
                        "{} ticks ({match_seconds:.1} s of play), {} records, {} state hashes match; re-simulated in {:.3} s ({:.0}x real time)",
                        report.ticks,
                        report.records,
                        report.hashes_checked,
                        elapsed,
                        match_seconds / elapsed.max(1e-9),
                    );
                    // The exit status says how much of the file was verified (README, Replays).
                    match &report.tail {
                        format::TailStatus::Clean => {
                            println!("ok: {what}; the whole file");
                            Ok(())
                        }
                        format::TailStatus::Truncated { .. } => {
                            println!("cut: {what}; {} (as after a crash)", report.tail);
                            std::process::exit(VERIFY_CUT_TAIL);
                        }
                        format::TailStatus::Corrupt { .. } => {
                            eprintln!(
                                "{}: damaged: {}; only the {what} before it were verified",
                                file.display(),
                                report.tail
                            );
                            std::process::exit(VERIFY_DAMAGED);
                        }
                    }
                }
                Err(divergence) => {
                    eprintln!("{}: divergent: {divergence}", file.display());
                    std::process::exit(VERIFY_DAMAGED);
                }
            }
        }
        ReplayCommand::Repack { file, out, force } => {
            let replay = load(&file)?;
            if replay.tail != format::TailStatus::Clean && !force {
                anyhow::bail!(
                    "{}: {}; repacking would write a copy that ends cleanly and hides that (use --force to repack the records before it)",
                    file.display(),
                    replay.tail
                );
            }
            let bytes = server::replay::format::write_all(&replay.header, &replay.records);
            std::fs::write(&out, &bytes).with_context(|| format!("writing {}", out.display()))?;
            println!(
                "{}: {} records, {} bytes → {}: {} bytes ({:.1} % of the size); file end: {}",
                file.display(),
                replay.records.len(),
                replay.bytes,
                out.display(),
                bytes.len(),
                100.0 * bytes.len() as f64 / replay.bytes.max(1) as f64,
                replay.tail
            );
            Ok(())
        }
        ReplayCommand::Info { file, json } => {
            let replay = load(&file)?;
            let info = server::replay::info(&replay);
            if json {
                println!("{}", serde_json::to_string(&info)?);
            } else {
                println!("file       {}", file.display());
                println!("map        {} ({} rules, {} Hz)", info.map, info.rules, info.tick_hz);
                println!("length     {} ticks, {:.1} s", info.ticks, info.seconds);
                println!("records    {} ({} bytes), {} chat lines", info.records, info.bytes, info.chat_lines);
                println!(
                    "inputs     {} ({:.2} bytes of file per input; {:.2} with each input stored whole)",
                    info.inputs, info.bytes_per_input, info.unpacked_bytes_per_input
                );
                println!("file end   {}", info.tail);
                if let Some(divergence) = &info.divergence {
                    println!("WARNING    {divergence}");
                }
                println!("players    {}", info.players.len());
                for (rank, p) in info.players.iter().enumerate() {
                    println!(
                        "  {:>3}. {:<18} {:>5} pts  {:>3} kills  {:>3} deaths{}{}",
                        rank + 1,
                        p.name,
                        p.score,
                        p.kills,
                        p.deaths,
                        if p.bot { "  (bot)" } else { "" },
                        if p.present { "" } else { "  (left)" }
                    );
                }
            }
            Ok(())
        }
    }
}
