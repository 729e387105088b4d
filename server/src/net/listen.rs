//! Every listener's accept loop: the game port (plain or TLS), `--metrics-bind` and the fleet
//! lobby. What `axum::serve` does, plus what a server facing the internet needs before a
//! connection is a request or a WebSocket ([`HttpLimits`]):
//!
//! - a connection's request headers must arrive within `header_timeout` of the connection
//!   becoming idle (accepted, or its last response sent): a silent socket, a half-sent header
//!   and an idle keep-alive connection all end there;
//! - a request (its body too) is answered within `request_timeout`, or with HTTP 408;
//! - one address (an IPv6 /64) holds at most `per_address` such connections, all together at
//!   most `total`; past either a new connection is closed at once. A connection stops counting
//!   when it becomes a WebSocket, which has its own limits (`max_connections_per_ip`);
//! - over TLS, a handshake must finish within `tls_handshake_timeout`, one address has at most
//!   `tls_handshakes_per_address` in progress, and when all `tls_handshakes` slots are taken the
//!   oldest handshake in progress gives its slot to the new one.
//!
//! hyper is given `TCP_NODELAY` and the send buffer of each socket before the first byte.
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, Request};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::config::{HttpLimits, ProxyNet};

/// Connections that are not WebSockets yet, per address and in all.
pub struct Gate {
    limits: HttpLimits,
    trusted: Vec<ProxyNet>,
    open: Mutex<HashMap<IpAddr, u32>>,
    total: AtomicUsize,
}

/// Why a connection was closed at accept.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// This address holds `per_address` connections already.
    Address,
    /// All addresses together hold `total`.
    Total,
}

/// One admitted connection, counted until it is dropped.
pub struct Slot {
    gate: Arc<Gate>,
    /// The address counted against `per_address`; `None` when exempt.
    key: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.gate.total.fetch_sub(1, Ordering::Relaxed);
        if let Some(key) = self.key {
            let mut open = self.gate.open.lock().expect("gate lock");
            if let Some(count) = open.get_mut(&key) {
                *count -= 1;
                if *count == 0 {
                    open.remove(&key);
                }
            }
        }
    }
}

impl Gate {
    pub fn new(limits: HttpLimits, trusted: Vec<ProxyNet>) -> Arc<Gate> {
        Arc::new(Gate { limits, trusted, open: Mutex::default(), total: AtomicUsize::new(0) })
    }

    pub fn limits(&self) -> &HttpLimits {
        &self.limits
    }

    /// Counts a connection from `peer`, or says why it must be closed.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Slot, Refused> {
        let peer = peer.to_canonical();
        let exempt = (peer.is_loopback() && !self.limits.limit_loopback)
            || crate::config::is_trusted_proxy(&self.trusted, peer)
            || self.limits.per_address == 0;
        let key = if exempt { None } else { Some(crate::rate::address_key(peer)) };
        if let Some(key) = key {
            let mut open = self.open.lock().expect("gate lock");
            let count = open.entry(key).or_insert(0);
            if *count >= self.limits.per_address {
                return Err(Refused::Address);
            }
            *count += 1;
        }
        // Counted before the check so that two accepts cannot both take the last place.
        let slot = Slot { gate: self.clone(), key };
        self.total.fetch_add(1, Ordering::Relaxed);
        if self.total.load(Ordering::Relaxed) > self.limits.total {
            drop(slot);
            return Err(Refused::Total);
        }
        Ok(slot)
    }

    /// Connections counted now (all addresses).
    pub fn open(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }
}

/// TLS handshakes in progress: a share per address, and when all slots are taken the oldest
/// handshake is cancelled for the new one.
pub struct Handshakes {
    per_address: u32,
    total: usize,
    inner: Mutex<HandshakesInner>,
}

#[derive(Default)]
struct HandshakesInner {
    next: u64,
    /// In progress, oldest first.
    by_age: BTreeMap<u64, (IpAddr, CancellationToken)>,
    per_address: HashMap<IpAddr, u32>,
}

impl HandshakesInner {
    fn forget(&mut self, id: u64) {
        if let Some((key, _)) = self.by_age.remove(&id)
            && let Some(count) = self.per_address.get_mut(&key)
        {
            *count -= 1;
            if *count == 0 {
                self.per_address.remove(&key);
            }
        }
    }
}

/// One handshake's place; `cancelled` fires when an newer handshake took it.
pub struct Handshake {
    pool: Arc<Handshakes>,
    id: u64,
    pub cancelled: CancellationToken,
}

impl Drop for Handshake {
    fn drop(&mut self) {
        self.pool.inner.lock().expect("handshakes lock").forget(self.id);
    }
}

impl Handshakes {
    pub fn new(per_address: u32, total: usize) -> Arc<Handshakes> {
        Arc::new(Handshakes { per_address, total: total.max(1), inner: Mutex::default() })
    }

    /// A place for a handshake from `peer`; `None` when that address has its share already.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<Handshake> {
        let key = crate::rate::address_key(peer.to_canonical());
        let mut inner = self.inner.lock().expect("handshakes lock");
        if inner.per_address.get(&key).copied().unwrap_or(0) >= self.per_address {
            return None;
        }
        while inner.by_age.len() >= self.total {
            let Some((&oldest, (_, cancel))) = inner.by_age.first_key_value() else { break };
            cancel.cancel();
            inner.forget(oldest);
        }
        let id = inner.next;
        inner.next += 1;
        let cancelled = CancellationToken::new();
        inner.by_age.insert(id, (key, cancelled.clone()));
        *inner.per_address.entry(key).or_insert(0) += 1;
        Some(Handshake { pool: self.clone(), id, cancelled })
    }

    /// Handshakes in progress now.
    pub fn in_progress(&self) -> usize {
        self.inner.lock().expect("handshakes lock").by_age.len()
    }
}

/// Accepts the next TCP connection that `gate` admits (the others are closed at once); `None`
/// once `stop` fires. Errors that a retry can cure (the peer gave up, out of descriptors) are
/// waited out here.
async fn accept(
    listener: &TcpListener,
    gate: &Arc<Gate>,
    stop: &CancellationToken,
) -> Option<(TcpStream, SocketAddr, Slot)> {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return None,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((tcp, peer)) => match gate.admit(peer.ip()) {
                Ok(slot) => return Some((tcp, peer, slot)),
                Err(refused) => debug!(%peer, ?refused, "too many connections: closed at accept"),
            },
            // The peer gave up before the accept: nothing to wait for.
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::ConnectionRefused
                        | std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::ConnectionReset
                ) => {}
            Err(error) => {
                // Out of file descriptors or memory: not fatal, but not worth a busy loop.
                tracing::error!(%error, "accept failed; retrying in 1 s");
                tokio::select! {
                    _ = stop.cancelled() => return None,
                    _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                }
            }
        }
    }
}

/// Serves plain HTTP/1.1 (and WebSocket upgrades) on `listener` until `stop` fires, then lets
/// each open connection finish its request.
pub async fn serve_plain<S>(
    listener: TcpListener,
    app: S,
    tune: impl Fn(&TcpStream),
    gate: Arc<Gate>,
    stop: CancellationToken,
) -> std::io::Result<()>
where
    S: tower::Service<Request, Response = Response, Error = std::convert::Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    let connections = tokio_util::task::TaskTracker::new();
    while let Some((tcp, peer, slot)) = accept(&listener, &gate, &stop).await {
        tune(&tcp);
        connections.spawn(serve_connection(tcp, peer, slot, app.clone(), stop.clone()));
    }
    // As `axum::serve` does: requests in flight finish (the caller bounds the wait).
    connections.close();
    connections.wait().await;
    Ok(())
}

/// Serves HTTPS (and `wss://`) on `listener` until `stop` fires: each accepted socket
/// handshakes in its own task, bounded in time and in number ([`Handshakes`]).
pub async fn serve_tls<S>(
    listener: TcpListener,
    tls: Arc<tokio_rustls::rustls::ServerConfig>,
    app: S,
    tune: impl Fn(&TcpStream),
    gate: Arc<Gate>,
    stop: CancellationToken,
) -> std::io::Result<()>
where
    S: tower::Service<Request, Response = Response, Error = std::convert::Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    let acceptor = TlsAcceptor::from(tls);
    let limits = gate.limits().clone();
    let handshakes = Handshakes::new(limits.tls_handshakes_per_address, limits.tls_handshakes);
    let connections = tokio_util::task::TaskTracker::new();
    while let Some((tcp, peer, slot)) = accept(&listener, &gate, &stop).await {
        let Some(handshake) = handshakes.admit(peer.ip()) else {
            debug!(%peer, "too many TLS handshakes in progress from this address: closed at accept");
            continue;
        };
        tune(&tcp);
        let (acceptor, app, stop) = (acceptor.clone(), app.clone(), stop.clone());
        let timeout = limits.tls_handshake_timeout;
        connections.spawn(async move {
            let stream = tokio::select! {
                outcome = tokio::time::timeout(timeout, acceptor.accept(tcp)) => match outcome {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(error)) => return debug!(%peer, %error, "TLS handshake failed"),
                    Err(_) => return debug!(%peer, "TLS handshake timed out"),
                },
                _ = handshake.cancelled.cancelled() => {
                    return debug!(%peer, "TLS handshake dropped for a newer one (all slots taken)");
                }
                _ = stop.cancelled() => return,
            };
            drop(handshake);
            serve_connection(stream, peer, slot, app, stop).await;
        });
    }
    connections.close();
    connections.wait().await;
    Ok(())
}

/// One connection's requests until it closes, becomes a WebSocket, or `stop` fires (then its
/// request in flight finishes). `slot` is held until then.
async fn serve_connection<I, S>(io: I, peer: SocketAddr, slot: Slot, app: S, stop: CancellationToken)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: tower::Service<Request, Response = Response, Error = std::convert::Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    use tower::ServiceExt;
    let request_timeout = slot.gate.limits.request_timeout;
    let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        let mut request = request.map(axum::body::Body::new);
        request.extensions_mut().insert(ConnectInfo(peer));
        let answer = app.clone().oneshot(request);
        async move {
            match tokio::time::timeout(request_timeout, answer).await {
                Ok(answered) => answered,
                Err(_) => {
                    debug!(%peer, "request not answered in time: 408");
                    let mut response =
                        (axum::http::StatusCode::REQUEST_TIMEOUT, "the request took too long to arrive or to answer\n")
                            .into_response();
                    response
                        .headers_mut()
                        .insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
                    Ok(response)
                }
            }
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(slot.gate.limits.header_timeout)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(connection);
    let outcome = tokio::select! {
        outcome = connection.as_mut() => outcome,
        _ = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = outcome {
        debug!(%peer, %error, "HTTP connection ended with an error");
    }
    drop(slot);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_address: u32, total: usize) -> HttpLimits {
        HttpLimits { per_address, total, limit_loopback: true, ..HttpLimits::default() }
    }

    #[test]
    fn an_address_holds_its_share_and_gets_it_back() {
        let gate = Gate::new(limits(2, 10), vec!["10.0.0.0/8".parse().unwrap()]);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let first = gate.admit(a).unwrap();
        let _second = gate.admit(a).unwrap();
        assert_eq!(gate.admit(a).err(), Some(Refused::Address));
        // Another address, and a trusted proxy however many it holds.
        let _other = gate.admit("192.0.2.2".parse().unwrap()).unwrap();
        let proxies: Vec<_> = (0..5).map(|_| gate.admit("10.1.2.3".parse().unwrap()).unwrap()).collect();
        drop(first);
        assert!(gate.admit(a).is_ok(), "a closed connection gives its place back");
        assert_eq!(gate.open(), 7, "{} open", gate.open());
        drop(proxies);
        assert_eq!(gate.open(), 2);
    }

    #[test]
    fn one_ipv6_64_is_one_address_and_the_total_holds() {
        let gate = Gate::new(limits(1, 2), Vec::new());
        let _a = gate.admit("2001:db8::1".parse().unwrap()).unwrap();
        assert_eq!(gate.admit("2001:db8::2".parse().unwrap()).err(), Some(Refused::Address));
        let _b = gate.admit("2001:db8:0:1::1".parse().unwrap()).unwrap();
        assert_eq!(gate.admit("192.0.2.9".parse().unwrap()).err(), Some(Refused::Total));
        assert_eq!(gate.open(), 2, "a refused connection is not counted");
    }

    #[test]
    fn a_full_handshake_pool_drops_its_oldest_for_a_new_one() {
        let pool = Handshakes::new(2, 3);
        let hostile: Vec<IpAddr> = vec!["192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap()];
        let first = pool.admit(hostile[0]).unwrap();
        let second = pool.admit(hostile[0]).unwrap();
        assert!(pool.admit(hostile[0]).is_none(), "an address holds its share at most");
        let third = pool.admit(hostile[1]).unwrap();
        let real = pool.admit("198.51.100.7".parse().unwrap()).expect("a new client always gets a place");
        assert!(first.cancelled.is_cancelled(), "the oldest handshake gave its place");
        assert!(!second.cancelled.is_cancelled() && !third.cancelled.is_cancelled());
        assert_eq!(pool.in_progress(), 3);
        // The evicted one's drop does not free a place twice.
        drop(first);
        assert_eq!(pool.in_progress(), 3);
        drop(real);
        assert_eq!(pool.in_progress(), 2);
        assert!(pool.admit(hostile[0]).is_some(), "its share came back with the eviction");
    }
}
