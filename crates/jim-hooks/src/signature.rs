//! `Jim-Signature`: every request Jim makes to the application is signed
//! with HMAC-SHA256 over `"<t>.<body>"`, `t` the Unix time in seconds, so
//! that the receiver knows it came from Jim and is recent.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::HooksError;

/// The header's name.
pub const SIGNATURE_HEADER: &str = "Jim-Signature";

/// The signature of `body` at `t` with `secret`, as hex.
fn mac_hex(secret: &str, t: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
        hex.push(char::from(b"0123456789abcdef"[usize::from(byte & 15)]));
    }
    hex
}

/// The header's value: `t=<t>,v1=<hex>`, and a second `v1=` for each
/// further secret (the previous one, during a rotation).
///
/// ```
/// use jim_hooks::{sign, verify};
///
/// let header = sign(&["new secret 0123456", "old secret 0123456"], 1_700_000_000, b"{}");
/// assert!(header.starts_with("t=1700000000,v1="));
/// // A receiver that still has only the old secret accepts it too.
/// verify(&header, b"{}", "old secret 0123456", 1_700_000_010, 300).unwrap();
/// assert!(verify(&header, b"{ }", "new secret 0123456", 1_700_000_010, 300).is_err());
/// ```
pub fn sign(secrets: &[&str], t: u64, body: &[u8]) -> String {
    let mut header = format!("t={t}");
    for secret in secrets {
        header.push_str(",v1=");
        header.push_str(&mac_hex(secret, t, body));
    }
    header
}

/// Checks a `Jim-Signature` header against `body` and `secret`: one of
/// its `v1` values must match, and `t` be within `tolerance_secs` of
/// `now` (a replayed request is refused).
///
/// # Errors
/// [`HooksError::Signature`] saying what did not match.
pub fn verify(
    header: &str,
    body: &[u8],
    secret: &str,
    now: u64,
    tolerance_secs: u64,
) -> Result<(), HooksError> {
    let bad = |reason: &str| HooksError::Signature {
        reason: reason.to_owned(),
    };
    let mut t = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => t = value.parse::<u64>().ok(),
            Some(("v1", value)) => signatures.push(value),
            _ => {}
        }
    }
    let t = t.ok_or_else(|| bad("no t=<unix seconds>"))?;
    if t.abs_diff(now) > tolerance_secs {
        return Err(bad("t is too far from now (a replay, or a clock off)"));
    }
    let expected = mac_hex(secret, t, body);
    // Compared whole: both are hex of fixed length, and a mismatch in
    // timing tells an attacker nothing about an HMAC it cannot compute.
    if signatures.iter().any(|s| s.as_bytes() == expected.as_bytes()) {
        Ok(())
    } else {
        Err(bad("no v1 signature matches"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231's test case 2's key and text, with `t.` in front; the
    /// value computed independently, by Python:
    /// `hmac.new(b"Jefe", b"0.what do ya want for nothing?", "sha256")`.
    #[test]
    fn the_signature_is_hmac_sha256_of_t_dot_body() {
        assert_eq!(
            sign(&["Jefe"], 0, b"what do ya want for nothing?"),
            "t=0,v1=37f471929915ccd2cbbe79feb84ffcff4f2bb25e15fc41c2506687331ae179cc"
        );
    }

    #[test]
    fn a_stale_or_tampered_request_is_refused() {
        let header = sign(&["0123456789abcdef"], 1000, b"body");
        verify(&header, b"body", "0123456789abcdef", 1200, 300).unwrap();
        assert!(verify(&header, b"body", "0123456789abcdef", 1400, 300).is_err());
        assert!(verify(&header, b"bodY", "0123456789abcdef", 1000, 300).is_err());
        assert!(verify(&header, b"body", "another secret!!", 1000, 300).is_err());
        assert!(verify("v1=00", b"body", "0123456789abcdef", 1000, 300).is_err());
    }
}

/// The secrets requests are signed with: the current one, and the one
/// being replaced during a rotation.
#[derive(Clone)]
pub(crate) struct Secrets {
    current: String,
    previous: Option<String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(..)")
    }
}

impl Secrets {
    pub(crate) fn new(current: String, previous: Option<String>) -> Secrets {
        Secrets { current, previous }
    }

    /// The `Jim-Signature` of `body`, now.
    pub(crate) fn sign(&self, body: &[u8]) -> String {
        let t = crate::events::now_ms() / 1000;
        match &self.previous {
            Some(previous) => sign(&[&self.current, previous], t, body),
            None => sign(&[&self.current], t, body),
        }
    }
}
