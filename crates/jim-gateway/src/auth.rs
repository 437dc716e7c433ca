//! Client authentication: signed tokens, or the explicit development mode.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::GatewayError;

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
}

/// Why a token was refused; the reason goes into `B003`.
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
    /// Anything else: bad signature, wrong algorithm, malformed, missing claims.
    #[error("invalid token: {0}")]
    Invalid(String),
}

/// Verifies client tokens.
pub enum Authenticator {
    /// Development mode: any non-empty token is the user id.
    Dev,
    /// HS256 JWTs with a required, checked `exp`.
    Jwt {
        /// The verification key.
        key: DecodingKey,
        /// Algorithm pinned to HS256; `exp` and `sub` required, `nbf` checked.
        validation: Box<Validation>,
        /// The longest a token may still have to live, in seconds.
        max_lifetime_secs: u64,
    },
}

/// The default of `auth.max_token_lifetime_secs`: 30 days.
pub const DEFAULT_MAX_TOKEN_LIFETIME_SECS: u64 = 30 * 24 * 3600;

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Authenticator::Dev => "Authenticator::Dev",
            Authenticator::Jwt { .. } => "Authenticator::Jwt(HS256)",
        })
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
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = 5;
        Authenticator::Jwt {
            key: DecodingKey::from_secret(secret),
            validation: Box::new(validation),
            max_lifetime_secs,
        }
    }

    /// The authenticator the configuration asks for.
    ///
    /// # Errors
    /// [`GatewayError::Config`] without a secret outside development mode.
    pub fn from_config(auth: &crate::config::Auth) -> Result<Authenticator, GatewayError> {
        if auth.dev {
            return Ok(Authenticator::Dev);
        }
        let secret = auth
            .jwt_secret
            .as_deref()
            .ok_or_else(|| GatewayError::Config("no token secret configured".into()))?;
        Ok(Authenticator::jwt_with_max_lifetime(
            secret.as_bytes(),
            auth.max_token_lifetime_secs,
        ))
    }

    /// Whether this is development mode.
    pub fn is_dev(&self) -> bool {
        matches!(self, Authenticator::Dev)
    }

    /// Checks a token.
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
            Authenticator::Jwt {
                key,
                validation,
                max_lifetime_secs,
            } => {
                let data = jsonwebtoken::decode::<Claims>(token, key, validation).map_err(refusal)?;
                let claims = data.claims;
                if claims.sub.is_empty() {
                    return Err(AuthError::Invalid("empty subject".into()));
                }
                let remaining_secs = claims.exp.saturating_sub(unix_now());
                if remaining_secs > *max_lifetime_secs {
                    return Err(AuthError::TooLong {
                        remaining_secs,
                        max_secs: *max_lifetime_secs,
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
            AuthError::Invalid("bad signature (signed with another secret than the gateway's?)".into())
        }
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            AuthError::Invalid("signed with another algorithm than HS256".into())
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
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .map_err(|e| GatewayError::Config(format!("cannot sign token: {e}")))
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
            Err(AuthError::Invalid(_))
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
    fn dev_mode_takes_the_token_as_user_id() {
        assert_eq!(&*Authenticator::Dev.verify("bob").unwrap().user_id, "bob");
        assert_eq!(Authenticator::Dev.verify(""), Err(AuthError::Empty));
    }
}
