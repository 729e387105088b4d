//! `arena-server admin URL COMMAND`: the admin API from a shell, for hosts reached over SSH
//! only. The token comes from `--token-file` or `ARENA_ADMIN_TOKEN`, never from an argument
//! (arguments are visible to every user in `ps`). Prints the server's JSON answer.

use std::path::PathBuf;
use std::time::Duration;

/// What to ask the server.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum AdminCommand {
    /// The server and every room: players (address, RTT, bytes/s), spectators, tick p99.
    Rooms,
    /// Remove a player from a room (they cannot come back to it).
    Kick {
        room: String,
        player: u32,
        #[arg(long)]
        message: Option<String>,
    },
    /// Close a room: everyone leaves with the message.
    Close {
        room: String,
        #[arg(long)]
        message: Option<String>,
    },
    /// Set a room's server bots.
    Bots { room: String, bots: u16 },
    /// A notice in every room (or one).
    Broadcast {
        message: String,
        #[arg(long)]
        room: Option<String>,
    },
    /// The banned addresses.
    Bans,
    /// Ban an address (an IPv6 /64) and close its connections; kept across restarts.
    Ban {
        ip: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Lift a ban.
    Unban { ip: String },
    /// Start draining, as SIGTERM does: no new joins, matches finish, then the server stops.
    Drain,
    /// The newest entries of the audit log.
    Audit,
    /// End the current season now; the next begins (the ended season's board is kept).
    EndSeason,
    /// Keep a player id out of rated play (off every board), or let it back with --lift.
    RatedBan {
        player: String,
        #[arg(long)]
        lift: bool,
    },
    /// Erase a player's stored data on request: name, standings and identity.
    ErasePlayer { player: String },
}

#[derive(clap::Args, Debug, Clone)]
pub struct AdminArgs {
    /// The server's base URL, e.g. http://127.0.0.1:8080 or https://arena.example.
    pub url: String,
    /// A file holding the admin token (NAME=SECRET or SECRET); otherwise ARENA_ADMIN_TOKEN.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Trust this CA certificate (PEM) for an https:// server with its own certificate.
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// The token's secret from a `NAME=SECRET` or `SECRET` spec.
fn secret_of(spec: &str) -> Result<String, String> {
    let first = spec.split(',').next().unwrap_or("").trim();
    super::AdminToken::parse(first).map(|token| token.reveal().to_string())
}

/// Runs one command; `Ok` holds the JSON to print, `Err` the message (HTTP errors included).
pub fn run(args: &AdminArgs) -> Result<String, String> {
    let spec = match &args.token_file {
        Some(path) => std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?,
        None => std::env::var("ARENA_ADMIN_TOKEN")
            .map_err(|_| "no token: pass --token-file FILE or set ARENA_ADMIN_TOKEN".to_string())?,
    };
    let token = secret_of(spec.trim())?;
    let base = args.url.trim_end_matches('/');
    let path = |p: &str| format!("{base}{p}");
    use serde_json::json;
    let (method, url, body) = match &args.command {
        AdminCommand::Rooms => ("GET", path("/api/admin/rooms"), None),
        AdminCommand::Kick { room, player, message } => (
            "POST",
            path(&format!("/api/admin/rooms/{}/kick", encode(room))),
            Some(json!({ "player": player, "message": message })),
        ),
        AdminCommand::Close { room, message } => {
            ("POST", path(&format!("/api/admin/rooms/{}/close", encode(room))), Some(json!({ "message": message })))
        }
        AdminCommand::Bots { room, bots } => {
            ("POST", path(&format!("/api/admin/rooms/{}/bots", encode(room))), Some(json!({ "bots": bots })))
        }
        AdminCommand::Broadcast { message, room } => {
            ("POST", path("/api/admin/broadcast"), Some(json!({ "message": message, "room": room })))
        }
        AdminCommand::Bans => ("GET", path("/api/admin/bans"), None),
        AdminCommand::Ban { ip, reason } => {
            ("POST", path("/api/admin/bans"), Some(json!({ "ip": ip, "reason": reason })))
        }
        AdminCommand::Unban { ip } => ("DELETE", path(&format!("/api/admin/bans/{}", encode(ip))), None),
        AdminCommand::Drain => ("POST", path("/api/admin/drain"), Some(json!({}))),
        AdminCommand::Audit => ("GET", path("/api/admin/audit"), None),
        AdminCommand::EndSeason => ("POST", path("/api/admin/seasons/end"), Some(json!({}))),
        AdminCommand::RatedBan { player, lift } => (
            "POST",
            path(&format!("/api/admin/players/{}/rated-ban", encode(player))),
            Some(json!({ "banned": !lift })),
        ),
        AdminCommand::ErasePlayer { player } => {
            ("DELETE", path(&format!("/api/admin/players/{}", encode(player))), None)
        }
    };
    let agent = agent(args.ca_cert.as_deref())?;
    let authorization = format!("Bearer {token}");
    let response = match (method, body) {
        ("GET", _) => agent.get(&url).header("Authorization", &authorization).call(),
        ("DELETE", _) => agent.delete(&url).header("Authorization", &authorization).call(),
        (_, body) => agent
            .post(&url)
            .header("Authorization", &authorization)
            .header("Content-Type", "application/json")
            .send(body.unwrap_or_default().to_string()),
    };
    let mut response = response.map_err(|e| format!("{url}: {e}"))?;
    let status = response.status();
    let text = response.body_mut().read_to_string().map_err(|e| format!("{url}: reading the answer: {e}"))?;
    let pretty = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or(text);
    if status.is_success() { Ok(pretty) } else { Err(format!("HTTP {}: {pretty}", status.as_u16())) }
}

/// A blocking HTTP client with short timeouts that reports HTTP errors as answers, trusting
/// `ca_cert` (PEM) when given.
pub fn agent(ca_cert: Option<&std::path::Path>) -> Result<ureq::Agent, String> {
    agent_with(ca_cert, None)
}

/// [`agent`] that also presents a client certificate (PEM chain and key), for mTLS services
/// such as the Agones allocator.
pub fn agent_with(
    ca_cert: Option<&std::path::Path>,
    client: Option<(&std::path::Path, &std::path::Path)>,
) -> Result<ureq::Agent, String> {
    let mut config = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .user_agent(concat!("arena-server/", env!("CARGO_PKG_VERSION")));
    let mut tls = ureq::tls::TlsConfig::builder();
    if let Some(path) = ca_cert {
        let pem = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(cert)) => Some(cert),
                _ => None,
            })
            .collect();
        if certs.is_empty() {
            return Err(format!("{}: no PEM certificate in it", path.display()));
        }
        tls = tls.root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(certs)));
    }
    if let Some((cert_path, key_path)) = client {
        let read = |path: &std::path::Path| std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()));
        let chain: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(&read(cert_path)?)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(cert)) => Some(cert),
                _ => None,
            })
            .collect();
        let key = ureq::tls::PrivateKey::from_pem(&read(key_path)?)
            .map_err(|e| format!("{}: not a PEM private key: {e}", key_path.display()))?;
        if chain.is_empty() {
            return Err(format!("{}: no PEM certificate in it", cert_path.display()));
        }
        tls = tls.client_cert(Some(ureq::tls::ClientCert::new_with_certs(&chain, key)));
    }
    config = config.tls_config(tls.build());
    Ok(config.build().into())
}

/// Percent-encodes a path segment (room codes and addresses are plain, but never trust input).
fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b':' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}
