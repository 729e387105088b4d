//! HTTPS and `wss://` on the game port (`--tls-cert`, `--tls-key`, PEM), with rustls (ring).
//! The certificate is re-read when its files change (checked every 30 s), so a renewed
//! certificate (certbot, cert-manager) is picked up without a restart; a renewal that does not
//! load keeps the old one and says why in the log.
//!
//! `net::listen::serve_tls` accepts and runs each handshake in its own task (bounded in time,
//! per address and in number), so a slow or hostile handshake never holds up the others.

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use crate::config::{RELOAD_EVERY, TlsFiles};

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
