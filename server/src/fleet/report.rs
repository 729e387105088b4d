//! A game server's side of the fleet lobby (`--lobby-url`, `--lobby-key`): every 2 s it posts
//! its rooms to the lobby (with several lobbies on one directory, `--lobby-url A,B`: to the one
//! that took the last report, else the next that answers); a goodbye (no rooms, draining) when
//! it stops. Failures are logged once
//! and retried: the lobby is soft state and catches up with the next report. Each report carries
//! the fleet's key and this process's own random key, which binds its name in the lobby (a
//! holder of the fleet key cannot report under it).

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{REPORT_EVERY, Report, ReportAnswer};
pub use crate::config::LobbyLink;
use crate::room::registry::Registry;
use shared::room::RoomCode;

fn snapshot(rooms: &Registry, link: &LobbyLink, max_rooms: u16) -> Report {
    let mut summaries: Vec<_> = rooms.handles().iter().map(|h| h.public.summary()).collect();
    summaries.sort_by_key(|s| s.code);
    Report {
        server: link.instance.clone(),
        url: link.public_url.clone(),
        max_rooms,
        draining: rooms.drain.is_draining(),
        rooms: summaries,
        goodbye: false,
        reserved: rooms.reserved_codes(),
    }
}

/// Posts one report to the lobby at `base`: the codes it reserved for this server's next rooms
/// (none from a lobby of an older version, which answers 204); the error says what went wrong.
async fn post(
    agent: &ureq::Agent,
    base: &str,
    key: &str,
    server_key: &str,
    report: &Report,
) -> Result<Vec<RoomCode>, String> {
    let agent = agent.clone();
    let server_key = server_key.to_string();
    let url = format!("{}/api/fleet/report", base.trim_end_matches('/'));
    let authorization = format!("Bearer {key}");
    let body = serde_json::to_string(report).expect("reports serialize");
    tokio::task::spawn_blocking(move || {
        let response = agent
            .post(&url)
            .header("Authorization", &authorization)
            .header(super::lobby::SERVER_KEY_HEADER, &server_key)
            .header(super::lobby::RESERVE_HEADER, "1")
            .header("Content-Type", "application/json")
            .send(body)
            .map_err(|e| format!("{url}: {e}"))?;
        let status = response.status();
        if status.is_success() {
            let text = response.into_body().with_config().limit(64 * 1024).read_to_string().unwrap_or_default();
            let answer: ReportAnswer = serde_json::from_str(&text).unwrap_or_default();
            return Ok(answer.codes);
        }
        let why = response.into_body().read_to_string().unwrap_or_default();
        Err(format!("{url} answered {status}: {}", why.chars().take(300).collect::<String>()))
    })
    .await
    .map_err(|e| e.to_string())?
}

/// The lobbies of `--lobby-url` (a comma-separated list: lobbies sharing a directory).
pub fn lobbies(url: &str) -> Vec<String> {
    url.split(',').map(str::trim).filter(|u| !u.is_empty()).map(str::to_string).collect()
}

/// Posts `report` to the lobby that took the last one, else to each of the others in turn (the
/// first that takes it is used from then on); the last error when none does.
async fn post_any(
    agent: &ureq::Agent,
    lobbies: &[String],
    current: &mut usize,
    key: &str,
    server_key: &str,
    report: &Report,
) -> Result<Vec<RoomCode>, String> {
    let mut last = String::from("no lobby URL");
    for attempt in 0..lobbies.len() {
        let index = (*current + attempt) % lobbies.len();
        match post(agent, &lobbies[index], key, server_key, report).await {
            Ok(codes) => {
                *current = index;
                return Ok(codes);
            }
            Err(error) => last = error,
        }
    }
    Err(last)
}

/// Where reports go: lobbies over HTTP, or the Redis directory itself.
enum Sink {
    Lobbies { agent: ureq::Agent, lobbies: Vec<String>, current: usize },
    Directory { url: String, password: Option<String>, redis: Option<super::redis::RedisDirectory>, digest: [u8; 32] },
}

impl Sink {
    async fn send(&mut self, link: &LobbyLink, server_key: &str, report: &Report) -> Result<Vec<RoomCode>, String> {
        match self {
            Sink::Lobbies { agent, lobbies, current } => {
                post_any(agent, lobbies, current, &link.key, server_key, report).await
            }
            Sink::Directory { url, password, redis, digest } => {
                if redis.is_none() {
                    *redis = Some(
                        super::redis::RedisDirectory::connect(url, password.as_deref())
                            .await
                            .map_err(|e| e.to_string())?,
                    );
                }
                let directory = redis.as_ref().expect("connected");
                let candidates: Vec<RoomCode> =
                    (0..super::RESERVED_CODES * 2).map(|_| crate::room::random_code()).collect();
                match directory.report(report, digest, &candidates).await.map_err(|e| e.to_string())? {
                    super::redis::Reported::Taken { taken_elsewhere, codes } => {
                        if !taken_elsewhere.is_empty() {
                            warn!(codes = ?taken_elsewhere, "room codes another server of the fleet holds: not listed");
                        }
                        Ok(codes)
                    }
                    super::redis::Reported::NameTaken => Err(format!(
                        "another server reports as {} (a restarted server gets its name back {} s after the old one's last report)",
                        report.server,
                        super::NAME_HELD_FOR.as_secs()
                    )),
                }
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Sink::Lobbies { lobbies, current, .. } => lobbies.get(*current).cloned().unwrap_or_default(),
            Sink::Directory { .. } => "the Redis directory".to_string(),
        }
    }
}

/// Reports until `stop`, then says goodbye.
pub async fn run(rooms: Arc<Registry>, link: LobbyLink, max_rooms: u16, stop: CancellationToken) {
    let agent = match crate::admin::cli::agent(None) {
        Ok(agent) => agent,
        Err(error) => return warn!(%error, "fleet lobby: no HTTP client"),
    };
    // This process's own key: random, never logged; the lobby binds the name to it.
    let server_key = shared::room::host_key_hex(&crate::room::random_host_key())
        + &shared::room::host_key_hex(&crate::room::random_host_key());
    let mut sink = match &link.directory {
        Some((url, password)) => {
            use sha2::Digest;
            let digest: [u8; 32] = sha2::Sha256::digest(server_key.as_bytes()).into();
            info!(instance = %link.instance, "reporting rooms straight into the fleet's Redis directory");
            Sink::Directory { url: url.clone(), password: password.clone(), redis: None, digest }
        }
        None => {
            info!(lobby = %link.url, instance = %link.instance, "reporting rooms to the fleet lobby");
            Sink::Lobbies { agent, lobbies: lobbies(&link.url), current: 0 }
        }
    };
    let stats = &crate::stats::FLEET_REPORTS;
    stats.reporting.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut failing = false;
    let mut every = tokio::time::interval(REPORT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = every.tick() => {}
        }
        let report = snapshot(&rooms, &link, max_rooms);
        let outcome = sink.send(&link, &server_key, &report).await;
        stats.up.store(outcome.is_ok(), std::sync::atomic::Ordering::Relaxed);
        if let Ok(codes) = &outcome {
            rooms.add_reserved_codes(codes);
        }
        match outcome {
            Ok(_) if failing => {
                info!(to = %sink.describe(), "fleet lobby: reporting again");
                failing = false;
            }
            Ok(_) => {}
            Err(error) => {
                stats.failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if !failing {
                    warn!(%error, to = %sink.describe(), "fleet: the report was not stored (matches go on; retrying every 2 s)");
                    failing = true;
                }
            }
        }
    }
    let goodbye = Report { rooms: Vec::new(), draining: true, goodbye: true, ..snapshot(&rooms, &link, max_rooms) };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), sink.send(&link, &server_key, &goodbye)).await;
}
