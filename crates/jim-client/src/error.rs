//! The one error type of this crate.

use jim_model::Status;

/// What went wrong with a connection or a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The gateway refused the request with an error reply; the connection
    /// is still open.
    #[error("refused with {code}: {reason}")]
    Refused {
        /// The error code (4000, 4001, 4003, 4004, 4029, 5000).
        code: u16,
        /// The gateway's explanation.
        reason: String,
    },
    /// Authentication failed (`B003`); the gateway closes the connection.
    #[error("the gateway refused the token: {reason} (code {code})")]
    AuthFailed {
        /// The code.
        code: u16,
        /// The reason.
        reason: String,
    },
    /// The connection is closed; with the server's `A999` status if it sent one.
    #[error("the gateway closed the connection{}", .0.as_ref().map(|s| format!(": {} (code {})", s.reason, s.code)).unwrap_or_default())]
    Closed(Option<Status>),
    /// No reply in time.
    #[error("no reply from the gateway in time")]
    Timeout,
    /// A reply that does not fit the protocol.
    #[error("unexpected reply: {0}")]
    BadReply(String),
    /// The frame layer failed.
    #[error(transparent)]
    Protocol(#[from] jim_protocol::ProtocolError),
    /// The URL is not one a client can connect to.
    #[error(
        "{url:?} is not a WebSocket URL: expected ws://HOST:PORT/PATH or wss://... (for TCP, tcp://HOST:PORT or tls://HOST:PORT where a tool takes both)"
    )]
    BadUrl {
        /// The URL given.
        url: String,
    },
    /// TLS could not be set up: a CA file that cannot be read, a host
    /// name that cannot be a certificate's. (A certificate the client
    /// refuses is an [`Io`](Self::Io) error of the handshake.)
    #[error("TLS: {0}")]
    Tls(String),
    /// The WebSocket layer failed.
    #[error("WebSocket: {0}")]
    WebSocket(String),
    /// The socket failed.
    #[error("cannot reach the gateway: {0}")]
    Io(#[from] std::io::Error),
}
