//! What every connection shares ([`NetContext`]): the configuration, the rooms, the limits on
//! open connections (server-wide and per address) and what `net` asks of the operator's side
//! ([`Operator`], handed in at construction: `net` imports nothing of `admin` or `lan`).

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::HeaderMap;
use axum::response::Response;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ServerConfig;
use crate::rate::address_key;
use crate::room::registry::Registry;

/// Unknown room codes one address (an IPv6 /64) may ask for a minute, and at once: a player
/// mistyping a code a few times is never near it; a sweep of the 331,776 codes from one address
/// would take over a week. Loopback counts too (a local proxy without `--trusted-proxy` puts
/// everyone behind one address, and then nobody may sweep either).
pub const CODE_MISSES_PER_MINUTE: f64 = 30.0;

/// What `net` asks of the operator's side (`admin` implements it).
// The refusal is the response itself, built once per refused request (as in `admin::api`).
#[allow(clippy::result_large_err)]
pub trait Operator: Send + Sync {
    /// Whether the operator banned this address (an IPv6 /64).
    fn is_banned(&self, ip: IpAddr) -> bool;
    /// `Ok` when the request carries a valid operator's token (for `/metrics` behind
    /// `--metrics-require-token`); otherwise the answer to send.
    fn authorize(
        &self,
        ctx: &NetContext,
        peer: IpAddr,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<(), Response>;
}

/// No operator: nobody banned, nothing authorized (tests and tools without administration).
#[derive(Debug, Default)]
pub struct NoOperator;

impl Operator for NoOperator {
    fn is_banned(&self, _ip: IpAddr) -> bool {
        false
    }

    fn authorize(&self, _: &NetContext, _: IpAddr, _: &HeaderMap, _: Option<&str>) -> Result<(), Response> {
        Err(axum::response::IntoResponse::into_response((axum::http::StatusCode::NOT_FOUND, "administration is off\n")))
    }
}

/// What every connection task shares.
pub struct NetContext {
    pub config: Arc<ServerConfig>,
    pub rooms: Arc<Registry>,
    /// Fires when the server starts shutting down (connections still in their handshake leave).
    pub shutdown: CancellationToken,
    /// Tracks connection tasks so shutdown can wait for their Close frames.
    pub tracker: TaskTracker,
    pub(crate) next_conn: AtomicU64,
    /// WebSocket connections open now (joined or still in their handshake).
    pub open_connections: std::sync::atomic::AtomicUsize,
    /// Serving and not draining (`/readyz`).
    pub ready: std::sync::atomic::AtomicBool,
    /// Open connections per address (loopback not counted), for `--max-connections-per-ip`.
    per_ip: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, u32>>,
    /// The operator's side: bans, and tokens for `/metrics` (`admin::Admin`).
    pub operator: Arc<dyn Operator>,
    /// Joins and failed credentials per address.
    pub join_limits: crate::auth::JoinLimits,
    /// Room codes asked for and not found, per address (`GET /api/rooms/{code}` and hellos
    /// naming a code): past [`CODE_MISSES_PER_MINUTE`] every lookup by code from that address is
    /// refused, found or not, so the code space cannot be swept for private rooms.
    pub code_misses: crate::rate::PerAddress,
    /// Fired by the operator (`POST /api/admin/drain`): drain as on the first SIGTERM.
    pub drain_request: CancellationToken,
    /// What `/metrics` shows (collectors reading the rooms at scrape time).
    pub metrics: prometheus_client::registry::Registry,
}

/// Gives a connection's slots back when its task ends, however it ends.
pub struct ConnectionSlot(pub Arc<NetContext>, pub std::net::IpAddr);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.release(self.1);
    }
}

/// Why a connection was not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `--max-connections` are open.
    ServerFull,
    /// `--max-connections-per-ip` are open from this address.
    TooManyFromAddress,
}

impl NetContext {
    /// Claims a connection slot for a peer at `ip`: refused when the server is at its connection
    /// limit (`max_connections`, so a flood cannot exhaust file descriptors) or this address at
    /// its own (`max_connections_per_ip`; loopback is exempt: local tools, load tests and a
    /// reverse proxy on this machine).
    pub fn try_open(&self, ip: std::net::IpAddr) -> Result<(), Refused> {
        let ip = address_key(ip);
        let limit = self.config.max_connections;
        let previous = self.open_connections.fetch_add(1, Ordering::Relaxed);
        if previous >= limit {
            self.open_connections.fetch_sub(1, Ordering::Relaxed);
            return Err(Refused::ServerFull);
        }
        if !ip.is_loopback() && self.config.max_connections_per_ip > 0 {
            let mut per_ip = self.per_ip.lock().expect("per-ip lock");
            let open = per_ip.entry(ip).or_insert(0);
            if *open >= self.config.max_connections_per_ip {
                if *open == 0 {
                    per_ip.remove(&ip);
                }
                drop(per_ip);
                self.open_connections.fetch_sub(1, Ordering::Relaxed);
                return Err(Refused::TooManyFromAddress);
            }
            *open += 1;
        }
        Ok(())
    }

    /// Gives back the slot [`NetContext::try_open`] claimed for `ip`.
    pub fn release(&self, ip: std::net::IpAddr) {
        let ip = address_key(ip);
        self.open_connections.fetch_sub(1, Ordering::Relaxed);
        if !ip.is_loopback() && self.config.max_connections_per_ip > 0 {
            let mut per_ip = self.per_ip.lock().expect("per-ip lock");
            if let Some(open) = per_ip.get_mut(&ip) {
                *open = open.saturating_sub(1);
                if *open == 0 {
                    per_ip.remove(&ip);
                }
            }
        }
    }
}

impl NetContext {
    pub fn new(
        config: Arc<ServerConfig>,
        rooms: Arc<Registry>,
        shutdown: CancellationToken,
        tracker: TaskTracker,
        operator: Arc<dyn Operator>,
    ) -> NetContext {
        NetContext {
            operator,
            join_limits: crate::auth::JoinLimits::new(config.joins_per_minute_per_ip),
            code_misses: crate::rate::PerAddress::new(CODE_MISSES_PER_MINUTE),
            drain_request: CancellationToken::new(),
            metrics: crate::metrics::registry(rooms.clone()),
            config,
            rooms,
            shutdown,
            tracker,
            ready: std::sync::atomic::AtomicBool::new(false),
            per_ip: Default::default(),
            next_conn: AtomicU64::new(1),
            open_connections: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::sync::Arc;

    use super::*;
    use crate::room::registry::Registry;
    use crate::stats::RoomStats;

    #[test]
    fn one_address_gets_its_own_limit_and_loopback_is_exempt() {
        let config =
            Arc::new(ServerConfig { max_connections: 10, max_connections_per_ip: 3, ..ServerConfig::default() });
        let rooms = Registry::new(config.clone(), Arc::new(RoomStats::default()));
        let ctx = NetContext::new(config, rooms, CancellationToken::new(), TaskTracker::new(), Arc::new(NoOperator));
        let home: IpAddr = "192.168.1.50".parse().unwrap();
        let other: IpAddr = "192.168.1.51".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(ctx.try_open(home), Ok(()));
        }
        assert_eq!(ctx.try_open(home), Err(Refused::TooManyFromAddress), "the fourth from one address");
        assert_eq!(ctx.try_open(other), Ok(()), "another address is not affected");
        ctx.release(home);
        assert_eq!(ctx.try_open(home), Ok(()), "a closed connection frees its slot");
        // Loopback: only the server-wide limit (10) applies.
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let mut opened = 0;
        while ctx.try_open(local).is_ok() {
            opened += 1;
        }
        assert_eq!(opened, 10 - 4, "loopback fills what is left of the server-wide limit");
        assert_eq!(ctx.try_open(other), Err(Refused::ServerFull));
        // A proxy on this machine seen through a dual-stack socket is loopback too; an IPv6
        // host's other addresses in its /64 share its count.
        assert_eq!(address_key("::ffff:127.0.0.1".parse().unwrap()), local);
        assert_eq!(
            address_key("2001:db8:1:2::5".parse().unwrap()),
            address_key("2001:db8:1:2:ffff::9".parse().unwrap())
        );
    }
}
