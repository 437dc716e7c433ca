//! The one error type of this crate.

use std::net::SocketAddr;

/// Why the gateway could not start or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The configuration is invalid; the message says how to fix it.
    #[error("configuration: {0}")]
    Config(String),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The routing backend failed to start.
    #[error("routing backend: {0}")]
    Router(#[from] jim_router::RouterError),
    /// The routing backend could not be reached or set up (its own error,
    /// kept as the source).
    #[error("{0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// I/O.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}
