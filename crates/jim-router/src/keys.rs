//! Bearer keys: the one check of the gateway's admin API and the central
//! router's RPCs.

use subtle::ConstantTimeEq;

/// Why a caller's key was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRefusal {
    /// No `Bearer` key was sent.
    Missing,
    /// A key was sent, not the right one.
    Wrong,
}

/// Checks an `Authorization` value (`Bearer <key>`) against `key`; with no
/// key (or an empty one) configured, every caller is let in. The keys are
/// compared in constant time, so the time a refusal takes says nothing of
/// how much of a guess was right.
///
/// ```
/// use jim_router::{KeyRefusal, check_bearer};
///
/// assert_eq!(check_bearer(Some("Bearer s3cret"), Some("s3cret")), Ok(()));
/// assert_eq!(check_bearer(Some("Bearer guess"), Some("s3cret")), Err(KeyRefusal::Wrong));
/// assert_eq!(check_bearer(None, Some("s3cret")), Err(KeyRefusal::Missing));
/// assert_eq!(check_bearer(None, None), Ok(()));
/// ```
///
/// # Errors
/// A [`KeyRefusal`].
pub fn check_bearer(authorization: Option<&str>, key: Option<&str>) -> Result<(), KeyRefusal> {
    let Some(key) = key.filter(|k| !k.is_empty()) else {
        return Ok(());
    };
    match authorization.and_then(|value| value.strip_prefix("Bearer ")) {
        None => Err(KeyRefusal::Missing),
        Some(given) if bool::from(given.as_bytes().ct_eq(key.as_bytes())) => Ok(()),
        Some(_) => Err(KeyRefusal::Wrong),
    }
}
