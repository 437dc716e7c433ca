//! The keys tokens are checked with: the HS256 secret, public keys from
//! PEM files, and a JWKS document (a file or an http(s) URL) read again on
//! a schedule and, at a bounded rate, when a token names a key it lacks.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Header};

use super::AuthError;
use crate::GatewayError;
use crate::config::{Auth, PublicKey, parse_alg};

/// The asymmetric algorithms accepted, besides HS256.
pub(crate) const PUBLIC_KEY_ALGORITHMS: [Algorithm; 3] =
    [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

/// A JWKS document is refused above this size.
const MOST_JWKS_BYTES: u64 = 1 << 20;

/// How long a JWKS URL may take to answer.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// One verification key, with the only algorithm it checks.
#[derive(Clone)]
pub(crate) struct Key {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

/// Every key a gateway accepts tokens signed with.
pub(crate) struct KeyRing {
    secret: Option<DecodingKey>,
    fixed: Vec<Key>,
    jwks: Option<Jwks>,
}

/// A JWKS document and the keys last read from it.
struct Jwks {
    source: JwksSource,
    keys: RwLock<Arc<Vec<Key>>>,
    refresh_every: Duration,
    unknown_kid_every: Duration,
    /// When it was last read (or tried): serialises reads and bounds the
    /// rate of those for unknown keys.
    last_read: tokio::sync::Mutex<Option<Instant>>,
    reads: jim_service::Outcomes,
}

#[derive(Debug, Clone)]
enum JwksSource {
    File(PathBuf),
    /// A URL, and the CA its server's certificate must come from (by
    /// default, Mozilla's roots).
    Url(String, Option<Vec<ureq::tls::Certificate<'static>>>),
}

impl std::fmt::Display for JwksSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwksSource::File(path) => write!(f, "{}", path.display()),
            JwksSource::Url(url, _) => f.write_str(url),
        }
    }
}

impl KeyRing {
    /// The keys `auth` configures; a JWKS file is read now, a JWKS URL
    /// when first needed (see [`refresh_loop`](Self::refresh_loop)).
    pub(crate) fn from_config(auth: &Auth, reads: jim_service::Outcomes) -> Result<KeyRing, GatewayError> {
        let secret = auth
            .jwt_secret
            .as_deref()
            .map(|s| DecodingKey::from_secret(s.as_bytes()));
        let fixed = auth.keys.iter().map(read_pem).collect::<Result<Vec<_>, _>>()?;
        let jwks = match auth.jwks.as_deref() {
            None => None,
            Some(source) => {
                let source = if source.starts_with("http://") || source.starts_with("https://") {
                    JwksSource::Url(
                        source.to_owned(),
                        auth.jwks_ca.as_deref().map(read_ca).transpose()?,
                    )
                } else {
                    JwksSource::File(PathBuf::from(source))
                };
                let keys = match &source {
                    JwksSource::File(path) => parse_jwks(&read_file(path)?)
                        .map_err(|e| GatewayError::Config(format!("auth.jwks {}: {e}", path.display())))?,
                    JwksSource::Url(..) => Vec::new(),
                };
                Some(Jwks {
                    source,
                    keys: RwLock::new(Arc::new(keys)),
                    refresh_every: Duration::from_secs(auth.jwks_refresh_secs),
                    unknown_kid_every: Duration::from_secs(auth.jwks_unknown_kid_secs),
                    last_read: tokio::sync::Mutex::new(None),
                    reads,
                })
            }
        };
        Ok(KeyRing { secret, fixed, jwks })
    }

    /// Only an HS256 secret.
    pub(crate) fn secret_only(secret: &[u8]) -> KeyRing {
        KeyRing {
            secret: Some(DecodingKey::from_secret(secret)),
            fixed: Vec::new(),
            jwks: None,
        }
    }

    /// Whether a JWKS is configured (and wants refreshing).
    pub(crate) fn has_jwks(&self) -> bool {
        self.jwks.is_some()
    }

    /// The key for a token with this header.
    pub(crate) fn key_for(&self, header: &Header) -> Result<Key, AuthError> {
        if header.alg == Algorithm::HS256 {
            return match &self.secret {
                Some(secret) => Ok(Key {
                    kid: None,
                    alg: Algorithm::HS256,
                    key: secret.clone(),
                }),
                None => Err(AuthError::rejected(
                    "algorithm not accepted",
                    "an HS256 token, and no auth.jwt_secret is configured",
                )),
            };
        }
        if !PUBLIC_KEY_ALGORITHMS.contains(&header.alg) {
            return Err(AuthError::rejected(
                "algorithm not accepted",
                format!(
                    "{:?}: the gateway accepts HS256, RS256, ES256 and EdDSA",
                    header.alg
                ),
            ));
        }
        let fetched = self.jwks.as_ref().map(Jwks::keys).unwrap_or_default();
        let all = || self.fixed.iter().chain(fetched.iter());
        let found = match &header.kid {
            Some(kid) => all().find(|key| key.kid.as_deref() == Some(kid)),
            None => {
                let mut of_alg = all().filter(|key| key.alg == header.alg);
                match (of_alg.next(), of_alg.next()) {
                    (Some(only), None) => Some(only),
                    (Some(_), Some(_)) => {
                        return Err(AuthError::rejected(
                            "no key id (kid)",
                            format!(
                                "a {:?} token without a kid, and several {:?} keys",
                                header.alg, header.alg
                            ),
                        ));
                    }
                    _ => None,
                }
            }
        };
        let Some(key) = found else {
            return Err(AuthError::UnknownKey {
                kid: header.kid.clone(),
                alg: header.alg,
            });
        };
        if key.alg != header.alg {
            return Err(AuthError::rejected(
                "algorithm not accepted",
                format!(
                    "key {:?} is {:?}, the token says {:?}",
                    key.kid, key.alg, header.alg
                ),
            ));
        }
        Ok(key.clone())
    }

    /// Reads a JWKS URL for the first time (a file was read already).
    pub(crate) async fn first_read(&self) {
        if let Some(jwks) = &self.jwks
            && let JwksSource::Url(..) = jwks.source
        {
            let _ = jwks.read(&mut *jwks.last_read.lock().await).await;
        }
    }

    /// Reads the JWKS again now (the process was asked to reload): what it
    /// holds afterwards, for the log; `None` without a JWKS.
    pub(crate) async fn reread(&self) -> Option<String> {
        let jwks = self.jwks.as_ref()?;
        let read = jwks.read(&mut *jwks.last_read.lock().await).await;
        Some(match read {
            Ok(keys) => format!("JWKS {} ({keys} keys)", jwks.source),
            Err(e) => format!(
                "JWKS {} NOT read ({e}; keeping the keys read before)",
                jwks.source
            ),
        })
    }

    /// Reads the JWKS again for a token naming a key it lacks, unless one
    /// was read less than `auth.jwks_unknown_kid_secs` ago. Whether the
    /// keys may have changed since the token was checked (a read began
    /// since, this one or another).
    pub(crate) async fn read_for_unknown_key(&self) -> bool {
        let Some(jwks) = &self.jwks else { return false };
        let asked = Instant::now();
        let mut last = jwks.last_read.lock().await;
        if last.is_some_and(|at| at >= asked) {
            return true;
        }
        if last.is_some_and(|at| at.elapsed() < jwks.unknown_kid_every) {
            return false;
        }
        let _ = jwks.read(&mut last).await;
        true
    }

    /// Reads the JWKS every `auth.jwks_refresh_secs` until `stop`.
    pub(crate) async fn refresh_loop(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        let Some(jwks) = &self.jwks else { return };
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(jwks.refresh_every) => {}
            }
            let _ = jwks.read(&mut *jwks.last_read.lock().await).await;
        }
    }

    /// What the ring holds, for the start-up banner.
    pub(crate) fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.secret.is_some() {
            parts.push("HS256 secret".to_owned());
        }
        if !self.fixed.is_empty() {
            parts.push(format!("{} public key(s)", self.fixed.len()));
        }
        if let Some(jwks) = &self.jwks {
            parts.push(format!("JWKS {}", jwks.source));
        }
        parts.join(", ")
    }
}

impl Jwks {
    fn keys(&self) -> Arc<Vec<Key>> {
        Arc::clone(
            &self
                .keys
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Reads the document; on failure keeps the keys it had, and says why.
    /// How many keys it holds now, or why it could not be read.
    async fn read(&self, last: &mut Option<Instant>) -> Result<usize, String> {
        *last = Some(Instant::now());
        let source = self.source.clone();
        let read = tokio::task::spawn_blocking(move || match &source {
            JwksSource::File(path) => read_file(path).map_err(|e| e.to_string()),
            JwksSource::Url(url, ca) => fetch(url, ca.as_deref()),
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()))
        .and_then(|document| parse_jwks(&document));
        match read {
            Ok(keys) => {
                tracing::info!(source = %self.source, keys = keys.len(), "read the JWKS");
                self.reads.ok.increment(1);
                let count = keys.len();
                *self
                    .keys
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(keys);
                Ok(count)
            }
            Err(e) => {
                tracing::warn!(source = %self.source, error = %e, "cannot read the JWKS; keeping the keys read before");
                self.reads.failed.increment(1);
                Err(e)
            }
        }
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, GatewayError> {
    std::fs::read(path).map_err(|e| GatewayError::Config(format!("cannot read {}: {e}", path.display())))
}

/// The certificates of a CA file (PEM), for a JWKS server's.
fn read_ca(path: &Path) -> Result<Vec<ureq::tls::Certificate<'static>>, GatewayError> {
    let pem = read_file(path)?;
    let certs: Vec<_> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(cert)) => Some(cert),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(GatewayError::Config(format!(
            "auth.jwks_ca {}: no certificate in it",
            path.display()
        )));
    }
    Ok(certs)
}

fn fetch(url: &str, ca: Option<&[ureq::tls::Certificate<'static>]>) -> Result<Vec<u8>, String> {
    let mut tls = ureq::tls::TlsConfig::builder();
    if let Some(ca) = ca {
        tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(ca));
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(FETCH_TIMEOUT))
        .tls_config(tls.build())
        .build()
        .into();
    let mut response = agent.get(url).call().map_err(|e| e.to_string())?;
    response
        .body_mut()
        .with_config()
        .limit(MOST_JWKS_BYTES)
        .read_to_vec()
        .map_err(|e| e.to_string())
}

/// The usable keys of a JWKS document: RS256, ES256 (P-256) and EdDSA
/// (Ed25519) signature keys; others are skipped, with a warning.
fn parse_jwks(document: &[u8]) -> Result<Vec<Key>, String> {
    let set: JwkSet = serde_json::from_slice(document).map_err(|e| format!("not a JWKS document: {e}"))?;
    let mut keys = Vec::with_capacity(set.keys.len());
    for jwk in &set.keys {
        let kid = jwk.common.key_id.clone();
        let alg = match (jwk.common.key_algorithm, &jwk.algorithm) {
            (Some(KeyAlgorithm::RS256), _) => Some(Algorithm::RS256),
            (Some(KeyAlgorithm::ES256), _) => Some(Algorithm::ES256),
            (Some(KeyAlgorithm::EdDSA), _) => Some(Algorithm::EdDSA),
            (Some(_), _) => None,
            (None, AlgorithmParameters::RSA(_)) => Some(Algorithm::RS256),
            (None, AlgorithmParameters::EllipticCurve(ec)) if ec.curve == EllipticCurve::P256 => {
                Some(Algorithm::ES256)
            }
            (None, AlgorithmParameters::OctetKeyPair(okp)) if okp.curve == EllipticCurve::Ed25519 => {
                Some(Algorithm::EdDSA)
            }
            (None, _) => None,
        };
        let Some(alg) = alg else {
            tracing::warn!(kid = ?kid, "JWKS: a key of an algorithm the gateway does not accept; skipped");
            continue;
        };
        match DecodingKey::from_jwk(jwk) {
            Ok(key) => keys.push(Key { kid, alg, key }),
            Err(e) => tracing::warn!(kid = ?kid, error = %e, "JWKS: an unusable key; skipped"),
        }
    }
    Ok(keys)
}

/// One `[[auth.keys]]` entry: its PEM file read and parsed.
fn read_pem(key: &PublicKey) -> Result<Key, GatewayError> {
    let pem = read_file(&key.pem)?;
    let alg = parse_alg(&key.alg)?;
    let decoding = match alg {
        Algorithm::RS256 => DecodingKey::from_rsa_pem(&pem),
        Algorithm::ES256 => DecodingKey::from_ec_pem(&pem),
        _ => DecodingKey::from_ed_pem(&pem),
    }
    .map_err(|e| {
        GatewayError::Config(format!(
            "auth.keys {}: not a {} public key: {e}",
            key.pem.display(),
            key.alg
        ))
    })?;
    Ok(Key {
        kid: key.kid.clone(),
        alg,
        key: decoding,
    })
}

impl Key {
    pub(crate) fn alg(&self) -> Algorithm {
        self.alg
    }

    pub(crate) fn decoding(&self) -> &DecodingKey {
        &self.key
    }
}
