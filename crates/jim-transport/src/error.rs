//! The one error type of this crate.

use jim_protocol::ProtocolError;

/// Why a connection could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The bytes are not `jim1`: bad magic, an oversized length, or a
    /// WebSocket message that is not exactly one frame. Fatal.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// A text WebSocket message: `jim1` frames travel in binary messages.
    #[error("text WebSocket message: jim1 frames travel in binary messages")]
    TextMessage,
    /// The peer closed the stream in the middle of a frame.
    #[error("connection closed in the middle of a frame ({buffered} bytes buffered)")]
    Truncated {
        /// Bytes of the unfinished frame.
        buffered: usize,
    },
    /// The client broke the WebSocket protocol (an unmasked frame, reserved
    /// bits set, a bad opcode or close frame). Fatal.
    #[error("websocket protocol error: {0}")]
    WebSocketProtocol(String),
    /// The WebSocket layer failed (handshake state, I/O).
    #[error("websocket: {0}")]
    WebSocket(String),
    /// The socket failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl TransportError {
    /// Whether the peer broke the protocol (as opposed to the link failing).
    pub fn is_protocol_violation(&self) -> bool {
        matches!(
            self,
            TransportError::Protocol(_) | TransportError::TextMessage | TransportError::WebSocketProtocol(_)
        )
    }

    /// Whether a declared length was above the maximum body.
    pub fn is_too_large(&self) -> bool {
        matches!(self, TransportError::Protocol(ProtocolError::BodyTooLarge { .. }))
    }
}
