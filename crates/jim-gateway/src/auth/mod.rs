//! Client authentication: signed tokens, or the explicit development mode.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::GatewayError;

mod keys;

pub use crate::config::parse_alg;
use keys::KeyRing;

/// Who a session belongs to, from its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user id (the token's `sub`).
    pub user_id: Arc<str>,
    /// The display name (the `name` claim), stamped as `sender_name`.
    pub name: Option<Arc<str>>,
    /// The avatar URL (the `avatar` claim), stamped as `sender_avatar`.
    pub avatar: Option<Arc<str>>,
    /// When the token expires, in Unix seconds (`None`: it does not, as in
    /// development mode). The session ends then, unless refreshed.
    pub expires_at: Option<u64>,
}

/// The claims of a Jim client token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// Expiry, in Unix seconds (required).
    pub exp: u64,
    /// Issued at, in Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Not valid before, in Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Avatar URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
    /// Issuer (checked against `auth.issuer` when that is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience, when minting; checked against `auth.audience` from the
    /// token itself, where it may also be a list.
    #[serde(default, skip_serializing_if = "Option::is_none", skip_deserializing)]
    pub aud: Option<String>,
}

/// Why a token was refused. What it displays goes into `B003`: a short
/// reason a client author can act on; [`detail`](Self::detail) says more,
/// for the gateway's log only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// An empty token.
    #[error("empty token")]
    Empty,
    /// The token is past its `exp`.
    #[error("token expired")]
    Expired,
    /// The token's `nbf` is still to come.
    #[error("token not valid yet (nbf)")]
    NotYetValid,
    /// The token's `exp` is further away than the gateway accepts.
    #[error("token lifetime too long: it expires in {remaining_secs} s, the maximum is {max_secs} s")]
    TooLong {
        /// Seconds from now to its `exp`.
        remaining_secs: u64,
        /// `auth.max_token_lifetime_secs`.
        max_secs: u64,
    },
    /// The token names a key the gateway does not hold (or names none,
    /// and the gateway holds no key of its algorithm).
    #[error("invalid token: unknown signing key")]
    UnknownKey {
        /// The token's `kid`.
        kid: Option<String>,
        /// The token's `alg`.
        alg: Algorithm,
    },
    /// Refused by a check whose particulars stay in the log (the issuer
    /// or audience expected, the key's algorithm).
    #[error("invalid token: {reason}")]
    Rejected {
        /// What the client is told.
        reason: &'static str,
        /// What the log says.
        detail: String,
    },
    /// Anything else: bad signature, malformed, missing claims.
    #[error("invalid token: {0}")]
    Invalid(String),
}

impl AuthError {
    pub(crate) fn rejected(reason: &'static str, detail: impl Into<String>) -> AuthError {
        AuthError::Rejected {
            reason,
            detail: detail.into(),
        }
    }

    /// Why, in full, for the log.
    pub fn detail(&self) -> String {
        match self {
            AuthError::UnknownKey { kid: Some(kid), alg } => format!("no {alg:?} key with kid {kid:?}"),
            AuthError::UnknownKey { kid: None, alg } => format!("no kid, and no {alg:?} key"),
            AuthError::Rejected { reason, detail } => format!("{reason}: {detail}"),
            other => other.to_string(),
        }
    }
}

/// Verifies client tokens.
pub enum Authenticator {
    /// Development mode: any non-empty token is the user id.
    Dev,
    /// Signed JWTs with a required, checked `exp`.
    Jwt(Box<Verifier>),
}

/// The keys and checks of signed tokens.
pub struct Verifier {
    keys: Arc<KeyRing>,
    /// One validation per accepted algorithm: `exp` and `sub` required,
    /// `nbf` checked, the issuer and audience if configured.
    validations: Vec<(Algorithm, Validation)>,
    /// The longest a token may still have to live, in seconds.
    max_lifetime_secs: u64,
}

pub use crate::config::DEFAULT_MAX_TOKEN_LIFETIME_SECS;

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("keys", &self.keys.describe())
            .field("max_lifetime_secs", &self.max_lifetime_secs)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Authenticator::Dev => f.write_str("Authenticator::Dev"),
            Authenticator::Jwt(verifier) => write!(f, "Authenticator::Jwt({})", verifier.keys.describe()),
        }
    }
}

impl Authenticator {
    /// An HS256 verifier for `secret`, accepting tokens that live at most
    /// [`DEFAULT_MAX_TOKEN_LIFETIME_SECS`].
    pub fn jwt(secret: &[u8]) -> Authenticator {
        Authenticator::jwt_with_max_lifetime(secret, DEFAULT_MAX_TOKEN_LIFETIME_SECS)
    }

    /// An HS256 verifier for `secret` that refuses tokens expiring more
    /// than `max_lifetime_secs` from now.
    pub fn jwt_with_max_lifetime(secret: &[u8], max_lifetime_secs: u64) -> Authenticator {
        let auth = crate::config::Auth {
            max_token_lifetime_secs: max_lifetime_secs,
            ..crate::config::Auth::default()
        };
        Authenticator::checking(KeyRing::secret_only(secret), &auth)
    }

    /// The authenticator the configuration asks for: its PEM keys and a
    /// JWKS file are read now; a JWKS URL when first needed.
    ///
    /// # Errors
    /// [`GatewayError::Config`] without any key outside development mode,
    /// or for a key that cannot be read.
    pub fn from_config(auth: &crate::config::Auth) -> Result<Authenticator, GatewayError> {
        Authenticator::counted(auth, jim_service::Outcomes::default())
    }

    /// As [`from_config`](Self::from_config), counting the JWKS's reads
    /// into `jwks_reads`.
    ///
    /// # Errors
    /// As [`from_config`](Self::from_config).
    pub fn counted(
        auth: &crate::config::Auth,
        jwks_reads: jim_service::Outcomes,
    ) -> Result<Authenticator, GatewayError> {
        if auth.dev {
            return Ok(Authenticator::Dev);
        }
        if auth.jwt_secret.is_none() && auth.keys.is_empty() && auth.jwks.is_none() {
            return Err(GatewayError::Config(
                "no token key configured (auth.jwt_secret, auth.keys or auth.jwks)".into(),
            ));
        }
        Ok(Authenticator::checking(
            KeyRing::from_config(auth, jwks_reads)?,
            auth,
        ))
    }

    /// Tokens signed with `keys`, checked as `auth` says.
    fn checking(keys: KeyRing, auth: &crate::config::Auth) -> Authenticator {
        let validations = [Algorithm::HS256]
            .into_iter()
            .chain(keys::PUBLIC_KEY_ALGORITHMS)
            .map(|alg| {
                let mut validation = Validation::new(alg);
                let mut required = vec!["exp", "sub"];
                required.extend(auth.issuer.as_ref().map(|_| "iss"));
                required.extend(auth.audience.as_ref().map(|_| "aud"));
                validation.set_required_spec_claims(&required);
                validation.validate_nbf = true;
                validation.leeway = auth.leeway_secs;
                if let Some(issuer) = &auth.issuer {
                    validation.set_issuer(&[issuer]);
                }
                match &auth.audience {
                    Some(audience) => validation.set_audience(&[audience]),
                    None => validation.validate_aud = false,
                }
                (alg, validation)
            })
            .collect();
        Authenticator::Jwt(Box::new(Verifier {
            keys: Arc::new(keys),
            validations,
            max_lifetime_secs: auth.max_token_lifetime_secs,
        }))
    }

    /// Whether this is development mode.
    pub fn is_dev(&self) -> bool {
        matches!(self, Authenticator::Dev)
    }

    /// What tokens are checked with, for the start-up banner.
    pub fn describe(&self) -> String {
        match self {
            Authenticator::Dev => "DEVELOPMENT (any non-empty token is the user id)".to_owned(),
            Authenticator::Jwt(verifier) => {
                format!("JWT (sub = user id, exp required): {}", verifier.keys.describe())
            }
        }
    }

    /// The task that reads a JWKS again on its schedule until `stop`, if
    /// one is configured.
    pub fn key_refresh(
        &self,
        stop: tokio_util::sync::CancellationToken,
    ) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
        match self {
            Authenticator::Jwt(verifier) if verifier.keys.has_jwks() => {
                Some(Arc::clone(&verifier.keys).refresh_loop(stop))
            }
            _ => None,
        }
    }

    /// Reads the keys that are not read yet (a JWKS URL); up to the
    /// fetch timeout (5 s). A gateway starts with its keys.
    pub async fn read_keys(&self) {
        if let Authenticator::Jwt(verifier) = self {
            verifier.keys.first_read().await;
        }
    }

    /// Reads the JWKS again now (a reload asked by the operator): what it
    /// holds afterwards, or `None` when there is no JWKS.
    pub async fn reload_keys(&self) -> Option<String> {
        match self {
            Authenticator::Jwt(verifier) => verifier.keys.reread().await,
            Authenticator::Dev => None,
        }
    }

    /// Checks a token with the keys held now.
    ///
    /// # Errors
    /// An [`AuthError`] saying why it was refused.
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        if token.is_empty() {
            return Err(AuthError::Empty);
        }
        match self {
            Authenticator::Dev => Ok(Identity {
                user_id: token.into(),
                name: None,
                avatar: None,
                expires_at: None,
            }),
            Authenticator::Jwt(verifier) => verifier.verify(token),
        }
    }

    /// As [`verify`](Self::verify); a token naming a key the gateway lacks
    /// first has the JWKS read again (at most once per
    /// `auth.jwks_unknown_kid_secs`), so that a key published since is
    /// accepted at once.
    ///
    /// # Errors
    /// An [`AuthError`] saying why it was refused.
    pub async fn verify_fetching_keys(&self, token: &str) -> Result<Identity, AuthError> {
        match (self.verify(token), self) {
            (Err(AuthError::UnknownKey { .. }), Authenticator::Jwt(verifier))
                if verifier.keys.read_for_unknown_key().await =>
            {
                self.verify(token)
            }
            (verified, _) => verified,
        }
    }
}

impl Verifier {
    fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(refusal)?;
        let key = self.keys.key_for(&header)?;
        let validation = self
            .validations
            .iter()
            .find_map(|(alg, validation)| (*alg == key.alg()).then_some(validation))
            .ok_or_else(|| AuthError::rejected("algorithm not accepted", format!("{:?}", key.alg())))?;
        let data = jsonwebtoken::decode::<Claims>(token, key.decoding(), validation).map_err(refusal)?;
        let claims = data.claims;
        if claims.sub.is_empty() {
            return Err(AuthError::Invalid("empty subject".into()));
        }
        let remaining_secs = claims.exp.saturating_sub(unix_now());
        if remaining_secs > self.max_lifetime_secs {
            return Err(AuthError::TooLong {
                remaining_secs,
                max_secs: self.max_lifetime_secs,
            });
        }
        Ok(Identity {
            user_id: claims.sub.into(),
            name: claims.name.map(Into::into),
            avatar: claims.avatar.map(Into::into),
            expires_at: Some(claims.exp),
        })
    }
}

/// Why jsonwebtoken refused a token, in words a client author can act on.
fn refusal(error: jsonwebtoken::errors::Error) -> AuthError {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidToken => {
            AuthError::Invalid("not a JWT (three base64url parts separated by dots)".into())
        }
        ErrorKind::InvalidSignature => {
            AuthError::Invalid("bad signature (signed with another key than the gateway's?)".into())
        }
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            AuthError::Invalid("signed with an algorithm the gateway does not accept".into())
        }
        ErrorKind::InvalidIssuer => AuthError::rejected("issuer not accepted", "iss is not auth.issuer"),
        ErrorKind::InvalidAudience => {
            AuthError::rejected("audience not accepted", "aud does not name auth.audience")
        }
        ErrorKind::MissingRequiredClaim(claim) => {
            AuthError::Invalid(format!("the claim `{claim}` is missing"))
        }
        ErrorKind::Base64(_) | ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
            AuthError::Invalid(format!("malformed token ({error})"))
        }
        _ => AuthError::Invalid(error.to_string()),
    }
}

/// Mints an HS256 token for `claims` (what `jim-gateway gentoken` does).
///
/// ```
/// use jim_gateway::auth::{Authenticator, mint, claims_for};
///
/// let secret = b"an example secret of at least 32 bytes!";
/// let token = mint(secret, &claims_for("alice", 3600, Some("Alice"), None)).unwrap();
/// let who = Authenticator::jwt(secret).verify(&token).unwrap();
/// assert_eq!((&*who.user_id, who.name.as_deref()), ("alice", Some("Alice")));
/// ```
///
/// # Errors
/// [`GatewayError::Config`] if signing fails.
pub fn mint(secret: &[u8], claims: &Claims) -> Result<String, GatewayError> {
    SigningKey::secret(secret).mint(claims)
}

/// A key tokens are signed with: the HS256 secret, or an RS256, ES256 or
/// EdDSA private key (PKCS#8 PEM) with its `kid`.
///
/// ```
/// use jim_gateway::auth::{SigningKey, claims_for};
///
/// let key = SigningKey::secret(b"an example secret of at least 32 bytes!");
/// let token = key.mint(&claims_for("alice", 3600, None, None)).unwrap();
/// assert_eq!(token.split('.').count(), 3);
/// ```
pub struct SigningKey {
    header: Header,
    key: EncodingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.header.alg)
            .field("kid", &self.header.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// The HS256 secret.
    pub fn secret(secret: &[u8]) -> SigningKey {
        SigningKey {
            header: Header::new(Algorithm::HS256),
            key: EncodingKey::from_secret(secret),
        }
    }

    /// A private key in PEM (PKCS#8, as `openssl genpkey` writes it) for
    /// `alg` (`RS256`, `ES256` or `EdDSA`), named `kid` in the tokens.
    ///
    /// # Errors
    /// [`GatewayError::Config`] for another algorithm or a key that does
    /// not parse as one of it.
    pub fn private_pem(alg: &str, pem: &[u8], kid: Option<&str>) -> Result<SigningKey, GatewayError> {
        let alg = parse_alg(alg)?;
        let key = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(pem),
            Algorithm::ES256 => EncodingKey::from_ec_pem(pem),
            _ => EncodingKey::from_ed_pem(pem),
        }
        .map_err(|e| GatewayError::Config(format!("not a {alg:?} private key: {e}")))?;
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        Ok(SigningKey { header, key })
    }

    /// A token of `claims`, signed.
    ///
    /// # Errors
    /// [`GatewayError::Config`] if signing fails.
    pub fn mint(&self, claims: &Claims) -> Result<String, GatewayError> {
        jsonwebtoken::encode(&self.header, claims, &self.key)
            .map_err(|e| GatewayError::Config(format!("cannot sign token: {e}")))
    }

    /// The public half as a JWKS document (`{"keys":[...]}`), to publish
    /// or to give the gateway as `auth.jwks`. `None` for the HS256 secret.
    pub fn public_jwks(&self) -> Option<String> {
        if self.header.alg == Algorithm::HS256 {
            return None;
        }
        let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&self.key, self.header.alg).ok()?;
        jwk.common.key_id = self.header.kid.clone();
        serde_json::to_string(&jsonwebtoken::jwk::JwkSet { keys: vec![jwk] }).ok()
    }
}

/// Claims for `user` expiring in `ttl_secs`.
pub fn claims_for(user: &str, ttl_secs: u64, name: Option<&str>, avatar: Option<&str>) -> Claims {
    let now = unix_now();
    Claims {
        sub: user.to_owned(),
        exp: now + ttl_secs,
        iat: Some(now),
        nbf: None,
        name: name.map(str::to_owned),
        avatar: avatar.map(str::to_owned),
        iss: None,
        aud: None,
    }
}

/// Now, in Unix seconds.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_minted_token_verifies() {
        let token = mint(SECRET, &claims_for("u1", 60, None, Some("https://a/u1.png"))).unwrap();
        let who = Authenticator::jwt(SECRET).verify(&token).unwrap();
        assert_eq!(&*who.user_id, "u1");
        assert_eq!(who.avatar.as_deref(), Some("https://a/u1.png"));
    }

    #[test]
    fn expired_tokens_are_refused() {
        let mut claims = claims_for("u1", 0, None, None);
        claims.exp -= 3600;
        let token = mint(SECRET, &claims).unwrap();
        assert_eq!(Authenticator::jwt(SECRET).verify(&token), Err(AuthError::Expired));
    }

    #[test]
    fn wrong_secret_wrong_algorithm_and_garbage_are_refused() {
        let token = mint(
            b"another secret, also 32 bytes long",
            &claims_for("u1", 60, None, None),
        )
        .unwrap();
        assert!(matches!(
            Authenticator::jwt(SECRET).verify(&token),
            Err(AuthError::Invalid(_))
        ));

        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims_for("u1", 60, None, None),
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert!(matches!(
            Authenticator::jwt(SECRET).verify(&hs512),
            Err(AuthError::Rejected {
                reason: "algorithm not accepted",
                ..
            })
        ));

        assert!(matches!(
            Authenticator::jwt(SECRET).verify("not.a.jwt"),
            Err(AuthError::Invalid(_))
        ));
        assert_eq!(Authenticator::jwt(SECRET).verify(""), Err(AuthError::Empty));
    }

    #[test]
    fn a_token_not_valid_yet_is_refused() {
        let mut claims = claims_for("u1", 600, None, None);
        claims.nbf = Some(unix_now() + 300);
        let token = mint(SECRET, &claims).unwrap();
        assert_eq!(
            Authenticator::jwt(SECRET).verify(&token),
            Err(AuthError::NotYetValid)
        );
        claims.nbf = Some(unix_now() - 1);
        let token = mint(SECRET, &claims).unwrap();
        assert!(Authenticator::jwt(SECRET).verify(&token).is_ok());
    }

    #[test]
    fn a_token_that_lives_too_long_is_refused() {
        let mut claims = claims_for("u1", 0, None, None);
        claims.exp = u64::MAX;
        let token = mint(SECRET, &claims).unwrap();
        assert!(matches!(
            Authenticator::jwt(SECRET).verify(&token),
            Err(AuthError::TooLong {
                max_secs: DEFAULT_MAX_TOKEN_LIFETIME_SECS,
                ..
            })
        ));
        let token = mint(SECRET, &claims_for("u1", 3_600, None, None)).unwrap();
        let strict = Authenticator::jwt_with_max_lifetime(SECRET, 600);
        assert_eq!(
            strict.verify(&token).unwrap_err().to_string(),
            "token lifetime too long: it expires in 3600 s, the maximum is 600 s"
        );
        assert_eq!(
            Authenticator::jwt(SECRET).verify(&token).unwrap().expires_at,
            Some(claims_for("u1", 3_600, None, None).exp)
        );
    }

    #[test]
    fn tokens_without_exp_are_refused() {
        #[derive(Serialize)]
        struct NoExp {
            sub: &'static str,
        }
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &NoExp { sub: "u1" },
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert!(matches!(
            Authenticator::jwt(SECRET).verify(&token),
            Err(AuthError::Invalid(_))
        ));
    }

    #[test]
    fn refusals_tell_the_log_more_than_the_client() {
        let unknown = AuthError::UnknownKey {
            kid: Some("k9".into()),
            alg: Algorithm::ES256,
        };
        assert_eq!(unknown.to_string(), "invalid token: unknown signing key");
        assert_eq!(unknown.detail(), r#"no ES256 key with kid "k9""#);
        let rejected = AuthError::rejected(
            "algorithm not accepted",
            "key Some(\"r1\") is RS256, the token says ES256",
        );
        assert_eq!(rejected.to_string(), "invalid token: algorithm not accepted");
        assert!(
            rejected.detail().ends_with("the token says ES256"),
            "{}",
            rejected.detail()
        );
        assert_eq!(AuthError::Expired.detail(), "token expired");
    }

    #[test]
    fn dev_mode_takes_the_token_as_user_id() {
        assert_eq!(&*Authenticator::Dev.verify("bob").unwrap().user_id, "bob");
        assert_eq!(Authenticator::Dev.verify(""), Err(AuthError::Empty));
    }
}
