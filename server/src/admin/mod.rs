//! Administration: `/admin` (a page) and `/api/admin/…` (JSON) for the server's operator,
//! authorized by bearer tokens; a ban list kept in a file; an append-only audit log.
//!
//! Tokens are named (`--admin-token ops=SECRET`, repeatable; the name goes in the audit log),
//! compared in constant time, accepted only in the `Authorization` header (never in a URL, and
//! no cookies, so no CSRF), and never logged. With no token configured, a server on loopback
//! generates one and prints it once; any other server has administration off.
//!
//! Every operation is typed ([`crate::room::ops::RoomOp`] for one room; bans, notices and the drain for the
//! server) and every one is appended to the audit log: who (the token's name), from where,
//! what, when, and how it went.

pub mod api;
pub mod cli;
pub mod page;
pub mod players;

pub use crate::config::{AdminConfig, AdminToken, MIN_TOKEN_CHARS};

use std::collections::{BTreeMap, VecDeque};
use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

/// Audit entries kept in memory for `/api/admin/audit` (the file keeps everything).
const AUDIT_MEMORY: usize = 500;

/// What the admin API's handlers share: the server's connection context and the operator's
/// state (tokens, bans, audit log).
pub struct AdminState {
    pub net: std::sync::Arc<crate::net::context::NetContext>,
    pub admin: std::sync::Arc<Admin>,
}

impl std::ops::Deref for AdminState {
    type Target = crate::net::context::NetContext;

    fn deref(&self) -> &crate::net::context::NetContext {
        &self.net
    }
}

/// One banned address (an IPv6 /64).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Ban {
    pub ip: IpAddr,
    pub reason: String,
    /// Unix seconds.
    pub at: u64,
    /// The token's name that banned it.
    pub by: String,
}

/// One line of the audit log.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuditEntry {
    /// Unix milliseconds.
    pub at_ms: u64,
    /// The token's name.
    pub who: String,
    /// The operator's address.
    pub from: String,
    /// The operation, e.g. `kick`, `ban`, `close_room`.
    pub action: String,
    /// What it acted on (room code, player, address), when anything.
    pub target: String,
    /// `ok`, or the error.
    pub outcome: String,
}

/// The operator's state for a running server.
pub struct Admin {
    tokens: Vec<AdminToken>,
    bans: Mutex<BTreeMap<IpAddr, Ban>>,
    bans_file: Option<PathBuf>,
    audit_file: Option<PathBuf>,
    audit: Mutex<VecDeque<AuditEntry>>,
    /// Failed tokens per address.
    pub limits: crate::auth::JoinLimits,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin").field("tokens", &self.tokens).field("bans_file", &self.bans_file).finish()
    }
}

impl Admin {
    /// Loads the ban list (a missing file is an empty list; an unreadable one is an error, so a
    /// typo never silently lifts every ban).
    pub fn new(config: &AdminConfig) -> Result<Admin, String> {
        let mut bans = BTreeMap::new();
        if let Some(path) = &config.bans_file {
            match std::fs::read_to_string(path) {
                Ok(text) => {
                    let list: Vec<Ban> = serde_json::from_str(&text)
                        .map_err(|e| format!("--bans-file {}: not a ban list: {e}", path.display()))?;
                    for ban in list {
                        bans.insert(crate::rate::address_key(ban.ip), ban);
                    }
                }
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(format!("--bans-file {}: {error}", path.display())),
            }
        }
        Ok(Admin {
            tokens: config.tokens.clone(),
            bans: Mutex::new(bans),
            bans_file: config.bans_file.clone(),
            audit_file: config.audit_log.clone(),
            audit: Mutex::new(VecDeque::new()),
            limits: crate::auth::JoinLimits::new(0),
        })
    }

    pub fn is_on(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// The name of the token `presented` is, comparing against every token in constant time.
    pub fn authorize(&self, presented: &str) -> Option<&str> {
        let mut found = None;
        for token in &self.tokens {
            if crate::auth::constant_time_eq(presented.as_bytes(), token.reveal().as_bytes()) {
                found = Some(token.name.as_str());
            }
        }
        found
    }

    /// Whether `ip` (or its /64) is banned.
    pub fn is_banned(&self, ip: IpAddr) -> bool {
        let key = crate::rate::address_key(ip);
        self.bans.lock().expect("bans lock").contains_key(&key)
    }

    pub fn bans(&self) -> Vec<Ban> {
        self.bans.lock().expect("bans lock").values().cloned().collect()
    }

    /// Bans `ip` and saves the list. Loopback cannot be banned (every local tool shares it).
    pub fn ban(&self, ip: IpAddr, reason: String, by: &str) -> Result<Ban, String> {
        let key = crate::rate::address_key(ip);
        if key.is_loopback() || key.is_unspecified() {
            return Err("loopback and unspecified addresses cannot be banned".to_string());
        }
        let ban = Ban { ip: key, reason, at: crate::stats::unix_ms() / 1000, by: by.to_string() };
        let mut bans = self.bans.lock().expect("bans lock");
        bans.insert(key, ban.clone());
        self.save(&bans)?;
        Ok(ban)
    }

    /// Lifts a ban; false when there was none.
    pub fn unban(&self, ip: IpAddr) -> Result<bool, String> {
        let key = crate::rate::address_key(ip);
        let mut bans = self.bans.lock().expect("bans lock");
        let removed = bans.remove(&key).is_some();
        if removed {
            self.save(&bans)?;
        }
        Ok(removed)
    }

    /// Writes the list next to the file and renames it over (a crash never leaves half a list).
    fn save(&self, bans: &BTreeMap<IpAddr, Ban>) -> Result<(), String> {
        let Some(path) = &self.bans_file else { return Ok(()) };
        let list: Vec<&Ban> = bans.values().collect();
        let text = serde_json::to_string_pretty(&list).expect("bans serialize");
        write_atomically(path, text.as_bytes()).map_err(|e| format!("saving {}: {e}", path.display()))
    }

    /// Appends an entry to the audit log (file, memory and the server log).
    pub fn audit(&self, entry: AuditEntry) {
        info!(target: "audit", who = %entry.who, from = %entry.from, action = %entry.action, target_ = %entry.target, outcome = %entry.outcome, "admin action");
        if let Some(path) = &self.audit_file {
            let line = serde_json::to_string(&entry).expect("audit entries serialize");
            let written = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::OpenOptions::new().create(true).append(true).open(path))
                .and_then(|mut file| writeln!(file, "{line}"));
            if let Err(error) = written {
                warn!(path = %path.display(), %error, "cannot append to the audit log");
            }
        }
        let mut memory = self.audit.lock().expect("audit lock");
        if memory.len() == AUDIT_MEMORY {
            memory.pop_front();
        }
        memory.push_back(entry);
    }

    /// The newest `limit` audit entries, oldest first.
    pub fn recent_audit(&self, limit: usize) -> Vec<AuditEntry> {
        let memory = self.audit.lock().expect("audit lock");
        memory.iter().skip(memory.len().saturating_sub(limit)).cloned().collect()
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let temporary = path.with_extension("tmp");
    {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_named_long_and_never_shown() {
        let token = AdminToken::parse("ops=0123456789abcdef").unwrap();
        assert_eq!(token.name, "ops");
        assert!(!format!("{token:?}").contains("0123456789abcdef"));
        assert_eq!(AdminToken::parse("0123456789abcdefXYZ").unwrap().name, "admin");
        assert!(AdminToken::parse("ops=short").is_err());
        assert!(AdminToken::parse("ops=has a space in it ok").is_err());
        // Base64 secrets end in `=`: the whole spec is the secret, and errors never echo it.
        let base64 = AdminToken::parse("q83vEjRWeJq83vEjRWeJqw==").unwrap();
        assert_eq!((base64.name.as_str(), base64.reveal()), ("admin", "q83vEjRWeJq83vEjRWeJqw=="));
        let error = AdminToken::parse("abcdefgh=").unwrap_err();
        assert!(!error.contains("abcdefgh"), "{error}");
        let admin = Admin::new(&AdminConfig { tokens: vec![token], ..AdminConfig::default() }).unwrap();
        assert_eq!(admin.authorize("0123456789abcdef"), Some("ops"));
        assert_eq!(admin.authorize("0123456789abcdeF"), None);
        assert_eq!(admin.authorize(""), None);
        assert_eq!(AdminToken::generate().reveal().len(), 32);
    }

    #[test]
    fn bans_survive_a_restart_and_cover_a_slash_64() {
        let dir = std::env::temp_dir().join(format!("arena-bans-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let config = AdminConfig { bans_file: Some(dir.join("bans.json")), ..AdminConfig::default() };
        let admin = Admin::new(&config).unwrap();
        admin.ban("203.0.113.7".parse().unwrap(), "spam".into(), "ops").unwrap();
        admin.ban("2001:db8:1:2::5".parse().unwrap(), "cheat".into(), "ops").unwrap();
        assert!(admin.ban("127.0.0.1".parse().unwrap(), "x".into(), "ops").is_err());
        let again = Admin::new(&config).unwrap();
        assert!(again.is_banned("203.0.113.7".parse().unwrap()));
        assert!(again.is_banned("2001:db8:1:2:ffff::1".parse().unwrap()), "the whole /64");
        assert!(!again.is_banned("203.0.113.8".parse().unwrap()));
        assert!(again.unban("203.0.113.7".parse().unwrap()).unwrap());
        assert!(!Admin::new(&config).unwrap().is_banned("203.0.113.7".parse().unwrap()));
        std::fs::write(dir.join("bans.json"), "not json").unwrap();
        assert!(Admin::new(&config).is_err(), "a broken ban list stops the server instead of lifting bans");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
