//! HTTPS and `wss://` on the game port (`--tls-cert`, `--tls-key`, PEM), with rustls (ring).
//! The certificate is re-read when its files change (checked every 30 s), so a renewed
//! certificate (certbot, cert-manager) is picked up without a restart; a renewal that does not
//! load keeps the old one and says why in the log.
//!
//! [`TlsListener`] is an `axum::serve::Listener`: a background task accepts TCP connections and
//! runs each handshake in its own task (bounded in time and in number), so a slow or hostile
//! handshake never holds up the others.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub use crate::config::{RELOAD_EVERY, TlsFiles};

/// A handshake must finish within this.
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once, in all and from one address (an IPv6 /64): a host that
/// opens sockets and never finishes its handshake holds at most a few slots.
const MAX_HANDSHAKES: usize = 256;
const MAX_HANDSHAKES_PER_IP: u32 = 16;
/// Loads the chain and key; an error names the file and what is wrong.
pub fn load(files: &TlsFiles) -> Result<Arc<CertifiedKey>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| format!("--tls-cert {}: {e}", files.cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("--tls-cert {}: {e}", files.cert.display()))?;
    if chain.is_empty() {
        return Err(format!("--tls-cert {}: no certificate in it", files.cert.display()));
    }
    let key =
        PrivateKeyDer::from_pem_file(&files.key).map_err(|e| format!("--tls-key {}: {e}", files.key.display()))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| format!("--tls-key {}: {e}", files.key.display()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| format!("--tls-cert and --tls-key do not belong together: {e}"))?;
    Ok(Arc::new(certified))
}

/// Serves the current certificate; [`Reloading::watch`] swaps in renewals.
#[derive(Debug)]
pub struct Reloading {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().expect("certificate lock").clone())
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl Reloading {
    pub fn new(files: TlsFiles) -> Result<Arc<Reloading>, String> {
        let current = RwLock::new(load(&files)?);
        Ok(Arc::new(Reloading { files, current }))
    }

    /// Re-reads the files when either changed, until `stop`.
    pub async fn watch(self: Arc<Self>, stop: CancellationToken) {
        let stamp = || (modified(&self.files.cert), modified(&self.files.key));
        let mut seen = stamp();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(self.files.reload_every) => {}
            }
            let now = stamp();
            if now == seen {
                continue;
            }
            seen = now;
            match load(&self.files) {
                Ok(key) => {
                    *self.current.write().expect("certificate lock") = key;
                    info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
                }
                Err(error) => warn!(%error, "TLS certificate changed but does not load; keeping the old one"),
            }
        }
    }
}

/// The rustls configuration: HTTP/1.1 (WebSocket upgrades need it), TLS 1.2 and 1.3.
pub fn server_config(resolver: Arc<Reloading>) -> Arc<rustls::ServerConfig> {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// One address's handshake in progress; counted down when the handshake ends.
struct HandshakeSlot(Arc<std::sync::Mutex<HashMap<IpAddr, u32>>>, IpAddr);

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        let mut open = self.0.lock().expect("handshakes lock");
        if let Some(count) = open.get_mut(&self.1) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.1);
            }
        }
    }
}

/// Accepted, handshaken TLS connections for `axum::serve`.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accepts on `listener` until `stop`; `tune` runs on every accepted socket (no delay, send
    /// buffer) before the handshake.
    pub fn new(
        listener: TcpListener,
        config: Arc<rustls::ServerConfig>,
        tune: impl Fn(&TcpStream) + Send + Sync + 'static,
        stop: CancellationToken,
    ) -> std::io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let (sender, ready) = mpsc::channel(64);
        let acceptor = TlsAcceptor::from(config);
        let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
        let per_ip: Arc<std::sync::Mutex<HashMap<IpAddr, u32>>> = Arc::default();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = stop.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let (tcp, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of descriptors and the like: wait a little rather than spin.
                        debug!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                tune(&tcp);
                let key = crate::rate::address_key(peer.ip());
                let slot = {
                    let mut open = per_ip.lock().expect("handshakes lock");
                    let count = open.entry(key).or_insert(0);
                    if *count >= MAX_HANDSHAKES_PER_IP {
                        None
                    } else {
                        *count += 1;
                        Some(HandshakeSlot(per_ip.clone(), key))
                    }
                };
                let Some(slot) = slot else {
                    debug!(%peer, "too many TLS handshakes in progress from this address: connection dropped");
                    continue;
                };
                let Ok(permit) = handshakes.clone().try_acquire_owned() else {
                    debug!(%peer, "too many TLS handshakes in progress: connection dropped");
                    continue;
                };
                let (acceptor, sender) = (acceptor.clone(), sender.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    let _slot = slot;
                    match tokio::time::timeout(HANDSHAKE_LIMIT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let _ = sender.send((stream, peer)).await;
                        }
                        Ok(Err(error)) => debug!(%peer, %error, "TLS handshake failed"),
                        Err(_) => debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept task stopped (shutdown): nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
