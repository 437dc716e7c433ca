//! A listener's address in a configuration: `"IP:PORT"`, or `"off"` for
//! no listener (`None`). For serde, `#[serde(with = "jim_service::listen_addr")]`.
//!
//! ```
//! assert_eq!(jim_service::listen_addr::parse("off"), Ok(None));
//! assert_eq!(
//!     jim_service::listen_addr::parse("127.0.0.1:9002"),
//!     Ok(Some(([127, 0, 0, 1], 9002).into()))
//! );
//! assert!(jim_service::listen_addr::parse("localhost").is_err());
//! ```

use std::net::SocketAddr;

use serde::{Deserialize, Deserializer, Serializer, de};

/// `"IP:PORT"` or `"off"` (any case); the error says what was expected.
///
/// # Errors
/// Anything else.
pub fn parse(text: &str) -> Result<Option<SocketAddr>, String> {
    if text.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|e| format!("{text:?}: {e} (expected \"IP:PORT\" or \"off\")"))
}

/// Writes the address, or `"off"`.
///
/// # Errors
/// The serializer's.
pub fn serialize<S: Serializer>(addr: &Option<SocketAddr>, serializer: S) -> Result<S::Ok, S::Error> {
    match addr {
        Some(addr) => serializer.collect_str(addr),
        None => serializer.serialize_str("off"),
    }
}

/// Reads what [`parse`] reads.
///
/// # Errors
/// The deserializer's, or [`parse`]'s.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse(&text).map_err(de::Error::custom)
}
