//! TLS for listeners: a certificate chain and its private key, from PEM
//! files, reloaded without a restart (when the files change, and when the
//! process asks: on SIGHUP); a bad new pair keeps the one in use and logs
//! why.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// How often the files are checked for a change.
const CHECK_EVERY: Duration = Duration::from_secs(2);

/// Where a listener's certificate and key are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The certificate chain, leaf first (PEM).
    pub cert: PathBuf,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Why a certificate and key cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("TLS {path}: {reason}")]
pub struct TlsError {
    path: String,
    reason: String,
}

impl TlsError {
    fn new(path: &Path, reason: impl std::fmt::Display) -> TlsError {
        TlsError {
            path: path.display().to_string(),
            reason: reason.to_string(),
        }
    }
}

/// The crypto this crate's TLS uses (ring), for clients to share.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A listener's TLS: accepts with the pair read last.
///
/// ```no_run
/// # async fn run(stream: tokio::net::TcpStream) -> Result<(), Box<dyn std::error::Error>> {
/// use jim_service::tls::{ServerTls, TlsFiles};
///
/// let files = TlsFiles { cert: "cert.pem".into(), key: "key.pem".into() };
/// let tls = std::sync::Arc::new(ServerTls::load(&files)?);
/// let encrypted = tls.acceptor(&[]).accept(stream).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct ServerTls {
    files: TlsFiles,
    current: Arc<Current>,
    /// The files' modification times when last read.
    read_at: std::sync::Mutex<(Option<SystemTime>, Option<SystemTime>)>,
}

#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner),
        ))
    }
}

impl ServerTls {
    /// Reads the pair.
    ///
    /// # Errors
    /// A file cannot be read, holds no certificate or key, or the key is
    /// not the certificate's.
    pub fn load(files: &TlsFiles) -> Result<ServerTls, TlsError> {
        let read_at = modified(files);
        let current = Arc::new(Current(RwLock::new(Arc::new(read_pair(files)?))));
        Ok(ServerTls {
            files: files.clone(),
            current,
            read_at: std::sync::Mutex::new(read_at),
        })
    }

    /// Accepts TLS connections with the pair read last; `alpn` lists the
    /// application protocols offered (`http/1.1` for HTTP listeners, none
    /// for `jim1`).
    pub fn acceptor(&self, alpn: &[&[u8]]) -> tokio_rustls::TlsAcceptor {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&self.current) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }

    /// The files it reads.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// Reads the pair again and uses it from the next handshake on.
    ///
    /// # Errors
    /// The new pair is unusable: the one in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let read_at = modified(&self.files);
        let pair = read_pair(&self.files)?;
        *self
            .current
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(pair);
        *self
            .read_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = read_at;
        Ok(())
    }

    /// Reloads when either file's modification time changes, until
    /// `stop`; logs and counts each reload and each refusal. SIGHUP is the
    /// process's to catch ([`crate::Hangups`]), which then calls
    /// [`reload_because`](Self::reload_because).
    pub async fn watch(self: Arc<Self>, stop: CancellationToken, reloads: crate::Outcomes) {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(CHECK_EVERY) => {}
            }
            let seen = *self
                .read_at
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if modified(&self.files) != seen {
                let _ = self.reload_because("the files changed", &reloads);
            }
        }
    }

    /// [`reload`](Self::reload)s, logs and counts the outcome, saying
    /// `why` (`"SIGHUP"`, say).
    ///
    /// # Errors
    /// As [`reload`](Self::reload).
    pub fn reload_because(&self, why: &str, reloads: &crate::Outcomes) -> Result<(), TlsError> {
        let reloaded = self.reload();
        reloads.count(&reloaded);
        match &reloaded {
            Ok(()) => tracing::info!(cert = %self.files.cert.display(), why, "TLS certificate reloaded"),
            Err(e) => {
                // Not again for the same files: wait for another change.
                *self
                    .read_at
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = modified(&self.files);
                tracing::warn!(error = %e, why, "TLS certificate not reloaded; keeping the one in use");
            }
        }
        reloaded
    }
}

fn modified(files: &TlsFiles) -> (Option<SystemTime>, Option<SystemTime>) {
    let at = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    (at(&files.cert), at(&files.key))
}

fn read_pair(files: &TlsFiles) -> Result<CertifiedKey, TlsError> {
    let cert_pem = std::fs::read(&files.cert).map_err(|e| TlsError::new(&files.cert, e))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::new(&files.cert, format!("not PEM certificates: {e}")))?;
    if chain.is_empty() {
        return Err(TlsError::new(&files.cert, "no certificate in it"));
    }
    let key_pem = std::fs::read(&files.key).map_err(|e| TlsError::new(&files.key, e))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| TlsError::new(&files.key, format!("no private key in it: {e}")))?;
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::new(&files.key, e))?;
    let pair = CertifiedKey::new(chain, signing);
    pair.keys_match()
        .map_err(|e| TlsError::new(&files.key, format!("not the certificate's key: {e}")))?;
    Ok(pair)
}
