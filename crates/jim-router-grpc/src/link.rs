//! How a gateway reaches its router: the `[grpc]` section of its
//! configuration.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[grpc]`: the router a gateway in `grpc` mode links to.
///
/// ```
/// let link: jim_router_grpc::LinkConfig = toml::from_str(r#"router = "https://router.internal:9093""#)?;
/// assert_eq!(link.router, "https://router.internal:9093");
/// assert_eq!(link.key, None);
/// # Ok::<(), toml::de::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinkConfig {
    /// The router's address: `http://HOST:PORT`, or `https://HOST:PORT`
    /// for a link over TLS.
    pub router: String,
    /// Over TLS, the CA (PEM) the router's certificate must come from;
    /// unset: the system's roots.
    pub ca: Option<PathBuf>,
    /// The router's bearer key, if it has one. Prefer `JIM_ROUTER_KEY`.
    pub key: Option<String>,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            router: "http://127.0.0.1:9093".to_owned(),
            ca: None,
            key: None,
        }
    }
}
